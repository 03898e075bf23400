/* decide.c — the decision for one message, without conversation state.
 * Stages run in order and the first confident one answers: rules (a
 * pattern above its intent's threshold), then examples, then articles;
 * when none is confident, two close candidates become a clarifying
 * question, and otherwise the message falls back. Every candidate a stage
 * saw is kept in the decision, so kefu ask --explain can say why each was
 * or was not taken (docs/routing.md). The dialog module wraps this with
 * conversation state; kefu ask, route and eval call it directly. */
#include "decide.h"

#include "kefu.h"

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

void decide_policy_default(struct decide_policy *p)
{
    p->example_min = 0.80;
    p->kb_min = 0.80;
    p->clarify_gap = 0.10;
    p->clarify_min = 0.50;
    p->use_examples = 1;
    p->use_kb = 1;
}

/* Records a candidate for the explanation; full lists keep the first ones. */
static void add_cand(struct decision *d, int stage, long intent, const char *name, const char *title,
                     double confidence, double threshold)
{
    if (d->n_cand == DECIDE_MAX_CANDS)
        return;
    d->cand[d->n_cand++] = (struct decide_cand){stage, intent, name, title, confidence, threshold};
}

/* Answers with intent i from stage: its reply for the locale, or its
 * handoff when one holds for attrs. */
static void choose_intent(const struct rules *rs, struct decision *d, int stage, long i, double confidence,
                          const struct attrs *attrs)
{
    const struct rules_intent *it = rules_intent(rs, (size_t)i);
    d->source = stage;
    d->intent = i;
    d->confidence = confidence;
    d->reply = rules_reply_pick(it->replies, it->n_replies, attrs_get(attrs, "locale"), 0);
    if ((d->handoff = rules_handoff_for(it, attrs)))
        d->source = DECIDE_HANDOFF;
}

/* The rule stage: the router's top candidate answers if it reaches its
 * intent's threshold. Returns 1 when it answered. */
static int stage_rules(struct decide_ctx *c, struct decision *d, const struct attrs *attrs)
{
    const struct router_result *r = &d->route;
    for (size_t k = 0; k < r->n; k++) {
        const struct rules_intent *it = rules_intent(c->rs, r->cand[k].intent);
        add_cand(d, DECIDE_RULE, (long)r->cand[k].intent, it->name, NULL, r->cand[k].confidence,
                 it->threshold);
    }
    if (r->n == 0)
        return 0;
    d->confidence = r->cand[0].confidence;
    const struct rules_intent *top = rules_intent(c->rs, r->cand[0].intent);
    if (r->cand[0].confidence < top->threshold)
        return 0;
    choose_intent(c->rs, d, DECIDE_RULE, (long)r->cand[0].intent, r->cand[0].confidence, attrs);
    return 1;
}

int decide_message(struct decide_ctx *c, const char *text, size_t len, const struct attrs *attrs,
                   struct decision *out)
{
    memset(out, 0, sizeof *out);
    out->source = DECIDE_FALLBACK;
    out->intent = -1;
    int rc = router_match(c->rs, c->sc, text, len, attrs, NULL, &out->route);
    if (rc < 0)
        return rc;
    stage_rules(c, out, attrs);
    return 0;
}
