/* webhook.c — the webhook sender. The outbox rows are the queue: one
 * thread reads, for each target, every conversation's oldest pending row
 * whose time has come (store_outbox_due()), posts it through httpc, and
 * writes the outcome back to the row. A conversation has at most one row
 * on the wire per target, so its events arrive in order; different
 * conversations go out side by side. Each try is
 *
 *   POST /path
 *   Content-Type: application/json
 *   X-Kefu-Event: handoff
 *   X-Kefu-Event-Id: ev_<32 hex>        the same on every try and target
 *   X-Kefu-Attempt: 1
 *   X-Kefu-Timestamp: 1796195399
 *   X-Kefu-Signature: sha256=<hex HMAC-SHA256(secret, "1796195399.<body>")>
 *
 * A 2xx status is delivery. Anything else (another status, no answer in
 * time, a certificate that does not verify) is logged and tried again after
 * backoff_s, 2·backoff_s, ... (at most backoff_max_s), until attempts are
 * spent: then the row is dead until an operator replays it. A row whose
 * answer never came back (a crash, kill -9, a stop) is still pending and
 * is sent again: delivery is at least once, and the receiver removes
 * repeats by the event id. */
#include "webhook.h"

#include "httpc.h"
#include "kefu.h"
#include "log.h"

#include <errno.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_FLIGHTS 32 /* tries on the wire at once, over every target */

/* One try on the wire. */
struct flight {
    struct flight *next;     /* on the wire list (sender thread only) */
    struct flight *answered; /* on the finished list (under lock) */
    struct webhook *w;
    long long id;
    int target, attempts; /* attempts: including this one */
    char event[48];
    int rc; /* filled by the callback */
    long status;
    char err[256];
};

struct webhook {
    struct webhook_config cfg;
    char **urls; /* owned */
    char *secret;
    struct httpc *http;
    pthread_t thread;
    pthread_mutex_t lock; /* finished, stop, stats */
    pthread_cond_t cond;
    struct flight *finished; /* answered, waiting for the sender to write the outcome */
    int stop;
    struct webhook_stats stats;
    struct flight *flying; /* sender thread only */
    int n_flying;
    long long pruned_at;
};

void webhook_sign(const char *secret, long long ts, const char *body, size_t len, char out[65])
{
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    char prefix[32];
    int pl = snprintf(prefix, sizeof prefix, "%lld.", ts); /* signed input: "<ts>.<body>" */
    unsigned char *msg = kefu_malloc((size_t)pl + len);
    out[0] = 0;
    if (!msg)
        return;
    memcpy(msg, prefix, (size_t)pl);
    memcpy(msg + pl, body, len);
    HMAC(EVP_sha256(), secret, (int)strlen(secret), msg, (size_t)pl + len, mac, &n);
    free(msg);
    for (unsigned int i = 0; i < n && i < 32; i++)
        sprintf(out + 2 * i, "%02x", mac[i]);
}

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* httpc_done_fn: hands the answer to the sender thread. */
static void answered(void *ctx, const struct httpc_result *r)
{
    struct flight *f = ctx;
    struct webhook *w = f->w;
    f->rc = r->rc;
    f->status = r->status;
    snprintf(f->err, sizeof f->err, "%s", r->error);
    pthread_mutex_lock(&w->lock);
    f->answered = w->finished;
    w->finished = f;
    pthread_cond_signal(&w->cond);
    pthread_mutex_unlock(&w->lock);
}

/* The delay before try attempts + 1, in milliseconds. */
static long long backoff_ms(const struct webhook *w, int attempts)
{
    double d = w->cfg.backoff_s;
    for (int k = 1; k < attempts && d < w->cfg.backoff_max_s; k++)
        d *= 2;
    if (d > w->cfg.backoff_max_s)
        d = w->cfg.backoff_max_s;
    return (long long)(d * 1000);
}

/* Writes f's outcome to its row: delivered, pending with a later try, or dead. */
static void settle(struct webhook *w, struct flight *f)
{
    char why[300];
    int ok = f->rc == 0 && f->status >= 200 && f->status < 300;
    if (f->rc < 0)
        snprintf(why, sizeof why, "%s", f->err);
    else
        snprintf(why, sizeof why, "HTTP status %ld", f->status);
    long long t = now_ms();
    struct store_outbox o = {.id = f->id, .attempts = f->attempts, .error = ok ? "" : why};
    if (ok) {
        o.state = STORE_OUT_DELIVERED;
        o.done_at = t / 1000;
    } else if (f->attempts >= w->cfg.attempts) {
        o.state = STORE_OUT_DEAD;
        o.done_at = t / 1000;
        log_msg(LOG_LEVEL_ERROR,
                "webhook event %s to '%s' is dead after %d attempts: %s (kefu webhook replay)", f->event,
                w->urls[f->target], f->attempts, why);
    } else {
        o.state = STORE_OUT_PENDING;
        o.next_ms = t + backoff_ms(w, f->attempts);
        log_msg(LOG_LEVEL_WARN, "webhook event %s to '%s' failed (attempt %d of %d): %s", f->event,
                w->urls[f->target], f->attempts, w->cfg.attempts, why);
    }
    struct store_batch b;
    store_batch_init(&b);
    store_mark_outbox(&b, &o);
    int rc = store_write(w->cfg.store, &b);
    if (rc < 0) /* the row stays as it was: sent again later */
        log_msg(LOG_LEVEL_ERROR, "cannot record webhook event %s: %s", f->event, kefu_strerror(rc));
    pthread_mutex_lock(&w->lock);
    if (ok)
        w->stats.delivered++;
    else {
        w->stats.failed++;
        w->stats.dead += o.state == STORE_OUT_DEAD;
    }
    pthread_mutex_unlock(&w->lock);
}

/* Takes f off the wire list. */
static void unfly(struct webhook *w, struct flight *f)
{
    for (struct flight **p = &w->flying; *p; p = &(*p)->next)
        if (*p == f) {
            *p = f->next;
            w->n_flying--;
            return;
        }
}

static int flying(const struct webhook *w, long long id)
{
    for (const struct flight *f = w->flying; f; f = f->next)
        if (f->id == id)
            return 1;
    return 0;
}

struct launch {
    struct webhook *w;
    int target;
};

/* store_outbox_fn: puts one due row on the wire unless it is there already. */
static int launch_row(void *ctx, const struct store_outbox *o)
{
    struct launch *l = ctx;
    struct webhook *w = l->w;
    if (w->n_flying >= MAX_FLIGHTS)
        return 1;
    if (flying(w, o->id))
        return 0;
    struct flight *f = kefu_calloc(1, sizeof *f);
    if (!f)
        return 1;
    f->w = w;
    f->id = o->id;
    f->target = l->target;
    f->attempts = o->attempts + 1;
    snprintf(f->event, sizeof f->event, "%s", o->event);
    long long ts = (long long)time(NULL);
    size_t len = strlen(o->body);
    char sig[65] = "", h_type[96], h_id[96], h_try[48], h_ts[48], h_sig[96];
    if (w->secret && *w->secret)
        webhook_sign(w->secret, ts, o->body, len, sig);
    snprintf(h_type, sizeof h_type, "X-Kefu-Event: %s", o->type);
    snprintf(h_id, sizeof h_id, "X-Kefu-Event-Id: %s", o->event);
    snprintf(h_try, sizeof h_try, "X-Kefu-Attempt: %d", f->attempts);
    snprintf(h_ts, sizeof h_ts, "X-Kefu-Timestamp: %lld", ts);
    snprintf(h_sig, sizeof h_sig, "X-Kefu-Signature: sha256=%s", sig);
    const char *headers[] = {h_type, h_id, h_try, h_ts, *sig ? h_sig : NULL, NULL};
    struct httpc_request req = {.url = w->urls[l->target], .body = o->body, .len = len, .headers = headers};
    f->next = w->flying;
    w->flying = f;
    w->n_flying++;
    if (httpc_post(w->http, &req, answered, f) < 0) {
        unfly(w, f);
        free(f);
        return 1;
    }
    return 0;
}

/* Writes the outcome of every answered try. */
static void settle_finished(struct webhook *w)
{
    pthread_mutex_lock(&w->lock);
    struct flight *list = w->finished;
    w->finished = NULL;
    pthread_mutex_unlock(&w->lock);
    while (list) {
        struct flight *f = list;
        list = f->answered;
        unfly(w, f);
        settle(w, f);
        free(f);
    }
}

/* Once an hour: deletes the rows delivered more than keep_days ago. */
static void prune(struct webhook *w)
{
    long long now = (long long)time(NULL);
    if (now - w->pruned_at < 3600)
        return;
    w->pruned_at = now;
    struct store_batch b;
    store_batch_init(&b);
    store_prune_outbox(&b, now - (long long)w->cfg.keep_days * 86400);
    store_write(w->cfg.store, &b);
}

static void *sender(void *arg)
{
    struct webhook *w = arg;
    for (;;) {
        settle_finished(w);
        pthread_mutex_lock(&w->lock);
        int stop = w->stop;
        pthread_mutex_unlock(&w->lock);
        if (stop)
            break;
        prune(w);
        long long t = now_ms();
        for (int i = 0; i < w->cfg.n_urls && w->n_flying < MAX_FLIGHTS; i++) {
            struct launch l = {w, i};
            if (store_outbox_due(w->cfg.store, w->urls[i], t, MAX_FLIGHTS, launch_row, &l) < 0)
                log_msg(LOG_LEVEL_ERROR, "cannot read the webhook outbox");
        }
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        long long ns = until.tv_nsec + (long long)(w->cfg.poll_s * 1e9);
        until.tv_sec += (time_t)(ns / 1000000000LL);
        until.tv_nsec = (long)(ns % 1000000000LL);
        pthread_mutex_lock(&w->lock);
        while (!w->stop && !w->finished && pthread_cond_timedwait(&w->cond, &w->lock, &until) != ETIMEDOUT)
            ;
        pthread_mutex_unlock(&w->lock);
    }
    return NULL;
}

static void webhook_release(struct webhook *w)
{
    for (int i = 0; w->urls && i < w->cfg.n_urls; i++)
        free(w->urls[i]);
    free(w->urls);
    free(w->secret);
    pthread_cond_destroy(&w->cond);
    pthread_mutex_destroy(&w->lock);
    free(w);
}

int webhook_create(const struct webhook_config *cfg, struct webhook **out)
{
    if (!cfg->store || cfg->n_urls <= 0)
        return KEFU_EINVAL;
    for (int i = 0; i < cfg->n_urls; i++) {
        const char *u = cfg->urls[i];
        if (!u || (strncmp(u, "http://", 7) != 0 && strncmp(u, "https://", 8) != 0) ||
            strlen(u) <= (size_t)(u[4] == 's' ? 8 : 7) || u[u[4] == 's' ? 8 : 7] == '/')
            return KEFU_EINVAL;
    }
    struct webhook *w = kefu_calloc(1, sizeof *w);
    if (!w)
        return KEFU_ENOMEM;
    pthread_mutex_init(&w->lock, NULL);
    pthread_cond_init(&w->cond, NULL);
    w->cfg = *cfg;
    if (w->cfg.attempts <= 0)
        w->cfg.attempts = 8;
    if (w->cfg.backoff_s <= 0)
        w->cfg.backoff_s = 1;
    if (w->cfg.backoff_max_s <= 0)
        w->cfg.backoff_max_s = 300;
    if (w->cfg.timeout_s <= 0)
        w->cfg.timeout_s = 10;
    if (w->cfg.poll_s <= 0)
        w->cfg.poll_s = 0.2;
    if (w->cfg.keep_days <= 0)
        w->cfg.keep_days = 7;
    w->cfg.urls = NULL;
    w->cfg.secret = w->cfg.ca_file = NULL; /* not kept: copies below, or in httpc */
    int rc = (w->urls = kefu_calloc((size_t)cfg->n_urls, sizeof *w->urls)) ? 0 : KEFU_ENOMEM;
    for (int i = 0; rc == 0 && i < cfg->n_urls; i++)
        if (!(w->urls[i] = kefu_strndup(cfg->urls[i], strlen(cfg->urls[i]))))
            rc = KEFU_ENOMEM;
    if (rc == 0 && cfg->secret && !(w->secret = kefu_strndup(cfg->secret, strlen(cfg->secret))))
        rc = KEFU_ENOMEM;
    struct httpc_config hc = {.ca_file = cfg->ca_file,
                              .timeout_s = w->cfg.timeout_s,
                              .connect_timeout_s = w->cfg.timeout_s < 5 ? w->cfg.timeout_s : 5,
                              .max_response = 64 * 1024};
    if (rc == 0)
        rc = httpc_create(&hc, &w->http);
    if (rc == 0 && pthread_create(&w->thread, NULL, sender, w) != 0) {
        httpc_free(w->http);
        rc = KEFU_ENOMEM;
    }
    if (rc < 0) {
        webhook_release(w);
        return rc;
    }
    *out = w;
    return 0;
}

void webhook_free(struct webhook *w)
{
    if (!w)
        return;
    pthread_mutex_lock(&w->lock);
    w->stop = 1;
    pthread_cond_broadcast(&w->cond);
    pthread_mutex_unlock(&w->lock);
    pthread_join(w->thread, NULL);
    httpc_free(w->http); /* what is on the wire ends now (KEFU_EBUSY): its rows stay pending */
    for (struct flight *f = w->finished, *next; f; f = next) {
        next = f->answered;
        if (f->rc != KEFU_EBUSY) /* answered before the stop: the answer counts */
            settle(w, f);
        free(f);
    }
    webhook_release(w);
}

void webhook_stats(struct webhook *w, struct webhook_stats *out)
{
    pthread_mutex_lock(&w->lock);
    *out = w->stats;
    pthread_mutex_unlock(&w->lock);
}
