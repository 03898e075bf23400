/* store_copy.h — moving an embedded store (an SQLite kefu.db) into another
 * store, a PostgreSQL database several nodes will share: every row of every
 * table, through the target's own writer (store.h batches, group commit),
 * verified by counting both sides. */
#ifndef KEFU_STORE_COPY_H
#define KEFU_STORE_COPY_H

#include "store.h"

#include <stddef.h>

/* Copies every customer, conversation, message, event and rating of the
 * SQLite store at src (migrated to the current schema first; read as one
 * snapshot) into the store at dest (a postgresql:// URI or a path),
 * which must hold no rows. *copied gets the source's counts, which the
 * target's must equal afterwards. On failure writes one lowercase line to
 * err[0..cap) and returns KEFU_ENOENT (no src), KEFU_ECONFLICT (dest is
 * not empty), KEFU_EUNAVAIL, KEFU_EIO (or a count differs) or KEFU_ENOMEM;
 * else 0. */
int store_copy(const char *src, const char *dest, struct store_counts *copied, char *err, size_t cap);

#endif
