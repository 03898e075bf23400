/* kb_import.c — incremental import of a corpus directory into the
 * articles database, in one transaction.
 *
 * Every *.md file under the directory is read and hashed. A file whose
 * hash matches the stored row is unchanged and skipped; rows whose file
 * vanished are removed; new and changed files are parsed (kb_parse.c) and
 * (re)indexed. (id, locale) pairs are claimed first by unchanged files,
 * then by changed files in path order, so a duplicate is reported at the
 * later file. A file that fails keeps its previously imported version
 * until it parses again. */
#include "kb.h"

#include "kb_int.h"
#include "kefu.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#define KB_MAX_FILE  (1 << 20)
#define KB_MAX_DEPTH 16

struct file {
    char *rel; /* path under the corpus directory; owned */
    char *src; /* content, for new and changed files; owned */
    size_t len;
    long long mtime;
    char hash[17];
    int state; /* 0 new, 1 changed, 2 unchanged, -1 unreadable */
};

struct files {
    struct file *v;
    size_t n, cap;
};

/* A tiny open-addressing set of "locale/id" keys → the file that claims them. */
struct claims {
    char **key;
    size_t *file;
    size_t cap;
};

static uint64_t fnv(const char *s, size_t n)
{
    uint64_t h = UINT64_C(14695981039346656037);
    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)s[i]) * UINT64_C(1099511628211);
    return h;
}

static int claims_init(struct claims *c, size_t n)
{
    c->cap = 16;
    while (c->cap < 2 * n + 2)
        c->cap *= 2;
    c->key = kefu_calloc(c->cap, sizeof *c->key);
    c->file = kefu_calloc(c->cap, sizeof *c->file);
    return c->key && c->file ? 0 : KEFU_ENOMEM;
}

static void claims_release(struct claims *c)
{
    for (size_t i = 0; c->key && i < c->cap; i++)
        free(c->key[i]);
    free(c->key);
    free(c->file);
}

/* Claims locale/id for file f. Returns 1 if claimed now, 0 if another file
 * holds it (*owner), or KEFU_ENOMEM. */
static int claim(struct claims *c, const char *id, const char *locale, size_t f, size_t *owner)
{
    char key[160];
    int n = snprintf(key, sizeof key, "%s/%s", locale, id);
    size_t i = fnv(key, (size_t)n) & (c->cap - 1);
    while (c->key[i]) {
        if (strcmp(c->key[i], key) == 0) {
            *owner = c->file[i];
            return c->file[i] == f;
        }
        i = (i + 1) & (c->cap - 1);
    }
    if (!(c->key[i] = kefu_strndup(key, (size_t)n)))
        return KEFU_ENOMEM;
    c->file[i] = f;
    return 1;
}

/* ---- walking the directory -------------------------------------------- */

static int files_push(struct files *fs, const char *rel)
{
    if (fs->n == fs->cap) {
        size_t cap = fs->cap ? fs->cap * 2 : 64;
        struct file *v = kefu_realloc(fs->v, cap * sizeof *v);
        if (!v)
            return KEFU_ENOMEM;
        fs->v = v;
        fs->cap = cap;
    }
    struct file *f = &fs->v[fs->n];
    memset(f, 0, sizeof *f);
    if (!(f->rel = kefu_strndup(rel, strlen(rel))))
        return KEFU_ENOMEM;
    fs->n++;
    return 0;
}

static void files_release(struct files *fs)
{
    for (size_t i = 0; i < fs->n; i++) {
        free(fs->v[i].rel);
        free(fs->v[i].src);
    }
    free(fs->v);
}

/* 1 for an article file: *.md, except README.md (the corpus's own documentation). */
static int is_article(const char *name)
{
    size_t n = strlen(name);
    return n > 3 && strcmp(name + n - 3, ".md") == 0 && strcasecmp(name, "readme.md") != 0;
}

/* Collects every *.md under root/rel (hidden entries skipped). */
static int walk(const char *root, const char *rel, int depth, struct files *fs, struct rules_diag *d)
{
    char dir[4096];
    snprintf(dir, sizeof dir, "%s%s%s", root, *rel ? "/" : "", rel);
    DIR *dp = opendir(dir);
    if (!dp) {
        rules_diag_add(d, RULES_ERROR, dir, 0, 0, NULL, "cannot open corpus directory: %s", strerror(errno));
        return KEFU_EIO;
    }
    int rc = 0;
    struct dirent *e;
    while (rc == 0 && (e = readdir(dp))) {
        if (e->d_name[0] == '.')
            continue;
        char sub[4096], full[8192];
        snprintf(sub, sizeof sub, "%s%s%s", rel, *rel ? "/" : "", e->d_name);
        snprintf(full, sizeof full, "%s/%s", root, sub);
        struct stat st;
        if (stat(full, &st) != 0)
            continue;
        if (S_ISDIR(st.st_mode) && depth < KB_MAX_DEPTH)
            rc = walk(root, sub, depth + 1, fs, d);
        else if (S_ISREG(st.st_mode) && is_article(e->d_name))
            rc = files_push(fs, sub);
    }
    closedir(dp);
    return rc;
}

static int file_cmp(const void *a, const void *b)
{
    return strcmp(((const struct file *)a)->rel, ((const struct file *)b)->rel);
}

/* Reads and hashes one file. Unreadable or oversized files are reported. */
static int read_file(const char *root, struct file *f, struct rules_diag *d)
{
    char path[8192];
    snprintf(path, sizeof path, "%s/%s", root, f->rel);
    FILE *fp = fopen(path, "rb");
    struct stat st;
    if (!fp || fstat(fileno(fp), &st) != 0 || st.st_size > KB_MAX_FILE) {
        rules_diag_add(d, RULES_ERROR, path, 0, 0, NULL, "%s",
                       fp ? "article is larger than 1 MiB" : "cannot read the article");
        if (fp)
            fclose(fp);
        f->state = -1;
        return 0;
    }
    f->mtime = (long long)st.st_mtime;
    f->src = kefu_malloc((size_t)st.st_size + 1);
    if (!f->src) {
        fclose(fp);
        return KEFU_ENOMEM;
    }
    f->len = fread(f->src, 1, (size_t)st.st_size, fp);
    f->src[f->len] = 0;
    fclose(fp);
    snprintf(f->hash, sizeof f->hash, "%016llx", (unsigned long long)fnv(f->src, f->len));
    return 0;
}

/* ---- the transaction -------------------------------------------------- */

struct import {
    struct kb *kb;
    sqlite3 *db;
    const char *root;
    struct files fs;
    struct claims cl;
    struct rules_diag *d;
    struct kb_import_stats *stats;
    sqlite3_stmt *by_path, *all, *del, *del_fts, *del_key, *ins, *ins_fts;
};

static const struct {
    size_t off;
    const char *sql;
} stmts[] = {
    {offsetof(struct import, by_path), "SELECT doc, hash, id, locale FROM articles WHERE path = ?1"},
    {offsetof(struct import, all), "SELECT doc, path FROM articles"},
    {offsetof(struct import, del), "DELETE FROM articles WHERE doc = ?1"},
    {offsetof(struct import, del_fts), "DELETE FROM articles_fts WHERE rowid = ?1"},
    {offsetof(struct import, del_key),
     "SELECT doc FROM articles WHERE (id = ?1 AND locale = ?2) OR path = ?3"},
    {offsetof(struct import, ins),
     "INSERT INTO articles (id, locale, title, tags, questions, body, text, path, hash, "
     "mtime) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)"},
    {offsetof(struct import, ins_fts),
     "INSERT INTO articles_fts (rowid, title, tags, questions, body) VALUES (?1, ?2, ?3, ?4, ?5)"},
};

#define STMT(im, k) (*(sqlite3_stmt **)((char *)(im) + stmts[k].off))

/* Prepares the import's statements (finalized by import_finalize()). */
static int import_prepare(struct import *im)
{
    for (size_t k = 0; k < sizeof stmts / sizeof stmts[0]; k++)
        if (sqlite3_prepare_v2(im->db, stmts[k].sql, -1, &STMT(im, k), NULL) != SQLITE_OK)
            return kb_fail_db(im->kb, "prepare the import");
    return 0;
}

static void import_finalize(struct import *im)
{
    for (size_t k = 0; k < sizeof stmts / sizeof stmts[0]; k++)
        sqlite3_finalize(STMT(im, k));
}

/* Runs a prepared statement that returns no rows. */
static int run(struct import *im, sqlite3_stmt *st)
{
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    return rc == SQLITE_DONE ? 0 : kb_fail_db(im->kb, "update the knowledge base");
}

/* Deletes one article from both tables. */
static int delete_doc(struct import *im, sqlite3_int64 doc)
{
    sqlite3_bind_int64(im->del, 1, doc);
    sqlite3_bind_int64(im->del_fts, 1, doc);
    int rc = run(im, im->del);
    return rc ? rc : run(im, im->del_fts);
}

/* Compares each file with its stored row; unchanged files claim their key. */
static int classify(struct import *im)
{
    int rc = 0;
    for (size_t i = 0; i < im->fs.n && rc == 0; i++) {
        struct file *f = &im->fs.v[i];
        if (f->state < 0)
            continue;
        sqlite3_stmt *st = im->by_path;
        sqlite3_bind_text(st, 1, f->rel, -1, SQLITE_STATIC);
        f->state = 0;
        if (sqlite3_step(st) == SQLITE_ROW) {
            const char *h = (const char *)sqlite3_column_text(st, 1);
            f->state = h && strcmp(h, f->hash) == 0 ? 2 : 1;
            size_t owner;
            if (f->state == 2)
                rc = claim(&im->cl, (const char *)sqlite3_column_text(st, 2),
                           (const char *)sqlite3_column_text(st, 3), i, &owner);
        }
        sqlite3_reset(st);
        rc = rc < 0 ? rc : 0;
    }
    return rc;
}

/* 1 if rel is among the (sorted) files found. */
static int seen(const struct files *fs, const char *rel)
{
    size_t lo = 0, hi = fs->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(fs->v[mid].rel, rel);
        if (c == 0)
            return 1;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return 0;
}

/* Removes the rows whose file is gone. */
static int remove_vanished(struct import *im)
{
    sqlite3_int64 gone[256];
    int rc = 0;
    for (;;) { /* in batches: deleting while the scan runs is not allowed */
        size_t n = 0;
        sqlite3_reset(im->all);
        while (n < 256 && sqlite3_step(im->all) == SQLITE_ROW)
            if (!seen(&im->fs, (const char *)sqlite3_column_text(im->all, 1)))
                gone[n++] = sqlite3_column_int64(im->all, 0);
        sqlite3_reset(im->all);
        for (size_t k = 0; k < n && rc == 0; k++)
            rc = delete_doc(im, gone[k]);
        im->stats->removed += n;
        if (rc || n < 256)
            return rc;
    }
}

static void bind_str(sqlite3_stmt *st, int i, const char *s, size_t n)
{
    sqlite3_bind_text(st, i, s, (int)n, SQLITE_STATIC);
}

/* Deletes stale rows holding this article's key or path, then inserts it. */
static int store(struct import *im, const struct file *f, const struct kb_article *a)
{
    sqlite3_int64 stale[2];
    size_t n = 0;
    sqlite3_stmt *st = im->del_key;
    bind_str(st, 1, a->id, strlen(a->id));
    bind_str(st, 2, a->locale, strlen(a->locale));
    bind_str(st, 3, f->rel, strlen(f->rel));
    while (n < 2 && sqlite3_step(st) == SQLITE_ROW)
        stale[n++] = sqlite3_column_int64(st, 0);
    sqlite3_reset(st);
    int rc = 0;
    for (size_t k = 0; k < n && rc == 0; k++)
        rc = delete_doc(im, stale[k]);
    if (rc)
        return rc;
    st = im->ins;
    bind_str(st, 1, a->id, strlen(a->id));
    bind_str(st, 2, a->locale, strlen(a->locale));
    bind_str(st, 3, a->title, strlen(a->title));
    bind_str(st, 4, a->tags, strlen(a->tags));
    bind_str(st, 5, a->questions.s, a->questions.len);
    bind_str(st, 6, a->body, strlen(a->body));
    bind_str(st, 7, a->text.s, a->text.len);
    bind_str(st, 8, f->rel, strlen(f->rel));
    bind_str(st, 9, f->hash, strlen(f->hash));
    sqlite3_bind_int64(st, 10, f->mtime);
    if ((rc = run(im, st)) < 0)
        return rc;
    st = im->ins_fts;
    sqlite3_bind_int64(st, 1, sqlite3_last_insert_rowid(im->db));
    bind_str(st, 2, a->title, strlen(a->title));
    bind_str(st, 3, a->tags, strlen(a->tags));
    bind_str(st, 4, a->questions.s, a->questions.len);
    bind_str(st, 5, a->text.s, a->text.len);
    return run(im, st);
}

/* Parses and stores one new or changed file; a bad file is counted as failed. */
static int import_one(struct import *im, size_t i)
{
    struct file *f = &im->fs.v[i];
    char path[8192];
    snprintf(path, sizeof path, "%s/%s", im->root, f->rel);
    struct kb_article a;
    int rc = kb_article_parse(path, f->src, f->len, &a, im->d);
    if (rc == KEFU_ESYNTAX) {
        im->stats->failed++;
        kb_article_release(&a);
        return 0;
    }
    if (rc < 0)
        return rc;
    size_t owner = i;
    rc = claim(&im->cl, a.id, a.locale, i, &owner);
    if (rc == 0) {
        rules_diag_add(im->d, RULES_ERROR, path, a.id_line, 5, NULL,
                       "article '%s' (%s) is already in %s/%s; an id is used once per locale", a.id, a.locale,
                       im->root, im->fs.v[owner].rel);
        im->stats->failed++;
    } else if (rc > 0 && (rc = store(im, f, &a)) == 0) {
        if (f->state == 0)
            im->stats->added++;
        else
            im->stats->updated++;
    }
    kb_article_release(&a);
    return rc;
}

/* Counts the unchanged and unreadable files, imports the others, reports progress. */
static int import_files(struct import *im, kb_progress_fn progress, void *ctx)
{
    int rc = 0;
    for (size_t i = 0; i < im->fs.n && rc == 0; i++) {
        struct file *f = &im->fs.v[i];
        if (f->state < 0)
            im->stats->failed++;
        else if (f->state == 2)
            im->stats->unchanged++;
        else
            rc = import_one(im, i);
        if (progress)
            progress(ctx, i + 1, im->fs.n);
    }
    return rc;
}

/* Walks, reads and hashes the files, then updates the database in one transaction. */
static int import_run(struct import *im, kb_progress_fn progress, void *ctx)
{
    int rc = walk(im->root, "", 0, &im->fs, im->d);
    if (rc < 0)
        return rc == KEFU_EIO ? kb_fail_msg(im->kb, rc, "cannot open corpus directory") : rc;
    if (im->fs.n) /* qsort(NULL, 0, ...) is undefined */
        qsort(im->fs.v, im->fs.n, sizeof *im->fs.v, file_cmp);
    im->stats->files = im->fs.n;
    for (size_t i = 0; i < im->fs.n && rc == 0; i++)
        rc = read_file(im->root, &im->fs.v[i], im->d);
    if (rc == 0)
        rc = claims_init(&im->cl, im->fs.n);
    if (rc == 0)
        rc = import_prepare(im);
    if (rc == 0)
        rc = sqlite3_exec(im->db, "BEGIN IMMEDIATE", NULL, NULL, NULL) == SQLITE_OK
                 ? 0
                 : kb_fail_db(im->kb, "start the import");
    if (rc < 0)
        return rc;
    rc = classify(im);
    if (rc == 0)
        rc = remove_vanished(im);
    if (rc == 0)
        rc = import_files(im, progress, ctx);
    if (rc == 0 && im->stats->added + im->stats->updated + im->stats->removed)
        rc = kb_terms_refresh(im->kb);
    if (rc == 0 && sqlite3_exec(im->db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK)
        rc = kb_fail_db(im->kb, "commit the import");
    if (rc < 0)
        sqlite3_exec(im->db, "ROLLBACK", NULL, NULL, NULL);
    return rc;
}

int kb_import(struct kb *kb, const char *dir, struct rules_diag *diag, kb_progress_fn progress, void *ctx,
              struct kb_import_stats *stats)
{
    struct kb_import_stats local;
    struct import im;
    memset(&im, 0, sizeof im);
    im.kb = kb;
    im.db = kb_db(kb);
    im.root = dir;
    im.d = diag;
    im.stats = stats ? stats : &local;
    memset(im.stats, 0, sizeof *im.stats);
    int rc = import_run(&im, progress, ctx);
    if (rc == 0 && im.stats->added + im.stats->updated +
                       im.stats->removed) /* the optimize step merges the index segments the import wrote */
        sqlite3_exec(im.db, "INSERT INTO articles_fts(articles_fts) VALUES ('optimize')", NULL, NULL, NULL);
    import_finalize(&im);
    claims_release(&im.cl);
    files_release(&im.fs);
    return rc;
}
