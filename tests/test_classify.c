/* test_classify.c — the trained classifier: training on a small rule set
 * written here, predictions and their probabilities, explanations, the
 * model cache (hit, changed examples, corrupt and truncated files, a file
 * of another rule set), byte-identical models from the same examples on any
 * number of threads, slot-shaped words (order numbers, digits, e-mail
 * addresses) that count neither for nor against what is known, invalid
 * text and allocation failures. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "classify.h"
#include "kefu.h"
#include "log.h"

static const char *set_a = "intent order.track\n"
                           "  example where is my parcel\n"
                           "  example track my order\n"
                           "  example has my package shipped yet\n"
                           "  example 我的包裹在哪里\n"
                           "  example 查一下物流\n"
                           "intent card.lost\n"
                           "  example i lost my credit card\n"
                           "  example my card was stolen\n"
                           "  example 我的信用卡丢了\n"
                           "  example 银行卡被偷了\n"
                           "intent balance\n"
                           "  example show my account balance\n"
                           "  example how much money do i have\n"
                           "  example 我的余额是多少\n"
                           "intent human\n"
                           "  match talk to a person\n";

/* set_a with one more example: another key. */
static const char *set_b = "intent order.track\n"
                           "  example where is my parcel\n"
                           "  example track my order\n"
                           "intent card.lost\n"
                           "  example i lost my credit card\n"
                           "  example my card was stolen\n";

static struct rules *load(const char *src)
{
    struct rules_diag d;
    rules_diag_init(&d);
    struct rules *rs = NULL;
    int rc = rules_load_string("test.rules", src, &d, &rs);
    if (rc < 0)
        rules_diag_print(stderr, &d);
    rules_diag_release(&d);
    assert_int_equal(rc, 0);
    return rs;
}

static const char *top(const struct rules *rs, const struct classify *m, const char *text, double *p)
{
    struct classify_result r;
    assert_int_equal(classify_predict(m, text, strlen(text), &r), 0);
    assert_true(r.n > 0);
    double total = 0;
    for (size_t k = 0; k < r.n; k++) {
        assert_true(r.cand[k].p >= 0 && r.cand[k].p <= 1);
        assert_true(k == 0 || r.cand[k].p <= r.cand[k - 1].p);
        assert_true(k == 0 || r.cand[k].share <= r.cand[k - 1].share); /* calibration keeps the order */
        total += r.cand[k].share;
    }
    /* three classes, all listed: their sigmoids sum to 1 - none, shared out
     * over a divisor of at least 0.5 */
    assert_true(r.none >= 0 && r.none <= 1);
    double want = (1 - r.none) / 0.5 < 1 ? (1 - r.none) / 0.5 : 1;
    assert_true(fabs(total - want) < 1e-9);
    *p = r.cand[0].p;
    return rules_intent(rs, r.cand[0].intent)->name;
}

static const struct predict_case {
    const char *id, *text, *intent;
} predict_cases[] = {
    {"1.1", "where is my parcel", "order.track"},
    {"1.2", "can you track my parcel please", "order.track"},
    {"1.3", "I think someone stole my card", "card.lost"},
    {"1.4", "我的卡丢了", "card.lost"},
    {"1.5", "我的包裹到哪里了", "order.track"},
    {"1.6", "what is my balance", "balance"},
    {"1.7", "我的餘額是多少", "balance"}, /* traditional, folded as the router folds it */
    {"1.8", "TRACK MY ORDER", "order.track"},
};

static void test_train_predict(void **state)
{
    struct rules *rs = load(set_a);
    struct classify_opts o;
    classify_opts_default(&o);
    struct classify *m = NULL;
    struct classify_info info;
    assert_int_equal(classify_build(rs, &o, &m, &info), 0);
    assert_non_null(m);
    assert_int_equal(info.cached, 0);
    assert_int_equal(info.classes, 3); /* human has no examples */
    assert_true(info.features > 50);
    for (size_t i = 0; i < sizeof predict_cases / sizeof predict_cases[0]; i++) {
        const struct predict_case *c = &predict_cases[i];
        double p;
        const char *got = top(rs, m, c->text, &p);
        if (strcmp(got, c->intent) != 0)
            fail_msg("case %s: '%s' -> %s (%.2f), want %s", c->id, c->text, got, p, c->intent);
    }
    /* a training line is the surest */
    double p_seen, p_weak;
    top(rs, m, "i lost my credit card", &p_seen);
    top(rs, m, "lost qwpoe zxmv vbnr", &p_weak); /* one known word among noise */
    assert_true(p_seen > 0.5);
    assert_true(p_seen > p_weak);
    struct classify_result r;
    assert_int_equal(classify_predict(m, "qwpoe zxmv", 10, &r), 0); /* nothing known: no class claims it */
    assert_int_equal(r.n, 0);
    assert_true(r.none == 1 && r.known == 0);
    assert_int_equal(r.terms, 2);
    assert_int_equal(classify_predict(m, "", 0, &r), 0); /* no feature: no evidence for any class */
    assert_int_equal(r.n, 0);
    assert_true(r.none == 1);
    assert_int_equal(classify_predict(m, "!!! ???", 7, &r), 0);
    assert_int_equal(r.n, 0);
    assert_int_equal(classify_predict(m, "\xff\xfe", 2, &r), KEFU_EUTF8);
    classify_unref(m);
    rules_unref(rs);
}

/* set_a's classes, with an order number slot: slot-shaped words (digits,
 * e-mail addresses) count neither for nor against what the examples know. */
static const char *set_slots = "intent order.track\n"
                               "  example where is my parcel\n"
                               "  example track my order KF12345678\n"
                               "  example has my package shipped yet\n"
                               "  example 我的包裹在哪里\n"
                               "  example 订单KF12345678的物流\n"
                               "  slot order_id /kf\\d{8}/\n"
                               "intent card.lost\n"
                               "  example i lost my credit card\n"
                               "  example my card was stolen\n"
                               "  example 我的信用卡丢了\n"
                               "intent balance\n"
                               "  example show my account balance\n"
                               "  example how much money do i have\n"
                               "  example 我的余额是多少\n";

static double known_of(const struct classify *m, const char *text, size_t *n)
{
    struct classify_result r;
    assert_int_equal(classify_predict(m, text, strlen(text), &r), 0);
    *n = r.n;
    return r.known;
}

static void test_slot_words(void **state)
{
    struct classify_opts o;
    classify_opts_default(&o);
    struct rules *rs = load(set_slots), *plain = load(set_a);
    struct classify *m = NULL, *mp = NULL;
    assert_int_equal(classify_build(rs, &o, &m, NULL), 0);
    assert_int_equal(classify_build(plain, &o, &mp, NULL), 0);
    size_t n;
    static const struct slot_case {
        const char *id, *with, *without;
    } cases[] = {
        {"1.1", "where is my parcel KF99999999", "where is my parcel"},
        {"1.2", "KF99999999的订单在哪", "的订单在哪"},
        {"1.3", "my card was stolen, call me on 13912345678", "my card was stolen, call me on"},
        {"1.4", "i lost my credit card, write to li.wei@post.example", "i lost my credit card, write to"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        double a = known_of(m, cases[i].with, &n), b = known_of(m, cases[i].without, &n);
        if (fabs(a - b) > 1e-9)
            fail_msg("case %s: known %.3f with the slot-shaped word, %.3f without", cases[i].id, a, b);
    }
    /* the same order number dilutes a rule set that has no slots */
    assert_true(known_of(mp, cases[0].with, &n) < known_of(mp, cases[0].without, &n) - 0.1);
    /* the unknown number does not dilute the order intent's share either */
    struct classify_result r1, r2;
    assert_int_equal(classify_predict(m, "where is my parcel KF99999999", 29, &r1), 0);
    assert_int_equal(classify_predict(m, "where is my parcel", 18, &r2), 0);
    assert_true(r1.n > 0 && r2.n > 0 && r1.cand[0].intent == r2.cand[0].intent);
    assert_true(r1.cand[0].share >= r2.cand[0].share - 0.05);
    /* nothing but slot-shaped words: no evidence, no class, nothing known */
    static const char *const bare[] = {"KF99999999", "12345", "2026 42", "a@b.com", "139 1234 5678"};
    for (size_t i = 0; i < sizeof bare / sizeof bare[0]; i++) {
        double k = known_of(m, bare[i], &n);
        if (n != 0 || k != 0)
            fail_msg("'%s': %zu candidates, known %.2f; want none", bare[i], n, k);
    }
    classify_unref(m);
    classify_unref(mp);
    rules_unref(rs);
    rules_unref(plain);
}

static void test_explain(void **state)
{
    struct rules *rs = load(set_a);
    struct classify_opts o;
    classify_opts_default(&o);
    struct classify *m = NULL;
    assert_int_equal(classify_build(rs, &o, &m, NULL), 0);
    struct classify_feature f[5];
    size_t n;
    long card = rules_find(rs, "card.lost");
    assert_int_equal(classify_explain(m, "my card was stolen", 18, (uint32_t)card, f, 5, &n), 0);
    assert_int_equal(n, 5);
    for (size_t k = 1; k < n; k++)
        assert_true(fabs(f[k].weight) <= fabs(f[k - 1].weight));
    int stolen = 0; /* a word only card.lost has is among its heaviest */
    for (size_t k = 0; k < n; k++)
        stolen |= strstr(f[k].name, "stol") != NULL || strcmp(f[k].name, "w:card") == 0;
    assert_true(stolen);
    assert_true(f[0].weight > 0);
    long human = rules_find(rs, "human");
    assert_int_equal(classify_explain(m, "x", 1, (uint32_t)human, f, 5, &n), KEFU_ENOENT);
    classify_unref(m);
    rules_unref(rs);
}

static char cache_dir[64];

static void model_path(const struct classify_info *info, char *path, size_t cap)
{
    assert_true(strncmp(info->path, cache_dir, strlen(cache_dir)) == 0);
    snprintf(path, cap, "%s", info->path);
}

/* Builds from rs with the cache and returns the top probability of text. */
static double build_and_score(const struct rules *rs, struct classify_info *info, const char *text)
{
    struct classify_opts o;
    classify_opts_default(&o);
    o.cache_dir = cache_dir;
    struct classify *m = NULL;
    assert_int_equal(classify_build(rs, &o, &m, info), 0);
    assert_non_null(m);
    double p;
    top(rs, m, text, &p);
    classify_unref(m);
    return p;
}

static long file_size(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 ? (long)st.st_size : -1;
}

static void test_cache(void **state)
{
    snprintf(cache_dir, sizeof cache_dir, "/tmp/kefu-classify-XXXXXX");
    assert_non_null(mkdtemp(cache_dir));
    struct rules *rs = load(set_a);
    struct classify_info info;
    double p1 = build_and_score(rs, &info, "someone stole my card");
    assert_int_equal(info.cached, 0);
    char path[4096];
    model_path(&info, path, sizeof path);
    long size = file_size(path);
    assert_true(size > 0);
    /* unchanged examples: loaded, not trained, the same answer */
    double p2 = build_and_score(rs, &info, "someone stole my card");
    assert_int_equal(info.cached, 1);
    assert_int_equal(info.bad_file, 0);
    assert_true(p1 == p2);
    /* other examples: another file, trained */
    struct rules *rb = load(set_b);
    build_and_score(rb, &info, "someone stole my card");
    assert_int_equal(info.cached, 0);
    assert_string_not_equal(info.path, path);
    /* a file of set_b renamed to set_a's name is refused by its key, then retrained */
    assert_int_equal(rename(info.path, path), 0);
    log_init(LOG_LEVEL_OFF, NULL);
    double p3 = build_and_score(rs, &info, "someone stole my card");
    assert_int_equal(info.bad_file, 1);
    assert_int_equal(info.cached, 0);
    assert_true(p3 == p1);
    assert_int_equal(file_size(path), size);
    rules_unref(rb);
    rules_unref(rs);
}

/* Flips one byte at off (from the end when negative) of the file at path. */
static void flip(const char *path, long off)
{
    FILE *f = fopen(path, "r+b");
    assert_non_null(f);
    assert_int_equal(fseek(f, off, off < 0 ? SEEK_END : SEEK_SET), 0);
    int c = fgetc(f);
    assert_int_equal(fseek(f, -1, SEEK_CUR), 0);
    fputc(c ^ 0x5a, f);
    fclose(f);
}

static void test_corrupt_and_truncated(void **state)
{
    struct rules *rs = load(set_a);
    struct classify_opts o;
    classify_opts_default(&o);
    o.cache_dir = cache_dir;
    struct classify_info info;
    double p = build_and_score(rs, &info, "my balance please");
    char path[4096];
    model_path(&info, path, sizeof path);
    long size = file_size(path);
    char why[128];
    struct classify *m = NULL;
    static const long offsets[] = {0, 9, 40, -30, -1}; /* magic, header, body, weights, checksum */
    for (size_t k = 0; k < sizeof offsets / sizeof offsets[0]; k++) {
        flip(path, offsets[k] < 0 ? offsets[k] : offsets[k]);
        assert_int_equal(classify_load(path, rs, &o, &m, why, sizeof why), KEFU_EINVAL);
        assert_null(m);
        assert_true(strlen(why) > 0);
        assert_true(build_and_score(rs, &info, "my balance please") == p); /* retrained */
        assert_int_equal(info.bad_file, 1);
        assert_int_equal(file_size(path), size); /* and rewritten */
        build_and_score(rs, &info, "my balance please");
        assert_int_equal(info.cached, 1);
    }
    static const long lengths[] = {0, 7, 20, 100};
    for (size_t k = 0; k < sizeof lengths / sizeof lengths[0]; k++) {
        long len = lengths[k] == 100 ? size - 1 : lengths[k];
        assert_int_equal(truncate(path, len), 0);
        assert_int_equal(classify_load(path, rs, &o, &m, why, sizeof why), KEFU_EINVAL);
        assert_non_null(strstr(why, len == 0 || len < 20 ? "truncated" : "truncated"));
        assert_true(build_and_score(rs, &info, "my balance please") == p);
        assert_int_equal(info.bad_file, 1);
        assert_int_equal(file_size(path), size);
    }
    unlink(path);
    assert_int_equal(classify_load(path, rs, &o, &m, why, sizeof why), KEFU_ENOENT);
    rules_unref(rs);
}

static void test_cleanup(void **state)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", cache_dir);
    assert_int_equal(system(cmd), 0);
}

/* A rule set of 8 intents with 30 generated example lines each: enough rows
 * that the solver's row order (rand()) changes the weights. Caller frees. */
/* classes intents of n examples each: the intent's own word, then five drawn from all. */
static char *generated_set_of(int classes, int n)
{
    static const char *const words[] = {"order",  "card", "refund", "where",   "my",     "is",
                                        "the",    "how",  "parcel", "money",   "change", "address",
                                        "cancel", "help", "please", "account", "login",  "password",
                                        "ship",   "late", "包裹",   "退款",    "密码"};
    size_t nw = sizeof words / sizeof words[0], cap = (size_t)classes * (size_t)n * 80 + 64, at = 0;
    char *s = malloc(cap);
    assert_non_null(s);
    unsigned x = 12345;
    for (int i = 0; i < classes; i++) {
        at += (size_t)snprintf(s + at, cap - at, "intent gen.%d\n", i);
        for (int e = 0; e < n; e++) {
            at += (size_t)snprintf(s + at, cap - at, "  example %s", words[(size_t)i * 2 % nw]);
            for (int w = 0; w < 5; w++) {
                x = x * 1103515245u + 12345u;
                at += (size_t)snprintf(s + at, cap - at, " %s", words[(x >> 16) % nw]);
            }
            at += (size_t)snprintf(s + at, cap - at, "\n");
        }
    }
    return s;
}

static char *generated_set(void)
{
    return generated_set_of(8, 30);
}

/* Reads the file at path into a new buffer; *len gets its size. */
static unsigned char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    long n = file_size(path);
    assert_true(n > 0);
    unsigned char *b = malloc((size_t)n);
    assert_non_null(b);
    assert_int_equal(fread(b, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    *len = (size_t)n;
    return b;
}

/* The same examples give byte-identical model files, trained again or on
 * another number of threads (each class seeds its own row order). */
static void test_deterministic(void **state)
{
    char *src = generated_set();
    struct rules *rs = load(src);
    free(src);
    char dir[64];
    snprintf(dir, sizeof dir, "/tmp/kefu-classify-det-XXXXXX");
    assert_non_null(mkdtemp(dir));
    static const int threads[] = {1, 1, 2, 3, 8};
    unsigned char *first = NULL;
    size_t first_len = 0;
    for (size_t t = 0; t < sizeof threads / sizeof threads[0]; t++) {
        char sub[128];
        snprintf(sub, sizeof sub, "%s/%zu", dir, t);
        struct classify_opts o;
        classify_opts_default(&o);
        o.cache_dir = sub;
        o.threads = threads[t];
        struct classify *m = NULL;
        struct classify_info info;
        assert_int_equal(classify_build(rs, &o, &m, &info), 0);
        assert_int_equal(info.cached, 0);
        assert_int_equal(info.classes, 8);
        size_t len;
        unsigned char *b = slurp(info.path, &len);
        if (!first) {
            first = b;
            first_len = len;
        } else {
            if (len != first_len || memcmp(b, first, len) != 0)
                fail_msg("%d threads: a model other than the first training's", threads[t]);
            free(b);
        }
        classify_unref(m);
    }
    free(first);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
    rules_unref(rs);
}

/* A large set whose classes sample their negatives (a small neg_budget
 * here, 500,000 row visits by default): the same model on any number of
 * threads, another model than the full set's, and still each intent's own
 * word wins. */
static void test_sampled(void **state)
{
    char *src = generated_set_of(20, 110); /* 2,200 rows: a large set */
    struct rules *rs = load(src);
    free(src);
    char dir[64];
    snprintf(dir, sizeof dir, "/tmp/kefu-classify-neg-XXXXXX");
    assert_non_null(mkdtemp(dir));
    static const struct {
        size_t budget;
        int threads;
    } runs[] = {{10000, 1}, {10000, 2}, {0, 2}};
    unsigned char *model[3];
    size_t len[3];
    double share[3][4];
    for (size_t t = 0; t < 3; t++) {
        char sub[128];
        snprintf(sub, sizeof sub, "%s/%zu", dir, t);
        struct classify_opts o;
        classify_opts_default(&o);
        o.cache_dir = sub;
        o.neg_budget = runs[t].budget;
        o.threads = runs[t].threads;
        struct classify *m = NULL;
        struct classify_info info;
        assert_int_equal(classify_build(rs, &o, &m, &info), 0);
        assert_int_equal(info.classes, 20);
        model[t] = slurp(info.path, &len[t]);
        static const char *const own[] = {"order", "card", "refund", "where"}; /* gen.0 .. gen.3's words */
        for (int i = 0; i < 4; i++) {
            char text[64], want[16];
            snprintf(text, sizeof text, "%s %s", own[i], own[i]);
            snprintf(want, sizeof want, "gen.%d", i == 0 ? 0 : i == 1 ? 12 : i == 2 ? 1 : 13);
            struct classify_result r;
            assert_int_equal(classify_predict(m, text, strlen(text), &r), 0);
            assert_true(r.n > 0);
            assert_string_equal(rules_intent(rs, r.cand[0].intent)->name, want);
            share[t][i] = r.cand[0].share;
        }
        classify_unref(m);
    }
    assert_true(len[0] == len[1] && memcmp(model[0], model[1], len[0]) == 0); /* threads */
    int differ = 0; /* the sampled model is another model (its file differs by its key anyway) */
    for (int i = 0; i < 4; i++)
        differ += fabs(share[0][i] - share[2][i]) > 1e-6;
    assert_true(differ > 0);
    for (size_t t = 0; t < 3; t++)
        free(model[t]);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
    rules_unref(rs);
}

/* The calibration is fitted on held-out examples (not the identity map),
 * every candidate's probability is its share through that map, and a line
 * of unknown words still gets no candidate. */
static void test_calibration(void **state)
{
    char *src = generated_set();
    struct rules *rs = load(src);
    free(src);
    struct classify_opts o;
    classify_opts_default(&o);
    struct classify *m = NULL;
    struct classify_info info;
    assert_int_equal(classify_build(rs, &o, &m, &info), 0);
    assert_true(info.cal_a > 0 && (info.cal_a != 1 || info.cal_b != 0)); /* fitted, not the identity */
    struct classify_result r;
    assert_int_equal(classify_predict(m, "order where is my parcel", 24, &r), 0);
    assert_true(r.n > 1);
    double a = info.cal_a, b = info.cal_b;
    for (size_t k = 0; k < r.n; k++) { /* p is sigmoid(a logit(share) + b) */
        double s = r.cand[k].share, want = 1 / (1 + exp(-(a * log(s / (1 - s)) + b)));
        assert_true(fabs(r.cand[k].p - want) < 1e-6);
    }
    assert_int_equal(classify_predict(m, "qwpoe zxmv", 10, &r), 0);
    assert_int_equal(r.n, 0);
    classify_unref(m);
    rules_unref(rs);
}

static void test_too_few_classes(void **state)
{
    struct rules *rs = load("intent one\n  example hello there\nintent two\n  match bye\n");
    struct classify_opts o;
    classify_opts_default(&o);
    struct classify *m = (struct classify *)1;
    assert_int_equal(classify_build(rs, &o, &m, NULL), 0);
    assert_null(m);
    o.hash_bits = 40;
    rules_unref(rs);
    rs = load(set_b);
    assert_int_equal(classify_build(rs, &o, &m, NULL), KEFU_EINVAL);
    rules_unref(rs);
}

static void test_alloc_failures(void **state)
{
    struct rules *rs = load(set_a);
    struct classify_opts o;
    classify_opts_default(&o);
    o.hash_bits = 12;
    int failed = 0;
    for (long n = 1; n < 400; n++) {
        struct classify *m = NULL;
        kefu_alloc_fail_after(n);
        int rc = classify_build(rs, &o, &m, NULL);
        struct classify_result r;
        if (rc == 0 && m)
            rc = classify_predict(m, "lost card", 9, &r);
        kefu_alloc_fail_after(0);
        assert_true(rc == 0 || rc == KEFU_ENOMEM);
        failed += rc == KEFU_ENOMEM;
        classify_unref(m);
    }
    assert_true(failed > 5);
    rules_unref(rs);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_train_predict),   cmocka_unit_test(test_explain),
        cmocka_unit_test(test_cache),           cmocka_unit_test(test_corrupt_and_truncated),
        cmocka_unit_test(test_cleanup),         cmocka_unit_test(test_deterministic),
        cmocka_unit_test(test_sampled),         cmocka_unit_test(test_calibration),
        cmocka_unit_test(test_too_few_classes), cmocka_unit_test(test_alloc_failures),
        cmocka_unit_test(test_slot_words),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
