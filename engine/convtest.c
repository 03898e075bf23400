/* convtest.c — kefu test: conversation test files run through the dialog.
 * A file is parsed whole first, so a typo is a file:line:col error and not
 * half a run; then each conversation gets a fresh customer and runs step
 * by step, every expectation checked against the JSON the dialog returned
 * (the same JSON the HTTP API sends). Format: docs/testing.md. */
#include "convtest.h"

#include "action.h"
#include "kefu.h"

#include <stdlib.h>
#include <string.h>

enum step_kind { STEP_SAY = 1, STEP_EXPECT, STEP_AGENT, STEP_FEEDBACK, STEP_ACTION };
enum agent_op { AG_CLAIM = 1, AG_SAYS, AG_TRANSFER, AG_RELEASE, AG_RESOLVE };
enum expect_op { OP_EQ = 1, OP_NE, OP_HAS, OP_GE, OP_LE, OP_NONE };

struct step {
    int kind, op, line;
    char *text; /* message, agent argument or expected value; owned */
    char *key;  /* expectation key; owned */
};

struct convo {
    char *name; /* owned */
    int line;
    char *with[8][2]; /* key, value; owned */
    size_t n_with;
    struct step *steps;
    size_t n_steps, cap;
};

struct suite {
    struct convo *v;
    size_t n, cap;
};

static void suite_release(struct suite *s)
{
    for (size_t i = 0; i < s->n; i++) {
        struct convo *c = &s->v[i];
        free(c->name);
        for (size_t k = 0; k < c->n_with; k++)
            free(c->with[k][0]), free(c->with[k][1]);
        for (size_t k = 0; k < c->n_steps; k++)
            free(c->steps[k].text), free(c->steps[k].key);
        free(c->steps);
    }
    free(s->v);
}

static char *trimmed(const char *s, size_t n)
{
    while (n && (*s == ' ' || *s == '\t'))
        s++, n--;
    while (n && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\r'))
        n--;
    return kefu_strndup(s, n);
}

static struct step *add_step(struct convo *c, int kind, int line)
{
    if (c->n_steps == c->cap) {
        size_t cap = c->cap ? c->cap * 2 : 16;
        struct step *v = kefu_realloc(c->steps, cap * sizeof *v);
        if (!v)
            return NULL;
        c->steps = v, c->cap = cap;
    }
    struct step *st = &c->steps[c->n_steps++];
    memset(st, 0, sizeof *st);
    st->kind = kind, st->line = line;
    return st;
}

static const struct {
    const char *word;
    int op;
} expect_ops[] = {{"!=", OP_NE}, {">=", OP_GE}, {"<=", OP_LE}, {"=", OP_EQ}, {"~", OP_HAS}};

/* "< key op value" or "< no reply" */
static int parse_expect(struct step *st, const char *p)
{
    while (*p == ' ')
        p++;
    if (strcmp(p, "no reply") == 0) {
        st->op = OP_NONE;
        return (st->key = kefu_strndup("reply", 5)) ? 0 : KEFU_ENOMEM;
    }
    size_t klen = strcspn(p, " \t=!~<>");
    if (klen == 0)
        return KEFU_EINVAL;
    const char *q = p + klen;
    while (*q == ' ')
        q++;
    for (size_t k = 0; k < sizeof expect_ops / sizeof expect_ops[0]; k++) {
        size_t wl = strlen(expect_ops[k].word);
        if (strncmp(q, expect_ops[k].word, wl) == 0) {
            st->op = expect_ops[k].op;
            st->key = kefu_strndup(p, klen);
            st->text = trimmed(q + wl, strlen(q + wl));
            return st->key && st->text ? 0 : KEFU_ENOMEM;
        }
    }
    return KEFU_EINVAL;
}

static const struct {
    const char *word;
    int op, arg; /* arg: 1 takes text */
} agent_ops[] = {{"claim", AG_CLAIM, 0},
                 {"says", AG_SAYS, 1},
                 {"transfer", AG_TRANSFER, 1},
                 {"release", AG_RELEASE, 0},
                 {"resolve", AG_RESOLVE, 0}};

static int parse_agent(struct step *st, const char *p)
{
    while (*p == ' ')
        p++;
    for (size_t k = 0; k < sizeof agent_ops / sizeof agent_ops[0]; k++) {
        size_t wl = strlen(agent_ops[k].word);
        if (strncmp(p, agent_ops[k].word, wl) != 0 || (p[wl] != 0 && p[wl] != ' '))
            continue;
        st->op = agent_ops[k].op;
        const char *arg = p + wl;
        while (*arg == ' ')
            arg++;
        if (agent_ops[k].arg != (*arg != 0))
            return KEFU_EINVAL;
        st->text = kefu_strndup(arg, strlen(arg));
        return st->text ? 0 : KEFU_ENOMEM;
    }
    return KEFU_EINVAL;
}

static int parse_with(struct convo *c, const char *p)
{
    while (*p) {
        while (*p == ' ')
            p++;
        size_t n = strcspn(p, " ");
        const char *eq = memchr(p, '=', n);
        if (!n)
            break;
        if (!eq || eq == p || c->n_with == 8)
            return KEFU_EINVAL;
        c->with[c->n_with][0] = kefu_strndup(p, (size_t)(eq - p));
        c->with[c->n_with][1] = kefu_strndup(eq + 1, n - (size_t)(eq - p) - 1);
        if (!c->with[c->n_with][0] || !c->with[c->n_with][1])
            return KEFU_ENOMEM;
        c->n_with++;
        p += n;
    }
    return 0;
}

/* Parses one indented line of a conversation; returns 0, KEFU_EINVAL with
 * *why set, or KEFU_ENOMEM. */
static int parse_line(struct convo *c, const char *p, int line, const char **why)
{
    struct step *st;
    if (*p == '>') {
        if (!(st = add_step(c, STEP_SAY, line)) || !(st->text = trimmed(p + 1, strlen(p + 1))))
            return KEFU_ENOMEM;
        *why = "a customer line needs text after '>'";
        return *st->text ? 0 : KEFU_EINVAL;
    }
    if (*p == '<') {
        *why = "an expectation is 'KEY = VALUE' (or != ~ >= <=) or 'no reply'";
        if (!c->n_steps)
            return *why = "an expectation needs a customer line or agent step before it", KEFU_EINVAL;
        return (st = add_step(c, STEP_EXPECT, line)) ? parse_expect(st, p + 1) : KEFU_ENOMEM;
    }
    if (strncmp(p, "agent ", 6) == 0) {
        *why = "unknown agent step (claim, says TEXT, transfer QUEUE, release, resolve)";
        return (st = add_step(c, STEP_AGENT, line)) ? parse_agent(st, p + 6) : KEFU_ENOMEM;
    }
    if (strncmp(p, "feedback ", 9) == 0) {
        *why = "feedback takes a rating 1-5 and an optional comment";
        if (!(st = add_step(c, STEP_FEEDBACK, line)))
            return KEFU_ENOMEM;
        char *end;
        long r = strtol(p + 9, &end, 10);
        st->op = (int)r;
        st->text = trimmed(end, strlen(end));
        return !st->text ? KEFU_ENOMEM : r < 1 || r > 5 || (*end && *end != ' ') ? KEFU_EINVAL : 0;
    }
    if (strncmp(p, "action ", 7) == 0) {
        *why = "an action step is 'action NAME answers {JSON object}' or 'action NAME fails'";
        if (!(st = add_step(c, STEP_ACTION, line)))
            return KEFU_ENOMEM;
        const char *q = p + 7;
        while (*q == ' ')
            q++;
        size_t n = strcspn(q, " ");
        if (!n || !(st->text = kefu_strndup(q, n)))
            return n ? KEFU_ENOMEM : KEFU_EINVAL;
        q += n;
        while (*q == ' ')
            q++;
        if (strcmp(q, "fails") == 0)
            return 0;
        if (strncmp(q, "answers ", 8) != 0)
            return KEFU_EINVAL;
        json_t *v = json_loads(q + 8, JSON_REJECT_DUPLICATES, NULL);
        int ok = json_is_object(v);
        json_decref(v);
        if (!ok)
            return *why = "'answers' takes a JSON object on the same line", KEFU_EINVAL;
        return (st->key = kefu_strndup(q + 8, strlen(q + 8))) ? 0 : KEFU_ENOMEM;
    }
    if (strncmp(p, "with ", 5) == 0) {
        *why = "'with' takes key=value pairs (channel, locale, tier, customer, name) before the first step";
        return c->n_steps ? KEFU_EINVAL : parse_with(c, p + 5);
    }
    *why = "expected '>', '<', 'agent', 'action', 'feedback' or 'with'";
    return KEFU_EINVAL;
}

static int parse_file(const char *path, struct suite *s, struct rules_diag *diag)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return KEFU_EIO;
    char buf[8192];
    int line = 0, rc = 0, errors = 0;
    struct convo *c = NULL;
    while (fgets(buf, sizeof buf, f)) {
        line++;
        buf[strcspn(buf, "\n")] = 0;
        size_t ind = strspn(buf, " \t");
        char *p = buf + ind;
        if (!*p || *p == '#')
            continue;
        const char *why = NULL;
        if (ind == 0) {
            if (strncmp(p, "conversation ", 13) != 0) {
                rules_diag_add(diag, RULES_ERROR, path, line, 1, buf,
                               "expected 'conversation NAME' (steps are indented)");
                errors++, c = NULL;
                continue;
            }
            if (s->n == s->cap) {
                size_t cap = s->cap ? s->cap * 2 : 8;
                struct convo *v = kefu_realloc(s->v, cap * sizeof *v);
                if (!v) {
                    rc = KEFU_ENOMEM;
                    break;
                }
                s->v = v, s->cap = cap;
            }
            c = &s->v[s->n++];
            memset(c, 0, sizeof *c);
            c->line = line;
            if (!(c->name = trimmed(p + 13, strlen(p + 13)))) {
                rc = KEFU_ENOMEM;
                break;
            }
            continue;
        }
        if (!c) {
            rules_diag_add(diag, RULES_ERROR, path, line, (int)ind + 1, buf,
                           "step outside a conversation (start one with 'conversation NAME')");
            errors++;
            continue;
        }
        int r = parse_line(c, p, line, &why);
        if (r == KEFU_ENOMEM) {
            rc = r;
            break;
        }
        if (r < 0) {
            rules_diag_add(diag, RULES_ERROR, path, line, (int)ind + 1, buf, "%s", why);
            errors++;
        }
    }
    fclose(f);
    return rc ? rc : errors ? KEFU_ESYNTAX : 0;
}

/* ---- running ---- */

/* Appends the value at key in res as text ("" when absent, "null" for null). */
static void value_of(json_t *res, const char *key, char *buf, size_t cap)
{
    json_t *reply = json_object_get(res, "reply");
    json_t *v = NULL;
    buf[0] = 0;
    json_t *conv = json_object_get(res, "conversation"); /* an agent step returns the context */
    if (strcmp(key, "state") == 0 || strcmp(key, "seq") == 0)
        v = json_object_get(conv ? conv : res, key);
    else if (strcmp(key, "queue") == 0)
        v = conv ? json_object_get(conv, "queue")
            : json_is_string(json_object_get(res, "queue"))
                ? json_object_get(res, "queue")
                : json_object_get(json_object_get(res, "queue"), "name");
    else if (strcmp(key, "position") == 0)
        v = json_object_get(json_object_get(res, "queue"), "position");
    else if (strcmp(key, "reply") == 0)
        v = json_is_object(reply) ? json_object_get(reply, "text") : reply;
    else if (strncmp(key, "slot.", 5) == 0)
        v = json_object_get(json_object_get(reply, "slots"), key + 5);
    else if (strcmp(key, "quick_replies") == 0 || strcmp(key, "articles") == 0) {
        json_t *a = json_object_get(reply, key);
        size_t i, o = 0;
        json_t *e;
        json_array_foreach(a, i, e)
        {
            const char *t = json_is_string(e)
                                ? json_string_value(e)
                                : json_string_value(json_object_get(e, key[0] == 'a' ? "id" : "text"));
            o += (size_t)snprintf(buf + o, o < cap ? cap - o : 0, "%s%s", i ? " | " : "", t ? t : "");
        }
        return;
    } else
        v = json_object_get(reply, key);
    if (!v)
        return;
    if (json_is_string(v))
        snprintf(buf, cap, "%s", json_string_value(v));
    else if (json_is_null(v))
        snprintf(buf, cap, "null");
    else if (json_is_integer(v))
        snprintf(buf, cap, "%lld", (long long)json_integer_value(v));
    else if (json_is_real(v))
        snprintf(buf, cap, "%.3f", json_real_value(v));
    else if (json_is_boolean(v))
        snprintf(buf, cap, "%s", json_is_true(v) ? "true" : "false");
}

static int expect_holds(const struct step *st, json_t *res, char *got, size_t cap)
{
    value_of(res, st->key, got, cap);
    switch (st->op) {
    case OP_NONE: return strcmp(got, "null") == 0 || !*got;
    case OP_EQ: return strcmp(got, st->text) == 0;
    case OP_NE: return strcmp(got, st->text) != 0;
    case OP_HAS: return strstr(got, st->text) != NULL;
    case OP_GE: return *got && strtod(got, NULL) >= strtod(st->text, NULL);
    case OP_LE: return *got && strtod(got, NULL) <= strtod(st->text, NULL);
    }
    return 0;
}

static const char *op_word(int op)
{
    for (size_t k = 0; k < sizeof expect_ops / sizeof expect_ops[0]; k++)
        if (expect_ops[k].op == op)
            return expect_ops[k].word;
    return "is";
}

static json_t *text_req(const char *text)
{
    return json_pack("{s:s}", "text", text);
}

/* Runs one step; *res is replaced by its result (NULL on failure). */
static int run_step(struct dialog *d, const char *agent, const char *conv, const struct step *st,
                    json_t **res)
{
    json_t *req = NULL, *out = NULL;
    int rc = KEFU_EINVAL;
    if (st->kind == STEP_ACTION) { /* from now on in this conversation, the action answers this */
        json_t *v = st->key ? json_loads(st->key, 0, NULL) : NULL;
        rc = dialog_actions(d) ? actions_stub(dialog_actions(d), st->text, v) : KEFU_EINVAL;
        json_decref(v);
        return rc; /* the last answer stays the one expectations read */
    } else if (st->kind == STEP_SAY) {
        req = text_req(st->text);
        rc = dialog_customer_message(d, conv, req, &out);
    } else if (st->kind == STEP_FEEDBACK) {
        req = json_pack("{s:i, s:s}", "rating", st->op, "comment", st->text);
        rc = dialog_feedback(d, conv, req, &out);
    } else if (st->op == AG_CLAIM) {
        rc = dialog_claim(d, agent, conv, &out);
    } else if (st->op == AG_SAYS) {
        req = text_req(st->text);
        rc = dialog_agent_message(d, agent, conv, req, &out);
    } else if (st->op == AG_TRANSFER) {
        req = json_pack("{s:s}", "queue", st->text);
        rc = dialog_transfer(d, agent, conv, req, &out);
    } else if (st->op == AG_RELEASE) {
        rc = dialog_release(d, agent, conv, &out);
    } else if (st->op == AG_RESOLVE) {
        rc = dialog_resolve(d, agent, conv, &out);
    }
    json_decref(req);
    json_decref(*res);
    *res = rc < 0 ? NULL : out;
    return rc;
}

static json_t *create_req(const struct convo *c, size_t serial)
{
    char id[64];
    snprintf(id, sizeof id, "kefu-test-%zu", serial);
    json_t *cust = json_pack("{s:s}", "id", id);
    json_t *req = json_pack("{s:s, s:o}", "channel", "test", "customer", cust);
    for (size_t k = 0; k < c->n_with; k++) {
        const char *key = c->with[k][0], *val = c->with[k][1];
        if (strcmp(key, "tier") == 0 || strcmp(key, "name") == 0)
            json_object_set_new(cust, key, json_string(val));
        else if (strcmp(key, "customer") == 0)
            json_object_set_new(cust, "id", json_string(val));
        else
            json_object_set_new(req, key, json_string(val));
    }
    return req;
}

/* Writes the actions the answer res says its turn called (the dialog's show_calls):
 * outcome, latency, stubbed by the file (or --stub) or a real call, the answer. */
static void print_calls(FILE *out, const char *path, int line, json_t *res)
{
    size_t i;
    json_t *c;
    json_array_foreach(json_object_get(res, "calls"), i, c)
    {
        json_t *r = json_object_get(c, "result");
        char *s = r ? json_dumps(r, JSON_COMPACT) : NULL;
        fprintf(out, "  %s:%d: action %s (%s) -> %s in %.1f ms%s%s\n", path, line,
                json_string_value(json_object_get(c, "action")),
                json_is_true(json_object_get(c, "stubbed")) ? "stub" : "real",
                json_string_value(json_object_get(c, "outcome")),
                json_real_value(json_object_get(c, "seconds")) * 1000, s ? ": " : "", s ? s : "");
        free(s);
    }
}

/* Runs conversation c; returns the number of failed checks (a failed call counts). */
static size_t run_convo(struct dialog *d, const char *agent, const char *path, const struct convo *c,
                        size_t serial, FILE *out, struct convtest_stats *stats)
{
    json_t *req = create_req(c, serial), *res = NULL;
    if (dialog_actions(d))
        actions_stub_clear(dialog_actions(d)); /* each conversation stubs its own */
    int rc = dialog_conversation_create(d, req, &res);
    json_decref(req);
    if (rc < 0) {
        fprintf(out, "  %s:%d: cannot start the conversation: %s\n", path, c->line, dialog_error());
        return 1;
    }
    char conv[128];
    const char *id = json_string_value(json_object_get(res, "id"));
    snprintf(conv, sizeof conv, "%s", id ? id : "");
    size_t bad = 0;
    int dead = 0; /* the last step failed: its expectations are skipped */
    for (size_t k = 0; k < c->n_steps; k++) {
        const struct step *st = &c->steps[k];
        if (st->kind != STEP_EXPECT) {
            if ((rc = run_step(d, agent, conv, st, &res)) < 0) {
                fprintf(out, "  %s:%d: %s failed: %s (%s)\n", path, st->line,
                        st->kind == STEP_SAY ? "customer message" : "step", kefu_strerror(rc),
                        dialog_error());
                bad++;
            }
            dead = rc < 0;
            if (!dead && st->kind == STEP_SAY)
                print_calls(out, path, st->line, res);
            continue;
        }
        stats->checks++;
        char got[2048];
        if (dead || !res)
            continue;
        if (!expect_holds(st, res, got, sizeof got)) {
            if (st->op == OP_NONE)
                fprintf(out, "  %s:%d: expected no reply, got '%s'\n", path, st->line, got);
            else
                fprintf(out, "  %s:%d: expected %s %s '%s', got '%s'\n", path, st->line, st->key,
                        op_word(st->op), st->text, *got ? got : "(nothing)");
            bad++;
        }
    }
    json_decref(res);
    return bad;
}

int convtest_run_file(struct dialog *d, const char *agent, const char *path, int verbose, FILE *out,
                      struct rules_diag *diag, struct convtest_stats *stats)
{
    struct suite s = {0};
    int rc = parse_file(path, &s, diag);
    if (rc < 0) {
        suite_release(&s);
        return rc;
    }
    stats->files++;
    for (size_t i = 0; i < s.n; i++) {
        char *why = NULL;
        size_t why_len = 0, bad;
        FILE *w = open_memstream(&why, &why_len); /* details follow the verdict line */
        bad = run_convo(d, agent, path, &s.v[i], stats->conversations, w ? w : out, stats);
        if (w)
            fclose(w);
        stats->conversations++;
        if (bad)
            stats->failed++;
        else
            stats->passed++;
        if (bad || verbose)
            fprintf(out, "%s %s (%s:%d)\n%s", bad ? "FAIL" : "PASS", s.v[i].name, path, s.v[i].line,
                    why ? why : "");
        free(why);
    }
    suite_release(&s);
    return 0;
}
