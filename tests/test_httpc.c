/* test_httpc.c — the outgoing HTTP client against a libmicrohttpd server
 * on 127.0.0.1: the method, body and headers that arrive, the status and
 * body that come back, many requests at once on the one worker, redirects
 * not followed, the response cap, the total timeout, a closed port, URLs
 * other than http(s), TLS to a plain server refused, and requests still
 * running when the client stops. (Certificate checks against a private CA
 * are in tests/webhook.sh, with openssl and a node https receiver.) */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <microhttpd.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "httpc.h"
#include "kefu.h"

/* ---- the server: /echo, /redirect, /big, /slow ---- */

struct seen {
    pthread_mutex_t lock;
    int requests;
    char method[16], body[256], ctype[64], extra[64];
};
static struct seen seen = {.lock = PTHREAD_MUTEX_INITIALIZER};

struct upload {
    char buf[256];
    size_t len;
};

static enum MHD_Result reply(struct MHD_Connection *conn, unsigned status, const char *body, size_t len)
{
    struct MHD_Response *r = MHD_create_response_from_buffer(len, (void *)body, MHD_RESPMEM_MUST_COPY);
    if (status == 302)
        MHD_add_response_header(r, "Location", "/echo");
    enum MHD_Result ret = MHD_queue_response(conn, status, r);
    MHD_destroy_response(r);
    return ret;
}

static enum MHD_Result handler(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
                               const char *version, const char *data, size_t *size, void **state)
{
    struct upload *u = *state;
    if (!u) {
        *state = calloc(1, sizeof *u);
        return MHD_YES;
    }
    if (*size) {
        size_t k = *size < sizeof u->buf - 1 - u->len ? *size : sizeof u->buf - 1 - u->len;
        memcpy(u->buf + u->len, data, k);
        u->len += k;
        *size = 0;
        return MHD_YES;
    }
    const char *ct = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Content-Type");
    const char *x = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "X-Test");
    pthread_mutex_lock(&seen.lock);
    seen.requests++;
    snprintf(seen.method, sizeof seen.method, "%s", method);
    snprintf(seen.body, sizeof seen.body, "%.*s", (int)u->len, u->buf);
    snprintf(seen.ctype, sizeof seen.ctype, "%s", ct ? ct : "");
    snprintf(seen.extra, sizeof seen.extra, "%s", x ? x : "");
    pthread_mutex_unlock(&seen.lock);
    if (strcmp(url, "/redirect") == 0)
        return reply(conn, 302, "moved", 5);
    if (strcmp(url, "/big") == 0) {
        static char big[100000];
        memset(big, 'x', sizeof big);
        return reply(conn, 200, big, sizeof big);
    }
    if (strcmp(url, "/slow") == 0)
        usleep(1500 * 1000);
    char out[300];
    int n = snprintf(out, sizeof out, "got %.*s", (int)u->len, u->buf);
    return reply(conn, 201, out, (size_t)n);
}

static void completed(void *cls, struct MHD_Connection *c, void **state, enum MHD_RequestTerminationCode t)
{
    free(*state);
    *state = NULL;
}

static struct MHD_Daemon *server_start(unsigned *port)
{
    /* epoll with a pool of threads, as kefu serve runs: in thread-per-connection mode
     * libmicrohttpd 0.9.75 once read through a NULL pointer in a connection thread, under
     * valgrind, when the client went away while /slow slept */
    struct MHD_Daemon *d = MHD_start_daemon(MHD_USE_EPOLL_INTERNAL_THREAD | MHD_USE_ERROR_LOG, 0, NULL, NULL,
                                            handler, NULL, MHD_OPTION_NOTIFY_COMPLETED, completed, NULL,
                                            MHD_OPTION_THREAD_POOL_SIZE, 8u, MHD_OPTION_END);
    assert_non_null(d);
    *port = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT)->port;
    return d;
}

static void url(char *buf, size_t cap, const char *scheme, unsigned port, const char *path)
{
    snprintf(buf, cap, "%s://127.0.0.1:%u%s", scheme, port, path);
}

/* 1. a POST arrives with its body and headers; the status and body come back */
static void test_post(void **state)
{
    unsigned port;
    struct MHD_Daemon *d = server_start(&port);
    struct httpc *h = NULL;
    assert_int_equal(httpc_create(&(struct httpc_config){0}, &h), 0);
    char u[128], err[256];
    url(u, sizeof u, "http", port, "/echo");
    const char *hdrs[] = {"X-Test: yes", NULL};
    long status = 0;
    int rc =
        httpc_post_wait(h, &(struct httpc_request){.url = u, .body = "{\"a\":1}", .len = 7, .headers = hdrs},
                        &status, err, sizeof err);
    assert_int_equal(rc, 0);
    assert_int_equal(status, 201);
    pthread_mutex_lock(&seen.lock);
    assert_string_equal(seen.method, "POST");
    assert_string_equal(seen.body, "{\"a\":1}");
    assert_string_equal(seen.ctype, "application/json");
    assert_string_equal(seen.extra, "yes");
    pthread_mutex_unlock(&seen.lock);
    httpc_free(h);
    MHD_stop_daemon(d);
}

/* 2. many requests at once on the one worker, each ending in its own callback with its own body */
struct many {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int done, ok;
};
struct one {
    struct many *m;
    char want[32];
};
static void many_done(void *ctx, const struct httpc_result *r)
{
    struct one *o = ctx;
    char expect[64];
    snprintf(expect, sizeof expect, "got %s", o->want);
    pthread_mutex_lock(&o->m->lock);
    o->m->done++;
    if (r->rc == 0 && r->status == 201 && strcmp(r->body, expect) == 0 && r->len == strlen(expect))
        o->m->ok++;
    pthread_cond_signal(&o->m->cond);
    pthread_mutex_unlock(&o->m->lock);
}

static void test_many(void **state)
{
    unsigned port;
    struct MHD_Daemon *d = server_start(&port);
    struct httpc *h = NULL;
    assert_int_equal(httpc_create(&(struct httpc_config){0}, &h), 0);
    char u[128];
    url(u, sizeof u, "http", port, "/echo");
    struct many m = {.lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER};
    enum { N = 40 };
    static struct one ones[N];
    for (int i = 0; i < N; i++) {
        ones[i].m = &m;
        snprintf(ones[i].want, sizeof ones[i].want, "request-%d", i);
        assert_int_equal(
            httpc_post(h,
                       &(struct httpc_request){.url = u, .body = ones[i].want, .len = strlen(ones[i].want)},
                       many_done, &ones[i]),
            0);
    }
    pthread_mutex_lock(&m.lock);
    while (m.done < N)
        pthread_cond_wait(&m.cond, &m.lock);
    pthread_mutex_unlock(&m.lock);
    assert_int_equal(m.ok, N);
    httpc_free(h);
    MHD_stop_daemon(d);
}

/* 3. a redirect is reported, never followed; 4. a response past the cap fails */
static void test_redirect_and_cap(void **state)
{
    unsigned port;
    struct MHD_Daemon *d = server_start(&port);
    struct httpc *h = NULL;
    assert_int_equal(httpc_create(&(struct httpc_config){.max_response = 1024}, &h), 0);
    char u[128], err[256];
    long status = 0;
    pthread_mutex_lock(&seen.lock);
    int before = seen.requests;
    pthread_mutex_unlock(&seen.lock);
    url(u, sizeof u, "http", port, "/redirect");
    assert_int_equal(httpc_post_wait(h, &(struct httpc_request){.url = u, .body = "r", .len = 1}, &status,
                                     err, sizeof err),
                     0);
    assert_int_equal(status, 302);
    pthread_mutex_lock(&seen.lock);
    assert_int_equal(seen.requests, before + 1); /* /echo was not asked */
    pthread_mutex_unlock(&seen.lock);
    url(u, sizeof u, "http", port, "/big");
    assert_int_equal(httpc_post_wait(h, &(struct httpc_request){.url = u, .body = "b", .len = 1}, &status,
                                     err, sizeof err),
                     KEFU_ERANGE);
    assert_int_equal(status, 200);
    assert_non_null(strstr(err, "larger than the limit"));
    /* a request's own cap overrides the client's, both ways */
    assert_int_equal(
        httpc_post_wait(h, &(struct httpc_request){.url = u, .body = "b", .len = 1, .max_response = 1 << 20},
                        &status, err, sizeof err),
        0);
    url(u, sizeof u, "http", port, "/echo");
    assert_int_equal(
        httpc_post_wait(h,
                        &(struct httpc_request){.url = u, .body = "0123456789", .len = 10, .max_response = 4},
                        &status, err, sizeof err),
        KEFU_ERANGE);
    httpc_free(h);
    MHD_stop_daemon(d);
}

/* KEFU_SLOW stretches time bounds (valgrind) */
static double slow(void)
{
    const char *s = getenv("KEFU_SLOW");
    return s ? atof(s) : 1;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* 5. the total timeout; 6. a closed port; 7. other schemes; 8. TLS to a plain server */
static void test_failures(void **state)
{
    unsigned port;
    struct MHD_Daemon *d = server_start(&port);
    struct httpc *h = NULL;
    assert_int_equal(httpc_create(&(struct httpc_config){.timeout_s = 0.3}, &h), 0);
    char u[128], err[256];
    long status = -1;
    url(u, sizeof u, "http", port, "/slow");
    double t0 = now_s();
    assert_int_equal(httpc_post_wait(h, &(struct httpc_request){.url = u, .body = "s", .len = 1}, &status,
                                     err, sizeof err),
                     KEFU_EIO);
    assert_true(now_s() - t0 < 1.4 * slow()); /* before the server's 1.5 s answer */
    assert_int_equal(status, 0);
    assert_non_null(strstr(err, "imed out"));
    /* a request's own timeout: longer than the client's lets the answer come */
    assert_int_equal(
        httpc_post_wait(h, &(struct httpc_request){.url = u, .body = "s", .len = 1, .timeout_s = 5 * slow()},
                        &status, err, sizeof err),
        0);
    assert_int_equal(status, 201);
    url(u, sizeof u, "https", port, "/echo");
    assert_int_equal(httpc_post_wait(h, &(struct httpc_request){.url = u, .body = "t", .len = 1}, &status,
                                     err, sizeof err),
                     KEFU_EIO);
    assert_int_equal(status, 0);
    MHD_stop_daemon(d);
    url(u, sizeof u, "http", port, "/echo"); /* nobody listens there now */
    assert_int_equal(httpc_post_wait(h, &(struct httpc_request){.url = u, .body = "c", .len = 1}, &status,
                                     err, sizeof err),
                     KEFU_EIO);
    assert_true(*err);
    const char *bad[] = {"ftp://127.0.0.1/x", "file:///etc/passwd", "127.0.0.1:80/x", "gopher://h/", ""};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        assert_int_equal(httpc_post_wait(h, &(struct httpc_request){.url = bad[i], .body = "", .len = 0},
                                         &status, err, sizeof err),
                         KEFU_EINVAL);
    httpc_free(h);
    assert_int_equal(httpc_create(&(struct httpc_config){.ca_file = "/nonexistent/ca.pem"}, &h), KEFU_ENOENT);
}

/* 9. stopping the client ends what is still running, each callback once */
static void stopped(void *ctx, const struct httpc_result *r)
{
    int *rc = ctx;
    *rc = r->rc;
}

static void test_stop_in_flight(void **state)
{
    unsigned port;
    struct MHD_Daemon *d = server_start(&port);
    struct httpc *h = NULL;
    assert_int_equal(httpc_create(&(struct httpc_config){0}, &h), 0);
    char u[128];
    url(u, sizeof u, "http", port, "/slow");
    int rc1 = 1, rc2 = 1;
    assert_int_equal(httpc_post(h, &(struct httpc_request){.url = u, .body = "1", .len = 1}, stopped, &rc1),
                     0);
    usleep(200 * 1000); /* the first is on the wire */
    assert_int_equal(httpc_post(h, &(struct httpc_request){.url = u, .body = "2", .len = 1}, stopped, &rc2),
                     0);
    httpc_free(h);
    assert_int_equal(rc1, KEFU_EBUSY);
    assert_true(rc2 == KEFU_EBUSY);
    MHD_stop_daemon(d);
}

static void test_version(void **state)
{
    assert_int_equal(strncmp(httpc_version(), "libcurl ", 8), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_post),
        cmocka_unit_test(test_many),
        cmocka_unit_test(test_redirect_and_cap),
        cmocka_unit_test(test_failures),
        cmocka_unit_test(test_stop_in_flight),
        cmocka_unit_test(test_version),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
