/* kb_tok.c — kefu's FTS5 tokenizer, the safe query builder and the
 * kefu_rank() and kefu_tokens() auxiliary functions.
 *
 * The tokenizer runs the text module's pipeline (text_normalize with
 * TEXT_FOLD, text_tokenize with TEXT_TOK_UNIGRAMS, text_stem), so an
 * article, an example line and a customer message meet in one form:
 * full-width folded, lower case, traditional folded to simplified, English
 * words stemmed, Chinese as characters and bigrams. FTS5 needs the byte
 * offsets of each token in the text it passed in (snippet() cuts there),
 * and normalization changes lengths (全角 letters shrink, 𠮷-like folds
 * grow, zero-width characters vanish), so the text is normalized one code
 * point at a time while recording, for every output byte, the source range
 * it came from. Normalization is per code point except for white space,
 * which collapses to one space, so the result equals text_normalize().
 *
 * Positions: each CJK character is one position carrying its unigram; the
 * bigram that starts there is FTS5_TOKEN_COLOCATED with it, so an article's
 * length is its number of characters and words. This matters for snippet()
 * and highlight(): they skip colocated tokens and cut the text between the
 * offsets of consecutive positions, which must not overlap: FTS5 appends
 * "the rest of the text" when a cut has a negative length, so overlapping
 * bigram tokens at their own positions (c1c2 then c2) made snippets repeat
 * the article. The cost: highlight() marks a matched bigram by its first
 * character. Queries are OR-ed single terms: no phrase needs positions.
 *
 * Queries. With FTS5_TOKENIZE_QUERY the tokenizer takes its input as one
 * term already in index form: MATCH strings are only ever built by
 * kb_query_build() from the tokenizer's own terms, each double-quoted and
 * joined with OR, so customer text never reaches the MATCH syntax. */
#include "kb_int.h"

#include "kefu.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---- buffers ---------------------------------------------------------- */

int kb_buf_add(struct text_buf *b, const char *s, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 64;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *p = kefu_realloc(b->s, cap);
        if (!p)
            return KEFU_ENOMEM;
        b->s = p;
        b->cap = cap;
    }
    memcpy(b->s + b->len, s, n);
    b->len += n;
    b->s[b->len] = 0;
    return 0;
}

void kb_tok_buf_init(struct kb_tok_buf *b)
{
    memset(b, 0, sizeof *b);
    text_buf_init(&b->norm);
    text_buf_init(&b->one);
    text_toks_init(&b->toks);
}

void kb_tok_buf_release(struct kb_tok_buf *b)
{
    text_buf_release(&b->norm);
    text_buf_release(&b->one);
    text_toks_release(&b->toks);
    free(b->start);
    free(b->end);
    kb_tok_buf_init(b);
}

/* Makes room for n normalized bytes and their source ranges. */
static int map_reserve(struct kb_tok_buf *b, size_t n)
{
    if (n <= b->cap && b->norm.cap > n)
        return 0;
    size_t cap = b->cap > 64 ? b->cap : 64;
    while (cap < n + 1)
        cap *= 2;
    uint32_t *s = kefu_realloc(b->start, cap * sizeof *s);
    if (!s)
        return KEFU_ENOMEM;
    b->start = s;
    uint32_t *e = kefu_realloc(b->end, cap * sizeof *e);
    if (!e)
        return KEFU_ENOMEM;
    b->end = e;
    b->cap = cap;
    char *t = kefu_realloc(b->norm.s, cap + 1);
    if (!t)
        return KEFU_ENOMEM;
    b->norm.s = t;
    b->norm.cap = cap + 1;
    return 0;
}

/* ---- normalization with a source map ---------------------------------- */

/* Length of the well-formed UTF-8 sequence at s[i] (i < len), or 0 (the
 * same rules as text_utf8_valid(): no overlongs, surrogates, NUL or code
 * points above U+10FFFF). */
static size_t seq_len(const char *s, size_t len, size_t i)
{
    const unsigned char *p = (const unsigned char *)s + i;
    unsigned char c = p[0];
    size_t left = len - i;
    if (c < 0x80)
        return c ? 1 : 0;
    if (c < 0xC2)
        return 0;
    if (c < 0xE0)
        return left >= 2 && (p[1] & 0xC0) == 0x80 ? 2 : 0;
    if (c < 0xF0) {
        if (left < 3 || (p[1] & 0xC0) != 0x80 || (p[2] & 0xC0) != 0x80)
            return 0;
        return (c == 0xE0 && p[1] < 0xA0) || (c == 0xED && p[1] >= 0xA0) ? 0 : 3;
    }
    if (c > 0xF4 || left < 4 || (p[1] & 0xC0) != 0x80 || (p[2] & 0xC0) != 0x80 || (p[3] & 0xC0) != 0x80)
        return 0;
    return (c == 0xF0 && p[1] < 0x90) || (c == 0xF4 && p[1] >= 0x90) ? 0 : 4;
}

/* Encodes cp as UTF-8 into o; returns the byte count. */
static size_t put_utf8(char *o, uint32_t c)
{
    if (c < 0x800) {
        o[0] = (char)(0xC0 | (c >> 6));
        o[1] = (char)(0x80 | (c & 0x3F));
        return 2;
    }
    if (c < 0x10000) {
        o[0] = (char)(0xE0 | (c >> 12));
        o[1] = (char)(0x80 | ((c >> 6) & 0x3F));
        o[2] = (char)(0x80 | (c & 0x3F));
        return 3;
    }
    o[0] = (char)(0xF0 | (c >> 18));
    o[1] = (char)(0x80 | ((c >> 12) & 0x3F));
    o[2] = (char)(0x80 | ((c >> 6) & 0x3F));
    o[3] = (char)(0x80 | (c & 0x3F));
    return 4;
}

/* Normalizes the one non-ASCII code point s[0..n) into out[0..*on) (at
 * most 16 bytes). *space is set when it is white space (out is empty). */
static int norm_one(struct kb_tok_buf *b, const char *s, size_t n, char *out, size_t *on, int *space)
{
    size_t i = 0;
    uint32_t cp = text_utf8_next(s, &i);
    *space = 0;
    if (text_is_cjk(cp)) { /* the common case: only script folding applies */
        *on = put_utf8(out, text_fold_hans(cp));
        return 0;
    }
    int rc = text_normalize(s, n, TEXT_FOLD, &b->one);
    if (rc < 0)
        return rc;
    if (b->one.len == 0) { /* white space or an invisible character? */
        char probe[8] = "a";
        memcpy(probe + 1, s, n);
        probe[n + 1] = 'a';
        if ((rc = text_normalize(probe, n + 2, TEXT_FOLD, &b->one)) < 0)
            return rc;
        *space = b->one.len == 3;
        *on = 0;
        return 0;
    }
    *on = b->one.len < 16 ? b->one.len : 0;
    memcpy(out, b->one.s, *on);
    return 0;
}

/* Appends out[0..n) to the normalized text, mapped to source [from, to). */
static void map_put(struct kb_tok_buf *b, const char *out, size_t n, size_t from, size_t to)
{
    for (size_t k = 0; k < n; k++) {
        b->norm.s[b->norm.len] = out[k];
        b->start[b->norm.len] = (uint32_t)from;
        b->end[b->norm.len] = (uint32_t)to;
        b->norm.len++;
    }
}

/* Normalizes s[0..len) into b->norm with the source map. A code point
 * normalizes to at most 16 bytes here; a pending space takes one more. */
static int normalize_mapped(struct kb_tok_buf *b, const char *s, size_t len)
{
    b->norm.len = 0;
    int space = 0, rc;
    /* at most 4/3 of a code point's bytes plus a pending space each (a
     * 1-byte character gives at most 2; a 3-byte one at most 4 + 1) */
    if ((rc = map_reserve(b, 2 * len + 16)) < 0)
        return rc;
    for (size_t i = 0; i < len;) {
        unsigned char a = (unsigned char)s[i];
        if (a > ' ' && a < 0x7F) { /* printable ASCII, the common case; within the reserve */
            if (space && b->norm.len)
                map_put(b, " ", 1, i, i);
            space = 0;
            char lc = (char)(a >= 'A' && a <= 'Z' ? a + 32 : a);
            map_put(b, &lc, 1, i, i + 1);
            i++;
            continue;
        }
        size_t at = i, n = seq_len(s, len, i), on = 0;
        char out[16];
        int sp = 0;
        if (!n) { /* invalid byte: a separator */
            i++;
            space = 1;
            continue;
        }
        i += n;
        unsigned char c = (unsigned char)s[at];
        if (c < 0x80) {
            sp = c == ' ' || (c >= '\t' && c <= '\r');
            if (c > ' ' && c < 0x7F)
                out[on++] = (char)(c >= 'A' && c <= 'Z' ? c + 32 : c);
        } else if ((rc = norm_one(b, s + at, n, out, &on, &sp)) < 0) {
            return rc;
        }
        space |= sp;
        if (!on)
            continue;
        if (b->norm.len + on + 2 > b->cap && (rc = map_reserve(b, b->norm.len + on + 2)) < 0)
            return rc; /* only a very unusual normalization gets here */
        if (space && b->norm.len)
            map_put(b, " ", 1, at, at);
        space = 0;
        map_put(b, out, on, at, i);
    }
    b->norm.s[b->norm.len] = 0;
    return 0;
}

/* ---- tokens ----------------------------------------------------------- */

int kb_tok_each(struct kb_tok_buf *b, const char *s, size_t len, int mode, kb_tok_fn fn, void *ctx)
{
    if (len > UINT32_MAX / 2)
        return KEFU_ERANGE;
    int rc = normalize_mapped(b, s, len);
    unsigned flags = mode == KB_TOK_DOC ? TEXT_TOK_UNIGRAMS : 0;
    if (rc == 0)
        rc = text_tokenize(b->norm.s, b->norm.len, flags, &b->toks);
    const struct text_tok *prev = NULL;
    for (size_t k = 0; rc == 0 && k < b->toks.n; k++) {
        const struct text_tok *t = &b->toks.v[k];
        const char *w = b->norm.s + t->off;
        size_t n = t->len;
        if (t->kind == TEXT_TOK_WORD) {
            if (n > KB_MAX_WORD)
                continue;
            n = text_stem(w, n, b->stem);
            w = b->stem;
        }
        /* a bigram shares the position of the unigram just before it */
        int coloc = t->kind == TEXT_TOK_CJK2 && prev && prev->kind == TEXT_TOK_CJK1 && prev->off == t->off;
        rc = fn(ctx, coloc, w, n, b->start[t->off], b->end[t->off + t->len - 1]);
        prev = t;
    }
    return rc;
}

/* ---- the FTS5 tokenizer ----------------------------------------------- */

struct fts_tok {
    struct kb_tok_buf buf;
    int busy; /* a nested call gets its own scratch */
};

struct fts_call {
    void *ctx;
    int (*token)(void *, int, const char *, int, int, int);
    int rc; /* the first non-OK return of xToken */
};

static int fts_emit(void *ctx, int colocated, const char *tok, size_t n, size_t start, size_t end)
{
    struct fts_call *c = ctx;
    c->rc = c->token(c->ctx, colocated ? FTS5_TOKEN_COLOCATED : 0, tok, (int)n, (int)start, (int)end);
    return c->rc != SQLITE_OK;
}

static int fts_create(void *unused, const char **argv, int argc, Fts5Tokenizer **out)
{
    struct fts_tok *t = kefu_calloc(1, sizeof *t);
    if (!t)
        return SQLITE_NOMEM;
    kb_tok_buf_init(&t->buf);
    *out = (Fts5Tokenizer *)t;
    return SQLITE_OK;
}

static void fts_delete(Fts5Tokenizer *tok)
{
    struct fts_tok *t = (struct fts_tok *)tok;
    if (!t)
        return;
    kb_tok_buf_release(&t->buf);
    free(t);
}

static int fts_tokenize(Fts5Tokenizer *tok, void *ctx, int flags, const char *text, int n,
                        int (*token)(void *, int, const char *, int, int, int))
{
    struct fts_tok *t = (struct fts_tok *)tok;
    if (n <= 0)
        return SQLITE_OK;
    if (flags & FTS5_TOKENIZE_QUERY) /* a term built by kb_query_build() */
        return token(ctx, 0, text, n, 0, n);
    struct fts_call c = {ctx, token, SQLITE_OK};
    struct kb_tok_buf local, *b = &t->buf;
    if (t->busy) {
        kb_tok_buf_init(&local);
        b = &local;
    }
    t->busy++;
    int rc = kb_tok_each(b, text, (size_t)n, KB_TOK_DOC, fts_emit, &c);
    t->busy--;
    if (b == &local || b->cap > (1u << 20)) /* keep no huge buffers between calls */
        kb_tok_buf_release(b);
    if (c.rc != SQLITE_OK)
        return c.rc;
    return rc == 0 ? SQLITE_OK : rc == KEFU_ENOMEM ? SQLITE_NOMEM : SQLITE_TOOBIG;
}

/* ---- kefu_rank(): BM25 from what the row holds -------------------------- */

/* FTS5's bm25() asks for the number of rows of every phrase (a pass over
 * its whole posting list, tens of thousands of entries for a common word
 * in a large corpus) before scoring the first row. kefu_rank() takes the
 * IDFs from its parameters instead (kb.c reads them from kb_terms) and reads
 * only the current row: its phrase instances and its length. The formula is
 * bm25()'s: with f the column-weighted count of phrase i in the row,
 *   score = sum_i idf_i * f * (k1 + 1) / (f + k1 * (1 - b + b * len / avgdl)),
 * k1 = 1.2, b = 0.75; positive, higher is better. */
#define KB_BM25_K1 1.2
#define KB_BM25_B  0.75

double kb_bm25_idf(double n, double df)
{
    double idf = log((n - df + 0.5) / (df + 0.5));
    return idf > 0 ? idf : 1e-6;
}

/* kefu_rank(tbl, params): the BM25 score of the row; kefu_rank(tbl, params, 1):
 * a bit mask of the phrases (0..63) the row holds. params is a struct
 * kb_rank bound with sqlite3_bind_pointer(..., KB_RANK_FN, NULL). */
static void rank_fn(const Fts5ExtensionApi *api, Fts5Context *fts, sqlite3_context *ctx, int argc,
                    sqlite3_value **argv)
{
    struct kb_rank *r = argc > 0 ? sqlite3_value_pointer(argv[0], KB_RANK_FN) : NULL;
    int n = api->xPhraseCount(fts), inst = 0, rc;
    if (!r || n > r->n || n > KB_MAX_TERMS) {
        sqlite3_result_error(ctx, KB_RANK_FN "() needs the parameters of its query", -1);
        return;
    }
    double f[KB_MAX_TERMS] = {0};
    sqlite3_int64 mask = 0;
    rc = api->xInstCount(fts, &inst);
    for (int k = 0; k < inst && rc == SQLITE_OK; k++) {
        int ph, col, off;
        rc = api->xInst(fts, k, &ph, &col, &off);
        if (rc == SQLITE_OK && ph >= 0 && ph < n && col >= 0 && col < KB_COLUMNS) {
            f[ph] += r->weight[col];
            mask |= ph < 64 ? (sqlite3_int64)((sqlite3_uint64)1 << ph) : 0;
        }
    }
    if (rc == SQLITE_OK && argc > 1 && sqlite3_value_int(argv[1]) == 1) {
        sqlite3_result_int64(ctx, mask);
        return;
    }
    int len = 0;
    sqlite3_int64 id = api->xRowid(fts);
    if (r->len && id >= 0 && (sqlite3_uint64)id < r->n_len && r->len[id])
        len = (int)r->len[id];
    else if (rc == SQLITE_OK)
        rc = api->xColumnSize(fts, -1, &len);
    if (rc != SQLITE_OK) {
        sqlite3_result_error_code(ctx, rc);
        return;
    }
    r->rows++;
    double norm = KB_BM25_K1 * (1 - KB_BM25_B + (r->avgdl > 0 ? KB_BM25_B * len / r->avgdl : KB_BM25_B));
    double score = 0;
    for (int i = 0; i < n; i++)
        if (f[i] > 0)
            score += r->idf[i] * f[i] * (KB_BM25_K1 + 1) / (f[i] + norm);
    sqlite3_result_double(ctx, score);
}

/* kefu_tokens(tbl): the tokens of every row together (FTS5 keeps the total in
 * one record); the import stores it in kb_terms for kefu_rank()'s avgdl.
 * kefu_tokens(tbl, 1): the tokens of the current row (for kb_lengths). */
static void tokens_fn(const Fts5ExtensionApi *api, Fts5Context *fts, sqlite3_context *ctx, int argc,
                      sqlite3_value **argv)
{
    sqlite3_int64 total = 0;
    int row = 0, rc;
    if (argc > 0 && sqlite3_value_int(argv[0]) == 1) {
        rc = api->xColumnSize(fts, -1, &row);
        total = row;
    } else {
        rc = api->xColumnTotalSize(fts, -1, &total);
    }
    if (rc == SQLITE_OK)
        sqlite3_result_int64(ctx, total);
    else
        sqlite3_result_error_code(ctx, rc);
}

static fts5_api *fts5_of(sqlite3 *db)
{
    fts5_api *api = NULL;
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(db, "SELECT fts5(?1)", -1, &st, NULL) == SQLITE_OK) {
        sqlite3_bind_pointer(st, 1, (void *)&api, "fts5_api_ptr", NULL);
        sqlite3_step(st);
    }
    sqlite3_finalize(st);
    return api && api->iVersion >= 2 ? api : NULL;
}

int kb_tok_register(sqlite3 *db)
{
    static fts5_tokenizer tok = {fts_create, fts_delete, fts_tokenize};
    fts5_api *api = fts5_of(db);
    if (!api)
        return KEFU_EIO;
    if (api->xCreateTokenizer(api, KB_TOKENIZER, NULL, &tok, NULL) != SQLITE_OK)
        return KEFU_EIO;
    if (api->xCreateFunction(api, KB_RANK_FN, NULL, rank_fn, NULL) != SQLITE_OK)
        return KEFU_EIO;
    if (api->xCreateFunction(api, KB_TOKENS_FN, NULL, tokens_fn, NULL) != SQLITE_OK)
        return KEFU_EIO;
    return 0;
}

/* ---- queries ---------------------------------------------------------- */

void kb_query_init(struct kb_query *q)
{
    text_buf_init(&q->match);
    text_buf_init(&q->text);
    q->n = 0;
}

void kb_query_release(struct kb_query *q)
{
    text_buf_release(&q->match);
    text_buf_release(&q->text);
    q->n = 0;
}

int kb_query_has(const struct kb_query *q, const char *t, size_t n)
{
    for (size_t k = 0; k < q->n; k++)
        if (q->len[k] == n && memcmp(q->text.s + q->off[k], t, n) == 0)
            return 1;
    return 0;
}

/* 1 for a Chinese bigram holding a sentence particle or the 么 of 什么/怎么:
 * across a word boundary (么用, 券吗) or a question word, never a topic. */
int kb_term_particle(const char *tok, size_t n)
{
    static const char *const particles[] = {"的", "了", "吗", "呢", "吧", "啊", "么", "呀", "嘛"};
    if (n != 6 || (unsigned char)tok[0] < 0xE0)
        return 0;
    for (size_t k = 0; k < sizeof particles / sizeof particles[0]; k++)
        if (memcmp(tok, particles[k], 3) == 0 || memcmp(tok + 3, particles[k], 3) == 0)
            return 1;
    return 0;
}

/* Adds one term (distinct, up to KB_MAX_TERMS) to the query. */
static int query_term(void *ctx, int colocated, const char *tok, size_t n, size_t start, size_t end)
{
    struct kb_query *q = ctx;
    if (q->n == KB_MAX_TERMS || n == 0 || kb_query_has(q, tok, n))
        return 0;
    if (!q->all && kb_term_particle(tok, n)) {
        q->dropped++;
        return 0;
    }
    q->off[q->n] = (uint32_t)q->text.len;
    q->len[q->n] = (uint32_t)n;
    int rc = kb_buf_add(&q->text, tok, n);
    if (rc == 0)
        q->n++;
    return rc;
}

int kb_query_match(struct kb_query *q, const unsigned char *keep)
{
    int rc = 0;
    size_t used = 0;
    q->match.len = 0;
    rc = kb_buf_add(&q->match, "", 0);
    for (size_t t = 0; t < q->n && rc == 0; t++) {
        if (keep && !keep[t])
            continue;
        const char *tok = q->text.s + q->off[t];
        q->in[used] = (unsigned char)t;
        if (used++)
            rc = kb_buf_add(&q->match, " OR ", 4);
        if (rc == 0)
            rc = kb_buf_add(&q->match, "\"", 1);
        for (size_t k = 0; k < q->len[t] && rc == 0; k++) /* a term never holds '"'; double it anyway */
            rc = kb_buf_add(&q->match, tok[k] == '"' ? "\"\"" : tok + k, tok[k] == '"' ? 2 : 1);
        if (rc == 0)
            rc = kb_buf_add(&q->match, "\"", 1);
    }
    q->n_in = used;
    return rc;
}

int kb_query_build(struct kb_tok_buf *b, const char *text, size_t len, struct kb_query *q)
{
    q->n = 0;
    q->match.len = q->text.len = 0;
    int rc = kb_buf_add(&q->match, "", 0);
    if (rc == 0)
        rc = kb_buf_add(&q->text, "", 0);
    if (rc < 0)
        return rc;
    if (!text_utf8_valid(text, len))
        return KEFU_EUTF8;
    q->all = 0;
    q->dropped = 0;
    rc = kb_tok_each(b, text, len, KB_TOK_TERMS, query_term, q);
    if (rc == 0 && q->n == 0 && q->dropped) { /* 在吗: the particles are all there is */
        q->all = 1;
        rc = kb_tok_each(b, text, len, KB_TOK_TERMS, query_term, q);
    }
    return rc ? rc : kb_query_match(q, NULL);
}
