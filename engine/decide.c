/* decide.c — the decision for one message, without conversation state.
 * Stages run in order and the first confident one answers: rules (a
 * pattern above its intent's threshold), then the trained classifier (a
 * calibrated probability above its threshold), then the example vote,
 * then articles. The classifier also vetoes: a rule or vote for an intent
 * it gives almost no chance, in a message it mostly does not know (a
 * keyword inside noise or another domain's question), does not answer;
 * when none is confident, two close candidates become a clarifying
 * question, and otherwise the message falls back. Every candidate a stage
 * saw is kept in the decision, so kefu ask --explain can say why each was
 * or was not taken (docs/routing.md). The dialog module wraps this with
 * conversation state; kefu ask, route and eval call it directly. */
#include "decide.h"

#include "kefu.h"
#include "text.h"

#include <string.h>

const char *decide_source_name(int source)
{
    switch (source) {
    case DECIDE_RULE: return "rule";
    case DECIDE_EXAMPLE: return "example";
    case DECIDE_KB: return "kb";
    case DECIDE_CLARIFY: return "clarify";
    case DECIDE_HANDOFF: return "handoff";
    default: return "fallback";
    }
}

int decide_stage_rank(int stage)
{
    switch (stage) {
    case DECIDE_RULE: return 1;
    case DECIDE_CLASSIFIER: return 2;
    case DECIDE_EXAMPLE: return 3;
    case DECIDE_KB: return 4;
    default: return 0;
    }
}

void decide_policy_default(struct decide_policy *p)
{
    p->example_min = 0.20;
    p->example_lead = 0.13;
    p->kb_min = 0.20;
    p->kb_lead = 0.34;
    p->clarify_gap = 0.13;
    p->clarify_min = 0.30;
    p->use_examples = 1;
    p->use_kb = 1;
    p->all_stages = 0;
    p->use_classifier = 1;
    p->classify_min = 0.92;
    p->veto_max = 0.15;
    p->veto_known = 0.35;
    p->classify_agree = 0.50;
    p->veto_none = 0.50;
    p->vote_veto_max = 0.10;
}

/* Records a candidate for the explanation; full lists keep the first ones. */
static struct decide_cand *add_cand(struct decision *d, int stage, long intent, const char *name,
                                    const char *title, double confidence, double threshold)
{
    if (d->n_cand == DECIDE_MAX_CANDS)
        return NULL;
    d->cand[d->n_cand] = (struct decide_cand){stage, intent, name, title, confidence, threshold, NULL};
    return &d->cand[d->n_cand++];
}

/* Answers with intent i from stage: its reply for the locale, or its
 * handoff when one holds for attrs. */
static void choose_intent(const struct rules *rs, struct decision *d, int stage, long i, double confidence,
                          const struct attrs *attrs)
{
    const struct rules_intent *it = rules_intent(rs, (size_t)i);
    d->source = d->stage = stage;
    d->intent = i;
    d->confidence = confidence;
    d->reply = rules_reply_pick(it->replies, it->n_replies, attrs_get(attrs, "locale"), 0);
    if ((d->handoff = rules_handoff_for(it, attrs)))
        d->source = DECIDE_HANDOFF;
}

/* 1 if the classifier ran on d. */
static int classified(const struct decide_ctx *c)
{
    return c->clf && c->policy.use_classifier;
}

/* The classifier's calibrated probability for intent i, or with share its
 * uncalibrated share of the classes' mass (0 when not among its best). */
static double class_p(const struct decision *d, unsigned i, int share)
{
    for (size_t k = 0; k < d->cls.n; k++)
        if (d->cls.cand[k].intent == i)
            return share ? d->cls.cand[k].share : d->cls.cand[k].p;
    return 0;
}

/* 1 if the classifier says "none of these" to a rule's answer for intent
 * i: it knows i and gives it less than veto_max, in a message it knows
 * less than veto_known of (a keyword inside noise), or while its "none"
 * reaches veto_none and its best guess is another intent (a keyword inside
 * another domain's question). Intents without examples, and a rule that
 * hands off (a person, not an automatic answer), are never vetoed. */
static int vetoed(const struct decide_ctx *c, const struct decision *d, unsigned i, const struct attrs *attrs)
{
    if (!classified(c) || !classify_has(c->clf, i) || class_p(d, i, 1) >= c->policy.veto_max)
        return 0;
    if (rules_handoff_for(rules_intent(c->rs, i), attrs))
        return 0; /* a handoff is no automatic answer: never stopped */
    return d->cls.known < c->policy.veto_known ||
           (d->cls.none >= c->policy.veto_none && (!d->cls.n || d->cls.cand[0].intent != i));
}

/* 1 if the classifier disowns an example vote for intent i: it gives i
 * less than vote_veto_max, whatever share of the message it knows (the
 * vote rests on one nearest line, the classifier on all of them), or, for
 * a message of one word or character (one word shared with one example
 * line is no evidence), less than classify_agree. */
static int vote_vetoed(const struct decide_ctx *c, const struct decision *d, unsigned i)
{
    if (!classified(c) || !classify_has(c->clf, i))
        return 0;
    return class_p(d, i, 1) < c->policy.vote_veto_max ||
           (d->cls.terms < 2 && class_p(d, i, 0) < c->policy.classify_agree);
}

/* 1 if text[0..len) is one link or address and nothing else: no question. */
static int bare_link(const char *text, size_t len)
{
    while (len && (*text == ' ' || *text == '\t'))
        text++, len--;
    while (len && (text[len - 1] == ' ' || text[len - 1] == '\t' || text[len - 1] == '\n'))
        len--;
    if (!len || memchr(text, ' ', len))
        return 0;
    const char *colon = memchr(text, ':', len);
    return (colon && colon + 1 < text + len && (colon[1] == '/' || strncmp(text, "mailto:", 7) == 0)) ||
           (len > 4 && strncmp(text, "www.", 4) == 0);
}

/* 1 if an article must not answer: a bare link, or a message of one term
 * (a number, a word like "test") the classifier knows less than veto_known
 * of; such noise finds some article. Articles hold words the examples
 * lack, so a longer question is never vetoed for being unknown. */
static int kb_vetoed(const struct decide_ctx *c, const struct decision *d)
{
    if (d->bare_link || (classified(c) && d->cls.terms < 2 && d->cls.known < c->policy.veto_known))
        return 1;
    /* an article that is also an intent with examples (kefu learn names
     * intents after FAQs) is disowned as that intent's vote would be */
    long i = d->kb.n ? rules_find(c->rs, d->kb.hit[0].id) : -1;
    return i >= 0 && vote_vetoed(c, d, (unsigned)i);
}

/* 1 if the router's top candidate reaches its intent's threshold. */
static int rule_fires(const struct decide_ctx *c, const struct decision *d)
{
    const struct router_result *r = &d->route;
    return r->n && r->cand[0].confidence >= rules_intent(c->rs, r->cand[0].intent)->threshold;
}

/* 1 if the rule that fires is not vetoed. */
static int rule_answers(const struct decide_ctx *c, const struct decision *d, const struct attrs *attrs)
{
    return rule_fires(c, d) && !vetoed(c, d, d->route.cand[0].intent, attrs);
}

/* The probability the classifier needs for intent i: classify_min, or the
 * intent's own threshold when it sets a higher one. */
static double classify_threshold(const struct decide_ctx *c, unsigned i)
{
    double own = rules_intent(c->rs, i)->threshold;
    int set = own != rules_default_threshold(c->rs);
    return set && own > c->policy.classify_min ? own : c->policy.classify_min;
}

/* The confidence an example vote needs for intent i: the global
 * example_min, or the intent's own threshold when it sets a higher one. */
static double example_threshold(const struct decide_ctx *c, unsigned i)
{
    double own = rules_intent(c->rs, i)->threshold;
    int set = own != rules_default_threshold(c->rs);
    return set && own > c->policy.example_min ? own : c->policy.example_min;
}

/* How far the best example vote leads the next intent's (its own
 * confidence when it is alone). */
static double vote_lead(const struct kb_votes *v)
{
    return v->n == 0 ? 0 : v->v[0].confidence - (v->n > 1 ? v->v[1].confidence : 0);
}

double decide_example_lead(const struct decision *d)
{
    return vote_lead(&d->votes);
}

/* 1 if the classifier's best intent reaches its threshold, or, when the
 * example vote's best is the same intent (two stages that agree), the
 * agreement threshold scaled as the intent's own threshold scales. */
static int classifier_answers(const struct decide_ctx *c, const struct decision *d)
{
    if (!classified(c) || !d->cls.n)
        return 0;
    const struct classify_cand *top = &d->cls.cand[0];
    double need = classify_threshold(c, top->intent);
    if (top->p >= need)
        return 1;
    const struct kb_votes *v = &d->votes;
    double agree =
        c->policy.classify_min > 0 ? need * c->policy.classify_agree / c->policy.classify_min : need;
    return c->policy.use_examples && v->n && v->v[0].intent == top->intent &&
           v->v[0].confidence >= example_threshold(c, top->intent) && top->p >= agree;
}

/* 1 if the best example vote reaches its threshold and leads the next by
 * example_lead (whatever the classifier says of it). */
static int vote_qualifies(const struct decide_ctx *c, const struct decision *d)
{
    const struct kb_votes *v = &d->votes;
    return c->policy.use_examples && v->n && v->v[0].confidence >= example_threshold(c, v->v[0].intent) &&
           vote_lead(v) >= c->policy.example_lead;
}

/* 1 if the best example vote qualifies and the classifier does not disown it. */
static int example_answers(const struct decide_ctx *c, const struct decision *d)
{
    return vote_qualifies(c, d) && !vote_vetoed(c, d, d->votes.v[0].intent);
}

/* The share by which the best article's score leads the next one's. */
static double hit_lead(const struct kb_result *r)
{
    if (r->n == 0 || r->hit[0].score <= 0)
        return 0;
    return r->n == 1 ? 1 : 1 - r->hit[1].score / r->hit[0].score;
}

double decide_kb_lead(const struct decision *d)
{
    return hit_lead(&d->kb);
}

/* 1 if the best article reaches kb_min and leads the next by kb_lead. */
static int kb_answers(const struct decide_ctx *c, const struct decision *d)
{
    return c->policy.use_kb && d->kb.n && d->kb.confidence >= c->policy.kb_min &&
           hit_lead(&d->kb) >= c->policy.kb_lead && !kb_vetoed(c, d);
}

/* The confidence of article hit k: the search's confidence for the first,
 * scaled by relative BM25 score for the rest. */
static double kb_hit_confidence(const struct kb_result *r, size_t k)
{
    if (k == 0 || r->hit[0].score <= 0)
        return k == 0 ? r->confidence : 0;
    return r->confidence * r->hit[k].score / r->hit[0].score;
}

static void collect_rules(const struct decide_ctx *c, struct decision *d)
{
    const struct router_result *r = &d->route;
    for (size_t k = 0; k < r->n; k++) {
        const struct rules_intent *it = rules_intent(c->rs, r->cand[k].intent);
        add_cand(d, DECIDE_RULE, (long)r->cand[k].intent, it->name, NULL, r->cand[k].confidence,
                 it->threshold);
    }
}

static void collect_classifier(const struct decide_ctx *c, struct decision *d)
{
    for (size_t k = 0; k < d->cls.n && classified(c); k++) {
        unsigned i = d->cls.cand[k].intent;
        add_cand(d, DECIDE_CLASSIFIER, (long)i, rules_intent(c->rs, i)->name, NULL, d->cls.cand[k].p,
                 classify_threshold(c, i));
    }
}

static void collect_examples(const struct decide_ctx *c, struct decision *d)
{
    for (size_t k = 0; k < d->votes.n && c->policy.use_examples; k++) {
        const struct kb_vote *v = &d->votes.v[k];
        struct decide_cand *x =
            add_cand(d, DECIDE_EXAMPLE, (long)v->intent, rules_intent(c->rs, v->intent)->name, NULL,
                     v->confidence, example_threshold(c, v->intent));
        if (x)
            x->example = v->example;
    }
}

static void collect_kb(const struct decide_ctx *c, struct decision *d)
{
    for (size_t k = 0; k < d->kb.n && c->policy.use_kb; k++)
        add_cand(d, DECIDE_KB, -1, d->kb.hit[k].id, d->kb.hit[k].title, kb_hit_confidence(&d->kb, k),
                 c->policy.kb_min);
}

/* 1 if candidates a and b lead to the same answer (intent or article). */
static int same_target(const struct decide_cand *a, const struct decide_cand *b)
{
    if (a->intent >= 0 || b->intent >= 0)
        return a->intent == b->intent;
    return a->name && b->name && strcmp(a->name, b->name) == 0;
}

/* Finds the best two candidates that lead to different answers; returns
 * how many were found (0..2) with their indexes in best[]. */
static int best_two(const struct decision *d, size_t best[2])
{
    int n = 0;
    for (size_t k = 0; k < d->n_cand; k++) {
        const struct decide_cand *x = &d->cand[k];
        if (n > 0 && same_target(x, &d->cand[best[0]])) {
            if (x->confidence > d->cand[best[0]].confidence)
                best[0] = k;
            continue;
        }
        if (n > 1 && same_target(x, &d->cand[best[1]])) {
            if (x->confidence > d->cand[best[1]].confidence)
                best[1] = k;
        } else if (n < 2) {
            best[n++] = k;
        } else if (x->confidence > d->cand[best[1]].confidence) {
            best[1] = k;
        }
        if (n == 2 && d->cand[best[1]].confidence > d->cand[best[0]].confidence) {
            size_t t = best[0];
            best[0] = best[1];
            best[1] = t;
        }
    }
    return n;
}

/* No stage answered: two close candidates make a clarifying question,
 * otherwise the message falls back with the best confidence seen. */
static void clarify_or_fall_back(const struct decide_ctx *c, struct decision *d)
{
    size_t best[2] = {0, 0};
    int n = best_two(d, best);
    if (n == 0)
        return;
    const struct decide_cand *a = &d->cand[best[0]], *b = &d->cand[best[1]];
    d->confidence = a->confidence;
    if (n < 2 || b->confidence < c->policy.clarify_min ||
        a->confidence - b->confidence > c->policy.clarify_gap)
        return;
    d->source = DECIDE_CLARIFY;
    d->clarify[0] = *a;
    d->clarify[1] = *b;
}

void decide_apply(const struct decide_ctx *c, const struct attrs *attrs, struct decision *d)
{
    d->source = DECIDE_FALLBACK;
    d->stage = 0;
    d->intent = -1;
    d->confidence = 0;
    d->handoff = NULL;
    d->reply = NULL;
    memset(&d->article, 0, sizeof d->article);
    memset(d->clarify, 0, sizeof d->clarify);
    d->n_cand = 0;
    d->vetoed = 0;
    collect_rules(c, d);
    collect_classifier(c, d);
    collect_examples(c, d);
    collect_kb(c, d);
    if (rule_answers(c, d, attrs)) {
        const struct router_cand *top = &d->route.cand[0];
        choose_intent(c->rs, d, DECIDE_RULE, (long)top->intent, top->confidence, attrs);
    } else if (classifier_answers(c, d)) {
        choose_intent(c->rs, d, DECIDE_EXAMPLE, (long)d->cls.cand[0].intent, d->cls.cand[0].p, attrs);
        d->stage = DECIDE_CLASSIFIER;
    } else if (example_answers(c, d)) {
        choose_intent(c->rs, d, DECIDE_EXAMPLE, (long)d->votes.v[0].intent, d->votes.v[0].confidence, attrs);
    } else if (kb_answers(c, d)) {
        d->source = d->stage = DECIDE_KB;
        d->article = d->kb.hit[0];
        d->confidence = d->kb.confidence;
    } else {
        clarify_or_fall_back(c, d);
    }
    d->vetoed = (rule_fires(c, d) && !rule_answers(c, d, attrs)) ||
                (d->stage != DECIDE_RULE && d->stage != DECIDE_CLASSIFIER && vote_qualifies(c, d) &&
                 vote_vetoed(c, d, d->votes.v[0].intent));
}

long decide_guess(const struct decision *d)
{
    long best = -1;
    double best_s = -1;
    for (int pass = 0; pass < 2; pass++) {
        size_t n = pass ? d->votes.n : d->cls.n;
        for (size_t k = 0; k < n; k++) {
            uint32_t i = pass ? d->votes.v[k].intent : d->cls.cand[k].intent;
            double s = 0;
            for (size_t j = 0; j < d->cls.n; j++)
                s += d->cls.cand[j].intent == i ? d->cls.cand[j].share : 0;
            for (size_t j = 0; j < d->votes.n; j++)
                s += d->votes.v[j].intent == i ? 0.5 * d->votes.v[j].confidence : 0;
            if (s > best_s) {
                best_s = s;
                best = (long)i;
            }
        }
    }
    return best;
}

int decide_message(struct decide_ctx *c, const char *text, size_t len, const struct attrs *attrs,
                   struct decision *out)
{
    memset(out, 0, sizeof *out);
    out->bare_link = bare_link(text, len);
    int rc = router_match(c->rs, c->sc, text, len, attrs, NULL, &out->route);
    int all = c->policy.all_stages;
    if (rc == 0 && classified(c))
        rc = classify_predict(c->clf, text, len, &out->cls);
    int answered = rc == 0 && (rule_answers(c, out, attrs) || classifier_answers(c, out));
    if (rc == 0 && c->ex && c->policy.use_examples && (all || !answered))
        rc = kb_examples_match(c->ex, text, len, attrs, &out->votes);
    if (rc == 0 && c->kb && c->policy.use_kb && (all || (!answered && !example_answers(c, out)))) {
        const char *locale = attrs_get(attrs, "locale");
        rc = kb_search(c->kb, text, len, *locale ? locale : NULL, &out->kb);
    }
    if (rc < 0)
        return rc;
    decide_apply(c, attrs, out);
    return 0;
}

/* 1 if s holds a CJK ideograph. */
static int has_cjk(const char *s)
{
    size_t i = 0, len = strlen(s);
    while (i < len)
        if (text_is_cjk(text_utf8_next(s, &i)))
            return 1;
    return 0;
}

const char *decide_label(const struct rules *rs, const struct decide_cand *c, const char *locale)
{
    if (c->intent < 0)
        return c->title && *c->title ? c->title : c->name;
    const struct rules_intent *it = rules_intent(rs, (size_t)c->intent);
    int zh = locale && strncmp(locale, "zh", 2) == 0;
    if (c->example && has_cjk(c->example) == zh)
        return c->example;
    for (size_t k = 0; k < it->n_examples; k++)
        if (has_cjk(it->examples[k].text) == zh)
            return it->examples[k].text;
    return it->name;
}
