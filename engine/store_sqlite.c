/* store_sqlite.c — the SQLite backend of the store (store_int.h): one file
 * in WAL mode with synchronous=FULL, so a committed transaction is on disk.
 * store.c's writer thread is the only user of the writing connection;
 * readers take a connection from a small pool. Every statement is prepared
 * once per connection and reused. The schema version is PRAGMA
 * user_version; a step of the migration runs under BEGIN IMMEDIATE, which
 * also keeps a second process from migrating the file at the same time.
 * A checkpointer thread copies the WAL into the database beside the writer. */
#include "kefu.h"
#include "store_int.h"

#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- schema ---- */

static const char *const migrations[STORE_SCHEMA_VERSION] = {
    /* 0 → 1: customers, conversations, messages */
    "CREATE TABLE customers(id TEXT PRIMARY KEY, name TEXT NOT NULL DEFAULT '',"
    " tier TEXT NOT NULL DEFAULT '', first_seen INTEGER NOT NULL, last_seen INTEGER NOT NULL);"
    "CREATE TABLE conversations(id TEXT PRIMARY KEY, token TEXT NOT NULL, customer TEXT NOT NULL,"
    " channel TEXT NOT NULL, locale TEXT NOT NULL DEFAULT '', state INTEGER NOT NULL DEFAULT 0,"
    " queue TEXT NOT NULL DEFAULT '', priority INTEGER NOT NULL DEFAULT 1, agent TEXT NOT NULL DEFAULT '',"
    " misses INTEGER NOT NULL DEFAULT 0, created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL,"
    " last_seq INTEGER NOT NULL DEFAULT 0);"
    "CREATE INDEX conversations_customer ON conversations(customer, created_at);"
    "CREATE TABLE messages(conv TEXT NOT NULL, seq INTEGER NOT NULL, sender TEXT NOT NULL,"
    " text TEXT NOT NULL, source TEXT, intent TEXT, confidence REAL NOT NULL DEFAULT 0, client_id TEXT,"
    " created_at INTEGER NOT NULL, PRIMARY KEY(conv, seq)) WITHOUT ROWID;"
    "CREATE UNIQUE INDEX messages_client ON messages(conv, client_id) WHERE client_id IS NOT NULL;",
    /* 1 → 2: handoff state, events, feedback */
    "ALTER TABLE conversations ADD COLUMN pending TEXT NOT NULL DEFAULT '';"
    "ALTER TABLE conversations ADD COLUMN reason TEXT NOT NULL DEFAULT '';"
    "ALTER TABLE conversations ADD COLUMN queued_at INTEGER NOT NULL DEFAULT 0;"
    "ALTER TABLE conversations ADD COLUMN anger INTEGER NOT NULL DEFAULT 0;"
    "CREATE TABLE events(id INTEGER PRIMARY KEY, conv TEXT NOT NULL, at INTEGER NOT NULL,"
    " kind TEXT NOT NULL, agent TEXT, queue TEXT, reason TEXT);"
    "CREATE INDEX events_conv ON events(conv);"
    "CREATE TABLE feedback(id INTEGER PRIMARY KEY, conv TEXT NOT NULL, at INTEGER NOT NULL,"
    " rating INTEGER NOT NULL CHECK (rating BETWEEN 1 AND 5), comment TEXT);",
    /* 2 → 3: dialog memory, handoff packet, idempotent results; queued rows get a queue time */
    "ALTER TABLE conversations ADD COLUMN memory TEXT NOT NULL DEFAULT '{}';"
    "ALTER TABLE conversations ADD COLUMN packet TEXT;"
    "ALTER TABLE messages ADD COLUMN result TEXT;"
    "CREATE INDEX conversations_open ON conversations(state) WHERE state IN (1, 2);"
    "UPDATE conversations SET queued_at = updated_at WHERE state IN (1, 2) AND queued_at = 0;",
    /* 3 → 4: the webhook outbox, one row per event and target (state 0 pending, 1 delivered, 2 dead) */
    "CREATE TABLE outbox(id INTEGER PRIMARY KEY, event TEXT NOT NULL, target TEXT NOT NULL,"
    " conv TEXT NOT NULL, type TEXT NOT NULL, body TEXT NOT NULL, at INTEGER NOT NULL,"
    " state INTEGER NOT NULL DEFAULT 0, attempts INTEGER NOT NULL DEFAULT 0,"
    " next_ms INTEGER NOT NULL DEFAULT 0, error TEXT NOT NULL DEFAULT '',"
    " done_at INTEGER NOT NULL DEFAULT 0);"
    "CREATE INDEX outbox_pending ON outbox(target, conv, id) WHERE state = 0;"
    "CREATE INDEX outbox_state ON outbox(state, id);"
    "CREATE INDEX outbox_conv ON outbox(conv);",
    /* 4 → 5: agent accounts (a hash of each token, never the token) */
    "CREATE TABLE agents(name TEXT PRIMARY KEY, token_hash TEXT NOT NULL UNIQUE,"
    " skills TEXT NOT NULL DEFAULT '', capacity INTEGER NOT NULL DEFAULT 0,"
    " disabled INTEGER NOT NULL DEFAULT 0, created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL);",
    /* 5 → 6: agents' first responses (handoff → the agent's first message) */
    "CREATE TABLE responses(conv TEXT NOT NULL, at INTEGER NOT NULL, queue TEXT NOT NULL,"
    " channel TEXT NOT NULL, agent TEXT NOT NULL, seconds INTEGER NOT NULL);"
    "CREATE INDEX responses_at ON responses(at);"
    "CREATE INDEX responses_conv ON responses(conv);",
    /* 6 → 7: which A/B variant of an intent's reply each answer gave */
    "CREATE TABLE answers(conv TEXT NOT NULL, seq INTEGER NOT NULL, at INTEGER NOT NULL, intent TEXT NOT "
    "NULL,"
    " variant TEXT NOT NULL, PRIMARY KEY(conv, seq)) WITHOUT ROWID;"
    "CREATE INDEX answers_intent ON answers(intent, variant);",
};

/* ---- statements ---- */

enum {
    W_BEGIN,
    W_COMMIT,
    W_ROLLBACK,
    W_SAVEPOINT,
    W_RELEASE,
    W_ROLLBACK_TO,
    W_CUSTOMER,
    W_CONV,
    W_MESSAGE,
    W_EVENT,
    W_FEEDBACK,
    W_RESPONSE,
    W_ANSWER,
    W_ERASE_MSG,
    W_ERASE_EVENT,
    W_ERASE_FEEDBACK,
    W_ERASE_RESPONSES,
    W_ERASE_ANSWERS,
    W_ERASE_OUTBOX,
    W_ERASE_CONV,
    W_ERASE_CUSTOMER,
    W_CHECKPOINT,
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
    R_RESPONSES,
    R_VARIANTS,
    R_KPI,
    R_OUTBOX_DUE,
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
    [W_BEGIN] = "BEGIN IMMEDIATE",
    [W_COMMIT] = "COMMIT",
    [W_ROLLBACK] = "ROLLBACK",
    [W_SAVEPOINT] = "SAVEPOINT batch",
    [W_RELEASE] = "RELEASE batch",
    [W_ROLLBACK_TO] = "ROLLBACK TO batch",
    [W_CUSTOMER] = "INSERT INTO customers(id, name, tier, first_seen, last_seen) VALUES (?1, ?2, ?3, ?4, ?5)"
                   " ON CONFLICT(id) DO UPDATE SET"
                   " name = CASE WHEN excluded.name <> '' THEN excluded.name ELSE name END,"
                   " tier = CASE WHEN excluded.tier <> '' THEN excluded.tier ELSE tier END,"
                   " last_seen = max(last_seen, excluded.last_seen)",
    [W_CONV] =
        "INSERT INTO conversations(" CONV_COLS ", packet)"
        " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, "
        "coalesce(?18, '{}'), ?19)"
        " ON CONFLICT(id) DO UPDATE SET customer = excluded.customer, locale = excluded.locale,"
        " state = excluded.state, queue = excluded.queue, priority = excluded.priority,"
        " anger = excluded.anger, agent = excluded.agent, misses = excluded.misses,"
        " pending = excluded.pending, reason = excluded.reason, updated_at = excluded.updated_at,"
        " queued_at = excluded.queued_at, last_seq = excluded.last_seq, memory = coalesce(?18, memory),"
        " packet = coalesce(excluded.packet, packet)",
    [W_MESSAGE] =
        "INSERT INTO messages(conv, seq, sender, text, source, intent, confidence, client_id, result,"
        " created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
    [W_EVENT] = "INSERT INTO events(conv, at, kind, agent, queue, reason) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    [W_FEEDBACK] = "INSERT INTO feedback(conv, at, rating, comment) VALUES (?1, ?2, ?3, ?4)",
    [W_RESPONSE] =
        "INSERT INTO responses(conv, at, queue, channel, agent, seconds) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    [W_ANSWER] = "INSERT INTO answers(conv, seq, at, intent, variant) VALUES (?1, ?2, ?3, ?4, ?5)",
    [W_ERASE_ANSWERS] =
        "DELETE FROM answers WHERE conv IN (SELECT id FROM conversations WHERE customer = ?1)",
    [W_ERASE_RESPONSES] =
        "DELETE FROM responses WHERE conv IN (SELECT id FROM conversations WHERE customer = ?1)",
    [W_ERASE_MSG] = "DELETE FROM messages WHERE conv IN (SELECT id FROM conversations WHERE customer = ?1)",
    [W_ERASE_EVENT] = "DELETE FROM events WHERE conv IN (SELECT id FROM conversations WHERE customer = ?1)",
    [W_ERASE_FEEDBACK] =
        "DELETE FROM feedback WHERE conv IN (SELECT id FROM conversations WHERE customer = ?1)",
    [W_ERASE_OUTBOX] = "DELETE FROM outbox WHERE conv IN (SELECT id FROM conversations WHERE customer = ?1)",
    [W_ERASE_CONV] = "DELETE FROM conversations WHERE customer = ?1",
    [W_ERASE_CUSTOMER] = "DELETE FROM customers WHERE id = ?1",
    [W_CHECKPOINT] = "PRAGMA wal_checkpoint(TRUNCATE)",
    [W_OUTBOX] = "INSERT INTO outbox(event, target, conv, type, body, at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    [W_OUTBOX_ROW] =
        "INSERT INTO outbox(event, target, conv, type, body, at, state, attempts, next_ms, error,"
        " done_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
    [W_OUTBOX_MARK] = "UPDATE outbox SET state = ?2, attempts = ?3, next_ms = ?4, error = ?5, done_at = ?6"
                      " WHERE id = ?1",
    [W_OUTBOX_REPLAY] = "UPDATE outbox SET state = 0, attempts = 0, next_ms = 0, done_at = 0"
                        " WHERE id = ?1 AND state = 2",
    [W_OUTBOX_REPLAY_ALL] =
        "UPDATE outbox SET state = 0, attempts = 0, next_ms = 0, done_at = 0 WHERE state = 2",
    [W_OUTBOX_PRUNE] = "DELETE FROM outbox WHERE state = 1 AND done_at < ?1",
    [W_AGENT_ADD] = "INSERT INTO agents(name, token_hash, skills, capacity, disabled, created_at, updated_at)"
                    " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    [W_AGENT_UPDATE] = "UPDATE agents SET token_hash = ?2, skills = ?3, capacity = ?4, disabled = ?5,"
                       " updated_at = ?7 WHERE name = ?1",
    [R_CONV] = "SELECT " CONV_COLS " FROM conversations WHERE id = ?1",
    [R_PACKET] = "SELECT packet FROM conversations WHERE id = ?1",
    [R_CUSTOMER] = "SELECT id, name, tier, first_seen, last_seen FROM customers WHERE id = ?1",
    [R_MESSAGES] = "SELECT seq, sender, text, source, intent, confidence, client_id, result, created_at"
                   " FROM messages WHERE conv = ?1 AND seq > ?2 ORDER BY seq LIMIT ?3",
    [R_CLIENT] = "SELECT seq, result FROM messages WHERE conv = ?1 AND client_id = ?2",
    [R_CUSTOMER_CONVS] = "SELECT " CONV_COLS " FROM conversations WHERE customer = ?1"
                         " ORDER BY created_at DESC, rowid DESC LIMIT ?2",
    [R_OPEN_CONVS] =
        "SELECT " CONV_COLS " FROM conversations WHERE state IN (1, 2) ORDER BY queued_at, rowid",
    [R_DAY_MESSAGES] = "SELECT (created_at - ?1) / 3600, count(*), sum(" ANSWERED "),"
                       " sum(" ANSWERED " OR source IN ('clarify', 'fallback', 'handoff'))"
                       " FROM messages WHERE sender = 'customer' AND created_at >= ?1 GROUP BY 1",
    [R_DAY_EVENTS] = "SELECT (at - ?1) / 3600, kind, count(*) FROM events WHERE at >= ?1"
                     " AND kind IN ('created', 'handoff', 'claim', 'resolve') GROUP BY 1, 2",
    [R_DAY_WAITS] =
        "SELECT count(w), coalesce(avg(w), 0), coalesce(max(w), 0) FROM (SELECT e.at - (SELECT max(h.at)"
        " FROM events h WHERE h.conv = e.conv AND h.kind IN ('handoff', 'transfer', 'release')"
        " AND h.at <= e.at) AS w FROM events e WHERE e.kind = 'claim' AND e.at >= ?1)",
    [R_DAY_RATINGS] = "SELECT rating, count(*) FROM feedback WHERE at >= ?1 GROUP BY rating",
    [R_RESPONSES] =
        "SELECT queue, channel, count(*), avg(seconds), max(seconds) FROM responses WHERE at >= ?1"
        " GROUP BY queue, channel ORDER BY queue, channel",
    /* per intent and variant: answers; contained ones (in the conversation's next two customer
     * messages no handoff and no repeat of the intent); ratings of the conversations it answered in */
    [R_VARIANTS] =
        "SELECT a.intent, a.variant, count(*), sum(NOT EXISTS (SELECT 1 FROM messages m WHERE m.conv = a.conv"
        " AND m.sender = 'customer' AND m.seq > a.seq AND m.seq <= a.seq + 4"
        " AND (m.source = 'handoff' OR m.intent = a.intent))),"
        " (SELECT count(*) FROM feedback f WHERE f.conv IN (SELECT b.conv FROM answers b WHERE b.intent = "
        "a.intent"
        " AND b.variant = a.variant)),"
        " (SELECT coalesce(avg(f.rating), 0) FROM feedback f WHERE f.conv IN (SELECT b.conv FROM answers b"
        " WHERE b.intent = a.intent AND b.variant = a.variant))"
        " FROM answers a WHERE a.at >= ?1 GROUP BY a.intent, a.variant ORDER BY a.intent, a.variant",
    [R_KPI] =
        "WITH c AS (SELECT id, channel FROM conversations WHERE created_at >= ?1)"
        " SELECT ch.channel, (SELECT count(*) FROM c WHERE c.channel = ch.channel),"
        " (SELECT count(*) FROM messages m JOIN conversations v ON v.id = m.conv WHERE v.channel = ch.channel"
        " AND m.sender = 'customer' AND m.created_at >= ?1 AND (" ANSWERED
        " OR m.source IN ('clarify', 'fallback', 'handoff'))),"
        " (SELECT count(*) FROM messages m JOIN conversations v ON v.id = m.conv WHERE v.channel = ch.channel"
        " AND m.sender = 'customer' AND m.created_at >= ?1 AND " ANSWERED "),"
        " (SELECT count(*) FROM c WHERE c.channel = ch.channel"
        " AND NOT EXISTS (SELECT 1 FROM events e WHERE e.conv = c.id AND e.kind = 'reopen')"
        " AND (SELECT count(*) FROM events e WHERE e.conv = c.id AND e.kind = 'handoff') <= 1"
        " AND (NOT EXISTS (SELECT 1 FROM events e WHERE e.conv = c.id AND e.kind = 'handoff')"
        " OR EXISTS (SELECT 1 FROM events e WHERE e.conv = c.id AND e.kind = 'resolve'))),"
        " (SELECT count(*) FROM responses r WHERE r.channel = ch.channel AND r.at >= ?1),"
        " (SELECT coalesce(avg(r.seconds), 0) FROM responses r WHERE r.channel = ch.channel AND r.at >= ?1),"
        " (SELECT count(h) FROM (SELECT e.at - (SELECT k.at FROM events k"
        " WHERE k.conv = e.conv AND k.kind = 'claim' AND k.id < e.id ORDER BY k.id DESC LIMIT 1) AS h FROM "
        "events e"
        " JOIN conversations v ON v.id = e.conv WHERE v.channel = ch.channel AND e.kind = 'resolve'"
        " AND e.at >= ?1) WHERE h IS NOT NULL),"
        " (SELECT coalesce(avg(h), 0) FROM (SELECT e.at - (SELECT k.at FROM events k"
        " WHERE k.conv = e.conv AND k.kind = 'claim' AND k.id < e.id ORDER BY k.id DESC LIMIT 1) AS h FROM "
        "events e"
        " JOIN conversations v ON v.id = e.conv WHERE v.channel = ch.channel AND e.kind = 'resolve'"
        " AND e.at >= ?1) WHERE h IS NOT NULL),"
        " (SELECT count(*) FROM feedback f JOIN conversations v ON v.id = f.conv WHERE v.channel = ch.channel"
        " AND f.at >= ?1),"
        " (SELECT coalesce(avg(f.rating), 0) FROM feedback f JOIN conversations v ON v.id = f.conv"
        " WHERE v.channel = ch.channel AND f.at >= ?1)"
        " FROM (SELECT DISTINCT channel FROM c) ch ORDER BY ch.channel",
    [R_OUTBOX_DUE] = "SELECT " OUTBOX_COLS " FROM outbox o WHERE target = ?1 AND state = 0 AND next_ms <= ?2"
                     " AND id = (SELECT min(id) FROM outbox p WHERE p.target = o.target AND p.conv = o.conv"
                     " AND p.state = 0) ORDER BY id LIMIT ?3",
    [R_AGENT] = "SELECT " AGENT_COLS " FROM agents WHERE name = ?1",
    [R_AGENT_HASH] = "SELECT " AGENT_COLS " FROM agents WHERE token_hash = ?1",
    [R_AGENTS] = "SELECT " AGENT_COLS " FROM agents ORDER BY name",
    [R_OUTBOX_LIST] = "SELECT " OUTBOX_COLS " FROM outbox WHERE state = ?1 ORDER BY id DESC LIMIT ?2",
    [R_OUTBOX_LIST_OPEN] =
        "SELECT " OUTBOX_COLS " FROM outbox WHERE state IN (0, 2) ORDER BY id DESC LIMIT ?2",
    [R_REPORT0 + STORE_R_SOURCES] = "SELECT source, count(*), 0 FROM messages WHERE sender = 'customer'"
                                    " GROUP BY source ORDER BY 2 DESC, 1",
    [R_REPORT0 + STORE_R_HANDOFFS] = "SELECT reason, count(*), 0 FROM events WHERE kind = 'handoff'"
                                     " GROUP BY reason ORDER BY 2 DESC, 1",
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
                                       " AND (source = 'fallback' OR (source = 'handoff' AND intent IS "
                                       "NULL)) GROUP BY text ORDER BY 2 DESC, 1",
    [R_REPORT0 + STORE_R_TOTALS] =
        "SELECT 'conversations', count(*), 0 FROM conversations"
        " UNION ALL SELECT 'customer_messages', count(*), 0 FROM messages WHERE sender = 'customer'"
        " UNION ALL SELECT 'handoffs', count(*), 0 FROM events WHERE kind = 'handoff'"
        " UNION ALL SELECT 'feedback', count(*), coalesce(avg(rating), 0) FROM feedback",
};

/* One connection and its prepared statements. */

struct conn {
    sqlite3 *db;
    sqlite3_stmt *st[N_STMT];
    int busy;
};

struct store_db {
    char *path;
    struct conn writer;
    struct conn *readers;
    int n_readers;
    pthread_mutex_t rlock; /* the reader pool */
    pthread_cond_t rfree;
    /* the checkpointer: copies the WAL into the database beside the writer */
    struct conn ckpt;
    pthread_mutex_t clock;
    pthread_cond_t cwork;
    int ckpt_wanted, ckpt_stop, ckpt_started;
    long long checkpoints; /* under clock */
    int wal_woke;          /* the writer's: log length when it last woke the checkpointer */
    pthread_t ckpt_thread;
};

/* WAL frames after which a commit wakes the checkpointer (SQLite's own
 * automatic checkpoint, which runs inside the committing thread, is off). */
#define CKPT_FRAMES     1000
#define CKPT_FRAMES_MAX 4000

/* Returns the statement k of c, preparing it on first use; NULL on failure. */
static sqlite3_stmt *stmt(struct conn *c, int k)
{
    if (!c->st[k] &&
        sqlite3_prepare_v3(c->db, sql[k], -1, SQLITE_PREPARE_PERSISTENT, &c->st[k], NULL) != SQLITE_OK)
        return NULL;
    return c->st[k];
}

/* The code for the last failure on db: a full disk is KEFU_ENOSPC (the
 * api answers 503), anything else KEFU_EIO. */
static int db_fail(sqlite3 *db)
{
    return (sqlite3_errcode(db) & 0xff) == SQLITE_FULL ? KEFU_ENOSPC : KEFU_EIO;
}

static int exec(sqlite3 *db, const char *s)
{
    return sqlite3_exec(db, s, NULL, NULL, NULL) == SQLITE_OK ? 0 : KEFU_EIO;
}

/* Runs a statement without rows (BEGIN, COMMIT, ...) and resets it. */
static int run(struct conn *c, int k)
{
    sqlite3_stmt *s = stmt(c, k);
    if (!s)
        return KEFU_EIO;
    int rc = sqlite3_step(s);
    int fail = rc == SQLITE_DONE ? 0 : db_fail(c->db);
    sqlite3_reset(s);
    return fail;
}

static void conn_close(struct conn *c)
{
    for (int k = 0; k < N_STMT; k++)
        sqlite3_finalize(c->st[k]);
    sqlite3_close(c->db);
    memset(c, 0, sizeof *c);
}

/* Opens a connection with the settings every connection shares. */
static int conn_open(const char *path, struct conn *c)
{
    memset(c, 0, sizeof *c);
    int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX;
    if (sqlite3_open_v2(path, &c->db, flags, NULL) != SQLITE_OK) {
        conn_close(c);
        return KEFU_EIO;
    }
    sqlite3_busy_timeout(c->db, 5000);
    if (exec(c->db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA foreign_keys=OFF;"
                    " PRAGMA mmap_size=268435456") < 0) {
        conn_close(c);
        return KEFU_EIO;
    }
    return 0;
}

static int user_version(sqlite3 *db)
{
    sqlite3_stmt *s;
    int v = -1;
    if (sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &s, NULL) != SQLITE_OK)
        return -1;
    if (sqlite3_step(s) == SQLITE_ROW)
        v = sqlite3_column_int(s, 0);
    sqlite3_finalize(s);
    return v;
}

/* schema_lock: each step takes the file's write lock itself (BEGIN IMMEDIATE). */
static int sq_schema_lock(struct store_db *db)
{
    return 0;
}

static void sq_schema_unlock(struct store_db *db) {}

static int sq_schema_version(struct store_db *db, int *version)
{
    *version = user_version(db->writer.db);
    return *version < 0 ? KEFU_EIO : 0;
}

/* Applies one migration step and sets user_version in one transaction; a
 * process that migrated the file meanwhile is seen by the version check. */
static int sq_schema_step(struct store_db *db, int to, const char *step)
{
    sqlite3 *w = db->writer.db;
    char set[48];
    snprintf(set, sizeof set, "PRAGMA user_version=%d", to);
    if (exec(w, "BEGIN IMMEDIATE") < 0)
        return KEFU_EIO;
    int v = user_version(w);
    if (v >= to) /* another process got there first */
        return exec(w, "COMMIT");
    if (v != to - 1 || exec(w, step) < 0 || exec(w, set) < 0 || exec(w, "COMMIT") < 0) {
        exec(w, "ROLLBACK");
        return KEFU_EIO;
    }
    return 0;
}

static struct conn *reader_get(struct store_db *db);
static void reader_put(struct store_db *db, struct conn *c);

static int sq_version(struct store_db *db)
{
    struct conn *c = reader_get(db);
    int v = user_version(c->db);
    reader_put(db, c);
    return v;
}

/* ---- the writer ---- */

static void bind_text(sqlite3_stmt *s, int i, const char *v)
{
    if (v)
        sqlite3_bind_text(s, i, v, -1, SQLITE_STATIC);
    else
        sqlite3_bind_null(s, i);
}

/* Steps a bound write statement; maps a uniqueness violation to KEFU_ECONFLICT. */
static int step_write(sqlite3_stmt *s)
{
    int rc = sqlite3_step(s);
    int ext = sqlite3_extended_errcode(sqlite3_db_handle(s));
    sqlite3_reset(s);
    sqlite3_clear_bindings(s);
    if (rc == SQLITE_DONE)
        return 0;
    if (ext == SQLITE_CONSTRAINT_UNIQUE || ext == SQLITE_CONSTRAINT_PRIMARYKEY)
        return KEFU_ECONFLICT;
    return (ext & 0xff) == SQLITE_FULL ? KEFU_ENOSPC : KEFU_EIO;
}

/* Runs the erase statements for one customer and counts what each removed. */
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
        sqlite3_stmt *s = stmt(w, steps[k]);
        if (!s)
            return KEFU_EIO;
        bind_text(s, 1, customer);
        int rc = step_write(s);
        if (rc < 0)
            return rc;
        *count[k] = sqlite3_changes64(w->db);
    }
    return 0;
}

static int apply_customer(struct conn *w, const struct store_customer *c)
{
    sqlite3_stmt *s = stmt(w, W_CUSTOMER);
    if (!s)
        return KEFU_EIO;
    bind_text(s, 1, c->id);
    bind_text(s, 2, c->name);
    bind_text(s, 3, c->tier);
    sqlite3_bind_int64(s, 4, c->first_seen);
    sqlite3_bind_int64(s, 5, c->last_seen);
    return step_write(s);
}

static int apply_conv(struct conn *w, const struct store_conv *c, const char *packet)
{
    sqlite3_stmt *s = stmt(w, W_CONV);
    if (!s)
        return KEFU_EIO;
    const char *text[] = {c->id, c->token, c->customer, c->channel, c->locale};
    for (int i = 0; i < 5; i++)
        bind_text(s, i + 1, text[i]);
    sqlite3_bind_int(s, 6, c->state);
    bind_text(s, 7, c->queue);
    sqlite3_bind_int(s, 8, c->priority);
    sqlite3_bind_int(s, 9, c->anger);
    bind_text(s, 10, c->agent);
    sqlite3_bind_int(s, 11, c->misses);
    bind_text(s, 12, c->pending);
    bind_text(s, 13, c->reason);
    sqlite3_bind_int64(s, 14, c->created_at);
    sqlite3_bind_int64(s, 15, c->updated_at);
    sqlite3_bind_int64(s, 16, c->queued_at);
    sqlite3_bind_int64(s, 17, c->last_seq);
    bind_text(s, 18, c->memory); /* NULL keeps the stored memory */
    bind_text(s, 19, packet);
    return step_write(s);
}

static int apply_message(struct conn *w, const char *conv, const struct store_msg *m)
{
    sqlite3_stmt *s = stmt(w, W_MESSAGE);
    if (!s)
        return KEFU_EIO;
    bind_text(s, 1, conv);
    sqlite3_bind_int64(s, 2, m->seq);
    bind_text(s, 3, m->from);
    bind_text(s, 4, m->text ? m->text : "");
    bind_text(s, 5, m->source);
    bind_text(s, 6, m->intent);
    sqlite3_bind_double(s, 7, m->confidence);
    bind_text(s, 8, m->client_id);
    bind_text(s, 9, m->result);
    sqlite3_bind_int64(s, 10, m->at);
    return step_write(s);
}

/* One row as it stands elsewhere (kefu store copy). */
static int apply_outbox_row(struct conn *w, const struct store_outbox *o)
{
    sqlite3_stmt *s = stmt(w, W_OUTBOX_ROW);
    if (!s)
        return KEFU_EIO;
    const char *text[] = {o->event, o->target, o->conv, o->type, o->body};
    for (int i = 0; i < 5; i++)
        bind_text(s, i + 1, text[i]);
    sqlite3_bind_int64(s, 6, o->at);
    sqlite3_bind_int(s, 7, o->state);
    sqlite3_bind_int(s, 8, o->attempts);
    sqlite3_bind_int64(s, 9, o->next_ms);
    bind_text(s, 10, o->error ? o->error : "");
    sqlite3_bind_int64(s, 11, o->done_at);
    return step_write(s);
}

/* One outbox row per target of the event (n 1: one row as it is). */
static int apply_outbox(struct conn *w, const struct store_op *op)
{
    if (op->n == 1)
        return apply_outbox_row(w, op->rec);
    sqlite3_stmt *s = stmt(w, W_OUTBOX);
    if (!s)
        return KEFU_EIO;
    int rc = 0;
    for (const char *const *t = op->rec; rc == 0 && t && *t; t++) {
        bind_text(s, 1, op->c);
        bind_text(s, 2, *t);
        bind_text(s, 3, op->conv);
        bind_text(s, 4, op->a);
        bind_text(s, 5, op->b);
        sqlite3_bind_int64(s, 6, op->at);
        rc = step_write(s);
    }
    return rc;
}

static int apply_outbox_mark(struct conn *w, const struct store_outbox *o)
{
    sqlite3_stmt *s = stmt(w, W_OUTBOX_MARK);
    if (!s)
        return KEFU_EIO;
    sqlite3_bind_int64(s, 1, o->id);
    sqlite3_bind_int(s, 2, o->state);
    sqlite3_bind_int(s, 3, o->attempts);
    sqlite3_bind_int64(s, 4, o->next_ms);
    bind_text(s, 5, o->error ? o->error : "");
    sqlite3_bind_int64(s, 6, o->done_at);
    return step_write(s);
}

/* Dead rows back to pending (one, or all for id 0), counted into *count. */
static int apply_outbox_replay(struct conn *w, long long id, long long *count)
{
    sqlite3_stmt *s = stmt(w, id ? W_OUTBOX_REPLAY : W_OUTBOX_REPLAY_ALL);
    if (!s)
        return KEFU_EIO;
    if (id)
        sqlite3_bind_int64(s, 1, id);
    int rc = step_write(s);
    if (rc == 0 && count)
        *count = sqlite3_changes64(w->db);
    return rc;
}

/* Adds (update 0) or updates (1) an agent account; an update of no row is KEFU_ENOENT. */
static int apply_agent(struct conn *w, const struct store_agent *a, int update)
{
    sqlite3_stmt *s = stmt(w, update ? W_AGENT_UPDATE : W_AGENT_ADD);
    if (!s)
        return KEFU_EIO;
    bind_text(s, 1, a->name);
    bind_text(s, 2, a->token_hash);
    bind_text(s, 3, a->skills);
    sqlite3_bind_int(s, 4, a->capacity);
    sqlite3_bind_int(s, 5, a->disabled);
    sqlite3_bind_int64(s, 6, a->created_at);
    sqlite3_bind_int64(s, 7, a->updated_at);
    int rc = step_write(s);
    if (rc == 0 && update && sqlite3_changes64(w->db) == 0)
        rc = KEFU_ENOENT;
    return rc;
}

static int apply_op(struct conn *w, const struct store_op *op)
{
    sqlite3_stmt *s;
    switch (op->kind) {
    case OP_CUSTOMER: return apply_customer(w, op->rec);
    case OP_CONV: return apply_conv(w, op->rec, op->a);
    case OP_MESSAGE: return apply_message(w, op->conv, op->rec);
    case OP_EVENT:
        if (!(s = stmt(w, W_EVENT)))
            return KEFU_EIO;
        bind_text(s, 1, op->conv);
        sqlite3_bind_int64(s, 2, op->at);
        bind_text(s, 3, op->a);
        bind_text(s, 4, op->b);
        bind_text(s, 5, op->c);
        bind_text(s, 6, (const char *)op->rec);
        return step_write(s);
    case OP_FEEDBACK:
        if (!(s = stmt(w, W_FEEDBACK)))
            return KEFU_EIO;
        bind_text(s, 1, op->conv);
        sqlite3_bind_int64(s, 2, op->at);
        sqlite3_bind_int(s, 3, op->n);
        bind_text(s, 4, op->a);
        return step_write(s);
    case OP_RESPONSE:
        if (!(s = stmt(w, W_RESPONSE)))
            return KEFU_EIO;
        bind_text(s, 1, op->conv);
        sqlite3_bind_int64(s, 2, op->at);
        bind_text(s, 3, op->a);
        bind_text(s, 4, op->b);
        bind_text(s, 5, op->c);
        sqlite3_bind_int(s, 6, op->n);
        return step_write(s);
    case OP_ANSWER:
        if (!(s = stmt(w, W_ANSWER)))
            return KEFU_EIO;
        bind_text(s, 1, op->conv);
        sqlite3_bind_int64(s, 2, op->n);
        sqlite3_bind_int64(s, 3, op->at);
        bind_text(s, 4, op->a);
        bind_text(s, 5, op->b);
        return step_write(s);
    case OP_ERASE: return apply_erase(w, op->conv, op->out);
    case OP_OUTBOX: return apply_outbox(w, op);
    case OP_AGENT: return apply_agent(w, op->rec, op->n);
    case OP_OUTBOX_MARK: return apply_outbox_mark(w, op->rec);
    case OP_OUTBOX_REPLAY: return apply_outbox_replay(w, op->at, op->out);
    case OP_OUTBOX_PRUNE:
        if (!(s = stmt(w, W_OUTBOX_PRUNE)))
            return KEFU_EIO;
        sqlite3_bind_int64(s, 1, op->at);
        return step_write(s);
    default: return KEFU_EINVAL;
    }
}

/* Applies one batch inside a savepoint: all of it or none. */
static int apply_batch(struct conn *w, struct store_batch *b)
{
    if (run(w, W_SAVEPOINT) < 0)
        return KEFU_EIO;
    int rc = 0;
    for (size_t i = 0; i < b->n && rc == 0; i++)
        rc = apply_op(w, &b->op[i]);
    if (rc < 0 && run(w, W_ROLLBACK_TO) < 0)
        rc = KEFU_EIO;
    if (run(w, W_RELEASE) < 0)
        rc = KEFU_EIO;
    return rc;
}

/* Writes a list of batches in one transaction and sets each one's rc.
 * A failure SQLite answers by rolling the whole transaction back (a full
 * disk, an I/O error) fails every batch of the group: without that check
 * the next SAVEPOINT would open a transaction of its own and its RELEASE
 * would commit it behind the group's back. */
static void sq_commit(struct store_db *db, struct store_batch *list)
{
    int rc = run(&db->writer, W_BEGIN);
    for (struct store_batch *b = list; b && rc == 0; b = b->next) {
        b->rc = apply_batch(&db->writer, b);
        if (sqlite3_get_autocommit(db->writer.db))
            rc = b->rc < 0 ? b->rc : KEFU_EIO; /* the transaction is gone */
    }
    if (rc == 0 && (rc = run(&db->writer, W_COMMIT)) < 0)
        run(&db->writer, W_ROLLBACK);
    if (rc < 0)
        for (struct store_batch *b = list; b; b = b->next)
            b->rc = rc;
}

/* PRAGMA wal_checkpoint(TRUNCATE) until no reader holds the log; each of
 * the three tries waits up to the busy timeout. Returns 0, KEFU_EBUSY,
 * KEFU_ENOSPC or KEFU_EIO. */
static int checkpoint_truncate(struct conn *w)
{
    for (int tries = 0; tries < 3; tries++) {
        sqlite3_stmt *s = stmt(w, W_CHECKPOINT);
        if (!s)
            return KEFU_EIO;
        int busy = 1, rc = sqlite3_step(s);
        if (rc == SQLITE_ROW)
            busy = sqlite3_column_int(s, 0);
        int fail = rc == SQLITE_ROW ? 0 : db_fail(w->db);
        sqlite3_reset(s);
        if (fail && (sqlite3_errcode(w->db) & 0xff) != SQLITE_BUSY)
            return fail;
        if (!fail && !busy)
            return 0;
    }
    return KEFU_EBUSY;
}

/* Checkpoints after a committed group that holds a checkpointing batch. */
static void sq_after_commit(struct store_db *db, struct store_batch *list)
{
    for (struct store_batch *b = list; b; b = b->next)
        if (b->checkpoint && b->rc == 0) {
            int rc = checkpoint_truncate(&db->writer);
            for (struct store_batch *c = list; c; c = c->next)
                if (c->checkpoint && c->rc == 0)
                    c->rc = rc;
            return;
        }
}

/* ---- opening and closing ---- */

static void sq_close(struct store_db *db)
{
    if (!db)
        return;
    if (db->ckpt_started) {
        pthread_mutex_lock(&db->clock);
        db->ckpt_stop = 1;
        pthread_cond_signal(&db->cwork);
        pthread_mutex_unlock(&db->clock);
        pthread_join(db->ckpt_thread, NULL);
    }
    conn_close(&db->ckpt);
    pthread_mutex_destroy(&db->clock);
    pthread_cond_destroy(&db->cwork);
    for (int i = 0; i < db->n_readers; i++)
        conn_close(&db->readers[i]);
    free(db->readers);
    conn_close(&db->writer);
    pthread_mutex_destroy(&db->rlock);
    pthread_cond_destroy(&db->rfree);
    free(db->path);
    free(db);
}

/* sqlite3_wal_hook of the writer: wakes the checkpointer once the log is long. */
static int wal_grown(void *ctx, sqlite3 *db, const char *name, int frames)
{
    struct store_db *st = ctx;
    /* The log restarts from its start only at a write that finds it wholly
     * copied, which the checkpointer, one commit behind, never leaves it:
     * past CKPT_FRAMES_MAX the writer copies the few frames left itself. */
    if (frames < st->wal_woke)
        st->wal_woke = 0; /* the log restarted */
    if (frames >= CKPT_FRAMES_MAX)
        sqlite3_wal_checkpoint_v2(db, NULL, SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
    else if (frames - st->wal_woke >= CKPT_FRAMES) { /* a run per CKPT_FRAMES new frames */
        st->wal_woke = frames;
        pthread_mutex_lock(&st->clock);
        st->ckpt_wanted = 1;
        pthread_cond_signal(&st->cwork);
        pthread_mutex_unlock(&st->clock);
    }
    return SQLITE_OK;
}

/* The checkpointer thread: PASSIVE checkpoints (they never wait for the
 * writer or the readers), so acknowledged writes never wait for the copy
 * into the database file and its fsync. */
static void *ckpt_main(void *arg)
{
    struct store_db *st = arg;
    pthread_mutex_lock(&st->clock);
    for (;;) {
        while (!st->ckpt_wanted && !st->ckpt_stop)
            pthread_cond_wait(&st->cwork, &st->clock);
        if (st->ckpt_stop)
            break;
        st->ckpt_wanted = 0;
        pthread_mutex_unlock(&st->clock);
        /* a failure (full disk, I/O) leaves the frames in the log for the next try */
        sqlite3_wal_checkpoint_v2(st->ckpt.db, NULL, SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
        pthread_mutex_lock(&st->clock);
        st->checkpoints++;
    }
    pthread_mutex_unlock(&st->clock);
    return NULL;
}

/* Opens the writer, the reader connections and the checkpointer's. */
static int open_conns(struct store_db *db, int readers)
{
    int rc = conn_open(db->path, &db->writer);
    if (rc == 0) /* deleted and overwritten content is zeroed, not left in free space */
        rc = exec(db->writer.db, "PRAGMA secure_delete=ON");
    if (rc < 0)
        return rc;
    if (readers > 0 && !(db->readers = kefu_calloc((size_t)readers, sizeof *db->readers)))
        return KEFU_ENOMEM;
    for (; db->n_readers < readers; db->n_readers++) {
        if ((rc = conn_open(db->path, &db->readers[db->n_readers])) < 0)
            return rc;
        exec(db->readers[db->n_readers].db, "PRAGMA query_only=1");
    }
    if ((rc = conn_open(db->path, &db->ckpt)) < 0)
        return rc;
    sqlite3_wal_hook(db->writer.db, wal_grown, db); /* replaces the automatic checkpoint */
    return 0;
}

static int sq_open(const char *where, int readers, struct store_db **out)
{
    *out = NULL;
    struct store_db *db = kefu_calloc(1, sizeof *db);
    if (!db)
        return KEFU_ENOMEM;
    pthread_mutex_init(&db->rlock, NULL);
    pthread_cond_init(&db->rfree, NULL);
    pthread_mutex_init(&db->clock, NULL);
    pthread_cond_init(&db->cwork, NULL);
    int rc = (db->path = kefu_strndup(where, strlen(where))) ? open_conns(db, readers) : KEFU_ENOMEM;
    if (rc == 0 && pthread_create(&db->ckpt_thread, NULL, ckpt_main, db) != 0)
        rc = KEFU_ENOMEM;
    db->ckpt_started = rc == 0;
    if (rc < 0) {
        sq_close(db);
        return rc;
    }
    *out = db;
    return 0;
}

static long long sq_maintenance(struct store_db *db)
{
    pthread_mutex_lock(&db->clock);
    long long n = db->checkpoints;
    pthread_mutex_unlock(&db->clock);
    return n;
}

/* ---- reading ---- */

static struct conn *reader_get(struct store_db *st)
{
    pthread_mutex_lock(&st->rlock);
    for (;;) {
        for (int i = 0; i < st->n_readers; i++) {
            if (!st->readers[i].busy) {
                st->readers[i].busy = 1;
                pthread_mutex_unlock(&st->rlock);
                return &st->readers[i];
            }
        }
        pthread_cond_wait(&st->rfree, &st->rlock);
    }
}

static void reader_put(struct store_db *st, struct conn *c)
{
    pthread_mutex_lock(&st->rlock);
    c->busy = 0;
    pthread_cond_signal(&st->rfree);
    pthread_mutex_unlock(&st->rlock);
}

/* Copies column i as text into dst[cap] ("" for NULL). */
static void col_copy(sqlite3_stmt *s, int i, char *dst, size_t cap)
{
    const unsigned char *t = sqlite3_column_text(s, i);
    snprintf(dst, cap, "%s", t ? (const char *)t : "");
}

static const char *col_str(sqlite3_stmt *s, int i)
{
    return (const char *)sqlite3_column_text(s, i);
}

/* Fills *c from a row of CONV_COLS; memory is a new copy. */
static int read_conv(sqlite3_stmt *s, struct store_conv *c)
{
    memset(c, 0, sizeof *c);
    col_copy(s, 0, c->id, sizeof c->id);
    col_copy(s, 1, c->token, sizeof c->token);
    col_copy(s, 2, c->customer, sizeof c->customer);
    col_copy(s, 3, c->channel, sizeof c->channel);
    col_copy(s, 4, c->locale, sizeof c->locale);
    c->state = sqlite3_column_int(s, 5);
    col_copy(s, 6, c->queue, sizeof c->queue);
    c->priority = sqlite3_column_int(s, 7);
    c->anger = sqlite3_column_int(s, 8);
    col_copy(s, 9, c->agent, sizeof c->agent);
    c->misses = sqlite3_column_int(s, 10);
    col_copy(s, 11, c->pending, sizeof c->pending);
    col_copy(s, 12, c->reason, sizeof c->reason);
    c->created_at = sqlite3_column_int64(s, 13);
    c->updated_at = sqlite3_column_int64(s, 14);
    c->queued_at = sqlite3_column_int64(s, 15);
    c->last_seq = (long)sqlite3_column_int64(s, 16);
    const char *m = col_str(s, 17);
    c->memory = kefu_strndup(m ? m : "{}", m ? strlen(m) : 2);
    return c->memory ? 0 : KEFU_ENOMEM;
}

/* Steps s (bound on reader c) for one row; ENOENT when there is none. */
static int one_row(sqlite3_stmt *s)
{
    int rc = sqlite3_step(s);
    return rc == SQLITE_ROW ? 0 : rc == SQLITE_DONE ? KEFU_ENOENT : KEFU_EIO;
}

static int sq_get_conv(struct store_db *st, const char *id, struct store_conv *out)
{
    memset(out, 0, sizeof *out);
    struct conn *c = reader_get(st);
    sqlite3_stmt *s = stmt(c, R_CONV);
    int rc = KEFU_EIO;
    if (s) {
        bind_text(s, 1, id);
        if ((rc = one_row(s)) == 0)
            rc = read_conv(s, out);
        sqlite3_reset(s);
    }
    reader_put(st, c);
    return rc;
}

static int sq_get_packet(struct store_db *st, const char *id, char **out)
{
    *out = NULL;
    struct conn *c = reader_get(st);
    sqlite3_stmt *s = stmt(c, R_PACKET);
    int rc = KEFU_EIO;
    if (s) {
        bind_text(s, 1, id);
        if ((rc = one_row(s)) == 0 && col_str(s, 0)) {
            const char *p = col_str(s, 0);
            if (!(*out = kefu_strndup(p, strlen(p))))
                rc = KEFU_ENOMEM;
        }
        sqlite3_reset(s);
    }
    reader_put(st, c);
    return rc;
}

static int sq_get_customer(struct store_db *st, const char *id, struct store_customer *out)
{
    memset(out, 0, sizeof *out);
    struct conn *c = reader_get(st);
    sqlite3_stmt *s = stmt(c, R_CUSTOMER);
    int rc = KEFU_EIO;
    if (s) {
        bind_text(s, 1, id);
        if ((rc = one_row(s)) == 0) {
            col_copy(s, 0, out->id, sizeof out->id);
            col_copy(s, 1, out->name, sizeof out->name);
            col_copy(s, 2, out->tier, sizeof out->tier);
            out->first_seen = sqlite3_column_int64(s, 3);
            out->last_seen = sqlite3_column_int64(s, 4);
        }
        sqlite3_reset(s);
    }
    reader_put(st, c);
    return rc;
}

static int sq_messages(struct store_db *st, const char *conv, long after, int limit, store_msg_fn fn,
                       void *ctx)
{
    struct conn *c = reader_get(st);
    sqlite3_stmt *s = stmt(c, R_MESSAGES);
    int rc = KEFU_EIO;
    if (s) {
        bind_text(s, 1, conv);
        sqlite3_bind_int64(s, 2, after);
        sqlite3_bind_int(s, 3, limit > 0 ? limit : -1);
        while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
            struct store_msg m = {(long)sqlite3_column_int64(s, 0),
                                  col_str(s, 1),
                                  col_str(s, 2),
                                  col_str(s, 3),
                                  col_str(s, 4),
                                  sqlite3_column_double(s, 5),
                                  col_str(s, 6),
                                  col_str(s, 7),
                                  sqlite3_column_int64(s, 8)};
            if (fn(ctx, &m))
                break;
        }
        rc = rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : KEFU_EIO;
        sqlite3_reset(s);
    }
    reader_put(st, c);
    return rc;
}

static int sq_find_client_id(struct store_db *st, const char *conv, const char *client_id, long *seq,
                             char **result)
{
    *result = NULL;
    struct conn *c = reader_get(st);
    sqlite3_stmt *s = stmt(c, R_CLIENT);
    int rc = KEFU_EIO;
    if (s) {
        bind_text(s, 1, conv);
        bind_text(s, 2, client_id);
        if ((rc = one_row(s)) == 0) {
            *seq = (long)sqlite3_column_int64(s, 0);
            const char *r = col_str(s, 1);
            if (r && !(*result = kefu_strndup(r, strlen(r))))
                rc = KEFU_ENOMEM;
        }
        sqlite3_reset(s);
    }
    reader_put(st, c);
    return rc;
}

/* Calls fn for each conversation row of the prepared statement s. */
static int each_conv(sqlite3_stmt *s, store_conv_fn fn, void *ctx)
{
    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        struct store_conv cv;
        if (read_conv(s, &cv) < 0)
            return KEFU_ENOMEM;
        int stop = fn(ctx, &cv);
        store_conv_release(&cv);
        if (stop)
            return 0;
    }
    return rc == SQLITE_DONE ? 0 : KEFU_EIO;
}

static int sq_customer_convs(struct store_db *st, const char *customer, int limit, store_conv_fn fn,
                             void *ctx)
{
    struct conn *c = reader_get(st);
    sqlite3_stmt *s = stmt(c, R_CUSTOMER_CONVS);
    int rc = KEFU_EIO;
    if (s) {
        bind_text(s, 1, customer);
        sqlite3_bind_int(s, 2, limit > 0 ? limit : -1);
        rc = each_conv(s, fn, ctx);
        sqlite3_reset(s);
    }
    reader_put(st, c);
    return rc;
}

static int sq_open_convs(struct store_db *st, store_conv_fn fn, void *ctx)
{
    struct conn *c = reader_get(st);
    sqlite3_stmt *s = stmt(c, R_OPEN_CONVS);
    int rc = s ? each_conv(s, fn, ctx) : KEFU_EIO;
    if (s)
        sqlite3_reset(s);
    reader_put(st, c);
    return rc;
}

static int sq_report(struct store_db *st, int which, store_row_fn fn, void *ctx)
{
    if (which < 0 || which > STORE_R_TOTALS)
        return KEFU_EINVAL;
    struct conn *c = reader_get(st);
    sqlite3_stmt *s = stmt(c, R_REPORT0 + which);
    int rc = KEFU_EIO;
    if (s) {
        while ((rc = sqlite3_step(s)) == SQLITE_ROW)
            if (fn(ctx, col_str(s, 0), sqlite3_column_int64(s, 1), sqlite3_column_double(s, 2)))
                break;
        rc = rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : KEFU_EIO;
        sqlite3_reset(s);
    }
    reader_put(st, c);
    return rc;
}

/* Adds one row of R_DAY_MESSAGES or R_DAY_EVENTS to its hour bucket. */
static void day_hour(long long *v, long long hour, long long n)
{
    if (hour >= 0 && hour < STORE_DAY_HOURS)
        v[hour] += n;
}

static int day_messages(sqlite3_stmt *s, struct store_day *out)
{
    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        long long hour = sqlite3_column_int64(s, 0), n = sqlite3_column_int64(s, 1);
        long long answered = sqlite3_column_int64(s, 2);
        out->customer_messages += n;
        out->answered += answered;
        out->bot_handled += sqlite3_column_int64(s, 3);
        day_hour(out->hour_messages, hour, n);
        day_hour(out->hour_answered, hour, answered);
    }
    return rc == SQLITE_DONE ? 0 : KEFU_EIO;
}

static int day_events(sqlite3_stmt *s, struct store_day *out)
{
    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        long long hour = sqlite3_column_int64(s, 0), n = sqlite3_column_int64(s, 2);
        const char *kind = col_str(s, 1);
        if (!kind)
            continue;
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
    return rc == SQLITE_DONE ? 0 : KEFU_EIO;
}

static int day_rest(sqlite3_stmt *waits, sqlite3_stmt *ratings, struct store_day *out)
{
    if (sqlite3_step(waits) != SQLITE_ROW)
        return KEFU_EIO;
    out->waits = sqlite3_column_int64(waits, 0);
    out->wait_avg = sqlite3_column_double(waits, 1);
    out->wait_max = sqlite3_column_int64(waits, 2);
    int rc;
    while ((rc = sqlite3_step(ratings)) == SQLITE_ROW) {
        long long r = sqlite3_column_int64(ratings, 0);
        if (r >= 1 && r <= 5)
            out->ratings[r] += sqlite3_column_int64(ratings, 1);
    }
    return rc == SQLITE_DONE ? 0 : KEFU_EIO;
}

static int sq_day(struct store_db *st, long long since, struct store_day *out)
{
    memset(out, 0, sizeof *out);
    struct conn *c = reader_get(st);
    sqlite3_stmt *s[4] = {stmt(c, R_DAY_MESSAGES), stmt(c, R_DAY_EVENTS), stmt(c, R_DAY_WAITS),
                          stmt(c, R_DAY_RATINGS)};
    int rc = KEFU_EIO;
    if (s[0] && s[1] && s[2] && s[3]) {
        for (int k = 0; k < 4; k++)
            sqlite3_bind_int64(s[k], 1, since);
        rc = day_messages(s[0], out);
        if (rc == 0)
            rc = day_events(s[1], out);
        if (rc == 0)
            rc = day_rest(s[2], s[3], out);
    }
    for (int k = 0; k < 4; k++)
        if (s[k])
            sqlite3_reset(s[k]);
    reader_put(st, c);
    return rc;
}

static int sq_counts(struct store_db *st, struct store_counts *out)
{
    struct conn *c = reader_get(st);
    sqlite3_stmt *q;
    int rc = KEFU_EIO;
    if (sqlite3_prepare_v2(
            c->db,
            "SELECT (SELECT count(*) FROM customers), (SELECT count(*) FROM conversations),"
            " (SELECT count(*) FROM messages), (SELECT count(*) FROM events), (SELECT "
            "count(*) FROM feedback), (SELECT count(*) FROM outbox), (SELECT count(*) FROM agents),"
            " (SELECT count(*) FROM responses), (SELECT count(*) FROM answers)",
            -1, &q, NULL) == SQLITE_OK) {
        if (sqlite3_step(q) == SQLITE_ROW) {
            long long *v[] = {&out->customers, &out->conversations, &out->messages,
                              &out->events,    &out->feedback,      &out->outbox,
                              &out->agents,    &out->responses,     &out->answers};
            for (int k = 0; k < 9; k++)
                *v[k] = sqlite3_column_int64(q, k);
            rc = 0;
        }
        sqlite3_finalize(q);
    }
    reader_put(st, c);
    return rc;
}

/* One of the reports read "from since on": the row's reader and the caller's callback. */
struct since_call {
    int (*row)(sqlite3_stmt *s, const struct since_call *c); /* non-zero stops */
    store_response_fn responses;
    store_variant_fn variants;
    store_kpi_fn kpi;
    void *ctx;
};

/* Runs statement k with ?1 = since on a reader and hands each row to c->row. */
static int each_since(struct store_db *st, int k, long long since, const struct since_call *c)
{
    struct conn *r = reader_get(st);
    sqlite3_stmt *s = stmt(r, k);
    int rc = KEFU_EIO;
    if (s) {
        sqlite3_bind_int64(s, 1, since);
        while ((rc = sqlite3_step(s)) == SQLITE_ROW && !c->row(s, c))
            ;
        rc = rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : KEFU_EIO;
        sqlite3_reset(s);
    }
    reader_put(st, r);
    return rc;
}

static int response_row(sqlite3_stmt *s, const struct since_call *c)
{
    struct store_response_group g = {.n = sqlite3_column_int64(s, 2),
                                     .avg = sqlite3_column_double(s, 3),
                                     .max = sqlite3_column_int64(s, 4)};
    col_copy(s, 0, g.queue, sizeof g.queue);
    col_copy(s, 1, g.channel, sizeof g.channel);
    return c->responses(c->ctx, &g);
}

static int sq_first_responses(struct store_db *st, long long since, store_response_fn fn, void *ctx)
{
    return each_since(st, R_RESPONSES, since,
                      &(struct since_call){.row = response_row, .responses = fn, .ctx = ctx});
}

static int variant_row(sqlite3_stmt *s, const struct since_call *c)
{
    struct store_variant_row v = {.answers = sqlite3_column_int64(s, 2),
                                  .contained = sqlite3_column_int64(s, 3),
                                  .ratings = sqlite3_column_int64(s, 4),
                                  .rating_avg = sqlite3_column_double(s, 5)};
    col_copy(s, 0, v.intent, sizeof v.intent);
    col_copy(s, 1, v.variant, sizeof v.variant);
    return c->variants(c->ctx, &v);
}

static int sq_variants(struct store_db *st, long long since, store_variant_fn fn, void *ctx)
{
    return each_since(st, R_VARIANTS, since,
                      &(struct since_call){.row = variant_row, .variants = fn, .ctx = ctx});
}

static int kpi_row(sqlite3_stmt *s, const struct since_call *c)
{
    struct store_kpi_row k = {.conversations = sqlite3_column_int64(s, 1),
                              .handled = sqlite3_column_int64(s, 2),
                              .answered = sqlite3_column_int64(s, 3),
                              .first_contact = sqlite3_column_int64(s, 4),
                              .responses = sqlite3_column_int64(s, 5),
                              .response_avg = sqlite3_column_double(s, 6),
                              .handled_by_agents = sqlite3_column_int64(s, 7),
                              .handling_avg = sqlite3_column_double(s, 8),
                              .ratings = sqlite3_column_int64(s, 9),
                              .rating_avg = sqlite3_column_double(s, 10)};
    col_copy(s, 0, k.channel, sizeof k.channel);
    return c->kpi(c->ctx, &k);
}

static int sq_kpi(struct store_db *st, long long since, store_kpi_fn fn, void *ctx)
{
    return each_since(st, R_KPI, since, &(struct since_call){.row = kpi_row, .kpi = fn, .ctx = ctx});
}

/* Calls fn for each outbox row of the prepared statement s. */
static int each_outbox(sqlite3_stmt *s, store_outbox_fn fn, void *ctx)
{
    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        const char *text[6];
        for (int i = 0; i < 6; i++)
            text[i] = col_str(s, i == 5 ? 10 : i + 1);
        struct store_outbox o = {.id = sqlite3_column_int64(s, 0),
                                 .event = text[0] ? text[0] : "",
                                 .target = text[1] ? text[1] : "",
                                 .conv = text[2] ? text[2] : "",
                                 .type = text[3] ? text[3] : "",
                                 .body = text[4] ? text[4] : "",
                                 .at = sqlite3_column_int64(s, 6),
                                 .state = sqlite3_column_int(s, 7),
                                 .attempts = sqlite3_column_int(s, 8),
                                 .next_ms = sqlite3_column_int64(s, 9),
                                 .error = text[5] ? text[5] : "",
                                 .done_at = sqlite3_column_int64(s, 11)};
        if (fn(ctx, &o))
            return 0;
    }
    return rc == SQLITE_DONE ? 0 : KEFU_EIO;
}

static int sq_outbox_due(struct store_db *st, const char *target, long long now_ms, int limit,
                         store_outbox_fn fn, void *ctx)
{
    struct conn *c = reader_get(st);
    sqlite3_stmt *s = stmt(c, R_OUTBOX_DUE);
    int rc = KEFU_EIO;
    if (s) {
        bind_text(s, 1, target);
        sqlite3_bind_int64(s, 2, now_ms);
        sqlite3_bind_int(s, 3, limit > 0 ? limit : -1);
        rc = each_outbox(s, fn, ctx);
        sqlite3_reset(s);
        sqlite3_clear_bindings(s);
    }
    reader_put(st, c);
    return rc;
}

static int sq_outbox_list(struct store_db *st, int state, int limit, store_outbox_fn fn, void *ctx)
{
    struct conn *c = reader_get(st);
    sqlite3_stmt *s = stmt(c, state < 0 ? R_OUTBOX_LIST_OPEN : R_OUTBOX_LIST);
    int rc = KEFU_EIO;
    if (s) {
        sqlite3_bind_int(s, 1, state);
        sqlite3_bind_int(s, 2, limit > 0 ? limit : -1);
        rc = each_outbox(s, fn, ctx);
        sqlite3_reset(s);
    }
    reader_put(st, c);
    return rc;
}

static void read_agent(sqlite3_stmt *s, struct store_agent *a)
{
    memset(a, 0, sizeof *a);
    col_copy(s, 0, a->name, sizeof a->name);
    col_copy(s, 1, a->token_hash, sizeof a->token_hash);
    col_copy(s, 2, a->skills, sizeof a->skills);
    a->capacity = sqlite3_column_int(s, 3);
    a->disabled = sqlite3_column_int(s, 4);
    a->created_at = sqlite3_column_int64(s, 5);
    a->updated_at = sqlite3_column_int64(s, 6);
}

static int sq_get_agent(struct store_db *st, const char *key, int by_hash, struct store_agent *out)
{
    struct conn *c = reader_get(st);
    sqlite3_stmt *s = stmt(c, by_hash ? R_AGENT_HASH : R_AGENT);
    int rc = KEFU_EIO;
    if (s) {
        bind_text(s, 1, key);
        if ((rc = one_row(s)) == 0)
            read_agent(s, out);
        sqlite3_reset(s);
        sqlite3_clear_bindings(s);
    }
    reader_put(st, c);
    return rc;
}

static int sq_agents(struct store_db *st, store_agent_fn fn, void *ctx)
{
    struct conn *c = reader_get(st);
    sqlite3_stmt *s = stmt(c, R_AGENTS);
    int rc = KEFU_EIO;
    if (s) {
        while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
            struct store_agent a;
            read_agent(s, &a);
            if (fn(ctx, &a))
                break;
        }
        rc = rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : KEFU_EIO;
        sqlite3_reset(s);
    }
    reader_put(st, c);
    return rc;
}

const struct store_backend store_sqlite = {
    .name = "sqlite",
    .migrations = migrations,
    .cacheable = 1,
    .open = sq_open,
    .close = sq_close,
    .schema_lock = sq_schema_lock,
    .schema_unlock = sq_schema_unlock,
    .schema_version = sq_schema_version,
    .schema_step = sq_schema_step,
    .commit = sq_commit,
    .after_commit = sq_after_commit,
    .maintenance = sq_maintenance,
    .version = sq_version,
    .get_conv = sq_get_conv,
    .get_packet = sq_get_packet,
    .get_customer = sq_get_customer,
    .messages = sq_messages,
    .find_client_id = sq_find_client_id,
    .customer_convs = sq_customer_convs,
    .open_convs = sq_open_convs,
    .report = sq_report,
    .day = sq_day,
    .counts = sq_counts,
    .outbox_due = sq_outbox_due,
    .outbox_list = sq_outbox_list,
    .get_agent = sq_get_agent,
    .agents = sq_agents,
    .first_responses = sq_first_responses,
    .variants = sq_variants,
    .kpi = sq_kpi,
};
