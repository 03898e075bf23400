/* eval.c — kefu learn and kefu eval: labelled TSV lines become example
 * rules, and labelled test lines become quality figures. Every test line
 * goes through decide_message() as a customer message would, so the
 * figures measure the real policy; a threshold sweep re-applies the policy
 * (decide_apply()) to the stage results kept per line instead of searching
 * again. The figures are defined in docs/quality.md. */
#include "eval.h"

#include "kefu.h"
#include "text.h"

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* ---- TSV ---- */

static int read_all(const char *path, char **buf, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return KEFU_EIO;
    size_t cap = 1 << 16, n = 0;
    char *b = kefu_malloc(cap);
    while (b) {
        n += fread(b + n, 1, cap - n - 1, f);
        if (n < cap - 1)
            break;
        char *nb = kefu_realloc(b, cap * 2);
        if (!nb) {
            free(b);
            b = NULL;
            break;
        }
        b = nb;
        cap *= 2;
    }
    int err = ferror(f);
    fclose(f);
    if (!b)
        return KEFU_ENOMEM;
    if (err) {
        free(b);
        return KEFU_EIO;
    }
    b[n] = 0;
    *buf = b;
    *len = n;
    return 0;
}

/* Splits line s (NUL-terminated, no newline) into fields in place; returns
 * NULL when it has ncols non-empty valid fields, else the reason. */
static const char *split_fields(char *s, int ncols, struct eval_row *row)
{
    size_t len = strlen(s);
    if (len && s[len - 1] == '\r')
        s[--len] = 0;
    if (!text_utf8_valid(s, len))
        return "not valid utf-8";
    int n = 0;
    for (char *p = s;; n++) {
        char *tab = strchr(p, '\t');
        if (n < 3)
            row->f[n] = p;
        if (!tab)
            break;
        *tab = 0;
        p = tab + 1;
    }
    n++;
    if (n != ncols)
        return n < ncols ? "too few fields" : "too many fields";
    for (int k = 0; k < ncols; k++)
        if (!*row->f[k] && !(ncols == 3 && k == 1)) /* a FAQ question may be empty */
            return "empty field";
    return NULL;
}

static int add_row(struct eval_tsv *t, const struct eval_row *row)
{
    if (t->n == t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 256;
        struct eval_row *v = kefu_realloc(t->v, cap * sizeof *v);
        if (!v)
            return KEFU_ENOMEM;
        t->v = v;
        t->cap = cap;
    }
    t->v[t->n++] = *row;
    return 0;
}

int eval_tsv_load(const char *path, int ncols, FILE *errs, struct eval_tsv *out)
{
    memset(out, 0, sizeof *out);
    size_t len;
    int rc = read_all(path, &out->buf, &len);
    if (rc < 0)
        return rc;
    char *p = out->buf, *end = out->buf + len;
    for (int line = 1; p < end; line++) {
        char *nl = memchr(p, '\n', (size_t)(end - p));
        char *next = nl ? nl + 1 : end;
        if (nl)
            *nl = 0;
        struct eval_row row = {{NULL, NULL, NULL}, line};
        if (strlen(p) != (size_t)((nl ? nl : end) - p)) {
            fprintf(errs, "%s:%d: line holds a NUL byte\n", path, line);
            out->bad++;
        } else if (*p == 0 || (*p == '\r' && p[1] == 0)) {
            /* blank lines are allowed and ignored */
        } else {
            const char *why = split_fields(p, ncols, &row);
            if (why) {
                fprintf(errs, "%s:%d: %s (want %d tab-separated fields)\n", path, line, why, ncols);
                out->bad++;
            } else if ((rc = add_row(out, &row)) < 0) {
                eval_tsv_release(out);
                return rc;
            }
        }
        p = next;
    }
    return 0;
}

void eval_tsv_release(struct eval_tsv *t)
{
    free(t->buf);
    free(t->v);
    memset(t, 0, sizeof *t);
}

int eval_is_oos(const char *label)
{
    return strcasecmp(label, "oos") == 0;
}

/* ---- kefu learn ---- */

void eval_label_name(const char *label, char *buf, size_t cap)
{
    size_t o = 0;
    char prev = '.'; /* at a segment start */
    for (const unsigned char *p = (const unsigned char *)label; *p && o + 2 < cap; p++) {
        char c = (char)*p, out;
        if (c >= 'A' && c <= 'Z') {
            if (prev != '.' && prev != '_' && p > (const unsigned char *)label && p[-1] >= 'a' &&
                p[-1] <= 'z')
                buf[o++] = prev = '_';
            out = (char)(c - 'A' + 'a');
        } else if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')) {
            out = c;
        } else if (c == '/' || c == '.') {
            out = '.';
        } else {
            out = '_';
        }
        if ((out == '.' || out == '_') && (prev == '.' || prev == '_')) {
            if (out == '.' && prev == '_' && o > 0)
                buf[o - 1] = prev = '.'; /* "a_/b" → "a.b" */
            continue;
        }
        buf[o++] = prev = out;
    }
    while (o > 0 && (buf[o - 1] == '.' || buf[o - 1] == '_'))
        o--;
    if (o == 0)
        buf[o++] = 'x';
    buf[o] = 0;
}

/* One labelled text for learning: normalized key and where it came from. */
struct learn_item {
    char *key;   /* normalized text; owned */
    char *label; /* sanitized intent name; owned */
    size_t row;
    int drop;
};

static int item_by_key(const void *a, const void *b)
{
    const struct learn_item *x = a, *y = b;
    int c = strcmp(x->key, y->key);
    return c ? c : x->row < y->row ? -1 : x->row > y->row;
}

static int item_by_label(const void *a, const void *b)
{
    const struct learn_item *x = a, *y = b;
    int c = strcmp(x->label, y->label);
    return c ? c : x->row < y->row ? -1 : x->row > y->row;
}

/* Marks repeats inside a label and texts under two labels (both dropped). */
static void learn_dedupe(struct learn_item *v, size_t n, const struct eval_tsv *t, const char *name,
                         FILE *errs, struct eval_learn_stats *st)
{
    qsort(v, n, sizeof *v, item_by_key);
    for (size_t i = 0; i < n;) {
        size_t j = i + 1;
        int mixed = 0;
        while (j < n && strcmp(v[j].key, v[i].key) == 0)
            mixed |= strcmp(v[j++].label, v[i].label) != 0;
        for (size_t k = i + 1; k < j; k++) {
            int repeat = 0;
            for (size_t m = i; m < k && !repeat; m++)
                repeat = strcmp(v[m].label, v[k].label) == 0;
            v[k].drop = 1;
            st->duplicates += repeat && !mixed;
        }
        if (mixed) {
            v[i].drop = 1;
            st->conflicts += j - i;
            fprintf(errs, "%s:%d: '%s' is labelled both '%s' (line %d) and '%s'; dropped from both\n", name,
                    t->v[v[i + 1].row].line, t->v[v[i].row].f[0], v[i].label, t->v[v[i].row].line,
                    v[i + 1].label);
        }
        i = j;
    }
}

/* Writes text as example free text: '#' after a space would start a comment. */
static void put_example(FILE *out, const char *s)
{
    fputs("  example  ", out);
    for (const char *p = s; *p; p++) {
        if (*p == '#' && (p == s || p[-1] == ' ' || p[-1] == '\t'))
            fputc('\\', out);
        fputc(*p == '\t' || *p == '\r' ? ' ' : *p, out);
    }
    fputc('\n', out);
}

static void learn_write(FILE *out, const char *name, struct learn_item *v, size_t n, const struct eval_tsv *t,
                        struct eval_learn_stats *st)
{
    qsort(v, n, sizeof *v, item_by_label);
    fprintf(out, "# learned by kefu learn from %s: every intent is made of example lines only,\n", name);
    fputs("# so only example-based matching can route to it. Replace each reply with the answer.\n", out);
    const char *cur = NULL;
    for (size_t k = 0; k < n; k++) {
        if (v[k].drop)
            continue;
        if (!cur || strcmp(cur, v[k].label) != 0) {
            cur = v[k].label;
            fprintf(out, "\nintent %s\n  reply    (answer for %s)\n", cur, cur);
            st->intents++;
        }
        put_example(out, t->v[v[k].row].f[0]);
        st->examples++;
    }
}

int eval_learn(const struct eval_tsv *t, const char *name, FILE *out, FILE *errs, struct eval_learn_stats *st)
{
    memset(st, 0, sizeof *st);
    struct learn_item *v = kefu_calloc(t->n + 1, sizeof *v);
    struct text_buf b;
    text_buf_init(&b);
    int rc = v ? 0 : KEFU_ENOMEM;
    size_t n = 0;
    for (size_t r = 0; r < t->n && rc == 0; r++) {
        if (eval_is_oos(t->v[r].f[1])) {
            st->oos++;
            continue;
        }
        char label[128];
        eval_label_name(t->v[r].f[1], label, sizeof label);
        rc = text_normalize(t->v[r].f[0], strlen(t->v[r].f[0]), TEXT_FOLD, &b);
        if (rc == 0 && b.len == 0)
            continue; /* nothing left to match on */
        if (rc == 0 &&
            (!(v[n].key = kefu_strndup(b.s, b.len)) || !(v[n].label = kefu_strndup(label, strlen(label)))))
            rc = KEFU_ENOMEM;
        if (v)
            v[n].row = r, n += v[n].key != NULL;
    }
    if (rc == 0) {
        learn_dedupe(v, n, t, name, errs, st);
        learn_write(out, name, v, n, t, st);
        if (fflush(out) != 0 || ferror(out))
            rc = KEFU_EIO;
    }
    for (size_t k = 0; v && k < n; k++) {
        free(v[k].key);
        free(v[k].label);
    }
    free(v);
    text_buf_release(&b);
    return rc;
}

/* ---- kefu eval ---- */

/* The article id a FAQ id gets in the temporary kb: the intent-name form
 * with '-' for '_' and '.', so any kb id rule accepts it; applying it
 * twice changes nothing. */
static void faq_article_id(const char *label, char *buf, size_t cap)
{
    eval_label_name(label, buf, cap);
    for (char *p = buf; *p; p++)
        if (*p == '_' || *p == '.')
            *p = '-';
}

/* The key a label is counted under: its intent name, or its article id. */
static void label_key(const char *label, int faq, char *buf, size_t cap)
{
    if (faq)
        faq_article_id(label, buf, cap);
    else
        eval_label_name(label, buf, cap);
}

/* What one test line needs for the figures and for re-applying the policy. */
struct eval_line {
    struct decision d;
    const char *locale; /* static */
    long label;         /* index into report labels, -1 for oos */
};

static int str_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The sorted distinct labels (intent names or article ids) of t's rows. */
static int collect_labels(const struct eval_tsv *t, int faq, struct eval_report *r)
{
    r->labels = kefu_calloc(t->n + 1, sizeof *r->labels);
    if (!r->labels)
        return KEFU_ENOMEM;
    size_t n = 0;
    for (size_t k = 0; k < t->n; k++) {
        const char *l = t->v[k].f[1];
        if (eval_is_oos(l))
            continue;
        char name[128];
        label_key(l, faq, name, sizeof name);
        if (!(r->labels[n++] = kefu_strndup(name, strlen(name))))
            return KEFU_ENOMEM;
    }
    qsort(r->labels, n, sizeof *r->labels, str_cmp);
    size_t u = 0;
    for (size_t k = 0; k < n; k++) {
        if (u && strcmp(r->labels[u - 1], r->labels[k]) == 0)
            free(r->labels[k]);
        else
            r->labels[u++] = r->labels[k];
    }
    r->n_labels = u;
    r->per = kefu_calloc(u + 1, sizeof *r->per);
    return r->per ? 0 : KEFU_ENOMEM;
}

static long label_index(const struct eval_report *r, const char *label, int faq)
{
    char name[128];
    if (eval_is_oos(label))
        return -1;
    label_key(label, faq, name, sizeof name);
    const char *key = name;
    char **hit = bsearch(&key, r->labels, r->n_labels, sizeof *r->labels, str_cmp);
    return hit ? hit - r->labels : -1;
}

static int automatic(int source)
{
    return source == DECIDE_RULE || source == DECIDE_EXAMPLE || source == DECIDE_KB;
}

/* The key candidate x is counted under: in a FAQ run an intent stands for
 * the article of the same name (intents learned from FAQ-labelled lines). */
static const char *cand_key(const struct decide_cand *x, int faq, char *buf, size_t cap)
{
    if (!faq || x->intent < 0 || !x->name)
        return x->name;
    faq_article_id(x->name, buf, cap);
    return buf;
}

/* The key of the answer d gives, or of its stages' guess (decide_guess())
 * or best candidate when it gives none (in a FAQ run: the first article found); NULL when there is none.
 * May point into buf. */
static const char *top_name(const struct decide_ctx *c, const struct decision *d, int faq, char *buf,
                            size_t cap)
{
    if (d->source == DECIDE_KB)
        return d->article.id;
    if (d->intent >= 0) {
        struct decide_cand x = {.intent = d->intent, .name = rules_intent(c->rs, (size_t)d->intent)->name};
        return cand_key(&x, faq, buf, cap);
    }
    long guess = decide_guess(d);
    if (guess >= 0) {
        struct decide_cand x = {.intent = guess, .name = rules_intent(c->rs, (size_t)guess)->name};
        return cand_key(&x, faq, buf, cap);
    }
    if (faq)
        return d->kb.n ? d->kb.hit[0].id : NULL;
    const struct decide_cand *best = NULL;
    for (size_t k = 0; k < d->n_cand; k++)
        if (d->cand[k].intent >= 0 && (!best || d->cand[k].confidence > best->confidence))
            best = &d->cand[k];
    return best ? best->name : NULL;
}

/* 1 if article want is among the first three hits. */
static int in_top3(const struct decision *d, const char *want)
{
    for (size_t k = 0; k < d->kb.n && k < 3; k++)
        if (strcmp(d->kb.hit[k].id, want) == 0)
            return 1;
    return 0;
}

static void calibrate(const struct decide_ctx *c, const struct decision *d, int faq, const char *want,
                      struct eval_report *r);

/* Counts one decided line into the report (and its label's counts). */
static void count_line(const struct decide_ctx *c, struct eval_report *r, const struct eval_line *l,
                       const char *want, int faq)
{
    const struct decision *d = &l->d;
    int is_auto = automatic(d->source);
    r->by_source[d->source]++;
    calibrate(c, d, faq, l->label < 0 ? NULL : want, r);
    if (l->label < 0) {
        r->oos++;
        r->oos_automatic += is_auto;
        return;
    }
    char buf[160];
    const char *got = top_name(c, d, faq, buf, sizeof buf);
    int right = got && strcmp(got, want) == 0;
    if (d->source == DECIDE_CLARIFY) {
        r->clarified++;
        int hit = 0;
        for (int k = 0; k < 2; k++) {
            const char *key = cand_key(&d->clarify[k], faq, buf, sizeof buf);
            hit |= key && strcmp(key, want) == 0;
        }
        r->clarify_right += (size_t)hit;
    }
    struct eval_counts *cs[2] = {&r->all, &r->per[l->label]};
    for (int k = 0; k < 2; k++) {
        cs[k]->n++;
        cs[k]->correct += right;
        cs[k]->automatic += is_auto;
        cs[k]->auto_correct += is_auto && right;
        cs[k]->top3 += right || (faq && in_top3(d, want));
    }
    r->in_scope++;
}

static double share(size_t a, size_t b)
{
    return b ? (double)a / (double)b : 0;
}

/* Re-applies the policy at each threshold to the kept stage results:
 * the example lead (faq: the article lead), or with clf the classifier's
 * threshold, into pts. */
static void sweep(struct decide_ctx *c, const struct eval_tsv *t, struct eval_line *lines, int faq, int clf,
                  struct eval_report *r, struct eval_point *pts)
{
    struct decide_policy keep = c->policy;
    double agree = keep.classify_min > 0 ? keep.classify_agree / keep.classify_min : 1;
    for (int p = 0; p < EVAL_SWEEP_POINTS; p++) {
        double th = (double)p / (EVAL_SWEEP_POINTS - 1) * (faq || clf ? 1 : 0.5);
        if (clf) {
            c->policy.classify_min = th;
            c->policy.classify_agree = th * agree;
        } else if (faq)
            c->policy.kb_lead = th;
        else
            c->policy.example_lead = th;
        size_t in = 0, aut = 0, ok = 0, oos = 0, oos_auto = 0;
        for (size_t k = 0; k < t->n; k++) {
            struct attr av[1] = {{"locale", lines[k].locale}};
            struct attrs a = {av, 1};
            decide_apply(c, &a, &lines[k].d);
            int is_auto = automatic(lines[k].d.source);
            if (lines[k].label < 0) {
                oos++;
                oos_auto += is_auto;
                continue;
            }
            char buf[160];
            const char *got = top_name(c, &lines[k].d, faq, buf, sizeof buf);
            in++;
            aut += is_auto;
            ok += is_auto && got && strcmp(got, r->labels[lines[k].label]) == 0;
        }
        pts[p] = (struct eval_point){th, share(aut, in), share(ok, aut), oos ? 1 - share(oos_auto, oos) : 1};
    }
    c->policy = keep;
}

double eval_ece(const struct eval_report *r)
{
    double e = 0;
    for (int b = 0; b < EVAL_CAL_BINS; b++)
        if (r->cal[b].n)
            e += (double)r->cal[b].n / (double)r->cal_n *
                 fabs((double)r->cal[b].right / (double)r->cal[b].n - r->cal[b].p / (double)r->cal[b].n);
    return e;
}

/* Counts d's classifier result into r's reliability bins (want: the
 * line's key, NULL for an out-of-scope line). */
static void calibrate(const struct decide_ctx *c, const struct decision *d, int faq, const char *want,
                      struct eval_report *r)
{
    if (!d->cls.n)
        return;
    double p = d->cls.cand[0].p;
    if (!want) {
        r->oos_p += p;
        r->oos_n += 1;
        return;
    }
    char buf[160];
    struct decide_cand x = {.intent = (long)d->cls.cand[0].intent,
                            .name = rules_intent(c->rs, d->cls.cand[0].intent)->name};
    const char *got = cand_key(&x, faq, buf, sizeof buf);
    int b = p >= 1 ? EVAL_CAL_BINS - 1 : (int)(p * EVAL_CAL_BINS);
    r->cal[b].n++;
    r->cal[b].p += p;
    r->cal[b].right += got && strcmp(got, want) == 0;
    r->cal_n++;
}

/* Drops what d borrows from the router's scratch (the normalized text,
 * rewritten by the next message) before d is kept for the sweep; its kb
 * hits are its own. */
static void keep_decision(struct decision *d)
{
    d->route.norm = NULL;
    d->route.norm_len = 0;
}

/* Prints line k when it was answered automatically and wrongly (or at all,
 * out of scope): "file:line: want LABEL, got NAME (source confidence)". */
static void list_wrong(FILE *f, const char *name, const struct decide_ctx *c, const struct eval_tsv *t,
                       size_t k, const struct eval_line *l, const struct eval_report *r, int faq)
{
    char buf[160];
    if (!f || !automatic(l->d.source))
        return;
    const char *got = top_name(c, &l->d, faq, buf, sizeof buf);
    const char *want = l->label >= 0 ? r->labels[l->label] : "oos";
    if (l->label >= 0 && got && strcmp(got, want) == 0)
        return;
    fprintf(f, "%s:%d: want %s, got %s (%s %.2f): %s\n", name, t->v[k].line, want, got ? got : "-",
            decide_source_name(l->d.source), l->d.confidence, t->v[k].f[0]);
}

int eval_run(struct decide_ctx *ctx, const struct eval_tsv *t, int faq, int do_sweep,
             eval_progress_fn progress, void *pctx, const char *name, FILE *wrong, struct eval_report *out)
{
    memset(out, 0, sizeof *out);
    out->faq = faq;
    out->malformed = t->bad;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    int rc = collect_labels(t, faq, out);
    struct eval_line *lines = rc == 0 ? kefu_calloc(t->n + 1, sizeof *lines) : NULL;
    if (!lines)
        return KEFU_ENOMEM;
    if (do_sweep)
        ctx->policy.all_stages = 1;
    for (size_t k = 0; k < t->n; k++) {
        const char *text = t->v[k].f[0];
        size_t len = strlen(text);
        struct eval_line *l = &lines[k];
        l->locale = text_guess_locale(text, len, NULL);
        l->label = label_index(out, t->v[k].f[1], faq);
        struct attr av[1] = {{"locale", l->locale}};
        struct attrs a = {av, 1};
        int drc = decide_message(ctx, text, len, &a, &l->d);
        if (drc == KEFU_ENOMEM) {
            rc = drc;
            break;
        }
        if (drc < 0) { /* counted, and treated as a line nothing answered */
            out->errors++;
            memset(&l->d, 0, sizeof l->d);
            l->d.intent = -1;
        }
        keep_decision(&l->d);
        count_line(ctx, out, l, l->label >= 0 ? out->labels[l->label] : NULL, faq);
        list_wrong(wrong, name, ctx, t, k, l, out, faq);
        out->total++;
        if (progress)
            progress(pctx, k + 1, t->n);
    }
    if (rc == 0 && do_sweep) {
        sweep(ctx, t, lines, faq, 0, out, out->sweep);
        out->n_sweep = EVAL_SWEEP_POINTS;
        if (ctx->clf && ctx->policy.use_classifier) {
            sweep(ctx, t, lines, faq, 1, out, out->sweep_clf);
            out->n_sweep_clf = EVAL_SWEEP_POINTS;
        }
    }
    ctx->policy.all_stages = 0;
    free(lines);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    out->seconds = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    return rc;
}

void eval_report_release(struct eval_report *r)
{
    for (size_t k = 0; r->labels && k < r->n_labels; k++)
        free(r->labels[k]);
    free(r->labels);
    free(r->per);
    memset(r, 0, sizeof *r);
}

static const char *pct(double x, char *buf)
{
    snprintf(buf, 16, "%5.1f%%", 100 * x);
    return buf;
}

/* Prints every fifth point of a sweep of n points. */
static void print_sweep(FILE *f, const char *what, const struct eval_point *pt, size_t n)
{
    char b2[16], b3[16], b4[16];
    if (!n)
        return;
    fprintf(f, "\n  %-20s %11s %10s %12s\n", what, "automation", "precision", "oos handoff");
    for (size_t k = 0; k < n; k += 5)
        fprintf(f, "  %20.2f %11s %10s %12s\n", pt[k].threshold, pct(pt[k].automation, b2),
                pct(pt[k].precision, b3), pct(pt[k].oos_handoff, b4));
}

void eval_report_print(FILE *f, const char *name, const struct eval_report *r)
{
    char b1[16], b2[16], b3[16], b4[16];
    const struct eval_counts *a = &r->all;
    fprintf(f, "%s: %zu lines, %zu in scope, %zu oos, %zu malformed (%.1f s)\n", name, r->total, r->in_scope,
            r->oos, r->malformed, r->seconds);
    fprintf(f, "  accuracy     %s  top-1 %s right, answered or not\n", pct(share(a->correct, a->n), b1),
            r->faq ? "article" : "intent");
    if (r->faq)
        fprintf(f, "  top-3        %s  right article among the first three\n", pct(share(a->top3, a->n), b1));
    fprintf(f, "  automation   %s  in-scope lines answered automatically\n",
            pct(share(a->automatic, a->n), b1));
    fprintf(f, "  precision    %s  automatic answers that are right\n",
            pct(share(a->auto_correct, a->automatic), b1));
    fprintf(f, "  oos handoff  %s  out-of-scope lines not answered automatically\n",
            pct(r->oos ? 1 - share(r->oos_automatic, r->oos) : 1, b1));
    fprintf(
        f,
        "  clarified    %s  in-scope lines given a clarifying question (%s of them offer the right answer)\n",
        pct(share(r->clarified, r->in_scope), b1), pct(share(r->clarify_right, r->clarified), b2));
    fprintf(f, "  sources     ");
    for (int s = 0; s <= DECIDE_HANDOFF; s++)
        fprintf(f, " %s %zu", decide_source_name(s), r->by_source[s]);
    fputc('\n', f);
    if (r->errors)
        fprintf(f, "  %zu lines could not be decided (invalid text or search failure)\n", r->errors);
    if (!r->faq && r->n_labels) {
        fprintf(f, "\n  %-36s %5s %9s %11s %10s\n", "label", "n", "accuracy", "automation", "precision");
        for (size_t k = 0; k < r->n_labels; k++) {
            const struct eval_counts *c = &r->per[k];
            fprintf(f, "  %-36s %5zu %9s %11s %10s\n", r->labels[k], c->n, pct(share(c->correct, c->n), b2),
                    pct(share(c->automatic, c->n), b3), pct(share(c->auto_correct, c->automatic), b4));
        }
    }
    if (r->cal_n)
        fprintf(f, "\n  classifier calibration: expected calibration error %.3f over %zu in-scope lines\n",
                eval_ece(r), r->cal_n);
    print_sweep(f, r->faq ? "article lead" : "example lead", r->sweep, r->n_sweep);
    print_sweep(f, "classifier threshold", r->sweep_clf, r->n_sweep_clf);
}

static json_t *counts_json(const struct eval_counts *c, int faq)
{
    json_t *o =
        json_pack("{s:I, s:f, s:f, s:f}", "n", (json_int_t)c->n, "accuracy", share(c->correct, c->n),
                  "automation", share(c->automatic, c->n), "precision", share(c->auto_correct, c->automatic));
    if (o && faq) {
        json_object_set_new(o, "top1", json_real(share(c->correct, c->n)));
        json_object_set_new(o, "top3", json_real(share(c->top3, c->n)));
    }
    return o;
}

int eval_report_json(FILE *f, const char *name, const struct eval_report *r)
{
    json_t *o = counts_json(&r->all, r->faq);
    if (!o)
        return KEFU_ENOMEM;
    json_object_set_new(o, "file", json_string(name));
    json_object_set_new(o, "mode", json_string(r->faq ? "faq" : "intents"));
    json_object_set_new(o, "total", json_integer((json_int_t)r->total));
    json_object_set_new(o, "in_scope", json_integer((json_int_t)r->in_scope));
    json_object_set_new(o, "oos", json_integer((json_int_t)r->oos));
    json_object_set_new(o, "malformed", json_integer((json_int_t)r->malformed));
    json_object_set_new(o, "errors", json_integer((json_int_t)r->errors));
    json_object_del(o, "n");
    json_object_set_new(o, "oos_handoff", json_real(r->oos ? 1 - share(r->oos_automatic, r->oos) : 1));
    json_object_set_new(o, "clarified", json_real(share(r->clarified, r->in_scope)));
    json_object_set_new(o, "clarify_right", json_real(share(r->clarify_right, r->clarified)));
    json_object_set_new(o, "seconds", json_real(r->seconds));
    json_t *src = json_object();
    for (int s = 0; s <= DECIDE_HANDOFF; s++)
        json_object_set_new(src, decide_source_name(s), json_integer((json_int_t)r->by_source[s]));
    json_object_set_new(o, "sources", src);
    json_t *per = json_object();
    for (size_t k = 0; k < r->n_labels && !r->faq; k++)
        json_object_set_new(per, r->labels[k], counts_json(&r->per[k], 0));
    json_object_set_new(o, "per_intent", per);
    if (r->cal_n) {
        json_t *bins = json_array();
        for (int b = 0; b < EVAL_CAL_BINS; b++) {
            const struct eval_bin *x = &r->cal[b];
            json_array_append_new(
                bins, json_pack("{s:f, s:f, s:I, s:f, s:f}", "from", (double)b / EVAL_CAL_BINS, "to",
                                (double)(b + 1) / EVAL_CAL_BINS, "n", (json_int_t)x->n, "confidence",
                                x->n ? x->p / (double)x->n : 0, "accuracy", share(x->right, x->n)));
        }
        json_object_set_new(o, "calibration",
                            json_pack("{s:f, s:o, s:f}", "ece", eval_ece(r), "bins", bins, "oos_mean_p",
                                      r->oos_n ? r->oos_p / r->oos_n : 0));
    }
    if (r->n_sweep_clf) {
        json_t *sw = json_array();
        for (size_t k = 0; k < r->n_sweep_clf; k++)
            json_array_append_new(
                sw, json_pack("{s:f, s:f, s:f, s:f}", "threshold", r->sweep_clf[k].threshold, "automation",
                              r->sweep_clf[k].automation, "precision", r->sweep_clf[k].precision,
                              "oos_handoff", r->sweep_clf[k].oos_handoff));
        json_object_set_new(o, "sweep_classifier", sw);
    }
    if (r->n_sweep) {
        json_t *sw = json_array();
        for (size_t k = 0; k < r->n_sweep; k++)
            json_array_append_new(sw,
                                  json_pack("{s:f, s:f, s:f, s:f}", "threshold", r->sweep[k].threshold,
                                            "automation", r->sweep[k].automation, "precision",
                                            r->sweep[k].precision, "oos_handoff", r->sweep[k].oos_handoff));
        json_object_set_new(o, "sweep", sw);
    }
    char *s = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    if (!s)
        return KEFU_ENOMEM;
    fprintf(f, "%s\n", s);
    free(s);
    return 0;
}

/* ---- FAQ tables as articles ---- */

static int write_article(const char *dir, const struct eval_row *row)
{
    const char *locale = text_guess_locale(row->f[1], strlen(row->f[1]), NULL);
    if (strcmp(text_guess_locale(row->f[2], strlen(row->f[2]), NULL), "en") != 0)
        locale = "zh";
    else if (strcmp(locale, "zh-hant") == 0)
        locale = "zh";
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, locale);
    if (mkdir(path, 0700) != 0 && errno != EEXIST)
        return KEFU_EIO;
    char id[160];
    faq_article_id(row->f[0], id, sizeof id);
    snprintf(path, sizeof path, "%s/%s/%s.md", dir, locale, id);
    FILE *f = fopen(path, "w");
    if (!f)
        return KEFU_EIO;
    fprintf(f, "id: %s\nlocale: %s\ntitle: %s\n", id, locale, *row->f[1] ? row->f[1] : row->f[0]);
    if (*row->f[1])
        fprintf(f, "question: %s\n", row->f[1]);
    fprintf(f, "\n%s\n", row->f[2]);
    return fclose(f) == 0 ? 0 : KEFU_EIO;
}

int eval_faq_write(const struct eval_tsv *t, const char *dir)
{
    for (size_t k = 0; k < t->n; k++) {
        int rc = write_article(dir, &t->v[k]);
        if (rc < 0)
            return rc;
    }
    return 0;
}

void eval_faq_remove(const struct eval_tsv *t, const char *dir)
{
    char path[4096], id[160];
    static const char *const locales[] = {"en", "zh"};
    for (size_t k = 0; k < t->n; k++) {
        faq_article_id(t->v[k].f[0], id, sizeof id);
        for (int l = 0; l < 2; l++) {
            snprintf(path, sizeof path, "%s/%s/%s.md", dir, locales[l], id);
            unlink(path);
        }
    }
    for (int l = 0; l < 2; l++) {
        snprintf(path, sizeof path, "%s/%s", dir, locales[l]);
        rmdir(path);
    }
    rmdir(dir);
}
