/* test_jit.c — the lazy JIT of regexes (engine/rules_jit.c): a regex runs
 * in PCRE2's interpreter until it has been evaluated RULES_JIT_AFTER times
 * or hits a match limit, then in a JIT-compiled copy; the decisions are the
 * same before and after, also while several threads match at once. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "kefu.h"
#include "log.h"
#include "router.h"
#include "rules.h"

static const char *rules_src = "intent order.track\n"
                               "  regex /\\bwhere is my (order|package)\\b/\n"
                               "  reply Tracking is in your account.\n"
                               "intent refund\n"
                               "  regex /\\brefund(ed)?\\b.*\\b(yet|status)\\b/\n"
                               "  reply Refunds take 3-5 days.\n"
                               "intent colour\n"
                               "  regex /colou?r (red|blue|green)/\n"
                               "  reply Three colours.\n"
                               "intent cn.refund\n"
                               "  regex /(?:退款|退钱)(?:什么时候|多久)/\n"
                               "  reply 3-5 个工作日。\n"
                               "intent hello\n"
                               "  match hello | hi\n"
                               "  slot order_id /\\b([A-Z]{2}\\d{8})\\b/ ask \"Which order?\"\n"
                               "  reply Hello!\n";

static const char *const messages[] = {"where is my order",  "where is my package now",
                                       "where is my cat",    "refunded yet?",
                                       "my refund status",   "refund",
                                       "colour red please",  "color blue",
                                       "colour purple",      "退款什么时候到账",
                                       "退钱多久",           "退款",
                                       "hello there",        "hi where is my order",
                                       "nothing to see here"};
#define N_MESSAGES (sizeof messages / sizeof *messages)

static int have_jit(void)
{
    uint32_t jit = 0;
    pcre2_config(PCRE2_CONFIG_JIT, &jit);
    return jit == 1;
}

static struct rules *load(const char *src)
{
    struct rules_diag d;
    rules_diag_init(&d);
    struct rules *rs = NULL;
    int rc = rules_load_string("jit.rules", src, &d, &rs);
    if (rc != 0)
        rules_diag_print(stderr, &d);
    assert_int_equal(rc, 0);
    rules_diag_release(&d);
    return rs;
}

static struct rules_jit_stats stats(const struct rules *rs)
{
    struct rules_jit_stats st;
    rules_jit_stats(rs, &st);
    return st;
}

/* The parts of a decision that must not depend on how a regex ran. */
struct decision {
    size_t n, limit_hits;
    uint32_t intent[ROUTER_MAX_CANDS];
    double confidence[ROUTER_MAX_CANDS];
    uint32_t start[ROUTER_MAX_CANDS], end[ROUTER_MAX_CANDS];
};

static struct decision route(const struct rules *rs, struct router_scratch *sc, const char *text)
{
    struct router_result r;
    assert_int_equal(router_match(rs, sc, text, strlen(text), NULL, NULL, &r), 0);
    struct decision d = {.n = r.n, .limit_hits = r.limit_hits};
    for (size_t k = 0; k < r.n; k++) {
        d.intent[k] = r.cand[k].intent;
        d.confidence[k] = r.cand[k].confidence;
        d.start[k] = r.cand[k].n_hits ? r.cand[k].hits[0].start : 0;
        d.end[k] = r.cand[k].n_hits ? r.cand[k].hits[0].end : 0;
    }
    return d;
}

/* Returns 0 when a and b agree, else prints the first difference. */
static int decision_cmp(const char *text, const struct decision *a, const struct decision *b)
{
    if (a->n != b->n || a->limit_hits != b->limit_hits) {
        fprintf(stderr, "'%s': %zu candidates (%zu limit hits) vs %zu (%zu)\n", text, a->n, a->limit_hits,
                b->n, b->limit_hits);
        return 1;
    }
    for (size_t k = 0; k < a->n; k++)
        if (a->intent[k] != b->intent[k] || a->confidence[k] != b->confidence[k] ||
            a->start[k] != b->start[k] || a->end[k] != b->end[k]) {
            fprintf(stderr,
                    "'%s' candidate %zu: intent %u conf %.4f [%u,%u) vs intent %u conf %.4f [%u,%u)\n", text,
                    k, a->intent[k], a->confidence[k], a->start[k], a->end[k], b->intent[k], b->confidence[k],
                    b->start[k], b->end[k]);
            return 1;
        }
    return 0;
}

/* A regex is JIT-compiled on its RULES_JIT_AFTER-th evaluation, not before;
 * a message without its required literal does not evaluate it. */
static void test_threshold(void **state)
{
    (void)state;
    struct rules *rs = load(rules_src);
    struct router_scratch *sc = router_scratch_create();
    struct rules_jit_stats st = stats(rs);
    assert_int_equal(st.regexes, 5); /* four patterns and one slot */
    assert_int_equal(st.compiled, 0);
    assert_int_equal(st.jit_bytes, 0);

    struct decision first = route(rs, sc, "where is my order");
    assert_int_equal(first.n, 1);
    for (int k = 1; k < RULES_JIT_AFTER - 1; k++) {
        struct decision again = route(rs, sc, "where is my order");
        assert_int_equal(decision_cmp("where is my order", &first, &again), 0);
    }
    for (int k = 0; k < 3 * RULES_JIT_AFTER; k++) /* no "where is my": the regex does not run */
        assert_int_equal(route(rs, sc, "my order please").n, 0);
    assert_int_equal(stats(rs).compiled, 0);

    /* the last evaluation before the threshold is one that does not match */
    assert_int_equal(route(rs, sc, "where is my orders").n, 0);
    st = stats(rs);
    if (have_jit()) {
        assert_int_equal(st.compiled, 1);
        assert_true(st.jit_bytes > 0);
    } else {
        assert_int_equal(st.failed, 1);
    }
    for (int k = 0; k < 2 * RULES_JIT_AFTER; k++) {
        struct decision jit = route(rs, sc, "where is my order");
        assert_int_equal(decision_cmp("where is my order", &first, &jit), 0);
    }
    assert_int_equal(stats(rs).compiled, have_jit() ? 1 : 0);
    router_scratch_free(sc);
    rules_unref(rs);
}

/* Every message gets the same decision from an interpreted regex (a fresh
 * set, first evaluation) and from its JIT-compiled copy (a warmed set). */
static void test_same_matches(void **state)
{
    (void)state;
    struct rules *warm = load(rules_src);
    struct router_scratch *sc = router_scratch_create();
    for (int k = 0; k < RULES_JIT_AFTER; k++)
        for (size_t m = 0; m < N_MESSAGES; m++)
            route(warm, sc, messages[m]);
    struct rules_jit_stats st = stats(warm);
    assert_int_equal(st.compiled, have_jit() ? 4 : 0); /* every pattern; the slot has not run */
    for (size_t m = 0; m < N_MESSAGES; m++) {
        struct rules *cold = load(rules_src);
        struct decision a = route(cold, sc, messages[m]);
        assert_int_equal(stats(cold).compiled, 0);
        struct decision b = route(warm, sc, messages[m]);
        assert_int_equal(decision_cmp(messages[m], &a, &b), 0);
        rules_unref(cold);
    }
    router_scratch_free(sc);
    rules_unref(warm);
}

/* Slot patterns are counted and JIT-compiled the same way; values are unchanged. */
static void test_slots(void **state)
{
    (void)state;
    struct rules *rs = load(rules_src);
    struct router_scratch *sc = router_scratch_create();
    long hello = rules_find(rs, "hello");
    assert_true(hello >= 0);
    const char *text = "hello, order AB12345678 please";
    route(rs, sc, text); /* router_slots() follows a router_match() on the same scratch */
    for (int k = 0; k < 2 * RULES_JIT_AFTER; k++) {
        struct router_slot v[2];
        size_t n = 0;
        assert_int_equal(router_slots(rs, sc, (uint32_t)hello, text, strlen(text), v, 2, &n), 0);
        assert_int_equal(n, 1);
        assert_string_equal(v[0].name, "order_id");
        assert_string_equal(v[0].value, "AB12345678");
        assert_int_equal(stats(rs).compiled, have_jit() && k + 1 >= RULES_JIT_AFTER ? 1 : 0);
    }
    router_scratch_free(sc);
    rules_unref(rs);
}

/* A regex stopped by the match limit in the interpreter is JIT-compiled at
 * once, whatever its count; it still counts as no match. */
static void test_limit_promotes(void **state)
{
    (void)state;
    struct rules *rs = load("intent slow\n  regex /aaa.*a.*a.*a.*a.*a.*a.*(b|c)/\n  reply x\n");
    struct router_scratch *sc = router_scratch_create();
    char msg[4096];
    memset(msg, 'a', sizeof msg - 1);
    msg[sizeof msg - 1] = 0;
    struct decision d = route(rs, sc, msg);
    assert_int_equal(d.n, 0);
    assert_int_equal(d.limit_hits, 1);
    assert_int_equal(stats(rs).compiled, have_jit() ? 1 : 0);
    d = route(rs, sc, msg);
    assert_int_equal(d.n, 0);
    assert_int_equal(route(rs, sc, "aaa a a a a a a b").n, 1);
    router_scratch_free(sc);
    rules_unref(rs);
}

/* A regex the JIT refuses (\C in UTF mode) keeps running in the interpreter;
 * the failure is logged once with its position, and only a load with
 * jit_check (kefu check --strict) warns about it. */
static void test_refused(void **state)
{
    (void)state;
    if (!have_jit())
        skip();
    const char *src = "intent odd\n  regex /abc\\Cdef/\n  reply x\n";
    struct rules_diag d;
    rules_diag_init(&d);
    struct rules *rs = NULL;
    assert_int_equal(rules_load_string("odd.rules", src, &d, &rs), 0);
    assert_int_equal(d.warnings, 0);
    rules_diag_release(&d);
    rules_unref(rs);

    rules_diag_init(&d);
    d.jit_check = 1;
    assert_int_equal(rules_load_string("odd.rules", src, &d, &rs), 0);
    assert_int_equal(d.warnings, 1);
    assert_string_equal(d.v[0].file, "odd.rules");
    assert_int_equal(d.v[0].line, 2);
    assert_int_equal(d.v[0].col, 9); /* the opening slash */
    assert_non_null(strstr(d.v[0].text, "could not be jit-compiled"));
    rules_diag_release(&d);

    FILE *logf = tmpfile();
    assert_non_null(logf);
    log_init(LOG_LEVEL_WARN, logf);
    struct router_scratch *sc = router_scratch_create();
    for (int k = 0; k < 2 * RULES_JIT_AFTER; k++) {
        struct decision m = route(rs, sc, "abcxdef");
        assert_int_equal(m.n, 1);
        assert_int_equal(route(rs, sc, "abcdef").n, 0);
    }
    log_init(LOG_LEVEL_OFF, NULL);
    struct rules_jit_stats st = stats(rs);
    assert_int_equal(st.compiled, 0);
    assert_int_equal(st.failed, 1);
    char line[512] = "";
    rewind(logf);
    int lines = 0;
    while (fgets(line, sizeof line, logf))
        if (strstr(line, "could not be jit-compiled"))
            lines++, assert_non_null(strstr(line, "odd.rules:2"));
    fclose(logf);
    assert_int_equal(lines, 1);
    router_scratch_free(sc);
    rules_unref(rs);
}

struct worker {
    struct rules *rs; /* a reference of its own, dropped when done */
    const struct decision *want;
    pthread_barrier_t *start;
    int rounds, mismatches;
};

static void *work(void *arg)
{
    struct worker *w = arg;
    struct router_scratch *sc = router_scratch_create();
    pthread_barrier_wait(w->start);
    for (int k = 0; k < w->rounds; k++)
        for (size_t m = 0; m < N_MESSAGES; m++) {
            struct router_result r;
            if (router_match(w->rs, sc, messages[m], strlen(messages[m]), NULL, NULL, &r) != 0 ||
                r.n != w->want[m].n ||
                (r.n && (r.cand[0].intent != w->want[m].intent[0] ||
                         r.cand[0].confidence != w->want[m].confidence[0])))
                w->mismatches++;
        }
    router_scratch_free(sc);
    rules_unref(w->rs);
    return NULL;
}

/* Four threads start matching a fresh set together, so that they cross the
 * threshold of the same regexes at the same time: each gets the decisions
 * of a single-threaded run, every regex ends JIT-compiled exactly once, and
 * the set is freed by whichever thread lets go last (ASan and valgrind
 * watch the copies). */
static void test_threads(void **state)
{
    (void)state;
    struct decision want[N_MESSAGES];
    struct rules *ref = load(rules_src);
    struct router_scratch *sc = router_scratch_create();
    for (size_t m = 0; m < N_MESSAGES; m++)
        want[m] = route(ref, sc, messages[m]);
    router_scratch_free(sc);
    rules_unref(ref);

    enum { THREADS = 4 };
    struct rules *rs = load(rules_src);
    pthread_barrier_t start;
    pthread_barrier_init(&start, NULL, THREADS);
    pthread_t t[THREADS];
    struct worker w[THREADS];
    for (int k = 0; k < THREADS; k++) {
        w[k] = (struct worker){rules_ref(rs), want, &start, 4 * RULES_JIT_AFTER, 0};
        assert_int_equal(pthread_create(&t[k], NULL, work, &w[k]), 0);
    }
    for (int k = 0; k < THREADS; k++)
        pthread_join(t[k], NULL);
    for (int k = 0; k < THREADS; k++)
        assert_int_equal(w[k].mismatches, 0);
    struct rules_jit_stats st = stats(rs);
    assert_int_equal(st.compiled, have_jit() ? 4 : 0);
    assert_int_equal(st.failed, have_jit() ? 0 : 4);
    pthread_barrier_destroy(&start);
    rules_unref(rs);

    /* and once more, with the main thread's reference gone first */
    rs = load(rules_src);
    pthread_barrier_init(&start, NULL, THREADS);
    for (int k = 0; k < THREADS; k++) {
        w[k] = (struct worker){rules_ref(rs), want, &start, 2 * RULES_JIT_AFTER, 0};
        assert_int_equal(pthread_create(&t[k], NULL, work, &w[k]), 0);
    }
    rules_unref(rs);
    for (int k = 0; k < THREADS; k++) {
        pthread_join(t[k], NULL);
        assert_int_equal(w[k].mismatches, 0);
    }
    pthread_barrier_destroy(&start);
}

int main(void)
{
    log_init(LOG_LEVEL_OFF, NULL);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_threshold), cmocka_unit_test(test_same_matches),
        cmocka_unit_test(test_slots),     cmocka_unit_test(test_limit_promotes),
        cmocka_unit_test(test_refused),   cmocka_unit_test(test_threads),
    };
    return cmocka_run_group_tests_name("jit", tests, NULL, NULL);
}
