/* store_copy.c — kefu store copy: an SQLite store's rows into another
 * store. The source is read through a read-only connection inside one
 * read transaction (a snapshot, even beside a running server); the rows go
 * to the target as ordinary store batches, a chunk of them in flight at a
 * time so the target's writer commits them in groups. Table by table:
 * customers, conversations (with their dialog memory and handoff packet),
 * messages (with seq, client_id and the stored answers), events, ratings,
 * the webhook outbox (each row's state, attempts and next try kept, in
 * the same order; the target numbers the rows anew) and the agent
 * accounts (token hashes, disabled flags), the agents' first responses and
 * which A/B variant each answer gave. The target must be empty; at
 * the end both sides are counted. */
#include "store_copy.h"

#include "kefu.h"

#include <pthread.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define CHUNK_BATCHES 256 /* batches in flight at once */
#define CHUNK_ROWS    (CHUNK_BATCHES * STORE_BATCH_MAX)

static int fail(char *err, size_t cap, int rc, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static int fail(char *err, size_t cap, int rc, const char *fmt, ...)
{
    if (cap) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, cap, fmt, ap);
        va_end(ap);
    }
    return rc;
}

/* One chunk of rows on its way to the target, and what they own. */
struct chunk {
    struct store_batch b[CHUNK_BATCHES];
    size_t nb;
    union row {
        struct store_customer cu;
        struct store_conv cv;
        struct store_msg m;
        struct store_outbox o;
        struct store_agent a;
    } row[CHUNK_ROWS];
    size_t n;
    char **str; /* every string the rows point to */
    size_t nstr, capstr;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int pending, rc;
};

/* A new copy of column i of q (NULL for SQL NULL), owned by the chunk; *rc on failure. */
static const char *col(struct chunk *k, sqlite3_stmt *q, int i, int *rc)
{
    const unsigned char *s = sqlite3_column_text(q, i);
    if (!s)
        return NULL;
    if (k->nstr == k->capstr) {
        size_t cap = k->capstr ? k->capstr * 2 : 1024;
        char **v = kefu_realloc(k->str, cap * sizeof *v);
        if (!v) {
            *rc = KEFU_ENOMEM;
            return NULL;
        }
        k->str = v, k->capstr = cap;
    }
    char *d = kefu_strndup((const char *)s, strlen((const char *)s));
    if (!d)
        *rc = KEFU_ENOMEM;
    else
        k->str[k->nstr++] = d;
    return d;
}

static void text(sqlite3_stmt *q, int i, char *dst, size_t cap)
{
    const unsigned char *s = sqlite3_column_text(q, i);
    snprintf(dst, cap, "%s", s ? (const char *)s : "");
}

/* The batch the next op goes into (a new one every STORE_BATCH_MAX ops). */
static struct store_batch *batch(struct chunk *k)
{
    if (k->nb == 0 || k->b[k->nb - 1].n == STORE_BATCH_MAX)
        store_batch_init(&k->b[k->nb++]);
    return &k->b[k->nb - 1];
}

/* One row of each table, from q into the chunk and its batch. */
static int add_customer(struct chunk *k, sqlite3_stmt *q)
{
    struct store_customer *c = &k->row[k->n++].cu;
    text(q, 0, c->id, sizeof c->id);
    text(q, 1, c->name, sizeof c->name);
    text(q, 2, c->tier, sizeof c->tier);
    c->first_seen = sqlite3_column_int64(q, 3);
    c->last_seen = sqlite3_column_int64(q, 4);
    return store_put_customer(batch(k), c);
}

static int add_conv(struct chunk *k, sqlite3_stmt *q)
{
    struct store_conv *c = &k->row[k->n++].cv;
    memset(c, 0, sizeof *c);
    text(q, 0, c->id, sizeof c->id);
    text(q, 1, c->token, sizeof c->token);
    text(q, 2, c->customer, sizeof c->customer);
    text(q, 3, c->channel, sizeof c->channel);
    text(q, 4, c->locale, sizeof c->locale);
    c->state = sqlite3_column_int(q, 5);
    text(q, 6, c->queue, sizeof c->queue);
    c->priority = sqlite3_column_int(q, 7);
    c->anger = sqlite3_column_int(q, 8);
    text(q, 9, c->agent, sizeof c->agent);
    c->misses = sqlite3_column_int(q, 10);
    text(q, 11, c->pending, sizeof c->pending);
    text(q, 12, c->reason, sizeof c->reason);
    c->created_at = sqlite3_column_int64(q, 13);
    c->updated_at = sqlite3_column_int64(q, 14);
    c->queued_at = sqlite3_column_int64(q, 15);
    c->last_seq = (long)sqlite3_column_int64(q, 16);
    int rc = 0;
    c->memory = (char *)col(k, q, 17, &rc); /* owned by the chunk, not by c */
    const char *packet = col(k, q, 18, &rc);
    return rc < 0 ? rc : store_put_conv(batch(k), c, packet);
}

static int add_message(struct chunk *k, sqlite3_stmt *q)
{
    struct store_msg *m = &k->row[k->n++].m;
    int rc = 0;
    const char *conv = col(k, q, 0, &rc);
    *m = (struct store_msg){(long)sqlite3_column_int64(q, 1),
                            col(k, q, 2, &rc),
                            col(k, q, 3, &rc),
                            col(k, q, 4, &rc),
                            col(k, q, 5, &rc),
                            sqlite3_column_double(q, 6),
                            col(k, q, 7, &rc),
                            col(k, q, 8, &rc),
                            sqlite3_column_int64(q, 9)};
    return rc < 0 ? rc : store_add_message(batch(k), conv, m);
}

static int add_event(struct chunk *k, sqlite3_stmt *q)
{
    int rc = 0;
    const char *conv = col(k, q, 0, &rc), *kind = col(k, q, 2, &rc), *agent = col(k, q, 3, &rc),
               *queue = col(k, q, 4, &rc), *reason = col(k, q, 5, &rc);
    k->n++;
    return rc < 0 ? rc
                  : store_add_event(batch(k), conv, sqlite3_column_int64(q, 1), kind, agent, queue, reason);
}

static int add_feedback(struct chunk *k, sqlite3_stmt *q)
{
    int rc = 0;
    const char *conv = col(k, q, 0, &rc), *comment = col(k, q, 3, &rc);
    k->n++;
    return rc < 0 ? rc
                  : store_add_feedback(batch(k), conv, sqlite3_column_int64(q, 1), sqlite3_column_int(q, 2),
                                       comment);
}

static int add_outbox(struct chunk *k, sqlite3_stmt *q)
{
    struct store_outbox *o = &k->row[k->n++].o;
    int rc = 0;
    *o = (struct store_outbox){.event = col(k, q, 0, &rc),
                               .target = col(k, q, 1, &rc),
                               .conv = col(k, q, 2, &rc),
                               .type = col(k, q, 3, &rc),
                               .body = col(k, q, 4, &rc),
                               .at = sqlite3_column_int64(q, 5),
                               .state = sqlite3_column_int(q, 6),
                               .attempts = sqlite3_column_int(q, 7),
                               .next_ms = sqlite3_column_int64(q, 8),
                               .error = col(k, q, 9, &rc),
                               .done_at = sqlite3_column_int64(q, 10)};
    return rc < 0 ? rc : store_copy_outbox(batch(k), o);
}

static int add_agent(struct chunk *k, sqlite3_stmt *q)
{
    struct store_agent *a = &k->row[k->n++].a;
    memset(a, 0, sizeof *a);
    text(q, 0, a->name, sizeof a->name);
    text(q, 1, a->token_hash, sizeof a->token_hash);
    text(q, 2, a->skills, sizeof a->skills);
    a->capacity = sqlite3_column_int(q, 3);
    a->disabled = sqlite3_column_int(q, 4);
    a->created_at = sqlite3_column_int64(q, 5);
    a->updated_at = sqlite3_column_int64(q, 6);
    return store_add_agent(batch(k), a);
}

static int add_response(struct chunk *k, sqlite3_stmt *q)
{
    int rc = 0;
    const char *conv = col(k, q, 0, &rc), *queue = col(k, q, 2, &rc), *channel = col(k, q, 3, &rc),
               *agent = col(k, q, 4, &rc);
    k->n++;
    return rc < 0 ? rc
                  : store_add_response(batch(k), conv, sqlite3_column_int64(q, 1), queue, channel, agent,
                                       sqlite3_column_int(q, 5));
}

static int add_answer(struct chunk *k, sqlite3_stmt *q)
{
    int rc = 0;
    const char *conv = col(k, q, 0, &rc), *intent = col(k, q, 3, &rc), *variant = col(k, q, 4, &rc);
    k->n++;
    return rc < 0 ? rc
                  : store_add_answer(batch(k), conv, (long)sqlite3_column_int64(q, 1),
                                     sqlite3_column_int64(q, 2), intent, variant);
}

/* store_done_fn of the chunk's batches. */
static void committed(void *ctx, struct store_batch *b, int rc)
{
    struct chunk *k = ctx;
    pthread_mutex_lock(&k->lock);
    if (rc < 0 && k->rc == 0)
        k->rc = rc;
    if (--k->pending == 0)
        pthread_cond_signal(&k->cond);
    pthread_mutex_unlock(&k->lock);
}

/* Hands the chunk's batches to the target, waits for all of them and
 * empties the chunk. Returns 0 or the first batch's failure. */
static int flush(struct store *dst, struct chunk *k)
{
    k->pending = (int)k->nb;
    for (size_t i = 0, n = k->nb; i < n; i++)
        store_submit(dst, &k->b[i], committed, k);
    pthread_mutex_lock(&k->lock);
    while (k->pending > 0)
        pthread_cond_wait(&k->cond, &k->lock);
    pthread_mutex_unlock(&k->lock);
    for (size_t i = 0; i < k->nstr; i++)
        free(k->str[i]);
    k->nstr = k->nb = k->n = 0;
    return k->rc;
}

static const struct table {
    const char *name, *sql;
    int (*add)(struct chunk *k, sqlite3_stmt *q);
} tables[] = {
    {"customers", "SELECT id, name, tier, first_seen, last_seen FROM customers ORDER BY id", add_customer},
    {"conversations",
     "SELECT id, token, customer, channel, locale, state, queue, priority, anger, agent, misses, pending,"
     " reason, created_at, updated_at, queued_at, last_seq, memory, packet FROM conversations ORDER BY id",
     add_conv},
    {"messages",
     "SELECT conv, seq, sender, text, source, intent, confidence, client_id, result, created_at FROM messages"
     " ORDER BY conv, seq",
     add_message},
    {"events", "SELECT conv, at, kind, agent, queue, reason FROM events ORDER BY id", add_event},
    {"feedback", "SELECT conv, at, rating, comment FROM feedback ORDER BY id", add_feedback},
    {"outbox",
     "SELECT event, target, conv, type, body, at, state, attempts, next_ms, error, done_at FROM outbox"
     " ORDER BY id",
     add_outbox},
    {"agents",
     "SELECT name, token_hash, skills, capacity, disabled, created_at, updated_at FROM agents ORDER BY name",
     add_agent},
    {"responses", "SELECT conv, at, queue, channel, agent, seconds FROM responses ORDER BY rowid", add_response},
    {"answers", "SELECT conv, seq, at, intent, variant FROM answers ORDER BY conv, seq", add_answer},
};

/* Copies one table; rows are counted into *n. */
static int copy_table(sqlite3 *db, struct store *dst, struct chunk *k, const struct table *t, long long *n,
                      char *err, size_t cap)
{
    sqlite3_stmt *q;
    if (sqlite3_prepare_v2(db, t->sql, -1, &q, NULL) != SQLITE_OK)
        return fail(err, cap, KEFU_EIO, "cannot read %s: %s", t->name, sqlite3_errmsg(db));
    int rc = 0, step;
    while (rc == 0 && (step = sqlite3_step(q)) == SQLITE_ROW) {
        rc = t->add(k, q);
        (*n)++;
        if (rc == 0 && k->n == CHUNK_ROWS)
            rc = flush(dst, k);
    }
    if (rc == 0 && step != SQLITE_DONE)
        rc = fail(err, cap, KEFU_EIO, "cannot read %s: %s", t->name, sqlite3_errmsg(db));
    else if (rc == 0)
        rc = flush(dst, k);
    else
        flush(dst, k); /* what was handed over finishes before the chunk goes */
    sqlite3_finalize(q);
    if (rc < 0 && !*err)
        fail(err, cap, rc, "cannot write %s to the target: %s", t->name, kefu_strerror(rc));
    return rc;
}

/* The source's rows, table by table, within the read transaction on db. */
static int copy_all(sqlite3 *db, struct store *dst, struct store_counts *n, char *err, size_t cap)
{
    struct chunk *k = kefu_calloc(1, sizeof *k);
    if (!k)
        return fail(err, cap, KEFU_ENOMEM, "out of memory");
    pthread_mutex_init(&k->lock, NULL);
    pthread_cond_init(&k->cond, NULL);
    long long *count[] = {&n->customers, &n->conversations, &n->messages, &n->events,
                          &n->feedback,  &n->outbox,        &n->agents,   &n->responses,
                          &n->answers};
    int rc = 0;
    for (size_t t = 0; t < sizeof tables / sizeof tables[0] && rc == 0; t++)
        rc = copy_table(db, dst, k, &tables[t], count[t], err, cap);
    pthread_mutex_destroy(&k->lock);
    pthread_cond_destroy(&k->cond);
    free(k->str);
    free(k);
    return rc;
}

/* Opens the target and checks it is empty. */
static int open_target(const char *dest, struct store **dst, char *err, size_t cap)
{
    int rc = store_open(dest, NULL, dst);
    if (rc < 0)
        return fail(err, cap, rc, "cannot open the target store: %s", kefu_strerror(rc));
    struct store_counts c;
    if ((rc = store_counts(*dst, &c)) < 0)
        return fail(err, cap, rc, "cannot count the target's rows: %s", kefu_strerror(rc));
    if (c.customers || c.conversations || c.messages || c.events || c.feedback || c.outbox || c.agents ||
        c.responses || c.answers)
        return fail(
            err, cap, KEFU_ECONFLICT,
            "the target is not empty (%lld customers, %lld conversations, %lld messages, %lld webhook "
            "deliveries, %lld agents): refusing to copy",
            c.customers, c.conversations, c.messages, c.outbox, c.agents);
    return 0;
}

int store_copy(const char *src, const char *dest, struct store_counts *copied, char *err, size_t cap)
{
    memset(copied, 0, sizeof *copied);
    if (cap)
        *err = 0;
    struct stat sb;
    if (stat(src, &sb) < 0)
        return fail(err, cap, KEFU_ENOENT, "no store at '%s'", src);
    struct store *st;
    int rc = store_open(src, NULL, &st); /* brings an older file to the current schema */
    if (rc < 0)
        return fail(err, cap, rc, "cannot open '%s': %s", src, kefu_strerror(rc));
    store_close(st);
    struct store *dst = NULL;
    if ((rc = open_target(dest, &dst, err, cap)) < 0) {
        store_close(dst);
        return rc;
    }
    sqlite3 *db;
    if (sqlite3_open_v2(src, &db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK)
        rc = fail(err, cap, KEFU_EIO, "cannot open '%s': %s", src, sqlite3_errmsg(db));
    else if (sqlite3_exec(db, "BEGIN", NULL, NULL, NULL) != SQLITE_OK)
        rc = fail(err, cap, KEFU_EIO, "cannot read '%s': %s", src, sqlite3_errmsg(db));
    if (rc == 0)
        rc = copy_all(db, dst, copied, err, cap);
    sqlite3_close(db); /* ends the read transaction */
    struct store_counts got;
    if (rc == 0 && (rc = store_counts(dst, &got)) < 0)
        fail(err, cap, rc, "cannot count the target's rows: %s", kefu_strerror(rc));
    if (rc == 0 && memcmp(&got, copied, sizeof got) != 0)
        rc = fail(
            err, cap, KEFU_EIO,
            "the target's counts differ: %lld/%lld customers, %lld/%lld conversations, %lld/%lld messages,"
            " %lld/%lld events, %lld/%lld ratings, %lld/%lld webhook deliveries, %lld/%lld agents,"
            " %lld/%lld first responses, %lld/%lld answers",
            got.customers, copied->customers, got.conversations, copied->conversations, got.messages,
            copied->messages, got.events, copied->events, got.feedback, copied->feedback, got.outbox,
            copied->outbox, got.agents, copied->agents, got.responses, copied->responses, got.answers,
            copied->answers);
    store_close(dst);
    return rc;
}
