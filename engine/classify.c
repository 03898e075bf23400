/* classify.c — the trained intent classifier: the model in memory and on
 * disk, prediction and explanations. Training is classify_train.c.
 *
 * A model keeps, for the features kept at training (a sorted list of hash
 * buckets), their idf and one int16 weight per class, scaled per class;
 * that and the class biases are the whole model. On disk it is the same
 * bytes behind a header and followed by a checksum; classify_build() loads
 * the file whose name is the key of the examples and settings, and trains
 * (and rewrites it) when the file is missing, corrupt or truncated.
 *
 * Probabilities: liblinear's logistic regression is one-vs-rest, so each
 * class k gives s_k = sigmoid(w_k·x + b_k). The probability of k is
 * s_k / max(1, Σ s): when every class says "not me" the total stays below 1
 * and the rest is the probability that none fits (docs/routing.md). The
 * sigmoids are calibrated: s_k = sigmoid(a (w_k·x + b_k) + b), with a and b
 * fitted at training on examples held out of the training (classify_train.c). */
#include "classify.h"

#include "classify_int.h"
#include "kefu.h"
#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

void classify_opts_default(struct classify_opts *o)
{
    o->hash_bits = 18;
    o->c = 32;
    o->min_df = 0;
    o->eps = 0;
    o->neg_budget = 0;
    o->threads = 0;
    o->cache_dir = NULL;
}

int classify_min_df(const struct classify_opts *o, size_t rows)
{
    return o->min_df > 0 ? o->min_df : rows >= CLASSIFY_LARGE ? 2 : 1;
}

size_t classify_neg_budget(const struct classify_opts *o)
{
    return o->neg_budget > 0 ? o->neg_budget : 500000;
}

double classify_eps(const struct classify_opts *o, size_t rows)
{
    return o->eps > 0 ? o->eps : rows >= CLASSIFY_LARGE ? 3.0 : 0.1;
}

/* ---- keys and layout ---- */

uint64_t classify_key(const struct rules *rs, const struct classify_opts *o)
{
    char set[128];
    int n = snprintf(set, sizeof set, "kefu classify %d bits=%d c=%.6g min_df=%d eps=%.6g neg=%zu",
                     CLASSIFY_VERSION, o->hash_bits, o->c, o->min_df, o->eps, o->neg_budget);
    uint64_t h = classify_fnv(CLASSIFY_FNV_INIT, set, (size_t)n + 1);
    for (size_t i = 0; i < rules_count(rs); i++) {
        const struct rules_intent *it = rules_intent(rs, i);
        if (!it->n_examples)
            continue;
        h = classify_fnv(h, it->name, strlen(it->name) + 1);
        for (size_t k = 0; k < it->n_examples; k++)
            h = classify_fnv(h, it->examples[k].text, strlen(it->examples[k].text) + 1);
        h = classify_fnv(h, "\n", 1);
    }
    return h;
}

int classify_rules_slots(const struct rules *rs)
{
    for (size_t i = 0; i < rules_count(rs); i++)
        if (rules_intent(rs, i)->n_slots)
            return 1;
    return 0;
}

size_t classify_classes(const struct rules *rs)
{
    size_t n = 0;
    for (size_t i = 0; i < rules_count(rs); i++)
        n += rules_intent(rs, i)->n_examples > 0;
    return n;
}

/* Bytes of the body (everything between the header and the checksum). */
static size_t body_size(size_t n_class, size_t n_feat)
{
    size_t w = n_feat * n_class * sizeof(int16_t);
    return n_class * 3 * 4 + n_feat * 2 * 4 + ((w + 7) & ~(size_t)7);
}

/* Points m's arrays into m->blob, laid out after the header. */
static void layout(struct classify *m)
{
    unsigned char *p = (unsigned char *)m->blob + sizeof(struct classify_header);
    m->cls_intent = (uint32_t *)p;
    p += m->n_class * 4;
    m->scale = (float *)p;
    p += m->n_class * 4;
    m->bias = (float *)p;
    p += m->n_class * 4;
    m->bucket = (uint32_t *)p;
    p += m->n_feat * 4;
    m->idf = (float *)p;
    p += m->n_feat * 4;
    m->w = (int16_t *)p;
}

int classify_alloc(size_t n_class, size_t n_feat, int bits, uint64_t key, uint32_t rows,
                   struct classify **out)
{
    *out = NULL;
    if (n_feat > (1u << 24) || n_class > (1u << 20) || (n_class && n_feat > SIZE_MAX / 2 / n_class))
        return KEFU_ERANGE;
    struct classify *m = kefu_calloc(1, sizeof *m);
    size_t size = sizeof(struct classify_header) + body_size(n_class, n_feat) + 8;
    if (!m || !(m->blob = kefu_calloc(1, size))) {
        free(m);
        return KEFU_ENOMEM;
    }
    atomic_init(&m->refs, 1);
    m->size = size;
    m->n_class = n_class;
    m->n_feat = n_feat;
    m->bits = bits;
    struct classify_header *h = m->blob;
    memcpy(h->magic, CLASSIFY_MAGIC, 8);
    h->version = CLASSIFY_VERSION;
    h->bits = (uint32_t)bits;
    h->n_class = (uint32_t)n_class;
    h->n_feat = (uint32_t)n_feat;
    h->key = key;
    h->rows = rows;
    m->rows = rows;
    h->cal_a = m->cal_a = 1;
    h->cal_b = m->cal_b = 0;
    layout(m);
    *out = m;
    return 0;
}

void classify_set_calibration(struct classify *m, double a, double b)
{
    struct classify_header *h = m->blob;
    h->cal_a = m->cal_a = (float)a;
    h->cal_b = m->cal_b = (float)b;
}

struct classify *classify_ref(struct classify *m)
{
    if (m)
        atomic_fetch_add(&m->refs, 1);
    return m;
}

void classify_unref(struct classify *m)
{
    if (!m || atomic_fetch_sub(&m->refs, 1) != 1)
        return;
    if (m->mapped)
        munmap(m->blob, m->mapped);
    else
        free(m->blob);
    free(m);
}

int classify_has(const struct classify *m, uint32_t intent)
{
    size_t lo = 0, hi = m->n_class; /* cls_intent ascends: classes follow the intents' order */
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (m->cls_intent[mid] < intent)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < m->n_class && m->cls_intent[lo] == intent;
}

void classify_stats(const struct classify *m, struct classify_info *info)
{
    info->classes = m->n_class;
    info->features = m->n_feat;
    info->bytes = m->size;
    info->cal_a = m->cal_a;
    info->cal_b = m->cal_b;
}

/* ---- the file ---- */

/* The file's checksum: 8-byte words in four independent lanes (a multiply
 * and a shift each), then the tail and the lanes through FNV-1a. A
 * byte-wise FNV-1a of a megabyte took longer than loading the rules. */
static uint64_t blob_sum(const struct classify *m)
{
    const unsigned char *p = m->blob;
    size_t n = m->size - 8, i = 0;
    uint64_t lane[4] = {CLASSIFY_FNV_INIT, 0x9e3779b97f4a7c15ULL, 0xbf58476d1ce4e5b9ULL,
                        0x94d049bb133111ebULL};
    for (; i + 32 <= n; i += 32)
        for (int j = 0; j < 4; j++) {
            uint64_t w;
            memcpy(&w, p + i + 8 * (size_t)j, 8);
            lane[j] = (lane[j] ^ w) * 0xff51afd7ed558ccdULL;
            lane[j] ^= lane[j] >> 32;
        }
    uint64_t h = classify_fnv(CLASSIFY_FNV_INIT, p + i, n - i);
    return classify_fnv(h, lane, sizeof lane);
}

int classify_save(const struct classify *m, const char *path)
{
    uint64_t sum = blob_sum(m);
    memcpy((unsigned char *)m->blob + m->size - 8, &sum, 8);
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.%ld.tmp", path, (long)getpid());
    FILE *f = fopen(tmp, "wb");
    if (!f)
        return KEFU_EIO;
    int ok = fwrite(m->blob, 1, m->size, f) == m->size;
    ok &= fflush(f) == 0 && fsync(fileno(f)) == 0;
    ok &= fclose(f) == 0;
    if (!ok || rename(tmp, path) < 0) {
        unlink(tmp);
        return KEFU_EIO;
    }
    return 0;
}

/* Maps the whole file at path read-only (pages from the page cache, no
 * copy and no fresh pages to fault in: a cached model is read on every
 * start and reload). An empty file gets *buf NULL and *len 0. Model files
 * are only ever replaced by rename (classify_save()), never rewritten in
 * place, so a mapping always sees the whole file it was made of. */
static int map_file(const char *path, unsigned char **buf, size_t *len)
{
    *buf = NULL;
    *len = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return errno == ENOENT ? KEFU_ENOENT : KEFU_EIO;
    struct stat st;
    int rc = fstat(fd, &st) < 0 || st.st_size < 0 || (uint64_t)st.st_size > (1ULL << 31) ? KEFU_EIO : 0;
    if (rc == 0 && st.st_size > 0) {
        void *p = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE | MAP_POPULATE, fd, 0);
        if (p == MAP_FAILED)
            rc = errno == ENOMEM ? KEFU_ENOMEM : KEFU_EIO;
        else {
            *buf = p;
            *len = (size_t)st.st_size;
        }
    }
    close(fd);
    return rc;
}

/* Checks what the header promises against the file and the rule set. */
static const char *check_header(const unsigned char *buf, size_t len, uint64_t key, size_t classes, int bits)
{
    struct classify_header h;
    if (len < sizeof h)
        return "truncated header";
    memcpy(&h, buf, sizeof h);
    if (memcmp(h.magic, CLASSIFY_MAGIC, 8) != 0)
        return "not a kefu model file";
    if (h.version != CLASSIFY_VERSION)
        return "another model version";
    if (h.key != key || h.bits != (uint32_t)bits)
        return "made for other examples or settings";
    if (h.n_class != classes)
        return "class count differs from the rule set";
    if (h.n_feat > (1u << 24) || len != sizeof h + body_size(h.n_class, h.n_feat) + 8)
        return len < sizeof h + body_size(h.n_class, h.n_feat) + 8 ? "truncated" : "wrong size";
    return NULL;
}

/* Checks the arrays: class intents as the rule set has them, buckets ascending. */
static const char *check_body(const struct classify *m, const struct rules *rs)
{
    size_t c = 0;
    for (size_t i = 0; i < rules_count(rs); i++)
        if (rules_intent(rs, i)->n_examples && m->cls_intent[c++] != i)
            return "classes differ from the rule set";
    for (size_t f = 0; f < m->n_feat; f++)
        if (m->bucket[f] >> m->bits || (f && m->bucket[f] <= m->bucket[f - 1]) || !isfinite(m->idf[f]))
            return "corrupt feature table";
    for (size_t k = 0; k < m->n_class; k++)
        if (!isfinite(m->scale[k]) || !isfinite(m->bias[k]))
            return "corrupt class table";
    if (!(m->cal_a > 0 && m->cal_a < 100) || !isfinite(m->cal_b))
        return "corrupt calibration";
    return NULL;
}

int classify_load(const char *path, const struct rules *rs, const struct classify_opts *o,
                  struct classify **out, char *why, size_t cap)
{
    *out = NULL;
    unsigned char *buf;
    size_t len;
    int rc = map_file(path, &buf, &len);
    if (rc < 0) {
        snprintf(why, cap, "%s", rc == KEFU_ENOENT ? "no such file" : kefu_strerror(rc));
        return rc;
    }
    const char *bad = check_header(buf, len, classify_key(rs, o), classify_classes(rs), o->hash_bits);
    struct classify *m = NULL;
    if (!bad) {
        if (!(m = kefu_calloc(1, sizeof *m))) {
            munmap(buf, len);
            return KEFU_ENOMEM;
        }
        const struct classify_header *h = (const void *)buf;
        atomic_init(&m->refs, 1);
        m->blob = buf; /* the mapping: the header, the arrays and the checksum */
        m->size = m->mapped = len;
        m->n_class = h->n_class;
        m->n_feat = h->n_feat;
        m->bits = o->hash_bits;
        m->rows = h->rows;
        m->cal_a = h->cal_a;
        m->cal_b = h->cal_b;
        m->slots = classify_rules_slots(rs);
        layout(m);
        uint64_t sum;
        memcpy(&sum, buf + len - 8, 8);
        bad = sum != blob_sum(m) ? "checksum mismatch" : check_body(m, rs);
    } else if (buf)
        munmap(buf, len);
    if (bad) {
        classify_unref(m);
        snprintf(why, cap, "%s", bad);
        return KEFU_EINVAL;
    }
    *out = m;
    return 0;
}

/* ---- prediction ---- */

struct collect {
    uint32_t *b;
    size_t n, cap;
    int bits, oom;
    unsigned terms;     /* distinct words with a letter, and CJK characters */
    uint64_t words[16]; /* the distinct words' hashes so far (the first 16) */
    size_t n_words;
};

/* 1 if s[0..n) holds an ASCII letter or a non-ASCII byte (a letter of another script). */
static int has_letter(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if ((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') || (unsigned char)s[i] >= 0x80)
            return 1;
    return 0;
}

/* The top bit of a collected bucket: the feature came from a slot-shaped word. */
#define SLOT_BIT 0x80000000u

static void collect_bucket(void *ctx, const char *name, size_t len, int slot)
{
    struct collect *c = ctx;
    /* terms: distinct words with a letter ("w:" features) and CJK characters ("z:" 1-grams) */
    if (len > 2 && name[1] == ':' && name[0] == 'z' && len <= 6)
        c->terms++;
    else if (len > 2 && name[0] == 'w' && name[1] == ':' && has_letter(name + 2, len - 2)) {
        uint64_t h = classify_fnv(CLASSIFY_FNV_INIT, name, len);
        size_t k = 0;
        while (k < c->n_words && c->words[k] != h)
            k++;
        if (k == c->n_words && k < sizeof c->words / sizeof c->words[0]) {
            c->words[c->n_words++] = h;
            c->terms++;
        }
    }
    if (c->n == c->cap) {
        size_t cap = c->cap ? 2 * c->cap : 256;
        uint32_t *b = kefu_realloc(c->b, cap * sizeof *b);
        if (!b) {
            c->oom = 1;
            return;
        }
        c->b = b;
        c->cap = cap;
    }
    c->b[c->n++] = classify_bucket(name, len, c->bits) | (slot ? SLOT_BIT : 0);
}

/* Orders collected buckets by bucket, the slot bit aside. */
static int cmp_bucket(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a & ~SLOT_BIT, y = *(const uint32_t *)b & ~SLOT_BIT;
    return x < y ? -1 : x > y;
}

int classify_find(const struct classify *m, uint32_t bucket)
{
    size_t lo = 0, hi = m->n_feat;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (m->bucket[mid] < bucket)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < m->n_feat && m->bucket[lo] == bucket ? (int)lo : -1;
}

int classify_vector(const struct classify *m, const char *text, size_t len, struct classify_vec *v)
{
    struct classify_scratch s;
    classify_scratch_init(&s);
    struct collect c = {.bits = m->bits};
    int rc = classify_features(&s, text, len, collect_bucket, &c);
    classify_scratch_release(&s);
    if (rc == 0 && c.oom)
        rc = KEFU_ENOMEM;
    v->n = 0;
    v->any = 0;
    v->only_slots = 0;
    v->terms = c.terms;
    v->f = NULL;
    v->x = NULL;
    if (rc == 0 && c.n &&
        (!(v->f = kefu_malloc(c.n * sizeof *v->f)) || !(v->x = kefu_malloc(c.n * sizeof *v->x))))
        rc = KEFU_ENOMEM;
    if (rc < 0) {
        free(c.b);
        classify_vec_release(v);
        return rc;
    }
    if (c.n)
        qsort(c.b, c.n, sizeof *c.b, cmp_bucket);     /* c.b is NULL for a message of no feature */
    double norm = 0, unseen = log(m->rows + 1.0) + 1; /* the idf of a feature no example has */
    double mass = 0, known = 0; /* the mass of features not only from slot-shaped words, and its known part */
    v->any = 0;
    for (size_t i = 0; i < c.n;) {
        size_t j = i, words = 0; /* occurrences, and those from words that are not slot-shaped */
        for (; j < c.n && (c.b[j] & ~SLOT_BIT) == (c.b[i] & ~SLOT_BIT); j++)
            words += !m->slots || !(c.b[j] & SLOT_BIT);
        /* only from slot-shaped words (an order number, an amount, an address); a
         * feature other words have too ("ost" of "lost" and of "post@...") counts
         * their occurrences only */
        int slot = words == 0;
        int f = classify_find(m, c.b[i] & ~SLOT_BIT);
        double x = (1 + log((double)(slot ? j - i : words))) * (f >= 0 ? m->idf[f] : unseen);
        if (f >= 0) {
            v->f[v->n] = (uint32_t)f;
            v->x[v->n++] = x;
        }
        /* unknown features weigh in the norm: noise around one known word
         * dilutes it; an unknown order number or amount does not */
        norm += f >= 0 || !slot ? x * x : 0;
        if (!slot) {
            mass += x * x;
            known += f >= 0 ? x * x : 0;
        }
        v->any = 1;
        i = j;
    }
    free(c.b);
    norm = norm > 0 ? 1 / sqrt(norm) : 0;
    for (size_t i = 0; i < v->n; i++)
        v->x[i] *= norm;
    /* an order number no example has is no sign of another domain: slot-shaped
     * words count neither for nor against the known share; a message of
     * nothing else (a bare number) is known 0 */
    v->known = mass > 0 ? known / mass : 0;
    v->only_slots = v->any && mass == 0;
    return 0;
}

void classify_vec_release(struct classify_vec *v)
{
    free(v->f);
    free(v->x);
    v->f = NULL;
    v->x = NULL;
    v->n = 0;
}

/* Class k's weight for feature f. */
static double weight(const struct classify *m, size_t f, size_t k)
{
    return m->w[f * m->n_class + k] * (double)m->scale[k] / 32767.0;
}

static void keep_best(struct classify_result *out, uint32_t intent, double p)
{
    size_t at = out->n;
    while (at > 0 && out->cand[at - 1].p < p)
        at--;
    if (at >= CLASSIFY_MAX_CANDS)
        return;
    size_t end = out->n < CLASSIFY_MAX_CANDS ? out->n : CLASSIFY_MAX_CANDS - 1;
    memmove(&out->cand[at + 1], &out->cand[at], (end - at) * sizeof out->cand[0]);
    out->cand[at] = (struct classify_cand){intent, p, p};
    if (out->n < CLASSIFY_MAX_CANDS)
        out->n++;
}

/* The calibrated probability of a raw one p: sigmoid(a logit(p) + b). */
static double calibrated(const struct classify *m, double p)
{
    if (p <= 0 || p >= 1)
        return p;
    return 1 / (1 + exp(-(m->cal_a * log(p / (1 - p)) + m->cal_b)));
}

int classify_predict(const struct classify *m, const char *text, size_t len, struct classify_result *out)
{
    memset(out, 0, sizeof *out);
    out->none = 1;
    struct classify_vec v;
    int rc = classify_vector(m, text, len, &v);
    if (rc < 0 || v.n == 0 || v.only_slots) {
        /* no feature at all (empty, emoji, punctuation), none an example
         * has (keyboard mash) or only slot-shaped words (a bare number, an
         * order id: what to do with it is the dialog's question): no
         * evidence, no class, only the biases' priors */
        out->terms = rc < 0 ? 0 : v.terms;
        classify_vec_release(&v);
        return rc;
    }
    double stack[256], *z = m->n_class <= 256 ? stack : kefu_malloc(m->n_class * sizeof *z);
    if (!z) {
        classify_vec_release(&v);
        return KEFU_ENOMEM;
    }
    for (size_t k = 0; k < m->n_class; k++)
        z[k] = 0;
    for (size_t i = 0; i < v.n; i++) {
        const int16_t *row = &m->w[(size_t)v.f[i] * m->n_class];
        for (size_t k = 0; k < m->n_class; k++)
            z[k] += v.x[i] * row[k];
    }
    double total = 0;
    for (size_t k = 0; k < m->n_class; k++) {
        z[k] = 1 / (1 + exp(-(z[k] * m->scale[k] / 32767.0 + m->bias[k])));
        total += z[k];
    }
    /* each class's own sigmoid, shared out over the classes when they sum
     * past CLASSIFY_NORM_FLOOR: one clear class among several weak ones keeps
     * its lead, a message no class claims stays low (docs/routing.md) */
    double div = total > CLASSIFY_NORM_FLOOR ? total : CLASSIFY_NORM_FLOOR;
    for (size_t k = 0; k < m->n_class; k++)
        keep_best(out, m->cls_intent[k], z[k] / div);
    for (size_t k = 0; k < out->n; k++)
        out->cand[k].p = calibrated(m, out->cand[k].p);
    out->none = 1 - (total < 1 ? total : 1);
    out->known = v.known;
    out->terms = v.terms;
    if (z != stack)
        free(z);
    classify_vec_release(&v);
    return 0;
}

/* ---- explanations ---- */

struct named {
    const struct classify *m;
    struct classify_feature *f;
    int *idx;   /* each listed feature's index in m */
    double *tf; /* its count, then its tf-idf value */
    size_t n, cap;
};

static void name_feature(void *ctx, const char *name, size_t len, int slot)
{
    struct named *e = ctx;
    (void)slot;
    int f = classify_find(e->m, classify_bucket(name, len, e->m->bits));
    size_t n = len < sizeof e->f[0].name - 1 ? len : sizeof e->f[0].name - 1;
    for (size_t i = 0; i < e->n; i++)
        if (e->idx[i] == f && (f >= 0 || strncmp(e->f[i].name, name, n) == 0)) { /* one bucket, one feature */
            e->tf[i] += 1;
            return;
        }
    if (e->n == e->cap)
        return;
    memcpy(e->f[e->n].name, name, n);
    e->f[e->n].name[n] = 0;
    e->idx[e->n] = f;
    e->tf[e->n++] = 1;
}

static int cmp_abs_weight(const void *a, const void *b)
{
    double x = fabs(((const struct classify_feature *)a)->weight);
    double y = fabs(((const struct classify_feature *)b)->weight);
    return x < y ? 1 : x > y ? -1 : 0;
}

/* Weighs e's features for class cls: tf-idf, L2-normalised, times the weight. */
static void weigh(struct named *e, size_t cls)
{
    double norm = 0;
    for (size_t i = 0; i < e->n; i++) {
        double idf = e->idx[i] >= 0 ? e->m->idf[e->idx[i]] : log(e->m->rows + 1.0) + 1;
        e->tf[i] = (1 + log(e->tf[i])) * idf;
        norm += e->tf[i] * e->tf[i];
    }
    norm = norm > 0 ? 1 / sqrt(norm) : 0;
    for (size_t i = 0; i < e->n; i++)
        e->f[i].weight = e->idx[i] < 0 ? 0 : e->tf[i] * norm * weight(e->m, (size_t)e->idx[i], cls);
}

int classify_explain(const struct classify *m, const char *text, size_t len, uint32_t intent,
                     struct classify_feature *out, size_t cap, size_t *n)
{
    *n = 0;
    long cls = -1;
    for (size_t k = 0; k < m->n_class; k++)
        if (m->cls_intent[k] == intent)
            cls = (long)k;
    if (cls < 0)
        return KEFU_ENOENT;
    enum { MAX = 1024 };
    struct named e = {.m = m, .cap = MAX};
    e.f = kefu_malloc(MAX * sizeof *e.f);
    e.idx = kefu_malloc(MAX * sizeof *e.idx);
    e.tf = kefu_malloc(MAX * sizeof *e.tf);
    struct classify_scratch s;
    classify_scratch_init(&s);
    int rc = e.f && e.idx && e.tf ? classify_features(&s, text, len, name_feature, &e) : KEFU_ENOMEM;
    classify_scratch_release(&s);
    if (rc == 0) {
        weigh(&e, (size_t)cls);
        qsort(e.f, e.n, sizeof *e.f, cmp_abs_weight);
        *n = e.n < cap ? e.n : cap;
        memcpy(out, e.f, *n * sizeof *out);
    }
    free(e.f);
    free(e.idx);
    free(e.tf);
    return rc;
}

/* ---- build: the cache, else training ---- */

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

int classify_build(const struct rules *rs, const struct classify_opts *o, struct classify **out,
                   struct classify_info *info)
{
    *out = NULL;
    struct classify_info local;
    if (!info)
        info = &local;
    memset(info, 0, sizeof *info);
    if (classify_classes(rs) < 2)
        return 0;
    if (o->hash_bits < 12 || o->hash_bits > 24 || !(o->c > 0))
        return KEFU_EINVAL;
    if (o->cache_dir) {
        snprintf(info->path, sizeof info->path, "%s/classify-%016llx.model", o->cache_dir,
                 (unsigned long long)classify_key(rs, o));
        char why[128];
        int rc = classify_load(info->path, rs, o, out, why, sizeof why);
        if (rc == 0) {
            info->cached = 1;
            classify_stats(*out, info);
            return 0;
        }
        if (rc == KEFU_ENOMEM)
            return rc;
        if (rc != KEFU_ENOENT) {
            info->bad_file = 1;
            log_msg(LOG_LEVEL_WARN, "cannot use model file '%s' (%s); retraining", info->path, why);
        }
    }
    double t0 = now_ms();
    int rc = classify_train(rs, o, out);
    if (rc < 0)
        return rc;
    info->train_ms = now_ms() - t0;
    classify_stats(*out, info);
    if (o->cache_dir) {
        mkdir(o->cache_dir, 0700);
        if (classify_save(*out, info->path) < 0)
            log_msg(LOG_LEVEL_WARN, "cannot write model file '%s'; the model stays in memory", info->path);
    }
    return 0;
}
