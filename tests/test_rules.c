/* test_rules.c — the rule language: what parses, what compiles, and the
 * exact file:line:col of every kind of mistake. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kefu.h"
#include "rules.h"

/* Compiles src; returns rc and leaves diagnostics in d. */
static int compile(const char *src, struct rules_diag *d, struct rules **rs)
{
    rules_diag_init(d);
    return rules_load_string("t.rules", src, d, rs);
}

static const struct err_case {
    const char *id, *src;
    int line, col;
    const char *msg; /* prefix of the first error's text */
} err_cases[] = {
    {"1.1", "intent a\n  match ~refnd & status\n  reply x\n", 2, 9, "unknown concept 'refnd'"},
    {"1.2", "intent a\n  reply x\nintent a\n  reply y\n", 3, 8,
     "duplicate intent 'a' (first defined at t.rules:1)"},
    {"1.3", "intent a\n  frobnicate x\n", 2, 3, "unknown directive 'frobnicate'"},
    {"1.4", "intent a\n  slot s /x/ ask \"open\n", 2, 18, "unterminated string"},
    {"1.5", "intent a\n  regex /(abc/\n", 2, 14, "bad regex: missing closing parenthesis"},
    {"1.6", "intent a\n  regex /(a+)+$/\n", 2, 10, "dangerous regex: nested unbounded quantifier"},
    {"1.7", "intent a\n  regex /(\\w*)*x/\n", 2, 10, "dangerous regex: nested unbounded quantifier"},
    {"1.8", "intent a\n  regex /(a|aa)+$/\n", 2, 10, "dangerous regex: repeated group whose alternatives"},
    {"1.9", "match refund\n", 1, 1, "'match' outside an intent"},
    {"1.10", "intent A.b\n", 1, 8, "bad intent name 'A.b'"},
    {"1.11", "intent a\n  match refund & (status\n", 2, 18, "unclosed '('"},
    {"1.12", "intent a\n  match !refund\n", 2, 3, "this match can be true with none of its terms"},
    {"1.13", "intent a\n  match refund &\n", 2, 17, "expected a term"},
    {"1.14", "intent a\n  regex /abc\n", 2, 9, "unterminated regex"},
    {"1.15", "intent a\n  regex /abc/g\n", 2, 14, "unknown regex flag 'g'"},
    {"1.16", "intent a\n  priority 500\n", 2, 12, "priority must be a whole number"},
    {"1.16b", "intent a\n  priority 1e300\n", 2, 12, "priority must be a whole number"},
    {"1.17", "intent a\n  threshold 1.5\n", 2, 13, "threshold must be between 0 and 1"},
    {"1.18", "intent a\n  when planet = mars\n", 2, 8, "unknown attribute 'planet'"},
    {"1.19", "intent a\n  handoff queue\n", 2, 16, "expected a queue name"},
    {"1.20", "intent a\n  handoff queue x priority extreme\n", 2, 28, "unknown priority 'extreme'"},
    {"1.21", "intent a\n  reply hello {nme}\n", 2, 9, "unknown slot 'nme' in reply template"},
    {"1.22", "concept c = ~d\nconcept d = ~c\nintent a\n  match ~c\n  reply x\n", 2, 13,
     "concept 'c' refers to itself"},
    {"1.23", "include \"no-such-file.rules\"\n", 1, 9, "cannot open 'no-such-file.rules'"},
    {"1.24", "intent a\n  reply@ZH x\n", 2, 9, "bad locale 'ZH'"},
    {"1.25", "intent a\n  slot order /x/\n  slot order /y/\n", 3, 8, "slot 'order' already has a pattern"},
    {"1.26", "intent a\n  match ,\n", 2, 9, "term ',' has no letters, digits or chinese characters"},
    {"1.27", "intent 订单\n", 1, 8, "bad intent name '订单'"},
    {"1.28", "intent a\n  when tier = vip\n  when channel = web\n", 3, 3,
     "intent 'a' already has a 'when' line"},
    {"1.29", "intent a\n  handoff if misses >= x -> queue q\n", 2, 24, "'x' is not a number"},
    {"1.30", "intent a\n  slot s ask \"q\"\n  reply x\n", 2, 8, "slot 's' has no pattern"},
    {"1.31", "include \"/dev/zero\"\n", 1, 9, "cannot include '/dev/zero': not a regular file"},
    {"1.32", "include \"/tmp\"\n", 1, 9, "cannot include '/tmp': not a regular file"},
    {"9.1", "intent a\n  match x\n  variant a 50\n  reply ~a hi\n  reply ~b hello\n", 5, 9,
     "unknown variant 'b'"},
    {"9.2",
     "intent a\n  match x\n  variant a 50\n  variant b 50\n  reply ~a hi\n  reply ~b yo\n  reply hello\n", 7,
     9, "intent 'a' has variants: this reply must name one"},
    {"9.3", "intent a\n  match x\n  variant a 50\n  variant b 50\n  reply ~a hi\n", 4, 11,
     "variant 'b' has no reply"},
    {"9.4", "intent a\n  match x\n  variant a 0\n", 3, 13,
     "a variant's weight is a whole number from 1 to 1000"},
    {"9.5", "intent a\n  match x\n  variant a\n", 3, 12, "expected the variant's weight"},
    {"9.6", "intent a\n  match x\n  variant a 1\n  variant a 2\n  reply ~a hi\n", 4, 11,
     "intent 'a' already has a variant 'a'"},
    {"9.7", "intent a\n  match x\n  variant a/b 1\n", 3, 12, "a variant name is letters, digits"},
    {"9.8", "intent a\n  match x\n  variant a 1\n  reply ~ hi\n  reply ~a hi\n", 4, 9,
     "expected a variant name after '~'"},
    {"9.9", "intent a\n  match x\n  variant a 1\n  reply@zh ~a\n  reply ~a hi\n", 4, 3, "empty reply"},
    /* actions */
    {"1.33", "intent a\n  match x\n  on found = true -> reply y\n", 3, 3, "'on' needs an 'action' line"},
    {"1.34", "intent a\n  action b\n  action c\n", 3, 3, "intent 'a' already has an action"},
    {"1.35", "intent a\n  action Order\n", 2, 10, "expected an action name"},
    {"1.36", "intent a\n  action b\n  on found = true reply y\n", 3, 19, "expected '->' after the condition"},
    {"1.37", "intent a\n  action b\n  on found = true -> say y\n", 3, 22,
     "expected 'reply TEXT' or 'handoff"},
    {"1.38", "intent a\n  action b\n  on failed -> handoff queue\n", 3, 29, "expected a queue name"},
    {"1.39", "intent a\n  action b\n  set s order.status\n", 3, 9, "expected '=' and a field"},
    {"1.40", "intent a\n  action b\n  on found -> reply y\n", 3, 12, "expected =, !=, <, <=, >, >= or in"},
    {"1.41", "intent a\n  action b\n  on@zh found = true -> reply y\n", 3, 3,
     "only reply and slot take a @locale"},
    {"1.42", "intent a\n  action b\n  on failed -> reply@ZH y\n", 3, 22, "bad locale 'ZH'"},
};

static void test_errors(void **state)
{
    (void)state;
    int bad = 0;
    for (size_t k = 0; k < sizeof err_cases / sizeof err_cases[0]; k++) {
        const struct err_case *c = &err_cases[k];
        struct rules_diag d;
        struct rules *rs = NULL;
        int rc = compile(c->src, &d, &rs);
        const struct rules_msg *m = NULL;
        for (size_t j = 0; j < d.n && !m; j++)
            if (d.v[j].severity == RULES_ERROR)
                m = &d.v[j];
        if (rc == 0 || !m || m->line != c->line || m->col != c->col ||
            strncmp(m->text, c->msg, strlen(c->msg)) != 0) {
            print_error("case %s: want %d:%d '%s', got rc %d %d:%d '%s'\n", c->id, c->line, c->col, c->msg,
                        rc, m ? m->line : 0, m ? m->col : 0, m ? m->text : "(none)");
            bad++;
        }
        assert_null(rs);
        rules_diag_release(&d);
    }
    assert_int_equal(bad, 0);
}

static void test_caret(void **state)
{
    (void)state;
    struct rules_diag d;
    struct rules *rs;
    assert_int_equal(compile("intent a\n  match 退款 & ~refnd\n  reply x\n", &d, &rs), KEFU_ESYNTAX);
    char buf[512] = "";
    FILE *f = fmemopen(buf, sizeof buf, "w");
    rules_diag_print(f, &d);
    fclose(f);
    /* the caret sits under '~', after two wide characters */
    assert_string_equal(buf, "t.rules:2:14: unknown concept 'refnd'\n"
                             "    match 退款 & ~refnd\n"
                             "                 ^\n");
    rules_diag_release(&d);
}

static const char *full = "# a comment\n"
                          "default threshold 0.5\n"
                          "concept refund = refund, money back, 退款, 退钱\n"
                          "concept when = when, how long, 什么时候, 多久\n"
                          "concept unused = nothing\n"
                          "intent order.refund_status   # trailing comment\n"
                          "  priority 5\n"
                          "  threshold 0.7\n"
                          "  topic billing\n"
                          "  when channel != email\n"
                          "  example where is my refund\n"
                          "  example 退款什么时候到账\n"
                          "  match ~refund & (~when | status | 到账)\n"
                          "  regex /\\brefund(ed)?\\b.*\\b(yet|status)\\b/\n"
                          "  slot order_id /\\b([A-Z]{2}\\d{8})\\b/ ask \"Which order?\"\n"
                          "  slot@zh order_id ask \"哪个订单？\"\n"
                          "  reply Refunds take 3-5 days. {kb:refund-policy} \\# not a comment\n"
                          "  reply@zh 退款 3-5 个工作日到账。\n"
                          "  reply@zh 第二种说法 {order_id}\n"
                          "  handoff if tier = vip and misses >= 1 -> queue billing priority high\n"
                          "  handoff queue general\n"
                          "intent smalltalk.hello\n"
                          "  match hello | hi | 你好\n"
                          "  reply Hello {customer.name}!\n";

/* rules_find() over intents whose file order is not their name order: each one
 * at its own index; names before, between and after them, and a prefix, are -1. */
static void test_find_by_name(void **state)
{
    (void)state;
    char src[8192];
    size_t at = 0;
    for (int k = 0; k < 60; k++) /* i.37, i.74, i.11, ... : 37 is prime to 100 */
        at += (size_t)snprintf(src + at, sizeof src - at, "intent i.%02d\n  match w%d\n", (k * 37) % 100, k);
    struct rules_diag d;
    struct rules *rs;
    assert_int_equal(compile(src, &d, &rs), 0);
    assert_int_equal(rules_count(rs), 60);
    for (size_t k = 0; k < 60; k++)
        assert_int_equal(rules_find(rs, rules_intent(rs, k)->name), (long)k);
    assert_int_equal(rules_find(rs, "a"), -1);
    assert_int_equal(rules_find(rs, "z"), -1);
    assert_int_equal(rules_find(rs, "i."), -1);
    assert_int_equal(rules_find(rs, "i.00x"), -1);
    assert_int_equal(rules_find(rs, "i.01"), -1); /* 1 * 37 ... never 1 in the first 60 */
    assert_int_equal(rules_find(rs, ""), -1);
    rules_unref(rs);
    rules_diag_release(&d);
}

static void test_full_intent(void **state)
{
    (void)state;
    struct rules_diag d;
    struct rules *rs;
    assert_int_equal(compile(full, &d, &rs), 0);
    assert_int_equal(d.errors, 0);
    assert_int_equal(d.warnings, 1); /* the unused concept */
    assert_string_equal(d.v[0].text, "concept 'unused' is never used");
    assert_int_equal(rules_count(rs), 2);
    assert_int_equal(rules_find(rs, "smalltalk.hello"), 1);
    assert_int_equal(rules_find(rs, "nope"), -1);
    const struct rules_intent *it = rules_intent(rs, 0);
    assert_string_equal(it->name, "order.refund_status");
    assert_string_equal(it->topic, "billing");
    assert_string_equal(rules_intent(rs, 1)->topic, "smalltalk");
    assert_int_equal(it->priority, 5);
    assert_true(it->threshold > 0.69 && it->threshold < 0.71);
    assert_true(rules_intent(rs, 1)->threshold > 0.49 && rules_intent(rs, 1)->threshold < 0.51);
    assert_int_equal(it->n_examples, 2);
    assert_string_equal(it->examples[1].text, "退款什么时候到账");
    assert_int_equal(it->examples[1].line, 12);
    assert_int_equal(it->n_patterns, 2);
    assert_int_equal(it->n_slots, 1);
    assert_string_equal(it->slots[0].ask, "Which order?");
    assert_int_equal(it->slots[0].n_asks, 1);
    assert_string_equal(it->slots[0].asks[0].text, "哪个订单？");
    assert_int_equal(it->n_replies, 3);
    assert_string_equal(it->replies[0].text, "Refunds take 3-5 days. {kb:refund-policy} # not a comment");
    /* locale choice: exact, language, default; variants in turn */
    assert_string_equal(rules_reply_pick(it->replies, it->n_replies, "zh", 0), "退款 3-5 个工作日到账。");
    assert_string_equal(rules_reply_pick(it->replies, it->n_replies, "zh", 1), "第二种说法 {order_id}");
    assert_string_equal(rules_reply_pick(it->replies, it->n_replies, "zh-hant", 0),
                        "退款 3-5 个工作日到账。");
    assert_string_equal(rules_reply_pick(it->replies, it->n_replies, "en", 0),
                        "Refunds take 3-5 days. {kb:refund-policy} # not a comment");
    /* conditions and handoffs */
    struct attr web[] = {{"channel", "web"}, {"tier", "vip"}, {"misses", "1"}};
    struct attr mail[] = {{"channel", "email"}, {"tier", "regular"}, {"misses", "0"}};
    struct attrs a_web = {web, 3}, a_mail = {mail, 3};
    assert_true(rules_cond_eval(it->when, &a_web));
    assert_false(rules_cond_eval(it->when, &a_mail));
    assert_int_equal(it->n_handoffs, 2);
    const struct rules_handoff *h = rules_handoff_for(it, &a_web);
    assert_string_equal(h->queue, "billing");
    assert_string_equal(rules_priority_name(h->priority), "high");
    assert_string_equal(rules_handoff_for(it, &a_mail)->queue, "general");
    rules_diag_release(&d);
    rules_unref(rs);
}

static const struct cond_case {
    const char *id, *cond;
    int expect_web_vip; /* channel=web tier=vip misses=2 locale=zh-hant */
} cond_cases[] = {
    {"3.1", "channel = web", 1},
    {"3.2", "channel != web", 0},
    {"3.3", "locale in (zh, zh-hant)", 1},
    {"3.4", "misses >= 2 and tier = vip", 1},
    {"3.5", "misses > 2 or tier = regular", 0},
    {"3.6", "not (channel = app or channel = email)", 1},
    {"3.7", "hours = open", 0},
    {"3.8", "misses < 10", 1},
    {"3.9", "customer.plan = \"gold plus\"", 0},
};

static void test_conditions(void **state)
{
    (void)state;
    struct attr v[] = {{"channel", "web"}, {"tier", "vip"}, {"misses", "2"}, {"locale", "zh-hant"}};
    struct attrs a = {v, 4};
    for (size_t k = 0; k < sizeof cond_cases / sizeof cond_cases[0]; k++) {
        char src[256];
        snprintf(src, sizeof src, "intent a\n  when %s\n  match x1\n  reply r\n", cond_cases[k].cond);
        struct rules_diag d;
        struct rules *rs;
        int rc = compile(src, &d, &rs);
        if (rc != 0) {
            rules_diag_print(stderr, &d);
            fail_msg("case %s does not compile", cond_cases[k].id);
        }
        int got = rules_cond_eval(rules_intent(rs, 0)->when, &a);
        if (got != cond_cases[k].expect_web_vip)
            fail_msg("case %s: %s gave %d", cond_cases[k].id, cond_cases[k].cond, got);
        rules_diag_release(&d);
        rules_unref(rs);
    }
}

/* A witness makes its condition true, whatever the shape. */
static void test_witness(void **state)
{
    (void)state;
    for (size_t k = 0; k < sizeof cond_cases / sizeof cond_cases[0]; k++) {
        char src[256];
        snprintf(src, sizeof src, "intent a\n  when %s\n  match x1\n  reply r\n", cond_cases[k].cond);
        struct rules_diag d;
        struct rules *rs;
        assert_int_equal(compile(src, &d, &rs), 0);
        struct attr v[8];
        size_t n;
        if (!rules_cond_witness(rules_intent(rs, 0)->when, v, 8, &n))
            fail_msg("case %s: no witness for %s", cond_cases[k].id, cond_cases[k].cond);
        struct attrs a = {v, n};
        assert_true(rules_cond_eval(rules_intent(rs, 0)->when, &a));
        rules_diag_release(&d);
        rules_unref(rs);
    }
    size_t n;
    assert_int_equal(rules_cond_witness(NULL, NULL, 0, &n), 1);
    assert_int_equal(n, 0);
}

static void test_warnings(void **state)
{
    (void)state;
    struct rules_diag d;
    struct rules *rs;
    const char *src = "intent a\n  match refund\n  reply x\n"
                      "intent b\n  match refund\n  reply y\n"
                      "intent c\n  regex /\\d+/\n  reply z\n";
    assert_int_equal(compile(src, &d, &rs), 0);
    int shadow = 0, nolit = 0;
    for (size_t k = 0; k < d.n; k++) {
        shadow += strstr(d.v[k].text, "pattern is shadowed: intent 'a'") != NULL && d.v[k].line == 5;
        nolit += strstr(d.v[k].text, "regex has no literal") != NULL && d.v[k].line == 8;
    }
    assert_int_equal(shadow, 1);
    assert_int_equal(nolit, 1);
    rules_diag_release(&d);
    rules_unref(rs);
}

static void test_refcount(void **state)
{
    (void)state;
    struct rules_diag d;
    struct rules *rs;
    assert_int_equal(compile(full, &d, &rs), 0);
    struct rules *again = rules_ref(rs);
    assert_ptr_equal(again, rs);
    rules_unref(rs);
    assert_string_equal(rules_intent(again, 0)->name, "order.refund_status"); /* still alive */
    rules_unref(again);
    rules_unref(NULL);
    rules_diag_release(&d);
}

/* Every allocation failure during a compile is reported, never a crash or a leak. */
static void test_alloc_failures(void **state)
{
    (void)state;
    int failures = 0, succeeded = 0;
    for (long n = 1; n < 1000 && !succeeded; n++) {
        struct rules_diag d;
        struct rules *rs = NULL;
        rules_diag_init(&d);
        kefu_alloc_fail_after(n);
        int rc = rules_load_string("t.rules", full, &d, &rs);
        kefu_alloc_fail_after(0);
        if (rc < 0) {
            failures++;
            assert_null(rs);
        } else {
            succeeded = 1; /* n passed the number of allocations a compile makes */
            assert_string_equal(rules_intent(rs, 0)->name, "order.refund_status");
        }
        rules_unref(rs);
        rules_diag_release(&d);
    }
    assert_true(succeeded);
    assert_true(failures >= 5);
}

static void test_bad_utf8_file(void **state)
{
    (void)state;
    struct rules_diag d;
    struct rules *rs;
    assert_int_equal(compile("intent a\n  reply \xff\xfe\n", &d, &rs), KEFU_ESYNTAX);
    assert_int_equal(d.v[0].line, 2);
    assert_string_equal(d.v[0].text, "invalid utf-8 on this line; rule files must be utf-8");
    rules_diag_release(&d);
}

/* Reads every bundled rule file into one string; NULL if rules/ is missing. */
static char *bundled_text(size_t *len)
{
    *len = 0;
    FILE *p = popen("cat rules/*.rules 2>/dev/null", "r");
    if (!p)
        return NULL;
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap);
    size_t r;
    while ((r = fread(buf + n, 1, cap - n - 1, p)) > 0) {
        n += r;
        if (n + 1 >= cap)
            buf = realloc(buf, cap *= 2);
    }
    pclose(p);
    buf[n] = 0;
    *len = n;
    return buf;
}

/* Mutated rule files (operators, quotes, slashes, stray bytes, cut lines)
 * compile or fail with diagnostics, and never crash or leak (ASan, valgrind). */
static void test_mutations(void **state)
{
    (void)state;
    size_t len = 0;
    char *orig = bundled_text(&len);
    assert_non_null(orig);
    assert_true(len > 1000);
    char *buf = malloc(len + 1);
    const char *slow = getenv("KEFU_SLOW");
    int rounds = slow && atoi(slow) > 1 ? 2000 / atoi(slow) : 2000;
    static const char pool[] = "~&|!()\"/\\#{}=,@ \n\t\xe9\x80\xff*+?[]^$";
    unsigned seed = 12345;
    int compiled = 0, rejected = 0;
    for (int round = 0; round < rounds; round++) {
        memcpy(buf, orig, len + 1);
        int edits = 1 + round % 8;
        for (int e = 0; e < edits; e++) {
            seed = seed * 1103515245u + 12345u;
            size_t at = (seed >> 8) % len;
            seed = seed * 1103515245u + 12345u;
            buf[at] = pool[(seed >> 8) % (sizeof pool - 1)];
        }
        if (round % 5 == 4) /* cut the text somewhere */
            buf[(seed >> 4) % len] = 0;
        struct rules_diag d;
        struct rules *rs = NULL;
        int rc = compile(buf, &d, &rs);
        if (rc == 0) {
            compiled++;
            assert_non_null(rs);
        } else {
            rejected++;
            assert_null(rs);
            assert_true(d.errors > 0);
        }
        rules_unref(rs);
        rules_diag_release(&d);
    }
    assert_int_equal(compiled + rejected, rounds);
    assert_true(rejected > 0);
    free(buf);
    free(orig);
}

static const char *fill_upper(void *ctx, const char *name)
{
    if (strcmp(name, "order_id") == 0)
        return "KF12345678";
    return strcmp(name, "gone") == 0 ? NULL : (const char *)ctx;
}

/* Reply templates: placeholders filled by the caller, braces without an
 * end kept, the buffer never overrun. */
static void test_render(void **state)
{
    char buf[64];
    assert_int_equal(rules_render("order {order_id} ships {when}.", fill_upper, "today", buf, sizeof buf),
                     29);
    assert_string_equal(buf, "order KF12345678 ships today.");
    rules_render("a{gone}b {open", fill_upper, "x", buf, sizeof buf);
    assert_string_equal(buf, "ab {open");
    char small[8];
    assert_int_equal(rules_render("{order_id} and more", fill_upper, "", small, sizeof small), 7);
    assert_string_equal(small, "KF12345");
}

/* 9.10 variants: weights, replies per variant and locale, a stable weighted draw */
static void test_variants(void **state)
{
    (void)state;
    struct rules_diag d;
    rules_diag_init(&d);
    struct rules *rs = NULL;
    assert_int_equal(rules_load_string("t.rules",
                                       "intent a\n  match refund\n  variant short 70\n  variant long 30\n"
                                       "  reply ~short Soon.\n  reply@zh ~short 很快。\n"
                                       "  reply ~long Refunds take 3-5 working days after approval.\n",
                                       &d, &rs),
                     0);
    const struct rules_intent *it = rules_intent(rs, 0);
    assert_int_equal(it->n_variants, 2);
    assert_string_equal(it->variants[0].name, "short");
    assert_int_equal(it->variants[1].weight, 30);
    assert_string_equal(rules_reply_pick_variant(it->replies, it->n_replies, "zh", "short", 0), "很快。");
    assert_string_equal(rules_reply_pick_variant(it->replies, it->n_replies, "zh", "long", 0),
                        "Refunds take 3-5 working days after approval.");
    assert_string_equal(rules_reply_pick_variant(it->replies, it->n_replies, "en", "short", 0), "Soon.");
    assert_ptr_equal(rules_variant_find(it, "long"), &it->variants[1]);
    assert_null(rules_variant_find(it, "gone"));
    int shorts = 0;
    for (int k = 0; k < 10000; k++) {
        char key[32];
        snprintf(key, sizeof key, "c%08d", k);
        const struct rules_variant *v = rules_variant_pick(it, key);
        assert_ptr_equal(v, rules_variant_pick(it, key)); /* the same conversation, the same variant */
        shorts += v == &it->variants[0];
    }
    assert_in_range(shorts, 6700, 7300); /* 70% of 10,000 */
    rules_unref(rs);
    rules_diag_release(&d);
}

/* 12. actions: the directive, `on` groups by condition text, `set`, result fields in
 * templates, the choice, and unknown names reported at the action's position */
static int known_b(void *ctx, const char *name)
{
    return strcmp(name, (const char *)ctx) == 0;
}

static void test_actions(void **state)
{
    const char *src = "intent order.status\n"
                      "  match where & order\n"
                      "  slot order_id /(kf\\d{8})/ ask \"which?\"\n"
                      "  action order_status\n"
                      "  on found = false -> reply no order {order_id}\n"
                      "  on found = false -> reply@zh 没有订单 {order_id}\n"
                      "  on order.status = shipped and tier = vip -> reply vip {order.eta}\n"
                      "  on order.status in (lost, stuck) -> handoff queue orders priority high\n"
                      "  on order.status in (lost, stuck) -> reply let me get a colleague\n"
                      "  on failed -> reply cannot look now\n"
                      "  set order_state = order.status\n"
                      "  set attr.last_status = order.status\n"
                      "  reply order {order_id} is {order.status}\n";
    struct rules_diag d;
    rules_diag_init(&d);
    struct rules *rs = NULL;
    assert_int_equal(rules_load_string("t.rules", src, &d, &rs), 0);
    assert_int_equal(d.errors, 0);
    const struct rules_intent *it = rules_intent(rs, 0);
    assert_string_equal(it->action, "order_status");
    assert_int_equal(it->action_line, 4);
    assert_int_equal(it->action_col, 10);
    assert_int_equal(it->n_ons, 6);
    assert_int_equal(it->ons[0].group, it->ons[1].group);
    assert_int_equal(it->ons[3].group, it->ons[4].group);
    assert_true(it->ons[2].group != it->ons[0].group && it->ons[3].group != it->ons[2].group);
    assert_true(it->ons[5].failed);
    assert_non_null(it->ons[3].handoff);
    assert_string_equal(it->ons[3].handoff->queue, "orders");
    assert_int_equal(it->ons[3].handoff->priority, RULES_PRIO_HIGH);
    assert_int_equal(it->n_sets, 2);
    assert_string_equal(it->sets[1].name, "attr.last_status");
    assert_string_equal(it->sets[1].field, "order.status");
    /* the first group that holds answers; conversation attributes and result fields together */
    struct attr nf[] = {{"found", "false"}};
    struct attr vip[] = {{"tier", "vip"}, {"found", "true"}, {"order.status", "shipped"}};
    struct attr reg[] = {{"tier", "regular"}, {"found", "true"}, {"order.status", "shipped"}};
    struct attr lost[] = {{"found", "true"}, {"order.status", "stuck"}};
    size_t first = 99;
    assert_int_equal(rules_on_pick(it, 0, &(struct attrs){nf, 1}, &first), it->ons[0].group);
    assert_int_equal(first, 0);
    assert_int_equal(rules_on_pick(it, 0, &(struct attrs){vip, 3}, &first), it->ons[2].group);
    assert_int_equal(rules_on_pick(it, 0, &(struct attrs){reg, 3}, NULL), -1);
    assert_int_equal(rules_on_pick(it, 0, &(struct attrs){lost, 2}, &first), it->ons[3].group);
    assert_int_equal(first, 3);
    assert_int_equal(rules_on_pick(it, 1, &(struct attrs){nf, 1}, &first), it->ons[5].group);
    /* every action must be known: the error sits at the action's name */
    assert_int_equal(rules_check_actions(rs, known_b, "order_status", &d), 0);
    assert_int_equal(rules_check_actions(rs, known_b, "refund_status", &d), 1);
    assert_int_equal(d.errors, 1);
    assert_string_equal(d.v[0].file, "t.rules");
    assert_int_equal(d.v[0].line, 4);
    assert_int_equal(d.v[0].col, 10);
    assert_string_equal(d.v[0].text, "unknown action 'order_status' (not in the actions configuration)");
    assert_non_null(strstr(d.v[0].src, "action order_status"));
    rules_diag_release(&d);
    rules_unref(rs);
    /* without an action, an unknown template name is still an error */
    rules_diag_init(&d);
    assert_int_equal(rules_load_string("t.rules", "intent a\n  match x\n  reply {order.eta}\n", &d, &rs),
                     KEFU_ESYNTAX);
    rules_diag_release(&d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_errors),        cmocka_unit_test(test_caret),
        cmocka_unit_test(test_variants),      cmocka_unit_test(test_find_by_name),
        cmocka_unit_test(test_full_intent),   cmocka_unit_test(test_conditions),
        cmocka_unit_test(test_witness),       cmocka_unit_test(test_warnings),
        cmocka_unit_test(test_refcount),      cmocka_unit_test(test_alloc_failures),
        cmocka_unit_test(test_bad_utf8_file), cmocka_unit_test(test_mutations),
        cmocka_unit_test(test_render),        cmocka_unit_test(test_actions),
    };
    return cmocka_run_group_tests_name("rules", tests, NULL, NULL);
}
