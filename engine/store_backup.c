/* store_backup.c — kefu store backup: SQLite's online backup API copies
 * the store in one step, inside one read transaction of the source. In WAL
 * mode that read does not block the server's writer (nor does the writer
 * restart it, as it would a copy made in several steps through another
 * connection), so the copy is the store as of one commit, taken under
 * load. The copy goes to a temporary file beside dest, is checked with
 * integrity_check, switched to a rollback journal so that the file alone
 * is the whole database, flushed, and renamed into place. */
#include "store_backup.h"

#include "kefu.h"

#include <errno.h>
#include <fcntl.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

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

/* The error code for an SQLite result: a full disk is not an I/O fault. */
static int code_of(int src)
{
    return src == SQLITE_FULL ? KEFU_ENOSPC : src == SQLITE_NOMEM ? KEFU_ENOMEM : KEFU_EIO;
}

/* One integer from sql on db, -1 when it fails. */
static long long one_int(sqlite3 *db, const char *sql)
{
    sqlite3_stmt *st;
    long long v = -1;
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
        return -1;
    if (sqlite3_step(st) == SQLITE_ROW)
        v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return v;
}

/* 1 if db's integrity_check says ok. */
static int intact(sqlite3 *db)
{
    sqlite3_stmt *st;
    int ok = 0;
    if (sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &st, NULL) != SQLITE_OK)
        return 0;
    if (sqlite3_step(st) == SQLITE_ROW) {
        const char *r = (const char *)sqlite3_column_text(st, 0);
        ok = r && strcmp(r, "ok") == 0;
    }
    sqlite3_finalize(st);
    return ok;
}

/* fsync()s path (a file, or a directory after a rename in it). */
static int sync_path(const char *path, int dir)
{
    int fd = open(path, dir ? O_RDONLY | O_DIRECTORY : O_RDONLY);
    if (fd < 0)
        return -1;
    int rc = fsync(fd);
    close(fd);
    return rc;
}

/* Copies src into the open database dst in one step, retrying while the
 * source is locked (a checkpoint restarting the log). */
static int copy(sqlite3 *src, sqlite3 *dst, struct store_backup_info *info, char *err, size_t cap)
{
    sqlite3_backup *b = sqlite3_backup_init(dst, "main", src, "main");
    if (!b)
        return fail(err, cap, KEFU_EIO, "cannot start the backup: %s", sqlite3_errmsg(dst));
    int rc;
    for (int tries = 0; (rc = sqlite3_backup_step(b, -1)) == SQLITE_BUSY || rc == SQLITE_LOCKED; tries++) {
        if (tries == 200)
            break;
        sqlite3_sleep(25);
    }
    info->pages = sqlite3_backup_pagecount(b);
    sqlite3_backup_finish(b);
    if (rc != SQLITE_DONE)
        return fail(err, cap, code_of(rc), "the backup stopped: %s", sqlite3_errstr(rc));
    return 0;
}

int store_backup(const char *src_path, const char *dest, struct store_backup_info *info, char *err,
                 size_t cap)
{
    memset(info, 0, sizeof *info);
    if (cap)
        *err = 0;
    struct stat sb;
    if (stat(src_path, &sb) != 0)
        return fail(err, cap, KEFU_ENOENT, "no store at '%s'", src_path);
    if (lstat(dest, &sb) == 0)
        return fail(err, cap, KEFU_ECONFLICT, "'%s' exists; a backup never overwrites a file", dest);
    char tmp[4096];
    if ((size_t)snprintf(tmp, sizeof tmp, "%s.tmp", dest) >= sizeof tmp)
        return fail(err, cap, KEFU_EIO, "the path '%s' is too long", dest);
    unlink(tmp); /* a copy an earlier run left behind */
    sqlite3 *src = NULL, *dst = NULL;
    int rc = 0;
    if (sqlite3_open_v2(src_path, &src, SQLITE_OPEN_READWRITE, NULL) != SQLITE_OK) {
        rc = fail(err, cap, KEFU_EIO, "cannot open '%s': %s", src_path,
                  src ? sqlite3_errmsg(src) : "no memory");
        goto out;
    }
    sqlite3_busy_timeout(src, 5000);
    if (one_int(src, "SELECT count(*) FROM sqlite_master WHERE name = 'conversations'") != 1) {
        rc = fail(err, cap, KEFU_EIO, "'%s' is not a kefu store", src_path);
        goto out;
    }
    if (sqlite3_open_v2(tmp, &dst, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL) != SQLITE_OK) {
        rc = fail(err, cap, KEFU_EIO, "cannot create '%s': %s", tmp, dst ? sqlite3_errmsg(dst) : "no memory");
        goto out;
    }
    if ((rc = copy(src, dst, info, err, cap)) < 0)
        goto out;
    sqlite3_close(src);
    src = NULL;
    char *msg = NULL;
    int src_rc = sqlite3_exec(dst, "PRAGMA journal_mode = DELETE", NULL, NULL, &msg);
    if (src_rc != SQLITE_OK) {
        rc = fail(err, cap, code_of(src_rc), "cannot make the copy self-contained: %s", msg ? msg : "?");
        sqlite3_free(msg);
        goto out;
    }
    if (!intact(dst)) {
        rc = fail(err, cap, KEFU_EIO, "the copy fails its integrity check");
        goto out;
    }
    info->conversations = one_int(dst, "SELECT count(*) FROM conversations");
    info->messages = one_int(dst, "SELECT count(*) FROM messages");
    info->customers = one_int(dst, "SELECT count(*) FROM customers");
    sqlite3_close(dst);
    dst = NULL;
    if (sync_path(tmp, 0) != 0) {
        rc = fail(err, cap, errno == ENOSPC ? KEFU_ENOSPC : KEFU_EIO, "cannot flush '%s': %s", tmp,
                  strerror(errno));
        goto out;
    }
    if (stat(tmp, &sb) == 0)
        info->bytes = (long long)sb.st_size;
    if (link(tmp, dest) != 0) { /* unlike rename(), never replaces a dest made meanwhile */
        rc = fail(err, cap, errno == EEXIST ? KEFU_ECONFLICT : KEFU_EIO, "cannot create '%s': %s", dest,
                  strerror(errno));
        goto out;
    }
    unlink(tmp);
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", dest);
    char *slash = strrchr(dir, '/');
    if (slash)
        *(slash == dir ? slash + 1 : slash) = 0;
    sync_path(slash ? dir : ".", 1);
    return 0;
out:
    sqlite3_close(src);
    sqlite3_close(dst);
    unlink(tmp);
    return rc;
}
