/* kb.h — the knowledge base: articles from corpus/ and the rules' example
 * lines, indexed in SQLite FTS5 with kefu's own tokenizer (the text
 * module's words, stems and CJK bigrams), searched with BM25 (IDF from the
 * term counts kept at import).
 * Customer text never reaches MATCH syntax: queries are built from tokens.
 * A struct kb (or kb_examples) is one SQLite connection: use one per
 * thread; several may open the same file. */
#ifndef KEFU_KB_H
#define KEFU_KB_H

#include <stddef.h>

#include "rules.h"

struct kb;          /* opaque: one connection to an articles database */
struct kb_examples; /* opaque: the example lines of one rule set, in memory */

#define KB_MAX_HITS 8

/* Sizes of a hit's strings. Ids are at most 100 bytes (kb_parse); longer
 * titles and snippets are cut at a character boundary. */
#define KB_ID_MAX      104
#define KB_LOCALE_MAX  16
#define KB_TITLE_MAX   384
#define KB_SNIPPET_MAX 384

/* One article found. A hit owns its text: it is plain data that may be
 * copied and kept for as long as the caller likes, across any later call
 * on the kb (a decision keeps its hits while a reply calls kb_get()). */
struct kb_hit {
    char id[KB_ID_MAX], locale[KB_LOCALE_MAX], title[KB_TITLE_MAX];
    char snippet[KB_SNIPPET_MAX]; /* "" after kb_search(); kb_snippets() cuts a few words around the terms */
    double score;                 /* BM25 relevance, higher is better (>= 0) */
    long long doc;                /* the article's row, for kb_snippets() */
};

/* What a search found, best first; confidence is for hit[0]. Owns all it
 * holds (see struct kb_hit). */
struct kb_result {
    struct kb_hit hit[KB_MAX_HITS];
    size_t n;
    double confidence;    /* 0..1 from the top score and its margin over the next hit */
    size_t n_terms;       /* query terms used (0: nothing searchable in the text) */
    unsigned long search; /* which search of its kb filled it (kb_snippets() checks it) */
};

/* Opens (creating and migrating if needed) the articles database at path;
 * ":memory:" works. read_only opens an existing file without writing.
 * *out is new, free it with kb_close(). Returns 0, KEFU_EIO or KEFU_ENOMEM. */
int kb_open(const char *path, int read_only, struct kb **out);
void kb_close(struct kb *kb); /* NULL is fine */
/* Like kb_open(); on failure also writes the reason, one lowercase line,
 * to err[0..cap) (err may be NULL when cap is 0). */
int kb_open_err(const char *path, int read_only, struct kb **out, char *err, size_t cap);
/* The reason for kb's last failed call; borrowed from kb. */
const char *kb_error(const struct kb *kb);

struct kb_import_stats {
    size_t files, added, updated, unchanged, removed, failed;
};
/* Called during an import with the files done so far and the total. */
typedef void (*kb_progress_fn)(void *ctx, size_t done, size_t total);

/* Imports every *.md article under dir (recursively): new and changed files
 * are (re)indexed, unchanged ones skipped, vanished ones removed. A file
 * that does not parse is reported in diag (file:line:col) and skipped; the
 * rest still import. progress may be NULL. Returns 0 (even with failed
 * files; see stats), KEFU_EIO or KEFU_ENOMEM. */
int kb_import(struct kb *kb, const char *dir, struct rules_diag *diag, kb_progress_fn progress, void *ctx,
              struct kb_import_stats *stats);

/* Searches articles for text[0..len) (raw UTF-8), preferring locale ("en",
 * "zh", "zh-hant"; NULL: any). Fills out. Returns 0, KEFU_EUTF8, KEFU_ENOMEM
 * or KEFU_EIO (kb_error() says why). */
int kb_search(struct kb *kb, const char *text, size_t len, const char *locale, struct kb_result *out);
/* Cuts the snippets (plain text, one line, about 20 words or 32 Chinese
 * characters around the matched terms) of the first n hits of r, written
 * into r; only for the hits a caller shows: each costs a pass over the
 * article's body. r (or a copy of it) must come from kb's latest
 * kb_search(): the terms are that search's; kb_get() and kb_title() in
 * between are fine. Returns 0, KEFU_EINVAL (r is from an older search or
 * another kb; r is unchanged), KEFU_ENOMEM or KEFU_EIO. */
int kb_snippets(struct kb *kb, struct kb_result *r, size_t n);

/* The FTS5 MATCH expression the last kb_search() ran ("" if none): its
 * terms, each double-quoted, joined with OR (AND for the rarest terms of a
 * question made only of common words); borrowed from kb. */
const char *kb_last_query(const struct kb *kb);

/* Looks up article id in locale (falling back to its language, then any);
 * fills *hit (snippet = start of the body), which owns its text. Leaves
 * every earlier result alone. Returns 0, KEFU_ENOENT or KEFU_EIO. */
int kb_get(struct kb *kb, const char *id, const char *locale, struct kb_hit *hit);
/* Copies the title kb_get() would give into buf[cap] (cut to fit). Returns 0 or KEFU_ENOENT. */
int kb_title(struct kb *kb, const char *id, const char *locale, char *buf, size_t cap);

/* Counts what the database holds. */
struct kb_stats {
    size_t articles, locales, terms;
    long long bytes; /* database file size */
};
int kb_stats(struct kb *kb, struct kb_stats *out);

/* ---- example-based intent matching ---- */

/* One intent the nearest examples voted for. */
struct kb_vote {
    unsigned intent;     /* index for rules_intent() */
    double score;        /* summed vote */
    double confidence;   /* 0..1, calibrated: see docs/routing.md */
    const char *example; /* the nearest example's text; borrowed from the rule set */
};
struct kb_votes {
    struct kb_vote v[KB_MAX_HITS]; /* best first */
    size_t n;
};

/* Indexes every example line of rs in a new in-memory FTS5 database; rs
 * must outlive it. *out is new, free with kb_examples_free(). */
int kb_examples_build(const struct rules *rs, struct kb_examples **out);
/* A second connection to the same examples for another thread (a private
 * copy of the index; safe while ex is in use elsewhere); *out is new. */
int kb_examples_clone(const struct kb_examples *ex, struct kb_examples **out);
void kb_examples_free(struct kb_examples *ex); /* NULL is fine */
/* Matches text[0..len) against the examples; intents whose 'when' fails for
 * attrs (NULL: no attributes) do not vote. Returns 0, KEFU_EUTF8, KEFU_ENOMEM
 * or KEFU_EIO. */
int kb_examples_match(struct kb_examples *ex, const char *text, size_t len, const struct attrs *attrs,
                      struct kb_votes *out);

#endif
