/* redline.c — the red-line file and the windows it watches.
 * The file is line-oriented like the rules: a block starts at column 1
 * with `redline NAME` or `escalate NAME`, its properties are indented
 * lines `KEY VALUE`; `#` starts a comment. Each red line keeps, per group
 * (one per value of its `per` label, or one), a ring of RL_BUCKETS time
 * buckets about window/60 seconds wide; a sample lands in the bucket of
 * its second, and a window's value is the count, sum and maximum of the
 * buckets inside it. Evaluating compares the value with the threshold and
 * reports each change of state once. */
#include "redline.h"

#include "kefu.h"
#include "metrics.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define RL_BUCKETS 64
#define RL_GROUPS  32 /* groups of one line; samples of further values are not counted */
#define RL_NAME    32

static const char *const metric_names[RL_N_METRICS] = {
    [RL_QUEUE_WAIT] = "queue_wait",
    [RL_FIRST_RESPONSE] = "agent_first_response",
    [RL_BOT_RESPONSE] = "bot_response",
    [RL_AUTOMATION] = "automation_rate",
    [RL_HANDOFF] = "handoff_rate",
    [RL_UNANSWERED] = "unanswered_share",
    [RL_CSAT] = "csat",
};
static const char *const label_names[3] = {"channel", "queue", "tier"};

struct bucket {
    long long idx; /* at / width of the samples it holds */
    long n;
    double sum, max;
};

struct group {
    char key[RL_NAME];
    struct bucket b[RL_BUCKETS];
    int breached;
    double value;
    long samples;
    long long since; /* when it crossed */
};

struct line {
    char name[RL_NAME];
    int metric;
    int stat_max;           /* 1: the largest sample, 0: the average */
    int per;                /* index into label_names, -1: one group */
    char where[3][RL_NAME]; /* filters, "" = any */
    long long window_s, width;
    double threshold;
    int is_min; /* 1: crossed below threshold (min), 0: above (max) */
    long min_samples;
    struct group *g; /* RL_GROUPS, allocated with the line */
    int n_g;
};

struct redline {
    pthread_mutex_t lock;
    struct line *v;
    size_t n;
    struct redline_escalation *e;
    size_t n_e;
};

const char *redline_metric_name(int metric)
{
    return metric >= 0 && metric < RL_N_METRICS ? metric_names[metric] : "?";
}

/* ---- parsing ---- */

struct parser {
    const char *file;
    struct rules_diag *diag;
    int line;
    const char *src;  /* the current line, NUL-terminated copy */
    const char *base; /* the same without its comment: what tokens point into */
    struct redline *r;
    int kind;        /* 0 none, 1 redline, 2 escalate, 3 a block whose header was wrong (skipped) */
    int header_line; /* of the current block */
    int has_metric, has_window, has_threshold, has_level;
};

static void perr(struct parser *p, const char *at, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void perr(struct parser *p, const char *at, const char *fmt, ...)
{
    char msg[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    int col = 1;
    size_t off = at >= p->base ? (size_t)(at - p->base) : 0;
    for (size_t i = 0; i < off && p->src[i]; i++)
        if (((unsigned char)p->src[i] & 0xc0) != 0x80)
            col++;
    rules_diag_add(p->diag, RULES_ERROR, p->file, p->line, col, p->src, "%s", msg);
}

static int name_ok(const char *s, size_t n)
{
    if (n == 0 || n >= RL_NAME)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!islower((unsigned char)s[i]) && !isdigit((unsigned char)s[i]) && !strchr("_.-", s[i]))
            return 0;
    return 1;
}

/* Reads a duration "90", "90s", "5m", "2h", "1d" into seconds; 0 on error. */
static long long duration(const char *s, size_t n)
{
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    size_t used = (size_t)(end - s);
    if (used == 0 || errno || v <= 0 || v > 365LL * 86400)
        return 0;
    if (used == n)
        return v;
    if (used + 1 != n)
        return 0;
    switch (s[used]) {
    case 's': return v;
    case 'm': return v * 60;
    case 'h': return v * 3600;
    case 'd': return v * 86400;
    default: return 0;
    }
}

/* Reads a share "80%" or "0.8" into 0..1; -1 on error. */
static double share(const char *s, size_t n)
{
    char buf[32], *end;
    if (n == 0 || n >= sizeof buf)
        return -1;
    memcpy(buf, s, n);
    buf[n] = 0;
    int pct = buf[n - 1] == '%';
    if (pct)
        buf[n - 1] = 0;
    double v = strtod(buf, &end);
    if (end == buf || *end || !isfinite(v))
        return -1;
    if (pct)
        v /= 100;
    return v >= 0 && v <= 1 ? v : -1;
}

static int metric_is_time(int m)
{
    return m == RL_QUEUE_WAIT || m == RL_FIRST_RESPONSE || m == RL_BOT_RESPONSE;
}

static int label_index(const char *s, size_t n)
{
    for (int k = 0; k < 3; k++)
        if (strlen(label_names[k]) == n && memcmp(label_names[k], s, n) == 0)
            return k;
    return -1;
}

/* The token at *s (skipping blanks): start in *t, length returned, *s after it. */
static size_t token(const char **s, const char **t)
{
    while (**s == ' ' || **s == '\t')
        (*s)++;
    *t = *s;
    while (**s && **s != ' ' && **s != '\t')
        (*s)++;
    return (size_t)(*s - *t);
}

/* Reads "KEY = VALUE" (spaces optional) after where; fills idx and value. */
static int parse_where(struct parser *p, const char *s, char (*where)[RL_NAME])
{
    while (*s == ' ' || *s == '\t')
        s++;
    const char *k = s;
    while (*s && *s != '=' && *s != ' ' && *s != '\t')
        s++;
    int idx = label_index(k, (size_t)(s - k));
    if (idx < 0) {
        perr(p, k, "where takes channel, queue or tier, not '%.*s'", (int)(s - k), k);
        return -1;
    }
    while (*s == ' ' || *s == '\t')
        s++;
    if (*s != '=') {
        perr(p, s, "expected '=' after '%s'", label_names[idx]);
        return -1;
    }
    s++;
    const char *v;
    size_t n = token(&s, &v);
    const char *rest;
    if (token(&s, &rest)) {
        perr(p, rest, "unexpected '%s' after the value", rest);
        return -1;
    }
    if (n == 0 || n >= RL_NAME) {
        perr(p, v, "where %s needs a value of 1-31 bytes", label_names[idx]);
        return -1;
    }
    memcpy(where[idx], v, n);
    where[idx][n] = 0;
    return 0;
}

static int grow(void **v, size_t n, size_t size)
{
    void *nv = kefu_realloc(*v, (n + 1) * size);
    if (!nv)
        return KEFU_ENOMEM;
    *v = nv;
    memset((char *)nv + n * size, 0, size);
    return 0;
}

static int exists(const struct redline *r, const char *name, size_t n)
{
    for (size_t i = 0; i < r->n; i++)
        if (strlen(r->v[i].name) == n && memcmp(r->v[i].name, name, n) == 0)
            return 1;
    for (size_t i = 0; i < r->n_e; i++)
        if (strlen(r->e[i].name) == n && memcmp(r->e[i].name, name, n) == 0)
            return 1;
    return 0;
}

/* Reports what the block that just ended lacks. */
static void close_block(struct parser *p)
{
    char src[160];
    snprintf(src, sizeof src, "%s", p->kind == 1 ? p->r->v[p->r->n - 1].name : "");
    if (p->kind == 1) {
        struct line *l = &p->r->v[p->r->n - 1];
        const char *miss = !p->has_metric      ? "metric"
                           : !p->has_window    ? "window"
                           : !p->has_threshold ? "max or min"
                                               : NULL;
        if (miss)
            rules_diag_add(p->diag, RULES_ERROR, p->file, p->header_line, 1, NULL, "red line '%s' has no %s",
                           l->name, miss);
        else if (l->stat_max && !metric_is_time(l->metric))
            rules_diag_add(p->diag, RULES_ERROR, p->file, p->header_line, 1, NULL,
                           "red line '%s': stat max needs a time metric", l->name);
    } else if (p->kind == 2 && !p->has_level) {
        rules_diag_add(p->diag, RULES_ERROR, p->file, p->header_line, 1, NULL, "escalate '%s' has no level",
                       p->r->e[p->r->n_e - 1].name);
    }
    p->kind = 0;
}

static int open_block(struct parser *p, const char *kw, size_t kn, const char *s)
{
    p->kind = 3; /* until the header proves right: its properties are skipped */
    const char *name;
    size_t n = token(&s, &name);
    const char *rest;
    if (!n) {
        perr(p, name, "%.*s needs a name", (int)kn, kw);
        return 0;
    }
    if (!name_ok(name, n)) {
        perr(p, name, "name must be 1-31 characters of a-z, 0-9, '_', '.', '-'");
        return 0;
    }
    if (exists(p->r, name, n)) {
        perr(p, name, "'%.*s' is defined twice", (int)n, name);
        return 0;
    }
    if (token(&s, &rest)) {
        perr(p, rest, "unexpected '%s' after the name", rest);
        return 0;
    }
    p->header_line = p->line;
    p->has_metric = p->has_window = p->has_threshold = p->has_level = 0;
    if (kn == 7 && memcmp(kw, "redline", 7) == 0) {
        if (grow((void **)&p->r->v, p->r->n, sizeof *p->r->v) < 0)
            return KEFU_ENOMEM;
        struct line *l = &p->r->v[p->r->n++];
        memcpy(l->name, name, n);
        l->per = -1;
        l->min_samples = 1;
        p->kind = 1;
    } else {
        if (grow((void **)&p->r->e, p->r->n_e, sizeof *p->r->e) < 0)
            return KEFU_ENOMEM;
        struct redline_escalation *e = &p->r->e[p->r->n_e++];
        memcpy(e->name, name, n);
        e->share = 0.8;
        e->priority = 3;
        p->kind = 2;
    }
    return 0;
}

static const char *const priority_names[] = {"low", "normal", "high", "urgent"};

static void line_prop(struct parser *p, struct line *l, const char *key, size_t kn, const char *v, size_t vn,
                      const char *s)
{
#define IS(w) (kn == strlen(w) && memcmp(key, w, kn) == 0)
    if (IS("metric")) {
        p->has_metric = -1; /* named, if wrongly: its threshold is not judged, nor its absence */
        for (int m = 0; m < RL_N_METRICS; m++)
            if (strlen(metric_names[m]) == vn && memcmp(metric_names[m], v, vn) == 0) {
                l->metric = m;
                p->has_metric = 1;
            }
        if (p->has_metric < 0)
            perr(p, v,
                 "unknown metric '%.*s' (queue_wait, agent_first_response, bot_response, automation_rate, "
                 "handoff_rate, unanswered_share, csat)",
                 (int)vn, v);
    } else if (IS("stat")) {
        if (vn == 3 && memcmp(v, "avg", 3) == 0)
            l->stat_max = 0;
        else if (vn == 3 && memcmp(v, "max", 3) == 0)
            l->stat_max = 1;
        else
            perr(p, v, "stat takes avg or max, not '%.*s'", (int)vn, v);
    } else if (IS("per")) {
        if ((l->per = label_index(v, vn)) < 0)
            perr(p, v, "per takes channel, queue or tier, not '%.*s'", (int)vn, v);
    } else if (IS("where")) {
        parse_where(p, v, l->where);
    } else if (IS("window")) {
        if (!(l->window_s = duration(v, vn)))
            perr(p, v, "window must be a duration such as 30s, 5m, 1h or 1d, not '%.*s'", (int)vn, v);
        p->has_window = l->window_s > 0;
    } else if (IS("max") || IS("min")) {
        if (!p->has_metric) {
            perr(p, key, "give the metric before its threshold");
            return;
        }
        p->has_threshold = 1;
        if (p->has_metric < 0)
            return;
        l->is_min = IS("min");
        p->has_threshold = 1;
        if (metric_is_time(l->metric)) {
            long long d = duration(v, vn);
            if (!d)
                perr(p, v, "%s of %s must be a duration such as 30s or 30m, not '%.*s'",
                     l->is_min ? "min" : "max", metric_names[l->metric], (int)vn, v);
            l->threshold = (double)d;
        } else if (l->metric == RL_CSAT) {
            char *end, buf[32];
            snprintf(buf, sizeof buf, "%.*s", (int)(vn < 31 ? vn : 31), v);
            l->threshold = strtod(buf, &end);
            if (end == buf || *end || l->threshold < 1 || l->threshold > 5)
                perr(p, v, "csat threshold must be a rating from 1 to 5, not '%.*s'", (int)vn, v);
        } else if ((l->threshold = share(v, vn)) < 0) {
            perr(p, v, "%s threshold must be a share such as 80%% or 0.8, not '%.*s'",
                 metric_names[l->metric], (int)vn, v);
        }
    } else if (IS("samples")) {
        char *end;
        l->min_samples = strtol(v, &end, 10);
        if (end != v + vn || l->min_samples < 1 || l->min_samples > 1000000)
            perr(p, v, "samples must be a whole number from 1 to 1000000, not '%.*s'", (int)vn, v);
    } else {
        perr(p, key, "unknown red-line property '%.*s' (metric, stat, per, where, window, max, min, samples)",
             (int)kn, key);
        return;
    }
    const char *rest;
    if (!IS("where") && token(&s, &rest))
        perr(p, rest, "unexpected '%s' after the value", rest);
#undef IS
}

static void escalate_prop(struct parser *p, struct redline_escalation *e, const char *key, size_t kn,
                          const char *v, size_t vn, const char *s)
{
#define IS(w) (kn == strlen(w) && memcmp(key, w, kn) == 0)
    if (IS("where")) {
        char where[3][RL_NAME];
        memcpy(where[0], e->channel, RL_NAME);
        memcpy(where[1], e->queue, RL_NAME);
        memcpy(where[2], e->tier, RL_NAME);
        if (parse_where(p, v, where) == 0) {
            memcpy(e->channel, where[0], RL_NAME);
            memcpy(e->queue, where[1], RL_NAME);
            memcpy(e->tier, where[2], RL_NAME);
        }
        return;
    } else if (IS("level")) {
        if (!(e->level_s = duration(v, vn)))
            perr(p, v, "level must be a duration such as 30m, not '%.*s'", (int)vn, v);
        p->has_level = e->level_s > 0;
    } else if (IS("at")) {
        if ((e->share = share(v, vn)) <= 0)
            perr(p, v, "at must be a share of the level above 0 such as 80%%, not '%.*s'", (int)vn, v);
    } else if (IS("queue")) {
        if (!name_ok(v, vn))
            perr(p, v, "queue must be 1-31 characters of a-z, 0-9, '_', '.', '-'");
        else
            snprintf(e->to_queue, sizeof e->to_queue, "%.*s", (int)vn, v);
    } else if (IS("priority")) {
        int k = 0;
        while (k < 4 && !(strlen(priority_names[k]) == vn && memcmp(priority_names[k], v, vn) == 0))
            k++;
        if (k == 4)
            perr(p, v, "priority takes low, normal, high or urgent, not '%.*s'", (int)vn, v);
        else
            e->priority = k;
    } else {
        perr(p, key, "unknown escalate property '%.*s' (where, level, at, queue, priority)", (int)kn, key);
        return;
    }
    const char *rest;
    if (token(&s, &rest))
        perr(p, rest, "unexpected '%s' after the value", rest);
#undef IS
}

/* Parses one line (comment stripped); returns 0 or KEFU_ENOMEM. */
static int parse_line(struct parser *p, const char *s)
{
    int indented = *s == ' ' || *s == '\t';
    const char *key;
    size_t kn = token(&s, &key);
    if (!kn)
        return 0;
    if (!indented) {
        if (p->kind == 1 || p->kind == 2)
            close_block(p);
        p->kind = 0;
        if ((kn == 7 && memcmp(key, "redline", 7) == 0) || (kn == 8 && memcmp(key, "escalate", 8) == 0))
            return open_block(p, key, kn, s);
        perr(p, key, "expected 'redline NAME' or 'escalate NAME', not '%.*s'", (int)kn, key);
        return 0;
    }
    if (!p->kind) {
        perr(p, key, "a property outside a block: start one with 'redline NAME' or 'escalate NAME'");
        return 0;
    }
    if (p->kind == 3)
        return 0;
    const char *v;
    const char *after = s;
    size_t vn = token(&s, &v);
    if (!vn) {
        perr(p, after, "'%.*s' needs a value", (int)kn, key);
        return 0;
    }
    if (kn == 5 && memcmp(key, "where", 5) == 0)
        v = after; /* where reads the rest itself */
    if (p->kind == 1)
        line_prop(p, &p->r->v[p->r->n - 1], key, kn, v, vn, s);
    else
        escalate_prop(p, &p->r->e[p->r->n_e - 1], key, kn, v, vn, s);
    return 0;
}

static int parse(const char *name, const char *src, struct rules_diag *diag, struct redline *r)
{
    struct parser p = {.file = name, .diag = diag, .r = r};
    int errors = diag->errors, rc = 0;
    char buf[1024];
    for (const char *s = src; *s && rc == 0;) {
        const char *nl = strchr(s, '\n');
        size_t n = nl ? (size_t)(nl - s) : strlen(s);
        p.line++;
        if (n >= sizeof buf) {
            p.src = p.base = "";
            perr(&p, p.src, "line longer than %zu bytes", sizeof buf - 1);
        } else {
            memcpy(buf, s, n);
            buf[n] = 0;
            if (n && buf[n - 1] == '\r')
                buf[n - 1] = 0;
            p.src = buf;
            char line[1024];
            memcpy(line, buf, n + 1);
            for (char *c = line; *c; c++)
                if (*c == '#' && (c == line || c[-1] == ' ' || c[-1] == '\t')) {
                    *c = 0;
                    break;
                }
            p.base = line;
            rc = parse_line(&p, line);
        }
        s += n + (nl != NULL);
    }
    if (rc == 0 && (p.kind == 1 || p.kind == 2))
        close_block(&p);
    if (rc < 0)
        return rc;
    return diag->errors > errors ? KEFU_ESYNTAX : 0;
}

/* Sizes each line's buckets and gives a line without per its one group. */
static int prepare(struct redline *r)
{
    for (size_t i = 0; i < r->n; i++) {
        struct line *l = &r->v[i];
        l->width = (l->window_s + RL_BUCKETS / 2 - 1) / (RL_BUCKETS / 2);
        if (l->width < 1)
            l->width = 1;
        if (!(l->g = kefu_calloc(RL_GROUPS, sizeof *l->g)))
            return KEFU_ENOMEM;
        if (l->per < 0)
            l->n_g = 1;
    }
    return 0;
}

int redline_load_string(const char *name, const char *src, struct rules_diag *diag, struct redline **out)
{
    *out = NULL;
    struct redline *r = kefu_calloc(1, sizeof *r);
    if (!r)
        return KEFU_ENOMEM;
    pthread_mutex_init(&r->lock, NULL);
    int rc = parse(name, src, diag, r);
    if (rc == 0)
        rc = prepare(r);
    if (rc < 0) {
        redline_free(r);
        return rc;
    }
    *out = r;
    return 0;
}

int redline_load(const char *path, struct rules_diag *diag, struct redline **out)
{
    *out = NULL;
    FILE *f = fopen(path, "rb");
    if (!f) {
        rules_diag_add(diag, RULES_ERROR, path, 0, 0, NULL, "cannot read the red-line file");
        return KEFU_EIO;
    }
    char *src = NULL;
    size_t n = 0, cap = 0;
    int rc = 0;
    for (;;) {
        if (n + 4096 + 1 > cap) {
            char *ns = kefu_realloc(src, cap = (n + 4096 + 1) * 2);
            if (!ns) {
                rc = KEFU_ENOMEM;
                break;
            }
            src = ns;
        }
        size_t got = fread(src + n, 1, 4096, f);
        n += got;
        if (got < 4096)
            break;
    }
    fclose(f);
    if (rc == 0 && n > (1 << 20))
        rc = KEFU_ERANGE;
    if (rc == 0) {
        src[n] = 0;
        if (!text_utf8_valid(src, n))
            rules_diag_add(diag, RULES_ERROR, path, 1, 1, NULL, "the file is not valid UTF-8"),
                rc = KEFU_ESYNTAX;
    }
    if (rc == 0)
        rc = redline_load_string(path, src, diag, out);
    free(src);
    return rc;
}

void redline_free(struct redline *r)
{
    if (!r)
        return;
    for (size_t i = 0; i < r->n; i++)
        free(r->v[i].g);
    free(r->v);
    free(r->e);
    pthread_mutex_destroy(&r->lock);
    free(r);
}

size_t redline_count(const struct redline *r)
{
    return r ? r->n : 0;
}

size_t redline_escalations(const struct redline *r)
{
    return r ? r->n_e : 0;
}

const struct redline_escalation *redline_escalation(const struct redline *r, size_t k)
{
    return r && k < r->n_e ? &r->e[k] : NULL;
}

/* ---- samples and windows ---- */

static const char *label(const struct redline_labels *l, int k)
{
    const char *s = k == 0 ? l->channel : k == 1 ? l->queue : l->tier;
    return s ? s : "";
}

static int matches(const struct line *ln, const struct redline_labels *l)
{
    for (int k = 0; k < 3; k++)
        if (*ln->where[k] && strcmp(ln->where[k], label(l, k)) != 0)
            return 0;
    return 1;
}

/* The group of l's labels (created if room); NULL when the line has no room. */
static struct group *group_of(struct line *ln, const struct redline_labels *l)
{
    if (ln->per < 0)
        return &ln->g[0];
    const char *key = label(l, ln->per);
    for (int i = 0; i < ln->n_g; i++)
        if (strncmp(ln->g[i].key, key, RL_NAME - 1) == 0)
            return &ln->g[i];
    if (ln->n_g == RL_GROUPS)
        return NULL;
    struct group *g = &ln->g[ln->n_g++];
    snprintf(g->key, sizeof g->key, "%s", key);
    return g;
}

static void add(struct line *ln, struct group *g, double value, long long at)
{
    long long idx = at / ln->width;
    struct bucket *b = &g->b[(unsigned long long)idx % RL_BUCKETS];
    if (b->idx != idx)
        *b = (struct bucket){idx, 0, 0, 0};
    b->n++;
    b->sum += value;
    if (b->n == 1 || value > b->max)
        b->max = value;
}

void redline_observe(struct redline *r, int metric, const struct redline_labels *l, double value,
                     long long at)
{
    if (!r)
        return;
    pthread_mutex_lock(&r->lock);
    for (size_t i = 0; i < r->n; i++) {
        struct line *ln = &r->v[i];
        struct group *g;
        if (ln->metric == metric && matches(ln, l) && (g = group_of(ln, l)))
            add(ln, g, value, at);
    }
    pthread_mutex_unlock(&r->lock);
}

/* The window of g at now: count, sum and maximum of the buckets inside it. */
static void window(const struct line *ln, const struct group *g, long long now, long *n, double *sum,
                   double *max)
{
    long long cur = now / ln->width, span = (ln->window_s + ln->width - 1) / ln->width;
    *n = 0, *sum = 0, *max = 0;
    for (int k = 0; k < RL_BUCKETS; k++) {
        const struct bucket *b = &g->b[k];
        if (b->n == 0 || b->idx > cur || b->idx <= cur - span)
            continue;
        if (*n == 0 || b->max > *max)
            *max = b->max;
        *n += b->n;
        *sum += b->sum;
    }
}

static json_t *event(const struct line *ln, const struct group *g, long long now)
{
    json_t *ev = json_pack("{s:s, s:s, s:s, s:f, s:f, s:s, s:I, s:I, s:I}", "event",
                           g->breached ? "redline.breached" : "redline.cleared", "redline", ln->name,
                           "metric", metric_names[ln->metric], "value", g->value, "threshold", ln->threshold,
                           "op", ln->is_min ? "min" : "max", "window_s", (json_int_t)ln->window_s, "samples",
                           (json_int_t)g->samples, "at", (json_int_t)now);
    if (ev && ln->per >= 0)
        json_object_set_new(ev, "group", json_pack("{s:s}", label_names[ln->per], g->key));
    return ev;
}

/* Evaluates one group; appends an event to evs when its state changed. */
static void judge(struct line *ln, struct group *g, long long now, long live_n, double live_sum,
                  double live_max, json_t *evs)
{
    long n;
    double sum, max;
    window(ln, g, now, &n, &sum, &max);
    if (live_n && (n == 0 || live_max > max))
        max = live_max;
    n += live_n;
    sum += live_sum;
    g->samples = n;
    g->value = n ? (ln->stat_max ? max : sum / (double)n) : 0;
    int over = n >= ln->min_samples && (ln->is_min ? g->value < ln->threshold : g->value > ln->threshold);
    if (over == g->breached)
        return;
    g->breached = over;
    g->since = now;
    json_array_append_new(evs, event(ln, g, now));
}

/* Adds live queue waits to line ln's groups: n, sum, max per group index. */
static void live_of(struct line *ln, const double *live, const struct redline_labels *ll, size_t n, long *cnt,
                    double *sum, double *max)
{
    for (size_t k = 0; k < n; k++) {
        struct group *g;
        if (!matches(ln, &ll[k]) || !(g = group_of(ln, &ll[k])))
            continue;
        int i = (int)(g - ln->g);
        if (cnt[i] == 0 || live[k] > max[i])
            max[i] = live[k];
        cnt[i]++;
        sum[i] += live[k];
    }
}

int redline_eval(struct redline *r, long long now, const double *live, const struct redline_labels *live_l,
                 size_t n, redline_change_fn fn, void *ctx)
{
    if (!r)
        return 0;
    json_t *evs = json_array();
    int breached = 0;
    pthread_mutex_lock(&r->lock);
    for (size_t i = 0; i < r->n; i++) {
        struct line *ln = &r->v[i];
        long cnt[RL_GROUPS] = {0};
        double sum[RL_GROUPS] = {0}, max[RL_GROUPS] = {0};
        if (ln->metric == RL_QUEUE_WAIT)
            live_of(ln, live, live_l, n, cnt, sum, max);
        int any = 0;
        for (int g = 0; g < ln->n_g; g++) {
            judge(ln, &ln->g[g], now, cnt[g], sum[g], max[g], evs);
            any |= ln->g[g].breached;
        }
        breached += any;
    }
    pthread_mutex_unlock(&r->lock);
    size_t k;
    json_t *ev;
    json_array_foreach(evs, k, ev) if (fn) fn(ctx, ev);
    json_decref(evs);
    return breached;
}

json_t *redline_breaches(struct redline *r)
{
    json_t *v = json_array();
    if (!r)
        return v;
    pthread_mutex_lock(&r->lock);
    for (size_t i = 0; i < r->n; i++) {
        const struct line *ln = &r->v[i];
        for (int g = 0; g < ln->n_g; g++) {
            const struct group *gr = &ln->g[g];
            if (!gr->breached)
                continue;
            json_t *b = json_pack("{s:s, s:s, s:f, s:f, s:s, s:I, s:I}", "name", ln->name, "metric",
                                  metric_names[ln->metric], "value", gr->value, "threshold", ln->threshold,
                                  "op", ln->is_min ? "min" : "max", "window_s", (json_int_t)ln->window_s,
                                  "since", (json_int_t)gr->since);
            if (b && ln->per >= 0)
                json_object_set_new(b, "group", json_pack("{s:s}", label_names[ln->per], gr->key));
            json_array_append_new(v, b);
        }
    }
    pthread_mutex_unlock(&r->lock);
    return v;
}

/* Writes s into buf as a Prometheus label value (\, " and newline escaped). */
static const char *esc(const char *s, char *buf, size_t cap)
{
    size_t o = 0;
    for (; *s && o + 3 < cap; s++) {
        if (*s == '\\' || *s == '"' || *s == '\n') {
            buf[o++] = '\\';
            buf[o++] = *s == '\n' ? 'n' : *s;
        } else
            buf[o++] = *s;
    }
    buf[o] = 0;
    return buf;
}

int redline_metrics(struct redline *r, struct text_buf *out)
{
    if (!r || r->n == 0)
        return 0;
    int rc =
        metrics_printf(out, "# HELP kefu_redline_breached 1 while a red line is crossed (in any group).\n"
                            "# TYPE kefu_redline_breached gauge\n");
    pthread_mutex_lock(&r->lock);
    for (size_t i = 0; i < r->n && rc == 0; i++) {
        int any = 0;
        for (int g = 0; g < r->v[i].n_g; g++)
            any |= r->v[i].g[g].breached;
        rc = metrics_printf(out, "kefu_redline_breached{name=\"%s\"} %d\n", r->v[i].name, any);
    }
    if (rc == 0)
        rc =
            metrics_printf(out, "# HELP kefu_redline_value A red line's metric over its window, per group.\n"
                                "# TYPE kefu_redline_value gauge\n"
                                "# HELP kefu_redline_group_breached 1 while the group is over its red line.\n"
                                "# TYPE kefu_redline_group_breached gauge\n");
    for (size_t i = 0; i < r->n && rc == 0; i++) {
        const struct line *ln = &r->v[i];
        for (int g = 0; g < ln->n_g && rc == 0; g++) {
            char key[RL_NAME * 2 + 4], lab[RL_NAME * 2 + 48] = "";
            if (ln->per >= 0)
                snprintf(lab, sizeof lab, ",%s=\"%s\"", label_names[ln->per],
                         esc(ln->g[g].key, key, sizeof key));
            rc = metrics_printf(
                out,
                "kefu_redline_value{name=\"%s\"%s} %.4f\nkefu_redline_group_breached{name=\"%s\"%s} %d\n",
                ln->name, lab, ln->g[g].value, ln->name, lab, ln->g[g].breached);
        }
    }
    pthread_mutex_unlock(&r->lock);
    return rc;
}

int redline_threshold(const struct redline *r, int metric, const char **name, double *threshold, int *is_min)
{
    for (size_t i = 0; r && i < r->n; i++) {
        const struct line *ln = &r->v[i];
        if (ln->metric != metric || *ln->where[0] || *ln->where[1] || *ln->where[2])
            continue;
        *name = ln->name;
        *threshold = ln->threshold;
        *is_min = ln->is_min;
        return 0;
    }
    return KEFU_ENOENT;
}
