/* action.c — the rules' actions: endpoints from the server's configuration,
 * called through httpc (one libcurl worker thread, never a request thread).
 * Each call is a POST of the request JSON, signed like the webhooks:
 *
 *   X-Kefu-Action: order_status
 *   X-Kefu-Timestamp: 1796195399
 *   X-Kefu-Signature: sha256=<hex HMAC-SHA256(secret, "1796195399.<body>")>
 *
 * and its answer must be a 2xx with a JSON object no larger than the cap.
 * Before a call goes out, its endpoint's gate decides: at the concurrency
 * limit it is refused (busy); after breaker_failures failures in a row the
 * breaker opens and every call is refused (breaker_open) for breaker_open_s,
 * then one trial call goes out: its success closes the breaker, its failure
 * opens it again. A refusal costs no network and ends the call at once, so
 * a shop's system that is down costs the customer nothing but the fallback. */
#include "action.h"

#include "httpc.h"
#include "kefu.h"
#include "log.h"
#include "metrics.h"
#include "webhook.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum { OUT_OK, OUT_TIMEOUT, OUT_ERROR, OUT_MALFORMED, OUT_TOO_LARGE, OUT_BREAKER, OUT_BUSY, N_OUT };
static const char *const out_names[N_OUT] = {"ok",        "timeout",      "error", "malformed",
                                             "too_large", "breaker_open", "busy"};
#define N_LE 9
static const double le[N_LE] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5};

struct endpoint {
    struct endpoint *next;
    char *name, *url, *secret; /* owned; secret NULL: unsigned */
    double timeout_s;
    size_t max_bytes;
    int concurrency, breaker_failures;
    double breaker_open_s;
    pthread_mutex_t lock; /* the gate below */
    int in_flight, failures, trial;
    double open_until; /* monotonic seconds; 0: closed */
    atomic_long calls[N_OUT];
    atomic_long hist[N_LE + 1], sum_us;
};

struct stub {
    struct stub *next;
    char *name;
    json_t *result; /* NULL: fails */
};

struct actions {
    struct endpoint *eps;
    pthread_mutex_t lock; /* client creation and stubs */
    struct httpc *client; /* created at the first network call */
    struct stub *stubs;
};

struct flight {
    struct actions *a;
    struct endpoint *ep;
    action_done_fn done;
    void *ctx;
    double t0;
    int trial;
};

static double mono(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* ---- configuration ---- */

static void ep_free(struct endpoint *e)
{
    if (!e)
        return;
    free(e->name);
    free(e->url);
    free(e->secret);
    pthread_mutex_destroy(&e->lock);
    free(e);
}

int actions_create(struct actions **out)
{
    struct actions *a = kefu_calloc(1, sizeof *a);
    if (!a)
        return KEFU_ENOMEM;
    pthread_mutex_init(&a->lock, NULL);
    *out = a;
    return 0;
}

static int name_ok(const char *s)
{
    if (!*s || strlen(s) > 64)
        return 0;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') || *s == '_'))
            return 0;
    return 1;
}

static double num_or(json_t *o, const char *key, double dflt)
{
    json_t *v = json_object_get(o, key);
    return json_is_number(v) ? json_number_value(v) : dflt;
}

/* One endpoint from its object; NULL with err set. */
static struct endpoint *ep_read(const char *path, const char *name, json_t *o, char *err, size_t cap)
{
    static const char *const keys[] = {"url",       "secret",      "secret_env",       "timeout_s",
                                       "max_bytes", "concurrency", "breaker_failures", "breaker_open_s",
                                       NULL};
    const char *key;
    json_t *v;
    if (!name_ok(name)) {
        snprintf(err, cap, "%s: bad action name '%s' (a-z, 0-9, _)", path, name);
        return NULL;
    }
    if (!json_is_object(o)) {
        snprintf(err, cap, "%s: action '%s' must be an object {url, secret, timeout_s, ...}", path, name);
        return NULL;
    }
    json_object_foreach(o, key, v)
    {
        int known = 0;
        for (int k = 0; keys[k]; k++)
            known |= strcmp(key, keys[k]) == 0;
        if (!known) {
            snprintf(err, cap, "%s: action '%s': unknown key '%s'", path, name, key);
            return NULL;
        }
    }
    const char *url = json_string_value(json_object_get(o, "url"));
    if (!url || (strncmp(url, "http://", 7) != 0 && strncmp(url, "https://", 8) != 0)) {
        snprintf(err, cap, "%s: action '%s' needs a url (http:// or https://)", path, name);
        return NULL;
    }
    const char *secret = json_string_value(json_object_get(o, "secret"));
    const char *env = json_string_value(json_object_get(o, "secret_env"));
    if (env && !(secret = getenv(env))) {
        snprintf(err, cap, "%s: action '%s': environment variable %s is not set", path, name, env);
        return NULL;
    }
    struct endpoint *e = kefu_calloc(1, sizeof *e);
    if (!e) {
        snprintf(err, cap, "out of memory");
        return NULL;
    }
    pthread_mutex_init(&e->lock, NULL);
    e->name = kefu_strndup(name, strlen(name));
    e->url = kefu_strndup(url, strlen(url));
    e->secret = secret && *secret ? kefu_strndup(secret, strlen(secret)) : NULL;
    e->timeout_s = num_or(o, "timeout_s", 2);
    double mb = num_or(o, "max_bytes", 64 * 1024);
    double conc = num_or(o, "concurrency", 64), fails = num_or(o, "breaker_failures", 5);
    e->breaker_open_s = num_or(o, "breaker_open_s", 10);
    if (!e->name || !e->url || (secret && *secret && !e->secret)) {
        snprintf(err, cap, "out of memory");
        ep_free(e);
        return NULL;
    }
    if (!(e->timeout_s > 0 && e->timeout_s <= 60) || !(mb >= 2 && mb <= 16 * 1024 * 1024) ||
        !(conc >= 1 && conc <= 100000) || !(fails >= 1 && fails <= 100000) ||
        !(e->breaker_open_s > 0 && e->breaker_open_s <= 86400)) {
        snprintf(err, cap,
                 "%s: action '%s': timeout_s must be in (0, 60], max_bytes in [2, 16777216], concurrency and "
                 "breaker_failures in [1, 100000], breaker_open_s in (0, 86400]",
                 path, name);
        ep_free(e);
        return NULL;
    }
    e->max_bytes = (size_t)mb;
    e->concurrency = (int)conc;
    e->breaker_failures = (int)fails;
    return e;
}

int actions_load(const char *path, char *err, size_t cap, struct actions **out)
{
    *out = NULL;
    json_error_t je;
    FILE *f = fopen(path, "r");
    if (!f) {
        snprintf(err, cap, "%s: cannot read the actions configuration", path);
        return KEFU_EIO;
    }
    json_t *root = json_loadf(f, JSON_REJECT_DUPLICATES, &je);
    fclose(f);
    if (!root) {
        snprintf(err, cap, "%s:%d:%d: %s", path, je.line, je.column, je.text);
        return KEFU_ESYNTAX;
    }
    struct actions *a = NULL;
    int rc = json_is_object(root) ? actions_create(&a) : KEFU_EINVAL;
    if (rc == KEFU_EINVAL)
        snprintf(err, cap, "%s: expected an object of actions {\"NAME\": {\"url\": ...}}", path);
    const char *name;
    json_t *v;
    if (rc == 0)
        json_object_foreach(root, name, v)
        {
            struct endpoint *e = ep_read(path, name, v, err, cap);
            if (!e) {
                rc = KEFU_EINVAL;
                break;
            }
            e->next = a->eps;
            a->eps = e;
        }
    json_decref(root);
    if (rc < 0) {
        actions_free(a);
        return rc;
    }
    *out = a;
    return 0;
}

void actions_free(struct actions *a)
{
    if (!a)
        return;
    httpc_free(a->client); /* calls in flight end here, through their callbacks */
    for (struct endpoint *e = a->eps, *next; e; e = next) {
        next = e->next;
        ep_free(e);
    }
    actions_stub_clear(a);
    pthread_mutex_destroy(&a->lock);
    free(a);
}

static struct endpoint *find_ep(const struct actions *a, const char *name)
{
    for (struct endpoint *e = a ? a->eps : NULL; e; e = e->next)
        if (strcmp(e->name, name) == 0)
            return e;
    return NULL;
}

/* The stub for name, or NULL; a->lock held. */
static struct stub *find_stub(const struct actions *a, const char *name)
{
    for (struct stub *s = a->stubs; s; s = s->next)
        if (strcmp(s->name, name) == 0)
            return s;
    return NULL;
}

int actions_known(const struct actions *a, const char *name)
{
    if (!a)
        return 0;
    if (find_ep(a, name))
        return 1;
    pthread_mutex_lock((pthread_mutex_t *)&a->lock);
    int k = find_stub(a, name) != NULL;
    pthread_mutex_unlock((pthread_mutex_t *)&a->lock);
    return k;
}

int actions_known_fn(void *ctx, const char *name)
{
    return actions_known(ctx, name);
}

int actions_stub(struct actions *a, const char *name, json_t *result)
{
    json_t *copy = result ? json_deep_copy(result) : NULL;
    if (result && !copy)
        return KEFU_ENOMEM;
    pthread_mutex_lock(&a->lock);
    struct stub *s = find_stub(a, name);
    if (!s && (s = kefu_calloc(1, sizeof *s))) {
        if (!(s->name = kefu_strndup(name, strlen(name)))) {
            free(s);
            s = NULL;
        } else {
            s->next = a->stubs;
            a->stubs = s;
        }
    }
    if (!s) {
        pthread_mutex_unlock(&a->lock);
        json_decref(copy);
        return KEFU_ENOMEM;
    }
    json_decref(s->result);
    s->result = copy;
    pthread_mutex_unlock(&a->lock);
    return 0;
}

void actions_stub_clear(struct actions *a)
{
    pthread_mutex_lock(&a->lock);
    for (struct stub *s = a->stubs, *next; s; s = next) {
        next = s->next;
        json_decref(s->result);
        free(s->name);
        free(s);
    }
    a->stubs = NULL;
    pthread_mutex_unlock(&a->lock);
}

/* ---- calls ---- */

static void count(struct endpoint *e, int out, double seconds)
{
    if (!e)
        return;
    atomic_fetch_add_explicit(&e->calls[out], 1, memory_order_relaxed);
    if (out == OUT_BREAKER || out == OUT_BUSY)
        return;
    int b = 0;
    while (b < N_LE && seconds > le[b])
        b++;
    atomic_fetch_add_explicit(&e->hist[b], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&e->sum_us, (long)(seconds * 1e6), memory_order_relaxed);
}

static void finish(action_done_fn done, void *ctx, int out, const char *error, long status, double secs,
                   json_t *result, int stubbed)
{
    struct action_result r = {.ok = out == OUT_OK,
                              .outcome = out_names[out],
                              .error = error ? error : "",
                              .status = status,
                              .seconds = secs,
                              .stubbed = stubbed,
                              .result = out == OUT_OK ? result : NULL};
    done(ctx, &r);
}

/* The gate before a call: 0 to go (*trial set for the breaker's trial call), or the refusal. */
static int gate_enter(struct endpoint *e, int *trial)
{
    double now = mono();
    int out = 0;
    *trial = 0;
    pthread_mutex_lock(&e->lock);
    if (e->open_until > 0 && (now < e->open_until || e->trial))
        out = OUT_BREAKER;
    else if (e->in_flight >= e->concurrency)
        out = OUT_BUSY;
    if (out == 0) {
        if (e->open_until > 0)
            *trial = e->trial = 1; /* half open: this call decides */
        e->in_flight++;
    }
    pthread_mutex_unlock(&e->lock);
    return out;
}

static void gate_leave(struct endpoint *e, int trial, int ok)
{
    pthread_mutex_lock(&e->lock);
    e->in_flight--;
    if (trial)
        e->trial = 0;
    if (ok) {
        e->failures = 0;
        if (e->open_until > 0)
            log_msg(LOG_LEVEL_INFO, "action '%s': breaker closed", e->name);
        e->open_until = 0;
    } else if (trial || ++e->failures >= e->breaker_failures) {
        if (e->open_until == 0)
            log_msg(LOG_LEVEL_WARN, "action '%s': breaker open after %d failures", e->name, e->failures);
        e->open_until = mono() + e->breaker_open_s;
    }
    pthread_mutex_unlock(&e->lock);
}

/* httpc_done_fn: judges the answer, leaves the gate, tells the caller. */
static void answered(void *ctx, const struct httpc_result *r)
{
    struct flight *f = ctx;
    double secs = mono() - f->t0;
    json_t *res = NULL;
    char why[200];
    int out = OUT_OK;
    if (r->rc == KEFU_ERANGE) {
        out = OUT_TOO_LARGE;
        snprintf(why, sizeof why, "answer larger than %zu bytes", f->ep->max_bytes);
    } else if (r->rc < 0) {
        out = r->timed_out ? OUT_TIMEOUT : OUT_ERROR;
        snprintf(why, sizeof why, "%s", r->error);
    } else if (r->status < 200 || r->status > 299) {
        out = OUT_ERROR;
        snprintf(why, sizeof why, "status %ld", r->status);
    } else {
        json_error_t je;
        res = json_loadb(r->body, r->len, JSON_REJECT_DUPLICATES, &je);
        if (!json_is_object(res)) {
            out = OUT_MALFORMED;
            snprintf(why, sizeof why, "answer is not a JSON object%s%s", res ? "" : ": ", res ? "" : je.text);
        }
    }
    if (out != OUT_OK)
        log_msg(LOG_LEVEL_WARN, "action '%s' failed: %s", f->ep->name, why);
    gate_leave(f->ep, f->trial, out == OUT_OK);
    count(f->ep, out, secs);
    finish(f->done, f->ctx, out, out == OUT_OK ? NULL : why, r->status, secs, res, 0);
    json_decref(res);
    free(f);
}

static struct httpc *client(struct actions *a)
{
    pthread_mutex_lock(&a->lock);
    if (!a->client && httpc_create(&(struct httpc_config){.connect_timeout_s = 2}, &a->client) < 0)
        a->client = NULL;
    struct httpc *h = a->client;
    pthread_mutex_unlock(&a->lock);
    return h;
}

/* A stubbed answer, when name has a stub: 1 (done ran), else 0. */
static int call_stub(struct actions *a, const char *name, action_done_fn done, void *ctx)
{
    double t0 = mono();
    pthread_mutex_lock(&a->lock);
    struct stub *s = find_stub(a, name);
    json_t *res = s ? json_incref(s->result) : NULL;
    int found = s != NULL;
    pthread_mutex_unlock(&a->lock);
    if (!found)
        return 0;
    if (res)
        finish(done, ctx, OUT_OK, NULL, 200, mono() - t0, res, 1);
    else
        finish(done, ctx, OUT_ERROR, "stubbed to fail", 0, mono() - t0, NULL, 1);
    json_decref(res);
    return 1;
}

void actions_call(struct actions *a, const char *name, json_t *body, action_done_fn done, void *ctx)
{
    if (a && call_stub(a, name, done, ctx))
        return;
    struct endpoint *e = find_ep(a, name);
    if (!e) {
        struct action_result r = {.outcome = "unknown", .error = "no such action configured"};
        done(ctx, &r);
        return;
    }
    int trial, refused = gate_enter(e, &trial);
    if (refused) {
        count(e, refused, 0);
        finish(done, ctx, refused, refused == OUT_BUSY ? "too many calls in flight" : "breaker open", 0, 0,
               NULL, 0);
        return;
    }
    char *text = json_dumps(body, JSON_COMPACT);
    struct flight *f = kefu_calloc(1, sizeof *f);
    struct httpc *h = text && f ? client(a) : NULL;
    int rc = KEFU_ENOMEM;
    if (h) {
        long long ts = (long long)time(NULL);
        char sig[65] = "", hs[96], ht[48], ha[96];
        snprintf(ht, sizeof ht, "X-Kefu-Timestamp: %lld", ts);
        snprintf(ha, sizeof ha, "X-Kefu-Action: %s", e->name);
        if (e->secret)
            webhook_sign(e->secret, ts, text, strlen(text), sig);
        snprintf(hs, sizeof hs, "X-Kefu-Signature: sha256=%s", sig);
        const char *headers[] = {ha, ht, e->secret ? hs : NULL, NULL};
        *f = (struct flight){a, e, done, ctx, mono(), trial};
        struct httpc_request req = {.url = e->url,
                                    .body = text,
                                    .len = strlen(text),
                                    .headers = headers,
                                    .timeout_s = e->timeout_s,
                                    .max_response = e->max_bytes};
        rc = httpc_post(h, &req, answered, f);
    }
    free(text);
    if (rc == 0)
        return;
    free(f);
    gate_leave(e, trial, 0);
    count(e, OUT_ERROR, 0);
    finish(done, ctx, OUT_ERROR, "cannot start the call", 0, 0, NULL, 0);
}

/* What actions_call_wait() sleeps on. */
struct waiter {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int finished, ok, stubbed;
    json_t *result;
    char outcome[160];
    double seconds;
};

static void wake(void *ctx, const struct action_result *r)
{
    struct waiter *w = ctx;
    pthread_mutex_lock(&w->lock);
    w->ok = r->ok;
    w->result = r->ok ? json_incref(r->result) : NULL;
    snprintf(w->outcome, sizeof w->outcome, "%s%s%s", r->outcome, *r->error ? ": " : "", r->error);
    w->seconds = r->seconds;
    w->stubbed = r->stubbed;
    w->finished = 1;
    pthread_cond_signal(&w->cond);
    pthread_mutex_unlock(&w->lock);
}

int actions_call_wait(struct actions *a, const char *name, json_t *body, json_t **result, char *outcome,
                      size_t cap, double *seconds, int *stubbed)
{
    struct waiter w = {.ok = 0};
    pthread_mutex_init(&w.lock, NULL);
    pthread_cond_init(&w.cond, NULL);
    actions_call(a, name, body, wake, &w);
    pthread_mutex_lock(&w.lock);
    while (!w.finished)
        pthread_cond_wait(&w.cond, &w.lock);
    pthread_mutex_unlock(&w.lock);
    pthread_cond_destroy(&w.cond);
    pthread_mutex_destroy(&w.lock);
    *result = w.result;
    if (outcome && cap)
        snprintf(outcome, cap, "%s", w.outcome);
    if (seconds)
        *seconds = w.seconds;
    if (stubbed)
        *stubbed = w.stubbed;
    return w.ok;
}

int actions_metrics(struct actions *a, struct text_buf *out)
{
    int rc = 0;
    if (!a || !a->eps)
        return 0;
    rc |= metrics_printf(out, "# HELP kefu_action_calls_total Calls of the rules' actions by outcome.\n"
                              "# TYPE kefu_action_calls_total counter\n");
    for (struct endpoint *e = a->eps; e; e = e->next)
        for (int k = 0; k < N_OUT; k++)
            rc |= metrics_printf(out, "kefu_action_calls_total{action=\"%s\",outcome=\"%s\"} %ld\n", e->name,
                                 out_names[k], atomic_load(&e->calls[k]));
    rc |= metrics_printf(out,
                         "# HELP kefu_action_duration_seconds Latency of the actions' calls that went out.\n"
                         "# TYPE kefu_action_duration_seconds histogram\n");
    for (struct endpoint *e = a->eps; e; e = e->next) {
        long cum = 0;
        for (int b = 0; b <= N_LE; b++) {
            cum += atomic_load(&e->hist[b]);
            if (b < N_LE)
                rc |=
                    metrics_printf(out, "kefu_action_duration_seconds_bucket{action=\"%s\",le=\"%g\"} %ld\n",
                                   e->name, le[b], cum);
            else
                rc |= metrics_printf(out,
                                     "kefu_action_duration_seconds_bucket{action=\"%s\",le=\"+Inf\"} %ld\n",
                                     e->name, cum);
        }
        rc |= metrics_printf(out, "kefu_action_duration_seconds_sum{action=\"%s\"} %.6f\n", e->name,
                             atomic_load(&e->sum_us) / 1e6);
        rc |= metrics_printf(out, "kefu_action_duration_seconds_count{action=\"%s\"} %ld\n", e->name, cum);
    }
    rc |=
        metrics_printf(out, "# HELP kefu_action_breaker_open 1 while the action's circuit breaker is open.\n"
                            "# TYPE kefu_action_breaker_open gauge\n");
    for (struct endpoint *e = a->eps; e; e = e->next) {
        pthread_mutex_lock(&e->lock);
        int open = e->open_until > 0;
        pthread_mutex_unlock(&e->lock);
        rc |= metrics_printf(out, "kefu_action_breaker_open{action=\"%s\"} %d\n", e->name, open);
    }
    return rc ? KEFU_ENOMEM : 0;
}

/* ---- reading results ---- */

/* Copies s into buf as text: control characters become spaces, cut at a character boundary. */
static void as_text(const char *s, char *buf, size_t cap)
{
    size_t o = 0, n = strlen(s);
    if (n >= cap) {
        n = cap - 1;
        while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80)
            n--;
    }
    for (size_t i = 0; i < n; i++)
        buf[o++] = (unsigned char)s[i] < 0x20 || s[i] == 0x7f ? ' ' : s[i];
    buf[o] = 0;
}

static int scalar_text(json_t *v, char *buf, size_t cap)
{
    if (json_is_string(v))
        as_text(json_string_value(v), buf, cap);
    else if (json_is_integer(v))
        snprintf(buf, cap, "%lld", (long long)json_integer_value(v));
    else if (json_is_real(v))
        snprintf(buf, cap, "%g", json_real_value(v));
    else if (json_is_boolean(v))
        snprintf(buf, cap, "%s", json_is_true(v) ? "true" : "false");
    else
        return 0;
    return 1;
}

int action_field(json_t *result, const char *path, char *buf, size_t cap)
{
    json_t *v = result;
    char key[128];
    buf[0] = 0;
    for (const char *p = path; v && *p;) {
        size_t n = strcspn(p, ".");
        if (n >= sizeof key)
            return 0;
        memcpy(key, p, n);
        key[n] = 0;
        v = json_object_get(v, key);
        p += n + (p[n] == '.');
    }
    if (!v || v == result || !scalar_text(v, buf, cap)) {
        buf[0] = 0;
        return 0;
    }
    return 1;
}

static void flatten(json_t *o, const char *prefix, int depth, struct attr *v, size_t cap, size_t *n,
                    char *buf, size_t bufcap, size_t *used)
{
    const char *key;
    json_t *x;
    json_object_foreach(o, key, x)
    {
        char name[160], val[256];
        snprintf(name, sizeof name, "%s%s%s", prefix, *prefix ? "." : "", key);
        if (json_is_object(x) && depth < 3) {
            flatten(x, name, depth + 1, v, cap, n, buf, bufcap, used);
            continue;
        }
        if (*n >= cap || !scalar_text(x, val, sizeof val))
            continue;
        size_t kl = strlen(name) + 1, vl = strlen(val) + 1;
        if (*used + kl + vl > bufcap)
            return;
        memcpy(buf + *used, name, kl);
        memcpy(buf + *used + kl, val, vl);
        v[(*n)++] = (struct attr){buf + *used, buf + *used + kl};
        *used += kl + vl;
    }
}

void action_attrs(json_t *result, struct attr *v, size_t cap, size_t *n, char *buf, size_t bufcap)
{
    size_t used = 0;
    if (json_is_object(result))
        flatten(result, "", 1, v, cap, n, buf, bufcap, &used);
}

#define CHOOSE_ATTRS 96
void action_choose(const struct rules_intent *it, int ok, json_t *result, const struct attrs *conv,
                   const char *locale, const char *dflt, struct action_choice *out)
{
    struct attr av[CHOOSE_ATTRS];
    char fields[8192];
    size_t n = conv->n < CHOOSE_ATTRS ? conv->n : CHOOSE_ATTRS;
    memcpy(av, conv->v, n * sizeof *av);
    if (ok)
        action_attrs(result, av, CHOOSE_ATTRS, &n, fields, sizeof fields);
    struct attrs a = {av, n};
    memset(out, 0, sizeof *out);
    int g = rules_on_pick(it, !ok, &a, NULL);
    if (g < 0) {
        out->tpl = ok ? dflt : NULL;
        out->failed_handoff = !ok;
        return;
    }
    struct rules_reply replies[16];
    size_t nr = 0;
    for (size_t k = 0; k < it->n_ons; k++) {
        const struct rules_on *o = &it->ons[k];
        if (o->group != g)
            continue;
        if (o->reply && nr < 16)
            replies[nr++] = *o->reply;
        if (o->handoff && !out->handoff)
            out->handoff = o->handoff;
    }
    out->tpl = rules_reply_pick(replies, nr, locale, 0);
}
