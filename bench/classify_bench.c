/* classify_bench.c — the classifier's training time, model size and
 * classification cost at scale, and what it adds to loading a rule set.
 *
 *   classify_bench INTENTS EXAMPLES_PER_INTENT [BUNDLED_RULES_DIR]
 *
 * Generates a rule set of INTENTS example-only intents (two in three
 * English-like, one in three Chinese), each with EXAMPLES_PER_INTENT lines
 * drawn from a few words of its own and a Zipf-distributed common
 * vocabulary, the way real intents share "how", "my", "order" and differ in
 * a few words. Then: three trainings without a cache (median), the model's
 * size in memory and on disk, three loads from the cache (median), and
 * classify_predict() over 2,000 generated messages, five rounds (median per
 * message). With BUNDLED_RULES_DIR, also the time to load that rule set
 * alone and with its classifier loaded from the cache (eleven interleaved
 * rounds, medians), and with it trained (three).
 * Prints one JSON object. */
#include "bench_time.h"
#include "classify.h"
#include "kefu.h"
#include "rules.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define VOCAB    4000
#define MESSAGES 2000
#define ROUNDS   5

/* xorshift: the same set on every run */
static unsigned long long rng = 88172645463325252ULL;
static unsigned rnd(unsigned n)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (unsigned)(rng % n);
}

/* CPU seconds of the whole process, every training thread included. */
static double process_cpu_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static char en[VOCAB][16], zh[VOCAB][8];

/* English-like words from syllables; Chinese words of two ideographs. */
static void make_vocab(void)
{
    static const char *const syl[] = {"ka",  "lo",  "mi",  "ne", "sa", "tor", "pe", "ri", "du", "ven",
                                      "gal", "sho", "ber", "fi", "ma", "ton", "ly", "re", "qu", "zen"};
    for (int w = 0; w < VOCAB; w++) {
        int n = 1 + rnd(3);
        en[w][0] = 0;
        for (int k = 0; k < n; k++)
            strcat(en[w], syl[rnd(20)]);
        for (int k = 0; k < 2; k++) { /* U+4E00..U+9FA5, three bytes each */
            unsigned cp = 0x4e00 + rnd(0x51a6);
            zh[w][3 * k] = (char)(0xe0 | cp >> 12);
            zh[w][3 * k + 1] = (char)(0x80 | (cp >> 6 & 0x3f));
            zh[w][3 * k + 2] = (char)(0x80 | (cp & 0x3f));
        }
        zh[w][6] = 0;
    }
}

/* A common word: Zipf over the first 500. */
static int common(void)
{
    static double cdf[500];
    if (cdf[499] == 0) {
        double s = 0;
        for (int k = 0; k < 500; k++)
            cdf[k] = s += 1.0 / (k + 1);
        for (int k = 0; k < 500; k++)
            cdf[k] /= s;
    }
    double u = rnd(1000000) / 1e6;
    int k = 0;
    while (k < 499 && cdf[k] < u)
        k++;
    return k;
}

/* Appends one generated line of intent i (its own words start at 500 + 6i) to buf. */
static size_t gen_line(char *buf, size_t at, size_t cap, unsigned i)
{
    int zh_intent = i % 3 == 2, n = 5 + (int)rnd(5);
    for (int k = 0; k < n && at + 32 < cap; k++) {
        int own = k < 3 && rnd(4) != 0;
        int w = own ? 500 + (int)(i * 6 + rnd(6)) % (VOCAB - 500) : common();
        at += (size_t)snprintf(buf + at, cap - at, "%s%s", k && !zh_intent ? " " : "",
                               zh_intent ? zh[w] : en[w]);
    }
    return at;
}

static char *gen_rules(unsigned intents, unsigned per)
{
    size_t cap = (size_t)intents * per * 96 + (size_t)intents * 64 + 1, at = 0;
    char *s = malloc(cap);
    if (!s)
        return NULL;
    for (unsigned i = 0; i < intents; i++) {
        at += (size_t)snprintf(s + at, cap - at, "intent gen.i%u\n  reply r%u\n", i, i);
        for (unsigned e = 0; e < per; e++) {
            at += (size_t)snprintf(s + at, cap - at, "  example ");
            at = gen_line(s, at, cap, i);
            at += (size_t)snprintf(s + at, cap - at, "\n");
        }
    }
    return s;
}

static struct rules *load_string(const char *text)
{
    struct rules_diag d;
    rules_diag_init(&d);
    struct rules *rs = NULL;
    if (rules_load_string("gen.rules", text, &d, &rs) < 0)
        rules_diag_print(stderr, &d);
    rules_diag_release(&d);
    return rs;
}

static void rm_dir(const char *dir)
{
    char cmd[4200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "classify_bench: cannot remove %s\n", dir);
}

/* Rules load (and with mode 1 the cached classifier, 2 a trained one) of dir, seconds. */
static double bundled(const char *dir, int mode, const char *cache)
{
    double t0 = now_s();
    struct rules_diag d;
    rules_diag_init(&d);
    struct rules *rs = NULL;
    int rc = rules_load_dir(dir, &d, &rs);
    rules_diag_release(&d);
    if (rc < 0)
        return -1;
    struct classify *m = NULL;
    if (mode) {
        struct classify_opts o;
        classify_opts_default(&o);
        o.cache_dir = mode == 1 ? cache : NULL;
        classify_build(rs, &o, &m, NULL);
    }
    double t = now_s() - t0;
    classify_unref(m);
    rules_unref(rs);
    return t;
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fputs("usage: classify_bench INTENTS EXAMPLES_PER_INTENT [BUNDLED_RULES_DIR]\n", stderr);
        return 2;
    }
    unsigned intents = (unsigned)atoi(argv[1]), per = (unsigned)atoi(argv[2]);
    make_vocab();
    char *text = gen_rules(intents, per);
    struct rules *rs = text ? load_string(text) : NULL;
    free(text);
    if (!rs)
        return 1;
    char cache[] = "/tmp/kefu-classify-bench-XXXXXX";
    if (!mkdtemp(cache))
        return 1;

    struct classify_opts o;
    classify_opts_default(&o);
    const char *th = getenv("THREADS"); /* training threads; default: the classifier's own choice */
    o.threads = th ? atoi(th) : 0;
    struct classify_info info;
    struct classify *m = NULL;
    double train[3], train_cpu[3], load[3];
    for (int r = 0; r < 3; r++) {
        classify_unref(m);
        m = NULL;
        double t0 = now_s(), c0 = process_cpu_s();
        if (classify_build(rs, &o, &m, &info) < 0 || !m)
            return 1;
        train[r] = now_s() - t0;
        train_cpu[r] = process_cpu_s() - c0;
    }
    size_t bytes = info.bytes, features = info.features;
    o.cache_dir = cache;
    struct classify *c = NULL;
    classify_build(rs, &o, &c, &info); /* trains once more and writes the cache */
    struct stat st;
    long file = stat(info.path, &st) == 0 ? (long)st.st_size : -1;
    for (int r = 0; r < 3; r++) {
        classify_unref(c);
        c = NULL;
        double t0 = now_s();
        classify_build(rs, &o, &c, &info);
        load[r] = now_s() - t0;
        if (!info.cached)
            fputs("classify_bench: the cache was not used\n", stderr);
    }
    classify_unref(c);

    /* classification: generated messages of random intents */
    static char msgs[MESSAGES][160];
    for (int k = 0; k < MESSAGES; k++)
        gen_line(msgs[k], 0, sizeof msgs[k], rnd(intents));
    double per_msg[ROUNDS];
    size_t right = 0;
    for (int r = 0; r < ROUNDS; r++) {
        double t0 = now_s();
        for (int k = 0; k < MESSAGES; k++) {
            struct classify_result res;
            classify_predict(m, msgs[k], strlen(msgs[k]), &res);
            right += r == 0 && res.n > 0;
        }
        per_msg[r] = (now_s() - t0) / MESSAGES;
    }

    printf(
        "{\"intents\": %u, \"examples\": %u, \"features\": %zu, \"model_bytes\": %zu, \"file_bytes\": %ld,\n",
        intents, intents * per, features, bytes, file);
    printf(
        " \"train_s\": %.4f, \"train_cpu_s\": %.4f, \"train_rounds\": [%.4f, %.4f, %.4f], \"cached_load_s\": "
        "%.5f,\n",
        median(train, 3), median(train_cpu, 3), train[0], train[1], train[2], median(load, 3));
    printf(" \"classify_us\": %.2f, \"classified\": %zu", median(per_msg, ROUNDS) * 1e6, right);
    if (argc > 3) {
        enum { BUNDLED_ROUNDS = 11 };
        double a[BUNDLED_ROUNDS], b[BUNDLED_ROUNDS], t[3];
        bundled(argv[3], 1, cache);                /* writes the cache, unmeasured */
        for (int r = 0; r < BUNDLED_ROUNDS; r++) { /* interleaved, so the machine's noise hits both */
            a[r] = bundled(argv[3], 0, cache);
            b[r] = bundled(argv[3], 1, cache);
        }
        for (int r = 0; r < 3; r++)
            t[r] = bundled(argv[3], 2, cache);
        printf(
            ",\n \"bundled_load_s\": %.5f, \"bundled_load_cached_s\": %.5f, \"bundled_load_trained_s\": %.4f",
            median(a, BUNDLED_ROUNDS), median(b, BUNDLED_ROUNDS), median(t, 3));
    }
    printf("}\n");
    classify_unref(m);
    rules_unref(rs);
    rm_dir(cache);
    return 0;
}
