/* store_bench.c — durable writes per second through the store's writer
 * thread: T threads each append N messages, every call acknowledged only
 * after its commit (synchronous=FULL). Run once with group commit and once
 * with one commit per write. Output is one JSON object per mode.
 * usage: store_bench DIR [THREADS] [PER_THREAD] */
#include "kefu.h"
#include "store.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

struct arg {
    struct store *st;
    int id, n;
};

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void *writer(void *p)
{
    struct arg *a = p;
    char conv[32];
    snprintf(conv, sizeof conv, "bench-%d", a->id);
    for (int i = 1; i <= a->n; i++) {
        struct store_msg m = {.seq = i,
                              .from = "customer",
                              .text = "where is my order KF12345678",
                              .source = "rule",
                              .intent = "order.status",
                              .confidence = 0.97,
                              .at = i};
        struct store_batch b;
        store_batch_init(&b);
        store_add_message(&b, conv, &m);
        if (store_write(a->st, &b) < 0)
            return (void *)1;
    }
    return NULL;
}

static int run(const char *dir, int group, int threads, int per)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/bench-%s.db", dir, group > 0 ? "group" : "single");
    unlink(path);
    struct store *st;
    struct store_opts o = {.group_commit = group};
    if (store_open(path, &o, &st) < 0)
        return 1;
    pthread_t *t = calloc((size_t)threads, sizeof *t);
    struct arg *a = calloc((size_t)threads, sizeof *a);
    double t0 = now_s();
    for (int k = 0; k < threads; k++) {
        a[k] = (struct arg){st, k, per};
        pthread_create(&t[k], NULL, writer, &a[k]);
    }
    int failed = 0;
    for (int k = 0; k < threads; k++) {
        void *r;
        pthread_join(t[k], &r);
        failed |= r != NULL;
    }
    double s = now_s() - t0;
    struct store_stats ss;
    store_stats(st, &ss);
    store_close(st);
    printf("{\"mode\":\"%s\",\"threads\":%d,\"writes\":%d,\"seconds\":%.3f,\"writes_per_s\":%.0f,"
           "\"commits\":%lld,\"commits_per_s\":%.0f,\"writes_per_commit\":%.1f}\n",
           group > 0 ? "group_commit" : "commit_per_write", threads, threads * per, s, threads * per / s,
           ss.commits, (double)ss.commits / s, (double)ss.batches / (double)(ss.commits ? ss.commits : 1));
    free(t);
    free(a);
    unlink(path);
    return failed;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fputs("usage: store_bench DIR [THREADS] [PER_THREAD]\n", stderr);
        return 2;
    }
    int threads = argc > 2 ? atoi(argv[2]) : 16, per = argc > 3 ? atoi(argv[3]) : 500;
    return run(argv[1], -1, threads, per) | run(argv[1], 1, threads, per);
}
