/* test_webhook.c — the handoff webhook against a receiver on 127.0.0.1:
 * signature and timestamp headers checked with an independent HMAC,
 * retries with backoff after 5xx, a dead receiver never blocking the
 * caller, bad URLs, and the api sending the packet when a customer
 * message hands off (api_handle() over the dialog fake). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <arpa/inet.h>
#include <cmocka.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "api.h"
#include "dialog.h"
#include "kefu.h"
#include "log.h"
#include "webhook.h"

/* ---- a receiver that answers a scripted list of statuses ---- */

struct receiver {
    int fd;
    unsigned port;
    int statuses[8], n_statuses;
    int got;            /* requests received */
    char last[1 << 16]; /* the last request, head and body */
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
        pthread_mutex_unlock(&r->lock);
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

/* Waits until the webhook has delivered or dropped n events. */
static void wait_settled(struct webhook *w, unsigned long n, double secs)
{
    double end = now_s() + secs * slow();
    struct webhook_stats st;
    do {
        webhook_stats(w, &st);
        if (st.delivered + st.dropped >= n)
            return;
        usleep(10 * 1000);
    } while (now_s() < end);
    fail_msg("after %.1f s: %lu delivered, %lu dropped", secs, st.delivered, st.dropped);
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

static void test_signed_delivery(void **state)
{
    struct receiver r = {0};
    receiver_start(&r);
    char url[64];
    sprintf(url, "http://127.0.0.1:%u/hooks/kefu", r.port);
    struct webhook_config wc = {.url = url, .secret = "s3cret"};
    struct webhook *w;
    assert_int_equal(webhook_create(&wc, &w), 0);
    json_t *ev = json_pack("{s:s, s:s}", "event", "handoff", "conversation", "c1");
    assert_int_equal(webhook_post(w, ev), 0);
    json_decref(ev);
    wait_settled(w, 1, 3);
    struct webhook_stats st;
    webhook_stats(w, &st);
    assert_int_equal(st.delivered, 1);
    assert_int_equal(st.retries, 0);
    webhook_free(w);
    receiver_stop(&r);
    assert_non_null(strstr(r.last, "POST /hooks/kefu HTTP/1.1\r\n"));
    char ts[32], sig[128];
    assert_non_null(header(r.last, "X-Kefu-Timestamp", ts, sizeof ts));
    assert_non_null(header(r.last, "X-Kefu-Signature", sig, sizeof sig));
    long long t = atoll(ts);
    assert_true(llabs(t - (long long)time(NULL)) < 60);
    const char *body = strstr(r.last, "\r\n\r\n") + 4;
    assert_string_equal(body, "{\"event\":\"handoff\",\"conversation\":\"c1\"}");
    /* an independent HMAC-SHA256 over "<ts>.<body>" */
    char msg[512];
    int n = snprintf(msg, sizeof msg, "%s.%s", ts, body);
    unsigned char mac[32];
    unsigned int ml = 0;
    HMAC(EVP_sha256(), "s3cret", 6, (unsigned char *)msg, (size_t)n, mac, &ml);
    char want[72] = "sha256=";
    for (int i = 0; i < 32; i++)
        sprintf(want + 7 + 2 * i, "%02x", mac[i]);
    assert_string_equal(sig, want);
}

static void test_retries(void **state)
{
    struct receiver r = {.statuses = {500, 503, 200}, .n_statuses = 3};
    receiver_start(&r);
    char url[64];
    sprintf(url, "http://127.0.0.1:%u/", r.port);
    struct webhook_config wc = {.url = url, .backoff_s = 0.05};
    struct webhook *w;
    assert_int_equal(webhook_create(&wc, &w), 0);
    json_t *ev = json_pack("{s:s}", "event", "handoff");
    webhook_post(w, ev);
    json_decref(ev);
    wait_settled(w, 1, 3);
    struct webhook_stats st;
    webhook_stats(w, &st);
    assert_int_equal(st.delivered, 1);
    assert_int_equal(st.retries, 2);
    webhook_free(w);
    receiver_stop(&r);
    assert_int_equal(r.got, 3);
    assert_null(strstr(r.last, "X-Kefu-Signature")); /* no secret, no signature */
}

static void test_dead_receiver_never_blocks(void **state)
{
    struct receiver r = {0};
    receiver_start(&r);
    unsigned port = r.port;
    receiver_stop(&r); /* nothing listens there now */
    char url[64];
    sprintf(url, "http://127.0.0.1:%u/x", port);
    struct webhook_config wc = {.url = url, .attempts = 3, .backoff_s = 0.02, .timeout_s = 1, .queue_max = 3};
    struct webhook *w;
    assert_int_equal(webhook_create(&wc, &w), 0);
    double t0 = now_s();
    for (int k = 0; k < 5; k++) {
        json_t *ev = json_pack("{s:i}", "n", k);
        webhook_post(w, ev);
        json_decref(ev);
    }
    if (now_s() - t0 > 0.05 * slow())
        fail_msg("posting took %.3f s", now_s() - t0);
    wait_settled(w, 5, 5);
    struct webhook_stats st;
    webhook_stats(w, &st);
    assert_int_equal(st.delivered, 0);
    assert_int_equal(st.dropped, 5); /* queue overflow or attempts spent: all accounted for */
    webhook_free(w);
}

static void test_bad_urls(void **state)
{
    static const char *const bad[] = {"https://example.com/", "ftp://x/", "http://",
                                      "http:///path",         "x",        NULL};
    for (int k = 0; k < 6; k++) {
        struct webhook_config wc = {.url = bad[k]};
        struct webhook *w = NULL;
        if (webhook_create(&wc, &w) != KEFU_EINVAL)
            fail_msg("%s was accepted", bad[k] ? bad[k] : "(null)");
    }
}

static void test_api_sends_handoff(void **state)
{
    char tmp[] = "/tmp/kefu-wh-XXXXXX", rules[64], path[128];
    assert_non_null(mkdtemp(tmp));
    sprintf(rules, "%s/rules", tmp);
    mkdir(rules, 0700);
    sprintf(path, "%s/a.rules", rules);
    FILE *f = fopen(path, "w");
    fputs("intent hello\n  match hello\n  reply Hi.\n", f);
    fclose(f);
    struct dialog_config dc;
    dialog_config_default(&dc);
    dc.rules_dir = rules;
    struct rules_diag d;
    rules_diag_init(&d);
    struct dialog *dlg;
    assert_int_equal(dialog_open(&dc, &d, &dlg), 0);
    rules_diag_release(&d);
    struct receiver r = {0};
    receiver_start(&r);
    char url[64];
    sprintf(url, "http://127.0.0.1:%u/h", r.port);
    struct webhook_config wc = {.url = url, .secret = "k"};
    struct webhook *w;
    assert_int_equal(webhook_create(&wc, &w), 0);
    struct api_config ac = {.dialog = dlg, .webhook = w};
    struct api *a;
    assert_int_equal(api_create(&ac, &a), 0);
    const char *create = "{\"channel\":\"web\",\"customer\":{\"id\":\"u\"}}";
    struct api_request q = {.method = "POST",
                            .path = "/v1/conversations",
                            .content_type = "application/json",
                            .body = create,
                            .body_len = strlen(create),
                            .ip = "127.0.0.1"};
    struct api_response resp;
    api_response_init(&resp);
    api_handle(a, &q, &resp);
    assert_int_equal(resp.status, 201);
    char id[64], auth[128], mpath[128];
    strcpy(id, json_string_value(json_object_get(resp.json, "id")));
    sprintf(auth, "Bearer %s", json_string_value(json_object_get(resp.json, "token")));
    api_response_release(&resp);
    sprintf(mpath, "/v1/conversations/%s/messages", id);
    const char *texts[] = {"hello", "a human please"};
    for (int k = 0; k < 2; k++) {
        char body[64];
        sprintf(body, "{\"text\":\"%s\"}", texts[k]);
        struct api_request m = {.method = "POST",
                                .path = mpath,
                                .content_type = "application/json",
                                .authorization = auth,
                                .body = body,
                                .body_len = strlen(body),
                                .ip = "127.0.0.1"};
        api_response_init(&resp);
        api_handle(a, &m, &resp);
        assert_int_equal(resp.status, 200);
        api_response_release(&resp);
    }
    wait_settled(w, 1, 3);
    struct webhook_stats st;
    webhook_stats(w, &st);
    assert_int_equal(st.queued, 1); /* only the handoff, not the answered message */
    api_free(a);
    webhook_free(w);
    receiver_stop(&r);
    dialog_close(dlg);
    json_t *ev = json_loads(strstr(r.last, "\r\n\r\n") + 4, 0, NULL);
    assert_string_equal(json_string_value(json_object_get(ev, "event")), "handoff");
    assert_string_equal(json_string_value(json_object_get(ev, "conversation")), id);
    assert_string_equal(json_string_value(json_object_get(ev, "state")), "queued");
    assert_true(json_array_size(json_object_get(ev, "transcript")) >= 4);
    json_decref(ev);
    char cmd[128];
    sprintf(cmd, "rm -rf '%s'", tmp);
    assert_int_equal(system(cmd), 0);
}

/* POSTs body to 127.0.0.1:port and returns the response (new, free it). */
static char *post(unsigned port, const char *path, const char *token, const char *body)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
    char req[1024];
    int n = snprintf(req, sizeof req,
                     "POST %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: application/json\r\n"
                     "%s%s%sContent-Length: %zu\r\n\r\n%s",
                     path, token ? "Authorization: Bearer " : "", token ? token : "", token ? "\r\n" : "",
                     strlen(body), body);
    send(fd, req, (size_t)n, MSG_NOSIGNAL);
    char *buf = calloc(1, 1 << 16);
    size_t len = 0;
    ssize_t k;
    while ((k = recv(fd, buf + len, (1 << 16) - len - 1, 0)) > 0)
        len += (size_t)k;
    close(fd);
    return buf;
}

/* kefu serve --webhook on the real engine: a request for a person reaches
 * the receiver, signed with KEFU_WEBHOOK_SECRET; SIGTERM exits 0. */
static void test_serve_webhook(void **state)
{
    const char *build = getenv("BUILD") ? getenv("BUILD") : "build";
    char kefu[256], tmp[] = "/tmp/kefu-whs-XXXXXX", url[64];
    snprintf(kefu, sizeof kefu, "%s/kefu", build);
    if (access(kefu, X_OK) != 0)
        fail_msg("%s is not built", kefu);
    assert_non_null(mkdtemp(tmp));
    struct receiver r = {0};
    receiver_start(&r);
    sprintf(url, "http://127.0.0.1:%u/hook", r.port);
    int out[2];
    assert_int_equal(pipe(out), 0);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, out[1], 1);
    posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
    char *argv[] = {kefu,           "serve", "--listen",  "127.0.0.1:0", "--data", tmp,
                    "--rate-limit", "0",     "--webhook", url,           NULL};
    char *envp[] = {"KEFU_WEBHOOK_SECRET=whsec-test", NULL};
    pid_t pid;
    assert_int_equal(posix_spawn(&pid, kefu, &fa, NULL, argv, envp), 0);
    posix_spawn_file_actions_destroy(&fa);
    close(out[1]);
    char line[256] = "";
    FILE *f = fdopen(out[0], "r");
    assert_non_null(fgets(line, sizeof line, f)); /* kefu: serving on http://127.0.0.1:PORT */
    fclose(f);
    const char *colon = strrchr(line, ':');
    assert_non_null(colon);
    unsigned port = (unsigned)atoi(colon + 1);
    char *resp = post(port, "/v1/conversations", NULL, "{\"channel\":\"web\",\"customer\":{\"id\":\"w1\"}}");
    json_t *j = json_loads(strstr(resp, "\r\n\r\n") + 4, 0, NULL);
    free(resp);
    char id[80], tok[80], path[160];
    snprintf(id, sizeof id, "%s", json_string_value(json_object_get(j, "id")));
    snprintf(tok, sizeof tok, "%s", json_string_value(json_object_get(j, "token")));
    json_decref(j);
    snprintf(path, sizeof path, "/v1/conversations/%s/messages", id);
    resp = post(port, path, tok, "{\"text\":\"我要转人工\"}");
    assert_non_null(strstr(resp, "\"queued\""));
    free(resp);
    double end = now_s() + 5 * slow();
    while (now_s() < end) {
        pthread_mutex_lock(&r.lock);
        int got = r.got;
        pthread_mutex_unlock(&r.lock);
        if (got)
            break;
        usleep(20 * 1000);
    }
    kill(pid, SIGTERM);
    int st = 0;
    waitpid(pid, &st, 0);
    receiver_stop(&r);
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    assert_int_equal(r.got, 1);
    char ts[32], sig[128];
    assert_non_null(header(r.last, "X-Kefu-Timestamp", ts, sizeof ts));
    assert_non_null(header(r.last, "X-Kefu-Signature", sig, sizeof sig));
    const char *body = strstr(r.last, "\r\n\r\n") + 4;
    char want[65];
    webhook_sign("whsec-test", atoll(ts), body, strlen(body), want);
    assert_string_equal(sig + 7, want);
    json_t *ev = json_loads(body, 0, NULL);
    assert_string_equal(json_string_value(json_object_get(ev, "conversation")), id);
    assert_true(strstr(body, "我要转人工") != NULL); /* the transcript */
    json_decref(ev);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp);
    assert_int_equal(system(cmd), 0);
}

int main(void)
{
    log_init(LOG_LEVEL_OFF, NULL);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_signed_delivery),
        cmocka_unit_test(test_retries),
        cmocka_unit_test(test_dead_receiver_never_blocks),
        cmocka_unit_test(test_bad_urls),
        cmocka_unit_test(test_api_sends_handoff),
        cmocka_unit_test(test_serve_webhook),
    };
    return cmocka_run_group_tests_name("webhook", tests, NULL, NULL);
}
