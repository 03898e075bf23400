/* test_redline.c — the red-line file (every property, errors at
 * file:line:col) and the windows: a line crossed and cleared at known
 * times, groups per channel, filters, live queue waits, the least number
 * of samples, min lines, and the gauges. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kefu.h"
#include "redline.h"

static struct redline *load(const char *src)
{
    struct rules_diag d;
    rules_diag_init(&d);
    struct redline *r = NULL;
    int rc = redline_load_string("t.conf", src, &d, &r);
    if (rc != 0)
        rules_diag_print(stderr, &d);
    assert_int_equal(rc, 0);
    rules_diag_release(&d);
    return r;
}

static const struct bad_case {
    const char *id, *src;
    int line, col;
    const char *text;
} bad[] = {
    {"1.1", "redline a\n  metric queue_wai\n  window 1m\n  max 1s\n", 2, 10, "unknown metric 'queue_wai'"},
    {"1.2", "redline a\n  metric csat\n  window 5x\n  min 4\n", 3, 10, "window must be a duration"},
    {"1.3", "redline a\n  max 30s\n", 2, 3, "give the metric before its threshold"},
    {"1.4", "redline a\n  metric csat\n  window 1d\n", 1, 1, "red line 'a' has no max or min"},
    {"1.5", "redline a\n  metric csat\n  window 1d\n  min 6\n", 4, 7, "csat threshold must be a rating"},
    {"1.6", "redline a\n  metric automation_rate\n  window 1d\n  min 120%\n", 4, 7, "must be a share"},
    {"1.7", "redline A!\n", 1, 9, "name must be"},
    {"1.8", "redline a\n  metric csat\n  window 1d\n  min 4\nredline a\n", 5, 9, "'a' is defined twice"},
    {"1.9", "  metric csat\n", 1, 3, "a property outside a block"},
    {"1.10", "redlines a\n", 1, 1, "expected 'redline NAME' or 'escalate NAME'"},
    {"1.11", "redline a\n  metric csat\n  window 1d\n  min 4\n  colour red\n", 5, 3,
     "unknown red-line property 'colour'"},
    {"1.12", "redline a\n  metric csat\n  where shop = x\n", 3, 9, "where takes channel, queue or tier"},
    {"1.13", "redline a\n  metric csat\n  where tier vip\n", 3, 14, "expected '=' after 'tier'"},
    {"1.14", "redline a\n  metric csat # the rating\n  window 1d\n  min 4 4\n", 4, 9,
     "unexpected '4' after the value"},
    {"1.15", "redline a\n  metric csat\n  stat max\n  window 1d\n  min 4\n", 1, 1,
     "stat max needs a time metric"},
    {"1.16", "escalate v\n  at 80%\n", 1, 1, "escalate 'v' has no level"},
    {"1.17", "escalate v\n  level 30m\n  priority big\n", 3, 12,
     "priority takes low, normal, high or urgent"},
    {"1.18", "escalate v\n  level 30m\n  queue VIP\n", 3, 9, "queue must be"},
    {"1.19", "redline 队\n", 1, 9, "name must be"},
    {"1.20", "redline a\n  metric   queue_wait\n  per      shop\n", 3, 12,
     "per takes channel, queue or tier"},
};

/* 1.x every mistake is reported at its file:line:col */
static void test_errors(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct rules_diag d;
        rules_diag_init(&d);
        struct redline *r = NULL;
        int rc = redline_load_string("t.conf", bad[i].src, &d, &r);
        if (rc != KEFU_ESYNTAX || d.n == 0 || d.v[0].line != bad[i].line || d.v[0].col != bad[i].col ||
            !strstr(d.v[0].text, bad[i].text)) {
            fprintf(stderr, "case %s: rc %d, want %d:%d '%s', got ", bad[i].id, rc, bad[i].line, bad[i].col,
                    bad[i].text);
            if (d.n)
                fprintf(stderr, "%d:%d '%s'\n", d.v[0].line, d.v[0].col, d.v[0].text);
            else
                fprintf(stderr, "nothing\n");
            fail();
        }
        assert_null(r);
        assert_string_equal(d.v[0].file, "t.conf");
        rules_diag_release(&d);
    }
}

/* 2.1 the bundled file loads: three lines, one escalation with its defaults read */
static void test_bundled(void **state)
{
    (void)state;
    struct rules_diag d;
    rules_diag_init(&d);
    struct redline *r = NULL;
    assert_int_equal(redline_load("rules/redlines.conf", &d, &r), 0);
    assert_int_equal(redline_count(r), 3);
    assert_int_equal(redline_escalations(r), 1);
    const struct redline_escalation *e = redline_escalation(r, 0);
    assert_string_equal(e->name, "vip");
    assert_string_equal(e->tier, "vip");
    assert_int_equal(e->level_s, 1800);
    assert_true(fabs(e->share - 0.8) < 1e-9);
    assert_string_equal(e->to_queue, "vip");
    assert_int_equal(e->priority, 3);
    assert_null(redline_escalation(r, 1));
    redline_free(r);
    rules_diag_release(&d);
    assert_int_equal(redline_load("/nonexistent/redlines.conf", &d, &r), KEFU_EIO);
    rules_diag_release(&d);
}

struct seen {
    json_t *v;
};
static void on_change(void *ctx, json_t *ev)
{
    json_array_append(((struct seen *)ctx)->v, ev);
}
static const char *ev_str(json_t *ev, const char *k)
{
    return json_string_value(json_object_get(ev, k));
}

/* 3.1 an average per channel: crossed by one channel, cleared when its samples leave the window */
static void test_window(void **state)
{
    (void)state;
    struct redline *r =
        load("redline fr\n  metric agent_first_response\n  per channel\n  window 60s\n  max 30s\n");
    struct seen s = {json_array()};
    struct redline_labels web = {"web", "general", "regular"}, app = {"app", "general", "vip"};
    long long t = 1000000;
    redline_observe(r, RL_FIRST_RESPONSE, &web, 20, t);
    redline_observe(r, RL_FIRST_RESPONSE, &app, 10, t);
    redline_observe(r, RL_QUEUE_WAIT, &web, 500, t); /* another metric: not this line's */
    assert_int_equal(redline_eval(r, t, NULL, NULL, 0, on_change, &s), 0);
    assert_int_equal(json_array_size(s.v), 0);
    redline_observe(r, RL_FIRST_RESPONSE, &web, 50, t + 10); /* web: (20 + 50) / 2 = 35 > 30 */
    assert_int_equal(redline_eval(r, t + 10, NULL, NULL, 0, on_change, &s), 1);
    assert_int_equal(json_array_size(s.v), 1);
    json_t *ev = json_array_get(s.v, 0);
    assert_string_equal(ev_str(ev, "event"), "redline.breached");
    assert_string_equal(ev_str(ev, "redline"), "fr");
    assert_string_equal(json_string_value(json_object_get(json_object_get(ev, "group"), "channel")), "web");
    assert_true(fabs(json_real_value(json_object_get(ev, "value")) - 35) < 1e-9);
    assert_int_equal(json_integer_value(json_object_get(ev, "samples")), 2);
    /* the same state again: no second event */
    assert_int_equal(redline_eval(r, t + 20, NULL, NULL, 0, on_change, &s), 1);
    assert_int_equal(json_array_size(s.v), 1);
    json_t *b = redline_breaches(r);
    assert_int_equal(json_array_size(b), 1);
    assert_int_equal(json_integer_value(json_object_get(json_array_get(b, 0), "since")), t + 10);
    json_decref(b);

    struct text_buf m;
    text_buf_init(&m);
    assert_int_equal(redline_metrics(r, &m), 0);
    assert_non_null(strstr(m.s, "kefu_redline_breached{name=\"fr\"} 1\n"));
    assert_non_null(strstr(m.s, "kefu_redline_group_breached{name=\"fr\",channel=\"web\"} 1\n"));
    assert_non_null(strstr(m.s, "kefu_redline_group_breached{name=\"fr\",channel=\"app\"} 0\n"));
    assert_non_null(strstr(m.s, "kefu_redline_value{name=\"fr\",channel=\"web\"} 35.0000\n"));
    text_buf_release(&m);

    /* 70 s on, both web samples are out of the window: cleared, with no samples */
    assert_int_equal(redline_eval(r, t + 75, NULL, NULL, 0, on_change, &s), 0);
    assert_int_equal(json_array_size(s.v), 2);
    ev = json_array_get(s.v, 1);
    assert_string_equal(ev_str(ev, "event"), "redline.cleared");
    assert_int_equal(json_integer_value(json_object_get(ev, "samples")), 0);
    b = redline_breaches(r);
    assert_int_equal(json_array_size(b), 0);
    json_decref(b);
    json_decref(s.v);
    redline_free(r);
}

/* 3.2 the longest wait of VIPs only, counting those waiting now */
static void test_live_waits(void **state)
{
    (void)state;
    struct redline *r =
        load("redline vw\n  metric queue_wait\n  stat max\n  where tier = vip\n  window 30m\n  max 30m\n");
    struct seen s = {json_array()};
    struct redline_labels vip = {"web", "vip", "vip"}, reg = {"web", "general", "regular"};
    long long t = 2000000;
    redline_observe(r, RL_QUEUE_WAIT, &vip, 600, t);
    redline_observe(r, RL_QUEUE_WAIT, &reg, 7200, t); /* not a VIP */
    assert_int_equal(redline_eval(r, t, NULL, NULL, 0, on_change, &s), 0);
    double live[2] = {1900, 4000};
    struct redline_labels ll[2] = {vip, reg};
    assert_int_equal(redline_eval(r, t + 5, live, ll, 2, on_change, &s), 1); /* a VIP waiting 1,900 s */
    json_t *ev = json_array_get(s.v, 0);
    assert_string_equal(ev_str(ev, "event"), "redline.breached");
    assert_true(fabs(json_real_value(json_object_get(ev, "value")) - 1900) < 1e-9);
    assert_null(json_object_get(ev, "group"));
    assert_int_equal(redline_eval(r, t + 10, NULL, NULL, 0, on_change, &s), 0); /* claimed: gone */
    assert_string_equal(ev_str(json_array_get(s.v, 1), "event"), "redline.cleared");
    json_decref(s.v);
    redline_free(r);
}

/* 3.3 a min line with a least number of samples: fewer ratings never breach */
static void test_min_samples(void **state)
{
    (void)state;
    struct redline *r = load("redline csat\n  metric csat\n  window 1d\n  min 4.5\n  samples 3\n");
    struct seen s = {json_array()};
    struct redline_labels l = {"web", "", "regular"};
    long long t = 3000000;
    redline_observe(r, RL_CSAT, &l, 1, t);
    redline_observe(r, RL_CSAT, &l, 2, t);
    assert_int_equal(redline_eval(r, t, NULL, NULL, 0, on_change, &s), 0);
    redline_observe(r, RL_CSAT, &l, 5, t + 3600);
    assert_int_equal(redline_eval(r, t + 3600, NULL, NULL, 0, on_change, &s), 1);
    json_t *ev = json_array_get(s.v, 0);
    assert_string_equal(ev_str(ev, "op"), "min");
    assert_true(fabs(json_real_value(json_object_get(ev, "value")) - 8.0 / 3) < 1e-9);
    for (int k = 0; k < 30; k++)
        redline_observe(r, RL_CSAT, &l, 5, t + 7200);
    assert_int_equal(redline_eval(r, t + 7200, NULL, NULL, 0, on_change, &s), 0);
    assert_int_equal(json_array_size(s.v), 2);
    json_decref(s.v);
    redline_free(r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_errors),     cmocka_unit_test(test_bundled),     cmocka_unit_test(test_window),
        cmocka_unit_test(test_live_waits), cmocka_unit_test(test_min_samples),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
