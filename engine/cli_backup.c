/* cli_backup.c — `kefu store backup [--data DIR] FILE`: an online copy of
 * DIR/kefu.db to FILE through store_backup(), safe while kefu serve runs
 * and writes (docs/operations.md, "Backups"); `kefu store copy --from DIR
 * --to URI`: the same store moved into PostgreSQL through store_copy()
 * (docs/scaling.md). */
#include "cli.h"
#include "cli_int.h"
#include "kefu.h"
#include "store_backup.h"
#include "store_copy.h"

#include <stdio.h>
#include <string.h>

static const char *usage_store =
    "usage: kefu store backup [--data DIR] FILE\n"
    "       kefu store copy --from DIR --to postgresql://USER@HOST:PORT/DB\n\n"
    "Copies the conversations database DIR/kefu.db (default data/) to FILE, a new file,\n"
    "as one consistent snapshot, while kefu serve keeps running and writing. The copy is\n"
    "checked (integrity_check), self-contained (no -wal file) and flushed before it is\n"
    "given its name; an existing FILE is never overwritten. To restore: stop the server,\n"
    "move DIR/kefu.db, kefu.db-wal and kefu.db-shm away, copy FILE to DIR/kefu.db, start.\n\n"
    "copy moves the conversations of DIR/kefu.db into a PostgreSQL database (then start the\n"
    "nodes with --store URI): every customer, conversation, message, event and rating, read\n"
    "as one snapshot and checked by counting both sides. The target must hold no rows.";

/* kefu store copy --from DIR --to URI */
static int store_copy_cmd(int argc, char **argv)
{
    const char *dir = NULL, *to = NULL;
    for (int i = 2; i < argc; i++) {
        if (strcmp(argv[i], "--from") == 0 && i + 1 < argc)
            dir = argv[++i];
        else if (strcmp(argv[i], "--to") == 0 && i + 1 < argc)
            to = argv[++i];
        else
            return cli_fail("unknown option or extra argument '%s' for 'store copy' (see kefu store --help)",
                            argv[i]);
    }
    if (!dir || !to)
        return cli_fail("store copy needs --from DIR and --to URI (see kefu store --help)");
    if (!store_is_uri(to))
        return cli_fail("store copy --to takes a postgresql:// URI, not '%s'", to);
    char src[4096], err[512];
    snprintf(src, sizeof src, "%s/kefu.db", dir);
    struct store_counts n;
    if (store_copy(src, to, &n, err, sizeof err) < 0) {
        fprintf(stderr, "kefu: copy failed: %s\n", err);
        return 1;
    }
    printf(
        "copy: %s -> the PostgreSQL store: %lld customers, %lld conversations, %lld messages, %lld events, "
        "%lld ratings, %lld webhook deliveries, %lld agents, %lld first responses, %lld answers, counts "
        "checked\n",
        src, n.customers, n.conversations, n.messages, n.events, n.feedback, n.outbox, n.agents, n.responses,
        n.answers);
    return 0;
}

int cli_store(int argc, char **argv)
{
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        puts(usage_store);
        return argc < 2 ? 2 : 0;
    }
    if (strcmp(argv[1], "copy") == 0)
        return store_copy_cmd(argc, argv);
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
