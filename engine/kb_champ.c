/* kb_champ.c — champion lists: for each common term of the articles
 * database, its best articles by that term's own BM25 score.
 *
 * A question whose every word is common (in more than KB_ROW_BUDGET of the
 * articles) would make a search rank the whole posting list of its rarest
 * word, tens of thousands of rows at 100,000 articles. The import keeps,
 * for each such term, the KB_CHAMPIONS rows that score best for it alone
 * (kb_champs: term, doc, score, rebuilt with kb_terms); kb.c ranks such a
 * question over the union of its terms' champions (read_champions()). The
 * build ranks every common term's posting list once, with kefu_rank().
 * kb_lengths, the token count of every row, is built here too. */
#include "kb_int.h"

#include "kefu.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static const char *const sql_totals = "SELECT (SELECT df FROM kb_terms WHERE term = ''), "
                                      "(SELECT df FROM kb_terms WHERE term = '" KB_TOKENS_TERM "')";
/* every term but the two counters, which no article "holds" in at most half of the articles */
static const char *const sql_terms =
    "SELECT term, df FROM kb_terms WHERE df > ?1 AND 2 * df <= ?2 AND term NOT IN ('', '" KB_TOKENS_TERM "')";
static const char *const sql_fill =
    "INSERT INTO kb_champs SELECT ?4, rowid, " KB_RANK_FN "(articles_fts, ?3) AS s FROM articles_fts "
    "WHERE articles_fts MATCH ?1 ORDER BY s DESC, rowid LIMIT ?2";

/* Fills the champions of one term t[0..n) held by df articles. */
static int fill_term(sqlite3_stmt *fill, struct kb_rank *r, const char *t, int n, double articles, double df)
{
    char match[2 * KB_MAX_WORD + 8];
    if (n <= 0 || (size_t)n + 3 > sizeof match || memchr(t, '"', (size_t)n))
        return SQLITE_OK; /* never an index term: nothing to keep */
    match[0] = '"';
    memcpy(match + 1, t, (size_t)n);
    match[n + 1] = '"';
    r->idf[0] = kb_bm25_idf(articles, df);
    sqlite3_reset(fill);
    sqlite3_bind_text(fill, 1, match, n + 2, SQLITE_STATIC);
    sqlite3_bind_int(fill, 2, KB_CHAMPIONS);
    sqlite3_bind_pointer(fill, 3, r, KB_RANK_FN, NULL);
    sqlite3_bind_text(fill, 4, t, n, SQLITE_STATIC);
    int rc = sqlite3_step(fill);
    sqlite3_reset(fill);
    return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

int kb_champs_build(sqlite3 *db)
{
    static const double w[KB_COLUMNS] = KB_WEIGHTS;
    sqlite3_stmt *tot = NULL, *terms = NULL, *fill = NULL;
    int rc = sqlite3_exec(db, "DELETE FROM kb_champs", NULL, NULL, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_prepare_v2(db, sql_totals, -1, &tot, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_prepare_v2(db, sql_terms, -1, &terms, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_prepare_v2(db, sql_fill, -1, &fill, NULL);
    double articles = 0, tokens = 0;
    if (rc == SQLITE_OK && (rc = sqlite3_step(tot)) == SQLITE_ROW) {
        articles = sqlite3_column_double(tot, 0);
        tokens = sqlite3_column_double(tot, 1);
        rc = SQLITE_OK;
    }
    struct kb_rank r = {.avgdl = articles > 0 ? tokens / articles : 0, .n = 1};
    memcpy(r.weight, w, sizeof r.weight);
    uint32_t *len = NULL; /* the row lengths kb_lengths_build() just stored: no docsize lookups */
    if (rc == SQLITE_OK)
        rc = kb_lengths_load(db, &len, &r.n_len);
    r.len = len;
    if (rc == SQLITE_OK) {
        sqlite3_bind_int(terms, 1, KB_ROW_BUDGET);
        sqlite3_bind_double(terms, 2, articles);
    }
    while (rc == SQLITE_OK && (rc = sqlite3_step(terms)) == SQLITE_ROW)
        rc = fill_term(fill, &r, (const char *)sqlite3_column_text(terms, 0), sqlite3_column_bytes(terms, 0),
                       articles, sqlite3_column_double(terms, 1));
    sqlite3_finalize(tot);
    sqlite3_finalize(terms);
    free(len);
    sqlite3_finalize(fill);
    return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

/* ---- row lengths ---------------------------------------------------------- */

/* kb_lengths holds one blob: the tokens of each row, a uint32_t per rowid
 * (0 where there is no row). kefu_rank() needs every ranked row's length,
 * and FTS5 looks each one up in its docsize table, which is half the cost
 * of ranking a row; each connection keeps the blob in memory instead. */
static const char *const sql_len_rows = "SELECT max(rowid), count(*) FROM articles_fts";
static const char *const sql_len_each = "SELECT rowid, " KB_TOKENS_FN "(articles_fts, 1) FROM articles_fts";

int kb_lengths_build(sqlite3 *db)
{
    sqlite3_stmt *rows = NULL, *each = NULL, *put = NULL;
    uint32_t *len = NULL;
    int rc = sqlite3_exec(db, "DELETE FROM kb_lengths", NULL, NULL, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_prepare_v2(db, sql_len_rows, -1, &rows, NULL);
    sqlite3_int64 max = 0, n = 0;
    if (rc == SQLITE_OK && (rc = sqlite3_step(rows)) == SQLITE_ROW) {
        max = sqlite3_column_int64(rows, 0);
        n = sqlite3_column_int64(rows, 1);
        rc = SQLITE_OK;
    }
    sqlite3_finalize(rows);
    /* rowids far sparser than the rows (many updates): no blob, FTS5 looks lengths up */
    if (rc != SQLITE_OK || n == 0 || max < 0 || max > 4 * n + 1024 || max >= KB_MAX_LENGTHS)
        return rc;
    if (!(len = sqlite3_malloc64((sqlite3_uint64)(max + 1) * sizeof *len)))
        return SQLITE_NOMEM;
    memset(len, 0, (size_t)(max + 1) * sizeof *len);
    rc = sqlite3_prepare_v2(db, sql_len_each, -1, &each, NULL);
    while (rc == SQLITE_OK && (rc = sqlite3_step(each)) == SQLITE_ROW) {
        sqlite3_int64 id = sqlite3_column_int64(each, 0), v = sqlite3_column_int64(each, 1);
        if (id >= 0 && id <= max)
            len[id] = v > 0 && v < UINT32_MAX ? (uint32_t)v : 0;
        rc = SQLITE_OK;
    }
    if (rc == SQLITE_DONE)
        rc = sqlite3_prepare_v2(db, "INSERT INTO kb_lengths (id, len) VALUES (1, ?1)", -1, &put, NULL);
    if (rc == SQLITE_OK) {
        sqlite3_bind_blob64(put, 1, len, (sqlite3_uint64)(max + 1) * sizeof *len, SQLITE_STATIC);
        rc = sqlite3_step(put) == SQLITE_DONE ? SQLITE_OK : sqlite3_errcode(db);
    }
    sqlite3_finalize(each);
    sqlite3_finalize(put);
    sqlite3_free(len);
    return rc;
}

int kb_lengths_load(sqlite3 *db, uint32_t **len, size_t *n)
{
    *len = NULL;
    *n = 0;
    sqlite3_stmt *st;
    int rc = sqlite3_prepare_v2(db, "SELECT len FROM kb_lengths WHERE id = 1", -1, &st, NULL);
    if (rc != SQLITE_OK)
        return rc;
    if ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        size_t bytes = (size_t)sqlite3_column_bytes(st, 0);
        const void *b = sqlite3_column_blob(st, 0);
        if (b && bytes >= sizeof **len && (*len = kefu_malloc(bytes))) {
            memcpy(*len, b, bytes);
            *n = bytes / sizeof **len;
        }
        rc = b && bytes >= sizeof **len && !*len ? SQLITE_NOMEM : SQLITE_OK;
    } else if (rc == SQLITE_DONE) {
        rc = SQLITE_OK;
    }
    sqlite3_finalize(st);
    return rc;
}
