/* api.c — the routes of HTTP API v1 (docs/api.md). A request is matched
 * against one table; the route says which credential it needs and whether
 * it takes a JSON body, so authentication and validation happen once,
 * before the handler, which makes a single dialog_*() call. Every failure
 * becomes {"error":{code, message}} with the status from one table.
 * Nothing here touches sockets: http.c does the transport. */
#include "api.h"

#include "kefu.h"
#include "log.h"
#include "openapi_json.h" /* docs/openapi.json as a byte array (scripts/embed.sh) */
#include "rate.h"
#include "rules.h"
#include "text.h"

#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct api {
    struct api_config cfg;
    struct rate *ip_rate, *conv_rate; /* owned */
    atomic_int draining;
    atomic_long queue_version; /* bumped by api_queue_changed() */
};

enum auth {
    AUTH_NONE,
    AUTH_CUSTOMER, /* the conversation's token */
    AUTH_PARTY,    /* the conversation's token, or an agent who may see it (push to agents) */
    AUTH_AGENT,
    AUTH_ADMIN,
};
enum body { BODY_NONE, BODY_OPTIONAL, BODY_REQUIRED };

/* What one request carries through validation into its handler. */
struct call {
    struct api *a;
    const struct api_request *req;
    struct api_response *resp;
    char conv[API_ID_MAX + 1]; /* the {id} segment, "" when the route has none */
    const char *agent;         /* borrowed from dialog */
    json_t *body;              /* new, or NULL */
};

typedef int (*handler_fn)(struct call *c);

struct route {
    const char *method;
    const char *pattern; /* segments; "{id}" matches a conversation id */
    int auth;            /* enum auth */
    int body;            /* enum body */
    int limited;         /* 1: counts against the per-address rate limit */
    handler_fn run;
    const char *name; /* metrics label */
};

static int h_create(struct call *c);
static int h_message(struct call *c);
static int h_messages(struct call *c);
static int h_events(struct call *c);
static int h_feedback(struct call *c);
static int h_queue(struct call *c);
static int h_claim(struct call *c);
static int h_context(struct call *c);
static int h_agent_message(struct call *c);
static int h_transfer(struct call *c);
static int h_release(struct call *c);
static int h_resolve(struct call *c);
static int h_health(struct call *c);
static int h_metrics(struct call *c);
static int h_reload(struct call *c);
static int h_erase(struct call *c);
static int h_stats(struct call *c);
static int h_openapi(struct call *c);
static int h_accounts(struct call *c);
static int h_presence(struct call *c);
static int h_account_add(struct call *c);
static int h_account_change(struct call *c);

#define R(m, p, auth, body, lim, fn)                                                                         \
    {                                                                                                        \
        m, p, auth, body, lim, fn, m " " p                                                                   \
    }
static const struct route routes[] = {
    R("POST", "/v1/conversations", AUTH_NONE, BODY_REQUIRED, 1, h_create),
    R("POST", "/v1/conversations/{id}/messages", AUTH_CUSTOMER, BODY_REQUIRED, 1, h_message),
    R("GET", "/v1/conversations/{id}/messages", AUTH_PARTY, BODY_NONE, 1, h_messages),
    R("GET", "/v1/conversations/{id}/events", AUTH_PARTY, BODY_NONE, 1, h_events),
    R("POST", "/v1/conversations/{id}/feedback", AUTH_CUSTOMER, BODY_REQUIRED, 1, h_feedback),
    R("GET", "/v1/queue", AUTH_AGENT, BODY_NONE, 1, h_queue),
    R("POST", "/v1/queue/claim", AUTH_AGENT, BODY_OPTIONAL, 1, h_claim),
    R("POST", "/v1/conversations/{id}/claim", AUTH_AGENT, BODY_OPTIONAL, 1, h_claim),
    R("GET", "/v1/conversations/{id}", AUTH_AGENT, BODY_NONE, 1, h_context),
    R("POST", "/v1/conversations/{id}/agent-messages", AUTH_AGENT, BODY_REQUIRED, 1, h_agent_message),
    R("POST", "/v1/conversations/{id}/transfer", AUTH_AGENT, BODY_REQUIRED, 1, h_transfer),
    R("POST", "/v1/conversations/{id}/release", AUTH_AGENT, BODY_OPTIONAL, 1, h_release),
    R("POST", "/v1/conversations/{id}/resolve", AUTH_AGENT, BODY_OPTIONAL, 1, h_resolve),
    R("GET", "/v1/stats", AUTH_AGENT, BODY_NONE, 1, h_stats),
    R("POST", "/v1/agent/presence", AUTH_AGENT, BODY_REQUIRED, 1, h_presence),
    R("GET", "/healthz", AUTH_NONE, BODY_NONE, 0, h_health),
    R("GET", "/metrics", AUTH_NONE, BODY_NONE, 0, h_metrics),
    R("GET", "/openapi.json", AUTH_NONE, BODY_NONE, 0, h_openapi),
    R("POST", "/v1/admin/reload", AUTH_ADMIN, BODY_OPTIONAL, 1, h_reload),
    R("POST", "/v1/admin/erase", AUTH_ADMIN, BODY_REQUIRED, 1, h_erase),
    R("GET", "/v1/admin/agents", AUTH_ADMIN, BODY_NONE, 1, h_accounts),
    R("POST", "/v1/admin/agents", AUTH_ADMIN, BODY_REQUIRED, 1, h_account_add),
    R("POST", "/v1/admin/agents/{id}/disable", AUTH_ADMIN, BODY_OPTIONAL, 1, h_account_change),
    R("POST", "/v1/admin/agents/{id}/enable", AUTH_ADMIN, BODY_OPTIONAL, 1, h_account_change),
    R("POST", "/v1/admin/agents/{id}/rotate", AUTH_ADMIN, BODY_OPTIONAL, 1, h_account_change),
};
#undef R
#define N_ROUTES (sizeof routes / sizeof routes[0])

static const char *route_names[N_ROUTES + 2];
static pthread_once_t route_names_once = PTHREAD_ONCE_INIT;

static void fill_route_names(void)
{
    for (size_t k = 0; k < N_ROUTES; k++)
        route_names[k] = routes[k].name;
    route_names[N_ROUTES] = "static";
    route_names[N_ROUTES + 1] = "unmatched";
}

const char *const *api_route_names(size_t *n)
{
    pthread_once(&route_names_once, fill_route_names);
    *n = N_ROUTES + 2;
    return route_names;
}

size_t api_route_static(void)
{
    return N_ROUTES;
}

size_t api_route_unmatched(void)
{
    return N_ROUTES + 1;
}

int api_create(const struct api_config *cfg, struct api **out)
{
    struct api *a = kefu_calloc(1, sizeof *a);
    if (!a)
        return KEFU_ENOMEM;
    a->cfg = *cfg;
    double ip_burst = cfg->rate_ip * 2 < 10 ? 10 : cfg->rate_ip * 2;
    double conv_burst = cfg->rate_conv * 5 < 5 ? 5 : cfg->rate_conv * 5;
    if (rate_create(cfg->rate_ip, ip_burst, 16384, &a->ip_rate) < 0 ||
        rate_create(cfg->rate_conv, conv_burst, 16384, &a->conv_rate) < 0) {
        api_free(a);
        return KEFU_ENOMEM;
    }
    atomic_init(&a->draining, 0);
    atomic_init(&a->queue_version, 0);
    *out = a;
    return 0;
}

void api_free(struct api *a)
{
    if (!a)
        return;
    rate_free(a->ip_rate);
    rate_free(a->conv_rate);
    free(a);
}

void api_queue_changed(struct api *a)
{
    atomic_fetch_add(&a->queue_version, 1);
}

void api_set_draining(struct api *a, int on)
{
    atomic_store(&a->draining, on);
}

void api_response_init(struct api_response *r)
{
    memset(r, 0, sizeof *r);
    text_buf_init(&r->text);
    r->status = 500;
    r->content_type = "application/json";
}

void api_response_release(struct api_response *r)
{
    if (r->call) { /* its done ran, but the client went away before the answer */
        dialog_message_drop(r->call);
        r->call = NULL;
    }
    json_decref(r->json);
    r->json = NULL;
    text_buf_release(&r->text);
}

void api_error(struct api_response *r, int status, const char *code, const char *message)
{
    json_decref(r->json);
    r->json = json_pack("{s:{s:s, s:s}}", "error", "code", code, "message", message ? message : "");
    if (!r->json) /* message was not valid UTF-8: say so without it */
        r->json = json_pack("{s:{s:s, s:s}}", "error", "code", code, "message", kefu_strerror(KEFU_EUTF8));
    r->status = status;
    r->code = code;
    r->content_type = "application/json";
}

/* ---- errors ---- */

static const struct {
    int rc, status;
    const char *code;
} errors[] = {
    {KEFU_EINVAL, 400, "invalid_request"}, {KEFU_EUTF8, 400, "invalid_utf8"},
    {KEFU_ERANGE, 413, "too_large"},       {KEFU_EAUTH, 401, "unauthorized"},
    {KEFU_EPERM, 403, "forbidden"},        {KEFU_ENOENT, 404, "not_found"},
    {KEFU_ECONFLICT, 409, "conflict"},     {KEFU_ELIMIT, 429, "rate_limited"},
    {KEFU_EBUSY, 503, "unavailable"},      {KEFU_EIO, 503, "storage_error"},
    {KEFU_ENOMEM, 503, "out_of_memory"},   {KEFU_ESYNTAX, 409, "rules_invalid"},
    {KEFU_ENOSPC, 503, "storage_full"},
};

/* Turns a dialog failure into an error response with dialog_error()'s reason. */
static void fail_rc(struct api_response *r, int rc)
{
    const char *why = dialog_error();
    if (!why || !*why)
        why = kefu_strerror(rc);
    for (size_t k = 0; k < sizeof errors / sizeof errors[0]; k++)
        if (errors[k].rc == rc) {
            api_error(r, errors[k].status, errors[k].code, why);
            if (rc == KEFU_EAUTH)
                r->www_authenticate = 1;
            if (rc == KEFU_ENOSPC)
                r->retry_after = 30; /* nothing was stored: the same request may be sent again */
            if (rc == KEFU_EIO)      /* nothing was acknowledged: the same request may be sent again */
                r->retry_after = 1;
            return;
        }
    api_error(r, 500, "internal", why);
}

/* ---- matching ---- */

static int id_char(char ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '-' ||
           ch == '_';
}

/* Matches path against pattern; copies the {id} segment into id. */
static int path_match(const char *pattern, const char *path, char *id)
{
    const char *p = pattern, *s = path;
    while (*p && *s) {
        if (strncmp(p, "{id}", 4) == 0) {
            size_t n = 0;
            while (id_char(s[n]))
                n++;
            if (n == 0 || n > API_ID_MAX || (s[n] && s[n] != '/'))
                return 0;
            memcpy(id, s, n);
            id[n] = 0;
            p += 4;
            s += n;
            continue;
        }
        if (*p++ != *s++)
            return 0;
    }
    return *p == 0 && *s == 0;
}

/* Finds the route for method and path; fills allow with the methods the
 * path has when only the method is wrong. Returns the index or -1. */
static long route_find(const char *method, const char *path, char *id, char *allow, size_t cap)
{
    long found = -1;
    allow[0] = 0;
    const char *m = strcmp(method, "HEAD") == 0 ? "GET" : method;
    for (size_t k = 0; k < N_ROUTES; k++) {
        char tmp[API_ID_MAX + 1] = "";
        if (!path_match(routes[k].pattern, path, tmp))
            continue;
        if (strcmp(routes[k].method, m) == 0 && found < 0) {
            found = (long)k;
            strcpy(id, tmp);
        }
        if (!strstr(allow, routes[k].method)) {
            size_t n = strlen(allow);
            snprintf(allow + n, cap - n, "%s%s", n ? ", " : "", routes[k].method);
        }
    }
    if (allow[0]) {
        size_t n = strlen(allow);
        snprintf(allow + n, cap - n, ", OPTIONS");
    }
    return found;
}

/* ---- CORS ---- */

static const char *cors_allowed(const struct api *a, const char *origin)
{
    if (!origin)
        return NULL;
    for (size_t k = 0; k < a->cfg.n_cors; k++) {
        if (strcmp(a->cfg.cors[k], "*") == 0)
            return "*";
        if (strcmp(a->cfg.cors[k], origin) == 0)
            return origin;
    }
    return NULL;
}

static void preflight(struct api *a, const struct api_request *req, struct api_response *r, const char *allow)
{
    const char *ok = cors_allowed(a, req->origin);
    if (req->origin && !ok) {
        api_error(r, 403, "origin_not_allowed", "this origin may not call the api");
        return;
    }
    r->status = 204;
    r->cors_origin = ok;
    r->preflight = ok != NULL;
    snprintf(r->allow, sizeof r->allow, "%s", allow);
}

/* ---- credentials ---- */

/* Returns the bearer token of the request (Authorization or X-Kefu-Token,
 * or ?token= when query is 1), or NULL. Borrowed from req. */
static const char *bearer(const struct api_request *req, int query)
{
    const char *h = req->authorization;
    if (h && strncasecmp(h, "Bearer ", 7) == 0) {
        h += 7;
        while (*h == ' ')
            h++;
        return *h ? h : NULL;
    }
    if (req->kefu_token && *req->kefu_token)
        return req->kefu_token;
    if (query && req->q_token && *req->q_token)
        return req->q_token;
    return NULL;
}

/* Compares two strings in time that depends only on their lengths. */
static int same_secret(const char *a, const char *b)
{
    size_t na = strlen(a), nb = strlen(b);
    volatile unsigned char diff = (unsigned char)(na != nb);
    for (size_t i = 0; i < na; i++)
        diff |= (unsigned char)(a[i] ^ (nb ? b[i % nb] : 0));
    return diff == 0;
}

/* The customer's token, or else an agent allowed to see the conversation
 * (dialog_context() decides, as for GET /v1/conversations/{id}). */
static int party_auth(struct call *c, const char *tok)
{
    struct dialog *d = c->a->cfg.dialog;
    int rc = dialog_customer_auth(d, c->conv, tok);
    if (rc != KEFU_EPERM || dialog_agent_auth(d, tok, &c->agent) < 0)
        return rc;
    snprintf(c->resp->who, sizeof c->resp->who, "%s", c->agent);
    json_t *ctx = NULL;
    rc = dialog_context(d, c->agent, c->conv, &ctx);
    json_decref(ctx);
    return rc;
}

static int authenticate(struct call *c, const struct route *rt)
{
    const char *tok = bearer(c->req, rt->run == h_events);
    struct api_response *r = c->resp;
    if (rt->auth == AUTH_NONE)
        return 0;
    if (!tok) {
        api_error(r, 401, "unauthorized", "missing token (Authorization: Bearer TOKEN)");
        r->www_authenticate = 1;
        return -1;
    }
    int rc = 0;
    if (rt->auth == AUTH_CUSTOMER)
        rc = dialog_customer_auth(c->a->cfg.dialog, c->conv, tok);
    else if (rt->auth == AUTH_PARTY)
        rc = party_auth(c, tok);
    else if (rt->auth == AUTH_AGENT) {
        rc = dialog_agent_auth(c->a->cfg.dialog, tok, &c->agent);
        if (rc == 0 && c->agent)
            snprintf(r->who, sizeof r->who, "%s", c->agent);
    } else {
        const char *want = c->a->cfg.admin_token;
        if (!want || !*want) {
            api_error(r, 403, "forbidden", "the admin api is off (set KEFU_ADMIN_TOKEN)");
            return -1;
        }
        if (!same_secret(tok, want)) {
            api_error(r, 401, "unauthorized", "wrong admin token");
            r->www_authenticate = 1;
            return -1;
        }
    }
    if (rc < 0) {
        fail_rc(r, rc);
        return -1;
    }
    return 0;
}

/* ---- bodies ---- */

int api_json_too_deep(const char *s, size_t len, int max)
{
    int depth = 0, in_str = 0;
    for (size_t i = 0; i < len; i++) {
        char ch = s[i];
        if (in_str) {
            if (ch == '\\')
                i++;
            else if (ch == '"')
                in_str = 0;
        } else if (ch == '"') {
            in_str = 1;
        } else if (ch == '[' || ch == '{') {
            if (++depth > max)
                return 1;
        } else if (ch == ']' || ch == '}') {
            depth--;
        }
    }
    return 0;
}

static int is_json_type(const char *ct)
{
    if (!ct)
        return 0;
    while (*ct == ' ')
        ct++;
    size_t n = strlen("application/json");
    return strncasecmp(ct, "application/json", n) == 0 && (ct[n] == 0 || ct[n] == ';' || ct[n] == ' ');
}

static int parse_body(struct call *c, const struct route *rt)
{
    const struct api_request *req = c->req;
    struct api_response *r = c->resp;
    if (req->body_len == 0) {
        if (rt->body == BODY_REQUIRED) {
            api_error(r, 400, "invalid_request", "this call needs a json body");
            return -1;
        }
        return 0;
    }
    if (!is_json_type(req->content_type)) {
        api_error(r, 415, "unsupported_media_type", "bodies must be Content-Type: application/json");
        return -1;
    }
    if (!text_utf8_valid(req->body, req->body_len)) {
        api_error(r, 400, "invalid_utf8", "the body is not valid utf-8");
        return -1;
    }
    if (api_json_too_deep(req->body, req->body_len, API_JSON_DEPTH)) {
        api_error(r, 400, "too_deep", "the json nests deeper than 16 levels");
        return -1;
    }
    json_error_t err;
    c->body = json_loadb(req->body, req->body_len, JSON_REJECT_DUPLICATES, &err);
    if (!c->body) {
        char msg[256];
        snprintf(msg, sizeof msg, "invalid json at line %d, column %d: %s", err.line, err.column, err.text);
        api_error(r, 400, "invalid_json", msg);
        return -1;
    }
    if (!json_is_object(c->body)) {
        api_error(r, 400, "invalid_request", "the body must be a json object");
        return -1;
    }
    return 0;
}

/* Checks the "text" field every message body needs. */
static int check_text(struct call *c)
{
    json_t *t = json_object_get(c->body, "text");
    if (!json_is_string(t)) {
        api_error(c->resp, 400, "invalid_request", "'text' must be a string");
        return -1;
    }
    size_t n = json_string_length(t);
    if (n > DIALOG_MAX_TEXT) {
        api_error(c->resp, 413, "message_too_long", "a message holds at most 4096 bytes");
        return -1;
    }
    const char *s = json_string_value(t);
    size_t k = 0;
    while (k < n && (s[k] == ' ' || s[k] == '\t' || s[k] == '\n' || s[k] == '\r'))
        k++;
    if (k == n) {
        api_error(c->resp, 400, "invalid_request", "'text' is empty");
        return -1;
    }
    if (memchr(s, 0, n)) {
        api_error(c->resp, 400, "invalid_request", "'text' contains a NUL character");
        return -1;
    }
    return 0;
}

static int limited(struct api *a, struct rate *rt, const char *key, double now, struct api_response *r,
                   const char *what)
{
    double retry = 0;
    if (rate_take(rt, key, strlen(key), now, &retry) == 0)
        return 0;
    api_error(r, 429, "rate_limited", what);
    r->retry_after = (int)ceil(retry);
    if (r->retry_after < 1)
        r->retry_after = 1;
    return -1;
}

/* ---- handlers: each makes one dialog call ---- */

static int ok(struct call *c, int status, int rc, json_t *out)
{
    if (rc < 0) {
        json_decref(out);
        fail_rc(c->resp, rc);
        return rc;
    }
    c->resp->status = status;
    c->resp->json = out;
    return 0;
}

static int h_create(struct call *c)
{
    json_t *out = NULL;
    int rc = dialog_conversation_create(c->a->cfg.dialog, c->body, &out);
    return ok(c, 201, rc, out);
}

static int h_message(struct call *c)
{
    if (check_text(c) < 0)
        return 0;
    if (limited(c->a, c->a->conv_rate, c->conv, c->req->now, c->resp,
                "too many messages in this conversation"))
        return 0;
    if (c->req->done) { /* the transport parks the request until the commit */
        snprintf(c->resp->conv, sizeof c->resp->conv, "%s", c->conv);
        c->resp->push = API_PUSH_COMMIT;
        dialog_message_start(c->a->cfg.dialog, c->conv, c->body, c->req->done, c->req->done_ctx,
                             &c->resp->call);
        return 0;
    }
    json_t *out = NULL;
    int rc = dialog_customer_message(c->a->cfg.dialog, c->conv, c->body, &out);
    return ok(c, 200, rc, out);
}

int api_finish(struct api *a, struct api_response *resp)
{
    struct call c = {.a = a, .resp = resp};
    snprintf(c.conv, sizeof c.conv, "%s", resp->conv);
    json_t *out = NULL;
    int rc = dialog_message_finish(resp->call, &out);
    if (rc == 1) /* it waited behind the conversation's previous message, and runs now */
        return 1;
    resp->call = NULL;
    resp->push = API_PUSH_NONE;
    ok(&c, 200, rc, out);
    return 0;
}

/* Parses a non-negative decimal query argument; -1 when malformed. */
static long query_long(const char *s, long dflt)
{
    if (!s || !*s)
        return dflt;
    char *end;
    long v = strtol(s, &end, 10);
    return *end || v < 0 ? -1 : v;
}

static int h_messages(struct call *c)
{
    long after = query_long(c->req->q_after, 0);
    long wait = query_long(c->req->q_wait, 0);
    if (after < 0 || wait < 0) {
        api_error(c->resp, 400, "invalid_request", "'after' and 'wait' must be non-negative integers");
        return 0;
    }
    if (wait > API_MAX_WAIT_S)
        wait = API_MAX_WAIT_S;
    if (strcmp(c->req->method, "HEAD") == 0)
        wait = 0;
    json_t *out = NULL;
    int rc = dialog_messages(c->a->cfg.dialog, c->conv, after, &out);
    if (rc == 0 && wait > 0 && json_array_size(json_object_get(out, "messages")) == 0) {
        json_decref(out);
        struct api_response *r = c->resp;
        r->push = API_PUSH_WAIT;
        snprintf(r->conv, sizeof r->conv, "%s", c->conv);
        r->after = after;
        r->wait_s = (double)wait;
        r->status = 200;
        return 0;
    }
    return ok(c, 200, rc, out);
}

static int h_events(struct call *c)
{
    const char *from = c->req->last_event_id ? c->req->last_event_id : c->req->q_after;
    long after = query_long(from, 0);
    if (after < 0) {
        api_error(c->resp, 400, "invalid_request", "'after' and Last-Event-ID must be non-negative integers");
        return 0;
    }
    struct api_response *r = c->resp;
    r->push = API_PUSH_STREAM;
    snprintf(r->conv, sizeof r->conv, "%s", c->conv);
    r->after = after;
    r->status = 200;
    r->content_type = "text/event-stream";
    return 0;
}

static int h_feedback(struct call *c)
{
    json_t *out = NULL;
    int rc = dialog_feedback(c->a->cfg.dialog, c->conv, c->body, &out);
    return ok(c, 200, rc, out);
}

/* Lists the agent's queues with the version they were read at. */
static int queue_json(struct api *a, const char *agent, struct api_response *r)
{
    long version = atomic_load(&a->queue_version); /* before the read: a change after it bumps it */
    json_t *out = NULL;
    int rc = dialog_queue_list(a->cfg.dialog, agent, &out);
    if (rc < 0) {
        json_decref(out);
        fail_rc(r, rc);
        return rc;
    }
    json_object_set_new(out, "version", json_integer(version));
    if (agent && *agent)
        json_object_set_new(out, "agent", json_string(agent));
    json_decref(r->json);
    r->json = out;
    r->status = 200;
    return 0;
}

static int h_queue(struct call *c)
{
    long since = query_long(c->req->q_since, -1);
    long wait = query_long(c->req->q_wait, 0);
    if ((c->req->q_since && since < 0) || wait < 0) {
        api_error(c->resp, 400, "invalid_request", "'since' and 'wait' must be non-negative integers");
        return 0;
    }
    if (wait > API_MAX_WAIT_S)
        wait = API_MAX_WAIT_S;
    if (wait > 0 && since >= 0 && since == atomic_load(&c->a->queue_version) &&
        strcmp(c->req->method, "HEAD") != 0) {
        struct api_response *r = c->resp;
        r->push = API_PUSH_WAIT; /* conv "" is the queue */
        r->conv[0] = 0;
        r->after = since;
        r->wait_s = (double)wait;
        r->status = 200;
        return 0;
    }
    return queue_json(c->a, c->agent, c->resp);
}

static int h_claim(struct call *c)
{
    json_t *out = NULL;
    int rc = dialog_claim(c->a->cfg.dialog, c->agent, c->conv[0] ? c->conv : NULL, &out);
    return ok(c, 200, rc, out);
}

static int h_context(struct call *c)
{
    json_t *out = NULL;
    int rc = dialog_context(c->a->cfg.dialog, c->agent, c->conv, &out);
    return ok(c, 200, rc, out);
}

static int h_agent_message(struct call *c)
{
    if (check_text(c) < 0)
        return 0;
    json_t *out = NULL;
    int rc = dialog_agent_message(c->a->cfg.dialog, c->agent, c->conv, c->body, &out);
    return ok(c, 200, rc, out);
}

static int h_transfer(struct call *c)
{
    if (!json_is_string(json_object_get(c->body, "queue"))) {
        api_error(c->resp, 400, "invalid_request", "'queue' must be a string");
        return 0;
    }
    json_t *out = NULL;
    int rc = dialog_transfer(c->a->cfg.dialog, c->agent, c->conv, c->body, &out);
    return ok(c, 200, rc, out);
}

static int h_release(struct call *c)
{
    json_t *out = NULL;
    int rc = dialog_release(c->a->cfg.dialog, c->agent, c->conv, &out);
    return ok(c, 200, rc, out);
}

static int h_resolve(struct call *c)
{
    json_t *out = NULL;
    int rc = dialog_resolve(c->a->cfg.dialog, c->agent, c->conv, &out);
    return ok(c, 200, rc, out);
}

/* The figures of the day for the console; ?since=UNIX picks another start. */
static int h_stats(struct call *c)
{
    long since = query_long(c->req->q_since, -1);
    if (c->req->q_since && since < 0) {
        api_error(c->resp, 400, "invalid_request", "'since' must be a non-negative integer");
        return 0;
    }
    json_t *out = NULL;
    int rc = dialog_stats(c->a->cfg.dialog, since, &out);
    return ok(c, 200, rc, out);
}

static int h_presence(struct call *c)
{
    json_t *out = NULL;
    int rc = dialog_agent_presence(c->a->cfg.dialog, c->agent, c->body, &out);
    return ok(c, 200, rc, out);
}

static int h_health(struct call *c)
{
    json_t *out = NULL;
    int rc = dialog_health(c->a->cfg.dialog, &out);
    if (rc == 0 && atomic_load(&c->a->draining)) {
        json_object_set_new(out, "status", json_string("draining"));
        return ok(c, 503, 0, out);
    }
    return ok(c, 200, rc, out);
}

static int h_metrics(struct call *c)
{
    struct api_response *r = c->resp;
    int rc = dialog_metrics(c->a->cfg.dialog, &r->text);
    if (rc == 0 && c->a->cfg.metrics)
        rc = metrics_render(c->a->cfg.metrics, &r->text);
    if (rc == 0 && c->a->cfg.gauges)
        c->a->cfg.gauges(c->a->cfg.gauges_ctx, &r->text);
    if (rc == 0 && c->a->cfg.webhook) {
        struct webhook_stats ws;
        webhook_stats(c->a->cfg.webhook, &ws);
        rc = metrics_printf(&r->text,
                            "# TYPE kefu_webhook_events_total counter\n"
                            "kefu_webhook_events_total{result=\"delivered\"} %lu\n"
                            "kefu_webhook_events_total{result=\"dead\"} %lu\n"
                            "# TYPE kefu_webhook_failures_total counter\nkefu_webhook_failures_total %lu\n",
                            ws.delivered, ws.dead, ws.failed);
    }
    if (rc < 0) {
        fail_rc(r, rc);
        return rc;
    }
    r->status = 200;
    r->content_type = "text/plain; version=0.0.4; charset=utf-8";
    return 0;
}

/* GET /openapi.json: the API's contract, as built into the binary. */
static int h_openapi(struct call *c)
{
    struct api_response *r = c->resp;
    int rc = metrics_printf(&r->text, "%.*s", (int)openapi_json_len, (const char *)openapi_json);
    if (rc < 0) {
        fail_rc(r, rc);
        return rc;
    }
    r->status = 200;
    r->content_type = "application/json";
    return 0;
}

/* Lists the reload's diagnostics as [{file, line, col, severity, message}]
 * and logs each one. */
static json_t *diag_json(const struct rules_diag *d)
{
    json_t *v = json_array();
    for (size_t k = 0; k < d->n; k++) {
        const struct rules_msg *m = &d->v[k];
        const char *sev = m->severity == RULES_ERROR ? "error" : "warning";
        json_array_append_new(v, json_pack("{s:s?, s:i, s:i, s:s, s:s?}", "file", m->file, "line", m->line,
                                           "col", m->col, "severity", sev, "message", m->text));
        log_msg(m->severity == RULES_ERROR ? LOG_LEVEL_ERROR : LOG_LEVEL_WARN, "%s:%d:%d: %s",
                m->file ? m->file : "", m->line, m->col, m->text ? m->text : "");
    }
    return v;
}

static int h_reload(struct call *c)
{
    struct rules_diag d;
    rules_diag_init(&d);
    int rc = dialog_reload(c->a->cfg.dialog, &d);
    json_t *msgs = diag_json(&d);
    rules_diag_release(&d);
    if (rc < 0) {
        char why[160];
        snprintf(why, sizeof why, "the rules did not compile (%zu diagnostics); the running rules stay",
                 json_array_size(msgs));
        log_msg(LOG_LEVEL_ERROR, "reload failed: %s", why);
        fail_rc(c->resp, rc);
        json_t *e = json_object_get(c->resp->json, "error");
        if (rc == KEFU_ESYNTAX)
            json_object_set_new(e, "message", json_string(why));
        json_object_set_new(e, "diagnostics", msgs);
        return rc;
    }
    log_msg(LOG_LEVEL_INFO, "rules reloaded");
    json_t *health = NULL;
    dialog_health(c->a->cfg.dialog, &health);
    json_t *out = json_pack("{s:b, s:o, s:O?}", "ok", 1, "diagnostics", msgs, "rules",
                            json_object_get(health, "rules"));
    json_decref(health);
    return ok(c, 200, 0, out);
}

/* POST /v1/admin/erase {customer}: the id travels in the body, so it
 * never reaches the access log's path. */
static int h_erase(struct call *c)
{
    json_t *id = json_object_get(c->body, "customer");
    if (!json_is_string(id) || json_string_length(id) == 0 || json_string_length(id) > 127) {
        api_error(c->resp, 400, "invalid_request",
                  "expected {customer} with a customer id of 1 to 127 bytes");
        return KEFU_EINVAL;
    }
    json_t *out = NULL, *convs = NULL;
    int rc = dialog_erase_customer(c->a->cfg.dialog, json_string_value(id), &out, &convs);
    json_decref(convs); /* their webhook events left the outbox with them */
    if (rc == 0)
        log_msg(LOG_LEVEL_INFO, "erased a customer: %lld conversations, %lld messages",
                (long long)json_integer_value(json_object_get(out, "conversations")),
                (long long)json_integer_value(json_object_get(out, "messages")));
    return ok(c, 200, rc, out);
}

/* ---- agent accounts ---- */

static int h_accounts(struct call *c)
{
    json_t *out = NULL;
    int rc = dialog_accounts(c->a->cfg.dialog, &out);
    return ok(c, 200, rc, out);
}

static int h_account_add(struct call *c)
{
    json_t *out = NULL;
    int rc = dialog_account_add(c->a->cfg.dialog, c->body, &out);
    if (rc == 0)
        log_msg(LOG_LEVEL_INFO, "agent account '%s' added", json_string_value(json_object_get(out, "name")));
    return ok(c, 201, rc, out);
}

/* POST /v1/admin/agents/{name}/(disable|enable|rotate): the verb is the last segment. */
static int h_account_change(struct call *c)
{
    const char *what = strrchr(c->req->path, '/') + 1;
    json_t *out = NULL;
    int rc = dialog_account_change(c->a->cfg.dialog, c->conv, what, &out);
    if (rc == 0)
        log_msg(LOG_LEVEL_INFO, "agent account '%s': %s", c->conv, what);
    return ok(c, 200, rc, out);
}

/* ---- the entry points ---- */

static void dispatch(struct call *c, const struct route *rt)
{
    const struct api_request *req = c->req;
    struct api_response *r = c->resp;
    if (rt->limited && limited(c->a, c->a->ip_rate, req->ip ? req->ip : "", req->now, r,
                               "too many requests from this address"))
        return;
    if (authenticate(c, rt) < 0 || parse_body(c, rt) < 0)
        return;
    rt->run(c);
}

void api_handle(struct api *a, const struct api_request *req, struct api_response *resp)
{
    struct call c = {.a = a, .req = req, .resp = resp};
    char allow[sizeof resp->allow];
    long k = route_find(req->method, req->path, c.conv, allow, sizeof allow);
    resp->route = k >= 0 ? (size_t)k : api_route_unmatched();
    resp->cors_origin = cors_allowed(a, req->origin);
    if (strcmp(req->method, "OPTIONS") == 0) {
        if (!allow[0])
            api_error(resp, 404, "not_found", "no such endpoint");
        else
            preflight(a, req, resp, allow);
        return;
    }
    if (k < 0) {
        if (allow[0]) {
            api_error(resp, 405, "method_not_allowed", "this endpoint does not take that method");
            snprintf(resp->allow, sizeof resp->allow, "%s", allow);
        } else {
            api_error(resp, 404, "not_found", "no such endpoint");
        }
        return;
    }
    dispatch(&c, &routes[k]);
    json_decref(c.body);
}

int api_poll(struct api *a, const char *conv, long after, int final, struct api_response *resp)
{
    if (!conv[0]) { /* the agent's queue: anything new since version `after`? */
        if (!final && atomic_load(&a->queue_version) == after)
            return 0;
        resp->push = API_PUSH_NONE;
        queue_json(a, resp->who, resp);
        return 1;
    }
    json_t *out = NULL;
    int rc = dialog_messages(a->cfg.dialog, conv, after, &out);
    if (rc == 0 && !final && json_array_size(json_object_get(out, "messages")) == 0) {
        json_decref(out);
        return 0;
    }
    resp->push = API_PUSH_NONE;
    if (rc < 0) {
        json_decref(out);
        fail_rc(resp, rc);
    } else {
        json_decref(resp->json);
        resp->json = out;
        resp->status = 200;
    }
    return 1;
}

int api_events(struct api *a, const char *conv, long *after, struct text_buf *out)
{
    json_t *res = NULL;
    int rc = dialog_messages(a->cfg.dialog, conv, *after, &res);
    if (rc < 0)
        return rc;
    json_t *msgs = json_object_get(res, "messages");
    size_t k;
    json_t *m;
    int n = 0;
    json_array_foreach(msgs, k, m)
    {
        long seq = (long)json_integer_value(json_object_get(m, "seq"));
        char *data = json_dumps(m, JSON_COMPACT | JSON_REAL_PRECISION(6));
        if (!data)
            continue;
        rc = metrics_printf(out, "id: %ld\nevent: message\ndata: %s\n\n", seq, data);
        free(data);
        if (rc < 0)
            break;
        if (seq > *after)
            *after = seq;
        n++;
    }
    json_decref(res);
    return rc < 0 ? rc : n;
}
