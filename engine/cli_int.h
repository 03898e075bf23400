/* cli_int.h — what the command-line files (cli.c, cli_kb.c, cli_chat.c,
 * cli_report.c, cli_test.c) share. */
#ifndef KEFU_CLI_INT_H
#define KEFU_CLI_INT_H

/* Prints "kefu: MESSAGE" as one line on stderr; returns 2, the usage-error exit status. */
int cli_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
