/* router.h — choose the intents for one message.
 * A literal prefilter turns the message into the few patterns that can
 * match; only those are evaluated. The rule set is read-only here; each
 * thread brings its own scratch, so there is no lock on this path. */
#ifndef KEFU_ROUTER_H
#define KEFU_ROUTER_H

#include <stddef.h>
#include <stdint.h>

#include "rules.h"

struct router_scratch; /* per-thread buffers and PCRE2 match data */

/* Returns a new scratch (free with router_scratch_free()), NULL on OOM. */
struct router_scratch *router_scratch_create(void);
void router_scratch_free(struct router_scratch *sc); /* NULL is fine */

#define ROUTER_MAX_CANDS 8
#define ROUTER_MAX_HITS  6

/* A piece of the message that made a pattern true. */
struct router_hit {
    const char *what;    /* the literal or regex as compiled; borrowed from the rule set */
    uint32_t start, end; /* byte range in router_result.norm */
};

struct router_cand {
    uint32_t intent;     /* index for rules_intent() */
    double confidence;   /* 0..1, see docs/rules.md "Scoring" */
    double rank;         /* confidence + priority / 100 */
    int regex;           /* 1 if the best pattern is a regex */
    const char *pattern; /* the best pattern as written; borrowed from the rule set */
    const char *file;
    int line;
    struct router_hit hits[ROUTER_MAX_HITS];
    size_t n_hits;
};

/* What the router decided for one message; borrowed pointers stay valid
 * until the scratch's next call and while the rule set lives. */
struct router_result {
    struct router_cand cand[ROUTER_MAX_CANDS]; /* best first */
    size_t n;
    const char *norm; /* the normalized (folded) message; borrowed from the scratch */
    size_t norm_len;
    uint32_t skipped[ROUTER_MAX_CANDS]; /* intents that fired but whose 'when' failed */
    size_t n_skipped;
    size_t literals_found; /* prefilter: literals present in the message */
    size_t patterns_tried; /* patterns evaluated */
    size_t limit_hits;     /* regexes stopped by the match or depth limit */
};

/* How to treat conditions; NULL options mean: evaluate every 'when'. */
struct router_opts {
    long assume; /* index of an intent whose 'when' is taken as true, or -1 (kefu check) */
};

/* Routes text[0..len) (raw UTF-8) against rs with conversation attributes
 * attrs (may be NULL) and options opts (may be NULL). Returns 0, KEFU_EUTF8
 * or KEFU_ENOMEM. */
int router_match(const struct rules *rs, struct router_scratch *sc, const char *text, size_t len,
                 const struct attrs *attrs, const struct router_opts *opts, struct router_result *out);

struct router_slot {
    const char *name;  /* borrowed from the rule set */
    const char *value; /* borrowed from the scratch until its next call */
};

/* Extracts the slots of intent from text[0..len) (the raw message); fills
 * up to cap entries, the count in *n. Values are borrowed from the scratch
 * until its next call. Returns 0, KEFU_EINVAL, KEFU_EUTF8 or KEFU_ENOMEM. */
int router_slots(const struct rules *rs, struct router_scratch *sc, uint32_t intent, const char *text,
                 size_t len, struct router_slot *out, size_t cap, size_t *n);

#endif
