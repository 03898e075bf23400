/* rules_build.h — what the parser (rules.c) hands the compiler
 * (rules_compile.c): the statements of every file, still as text with
 * positions, so that the compiler can report file:line:col too. */
#ifndef KEFU_RULES_BUILD_H
#define KEFU_RULES_BUILD_H

#include "rules_int.h"

/* A position in a source file, for diagnostics. */
struct bpos {
    const char *file;
    const char *src; /* the whole line */
    int line, col;   /* col in characters, 1-based */
};

enum bexpr_op { BX_TERM = 1, BX_REF, BX_AND, BX_OR, BX_NOT };
struct bexpr {
    uint8_t op;
    struct bexpr *a, *b;
    const char *text; /* BX_TERM: the term; BX_REF: the concept name */
    size_t len;
    struct bpos pos;
};

struct bconcept {
    const char *name;
    struct bpos pos;
    struct bexpr **terms; /* BX_TERM or BX_REF each */
    size_t n_terms, cap_terms;
    int used, state; /* state: 0 new, 1 expanding, 2 done */
    uint32_t node;   /* compiled OR of its terms */
};

struct bregex {
    const char *src; /* pattern without slashes, '\/' kept as written */
    size_t len;
    int caseless, extended;
    struct bpos pos; /* position of the opening slash */
};

struct bpat {
    uint8_t kind; /* enum pattern_kind */
    struct bexpr *expr;
    struct bregex re;
    const char *text; /* the pattern as written */
    struct bpos pos;
};

struct bslot {
    const char *name;
    struct bregex re; /* src NULL until a line gives the pattern */
    const char *ask;
    struct rules_reply *asks;
    size_t n_asks, cap_asks;
    struct bpos pos;
};

struct bintent {
    const char *name, *topic;
    struct bpos pos;
    int priority, has_priority, has_threshold, has_when;
    double threshold;
    const struct rules_cond *when;
    struct rules_example *examples;
    size_t n_examples, cap_examples;
    struct bpos *example_pos;
    size_t cap_example_pos;
    struct rules_reply *replies;
    size_t n_replies, cap_replies;
    struct bpos *reply_pos;
    size_t cap_reply_pos;
    struct bpos *reply_variant_pos; /* where each reply's ~NAME is (for replies that have one) */
    size_t cap_reply_variant_pos;
    struct rules_variant *variants;
    size_t n_variants, cap_variants;
    struct bpos *variant_pos;
    size_t cap_variant_pos;
    struct bslot *slots;
    size_t n_slots, cap_slots;
    struct rules_handoff *handoffs;
    size_t n_handoffs, cap_handoffs;
    struct bpat *pats;
    size_t n_pats, cap_pats;
    const char *action; /* action NAME */
    struct bpos action_pos;
    struct rules_on *ons; /* on COND -> ... */
    size_t n_ons, cap_ons;
    const char **on_text; /* each on line's condition as written, for its group */
    size_t cap_on_text;
    struct bpos *on_pos;
    size_t cap_on_pos;
    struct rules_set *sets;
    size_t n_sets, cap_sets;
};

struct builder {
    struct arena *keep; /* the rule set's arena: what survives compilation */
    struct arena tmp;   /* parse trees and scratch, dropped after compiling */
    struct rules_diag *diag;
    char **seen; /* real paths of loaded files */
    size_t n_seen, cap_seen;
    struct bconcept *concepts;
    size_t n_concepts, cap_concepts;
    struct bintent *intents;
    size_t n_intents, cap_intents;
    double default_threshold;
    struct bpos default_pos;
    const char *entry; /* single-file load: the file asked for (others are includes) */
    int single;
};

/* Grows *v (elements of size el, capacity *cap) inside a so that index n
 * fits; returns a pointer to element n, zeroed, or NULL. */
void *build_push(struct arena *a, void *v, size_t n, size_t *cap, size_t el);

/* Reports an error (or warning) at pos through b->diag. */
void build_error(struct builder *b, const struct bpos *pos, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void build_warning(struct builder *b, const struct bpos *pos, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Compiles everything parsed into b into a new rule set in *rs (whose arena
 * is b->keep). Returns 0 or KEFU_ESYNTAX/KEFU_ENOMEM with reasons in b->diag. */
int rules_compile(struct builder *b, struct rules *rs);

#endif
