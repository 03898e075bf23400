/* convtest.h — conversation tests for knowledge editors (kefu test).
 * A test file holds conversations: customer lines, agent actions and the
 * expectations after each reply (intent, source, reply text, state, queue,
 * slots, quick replies). Each conversation runs through the real dialog
 * pipeline; the format is in docs/testing.md. */
#ifndef KEFU_CONVTEST_H
#define KEFU_CONVTEST_H

#include <stdio.h>

#include "dialog.h"
#include "rules.h"

struct convtest_stats {
    size_t files, conversations, passed, failed, checks;
};

/* Runs every conversation in the test file path against d, as agent (a
 * name dialog_agent_auth() knows, for agent steps). Prints one line per
 * conversation and every failed expectation to out; syntax errors go to
 * diag as file:line:col. Adds to stats. Returns 0, KEFU_EIO (cannot read),
 * KEFU_ESYNTAX (the file does not parse; nothing ran) or KEFU_ENOMEM. */
int convtest_run_file(struct dialog *d, const char *agent, const char *path, int verbose, FILE *out,
                      struct rules_diag *diag, struct convtest_stats *stats);

#endif
