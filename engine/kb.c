/* kb.c — the articles database: schema, incremental import, search, get
 * and stats. One struct kb is one SQLite connection (use one per thread).
 *
 * Schema (PRAGMA user_version 4): a plain table `articles` holds each
 * article as imported (id, locale, title, tags, questions, the Markdown
 * body, its plain text, the file's path, content hash and mtime) and an
 * FTS5 table `articles_fts` (title, tags, questions, body) indexes it with
 * the "kefu" tokenizer (kb_tok.c), sharing its rowid; kb_terms, kb_champs
 * and kb_lengths are derived from the index by every import.
 *
 * Ranking: BM25 with weights title 4, tags 2, questions 3, body 1, computed by
 * kefu_rank() (kb_tok.c) with each term's IDF from kb_terms, so no search
 * walks a posting list to count it; times a locale factor (1 same locale,
 * 0.9 same language, 0.5 other); one hit per article id. A search cuts no
 * snippet: kb_snippets() does, for the hits a caller shows. The confidence
 * of the top hit is its coverage (the IDF-weighted share of the query's
 * terms it contains, from the phrase mask kefu_rank() gives) times
 * (0.5 + 0.5 × margin), margin = (s1 - s2) / s1 over the next article's
 * score, times an evidence factor from the IDF mass of the shared terms.
 * A question made only of common words is ranked over the champion lists
 * of its terms (search_common()). docs/corpus.md explains why. */
#include "kb.h"

#include "arena.h"
#include "kb_int.h"
#include "kefu.h"

#include <math.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define KB_SCHEMA     4         /* 2: bigrams colocated (1 apart); 3: kb_terms; 4: token total, kb_champs */
#define KB_CANDIDATES 32        /* BM25 hits read before the locale preference and dedup */
#define KB_MAX_FILE   (1 << 20) /* bytes in one article file */
#define KB_LEAD       200       /* bytes of body kb_get() gives as its snippet */
#define KB_EVIDENCE   4.0       /* IDF mass at which the evidence factor reaches 1 - 1/e */
#define KB_EXACT_ROWS 400       /* rows of common terms together ranked exactly; more: champions */
#define KB_RESCORE    16        /* champions of only some of the terms a search scores exactly */

struct kb {
    sqlite3 *db;
    int read_only;
    struct kb_tok_buf tb;
    struct kb_query q;
    struct arena ar; /* strings of the last result */
    sqlite3_stmt *search, *snippet, *get, *df, *title, *champs, *version, *begin, *commit, *row, *mask,
        *rescore;
    struct kb_rank rank;           /* the parameters of the last search's kefu_rank() */
    long long df_of[KB_MAX_TERMS]; /* articles holding each query term (kb_terms) */
    long long articles;            /* articles in the index (kb_terms) */
    long long tokens;              /* their tokens together (kb_terms) */
    unsigned long last_search;     /* the latest kb_search()'s number (unique across kbs) */
    uint32_t *len;                 /* kb_lengths, as of data version len_version */
    size_t n_len;
    sqlite3_int64 len_version; /* -1: to be (re)loaded */
    char err[256];
    /* kb_title()'s recent answers, dropped when the file changes (checked once a second) */
    struct kb_title_ent *titles;
    time_t titles_checked;
    long long titles_version;
};

#define KB_TITLES 64 /* slots of the title cache */
struct kb_title_ent {
    int used;
    char key[160]; /* id, NUL, locale */
    char title[512];
};

/* kb_terms: each indexed term with the number of articles holding it, rebuilt
 * by every import that changes something (kb_terms_refresh()); a search reads
 * it to leave the commonest terms out of MATCH on a large corpus, and takes
 * the terms' IDFs from it. kb_champs: for each common term (in more than
 * KB_ROW_BUDGET articles, at most half of them), its KB_CHAMPIONS best
 * articles by the term's own BM25 score, rebuilt with kb_terms; a question
 * made only of common terms is answered from them (see read_champions()). */
#define KB_TERMS_SCHEMA                                                                                      \
    "CREATE VIRTUAL TABLE IF NOT EXISTS articles_vocab USING fts5vocab(articles_fts, 'row');"                \
    "CREATE TABLE IF NOT EXISTS kb_terms (term TEXT PRIMARY KEY, df INTEGER NOT NULL) WITHOUT ROWID;"        \
    "CREATE TABLE IF NOT EXISTS kb_champs (term TEXT NOT NULL, doc INTEGER NOT NULL, score REAL NOT NULL,"   \
    " PRIMARY KEY (term, doc)) WITHOUT ROWID;"                                                               \
    "CREATE TABLE IF NOT EXISTS kb_lengths (id INTEGER PRIMARY KEY, len BLOB NOT NULL);"

/* Recounts kb_terms; the empty term (never a real one) holds the number of
 * articles, the term " tokens" (a token never holds a space) their tokens
 * together: kefu_rank() takes the average article length from it. */
#define KB_TERMS_COUNT                                                                                       \
    "DELETE FROM kb_terms; INSERT INTO kb_terms SELECT term, doc FROM articles_vocab;"                       \
    "INSERT OR REPLACE INTO kb_terms VALUES ('', (SELECT count(*) FROM articles_fts));"                      \
    "INSERT OR REPLACE INTO kb_terms VALUES ('" KB_TOKENS_TERM "', "                                         \
    "coalesce((SELECT " KB_TOKENS_FN "(articles_fts) FROM articles_fts LIMIT 1), 0));"

static const char *const schema =
    "CREATE TABLE articles ("
    "  doc INTEGER PRIMARY KEY,"
    "  id TEXT NOT NULL,"
    "  locale TEXT NOT NULL,"
    "  title TEXT NOT NULL,"
    "  tags TEXT NOT NULL DEFAULT '',"
    "  questions TEXT NOT NULL DEFAULT '',"
    "  body TEXT NOT NULL,"
    "  text TEXT NOT NULL,"
    "  path TEXT NOT NULL UNIQUE,"
    "  hash TEXT NOT NULL,"
    "  mtime INTEGER NOT NULL DEFAULT 0,"
    "  UNIQUE (id, locale));"
    "CREATE VIRTUAL TABLE articles_fts USING fts5(title, tags, questions, body, tokenize='" KB_TOKENIZER
    "');" KB_TERMS_SCHEMA "PRAGMA user_version = 4;";

/* Each step takes the schema from version (index + 1) to the next. */
static const char *const upgrades[] = {
    /* 1 → 2: the tokenizer now colocates each bigram with its unigram; the
     * index is rebuilt from the stored text so positions match snippet() */
    "INSERT INTO articles_fts(articles_fts) VALUES ('rebuild'); PRAGMA user_version = 2;",
    /* 2 → 3: the document frequencies of the terms */
    KB_TERMS_SCHEMA KB_TERMS_COUNT "PRAGMA user_version = 3;",
    /* 3 → 4: the token total, kb_champs and kb_lengths (migrate() counts them) */
    KB_TERMS_SCHEMA "PRAGMA user_version = 4;",
};

/* BM25 weights of title, tags, questions, body (docs/corpus.md). */
static const double kb_weights[KB_COLUMNS] = KB_WEIGHTS;

/* The best rows first, from the index alone (kefu_rank() once per row, the
 * first ?4 rows at most: the walk stops there), then the article of each of
 * those few: joining before the LIMIT would look up every matching article. */
static const char *const sql_search =
    "SELECT articles.doc, articles.id, articles.locale, articles.title, f.score, 0 FROM "
    "(SELECT doc, score FROM (SELECT rowid AS doc, " KB_RANK_FN
    "(articles_fts, ?3) AS score FROM articles_fts "
    " WHERE articles_fts MATCH ?1 LIMIT ?4) ORDER BY score DESC LIMIT ?2) AS f "
    "JOIN articles ON articles.doc = f.doc ORDER BY f.score DESC";
/* The terms (phrase mask) one row holds, for the top hit's coverage. */
static const char *const sql_mask =
    "SELECT " KB_RANK_FN "(articles_fts, ?3, 1) FROM articles_fts WHERE articles_fts MATCH ?1 AND rowid = ?2";
static const char *const sql_snippet = "SELECT snippet(articles_fts, 3, '', '', '...', ?3) FROM articles_fts "
                                       "WHERE articles_fts MATCH ?1 AND rowid = ?2";
static const char *const sql_df = "SELECT df FROM kb_terms WHERE term = ?1";
/* sql_get's choice of row, reading only the title (never the body's overflow pages) */
static const char *const sql_title = "SELECT title FROM articles WHERE id = ?1 ORDER BY "
                                     "CASE WHEN locale = ?2 THEN 0 WHEN substr(locale, 1, 2) = substr(?2, 1, "
                                     "2) THEN 1 ELSE 2 END, locale LIMIT 1";
static const char *const sql_champs = "SELECT doc, score FROM kb_champs WHERE term = ?1";
/* One row scored as sql_search scores it, with its mask, if it matches. */
static const char *const sql_rescore =
    "SELECT articles.doc, articles.id, articles.locale, articles.title, f.score, f.mask FROM "
    "(SELECT rowid AS doc, " KB_RANK_FN "(articles_fts, ?3) AS score, " KB_RANK_FN
    "(articles_fts, ?3, 1) AS mask FROM articles_fts WHERE articles_fts MATCH ?1 AND rowid = ?2) AS f "
    "JOIN articles ON articles.doc = f.doc";
/* A champion's article with the score ?2 its lists give (the columns of sql_search). */
static const char *const sql_row = "SELECT doc, id, locale, title, ?2, 0 FROM articles WHERE doc = ?1";
static const char *const sql_get = "SELECT id, locale, title, text FROM articles WHERE id = ?1 ORDER BY "
                                   "CASE WHEN locale = ?2 THEN 0 WHEN substr(locale, 1, 2) = substr(?2, 1, "
                                   "2) THEN 1 ELSE 2 END, locale LIMIT 1";

static int kb_fail(struct kb *kb, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int kb_fail(struct kb *kb, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(kb->err, sizeof kb->err, fmt, ap);
    va_end(ap);
    return code;
}

static int db_fail(struct kb *kb, const char *what)
{
    int code = sqlite3_errcode(kb->db) == SQLITE_NOMEM ? KEFU_ENOMEM : KEFU_EIO;
    return kb_fail(kb, code, "cannot %s: %s", what, sqlite3_errmsg(kb->db));
}

const char *kb_last_query(const struct kb *kb)
{
    return kb->q.match.s && kb->q.n ? kb->q.match.s : "";
}

const char *kb_error(const struct kb *kb)
{
    return kb && kb->err[0] ? kb->err : "no error";
}

/* ---- open ------------------------------------------------------------- */

static int exec(struct kb *kb, const char *sql, const char *what)
{
    return sqlite3_exec(kb->db, sql, NULL, NULL, NULL) == SQLITE_OK ? 0 : db_fail(kb, what);
}

/* Reads PRAGMA user_version, the schema version. */
static int user_version(struct kb *kb, int *v)
{
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(kb->db, "PRAGMA user_version", -1, &st, NULL) != SQLITE_OK)
        return db_fail(kb, "read the schema version");
    int rc = sqlite3_step(st);
    *v = rc == SQLITE_ROW ? sqlite3_column_int(st, 0) : 0;
    sqlite3_finalize(st);
    return rc == SQLITE_ROW ? 0 : db_fail(kb, "read the schema version");
}

/* Runs sql in one transaction. */
static int transaction(struct kb *kb, const char *sql, const char *what)
{
    int rc = exec(kb, "BEGIN IMMEDIATE", what);
    if (rc < 0)
        return rc;
    if ((rc = exec(kb, sql, what)) < 0) {
        sqlite3_exec(kb->db, "ROLLBACK", NULL, NULL, NULL);
        return rc;
    }
    return exec(kb, "COMMIT", what);
}

/* Creates the schema in an empty database, upgrades an older one step by
 * step (read-only connections cannot: they ask for an import), refuses a
 * newer one. */
static int migrate(struct kb *kb, const char *path)
{
    int v, rc = user_version(kb, &v);
    if (rc < 0 || v == KB_SCHEMA)
        return rc;
    if (v > KB_SCHEMA)
        return kb_fail(kb, KEFU_EIO, "'%s' has schema version %d, newer than this kefu (%d)", path, v,
                       KB_SCHEMA);
    if (kb->read_only && v == 0)
        return kb_fail(kb, KEFU_ENOENT, "'%s' holds no knowledge base (run 'kefu kb import')", path);
    if (kb->read_only)
        return kb_fail(kb, KEFU_EIO, "'%s' has schema version %d and needs an upgrade (run 'kefu kb import')",
                       path, v);
    if (v == 0)
        return transaction(kb, schema, "create the schema");
    int from = v;
    for (; rc == 0 && v < KB_SCHEMA; v++)
        rc = transaction(kb, upgrades[v - 1], "upgrade the schema");
    if (rc == 0 && from < 4 && (rc = exec(kb, "BEGIN IMMEDIATE", "upgrade the schema")) == 0) {
        if ((rc = kb_terms_refresh(kb)) < 0)
            sqlite3_exec(kb->db, "ROLLBACK", NULL, NULL, NULL);
        else
            rc = exec(kb, "COMMIT", "upgrade the schema");
    }
    return rc;
}

static int prepare(struct kb *kb, const char *sql, sqlite3_stmt **st)
{
    return sqlite3_prepare_v3(kb->db, sql, -1, SQLITE_PREPARE_PERSISTENT, st, NULL) == SQLITE_OK
               ? 0
               : db_fail(kb, "prepare a query");
}

/* Opens the connection, registers the tokenizer, migrates, prepares the queries. */
static int open_db(struct kb *kb, const char *path)
{
    int flags = kb->read_only ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE;
    int memory = strcmp(path, ":memory:") == 0;
    if (kb->read_only && !memory && access(path, F_OK) != 0)
        return kb_fail(kb, KEFU_ENOENT, "'%s' does not exist (run 'kefu kb import')", path);
    if (sqlite3_open_v2(path, &kb->db, flags | SQLITE_OPEN_NOMUTEX, NULL) != SQLITE_OK)
        return kb->db ? db_fail(kb, "open the knowledge base") : kb_fail(kb, KEFU_ENOMEM, "out of memory");
    sqlite3_busy_timeout(kb->db, 5000);
    if (kb_tok_register(kb->db) < 0)
        return kb_fail(kb, KEFU_EIO, "cannot register the tokenizer (sqlite without fts5?)");
    int rc = migrate(kb, path);
    if (rc == 0 && !kb->read_only && !memory)
        rc = exec(kb, "PRAGMA journal_mode = WAL", "switch to wal mode");
    /* searches read the index through a memory map: without it every
     * doclist page is a read() call into SQLite's own page cache */
    if (rc == 0)
        rc = exec(kb, "PRAGMA mmap_size = 1073741824", "map the database");
    if (rc == 0)
        rc = prepare(kb, sql_search, &kb->search);
    if (rc == 0)
        rc = prepare(kb, sql_snippet, &kb->snippet);
    if (rc == 0)
        rc = prepare(kb, sql_get, &kb->get);
    if (rc == 0)
        rc = prepare(kb, sql_df, &kb->df);
    if (rc == 0)
        rc = prepare(kb, sql_title, &kb->title);
    if (rc == 0)
        rc = prepare(kb, sql_champs, &kb->champs);
    if (rc == 0)
        rc = prepare(kb, "PRAGMA data_version", &kb->version);
    if (rc == 0)
        rc = prepare(kb, "BEGIN", &kb->begin);
    if (rc == 0)
        rc = prepare(kb, sql_row, &kb->row);
    if (rc == 0)
        rc = prepare(kb, sql_mask, &kb->mask);
    if (rc == 0)
        rc = prepare(kb, sql_rescore, &kb->rescore);
    if (rc == 0)
        rc = prepare(kb, "COMMIT", &kb->commit);
    return rc;
}

/* Variant of kb_open() that also returns the reason for a failure in
 * err[0..cap) (always NUL-terminated). */
int kb_open_err(const char *path, int read_only, struct kb **out, char *err, size_t cap)
{
    *out = NULL;
    struct kb *kb = kefu_calloc(1, sizeof *kb);
    if (!kb) {
        if (cap)
            snprintf(err, cap, "out of memory");
        return KEFU_ENOMEM;
    }
    kb->read_only = read_only;
    kb->len_version = -1;
    kb_tok_buf_init(&kb->tb);
    kb_query_init(&kb->q);
    arena_init(&kb->ar, 4096);
    if (read_only) /* a handle that imports sees its own changes at once: no cache */
        kb->titles = kefu_calloc(KB_TITLES, sizeof *kb->titles); /* NULL: no cache */
    int rc = open_db(kb, path);
    if (rc < 0) {
        if (cap)
            snprintf(err, cap, "%s", kb->err);
        kb_close(kb);
        return rc;
    }
    *out = kb;
    return 0;
}

int kb_open(const char *path, int read_only, struct kb **out)
{
    return kb_open_err(path, read_only, out, NULL, 0);
}

void kb_close(struct kb *kb)
{
    if (!kb)
        return;
    sqlite3_finalize(kb->search);
    sqlite3_finalize(kb->snippet);
    sqlite3_finalize(kb->get);
    sqlite3_finalize(kb->df);
    sqlite3_finalize(kb->title);
    free(kb->titles);
    sqlite3_finalize(kb->champs);
    sqlite3_finalize(kb->version);
    sqlite3_finalize(kb->begin);
    sqlite3_finalize(kb->row);
    sqlite3_finalize(kb->mask);
    sqlite3_finalize(kb->rescore);
    sqlite3_finalize(kb->commit);
    free(kb->len);
    sqlite3_close(kb->db);
    kb_tok_buf_release(&kb->tb);
    kb_query_release(&kb->q);
    arena_release(&kb->ar);
    free(kb);
}

/* ---- search ----------------------------------------------------------- */

struct cand {
    sqlite3_int64 doc, mask;
    int masked; /* mask is known (else only for the top hit, by mask_of()) */
    const char *id, *locale, *title;
    double score;
};

static int cand_cmp(const void *a, const void *b)
{
    const struct cand *x = a, *y = b;
    return x->score < y->score ? 1 : x->score > y->score ? -1 : x->doc < y->doc ? -1 : x->doc > y->doc;
}

/* Copies s[0..n) into dst[cap], cut at a character boundary to fit. */
static void copy_cut(char *dst, size_t cap, const char *s, size_t n)
{
    if (n >= cap) {
        n = cap - 1;
        while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80)
            n--;
    }
    memcpy(dst, s, n);
    dst[n] = 0;
}

/* Copies text column col of st into dst[cap] (see copy_cut()). */
static void col_copy(sqlite3_stmt *st, int col, char *dst, size_t cap)
{
    const char *s = (const char *)sqlite3_column_text(st, col);
    copy_cut(dst, cap, s ? s : "", s ? (size_t)sqlite3_column_bytes(st, col) : 0);
}

/* Copies a text column into the arena of the search under way (its
 * candidates); NULL on OOM. */
static const char *col_dup(struct kb *kb, sqlite3_stmt *st, int col)
{
    const char *s = (const char *)sqlite3_column_text(st, col);
    return arena_strndup(&kb->ar, s ? s : "", s ? (size_t)sqlite3_column_bytes(st, col) : 0);
}

/* Reads the candidate of one row of sql_search or sql_row into x,
 * scored with the locale preference. */
static int read_row(struct kb *kb, sqlite3_stmt *st, const char *locale, struct cand *x)
{
    static const double factor[3] = {0.5, 0.9, 1.0};
    x->doc = sqlite3_column_int64(st, 0);
    x->id = col_dup(kb, st, 1);
    x->locale = col_dup(kb, st, 2);
    x->title = col_dup(kb, st, 3);
    if (!x->id || !x->locale || !x->title)
        return kb_fail(kb, KEFU_ENOMEM, "out of memory");
    x->score = sqlite3_column_double(st, 4) * factor[kb_locale_match(x->locale, locale)];
    x->mask = sqlite3_column_int64(st, 5);
    x->masked = 0;
    return 0;
}

/* Reads up to KB_CANDIDATES hits by kefu_rank() (kb->rank is the current
 * MATCH's) among its first limit rows (-1: all; kb->rank.rows says how many
 * it read), scored with the locale preference. */
static int read_cands(struct kb *kb, const char *locale, struct cand *c, size_t *n, int limit)
{
    sqlite3_stmt *st = kb->search;
    sqlite3_reset(st);
    sqlite3_bind_text(st, 1, kb->q.match.s, (int)kb->q.match.len, SQLITE_STATIC);
    sqlite3_bind_int(st, 2, KB_CANDIDATES);
    sqlite3_bind_pointer(st, 3, &kb->rank, KB_RANK_FN, NULL);
    int rc = 0, step;
    sqlite3_bind_int(st, 4, limit);
    kb->rank.rows = 0;
    *n = 0;
    while (rc == 0 && *n < KB_CANDIDATES && (step = sqlite3_step(st)) == SQLITE_ROW)
        if ((rc = read_row(kb, st, locale, &c[*n])) == 0)
            (*n)++;
    if (rc == 0 && *n < KB_CANDIDATES && step != SQLITE_DONE)
        rc = db_fail(kb, "search the knowledge base");
    sqlite3_reset(st);
    return rc;
}

/* Sorts candidates best first and keeps one per article id. */
static size_t dedup(struct cand *c, size_t n)
{
    qsort(c, n, sizeof *c, cand_cmp);
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        size_t j = 0;
        while (j < m && strcmp(c[j].id, c[i].id) != 0)
            j++;
        if (j == m)
            c[m++] = c[i];
    }
    return m;
}

/* Turns line breaks into single spaces, in place: a snippet is one line. */
static void one_line(char *s)
{
    char *o = s;
    for (const char *p = s; *p; p++) {
        if (*p == '\n' || *p == '\r') {
            if (o > s && o[-1] != ' ')
                *o++ = ' ';
            continue;
        }
        if (*p == ' ' && o > s && o[-1] == ' ')
            continue;
        *o++ = *p;
    }
    *o = 0;
}

/* Cuts the snippet of row doc of locale: about 20 words, or 32 Chinese
 * characters (one position each), around the terms of the last MATCH. */
static int snippet_of(struct kb *kb, sqlite3_int64 doc, const char *locale, char *out, size_t cap)
{
    sqlite3_stmt *st = kb->snippet;
    sqlite3_reset(st);
    sqlite3_bind_text(st, 1, kb->q.match.s, (int)kb->q.match.len, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, doc);
    sqlite3_bind_int(st, 3, strncmp(locale, "zh", 2) == 0 ? 32 : 20);
    int rc = sqlite3_step(st);
    *out = 0;
    if (rc == SQLITE_ROW) {
        col_copy(st, 0, out, cap);
        one_line(out);
    }
    sqlite3_reset(st);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        return db_fail(kb, "cut a snippet");
    return 0;
}

int kb_snippets(struct kb *kb, struct kb_result *r, size_t n)
{
    if (r->search != kb->last_search || r->search == 0)
        return kb_fail(kb, KEFU_EINVAL, "the result is not from this kb's latest search");
    int rc = 0;
    for (size_t k = 0; k < n && k < r->n && rc == 0; k++)
        rc = snippet_of(kb, r->hit[k].doc, r->hit[k].locale, r->hit[k].snippet, sizeof r->hit[k].snippet);
    return rc;
}

/* The documented confidence: coverage × (0.5 + 0.5 × margin) × evidence,
 * evidence = 1 - exp(-mass / KB_EVIDENCE) from the IDF mass of the query
 * terms the article holds (one common word is weak evidence). */
static double confidence(double cover, double mass, double s1, double s2)
{
    if (s1 <= 0)
        return 0;
    double margin = (s1 - s2) / s1;
    if (margin < 0)
        margin = 0;
    double c = cover * (0.5 + 0.5 * margin) * (1 - exp(-mass / KB_EVIDENCE));
    return c < 0 ? 0 : c > 1 ? 1 : c;
}

/* Coverage and IDF mass of a row holding the MATCH phrases in mask, with
 * kefu's own IDF (always > 0, unlike BM25's): over every term that ran. */
static void cover_of(const struct kb *kb, sqlite3_int64 mask, double *cover, double *mass)
{
    double all = 0, hit = 0, n = (double)kb->articles;
    for (size_t i = 0; i < kb->q.n_in; i++) {
        double df = (double)kb->df_of[kb->q.in[i]];
        double w = log(1.0 + (n - df + 0.5) / (df + 0.5));
        all += w;
        hit += i < 64 && ((sqlite3_uint64)mask >> i & 1) ? w : 0;
    }
    *cover = all > 0 ? hit / all : 0;
    *mass = hit;
}

/* Fills kb->rank for the current MATCH: the BM25 IDF of each of its terms
 * (kb_bm25_idf()) with the counts of kb_terms instead of the posting lists. */
static void rank_params(struct kb *kb)
{
    struct kb_rank *r = &kb->rank;
    double n = (double)kb->articles;
    memcpy(r->weight, kb_weights, sizeof r->weight);
    r->avgdl = kb->articles > 0 ? (double)kb->tokens / n : 0;
    r->n = (int)kb->q.n_in;
    r->len = kb->len;
    r->n_len = kb->n_len;
    for (size_t i = 0; i < kb->q.n_in; i++)
        r->idf[i] = kb_bm25_idf(n, (double)kb->df_of[kb->q.in[i]]);
}

int kb_terms_refresh(struct kb *kb)
{
    int rc = exec(kb, KB_TERMS_COUNT, "count the articles of every term");
    if (rc == 0 && kb_lengths_build(kb->db) != SQLITE_OK)
        rc = db_fail(kb, "store the article lengths");
    if (rc == 0 && kb_champs_build(kb->db) != SQLITE_OK) /* reads the lengths */
        rc = db_fail(kb, "list the best articles of the common terms");
    kb->len_version = -1; /* the next search reloads them */
    return rc;
}

struct term_df {
    long long df;
    size_t t;
};

static int term_df_cmp(const void *a, const void *b)
{
    const struct term_df *x = a, *y = b;
    return x->df < y->df ? -1 : x->df > y->df ? 1 : x->t < y->t ? -1 : x->t > y->t;
}

#define KB_AND_TERMS 3 /* rarest terms required together when even the rarest one is common */

/* Rebuilds q->match as the terms v[0..k) required together ("a" AND "b"). */
static int and_match(struct kb_query *q, const struct term_df *v, size_t k)
{
    q->match.len = 0;
    int rc = kb_buf_add(&q->match, "", 0);
    for (size_t i = 0; i < k && rc == 0; i++) {
        q->in[i] = (unsigned char)v[i].t;
        if (i)
            rc = kb_buf_add(&q->match, " AND ", 5);
        if (rc == 0)
            rc = kb_buf_add(&q->match, "\"", 1);
        if (rc == 0) /* a term never holds '"' (kb_query_match() has the same guarantee) */
            rc = kb_buf_add(&q->match, q->text.s + q->off[v[i].t], q->len[v[i].t]);
        if (rc == 0)
            rc = kb_buf_add(&q->match, "\"", 1);
    }
    q->n_in = k;
    return rc;
}

static int term_count(struct kb *kb, const char *t, size_t n, long long *df)
{
    sqlite3_reset(kb->df);
    sqlite3_bind_text(kb->df, 1, t, (int)n, SQLITE_STATIC);
    int rc = sqlite3_step(kb->df);
    *df = rc == SQLITE_ROW ? sqlite3_column_int64(kb->df, 0) : 0;
    sqlite3_reset(kb->df);
    return rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : db_fail(kb, "read the term counts");
}

/* FTS5 ranks every row that holds any term of the MATCH, so a common word
 * makes a search over a large corpus cost the whole corpus. When the terms'
 * articles add up to more than KB_ROW_BUDGET, MATCH keeps only the rarest
 * terms that fit (always the rarest one found in some article): the words
 * that tell articles apart, which also carry most of the BM25 weight. When
 * even that one is common, *common is set and v[0..) starts with the terms
 * to search for: the rarest KB_AND_TERMS required together (*and_k of them;
 * search_common() drops them one by one while nothing matches), or the one
 * term that counts (*and_k = 0). Smaller corpora search with every term. */
static int prune_common(struct kb *kb, struct term_df *v, size_t *and_k, int *common)
{
    long long total = 0, articles;
    *and_k = 0;
    *common = 0;
    int rc = term_count(kb, "", 0, &articles);
    if (rc == 0)
        rc = term_count(kb, KB_TOKENS_TERM, sizeof KB_TOKENS_TERM - 1, &kb->tokens);
    kb->articles = articles;
    for (size_t t = 0; t < kb->q.n && rc == 0; t++) {
        rc = term_count(kb, kb->q.text.s + kb->q.off[t], kb->q.len[t], &v[t].df);
        v[t].t = t;
        kb->df_of[t] = v[t].df;
        total += v[t].df;
    }
    if (rc < 0 || total <= KB_ROW_BUDGET)
        return rc;
    if (articles <= 0) /* not counted: no term is taken for ubiquitous */
        articles = total * 2 + 1;
    qsort(v, kb->q.n, sizeof *v, term_df_cmp);
    size_t z = 0; /* the rarest term that some article holds */
    while (z < kb->q.n && v[z].df == 0)
        z++;
    if (z == kb->q.n)
        return 0;
    /* a term in half the articles or more has no weight in BM25 (IDF 1e-6)
     * and tells no article apart: above the budget it is left out, and a
     * question made only of such words ("how do i") finds nothing */
    size_t m = z;
    while (m < kb->q.n && 2 * v[m].df <= articles)
        m++;
    if (m == z) {
        kb->q.match.len = 0;
        return kb_buf_add(&kb->q.match, "", 0) < 0 ? kb_fail(kb, KEFU_ENOMEM, "out of memory") : 1;
    }
    *common = v[z].df > KB_ROW_BUDGET;
    if (*common && m - z > 1) {
        *and_k = m - z < KB_AND_TERMS ? m - z : KB_AND_TERMS;
        memmove(v, v + z, *and_k * sizeof *v);
        return and_match(&kb->q, v, *and_k);
    }
    unsigned char keep[KB_MAX_TERMS] = {0};
    long long used = 0;
    for (size_t k = 0; k < m; k++) {
        if (used > 0 && used + v[k].df > KB_ROW_BUDGET)
            break; /* terms in no article cost nothing and are kept until one that is */
        keep[v[k].t] = 1;
        used += v[k].df;
    }
    if (*common)
        v[0] = v[z];
    return kb_query_match(&kb->q, keep);
}

struct champ {
    sqlite3_int64 doc;
    double score;   /* the sum of its champion scores */
    unsigned lists; /* how many champion lists it is in */
    unsigned terms; /* which: bit j for term v[j] */
};

static int champ_doc_cmp(const void *a, const void *b)
{
    const struct champ *x = a, *y = b;
    return x->doc < y->doc ? -1 : x->doc > y->doc;
}

/* In every list first (their scores are exact), then by the summed score. */
static int champ_order_cmp(const void *a, const void *b)
{
    const struct champ *x = a, *y = b;
    if (x->lists != y->lists)
        return x->lists < y->lists ? 1 : -1;
    return x->score < y->score ? 1 : x->score > y->score ? -1 : x->doc < y->doc ? -1 : x->doc > y->doc;
}

/* Appends the champions of term t to a[*n..cap). */
static int champions_of(struct kb *kb, size_t t, unsigned bit, struct champ *a, size_t *n, size_t cap)
{
    sqlite3_stmt *st = kb->champs;
    sqlite3_reset(st);
    sqlite3_bind_text(st, 1, kb->q.text.s + kb->q.off[t], (int)kb->q.len[t], SQLITE_STATIC);
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW && *n < cap) {
        a[*n].doc = sqlite3_column_int64(st, 0);
        a[*n].lists = 1;
        a[*n].terms = bit;
        a[(*n)++].score = sqlite3_column_double(st, 1);
    }
    sqlite3_reset(st);
    return rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : db_fail(kb, "read the champion lists");
}

/* Scores row doc exactly for the current MATCH into c[*n] (nothing if the
 * row does not match it). */
static int rescore(struct kb *kb, const char *locale, sqlite3_int64 doc, struct cand *c, size_t *n)
{
    sqlite3_stmt *st = kb->rescore;
    sqlite3_reset(st);
    sqlite3_bind_text(st, 1, kb->q.match.s, (int)kb->q.match.len, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, doc);
    sqlite3_bind_pointer(st, 3, &kb->rank, KB_RANK_FN, NULL);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW && (rc = read_row(kb, st, locale, &c[*n])) == 0) {
        c[*n].masked = 1;
        (*n)++;
    }
    sqlite3_reset(st);
    return rc < 0 ? rc : rc == 0 || rc == SQLITE_DONE ? 0 : db_fail(kb, "score a champion");
}

/* Takes row x, a champion of the terms v[j] with bit j of x->terms set, into
 * c[*n]: its score is the sum of those champion scores (kefu_rank() sums
 * the terms the same way, so it is exact when x is a champion of every
 * term) and its mask those terms; only its article is read. */
static int take_champion(struct kb *kb, const char *locale, const struct champ *x, const struct term_df *v,
                         size_t k, struct cand *c, size_t *n)
{
    sqlite3_stmt *st = kb->row;
    sqlite3_reset(st);
    sqlite3_bind_int64(st, 1, x->doc);
    sqlite3_bind_double(st, 2, x->score);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW && (rc = read_row(kb, st, locale, &c[*n])) == 0) {
        c[*n].mask = 0;
        c[*n].masked = 1;
        for (size_t i = 0; i < kb->q.n_in && i < 64; i++)
            for (size_t j = 0; j < k; j++)
                if (kb->q.in[i] == v[j].t && (x->terms >> j & 1))
                    c[*n].mask |= (sqlite3_int64)((sqlite3_uint64)1 << i);
        (*n)++;
    }
    sqlite3_reset(st);
    return rc < 0 ? rc : rc == 0 || rc == SQLITE_DONE ? 0 : db_fail(kb, "read a champion");
}

/* Ranks the champions of the terms v[0..k) instead of the current MATCH's
 * rows (too many): the rows that are champions of every term first (their
 * scores are exact and they hold every term), then the others by the sum
 * of their champion scores (a lower bound of their score), KB_CANDIDATES
 * at most. No posting list is read: the best rows for a question of common
 * words hold its words in their titles and questions, which makes them
 * champions of each. How often this finds what ranking every row of the
 * MATCH would is measured in bench/notes/kb.md. */
static int read_champions(struct kb *kb, const char *locale, const struct term_df *v, size_t k,
                          struct cand *c, size_t *n)
{
    enum { cap = KB_AND_TERMS * KB_CHAMPIONS };
    struct champ *p = kefu_malloc(cap * sizeof *p); /* too big for a worker's stack */
    size_t m = 0, u = 0;
    int rc = p ? 0 : kb_fail(kb, KEFU_ENOMEM, "out of memory");
    *n = 0;
    for (size_t i = 0; i < k && rc == 0; i++)
        rc = champions_of(kb, v[i].t, 1u << i, p, &m, cap);
    if (rc == 0 && m > 0) {
        qsort(p, m, sizeof *p, champ_doc_cmp);
        for (size_t i = 0; i < m; i++) { /* one entry per row, its scores summed */
            if (u && p[u - 1].doc == p[i].doc) {
                p[u - 1].score += p[i].score;
                p[u - 1].lists++;
                p[u - 1].terms |= p[i].terms;
            } else {
                p[u++] = p[i];
            }
        }
        qsort(p, u, sizeof *p, champ_order_cmp);
    }
    size_t tried = 0;
    for (size_t i = 0; i < u && *n < KB_CANDIDATES && rc == 0; i++) {
        if (p[i].lists == k)
            rc = take_champion(kb, locale, &p[i], v, k, c, n);
        else if (tried++ < KB_RESCORE)
            rc = rescore(kb, locale, p[i].doc, c, n);
        else
            break;
    }
    free(p);
    return rc;
}

/* Every term that counts is common. The rarest ones together (and_k of
 * them, one fewer while nothing matches) are ranked exactly when they match
 * at most KB_EXACT_ROWS rows (the walk stops after one more); otherwise, or
 * for a single common term, the champions of those terms are; when no
 * champion matches, the best of the rows read before (the first by rowid). */
static int search_common(struct kb *kb, const char *locale, const struct term_df *v, size_t and_k,
                         struct cand *c, size_t *n)
{
    struct cand first[KB_CANDIDATES];
    size_t n_first = 0;
    int rc = 0;
    *n = 0;
    while (and_k > 0) {
        if ((rc = read_cands(kb, locale, c, n, KB_EXACT_ROWS + 1)) < 0)
            return rc;
        if (kb->rank.rows > KB_EXACT_ROWS)
            break;
        if (*n > 0 || and_k == 1)
            return 0;
        if ((rc = and_match(&kb->q, v, --and_k)) < 0) /* no article holds them all: require one fewer */
            return kb_fail(kb, rc, "out of memory");
        rank_params(kb);
    }
    memcpy(first, c, *n * sizeof *c);
    n_first = *n;
    *n = 0;
    if ((rc = read_champions(kb, locale, v, and_k ? and_k : 1, c, n)) < 0 || *n > 0)
        return rc;
    if (and_k == 0) /* a single term: no rows were read yet */
        return read_cands(kb, locale, c, n, KB_EXACT_ROWS + 1);
    memcpy(c, first, n_first * sizeof *c);
    *n = n_first;
    return 0;
}

/* Reads which of the MATCH's terms row x holds into x->mask. */
static int mask_of(struct kb *kb, struct cand *x)
{
    sqlite3_stmt *st = kb->mask;
    sqlite3_reset(st);
    sqlite3_bind_text(st, 1, kb->q.match.s, (int)kb->q.match.len, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, x->doc);
    sqlite3_bind_pointer(st, 3, &kb->rank, KB_RANK_FN, NULL);
    int rc = sqlite3_step(st);
    x->mask = rc == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
    sqlite3_reset(st);
    return rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : db_fail(kb, "read the terms of the first hit");
}

/* Reloads kb_lengths when the database changed since they were read: another
 * connection committed (PRAGMA data_version moved) or this one imported. */
static int lengths_fresh(struct kb *kb)
{
    sqlite3_int64 v = -1;
    sqlite3_reset(kb->version);
    if (sqlite3_step(kb->version) == SQLITE_ROW)
        v = sqlite3_column_int64(kb->version, 0);
    sqlite3_reset(kb->version);
    if (v == kb->len_version && v != -1)
        return 0;
    free(kb->len);
    kb->len = NULL;
    kb->n_len = 0;
    int rc = kb_lengths_load(kb->db, &kb->len, &kb->n_len);
    if (rc == SQLITE_NOMEM)
        return kb_fail(kb, KEFU_ENOMEM, "out of memory");
    if (rc != SQLITE_OK)
        return db_fail(kb, "read the article lengths");
    kb->len_version = v;
    return 0;
}

/* The search proper, after the query is built: term counts, MATCH, ranking. */
static int search_terms(struct kb *kb, const char *locale, struct kb_result *out)
{
    struct term_df v[KB_MAX_TERMS];
    size_t and_k = 0;
    int common = 0, rc;
    if ((rc = prune_common(kb, v, &and_k, &common)) != 0)
        return rc < 0 ? rc : 0; /* 1: nothing but words every other article holds */
    struct cand c[KB_CANDIDATES];
    size_t n;
    if ((rc = lengths_fresh(kb)) < 0)
        return rc;
    rank_params(kb);
    rc = common ? search_common(kb, locale, v, and_k, c, &n) : read_cands(kb, locale, c, &n, -1);
    if (rc < 0)
        return rc;
    n = dedup(c, n);
    if (n && !c[0].masked && (rc = mask_of(kb, &c[0])) < 0)
        return rc;
    for (size_t i = 0; i < n && i < KB_MAX_HITS; i++) {
        struct kb_hit *h = &out->hit[out->n++];
        copy_cut(h->id, sizeof h->id, c[i].id, strlen(c[i].id));
        copy_cut(h->locale, sizeof h->locale, c[i].locale, strlen(c[i].locale));
        copy_cut(h->title, sizeof h->title, c[i].title, strlen(c[i].title));
        h->score = c[i].score;
        h->doc = c[i].doc;
    }
    if (n) {
        double cover, mass;
        cover_of(kb, c[0].mask, &cover, &mass);
        out->confidence = confidence(cover, mass, c[0].score, n > 1 ? c[1].score : 0);
    }
    return 0;
}

/* Runs st (BEGIN or COMMIT). */
static int step_done(struct kb *kb, sqlite3_stmt *st)
{
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    return rc == SQLITE_DONE ? 0 : db_fail(kb, "read the knowledge base");
}

int kb_search(struct kb *kb, const char *text, size_t len, const char *locale, struct kb_result *out)
{
    static atomic_ulong searches;
    memset(out, 0, sizeof *out);
    arena_release(&kb->ar); /* the previous search's candidates */
    out->search = kb->last_search = atomic_fetch_add(&searches, 1) + 1;
    int rc = kb_query_build(&kb->tb, text, len, &kb->q);
    if (rc == KEFU_EUTF8)
        return kb_fail(kb, rc, "the text is not valid utf-8");
    if (rc < 0)
        return kb_fail(kb, rc, "cannot tokenize the text: %s", kefu_strerror(rc));
    out->n_terms = kb->q.n;
    if (kb->q.n == 0)
        return 0;
    /* one read transaction for the dozens of statements of a search: each on
     * its own would take and drop the database's read lock (system calls) */
    int own = sqlite3_get_autocommit(kb->db);
    if (own && (rc = step_done(kb, kb->begin)) < 0)
        return rc;
    rc = search_terms(kb, locale, out);
    if (own && sqlite3_step(kb->commit) != SQLITE_DONE && rc == 0)
        rc = db_fail(kb, "finish reading the knowledge base");
    sqlite3_reset(kb->commit);
    return rc;
}

/* ---- get and stats ---------------------------------------------------- */

/* Writes text into out (KB_SNIPPET_MAX bytes) if it has at most KB_LEAD
 * bytes, else its first KB_LEAD bytes cut after a space or at a character
 * boundary, line breaks as spaces, with "...". */
static void lead_text(const char *s, size_t n, char *out)
{
    _Static_assert(KB_LEAD + 4 <= KB_SNIPPET_MAX, "the lead fits a snippet");
    size_t cut = n;
    if (n > KB_LEAD) {
        cut = KB_LEAD;
        while (cut > 0 && ((unsigned char)s[cut] & 0xC0) == 0x80)
            cut--;
        for (size_t k = cut; k > KB_LEAD / 2; k--)
            if (s[k] == ' ' || s[k] == '\n') {
                cut = k;
                break;
            }
    }
    memcpy(out, s, cut);
    out[cut] = 0;
    if (n <= KB_LEAD)
        return;
    for (size_t k = 0; k < cut; k++)
        out[k] = out[k] == '\n' ? ' ' : out[k];
    memcpy(out + cut, "...", 4);
}

int kb_get(struct kb *kb, const char *id, const char *locale, struct kb_hit *hit)
{
    memset(hit, 0, sizeof *hit);
    sqlite3_stmt *st = kb->get;
    sqlite3_reset(st);
    sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, locale ? locale : "", -1, SQLITE_STATIC);
    int rc = sqlite3_step(st), ret = 0;
    if (rc == SQLITE_ROW) {
        col_copy(st, 0, hit->id, sizeof hit->id);
        col_copy(st, 1, hit->locale, sizeof hit->locale);
        col_copy(st, 2, hit->title, sizeof hit->title);
        const char *t = (const char *)sqlite3_column_text(st, 3);
        lead_text(t ? t : "", t ? (size_t)sqlite3_column_bytes(st, 3) : 0, hit->snippet);
    } else if (rc == SQLITE_DONE) {
        ret = kb_fail(kb, KEFU_ENOENT, "no article '%s'", id);
    } else {
        ret = db_fail(kb, "read an article");
    }
    sqlite3_reset(st);
    return ret;
}

/* Drops the cached titles if another connection changed the database
 * since the last look (PRAGMA data_version, asked at most once a second). */
static void titles_check(struct kb *kb)
{
    time_t now = time(NULL);
    if (now == kb->titles_checked)
        return;
    kb->titles_checked = now;
    long long v = -1;
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(kb->db, "PRAGMA data_version", -1, &st, NULL) == SQLITE_OK) {
        if (sqlite3_step(st) == SQLITE_ROW)
            v = sqlite3_column_int64(st, 0);
        sqlite3_finalize(st);
    }
    if (v != kb->titles_version || v < 0) {
        memset(kb->titles, 0, KB_TITLES * sizeof *kb->titles);
        kb->titles_version = v;
    }
}

int kb_title(struct kb *kb, const char *id, const char *locale, char *buf, size_t cap)
{
    char key[sizeof kb->titles->key];
    size_t ni = strlen(id), nl = strlen(locale ? locale : "");
    struct kb_title_ent *e = NULL;
    if (kb->titles && ni + nl + 2 <= sizeof key) {
        titles_check(kb);
        memcpy(key, id, ni + 1);
        memcpy(key + ni + 1, locale ? locale : "", nl + 1);
        size_t h = 2166136261u;
        for (size_t i = 0; i < ni + nl + 1; i++)
            h = (h ^ (unsigned char)key[i]) * 16777619u;
        e = &kb->titles[h % KB_TITLES];
        if (e->used && memcmp(e->key, key, ni + nl + 2) == 0) {
            snprintf(buf, cap, "%s", e->title);
            return 0;
        }
    }
    sqlite3_stmt *st = kb->title;
    sqlite3_reset(st);
    sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, locale ? locale : "", -1, SQLITE_STATIC);
    int rc = sqlite3_step(st), ret = 0;
    if (rc == SQLITE_ROW) {
        const char *t = (const char *)sqlite3_column_text(st, 0);
        snprintf(buf, cap, "%s", t ? t : "");
        if (e && strlen(t ? t : "") < sizeof e->title) {
            memcpy(e->key, key, ni + nl + 2);
            snprintf(e->title, sizeof e->title, "%s", t ? t : "");
            e->used = 1;
        }
    } else if (rc == SQLITE_DONE) {
        ret = kb_fail(kb, KEFU_ENOENT, "no article '%s'", id);
    } else {
        ret = db_fail(kb, "read an article's title");
    }
    sqlite3_reset(st);
    return ret;
}

/* Runs a one-number query into *v. */
static int count(struct kb *kb, const char *sql, long long *v)
{
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(kb->db, sql, -1, &st, NULL) != SQLITE_OK)
        return db_fail(kb, "count");
    int rc = sqlite3_step(st);
    *v = rc == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
    sqlite3_finalize(st);
    return rc == SQLITE_ROW ? 0 : db_fail(kb, "count");
}

int kb_stats(struct kb *kb, struct kb_stats *out)
{
    long long a = 0, l = 0, t = 0, pages = 0, size = 0;
    memset(out, 0, sizeof *out);
    int rc = count(kb, "SELECT count(*) FROM articles", &a);
    if (rc == 0)
        rc = count(kb, "SELECT count(DISTINCT locale) FROM articles", &l);
    /* kb_terms, not the index's vocabulary: counting that walks every posting list */
    if (rc == 0)
        rc = count(kb, "SELECT count(*) FROM kb_terms WHERE term NOT IN ('', '" KB_TOKENS_TERM "')", &t);
    if (rc == 0)
        rc = count(kb, "PRAGMA page_count", &pages);
    if (rc == 0)
        rc = count(kb, "PRAGMA page_size", &size);
    out->articles = (size_t)a;
    out->locales = (size_t)l;
    out->terms = (size_t)t;
    out->bytes = pages * size;
    return rc;
}

/* ---- for kb_import.c ---------------------------------------------------- */

sqlite3 *kb_db(struct kb *kb)
{
    return kb->db;
}

int kb_fail_db(struct kb *kb, const char *what)
{
    return db_fail(kb, what);
}

int kb_fail_msg(struct kb *kb, int code, const char *msg)
{
    return kb_fail(kb, code, "%s", msg);
}
