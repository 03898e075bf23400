/* cli_kb.c — `kefu kb import | search | stats`: the knowledge base from
 * the command line. Same conventions as cli.c: one plain error line on
 * stderr and exit 2 for usage errors, 1 for failures; diagnostics as
 * file:line:col with a caret; --json prints one object. */
#include "cli.h"
#include "cli_int.h"

#include "kb.h"
#include "kefu.h"
#include "rules.h"
#include "text.h"

#include <errno.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define DEFAULT_CORPUS "corpus"
#define DEFAULT_DB     "data/kb.db"

static const char *const usage_kb =
    "usage: kefu kb COMMAND [OPTIONS]\n\n"
    "commands:\n"
    "  import [CORPUS_DIR]   index the articles (default corpus/) into the database, incrementally\n"
    "  search TEXT           the articles kefu would find for TEXT, with scores and snippets\n"
    "  stats                 what the database holds\n\n"
    "Every command takes --db PATH (default data/kb.db) and --help.";
static const char *const usage_import =
    "usage: kefu kb import [--db PATH] [--quiet] [CORPUS_DIR]\n\n"
    "Imports every *.md article under CORPUS_DIR (default corpus/) into PATH (default\n"
    "data/kb.db, created with its directory). Unchanged files are skipped, changed ones\n"
    "re-indexed, vanished ones removed, all in one transaction. A file that does not parse\n"
    "is reported as file:line:col and skipped; the exit status is then 1. The format is in\n"
    "docs/corpus.md.";
static const char *const usage_search =
    "usage: kefu kb search [--json] [--locale L] [--db PATH] TEXT\n\n"
    "Searches the articles for TEXT and prints the hits best first with their scores and\n"
    "snippets, and the confidence kefu gives the first one. --locale (en, zh, zh-hant)\n"
    "is guessed from the text when absent. --json prints one object.";
static const char *const usage_stats = "usage: kefu kb stats [--db PATH]\n\n"
                                       "Counts the articles, locales and index terms in the database.";

struct kb_opts {
    const char *db, *locale;
    int json, quiet;
    const char *args[4];
    int n_args;
};

/* Parses the options of one kb subcommand. Returns 0, 1 for --help, or 2. */
static int kb_parse(int argc, char **argv, const char *accepted, struct kb_opts *o)
{
    memset(o, 0, sizeof *o);
    o->db = DEFAULT_DB;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        char name[32];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0)
            return 1;
        if (a[0] != '-' || a[1] == 0 || strcmp(a, "--") == 0) {
            if (strcmp(a, "--") == 0 && ++i >= argc)
                break;
            if (o->n_args == 4)
                return cli_fail("too many arguments");
            o->args[o->n_args++] = argv[i];
            continue;
        }
        snprintf(name, sizeof name, " %s ", a);
        if (!strstr(accepted, name))
            return cli_fail("unknown option '%s' for 'kb %s' (see kefu kb %s --help)", a, argv[0], argv[0]);
        if (strcmp(a, "--json") == 0) {
            o->json = 1;
        } else if (strcmp(a, "--quiet") == 0 || strcmp(a, "-q") == 0) {
            o->quiet = 1;
        } else {
            if (i + 1 >= argc)
                return cli_fail("option '%s' needs a value", a);
            *(strcmp(a, "--db") == 0 ? &o->db : &o->locale) = argv[++i];
        }
    }
    return 0;
}

/* Creates the directory that will hold path, if missing (one level). */
static int make_parent(const char *path)
{
    const char *slash = strrchr(path, '/');
    if (!slash || slash == path)
        return 0;
    char dir[4096];
    snprintf(dir, sizeof dir, "%.*s", (int)(slash - path), path);
    if (mkdir(dir, 0755) == 0 || errno == EEXIST)
        return 0;
    fprintf(stderr, "kefu: cannot create directory '%s': %s\n", dir, strerror(errno));
    return -1;
}

static int open_kb(const char *path, int read_only, struct kb **kb)
{
    char err[300];
    if (kb_open_err(path, read_only, kb, err, sizeof err) == 0)
        return 0;
    fprintf(stderr, "kefu: cannot open knowledge base: %s\n", err);
    return -1;
}

/* ---- import ----------------------------------------------------------- */

static void progress_bar(void *ctx, size_t done, size_t total)
{
    int width = 30, full = total ? (int)(done * (size_t)width / total) : width;
    fprintf(stderr, "\r[%.*s%*s] %zu/%zu", full, "##############################", width - full, "", done,
            total);
    if (done == total)
        fputs("\r\033[K", stderr);
    fflush(stderr);
}

static int kb_cmd_import(const struct kb_opts *o)
{
    const char *dir = o->n_args ? o->args[0] : DEFAULT_CORPUS;
    if (o->n_args > 1)
        return cli_fail("import takes one corpus directory");
    struct stat st;
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) { /* before anything is created */
        fprintf(stderr, "kefu: cannot open corpus directory '%s': %s\n", dir,
                stat(dir, &st) != 0 ? strerror(errno) : "not a directory");
        return 1;
    }
    struct kb *kb;
    if (make_parent(o->db) < 0 || open_kb(o->db, 0, &kb) < 0)
        return 1;
    struct rules_diag d;
    rules_diag_init(&d);
    struct kb_import_stats s;
    int rc = kb_import(kb, dir, &d, isatty(2) && !o->quiet ? progress_bar : NULL, NULL, &s);
    rules_diag_print(stderr, &d);
    if (rc == 0)
        printf("%s: %zu files, %zu added, %zu updated, %zu unchanged, %zu removed, %zu failed\n", dir,
               s.files, s.added, s.updated, s.unchanged, s.removed, s.failed);
    else if (!d.n)
        fprintf(stderr, "kefu: cannot import '%s': %s\n", dir, kb_error(kb));
    rules_diag_release(&d);
    kb_close(kb);
    return rc < 0 || s.failed ? 1 : 0;
}

/* ---- search ----------------------------------------------------------- */

static void print_hits(const struct kb_result *r, const char *match)
{
    if (*match)
        printf("query: %s\n", match);
    for (size_t k = 0; k < r->n; k++) {
        const struct kb_hit *h = &r->hit[k];
        printf("%zu. %s (%s)  %s  score %.2f\n", k + 1, h->id, h->locale, h->title, h->score);
        printf("   %s\n", h->snippet);
    }
    if (r->n_terms == 0)
        puts("nothing searchable in the text");
    else if (r->n == 0)
        printf("no article found (%zu term%s)\n", r->n_terms, r->n_terms == 1 ? "" : "s");
    else
        printf("confidence %.2f (%zu term%s)\n", r->confidence, r->n_terms, r->n_terms == 1 ? "" : "s");
}

static void print_json(const struct kb_result *r, const char *text, const char *locale, const char *match,
                       double ms)
{
    json_t *hits = json_array();
    for (size_t k = 0; k < r->n; k++) {
        const struct kb_hit *h = &r->hit[k];
        json_array_append_new(hits, json_pack("{s:s, s:s, s:s, s:f, s:s}", "id", h->id, "locale", h->locale,
                                              "title", h->title, "score", h->score, "snippet", h->snippet));
    }
    json_t *o =
        json_pack("{s:s, s:s, s:s, s:f, s:i, s:f, s:o}", "query", text, "locale", locale, "match", match,
                  "confidence", r->confidence, "terms", (json_int_t)r->n_terms, "ms", ms, "hits", hits);
    char *s = o ? json_dumps(o, JSON_COMPACT) : NULL;
    puts(s ? s : "{}");
    free(s);
    json_decref(o);
}

static int kb_cmd_search(const struct kb_opts *o)
{
    if (o->n_args != 1)
        return cli_fail("search needs exactly one text (quote it)");
    const char *text = o->args[0];
    size_t len = strlen(text);
    const char *locale = o->locale ? o->locale : text_guess_locale(text, len, NULL);
    struct kb *kb;
    if (open_kb(o->db, 1, &kb) < 0)
        return 1;
    struct kb_result r;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    int rc = kb_search(kb, text, len, locale, &r);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    if (rc == 0)
        rc = kb_snippets(kb, &r, r.n); /* every hit is shown (ms is the search alone) */
    double ms = (double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6;
    if (rc < 0)
        fprintf(stderr, "kefu: cannot search: %s\n", kb_error(kb));
    else if (o->json)
        print_json(&r, text, locale, kb_last_query(kb), ms);
    else
        print_hits(&r, kb_last_query(kb));
    kb_close(kb);
    return rc < 0 ? (rc == KEFU_EUTF8 ? 2 : 1) : 0;
}

/* ---- stats ------------------------------------------------------------ */

static int kb_cmd_stats(const struct kb_opts *o)
{
    if (o->n_args)
        return cli_fail("stats takes no arguments");
    struct kb *kb;
    if (open_kb(o->db, 1, &kb) < 0)
        return 1;
    struct kb_stats s;
    int rc = kb_stats(kb, &s);
    if (rc < 0)
        fprintf(stderr, "kefu: cannot read statistics: %s\n", kb_error(kb));
    else
        printf("%s: %zu articles in %zu locale%s, %zu terms, %.1f KiB\n", o->db, s.articles, s.locales,
               s.locales == 1 ? "" : "s", s.terms, (double)s.bytes / 1024.0);
    kb_close(kb);
    return rc < 0 ? 1 : 0;
}

static const struct kb_command {
    const char *name, *flags;
    int (*run)(const struct kb_opts *o);
} kb_commands[] = {
    {"import", " --db --quiet -q ", kb_cmd_import},
    {"search", " --db --json --locale ", kb_cmd_search},
    {"stats", " --db ", kb_cmd_stats},
};

int cli_kb(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "%s\n", usage_kb);
        return 2;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        puts(usage_kb);
        return 0;
    }
    const char *const usages[] = {usage_import, usage_search, usage_stats};
    for (size_t k = 0; k < sizeof kb_commands / sizeof kb_commands[0]; k++) {
        if (strcmp(argv[1], kb_commands[k].name) != 0)
            continue;
        struct kb_opts o;
        int rc = kb_parse(argc - 1, argv + 1, kb_commands[k].flags, &o);
        if (rc == 1) {
            puts(usages[k]);
            return 0;
        }
        return rc ? rc : kb_commands[k].run(&o);
    }
    fprintf(stderr, "kefu: unknown kb command '%s' (see kefu kb --help)\n", argv[1]);
    return 2;
}
