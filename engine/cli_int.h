/* cli_int.h — what the command-line files (cli.c, cli_kb.c, cli_chat.c,
 * cli_report.c, cli_test.c, cli_erase.c) share. */
#ifndef KEFU_CLI_INT_H
#define KEFU_CLI_INT_H

#include "action.h"

#include <stddef.h>

/* Prints "kefu: MESSAGE" as one line on stderr; returns 2, the usage-error exit status. */
int cli_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

struct store;

/* The actions of --actions FILE (NULL: none) with each --stub NAME=JSON|fail of
 * stubs[0..n) applied; *out is new (actions_free()). Returns 0, or the exit
 * status after printing why not. */
int cli_actions_open(const char *file, char *const *stubs, size_t n, struct actions **out);

/* One call of intent it's action and what the intent does with the answer. */
struct cli_action {
    int ok;
    json_t *result; /* new, NULL unless ok */
    char outcome[160];
    double seconds;
    int stubbed; /* 1: a --stub (or a .test file) answered, not the endpoint */
    struct action_choice ch;
};
/* Calls it's action with slots (borrowed) as kefu ask's customer (conv's
 * attributes) would, waiting for the answer. Returns 0 or KEFU_ENOMEM. */
int cli_action_run(struct actions *a, const struct rules_intent *it, json_t *slots, const struct attrs *conv,
                   struct cli_action *out);

/* Opens DIR/kefu.db (or the store of KEFU_STORE, a postgresql:// URI, when
 * set) with one reader into *out (the caller closes it with store_close());
 * returns 0, or the exit status after printing why not. */
int cli_open_store(const char *dir, struct store **out);

#endif
