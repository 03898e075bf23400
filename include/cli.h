/* cli.h — the kefu command line (check, ask, route, chat). */
#ifndef KEFU_CLI_H
#define KEFU_CLI_H

/* Runs the command named by argv[1]; returns the process exit status. */
int cli_main(int argc, char **argv);
/* Runs `kefu kb ...` (argv[0] is "kb"); returns the process exit status. */
int cli_kb(int argc, char **argv);
/* Runs `kefu test ...` (argv[0] is "test"); returns the process exit status. */
int cli_test(int argc, char **argv);
/* Runs `kefu chat ...` (argv[0] is "chat"); returns the process exit status. */
int cli_chat(int argc, char **argv);
/* Runs `kefu report ...` (argv[0] is "report"); returns the process exit status. */
int cli_report(int argc, char **argv);
/* `kefu erase [--data DIR] CUSTOMER`: erases one customer's data; returns the exit status. */
int cli_erase(int argc, char **argv);
/* Runs `kefu store backup ...` (argv[0] is "store"): an online copy of the store; returns the exit status. */
int cli_store(int argc, char **argv);
/* `kefu webhook list|replay`: the webhook outbox (cli_webhook.c). */
int cli_webhook(int argc, char **argv);
/* `kefu agent add|list|disable|enable|rotate`: agent accounts (cli_agent.c). */
int cli_agent(int argc, char **argv);

#endif
