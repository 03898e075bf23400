/* rules.h — the rule language: load and compile rule files into an
 * immutable, refcounted rule set, with errors that carry file:line:col.
 * The router (router.h) matches messages against a compiled set; the
 * dialog layer reads intents, replies, slots and handoffs from it. */
#ifndef KEFU_RULES_H
#define KEFU_RULES_H

#include <stddef.h>
#include <stdio.h>

struct rules;      /* opaque, immutable once compiled */
struct rules_cond; /* opaque condition tree */

enum rules_severity { RULES_ERROR = 0, RULES_WARNING = 1 };

/* One diagnostic: where, what, and the source line it points into. */
struct rules_msg {
    char *file;    /* owned by the diag */
    int line, col; /* 1-based; col counts characters */
    int severity;  /* enum rules_severity */
    char *text;    /* lowercase message, no full stop */
    char *src;     /* the source line, without its newline; may be NULL */
};

/* Diagnostics collected while loading, compiling and checking. */
struct rules_diag {
    struct rules_msg *v;
    size_t n, cap;
    int errors, warnings;
    int jit_check; /* set before loading: JIT-compile a throwaway copy of every regex
                      and warn where the JIT refuses one (kefu check --strict) */
};
/* Prepares an empty diagnostics list. */
void rules_diag_init(struct rules_diag *d);
/* Frees every diagnostic; d is empty again. */
void rules_diag_release(struct rules_diag *d);
/* Records a diagnostic (text is copied; src may be NULL). */
void rules_diag_add(struct rules_diag *d, int severity, const char *file, int line, int col, const char *src,
                    const char *fmt, ...) __attribute__((format(printf, 7, 8)));
/* Prints every diagnostic as "file:line:col: [warning: ]text", the source line and a caret. */
void rules_diag_print(FILE *f, const struct rules_diag *d);

/* Loads every *.rules file in dir (name order) and their includes, and
 * compiles them. On success *out is new (release with rules_unref()).
 * On failure returns KEFU_ESYNTAX or KEFU_EIO with the reasons in diag. */
int rules_load_dir(const char *dir, struct rules_diag *diag, struct rules **out);
/* Like rules_load_dir() for one file (and its includes). */
int rules_load_file(const char *path, struct rules_diag *diag, struct rules **out);
/* Compiles rule text held in memory; name is used in diagnostics, includes
 * are resolved relative to the current directory. *out as above. */
int rules_load_string(const char *name, const char *src, struct rules_diag *diag, struct rules **out);

/* Takes one more reference to rs (thread-safe); returns rs. */
struct rules *rules_ref(struct rules *rs);
/* Drops one reference; the last frees the set. NULL is fine. */
void rules_unref(struct rules *rs);

/* Regexes run in PCRE2's interpreter until they have been evaluated this
 * many times (or hit a match limit); then the router JIT-compiles them.
 * A compile costs about 30 us and 2 KiB; a typical short pattern runs
 * about 0.2 us faster JIT-compiled, so CPU alone would wait longer, but a
 * small count keeps hot patterns out of the interpreter right after a
 * reload. A build can set another value (-DRULES_JIT_AFTER=N, N >= 1). */
#ifndef RULES_JIT_AFTER
#define RULES_JIT_AFTER 8
#endif

/* How far the lazy JIT has got in one rule set. */
struct rules_jit_stats {
    size_t regexes;   /* regex patterns and slot patterns */
    size_t compiled;  /* of which JIT-compiled so far */
    size_t failed;    /* of which the JIT refused (they stay interpreted) */
    size_t jit_bytes; /* size of the JIT code, as PCRE2 reports it */
};
/* Fills st for rs (thread-safe, a snapshot while matching goes on). */
void rules_jit_stats(const struct rules *rs, struct rules_jit_stats *st);

/* A conversation attribute seen by conditions (channel, locale, tier, ...). */
struct attr {
    const char *key, *value;
};
struct attrs {
    const struct attr *v;
    size_t n;
};
/* Returns the value of key in a, or "" when absent; borrowed from a. */
const char *attrs_get(const struct attrs *a, const char *key);

enum rules_priority { RULES_PRIO_LOW = 0, RULES_PRIO_NORMAL = 1, RULES_PRIO_HIGH = 2, RULES_PRIO_URGENT = 3 };

struct rules_reply {
    const char *locale; /* "" for the default reply */
    const char *text;
    const char *variant; /* the A/B variant it belongs to (reply ~NAME), NULL for every one */
};
/* An arm of an intent's A/B test (variant NAME WEIGHT). */
struct rules_variant {
    const char *name;
    int weight; /* 1..1000, relative to the intent's other variants */
};
struct rules_slot {
    const char *name;
    const char *ask;                /* default question, may be NULL */
    const struct rules_reply *asks; /* per-locale questions */
    size_t n_asks;
    int index; /* index of the slot pattern inside the rule set */
};
struct rules_handoff {
    const struct rules_cond *cond; /* NULL: always */
    const char *queue;
    int priority; /* enum rules_priority */
};
struct rules_example {
    const char *text;
    const char *file;
    int line, col;
};

/* One `on COND -> reply TEXT` or `on COND -> handoff ...` line of an intent
 * with an action: what to do when the action's result satisfies COND (or,
 * with failed set, when the action failed). Lines whose conditions are
 * written alike share a group: the first group that holds answers. */
struct rules_on {
    const struct rules_cond *cond;       /* over the result's fields and the attributes; NULL with failed */
    int failed;                          /* on failed: the call timed out, failed or answered nonsense */
    int group;                           /* lines with the same condition text share a group number */
    const struct rules_reply *reply;     /* the reply of this line, or NULL */
    const struct rules_handoff *handoff; /* the handoff of this line, or NULL */
};
/* A `set NAME = FIELD` line: after the action, the result's FIELD becomes
 * slot NAME (or attribute NAME when it starts with attr.). */
struct rules_set {
    const char *name, *field;
};

/* Everything the rule files say about one intent; borrowed from the rule set. */
struct rules_intent {
    const char *name, *topic, *file;
    int line;
    int priority;                  /* -100..100 */
    double threshold;              /* effective threshold (own or global) */
    const struct rules_cond *when; /* NULL: always */
    const struct rules_example *examples;
    size_t n_examples;
    const struct rules_reply *replies;
    size_t n_replies;
    const struct rules_variant *variants; /* A/B arms, in the order written; n_variants 0: none */
    size_t n_variants;
    const struct rules_slot *slots;
    size_t n_slots;
    const struct rules_handoff *handoffs;
    size_t n_handoffs;
    size_t n_patterns;
    const char *action;     /* the action called once the slots are filled, or NULL */
    const char *action_src; /* the action's source line, for diagnostics */
    int action_line, action_col;
    const struct rules_on *ons;
    size_t n_ons;
    const struct rules_set *sets;
    size_t n_sets;
};

/* Returns the number of intents in rs. */
size_t rules_count(const struct rules *rs);
/* Returns intent i (0 <= i < rules_count()); borrowed from rs. */
const struct rules_intent *rules_intent(const struct rules *rs, size_t i);
/* Returns the index of the intent called name, or -1. */
long rules_find(const struct rules *rs, const char *name);
/* Returns the global confidence threshold. */
double rules_default_threshold(const struct rules *rs);
/* Returns 1 if c holds for a (NULL holds), else 0. */
int rules_cond_eval(const struct rules_cond *c, const struct attrs *a);
/* Fills v (up to cap entries, count in *n) with attribute values under
 * which c holds, found by simple reasoning (= takes the value, in takes the
 * first, != keeps the empty string, ...). Returns 1 if c holds for them,
 * else 0. Values are borrowed from the rule set or static. */
int rules_cond_witness(const struct rules_cond *c, struct attr *v, size_t cap, size_t *n);
/* Picks the reply for locale (exact, then its language, then default),
 * variant number turn modulo the variants; borrowed, NULL if none. */
const char *rules_reply_pick(const struct rules_reply *v, size_t n, const char *locale, unsigned turn);
/* The same among the replies of variant (and those of every variant); variant NULL: all. */
const char *rules_reply_pick_variant(const struct rules_reply *v, size_t n, const char *locale,
                                     const char *variant, unsigned turn);
/* The variant of it that the key (a conversation id) falls on, by weight, stably: the same key
 * always gets the same variant while the weights stay; NULL when it has none. Borrowed. */
const struct rules_variant *rules_variant_pick(const struct rules_intent *it, const char *key);
/* The variant of it called name, or NULL (borrowed). */
const struct rules_variant *rules_variant_find(const struct rules_intent *it, const char *name);
/* Gives the text for placeholder name (the part between the braces) of a
 * reply template; the result is borrowed until the next call, NULL = empty. */
typedef const char *(*rules_fill_fn)(void *ctx, const char *name);
/* Expands reply template tpl into buf (cap bytes, always NUL-terminated):
 * every {name} becomes fill(ctx, name), the rest is copied; a '{' without
 * a '}' is kept as text. Returns the length written. */
size_t rules_render(const char *tpl, rules_fill_fn fill, void *ctx, char *buf, size_t cap);
/* Returns the first handoff of it whose condition holds for a, or NULL. */
const struct rules_handoff *rules_handoff_for(const struct rules_intent *it, const struct attrs *a);
/* Reports, as errors at the action line, every intent action that known(ctx, name)
 * says 0 for (an action missing from the server's configuration). Returns the count. */
int rules_check_actions(const struct rules *rs, int (*known)(void *ctx, const char *name), void *ctx,
                        struct rules_diag *diag);
/* The `on` group that answers: the first line whose condition holds for a (failed:
 * the first `on failed` line); *lines (may be NULL) gets its first line index. Returns
 * the group, or -1 when no line applies. */
int rules_on_pick(const struct rules_intent *it, int failed, const struct attrs *a, size_t *first);
/* Returns the name of a priority ("low", "normal", "high", "urgent"). */
const char *rules_priority_name(int priority);

#endif
