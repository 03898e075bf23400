/* cli_test.c — `kefu test [FILES|DIRS]`: conversation tests for editors.
 * Opens the real dialog on a temporary data directory (removed after the
 * run) with the rules and corpus given, runs every *.test file, and prints
 * a verdict per failing conversation and one summary line. Format and
 * expectations: docs/testing.md; the runner is convtest.c. */
#include "cli.h"
#include "cli_int.h"

#include "action.h"
#include "convtest.h"
#include "dialog.h"
#include "kefu.h"

#include <dirent.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#define DEFAULT_TESTS "rules/tests"
#define MAX_FILES     256

static const char *const usage_test =
    "usage: kefu test [-v] [--rules DIR] [--corpus DIR] [--actions FILE] [FILE.test | DIR]...\n\n"
    "Runs conversation tests (default: every *.test file in rules/tests/) through the real\n"
    "dialog pipeline on a temporary database: customer lines, agent steps, and the expected\n"
    "intent, reply, slots, state and queue after each. Prints each failing conversation with\n"
    "the file:line of every failed expectation (-v lists passing ones too). Exits 0 when all\n"
    "pass, 1 when one fails, 2 when a file does not parse. The format is in docs/testing.md.\n"
    "A file says what an action answers ('action NAME answers {...}', 'action NAME fails');\n"
    "an action it does not stub calls the endpoint of --actions FILE, or fails without one.";

static int name_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Adds path (a *.test file, or every *.test file in a directory, sorted) to files. */
static int collect(const char *path, char **files, size_t *n)
{
    struct stat st;
    if (stat(path, &st) != 0)
        return cli_fail("cannot open test file or directory '%s'", path);
    if (!S_ISDIR(st.st_mode)) {
        if (*n == MAX_FILES)
            return cli_fail("too many test files (at most %d)", MAX_FILES);
        files[(*n)++] = kefu_strndup(path, strlen(path));
        return 0;
    }
    DIR *dir = opendir(path);
    if (!dir)
        return cli_fail("cannot open test directory '%s'", path);
    size_t first = *n;
    for (struct dirent *e; (e = readdir(dir));) {
        size_t l = strlen(e->d_name);
        if (l < 6 || strcmp(e->d_name + l - 5, ".test") != 0 || *n == MAX_FILES)
            continue;
        char buf[4096];
        snprintf(buf, sizeof buf, "%s/%s", path, e->d_name);
        files[(*n)++] = kefu_strndup(buf, strlen(buf));
    }
    closedir(dir);
    qsort(files + first, *n - first, sizeof *files, name_cmp);
    return 0;
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    return remove(path);
}

struct test_opts {
    const char *rules, *corpus, *actions;
    int verbose;
    char *files[MAX_FILES];
    size_t n_files;
};

static int parse_args(int argc, char **argv, struct test_opts *o)
{
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0)
            return puts(usage_test), 1;
        if (strcmp(a, "-v") == 0 || strcmp(a, "--verbose") == 0) {
            o->verbose = 1;
        } else if (strcmp(a, "--rules") == 0 || strcmp(a, "--corpus") == 0 || strcmp(a, "--actions") == 0) {
            if (i + 1 >= argc)
                return cli_fail("option '%s' needs a value", a);
            *(a[2] == 'r' ? &o->rules : a[2] == 'c' ? &o->corpus : &o->actions) = argv[++i];
        } else if (a[0] == '-') {
            return cli_fail("unknown option '%s' for 'test' (see kefu test --help)", a);
        } else if (collect(a, o->files, &o->n_files)) {
            return 2;
        }
    }
    if (!o->n_files && collect(DEFAULT_TESTS, o->files, &o->n_files))
        return 2;
    return 0;
}

/* Opens the dialog on a fresh temporary directory with a test agent. */
static int open_dialog(const struct test_opts *o, char *tmp, char *agent_spec, size_t cap,
                       struct actions *acts, struct dialog **d)
{
    unsigned char r[16];
    if (getrandom(r, sizeof r, 0) != (ssize_t)sizeof r)
        return cli_fail("cannot read random bytes"), 1;
    int k = snprintf(agent_spec, cap, "kefu-test:");
    for (size_t i = 0; i < sizeof r; i++)
        k += snprintf(agent_spec + k, cap - (size_t)k, "%02x", r[i]);
    snprintf(agent_spec + k, cap - (size_t)k, ":*:100000");
    if (!mkdtemp(tmp))
        return cli_fail("cannot create a temporary directory in '/tmp'"), 1;
    struct dialog_config cfg;
    dialog_config_default(&cfg);
    cfg.data_dir = tmp;
    cfg.rules_dir = o->rules;
    cfg.corpus_dir = o->corpus;
    cfg.agents = agent_spec;
    cfg.hours = NULL;
    cfg.actions = acts;
    cfg.actions_lax = 1; /* the files stub what they need */
    cfg.show_calls = 1;  /* -v and failures list each message's calls */
    struct rules_diag diag;
    rules_diag_init(&diag);
    int rc = dialog_open(&cfg, &diag, d);
    if (rc < 0) {
        rules_diag_print(stderr, &diag);
        fprintf(stderr, "kefu: cannot start the dialog: %s\n", dialog_error());
    }
    rules_diag_release(&diag);
    return rc < 0 ? 1 : 0;
}

int cli_test(int argc, char **argv)
{
    struct test_opts o = {.rules = "rules", .corpus = "corpus"};
    int rc = parse_args(argc, argv, &o);
    char tmp[] = "/tmp/kefu-test-XXXXXX", agent[128];
    struct dialog *d = NULL;
    struct actions *acts = NULL;
    if (rc == 0)
        rc = cli_actions_open(o.actions, NULL, 0, &acts);
    if (rc == 0)
        rc = open_dialog(&o, tmp, agent, sizeof agent, acts, &d);
    struct convtest_stats st = {0};
    int syntax = 0;
    for (size_t i = 0; rc == 0 && i < o.n_files; i++) {
        struct rules_diag diag;
        rules_diag_init(&diag);
        int r = convtest_run_file(d, "kefu-test", o.files[i], o.verbose, stdout, &diag, &st);
        rules_diag_print(stderr, &diag);
        rules_diag_release(&diag);
        if (r == KEFU_EIO)
            fprintf(stderr, "kefu: cannot read test file '%s'\n", o.files[i]);
        syntax |= r < 0;
    }
    if (d) {
        dialog_close(d);
        nftw(tmp, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
        printf("kefu test: %zu file%s, %zu conversation%s, %zu checks: %zu passed, %zu failed\n", st.files,
               st.files == 1 ? "" : "s", st.conversations, st.conversations == 1 ? "" : "s", st.checks,
               st.passed, st.failed);
    }
    actions_free(acts);
    for (size_t i = 0; i < o.n_files; i++)
        free(o.files[i]);
    if (rc)
        return rc;
    return syntax ? 2 : st.failed ? 1 : 0;
}
