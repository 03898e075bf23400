/* kb_ex.c — example-based intent matching: every `example` line of a rule
 * set in an in-memory FTS5 table, searched with the same tokenizer as the
 * articles; the nearest examples vote for their intents.
 *
 * Build indexes the examples once and keeps a serialized image of the
 * database; kb_examples_clone() deserializes a private copy for another
 * thread (no shared cache, no lock between threads). The image and the
 * example table are shared by the clones through a reference count.
 *
 * Scoring (docs/corpus.md, "Examples"): the KB_EX_K best examples by BM25
 * vote with their scores; for each intent, similarity is the best
 * sqrt(q × e) × evidence of its examples, q the IDF-weighted share of the
 * message's terms found in the example, e the share of the
 * example's terms found in the message, evidence 1 - exp(-m / 2) from the
 * IDF mass m of the shared terms; confidence = similarity × (0.5 + 0.5 ×
 * the intent's share of the votes). */
#include "kb.h"

#include "kb_int.h"
#include "kefu.h"

#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define KB_EX_K         16   /* nearest examples that vote */
#define KB_EX_POOL      64   /* candidates read by BM25 and rescored */
#define KB_EX_EVIDENCE  2.0  /* IDF mass at which the evidence factor reaches 1 - 1/e */
#define KB_EX_COMMON    0.05 /* terms in more than this share of the examples stay out of MATCH */
#define KB_EX_MIN_TERMS 3    /* ... unless fewer terms would be left */
#define KB_EX_FLOOR     100  /* ... and terms in at most this many examples always go */

struct ex_ref {
    uint32_t intent;
    const char *text; /* borrowed from the rule set */
};

/* What the original and its clones share; immutable after the build. */
struct ex_shared {
    atomic_int refs;
    const struct rules *rs;
    struct ex_ref *v;
    size_t n;
    unsigned char *image; /* the serialized database (sqlite3_malloc) */
    sqlite3_int64 image_len;
    uint64_t *key; /* term hash → number of examples holding the term (open addressing, 0 = empty) */
    uint32_t *df;
    size_t cap;
};

struct kb_examples {
    struct ex_shared *sh;
    sqlite3 *db;
    sqlite3_stmt *match;
    struct kb_tok_buf tb;
    struct kb_query q;
};

static void shared_unref(struct ex_shared *sh)
{
    if (!sh || atomic_fetch_sub(&sh->refs, 1) != 1)
        return;
    free(sh->v);
    free(sh->key);
    free(sh->df);
    sqlite3_free(sh->image);
    free(sh);
}

void kb_examples_free(struct kb_examples *ex)
{
    if (!ex)
        return;
    sqlite3_finalize(ex->match);
    sqlite3_close(ex->db);
    kb_tok_buf_release(&ex->tb);
    kb_query_release(&ex->q);
    shared_unref(ex->sh);
    free(ex);
}

/* ---- the term dictionary: document frequencies without SQL ---------- */

static uint64_t term_hash(const char *t, size_t n)
{
    uint64_t h = UINT64_C(14695981039346656037);
    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)t[i]) * UINT64_C(1099511628211);
    return h ? h : 1;
}

/* The slot of hash h: where it is, or the empty slot where it would go. */
static size_t term_slot(const struct ex_shared *sh, uint64_t h)
{
    size_t i = (size_t)(h ^ (h >> 29)) & (sh->cap - 1);
    while (sh->key[i] && sh->key[i] != h)
        i = (i + 1) & (sh->cap - 1);
    return i;
}

static uint32_t term_df(const struct ex_shared *sh, uint64_t h)
{
    size_t i = term_slot(sh, h);
    return sh->key[i] ? sh->df[i] : 0;
}

/* The distinct terms of one text (query form), as hashes. */
struct term_set {
    uint64_t h[KB_MAX_TERMS];
    size_t n;
    int all; /* keep particle bigrams (as kb_query_build() does when nothing else is left) */
    size_t dropped;
};

static int set_add(void *ctx, int colocated, const char *tok, size_t n, size_t start, size_t end)
{
    struct term_set *s = ctx;
    if (!s->all && kb_term_particle(tok, n)) { /* as in queries */
        s->dropped++;
        return 0;
    }
    uint64_t h = term_hash(tok, n);
    for (size_t k = 0; k < s->n; k++)
        if (s->h[k] == h)
            return 0;
    if (s->n < KB_MAX_TERMS)
        s->h[s->n++] = h;
    return 0;
}

/* Fills s with the distinct terms of text, dropping particle bigrams as queries do. */
static int terms_of(struct kb_tok_buf *b, const char *text, struct term_set *s)
{
    s->n = s->dropped = 0;
    s->all = 0;
    int rc = kb_tok_each(b, text, strlen(text), KB_TOK_TERMS, set_add, s);
    if (rc == 0 && s->n == 0 && s->dropped) {
        s->all = 1;
        rc = kb_tok_each(b, text, strlen(text), KB_TOK_TERMS, set_add, s);
    }
    return rc;
}

/* Counts, for every term, the examples that hold it. */
static int count_terms(struct ex_shared *sh, struct kb_tok_buf *b)
{
    sh->cap = 1024;
    while (sh->cap < sh->n * 8)
        sh->cap *= 2;
    sh->key = kefu_calloc(sh->cap, sizeof *sh->key);
    sh->df = kefu_calloc(sh->cap, sizeof *sh->df);
    if (!sh->key || !sh->df)
        return KEFU_ENOMEM;
    size_t used = 0;
    struct term_set s;
    for (size_t k = 0; k < sh->n; k++) {
        int rc = terms_of(b, sh->v[k].text, &s);
        if (rc < 0)
            return rc;
        for (size_t t = 0; t < s.n && used < sh->cap / 2; t++) {
            size_t i = term_slot(sh, s.h[t]);
            used += !sh->key[i];
            sh->key[i] = s.h[t];
            sh->df[i]++;
        }
    }
    return 0;
}

/* The BM25-style IDF of a term held by df of the examples (always > 0). */
static double idf(const struct ex_shared *sh, uint32_t df)
{
    double n = (double)sh->n;
    return log(1.0 + (n - df + 0.5) / (df + 0.5));
}

/* A new, empty handle with its own connection and the tokenizer registered. */
static int ex_new(struct kb_examples **out)
{
    struct kb_examples *ex = kefu_calloc(1, sizeof *ex);
    if (!ex)
        return KEFU_ENOMEM;
    kb_tok_buf_init(&ex->tb);
    kb_query_init(&ex->q);
    *out = ex;
    int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_MEMORY;
    if (sqlite3_open_v2(":memory:", &ex->db, flags, NULL) != SQLITE_OK)
        return ex->db ? KEFU_EIO : KEFU_ENOMEM;
    return kb_tok_register(ex->db);
}

/* Prepares the nearest-examples query on ex's connection. */
static int ex_prepare(struct kb_examples *ex)
{
    static const char *const sql =
        "SELECT rowid, -bm25(ex) FROM ex WHERE ex MATCH ?1 ORDER BY bm25(ex) LIMIT ?2";
    return sqlite3_prepare_v3(ex->db, sql, -1, SQLITE_PREPARE_PERSISTENT, &ex->match, NULL) == SQLITE_OK
               ? 0
               : KEFU_EIO;
}

/* Collects every example of rs into sh->v. */
static int collect(struct ex_shared *sh)
{
    size_t n = 0;
    for (size_t i = 0; i < rules_count(sh->rs); i++)
        n += rules_intent(sh->rs, i)->n_examples;
    if (!(sh->v = kefu_calloc(n + 1, sizeof *sh->v)))
        return KEFU_ENOMEM;
    for (size_t i = 0; i < rules_count(sh->rs); i++) {
        const struct rules_intent *it = rules_intent(sh->rs, i);
        for (size_t e = 0; e < it->n_examples; e++)
            sh->v[sh->n++] = (struct ex_ref){(uint32_t)i, it->examples[e].text};
    }
    return 0;
}

/* Creates the table and inserts every example (rowid = its index). */
static int fill(struct kb_examples *ex)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_exec(ex->db,
                          "CREATE VIRTUAL TABLE ex USING fts5(text, tokenize='" KB_TOKENIZER "');"
                          "BEGIN",
                          NULL, NULL, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_prepare_v2(ex->db, "INSERT INTO ex (rowid, text) VALUES (?1, ?2)", -1, &st, NULL);
    for (size_t k = 0; k < ex->sh->n && rc == SQLITE_OK; k++) {
        sqlite3_bind_int64(st, 1, (sqlite3_int64)k);
        sqlite3_bind_text(st, 2, ex->sh->v[k].text, -1, SQLITE_STATIC);
        rc = sqlite3_step(st) == SQLITE_DONE ? SQLITE_OK : SQLITE_ERROR;
        sqlite3_reset(st);
    }
    sqlite3_finalize(st);
    if (rc == SQLITE_OK)
        rc = sqlite3_exec(ex->db, "COMMIT; INSERT INTO ex(ex) VALUES ('optimize')", NULL, NULL, NULL);
    if (rc != SQLITE_OK)
        return sqlite3_errcode(ex->db) == SQLITE_NOMEM ? KEFU_ENOMEM : KEFU_EIO;
    return 0;
}

int kb_examples_build(const struct rules *rs, struct kb_examples **out)
{
    *out = NULL;
    struct kb_examples *ex = NULL;
    int rc = ex_new(&ex);
    if (rc == 0 && !(ex->sh = kefu_calloc(1, sizeof *ex->sh)))
        rc = KEFU_ENOMEM;
    if (rc == 0) {
        atomic_init(&ex->sh->refs, 1);
        ex->sh->rs = rs;
        rc = collect(ex->sh);
    }
    if (rc == 0)
        rc = count_terms(ex->sh, &ex->tb);
    if (rc == 0)
        rc = fill(ex);
    if (rc == 0 && !(ex->sh->image = sqlite3_serialize(ex->db, "main", &ex->sh->image_len, 0)))
        rc = KEFU_ENOMEM;
    if (rc == 0)
        rc = ex_prepare(ex);
    if (rc < 0) {
        kb_examples_free(ex);
        return rc;
    }
    *out = ex;
    return 0;
}

int kb_examples_clone(const struct kb_examples *src, struct kb_examples **out)
{
    *out = NULL;
    struct kb_examples *ex = NULL;
    int rc = ex_new(&ex);
    unsigned char *copy = NULL;
    if (rc == 0 && !(copy = sqlite3_malloc64((sqlite3_uint64)src->sh->image_len)))
        rc = KEFU_ENOMEM;
    if (rc == 0) {
        memcpy(copy, src->sh->image, (size_t)src->sh->image_len);
        unsigned fl = SQLITE_DESERIALIZE_FREEONCLOSE | SQLITE_DESERIALIZE_RESIZEABLE;
        if (sqlite3_deserialize(ex->db, "main", copy, src->sh->image_len, src->sh->image_len, fl) !=
            SQLITE_OK)
            rc = KEFU_EIO; /* copy is freed by sqlite either way */
        ex->sh = src->sh;
        atomic_fetch_add(&ex->sh->refs, 1);
    }
    if (rc == 0)
        rc = ex_prepare(ex);
    if (rc < 0) {
        kb_examples_free(ex);
        return rc;
    }
    *out = ex;
    return 0;
}

/* ---- matching --------------------------------------------------------- */

/* The message's terms with their weights, and which of them go to MATCH. */
struct ex_query {
    uint64_t h[KB_MAX_TERMS];
    double w[KB_MAX_TERMS]; /* IDF */
    double total;           /* sum of w */
    unsigned char keep[KB_MAX_TERMS];
};

/* Weighs the query terms and keeps for MATCH the terms that are in some
 * example and not in more than KB_EX_COMMON of them (a word in a tenth of
 * all examples barely moves BM25 but costs a pass over its postings);
 * the KB_EX_MIN_TERMS rarest known terms are always kept. Returns the
 * number kept. */
static size_t weigh(const struct ex_shared *sh, const struct kb_query *q, struct ex_query *x)
{
    uint32_t df[KB_MAX_TERMS];
    size_t kept = 0;
    x->total = 0;
    for (size_t t = 0; t < q->n; t++) {
        x->h[t] = term_hash(q->text.s + q->off[t], q->len[t]);
        df[t] = term_df(sh, x->h[t]);
        x->w[t] = idf(sh, df[t]);
        x->total += x->w[t];
        x->keep[t] = df[t] > 0 && (df[t] <= KB_EX_FLOOR || (double)df[t] <= KB_EX_COMMON * (double)sh->n);
        kept += x->keep[t];
    }
    while (kept < KB_EX_MIN_TERMS) { /* add the rarest known terms left out */
        size_t best = q->n;
        for (size_t t = 0; t < q->n; t++)
            if (!x->keep[t] && df[t] > 0 && (best == q->n || df[t] < df[best]))
                best = t;
        if (best == q->n)
            break;
        x->keep[best] = 1;
        kept++;
    }
    return kept;
}

/* How much one example and the message share: sqrt(q × e) × evidence,
 * q and e the IDF-weighted shares of the message's and the example's terms
 * that the other holds, evidence 1 - exp(-shared IDF / KB_EX_EVIDENCE). */
static double similarity(struct kb_examples *ex, const struct ex_query *x, size_t nq, const char *text)
{
    struct term_set s;
    if (terms_of(&ex->tb, text, &s) < 0 || s.n == 0 || x->total <= 0)
        return 0;
    double shared = 0, own = 0;
    for (size_t k = 0; k < s.n; k++) {
        double w = idf(ex->sh, term_df(ex->sh, s.h[k]));
        own += w;
        for (size_t t = 0; t < nq; t++)
            if (x->h[t] == s.h[k]) {
                shared += w;
                break;
            }
    }
    if (own <= 0)
        return 0;
    return sqrt((shared / x->total) * (shared / own)) * (1 - exp(-shared / KB_EX_EVIDENCE));
}

/* Adds one example's vote to the intent's tally. */
static void vote(struct kb_vote *v, size_t *n, size_t cap, unsigned intent, double score, double sim,
                 const char *text, double *best)
{
    size_t k = 0;
    while (k < *n && v[k].intent != intent)
        k++;
    if (k == *n) {
        if (*n == cap)
            return;
        v[k] = (struct kb_vote){intent, 0, 0, text};
        best[k] = -1;
        (*n)++;
    }
    v[k].score += score;
    if (sim > best[k]) {
        best[k] = sim;
        v[k].example = text;
    }
}

static int vote_cmp(const void *a, const void *b)
{
    const struct kb_vote *x = a, *y = b;
    if (x->confidence != y->confidence)
        return x->confidence < y->confidence ? 1 : -1;
    return x->score < y->score ? 1 : x->score > y->score ? -1 : 0;
}

struct pool_row {
    uint32_t row;
    double bm25, sim;
};

static int pool_cmp(const void *a, const void *b)
{
    const struct pool_row *x = a, *y = b;
    if (x->sim != y->sim)
        return x->sim < y->sim ? 1 : -1;
    return x->bm25 < y->bm25 ? 1 : x->bm25 > y->bm25 ? -1 : 0;
}

/* Reads up to KB_EX_POOL candidates by BM25 over the kept terms whose
 * intent's 'when' holds, and scores each with similarity() over all terms. */
static int pool(struct kb_examples *ex, const struct ex_query *x, const struct attrs *attrs,
                struct pool_row *p, size_t *n)
{
    sqlite3_stmt *st = ex->match;
    sqlite3_reset(st);
    sqlite3_bind_text(st, 1, ex->q.match.s, (int)ex->q.match.len, SQLITE_STATIC);
    sqlite3_bind_int(st, 2, KB_EX_POOL);
    int rc;
    *n = 0;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW && *n < KB_EX_POOL) {
        sqlite3_int64 row = sqlite3_column_int64(st, 0);
        if (row < 0 || (size_t)row >= ex->sh->n)
            continue;
        const struct ex_ref *r = &ex->sh->v[row];
        if (!rules_cond_eval(rules_intent(ex->sh->rs, r->intent)->when, attrs))
            continue;
        p[*n] = (struct pool_row){(uint32_t)row, sqlite3_column_double(st, 1),
                                  similarity(ex, x, ex->q.n, r->text)};
        (*n)++;
    }
    sqlite3_reset(st);
    return rc == SQLITE_DONE || rc == SQLITE_ROW ? 0 : KEFU_EIO;
}

/* The KB_EX_K most similar candidates vote for their intents with their similarity. */
static int tally(struct kb_examples *ex, const struct ex_query *x, const struct attrs *attrs,
                 struct kb_vote *v, double *best, size_t *n)
{
    struct pool_row p[KB_EX_POOL];
    size_t np;
    int rc = pool(ex, x, attrs, p, &np);
    if (rc < 0)
        return rc;
    qsort(p, np, sizeof *p, pool_cmp);
    for (size_t k = 0; k < np && k < KB_EX_K; k++) {
        const struct ex_ref *r = &ex->sh->v[p[k].row];
        vote(v, n, KB_EX_K, r->intent, p[k].sim, p[k].sim, r->text, best);
    }
    return 0;
}

int kb_examples_match(struct kb_examples *ex, const char *text, size_t len, const struct attrs *attrs,
                      struct kb_votes *out)
{
    memset(out, 0, sizeof *out);
    int rc = kb_query_build(&ex->tb, text, len, &ex->q);
    if (rc < 0 || ex->q.n == 0)
        return rc;
    struct ex_query x;
    if (weigh(ex->sh, &ex->q, &x) == 0)
        return 0; /* no term of the message is in any example */
    if ((rc = kb_query_match(&ex->q, x.keep)) < 0)
        return rc;
    struct kb_vote v[KB_EX_K];
    double best[KB_EX_K], total = 0;
    size_t n = 0;
    if ((rc = tally(ex, &x, attrs, v, best, &n)) < 0)
        return rc;
    for (size_t k = 0; k < n; k++)
        total += v[k].score;
    for (size_t k = 0; k < n; k++) {
        double share = total > 0 ? v[k].score / total : 0;
        v[k].confidence = best[k] * (0.5 + 0.5 * share);
    }
    qsort(v, n, sizeof *v, vote_cmp);
    out->n = n < KB_MAX_HITS ? n : KB_MAX_HITS;
    memcpy(out->v, v, out->n * sizeof *v);
    return 0;
}
