/* classify_train.c — trains the classifier with liblinear.
 * Every example line of an intent is one row; features (classify_feat.c)
 * hash into 2^bits buckets, those in fewer than min_df examples (two in
 * a large set) are
 * dropped, the rest get an idf. Rows are built by classify_vector(), the
 * function prediction uses, so training and prediction cannot disagree on
 * a feature. liblinear's L2-regularised logistic regression (one-vs-rest)
 * (its dual solver) gives the weights; we keep them as int16 per feature and class. */
#include "classify_int.h"

#include "kefu.h"

#include <linear.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

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

static void count_df(void *ctx, const char *name, size_t len)
{
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

/* Copies liblinear's weights into m, int16 per feature and class. */
static void keep_weights(struct classify *m, const struct model *lm)
{
    int label_of[m->n_class ? m->n_class : 1]; /* class → liblinear's label index */
    for (int j = 0; j < lm->nr_class; j++)
        label_of[(int)lm->label[j]] = j;
    for (size_t k = 0; k < m->n_class; k++) {
        double max = 0;
        for (size_t f = 0; f < m->n_feat; f++)
            max = fmax(max, fabs(get_decfun_coef(lm, (int)f + 1, label_of[k])));
        m->scale[k] = (float)(max > 0 ? max : 1);
        m->bias[k] = (float)get_decfun_bias(lm, label_of[k]);
        for (size_t f = 0; f < m->n_feat; f++)
            m->w[f * m->n_class + k] =
                (int16_t)lrint(get_decfun_coef(lm, (int)f + 1, label_of[k]) / m->scale[k] * 32767.0);
    }
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
    if (rc == 0)
        rc = build_rows(rs, m, n_rows, &r);
    if (rc == 0) {
        /* the dual solver: several times faster than the primal one on these
         * sparse rows, at the same accuracy (docs/routing.md) */
        struct parameter p = {.solver_type = L2R_LR_DUAL, .eps = classify_eps(o, n_rows), .C = o->c};
        set_print_string_function(quiet);
        const char *bad = check_parameter(&r.prob, &p);
        /* the dual solver visits rows in rand() order: a fixed seed makes the
         * same examples give the same model (kefu itself never calls rand()) */
        srand(1);
        struct model *lm = bad ? NULL : train(&r.prob, &p);
        if (lm && lm->nr_class == (int)m->n_class)
            keep_weights(m, lm);
        else
            rc = KEFU_EINVAL;
        free_and_destroy_model(&lm);
    }
    rows_release(&r);
    if (rc < 0) {
        classify_unref(m);
        return rc;
    }
    *out = m;
    return 0;
}
