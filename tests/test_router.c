/* test_router.c — routing decisions, the prefilter, slots, limits and
 * threads, on a small rule set written here and on the bundled rules/. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "kefu.h"
#include "router.h"
#include "rules.h"

static const char *small = "concept refund = refund, money back, 退款, 退钱\n"
                           "concept when = when, how long, 什么时候, 多久, 到账\n"
                           "concept human = human, real person, agent, 人工, 真人\n"
                           "intent order.refund_status\n"
                           "  match ~refund & (~when | status)\n"
                           "  slot order_id /\\b([A-Z]{2}\\d{8})\\b/ ask \"Which order?\"\n"
                           "  reply Refunds take 3-5 days.\n"
                           "intent order.refund_request\n"
                           "  match ~refund & !~when & !status\n"
                           "  reply Tell me the order.\n"
                           "intent order.track\n"
                           "  match (where | track) & (order | package | parcel) | 物流 | 快递到哪\n"
                           "  regex /\\bwhere is my (order|package)\\b/\n"
                           "  reply Tracking is in your account.\n"
                           "intent human\n"
                           "  priority 50\n"
                           "  match ~human | talk to someone | 转人工\n"
                           "  handoff queue general\n"
                           "intent smalltalk.hello\n"
                           "  match hello | hi | 你好\n"
                           "  reply Hello!\n"
                           "intent vip.only\n"
                           "  when tier = vip\n"
                           "  match gold lounge\n"
                           "  reply Welcome to the lounge.\n"
                           "intent invoice\n"
                           "  match 发票 | invoice | receipt\n"
                           "  reply Invoices are in your account.\n";

struct fixture {
    struct rules *rs;
    struct router_scratch *sc;
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof *f);
    struct rules_diag d;
    rules_diag_init(&d);
    if (rules_load_string("small.rules", small, &d, &f->rs) != 0) {
        rules_diag_print(stderr, &d);
        return -1;
    }
    rules_diag_release(&d);
    f->sc = router_scratch_create();
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    router_scratch_free(f->sc);
    rules_unref(f->rs);
    free(f);
    return 0;
}

/* Returns the top intent's name for text, or NULL. */
static const char *top(struct fixture *f, const char *text, const struct attrs *a, double *conf)
{
    struct router_result r;
    int rc = router_match(f->rs, f->sc, text, strlen(text), a, NULL, &r);
    assert_int_equal(rc, 0);
    if (conf)
        *conf = r.n ? r.cand[0].confidence : 0;
    return r.n ? rules_intent(f->rs, r.cand[0].intent)->name : NULL;
}

static const struct route_case {
    const char *id, *text, *intent;
} route_cases[] = {
    {"1.1", "where is my refund? when does it arrive", "order.refund_status"},
    {"1.2", "退款什么时候到账", "order.refund_status"},
    {"1.3", "退款什麼時候到賬", "order.refund_status"},          /* traditional */
    {"1.4", "ＲＥＦＵＮＤ ＳＴＡＴＵＳ", "order.refund_status"}, /* full-width */
    {"1.5", "Refunded yet? what's the status", "order.refund_status"},
    {"1.6", "I want my money back", "order.refund_request"},
    {"1.7", "我要退款", "order.refund_request"},
    {"1.8", "where is my order", "order.track"},
    {"1.9", "Where is my package??", "order.track"},
    {"1.10", "我的快递到哪了，物流没更新", "order.track"},
    {"1.11", "tracking my parcels please", "order.track"}, /* stems: tracking→track, parcels→parcel */
    {"2.1", "let me talk to a human", "human"},
    {"2.2", "转人工", "human"},
    {"2.3", "refund now or give me an agent", "human"}, /* priority beats the refund intent */
    {"2.4", "真人客服", "human"},
    {"3.1", "hi", "smalltalk.hello"},
    {"3.2", "你好", "smalltalk.hello"},
    {"3.3", "this is a hit song", NULL}, /* 'hi' and 'hit' are different words */
    {"3.4", "我要开发票", "invoice"},
    {"3.5", "我要開發票", "invoice"},
    {"3.6", "the weather is nice today", NULL},
    {"3.7", "", NULL},
    {"3.8", "   ?!  ", NULL},
    {"3.9", "gold lounge", NULL}, /* 'when tier = vip' does not hold without attributes */
    {"3.10", "my receipts", "invoice"},
};

static void test_routes(void **state)
{
    struct fixture *f = *state;
    for (size_t k = 0; k < sizeof route_cases / sizeof route_cases[0]; k++) {
        const struct route_case *c = &route_cases[k];
        const char *got = top(f, c->text, NULL, NULL);
        if ((got == NULL) != (c->intent == NULL) || (got && strcmp(got, c->intent) != 0))
            fail_msg("case %s '%s': want %s, got %s", c->id, c->text, c->intent ? c->intent : "(none)",
                     got ? got : "(none)");
    }
}

static void test_conditions_and_confidence(void **state)
{
    struct fixture *f = *state;
    struct attr vip[] = {{"tier", "vip"}};
    struct attrs a = {vip, 1};
    assert_string_equal(top(f, "gold lounge", &a, NULL), "vip.only");
    struct router_result r;
    assert_int_equal(router_match(f->rs, f->sc, "gold lounge", 11, NULL, NULL, &r), 0);
    assert_int_equal(r.n, 0);
    assert_int_equal(r.n_skipped, 1);
    struct router_opts assume = {rules_find(f->rs, "vip.only")};
    assert_int_equal(router_match(f->rs, f->sc, "gold lounge", 11, NULL, &assume, &r), 0);
    assert_int_equal(r.n, 1);
    /* a fully covered message scores 1.0; one word in a long sentence much less */
    double full, part;
    top(f, "invoice", NULL, &full);
    top(f, "yesterday I bought three shirts and a lamp and now I need the invoice for my company", NULL,
        &part);
    assert_true(full > 0.999);
    assert_true(part > 0.6 && part < 0.8);
}

static void test_explain(void **state)
{
    struct fixture *f = *state;
    struct router_result r;
    const char *msg = "When will my REFUND arrive?";
    assert_int_equal(router_match(f->rs, f->sc, msg, strlen(msg), NULL, NULL, &r), 0);
    assert_string_equal(r.norm, "when will my refund arrive?");
    assert_true(r.n >= 1);
    const struct router_cand *c = &r.cand[0];
    assert_string_equal(rules_intent(f->rs, c->intent)->name, "order.refund_status");
    assert_int_equal(c->line, 5);
    assert_int_equal(c->n_hits, 2);
    int saw_refund = 0, saw_when = 0;
    for (size_t h = 0; h < c->n_hits; h++) {
        size_t n = c->hits[h].end - c->hits[h].start;
        saw_refund |= n == 6 && memcmp(r.norm + c->hits[h].start, "refund", 6) == 0;
        saw_when |= n == 4 && memcmp(r.norm + c->hits[h].start, "when", 4) == 0;
    }
    assert_true(saw_refund && saw_when);
    assert_true(r.literals_found >= 2);
}

static void test_slots(void **state)
{
    struct fixture *f = *state;
    struct router_result r;
    const char *msg = "refund status for ＫＦ12345678 please";
    assert_int_equal(router_match(f->rs, f->sc, msg, strlen(msg), NULL, NULL, &r), 0);
    assert_true(r.n >= 1);
    struct router_slot s[4];
    size_t n;
    assert_int_equal(router_slots(f->rs, f->sc, r.cand[0].intent, msg, strlen(msg), s, 4, &n), 0);
    assert_int_equal(n, 1);
    assert_string_equal(s[0].name, "order_id");
    assert_string_equal(s[0].value, "KF12345678"); /* case kept, full-width folded */
    const char *none = "refund status please";
    assert_int_equal(router_match(f->rs, f->sc, none, strlen(none), NULL, NULL, &r), 0);
    assert_int_equal(router_slots(f->rs, f->sc, r.cand[0].intent, none, strlen(none), s, 4, &n), 0);
    assert_int_equal(n, 0);
}

static void test_invalid_utf8(void **state)
{
    struct fixture *f = *state;
    struct router_result r;
    assert_int_equal(router_match(f->rs, f->sc, "refund \xc0\xaf", 9, NULL, NULL, &r), KEFU_EUTF8);
    assert_int_equal(r.n, 0);
    /* and the scratch still works afterwards */
    assert_string_equal(top(f, "转人工", NULL, NULL), "human");
}

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* Slow builds (valgrind) stretch the time bounds by KEFU_SLOW. */
static double slow_factor(void)
{
    const char *s = getenv("KEFU_SLOW");
    return s ? atof(s) : 1.0;
}

/* A regex that backtracks polynomially is stopped by the match limit. */
static void test_regex_limit(void **state)
{
    (void)state;
    struct rules_diag d;
    struct rules *rs;
    rules_diag_init(&d);
    assert_int_equal(rules_load_string("l.rules",
                                       "intent slow\n  regex /aaa.*a.*a.*a.*a.*a.*a.*(b|c)/\n  reply x\n", &d,
                                       &rs),
                     0);
    struct router_scratch *sc = router_scratch_create();
    char msg[4096];
    memset(msg, 'a', sizeof msg - 1);
    msg[sizeof msg - 1] = 0;
    struct router_result r;
    double t0 = now_ms();
    assert_int_equal(router_match(rs, sc, msg, strlen(msg), NULL, NULL, &r), 0);
    double ms = now_ms() - t0;
    assert_int_equal(r.n, 0);
    assert_int_equal(r.limit_hits, 1);
    assert_true(ms < 50 * slow_factor());
    router_scratch_free(sc);
    rules_unref(rs);
    rules_diag_release(&d);
}

/* With thousands of intents, a message only evaluates the patterns whose words it has. */
static void test_prefilter_scales(void **state)
{
    (void)state;
    size_t cap = 1 << 20, n = 0;
    char *src = malloc(cap);
    for (int i = 0; i < 5000; i++)
        n += (size_t)snprintf(
            src + n, cap - n,
            "intent gen.i%d\n  match product%d & (price | cost)\n  regex /\\bsku%d\\b/\n  reply r\n", i, i,
            i);
    struct rules_diag d;
    struct rules *rs;
    rules_diag_init(&d);
    assert_int_equal(rules_load_string("gen.rules", src, &d, &rs), 0);
    struct router_scratch *sc = router_scratch_create();
    struct router_result r;
    const char *msg = "what is the price of product4242 and sku17";
    assert_int_equal(router_match(rs, sc, msg, strlen(msg), NULL, NULL, &r), 0);
    assert_int_equal(r.n, 2);
    assert_true(r.patterns_tried <= 4);
    assert_string_equal(rules_intent(rs, r.cand[0].intent)->name, "gen.i4242");
    assert_string_equal(rules_intent(rs, r.cand[1].intent)->name, "gen.i17");
    router_scratch_free(sc);
    rules_unref(rs);
    rules_diag_release(&d);
    free(src);
}

/* Bundled rules: variants in simplified, traditional and full-width route alike. */
static const char *const variants[][3] = {
    {"我的订单到哪里了", "我的訂單到哪裡了", "我的订单到哪里了？"},
    {"退款什么时候到账", "退款什麼時候到賬", "退款什么时候到账！"},
    {"怎么开发票", "怎麼開發票", "怎么开发票？"},
    {"我要转人工", "我要轉人工", "我要转人工!"},
    {"优惠券用不了", "優惠券用不了", "优惠券用不了。"},
    {"忘记密码了怎么办", "忘記密碼了怎麼辦", "忘记密码了怎么办？"},
    {"where is my order", "WHERE IS MY ORDER", "ｗｈｅｒｅ　ｉｓ　ｍｙ　ｏｒｄｅｒ"},
    {"I want to return this item", "I WANT TO RETURN THIS ITEM",
     "Ｉ ｗａｎｔ ｔｏ ｒｅｔｕｒｎ ｔｈｉｓ ｉｔｅｍ"},
    {"can I get an invoice", "Can I get an INVOICE?", "ｃａｎ Ｉ ｇｅｔ ａｎ ｉｎｖｏｉｃｅ？"},
};

static void test_bundled_variants(void **state)
{
    (void)state;
    struct rules_diag d;
    struct rules *rs;
    rules_diag_init(&d);
    int rc = rules_load_dir("rules", &d, &rs);
    if (rc != 0)
        rules_diag_print(stderr, &d);
    assert_int_equal(rc, 0);
    struct router_scratch *sc = router_scratch_create();
    for (size_t k = 0; k < sizeof variants / sizeof variants[0]; k++) {
        long first = -1;
        for (int v = 0; v < 3; v++) {
            struct router_result r;
            assert_int_equal(router_match(rs, sc, variants[k][v], strlen(variants[k][v]), NULL, NULL, &r), 0);
            if (r.n == 0)
                fail_msg("variant %zu.%d '%s' routes nowhere", k, v, variants[k][v]);
            if (v == 0)
                first = r.cand[0].intent;
            else if ((long)r.cand[0].intent != first)
                fail_msg("variant %zu.%d '%s' routes to %s, not %s", k, v, variants[k][v],
                         rules_intent(rs, r.cand[0].intent)->name, rules_intent(rs, (size_t)first)->name);
        }
    }
    /* a 4 KiB adversarial message: mixed scripts, regex bait, repeated keywords */
    char msg[4097];
    size_t n = 0;
    const char *bits[] = {"退款",          "refund ",      "aaaa",         "((((",
                          "订单KF1234567", "\xe2\x80\x8b", "ｒｅｆｕｎｄ", "where is my "};
    for (int i = 0; n + 16 < sizeof msg; i++) {
        size_t l = strlen(bits[i % 8]);
        memcpy(msg + n, bits[i % 8], l);
        n += l;
    }
    msg[n] = 0;
    struct router_result r;
    double best = 1e9;
    for (int rep = 0; rep < 5; rep++) {
        double t0 = now_ms();
        assert_int_equal(router_match(rs, sc, msg, n, NULL, NULL, &r), 0);
        double ms = now_ms() - t0;
        if (ms < best)
            best = ms;
    }
    assert_true(best < 10 * slow_factor());
    router_scratch_free(sc);
    rules_unref(rs);
    rules_diag_release(&d);
}

struct thread_arg {
    struct rules *rs;
    int mismatches;
};

static void *route_loop(void *p)
{
    struct thread_arg *a = p;
    struct router_scratch *sc = router_scratch_create();
    for (int i = 0; i < 2000; i++) {
        struct router_result r;
        const char *m = i % 2 ? "退款什么时候到账" : "let me talk to a human";
        const char *want = i % 2 ? "order.refund_status" : "human";
        if (router_match(a->rs, sc, m, strlen(m), NULL, NULL, &r) != 0 || r.n == 0 ||
            strcmp(rules_intent(a->rs, r.cand[0].intent)->name, want) != 0)
            a->mismatches++;
    }
    router_scratch_free(sc);
    rules_unref(a->rs);
    return NULL;
}

/* Two threads share one rule set, each with its own scratch; the set outlives both. */
static void test_threads(void **state)
{
    struct fixture *f = *state;
    pthread_t t[2];
    struct thread_arg args[2];
    for (int k = 0; k < 2; k++) {
        args[k] = (struct thread_arg){rules_ref(f->rs), 0};
        assert_int_equal(pthread_create(&t[k], NULL, route_loop, &args[k]), 0);
    }
    for (int k = 0; k < 2; k++) {
        pthread_join(t[k], NULL);
        assert_int_equal(args[k].mismatches, 0);
    }
}

/* The prefilter never hides a regex match: for every pattern and message,
 * the router fires exactly when PCRE2 alone matches the normalized text. */
static const char *const prop_patterns[] = {
    "\\brefund(ed)?\\b.*\\b(yet|status)\\b",
    "^\\s*(?:reset|change)\\s+my\\s+password[\\s.,!?;:]*$",
    "^\\s*where\\s+is\\s+my\\s+(.+?)\\s+order[\\s.,!?;:]*$",
    "(track|trace)(ing)? (my )?(order|parcel)s?",
    "colou?r",
    "ab+c d{2,}e",
    "(?:退款|退钱)(?:什么时候|多久)",
    "订单\\s*号?\\s*(kf\\d{8})",
    "\\bkf\\d{8}\\b",
    "x*y?z+ well",
    "(?i)Mixed CASE",
    "(?x) spaced \\  out # comment",
    "[abc]def|ghi[jk]",
    "a\\.b\\-c\\/d",
    "\\Qa.b\\E and more",
    "caf\u00e9|\u00c9cole",
    "(?<=pre)fix",
    "(?:one|two|three){2}",
    "pay(ment)?s? (fail|declin)",
    "^$",
    "\\bhi\\b",
    "(好|坏)评",
};

static const char *const prop_messages[] = {"where is my refund, refunded yet?",
                                            "my refund status",
                                            "reset my password",
                                            "Change my password!!",
                                            "where is my blue order",
                                            "where is my order",
                                            "tracking my orders",
                                            "trace parcel",
                                            "the color is nice",
                                            "the colour is nice",
                                            "abbbc dddde",
                                            "abc dde",
                                            "退款什么时候到账",
                                            "退钱多久",
                                            "我的订单号 KF12345678",
                                            "订单KF12345678",
                                            "kf1234567",
                                            "zzz well",
                                            "y well",
                                            "MIXED case",
                                            "spaced out",
                                            "adef",
                                            "ghik",
                                            "a.b-c/d",
                                            "a.b and more",
                                            "CAFÉ",
                                            "école",
                                            "prefix",
                                            "fix",
                                            "onetwo",
                                            "one two",
                                            "payments failing",
                                            "payment declined",
                                            "",
                                            "hi there",
                                            "this",
                                            "好评",
                                            "差评",
                                            "ＲＥＦＵＮＤ ｓｔａｔｕｓ",
                                            "退款什麼時候到賬"};

static void test_prefilter_is_exact(void **state)
{
    (void)state;
    struct router_scratch *sc = router_scratch_create();
    size_t checked = 0, fired = 0;
    for (size_t p = 0; p < sizeof prop_patterns / sizeof prop_patterns[0]; p++) {
        char src[512];
        snprintf(src, sizeof src, "intent t\n  regex /%s/\n  reply x\n", prop_patterns[p]);
        struct rules_diag d;
        struct rules *rs;
        rules_diag_init(&d);
        if (rules_load_string("p.rules", src, &d, &rs) != 0) {
            rules_diag_print(stderr, &d);
            fail_msg("pattern %zu does not compile", p);
        }
        int err;
        PCRE2_SIZE eoff;
        pcre2_code *re = pcre2_compile((PCRE2_SPTR)prop_patterns[p], PCRE2_ZERO_TERMINATED,
                                       PCRE2_UTF | PCRE2_CASELESS, &err, &eoff, NULL);
        assert_non_null(re);
        pcre2_match_data *md = pcre2_match_data_create_from_pattern(re, NULL);
        for (size_t m = 0; m < sizeof prop_messages / sizeof prop_messages[0]; m++) {
            struct router_result r;
            const char *msg = prop_messages[m];
            assert_int_equal(router_match(rs, sc, msg, strlen(msg), NULL, NULL, &r), 0);
            int direct = pcre2_match(re, (PCRE2_SPTR)r.norm, r.norm_len, 0, 0, md, NULL) >= 0;
            if (direct != (r.n > 0))
                fail_msg("pattern /%s/ on '%s' (normalized '%s'): pcre2 %d, router %d", prop_patterns[p], msg,
                         r.norm, direct, (int)r.n);
            checked++;
            fired += direct;
        }
        pcre2_match_data_free(md);
        pcre2_code_free(re);
        rules_unref(rs);
        rules_diag_release(&d);
    }
    assert_true(fired > 30); /* the table really exercises matches, not only misses */
    assert_true(checked > 800);
    router_scratch_free(sc);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_routes),       cmocka_unit_test(test_conditions_and_confidence),
        cmocka_unit_test(test_explain),      cmocka_unit_test(test_slots),
        cmocka_unit_test(test_invalid_utf8), cmocka_unit_test(test_threads),
    };
    const struct CMUnitTest standalone[] = {
        cmocka_unit_test(test_regex_limit),
        cmocka_unit_test(test_prefilter_scales),
        cmocka_unit_test(test_bundled_variants),
        cmocka_unit_test(test_prefilter_is_exact),
    };
    int failed = cmocka_run_group_tests_name("router", tests, setup, teardown);
    failed += cmocka_run_group_tests_name("router_scale", standalone, NULL, NULL);
    return failed;
}
