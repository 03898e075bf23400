/* serve.h — `kefu serve`: run the HTTP server until SIGTERM or SIGINT. */
#ifndef KEFU_SERVE_H
#define KEFU_SERVE_H

/* Parses the serve flags in argv[1..argc) (argv[0] is "serve") and the
 * KEFU_* environment, serves, and returns the process exit status. */
int serve_main(int argc, char **argv);

#endif
