/* text.h — UTF-8 validation, normalization and tokens.
 * One pipeline shared by the rule compiler, the router and (later) the
 * FTS5 tokenizer, so that a rule, an example and a message are compared
 * in the same form. */
#ifndef KEFU_TEXT_H
#define KEFU_TEXT_H

#include <stddef.h>
#include <stdint.h>

/* A growable byte buffer the caller holds; reuse it across messages. */
struct text_buf {
    char *s;    /* NUL-terminated after every successful call; owned */
    size_t len; /* bytes, without the NUL */
    size_t cap;
};
/* Prepares an empty buffer (no allocation until first use). */
void text_buf_init(struct text_buf *b);
void text_buf_release(struct text_buf *b); /* frees s; b can be reused after init */

/* Returns 1 if s[0..len) is well-formed UTF-8 (no overlongs, surrogates or
 * code points above U+10FFFF; NUL bytes are rejected too), else 0. */
int text_utf8_valid(const char *s, size_t len);

/* Decodes one code point at s[*i] (valid UTF-8 assumed) and advances *i. */
uint32_t text_utf8_next(const char *s, size_t *i);

enum {
    /* Light form (always): full-width ASCII and CJK punctuation → ASCII,
     * ideographic space → space, zero-width and format characters dropped,
     * white-space runs → one space, trimmed. */
    TEXT_FOLD = 1 << 0, /* also lower-case Latin letters and fold traditional → simplified */
};

/* Normalizes s[0..len) into out (replacing its contents). Returns 0, or
 * KEFU_EUTF8 for invalid input (out is then empty), or KEFU_ENOMEM. */
int text_normalize(const char *s, size_t len, unsigned flags, struct text_buf *out);

/* Folds one traditional Chinese code point to simplified; others unchanged. */
uint32_t text_fold_hans(uint32_t cp);

/* Guesses the locale of s[0..len): "zh-hant" when a CJK ideograph folds to
 * simplified, "zh" for other CJK text, else "en" (also for invalid UTF-8).
 * letters (may be NULL) gets the count of ASCII letters. Returns a static string. */
const char *text_guess_locale(const char *s, size_t len, size_t *letters);

/* Returns 1 if cp is a CJK ideograph (Unified, Extension A..F, Compatibility). */
int text_is_cjk(uint32_t cp);

/* Returns 1 if cp joins CJK runs in text_tokenize(): a CJK ideograph, 々 〆 〇,
 * bopomofo, kana or Hangul. */
int text_is_cjk_run(uint32_t cp);

enum text_tok_kind {
    TEXT_TOK_WORD = 1, /* run of ASCII letters/digits (other Latin letters kept inside) */
    TEXT_TOK_CJK2 = 2, /* two adjacent CJK ideographs */
    TEXT_TOK_CJK1 = 3, /* one CJK ideograph */
};

struct text_tok {
    uint32_t off, len; /* byte range in the tokenized text */
    uint8_t kind;      /* enum text_tok_kind */
};

struct text_toks {
    struct text_tok *v; /* owned */
    size_t n, cap;
};
/* Prepares an empty token list. */
void text_toks_init(struct text_toks *t);
/* Frees the tokens; t can be reused after text_toks_init(). */
void text_toks_release(struct text_toks *t);

enum {
    TEXT_TOK_UNIGRAMS = 1 << 0, /* emit every CJK character as CJK1 as well as the bigrams */
    TEXT_TOK_WORDS = 1 << 1,    /* emit words only, no CJK tokens (the router's word index) */
};

/* Tokenizes normalized text t[0..len) into out (replacing its contents), in
 * text order: words; for each CJK run, its bigrams (a one-character run
 * gives one CJK1); with TEXT_TOK_UNIGRAMS, every CJK character as CJK1 too,
 * just before the bigram that starts at it. Returns 0 or KEFU_ENOMEM (or
 * KEFU_ERANGE for text over 4 GiB, which offsets cannot hold). */
int text_tokenize(const char *t, size_t len, unsigned flags, struct text_toks *out);

/* Light English stemmer for a lower-case ASCII word w[0..len): writes the
 * stem to out (at least len bytes) and returns its length. Strips 's, plural
 * s/es/ies, ed, ing, a final e, and turns consonant+y into the bare stem, so
 * refund/refunds/refunded and deliver/delivery/deliveries agree. Words whose
 * stem would be shorter than 3 bytes are returned unchanged. */
size_t text_stem(const char *w, size_t len, char *out);

#endif
