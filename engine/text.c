/* text.c — UTF-8 validation, normalization, tokens and the light stemmer.
 * Every rule term, example and customer message passes through here, so the
 * router compares them in one form (docs/rules.md, "Normalization").
 *
 * Normalization validates first, then rewrites one code point at a time into
 * a buffer reserved once for the worst case (a 3-byte traditional character
 * can fold to a 4-byte simplified one, so 4/3 of the input): no bounds checks
 * and no allocation inside the loop, and none at all once the buffer is warm.
 * The traditional → simplified table is build/hans_table.h, generated from
 * OpenCC by scripts/gen-hans-table.sh: a bitmap over U+3400..U+9FFF answers
 * "unchanged" with one load, a rank indexes the delta otherwise.
 *
 * Token classes. A word is a run of letters and digits of any script except
 * the CJK-run characters: ASCII, accented Latin, Cyrillic, Greek ... and
 * combining marks stay inside a word ("café", "привет"); an ASCII apostrophe
 * between two word characters is kept ("customer's", "don't"). CJK-run
 * characters are the ideographs of text_is_cjk() plus 々 〆 〇, bopomofo,
 * kana and Hangul (they carry no spaces between words, so they get bigrams
 * too). Everything else — ASCII punctuation, Latin-1 and general punctuation,
 * symbols, CJK punctuation, emoji, private use — separates tokens. Scripts
 * outside these ranges are not classified further: their punctuation counts
 * as a word character (a known approximation).
 *
 * Token order is text order by start offset, shorter first: for a CJK run
 * c1..cn (n >= 2) the tokens are c1c2, c2c3, ... and, with TEXT_TOK_UNIGRAMS,
 * c1, c1c2, c2, c2c3, ..., cn — each unigram right before the bigram that
 * starts at it, the last character's unigram at the end. A one-character run
 * gives one CJK1 with or without the flag. */
#include "text.h"

#include "hans_table.h"
#include "kefu.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* ---- buffers ---------------------------------------------------------- */

void text_buf_init(struct text_buf *b)
{
    b->s = NULL;
    b->len = 0;
    b->cap = 0;
}

void text_buf_release(struct text_buf *b)
{
    free(b->s);
    text_buf_init(b);
}

/* Makes room for need bytes (NUL included), growing geometrically. */
static int buf_reserve(struct text_buf *b, size_t need)
{
    if (need <= b->cap)
        return 0;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < need) {
        if (cap > SIZE_MAX / 2)
            return KEFU_ENOMEM;
        cap *= 2;
    }
    char *s = kefu_realloc(b->s, cap);
    if (!s)
        return KEFU_ENOMEM;
    /* Zero the new part: PCRE2's JIT may read a little past the subject's
     * end within the buffer, and those bytes must be defined. */
    memset(s + b->cap, 0, cap - b->cap);
    b->s = s;
    b->cap = cap;
    return 0;
}

void text_toks_init(struct text_toks *t)
{
    t->v = NULL;
    t->n = 0;
    t->cap = 0;
}

void text_toks_release(struct text_toks *t)
{
    free(t->v);
    text_toks_init(t);
}

static int toks_grow(struct text_toks *t)
{
    size_t cap = t->cap ? t->cap * 2 : 32;
    if (cap > SIZE_MAX / sizeof *t->v)
        return KEFU_ENOMEM;
    struct text_tok *v = kefu_realloc(t->v, cap * sizeof *v);
    if (!v)
        return KEFU_ENOMEM;
    t->v = v;
    t->cap = cap;
    return 0;
}

static int toks_push(struct text_toks *t, size_t off, size_t len, int kind)
{
    if (t->n == t->cap && toks_grow(t) < 0)
        return KEFU_ENOMEM;
    t->v[t->n].off = (uint32_t)off;
    t->v[t->n].len = (uint32_t)len;
    t->v[t->n].kind = (uint8_t)kind;
    t->n++;
    return 0;
}

/* ---- UTF-8 ------------------------------------------------------------ */

#define ONES  UINT64_C(0x0101010101010101)
#define HIGHS UINT64_C(0x8080808080808080)

/* 1 if the 8 bytes at p are all ASCII and none is NUL. */
static int ascii8(const unsigned char *p)
{
    uint64_t x;
    memcpy(&x, p, 8);
    return ((x & HIGHS) | ((x - ONES) & ~x & HIGHS)) == 0;
}

static int cont(unsigned char c)
{
    return (c & 0xC0) == 0x80;
}

/* Length of the well-formed sequence at p (p < end), or 0. */
static size_t utf8_seq(const unsigned char *p, const unsigned char *end)
{
    unsigned char c = p[0];
    size_t left = (size_t)(end - p);
    if (c < 0x80)
        return c ? 1 : 0;
    if (c < 0xC2)
        return 0; /* continuation byte, or overlong 2-byte lead */
    if (c < 0xE0)
        return left >= 2 && cont(p[1]) ? 2 : 0;
    if (c < 0xF0) {
        if (left < 3 || !cont(p[1]) || !cont(p[2]))
            return 0;
        if (c == 0xE0 && p[1] < 0xA0)
            return 0; /* overlong */
        if (c == 0xED && p[1] >= 0xA0)
            return 0; /* surrogate */
        return 3;
    }
    if (c < 0xF5) {
        if (left < 4 || !cont(p[1]) || !cont(p[2]) || !cont(p[3]))
            return 0;
        if (c == 0xF0 && p[1] < 0x90)
            return 0; /* overlong */
        if (c == 0xF4 && p[1] >= 0x90)
            return 0; /* above U+10FFFF */
        return 4;
    }
    return 0;
}

int text_utf8_valid(const char *s, size_t len)
{
    const unsigned char *p = (const unsigned char *)s, *end = p + len;
    while (p < end) {
        if (end - p >= 8 && ascii8(p)) {
            p += 8;
            continue;
        }
        size_t n = utf8_seq(p, end);
        if (!n)
            return 0;
        p += n;
    }
    return 1;
}

const char *text_guess_locale(const char *s, size_t len, size_t *letters)
{
    const unsigned char *p = (const unsigned char *)s, *end = p + len;
    size_t cjk = 0, trad = 0, ascii = 0;
    while (p < end) {
        if (*p < 0x80 && *p) {
            ascii += (*p | 0x20) >= 'a' && (*p | 0x20) <= 'z';
            p++;
            continue;
        }
        size_t n = *p ? utf8_seq(p, end) : 0, i = 0;
        if (!n) { /* invalid UTF-8 (or a NUL): no guess */
            cjk = ascii = 0;
            break;
        }
        uint32_t cp = text_utf8_next((const char *)p, &i);
        if (text_is_cjk(cp)) {
            cjk++;
            trad += text_fold_hans(cp) != cp;
        }
        p += n;
    }
    if (letters)
        *letters = ascii;
    return cjk ? (trad ? "zh-hant" : "zh") : "en";
}

/* Decodes leniently: a missing continuation byte (which the NUL terminator
 * always is) stops the sequence and yields U+FFFD, so a stray call on
 * invalid, NUL-terminated text never reads past the terminator. */
uint32_t text_utf8_next(const char *s, size_t *i)
{
    const unsigned char *p = (const unsigned char *)s + *i;
    uint32_t c = p[0];
    size_t n;
    if (c < 0x80) {
        *i += 1;
        return c;
    }
    if (c >= 0xF0) {
        n = 4;
        c &= 0x07;
    } else if (c >= 0xE0) {
        n = 3;
        c &= 0x0F;
    } else if (c >= 0xC0) {
        n = 2;
        c &= 0x1F;
    } else {
        *i += 1;
        return 0xFFFD;
    }
    for (size_t k = 1; k < n; k++) {
        if (!cont(p[k])) {
            *i += k;
            return 0xFFFD;
        }
        c = (c << 6) | (p[k] & 0x3F);
    }
    *i += n;
    return c;
}

static char *put_cp(char *o, uint32_t c)
{
    if (c < 0x80) {
        *o++ = (char)c;
    } else if (c < 0x800) {
        *o++ = (char)(0xC0 | (c >> 6));
        *o++ = (char)(0x80 | (c & 0x3F));
    } else if (c < 0x10000) {
        *o++ = (char)(0xE0 | (c >> 12));
        *o++ = (char)(0x80 | ((c >> 6) & 0x3F));
        *o++ = (char)(0x80 | (c & 0x3F));
    } else {
        *o++ = (char)(0xF0 | (c >> 18));
        *o++ = (char)(0x80 | ((c >> 12) & 0x3F));
        *o++ = (char)(0x80 | ((c >> 6) & 0x3F));
        *o++ = (char)(0x80 | (c & 0x3F));
    }
    return o;
}

/* ---- character classes ------------------------------------------------ */

int text_is_cjk(uint32_t cp)
{
    return (cp >= 0x4E00 && cp <= 0x9FFF)       /* Unified Ideographs */
           || (cp >= 0x3400 && cp <= 0x4DBF)    /* Extension A */
           || (cp >= 0x20000 && cp <= 0x2EBEF)  /* Extensions B..F (and I) */
           || (cp >= 0xF900 && cp <= 0xFAFF)    /* Compatibility Ideographs */
           || (cp >= 0x2F800 && cp <= 0x2FA1F)  /* Compatibility Supplement */
           || (cp >= 0x30000 && cp <= 0x323AF); /* Extensions G, H */
}

int text_is_cjk_run(uint32_t cp)
{
    if (cp < 0x1100)
        return 0;
    return text_is_cjk(cp) || (cp >= 0x3005 && cp <= 0x3007) /* 々 〆 〇 */
           || (cp >= 0x3040 && cp <= 0x309F)                 /* Hiragana */
           || (cp >= 0x30A1 && cp <= 0x30FF && cp != 0x30FB) /* Katakana, not ・ */
           || (cp >= 0x3100 && cp <= 0x312F)                 /* Bopomofo */
           || (cp >= 0x31A0 && cp <= 0x31BF)                 /* Bopomofo Extended */
           || (cp >= 0x31F0 && cp <= 0x31FF)                 /* Katakana Phonetic Ext. */
           || (cp >= 0x2E80 && cp <= 0x2FDF)                 /* CJK and Kangxi radicals */
           || (cp >= 0x1100 && cp <= 0x11FF)                 /* Hangul Jamo */
           || (cp >= 0x3130 && cp <= 0x318F)                 /* Hangul Compatibility Jamo */
           || (cp >= 0xA960 && cp <= 0xA97F)                 /* Hangul Jamo Extended-A */
           || (cp >= 0xAC00 && cp <= 0xD7FF)                 /* Hangul syllables, Ext-B */
           || (cp >= 0xFF66 && cp <= 0xFFDC);                /* half-width kana, Hangul */
}

/* 1 for non-ASCII code points that separate tokens (see the file comment). */
static int is_separator(uint32_t cp)
{
    if (cp < 0xC0)
        return cp != 0xAA && cp != 0xB5 && cp != 0xBA; /* ª µ º are letters */
    if (cp < 0x2000)
        return cp == 0xD7 || cp == 0xF7;
    if (cp <= 0x2BFF || (cp >= 0x2E00 && cp <= 0x2E7F))
        return 1; /* punctuation, symbols, arrows, math, boxes, dingbats */
    if (cp >= 0x3000 && cp <= 0x303F)
        return 1; /* CJK punctuation (々 〆 〇 are CJK-run, checked first) */
    if (cp == 0x30A0 || cp == 0x30FB || (cp >= 0x3190 && cp <= 0x319F) || (cp >= 0x31C0 && cp <= 0x31EF))
        return 1;
    if (cp >= 0x3200 && cp <= 0x33FF)
        return 1; /* enclosed and squared CJK */
    if (cp >= 0xE000 && cp <= 0xF8FF)
        return 1; /* private use */
    if (cp >= 0xFE00 && cp <= 0xFE6F)
        return 1; /* variation selectors, vertical, small forms */
    if (cp >= 0xFF00 && cp <= 0xFF65) {
        uint32_t a = cp - 0xFEE0; /* the ASCII it is the full-width form of */
        return !((a >= '0' && a <= '9') || (a >= 'A' && a <= 'Z') || (a >= 'a' && a <= 'z'));
    }
    if (cp >= 0xFFE0)
        return cp <= 0xFFFF || (cp >= 0x1F000 && cp <= 0x1FAFF) || cp >= 0xE0000;
    return 0;
}

enum { CL_SEP, CL_WORD, CL_CJK };

static int char_class(uint32_t cp)
{
    if (cp < 0x80) {
        uint32_t l = cp | 0x20;
        return (cp >= '0' && cp <= '9') || (l >= 'a' && l <= 'z') ? CL_WORD : CL_SEP;
    }
    if (text_is_cjk_run(cp))
        return CL_CJK;
    return is_separator(cp) ? CL_SEP : CL_WORD;
}

/* ---- traditional → simplified ----------------------------------------- */

static unsigned popcount64(uint64_t x)
{
#if defined(__GNUC__) || defined(__clang__)
    return (unsigned)__builtin_popcountll(x);
#else
    x = x - ((x >> 1) & UINT64_C(0x5555555555555555));
    x = (x & UINT64_C(0x3333333333333333)) + ((x >> 2) & UINT64_C(0x3333333333333333));
    x = (x + (x >> 4)) & UINT64_C(0x0F0F0F0F0F0F0F0F);
    return (unsigned)((x * ONES) >> 56);
#endif
}

static uint32_t hans_far(uint32_t cp)
{
    size_t lo = 0, hi = HANS_NPAIRS;
    if (cp < hans_pairs[0].trad)
        return cp;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (hans_pairs[mid].trad < cp)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < HANS_NPAIRS && hans_pairs[lo].trad == cp ? hans_pairs[lo].simp : cp;
}

uint32_t text_fold_hans(uint32_t cp)
{
    uint32_t i = cp - HANS_LO; /* wraps for cp < HANS_LO */
    if (i >= HANS_HI - HANS_LO)
        return cp >= HANS_HI && cp < HANS_ABOVE ? cp : hans_far(cp);
    uint64_t word = hans_bits[i >> 6], bit = UINT64_C(1) << (i & 63);
    if (!(word & bit))
        return cp;
    int d = hans_delta[hans_rank[i >> 6] + popcount64(word & (bit - 1))];
    return d == HANS_FAR ? hans_far(cp) : (uint32_t)((int32_t)cp + d);
}

/* ---- normalization ---------------------------------------------------- */

#define DROP     0xFFFFFFFFu /* invisible: emit nothing */
#define ELLIPSIS 0xFFFFFFFEu /* emit "..." */

/* CJK punctuation U+3000..U+3017 → ASCII; 0 leaves the character alone. */
static const char cjk_punct[0x18] = {
    ' ', ',', '.', 0, 0, 0, 0, 0, '<', '>', '<', '>', '"', '"', '"', '"', '[', ']', 0, 0, '[', ']', '[', ']',
};

/* Small form variants U+FE50..U+FE6B → ASCII. */
static const char small_forms[0x1C] = {
    ',', ',', '.', 0,   ';', ':', '?', '!', '-', '(', ')',  '{', '}', '[',
    ']', '#', '&', '*', '+', '-', '<', '>', '=', 0,   '\\', '$', '%', '@',
};

/* The light form of one non-ASCII code point: ' ' for white space, DROP for
 * invisible format characters, ELLIPSIS, or the replacement code point. */
static uint32_t light_map(uint32_t c)
{
    if (c < 0x100) {
        if (c == 0x85 || c == 0xA0)
            return ' ';
        if (c < 0xA0 || c == 0xAD)
            return DROP; /* C1 controls, soft hyphen */
        return c;
    }
    if (c >= 0xFF01 && c <= 0xFF5E)
        return c - 0xFEE0; /* full-width ASCII */
    if (c >= 0x3000 && c <= 0x3017)
        return cjk_punct[c - 0x3000] ? (uint32_t)(unsigned char)cjk_punct[c - 0x3000] : c;
    if (c >= 0x2000 && c <= 0x206F) {
        if (c <= 0x200A || c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F)
            return ' ';
        if (c <= 0x200F || (c >= 0x202A && c <= 0x202E) || (c >= 0x2060 && c <= 0x206F))
            return DROP; /* zero-width, direction marks, word joiner, ... */
        if (c <= 0x2015)
            return '-';
        if (c >= 0x2018 && c <= 0x201B)
            return '\'';
        if (c >= 0x201C && c <= 0x201F)
            return '"';
        if (c == 0x2026)
            return ELLIPSIS;
        return c;
    }
    if (c >= 0xFE50 && c <= 0xFE6B)
        return small_forms[c - 0xFE50] ? (uint32_t)(unsigned char)small_forms[c - 0xFE50] : c;
    switch (c) {
    case 0x034F:              /* combining grapheme joiner */
    case 0x061C:              /* Arabic letter mark */
    case 0x180E:              /* Mongolian vowel separator */
    case 0xFEFF: return DROP; /* zero-width no-break space, BOM */
    case 0x1680: return ' ';
    case 0x301C: return '~';
    case 0xFF61: return '.';
    case 0xFF62: return '"';
    case 0xFF63: return '"';
    case 0xFF64: return ',';
    case 0xFFE0: return 0xA2;
    case 0xFFE1: return 0xA3;
    case 0xFFE2: return 0xAC;
    case 0xFFE3: return 0xAF;
    case 0xFFE4: return 0xA6;
    case 0xFFE5: return 0xA5;
    case 0xFFE6: return 0x20A9;
    }
    if ((c >= 0xFE00 && c <= 0xFE0F) || (c >= 0xE0000 && c <= 0xE007F) || (c >= 0xE0100 && c <= 0xE01EF))
        return DROP; /* variation selectors, tags */
    return c;
}

/* Simple lower-case of Latin-1, Latin Extended-A, Latin Extended Additional,
 * Greek and Cyrillic capitals; others unchanged. ASCII is done by the caller. */
static uint32_t fold_case(uint32_t c)
{
    if (c < 0xC0)
        return c;
    if (c <= 0xDE)
        return c == 0xD7 ? c : c + 32;
    if (c < 0x100)
        return c;
    if (c < 0x180) {
        if (c == 0x130)
            return 'i';
        if (c == 0x178)
            return 0xFF;
        if (c == 0x17F)
            return 's'; /* long s */
        if ((c < 0x138 && c != 0x131) || (c >= 0x14A && c <= 0x177))
            return c | 1; /* capitals are even */
        if ((c >= 0x139 && c <= 0x148) || (c >= 0x179 && c <= 0x17E))
            return (c & 1) ? c + 1 : c; /* capitals are odd */
        return c;
    }
    if (c >= 0x391 && c <= 0x3AB && c != 0x3A2)
        return c + 32;
    if (c >= 0x386 && c <= 0x38F) {
        static const uint16_t tonos[10] = {0x3AC, 0x387, 0x3AD, 0x3AE, 0x3AF,
                                           0x38B, 0x3CC, 0x38D, 0x3CD, 0x3CE};
        return tonos[c - 0x386];
    }
    if (c >= 0x400 && c <= 0x42F)
        return c < 0x410 ? c + 80 : c + 32;
    if (c >= 0x460 && c <= 0x4FF && c != 0x482 && !(c >= 0x483 && c <= 0x489) && c != 0x4C0 && c != 0x4CF) {
        if ((c >= 0x460 && c <= 0x481) || (c >= 0x48A && c <= 0x4BF) || (c >= 0x4D0 && c <= 0x4FF))
            return c | 1;
        if (c >= 0x4C1 && c <= 0x4CE)
            return (c & 1) ? c + 1 : c;
        return c;
    }
    if (c >= 0x1E00 && c <= 0x1EFF && !(c >= 0x1E96 && c <= 0x1E9F))
        return c | 1;
    return c;
}

/* Writes the normalized form of s[0..len) (valid UTF-8) to o; returns the end. */
static char *normalize_into(const char *s, size_t len, unsigned flags, char *o)
{
    const unsigned char *p = (const unsigned char *)s;
    char *start = o;
    int fold = (flags & TEXT_FOLD) != 0, space = 0;
    size_t i = 0;
    while (i < len) {
        uint32_t c = p[i];
        if (c < 0x80) {
            i++;
            if (c > ' ' && c < 0x7F) {
                if (space && o != start)
                    *o++ = ' ';
                space = 0;
                *o++ = (char)(fold && c >= 'A' && c <= 'Z' ? c + 32 : c);
            } else if (c == ' ' || (c >= '\t' && c <= '\r')) {
                space = 1;
            } /* other controls and DEL are dropped */
            continue;
        }
        c = light_map(text_utf8_next(s, &i));
        if (c == DROP)
            continue;
        if (c == ' ') {
            space = 1;
            continue;
        }
        if (space && o != start)
            *o++ = ' ';
        space = 0;
        if (c == ELLIPSIS) {
            memcpy(o, "...", 3);
            o += 3;
            continue;
        }
        if (fold) {
            if (c < 0x80)
                c = c >= 'A' && c <= 'Z' ? c + 32 : c;
            else if (c < 0x3400)
                c = fold_case(c);
            else
                c = text_fold_hans(c);
        }
        o = put_cp(o, c);
    }
    return o;
}

int text_normalize(const char *s, size_t len, unsigned flags, struct text_buf *out)
{
    out->len = 0;
    if (out->s)
        out->s[0] = 0;
    if (!text_utf8_valid(s, len))
        return KEFU_EUTF8;
    /* Worst case 4/3: only a 3-byte character becoming a 4-byte one grows. */
    if (len > (SIZE_MAX - 2) / 4 * 3)
        return KEFU_ENOMEM;
    int rc = buf_reserve(out, len + len / 3 + 2);
    if (rc < 0)
        return rc;
    char *end = normalize_into(s, len, flags, out->s);
    *end = 0;
    out->len = (size_t)(end - out->s);
    return 0;
}

/* ---- tokens ----------------------------------------------------------- */

/* Streams the characters of one CJK run into tokens (order in the file comment). */
struct cjk_run {
    size_t n;              /* characters so far */
    size_t prev, prev_len; /* the previous character */
};

static int cjk_add(struct cjk_run *r, size_t off, size_t len, unsigned flags, struct text_toks *out)
{
    int rc = 0;
    if (r->n > 0) {
        if (flags & TEXT_TOK_UNIGRAMS)
            rc = toks_push(out, r->prev, r->prev_len, TEXT_TOK_CJK1);
        if (rc == 0)
            rc = toks_push(out, r->prev, r->prev_len + len, TEXT_TOK_CJK2);
    }
    r->n++;
    r->prev = off;
    r->prev_len = len;
    return rc;
}

static int cjk_end(struct cjk_run *r, unsigned flags, struct text_toks *out)
{
    int rc = 0;
    if (r->n == 1 || (r->n > 1 && (flags & TEXT_TOK_UNIGRAMS)))
        rc = toks_push(out, r->prev, r->prev_len, TEXT_TOK_CJK1);
    r->n = 0;
    return rc;
}

/* Decodes the code point at t[*i] without reading past t[len); a malformed
 * byte gives U+FFFD (a separator), so even invalid input tokenizes safely. */
static uint32_t next_bounded(const char *t, size_t len, size_t *i)
{
    const unsigned char *p = (const unsigned char *)t;
    if (p[*i] < 0x80)
        return p[(*i)++];
    if (!utf8_seq(p + *i, p + len)) {
        (*i)++;
        return 0xFFFD;
    }
    return text_utf8_next(t, i);
}

/* 1 if the apostrophe at t[i] joins two word characters. */
static int inner_apostrophe(const char *t, size_t len, size_t i)
{
    if (i + 1 >= len)
        return 0;
    size_t j = i + 1;
    return char_class(next_bounded(t, len, &j)) == CL_WORD;
}

int text_tokenize(const char *t, size_t len, unsigned flags, struct text_toks *out)
{
    out->n = 0;
    if (len > UINT32_MAX)
        return KEFU_ERANGE;
    struct cjk_run run = {0, 0, 0};
    size_t i = 0, word = 0;
    int in_word = 0, rc = 0;
    while (i < len && rc == 0) {
        size_t at = i;
        unsigned char b = (unsigned char)t[i];
        int cl;
        if (b < 0x80) {
            i++;
            cl = char_class(b);
            if (b == '\'' && in_word && inner_apostrophe(t, len, at))
                cl = CL_WORD;
        } else {
            cl = char_class(next_bounded(t, len, &i));
        }
        if (in_word && cl != CL_WORD) {
            rc = toks_push(out, word, at - word, TEXT_TOK_WORD);
            in_word = 0;
        }
        if (run.n && cl != CL_CJK && rc == 0)
            rc = cjk_end(&run, flags, out);
        if (cl == CL_WORD && !in_word) {
            in_word = 1;
            word = at;
        } else if (cl == CL_CJK && rc == 0 && !(flags & TEXT_TOK_WORDS)) {
            rc = cjk_add(&run, at, i - at, flags, out);
        }
    }
    if (in_word && rc == 0)
        rc = toks_push(out, word, len - word, TEXT_TOK_WORD);
    if (run.n && rc == 0)
        rc = cjk_end(&run, flags, out);
    if (rc < 0)
        out->n = 0;
    return rc;
}

/* ---- stemmer ---------------------------------------------------------- */

/* The rules, applied in this order to a word of lower-case ASCII letters
 * (words holding anything else are returned unchanged, after step 1). A step
 * that would leave fewer than 3 bytes is skipped, so short words (is, has,
 * us) never change.
 *   1. possessive: drop a final 's, or a final ' (customers').
 *   2. plural: -ies → -y (deliveries → delivery); -sses → -ss; otherwise a
 *      final s is dropped unless it follows s, u or i (address, status, this).
 *   3. -ied → -y (carried → carry); -ed and -ing are dropped when what is
 *      left holds a vowel (a e i o u y) and -ed does not follow e (need,
 *      speed, agreed stay). When dropping -ed leaves too little but the word
 *      is a base ending in e plus d (used, aged), only the d is dropped.
 *      After -ed/-ing, a doubled final b d g m n p r t is undoubled
 *      (shipped → ship); ll, ss, ff, zz stay (passed → pass).
 *   4. a final e is dropped unless it follows e (charge → charg, free);
 *      a final y after a consonant is dropped (delivery → deliver, pay).
 *   5. a final ll becomes l when at least 4 bytes remain, with or without
 *      a suffix, so cancelled, canceled and cancel agree, and install and
 *      installed both give instal; bill, call, full and all are too short.
 * Steps 2 to 5 each run at most once; the rules never add bytes except in
 * -ies/-ied → -y, which still shortens the word. */

static int is_vowel(char c)
{
    return c == 'a' || c == 'e' || c == 'i' || c == 'o' || c == 'u' || c == 'y';
}

static int has_vowel(const char *w, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (is_vowel(w[i]))
            return 1;
    return 0;
}

static int ends(const char *w, size_t n, const char *suffix)
{
    size_t k = strlen(suffix);
    return n >= k && memcmp(w + n - k, suffix, k) == 0;
}

static int undoubles(char c)
{
    return c == 'b' || c == 'd' || c == 'g' || c == 'm' || c == 'n' || c == 'p' || c == 'r' || c == 't';
}

static size_t stem_plural(char *w, size_t n)
{
    if (ends(w, n, "ies") && n - 2 >= 3) {
        w[n - 3] = 'y';
        return n - 2;
    }
    if (ends(w, n, "sses"))
        return n - 2;
    if (n - 1 >= 3 && w[n - 1] == 's' && w[n - 2] != 's' && w[n - 2] != 'u' && w[n - 2] != 'i')
        return n - 1;
    return n;
}

static size_t stem_verb(char *w, size_t n)
{
    size_t k = 0;
    if (ends(w, n, "ied") && n - 2 >= 3) {
        w[n - 3] = 'y';
        return n - 2;
    }
    if (ends(w, n, "ed") && !ends(w, n, "eed")) {
        if (n - 2 >= 3 && has_vowel(w, n - 2))
            k = n - 2;
        else if (n - 1 >= 3 && !is_vowel(w[n - 3]) && has_vowel(w, n - 3))
            return n - 1; /* used → use, aged → age */
    } else if (ends(w, n, "ing") && n - 3 >= 3 && has_vowel(w, n - 3)) {
        k = n - 3;
    }
    if (!k)
        return n;
    if (k - 1 >= 3 && w[k - 1] == w[k - 2] && undoubles(w[k - 1]))
        k--;
    return k;
}

static size_t stem_tail(char *w, size_t n)
{
    if (n - 1 >= 3 && w[n - 1] == 'e' && w[n - 2] != 'e')
        return n - 1;
    if (n - 1 >= 3 && w[n - 1] == 'y' && !is_vowel(w[n - 2]))
        return n - 1;
    return n;
}

size_t text_stem(const char *w, size_t len, char *out)
{
    size_t n = len;
    memcpy(out, w, len);
    if (n >= 5 && out[n - 2] == '\'' && out[n - 1] == 's')
        n -= 2;
    else if (n >= 4 && out[n - 1] == '\'' && out[n - 2] == 's')
        n -= 1;
    if (n < 4)
        return n;
    for (size_t i = 0; i < n; i++)
        if (out[i] < 'a' || out[i] > 'z')
            return n;
    n = stem_plural(out, n);
    n = stem_verb(out, n);
    n = stem_tail(out, n);
    if (n >= 5 && out[n - 1] == 'l' && out[n - 2] == 'l')
        n--;
    return n;
}
