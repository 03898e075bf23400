/* store.h — durable conversation state: customers, conversations,
 * messages, events and feedback, in one SQLite file (WAL, synchronous=FULL;
 * the default) or in a PostgreSQL database several nodes share.
 * One writer thread owns every write and commits batches in groups; a call
 * to store_write() returns only after the transaction holding its batch
 * has committed. Reads run on a small pool of reader connections. The
 * interface speaks in records, not SQL, so another backend can implement
 * it. The store knows nothing about dialog: it stores what it is given. */
#ifndef KEFU_STORE_H
#define KEFU_STORE_H

#include <stddef.h>

struct store; /* opaque */

#define STORE_SCHEMA_VERSION 7 /* PRAGMA user_version of a current file; kefu_schema's row on PostgreSQL */

enum store_state { STORE_BOT = 0, STORE_QUEUED = 1, STORE_AGENT = 2, STORE_RESOLVED = 3 };
/* Returns "bot", "queued", "agent" or "resolved". */
const char *store_state_name(int state);

struct store_customer {
    char id[128], name[128], tier[32];
    long long first_seen, last_seen; /* unix seconds */
};

/* A conversation as a row; strings are NUL-terminated, "" when unset. */
struct store_conv {
    char id[40], token[40], customer[128], channel[32], locale[16];
    int state;         /* enum store_state */
    char queue[32];    /* while queued or with an agent */
    int priority;      /* rules priority 0..3 */
    int anger;         /* 1 if the customer was angry */
    char agent[64];    /* while with an agent (and who resolved it) */
    int misses;        /* consecutive bot misses */
    char pending[160]; /* "intent slot" the bot asked for, "" if none */
    char reason[32];   /* why it was handed off */
    long long created_at, updated_at, queued_at;
    long last_seq; /* highest message seq */
    char *memory;  /* dialog's JSON (slots, intents); owned, see store_conv_release() */
    /* What the row held when store_get_conv() read it. On a shared store
     * (store_shared()) a store_put_conv() of a row read this way applies only
     * while the row still holds it; otherwise its batch fails with
     * KEFU_ECONFLICT (another node changed the conversation in between). */
    struct {
        int read, state;
        long last_seq;
        char agent[64];
    } was;
};
/* Frees what a filled struct store_conv owns; the struct can be refilled. */
void store_conv_release(struct store_conv *c);

struct store_msg {
    long seq;
    const char *from; /* "customer", "bot", "agent" or "system" */
    const char *text;
    const char *source; /* rule, example, kb, clarify, fallback, handoff, agent, ... or NULL */
    const char *intent; /* NULL if none */
    double confidence;
    const char *client_id; /* NULL if none; unique per conversation */
    const char *result;    /* JSON answer returned for this message (idempotent retries), or NULL */
    long long at;
};

/* ---- opening ---- */

struct store_opts {
    int group_commit; /* 1 (default): batches share commits; -1: one commit per batch */
    int group_max;    /* most batches in one transaction (default 256) */
    int readers;      /* reader connections (default 4) */
    int cache_slots;  /* conversations (and customers) kept in memory (default STORE_CACHE_DEFAULT; -1: none)
                       */
};
#define STORE_CACHE_DEFAULT 8192

/* Returns 1 if where is a postgresql:// (or postgres://) URI, 0 for a path. */
int store_is_uri(const char *where);
/* Opens (creating and migrating) the database at where: an SQLite file
 * path, or a libpq postgresql:// URI (the database must exist; the row
 * cache is off there, as other nodes write the same rows). opts may be
 * NULL. *out is new, close with store_close(). Returns 0, KEFU_EIO,
 * KEFU_ERANGE (a database newer than this program), KEFU_EUNAVAIL (the
 * server cannot be reached) or KEFU_ENOMEM. */
int store_open(const char *where, const struct store_opts *opts, struct store **out);
/* Returns 1 if other processes (kefu nodes) write the same database
 * (PostgreSQL): what a caller keeps in memory must be refreshed from it. */
int store_shared(struct store *st);
/* Called when another process committed a change to conversation conv:
 * its last_seq is now seq and its state state (enum store_state); conv
 * NULL: anything may have changed (the listener was away). Runs on the
 * store's listener thread; conv is borrowed for the call. */
typedef void (*store_change_fn)(void *ctx, const char *conv, long seq, int state);
/* On a shared store, starts hearing of the conversations other nodes
 * change (within about a second; PostgreSQL's LISTEN/NOTIFY) and calls
 * fn for each; on a store of its own nothing happens. Call it once, before
 * other threads use st. Returns 0 or KEFU_ENOMEM. */
int store_listen(struct store *st, store_change_fn fn, void *ctx);
/* Commits what is queued, stops the writer and closes. NULL is fine. */
void store_close(struct store *st);
/* Returns the file's schema version (STORE_SCHEMA_VERSION after open). */
int store_version(struct store *st);
/* Creates the database at where (a path or a URI) with the schema of an
 * older version (1..STORE_SCHEMA_VERSION), to test migrations. Returns 0 or KEFU_E…. */
int store_create_version(const char *where, int version);

/* ---- writing: fill a batch, then store_write() it ---- */

#define STORE_BATCH_MAX 8

struct store_op {
    int kind;
    const void *rec; /* borrowed until store_write() returns */
    void *out;       /* what the op reports back (an erase's counts), or NULL */
    const char *conv, *a, *b, *c;
    long long at;
    int n;
};

struct store_batch;
/* Called by the writer thread once the transaction holding b has
 * committed (rc 0) or failed (rc < 0: nothing of b was written). b and
 * what it borrows belong to the caller again from this call on (it may
 * free them). Runs outside every store lock but holds up the next commit:
 * it must be short, must not block, and must not call store_write(). */
typedef void (*store_done_fn)(void *ctx, struct store_batch *b, int rc);

/* A set of writes applied atomically. The caller holds it; the writer fills rc. */
struct store_batch {
    struct store_op op[STORE_BATCH_MAX];
    size_t n;
    int rc;                   /* set by the writer */
    int checkpoint;           /* 1: after the commit, checkpoint and truncate the WAL */
    struct store_batch *next; /* the writer's queue */
    store_done_fn done;       /* set by store_submit() */
    void *done_ctx;
};
/* Prepares an empty batch. */
void store_batch_init(struct store_batch *b);
/* Adds or updates a customer (first_seen is kept on update). */
int store_put_customer(struct store_batch *b, const struct store_customer *c);
/* Adds or updates a conversation row (an update keeps its token, channel and
 * created_at; its customer may change); c->memory NULL keeps the stored memory
 * ("{}" for a new row); packet (JSON, may be NULL: keep) is the handoff packet. */
int store_put_conv(struct store_batch *b, const struct store_conv *c, const char *packet);
/* Appends message m to conv; a repeated (conv, client_id) fails the batch with KEFU_ECONFLICT. */
int store_add_message(struct store_batch *b, const char *conv, const struct store_msg *m);
/* Records a transition: kind (created, handoff, claim, ...), agent, queue, reason (each may be NULL). */
int store_add_event(struct store_batch *b, const char *conv, long long at, const char *kind,
                    const char *agent, const char *queue, const char *reason);
/* Records a rating 1..5 with an optional comment. */
int store_add_feedback(struct store_batch *b, const char *conv, long long at, int rating,
                       const char *comment);

/* Records an agent's first response in conv: seconds from the handoff to
 * the agent's first message, in queue and channel (strings borrowed). */
int store_add_response(struct store_batch *b, const char *conv, long long at, const char *queue,
                       const char *channel, const char *agent, int seconds);

/* Records that the customer message seq of conv was answered by intent with its A/B variant. */
int store_add_answer(struct store_batch *b, const char *conv, long seq, long long at, const char *intent,
                     const char *variant);

/* What an erase removed. */
struct store_erased {
    long long conversations, messages, events, feedback, customers;
};
/* Deletes customer's profile and every conversation of theirs with its
 * messages, events and feedback; *out (borrowed until store_write()
 * returns) gets the counts. The writer connection runs with secure_delete,
 * so freed content is zeroed, and the batch checkpoints the WAL with
 * TRUNCATE after its commit: when store_write() returns 0 no byte of the
 * customer's rows is left in the database file or its WAL. */
int store_erase_customer(struct store_batch *b, const char *customer, struct store_erased *out);

/* ---- the outbox: events for webhooks, written with the change they announce ---- */

enum store_outbox_state { STORE_OUT_PENDING = 0, STORE_OUT_DELIVERED = 1, STORE_OUT_DEAD = 2 };
/* Returns "pending", "delivered" or "dead". */
const char *store_outbox_state_name(int state);

/* One delivery of one event to one target; strings "" when unset. */
struct store_outbox {
    long long id;            /* the row, increasing in the order events were written */
    const char *event;       /* the event's id (X-Kefu-Event-Id), the same for every target */
    const char *target;      /* where it goes (the webhook's URL) */
    const char *conv, *type; /* type: handoff, claim, agent_message, resolve, feedback */
    const char *body;        /* the JSON body, fixed when written */
    long long at;            /* when the event happened, unix seconds */
    int state;               /* enum store_outbox_state */
    int attempts;            /* tries so far */
    long long next_ms;       /* the next try not before (unix milliseconds) */
    const char *error;       /* the last failure */
    long long done_at;       /* delivered or dead since (unix seconds), 0 while pending */
};
/* Called per row; the record is borrowed for the call. Return non-zero to stop. */
typedef int (*store_outbox_fn)(void *ctx, const struct store_outbox *o);

/* Adds event (id event_id, of type, body JSON) for conv, one pending row per
 * name in targets (NULL-terminated; each borrowed like the other strings). */
int store_add_outbox(struct store_batch *b, const char *conv, long long at, const char *type,
                     const char *event_id, const char *body, const char *const *targets);
/* Adds row o as it stands elsewhere (state, attempts, next_ms, error and
 * done_at kept; the row gets the next id of this store), o borrowed: kefu
 * store copy. */
int store_copy_outbox(struct store_batch *b, const struct store_outbox *o);
/* Updates row o->id's state, attempts, next_ms, error and done_at (o borrowed). */
int store_mark_outbox(struct store_batch *b, const struct store_outbox *o);
/* Makes dead rows pending again with no attempts: row id, or every dead row
 * when id is 0; *count (borrowed until store_write() returns) gets how many. */
int store_replay_outbox(struct store_batch *b, long long id, long long *count);
/* Deletes the rows delivered before (unix seconds). */
int store_prune_outbox(struct store_batch *b, long long before);

/* ---- agent accounts: only a hash of each token is stored ---- */

struct store_agent {
    char name[64];
    char token_hash[65]; /* hex SHA-256 of the token */
    char skills[256];    /* the queues served, "" = every queue */
    int capacity;        /* conversations at once, 0 = the default */
    int disabled;        /* 1: its token no longer authenticates */
    long long created_at, updated_at;
};
/* Adds agent a (borrowed until store_write() returns); a name or token hash
 * already there fails the batch with KEFU_ECONFLICT. */
int store_add_agent(struct store_batch *b, const struct store_agent *a);
/* Replaces the token hash, skills, capacity, disabled flag and updated_at of
 * the agent named a->name; an unknown name fails the batch with KEFU_ENOENT. */
int store_update_agent(struct store_batch *b, const struct store_agent *a);

/* Hands b to the writer thread and waits until its transaction committed.
 * Returns 0, KEFU_ECONFLICT (duplicate client_id: nothing of b was
 * written), KEFU_ENOSPC (the disk is full: nothing of b was written),
 * KEFU_EUNAVAIL (the database server is down: b is not acknowledged),
 * KEFU_EIO, KEFU_ERANGE (b is full) or, for a checkpointing batch whose
 * commit held but whose WAL stayed in use by readers, KEFU_EBUSY. */
int store_write(struct store *st, struct store_batch *b);
/* Hands b to the writer thread and returns at once: done(ctx, b, rc) runs
 * exactly once, on the writer thread, after the transaction holding b
 * committed or failed, with the same rc store_write() would return. b and
 * every record it borrows must stay alive until then. Batches that arrive
 * while a commit runs share the next transaction, so the groups grow with
 * the number of writes in flight, not with the number of waiting threads.
 * An empty or failed batch (full) completes before the call returns. */
void store_submit(struct store *st, struct store_batch *b, store_done_fn done, void *ctx);

/* ---- reading (any thread) ---- */

/* Loads conversation id into *out (release it). Returns 0, KEFU_ENOENT or KEFU_EIO. */
int store_get_conv(struct store *st, const char *id, struct store_conv *out);
/* Copies conversation id's token into token[cap] (what checking a customer's
 * token needs, without the memory). Returns 0, KEFU_ENOENT or KEFU_EIO. */
int store_get_token(struct store *st, const char *id, char *token, size_t cap);
/* Returns conv's handoff packet as a new string (free()) in *out, NULL if none. */
int store_get_packet(struct store *st, const char *id, char **out);
/* Loads customer id. Returns 0, KEFU_ENOENT or KEFU_EIO. */
int store_get_customer(struct store *st, const char *id, struct store_customer *out);

/* Called per row; the record is borrowed for the call. Return non-zero to stop. */
typedef int (*store_msg_fn)(void *ctx, const struct store_msg *m);
typedef int (*store_conv_fn)(void *ctx, const struct store_conv *c);

/* Calls fn for conv's messages with seq > after, in order, at most limit (<= 0: all). */
int store_messages(struct store *st, const char *conv, long after, int limit, store_msg_fn fn, void *ctx);
/* Finds conv's message with client_id; fills *out's seq and copies its
 * result into *result (new, free(); NULL if none). Returns 0 or KEFU_ENOENT. */
int store_find_client_id(struct store *st, const char *conv, const char *client_id, long *seq, char **result);
/* Calls fn for customer's conversations (every channel), newest first, at most limit. */
int store_customer_convs(struct store *st, const char *customer, int limit, store_conv_fn fn, void *ctx);
/* Calls fn for every conversation in state queued or agent (to rebuild the queue). */
int store_open_convs(struct store *st, store_conv_fn fn, void *ctx);

/* Calls fn for target's rows that may be sent now: for each conversation
 * only its oldest pending row, when its next_ms <= now_ms; oldest first, at
 * most limit. Sending in this order keeps each conversation's events in order.
 * On a shared store (PostgreSQL) the rows are taken: each goes to one
 * caller, and is due again only after a lease of 60 s unless marked first. */
int store_outbox_due(struct store *st, const char *target, long long now_ms, int limit, store_outbox_fn fn,
                     void *ctx);
/* Calls fn for the rows in state (-1: pending and dead), newest first, at most limit. */
int store_outbox_list(struct store *st, int state, int limit, store_outbox_fn fn, void *ctx);

/* Loads the agent named name (by_hash 0) or whose token hash is name
 * (by_hash 1) into *out. Returns 0, KEFU_ENOENT or KEFU_EIO. */
int store_get_agent(struct store *st, const char *name, int by_hash, struct store_agent *out);
/* Calls fn for every agent account, by name; the record is borrowed for the call. */
typedef int (*store_agent_fn)(void *ctx, const struct store_agent *a);
int store_agents(struct store *st, store_agent_fn fn, void *ctx);

/* One row of an aggregate: a key (may be NULL), a count and an average. */
typedef int (*store_row_fn)(void *ctx, const char *key, long long count, double avg);
enum store_report {
    STORE_R_SOURCES,        /* bot messages by source */
    STORE_R_HANDOFFS,       /* handoff events by reason */
    STORE_R_INTENT_ANSWERS, /* customer messages answered by the bot (rule/example/kb), by intent */
    STORE_R_INTENT_HANDOFF, /* customer messages that handed off, by intent */
    STORE_R_INTENT_RATING,  /* ratings of conversations the intent answered in: count, average */
    STORE_R_RATINGS,        /* feedback by rating */
    STORE_R_UNANSWERED,     /* customer messages nothing answered (fallback): key = text */
    STORE_R_TOTALS,         /* "conversations", "customer_messages", "handoffs", "feedback" */
};
/* Runs one aggregate and calls fn per row. Returns 0, KEFU_EINVAL or KEFU_EIO. */
int store_report(struct store *st, int which, store_row_fn fn, void *ctx);

/* The figures of one period (from since, unix seconds) for the agents' console:
 * totals, the wait from a handoff or transfer to the claim, ratings by value,
 * and per hour since since (bucket k covers since + 3600k, at most 24). */
#define STORE_DAY_HOURS 24
struct store_day {
    long long conversations, customer_messages, answered, bot_handled, handoffs, claims, resolves;
    long long waits, wait_max; /* claims with a known wait; the longest, seconds */
    double wait_avg;
    long long ratings[6]; /* [1..5] */
    long long hour_messages[STORE_DAY_HOURS], hour_answered[STORE_DAY_HOURS], hour_handoffs[STORE_DAY_HOURS];
};
/* Fills *out with the figures from since on. Returns 0 or KEFU_EIO. */
int store_day(struct store *st, long long since, struct store_day *out);

/* How many rows each table holds. */
struct store_counts {
    long long customers, conversations, messages, events, feedback, outbox, agents, responses, answers;
};
/* Counts every table's rows into *out. Returns 0 or KEFU_E…. */
int store_counts(struct store *st, struct store_counts *out);

/* Agents' first responses of one queue and channel: how many, average and longest seconds. */
struct store_response_group {
    char queue[32], channel[32];
    long long n, max;
    double avg;
};
typedef int (*store_response_fn)(void *ctx, const struct store_response_group *g);
/* Calls fn per queue and channel (in that order) for the first responses
 * from since on; g is borrowed for the call. Returns 0 or KEFU_EIO. */
int store_first_responses(struct store *st, long long since, store_response_fn fn, void *ctx);

/* The answers of one intent's A/B variant: how many, how many were contained (in the
 * conversation's next two customer messages no handoff and no repeat of the intent), and the
 * ratings of the conversations it answered in. */
struct store_variant_row {
    char intent[128], variant[32];
    long long answers, contained, ratings;
    double rating_avg;
};
typedef int (*store_variant_fn)(void *ctx, const struct store_variant_row *v);
/* Calls fn per intent and variant (in that order) for the answers from since on; v is borrowed
 * for the call. Returns 0 or KEFU_EIO. */
int store_variants(struct store *st, long long since, store_variant_fn fn, void *ctx);

/* The service KPIs of one channel for conversations and events from since on. */
struct store_kpi_row {
    char channel[32];
    long long conversations;     /* created since */
    long long handled, answered; /* customer messages the bot handled / answered (rule, example, kb) */
    long long first_contact; /* conversations never reopened, handed off at most once and, if so, resolved */
    long long responses;     /* agents' first responses, and their average seconds */
    double response_avg;
    long long handled_by_agents; /* resolves after a claim, and the average seconds from the claim */
    double handling_avg;
    long long ratings;
    double rating_avg;
};
typedef int (*store_kpi_fn)(void *ctx, const struct store_kpi_row *k);
/* Calls fn per channel (in name order) of the conversations created from since on. Returns 0 or KEFU_EIO. */
int store_kpi(struct store *st, long long since, store_kpi_fn fn, void *ctx);

/* Counters of the writer and of the row cache, for health and benchmarks. */
struct store_stats {
    long long commits, batches, failed;
    long long checkpoints;                       /* the checkpointer's runs */
    unsigned long long cache_hits, cache_misses; /* conversation and customer reads */
};
void store_stats(struct store *st, struct store_stats *out);

#endif
