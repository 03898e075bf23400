/* cli_agent.c — `kefu agent add|list|disable|enable|rotate`: agent accounts
 * in DIR/kefu.db (agents.h). A token is printed once, when it is made (add,
 * rotate); kefu serve reads the account on each agent call, so a disabled or
 * rotated token fails at once, also while it runs and on every node that
 * shares the store. */
#include "agents.h"
#include "cli.h"
#include "cli_int.h"
#include "kefu.h"
#include "store.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

static const char *usage_agent =
    "usage: kefu agent add NAME [--skills Q1,Q2] [--capacity N] [--data DIR]\n"
    "       kefu agent list [--json] [--data DIR]\n"
    "       kefu agent disable|enable|rotate NAME [--data DIR]\n\n"
    "Agent accounts in DIR/kefu.db (default data/). add makes an agent serving the queues\n"
    "of --skills (default every queue) with room for N conversations at once (default 3)\n"
    "and prints its token once: only a hash of it is kept. disable turns the token off at\n"
    "once (enable turns it on again); rotate gives the agent a new token and the old one\n"
    "stops working. NAME is 1-63 characters of a-z, 0-9, '_', '-'.";

/* Opens DIR/kefu.db, creating both when missing (accounts may come before the first start). */
static int open_store(const char *dir, struct store **st)
{
    char path[4096];
    if (mkdir(dir, 0700) < 0 && errno != EEXIST)
        return cli_fail("cannot create the data directory '%s'", dir);
    snprintf(path, sizeof path, "%s/kefu.db", dir);
    int rc = store_open(path, &(struct store_opts){.readers = 1, .cache_slots = -1}, st);
    if (rc < 0) {
        fprintf(stderr, "kefu: cannot open '%s': %s\n", path, kefu_strerror(rc));
        return 1;
    }
    return 0;
}

static int cmd_list(struct store *st, int json)
{
    json_t *v;
    int rc = agents_list(st, &v);
    if (rc < 0) {
        fprintf(stderr, "kefu: cannot read the agent accounts: %s\n", kefu_strerror(rc));
        return 1;
    }
    if (json) {
        json_dumpf(v, stdout, JSON_INDENT(2));
        putchar('\n');
    }
    for (size_t i = 0; !json && i < json_array_size(v); i++) {
        json_t *a = json_array_get(v, i), *sk = json_object_get(a, "skills");
        printf("%s %s skills=", json_string_value(json_object_get(a, "name")),
               json_string_value(json_object_get(a, "state")));
        for (size_t k = 0; k < json_array_size(sk); k++)
            printf("%s%s", k ? "," : "", json_string_value(json_array_get(sk, k)));
        printf(" capacity=%lld\n", (long long)json_integer_value(json_object_get(a, "capacity")));
    }
    json_decref(v);
    return 0;
}

/* Runs one command on the open store; returns the exit status. */
static int run(struct store *st, const char *what, const char *name, const char *skills, int capacity)
{
    char token[AGENTS_TOKEN_LEN + 1];
    long long now = (long long)time(NULL);
    int rc = strcmp(what, "add") == 0 ? agents_add(st, name, skills, capacity, now, token)
                                      : agents_change(st, name, what, now, token);
    if (rc == KEFU_ECONFLICT)
        fprintf(stderr, "kefu: agent '%s' exists (kefu agent rotate gives it a new token)\n", name);
    else if (rc == KEFU_ENOENT)
        fprintf(stderr, "kefu: no agent '%s' (kefu agent list)\n", name);
    else if (rc < 0)
        fprintf(stderr, "kefu: cannot %s agent '%s': %s\n", what, name, kefu_strerror(rc));
    else if (strcmp(what, "add") == 0)
        printf("agent '%s' added; its token, shown this once: %s\n", name, token);
    else if (*token)
        printf("agent '%s' has a new token, shown this once: %s (the old one no longer works)\n", name,
               token);
    else
        printf("agent '%s' %sd\n", name, what);
    return rc < 0 ? 1 : 0;
}

int cli_agent(int argc, char **argv)
{
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        puts(usage_agent);
        return argc < 2 ? 2 : 0;
    }
    const char *what = argv[1], *dir = "data", *name = NULL, *skills = "";
    static const char *const verbs[] = {"add", "list", "disable", "enable", "rotate"};
    size_t k = 0;
    while (k < 5 && strcmp(what, verbs[k]) != 0)
        k++;
    if (k == 5)
        return cli_fail("unknown agent command '%s' (see kefu agent --help)", what);
    int json = 0, capacity = 0;
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            puts(usage_agent);
            return 0;
        } else if (strcmp(a, "--data") == 0 && i + 1 < argc) {
            dir = argv[++i];
        } else if (k == 0 && strcmp(a, "--skills") == 0 && i + 1 < argc) {
            skills = argv[++i];
            size_t n = strlen(skills);
            if (n > 255 || strspn(skills, "abcdefghijklmnopqrstuvwxyz0123456789_.-,*") != n)
                return cli_fail("--skills takes queue names separated by commas, not '%s'", skills);
        } else if (k == 0 && strcmp(a, "--capacity") == 0 && i + 1 < argc) {
            capacity = atoi(argv[++i]);
            if (capacity < 1 || capacity > 100)
                return cli_fail("--capacity takes a number from 1 to 100, not '%s'", argv[i]);
        } else if (k == 1 && strcmp(a, "--json") == 0) {
            json = 1;
        } else if (k != 1 && a[0] != '-' && !name) {
            name = a;
        } else {
            return cli_fail("unknown option or argument '%s' for 'agent %s' (see kefu agent --help)", a,
                            what);
        }
    }
    if (k != 1 && !name)
        return cli_fail("agent %s needs the agent's name (see kefu agent --help)", what);
    if (name && !agents_name_ok(name))
        return cli_fail("an agent name is 1-63 characters of a-z, 0-9, '_', '-', not '%s'", name);
    struct store *st;
    int rc = open_store(dir, &st);
    if (rc)
        return rc;
    rc = k == 1 ? cmd_list(st, json) : run(st, what, name, skills, capacity);
    store_close(st);
    return rc;
}
