/* dialog.c — conversations: the per-message pipeline and the state
 * machine bot → queued → agent → resolved (→ bot on the next message).
 * dialog_customer_message() reads like the path in DESIGN.md: load the
 * state; while queued or with an agent, store the message and stay
 * silent; otherwise decide the message (decide.c), check the handoff
 * triggers (a request for a person, a complaint, anger, repeated misses,
 * a rule's directive, the customer's tier), fill the slot the bot asked
 * for, answer, clarify or fall back; then store everything in one batch
 * and reply only after it committed. The server does not wait for the
 * commit: dialog_message_start() hands the batch to the store and the
 * store's completion tells the caller, who then calls
 * dialog_message_finish(); dialog_customer_message() is the same with a
 * wait. Messages of one conversation are serialized by a striped lock
 * and, while one of them commits, by the busy list (dialog_lock()); the
 * agent side is in dialog_agent.c. */
#include "dialog_int.h"
#include "jsonw.h"

#include "action.h"
#include "agents.h"
#include "decide.h"
#include "kefu.h"
#include "log.h"
#include "redact.h"
#include "text.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>

/* A customer's last_seen moves with their messages in steps of this many
 * seconds: one profile write a minute, not one per message. */
#define DIALOG_SEEN_STEP 60

const char *const dialog_src_names[N_SRC] = {"rule",    "example", "kb",    "clarify", "fallback",
                                             "handoff", "queued",  "agent", "feedback"};
const char *const dialog_why_names[N_WHY] = {"requested", "complaint", "anger",        "misses",
                                             "tier",      "rule",      "action_failed"};

static _Thread_local char err_buf[256];

const char *dialog_error(void)
{
    return err_buf;
}

int dialog_fail(int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err_buf, sizeof err_buf, fmt, ap);
    va_end(ap);
    return code;
}

/* ---- localized texts ---- */

struct say {
    const char *key, *en, *zh, *hant;
};

static const struct say texts[] = {
    {"greeting", "Hello! I'm the shop's assistant. How can I help you today?",
     "您好！我是智能客服助手，请问有什么可以帮您？", "您好！我是智能客服助手，請問有什麼可以幫您？"},
    {"greeting2", "Hello! I'm the shop's assistant. How can I help you? 您好！请问有什么可以帮您？", NULL,
     NULL},
    {"fallback",
     "Sorry, I didn't quite get that. Could you say it another way? You can also ask for a person at any "
     "time.",
     "抱歉，我没太明白您的意思，能换个说法吗？您也可以随时说“转人工”。",
     "抱歉，我沒太明白您的意思，能換個說法嗎？您也可以隨時說「轉人工」。"},
    {"handoff",
     "I'm connecting you with a customer service agent. They will see our conversation so far, so you won't "
     "need to repeat anything.",
     "正在为您转接人工客服，客服可以看到之前的对话内容，您无需重复描述。",
     "正在為您轉接人工客服，客服可以看到之前的對話內容，您無需重複描述。"},
    {"closed1", "Our agents are available ", "人工客服服务时间为 ", "人工客服服務時間為 "},
    {"always", "around the clock", "24 小时", "24 小時"},
    {"beijing", "Beijing time", "北京时间", "北京時間"},
    {"closed2", ". Please leave your message here and we'll reply as soon as we're back.",
     "。请在此留言，客服上线后会尽快回复您。", "。請在此留言，客服上線後會盡快回覆您。"},
    {"busy",
     "All our agents are busy at the moment; you're in the queue and an agent will reply here as soon as one "
     "is free.",
     "目前客服均在忙，您已在排队中，客服空闲后会第一时间在这里回复您。",
     "目前客服均在忙，您已在排隊中，客服空閒後會第一時間在這裡回覆您。"},
    {"clarify", "Did you mean one of these?", "您是想问以下哪一个？", "您是想問以下哪一個？"},
    {"carry1", "What would you like to do about ", "关于 ", "關於 "},
    {"carry2", "?", "，请问您需要办理什么？", "，請問您需要辦理什麼？"},
    {"survey",
     "This conversation has been resolved. How satisfied were you? Reply with a number from 1 (poor) to 5 "
     "(excellent).",
     "本次服务已结束。请为我们的服务打分：回复 1（很差）到 5（很好）。",
     "本次服務已結束。請為我們的服務評分：回覆 1（很差）到 5（很好）。"},
    {"thanks", "Thank you for your feedback!", "感谢您的评价！", "感謝您的評價！"},
    {"joined", "An agent has joined the conversation.", "人工客服已接入对话。", "人工客服已接入對話。"},
    {"transfer",
     "I'm transferring you to a colleague who can help with this; they will see our conversation.",
     "正在为您转接相关同事，对方可以看到之前的对话。", "正在為您轉接相關同事，對方可以看到之前的對話。"},
    {"released", "Your conversation is back in the queue; the next available agent will continue.",
     "您的对话已重新排队，下一位空闲客服将继续为您服务。",
     "您的對話已重新排隊，下一位空閒客服將繼續為您服務。"},
};

const char *dialog_say(const char *locale, const char *key)
{
    for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++) {
        const struct say *s = &texts[i];
        if (strcmp(s->key, key) != 0)
            continue;
        if (locale && strcmp(locale, "zh-hant") == 0 && s->hant)
            return s->hant;
        if (locale && strncmp(locale, "zh", 2) == 0 && s->zh)
            return s->zh;
        return s->en;
    }
    return "";
}

/* ---- small helpers ---- */

long long dialog_now(struct dialog *d)
{
    return d->now ? d->now(d->now_ctx) : (long long)time(NULL);
}

static unsigned stripe(const char *id)
{
    unsigned h = 2166136261u;
    for (; *id; id++)
        h = (h ^ (unsigned char)*id) * 16777619u;
    return h % CONV_LOCKS;
}

static int committing(struct dialog *d, unsigned k, const char *id);

/* A message of id waiting for its action does not hold the caller up (it
 * could not: its turn resumes under this stripe's lock). That is safe
 * because actions run only for the bot, so the committed state is then bot
 * or resolved, and every caller (an agent's call, an escalation) writes
 * only a conversation queued or with an agent: it answers from the
 * committed state, as if it came just before that message, and changes
 * nothing the message's turn read. Another node's change is caught by the
 * shared store's conditional write (store_conv.was). */
void dialog_lock(struct dialog *d, const char *id)
{
    unsigned k = stripe(id);
    pthread_mutex_lock(&d->conv_lock[k]);
    pthread_mutex_lock(&d->busy_lock);
    while (committing(d, k, id)) /* the previous message of id is committing */
        pthread_cond_wait(&d->busy_cond, &d->busy_lock);
    pthread_mutex_unlock(&d->busy_lock);
}

void dialog_unlock(struct dialog *d, const char *id)
{
    pthread_mutex_unlock(&d->conv_lock[stripe(id)]);
}

void dialog_notify(struct dialog *d, const char *conv, long seq)
{
    pthread_mutex_lock(&d->notify_lock); /* dialog_set_notify() waits for a call in progress */
    if (d->notify)
        d->notify(d->notify_ctx, conv, seq);
    pthread_mutex_unlock(&d->notify_lock);
}

void dialog_set_notify(struct dialog *d, dialog_notify_fn fn, void *ctx)
{
    pthread_mutex_lock(&d->notify_lock); /* the store's listener thread may be calling */
    d->notify = fn;
    d->notify_ctx = ctx;
    pthread_mutex_unlock(&d->notify_lock);
}

/* Refuses conversation id for the store's rc (an id too long to exist: KEFU_ENOENT). */
static int conv_refusal(const char *id, int rc)
{
    if (rc == KEFU_ENOENT)
        return dialog_fail(rc, "no conversation '%s'", id ? id : "");
    return dialog_fail(rc, "cannot read conversation '%s'", id);
}

static int conv_id_ok(const char *id)
{
    return id && *id && strlen(id) < sizeof((struct store_conv *)0)->id;
}

int dialog_load(struct dialog *d, const char *id, struct store_conv *c)
{
    memset(c, 0, sizeof *c);
    int rc = conv_id_ok(id) ? store_get_conv(d->st, id, c) : KEFU_ENOENT;
    return rc < 0 ? conv_refusal(id, rc) : 0;
}

int dialog_redact(struct dialog *d, const char **text, char **owned)
{
    *owned = NULL;
    if (!d->redact || !*text)
        return 0;
    if (redact_text(*text, strlen(*text), d->redact, owned, NULL) < 0)
        return dialog_fail(KEFU_ENOMEM, "out of memory");
    *text = *owned;
    return 0;
}

int dialog_req_text(json_t *req, const char *key, size_t max, int required, const char **out)
{
    json_t *v = json_object_get(req, key);
    *out = NULL;
    if (!v || json_is_null(v)) {
        if (required)
            return dialog_fail(KEFU_EINVAL, "missing field '%s'", key);
        return 0;
    }
    if (!json_is_string(v))
        return dialog_fail(KEFU_EINVAL, "field '%s' must be a string", key);
    const char *s = json_string_value(v);
    size_t n = json_string_length(v);
    if (n > max)
        return dialog_fail(KEFU_ERANGE, "field '%s' is longer than %zu bytes", key, max);
    if (!text_utf8_valid(s, n))
        return dialog_fail(KEFU_EUTF8, "field '%s' is not valid utf-8", key);
    if (required && n == 0)
        return dialog_fail(KEFU_EINVAL, "field '%s' is empty", key);
    *out = s;
    return 0;
}

/* Fills buf with 2*n hex digits of randomness from getrandom(). */
static int random_hex(char *buf, size_t n)
{
    unsigned char raw[32];
    size_t got = 0;
    if (n > sizeof raw)
        return KEFU_EINVAL;
    while (got < n) {
        ssize_t r = getrandom(raw + got, n - got, 0);
        if (r < 0 && errno != EINTR)
            return KEFU_EIO;
        if (r > 0)
            got += (size_t)r;
    }
    for (size_t i = 0; i < n; i++)
        snprintf(buf + 2 * i, 3, "%02x", raw[i]);
    return 0;
}

/* ---- business hours ---- */

/* Parses "HH:MM-HH:MM" into minutes of the day. */
static int parse_hours(const char *s, int *open, int *close)
{
    int h1, m1, h2, m2;
    char tail;
    if (sscanf(s, "%d:%d-%d:%d%c", &h1, &m1, &h2, &m2, &tail) != 4 || h1 < 0 || h1 > 24 || h2 < 0 ||
        h2 > 24 || m1 < 0 || m1 > 59 || m2 < 0 || m2 > 59)
        return KEFU_EINVAL;
    *open = h1 * 60 + m1;
    *close = h2 * 60 + m2;
    return 0;
}

int dialog_hours_open(struct dialog *d, long long now)
{
    if (d->open_min < 0)
        return 1;
    long long m = ((now / 60 + d->tz_offset_min) % 1440 + 1440) % 1440;
    if (d->open_min <= d->close_min)
        return m >= d->open_min && m < d->close_min;
    return m >= d->open_min || m < d->close_min; /* over midnight */
}

void dialog_hours_text(const char *hours, int tz_offset_min, const char *locale, char *buf, size_t cap)
{
    int open, close;
    if (!hours || !*hours || parse_hours(hours, &open, &close) < 0) {
        snprintf(buf, cap, "%s", dialog_say(locale, "always"));
        return;
    }
    int zh = locale && strncmp(locale, "zh", 2) == 0, off = abs(tz_offset_min);
    char tz[32];
    if (tz_offset_min == 480)
        snprintf(tz, sizeof tz, "%s", dialog_say(locale, "beijing"));
    else if (off % 60)
        snprintf(tz, sizeof tz, "UTC%c%d:%02d", tz_offset_min < 0 ? '-' : '+', off / 60, off % 60);
    else if (off)
        snprintf(tz, sizeof tz, "UTC%c%d", tz_offset_min < 0 ? '-' : '+', off / 60);
    else
        snprintf(tz, sizeof tz, "UTC");
    snprintf(buf, cap, "%d:%02d–%d:%02d%s%s%s", open / 60, open % 60, close / 60, close % 60,
             zh ? "（" : " (", tz, zh ? "）" : ")");
}

/* "Our agents are available 9:00–22:00 (Beijing time). Please leave ..." */
static void closed_notice(struct dialog *d, const char *locale, char *buf, size_t cap)
{
    char hours[96];
    dialog_hours_text(d->hours, d->tz_offset_min, locale, hours, sizeof hours);
    snprintf(buf, cap, "%s%s%s", dialog_say(locale, "closed1"), hours, dialog_say(locale, "closed2"));
}

/* ---- rules and workers ---- */

/* Brings w up to the running rule set: a new reference and a fresh copy of its examples. */
static void worker_sync(struct dialog *d, struct dialog_worker *w)
{
    pthread_mutex_lock(&d->rules_lock);
    if (w->rs != d->rs) { /* w's reference keeps its set alive, so the pointers cannot be reused */
        kb_examples_free(w->ex);
        w->ex = NULL;
        rules_unref(w->rs);
        w->rs = rules_ref(d->rs);
        classify_unref(w->clf);
        w->clf = classify_ref(d->clf);
        if (d->ex && kb_examples_clone(d->ex, &w->ex) < 0)
            w->ex = NULL; /* the examples stage is skipped */
    }
    pthread_mutex_unlock(&d->rules_lock);
    if (!w->kb && d->kb_path && kb_open(d->kb_path, 1, &w->kb) < 0)
        w->kb = NULL;
}

static void worker_free(struct dialog_worker *w)
{
    kb_examples_free(w->ex);
    classify_unref(w->clf);
    rules_unref(w->rs);
    kb_close(w->kb);
    router_scratch_free(w->sc);
    free(w);
}

struct dialog_worker *dialog_worker_get(struct dialog *d)
{
    pthread_mutex_lock(&d->workers_lock);
    struct dialog_worker *w = d->workers;
    if (w)
        d->workers = w->next;
    pthread_mutex_unlock(&d->workers_lock);
    if (!w && (w = kefu_calloc(1, sizeof *w)) && !(w->sc = router_scratch_create())) {
        free(w);
        w = NULL;
    }
    if (w)
        worker_sync(d, w);
    return w;
}

void dialog_worker_put(struct dialog *d, struct dialog_worker *w)
{
    pthread_mutex_lock(&d->workers_lock);
    w->next = d->workers;
    d->workers = w;
    pthread_mutex_unlock(&d->workers_lock);
}

/* Trains (or loads from data/models) the classifier of rs; NULL when it
 * cannot, and answers go on without that stage. */
static struct classify *build_classifier(struct dialog *d, const struct rules *rs)
{
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/models", d->data_dir);
    struct classify_opts o;
    classify_opts_default(&o);
    o.cache_dir = dir;
    struct classify *m = NULL;
    struct classify_info info;
    int rc = classify_build(rs, &o, &m, &info);
    if (rc < 0) {
        log_msg(LOG_LEVEL_WARN, "cannot train the classifier: %s; answering without it", kefu_strerror(rc));
        return NULL;
    }
    if (m)
        log_msg(LOG_LEVEL_INFO, "classifier %s: %zu intents, %zu features, %zu bytes, %.0f ms",
                info.cached ? "loaded" : "trained", info.classes, info.features, info.bytes, info.train_ms);
    return m;
}

int dialog_reload(struct dialog *d, struct rules_diag *diag)
{
    struct rules *fresh = NULL;
    int rc = rules_load_dir(d->rules_dir, diag, &fresh);
    if (rc < 0)
        return dialog_fail(rc, "cannot load rules from '%s'; the running rules stay", d->rules_dir);
    if (d->actions && !d->actions_lax && rules_check_actions(fresh, actions_known_fn, d->actions, diag) > 0) {
        rules_unref(fresh);
        return dialog_fail(KEFU_ESYNTAX,
                           "the rules name actions the server does not know; the running rules stay");
    }
    struct kb_examples *ex = NULL;
    if (kb_examples_build(fresh, &ex) < 0)
        ex = NULL; /* answers still work without the examples stage */
    /* trained here, on the reloading thread: messages go on with the running set meanwhile */
    struct classify *clf = build_classifier(d, fresh);
    pthread_mutex_lock(&d->rules_lock);
    struct rules *old = d->rs;
    struct kb_examples *old_ex = d->ex;
    struct classify *old_clf = d->clf;
    d->rs = fresh;
    d->ex = ex;
    d->clf = clf;
    d->rules_loaded_at = dialog_now(d);
    pthread_mutex_unlock(&d->rules_lock);
    kb_examples_free(old_ex);
    classify_unref(old_clf); /* workers still using it hold their own reference */
    rules_unref(old);        /* requests still using it hold their own reference */
    kefu_heap_trim();        /* what the old set held, unless a request frees it later */
    return 0;
}

/* ---- open and close ---- */

void dialog_config_default(struct dialog_config *c)
{
    memset(c, 0, sizeof *c);
    c->data_dir = "data";
    c->rules_dir = "rules";
    c->corpus_dir = "corpus";
    c->miss_limit = 2;
    c->tz_offset_min = 0;
    c->group_commit = 1;
}

static char *dup_or_null(const char *s)
{
    return s ? kefu_strndup(s, strlen(s)) : NULL;
}

/* Parses "name:token[:skills[:capacity]],..." into agents and the queue. */
static int parse_agents(struct dialog *d, const char *spec)
{
    if (!spec || !*spec)
        return 0;
    size_t n = 1;
    for (const char *p = spec; *p; p++)
        n += *p == ',';
    if (!(d->agents = kefu_calloc(n, sizeof *d->agents)))
        return KEFU_ENOMEM;
    for (const char *p = spec; *p;) {
        size_t len = strcspn(p, ",");
        char item[512], *save = NULL;
        if (len >= sizeof item)
            return dialog_fail(KEFU_EINVAL, "agent entry too long");
        memcpy(item, p, len);
        item[len] = 0;
        p += len + (p[len] == ',');
        if (!*item)
            continue;
        char *name = strtok_r(item, ":", &save), *token = strtok_r(NULL, ":", &save);
        char *skills = strtok_r(NULL, ":", &save), *cap = strtok_r(NULL, ":", &save);
        struct dialog_agent *a = &d->agents[d->n_agents];
        if (!name || !token || strlen(token) < 16 || strlen(token) >= sizeof a->token)
            return dialog_fail(KEFU_EINVAL, "agent '%s' needs name:token with a token of 16-79 characters",
                               name ? name : "");
        int capacity = cap ? atoi(cap) : 3;
        snprintf(a->name, sizeof a->name, "%s", name);
        snprintf(a->token, sizeof a->token, "%s", token);
        snprintf(a->skills, sizeof a->skills, "%s", skills ? skills : "*");
        a->token_len = strlen(a->token);
        if (queue_agent_add(d->q, a->name, a->skills, capacity) < 0)
            return dialog_fail(KEFU_EINVAL, "agent '%s' is repeated or has a bad capacity", name);
        d->n_agents++;
    }
    return 0;
}

struct open_convs {
    struct store_conv *v;
    size_t n, cap;
};

/* Copies one open conversation (without its memory) for rebuild_queue(). */
static int collect_open(void *ctx, const struct store_conv *c)
{
    struct open_convs *o = ctx;
    if (o->n == o->cap) {
        size_t cap = o->cap ? o->cap * 2 : 64;
        struct store_conv *v = kefu_realloc(o->v, cap * sizeof *v);
        if (!v)
            return 1;
        o->v = v, o->cap = cap;
    }
    o->v[o->n] = *c;
    o->v[o->n++].memory = NULL;
    return 0;
}

/* A conversation held by an agent who is no longer configured waits again. */
static int unhold_stale(struct dialog *d, struct store_conv *c)
{
    struct store_batch b;
    store_batch_init(&b);
    c->state = STORE_QUEUED;
    *c->agent = 0;
    store_put_conv(&b, c, NULL);
    store_add_event(&b, c->id, dialog_now(d), "release", NULL, c->queue, "agent removed");
    return store_write(d->st, &b);
}

/* Fills the in-memory queue from the conversations the store has open
 * (collected first: no store call runs inside another's callback). */
static int rebuild_queue(struct dialog *d)
{
    struct open_convs o = {0};
    int rc = store_open_convs(d->st, collect_open, &o);
    for (size_t i = 0; i < o.n && rc == 0; i++) {
        struct store_conv *c = &o.v[i];
        c->memory = NULL; /* store_put_conv() writes "{}" for NULL: keep the stored memory */
        if (c->state == STORE_AGENT && !queue_agent_serves(d->q, c->agent, c->queue))
            rc = unhold_stale(d, c);
        if (rc == 0)
            rc = dialog_enqueue(d, c);
    }
    free(o.v);
    return rc < 0 ? dialog_fail(rc, "cannot rebuild the queue from the store") : 0;
}

/* Imports the corpus (if there is one) into data_dir/kb.db; workers open it read-only. */
static int open_kb(struct dialog *d, struct rules_diag *diag)
{
    char path[4096];
    struct stat sb;
    snprintf(path, sizeof path, "%s/kb.db", d->data_dir);
    if (d->corpus_dir && stat(d->corpus_dir, &sb) == 0 && S_ISDIR(sb.st_mode)) {
        struct kb *kb;
        struct kb_import_stats is;
        int rc = kb_open(path, 0, &kb);
        if (rc == 0)
            rc = kb_import(kb, d->corpus_dir, diag, NULL, NULL, &is);
        kb_close(kb);
        if (rc < 0)
            return dialog_fail(rc, "cannot import the articles in '%s' into '%s'", d->corpus_dir, path);
    }
    if (stat(path, &sb) == 0 && !(d->kb_path = kefu_strndup(path, strlen(path))))
        return KEFU_ENOMEM;
    return 0;
}

/* store_change_fn: another node changed conv; whoever waits here on it
 * (long-polls, SSE) hears now, and so do the queue's watchers when it is
 * in the queue's hands (or when anything may have changed). */
static void store_changed(void *ctx, const char *conv, long seq, int state)
{
    struct dialog *d = ctx;
    if (conv)
        dialog_notify(d, conv, seq);
    if (!conv || state != STORE_BOT) {
        atomic_store(&d->synced_ms, 0); /* the next position is read from the database */
        dialog_notify(d, NULL, 0);
    }
}

static int open_parts(struct dialog *d, const struct dialog_config *cfg, struct rules_diag *diag)
{
    if (mkdir(d->data_dir, 0700) < 0 && errno != EEXIST)
        return dialog_fail(KEFU_EIO, "cannot create data directory '%s'", d->data_dir);
    if (cfg->hours && *cfg->hours && parse_hours(cfg->hours, &d->open_min, &d->close_min) < 0)
        return dialog_fail(KEFU_EINVAL, "business hours '%s' are not HH:MM-HH:MM", cfg->hours);
    int rc = rules_load_dir(d->rules_dir, diag, &d->rs);
    if (rc < 0)
        return dialog_fail(rc, "cannot load rules from '%s'", d->rules_dir);
    if (d->actions && !d->actions_lax && rules_check_actions(d->rs, actions_known_fn, d->actions, diag) > 0)
        return dialog_fail(KEFU_ESYNTAX, "the rules name actions the server does not know");
    d->rules_loaded_at = dialog_now(d);
    if (kb_examples_build(d->rs, &d->ex) < 0)
        d->ex = NULL;
    d->clf = build_classifier(d, d->rs);
    if ((rc = open_kb(d, diag)) < 0)
        return rc;
    if (!(d->q = queue_create()))
        return KEFU_ENOMEM;
    if ((rc = parse_agents(d, cfg->agents)) < 0)
        return rc;
    if ((rc = dialog_outbox_init(d, cfg)) < 0)
        return dialog_fail(rc, "cannot keep the webhook targets (at most %d)", DIALOG_OUTBOX_MAX);
    char path[4096];
    snprintf(path, sizeof path, "%s/kefu.db", d->data_dir);
    struct store_opts so = {.group_commit = cfg->group_commit};
    if ((rc = store_open(cfg->store ? cfg->store : path, &so, &d->st)) < 0)
        return dialog_fail(rc, "cannot open the store '%s'", cfg->store ? "(the --store URI)" : path);
    if ((rc = store_listen(d->st, store_changed, d)) < 0)
        return dialog_fail(rc, "cannot listen to the store");
    if ((rc = rebuild_queue(d)) < 0)
        return rc;
    return dialog_service_open(d, cfg, diag);
}

int dialog_open(const struct dialog_config *cfg, struct rules_diag *diag, struct dialog **out)
{
    *out = NULL;
    struct dialog *d = kefu_calloc(1, sizeof *d);
    if (!d)
        return KEFU_ENOMEM;
    pthread_mutex_init(&d->rules_lock, NULL);
    pthread_mutex_init(&d->workers_lock, NULL);
    for (int i = 0; i < CONV_LOCKS; i++)
        pthread_mutex_init(&d->conv_lock[i], NULL);
    pthread_mutex_init(&d->busy_lock, NULL);
    pthread_mutex_init(&d->spare_lock, NULL);
    pthread_mutex_init(&d->notify_lock, NULL);
    pthread_mutex_init(&d->m.fr_lock, NULL);
    pthread_mutex_init(&d->watch_lock, NULL);
    pthread_cond_init(&d->watch_cond, NULL);
    pthread_cond_init(&d->busy_cond, NULL);
    pthread_mutex_init(&d->accounts_lock, NULL);
    d->open_min = -1;
    d->miss_limit = cfg->miss_limit > 0 ? cfg->miss_limit : 2;
    d->tz_offset_min = cfg->tz_offset_min;
    d->redact = cfg->redact;
    d->now = cfg->now;
    d->now_ctx = cfg->now_ctx;
    d->actions = cfg->actions;
    d->actions_lax = cfg->actions_lax;
    d->show_calls = cfg->show_calls;
    d->data_dir = dup_or_null(cfg->data_dir ? cfg->data_dir : "data");
    d->rules_dir = dup_or_null(cfg->rules_dir ? cfg->rules_dir : "rules");
    d->corpus_dir = dup_or_null(cfg->corpus_dir);
    d->hours = dup_or_null(cfg->hours && *cfg->hours ? cfg->hours : "");
    int rc = d->data_dir && d->rules_dir && d->hours ? open_parts(d, cfg, diag) : KEFU_ENOMEM;
    if (rc < 0) {
        dialog_close(d);
        return rc;
    }
    *out = d;
    return 0;
}

static void spare_free(struct dialog *d);

void dialog_close(struct dialog *d)
{
    if (!d)
        return;
    dialog_service_close(d); /* the watcher first: it reads the store and the queue */
    store_close(d->st);      /* commits what is queued */
    queue_free(d->q);
    for (struct dialog_worker *w = d->workers, *next; w; w = next) {
        next = w->next;
        worker_free(w);
    }
    kb_examples_free(d->ex);
    classify_unref(d->clf);
    rules_unref(d->rs);
    free(d->kb_path);
    pthread_mutex_destroy(&d->rules_lock);
    pthread_mutex_destroy(&d->workers_lock);
    for (int i = 0; i < CONV_LOCKS; i++)
        pthread_mutex_destroy(&d->conv_lock[i]);
    pthread_mutex_destroy(&d->busy_lock);
    spare_free(d);
    pthread_mutex_destroy(&d->spare_lock);
    pthread_mutex_destroy(&d->notify_lock);
    pthread_mutex_destroy(&d->m.fr_lock);
    pthread_mutex_destroy(&d->watch_lock);
    pthread_cond_destroy(&d->watch_cond);
    pthread_cond_destroy(&d->busy_cond);
    free(d->agents);
    for (struct dialog_agent *a = d->accounts, *next; a; a = next) {
        next = a->next;
        free(a);
    }
    pthread_mutex_destroy(&d->accounts_lock);
    dialog_outbox_free(d);
    free(d->data_dir);
    free(d->rules_dir);
    free(d->corpus_dir);
    free(d->hours);
    free(d);
}

struct actions *dialog_actions(struct dialog *d)
{
    return d->actions;
}

/* ---- the queue ---- */

int dialog_enqueue(struct dialog *d, const struct store_conv *c)
{
    struct store_customer cu;
    int vip = 0, gold = 0;
    if (store_get_customer(d->st, c->customer, &cu) == 0) {
        vip = strcmp(cu.tier, "vip") == 0;
        gold = strcmp(cu.tier, "gold") == 0;
    }
    struct queue_entry e = {c->id, c->queue, c->priority, vip, gold, c->anger, c->queued_at};
    int rc = queue_push(d->q, &e);
    if (rc == 0 && c->state == STORE_AGENT && *c->agent && queue_assign(d->q, c->id, c->agent) < 0)
        rc = 0; /* the agent is no longer configured: it waits for another */
    return rc;
}

/* The head-start fields of e for c: its customer's tier. */
static void entry_tier(struct dialog *d, const struct store_conv *c, struct queue_entry *e)
{
    struct store_customer cu;
    if (store_get_customer(d->st, c->customer, &cu) == 0) {
        e->vip = strcmp(cu.tier, "vip") == 0;
        e->gold = strcmp(cu.tier, "gold") == 0;
    }
}

int dialog_sync_queue(struct dialog *d, int max_age_ms)
{
    if (!store_shared(d->st))
        return 0; /* this process is the only writer: the queue in memory is the truth */
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    long long ms = (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
    if (max_age_ms > 0 && ms - atomic_load(&d->synced_ms) < max_age_ms)
        return 0;
    atomic_store(&d->synced_ms, ms);
    struct open_convs o = {0};
    int rc = store_open_convs(d->st, collect_open, &o);
    struct queue_entry *e = o.n ? kefu_calloc(o.n, sizeof *e) : NULL;
    const char **holder = o.n ? kefu_calloc(o.n, sizeof *holder) : NULL;
    if (rc == 0 && o.n && (!e || !holder))
        rc = KEFU_ENOMEM;
    for (size_t k = 0; k < o.n && rc == 0; k++) {
        const struct store_conv *c = &o.v[k];
        e[k] = (struct queue_entry){c->id, c->queue, c->priority, 0, 0, c->anger, c->queued_at};
        if (!queue_has(d->q, c->id, c->queue, c->queued_at))
            entry_tier(d, c, &e[k]); /* only a new one needs its order computed */
        holder[k] = c->state == STORE_AGENT && *c->agent ? c->agent : NULL;
    }
    if (rc == 0)
        rc = queue_sync(d->q, e, holder, o.n, dialog_now(d) - 2);
    free(e);
    free(holder);
    free(o.v);
    return rc < 0 ? dialog_fail(rc, "cannot read the queue from the store") : 0;
}

/* {name, position, wait_s} of a queued conversation, or NULL. */
static json_t *queue_json(struct dialog *d, const char *conv, long long now)
{
    if (dialog_sync_queue(d, DIALOG_QUEUE_SYNC_MS) < 0)
        return NULL;
    int pos;
    long long wait;
    char name[QUEUE_NAME_MAX];
    if (queue_position(d->q, conv, now, &pos, &wait, name) < 0)
        return NULL;
    return json_pack("{s:s, s:i, s:I}", "name", name, "position", pos, "wait_s", (json_int_t)wait);
}

/* ---- creating a conversation ---- */

/* Reads {channel, customer:{id, name?, tier?}, locale?} into c and cu. */
static int read_create(json_t *req, struct store_conv *c, struct store_customer *cu)
{
    const char *channel, *id, *name, *tier, *locale;
    json_t *jc = json_object_get(req, "customer");
    if (!json_is_object(req) || !json_is_object(jc))
        return dialog_fail(KEFU_EINVAL, "expected {channel, customer:{id}}");
    int rc;
    if ((rc = dialog_req_text(req, "channel", sizeof c->channel - 1, 1, &channel)) < 0 ||
        (rc = dialog_req_text(jc, "id", sizeof cu->id - 1, 1, &id)) < 0 ||
        (rc = dialog_req_text(jc, "name", sizeof cu->name - 1, 0, &name)) < 0 ||
        (rc = dialog_req_text(jc, "tier", sizeof cu->tier - 1, 0, &tier)) < 0 ||
        (rc = dialog_req_text(req, "locale", sizeof c->locale - 1, 0, &locale)) < 0)
        return rc;
    snprintf(c->channel, sizeof c->channel, "%s", channel);
    snprintf(c->customer, sizeof c->customer, "%s", id);
    snprintf(c->locale, sizeof c->locale, "%s", locale ? locale : "");
    snprintf(cu->id, sizeof cu->id, "%s", id);
    snprintf(cu->name, sizeof cu->name, "%s", name ? name : "");
    snprintf(cu->tier, sizeof cu->tier, "%s", tier ? tier : "");
    return 0;
}

static json_t *message_json(long seq, const char *from, const char *text, const char *source, long long at)
{
    json_t *m = json_pack("{s:I, s:s, s:s, s:I}", "seq", (json_int_t)seq, "from", from, "text", text, "at",
                          (json_int_t)at);
    if (m && source)
        json_object_set_new(m, "source", json_string(source));
    return m;
}

int dialog_conversation_create(struct dialog *d, json_t *req, json_t **out)
{
    struct store_conv c = {0};
    struct store_customer cu = {0};
    *out = NULL;
    int rc = read_create(req, &c, &cu);
    if (rc < 0)
        return rc;
    c.id[0] = 'c';
    if (random_hex(c.id + 1, 10) < 0 || random_hex(c.token, 16) < 0)
        return dialog_fail(KEFU_EIO, "cannot read random bytes");
    long long now = dialog_now(d);
    c.created_at = c.updated_at = cu.first_seen = cu.last_seen = now;
    c.priority = RULES_PRIO_NORMAL;
    c.last_seq = 1;
    c.memory = "{}";
    const char *greeting = dialog_say(c.locale, *c.locale ? "greeting" : "greeting2");
    struct store_msg m = {.seq = 1, .from = "bot", .text = greeting, .source = "greeting", .at = now};
    struct store_batch b;
    store_batch_init(&b);
    store_put_customer(&b, &cu);
    store_put_conv(&b, &c, NULL);
    store_add_message(&b, c.id, &m);
    store_add_event(&b, c.id, now, "created", NULL, NULL, NULL);
    if ((rc = store_write(d->st, &b)) < 0)
        return dialog_fail(rc, "cannot store the new conversation");
    atomic_fetch_add(&d->m.created, 1);
    json_t *msgs = json_array();
    json_array_append_new(msgs, message_json(1, "bot", greeting, "greeting", now));
    *out = json_pack("{s:s, s:s, s:s, s:o}", "id", c.id, "token", c.token, "state", "bot", "messages", msgs);
    dialog_notify(d, c.id, 1);
    return *out ? 0 : KEFU_ENOMEM;
}

/* Compares two strings in time that depends only on their lengths. */
static int same_secret(const char *a, size_t an, const char *b, size_t bn)
{
    unsigned char diff = an != bn;
    size_t n = an < bn ? an : bn;
    for (size_t i = 0; i < n; i++)
        diff |= (unsigned char)(a[i] ^ b[i]);
    return diff == 0;
}

int dialog_customer_auth(struct dialog *d, const char *conv, const char *token)
{
    char want[sizeof((struct store_conv *)0)->token];
    int rc = conv_id_ok(conv) ? store_get_token(d->st, conv, want, sizeof want) : KEFU_ENOENT;
    if (rc < 0) /* only the token: the conversation's memory is not copied */
        return conv_refusal(conv, rc);
    if (!token || !same_secret(token, strlen(token), want, strlen(want)))
        return dialog_fail(KEFU_EPERM, "wrong token for conversation '%s'", conv);
    return 0;
}

const struct dialog_agent *dialog_find_agent(struct dialog *d, const char *name)
{
    for (size_t i = 0; name && i < d->n_agents; i++)
        if (strcmp(d->agents[i].name, name) == 0)
            return &d->agents[i];
    pthread_mutex_lock(&d->accounts_lock);
    const struct dialog_agent *a = d->accounts;
    while (name && a && strcmp(a->name, name) != 0)
        a = a->next;
    pthread_mutex_unlock(&d->accounts_lock);
    return name ? a : NULL;
}

/* The account a, seen for the first time: kept on d->accounts and given its place in the queue. */
static const char *account_seen(struct dialog *d, const struct store_agent *acc)
{
    const struct dialog_agent *known = dialog_find_agent(d, acc->name);
    if (known)
        return known->name;
    struct dialog_agent *a = kefu_calloc(1, sizeof *a);
    if (!a)
        return NULL;
    snprintf(a->name, sizeof a->name, "%s", acc->name);
    snprintf(a->skills, sizeof a->skills, "%s", *acc->skills ? acc->skills : "*");
    pthread_mutex_lock(&d->accounts_lock);
    for (const struct dialog_agent *b = d->accounts; b; b = b->next)
        if (strcmp(b->name, a->name) == 0) { /* another thread was first */
            pthread_mutex_unlock(&d->accounts_lock);
            free(a);
            return b->name;
        }
    queue_agent_add(d->q, a->name, a->skills, acc->capacity > 0 ? acc->capacity : 3);
    a->next = d->accounts;
    d->accounts = a;
    pthread_mutex_unlock(&d->accounts_lock);
    return a->name;
}

/* An agent account of the store whose token hash matches: 0 with *agent set,
 * 0 with *agent NULL (none), or a failure with its reason. */
static int account_auth(struct dialog *d, const char *token, const char **agent)
{
    char hash[65];
    struct store_agent acc;
    agents_token_hash(token, hash);
    int rc = *hash ? store_get_agent(d->st, hash, 1, &acc) : KEFU_ENOENT;
    if (rc == KEFU_ENOENT)
        return 0;
    if (rc < 0)
        return dialog_fail(rc, "cannot read the agent accounts");
    if (acc.disabled)
        return dialog_fail(KEFU_EAUTH, "agent '%s' is disabled", acc.name);
    if (!(*agent = account_seen(d, &acc)))
        return dialog_fail(KEFU_ENOMEM, "out of memory");
    return 0;
}

int dialog_agent_auth(struct dialog *d, const char *token, const char **agent)
{
    *agent = NULL;
    size_t n = token ? strlen(token) : 0;
    for (size_t i = 0; token && i < d->n_agents; i++) /* every token is compared: no early exit */
        if (same_secret(token, n, d->agents[i].token, d->agents[i].token_len))
            *agent = d->agents[i].name;
    int rc = *agent || !token ? 0 : account_auth(d, token, agent);
    if (rc < 0)
        return rc;
    if (!*agent)
        return dialog_fail(KEFU_EAUTH, "unknown agent token");
    queue_agent_seen(d->q, *agent, dialog_now(d));
    return 0;
}

/* ---- one customer message ---- */

/* Everything one customer message needs, from load to reply. */
struct turn {
    struct dialog *d;
    struct store_conv c;
    struct store_customer cu;
    json_t *mem;             /* the conversation's memory without its intents: slots, variants, ... */
    struct dialog_hist hist; /* the memory's intents (dialog_mem.c) */
    const char *text, *client_id;
    const char *cust_id, *cust_name, *cust_tier; /* the message's customer:{id, name?, tier?}, or NULL */
    char *redacted;                              /* the text as redacted (owned), or NULL */
    size_t len;
    const char *locale;
    char locale_buf[16];
    long long now;
    struct rules *rs;
    struct dialog_worker *w;
    /* the outcome */
    int src;     /* SRC_* */
    long intent; /* -1 if none */
    double confidence;
    char reply[DIALOG_MAX_TEXT * 2];
    json_t *quick, *articles; /* arrays, may stay NULL */
    int handoff, why, hprio;  /* a handoff: reason and priority */
    char hqueue[QUEUE_NAME_MAX];
    char notice[512];
    char hours_text[96]; /* {service_hours} as rendered for this turn */
    int feedback;        /* a rating typed after resolve */
    const char *event;   /* "reopen" when a resolved conversation restarts */
    double started;      /* monotonic seconds when the message arrived (bot response time) */
    char variant[32];    /* the A/B variant of the intent's reply this turn answered with, "" if none */
    /* the write, owned until its commit */
    json_t *req, *out; /* the request (a reference) and the answer */
    char conv[40];     /* the conversation asked for */
    char bot_text[DIALOG_MAX_TEXT * 2 + 514];
    char *memory, *packet, *result;
    json_t *hfields; /* the handoff event's fields, NULL without one */
    /* an action the turn waits for: ACT_PROFILE before deciding, ACT_INTENT before answering */
    int act_phase, act_ok, cu_dirty;
    long act_intent;
    const char *act_tpl; /* the intent's reply when no `on` line applies (borrowed from rs) */
    json_t *act_result;  /* the answer (a reference), NULL when it failed */
    char act_outcome[32];
    double act_seconds;
    int act_stubbed;
    json_t *calls;   /* the turn's calls, for an answer's "calls" (d->show_calls), or NULL */
    char field[512]; /* a result field as fill() last rendered it */
    struct dialog_out ev_handoff, ev_rating; /* the turn's outbox events */
    struct store_msg cm, bm;
    struct store_batch b;
};

/* A confidence as answers and memory carry it: four decimals, which the
 * JSON written with JSON_REAL_PRECISION(6) keeps exactly. */
static double shown(double c)
{
    return round(c * 1e4) / 1e4;
}

static const char *intent_name(const struct turn *t, long i)
{
    return i >= 0 ? rules_intent(t->rs, (size_t)i)->name : NULL;
}

/* The topic of intent i: its own, or the part of its name before the first dot. */
static void intent_topic(const struct turn *t, long i, char *buf, size_t cap)
{
    const struct rules_intent *it = rules_intent(t->rs, (size_t)i);
    if (it->topic && *it->topic)
        snprintf(buf, cap, "%s", it->topic);
    else
        snprintf(buf, cap, "%.*s", (int)strcspn(it->name, "."), it->name);
}

/* Guesses the locale of the text; the conversation's when the text does not say. */
static const char *turn_locale(struct turn *t)
{
    size_t letters;
    const char *guess = text_guess_locale(t->text, t->len, &letters);
    if (strcmp(guess, "en") != 0)
        return guess;
    if (letters >= 3 && !(*t->c.locale && strncmp(t->c.locale, "zh", 2) == 0 && letters < 6))
        return "en";
    snprintf(t->locale_buf, sizeof t->locale_buf, "%s", *t->c.locale ? t->c.locale : "en");
    return t->locale_buf;
}

static const char *mem_str(json_t *mem, const char *key)
{
    const char *s = json_string_value(json_object_get(mem, key));
    return s ? s : "";
}

/* The attributes the rules' conditions read: ten of the conversation, the rest attr.NAME. */
#define TURN_ATTRS 32
static void turn_attrs(struct turn *t, struct attr *v, char *misses, struct attrs *a)
{
    size_t n = 0;
    snprintf(misses, 16, "%d", t->c.misses);
    v[n++] = (struct attr){"locale", t->locale};
    v[n++] = (struct attr){"channel", t->c.channel};
    v[n++] = (struct attr){"tier", *t->cu.tier ? t->cu.tier : "regular"};
    v[n++] = (struct attr){"hours", dialog_hours_open(t->d, t->now) ? "open" : "closed"};
    v[n++] = (struct attr){"misses", misses};
    v[n++] = (struct attr){"previous_intent", mem_str(t->mem, "last_intent")};
    v[n++] = (struct attr){"previous_topic", mem_str(t->mem, "last_topic")};
    v[n++] = (struct attr){"customer.id", t->cu.id};
    v[n++] = (struct attr){"customer.name", t->cu.name};
    v[n++] = (struct attr){"customer.tier", t->cu.tier};
    const char *key; /* attr.NAME from the profile action and `set attr.NAME` lines */
    json_t *val;
    json_object_foreach(json_object_get(t->mem, "attrs"), key, val)
    {
        if (n < TURN_ATTRS && json_is_string(val))
            v[n++] = (struct attr){key, json_string_value(val)};
    }
    a->v = v;
    a->n = n;
}

/* Words that mean the customer is angry, matched in the folded text. */
static const char *const anger_words[] = {
    "fuck",   "shit", "wtf",    "furious", "ridiculous", "pissed off", "outrageous", "scam", "rip-off",
    "ripoff", "!!!",  "气死",   "生气",    "愤怒",       "垃圾",       "骗子",       "坑人", "忍无可忍",
    "太过分", "混蛋", "什么破", "破玩意",  "受够了",     "火大",       NULL};

static int angry(const char *norm)
{
    for (int i = 0; anger_words[i]; i++)
        if (strstr(norm, anger_words[i]))
            return 1;
    return 0;
}

/* The remembered slots, with what this message filled for intent i. */
static void remember_slots(struct turn *t, long i)
{
    struct router_slot v[16];
    size_t n = 0;
    if (i < 0 || router_slots(t->rs, t->w->sc, (uint32_t)i, t->text, t->len, v, 16, &n) < 0)
        return;
    json_t *slots = json_object_get(t->mem, "slots");
    if (!json_is_object(slots)) {
        slots = json_object();
        json_object_set_new(t->mem, "slots", slots);
    }
    for (size_t k = 0; k < n; k++)
        json_object_set_new(slots, v[k].name, json_string(v[k].value));
}

/* The first slot of intent i with a question and no value yet, or NULL. */
static const struct rules_slot *missing_slot(struct turn *t, long i)
{
    const struct rules_intent *it = rules_intent(t->rs, (size_t)i);
    json_t *slots = json_object_get(t->mem, "slots");
    for (size_t k = 0; k < it->n_slots; k++) {
        const struct rules_slot *s = &it->slots[k];
        if ((s->ask || s->n_asks) && !json_object_get(slots, s->name))
            return s;
    }
    return NULL;
}

static const char *slot_question(struct turn *t, const struct rules_slot *s)
{
    const char *q = rules_reply_pick(s->asks, s->n_asks, t->locale, 0);
    return q ? q : s->ask ? s->ask : "";
}

/* Adds article id (with its title when the kb has it) to the reply's articles. */
static void add_article(struct turn *t, const char *id, size_t n)
{
    char key[128], title[512];
    snprintf(key, sizeof key, "%.*s", (int)n, id);
    if (!t->articles)
        t->articles = json_array();
    json_t *a = json_pack("{s:s}", "id", key);
    if (t->w && t->w->kb && kb_title(t->w->kb, key, t->locale, title, sizeof title) == 0)
        json_object_set_new(a, "title", json_string(title));
    json_array_append_new(t->articles, a);
}

/* Fills one placeholder of a reply template: {slot} and {customer.name}
 * become their values, {service_hours} the configured hours, {kb:ID} an
 * entry in the reply's articles (and no text). */
static const char *fill(void *ctx, const char *name)
{
    struct turn *t = ctx;
    if (strncmp(name, "kb:", 3) == 0) {
        add_article(t, name + 3, strlen(name + 3));
        return NULL;
    }
    if (strcmp(name, "service_hours") == 0) {
        dialog_hours_text(t->d->hours, t->d->tz_offset_min, t->locale, t->hours_text, sizeof t->hours_text);
        return t->hours_text;
    }
    if (strcmp(name, "customer.name") == 0)
        return t->cu.name;
    const char *v = json_string_value(json_object_get(json_object_get(t->mem, "slots"), name));
    if (!v && t->act_result && action_field(t->act_result, name, t->field, sizeof t->field))
        return t->field; /* a field of the action's answer, as text */
    return v;
}

/* Renders a reply template into t->reply (rules_render() with fill()). */
static void render(struct turn *t, const char *tpl)
{
    size_t o = rules_render(tpl, fill, t, t->reply, sizeof t->reply);
    while (o > 0 && t->reply[o - 1] == ' ') /* a trailing {kb:...} leaves a space */
        t->reply[--o] = 0;
}

/* Sets a pending question for slot s of intent i and asks it. */
static void ask_slot(struct turn *t, long i, const struct rules_slot *s)
{
    snprintf(t->c.pending, sizeof t->c.pending, "%s %s", intent_name(t, i), s->name);
    snprintf(t->reply, sizeof t->reply, "%s", slot_question(t, s));
}

/* Hands the conversation to queue name with priority prio for reason why. */
static void hand_off(struct turn *t, int why, const char *name, int prio)
{
    t->handoff = 1;
    t->why = why;
    t->hprio = prio;
    t->src = SRC_HANDOFF;
    snprintf(t->hqueue, sizeof t->hqueue, "%s", name && *name ? name : "general");
    if (!*t->reply)
        snprintf(t->reply, sizeof t->reply, "%s", dialog_say(t->locale, "handoff"));
}

/* A bot miss: counted; the limit (or a VIP's first miss) hands off. */
static void miss(struct turn *t, const char *question)
{
    t->c.misses++;
    t->src = SRC_FALLBACK;
    snprintf(t->reply, sizeof t->reply, "%s", question ? question : dialog_say(t->locale, "fallback"));
    if (strcmp(t->cu.tier, "vip") == 0) {
        *t->reply = 0;
        hand_off(t, WHY_TIER, "vip", RULES_PRIO_HIGH);
    } else if (t->c.misses >= t->d->miss_limit) {
        *t->reply = 0;
        hand_off(t, WHY_MISSES, "general", RULES_PRIO_NORMAL);
    }
}

/* The reply template of intent i's A/B variant for this conversation: the one it was given
 * before (kept in memory as variants.INTENT) while that variant exists, else one drawn by
 * weight from the conversation id; t->variant names it. NULL when the variant has no reply
 * for the locale. */
static const char *variant_reply(struct turn *t, long i)
{
    const struct rules_intent *it = rules_intent(t->rs, (size_t)i);
    json_t *vs = json_object_get(t->mem, "variants");
    const struct rules_variant *v = rules_variant_find(it, json_string_value(json_object_get(vs, it->name)));
    if (!v)
        v = rules_variant_pick(it, t->c.id);
    if (!json_is_object(vs))
        json_object_set_new(t->mem, "variants", vs = json_object());
    json_object_set_new(vs, it->name, json_string(v->name));
    snprintf(t->variant, sizeof t->variant, "%s", v->name);
    return rules_reply_pick_variant(it->replies, it->n_replies, t->locale, v->name, 0);
}

enum { ACT_NONE, ACT_PROFILE, ACT_INTENT };

/* Answers with intent i: asks for a missing slot first, else renders its
 * reply, or (an intent with an action) leaves the answer to apply_action(). */
static void answer_intent(struct turn *t, long i, const char *tpl, int src, double confidence)
{
    const struct rules_slot *s = missing_slot(t, i);
    t->src = src;
    t->intent = i;
    t->confidence = confidence;
    t->c.misses = 0;
    *t->c.pending = 0;
    if (!s && src != SRC_HANDOFF && rules_intent(t->rs, (size_t)i)->n_variants)
        tpl = variant_reply(t, i);
    if (s) {
        ask_slot(t, i, s);
    } else if (rules_intent(t->rs, (size_t)i)->action && src != SRC_HANDOFF) {
        t->act_phase = ACT_INTENT; /* the answer waits for the action's result */
        t->act_intent = i;
        t->act_tpl = tpl;
    } else if (tpl) {
        render(t, tpl);
    } else if (src != SRC_HANDOFF) {
        miss(t, NULL); /* an intent with nothing to say for this locale has not answered */
    }
}

/* Why a rule's handoff fired: the customer asked, complained, or the rule said so. */
static int rule_reason(struct turn *t, long i)
{
    char topic[64];
    intent_topic(t, i, topic, sizeof topic);
    if (strcmp(topic, "human") == 0)
        return WHY_REQUESTED;
    if (strcmp(topic, "complaint") == 0)
        return WHY_COMPLAINT;
    return WHY_RULE;
}

/* "Did you mean A or B?" with the candidates' labels (an example in the
 * customer's script, or an article's title) as quick replies. */
static void clarify(struct turn *t, const struct decision *dec)
{
    t->src = SRC_CLARIFY;
    t->confidence = dec->confidence;
    snprintf(t->reply, sizeof t->reply, "%s", dialog_say(t->locale, "clarify"));
    t->quick = json_array();
    for (int k = 0; k < 2; k++) {
        const char *label = decide_label(t->rs, &dec->clarify[k], t->locale);
        if (label)
            json_array_append_new(t->quick, json_string(label));
    }
}

/* The pending question: fills the slot if this message carries it. Returns 1 when handled. */
static int fill_pending(struct turn *t, const struct decision *dec)
{
    char iname[128], sname[64];
    if (!*t->c.pending || sscanf(t->c.pending, "%127s %63s", iname, sname) != 2)
        return 0;
    long i = rules_find(t->rs, iname);
    if (i < 0) {
        *t->c.pending = 0; /* the rules changed under the question */
        return 0;
    }
    remember_slots(t, i);
    if (json_object_get(json_object_get(t->mem, "slots"), sname)) {
        struct attr av[TURN_ATTRS];
        char misses[16];
        struct attrs a;
        turn_attrs(t, av, misses, &a);
        const struct rules_intent *it = rules_intent(t->rs, (size_t)i);
        answer_intent(t, i, rules_reply_pick(it->replies, it->n_replies, t->locale, 0), SRC_RULE, 1.0);
        const struct rules_handoff *h = rules_handoff_for(it, &a);
        if (h && !*t->c.pending)
            hand_off(t, rule_reason(t, i), h->queue, h->priority);
        return 1;
    }
    if (dec->source != DECIDE_FALLBACK)
        return 0; /* the customer moved on to something else */
    const struct rules_intent *it = rules_intent(t->rs, (size_t)i);
    for (size_t k = 0; k < it->n_slots; k++)
        if (strcmp(it->slots[k].name, sname) == 0)
            miss(t, slot_question(t, &it->slots[k]));
    return t->src == SRC_FALLBACK || t->handoff;
}

/* ---- a slot value on its own: carry the conversation on ---- */

/* 1 if text[0..len) is value with nothing around it but spacing and punctuation. */
static int only_value(const char *text, size_t len, const char *value)
{
    size_t vlen = strlen(value);
    const char *at = vlen ? memmem(text, len, value, vlen) : NULL;
    if (!at)
        return 0;
    for (size_t k = 0; k < len; k++) {
        if (text + k == at) {
            k += vlen - 1;
            continue;
        }
        unsigned char ch = (unsigned char)text[k];
        if (ch >= 0x80) { /* CJK punctuation: 。，！？：、 */
            static const char *const punct[] = {"。", "，", "！", "？", "：", "、", NULL};
            size_t j = 0;
            while (punct[j] && (k + 3 > len || memcmp(text + k, punct[j], 3) != 0))
                j++;
            if (!punct[j])
                return 0;
            k += 2;
        } else if (!isspace(ch) && !ispunct(ch)) {
            return 0;
        }
    }
    return 1;
}

/* Finds a slot (of any intent, the previous one first) whose value is the
 * whole message: 1 with *in (that intent) and v filled, else 0. Each slot
 * name is tried once, so the cost follows the distinct slots, not the intents. */
static int bare_slot(struct turn *t, long prev, long *in, struct router_slot *v)
{
    size_t n_int = rules_count(t->rs), n_tried = 0;
    const char *tried[32];
    int digit = 0;
    for (size_t k = 0; k < t->len; k++)
        digit |= isdigit((unsigned char)t->text[k]) || t->text[k] == '@';
    if (!digit || t->len > 64)
        return 0; /* words are for the router; a value has digits (or is an address) */
    for (long step = -1; step < (long)n_int; step++) {
        long i = step < 0 ? prev : step;
        if (i < 0 || (step >= 0 && i == prev))
            continue;
        const struct rules_intent *it = rules_intent(t->rs, (size_t)i);
        size_t fresh = 0;
        for (size_t k = 0; k < it->n_slots; k++) {
            size_t j = 0;
            while (j < n_tried && strcmp(tried[j], it->slots[k].name) != 0)
                j++;
            if (j == n_tried && n_tried < 32)
                tried[n_tried++] = it->slots[k].name, fresh++;
        }
        struct router_slot got[16];
        size_t n = 0;
        if (!fresh || router_slots(t->rs, t->w->sc, (uint32_t)i, t->text, t->len, got, 16, &n) < 0)
            continue;
        for (size_t k = 0; k < n; k++)
            if (only_value(t->text, t->len, got[k].value)) {
                *in = i;
                *v = got[k];
                return 1;
            }
    }
    return 0;
}

/* The first example of intent i in the customer's script without a digit
 * (a label with an order number in it would fill the wrong one), or NULL. */
static const char *carry_label(struct turn *t, long i)
{
    const struct rules_intent *it = rules_intent(t->rs, (size_t)i);
    for (size_t k = 0; k < it->n_examples; k++) {
        const char *ex = it->examples[k].text;
        if (strpbrk(ex, "0123456789"))
            continue;
        struct decide_cand c = {.stage = DECIDE_RULE, .intent = i, .example = ex};
        if (decide_label(t->rs, &c, t->locale) == ex)
            return ex;
    }
    return NULL;
}

/* 1 if intent i declares a slot called name. */
static int has_slot(const struct rules_intent *it, const char *name)
{
    for (size_t k = 0; k < it->n_slots; k++)
        if (strcmp(it->slots[k].name, name) == 0)
            return 1;
    return 0;
}

/* Which round of carry_ask() intent i's topic belongs to: 0 the previous
 * topic, 1 a topic the slot is named after (order for order_id), 2 others. */
static int carry_round(const char *topic, const char *prev, const char *slot)
{
    if (strcmp(topic, prev) == 0)
        return 0;
    size_t n = strlen(topic);
    return n && strncmp(slot, topic, n) == 0 && slot[n] == '_' ? 1 : 2;
}

/* "What would you like to do about KF12345678?" with up to three intents
 * that take the slot as quick replies, the previous topic's first; an
 * intent that would hand off at once is not offered. */
static void carry_ask(struct turn *t, const char *name, const char *value)
{
    char prev[64], topic[64];
    struct attr av[TURN_ATTRS];
    char misses[16];
    struct attrs a;
    turn_attrs(t, av, misses, &a);
    snprintf(prev, sizeof prev, "%s", mem_str(t->mem, "last_topic"));
    t->src = SRC_CLARIFY;
    t->confidence = 1.0;
    *t->c.pending = 0;
    snprintf(t->reply, sizeof t->reply, "%s%s%s", dialog_say(t->locale, "carry1"), value,
             dialog_say(t->locale, "carry2"));
    t->quick = json_array();
    for (int round = 0; round < 3; round++)
        for (size_t i = 0; i < rules_count(t->rs) && json_array_size(t->quick) < 3; i++) {
            const struct rules_intent *it = rules_intent(t->rs, i);
            intent_topic(t, (long)i, topic, sizeof topic);
            const char *label = carry_label(t, (long)i);
            if (label && has_slot(it, name) && carry_round(topic, prev, name) == round &&
                rules_cond_eval(it->when, &a) && !rules_handoff_for(it, &a))
                json_array_append_new(t->quick, json_string(label));
        }
}

/* A message that is only a slot value (an order number) with no question
 * pending: it fills the previous intent's slot and answers it again, or
 * is kept and the customer asked what to do with it. Returns 1 when handled. */
static int carry_on(struct turn *t, const struct decision *dec)
{
    long prev = rules_find(t->rs, mem_str(t->mem, "last_intent")), in;
    struct router_slot v;
    if (dec->source == DECIDE_RULE || !bare_slot(t, prev, &in, &v))
        return 0; /* a rule written for the bare value wins */
    if (in == prev) {
        snprintf(t->c.pending, sizeof t->c.pending, "%s %s", intent_name(t, prev), v.name);
        return fill_pending(t, dec);
    }
    json_t *slots = json_object_get(t->mem, "slots");
    if (!json_is_object(slots)) {
        slots = json_object();
        json_object_set_new(t->mem, "slots", slots);
    }
    json_object_set_new(slots, v.name, json_string(v.value));
    carry_ask(t, v.name, v.value);
    return 1;
}

/* Answers with the article the decision found: its title and the start of its body. */
static void answer_article(struct turn *t, const struct decision *dec)
{
    const struct kb_hit *found = &dec->article;
    struct kb_hit body; /* the body's start, not a snippet */
    const struct kb_hit *hit =
        t->w->kb && *found->id && kb_get(t->w->kb, found->id, t->locale, &body) == 0 ? &body : found;
    t->src = SRC_KB;
    t->confidence = dec->confidence;
    t->c.misses = 0;
    *t->c.pending = 0;
    snprintf(t->reply, sizeof t->reply, "%s\n%s", hit->title, hit->snippet);
    if (*found->id)
        add_article(t, found->id, strlen(found->id));
}

/* Answers from the decision: rule, example, article, clarification or fallback. */
static void answer(struct turn *t, const struct decision *dec)
{
    switch (dec->source) {
    case DECIDE_RULE:
    case DECIDE_EXAMPLE:
        remember_slots(t, dec->intent);
        answer_intent(t, dec->intent, dec->reply, dec->source == DECIDE_RULE ? SRC_RULE : SRC_EXAMPLE,
                      dec->confidence);
        break;
    case DECIDE_KB: answer_article(t, dec); break;
    case DECIDE_CLARIFY: clarify(t, dec); break;
    default:
        t->confidence = dec->confidence;
        miss(t, NULL);
        break;
    }
}

/* The handoff triggers, in order: a rule's directive (a request for a
 * person, a complaint, or any rule), then anger. Returns 1 if one fired. */
static int handoff_trigger(struct turn *t, const struct decision *dec, const char *norm)
{
    if (dec->source == DECIDE_HANDOFF && dec->handoff) {
        remember_slots(t, dec->intent);
        answer_intent(t, dec->intent, dec->reply, SRC_HANDOFF, dec->confidence);
        *t->c.pending = 0; /* the agent takes it from here */
        hand_off(t, rule_reason(t, dec->intent), dec->handoff->queue, dec->handoff->priority);
        return 1;
    }
    if (!angry(norm))
        return 0;
    t->c.anger = 1;
    t->intent = dec->intent;
    t->confidence = dec->confidence;
    hand_off(t, WHY_ANGER, "complaints", RULES_PRIO_HIGH);
    return 1;
}

/* Remembers what the bot understood, for previous_intent and the handoff packet. */
static void remember_intent(struct turn *t)
{
    if (t->intent < 0)
        return;
    char topic[64];
    intent_topic(t, t->intent, topic, sizeof topic);
    json_object_set_new(t->mem, "last_intent", json_string(intent_name(t, t->intent)));
    json_object_set_new(t->mem, "last_topic", json_string(topic));
    dialog_hist_add(&t->hist, intent_name(t, t->intent), shown(t->confidence), dialog_src_names[t->src],
                    t->c.last_seq + 1);
}

/* The bot's turn: decide, check the triggers, fill the slot, answer. */
static int bot_turn(struct turn *t)
{
    struct attr av[TURN_ATTRS];
    char misses[16];
    struct attrs a;
    turn_attrs(t, av, misses, &a);
    struct decide_ctx ctx = {.rs = t->rs, .sc = t->w->sc, .ex = t->w->ex, .kb = t->w->kb, .clf = t->w->clf};
    decide_policy_default(&ctx.policy);
    struct decision *dec = kefu_malloc(sizeof *dec);
    struct text_buf norm;
    text_buf_init(&norm);
    int rc = dec ? decide_message(&ctx, t->text, t->len, &a, dec) : KEFU_ENOMEM;
    if (rc == 0)
        rc = text_normalize(t->text, t->len, TEXT_FOLD, &norm);
    if (rc == 0) {
        t->intent = -1;
        if (!handoff_trigger(t, dec, norm.s) && !fill_pending(t, dec) && !carry_on(t, dec))
            answer(t, dec);
        remember_intent(t);
    }
    text_buf_release(&norm);
    free(dec);
    return rc < 0 ? dialog_fail(rc, "cannot decide the message") : 0;
}

/* The notice a handed-off customer reads: closed, or nobody free. */
static void handoff_notice(struct turn *t)
{
    if (!dialog_hours_open(t->d, t->now)) {
        if (t->intent >= 0) { /* an intent written for closed hours already says so */
            const struct rules_intent *it = rules_intent(t->rs, (size_t)t->intent);
            struct attr open[] = {{"hours", "open"}};
            struct attrs oa = {open, 1};
            if (it->when && !rules_cond_eval(it->when, &oa))
                return;
        }
        closed_notice(t->d, t->locale, t->notice, sizeof t->notice);
    } else if (!queue_available(t->d->q, t->hqueue, t->now)) {
        snprintf(t->notice, sizeof t->notice, "%s", dialog_say(t->locale, "busy"));
    }
}

/* A customer message while queued or with an agent: stored, no reply. */
static void wait_turn(struct turn *t)
{
    t->src = t->c.state == STORE_AGENT ? SRC_AGENT : SRC_QUEUED;
    t->intent = -1;
}

/* "1".."5" typed after resolve is a rating. */
static int rating_of(const char *text, size_t len)
{
    while (len && (*text == ' '))
        text++, len--;
    while (len && text[len - 1] == ' ')
        len--;
    return len == 1 && *text >= '1' && *text <= '5' ? *text - '0' : 0;
}

/* The JSON answer to the customer (new). */
static json_t *turn_result(struct turn *t, long seq)
{
    json_t *o = json_object();
    json_t *reply = json_null();
    if (*t->reply) {
        reply = json_pack("{s:s, s:s, s:f}", "text", t->reply, "source", dialog_src_names[t->src],
                          "confidence", shown(t->confidence));
        if (t->intent >= 0)
            json_object_set_new(reply, "intent", json_string(intent_name(t, t->intent)));
        if (t->articles)
            json_object_set(reply, "articles", t->articles);
        if (t->quick)
            json_object_set(reply, "quick_replies", t->quick);
        if (*t->notice)
            json_object_set_new(reply, "notice", json_string(t->notice));
        json_t *slots = json_object_get(t->mem, "slots");
        if (json_is_object(slots) && json_object_size(slots))
            json_object_set(reply, "slots", slots);
    }
    json_object_set_new(o, "reply", reply);
    if (t->calls)
        json_object_set(o, "calls", t->calls);
    json_object_set_new(o, "state", json_string(store_state_name(t->c.state)));
    json_object_set_new(o, "seq", json_integer(seq));
    if (t->c.state == STORE_QUEUED || t->c.state == STORE_AGENT) {
        json_t *q = queue_json(t->d, t->c.id, t->now);
        if (!q) /* not pushed yet: it will be last in its queue */
            q = json_pack("{s:s, s:i, s:i}", "name", t->c.queue, "position", 0, "wait_s", 0);
        json_object_set_new(o, "queue", q);
    }
    return o;
}

/* The messages of this turn as the transcript will hold them, for the packet. */
static json_t *turn_messages(struct turn *t, const char *bot_text)
{
    json_t *v = json_array();
    json_t *m = message_json(t->c.last_seq + 1, "customer", t->text, NULL, t->now);
    if (t->intent >= 0) {
        json_object_set_new(m, "intent", json_string(intent_name(t, t->intent)));
        json_object_set_new(m, "confidence", json_real(shown(t->confidence)));
    }
    json_array_append_new(v, m);
    if (bot_text)
        json_array_append_new(
            v, message_json(t->c.last_seq + 2, "bot", bot_text, dialog_src_names[t->src], t->now));
    return v;
}

/* Moves the conversation into its queue state before the write. */
static void turn_handoff_state(struct turn *t)
{
    t->c.state = STORE_QUEUED;
    snprintf(t->c.queue, sizeof t->c.queue, "%s", t->hqueue);
    snprintf(t->c.reason, sizeof t->c.reason, "%s", dialog_why_names[t->why]);
    t->c.priority = t->hprio;
    t->c.queued_at = t->now;
    t->c.misses = 0;
    *t->c.pending = 0;
    *t->c.agent = 0;
}

/* Moves a handed-off conversation to its queue state and returns its packet (new string, or NULL). */
static char *handoff_packet(struct turn *t, const char *bot_text)
{
    turn_handoff_state(t);
    json_t *extra = turn_messages(t, bot_text);
    json_t *ctx = dialog_build_context(t->d, &t->c, extra, t->w ? t->w->kb : NULL);
    char *packet = ctx ? json_dumps(ctx, JSON_COMPACT) : NULL;
    if (ctx && dialog_outbox_wants(t->d, DIALOG_EV_HANDOFF)) /* the packet, as the webhook tells it */
        t->hfields = json_pack(
            "{s:s, s:s, s:s, s:{s:s?, s:s}, s:O?, s:O?, s:O?, s:O?}", "state", "queued", "queue", t->c.queue,
            "reason", t->c.reason, "reply", "text", bot_text, "source", "handoff", "customer",
            json_object_get(ctx, "customer"), "understood", json_object_get(ctx, "understood"), "articles",
            json_object_get(ctx, "articles"), "transcript", json_object_get(ctx, "transcript"));
    json_decref(ctx);
    json_decref(extra);
    return packet;
}

/* Everything the turn changes, as one batch: profile, conversation, messages, events. */
static void turn_batch(struct turn *t, struct store_batch *b, const struct store_msg *cm,
                       const struct store_msg *bm, const char *packet)
{
    store_batch_init(b);
    if (*t->cu.id && (t->cu_dirty || t->now - t->cu.last_seen >= DIALOG_SEEN_STEP)) {
        t->cu.last_seen = t->now;
        store_put_customer(b, &t->cu);
    }
    store_put_conv(b, &t->c, packet);
    store_add_message(b, t->c.id, cm);
    if (bm)
        store_add_message(b, t->c.id, bm);
    if (t->event)
        store_add_event(b, t->c.id, t->now, t->event, NULL, NULL, NULL);
    if (t->handoff)
        store_add_event(b, t->c.id, t->now, "handoff", NULL, t->hqueue, dialog_why_names[t->why]);
    if (t->feedback)
        store_add_feedback(b, t->c.id, t->now, t->feedback, NULL);
    if (*t->variant && cm->intent && (t->src == SRC_RULE || t->src == SRC_EXAMPLE))
        store_add_answer(b, t->c.id, cm->seq, t->now, cm->intent, t->variant);
    int rc = 0;
    if (t->hfields)
        rc = dialog_outbox_add(t->d, b, &t->ev_handoff, DIALOG_EV_HANDOFF, t->c.id, t->now, t->hfields);
    if (rc == 0 && t->feedback && dialog_outbox_wants(t->d, DIALOG_EV_FEEDBACK)) {
        json_t *f = json_pack("{s:i}", "rating", t->feedback);
        rc = f ? dialog_outbox_add(t->d, b, &t->ev_rating, DIALOG_EV_FEEDBACK, t->c.id, t->now, f)
               : KEFU_ENOMEM;
        json_decref(f);
    }
    if (rc < 0 && b->rc == 0)
        b->rc = rc; /* the turn fails rather than lose its event */
}

/* Keeps this turn's quick replies with the bot message seq that offers them
 * (none: forgets the last ones), so a reloaded widget can offer them again. */
static void remember_quick(struct turn *t, long seq)
{
    if (t->quick && seq && json_array_size(t->quick))
        json_object_set_new(t->mem, "quick",
                            json_pack("{s:I, s:O}", "seq", (json_int_t)seq, "replies", t->quick));
    else
        json_object_del(t->mem, "quick");
}

/* Builds the answer and the turn's batch; t owns every string the batch
 * borrows until the commit. Returns 0 or KEFU_ENOMEM. */
static int prepare_commit(struct turn *t)
{
    long seq = t->c.last_seq + 1;
    const char *bot = *t->reply ? t->reply : NULL;
    if (bot)
        snprintf(t->bot_text, sizeof t->bot_text, "%s%s%s", t->reply, *t->notice ? "\n" : "", t->notice);
    remember_quick(t, bot ? seq + 1 : 0);
    t->memory = dialog_mem_dump(t->mem, &t->hist);
    t->c.memory = t->memory;
    t->packet = t->handoff ? handoff_packet(t, bot ? t->bot_text : NULL) : NULL;
    t->out = turn_result(t, bot ? seq + 1 : seq);
    /* kept only where a retry can ask for it again: with its client_id */
    t->result = t->out && t->client_id ? jsonw_dumps(t->out) : NULL;
    t->c.last_seq = bot ? seq + 1 : seq;
    t->c.updated_at = t->now;
    const char *src = dialog_src_names[t->src], *intent = intent_name(t, t->intent);
    t->cm = (struct store_msg){seq,           "customer",   t->text,   src,   intent,
                               t->confidence, t->client_id, t->result, t->now};
    t->bm = (struct store_msg){seq + 1, "bot", t->bot_text, src, intent, t->confidence, NULL, NULL, t->now};
    turn_batch(t, &t->b, &t->cm, bot ? &t->bm : NULL, t->packet);
    if (!t->out || (t->client_id && !t->result) || !t->memory)
        return dialog_fail(KEFU_ENOMEM, "out of memory");
    return 0;
}

static double mono_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* The red lines' samples of a turn the bot handled (and of a rating typed after a resolve). */
static void observe_turn(struct turn *t)
{
    const char *ch = t->c.channel, *tier = *t->cu.tier ? t->cu.tier : "regular";
    const char *q = t->handoff ? t->c.queue : "";
    if (t->feedback)
        dialog_observe(t->d, RL_CSAT, ch, t->c.queue, tier, t->feedback, t->now);
    if (t->src > SRC_HANDOFF)
        return; /* queued, with an agent, a rating: not the bot's answer */
    int answered = t->src == SRC_RULE || t->src == SRC_EXAMPLE || t->src == SRC_KB;
    dialog_observe(t->d, RL_BOT_RESPONSE, ch, q, tier, mono_s() - t->started, t->now);
    dialog_observe(t->d, RL_AUTOMATION, ch, q, tier, answered, t->now);
    dialog_observe(t->d, RL_HANDOFF, ch, q, tier, t->handoff != 0, t->now);
    dialog_observe(t->d, RL_UNANSWERED, ch, q, tier,
                   t->src == SRC_FALLBACK || (t->src == SRC_HANDOFF && t->intent < 0), t->now);
}

/* After the commit: queue the handed-off conversation, count, notify. */
static void after_turn(struct turn *t, json_t *out)
{
    struct dialog *d = t->d;
    atomic_fetch_add(&d->m.src[t->src], 1);
    observe_turn(t);
    if (t->feedback)
        atomic_fetch_add(&d->m.rating[t->feedback], 1);
    if (t->handoff) {
        atomic_fetch_add(&d->m.why[t->why], 1);
        if (dialog_enqueue(d, &t->c) == 0) {
            json_t *q = queue_json(d, t->c.id, t->now);
            if (q)
                json_object_set_new(out, "queue", q);
        }
        dialog_notify(d, NULL, 0);
    }
    dialog_notify(d, t->c.id, t->c.last_seq);
}

/* Answers a repeated client_id with the first answer. Returns 0 (done) or KEFU_ENOENT. */
static int replay(struct turn *t, json_t **out)
{
    long seq;
    char *result = NULL;
    if (!t->client_id || store_find_client_id(t->d->st, t->c.id, t->client_id, &seq, &result) < 0)
        return KEFU_ENOENT;
    *out = result ? json_loads(result, 0, NULL) : json_pack("{s:n, s:I}", "reply", "seq", (json_int_t)seq);
    free(result);
    json_t *q = *out && json_object_get(*out, "queue") ? queue_json(t->d, t->c.id, t->now) : NULL;
    if (q) /* the first answer, with where the conversation stands now */
        json_object_set_new(*out, "queue", q);
    return *out ? 0 : KEFU_ENOMEM;
}

/* The bot's part of a turn: decide and answer, unless an action must answer first. */
static int bot_part(struct turn *t)
{
    if (!t->w)
        t->w = dialog_worker_get(t->d);
    if (t->w && !t->rs)
        t->rs = rules_ref(t->w->rs); /* ours: the batch names its intents */
    int rc = t->w ? bot_turn(t) : KEFU_ENOMEM;
    if (rc == 0 && !t->act_phase && t->handoff)
        handoff_notice(t);
    return rc;
}

/* Ends a turn's run: 2 when it waits for an action, else its batch is
 * prepared (1) or rc says why not; the working set goes back either way. */
static int turn_end(struct turn *t, int rc)
{
    if (rc == 0 && t->act_phase) {
        if (t->w)
            dialog_worker_put(t->d, t->w);
        t->w = NULL;
        return 2;
    }
    if (rc == 0)
        rc = prepare_commit(t);
    if (t->w) /* the working set serves the next message while this one commits */
        dialog_worker_put(t->d, t->w);
    t->w = NULL;
    return rc < 0 ? rc : 1;
}

/* 1 when the shop's profile action should tell who this customer is: once per conversation
 * and customer id (its memory keeps the id it asked about; switch_customer() changes the id). */
static int wants_profile(struct turn *t)
{
    return t->d->actions && *t->cu.id && actions_known(t->d->actions, "profile") &&
           strcmp(mem_str(t->mem, "profiled"), t->cu.id) != 0;
}

/* Copies a profile's string field into dst when it is a short string. */
static int profile_str(json_t *res, const char *key, char *dst, size_t cap)
{
    const char *v = json_string_value(json_object_get(res, key));
    if (!v || strlen(v) >= cap || !*v)
        return 0;
    return action_field(res, key, dst, cap);
}

/* The memory's attribute object (attr.NAME → text), made on first use. */
static json_t *mem_attrs(struct turn *t)
{
    json_t *a = json_object_get(t->mem, "attrs");
    if (!json_is_object(a)) {
        a = json_object();
        json_object_set_new(t->mem, "attrs", a);
    }
    return a;
}

/* What the profile action said: name, tier and attributes for the rules' conditions. */
static void apply_profile(struct turn *t)
{
    json_t *res = t->act_result;
    if (!t->act_ok || !res)
        return; /* the conversation goes on with what the widget said */
    t->cu_dirty |= profile_str(res, "name", t->cu.name, sizeof t->cu.name);
    t->cu_dirty |= profile_str(res, "tier", t->cu.tier, sizeof t->cu.tier);
    const char *key;
    json_t *v;
    char name[96], text[256];
    json_t *attrs = mem_attrs(t), *keys = json_array();
    json_object_foreach(json_object_get(res, "attributes"), key, v)
    {
        snprintf(name, sizeof name, "attr.%s", key);
        if (strlen(key) < 64 && json_object_size(attrs) < 16 &&
            action_field(json_object_get(res, "attributes"), key, text, sizeof text)) {
            json_object_set_new(attrs, name, json_string(text));
            json_array_append_new(keys, json_string(name));
        }
    }
    json_object_set_new(t->mem, "profile_attrs", keys); /* what a new customer id takes back */
    json_object_set_new(t->mem, "profiled", json_string(t->cu.id));
    json_decref(t->act_result);
    t->act_result = NULL;
}

/* A message naming another customer id (a widget whose visitor logged in):
 * the conversation is theirs from now on (their profile, their history), the
 * attributes the previous profile gave are dropped, and wants_profile() asks
 * the profile action about the new id. A name or tier given is kept with the
 * customer, as at the conversation's start. */
static void switch_customer(struct turn *t)
{
    if (!t->cust_id)
        return;
    if (strcmp(t->cust_id, t->c.customer) != 0) {
        snprintf(t->c.customer, sizeof t->c.customer, "%s", t->cust_id);
        if (store_get_customer(t->d->st, t->cust_id, &t->cu) < 0) {
            memset(&t->cu, 0, sizeof t->cu);
            snprintf(t->cu.id, sizeof t->cu.id, "%s", t->cust_id);
            t->cu.first_seen = t->now;
        }
        t->cu_dirty = 1;
        json_t *keys = json_object_get(t->mem, "profile_attrs"), *attrs = json_object_get(t->mem, "attrs"),
               *k;
        size_t i;
        json_array_foreach(keys, i, k) json_object_del(attrs, json_string_value(k));
        json_object_del(t->mem, "profile_attrs");
    }
    if (t->cust_name && *t->cust_name && strcmp(t->cust_name, t->cu.name) != 0) {
        snprintf(t->cu.name, sizeof t->cu.name, "%s", t->cust_name);
        t->cu_dirty = 1;
    }
    if (t->cust_tier && *t->cust_tier && strcmp(t->cust_tier, t->cu.tier) != 0) {
        snprintf(t->cu.tier, sizeof t->cu.tier, "%s", t->cust_tier);
        t->cu_dirty = 1;
    }
}

/* Keeps what the action answered in the memory, for the handoff packet. */
static void remember_action(struct turn *t, const struct rules_intent *it)
{
    json_t *v = json_object_get(t->mem, "actions");
    if (!json_is_object(v)) {
        v = json_object();
        json_object_set_new(t->mem, "actions", v);
    }
    json_t *r = json_pack("{s:s, s:s}", "intent", it->name, "outcome", t->act_outcome);
    if (r && t->act_ok && t->act_result) /* no result when the call failed */
        json_object_set(r, "result", t->act_result);
    if (r)
        json_object_set_new(v, it->action, r);
}

/* The `set` lines: result fields into slots and attributes. */
static void apply_sets(struct turn *t, const struct rules_intent *it)
{
    char text[256];
    for (size_t k = 0; k < it->n_sets; k++) {
        const struct rules_set *st = &it->sets[k];
        if (!action_field(t->act_result, st->field, text, sizeof text))
            continue;
        json_t *into = strncmp(st->name, "attr.", 5) == 0 ? mem_attrs(t) : json_object_get(t->mem, "slots");
        if (!json_is_object(into)) {
            into = json_object();
            json_object_set_new(t->mem, "slots", into);
        }
        json_object_set_new(into, st->name, json_string(text));
    }
}

/* Answers the intent that waited for its action: the first `on` group that
 * holds (its reply by locale, or its handoff), else the intent's reply; a
 * failure without an `on failed` line hands off with reason action_failed. */
static void apply_action(struct turn *t)
{
    const struct rules_intent *it = rules_intent(t->rs, (size_t)t->act_intent);
    remember_action(t, it);
    if (t->act_ok)
        apply_sets(t, it);
    struct attr av[TURN_ATTRS];
    char misses[16];
    struct attrs a;
    turn_attrs(t, av, misses, &a);
    struct action_choice ch;
    action_choose(it, t->act_ok, t->act_result, &a, t->locale, t->act_tpl, &ch);
    if (ch.failed_handoff) {
        *t->reply = 0;
        hand_off(t, WHY_ACTION, "general", RULES_PRIO_NORMAL);
        return;
    }
    if (ch.tpl)
        render(t, ch.tpl);
    if (ch.handoff) {
        *t->c.pending = 0;
        hand_off(t, t->act_ok ? WHY_RULE : WHY_ACTION, ch.handoff->queue, ch.handoff->priority);
    } else if (!ch.tpl) {
        miss(t, NULL); /* nothing to say for this locale */
    }
}

/* The JSON an action is called with (new): who asks, about what. */
static json_t *action_body(struct turn *t, const char *name)
{
    json_t *slots = json_object_get(t->mem, "slots"), *attrs = json_object_get(t->mem, "attrs");
    const char *intent = t->act_phase == ACT_INTENT ? intent_name(t, t->act_intent) : NULL;
    json_t *b = json_pack("{s:s, s:s?, s:{s:s, s:s, s:s}, s:s, s:s, s:s}", "action", name, "intent", intent,
                          "customer", "id", t->cu.id, "name", t->cu.name, "tier", t->cu.tier, "conversation",
                          t->c.id, "locale", t->locale, "channel", t->c.channel);
    if (b) {
        json_object_set_new(b, "slots", json_is_object(slots) ? json_deep_copy(slots) : json_object());
        json_object_set_new(b, "attributes", json_is_object(attrs) ? json_deep_copy(attrs) : json_object());
    }
    return b;
}

/* The whole pipeline for one message of conversation t->c (locked).
 * Returns 1 when t's batch is ready to commit, 0 when t->out is the
 * answer already (a repeated client_id), or a negative KEFU_E* code. */
static int handle_message(struct turn *t)
{
    if (replay(t, &t->out) == 0)
        return 0;
    switch_customer(t);
    t->locale = turn_locale(t);
    snprintf(t->c.locale, sizeof t->c.locale, "%s", t->locale);
    t->intent = -1;
    int rc = 0;
    if (t->c.state == STORE_RESOLVED && (t->feedback = rating_of(t->text, t->len))) {
        t->src = SRC_FEEDBACK;
        snprintf(t->reply, sizeof t->reply, "%s", dialog_say(t->locale, "thanks"));
        return (rc = prepare_commit(t)) < 0 ? rc : 1;
    }
    if (t->c.state == STORE_RESOLVED) {
        t->c.state = STORE_BOT;
        t->c.misses = 0;
        *t->c.agent = *t->c.queue = *t->c.reason = 0;
        t->event = "reopen";
    }
    if (t->c.state == STORE_QUEUED || t->c.state == STORE_AGENT) {
        wait_turn(t);
    } else if (wants_profile(t)) {
        t->act_phase = ACT_PROFILE; /* ask the shop who this is before deciding */
        return 2;
    } else {
        rc = bot_part(t);
    }
    return turn_end(t, rc);
}

/* Notes the call the turn waited for in t->calls (the command line's d->show_calls). */
static void note_call(struct turn *t)
{
    if (!t->d->show_calls || (!t->calls && !(t->calls = json_array())))
        return;
    const char *name =
        t->act_phase == ACT_PROFILE ? "profile" : rules_intent(t->rs, (size_t)t->act_intent)->action;
    json_t *c = json_pack("{s:s, s:s, s:f, s:b}", "action", name, "outcome", t->act_outcome, "seconds",
                          t->act_seconds, "stubbed", t->act_stubbed);
    if (c && t->act_result)
        json_object_set(c, "result", t->act_result);
    json_array_append_new(t->calls, c);
}

/* The rest of a turn that waited for an action, with its result in t. Returns as handle_message(). */
static int turn_resume(struct turn *t)
{
    int rc = 0;
    note_call(t);
    if (t->act_phase == ACT_PROFILE) {
        apply_profile(t);
        t->act_phase = ACT_NONE;
        rc = bot_part(t);
    } else {
        t->w = dialog_worker_get(t->d); /* for the articles a reply links */
        t->act_phase = ACT_NONE;
        apply_action(t);
        if (t->handoff)
            handoff_notice(t);
    }
    return turn_end(t, rc);
}

static void turn_release(struct turn *t)
{
    if (t->w)
        dialog_worker_put(t->d, t->w);
    rules_unref(t->rs);
    json_decref(t->mem);
    dialog_hist_release(&t->hist);
    json_decref(t->quick);
    json_decref(t->articles);
    json_decref(t->out);
    json_decref(t->req);
    t->c.memory = NULL; /* t->memory */
    free(t->memory);
    free(t->packet);
    free(t->result);
    json_decref(t->hfields);
    json_decref(t->act_result);
    json_decref(t->calls);
    dialog_out_release(&t->ev_handoff);
    dialog_out_release(&t->ev_rating);
    store_conv_release(&t->c);
    free(t->redacted);
}

/* Loads conversation id and its customer into t. */
static int turn_load(struct turn *t, const char *id)
{
    int rc = dialog_load(t->d, id, &t->c);
    if (rc < 0)
        return rc;
    store_get_customer(t->d->st, t->c.customer, &t->cu);
    t->mem = dialog_mem_parse(t->c.memory, &t->hist);
    store_conv_release(&t->c); /* t->mem and t->hist are the memory from now on */
    return t->mem ? 0 : KEFU_ENOMEM;
}

/* ---- asynchronous messages: the busy list and the completion ---- */

struct dialog_call {
    struct turn t;
    struct dialog_call *next_busy; /* in d->busy[stripe] while committing */
    struct dialog_call *waiters;   /* calls of the same conversation that arrived meanwhile */
    struct dialog_call *next_wait;
    unsigned stripe;
    int waiting;          /* 1: parked behind another call; run it again at finish */
    int resume;           /* 1: its action answered; finish goes on with the turn */
    int acting;           /* 1: on the busy list waiting for its action, nothing submitted (busy_lock) */
    unsigned long erases; /* d->erases when it went on the busy list */
    dialog_done_fn done;
    void *done_ctx;
    int rc;
    char err[sizeof err_buf];
};

/* The call of conversation id in stripe k that is committing, or NULL; busy_lock held. */
static struct dialog_call *busy_call(struct dialog *d, unsigned k, const char *id)
{
    for (struct dialog_call *c = d->busy[k]; c; c = c->next_busy)
        if (strcmp(c->t.c.id, id) == 0)
            return c;
    return NULL;
}

/* 1 when a message of id is committing (not waiting for its action); busy_lock held. */
static int committing(struct dialog *d, unsigned k, const char *id)
{
    struct dialog_call *c = busy_call(d, k, id);
    return c && !c->acting;
}

/* Marks call (busy, its stripe locked) as waiting for its action or not. */
static void set_acting(struct dialog_call *call, int on)
{
    pthread_mutex_lock(&call->t.d->busy_lock);
    call->acting = on;
    pthread_mutex_unlock(&call->t.d->busy_lock);
}

static void busy_link(struct dialog_call *call)
{
    struct dialog *d = call->t.d;
    call->stripe = stripe(call->t.c.id);
    pthread_mutex_lock(&d->busy_lock);
    call->next_busy = d->busy[call->stripe];
    call->waiters = NULL;
    call->erases = d->erases;
    d->busy[call->stripe] = call;
    pthread_mutex_unlock(&d->busy_lock);
}

/* Takes call off the busy list; returns the calls that waited for it. */
static struct dialog_call *busy_unlink(struct dialog_call *call)
{
    struct dialog *d = call->t.d;
    pthread_mutex_lock(&d->busy_lock);
    for (struct dialog_call **p = &d->busy[call->stripe]; *p; p = &(*p)->next_busy)
        if (*p == call) {
            *p = call->next_busy;
            break;
        }
    struct dialog_call *w = call->waiters;
    call->waiters = NULL;
    pthread_cond_broadcast(&d->busy_cond);
    pthread_mutex_unlock(&d->busy_lock);
    return w;
}

/* store_done_fn, on the writer thread: the turn is durable (or failed, and
 * nothing of it was written); the conversation is free for its next
 * message, so the calls parked behind this one hear first (they run again
 * at their finish); then this call's owner (the last touch of call here). */
static void turn_committed(void *ctx, struct store_batch *b, int rc)
{
    struct dialog_call *call = ctx;
    if (rc < 0) {
        call->rc = rc;
        snprintf(call->err, sizeof call->err, "%s",
                 rc != KEFU_ECONFLICT          ? "cannot store the message"
                 : store_shared(call->t.d->st) ? "client_id already used, or another node changed the "
                                                 "conversation meanwhile: send it again"
                                               : "client_id already used");
    }
    for (struct dialog_call *w = busy_unlink(call), *next; w; w = next) {
        next = w->next_wait; /* w may run again as soon as it hears */
        w->done(w->done_ctx);
    }
    call->done(call->done_ctx);
}

/* Ends a call that writes nothing (an error or a replay) on the caller's thread. */
static void call_done_now(struct dialog_call *call, int rc)
{
    call->rc = rc < 0 ? rc : 0;
    if (rc < 0)
        snprintf(call->err, sizeof call->err, "%s", dialog_error());
    call->done(call->done_ctx);
}

/* Locks conv's stripe unless a message of conv is committing: then parks
 * call behind it and returns 0 (its done runs after that commit). */
static int lock_or_wait(struct dialog_call *call, const char *conv)
{
    struct dialog *d = call->t.d;
    unsigned k = stripe(conv);
    pthread_mutex_lock(&d->conv_lock[k]);
    pthread_mutex_lock(&d->busy_lock);
    struct dialog_call *b = busy_call(d, k, conv);
    if (b) {
        call->waiting = 1;
        call->next_wait = b->waiters;
        b->waiters = call;
    }
    pthread_mutex_unlock(&d->busy_lock);
    if (b)
        pthread_mutex_unlock(&d->conv_lock[k]);
    return !b;
}

/* 1 while a message of any stripe is committing; busy_lock held. */
static int any_committing(const struct dialog *d)
{
    for (int k = 0; k < CONV_LOCKS; k++)
        for (const struct dialog_call *c = d->busy[k]; c; c = c->next_busy)
            if (!c->acting)
                return 1;
    return 0;
}

void dialog_lock_all(struct dialog *d)
{
    for (int i = 0; i < CONV_LOCKS; i++) /* always in this order: no two erases deadlock */
        pthread_mutex_lock(&d->conv_lock[i]);
    pthread_mutex_lock(&d->busy_lock);
    while (any_committing(d)) /* they finish without the stripes; no new one starts */
        pthread_cond_wait(&d->busy_cond, &d->busy_lock);
    d->erases++; /* a message waiting for its action looks again when it resumes */
    pthread_mutex_unlock(&d->busy_lock);
}

void dialog_unlock_all(struct dialog *d)
{
    for (int i = CONV_LOCKS - 1; i >= 0; i--)
        pthread_mutex_unlock(&d->conv_lock[i]);
}

/* action_done_fn: the action answered (on httpc's thread, or at once for a
 * stub or a refusal); the owner's finish goes on with the turn. */
static void action_answered(void *ctx, const struct action_result *r)
{
    struct dialog_call *call = ctx;
    struct turn *t = &call->t;
    t->act_ok = r->ok;
    t->act_result = r->ok ? json_incref(r->result) : NULL;
    snprintf(t->act_outcome, sizeof t->act_outcome, "%s", r->outcome);
    t->act_seconds = r->seconds;
    t->act_stubbed = r->stubbed;
    call->resume = 1;
    call->done(call->done_ctx); /* the last touch of call here */
}

/* Asks the action the turn waits for; the conversation stays busy meanwhile. */
static void call_action(struct dialog_call *call)
{
    struct turn *t = &call->t;
    const char *name =
        t->act_phase == ACT_PROFILE ? "profile" : rules_intent(t->rs, (size_t)t->act_intent)->action;
    json_t *body = action_body(t, name);
    if (!body) {
        struct action_result r = {.outcome = "error", .error = "out of memory"};
        action_answered(call, &r);
        return;
    }
    actions_call(t->d->actions, name, body, action_answered, call);
    json_decref(body);
}

/* A busy call that cannot go on: off the busy list, nothing written. */
static void call_fail_busy(struct dialog_call *call, int rc)
{
    call->rc = rc;
    snprintf(call->err, sizeof call->err, "%s", dialog_error());
    for (struct dialog_call *w = busy_unlink(call), *next; w; w = next) {
        next = w->next_wait;
        w->done(w->done_ctx);
    }
    call->done(call->done_ctx);
}

/* After handle_message() or turn_resume() (stripe locked, call busy when
 * waiting): submit the batch, ask an action, or end with nothing written. */
static void call_next(struct dialog_call *call, int rc, int linked)
{
    struct turn *t = &call->t;
    struct dialog *d = t->d;
    if ((rc == 1 || rc == 2) && !linked)
        busy_link(call); /* before the submit: the completion may come at once */
    if (rc == 2)
        set_acting(call, 1); /* before the unlock: dialog_lock() must not wait for it */
    dialog_unlock(d, t->conv);
    if (rc == 1)
        store_submit(d->st, &t->b, turn_committed, call);
    else if (rc == 2)
        call_action(call);
    else if (linked)
        call_fail_busy(call, rc);
    else
        call_done_now(call, rc);
}

/* Runs the pipeline of a validated call and hands its batch to the store. */
static void call_run(struct dialog_call *call, const char *conv)
{
    struct turn *t = &call->t;
    struct dialog *d = t->d;
    if (!lock_or_wait(call, conv))
        return;
    t->now = dialog_now(d);
    int rc = turn_load(t, conv);
    if (rc == 0)
        rc = handle_message(t);
    call_next(call, rc, 0);
}

/* Goes on with a call whose action answered (it is still on the busy list). */
static void call_resume(struct dialog_call *call)
{
    struct turn *t = &call->t;
    struct dialog *d = t->d;
    pthread_mutex_lock(&d->conv_lock[stripe(t->conv)]); /* not dialog_lock(): the busy call is this one */
    pthread_mutex_lock(&d->busy_lock);
    call->acting = 0;
    int erased = call->erases != d->erases; /* an erase ran while the action was out */
    pthread_mutex_unlock(&d->busy_lock);
    int gone = 0;
    if (erased) {
        struct store_conv now;
        gone = dialog_load(d, t->conv, &now) == KEFU_ENOENT;
        store_conv_release(&now);
    }
    int rc = gone ? dialog_fail(KEFU_ENOENT, "the conversation was erased") /* write nothing back */
                  : turn_resume(t);
    call_next(call, rc, 1);
}

#define SPARE_MAX 64 /* finished calls kept at most */

/* A zeroed call: a spare one, or new (NULL on OOM); give it back with call_free(). */
static struct dialog_call *call_new(struct dialog *d)
{
    pthread_mutex_lock(&d->spare_lock);
    struct dialog_call *call = d->spare;
    if (call) {
        d->spare = call->next_busy;
        d->n_spare--;
    }
    pthread_mutex_unlock(&d->spare_lock);
    if (!call)
        return kefu_calloc(1, sizeof *call);
    memset(call, 0, sizeof *call);
    return call;
}

/* Keeps a released call for the next message, or frees it. */
static void call_free(struct dialog *d, struct dialog_call *call)
{
    pthread_mutex_lock(&d->spare_lock);
    if (d->n_spare < SPARE_MAX) {
        call->next_busy = d->spare;
        d->spare = call;
        d->n_spare++;
        call = NULL;
    }
    pthread_mutex_unlock(&d->spare_lock);
    free(call);
}

/* Frees the spare calls (dialog_close()). */
static void spare_free(struct dialog *d)
{
    for (struct dialog_call *c = d->spare, *next; c; c = next) {
        next = c->next_busy;
        free(c);
    }
    d->spare = NULL;
    d->n_spare = 0;
}

/* Reads a message's optional customer:{id, name?, tier?} (v borrowed from t->req) into t. */
static int read_message_customer(struct turn *t, json_t *v)
{
    if (!v || json_is_null(v))
        return 0;
    if (!json_is_object(v))
        return dialog_fail(KEFU_EINVAL, "field 'customer' must be an object {id, name?, tier?}");
    int rc;
    if ((rc = dialog_req_text(v, "id", sizeof t->cu.id - 1, 1, &t->cust_id)) < 0 ||
        (rc = dialog_req_text(v, "name", sizeof t->cu.name - 1, 0, &t->cust_name)) < 0 ||
        (rc = dialog_req_text(v, "tier", sizeof t->cu.tier - 1, 0, &t->cust_tier)) < 0)
        return rc;
    return 0;
}

void dialog_message_start(struct dialog *d, const char *conv, json_t *req, dialog_done_fn done, void *ctx,
                          struct dialog_call **out)
{
    struct dialog_call *call = call_new(d);
    *out = call;
    if (!call) {
        done(ctx);
        return;
    }
    struct turn *t = &call->t;
    t->d = d;
    t->started = mono_s();
    t->req = json_incref(req); /* t->text and t->client_id point into it */
    call->done = done;
    call->done_ctx = ctx;
    int rc = json_is_object(req) ? 0 : dialog_fail(KEFU_EINVAL, "expected {text, client_id?, customer?}");
    if (rc == 0)
        rc = dialog_req_text(req, "text", DIALOG_MAX_TEXT, 1, &t->text);
    if (rc == 0)
        rc = dialog_req_text(req, "client_id", 64, 0, &t->client_id);
    if (rc == 0)
        rc = read_message_customer(t, json_object_get(req, "customer"));
    if (rc == 0)
        rc = dialog_redact(d, &t->text, &t->redacted);
    if (rc == 0 && conv && strlen(conv) >= sizeof t->conv)
        rc = dialog_load(d, conv, &t->c); /* the same refusal as for any unknown id */
    if (rc < 0) {
        call_done_now(call, rc);
        return;
    }
    t->len = strlen(t->text);
    snprintf(t->conv, sizeof t->conv, "%s", conv ? conv : "");
    call_run(call, t->conv);
}

int dialog_message_finish(struct dialog_call *call, json_t **out)
{
    *out = NULL;
    if (!call)
        return dialog_fail(KEFU_ENOMEM, "out of memory");
    struct turn *t = &call->t;
    if (call->waiting) { /* the message before it committed: now its turn */
        call->waiting = 0;
        call_run(call, t->conv);
        return 1;
    }
    if (call->resume) { /* its action answered: now the answer */
        call->resume = 0;
        call_resume(call);
        return 1;
    }
    int rc = call->rc;
    if (rc == 0 && t->c.last_seq)
        after_turn(t, t->out);
    if (rc == 0) {
        *out = t->out;
        t->out = NULL;
    } else {
        dialog_fail(rc, "%s", call->err);
    }
    turn_release(t);
    call_free(t->d, call);
    return rc;
}

void dialog_message_drop(struct dialog_call *call)
{
    if (call && call->waiting) { /* never ran: nothing of it was written */
        turn_release(&call->t);
        call_free(call->t.d, call);
        return;
    }
    if (call && call->resume) { /* its action answered, nobody waits: write nothing, free the conversation */
        for (struct dialog_call *w = busy_unlink(call), *next; w; w = next) {
            next = w->next_wait;
            w->done(w->done_ctx);
        }
        turn_release(&call->t);
        free(call);
        return;
    }
    json_t *out = NULL;
    if (call)
        dialog_message_finish(call, &out);
    json_decref(out);
}

/* What dialog_customer_message() sleeps on until its commit. */
struct sync_wait {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int done;
};

static void sync_done(void *ctx)
{
    struct sync_wait *w = ctx;
    pthread_mutex_lock(&w->lock);
    w->done = 1;
    pthread_cond_signal(&w->cond);
    pthread_mutex_unlock(&w->lock);
}

int dialog_customer_message(struct dialog *d, const char *conv, json_t *req, json_t **out)
{
    struct sync_wait w = {.done = 0};
    pthread_mutex_init(&w.lock, NULL);
    pthread_cond_init(&w.cond, NULL);
    struct dialog_call *call;
    dialog_message_start(d, conv, req, sync_done, &w, &call);
    int rc;
    do {
        pthread_mutex_lock(&w.lock);
        while (!w.done)
            pthread_cond_wait(&w.cond, &w.lock);
        w.done = 0;
        pthread_mutex_unlock(&w.lock);
    } while ((rc = dialog_message_finish(call, out)) == 1);
    pthread_cond_destroy(&w.cond);
    pthread_mutex_destroy(&w.lock);
    return rc;
}

/* ---- reading messages and feedback ---- */

static int list_msg(void *ctx, const struct store_msg *m)
{
    json_t *v = ctx;
    int internal = strcmp(m->from, "customer") == 0;
    json_array_append_new(v, message_json(m->seq, m->from, m->text, internal ? NULL : m->source, m->at));
    return 0;
}

/* Adds the remembered quick replies to the bot message that offered them
 * when it is still the conversation's last message (msgs borrowed). */
static void attach_quick(json_t *msgs, const struct store_conv *c)
{
    size_t n = json_array_size(msgs);
    json_t *last = n ? json_array_get(msgs, n - 1) : NULL;
    if (c->state != STORE_BOT || !last || json_integer_value(json_object_get(last, "seq")) != c->last_seq)
        return;
    json_t *mem = json_loads(c->memory ? c->memory : "{}", 0, NULL);
    json_t *quick = json_object_get(mem, "quick");
    if (json_integer_value(json_object_get(quick, "seq")) == c->last_seq &&
        json_is_array(json_object_get(quick, "replies")))
        json_object_set(last, "quick_replies", json_object_get(quick, "replies"));
    json_decref(mem);
}

int dialog_messages(struct dialog *d, const char *conv, long after, json_t **out)
{
    struct store_conv c;
    *out = NULL;
    int rc = dialog_load(d, conv, &c);
    if (rc < 0)
        return rc;
    json_t *v = json_array();
    if ((rc = store_messages(d->st, conv, after, 500, list_msg, v)) < 0) {
        store_conv_release(&c);
        json_decref(v);
        return dialog_fail(rc, "cannot read messages");
    }
    attach_quick(v, &c);
    store_conv_release(&c);
    *out = json_pack("{s:o, s:s}", "messages", v, "state", store_state_name(c.state));
    json_t *q = c.state == STORE_QUEUED || c.state == STORE_AGENT ? queue_json(d, conv, dialog_now(d)) : NULL;
    if (q)
        json_object_set_new(*out, "queue", q);
    return *out ? 0 : KEFU_ENOMEM;
}

int dialog_feedback(struct dialog *d, const char *conv, json_t *req, json_t **out)
{
    *out = NULL;
    json_t *r = json_object_get(req, "rating");
    const char *comment;
    if (!json_is_integer(r) || json_integer_value(r) < 1 || json_integer_value(r) > 5)
        return dialog_fail(KEFU_EINVAL, "rating must be an integer from 1 to 5");
    char *owned = NULL;
    int rc = dialog_req_text(req, "comment", 1000, 0, &comment);
    if (rc == 0)
        rc = dialog_redact(d, &comment, &owned);
    if (rc < 0)
        return rc;
    struct store_conv c;
    if ((rc = dialog_load(d, conv, &c)) < 0) {
        free(owned);
        return rc;
    }
    char tier[32];
    dialog_tier(d, c.customer, tier, sizeof tier);
    int rating = (int)json_integer_value(r);
    long long now = dialog_now(d);
    dialog_observe(d, RL_CSAT, c.channel, c.queue, tier, rating, now);
    store_conv_release(&c);
    struct store_batch b;
    store_batch_init(&b);
    store_add_feedback(&b, conv, now, rating, comment);
    store_add_event(&b, conv, now, "feedback", NULL, NULL, NULL);
    struct dialog_out ev = {.body = NULL};
    json_t *f = dialog_outbox_wants(d, DIALOG_EV_FEEDBACK)
                    ? json_pack("{s:i, s:s?}", "rating", rating, "comment", comment)
                    : NULL;
    rc = f ? dialog_outbox_add(d, &b, &ev, DIALOG_EV_FEEDBACK, conv, now, f) : 0;
    json_decref(f);
    if (rc == 0)
        rc = store_write(d->st, &b);
    dialog_out_release(&ev);
    free(owned);
    if (rc < 0)
        return dialog_fail(rc, "cannot store the feedback");
    atomic_fetch_add(&d->m.rating[rating], 1);
    *out = json_pack("{s:b}", "ok", 1);
    return 0;
}
