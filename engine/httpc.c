/* httpc.c — the outgoing HTTP client (httpc.h) over libcurl's multi
 * interface. httpc_post() copies the request onto a queue under a lock and
 * wakes the worker (curl_multi_wakeup); the worker moves queued requests
 * into the multi handle, drives them all with curl_multi_perform() and
 * curl_multi_poll(), and calls each one's done as it finishes. Every easy
 * handle gets the same safety settings: http and https only, no redirects,
 * peer and host verification on, the timeouts, and a write callback that
 * stops the transfer once the response passes the cap. */
#include "httpc.h"

#include "kefu.h"

#include <curl/curl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct req {
    struct req *next;
    CURL *easy;
    struct curl_slist *headers;
    char *body; /* owned copy of the request body */
    size_t len;
    char *resp; /* what came back so far, NUL-terminated */
    size_t rlen, rcap, max;
    int over; /* the response passed max_response */
    char err[CURL_ERROR_SIZE];
    httpc_done_fn done;
    void *ctx;
};

struct httpc {
    struct httpc_config cfg;
    char *ca_file; /* owned */
    CURLM *multi;
    pthread_t thread;
    pthread_mutex_t lock; /* queue and stop */
    struct req *queue;
    int stop;
    struct req *running; /* worker thread only */
};

static pthread_once_t global_once = PTHREAD_ONCE_INIT;
static char version_text[128];

static void global_init(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
    const curl_version_info_data *v = curl_version_info(CURLVERSION_NOW);
    snprintf(version_text, sizeof version_text, "libcurl %s (%s)", v->version,
             v->ssl_version ? v->ssl_version : "no TLS");
}

const char *httpc_version(void)
{
    pthread_once(&global_once, global_init);
    return version_text;
}

/* Appends line to l; NULL (and l freed) when out of memory. */
static struct curl_slist *append(struct curl_slist *l, const char *line)
{
    struct curl_slist *n = curl_slist_append(l, line);
    if (!n)
        curl_slist_free_all(l);
    return n;
}

static void req_free(struct req *r)
{
    if (!r)
        return;
    if (r->easy)
        curl_easy_cleanup(r->easy);
    curl_slist_free_all(r->headers);
    free(r->body);
    free(r->resp);
    free(r);
}

/* Ends r: calls its done with what came back, then frees it. */
static void req_finish(struct req *r, CURLcode code, int rc)
{
    struct httpc_result res = {.rc = rc, .body = r->resp ? r->resp : "", .len = r->rlen, .error = ""};
    char line[CURL_ERROR_SIZE + 64];
    if (rc == 0 && r->over) {
        res.rc = KEFU_ERANGE;
        snprintf(line, sizeof line, "response larger than the limit");
        res.error = line;
    } else if (rc == 0 && code != CURLE_OK) {
        res.rc = KEFU_EIO;
        res.timed_out = code == CURLE_OPERATION_TIMEDOUT;
        snprintf(line, sizeof line, "%s", *r->err ? r->err : curl_easy_strerror(code));
        res.error = line;
    } else if (rc < 0) {
        res.error = "client stopped before the request ended";
    }
    if (res.rc == 0 || res.rc == KEFU_ERANGE)
        curl_easy_getinfo(r->easy, CURLINFO_RESPONSE_CODE, &res.status);
    r->done(r->ctx, &res);
    req_free(r);
}

static size_t on_data(char *p, size_t size, size_t n, void *arg)
{
    struct req *r = arg;
    size_t k = size * n;
    if (r->rlen + k > r->max) {
        r->over = 1;
        return 0; /* stops the transfer with CURLE_WRITE_ERROR */
    }
    if (r->rlen + k + 1 > r->rcap) {
        size_t cap = (r->rlen + k + 1) * 2;
        char *q = kefu_realloc(r->resp, cap);
        if (!q)
            return 0;
        r->resp = q;
        r->rcap = cap;
    }
    memcpy(r->resp + r->rlen, p, k);
    r->rlen += k;
    r->resp[r->rlen] = 0;
    return k;
}

/* The easy handle of r with every safety setting; 0 or KEFU_ENOMEM. */
static int req_setup(struct httpc *h, struct req *r, const char *url, double timeout_s)
{
    CURL *e = r->easy = curl_easy_init();
    if (!e)
        return KEFU_ENOMEM;
    int bad = 0;
    bad |= curl_easy_setopt(e, CURLOPT_URL, url) != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https") != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L) != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 1L) != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 2L) != CURLE_OK;
    if (h->ca_file)
        bad |= curl_easy_setopt(e, CURLOPT_CAINFO, h->ca_file) != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L) != CURLE_OK;
    bad |=
        curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, (long)(h->cfg.connect_timeout_s * 1000)) != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)(timeout_s * 1000)) != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_POST, 1L) != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_POSTFIELDS, r->body) != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)r->len) != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_HTTPHEADER, r->headers) != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_USERAGENT, "kefu") != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_data) != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_WRITEDATA, r) != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_ERRORBUFFER, r->err) != CURLE_OK;
    return bad ? KEFU_ENOMEM : 0;
}

/* Moves what httpc_post() queued into the multi handle; lock held. */
static void take_queue(struct httpc *h)
{
    struct req *q = h->queue;
    h->queue = NULL;
    while (q) {
        struct req *r = q;
        q = q->next;
        if (curl_multi_add_handle(h->multi, r->easy) != CURLM_OK) {
            pthread_mutex_unlock(&h->lock);
            req_finish(r, CURLE_FAILED_INIT, 0);
            pthread_mutex_lock(&h->lock);
            continue;
        }
        r->next = h->running;
        h->running = r;
    }
}

/* Unlinks the running request whose handle is e and returns it. */
static struct req *take_running(struct httpc *h, CURL *e)
{
    for (struct req **p = &h->running; *p; p = &(*p)->next)
        if ((*p)->easy == e) {
            struct req *r = *p;
            *p = r->next;
            return r;
        }
    return NULL;
}

static void *worker(void *arg)
{
    struct httpc *h = arg;
    for (;;) {
        pthread_mutex_lock(&h->lock);
        int stop = h->stop;
        if (!stop)
            take_queue(h);
        pthread_mutex_unlock(&h->lock);
        if (stop)
            break;
        int active = 0, left = 0;
        curl_multi_perform(h->multi, &active);
        CURLMsg *m;
        while ((m = curl_multi_info_read(h->multi, &left)))
            if (m->msg == CURLMSG_DONE) {
                CURL *e = m->easy_handle;
                CURLcode code = m->data.result;
                curl_multi_remove_handle(h->multi, e);
                struct req *r = take_running(h, e);
                if (r)
                    req_finish(r, code, 0);
            }
        curl_multi_poll(h->multi, NULL, 0, 1000, NULL);
    }
    while (h->running) { /* stopping: what is still on the wire ends unanswered */
        struct req *r = h->running;
        h->running = r->next;
        curl_multi_remove_handle(h->multi, r->easy);
        req_finish(r, CURLE_OK, KEFU_EBUSY);
    }
    return NULL;
}

int httpc_create(const struct httpc_config *cfg, struct httpc **out)
{
    pthread_once(&global_once, global_init);
    if (cfg->ca_file && access(cfg->ca_file, R_OK) != 0)
        return KEFU_ENOENT;
    struct httpc *h = kefu_calloc(1, sizeof *h);
    if (!h)
        return KEFU_ENOMEM;
    h->cfg = *cfg;
    if (h->cfg.connect_timeout_s <= 0)
        h->cfg.connect_timeout_s = 5;
    if (h->cfg.timeout_s <= 0)
        h->cfg.timeout_s = 10;
    if (h->cfg.max_response == 0)
        h->cfg.max_response = 64 * 1024;
    h->ca_file = cfg->ca_file ? kefu_strndup(cfg->ca_file, strlen(cfg->ca_file)) : NULL;
    h->cfg.ca_file = h->ca_file;
    h->multi = curl_multi_init();
    pthread_mutex_init(&h->lock, NULL);
    if ((cfg->ca_file && !h->ca_file) || !h->multi || pthread_create(&h->thread, NULL, worker, h) != 0) {
        if (h->multi)
            curl_multi_cleanup(h->multi);
        pthread_mutex_destroy(&h->lock);
        free(h->ca_file);
        free(h);
        return KEFU_ENOMEM;
    }
    *out = h;
    return 0;
}

void httpc_free(struct httpc *h)
{
    if (!h)
        return;
    pthread_mutex_lock(&h->lock);
    h->stop = 1;
    pthread_mutex_unlock(&h->lock);
    curl_multi_wakeup(h->multi);
    pthread_join(h->thread, NULL);
    for (struct req *r = h->queue, *next; r; r = next) { /* queued, never started */
        next = r->next;
        req_finish(r, CURLE_OK, KEFU_EBUSY);
    }
    curl_multi_cleanup(h->multi);
    pthread_mutex_destroy(&h->lock);
    free(h->ca_file);
    free(h);
}

int httpc_post(struct httpc *h, const struct httpc_request *req, httpc_done_fn done, void *ctx)
{
    if (!req->url || (strncmp(req->url, "http://", 7) != 0 && strncmp(req->url, "https://", 8) != 0))
        return KEFU_EINVAL;
    struct req *r = kefu_calloc(1, sizeof *r);
    if (!r)
        return KEFU_ENOMEM;
    r->done = done;
    r->ctx = ctx;
    r->max = req->max_response ? req->max_response : h->cfg.max_response;
    r->len = req->len;
    r->body = kefu_malloc(req->len + 1);
    char ct[160];
    snprintf(ct, sizeof ct, "Content-Type: %s", req->content_type ? req->content_type : "application/json");
    /* no "Expect: 100-continue" round trip before the body */
    const char *fixed[] = {ct, "Expect:"};
    int bad = !r->body;
    for (size_t i = 0; !bad && i < 2; i++)
        bad = !(r->headers = append(r->headers, fixed[i]));
    for (size_t i = 0; !bad && req->headers && req->headers[i]; i++)
        bad = !(r->headers = append(r->headers, req->headers[i]));
    if (bad || req_setup(h, r, req->url, req->timeout_s > 0 ? req->timeout_s : h->cfg.timeout_s) < 0) {
        req_free(r);
        return KEFU_ENOMEM;
    }
    if (req->len)
        memcpy(r->body, req->body, req->len);
    r->body[req->len] = 0;
    pthread_mutex_lock(&h->lock);
    r->next = h->queue;
    h->queue = r;
    pthread_mutex_unlock(&h->lock);
    curl_multi_wakeup(h->multi);
    return 0;
}

/* What httpc_post_wait() sleeps on until done fills it. */
struct waiter {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int finished, rc;
    long status;
    char err[256];
};

static void wake(void *ctx, const struct httpc_result *r)
{
    struct waiter *w = ctx;
    pthread_mutex_lock(&w->lock);
    w->rc = r->rc;
    w->status = r->status;
    snprintf(w->err, sizeof w->err, "%s", r->error);
    w->finished = 1;
    pthread_cond_signal(&w->cond);
    pthread_mutex_unlock(&w->lock);
}

int httpc_post_wait(struct httpc *h, const struct httpc_request *req, long *status, char *err, size_t cap)
{
    struct waiter w = {.rc = 0};
    pthread_mutex_init(&w.lock, NULL);
    pthread_cond_init(&w.cond, NULL);
    int rc = httpc_post(h, req, wake, &w);
    if (rc == 0) {
        pthread_mutex_lock(&w.lock);
        while (!w.finished)
            pthread_cond_wait(&w.cond, &w.lock);
        pthread_mutex_unlock(&w.lock);
        rc = w.rc;
    }
    if (status)
        *status = rc == 0 || rc == KEFU_ERANGE ? w.status : 0;
    if (err && cap)
        snprintf(err, cap, "%s", rc == KEFU_EINVAL ? "not an http:// or https:// URL" : w.err);
    pthread_cond_destroy(&w.cond);
    pthread_mutex_destroy(&w.lock);
    return rc;
}
