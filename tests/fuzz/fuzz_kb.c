/* fuzz_kb.c — libFuzzer target for the knowledge base: the input is a
 * customer message. It goes through the query builder (kb_query_build),
 * a BM25 search of a real articles database (tests/corpus, imported once
 * per process into an in-memory SQLite file), the example matcher over the
 * bundled rules' example lines, and an article lookup by id; the same
 * bytes are also parsed as an article file. What must hold: a search
 * fails only for invalid UTF-8 (never with an SQLite error, which is what
 * customer text reaching MATCH syntax would give), the MATCH string is
 * made of double-quoted terms without quotes inside joined by OR, hits are
 * in score order with confidence in [0,1], and the parser either fills an
 * article or reports an error with a position. */
#include "kb.h"
#include "kb_int.h"
#include "kefu.h"
#include "rules.h"
#include "text.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"

static struct kb *kb;
static struct rules *rs;
static struct kb_examples *ex;
static struct kb_tok_buf tb;
static struct kb_query q;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    struct rules_diag d;
    rules_diag_init(&d);
    struct kb_import_stats st;
    if (kb_open(":memory:", 0, &kb) != 0 ||
        kb_import(kb, KEFU_SRC_DIR "/tests/corpus", &d, NULL, NULL, &st) != 0 || st.added == 0 ||
        rules_load_dir(KEFU_SRC_DIR "/rules", &d, &rs) != 0 || kb_examples_build(rs, &ex) != 0) {
        rules_diag_print(stderr, &d);
        fprintf(stderr, "fuzz_kb: cannot set up the corpus and rules under %s\n", KEFU_SRC_DIR);
        abort();
    }
    rules_diag_release(&d);
    kb_tok_buf_init(&tb);
    kb_query_init(&q);
    return 0;
}

/* "t1" OR "t2" ...: every term quoted, no quote inside, OR between. */
static void check_match(const char *m)
{
    if (!*m)
        return;
    const char *p = m;
    for (;;) {
        MUST(*p == '"');
        const char *e = strchr(p + 1, '"');
        MUST(e && e > p + 1);
        p = e + 1;
        if (!*p)
            return;
        MUST(strncmp(p, " OR ", 4) == 0);
        p += 4;
    }
}

static void search(const char *s, size_t n, int valid, const char *locale)
{
    struct kb_result res;
    int rc = kb_search(kb, s, n, locale, &res);
    if (rc != 0 && rc != KEFU_EUTF8)
        fprintf(stderr, "fuzz_kb: kb_search: %s (%s)\n", kefu_strerror(rc), kb_error(kb));
    MUST(rc == 0 || rc == KEFU_EUTF8);
    MUST((rc == KEFU_EUTF8) == !valid);
    if (rc)
        return;
    check_match(kb_last_query(kb));
    MUST(res.n <= KB_MAX_HITS);
    /* a lookup between the search and its snippets (a reply's {kb:ID})
     * leaves the result whole: hits own their text */
    struct kb_result kept = res;
    struct kb_hit other;
    if (res.n)
        MUST(kb_get(kb, res.hit[res.n - 1].id, "en", &other) == 0);
    MUST(kb_snippets(kb, &res, res.n) == 0);
    MUST(res.confidence >= 0 && res.confidence <= 1);
    for (size_t k = 0; k < res.n; k++) {
        MUST(*res.hit[k].id && strcmp(res.hit[k].id, kept.hit[k].id) == 0);
        MUST(strcmp(res.hit[k].title, kept.hit[k].title) == 0);
        MUST(text_utf8_valid(res.hit[k].title, strlen(res.hit[k].title)));
        MUST(text_utf8_valid(res.hit[k].snippet, strlen(res.hit[k].snippet)));
        MUST(res.hit[k].score >= 0);
        MUST(k == 0 || res.hit[k].score <= res.hit[k - 1].score + 1e-9);
    }
}

static void parse_article(const char *s, size_t n)
{
    struct kb_article a;
    struct rules_diag d;
    kb_article_init(&a);
    rules_diag_init(&d);
    int rc = kb_article_parse("fuzz.md", s, n, &a, &d);
    MUST(rc == 0 || rc == KEFU_ESYNTAX);
    if (rc == 0)
        MUST(a.id && a.locale && kb_locale_valid(a.locale) && a.title);
    else
        MUST(d.errors > 0 && d.v[0].line >= 0);
    struct text_buf plain;
    text_buf_init(&plain);
    MUST(kb_md_strip(s, n, &plain) == 0);
    text_buf_release(&plain);
    rules_diag_release(&d);
    kb_article_release(&a);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 8192) /* messages are capped at 4 KiB upstream; keep some slack */
        return 0;
    const char *s = (const char *)data;
    int valid = text_utf8_valid(s, size);
    int rc = kb_query_build(&tb, s, size, &q);
    MUST(rc == 0 || rc == KEFU_EUTF8);
    MUST((rc == KEFU_EUTF8) == !valid);
    if (rc == 0) {
        MUST(q.n <= KB_MAX_TERMS);
        check_match(q.match.s ? q.match.s : "");
    }
    static const char *const locales[] = {NULL, "en", "zh", "zh-hant"};
    search(s, size, valid, locales[size % 4]);
    struct kb_votes votes;
    rc = kb_examples_match(ex, s, size, NULL, &votes);
    MUST(rc == 0 || rc == KEFU_EUTF8);
    for (size_t k = 0; rc == 0 && k < votes.n; k++)
        MUST(votes.v[k].intent < rules_count(rs) && votes.v[k].confidence >= 0 && votes.v[k].confidence <= 1);
    if (valid && size < 128) {
        char id[128];
        memcpy(id, s, size);
        id[size] = 0;
        struct kb_hit hit;
        rc = kb_get(kb, id, "zh", &hit);
        MUST(rc == 0 || rc == KEFU_ENOENT);
    }
    parse_article(s, size);
    return 0;
}
