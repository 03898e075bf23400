/* store_backup.h — an online copy of the embedded store (SQLite's backup
 * API): consistent, taken beside a running server without stopping its
 * writes, checked and renamed into place only when whole. */
#ifndef KEFU_STORE_BACKUP_H
#define KEFU_STORE_BACKUP_H

#include <stddef.h>

/* What a backup holds. */
struct store_backup_info {
    long long pages, bytes;
    long long conversations, messages, customers;
};

/* Copies the store database at src (a kefu.db, possibly in use by a
 * server) to a new file dest, as one snapshot: written to dest.tmp, its
 * integrity checked, made self-contained (no -wal file), flushed and
 * renamed to dest. Refuses a dest that exists. Fills *info. On failure
 * writes one lowercase line to err[0..cap), removes the partial copy and
 * returns KEFU_ECONFLICT (dest exists), KEFU_ENOENT, KEFU_ENOSPC, KEFU_EIO or
 * KEFU_ENOMEM; else 0. */
int store_backup(const char *src, const char *dest, struct store_backup_info *info, char *err, size_t cap);

#endif
