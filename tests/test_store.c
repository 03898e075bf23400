/* test_store.c — the conversation store on a real SQLite file in a
 * temporary directory: records round-trip, a duplicate client_id undoes
 * its whole batch, migrations from every older schema keep the rows,
 * acknowledged writes survive a reopen and a SIGKILL, and concurrent
 * writers share commits; an erase leaves no byte of the customer behind.
 * With KEFU_TEST_PG (a postgresql:// URI of a server, without a database;
 * tests/pg.sh starts a throwaway one) the backend-neutral cases run again
 * on PostgreSQL, each in a new database, with the PostgreSQL-only ones:
 * migrations, several nodes migrating at once under the advisory lock, two
 * nodes seeing each other's writes, and a server that is not there. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <pthread.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../engine/store_cache.h"
#include "kefu.h"
#include "store.h"

#include <libpq-fe.h>

struct fixture {
    char dir[64], path[96];
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof *f);
    snprintf(f->dir, sizeof f->dir, "/tmp/kefu-store-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    snprintf(f->path, sizeof f->path, "%s/kefu.db", f->dir);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", f->dir);
    if (system(cmd) != 0)
        return 1;
    free(f);
    return 0;
}

static void make_conv(struct store_conv *c, const char *id, const char *customer, const char *channel)
{
    memset(c, 0, sizeof *c);
    snprintf(c->id, sizeof c->id, "%s", id);
    snprintf(c->token, sizeof c->token, "tok-%s", id);
    snprintf(c->customer, sizeof c->customer, "%s", customer);
    snprintf(c->channel, sizeof c->channel, "%s", channel);
    snprintf(c->locale, sizeof c->locale, "en");
    c->created_at = c->updated_at = 1000;
    c->priority = 1;
}

/* Writes customer + conversation in one batch. */
static void put_conv(struct store *st, const struct store_conv *c)
{
    struct store_customer cu = {.first_seen = c->created_at, .last_seen = c->created_at};
    snprintf(cu.id, sizeof cu.id, "%s", c->customer);
    snprintf(cu.name, sizeof cu.name, "Ann");
    snprintf(cu.tier, sizeof cu.tier, "vip");
    struct store_batch b;
    store_batch_init(&b);
    store_put_customer(&b, &cu);
    store_put_conv(&b, c, NULL);
    assert_int_equal(store_write(st, &b), 0);
}

static int add_msg(struct store *st, const char *conv, long seq, const char *from, const char *text,
                   const char *client_id)
{
    struct store_msg m = {.seq = seq,
                          .from = from,
                          .text = text,
                          .source = "rule",
                          .intent = "x.y",
                          .confidence = 0.9,
                          .client_id = client_id,
                          .result = "{\"ok\":1}",
                          .at = 1000 + seq};
    struct store_batch b;
    store_batch_init(&b);
    store_add_message(&b, conv, &m);
    return store_write(st, &b);
}

struct collect {
    long seqs[4096];
    char first_text[256];
    int n;
};

static int collect_msg(void *ctx, const struct store_msg *m)
{
    struct collect *c = ctx;
    if (c->n == 0)
        snprintf(c->first_text, sizeof c->first_text, "%s", m->text);
    if (c->n < 4096)
        c->seqs[c->n] = m->seq;
    c->n++;
    return 0;
}

static int count_msgs(struct store *st, const char *conv)
{
    struct collect c = {0};
    assert_int_equal(store_messages(st, conv, 0, 0, collect_msg, &c), 0);
    return c.n;
}

/* 1.1 a new file is at the current version, in WAL mode */
static void test_open_version(void **state)
{
    struct fixture *f = *state;
    struct store *st;
    assert_int_equal(store_open(f->path, NULL, &st), 0);
    assert_int_equal(store_version(st), STORE_SCHEMA_VERSION);
    store_close(st);
    sqlite3 *db;
    sqlite3_stmt *s;
    assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &s, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(s), SQLITE_ROW);
    assert_string_equal((const char *)sqlite3_column_text(s, 0), "wal");
    sqlite3_finalize(s);
    sqlite3_close(db);
}

/* 1.2 records round-trip: customer, conversation with memory and packet, messages in order */
static void test_roundtrip(void **state)
{
    struct fixture *f = *state;
    struct store *st;
    assert_int_equal(store_open(f->path, NULL, &st), 0);
    struct store_conv c;
    make_conv(&c, "c1", "cust-1", "web");
    c.memory = "{\"slots\":{\"order_id\":\"KF12345678\"}}";
    put_conv(st, &c);
    struct store_batch b;
    store_batch_init(&b);
    c.state = STORE_QUEUED;
    snprintf(c.queue, sizeof c.queue, "billing");
    snprintf(c.reason, sizeof c.reason, "requested");
    c.queued_at = 1005;
    c.last_seq = 2;
    store_put_conv(&b, &c, "{\"reason\":\"requested\"}");
    store_add_event(&b, "c1", 1005, "handoff", NULL, "billing", "requested");
    assert_int_equal(store_write(st, &b), 0);
    assert_int_equal(add_msg(st, "c1", 1, "customer", "hello", "a"), 0);
    assert_int_equal(add_msg(st, "c1", 2, "bot", "hi there", NULL), 0);

    struct store_conv g;
    assert_int_equal(store_get_conv(st, "c1", &g), 0);
    assert_int_equal(g.state, STORE_QUEUED);
    assert_string_equal(g.queue, "billing");
    assert_string_equal(g.reason, "requested");
    assert_string_equal(g.token, "tok-c1");
    assert_int_equal(g.queued_at, 1005);
    assert_int_equal(g.last_seq, 2);
    assert_string_equal(g.memory, "{\"slots\":{\"order_id\":\"KF12345678\"}}");
    store_conv_release(&g);
    char *packet;
    assert_int_equal(store_get_packet(st, "c1", &packet), 0);
    assert_string_equal(packet, "{\"reason\":\"requested\"}");
    free(packet);
    /* a later put without a packet (or memory) keeps them */
    store_batch_init(&b);
    c.state = STORE_AGENT;
    c.memory = NULL;
    store_put_conv(&b, &c, NULL);
    assert_int_equal(store_write(st, &b), 0);
    assert_int_equal(store_get_packet(st, "c1", &packet), 0);
    assert_non_null(packet);
    free(packet);
    assert_int_equal(store_get_conv(st, "c1", &g), 0);
    assert_int_equal(g.state, STORE_AGENT);
    assert_string_equal(g.memory, "{\"slots\":{\"order_id\":\"KF12345678\"}}");
    store_conv_release(&g);

    struct store_customer cu;
    assert_int_equal(store_get_customer(st, "cust-1", &cu), 0);
    assert_string_equal(cu.name, "Ann");
    assert_string_equal(cu.tier, "vip");
    assert_int_equal(store_get_customer(st, "nobody", &cu), KEFU_ENOENT);
    assert_int_equal(store_get_conv(st, "nope", &g), KEFU_ENOENT);

    struct collect col = {0};
    assert_int_equal(store_messages(st, "c1", 0, 0, collect_msg, &col), 0);
    assert_int_equal(col.n, 2);
    assert_int_equal(col.seqs[0], 1);
    assert_string_equal(col.first_text, "hello");
    memset(&col, 0, sizeof col);
    assert_int_equal(store_messages(st, "c1", 1, 0, collect_msg, &col), 0);
    assert_int_equal(col.n, 1);
    assert_string_equal(col.first_text, "hi there");
    store_close(st);
}

/* 1.3 a repeated client_id fails its batch and nothing of that batch is written */
static void test_client_id_conflict(void **state)
{
    struct fixture *f = *state;
    struct store *st;
    assert_int_equal(store_open(f->path, NULL, &st), 0);
    struct store_conv c;
    make_conv(&c, "c1", "cust-1", "web");
    put_conv(st, &c);
    assert_int_equal(add_msg(st, "c1", 1, "customer", "hello", "k1"), 0);
    struct store_msg m = {.seq = 2, .from = "customer", .text = "hello again", .client_id = "k1", .at = 1};
    struct store_msg reply = {.seq = 3, .from = "bot", .text = "reply", .at = 1};
    struct store_batch b;
    store_batch_init(&b);
    c.last_seq = 3;
    store_put_conv(&b, &c, NULL);
    store_add_message(&b, "c1", &reply);
    store_add_message(&b, "c1", &m);
    assert_int_equal(store_write(st, &b), KEFU_ECONFLICT);
    assert_int_equal(count_msgs(st, "c1"), 1);
    struct store_conv g;
    assert_int_equal(store_get_conv(st, "c1", &g), 0);
    assert_int_equal(g.last_seq, 0); /* the conversation update of that batch was undone too */
    store_conv_release(&g);
    long seq = 0;
    char *result;
    assert_int_equal(store_find_client_id(st, "c1", "k1", &seq, &result), 0);
    assert_int_equal(seq, 1);
    assert_string_equal(result, "{\"ok\":1}");
    free(result);
    assert_int_equal(store_find_client_id(st, "c1", "k2", &seq, &result), KEFU_ENOENT);
    /* the same client_id in another conversation is fine */
    make_conv(&c, "c2", "cust-1", "app");
    put_conv(st, &c);
    assert_int_equal(add_msg(st, "c2", 1, "customer", "hello", "k1"), 0);
    /* a batch that overflows is refused whole */
    store_batch_init(&b);
    for (int i = 0; i <= STORE_BATCH_MAX; i++)
        store_add_event(&b, "c1", 1, "x", NULL, NULL, NULL);
    assert_int_equal(store_write(st, &b), KEFU_ERANGE);
    store_close(st);
}

struct hist {
    char ids[8][40];
    int n;
};

static int hist_fn(void *ctx, const struct store_conv *c)
{
    struct hist *h = ctx;
    snprintf(h->ids[h->n++], 40, "%s", c->id);
    return 0;
}

/* 1.4 a customer's conversations on every channel, newest first; one moved to another customer */
static void test_customer_history(void **state)
{
    struct fixture *f = *state;
    struct store *st;
    assert_int_equal(store_open(f->path, NULL, &st), 0);
    const char *chan[] = {"web", "app", "wechat"};
    for (int i = 0; i < 3; i++) {
        struct store_conv c;
        char id[8];
        snprintf(id, sizeof id, "h%d", i);
        make_conv(&c, id, "cust-9", chan[i]);
        c.created_at = 100 + i;
        put_conv(st, &c);
    }
    struct store_conv other;
    make_conv(&other, "o1", "cust-8", "web");
    put_conv(st, &other);
    struct hist h = {0};
    assert_int_equal(store_customer_convs(st, "cust-9", 10, hist_fn, &h), 0);
    assert_int_equal(h.n, 3);
    assert_string_equal(h.ids[0], "h2");
    assert_string_equal(h.ids[2], "h0");
    /* a conversation read and written again with another customer (a visitor who logged in) is theirs */
    struct store_conv c;
    assert_int_equal(store_get_conv(st, "h1", &c), 0);
    snprintf(c.customer, sizeof c.customer, "cust-8");
    c.updated_at = 1200;
    put_conv(st, &c);
    store_conv_release(&c);
    assert_int_equal(store_get_conv(st, "h1", &c), 0);
    assert_string_equal(c.customer, "cust-8");
    assert_string_equal(c.token, "tok-h1");
    assert_string_equal(c.channel, "app");
    store_conv_release(&c);
    struct hist h9 = {0}, h8 = {0};
    assert_int_equal(store_customer_convs(st, "cust-9", 10, hist_fn, &h9), 0);
    assert_int_equal(store_customer_convs(st, "cust-8", 10, hist_fn, &h8), 0);
    assert_int_equal(h9.n, 2);
    assert_int_equal(h8.n, 2);
    store_close(st);
}

static void exec_sql(const char *path, const char *s)
{
    sqlite3 *db;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    char *err = NULL;
    int rc = sqlite3_exec(db, s, NULL, NULL, &err);
    if (rc != SQLITE_OK)
        fail_msg("sql failed: %s", err ? err : "?");
    sqlite3_close(db);
}

/* The single integer query q returns on the SQLite file at path. */
static long long sql_count(const char *path, const char *q)
{
    sqlite3 *db;
    sqlite3_stmt *s;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(db, q, -1, &s, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(s), SQLITE_ROW);
    long long n = sqlite3_column_int64(s, 0);
    sqlite3_finalize(s);
    sqlite3_close(db);
    return n;
}

/* 1 when the SQLite file at path has a table called name. */
static int has_table(const char *path, const char *name)
{
    sqlite3 *db;
    sqlite3_stmt *s;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(db, "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?1",
                                        -1, &s, NULL),
                     SQLITE_OK);
    sqlite3_bind_text(s, 1, name, -1, SQLITE_STATIC);
    int found = sqlite3_step(s) == SQLITE_ROW;
    sqlite3_finalize(s);
    sqlite3_close(db);
    return found;
}

/* The tables each migration adds: a file of version v has those with since <= v. */
static const struct {
    const char *table;
    int since;
} schema_tables[] = {{"messages", 1}, {"events", 2},    {"feedback", 2}, {"outbox", 4},
                     {"agents", 5},   {"responses", 6}, {"answers", 7}};

/* 2.1 every schema (1..current) is created with its own tables and migrates to the current one, rows kept */
static void test_migrations(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(STORE_SCHEMA_VERSION, 7);
    for (int v = 1; v <= STORE_SCHEMA_VERSION; v++) {
        char path[128];
        snprintf(path, sizeof path, "%s/v%d.db", f->dir, v);
        assert_int_equal(store_create_version(path, v), 0);
        for (size_t t = 0; t < sizeof schema_tables / sizeof *schema_tables; t++)
            if (has_table(path, schema_tables[t].table) != (v >= schema_tables[t].since))
                fail_msg("version %d: table %s %s", v, schema_tables[t].table,
                         v >= schema_tables[t].since ? "missing" : "too early");
        /* a queued conversation and a message written by a version-1 program */
        exec_sql(path, "INSERT INTO customers VALUES ('cu', 'Old', 'vip', 1, 2);"
                       "INSERT INTO conversations(id, token, customer, channel, state, queue, created_at,"
                       " updated_at, last_seq) VALUES ('old', 't', 'cu', 'web', 1, 'general', 10, 20, 1);"
                       "INSERT INTO messages(conv, seq, sender, text, created_at)"
                       " VALUES ('old', 1, 'customer', 'from the past', 10);");
        struct store *st;
        assert_int_equal(store_open(path, NULL, &st), 0);
        assert_int_equal(store_version(st), STORE_SCHEMA_VERSION);
        struct store_conv c;
        assert_int_equal(store_get_conv(st, "old", &c), 0);
        assert_int_equal(c.state, STORE_QUEUED);
        assert_string_equal(c.queue, "general");
        if (v < 3)
            assert_int_equal(c.queued_at, 20); /* the 2 → 3 step dates queued rows */
        assert_string_equal(c.memory, "{}");
        store_conv_release(&c);
        struct collect col = {0};
        assert_int_equal(store_messages(st, "old", 0, 0, collect_msg, &col), 0);
        assert_int_equal(col.n, 1);
        assert_string_equal(col.first_text, "from the past");
        /* the new columns and tables work */
        assert_int_equal(add_msg(st, "old", 2, "bot", "new", "cid"), 0);
        struct store_batch b;
        store_batch_init(&b);
        store_add_response(&b, "old", 30, "general", "web", "amy", 12);
        store_add_answer(&b, "old", 2, 30, "order.refund_status", "a");
        assert_int_equal(store_write(st, &b), 0);
        struct store_agent ag;
        assert_int_equal(store_get_agent(st, "nobody", 0, &ag), KEFU_ENOENT);
        store_close(st);
        for (size_t t = 0; t < sizeof schema_tables / sizeof *schema_tables; t++)
            if (!has_table(path, schema_tables[t].table))
                fail_msg("from version %d: table %s missing", v, schema_tables[t].table);
    }
    /* a file from a newer program is refused */
    char path[128];
    snprintf(path, sizeof path, "%s/future.db", f->dir);
    exec_sql(path, "PRAGMA user_version=99");
    struct store *st;
    assert_int_equal(store_open(path, NULL, &st), KEFU_ERANGE);
    assert_null(st);
}

/* 3.1 what store_write() acknowledged is in the file after a reopen */
static void test_reopen(void **state)
{
    struct fixture *f = *state;
    struct store *st;
    struct store_opts o = {.group_commit = -1};
    assert_int_equal(store_open(f->path, &o, &st), 0);
    struct store_conv c;
    make_conv(&c, "c1", "cu", "web");
    put_conv(st, &c);
    for (int i = 1; i <= 50; i++)
        assert_int_equal(add_msg(st, "c1", i, "customer", "m", NULL), 0);
    store_close(st);
    assert_int_equal(store_open(f->path, NULL, &st), 0);
    assert_int_equal(count_msgs(st, "c1"), 50);
    store_close(st);
}

/* 3.2 a child acknowledges messages and is killed with SIGKILL; every acknowledged one is there */
static void test_kill9(void **state)
{
    struct fixture *f = *state;
    int fd[2];
    assert_int_equal(pipe(fd), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(fd[0]);
        struct store *st;
        if (store_open(f->path, NULL, &st) < 0)
            _exit(1);
        struct store_conv c;
        make_conv(&c, "k", "cu", "web");
        struct store_batch b;
        store_batch_init(&b);
        store_put_conv(&b, &c, NULL);
        if (store_write(st, &b) < 0)
            _exit(1);
        for (long i = 1;; i++) {
            if (add_msg(st, "k", i, "customer", "acked", NULL) < 0)
                _exit(1);
            if (write(fd[1], &i, sizeof i) != sizeof i) /* acknowledged */
                _exit(1);
        }
    }
    close(fd[1]);
    long last = 0, i;
    while (last < 200 && read(fd[0], &i, sizeof i) == sizeof i)
        last = i;
    kill(pid, SIGKILL);
    int status;
    waitpid(pid, &status, 0);
    while (read(fd[0], &i, sizeof i) == sizeof i) /* acks written before the kill */
        last = i;
    close(fd[0]);
    assert_true(WIFSIGNALED(status));
    struct store *st;
    assert_int_equal(store_open(f->path, NULL, &st), 0);
    int n = count_msgs(st, "k");
    assert_true(n >= last);
    assert_true(n <= last + 1); /* at most the one in flight */
    store_close(st);
}

struct writer_arg {
    struct store *st;
    int id, n;
};

static void *writer_thread(void *p)
{
    struct writer_arg *a = p;
    char conv[16];
    snprintf(conv, sizeof conv, "w%d", a->id);
    for (int i = 1; i <= a->n; i++)
        if (add_msg(a->st, conv, i, "customer", "x", NULL) != 0)
            return (void *)1;
    return NULL;
}

/* 4.1 eight threads write at once: every write lands, and commits are shared */
static void test_concurrent_group_commit(void **state)
{
    struct fixture *f = *state;
    struct store *st;
    assert_int_equal(store_open(f->path, NULL, &st), 0);
    enum { THREADS = 8, EACH = 100 };
    pthread_t t[THREADS];
    struct writer_arg a[THREADS];
    for (int k = 0; k < THREADS; k++) {
        char id[16];
        snprintf(id, sizeof id, "w%d", k);
        struct store_conv c;
        make_conv(&c, id, "cu", "web");
        put_conv(st, &c);
    }
    struct store_stats before, after;
    store_stats(st, &before);
    for (int k = 0; k < THREADS; k++) {
        a[k] = (struct writer_arg){st, k, EACH};
        pthread_create(&t[k], NULL, writer_thread, &a[k]);
    }
    for (int k = 0; k < THREADS; k++) {
        void *r;
        pthread_join(t[k], &r);
        assert_null(r);
    }
    store_stats(st, &after);
    assert_int_equal(after.batches - before.batches, THREADS * EACH);
    assert_true(after.commits - before.commits < THREADS * EACH); /* some commits held several */
    for (int k = 0; k < THREADS; k++) {
        char id[16];
        snprintf(id, sizeof id, "w%d", k);
        assert_int_equal(count_msgs(st, id), EACH);
    }
    store_close(st);
}

struct rows {
    char keys[16][64];
    long long counts[16];
    int n;
};

static int row_fn(void *ctx, const char *key, long long count, double avg)
{
    struct rows *r = ctx;
    if (r->n < 16) {
        snprintf(r->keys[r->n], 64, "%s", key ? key : "(null)");
        r->counts[r->n++] = count;
    }
    return 0;
}

/* 5.1 the editors' report aggregates */
static void test_report(void **state)
{
    struct fixture *f = *state;
    struct store *st;
    assert_int_equal(store_open(f->path, NULL, &st), 0);
    struct store_conv c;
    make_conv(&c, "r", "cu", "web");
    put_conv(st, &c);
    const char *src[] = {"rule", "fallback", "fallback", "handoff"};
    const char *txt[] = {"where is my order", "blah", "blah", "agent"};
    for (int i = 0; i < 4; i++) {
        struct store_msg m = {.seq = i + 1,
                              .from = "customer",
                              .text = txt[i],
                              .source = src[i],
                              .intent = i == 0   ? "order.status"
                                        : i == 3 ? "human.agent"
                                                 : NULL,
                              .at = 1};
        struct store_batch b;
        store_batch_init(&b);
        store_add_message(&b, "r", &m);
        if (i == 3)
            store_add_event(&b, "r", 1, "handoff", NULL, "general", "requested");
        assert_int_equal(store_write(st, &b), 0);
    }
    struct store_batch b;
    store_batch_init(&b);
    store_add_feedback(&b, "r", 2, 4, "ok");
    assert_int_equal(store_write(st, &b), 0);
    struct rows r = {0};
    assert_int_equal(store_report(st, STORE_R_UNANSWERED, row_fn, &r), 0);
    assert_int_equal(r.n, 1);
    assert_string_equal(r.keys[0], "blah");
    assert_int_equal(r.counts[0], 2);
    memset(&r, 0, sizeof r);
    assert_int_equal(store_report(st, STORE_R_SOURCES, row_fn, &r), 0);
    assert_int_equal(r.n, 3);
    assert_string_equal(r.keys[0], "fallback");
    memset(&r, 0, sizeof r);
    assert_int_equal(store_report(st, STORE_R_HANDOFFS, row_fn, &r), 0);
    assert_string_equal(r.keys[0], "requested");
    memset(&r, 0, sizeof r);
    assert_int_equal(store_report(st, STORE_R_INTENT_RATING, row_fn, &r), 0);
    assert_int_equal(r.n, 1);
    assert_string_equal(r.keys[0], "order.status");
    memset(&r, 0, sizeof r);
    assert_int_equal(store_report(st, STORE_R_TOTALS, row_fn, &r), 0);
    assert_int_equal(r.n, 4);
    assert_int_equal(r.counts[1], 4); /* customer messages */
    assert_int_equal(store_report(st, 99, row_fn, &r), KEFU_EINVAL);
    store_close(st);
}

/* 6.1 allocation failures during open leave nothing behind */
static void test_open_alloc_failures(void **state)
{
    struct fixture *f = *state;
    for (long n = 1; n < 8; n++) {
        struct store *st = NULL;
        kefu_alloc_fail_after(n);
        int rc = store_open(f->path, NULL, &st);
        kefu_alloc_fail_after(0);
        if (rc == 0)
            store_close(st);
        else
            assert_null(st);
    }
}

/* 1 if the file at path holds the bytes of s (a missing file holds nothing). */
static int file_has(const char *path, const char *s)
{
    FILE *fp = fopen(path, "rb");
    if (!fp)
        return 0;
    static char buf[8 << 20];
    size_t n = fread(buf, 1, sizeof buf, fp);
    fclose(fp);
    return memmem(buf, n, s, strlen(s)) != NULL;
}

/* 7.1 erasing a customer removes every row of theirs and every byte of their text from the
 * file and its WAL (secure_delete, checkpoint TRUNCATE), while another customer's stay */
static void test_erase(void **state)
{
    struct fixture *f = *state;
    char wal[128];
    snprintf(wal, sizeof wal, "%s-wal", f->path);
    struct store *st;
    assert_int_equal(store_open(f->path, NULL, &st), 0);
    struct store_conv c;
    char big[3000]; /* past a page: overflow pages too */
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = 0;
    memcpy(big + 1000, "CANARY-ERASE-42", 15);
    const char *ids[] = {"c1", "c2"};
    for (int k = 0; k < 2; k++) {
        make_conv(&c, ids[k], "ann", "web");
        put_conv(st, &c);
        assert_int_equal(add_msg(st, ids[k], 1, "customer", "my code is CANARY-ERASE-42", "k1"), 0);
        assert_int_equal(add_msg(st, ids[k], 2, "bot", big, NULL), 0);
    }
    struct store_batch b;
    store_batch_init(&b);
    store_add_event(&b, "c1", 1001, "handoff", NULL, "general", "requested");
    store_add_feedback(&b, "c1", 1002, 4, "CANARY-ERASE-42 thanks");
    assert_int_equal(store_write(st, &b), 0);
    make_conv(&c, "c3", "bob", "web");
    put_conv(st, &c);
    assert_int_equal(add_msg(st, "c3", 1, "customer", "KEEP-BOB-7", NULL), 0);
    /* what is derived from the conversations: webhook events, first responses, A/B answers; for both */
    static const char *const hook[] = {"http://127.0.0.1:9/h", NULL};
    for (int k = 0; k < 3; k++) {
        const char *conv = k < 2 ? ids[k] : "c3";
        char ev[16];
        snprintf(ev, sizeof ev, "ev_%d", k);
        store_batch_init(&b);
        store_add_outbox(&b, conv, 1003, "agent_message", ev,
                         k < 2 ? "{\"text\":\"CANARY-ERASE-42\"}" : "{\"text\":\"KEEP-BOB-7\"}", hook);
        store_add_response(&b, conv, 1003, "general", "web", "amy", 5);
        store_add_answer(&b, conv, 2, 1003, "order.refund_status", "a");
        assert_int_equal(store_write(st, &b), 0);
    }
    assert_true(file_has(f->path, "CANARY-ERASE-42") || file_has(wal, "CANARY-ERASE-42"));

    struct store_erased e;
    store_batch_init(&b);
    assert_int_equal(store_erase_customer(&b, "ann", &e), 0);
    assert_int_equal(store_write(st, &b), 0);
    assert_int_equal(e.conversations, 2);
    assert_int_equal(e.messages, 4);
    assert_int_equal(e.events, 1);
    assert_int_equal(e.feedback, 1);
    assert_int_equal(e.customers, 1);
    struct store_conv got;
    assert_int_equal(store_get_conv(st, "c1", &got), KEFU_ENOENT);
    struct store_customer cu;
    assert_int_equal(store_get_customer(st, "ann", &cu), KEFU_ENOENT);
    static const char *const derived[] = {"outbox", "responses", "answers"};
    for (int k = 0; k < 3; k++) {
        char q[128];
        snprintf(q, sizeof q, "SELECT count(*) FROM %s WHERE conv IN ('c1', 'c2')", derived[k]);
        assert_int_equal(sql_count(f->path, q), 0);
        snprintf(q, sizeof q, "SELECT count(*) FROM %s WHERE conv = 'c3'", derived[k]);
        assert_int_equal(sql_count(f->path, q), 1);
    }
    assert_int_equal(count_msgs(st, "c3"), 1);
    /* the store is still open: the WAL was truncated, the freed pages zeroed */
    assert_false(file_has(f->path, "CANARY-ERASE-42"));
    assert_false(file_has(wal, "CANARY-ERASE-42"));
    assert_true(file_has(f->path, "KEEP-BOB-7"));
    /* an unknown customer erases nothing */
    store_batch_init(&b);
    store_erase_customer(&b, "nobody", &e);
    assert_int_equal(store_write(st, &b), 0);
    assert_int_equal(e.conversations + e.messages + e.customers, 0);
    store_close(st);
}

/* Reads c's row through a second handle without a cache: what the file holds. */
static void read_uncached(const char *path, const char *id, struct store_conv *out)
{
    struct store_opts o = {.cache_slots = -1};
    struct store *raw;
    assert_int_equal(store_open(path, &o, &raw), 0);
    assert_int_equal(store_get_conv(raw, id, out), 0);
    store_close(raw);
}

/* 4.3 the row cache answers repeated reads and stays equal to the file:
 * after an update, after an update that keeps the memory, after a batch
 * that failed, and after an erase */
static void test_cache(void **state)
{
    struct fixture *f = *state;
    struct store *st;
    assert_int_equal(store_open(f->path, NULL, &st), 0);
    struct store_conv c, got, disk;
    make_conv(&c, "k1", "kim", "web");
    c.memory = "{\"slots\":{\"order\":\"A1\"}}";
    put_conv(st, &c);
    struct store_stats s0, s1;
    store_stats(st, &s0);
    assert_int_equal(store_get_conv(st, "k1", &got), 0); /* a miss fills the cache */
    store_conv_release(&got);
    assert_int_equal(store_get_conv(st, "k1", &got), 0);
    store_stats(st, &s1);
    assert_int_equal(s1.cache_misses - s0.cache_misses, 1);
    assert_int_equal(s1.cache_hits - s0.cache_hits, 1);
    assert_string_equal(got.memory, c.memory);
    store_conv_release(&got);
    /* the token alone, from the copy, and for an id that does not exist */
    char tok[40];
    assert_int_equal(store_get_token(st, "k1", tok, sizeof tok), 0);
    assert_string_equal(tok, "tok-k1");
    store_stats(st, &s0);
    assert_int_equal(s0.cache_hits - s1.cache_hits, 1);
    assert_int_equal(store_get_token(st, "nobody", tok, sizeof tok), KEFU_ENOENT);

    /* an update is seen at once, memory and all */
    c.state = STORE_QUEUED;
    c.last_seq = 7;
    snprintf(c.queue, sizeof c.queue, "billing");
    c.memory = "{\"n\":2}";
    struct store_batch b;
    store_batch_init(&b);
    store_put_conv(&b, &c, NULL);
    assert_int_equal(store_write(st, &b), 0);
    assert_int_equal(store_get_conv(st, "k1", &got), 0);
    assert_int_equal(got.state, STORE_QUEUED);
    assert_int_equal(got.last_seq, 7);
    assert_string_equal(got.queue, "billing");
    assert_string_equal(got.memory, "{\"n\":2}");
    store_conv_release(&got);

    /* memory NULL keeps the stored memory, in the file and in the copy */
    c.memory = NULL;
    c.misses = 3;
    store_batch_init(&b);
    store_put_conv(&b, &c, NULL);
    assert_int_equal(store_write(st, &b), 0);
    assert_int_equal(store_get_conv(st, "k1", &got), 0);
    read_uncached(f->path, "k1", &disk);
    assert_int_equal(got.misses, 3);
    assert_int_equal(disk.misses, 3);
    assert_string_equal(got.memory, disk.memory);
    assert_string_equal(got.memory, "{\"n\":2}");
    assert_string_equal(got.token, disk.token);
    assert_int_equal(got.created_at, disk.created_at);
    store_conv_release(&got);
    store_conv_release(&disk);

    /* a batch that failed (a repeated client_id) changed neither */
    assert_int_equal(add_msg(st, "k1", 1, "customer", "hi", "dup"), 0);
    c.state = STORE_RESOLVED;
    struct store_msg m = {.seq = 2, .from = "customer", .text = "hi", .client_id = "dup", .at = 1002};
    store_batch_init(&b);
    store_put_conv(&b, &c, NULL);
    store_add_message(&b, "k1", &m);
    assert_int_equal(store_write(st, &b), KEFU_ECONFLICT);
    assert_int_equal(store_get_conv(st, "k1", &got), 0);
    assert_int_equal(got.state, STORE_QUEUED);
    store_conv_release(&got);

    /* customers: a committed profile replaces the copy */
    struct store_customer cu;
    assert_int_equal(store_get_customer(st, "kim", &cu), 0);
    assert_string_equal(cu.tier, "vip");
    struct store_customer nu = {.first_seen = 1, .last_seen = 5000};
    snprintf(nu.id, sizeof nu.id, "kim");
    snprintf(nu.tier, sizeof nu.tier, "gold");
    store_batch_init(&b);
    store_put_customer(&b, &nu);
    assert_int_equal(store_write(st, &b), 0);
    assert_int_equal(store_get_customer(st, "kim", &cu), 0);
    assert_string_equal(cu.tier, "gold");
    assert_string_equal(cu.name, "Ann"); /* an empty name keeps the stored one */
    assert_int_equal(cu.last_seen, 5000);
    assert_int_equal(cu.first_seen, 1000);

    /* an erase drops every copy */
    struct store_erased e;
    store_batch_init(&b);
    store_erase_customer(&b, "kim", &e);
    assert_int_equal(store_write(st, &b), 0);
    assert_int_equal(store_get_conv(st, "k1", &got), KEFU_ENOENT);
    assert_int_equal(store_get_customer(st, "kim", &cu), KEFU_ENOENT);
    store_close(st);
}

/* 4.4 a row read before a commit can not overwrite what the commit wrote:
 * a reader's fill after a commit to its slot is dropped */
static void test_cache_stale_fill(void **state)
{
    (void)state;
    struct store_cache *sc;
    assert_int_equal(store_cache_new(4, 4, &sc), 0);
    struct store_conv old, cur, got;
    make_conv(&old, "r1", "ray", "web");
    old.memory = "{\"v\":1}";
    unsigned long gen;
    assert_int_equal(store_cache_get_conv(sc, "r1", &got, &gen), KEFU_ENOENT);
    cur = old;
    cur.last_seq = 2;
    cur.memory = "{\"v\":2}";
    store_cache_wrote_conv(sc, &cur); /* the commit lands between the read and the fill */
    store_cache_fill_conv(sc, &old, gen);
    assert_int_equal(store_cache_get_conv(sc, "r1", &got, &gen), KEFU_ENOENT);
    store_cache_fill_conv(sc, &cur, gen); /* a read after the commit fills */
    assert_int_equal(store_cache_get_conv(sc, "r1", &got, &gen), 0);
    assert_int_equal(got.last_seq, 2);
    assert_string_equal(got.memory, "{\"v\":2}");
    store_conv_release(&got);
    /* a fill before the commit is updated by it */
    struct store_conv other;
    make_conv(&other, "r2", "ray", "web");
    other.memory = "{}";
    unsigned long g2;
    assert_int_equal(store_cache_get_conv(sc, "r2", &got, &g2), KEFU_ENOENT);
    store_cache_fill_conv(sc, &other, g2);
    other.misses = 4;
    other.memory = NULL; /* keeps the copy's memory */
    store_cache_wrote_conv(sc, &other);
    assert_int_equal(store_cache_get_conv(sc, "r2", &got, &g2), 0);
    assert_int_equal(got.misses, 4);
    assert_string_equal(got.memory, "{}");
    store_conv_release(&got);
    store_cache_clear(sc);
    assert_int_equal(store_cache_get_conv(sc, "r2", &got, &g2), KEFU_ENOENT);
    store_cache_free(sc);
}

/* 4.5 a cache of four slots is one set of four: four rows stay side by
 * side, a fifth evicts the least recently used one, and a commit to the
 * set drops a fill read before it whatever slot it would have taken */
static void test_cache_sets(void **state)
{
    (void)state;
    struct store_cache *sc;
    assert_int_equal(store_cache_new(4, 4, &sc), 0);
    struct store_conv c, got;
    unsigned long gen;
    char id[8], tok[40];
    for (int i = 0; i < 4; i++) {
        snprintf(id, sizeof id, "s%d", i);
        make_conv(&c, id, "sam", "web");
        c.memory = "{}";
        assert_int_equal(store_cache_get_conv(sc, id, &got, &gen), KEFU_ENOENT);
        store_cache_fill_conv(sc, &c, gen);
    }
    for (int i = 0; i < 4; i++) { /* all four kept; s0 read last */
        snprintf(id, sizeof id, "s%d", 3 - i);
        assert_int_equal(store_cache_get_token(sc, id, tok, sizeof tok), 0);
        char want[40];
        snprintf(want, sizeof want, "tok-%s", id);
        assert_string_equal(tok, want);
    }
    make_conv(&c, "s4", "sam", "web");
    c.memory = "{\"n\":4}";
    assert_int_equal(store_cache_get_conv(sc, "s4", &got, &gen), KEFU_ENOENT);
    store_cache_fill_conv(sc, &c, gen);
    assert_int_equal(store_cache_get_token(sc, "s3", tok, sizeof tok), KEFU_ENOENT); /* the oldest read */
    for (int i = 0; i < 3; i++) {
        snprintf(id, sizeof id, "s%d", i);
        assert_int_equal(store_cache_get_token(sc, id, tok, sizeof tok), 0);
    }
    assert_int_equal(store_cache_get_conv(sc, "s4", &got, &gen), 0);
    assert_string_equal(got.memory, "{\"n\":4}");
    store_conv_release(&got);
    /* a commit to another id of the set still drops a stale fill */
    make_conv(&c, "s3", "sam", "web");
    c.memory = "{}";
    assert_int_equal(store_cache_get_conv(sc, "s3", &got, &gen), KEFU_ENOENT);
    struct store_conv other;
    make_conv(&other, "s1", "sam", "web");
    other.memory = NULL;
    store_cache_wrote_conv(sc, &other);
    store_cache_fill_conv(sc, &c, gen);
    assert_int_equal(store_cache_get_token(sc, "s3", tok, sizeof tok), KEFU_ENOENT);
    /* customers: the same sets */
    struct store_customer cu, cgot;
    for (int i = 0; i < 5; i++) {
        memset(&cu, 0, sizeof cu);
        snprintf(cu.id, sizeof cu.id, "u%d", i);
        assert_int_equal(store_cache_get_customer(sc, cu.id, &cgot, &gen), KEFU_ENOENT);
        store_cache_fill_customer(sc, &cu, gen);
    }
    assert_int_equal(store_cache_get_customer(sc, "u0", &cgot, &gen), KEFU_ENOENT);
    assert_int_equal(store_cache_get_customer(sc, "u4", &cgot, &gen), 0);
    assert_string_equal(cgot.id, "u4");
    store_cache_wrote_customer(sc, "u4");
    assert_int_equal(store_cache_get_customer(sc, "u4", &cgot, &gen), KEFU_ENOENT);
    store_cache_free(sc);
}

/* What the completions of test_submit record. */
struct submitted {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int calls, rc[4], on_caller;
    pthread_t caller;
};

static void on_done(void *ctx, struct store_batch *b, int rc)
{
    struct submitted *s = ctx;
    pthread_mutex_lock(&s->lock);
    s->on_caller += pthread_equal(pthread_self(), s->caller);
    s->rc[s->calls++] = rc;
    pthread_cond_signal(&s->cond);
    pthread_mutex_unlock(&s->lock);
}

/* 4.2 store_submit() returns at once and completes each batch exactly once
 * on the writer thread, in order, with store_write()'s results: a stored
 * message, a repeated client_id (KEFU_ECONFLICT, nothing written); an
 * empty batch completes on the caller's thread */
static void test_submit(void **state)
{
    struct fixture *f = *state;
    struct store *st;
    assert_int_equal(store_open(f->path, NULL, &st), 0);
    struct store_conv c;
    make_conv(&c, "s1", "cu", "web");
    put_conv(st, &c);
    struct submitted s = {.caller = pthread_self()};
    pthread_mutex_init(&s.lock, NULL);
    pthread_cond_init(&s.cond, NULL);
    struct store_msg m1 = {.seq = 1, .from = "customer", .text = "a", .client_id = "k1", .at = 1};
    struct store_msg m2 = {.seq = 2, .from = "customer", .text = "b", .client_id = "k1", .at = 2};
    struct store_batch b1, b2, b3;
    store_batch_init(&b1);
    store_add_message(&b1, "s1", &m1);
    store_batch_init(&b2);
    store_add_message(&b2, "s1", &m2);
    store_submit(st, &b1, on_done, &s);
    store_submit(st, &b2, on_done, &s);
    pthread_mutex_lock(&s.lock);
    while (s.calls < 2)
        pthread_cond_wait(&s.cond, &s.lock);
    pthread_mutex_unlock(&s.lock);
    assert_int_equal(s.rc[0], 0);
    assert_int_equal(s.rc[1], KEFU_ECONFLICT);
    assert_int_equal(s.on_caller, 0);
    assert_int_equal(count_msgs(st, "s1"), 1);
    store_batch_init(&b3);
    store_submit(st, &b3, on_done, &s); /* nothing to write */
    assert_int_equal(s.calls, 3);
    assert_int_equal(s.on_caller, 1);
    store_close(st);
    assert_int_equal(s.calls, 3); /* nothing completes twice */
    pthread_cond_destroy(&s.cond);
    pthread_mutex_destroy(&s.lock);
}

/* ---- the outbox ---- */

struct outrows {
    int n;
    long long id[16];
    char conv[16][16], target[16][16], event[16][16];
    int state[16], attempts[16];
};
static int collect_out(void *ctx, const struct store_outbox *o)
{
    struct outrows *r = ctx;
    if (r->n < 16) {
        r->id[r->n] = o->id;
        snprintf(r->conv[r->n], sizeof r->conv[0], "%s", o->conv);
        snprintf(r->target[r->n], sizeof r->target[0], "%s", o->target);
        snprintf(r->event[r->n], sizeof r->event[0], "%s", o->event);
        r->state[r->n] = o->state;
        r->attempts[r->n] = o->attempts;
    }
    r->n++;
    return 0;
}

static struct outrows due(struct store *st, const char *target, long long now_ms)
{
    struct outrows r = {0};
    assert_int_equal(store_outbox_due(st, target, now_ms, 0, collect_out, &r), 0);
    return r;
}

static void mark(struct store *st, long long id, int state, int attempts, long long next_ms)
{
    struct store_outbox o = {.id = id,
                             .state = state,
                             .attempts = attempts,
                             .next_ms = next_ms,
                             .error = "x",
                             .done_at = state == STORE_OUT_PENDING ? 0 : 2000};
    struct store_batch b;
    store_batch_init(&b);
    store_mark_outbox(&b, &o);
    assert_int_equal(store_write(st, &b), 0);
}

/* 7.1 an event is one row per target, written with its change; each conversation's
 * oldest pending row alone is due; marking, dead letters, replay, prune, erase */
static void test_outbox(void **state)
{
    struct fixture *f = *state;
    struct store *st;
    assert_int_equal(store_open(f->path, NULL, &st), 0);
    struct store_conv a, c;
    make_conv(&a, "a", "ann", "web");
    make_conv(&c, "c", "cat", "web");
    put_conv(st, &a);
    put_conv(st, &c);
    const char *both[] = {"t1", "t2", NULL}, *one[] = {"t1", NULL};
    const struct {
        const char *conv, *event, *const *targets;
    } evs[] = {{"a", "e1", both}, {"a", "e2", one}, {"c", "e3", both}};
    for (int i = 0; i < 3; i++) {
        struct store_batch b;
        store_batch_init(&b);
        store_add_event(&b, evs[i].conv, 1000, "claim", "bob", "general", NULL);
        store_add_outbox(&b, evs[i].conv, 1000, "claim", evs[i].event, "{}", evs[i].targets);
        assert_int_equal(store_write(st, &b), 0);
    }
    /* a failed batch leaves no outbox row behind */
    struct store_batch bad;
    store_batch_init(&bad);
    store_add_outbox(&bad, "a", 1000, "claim", "e-lost", "{}", both);
    assert_int_equal(add_msg(st, "a", 1, "customer", "hi", "x1"), 0);
    struct store_msg dup = {.seq = 2, .from = "customer", .text = "again", .client_id = "x1", .at = 1000};
    store_add_message(&bad, "a", &dup);
    assert_int_equal(store_write(st, &bad), KEFU_ECONFLICT);

    struct outrows r = due(st, "t1", 5000);
    assert_int_equal(r.n, 2); /* a's first (e1), c's (e3); e2 waits behind e1 */
    assert_string_equal(r.event[0], "e1");
    assert_string_equal(r.event[1], "e3");
    long long e1 = r.id[0], e3 = r.id[1];
    r = due(st, "t2", 5000);
    assert_int_equal(r.n, 2);
    mark(st, e1, STORE_OUT_DELIVERED, 1, 0);
    r = due(st, "t1", 5000);
    assert_int_equal(r.n, 2);
    assert_string_equal(r.event[0], "e2"); /* a's next one now */
    long long e2 = r.id[0];
    mark(st, e2, STORE_OUT_PENDING, 1, 9000); /* a retry not before 9000 ms */
    r = due(st, "t1", 5000);
    assert_int_equal(r.n, 1);
    assert_string_equal(r.event[0], "e3");
    r = due(st, "t1", 9000);
    assert_int_equal(r.n, 2);
    mark(st, e2, STORE_OUT_DEAD, 5, 0);
    mark(st, e3, STORE_OUT_DEAD, 5, 0);
    r = due(st, "t1", 99999);
    assert_int_equal(r.n, 0);
    struct outrows l = {0};
    assert_int_equal(store_outbox_list(st, STORE_OUT_DEAD, 0, collect_out, &l), 0);
    assert_int_equal(l.n, 2);
    assert_true(l.id[0] == e3 && l.id[1] == e2); /* newest first */
    struct store_batch b;
    long long n = -1;
    store_batch_init(&b);
    store_replay_outbox(&b, e2, &n);
    assert_int_equal(store_write(st, &b), 0);
    assert_int_equal(n, 1);
    r = due(st, "t1", 0);
    assert_int_equal(r.n, 1);
    assert_int_equal(r.id[0], e2);
    assert_int_equal(r.attempts[0], 0);
    store_batch_init(&b);
    store_replay_outbox(&b, 0, &n); /* every dead row: e3 */
    assert_int_equal(store_write(st, &b), 0);
    assert_int_equal(n, 1);
    l.n = 0;
    assert_int_equal(store_outbox_list(st, -1, 0, collect_out, &l), 0);
    assert_int_equal(l.n, 4); /* pending and dead: all but the delivered e1 on t1 */
    /* prune: delivered rows older than the cut (e1 was delivered at 2000) */
    for (long long cut = 2000; cut <= 2001; cut++) {
        store_batch_init(&b);
        store_prune_outbox(&b, cut);
        assert_int_equal(store_write(st, &b), 0);
        l.n = 0;
        assert_int_equal(store_outbox_list(st, STORE_OUT_DELIVERED, 0, collect_out, &l), 0);
        assert_int_equal(l.n, cut == 2000 ? 1 : 0);
    }
    /* erasing ann removes her rows, delivered or not; cat's stay */
    struct store_erased er;
    store_batch_init(&b);
    store_erase_customer(&b, "ann", &er);
    assert_int_equal(store_write(st, &b), 0);
    l.n = 0;
    assert_int_equal(store_outbox_list(st, -1, 0, collect_out, &l), 0);
    assert_int_equal(l.n, 2);
    assert_string_equal(l.conv[0], "c");
    assert_string_equal(l.conv[1], "c");
    store_close(st);
}

/* 8.1 agent accounts: add, a name or hash twice, update, read by name and by hash, list */
static int count_agent(void *ctx, const struct store_agent *a)
{
    (*(int *)ctx)++;
    return 0;
}

static void test_agents(void **state)
{
    struct fixture *f = *state;
    struct store *st;
    assert_int_equal(store_open(f->path, NULL, &st), 0);
    struct store_agent a = {.name = "alice",
                            .token_hash = "h1",
                            .skills = "general|billing",
                            .capacity = 2,
                            .created_at = 10,
                            .updated_at = 10};
    struct store_agent b = {.name = "bob", .token_hash = "h2", .created_at = 11, .updated_at = 11};
    struct store_batch w;
    store_batch_init(&w);
    store_add_agent(&w, &a);
    store_add_agent(&w, &b);
    assert_int_equal(store_write(st, &w), 0);
    struct store_agent dup = b;
    snprintf(dup.token_hash, sizeof dup.token_hash, "h3");
    store_batch_init(&w);
    store_add_agent(&w, &dup); /* the name again */
    assert_int_equal(store_write(st, &w), KEFU_ECONFLICT);
    snprintf(dup.name, sizeof dup.name, "carol");
    snprintf(dup.token_hash, sizeof dup.token_hash, "h1");
    store_batch_init(&w);
    store_add_agent(&w, &dup); /* alice's hash again */
    assert_int_equal(store_write(st, &w), KEFU_ECONFLICT);
    struct store_agent got;
    assert_int_equal(store_get_agent(st, "h1", 1, &got), 0);
    assert_string_equal(got.name, "alice");
    assert_string_equal(got.skills, "general|billing");
    assert_int_equal(got.capacity, 2);
    assert_int_equal(got.disabled, 0);
    a.disabled = 1;
    snprintf(a.token_hash, sizeof a.token_hash, "h9");
    a.updated_at = 20;
    store_batch_init(&w);
    store_update_agent(&w, &a);
    assert_int_equal(store_write(st, &w), 0);
    assert_int_equal(store_get_agent(st, "h1", 1, &got), KEFU_ENOENT); /* the old hash is gone */
    assert_int_equal(store_get_agent(st, "alice", 0, &got), 0);
    assert_true(got.disabled && strcmp(got.token_hash, "h9") == 0 && got.updated_at == 20 &&
                got.created_at == 10);
    struct store_agent ghost = {.name = "nobody", .token_hash = "h7"};
    store_batch_init(&w);
    store_update_agent(&w, &ghost);
    assert_int_equal(store_write(st, &w), KEFU_ENOENT);
    int n = 0;
    assert_int_equal(store_agents(st, count_agent, &n), 0);
    assert_int_equal(n, 2);
    store_close(st);
}

/* ---- the same cases on PostgreSQL (KEFU_TEST_PG) ---- */

/* Runs s on database db of the server; fails the test on an error. */
static void pg_exec(const char *db, const char *s)
{
    char uri[512];
    snprintf(uri, sizeof uri, "%s/%s", getenv("KEFU_TEST_PG"), db);
    PGconn *c = PQconnectdb(uri);
    if (PQstatus(c) != CONNECTION_OK)
        fail_msg("cannot connect to '%s': %s", uri, PQerrorMessage(c));
    PGresult *r = PQexec(c, s);
    int st = PQresultStatus(r);
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK)
        fail_msg("sql failed: %s", PQerrorMessage(c));
    PQclear(r);
    PQfinish(c);
}

/* Returns the first column of the first row of s on db as a number. */
static long long pg_value(const char *db, const char *s)
{
    char uri[512];
    snprintf(uri, sizeof uri, "%s/%s", getenv("KEFU_TEST_PG"), db);
    PGconn *c = PQconnectdb(uri);
    assert_int_equal(PQstatus(c), CONNECTION_OK);
    PGresult *r = PQexec(c, s);
    assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
    long long v = atoll(PQgetvalue(r, 0, 0));
    PQclear(r);
    PQfinish(c);
    return v;
}

/* A new, empty database: its name into name[64], its URI into uri[cap]. */
static void pg_new_db(char *name, char *uri, size_t cap)
{
    static int n;
    snprintf(name, 64, "kefu_t%d_%d", (int)getpid(), ++n);
    char s[128];
    snprintf(s, sizeof s, "CREATE DATABASE %s", name);
    pg_exec("postgres", s);
    assert_true(snprintf(uri, cap, "%s/%s", getenv("KEFU_TEST_PG"), name) < (int)cap);
}

struct pg_fixture {
    struct fixture f; /* first: the shared cases take it as theirs */
    char db[64];
};

static int pg_setup(void **state)
{
    struct pg_fixture *p = calloc(1, sizeof *p);
    snprintf(p->f.dir, sizeof p->f.dir, "/tmp/kefu-store-XXXXXX");
    assert_non_null(mkdtemp(p->f.dir));
    pg_new_db(p->db, p->f.path, sizeof p->f.path);
    *state = p;
    return 0;
}

static int pg_teardown(void **state)
{
    struct pg_fixture *p = *state;
    char s[128];
    snprintf(s, sizeof s, "DROP DATABASE %s WITH (FORCE)", p->db);
    pg_exec("postgres", s);
    rmdir(p->f.dir);
    free(p);
    return 0;
}

struct taker {
    struct store *st;
    struct outrows got;
};

/* Takes t2's due rows until none is left. */
static void *take_all(void *arg)
{
    struct taker *t = arg;
    for (int k = 0; k < 50; k++) {
        struct outrows r = {0};
        assert_int_equal(store_outbox_due(t->st, "t2", 5000, 3, collect_out, &r), 0);
        for (int i = 0; i < r.n && t->got.n < 16; i++)
            t->got.id[t->got.n++] = r.id[i];
    }
    return NULL;
}

/* P.7 the outbox on two nodes: a due row is taken with a lease, so the
 * other node does not get it until the lease ran out (its sender died);
 * two nodes asking at once never get the same row; dead rows replay;
 * erase removes the customer's rows */
static void test_pg_outbox(void **state)
{
    struct pg_fixture *p = *state;
    struct store *a, *b;
    assert_int_equal(store_open(p->f.path, NULL, &a), 0);
    assert_int_equal(store_open(p->f.path, NULL, &b), 0);
    const char *t1[] = {"t1", NULL}, *t2[] = {"t2", NULL};
    const char *ev[][2] = {{"a", "e1"}, {"a", "e2"}, {"c", "e3"}};
    for (int i = 0; i < 3; i++) {
        struct store_conv c;
        make_conv(&c, ev[i][0], ev[i][0][0] == 'a' ? "ann" : "cat", "web");
        put_conv(a, &c);
        struct store_batch w;
        store_batch_init(&w);
        store_add_outbox(&w, ev[i][0], 1000, "claim", ev[i][1], "{}", t1);
        assert_int_equal(store_write(a, &w), 0);
    }
    struct outrows r = due(a, "t1", 5000);
    assert_int_equal(r.n, 2); /* e1 and e3, taken by a */
    assert_string_equal(r.event[0], "e1");
    assert_string_equal(r.event[1], "e3");
    long long e1 = r.id[0];
    assert_int_equal(due(b, "t1", 5000).n, 0); /* b gets nothing while a holds them */
    assert_int_equal(due(a, "t1", 5000).n, 0); /* nor does a again */
    r = due(b, "t1", 5000 + 60000);            /* a died: the lease ran out */
    assert_int_equal(r.n, 2);
    assert_int_equal(r.attempts[0], 0);
    mark(b, e1, STORE_OUT_DELIVERED, 1, 0);
    r = due(a, "t1", 200000);
    assert_int_equal(r.n, 2); /* a's next (e2) and e3 once more */
    assert_string_equal(r.event[0], "e2");
    long long e2 = r.id[0];
    mark(a, e2, STORE_OUT_DEAD, 5, 0);
    struct outrows l = {0};
    assert_int_equal(store_outbox_list(b, STORE_OUT_DEAD, 0, collect_out, &l), 0);
    assert_int_equal(l.n, 1);
    long long n = -1;
    struct store_batch w;
    store_batch_init(&w);
    store_replay_outbox(&w, 0, &n);
    assert_int_equal(store_write(b, &w), 0);
    assert_int_equal(n, 1);
    r = due(b, "t1", 200000);
    assert_int_equal(r.n, 1); /* e2 again, from no attempts; e3 is still leased */
    assert_int_equal(r.id[0], e2);
    l.n = 0;
    assert_int_equal(store_outbox_list(a, -1, 0, collect_out, &l), 0);
    assert_int_equal(l.n, 2); /* e2 and e3 pending */
    /* sixteen conversations' rows taken by two nodes at once: each row by one */
    for (int i = 0; i < 16; i++) {
        char id[16];
        snprintf(id, sizeof id, "r%d", i);
        struct store_conv c;
        make_conv(&c, id, "cat", "web");
        put_conv(a, &c);
        store_batch_init(&w);
        store_add_outbox(&w, c.id, 1000, "claim", "ex", "{}", t2);
        assert_int_equal(store_write(a, &w), 0);
    }
    struct taker ta = {.st = a}, tb = {.st = b};
    pthread_t ha, hb;
    pthread_create(&ha, NULL, take_all, &ta);
    pthread_create(&hb, NULL, take_all, &tb);
    pthread_join(ha, NULL);
    pthread_join(hb, NULL);
    assert_int_equal(ta.got.n + tb.got.n, 16);
    for (int i = 0; i < ta.got.n; i++)
        for (int j = 0; j < tb.got.n; j++)
            assert_true(ta.got.id[i] != tb.got.id[j]);
    /* erasing ann removes her rows (e1, e2); cat's stay */
    struct store_erased er;
    store_batch_init(&w);
    store_erase_customer(&w, "ann", &er);
    assert_int_equal(store_write(a, &w), 0);
    assert_int_equal(pg_value(p->db, "SELECT count(*) FROM outbox WHERE conv = 'a'"), 0);
    assert_int_equal(pg_value(p->db, "SELECT count(*) FROM outbox"), 17);
    store_close(a);
    store_close(b);
}

/* P.1 a new database is at the current version; every older schema
 * migrates with its rows kept; a newer one is refused */
static void test_pg_migrations(void **state)
{
    struct pg_fixture *p = *state;
    struct store *st;
    assert_int_equal(store_open(p->f.path, NULL, &st), 0);
    assert_int_equal(store_version(st), STORE_SCHEMA_VERSION);
    store_close(st);
    assert_int_equal(pg_value(p->db, "SELECT version FROM kefu_schema"), STORE_SCHEMA_VERSION);
    for (int v = 1; v < STORE_SCHEMA_VERSION; v++) {
        char db[64], uri[512];
        pg_new_db(db, uri, sizeof uri);
        assert_int_equal(store_create_version(uri, v), 0);
        assert_int_equal(pg_value(db, "SELECT version FROM kefu_schema"), v);
        pg_exec(db, "INSERT INTO customers VALUES ('cu', 'Old', 'vip', 1, 2);"
                    "INSERT INTO conversations(id, token, customer, channel, state, queue, created_at,"
                    " updated_at, last_seq) VALUES ('old', 't', 'cu', 'web', 1, 'general', 10, 20, 1);"
                    "INSERT INTO messages(conv, seq, sender, text, created_at)"
                    " VALUES ('old', 1, 'customer', 'from the past', 10);");
        assert_int_equal(store_open(uri, NULL, &st), 0);
        assert_int_equal(store_version(st), STORE_SCHEMA_VERSION);
        struct store_conv c;
        assert_int_equal(store_get_conv(st, "old", &c), 0);
        assert_int_equal(c.state, STORE_QUEUED);
        assert_string_equal(c.queue, "general");
        if (v < 3)
            assert_int_equal(c.queued_at, 20); /* the 2 → 3 step dates queued rows */
        assert_string_equal(c.memory, "{}");
        store_conv_release(&c);
        assert_int_equal(count_msgs(st, "old"), 1);
        assert_int_equal(add_msg(st, "old", 2, "bot", "new", "cid"), 0);
        store_close(st);
        char s[128];
        snprintf(s, sizeof s, "DROP DATABASE %s WITH (FORCE)", db);
        pg_exec("postgres", s);
    }
    pg_exec(p->db, "UPDATE kefu_schema SET version = 99");
    st = (struct store *)1;
    assert_int_equal(store_open(p->f.path, NULL, &st), KEFU_ERANGE);
    assert_null(st);
}

struct racer {
    const char *uri;
    int rc, version;
};

static void *race_open(void *arg)
{
    struct racer *r = arg;
    struct store *st;
    if ((r->rc = store_open(r->uri, NULL, &st)) == 0) {
        r->version = store_version(st);
        store_close(st);
    }
    return NULL;
}

/* P.2 four nodes start at once on an empty database: one migrates under
 * the advisory lock, the others wait and find the schema current */
static void test_pg_migrate_race(void **state)
{
    struct pg_fixture *p = *state;
    enum { N = 4 };
    pthread_t t[N];
    struct racer r[N];
    for (int k = 0; k < N; k++) {
        r[k] = (struct racer){.uri = p->f.path, .rc = 1};
        pthread_create(&t[k], NULL, race_open, &r[k]);
    }
    for (int k = 0; k < N; k++) {
        pthread_join(t[k], NULL);
        assert_int_equal(r[k].rc, 0);
        assert_int_equal(r[k].version, STORE_SCHEMA_VERSION);
    }
    assert_int_equal(pg_value(p->db, "SELECT count(*) FROM kefu_schema"), 1);
}

/* P.3 two nodes on one database: each reads what the other wrote at once
 * (no row cache serves a stale row), and a client_id stored through one
 * node is a conflict through the other */
static void test_pg_two_nodes(void **state)
{
    struct pg_fixture *p = *state;
    struct store *a, *b;
    assert_int_equal(store_open(p->f.path, NULL, &a), 0);
    assert_int_equal(store_open(p->f.path, NULL, &b), 0);
    struct store_conv c, g;
    make_conv(&c, "n1", "cu", "web");
    put_conv(a, &c);
    assert_int_equal(store_get_conv(b, "n1", &g), 0);
    assert_int_equal(g.state, STORE_BOT);
    store_conv_release(&g);
    c.state = STORE_AGENT;
    snprintf(c.agent, sizeof c.agent, "alice");
    put_conv(b, &c);
    assert_int_equal(store_get_conv(a, "n1", &g), 0);
    assert_int_equal(g.state, STORE_AGENT);
    assert_string_equal(g.agent, "alice");
    store_conv_release(&g);
    assert_int_equal(add_msg(a, "n1", 1, "customer", "hello", "k1"), 0);
    assert_int_equal(add_msg(b, "n1", 2, "customer", "hello", "k1"), KEFU_ECONFLICT);
    assert_int_equal(count_msgs(b, "n1"), 1);
    struct store_stats s;
    store_stats(a, &s);
    assert_int_equal(s.cache_hits + s.cache_misses, 0); /* no cache on PostgreSQL */
    store_close(a);
    store_close(b);
}

/* P.6 a row read before another node changed it is not overwritten: the
 * stale write fails with KEFU_ECONFLICT and nothing of its batch is kept;
 * written again from a fresh read, it holds */
static void test_pg_stale_write(void **state)
{
    struct pg_fixture *p = *state;
    struct store *a, *b;
    assert_int_equal(store_open(p->f.path, NULL, &a), 0);
    assert_int_equal(store_open(p->f.path, NULL, &b), 0);
    assert_int_equal(store_shared(a), 1);
    struct store_conv c, ra, rb;
    make_conv(&c, "s1", "cu", "web");
    c.state = STORE_QUEUED;
    put_conv(a, &c);
    assert_int_equal(store_get_conv(a, "s1", &ra), 0);
    assert_int_equal(store_get_conv(b, "s1", &rb), 0);
    rb.state = STORE_AGENT; /* bob claims on node b */
    snprintf(rb.agent, sizeof rb.agent, "bob");
    struct store_batch w;
    store_batch_init(&w);
    store_put_conv(&w, &rb, NULL);
    assert_int_equal(store_write(b, &w), 0);
    ra.state = STORE_AGENT; /* alice, on node a, read it while it was still queued */
    snprintf(ra.agent, sizeof ra.agent, "alice");
    ra.last_seq = 1;
    struct store_msg m = {1, "system", "alice joined", "claim", NULL, 0, NULL, NULL, 1001};
    store_batch_init(&w);
    store_put_conv(&w, &ra, NULL);
    store_add_message(&w, "s1", &m);
    assert_int_equal(store_write(a, &w), KEFU_ECONFLICT);
    struct store_conv g;
    assert_int_equal(store_get_conv(a, "s1", &g), 0);
    assert_string_equal(g.agent, "bob");
    assert_int_equal(g.last_seq, 0);
    assert_int_equal(count_msgs(a, "s1"), 0);
    g.state = STORE_RESOLVED; /* from a fresh read the write holds */
    store_batch_init(&w);
    store_put_conv(&w, &g, NULL);
    assert_int_equal(store_write(a, &w), 0);
    store_conv_release(&g);
    assert_int_equal(store_get_conv(b, "s1", &g), 0);
    assert_int_equal(g.state, STORE_RESOLVED);
    store_conv_release(&g);
    store_conv_release(&ra);
    store_conv_release(&rb);
    store_close(a);
    store_close(b);
}

/* P.4 erasing a customer deletes every row of theirs, another's stay */
static void test_pg_erase(void **state)
{
    struct pg_fixture *p = *state;
    struct store *st;
    assert_int_equal(store_open(p->f.path, NULL, &st), 0);
    struct store_conv c;
    make_conv(&c, "e1", "ann", "web");
    put_conv(st, &c);
    assert_int_equal(add_msg(st, "e1", 1, "customer", "my code is CANARY-ERASE-42", "k1"), 0);
    struct store_batch b;
    store_batch_init(&b);
    store_add_feedback(&b, "e1", 1002, 4, "CANARY-ERASE-42 thanks");
    store_add_event(&b, "e1", 1001, "handoff", NULL, "general", "requested");
    assert_int_equal(store_write(st, &b), 0);
    make_conv(&c, "e2", "bob", "web");
    put_conv(st, &c);
    assert_int_equal(add_msg(st, "e2", 1, "customer", "KEEP-BOB-7", NULL), 0);
    struct store_erased e;
    store_batch_init(&b);
    assert_int_equal(store_erase_customer(&b, "ann", &e), 0);
    assert_int_equal(store_write(st, &b), 0);
    assert_int_equal(e.conversations, 1);
    assert_int_equal(e.messages, 1);
    assert_int_equal(e.events, 1);
    assert_int_equal(e.feedback, 1);
    assert_int_equal(e.customers, 1);
    assert_int_equal(pg_value(p->db, "SELECT count(*) FROM messages WHERE text LIKE '%CANARY-ERASE%'"), 0);
    assert_int_equal(pg_value(p->db, "SELECT count(*) FROM feedback WHERE comment LIKE '%CANARY-ERASE%'"), 0);
    assert_int_equal(pg_value(p->db, "SELECT count(*) FROM messages WHERE text = 'KEEP-BOB-7'"), 1);
    store_close(st);
}

/* P.5 no server at the address: the open fails with KEFU_EUNAVAIL */
static void test_pg_unavailable(void **state)
{
    struct store *st = (struct store *)1;
    assert_int_equal(store_open("postgresql://postgres@127.0.0.1:1/kefu?connect_timeout=2", NULL, &st),
                     KEFU_EUNAVAIL);
    assert_null(st);
}

static int run_pg(void)
{
#define PG_CASE(t) cmocka_unit_test_setup_teardown(t, pg_setup, pg_teardown)
    const struct CMUnitTest tests[] = {
        PG_CASE(test_roundtrip),
        PG_CASE(test_client_id_conflict),
        PG_CASE(test_customer_history),
        PG_CASE(test_reopen),
        PG_CASE(test_kill9),
        PG_CASE(test_concurrent_group_commit),
        PG_CASE(test_submit),
        PG_CASE(test_report),
        PG_CASE(test_open_alloc_failures),
        PG_CASE(test_pg_outbox),
        PG_CASE(test_agents),
        PG_CASE(test_pg_migrations),
        PG_CASE(test_pg_migrate_race),
        PG_CASE(test_pg_two_nodes),
        PG_CASE(test_pg_erase),
        PG_CASE(test_pg_stale_write),
        cmocka_unit_test(test_pg_unavailable),
    };
#undef PG_CASE
    return cmocka_run_group_tests_name("store_postgresql", tests, NULL, NULL);
}

int main(void)
{
    if (getenv("KEFU_TEST_PG")) /* tests/pg.sh */
        return run_pg();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_open_version, setup, teardown),
        cmocka_unit_test_setup_teardown(test_roundtrip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_client_id_conflict, setup, teardown),
        cmocka_unit_test_setup_teardown(test_customer_history, setup, teardown),
        cmocka_unit_test_setup_teardown(test_migrations, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reopen, setup, teardown),
        cmocka_unit_test_setup_teardown(test_kill9, setup, teardown),
        cmocka_unit_test_setup_teardown(test_concurrent_group_commit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_submit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_report, setup, teardown),
        cmocka_unit_test_setup_teardown(test_open_alloc_failures, setup, teardown),
        cmocka_unit_test_setup_teardown(test_erase, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cache, setup, teardown),
        cmocka_unit_test(test_cache_stale_fill),
        cmocka_unit_test(test_cache_sets),
        cmocka_unit_test_setup_teardown(test_outbox, setup, teardown),
        cmocka_unit_test_setup_teardown(test_agents, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
