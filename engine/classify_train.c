/* classify_train.c — trains the classifier with liblinear.
 * Every example line of an intent is one row; features (classify_feat.c)
 * hash into 2^bits buckets, those in fewer than min_df examples (two in
 * a large set) are
 * dropped, the rest get an idf. Rows are built by classify_vector(), the
 * function prediction uses, so training and prediction cannot disagree on
 * a feature. liblinear's L2-regularised logistic regression (one-vs-rest)
 * (its dual solver), one binary problem per class trained on several
 * threads, gives the weights; we keep them as int16 per feature and class. */
#include "classify_int.h"

#include "kefu.h"

#include <linear.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void quiet(const char *s)
{
    (void)s; /* liblinear prints progress to stdout otherwise */
}

struct df_count {
    uint32_t *df;   /* per bucket: examples holding it */
    uint32_t *seen; /* per bucket: the last example that counted it, + 1 */
    uint32_t row;
    int bits;
};

static void count_df(void *ctx, const char *name, size_t len, int slot)
{
    (void)slot;
    struct df_count *c = ctx;
    uint32_t b = classify_bucket(name, len, c->bits);
    if (c->seen[b] != c->row + 1) {
        c->seen[b] = c->row + 1;
        c->df[b]++;
    }
}

/* Counts document frequencies over every example of rs; *rows gets the total. */
static int document_frequencies(const struct rules *rs, struct df_count *c, size_t *rows)
{
    size_t nb = (size_t)1 << c->bits;
    c->df = kefu_calloc(nb, sizeof *c->df);
    c->seen = kefu_calloc(nb, sizeof *c->seen);
    if (!c->df || !c->seen)
        return KEFU_ENOMEM;
    struct classify_scratch s;
    classify_scratch_init(&s);
    int rc = 0;
    c->row = 0;
    for (size_t i = 0; i < rules_count(rs) && rc == 0; i++) {
        const struct rules_intent *it = rules_intent(rs, i);
        for (size_t k = 0; k < it->n_examples && rc == 0; k++, c->row++) {
            const char *t = it->examples[k].text;
            rc = classify_features(&s, t, strlen(t), count_df, c);
        }
    }
    classify_scratch_release(&s);
    *rows = c->row;
    return rc;
}

/* Makes the model's feature table: kept buckets and their idf. */
static int feature_table(const struct rules *rs, const struct classify_opts *o, size_t rows,
                         const struct df_count *c, struct classify **out)
{
    size_t nb = (size_t)1 << o->hash_bits, n_feat = 0;
    uint32_t min = (uint32_t)classify_min_df(o, rows);
    for (size_t b = 0; b < nb; b++)
        n_feat += c->df[b] >= min;
    int rc =
        classify_alloc(classify_classes(rs), n_feat, o->hash_bits, classify_key(rs, o), (uint32_t)rows, out);
    if (rc < 0)
        return rc;
    struct classify *m = *out;
    size_t f = 0;
    for (size_t b = 0; b < nb; b++)
        if (c->df[b] >= min) {
            m->bucket[f] = (uint32_t)b;
            m->idf[f++] = (float)(log((rows + 1.0) / (c->df[b] + 1.0)) + 1);
        }
    size_t k = 0;
    for (size_t i = 0; i < rules_count(rs); i++)
        if (rules_intent(rs, i)->n_examples)
            m->cls_intent[k++] = (uint32_t)i;
    return 0;
}

/* The rows of the problem: each example's vector, then the bias node. */
struct rows {
    struct problem prob;
    struct feature_node *nodes;
    double *y;
    struct feature_node **x;
};

static void rows_release(struct rows *r)
{
    free(r->nodes);
    free(r->y);
    free(r->x);
}

static int build_rows(const struct rules *rs, const struct classify *m, size_t n_rows, struct rows *r)
{
    size_t cap = 0, used = 0;
    r->y = kefu_malloc((n_rows ? n_rows : 1) * sizeof *r->y);
    r->x = kefu_malloc((n_rows ? n_rows : 1) * sizeof *r->x);
    size_t *start = kefu_malloc((n_rows ? n_rows : 1) * sizeof *start);
    int rc = r->y && r->x && start ? 0 : KEFU_ENOMEM;
    size_t row = 0, cls = 0;
    for (size_t i = 0; i < rules_count(rs) && rc == 0; i++) {
        const struct rules_intent *it = rules_intent(rs, i);
        for (size_t k = 0; k < it->n_examples && rc == 0; k++, row++) {
            struct classify_vec v;
            const char *t = it->examples[k].text;
            if ((rc = classify_vector(m, t, strlen(t), &v)) < 0)
                break;
            if (used + v.n + 2 > cap) {
                size_t nc = (cap + v.n + 2) * 2;
                struct feature_node *p = kefu_realloc(r->nodes, nc * sizeof *p);
                if (!p) {
                    classify_vec_release(&v);
                    rc = KEFU_ENOMEM;
                    break;
                }
                r->nodes = p;
                cap = nc;
            }
            start[row] = used;
            for (size_t j = 0; j < v.n; j++)
                r->nodes[used++] = (struct feature_node){(int)v.f[j] + 1, v.x[j]};
            r->nodes[used++] = (struct feature_node){(int)m->n_feat + 1, 1.0}; /* the bias */
            r->nodes[used++] = (struct feature_node){-1, 0};
            r->y[row] = (double)cls;
            classify_vec_release(&v);
        }
        cls += it->n_examples > 0;
    }
    for (size_t j = 0; rc == 0 && j < n_rows; j++)
        r->x[j] = r->nodes + start[j]; /* nodes moved while growing: point now */
    free(start);
    r->prob = (struct problem){.l = (int)n_rows, .n = (int)m->n_feat + 1, .y = r->y, .x = r->x, .bias = 1};
    return rc;
}

/* ---- one class against the rest, on several threads ----
 *
 * liblinear's dual solver visits the rows in an order drawn with rand(),
 * and one rand() state shared by threads would make the model depend on
 * their timing. So rand() and srand() are defined here, one state per
 * thread: liblinear's calls bind to these (the executable's definition
 * comes first), each class is trained on a binary problem after
 * srand(class + 1), and the same examples give the same model whatever
 * the number of threads or their order. kefu itself never calls rand(). */

static _Thread_local uint64_t rand_state = 0x9e3779b97f4a7c15ULL;

void srand(unsigned seed)
{
    rand_state = 0x9e3779b97f4a7c15ULL * (seed + 1ULL);
}

int rand(void)
{
    /* splitmix64; the top 31 bits, so 0..RAND_MAX as the C library's */
    uint64_t z = (rand_state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return (int)((z ^ (z >> 31)) >> 33);
}

/* One thread's buffers (allocated by the caller, so no thread but the
 * caller allocates through kefu_malloc()). */
struct bufs {
    double *y, *w;            /* per row: the binary label; per feature: a weight */
    float *cen, *score, *tmp; /* a large set's sampling: centroid, per-row score, scratch */
    struct feature_node **xs; /* the sampled rows */
    double *ys;               /* and their labels */
    double rate;
};

/* ---- the rows a large set's class trains on ----
 *
 * Against the rest, a class of a large set (CLASSIFY_LARGE) would visit
 * every row of every other class in each pass of the solver, and most of
 * them are far from it: at 150 intents of 100 examples, 14,900 negatives
 * of which a few hundred shape its boundary. So when the classes together
 * would visit more than a budget of rows per pass (neg_budget,
 * 500,000 by default), each class trains on its
 * own rows and budget / classes others: half of them the rows of
 * other classes nearest to its centroid (those its boundary is about),
 * half a fixed draw from the rest, each of which stands for 1 / rate far
 * rows; the class's bias then gets log(rate), the prior correction for a
 * sample drawn at that rate, so far messages are scored as the full set
 * would score them (docs/routing.md has the measurements). The choice
 * depends only on the rows and the class, never on the thread. */
/* Whether the classes of r sample their negatives (see above). */
static int sampled(const struct rows *r, size_t n_class, size_t budget)
{
    return (size_t)r->prob.l >= CLASSIFY_LARGE && (size_t)r->prob.l * n_class > budget;
}

/* The value of the k-th largest of v[0..n) (k < n); reorders v. */
static float kth_largest(float *v, size_t n, size_t k)
{
    size_t lo = 0, hi = n - 1;
    while (lo < hi) {
        float pivot = v[lo + (hi - lo) / 2];
        size_t i = lo, j = hi;
        while (i <= j) {
            while (v[i] > pivot)
                i++;
            while (v[j] < pivot)
                j--;
            if (i <= j) {
                float t = v[i];
                v[i++] = v[j];
                v[j] = t;
                if (j == 0)
                    break;
                j--;
            }
        }
        if (k <= j)
            hi = j;
        else if (k >= i)
            lo = i;
        else
            return v[k];
    }
    return v[k];
}

/* A number in [0, 1) drawn from row i and class k alone. */
static double row_draw(size_t i, size_t k)
{
    uint64_t z = (uint64_t)i * 0x9e3779b97f4a7c15ULL + (uint64_t)(k + 1) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return (double)((z ^ (z >> 31)) >> 11) / 9007199254740992.0;
}

/* Puts class k's rows (labels y) and its sampled negatives into b->xs and b->ys; returns their number. */
static size_t sample_rows(const struct rows *r, size_t n_feat, size_t n_class, size_t budget, size_t k,
                          const double *y, struct bufs *b)
{
    size_t l = (size_t)r->prob.l, n_neg = 0, n = 0;
    memset(b->cen, 0, (n_feat + 2) * sizeof *b->cen);
    for (size_t i = 0; i < l; i++)
        if (y[i] > 0)
            for (const struct feature_node *x = r->x[i]; x->index != -1; x++)
                b->cen[x->index] += (float)x->value;
    for (size_t i = 0; i < l; i++) {
        float s = 0;
        if (y[i] < 0) {
            for (const struct feature_node *x = r->x[i]; x->index != -1; x++)
                s += b->cen[x->index] * (float)x->value;
            b->tmp[n_neg++] = s;
        }
        b->score[i] = s;
    }
    size_t keep = budget / (n_class ? n_class : 1), hard = keep / 2;
    hard = n_neg < hard ? n_neg : hard;
    float thr = hard && hard < n_neg ? kth_largest(b->tmp, n_neg, hard - 1) : -1;
    size_t above = 0;
    for (size_t i = 0; i < l; i++)
        above += y[i] < 0 && b->score[i] > thr;
    size_t ties = hard - (above < hard ? above : hard); /* rows at thr that count as hard */
    double rate = n_neg > hard ? (double)(keep - hard) / (double)(n_neg - hard) : 0;
    rate = rate < 1 ? rate : 1;
    b->rate = rate;
    for (size_t i = 0; i < l; i++) {
        int take = y[i] > 0 || b->score[i] > thr;
        if (!take && y[i] < 0 && b->score[i] == thr && ties) {
            ties--;
            take = 1;
        } else if (!take && y[i] < 0)
            take = row_draw(i, k) < rate;
        if (take) {
            b->xs[n] = r->x[i];
            b->ys[n++] = y[i];
        }
    }
    return n;
}

struct pool {
    const struct rows *r;
    size_t budget; /* classify_neg_budget() */
    struct classify *m;
    struct parameter p;
    atomic_size_t next; /* the next class to train */
    atomic_int failed;
};

/* Trains class k against the rest and copies its weights into m (int16, scaled). */
static int train_class(struct pool *pl, size_t k, struct bufs *b)
{
    double *y = b->y, *w = b->w;
    const struct rows *r = pl->r;
    struct classify *m = pl->m;
    int pos_rows = 0;
    for (int i = 0; i < r->prob.l; i++) {
        y[i] = r->y[i] == (double)k ? 1 : -1;
        pos_rows += y[i] > 0;
    }
    if (pos_rows == 0 ||
        pos_rows == r->prob.l) { /* a fold without the class (calibration): it never claims */
        for (size_t f = 0; f < m->n_feat; f++)
            m->w[f * m->n_class + k] = 0;
        m->scale[k] = 1;
        m->bias[k] = pos_rows ? 30 : -30;
        return 0;
    }
    struct problem bin = r->prob;
    bin.y = y;
    if (sampled(r, m->n_class, pl->budget)) {
        bin.l = (int)sample_rows(r, m->n_feat, m->n_class, pl->budget, k, y, b);
        bin.x = b->xs;
        bin.y = b->ys;
    }
    srand((unsigned)k);
    struct model *lm = train(&bin, &pl->p);
    if (!lm || lm->nr_class != 2) {
        free_and_destroy_model(&lm);
        return KEFU_EINVAL;
    }
    int pos = lm->label[0] > 0 ? 0 : 1; /* liblinear's index of the label +1 */
    double max = 0;
    for (size_t f = 0; f < m->n_feat; f++) {
        w[f] = get_decfun_coef(lm, (int)f + 1, pos);
        max = fmax(max, fabs(w[f]));
    }
    m->scale[k] = (float)(max > 0 ? max : 1);
    m->bias[k] = (float)get_decfun_bias(lm, pos);
    if (bin.l < r->prob.l && b->rate > 0 && b->rate < 1)
        m->bias[k] += (float)log(b->rate); /* the far rows stood for 1 / rate rows each */
    for (size_t f = 0; f < m->n_feat; f++)
        m->w[f * m->n_class + k] = (int16_t)lrint(w[f] / m->scale[k] * 32767.0);
    free_and_destroy_model(&lm);
    return 0;
}

/* One thread's share and its buffers. */
struct worker {
    struct pool *pl;
    struct bufs b;
};

static void *train_worker(void *arg)
{
    struct worker *wk = arg;
    struct pool *pl = wk->pl;
    for (size_t k; !atomic_load(&pl->failed) && (k = atomic_fetch_add(&pl->next, 1)) < pl->m->n_class;) {
        int rc = train_class(pl, k, &wk->b);
        if (rc < 0)
            atomic_store(&pl->failed, rc);
    }
    return NULL;
}

static void bufs_release(struct bufs *b)
{
    free(b->y);
    free(b->w);
    free(b->cen);
    free(b->score);
    free(b->tmp);
    free(b->xs);
    free(b->ys);
}

/* Allocates b for r's rows and n_feat features (the sampling's only when it samples). */
static int bufs_init(struct bufs *b, const struct rows *r, size_t n_feat, size_t n_class, size_t budget)
{
    size_t rows = r->prob.l ? (size_t)r->prob.l : 1;
    b->y = kefu_malloc(rows * sizeof *b->y);
    b->w = kefu_malloc((n_feat ? n_feat : 1) * sizeof *b->w);
    if (!b->y || !b->w)
        return KEFU_ENOMEM;
    if (!sampled(r, n_class, budget))
        return 0;
    b->cen = kefu_malloc((n_feat + 2) * sizeof *b->cen);
    b->score = kefu_malloc(rows * sizeof *b->score);
    b->tmp = kefu_malloc(rows * sizeof *b->tmp);
    b->xs = kefu_malloc(rows * sizeof *b->xs);
    b->ys = kefu_malloc(rows * sizeof *b->ys);
    return b->cen && b->score && b->tmp && b->xs && b->ys ? 0 : KEFU_ENOMEM;
}

/* The threads o asks for (0: the online processors, at most 4), at most one per class. */
static int thread_count(const struct classify_opts *o, size_t classes)
{
    long n = o->threads > 0 ? o->threads : sysconf(_SC_NPROCESSORS_ONLN);
    if (n < 1)
        n = 1;
    if (o->threads <= 0 && n > 4)
        n = 4;
    if ((size_t)n > classes)
        n = (long)classes;
    return (int)n;
}

/* Trains every class of m on r's rows. */
static int train_classes(const struct classify_opts *o, const struct rows *r, struct classify *m)
{
    struct pool pl = {.r = r, .m = m, .budget = classify_neg_budget(o)};
    pl.p =
        (struct parameter){.solver_type = L2R_LR_DUAL, .eps = classify_eps(o, (size_t)r->prob.l), .C = o->c};
    atomic_init(&pl.next, 0);
    atomic_init(&pl.failed, 0);
    set_print_string_function(quiet);
    if (check_parameter(&r->prob, &pl.p))
        return KEFU_EINVAL;
    enum { MAX_THREADS = 16 };
    int n = thread_count(o, m->n_class);
    n = n < MAX_THREADS ? n : MAX_THREADS;
    struct worker wk[MAX_THREADS] = {{0}};
    int rc = 0;
    for (int t = 0; t < n && rc == 0; t++) {
        wk[t] = (struct worker){.pl = &pl};
        if (bufs_init(&wk[t].b, r, m->n_feat, m->n_class, pl.budget) < 0)
            rc = KEFU_ENOMEM;
    }
    if (rc == 0) {
        pthread_t th[MAX_THREADS];
        int started = 0;
        while (started < n - 1 && pthread_create(&th[started], NULL, train_worker, &wk[started + 1]) == 0)
            started++;
        train_worker(&wk[0]); /* this thread trains too */
        for (int t = 0; t < started; t++)
            pthread_join(th[t], NULL);
        rc = atomic_load(&pl.failed);
    }
    for (int t = 0; t < n; t++)
        bufs_release(&wk[t].b);
    return rc;
}

/* ---- calibration ----
 *
 * A model's probabilities on new messages are too timid: one-vs-rest
 * sigmoids shared out over many classes stay low even when the best class
 * is nearly always right (docs/quality.md). So they are calibrated on
 * examples the fitting model did not see: for a small set, three folds
 * (example j of an intent in fold j mod 3), each predicted by a model of
 * the other two; for a large set (CLASSIFY_LARGE), where that would treble
 * the training, one model of fold 0 predicts the other folds, with as many
 * folds as keep fold 0 near CAL_TRAIN rows (three at least). At most
 * CAL_ROWS held-out rows are used.
 *
 * What is fitted: the probability classify_predict() gives the best class
 * (its sigmoid shared out over the classes) goes through
 * sigmoid(a logit(p) + b), with a and b that minimise the log loss of
 * "the best class is the right one" on the held-out rows (Platt scaling
 * of that probability). The map rises with p, so the order of the
 * candidates never changes; only their probabilities are true to how
 * often they are right (docs/quality.md). */

#define CAL_FOLDS 3
#define CAL_ROWS  2000
#define CAL_TRAIN 3500

struct held_out {
    double *z;       /* [row × class]: the fold model's raw scores */
    uint32_t *truth; /* each row's class */
    size_t n, cap, n_class;
};

/* The fold of every row: its index among its intent's examples, mod folds. */
static void row_folds(const struct rows *r, unsigned char *fold, size_t folds)
{
    size_t run = 0;
    for (int i = 0; i < r->prob.l; i++) {
        run = i > 0 && r->y[i] == r->y[i - 1] ? run + 1 : 0;
        fold[i] = (unsigned char)(run % folds);
    }
}

/* Trains a model of the rows outside fold (or, with only, of fold only) and
 * adds the raw scores of the rows it did not see (every one of them when
 * stride is 1, else every stride-th) to h. */
static int fold_scores(const struct classify_opts *o, const struct rows *r, const struct classify *m,
                       const unsigned char *fold, int f, int only, size_t stride, struct held_out *h)
{
    size_t l = (size_t)r->prob.l, n = 0;
    struct rows sub = {0};
    sub.x = kefu_malloc(l * sizeof *sub.x);
    sub.y = kefu_malloc(l * sizeof *sub.y);
    struct classify *fm = NULL;
    int rc = sub.x && sub.y ? classify_alloc(m->n_class, m->n_feat, m->bits, 0, m->rows, &fm) : KEFU_ENOMEM;
    for (size_t i = 0; rc == 0 && i < l; i++)
        if ((fold[i] == f) == (only != 0)) {
            sub.x[n] = r->x[i];
            sub.y[n++] = r->y[i];
        }
    if (rc == 0) {
        sub.prob = r->prob;
        sub.prob.l = (int)n;
        sub.prob.x = sub.x;
        sub.prob.y = sub.y;
        rc = n ? train_classes(o, &sub, fm) : 0;
    }
    size_t seen = 0;
    for (size_t i = 0; rc == 0 && n && i < l; i++) {
        if ((fold[i] == f) == (only != 0) || seen++ % stride != 0 || h->n == h->cap)
            continue;
        double *z = &h->z[h->n * m->n_class];
        for (size_t k = 0; k < m->n_class; k++)
            z[k] = fm->bias[k];
        for (const struct feature_node *x = r->x[i]; x->index != -1; x++)
            if ((size_t)x->index <= m->n_feat)
                for (size_t k = 0; k < m->n_class; k++)
                    z[k] += x->value * fm->w[(size_t)(x->index - 1) * m->n_class + k] * (double)fm->scale[k] /
                            32767.0;
        uint32_t t = (uint32_t)r->y[i];
        if (fm->bias[t] > -30) /* the class had examples in the fold's training */
            h->truth[h->n++] = t;
    }
    classify_unref(fm);
    free(sub.x);
    free(sub.y);
    return rc;
}

/* Turns h's raw scores into (logit of the best probability, 1 if it is the
 * right class) pairs, as classify_predict() computes that probability. */
static void best_points(struct held_out *h, double *lp, unsigned char *right)
{
    for (size_t i = 0; i < h->n; i++) {
        const double *z = &h->z[i * h->n_class];
        double total = 0, best = -1;
        size_t arg = 0;
        for (size_t k = 0; k < h->n_class; k++) {
            double s = 1 / (1 + exp(-z[k]));
            total += s;
            if (s > best) {
                best = s;
                arg = k;
            }
        }
        double p = best / (total > CLASSIFY_NORM_FLOOR ? total : CLASSIFY_NORM_FLOOR);
        p = p < 1e-6 ? 1e-6 : p > 1 - 1e-6 ? 1 - 1e-6 : p;
        lp[i] = log(p / (1 - p));
        right[i] = arg == h->truth[i];
    }
}

struct points {
    const double *lp;
    const unsigned char *right;
    size_t n;
};

/* The mean log loss of sigmoid(a × lp + b) against right. */
static double log_loss(const struct points *pt, double a, double b)
{
    double sum = 0;
    for (size_t i = 0; i < pt->n; i++) {
        double q = 1 / (1 + exp(-(a * pt->lp[i] + b)));
        q = pt->right[i] ? q : 1 - q;
        sum -= log(q > 1e-12 ? q : 1e-12);
    }
    return pt->n ? sum / (double)pt->n : 0;
}

/* The minimum of log_loss over a in [lo, hi] (b = other, which 0) or over b (a = other, which 1). */
static double golden(const struct points *pt, double lo, double hi, double other, int which)
{
    const double g = 0.6180339887498949;
    double x1 = hi - g * (hi - lo), x2 = lo + g * (hi - lo);
    double f1 = which ? log_loss(pt, other, x1) : log_loss(pt, x1, other);
    double f2 = which ? log_loss(pt, other, x2) : log_loss(pt, x2, other);
    for (int it = 0; it < 40; it++) {
        if (f1 < f2) {
            hi = x2;
            x2 = x1;
            f2 = f1;
            x1 = hi - g * (hi - lo);
            f1 = which ? log_loss(pt, other, x1) : log_loss(pt, x1, other);
        } else {
            lo = x1;
            x1 = x2;
            f1 = f2;
            x2 = lo + g * (hi - lo);
            f2 = which ? log_loss(pt, other, x2) : log_loss(pt, x2, other);
        }
    }
    return (lo + hi) / 2;
}

/* Fits m's calibration on held-out rows of r (see above); leaves a = 1, b = 0 when there are too few. */
static int calibrate(const struct classify_opts *o, const struct rows *r, struct classify *m)
{
    size_t l = (size_t)r->prob.l, large = l >= CLASSIFY_LARGE;
    /* a large set's fold model learns from about CAL_TRAIN rows at most (a third of Banking77) */
    size_t folds =
        large && l / CAL_TRAIN > CAL_FOLDS ? (l / CAL_TRAIN < 200 ? l / CAL_TRAIN : 200) : CAL_FOLDS;
    size_t held = large ? l - (l + folds - 1) / folds : l;
    size_t stride = held > CAL_ROWS ? (held + CAL_ROWS - 1) / CAL_ROWS : 1;
    struct held_out h = {.n_class = m->n_class, .cap = held / stride + 1};
    unsigned char *fold = kefu_malloc(l ? l : 1);
    h.z = kefu_malloc(h.cap * m->n_class * sizeof *h.z);
    h.truth = kefu_malloc(h.cap * sizeof *h.truth);
    int rc = fold && h.z && h.truth ? 0 : KEFU_ENOMEM;
    if (rc == 0)
        row_folds(r, fold, folds);
    if (rc == 0 && large)
        rc = fold_scores(o, r, m, fold, 0, 1, stride, &h);
    for (int f = 0; rc == 0 && !large && f < CAL_FOLDS; f++)
        rc = fold_scores(o, r, m, fold, f, 0, stride, &h);
    double *lp = rc == 0 ? kefu_malloc((h.n ? h.n : 1) * sizeof *lp) : NULL;
    unsigned char *right = lp ? kefu_malloc(h.n ? h.n : 1) : NULL;
    if (rc == 0 && !right)
        rc = KEFU_ENOMEM;
    if (rc == 0 && h.n >= 2 * m->n_class) {
        best_points(&h, lp, right);
        struct points pt = {lp, right, h.n};
        double a = 1, b = 0;
        for (int round = 0; round < 4; round++) {
            a = golden(&pt, 0.2, 5, b, 0);
            b = golden(&pt, -5, 5, a, 1);
        }
        classify_set_calibration(m, a, b);
    }
    free(lp);
    free(right);
    free(fold);
    free(h.z);
    free(h.truth);
    return rc;
}

int classify_train(const struct rules *rs, const struct classify_opts *o, struct classify **out)
{
    *out = NULL;
    struct df_count c = {.bits = o->hash_bits};
    size_t n_rows = 0;
    struct classify *m = NULL;
    struct rows r = {0};
    int rc = document_frequencies(rs, &c, &n_rows);
    if (rc == 0)
        rc = feature_table(rs, o, n_rows, &c, &m);
    free(c.df);
    free(c.seen);
    if (rc == 0) {
        m->slots = classify_rules_slots(rs);
        rc = build_rows(rs, m, n_rows, &r);
    }
    if (rc == 0)
        rc = train_classes(o, &r, m);
    if (rc == 0)
        rc = calibrate(o, &r, m);
    rows_release(&r);
    if (rc < 0) {
        classify_unref(m);
        return rc;
    }
    *out = m;
    return 0;
}
