/* dialog_service.c — service levels over the conversations: the samples
 * the red lines (redline.c) are computed from, the watcher thread that
 * evaluates them every watch_ms, and the VIP escalation of conversations
 * that have waited a set share of their level. A crossing or an
 * escalation is logged, written to the webhook outbox (dialog_outbox.c;
 * an escalation in the batch that stores it) and wakes the agents' queue
 * listeners, so the console's banner and marks follow at once. */
#include "dialog_int.h"

#include "kefu.h"
#include "log.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

void dialog_tier(struct dialog *d, const char *customer, char *tier, size_t cap)
{
    struct store_customer cu;
    snprintf(tier, cap, "%s",
             store_get_customer(d->st, customer, &cu) == 0 && *cu.tier ? cu.tier : "regular");
}

void dialog_observe(struct dialog *d, int metric, const char *channel, const char *queue, const char *tier,
                    double value, long long at)
{
    if (!d->rl)
        return;
    struct redline_labels l = {channel, queue, tier};
    redline_observe(d->rl, metric, &l, value, at);
}

/* Writes a red line's event ev (borrowed) to the outbox, in a batch of its own. */
static void announce(struct dialog *d, unsigned type, json_t *ev)
{
    if (!dialog_outbox_wants(d, type))
        return;
    struct store_batch b;
    store_batch_init(&b);
    struct dialog_out out = {.body = NULL};
    int rc = dialog_outbox_add(d, &b, &out, type, NULL, json_integer_value(json_object_get(ev, "at")), ev);
    if (rc == 0)
        rc = store_write(d->st, &b);
    if (rc < 0)
        log_msg(LOG_LEVEL_ERROR, "cannot write the webhook event of a red line: %s", kefu_strerror(rc));
    dialog_out_release(&out);
}

static void on_change(void *ctx, json_t *ev)
{
    struct dialog *d = ctx;
    const char *kind = json_string_value(json_object_get(ev, "event"));
    int breached = kind && strcmp(kind, "redline.breached") == 0;
    log_json(breached ? LOG_LEVEL_WARN : LOG_LEVEL_INFO, breached ? "red line breached" : "red line cleared",
             ev);
    announce(d, breached ? DIALOG_EV_REDLINE_BREACHED : DIALOG_EV_REDLINE_CLEARED, ev);
    dialog_notify(d, NULL, 0);
}

/* ---- one look at the waiting conversations ---- */

struct waiting {
    char conv[QUEUE_CONV_MAX], queue[QUEUE_NAME_MAX];
    char channel[32], tier[32];
    long long wait_s;
};

struct waitlist {
    struct waiting *v;
    size_t n, cap;
};

static int collect(void *ctx, const struct queue_item *it)
{
    struct waitlist *w = ctx;
    if (it->agent)
        return 0;
    if (w->n == w->cap) {
        size_t cap = w->cap ? w->cap * 2 : 64;
        struct waiting *v = kefu_realloc(w->v, cap * sizeof *v);
        if (!v)
            return 1;
        w->v = v, w->cap = cap;
    }
    struct waiting *x = &w->v[w->n++];
    memset(x, 0, sizeof *x);
    snprintf(x->conv, sizeof x->conv, "%s", it->conv);
    snprintf(x->queue, sizeof x->queue, "%s", it->queue);
    x->wait_s = it->wait_s;
    return 0;
}

static int filter_ok(const char *want, const char *have)
{
    return !*want || strcmp(want, have) == 0;
}

/* The escalation event of w under level e: the conversation is now in
 * queue at priority, moved from queue from; new, NULL without memory. */
static json_t *escalation(const struct waiting *w, const struct redline_escalation *e, const char *from,
                          const char *queue, int priority, long long now)
{
    return json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:I, s:I, s:f, s:I}", "event", "escalated",
                     "conversation", w->conv, "service_level", e->name, "from_queue", from, "queue", queue,
                     "priority", rules_priority_name(priority), "tier", w->tier, "waited_s",
                     (json_int_t)w->wait_s, "level_s", (json_int_t)e->level_s, "share", e->share, "at",
                     (json_int_t)now);
}

/* Escalates conversation w under level e: priority, queue, a note in its
 * memory (the queue time it was escalated at), an event and its webhook
 * event in the same batch; then the queue. */
static void escalate(struct dialog *d, const struct waiting *w, const struct redline_escalation *e,
                     long long now)
{
    struct store_conv c;
    dialog_lock(d, w->conv);
    int rc = dialog_load(d, w->conv, &c), done = 0;
    json_t *ev = NULL;
    if (rc == 0 && c.state == STORE_QUEUED) {
        json_t *mem = json_loads(c.memory ? c.memory : "{}", 0, NULL);
        if (json_is_object(mem) && json_integer_value(json_object_get(mem, "escalated")) != c.queued_at) {
            json_object_set_new(mem, "escalated", json_integer(c.queued_at));
            char *s = json_dumps(mem, JSON_COMPACT | JSON_REAL_PRECISION(6)), *kept = c.memory;
            char from[QUEUE_NAME_MAX];
            snprintf(from, sizeof from, "%s", c.queue);
            if (*e->to_queue)
                snprintf(c.queue, sizeof c.queue, "%s", e->to_queue);
            if (c.priority < e->priority)
                c.priority = e->priority;
            c.updated_at = now;
            c.memory = s;
            ev = escalation(w, e, from, c.queue, c.priority, now);
            struct store_batch b;
            store_batch_init(&b);
            store_put_conv(&b, &c, NULL);
            store_add_event(&b, c.id, now, "escalate", NULL, c.queue, e->name);
            struct dialog_out out = {.body = NULL};
            int wrc =
                s && ev ? dialog_outbox_add(d, &b, &out, DIALOG_EV_ESCALATED, c.id, now, ev) : KEFU_ENOMEM;
            if (wrc == 0 && store_write(d->st, &b) == 0) {
                done = 1;
                dialog_enqueue(d, &c); /* its new queue and priority, the same queue time */
            }
            dialog_out_release(&out);
            c.memory = kept;
            free(s);
        }
        json_decref(mem);
    }
    dialog_unlock(d, w->conv);
    if (done) {
        atomic_fetch_add(&d->m.escalations, 1);
        log_json(LOG_LEVEL_WARN, "conversation escalated", ev);
        dialog_notify(d, NULL, 0);
    }
    json_decref(ev);
    if (rc == 0)
        store_conv_release(&c);
}

/* The first level whose filters hold for w, or NULL. */
static const struct redline_escalation *level_of(struct dialog *d, const struct waiting *w)
{
    for (size_t k = 0; k < redline_escalations(d->rl); k++) {
        const struct redline_escalation *e = redline_escalation(d->rl, k);
        if (filter_ok(e->channel, w->channel) && filter_ok(e->queue, w->queue) && filter_ok(e->tier, w->tier))
            return e;
    }
    return NULL;
}

int dialog_watch_now(struct dialog *d)
{
    if (!d->rl)
        return 0;
    long long now = dialog_now(d);
    struct waitlist w = {0};
    if (dialog_sync_queue(d, DIALOG_QUEUE_SYNC_MS) < 0) /* other nodes' handoffs and claims too */
        log_msg(LOG_LEVEL_WARN, "red lines: the queue could not be read from the store; using the last copy");
    queue_list(d->q, NULL, now, collect, &w);
    double *live = w.n ? kefu_calloc(w.n, sizeof *live) : NULL;
    struct redline_labels *ll = w.n ? kefu_calloc(w.n, sizeof *ll) : NULL;
    if (w.n && (!live || !ll)) {
        free(live), free(ll), free(w.v);
        return KEFU_ENOMEM;
    }
    for (size_t k = 0; k < w.n; k++) {
        struct store_conv c;
        if (store_get_conv(d->st, w.v[k].conv, &c) == 0) {
            snprintf(w.v[k].channel, sizeof w.v[k].channel, "%s", c.channel);
            dialog_tier(d, c.customer, w.v[k].tier, sizeof w.v[k].tier);
            store_conv_release(&c);
        }
        live[k] = (double)w.v[k].wait_s;
        ll[k] = (struct redline_labels){w.v[k].channel, w.v[k].queue, w.v[k].tier};
    }
    int breached = redline_eval(d->rl, now, live, ll, w.n, on_change, d);
    for (size_t k = 0; k < w.n; k++) {
        const struct redline_escalation *e = level_of(d, &w.v[k]);
        if (e && (double)w.v[k].wait_s >= e->share * (double)e->level_s)
            escalate(d, &w.v[k], e, now);
    }
    free(live);
    free(ll);
    free(w.v);
    return breached;
}

/* ---- the watcher thread ---- */

static void *watcher(void *arg)
{
    struct dialog *d = arg;
    pthread_mutex_lock(&d->watch_lock);
    while (!d->watch_stop) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        long long ns = ts.tv_nsec + (long long)d->watch_ms * 1000000;
        ts.tv_sec += ns / 1000000000;
        ts.tv_nsec = ns % 1000000000;
        while (!d->watch_stop && pthread_cond_timedwait(&d->watch_cond, &d->watch_lock, &ts) != ETIMEDOUT)
            ;
        if (d->watch_stop)
            break;
        pthread_mutex_unlock(&d->watch_lock);
        dialog_watch_now(d);
        pthread_mutex_lock(&d->watch_lock);
    }
    pthread_mutex_unlock(&d->watch_lock);
    return NULL;
}

int dialog_service_open(struct dialog *d, const struct dialog_config *cfg, struct rules_diag *diag)
{
    char path[4096];
    const char *file = cfg->redlines;
    if (!file) {
        struct stat st;
        snprintf(path, sizeof path, "%s/redlines.conf", d->rules_dir);
        file = stat(path, &st) == 0 ? path : NULL;
    }
    if (file && *file) {
        int rc = redline_load(file, diag, &d->rl);
        if (rc < 0)
            return dialog_fail(rc, "cannot load the red lines from '%s'", file);
    }
    d->watch_ms = cfg->watch_ms;
    if (d->rl && d->watch_ms > 0) {
        if (pthread_create(&d->watch_thread, NULL, watcher, d) != 0)
            return dialog_fail(KEFU_ENOMEM, "cannot start the red-line watcher");
        d->watch_started = 1;
    }
    return 0;
}

void dialog_service_close(struct dialog *d)
{
    if (d->watch_started) {
        pthread_mutex_lock(&d->watch_lock);
        d->watch_stop = 1;
        pthread_cond_signal(&d->watch_cond);
        pthread_mutex_unlock(&d->watch_lock);
        pthread_join(d->watch_thread, NULL);
        d->watch_started = 0;
    }
    redline_free(d->rl);
    d->rl = NULL;
}
