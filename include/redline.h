/* redline.h — red lines: service levels the server watches. A red-line
 * file (rules/redlines.conf, docs/operations.md#red-lines) names each
 * line: a metric (queue wait, agents' first response, bot response time,
 * automation, handoff and unanswered shares, CSAT), a scope (filters on
 * channel, queue and tier, and optionally one group per value of one of
 * them), a window and a threshold. The dialog module feeds samples as
 * conversations move; redline_eval() computes each line over its window
 * and reports crossings both ways. Samples live in memory (a ring of
 * buckets per line and group); one mutex; knows nothing about
 * conversations or HTTP. The same file holds the VIP service levels
 * (escalate blocks), which the dialog module applies. */
#ifndef KEFU_REDLINE_H
#define KEFU_REDLINE_H

#include <jansson.h>
#include <stddef.h>

#include "rules.h"
#include "text.h"

struct redline; /* opaque */

enum redline_metric {
    RL_QUEUE_WAIT,     /* seconds from a handoff to the claim; also every conversation waiting now */
    RL_FIRST_RESPONSE, /* seconds from a handoff to the agent's first message */
    RL_BOT_RESPONSE,   /* seconds the engine took to answer a customer message */
    RL_AUTOMATION,     /* share of the messages the bot handled that it answered */
    RL_HANDOFF,        /* share of the messages the bot handled that it handed off */
    RL_UNANSWERED,     /* share of the messages the bot handled that nothing answered */
    RL_CSAT,           /* ratings 1..5 */
    RL_N_METRICS
};

/* Where a sample comes from; strings borrowed for the call, "" when unknown. */
struct redline_labels {
    const char *channel, *queue, *tier;
};

/* A VIP service level (an escalate block): conversations matching the
 * filters that have waited share × level seconds are escalated. */
struct redline_escalation {
    char name[32];
    char channel[32], queue[32], tier[32]; /* filters, "" = any */
    long long level_s;                     /* the promised wait */
    double share;                          /* 0 < share <= 1 */
    char to_queue[32];                     /* "" = stay in its queue */
    int priority;                          /* rules priority to raise to (0..3) */
};

/* Parses a red-line file; errors go to diag as file:line:col (KEFU_ESYNTAX),
 * an unreadable file is KEFU_EIO. *out is new, free it with redline_free(). */
int redline_load(const char *path, struct rules_diag *diag, struct redline **out);
/* The same for text held in memory; name appears in diagnostics. */
int redline_load_string(const char *name, const char *src, struct rules_diag *diag, struct redline **out);
void redline_free(struct redline *r); /* NULL is fine */
/* How many red lines and escalate blocks r holds. */
size_t redline_count(const struct redline *r);
size_t redline_escalations(const struct redline *r);
/* The k-th escalate block (k < redline_escalations()); borrowed from r. */
const struct redline_escalation *redline_escalation(const struct redline *r, size_t k);

/* Counts one sample of metric at unix time at (value: seconds, 0/1 for a
 * share, the rating for CSAT) for every line it concerns. Thread-safe. */
void redline_observe(struct redline *r, int metric, const struct redline_labels *l, double value,
                     long long at);

/* A crossing: the line's name, the group's key ("" without a per), the
 * window's value and sample count, and the new state. ev is a new JSON
 * object {event, redline, metric, group?:{key: value}, value, threshold,
 * op: "max"|"min", window_s, samples, at}; the callee may keep a reference. */
typedef void (*redline_change_fn)(void *ctx, json_t *ev);
/* Evaluates every line at now over its window, with live queue waits
 * (n of them, seconds, with their labels) added to queue-wait lines, and
 * calls fn for each line and group whose state changed. Thread-safe; fn
 * runs with r's lock released. Returns how many lines are breached. */
int redline_eval(struct redline *r, long long now, const double *live, const struct redline_labels *live_l,
                 size_t n, redline_change_fn fn, void *ctx);
/* The breached lines and groups now: a new JSON array of {name, metric,
 * group?, value, threshold, op, since}. */
json_t *redline_breaches(struct redline *r);
/* Appends kefu_redline_breached{name} (1 if any group is over its line),
 * kefu_redline_group_breached{name, KEY} and kefu_redline_value{name, KEY}. */
int redline_metrics(struct redline *r, struct text_buf *out);
/* The first red line of metric that has no where filter: its name (borrowed), threshold and
 * direction (*is_min 1: crossed below). Returns 0, or KEFU_ENOENT when there is none. */
int redline_threshold(const struct redline *r, int metric, const char **name, double *threshold, int *is_min);
/* The metric's name in the file ("queue_wait", ...); static. */
const char *redline_metric_name(int metric);

#endif
