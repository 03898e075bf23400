/* cli_report.c — `kefu report`: what the conversations say about the
 * rules, for knowledge editors. Reads data/kefu.db (safe while the server
 * runs: WAL readers do not block it) and prints the automation rate, why
 * conversations reached people, each intent's containment and ratings,
 * and the messages nothing answered, grouped by their normalized text, so
 * the most frequent gaps come first. --json prints one object. */
#include "cli.h"
#include "cli_int.h"

#include "abtest.h"
#include "kefu.h"
#include "kpi.h"
#include "redline.h"
#include "rules.h"
#include "store.h"
#include "text.h"

#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

static const char *const usage_report =
    "usage: kefu report [--data DIR] [--rules DIR] [--json] [--top N]\n"
    "       kefu report --kpi [--days N] [--data DIR] [--rules DIR] [--json]\n\n"
    "Summarizes the conversations in DIR/kefu.db (default data/): the automation rate\n"
    "(messages the bot answered from a rule, an example or an article, out of those it\n"
    "handled), handoffs by reason, per intent how often it answered, how often it handed\n"
    "off and the ratings of the conversations it answered in, agents' first response\n"
    "(handoff to the first message) per queue and channel, and the N (default 20) most\n"
    "frequent messages nothing answered, grouped by normalized text; and the A/B-tested\n"
    "replies: per variant answers, containment and ratings, the z-test of containment\n"
    "against the control with its p-value and the sample still needed (running: the\n"
    "variants the rules in --rules DIR, default rules/, still hold).\n\n"
    "--kpi prints the service KPIs of the last N days (default 1) per channel: automation,\n"
    "first-contact resolution, agents' average first response, average handling time (claim\n"
    "to resolve) and CSAT, each beside its red line in DIR/redlines.conf.";

/* Collects rows as {key: [count, avg]} in a JSON object. */
static int collect(void *ctx, const char *key, long long count, double avg)
{
    json_object_set_new(ctx, key ? key : "(none)", json_pack("[I, f]", (json_int_t)count, avg));
    return 0;
}

static json_t *rows(struct store *st, int which)
{
    json_t *o = json_object();
    store_report(st, which, collect, o);
    return o;
}

static long long count_of(json_t *o, const char *key)
{
    return json_integer_value(json_array_get(json_object_get(o, key), 0));
}

/* Groups the unanswered messages by normalized text: {norm: {count, example}}. */
struct gaps {
    json_t *by_norm;
    struct text_buf b;
};

static int add_gap(void *ctx, const char *text, long long count, double avg)
{
    struct gaps *g = ctx;
    if (!text || text_normalize(text, strlen(text), TEXT_FOLD, &g->b) < 0)
        return 0;
    json_t *e = json_object_get(g->by_norm, g->b.s);
    if (!e)
        json_object_set_new(g->by_norm, g->b.s,
                            e = json_pack("{s:I, s:s}", "count", (json_int_t)0, "example", text));
    json_object_set_new(e, "count", json_integer(json_integer_value(json_object_get(e, "count")) + count));
    return 0;
}

static int gap_cmp(const void *a, const void *b)
{
    json_t *x = *(json_t *const *)a, *y = *(json_t *const *)b;
    json_int_t cx = json_integer_value(json_object_get(x, "count")),
               cy = json_integer_value(json_object_get(y, "count"));
    if (cx != cy)
        return cx > cy ? -1 : 1;
    return strcmp(json_string_value(json_object_get(x, "text")),
                  json_string_value(json_object_get(y, "text")));
}

/* The top unanswered groups, most frequent first: [{text, count, example}]. */
static json_t *gaps(struct store *st, int top)
{
    struct gaps g;
    g.by_norm = json_object();
    text_buf_init(&g.b);
    store_report(st, STORE_R_UNANSWERED, add_gap, &g);
    size_t n = json_object_size(g.by_norm), i = 0;
    json_t **v = kefu_calloc(n + 1, sizeof *v);
    const char *key;
    json_t *e;
    json_object_foreach(g.by_norm, key, e)
    {
        json_object_set_new(e, "text", json_string(key));
        if (v)
            v[i++] = e;
    }
    json_t *out = json_array();
    if (v) {
        qsort(v, i, sizeof *v, gap_cmp);
        for (size_t k = 0; k < i && (int)k < top; k++)
            json_array_append(out, v[k]);
    }
    free(v);
    json_decref(g.by_norm);
    text_buf_release(&g.b);
    return out;
}

/* Per intent: answered, avg confidence, handoffs, containment, ratings. */
static json_t *intents(struct store *st)
{
    json_t *ans = rows(st, STORE_R_INTENT_ANSWERS), *hand = rows(st, STORE_R_INTENT_HANDOFF);
    json_t *rate = rows(st, STORE_R_INTENT_RATING), *out = json_object();
    const char *k;
    json_t *v;
    json_object_foreach(hand, k, v) if (!json_object_get(ans, k))
        json_object_set_new(ans, k, json_pack("[i, f]", 0, 0.0));
    json_object_foreach(ans, k, v)
    {
        long long a = json_integer_value(json_array_get(v, 0)), h = count_of(hand, k);
        json_t *r = json_object_get(rate, k);
        json_object_set_new(out, k,
                            json_pack("{s:I, s:f, s:I, s:f, s:I, s:o}", "answered", (json_int_t)a,
                                      "confidence", json_real_value(json_array_get(v, 1)), "handoffs",
                                      (json_int_t)h, "containment", a + h ? (double)a / (double)(a + h) : 0.0,
                                      "ratings",
                                      (json_int_t)(r ? json_integer_value(json_array_get(r, 0)) : 0),
                                      "rating", r ? json_copy(json_array_get(r, 1)) : json_null()));
    }
    json_decref(ans);
    json_decref(hand);
    json_decref(rate);
    return out;
}

/* Agents' first responses per queue and channel: {count, avg, max, groups:[...]}. */
static int add_response(void *ctx, const struct store_response_group *g)
{
    json_t *fr = ctx;
    long long n = json_integer_value(json_object_get(fr, "count"));
    double sum = json_real_value(json_object_get(fr, "avg")) * (double)n + g->avg * (double)g->n;
    json_array_append_new(json_object_get(fr, "groups"),
                          json_pack("{s:s, s:s, s:I, s:f, s:I}", "queue", g->queue, "channel", g->channel,
                                    "count", (json_int_t)g->n, "avg", g->avg, "max", (json_int_t)g->max));
    json_object_set_new(fr, "count", json_integer(n + g->n));
    json_object_set_new(fr, "avg", json_real(n + g->n ? sum / (double)(n + g->n) : 0.0));
    if (g->max > json_integer_value(json_object_get(fr, "max")))
        json_object_set_new(fr, "max", json_integer(g->max));
    return 0;
}

static json_t *first_responses(struct store *st)
{
    json_t *fr = json_pack("{s:I, s:f, s:I, s:[]}", "count", (json_int_t)0, "avg", 0.0, "max", (json_int_t)0,
                           "groups");
    store_first_responses(st, 0, add_response, fr);
    return fr;
}

static json_t *build(struct store *st, const struct rules *rs, int top)
{
    json_t *src = rows(st, STORE_R_SOURCES), *tot = rows(st, STORE_R_TOTALS);
    long long answered = count_of(src, "rule") + count_of(src, "example") + count_of(src, "kb");
    long long handled =
        answered + count_of(src, "clarify") + count_of(src, "fallback") + count_of(src, "handoff");
    json_t *sources = json_object();
    const char *k;
    json_t *v;
    json_object_foreach(src, k, v) json_object_set(sources, k, json_array_get(v, 0));
    json_t *why = rows(st, STORE_R_HANDOFFS), *reasons = json_object();
    json_object_foreach(why, k, v) json_object_set(reasons, k, json_array_get(v, 0));
    json_t *rat = rows(st, STORE_R_RATINGS), *ratings = json_object();
    json_object_foreach(rat, k, v) json_object_set(ratings, k, json_array_get(v, 0));
    json_t *o = json_pack("{s:I, s:I, s:I, s:f, s:o, s:o, s:I, s:f, s:o, s:o, s:o}", "conversations",
                          (json_int_t)count_of(tot, "conversations"), "customer_messages",
                          (json_int_t)count_of(tot, "customer_messages"), "handoffs",
                          (json_int_t)count_of(tot, "handoffs"), "automation",
                          handled ? (double)answered / (double)handled : 0.0, "sources", sources,
                          "handoff_reasons", reasons, "feedback", (json_int_t)count_of(tot, "feedback"),
                          "rating", json_real_value(json_array_get(json_object_get(tot, "feedback"), 1)),
                          "ratings", ratings, "intents", intents(st), "unanswered", gaps(st, top));
    json_object_set_new(o, "first_response_s", first_responses(st));
    json_t *ex = abtest_experiments(st, rs, 0);
    json_object_set_new(o, "experiments", ex ? ex : json_array());
    json_decref(src);
    json_decref(tot);
    json_decref(why);
    json_decref(rat);
    return o;
}

static void print_counts(const char *title, json_t *o)
{
    printf("%s:", title);
    const char *k;
    json_t *v;
    json_object_foreach(o, k, v) printf(" %s %lld", k, json_integer_value(v));
    putchar('\n');
}

static void print_experiments(json_t *ex)
{
    size_t i, k;
    json_t *e, *v;
    json_array_foreach(ex, i, e)
    {
        printf("\nexperiment %s (%s), control %s\n", json_string_value(json_object_get(e, "intent")),
               json_is_true(json_object_get(e, "running")) ? "running" : "ended",
               json_is_string(json_object_get(e, "control"))
                   ? json_string_value(json_object_get(e, "control"))
                   : "-");
        printf("  %-16s %7s %8s %8s %7s %6s\n", "variant", "weight", "answers", "contain", "ratings", "csat");
        json_array_foreach(json_object_get(e, "variants"), k, v)
        {
            char w[16] = "-", cs[16] = "-";
            if (json_is_integer(json_object_get(v, "weight")))
                snprintf(w, sizeof w, "%lld", json_integer_value(json_object_get(v, "weight")));
            if (json_is_number(json_object_get(v, "csat")))
                snprintf(cs, sizeof cs, "%.2f", json_number_value(json_object_get(v, "csat")));
            printf("  %-16s %7s %8lld %7.1f%% %7lld %6s\n", json_string_value(json_object_get(v, "name")), w,
                   json_integer_value(json_object_get(v, "answers")),
                   100 * json_real_value(json_object_get(v, "containment")),
                   json_integer_value(json_object_get(v, "ratings")), cs);
        }
        json_array_foreach(json_object_get(e, "tests"), k, v)
        {
            long long need = json_integer_value(json_object_get(v, "needed"));
            printf("  %s vs control: z %.2f, p %.4f (%s), ", json_string_value(json_object_get(v, "variant")),
                   json_real_value(json_object_get(v, "z")), json_real_value(json_object_get(v, "p_value")),
                   json_is_true(json_object_get(v, "significant")) ? "significant" : "not significant");
            if (need < 0)
                printf("no difference to detect\n");
            else if (need == 0)
                printf("sample large enough\n");
            else
                printf("%lld more answers per variant needed\n", need);
        }
    }
}

static void print_report(json_t *r)
{
    printf("conversations %lld, customer messages %lld, handoffs %lld\n",
           json_integer_value(json_object_get(r, "conversations")),
           json_integer_value(json_object_get(r, "customer_messages")),
           json_integer_value(json_object_get(r, "handoffs")));
    printf("automation: %.1f%% of the messages the bot handled were answered (rule, example, kb)\n",
           100 * json_real_value(json_object_get(r, "automation")));
    print_counts("messages by source", json_object_get(r, "sources"));
    print_counts("handoffs by reason", json_object_get(r, "handoff_reasons"));
    printf("feedback: %lld ratings, average %.2f\n", json_integer_value(json_object_get(r, "feedback")),
           json_real_value(json_object_get(r, "rating")));
    json_t *fr = json_object_get(r, "first_response_s");
    printf("agents' first response (handoff to the first message): %lld, average %.0f s, longest %lld s\n",
           json_integer_value(json_object_get(fr, "count")), json_real_value(json_object_get(fr, "avg")),
           json_integer_value(json_object_get(fr, "max")));
    size_t n;
    json_t *g1;
    json_array_foreach(json_object_get(fr, "groups"), n, g1) printf(
        "  queue %-16s channel %-12s %6lld  average %5.0f s  longest %5lld s\n",
        json_string_value(json_object_get(g1, "queue")), json_string_value(json_object_get(g1, "channel")),
        json_integer_value(json_object_get(g1, "count")), json_real_value(json_object_get(g1, "avg")),
        json_integer_value(json_object_get(g1, "max")));
    printf("\n%-32s %8s %6s %8s %8s %7s\n", "intent", "answered", "conf", "handoffs", "contain", "rating");
    const char *k;
    json_t *v;
    json_object_foreach(json_object_get(r, "intents"), k, v)
    {
        json_t *rating = json_object_get(v, "rating");
        char rs[16] = "-";
        if (json_is_number(rating))
            snprintf(rs, sizeof rs, "%.2f", json_number_value(rating));
        printf("%-32s %8lld %6.2f %8lld %7.0f%% %7s\n", k, json_integer_value(json_object_get(v, "answered")),
               json_real_value(json_object_get(v, "confidence")),
               json_integer_value(json_object_get(v, "handoffs")),
               100 * json_real_value(json_object_get(v, "containment")), rs);
    }
    print_experiments(json_object_get(r, "experiments"));
    json_t *g = json_object_get(r, "unanswered");
    printf("\nunanswered messages (most frequent first; write rules for these):\n");
    size_t i;
    json_array_foreach(g, i, v) printf("%6lld  %s\n", json_integer_value(json_object_get(v, "count")),
                                       json_string_value(json_object_get(v, "example")));
    if (!json_array_size(g))
        puts("  none");
}

/* "45 s" / "4.52" / "83%" of a KPI cell, or "-" for null. */
static void cell(char *buf, size_t cap, json_t *v, int kind)
{
    if (!json_is_number(v))
        snprintf(buf, cap, "-");
    else if (kind == 0)
        snprintf(buf, cap, "%.0f%%", 100 * json_number_value(v));
    else if (kind == 1)
        snprintf(buf, cap, "%.0f s", json_number_value(v));
    else
        snprintf(buf, cap, "%.2f", json_number_value(v));
}

/* The red line of a KPI as "(min 80%)", or "". */
static void line_text(char *buf, size_t cap, json_t *line, int kind)
{
    if (!json_is_object(line)) {
        snprintf(buf, cap, "(no red line)");
        return;
    }
    char t[32];
    cell(t, sizeof t, json_object_get(line, "threshold"), kind);
    snprintf(buf, cap, "(%s %s)", json_string_value(json_object_get(line, "op")), t);
}

static int has(json_t *arr, const char *s)
{
    size_t i;
    json_t *v;
    json_array_foreach(arr, i, v) if (strcmp(json_string_value(v), s) == 0) return 1;
    return 0;
}

/* kefu report --kpi: the KPI table of the last days days, per channel, beside the red lines. */
static int report_kpi(struct store *st, const char *rules_dir, int days, int json)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/redlines.conf", rules_dir);
    struct rules_diag diag;
    rules_diag_init(&diag);
    struct redline *rl = NULL;
    struct stat sb;
    if (stat(path, &sb) == 0 && redline_load(path, &diag, &rl) < 0)
        rl = NULL;
    rules_diag_release(&diag);
    json_t *t = kpi_table(st, rl, (long long)time(NULL) - 86400LL * days);
    redline_free(rl);
    store_close(st);
    if (!t)
        return cli_fail("cannot read the KPIs");
    if (json) {
        char *s = json_dumps(t, JSON_COMPACT);
        puts(s ? s : "{}");
        free(s);
        json_decref(t);
        return 0;
    }
    json_t *lines = json_object_get(t, "redlines");
    char la[48], lf[48], lc[48];
    line_text(la, sizeof la, json_object_get(lines, "automation"), 0);
    line_text(lf, sizeof lf, json_object_get(lines, "first_response"), 1);
    line_text(lc, sizeof lc, json_object_get(lines, "csat"), 2);
    printf("KPIs of the last %d day%s, per channel (* over its red line)\n", days, days == 1 ? "" : "s");
    printf("%-12s %6s %11s %6s %15s %9s %11s\n", "channel", "convs", "automation", "FCR", "first response",
           "handling", "CSAT");
    printf("%-12s %6s %11s %6s %15s %9s %11s\n", "", "", la, "", lf, "", lc);
    size_t i;
    json_t *r;
    json_array_foreach(json_object_get(t, "channels"), i, r)
    {
        char a[24], f[24], fr[24], h[24], c[24];
        json_t *b = json_object_get(r, "breached");
        cell(a, sizeof a, json_object_get(r, "automation"), 0);
        cell(f, sizeof f, json_object_get(r, "first_contact_resolution"), 0);
        cell(fr, sizeof fr, json_object_get(r, "first_response_s"), 1);
        cell(h, sizeof h, json_object_get(r, "handling_s"), 1);
        cell(c, sizeof c, json_object_get(r, "csat"), 2);
        printf("%-12s %6lld %10s%s %6s %14s%s %9s %10s%s\n", json_string_value(json_object_get(r, "channel")),
               json_integer_value(json_object_get(r, "conversations")), a, has(b, "automation") ? "*" : " ",
               f, fr, has(b, "first_response_s") ? "*" : " ", h, c, has(b, "csat") ? "*" : " ");
    }
    if (!json_array_size(json_object_get(t, "channels")))
        puts("  no conversations in the period");
    json_decref(t);
    return 0;
}

int cli_report(int argc, char **argv)
{
    const char *dir = "data", *rules_dir = "rules";
    int json = 0, top = 20, kpi = 0, days = 1;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            puts(usage_report);
            return 0;
        } else if (strcmp(argv[i], "--json") == 0) {
            json = 1;
        } else if (strcmp(argv[i], "--kpi") == 0) {
            kpi = 1;
        } else if (strcmp(argv[i], "--days") == 0 && i + 1 < argc) {
            char *end;
            long v = strtol(argv[++i], &end, 10);
            if (*end || v < 1 || v > 3650)
                return cli_fail("--days takes a whole number from 1 to 3650");
            days = (int)v;
        } else if ((strcmp(argv[i], "--data") == 0 || strcmp(argv[i], "--top") == 0 ||
                    strcmp(argv[i], "--rules") == 0) &&
                   i + 1 < argc) {
            if (strcmp(argv[i], "--data") == 0)
                dir = argv[++i];
            else if (strcmp(argv[i], "--rules") == 0)
                rules_dir = argv[++i];
            else if ((top = atoi(argv[++i])) < 1)
                return cli_fail("--top takes a positive number");
        } else {
            return cli_fail("unknown option or missing value '%s' for 'report' (see kefu report --help)",
                            argv[i]);
        }
    }
    struct store *st;
    int rc = cli_open_store(dir, &st);
    if (rc != 0)
        return rc;
    if (kpi)
        return report_kpi(st, rules_dir, days, json);
    struct rules_diag diag;
    rules_diag_init(&diag);
    struct rules *rs = NULL;
    if (rules_load_dir(rules_dir, &diag, &rs) < 0) /* without rules, no experiment shows as running */
        rs = NULL;
    rules_diag_release(&diag);
    json_t *r = build(st, rs, top);
    rules_unref(rs);
    store_close(st);
    if (json) {
        char *s = json_dumps(r, JSON_COMPACT);
        puts(s ? s : "{}");
        free(s);
    } else {
        print_report(r);
    }
    json_decref(r);
    return 0;
}
