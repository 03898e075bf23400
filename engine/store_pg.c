/* store_pg.c — the PostgreSQL backend of the store (store_int.h), through
 * libpq, for several kefu nodes sharing one database. The same tables,
 * columns and schema versions as store_sqlite.c, in PostgreSQL's dialect;
 * the version is the one row of kefu_schema, and the node that starts
 * first migrates while it holds an advisory lock, so a second node waits
 * and then finds the work done. store.c's writer thread owns the writing
 * connection: a group of batches is one transaction, each batch inside a
 * savepoint, and every connection runs with synchronous_commit on, so a
 * batch acknowledged is committed. Idempotency holds across nodes through
 * the same unique index on (conv, client_id). Readers take a connection
 * from a small pool. A connection that broke (the server went down or
 * restarted) fails its call with KEFU_EUNAVAIL and is opened again on the
 * next one, so the service comes back without a restart. */
#include "kefu.h"
#include "store_int.h"

#include <libpq-fe.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- schema ---- */

static const char *const migrations[STORE_SCHEMA_VERSION] = {
    /* 0 → 1: customers, conversations, messages */
    "CREATE TABLE customers(id TEXT PRIMARY KEY, name TEXT NOT NULL DEFAULT '',"
    " tier TEXT NOT NULL DEFAULT '', first_seen BIGINT NOT NULL, last_seen BIGINT NOT NULL);"
    "CREATE TABLE conversations(id TEXT PRIMARY KEY, token TEXT NOT NULL, customer TEXT NOT NULL,"
    " channel TEXT NOT NULL, locale TEXT NOT NULL DEFAULT '', state INTEGER NOT NULL DEFAULT 0,"
    " queue TEXT NOT NULL DEFAULT '', priority INTEGER NOT NULL DEFAULT 1, agent TEXT NOT NULL DEFAULT '',"
    " misses INTEGER NOT NULL DEFAULT 0, created_at BIGINT NOT NULL, updated_at BIGINT NOT NULL,"
    " last_seq BIGINT NOT NULL DEFAULT 0);"
    "CREATE INDEX conversations_customer ON conversations(customer, created_at);"
    "CREATE TABLE messages(conv TEXT NOT NULL, seq BIGINT NOT NULL, sender TEXT NOT NULL,"
    " text TEXT NOT NULL, source TEXT, intent TEXT, confidence DOUBLE PRECISION NOT NULL DEFAULT 0,"
    " client_id TEXT, created_at BIGINT NOT NULL, PRIMARY KEY(conv, seq));"
    "CREATE UNIQUE INDEX messages_client ON messages(conv, client_id) WHERE client_id IS NOT NULL;",
    /* 1 → 2: handoff state, events, feedback */
    "ALTER TABLE conversations ADD COLUMN pending TEXT NOT NULL DEFAULT '';"
    "ALTER TABLE conversations ADD COLUMN reason TEXT NOT NULL DEFAULT '';"
    "ALTER TABLE conversations ADD COLUMN queued_at BIGINT NOT NULL DEFAULT 0;"
    "ALTER TABLE conversations ADD COLUMN anger INTEGER NOT NULL DEFAULT 0;"
    "CREATE TABLE events(id BIGSERIAL PRIMARY KEY, conv TEXT NOT NULL, at BIGINT NOT NULL,"
    " kind TEXT NOT NULL, agent TEXT, queue TEXT, reason TEXT);"
    "CREATE INDEX events_conv ON events(conv);"
    "CREATE TABLE feedback(id BIGSERIAL PRIMARY KEY, conv TEXT NOT NULL, at BIGINT NOT NULL,"
    " rating INTEGER NOT NULL CHECK (rating BETWEEN 1 AND 5), comment TEXT);",
    /* 2 → 3: dialog memory, handoff packet, idempotent results; queued rows get a queue time */
    "ALTER TABLE conversations ADD COLUMN memory TEXT NOT NULL DEFAULT '{}';"
    "ALTER TABLE conversations ADD COLUMN packet TEXT;"
    "ALTER TABLE messages ADD COLUMN result TEXT;"
    "CREATE INDEX conversations_open ON conversations(state) WHERE state IN (1, 2);"
    "UPDATE conversations SET queued_at = updated_at WHERE state IN (1, 2) AND queued_at = 0;",
    /* 3 → 4: the webhook outbox, one row per event and target (state 0 pending, 1 delivered, 2 dead) */
    "CREATE TABLE outbox(id BIGSERIAL PRIMARY KEY, event TEXT NOT NULL, target TEXT NOT NULL,"
    " conv TEXT NOT NULL, type TEXT NOT NULL, body TEXT NOT NULL, at BIGINT NOT NULL,"
    " state INTEGER NOT NULL DEFAULT 0, attempts INTEGER NOT NULL DEFAULT 0,"
    " next_ms BIGINT NOT NULL DEFAULT 0, error TEXT NOT NULL DEFAULT '',"
    " done_at BIGINT NOT NULL DEFAULT 0);"
    "CREATE INDEX outbox_pending ON outbox(target, conv, id) WHERE state = 0;"
    "CREATE INDEX outbox_state ON outbox(state, id);"
    "CREATE INDEX outbox_conv ON outbox(conv);",
    /* 4 → 5: agent accounts (a hash of each token, never the token) */
    "CREATE TABLE agents(name TEXT PRIMARY KEY, token_hash TEXT NOT NULL UNIQUE,"
    " skills TEXT NOT NULL DEFAULT '', capacity INTEGER NOT NULL DEFAULT 0,"
    " disabled INTEGER NOT NULL DEFAULT 0, created_at BIGINT NOT NULL, updated_at BIGINT NOT NULL);",
    /* 5 → 6: agents' first responses (handoff → the agent's first message) */
    "CREATE TABLE responses(conv TEXT NOT NULL, at BIGINT NOT NULL, queue TEXT NOT NULL,"
    " channel TEXT NOT NULL, agent TEXT NOT NULL, seconds INTEGER NOT NULL);"
    "CREATE INDEX responses_at ON responses(at);"
    "CREATE INDEX responses_conv ON responses(conv);",
    /* 6 → 7: which A/B variant of an intent's reply each answer gave */
    "CREATE TABLE answers(conv TEXT NOT NULL, seq BIGINT NOT NULL, at BIGINT NOT NULL,"
    " intent TEXT NOT NULL, variant TEXT NOT NULL, PRIMARY KEY(conv, seq));"
    "CREATE INDEX answers_intent ON answers(intent, variant);",
};

/* How long a node holds the outbox rows it took to send (pg_outbox_due()):
 * longer than a webhook try may take (webhook.c's timeout, 10 s), so no
 * other node sends a row while its answer may still come */
#define OUTBOX_LEASE_MS 60000

/* the channel of LISTEN/NOTIFY: one line "conv last_seq state" per conversation a group changed */
#define CHANNEL    "kefu_conv"
#define NOTIFY_MAX 7000 /* bytes of lines per notification (PostgreSQL takes up to 8000) */

/* the advisory lock every node takes to migrate ("kefu" in ASCII) */
#define SCHEMA_LOCK "1801807221"

/* ---- statements ---- */

enum {
    W_CUSTOMER,
    W_CONV,
    W_CONV_IF,
    W_MESSAGE,
    W_EVENT,
    W_FEEDBACK,
    W_RESPONSE,
    W_ANSWER,
    W_NOTIFY,
    W_ERASE_MSG,
    W_ERASE_EVENT,
    W_ERASE_FEEDBACK,
    W_ERASE_RESPONSES,
    W_ERASE_ANSWERS,
    W_ERASE_OUTBOX,
    W_ERASE_CONV,
    W_ERASE_CUSTOMER,
    W_OUTBOX,
    W_OUTBOX_ROW,
    W_OUTBOX_MARK,
    W_OUTBOX_REPLAY,
    W_OUTBOX_REPLAY_ALL,
    W_OUTBOX_PRUNE,
    W_AGENT_ADD,
    W_AGENT_UPDATE,
    R_CONV,
    R_PACKET,
    R_CUSTOMER,
    R_MESSAGES,
    R_CLIENT,
    R_CUSTOMER_CONVS,
    R_OPEN_CONVS,
    R_DAY_MESSAGES,
    R_DAY_EVENTS,
    R_DAY_WAITS,
    R_DAY_RATINGS,
    R_COUNTS,
    R_RESPONSES,
    R_VARIANTS,
    R_KPI,
    R_OUTBOX_TAKE,
    R_OUTBOX_LIST,
    R_OUTBOX_LIST_OPEN,
    R_AGENT,
    R_AGENT_HASH,
    R_AGENTS,
    R_REPORT0, /* one per enum store_report, in order */
    N_STMT = R_REPORT0 + STORE_R_TOTALS + 1
};

#define CONV_COLS                                                                                            \
    "id, token, customer, channel, locale, state, queue, priority, anger, agent, misses, pending, reason,"   \
    " created_at, updated_at, queued_at, last_seq, memory"
#define ANSWERED    "source IN ('rule', 'example', 'kb')"
#define AGENT_COLS  "name, token_hash, skills, capacity, disabled, created_at, updated_at"
#define OUTBOX_COLS "id, event, target, conv, type, body, at, state, attempts, next_ms, error, done_at"

static const char *const sql[N_STMT] = {
    [W_CUSTOMER] = "INSERT INTO customers(id, name, tier, first_seen, last_seen) VALUES ($1, $2, $3, $4, $5)"
                   " ON CONFLICT(id) DO UPDATE SET"
                   " name = CASE WHEN excluded.name <> '' THEN excluded.name ELSE customers.name END,"
                   " tier = CASE WHEN excluded.tier <> '' THEN excluded.tier ELSE customers.tier END,"
                   " last_seen = greatest(customers.last_seen, excluded.last_seen)",
    [W_CONV] = "INSERT INTO conversations(" CONV_COLS ", packet)"
               " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17,"
               " coalesce($18, '{}'), $19)"
               " ON CONFLICT(id) DO UPDATE SET customer = excluded.customer, locale = excluded.locale,"
               " state = excluded.state, queue = excluded.queue, priority = excluded.priority,"
               " anger = excluded.anger, agent = excluded.agent, misses = excluded.misses,"
               " pending = excluded.pending, reason = excluded.reason, updated_at = excluded.updated_at,"
               " queued_at = excluded.queued_at, last_seq = excluded.last_seq,"
               " memory = coalesce($18, conversations.memory),"
               " packet = coalesce(excluded.packet, conversations.packet)",
    /* a row read before: changed only while it still holds what was read */
    [W_CONV_IF] = "UPDATE conversations SET locale = $2, state = $3, queue = $4, priority = $5, anger = $6,"
                  " agent = $7, misses = $8, pending = $9, reason = $10, updated_at = $11, queued_at = $12,"
                  " last_seq = $13, memory = coalesce($14, memory), packet = coalesce($15, packet),"
                  " customer = $19 WHERE id = $1 AND state = $16 AND agent = $17 AND last_seq = $18",
    [W_MESSAGE] =
        "INSERT INTO messages(conv, seq, sender, text, source, intent, confidence, client_id, result,"
        " created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
    [W_EVENT] = "INSERT INTO events(conv, at, kind, agent, queue, reason) VALUES ($1, $2, $3, $4, $5, $6)",
    [W_FEEDBACK] = "INSERT INTO feedback(conv, at, rating, comment) VALUES ($1, $2, $3, $4)",
    [W_RESPONSE] = "INSERT INTO responses(conv, at, queue, channel, agent, seconds)"
                   " VALUES ($1, $2, $3, $4, $5, $6)",
    [W_ANSWER] = "INSERT INTO answers(conv, seq, at, intent, variant) VALUES ($1, $2, $3, $4, $5)",
    [W_NOTIFY] = "SELECT pg_notify('" CHANNEL "', $1)",
    [W_ERASE_MSG] = "DELETE FROM messages WHERE conv IN (SELECT id FROM conversations WHERE customer = $1)",
    [W_ERASE_EVENT] = "DELETE FROM events WHERE conv IN (SELECT id FROM conversations WHERE customer = $1)",
    [W_ERASE_FEEDBACK] =
        "DELETE FROM feedback WHERE conv IN (SELECT id FROM conversations WHERE customer = $1)",
    [W_ERASE_RESPONSES] =
        "DELETE FROM responses WHERE conv IN (SELECT id FROM conversations WHERE customer = $1)",
    [W_ERASE_ANSWERS] =
        "DELETE FROM answers WHERE conv IN (SELECT id FROM conversations WHERE customer = $1)",
    [W_ERASE_OUTBOX] = "DELETE FROM outbox WHERE conv IN (SELECT id FROM conversations WHERE customer = $1)",
    [W_ERASE_CONV] = "DELETE FROM conversations WHERE customer = $1",
    [W_ERASE_CUSTOMER] = "DELETE FROM customers WHERE id = $1",
    [W_OUTBOX] = "INSERT INTO outbox(event, target, conv, type, body, at) VALUES ($1, $2, $3, $4, $5, $6)",
    [W_OUTBOX_ROW] =
        "INSERT INTO outbox(event, target, conv, type, body, at, state, attempts, next_ms, error,"
        " done_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
    [W_OUTBOX_MARK] = "UPDATE outbox SET state = $2, attempts = $3, next_ms = $4, error = $5, done_at = $6"
                      " WHERE id = $1",
    [W_OUTBOX_REPLAY] = "UPDATE outbox SET state = 0, attempts = 0, next_ms = 0, done_at = 0"
                        " WHERE id = $1 AND state = 2",
    [W_OUTBOX_REPLAY_ALL] =
        "UPDATE outbox SET state = 0, attempts = 0, next_ms = 0, done_at = 0 WHERE state = 2",
    [W_OUTBOX_PRUNE] = "DELETE FROM outbox WHERE state = 1 AND done_at < $1",
    [W_AGENT_ADD] = "INSERT INTO agents(name, token_hash, skills, capacity, disabled, created_at, updated_at)"
                    " VALUES ($1, $2, $3, $4, $5, $6, $7)",
    [W_AGENT_UPDATE] = "UPDATE agents SET token_hash = $2, skills = $3, capacity = $4, disabled = $5,"
                       " updated_at = $6 WHERE name = $1",
    [R_CONV] = "SELECT " CONV_COLS " FROM conversations WHERE id = $1",
    [R_PACKET] = "SELECT packet FROM conversations WHERE id = $1",
    [R_CUSTOMER] = "SELECT id, name, tier, first_seen, last_seen FROM customers WHERE id = $1",
    [R_MESSAGES] = "SELECT seq, sender, text, source, intent, confidence, client_id, result, created_at"
                   " FROM messages WHERE conv = $1 AND seq > $2 ORDER BY seq LIMIT $3",
    [R_CLIENT] = "SELECT seq, result FROM messages WHERE conv = $1 AND client_id = $2",
    [R_CUSTOMER_CONVS] = "SELECT " CONV_COLS " FROM conversations WHERE customer = $1"
                         " ORDER BY created_at DESC, id DESC LIMIT $2",
    [R_OPEN_CONVS] = "SELECT " CONV_COLS " FROM conversations WHERE state IN (1, 2) ORDER BY queued_at, id",
    [R_DAY_MESSAGES] = "SELECT (created_at - $1) / 3600, count(*), count(*) FILTER (WHERE " ANSWERED "),"
                       " count(*) FILTER (WHERE " ANSWERED " OR source IN ('clarify', 'fallback', 'handoff'))"
                       " FROM messages WHERE sender = 'customer' AND created_at >= $1 GROUP BY 1",
    [R_DAY_EVENTS] = "SELECT (at - $1) / 3600, kind, count(*) FROM events WHERE at >= $1"
                     " AND kind IN ('created', 'handoff', 'claim', 'resolve') GROUP BY 1, 2",
    [R_DAY_WAITS] =
        "SELECT count(w), coalesce(avg(w), 0), coalesce(max(w), 0) FROM (SELECT e.at - (SELECT max(h.at)"
        " FROM events h WHERE h.conv = e.conv AND h.kind IN ('handoff', 'transfer', 'release')"
        " AND h.at <= e.at) AS w FROM events e WHERE e.kind = 'claim' AND e.at >= $1) t",
    [R_DAY_RATINGS] = "SELECT rating, count(*) FROM feedback WHERE at >= $1 GROUP BY rating",
    [R_COUNTS] =
        "SELECT (SELECT count(*) FROM customers), (SELECT count(*) FROM conversations),"
        " (SELECT count(*) FROM messages), (SELECT count(*) FROM events), (SELECT count(*) FROM feedback),"
        " (SELECT count(*) FROM outbox), (SELECT count(*) FROM agents), (SELECT count(*) FROM responses),"
        " (SELECT count(*) FROM answers)",
    [R_RESPONSES] = "SELECT queue, channel, count(*), avg(seconds)::float8, max(seconds) FROM responses"
                    " WHERE at >= $1 GROUP BY queue, channel ORDER BY queue, channel",
    /* per intent and variant: answers; contained ones (in the conversation's next two customer
     * messages no handoff and no repeat of the intent); ratings of the conversations it answered in */
    [R_VARIANTS] =
        "SELECT a.intent, a.variant, count(*), count(*) FILTER (WHERE NOT EXISTS (SELECT 1 FROM messages m"
        " WHERE m.conv = a.conv AND m.sender = 'customer' AND m.seq > a.seq AND m.seq <= a.seq + 4"
        " AND (m.source = 'handoff' OR m.intent = a.intent))),"
        " (SELECT count(*) FROM feedback f WHERE f.conv IN (SELECT b.conv FROM answers b"
        " WHERE b.intent = a.intent AND b.variant = a.variant)),"
        " (SELECT coalesce(avg(f.rating), 0)::float8 FROM feedback f WHERE f.conv IN (SELECT b.conv"
        " FROM answers b WHERE b.intent = a.intent AND b.variant = a.variant))"
        " FROM answers a WHERE a.at >= $1 GROUP BY a.intent, a.variant ORDER BY a.intent, a.variant",
    [R_KPI] =
        "WITH c AS (SELECT id, channel FROM conversations WHERE created_at >= $1),"
        " h AS (SELECT v.channel, e.at - (SELECT k.at FROM events k WHERE k.conv = e.conv AND k.kind = "
        "'claim'"
        " AND k.id < e.id ORDER BY k.id DESC LIMIT 1) AS secs FROM events e JOIN conversations v"
        " ON v.id = e.conv WHERE e.kind = 'resolve' AND e.at >= $1)"
        " SELECT ch.channel, (SELECT count(*) FROM c WHERE c.channel = ch.channel),"
        " (SELECT count(*) FROM messages m JOIN conversations v ON v.id = m.conv WHERE v.channel = ch.channel"
        " AND m.sender = 'customer' AND m.created_at >= $1 AND (m." ANSWERED
        " OR m.source IN ('clarify', 'fallback', 'handoff'))),"
        " (SELECT count(*) FROM messages m JOIN conversations v ON v.id = m.conv WHERE v.channel = ch.channel"
        " AND m.sender = 'customer' AND m.created_at >= $1 AND m." ANSWERED "),"
        " (SELECT count(*) FROM c WHERE c.channel = ch.channel"
        " AND NOT EXISTS (SELECT 1 FROM events e WHERE e.conv = c.id AND e.kind = 'reopen')"
        " AND (SELECT count(*) FROM events e WHERE e.conv = c.id AND e.kind = 'handoff') <= 1"
        " AND (NOT EXISTS (SELECT 1 FROM events e WHERE e.conv = c.id AND e.kind = 'handoff')"
        " OR EXISTS (SELECT 1 FROM events e WHERE e.conv = c.id AND e.kind = 'resolve'))),"
        " (SELECT count(*) FROM responses r WHERE r.channel = ch.channel AND r.at >= $1),"
        " (SELECT coalesce(avg(r.seconds), 0)::float8 FROM responses r WHERE r.channel = ch.channel"
        " AND r.at >= $1),"
        " (SELECT count(secs) FROM h WHERE h.channel = ch.channel),"
        " (SELECT coalesce(avg(secs), 0)::float8 FROM h WHERE h.channel = ch.channel),"
        " (SELECT count(*) FROM feedback f JOIN conversations v ON v.id = f.conv WHERE v.channel = ch.channel"
        " AND f.at >= $1),"
        " (SELECT coalesce(avg(f.rating), 0)::float8 FROM feedback f JOIN conversations v ON v.id = f.conv"
        " WHERE v.channel = ch.channel AND f.at >= $1)"
        " FROM (SELECT DISTINCT channel FROM c) ch ORDER BY ch.channel",
    /* the due rows of a target (each conversation's oldest pending one), taken
     * with a lease: locked rows are skipped, so of two nodes asking at once
     * each row goes to one, and the lease (next_ms moved on) keeps the others
     * off it after the commit; a row whose lease ran out (its node died
     * before it settled) is due again. The rows are returned as they were. */
    [R_OUTBOX_TAKE] =
        "WITH due AS (SELECT id, next_ms FROM outbox o WHERE target = $1 AND state = 0"
        " AND next_ms <= $2 AND id = (SELECT min(id) FROM outbox p WHERE p.target = o.target"
        " AND p.conv = o.conv AND p.state = 0) ORDER BY id LIMIT $3 FOR UPDATE SKIP LOCKED),"
        " taken AS (UPDATE outbox t SET next_ms = $4 FROM due WHERE t.id = due.id"
        " RETURNING t.id, due.next_ms AS was)"
        " SELECT o.id, o.event, o.target, o.conv, o.type, o.body, o.at, o.state, o.attempts,"
        " taken.was, o.error, o.done_at FROM outbox o JOIN taken ON o.id = taken.id ORDER BY o.id",
    [R_OUTBOX_LIST] = "SELECT " OUTBOX_COLS " FROM outbox WHERE state = $1 ORDER BY id DESC LIMIT $2",
    [R_OUTBOX_LIST_OPEN] = "SELECT " OUTBOX_COLS " FROM outbox WHERE state IN (0, 2) AND $1::integer < 0"
                           " ORDER BY id DESC LIMIT $2",
    [R_AGENT] = "SELECT " AGENT_COLS " FROM agents WHERE name = $1",
    [R_AGENT_HASH] = "SELECT " AGENT_COLS " FROM agents WHERE token_hash = $1",
    [R_AGENTS] = "SELECT " AGENT_COLS " FROM agents ORDER BY name",
    [R_REPORT0 + STORE_R_SOURCES] = "SELECT source, count(*), 0 FROM messages WHERE sender = 'customer'"
                                    " GROUP BY source ORDER BY 2 DESC, 1 NULLS FIRST",
    [R_REPORT0 + STORE_R_HANDOFFS] = "SELECT reason, count(*), 0 FROM events WHERE kind = 'handoff'"
                                     " GROUP BY reason ORDER BY 2 DESC, 1 NULLS FIRST",
    [R_REPORT0 + STORE_R_INTENT_ANSWERS] =
        "SELECT intent, count(*), avg(confidence) FROM messages"
        " WHERE sender = 'customer' AND " ANSWERED " AND intent IS NOT NULL"
        " GROUP BY intent ORDER BY 2 DESC, 1",
    [R_REPORT0 + STORE_R_INTENT_HANDOFF] =
        "SELECT intent, count(*), 0 FROM messages WHERE sender = 'customer'"
        " AND source = 'handoff' AND intent IS NOT NULL"
        " GROUP BY intent ORDER BY 2 DESC, 1",
    [R_REPORT0 + STORE_R_INTENT_RATING] =
        "SELECT m.intent, count(*), avg(f.rating) FROM feedback f JOIN (SELECT DISTINCT conv, intent"
        " FROM messages WHERE sender = 'customer' AND " ANSWERED " AND intent IS NOT NULL) m"
        " ON m.conv = f.conv GROUP BY m.intent ORDER BY 2 DESC, 1",
    [R_REPORT0 + STORE_R_RATINGS] = "SELECT CAST(rating AS TEXT), count(*), 0 FROM feedback GROUP BY rating"
                                    " ORDER BY rating",
    [R_REPORT0 + STORE_R_UNANSWERED] = "SELECT text, count(*), 0 FROM messages WHERE sender = 'customer'"
                                       " AND (source = 'fallback' OR (source = 'handoff' AND intent IS NULL))"
                                       " GROUP BY text ORDER BY 2 DESC, 1",
    [R_REPORT0 + STORE_R_TOTALS] =
        "SELECT 'conversations', count(*), 0 FROM conversations"
        " UNION ALL SELECT 'customer_messages', count(*), 0 FROM messages WHERE sender = 'customer'"
        " UNION ALL SELECT 'handoffs', count(*), 0 FROM events WHERE kind = 'handoff'"
        " UNION ALL SELECT 'feedback', count(*), coalesce(avg(rating), 0) FROM feedback",
};

/* One connection and which statements it has prepared. */
struct conn {
    PGconn *pg;
    unsigned char prepared[N_STMT];
    int busy;
};

struct store_db {
    char *uri;
    struct conn writer;
    struct conn *readers;
    int n_readers;
    pthread_mutex_t rlock; /* the reader pool */
    pthread_cond_t rfree;
    /* the listener (pg_listen()): its own connection, LISTEN on CHANNEL */
    pthread_t listener;
    int listening;
    _Atomic int stop, writer_pid; /* writer_pid: our own notifications are not news */
    store_change_fn changed;
    void *changed_ctx;
};

/* ---- connections ---- */

/* Notices (a migration's "relation exists", ...) are not for the log. */
static void quiet(void *arg, const char *message) {}

static void conn_close(struct conn *c)
{
    if (c->pg)
        PQfinish(c->pg);
    c->pg = NULL;
    memset(c->prepared, 0, sizeof c->prepared);
}

/* Makes sure c is connected, (re)connecting if the last connection broke.
 * Returns 0 or KEFU_EUNAVAIL. */
static int conn_ready(struct conn *c, const char *uri)
{
    if (c->pg && PQstatus(c->pg) == CONNECTION_OK)
        return 0;
    conn_close(c);
    c->pg = PQconnectdb(uri);
    if (!c->pg || PQstatus(c->pg) != CONNECTION_OK) {
        conn_close(c);
        return KEFU_EUNAVAIL;
    }
    PQsetNoticeProcessor(c->pg, quiet, NULL);
    PGresult *r = PQexec(c->pg, "SET synchronous_commit = on; SET client_encoding = 'UTF8'");
    int ok = PQresultStatus(r) == PGRES_COMMAND_OK;
    PQclear(r);
    if (!ok) {
        conn_close(c);
        return KEFU_EUNAVAIL;
    }
    return 0;
}

/* Drops c's connection, found broken by its first statement (a server
 * that restarted since the last call), and opens it again: nothing was
 * sent on the broken one, so the caller may send its statement again.
 * Returns 0 or KEFU_EUNAVAIL. */
static int conn_again(struct conn *c, const char *uri)
{
    conn_close(c);
    return conn_ready(c, uri);
}

/* The code for a failed result r on c: a unique violation is
 * KEFU_ECONFLICT, a broken connection KEFU_EUNAVAIL, the rest KEFU_EIO. */
static int pg_fail(struct conn *c, const PGresult *r)
{
    const char *state = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
    if (state && strcmp(state, "23505") == 0)
        return KEFU_ECONFLICT;
    if (state && (strcmp(state, "40P01") == 0 || strcmp(state, "40001") == 0))
        return KEFU_EBUSY; /* a deadlock or serialization failure with another node: send it again */
    if (PQstatus(c->pg) != CONNECTION_OK || (state && strncmp(state, "08", 2) == 0) ||
        (state && strncmp(state, "57P", 3) == 0))
        return KEFU_EUNAVAIL;
    return KEFU_EIO;
}

/* Runs a command without parameters; 0 or a KEFU_E code. */
static int exec(struct conn *c, const char *s)
{
    PGresult *r = PQexec(c->pg, s);
    int st = PQresultStatus(r);
    int rc = st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK ? 0 : pg_fail(c, r);
    PQclear(r);
    return rc;
}

/* Runs prepared statement k with n text parameters (NULL is SQL NULL);
 * *out gets the result (PQclear()) when the call succeeded. */
static int run(struct conn *c, int k, int n, const char *const *v, PGresult **out)
{
    char name[16];
    snprintf(name, sizeof name, "k%d", k);
    if (!c->prepared[k]) {
        PGresult *p = PQprepare(c->pg, name, sql[k], n, NULL);
        int ok = PQresultStatus(p) == PGRES_COMMAND_OK;
        int rc = ok ? 0 : pg_fail(c, p);
        PQclear(p);
        if (!ok)
            return rc;
        c->prepared[k] = 1;
    }
    PGresult *r = PQexecPrepared(c->pg, name, n, v, NULL, NULL, 0);
    int st = PQresultStatus(r);
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
        int rc = pg_fail(c, r);
        PQclear(r);
        return rc;
    }
    if (out)
        *out = r;
    else
        PQclear(r);
    return 0;
}

/* ---- schema ---- */

static int pg_schema_lock(struct store_db *db)
{
    return exec(&db->writer, "SELECT pg_advisory_lock(" SCHEMA_LOCK ")");
}

static void pg_schema_unlock(struct store_db *db)
{
    exec(&db->writer, "SELECT pg_advisory_unlock(" SCHEMA_LOCK ")");
}

/* Reads the version on c: 0 for a database without kefu_schema. */
static int read_version(struct conn *c, int *version)
{
    *version = -1;
    PGresult *r = PQexec(c->pg, "SELECT to_regclass('kefu_schema') IS NOT NULL");
    int rc = PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1 ? 0 : pg_fail(c, r);
    int exists = rc == 0 && strcmp(PQgetvalue(r, 0, 0), "t") == 0;
    PQclear(r);
    if (rc < 0 || !exists) {
        *version = rc < 0 ? -1 : 0;
        return rc;
    }
    r = PQexec(c->pg, "SELECT coalesce(max(version), 0) FROM kefu_schema");
    rc = PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1 ? 0 : pg_fail(c, r);
    if (rc == 0)
        *version = atoi(PQgetvalue(r, 0, 0));
    PQclear(r);
    return rc;
}

static int pg_schema_version(struct store_db *db, int *version)
{
    return read_version(&db->writer, version);
}

static int pg_schema_step(struct store_db *db, int to, const char *step)
{
    struct conn *w = &db->writer;
    char set[96];
    snprintf(set, sizeof set, "DELETE FROM kefu_schema; INSERT INTO kefu_schema(version) VALUES (%d)", to);
    int rc = exec(w, "BEGIN");
    if (rc == 0)
        rc = exec(w, "CREATE TABLE IF NOT EXISTS kefu_schema(version INTEGER NOT NULL)");
    if (rc == 0)
        rc = exec(w, step);
    if (rc == 0)
        rc = exec(w, set);
    if (rc == 0)
        rc = exec(w, "COMMIT");
    if (rc < 0)
        exec(w, "ROLLBACK");
    return rc;
}

static struct conn *reader_get(struct store_db *db);
static void reader_put(struct store_db *db, struct conn *c);

static int pg_version(struct store_db *db)
{
    struct conn *c = reader_get(db);
    int v = -1;
    if (conn_ready(c, db->uri) == 0)
        read_version(c, &v);
    reader_put(db, c);
    return v;
}

/* ---- the writer ---- */

/* Formats a number into buf[24] and returns buf. */
static const char *num(char *buf, long long v)
{
    snprintf(buf, 24, "%lld", v);
    return buf;
}

static int apply_erase(struct conn *w, const char *customer, struct store_erased *e)
{
    static const int steps[] = {W_ERASE_MSG,       W_ERASE_EVENT,   W_ERASE_FEEDBACK, W_ERASE_OUTBOX,
                                W_ERASE_RESPONSES, W_ERASE_ANSWERS, W_ERASE_CONV,     W_ERASE_CUSTOMER};
    long long outbox = 0;  /* webhook deliveries, sent or not: they quote the customer */
    long long derived = 0; /* rows computed from the others (first responses, variants answered) */
    long long *count[] = {&e->messages, &e->events, &e->feedback,      &outbox,
                          &derived,     &derived,   &e->conversations, &e->customers};
    memset(e, 0, sizeof *e);
    for (int k = 0; k < 8; k++) {
        PGresult *r;
        int rc = run(w, steps[k], 1, &customer, &r);
        if (rc < 0)
            return rc;
        *count[k] = atoll(PQcmdTuples(r));
        PQclear(r);
    }
    return 0;
}

static int apply_customer(struct conn *w, const struct store_customer *c)
{
    char a[24], b[24];
    const char *v[] = {c->id, c->name, c->tier, num(a, c->first_seen), num(b, c->last_seen)};
    return run(w, W_CUSTOMER, 5, v, NULL);
}

/* Writes c, read before, only if its row still holds what was read: 0,
 * or KEFU_ECONFLICT when another node changed it in between (the UPDATE
 * waits for that node's transaction, then finds no row). */
static int apply_conv_if(struct conn *w, const struct store_conv *c, const char *packet)
{
    char n[11][24];
    const char *v[] = {c->id,
                       c->locale,
                       num(n[0], c->state),
                       c->queue,
                       num(n[1], c->priority),
                       num(n[2], c->anger),
                       c->agent,
                       num(n[3], c->misses),
                       c->pending,
                       c->reason,
                       num(n[4], c->updated_at),
                       num(n[5], c->queued_at),
                       num(n[6], c->last_seq),
                       c->memory,
                       packet,
                       num(n[7], c->was.state),
                       c->was.agent,
                       num(n[8], c->was.last_seq),
                       c->customer};
    PGresult *r;
    int rc = run(w, W_CONV_IF, 19, v, &r);
    if (rc < 0)
        return rc;
    rc = strcmp(PQcmdTuples(r), "1") == 0 ? 0 : KEFU_ECONFLICT;
    PQclear(r);
    return rc;
}

static int apply_conv(struct conn *w, const struct store_conv *c, const char *packet)
{
    if (c->was.read)
        return apply_conv_if(w, c, packet);
    char n[8][24];
    const char *v[] = {c->id,
                       c->token,
                       c->customer,
                       c->channel,
                       c->locale,
                       num(n[0], c->state),
                       c->queue,
                       num(n[1], c->priority),
                       num(n[2], c->anger),
                       c->agent,
                       num(n[3], c->misses),
                       c->pending,
                       c->reason,
                       num(n[4], c->created_at),
                       num(n[5], c->updated_at),
                       num(n[6], c->queued_at),
                       num(n[7], c->last_seq),
                       c->memory, /* NULL keeps the stored memory */
                       packet};
    return run(w, W_CONV, 19, v, NULL);
}

static int apply_message(struct conn *w, const char *conv, const struct store_msg *m)
{
    char seq[24], conf[32], at[24];
    snprintf(conf, sizeof conf, "%.17g", m->confidence);
    const char *v[] = {conv, num(seq, m->seq), m->from,   m->text ? m->text : "", m->source, m->intent,
                       conf, m->client_id,     m->result, num(at, m->at)};
    return run(w, W_MESSAGE, 10, v, NULL);
}

/* One outbox row per target of the event (n 0), or one row as it was
 * elsewhere (n 1: rec a struct store_outbox, kefu store copy). */
static int apply_outbox(struct conn *w, const struct store_op *op)
{
    char at[24], n[4][24];
    if (op->n == 1) {
        const struct store_outbox *o = op->rec;
        const char *v[] = {o->event,
                           o->target,
                           o->conv,
                           o->type,
                           o->body,
                           num(at, o->at),
                           num(n[0], o->state),
                           num(n[1], o->attempts),
                           num(n[2], o->next_ms),
                           o->error ? o->error : "",
                           num(n[3], o->done_at)};
        return run(w, W_OUTBOX_ROW, 11, v, NULL);
    }
    int rc = 0;
    for (const char *const *t = op->rec; rc == 0 && t && *t; t++) {
        const char *v[] = {op->c, *t, op->conv, op->a, op->b, num(at, op->at)};
        rc = run(w, W_OUTBOX, 6, v, NULL);
    }
    return rc;
}

static int apply_outbox_mark(struct conn *w, const struct store_outbox *o)
{
    char n[5][24];
    const char *v[] = {num(n[0], o->id),      num(n[1], o->state),      num(n[2], o->attempts),
                       num(n[3], o->next_ms), o->error ? o->error : "", num(n[4], o->done_at)};
    return run(w, W_OUTBOX_MARK, 6, v, NULL);
}

/* Dead rows back to pending (one, or all for id 0), counted into *count. */
static int apply_outbox_replay(struct conn *w, long long id, long long *count)
{
    char n[24];
    const char *v[] = {num(n, id)};
    PGresult *r;
    int rc = id ? run(w, W_OUTBOX_REPLAY, 1, v, &r) : run(w, W_OUTBOX_REPLAY_ALL, 0, NULL, &r);
    if (rc < 0)
        return rc;
    if (count)
        *count = atoll(PQcmdTuples(r));
    PQclear(r);
    return 0;
}

/* Adds (update 0) or updates (1) an agent account; an update of no row is KEFU_ENOENT. */
static int apply_agent(struct conn *w, const struct store_agent *a, int update)
{
    char n[4][24];
    const char *v[] = {a->name,
                       a->token_hash,
                       a->skills,
                       num(n[0], a->capacity),
                       num(n[1], a->disabled),
                       num(n[2], update ? a->updated_at : a->created_at),
                       num(n[3], a->updated_at)};
    PGresult *r; /* an update takes the first six: its $6 is updated_at */
    int rc = update ? run(w, W_AGENT_UPDATE, 6, v, &r) : run(w, W_AGENT_ADD, 7, v, &r);
    if (rc < 0)
        return rc;
    if (update && strcmp(PQcmdTuples(r), "0") == 0)
        rc = KEFU_ENOENT;
    PQclear(r);
    return rc;
}

static int apply_op(struct conn *w, const struct store_op *op)
{
    char at[24], n[24];
    switch (op->kind) {
    case OP_CUSTOMER: return apply_customer(w, op->rec);
    case OP_CONV: return apply_conv(w, op->rec, op->a);
    case OP_MESSAGE: return apply_message(w, op->conv, op->rec);
    case OP_EVENT: {
        const char *v[] = {op->conv, num(at, op->at), op->a, op->b, op->c, (const char *)op->rec};
        return run(w, W_EVENT, 6, v, NULL);
    }
    case OP_FEEDBACK: {
        const char *v[] = {op->conv, num(at, op->at), num(n, op->n), op->a};
        return run(w, W_FEEDBACK, 4, v, NULL);
    }
    case OP_RESPONSE: {
        const char *v[] = {op->conv, num(at, op->at), op->a, op->b, op->c, num(n, op->n)};
        return run(w, W_RESPONSE, 6, v, NULL);
    }
    case OP_ANSWER: {
        const char *v[] = {op->conv, num(n, op->n), num(at, op->at), op->a, op->b};
        return run(w, W_ANSWER, 5, v, NULL);
    }
    case OP_ERASE: return apply_erase(w, op->conv, op->out);
    case OP_OUTBOX: return apply_outbox(w, op);
    case OP_OUTBOX_MARK: return apply_outbox_mark(w, op->rec);
    case OP_OUTBOX_REPLAY: return apply_outbox_replay(w, op->at, op->out);
    case OP_OUTBOX_PRUNE: {
        const char *v[] = {num(at, op->at)};
        return run(w, W_OUTBOX_PRUNE, 1, v, NULL);
    }
    case OP_AGENT: return apply_agent(w, op->rec, op->n);
    default: return KEFU_EINVAL;
    }
}

/* Applies one batch inside a savepoint: all of it or none. */
static int apply_batch(struct conn *w, struct store_batch *b)
{
    int rc = exec(w, "SAVEPOINT batch");
    if (rc < 0)
        return rc;
    for (size_t i = 0; i < b->n && rc == 0; i++)
        rc = apply_op(w, &b->op[i]);
    if (rc < 0) {
        int back = exec(w, "ROLLBACK TO SAVEPOINT batch");
        return back < 0 ? back : rc;
    }
    return exec(w, "RELEASE SAVEPOINT batch");
}

/* Sends what one line buffer holds as one notification; 0 or KEFU_E…. */
static int notify_flush(struct conn *w, char *buf, size_t *n)
{
    if (*n == 0)
        return 0;
    buf[*n] = 0;
    const char *v[] = {buf};
    *n = 0;
    return run(w, W_NOTIFY, 1, v, NULL);
}

/* Tells the other nodes, in the group's transaction (PostgreSQL delivers
 * it at the commit, and only if the commit holds), which conversations
 * the batches that held changed. */
static int notify_group(struct conn *w, struct store_batch *list)
{
    char buf[NOTIFY_MAX + 128];
    size_t n = 0;
    int rc = 0;
    for (struct store_batch *b = list; b && rc == 0; b = b->next)
        for (size_t i = 0; i < b->n && b->rc == 0 && rc == 0; i++) {
            const struct store_op *op = &b->op[i];
            if (op->kind != OP_CONV)
                continue;
            const struct store_conv *c = op->rec;
            n += (size_t)snprintf(buf + n, sizeof buf - n, "%s %ld %d\n", c->id, c->last_seq, c->state);
            if (n >= NOTIFY_MAX)
                rc = notify_flush(w, buf, &n);
        }
    return rc == 0 ? notify_flush(w, buf, &n) : rc;
}

/* Writes a list of batches in one transaction and sets each one's rc. A
 * batch that leaves no open transaction behind (the connection broke)
 * fails the whole group; so does a failed COMMIT, after which nothing of
 * the group is acknowledged. */
static void pg_commit(struct store_db *db, struct store_batch *list)
{
    struct conn *w = &db->writer;
    int rc = conn_ready(w, db->uri);
    if (rc == 0)
        rc = exec(w, "BEGIN");
    if (rc == KEFU_EUNAVAIL && (rc = conn_again(w, db->uri)) == 0) /* the server restarted */
        rc = exec(w, "BEGIN");
    for (struct store_batch *b = list; b && rc == 0; b = b->next) {
        b->rc = apply_batch(w, b);
        if (PQstatus(w->pg) != CONNECTION_OK || PQtransactionStatus(w->pg) != PQTRANS_INTRANS)
            rc = b->rc < 0 ? b->rc : KEFU_EUNAVAIL; /* the transaction cannot go on */
    }
    if (rc == 0) {
        atomic_store(&db->writer_pid, PQbackendPID(w->pg));
        rc = notify_group(w, list);
    }
    if (rc == 0 && (rc = exec(w, "COMMIT")) < 0 && PQstatus(w->pg) == CONNECTION_OK)
        exec(w, "ROLLBACK");
    else if (rc < 0 && w->pg && PQstatus(w->pg) == CONNECTION_OK &&
             PQtransactionStatus(w->pg) != PQTRANS_IDLE)
        exec(w, "ROLLBACK");
    if (rc < 0)
        for (struct store_batch *b = list; b; b = b->next)
            b->rc = rc;
}

/* ---- the listener ---- */

/* Calls the listener's callback for each line "conv seq state" of payload. */
static void heard(struct store_db *db, char *payload)
{
    for (char *save = NULL, *line = strtok_r(payload, "\n", &save); line;
         line = strtok_r(NULL, "\n", &save)) {
        char conv[64];
        long seq;
        int state;
        if (sscanf(line, "%63s %ld %d", conv, &seq, &state) == 3)
            db->changed(db->changed_ctx, conv, seq, state);
    }
}

/* Waits up to ms for notifications on c and hands them on; 0, or
 * KEFU_EUNAVAIL when the connection broke. */
static int listen_once(struct store_db *db, struct conn *c, int ms)
{
    struct pollfd p = {.fd = PQsocket(c->pg), .events = POLLIN};
    if (p.fd < 0)
        return KEFU_EUNAVAIL;
    if (poll(&p, 1, ms) > 0 && !PQconsumeInput(c->pg))
        return KEFU_EUNAVAIL;
    for (PGnotify *n; (n = PQnotifies(c->pg)); PQfreemem(n))
        if (n->be_pid != atomic_load(&db->writer_pid))
            heard(db, n->extra);
    return PQstatus(c->pg) == CONNECTION_OK ? 0 : KEFU_EUNAVAIL;
}

/* The listener thread: LISTEN on its own connection, reconnecting after
 * the server went away; checks for stop() every 200 ms. */
static void *listener_main(void *arg)
{
    struct store_db *db = arg;
    struct conn c = {0};
    while (!atomic_load(&db->stop)) {
        if (!c.pg || PQstatus(c.pg) != CONNECTION_OK) {
            if (conn_ready(&c, db->uri) < 0 || exec(&c, "LISTEN " CHANNEL) < 0) {
                conn_close(&c);
                for (int k = 0; k < 5 && !atomic_load(&db->stop); k++)
                    poll(NULL, 0, 100); /* the server is away: try again in half a second */
                continue;
            }
            /* what changed while we did not listen: every open conversation is news */
            db->changed(db->changed_ctx, NULL, 0, 0);
        }
        if (listen_once(db, &c, 200) < 0)
            conn_close(&c);
    }
    conn_close(&c);
    return NULL;
}

static int pg_listen(struct store_db *db, store_change_fn fn, void *ctx)
{
    if (db->listening)
        return 0;
    db->changed = fn;
    db->changed_ctx = ctx;
    if (pthread_create(&db->listener, NULL, listener_main, db) != 0)
        return KEFU_ENOMEM;
    db->listening = 1;
    return 0;
}

/* ---- opening and closing ---- */

static void pg_close(struct store_db *db)
{
    if (!db)
        return;
    if (db->listening) {
        atomic_store(&db->stop, 1);
        pthread_join(db->listener, NULL);
    }
    for (int i = 0; i < db->n_readers; i++)
        conn_close(&db->readers[i]);
    free(db->readers);
    conn_close(&db->writer);
    pthread_mutex_destroy(&db->rlock);
    pthread_cond_destroy(&db->rfree);
    free(db->uri);
    free(db);
}

/* Readers connect on first use; the writer connects now, so a server that
 * is not there fails the open with KEFU_EUNAVAIL. */
static int pg_open(const char *where, int readers, struct store_db **out)
{
    *out = NULL;
    struct store_db *db = kefu_calloc(1, sizeof *db);
    if (!db)
        return KEFU_ENOMEM;
    pthread_mutex_init(&db->rlock, NULL);
    pthread_cond_init(&db->rfree, NULL);
    int rc = (db->uri = kefu_strndup(where, strlen(where))) ? 0 : KEFU_ENOMEM;
    if (rc == 0 && readers > 0 && !(db->readers = kefu_calloc((size_t)readers, sizeof *db->readers)))
        rc = KEFU_ENOMEM;
    if (rc == 0)
        db->n_readers = readers;
    if (rc == 0)
        rc = conn_ready(&db->writer, db->uri);
    if (rc < 0) {
        pg_close(db);
        return rc;
    }
    *out = db;
    return 0;
}

/* ---- reading ---- */

static struct conn *reader_get(struct store_db *db)
{
    pthread_mutex_lock(&db->rlock);
    for (;;) {
        for (int i = 0; i < db->n_readers; i++) {
            if (!db->readers[i].busy) {
                db->readers[i].busy = 1;
                pthread_mutex_unlock(&db->rlock);
                return &db->readers[i];
            }
        }
        pthread_cond_wait(&db->rfree, &db->rlock);
    }
}

static void reader_put(struct store_db *db, struct conn *c)
{
    pthread_mutex_lock(&db->rlock);
    c->busy = 0;
    pthread_cond_signal(&db->rfree);
    pthread_mutex_unlock(&db->rlock);
}

/* Runs read statement k on a pooled reader; *out is the result (PQclear()). */
static int query(struct store_db *db, int k, int n, const char *const *v, PGresult **out)
{
    struct conn *c = reader_get(db);
    int rc = conn_ready(c, db->uri);
    if (rc == 0)
        rc = run(c, k, n, v, out);
    if (rc == KEFU_EUNAVAIL && (rc = conn_again(c, db->uri)) == 0) /* a read can be sent again */
        rc = run(c, k, n, v, out);
    reader_put(db, c);
    return rc;
}

/* Column i of row as text, NULL for SQL NULL. */
static const char *col_str(const PGresult *r, int row, int i)
{
    return PQgetisnull(r, row, i) ? NULL : PQgetvalue(r, row, i);
}

static void col_copy(const PGresult *r, int row, int i, char *dst, size_t cap)
{
    snprintf(dst, cap, "%s", PQgetvalue(r, row, i));
}

static long long col_int(const PGresult *r, int row, int i)
{
    return atoll(PQgetvalue(r, row, i));
}

/* Fills *c from row of CONV_COLS; memory is a new copy. */
static int read_conv(const PGresult *r, int row, struct store_conv *c)
{
    memset(c, 0, sizeof *c);
    col_copy(r, row, 0, c->id, sizeof c->id);
    col_copy(r, row, 1, c->token, sizeof c->token);
    col_copy(r, row, 2, c->customer, sizeof c->customer);
    col_copy(r, row, 3, c->channel, sizeof c->channel);
    col_copy(r, row, 4, c->locale, sizeof c->locale);
    c->state = (int)col_int(r, row, 5);
    col_copy(r, row, 6, c->queue, sizeof c->queue);
    c->priority = (int)col_int(r, row, 7);
    c->anger = (int)col_int(r, row, 8);
    col_copy(r, row, 9, c->agent, sizeof c->agent);
    c->misses = (int)col_int(r, row, 10);
    col_copy(r, row, 11, c->pending, sizeof c->pending);
    col_copy(r, row, 12, c->reason, sizeof c->reason);
    c->created_at = col_int(r, row, 13);
    c->updated_at = col_int(r, row, 14);
    c->queued_at = col_int(r, row, 15);
    c->last_seq = (long)col_int(r, row, 16);
    const char *m = col_str(r, row, 17);
    c->memory = kefu_strndup(m ? m : "{}", m ? strlen(m) : 2);
    return c->memory ? 0 : KEFU_ENOMEM;
}

static int pg_get_conv(struct store_db *db, const char *id, struct store_conv *out)
{
    memset(out, 0, sizeof *out);
    PGresult *r;
    int rc = query(db, R_CONV, 1, &id, &r);
    if (rc < 0)
        return rc;
    rc = PQntuples(r) == 1 ? read_conv(r, 0, out) : KEFU_ENOENT;
    PQclear(r);
    return rc;
}

static int pg_get_packet(struct store_db *db, const char *id, char **out)
{
    PGresult *r;
    int rc = query(db, R_PACKET, 1, &id, &r);
    if (rc < 0)
        return rc;
    rc = PQntuples(r) == 1 ? 0 : KEFU_ENOENT;
    const char *p = rc == 0 ? col_str(r, 0, 0) : NULL;
    if (p && !(*out = kefu_strndup(p, strlen(p))))
        rc = KEFU_ENOMEM;
    PQclear(r);
    return rc;
}

static int pg_get_customer(struct store_db *db, const char *id, struct store_customer *out)
{
    PGresult *r;
    int rc = query(db, R_CUSTOMER, 1, &id, &r);
    if (rc < 0)
        return rc;
    rc = PQntuples(r) == 1 ? 0 : KEFU_ENOENT;
    if (rc == 0) {
        col_copy(r, 0, 0, out->id, sizeof out->id);
        col_copy(r, 0, 1, out->name, sizeof out->name);
        col_copy(r, 0, 2, out->tier, sizeof out->tier);
        out->first_seen = col_int(r, 0, 3);
        out->last_seen = col_int(r, 0, 4);
    }
    PQclear(r);
    return rc;
}

static int pg_messages(struct store_db *db, const char *conv, long after, int limit, store_msg_fn fn,
                       void *ctx)
{
    char a[24], l[24];
    const char *v[] = {conv, num(a, after), limit > 0 ? num(l, limit) : NULL};
    PGresult *r;
    int rc = query(db, R_MESSAGES, 3, v, &r);
    if (rc < 0)
        return rc;
    for (int i = 0; i < PQntuples(r); i++) {
        struct store_msg m = {(long)col_int(r, i, 0), col_str(r, i, 1), col_str(r, i, 2),
                              col_str(r, i, 3),       col_str(r, i, 4), strtod(PQgetvalue(r, i, 5), NULL),
                              col_str(r, i, 6),       col_str(r, i, 7), col_int(r, i, 8)};
        if (fn(ctx, &m))
            break;
    }
    PQclear(r);
    return 0;
}

static int pg_find_client_id(struct store_db *db, const char *conv, const char *client_id, long *seq,
                             char **result)
{
    const char *v[] = {conv, client_id};
    PGresult *r;
    int rc = query(db, R_CLIENT, 2, v, &r);
    if (rc < 0)
        return rc;
    rc = PQntuples(r) >= 1 ? 0 : KEFU_ENOENT;
    if (rc == 0) {
        *seq = (long)col_int(r, 0, 0);
        const char *s = col_str(r, 0, 1);
        if (s && !(*result = kefu_strndup(s, strlen(s))))
            rc = KEFU_ENOMEM;
    }
    PQclear(r);
    return rc;
}

/* Calls fn for each conversation row of r. */
static int each_conv(const PGresult *r, store_conv_fn fn, void *ctx)
{
    for (int i = 0; i < PQntuples(r); i++) {
        struct store_conv cv;
        if (read_conv(r, i, &cv) < 0)
            return KEFU_ENOMEM;
        int stop = fn(ctx, &cv);
        store_conv_release(&cv);
        if (stop)
            break;
    }
    return 0;
}

static int pg_customer_convs(struct store_db *db, const char *customer, int limit, store_conv_fn fn,
                             void *ctx)
{
    char l[24];
    const char *v[] = {customer, limit > 0 ? num(l, limit) : NULL};
    PGresult *r;
    int rc = query(db, R_CUSTOMER_CONVS, 2, v, &r);
    if (rc < 0)
        return rc;
    rc = each_conv(r, fn, ctx);
    PQclear(r);
    return rc;
}

static int pg_open_convs(struct store_db *db, store_conv_fn fn, void *ctx)
{
    PGresult *r;
    int rc = query(db, R_OPEN_CONVS, 0, NULL, &r);
    if (rc < 0)
        return rc;
    rc = each_conv(r, fn, ctx);
    PQclear(r);
    return rc;
}

static int pg_report(struct store_db *db, int which, store_row_fn fn, void *ctx)
{
    PGresult *r;
    int rc = query(db, R_REPORT0 + which, 0, NULL, &r);
    if (rc < 0)
        return rc;
    for (int i = 0; i < PQntuples(r); i++)
        if (fn(ctx, col_str(r, i, 0), col_int(r, i, 1), strtod(PQgetvalue(r, i, 2), NULL)))
            break;
    PQclear(r);
    return 0;
}

static void day_hour(long long *v, long long hour, long long n)
{
    if (hour >= 0 && hour < STORE_DAY_HOURS)
        v[hour] += n;
}

static void day_messages(const PGresult *r, struct store_day *out)
{
    for (int i = 0; i < PQntuples(r); i++) {
        long long hour = col_int(r, i, 0), n = col_int(r, i, 1), answered = col_int(r, i, 2);
        out->customer_messages += n;
        out->answered += answered;
        out->bot_handled += col_int(r, i, 3);
        day_hour(out->hour_messages, hour, n);
        day_hour(out->hour_answered, hour, answered);
    }
}

static void day_events(const PGresult *r, struct store_day *out)
{
    for (int i = 0; i < PQntuples(r); i++) {
        long long hour = col_int(r, i, 0), n = col_int(r, i, 2);
        const char *kind = PQgetvalue(r, i, 1);
        if (strcmp(kind, "created") == 0)
            out->conversations += n;
        else if (strcmp(kind, "claim") == 0)
            out->claims += n;
        else if (strcmp(kind, "resolve") == 0)
            out->resolves += n;
        else if (strcmp(kind, "handoff") == 0) {
            out->handoffs += n;
            day_hour(out->hour_handoffs, hour, n);
        }
    }
}

static void day_rest(const PGresult *waits, const PGresult *ratings, struct store_day *out)
{
    if (PQntuples(waits) == 1) {
        out->waits = col_int(waits, 0, 0);
        out->wait_avg = strtod(PQgetvalue(waits, 0, 1), NULL);
        out->wait_max = col_int(waits, 0, 2);
    }
    for (int i = 0; i < PQntuples(ratings); i++) {
        long long k = col_int(ratings, i, 0);
        if (k >= 1 && k <= 5)
            out->ratings[k] += col_int(ratings, i, 1);
    }
}

static int pg_day(struct store_db *db, long long since, struct store_day *out)
{
    char s[24];
    const char *v[] = {num(s, since)};
    PGresult *r[4] = {NULL, NULL, NULL, NULL};
    int rc = 0;
    for (int k = 0; k < 4 && rc == 0; k++)
        rc = query(db, R_DAY_MESSAGES + k, 1, v, &r[k]);
    if (rc == 0) {
        day_messages(r[0], out);
        day_events(r[1], out);
        day_rest(r[2], r[3], out);
    }
    for (int k = 0; k < 4; k++)
        PQclear(r[k]);
    return rc;
}

static int pg_counts(struct store_db *db, struct store_counts *out)
{
    PGresult *r;
    int rc = query(db, R_COUNTS, 0, NULL, &r);
    if (rc < 0)
        return rc;
    if (PQntuples(r) == 1) {
        long long *v[] = {&out->customers, &out->conversations, &out->messages,  &out->events, &out->feedback,
                          &out->outbox,    &out->agents,        &out->responses, &out->answers};
        for (int k = 0; k < 9; k++)
            *v[k] = col_int(r, 0, k);
    } else
        rc = KEFU_EIO;
    PQclear(r);
    return rc;
}

/* One of the reports read "from since on": the row's reader and the caller's callback. */
struct since_call {
    int (*row)(const PGresult *r, int i, const struct since_call *c); /* non-zero stops */
    store_response_fn responses;
    store_variant_fn variants;
    store_kpi_fn kpi;
    void *ctx;
};

/* Runs statement k with $1 = since and hands each row to c->row. */
static int each_since(struct store_db *db, int k, long long since, const struct since_call *c)
{
    char s[24];
    const char *v[] = {num(s, since)};
    PGresult *r;
    int rc = query(db, k, 1, v, &r);
    if (rc < 0)
        return rc;
    for (int i = 0; i < PQntuples(r) && !c->row(r, i, c); i++)
        ;
    PQclear(r);
    return 0;
}

static double col_double(const PGresult *r, int row, int i)
{
    return strtod(PQgetvalue(r, row, i), NULL);
}

static int response_row(const PGresult *r, int i, const struct since_call *c)
{
    struct store_response_group g = {
        .n = col_int(r, i, 2), .avg = col_double(r, i, 3), .max = col_int(r, i, 4)};
    col_copy(r, i, 0, g.queue, sizeof g.queue);
    col_copy(r, i, 1, g.channel, sizeof g.channel);
    return c->responses(c->ctx, &g);
}

static int pg_first_responses(struct store_db *db, long long since, store_response_fn fn, void *ctx)
{
    return each_since(db, R_RESPONSES, since,
                      &(struct since_call){.row = response_row, .responses = fn, .ctx = ctx});
}

static int variant_row(const PGresult *r, int i, const struct since_call *c)
{
    struct store_variant_row v = {.answers = col_int(r, i, 2),
                                  .contained = col_int(r, i, 3),
                                  .ratings = col_int(r, i, 4),
                                  .rating_avg = col_double(r, i, 5)};
    col_copy(r, i, 0, v.intent, sizeof v.intent);
    col_copy(r, i, 1, v.variant, sizeof v.variant);
    return c->variants(c->ctx, &v);
}

static int pg_variants(struct store_db *db, long long since, store_variant_fn fn, void *ctx)
{
    return each_since(db, R_VARIANTS, since,
                      &(struct since_call){.row = variant_row, .variants = fn, .ctx = ctx});
}

static int kpi_row(const PGresult *r, int i, const struct since_call *c)
{
    struct store_kpi_row k = {.conversations = col_int(r, i, 1),
                              .handled = col_int(r, i, 2),
                              .answered = col_int(r, i, 3),
                              .first_contact = col_int(r, i, 4),
                              .responses = col_int(r, i, 5),
                              .response_avg = col_double(r, i, 6),
                              .handled_by_agents = col_int(r, i, 7),
                              .handling_avg = col_double(r, i, 8),
                              .ratings = col_int(r, i, 9),
                              .rating_avg = col_double(r, i, 10)};
    col_copy(r, i, 0, k.channel, sizeof k.channel);
    return c->kpi(c->ctx, &k);
}

static int pg_kpi(struct store_db *db, long long since, store_kpi_fn fn, void *ctx)
{
    return each_since(db, R_KPI, since, &(struct since_call){.row = kpi_row, .kpi = fn, .ctx = ctx});
}

/* Calls fn for each outbox row of r (OUTBOX_COLS). */
static int each_outbox(const PGresult *r, store_outbox_fn fn, void *ctx)
{
    for (int i = 0; i < PQntuples(r); i++) {
        struct store_outbox o = {.id = col_int(r, i, 0),
                                 .event = PQgetvalue(r, i, 1),
                                 .target = PQgetvalue(r, i, 2),
                                 .conv = PQgetvalue(r, i, 3),
                                 .type = PQgetvalue(r, i, 4),
                                 .body = PQgetvalue(r, i, 5),
                                 .at = col_int(r, i, 6),
                                 .state = (int)col_int(r, i, 7),
                                 .attempts = (int)col_int(r, i, 8),
                                 .next_ms = col_int(r, i, 9),
                                 .error = PQgetvalue(r, i, 10),
                                 .done_at = col_int(r, i, 11)};
        if (fn(ctx, &o))
            break;
    }
    return 0;
}

/* The due rows, each taken for OUTBOX_LEASE_MS in the same statement
 * (R_OUTBOX_TAKE): two nodes never get the same row while its lease runs,
 * and a row is sent again only after its sender failed to settle it. */
static int pg_outbox_due(struct store_db *db, const char *target, long long now_ms, int limit,
                         store_outbox_fn fn, void *ctx)
{
    char t[24], l[24], until[24];
    const char *v[] = {target, num(t, now_ms), limit > 0 ? num(l, limit) : NULL,
                       num(until, now_ms + OUTBOX_LEASE_MS)};
    PGresult *r;
    int rc = query(db, R_OUTBOX_TAKE, 4, v, &r);
    if (rc < 0)
        return rc;
    rc = each_outbox(r, fn, ctx);
    PQclear(r);
    return rc;
}

static int pg_outbox_list(struct store_db *db, int state, int limit, store_outbox_fn fn, void *ctx)
{
    char s[24], l[24];
    const char *v[] = {num(s, state), limit > 0 ? num(l, limit) : NULL};
    PGresult *r;
    int rc = query(db, state < 0 ? R_OUTBOX_LIST_OPEN : R_OUTBOX_LIST, 2, v, &r);
    if (rc < 0)
        return rc;
    rc = each_outbox(r, fn, ctx);
    PQclear(r);
    return rc;
}

static void read_agent(const PGresult *r, int row, struct store_agent *a)
{
    memset(a, 0, sizeof *a);
    col_copy(r, row, 0, a->name, sizeof a->name);
    col_copy(r, row, 1, a->token_hash, sizeof a->token_hash);
    col_copy(r, row, 2, a->skills, sizeof a->skills);
    a->capacity = (int)col_int(r, row, 3);
    a->disabled = (int)col_int(r, row, 4);
    a->created_at = col_int(r, row, 5);
    a->updated_at = col_int(r, row, 6);
}

static int pg_get_agent(struct store_db *db, const char *key, int by_hash, struct store_agent *out)
{
    PGresult *r;
    int rc = query(db, by_hash ? R_AGENT_HASH : R_AGENT, 1, &key, &r);
    if (rc < 0)
        return rc;
    rc = PQntuples(r) == 1 ? 0 : KEFU_ENOENT;
    if (rc == 0)
        read_agent(r, 0, out);
    PQclear(r);
    return rc;
}

static int pg_agents(struct store_db *db, store_agent_fn fn, void *ctx)
{
    PGresult *r;
    int rc = query(db, R_AGENTS, 0, NULL, &r);
    if (rc < 0)
        return rc;
    for (int i = 0; i < PQntuples(r); i++) {
        struct store_agent a;
        read_agent(r, i, &a);
        if (fn(ctx, &a))
            break;
    }
    PQclear(r);
    return 0;
}

const struct store_backend store_postgres = {
    .name = "postgresql",
    .migrations = migrations,
    .cacheable = 0, /* other nodes write the same rows */
    .open = pg_open,
    .close = pg_close,
    .schema_lock = pg_schema_lock,
    .schema_unlock = pg_schema_unlock,
    .schema_version = pg_schema_version,
    .schema_step = pg_schema_step,
    .commit = pg_commit,
    .after_commit = NULL,
    .listen = pg_listen,
    .maintenance = NULL,
    .version = pg_version,
    .get_conv = pg_get_conv,
    .get_packet = pg_get_packet,
    .get_customer = pg_get_customer,
    .messages = pg_messages,
    .find_client_id = pg_find_client_id,
    .customer_convs = pg_customer_convs,
    .open_convs = pg_open_convs,
    .report = pg_report,
    .day = pg_day,
    .counts = pg_counts,
    .outbox_due = pg_outbox_due,
    .outbox_list = pg_outbox_list,
    .get_agent = pg_get_agent,
    .agents = pg_agents,
    .first_responses = pg_first_responses,
    .variants = pg_variants,
    .kpi = pg_kpi,
};
