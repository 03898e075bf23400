/* test_action.c — the action module: the configuration file (defaults and
 * each refusal), stubs (answer, fail, replace, clear), an unknown action,
 * the circuit breaker against a closed port on 127.0.0.1 (opens after the
 * configured failures, refuses without a call, lets one trial through after
 * breaker_open_s and opens again when it fails), the metrics it writes,
 * reading fields as text and flattening them for conditions, and what an
 * intent chooses for an answer. (The network against a real backend: slow,
 * 500, malformed, huge, down, signatures — tests/actions.sh.) */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <arpa/inet.h>
#include <cmocka.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "action.h"
#include "kefu.h"
#include "log.h"
#include "rules.h"

static char dir[] = "/tmp/kefu-test-action-XXXXXX";

static const char *write_conf(const char *name, const char *text)
{
    static char path[256];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
    return path;
}

/* A port on 127.0.0.1 that nobody listens on (bound, then closed). */
static unsigned closed_port(void)
{
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t n = sizeof a;
    assert_int_equal(bind(s, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(getsockname(s, (struct sockaddr *)&a, &n), 0);
    close(s);
    return ntohs(a.sin_port);
}

/* 1. the configuration: good files load, each mistake is refused with the file named */
static const struct conf_case {
    const char *id, *text;
    int rc;
    const char *err; /* a part of the message */
} conf_cases[] = {
    {"1.1", "{\"a\": {\"url\": \"http://127.0.0.1:9/x\"}}", 0, ""},
    {"1.2", "{}", 0, ""},
    {"1.3", "[1]", KEFU_EINVAL, "expected an object of actions"},
    {"1.4", "{\"a\": {\"url\": \"ftp://h/x\"}}", KEFU_EINVAL, "action 'a' needs a url"},
    {"1.5", "{\"a\": {}}", KEFU_EINVAL, "action 'a' needs a url"},
    {"1.6", "{\"Bad-Name\": {\"url\": \"http://h/\"}}", KEFU_EINVAL, "bad action name 'Bad-Name'"},
    {"1.7", "{\"a\": {\"url\": \"http://h/\", \"timeout\": 2}}", KEFU_EINVAL, "unknown key 'timeout'"},
    {"1.8", "{\"a\": {\"url\": \"http://h/\", \"timeout_s\": 61}}", KEFU_EINVAL,
     "timeout_s must be in (0, 60]"},
    {"1.9", "{\"a\": {\"url\": \"http://h/\", \"max_bytes\": 1}}", KEFU_EINVAL, "max_bytes in [2, 16777216]"},
    {"1.10", "{\"a\": {\"url\": \"http://h/\", \"secret_env\": \"KEFU_TEST_NO_SUCH_VARIABLE\"}}", KEFU_EINVAL,
     "environment variable KEFU_TEST_NO_SUCH_VARIABLE is not set"},
    {"1.11", "{\"a\": 1}", KEFU_EINVAL, "action 'a' must be an object"},
    {"1.12", "{\"a\": {\"url\": \"http://h/\"},\n \"a\": {\"url\": \"http://h/\"}}", KEFU_ESYNTAX, ":2:"},
    {"1.13", "{\"a\": {\"url\": \"http://h/\"", KEFU_ESYNTAX, ":1:"},
    {"1.14", "{\"a\": {\"url\": \"http://h/\", \"concurrency\": 1e300}}", KEFU_EINVAL,
     "concurrency and breaker_failures in [1, 100000]"},
    {"1.15", "{\"a\": {\"url\": \"http://h/\", \"breaker_failures\": 0.5}}", KEFU_EINVAL,
     "concurrency and breaker_failures in [1, 100000]"},
    {"1.16", "{\"a\": {\"url\": \"http://h/\", \"breaker_open_s\": 1e9}}", KEFU_EINVAL,
     "breaker_open_s in (0, 86400]"},
};

static void test_config(void **state)
{
    for (size_t i = 0; i < sizeof conf_cases / sizeof conf_cases[0]; i++) {
        const struct conf_case *c = &conf_cases[i];
        char err[512] = "";
        struct actions *a = NULL;
        int rc = actions_load(write_conf("c.json", c->text), err, sizeof err, &a);
        if (rc != c->rc || !strstr(err, c->err) || (rc == 0) != (a != NULL))
            fail_msg("case %s: want %d '%s', got %d '%s'", c->id, c->rc, c->err, rc, err);
        if (rc < 0 && !strstr(err, "c.json"))
            fail_msg("case %s: the message does not name the file: '%s'", c->id, err);
        actions_free(a);
    }
    char err[128];
    struct actions *a = NULL;
    assert_int_equal(actions_load("/nonexistent/actions.json", err, sizeof err, &a), KEFU_EIO);
    assert_null(a);
    setenv("KEFU_TEST_ACTION_SECRET", "s3cret", 1);
    assert_int_equal(actions_load(write_conf("ok.json", "{\"order_status\": {\"url\": \"https://h/x\", "
                                                        "\"secret_env\": \"KEFU_TEST_ACTION_SECRET\"}}"),
                                  err, sizeof err, &a),
                     0);
    assert_true(actions_known(a, "order_status"));
    assert_false(actions_known(a, "refund_status"));
    assert_true(actions_known_fn(a, "order_status"));
    assert_false(actions_known(NULL, "order_status"));
    actions_free(a);
    actions_free(NULL);
}

/* 2. stubs: an answer (marked stubbed), a failure, a replacement, clearing; an unknown action fails */
static void test_stubs(void **state)
{
    struct actions *a = NULL;
    assert_int_equal(actions_create(&a), 0);
    json_t *body = json_pack("{s:s}", "action", "order_status"), *res = NULL;
    char outcome[160];
    double secs = -1;
    int stubbed = -1;
    assert_false(actions_call_wait(a, "order_status", body, &res, outcome, sizeof outcome, &secs, &stubbed));
    assert_string_equal(outcome, "unknown: no such action configured");
    assert_int_equal(stubbed, 0);
    assert_null(res);
    json_t *v = json_pack("{s:b, s:{s:s}}", "found", 1, "order", "status", "shipped");
    assert_int_equal(actions_stub(a, "order_status", v), 0);
    json_object_set_new(v, "found", json_false()); /* the stub holds its own copy */
    assert_true(actions_known(a, "order_status"));
    assert_true(actions_call_wait(a, "order_status", body, &res, outcome, sizeof outcome, &secs, &stubbed));
    assert_string_equal(outcome, "ok");
    assert_int_equal(stubbed, 1); /* the answer says it came from a stub */
    assert_true(secs >= 0 && secs < 1);
    assert_true(json_is_true(json_object_get(res, "found")));
    json_decref(res);
    assert_int_equal(actions_stub(a, "order_status", v), 0); /* replaced */
    assert_true(actions_call_wait(a, "order_status", body, &res, outcome, sizeof outcome, &secs, &stubbed));
    assert_true(json_is_false(json_object_get(res, "found")));
    json_decref(res);
    assert_int_equal(actions_stub(a, "refund_status", NULL), 0);
    stubbed = 0;
    assert_false(actions_call_wait(a, "refund_status", body, &res, outcome, sizeof outcome, &secs, &stubbed));
    assert_string_equal(outcome, "error: stubbed to fail");
    assert_int_equal(stubbed, 1);
    assert_null(res);
    actions_stub_clear(a);
    assert_false(actions_known(a, "order_status"));
    assert_false(actions_known(a, "refund_status"));
    json_decref(v);
    json_decref(body);
    actions_free(a);
}

static long metric(struct actions *a, const char *line_start)
{
    struct text_buf out;
    text_buf_init(&out);
    assert_int_equal(actions_metrics(a, &out), 0);
    const char *p = out.s ? strstr(out.s, line_start) : NULL;
    long v = p ? strtol(p + strlen(line_start), NULL, 10) : -1;
    text_buf_release(&out);
    return v;
}

/* 3. the breaker against a closed port: two failures open it, calls are then
 * refused at once, a trial after breaker_open_s fails and opens it again */
static void test_breaker(void **state)
{
    char conf[512], err[256];
    snprintf(conf, sizeof conf,
             "{\"shop\": {\"url\": \"http://127.0.0.1:%u/x\", \"timeout_s\": 1, \"breaker_failures\": 2, "
             "\"breaker_open_s\": 0.3}}",
             closed_port());
    struct actions *a = NULL;
    assert_int_equal(actions_load(write_conf("b.json", conf), err, sizeof err, &a), 0);
    json_t *body = json_object(), *res = NULL;
    char outcome[160];
    double secs;
    int stubbed = -1;
    for (int k = 0; k < 2; k++) {
        assert_false(actions_call_wait(a, "shop", body, &res, outcome, sizeof outcome, &secs, &stubbed));
        assert_int_equal(strncmp(outcome, "error: ", 7), 0);
        assert_int_equal(stubbed, 0); /* a real call that went out */
    }
    assert_int_equal(metric(a, "kefu_action_breaker_open{action=\"shop\"} "), 1);
    assert_false(actions_call_wait(a, "shop", body, &res, outcome, sizeof outcome, &secs, &stubbed));
    assert_string_equal(outcome, "breaker_open: breaker open");
    assert_true(secs == 0);
    usleep(350 * 1000);
    assert_false(
        actions_call_wait(a, "shop", body, &res, outcome, sizeof outcome, &secs, &stubbed)); /* the trial */
    assert_int_equal(strncmp(outcome, "error: ", 7), 0);
    assert_false(actions_call_wait(a, "shop", body, &res, outcome, sizeof outcome, &secs, &stubbed));
    assert_string_equal(outcome, "breaker_open: breaker open");
    assert_int_equal(metric(a, "kefu_action_calls_total{action=\"shop\",outcome=\"error\"} "), 3);
    assert_int_equal(metric(a, "kefu_action_calls_total{action=\"shop\",outcome=\"breaker_open\"} "), 2);
    assert_int_equal(metric(a, "kefu_action_duration_seconds_count{action=\"shop\"} "), 3);
    assert_int_equal(metric(a, "kefu_action_calls_total{action=\"shop\",outcome=\"ok\"} "), 0);
    json_decref(body);
    actions_free(a);
}

/* 4. fields as text; flattened for conditions */
static void test_fields(void **state)
{
    json_t *r = json_loads(
        "{\"found\": true, \"n\": 3, \"x\": 1.5, \"none\": null, \"order\": {\"status\": "
        "\"shipped\", \"eta\": \"明天\", \"note\": \"a\\nb\\u0007c\", \"deep\": {\"er\": {\"est\": 1}}},"
        " \"list\": [1, 2]}",
        0, NULL);
    assert_non_null(r);
    char buf[64];
    assert_true(action_field(r, "order.status", buf, sizeof buf));
    assert_string_equal(buf, "shipped");
    assert_true(action_field(r, "found", buf, sizeof buf));
    assert_string_equal(buf, "true");
    assert_true(action_field(r, "n", buf, sizeof buf));
    assert_string_equal(buf, "3");
    assert_true(action_field(r, "x", buf, sizeof buf));
    assert_string_equal(buf, "1.5");
    assert_true(action_field(r, "order.note", buf, sizeof buf));
    assert_string_equal(buf, "a b c"); /* control characters become spaces */
    char small[5];
    assert_true(action_field(r, "order.eta", small, sizeof small));
    assert_string_equal(small, "明"); /* cut at a character boundary */
    const char *missing[] = {"none", "order", "list", "order.missing", "nope.status", "", "order.status.x"};
    for (size_t k = 0; k < sizeof missing / sizeof *missing; k++) {
        strcpy(buf, "junk");
        if (action_field(r, missing[k], buf, sizeof buf) || *buf)
            fail_msg("field '%s' should be missing, got '%s'", missing[k], buf);
    }
    struct attr v[16];
    char text[512];
    size_t n = 1;
    v[0] = (struct attr){"tier", "vip"};
    action_attrs(r, v, 16, &n, text, sizeof text);
    struct attrs a = {v, n};
    assert_string_equal(attrs_get(&a, "tier"), "vip");
    assert_string_equal(attrs_get(&a, "found"), "true");
    assert_string_equal(attrs_get(&a, "order.status"), "shipped");
    assert_string_equal(attrs_get(&a, "order.deep.er"), ""); /* four levels: not flattened */
    assert_string_equal(attrs_get(&a, "list"), "");
    json_decref(r);
}

/* 5. what an intent chooses: a group by locale with its handoff, the intent's
 * reply when nothing holds, on failed, and a handoff when nothing says what to do */
static void test_choose(void **state)
{
    const char *src = "intent o\n  match where\n  action s\n"
                      "  on found = false -> reply none\n"
                      "  on found = false -> reply@zh 没有\n"
                      "  on order.status = lost -> reply lost\n"
                      "  on order.status = lost -> handoff queue orders priority urgent\n"
                      "  reply default\n"
                      "intent p\n  match who\n  action s\n  on failed -> reply later\n  reply fine\n";
    struct rules_diag d;
    rules_diag_init(&d);
    struct rules *rs = NULL;
    assert_int_equal(rules_load_string("t.rules", src, &d, &rs), 0);
    rules_diag_release(&d);
    const struct rules_intent *o = rules_intent(rs, 0), *p = rules_intent(rs, 1);
    struct attrs conv = {(struct attr[]){{"locale", "zh"}}, 1};
    struct action_choice ch;
    json_t *nf = json_pack("{s:b}", "found", 0),
           *lost = json_pack("{s:b, s:{s:s}}", "found", 1, "order", "status", "lost"),
           *ok = json_pack("{s:b, s:{s:s}}", "found", 1, "order", "status", "shipped");
    action_choose(o, 1, nf, &conv, "zh", "default", &ch);
    assert_string_equal(ch.tpl, "没有");
    assert_null(ch.handoff);
    action_choose(o, 1, nf, &conv, "en", "default", &ch);
    assert_string_equal(ch.tpl, "none");
    action_choose(o, 1, lost, &conv, "en", "default", &ch);
    assert_string_equal(ch.tpl, "lost");
    assert_non_null(ch.handoff);
    assert_string_equal(ch.handoff->queue, "orders");
    assert_int_equal(ch.handoff->priority, RULES_PRIO_URGENT);
    action_choose(o, 1, ok, &conv, "en", "default", &ch);
    assert_string_equal(ch.tpl, "default");
    assert_false(ch.failed_handoff);
    action_choose(o, 0, NULL, &conv, "en", "default", &ch);
    assert_null(ch.tpl);
    assert_true(ch.failed_handoff);
    action_choose(p, 0, NULL, &conv, "en", "fine", &ch);
    assert_string_equal(ch.tpl, "later");
    assert_false(ch.failed_handoff);
    json_decref(nf);
    json_decref(lost);
    json_decref(ok);
    rules_unref(rs);
}

static int setup(void **state)
{
    log_init(LOG_LEVEL_OFF, NULL);
    return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state)
{
    char path[256];
    const char *files[] = {"c.json", "ok.json", "b.json"};
    for (size_t k = 0; k < 3; k++) {
        snprintf(path, sizeof path, "%s/%s", dir, files[k]);
        unlink(path);
    }
    rmdir(dir);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_config), cmocka_unit_test(test_stubs),  cmocka_unit_test(test_breaker),
        cmocka_unit_test(test_fields), cmocka_unit_test(test_choose),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
