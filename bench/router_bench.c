/* router_bench.c — single-thread router throughput, in process.
 * Loads a rule directory, reads messages, routes them all RULES_JIT_AFTER
 * times unmeasured (the lazy JIT's warm-up), then ROUNDS times, and
 * prints one JSON object: load time, messages per second of every round and
 * their median, the median time of one 4 KiB adversarial message, and how
 * many regexes the lazy JIT compiled by then.
 * MESSAGES is either plain text (one message per line) or a workload
 * messages.tsv (msg_idx, kind, target, expected first match, n_matching,
 * text; see bench/workload-to-rules): then every decision is also checked
 * against the expected intent (intent w<idx>.* or none) and the agreement
 * and the first disagreements are reported.
 * usage: router_bench RULES_DIR MESSAGES [ROUNDS] */
#include "bench_time.h"
#include "kefu.h"
#include "router.h"
#include "rules.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_SHOWN 10

/* Prints s as a JSON string. */
static void json_str(const char *s)
{
    putchar('"');
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            printf("\\%c", c);
        else if (c < 0x20)
            printf("\\u%04x", c);
        else
            putchar(c);
    }
    putchar('"');
}

/* The workload index of the intent the router decided on, -1 for none:
 * the top candidate when it reaches its intent's threshold (as decide does). */
static long decision(const struct rules *rs, const struct router_result *r)
{
    if (!r->n)
        return -1;
    const struct rules_intent *it = rules_intent(rs, r->cand[0].intent);
    if (r->cand[0].confidence < it->threshold)
        return -1;
    return it->name[0] == 'w' ? strtol(it->name + 1, NULL, 10) : -2;
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: router_bench RULES_DIR MESSAGES [ROUNDS]\n");
        return 2;
    }
    int rounds = argc > 3 ? atoi(argv[3]) : 5;
    if (rounds < 1 || rounds > 99)
        rounds = 5;
    struct rules_diag d;
    rules_diag_init(&d);
    struct rules *rs;
    double t0 = now_s();
    if (rules_load_dir(argv[1], &d, &rs) != 0) {
        rules_diag_print(stderr, &d);
        return 1;
    }
    double load = now_s() - t0;
    rules_diag_release(&d);

    FILE *f = fopen(argv[2], "r");
    if (!f) {
        fprintf(stderr, "router_bench: cannot open '%s'\n", argv[2]);
        return 1;
    }
    size_t n = 0, cap = 1024;
    char **msgs = malloc(cap * sizeof *msgs);
    long *expect = malloc(cap * sizeof *expect);
    int workload = -1; /* unknown until the first line */
    char line[8192];
    while (fgets(line, sizeof line, f)) {
        line[strcspn(line, "\r\n")] = 0;
        if (workload < 0)
            workload = strncmp(line, "#msg_idx\t", 9) == 0;
        if (workload && (line[0] == '#' || !line[0]))
            continue;
        const char *text = line;
        long want = -1;
        if (workload) {
            char *p = line;
            for (int col = 0; col < 5 && p; col++) {
                if (col == 3)
                    want = strtol(p, NULL, 10);
                p = strchr(p, '\t');
                if (p)
                    p++;
            }
            if (!p) {
                fprintf(stderr, "%s:%zu: expected six tab-separated columns\n", argv[2], n + 1);
                return 1;
            }
            text = p;
        }
        if (n == cap) {
            msgs = realloc(msgs, (cap *= 2) * sizeof *msgs);
            expect = realloc(expect, cap * sizeof *expect);
        }
        expect[n] = want;
        msgs[n++] = strdup(text);
    }
    fclose(f);

    struct router_scratch *sc = router_scratch_create();
    struct router_result r;
    size_t hits = 0;
    /* warm-up: regexes are JIT-compiled once they have run RULES_JIT_AFTER
     * times (rules_jit.c), so that many unmeasured passes bring every regex
     * the stream uses to the state a long-running server has; their CPU time
     * (the JIT work that loading no longer does) is reported as warmup_cpu_s */
    double w0 = cpu_s();
    for (int k = 0; k < RULES_JIT_AFTER && n; k++)
        for (size_t i = 0; i < n; i++)
            router_match(rs, sc, msgs[i], strlen(msgs[i]), NULL, NULL, &r);
    double warmup = cpu_s() - w0;
    struct rules_jit_stats jw;
    rules_jit_stats(rs, &jw);
    double rate[99], cpu_rate[99];
    for (int k = 0; k < rounds; k++) {
        hits = 0;
        t0 = now_s();
        double c0 = cpu_s();
        for (size_t i = 0; i < n; i++) {
            router_match(rs, sc, msgs[i], strlen(msgs[i]), NULL, NULL, &r);
            hits += r.n > 0;
        }
        rate[k] = n / (now_s() - t0);
        cpu_rate[k] = n / (cpu_s() - c0);
    }

    /* the adversarial message: mixed scripts, regex bait, repeated keywords */
    char adv[4097];
    size_t al = 0;
    const char *bits[] = {"退款",          "refund ",      "aaaa",         "((((",
                          "订单KF1234567", "\xe2\x80\x8b", "ｒｅｆｕｎｄ", "where is my "};
    for (int i = 0; al + 16 < sizeof adv; i++) {
        size_t l = strlen(bits[i % 8]);
        memcpy(adv + al, bits[i % 8], l);
        al += l;
    }
    adv[al] = 0;
    double adv_ms[21];
    for (int k = 0; k < 21; k++) {
        t0 = now_s();
        router_match(rs, sc, adv, al, NULL, NULL, &r);
        adv_ms[k] = (now_s() - t0) * 1e3;
    }
    printf("{\"rules\":");
    json_str(argv[1]);
    printf(",\"intents\":%zu,\"messages\":%zu,\"matched\":%zu,\"rounds\":%d,\"load_s\":%.4f,\"msg_per_s\":[",
           rules_count(rs), n, hits, rounds, load);
    for (int k = 0; k < rounds; k++)
        printf("%s%.0f", k ? "," : "", rate[k]);
    printf("],\"msg_per_s_median\":%.0f,\"msg_per_cpu_s\":[", median(rate, rounds));
    for (int k = 0; k < rounds; k++)
        printf("%s%.0f", k ? "," : "", cpu_rate[k]);
    printf("],\"msg_per_cpu_s_median\":%.0f,\"adversarial_4k_ms_median\":%.4f", median(cpu_rate, rounds),
           median(adv_ms, 21));
    struct rules_jit_stats js;
    rules_jit_stats(rs, &js);
    printf(",\"warmup_passes\":%d,\"warmup_cpu_s\":%.4f", n ? RULES_JIT_AFTER : 0, warmup);
    printf(",\"jit\":{\"after\":%d,\"regexes\":%zu,\"compiled_after_warmup\":%zu,\"compiled\":%zu,"
           "\"failed\":%zu,\"bytes\":%zu}",
           RULES_JIT_AFTER, js.regexes, jw.compiled, js.compiled, js.failed, js.jit_bytes);

    if (workload) {
        size_t agree = 0, shown = 0, wrong_hit = 0, missed = 0, false_hit = 0;
        printf(",\"disagreements\":[");
        for (size_t i = 0; i < n; i++) {
            router_match(rs, sc, msgs[i], strlen(msgs[i]), NULL, NULL, &r);
            long got = decision(rs, &r);
            if (got == expect[i]) {
                agree++;
                continue;
            }
            if (expect[i] < 0)
                false_hit++;
            else if (got < 0)
                missed++;
            else
                wrong_hit++;
            if (shown++ < MAX_SHOWN) {
                printf("%s{\"message\":", shown > 1 ? "," : "");
                json_str(msgs[i]);
                printf(",\"expected\":%ld,\"got\":%ld,\"confidence\":%.3f}", expect[i], got,
                       r.n ? r.cand[0].confidence : 0.0);
            }
        }
        printf("],\"agree\":%zu,\"agree_pct\":%.3f,\"missed\":%zu,\"false_hits\":%zu,\"wrong_intent\":%zu",
               agree, n ? 100.0 * agree / n : 0.0, missed, false_hit, wrong_hit);
    }
    printf("}\n");
    for (size_t i = 0; i < n; i++)
        free(msgs[i]);
    free(msgs);
    free(expect);
    router_scratch_free(sc);
    rules_unref(rs);
    return 0;
}
