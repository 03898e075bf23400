/* fake_dialog.c — an in-memory stand-in for dialog.h, for the HTTP
 * protocol tests only (tests/test_http.c): errors, limits, auth, CORS,
 * long-poll and SSE. It keeps the contract's shapes and state machine in
 * the simplest form: "human" in a message queues the conversation, any
 * other text gets a rule reply; "io-error" and "busy" fail on purpose,
 * "commit-error" fails in the fake's committer thread (a failed commit).
 * dialog_message_start() completes a message on that thread, as the real
 * store's writer does, so the server's park-and-resume path is exercised.
 * Reload compiles the real rule directory, so its diagnostics are real. */
#include "dialog.h"

#include "kefu.h"
#include "metrics.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_CONVS  512
#define MAX_AGENTS 8

struct fconv {
    char id[32], token[48], state[16], agent[32], queue[32];
    json_t *messages; /* array, owned */
    long seq;
};

struct dialog {
    pthread_mutex_t lock;
    struct fconv conv[MAX_CONVS];
    int n;
    char agent_name[MAX_AGENTS][32], agent_token[MAX_AGENTS][64];
    int n_agents;
    dialog_notify_fn notify;
    void *notify_ctx;
    char rules_dir[512];
    struct rules *rs;
    long messages_total;
    /* the committer: completes started messages in order on its own thread */
    pthread_t committer;
    pthread_cond_t work;
    struct dialog_call *head, *tail;
    int stop;
};

struct dialog_call {
    struct dialog_call *next;
    int rc;
    char err[256];
    json_t *out;
    dialog_done_fn done;
    void *done_ctx;
};

static void *committer_main(void *arg)
{
    struct dialog *d = arg;
    pthread_mutex_lock(&d->lock);
    for (;;) {
        while (!d->head && !d->stop)
            pthread_cond_wait(&d->work, &d->lock);
        struct dialog_call *c = d->head;
        if (!c)
            break;
        d->head = c->next;
        if (!d->head)
            d->tail = NULL;
        pthread_mutex_unlock(&d->lock);
        c->done(c->done_ctx); /* c may be finished and freed from here on */
        pthread_mutex_lock(&d->lock);
    }
    pthread_mutex_unlock(&d->lock);
    return NULL;
}

static _Thread_local char last_error[256];

static int fail(int rc, const char *why)
{
    snprintf(last_error, sizeof last_error, "%s", why);
    return rc;
}

const char *dialog_error(void)
{
    return last_error;
}

void dialog_config_default(struct dialog_config *c)
{
    memset(c, 0, sizeof *c);
    c->data_dir = "data";
    c->rules_dir = "rules";
    c->corpus_dir = "corpus";
}

static void parse_agents(struct dialog *d, const char *spec)
{
    while (spec && *spec && d->n_agents < MAX_AGENTS) {
        const char *colon = strchr(spec, ':'), *comma = strchr(spec, ',');
        size_t end = comma ? (size_t)(comma - spec) : strlen(spec);
        if (!colon || (size_t)(colon - spec) >= end)
            break;
        snprintf(d->agent_name[d->n_agents], 32, "%.*s", (int)(colon - spec), spec);
        snprintf(d->agent_token[d->n_agents], 64, "%.*s", (int)(end - (size_t)(colon - spec) - 1), colon + 1);
        d->n_agents++;
        spec = comma ? comma + 1 : NULL;
    }
}

int dialog_open(const struct dialog_config *cfg, struct rules_diag *diag, struct dialog **out)
{
    struct dialog *d = kefu_calloc(1, sizeof *d);
    if (!d)
        return KEFU_ENOMEM;
    pthread_mutex_init(&d->lock, NULL);
    pthread_cond_init(&d->work, NULL);
    if (pthread_create(&d->committer, NULL, committer_main, d) != 0) {
        pthread_cond_destroy(&d->work);
        pthread_mutex_destroy(&d->lock);
        free(d);
        return KEFU_ENOMEM;
    }
    parse_agents(d, cfg->agents);
    snprintf(d->rules_dir, sizeof d->rules_dir, "%s", cfg->rules_dir ? cfg->rules_dir : "rules");
    int rc = rules_load_dir(d->rules_dir, diag, &d->rs);
    if (rc < 0) {
        dialog_close(d);
        return rc;
    }
    *out = d;
    return 0;
}

void dialog_close(struct dialog *d)
{
    if (!d)
        return;
    pthread_mutex_lock(&d->lock);
    d->stop = 1;
    pthread_cond_signal(&d->work);
    pthread_mutex_unlock(&d->lock);
    pthread_join(d->committer, NULL);
    pthread_cond_destroy(&d->work);
    for (int k = 0; k < d->n; k++)
        json_decref(d->conv[k].messages);
    rules_unref(d->rs);
    pthread_mutex_destroy(&d->lock);
    free(d);
}

int dialog_reload(struct dialog *d, struct rules_diag *diag)
{
    struct rules *rs;
    int rc = rules_load_dir(d->rules_dir, diag, &rs);
    if (rc < 0)
        return fail(rc, "the rules did not compile");
    pthread_mutex_lock(&d->lock);
    struct rules *old = d->rs;
    d->rs = rs;
    pthread_mutex_unlock(&d->lock);
    rules_unref(old);
    return 0;
}

void dialog_set_notify(struct dialog *d, dialog_notify_fn fn, void *ctx)
{
    pthread_mutex_lock(&d->lock);
    d->notify = fn;
    d->notify_ctx = ctx;
    pthread_mutex_unlock(&d->lock);
}

static void notify(struct dialog *d, const char *conv, long seq)
{
    pthread_mutex_lock(&d->lock);
    dialog_notify_fn fn = d->notify;
    void *ctx = d->notify_ctx;
    pthread_mutex_unlock(&d->lock);
    if (fn)
        fn(ctx, conv, seq);
}

/* Finds conv; lock held. */
static struct fconv *find(struct dialog *d, const char *id)
{
    for (int k = 0; k < d->n; k++)
        if (strcmp(d->conv[k].id, id) == 0)
            return &d->conv[k];
    return NULL;
}

/* Appends a message; lock held. Returns its seq. */
static long append(struct fconv *c, const char *from, const char *text, const char *source)
{
    c->seq++;
    json_t *m = json_pack("{s:I, s:s, s:s, s:I}", "seq", (json_int_t)c->seq, "from", from, "text", text, "at",
                          (json_int_t)time(NULL));
    if (source)
        json_object_set_new(m, "source", json_string(source));
    json_array_append_new(c->messages, m);
    return c->seq;
}

int dialog_conversation_create(struct dialog *d, json_t *req, json_t **out)
{
    json_t *cust = json_object_get(req, "customer");
    if (!json_is_string(json_object_get(req, "channel")))
        return fail(KEFU_EINVAL, "'channel' is required");
    if (!json_is_string(json_object_get(cust, "id")))
        return fail(KEFU_EINVAL, "'customer.id' is required");
    pthread_mutex_lock(&d->lock);
    if (d->n == MAX_CONVS) {
        pthread_mutex_unlock(&d->lock);
        return fail(KEFU_EBUSY, "too many conversations");
    }
    struct fconv *c = &d->conv[d->n++];
    snprintf(c->id, sizeof c->id, "c%d", d->n);
    snprintf(c->token, sizeof c->token, "t%d-%08x", d->n, (unsigned)rand());
    snprintf(c->state, sizeof c->state, "bot");
    c->messages = json_array();
    append(c, "bot", "Hello! How can I help?", "greeting");
    *out = json_pack("{s:s, s:s, s:s, s:O}", "id", c->id, "token", c->token, "state", c->state, "messages",
                     c->messages);
    pthread_mutex_unlock(&d->lock);
    return 0;
}

int dialog_customer_auth(struct dialog *d, const char *conv, const char *token)
{
    pthread_mutex_lock(&d->lock);
    struct fconv *c = find(d, conv);
    int rc = !c                        ? fail(KEFU_ENOENT, "no such conversation")
             : strcmp(c->token, token) ? fail(KEFU_EPERM, "this token is for another conversation")
                                       : 0;
    pthread_mutex_unlock(&d->lock);
    return rc;
}

int dialog_customer_message(struct dialog *d, const char *conv, json_t *req, json_t **out)
{
    const char *text = json_string_value(json_object_get(req, "text"));
    if (!text)
        return fail(KEFU_EINVAL, "'text' is required");
    if (strcmp(text, "io-error") == 0)
        return fail(KEFU_EIO, "cannot append the message");
    if (strcmp(text, "busy") == 0)
        return fail(KEFU_EBUSY, "the writer is overloaded");
    pthread_mutex_lock(&d->lock);
    struct fconv *c = find(d, conv);
    if (!c) {
        pthread_mutex_unlock(&d->lock);
        return fail(KEFU_ENOENT, "no such conversation");
    }
    d->messages_total++;
    if (strcmp(c->state, "resolved") == 0)
        snprintf(c->state, sizeof c->state, "bot");
    long seq = append(c, "customer", text, NULL);
    json_t *reply = json_null();
    int queued = 0;
    if (strcmp(c->state, "bot") == 0 && strstr(text, "human")) {
        queued = 1;
        snprintf(c->state, sizeof c->state, "queued");
        snprintf(c->queue, sizeof c->queue, "general");
        seq = append(c, "bot", "A person will be with you shortly.", "handoff");
        reply = json_pack("{s:s, s:s, s:f}", "text", "A person will be with you shortly.", "source",
                          "handoff", "confidence", 1.0);
    } else if (strcmp(c->state, "bot") == 0) {
        seq = append(c, "bot", "Here is an answer.", "rule");
        reply = json_pack("{s:s, s:s, s:s, s:f}", "text", "Here is an answer.", "source", "rule", "intent",
                          "fake.answer", "confidence", 0.9);
    }
    *out = json_pack("{s:o, s:s, s:I}", "reply", reply, "state", c->state, "seq", (json_int_t)seq);
    pthread_mutex_unlock(&d->lock);
    notify(d, conv, seq);
    if (queued)
        notify(d, NULL, 0);
    return 0;
}

void dialog_message_start(struct dialog *d, const char *conv, json_t *req, dialog_done_fn done, void *ctx,
                          struct dialog_call **out)
{
    struct dialog_call *c = kefu_calloc(1, sizeof *c);
    *out = c;
    if (!c) {
        done(ctx);
        return;
    }
    c->done = done;
    c->done_ctx = ctx;
    const char *text = json_string_value(json_object_get(req, "text"));
    if (text && strcmp(text, "commit-error") == 0) {
        c->rc = KEFU_EIO;
        snprintf(c->err, sizeof c->err, "cannot store the message");
    } else {
        c->rc = dialog_customer_message(d, conv, req, &c->out);
        if (c->rc < 0) { /* refused before any write: completes on this thread */
            snprintf(c->err, sizeof c->err, "%s", last_error);
            done(ctx);
            return;
        }
    }
    pthread_mutex_lock(&d->lock);
    if (d->tail)
        d->tail->next = c;
    else
        d->head = c;
    d->tail = c;
    pthread_cond_signal(&d->work);
    pthread_mutex_unlock(&d->lock);
}

void dialog_message_drop(struct dialog_call *c)
{
    if (c)
        json_decref(c->out);
    free(c);
}

int dialog_message_finish(struct dialog_call *c, json_t **out)
{
    *out = NULL;
    if (!c)
        return fail(KEFU_ENOMEM, "out of memory");
    int rc = c->rc;
    if (rc < 0)
        fail(rc, c->err);
    else
        *out = c->out;
    free(c);
    return rc;
}

int dialog_messages(struct dialog *d, const char *conv, long after, json_t **out)
{
    pthread_mutex_lock(&d->lock);
    struct fconv *c = find(d, conv);
    if (!c) {
        pthread_mutex_unlock(&d->lock);
        return fail(KEFU_ENOENT, "no such conversation");
    }
    json_t *v = json_array();
    size_t k;
    json_t *m;
    json_array_foreach(c->messages, k, m) if (json_integer_value(json_object_get(m, "seq")) > after)
        json_array_append(v, m);
    *out = json_pack("{s:o, s:s}", "messages", v, "state", c->state);
    pthread_mutex_unlock(&d->lock);
    return 0;
}

int dialog_feedback(struct dialog *d, const char *conv, json_t *req, json_t **out)
{
    json_int_t r = json_integer_value(json_object_get(req, "rating"));
    if (!json_is_integer(json_object_get(req, "rating")) || r < 1 || r > 5)
        return fail(KEFU_EINVAL, "'rating' must be 1..5");
    *out = json_pack("{s:b}", "ok", 1);
    return 0;
}

int dialog_agent_auth(struct dialog *d, const char *token, const char **agent)
{
    for (int k = 0; k < d->n_agents; k++)
        if (strcmp(d->agent_token[k], token) == 0) {
            *agent = d->agent_name[k];
            return 0;
        }
    return fail(KEFU_EAUTH, "unknown agent token");
}

int dialog_queue_list(struct dialog *d, const char *agent, json_t **out)
{
    json_t *v = json_array();
    pthread_mutex_lock(&d->lock);
    for (int k = 0; k < d->n; k++)
        if (strcmp(d->conv[k].state, "queued") == 0)
            json_array_append_new(v, json_pack("{s:s, s:s}", "id", d->conv[k].id, "queue", d->conv[k].queue));
    pthread_mutex_unlock(&d->lock);
    *out = json_pack("{s:[s], s:o}", "queues", "general", "conversations", v);
    return 0;
}

/* The context of c; lock held. */
static json_t *context(const struct fconv *c)
{
    return json_pack("{s:{s:s, s:s, s:s}, s:O}", "conversation", "id", c->id, "state", c->state, "agent",
                     c->agent, "transcript", c->messages);
}

int dialog_claim(struct dialog *d, const char *agent, const char *conv, json_t **out)
{
    pthread_mutex_lock(&d->lock);
    struct fconv *c = NULL;
    for (int k = 0; !conv && k < d->n && !c; k++)
        if (strcmp(d->conv[k].state, "queued") == 0)
            c = &d->conv[k];
    if (conv)
        c = find(d, conv);
    int rc = 0;
    if (!c)
        rc = fail(KEFU_ENOENT, conv ? "no such conversation" : "the queue is empty");
    else if (strcmp(c->state, "queued") != 0)
        rc = fail(KEFU_ECONFLICT, "the conversation is not waiting in a queue");
    if (rc == 0) {
        snprintf(c->state, sizeof c->state, "agent");
        snprintf(c->agent, sizeof c->agent, "%s", agent);
        *out = context(c);
    }
    pthread_mutex_unlock(&d->lock);
    if (rc == 0)
        notify(d, NULL, 0);
    return rc;
}

int dialog_context(struct dialog *d, const char *agent, const char *conv, json_t **out)
{
    pthread_mutex_lock(&d->lock);
    struct fconv *c = find(d, conv);
    if (c)
        *out = context(c);
    pthread_mutex_unlock(&d->lock);
    return c ? 0 : fail(KEFU_ENOENT, "no such conversation");
}

int dialog_packet(struct dialog *d, const char *conv, json_t **out)
{
    return dialog_context(d, NULL, conv, out);
}

/* Finds conv and checks it is agent's; lock held. */
static int mine(struct dialog *d, const char *agent, const char *conv, struct fconv **out)
{
    struct fconv *c = find(d, conv);
    if (!c)
        return fail(KEFU_ENOENT, "no such conversation");
    if (strcmp(c->state, "agent") != 0 || strcmp(c->agent, agent) != 0)
        return fail(KEFU_EPERM, "the conversation is not yours");
    *out = c;
    return 0;
}

int dialog_agent_message(struct dialog *d, const char *agent, const char *conv, json_t *req, json_t **out)
{
    pthread_mutex_lock(&d->lock);
    struct fconv *c;
    int rc = mine(d, agent, conv, &c);
    long seq = 0;
    if (rc == 0) {
        seq = append(c, "agent", json_string_value(json_object_get(req, "text")), "agent");
        *out = json_pack("{s:I}", "seq", (json_int_t)seq);
    }
    pthread_mutex_unlock(&d->lock);
    if (rc == 0)
        notify(d, conv, seq);
    return rc;
}

/* Moves one of agent's conversations to state (and queue). */
static int move(struct dialog *d, const char *agent, const char *conv, const char *state, const char *queue,
                json_t **out)
{
    pthread_mutex_lock(&d->lock);
    struct fconv *c;
    int rc = mine(d, agent, conv, &c);
    if (rc == 0) {
        snprintf(c->state, sizeof c->state, "%s", state);
        if (queue)
            snprintf(c->queue, sizeof c->queue, "%s", queue);
        *out = queue ? json_pack("{s:s, s:s}", "state", state, "queue", queue)
                     : json_pack("{s:s}", "state", state);
    }
    pthread_mutex_unlock(&d->lock);
    if (rc == 0)
        notify(d, NULL, 0);
    return rc;
}

int dialog_transfer(struct dialog *d, const char *agent, const char *conv, json_t *req, json_t **out)
{
    return move(d, agent, conv, "queued", json_string_value(json_object_get(req, "queue")), out);
}

int dialog_release(struct dialog *d, const char *agent, const char *conv, json_t **out)
{
    return move(d, agent, conv, "queued", NULL, out);
}

int dialog_resolve(struct dialog *d, const char *agent, const char *conv, json_t **out)
{
    return move(d, agent, conv, "resolved", NULL, out);
}

int dialog_metrics(struct dialog *d, struct text_buf *out)
{
    pthread_mutex_lock(&d->lock);
    long n = d->messages_total;
    pthread_mutex_unlock(&d->lock);
    return metrics_printf(out, "# TYPE kefu_messages_total counter\nkefu_messages_total %ld\n", n);
}

int dialog_health(struct dialog *d, json_t **out)
{
    pthread_mutex_lock(&d->lock);
    size_t n = rules_count(d->rs);
    pthread_mutex_unlock(&d->lock);
    *out = json_pack("{s:s, s:{s:I}}", "status", "ok", "rules", "intents", (json_int_t)n);
    return 0;
}

/* The figures of the day: the fake counts only conversations and messages. */
int dialog_stats(struct dialog *d, long long since, json_t **out)
{
    pthread_mutex_lock(&d->lock);
    *out = json_pack("{s:I, s:I, s:i, s:I}", "since", (json_int_t)(since < 0 ? 0 : since), "until",
                     (json_int_t)time(NULL), "conversations", d->n, "customer_messages",
                     (json_int_t)d->messages_total);
    pthread_mutex_unlock(&d->lock);
    return 0;
}

/* The fake keeps no customers: every erase is of someone unknown. */
int dialog_erase_customer(struct dialog *d, const char *customer, json_t **out, json_t **convs)
{
    (void)d;
    *out = NULL;
    if (convs)
        *convs = NULL;
    snprintf(last_error, sizeof last_error, "no customer '%s'", customer ? customer : "");
    return KEFU_ENOENT;
}

/* agent accounts: none in the fake */
int dialog_accounts(struct dialog *d, json_t **out)
{
    (void)d;
    *out = json_pack("{s:[]}", "agents");
    return 0;
}

int dialog_account_add(struct dialog *d, json_t *req, json_t **out)
{
    (void)d;
    (void)req;
    *out = NULL;
    snprintf(last_error, sizeof last_error, "the fake keeps no agent accounts");
    return KEFU_EINVAL;
}

int dialog_account_change(struct dialog *d, const char *name, const char *what, json_t **out)
{
    (void)d;
    (void)what;
    *out = NULL;
    snprintf(last_error, sizeof last_error, "no agent account '%s'", name);
    return KEFU_ENOENT;
}

int dialog_agent_presence(struct dialog *d, const char *agent, json_t *req, json_t **out)
{
    (void)d;
    const char *st = json_string_value(json_object_get(req, "status"));
    *out = st ? json_pack("{s:s, s:s}", "agent", agent, "status", st) : NULL;
    return st ? 0 : KEFU_EINVAL;
}
