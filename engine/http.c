/* http.c — kefu's libmicrohttpd server. One epoll thread per core runs
 * every connection; no handler ever blocks one of them:
 *  - uploads are gathered here (no MHD_PostProcessor), capped at 64 KiB,
 *    and the response is queued on a later call than the first, which
 *    keeps connections alive;
 *  - every connection is tracked from its accept: a request that has not
 *    arrived whole within request_timeout_s (headers sent a byte at a
 *    time, a body that trickles) is cut by the timer thread, which shuts
 *    the socket down; libmicrohttpd's own timeout only sees idleness;
 *  - a long-poll or an SSE stream with nothing to send parks its
 *    connection (MHD_suspend_connection) as a waiter in the hub; the
 *    dialog's notify callback or the hub's timer thread resumes it;
 *  - a customer message parks its connection while its write commits:
 *    the store's completion (on_committed(), on the writer thread)
 *    resumes it and the pool thread sends the answer (api_finish()), so
 *    a commit group holds every message in flight, not one per thread.
 *    req.commit settles the race between parking and the completion.
 * A waiter is parked and woken under the hub lock, so a notification can
 * never fall between "nothing new" and the suspension. Static files come
 * from the web directory, confined to it. api.c does everything else. */
#include "http.h"
#include "jsonw.h"

#include "kefu.h"
#include "log.h"
#include "metrics.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define HUB_BUCKETS 1024
#define DISCARD_MAX (1 << 20) /* an oversize upload is read this far for its 413, then cut */
#define LOG_PATH    256

/* A parked request: a long-poll or an SSE stream waiting for conv. */
struct waiter {
    struct waiter *prev, *next;
    int linked, fired, suspended;
    unsigned bucket;
    char conv[API_ID_MAX + 1];
    double deadline; /* monotonic; the timer wakes it then */
    struct MHD_Connection *conn;
};

/* One TCP connection, from accept to close (MHD_OPTION_NOTIFY_CONNECTION).
 * Guarded by http.track_lock, which the close notification also takes, so
 * the timer never shuts down a descriptor that has been closed and reused. */
struct track {
    struct track *prev, *next;
    int fd;
    double since; /* when the request now arriving began: accept or the last response */
    int arriving; /* 1 until the request now arriving is whole */
};

struct http {
    /* atomic: a daemon thread can serve /metrics (gauges()) before MHD_start_daemon() has returned it */
    struct MHD_Daemon *_Atomic mhd;
    struct api *api;
    struct dialog *dialog; /* borrowed; notifies us */
    struct metrics *metrics;
    const char *const *route_names; /* static, from api_route_names() */
    size_t n_routes;
    struct http_config cfg;
    char web[PATH_MAX];
    int have_web;
    char host[160];
    unsigned port;
    MHD_socket quiesced_fd;
    atomic_int in_flight, draining, streams, polls;
    atomic_int commits; /* connections parked for a commit (MHD_stop_daemon must find none) */
    pthread_mutex_t lock;
    pthread_cond_t cond;
    pthread_t timer;
    int timer_stop, timer_started;
    struct waiter *bucket[HUB_BUCKETS];
    pthread_mutex_t track_lock;
    struct track *tracks; /* every open connection */
    atomic_long cut;      /* connections cut for a request that did not arrive in time */
};

enum { REQ_BODY = 0, REQ_PARKED, REQ_COMMIT, REQ_DONE };
enum { COMMIT_PENDING = 0, COMMIT_DONE, COMMIT_PARKED }; /* struct req.commit */

/* Everything one request needs across the access handler's calls. */
struct req {
    struct http *h;
    struct MHD_Connection *conn;
    double t0;
    char *body;
    size_t len, cap, discarded;
    int too_large, state, status;
    atomic_int commit; /* COMMIT_*: who resumes the connection */
    size_t route;
    struct api_response resp;
    struct waiter w;
    struct track *track; /* its connection's, or NULL */
    char method[16], ip[64], path[LOG_PATH];
};

/* An open SSE stream; owned by its MHD response (freed in sse_free()). */
struct sse {
    struct http *h;
    struct waiter w;
    long after;
    struct text_buf out;
    size_t off;
    double next_ping;
};

static double now_mono(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

void http_config_default(struct http_config *c)
{
    memset(c, 0, sizeof *c);
    c->listen = "127.0.0.1:8080";
    c->web_dir = "web";
    c->conn_limit = 4096;
    c->per_ip_limit = 256;
    c->timeout_s = 30;
    c->request_timeout_s = 30;
    c->ping_s = 15;
}

/* ---- the hub of parked requests ---- */

static unsigned conv_bucket(const char *conv)
{
    unsigned h = 2166136261u;
    for (; *conv; conv++)
        h = (h ^ (unsigned char)*conv) * 16777619u;
    return h % HUB_BUCKETS;
}

static void hub_link(struct http *h, struct waiter *w, const char *conv, struct MHD_Connection *conn)
{
    snprintf(w->conv, sizeof w->conv, "%s", conv);
    w->conn = conn;
    w->bucket = conv_bucket(conv);
    pthread_mutex_lock(&h->lock);
    w->fired = w->suspended = 0;
    w->prev = NULL;
    w->next = h->bucket[w->bucket];
    if (w->next)
        w->next->prev = w;
    h->bucket[w->bucket] = w;
    w->linked = 1;
    pthread_mutex_unlock(&h->lock);
}

static void hub_unlink(struct http *h, struct waiter *w)
{
    pthread_mutex_lock(&h->lock);
    if (w->linked) {
        if (w->prev)
            w->prev->next = w->next;
        else
            h->bucket[w->bucket] = w->next;
        if (w->next)
            w->next->prev = w->prev;
        w->linked = 0;
    }
    pthread_mutex_unlock(&h->lock);
}

/* Marks w as having news and resumes its connection if parked. Lock held. */
static void wake_locked(struct waiter *w)
{
    w->fired = 1;
    if (w->suspended) {
        w->suspended = 0;
        MHD_resume_connection(w->conn);
    }
}

/* Forgets earlier news before the caller looks again. */
static void hub_clear(struct http *h, struct waiter *w)
{
    pthread_mutex_lock(&h->lock);
    w->fired = 0;
    pthread_mutex_unlock(&h->lock);
}

/* Suspends w's connection until news or deadline; returns 0 without
 * suspending when news came in since hub_clear() or the server drains.
 * Called only from the access handler or the content reader. */
static int hub_park(struct http *h, struct waiter *w, double deadline)
{
    pthread_mutex_lock(&h->lock);
    if (w->fired || atomic_load(&h->draining)) {
        w->fired = 0;
        pthread_mutex_unlock(&h->lock);
        return 0;
    }
    w->deadline = deadline;
    w->suspended = 1;
    MHD_suspend_connection(w->conn);
    pthread_cond_signal(&h->cond);
    pthread_mutex_unlock(&h->lock);
    return 1;
}

static void wake_all(struct http *h)
{
    pthread_mutex_lock(&h->lock);
    for (unsigned b = 0; b < HUB_BUCKETS; b++)
        for (struct waiter *w = h->bucket[b]; w; w = w->next)
            wake_locked(w);
    pthread_mutex_unlock(&h->lock);
}

/* dialog_notify_fn: conv got a new message (NULL: the queues changed);
 * wake whoever waits on it. */
static void on_notify(void *ctx, const char *conv, long seq)
{
    struct http *h = ctx;
    if (!conv) { /* the queues changed: the parked queue polls wait under "" */
        api_queue_changed(h->api);
        conv = "";
    }
    pthread_mutex_lock(&h->lock);
    for (struct waiter *w = h->bucket[conv_bucket(conv)]; w; w = w->next)
        if (strcmp(w->conv, conv) == 0)
            wake_locked(w);
    pthread_mutex_unlock(&h->lock);
}

/* ---- request deadlines ---- */

/* MHD_OPTION_NOTIFY_CONNECTION: tracks each connection from accept to close. */
static void on_connection(void *cls, struct MHD_Connection *c, void **ctx,
                          enum MHD_ConnectionNotificationCode toe)
{
    struct http *h = cls;
    if (toe == MHD_CONNECTION_NOTIFY_STARTED) {
        const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
        struct track *t = ci ? kefu_calloc(1, sizeof *t) : NULL;
        if (!t)
            return; /* untracked: only the idle timeout applies */
        t->fd = ci->connect_fd;
        t->since = now_mono();
        t->arriving = 1;
        pthread_mutex_lock(&h->track_lock);
        t->next = h->tracks;
        if (t->next)
            t->next->prev = t;
        h->tracks = t;
        pthread_mutex_unlock(&h->track_lock);
        *ctx = t;
        return;
    }
    struct track *t = *ctx;
    if (!t)
        return;
    pthread_mutex_lock(&h->track_lock);
    if (t->prev)
        t->prev->next = t->next;
    else
        h->tracks = t->next;
    if (t->next)
        t->next->prev = t->prev;
    pthread_mutex_unlock(&h->track_lock);
    free(t);
    *ctx = NULL;
}

/* Marks the request on t as whole (arrived 0) or a new one as begun (1). */
static void track_mark(struct http *h, struct track *t, int arriving)
{
    if (!t)
        return;
    pthread_mutex_lock(&h->track_lock);
    t->arriving = arriving;
    t->since = now_mono();
    pthread_mutex_unlock(&h->track_lock);
}

/* Shuts down connections whose request is late; libmicrohttpd then sees
 * the end of the stream and closes them. Called by the timer thread. */
static void cut_late(struct http *h, double now)
{
    double limit = (double)h->cfg.request_timeout_s;
    pthread_mutex_lock(&h->track_lock);
    for (struct track *t = h->tracks; t; t = t->next)
        if (t->arriving && t->fd >= 0 && now - t->since > limit) {
            shutdown(t->fd, SHUT_RDWR);
            t->fd = -1; /* once */
            atomic_fetch_add(&h->cut, 1);
        }
    pthread_mutex_unlock(&h->track_lock);
}

/* The timer thread: resumes parked waiters whose deadline has come, and
 * cuts requests that take too long to arrive. */
static void *timer_main(void *arg)
{
    struct http *h = arg;
    pthread_mutex_lock(&h->lock);
    while (!h->timer_stop) {
        double now = now_mono(), next = now + 1.0;
        if (h->cfg.request_timeout_s)
            cut_late(h, now);
        for (unsigned b = 0; b < HUB_BUCKETS; b++)
            for (struct waiter *w = h->bucket[b]; w; w = w->next) {
                if (!w->suspended)
                    continue;
                if (w->deadline <= now)
                    wake_locked(w);
                else if (w->deadline < next)
                    next = w->deadline;
            }
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        double wait = next - now + 0.001;
        ts.tv_sec += (time_t)wait;
        ts.tv_nsec += (long)((wait - (double)(time_t)wait) * 1e9);
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&h->cond, &h->lock, &ts);
    }
    pthread_mutex_unlock(&h->lock);
    return NULL;
}

/* ---- responses ---- */

static void add_security(struct MHD_Response *m, int html)
{
    MHD_add_response_header(m, "X-Content-Type-Options", "nosniff");
    MHD_add_response_header(m, "Referrer-Policy", "no-referrer");
    MHD_add_response_header(m, "X-Frame-Options", html ? "SAMEORIGIN" : "DENY");
    MHD_add_response_header(
        m, "Content-Security-Policy",
        html ? "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
               "frame-ancestors 'self'"
             : "default-src 'none'; frame-ancestors 'none'");
}

static void add_headers(struct http *h, struct MHD_Response *m, const struct api_response *a)
{
    char num[24];
    MHD_add_response_header(m, "Content-Type", a->content_type);
    MHD_add_response_header(m, "Cache-Control", "no-store");
    add_security(m, 0);
    if (a->cors_origin) {
        MHD_add_response_header(m, "Access-Control-Allow-Origin", a->cors_origin);
        MHD_add_response_header(m, "Vary", "Origin");
        MHD_add_response_header(m, "Access-Control-Expose-Headers", "Retry-After");
    }
    if (a->preflight) {
        MHD_add_response_header(m, "Access-Control-Allow-Methods", a->allow);
        MHD_add_response_header(m, "Access-Control-Allow-Headers",
                                "Authorization, Content-Type, X-Kefu-Token, Last-Event-ID");
        MHD_add_response_header(m, "Access-Control-Max-Age", "600");
    }
    if (a->allow[0])
        MHD_add_response_header(m, "Allow", a->allow);
    if (a->retry_after) {
        snprintf(num, sizeof num, "%d", a->retry_after);
        MHD_add_response_header(m, "Retry-After", num);
    }
    if (a->www_authenticate)
        MHD_add_response_header(m, "WWW-Authenticate", "Bearer realm=\"kefu\"");
    if (atomic_load(&h->draining))
        MHD_add_response_header(m, "Connection", "close");
}

/* Queues r->resp; the body moves into the MHD response. */
static enum MHD_Result send_resp(struct req *r)
{
    struct api_response *a = &r->resp;
    char *body = NULL;
    size_t n = 0;
    if (a->json) {
        body = jsonw_dumps(a->json); /* the bytes json_dumps writes, faster */
        n = body ? strlen(body) : 0;
    } else if (a->text.len) {
        body = a->text.s;
        n = a->text.len;
        text_buf_init(&a->text);
    }
    struct MHD_Response *m = MHD_create_response_from_buffer(
        n, body ? body : (char *)"", body ? MHD_RESPMEM_MUST_FREE : MHD_RESPMEM_PERSISTENT);
    if (!m) {
        free(body);
        return MHD_NO;
    }
    add_headers(r->h, m, a);
    r->status = a->status;
    r->route = a->route;
    r->state = REQ_DONE;
    enum MHD_Result ret = MHD_queue_response(r->conn, (unsigned)a->status, m);
    MHD_destroy_response(m);
    return ret;
}

static enum MHD_Result send_error(struct req *r, int status, const char *code, const char *msg)
{
    api_error(&r->resp, status, code, msg);
    return send_resp(r);
}

/* ---- static files ---- */

static const struct {
    const char *ext, *type;
} types[] = {
    {".html", "text/html; charset=utf-8"},
    {".js", "text/javascript; charset=utf-8"},
    {".css", "text/css; charset=utf-8"},
    {".json", "application/json"},
    {".svg", "image/svg+xml"},
    {".png", "image/png"},
    {".ico", "image/x-icon"},
    {".txt", "text/plain; charset=utf-8"},
    {".woff2", "font/woff2"},
    {".map", "application/json"},
};

static const char *content_type(const char *path)
{
    const char *dot = strrchr(path, '.');
    for (size_t k = 0; dot && k < sizeof types / sizeof types[0]; k++)
        if (strcmp(dot, types[k].ext) == 0)
            return types[k].type;
    return "application/octet-stream";
}

/* Maps a URL to a path relative to the web directory; 0 if it is not one
 * of the static URLs (/widget.js, /demo, /console, /static/...). */
static int static_rel(const char *url, char *rel, size_t cap)
{
    static const char *const pages[] = {"demo", "console"};
    if (strcmp(url, "/widget.js") == 0)
        return snprintf(rel, cap, "widget.js") < (int)cap;
    for (size_t k = 0; k < 2; k++) {
        size_t n = strlen(pages[k]);
        if (url[0] != '/' || strncmp(url + 1, pages[k], n) != 0)
            continue;
        if (url[n + 1] == 0 || strcmp(url + n + 1, "/") == 0)
            return snprintf(rel, cap, "%s/index.html", pages[k]) < (int)cap;
        if (url[n + 1] == '/')
            return snprintf(rel, cap, "%s", url + 1) < (int)cap;
    }
    if (strncmp(url, "/static/", 8) == 0)
        return snprintf(rel, cap, "%s", url + 1) < (int)cap;
    return 0;
}

/* Rejects empty, dot-led ("." "..", hidden) segments and backslashes. */
static int rel_safe(const char *rel)
{
    if (strchr(rel, '\\'))
        return 0;
    const char *s = rel;
    for (;;) {
        const char *e = strchr(s, '/');
        size_t n = e ? (size_t)(e - s) : strlen(s);
        if (n == 0 || s[0] == '.')
            return 0;
        if (!e)
            return 1;
        s = e + 1;
    }
}

/* Opens rel under the web directory (after resolving links, it must still
 * be inside); returns the fd or -1. */
static int open_static(struct http *h, const char *rel, struct stat *st)
{
    char full[PATH_MAX], real[PATH_MAX];
    if (snprintf(full, sizeof full, "%s/%s", h->web, rel) >= (int)sizeof full || !realpath(full, real))
        return -1;
    size_t n = strlen(h->web);
    if (strncmp(real, h->web, n) != 0 || real[n] != '/')
        return -1;
    int fd = open(real, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    if (fstat(fd, st) < 0 || !S_ISREG(st->st_mode)) {
        close(fd);
        return -1;
    }
    return fd;
}

/* Serves a static URL; returns -1 when url is not one. */
static int serve_static(struct req *r, const char *url, const char *method, enum MHD_Result *ret)
{
    char rel[PATH_MAX];
    if (!static_rel(url, rel, sizeof rel))
        return -1;
    r->resp.route = api_route_static();
    if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0) {
        snprintf(r->resp.allow, sizeof r->resp.allow, "GET, HEAD");
        *ret = send_error(r, 405, "method_not_allowed", "static files are read with GET");
        return 0;
    }
    struct stat st;
    int fd = r->h->have_web && rel_safe(rel) ? open_static(r->h, rel, &st) : -1;
    if (fd < 0) {
        *ret = send_error(r, 404, "not_found", "no such file");
        return 0;
    }
    struct MHD_Response *m = MHD_create_response_from_fd((size_t)st.st_size, fd);
    if (!m) {
        close(fd);
        *ret = MHD_NO;
        return 0;
    }
    const char *type = content_type(rel);
    MHD_add_response_header(m, "Content-Type", type);
    MHD_add_response_header(m, "Cache-Control", "no-cache");
    add_security(m, strncmp(type, "text/html", 9) == 0);
    r->status = 200;
    r->route = api_route_static();
    r->state = REQ_DONE;
    *ret = MHD_queue_response(r->conn, 200, m);
    MHD_destroy_response(m);
    return 0;
}

/* ---- SSE ---- */

static void sse_free(void *cls)
{
    struct sse *s = cls;
    hub_unlink(s->h, &s->w);
    atomic_fetch_sub(&s->h->streams, 1);
    text_buf_release(&s->out);
    free(s);
}

/* MHD_ContentReaderCallback: the next bytes of the event stream. With
 * nothing to send it parks the connection and returns 0. */
static ssize_t sse_read(void *cls, uint64_t pos, char *buf, size_t max)
{
    struct sse *s = cls;
    struct http *h = s->h;
    for (int tries = 0;; tries++) {
        if (s->off < s->out.len) {
            size_t n = s->out.len - s->off < max ? s->out.len - s->off : max;
            memcpy(buf, s->out.s + s->off, n);
            s->off += n;
            return (ssize_t)n;
        }
        s->out.len = s->off = 0;
        if (atomic_load(&h->draining))
            return MHD_CONTENT_READER_END_OF_STREAM;
        hub_clear(h, &s->w);
        if (api_events(h->api, s->w.conv, &s->after, &s->out) < 0)
            return MHD_CONTENT_READER_END_OF_STREAM;
        double now = now_mono();
        if (s->out.len == 0 && (now >= s->next_ping || tries > 0))
            metrics_printf(&s->out, ": ping\n\n");
        if (s->out.len) {
            s->next_ping = now + h->cfg.ping_s;
            continue;
        }
        if (hub_park(h, &s->w, s->next_ping))
            return 0;
    }
}

static enum MHD_Result start_stream(struct req *r)
{
    struct http *h = r->h;
    struct sse *s = kefu_calloc(1, sizeof *s);
    if (!s)
        return send_error(r, 503, "out_of_memory", "out of memory");
    s->h = h;
    s->after = r->resp.after;
    text_buf_init(&s->out);
    s->next_ping = now_mono() + h->cfg.ping_s;
    metrics_printf(&s->out, "retry: 2000\n\n");
    hub_link(h, &s->w, r->resp.conv, r->conn);
    atomic_fetch_add(&h->streams, 1);
    struct MHD_Response *m = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 4096, sse_read, s, sse_free);
    if (!m) {
        sse_free(s);
        return MHD_NO;
    }
    add_headers(h, m, &r->resp);
    MHD_add_response_header(m, "X-Accel-Buffering", "no");
    r->status = 200;
    r->route = r->resp.route;
    r->state = REQ_DONE;
    enum MHD_Result ret = MHD_queue_response(r->conn, 200, m);
    MHD_destroy_response(m);
    return ret;
}

/* ---- long-poll ---- */

/* Looks for messages again; answers, or parks the request until news or
 * its deadline. */
static enum MHD_Result poll_or_park(struct req *r)
{
    struct http *h = r->h;
    for (int tries = 0; tries < 4; tries++) {
        int final = tries == 3 || now_mono() >= r->w.deadline || atomic_load(&h->draining);
        hub_clear(h, &r->w);
        if (api_poll(h->api, r->resp.conv, r->resp.after, final, &r->resp)) {
            hub_unlink(h, &r->w);
            return send_resp(r);
        }
        if (hub_park(h, &r->w, r->w.deadline)) {
            r->state = REQ_PARKED;
            return MHD_YES;
        }
    }
    return MHD_NO; /* not reached: the last try is final */
}

static enum MHD_Result start_wait(struct req *r)
{
    atomic_fetch_add(&r->h->polls, 1);
    hub_link(r->h, &r->w, r->resp.conv, r->conn);
    r->w.deadline = now_mono() + r->resp.wait_s;
    return poll_or_park(r);
}

/* ---- a message in flight ---- */

/* api_done_fn, on the store's writer thread (or inside api_handle()):
 * the commit is over. Resumes the connection if the pool thread parked
 * it; after the exchange r may be gone, so only the locals are used. */
static void on_committed(void *ctx)
{
    struct req *r = ctx;
    struct http *h = r->h;
    struct MHD_Connection *c = r->conn;
    if (atomic_exchange(&r->commit, COMMIT_DONE) == COMMIT_PARKED) {
        MHD_resume_connection(c);
        atomic_fetch_sub(&h->commits, 1);
    }
}

static enum MHD_Result await_commit(struct req *r);

/* done ran: answer, or park again when the message only now runs (it
 * waited behind its conversation's previous message). */
static enum MHD_Result finish_commit(struct req *r)
{
    atomic_store(&r->commit, COMMIT_PENDING); /* no completion is due until api_finish() runs it */
    if (api_finish(r->h->api, &r->resp))
        return await_commit(r);
    return send_resp(r);
}

/* Answers at once when the write is already over, else parks the
 * connection until on_committed() resumes it. */
static enum MHD_Result await_commit(struct req *r)
{
    if (atomic_load(&r->commit) == COMMIT_DONE)
        return finish_commit(r);
    r->state = REQ_COMMIT;
    atomic_fetch_add(&r->h->commits, 1);
    MHD_suspend_connection(r->conn);
    if (atomic_exchange(&r->commit, COMMIT_PARKED) == COMMIT_DONE) { /* it committed meanwhile */
        MHD_resume_connection(r->conn);
        atomic_fetch_sub(&r->h->commits, 1);
    }
    return MHD_YES; /* called again once resumed: finish_commit() */
}

/* ---- the access handler ---- */

static const char *header(struct MHD_Connection *c, const char *name)
{
    return MHD_lookup_connection_value(c, MHD_HEADER_KIND, name);
}

static enum MHD_Result dispatch(struct req *r, const char *url, const char *method)
{
    enum MHD_Result ret;
    if (serve_static(r, url, method, &ret) == 0)
        return ret;
    struct MHD_Connection *c = r->conn;
    struct api_request q = {
        .method = method,
        .path = url,
        .content_type = header(c, "Content-Type"),
        .authorization = header(c, "Authorization"),
        .kefu_token = header(c, "X-Kefu-Token"),
        .origin = header(c, "Origin"),
        .last_event_id = header(c, "Last-Event-ID"),
        .q_after = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "after"),
        .q_wait = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "wait"),
        .q_token = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "token"),
        .q_since = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "since"),
        .body = r->body,
        .body_len = r->len,
        .ip = r->ip,
        .now = now_mono(),
        .done = on_committed,
        .done_ctx = r,
    };
    api_handle(r->h->api, &q, &r->resp);
    if (r->resp.push == API_PUSH_COMMIT)
        return await_commit(r);
    if (r->resp.push == API_PUSH_WAIT)
        return start_wait(r);
    if (r->resp.push == API_PUSH_STREAM)
        return start_stream(r);
    return send_resp(r);
}

static void client_ip(struct MHD_Connection *c, char *buf, size_t cap)
{
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    snprintf(buf, cap, "?");
    if (!ci || !ci->client_addr)
        return;
    const struct sockaddr *sa = ci->client_addr;
    if (sa->sa_family == AF_INET)
        inet_ntop(AF_INET, &((const struct sockaddr_in *)(const void *)sa)->sin_addr, buf, (socklen_t)cap);
    else if (sa->sa_family == AF_INET6)
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr, buf, (socklen_t)cap);
}

/* Behind a trusted proxy, the client is the address the proxy appended
 * last to X-Forwarded-For (earlier ones are the client's own claims). */
static void forwarded_ip(struct MHD_Connection *c, char *buf, size_t cap)
{
    const char *xff = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "X-Forwarded-For");
    if (!xff)
        return;
    const char *last = strrchr(xff, ',');
    last = last ? last + 1 : xff;
    while (*last == ' ')
        last++;
    size_t n = strcspn(last, " ");
    if (n == 0 || n >= cap)
        return;
    for (size_t i = 0; i < n; i++) /* an address, nothing else */
        if (!strchr("0123456789abcdefABCDEF.:", last[i]))
            return;
    memcpy(buf, last, n);
    buf[n] = 0;
}

static struct req *req_new(struct http *h, struct MHD_Connection *c, const char *url, const char *method)
{
    struct req *r = kefu_calloc(1, sizeof *r);
    if (!r)
        return NULL;
    r->h = h;
    r->conn = c;
    r->t0 = now_mono();
    api_response_init(&r->resp);
    r->resp.route = api_route_unmatched();
    snprintf(r->method, sizeof r->method, "%s", method);
    snprintf(r->path, sizeof r->path, "%s", url);
    client_ip(c, r->ip, sizeof r->ip);
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    r->track = ci ? ci->socket_context : NULL;
    if (h->cfg.trust_proxy)
        forwarded_ip(c, r->ip, sizeof r->ip);
    atomic_fetch_add(&h->in_flight, 1);
    return r;
}

/* Takes one piece of the upload: kept up to the cap, counted beyond it. */
static enum MHD_Result take_upload(struct req *r, const char *data, size_t n)
{
    if (!r->too_large && r->len + n > API_BODY_MAX) {
        r->too_large = 1;
        free(r->body);
        r->body = NULL;
        r->len = r->cap = 0;
    }
    if (r->too_large) {
        r->discarded += n;
        return r->discarded > DISCARD_MAX ? MHD_NO : MHD_YES;
    }
    if (r->len + n > r->cap) {
        size_t cap = r->cap ? r->cap : 1024;
        while (cap < r->len + n)
            cap *= 2;
        char *b = kefu_realloc(r->body, cap);
        if (!b)
            return MHD_NO;
        r->body = b;
        r->cap = cap;
    }
    memcpy(r->body + r->len, data, n);
    r->len += n;
    return MHD_YES;
}

/* Returns 1 when the announced Content-Length is over the cap. */
static int announced_too_large(struct MHD_Connection *c)
{
    const char *cl = header(c, "Content-Length");
    if (!cl)
        return 0;
    char *end;
    unsigned long long n = strtoull(cl, &end, 10);
    return n > API_BODY_MAX;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                                  const char *version, const char *upload, size_t *upload_size,
                                  void **con_cls)
{
    struct http *h = cls;
    struct req *r = *con_cls;
    if (!r) {
        if (!(r = req_new(h, c, url, method)))
            return MHD_NO;
        *con_cls = r;
        if (announced_too_large(c)) { /* refuse before reading it (and before 100-continue) */
            track_mark(h, r->track, 0);
            return send_error(r, 413, "too_large", "the body is over 64 KiB");
        }
        return MHD_YES;
    }
    if (*upload_size) {
        enum MHD_Result ret = take_upload(r, upload, *upload_size);
        *upload_size = 0;
        return ret;
    }
    if (r->state == REQ_PARKED)
        return poll_or_park(r);
    if (r->state == REQ_COMMIT)
        return finish_commit(r);
    if (r->state == REQ_DONE)
        return MHD_YES;
    track_mark(h, r->track, 0); /* the request is whole */
    if (r->too_large)
        return send_error(r, 413, "too_large", "the body is over 64 KiB");
    return dispatch(r, url, method);
}

static void log_request(struct req *r, double ms)
{
    int level = r->status >= 500 ? LOG_LEVEL_ERROR : LOG_LEVEL_INFO;
    if (!log_enabled(level))
        return;
    size_t n = r->h->n_routes;
    const char *route = r->h->route_names[r->route < n ? r->route : n - 1];
    json_t *f = json_pack("{s:s, s:s, s:i, s:f, s:s, s:s}", "method", r->method, "path", r->path, "status",
                          r->status, "ms", ms, "ip", r->ip, "route", route);
    if (!f) /* a path that is not valid UTF-8 */
        f = json_pack("{s:s, s:i, s:f, s:s}", "method", r->method, "status", r->status, "ms", ms, "ip",
                      r->ip);
    if (f && r->resp.code)
        json_object_set_new(f, "error", json_string(r->resp.code));
    if (f && r->resp.who[0])
        json_object_set_new(f, "agent", json_string(r->resp.who));
    log_json(level, "request", f);
    json_decref(f);
}

/* MHD_OPTION_NOTIFY_COMPLETED: the request is over (answered or cut). */
static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    struct http *h = cls;
    struct req *r = *con_cls;
    if (!r)
        return;
    *con_cls = NULL;
    hub_unlink(h, &r->w);
    track_mark(h, r->track, 1); /* the next request on this connection begins now */
    if (r->w.deadline > 0)      /* it was a long-poll */
        atomic_fetch_sub(&h->polls, 1);
    if (!r->status)
        r->status = toe == MHD_REQUEST_TERMINATED_COMPLETED_OK ? 200 : 499;
    double secs = now_mono() - r->t0;
    metrics_observe(h->metrics, r->route, r->status, secs);
    log_request(r, floor(secs * 1e6) / 1e3);
    api_response_release(&r->resp);
    free(r->body);
    free(r);
    atomic_fetch_sub(&h->in_flight, 1);
}

static int hex_digit(char ch)
{
    return ch >= '0' && ch <= '9'   ? ch - '0'
           : ch >= 'a' && ch <= 'f' ? ch - 'a' + 10
           : ch >= 'A' && ch <= 'F' ? ch - 'A' + 10
                                    : -1;
}

/* MHD_OPTION_UNESCAPE_CALLBACK: decodes %HH in the path and the query
 * arguments in place, except %00, which stays as written: a decoded NUL
 * would cut the C string, so "/static/a.txt%00.png" would be read as
 * "/static/a.txt". Returns the new length. */
static size_t unescape(void *cls, struct MHD_Connection *c, char *s)
{
    size_t o = 0;
    for (size_t i = 0; s[i];) {
        int hi = s[i] == '%' ? hex_digit(s[i + 1]) : -1;
        int lo = hi >= 0 ? hex_digit(s[i + 2]) : -1;
        if (lo >= 0 && (hi | lo) != 0) {
            s[o++] = (char)(hi * 16 + lo);
            i += 3;
        } else {
            s[o++] = s[i++];
        }
    }
    s[o] = 0;
    return o;
}

static void mhd_log(void *cls, const char *fmt, va_list ap)
{
    char buf[512];
    vsnprintf(buf, sizeof buf, fmt, ap);
    buf[strcspn(buf, "\n")] = 0;
    log_msg(LOG_LEVEL_WARN, "libmicrohttpd: %s", buf);
}

/* Appends the server's own gauges to /metrics. */
static void gauges(void *ctx, struct text_buf *out)
{
    struct http *h = ctx;
    struct MHD_Daemon *mhd = atomic_load(&h->mhd);
    const union MHD_DaemonInfo *di =
        mhd ? MHD_get_daemon_info(mhd, MHD_DAEMON_INFO_CURRENT_CONNECTIONS) : NULL;
    metrics_printf(out,
                   "# TYPE kefu_http_in_flight gauge\nkefu_http_in_flight %d\n"
                   "# TYPE kefu_http_long_polls gauge\nkefu_http_long_polls %d\n"
                   "# TYPE kefu_http_sse_streams gauge\nkefu_http_sse_streams %d\n"
                   "# TYPE kefu_http_connections gauge\nkefu_http_connections %u\n"
                   "# TYPE kefu_http_draining gauge\nkefu_http_draining %d\n"
                   "# TYPE kefu_http_request_timeouts_total counter\nkefu_http_request_timeouts_total %ld\n",
                   atomic_load(&h->in_flight), atomic_load(&h->polls), atomic_load(&h->streams),
                   di ? di->num_connections : 0, atomic_load(&h->draining), atomic_load(&h->cut));
}

/* ---- start and stop ---- */

/* Parses "1.2.3.4:80", "[::1]:80" or ":80" into ss. */
static int parse_listen(const char *s, struct sockaddr_storage *ss, char *host, size_t cap)
{
    char buf[128];
    const char *colon = strrchr(s, ':');
    if (!colon || strlen(s) >= sizeof buf)
        return KEFU_EINVAL;
    char *end;
    long port = strtol(colon + 1, &end, 10);
    if (*end || colon[1] == 0 || port < 0 || port > 65535)
        return KEFU_EINVAL;
    memcpy(buf, s, (size_t)(colon - s));
    buf[colon - s] = 0;
    memset(ss, 0, sizeof *ss);
    if (buf[0] == '[') {
        size_t n = strlen(buf);
        if (n < 3 || buf[n - 1] != ']')
            return KEFU_EINVAL;
        buf[n - 1] = 0;
        struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)ss;
        a6->sin6_family = AF_INET6;
        a6->sin6_port = htons((uint16_t)port);
        if (inet_pton(AF_INET6, buf + 1, &a6->sin6_addr) != 1)
            return KEFU_EINVAL;
        snprintf(host, cap, "[%s]", buf + 1);
        return 0;
    }
    struct sockaddr_in *a4 = (struct sockaddr_in *)ss;
    a4->sin_family = AF_INET;
    a4->sin_port = htons((uint16_t)port);
    if (!buf[0])
        snprintf(buf, sizeof buf, "0.0.0.0");
    if (inet_pton(AF_INET, buf, &a4->sin_addr) != 1)
        return KEFU_EINVAL;
    snprintf(host, cap, "%s", buf);
    return 0;
}

static unsigned cores(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n < 1 ? 1 : n > 64 ? 64 : (unsigned)n;
}

static int start_daemon(struct http *h, const struct sockaddr_storage *ss)
{
    unsigned flags = MHD_USE_EPOLL_INTERNAL_THREAD | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG;
    if (ss->ss_family == AF_INET6)
        flags |= MHD_USE_IPv6;
    unsigned threads = h->cfg.threads ? h->cfg.threads : cores();
    struct MHD_OptionItem opts[] = {
        {MHD_OPTION_SOCK_ADDR, 0, (void *)ss},
        {MHD_OPTION_CONNECTION_LIMIT, h->cfg.conn_limit, NULL},
        {MHD_OPTION_PER_IP_CONNECTION_LIMIT, h->cfg.per_ip_limit, NULL},
        {MHD_OPTION_CONNECTION_TIMEOUT, h->cfg.timeout_s, NULL},
        {MHD_OPTION_CONNECTION_MEMORY_LIMIT, 64 << 10, NULL},
        {MHD_OPTION_LISTEN_BACKLOG_SIZE, 1024, NULL},
        {MHD_OPTION_NOTIFY_COMPLETED, (intptr_t)on_completed, h},
        {MHD_OPTION_NOTIFY_CONNECTION, (intptr_t)on_connection, h},
        {MHD_OPTION_UNESCAPE_CALLBACK, (intptr_t)unescape, h},
        {threads > 1 ? MHD_OPTION_THREAD_POOL_SIZE : MHD_OPTION_END, threads, NULL},
        {MHD_OPTION_END, 0, NULL},
    };
    struct MHD_Daemon *mhd = MHD_start_daemon(flags, 0, NULL, NULL, on_request, h, MHD_OPTION_EXTERNAL_LOGGER,
                                              mhd_log, h, MHD_OPTION_ARRAY, opts, MHD_OPTION_END);
    if (!mhd)
        return KEFU_EIO;
    atomic_store(&h->mhd, mhd);
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(mhd, MHD_DAEMON_INFO_BIND_PORT);
    h->port = di ? di->port : 0;
    return 0;
}

static void web_dir(struct http *h)
{
    struct stat st;
    h->have_web =
        h->cfg.web_dir && realpath(h->cfg.web_dir, h->web) && stat(h->web, &st) == 0 && S_ISDIR(st.st_mode);
}

static int hub_init(struct http *h)
{
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&h->cond, &ca);
    pthread_condattr_destroy(&ca);
    pthread_mutex_init(&h->lock, NULL);
    pthread_mutex_init(&h->track_lock, NULL);
    if (pthread_create(&h->timer, NULL, timer_main, h) != 0)
        return KEFU_ENOMEM;
    h->timer_started = 1;
    return 0;
}

static void free_http(struct http *h)
{
    if (h->timer_started) {
        pthread_mutex_lock(&h->lock);
        h->timer_stop = 1;
        pthread_cond_signal(&h->cond);
        pthread_mutex_unlock(&h->lock);
        pthread_join(h->timer, NULL);
    }
    pthread_cond_destroy(&h->cond);
    pthread_mutex_destroy(&h->lock);
    pthread_mutex_destroy(&h->track_lock);
    api_free(h->api);
    metrics_free(h->metrics);
    free(h);
}

int http_start(const struct http_config *cfg, const struct api_config *acfg, struct http **out)
{
    struct sockaddr_storage ss;
    struct http *h = kefu_calloc(1, sizeof *h);
    if (!h)
        return KEFU_ENOMEM;
    h->cfg = *cfg;
    if (h->cfg.ping_s <= 0)
        h->cfg.ping_s = 15;
    h->quiesced_fd = MHD_INVALID_SOCKET;
    int rc = parse_listen(cfg->listen, &ss, h->host, sizeof h->host);
    if (rc < 0) {
        free(h);
        return rc;
    }
    web_dir(h);
    h->route_names = api_route_names(&h->n_routes);
    struct api_config ac = *acfg;
    if ((rc = hub_init(h)) < 0 || (rc = metrics_create(h->route_names, h->n_routes, &h->metrics)) < 0)
        goto fail;
    ac.metrics = h->metrics;
    ac.gauges = gauges;
    ac.gauges_ctx = h;
    if ((rc = api_create(&ac, &h->api)) < 0)
        goto fail;
    h->dialog = acfg->dialog;
    dialog_set_notify(h->dialog, on_notify, h);
    if ((rc = start_daemon(h, &ss)) < 0) {
        dialog_set_notify(acfg->dialog, NULL, NULL);
        goto fail;
    }
    *out = h;
    return 0;
fail:
    free_http(h);
    return rc;
}

unsigned http_port(const struct http *h)
{
    return h->port;
}

void http_url(const struct http *h, char *buf, size_t cap)
{
    snprintf(buf, cap, "http://%s:%u", h->host, h->port);
}

int http_in_flight(const struct http *h)
{
    return atomic_load(&((struct http *)h)->in_flight);
}

int http_drain(struct http *h, int timeout_ms)
{
    if (!atomic_exchange(&h->draining, 1)) {
        api_set_draining(h->api, 1);
        h->quiesced_fd = MHD_quiesce_daemon(h->mhd);
        /* no thread polls it now; shutting it down makes new connects fail
         * at once instead of waiting in the backlog (closed after stop) */
        if (h->quiesced_fd != MHD_INVALID_SOCKET)
            shutdown(h->quiesced_fd, SHUT_RDWR);
    }
    double end = now_mono() + timeout_ms / 1000.0;
    do {
        wake_all(h);
        if (atomic_load(&h->in_flight) == 0)
            break;
        struct timespec ts = {0, 5 * 1000 * 1000};
        nanosleep(&ts, NULL);
    } while (now_mono() < end);
    return atomic_load(&h->in_flight);
}

void http_stop(struct http *h)
{
    if (!h)
        return;
    http_drain(h, 0);
    while (atomic_load(&h->commits) > 0) { /* a commit always completes, soon */
        struct timespec ts = {0, 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    wake_all(h); /* MHD_stop_daemon must not find a suspended connection */
    MHD_stop_daemon(h->mhd);
    dialog_set_notify(h->dialog, NULL, NULL);
    if (h->quiesced_fd != MHD_INVALID_SOCKET)
        close(h->quiesced_fd);
    free_http(h);
}
