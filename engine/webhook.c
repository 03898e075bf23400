/* webhook.c — the handoff webhook. Events are serialised at once and put
 * on a bounded queue; one thread sends them in order over plain HTTP/1.1
 * with a fresh connection per attempt:
 *
 *   POST /path HTTP/1.1
 *   Content-Type: application/json
 *   X-Kefu-Timestamp: 1796195399
 *   X-Kefu-Signature: sha256=<hex HMAC-SHA256(secret, "1796195399.<body>")>
 *
 * A 2xx status is delivery; anything else (or no answer within the
 * timeout) is retried after backoff_s, 2·backoff_s, ... until attempts are
 * spent, then the event is dropped and logged. The receiver should reject
 * a timestamp far from its clock (replays) and compare signatures in
 * constant time. */
#include "webhook.h"

#include "kefu.h"
#include "log.h"

#include <errno.h>
#include <netdb.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

struct event {
    struct event *next;
    char *body; /* owned */
    size_t len;
};

struct webhook {
    struct webhook_config cfg;
    char host[300], port[8], path[1024];
    char *secret; /* owned */
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    struct event *head, *tail;
    int n, stop;
    struct webhook_stats stats;
};

/* Splits http://host[:port]/path; [v6] hosts keep no brackets. */
static int parse_url(struct webhook *w, const char *url)
{
    if (strncmp(url, "http://", 7) != 0)
        return KEFU_EINVAL;
    const char *h = url + 7, *slash = strchr(h, '/');
    size_t hl = slash ? (size_t)(slash - h) : strlen(h);
    char hp[300];
    if (hl == 0 || hl >= sizeof hp ||
        snprintf(w->path, sizeof w->path, "%s", slash ? slash : "/") >= (int)sizeof w->path)
        return KEFU_EINVAL;
    memcpy(hp, h, hl);
    hp[hl] = 0;
    char *port = NULL;
    if (hp[0] == '[') {
        char *end = strchr(hp, ']');
        if (!end)
            return KEFU_EINVAL;
        *end = 0;
        port = end[1] == ':' ? end + 2 : NULL;
        snprintf(w->host, sizeof w->host, "%s", hp + 1);
    } else {
        char *colon = strrchr(hp, ':');
        if (colon) {
            *colon = 0;
            port = colon + 1;
        }
        snprintf(w->host, sizeof w->host, "%s", hp);
    }
    snprintf(w->port, sizeof w->port, "%s", port && *port ? port : "80");
    return w->host[0] ? 0 : KEFU_EINVAL;
}

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

/* Connects to the receiver with the attempt's timeout; returns fd or -1. */
static int dial(const struct webhook *w)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *res = NULL;
    if (getaddrinfo(w->host, w->port, &hints, &res) != 0)
        return -1;
    int fd = -1;
    struct timeval tv = {(time_t)w->cfg.timeout_s, (long)((w->cfg.timeout_s - (long)w->cfg.timeout_s) * 1e6)};
    for (struct addrinfo *a = res; a && fd < 0; a = a->ai_next) {
        fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
        if (fd < 0)
            continue;
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv); /* bounds connect() too */
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        if (connect(fd, a->ai_addr, a->ai_addrlen) < 0) {
            close(fd);
            fd = -1;
        }
    }
    freeaddrinfo(res);
    return fd;
}

static int send_all(int fd, const char *s, size_t n)
{
    while (n) {
        ssize_t k = send(fd, s, n, MSG_NOSIGNAL);
        if (k <= 0)
            return -1;
        s += k;
        n -= (size_t)k;
    }
    return 0;
}

/* One attempt; returns the HTTP status, or -1 when nothing came back. */
static int attempt(const struct webhook *w, const struct event *e)
{
    int fd = dial(w);
    if (fd < 0)
        return -1;
    long long ts = (long long)time(NULL);
    char sig[65] = "", head[2048];
    if (w->secret && *w->secret)
        webhook_sign(w->secret, ts, e->body, e->len, sig);
    int n = snprintf(head, sizeof head,
                     "POST %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: kefu\r\nContent-Type: application/json\r\n"
                     "Content-Length: %zu\r\nConnection: close\r\nX-Kefu-Event: handoff\r\n"
                     "X-Kefu-Timestamp: %lld\r\n%s%s%s\r\n",
                     w->path, w->host, e->len, ts, sig[0] ? "X-Kefu-Signature: sha256=" : "", sig,
                     sig[0] ? "\r\n" : "");
    int status = -1;
    if (n > 0 && n < (int)sizeof head && send_all(fd, head, (size_t)n) == 0 &&
        send_all(fd, e->body, e->len) == 0) {
        char buf[64];
        ssize_t k = recv(fd, buf, sizeof buf - 1, 0);
        if (k > 0) {
            buf[k] = 0;
            if (sscanf(buf, "HTTP/1.%*d %d", &status) != 1)
                status = -1;
        }
    }
    close(fd);
    return status;
}

/* Sleeps up to secs, waking early when the webhook stops; lock held. */
static void pause_locked(struct webhook *w, double secs)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += (time_t)secs;
    ts.tv_nsec += (long)((secs - (double)(time_t)secs) * 1e9);
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    while (!w->stop && pthread_cond_timedwait(&w->cond, &w->lock, &ts) != ETIMEDOUT)
        ;
}

/* Delivers e with retries; lock held on entry and exit. */
static void deliver(struct webhook *w, struct event *e)
{
    double delay = w->cfg.backoff_s;
    for (int k = 0; k < w->cfg.attempts && !w->stop; k++) {
        if (k) {
            w->stats.retries++;
            pause_locked(w, delay);
            delay *= 2;
            if (w->stop)
                break;
        }
        pthread_mutex_unlock(&w->lock);
        int status = attempt(w, e);
        pthread_mutex_lock(&w->lock);
        if (status >= 200 && status < 300) {
            w->stats.delivered++;
            return;
        }
        log_msg(LOG_LEVEL_WARN, "webhook attempt %d of %d failed (status %d)", k + 1, w->cfg.attempts,
                status);
    }
    w->stats.dropped++;
    log_msg(LOG_LEVEL_ERROR, "webhook event dropped after %d attempts", w->cfg.attempts);
}

static void *sender(void *arg)
{
    struct webhook *w = arg;
    pthread_mutex_lock(&w->lock);
    while (!w->stop) {
        struct event *e = w->head;
        if (!e) {
            pthread_cond_wait(&w->cond, &w->lock);
            continue;
        }
        w->head = e->next;
        if (!w->head)
            w->tail = NULL;
        w->n--;
        deliver(w, e);
        free(e->body);
        free(e);
    }
    pthread_mutex_unlock(&w->lock);
    return NULL;
}

int webhook_create(const struct webhook_config *cfg, struct webhook **out)
{
    struct webhook *w = kefu_calloc(1, sizeof *w);
    if (!w)
        return KEFU_ENOMEM;
    w->cfg = *cfg;
    if (w->cfg.attempts <= 0)
        w->cfg.attempts = 5;
    if (w->cfg.backoff_s <= 0)
        w->cfg.backoff_s = 0.5;
    if (w->cfg.timeout_s <= 0)
        w->cfg.timeout_s = 5;
    if (w->cfg.queue_max <= 0)
        w->cfg.queue_max = 1000;
    if (!cfg->url || parse_url(w, cfg->url) < 0) {
        free(w);
        return KEFU_EINVAL;
    }
    w->secret = cfg->secret ? kefu_strndup(cfg->secret, strlen(cfg->secret)) : NULL;
    w->cfg.url = w->cfg.secret = NULL; /* not kept: the parts above are */
    pthread_mutex_init(&w->lock, NULL);
    pthread_cond_init(&w->cond, NULL);
    if ((cfg->secret && !w->secret) || pthread_create(&w->thread, NULL, sender, w) != 0) {
        pthread_cond_destroy(&w->cond);
        pthread_mutex_destroy(&w->lock);
        free(w->secret);
        free(w);
        return KEFU_ENOMEM;
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
    if (w->n)
        log_msg(LOG_LEVEL_WARN, "webhook: %d queued events dropped at shutdown", w->n);
    for (struct event *e = w->head, *next; e; e = next) {
        next = e->next;
        free(e->body);
        free(e);
    }
    pthread_cond_destroy(&w->cond);
    pthread_mutex_destroy(&w->lock);
    free(w->secret);
    free(w);
}

int webhook_forget(struct webhook *w, const char *conv)
{
    char key[160];
    if (!w || snprintf(key, sizeof key, "\"%s\"", conv) >= (int)sizeof key)
        return 0;
    int n = 0;
    pthread_mutex_lock(&w->lock);
    struct event **p = &w->head, *last = NULL;
    while (*p) {
        struct event *e = *p;
        if (strstr(e->body, key)) {
            *p = e->next;
            free(e->body);
            free(e);
            w->n--;
            n++;
            continue;
        }
        last = e;
        p = &e->next;
    }
    w->tail = last;
    pthread_mutex_unlock(&w->lock);
    return n;
}

int webhook_post(struct webhook *w, json_t *event)
{
    struct event *e = kefu_calloc(1, sizeof *e);
    char *body = json_dumps(event, JSON_COMPACT);
    if (!e || !body) {
        free(e);
        free(body);
        return KEFU_ENOMEM;
    }
    e->body = body;
    e->len = strlen(body);
    pthread_mutex_lock(&w->lock);
    if (w->n >= w->cfg.queue_max) { /* drop the oldest: the newest says more */
        struct event *old = w->head;
        w->head = old->next;
        if (!w->head)
            w->tail = NULL;
        w->n--;
        w->stats.dropped++;
        free(old->body);
        free(old);
    }
    if (w->tail)
        w->tail->next = e;
    else
        w->head = e;
    w->tail = e;
    w->n++;
    w->stats.queued++;
    pthread_cond_signal(&w->cond);
    pthread_mutex_unlock(&w->lock);
    return 0;
}

void webhook_stats(struct webhook *w, struct webhook_stats *out)
{
    pthread_mutex_lock(&w->lock);
    *out = w->stats;
    pthread_mutex_unlock(&w->lock);
}
