/* dialog_agent.c — the agent side of conversations: the queue list,
 * claims, replies, transfers, releases and resolves, the handoff packet
 * (transcript, profile, history across channels, what the bot understood,
 * why it handed off), and the operator's metrics and health.
 * Each change follows one shape: lock the conversation's stripe, load it,
 * check its state, store the change in one batch, then update the
 * in-memory queue and notify. Repeating a claim or a resolve returns the
 * first result and changes nothing. */
#include "dialog_int.h"

#include "abtest.h"
#include "action.h"
#include "agents.h"
#include "kefu.h"
#include "kpi.h"
#include "text.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const long long dialog_wait_le[WAIT_BUCKETS] = {10, 30, 60, 120, 300, 600, 1800, 3600};

/* ---- the context and the handoff packet ---- */

static int transcript_msg(void *ctx, const struct store_msg *m)
{
    json_t *m1 = json_pack("{s:I, s:s, s:s, s:I}", "seq", (json_int_t)m->seq, "from", m->from, "text",
                           m->text, "at", (json_int_t)m->at);
    if (m->source)
        json_object_set_new(m1, "source", json_string(m->source));
    if (m->intent) {
        json_object_set_new(m1, "intent", json_string(m->intent));
        json_object_set_new(m1, "confidence", json_real(m->confidence));
    }
    json_array_append_new(ctx, m1);
    return 0;
}

static int history_conv(void *ctx, const struct store_conv *c)
{
    json_array_append_new(ctx, json_pack("{s:s, s:s, s:s, s:I, s:I, s:s, s:I}", "id", c->id, "channel",
                                         c->channel, "state", store_state_name(c->state), "created_at",
                                         (json_int_t)c->created_at, "updated_at", (json_int_t)c->updated_at,
                                         "reason", c->reason, "messages", (json_int_t)c->last_seq));
    return 0;
}

static int first_customer_text(void *ctx, const struct store_msg *m)
{
    if (strcmp(m->from, "customer") != 0)
        return 0;
    *(json_t **)ctx = json_string(m->text);
    return 1;
}

/* The customer's other conversations, on every channel, with their first message. */
static json_t *history(struct dialog *d, const struct store_conv *c)
{
    json_t *all = json_array(), *out = json_array();
    store_customer_convs(d->st, c->customer, 21, history_conv, all);
    size_t i;
    json_t *h;
    json_array_foreach(all, i, h)
    {
        const char *id = json_string_value(json_object_get(h, "id"));
        if (strcmp(id, c->id) == 0)
            continue;
        json_t *first = NULL;
        store_messages(d->st, id, 0, 20, first_customer_text, &first);
        json_object_set_new(h, "first_message", first ? first : json_null());
        json_array_append(out, h);
    }
    json_decref(all);
    return out;
}

static json_t *customer_json(struct dialog *d, const char *id)
{
    struct store_customer cu;
    if (store_get_customer(d->st, id, &cu) < 0)
        return json_pack("{s:s}", "id", id);
    return json_pack("{s:s, s:s, s:s, s:I, s:I}", "id", cu.id, "name", cu.name, "tier",
                     *cu.tier ? cu.tier : "regular", "first_seen", (json_int_t)cu.first_seen, "last_seen",
                     (json_int_t)cu.last_seen);
}

/* What the bot understood: the intents with scores, the slots, and what the actions answered. */
static json_t *understood(const struct store_conv *c)
{
    json_t *mem = json_loads(c->memory ? c->memory : "{}", 0, NULL);
    json_t *intents = json_object_get(mem, "intents"), *slots = json_object_get(mem, "slots");
    json_t *actions = json_object_get(mem, "actions");
    json_t *u = json_object();
    json_object_set_new(u, "intents", intents ? json_incref(intents) : json_array());
    json_object_set_new(u, "slots", slots ? json_incref(slots) : json_object());
    if (json_is_object(actions))
        json_object_set(u, "actions", actions);
    json_decref(mem);
    return u;
}

/* Articles for what the customer said (the last few messages), best first. */
static json_t *suggest(struct kb *kb, json_t *transcript, const char *locale)
{
    json_t *v = json_array();
    char text[2048];
    size_t o = 0, n = 0;
    for (size_t i = json_array_size(transcript); i-- > 0 && n < 5;) {
        json_t *m = json_array_get(transcript, i);
        const char *t = json_string_value(json_object_get(m, "text"));
        if (!t || strcmp(json_string_value(json_object_get(m, "from")), "customer") != 0)
            continue;
        size_t len = strlen(t);
        if (o + len + 2 > sizeof text)
            break;
        memcpy(text + o, t, len);
        o += len;
        text[o++] = ' ';
        n++;
    }
    struct kb_result r;
    if (!kb || o == 0 || kb_search(kb, text, o, *locale ? locale : NULL, &r) < 0)
        return v;
    for (size_t k = 0; k < r.n && k < 3; k++)
        json_array_append_new(v, json_pack("{s:s, s:s, s:f}", "id", r.hit[k].id, "title", r.hit[k].title,
                                           "score", r.hit[k].score));
    return v;
}

json_t *dialog_build_context(struct dialog *d, const struct store_conv *c, json_t *extra, struct kb *kb)
{
    json_t *transcript = json_array();
    store_messages(d->st, c->id, 0, 0, transcript_msg, transcript);
    if (extra)
        json_array_extend(transcript, extra);
    json_t *articles = suggest(kb, transcript, c->locale);
    json_t *conv = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:I, s:I, s:I}", "id", c->id, "state",
                             store_state_name(c->state), "channel", c->channel, "locale", c->locale, "queue",
                             c->queue, "priority", rules_priority_name(c->priority), "agent", c->agent,
                             "created_at", (json_int_t)c->created_at, "queued_at", (json_int_t)c->queued_at,
                             "misses", (json_int_t)c->misses);
    return json_pack("{s:o, s:o, s:o, s:o, s:o, s:s, s:o}", "conversation", conv, "customer",
                     customer_json(d, c->customer), "transcript", transcript, "history", history(d, c),
                     "understood", understood(c), "reason", c->reason, "articles", articles);
}

/* The context now, with the packet stored at the handoff. */
static int context_json(struct dialog *d, const struct store_conv *c, json_t **out)
{
    char *packet = NULL;
    struct dialog_worker *w = dialog_worker_get(d);
    *out = dialog_build_context(d, c, NULL, w ? w->kb : NULL);
    if (w)
        dialog_worker_put(d, w);
    if (!*out)
        return dialog_fail(KEFU_ENOMEM, "out of memory");
    store_get_packet(d->st, c->id, &packet);
    json_t *p = packet ? json_loads(packet, 0, NULL) : NULL;
    free(packet);
    json_object_set_new(*out, "packet", p ? p : json_null());
    return 0;
}

/* ---- checks shared by the agent calls ---- */

static int known_agent(struct dialog *d, const char *agent)
{
    return dialog_find_agent(d, agent) != NULL;
}

/* The conversation must be with this agent: 0, KEFU_EPERM (another's) or KEFU_ECONFLICT. */
static int must_hold(const struct store_conv *c, const char *agent)
{
    if (c->state == STORE_AGENT && strcmp(c->agent, agent) == 0)
        return 0;
    if (c->state == STORE_AGENT)
        return dialog_fail(KEFU_EPERM, "conversation '%s' is with agent '%s'", c->id, c->agent);
    return dialog_fail(KEFU_ECONFLICT, "conversation '%s' is %s, not with you", c->id,
                       store_state_name(c->state));
}

/* Appends a system or bot message to c in b (seq advances). */
static void add_note(struct store_batch *b, struct store_conv *c, struct store_msg *m, const char *from,
                     const char *text, const char *source, long long now)
{
    *m = (struct store_msg){++c->last_seq, from, text, source, NULL, 0, NULL, NULL, now};
    store_add_message(b, c->id, m);
}

static void observe_wait(struct dialog *d, long long waited)
{
    if (waited < 0)
        return;
    int k = 0;
    while (k < WAIT_BUCKETS && waited > dialog_wait_le[k])
        k++;
    atomic_fetch_add(&d->m.wait[k], 1);
    atomic_fetch_add(&d->m.wait_sum, (long)waited);
    atomic_fetch_add(&d->m.wait_n, 1);
}

/* Counts one agent's first response in the histogram of its queue and channel. */
static void observe_first_response(struct dialog *d, const char *queue, const char *channel, long long s)
{
    int k = 0;
    while (k < WAIT_BUCKETS && s > dialog_wait_le[k])
        k++;
    struct dialog_metrics *m = &d->m;
    pthread_mutex_lock(&m->fr_lock);
    int i = 0;
    while (i < m->n_fr && (strcmp(m->fr[i].queue, queue) != 0 || strcmp(m->fr[i].channel, channel) != 0))
        i++;
    if (i == m->n_fr && m->n_fr < FR_LABELS) {
        snprintf(m->fr[i].queue, sizeof m->fr[i].queue, "%s", queue);
        snprintf(m->fr[i].channel, sizeof m->fr[i].channel, "%s", channel);
        m->n_fr++;
    } else if (i == m->n_fr)
        i = FR_LABELS - 1;
    m->fr[i].b[k]++;
    m->fr[i].sum += (long)s;
    m->fr[i].n++;
    pthread_mutex_unlock(&m->fr_lock);
}

/* When this agent message is the first since c's handoff (not counting
 * the claim's note), marks it in c's memory — *mem is the new memory
 * (free() it), c->memory then points to it — and returns the seconds since
 * the handoff; otherwise -1. The mark is the handoff time it answered, so
 * a later handoff of the same conversation counts again. */
static long long first_response(struct store_conv *c, long long now, char **mem)
{
    *mem = NULL;
    json_t *j = json_loads(c->memory ? c->memory : "{}", 0, NULL);
    if (!json_is_object(j) || c->queued_at <= 0 ||
        json_integer_value(json_object_get(j, "responded")) == c->queued_at) {
        json_decref(j);
        return -1;
    }
    json_object_set_new(j, "responded", json_integer(c->queued_at));
    *mem = json_dumps(j, JSON_COMPACT | JSON_REAL_PRECISION(6));
    json_decref(j);
    if (!*mem)
        return -1;
    c->memory = *mem;
    return now > c->queued_at ? now - c->queued_at : 0;
}

/* ---- the queue list ---- */

struct listing {
    json_t *v;
    int n;
};

static int list_item(void *ctx, const struct queue_item *it)
{
    struct listing *l = ctx;
    json_array_append_new(l->v, json_pack("{s:s, s:s, s:s, s:i, s:I}", "id", it->conv, "queue", it->queue,
                                          "priority", rules_priority_name(it->priority), "position",
                                          it->position, "waiting_s", (json_int_t)it->wait_s));
    return ++l->n >= 200;
}

/* Adds customer, reason and first message to each listed conversation. */
static void enrich(struct dialog *d, json_t *v)
{
    size_t i;
    json_t *it;
    json_array_foreach(v, i, it)
    {
        struct store_conv c;
        const char *id = json_string_value(json_object_get(it, "id"));
        if (store_get_conv(d->st, id, &c) < 0)
            continue;
        json_t *first = NULL;
        store_messages(d->st, id, 0, 20, first_customer_text, &first);
        json_object_set_new(it, "customer", customer_json(d, c.customer));
        json_object_set_new(it, "reason", json_string(c.reason));
        json_object_set_new(it, "channel", json_string(c.channel));
        json_object_set_new(it, "first_message", first ? first : json_null());
        json_t *mem = json_loads(c.memory ? c.memory : "{}", 0, NULL);
        json_t *esc = json_object_get(mem, "escalated");
        json_object_set_new(it, "escalated", json_boolean(esc && json_integer_value(esc) == c.queued_at));
        json_decref(mem);
        store_conv_release(&c);
    }
}

static json_t *agent_queues(struct dialog *d, const char *agent)
{
    json_t *v = json_array();
    const struct dialog_agent *a = dialog_find_agent(d, agent);
    for (const char *p = a ? a->skills : ""; *p;) {
        size_t n = strcspn(p, "|");
        if (n)
            json_array_append_new(v, json_stringn(p, n));
        p += n + (p[n] == '|');
    }
    return v;
}

int dialog_queue_list(struct dialog *d, const char *agent, json_t **out)
{
    *out = NULL;
    if (!known_agent(d, agent))
        return dialog_fail(KEFU_EAUTH, "unknown agent");
    long long now = dialog_now(d);
    queue_agent_seen(d->q, agent, now);
    int rc = dialog_sync_queue(d, 0);
    if (rc < 0)
        return rc;
    struct listing l = {json_array(), 0};
    rc = queue_list(d->q, agent, now, list_item, &l);
    if (rc < 0) {
        json_decref(l.v);
        return dialog_fail(rc, "cannot list the queue");
    }
    enrich(d, l.v);
    *out = json_pack("{s:o, s:o, s:o}", "queues", agent_queues(d, agent), "conversations", l.v, "redlines",
                     redline_breaches(d->rl));
    return *out ? 0 : KEFU_ENOMEM;
}

/* ---- claim ---- */

/* The outbox event of an agent's action on c, with {agent, queue} and
 * extra (borrowed, may be NULL); 0 when no webhook wants it. */
static int agent_event(struct dialog *d, struct store_batch *b, struct dialog_out *ev, unsigned kind,
                       const struct store_conv *c, const char *agent, long long now, json_t *extra)
{
    if (!dialog_outbox_wants(d, kind))
        return 0;
    json_t *f = json_pack("{s:s, s:s}", "agent", agent, "queue", c->queue);
    if (f && extra)
        json_object_update(f, extra);
    int rc = f ? dialog_outbox_add(d, b, ev, kind, c->id, now, f) : KEFU_ENOMEM;
    json_decref(f);
    return rc;
}

/* Stores the claim of c (queued, reserved in the queue) by agent. */
static int store_claim(struct dialog *d, struct store_conv *c, const char *agent, long long now)
{
    struct store_batch b;
    struct store_msg m;
    store_batch_init(&b);
    c->state = STORE_AGENT;
    snprintf(c->agent, sizeof c->agent, "%s", agent);
    c->updated_at = now;
    add_note(&b, c, &m, "system", dialog_say(c->locale, "joined"), "claim", now);
    store_put_conv(&b, c, NULL);
    store_add_event(&b, c->id, now, "claim", agent, c->queue, NULL);
    struct dialog_out ev = {.body = NULL};
    int rc = agent_event(d, &b, &ev, DIALOG_EV_CLAIM, c, agent, now, NULL);
    if (rc == 0)
        rc = store_write(d->st, &b);
    dialog_out_release(&ev);
    return rc < 0 ? dialog_fail(rc, "cannot store the claim") : 0;
}

static const char *claim_error(int rc)
{
    switch (rc) {
    case KEFU_EBUSY: return "you are at capacity";
    case KEFU_EPERM: return "the conversation is not in a queue you serve";
    case KEFU_ECONFLICT: return "another agent has the conversation";
    default: return "no conversation is waiting for you";
    }
}

/* Claims conversation id for agent; reserved: the queue already holds it for them. */
static int claim_one(struct dialog *d, const char *agent, const char *id, int reserved, long long waited,
                     json_t **out)
{
    struct store_conv c;
    long long now = dialog_now(d);
    dialog_lock(d, id);
    int rc = dialog_load(d, id, &c), again = 0;
    if (rc == 0 && c.state == STORE_AGENT && strcmp(c.agent, agent) == 0)
        again = 1; /* a repeated claim: the same context, nothing changes */
    else if (rc == 0 && c.state == STORE_AGENT)
        rc = dialog_fail(KEFU_ECONFLICT, "another agent has the conversation");
    else if (rc == 0 && c.state != STORE_QUEUED)
        rc =
            dialog_fail(KEFU_ECONFLICT, "conversation '%s' is %s, not queued", id, store_state_name(c.state));
    if (rc == 0 && !again && !reserved) {
        char got[QUEUE_CONV_MAX];
        if ((rc = queue_claim(d->q, agent, id, now, got, &waited)) < 0)
            rc = dialog_fail(rc, "%s", claim_error(rc));
        reserved = rc == 0;
    }
    if (rc == 0 && !again && (rc = store_claim(d, &c, agent, now)) < 0)
        queue_unclaim(d->q, id);
    else if (rc < 0 && reserved)
        queue_unclaim(d->q, id);
    if (rc == 0)
        rc = context_json(d, &c, out);
    dialog_unlock(d, id);
    if (rc == 0 && !again) {
        atomic_fetch_add(&d->m.claims, 1);
        observe_wait(d, waited);
        if (waited >= 0) {
            char tier[32];
            dialog_tier(d, c.customer, tier, sizeof tier);
            dialog_observe(d, RL_QUEUE_WAIT, c.channel, c.queue, tier, (double)waited, now);
        }
        dialog_notify(d, id, c.last_seq);
        dialog_notify(d, NULL, 0);
    }
    store_conv_release(&c);
    return rc;
}

int dialog_claim(struct dialog *d, const char *agent, const char *conv, json_t **out)
{
    *out = NULL;
    if (!known_agent(d, agent))
        return dialog_fail(KEFU_EAUTH, "unknown agent");
    int rc = dialog_sync_queue(d, 0);
    if (rc < 0)
        return rc;
    if (conv)
        return claim_one(d, agent, conv, 0, -1, out);
    char id[QUEUE_CONV_MAX];
    long long waited;
    rc = queue_claim(d->q, agent, NULL, dialog_now(d), id, &waited);
    if (rc < 0)
        return dialog_fail(rc, "%s", claim_error(rc));
    return claim_one(d, agent, id, 1, waited, out);
}

int dialog_context(struct dialog *d, const char *agent, const char *conv, json_t **out)
{
    struct store_conv c;
    *out = NULL;
    if (!known_agent(d, agent))
        return dialog_fail(KEFU_EAUTH, "unknown agent");
    int rc = dialog_load(d, conv, &c);
    if (rc < 0)
        return rc;
    int mine = strcmp(c.agent, agent) == 0;
    int theirs = c.state == STORE_AGENT && !mine;
    if (theirs || (!mine && *c.queue && !queue_agent_serves(d->q, agent, c.queue)))
        rc = dialog_fail(KEFU_EPERM, "conversation '%s' is not in a queue you serve", conv);
    if (rc == 0)
        rc = context_json(d, &c, out);
    store_conv_release(&c);
    return rc;
}

int dialog_packet(struct dialog *d, const char *conv, json_t **out)
{
    struct store_conv c;
    *out = NULL;
    int rc = dialog_load(d, conv, &c);
    if (rc < 0)
        return rc;
    rc = context_json(d, &c, out);
    store_conv_release(&c);
    return rc;
}

/* ---- replies, transfers, releases, resolves ---- */

int dialog_agent_message(struct dialog *d, const char *agent, const char *conv, json_t *req, json_t **out)
{
    const char *text, *client_id;
    *out = NULL;
    int rc = json_is_object(req) ? 0 : dialog_fail(KEFU_EINVAL, "expected {text, client_id?}");
    if (rc == 0)
        rc = dialog_req_text(req, "text", DIALOG_MAX_TEXT, 1, &text);
    if (rc == 0)
        rc = dialog_req_text(req, "client_id", 64, 0, &client_id);
    char *owned = NULL;
    if (rc == 0)
        rc = dialog_redact(d, &text, &owned);
    if (rc < 0)
        return rc;
    struct store_conv c;
    dialog_lock(d, conv);
    long seq = 0;
    char *first = NULL, rq[32] = "", rch[32] = "", rtier[32] = "";
    int wrote = 0;
    long long responded = -1;
    if ((rc = dialog_load(d, conv, &c)) == 0) {
        if (client_id && store_find_client_id(d->st, conv, client_id, &seq, &first) == 0) {
            free(first); /* a repeat: the first answer */
        } else if ((rc = must_hold(&c, agent)) == 0) {
            long long now = dialog_now(d);
            seq = ++c.last_seq;
            c.updated_at = now;
            struct store_msg m = {seq, "agent", text, "agent", NULL, 0, client_id, NULL, now};
            struct store_batch b;
            store_batch_init(&b);
            char *kept = c.memory, *mem;
            responded = first_response(&c, now, &mem);
            store_put_conv(&b, &c, NULL);
            store_add_message(&b, conv, &m);
            if (responded >= 0)
                store_add_response(&b, conv, now, c.queue, c.channel, agent,
                                   responded > 1 << 30 ? 1 << 30 : (int)responded);
            struct dialog_out ev = {.body = NULL};
            json_t *x = json_pack("{s:I, s:s}", "seq", (json_int_t)seq, "text", text);
            rc = x ? agent_event(d, &b, &ev, DIALOG_EV_AGENT_MESSAGE, &c, agent, now, x) : KEFU_ENOMEM;
            json_decref(x);
            if (rc == 0)
                rc = store_write(d->st, &b);
            dialog_out_release(&ev);
            if (rc < 0)
                rc = dialog_fail(rc, "cannot store the message");
            else
                wrote = 1;
            c.memory = kept;
            free(mem);
            if (wrote && responded >= 0) {
                snprintf(rq, sizeof rq, "%s", c.queue), snprintf(rch, sizeof rch, "%s", c.channel);
                dialog_tier(d, c.customer, rtier, sizeof rtier);
            }
        }
        store_conv_release(&c);
    }
    dialog_unlock(d, conv);
    free(owned);
    if (rc < 0)
        return rc;
    if (wrote) {
        atomic_fetch_add(&d->m.agent_msgs, 1);
        if (responded >= 0) {
            observe_first_response(d, rq, rch, responded);
            dialog_observe(d, RL_FIRST_RESPONSE, rch, rq, rtier, (double)responded, dialog_now(d));
        }
        dialog_notify(d, conv, seq);
    }
    *out = json_pack("{s:I}", "seq", (json_int_t)seq);
    return 0;
}

/* Validates a queue name: 1-31 of [a-z0-9_.-]. */
static int queue_name_ok(const char *s)
{
    size_t n = s ? strlen(s) : 0;
    if (n == 0 || n >= QUEUE_NAME_MAX)
        return 0;
    return strspn(s, "abcdefghijklmnopqrstuvwxyz0123456789_.-") == n;
}

/* Puts c back in a queue (name, or its own): a transfer or a release. */
static int requeue(struct dialog *d, const char *agent, const char *conv, const char *name, const char *kind,
                   json_t **out)
{
    struct store_conv c;
    dialog_lock(d, conv);
    int rc = dialog_load(d, conv, &c);
    if (rc == 0 && (rc = must_hold(&c, agent)) == 0) {
        long long now = dialog_now(d);
        struct store_batch b;
        struct store_msg m;
        store_batch_init(&b);
        c.state = STORE_QUEUED;
        *c.agent = 0;
        if (name)
            snprintf(c.queue, sizeof c.queue, "%s", name);
        c.updated_at = now;
        add_note(&b, &c, &m, "system", dialog_say(c.locale, name ? "transfer" : "released"), kind, now);
        store_put_conv(&b, &c, NULL);
        store_add_event(&b, conv, now, kind, agent, c.queue, NULL);
        if ((rc = store_write(d->st, &b)) < 0)
            rc = dialog_fail(rc, "cannot store the %s", kind);
        else if (queue_requeue(d->q, conv, c.queue) < 0)
            dialog_enqueue(d, &c);
    }
    dialog_unlock(d, conv);
    if (rc == 0) {
        atomic_fetch_add(name ? &d->m.transfers : &d->m.releases, 1);
        *out = json_pack("{s:s, s:s}", "state", "queued", "queue", c.queue);
        dialog_notify(d, conv, c.last_seq);
        dialog_notify(d, NULL, 0);
    }
    store_conv_release(&c);
    return rc;
}

int dialog_transfer(struct dialog *d, const char *agent, const char *conv, json_t *req, json_t **out)
{
    *out = NULL;
    const char *name = json_string_value(json_object_get(req, "queue"));
    if (!queue_name_ok(name))
        return dialog_fail(KEFU_EINVAL, "queue must be 1-31 characters of a-z, 0-9, '_', '.', '-'");
    return requeue(d, agent, conv, name, "transfer", out);
}

int dialog_release(struct dialog *d, const char *agent, const char *conv, json_t **out)
{
    *out = NULL;
    return requeue(d, agent, conv, NULL, "release", out);
}

int dialog_resolve(struct dialog *d, const char *agent, const char *conv, json_t **out)
{
    struct store_conv c;
    *out = NULL;
    dialog_lock(d, conv);
    int rc = dialog_load(d, conv, &c), again = 0;
    if (rc == 0 && c.state == STORE_RESOLVED && strcmp(c.agent, agent) == 0)
        again = 1; /* a repeated resolve: the first answer */
    else if (rc == 0 && (rc = must_hold(&c, agent)) == 0) {
        long long now = dialog_now(d);
        struct store_batch b;
        struct store_msg m;
        store_batch_init(&b);
        c.state = STORE_RESOLVED;
        c.updated_at = now;
        add_note(&b, &c, &m, "bot", dialog_say(c.locale, "survey"), "survey", now);
        store_put_conv(&b, &c, NULL);
        store_add_event(&b, conv, now, "resolve", agent, c.queue, NULL);
        struct dialog_out ev = {.body = NULL};
        rc = agent_event(d, &b, &ev, DIALOG_EV_RESOLVE, &c, agent, now, NULL);
        if (rc == 0)
            rc = store_write(d->st, &b);
        dialog_out_release(&ev);
        if (rc < 0)
            rc = dialog_fail(rc, "cannot store the resolve");
        else
            queue_remove(d->q, conv);
    }
    dialog_unlock(d, conv);
    if (rc == 0) {
        *out = json_pack("{s:s, s:I}", "state", "resolved", "seq", (json_int_t)c.last_seq);
        if (!again) {
            atomic_fetch_add(&d->m.resolves, 1);
            dialog_notify(d, conv, c.last_seq);
            dialog_notify(d, NULL, 0);
        }
    }
    store_conv_release(&c);
    return rc;
}

/* ---- operator ---- */

/* Appends formatted text to b. */
static int put(struct text_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int put(struct text_buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        return KEFU_EINVAL;
    if (b->len + (size_t)n + 1 > b->cap) {
        size_t cap = (b->len + (size_t)n + 1) * 2;
        char *s = kefu_realloc(b->s, cap);
        if (!s)
            return KEFU_ENOMEM;
        b->s = s, b->cap = cap;
    }
    va_start(ap, fmt);
    vsnprintf(b->s + b->len, b->cap - b->len, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
    return 0;
}

static void queue_metric(void *ctx, const char *name, size_t waiting, size_t held)
{
    put(ctx, "kefu_queue_length{queue=\"%s\"} %zu\nkefu_queue_with_agent{queue=\"%s\"} %zu\n", name, waiting,
        name, held);
}

static void put_counter(struct text_buf *b, const char *name, const char *help, const char *label,
                        const char *const *keys, const atomic_long *v, int n)
{
    put(b, "# HELP %s %s\n# TYPE %s counter\n", name, help, name);
    for (int i = 0; i < n; i++)
        put(b, "%s{%s=\"%s\"} %ld\n", name, label, keys[i], atomic_load(&v[i]));
}

static void wait_histogram(struct dialog *d, struct text_buf *out)
{
    put(out, "# HELP kefu_wait_seconds Time conversations waited in the queue before a claim.\n"
             "# TYPE kefu_wait_seconds histogram\n");
    long cum = 0;
    for (int k = 0; k < WAIT_BUCKETS; k++) {
        cum += atomic_load(&d->m.wait[k]);
        put(out, "kefu_wait_seconds_bucket{le=\"%lld\"} %ld\n", dialog_wait_le[k], cum);
    }
    cum += atomic_load(&d->m.wait[WAIT_BUCKETS]);
    put(out,
        "kefu_wait_seconds_bucket{le=\"+Inf\"} %ld\nkefu_wait_seconds_sum %ld\nkefu_wait_seconds_count %ld\n",
        cum, atomic_load(&d->m.wait_sum), atomic_load(&d->m.wait_n));
}

static void first_response_histogram(struct dialog *d, struct text_buf *out)
{
    put(out, "# HELP kefu_agent_first_response_seconds Time from a handoff to the agent's first message.\n"
             "# TYPE kefu_agent_first_response_seconds histogram\n");
    struct dialog_metrics *m = &d->m;
    pthread_mutex_lock(&m->fr_lock);
    for (int i = 0; i < m->n_fr; i++) {
        const struct dialog_fr *f = &m->fr[i];
        long cum = 0;
        for (int k = 0; k <= WAIT_BUCKETS; k++) {
            cum += f->b[k];
            char le[24];
            snprintf(le, sizeof le, k < WAIT_BUCKETS ? "%lld" : "+Inf",
                     k < WAIT_BUCKETS ? dialog_wait_le[k] : 0);
            put(out, "kefu_agent_first_response_seconds_bucket{queue=\"%s\",channel=\"%s\",le=\"%s\"} %ld\n",
                f->queue, f->channel, le, cum);
        }
        put(out,
            "kefu_agent_first_response_seconds_sum{queue=\"%s\",channel=\"%s\"} %ld\n"
            "kefu_agent_first_response_seconds_count{queue=\"%s\",channel=\"%s\"} %ld\n",
            f->queue, f->channel, f->sum, f->queue, f->channel, f->n);
    }
    pthread_mutex_unlock(&m->fr_lock);
}

int dialog_metrics(struct dialog *d, struct text_buf *out)
{
    static const char *const ratings[] = {"0", "1", "2", "3", "4", "5"};
    const struct dialog_metrics *m = &d->m;
    put_counter(out, "kefu_messages_total", "Customer messages by how they were handled.", "source",
                dialog_src_names, m->src, N_SRC);
    long answered =
        atomic_load(&m->src[SRC_RULE]) + atomic_load(&m->src[SRC_EXAMPLE]) + atomic_load(&m->src[SRC_KB]);
    long bot = answered + atomic_load(&m->src[SRC_CLARIFY]) + atomic_load(&m->src[SRC_FALLBACK]) +
               atomic_load(&m->src[SRC_HANDOFF]);
    put(out,
        "# HELP kefu_automation_ratio Share of the messages the bot handled that it answered itself.\n"
        "# TYPE kefu_automation_ratio gauge\nkefu_automation_ratio %.4f\n",
        bot ? (double)answered / (double)bot : 0.0);
    put_counter(out, "kefu_handoffs_total", "Conversations handed to a person, by reason.", "reason",
                dialog_why_names, m->why, N_WHY);
    put(out, "# HELP kefu_queue_length Conversations waiting, per queue.\n# TYPE kefu_queue_length gauge\n");
    queue_stats(d->q, queue_metric, out);
    wait_histogram(d, out);
    first_response_histogram(d, out);
    put_counter(out, "kefu_feedback_total", "Satisfaction ratings by value.", "rating", ratings + 1,
                m->rating + 1, 5);
    put(out,
        "# TYPE kefu_conversations_total counter\nkefu_conversations_total %ld\n"
        "# TYPE kefu_claims_total counter\nkefu_claims_total %ld\n"
        "# TYPE kefu_transfers_total counter\nkefu_transfers_total %ld\n"
        "# TYPE kefu_resolves_total counter\nkefu_resolves_total %ld\n"
        "# TYPE kefu_agent_messages_total counter\nkefu_agent_messages_total %ld\n",
        atomic_load(&m->created), atomic_load(&m->claims), atomic_load(&m->transfers),
        atomic_load(&m->resolves), atomic_load(&m->agent_msgs));
    put(out, "# TYPE kefu_escalations_total counter\nkefu_escalations_total %ld\n",
        atomic_load(&m->escalations));
    redline_metrics(d->rl, out);
    struct store_stats ss;
    store_stats(d->st, &ss);
    int rc = put(out,
                 "# TYPE kefu_store_commits_total counter\nkefu_store_commits_total %lld\n"
                 "# TYPE kefu_store_batches_total counter\nkefu_store_batches_total %lld\n"
                 "# TYPE kefu_store_checkpoints_total counter\nkefu_store_checkpoints_total %lld\n"
                 "# TYPE kefu_store_cache_hits_total counter\nkefu_store_cache_hits_total %llu\n"
                 "# TYPE kefu_store_cache_misses_total counter\nkefu_store_cache_misses_total %llu\n",
                 ss.commits, ss.batches, ss.checkpoints, ss.cache_hits, ss.cache_misses);
    return rc < 0 ? rc : actions_metrics(d->actions, out);
}

int dialog_health(struct dialog *d, json_t **out)
{
    pthread_mutex_lock(&d->rules_lock);
    size_t intents = rules_count(d->rs);
    long long loaded = d->rules_loaded_at;
    pthread_mutex_unlock(&d->rules_lock);
    struct store_stats ss;
    store_stats(d->st, &ss);
    struct kb_stats ks = {0};
    struct dialog_worker *w = dialog_worker_get(d);
    if (w && w->kb)
        kb_stats(w->kb, &ks);
    if (w)
        dialog_worker_put(d, w);
    *out =
        json_pack("{s:s, s:{s:I, s:I}, s:{s:I}, s:{s:i, s:I, s:I, s:I}}", "status", "ok", "rules", "intents",
                  (json_int_t)intents, "loaded_at", (json_int_t)loaded, "kb", "articles",
                  (json_int_t)ks.articles, "store", "version", store_version(d->st), "commits",
                  (json_int_t)ss.commits, "batches", (json_int_t)ss.batches, "failed", (json_int_t)ss.failed);
    return *out ? 0 : KEFU_ENOMEM;
}

/* The unix time of the last local midnight (tz_offset_min east of UTC) at or before now. */
static long long local_midnight(const struct dialog *d, long long now)
{
    long long off = (long long)d->tz_offset_min * 60, local = now + off;
    long long day = local >= 0 ? local / 86400 : (local - 86399) / 86400;
    return day * 86400 - off;
}

static json_t *stats_hours(const struct store_day *s, long long since, long long now)
{
    json_t *hours = json_array();
    long long n = now >= since ? (now - since) / 3600 + 1 : 0;
    for (long long k = 0; k < n && k < STORE_DAY_HOURS; k++)
        json_array_append_new(hours, json_pack("{s:I, s:I, s:I, s:I}", "at", (json_int_t)(since + 3600 * k),
                                               "messages", (json_int_t)s->hour_messages[k], "answered",
                                               (json_int_t)s->hour_answered[k], "handoffs",
                                               (json_int_t)s->hour_handoffs[k]));
    return hours;
}

static int response_group(void *ctx, const struct store_response_group *g)
{
    json_t *fr = ctx, *groups = json_object_get(fr, "groups");
    json_array_append_new(groups,
                          json_pack("{s:s, s:s, s:I, s:f, s:I}", "queue", g->queue, "channel", g->channel,
                                    "count", (json_int_t)g->n, "avg", g->avg, "max", (json_int_t)g->max));
    long long n = json_integer_value(json_object_get(fr, "count"));
    double avg = json_real_value(json_object_get(fr, "avg"));
    long long max = json_integer_value(json_object_get(fr, "max"));
    json_object_set_new(fr, "count", json_integer(n + g->n));
    json_object_set_new(
        fr, "avg",
        json_real(n + g->n ? (avg * (double)n + g->avg * (double)g->n) / (double)(n + g->n) : 0.0));
    json_object_set_new(fr, "max", json_integer(g->max > max ? g->max : max));
    return 0;
}

json_t *dialog_first_responses(struct dialog *d, long long since)
{
    json_t *fr = json_pack("{s:I, s:f, s:I, s:[]}", "count", (json_int_t)0, "avg", 0.0, "max", (json_int_t)0,
                           "groups");
    if (fr && store_first_responses(d->st, since, response_group, fr) < 0) {
        json_decref(fr);
        return NULL;
    }
    return fr;
}

int dialog_stats(struct dialog *d, long long since, json_t **out)
{
    long long now = dialog_now(d);
    if (since < 0)
        since = local_midnight(d, now);
    struct store_day s;
    int rc = store_day(d->st, since, &s);
    if (rc < 0)
        return dialog_fail(rc, "cannot read the figures of the day");
    long long rated = 0, sum = 0;
    json_t *values = json_array();
    for (int r = 1; r <= 5; r++) {
        rated += s.ratings[r];
        sum += r * s.ratings[r];
        json_array_append_new(values, json_integer(s.ratings[r]));
    }
    *out = json_pack(
        "{s:I, s:I, s:I, s:I, s:I, s:f, s:I, s:I, s:I, s:{s:I, s:f, s:I}, s:{s:I, s:f, s:o}, s:o}", "since",
        (json_int_t)since, "until", (json_int_t)now, "conversations", (json_int_t)s.conversations,
        "customer_messages", (json_int_t)s.customer_messages, "answered", (json_int_t)s.answered,
        "automation_rate", s.bot_handled ? (double)s.answered / (double)s.bot_handled : 0.0, "handoffs",
        (json_int_t)s.handoffs, "claims", (json_int_t)s.claims, "resolves", (json_int_t)s.resolves, "wait_s",
        "claims", (json_int_t)s.waits, "avg", s.wait_avg, "max", (json_int_t)s.wait_max, "ratings", "count",
        (json_int_t)rated, "avg", rated ? (double)sum / (double)rated : 0.0, "values", values, "hours",
        stats_hours(&s, since, now));
    json_t *fr = dialog_first_responses(d, since);
    if (!fr) {
        json_decref(*out);
        *out = NULL;
        return dialog_fail(KEFU_EIO, "cannot read the first responses");
    }
    json_object_set_new(*out, "first_response_s", fr);
    pthread_mutex_lock(&d->rules_lock);
    struct rules *rs = rules_ref(d->rs);
    pthread_mutex_unlock(&d->rules_lock);
    json_t *ex = abtest_experiments(d->st, rs, 0); /* experiments run for days: all their history */
    rules_unref(rs);
    if (!ex) {
        json_decref(*out);
        *out = NULL;
        return dialog_fail(KEFU_EIO, "cannot read the experiments");
    }
    json_object_set_new(*out, "experiments", ex);
    json_t *kpi = kpi_table(d->st, d->rl, since);
    if (!kpi) {
        json_decref(*out);
        *out = NULL;
        return dialog_fail(KEFU_EIO, "cannot read the KPIs");
    }
    json_object_set_new(*out, "kpi", kpi);
    return *out ? 0 : dialog_fail(KEFU_ENOMEM, "out of memory");
}

/* ---- agent accounts (the admin API) ---- */

int dialog_accounts(struct dialog *d, json_t **out)
{
    json_t *v = NULL;
    int rc = agents_list(d->st, &v);
    if (rc < 0)
        return dialog_fail(rc, "cannot read the agent accounts");
    *out = json_pack("{s:o}", "agents", v);
    return *out ? 0 : KEFU_ENOMEM;
}

int dialog_account_add(struct dialog *d, json_t *req, json_t **out)
{
    *out = NULL;
    const char *name = json_string_value(json_object_get(req, "name"));
    json_t *sk = json_object_get(req, "skills"), *cap = json_object_get(req, "capacity");
    char skills[256] = "";
    size_t used = 0;
    for (size_t i = 0; json_is_array(sk) && i < json_array_size(sk); i++) {
        const char *q = json_string_value(json_array_get(sk, i));
        if (!q || !*q || strchr(q, '|') || strchr(q, ',') || used + strlen(q) + 2 > sizeof skills)
            return dialog_fail(KEFU_EINVAL, "skills must be an array of queue names");
        used += (size_t)snprintf(skills + used, sizeof skills - used, "%s%s", used ? "|" : "", q);
    }
    if (!json_is_object(req) || !agents_name_ok(name))
        return dialog_fail(KEFU_EINVAL, "name must be 1-63 characters of a-z, 0-9, '_', '-'");
    if ((sk && !json_is_array(sk)) ||
        (cap && (!json_is_integer(cap) || json_integer_value(cap) < 1 || json_integer_value(cap) > 100)))
        return dialog_fail(KEFU_EINVAL, "skills must be an array of queue names, capacity 1 to 100");
    char token[AGENTS_TOKEN_LEN + 1];
    int rc = agents_add(d->st, name, skills, cap ? (int)json_integer_value(cap) : 0, dialog_now(d), token);
    if (rc == KEFU_EINVAL)
        return dialog_fail(rc, "skills must be queue names of a-z, 0-9, '_', '.', '-'");
    if (rc == KEFU_ECONFLICT)
        return dialog_fail(rc, "agent '%s' exists", name);
    if (rc < 0)
        return dialog_fail(rc, "cannot store the agent");
    *out = json_pack("{s:s, s:s, s:s}", "name", name, "state", "enabled", "token", token);
    return *out ? 0 : KEFU_ENOMEM;
}

int dialog_account_change(struct dialog *d, const char *name, const char *what, json_t **out)
{
    *out = NULL;
    char token[AGENTS_TOKEN_LEN + 1];
    int rc = agents_change(d->st, name, what, dialog_now(d), token);
    if (rc == KEFU_ENOENT)
        return dialog_fail(rc, "no agent account '%s'", name);
    if (rc < 0)
        return dialog_fail(rc, "cannot %s the agent", what);
    struct store_agent a;
    if (store_get_agent(d->st, name, 0, &a) < 0)
        return dialog_fail(KEFU_EIO, "cannot read the agent back");
    *out = json_pack("{s:s, s:s}", "name", name, "state", a.disabled ? "disabled" : "enabled");
    if (*out && *token)
        json_object_set_new(*out, "token", json_string(token));
    return *out ? 0 : KEFU_ENOMEM;
}

int dialog_agent_presence(struct dialog *d, const char *agent, json_t *req, json_t **out)
{
    static const char *const names[] = {"online", "away", "offline"};
    *out = NULL;
    const char *status = json_string_value(json_object_get(req, "status"));
    int p = 0;
    while (status && p < 3 && strcmp(status, names[p]) != 0)
        p++;
    if (!status || p == 3)
        return dialog_fail(KEFU_EINVAL, "status must be online, away or offline");
    if (!known_agent(d, agent) || queue_agent_presence(d->q, agent, p) < 0)
        return dialog_fail(KEFU_EAUTH, "unknown agent");
    dialog_notify(d, NULL, 0); /* the queue's listeners see it */
    *out = json_pack("{s:s, s:s}", "agent", agent, "status", names[p]);
    return *out ? 0 : KEFU_ENOMEM;
}
