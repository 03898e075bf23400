/* test_decide.c — the decision policy: each stage on a small rule set and
 * a small in-memory knowledge base written here, the policy alone on
 * hand-made stage results (thresholds, per-intent thresholds, clarify),
 * locales and labels, invalid text and allocation failures. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "decide.h"
#include "kb.h"
#include "kefu.h"

static const char *small = "intent order.track\n"
                           "  example where is my parcel\n"
                           "  match (where | track) & (order | package)\n"
                           "  reply Tracking is in your account. {kb:shipping}\n"
                           "  reply@zh 物流信息在您的账户里。\n"
                           "intent human\n"
                           "  match talk to a person | 转人工\n"
                           "  handoff queue general priority high\n"
                           "intent card.lost\n"
                           "  example i lost my credit card\n"
                           "  example 我的信用卡丢了\n"
                           "  reply Block the card in the app.\n"
                           "intent card.strict\n"
                           "  threshold 0.99\n"
                           "  example my card got swallowed by the cash machine\n"
                           "  reply We will send a new card.\n"
                           "intent balance\n"
                           "  example show my account balance\n"
                           "  reply Your balance is on the home screen.\n";

static const char *const articles[][2] = {
    {"shipping", "id: shipping\nlocale: en\ntitle: Shipping times\nquestion: How long does delivery take?\n\n"
                 "Parcels arrive within three working days; express delivery takes one day.\n"},
    {"returns",
     "id: returns\nlocale: en\ntitle: Returning an item\nquestion: How do I send something back?\n\n"
     "Start a return in your orders within seven days of receiving the item.\n"},
    {"invoices", "id: invoices\nlocale: en\ntitle: Invoices\nquestion: Where is my invoice?\n\n"
                 "Every order has an invoice you can download as a PDF.\n"},
};

struct fixture {
    struct rules *rs;
    struct router_scratch *sc;
    struct kb_examples *ex;
    struct kb *kb;
    struct decide_ctx c;
};

/* Writes the articles into a temporary directory and imports them. */
static int import_articles(struct kb *kb)
{
    char dir[] = "/tmp/kefu-test-decide-XXXXXX", sub[64], path[3][96];
    size_t n = sizeof articles / sizeof articles[0];
    if (!mkdtemp(dir))
        return -1;
    snprintf(sub, sizeof sub, "%s/en", dir);
    if (mkdir(sub, 0700) != 0)
        return -1;
    for (size_t k = 0; k < n; k++) {
        snprintf(path[k], sizeof path[k], "%s/%s.md", sub, articles[k][0]);
        FILE *f = fopen(path[k], "w");
        if (!f)
            return -1;
        fputs(articles[k][1], f);
        fclose(f);
    }
    struct rules_diag d;
    rules_diag_init(&d);
    struct kb_import_stats st;
    int rc = kb_import(kb, dir, &d, NULL, NULL, &st);
    rules_diag_print(stderr, &d);
    rules_diag_release(&d);
    for (size_t k = 0; k < n; k++)
        unlink(path[k]);
    rmdir(sub);
    rmdir(dir);
    return rc == 0 && st.added == n ? 0 : -1;
}

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof *f);
    *state = f;
    struct rules_diag d;
    rules_diag_init(&d);
    if (rules_load_string("small.rules", small, &d, &f->rs) != 0) {
        rules_diag_print(stderr, &d);
        return -1;
    }
    rules_diag_release(&d);
    f->sc = router_scratch_create();
    if (kb_examples_build(f->rs, &f->ex) != 0 || kb_open(":memory:", 0, &f->kb) != 0 ||
        import_articles(f->kb) != 0) {
        fprintf(stderr, "cannot build the examples index or the knowledge base\n");
        return -1;
    }
    f->c = (struct decide_ctx){.rs = f->rs, .sc = f->sc, .ex = f->ex, .kb = f->kb};
    decide_policy_default(&f->c.policy);
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    kb_close(f->kb);
    kb_examples_free(f->ex);
    router_scratch_free(f->sc);
    rules_unref(f->rs);
    free(f);
    return 0;
}

static const struct attr en_v[] = {{"locale", "en"}}, zh_v[] = {{"locale", "zh"}};
static const struct attrs en = {en_v, 1}, zh = {zh_v, 1};

/* Decides text and returns the decision in *d. */
static void decide(struct fixture *f, const char *text, const struct attrs *a, struct decision *d)
{
    assert_int_equal(decide_message(&f->c, text, strlen(text), a, d), 0);
}

static const char *intent_name(struct fixture *f, const struct decision *d)
{
    return d->intent >= 0 ? rules_intent(f->rs, (size_t)d->intent)->name : "(none)";
}

/* 1.x — the rule stage answers first, with the locale's reply or a handoff. */
static void test_rule_stage(void **state)
{
    struct fixture *f = *state;
    struct decision d;
    decide(f, "where is my order", &en, &d);
    assert_string_equal(decide_source_name(d.source), "rule");
    assert_string_equal(intent_name(f, &d), "order.track");
    assert_int_equal(d.stage, DECIDE_RULE);
    assert_true(d.confidence >= 0.6);
    assert_string_equal(d.reply, "Tracking is in your account. {kb:shipping}");
    assert_int_equal(d.votes.n, 0); /* later stages do not run once a rule answered */
    assert_int_equal(d.kb.n, 0);
    decide(f, "where is my order", &zh, &d);
    assert_string_equal(d.reply, "物流信息在您的账户里。");
    decide(f, "我要转人工", &zh, &d);
    assert_int_equal(d.source, DECIDE_HANDOFF);
    assert_non_null(d.handoff);
    assert_string_equal(d.handoff->queue, "general");
    assert_int_equal(d.handoff->priority, RULES_PRIO_HIGH);
}

/* 2.x — an example-only intent is reached through its examples, in both
 * scripts; without the examples index the stage is skipped. */
static void test_example_stage(void **state)
{
    struct fixture *f = *state;
    struct decision d;
    decide(f, "I lost my credit card", &en, &d);
    assert_int_equal(d.source, DECIDE_EXAMPLE);
    assert_string_equal(intent_name(f, &d), "card.lost");
    assert_string_equal(d.reply, "Block the card in the app.");
    assert_true(d.confidence >= f->c.policy.example_min);
    assert_true(d.votes.n >= 1);
    decide(f, "我的信用卡丢了", &zh, &d);
    assert_int_equal(d.source, DECIDE_EXAMPLE);
    assert_string_equal(intent_name(f, &d), "card.lost");
    f->c.ex = NULL;
    decide(f, "I lost my credit card", &en, &d);
    assert_int_not_equal(d.source, DECIDE_EXAMPLE);
    assert_int_equal(d.votes.n, 0);
    f->c.ex = f->ex;
    f->c.policy.use_examples = 0;
    decide(f, "I lost my credit card", &en, &d);
    assert_int_not_equal(d.source, DECIDE_EXAMPLE);
    f->c.policy.use_examples = 1;
}

/* 2.3 — an intent's own higher threshold applies to its example vote too. */
static void test_example_own_threshold(void **state)
{
    struct fixture *f = *state;
    struct decision d;
    f->c.policy.all_stages = 1;
    decide(f, "my card got swallowed by the cash machine", &en, &d);
    f->c.policy.all_stages = 0;
    assert_true(d.votes.n >= 1);
    assert_string_equal(rules_intent(f->rs, d.votes.v[0].intent)->name, "card.strict");
    int found = 0;
    for (size_t k = 0; k < d.n_cand; k++)
        if (d.cand[k].stage == DECIDE_EXAMPLE && strcmp(d.cand[k].name, "card.strict") == 0)
            found = 1, assert_true(d.cand[k].threshold > 0.98);
    assert_true(found);
    if (d.votes.v[0].confidence < 0.99)
        assert_int_not_equal(d.source, DECIDE_EXAMPLE);
}

/* 3.x — articles answer when rules and examples do not; no kb, no stage. */
static void test_kb_stage(void **state)
{
    struct fixture *f = *state;
    struct decision d;
    f->c.policy.kb_min = 0.01;
    decide(f, "how long does delivery take", &en, &d);
    assert_int_equal(d.source, DECIDE_KB);
    assert_int_equal(d.stage, DECIDE_KB);
    assert_string_equal(d.article.id, "shipping");
    assert_string_equal(d.article.title, "Shipping times");
    assert_int_equal(d.intent, -1);
    f->c.kb = NULL;
    decide(f, "how long does delivery take", &en, &d);
    assert_int_equal(d.source, DECIDE_FALLBACK);
    assert_int_equal(d.kb.n, 0);
    f->c.kb = f->kb;
    decide_policy_default(&f->c.policy);
}

/* 4.x — nothing near at all falls back with confidence 0. */
static void test_fallback(void **state)
{
    struct fixture *f = *state;
    struct decision d;
    decide(f, "zzz qqq", &en, &d);
    assert_int_equal(d.source, DECIDE_FALLBACK);
    assert_int_equal(d.intent, -1);
    assert_int_equal(d.n_cand, 0);
    assert_true(d.confidence == 0);
    assert_int_equal(decide_message(&f->c, "bad \xff", 5, &en, &d), KEFU_EUTF8);
}

/* A decision with two example votes and nothing else, as a stage would leave it. */
static void two_votes(struct fixture *f, struct decision *d, double a, double b)
{
    memset(d, 0, sizeof *d);
    d->votes.n = 2;
    d->votes.v[0] = (struct kb_vote){(unsigned)rules_find(f->rs, "card.lost"), 3, a, "i lost my credit card"};
    d->votes.v[1] = (struct kb_vote){(unsigned)rules_find(f->rs, "balance"), 2, b, "show my account balance"};
}

/* 5.x — the policy alone: thresholds, clarify, and its limits. */
static void test_policy_clarify(void **state)
{
    struct fixture *f = *state;
    struct decision d;
    static const struct policy_case {
        const char *id;
        double a, b;
        int source;
    } cases[] = {
        {"5.1", 0.90, 0.20, DECIDE_EXAMPLE},  /* above example_min, leads by 0.70 */
        {"5.2", 0.60, 0.46, DECIDE_EXAMPLE},  /* leads by 0.14 */
        {"5.3", 0.60, 0.55, DECIDE_CLARIFY},  /* too close to choose, both above clarify_min */
        {"5.4", 0.35, 0.25, DECIDE_FALLBACK}, /* too close, and the second too weak to offer */
        {"5.5", 0.09, 0.01, DECIDE_FALLBACK}, /* below example_min */
        {"5.6", 0.30, 0.29, DECIDE_FALLBACK}, /* both weak */
    };
    f->c.policy.example_min = 0.10;
    f->c.policy.example_lead = 0.13;
    f->c.policy.clarify_min = 0.30;
    f->c.policy.clarify_gap = 0.13;
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        two_votes(f, &d, cases[k].a, cases[k].b);
        decide_apply(&f->c, &en, &d);
        if (d.source != cases[k].source)
            fail_msg("case %s: source %s, want %s", cases[k].id, decide_source_name(d.source),
                     decide_source_name(cases[k].source));
    }
    two_votes(f, &d, 0.70, 0.65);
    decide_apply(&f->c, &en, &d);
    assert_int_equal(d.source, DECIDE_CLARIFY);
    assert_true(decide_example_lead(&d) > 0.049 && decide_example_lead(&d) < 0.051);
    assert_string_equal(d.clarify[0].name, "card.lost");
    assert_string_equal(d.clarify[1].name, "balance");
    assert_string_equal(decide_label(f->rs, &d.clarify[0], "en"), "i lost my credit card");
    assert_string_equal(decide_label(f->rs, &d.clarify[0], "zh"), "我的信用卡丢了");
    assert_string_equal(decide_label(f->rs, &d.clarify[1], "zh"),
                        "balance"); /* no Chinese example: the name */
    assert_true(d.confidence == 0.70);
    /* the same stage results, a smaller lead needed: now it answers */
    f->c.policy.example_lead = 0.04;
    decide_apply(&f->c, &en, &d);
    assert_int_equal(d.source, DECIDE_EXAMPLE);
    assert_string_equal(intent_name(f, &d), "card.lost");
    decide_policy_default(&f->c.policy);
}

/* 5.6 — a rule candidate and an example vote for the same intent are one
 * answer, not two close candidates. */
static void test_policy_same_target(void **state)
{
    struct fixture *f = *state;
    struct decision d;
    two_votes(f, &d, 0.70, 0.20);
    d.votes.v[1].intent = d.votes.v[0].intent;
    d.votes.v[1].confidence = 0.69;
    decide_apply(&f->c, &en, &d);
    assert_int_equal(d.source, DECIDE_FALLBACK);
    assert_true(d.confidence == 0.70);
}

/* 5.7 — two articles with close scores are not an answer but a question;
 * a clear lead answers. */
static void test_policy_kb_lead(void **state)
{
    struct fixture *f = *state;
    struct decision d;
    memset(&d, 0, sizeof d);
    d.kb.n = 2;
    d.kb.confidence = 0.9;
    d.kb.hit[0] = (struct kb_hit){.id = "returns", .locale = "en", .title = "Returns", .score = 10};
    d.kb.hit[1] = (struct kb_hit){.id = "refunds", .locale = "en", .title = "Refunds", .score = 9};
    decide_apply(&f->c, &en, &d);
    assert_int_equal(d.source, DECIDE_CLARIFY);
    assert_true(decide_kb_lead(&d) > 0.099 && decide_kb_lead(&d) < 0.101);
    assert_string_equal(decide_label(f->rs, &d.clarify[0], "en"), "Returns");
    assert_string_equal(decide_label(f->rs, &d.clarify[1], "en"), "Refunds");
    d.kb.hit[1].score = 5;
    decide_apply(&f->c, &en, &d);
    assert_int_equal(d.source, DECIDE_KB);
    assert_string_equal(d.article.id, "returns");
    f->c.policy.use_kb = 0;
    decide_apply(&f->c, &en, &d);
    assert_int_equal(d.source, DECIDE_FALLBACK);
    assert_int_equal(d.n_cand, 0);
    decide_policy_default(&f->c.policy);
}

/* 6.x — every stage with all_stages: candidates of each stage are kept. */
static void test_all_stages(void **state)
{
    struct fixture *f = *state;
    struct decision d;
    f->c.policy.all_stages = 1;
    decide(f, "where is my package", &en, &d);
    f->c.policy.all_stages = 0;
    int stages[4] = {0};
    for (size_t k = 0; k < d.n_cand; k++)
        stages[d.cand[k].stage]++;
    assert_int_equal(d.source, DECIDE_RULE);
    assert_true(stages[DECIDE_RULE] >= 1);
    assert_true(stages[DECIDE_EXAMPLE] >= 1);
    assert_true(d.votes.n >= 1);
}

static void test_locale_and_names(void **state)
{
    (void)state;
    static const char *const names[] = {"fallback", "rule", "example", "kb", "clarify", "handoff"};
    for (int s = 0; s <= DECIDE_HANDOFF; s++)
        assert_string_equal(decide_source_name(s), names[s]);
    assert_string_equal(decide_source_name(99), "fallback");
}

/* 7.x — a failing allocation anywhere gives an error code, never a crash
 * or a leak (ASan and valgrind check the latter). */
static void test_alloc_failures(void **state)
{
    struct fixture *f = *state;
    struct decision d;
    int failed = 0;
    for (long n = 1; n < 400; n++) {
        kefu_alloc_fail_after(n);
        int rc = decide_message(&f->c, "how long does delivery take", 27, &en, &d);
        kefu_alloc_fail_after(0);
        assert_true(rc == 0 || rc == KEFU_ENOMEM || rc == KEFU_EIO);
        failed += rc != 0;
    }
    (void)failed;
    decide(f, "I lost my credit card", &en, &d);
    assert_int_equal(d.source, DECIDE_EXAMPLE);
}

/* The classifier stage: it answers above its threshold only, and a rule
 * firing on one known word inside noise is vetoed. */
static const char *clf_rules = "intent account.password\n"
                               "  example i forgot my password\n"
                               "  example reset my password please\n"
                               "  example cannot sign in, password is wrong\n"
                               "  match passwd | password\n"
                               "  reply Use forgot password.\n"
                               "intent order.track\n"
                               "  example where is my parcel\n"
                               "  example track my order\n"
                               "  example has my package shipped\n"
                               "  reply See your orders.\n"
                               "intent card.lost\n"
                               "  example i lost my credit card\n"
                               "  example my card was stolen\n"
                               "  reply Block the card.\n";

static void test_classifier_stage(void **state)
{
    struct rules_diag dg;
    rules_diag_init(&dg);
    struct rules *rs = NULL;
    assert_int_equal(rules_load_string("clf.rules", clf_rules, &dg, &rs), 0);
    rules_diag_release(&dg);
    struct classify_opts o;
    classify_opts_default(&o);
    struct classify *m = NULL;
    assert_int_equal(classify_build(rs, &o, &m, NULL), 0);
    struct router_scratch *sc = router_scratch_create();
    struct decide_ctx c = {.rs = rs, .sc = sc, .clf = m};
    decide_policy_default(&c.policy);
    struct decision d;
    const char *msg = "where is my parcel";
    assert_int_equal(decide_message(&c, msg, strlen(msg), &en, &d), 0);
    assert_int_equal(d.stage, DECIDE_CLASSIFIER);
    assert_int_equal(d.source, DECIDE_EXAMPLE);
    assert_string_equal(rules_intent(rs, (size_t)d.intent)->name, "order.track");
    double p = d.confidence;
    assert_true(p >= c.policy.classify_min);
    /* just above its probability: the classifier must not answer */
    c.policy.classify_min = p + 0.01;
    assert_int_equal(decide_message(&c, msg, strlen(msg), &en, &d), 0);
    assert_int_not_equal(d.stage, DECIDE_CLASSIFIER);
    assert_int_equal(d.source, DECIDE_FALLBACK);
    decide_policy_default(&c.policy);
    /* one keyword inside noise: the rule fires, the classifier vetoes it (three classes
     * share the prior, so the veto level is raised above a third here) */
    c.policy.veto_max = 0.45;
    const char *noise = "../../../../etc/passwd?zqxv=wkpl&mmzt=brrk";
    assert_int_equal(decide_message(&c, noise, strlen(noise), &en, &d), 0);
    assert_true(d.route.n > 0);
    assert_int_equal(d.vetoed, 1);
    assert_int_equal(d.source, DECIDE_FALLBACK);
    /* a plain question with the keyword still answers by the rule */
    const char *plain = "i forgot my password";
    assert_int_equal(decide_message(&c, plain, strlen(plain), &en, &d), 0);
    assert_int_equal(d.source, DECIDE_RULE);
    assert_int_equal(d.vetoed, 0);
    /* without the classifier the noise is answered by the rule: the veto is what stops it */
    assert_true(d.cls.known >= c.policy.veto_known);
    c.policy.use_classifier = 0;
    assert_int_equal(decide_message(&c, noise, strlen(noise), &en, &d), 0);
    assert_int_equal(d.source, DECIDE_RULE);
    router_scratch_free(sc);
    classify_unref(m);
    rules_unref(rs);
}

/* An article that is also an intent with examples (as kefu learn names
 * intents after FAQs) is disowned when the classifier disowns that intent,
 * exactly as its example vote would be; other articles are not. */
static void test_kb_veto_as_intent(void **state)
{
    struct fixture *f = *state;
    static const char *src = "intent returns\n"
                             "  example i want to send my item back\n"
                             "  example how do i return something i bought\n"
                             "intent card.lost\n"
                             "  example i lost my credit card\n"
                             "  example my card was stolen\n"
                             "intent balance\n"
                             "  example show my account balance\n"
                             "  example how much money do i have\n";
    struct rules_diag dg;
    rules_diag_init(&dg);
    struct rules *rs = NULL;
    assert_int_equal(rules_load_string("faq.rules", src, &dg, &rs), 0);
    rules_diag_release(&dg);
    struct classify_opts o;
    classify_opts_default(&o);
    struct classify *m = NULL;
    assert_int_equal(classify_build(rs, &o, &m, NULL), 0);
    struct decide_ctx c = {.rs = rs, .sc = f->sc, .kb = f->kb, .clf = m};
    decide_policy_default(&c.policy);
    c.policy.use_examples = 0;
    c.policy.classify_min = 1.01; /* only the article stage can answer */
    c.policy.kb_lead = 0;
    c.policy.kb_min = 0;
    c.policy.clarify_min = 1.01; /* no question instead */
    struct decision d;
    const char *back = "How do I send something back? Start a return within seven days";
    const char *ship = "How long does delivery take? Parcels arrive within three working days";
    for (int veto = 0; veto < 2; veto++) {
        c.policy.vote_veto_max = veto ? 1.01 : 0; /* every share is below 1.01, none below 0 */
        assert_int_equal(decide_message(&c, back, strlen(back), &en, &d), 0);
        assert_true(d.kb.n > 0);
        assert_string_equal(d.kb.hit[0].id, "returns");
        assert_int_equal(d.source, veto ? DECIDE_FALLBACK : DECIDE_KB);
        assert_int_equal(decide_message(&c, ship, strlen(ship), &en, &d), 0);
        assert_int_equal(d.source, DECIDE_KB); /* "shipping" is no intent: never disowned */
        assert_string_equal(d.article.id, "shipping");
    }
    classify_unref(m);
    rules_unref(rs);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rule_stage),
        cmocka_unit_test(test_example_stage),
        cmocka_unit_test(test_example_own_threshold),
        cmocka_unit_test(test_kb_stage),
        cmocka_unit_test(test_fallback),
        cmocka_unit_test(test_policy_clarify),
        cmocka_unit_test(test_policy_same_target),
        cmocka_unit_test(test_policy_kb_lead),
        cmocka_unit_test(test_all_stages),
        cmocka_unit_test(test_locale_and_names),
        cmocka_unit_test(test_alloc_failures),
        cmocka_unit_test(test_classifier_stage),
        cmocka_unit_test(test_kb_veto_as_intent),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
