/* test_kb.c — the knowledge base: the tokenizer and its source offsets,
 * safe queries, retrieval in Chinese (simplified and traditional) and
 * English, snippets, incremental import, article errors with positions,
 * and example-based intent matching. The fixture corpus is tests/corpus/;
 * every database lives in a temporary directory or in memory. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "../engine/kb_int.h"
#include "kb.h"
#include "kefu.h"
#include "rules.h"
#include "text.h"

#define FIXTURE "tests/corpus"

static double now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1e3 + (double)t.tv_nsec / 1e6;
}

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

/* A kb in memory holding dir's articles, every file imported without a finding. */
static struct kb *import_clean(const char *dir)
{
    struct kb *kb;
    assert_int_equal(kb_open(":memory:", 0, &kb), 0);
    struct rules_diag d;
    rules_diag_init(&d);
    assert_int_equal(kb_import(kb, dir, &d, NULL, NULL, NULL), 0);
    assert_int_equal(d.n, 0);
    rules_diag_release(&d);
    return kb;
}

static void run(const char *cmd)
{
    if (system(cmd) != 0)
        fail_msg("command failed: %s", cmd);
}

/* A fresh temporary directory; the caller removes it with rm_tree(). */
static char *temp_dir(void)
{
    char *d = strdup("/tmp/kefu-kb-XXXXXX");
    assert_non_null(mkdtemp(d));
    return d;
}

static void rm_tree(char *d)
{
    char cmd[256];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", d);
    run(cmd);
    free(d);
}

/* ---- tokenizer -------------------------------------------------------- */

struct tok_log {
    const char *src;
    size_t n, colocated;
    char text[64][32];
    size_t start[64], end[64];
    int coloc[64];
};

static int log_tok(void *ctx, int colocated, const char *tok, size_t n, size_t start, size_t end)
{
    struct tok_log *l = ctx;
    if (l->n < 64) {
        snprintf(l->text[l->n], sizeof l->text[0], "%.*s", (int)n, tok);
        l->start[l->n] = start;
        l->end[l->n] = end;
        l->coloc[l->n] = colocated;
        l->n++;
    }
    l->colocated += colocated != 0;
    return 0;
}

/* Every token must be what the pipeline makes of the source bytes it points at. */
static void check_offsets(struct kb_tok_buf *b, const char *src)
{
    struct tok_log l;
    memset(&l, 0, sizeof l);
    assert_int_equal(kb_tok_each(b, src, strlen(src), KB_TOK_DOC, log_tok, &l), 0);
    struct text_buf whole, part;
    text_buf_init(&whole);
    text_buf_init(&part);
    if (text_utf8_valid(src, strlen(src))) { /* the mapped normalization is text_normalize() */
        assert_int_equal(text_normalize(src, strlen(src), TEXT_FOLD, &whole), 0);
        assert_string_equal(b->norm.s, whole.s);
    }
    for (size_t k = 0; k < l.n; k++) {
        assert_true(l.start[k] < l.end[k] && l.end[k] <= strlen(src));
        assert_int_equal(text_normalize(src + l.start[k], l.end[k] - l.start[k], TEXT_FOLD, &part), 0);
        char stem[128];
        size_t n = part.len;
        memcpy(stem, part.s, n);
        size_t i0 = 0;
        if (!text_is_cjk_run(text_utf8_next(part.s, &i0))) /* a word: stemmed */
            n = text_stem(part.s, part.len, stem);
        stem[n] = 0;
        if (strcmp(stem, l.text[k]) != 0)
            fail_msg("'%s': token %zu '%s' points at '%.*s' (%s)", src, k, l.text[k],
                     (int)(l.end[k] - l.start[k]), src + l.start[k], stem);
    }
    text_buf_release(&whole);
    text_buf_release(&part);
}

static void test_tok_offsets(void **state)
{
    static const char *const texts[] = {
        "退款什麼時候到賬",
        "ＲＥＦＵＮＤ　ｓｔａｔｕｓ：退貨",
        "Refunds\u200bshipped 退\u200b款 don't",
        "訂單KF12345678現在什麼狀態？",
        "emoji 😀 between 退款😀到账",
        "  leading\tand\ntrailing…  ",
        "Café Straße ПРИВЕТ",
        "𠮷野家 and 々 〇",
        "a",
        "",
        "\xff\xfe broken \xe9\x80 bytes 退款",
    };
    struct kb_tok_buf b;
    kb_tok_buf_init(&b);
    for (size_t k = 0; k < sizeof texts / sizeof texts[0]; k++)
        check_offsets(&b, texts[k]);
    kb_tok_buf_release(&b);
}

/* Awkward pieces of text for random inputs (the last three are invalid UTF-8). */
static const char *const pieces[] = {
    "a",      "Refund", "ED",     "'s",           "'",  " ",  "\t",   "\n",       "-",
    "\"",     "*",      ":",      "退",           "款", "貨", "運",   "費",       "什",
    "麼",     "ＡＢ",   "ｃ",     "１２",         "　", "，", "。",   "「",       "」",
    "\u200b", "\u200d", "\ufeff", "\u00ad",       "é",  "Ä",  "ß",    "П",        "😀",
    "\u0301", "𠮷",     "々",     "\xe2\x80\xa6", "カ", "한", "\xff", "\xe9\x80", "\xc0\xaf",
};

/* Fills text with a random mix of pieces (valid UTF-8 unless invalid is set). */
static size_t random_text(char *text, size_t cap, int invalid)
{
    size_t n = 0, np = sizeof pieces / sizeof pieces[0] - (invalid ? 0 : 3);
    int parts = 1 + rand() % 24;
    for (int k = 0; k < parts; k++) {
        const char *p = pieces[rand() % (int)np];
        if (n + strlen(p) + 1 > cap)
            break;
        memcpy(text + n, p, strlen(p));
        n += strlen(p);
    }
    text[n] = 0;
    return n;
}

/* Random texts from awkward pieces: every token still points at its source. */
static void test_tok_offsets_random(void **state)
{
    struct kb_tok_buf b;
    kb_tok_buf_init(&b);
    srand(7);
    char text[256];
    for (int round = 0; round < 3000; round++) {
        random_text(text, sizeof text, 1);
        check_offsets(&b, text);
    }
    kb_tok_buf_release(&b);
}

static void test_tok_positions(void **state)
{
    struct kb_tok_buf b;
    kb_tok_buf_init(&b);
    struct tok_log l;
    memset(&l, 0, sizeof l);
    assert_int_equal(kb_tok_each(&b, "退款到賬 refunds", strlen("退款到賬 refunds"), KB_TOK_DOC, log_tok, &l),
                     0);
    /* 退, 退款 (same position), 款, 款到, 到, 到账, 账, refund */
    static const char *const want[] = {"退", "退款", "款", "款到", "到", "到账", "账", "refund"};
    static const int coloc[] = {0, 1, 0, 1, 0, 1, 0, 0};
    assert_int_equal(l.n, 8);
    for (size_t k = 0; k < 8; k++) {
        assert_string_equal(l.text[k], want[k]);
        assert_int_equal(l.coloc[k], coloc[k]);
    }
    assert_int_equal(l.start[6], 9); /* 賬 is bytes 9..12 of the source */
    assert_int_equal(l.end[6], 12);
    /* query form: bigrams, no unigrams for a longer run, a lone character kept */
    memset(&l, 0, sizeof l);
    assert_int_equal(
        kb_tok_each(&b, "退款到 和 Shipping", strlen("退款到 和 Shipping"), KB_TOK_TERMS, log_tok, &l), 0);
    assert_int_equal(l.n, 4);
    assert_string_equal(l.text[0], "退款");
    assert_string_equal(l.text[1], "款到");
    assert_string_equal(l.text[2], "和");
    assert_string_equal(l.text[3], "ship");
    kb_tok_buf_release(&b);
}

/* ---- queries ---------------------------------------------------------- */

static const char *const hostile[] = {
    "\"",
    "\"\"",
    "\"refund",
    "refund\"",
    "'",
    "a\"b\"c",
    "AND",
    "OR",
    "NOT",
    "NEAR",
    "NEAR(refund invoice, 2)",
    "refund AND",
    "OR refund",
    "NOT NOT NOT",
    "refund NOT invoice",
    "*",
    "refund*",
    "*refund",
    "^refund",
    "title:refund",
    "questions : refund",
    "body:",
    "{title body}: refund",
    "{",
    "}",
    "(",
    ")",
    "((((",
    "))))",
    "(refund OR invoice",
    "-refund",
    "refund-policy",
    "--",
    "+",
    "\\",
    "\\\"",
    "\\x00",
    "a\\b",
    ":",
    "::::",
    "%",
    "_",
    "'; DROP TABLE articles; --",
    "\"); DELETE FROM articles_fts; --",
    "退款\"",
    "\"退款",
    "退款 AND 发票",
    "退款 NOT",
    "退*",
    "退款:",
    "😀",
    "😀😀😀 refund 😀",
    "\u200b",
    "\u200b\u200b退款",
    "ＡＮＤ ＯＲ ＮＯＴ",
    "＂退款＂",
    "（退款）",
    "rank",
    "bm25",
    "rowid",
    "articles_fts",
    "match",
    "MATCH '*'",
    "NEAR/3",
    "x NEAR/3 y",
    "a + b",
    "a+b",
    "@",
    "#",
    "$",
    "&",
    "|",
    "~",
    "`",
    "<>",
    "\t\n\r",
    " ",
    "",
};

static void test_query_build(void **state)
{
    struct kb_tok_buf b;
    struct kb_query q;
    kb_tok_buf_init(&b);
    kb_query_init(&q);
    assert_int_equal(kb_query_build(&b, "Refund AND \"refunds\" 退款 退款",
                                    strlen("Refund AND \"refunds\" 退款 退款"), &q),
                     0);
    assert_int_equal(q.n, 3); /* refund, and, 退款: distinct terms */
    assert_string_equal(q.match.s, "\"refund\" OR \"and\" OR \"退款\"");
    /* particle bigrams stay out, unless they are all the text has */
    assert_int_equal(kb_query_build(&b, "优惠券怎么用呢", strlen("优惠券怎么用呢"), &q), 0);
    assert_string_equal(q.match.s, "\"优惠\" OR \"惠券\" OR \"券怎\""); /* not 怎么, 么用, 用呢 */
    assert_int_equal(kb_query_build(&b, "在吗", strlen("在吗"), &q), 0);
    assert_string_equal(q.match.s, "\"在吗\"");
    assert_int_equal(kb_query_build(&b, "bad \xff", 5, &q), KEFU_EUTF8);
    char big[4097];
    for (size_t k = 0; k < 4096; k++)
        big[k] = "abcdefghij klmnopqrstuvwxyz"[(k * 7 + k / 27) % 27];
    big[4096] = 0;
    assert_int_equal(kb_query_build(&b, big, 4096, &q), 0);
    assert_true(q.n <= KB_MAX_TERMS);
    for (size_t k = 0; k < sizeof hostile / sizeof hostile[0]; k++) {
        assert_int_equal(kb_query_build(&b, hostile[k], strlen(hostile[k]), &q), 0);
        for (size_t t = 0; t < q.n; t++) /* terms are words or CJK only */
            assert_null(memchr(q.text.s + q.off[t], '"', q.len[t]));
    }
    kb_query_release(&q);
    kb_tok_buf_release(&b);
}

/* ---- search ----------------------------------------------------------- */

struct kb_fixture {
    char *dir;
    struct kb *kb;
};

static int kb_setup(void **state)
{
    struct kb_fixture *f = calloc(1, sizeof *f);
    f->dir = temp_dir();
    char path[512];
    snprintf(path, sizeof path, "%s/kb.db", f->dir);
    if (kb_open(path, 0, &f->kb) != 0)
        return -1;
    struct rules_diag d;
    rules_diag_init(&d);
    struct kb_import_stats s;
    int rc = kb_import(f->kb, FIXTURE, &d, NULL, NULL, &s);
    rules_diag_print(stderr, &d);
    rules_diag_release(&d);
    if (rc != 0 || s.failed || s.added != 9)
        return -1;
    *state = f;
    return 0;
}

static int kb_teardown(void **state)
{
    struct kb_fixture *f = *state;
    kb_close(f->kb);
    rm_tree(f->dir);
    free(f);
    return 0;
}

/* Lines joined with single spaces, as a snippet is. */
static void one_line(const char *src, char *out, size_t cap)
{
    size_t o = 0;
    for (const char *p = src; *p && o + 1 < cap; p++) {
        char c = *p == '\n' || *p == '\r' ? ' ' : *p;
        if (c == ' ' && o > 0 && out[o - 1] == ' ')
            continue;
        out[o++] = c;
    }
    out[o] = 0;
}

/* A snippet is short, and every piece of it between "..." is the article's own text. */
static void check_snippet(struct kb *kb, const struct kb_hit *h, const char *query)
{
    sqlite3_stmt *st;
    assert_int_equal(sqlite3_prepare_v2(kb_db(kb), "SELECT text FROM articles WHERE id = ?1 AND locale = ?2",
                                        -1, &st, NULL),
                     SQLITE_OK);
    sqlite3_bind_text(st, 1, h->id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, h->locale, -1, SQLITE_STATIC);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    static char text[1 << 16], piece[1024];
    one_line((const char *)sqlite3_column_text(st, 0), text, sizeof text);
    sqlite3_finalize(st);
    if (strlen(h->snippet) > 300)
        fail_msg("'%s': snippet of %s is %zu bytes: %s", query, h->id, strlen(h->snippet), h->snippet);
    for (const char *p = h->snippet; *p;) {
        const char *e = strstr(p, "...");
        size_t n = e ? (size_t)(e - p) : strlen(p);
        snprintf(piece, sizeof piece, "%.*s", (int)n, p);
        if (n && !strstr(text, piece))
            fail_msg("'%s': snippet piece '%s' is not in %s (%s)", query, piece, h->id, h->locale);
        p += n + (e ? 3 : 0);
    }
}

static const struct search_case {
    const char *id, *text, *locale, *want, *want_locale;
} search_cases[] = {
    {"1.1", "when will I get my refund", "en", "refund-policy", "en"},
    {"1.2", "How long do refunds take?", "en", "refund-policy", "en"},
    {"1.3", "I forgot my password", "en", "password-reset", "en"},
    {"1.4", "can't log in, need to reset password", "en", "password-reset", "en"},
    {"1.5", "company name wrong on the invoice", "en", "invoice", "en"},
    {"1.6", "how long does delivery take", "en", "shipping-times", "en"},
    {"1.7", "ＲＥＦＵＮＤ", "en", "refund-policy", "en"},
    {"2.1", "退款什么时候到账", "zh", "refund-policy", "zh"},
    {"2.2", "忘记密码了", "zh", "password-reset", "zh"},
    {"2.3", "发票抬头写错了", "zh", "invoice", "zh"},
    {"2.4", "快递多久能到", "zh", "shipping-times", "zh"},
    {"2.5", "运费多少", "zh", "shipping-times", "zh"},
    {"3.1", "退款什麼時候到賬", "zh-hant", "refund-policy", "zh"},
    {"3.2", "忘記密碼", "zh-hant", "password-reset", "zh"},
    {"3.3", "發票抬頭寫錯了", "zh-hant", "invoice", "zh"},
    {"3.4", "礼品卡怎么用", "zh", "gift-card", "zh-hant"}, /* a traditional article for a simplified query */
    {"4.1", "invoice 发票 怎么开", "zh", "invoice", "zh"},
    {"4.2", "my refund 退款", "en", "refund-policy", "en"},
    {"4.3", "refund", NULL, "refund-policy", NULL},
    {"5.1", "退", "zh", "refund-policy", "zh"}, /* one character */
    {"5.2", "票", "zh", "invoice", "zh"},
    {"5.3", "碼", "zh-hant", "password-reset", "zh"},
};

static void test_search_cases(void **state)
{
    struct kb_fixture *f = *state;
    for (size_t k = 0; k < sizeof search_cases / sizeof search_cases[0]; k++) {
        const struct search_case *c = &search_cases[k];
        struct kb_result r;
        assert_int_equal(kb_search(f->kb, c->text, strlen(c->text), c->locale, &r), 0);
        if (r.n == 0)
            fail_msg("case %s '%s': no hit, want %s", c->id, c->text, c->want);
        for (size_t h = 0; h < r.n; h++) /* a search cuts no snippet */
            assert_string_equal(r.hit[h].snippet, "");
        if (strcmp(r.hit[0].id, c->want) != 0 ||
            (c->want_locale && strcmp(r.hit[0].locale, c->want_locale) != 0))
            fail_msg("case %s '%s': want %s (%s), got %s (%s)", c->id, c->text, c->want,
                     c->want_locale ? c->want_locale : "any", r.hit[0].id, r.hit[0].locale);
        assert_int_equal(kb_snippets(f->kb, &r, r.n), 0);
        for (size_t h = 0; h < r.n; h++)
            check_snippet(f->kb, &r.hit[h], c->text);
        for (size_t h = 1; h < r.n; h++) {
            assert_true(r.hit[h - 1].score >= r.hit[h].score);
            assert_true(strcmp(r.hit[h].id, r.hit[0].id) != 0); /* one hit per article */
        }
        assert_true(r.confidence > 0 && r.confidence <= 1);
        assert_true(r.n_terms > 0);
    }
}

/* The score of every hit is FTS5's own bm25() for the MATCH that ran (same
 * weights), though kefu_rank() takes its IDFs from kb_terms. */
static void check_bm25(struct kb *kb, const struct kb_result *r, const char *what)
{
    sqlite3_stmt *doc, *bm;
    assert_int_equal(sqlite3_prepare_v2(kb_db(kb), "SELECT doc FROM articles WHERE id = ?1 AND locale = ?2",
                                        -1, &doc, NULL),
                     SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(kb_db(kb),
                                        "SELECT -bm25(articles_fts, 4.0, 2.0, 3.0, 1.0) FROM articles_fts "
                                        "WHERE articles_fts MATCH ?1 AND rowid = ?2",
                                        -1, &bm, NULL),
                     SQLITE_OK);
    for (size_t h = 0; h < r->n; h++) {
        sqlite3_bind_text(doc, 1, r->hit[h].id, -1, SQLITE_STATIC);
        sqlite3_bind_text(doc, 2, r->hit[h].locale, -1, SQLITE_STATIC);
        assert_int_equal(sqlite3_step(doc), SQLITE_ROW);
        sqlite3_bind_text(bm, 1, kb_last_query(kb), -1, SQLITE_STATIC);
        sqlite3_bind_int64(bm, 2, sqlite3_column_int64(doc, 0));
        assert_int_equal(sqlite3_step(bm), SQLITE_ROW);
        double want = sqlite3_column_double(bm, 0);
        if (fabs(want - r->hit[h].score) > 1e-9 * (1 + fabs(want)))
            fail_msg("'%s' hit %zu (%s): score %.12f, bm25() %.12f", what, h, r->hit[h].id, r->hit[h].score,
                     want);
        sqlite3_reset(doc);
        sqlite3_reset(bm);
    }
    sqlite3_finalize(doc);
    sqlite3_finalize(bm);
}

static void test_rank_is_bm25(void **state)
{
    struct kb_fixture *f = *state;
    for (size_t k = 0; k < sizeof search_cases / sizeof search_cases[0]; k++) {
        struct kb_result r; /* no locale: every article's score counts fully */
        assert_int_equal(kb_search(f->kb, search_cases[k].text, strlen(search_cases[k].text), NULL, &r), 0);
        assert_true(r.n > 0);
        check_bm25(f->kb, &r, search_cases[k].text);
    }
}

/* The exact best scores of MATCH m, best first, by FTS5's own bm25(). */
static size_t exact_scores(struct kb *kb, const char *m, double *s, size_t cap)
{
    sqlite3_stmt *st;
    assert_int_equal(
        sqlite3_prepare_v2(kb_db(kb),
                           "SELECT -bm25(articles_fts, 4.0, 2.0, 3.0, 1.0) AS s FROM articles_fts "
                           "WHERE articles_fts MATCH ?1 ORDER BY s DESC LIMIT ?2",
                           -1, &st, NULL),
        SQLITE_OK);
    sqlite3_bind_text(st, 1, m, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int(st, 2, (int)cap);
    size_t n = 0;
    while (n < cap && sqlite3_step(st) == SQLITE_ROW)
        s[n++] = sqlite3_column_double(st, 0);
    sqlite3_finalize(st);
    return n;
}

/* A corpus where every word of the questions is in more than KB_ROW_BUDGET
 * articles: "alpha" and "beta" in 1,050 of 2,100 each, 550 together, with
 * counts varying by article. A search must not rank their whole posting
 * lists; it ranks their champion lists (kb_champs), which is exact for one
 * term and, here, finds the best-scoring article for both together. */
static void test_common_terms(void **state)
{
    char *dir = temp_dir();
    char path[512], text[512];
    for (int k = 0; k < 2100; k++) {
        int o = snprintf(text, sizeof text, "id: a%04d\nlocale: en\ntitle: Note %d\n\nSee", k, k);
        for (int r = 0; k < 1050 && r <= k % 7; r++)
            o += snprintf(text + o, sizeof text - (size_t)o, " alpha");
        for (int r = 0; k >= 500 && k < 1550 && r <= k % 11; r++)
            o += snprintf(text + o, sizeof text - (size_t)o, " beta");
        snprintf(text + o, sizeof text - (size_t)o, " and more%d.\n", k % 13);
        snprintf(path, sizeof path, "%s/a%04d.md", dir, k);
        write_file(path, text);
    }
    struct kb *kb = import_clean(dir);
    sqlite3_stmt *st;
    assert_int_equal(
        sqlite3_prepare_v2(kb_db(kb), "SELECT count(*) FROM kb_champs WHERE term = ?1", -1, &st, NULL),
        SQLITE_OK);
    sqlite3_bind_text(st, 1, "beta", -1, SQLITE_STATIC);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    assert_int_equal(sqlite3_column_int(st, 0), KB_CHAMPIONS); /* a common term has its champions */
    sqlite3_reset(st);
    sqlite3_bind_text(st, 1, "more1", -1, SQLITE_STATIC); /* in 162 articles: not common */
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    assert_int_equal(sqlite3_column_int(st, 0), 0);
    sqlite3_finalize(st);
    static const char *const questions[] = {"alpha", "alpha beta", "beta, and alpha?"};
    for (size_t q = 0; q < sizeof questions / sizeof questions[0]; q++) {
        struct kb_result r;
        assert_int_equal(kb_search(kb, questions[q], strlen(questions[q]), "en", &r), 0);
        assert_int_equal(r.n, KB_MAX_HITS);
        check_bm25(kb, &r, questions[q]); /* every hit matches the MATCH, with bm25()'s score */
        double best[KB_MAX_HITS];
        size_t n = exact_scores(kb, kb_last_query(kb), best, KB_MAX_HITS);
        assert_int_equal(n, KB_MAX_HITS);
        if (fabs(r.hit[0].score - best[0]) > 1e-9)
            fail_msg("'%s' (%s): first hit %.9f, best %.9f", questions[q], kb_last_query(kb), r.hit[0].score,
                     best[0]);
        for (size_t h = 0; q == 0 && h < r.n; h++) /* one term: the champions are its best rows */
            assert_true(fabs(r.hit[h].score - best[h]) <= 1e-9);
        assert_true(r.confidence >= 0 && r.confidence <= 1);
    }
    assert_non_null(strstr(kb_last_query(kb), " AND "));
    kb_close(kb);
    rm_tree(dir);
}

static void test_search_confidence(void **state)
{
    struct kb_fixture *f = *state;
    struct kb_result in, out, empty;
    const char *q1 = "how long does a refund take, when will I get my money back";
    const char *q2 = "what is the weather like in the mountains tomorrow";
    assert_int_equal(kb_search(f->kb, q1, strlen(q1), "en", &in), 0);
    assert_string_equal(in.hit[0].id, "refund-policy");
    /* the snippet is plain text around the match */
    assert_int_equal(kb_snippets(f->kb, &in, 1), 0);
    assert_true(in.n > 1);
    assert_string_equal(in.hit[1].snippet, ""); /* only the hits asked for */
    assert_non_null(strstr(in.hit[0].snippet, "refund"));
    assert_null(strstr(in.hit[0].snippet, "**"));
    assert_null(strchr(in.hit[0].snippet, '\n'));
    assert_int_equal(kb_search(f->kb, q2, strlen(q2), "en", &out), 0);
    if (!(in.confidence > 0.5 && out.confidence < 0.2))
        fail_msg("in-scope %.3f should be > 0.5, out-of-scope %.3f < 0.2", in.confidence, out.confidence);
    assert_int_equal(kb_search(f->kb, "?! ...", 6, "en", &empty), 0);
    assert_int_equal(empty.n_terms, 0);
    assert_int_equal(empty.n, 0);
    assert_true(empty.confidence == 0);
}

/* A result owns its text: a lookup, and another kb's search, between a
 * search and its use leave it whole (a reply's {kb:ID} looks an article up
 * while the decision still holds the hits); snippets need the latest search. */
static void test_result_owns_text(void **state)
{
    struct kb_fixture *f = *state;
    struct kb_result r, copy, later;
    const char *q = "how long does a refund take, when will I get my money back";
    assert_int_equal(kb_search(f->kb, q, strlen(q), "en", &r), 0);
    assert_true(r.n > 1);
    copy = r;
    struct kb_hit h;
    assert_int_equal(kb_get(f->kb, "invoice", "zh", &h), 0);
    char title[KB_TITLE_MAX];
    assert_int_equal(kb_title(f->kb, "shipping-times", "en", title, sizeof title), 0);
    for (size_t k = 0; k < r.n; k++) {
        assert_string_equal(r.hit[k].id, copy.hit[k].id);
        assert_string_equal(r.hit[k].title, copy.hit[k].title);
        assert_string_equal(r.hit[k].locale, copy.hit[k].locale);
    }
    assert_string_equal(r.hit[0].id, "refund-policy");
    assert_int_equal(kb_snippets(f->kb, &copy, 1), 0); /* a copy works as well, after the lookups */
    assert_non_null(strstr(copy.hit[0].snippet, "refund"));
    assert_string_equal(r.hit[0].snippet, ""); /* the original is not touched */
    /* a later search: the old result keeps its hits, but its snippets can no longer be cut */
    assert_int_equal(kb_search(f->kb, "invoice", 7, "en", &later), 0);
    assert_string_equal(r.hit[0].id, "refund-policy");
    assert_int_equal(kb_snippets(f->kb, &r, 1), KEFU_EINVAL);
    assert_string_equal(r.hit[0].snippet, "");
    assert_int_equal(kb_snippets(f->kb, &later, 1), 0);
    /* a result of another connection is refused too */
    struct kb *other;
    char path[512];
    snprintf(path, sizeof path, "%s/kb.db", f->dir);
    assert_int_equal(kb_open(path, 1, &other), 0);
    assert_int_equal(kb_search(other, q, strlen(q), "en", &copy), 0);
    assert_int_equal(kb_snippets(f->kb, &copy, 1), KEFU_EINVAL);
    assert_int_equal(kb_snippets(other, &copy, 1), 0);
    kb_close(other);
}

static void test_search_hostile(void **state)
{
    struct kb_fixture *f = *state;
    struct kb_result r;
    for (size_t k = 0; k < sizeof hostile / sizeof hostile[0]; k++) {
        int rc = kb_search(f->kb, hostile[k], strlen(hostile[k]), "en", &r);
        if (rc != 0)
            fail_msg("'%s': %s (%s)", hostile[k], kefu_strerror(rc), kb_error(f->kb));
        for (size_t h = 0; h < r.n; h++)
            check_snippet(f->kb, &r.hit[h], hostile[k]);
    }
    char big[4097]; /* 4 KiB of every printable ASCII character and some Chinese */
    for (size_t k = 0; k < 4096;) {
        if (k % 97 == 0 && k + 3 <= 4096) {
            memcpy(big + k, "退", 3);
            k += 3;
        } else {
            big[k] = (char)(' ' + (k * 31) % 95);
            k++;
        }
    }
    big[4096] = 0;
    assert_int_equal(kb_search(f->kb, big, strlen(big), NULL, &r), 0);
    assert_true(r.n_terms <= KB_MAX_TERMS);
    srand(11);
    for (int k = 0; k < 300; k++) {
        char t[256];
        size_t n = random_text(t, sizeof t, 0);
        int rc = kb_search(f->kb, t, n, k % 2 ? "zh" : "en", &r);
        if (rc != 0)
            fail_msg("'%s': %s (%s)", t, kefu_strerror(rc), kb_error(f->kb));
        for (size_t h = 0; h < r.n; h++)
            check_snippet(f->kb, &r.hit[h], t);
    }
    assert_int_equal(kb_search(f->kb, "bad \xc3\x28", 6, "en", &r), KEFU_EUTF8);
    assert_int_equal(kb_search(f->kb, "nul\0inside", 10, "en", &r), KEFU_EUTF8);
    /* the tables are intact */
    assert_int_equal(kb_search(f->kb, "refund", 6, "en", &r), 0);
    assert_string_equal(r.hit[0].id, "refund-policy");
}

static void test_get_and_stats(void **state)
{
    struct kb_fixture *f = *state;
    struct kb_hit h;
    assert_int_equal(kb_get(f->kb, "refund-policy", "zh-hant", &h), 0);
    assert_string_equal(h.locale, "zh"); /* same language */
    assert_string_equal(h.title, "退款政策");
    assert_int_equal(kb_get(f->kb, "refund-policy", "en", &h), 0);
    assert_string_equal(h.locale, "en");
    assert_non_null(strstr(h.snippet, "Once we approve your return, the refund"));
    assert_int_equal(kb_get(f->kb, "gift-card", "en", &h), 0);
    assert_string_equal(h.locale, "zh-hant"); /* any */
    assert_int_equal(kb_get(f->kb, "no-such", "en", &h), KEFU_ENOENT);
    char title[64];
    assert_int_equal(kb_title(f->kb, "refund-policy", "zh-hant", title, sizeof title), 0);
    assert_string_equal(title, "退款政策"); /* kb_get()'s choice of row */
    assert_int_equal(kb_title(f->kb, "no-such", "en", title, sizeof title), KEFU_ENOENT);
    struct kb_stats s;
    assert_int_equal(kb_stats(f->kb, &s), 0);
    assert_int_equal(s.articles, 9);
    assert_int_equal(s.locales, 3);
    assert_true(s.terms > 100 && s.bytes > 0);
}

/* Snippets and highlights cut the original text, however normalization
 * changed its length (traditional, full-width, zero-width characters). */
static void test_snippet_offsets(void **state)
{
    char *dir = temp_dir();
    char path[512];
    snprintf(path, sizeof path, "%s/a.md", dir);
    write_file(path, "id: t\nlocale: zh-hant\ntitle: 退貨\n\n"
                     "請先登入ＡＣＣＯＵＮＴ，再到「我的訂單」申請退\u200b貨。退貨運費由我們負擔。Ｒｅｆｕｎ"
                     "ｄｓ ｔａｋｅ 3 days.\n");
    for (int k = 0; k < 2; k++) { /* FTS5's BM25 needs three articles to weigh a word above 1e-6 */
        snprintf(path, sizeof path, "%s/u%d.md", dir, k);
        write_file(path, k ? "id: u1\nlocale: en\ntitle: Unrelated\n\nNothing in common.\n"
                           : "id: u0\nlocale: en\ntitle: Other\n\nNothing either.\n");
    }
    struct kb *kb = import_clean(dir);
    struct kb_result r;
    assert_int_equal(kb_search(kb, "退货运费", 12, "zh", &r), 0);
    assert_int_equal(r.n, 1);
    assert_int_equal(kb_snippets(kb, &r, 8), 0);                     /* n beyond the hits is fine */
    assert_non_null(strstr(r.hit[0].snippet, "退貨運費由我們負擔")); /* the source, not the folded form */
    /* highlight() marks exactly the matched source characters */
    struct kb_tok_buf b;
    struct kb_query q;
    kb_tok_buf_init(&b);
    kb_query_init(&q);
    static const struct {
        const char *query, *want;
    } marks[] = {
        /* a matched bigram is marked by its first character (it shares that position) */
        {"运费", "退貨[運]費由"},
        {"费", "運[費]由"},
        {"account", "登入[ＡＣＣＯＵＮＴ]，"},
        {"refund", "[Ｒｅｆｕｎｄｓ] ｔａｋｅ"},
        {"退货", "申請[退]\u200b貨。[退]貨運"},
        {"订单", "「我的[訂]單」"},
    };
    sqlite3_stmt *st;
    assert_int_equal(sqlite3_prepare_v2(kb_db(kb),
                                        "SELECT highlight(articles_fts, 3, '[', ']') FROM articles_fts "
                                        "WHERE articles_fts MATCH ?1",
                                        -1, &st, NULL),
                     SQLITE_OK);
    for (size_t k = 0; k < sizeof marks / sizeof marks[0]; k++) {
        assert_int_equal(kb_query_build(&b, marks[k].query, strlen(marks[k].query), &q), 0);
        sqlite3_bind_text(st, 1, q.match.s, -1, SQLITE_STATIC);
        assert_int_equal(sqlite3_step(st), SQLITE_ROW);
        const char *hl = (const char *)sqlite3_column_text(st, 0);
        if (!strstr(hl, marks[k].want))
            fail_msg("'%s': want '%s' in '%s'", marks[k].query, marks[k].want, hl);
        sqlite3_reset(st);
    }
    sqlite3_finalize(st);
    kb_query_release(&q);
    kb_tok_buf_release(&b);
    kb_close(kb);
    rm_tree(dir);
}

/* ---- import ----------------------------------------------------------- */

static void import_expect(struct kb *kb, const char *dir, size_t files, size_t added, size_t updated,
                          size_t unchanged, size_t removed, size_t failed)
{
    struct rules_diag d;
    rules_diag_init(&d);
    struct kb_import_stats s;
    size_t calls = 0;
    assert_int_equal(kb_import(kb, dir, &d, NULL, &calls, &s), 0);
    if (s.files != files || s.added != added || s.updated != updated || s.unchanged != unchanged ||
        s.removed != removed || s.failed != failed) {
        rules_diag_print(stderr, &d);
        fail_msg("got %zu files, %zu added, %zu updated, %zu unchanged, %zu removed, %zu failed", s.files,
                 s.added, s.updated, s.unchanged, s.removed, s.failed);
    }
    rules_diag_release(&d);
}

static void count_progress(void *ctx, size_t done, size_t total)
{
    size_t *calls = ctx;
    (*calls)++;
    assert_true(done == *calls && done <= total);
}

static void test_import_incremental(void **state)
{
    char *dir = temp_dir(), cmd[1024], db[512];
    snprintf(cmd, sizeof cmd, "cp -r %s '%s/c'", FIXTURE, dir);
    run(cmd);
    snprintf(db, sizeof db, "%s/kb.db", dir);
    struct kb *kb;
    assert_int_equal(kb_open(db, 0, &kb), 0);
    char c[512];
    snprintf(c, sizeof c, "%s/c", dir);
    size_t calls = 0;
    struct kb_import_stats s;
    struct rules_diag d;
    rules_diag_init(&d);
    assert_int_equal(kb_import(kb, c, &d, count_progress, &calls, &s), 0);
    assert_int_equal(calls, 9);
    rules_diag_release(&d);
    import_expect(kb, c, 9, 0, 0, 9, 0, 0);
    /* touch one (same content), modify one, delete one, add one */
    snprintf(cmd, sizeof cmd,
             "cd '%s' && touch -d '2001-01-01' en/invoice.md && printf '\\nAlso by bank transfer.\\n' >> "
             "en/refund-policy.md "
             "&& rm zh/invoice.md && sed 's/^id: invoice/id: invoice-copy/' en/invoice.md > en/copy.md",
             c);
    run(cmd);
    import_expect(kb, c, 9, 1, 1, 7, 1, 0);
    struct kb_result r;
    assert_int_equal(kb_search(kb, "bank transfer", 13, "en", &r), 0);
    assert_string_equal(r.hit[0].id, "refund-policy");
    assert_int_equal(kb_search(kb, "发票抬头", 12, "zh", &r), 0);
    for (size_t k = 0; k < r.n; k++) /* the deleted article is gone from the index */
        assert_false(strcmp(r.hit[k].id, "invoice") == 0 && strcmp(r.hit[k].locale, "zh") == 0);
    /* a file that stops parsing keeps its old version and counts as failed */
    snprintf(cmd, sizeof cmd, "cd '%s' && sed -i 's/^title:/titel:/' en/copy.md", c);
    run(cmd);
    import_expect(kb, c, 9, 0, 0, 8, 0, 1);
    struct kb_hit h;
    assert_int_equal(kb_get(kb, "invoice-copy", "en", &h), 0);
    /* a reopened database is read as it was left */
    kb_close(kb);
    assert_int_equal(kb_open(db, 1, &kb), 0);
    struct kb_stats st;
    assert_int_equal(kb_stats(kb, &st), 0);
    assert_int_equal(st.articles, 9);
    /* a reader's cached titles follow a change of the file by another connection */
    char title[64], title2[64];
    assert_int_equal(kb_title(kb, "invoice-copy", "en", title, sizeof title), 0);
    assert_int_equal(kb_title(kb, "invoice-copy", "en", title2, sizeof title2), 0);
    assert_string_equal(title, title2);
    struct kb *w;
    assert_int_equal(kb_open(db, 0, &w), 0);
    assert_int_equal(sqlite3_exec(kb_db(w), "UPDATE articles SET title = 'Renamed' WHERE id = 'invoice-copy'",
                                  NULL, NULL, NULL),
                     SQLITE_OK);
    kb_close(w);
    usleep(1100 * 1000); /* the file is looked at once a second */
    assert_int_equal(kb_title(kb, "invoice-copy", "en", title, sizeof title), 0);
    assert_string_equal(title, "Renamed");
    kb_close(kb);
    /* a database of schema 1 (bigrams not colocated) is rebuilt by a writer; a reader asks for that */
    assert_int_equal(kb_open(db, 0, &kb), 0);
    assert_int_equal(sqlite3_exec(kb_db(kb), "PRAGMA user_version = 1", NULL, NULL, NULL), SQLITE_OK);
    kb_close(kb);
    assert_int_equal(kb_open(db, 1, &kb), KEFU_EIO);
    assert_int_equal(kb_open(db, 0, &kb), 0);
    sqlite3_stmt *v;
    assert_int_equal(sqlite3_prepare_v2(kb_db(kb), "PRAGMA user_version", -1, &v, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(v), SQLITE_ROW);
    assert_int_equal(sqlite3_column_int(v, 0), 4);
    sqlite3_finalize(v);
    /* the upgrade filled what kefu_rank() reads: the token total and the row lengths */
    assert_int_equal(sqlite3_prepare_v2(kb_db(kb),
                                        "SELECT (SELECT df FROM kb_terms WHERE term = ' tokens') > 0, "
                                        "(SELECT length(len) FROM kb_lengths) > 0",
                                        -1, &v, NULL),
                     SQLITE_OK);
    assert_int_equal(sqlite3_step(v), SQLITE_ROW);
    assert_int_equal(sqlite3_column_int(v, 0), 1);
    assert_int_equal(sqlite3_column_int(v, 1), 1);
    sqlite3_finalize(v);
    assert_int_equal(kb_search(kb, "bank transfer", 13, "en", &r), 0);
    assert_string_equal(r.hit[0].id, "refund-policy");
    kb_close(kb);
    assert_int_equal(kb_open("/nonexistent/kb.db", 1, &kb), KEFU_ENOENT);
    assert_null(kb);
    rm_tree(dir);
}

static const struct parse_case {
    const char *id, *text, *want; /* want: "line:col: message start" */
} parse_cases[] = {
    {"1", "id: a\nlocale: en\ntitle: T\nauthor: me\n\nBody.\n", "4:1: unknown key 'author'"},
    {"2", "id: a\nlocale: en\n\nBody.\n", "2:1: missing 'title'"},
    {"2b", "id: a\ntitle: T\ntags: x\n\nBody.\n", "3:1: missing 'locale'"},
    {"3", "id: Bad_Id\nlocale: en\ntitle: T\n\nBody.\n", "1:5: invalid id"},
    {"4", "id: a\nlocale: fr\ntitle: T\n\nBody.\n", "2:9: unknown locale"},
    {"5", "id: a\nlocale: en\ntitle: T\ntitle: U\n\nBody.\n", "4:1: duplicate 'title' (first on line 3)"},
    {"6", "id: a\nlocale: en\ntitle: 退款\xff\n\nBody.\n", "3:10: invalid utf-8"},
    {"7", "id: a\nlocale: en\ntitle: T\n\n\n", "4:1: the article has no body"},
    {"8", "id: a\nlocale: en\nthis is not a header\n\nBody.\n", "3:5: expected 'key: value'"},
    {"9", "id: a\nlocale: en\ntitle:\n\nBody.\n", "3:7: 'title' has no value"},
    {"10", "Body first, no header.\n\nMore.\n", "1:5: expected 'key: value'"},
};

static void test_parse_errors(void **state)
{
    char *dir = temp_dir(), path[512];
    for (size_t k = 0; k < sizeof parse_cases / sizeof parse_cases[0]; k++) {
        snprintf(path, sizeof path, "%s/bad%02zu.md", dir, k);
        write_file(path, parse_cases[k].text);
    }
    snprintf(path, sizeof path, "%s/good.md", dir);
    write_file(path, "id: good\r\nlocale: zh\r\ntitle: 好\r\ntags: x\r\nquestion: q1\r\nquestion: "
                     "q2\r\n\r\nBody **text**.\r\n");
    snprintf(path, sizeof path, "%s/README.md", dir); /* documentation, not an article */
    write_file(path, "# About these articles\n");
    snprintf(path, sizeof path, "%s/good2.md", dir);
    write_file(path, "id: good\nlocale: zh\ntitle: Again\n\nSame id and locale.\n");
    struct kb *kb;
    assert_int_equal(kb_open(":memory:", 0, &kb), 0);
    struct rules_diag d;
    rules_diag_init(&d);
    struct kb_import_stats s;
    assert_int_equal(kb_import(kb, dir, &d, NULL, NULL, &s), 0);
    assert_int_equal(s.added, 1);
    assert_int_equal(s.failed, sizeof parse_cases / sizeof parse_cases[0] + 1);
    for (size_t k = 0; k < sizeof parse_cases / sizeof parse_cases[0]; k++) {
        const struct parse_case *c = &parse_cases[k];
        char file[512], got[600];
        snprintf(file, sizeof file, "%s/bad%02zu.md", dir, k);
        int found = 0;
        for (size_t m = 0; m < d.n && !found; m++) {
            snprintf(got, sizeof got, "%d:%d: %s", d.v[m].line, d.v[m].col, d.v[m].text);
            found = strcmp(d.v[m].file, file) == 0 && strncmp(got, c->want, strlen(c->want)) == 0;
        }
        if (!found) {
            rules_diag_print(stderr, &d);
            fail_msg("case %s: no '%s' for %s", c->id, c->want, file);
        }
    }
    int dup = 0;
    for (size_t m = 0; m < d.n; m++)
        dup |= strstr(d.v[m].file, "good2.md") && d.v[m].line == 1 && strstr(d.v[m].text, "is already in");
    assert_true(dup);
    struct kb_hit h;
    assert_int_equal(kb_get(kb, "good", "zh", &h), 0);
    assert_string_equal(h.title, "好");
    assert_string_equal(h.snippet, "Body text.");
    struct kb_result r; /* a corpus of one article still answers (FTS5's BM25 weighs nothing there) */
    assert_int_equal(kb_search(kb, "body text", 9, "zh", &r), 0);
    assert_int_equal(r.n, 1);
    assert_string_equal(r.hit[0].id, "good");
    assert_true(r.confidence > 0);
    /* invalid UTF-8 in a buffer of exactly len bytes (no NUL after it): the
     * error quotes its line without reading past the end */
    static const char bad[] = "id: x\nlocale: en\ntitle: caf\xc3";
    char *buf = malloc(sizeof bad - 1);
    assert_non_null(buf);
    memcpy(buf, bad, sizeof bad - 1);
    struct kb_article a;
    rules_diag_release(&d);
    assert_int_equal(kb_article_parse("u.md", buf, sizeof bad - 1, &a, &d), KEFU_ESYNTAX);
    assert_true(d.n >= 1 && d.v[0].line == 3 && strstr(d.v[0].text, "invalid utf-8"));
    free(buf);
    rules_diag_release(&d);
    kb_close(kb);
    rm_tree(dir);
}

static void test_markdown(void **state)
{
    static const struct {
        const char *md, *text;
    } cases[] = {
        {"# Title\nSome **bold** and *em* and `code`.", "Title\nSome bold and em and code."},
        {"A [link](https://x.y/z) and ![img](a.png).", "A link and img."},
        {"- one\n- two\n1. three", "one\ntwo\nthree"},
        {"line one\nline two\n\nnext para", "line one line two\n\nnext para"},
        {"> quoted\n\n---\n\nafter", "quoted\n\nafter"},
        {"snake_case stays, _em_ goes", "snake_case stays, em goes"},
        {"```\ncode **kept**\n```", "code **kept**"},
        {"| a | b |\n|---|---|\n| 1 | 2 |", "a b\n1 2"},
        {"<b>html</b> <https://k.example>", "html https://k.example"},
        {"  spaced   out  \n\n\n\n  text  ", "spaced out\n\ntext"},
    };
    struct text_buf out;
    text_buf_init(&out);
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        assert_int_equal(kb_md_strip(cases[k].md, strlen(cases[k].md), &out), 0);
        if (strcmp(out.s, cases[k].text) != 0)
            fail_msg("case %zu: want '%s', got '%s'", k, cases[k].text, out.s);
    }
    /* the same from buffers of exactly len bytes, with no NUL after them
     * (ASan and valgrind see any read past the end) */
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        size_t n = strlen(cases[k].md);
        char *md = malloc(n);
        assert_non_null(md);
        memcpy(md, cases[k].md, n);
        assert_int_equal(kb_md_strip(md, n, &out), 0);
        free(md);
        if (strcmp(out.s, cases[k].text) != 0)
            fail_msg("unterminated case %zu: want '%s', got '%s'", k, cases[k].text, out.s);
    }
    /* len, not the NUL, ends the text */
    assert_int_equal(kb_md_strip("first line\nsecond", 10, &out), 0);
    assert_string_equal(out.s, "first line");
    assert_int_equal(kb_md_strip("one\ntwo three", 7, &out), 0);
    assert_string_equal(out.s, "one two");
    text_buf_release(&out);
}

/* ---- examples --------------------------------------------------------- */

static const char *ex_rules = "intent refund.status\n"
                              "  example where is my refund\n"
                              "  example when will my money come back\n"
                              "  example 退款什么时候到账\n"
                              "  example 钱什么时候退回来\n"
                              "  match refund\n"
                              "intent order.track\n"
                              "  example where is my parcel\n"
                              "  example track my package\n"
                              "  example 快递到哪了\n"
                              "  example 物流怎么不更新\n"
                              "  match parcel\n"
                              "intent password.reset\n"
                              "  example I forgot my password\n"
                              "  example how do I reset my password\n"
                              "  example 忘记密码了\n"
                              "  example 密码怎么改\n"
                              "  match password\n"
                              "intent vip.lounge\n"
                              "  when tier = vip\n"
                              "  example where is the vip lounge\n"
                              "  match lounge\n";

static const struct ex_case {
    const char *id, *text, *intent;
} ex_cases[] = {
    {"1.1", "where's my refund?", "refund.status"},
    {"1.2", "when does my money come back", "refund.status"},
    {"1.3", "退款什麼時候到賬", "refund.status"},
    {"1.4", "钱什么时候退", "refund.status"},
    {"2.1", "where is my package", "order.track"},
    {"2.2", "tracking my parcels", "order.track"},
    {"2.3", "我的快递到哪里了", "order.track"},
    {"3.1", "forgot password", "password.reset"},
    {"3.2", "reset my password please", "password.reset"},
    {"3.3", "忘記密碼", "password.reset"},
};

static struct rules *load_rules(const char *src)
{
    struct rules *rs = NULL;
    struct rules_diag d;
    rules_diag_init(&d);
    if (rules_load_string("ex.rules", src, &d, &rs) != 0)
        rules_diag_print(stderr, &d);
    rules_diag_release(&d);
    assert_non_null(rs);
    return rs;
}

static const char *top_intent(struct kb_examples *ex, const struct rules *rs, const char *text,
                              const struct attrs *a, double *conf)
{
    struct kb_votes v;
    assert_int_equal(kb_examples_match(ex, text, strlen(text), a, &v), 0);
    *conf = v.n ? v.v[0].confidence : 0;
    for (size_t k = 1; k < v.n; k++)
        assert_true(v.v[k - 1].confidence >= v.v[k].confidence);
    return v.n ? rules_intent(rs, v.v[0].intent)->name : NULL;
}

static void test_examples(void **state)
{
    struct rules *rs = load_rules(ex_rules);
    struct kb_examples *ex;
    assert_int_equal(kb_examples_build(rs, &ex), 0);
    double conf;
    for (size_t k = 0; k < sizeof ex_cases / sizeof ex_cases[0]; k++) {
        const struct ex_case *c = &ex_cases[k];
        const char *got = top_intent(ex, rs, c->text, NULL, &conf);
        if (!got || strcmp(got, c->intent) != 0)
            fail_msg("case %s '%s': want %s, got %s", c->id, c->text, c->intent, got ? got : "(none)");
        if (conf < 0.4)
            fail_msg("case %s '%s': confidence %.3f is too low", c->id, c->text, conf);
    }
    /* an exact example is near-certain; out-of-scope text is not */
    assert_string_equal(top_intent(ex, rs, "how do I reset my password", NULL, &conf), "password.reset");
    assert_true(conf > 0.9);
    static const char *const oos[] = {"what is the weather like tomorrow",
                                      "tell me a joke about cats",
                                      "今天天气怎么样",
                                      "is it raining",
                                      "my",
                                      "的"};
    for (size_t k = 0; k < sizeof oos / sizeof oos[0]; k++) {
        top_intent(ex, rs, oos[k], NULL, &conf);
        if (conf >= 0.35)
            fail_msg("out of scope '%s' has confidence %.3f", oos[k], conf);
    }
    /* 'when' keeps an intent out unless it holds */
    const char *got = top_intent(ex, rs, "where is the vip lounge", NULL, &conf);
    assert_true(got == NULL || strcmp(got, "vip.lounge") != 0);
    struct attr vip[] = {{"tier", "vip"}};
    struct attrs a = {vip, 1};
    assert_string_equal(top_intent(ex, rs, "where is the vip lounge", &a, &conf), "vip.lounge");
    struct kb_votes v;
    assert_int_equal(kb_examples_match(ex, "bad \xff", 5, NULL, &v), KEFU_EUTF8);
    for (size_t k = 0; k < sizeof hostile / sizeof hostile[0]; k++)
        assert_int_equal(kb_examples_match(ex, hostile[k], strlen(hostile[k]), NULL, &v), 0);
    kb_examples_free(ex);
    rules_unref(rs);
}

struct ex_thread {
    struct kb_examples *ex;
    const struct rules *rs;
    int ok;
};

static void *ex_worker(void *arg)
{
    struct ex_thread *t = arg;
    t->ok = 1;
    for (int round = 0; round < 50; round++)
        for (size_t k = 0; k < sizeof ex_cases / sizeof ex_cases[0]; k++) {
            struct kb_votes v;
            const struct ex_case *c = &ex_cases[k];
            if (kb_examples_match(t->ex, c->text, strlen(c->text), NULL, &v) != 0 || !v.n ||
                strcmp(rules_intent(t->rs, v.v[0].intent)->name, c->intent) != 0)
                t->ok = 0;
        }
    return NULL;
}

static void test_examples_clone_threads(void **state)
{
    struct rules *rs = load_rules(ex_rules);
    struct kb_examples *ex, *c1, *c2;
    assert_int_equal(kb_examples_build(rs, &ex), 0);
    assert_int_equal(kb_examples_clone(ex, &c1), 0);
    kb_examples_free(ex); /* clones outlive the original */
    assert_int_equal(kb_examples_clone(c1, &c2), 0);
    struct ex_thread t1 = {c1, rs, 0}, t2 = {c2, rs, 0};
    pthread_t p1, p2;
    pthread_create(&p1, NULL, ex_worker, &t1);
    pthread_create(&p2, NULL, ex_worker, &t2);
    pthread_join(p1, NULL);
    pthread_join(p2, NULL);
    assert_true(t1.ok && t2.ok);
    kb_examples_free(c1);
    kb_examples_free(c2);
    rules_unref(rs);
}

/* The bundled rules: every example finds its own intent among the votes,
 * nearly always first. */
static void test_examples_bundled(void **state)
{
    struct rules *rs = NULL;
    struct rules_diag d;
    rules_diag_init(&d);
    assert_int_equal(rules_load_dir("rules", &d, &rs), 0);
    rules_diag_release(&d);
    struct kb_examples *ex;
    double t0 = now_ms();
    assert_int_equal(kb_examples_build(rs, &ex), 0);
    double build = now_ms() - t0;
    size_t total = 0, first = 0;
    t0 = now_ms();
    for (size_t i = 0; i < rules_count(rs); i++) {
        const struct rules_intent *it = rules_intent(rs, i);
        struct attr wv[16];
        size_t wn;
        rules_cond_witness(it->when, wv, 16, &wn);
        struct attrs wa = {wv, wn};
        for (size_t e = 0; e < it->n_examples; e++) {
            struct kb_votes v;
            const char *t = it->examples[e].text;
            assert_int_equal(kb_examples_match(ex, t, strlen(t), &wa, &v), 0);
            total++;
            first += v.n && v.v[0].intent == i;
        }
    }
    double per = (now_ms() - t0) / (double)(total ? total : 1);
    fprintf(stderr, "examples: %zu indexed in %.1f ms, %zu/%zu first, %.3f ms per match\n", total, build,
            first, total, per);
    assert_true(total > 100);
    assert_true(first * 100 >= total * 95);
    kb_examples_free(ex); /* speed is reported above and measured in bench/, not asserted */
    rules_unref(rs);
}

/* Every allocation kefu makes on these paths can fail: no crash, no leak,
 * and an error code instead of a result (SQLite's own allocations are its). */
static void test_alloc_failures(void **state)
{
    struct rules *rs = load_rules(ex_rules);
    int failed = 0, done = 0;
    for (long n = 1; n < 400 && !done; n++) {
        kefu_alloc_fail_after(n);
        struct kb *kb = NULL;
        struct kb_examples *ex = NULL, *cl = NULL;
        struct rules_diag d;
        rules_diag_init(&d);
        struct kb_result r;
        struct kb_votes v;
        int rc = kb_open(":memory:", 0, &kb);
        if (rc == 0)
            rc = kb_import(kb, FIXTURE, &d, NULL, NULL, NULL);
        if (rc == 0)
            rc = kb_search(kb, "退款什麼時候到賬 refund", strlen("退款什麼時候到賬 refund"), "zh", &r);
        if (rc == 0)
            rc = kb_examples_build(rs, &ex);
        if (rc == 0)
            rc = kb_examples_clone(ex, &cl);
        if (rc == 0)
            rc = kb_examples_match(cl, "where is my parcel", 18, NULL, &v);
        kefu_alloc_fail_after(0);
        done = rc == 0; /* the nth allocation came after the whole sequence */
        failed += rc != 0;
        kb_examples_free(cl);
        kb_examples_free(ex);
        kb_close(kb);
        rules_diag_release(&d);
    }
    kefu_alloc_fail_after(0);
    fprintf(stderr, "allocation failures: %d runs failed cleanly before one completed\n", failed);
    assert_true(done);
    assert_true(failed > 10);
    rules_unref(rs);
}

static void test_examples_empty(void **state)
{
    struct rules *rs = load_rules("intent a\n  match hello\n  reply hi\n");
    struct kb_examples *ex;
    assert_int_equal(kb_examples_build(rs, &ex), 0);
    struct kb_votes v;
    assert_int_equal(kb_examples_match(ex, "hello", 5, NULL, &v), 0);
    assert_int_equal(v.n, 0);
    kb_examples_free(ex);
    rules_unref(rs);
}

static void test_search_speed(void **state)
{
    struct kb_fixture *f = *state;
    struct kb_result r;
    double t0 = now_ms();
    int n = 0;
    for (int round = 0; round < 20; round++)
        for (size_t k = 0; k < sizeof search_cases / sizeof search_cases[0]; k++, n++)
            assert_int_equal(kb_search(f->kb, search_cases[k].text, strlen(search_cases[k].text),
                                       search_cases[k].locale, &r),
                             0);
    double per = (now_ms() - t0) / n;
    fprintf(stderr, "search: %.3f ms per query on the fixture (reported, not asserted)\n", per);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tok_offsets),
        cmocka_unit_test(test_tok_offsets_random),
        cmocka_unit_test(test_tok_positions),
        cmocka_unit_test(test_query_build),
        cmocka_unit_test_setup_teardown(test_search_cases, kb_setup, kb_teardown),
        cmocka_unit_test_setup_teardown(test_rank_is_bm25, kb_setup, kb_teardown),
        cmocka_unit_test(test_common_terms),
        cmocka_unit_test_setup_teardown(test_search_confidence, kb_setup, kb_teardown),
        cmocka_unit_test_setup_teardown(test_result_owns_text, kb_setup, kb_teardown),
        cmocka_unit_test_setup_teardown(test_search_hostile, kb_setup, kb_teardown),
        cmocka_unit_test_setup_teardown(test_get_and_stats, kb_setup, kb_teardown),
        cmocka_unit_test_setup_teardown(test_search_speed, kb_setup, kb_teardown),
        cmocka_unit_test(test_snippet_offsets),
        cmocka_unit_test(test_import_incremental),
        cmocka_unit_test(test_parse_errors),
        cmocka_unit_test(test_markdown),
        cmocka_unit_test(test_examples),
        cmocka_unit_test(test_examples_clone_threads),
        cmocka_unit_test(test_examples_bundled),
        cmocka_unit_test(test_examples_empty),
        cmocka_unit_test(test_alloc_failures),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
