/* cli.c — the kefu command line: check, ask, route, chat.
 * Each command parses its own flags, loads the rules once and prints
 * for people (or JSON with --json). Errors are one plain line on stderr
 * and a non-zero exit; rule errors carry file:line:col and a caret. */
#include "cli.h"

#include "decide.h"
#include "kefu.h"
#include "router.h"
#include "rules.h"
#include "serve.h"
#include "text.h"

#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define DEFAULT_RULES "rules"
#define MAX_LINE      (64 * 1024)

struct opts {
    const char *rules;
    const char *locale, *channel, *tier;
    int json, explain, strict, quiet;
    const char *args[8];
    int n_args;
    struct attr extra[16]; /* --attr key=value; keys point into key_buf */
    size_t n_extra;
    char key_buf[16][64];
};

static int fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("kefu: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    return 2;
}

struct flag {
    const char *name;
    int takes_value;
};

/* Parses argv against the flags a command accepts; positional arguments go
 * to o->args. Returns 0, 1 for --help, or 2 after printing an error. */
static int parse_opts(int argc, char **argv, const char *accepted, struct opts *o)
{
    memset(o, 0, sizeof *o);
    o->rules = DEFAULT_RULES;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0)
            return 1;
        if (strcmp(a, "--") == 0) {
            while (++i < argc && o->n_args < 8)
                o->args[o->n_args++] = argv[i];
            break;
        }
        if (a[0] != '-' || a[1] == 0) {
            if (o->n_args == 8)
                return fail("too many arguments");
            o->args[o->n_args++] = a;
            continue;
        }
        char name[32];
        snprintf(name, sizeof name, " %s ", a);
        if (!strstr(accepted, name))
            return fail("unknown option '%s' for '%s' (see kefu %s --help)", a, argv[0], argv[0]);
        const char **val = NULL;
        if (strcmp(a, "--rules") == 0)
            val = &o->rules;
        else if (strcmp(a, "--locale") == 0)
            val = &o->locale;
        else if (strcmp(a, "--channel") == 0)
            val = &o->channel;
        else if (strcmp(a, "--tier") == 0)
            val = &o->tier;
        else if (strcmp(a, "--json") == 0)
            o->json = 1;
        else if (strcmp(a, "--explain") == 0)
            o->explain = 1;
        else if (strcmp(a, "--strict") == 0)
            o->strict = 1;
        else if (strcmp(a, "--quiet") == 0 || strcmp(a, "-q") == 0)
            o->quiet = 1;
        else if (strcmp(a, "--attr") == 0) {
            const char *kv = i + 1 < argc ? argv[++i] : "";
            const char *eq = strchr(kv, '=');
            if (!eq || eq == kv || eq - kv >= 64)
                return fail("--attr takes key=value, like --attr hours=closed");
            if (o->n_extra == 16)
                return fail("at most 16 --attr options");
            memcpy(o->key_buf[o->n_extra], kv, (size_t)(eq - kv));
            o->key_buf[o->n_extra][eq - kv] = 0;
            o->extra[o->n_extra] = (struct attr){o->key_buf[o->n_extra], eq + 1};
            o->n_extra++;
        }
        if (val) {
            if (i + 1 >= argc)
                return fail("option '%s' needs a value", a);
            *val = argv[++i];
        }
    }
    return 0;
}

static int load(const char *dir, struct rules **rs, int quiet)
{
    struct rules_diag d;
    rules_diag_init(&d);
    int rc = rules_load_dir(dir, &d, rs);
    if (rc < 0 || !quiet)
        rules_diag_print(stderr, &d);
    if (rc == KEFU_ESYNTAX) /* the diagnostics above say where; this says what it means */
        fprintf(stderr, "kefu: cannot load rules from '%s': %d error%s\n", dir, d.errors,
                d.errors == 1 ? "" : "s");
    rules_diag_release(&d);
    return rc;
}

/* Guesses a locale from the text when none is given: Chinese characters
 * make it zh (zh-hant when folding changed them), otherwise en. */
static const char *guess_locale(const char *text, size_t len)
{
    size_t i = 0;
    int cjk = 0, trad = 0;
    if (!text_utf8_valid(text, len))
        return "en";
    while (i < len) {
        uint32_t cp = text_utf8_next(text, &i);
        if (text_is_cjk(cp)) {
            cjk++;
            trad += text_fold_hans(cp) != cp;
        }
    }
    return cjk ? (trad ? "zh-hant" : "zh") : "en";
}

/* Renders a reply template: {slot} from slots, {customer.x} from attrs,
 * {kb:ID} as a link marker. Writes into buf (always NUL-terminated). */
static void render(const char *tpl, const struct router_slot *slots, size_t n_slots, const struct attrs *a,
                   char *buf, size_t cap)
{
    size_t o = 0;
    for (const char *p = tpl; *p && o + 1 < cap;) {
        const char *end = *p == '{' ? strchr(p, '}') : NULL;
        if (!end) {
            buf[o++] = *p++;
            continue;
        }
        char name[128];
        snprintf(name, sizeof name, "%.*s", (int)(end - p - 1), p + 1);
        const char *val = NULL;
        char tmp[160];
        if (strncmp(name, "kb:", 3) == 0) {
            snprintf(tmp, sizeof tmp, "[article %s]", name + 3);
            val = tmp;
        } else if (strncmp(name, "customer.", 9) == 0) {
            val = attrs_get(a, name);
        } else {
            for (size_t k = 0; k < n_slots; k++)
                if (strcmp(slots[k].name, name) == 0)
                    val = slots[k].value;
            if (!val) {
                snprintf(tmp, sizeof tmp, "[%s]", name);
                val = tmp;
            }
        }
        o += (size_t)snprintf(buf + o, cap - o, "%s", val);
        if (o >= cap)
            o = cap - 1;
        p = end + 1;
    }
    buf[o] = 0;
}

/* The conversation attributes for a command-line message: defaults, then --attr. */
static void build_attrs(const struct opts *o, const char *locale, struct attr *v, struct attrs *a)
{
    size_t n = 0;
    v[n++] = (struct attr){"locale", locale};
    v[n++] = (struct attr){"channel", o->channel ? o->channel : "cli"};
    v[n++] = (struct attr){"tier", o->tier ? o->tier : "regular"};
    v[n++] = (struct attr){"hours", "open"};
    v[n++] = (struct attr){"misses", "0"};
    for (size_t k = 0; k < o->n_extra; k++) {
        size_t j = 0;
        while (j < n && strcmp(v[j].key, o->extra[k].key) != 0)
            j++;
        v[j] = o->extra[k];
        if (j == n)
            n++;
    }
    a->v = v;
    a->n = n;
}

/* ---- kefu check ---- */

static const char *line_of(const char *file, int line, char *buf, size_t cap)
{
    FILE *f = fopen(file, "r");
    if (!f)
        return NULL;
    const char *res = NULL;
    for (int n = 1; fgets(buf, (int)cap, f); n++) {
        if (n == line) {
            buf[strcspn(buf, "\r\n")] = 0;
            res = buf;
            break;
        }
    }
    fclose(f);
    return res;
}

struct example_ref {
    char *norm; /* owned */
    const struct rules_example *ex;
    size_t intent;
};

static int example_cmp(const void *a, const void *b)
{
    const struct example_ref *x = a, *y = b;
    int c = strcmp(x->norm, y->norm);
    return c ? c : x->intent < y->intent ? -1 : x->intent > y->intent;
}

/* Reports an example written (after normalization) in two intents that no
 * condition keeps apart. */
static size_t check_duplicate_examples(const struct rules *rs, struct rules_diag *d)
{
    size_t n = 0, bad = 0;
    for (size_t i = 0; i < rules_count(rs); i++)
        n += rules_intent(rs, i)->n_examples;
    struct example_ref *v = kefu_calloc(n + 1, sizeof *v);
    struct text_buf b;
    text_buf_init(&b);
    if (!v)
        return 0;
    n = 0;
    for (size_t i = 0; i < rules_count(rs); i++) {
        const struct rules_intent *it = rules_intent(rs, i);
        for (size_t e = 0; e < it->n_examples; e++) {
            const char *t = it->examples[e].text;
            if (text_normalize(t, strlen(t), TEXT_FOLD, &b) == 0 && (v[n].norm = kefu_strndup(b.s, b.len)))
                v[n].ex = &it->examples[e], v[n++].intent = i;
        }
    }
    qsort(v, n, sizeof *v, example_cmp);
    for (size_t k = 1; k < n; k++) {
        if (strcmp(v[k].norm, v[k - 1].norm) != 0 || v[k].intent == v[k - 1].intent)
            continue;
        if (rules_intent(rs, v[k].intent)->when || rules_intent(rs, v[k - 1].intent)->when)
            continue; /* alternatives under different conditions may share examples */
        char src[1024];
        rules_diag_add(d, RULES_ERROR, v[k].ex->file, v[k].ex->line, v[k].ex->col,
                       line_of(v[k].ex->file, v[k].ex->line, src, sizeof src),
                       "the same example is in intent '%s' (%s:%d); it cannot route to both",
                       rules_intent(rs, v[k - 1].intent)->name, v[k - 1].ex->file, v[k - 1].ex->line);
        bad++;
    }
    for (size_t k = 0; k < n; k++)
        free(v[k].norm);
    free(v);
    text_buf_release(&b);
    return bad;
}

/* Routes every example line to its own intent; records failures in d. */
static size_t check_examples(const struct rules *rs, struct rules_diag *d, size_t *total)
{
    struct router_scratch *sc = router_scratch_create();
    if (!sc)
        return 0;
    size_t bad = check_duplicate_examples(rs, d);
    *total = 0;
    for (size_t i = 0; i < rules_count(rs); i++) {
        const struct rules_intent *it = rules_intent(rs, i);
        for (size_t e = 0; e < it->n_examples; e++) {
            const struct rules_example *ex = &it->examples[e];
            struct router_result r;
            (*total)++;
            /* route as in a conversation where its own 'when' holds */
            struct attr wv[16];
            size_t wn;
            rules_cond_witness(it->when, wv, 16, &wn);
            struct attrs wa = {wv, wn};
            struct router_opts opts = {(long)i};
            if (router_match(rs, sc, ex->text, strlen(ex->text), &wa, &opts, &r) < 0)
                continue;
            char src[1024];
            const char *line = line_of(ex->file, ex->line, src, sizeof src);
            if (r.n == 0) {
                rules_diag_add(d, RULES_ERROR, ex->file, ex->line, ex->col, line,
                               "example matches no pattern; it should route to '%s'", it->name);
            } else if (r.cand[0].intent != i) {
                const struct rules_intent *other = rules_intent(rs, r.cand[0].intent);
                rules_diag_add(d, RULES_ERROR, ex->file, ex->line, ex->col, line,
                               "example routes to '%s' (%.2f, %s:%d) instead of '%s'", other->name,
                               r.cand[0].confidence, r.cand[0].file, r.cand[0].line, it->name);
            } else if (r.cand[0].confidence < it->threshold) {
                rules_diag_add(d, RULES_ERROR, ex->file, ex->line, ex->col, line,
                               "example routes to '%s' with confidence %.2f, below its threshold %.2f",
                               it->name, r.cand[0].confidence, it->threshold);
            } else {
                continue;
            }
            bad++;
        }
    }
    router_scratch_free(sc);
    return bad;
}

/* What a command works with: its options and, for the commands that
 * route, the loaded rules, a scratch and a line buffer. */
struct session {
    struct opts o;
    struct rules *rs;
    struct router_scratch *sc;
    struct decide_ctx dc;
    char *line;
    int argc; /* the command's own argv, for commands that parse their flags */
    char **argv;
};

static int cmd_check(struct session *s)
{
    const struct opts *o = &s->o;
    const char *dir = o->n_args ? o->args[0] : o->rules;
    struct rules_diag d;
    rules_diag_init(&d);
    struct rules *rs = NULL;
    struct stat st;
    size_t dl = strlen(dir);
    int rc;
    if (stat(dir, &st) == 0 && S_ISREG(st.st_mode) && dl > 6 && strcmp(dir + dl - 6, ".rules") == 0)
        rc = rules_load_file(dir, &d, &rs); /* one file and its includes */
    else
        rc = rules_load_dir(dir, &d, &rs);
    size_t total = 0, bad = 0;
    if (rc == 0)
        bad = check_examples(rs, &d, &total);
    if (!o->quiet || d.errors)
        rules_diag_print(stderr, &d);
    int failed = rc < 0 || bad > 0 || (o->strict && d.warnings > 0);
    if (rc == 0)
        printf("%s: %zu intents, %zu examples, %zu misrouted, %d error%s, %d warning%s\n", dir,
               rules_count(rs), total, bad, d.errors, d.errors == 1 ? "" : "s", d.warnings,
               d.warnings == 1 ? "" : "s");
    else
        printf("%s: %d error%s, %d warning%s\n", dir, d.errors, d.errors == 1 ? "" : "s", d.warnings,
               d.warnings == 1 ? "" : "s");
    rules_diag_release(&d);
    rules_unref(rs);
    return failed ? 1 : 0;
}

/* ---- kefu ask ---- */

/* The intent a decision answers with (or NULL); borrowed from rs. */
static const struct rules_intent *chosen(const struct rules *rs, const struct decision *d)
{
    return d->intent >= 0 ? rules_intent(rs, (size_t)d->intent) : NULL;
}

static json_t *route_json(const struct rules *rs, const struct router_result *r)
{
    json_t *ex = json_object();
    json_object_set_new(ex, "normalized", json_stringn(r->norm, r->norm_len));
    json_object_set_new(ex, "literals_found", json_integer((json_int_t)r->literals_found));
    json_object_set_new(ex, "patterns_tried", json_integer((json_int_t)r->patterns_tried));
    json_object_set_new(ex, "limit_hits", json_integer((json_int_t)r->limit_hits));
    json_t *cands = json_array();
    for (size_t k = 0; k < r->n; k++) {
        const struct router_cand *c = &r->cand[k];
        const struct rules_intent *it = rules_intent(rs, c->intent);
        json_t *hits = json_array();
        for (size_t h = 0; h < c->n_hits; h++)
            json_array_append_new(hits, json_pack("{s:s, s:s%}", "term", c->hits[h].what, "text",
                                                  r->norm + c->hits[h].start,
                                                  (size_t)(c->hits[h].end - c->hits[h].start)));
        json_array_append_new(cands,
                              json_pack("{s:s, s:f, s:f, s:f, s:i, s:s, s:s, s:i, s:o}", "intent", it->name,
                                        "confidence", c->confidence, "rank", c->rank, "threshold",
                                        it->threshold, "priority", it->priority, "pattern", c->pattern,
                                        "file", c->file, "line", c->line, "hits", hits));
    }
    json_object_set_new(ex, "candidates", cands);
    json_t *sk = json_array();
    for (size_t k = 0; k < r->n_skipped; k++)
        json_array_append_new(sk, json_string(rules_intent(rs, r->skipped[k])->name));
    json_object_set_new(ex, "skipped_by_condition", sk);
    return ex;
}

static json_t *result_json(const struct rules *rs, const struct decision *d, const char *reply,
                           const struct router_slot *slots, size_t n_slots, int explain)
{
    const struct rules_intent *it = chosen(rs, d);
    json_t *o = json_object();
    json_object_set_new(o, "source", json_string(decide_source_name(d->source)));
    json_object_set_new(o, "intent", it ? json_string(it->name) : json_null());
    json_object_set_new(o, "confidence", json_real(d->confidence));
    json_object_set_new(o, "reply", reply ? json_string(reply) : json_null());
    if (d->handoff) {
        json_object_set_new(o, "handoff",
                            json_pack("{s:s, s:s}", "queue", d->handoff->queue, "priority",
                                      rules_priority_name(d->handoff->priority)));
    }
    json_t *js = json_object();
    for (size_t k = 0; k < n_slots; k++)
        json_object_set_new(js, slots[k].name, json_string(slots[k].value));
    json_object_set_new(o, "slots", js);
    if (explain)
        json_object_set_new(o, "explain", route_json(rs, &d->route));
    return o;
}

static void print_explain(const struct rules *rs, const struct router_result *r)
{
    printf("normalized:  %.*s\n", (int)r->norm_len, r->norm);
    printf("prefilter:   %zu literal%s found, %zu pattern%s tried", r->literals_found,
           r->literals_found == 1 ? "" : "s", r->patterns_tried, r->patterns_tried == 1 ? "" : "s");
    if (r->limit_hits)
        printf(", %zu regex limit hit%s", r->limit_hits, r->limit_hits == 1 ? "" : "s");
    putchar('\n');
    for (size_t k = 0; k < r->n; k++) {
        const struct router_cand *c = &r->cand[k];
        const struct rules_intent *it = rules_intent(rs, c->intent);
        printf("%s %-28s confidence %.2f  threshold %.2f  priority %d  %s\n", k == 0 ? "->" : "  ", it->name,
               c->confidence, it->threshold, it->priority,
               c->confidence >= it->threshold ? "" : "(below threshold)");
        printf("     %s %s  (%s:%d)\n", c->regex ? "regex" : "match", c->pattern, c->file, c->line);
        for (size_t h = 0; h < c->n_hits; h++)
            printf("     found '%.*s' for %s\n", (int)(c->hits[h].end - c->hits[h].start),
                   r->norm + c->hits[h].start, c->hits[h].what);
    }
    for (size_t k = 0; k < r->n_skipped; k++)
        printf("   %s fired but its 'when' condition does not hold\n", rules_intent(rs, r->skipped[k])->name);
    if (r->n == 0)
        puts("no pattern fired");
}

/* The question for the first slot of it that text did not fill, or NULL. */
static const char *missing_slot_ask(const struct rules_intent *it, const struct router_slot *slots,
                                    size_t n_slots, const char *locale)
{
    for (size_t k = 0; k < it->n_slots; k++) {
        const struct rules_slot *s = &it->slots[k];
        int have = 0;
        for (size_t j = 0; j < n_slots; j++)
            have |= strcmp(slots[j].name, s->name) == 0;
        if (!have && (s->ask || s->n_asks)) {
            const char *ask = rules_reply_pick(s->asks, s->n_asks, locale, 0);
            return ask ? ask : s->ask;
        }
    }
    return NULL;
}

static void print_decision(const struct rules *rs, const struct decision *d, const char *reply,
                           const struct router_slot *slots, size_t n_slots)
{
    const struct rules_intent *it = chosen(rs, d);
    const struct router_result *r = &d->route;
    if (it)
        printf("intent:      %s (confidence %.2f)\n", it->name, d->confidence);
    else if (r->n)
        printf("intent:      none above threshold (best %s at %.2f)\n",
               rules_intent(rs, r->cand[0].intent)->name, r->cand[0].confidence);
    else
        printf("intent:      none\n");
    printf("source:      %s\n", decide_source_name(d->source));
    for (size_t k = 0; k < n_slots; k++)
        printf("slot:        %s = %s\n", slots[k].name, slots[k].value);
    if (d->handoff)
        printf("handoff:     queue %s, priority %s\n", d->handoff->queue,
               rules_priority_name(d->handoff->priority));
    if (*reply)
        printf("reply:       %s\n", reply);
    else if (!it)
        printf("reply:       (no answer: kefu would ask again, then hand off to a person)\n");
}

static int ask_one(struct decide_ctx *dc, const struct opts *o, const char *text)
{
    const struct rules *rs = dc->rs;
    size_t len = strlen(text);
    if (!text_utf8_valid(text, len))
        return fail("the message is not valid utf-8");
    const char *locale = o->locale ? o->locale : guess_locale(text, len);
    struct attr av[24];
    struct attrs a;
    build_attrs(o, locale, av, &a);
    struct decision d;
    if (decide_message(dc, text, len, &a, &d) < 0)
        return fail("cannot route the message: out of memory");
    const struct rules_intent *it = chosen(rs, &d);
    struct router_slot slots[16];
    size_t n_slots = 0;
    if (it)
        router_slots(rs, dc->sc, (uint32_t)d.intent, text, len, slots, 16, &n_slots);
    char reply[4096] = "";
    const char *ask = it ? missing_slot_ask(it, slots, n_slots, locale) : NULL;
    if (ask)
        snprintf(reply, sizeof reply, "%s", ask);
    else if (d.reply)
        render(d.reply, slots, n_slots, &a, reply, sizeof reply);
    if (o->json) {
        json_t *j = result_json(rs, &d, *reply ? reply : NULL, slots, n_slots, o->explain);
        json_object_set_new(j, "locale", json_string(locale));
        if (ask)
            json_object_set_new(j, "asking", json_true());
        char *s = json_dumps(j, JSON_COMPACT);
        puts(s ? s : "{}");
        free(s);
        json_decref(j);
        return 0;
    }
    print_decision(rs, &d, reply, slots, n_slots);
    if (o->explain)
        print_explain(rs, &d.route);
    return 0;
}

static int cmd_ask(struct session *s)
{
    if (s->o.n_args != 1)
        return fail("ask needs exactly one message (quote it)");
    return ask_one(&s->dc, &s->o, s->o.args[0]);
}

/* ---- kefu route ---- */

static void json_str(FILE *f, const char *s)
{
    fputc('"', f);
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\')
            fprintf(f, "\\%c", ch);
        else if (ch < 0x20)
            fprintf(f, "\\u%04x", ch);
        else
            fputc(ch, f);
    }
    fputc('"', f);
}

/* Writes one route answer: intent (or none), source name, confidence. */
static void route_print(const struct opts *o, const char *intent, const char *source, double conf)
{
    if (o->json) {
        fputs("{\"intent\":", stdout);
        if (intent)
            json_str(stdout, intent);
        else
            fputs("null", stdout);
        printf(",\"source\":\"%s\",\"confidence\":%.3f}\n", source, conf);
    } else {
        printf("%s\t%s\t%.3f\n", intent ? intent : "-", source, conf);
    }
}

static int cmd_route(struct session *s)
{
    const struct opts *o = &s->o;
    char *line = s->line;
    static char outbuf[1 << 16];
    setvbuf(stdout, outbuf, _IOFBF, sizeof outbuf);
    struct attr av[24];
    struct attrs a;
    size_t lineno = 0, invalid = 0;
    size_t too_long = 0;
    while (fgets(line, MAX_LINE, stdin)) {
        lineno++;
        size_t len = strcspn(line, "\r\n");
        if (!line[len] && !feof(stdin)) { /* longer than the buffer: one line, one answer */
            int ch;
            while ((ch = getchar()) != EOF && ch != '\n')
                ;
            too_long++;
            route_print(o, NULL, "too_long", 0);
            continue;
        }
        line[len] = 0;
        build_attrs(o, o->locale ? o->locale : guess_locale(line, len), av, &a);
        struct decision d;
        if (decide_message(&s->dc, line, len, &a, &d) < 0) {
            invalid++;
            route_print(o, NULL, "invalid", 0);
            continue;
        }
        const struct rules_intent *it = chosen(s->rs, &d);
        route_print(o, it ? it->name : NULL, decide_source_name(d.source), d.confidence);
    }
    fflush(stdout);
    if (invalid)
        fprintf(stderr, "kefu: %zu of %zu lines were not valid utf-8\n", invalid, lineno);
    if (too_long)
        fprintf(stderr, "kefu: %zu of %zu lines were longer than %d bytes\n", too_long, lineno, MAX_LINE - 2);
    return 0;
}

/* ---- kefu serve (engine/serve.c) ---- */

static int cmd_serve(struct session *s)
{
    return serve_main(s->argc, s->argv);
}

static void usage(FILE *f)
{
    fputs("usage: kefu COMMAND [OPTIONS]\n\n"
          "commands:\n"
          "  check [RULES_DIR]   parse, compile and lint rules; every example must route to its intent\n"
          "  ask TEXT            what kefu would answer, and why (--explain, --json)\n"
          "  route               one decision per stdin line (--json)\n"
          "  chat                a conversation with kefu in the terminal (state, slots, handoff)\n"
          "  report              automation, handoffs, per-intent containment, unanswered messages\n"
          "  kb                  the knowledge base: import, search, stats (kefu kb --help)\n"
          "  serve               run the HTTP API server (see kefu serve --help)\n\n"
          "Every command takes --rules DIR (default rules/) and --help.\n",
          f);
}

static const struct command {
    const char *name;
    const char *flags; /* the options it accepts, space-separated with spaces around */
    int routes;        /* 1: load the rules and a scratch before run() */
    int (*run)(struct session *s);
    const char *usage;
} commands[] = {
    {"check", " --rules --strict --quiet -q ", 0, cmd_check,
     "usage: kefu check [--strict] [--quiet] [RULES_DIR | FILE.rules]\n\n"
     "Parses and compiles the rules, lints them (duplicates, unknown or unused concepts,\n"
     "shadowed patterns, dangerous regexes) and routes every example line, which must\n"
     "reach its own intent. Exits 1 on errors (and on warnings with --strict)."},
    {"ask", " --rules --json --explain --locale --channel --tier --attr ", 1, cmd_ask,
     "usage: kefu ask [--explain] [--json] [--locale L] [--channel C] [--tier T] [--attr K=V]...\n"
     "                [--rules DIR] TEXT\n\n"
     "Shows what kefu would answer to TEXT and, with --explain, why: the normalized text,\n"
     "the literals the prefilter found, every candidate intent with its confidence and the\n"
     "words that made it fire. --attr sets any conversation attribute a condition reads\n"
     "(hours=closed, misses=2, previous_intent=order.track, customer.plan=gold)."},
    {"route", " --rules --json --locale --channel --tier --attr ", 1, cmd_route,
     "usage: kefu route [--json] [--locale L] [--attr K=V]... [--rules DIR] < messages.txt\n\n"
     "Reads one message per line on stdin and writes one decision per line:\n"
     "intent<TAB>source<TAB>confidence (intent '-' when nothing answers), or one JSON\n"
     "object per line with --json. For batch checks and benchmarks."},
    {"serve", NULL /* serve parses its own flags */, 0, cmd_serve, NULL},
};

static int run_command(const struct command *c, int argc, char **argv)
{
    struct session s = {.argc = argc, .argv = argv};
    if (!c->flags)
        return c->run(&s);
    int rc = parse_opts(argc, argv, c->flags, &s.o);
    if (rc == 1) {
        puts(c->usage);
        return 0;
    }
    if (rc)
        return rc;
    if (!c->routes)
        return c->run(&s);
    if (load(s.o.rules, &s.rs, 1) < 0)
        return 2;
    s.sc = router_scratch_create();
    s.line = kefu_malloc(MAX_LINE);
    s.dc = (struct decide_ctx){.rs = s.rs, .sc = s.sc};
    decide_policy_default(&s.dc.policy);
    rc = s.sc && s.line ? c->run(&s) : fail("out of memory");
    free(s.line);
    router_scratch_free(s.sc);
    rules_unref(s.rs);
    return rc;
}

int cli_main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    const char *cmd = argv[1];
    if (strcmp(cmd, "--help") == 0 || strcmp(cmd, "help") == 0 || strcmp(cmd, "-h") == 0) {
        usage(stdout);
        return 0;
    }
    if (strcmp(cmd, "kb") == 0) /* subcommands with their own options: cli_kb.c */
        return cli_kb(argc - 1, argv + 1);
    if (strcmp(cmd, "chat") == 0) /* a conversation through dialog: cli_chat.c */
        return cli_chat(argc - 1, argv + 1);
    if (strcmp(cmd, "report") == 0) /* cli_report.c */
        return cli_report(argc - 1, argv + 1);
    for (size_t k = 0; k < sizeof commands / sizeof commands[0]; k++)
        if (strcmp(cmd, commands[k].name) == 0)
            return run_command(&commands[k], argc - 1, argv + 1);
    fprintf(stderr, "kefu: unknown command '%s' (see kefu --help)\n", cmd);
    return 2;
}
