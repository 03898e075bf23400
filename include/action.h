/* action.h — the rules' actions: the shop's own endpoints (order status,
 * refunds, the customer's profile) that an intent's `action NAME` asks.
 * The endpoints are the server's configuration (a JSON file, see
 * docs/operations.md), never the rule files; each is called through httpc
 * off every request thread, signed like the webhooks, with its own timeout,
 * response cap, concurrency limit and circuit breaker. Editors can stub an
 * action's answer instead (kefu ask, chat, test). Nothing here knows about
 * conversations: dialog builds the request and reads the result. */
#ifndef KEFU_ACTION_H
#define KEFU_ACTION_H

#include <jansson.h>
#include <stddef.h>

#include "rules.h"
#include "text.h"

struct actions; /* opaque: the endpoints, their breakers and counters, the stubs */

/* How one call ended, borrowed for the callback. */
struct action_result {
    int ok;              /* 1: result is the endpoint's answer */
    const char *outcome; /* ok, timeout, error, malformed, too_large, breaker_open, busy, unknown */
    const char *error;   /* one lowercase line ("" when ok) */
    long status;         /* HTTP status, 0 without one (or stubbed) */
    double seconds;      /* from the call to its end */
    int stubbed;         /* the answer came from a stub, not the network */
    json_t *result;      /* a JSON object when ok (borrowed: json_incref() to keep), else NULL */
};
/* Runs exactly once per call: on httpc's worker thread, or inside actions_call()
 * (a stub, a refusal). Must be short and must not call back into actions. */
typedef void (*action_done_fn)(void *ctx, const struct action_result *r);

/* Reads the configuration file at path: {"NAME": {url, secret?, secret_env?,
 * timeout_s?, max_bytes?, concurrency?, breaker_failures?, breaker_open_s?}, ...}.
 * *out is new (actions_free()). On failure returns KEFU_EIO / KEFU_ESYNTAX /
 * KEFU_EINVAL with "path:line:col: why" or "path: why" in err[cap]. */
int actions_load(const char *path, char *err, size_t cap, struct actions **out);
/* An empty set (no endpoints): stubs only. *out is new. */
int actions_create(struct actions **out);
/* Stops the client (calls in flight end as errors), frees everything. NULL is fine. */
void actions_free(struct actions *a);
/* 1 when name is configured or stubbed (kefu check's question), else 0. a may be NULL. */
int actions_known(const struct actions *a, const char *name);
/* rules_check_actions() callback form of actions_known() (ctx is the actions). */
int actions_known_fn(void *ctx, const char *name);
/* Makes name answer result (borrowed; copied) without the network, or fail
 * with outcome "error" when result is NULL. Replaces an earlier stub. */
int actions_stub(struct actions *a, const char *name, json_t *result);
/* Forgets every stub. */
void actions_stub_clear(struct actions *a);
/* Calls action name with body (borrowed; sent as compact JSON); done runs once. */
void actions_call(struct actions *a, const char *name, json_t *body, action_done_fn done, void *ctx);
/* actions_call() and wait (the command line only): *result gets a new object
 * (NULL unless ok), outcome[cap], *seconds and *stubbed (1: a stub answered, not
 * the network) what happened; seconds and stubbed may be NULL. Returns 1 when ok. */
int actions_call_wait(struct actions *a, const char *name, json_t *body, json_t **result, char *outcome,
                      size_t cap, double *seconds, int *stubbed);
/* Appends kefu_action_calls_total{action,outcome}, the latency histogram
 * kefu_action_duration_seconds{action} and kefu_action_breaker_open{action}. */
int actions_metrics(struct actions *a, struct text_buf *out);

/* What an intent does with its action's answer. */
struct action_choice {
    const char *tpl; /* the reply template to render (with the result's fields), or NULL */
    const struct rules_handoff *handoff; /* an `on ... -> handoff` that applies, or NULL */
    int failed_handoff;                  /* the call failed and no `on failed` line says what to do:
                                            hand off with reason action_failed */
};
/* Chooses for intent it: the first `on` group that holds over conv (the
 * conversation's attributes, read first) and result's fields (ok), or `on
 * failed` (not ok); its reply for locale and its handoff; else dflt (the
 * intent's own reply). */
void action_choose(const struct rules_intent *it, int ok, json_t *result, const struct attrs *conv,
                   const char *locale, const char *dflt, struct action_choice *out);

/* The text of field path ("order.eta": dots walk into objects) of result into
 * buf: a string as it is (control characters become spaces, cut to cap at a
 * character boundary), a number or true/false written out. Returns 1, or 0 with
 * buf "" when the field is missing, null, an object or an array. */
int action_field(json_t *result, const char *path, char *buf, size_t cap);
/* Appends result's scalar fields (up to three levels deep, named with dots) to v
 * (*n entries used of cap), their text kept in buf[bufcap]; for `on` conditions. */
void action_attrs(json_t *result, struct attr *v, size_t cap, size_t *n, char *buf, size_t bufcap);

#endif
