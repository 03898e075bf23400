/* cli_int.h — what the command-line files (cli.c, cli_kb.c, cli_chat.c,
 * cli_report.c, cli_test.c, cli_erase.c) share. */
#ifndef KEFU_CLI_INT_H
#define KEFU_CLI_INT_H

/* Prints "kefu: MESSAGE" as one line on stderr; returns 2, the usage-error exit status. */
int cli_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

struct store;

/* Opens DIR/kefu.db (or the store of KEFU_STORE, a postgresql:// URI, when
 * set) with one reader into *out (the caller closes it with store_close());
 * returns 0, or the exit status after printing why not. */
int cli_open_store(const char *dir, struct store **out);

#endif
