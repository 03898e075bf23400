/* cli.c — the kefu command line: check, ask, route, chat.
 * Each command parses its own flags, loads the rules once and prints
 * for people (or JSON with --json). Errors are one plain line on stderr
 * and a non-zero exit; rule errors carry file:line:col and a caret. */
#include "cli.h"
#include "cli_int.h"

#include "decide.h"
#include "demo.h"
#include "dialog.h"
#include "eval.h"
#include "httpc.h"
#include "kb.h"
#include "kefu.h"
#include "redline.h"
#include "router.h"
#include "rules.h"
#include "serve.h"
#include "store.h"
#include "text.h"

#include <curl/curlver.h>
#include <jansson.h>
#include <microhttpd.h>
#include <openssl/crypto.h>
#include <openssl/opensslv.h>
#ifndef PCRE2_CODE_UNIT_WIDTH
#define PCRE2_CODE_UNIT_WIDTH 8
#endif
#include <pcre2.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define DEFAULT_RULES "rules"
#define MAX_LINE      (64 * 1024)
#define DEFAULT_DB    "data/kb.db"

#define N_TH 10 /* threshold options */
/* The options of kefu ask, route and eval that turn stages off or set thresholds. */
#define STAGE_FLAGS                                                                                          \
    " --no-examples --no-kb --no-classifier --example-min --example-lead --kb-min --kb-lead --classify-min " \
    "--classify-agree --veto-max --veto-known --veto-none --vote-veto-max "

struct opts {
    const char *rules;
    const char *locale, *channel, *tier;
    int json, explain, strict, quiet;
    const char *db, *out, *faq; /* --db PATH, -o FILE, --faq FILE */
    int sweep, no_examples, no_kb, no_classifier, rules_set, wrong;
    double th[N_TH]; /* the threshold_flags in order; < 0: the default */
    const char *args[8];
    int n_args;
    struct attr extra[16]; /* --attr key=value; keys point into key_buf */
    size_t n_extra;
    char key_buf[16][64];
    const char *actions; /* --actions FILE */
    char *stubs[16];     /* --stub NAME=JSON */
    size_t n_stubs;
};

int cli_fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("kefu: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    return 2;
}

int cli_open_store(const char *dir, struct store **out)
{
    char path[4096];
    struct stat sb;
    const char *uri = getenv("KEFU_STORE"); /* the nodes' PostgreSQL store, as for kefu serve */
    if (uri && *uri) {
        if (!store_is_uri(uri))
            return cli_fail("KEFU_STORE takes a postgresql:// URI, not '%s'", uri);
        int rc = store_open(uri, &(struct store_opts){.readers = 1}, out);
        if (rc < 0) {
            fprintf(stderr, "kefu: cannot open the store of KEFU_STORE: %s\n", kefu_strerror(rc));
            return 1;
        }
        return 0;
    }
    snprintf(path, sizeof path, "%s/kefu.db", dir);
    if (stat(path, &sb) != 0)
        return cli_fail("no conversations in '%s' (%s not found)", dir, path);
    struct store_opts so = {.readers = 1};
    int rc = store_open(path, &so, out);
    if (rc < 0) {
        fprintf(stderr, "kefu: cannot open '%s': %s\n", path, kefu_strerror(rc));
        return 1;
    }
    return 0;
}

struct flag {
    const char *name;
    int takes_value;
};

static const char *const threshold_flags[N_TH] = {
    "--example-min", "--example-lead", "--kb-min",         "--kb-lead",   "--classify-min",
    "--veto-max",    "--veto-known",   "--classify-agree", "--veto-none", "--vote-veto-max"};

/* The index of a threshold option in threshold_flags, or -1. */
static int threshold_index(const char *a)
{
    for (int k = 0; k < N_TH; k++)
        if (strcmp(a, threshold_flags[k]) == 0)
            return k;
    return -1;
}

/* Parses argv against the flags a command accepts; positional arguments go
 * to o->args. Returns 0, 1 for --help, or 2 after printing an error. */
static int parse_opts(int argc, char **argv, const char *accepted, struct opts *o)
{
    memset(o, 0, sizeof *o);
    o->rules = DEFAULT_RULES;
    for (int k = 0; k < N_TH; k++)
        o->th[k] = -1;
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
                return cli_fail("too many arguments");
            o->args[o->n_args++] = a;
            continue;
        }
        char name[32];
        snprintf(name, sizeof name, " %s ", a);
        if (!strstr(accepted, name))
            return cli_fail("unknown option '%s' for '%s' (see kefu %s --help)", a, argv[0], argv[0]);
        const char **val = NULL;
        if (strcmp(a, "--rules") == 0)
            val = &o->rules, o->rules_set = 1;
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
        else if (strcmp(a, "--db") == 0)
            val = &o->db;
        else if (strcmp(a, "-o") == 0)
            val = &o->out;
        else if (strcmp(a, "--faq") == 0)
            val = &o->faq;
        else if (strcmp(a, "--sweep") == 0)
            o->sweep = 1;
        else if (strcmp(a, "--wrong") == 0)
            o->wrong = 1;
        else if (strcmp(a, "--no-examples") == 0)
            o->no_examples = 1;
        else if (strcmp(a, "--no-kb") == 0)
            o->no_kb = 1;
        else if (strcmp(a, "--no-classifier") == 0)
            o->no_classifier = 1;
        else if (threshold_index(a) >= 0) {
            char *end = NULL;
            double v = i + 1 < argc ? strtod(argv[i + 1], &end) : -1;
            if (i + 1 >= argc || *end || v < 0 || v > 1)
                return cli_fail("option '%s' takes a number from 0 to 1", a);
            o->th[threshold_index(a)] = v;
            i++;
        } else if (strcmp(a, "--actions") == 0) {
            val = &o->actions;
        } else if (strcmp(a, "--stub") == 0) {
            if (i + 1 >= argc || o->n_stubs == 16)
                return cli_fail("--stub takes NAME=JSON (at most 16)");
            o->stubs[o->n_stubs++] = argv[++i];
        } else if (strcmp(a, "--attr") == 0) {
            const char *kv = i + 1 < argc ? argv[++i] : "";
            const char *eq = strchr(kv, '=');
            if (!eq || eq == kv || eq - kv >= 64)
                return cli_fail("--attr takes key=value, like --attr hours=closed");
            if (o->n_extra == 16)
                return cli_fail("at most 16 --attr options");
            memcpy(o->key_buf[o->n_extra], kv, (size_t)(eq - kv));
            o->key_buf[o->n_extra][eq - kv] = 0;
            o->extra[o->n_extra] = (struct attr){o->key_buf[o->n_extra], eq + 1};
            o->n_extra++;
        }
        if (val) {
            if (i + 1 >= argc)
                return cli_fail("option '%s' needs a value", a);
            *val = argv[++i];
        }
    }
    return 0;
}

static int load(const char *dir, struct rules **rs, int quiet)
{
    struct rules_diag d;
    rules_diag_init(&d);
    struct stat st;
    size_t dl = strlen(dir);
    int rc;
    if (stat(dir, &st) == 0 && S_ISREG(st.st_mode) && dl > 6 && strcmp(dir + dl - 6, ".rules") == 0)
        rc = rules_load_file(dir, &d, rs); /* one file and its includes */
    else
        rc = rules_load_dir(dir, &d, rs);
    if (rc < 0 || !quiet)
        rules_diag_print(stderr, &d);
    if (rc == KEFU_ESYNTAX) /* the diagnostics above say where; this says what it means */
        fprintf(stderr, "kefu: cannot load rules from '%s': %d error%s\n", dir, d.errors,
                d.errors == 1 ? "" : "s");
    rules_diag_release(&d);
    return rc;
}

/* What a command-line reply template can name: {slot}, {customer.x} from
 * the attributes, {service_hours} as kefu serve's default (no --hours),
 * {kb:ID} as the article's title and id when the kb has it, else a marker;
 * an unknown name shows as [name]. */
struct fill_ctx {
    const struct router_slot *slots;
    size_t n_slots;
    const struct attrs *a;
    struct kb *kb;
    char tmp[512];
    json_t *result; /* the action's answer, or NULL */
};

static const char *fill(void *ctx, const char *name)
{
    struct fill_ctx *f = ctx;
    struct kb_hit hit;
    if (strncmp(name, "kb:", 3) == 0) {
        if (f->kb && kb_get(f->kb, name + 3, attrs_get(f->a, "locale"), &hit) == 0)
            snprintf(f->tmp, sizeof f->tmp, "[%s](kb:%s)", hit.title, name + 3);
        else
            snprintf(f->tmp, sizeof f->tmp, "[article %s]", name + 3);
        return f->tmp;
    }
    if (strncmp(name, "customer.", 9) == 0)
        return attrs_get(f->a, name);
    if (strcmp(name, "service_hours") == 0) {
        dialog_hours_text(NULL, 0, attrs_get(f->a, "locale"), f->tmp, sizeof f->tmp);
        return f->tmp;
    }
    for (size_t k = 0; k < f->n_slots; k++)
        if (strcmp(f->slots[k].name, name) == 0)
            return f->slots[k].value;
    if (f->result && action_field(f->result, name, f->tmp, sizeof f->tmp))
        return f->tmp;
    snprintf(f->tmp, sizeof f->tmp, "[%s]", name);
    return f->tmp;
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

/* Checks one example of intent i through the router; returns 1 if it fails. */
static int check_routed(const struct rules *rs, struct router_scratch *sc, size_t i,
                        const struct rules_example *ex, const struct attrs *wa, struct rules_diag *d)
{
    const struct rules_intent *it = rules_intent(rs, i);
    struct router_result r;
    struct router_opts opts = {(long)i};
    if (router_match(rs, sc, ex->text, strlen(ex->text), wa, &opts, &r) < 0)
        return 0;
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
                       "example routes to '%s' with confidence %.2f, below its threshold %.2f", it->name,
                       r.cand[0].confidence, it->threshold);
    } else {
        return 0;
    }
    return 1;
}

/* Checks one example of an intent without patterns (example-based matching
 * is its only route). An example nothing can match is an error; one whose
 * nearest examples vote for another intent first is a warning, since
 * labelled data overlaps (kefu learn). Returns 1 for an error. */
static int check_voted(const struct rules *rs, struct kb_examples *kx, size_t i,
                       const struct rules_example *ex, const struct attrs *wa, struct rules_diag *d)
{
    const struct rules_intent *it = rules_intent(rs, i);
    struct kb_votes v;
    if (!kx || kb_examples_match(kx, ex->text, strlen(ex->text), wa, &v) < 0)
        return 0;
    char src[1024];
    const char *line = line_of(ex->file, ex->line, src, sizeof src);
    if (v.n == 0) {
        rules_diag_add(d, RULES_ERROR, ex->file, ex->line, ex->col, line,
                       "example has no word example matching can use; '%s' has no pattern", it->name);
    } else if (v.v[0].intent != i) {
        rules_diag_add(d, RULES_WARNING, ex->file, ex->line, ex->col, line,
                       "example is nearer to the examples of '%s' (%.2f, \"%s\") than to those of '%s'",
                       rules_intent(rs, v.v[0].intent)->name, v.v[0].confidence, v.v[0].example, it->name);
        return 0;
    } else {
        return 0;
    }
    return 1;
}

/* Routes every example line to its own intent; records failures in d. */
static size_t check_examples(const struct rules *rs, struct rules_diag *d, size_t *total)
{
    struct router_scratch *sc = router_scratch_create();
    struct kb_examples *kx = NULL;
    if (!sc)
        return 0;
    size_t bad = check_duplicate_examples(rs, d);
    *total = 0;
    for (size_t i = 0; i < rules_count(rs); i++) {
        const struct rules_intent *it = rules_intent(rs, i);
        if (it->n_patterns == 0 && it->n_examples && !kx && kb_examples_build(rs, &kx) < 0)
            rules_diag_add(d, RULES_ERROR, it->file, it->line, 1, NULL, "cannot index the example lines");
        for (size_t e = 0; e < it->n_examples; e++) {
            (*total)++;
            /* route as in a conversation where its own 'when' holds */
            struct attr wv[16];
            size_t wn;
            rules_cond_witness(it->when, wv, 16, &wn);
            struct attrs wa = {wv, wn};
            if (it->n_patterns)
                bad += (size_t)check_routed(rs, sc, i, &it->examples[e], &wa, d);
            else
                bad += (size_t)check_voted(rs, kx, i, &it->examples[e], &wa, d);
        }
    }
    kb_examples_free(kx);
    router_scratch_free(sc);
    return bad;
}

/* What a command works with: its options and, for the commands that
 * route, the loaded rules, a scratch and a line buffer. */
struct session {
    struct opts o;
    struct rules *rs;
    struct router_scratch *sc;
    struct decide_ctx dc; /* its ex, kb and clf are owned by the session */
    struct classify *clf;
    char *line;
    int argc; /* the command's own argv, for commands that parse their flags */
    char **argv;
};

/* Validates a red-line file into d; prints its summary line when it loads. */
static int check_redlines(const char *path, struct rules_diag *d)
{
    struct redline *r = NULL;
    int rc = redline_load(path, d, &r);
    if (rc == 0)
        printf("%s: %zu red line%s, %zu escalation%s\n", path, redline_count(r),
               redline_count(r) == 1 ? "" : "s", redline_escalations(r),
               redline_escalations(r) == 1 ? "" : "s");
    redline_free(r);
    return rc;
}

static int cmd_check(struct session *s)
{
    const struct opts *o = &s->o;
    const char *dir = o->n_args ? o->args[0] : o->rules;
    struct rules_diag d;
    rules_diag_init(&d);
    size_t dlen = strlen(dir);
    if (dlen > 5 && strcmp(dir + dlen - 5, ".conf") == 0) { /* a red-line file alone */
        int rc = check_redlines(dir, &d);
        rules_diag_print(stderr, &d);
        if (rc < 0)
            printf("%s: %d error%s\n", dir, d.errors, d.errors == 1 ? "" : "s");
        rules_diag_release(&d);
        return rc < 0 ? 1 : 0;
    }
    d.jit_check = o->strict; /* the server JIT-compiles only hot regexes: learn now which never will */
    struct rules *rs = NULL;
    struct stat st;
    size_t dl = strlen(dir);
    int rc;
    if (stat(dir, &st) == 0 && S_ISREG(st.st_mode) && dl > 6 && strcmp(dir + dl - 6, ".rules") == 0)
        rc = rules_load_file(dir, &d, &rs); /* one file and its includes */
    else
        rc = rules_load_dir(dir, &d, &rs);
    size_t total = 0, bad = 0;
    struct actions *acts = NULL;
    if (rc == 0 && o->actions) { /* the server's configuration: every action the rules name must be in it */
        if (cli_actions_open(o->actions, NULL, 0, &acts)) {
            rules_diag_release(&d);
            rules_unref(rs);
            return 2;
        }
        if (rules_check_actions(rs, actions_known_fn, acts, &d) > 0)
            rc = KEFU_ESYNTAX;
        actions_free(acts);
    }
    if (rc == 0)
        bad = check_examples(rs, &d, &total);
    char rl[4096];
    snprintf(rl, sizeof rl, "%s/redlines.conf", dir);
    struct stat ds;
    int rl_rc =
        stat(dir, &ds) == 0 && S_ISDIR(ds.st_mode) && access(rl, F_OK) == 0 ? check_redlines(rl, &d) : 0;
    if (!o->quiet || d.errors)
        rules_diag_print(stderr, &d);
    int failed = rc < 0 || rl_rc < 0 || bad > 0 || (o->strict && d.warnings > 0);
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

/* The stage names as --explain prints them. */
static const char *stage_name(int stage)
{
    return stage == DECIDE_RULE         ? "rules"
           : stage == DECIDE_CLASSIFIER ? "classifier"
           : stage == DECIDE_EXAMPLE    ? "examples"
                                        : "articles";
}

/* 1 if candidate k is the first (best) of its stage. */
static int stage_best(const struct decision *d, size_t k)
{
    for (size_t j = 0; j < k; j++)
        if (d->cand[j].stage == d->cand[k].stage)
            return 0;
    return 1;
}

/* Why candidate k was or was not taken, in a few words (in buf). */
static const char *cand_why(const struct decide_ctx *dc, const struct decision *d, size_t k, char *buf,
                            size_t cap)
{
    const struct decide_cand *c = &d->cand[k];
    int best = stage_best(d, k);
    const char *below = c->confidence < c->threshold ? " (below threshold)" : "";
    if (best && d->stage == c->stage)
        return d->source == DECIDE_HANDOFF ? "taken: its handoff holds" : "taken";
    for (int j = 0; d->source == DECIDE_CLARIFY && j < 2; j++)
        if (d->clarify[j].stage == c->stage && d->clarify[j].name == c->name)
            return "offered in the clarifying question";
    if (c->stage == DECIDE_RULE && d->vetoed && best)
        snprintf(buf, cap,
                 "vetoed: the classifier gives it under %.2f (it knows %.0f%% of the message, none %.2f)",
                 dc->policy.veto_max, 100 * d->cls.known, d->cls.none);
    else if (d->stage && decide_stage_rank(d->stage) < decide_stage_rank(c->stage))
        snprintf(buf, cap, "not needed: the %s stage answered%s", stage_name(d->stage), below);
    else if (*below)
        snprintf(buf, cap, "below threshold");
    else if (!best)
        snprintf(buf, cap, "not the best of its stage");
    else if (c->stage == DECIDE_EXAMPLE && decide_example_lead(d) < dc->policy.example_lead)
        snprintf(buf, cap, "leads the next intent by %.2f, needs %.2f", decide_example_lead(d),
                 dc->policy.example_lead);
    else if (c->stage == DECIDE_KB && decide_kb_lead(d) < dc->policy.kb_lead)
        snprintf(buf, cap, "its score leads the next article's by %.0f%%, needs %.0f%%",
                 100 * decide_kb_lead(d), 100 * dc->policy.kb_lead);
    else
        snprintf(buf, cap, "above threshold");
    return buf;
}

/* Why a stage has no candidates, or NULL when it has some. */
static const char *stage_note(const struct decide_ctx *dc, const struct decision *d, int stage)
{
    for (size_t k = 0; k < d->n_cand; k++)
        if (d->cand[k].stage == stage)
            return NULL;
    if (stage == DECIDE_RULE)
        return d->route.n_skipped ? "patterns fired, but their 'when' conditions do not hold"
                                  : "no pattern fired";
    if (stage == DECIDE_CLASSIFIER && !dc->policy.use_classifier)
        return "off";
    if (stage == DECIDE_CLASSIFIER && !dc->clf)
        return "no classifier (fewer than two intents have example lines)";
    if (stage == DECIDE_CLASSIFIER)
        return "no feature of the message is known";
    if (stage == DECIDE_EXAMPLE && !dc->policy.use_examples)
        return "off";
    if (stage == DECIDE_EXAMPLE && !dc->ex)
        return "no example lines in the rules";
    if (stage == DECIDE_KB && !dc->policy.use_kb)
        return "off";
    if (stage == DECIDE_KB && !dc->kb)
        return "no knowledge base";
    if (stage == DECIDE_KB && d->kb.n_terms == 0 && d->kb.n == 0)
        return "nothing searchable in the message";
    return stage == DECIDE_KB ? "no article matched" : "no example is near";
}

/* Why the clarifying question was or was not asked. */
static void clarify_why(const struct decide_ctx *dc, const struct decision *d, char *buf, size_t cap)
{
    const struct decide_policy *p = &dc->policy;
    if (d->source == DECIDE_CLARIFY) {
        snprintf(buf, cap, "asked: %s %.2f and %s %.2f are within %.2f, both at least %.2f",
                 d->clarify[0].name, d->clarify[0].confidence, d->clarify[1].name, d->clarify[1].confidence,
                 p->clarify_gap, p->clarify_min);
        return;
    }
    if (d->stage) {
        snprintf(buf, cap, "not needed: the %s stage answered", stage_name(d->stage));
        return;
    }
    size_t a = SIZE_MAX, b = SIZE_MAX;
    for (size_t k = 0; k < d->n_cand; k++) {
        const char *n = d->cand[k].name;
        long i = d->cand[k].intent;
        if (a == SIZE_MAX || d->cand[k].confidence > d->cand[a].confidence) {
            if (a != SIZE_MAX && !(d->cand[a].intent == i && (i >= 0 || d->cand[a].name == n)))
                b = a;
            a = k;
        } else if (!(d->cand[a].intent == i && (i >= 0 || d->cand[a].name == n)) &&
                   (b == SIZE_MAX || d->cand[k].confidence > d->cand[b].confidence)) {
            b = k;
        }
    }
    if (a == SIZE_MAX)
        snprintf(buf, cap, "no: no candidate at all");
    else if (b == SIZE_MAX)
        snprintf(buf, cap, "no: only one candidate (%s)", d->cand[a].name);
    else if (d->cand[b].confidence < p->clarify_min)
        snprintf(buf, cap, "no: the second candidate %s %.2f is below %.2f", d->cand[b].name,
                 d->cand[b].confidence, p->clarify_min);
    else
        snprintf(buf, cap, "no: %s %.2f leads %s %.2f by more than %.2f", d->cand[a].name,
                 d->cand[a].confidence, d->cand[b].name, d->cand[b].confidence, p->clarify_gap);
}

/* The features that weigh most for the classifier's best intent. */
static json_t *features_json(const struct decide_ctx *dc, const struct decision *d, const char *text)
{
    json_t *a = json_array();
    struct classify_feature f[6];
    size_t n = 0;
    if (classify_explain(dc->clf, text, strlen(text), d->cls.cand[0].intent, f, 6, &n) == 0)
        for (size_t k = 0; k < n && f[k].weight != 0; k++)
            json_array_append_new(a, json_pack("{s:s, s:f}", "feature", f[k].name, "weight", f[k].weight));
    return a;
}

static json_t *stages_json(const struct decide_ctx *dc, const struct decision *d, const char *text)
{
    json_t *st = json_array();
    static const int order[] = {DECIDE_RULE, DECIDE_CLASSIFIER, DECIDE_EXAMPLE, DECIDE_KB};
    for (size_t o = 0; o < sizeof order / sizeof order[0]; o++) {
        int s = order[o];
        json_t *cands = json_array();
        for (size_t k = 0; k < d->n_cand; k++) {
            const struct decide_cand *c = &d->cand[k];
            char why[160];
            if (c->stage != s)
                continue;
            json_t *j = json_pack("{s:s, s:f, s:f, s:s}", "name", c->name, "confidence", c->confidence,
                                  "threshold", c->threshold, "why", cand_why(dc, d, k, why, sizeof why));
            if (c->title)
                json_object_set_new(j, "title", json_string(c->title));
            if (s == DECIDE_EXAMPLE && d->votes.v[0].example)
                for (size_t v = 0; v < d->votes.n; v++)
                    if ((long)d->votes.v[v].intent == c->intent && d->votes.v[v].example)
                        json_object_set_new(j, "nearest", json_string(d->votes.v[v].example));
            json_array_append_new(cands, j);
        }
        const char *note = stage_note(dc, d, s);
        json_t *js = json_pack("{s:s, s:s?, s:o}", "stage", stage_name(s), "note", note, "candidates", cands);
        if (s == DECIDE_CLASSIFIER && dc->clf && d->cls.n) {
            json_object_set_new(js, "none", json_real(d->cls.none));
            json_object_set_new(js, "known", json_real(d->cls.known));
            json_object_set_new(js, "features", features_json(dc, d, text));
        }
        if (s == DECIDE_EXAMPLE && d->votes.n) {
            json_object_set_new(js, "lead", json_real(decide_example_lead(d)));
            json_object_set_new(js, "lead_needed", json_real(dc->policy.example_lead));
        } else if (s == DECIDE_KB && d->kb.n) {
            json_object_set_new(js, "lead", json_real(decide_kb_lead(d)));
            json_object_set_new(js, "lead_needed", json_real(dc->policy.kb_lead));
        }
        json_array_append_new(st, js);
    }
    return st;
}

static void print_stage(const struct decide_ctx *dc, const struct decision *d, int s)
{
    const char *note = stage_note(dc, d, s);
    printf("%s:%*s%s\n", stage_name(s), (int)(12 - strlen(stage_name(s))), "", note ? note : "");
    for (size_t k = 0; k < d->n_cand; k++) {
        const struct decide_cand *c = &d->cand[k];
        if (c->stage != s)
            continue;
        char why[160];
        printf("   %-28s confidence %.2f  threshold %.2f  %s\n", c->name, c->confidence, c->threshold,
               cand_why(dc, d, k, why, sizeof why));
        if (c->title)
            printf("     title: %s\n", c->title);
        for (size_t v = 0; s == DECIDE_EXAMPLE && v < d->votes.n; v++)
            if ((long)d->votes.v[v].intent == c->intent && d->votes.v[v].example)
                printf("     nearest example: %s\n", d->votes.v[v].example);
    }
}

/* The explanation after the router's own: the later stages, then clarify. */
static void print_stages(const struct decide_ctx *dc, const struct decision *d, const char *text)
{
    print_stage(dc, d, DECIDE_CLASSIFIER);
    if (dc->clf && d->cls.n) {
        printf("   known %.0f%% of the message; none of these %.2f\n", 100 * d->cls.known, d->cls.none);
        struct classify_feature f[6];
        size_t n = 0;
        if (classify_explain(dc->clf, text, strlen(text), d->cls.cand[0].intent, f, 6, &n) == 0)
            for (size_t k = 0; k < n && f[k].weight != 0; k++)
                printf("     feature %-24s %+.3f for %s\n", f[k].name, f[k].weight,
                       rules_intent(dc->rs, d->cls.cand[0].intent)->name);
    }
    print_stage(dc, d, DECIDE_EXAMPLE);
    print_stage(dc, d, DECIDE_KB);
    char why[512];
    clarify_why(dc, d, why, sizeof why);
    printf("clarify:     %s\n", why);
}

/* What the customer would see: the reply text and up to two quick replies. */
struct answer {
    char text[4096];
    const char *quick[2];
    size_t n_quick;
    const char *ask; /* the slot question, when the reply asks for a missing slot */
};

/* The decision as JSON; with explain (the message's text), why. */
static json_t *result_json(const struct decide_ctx *dc, const struct decision *d, const struct answer *ans,
                           const struct router_slot *slots, size_t n_slots, const char *explain)
{
    const struct rules_intent *it = chosen(dc->rs, d);
    json_t *o = json_object();
    json_object_set_new(o, "source", json_string(decide_source_name(d->source)));
    json_object_set_new(o, "intent", it ? json_string(it->name) : json_null());
    json_object_set_new(o, "confidence", json_real(d->confidence));
    json_object_set_new(o, "reply", *ans->text ? json_string(ans->text) : json_null());
    if (d->handoff) {
        json_object_set_new(o, "handoff",
                            json_pack("{s:s, s:s}", "queue", d->handoff->queue, "priority",
                                      rules_priority_name(d->handoff->priority)));
    }
    if (d->source == DECIDE_KB)
        json_object_set_new(o, "articles",
                            json_pack("[{s:s, s:s, s:f}]", "id", d->article.id, "title", d->article.title,
                                      "score", d->article.score));
    if (ans->n_quick) {
        json_t *q = json_array();
        for (size_t k = 0; k < ans->n_quick; k++)
            json_array_append_new(q, json_string(ans->quick[k]));
        json_object_set_new(o, "quick_replies", q);
    }
    json_t *js = json_object();
    for (size_t k = 0; k < n_slots; k++)
        json_object_set_new(js, slots[k].name, json_string(slots[k].value));
    json_object_set_new(o, "slots", js);
    if (explain) {
        json_t *ex = route_json(dc->rs, &d->route);
        json_object_set_new(ex, "stages", stages_json(dc, d, explain));
        char why[512];
        clarify_why(dc, d, why, sizeof why);
        json_object_set_new(ex, "clarify", json_string(why));
        json_object_set_new(o, "explain", ex);
    }
    return o;
}

static void print_explain(const struct decide_ctx *dc, const struct decision *d, const char *text)
{
    const struct rules *rs = dc->rs;
    const struct router_result *r = &d->route;
    printf("normalized:  %.*s\n", (int)r->norm_len, r->norm);
    printf("prefilter:   %zu literal%s found, %zu pattern%s tried", r->literals_found,
           r->literals_found == 1 ? "" : "s", r->patterns_tried, r->patterns_tried == 1 ? "" : "s");
    if (r->limit_hits)
        printf(", %zu regex limit hit%s", r->limit_hits, r->limit_hits == 1 ? "" : "s");
    putchar('\n');
    puts("rules:");
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
        char why[160];
        if (k < d->n_cand && d->cand[k].stage == DECIDE_RULE)
            printf("     %s\n", cand_why(dc, d, k, why, sizeof why));
    }
    for (size_t k = 0; k < r->n_skipped; k++)
        printf("   %s fired but its 'when' condition does not hold\n", rules_intent(rs, r->skipped[k])->name);
    if (r->n == 0)
        puts("no pattern fired");
    print_stages(dc, d, text);
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

static void print_decision(const struct rules *rs, const struct decision *d, const struct answer *ans,
                           const struct router_slot *slots, size_t n_slots)
{
    const struct rules_intent *it = chosen(rs, d);
    const struct router_result *r = &d->route;
    if (it)
        printf("intent:      %s (confidence %.2f)\n", it->name, d->confidence);
    else if (d->source == DECIDE_KB)
        printf("article:     %s (confidence %.2f)\n", d->article.id, d->confidence);
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
    if (*ans->text)
        printf("reply:       %s\n", ans->text);
    else if (!it)
        printf("reply:       (no answer: kefu would ask again, then hand off to a person)\n");
    for (size_t k = 0; k < ans->n_quick; k++)
        printf("quick reply: %s\n", ans->quick[k]);
}

/* The length of label without its closing punctuation (. ? ! 。 ？ ！). */
static int label_len(const char *label)
{
    size_t n = strlen(label);
    for (;;) {
        if (n && strchr(".?!", label[n - 1]))
            n--;
        else if (n >= 3 && (memcmp(label + n - 3, "。", 3) == 0 || memcmp(label + n - 3, "？", 3) == 0 ||
                            memcmp(label + n - 3, "！", 3) == 0))
            n -= 3;
        else
            return (int)n;
    }
}

/* Builds what the customer sees for decision d of text[0..len). */
static void build_answer(struct decide_ctx *dc, const struct decision *d, const struct attrs *a,
                         const struct router_slot *slots, size_t n_slots, struct answer *ans)
{
    const char *locale = attrs_get(a, "locale");
    const struct rules_intent *it = chosen(dc->rs, d);
    int zh = strncmp(locale, "zh", 2) == 0;
    memset(ans, 0, sizeof *ans);
    if (it && (ans->ask = missing_slot_ask(it, slots, n_slots, locale)))
        snprintf(ans->text, sizeof ans->text, "%s", ans->ask);
    else if (d->reply) {
        struct fill_ctx f = {slots, n_slots, a, dc->kb, "", NULL};
        rules_render(d->reply, fill, &f, ans->text, sizeof ans->text);
    } else if (d->source == DECIDE_KB) {
        struct kb_result r = d->kb; /* the search cut no snippet: only the answer shows one */
        const char *snippet = dc->kb && kb_snippets(dc->kb, &r, 1) == 0 ? r.hit[0].snippet : "";
        snprintf(ans->text, sizeof ans->text, "%s: %s", *d->article.title ? d->article.title : d->article.id,
                 snippet);
    }
    if (d->source != DECIDE_CLARIFY)
        return;
    ans->quick[0] = decide_label(dc->rs, &d->clarify[0], locale);
    ans->quick[1] = decide_label(dc->rs, &d->clarify[1], locale);
    ans->n_quick = 2;
    int la = label_len(ans->quick[0]), lb = label_len(ans->quick[1]);
    snprintf(ans->text, sizeof ans->text, zh ? "您是想问：%.*s，还是 %.*s？" : "Did you mean: %.*s, or %.*s?",
             la, ans->quick[0], lb, ans->quick[1]);
}

/* Calls the chosen intent's action and renders what it chose into ans. */
static void ask_action(struct decide_ctx *dc, const struct rules_intent *it, const struct router_slot *slots,
                       size_t n_slots, const struct attrs *a, struct actions *acts, struct answer *ans,
                       struct cli_action *act)
{
    json_t *js = json_object();
    for (size_t k = 0; k < n_slots; k++)
        json_object_set_new(js, slots[k].name, json_string(slots[k].value));
    if (cli_action_run(acts, it, js, a, act) == 0) {
        struct fill_ctx f = {slots, n_slots, a, dc->kb, "", act->result};
        ans->text[0] = 0;
        if (act->ch.tpl)
            rules_render(act->ch.tpl, fill, &f, ans->text, sizeof ans->text);
    }
    json_decref(js);
}

static void print_action(const struct rules_intent *it, const struct cli_action *act, int explain)
{
    if (act->ch.failed_handoff)
        printf("handoff:     queue general, reason action_failed\n");
    else if (act->ch.handoff)
        printf("handoff:     queue %s, priority %s\n", act->ch.handoff->queue,
               rules_priority_name(act->ch.handoff->priority));
    if (!explain)
        return;
    char *r = act->result ? json_dumps(act->result, JSON_COMPACT) : NULL;
    printf("action:      %s (%s) -> %s in %.1f ms%s%s\n", it->action, act->stubbed ? "stub" : "real",
           act->outcome, act->seconds * 1000, r ? ": " : "", r ? r : "");
    free(r);
}

static json_t *action_json(const struct rules_intent *it, const struct cli_action *act)
{
    json_t *o =
        json_pack("{s:s, s:b, s:s, s:f, s:b, s:O?}", "name", it->action, "ok", act->ok, "outcome",
                  act->outcome, "seconds", act->seconds, "stubbed", act->stubbed, "result", act->result);
    if (o && act->ch.failed_handoff)
        json_object_set_new(o, "handoff",
                            json_pack("{s:s, s:s}", "queue", "general", "reason", "action_failed"));
    else if (o && act->ch.handoff)
        json_object_set_new(o, "handoff",
                            json_pack("{s:s, s:s}", "queue", act->ch.handoff->queue, "priority",
                                      rules_priority_name(act->ch.handoff->priority)));
    return o;
}

static int ask_one(struct decide_ctx *dc, const struct opts *o, struct actions *acts, const char *text)
{
    const struct rules *rs = dc->rs;
    size_t len = strlen(text);
    if (!text_utf8_valid(text, len))
        return cli_fail("the message is not valid utf-8");
    const char *locale = o->locale ? o->locale : text_guess_locale(text, len, NULL);
    struct attr av[24];
    struct attrs a;
    build_attrs(o, locale, av, &a);
    struct decision d;
    int rc = decide_message(dc, text, len, &a, &d);
    if (rc < 0)
        return cli_fail("cannot decide the message: %s", kefu_strerror(rc));
    const struct rules_intent *it = chosen(rs, &d);
    struct router_slot slots[16];
    size_t n_slots = 0;
    if (it)
        router_slots(rs, dc->sc, (uint32_t)d.intent, text, len, slots, 16, &n_slots);
    struct answer ans;
    build_answer(dc, &d, &a, slots, n_slots, &ans);
    struct cli_action act = {0};
    int called = it && !ans.ask && it->action && d.source != DECIDE_HANDOFF;
    if (called)
        ask_action(dc, it, slots, n_slots, &a, acts, &ans, &act);
    if (o->json) {
        json_t *j = result_json(dc, &d, &ans, slots, n_slots, o->explain ? text : NULL);
        if (called)
            json_object_set_new(j, "action", action_json(it, &act));
        json_object_set_new(j, "locale", json_string(locale));
        if (ans.ask)
            json_object_set_new(j, "asking", json_true());
        char *s = json_dumps(j, JSON_COMPACT);
        puts(s ? s : "{}");
        free(s);
        json_decref(j);
        json_decref(act.result);
        return 0;
    }
    print_decision(rs, &d, &ans, slots, n_slots);
    if (called)
        print_action(it, &act, o->explain);
    if (o->explain)
        print_explain(dc, &d, text);
    json_decref(act.result);
    return 0;
}

static int cmd_ask(struct session *s)
{
    if (s->o.n_args != 1)
        return cli_fail("ask needs exactly one message (quote it)");
    struct actions *acts = NULL;
    int rc = cli_actions_open(s->o.actions, s->o.stubs, s->o.n_stubs, &acts);
    if (rc == 0)
        rc = ask_one(&s->dc, &s->o, acts, s->o.args[0]);
    actions_free(acts);
    return rc;
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
        build_attrs(o, o->locale ? o->locale : text_guess_locale(line, len, NULL), av, &a);
        struct decision d;
        if (decide_message(&s->dc, line, len, &a, &d) < 0) {
            invalid++;
            route_print(o, NULL, "invalid", 0);
            continue;
        }
        const struct rules_intent *it = chosen(s->rs, &d);
        const char *name = it ? it->name : d.source == DECIDE_KB ? d.article.id : NULL;
        route_print(o, name, decide_source_name(d.source), d.confidence);
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

/* ---- kefu learn ---- */

static int cmd_learn(struct session *s)
{
    const struct opts *o = &s->o;
    if (o->n_args != 1)
        return cli_fail("learn needs one labelled file (text<TAB>label per line)");
    struct eval_tsv t;
    int rc = eval_tsv_load(o->args[0], 2, stderr, &t);
    if (rc < 0)
        return cli_fail("cannot read '%s': %s", o->args[0], kefu_strerror(rc));
    FILE *out = o->out ? fopen(o->out, "w") : stdout;
    if (!out) {
        eval_tsv_release(&t);
        return cli_fail("cannot write '%s'", o->out);
    }
    struct eval_learn_stats st;
    rc = eval_learn(&t, o->args[0], out, stderr, &st);
    if (o->out && fclose(out) != 0 && rc == 0)
        rc = KEFU_EIO;
    if (rc == 0)
        fprintf(stderr,
                "kefu: %zu intents, %zu examples from %s (%zu oos lines skipped, %zu repeated, %zu under two "
                "labels, "
                "%zu malformed)\n",
                st.intents, st.examples, o->args[0], st.oos, st.duplicates, st.conflicts, t.bad);
    eval_tsv_release(&t);
    if (rc < 0)
        return cli_fail("cannot learn from '%s': %s", o->args[0], kefu_strerror(rc));
    return st.intents ? 0 : 1;
}

/* ---- kefu eval ---- */

/* Draws a progress bar on stderr (only called when it is a terminal). */
static void progress_bar(void *ctx, size_t done, size_t total)
{
    size_t *last = ctx, pct = total ? done * 100 / total : 100;
    if (pct == *last && done != total)
        return;
    *last = pct;
    char bar[41];
    memset(bar, '.', 40);
    memset(bar, '#', pct * 40 / 100);
    bar[40] = 0;
    fprintf(stderr, "\r[%s] %zu/%zu%s", bar, done, total, done == total ? "\n" : "");
}

/* Imports the FAQ table at path into a new in-memory kb through a
 * temporary directory of articles; *kb is new. */
static int faq_kb(const char *path, struct kb **kb)
{
    struct eval_tsv faq;
    int rc = eval_tsv_load(path, 3, stderr, &faq);
    if (rc < 0)
        return cli_fail("cannot read '%s': %s", path, kefu_strerror(rc));
    char dir[] = "/tmp/kefu-faq-XXXXXX";
    if (!mkdtemp(dir)) {
        eval_tsv_release(&faq);
        return cli_fail("cannot create a temporary directory");
    }
    rc = eval_faq_write(&faq, dir);
    struct rules_diag d;
    rules_diag_init(&d);
    struct kb_import_stats st = {0};
    if (rc == 0 && (rc = kb_open(":memory:", 0, kb)) == 0)
        rc = kb_import(*kb, dir, &d, NULL, NULL, &st);
    if (d.n)
        rules_diag_print(stderr, &d);
    rules_diag_release(&d);
    eval_faq_remove(&faq, dir);
    if (rc == 0)
        fprintf(stderr, "kefu: %zu articles from %s (%zu malformed lines, %zu not imported)\n",
                st.added + st.updated, path, faq.bad, st.failed);
    eval_tsv_release(&faq);
    return rc < 0 ? cli_fail("cannot build a knowledge base from '%s': %s", path, kefu_strerror(rc)) : 0;
}

static int cmd_eval(struct session *s)
{
    const struct opts *o = &s->o;
    if (o->n_args != 1)
        return cli_fail("eval needs one labelled file (text<TAB>label per line)");
    if (o->faq && faq_kb(o->faq, &s->dc.kb) != 0)
        return 2;
    struct eval_tsv t;
    int rc = eval_tsv_load(o->args[0], 2, stderr, &t);
    if (rc < 0)
        return cli_fail("cannot read '%s': %s", o->args[0], kefu_strerror(rc));
    struct eval_report r;
    size_t last = SIZE_MAX;
    rc = eval_run(&s->dc, &t, o->faq != NULL, o->sweep, isatty(2) ? progress_bar : NULL, &last, o->args[0],
                  o->wrong ? (o->json ? stderr : stdout) : NULL, &r);
    if (rc == 0 && o->json)
        rc = eval_report_json(stdout, o->args[0], &r);
    else if (rc == 0)
        eval_report_print(stdout, o->args[0], &r);
    eval_report_release(&r);
    eval_tsv_release(&t);
    return rc < 0 ? cli_fail("cannot evaluate '%s': %s", o->args[0], kefu_strerror(rc)) : 0;
}

/* kefu's own version; the libraries' come from the copies loaded at run time. */
#define KEFU_VERSION "0.1.0"

/* Ends a version line: "(built with V)" when the headers kefu was compiled
 * with named another version than the library loaded now. */
static void built_with(int same, const char *built)
{
    if (!same)
        printf(" (built with %s)", built);
    putchar('\n');
}

/* `kefu --version`: kefu's version, then one line per library as linked now. */
static int print_version(void)
{
    char pcre[64] = "", built[64];
    uint32_t jit = 0;
    pcre2_config(PCRE2_CONFIG_VERSION, pcre);
    pcre2_config(PCRE2_CONFIG_JIT, &jit);
    printf("kefu %s\n", KEFU_VERSION);
    snprintf(built, sizeof built, "%d.%02d", PCRE2_MAJOR, PCRE2_MINOR);
    printf("PCRE2 %s (%s)", pcre, jit ? "JIT" : "no JIT");
    built_with(strncmp(pcre, built, strlen(built)) == 0, built);
    snprintf(built, sizeof built, "%x.%x.%x", (unsigned)(MHD_VERSION >> 24) & 0xff,
             (unsigned)(MHD_VERSION >> 16) & 0xff, (unsigned)(MHD_VERSION >> 8) & 0xff);
    printf("libmicrohttpd %s", MHD_get_version());
    built_with(strcmp(MHD_get_version(), built) == 0, built);
    printf("SQLite %s (FTS5 %s)", sqlite3_libversion(),
           sqlite3_compileoption_used("ENABLE_FTS5") ? "on" : "off");
    built_with(strcmp(sqlite3_libversion(), SQLITE_VERSION) == 0, SQLITE_VERSION);
    printf("jansson %s", jansson_version_str());
    built_with(strcmp(jansson_version_str(), JANSSON_VERSION) == 0, JANSSON_VERSION);
    printf("%s", OpenSSL_version(OPENSSL_VERSION));
    built_with(strcmp(OpenSSL_version(OPENSSL_VERSION), OPENSSL_VERSION_TEXT) == 0, OPENSSL_VERSION_TEXT);
    const char *curl = httpc_version(); /* "libcurl 7.88.1 (OpenSSL/3.0.x)" */
    printf("%s", curl);
    built_with(strncmp(curl + 8, LIBCURL_VERSION " ", strlen(LIBCURL_VERSION) + 1) == 0, LIBCURL_VERSION);
    return 0;
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
          "  serve               run the HTTP API server (see kefu serve --help)\n"
          "  erase CUSTOMER      erase one customer's conversations and profile (--data DIR)\n"
          "  store backup FILE   copy the conversations database to FILE while it runs (--data DIR)\n"
          "  store copy          move the conversations into PostgreSQL (--from DIR --to URI)\n"
          "  webhook list|replay the webhook outbox: events waiting or dead; send dead ones again\n"
          "  agent add|list|...  agent accounts: a token shown once, disable, rotate (--data DIR)\n"
          "  demo-orders         the demo shop's order system for the rules' actions (make run starts it)\n"
          "  test [FILES|DIRS]   run conversation tests (default rules/tests/)\n"
          "  learn FILE.tsv      turn labelled lines (text<TAB>label) into example-only rules\n"
          "  eval FILE.tsv       route labelled lines and report accuracy, automation, precision\n\n"
          "Every command takes --rules DIR (default rules/) and --help; kefu --version prints the\n"
          "versions of kefu and of the libraries it runs with.\n",
          f);
}

static const struct command {
    const char *name;
    const char *flags; /* the options it accepts, space-separated with spaces around */
    int routes;        /* 1: load the rules, a scratch, examples and kb before run(); 2: the same for eval */
    int (*run)(struct session *s);
    const char *usage;
} commands[] = {
    {"check", " --rules --strict --quiet -q --actions ", 0, cmd_check,
     "usage: kefu check [--strict] [--quiet] [--actions FILE] [RULES_DIR | FILE.rules]\n\n"
     "With --actions (the server's actions configuration), every 'action NAME' of the\n"
     "rules must be configured there.\n"
     "Parses and compiles the rules, lints them (duplicates, unknown or unused concepts,\n"
     "shadowed patterns, dangerous regexes) and routes every example line, which must\n"
     "reach its own intent. Exits 1 on errors (and on warnings with --strict).\n"
     "--strict also JIT-compiles every regex once, to warn about those PCRE2's JIT\n"
     "refuses (the server JIT-compiles a regex only once it has run a few times)."},
    {"ask", " --rules --json --explain --locale --channel --tier --attr --db --actions --stub" STAGE_FLAGS, 1,
     cmd_ask,
     "usage: kefu ask [--explain] [--json] [--locale L] [--channel C] [--tier T] [--attr K=V]...\n"
     "                [--rules DIR] [--db PATH] [--actions FILE] [--stub NAME=JSON|fail]... TEXT\n\n"
     "An intent with an action calls it once its slots are filled: the endpoint of\n"
     "--actions FILE, or the answer --stub gives (fail: the call fails); without either\n"
     "the call fails and the intent's 'on failed' line (or a handoff) answers.\n"
     "Shows what kefu would answer to TEXT and, with --explain, why: the normalized text,\n"
     "the literals the prefilter found, then every stage of the decision (rules, examples,\n"
     "articles, clarify) with each candidate's confidence, threshold and why it was or was\n"
     "not taken. --attr sets any conversation attribute a condition reads (hours=closed,\n"
     "misses=2, previous_intent=order.track, customer.plan=gold). Articles are searched in\n"
     "--db PATH (default data/kb.db; skipped with a note when missing). --no-examples,\n"
     "--no-classifier and --no-kb turn stages off; --example-min, --example-lead,\n"
     "--classify-min, --classify-agree, --veto-max, --veto-known, --veto-none,\n"
     "--vote-veto-max, --kb-min and --kb-lead set their thresholds (docs/routing.md).\n"
     "The classifier is trained from the example lines on each run, or cached in\n"
     "$KEFU_MODEL_DIR when set."},
    {"route", " --rules --json --locale --channel --tier --attr --db" STAGE_FLAGS, 1, cmd_route,
     "usage: kefu route [--json] [--locale L] [--attr K=V]... [--rules DIR] [--db PATH] < messages.txt\n\n"
     "Reads one message per line on stdin and writes one decision per line:\n"
     "intent<TAB>source<TAB>confidence (intent '-' when nothing answers; the article id\n"
     "for source kb), or one JSON object per line with --json. Takes the stage options\n"
     "of kefu ask. For batch checks and benchmarks."},
    {"serve", NULL /* serve parses its own flags */, 0, cmd_serve, NULL},
    {"learn", " -o ", 0, cmd_learn,
     "usage: kefu learn FILE.tsv [-o OUT.rules]\n\n"
     "Turns labelled lines (text<TAB>label) into rules: one intent per label, made only\n"
     "of example lines and a placeholder reply, so that example-based matching routes to\n"
     "it. Labels become intent names (AddToPlaylist -> add_to_playlist, alarm/set_alarm ->\n"
     "alarm.set_alarm); the label 'oos' (out of scope) is skipped; a text under two labels\n"
     "is dropped. Malformed lines are reported as file:line. Writes to stdout without -o."},
    {"eval", " --rules --json --sweep --wrong --faq --db" STAGE_FLAGS, 2, cmd_eval,
     "usage: kefu eval [--rules DIR|FILE.rules] [--json] [--sweep] [--wrong] FILE.tsv\n"
     "       kefu eval --faq FAQ.tsv [--json] [--sweep] QUERIES.tsv\n\n"
     "Routes every labelled line (text<TAB>label; label 'oos' = out of scope) through the\n"
     "decision policy and reports accuracy (top-1 right, answered or not), automation\n"
     "(in-scope lines answered by a rule, examples or an article), precision (automatic\n"
     "answers that are right), oos handoff (oos lines not answered) and the same per label.\n"
     "--faq imports FAQ.tsv (id<TAB>question<TAB>answer) into a temporary knowledge base\n"
     "and scores article retrieval for QUERIES.tsv (text<TAB>faq_id): top-1, top-3,\n"
     "automation, precision. --sweep adds the automation/precision curve as the example\n"
     "lead moves from 0 to 0.5 (with --faq: the article lead from 0 to 1). --example-min,\n"
     "--example-lead, --kb-min and --kb-lead set the thresholds (docs/routing.md); --db\n"
     "PATH also searches an articles database; --json prints one JSON object. --wrong\n"
     "first lists every wrong automatic answer (and every answered oos line) as\n"
     "file:line: want LABEL, got NAME. A progress bar is drawn on stderr when it is a terminal."},
};

/* 1 if some intent of rs has example lines. */
static int has_examples(const struct rules *rs)
{
    for (size_t i = 0; i < rules_count(rs); i++)
        if (rules_intent(rs, i)->n_examples)
            return 1;
    return 0;
}

/* Opens the articles database at path read-only; a missing file skips
 * the kb stage (with a note when note is set). */
static int open_kb(const char *path, int note, struct kb **kb)
{
    *kb = NULL;
    if (access(path, R_OK) != 0) {
        if (note)
            fprintf(stderr,
                    "kefu: no knowledge base at '%s'; articles are not searched (kefu kb import builds it)\n",
                    path);
        return 0;
    }
    int rc = kb_open(path, 1, kb);
    if (rc < 0)
        return cli_fail("cannot open the knowledge base '%s': %s", path, kefu_strerror(rc));
    return 0;
}

/* Loads what a routing command needs: rules, scratch, line buffer, the
 * examples of the rules and (for ask, route and chat) the kb. */
/* Trains the classifier of s->rs, or loads it from $KEFU_MODEL_DIR (the
 * server keeps its models in DATA/models); none when fewer than two intents
 * have examples. */
static int open_classifier(struct session *s)
{
    struct classify_opts co;
    classify_opts_default(&co);
    const char *dir = getenv("KEFU_MODEL_DIR");
    co.cache_dir = dir && *dir ? dir : NULL;
    int rc = classify_build(s->rs, &co, &s->clf, NULL);
    s->dc.clf = s->clf;
    return rc;
}

static int session_open(struct session *s, const struct command *c)
{
    struct opts *o = &s->o;
    int rc;
    if (c->routes == 2 && o->faq && !o->rules_set) { /* kefu eval --faq: articles only */
        struct rules_diag d;
        rules_diag_init(&d);
        rc = rules_load_string("(no rules)", "", &d, &s->rs);
        rules_diag_release(&d);
    } else {
        rc = load(o->rules, &s->rs, 1);
    }
    if (rc < 0)
        return 2;
    s->sc = router_scratch_create();
    s->line = kefu_malloc(MAX_LINE);
    if (!s->sc || !s->line)
        return cli_fail("out of memory");
    s->dc = (struct decide_ctx){.rs = s->rs, .sc = s->sc};
    decide_policy_default(&s->dc.policy);
    double *th[N_TH] = {&s->dc.policy.example_min,  &s->dc.policy.example_lead,   &s->dc.policy.kb_min,
                        &s->dc.policy.kb_lead,      &s->dc.policy.classify_min,   &s->dc.policy.veto_max,
                        &s->dc.policy.veto_known,   &s->dc.policy.classify_agree, &s->dc.policy.veto_none,
                        &s->dc.policy.vote_veto_max};
    for (int k = 0; k < N_TH; k++)
        if (o->th[k] >= 0)
            *th[k] = o->th[k];
    s->dc.policy.use_examples = !o->no_examples;
    s->dc.policy.use_kb = !o->no_kb;
    s->dc.policy.all_stages = o->explain;
    if (!o->no_examples && has_examples(s->rs) && (rc = kb_examples_build(s->rs, &s->dc.ex)) < 0)
        return cli_fail("cannot index the example lines: %s", kefu_strerror(rc));
    s->dc.policy.use_classifier = !o->no_classifier;
    if (!o->no_classifier && (rc = open_classifier(s)) < 0)
        return cli_fail("cannot train the classifier: %s", kefu_strerror(rc));
    if (o->no_kb || (c->routes == 2 && !o->db))
        return 0; /* kefu eval searches articles only with --db or --faq */
    return open_kb(o->db ? o->db : DEFAULT_DB, c->run != cmd_route, &s->dc.kb) ? 2 : 0;
}

static void session_close(struct session *s)
{
    classify_unref(s->clf);
    kb_close(s->dc.kb);
    kb_examples_free(s->dc.ex);
    free(s->line);
    router_scratch_free(s->sc);
    rules_unref(s->rs);
}

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
    rc = session_open(&s, c);
    if (rc == 0)
        rc = c->run(&s);
    session_close(&s);
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
    if (strcmp(cmd, "--version") == 0)
        return print_version();
    if (strcmp(cmd, "kb") == 0) /* subcommands with their own options: cli_kb.c */
        return cli_kb(argc - 1, argv + 1);
    if (strcmp(cmd, "test") == 0) /* conversation tests: cli_test.c */
        return cli_test(argc - 1, argv + 1);
    if (strcmp(cmd, "chat") == 0) /* a conversation through dialog: cli_chat.c */
        return cli_chat(argc - 1, argv + 1);
    if (strcmp(cmd, "report") == 0) /* cli_report.c */
        return cli_report(argc - 1, argv + 1);
    if (strcmp(cmd, "erase") == 0) /* one customer's data: cli_erase.c */
        return cli_erase(argc - 1, argv + 1);
    if (strcmp(cmd, "store") == 0) /* store backup: cli_backup.c */
        return cli_store(argc - 1, argv + 1);
    if (strcmp(cmd, "webhook") == 0) /* the webhook outbox: cli_webhook.c */
        return cli_webhook(argc - 1, argv + 1);
    if (strcmp(cmd, "agent") == 0) /* agent accounts: cli_agent.c */
        return cli_agent(argc - 1, argv + 1);
    if (strcmp(cmd, "demo-orders") == 0) /* the demo shop's order system: demo_orders.c */
        return demo_orders_main(argc - 1, argv + 1);
    for (size_t k = 0; k < sizeof commands / sizeof commands[0]; k++)
        if (strcmp(cmd, commands[k].name) == 0)
            return run_command(&commands[k], argc - 1, argv + 1);
    fprintf(stderr, "kefu: unknown command '%s' (see kefu --help)\n", cmd);
    return 2;
}
