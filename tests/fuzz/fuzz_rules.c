/* fuzz_rules.c — libFuzzer target for the rule language: the input is one
 * rule file, parsed and compiled by rules_load_string(). A set that
 * compiles is then used the way the engine uses it: every intent is read,
 * replies are picked and rendered, conditions are evaluated and witnessed,
 * and a few messages (and the input's own first line) are routed with
 * their slots extracted. A failed compile must come with at least one
 * error that has a position. The input is named as a file in an empty
 * temporary directory, so its relative includes name files that are not
 * there (absolute ones are taken only when they are regular files). */
#include "kefu.h"
#include "router.h"
#include "rules.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fuzz.h"

static struct router_scratch *scratch;
static FILE *devnull;
static char dir[] = "/tmp/kefu-fuzz-rules-XXXXXX", file_name[64];

static void cleanup(void)
{
    rmdir(dir);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    if (!mkdtemp(dir))
        abort();
    atexit(cleanup);
    snprintf(file_name, sizeof file_name, "%s/fuzz.rules", dir);
    scratch = router_scratch_create();
    devnull = fopen("/dev/null", "w");
    if (!scratch || !devnull)
        abort();
    return 0;
}

static const char *fill(void *ctx, const char *name)
{
    return strcmp(name, "order_id") == 0 ? "AB12345678" : (const char *)ctx;
}

static void route(const struct rules *rs, const char *msg, size_t len, const struct attrs *at)
{
    struct router_result res;
    int rc = router_match(rs, scratch, msg, len, at, NULL, &res);
    MUST(rc == 0 || rc == KEFU_EUTF8);
    if (rc)
        return;
    MUST(res.n <= ROUTER_MAX_CANDS);
    for (size_t k = 0; k < res.n; k++) {
        MUST(res.cand[k].intent < rules_count(rs));
        MUST(res.cand[k].confidence >= 0 && res.cand[k].confidence <= 1.0 + 1e-9);
        for (size_t h = 0; h < res.cand[k].n_hits; h++)
            MUST(res.cand[k].hits[h].start <= res.cand[k].hits[h].end &&
                 res.cand[k].hits[h].end <= res.norm_len);
        struct router_slot slots[8];
        size_t n = 0;
        rc = router_slots(rs, scratch, res.cand[k].intent, msg, len, slots, 8, &n);
        MUST(rc == 0 || rc == KEFU_EUTF8 || rc == KEFU_EINVAL);
        MUST(n <= 8);
    }
}

static void use(const struct rules *rs, const char *src)
{
    struct attr av[] = {{"channel", "web"}, {"locale", "zh"}, {"tier", "vip"}};
    struct attrs at = {av, 3};
    char buf[512];
    for (size_t i = 0; i < rules_count(rs); i++) {
        const struct rules_intent *it = rules_intent(rs, i);
        MUST(it && it->name && rules_find(rs, it->name) == (long)i);
        rules_cond_eval(it->when, &at);
        struct attr w[16];
        size_t nw = 0;
        rules_cond_witness(it->when, w, 16, &nw);
        MUST(nw <= 16);
        const char *reply = rules_reply_pick(it->replies, it->n_replies, "zh-hant", (unsigned)i);
        if (reply)
            MUST(rules_render(reply, fill, "x", buf, sizeof buf) < sizeof buf);
        rules_handoff_for(it, &at);
        rules_priority_name(it->priority);
    }
    static const char *const msgs[] = {"where is my refund", "退款什么时候到账", "我要找人工 human please",
                                       "ＡＢ１２３４５６７８ 訂單", ""};
    for (size_t k = 0; k < sizeof msgs / sizeof msgs[0]; k++)
        route(rs, msgs[k], strlen(msgs[k]), &at);
    size_t first = strcspn(src, "\n");
    route(rs, src, first > 4096 ? 4096 : first, NULL);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *src = malloc(size + 1);
    if (!src)
        return 0;
    memcpy(src, data, size);
    src[size] = 0;
    struct rules_diag diag;
    rules_diag_init(&diag);
    struct rules *rs = NULL;
    int rc = rules_load_string(file_name, src, &diag, &rs);
    MUST(rc == 0 || rc == KEFU_ESYNTAX || rc == KEFU_EIO);
    if (rc == 0) {
        MUST(rs != NULL);
        use(rs, src);
        rules_unref(rules_ref(rs));
        rules_unref(rs);
    } else {
        MUST(rs == NULL && diag.errors > 0);
        for (size_t k = 0; k < diag.n; k++)
            MUST(diag.v[k].text && diag.v[k].line >= 0 && diag.v[k].col >= 0);
    }
    rules_diag_print(devnull, &diag);
    rules_diag_release(&diag);
    free(src);
    return 0;
}
