/* fuzz_text.c — libFuzzer target for the text module: UTF-8 validation,
 * normalization (light and folded), tokenization in every mode, the
 * stemmer and the locale guess, on arbitrary bytes. Besides "no crash,
 * no undefined behaviour, no leak" it checks what the pipeline promises:
 * normalization fails exactly on invalid UTF-8, its output is valid UTF-8
 * with no NUL and no run of two spaces, normalizing twice changes nothing,
 * tokens lie inside the text in order, and a stem is never longer than its
 * word. A broken promise aborts, which libFuzzer reports as a crash. */
#include "kefu.h"
#include "text.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"

static void check_tokens(const struct text_buf *t, unsigned flags, struct text_toks *toks)
{
    int rc = text_tokenize(t->s ? t->s : "", t->len, flags, toks);
    MUST(rc == 0);
    uint32_t prev = 0;
    for (size_t k = 0; k < toks->n; k++) {
        const struct text_tok *tk = &toks->v[k];
        MUST(tk->len > 0);
        MUST((size_t)tk->off + tk->len <= t->len);
        MUST(tk->off >= prev || (flags & TEXT_TOK_UNIGRAMS)); /* unigrams share offsets with bigrams */
        MUST(text_utf8_valid(t->s + tk->off, tk->len));
        MUST(tk->kind >= TEXT_TOK_WORD && tk->kind <= TEXT_TOK_CJK1);
        if ((flags & TEXT_TOK_WORDS))
            MUST(tk->kind == TEXT_TOK_WORD);
        if (tk->kind == TEXT_TOK_WORD && tk->len < 64) {
            char stem[64];
            int ascii = 1;
            for (uint32_t i = 0; i < tk->len; i++)
                if ((unsigned char)t->s[tk->off + i] >= 0x80 ||
                    (t->s[tk->off + i] >= 'A' && t->s[tk->off + i] <= 'Z'))
                    ascii = 0;
            if (ascii) /* the stemmer takes lower-case ASCII words */
                MUST(text_stem(t->s + tk->off, tk->len, stem) <= tk->len);
        }
        prev = tk->off;
    }
}

static void check_form(const uint8_t *data, size_t size, unsigned flags, int valid)
{
    struct text_buf a, b;
    struct text_toks toks;
    text_buf_init(&a);
    text_buf_init(&b);
    text_toks_init(&toks);
    int rc = text_normalize((const char *)data, size, flags, &a);
    MUST(rc == 0 || rc == KEFU_EUTF8);
    MUST((rc == KEFU_EUTF8) == !valid);
    if (rc == 0) {
        MUST(text_utf8_valid(a.s ? a.s : "", a.len));
        MUST(a.len == 0 || (a.s[0] != ' ' && a.s[a.len - 1] != ' '));
        MUST(!a.len || !strstr(a.s, "  "));
        MUST(text_normalize(a.s ? a.s : "", a.len, flags, &b) == 0);
        MUST(b.len == a.len && (a.len == 0 || memcmp(a.s, b.s, a.len) == 0));
        check_tokens(&a, 0, &toks);
        check_tokens(&a, TEXT_TOK_UNIGRAMS, &toks);
        check_tokens(&a, TEXT_TOK_WORDS, &toks);
    } else {
        MUST(a.len == 0);
    }
    text_toks_release(&toks);
    text_buf_release(&a);
    text_buf_release(&b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int valid = text_utf8_valid((const char *)data, size);
    if (valid) { /* decoding walks exactly to the end */
        size_t i = 0, n = 0;
        while (i < size && n++ <= size)
            text_utf8_next((const char *)data, &i);
        MUST(i == size);
    }
    size_t letters = 0;
    const char *loc = text_guess_locale((const char *)data, size, &letters);
    MUST(strcmp(loc, "en") == 0 || strcmp(loc, "zh") == 0 || strcmp(loc, "zh-hant") == 0);
    MUST(letters <= size);
    check_form(data, size, 0, valid);
    check_form(data, size, TEXT_FOLD, valid);
    return 0;
}
