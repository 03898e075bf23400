/* test_dialog.c — conversations end to end in process, on the bundled
 * rules and a real SQLite file in a temporary directory: the whole journey
 * from a rule's answer through a handoff, a claim, an agent's replies and
 * a resolve to feedback and a fresh start with the bot; idempotent
 * messages, claims and resolves; misses and VIP handoffs; tokens; skills,
 * capacity and transfers; positions and waiting times; business hours;
 * slots asked and filled; restarts; reloads; concurrent customers. */
#include <dirent.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <jansson.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>

#include "abtest.h"
#include "action.h"
#include "dialog.h"
#include "kefu.h"
#include "text.h"

#define AMY    "0123456789abcdef0123456789abcdef"
#define BOB    "fedcba9876543210fedcba9876543210"
#define CAT    "00112233445566778899aabbccddeeff"
#define AGENTS "amy:" AMY ":general|vip|complaints:2,bob:" BOB ":billing:1,cat:" CAT ":*:10"

static long long fake_now = 1700000000 + 4 * 3600; /* 10:13 Beijing time */

static long long fake_clock(void *ctx)
{
    return fake_now;
}

struct fixture {
    char dir[64];
    struct dialog_config cfg;
    struct dialog *d;
    int notified, queue_notified;
};

static void on_notify(void *ctx, const char *conv, long seq)
{
    struct fixture *f = ctx;
    __atomic_add_fetch(conv ? &f->notified : &f->queue_notified, 1, __ATOMIC_SEQ_CST);
}

static void open_dialog(struct fixture *f)
{
    struct rules_diag diag;
    rules_diag_init(&diag);
    int rc = dialog_open(&f->cfg, &diag, &f->d);
    if (rc < 0)
        fail_msg("dialog_open: %d %s", rc, dialog_error());
    rules_diag_release(&diag);
    dialog_set_notify(f->d, on_notify, f);
}

/* The bundled rules' trained model, kept from the first fixture and copied
 * into each later one's data/models: the cache is keyed by the examples, so
 * the dialog loads it instead of training again (under valgrind a training
 * of the bundled examples takes tens of seconds). */
static char seed_dir[64];

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof *f);
    snprintf(f->dir, sizeof f->dir, "/tmp/kefu-dialog-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    dialog_config_default(&f->cfg);
    f->cfg.data_dir = f->dir;
    f->cfg.rules_dir = "rules";
    f->cfg.corpus_dir = NULL;
    f->cfg.agents = AGENTS;
    f->cfg.now = fake_clock;
    fake_now = 1700000000 + 4 * 3600;
    char cmd[320];
    if (seed_dir[0]) {
        snprintf(cmd, sizeof cmd, "mkdir -p '%s/models' && cp '%s'/*.model '%s/models/'", f->dir, seed_dir,
                 f->dir);
        assert_int_equal(system(cmd), 0);
    }
    open_dialog(f);
    if (!seed_dir[0]) {
        snprintf(seed_dir, sizeof seed_dir, "/tmp/kefu-dialog-seed-XXXXXX");
        assert_non_null(mkdtemp(seed_dir));
        snprintf(cmd, sizeof cmd, "cp '%s'/models/*.model '%s/'", f->dir, seed_dir);
        assert_int_equal(system(cmd), 0);
    }
    *state = f;
    return 0;
}

static int remove_seed(void **state)
{
    (void)state;
    char cmd[96];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", seed_dir);
    return seed_dir[0] && system(cmd) != 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    dialog_close(f->d);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", f->dir);
    if (system(cmd) != 0)
        return 1;
    free(f);
    return 0;
}

/* Creates a conversation; id and token are copied out. */
static void new_conv(struct dialog *d, const char *customer, const char *tier, const char *channel, char *id,
                     char *token)
{
    json_t *req = json_pack("{s:s, s:{s:s, s:s, s:s}}", "channel", channel, "customer", "id", customer,
                            "name", "Li Lei", "tier", tier);
    json_t *out;
    assert_int_equal(dialog_conversation_create(d, req, &out), 0);
    snprintf(id, 40, "%s", json_string_value(json_object_get(out, "id")));
    snprintf(token, 40, "%s", json_string_value(json_object_get(out, "token")));
    assert_int_equal(strlen(token), 32);
    assert_string_equal(json_string_value(json_object_get(out, "state")), "bot");
    assert_int_equal(json_array_size(json_object_get(out, "messages")), 1);
    json_decref(req);
    json_decref(out);
}

/* Sends text (client_id may be NULL) and returns the answer (new). */
static json_t *say(struct dialog *d, const char *id, const char *text, const char *client_id)
{
    json_t *req = client_id ? json_pack("{s:s, s:s}", "text", text, "client_id", client_id)
                            : json_pack("{s:s}", "text", text);
    json_t *out = NULL;
    int rc = dialog_customer_message(d, id, req, &out);
    if (rc < 0)
        fail_msg("message '%s': %d %s", text, rc, dialog_error());
    json_decref(req);
    return out;
}

static const char *str(json_t *o, const char *path)
{
    char buf[128];
    snprintf(buf, sizeof buf, "%s", path);
    json_t *v = o;
    for (char *save = NULL, *k = strtok_r(buf, ".", &save); k && v; k = strtok_r(NULL, ".", &save))
        v = json_object_get(v, k);
    return json_is_string(v) ? json_string_value(v) : NULL;
}

static void expect_str(json_t *o, const char *path, const char *want)
{
    const char *got = str(o, path);
    if (!got || strcmp(got, want) != 0) {
        char *s = json_dumps(o, JSON_COMPACT);
        fail_msg("%s: got '%s', expected '%s' in %s", path, got ? got : "(none)", want, s);
    }
}

static long long num(json_t *o, const char *k1, const char *k2)
{
    json_t *v = json_object_get(o, k1);
    if (k2)
        v = json_object_get(v, k2);
    return json_integer_value(v);
}

static int count_messages(struct dialog *d, const char *id)
{
    json_t *out;
    assert_int_equal(dialog_messages(d, id, 0, &out), 0);
    int n = (int)json_array_size(json_object_get(out, "messages"));
    json_decref(out);
    return n;
}

static const char *agent(struct dialog *d, const char *token)
{
    const char *name = NULL;
    assert_int_equal(dialog_agent_auth(d, token, &name), 0);
    return name;
}

/* 1.1 the whole journey: rule → request for a person → queued with the packet → claim → agent
 * replies while the bot is silent → resolve → rating → the bot again */
static void test_journey(void **state)
{
    struct fixture *f = *state;
    struct dialog *d = f->d;
    char id[40], token[40];
    new_conv(d, "u1", "regular", "web", id, token);
    json_t *r = say(d, id, "我的退款什么时候到账", NULL);
    expect_str(r, "reply.source", "rule");
    expect_str(r, "reply.intent", "returns.refund_status");
    expect_str(r, "state", "bot");
    json_decref(r);

    r = say(d, id, "转人工", NULL);
    expect_str(r, "reply.source", "handoff");
    expect_str(r, "reply.intent", "human.agent");
    expect_str(r, "state", "queued");
    expect_str(r, "queue.name", "general");
    assert_int_equal(num(r, "queue", "position"), 1);
    assert_non_null(str(r, "reply.notice")); /* no agent online yet */
    json_decref(r);

    r = say(d, id, "还在吗？", NULL);
    assert_true(json_is_null(json_object_get(r, "reply")));
    expect_str(r, "state", "queued");
    json_decref(r);

    const char *amy = agent(d, AMY);
    assert_string_equal(amy, "amy");
    json_t *q;
    assert_int_equal(dialog_queue_list(d, amy, &q), 0);
    json_t *first = json_array_get(json_object_get(q, "conversations"), 0);
    expect_str(first, "id", id);
    expect_str(first, "reason", "requested");
    expect_str(first, "customer.name", "Li Lei");
    expect_str(first, "first_message", "我的退款什么时候到账");
    json_decref(q);

    json_t *ctx;
    fake_now += 42;
    assert_int_equal(dialog_claim(d, amy, NULL, &ctx), 0);
    expect_str(ctx, "conversation.state", "agent");
    expect_str(ctx, "reason", "requested");
    expect_str(ctx, "customer.tier", "regular");
    json_t *tr = json_object_get(ctx, "transcript");
    assert_true(json_array_size(tr) >= 6); /* greeting, 2 × (question, answer), the waiting message */
    json_t *intents = json_object_get(json_object_get(ctx, "understood"), "intents");
    expect_str(json_array_get(intents, 0), "intent", "returns.refund_status");
    assert_true(json_real_value(json_object_get(json_array_get(intents, 0), "confidence")) > 0.5);
    json_t *packet = json_object_get(ctx, "packet");
    expect_str(packet, "reason", "requested");
    assert_true(json_array_size(json_object_get(packet, "transcript")) >= 5);
    json_decref(ctx);

    json_t *req = json_pack("{s:s}", "text", "您好，我是客服小美，马上为您查询退款。"), *out;
    assert_int_equal(dialog_agent_message(d, amy, id, req, &out), 0);
    long agent_seq = (long)num(out, "seq", NULL);
    json_decref(out);
    json_decref(req);

    r = say(d, id, "好的谢谢", NULL);
    assert_true(json_is_null(json_object_get(r, "reply"))); /* the bot stays silent with an agent */
    expect_str(r, "state", "agent");
    json_decref(r);

    assert_int_equal(dialog_messages(d, id, agent_seq - 1, &out), 0);
    json_t *m0 = json_array_get(json_object_get(out, "messages"), 0);
    expect_str(m0, "from", "agent");
    expect_str(out, "state", "agent");
    json_decref(out);

    assert_int_equal(dialog_resolve(d, amy, id, &out), 0);
    expect_str(out, "state", "resolved");
    json_decref(out);
    assert_int_equal(dialog_messages(d, id, 0, &out), 0);
    json_t *msgs = json_object_get(out, "messages");
    expect_str(json_array_get(msgs, json_array_size(msgs) - 1), "source", "survey");
    json_decref(out);

    r = say(d, id, "5", NULL);
    expect_str(r, "reply.source", "feedback");
    expect_str(r, "reply.text", "感谢您的评价！"); /* the conversation's language, not the digit's */
    expect_str(r, "state", "resolved");
    json_decref(r);

    r = say(d, id, "我要开发票", NULL);
    expect_str(r, "state", "bot");
    expect_str(r, "reply.source", "rule");
    expect_str(r, "reply.intent", "invoice.request");
    json_decref(r);

    struct text_buf m;
    text_buf_init(&m);
    assert_int_equal(dialog_metrics(d, &m), 0);
    assert_non_null(strstr(m.s, "kefu_handoffs_total{reason=\"requested\"} 1\n"));
    assert_non_null(strstr(m.s, "kefu_feedback_total{rating=\"5\"} 1\n"));
    assert_non_null(strstr(m.s, "kefu_messages_total{source=\"rule\"} 2\n"));
    assert_non_null(strstr(m.s, "kefu_wait_seconds_bucket{le=\"60\"} 1\n"));
    assert_non_null(strstr(m.s, "kefu_automation_ratio 0.6667\n"));
    text_buf_release(&m);
    assert_true(f->notified > 5);
    assert_int_equal(f->queue_notified, 3); /* the handoff, the claim, the resolve */
}

/* 1.3 the figures of the day: one answer, one handoff claimed after 42 s, a rating of 4; nothing before since
 */
static void test_stats(void **state)
{
    struct fixture *f = *state;
    struct dialog *d = f->d;
    char id[40], token[40];
    new_conv(d, "u-stats", "regular", "web", id, token);
    json_decref(say(d, id, "我的退款什么时候到账", NULL));
    json_decref(say(d, id, "转人工", NULL));
    json_t *out;
    fake_now += 42;
    assert_int_equal(dialog_claim(d, "amy", id, &out), 0);
    json_decref(out);
    assert_int_equal(dialog_resolve(d, "amy", id, &out), 0);
    json_decref(out);
    json_t *req = json_pack("{s:i}", "rating", 4);
    assert_int_equal(dialog_feedback(d, id, req, &out), 0);
    json_decref(out);
    json_decref(req);

    assert_int_equal(dialog_stats(d, -1, &out), 0);
    long long midnight = fake_now - fake_now % 86400; /* the tests' clock is UTC */
    assert_int_equal(num(out, "since", NULL), midnight);
    assert_int_equal(num(out, "until", NULL), fake_now);
    assert_int_equal(num(out, "conversations", NULL), 1);
    assert_int_equal(num(out, "customer_messages", NULL), 2);
    assert_int_equal(num(out, "answered", NULL), 1);
    assert_true(fabs(json_real_value(json_object_get(out, "automation_rate")) - 0.5) < 1e-9);
    assert_int_equal(num(out, "handoffs", NULL), 1);
    assert_int_equal(num(out, "claims", NULL), 1);
    assert_int_equal(num(out, "resolves", NULL), 1);
    assert_int_equal(num(out, "wait_s", "claims"), 1);
    assert_int_equal(num(out, "wait_s", "max"), 42);
    assert_int_equal(num(out, "ratings", "count"), 1);
    assert_int_equal(
        json_integer_value(json_array_get(json_object_get(json_object_get(out, "ratings"), "values"), 3)), 1);
    json_t *hours = json_object_get(out, "hours");
    size_t nh = json_array_size(hours);
    assert_int_equal(nh, (size_t)((fake_now - midnight) / 3600 + 1));
    json_t *last = json_array_get(hours, nh - 1);
    assert_int_equal(num(last, "messages", NULL), 2);
    assert_int_equal(num(last, "answered", NULL), 1);
    assert_int_equal(num(last, "handoffs", NULL), 1);
    assert_int_equal(num(json_array_get(hours, 0), "messages", NULL), 0);
    json_decref(out);

    assert_int_equal(dialog_stats(d, fake_now + 1, &out), 0);
    assert_int_equal(num(out, "customer_messages", NULL), 0);
    assert_int_equal(num(out, "handoffs", NULL), 0);
    assert_int_equal(num(out, "ratings", "count"), 0);
    assert_int_equal(json_array_size(json_object_get(out, "hours")), 0);
    json_decref(out);
}

static json_t *agent_says(struct dialog *d, const char *agent, const char *id, const char *text)
{
    json_t *req = json_pack("{s:s}", "text", text), *out = NULL;
    assert_int_equal(dialog_agent_message(d, agent, id, req, &out), 0);
    json_decref(req);
    return out;
}

/* 1.4 agents' first response: from the handoff to the agent's first message, not the claim; once per
 * handoff, per queue and channel, in /v1/stats and the histogram */
static void test_first_response(void **state)
{
    struct fixture *f = *state;
    struct dialog *d = f->d;
    char id[40], token[40], id2[40];
    new_conv(d, "u-fr1", "regular", "web", id, token);
    json_decref(say(d, id, "转人工", NULL));
    fake_now += 20;
    json_t *out;
    assert_int_equal(dialog_claim(d, "amy", id, &out), 0); /* the claim is no response */
    json_decref(out);
    fake_now += 25;
    json_decref(agent_says(d, "amy", id, "你好，我来帮您"));
    fake_now += 100;
    json_decref(agent_says(d, "amy", id, "还有别的问题吗")); /* not a first response */
    assert_int_equal(dialog_resolve(d, "amy", id, &out), 0);
    json_decref(out);
    json_decref(say(d, id, "我要开发票", NULL)); /* back to the bot */
    json_decref(say(d, id, "转人工", NULL));     /* a second handoff counts again */
    assert_int_equal(dialog_claim(d, "amy", id, &out), 0);
    json_decref(out);
    fake_now += 5;
    json_decref(agent_says(d, "amy", id, "又见面了"));

    new_conv(d, "u-fr2", "regular", "app", id2, token);
    json_decref(say(d, id2, "转人工", NULL));
    assert_int_equal(dialog_claim(d, "amy", id2, &out), 0);
    json_decref(out);
    fake_now += 200;
    json_decref(agent_says(d, "amy", id2, "在的"));

    assert_int_equal(dialog_stats(d, -1, &out), 0);
    assert_int_equal(num(out, "first_response_s", "count"), 3);
    assert_int_equal(num(out, "first_response_s", "max"), 200);
    assert_true(fabs(json_real_value(json_object_get(json_object_get(out, "first_response_s"), "avg")) -
                     (45 + 5 + 200) / 3.0) < 1e-6);
    json_t *groups = json_object_get(json_object_get(out, "first_response_s"), "groups");
    assert_int_equal(json_array_size(groups), 2);
    json_t *g0 = json_array_get(groups, 0), *g1 = json_array_get(groups, 1);
    expect_str(g0, "channel", "app");
    expect_str(g0, "queue", "general");
    assert_int_equal(num(g0, "count", NULL), 1);
    assert_int_equal(num(g0, "max", NULL), 200);
    expect_str(g1, "channel", "web");
    assert_int_equal(num(g1, "count", NULL), 2);
    assert_true(fabs(json_real_value(json_object_get(g1, "avg")) - 25.0) < 1e-6);
    /* the KPI table beside the bundled red lines: app's 200 s is over first_response's 30 s */
    json_t *kpi = json_object_get(out, "kpi");
    expect_str(json_object_get(json_object_get(kpi, "redlines"), "first_response"), "op", "max");
    json_t *app = json_array_get(json_object_get(kpi, "channels"), 0),
           *web = json_array_get(json_object_get(kpi, "channels"), 1);
    expect_str(app, "channel", "app");
    expect_str(web, "channel", "web");
    assert_true(fabs(json_real_value(json_object_get(web, "automation")) - 1.0 / 3) <
                1e-9); /* 1 of 3 handled */
    assert_true(fabs(json_real_value(json_object_get(app, "automation"))) < 1e-9);
    assert_true(fabs(json_real_value(json_object_get(web, "first_response_s")) - 25) < 1e-9);
    assert_true(fabs(json_real_value(json_object_get(web, "handling_s")) - 125) <
                1e-9);                                             /* claim to resolve */
    assert_true(json_is_null(json_object_get(app, "handling_s"))); /* never resolved */
    assert_true(fabs(json_real_value(json_object_get(web, "first_contact_resolution"))) <
                1e-9); /* reopened */
    assert_true(fabs(json_real_value(json_object_get(app, "first_contact_resolution"))) <
                1e-9); /* unresolved */
    assert_int_equal(json_array_size(json_object_get(web, "breached")), 0);
    assert_string_equal(json_string_value(json_array_get(json_object_get(app, "breached"), 0)),
                        "first_response_s");
    json_decref(out);

    struct text_buf m;
    text_buf_init(&m);
    assert_int_equal(dialog_metrics(d, &m), 0);
    assert_non_null(strstr(m.s, "# TYPE kefu_agent_first_response_seconds histogram\n"));
    assert_non_null(strstr(
        m.s, "kefu_agent_first_response_seconds_bucket{queue=\"general\",channel=\"web\",le=\"10\"} 1\n"));
    assert_non_null(strstr(
        m.s, "kefu_agent_first_response_seconds_bucket{queue=\"general\",channel=\"web\",le=\"60\"} 2\n"));
    assert_non_null(
        strstr(m.s, "kefu_agent_first_response_seconds_sum{queue=\"general\",channel=\"web\"} 50\n"));
    assert_non_null(strstr(
        m.s, "kefu_agent_first_response_seconds_bucket{queue=\"general\",channel=\"app\",le=\"120\"} 0\n"));
    assert_non_null(
        strstr(m.s, "kefu_agent_first_response_seconds_count{queue=\"general\",channel=\"app\"} 1\n"));
    text_buf_release(&m);
}

/* 1.2 zh, zh-hant and en requests for a person all hand off, as "requested" */
static void test_human_phrasings(void **state)
{
    struct fixture *f = *state;
    const char *asks[] = {"转人工", "人工客服", "請幫我轉人工", "talk to a person",
                          "I want to speak to a real person"};
    for (size_t i = 0; i < sizeof asks / sizeof asks[0]; i++) {
        char id[40], token[40], cust[16];
        snprintf(cust, sizeof cust, "h%zu", i);
        new_conv(f->d, cust, "regular", "web", id, token);
        json_t *r = say(f->d, id, asks[i], NULL);
        expect_str(r, "state", "queued");
        expect_str(r, "reply.source", "handoff");
        json_t *ctx;
        assert_int_equal(dialog_context(f->d, "cat", id, &ctx), 0);
        expect_str(ctx, "reason", "requested");
        json_decref(ctx);
        json_decref(r);
    }
}

/* 2.1 a repeated client_id returns the first answer and stores nothing twice */
static void test_client_id(void **state)
{
    struct fixture *f = *state;
    char id[40], token[40];
    new_conv(f->d, "u2", "regular", "app", id, token);
    json_t *a = say(f->d, id, "where is my order", "msg-1");
    int n = count_messages(f->d, id);
    json_t *b = say(f->d, id, "where is my order", "msg-1");
    assert_true(json_equal(a, b));
    assert_int_equal(count_messages(f->d, id), n);
    json_t *c = say(f->d, id, "KF12345678", "msg-2");
    assert_int_equal(count_messages(f->d, id), n + 2);
    json_decref(a);
    json_decref(b);
    json_decref(c);
    /* a repeated handoff message: the first answer, with the queue position as it is now */
    a = say(f->d, id, "转人工", "msg-3");
    b = say(f->d, id, "转人工", "msg-3");
    expect_str(b, "reply.source", "handoff");
    assert_int_equal(num(b, "queue", "position"), 1);
    assert_int_equal(count_messages(f->d, id), n + 4);
    json_decref(a);
    json_decref(b);
}

/* 2.2 claims and resolves repeat without changing anything twice */
static void test_claim_resolve_idempotent(void **state)
{
    struct fixture *f = *state;
    char id[40], token[40];
    new_conv(f->d, "u3", "regular", "web", id, token);
    json_decref(say(f->d, id, "转人工", NULL));
    json_t *out;
    assert_int_equal(dialog_claim(f->d, "amy", id, &out), 0);
    json_decref(out);
    int n = count_messages(f->d, id);
    assert_int_equal(dialog_claim(f->d, "amy", id, &out), 0);
    expect_str(out, "conversation.agent", "amy");
    json_decref(out);
    assert_int_equal(count_messages(f->d, id), n);
    assert_int_equal(dialog_claim(f->d, "cat", id, &out), KEFU_ECONFLICT);
    assert_int_equal(dialog_resolve(f->d, "cat", id, &out), KEFU_EPERM);
    assert_int_equal(dialog_resolve(f->d, "amy", id, &out), 0);
    json_decref(out);
    n = count_messages(f->d, id);
    assert_int_equal(dialog_resolve(f->d, "amy", id, &out), 0);
    expect_str(out, "state", "resolved");
    json_decref(out);
    assert_int_equal(count_messages(f->d, id), n);
    /* an agent message with a repeated client_id is stored once */
    char id2[40];
    new_conv(f->d, "u3b", "regular", "web", id2, token);
    json_decref(say(f->d, id2, "转人工", NULL));
    assert_int_equal(dialog_claim(f->d, "amy", id2, &out), 0);
    json_decref(out);
    json_t *req = json_pack("{s:s, s:s}", "text", "hello", "client_id", "a1");
    json_t *o1, *o2;
    assert_int_equal(dialog_agent_message(f->d, "amy", id2, req, &o1), 0);
    assert_int_equal(dialog_agent_message(f->d, "amy", id2, req, &o2), 0);
    assert_true(json_equal(o1, o2));
    json_decref(o1);
    json_decref(o2);
    json_decref(req);
}

/* 3.1 two misses in a row hand off (miss_limit 2); an answer in between resets the count */
static void test_misses(void **state)
{
    struct fixture *f = *state;
    char id[40], token[40];
    new_conv(f->d, "u4", "regular", "web", id, token);
    json_t *r = say(f->d, id, "asdf qwer zxcv", NULL);
    expect_str(r, "reply.source", "fallback");
    expect_str(r, "state", "bot");
    json_decref(r);
    json_decref(say(f->d, id, "hello", NULL));
    r = say(f->d, id, "blorp zing", NULL);
    expect_str(r, "state", "bot");
    json_decref(r);
    r = say(f->d, id, "qqq www eee", NULL);
    expect_str(r, "state", "queued");
    expect_str(r, "reply.source", "handoff");
    expect_str(r, "queue.name", "general");
    json_decref(r);
    json_t *ctx;
    assert_int_equal(dialog_context(f->d, "amy", id, &ctx), 0);
    expect_str(ctx, "reason", "misses");
    json_decref(ctx);
}

/* 3.2 a VIP goes to the vip queue after the first miss */
static void test_vip_first_miss(void **state)
{
    struct fixture *f = *state;
    char id[40], token[40];
    new_conv(f->d, "v1", "vip", "web", id, token);
    json_t *r = say(f->d, id, "asdf qwer zxcv", NULL);
    expect_str(r, "state", "queued");
    expect_str(r, "queue.name", "vip");
    json_decref(r);
    json_t *ctx;
    assert_int_equal(dialog_context(f->d, "amy", id, &ctx), 0);
    expect_str(ctx, "reason", "tier");
    expect_str(ctx, "customer.tier", "vip");
    json_decref(ctx);
}

/* Appends pending outbox row o of target ctx->target to ctx->rows (oldest first): its body, with the row's
 * type and conversation key as "_type" and "_conv". */
struct outbox_rows {
    const char *target;
    json_t *rows;
};

static int outbox_row(void *ctx, const struct store_outbox *o)
{
    struct outbox_rows *r = ctx;
    if (strcmp(o->target, r->target) != 0)
        return 0;
    json_t *body = json_loads(o->body, 0, NULL);
    assert_non_null(body);
    json_object_set_new(body, "_type", json_string(o->type));
    json_object_set_new(body, "_conv", json_string(o->conv));
    json_array_insert_new(r->rows, 0, body); /* the list is newest first */
    return 0;
}

/* The webhook events waiting in the fixture's outbox for target, oldest first; new. */
static json_t *outbox_of(struct fixture *f, const char *target)
{
    char path[128];
    snprintf(path, sizeof path, "%s/kefu.db", f->dir);
    struct store *st;
    assert_int_equal(store_open(path, &(struct store_opts){.readers = 1, .cache_slots = -1}, &st), 0);
    struct outbox_rows r = {target, json_array()};
    assert_int_equal(store_outbox_list(st, STORE_OUT_PENDING, 0, outbox_row, &r), 0);
    store_close(st);
    return r.rows;
}

/* How many events wait for target; the last one's body, new in *last (NULL when none). */
static size_t outbox_count(struct fixture *f, const char *target, json_t **last)
{
    json_t *rows = outbox_of(f, target);
    size_t n = json_array_size(rows);
    if (last)
        *last = n ? json_incref(json_array_get(rows, n - 1)) : NULL;
    json_decref(rows);
    return n;
}

/* The queue list's item for conversation id (borrowed from list), or NULL. */
static json_t *listed(json_t *list, const char *id)
{
    size_t i;
    json_t *it;
    json_array_foreach(json_object_get(list, "conversations"), i,
                       it) if (strcmp(str(it, "id"), id) == 0) return it;
    return NULL;
}

/* 3.2b the bundled VIP level: a VIP waiting 80% of 30 min is escalated once (urgent, the vip queue, an
 * event, the mark), a regular customer is not; past 30 min the vip_wait red line is crossed */
static void test_vip_escalation(void **state)
{
    struct fixture *f = *state;
    /* two webhook targets: one for the service events (its --webhook-events), one for handoffs only */
    static const char *const svc = "http://127.0.0.1:9/service", *const hand = "http://127.0.0.1:9/handoffs";
    unsigned mask;
    assert_int_equal(dialog_event_parse("escalated,redline.breached,redline.cleared", &mask), 0);
    assert_int_equal(mask, DIALOG_EV_ESCALATED | DIALOG_EV_REDLINE_BREACHED | DIALOG_EV_REDLINE_CLEARED);
    assert_int_equal(dialog_event_parse("handoff,redline", &mask), KEFU_EINVAL);
    assert_string_equal(dialog_event_name(DIALOG_EV_REDLINE_CLEARED), "redline.cleared");
    dialog_close(f->d);
    struct dialog_outbox_target hooks[] = {
        {svc, DIALOG_EV_ESCALATED | DIALOG_EV_REDLINE_BREACHED | DIALOG_EV_REDLINE_CLEARED},
        {hand, DIALOG_EV_HANDOFF}};
    f->cfg.outbox = hooks;
    f->cfg.n_outbox = 2;
    open_dialog(f);
    f->cfg.outbox = NULL; /* dialog copied them */
    f->cfg.n_outbox = 0;
    struct dialog *d = f->d;
    json_t *ev;
    char vip[40], reg[40], token[40];
    new_conv(d, "v-esc", "vip", "app", vip, token);
    new_conv(d, "r-esc", "regular", "web", reg, token);
    json_t *r = say(d, vip, "转人工", NULL);
    expect_str(r, "queue.name", "vip"); /* the bundled rules send VIPs to their own queue */
    json_decref(r);
    json_t *ctx;
    assert_int_equal(dialog_context(d, "amy", vip, &ctx), 0);
    assert_string_not_equal(str(ctx, "conversation.priority"), "urgent");
    json_decref(ctx);
    json_decref(say(d, reg, "转人工", NULL));
    assert_int_equal(outbox_count(f, hand, NULL), 2); /* the two handoffs, for the handoff target only */
    fake_now += 1439;                                 /* under 80% of 1,800 s */
    assert_int_equal(dialog_watch_now(d), 0);
    assert_int_equal(outbox_count(f, svc, NULL), 0);
    fake_now += 1;
    assert_int_equal(dialog_watch_now(d), 0);
    assert_int_equal(outbox_count(f, svc, &ev), 1);
    expect_str(ev, "_type", "escalated");
    expect_str(ev, "_conv", vip);
    expect_str(ev, "event", "escalated");
    assert_int_equal(strncmp(str(ev, "id"), "ev_", 3), 0);
    expect_str(ev, "conversation", vip);
    expect_str(ev, "service_level", "vip");
    expect_str(ev, "from_queue", "vip");
    expect_str(ev, "queue", "vip");
    expect_str(ev, "priority", "urgent");
    expect_str(ev, "tier", "vip");
    assert_int_equal(num(ev, "waited_s", NULL), 1440);
    assert_int_equal(num(ev, "at", NULL), fake_now);
    json_decref(ev);
    assert_int_equal(outbox_count(f, hand, NULL), 2); /* not for the handoff target */
    json_t *list;
    assert_int_equal(dialog_queue_list(d, "amy", &list), 0);
    json_t *it = listed(list, vip);
    assert_non_null(it);
    expect_str(it, "queue", "vip");
    expect_str(it, "priority", "urgent");
    assert_true(json_is_true(json_object_get(it, "escalated")));
    it = listed(list, reg);
    assert_non_null(it);
    assert_true(json_is_false(json_object_get(it, "escalated")));
    expect_str(it, "queue", "general");
    assert_int_equal(json_array_size(json_object_get(list, "redlines")), 0);
    json_decref(list);
    assert_int_equal(dialog_context(d, "amy", vip, &ctx), 0);
    expect_str(ctx, "conversation.queue", "vip");
    expect_str(ctx, "conversation.priority", "urgent");
    json_decref(ctx);
    fake_now += 100;
    assert_int_equal(dialog_watch_now(d), 0); /* once per handoff */
    assert_int_equal(outbox_count(f, svc, NULL), 1);

    fake_now += 300; /* 1,840 s: the vip_wait red line (max 30 min) is crossed by the VIP still waiting */
    assert_int_equal(dialog_watch_now(d), 1);
    assert_int_equal(outbox_count(f, svc, &ev), 2);
    expect_str(ev, "_type", "redline.breached");
    expect_str(ev, "_conv", ""); /* a red line belongs to no conversation */
    assert_null(json_object_get(ev, "conversation"));
    expect_str(ev, "event", "redline.breached");
    expect_str(ev, "redline", "vip_wait");
    assert_true(json_real_value(json_object_get(ev, "value")) >= 1840);
    json_decref(ev);
    assert_int_equal(dialog_queue_list(d, "amy", &list), 0);
    expect_str(json_array_get(json_object_get(list, "redlines"), 0), "name", "vip_wait");
    json_decref(list);
    /* claimed: the wait is over, the line clears */
    assert_int_equal(dialog_claim(d, "amy", vip, &ctx), 0);
    json_decref(ctx);
    fake_now += 1;
    struct text_buf m;
    text_buf_init(&m);
    assert_int_equal(dialog_metrics(d, &m), 0);
    assert_non_null(strstr(m.s, "kefu_escalations_total 1\n"));
    assert_non_null(strstr(m.s, "kefu_redline_breached{name=\"vip_wait\"} 1\n"));
    text_buf_release(&m);
    /* the claim's wait (1,841 s) is itself over the line, in the window: still crossed */
    assert_int_equal(dialog_watch_now(d), 1);
    fake_now += 1900; /* the window (30 min) has passed */
    assert_int_equal(dialog_watch_now(d), 0);
    assert_int_equal(outbox_count(f, svc, &ev), 3);
    expect_str(ev, "_type", "redline.cleared");
    expect_str(ev, "event", "redline.cleared");
    expect_str(ev, "redline", "vip_wait");
    json_decref(ev);
    assert_int_equal(outbox_count(f, hand, NULL), 2);
}

static void write_file(const char *path, const char *text)
{
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    fputs(text, fp);
    fclose(fp);
}

static json_t *experiment(json_t *stats, const char *intent)
{
    size_t i;
    json_t *e;
    json_array_foreach(json_object_get(stats, "experiments"), i,
                       e) if (strcmp(str(e, "intent"), intent) == 0) return e;
    return NULL;
}

static json_t *arm_of(json_t *e, const char *name)
{
    size_t i;
    json_t *v;
    json_array_foreach(json_object_get(e, "variants"), i, v) if (strcmp(str(v, "name"), name) == 0) return v;
    return NULL;
}

/* 5.1 A/B-tested replies with a known outcome: each conversation sticks to its variant; the
 * "long" reply contains every conversation (a thank-you follows), the "short" one none (the
 * customer asks again); ratings 5 and 2. Per variant answers, containment, CSAT and the z-test
 * come out as scripted; deleting a variant ends the experiment and keeps its history. */
static void test_ab_replies(void **state)
{
    struct fixture *f = *state;
    char rules[96], path[128];
    snprintf(rules, sizeof rules, "%s/ab-rules", f->dir);
    assert_int_equal(mkdir(rules, 0700), 0);
    snprintf(path, sizeof path, "%s/ab.rules", rules);
    write_file(path,
               "intent refund.when\n  match refund\n  variant short 50\n  variant long 50\n"
               "  reply ~short Soon.\n  reply ~long Refunds reach you 3-5 working days after approval.\n"
               "intent thanks\n  match thanks\n  reply You are welcome.\n"
               "intent human\n  match human\n  reply One moment.\n  handoff queue general\n");
    dialog_close(f->d);
    f->cfg.rules_dir = rules;
    open_dialog(f);
    struct dialog *d = f->d;
    int n_short = 0, n_long = 0;
    for (int k = 0; k < 30; k++) {
        char id[40], token[40], cust[16];
        snprintf(cust, sizeof cust, "ab-%d", k);
        new_conv(d, cust, "regular", "web", id, token);
        json_t *r = say(d, id, "refund", NULL);
        int is_long = strstr(str(r, "reply.text"), "working days") != NULL;
        json_decref(r);
        if (is_long) { /* contained: thanks, thanks; then asked again, the same variant */
            n_long++;
            json_decref(say(d, id, "thanks", NULL));
            json_decref(say(d, id, "thanks", NULL));
            r = say(d, id, "refund", NULL);
            expect_str(r, "reply.text", "Refunds reach you 3-5 working days after approval.");
            json_decref(r);
        } else { /* not contained: the customer wants a person */
            n_short++;
            r = say(d, id, "human", NULL);
            expect_str(r, "state", "queued");
            json_decref(r);
        }
        json_t *req = json_pack("{s:i}", "rating", is_long ? 5 : 2), *out;
        assert_int_equal(dialog_feedback(d, id, req, &out), 0);
        json_decref(req);
        json_decref(out);
    }
    assert_true(n_short >= 5 && n_long >= 5); /* 50/50 over 30 conversations */
    json_t *st;
    assert_int_equal(dialog_stats(d, -1, &st), 0);
    json_t *e = experiment(st, "refund.when");
    assert_non_null(e);
    assert_true(json_is_true(json_object_get(e, "running")));
    expect_str(e, "control", "short");
    json_t *s = arm_of(e, "short"), *l = arm_of(e, "long");
    assert_int_equal(num(s, "answers", NULL), n_short);
    assert_int_equal(num(l, "answers", NULL), 2 * n_long); /* the repeat after the thanks is an answer too */
    assert_int_equal(num(s, "contained", NULL), 0);        /* each followed by a handoff */
    assert_int_equal(num(l, "contained", NULL), 2 * n_long); /* thanks, then nothing */
    assert_int_equal(num(l, "weight", NULL), 50);
    assert_true(fabs(json_real_value(json_object_get(s, "csat")) - 2) < 1e-9);
    assert_true(fabs(json_real_value(json_object_get(l, "csat")) - 5) < 1e-9);
    assert_int_equal(num(l, "ratings", NULL), n_long);
    json_t *t = json_array_get(json_object_get(e, "tests"), 0);
    expect_str(t, "variant", "long");
    struct abtest_result want;
    assert_int_equal(abtest_compare(n_short, 0, 2 * n_long, 2 * n_long, &want), 0);
    assert_true(fabs(json_real_value(json_object_get(t, "p_value")) - want.p_value) < 1e-12);
    assert_true(json_real_value(json_object_get(t, "p_value")) < 0.001);
    assert_true(json_is_true(json_object_get(t, "significant")));
    assert_int_equal(num(t, "needed", NULL), want.needed);
    json_decref(st);

    /* the long variant is deleted: the experiment ends, its history stays */
    write_file(path, "intent refund.when\n  match refund\n  variant short 50\n  reply ~short Soon.\n"
                     "intent thanks\n  match thanks\n  reply You are welcome.\n");
    struct rules_diag diag;
    rules_diag_init(&diag);
    assert_int_equal(dialog_reload(d, &diag), 0);
    rules_diag_release(&diag);
    assert_int_equal(dialog_stats(d, -1, &st), 0);
    e = experiment(st, "refund.when");
    assert_non_null(e);
    assert_true(json_is_false(json_object_get(e, "running")));
    l = arm_of(e, "long");
    assert_int_equal(num(l, "answers", NULL), 2 * n_long);
    assert_true(json_is_null(json_object_get(l, "weight")));
    assert_true(json_is_false(json_object_get(l, "running")));
    json_decref(st);
}

/* 3.3 complaints and anger hand off to the complaints queue */
static void test_complaint_anger(void **state)
{
    struct fixture *f = *state;
    char id[40], token[40];
    new_conv(f->d, "a1", "regular", "web", id, token);
    json_t *r = say(f->d, id, "你们客服态度太差了", NULL);
    expect_str(r, "queue.name", "complaints");
    json_decref(r);
    json_t *ctx;
    assert_int_equal(dialog_context(f->d, "amy", id, &ctx), 0);
    expect_str(ctx, "reason", "complaint");
    json_decref(ctx);
    new_conv(f->d, "a2", "regular", "web", id, token);
    r = say(f->d, id, "where is my damn order wtf", NULL);
    expect_str(r, "state", "queued");
    expect_str(r, "queue.name", "complaints");
    json_decref(r);
    assert_int_equal(dialog_context(f->d, "amy", id, &ctx), 0);
    expect_str(ctx, "reason", "anger");
    json_decref(ctx);
}

/* 4.1 tokens: a wrong customer token is EPERM, an unknown agent token EAUTH */
static void test_tokens(void **state)
{
    struct fixture *f = *state;
    char id[40], token[40];
    new_conv(f->d, "t1", "regular", "web", id, token);
    assert_int_equal(dialog_customer_auth(f->d, id, token), 0);
    char wrong[40];
    snprintf(wrong, sizeof wrong, "%s", token);
    wrong[0] = wrong[0] == 'a' ? 'b' : 'a';
    assert_int_equal(dialog_customer_auth(f->d, id, wrong), KEFU_EPERM);
    assert_int_equal(dialog_customer_auth(f->d, id, ""), KEFU_EPERM);
    assert_int_equal(dialog_customer_auth(f->d, "cnope", token), KEFU_ENOENT);
    const char *name;
    assert_int_equal(dialog_agent_auth(f->d, "00000000000000000000000000000000", &name), KEFU_EAUTH);
    assert_null(name);
    assert_int_equal(dialog_agent_auth(f->d, BOB, &name), 0);
    assert_string_equal(name, "bob");
    /* a conversation's agent messages are only for the agent holding it */
    json_decref(say(f->d, id, "转人工", NULL));
    json_t *out, *req = json_pack("{s:s}", "text", "hi");
    assert_int_equal(dialog_agent_message(f->d, "amy", id, req, &out), KEFU_ECONFLICT);
    assert_int_equal(dialog_claim(f->d, "amy", id, &out), 0);
    json_decref(out);
    assert_int_equal(dialog_agent_message(f->d, "cat", id, req, &out), KEFU_EPERM);
    json_decref(req);
    /* bad requests */
    json_t *badreq = json_pack("{s:i}", "text", 5);
    assert_int_equal(dialog_customer_message(f->d, id, badreq, &out), KEFU_EINVAL);
    json_decref(badreq);
    char big[DIALOG_MAX_TEXT + 2];
    memset(big, 'a', sizeof big - 1);
    big[sizeof big - 1] = 0;
    json_t *bigreq = json_pack("{s:s}", "text", big);
    assert_int_equal(dialog_customer_message(f->d, id, bigreq, &out), KEFU_ERANGE);
    json_decref(bigreq);
}

/* 4.2 skills and capacity: bob serves billing only and holds one conversation */
static void test_skills_capacity(void **state)
{
    struct fixture *f = *state;
    char g[40], b1[40], b2[40], token[40];
    new_conv(f->d, "s1", "regular", "web", g, token);
    json_decref(say(f->d, g, "转人工", NULL));
    json_t *out;
    assert_int_equal(dialog_claim(f->d, "bob", g, &out), KEFU_EPERM);
    assert_int_equal(dialog_claim(f->d, "bob", NULL, &out), KEFU_ENOENT);
    /* amy takes it and transfers it to billing, twice over */
    assert_int_equal(dialog_claim(f->d, "amy", g, &out), 0);
    json_decref(out);
    json_t *req = json_pack("{s:s}", "queue", "billing");
    assert_int_equal(dialog_transfer(f->d, "amy", g, req, &out), 0);
    expect_str(out, "queue", "billing");
    expect_str(out, "state", "queued");
    json_decref(out);
    assert_int_equal(dialog_transfer(f->d, "amy", g, req, &out), KEFU_ECONFLICT);
    json_decref(req);
    req = json_pack("{s:s}", "queue", "Bad Queue!");
    assert_int_equal(dialog_transfer(f->d, "amy", g, req, &out), KEFU_EINVAL);
    json_decref(req);
    memcpy(b1, g, sizeof b1);
    assert_int_equal(dialog_claim(f->d, "bob", NULL, &out), 0);
    expect_str(out, "conversation.id", b1);
    expect_str(out, "conversation.queue", "billing");
    json_decref(out);
    /* a second billing conversation: bob is at capacity */
    new_conv(f->d, "s2", "regular", "web", b2, token);
    json_decref(say(f->d, b2, "转人工", NULL));
    assert_int_equal(dialog_claim(f->d, "cat", b2, &out), 0);
    json_decref(out);
    req = json_pack("{s:s}", "queue", "billing");
    assert_int_equal(dialog_transfer(f->d, "cat", b2, req, &out), 0);
    json_decref(out);
    json_decref(req);
    assert_int_equal(dialog_claim(f->d, "bob", b2, &out), KEFU_EBUSY);
    /* bob releases the first: it waits again, and his place is free */
    assert_int_equal(dialog_release(f->d, "bob", b1, &out), 0);
    json_decref(out);
    assert_int_equal(dialog_claim(f->d, "bob", b2, &out), 0);
    json_decref(out);
}

/* 4.3 positions and waiting times in the customer's answers and the agent's list */
static void test_positions(void **state)
{
    struct fixture *f = *state;
    char a[40], b[40], token[40];
    new_conv(f->d, "p1", "regular", "web", a, token);
    new_conv(f->d, "p2", "regular", "web", b, token);
    json_decref(say(f->d, a, "转人工", NULL));
    fake_now += 10;
    json_t *r = say(f->d, b, "转人工", NULL);
    assert_int_equal(num(r, "queue", "position"), 2);
    assert_int_equal(num(r, "queue", "wait_s"), 0);
    json_decref(r);
    fake_now += 50;
    r = say(f->d, a, "有人吗", NULL);
    assert_int_equal(num(r, "queue", "position"), 1);
    assert_int_equal(num(r, "queue", "wait_s"), 60);
    json_decref(r);
    json_t *q;
    assert_int_equal(dialog_queue_list(f->d, "amy", &q), 0);
    json_t *v = json_object_get(q, "conversations");
    assert_int_equal(json_array_size(v), 2);
    expect_str(json_array_get(v, 0), "id", a);
    assert_int_equal(num(json_array_get(v, 1), "waiting_s", NULL), 50);
    json_decref(q);
    json_t *out;
    assert_int_equal(dialog_claim(f->d, "amy", NULL, &out), 0);
    json_decref(out);
    r = say(f->d, b, "还要多久", NULL);
    assert_int_equal(num(r, "queue", "position"), 1);
    json_decref(r);
}

/* 5.0 {service_hours}: the configured hours in the customer's language */
static void test_hours_text(void **state)
{
    (void)state;
    static const struct hours_case {
        const char *id, *hours;
        int tz;
        const char *locale, *want;
    } cases[] = {
        {"5.0.1", "09:00-22:00", 480, "en", "9:00–22:00 (Beijing time)"},
        {"5.0.2", "09:00-22:00", 480, "zh", "9:00–22:00（北京时间）"},
        {"5.0.3", "09:00-22:00", 480, "zh-hant", "9:00–22:00（北京時間）"},
        {"5.0.4", "08:30-17:45", 0, "en", "8:30–17:45 (UTC)"},
        {"5.0.5", "20:00-04:00", -300, "en", "20:00–4:00 (UTC-5)"},
        {"5.0.6", "10:00-18:00", 330, "en", "10:00–18:00 (UTC+5:30)"},
        {"5.0.7", "10:00-18:00", -30, "en", "10:00–18:00 (UTC-0:30)"},
        {"5.0.8", NULL, 480, "en", "around the clock"},
        {"5.0.9", "", 0, "zh", "24 小时"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char buf[96];
        dialog_hours_text(cases[i].hours, cases[i].tz, cases[i].locale, buf, sizeof buf);
        if (strcmp(buf, cases[i].want) != 0)
            fail_msg("%s: got '%s', want '%s'", cases[i].id, buf, cases[i].want);
    }
}

/* 5.1 out of hours: the customer is told when agents are back, and still waits in the queue */
static void test_business_hours(void **state)
{
    struct fixture *f = *state;
    dialog_close(f->d);
    f->cfg.hours = "09:00-22:00";
    f->cfg.tz_offset_min = 480;
    fake_now = 1700000000; /* 06:13 Beijing time */
    open_dialog(f);
    char id[40], token[40];
    new_conv(f->d, "b1", "regular", "web", id, token);
    json_t *r = say(f->d, id, "转人工", NULL);
    expect_str(r, "reply.intent", "human.agent_offline");
    expect_str(r, "state", "queued");
    assert_non_null(strstr(str(r, "reply.text"), "每天 9:00–22:00（北京时间）")); /* {service_hours} */
    assert_null(str(r, "reply.notice")); /* the offline reply already says it */
    json_decref(r);
    new_conv(f->d, "b2", "regular", "web", id, token);
    json_decref(say(f->d, id, "asdf qwer", NULL));
    r = say(f->d, id, "zzz yyy", NULL);
    expect_str(r, "state", "queued");
    assert_non_null(strstr(str(r, "reply.notice"), "9:00–22:00 (Beijing time)"));
    json_decref(r);
    json_t *q;
    assert_int_equal(dialog_queue_list(f->d, "cat", &q), 0);
    assert_int_equal(json_array_size(json_object_get(q, "conversations")), 2);
    json_decref(q);
}

/* 5.2 a slot the bot asked for is filled by the next message */
static void test_slot_filling(void **state)
{
    struct fixture *f = *state;
    char id[40], token[40];
    new_conv(f->d, "sl", "regular", "web", id, token);
    json_t *r = say(f->d, id, "where is my order", NULL);
    expect_str(r, "reply.intent", "order.status");
    assert_non_null(strstr(str(r, "reply.text"), "KF12345678")); /* the question */
    json_decref(r);
    r = say(f->d, id, "it's KF87654321", NULL);
    expect_str(r, "reply.intent", "order.status");
    expect_str(r, "reply.source", "rule");
    assert_non_null(strstr(str(r, "reply.text"), "KF87654321"));
    json_decref(r);
    /* remembered: the next order question does not ask again */
    r = say(f->d, id, "I want to cancel my order", NULL);
    assert_null(strstr(str(r, "reply.text"), "Which order"));
    json_decref(r);
}

/* 5.3 the last answer's quick replies come back with the message list while
 * nothing came after it (a reloaded widget offers them again), and only then */
static void test_quick_replies_listed(void **state)
{
    struct fixture *f = *state;
    char id[40], token[40];
    new_conv(f->d, "qr", "regular", "web", id, token);
    json_t *r = say(f->d, id, "KF12345678", NULL);
    expect_str(r, "reply.source", "clarify");
    json_t *quick = json_object_get(json_object_get(r, "reply"), "quick_replies");
    assert_true(json_array_size(quick) > 0);
    json_t *out;
    assert_int_equal(dialog_messages(f->d, id, 0, &out), 0);
    json_t *msgs = json_object_get(out, "messages");
    json_t *last = json_array_get(msgs, json_array_size(msgs) - 1);
    assert_true(json_equal(json_object_get(last, "quick_replies"), quick));
    assert_null(json_object_get(json_array_get(msgs, 0), "quick_replies")); /* the greeting offered none */
    json_decref(out);
    json_decref(r);
    r = say(f->d, id, "where is my order", NULL);
    expect_str(r, "reply.intent", "order.status");
    assert_non_null(strstr(str(r, "reply.text"), "KF12345678")); /* the number was kept */
    json_decref(r);
    assert_int_equal(dialog_messages(f->d, id, 0, &out), 0);
    msgs = json_object_get(out, "messages");
    for (size_t k = 0; k < json_array_size(msgs); k++)
        assert_null(json_object_get(json_array_get(msgs, k), "quick_replies"));
    json_decref(out);
}

/* 6.1 after a restart: the queue is rebuilt, held conversations stay held, messages are there */
static void test_restart(void **state)
{
    struct fixture *f = *state;
    char a[40], b[40], token[40];
    new_conv(f->d, "r1", "regular", "web", a, token);
    new_conv(f->d, "r2", "regular", "wechat", b, token);
    json_decref(say(f->d, a, "转人工", NULL));
    json_decref(say(f->d, b, "转人工", NULL));
    json_t *out;
    assert_int_equal(dialog_claim(f->d, "amy", a, &out), 0);
    json_decref(out);
    int n = count_messages(f->d, a);
    dialog_close(f->d);
    open_dialog(f);
    assert_int_equal(count_messages(f->d, a), n);
    json_t *q;
    assert_int_equal(dialog_queue_list(f->d, "amy", &q), 0);
    json_t *v = json_object_get(q, "conversations");
    assert_int_equal(json_array_size(v), 1);
    expect_str(json_array_get(v, 0), "id", b);
    json_decref(q);
    json_t *req = json_pack("{s:s}", "text", "still here");
    assert_int_equal(dialog_agent_message(f->d, "amy", a, req, &out), 0); /* still amy's */
    json_decref(out);
    json_decref(req);
    /* amy holds one of two: one more claim fits, then she is full */
    assert_int_equal(dialog_claim(f->d, "amy", NULL, &out), 0);
    json_decref(out);
    char c[40];
    new_conv(f->d, "r3", "regular", "web", c, token);
    json_decref(say(f->d, c, "转人工", NULL));
    assert_int_equal(dialog_claim(f->d, "amy", c, &out), KEFU_EBUSY);
}

/* 6.1b an agent removed from the configuration: their conversations wait again for others */
static void test_agent_removed(void **state)
{
    struct fixture *f = *state;
    char a[40], token[40];
    new_conv(f->d, "ar", "regular", "web", a, token);
    json_decref(say(f->d, a, "转人工", NULL));
    json_t *out;
    assert_int_equal(dialog_claim(f->d, "amy", a, &out), 0);
    json_decref(out);
    dialog_close(f->d);
    f->cfg.agents = "cat:" CAT ":*:10";
    open_dialog(f);
    assert_int_equal(dialog_claim(f->d, "cat", NULL, &out), 0);
    expect_str(out, "conversation.id", a);
    json_t *intents = json_object_get(json_object_get(out, "understood"), "intents");
    expect_str(json_array_get(intents, 0), "intent", "human.agent"); /* the memory survived the release */
    json_decref(out);
}

/* 6.2 the packet carries the customer's other conversations on every channel */
static void test_history(void **state)
{
    struct fixture *f = *state;
    char a[40], b[40], token[40];
    new_conv(f->d, "x1", "gold", "web", a, token);
    json_decref(say(f->d, a, "我要开发票", NULL));
    fake_now += 100;
    new_conv(f->d, "x1", "gold", "wechat", b, token);
    json_decref(say(f->d, b, "转人工", NULL));
    json_t *ctx;
    assert_int_equal(dialog_context(f->d, "amy", b, &ctx), 0);
    json_t *h = json_object_get(ctx, "history");
    assert_int_equal(json_array_size(h), 1);
    expect_str(json_array_get(h, 0), "id", a);
    expect_str(json_array_get(h, 0), "channel", "web");
    expect_str(json_array_get(h, 0), "first_message", "我要开发票");
    expect_str(ctx, "customer.tier", "gold");
    json_t *cu = json_object_get(ctx, "customer");
    assert_int_equal(json_integer_value(json_object_get(cu, "last_seen")), fake_now); /* follows messages */
    assert_int_equal(json_integer_value(json_object_get(cu, "first_seen")), fake_now - 100);
    json_decref(ctx);
    assert_int_equal(dialog_context(f->d, "bob", b, &ctx), KEFU_EPERM); /* not his queue */
}

/* Copies the bundled rules to DIR/rules (the path into rules[0..cap)) and
 * reopens the dialog on the copy, so a test can edit and reload them. */
static void reopen_on_copy(struct fixture *f, char *rules, size_t cap)
{
    char cmd[256];
    snprintf(rules, cap, "%s/rules", f->dir);
    snprintf(cmd, sizeof cmd, "cp -r rules '%s'", rules);
    assert_int_equal(system(cmd), 0);
    dialog_close(f->d);
    f->cfg.rules_dir = rules;
    open_dialog(f);
}

/* Reloads the rules, which must compile. */
static void reload_ok(struct fixture *f)
{
    struct rules_diag diag;
    rules_diag_init(&diag);
    assert_int_equal(dialog_reload(f->d, &diag), 0);
    rules_diag_release(&diag);
}

/* 6.3 a reload that fails keeps the running rules; one that compiles replaces them */
static void test_reload(void **state)
{
    struct fixture *f = *state;
    char rules[96], cmd[256];
    reopen_on_copy(f, rules, sizeof rules);
    char id[40], token[40];
    new_conv(f->d, "rl", "regular", "web", id, token);
    snprintf(cmd, sizeof cmd, "printf 'intent broken\\n  match (\\n' > '%s/zz.rules'", rules);
    assert_int_equal(system(cmd), 0);
    struct rules_diag diag;
    rules_diag_init(&diag);
    assert_int_equal(dialog_reload(f->d, &diag), KEFU_ESYNTAX);
    assert_true(diag.errors > 0);
    rules_diag_release(&diag);
    json_t *r = say(f->d, id, "我要开发票", NULL);
    expect_str(r, "reply.intent", "invoice.request");
    json_decref(r);
    snprintf(cmd, sizeof cmd,
             "printf 'intent test.ping\\n  match ping pong\\n  reply pong!\\n' > '%s/zz.rules'", rules);
    assert_int_equal(system(cmd), 0);
    reload_ok(f);
    r = say(f->d, id, "ping pong", NULL);
    expect_str(r, "reply.text", "pong!");
    json_decref(r);
}

/* The model files in dir/models. */
static int models(const char *dir)
{
    char path[160];
    snprintf(path, sizeof path, "%s/models", dir);
    DIR *d = opendir(path);
    int n = 0;
    for (struct dirent *e; d && (e = readdir(d));)
        n += e->d_name[0] != '.';
    if (d)
        closedir(d);
    return n;
}

/* 6.3b the classifier is trained once per example set: a restart and a
 * reload of the same examples load it from data/models, new example lines
 * train a new one that answers at once */
static void test_reload_classifier(void **state)
{
    struct fixture *f = *state;
    char rules[96], cmd[320];
    reopen_on_copy(f, rules, sizeof rules);
    assert_int_equal(models(f->dir), 1);
    dialog_close(f->d); /* a restart: loaded, not trained again */
    open_dialog(f);
    assert_int_equal(models(f->dir), 1);
    reload_ok(f);
    assert_int_equal(models(f->dir), 1);
    snprintf(cmd, sizeof cmd,
             "printf 'intent test.zorblax\\n  example how do i polish my zorblax\\n"
             "  example zorblax polishing tips\\n  example my zorblax lost its shine\\n"
             "  example best cloth for a zorblax\\n  reply Polish it gently.\\n' > '%s/zz.rules'",
             rules);
    assert_int_equal(system(cmd), 0);
    reload_ok(f);
    assert_int_equal(models(f->dir), 2);
    char id[40], token[40];
    new_conv(f->d, "zb", "regular", "web", id, token);
    json_t *r = say(f->d, id, "any advice on polishing a zorblax", NULL);
    expect_str(r, "reply.intent", "test.zorblax");
    expect_str(r, "reply.text", "Polish it gently.");
    json_decref(r);
}

/* 6.4 with a corpus: replies link their articles with titles, the packet suggests articles */
static void test_articles(void **state)
{
    struct fixture *f = *state;
    dialog_close(f->d);
    f->cfg.corpus_dir = "tests/corpus";
    open_dialog(f);
    json_t *h;
    assert_int_equal(dialog_health(f->d, &h), 0);
    assert_true(json_integer_value(json_object_get(json_object_get(h, "kb"), "articles")) >= 5);
    json_decref(h);
    char id[40], token[40];
    new_conv(f->d, "k1", "regular", "web", id, token);
    json_t *r = say(f->d, id, "我的退款什么时候到账 KF12345678", NULL);
    expect_str(r, "reply.intent", "returns.refund_status");
    json_t *a = json_array_get(json_object_get(json_object_get(r, "reply"), "articles"), 0);
    expect_str(a, "id", "refund-policy");
    assert_non_null(str(a, "title"));
    assert_null(strstr(str(r, "reply.text"), "{kb:"));
    json_decref(r);
    json_decref(say(f->d, id, "转人工", NULL));
    json_t *ctx;
    assert_int_equal(dialog_claim(f->d, "amy", id, &ctx), 0);
    json_t *sug = json_object_get(ctx, "articles");
    assert_true(json_array_size(sug) >= 1);
    expect_str(json_array_get(sug, 0), "id", "refund-policy");
    expect_str(json_object_get(ctx, "understood"), "slots.order_id", "KF12345678");
    json_decref(ctx);
}

/* The memory column of conversation id as the file holds it (new). */
static json_t *stored_memory(struct fixture *f, const char *id)
{
    char path[128];
    snprintf(path, sizeof path, "%s/kefu.db", f->dir);
    struct store *st;
    assert_int_equal(store_open(path, &(struct store_opts){.readers = 1, .cache_slots = -1}, &st), 0);
    struct store_conv c;
    assert_int_equal(store_get_conv(st, id, &c), 0);
    json_t *m = json_loads(c.memory, 0, NULL);
    store_conv_release(&c);
    store_close(st);
    assert_non_null(m);
    return m;
}

/* 6.5 the memory across turns: every turn's intent is
 * remembered in order, a slot changed by a later turn does not change an earlier answer,
 * and a restart (the memory read from its text) carries on the same */
static void test_memory_turns(void **state)
{
    struct fixture *f = *state;
    char id[40], token[40];
    new_conv(f->d, "m1", "regular", "web", id, token);
    json_t *r1 = say(f->d, id, "我的退款什么时候到账 KF12345678", NULL);
    expect_str(r1, "reply.slots.order_id", "KF12345678");
    json_t *r2 = say(f->d, id, "我的退款什么时候到账 KF87654321", NULL);
    expect_str(r2, "reply.slots.order_id", "KF87654321");
    expect_str(r1, "reply.slots.order_id", "KF12345678"); /* its own copy */
    json_decref(say(f->d, id, "how long does delivery take", NULL));
    json_t *m = stored_memory(f, id);
    json_t *v = json_object_get(m, "intents");
    assert_int_equal(json_array_size(v), 3);
    long long seq = 0;
    for (size_t k = 0; k < 3; k++) {
        long long s = json_integer_value(json_object_get(json_array_get(v, k), "seq"));
        assert_true(s > seq);
        seq = s;
    }
    expect_str(json_array_get(v, 0), "intent", str(r1, "reply.intent"));
    expect_str(m, "slots.order_id", "KF87654321");
    json_decref(m);
    dialog_close(f->d);
    open_dialog(f);
    json_t *r4 = say(f->d, id, "我的退款什么时候到账", NULL);
    expect_str(r4, "reply.slots.order_id", "KF87654321"); /* remembered across the restart */
    m = stored_memory(f, id);
    assert_int_equal(json_array_size(json_object_get(m, "intents")), 4);
    json_decref(m);
    json_decref(r1);
    json_decref(r2);
    json_decref(r4);
}

/* 7.0 a process answering customers is killed with SIGKILL: every answered message is in the file */
static void test_kill9(void **state)
{
    struct fixture *f = *state;
    char id[40], token[40];
    new_conv(f->d, "k9", "regular", "web", id, token);
    dialog_close(f->d);
    f->d = NULL;
    int fd[2];
    assert_int_equal(pipe(fd), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(fd[0]);
        struct rules_diag diag;
        rules_diag_init(&diag);
        struct dialog *d;
        if (dialog_open(&f->cfg, &diag, &d) < 0)
            _exit(1);
        for (long i = 1;; i++) {
            char cid[32];
            snprintf(cid, sizeof cid, "m%ld", i);
            json_t *req = json_pack("{s:s, s:s}", "text", i % 2 ? "我要开发票" : "hello", "client_id", cid),
                   *out;
            if (dialog_customer_message(d, id, req, &out) < 0 || write(fd[1], &i, sizeof i) != sizeof i)
                _exit(1);
        }
    }
    close(fd[1]);
    long last = 0, i;
    while (last < 60 && read(fd[0], &i, sizeof i) == sizeof i)
        last = i;
    kill(pid, SIGKILL);
    int status;
    waitpid(pid, &status, 0);
    while (read(fd[0], &i, sizeof i) == sizeof i)
        last = i;
    close(fd[0]);
    assert_true(WIFSIGNALED(status));
    open_dialog(f);
    int n = count_messages(f->d, id); /* greeting + a question and an answer per message */
    assert_true(n >= 1 + 2 * last);
    assert_true(n <= 1 + 2 * (last + 1));
    char cid[32];
    snprintf(cid, sizeof cid, "m%ld", last); /* the last acknowledged one is known: a retry repeats nothing */
    json_t *r = say(f->d, id, "hello", cid);
    assert_int_equal(count_messages(f->d, id), n);
    json_decref(r);
}

/* 6.5 two close candidates: a clarifying question with both as quick replies, not a miss */
static void test_clarify(void **state)
{
    struct fixture *f = *state;
    char rules[96], path[128];
    snprintf(rules, sizeof rules, "%s/clr", f->dir);
    snprintf(path, sizeof path, "%s/a.rules", rules);
    assert_int_equal(mkdir(rules, 0700), 0);
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    fputs("intent card.lost\n  threshold 0.95\n  example lost card\n  match lost & card\n  reply Lost.\n"
          "intent card.blocked\n  threshold 0.95\n  example card blocked\n  match card & blocked\n"
          "  reply Blocked.\n"
          "intent card.mute\n  example mute card\n  match mute & card\n",
          fp);
    fclose(fp);
    dialog_close(f->d);
    f->cfg.rules_dir = rules;
    open_dialog(f);
    char id[40], token[40];
    new_conv(f->d, "cl", "regular", "web", id, token);
    for (int i = 0; i < 3; i++) { /* clarifying is not a miss: no handoff after the limit */
        json_t *r = say(f->d, id, "lost card blocked", NULL);
        expect_str(r, "reply.source", "clarify");
        expect_str(r, "state", "bot");
        json_t *q = json_object_get(json_object_get(r, "reply"), "quick_replies");
        assert_int_equal(json_array_size(q), 2);
        const char *a = json_string_value(json_array_get(q, 0)), *b = json_string_value(json_array_get(q, 1));
        assert_true((strcmp(a, "lost card") == 0 && strcmp(b, "card blocked") == 0) ||
                    (strcmp(b, "lost card") == 0 && strcmp(a, "card blocked") == 0));
        json_decref(r);
    }
    /* an intent with no reply has not answered: a miss, not a silent "rule" */
    json_t *r = say(f->d, id, "mute card", NULL);
    expect_str(r, "reply.source", "fallback");
    expect_str(r, "reply.intent", "card.mute");
    json_decref(r);
}

struct chatter {
    struct dialog *d;
    char id[40];
    int n, failed;
};

static void *chat_thread(void *p)
{
    struct chatter *c = p;
    const char *lines[] = {"where is my order", "我要开发票", "how do I return an item", "hello"};
    for (int i = 0; i < c->n; i++) {
        json_t *req = json_pack("{s:s}", "text", lines[i % 4]), *out;
        if (dialog_customer_message(c->d, c->id, req, &out) < 0)
            c->failed++;
        json_decref(out);
        json_decref(req);
    }
    return NULL;
}

/* 7.1 customers in several threads at once (two per conversation): every message stored once, in order */
static void test_concurrent(void **state)
{
    struct fixture *f = *state;
    enum { T = 8, N = 25 };
    pthread_t th[T];
    struct chatter c[T];
    char token[40];
    for (int k = 0; k < T; k++) {
        char cust[16];
        snprintf(cust, sizeof cust, "cc%d", k / 2);
        c[k] = (struct chatter){f->d, "", N, 0};
        if (k % 2 == 0)
            new_conv(f->d, cust, "regular", "web", c[k].id, token);
        else
            memcpy(c[k].id, c[k - 1].id, sizeof c[k].id);
    }
    for (int k = 0; k < T; k++)
        pthread_create(&th[k], NULL, chat_thread, &c[k]);
    for (int k = 0; k < T; k++)
        pthread_join(th[k], NULL);
    for (int k = 0; k < T; k += 2) {
        assert_int_equal(c[k].failed + c[k + 1].failed, 0);
        assert_int_equal(count_messages(f->d, c[k].id), 1 + 2 * 2 * N);
    }
}

/* 8.1 throughput in process, for the record (not a pass/fail bound) */
static void test_throughput(void **state)
{
    struct fixture *f = *state;
    char id[40], token[40];
    new_conv(f->d, "tp", "regular", "web", id, token);
    struct timespec t0, t1;
    int n = getenv("KEFU_SLOW") ? 50 : 500;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (int i = 0; i < n; i++)
        json_decref(say(f->d, id, i % 2 ? "我要开发票" : "how do I return an item", NULL));
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double s = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    print_message("dialog: %d messages in %.3f s, %.0f messages/s (one thread, one commit each)\n", n, s,
                  n / s);
}

/* ---- asynchronous messages ---- */

/* What the completions of test_async_groups report. */
struct gate {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int entered, open, done;
    pthread_t main;
    int on_main; /* a completion ran on the calling thread */
};

/* The first message's completion: holds the store's writer until the test opens the gate. */
static void held_done(void *ctx)
{
    struct gate *g = ctx;
    pthread_mutex_lock(&g->lock);
    g->on_main += pthread_equal(pthread_self(), g->main);
    g->entered = 1;
    pthread_cond_broadcast(&g->cond);
    while (!g->open)
        pthread_cond_wait(&g->cond, &g->lock);
    g->done++;
    pthread_cond_broadcast(&g->cond);
    pthread_mutex_unlock(&g->lock);
}

static void count_done(void *ctx)
{
    struct gate *g = ctx;
    pthread_mutex_lock(&g->lock);
    g->on_main += pthread_equal(pthread_self(), g->main);
    g->done++;
    pthread_cond_broadcast(&g->cond);
    pthread_mutex_unlock(&g->lock);
}

static long long store_commits(struct dialog *d)
{
    json_t *h = NULL;
    assert_int_equal(dialog_health(d, &h), 0);
    long long n = json_integer_value(json_object_get(json_object_get(h, "store"), "commits"));
    json_decref(h);
    return n;
}

/* 9.1 one thread starts eleven messages without waiting: the first holds
 * the writer in its completion, the ten behind it queue and then share one
 * commit (the group grows with the messages in flight, not with threads);
 * every completion runs on the writer thread, and each answer comes only
 * through dialog_message_finish() */
static void test_async_groups(void **state)
{
    struct fixture *f = *state;
    enum { N = 11 };
    char id[N][40], token[40];
    for (int k = 0; k < N; k++) {
        char cu[16];
        snprintf(cu, sizeof cu, "async-%d", k);
        new_conv(f->d, cu, "regular", "web", id[k], token);
    }
    struct gate g = {.main = pthread_self()};
    pthread_mutex_init(&g.lock, NULL);
    pthread_cond_init(&g.cond, NULL);
    long long before = store_commits(f->d);
    json_t *req = json_pack("{s:s}", "text", "how do I return an item");
    struct dialog_call *call[N];
    dialog_message_start(f->d, id[0], req, held_done, &g, &call[0]);
    pthread_mutex_lock(&g.lock);
    while (!g.entered)
        pthread_cond_wait(&g.cond, &g.lock);
    pthread_mutex_unlock(&g.lock);
    for (int k = 1; k < N; k++)
        dialog_message_start(f->d, id[k], req, count_done, &g, &call[k]);
    pthread_mutex_lock(&g.lock);
    assert_int_equal(g.done, 0); /* nothing is complete before its commit */
    g.open = 1;
    pthread_cond_broadcast(&g.cond);
    while (g.done < N)
        pthread_cond_wait(&g.cond, &g.lock);
    pthread_mutex_unlock(&g.lock);
    assert_int_equal(g.on_main, 0);
    for (int k = 0; k < N; k++) {
        json_t *out = NULL;
        assert_int_equal(dialog_message_finish(call[k], &out), 0);
        expect_str(out, "reply.source", "rule");
        expect_str(out, "state", "bot");
        json_decref(out);
    }
    assert_int_equal(store_commits(f->d) - before, 2);
    json_decref(req);
    pthread_cond_destroy(&g.cond);
    pthread_mutex_destroy(&g.lock);
}

/* 9.2 a write the database refuses: the call fails with KEFU_EIO, nothing
 * of the turn is stored, the conversation is as it was, and the next
 * message of the conversation goes through */
static void test_failed_write(void **state)
{
    struct fixture *f = *state;
    char id[40], token[40], path[128];
    new_conv(f->d, "refused", "regular", "web", id, token);
    snprintf(path, sizeof path, "%s/kefu.db", f->dir);
    sqlite3 *db;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    sqlite3_busy_timeout(db, 5000);
    assert_int_equal(
        sqlite3_exec(db,
                     "CREATE TRIGGER refuse BEFORE INSERT ON messages WHEN NEW.text = 'poison pill'"
                     " BEGIN SELECT RAISE(ABORT, 'refused'); END;",
                     NULL, NULL, NULL),
        SQLITE_OK);
    sqlite3_close(db);
    json_t *req = json_pack("{s:s}", "text", "poison pill"), *out = NULL;
    assert_int_equal(dialog_customer_message(f->d, id, req, &out), KEFU_EIO);
    assert_null(out);
    assert_string_equal(dialog_error(), "cannot store the message");
    json_decref(req);
    assert_int_equal(dialog_messages(f->d, id, 0, &out), 0);
    assert_int_equal(json_array_size(json_object_get(out, "messages")), 1); /* the greeting only */
    expect_str(out, "state", "bot");
    json_decref(out);
    out = say(f->d, id, "how do I return an item", NULL);
    expect_str(out, "reply.source", "rule");
    assert_int_equal(json_integer_value(json_object_get(out, "seq")), 3); /* greeting 1, message 2, reply 3 */
    json_decref(out);
}

/* 9.3 two messages of one conversation in flight from one thread: the
 * second does not block its caller; it waits behind the first, hears when
 * the first committed, runs at its finish (1) and answers after its own
 * commit, in order; a third parked the same way and then dropped (its
 * client went away) is never written */
static void test_async_same_conversation(void **state)
{
    struct fixture *f = *state;
    char id[40], other[40], token[40];
    new_conv(f->d, "same", "regular", "web", id, token);
    new_conv(f->d, "other", "regular", "web", other, token);
    struct gate g = {.main = pthread_self()};
    pthread_mutex_init(&g.lock, NULL);
    pthread_cond_init(&g.cond, NULL);
    json_t *req = json_pack("{s:s}", "text", "how do I return an item");
    struct dialog_call *hold, *first, *second, *third;
    dialog_message_start(f->d, other, req, held_done, &g, &hold); /* holds the writer */
    pthread_mutex_lock(&g.lock);
    while (!g.entered)
        pthread_cond_wait(&g.cond, &g.lock);
    pthread_mutex_unlock(&g.lock);
    dialog_message_start(f->d, id, req, count_done, &g, &first);  /* queued for the next commit */
    dialog_message_start(f->d, id, req, count_done, &g, &second); /* parked behind it: returns at once */
    dialog_message_start(f->d, id, req, count_done, &g, &third);
    pthread_mutex_lock(&g.lock);
    assert_int_equal(g.done, 0);
    g.open = 1;
    pthread_cond_broadcast(&g.cond);
    while (g.done < 4) /* the first committed; the two behind it heard */
        pthread_cond_wait(&g.cond, &g.lock);
    pthread_mutex_unlock(&g.lock);
    json_t *out = NULL;
    assert_int_equal(dialog_message_finish(hold, &out), 0);
    json_decref(out);
    assert_int_equal(dialog_message_finish(first, &out), 0);
    assert_int_equal(json_integer_value(json_object_get(out, "seq")), 3);
    json_decref(out);
    dialog_message_drop(third);
    out = NULL;
    assert_int_equal(dialog_message_finish(second, &out), 1); /* runs now */
    assert_null(out);
    pthread_mutex_lock(&g.lock);
    while (g.done < 5)
        pthread_cond_wait(&g.cond, &g.lock);
    pthread_mutex_unlock(&g.lock);
    assert_int_equal(dialog_message_finish(second, &out), 0);
    expect_str(out, "reply.source", "rule");
    assert_int_equal(json_integer_value(json_object_get(out, "seq")), 5);
    json_decref(out);
    assert_int_equal(dialog_messages(f->d, id, 0, &out), 0);
    assert_int_equal(json_array_size(json_object_get(out, "messages")), 5); /* greeting and two turns */
    json_decref(out);
    assert_int_equal(g.on_main, 0);
    json_decref(req);
    pthread_cond_destroy(&g.cond);
    pthread_mutex_destroy(&g.lock);
}

/* 9.1 actions through the dialog (stubbed answers): the answer fills the reply
 * and its `set` slot; an unknown order; a failed call answers 'on failed';
 * a case with a handoff queues with reason rule and the answer in the packet;
 * the profile action makes the customer a VIP once per customer; rules that
 * name an action the configuration lacks are refused at open and reload */
static void reopen_with_actions(struct fixture *f, struct actions *a, int lax)
{
    dialog_close(f->d);
    f->cfg.actions = a;
    f->cfg.actions_lax = lax;
    open_dialog(f);
}

static void test_actions(void **state)
{
    struct fixture *f = *state;
    struct actions *a = NULL;
    assert_int_equal(actions_create(&a), 0);
    reopen_with_actions(f, a, 1);
    char id[40], token[40];
    new_conv(f->d, "act-1", "regular", "web", id, token);
    json_t *v =
        json_loads("{\"found\": true, \"order\": {\"status\": \"shipped\", \"carrier\": \"SF Express\", "
                   "\"tracking\": \"SF1\", \"eta\": \"tomorrow\"}}",
                   0, NULL);
    assert_int_equal(actions_stub(a, "order_status", v), 0);
    json_decref(v);
    json_t *r = say(f->d, id, "where is my order KF12345678", NULL);
    expect_str(r, "reply.intent", "order.status");
    expect_str(r, "reply.source", "rule");
    expect_str(
        r, "reply.text",
        "Order KF12345678 has shipped with SF Express (tracking number SF1) and should arrive tomorrow.");
    expect_str(r, "reply.slots.order_status", "shipped");
    json_decref(r);
    v = json_pack("{s:b}", "found", 0);
    actions_stub(a, "order_status", v);
    json_decref(v);
    r = say(f->d, id, "KF99999999", NULL); /* the number alone: the same question for it */
    assert_non_null(strstr(str(r, "reply.text"), "I can't find an order KF99999999"));
    json_decref(r);
    actions_stub(a, "order_status", NULL);
    r = say(f->d, id, "where is my order KF12345678", NULL);
    assert_non_null(strstr(str(r, "reply.text"), "I can't look up order KF12345678 right now"));
    expect_str(r, "state", "bot");
    json_decref(r);
    /* a held-up order: the reply, then the queue; the agent sees what the system said */
    v = json_loads("{\"found\": true, \"order\": {\"status\": \"exception\", \"carrier\": \"ZTO\", "
                   "\"last_scan\": \"no scan for 4 days\"}}",
                   0, NULL);
    actions_stub(a, "order_status", v);
    json_decref(v);
    r = say(f->d, id, "where is my order KF55556666", NULL);
    assert_non_null(strstr(str(r, "reply.text"), "held up in transit (no scan for 4 days)"));
    expect_str(r, "state", "queued");
    json_decref(r);
    json_t *ctx;
    assert_int_equal(dialog_claim(f->d, "amy", id, &ctx), 0);
    expect_str(ctx, "reason", "rule");
    expect_str(ctx, "understood.actions.order_status.outcome", "ok");
    json_t *res = json_object_get(
        json_object_get(json_object_get(json_object_get(ctx, "understood"), "actions"), "order_status"),
        "result");
    assert_string_equal(json_string_value(json_object_get(json_object_get(res, "order"), "status")),
                        "exception");
    json_decref(ctx);
    /* the profile action: a VIP's first miss goes to the vip queue; asked once per customer */
    v = json_pack("{s:s, s:s, s:{s:s}}", "name", "Wang", "tier", "vip", "attributes", "segment", "wholesale");
    actions_stub(a, "profile", v);
    json_decref(v);
    new_conv(f->d, "act-2", "regular", "web", id, token);
    r = say(f->d, id, "asdf qwer zxcv", NULL);
    expect_str(r, "state", "queued");
    expect_str(r, "queue.name", "vip");
    json_decref(r);
    assert_int_equal(dialog_claim(f->d, "amy", id, &ctx), 0);
    expect_str(ctx, "customer.tier", "vip");
    expect_str(ctx, "customer.name", "Wang");
    json_decref(ctx);
    actions_stub_clear(a);
    /* strict: the set must know every action the rules name */
    dialog_close(f->d);
    f->cfg.actions_lax = 0;
    struct rules_diag diag;
    rules_diag_init(&diag);
    assert_int_equal(dialog_open(&f->cfg, &diag, &f->d), KEFU_ESYNTAX);
    assert_int_equal(diag.errors, 3); /* order_status, order_tracking, refund_status */
    assert_non_null(strstr(diag.v[0].text, "unknown action '"));
    rules_diag_release(&diag);
    json_t *known = json_object();
    actions_stub(a, "order_status", known);
    actions_stub(a, "order_tracking", known);
    actions_stub(a, "refund_status", known);
    json_decref(known);
    open_dialog(f); /* now it opens */
    char rules[96], cmd[320];
    reopen_on_copy(f, rules, sizeof rules);
    snprintf(cmd, sizeof cmd,
             "printf 'intent x.y\\n  match zzqq\\n  action nowhere\\n  reply r\\n' > '%s/zz.rules'", rules);
    assert_int_equal(system(cmd), 0);
    rules_diag_init(&diag);
    assert_int_equal(dialog_reload(f->d, &diag), KEFU_ESYNTAX);
    assert_int_equal(diag.errors, 1);
    assert_int_equal(diag.v[0].line, 3);
    assert_int_equal(diag.v[0].col, 10);
    rules_diag_release(&diag);
    dialog_close(f->d);
    f->d = NULL;
    f->cfg.actions = NULL;
    actions_free(a);
    open_dialog(f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_journey, setup, teardown),
        cmocka_unit_test_setup_teardown(test_actions, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stats, setup, teardown),
        cmocka_unit_test_setup_teardown(test_first_response, setup, teardown),
        cmocka_unit_test_setup_teardown(test_human_phrasings, setup, teardown),
        cmocka_unit_test_setup_teardown(test_client_id, setup, teardown),
        cmocka_unit_test_setup_teardown(test_claim_resolve_idempotent, setup, teardown),
        cmocka_unit_test_setup_teardown(test_misses, setup, teardown),
        cmocka_unit_test_setup_teardown(test_vip_first_miss, setup, teardown),
        cmocka_unit_test_setup_teardown(test_vip_escalation, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ab_replies, setup, teardown),
        cmocka_unit_test_setup_teardown(test_complaint_anger, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tokens, setup, teardown),
        cmocka_unit_test_setup_teardown(test_skills_capacity, setup, teardown),
        cmocka_unit_test_setup_teardown(test_positions, setup, teardown),
        cmocka_unit_test(test_hours_text),
        cmocka_unit_test_setup_teardown(test_business_hours, setup, teardown),
        cmocka_unit_test_setup_teardown(test_slot_filling, setup, teardown),
        cmocka_unit_test_setup_teardown(test_quick_replies_listed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_restart, setup, teardown),
        cmocka_unit_test_setup_teardown(test_agent_removed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_history, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reload, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reload_classifier, setup, teardown),
        cmocka_unit_test_setup_teardown(test_articles, setup, teardown),
        cmocka_unit_test_setup_teardown(test_memory_turns, setup, teardown),
        cmocka_unit_test_setup_teardown(test_clarify, setup, teardown),
        cmocka_unit_test_setup_teardown(test_kill9, setup, teardown),
        cmocka_unit_test_setup_teardown(test_concurrent, setup, teardown),
        cmocka_unit_test_setup_teardown(test_throughput, setup, teardown),
        cmocka_unit_test_setup_teardown(test_async_groups, setup, teardown),
        cmocka_unit_test_setup_teardown(test_failed_write, setup, teardown),
        cmocka_unit_test_setup_teardown(test_async_same_conversation, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, remove_seed);
}
