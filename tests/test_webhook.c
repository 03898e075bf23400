/* test_webhook.c — the webhook sender over the store's outbox against a
 * receiver on 127.0.0.1: the signature, timestamp, event, event id and
 * attempt headers (the signature checked with an independent HMAC), a 2xx
 * marking the row delivered, retries with backoff after 5xx and their
 * attempts recorded, a conversation's later event waiting behind its
 * failing earlier one while another conversation goes ahead, dead rows
 * after the attempts, a stop with a try on the wire leaving the row
 * pending, and bad URLs. (kefu serve with real https receivers, kill -9 and
 * replay: tests/webhook.sh.) */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <arpa/inet.h>
#include <cmocka.h>
#include <netinet/in.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "kefu.h"
#include "log.h"
#include "store.h"
#include "webhook.h"

/* ---- a receiver that answers a scripted list of statuses ---- */

struct receiver {
    int fd;
    unsigned port;
    int statuses[8], n_statuses;
    int got;            /* requests received */
    int delay_ms;       /* before each answer */
    char last[1 << 16]; /* the last request, head and body */
    char order[512];    /* the X-Kefu-Event-Id of each request, space-separated */
    pthread_t thread;
    pthread_mutex_t lock;
};

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static double slow(void)
{
    const char *s = getenv("KEFU_SLOW");
    return s ? atof(s) : 1;
}

/* Reads one request (head plus Content-Length bytes) into buf. */
static size_t read_request(int c, char *buf, size_t cap)
{
    size_t len = 0;
    for (;;) {
        ssize_t k = recv(c, buf + len, cap - len - 1, 0);
        if (k <= 0)
            break;
        len += (size_t)k;
        buf[len] = 0;
        char *end = strstr(buf, "\r\n\r\n");
        const char *cl = strcasestr(buf, "Content-Length:");
        if (end && cl && len >= (size_t)(end + 4 - buf) + strtoul(cl + 15, NULL, 10))
            break;
    }
    buf[len] = 0;
    return len;
}

static void *receive(void *arg)
{
    struct receiver *r = arg;
    for (;;) {
        int c = accept(r->fd, NULL, NULL);
        if (c < 0)
            return NULL;
        static char buf[1 << 16];
        read_request(c, buf, sizeof buf);
        pthread_mutex_lock(&r->lock);
        int status = r->got < r->n_statuses ? r->statuses[r->got] : 200;
        memcpy(r->last, buf, sizeof r->last);
        r->got++;
        const char *id = strcasestr(buf, "X-Kefu-Event-Id: ");
        if (id && strlen(r->order) + 40 < sizeof r->order)
            snprintf(r->order + strlen(r->order), 40, "%.*s ", (int)strcspn(id + 17, "\r\n"), id + 17);
        int delay = r->delay_ms;
        pthread_mutex_unlock(&r->lock);
        if (delay)
            usleep((useconds_t)delay * 1000);
        char resp[128];
        int n = sprintf(resp, "HTTP/1.1 %d X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n", status);
        send(c, resp, (size_t)n, MSG_NOSIGNAL);
        close(c);
    }
}

static void receiver_start(struct receiver *r)
{
    r->fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(r->fd, (struct sockaddr *)&a, sizeof a), 0);
    socklen_t al = sizeof a;
    getsockname(r->fd, (struct sockaddr *)&a, &al);
    r->port = ntohs(a.sin_port);
    listen(r->fd, 16);
    pthread_mutex_init(&r->lock, NULL);
    pthread_create(&r->thread, NULL, receive, r);
}

static void receiver_stop(struct receiver *r)
{
    shutdown(r->fd, SHUT_RDWR);
    close(r->fd);
    pthread_join(r->thread, NULL);
    pthread_mutex_destroy(&r->lock);
}

static const char *header(const char *req, const char *name, char *val, size_t cap)
{
    const char *h = strcasestr(req, name);
    if (!h)
        return NULL;
    h += strlen(name);
    while (*h == ':' || *h == ' ')
        h++;
    size_t n = strcspn(h, "\r\n");
    snprintf(val, cap, "%.*s", (int)n, h);
    return val;
}

/* ---- an outbox in a fresh store ---- */

struct fix {
    char dir[64], path[96], url[64];
    struct store *st;
    struct receiver r;
};

static int setup(void **state)
{
    struct fix *f = calloc(1, sizeof *f);
    snprintf(f->dir, sizeof f->dir, "/tmp/kefu-wh-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    snprintf(f->path, sizeof f->path, "%s/kefu.db", f->dir);
    assert_int_equal(store_open(f->path, NULL, &f->st), 0);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fix *f = *state;
    store_close(f->st);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", f->dir);
    int rc = system(cmd);
    free(f);
    return rc != 0;
}

/* Writes event id (of conv) for url, as dialog would with its change. */
static void put_event(struct fix *f, const char *conv, const char *id, const char *body)
{
    const char *targets[] = {f->url, NULL};
    struct store_batch b;
    store_batch_init(&b);
    store_add_outbox(&b, conv, 1000, "handoff", id, body, targets);
    assert_int_equal(store_write(f->st, &b), 0);
}

struct rows {
    int n, delivered, dead, pending, attempts[8];
    char error[256];
};
static int count_row(void *ctx, const struct store_outbox *o)
{
    struct rows *r = ctx;
    if (r->n < 8)
        r->attempts[r->n] = o->attempts;
    r->n++;
    r->delivered += o->state == STORE_OUT_DELIVERED;
    r->dead += o->state == STORE_OUT_DEAD;
    r->pending += o->state == STORE_OUT_PENDING;
    if (*o->error)
        snprintf(r->error, sizeof r->error, "%s", o->error);
    return 0;
}

/* The rows of one state (oldest last). */
static struct rows rows_in(struct fix *f, int state)
{
    struct rows r = {0};
    assert_int_equal(store_outbox_list(f->st, state, 0, count_row, &r), 0);
    return r;
}

/* Waits until the webhook has delivered plus given up n events. */
static void wait_settled(struct webhook *w, unsigned long n, double secs)
{
    double end = now_s() + secs * slow();
    struct webhook_stats st;
    do {
        webhook_stats(w, &st);
        if (st.delivered + st.dead >= n)
            return;
        usleep(10 * 1000);
    } while (now_s() < end);
    fail_msg("after %.1f s: %lu delivered, %lu dead", secs, st.delivered, st.dead);
}

static void start(struct fix *f, const char *path)
{
    receiver_start(&f->r);
    snprintf(f->url, sizeof f->url, "http://127.0.0.1:%u%s", f->r.port, path);
}

static struct webhook *sender(struct fix *f, const char *secret, int attempts)
{
    const char *urls[] = {f->url};
    struct webhook_config wc = {.store = f->st,
                                .urls = urls,
                                .n_urls = 1,
                                .secret = secret,
                                .attempts = attempts,
                                .backoff_s = 0.05,
                                .timeout_s = 2,
                                .poll_s = 0.02};
    struct webhook *w = NULL;
    assert_int_equal(webhook_create(&wc, &w), 0);
    return w;
}

/* 1. one event: its headers, an independent HMAC, the row delivered */
static void test_signed_delivery(void **state)
{
    struct fix *f = *state;
    start(f, "/hooks/kefu");
    put_event(f, "c1", "ev_1", "{\"event\":\"handoff\",\"conversation\":\"c1\"}");
    struct webhook *w = sender(f, "s3cret", 3);
    wait_settled(w, 1, 3);
    struct webhook_stats st;
    webhook_stats(w, &st);
    assert_int_equal(st.delivered, 1);
    assert_int_equal(st.failed, 0);
    webhook_free(w);
    receiver_stop(&f->r);
    assert_int_equal(rows_in(f, STORE_OUT_DELIVERED).n, 1);
    assert_non_null(strstr(f->r.last, "POST /hooks/kefu HTTP/1.1\r\n"));
    char ts[32], sig[128], v[64];
    assert_string_equal(header(f->r.last, "X-Kefu-Event-Id", v, sizeof v), "ev_1");
    assert_string_equal(header(f->r.last, "X-Kefu-Event", v, sizeof v), "handoff");
    assert_string_equal(header(f->r.last, "X-Kefu-Attempt", v, sizeof v), "1");
    assert_string_equal(header(f->r.last, "Content-Type", v, sizeof v), "application/json");
    assert_non_null(header(f->r.last, "X-Kefu-Timestamp", ts, sizeof ts));
    assert_non_null(header(f->r.last, "X-Kefu-Signature", sig, sizeof sig));
    assert_true(llabs(atoll(ts) - (long long)time(NULL)) < 60);
    const char *body = strstr(f->r.last, "\r\n\r\n") + 4;
    assert_string_equal(body, "{\"event\":\"handoff\",\"conversation\":\"c1\"}");
    char msg[512];
    int n = snprintf(msg, sizeof msg, "%s.%s", ts, body);
    unsigned char mac[32];
    unsigned int ml = 0;
    HMAC(EVP_sha256(), "s3cret", 6, (unsigned char *)msg, (size_t)n, mac, &ml);
    char want[72] = "sha256=";
    for (int i = 0; i < 32; i++)
        sprintf(want + 7 + 2 * i, "%02x", mac[i]);
    assert_string_equal(sig, want);
    char mine[65];
    webhook_sign("s3cret", atoll(ts), body, strlen(body), mine);
    assert_string_equal(sig + 7, mine);
}

/* 2. 500 and 503, then 200: three tries recorded; without a secret no signature */
static void test_retries(void **state)
{
    struct fix *f = *state;
    f->r = (struct receiver){.statuses = {500, 503, 200}, .n_statuses = 3};
    start(f, "/");
    put_event(f, "c1", "ev_r", "{}");
    struct webhook *w = sender(f, NULL, 5);
    wait_settled(w, 1, 5);
    struct webhook_stats st;
    webhook_stats(w, &st);
    assert_int_equal(st.delivered, 1);
    assert_int_equal(st.failed, 2);
    webhook_free(w);
    receiver_stop(&f->r);
    assert_int_equal(f->r.got, 3);
    char v[16];
    assert_string_equal(header(f->r.last, "X-Kefu-Attempt", v, sizeof v), "3");
    assert_null(strstr(f->r.last, "X-Kefu-Signature"));
    struct rows r = rows_in(f, STORE_OUT_DELIVERED);
    assert_int_equal(r.n, 1);
    assert_int_equal(r.attempts[0], 3);
}

/* 3. a's first event fails twice: a's second waits behind it, b's goes ahead; order kept */
static void test_order_per_conversation(void **state)
{
    struct fix *f = *state;
    f->r = (struct receiver){.statuses = {503, 200, 503, 200, 200}, .n_statuses = 5};
    start(f, "/");
    put_event(f, "a", "ev_a1", "{}");
    put_event(f, "a", "ev_a2", "{}");
    put_event(f, "b", "ev_b1", "{}");
    struct webhook *w = sender(f, NULL, 5);
    wait_settled(w, 3, 5);
    webhook_free(w);
    receiver_stop(&f->r);
    /* a1 is before a2 wherever they are; a2 never before a1's success */
    const char *a1 = strstr(f->r.order, "ev_a1"), *a2 = strstr(f->r.order, "ev_a2");
    assert_non_null(a1);
    assert_non_null(a2);
    const char *last_a1 = a1;
    for (const char *p = a1; (p = strstr(p + 1, "ev_a1"));)
        last_a1 = p;
    if (a2 < last_a1)
        fail_msg("a2 sent before a1 was delivered: %s", f->r.order);
    assert_int_equal(rows_in(f, STORE_OUT_DELIVERED).n, 3);
}

/* 4. a receiver that always fails: dead after the attempts, with the reason */
static void test_dead(void **state)
{
    struct fix *f = *state;
    f->r = (struct receiver){.statuses = {500, 500, 500, 500}, .n_statuses = 4};
    start(f, "/");
    put_event(f, "c", "ev_d", "{}");
    struct webhook *w = sender(f, NULL, 3);
    wait_settled(w, 1, 5);
    struct webhook_stats st;
    webhook_stats(w, &st);
    assert_int_equal(st.dead, 1);
    assert_int_equal(st.failed, 3);
    webhook_free(w);
    receiver_stop(&f->r);
    assert_int_equal(f->r.got, 3);
    struct rows r = rows_in(f, STORE_OUT_DEAD);
    assert_int_equal(r.n, 1);
    assert_int_equal(r.attempts[0], 3);
    assert_string_equal(r.error, "HTTP status 500");
}

/* 5. a stop while a try is on the wire: the row stays pending, with no attempt counted */
static void test_stop_in_flight(void **state)
{
    struct fix *f = *state;
    f->r = (struct receiver){.delay_ms = 1500};
    start(f, "/");
    put_event(f, "c", "ev_s", "{}");
    struct webhook *w = sender(f, NULL, 3);
    double end = now_s() + 3 * slow();
    for (;;) {
        pthread_mutex_lock(&f->r.lock);
        int got = f->r.got;
        pthread_mutex_unlock(&f->r.lock);
        if (got || now_s() > end)
            break;
        usleep(10 * 1000);
    }
    webhook_free(w);
    struct rows r = rows_in(f, STORE_OUT_PENDING);
    assert_int_equal(r.n, 1);
    assert_int_equal(r.attempts[0], 0);
    receiver_stop(&f->r);
}

static void test_bad_urls(void **state)
{
    struct fix *f = *state;
    static const char *const bad[] = {"ftp://x/", "http://", "https://", "http:///path", "x", NULL};
    for (int k = 0; k < 6; k++) {
        const char *urls[] = {bad[k]};
        struct webhook_config wc = {.store = f->st, .urls = urls, .n_urls = 1};
        struct webhook *w = NULL;
        if (webhook_create(&wc, &w) != KEFU_EINVAL)
            fail_msg("%s was accepted", bad[k] ? bad[k] : "(null)");
    }
    const char *ok[] = {"https://example.com/x"};
    struct webhook_config none = {.store = f->st, .urls = ok, .n_urls = 0}, noca = none;
    struct webhook *w = NULL;
    assert_int_equal(webhook_create(&none, &w), KEFU_EINVAL);
    noca.n_urls = 1;
    noca.ca_file = "/nonexistent/ca.pem";
    assert_int_equal(webhook_create(&noca, &w), KEFU_ENOENT);
}

int main(void)
{
    log_init(LOG_LEVEL_OFF, NULL);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_signed_delivery, setup, teardown),
        cmocka_unit_test_setup_teardown(test_retries, setup, teardown),
        cmocka_unit_test_setup_teardown(test_order_per_conversation, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dead, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stop_in_flight, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_urls, setup, teardown),
    };
    return cmocka_run_group_tests_name("webhook", tests, NULL, NULL);
}
