/* test_text.c — unit tests for engine/text.c: UTF-8 validation, the light
 * and folded normal forms, the traditional → simplified table, tokens and
 * the stemmer. Cases live in tables with greppable ids; a failure prints the
 * id with both values. Every buffer is released, for ASan and valgrind. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "hans_table.h"
#include "kefu.h"
#include "text.h"

#define L 0u        /* light form */
#define F TEXT_FOLD /* folded form */
#define U TEXT_TOK_UNIGRAMS

/* A byte string with an explicit length, so cases can hold NUL bytes. */
#define BYTES(lit) lit, sizeof(lit) - 1

static void expect_str(const char *id, const char *got, size_t got_len, const char *want)
{
    if (got_len != strlen(want) || memcmp(got, want, got_len) != 0)
        fail_msg("%s: got \"%.*s\" (%zu bytes), want \"%s\"", id, (int)got_len, got, got_len, want);
}

/* ---- UTF-8 ------------------------------------------------------------ */

static const struct utf8_case {
    const char *id, *s;
    size_t len;
    int valid;
} utf8_cases[] = {
    {"u1.1 empty", BYTES(""), 1},
    {"u1.2 ascii", BYTES("where is my refund?"), 1},
    {"u1.3 2-byte", BYTES("caf\xC3\xA9"), 1},
    {"u1.4 3-byte", BYTES("\xE9\x80\x80\xE6\xAC\xBE"), 1},
    {"u1.5 4-byte", BYTES("\xF0\x9F\x98\x80"), 1},
    {"u1.6 extremes", BYTES("\xC2\x80\xDF\xBF\xE0\xA0\x80\xEF\xBF\xBF\xF0\x90\x80\x80\xF4\x8F\xBF\xBF"), 1},
    {"u1.7 long ascii", BYTES("0123456789abcdef0123456789abcdef!"), 1},
    {"u2.1 overlong slash", BYTES("\xC0\xAF"), 0},
    {"u2.2 overlong C1", BYTES("\xC1\xBF"), 0},
    {"u2.3 overlong 3-byte", BYTES("\xE0\x80\xAF"), 0},
    {"u2.4 overlong 4-byte", BYTES("\xF0\x80\x80\xAF"), 0},
    {"u2.5 surrogate high", BYTES("\xED\xA0\x80"), 0},
    {"u2.6 surrogate low", BYTES("\xED\xBF\xBF"), 0},
    {"u2.7 above U+10FFFF", BYTES("\xF4\x90\x80\x80"), 0},
    {"u2.8 F5 lead", BYTES("\xF5\x80\x80\x80"), 0},
    {"u2.9 FF byte", BYTES("ab\xFF"), 0},
    {"u3.1 truncated 2-byte", BYTES("ab\xC3"), 0},
    {"u3.2 truncated 3-byte", BYTES("\xE9\x80"), 0},
    {"u3.3 truncated 4-byte", BYTES("\xF0\x9F\x98"), 0},
    {"u3.4 truncated in middle", BYTES("\xE9\x80z"), 0},
    {"u4.1 lone continuation", BYTES("\x80"), 0},
    {"u4.2 continuation after ascii", BYTES("refund\xBF"), 0},
    {"u4.3 extra continuation", BYTES("\xC3\xA9\xA9"), 0},
    {"u5.1 NUL", BYTES("a\0b"), 0},
    {"u5.2 NUL in fast path", BYTES("abcdefg\0hijklmnop"), 0},
    {"u5.3 invalid after fast path", BYTES("abcdefghijklmnop\xC0\xAF"), 0},
};

static void test_utf8_valid(void **state)
{
    for (size_t i = 0; i < sizeof utf8_cases / sizeof *utf8_cases; i++) {
        const struct utf8_case *c = &utf8_cases[i];
        int got = text_utf8_valid(c->s, c->len);
        if (got != c->valid)
            fail_msg("%s: text_utf8_valid got %d, want %d", c->id, got, c->valid);
    }
}

static void test_utf8_next(void **state)
{
    static const char s[] = "a\xC3\xA9\xE4\xB8\xAD\xF0\x9F\x98\x80";
    static const struct {
        uint32_t cp;
        size_t end;
    } want[] = {{0x61, 1}, {0xE9, 3}, {0x4E2D, 6}, {0x1F600, 10}};
    size_t i = 0;
    for (size_t k = 0; k < 4; k++) {
        uint32_t cp = text_utf8_next(s, &i);
        if (cp != want[k].cp || i != want[k].end)
            fail_msg("n1.%zu: got U+%04X ending at %zu, want U+%04X at %zu", k + 1, (unsigned)cp, i,
                     (unsigned)want[k].cp, want[k].end);
    }
    /* truncated at the terminator: stops there instead of reading past it */
    i = 0;
    assert_int_equal(text_utf8_next("\xE4\xB8", &i), 0xFFFD);
    assert_int_equal(i, 2);
}

/* ---- normalization ---------------------------------------------------- */

static const struct norm_case {
    const char *id, *in;
    unsigned flags;
    const char *want;
} norm_cases[] = {
    {"n1.1 full-width fold", "ＲＥＦＵＮＤ１２３", F, "refund123"},
    {"n1.2 full-width light keeps case", "ＲＥＦＵＮＤ１２３", L, "REFUND123"},
    {"n1.3 full-width punct", "（退款），。？！：；“好”", L, "(退款),.?!:;\"好\""},
    {"n1.4 enumeration comma", "你好、谢谢。", L, "你好,谢谢."},
    {"n1.5 single quotes", "it’s ‘ok’", L, "it's 'ok'"},
    {"n1.6 brackets", "【通知】《说明》「是」", L, "[通知]<说明>\"是\""},
    {"n1.7 ellipsis", "wait…", L, "wait..."},
    {"n1.8 full-width email", "ｅｍａｉｌ＠ｅｘａｍｐｌｅ．ｃｏｍ", F, "email@example.com"},
    {"n1.9 small forms", "好﹐吗﹖", L, "好,吗?"},
    {"n1.10 dashes", "a–b—c", L, "a-b-c"},
    {"n2.1 ideographic space", "退款\u3000什么时候", L, "退款 什么时候"},
    {"n2.2 zero-width dropped", "re\u200Bfu\u200Cn\u200Dd\u2060\uFEFF", L, "refund"},
    {"n2.3 soft hyphen dropped", "re\u00ADfund", L, "refund"},
    {"n2.4 zero-width between spaces", "a \u200B b", L, "a b"},
    {"n2.5 only zero-width", "\u200B\uFEFF", L, ""},
    {"n2.6 controls dropped",
     "a\x01"
     "b\x7F"
     "c",
     L, "abc"},
    {"n2.7 bidi marks dropped", "\u202Eabc\u202C\u200E", L, "abc"},
    {"n3.1 whitespace runs", "  where\t\tis \n\u00A0my  refund \r\n", L, "where is my refund"},
    {"n3.2 only spaces", " \t\n\u00A0\u3000 ", L, ""},
    {"n3.3 NEL and line separator",
     "a\xC2\x85"
     "b\u2028c",
     L, "a b c"},
    {"n3.4 empty", "", F, ""},
    {"n4.1 ascii fold", "Where IS My Refund", F, "where is my refund"},
    {"n4.2 ascii light", "Where IS My Refund", L, "Where IS My Refund"},
    {"n4.3 latin-1 fold", "ÉCOLE ÀÇÑÖØÞ", F, "école àçñöøþ"},
    {"n4.4 latin-1 light", "ÉCOLE", L, "ÉCOLE"},
    {"n4.5 latin ext-a fold", "ŒUVRE ĲSSEL ŁÓDŹ ŸES", F, "œuvre ĳssel łódź ÿes"},
    {"n4.6 lower and signs kept", "× ÷ ß ı", F, "× ÷ ß ı"},
    {"n4.7 cyrillic and greek", "ПРИВЕТ ΑΘΗΝΑ", F, "привет αθηνα"},
    {"n4.8 vietnamese", "ĐẶT HÀNG", F, "đặt hàng"},
    {"n5.1 trad sentence", "這個訂單的發票怎麼開", F, "这个订单的发票怎么开"},
    {"n5.2 trad light unchanged", "這個訂單的發票怎麼開", L, "這個訂單的發票怎麼開"},
    {"n5.3 return goods", "退貨", F, "退货"},
    {"n5.4 after", "後", F, "后"},
    {"n5.5 hair", "髮", F, "发"},
    {"n5.6 taiwan", "臺灣", F, "台湾"},
    {"n5.7 variants", "裡面 衞生 爲什麼", F, "里面 卫生 为什么"},
    {"n5.8 simplified unchanged", "这个订单的发票怎么开 什么 才 台 户 粽 抬", F,
     "这个订单的发票怎么开 什么 才 台 户 粽 抬"},
    {"n5.9 mixed", "Ｉｐｈｏｎｅ１５退貨了嗎？", F, "iphone15退货了吗?"},
    {"n5.10 my refund", "我的退款到哪裡了", F, "我的退款到哪里了"},
    {"n5.11 kana and hangul unchanged", "ありがとう 감사합니다", F, "ありがとう 감사합니다"},
};

static void test_normalize(void **state)
{
    struct text_buf b, again;
    text_buf_init(&b);
    text_buf_init(&again);
    for (size_t i = 0; i < sizeof norm_cases / sizeof *norm_cases; i++) {
        const struct norm_case *c = &norm_cases[i];
        int rc = text_normalize(c->in, strlen(c->in), c->flags, &b);
        if (rc != 0)
            fail_msg("%s: text_normalize returned %d (%s)", c->id, rc, kefu_strerror(rc));
        expect_str(c->id, b.s, b.len, c->want);
        assert_int_equal(b.s[b.len], 0);
        /* idempotent: the normal form of a normal form is itself */
        assert_int_equal(text_normalize(b.s, b.len, c->flags, &again), 0);
        expect_str(c->id, again.s, again.len, c->want);
    }
    text_buf_release(&b);
    text_buf_release(&again);
}

static void test_normalize_invalid(void **state)
{
    struct text_buf b;
    text_buf_init(&b);
    assert_int_equal(text_normalize(BYTES("\xC0\xAF"), F, &b), KEFU_EUTF8);
    assert_int_equal(b.len, 0);
    for (size_t i = 0; i < sizeof utf8_cases / sizeof *utf8_cases; i++) {
        const struct utf8_case *c = &utf8_cases[i];
        if (c->valid)
            continue;
        assert_int_equal(text_normalize(BYTES("previous contents"), F, &b), 0);
        int rc = text_normalize(c->s, c->len, F, &b);
        if (rc != KEFU_EUTF8 || b.len != 0 || b.s[0] != 0)
            fail_msg("%s: got rc %d, len %zu, want KEFU_EUTF8 and empty", c->id, rc, b.len);
    }
    text_buf_release(&b);
}

/* Once the buffer is big enough, normalizing allocates nothing. */
static void test_normalize_warm(void **state)
{
    static const char msg[] = "Ｗｈｅｒｅ　ｉｓ　ｍｙ　退貨？\u200B  請問";
    struct text_buf b;
    text_buf_init(&b);
    assert_int_equal(text_normalize(BYTES(msg), F, &b), 0);
    char *s = b.s;
    size_t cap = b.cap;
    kefu_alloc_fail_after(1);
    for (int k = 0; k < 3; k++)
        assert_int_equal(text_normalize(BYTES(msg), F, &b), 0);
    kefu_alloc_fail_after(0);
    assert_ptr_equal(b.s, s);
    assert_int_equal(b.cap, cap);
    expect_str("w1.1 warm", b.s, b.len, "where is my 退货? 请问");
    text_buf_release(&b);
    text_buf_release(&b); /* released twice is fine */
}

static void test_normalize_enomem(void **state)
{
    struct text_buf b;
    text_buf_init(&b);
    kefu_alloc_fail_after(1);
    int rc = text_normalize(BYTES("refund"), F, &b);
    kefu_alloc_fail_after(0);
    assert_int_equal(rc, KEFU_ENOMEM);
    assert_int_equal(b.len, 0);
    assert_int_equal(text_normalize(BYTES("refund"), F, &b), 0);
    expect_str("m1.1 after enomem", b.s, b.len, "refund");
    text_buf_release(&b);
}

/* 4 KiB of invalid and valid multibyte, full-width and zero-width pieces:
 * text_normalize must return cleanly, and a valid mix must stay valid. */
static const char *const pieces[] = {
    "\xC0\xAF",
    "\xED\xA0\x80",
    "\xF4\x90\x80\x80",
    "\xE4\xB8",
    "\x80",
    "\xFF",
    "\xF0\x9F\x98",
    "Ａ",
    "\u200B",
    "這",
    "é",
    "\uFEFF",
    "a",
    " ",
    "\t",
    "😀",
    "…",
    "\u3000",
    "，",
    "Ｚ",
    "\u00AD",
    "𠀋",
    "ǅ",
    "ﾃ",
    "臺",
    "'",
    "\u0301",
};
enum { NPIECES = sizeof pieces / sizeof *pieces, FIRST_VALID = 7 };

static size_t fill_adversarial(char *buf, size_t cap, uint32_t *seed, size_t first)
{
    size_t n = 0;
    for (;;) {
        *seed = *seed * 1103515245u + 12345u;
        const char *p = pieces[first + (*seed >> 16) % (NPIECES - first)];
        size_t k = strlen(p);
        if (n + k > cap)
            return n;
        memcpy(buf + n, p, k);
        n += k;
    }
}

static void test_normalize_adversarial(void **state)
{
    static char buf[4096];
    struct text_buf b;
    struct text_toks t;
    text_buf_init(&b);
    text_toks_init(&t);
    uint32_t seed = 12345;
    for (int round = 0; round < 200; round++) {
        size_t first = round % 2 ? FIRST_VALID : 0;
        size_t n = fill_adversarial(buf, sizeof buf, &seed, first);
        for (unsigned flags = 0; flags <= F; flags++) {
            int rc = text_normalize(buf, n, flags, &b);
            if (first == FIRST_VALID && rc != 0)
                fail_msg("a%d: valid mix returned %d", round, rc);
            if (rc != 0 && rc != KEFU_EUTF8)
                fail_msg("a%d: unexpected rc %d", round, rc);
            if (rc == 0 && !text_utf8_valid(b.s, b.len))
                fail_msg("a%d: output is not valid utf-8", round);
            assert_true(b.len <= n + n / 3);
            assert_int_equal(text_tokenize(b.s, b.len, U, &t), 0);
        }
        /* the tokenizer never reads past len, even on raw invalid bytes */
        assert_int_equal(text_tokenize(buf, n, U, &t), 0);
        for (size_t k = 0; k < t.n; k++)
            assert_true((size_t)t.v[k].off + t.v[k].len <= n);
    }
    text_buf_release(&b);
    text_toks_release(&t);
}

/* ---- traditional → simplified ----------------------------------------- */

static void test_fold_hans(void **state)
{
    static const struct {
        const char *id;
        uint32_t in, want;
    } cases[] = {
        {"h1.1 ascii", 'A', 'A'},
        {"h1.2 貨", 0x8CA8, 0x8D27},
        {"h1.3 後", 0x5F8C, 0x540E},
        {"h1.4 髮", 0x9AEE, 0x53D1},
        {"h1.5 臺", 0x81FA, 0x53F0},
        {"h1.6 灣", 0x7063, 0x6E7E},
        {"h1.7 货 unchanged", 0x8D27, 0x8D27},
        {"h1.8 么 unchanged", 0x4E48, 0x4E48},
        {"h1.9 ext-b 𠀋 unchanged", 0x2000B, 0x2000B},
        {"h1.10 max", 0x10FFFF, 0x10FFFF},
        {"h1.11 hangul", 0xAC00, 0xAC00},
        {"h1.12 zero", 0, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        uint32_t got = text_fold_hans(cases[i].in);
        if (got != cases[i].want)
            fail_msg("%s: got U+%04X, want U+%04X", cases[i].id, (unsigned)got, (unsigned)cases[i].want);
    }
    /* the far pairs answer as listed */
    for (size_t i = 0; i < HANS_NPAIRS; i++)
        assert_int_equal(text_fold_hans(hans_pairs[i].trad), hans_pairs[i].simp);
}

/* Table integrity over every code point: the fold changes exactly
 * HANS_COUNT of them, never to a code point it would change again, and the
 * bitmap, ranks and deltas agree. */
static void test_fold_hans_table(void **state)
{
    size_t changed = 0, bits = 0;
    for (uint32_t cp = 0; cp <= 0x10FFFF; cp++) {
        uint32_t s = text_fold_hans(cp);
        if (s == cp)
            continue;
        changed++;
        if (text_fold_hans(s) != s)
            fail_msg("h2.1: U+%04X → U+%04X → U+%04X is not idempotent", (unsigned)cp, (unsigned)s,
                     (unsigned)text_fold_hans(s));
    }
    assert_int_equal(changed, HANS_COUNT);
    for (size_t w = 0; w < sizeof hans_bits / sizeof *hans_bits; w++) {
        assert_int_equal(hans_rank[w], bits);
        for (uint64_t x = hans_bits[w]; x; x &= x - 1)
            bits++;
    }
    assert_int_equal(bits, sizeof hans_delta / sizeof *hans_delta);
    assert_true(HANS_NPAIRS == 0 || hans_pairs[HANS_NPAIRS - 1].trad < hans_pairs[HANS_NPAIRS].trad);
}

static void test_is_cjk(void **state)
{
    static const struct {
        const char *id;
        uint32_t cp;
        int cjk, run;
    } cases[] = {
        {"c1.1 一", 0x4E00, 1, 1},     {"c1.2 鿿", 0x9FFF, 1, 1},         {"c1.3 ext-a", 0x3400, 1, 1},
        {"c1.4 ext-b", 0x20000, 1, 1}, {"c1.5 compat", 0xF900, 1, 1},      {"c1.6 ascii", 'a', 0, 0},
        {"c1.7 。", 0x3002, 0, 0},     {"c1.8 hiragana あ", 0x3042, 0, 1}, {"c1.9 katakana ア", 0x30A2, 0, 1},
        {"c1.10 ・", 0x30FB, 0, 0},    {"c1.11 hangul 가", 0xAC00, 0, 1},  {"c1.12 〇", 0x3007, 0, 1},
        {"c1.13 é", 0xE9, 0, 0},       {"c1.14 emoji", 0x1F600, 0, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        int cjk = text_is_cjk(cases[i].cp), run = text_is_cjk_run(cases[i].cp);
        if (cjk != cases[i].cjk || run != cases[i].run)
            fail_msg("%s: got cjk %d run %d, want %d %d", cases[i].id, cjk, run, cases[i].cjk, cases[i].run);
    }
}

/* ---- tokens ----------------------------------------------------------- */

/* Renders tokens as "W0:where B6:退货 U6:退": kind (Word, Bigram, Unigram),
 * byte offset, text. */
static void render(const char *s, const struct text_toks *t, char *out, size_t cap)
{
    size_t n = 0;
    out[0] = 0;
    for (size_t i = 0; i < t->n; i++) {
        const struct text_tok *k = &t->v[i];
        char kind = k->kind == TEXT_TOK_WORD ? 'W' : k->kind == TEXT_TOK_CJK2 ? 'B' : 'U';
        int w = snprintf(out + n, cap - n, "%s%c%u:%.*s", i ? " " : "", kind, (unsigned)k->off, (int)k->len,
                         s + k->off);
        assert_true(w > 0 && (size_t)w < cap - n);
        n += (size_t)w;
    }
}

static const struct tok_case {
    const char *id, *text;
    unsigned flags;
    const char *want;
} tok_cases[] = {
    {"t1.1 english", "where is my refund", 0, "W0:where W6:is W9:my W12:refund"},
    {"t1.2 punctuation separates", "hello,world!foo-bar", 0, "W0:hello W6:world W12:foo W16:bar"},
    {"t1.3 apostrophe inside", "customer's order 'quoted' it'", 0,
     "W0:customer's W11:order W18:quoted W26:it"},
    {"t1.4 other scripts in words", "café привет naïve", 0, "W0:café W6:привет W19:naïve"},
    {"t1.5 digits", "AB12345678 3.5", 0, "W0:AB12345678 W11:3 W13:5"},
    {"t1.6 empty", "", U, ""},
    {"t1.7 only punctuation", "!!! ... ?", U, ""},
    {"t2.1 bigrams", "我要退款", 0, "B0:我要 B3:要退 B6:退款"},
    {"t2.2 bigrams and unigrams", "我要退款", U, "U0:我 B0:我要 U3:要 B3:要退 U6:退 B6:退款 U9:款"},
    {"t2.3 one character", "好", 0, "U0:好"},
    {"t2.4 one character, unigrams", "好", U, "U0:好"},
    {"t2.5 two runs", "退款 好", 0, "B0:退款 U7:好"},
    {"t2.6 punctuation splits runs", "退款,到账", 0, "B0:退款 B7:到账"},
    {"t2.7 emoji splits runs", "退款😀好", 0, "B0:退款 U10:好"},
    {"t3.1 mixed", "iphone15退货了吗?", 0, "W0:iphone15 B8:退货 B11:货了 B14:了吗"},
    {"t3.2 word inside a run", "我的订单AB12到了", 0, "B0:我的 B3:的订 B6:订单 W12:AB12 B16:到了"},
    {"t3.3 mixed unigrams", "pro版", U, "W0:pro U3:版"},
    {"t4.1 kana", "ありがとう", 0, "B0:あり B3:りが B6:がと B9:とう"},
    {"t4.2 hangul", "감사", 0, "B0:감사"},
    {"t4.3 katakana middle dot", "ア・イ", 0, "U0:ア U6:イ"},
};

static void test_tokenize(void **state)
{
    char got[512];
    struct text_toks t;
    text_toks_init(&t);
    for (size_t i = 0; i < sizeof tok_cases / sizeof *tok_cases; i++) {
        const struct tok_case *c = &tok_cases[i];
        int rc = text_tokenize(c->text, strlen(c->text), c->flags, &t);
        if (rc != 0)
            fail_msg("%s: text_tokenize returned %d", c->id, rc);
        render(c->text, &t, got, sizeof got);
        expect_str(c->id, got, strlen(got), c->want);
    }
    text_toks_release(&t);
}

/* Exact offsets and kinds, independent of the renderer. */
static void test_tokenize_offsets(void **state)
{
    static const char s[] = "where is my refund";
    static const struct text_tok want[] = {
        {0, 5, TEXT_TOK_WORD}, {6, 2, TEXT_TOK_WORD}, {9, 2, TEXT_TOK_WORD}, {12, 6, TEXT_TOK_WORD}};
    struct text_toks t;
    text_toks_init(&t);
    assert_int_equal(text_tokenize(BYTES(s), 0, &t), 0);
    assert_int_equal(t.n, 4);
    for (size_t i = 0; i < 4; i++) {
        if (t.v[i].off != want[i].off || t.v[i].len != want[i].len || t.v[i].kind != want[i].kind)
            fail_msg("o1.%zu: got %u+%u kind %u, want %u+%u kind %u", i + 1, (unsigned)t.v[i].off,
                     (unsigned)t.v[i].len, t.v[i].kind, (unsigned)want[i].off, (unsigned)want[i].len,
                     want[i].kind);
    }
    text_toks_release(&t);
}

/* TEXT_TOK_WORDS keeps exactly the words, at the same offsets. */
static void test_tokenize_words_only(void **state)
{
    (void)state;
    static const char s[] = "iphone15退货了吗? my 订单 status";
    struct text_toks all, words;
    text_toks_init(&all);
    text_toks_init(&words);
    assert_int_equal(text_tokenize(BYTES(s), 0, &all), 0);
    assert_int_equal(text_tokenize(BYTES(s), TEXT_TOK_WORDS, &words), 0);
    size_t n = 0;
    for (size_t i = 0; i < all.n; i++) {
        if (all.v[i].kind != TEXT_TOK_WORD)
            continue;
        assert_true(n < words.n);
        assert_int_equal(words.v[n].off, all.v[i].off);
        assert_int_equal(words.v[n].len, all.v[i].len);
        n++;
    }
    assert_int_equal(n, 3); /* iphone15, my, status */
    assert_int_equal(words.n, n);
    text_toks_release(&all);
    text_toks_release(&words);
}

static void test_tokenize_memory(void **state)
{
    char long_text[2048];
    struct text_toks t;
    text_toks_init(&t);
    for (size_t i = 0; i + 3 <= sizeof long_text - 1; i += 3)
        memcpy(long_text + i, "退", 3);
    size_t n = (sizeof long_text - 1) / 3 * 3;

    kefu_alloc_fail_after(1);
    int rc = text_tokenize(long_text, n, U, &t);
    kefu_alloc_fail_after(0);
    assert_int_equal(rc, KEFU_ENOMEM);
    assert_int_equal(t.n, 0);

    /* fails on a later growth too, and leaves nothing half-built */
    kefu_alloc_fail_after(3);
    rc = text_tokenize(long_text, n, U, &t);
    kefu_alloc_fail_after(0);
    assert_int_equal(rc, KEFU_ENOMEM);
    assert_int_equal(t.n, 0);

    assert_int_equal(text_tokenize(long_text, n, U, &t), 0);
    assert_int_equal(t.n, 2 * (n / 3) - 1);
    struct text_tok *v = t.v;
    kefu_alloc_fail_after(1); /* warm: no allocation */
    assert_int_equal(text_tokenize(long_text, n, U, &t), 0);
    kefu_alloc_fail_after(0);
    assert_ptr_equal(t.v, v);
    text_toks_release(&t);
    text_toks_release(&t);
}

/* ---- stemmer ---------------------------------------------------------- */

static const struct stem_case {
    const char *id, *word, *want;
} stem_cases[] = {
    {"s1.1", "refund", "refund"},
    {"s1.2", "refunds", "refund"},
    {"s1.3", "refunded", "refund"},
    {"s1.4", "refunding", "refund"},
    {"s2.1", "deliver", "deliver"},
    {"s2.2", "delivery", "deliver"},
    {"s2.3", "deliveries", "deliver"},
    {"s2.4", "delivered", "deliver"},
    {"s2.5", "delivering", "deliver"},
    {"s3.1", "boxes", "box"},
    {"s3.2", "addresses", "address"},
    {"s3.3", "address", "address"},
    {"s3.4", "status", "status"},
    {"s3.5", "this", "this"},
    {"s4.1", "charge", "charg"},
    {"s4.2", "charges", "charg"},
    {"s4.3", "charged", "charg"},
    {"s4.4", "charging", "charg"},
    {"s5.1", "shipped", "ship"},
    {"s5.2", "shipping", "ship"},
    {"s5.3", "ship", "ship"},
    {"s5.4", "stopped", "stop"},
    {"s5.5", "passed", "pass"},
    {"s5.6", "added", "add"},
    {"s6.1", "is", "is"},
    {"s6.2", "has", "has"},
    {"s6.3", "pay", "pay"},
    {"s6.4", "us", "us"},
    {"s6.5", "a", "a"},
    {"s6.6", "", ""},
    {"s7.1", "tracking", "track"},
    {"s7.2", "orders", "order"},
    {"s7.3", "ordered", "order"},
    {"s7.4", "need", "need"},
    {"s7.5", "needs", "need"},
    {"s7.6", "speed", "speed"},
    {"s8.1", "cancel", "cancel"},
    {"s8.2", "cancelled", "cancel"},
    {"s8.3", "canceled", "cancel"},
    {"s8.4", "cancelling", "cancel"},
    {"s8.5", "cancels", "cancel"},
    {"s8.6", "bill", "bill"},
    {"s8.7", "billed", "bill"},
    {"s8.8", "call", "call"},
    {"s8.9", "full", "full"},
    {"s8.10", "all", "all"},
    {"s8.11", "install", "instal"},
    {"s8.12", "installed", "instal"},
    {"s9.1", "customer's", "customer"},
    {"s9.2", "customers'", "customer"},
    {"s9.3", "don't", "don't"},
    {"s9.4", "iphone15", "iphone15"},
    {"s9.5", "caf\xC3\xA9s", "caf\xC3\xA9s"},
    {"s10.1", "used", "use"},
    {"s10.2", "use", "use"},
    {"s10.3", "tries", "try"},
    {"s10.4", "tried", "try"},
    {"s10.5", "try", "try"},
    {"s10.6", "carried", "carr"},
    {"s10.7", "carry", "carr"},
    {"s10.8", "making", "mak"},
    {"s10.9", "make", "mak"},
    {"s10.10", "thing", "thing"},
    {"s10.11", "string", "string"},
    {"s10.12", "free", "free"},
    {"s10.13", "shed", "shed"},
    {"s10.14", "replies", "repl"},
    {"s10.15", "reply", "repl"},
};

/* 6.x — the locale guess shared by the command line, the kb and the dialog. */
static void test_guess_locale(void **state)
{
    size_t letters = 99;
    assert_string_equal(text_guess_locale("hello", 5, &letters), "en");
    assert_int_equal(letters, 5);
    assert_string_equal(text_guess_locale("退款", 6, NULL), "zh");
    assert_string_equal(text_guess_locale("退款什麼時候到賬", strlen("退款什麼時候到賬"), NULL), "zh-hant");
    assert_string_equal(text_guess_locale("my refund 退款 please", strlen("my refund 退款 please"), &letters),
                        "zh");
    assert_int_equal(letters, 14);
    assert_string_equal(text_guess_locale("\xff", 1, &letters), "en");
    assert_int_equal(letters, 0);
    assert_string_equal(text_guess_locale("退\0款", 7, NULL), "en"); /* a NUL is not text */
}

static void test_stem(void **state)
{
    char out[64];
    for (size_t i = 0; i < sizeof stem_cases / sizeof *stem_cases; i++) {
        const struct stem_case *c = &stem_cases[i];
        size_t len = strlen(c->word);
        memset(out, '#', sizeof out);
        size_t n = text_stem(c->word, len, out);
        assert_true(n <= len);
        expect_str(c->id, out, n, c->want);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_utf8_valid),
        cmocka_unit_test(test_utf8_next),
        cmocka_unit_test(test_normalize),
        cmocka_unit_test(test_normalize_invalid),
        cmocka_unit_test(test_normalize_warm),
        cmocka_unit_test(test_normalize_enomem),
        cmocka_unit_test(test_normalize_adversarial),
        cmocka_unit_test(test_fold_hans),
        cmocka_unit_test(test_fold_hans_table),
        cmocka_unit_test(test_is_cjk),
        cmocka_unit_test(test_tokenize),
        cmocka_unit_test(test_tokenize_offsets),
        cmocka_unit_test(test_tokenize_words_only),
        cmocka_unit_test(test_tokenize_memory),
        cmocka_unit_test(test_guess_locale),
        cmocka_unit_test(test_stem),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
