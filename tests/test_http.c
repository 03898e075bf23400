/* test_http.c — the HTTP layer over real sockets on 127.0.0.1, against the
 * in-memory fake of dialog.h (tests/fake_dialog.c): routes, error bodies
 * and statuses, limits, auth, CORS, security headers, keep-alive, static
 * files and traversal, long-poll and SSE wake-ups, rate limits, reload
 * diagnostics and draining. The end-to-end run on the real engine is
 * tests/e2e.sh. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <arpa/inet.h>
#include <cmocka.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "api.h"
#include "dialog.h"
#include "http.h"
#include "kefu.h"
#include "log.h"
#include "rate.h"

/* ---- a tiny HTTP client ---- */

struct resp {
    int status;
    char head[8192];
    char *body;
    size_t len;
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

static int dial(unsigned port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    struct timeval tv = {(time_t)(10 * slow()), 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) < 0) {
        close(fd);
        return -1;
    }
    return fd;
}

static void send_all(int fd, const char *s, size_t n)
{
    while (n) {
        ssize_t k = send(fd, s, n, MSG_NOSIGNAL);
        if (k <= 0)
            return;
        s += k;
        n -= (size_t)k;
    }
}

/* Splits raw bytes into status, head and body. */
static void parse(const char *raw, size_t n, struct resp *r)
{
    const char *end = strstr(raw, "\r\n\r\n");
    r->status = 0;
    sscanf(raw, "HTTP/1.%*d %d", &r->status);
    size_t hl = end ? (size_t)(end - raw) : n;
    snprintf(r->head, sizeof r->head, "%.*s", (int)hl, raw);
    size_t bl = end ? n - hl - 4 : 0;
    r->body = malloc(bl + 1);
    memcpy(r->body, end ? end + 4 : "", bl);
    r->body[bl] = 0;
    r->len = bl;
}

/* Sends raw and reads until the server closes. */
static void exchange(unsigned port, const char *raw, size_t n, struct resp *r)
{
    int fd = dial(port);
    assert_true(fd >= 0);
    send_all(fd, raw, n);
    size_t cap = 1 << 16, len = 0;
    char *buf = malloc(cap);
    for (;;) {
        if (len + 4096 > cap)
            buf = realloc(buf, cap *= 2);
        ssize_t k = recv(fd, buf + len, cap - len - 1, 0);
        if (k <= 0)
            break;
        len += (size_t)k;
    }
    buf[len] = 0;
    close(fd);
    parse(buf, len, r);
    free(buf);
}

static unsigned port;

static void call(const char *method, const char *path, const char *headers, const char *body, struct resp *r)
{
    char *raw = malloc(strlen(path) + (headers ? strlen(headers) : 0) + (body ? strlen(body) : 0) + 512);
    int n = sprintf(raw, "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n%s", method, path,
                    headers ? headers : "");
    if (body) {
        if (!headers || !strstr(headers, "Content-Type"))
            n += sprintf(raw + n, "Content-Type: application/json\r\n");
        n += sprintf(raw + n, "Content-Length: %zu\r\n\r\n%s", strlen(body), body);
    } else {
        n += sprintf(raw + n, "\r\n");
    }
    exchange(port, raw, (size_t)n, r);
    free(raw);
}

static void done(struct resp *r)
{
    free(r->body);
    r->body = NULL;
}

/* Returns header name's value in r (a static copy), or NULL. */
static const char *hdr(const struct resp *r, const char *name)
{
    static char val[512];
    size_t n = strlen(name);
    for (const char *l = strstr(r->head, "\r\n"); l; l = strstr(l + 2, "\r\n"))
        if (strncasecmp(l + 2, name, n) == 0 && l[2 + n] == ':') {
            const char *v = l + 3 + n;
            while (*v == ' ')
                v++;
            size_t k = strcspn(v, "\r\n");
            snprintf(val, sizeof val, "%.*s", (int)k, v);
            return val;
        }
    return NULL;
}

static json_t *body_json(const struct resp *r)
{
    return json_loadb(r->body, r->len, 0, NULL);
}

/* Asserts status and, when code is given, the error body's code. */
static void expect(const struct resp *r, int status, const char *code)
{
    if (r->status != status)
        fail_msg("expected %d, got %d: %s", status, r->status, r->body);
    if (!code)
        return;
    json_t *j = body_json(r);
    const char *got = json_string_value(json_object_get(json_object_get(j, "error"), "code"));
    const char *msg = json_string_value(json_object_get(json_object_get(j, "error"), "message"));
    if (!got || strcmp(got, code) != 0 || !msg || !*msg)
        fail_msg("expected error %s, got %s", code, r->body);
    json_decref(j);
}

/* ---- the server under test ---- */

static char tmp[256];
static struct dialog *dlg;
static struct http *srv;

static void write_file(const char *rel, const char *text)
{
    char p[512];
    snprintf(p, sizeof p, "%s/%s", tmp, rel);
    FILE *f = fopen(p, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static const char *good_rules = "intent hello\n  match hello\n  reply Hi.\n";

static int trust_proxy;          /* for the next start() */
static unsigned request_timeout; /* for the next start(); 0: the default */

static int start(double rate_ip, double rate_conv)
{
    struct dialog_config dc;
    dialog_config_default(&dc);
    char rules[300];
    snprintf(rules, sizeof rules, "%s/rules", tmp);
    dc.rules_dir = rules;
    dc.agents = "alice:tok-alice,bob:tok-bob";
    struct rules_diag d;
    rules_diag_init(&d);
    int rc = dialog_open(&dc, &d, &dlg);
    rules_diag_release(&d);
    if (rc < 0)
        return rc;
    struct http_config hc;
    http_config_default(&hc);
    char web[300];
    snprintf(web, sizeof web, "%s/web", tmp);
    hc.listen = "127.0.0.1:0";
    hc.web_dir = web;
    hc.threads = 2;
    hc.ping_s = 0.3;
    hc.trust_proxy = trust_proxy;
    if (request_timeout)
        hc.request_timeout_s = request_timeout;
    struct api_config ac = {
        .dialog = dlg, .admin_token = "sekrit", .rate_ip = rate_ip, .rate_conv = rate_conv};
    ac.cors[ac.n_cors++] = "https://shop.example";
    rc = http_start(&hc, &ac, &srv);
    port = rc == 0 ? http_port(srv) : 0;
    return rc;
}

static void stop(void)
{
    http_stop(srv);
    dialog_close(dlg);
    srv = NULL;
    dlg = NULL;
}

static int setup(void **state)
{
    log_init(LOG_LEVEL_OFF, NULL); /* quiet: the access log is checked in e2e */
    snprintf(tmp, sizeof tmp, "/tmp/kefu-http-XXXXXX");
    if (!mkdtemp(tmp))
        return -1;
    char p[400];
    snprintf(p, sizeof p, "%s/rules", tmp);
    mkdir(p, 0700);
    snprintf(p, sizeof p, "%s/web", tmp);
    mkdir(p, 0700);
    snprintf(p, sizeof p, "%s/web/static", tmp);
    mkdir(p, 0700);
    snprintf(p, sizeof p, "%s/web/demo", tmp);
    mkdir(p, 0700);
    write_file("rules/a.rules", good_rules);
    write_file("web/widget.js", "console.log('widget');\n");
    write_file("web/demo/index.html", "<!doctype html><title>demo</title>\n");
    write_file("web/static/app.css", "body{}\n");
    write_file("web/static/.hidden", "no\n");
    write_file("secret.txt", "top secret\n");
    return start(0, 0);
}

static int teardown(void **state)
{
    stop();
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp);
    return system(cmd) == 0 ? 0 : -1;
}

/* Creates a conversation; fills id and token. */
static void create(char *id, char *token)
{
    struct resp r;
    call("POST", "/v1/conversations", NULL, "{\"channel\":\"web\",\"customer\":{\"id\":\"u1\"}}", &r);
    expect(&r, 201, NULL);
    json_t *j = body_json(&r);
    strcpy(id, json_string_value(json_object_get(j, "id")));
    strcpy(token, json_string_value(json_object_get(j, "token")));
    json_decref(j);
    done(&r);
}

static void auth_header(char *buf, const char *token)
{
    sprintf(buf, "Authorization: Bearer %s\r\n", token);
}

/* ---- tests ---- */

static void test_conversation_flow(void **state)
{
    char id[64], tok[64], path[128], h[128];
    create(id, tok);
    auth_header(h, tok);
    struct resp r;
    sprintf(path, "/v1/conversations/%s/messages", id);
    call("POST", path, h, "{\"text\":\"hello\"}", &r);
    expect(&r, 200, NULL);
    json_t *j = body_json(&r);
    assert_string_equal(json_string_value(json_object_get(json_object_get(j, "reply"), "source")), "rule");
    assert_string_equal(json_string_value(json_object_get(j, "state")), "bot");
    json_decref(j);
    assert_string_equal(hdr(&r, "Content-Type"), "application/json");
    assert_string_equal(hdr(&r, "X-Content-Type-Options"), "nosniff");
    assert_non_null(hdr(&r, "Content-Security-Policy"));
    assert_string_equal(hdr(&r, "Cache-Control"), "no-store");
    done(&r);
    sprintf(h, "X-Kefu-Token: %s\r\n", tok); /* the other header form */
    sprintf(path, "/v1/conversations/%s/messages?after=1", id);
    call("GET", path, h, NULL, &r);
    expect(&r, 200, NULL);
    j = body_json(&r);
    assert_int_equal(json_array_size(json_object_get(j, "messages")), 2);
    json_decref(j);
    done(&r);
    sprintf(path, "/v1/conversations/%s/feedback", id);
    call("POST", path, h, "{\"rating\":5}", &r);
    expect(&r, 200, NULL);
    done(&r);
    call("POST", path, h, "{\"rating\":9}", &r);
    expect(&r, 400, "invalid_request");
    done(&r);
}

static const struct bad_case {
    const char *id, *method, *path, *ctype, *body;
    int status;
    const char *code;
} bad_cases[] = {
    {"1.1", "POST", "/v1/conversations", NULL, "{\"channel\":", 400, "invalid_json"},
    {"1.2", "POST", "/v1/conversations", NULL, "{\"channel\":\"web\",\"channel\":\"x\"}", 400,
     "invalid_json"},
    {"1.3", "POST", "/v1/conversations", NULL, "[1,2]", 400, "invalid_request"},
    {"1.4", "POST", "/v1/conversations", NULL, "{\"channel\":\"w\xff\"}", 400, "invalid_utf8"},
    {"1.5", "POST", "/v1/conversations", NULL, "{\"a\":[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]}", 400,
     "too_deep"},
    {"1.6", "POST", "/v1/conversations", "Content-Type: text/plain\r\n", "{}", 415, "unsupported_media_type"},
    {"1.7", "POST", "/v1/conversations", NULL, "{\"channel\":\"web\"}", 400, "invalid_request"},
    {"1.8", "POST", "/v1/conversations", NULL, NULL, 400, "invalid_request"},
    {"2.1", "GET", "/v1/nothing", NULL, NULL, 404, "not_found"},
    {"2.2", "DELETE", "/v1/conversations", NULL, NULL, 405, "method_not_allowed"},
    {"2.3", "GET", "/v1/conversations/bad%20id/messages", NULL, NULL, 404, "not_found"},
    {"2.4", "PUT", "/healthz", NULL, NULL, 405, "method_not_allowed"},
    {"3.1", "GET", "/v1/queue", NULL, NULL, 401, "unauthorized"},
    {"3.2", "GET", "/v1/queue", "Authorization: Bearer nope\r\n", NULL, 401, "unauthorized"},
    {"3.3", "POST", "/v1/admin/reload", NULL, NULL, 401, "unauthorized"},
    {"3.4", "POST", "/v1/admin/reload", "Authorization: Bearer sekrit2\r\n", NULL, 401, "unauthorized"},
    {"3.5", "GET", "/v1/conversations/c999/messages", "Authorization: Bearer x\r\n", NULL, 404, "not_found"},
    {"3.6", "GET", "/v1/conversations/c1/messages", NULL, NULL, 401, "unauthorized"},
    {"3.7", "GET", "/v1/stats", NULL, NULL, 401, "unauthorized"},
    {"3.8", "GET", "/v1/stats?since=-5", "Authorization: Bearer tok-alice\r\n", NULL, 400, "invalid_request"},
};

static void test_errors(void **state)
{
    for (size_t k = 0; k < sizeof bad_cases / sizeof bad_cases[0]; k++) {
        const struct bad_case *c = &bad_cases[k];
        struct resp r;
        call(c->method, c->path, c->ctype, c->body, &r);
        if (r.status != c->status)
            fail_msg("case %s: expected %d, got %d: %s", c->id, c->status, r.status, r.body);
        expect(&r, c->status, c->code);
        if (c->status == 405) {
            const char *allow = hdr(&r, "Allow");
            if (!allow || !strstr(allow, "OPTIONS"))
                fail_msg("case %s: Allow is %s", c->id, allow ? allow : "missing");
        }
        if (c->status == 401)
            assert_non_null(hdr(&r, "WWW-Authenticate"));
        done(&r);
    }
}

static void test_dialog_errors(void **state)
{
    char id[64], tok[64], path[128], h[128];
    create(id, tok);
    auth_header(h, tok);
    sprintf(path, "/v1/conversations/%s/messages", id);
    struct resp r;
    call("POST", path, h, "{\"text\":\"io-error\"}", &r);
    expect(&r, 503, "storage_error");
    assert_non_null(strstr(r.body, "cannot append the message")); /* dialog_error() is the message */
    assert_string_equal(hdr(&r, "Retry-After"), "1");
    done(&r);
    /* a commit that fails after the request was parked: 503, never a 2xx */
    call("POST", path, h, "{\"text\":\"commit-error\"}", &r);
    expect(&r, 503, "storage_error");
    assert_non_null(strstr(r.body, "cannot store the message"));
    assert_string_equal(hdr(&r, "Retry-After"), "1");
    done(&r);
    call("POST", path, h, "{\"text\":\"hello after a failed commit\"}", &r);
    assert_int_equal(r.status, 200);
    done(&r);
    call("POST", path, h, "{\"text\":\"busy\"}", &r);
    expect(&r, 503, "unavailable");
    done(&r);
    call("POST", path, h, "{\"text\":\"   \"}", &r);
    expect(&r, 400, "invalid_request");
    done(&r);
    call("POST", path, h, "{\"text\":42}", &r);
    expect(&r, 400, "invalid_request");
    done(&r);
    /* another conversation's token */
    char id2[64], tok2[64];
    create(id2, tok2);
    auth_header(h, tok2);
    call("POST", path, h, "{\"text\":\"hello\"}", &r);
    expect(&r, 403, "forbidden");
    done(&r);
}

static void test_limits(void **state)
{
    char id[64], tok[64], path[128], h[128];
    create(id, tok);
    auth_header(h, tok);
    sprintf(path, "/v1/conversations/%s/messages", id);
    struct resp r;
    /* a message over 4 KiB */
    char *big = malloc(6000);
    int n = sprintf(big, "{\"text\":\"");
    memset(big + n, 'a', 4097);
    strcpy(big + n + 4097, "\"}");
    call("POST", path, h, big, &r);
    expect(&r, 413, "message_too_long");
    done(&r);
    /* exactly 4 KiB is fine */
    strcpy(big + n + 4096, "\"}");
    call("POST", path, h, big, &r);
    expect(&r, 200, NULL);
    done(&r);
    free(big);
    /* a body over 64 KiB, announced */
    char *huge = malloc(70 * 1024 + 512);
    n = sprintf(huge,
                "POST %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: application/json\r\n"
                "Content-Length: %d\r\n\r\n",
                path, 70 * 1024);
    memset(huge + n, ' ', 70 * 1024);
    exchange(port, huge, (size_t)n + 70 * 1024, &r);
    expect(&r, 413, "too_large");
    done(&r);
    /* the same, streamed in chunks without a length */
    n = sprintf(huge,
                "POST %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: application/json\r\n"
                "Transfer-Encoding: chunked\r\n\r\n",
                path);
    for (int k = 0; k < 17; k++) {
        n += sprintf(huge + n, "1000\r\n");
        memset(huge + n, ' ', 4096);
        n += 4096;
        n += sprintf(huge + n, "\r\n");
    }
    n += sprintf(huge + n, "0\r\n\r\n");
    exchange(port, huge, (size_t)n, &r);
    expect(&r, 413, "too_large");
    done(&r);
    free(huge);
}

static void test_keep_alive(void **state)
{
    /* two requests on one connection: the first response must not close it */
    int fd = dial(port);
    const char *req = "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n";
    char buf[8192];
    for (int k = 0; k < 2; k++) {
        send_all(fd, req, strlen(req));
        ssize_t n = recv(fd, buf, sizeof buf - 1, 0);
        assert_true(n > 0);
        buf[n] = 0;
        assert_non_null(strstr(buf, "HTTP/1.1 200"));
        if (strcasestr(buf, "Connection: close"))
            fail_msg("response %d closes the connection", k + 1);
    }
    close(fd);
}

static void test_agent_flow(void **state)
{
    char id[64], tok[64], path[128], h[128];
    create(id, tok);
    auth_header(h, tok);
    sprintf(path, "/v1/conversations/%s/messages", id);
    struct resp r;
    call("POST", path, h, "{\"text\":\"a human please\"}", &r);
    expect(&r, 200, NULL);
    assert_non_null(strstr(r.body, "\"queued\""));
    done(&r);
    const char *alice = "Authorization: Bearer tok-alice\r\n", *bob = "Authorization: Bearer tok-bob\r\n";
    call("GET", "/v1/stats?since=0", alice, NULL, &r);
    expect(&r, 200, NULL);
    json_t *st = body_json(&r);
    assert_int_equal(json_integer_value(json_object_get(st, "since")), 0);
    assert_true(json_integer_value(json_object_get(st, "customer_messages")) >= 1);
    json_decref(st);
    done(&r);
    call("GET", "/v1/queue", alice, NULL, &r);
    expect(&r, 200, NULL);
    assert_non_null(strstr(r.body, id));
    json_t *qj = body_json(&r);
    assert_string_equal(json_string_value(json_object_get(qj, "agent")), "alice"); /* who is signed in */
    json_decref(qj);
    done(&r);
    sprintf(path, "/v1/conversations/%s/claim", id);
    call("POST", path, alice, NULL, &r);
    expect(&r, 200, NULL);
    assert_non_null(strstr(r.body, "a human please")); /* the transcript came with the claim */
    done(&r);
    call("POST", path, bob, NULL, &r);
    expect(&r, 409, "conflict");
    done(&r);
    sprintf(path, "/v1/conversations/%s/agent-messages", id);
    call("POST", path, bob, "{\"text\":\"mine now\"}", &r);
    expect(&r, 403, "forbidden");
    done(&r);
    call("POST", path, alice, "{\"text\":\"hi, alice here\"}", &r);
    expect(&r, 200, NULL);
    done(&r);
    sprintf(path, "/v1/conversations/%s", id);
    call("GET", path, alice, NULL, &r);
    expect(&r, 200, NULL);
    assert_non_null(strstr(r.body, "alice here"));
    done(&r);
    sprintf(path, "/v1/conversations/%s/transfer", id);
    call("POST", path, alice, "{}", &r);
    expect(&r, 400, "invalid_request");
    done(&r);
    call("POST", path, alice, "{\"queue\":\"billing\"}", &r);
    expect(&r, 200, NULL);
    done(&r);
    call("POST", "/v1/queue/claim", bob, NULL, &r);
    expect(&r, 200, NULL);
    done(&r);
    sprintf(path, "/v1/conversations/%s/release", id);
    call("POST", path, bob, NULL, &r);
    expect(&r, 200, NULL);
    done(&r);
    sprintf(path, "/v1/conversations/%s/claim", id);
    call("POST", path, bob, NULL, &r);
    done(&r);
    sprintf(path, "/v1/conversations/%s/resolve", id);
    call("POST", path, bob, NULL, &r);
    expect(&r, 200, NULL);
    assert_non_null(strstr(r.body, "resolved"));
    done(&r);
}

static void test_cors(void **state)
{
    struct resp r;
    call("OPTIONS", "/v1/conversations",
         "Origin: https://shop.example\r\nAccess-Control-Request-Method: POST\r\n", NULL, &r);
    expect(&r, 204, NULL);
    assert_string_equal(hdr(&r, "Access-Control-Allow-Origin"), "https://shop.example");
    assert_non_null(strstr(hdr(&r, "Access-Control-Allow-Methods"), "POST"));
    assert_non_null(strstr(hdr(&r, "Access-Control-Allow-Headers"), "Authorization"));
    assert_null(hdr(&r, "Access-Control-Allow-Credentials"));
    done(&r);
    call("OPTIONS", "/v1/conversations", "Origin: https://evil.example\r\n", NULL, &r);
    expect(&r, 403, "origin_not_allowed");
    assert_null(hdr(&r, "Access-Control-Allow-Origin"));
    done(&r);
    call("GET", "/healthz", "Origin: https://shop.example\r\n", NULL, &r);
    expect(&r, 200, NULL);
    assert_string_equal(hdr(&r, "Access-Control-Allow-Origin"), "https://shop.example");
    assert_string_equal(hdr(&r, "Vary"), "Origin");
    done(&r);
    call("GET", "/healthz", "Origin: https://evil.example\r\n", NULL, &r);
    assert_null(hdr(&r, "Access-Control-Allow-Origin"));
    done(&r);
    call("OPTIONS", "/v1/nowhere", "Origin: https://shop.example\r\n", NULL, &r);
    expect(&r, 404, "not_found");
    done(&r);
}

static void test_static(void **state)
{
    struct resp r;
    call("GET", "/widget.js", NULL, NULL, &r);
    expect(&r, 200, NULL);
    assert_string_equal(hdr(&r, "Content-Type"), "text/javascript; charset=utf-8");
    assert_string_equal(r.body, "console.log('widget');\n");
    assert_string_equal(hdr(&r, "X-Content-Type-Options"), "nosniff");
    done(&r);
    call("GET", "/demo", NULL, NULL, &r);
    expect(&r, 200, NULL);
    assert_string_equal(hdr(&r, "Content-Type"), "text/html; charset=utf-8");
    done(&r);
    call("GET", "/static/app.css", NULL, NULL, &r);
    expect(&r, 200, NULL);
    assert_string_equal(hdr(&r, "Content-Type"), "text/css; charset=utf-8");
    done(&r);
    static const char *const bad[] = {
        "/static/../secret.txt",   "/static/%2e%2e/%2e%2e/secret.txt",
        "/static/..%2fsecret.txt", "/static/.hidden",
        "/static//etc/passwd",     "/static/%2Fetc%2Fpasswd",
        "/demo/../../secret.txt",  "/static/..\\secret.txt",
        "/static/nothing.css",     "/static/app.css%00.png",
        "/static/app.css%00",
    };
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        call("GET", bad[k], NULL, NULL, &r);
        if (r.status != 404 || strstr(r.body, "secret"))
            fail_msg("%s: %d %s", bad[k], r.status, r.body);
        done(&r);
    }
    call("POST", "/widget.js", NULL, "{}", &r);
    expect(&r, 405, "method_not_allowed");
    done(&r);
}

/* %00 is never decoded: a NUL would cut the path or the token short. */
static void test_encoded_nul(void **state)
{
    char id[64], tok[64], path[256];
    create(id, tok);
    struct resp r;
    sprintf(path, "/v1/conversations/%s/events?token=%s%%00x", id, tok);
    call("GET", path, NULL, NULL, &r);
    expect(&r, 403, "forbidden");
    done(&r);
    sprintf(path, "/v1/conversations/%s/messages%%00/x", id);
    char h[128];
    auth_header(h, tok);
    call("GET", path, h, NULL, &r);
    expect(&r, 404, "not_found");
    done(&r);
    char enc[256];
    sprintf(enc, "/v1/conversations/%s/%%6Dessages", id);
    call("GET", enc, h, NULL, &r);
    expect(&r, 200, NULL);
    done(&r);
}

/* A request that trickles in a byte at a time is cut once it has taken
 * longer than request_timeout_s, however busy its connection looks; other
 * clients are served meanwhile. */
static void test_request_timeout(void **state)
{
    stop();
    request_timeout = 1;
    assert_int_equal(start(0, 0), 0);
    int fd = dial(port);
    assert_true(fd >= 0);
    static const char head[] = "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ";
    double t0 = now_s();
    int closed = 0, served = 0;
    for (size_t i = 0; now_s() - t0 < 10 * slow() && !closed; i++) {
        char ch = i < sizeof head - 1 ? head[i] : 'a';
        if (send(fd, &ch, 1, MSG_NOSIGNAL) != 1)
            closed = 1;
        struct timeval tv = {0, 100 * 1000};
        fd_set rd;
        FD_ZERO(&rd);
        FD_SET(fd, &rd);
        char b[256];
        if (!closed && select(fd + 1, &rd, NULL, NULL, &tv) > 0 && recv(fd, b, sizeof b, 0) <= 0)
            closed = 1;
        if (i == 3) { /* meanwhile another client is served */
            struct resp r;
            call("GET", "/healthz", NULL, NULL, &r);
            served = r.status == 200;
            done(&r);
        }
    }
    close(fd);
    assert_true(served);
    assert_true(closed);
    struct resp r;
    call("GET", "/metrics", NULL, NULL, &r);
    expect(&r, 200, NULL);
    assert_non_null(strstr(r.body, "kefu_http_request_timeouts_total 1"));
    done(&r);
    stop();
    request_timeout = 0;
    assert_int_equal(start(0, 0), 0);
}

struct poll_arg {
    char path[160], header[128];
    struct resp r;
    double t_end;
};

static void *long_poll(void *p)
{
    struct poll_arg *a = p;
    call("GET", a->path, a->header, NULL, &a->r);
    a->t_end = now_s();
    return NULL;
}

/* Queues a conversation and has alice claim it; fills id and tok. */
static void claimed(char *id, char *tok)
{
    char path[128], h[128];
    create(id, tok);
    auth_header(h, tok);
    sprintf(path, "/v1/conversations/%s/messages", id);
    struct resp r;
    call("POST", path, h, "{\"text\":\"human\"}", &r);
    done(&r);
    sprintf(path, "/v1/conversations/%s/claim", id);
    call("POST", path, "Authorization: Bearer tok-alice\r\n", NULL, &r);
    expect(&r, 200, NULL);
    done(&r);
}

static void agent_says(const char *id, const char *text)
{
    char path[128], body[256];
    sprintf(path, "/v1/conversations/%s/agent-messages", id);
    sprintf(body, "{\"text\":\"%s\"}", text);
    struct resp r;
    call("POST", path, "Authorization: Bearer tok-alice\r\n", body, &r);
    expect(&r, 200, NULL);
    done(&r);
}

static void test_long_poll(void **state)
{
    char id[64], tok[64];
    claimed(id, tok);
    struct poll_arg a = {0};
    sprintf(a.path, "/v1/conversations/%s/messages?after=3&wait=10", id);
    auth_header(a.header, tok);
    pthread_t t;
    pthread_create(&t, NULL, long_poll, &a);
    usleep(300 * 1000); /* the poll is parked by now */
    assert_true(http_in_flight(srv) >= 1);
    double t0 = now_s();
    agent_says(id, "the reply");
    pthread_join(t, NULL);
    expect(&a.r, 200, NULL);
    assert_non_null(strstr(a.r.body, "the reply"));
    if (a.t_end - t0 > 1.0 * slow())
        fail_msg("long-poll took %.3f s after the reply", a.t_end - t0);
    done(&a.r);
    /* nothing comes: answered empty when the wait runs out */
    sprintf(a.path, "/v1/conversations/%s/messages?after=99&wait=1", id);
    t0 = now_s();
    long_poll(&a);
    expect(&a.r, 200, NULL);
    json_t *j = body_json(&a.r);
    assert_int_equal(json_array_size(json_object_get(j, "messages")), 0);
    json_decref(j);
    double took = a.t_end - t0;
    if (took < 0.9 || took > 2.5 * slow())
        fail_msg("wait=1 answered after %.3f s", took);
    done(&a.r);
    /* a malformed after */
    sprintf(a.path, "/v1/conversations/%s/messages?after=x", id);
    long_poll(&a);
    expect(&a.r, 400, "invalid_request");
    done(&a.r);
}

static void test_agent_push(void **state)
{
    const char *alice = "Authorization: Bearer tok-alice\r\n";
    struct resp r;
    call("GET", "/v1/queue", alice, NULL, &r);
    expect(&r, 200, NULL);
    json_t *j = body_json(&r);
    long version = (long)json_integer_value(json_object_get(j, "version"));
    json_decref(j);
    done(&r);
    /* the queue long-poll wakes when a conversation is handed off */
    struct poll_arg a = {0};
    sprintf(a.path, "/v1/queue?since=%ld&wait=10", version);
    strcpy(a.header, alice);
    pthread_t t;
    pthread_create(&t, NULL, long_poll, &a);
    usleep(300 * 1000);
    char id[64], tok[64], path[128], h[128];
    create(id, tok);
    auth_header(h, tok);
    sprintf(path, "/v1/conversations/%s/messages", id);
    double t0 = now_s();
    call("POST", path, h, "{\"text\":\"human please\"}", &r);
    done(&r);
    pthread_join(t, NULL);
    expect(&a.r, 200, NULL);
    assert_non_null(strstr(a.r.body, id));
    j = body_json(&a.r);
    assert_true(json_integer_value(json_object_get(j, "version")) > version);
    json_decref(j);
    if (a.t_end - t0 > 1.0 * slow())
        fail_msg("queue poll took %.3f s", a.t_end - t0);
    done(&a.r);
    /* an old version answers at once; a bad one is refused */
    sprintf(a.path, "/v1/queue?since=%ld&wait=10", version);
    t0 = now_s();
    long_poll(&a);
    expect(&a.r, 200, NULL);
    assert_true(a.t_end - t0 < 0.5 * slow());
    done(&a.r);
    call("GET", "/v1/queue?since=x&wait=1", alice, NULL, &r);
    expect(&r, 400, "invalid_request");
    done(&r);
    /* the agent follows the conversation: its long-poll gets the customer's words */
    sprintf(path, "/v1/conversations/%s/claim", id);
    call("POST", path, alice, NULL, &r);
    expect(&r, 200, NULL);
    done(&r);
    sprintf(a.path, "/v1/conversations/%s/messages?after=3&wait=10", id);
    strcpy(a.header, alice);
    pthread_create(&t, NULL, long_poll, &a);
    usleep(300 * 1000);
    sprintf(path, "/v1/conversations/%s/messages", id);
    t0 = now_s();
    call("POST", path, h, "{\"text\":\"are you there\"}", &r);
    expect(&r, 200, NULL);
    done(&r);
    pthread_join(t, NULL);
    expect(&a.r, 200, NULL);
    assert_non_null(strstr(a.r.body, "are you there"));
    if (a.t_end - t0 > 1.0 * slow())
        fail_msg("agent poll took %.3f s", a.t_end - t0);
    done(&a.r);
    /* an unknown agent token is not the customer's either */
    sprintf(path, "/v1/conversations/%s/messages", id);
    call("GET", path, "Authorization: Bearer tok-mallory\r\n", NULL, &r);
    expect(&r, 403, "forbidden");
    done(&r);
}

/* Reads from fd until needle appears or secs pass; returns 1 if found. */
static int read_until(int fd, char *buf, size_t cap, size_t *len, const char *needle, double secs)
{
    double end = now_s() + secs;
    struct timeval tv = {0, 50 * 1000};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    while (now_s() < end) {
        buf[*len] = 0;
        if (strstr(buf, needle))
            return 1;
        ssize_t n = recv(fd, buf + *len, cap - *len - 1, 0);
        if (n == 0)
            return 0;
        if (n > 0)
            *len += (size_t)n;
    }
    buf[*len] = 0;
    return strstr(buf, needle) != NULL;
}

static void test_sse(void **state)
{
    char id[64], tok[64], raw[512];
    claimed(id, tok);
    int fd = dial(port);
    int n =
        sprintf(raw, "GET /v1/conversations/%s/events?token=%s&after=3 HTTP/1.1\r\nHost: x\r\n\r\n", id, tok);
    send_all(fd, raw, (size_t)n);
    static char buf[1 << 16];
    size_t len = 0;
    assert_true(read_until(fd, buf, sizeof buf, &len, "retry: 2000", 2 * slow()));
    assert_non_null(strcasestr(buf, "Content-Type: text/event-stream"));
    assert_null(strstr(buf, "event: message")); /* nothing after seq 3 yet */
    double t0 = now_s();
    agent_says(id, "pushed to you");
    assert_true(read_until(fd, buf, sizeof buf, &len, "pushed to you", 2 * slow()));
    if (now_s() - t0 > 1.0 * slow())
        fail_msg("the event took %.3f s", now_s() - t0);
    assert_non_null(strstr(buf, "id: 4\nevent: message\ndata: {"));
    /* heartbeats while idle (every 0.3 s in this server) */
    assert_true(read_until(fd, buf, sizeof buf, &len, ": ping", 2 * slow()));
    close(fd);
    /* Last-Event-ID resumes after the given event */
    fd = dial(port);
    n = sprintf(raw,
                "GET /v1/conversations/%s/events HTTP/1.1\r\nHost: x\r\nX-Kefu-Token: %s\r\n"
                "Last-Event-ID: 3\r\n\r\n",
                id, tok);
    send_all(fd, raw, (size_t)n);
    len = 0;
    memset(buf, 0, 64);
    assert_true(read_until(fd, buf, sizeof buf, &len, "pushed to you", 2 * slow()));
    assert_null(strstr(buf, "id: 3\n"));
    close(fd);
    /* a wrong token never opens the stream */
    struct resp r;
    char path[160];
    sprintf(path, "/v1/conversations/%s/events?token=wrong", id);
    call("GET", path, NULL, NULL, &r);
    expect(&r, 403, "forbidden");
    done(&r);
}

static void test_metrics_health(void **state)
{
    struct resp r;
    call("GET", "/healthz", NULL, NULL, &r);
    expect(&r, 200, NULL);
    assert_non_null(strstr(r.body, "\"ok\""));
    done(&r);
    call("GET", "/metrics", NULL, NULL, &r);
    expect(&r, 200, NULL);
    assert_non_null(strstr(hdr(&r, "Content-Type"), "text/plain"));
    assert_non_null(strstr(r.body, "kefu_messages_total")); /* the dialog's own */
    assert_non_null(strstr(r.body, "kefu_http_requests_total{route=\"GET /healthz\",status=\"200\"}"));
    assert_non_null(
        strstr(r.body, "kefu_http_request_duration_seconds_bucket{route=\"GET /healthz\",le=\"+Inf\"}"));
    assert_non_null(strstr(r.body, "kefu_http_in_flight"));
    assert_non_null(strstr(r.body, "status=\"404\""));
    done(&r);
}

static void test_reload(void **state)
{
    const char *admin = "Authorization: Bearer sekrit\r\n";
    struct resp r;
    write_file("rules/b.rules", "intent bye\n  match bye\n  reply Bye.\n");
    call("POST", "/v1/admin/reload", admin, NULL, &r);
    expect(&r, 200, NULL);
    assert_non_null(strstr(r.body, "\"intents\":2"));
    done(&r);
    write_file("rules/c.rules", "intent broken\n  match ~nosuch\n");
    call("POST", "/v1/admin/reload", admin, NULL, &r);
    expect(&r, 409, "rules_invalid");
    json_t *j = body_json(&r);
    json_t *diags = json_object_get(json_object_get(j, "error"), "diagnostics"), *d0 = NULL;
    for (size_t k = 0; k < json_array_size(diags) && !d0; k++)
        if (strcmp(json_string_value(json_object_get(json_array_get(diags, k), "severity")), "error") == 0)
            d0 = json_array_get(diags, k);
    assert_non_null(d0);
    assert_non_null(strstr(json_string_value(json_object_get(d0, "file")), "c.rules"));
    assert_int_equal(json_integer_value(json_object_get(d0, "line")), 2);
    assert_true(json_integer_value(json_object_get(d0, "col")) > 0);
    json_decref(j);
    done(&r);
    call("GET", "/healthz", NULL, NULL, &r); /* the running set is still the good one */
    assert_non_null(strstr(r.body, "\"intents\":2"));
    done(&r);
    char p[400];
    snprintf(p, sizeof p, "%s/rules/c.rules", tmp);
    unlink(p);
    snprintf(p, sizeof p, "%s/rules/b.rules", tmp);
    unlink(p);
}

static void test_rate_limits(void **state)
{
    stop();
    /* one token per 20 s (burst 10 per address, 5 per conversation): refills never
     * reach the counts below, however slowly the requests run (valgrind, a busy machine) */
    assert_int_equal(start(0.05, 0.05), 0);
    struct resp r;
    int limited = 0, retry = 0;
    for (int k = 0; k < 40 && !limited; k++) { /* burst 10, then limited */
        call("GET", "/v1/queue", "Authorization: Bearer tok-alice\r\n", NULL, &r);
        if (r.status == 429) {
            limited = k + 1;
            expect(&r, 429, "rate_limited");
            retry = atoi(hdr(&r, "Retry-After") ? hdr(&r, "Retry-After") : "0");
        }
        done(&r);
    }
    if (limited != 11 || retry < 1)
        fail_msg("limited at request %d, Retry-After %d", limited, retry);
    call("GET", "/healthz", NULL, NULL, &r); /* operators are never limited */
    expect(&r, 200, NULL);
    done(&r);
    /* untrusted X-Forwarded-For changes nothing: still the same address */
    call("GET", "/v1/queue", "Authorization: Bearer tok-alice\r\nX-Forwarded-For: 10.9.9.9\r\n", NULL, &r);
    expect(&r, 429, "rate_limited");
    done(&r);
    stop();
    trust_proxy = 1; /* behind a proxy: each forwarded client has its own bucket */
    assert_int_equal(start(0.05, 0), 0);
    trust_proxy = 0;
    limited = 0;
    for (int k = 0; k < 40 && !limited; k++) { /* the last address is the client, whatever came before */
        const char *xff = k % 2 ? "X-Forwarded-For: 1.1.1.1, 10.0.0.1\r\n" : "X-Forwarded-For: 10.0.0.1\r\n";
        char hs[128];
        sprintf(hs, "Authorization: Bearer tok-alice\r\n%s", xff);
        call("GET", "/v1/queue", hs, NULL, &r);
        limited = r.status == 429 ? k + 1 : 0;
        done(&r);
    }
    if (limited != 11)
        fail_msg("10.0.0.1 limited at request %d", limited);
    call("GET", "/v1/queue", "Authorization: Bearer tok-alice\r\nX-Forwarded-For: 10.0.0.2\r\n", NULL, &r);
    expect(&r, 200, NULL);
    done(&r);
    stop();
    assert_int_equal(start(0, 0.05), 0);
    char id[64], tok[64], path[128], h[128];
    create(id, tok);
    auth_header(h, tok);
    sprintf(path, "/v1/conversations/%s/messages", id);
    limited = 0;
    for (int k = 0; k < 12 && !limited; k++) {
        call("POST", path, h, "{\"text\":\"hello\"}", &r);
        if (r.status == 429)
            limited = k + 1;
        done(&r);
    }
    if (limited != 6) /* burst 5, then limited */
        fail_msg("the conversation was limited at message %d", limited);
    stop();
    assert_int_equal(start(0, 0), 0);
}

static void test_drain(void **state)
{
    char id[64], tok[64];
    claimed(id, tok);
    struct poll_arg a = {0};
    sprintf(a.path, "/v1/conversations/%s/messages?after=99&wait=20", id);
    auth_header(a.header, tok);
    pthread_t t;
    pthread_create(&t, NULL, long_poll, &a);
    int sse = dial(port); /* and an open event stream */
    char raw[256];
    int n = sprintf(raw, "GET /v1/conversations/%s/events?token=%s HTTP/1.1\r\nHost: x\r\n\r\n", id, tok);
    send_all(sse, raw, (size_t)n);
    static char buf[1 << 16];
    size_t len = 0;
    assert_true(read_until(sse, buf, sizeof buf, &len, "retry: 2000", 2 * slow()));
    usleep(300 * 1000);
    double t0 = now_s();
    int left = http_drain(srv, (int)(5000 * slow()));
    pthread_join(t, NULL);
    assert_int_equal(left, 0);
    expect(&a.r, 200, NULL); /* the parked poll was answered, not cut */
    assert_true(a.t_end - t0 < 2 * slow());
    done(&a.r);
    /* the stream ended properly: the last chunk of the chunked body */
    assert_true(read_until(sse, buf, sizeof buf, &len, "\r\n0\r\n\r\n", 2 * slow()));
    close(sse);
    /* new connections are refused now */
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_true(connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0);
    close(fd);
    stop();
    assert_int_equal(start(0, 0), 0);
}

static void test_listen_parse(void **state)
{
    struct http_config hc;
    http_config_default(&hc);
    struct api_config ac = {.dialog = dlg};
    struct http *h = NULL;
    hc.listen = "nonsense";
    assert_int_equal(http_start(&hc, &ac, &h), KEFU_EINVAL);
    hc.listen = "127.0.0.1:99999";
    assert_int_equal(http_start(&hc, &ac, &h), KEFU_EINVAL);
    hc.listen = "[::1]:0";
    hc.threads = 1;
    if (http_start(&hc, &ac, &h) == 0) { /* IPv6 loopback may be off in a container */
        char url[128];
        http_url(h, url, sizeof url);
        assert_non_null(strstr(url, "http://[::1]:"));
        http_stop(h);
    }
    dialog_set_notify(dlg, NULL, NULL);
    /* the main server was displaced as the notify target: restart it */
    stop();
    assert_int_equal(start(0, 0), 0);
}

/* Every allocation kefu makes while creating the api and answering a
 * create, a message and /metrics can fail: no crash, no leak, and an
 * answer is always a status with a body (checked under ASan/valgrind). */
static void test_alloc_failures(void **state)
{
    for (long n = 1; n < 200; n++) {
        struct api_config ac = {.dialog = dlg, .rate_ip = 5, .rate_conv = 1};
        struct api *a = NULL;
        kefu_alloc_fail_after(n);
        int rc = api_create(&ac, &a);
        if (rc < 0) {
            kefu_alloc_fail_after(0);
            assert_int_equal(rc, KEFU_ENOMEM);
            continue;
        }
        const char *body = "{\"channel\":\"web\",\"customer\":{\"id\":\"u\"}}";
        struct api_request q = {.method = "POST",
                                .path = "/v1/conversations",
                                .content_type = "application/json",
                                .body = body,
                                .body_len = strlen(body),
                                .ip = "10.0.0.1"};
        struct api_response r;
        api_response_init(&r);
        api_handle(a, &q, &r);
        assert_true(r.status == 201 || r.status >= 400);
        api_response_release(&r);
        struct api_request m = {.method = "GET", .path = "/metrics", .ip = "10.0.0.1"};
        api_response_init(&r);
        api_handle(a, &m, &r);
        assert_true(r.status == 200 || r.status >= 500);
        assert_true(r.status != 200 || r.text.len > 0);
        api_response_release(&r);
        kefu_alloc_fail_after(0);
        api_free(a);
    }
}

/* Token buckets: the burst, the refill, Retry-After, separate keys, off
 * at 0, and a flood of keys bounded by the table (old keys reused). */
static void test_rate_buckets(void **state)
{
    struct rate *r;
    assert_int_equal(rate_create(2, 4, 64, &r), 0);
    double retry = 0;
    for (int k = 0; k < 4; k++)
        assert_int_equal(rate_take(r, "a", 1, 100.0, &retry), 0);
    assert_int_equal(rate_take(r, "a", 1, 100.0, &retry), KEFU_ELIMIT);
    assert_true(retry > 0.49 && retry < 0.51);                /* one token at 2/s */
    assert_int_equal(rate_take(r, "b", 1, 100.0, &retry), 0); /* another key has its own */
    assert_int_equal(rate_take(r, "a", 1, 100.6, &retry), 0); /* refilled */
    assert_int_equal(rate_take(r, "a", 1, 100.6, &retry), KEFU_ELIMIT);
    char key[16];
    for (int k = 0; k < 10000; k++) { /* a flood of new keys never fails them */
        int n = sprintf(key, "k%d", k);
        assert_int_equal(rate_take(r, key, (size_t)n, 200.0, &retry), 0);
    }
    rate_free(r);
    assert_int_equal(rate_create(0, 1, 8, &r), 0);
    for (int k = 0; k < 100; k++)
        assert_int_equal(rate_take(r, "a", 1, 1.0, &retry), 0);
    rate_free(r);
}

static void test_depth_scan(void **state)
{
    assert_int_equal(api_json_too_deep("[[1]]", 5, 2), 0);
    assert_int_equal(api_json_too_deep("[[[1]]]", 7, 2), 1);
    assert_int_equal(api_json_too_deep("{\"a\":\"[[[[[\"}", 13, 2), 0); /* brackets in strings */
    assert_int_equal(api_json_too_deep("{\"a\\\"[[[\":1}", 13, 1), 0);  /* escaped quote */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_depth_scan),      cmocka_unit_test(test_rate_buckets),
        cmocka_unit_test(test_alloc_failures),  cmocka_unit_test(test_conversation_flow),
        cmocka_unit_test(test_errors),          cmocka_unit_test(test_dialog_errors),
        cmocka_unit_test(test_limits),          cmocka_unit_test(test_keep_alive),
        cmocka_unit_test(test_agent_flow),      cmocka_unit_test(test_cors),
        cmocka_unit_test(test_static),          cmocka_unit_test(test_encoded_nul),
        cmocka_unit_test(test_long_poll),       cmocka_unit_test(test_sse),
        cmocka_unit_test(test_agent_push),      cmocka_unit_test(test_metrics_health),
        cmocka_unit_test(test_reload),          cmocka_unit_test(test_rate_limits),
        cmocka_unit_test(test_request_timeout), cmocka_unit_test(test_drain),
        cmocka_unit_test(test_listen_parse),
    };
    return cmocka_run_group_tests_name("http", tests, setup, teardown);
}
