/* eval.h — labelled data in, quality figures out: the TSV files behind
 * kefu learn and kefu eval. Every line is routed through decide_message()
 * exactly as a customer message would be; the figures are defined in
 * docs/quality.md. */
#ifndef KEFU_EVAL_H
#define KEFU_EVAL_H

#include <stdio.h>

#include "decide.h"

/* One well-formed line: its fields (borrowed from the table) and number. */
struct eval_row {
    const char *f[3];
    int line;
};

/* A TSV file held in memory; rows point into buf. */
struct eval_tsv {
    char *buf;
    struct eval_row *v;
    size_t n, cap;
    size_t bad; /* malformed lines, reported and skipped */
};

/* Reads path as lines of exactly ncols (1..3) non-empty UTF-8 fields (in
 * three-field files the middle one may be empty); blank lines are ignored; each
 * other line is reported on errs as "path:line: reason", counted in bad and
 * skipped. Release *out with eval_tsv_release(). Returns 0, KEFU_EIO or
 * KEFU_ENOMEM. */
int eval_tsv_load(const char *path, int ncols, FILE *errs, struct eval_tsv *out);
void eval_tsv_release(struct eval_tsv *t); /* t can be loaded again */

/* Returns 1 if label means out of scope ("oos", any case), else 0. */
int eval_is_oos(const char *label);

/* Writes label as a valid intent name into buf (cap >= 2): lower case,
 * camelCase split with '_', '/' and '.' become '.', other runs of
 * characters '_'; "x" if nothing is left. */
void eval_label_name(const char *label, char *buf, size_t cap);

struct eval_learn_stats {
    size_t intents, examples, oos, duplicates, conflicts;
};
/* Writes a rule file for the rows (text, label) of t to out: one intent per
 * label made of its example lines and a placeholder reply. oos rows are
 * skipped; a text repeated in one label is written once; a text under two
 * labels is dropped from both and reported on errs. name is quoted in the
 * header comment. Returns 0, KEFU_EIO or KEFU_ENOMEM. */
int eval_learn(const struct eval_tsv *t, const char *name, FILE *out, FILE *errs,
               struct eval_learn_stats *st);

/* Hits and totals of one label (or of all in-scope lines). */
struct eval_counts {
    size_t n, correct, automatic, auto_correct, top3;
};

/* One point of the threshold sweep. */
struct eval_point {
    double threshold, automation, precision, oos_handoff;
};

#define EVAL_SWEEP_POINTS 51

/* One bin of a reliability diagram: lines whose probability falls in it. */
struct eval_bin {
    size_t n, right; /* lines, and those whose best intent was right */
    double p;        /* their summed probability */
};
#define EVAL_CAL_BINS 10

/* What one evaluation found; release with eval_report_release(). */
struct eval_report {
    int faq; /* 1: article retrieval (labels are article ids) */
    size_t total, in_scope, oos, malformed;
    size_t oos_automatic, errors;
    size_t clarified, clarify_right; /* in-scope clarifying questions; those offering the right answer */
    size_t by_source[DECIDE_HANDOFF + 1];
    struct eval_counts all;  /* over in-scope lines */
    char **labels;           /* per label, sorted; owned */
    struct eval_counts *per; /* parallel to labels */
    size_t n_labels;
    struct eval_point sweep[EVAL_SWEEP_POINTS];
    size_t n_sweep; /* 0 unless a sweep was asked for */
    /* the classifier's threshold swept from 0 to 1 (classify_agree moving
     * with it); 0 points without a classifier or a sweep */
    struct eval_point sweep_clf[EVAL_SWEEP_POINTS];
    size_t n_sweep_clf;
    /* reliability of the classifier's best probability over in-scope lines */
    struct eval_bin cal[EVAL_CAL_BINS];
    size_t cal_n;        /* in-scope lines the classifier saw */
    double oos_p, oos_n; /* summed best probability over out-of-scope lines, and their count */
    double seconds;
};

/* Called after each line with the lines done and the total. */
typedef void (*eval_progress_fn)(void *ctx, size_t done, size_t total);

/* Routes every row (text, label) of t through decide_message() with ctx
 * and fills *out. With faq set, labels are article ids and ctx->kb must be
 * open. With sweep set, the example lead (faq: the article lead) is also
 * moved from 0 up and each point recorded. progress may be NULL. With
 * wrong set, every wrong automatic answer (and every answered oos line) is
 * printed there as "name:line: want L, got N (source confidence): text".
 * Returns 0 or KEFU_ENOMEM. */
int eval_run(struct decide_ctx *ctx, const struct eval_tsv *t, int faq, int sweep, eval_progress_fn progress,
             void *pctx, const char *name, FILE *wrong, struct eval_report *out);
void eval_report_release(struct eval_report *r);
/* The expected calibration error of r's bins: sum over bins of n/N * |accuracy - mean p|. */
double eval_ece(const struct eval_report *r);

/* Prints r as a table for people. */
void eval_report_print(FILE *f, const char *name, const struct eval_report *r);
/* Prints r as one JSON object on one line. Returns 0 or KEFU_ENOMEM. */
int eval_report_json(FILE *f, const char *name, const struct eval_report *r);

/* Writes the articles of a FAQ table (id, question, answer) as Markdown
 * files under dir/<locale>/, ready for kb_import(). Returns 0 or KEFU_EIO. */
int eval_faq_write(const struct eval_tsv *t, const char *dir);
/* Removes what eval_faq_write() wrote under dir, and dir. */
void eval_faq_remove(const struct eval_tsv *t, const char *dir);

#endif
