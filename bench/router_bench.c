/* router_bench.c — single-thread router throughput, in process.
 * Loads a rule directory, reads messages (one per line), routes them all
 * ROUNDS times and prints the median messages per second, then the median
 * time of one 4 KiB adversarial message. Output is one JSON object.
 * usage: router_bench RULES_DIR MESSAGES_FILE [ROUNDS] */
#include "kefu.h"
#include "router.h"
#include "rules.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static int dbl_cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, dbl_cmp);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: router_bench RULES_DIR MESSAGES_FILE [ROUNDS]\n");
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
    char line[8192];
    while (fgets(line, sizeof line, f)) {
        line[strcspn(line, "\r\n")] = 0;
        if (n == cap)
            msgs = realloc(msgs, (cap *= 2) * sizeof *msgs);
        msgs[n++] = strdup(line);
    }
    fclose(f);

    struct router_scratch *sc = router_scratch_create();
    struct router_result r;
    size_t hits = 0;
    double rate[99];
    for (int k = 0; k < rounds; k++) {
        hits = 0;
        t0 = now_s();
        for (size_t i = 0; i < n; i++) {
            router_match(rs, sc, msgs[i], strlen(msgs[i]), NULL, NULL, &r);
            hits += r.n > 0;
        }
        rate[k] = n / (now_s() - t0);
    }

    /* the adversarial message: mixed scripts, regex bait, repeated keywords */
    char adv[4097];
    size_t al = 0;
    const char *bits[] = {"退款", "refund ", "aaaa", "((((", "订单KF1234567", "\xe2\x80\x8b", "ｒｅｆｕｎｄ", "where is my "};
    for (int i = 0; al + 16 < sizeof adv; i++) {
        size_t l = strlen(bits[i % 8]);
        memcpy(adv + al, bits[i % 8], l);
        al += l;
    }
    adv[al] = 0;
    double adv_ms[99];
    for (int k = 0; k < 21; k++) {
        t0 = now_s();
        router_match(rs, sc, adv, al, NULL, NULL, &r);
        adv_ms[k] = (now_s() - t0) * 1e3;
    }
    printf("{\"rules\":\"%s\",\"intents\":%zu,\"messages\":%zu,\"matched\":%zu,\"rounds\":%d,"
           "\"load_s\":%.3f,\"msg_per_s_median\":%.0f,\"adversarial_4k_ms_median\":%.3f}\n",
           argv[1], rules_count(rs), n, hits, rounds, load, median(rate, rounds), median(adv_ms, 21));
    for (size_t i = 0; i < n; i++)
        free(msgs[i]);
    free(msgs);
    router_scratch_free(sc);
    rules_unref(rs);
    return 0;
}
