/* dialog.h — conversations: the per-message pipeline and the state machine
 * bot → queued → agent → resolved (→ bot on the next message).
 * This is the whole engine as the api module sees it: api authenticates,
 * parses and validates the HTTP request, calls one function here, and
 * turns the result (a JSON object) or the error code into a response.
 * Nothing here knows about HTTP. Every call is thread-safe; a call that
 * changes state returns only after its change has been committed.
 *
 * Errors: functions return 0 or a negative KEFU_E* code, and leave a
 * one-line, lowercase reason for the calling thread in dialog_error():
 *   KEFU_EINVAL   malformed request (400)      KEFU_EUTF8  invalid UTF-8 (400)
 *   KEFU_ERANGE   text or field too long (413) KEFU_EAUTH  bad credentials (401)
 *   KEFU_EPERM    not yours (403)              KEFU_ENOENT no such conversation (404)
 *   KEFU_ECONFLICT wrong state (409)           KEFU_ELIMIT rate limited (429)
 *   KEFU_EBUSY    no capacity (503)            KEFU_EIO    storage failed (500)
 *   KEFU_ENOSPC   disk full, nothing stored (503) */
#ifndef KEFU_DIALOG_H
#define KEFU_DIALOG_H

#include <jansson.h>
#include <stddef.h>

#include "rules.h"
#include "text.h"

struct dialog; /* opaque */

#define DIALOG_MAX_TEXT 4096 /* bytes in one message, after UTF-8 validation */

/* The events a webhook target can ask for (struct dialog_config's outbox). */
enum dialog_event {
    DIALOG_EV_HANDOFF = 1,           /* a customer message handed the conversation to a queue */
    DIALOG_EV_CLAIM = 2,             /* an agent took it */
    DIALOG_EV_AGENT_MESSAGE = 4,     /* an agent wrote to the customer */
    DIALOG_EV_RESOLVE = 8,           /* an agent resolved it */
    DIALOG_EV_FEEDBACK = 16,         /* the customer rated it */
    DIALOG_EV_REDLINE_BREACHED = 32, /* a red line was crossed (docs/operations.md#red-lines) */
    DIALOG_EV_REDLINE_CLEARED = 64,  /* a crossed red line holds again */
    DIALOG_EV_ESCALATED = 128,       /* a waiting conversation reached a share of its VIP level */
    DIALOG_EV_ALL = 255
};
/* Returns the name of one event ("handoff", "claim", "agent_message", "resolve", "feedback",
 * "redline.breached", "redline.cleared", "escalated"). */
const char *dialog_event_name(unsigned ev);
/* Parses a comma-separated list of event names into *mask; KEFU_EINVAL for an unknown one. */
int dialog_event_parse(const char *list, unsigned *mask);

/* A webhook target: each event it wants is written to the store's outbox
 * for it, in the same transaction as the change the event announces. */
#define DIALOG_OUTBOX_MAX 8
struct dialog_outbox_target {
    const char *name; /* the target's key in the outbox (its URL); copied */
    unsigned events;  /* enum dialog_event bits */
};

struct dialog_config {
    const char *data_dir;        /* holds kefu.db (conversations) and kb.db (articles); created if missing */
    const char *store;           /* the conversations' database: NULL for data_dir/kefu.db (SQLite), or a
                                    postgresql:// URI shared by several nodes (docs/scaling.md) */
    const char *rules_dir;       /* rule files */
    const char *corpus_dir;      /* articles, imported into kb.db at open (incremental) */
    int miss_limit;              /* consecutive misses before a handoff (default 2; 0 = default) */
    const char *hours;           /* business hours "HH:MM-HH:MM" in tz_offset_min, NULL = always open */
    int tz_offset_min;           /* minutes east of UTC for hours (480 = Beijing) */
    const char *agents;          /* "name:token[,name:token...]"; skills and capacity: docs/operations.md */
    int group_commit;            /* 1: group commit (default); -1: one commit per write (benchmarks) */
    unsigned redact;             /* kinds of personal data (enum redact_kind) masked in customer and agent
                                    text before it is routed or stored; 0 = off (the default) */
    const char *redlines;        /* red-line file (docs/operations.md#red-lines); NULL: rules_dir/redlines.conf
                                    when it exists; "": none */
    int watch_ms;                /* evaluate red lines and VIP levels every watch_ms (0: never; serve: 5000) */
    long long (*now)(void *ctx); /* clock in unix seconds; NULL = time() (tests set their own) */
    void *now_ctx;
    const struct dialog_outbox_target *outbox; /* webhook targets (at most DIALOG_OUTBOX_MAX), or NULL */
    int n_outbox;
    struct actions *actions; /* the rules' actions (action.h), borrowed: close the dialog first; NULL =
                                none configured (every action fails, the rules are not checked against it) */
    int actions_lax;         /* 1: the rules may name actions the set does not know (they fail when
                                called; kefu chat and kefu test, where stubs come later) */
    int show_calls;          /* 1: each answer lists the actions its turn called, "calls":[{action,
                                outcome, seconds, stubbed, result?}] (kefu chat, kefu test; not the server) */
};
/* Fills the defaults above (data "data", rules "rules", corpus "corpus"). */
void dialog_config_default(struct dialog_config *c);
/* Writes the service hours as a customer in locale reads them into buf (caller's):
 * "9:00–22:00 (Beijing time)", "9:00–22:00（北京时间）", "around the clock" when
 * hours is NULL or empty; what replies' {service_hours} becomes. */
void dialog_hours_text(const char *hours, int tz_offset_min, const char *locale, char *buf, size_t cap);

/* Opens the store, imports the corpus, compiles the rules. Rule errors are
 * in diag. *out is new, close with dialog_close(). */
int dialog_open(const struct dialog_config *cfg, struct rules_diag *diag, struct dialog **out);
/* Waits for pending writes to commit, then frees everything. NULL is fine. */
void dialog_close(struct dialog *d);
/* Compiles the rule directory again and swaps it in only if it compiles;
 * on failure the running set stays and diag says why (KEFU_ESYNTAX). */
int dialog_reload(struct dialog *d, struct rules_diag *diag);

/* The actions the dialog calls (the config's, borrowed), or NULL; for stubs in kefu test. */
struct actions *dialog_actions(struct dialog *d);

/* The calling thread's reason for its last failed call; static or thread-local. */
const char *dialog_error(void);

/* Called after a committed change: conv got message seq (conv NULL: the
 * queue changed). Runs on the thread of the call that made the change,
 * after its commit and outside every dialog lock; must not block or call
 * back. Set it before serving. */
typedef void (*dialog_notify_fn)(void *ctx, const char *conv, long seq);
void dialog_set_notify(struct dialog *d, dialog_notify_fn fn, void *ctx);

/* Evaluates the red lines and escalates waiting VIPs now, as the watcher
 * does every watch_ms. Each crossing and escalation is logged and written
 * to the webhook outbox (DIALOG_EV_REDLINE_*, DIALOG_EV_ESCALATED). Returns
 * how many red lines are breached. */
int dialog_watch_now(struct dialog *d);

/* ---- customer side; every *out is a new JSON object (json_decref it) ---- */

/* req {channel, customer:{id, name?, tier?}, locale?} (borrowed) →
 * {id, token, state, messages:[greeting]}. */
int dialog_conversation_create(struct dialog *d, json_t *req, json_t **out);
/* Checks the conversation's token in constant time: 0, KEFU_ENOENT or KEFU_EPERM. */
int dialog_customer_auth(struct dialog *d, const char *conv, const char *token);
/* req {text, client_id?, customer?:{id, name?, tier?}} (a customer id other than the
 * conversation's makes it that customer's, and the profile action asks again) →
 * {reply:{text, source, intent?, confidence, articles?:[{id, title?}],
 * quick_replies?, notice?}, state, seq, queue?:{name, position, wait_s}}; the reply is
 * null while queued or with an agent; seq is the last message this call stored;
 * notice says agents are offline (business hours) or busy. source is rule, example,
 * kb, clarify, fallback, handoff or feedback ("1".."5" typed after a resolve).
 * Repeating a client_id returns the first answer and stores nothing. */
int dialog_customer_message(struct dialog *d, const char *conv, json_t *req, json_t **out);
/* The same without blocking a thread on the commit (the server's path).
 * dialog_message_start() runs the pipeline, hands the turn's write to the
 * store and returns; done(ctx) then runs: before the call returns when
 * nothing is written (an error, a repeated client_id), else on the store's
 * writer thread right after the commit. done must only wake whoever calls
 * dialog_message_finish(call): it must not block or call into dialog.
 * Each run of done is followed by one dialog_message_finish(). Nothing is
 * acknowledged before the commit: a failed one finishes with KEFU_EIO and
 * the conversation stays as it was. A message whose conversation has an
 * earlier message still committing does not block either: it is parked
 * behind it, done runs when that one committed, and finish returns 1 (the
 * message runs now; done will run again). *call is new (NULL when out of
 * memory; finish it anyway). */
struct dialog_call;
typedef void (*dialog_done_fn)(void *ctx);
void dialog_message_start(struct dialog *d, const char *conv, json_t *req, dialog_done_fn done, void *ctx,
                          struct dialog_call **call);
/* After done: 1 when the call runs again (see above; call stays alive), or
 * what dialog_customer_message() returns (0 and *out new, or a KEFU_E*
 * code with dialog_error() set) after notifying listeners of the change on
 * this thread, and then call is freed. */
int dialog_message_finish(struct dialog_call *call, json_t **out);
/* Frees a call whose done ran when nobody wants its answer any more (the
 * client went away): a committed message stays committed and is notified
 * as by finish; one still waiting behind another is dropped unwritten.
 * NULL is fine. */
void dialog_message_drop(struct dialog_call *call);
/* → {messages:[{seq, from, text, source?, at}...] with seq > after, state, queue?}. */
int dialog_messages(struct dialog *d, const char *conv, long after, json_t **out);
/* req {rating:1..5, comment?} → {ok:true}. */
int dialog_feedback(struct dialog *d, const char *conv, json_t *req, json_t **out);

/* ---- agent side (agent is the name dialog_agent_auth() returned) ---- */

/* Finds the agent whose token this is: a KEFU_AGENT_TOKENS entry (constant
 * time), else an enabled agent account of the store with this token's hash
 * (read on every call, so a disabled or rotated token fails at once); *agent
 * is borrowed from d. */
int dialog_agent_auth(struct dialog *d, const char *token, const char **agent);
/* → {queues:[...], conversations:[{id, queue, priority, position, waiting_s, customer,
 * reason, channel, first_message, escalated}], redlines:[the red lines crossed now, as
 * redline_breaches()]} for the queues the agent serves, in claim order. */
int dialog_queue_list(struct dialog *d, const char *agent, json_t **out);
/* Claims conv (NULL: the next one the agent may take) → the context as below.
 * Claiming again a conversation the agent holds returns the context and changes
 * nothing; KEFU_EBUSY at capacity, KEFU_EPERM outside the agent's skills,
 * KEFU_ECONFLICT when another agent holds it, KEFU_ENOENT when nothing waits. */
int dialog_claim(struct dialog *d, const char *agent, const char *conv, json_t **out);
/* → the full context: {conversation:{id, state, channel, locale, queue, priority,
 * agent, created_at, queued_at, misses}, customer:{id, name, tier, first_seen,
 * last_seen}, transcript:[{seq, from, text, source?, intent?, confidence?, at}],
 * history:[{id, channel, state, created_at, updated_at, reason, messages,
 * first_message}], understood:{intents:[{intent, confidence, source, seq}], slots:{}},
 * reason, articles:[{id, title, score}], packet: the same as stored at the handoff}. */
int dialog_context(struct dialog *d, const char *agent, const char *conv, json_t **out);
/* req {text, client_id?} → {seq}. The conversation must be the agent's. */
int dialog_agent_message(struct dialog *d, const char *agent, const char *conv, json_t *req, json_t **out);
/* req {queue} → {state, queue}. */
int dialog_transfer(struct dialog *d, const char *agent, const char *conv, json_t *req, json_t **out);
/* Gives the conversation back to its queue → {state}. */
int dialog_release(struct dialog *d, const char *agent, const char *conv, json_t **out);
/* → {state:"resolved", seq}; the customer is asked for a rating. Resolving
 * again returns the same and changes nothing; the customer's next message
 * (other than a rating) returns the conversation to the bot. */
int dialog_resolve(struct dialog *d, const char *agent, const char *conv, json_t **out);

/* req {status: online|away|offline} → {agent, status}: what the console shows
 * of the agent; away and offline agents do not count as online for the
 * customers' "agents are busy / offline" notice. Kept in this node's memory. */
int dialog_agent_presence(struct dialog *d, const char *agent, json_t *req, json_t **out);

/* The figures of the day for the console: since < 0 means the last local
 * midnight (tz_offset_min) → {since, until, conversations, customer_messages,
 * answered, automation_rate, handoffs, claims, resolves, wait_s:{claims, avg,
 * max}, ratings:{count, avg, values:[n1..n5]}, hours:[{at, messages, answered,
 * handoffs}] (one per hour from since up to now, at most 24), first_response_s:{count,
 * avg, max, groups:[{queue, channel, count, avg, max}]} (handoff → the agent's first message),
 * experiments: the A/B-tested replies over all their history, as abtest_experiments(),
 * kpi: the KPI table per channel beside the red lines, as kpi_table()}. */
int dialog_stats(struct dialog *d, long long since, json_t **out);

/* The handoff packet of conv as an agent would see it (the context above),
 * without an agent's credentials: for the helpdesk webhook. */
int dialog_packet(struct dialog *d, const char *conv, json_t **out);

/* ---- operator ---- */

/* Agent accounts of the store (agents.h), for the admin API:
 * → {agents:[{name, state, skills, capacity, created_at, updated_at}]}. */
int dialog_accounts(struct dialog *d, json_t **out);
/* req {name, skills?:[queue...], capacity?} → {name, state, token}: the token
 * is shown this once. KEFU_EINVAL, KEFU_ECONFLICT (the name exists). */
int dialog_account_add(struct dialog *d, json_t *req, json_t **out);
/* what "disable", "enable" or "rotate" → {name, state, token?} (rotate: the
 * new token, shown this once). KEFU_ENOENT for an unknown name. */
int dialog_account_change(struct dialog *d, const char *name, const char *what, json_t **out);

/* Erases customer: every conversation (messages, events, feedback, packet,
 * memory), the profile, and their places in the queues; deleted pages are
 * zeroed (secure_delete) and the WAL is checkpointed and truncated before
 * it returns. → {customer, conversations, messages}. KEFU_ENOENT when the
 * customer is unknown; *convs (may be NULL) gets the erased conversation
 * ids as a new JSON array, for the caller's own caches. */
int dialog_erase_customer(struct dialog *d, const char *customer, json_t **out, json_t **convs);

/* Appends the Prometheus text exposition of every counter to out. */
int dialog_metrics(struct dialog *d, struct text_buf *out);
/* → {status:"ok", rules:{intents, loaded_at}, kb:{articles}, store:{...}}. */
int dialog_health(struct dialog *d, json_t **out);

#endif
