/* dialog_bench.c — customer messages per second through the whole
 * conversation pipeline in process (decide, state, durable store), with
 * T threads, each its own conversation, on the bundled rules.
 * usage: dialog_bench RULES_DIR DATA_DIR [THREADS] [PER_THREAD] [GROUP(1|-1)] */
#include "dialog.h"
#include "kefu.h"

#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char *const lines[] = {
    "where is my order",
    "我要开发票",
    "how do I return an item",
    "退款什么时候到账",
    "do you ship to Canada?",
    "优惠券怎么用不了",
    "hello",
    "what payment methods do you accept",
};

struct arg {
    struct dialog *d;
    char id[64];
    int n, failed;
};

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void *customer(void *p)
{
    struct arg *a = p;
    for (int i = 0; i < a->n; i++) {
        json_t *req = json_pack("{s:s}", "text", lines[i % 8]), *out = NULL;
        if (dialog_customer_message(a->d, a->id, req, &out) < 0)
            a->failed++;
        json_decref(out);
        json_decref(req);
    }
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fputs("usage: dialog_bench RULES_DIR DATA_DIR [THREADS] [PER_THREAD] [GROUP]\n", stderr);
        return 2;
    }
    int threads = argc > 3 ? atoi(argv[3]) : 8, per = argc > 4 ? atoi(argv[4]) : 500;
    struct dialog_config cfg;
    dialog_config_default(&cfg);
    cfg.rules_dir = argv[1];
    cfg.data_dir = argv[2];
    cfg.corpus_dir = NULL;
    cfg.group_commit = argc > 5 ? atoi(argv[5]) : 1;
    struct rules_diag diag;
    rules_diag_init(&diag);
    struct dialog *d;
    if (dialog_open(&cfg, &diag, &d) < 0) {
        rules_diag_print(stderr, &diag);
        fprintf(stderr, "dialog_bench: %s\n", dialog_error());
        return 1;
    }
    rules_diag_release(&diag);
    struct arg *a = calloc((size_t)threads, sizeof *a);
    pthread_t *t = calloc((size_t)threads, sizeof *t);
    for (int k = 0; k < threads; k++) {
        json_t *req = json_pack("{s:s, s:{s:s}}", "channel", "bench", "customer", "id", "bench"), *out;
        if (dialog_conversation_create(d, req, &out) < 0)
            return 1;
        snprintf(a[k].id, sizeof a[k].id, "%s", json_string_value(json_object_get(out, "id")));
        a[k].d = d;
        a[k].n = per;
        json_decref(out);
        json_decref(req);
    }
    double t0 = now_s();
    for (int k = 0; k < threads; k++)
        pthread_create(&t[k], NULL, customer, &a[k]);
    int failed = 0;
    for (int k = 0; k < threads; k++) {
        pthread_join(t[k], NULL);
        failed += a[k].failed;
    }
    double s = now_s() - t0;
    printf("{\"threads\":%d,\"messages\":%d,\"failed\":%d,\"seconds\":%.3f,\"messages_per_s\":%.0f,\"group_"
           "commit\":%d}\n",
           threads, threads * per, failed, s, threads * per / s, cfg.group_commit);
    dialog_close(d);
    free(a);
    free(t);
    return failed != 0;
}
