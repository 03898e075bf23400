/* webhook.h — the webhook sender: delivers the store's outbox (events that
 * dialog wrote with the changes they announce) to each target URL over
 * http or https (httpc.h), signed with HMAC-SHA256, at least once and in
 * order per conversation, across restarts; backoff between tries, then a
 * dead-letter state an operator lists and replays (kefu webhook). */
#ifndef KEFU_WEBHOOK_H
#define KEFU_WEBHOOK_H

#include "store.h"

struct webhook; /* opaque */

struct webhook_config {
    struct store *store;     /* the outbox; borrowed, outlives the webhook */
    const char *const *urls; /* the targets (their outbox rows name them), n_urls of them; copied */
    int n_urls;
    const char *secret;   /* HMAC key; NULL or "": the signature header is left out */
    const char *ca_file;  /* PEM CA bundle for https; NULL: the system's CAs */
    int attempts;         /* tries before an event is dead (default 8) */
    double backoff_s;     /* the delay after the first failure, doubled each time (default 1) */
    double backoff_max_s; /* the longest delay (default 300) */
    double timeout_s;     /* one try, connect to response (default 10) */
    double poll_s;        /* how often the outbox is read (default 0.2) */
    int keep_days;        /* delivered rows kept this long (default 7) */
};

/* Starts the sender thread. *out is new, free it with webhook_free().
 * Returns 0, KEFU_EINVAL (a URL that is not http:// or https://, or none),
 * KEFU_ENOENT (ca_file cannot be read) or KEFU_ENOMEM. */
int webhook_create(const struct webhook_config *cfg, struct webhook **out);
/* Stops the sender; what is on the wire stays pending in the outbox, to be
 * sent again on the next start. NULL is fine. */
void webhook_free(struct webhook *w);
/* Writes hex(HMAC-SHA256(secret, "<ts>.<body>")) into out (65 bytes). */
void webhook_sign(const char *secret, long long ts, const char *body, size_t len, char out[65]);

/* Counters for /metrics and tests. */
struct webhook_stats {
    unsigned long delivered, failed, dead; /* deliveries, failed tries, events given up */
};
/* Copies the counters into out (a snapshot; thread-safe). */
void webhook_stats(struct webhook *w, struct webhook_stats *out);

#endif
