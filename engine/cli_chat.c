/* cli_chat.c — `kefu chat`: a real conversation with the engine in the
 * terminal, on the same pipeline as the HTTP API (dialog.h) with a
 * temporary data directory: state carries across lines, slots are asked
 * and filled, clarifications and handoffs are shown. Lines starting with
 * '/' play the agent (/claim, /agent TEXT, /resolve) or start over (/new),
 * so an editor can walk a whole journey. Same conventions as cli.c. */
#include "cli.h"
#include "cli_int.h"

#include "action.h"

#include "dialog.h"
#include "kefu.h"

#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define LINE_MAX_CHAT (DIALOG_MAX_TEXT + 2)

static const char *const usage_chat =
    "usage: kefu chat [--rules DIR] [--corpus DIR] [--locale L] [--channel C] [--tier T]\n"
    "                 [--hours HH:MM-HH:MM] [--tz-offset MINUTES] [--miss-limit N] [--data DIR]\n"
    "                 [--actions FILE] [--stub NAME=JSON|fail]...\n\n"
    "A conversation with kefu in the terminal, exactly as a customer has it: the bot\n"
    "remembers what was said, asks for missing details, clarifies, and hands off to a\n"
    "person. The conversation lives in a temporary data directory removed at the end,\n"
    "or in DIR with --data (kept, for kefu report).\n"
    "Agent commands: /claim (take the conversation), /agent TEXT (reply as the agent),\n"
    "/resolve, /new (a new conversation). An empty line or Ctrl-D ends it.\n"
    "The rules' actions call the endpoints of --actions FILE, or answer what --stub says\n"
    "(fail: the call fails); an action with neither fails.";

struct chat_opts {
    const char *rules, *corpus, *locale, *channel, *tier, *hours, *data, *actions;
    int tz, miss_limit;
    char *stubs[16]; /* --stub NAME=JSON */
    size_t n_stubs;
};

/* Returns 0, 1 for --help, or 2 after printing an error. */
static int chat_parse(int argc, char **argv, struct chat_opts *o)
{
    static const char *const names[] = {"--rules", "--corpus", "--locale",    "--channel",   "--tier",
                                        "--hours", "--data",   "--tz-offset", "--miss-limit"};
    memset(o, 0, sizeof *o);
    o->rules = "rules";
    o->corpus = "corpus";
    o->channel = "cli";
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0)
            return 1;
        if (strcmp(argv[i], "--actions") == 0 || strcmp(argv[i], "--stub") == 0) {
            if (i + 1 >= argc || (argv[i][2] == 's' && o->n_stubs == 16))
                return cli_fail("option '%s' needs a value (--stub at most 16 times)", argv[i]);
            if (argv[i][2] == 'a')
                o->actions = argv[++i];
            else
                o->stubs[o->n_stubs++] = argv[++i];
            continue;
        }
        int k = 0;
        while (k < 9 && strcmp(argv[i], names[k]) != 0)
            k++;
        if (k == 9)
            return cli_fail("unknown option '%s' for 'chat' (see kefu chat --help)", argv[i]);
        if (i + 1 >= argc)
            return cli_fail("option '%s' needs a value", argv[i]);
        const char *v = argv[++i];
        const char **slot[] = {&o->rules, &o->corpus, &o->locale, &o->channel, &o->tier, &o->hours, &o->data};
        if (k < 7)
            *slot[k] = v;
        else if (k == 7)
            o->tz = atoi(v);
        else
            o->miss_limit = atoi(v);
    }
    return 0;
}

struct chat {
    struct dialog *d;
    struct actions *acts;
    const struct chat_opts *o;
    char dir[64];
    char conv[64];
    const char *agent;
};

static int chat_new(struct chat *c)
{
    json_t *req = json_pack("{s:s, s:{s:s, s:s}}", "channel", c->o->channel, "customer", "id", "cli-customer",
                            "tier", c->o->tier ? c->o->tier : "regular");
    if (c->o->locale)
        json_object_set_new(req, "locale", json_string(c->o->locale));
    json_t *out = NULL;
    int rc = dialog_conversation_create(c->d, req, &out);
    json_decref(req);
    if (rc < 0)
        return cli_fail("cannot start a conversation: %s", dialog_error());
    snprintf(c->conv, sizeof c->conv, "%s", json_string_value(json_object_get(out, "id")));
    json_t *m = json_array_get(json_object_get(out, "messages"), 0);
    printf("kefu (greeting): %s\n", json_string_value(json_object_get(m, "text")));
    json_decref(out);
    return 0;
}

static void print_list(const char *label, json_t *v, const char *key)
{
    if (!json_array_size(v))
        return;
    printf("   %s:", label);
    size_t i;
    json_t *x;
    json_array_foreach(v, i, x)
    {
        const char *s = key ? json_string_value(json_object_get(x, key)) : json_string_value(x);
        printf("%s %s", i ? " |" : "", s ? s : "?");
    }
    putchar('\n');
}

/* Prints the actions a turn called: each one's outcome, latency, whether a
 * --stub answered it or the endpoint did, and what it answered. */
static void print_calls(json_t *calls)
{
    size_t i;
    json_t *c;
    json_array_foreach(calls, i, c)
    {
        json_t *res = json_object_get(c, "result");
        char *r = res ? json_dumps(res, JSON_COMPACT) : NULL;
        printf("   action: %s (%s) -> %s in %.1f ms%s%s\n", json_string_value(json_object_get(c, "action")),
               json_is_true(json_object_get(c, "stubbed")) ? "stub" : "real",
               json_string_value(json_object_get(c, "outcome")),
               json_real_value(json_object_get(c, "seconds")) * 1000, r ? ": " : "", r ? r : "");
        free(r);
    }
}

/* Prints the bot's answer (or its silence) and the conversation's state. */
static void print_answer(json_t *out)
{
    json_t *r = json_object_get(out, "reply");
    const char *state = json_string_value(json_object_get(out, "state"));
    if (json_is_object(r)) {
        const char *intent = json_string_value(json_object_get(r, "intent"));
        printf("kefu (%s%s%s, %.2f): %s\n", json_string_value(json_object_get(r, "source")),
               intent ? ", " : "", intent ? intent : "", json_real_value(json_object_get(r, "confidence")),
               json_string_value(json_object_get(r, "text")));
        const char *notice = json_string_value(json_object_get(r, "notice"));
        if (notice)
            printf("   notice: %s\n", notice);
        print_list("quick replies", json_object_get(r, "quick_replies"), NULL);
        print_list("articles", json_object_get(r, "articles"), "id");
    } else {
        printf("kefu: (silent: the conversation is %s)\n", state);
    }
    print_calls(json_object_get(out, "calls"));
    json_t *q = json_object_get(out, "queue");
    if (q)
        printf("   -- %s in queue '%s', position %lld, waiting %llds\n", state,
               json_string_value(json_object_get(q, "name")),
               json_integer_value(json_object_get(q, "position")),
               json_integer_value(json_object_get(q, "wait_s")));
}

/* /claim, /agent TEXT, /resolve, /new. */
static void agent_command(struct chat *c, const char *line)
{
    json_t *out = NULL;
    int rc = 0;
    if (strcmp(line, "/new") == 0) {
        chat_new(c);
        return;
    }
    if (strcmp(line, "/claim") == 0) {
        if ((rc = dialog_claim(c->d, c->agent, c->conv, &out)) == 0)
            printf("agent claimed it; handoff reason: %s; %zu messages in the transcript\n",
                   json_string_value(json_object_get(out, "reason")),
                   json_array_size(json_object_get(out, "transcript")));
    } else if (strncmp(line, "/agent ", 7) == 0) {
        json_t *req = json_pack("{s:s}", "text", line + 7);
        if ((rc = dialog_agent_message(c->d, c->agent, c->conv, req, &out)) == 0)
            printf("agent: %s\n", line + 7);
        json_decref(req);
    } else if (strcmp(line, "/resolve") == 0) {
        if ((rc = dialog_resolve(c->d, c->agent, c->conv, &out)) == 0) {
            json_t *m = NULL;
            dialog_messages(c->d, c->conv, json_integer_value(json_object_get(out, "seq")) - 1, &m);
            json_t *last = json_array_get(json_object_get(m, "messages"), 0);
            printf("resolved. kefu (survey): %s\n", json_string_value(json_object_get(last, "text")));
            json_decref(m);
        }
    } else {
        printf("unknown command (use /claim, /agent TEXT, /resolve, /new)\n");
    }
    if (rc < 0)
        printf("(%s)\n", dialog_error());
    json_decref(out);
}

static void chat_line(struct chat *c, const char *line)
{
    if (*line == '/') {
        agent_command(c, line);
        return;
    }
    json_t *req = json_pack("{s:s}", "text", line), *out = NULL;
    if (!req) {
        puts("(the message is not valid utf-8)");
        return;
    }
    if (dialog_customer_message(c->d, c->conv, req, &out) == 0)
        print_answer(out);
    else
        printf("(%s)\n", dialog_error());
    json_decref(req);
    json_decref(out);
}

static int chat_open(struct chat *c)
{
    if (!c->o->data) {
        snprintf(c->dir, sizeof c->dir, "/tmp/kefu-chat-XXXXXX");
        if (!mkdtemp(c->dir))
            return cli_fail("cannot create a temporary directory");
    }
    char agents[128];
    snprintf(agents, sizeof agents, "editor:%s:*:100", "cli-editor-token-not-secret");
    struct dialog_config cfg;
    dialog_config_default(&cfg);
    cfg.data_dir = c->o->data ? c->o->data : c->dir;
    cfg.rules_dir = c->o->rules;
    cfg.corpus_dir = c->o->corpus;
    cfg.hours = c->o->hours;
    cfg.tz_offset_min = c->o->tz;
    cfg.miss_limit = c->o->miss_limit;
    cfg.agents = agents;
    if (cli_actions_open(c->o->actions, c->o->stubs, c->o->n_stubs, &c->acts))
        return 2;
    cfg.actions = c->acts;
    cfg.actions_lax = !c->o->actions; /* with the server's configuration, as strict as the server */
    cfg.show_calls = 1;
    struct rules_diag diag;
    rules_diag_init(&diag);
    int rc = dialog_open(&cfg, &diag, &c->d);
    if (rc < 0)
        rules_diag_print(stderr, &diag);
    rules_diag_release(&diag);
    if (rc < 0)
        return cli_fail("%s", dialog_error());
    dialog_agent_auth(c->d, "cli-editor-token-not-secret", &c->agent);
    return chat_new(c);
}

static void chat_close(struct chat *c)
{
    dialog_close(c->d);
    actions_free(c->acts);
    if (!*c->dir)
        return;
    const char *files[] = {"kefu.db", "kefu.db-wal", "kefu.db-shm", "kb.db", "kb.db-wal", "kb.db-shm"};
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        char p[128];
        snprintf(p, sizeof p, "%s/%s", c->dir, files[i]);
        unlink(p);
    }
    rmdir(c->dir);
}

int cli_chat(int argc, char **argv)
{
    struct chat_opts o;
    int rc = chat_parse(argc, argv, &o);
    if (rc == 1) {
        puts(usage_chat);
        return 0;
    }
    if (rc)
        return rc;
    struct chat c = {.o = &o};
    char *line = kefu_malloc(LINE_MAX_CHAT + 1);
    if (!line)
        return cli_fail("out of memory");
    int tty = isatty(0);
    if ((rc = chat_open(&c)) == 0) {
        if (tty)
            printf("kefu chat on %s (Ctrl-D to quit; /claim, /agent TEXT, /resolve, /new)\n", o.rules);
        for (;;) {
            if (tty) {
                fputs("> ", stdout);
                fflush(stdout);
            }
            if (!fgets(line, LINE_MAX_CHAT + 1, stdin))
                break;
            line[strcspn(line, "\r\n")] = 0;
            if (!*line && tty)
                break;
            if (*line)
                chat_line(&c, line);
            fflush(stdout);
        }
    }
    chat_close(&c);
    free(line);
    return rc;
}
