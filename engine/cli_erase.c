/* cli_erase.c — `kefu erase --data DIR CUSTOMER`: deletes one customer's
 * profile and conversations from DIR/kefu.db through the store (secure
 * delete, WAL checkpointed and truncated), for a stopped server or a
 * copy of its data. A running server erases through POST /v1/admin/erase,
 * which also clears its queues (docs/operations.md). */
#include "cli.h"
#include "cli_int.h"
#include "kefu.h"
#include "store.h"
#include "text.h"

#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

static const char *usage_erase =
    "usage: kefu erase [--data DIR] CUSTOMER\n\n"
    "Erases the customer CUSTOMER (the id their conversations were created with): their\n"
    "profile, every conversation with its messages, events, feedback and handoff packet.\n"
    "Deleted pages are zeroed and the write-ahead log is checkpointed and truncated, so\n"
    "no byte of their text is left in DIR/kefu.db or its -wal file. Exits 1 when there\n"
    "is no such customer. Stop the server first, or use POST /v1/admin/erase while it\n"
    "runs (it also clears the in-memory queues).";

int cli_erase(int argc, char **argv)
{
    const char *dir = "data", *customer = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            puts(usage_erase);
            return 0;
        } else if (strcmp(argv[i], "--data") == 0 && i + 1 < argc) {
            dir = argv[++i];
        } else if (argv[i][0] != '-' && !customer) {
            customer = argv[i];
        } else {
            return cli_fail("unknown option or extra argument '%s' for 'erase' (see kefu erase --help)",
                            argv[i]);
        }
    }
    if (!customer || !*customer)
        return cli_fail("erase needs the customer id (see kefu erase --help)");
    if (strlen(customer) > 127 || !text_utf8_valid(customer, strlen(customer)))
        return cli_fail("the customer id must be valid utf-8 of at most 127 bytes");
    struct store *st;
    int rc = cli_open_store(dir, &st);
    if (rc != 0)
        return rc;
    struct store_batch b;
    struct store_erased e;
    store_batch_init(&b);
    store_erase_customer(&b, customer, &e);
    rc = store_write(st, &b);
    store_close(st);
    if (rc < 0) {
        fprintf(stderr, "kefu: cannot erase the customer in '%s/kefu.db': %s\n", dir, kefu_strerror(rc));
        return 1;
    }
    if (e.customers == 0 && e.conversations == 0) {
        fprintf(stderr, "kefu: no customer '%s' in '%s/kefu.db'\n", customer, dir);
        return 1;
    }
    printf("erased customer '%s': %lld conversations, %lld messages, %lld events, %lld ratings\n", customer,
           e.conversations, e.messages, e.events, e.feedback);
    return 0;
}
