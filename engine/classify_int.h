/* classify_int.h — what the classifier's files share: the feature
 * extractor (classify_feat.c) and the model layout (classify.c). */
#ifndef KEFU_CLASSIFY_INT_H
#define KEFU_CLASSIFY_INT_H

#include <stddef.h>
#include <stdint.h>

#include "text.h"

/* Receives one feature name (not NUL-terminated) of a message; slot is 1
 * for the features of a slot-shaped word (classify_slot_word()). */
typedef void (*classify_emit_fn)(void *ctx, const char *name, size_t len, int slot);

/* Buffers one extraction needs; the caller holds them. */
struct classify_scratch {
    struct text_buf norm;
    struct text_toks toks;
};
void classify_scratch_init(struct classify_scratch *s);
void classify_scratch_release(struct classify_scratch *s);

/* 1 if the word at norm[off..off+len) is slot-shaped: it holds a digit (an
 * order number, an amount, a phone number, a date) or belongs to an e-mail
 * address (its run of non-space characters holds '@'). Such words are what
 * the rules' slots capture; an unknown one says nothing about the intent. */
int classify_slot_word(const char *norm, size_t norm_len, size_t off, size_t len);

/* Calls emit for every feature of text[0..len) in the router's normal form:
 * stemmed words ("w:"), word bigrams ("b:"), character 3-5-grams of each
 * word with its boundaries ("c:"), CJK character 1-3-grams ("z:").
 * Returns 0, KEFU_EUTF8 or KEFU_ENOMEM. */
int classify_features(struct classify_scratch *s, const char *text, size_t len, classify_emit_fn emit,
                      void *ctx);

/* The bucket of feature name[0..len) among 2^bits (FNV-1a, folded). */
uint32_t classify_bucket(const char *name, size_t len, int bits);

/* FNV-1a 64 over s[0..n), continuing from h (start with CLASSIFY_FNV_INIT). */
#define CLASSIFY_FNV_INIT 0xcbf29ce484222325ULL
uint64_t classify_fnv(uint64_t h, const void *s, size_t n);

#endif

/* ---- the model (classify.c) ---- */

#include <stdatomic.h>

#include "classify.h"

#define CLASSIFY_MAGIC   "KEFUCLF\n"
#define CLASSIFY_VERSION 5

/* Example sets of this many lines or more are "large": features seen in
 * one example only are dropped and training stops earlier (the model's
 * size and training time; docs/routing.md). */
#define CLASSIFY_LARGE 2000
/* The min_df and eps o gives a set of rows examples. */
int classify_min_df(const struct classify_opts *o, size_t rows);
double classify_eps(const struct classify_opts *o, size_t rows);
/* The row visits per pass beyond which a large set's classes sample their negatives. */
size_t classify_neg_budget(const struct classify_opts *o);

/* The least divisor of the classes' sigmoids (classify_predict()). */
#define CLASSIFY_NORM_FLOOR 0.5

/* The file's first bytes; the body and a checksum (FNV-1a 64 of all
 * before it) follow. Native byte order: a model is a cache, not an export. */
struct classify_header {
    char magic[8];
    uint32_t version, bits, n_class, n_feat;
    uint32_t rows, pad; /* training examples (for the idf of unseen features) */
    uint64_t key;
    float cal_a, cal_b; /* the calibration: each class's sigmoid is of cal_a × its score + cal_b */
    uint32_t pad2[2];
};

struct classify {
    atomic_int refs;
    int bits;
    uint32_t rows; /* training examples */
    int slots;     /* 1 if the rule set has slots: slot-shaped words neither dilute nor count as unknown */
    float cal_a, cal_b; /* the calibration (classify_train.c), also in the header */
    size_t n_class, n_feat;
    uint32_t *cls_intent; /* class → rules_intent() index */
    float *scale, *bias;  /* per class: weight scale (int16 32767 = scale) and bias */
    uint32_t *bucket;     /* kept features' buckets, ascending */
    float *idf;           /* per kept feature */
    int16_t *w;           /* [feature × class] */
    void *blob;           /* header + body + checksum, owned; the arrays point into it */
    size_t size;
    size_t mapped; /* a loaded model: blob is a read-only mapping of this size (else malloc'd) */
};

/* Allocates an empty model of that shape; *out is new. */
int classify_alloc(size_t n_class, size_t n_feat, int bits, uint64_t key, uint32_t rows,
                   struct classify **out);
/* Writes m to path (atomically: a temporary file, then rename). */
int classify_save(const struct classify *m, const char *path);
/* The cache key of rs's examples and o's settings. */
uint64_t classify_key(const struct rules *rs, const struct classify_opts *o);
/* The number of intents with examples (the classes). */
size_t classify_classes(const struct rules *rs);
/* Sets m's calibration (header included). */
void classify_set_calibration(struct classify *m, double a, double b);
/* 1 if some intent of rs has a slot (what classify_vec treats as slot-shaped words then). */
int classify_rules_slots(const struct rules *rs);
/* Index of bucket among m's kept features, or -1. */
int classify_find(const struct classify *m, uint32_t bucket);

/* A message as the model sees it: kept features and their L2-normalised tf-idf. */
struct classify_vec {
    uint32_t *f; /* ascending feature indexes; owned */
    double *x;
    size_t n;
    int any;        /* 1 if the message had any feature, known or not */
    int only_slots; /* 1 if every feature came from slot-shaped words (a bare number or order id) */
    double known;   /* share of the squared norm on known features, 0..1 */
    unsigned terms; /* distinct words with a letter, and CJK characters, of the message */
};
/* Fills v (new arrays; release with classify_vec_release()). */
int classify_vector(const struct classify *m, const char *text, size_t len, struct classify_vec *v);
void classify_vec_release(struct classify_vec *v);

/* Trains a model for rs with o (classify_train.c); *out is new. */
int classify_train(const struct rules *rs, const struct classify_opts *o, struct classify **out);
