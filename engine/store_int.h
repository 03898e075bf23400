/* store_int.h — what a store backend provides (internal to the store).
 * store.c holds what every backend shares: the batch builders, the writer
 * thread and its queue (group commit), the acknowledgements, the row cache
 * and the migration driver. It reaches a database only through one
 * struct store_backend, chosen once in store_open() from the place it is
 * given (a path, or a postgresql:// URI). store_sqlite.c is the embedded
 * backend. A backend never calls back into store.c. */
#ifndef KEFU_STORE_INT_H
#define KEFU_STORE_INT_H

#include "store.h"

#include <stddef.h>

/* The kinds of struct store_op (store.c fills them, a backend applies them). */
enum {
    OP_CUSTOMER = 1,
    OP_CONV,
    OP_MESSAGE,
    OP_EVENT,
    OP_FEEDBACK,
    OP_ERASE,
    OP_OUTBOX,        /* conv, at, a type, b body, c event id, rec the NULL-terminated targets;
                         n 1: rec one struct store_outbox, written as it is (kefu store copy) */
    OP_OUTBOX_MARK,   /* rec a struct store_outbox */
    OP_OUTBOX_REPLAY, /* at the row (0: every dead one), out a long long count */
    OP_OUTBOX_PRUNE,  /* at: delivered before */
    OP_AGENT,         /* rec a struct store_agent; n 0 adds, 1 updates */
    OP_RESPONSE,      /* conv, at, a queue, b channel, c agent, n seconds */
    OP_ANSWER,        /* conv, n the message seq, at, a intent, b variant */
};

struct store_db; /* a backend's connections, opaque to store.c */

struct store_backend {
    const char *name; /* "sqlite", "postgresql" */
    /* [v]: the SQL from schema version v to v + 1 in this backend's dialect;
     * STORE_SCHEMA_VERSION steps, the same tables and columns on every backend */
    const char *const *migrations;
    /* 1: this process's writer is the database's only writer, so the row
     * cache can be kept true by the writer alone */
    int cacheable;

    /* Opens the database at where with readers reader connections (0: only
     * what migrating needs). *out is new (close()). Returns 0 or KEFU_E…. */
    int (*open)(const char *where, int readers, struct store_db **out);
    void (*close)(struct store_db *db); /* NULL is fine */

    /* The migration driver (store.c) runs lock, version, step..., unlock
     * before the writer thread starts; step applies sql and records version
     * to, in one transaction. */
    int (*schema_lock)(struct store_db *db);
    void (*schema_unlock)(struct store_db *db);
    int (*schema_version)(struct store_db *db, int *version);
    int (*schema_step)(struct store_db *db, int to, const char *sql);

    /* Writer thread only: writes the batches of list (linked by next) in one
     * transaction, each all or nothing, and sets each one's rc (every rc
     * is the group's failure when the transaction itself failed). */
    void (*commit)(struct store_db *db, struct store_batch *list);
    /* Writer thread, after commit() (may be NULL): work some committed
     * batches ask for (a WAL checkpoint after an erase); may change their rc. */
    void (*after_commit)(struct store_db *db, struct store_batch *list);
    /* May be NULL (a backend whose only writer is this process): starts a
     * thread that calls fn for each conversation another process changed,
     * until close(). */
    int (*listen)(struct store_db *db, store_change_fn fn, void *ctx);
    /* Runs of background maintenance so far (checkpoints), for store_stats(). */
    long long (*maintenance)(struct store_db *db);

    /* Reading, from any thread: as the store.h functions of the same name. */
    int (*version)(struct store_db *db);
    int (*get_conv)(struct store_db *db, const char *id, struct store_conv *out);
    int (*get_packet)(struct store_db *db, const char *id, char **out);
    int (*get_customer)(struct store_db *db, const char *id, struct store_customer *out);
    int (*messages)(struct store_db *db, const char *conv, long after, int limit, store_msg_fn fn, void *ctx);
    int (*find_client_id)(struct store_db *db, const char *conv, const char *client_id, long *seq,
                          char **result);
    int (*customer_convs)(struct store_db *db, const char *customer, int limit, store_conv_fn fn, void *ctx);
    int (*open_convs)(struct store_db *db, store_conv_fn fn, void *ctx);
    int (*report)(struct store_db *db, int which, store_row_fn fn, void *ctx);
    int (*day)(struct store_db *db, long long since, struct store_day *out);
    int (*counts)(struct store_db *db, struct store_counts *out);
    int (*outbox_due)(struct store_db *db, const char *target, long long now_ms, int limit,
                      store_outbox_fn fn, void *ctx);
    int (*outbox_list)(struct store_db *db, int state, int limit, store_outbox_fn fn, void *ctx);
    int (*get_agent)(struct store_db *db, const char *key, int by_hash, struct store_agent *out);
    int (*agents)(struct store_db *db, store_agent_fn fn, void *ctx);
    int (*first_responses)(struct store_db *db, long long since, store_response_fn fn, void *ctx);
    int (*variants)(struct store_db *db, long long since, store_variant_fn fn, void *ctx);
    int (*kpi)(struct store_db *db, long long since, store_kpi_fn fn, void *ctx);
};

extern const struct store_backend store_sqlite;   /* store_sqlite.c */
extern const struct store_backend store_postgres; /* store_pg.c */

#endif
