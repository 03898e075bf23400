/* cli_webhook.c — `kefu webhook list|replay`: the operator's view of the
 * webhook outbox in DIR/kefu.db. list shows the events still waiting
 * (pending) and those given up (dead), newest first; replay makes dead
 * events pending again, and a running kefu serve sends them within its
 * next poll. Safe while the server runs: both go through the store. */
#include "cli.h"
#include "cli_int.h"
#include "kefu.h"
#include "store.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *usage_webhook =
    "usage: kefu webhook list [--data DIR] [--state pending|dead|delivered|open] [--limit N] [--json]\n"
    "       kefu webhook replay [--data DIR] (ID... | --all)\n\n"
    "list prints the webhook outbox of DIR/kefu.db (default data/), newest first: by default\n"
    "the open events (pending and dead), one line each: ID STATE ATTEMPTS TYPE EVENT-ID\n"
    "CONVERSATION TARGET, then the last error. replay makes dead events (by ID, or --all)\n"
    "pending again with no attempts; a running kefu serve sends them at once, in order.";

struct listing {
    int json;
    json_t *rows;
    long long n;
};

static int print_row(void *ctx, const struct store_outbox *o)
{
    struct listing *l = ctx;
    l->n++;
    if (l->json) {
        json_array_append_new(
            l->rows, json_pack("{s:I, s:s, s:s, s:s, s:s, s:s, s:I, s:i, s:I, s:s, s:I}", "id",
                               (json_int_t)o->id, "state", store_outbox_state_name(o->state), "event",
                               o->event, "type", o->type, "conversation", o->conv, "target", o->target, "at",
                               (json_int_t)o->at, "attempts", o->attempts, "next_ms", (json_int_t)o->next_ms,
                               "error", o->error, "done_at", (json_int_t)o->done_at));
        return 0;
    }
    printf("%lld %s %d %s %s %s %s", o->id, store_outbox_state_name(o->state), o->attempts, o->type, o->event,
           o->conv, o->target);
    if (*o->error)
        printf("  (%s)", o->error);
    putchar('\n');
    return 0;
}

static int state_of(const char *s)
{
    if (strcmp(s, "pending") == 0)
        return STORE_OUT_PENDING;
    if (strcmp(s, "dead") == 0)
        return STORE_OUT_DEAD;
    if (strcmp(s, "delivered") == 0)
        return STORE_OUT_DELIVERED;
    return strcmp(s, "open") == 0 ? -1 : -2;
}

static int cmd_list(const char *dir, int state, int limit, int json)
{
    struct store *st;
    int rc = cli_open_store(dir, &st);
    if (rc)
        return rc;
    struct listing l = {json, json ? json_array() : NULL, 0};
    rc = store_outbox_list(st, state, limit, print_row, &l);
    store_close(st);
    if (rc < 0) {
        json_decref(l.rows);
        fprintf(stderr, "kefu: cannot read the webhook outbox: %s\n", kefu_strerror(rc));
        return 1;
    }
    if (json) {
        json_dumpf(l.rows, stdout, JSON_INDENT(2));
        putchar('\n');
        json_decref(l.rows);
    }
    return 0;
}

/* Replays ids[0..n) (n 0: every dead event). */
static int cmd_replay(const char *dir, char **ids, int n)
{
    long long *v = kefu_calloc((size_t)(n ? n : 1), sizeof *v);
    if (!v)
        return cli_fail("out of memory");
    for (int i = 0; i < n; i++) {
        char *end;
        v[i] = strtoll(ids[i], &end, 10);
        if (!*ids[i] || *end || v[i] <= 0) {
            free(v);
            return cli_fail("webhook replay takes event row numbers (from kefu webhook list), not '%s'",
                            ids[i]);
        }
    }
    struct store *st;
    int rc = cli_open_store(dir, &st);
    if (rc) {
        free(v);
        return rc;
    }
    long long total = 0, missing = 0;
    for (int i = 0; i < (n ? n : 1) && rc == 0; i++) {
        long long count = 0;
        struct store_batch b;
        store_batch_init(&b);
        store_replay_outbox(&b, n ? v[i] : 0, &count);
        rc = store_write(st, &b);
        total += count;
        if (n && rc == 0 && count == 0) {
            fprintf(stderr, "kefu: no dead webhook event %lld\n", v[i]);
            missing++;
        }
    }
    store_close(st);
    free(v);
    if (rc < 0) {
        fprintf(stderr, "kefu: cannot replay: %s\n", kefu_strerror(rc));
        return 1;
    }
    printf("replay: %lld dead events pending again\n", total);
    return missing ? 1 : 0;
}

int cli_webhook(int argc, char **argv)
{
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        puts(usage_webhook);
        return argc < 2 ? 2 : 0;
    }
    int list = strcmp(argv[1], "list") == 0, all = 0, json = 0, state = -1, limit = 0, n = 0;
    if (!list && strcmp(argv[1], "replay") != 0)
        return cli_fail("unknown webhook command '%s' (see kefu webhook --help)", argv[1]);
    const char *dir = "data";
    char **ids = kefu_calloc((size_t)argc, sizeof *ids);
    if (!ids)
        return cli_fail("out of memory");
    int rc = 0;
    for (int i = 2; i < argc && rc == 0; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            puts(usage_webhook);
            free(ids);
            return 0;
        } else if (strcmp(a, "--data") == 0 && i + 1 < argc) {
            dir = argv[++i];
        } else if (list && strcmp(a, "--json") == 0) {
            json = 1;
        } else if (list && strcmp(a, "--state") == 0 && i + 1 < argc) {
            if ((state = state_of(argv[++i])) == -2)
                rc = cli_fail("--state takes pending, dead, delivered or open, not '%s'", argv[i]);
        } else if (list && strcmp(a, "--limit") == 0 && i + 1 < argc) {
            limit = atoi(argv[++i]);
            if (limit <= 0)
                rc = cli_fail("--limit takes a positive number, not '%s'", argv[i]);
        } else if (!list && strcmp(a, "--all") == 0) {
            all = 1;
        } else if (!list && a[0] != '-') {
            ids[n++] = argv[i];
        } else {
            rc = cli_fail("unknown option or argument '%s' for 'webhook %s' (see kefu webhook --help)", a,
                          argv[1]);
        }
    }
    if (rc == 0 && !list && (all ? n > 0 : n == 0))
        rc = cli_fail("webhook replay takes event numbers or --all (see kefu webhook --help)");
    if (rc == 0)
        rc = list ? cmd_list(dir, state, limit, json) : cmd_replay(dir, ids, n);
    free(ids);
    return rc;
}
