/* classify_feat.c — the classifier's features of one message.
 * The text is normalized exactly as the router sees it (text.c: full-width
 * folding, lower case, traditional → simplified); words give stems,
 * bigrams of stems and character n-grams (for typos), CJK runs give
 * character 1-3-grams (Chinese has no spaces to split words on). Names go
 * to a callback, so training, prediction and explanations share one list. */
#include "classify_int.h"

#include "kefu.h"

#include <string.h>

void classify_scratch_init(struct classify_scratch *s)
{
    text_buf_init(&s->norm);
    text_toks_init(&s->toks);
}

void classify_scratch_release(struct classify_scratch *s)
{
    text_buf_release(&s->norm);
    text_toks_release(&s->toks);
}

uint64_t classify_fnv(uint64_t h, const void *s, size_t n)
{
    const unsigned char *p = s;
    for (size_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= 0x100000001b3ULL;
    }
    return h;
}

uint32_t classify_bucket(const char *name, size_t len, int bits)
{
    uint64_t h = classify_fnv(CLASSIFY_FNV_INIT, name, len);
    h ^= h >> 29;
    h *= 0xbf58476d1ce4e5b9ULL;
    h ^= h >> 32;
    return (uint32_t)(h & ((1ULL << bits) - 1));
}

#define WORD_MAX 40 /* longer words are cut for their features */

/* Emits prefix + a + (sep + b), flagged slot. */
static void emit2(classify_emit_fn emit, void *ctx, int slot, const char *prefix, const char *a, size_t alen,
                  const char *b, size_t blen)
{
    char buf[2 + 2 * WORD_MAX + 2];
    size_t n = strlen(prefix);
    memcpy(buf, prefix, n);
    memcpy(buf + n, a, alen);
    n += alen;
    if (b) {
        buf[n++] = '|';
        memcpy(buf + n, b, blen);
        n += blen;
    }
    emit(ctx, buf, n, slot);
}

/* Character 3-5-grams of "<word>" (bytes; words are ASCII runs mostly). */
static void char_grams(classify_emit_fn emit, void *ctx, int slot, const char *w, size_t len)
{
    char b[WORD_MAX + 2];
    b[0] = '<';
    memcpy(b + 1, w, len);
    b[len + 1] = '>';
    size_t n = len + 2;
    for (size_t g = 3; g <= 5; g++)
        for (size_t i = 0; i + g <= n; i++)
            emit2(emit, ctx, slot, "c:", b + i, g, NULL, 0);
}

int classify_slot_word(const char *norm, size_t norm_len, size_t off, size_t len)
{
    for (size_t i = off; i < off + len && i < norm_len; i++)
        if (norm[i] >= '0' && norm[i] <= '9')
            return 1;
    size_t from = off, to = off + len;
    while (from > 0 && norm[from - 1] != ' ')
        from--;
    while (to < norm_len && norm[to] != ' ')
        to++;
    return memchr(norm + from, '@', to - from) != NULL;
}

static void word_features(struct classify_scratch *s, classify_emit_fn emit, void *ctx)
{
    char prev[WORD_MAX], stem[WORD_MAX];
    size_t prev_len = 0;
    int prev_slot = 0;
    for (size_t k = 0; k < s->toks.n; k++) {
        const struct text_tok *t = &s->toks.v[k];
        if (t->kind != TEXT_TOK_WORD)
            continue;
        const char *w = s->norm.s + t->off;
        size_t len = t->len < WORD_MAX ? t->len : WORD_MAX;
        size_t sl = text_stem(w, len, stem);
        int slot = classify_slot_word(s->norm.s, s->norm.len, t->off, t->len);
        emit2(emit, ctx, slot, "w:", stem, sl, NULL, 0);
        if (prev_len)
            emit2(emit, ctx, slot || prev_slot, "b:", prev, prev_len, stem, sl);
        memcpy(prev, stem, sl);
        prev_len = sl;
        prev_slot = slot;
        char_grams(emit, ctx, slot, w, len);
    }
}

/* CJK character 1-3-grams inside each run of ideographs. */
static void cjk_features(const struct text_buf *norm, classify_emit_fn emit, void *ctx)
{
    size_t start[3] = {0, 0, 0}; /* byte offsets of the last three characters */
    int run = 0;
    size_t i = 0;
    while (i < norm->len) {
        size_t at = i;
        uint32_t cp = text_utf8_next(norm->s, &i);
        if (!text_is_cjk_run(cp)) {
            run = 0;
            continue;
        }
        start[0] = start[1];
        start[1] = start[2];
        start[2] = at;
        run++;
        for (int g = 1; g <= 3 && g <= run; g++) {
            size_t from = start[3 - g];
            emit2(emit, ctx, 0, "z:", norm->s + from, i - from, NULL, 0);
        }
    }
}

int classify_features(struct classify_scratch *s, const char *text, size_t len, classify_emit_fn emit,
                      void *ctx)
{
    int rc = text_normalize(text, len, TEXT_FOLD, &s->norm);
    if (rc < 0)
        return rc;
    if ((rc = text_tokenize(s->norm.s, s->norm.len, TEXT_TOK_WORDS, &s->toks)) < 0)
        return rc;
    word_features(s, emit, ctx);
    cjk_features(&s->norm, emit, ctx);
    return 0;
}
