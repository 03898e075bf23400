/* dialog_int.h — what dialog.c (the customer side and the pipeline) and
 * dialog_agent.c (the agent side, the handoff packet, metrics) share. */
#ifndef KEFU_DIALOG_INT_H
#define KEFU_DIALOG_INT_H

#include "dialog.h"
#include "kb.h"
#include "queue.h"
#include "redline.h"
#include "router.h"
#include "rules.h"
#include "store.h"

#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>

#define CONV_LOCKS 64

/* Sources of a customer message's handling, counted for metrics and the report. */
enum {
    SRC_RULE,
    SRC_EXAMPLE,
    SRC_KB,
    SRC_CLARIFY,
    SRC_FALLBACK,
    SRC_HANDOFF,
    SRC_QUEUED,
    SRC_AGENT,
    SRC_FEEDBACK,
    N_SRC
};
extern const char *const dialog_src_names[N_SRC];
/* Why a conversation was handed to a person. */
enum { WHY_REQUESTED, WHY_COMPLAINT, WHY_ANGER, WHY_MISSES, WHY_TIER, WHY_RULE, WHY_ACTION, N_WHY };
extern const char *const dialog_why_names[N_WHY];

#define WAIT_BUCKETS 8
extern const long long dialog_wait_le[WAIT_BUCKETS]; /* histogram upper bounds, seconds */

/* The agents' first-response histogram of one queue and channel. */
#define FR_LABELS 64 /* pairs kept apart; later ones are counted under the last */
struct dialog_fr {
    char queue[32], channel[32];
    long b[WAIT_BUCKETS + 1], sum, n;
};

struct dialog_metrics {
    atomic_long src[N_SRC];
    atomic_long why[N_WHY];
    atomic_long wait[WAIT_BUCKETS + 1], wait_sum, wait_n;
    atomic_long rating[6];
    atomic_long created, claims, transfers, releases, resolves, agent_msgs, escalations;
    pthread_mutex_t fr_lock; /* the first-response histograms */
    struct dialog_fr fr[FR_LABELS];
    int n_fr;
};

struct dialog_agent {
    struct dialog_agent *next; /* accounts from the store, on d->accounts */
    char name[QUEUE_AGENT_MAX];
    char token[80];
    size_t token_len;
    char skills[256];
};

/* Per-call working set, reused through a free list: a router scratch,
 * the rule set it last used with a private copy of its examples index,
 * and a read-only connection to the articles. */
struct dialog_worker {
    struct dialog_worker *next;
    struct router_scratch *sc;
    struct rules *rs;       /* a reference */
    struct kb_examples *ex; /* clone of the examples of rs, or NULL */
    struct classify *clf;   /* a reference to the classifier of rs, or NULL */
    struct kb *kb;          /* NULL without articles */
};

struct dialog {
    char *data_dir, *rules_dir, *corpus_dir, *hours;
    int miss_limit, tz_offset_min;
    unsigned redact;         /* enum redact_kind masked in message text, 0 = off */
    int open_min, close_min; /* business hours in minutes of the local day; open_min < 0: always */
    long long (*now)(void *ctx);
    void *now_ctx;
    struct store *st;
    struct queue *q;
    pthread_mutex_t rules_lock;
    struct rules *rs;
    struct kb_examples *ex; /* the examples index of rs (workers clone it) */
    struct classify *clf;   /* the classifier trained from rs's examples, or NULL (workers share it) */
    long long rules_loaded_at;
    char *kb_path; /* the articles database, NULL if none */
    pthread_mutex_t workers_lock;
    struct dialog_worker *workers;
    pthread_mutex_t conv_lock[CONV_LOCKS];
    /* conversations whose customer message is committing or waiting for its action
     * (dialog_message_start()), per stripe; dialog_lock() waits until its conversation
     * is not committing there */
    pthread_mutex_t busy_lock;
    pthread_cond_t busy_cond;
    struct dialog_call *busy[CONV_LOCKS];
    unsigned long erases; /* erases so far (busy_lock; dialog_lock_all()) */
    /* finished calls kept for the next messages (a call is ~24 KiB: malloc's
     * large-chunk path and its consolidation were 2-3% of a message) */
    pthread_mutex_t spare_lock;
    struct dialog_call *spare;
    int n_spare;
    struct dialog_agent *agents; /* KEFU_AGENT_TOKENS */
    size_t n_agents;
    pthread_mutex_t accounts_lock;
    struct dialog_agent *accounts; /* agent accounts of the store seen so far (dialog_agent_auth()) */
    pthread_mutex_t notify_lock;   /* notify and its calls (the store's listener calls from its thread) */
    dialog_notify_fn notify;
    void *notify_ctx;
    struct dialog_metrics m;
    _Atomic long long synced_ms; /* the queue's last dialog_sync_queue(), monotonic ms */
    /* service levels (dialog_service.c) */
    struct redline *rl; /* NULL without a red-line file */
    pthread_mutex_t watch_lock;
    pthread_cond_t watch_cond;
    pthread_t watch_thread;
    int watch_ms, watch_stop, watch_started;
    struct dialog_outbox_target outbox[DIALOG_OUTBOX_MAX]; /* names owned */
    int n_outbox;
    struct actions *actions; /* borrowed from the config, may be NULL */
    int actions_lax;         /* unknown actions fail when called instead of refusing the rules */
    int show_calls;          /* answers list their turn's action calls (the command line) */
};

/* Sets the calling thread's reason and returns code. */
int dialog_fail(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Current time in unix seconds (the configured clock). */
long long dialog_now(struct dialog *d);
/* Locks the stripe of conversation id and waits until no customer message of
 * id is still committing (one waiting for its action does not count: the
 * caller must write only a conversation queued or with an agent, see
 * dialog.c); dialog_unlock() releases the stripe. */
void dialog_lock(struct dialog *d, const char *id);
/* Locks every conversation for an erase once no message is committing; a
 * message waiting for its action meanwhile (it resumes under its stripe's
 * lock, so it is not waited for) finds at its resume that an erase ran,
 * and writes nothing if its conversation is gone. */
void dialog_lock_all(struct dialog *d);
/* Undoes dialog_lock_all(). */
void dialog_unlock_all(struct dialog *d);
void dialog_unlock(struct dialog *d, const char *id);
/* Tells the listener about a committed change (conv NULL: the queue). */
void dialog_notify(struct dialog *d, const char *conv, long seq);
/* The agent named name (from KEFU_AGENT_TOKENS or an account seen), or NULL;
 * borrowed from d until dialog_close(). */
const struct dialog_agent *dialog_find_agent(struct dialog *d, const char *name);
/* Loads conversation id, mapping errors to a reason. */
int dialog_load(struct dialog *d, const char *id, struct store_conv *c);
/* 1 if the business hours hold at now. */
int dialog_hours_open(struct dialog *d, long long now);
/* Takes a worker synced with the running rules (NULL on OOM); give it back with dialog_worker_put(). */
struct dialog_worker *dialog_worker_get(struct dialog *d);
void dialog_worker_put(struct dialog *d, struct dialog_worker *w);
/* Puts a stored conversation into the in-memory queue. */
int dialog_enqueue(struct dialog *d, const struct store_conv *c);
/* On a store other nodes share, makes the in-memory queue what the
 * database holds (waiting and claimed conversations), unless it did so
 * less than max_age_ms ago (0: now); nothing on a store of its own.
 * Returns 0 or KEFU_E… (dialog_error() says why). */
int dialog_sync_queue(struct dialog *d, int max_age_ms);
/* How old the queue a customer's position is read from may be on a shared store. */
#define DIALOG_QUEUE_SYNC_MS 1000
/* The agent-facing context of conversation c (new JSON); extra messages
 * not yet stored (a JSON array, borrowed, may be NULL) join the transcript;
 * kb (may be NULL) suggests articles for it. */
json_t *dialog_build_context(struct dialog *d, const struct store_conv *c, json_t *extra, struct kb *kb);
/* Text from a JSON request field: 0, KEFU_EINVAL, KEFU_EUTF8 or KEFU_ERANGE. */
int dialog_req_text(json_t *req, const char *key, size_t max, int required, const char **out);
/* When redaction is on, replaces *text by its redacted copy, new in *owned
 * (free() it; NULL when nothing was copied). Returns 0 or KEFU_ENOMEM. */
int dialog_redact(struct dialog *d, const char **text, char **owned);
/* Agents' first responses from since on: {count, avg, max, groups:[{queue,
 * channel, count, avg, max}]} (seconds), new; NULL when the store fails. */
json_t *dialog_first_responses(struct dialog *d, long long since);
/* Copies customer's tier ("regular" when unknown) into tier[cap]. */
void dialog_tier(struct dialog *d, const char *customer, char *tier, size_t cap);
/* Counts one sample of red-line metric (enum redline_metric) with its labels. */
void dialog_observe(struct dialog *d, int metric, const char *channel, const char *queue, const char *tier,
                    double value, long long at);
/* Loads the red lines (cfg->redlines, or rules_dir/redlines.conf when it
 * exists) and starts the watcher thread when cfg->watch_ms > 0. */
int dialog_service_open(struct dialog *d, const struct dialog_config *cfg, struct rules_diag *diag);
/* Stops the watcher and frees the red lines; safe when never opened. */
void dialog_service_close(struct dialog *d);
/* One outbox event while its batch is built: what the batch borrows until
 * its write (dialog_outbox.c). */
struct dialog_out {
    char id[40];                                /* the event id: "ev_" and 32 hex digits */
    char *body;                                 /* new (dialog_out_release()) */
    const char *targets[DIALOG_OUTBOX_MAX + 1]; /* the names that want it, NULL-terminated */
};
/* Adds event ev of conv at to b when a target wants it, with the body
 * {id, event, conversation, at} and fields (borrowed, may be NULL) merged
 * in; conv NULL (a red line's event): no conversation, the key "". Returns 0 (also when nobody wants it) or
 * KEFU_ENOMEM / KEFU_ERANGE. */
int dialog_outbox_add(struct dialog *d, struct store_batch *b, struct dialog_out *e, unsigned ev,
                      const char *conv, long long at, json_t *fields);
/* 1 when some target wants ev (so a caller can skip building its fields). */
int dialog_outbox_wants(struct dialog *d, unsigned ev);
/* Frees what e owns; e can be used again. */
void dialog_out_release(struct dialog_out *e);
/* Copies cfg's outbox targets into d; 0, KEFU_EINVAL (too many) or KEFU_ENOMEM. */
int dialog_outbox_init(struct dialog *d, const struct dialog_config *cfg);
/* Frees the copied targets. */
void dialog_outbox_free(struct dialog *d);

/* The localized system text for key in locale; static. */
const char *dialog_say(const char *locale, const char *key);

/* The intents a conversation's memory keeps ("intents"), each as its JSON
 * text: element i is buf[off[i] .. off[i + 1]) (the last ends at len). */
#define DIALOG_HIST 20
struct dialog_hist {
    char *buf;
    size_t len, cap, n, off[DIALOG_HIST];
};
/* Reads the stored memory text (NULL: empty) into a new object without
 * "intents" and h (emptied first; free with dialog_hist_release()). */
json_t *dialog_mem_parse(const char *text, struct dialog_hist *h);
/* Appends an intent understood to h, the oldest out past DIALOG_HIST; 0 or KEFU_ENOMEM. */
int dialog_hist_add(struct dialog_hist *h, const char *intent, double confidence, const char *source,
                    long long seq);
/* The memory's text: mem with h as its "intents" (new string, NULL when out of memory). */
char *dialog_mem_dump(json_t *mem, const struct dialog_hist *h);
void dialog_hist_release(struct dialog_hist *h); /* frees h's text; h stays usable */

#endif
