/* peer_linear.c — the plain linear model docs/quality.md compares kefu with.
 *
 *   peer_linear TRAIN.tsv TEST.tsv > result.json
 *
 * A liblinear logistic regression over tf-idf features of the raw text,
 * with nothing of kefu's pipeline: lower-cased ASCII words and their
 * bigrams, character 3-5-grams of each word (with its boundaries), and
 * character 1-3-grams of each run of CJK characters; tf 1 + log(count),
 * smoothed idf, L2-normalised. C is chosen by 3-fold cross-validation on
 * the training file from a small grid; the threshold is swept on the test
 * file (an optimistic choice, which is the point: the peer is measured at
 * its best). Lines are text<TAB>label; the label "oos" marks an
 * out-of-scope test line (a training file has none).
 *
 * Prints one JSON object: the C chosen, top-1 accuracy, the sweep
 * (threshold, automation, precision, oos handoff) and the best point with
 * precision >= 0.95 and oos handoff >= 0.90. */
#include <linear.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_LINE 8192

static void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p) {
        fputs("peer_linear: out of memory\n", stderr);
        exit(1);
    }
    return p;
}

static void *xrealloc(void *p, size_t n)
{
    p = realloc(p, n ? n : 1);
    if (!p) {
        fputs("peer_linear: out of memory\n", stderr);
        exit(1);
    }
    return p;
}

/* ---- a string → index table (open addressing) ---- */

struct table {
    char **key;
    int *val;
    size_t cap, n;
};

static uint64_t hash(const char *s, size_t n)
{
    uint64_t h = 0xcbf29ce484222325ULL;
    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)s[i]) * 0x100000001b3ULL;
    return h;
}

static void table_grow(struct table *t);

/* The index of s[0..n) in t, adding it (as t->n) when add is set; -1 if absent. */
static int table_get(struct table *t, const char *s, size_t n, int add)
{
    if (add && (t->n + 1) * 2 > t->cap)
        table_grow(t);
    if (!t->cap)
        return -1;
    size_t i = hash(s, n) & (t->cap - 1);
    while (t->key[i]) {
        if (strlen(t->key[i]) == n && memcmp(t->key[i], s, n) == 0)
            return t->val[i];
        i = (i + 1) & (t->cap - 1);
    }
    if (!add)
        return -1;
    t->key[i] = xmalloc(n + 1);
    memcpy(t->key[i], s, n);
    t->key[i][n] = 0;
    t->val[i] = (int)t->n++;
    return t->val[i];
}

static void table_grow(struct table *t)
{
    struct table g = {.cap = t->cap ? t->cap * 2 : 1024};
    g.key = calloc(g.cap, sizeof *g.key);
    g.val = calloc(g.cap, sizeof *g.val);
    if (!g.key || !g.val) {
        fputs("peer_linear: out of memory\n", stderr);
        exit(1);
    }
    for (size_t i = 0; i < t->cap; i++)
        if (t->key[i]) {
            size_t j = hash(t->key[i], strlen(t->key[i])) & (g.cap - 1);
            while (g.key[j])
                j = (j + 1) & (g.cap - 1);
            g.key[j] = t->key[i];
            g.val[j] = t->val[i];
        }
    g.n = t->n;
    free(t->key);
    free(t->val);
    *t = g;
}

static void table_free(struct table *t)
{
    for (size_t i = 0; i < t->cap; i++)
        free(t->key[i]);
    free(t->key);
    free(t->val);
}

/* ---- features ---- */

/* The code point at s (UTF-8) and its length in *n; a bad byte counts as itself. */
static uint32_t utf8(const unsigned char *s, size_t *n)
{
    if (s[0] < 0x80) {
        *n = 1;
        return s[0];
    }
    int len = s[0] >= 0xf0 ? 4 : s[0] >= 0xe0 ? 3 : s[0] >= 0xc0 ? 2 : 1;
    uint32_t c = len == 1 ? s[0] : s[0] & (0x3f >> (len - 1));
    for (int k = 1; k < len; k++) {
        if ((s[k] & 0xc0) != 0x80) {
            *n = 1;
            return s[0];
        }
        c = c << 6 | (s[k] & 0x3f);
    }
    *n = (size_t)len;
    return c;
}

static int is_cjk(uint32_t c)
{
    return (c >= 0x3400 && c <= 0x9fff) || (c >= 0xf900 && c <= 0xfaff) || (c >= 0x20000 && c <= 0x2ffff);
}

/* A word character: ASCII letters and digits, and any other non-CJK letter byte sequence. */
static int is_word(uint32_t c)
{
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '\'' || (c >= 0xc0 && !is_cjk(c));
}

struct feats {
    struct table *t;
    int add;
    int *idx; /* the features of one line, with repeats */
    size_t n, cap;
};

static void emit(struct feats *f, const char *s, size_t n)
{
    int i = table_get(f->t, s, n, f->add);
    if (i < 0)
        return;
    if (f->n == f->cap)
        f->idx = xrealloc(f->idx, (f->cap = f->cap ? f->cap * 2 : 64) * sizeof *f->idx);
    f->idx[f->n++] = i;
}

/* Emits prefix + a[0..an) (+ "|" + b[0..bn) when b) as one feature. */
static void emit2(struct feats *f, const char *prefix, const char *a, size_t an, const char *b, size_t bn)
{
    char buf[512];
    size_t p = strlen(prefix);
    if (p + an + 1 + bn >= sizeof buf)
        return;
    memcpy(buf, prefix, p);
    memcpy(buf + p, a, an);
    size_t n = p + an;
    if (b) {
        buf[n++] = '|';
        memcpy(buf + n, b, bn);
        n += bn;
    }
    emit(f, buf, n);
}

/* Every feature of the lower-cased line s. */
static void features(struct feats *f, const char *line)
{
    size_t len = strlen(line);
    char *s = xmalloc(len + 1);
    for (size_t i = 0; i <= len; i++)
        s[i] = (line[i] >= 'A' && line[i] <= 'Z') ? (char)(line[i] + 32) : line[i];
    f->n = 0;
    const char *prev = NULL;
    size_t prev_n = 0;
    size_t i = 0;
    while (i < len) {
        size_t n;
        uint32_t c = utf8((const unsigned char *)s + i, &n);
        if (is_word(c)) {
            size_t j = i;
            while (j < len) {
                size_t m;
                uint32_t d = utf8((const unsigned char *)s + j, &m);
                if (!is_word(d))
                    break;
                j += m;
            }
            emit2(f, "w:", s + i, j - i, NULL, 0);
            if (prev)
                emit2(f, "b:", prev, prev_n, s + i, j - i);
            prev = s + i;
            prev_n = j - i;
            char w[260];
            size_t wn = j - i;
            if (wn + 2 < sizeof w) { /* character (byte) 3-5-grams of "<word>" */
                w[0] = '<';
                memcpy(w + 1, s + i, wn);
                w[wn + 1] = '>';
                for (size_t g = 3; g <= 5; g++)
                    for (size_t k = 0; k + g <= wn + 2; k++)
                        emit2(f, "c:", w + k, g, NULL, 0);
            }
            i = j;
        } else if (is_cjk(c)) {
            size_t at[4096], m = 0, j = i;
            while (j < len && m < 4095) {
                size_t cn;
                uint32_t d = utf8((const unsigned char *)s + j, &cn);
                if (!is_cjk(d))
                    break;
                at[m++] = j;
                j += cn;
            }
            at[m] = j;
            for (size_t g = 1; g <= 3; g++)
                for (size_t k = 0; k + g <= m; k++)
                    emit2(f, "z:", s + at[k], at[k + g] - at[k], NULL, 0);
            prev = NULL;
            i = j;
        } else {
            i += n;
        }
    }
    free(s);
}

static int cmp_int(const void *a, const void *b)
{
    int x = *(const int *)a, y = *(const int *)b;
    return (x > y) - (x < y);
}

/* ---- data ---- */

struct set {
    struct feature_node **x;
    int *label; /* index into the label table; -1 for oos */
    size_t n;
};

static struct table feats_t, labels_t;
static double *df;

/* Reads path's lines as a set; training adds features and labels. */
static void read_set(const char *path, int train, struct set *out)
{
    FILE *fp = fopen(path, "r");
    if (!fp) {
        fprintf(stderr, "peer_linear: cannot open %s\n", path);
        exit(1);
    }
    char *line = xmalloc(MAX_LINE);
    struct feats f = {.t = &feats_t, .add = train};
    size_t cap = 0;
    memset(out, 0, sizeof *out);
    size_t df_cap = 0;
    while (fgets(line, MAX_LINE, fp)) {
        line[strcspn(line, "\r\n")] = 0;
        char *tab = strrchr(line, '\t');
        if (!tab || tab == line || !tab[1])
            continue;
        *tab = 0;
        const char *lab = tab + 1;
        int li;
        if (strcmp(lab, "oos") == 0) {
            if (train)
                continue;
            li = -1;
        } else {
            li = table_get(&labels_t, lab, strlen(lab), train);
            if (li < 0)
                li = -2; /* a label training never saw: counts as a wrong answer */
        }
        features(&f, line);
        qsort(f.idx, f.n, sizeof *f.idx, cmp_int);
        if (out->n == cap) {
            cap = cap ? cap * 2 : 1024;
            out->x = xrealloc(out->x, cap * sizeof *out->x);
            out->label = xrealloc(out->label, cap * sizeof *out->label);
        }
        struct feature_node *x = xmalloc((f.n + 2) * sizeof *x);
        size_t m = 0;
        for (size_t k = 0; k < f.n; k++) {
            if (m && x[m - 1].index == f.idx[k] + 1) {
                x[m - 1].value += 1;
                continue;
            }
            x[m].index = f.idx[k] + 1;
            x[m].value = 1;
            m++;
        }
        if (train) {
            if (feats_t.n > df_cap) {
                size_t old = df_cap;
                df_cap = feats_t.n * 2;
                df = xrealloc(df, df_cap * sizeof *df);
                memset(df + old, 0, (df_cap - old) * sizeof *df);
            }
            for (size_t k = 0; k < m; k++)
                df[x[k].index - 1] += 1;
        }
        x[m].index = -1;
        out->x[out->n] = x;
        out->label[out->n] = li;
        out->n++;
    }
    free(f.idx);
    free(line);
    fclose(fp);
}

/* tf-idf weights and L2 normalisation, then the bias feature. */
static void weigh(struct set *s, size_t n_train, int n_feat)
{
    for (size_t i = 0; i < s->n; i++) {
        struct feature_node *x = s->x[i];
        double norm = 0;
        size_t m = 0;
        for (; x[m].index != -1; m++) {
            double idf = log((1.0 + (double)n_train) / (1.0 + df[x[m].index - 1])) + 1;
            x[m].value = (1 + log(x[m].value)) * idf;
            norm += x[m].value * x[m].value;
        }
        norm = norm > 0 ? 1 / sqrt(norm) : 0;
        for (size_t k = 0; k < m; k++)
            x[k].value *= norm;
        (void)n_feat;
    }
}

static void no_print(const char *s)
{
    (void)s;
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fputs("usage: peer_linear TRAIN.tsv TEST.tsv\n", stderr);
        return 2;
    }
    set_print_string_function(no_print);
    struct set tr, te;
    read_set(argv[1], 1, &tr);
    read_set(argv[2], 0, &te);
    if (tr.n < 2 || labels_t.n < 2) {
        fputs("peer_linear: the training file needs two labels\n", stderr);
        return 1;
    }
    weigh(&tr, tr.n, (int)feats_t.n);
    weigh(&te, tr.n, (int)feats_t.n);

    double *y = xmalloc(tr.n * sizeof *y);
    for (size_t i = 0; i < tr.n; i++)
        y[i] = tr.label[i];
    struct problem prob = {.l = (int)tr.n, .n = (int)feats_t.n, .y = y, .x = tr.x, .bias = -1};
    struct parameter param = {.solver_type = L2R_LR_DUAL, .eps = 0.1, .C = 1};

    /* C by 5-fold cross-validation */
    static const double grid[] = {4, 16, 64};
    double best_c = grid[0], best_acc = -1, *target = xmalloc(tr.n * sizeof *target);
    for (size_t g = 0; g < sizeof grid / sizeof grid[0]; g++) {
        param.C = grid[g];
        const char *err = check_parameter(&prob, &param);
        if (err) {
            fprintf(stderr, "peer_linear: %s\n", err);
            return 1;
        }
        cross_validation(&prob, &param, 3, target);
        size_t ok = 0;
        for (size_t i = 0; i < tr.n; i++)
            ok += target[i] == y[i];
        double acc = (double)ok / (double)tr.n;
        fprintf(stderr, "peer_linear: C=%g cross-validated accuracy %.4f\n", grid[g], acc);
        if (acc > best_acc) {
            best_acc = acc;
            best_c = grid[g];
        }
    }
    param.C = best_c;
    struct model *m = train(&prob, &param);

    /* predictions: the best class and its probability */
    int nc = get_nr_class(m);
    int *labels = xmalloc((size_t)nc * sizeof *labels);
    get_labels(m, labels);
    double *pr = xmalloc((size_t)nc * sizeof *pr), *best_p = xmalloc(te.n * sizeof *best_p);
    int *best_l = xmalloc(te.n * sizeof *best_l);
    size_t in_scope = 0, oos = 0, top1 = 0;
    for (size_t i = 0; i < te.n; i++) {
        predict_probability(m, te.x[i], pr);
        int b = 0;
        for (int k = 1; k < nc; k++)
            if (pr[k] > pr[b])
                b = k;
        best_p[i] = pr[b];
        best_l[i] = labels[b];
        if (te.label[i] == -1)
            oos++;
        else {
            in_scope++;
            top1 += best_l[i] == te.label[i];
        }
    }

    printf(
        "{\"c\": %g, \"train\": %zu, \"features\": %zu, \"in_scope\": %zu, \"oos\": %zu, \"top1\": %.6f,\n",
        best_c, tr.n, feats_t.n, in_scope, oos, in_scope ? (double)top1 / (double)in_scope : 0);
    printf(" \"sweep\": [");
    double ba = -1, bt = 1, bp = 0, bo = 0;
    for (int s = 0; s <= 100; s++) {
        double t = s / 100.0;
        size_t answered = 0, right = 0, oos_left = 0;
        for (size_t i = 0; i < te.n; i++) {
            int ans = best_p[i] >= t;
            if (te.label[i] == -1)
                oos_left += !ans;
            else if (ans) {
                answered++;
                right += best_l[i] == te.label[i];
            }
        }
        double a = in_scope ? (double)answered / (double)in_scope : 0;
        double p = answered ? (double)right / (double)answered : 1;
        double o = oos ? (double)oos_left / (double)oos : 1;
        printf(
            "%s\n  {\"threshold\": %.2f, \"automation\": %.6f, \"precision\": %.6f, \"oos_handoff\": %.6f}",
            s ? "," : "", t, a, p, o);
        if (p >= 0.95 && o >= 0.90 && a > ba) {
            ba = a;
            bt = t;
            bp = p;
            bo = o;
        }
    }
    printf("],\n \"best\": {\"threshold\": %.2f, \"automation\": %.6f, \"precision\": %.6f, \"oos_handoff\": "
           "%.6f}}\n",
           bt, ba < 0 ? 0 : ba, bp, bo);

    free_and_destroy_model(&m);
    for (size_t i = 0; i < tr.n; i++)
        free(tr.x[i]);
    for (size_t i = 0; i < te.n; i++)
        free(te.x[i]);
    free(tr.x);
    free(tr.label);
    free(te.x);
    free(te.label);
    free(y);
    free(target);
    free(labels);
    free(pr);
    free(best_p);
    free(best_l);
    free(df);
    table_free(&feats_t);
    table_free(&labels_t);
    return 0;
}
