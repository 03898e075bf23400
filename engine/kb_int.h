/* kb_int.h — private declarations shared by the knowledge-base files:
 * the tokenizer and query builder (kb_tok.c), the article parser and
 * Markdown stripper (kb_parse.c), the articles database (kb.c) and the
 * example matcher (kb_ex.c). */
#ifndef KEFU_KB_INT_H
#define KEFU_KB_INT_H

#include <sqlite3.h>
#include <stddef.h>
#include <stdint.h>

#include "rules.h"
#include "text.h"

#define KB_MAX_TERMS 64 /* query terms kept from one message */
#define KB_MAX_WORD  64 /* longer words are not indexed (hashes, URLs, noise) */
#define KB_TOKENIZER "kefu"
#define KB_RANK_FN   "kefu_rank"
#define KB_TOKENS_FN "kefu_tokens"
#define KB_COLUMNS   4 /* title, tags, questions, body */
#define KB_WEIGHTS   {4.0, 2.0, 3.0, 1.0} /* their BM25 weights (docs/corpus.md) */
#define KB_ROW_BUDGET 1000 /* rows a search may rank: above it only the rarest terms go to MATCH */
#define KB_CHAMPIONS  512  /* best articles kept per common term (kb_champs) */
#define KB_TOKENS_TERM " tokens" /* the kb_terms row holding every article's tokens together */

/* Scratch for one tokenization; reuse it across calls. */
struct kb_tok_buf {
    struct text_buf norm;  /* the normalized text */
    uint32_t *start, *end; /* per normalized byte: the source range it came from */
    size_t cap;            /* entries in start and end */
    struct text_toks toks; /* tokens of norm */
    struct text_buf one;   /* one code point, normalized */
    char stem[KB_MAX_WORD];
};
/* Prepares an empty scratch (no allocation until first use). */
void kb_tok_buf_init(struct kb_tok_buf *b);
void kb_tok_buf_release(struct kb_tok_buf *b); /* frees every buffer */

enum {
    KB_TOK_DOC = 0,   /* index form: words, CJK unigrams, and bigrams colocated with them */
    KB_TOK_TERMS = 1, /* query form: words, CJK bigrams, unigrams only for one-character runs */
};

/* Receives one token: its index-form text tok[0..n) (borrowed for the
 * call), whether it shares the previous token's position, and the byte
 * range [start, end) of the source text it came from. Non-zero stops. */
typedef int (*kb_tok_fn)(void *ctx, int colocated, const char *tok, size_t n, size_t start, size_t end);

/* Normalizes s[0..len) (invalid bytes separate tokens), tokenizes it in
 * mode (KB_TOK_*) and calls fn for every token in text order. Returns 0,
 * the first non-zero value fn returned, or KEFU_ENOMEM. */
int kb_tok_each(struct kb_tok_buf *b, const char *s, size_t len, int mode, kb_tok_fn fn, void *ctx);

/* The distinct query terms of one message and the MATCH expression built
 * from them (each term double-quoted, joined with OR). */
struct kb_query {
    struct text_buf match; /* "t1" OR "t2" ...; empty when n == 0 */
    struct text_buf text;  /* the terms, back to back */
    uint32_t off[KB_MAX_TERMS], len[KB_MAX_TERMS];
    size_t n;
    unsigned char in[KB_MAX_TERMS]; /* the terms in match, in their order there (FTS5 phrase order) */
    size_t n_in;
    int all;        /* keep particle bigrams too (the text has nothing else) */
    size_t dropped; /* particle bigrams left out */
};
void kb_query_init(struct kb_query *q);
void kb_query_release(struct kb_query *q);
/* Builds q from text[0..len) (raw UTF-8, validated here). Returns 0,
 * KEFU_EUTF8 or KEFU_ENOMEM. */
int kb_query_build(struct kb_tok_buf *b, const char *text, size_t len, struct kb_query *q);
/* Returns 1 for a query term left out: a Chinese bigram holding a particle
 * (的 了 吗 呢 吧 啊 么 呀 嘛), which joins two words (么用) or is a question
 * word (什么), never a topic. Measured: CMRC top-1 96.7% -> 97.8%. */
int kb_term_particle(const char *tok, size_t n);
/* Rebuilds q->match from the terms t with keep[t] != 0 (keep NULL: all).
 * Returns 0 or KEFU_ENOMEM. */
int kb_query_match(struct kb_query *q, const unsigned char *keep);
/* Returns 1 if term t[0..n) is one of q's terms. */
int kb_query_has(const struct kb_query *q, const char *t, size_t n);

/* What kefu_rank() needs to score a row without reading any posting list:
 * a BM25 IDF per phrase of the MATCH (from kb_terms), the column weights and
 * the average article length. Bound as a pointer of type KB_RANK_FN. */
struct kb_rank {
    double weight[KB_COLUMNS];
    double avgdl;             /* tokens per article, all columns (<= 0: no length normalization) */
    int n;                    /* phrases */
    double idf[KB_MAX_TERMS]; /* of phrase i */
    sqlite3_int64 rows;       /* rows kefu_rank() scored with these parameters (it counts them) */
    const uint32_t *len;      /* tokens of each rowid (kb_lengths; 0 or beyond n_len: FTS5 looks it up) */
    size_t n_len;
};

/* The BM25 IDF of a term held by df of n articles, as FTS5's bm25() has it:
 * ln((n - df + 0.5) / (df + 0.5)), 1e-6 when not above 0. */
double kb_bm25_idf(double n, double df);

/* Refills kb_champs from kb_terms and kb_lengths (inside the caller's
 * transaction, after kb_lengths_build()): for each term in more than
 * KB_ROW_BUDGET articles and at most half of them, its KB_CHAMPIONS best
 * rows by kefu_rank() over that term alone. Returns an SQLite result code. */
int kb_champs_build(sqlite3 *db);

#define KB_MAX_LENGTHS (1 << 22) /* rowids kb_lengths covers at most (16 MiB) */
/* Refills kb_lengths: the tokens of every row, one uint32_t per rowid, when
 * the rowids are dense enough. Returns an SQLite result code. */
int kb_lengths_build(sqlite3 *db);
/* Reads kb_lengths into *len (new, free() it; NULL when there is none), *n
 * entries. Returns an SQLite result code. */
int kb_lengths_load(sqlite3 *db, uint32_t **len, size_t *n);

/* Registers the "kefu" tokenizer and the kefu_rank() and kefu_tokens()
 * auxiliary functions on db. Returns 0 or KEFU_EIO. */
int kb_tok_register(sqlite3 *db);

/* Appends s[0..n) to b (NUL-terminated). Returns 0 or KEFU_ENOMEM. */
int kb_buf_add(struct text_buf *b, const char *s, size_t n);

/* ---- the connection behind a struct kb (kb.c) ---- */

struct kb;
/* Returns kb's SQLite connection; borrowed. */
sqlite3 *kb_db(struct kb *kb);
/* Records "cannot <what>: <sqlite message>" as kb's error; returns KEFU_EIO or KEFU_ENOMEM. */
int kb_fail_db(struct kb *kb, const char *what);
/* Recounts the articles of every indexed term into kb_terms (inside the
 * caller's transaction). Returns 0 or KEFU_EIO. */
int kb_terms_refresh(struct kb *kb);
/* Records msg as kb's error; returns code. */
int kb_fail_msg(struct kb *kb, int code, const char *msg);

/* ---- articles (kb_parse.c) ---- */

/* One parsed article; every string is owned (free with kb_article_release). */
struct kb_article {
    char *id, *locale, *title, *tags;
    struct text_buf questions; /* one per line */
    char *body;                /* the Markdown body as written */
    struct text_buf text;      /* the body as plain text (markup stripped) */
    int id_line;               /* where the id was given, for diagnostics */
};
void kb_article_init(struct kb_article *a);
void kb_article_release(struct kb_article *a);
/* Parses the article file named file (for diagnostics) with content
 * src[0..len). Errors go to d with file:line:col. Returns 0, KEFU_ESYNTAX
 * or KEFU_ENOMEM. */
int kb_article_parse(const char *file, const char *src, size_t len, struct kb_article *a,
                     struct rules_diag *d);
/* Writes the plain text of Markdown md[0..len) to out (replacing it).
 * Returns 0 or KEFU_ENOMEM. */
int kb_md_strip(const char *md, size_t len, struct text_buf *out);

/* Returns 1 for the locales an article may have: en, zh, zh-hant. */
int kb_locale_valid(const char *l);
/* How well article locale a serves the wanted locale w: 2 same, 1 same
 * language, 0 other (w NULL or "": 2 for every locale). */
int kb_locale_match(const char *a, const char *w);

#endif
