/* kb_bench.c — knowledge-base latency, in process, one thread.
 * Imports a corpus into a temporary database, searches it with every
 * message of a file (one per line), then builds the example index of a
 * rule directory and matches the same messages against it. Prints one
 * JSON object: import time, median and 99th-percentile search and match
 * times, example build and clone times.
 * usage: kb_bench CORPUS_DIR RULES_DIR MESSAGES_FILE [KEEP_DB]
 * KEEP_DB: also leave the imported database there (replaced if it exists). */
#include "kb.h"
#include "kefu.h"
#include "rules.h"
#include "text.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define MAX_MSGS 20000

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* CPU time of this thread, ms: what a search costs without the other
 * processes of a shared machine (the wall time is reported too). */
static double cpu_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static int dbl_cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* The p-quantile of v[0..n) (sorts v). */
static double quantile(double *v, size_t n, double p)
{
    if (!n)
        return 0;
    qsort(v, n, sizeof *v, dbl_cmp);
    size_t i = (size_t)(p * (double)(n - 1) + 0.5);
    return v[i];
}

static size_t read_lines(const char *path, char **msgs)
{
    FILE *f = fopen(path, "r");
    char line[8192];
    size_t n = 0;
    while (f && n < MAX_MSGS && fgets(line, sizeof line, f)) {
        line[strcspn(line, "\r\n")] = 0;
        if (*line)
            msgs[n++] = kefu_strndup(line, strlen(line));
    }
    if (f)
        fclose(f);
    return n;
}

int main(int argc, char **argv)
{
    if (argc < 4) {
        fprintf(stderr, "usage: kb_bench CORPUS_DIR RULES_DIR MESSAGES_FILE\n");
        return 2;
    }
    static char *msgs[MAX_MSGS];
    static double t[MAX_MSGS], cpu[MAX_MSGS];
    size_t n = read_lines(argv[3], msgs);
    char tmpl[] = "/tmp/kb-bench-XXXXXX";
    char *db = tmpl;
    int fd = mkstemp(tmpl);
    if (argc > 4) { /* a fresh database where it is to stay */
        close(fd);
        unlink(tmpl);
        db = argv[4];
        unlink(db);
        fd = open(db, O_RDWR | O_CREAT | O_TRUNC, 0644);
    }
    if (fd < 0 || n == 0)
        return fprintf(stderr, "kb_bench: no messages or no temporary file\n"), 1;
    close(fd);
    struct kb *kb;
    struct rules_diag d;
    rules_diag_init(&d);
    struct kb_import_stats st;
    double t0 = now_ms();
    if (kb_open(db, 0, &kb) != 0 || kb_import(kb, argv[1], &d, NULL, NULL, &st) != 0)
        return fprintf(stderr, "kb_bench: cannot import '%s'\n", argv[1]), 1;
    double import_ms = now_ms() - t0;
    size_t found = 0;
    for (size_t k = 0; k < n; k++) {
        struct kb_result r;
        double a = now_ms(), c = cpu_ms();
        kb_search(kb, msgs[k], strlen(msgs[k]), text_guess_locale(msgs[k], strlen(msgs[k]), NULL), &r);
        t[k] = now_ms() - a;
        cpu[k] = cpu_ms() - c;
        found += r.n > 0;
    }
    double s50 = quantile(t, n, 0.5), s99 = quantile(t, n, 0.99);
    double c50 = quantile(cpu, n, 0.5), c99 = quantile(cpu, n, 0.99);
    struct rules *rs;
    if (rules_load_dir(argv[2], &d, &rs) != 0)
        return fprintf(stderr, "kb_bench: cannot load rules '%s'\n", argv[2]), 1;
    struct kb_examples *ex, *cl;
    t0 = now_ms();
    kb_examples_build(rs, &ex);
    double build_ms = now_ms() - t0;
    t0 = now_ms();
    kb_examples_clone(ex, &cl);
    double clone_ms = now_ms() - t0;
    size_t examples = 0;
    for (size_t i = 0; i < rules_count(rs); i++)
        examples += rules_intent(rs, i)->n_examples;
    for (size_t k = 0; k < n; k++) {
        struct kb_votes v;
        double a = now_ms();
        kb_examples_match(cl, msgs[k], strlen(msgs[k]), NULL, &v);
        t[k] = now_ms() - a;
    }
    printf("{\"articles\":%zu,\"import_ms\":%.1f,\"messages\":%zu,\"found\":%zu,\"search_p50_ms\":%.3f,"
           "\"search_p99_ms\":%.3f,\"search_cpu_p50_ms\":%.3f,\"search_cpu_p99_ms\":%.3f,"
           "\"examples\":%zu,\"examples_build_ms\":%.1f,\"clone_ms\":%.2f,\"match_p50_ms\":%.3f,"
           "\"match_p99_ms\":%.3f}\n",
           st.added + st.unchanged + st.updated, import_ms, n, found, s50, s99, c50, c99, examples, build_ms,
           clone_ms, quantile(t, n, 0.5), quantile(t, n, 0.99));
    kb_examples_free(cl);
    kb_examples_free(ex);
    rules_unref(rs);
    kb_close(kb);
    rules_diag_release(&d);
    for (size_t k = 0; k < n; k++)
        free(msgs[k]);
    if (argc < 5)
        unlink(db);
    return 0;
}
