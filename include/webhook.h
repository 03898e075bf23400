/* webhook.h — POST events (the handoff packet) to an operator's URL,
 * signed with HMAC-SHA256, from a background thread with retries and
 * backoff, so the request that caused the event never waits for it. */
#ifndef KEFU_WEBHOOK_H
#define KEFU_WEBHOOK_H

#include <jansson.h>

struct webhook; /* opaque */

struct webhook_config {
    const char *url;    /* http://host[:port]/path (plain HTTP; put TLS in a local relay) */
    const char *secret; /* HMAC key; NULL or "": the signature header is left out */
    int attempts;       /* tries per event (default 5) */
    double backoff_s;   /* first retry delay, doubled each time (default 0.5) */
    double timeout_s;   /* per attempt: connect, send and read the status (default 5) */
    int queue_max;      /* events waiting at most (default 1000); beyond, the oldest is dropped */
};

/* Starts the sender thread for cfg (strings are copied). *out is new, free
 * it with webhook_free(). Returns 0 or KEFU_EINVAL for a URL it cannot use. */
int webhook_create(const struct webhook_config *cfg, struct webhook **out);
/* Stops the thread after its current attempt; events still queued are
 * dropped (and logged). NULL is fine. */
void webhook_free(struct webhook *w);
/* Queues event (borrowed; serialised now) for delivery; never blocks on
 * the network. Returns 0 or KEFU_ENOMEM. */
int webhook_post(struct webhook *w, json_t *event);
/* Drops the queued events whose body holds the JSON string "conv" (an
 * erased conversation); one already being sent is not recalled. Returns
 * how many were dropped. */
int webhook_forget(struct webhook *w, const char *conv);
/* Writes hex(HMAC-SHA256(secret, "<ts>.<body>")) into out (65 bytes). */
void webhook_sign(const char *secret, long long ts, const char *body, size_t len, char out[65]);

/* Counters for /metrics and tests. */
struct webhook_stats {
    unsigned long queued, delivered, retries, dropped;
};
/* Copies the counters into out (a snapshot; thread-safe). */
void webhook_stats(struct webhook *w, struct webhook_stats *out);

#endif
