/* cli.h — the kefu command line (check, ask, route, chat). */
#ifndef KEFU_CLI_H
#define KEFU_CLI_H

/* Runs the command named by argv[1]; returns the process exit status. */
int cli_main(int argc, char **argv);
/* Runs `kefu kb ...` (argv[0] is "kb"); returns the process exit status. */
int cli_kb(int argc, char **argv);

#endif
