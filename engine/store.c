/* store.c — what every backend of store.h shares: the batch builders, the
 * writer thread with its queue, acknowledgements, the row cache and the
 * migration driver. The database itself is behind a struct store_backend
 * (store_int.h), chosen once in store_open(): store_sqlite.c for a path,
 * store_pg.c for a postgresql:// URI.
 * One writer thread owns the backend's writing connection: callers queue
 * a batch, and the writer calls the batch's completion once the
 * transaction holding it has committed, so an acknowledged write is
 * durable. store_submit() returns at once (the server's path: the
 * completion resumes a suspended request); store_write() sleeps on its
 * own condition variable until then. Batches that arrive while a commit
 * runs share the next one (group commit); each is applied all or nothing,
 * so one failing batch does not undo the others. Conversation and
 * customer rows that readers fetch stay in an in-memory copy the writer
 * keeps true after each commit (store_cache.h) on a backend whose only
 * writer is this process, so a busy conversation is read once. The schema
 * is versioned; each backend's migrations[] holds the steps from each
 * version to the next, and the driver here applies them. */
#include "store.h"

#include "kefu.h"
#include "store_cache.h"
#include "store_int.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct store {
    const struct store_backend *be;
    struct store_db *db;
    int group, group_max;
    pthread_mutex_t wlock; /* the writer's queue */
    pthread_cond_t work;
    struct store_batch *head, *tail;
    int stopping;
    pthread_t thread;
    int started;
    struct store_stats stats;  /* under wlock */
    struct store_cache *cache; /* NULL: off */
};

const char *store_state_name(int state)
{
    switch (state) {
    case STORE_QUEUED: return "queued";
    case STORE_AGENT: return "agent";
    case STORE_RESOLVED: return "resolved";
    default: return "bot";
    }
}

void store_conv_release(struct store_conv *c)
{
    free(c->memory);
    c->memory = NULL;
}

int store_is_uri(const char *where)
{
    return strncmp(where, "postgresql://", 13) == 0 || strncmp(where, "postgres://", 11) == 0;
}

/* The backend for where: PostgreSQL for a URI, SQLite for a path. */
static const struct store_backend *backend_for(const char *where)
{
    return store_is_uri(where) ? &store_postgres : &store_sqlite;
}

/* Applies be's migrations from the database's version up to target, under
 * the backend's schema lock. A database newer than this program is refused
 * with KEFU_ERANGE. */
static int migrate(const struct store_backend *be, struct store_db *db, int target)
{
    int rc = be->schema_lock(db);
    if (rc < 0)
        return rc;
    int v = 0;
    rc = be->schema_version(db, &v);
    if (rc == 0 && v > STORE_SCHEMA_VERSION)
        rc = KEFU_ERANGE;
    for (; rc == 0 && v < target; v++)
        rc = be->schema_step(db, v + 1, be->migrations[v]);
    be->schema_unlock(db);
    return rc;
}

int store_create_version(const char *where, int version)
{
    if (version < 1 || version > STORE_SCHEMA_VERSION)
        return KEFU_EINVAL;
    const struct store_backend *be = backend_for(where);
    struct store_db *db;
    int rc = be->open(where, 0, &db);
    if (rc == 0) {
        rc = migrate(be, db, version);
        be->close(db);
    }
    return rc;
}

int store_version(struct store *st)
{
    return st->be->version(st->db);
}

/* ---- the writer ---- */

/* Brings the cache up to date with committed batch b. */
static void cache_committed(struct store_cache *sc, const struct store_batch *b)
{
    for (size_t i = 0; i < b->n; i++) {
        const struct store_op *op = &b->op[i];
        if (op->kind == OP_CONV)
            store_cache_wrote_conv(sc, op->rec);
        else if (op->kind == OP_CUSTOMER)
            store_cache_wrote_customer(sc, ((const struct store_customer *)op->rec)->id);
        else if (op->kind == OP_ERASE)
            store_cache_clear(sc);
    }
}

/* Commits a group through the backend, then the cache (before any
 * completion runs: the next read sees the commit) and the backend's work
 * after a commit. */
static void commit_group(struct store *st, struct store_batch *list)
{
    st->be->commit(st->db, list);
    if (st->cache)
        for (struct store_batch *b = list; b; b = b->next)
            if (b->rc == 0)
                cache_committed(st->cache, b);
    if (st->be->after_commit)
        st->be->after_commit(st->db, list);
}

/* Takes up to group_max queued batches (one without group commit); wlock held. */
static struct store_batch *take_group(struct store *st)
{
    int max = st->group < 0 ? 1 : st->group_max;
    struct store_batch *list = st->head, *last = st->head;
    for (int n = 1; n < max && last->next; n++)
        last = last->next;
    st->head = last->next;
    if (!st->head)
        st->tail = NULL;
    last->next = NULL;
    return list;
}

static void *writer_main(void *arg)
{
    struct store *st = arg;
    pthread_mutex_lock(&st->wlock);
    for (;;) {
        while (!st->head && !st->stopping)
            pthread_cond_wait(&st->work, &st->wlock);
        if (!st->head)
            break;
        struct store_batch *list = take_group(st);
        pthread_mutex_unlock(&st->wlock);
        commit_group(st, list);
        pthread_mutex_lock(&st->wlock);
        st->stats.commits++;
        for (struct store_batch *b = list; b; b = b->next) {
            st->stats.batches++;
            st->stats.failed += b->rc < 0;
        }
        pthread_mutex_unlock(&st->wlock);
        for (struct store_batch *b = list, *next; b; b = next) {
            next = b->next; /* b belongs to its caller again once done runs */
            b->done(b->done_ctx, b, b->rc);
        }
        pthread_mutex_lock(&st->wlock);
    }
    pthread_mutex_unlock(&st->wlock);
    return NULL;
}

void store_submit(struct store *st, struct store_batch *b, store_done_fn done, void *ctx)
{
    b->done = done;
    b->done_ctx = ctx;
    b->next = NULL;
    if (b->n == 0 || b->rc < 0) { /* nothing to write, or an add failed (batch full) */
        done(ctx, b, b->rc);
        return;
    }
    pthread_mutex_lock(&st->wlock);
    if (st->tail)
        st->tail->next = b;
    else
        st->head = b;
    st->tail = b;
    pthread_cond_signal(&st->work);
    pthread_mutex_unlock(&st->wlock);
}

/* What a caller of store_write() sleeps on. */
struct waiting {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int done, rc;
};

/* store_done_fn of store_write(): wakes only its own caller (no herd per commit). */
static void wake_writer_caller(void *ctx, struct store_batch *b, int rc)
{
    struct waiting *w = ctx;
    pthread_mutex_lock(&w->lock);
    w->rc = rc;
    w->done = 1;
    pthread_cond_signal(&w->cond);
    pthread_mutex_unlock(&w->lock);
}

int store_write(struct store *st, struct store_batch *b)
{
    if (b->n == 0 || b->rc < 0)
        return b->rc; /* nothing to write, or an add failed (batch full) */
    struct waiting w = {.done = 0};
    pthread_mutex_init(&w.lock, NULL);
    pthread_cond_init(&w.cond, NULL);
    store_submit(st, b, wake_writer_caller, &w);
    pthread_mutex_lock(&w.lock);
    while (!w.done)
        pthread_cond_wait(&w.cond, &w.lock);
    pthread_mutex_unlock(&w.lock);
    pthread_cond_destroy(&w.cond);
    pthread_mutex_destroy(&w.lock);
    return w.rc;
}

void store_batch_init(struct store_batch *b)
{
    memset(b, 0, sizeof *b);
}

/* Appends an op; a full batch makes store_write() fail with KEFU_ERANGE. */
static struct store_op *add_op(struct store_batch *b, int kind)
{
    if (b->n == STORE_BATCH_MAX) {
        b->rc = KEFU_ERANGE;
        return NULL;
    }
    struct store_op *op = &b->op[b->n++];
    memset(op, 0, sizeof *op);
    op->kind = kind;
    return op;
}

int store_put_customer(struct store_batch *b, const struct store_customer *c)
{
    struct store_op *op = add_op(b, OP_CUSTOMER);
    if (!op)
        return KEFU_ERANGE;
    op->rec = c;
    return 0;
}

int store_put_conv(struct store_batch *b, const struct store_conv *c, const char *packet)
{
    struct store_op *op = add_op(b, OP_CONV);
    if (!op)
        return KEFU_ERANGE;
    op->rec = c;
    op->a = packet;
    return 0;
}

int store_add_message(struct store_batch *b, const char *conv, const struct store_msg *m)
{
    struct store_op *op = add_op(b, OP_MESSAGE);
    if (!op)
        return KEFU_ERANGE;
    op->conv = conv;
    op->rec = m;
    return 0;
}

int store_add_event(struct store_batch *b, const char *conv, long long at, const char *kind,
                    const char *agent, const char *queue, const char *reason)
{
    struct store_op *op = add_op(b, OP_EVENT);
    if (!op)
        return KEFU_ERANGE;
    op->conv = conv;
    op->at = at;
    op->a = kind;
    op->b = agent;
    op->c = queue;
    op->rec = reason;
    return 0;
}

int store_add_response(struct store_batch *b, const char *conv, long long at, const char *queue,
                       const char *channel, const char *agent, int seconds)
{
    struct store_op *op = add_op(b, OP_RESPONSE);
    if (!op)
        return KEFU_ERANGE;
    op->conv = conv;
    op->at = at;
    op->a = queue;
    op->b = channel;
    op->c = agent;
    op->n = seconds;
    return 0;
}

int store_add_answer(struct store_batch *b, const char *conv, long seq, long long at, const char *intent,
                     const char *variant)
{
    struct store_op *op = add_op(b, OP_ANSWER);
    if (!op)
        return KEFU_ERANGE;
    op->conv = conv;
    op->n = (int)seq;
    op->at = at;
    op->a = intent;
    op->b = variant;
    return 0;
}

int store_erase_customer(struct store_batch *b, const char *customer, struct store_erased *out)
{
    struct store_op *op = add_op(b, OP_ERASE);
    if (!op)
        return KEFU_ERANGE;
    op->conv = customer;
    op->out = out;
    b->checkpoint = 1;
    return 0;
}

int store_add_feedback(struct store_batch *b, const char *conv, long long at, int rating, const char *comment)
{
    struct store_op *op = add_op(b, OP_FEEDBACK);
    if (!op)
        return KEFU_ERANGE;
    op->conv = conv;
    op->at = at;
    op->n = rating;
    op->a = comment;
    return 0;
}

const char *store_outbox_state_name(int state)
{
    return state == STORE_OUT_DELIVERED ? "delivered" : state == STORE_OUT_DEAD ? "dead" : "pending";
}

int store_add_outbox(struct store_batch *b, const char *conv, long long at, const char *type,
                     const char *event_id, const char *body, const char *const *targets)
{
    struct store_op *op = add_op(b, OP_OUTBOX);
    if (!op)
        return KEFU_ERANGE;
    op->conv = conv;
    op->at = at;
    op->a = type;
    op->b = body;
    op->c = event_id;
    op->rec = targets;
    return 0;
}

int store_copy_outbox(struct store_batch *b, const struct store_outbox *o)
{
    struct store_op *op = add_op(b, OP_OUTBOX);
    if (!op)
        return KEFU_ERANGE;
    op->rec = o;
    op->n = 1;
    return 0;
}

int store_mark_outbox(struct store_batch *b, const struct store_outbox *o)
{
    struct store_op *op = add_op(b, OP_OUTBOX_MARK);
    if (!op)
        return KEFU_ERANGE;
    op->rec = o;
    return 0;
}

int store_replay_outbox(struct store_batch *b, long long id, long long *count)
{
    struct store_op *op = add_op(b, OP_OUTBOX_REPLAY);
    if (!op)
        return KEFU_ERANGE;
    op->at = id;
    op->out = count;
    return 0;
}

int store_prune_outbox(struct store_batch *b, long long before)
{
    struct store_op *op = add_op(b, OP_OUTBOX_PRUNE);
    if (!op)
        return KEFU_ERANGE;
    op->at = before;
    return 0;
}

int store_add_agent(struct store_batch *b, const struct store_agent *a)
{
    struct store_op *op = add_op(b, OP_AGENT);
    if (!op)
        return KEFU_ERANGE;
    op->rec = a;
    return 0;
}

int store_update_agent(struct store_batch *b, const struct store_agent *a)
{
    struct store_op *op = add_op(b, OP_AGENT);
    if (!op)
        return KEFU_ERANGE;
    op->rec = a;
    op->n = 1;
    return 0;
}

/* ---- opening and closing ---- */

static void store_free(struct store *st)
{
    st->be->close(st->db);
    pthread_mutex_destroy(&st->wlock);
    pthread_cond_destroy(&st->work);
    store_cache_free(st->cache);
    free(st);
}

int store_open(const char *where, const struct store_opts *opts, struct store **out)
{
    *out = NULL;
    struct store *st = kefu_calloc(1, sizeof *st);
    if (!st)
        return KEFU_ENOMEM;
    pthread_mutex_init(&st->wlock, NULL);
    pthread_cond_init(&st->work, NULL);
    st->be = backend_for(where);
    st->group = opts && opts->group_commit ? opts->group_commit : 1;
    st->group_max = opts && opts->group_max > 0 ? opts->group_max : 256;
    int readers = opts && opts->readers > 0 ? opts->readers : 4;
    int slots = opts && opts->cache_slots ? opts->cache_slots : STORE_CACHE_DEFAULT;
    int rc = st->be->open(where, readers, &st->db);
    if (rc == 0)
        rc = migrate(st->be, st->db, STORE_SCHEMA_VERSION);
    if (rc == 0 && slots > 0 && st->be->cacheable)
        rc = store_cache_new((size_t)slots, (size_t)slots, &st->cache);
    if (rc == 0 && pthread_create(&st->thread, NULL, writer_main, st) != 0)
        rc = KEFU_ENOMEM;
    if (rc < 0) {
        store_free(st);
        return rc;
    }
    st->started = 1;
    *out = st;
    return 0;
}

int store_listen(struct store *st, store_change_fn fn, void *ctx)
{
    return st->be->listen ? st->be->listen(st->db, fn, ctx) : 0;
}

int store_shared(struct store *st)
{
    return !st->be->cacheable;
}

void store_close(struct store *st)
{
    if (!st)
        return;
    if (st->started) {
        pthread_mutex_lock(&st->wlock);
        st->stopping = 1;
        pthread_cond_signal(&st->work);
        pthread_mutex_unlock(&st->wlock);
        pthread_join(st->thread, NULL);
    }
    store_free(st);
}

void store_stats(struct store *st, struct store_stats *out)
{
    pthread_mutex_lock(&st->wlock);
    *out = st->stats;
    pthread_mutex_unlock(&st->wlock);
    out->checkpoints = st->be->maintenance ? st->be->maintenance(st->db) : 0;
    if (st->cache)
        store_cache_counts(st->cache, &out->cache_hits, &out->cache_misses);
}

/* ---- reading ---- */

/* Notes in c what its row held as read (the condition of a later write). */
static void mark_read(struct store_conv *c)
{
    c->was.read = 1;
    c->was.state = c->state;
    c->was.last_seq = c->last_seq;
    snprintf(c->was.agent, sizeof c->was.agent, "%s", c->agent);
}

int store_get_conv(struct store *st, const char *id, struct store_conv *out)
{
    memset(out, 0, sizeof *out);
    unsigned long gen = 0;
    if (st->cache && store_cache_get_conv(st->cache, id, out, &gen) == 0) {
        mark_read(out);
        return 0;
    }
    int rc = st->be->get_conv(st->db, id, out);
    if (rc == 0 && st->cache)
        store_cache_fill_conv(st->cache, out, gen);
    if (rc == 0)
        mark_read(out);
    return rc;
}

int store_get_token(struct store *st, const char *id, char *token, size_t cap)
{
    if (st->cache && store_cache_get_token(st->cache, id, token, cap) == 0)
        return 0;
    struct store_conv c;
    int rc = store_get_conv(st, id, &c); /* a miss reads the row once and keeps it */
    if (rc == 0)
        snprintf(token, cap, "%s", c.token);
    store_conv_release(&c);
    return rc;
}

int store_get_packet(struct store *st, const char *id, char **out)
{
    *out = NULL;
    return st->be->get_packet(st->db, id, out);
}

int store_get_customer(struct store *st, const char *id, struct store_customer *out)
{
    memset(out, 0, sizeof *out);
    unsigned long gen = 0;
    if (st->cache && store_cache_get_customer(st->cache, id, out, &gen) == 0)
        return 0;
    int rc = st->be->get_customer(st->db, id, out);
    if (rc == 0 && st->cache)
        store_cache_fill_customer(st->cache, out, gen);
    return rc;
}

int store_messages(struct store *st, const char *conv, long after, int limit, store_msg_fn fn, void *ctx)
{
    return st->be->messages(st->db, conv, after, limit, fn, ctx);
}

int store_find_client_id(struct store *st, const char *conv, const char *client_id, long *seq, char **result)
{
    *result = NULL;
    return st->be->find_client_id(st->db, conv, client_id, seq, result);
}

int store_customer_convs(struct store *st, const char *customer, int limit, store_conv_fn fn, void *ctx)
{
    return st->be->customer_convs(st->db, customer, limit, fn, ctx);
}

int store_open_convs(struct store *st, store_conv_fn fn, void *ctx)
{
    return st->be->open_convs(st->db, fn, ctx);
}

int store_report(struct store *st, int which, store_row_fn fn, void *ctx)
{
    if (which < 0 || which > STORE_R_TOTALS)
        return KEFU_EINVAL;
    return st->be->report(st->db, which, fn, ctx);
}

int store_day(struct store *st, long long since, struct store_day *out)
{
    memset(out, 0, sizeof *out);
    return st->be->day(st->db, since, out);
}

int store_counts(struct store *st, struct store_counts *out)
{
    memset(out, 0, sizeof *out);
    return st->be->counts(st->db, out);
}

int store_first_responses(struct store *st, long long since, store_response_fn fn, void *ctx)
{
    return st->be->first_responses(st->db, since, fn, ctx);
}

int store_variants(struct store *st, long long since, store_variant_fn fn, void *ctx)
{
    return st->be->variants(st->db, since, fn, ctx);
}

int store_kpi(struct store *st, long long since, store_kpi_fn fn, void *ctx)
{
    return st->be->kpi(st->db, since, fn, ctx);
}

int store_outbox_due(struct store *st, const char *target, long long now_ms, int limit, store_outbox_fn fn,
                     void *ctx)
{
    return st->be->outbox_due(st->db, target, now_ms, limit, fn, ctx);
}

int store_outbox_list(struct store *st, int state, int limit, store_outbox_fn fn, void *ctx)
{
    return st->be->outbox_list(st->db, state, limit, fn, ctx);
}

int store_get_agent(struct store *st, const char *name, int by_hash, struct store_agent *out)
{
    memset(out, 0, sizeof *out);
    return st->be->get_agent(st->db, name, by_hash, out);
}

int store_agents(struct store *st, store_agent_fn fn, void *ctx)
{
    return st->be->agents(st->db, fn, ctx);
}
