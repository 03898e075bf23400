/* cli_backup.c — `kefu store backup [--data DIR] FILE`: an online copy of
 * DIR/kefu.db to FILE through store_backup(), safe while kefu serve runs
 * and writes (docs/operations.md, "Backups"). */
#include "cli.h"
#include "cli_int.h"
#include "kefu.h"
#include "store_backup.h"

#include <stdio.h>
#include <string.h>

static const char *usage_store =
    "usage: kefu store backup [--data DIR] FILE\n\n"
    "Copies the conversations database DIR/kefu.db (default data/) to FILE, a new file,\n"
    "as one consistent snapshot, while kefu serve keeps running and writing. The copy is\n"
    "checked (integrity_check), self-contained (no -wal file) and flushed before it is\n"
    "given its name; an existing FILE is never overwritten. To restore: stop the server,\n"
    "move DIR/kefu.db, kefu.db-wal and kefu.db-shm away, copy FILE to DIR/kefu.db, start.";

int cli_store(int argc, char **argv)
{
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        puts(usage_store);
        return argc < 2 ? 2 : 0;
    }
    if (strcmp(argv[1], "backup") != 0)
        return cli_fail("unknown store command '%s' (see kefu store --help)", argv[1]);
    const char *dir = "data", *file = NULL;
    for (int i = 2; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            puts(usage_store);
            return 0;
        } else if (strcmp(argv[i], "--data") == 0 && i + 1 < argc) {
            dir = argv[++i];
        } else if (argv[i][0] != '-' && !file) {
            file = argv[i];
        } else {
            return cli_fail(
                "unknown option or extra argument '%s' for 'store backup' (see kefu store --help)", argv[i]);
        }
    }
    if (!file || !*file)
        return cli_fail("store backup needs the file to write (see kefu store --help)");
    char src[4096], err[512];
    snprintf(src, sizeof src, "%s/kefu.db", dir);
    struct store_backup_info info;
    int rc = store_backup(src, file, &info, err, sizeof err);
    if (rc < 0) {
        fprintf(stderr, "kefu: backup failed: %s\n", err);
        return 1;
    }
    printf("backup: %s -> %s: %lld conversations, %lld messages, %lld customers, %lld pages (%lld bytes), "
           "integrity ok\n",
           src, file, info.conversations, info.messages, info.customers, info.pages, info.bytes);
    return 0;
}
