/* classify.h — a trained intent classifier with calibrated confidence.
 * Trained from every `example` line of a rule set with liblinear's
 * logistic regression over hashed tf-idf features (classify_feat.c); the
 * trained model is cached on disk under a key of the examples and the
 * settings, so an unchanged set is never retrained. A model is immutable
 * and refcounted like the rule set it was trained from. */
#ifndef KEFU_CLASSIFY_H
#define KEFU_CLASSIFY_H

#include <stddef.h>
#include <stdint.h>

#include "rules.h"

struct classify; /* opaque, immutable once built */

/* Feature and training settings; part of the cache key. */
struct classify_opts {
    int hash_bits;         /* features hash into 2^hash_bits buckets (12..24) */
    double c;              /* liblinear's C (inverse regularisation) */
    int min_df;            /* a feature kept must occur in this many examples (0: 1, or 2 for large sets) */
    double eps;            /* liblinear's stopping tolerance (0: 0.1, or 3 for large sets) */
    size_t neg_budget;     /* rows the classes of a large set visit per pass before each samples its
                              negatives (0: 500,000; docs/routing.md) */
    int threads;           /* training threads (0: the online processors, at most 4); not in the key:
                              any count gives the same model */
    const char *cache_dir; /* where models are cached; NULL: never cached */
};
/* Fills o with the documented defaults (docs/routing.md), cache_dir NULL. */
void classify_opts_default(struct classify_opts *o);

/* How a model came to be, for logs and tests. */
struct classify_info {
    int cached;          /* 1: loaded from the cache, 0: trained */
    int bad_file;        /* 1: a cached file was corrupt or truncated and was replaced */
    double train_ms;     /* training time (0 when cached) */
    size_t classes;      /* intents with examples */
    size_t features;     /* features kept */
    size_t bytes;        /* weights and tables in memory */
    double cal_a, cal_b; /* the calibration: p = sigmoid(cal_a logit(share) + cal_b) */
    char path[4096];     /* the cache file ("" without cache_dir) */
};

/* Builds the classifier for rs's examples: the cached model when its key
 * matches, else a trained one (written to the cache). *out is new (release
 * with classify_unref()), or NULL with 0 returned when fewer than two
 * intents have examples. info may be NULL. Returns 0, KEFU_ENOMEM or
 * KEFU_EINVAL (training refused); a bad cache file is retrained, not an error. */
int classify_build(const struct rules *rs, const struct classify_opts *o, struct classify **out,
                   struct classify_info *info);

/* Loads the model at path for rs and o; *out is new. Returns KEFU_ENOENT
 * (no file), KEFU_EINVAL (corrupt, truncated or made for other examples or
 * settings; one plain line of reason in why[0..cap)) or KEFU_ENOMEM. */
int classify_load(const char *path, const struct rules *rs, const struct classify_opts *o,
                  struct classify **out, char *why, size_t cap);

/* Takes one more reference (thread-safe); returns m. */
struct classify *classify_ref(struct classify *m);
/* Drops one reference; the last frees the model. NULL is fine. */
void classify_unref(struct classify *m);

#define CLASSIFY_MAX_CANDS 5

struct classify_cand {
    uint32_t intent; /* rules_intent() index */
    double p;        /* calibrated probability, 0..1: the share below through the model's calibration curve */
    double share;    /* the class's sigmoid / max(sum of all, 0.5), uncalibrated (the vetoes' measure) */
};
/* The classifier's view of one message: best first. */
struct classify_result {
    struct classify_cand cand[CLASSIFY_MAX_CANDS];
    size_t n;
    double none;    /* the share no class claims: 1 - the sum of the classes' sigmoids (0 when it passes 1) */
    double known;   /* share of the message's features (tf-idf mass) the examples have: 0..1 */
    unsigned terms; /* distinct words with a letter, and CJK characters, of the message */
};
/* Classifies text[0..len) (raw UTF-8); a message with no feature the examples
 * have gets no candidate (n 0, none 1). Thread-safe on a shared model.
 * Returns 0, KEFU_EUTF8 or KEFU_ENOMEM. */
int classify_predict(const struct classify *m, const char *text, size_t len, struct classify_result *out);

/* One feature of a message and its weight for an intent. */
struct classify_feature {
    char name[48]; /* e.g. "w:refund", "c3:efu", "z2:退款", "b:refund|status" */
    double weight; /* tf-idf value × the intent's weight */
};
/* Fills up to cap features of text[0..len) that weigh most (by |weight|)
 * for intent, heaviest first; the count in *n. Returns 0, KEFU_EUTF8,
 * KEFU_ENOMEM or KEFU_ENOENT (intent has no class in m). */
int classify_explain(const struct classify *m, const char *text, size_t len, uint32_t intent,
                     struct classify_feature *f, size_t cap, size_t *n);

/* Returns 1 if intent is one of m's classes (it has examples), else 0. */
int classify_has(const struct classify *m, uint32_t intent);

/* Numbers of a built model. */
void classify_stats(const struct classify *m, struct classify_info *info);

#endif
