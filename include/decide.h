/* decide.h — the decision policy for one message, without conversation
 * state: rules → examples → articles → clarify → fallback, with global and
 * per-intent thresholds (docs/routing.md). The dialog module adds the
 * state (misses, pending slots, handoff triggers) around it; kefu ask,
 * route and eval call it directly. */
#ifndef KEFU_DECIDE_H
#define KEFU_DECIDE_H

#include <stddef.h>

#include "classify.h"
#include "kb.h"
#include "router.h"
#include "rules.h"

enum decide_source {
    DECIDE_FALLBACK = 0, /* nothing confident: ask again, then hand off */
    DECIDE_RULE,         /* a rule pattern fired above its threshold */
    DECIDE_EXAMPLE,      /* the nearest examples agree on an intent */
    DECIDE_KB,           /* an article answers */
    DECIDE_CLARIFY,      /* two close candidates: "did you mean A or B?" */
    DECIDE_HANDOFF,      /* the chosen intent's handoff directive holds */
    /* A stage, never a source: the trained classifier (classify.h). Its
     * answers are learned from the example lines, so they carry the source
     * DECIDE_EXAMPLE; explanations name the stage. */
    DECIDE_CLASSIFIER,
};
/* Returns "fallback", "rule", "example", "kb", "clarify" or "handoff". */
const char *decide_source_name(int source);
/* The place of stage in the order stages are asked: rule, classifier, example, kb (1..4). */
int decide_stage_rank(int stage);

/* Thresholds; decide_policy_default() gives the documented defaults. */
struct decide_policy {
    double example_min; /* example vote confidence needed to answer */
    double kb_min;      /* article confidence needed to answer */
    double clarify_gap; /* top two within this margin (and both above clarify_min): clarify */
    double clarify_min;
    int use_examples, use_kb; /* stages on (1) or off (0) */
    int all_stages;           /* 1: run every stage even after one answered (explanations, sweeps) */
    double example_lead;      /* the best example vote must lead the next intent's by this much */
    double kb_lead;           /* the best article's score must lead the next one's by this share */
    int use_classifier;       /* the classifier stage on (1) or off (0) */
    double classify_min;      /* classifier probability needed to answer (or the intent's own threshold) */
    double veto_max;          /* a rule or vote whose intent the classifier gives less than this ... */
    double veto_known;        /* ... in a message it knows less than this share of ... */
    double veto_none;         /* ... or when it gives "none of these" at least this: not answered */
    double vote_veto_max; /* an example vote whose intent the classifier gives less than this: not answered */
    double classify_agree; /* classifier probability enough when the example vote names the same intent */
};
void decide_policy_default(struct decide_policy *p);

/* A candidate as one stage saw it, for explanations and clarifications. */
struct decide_cand {
    int stage;         /* DECIDE_RULE, DECIDE_CLASSIFIER, DECIDE_EXAMPLE or DECIDE_KB */
    long intent;       /* rules_intent() index, or -1 for an article */
    const char *name;  /* intent name (the rule set's) or article id (the decision's hit) */
    const char *title; /* article title (the decision's hit; NULL for intents) */
    double confidence;
    double threshold;
    const char *example; /* for an example vote: the nearest example; borrowed from the rule set */
};

#define DECIDE_MAX_CANDS 20

/* The outcome for one message. Its article hits (kb, article) are its own
 * text, whatever the kb is asked next (a reply's {kb:ID} lookup, another
 * search); intent names, replies and examples are borrowed from the rule
 * set; route.norm from the router scratch until its next router_match().
 * Candidates' names and titles of articles point into the decision's own
 * hits: a copy keeps them only while the original lives (decide_apply() on
 * the copy points them at its own). */
struct decision {
    int source;                                /* enum decide_source */
    long intent;                               /* chosen intent, or -1 */
    double confidence;                         /* of the chosen answer (or the best candidate) */
    const struct rules_handoff *handoff;       /* when source is DECIDE_HANDOFF */
    const char *reply;                         /* reply template for the locale, NULL if none */
    struct kb_hit article;                     /* when source is DECIDE_KB */
    struct decide_cand clarify[2];             /* when source is DECIDE_CLARIFY */
    struct decide_cand cand[DECIDE_MAX_CANDS]; /* every stage's candidates, for --explain */
    size_t n_cand;
    struct router_result route; /* the router's own result */
    struct kb_result kb;        /* the article search (n = 0 if not run) */
    struct kb_votes votes;      /* the example vote (n = 0 if not run) */
    struct classify_result cls; /* the classifier (n = 0 if not run) */
    int stage;     /* the stage that chose the answer (DECIDE_RULE, _CLASSIFIER, _EXAMPLE, _KB), 0 if none */
    int vetoed;    /* 1 if the classifier stopped a rule or vote that would have answered */
    int bare_link; /* 1 if the message is one link or address and nothing else */
};

/* The intent d's stages point to together when none answered: the best
 * classifier probability plus half the example vote's confidence (the
 * classifier alone, or the vote alone, when only one ran); -1 when neither
 * has a candidate. Handoffs and kefu eval's top-1 use it. */
long decide_guess(const struct decision *d);

/* Per-thread working set: the router scratch and, when given, the kb and
 * examples connections and the classifier trained from rs (each may be
 * NULL: that stage is skipped). */
struct decide_ctx {
    const struct rules *rs;
    struct router_scratch *sc;
    struct kb_examples *ex;
    struct kb *kb;
    const struct classify *clf;
    struct decide_policy policy;
};

/* Decides text[0..len) for attrs (locale, channel, tier, misses, ...).
 * Returns 0, KEFU_EUTF8 or KEFU_ENOMEM. */
int decide_message(struct decide_ctx *c, const char *text, size_t len, const struct attrs *attrs,
                   struct decision *out);

/* Applies c->policy again to the stage results already in d (route, votes,
 * kb from decide_message()), rewriting the outcome fields; for threshold
 * sweeps. Reads no text and calls no stage. */
void decide_apply(const struct decide_ctx *c, const struct attrs *attrs, struct decision *d);

/* How far d's best example vote leads the next intent's (0 without votes). */
double decide_example_lead(const struct decision *d);
/* The share by which d's best article score leads the next (1 when alone, 0 without hits). */
double decide_kb_lead(const struct decision *d);

/* A customer-facing label for candidate c (a clarify quick reply): the
 * article title, else the nearest example (for an example vote) or the
 * intent's first example in the locale's script, else its name; borrowed
 * from rs or from the decision that holds c. */
const char *decide_label(const struct rules *rs, const struct decide_cand *c, const char *locale);

#endif
