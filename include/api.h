/* api.h — the HTTP API v1 without the transport: routes, authentication,
 * body validation, rate limits, CORS decisions and the mapping of KEFU_E*
 * codes to statuses and {"error":{code,message}} bodies. http.c turns a
 * libmicrohttpd request into a struct api_request and the struct
 * api_response back into bytes; long-poll and SSE are asked for through
 * api_response.push and served by http.c with api_poll()/api_events().
 * A customer message does not hold a transport thread while it commits:
 * when the request carries a completion (api_request.done), api starts
 * the message, answers API_PUSH_COMMIT, and the transport parks the
 * request until done runs, then calls api_finish() for the response.
 * api calls dialog.h and nothing below it. */
#ifndef KEFU_API_H
#define KEFU_API_H

#include <jansson.h>
#include <stddef.h>

#include "dialog.h"
#include "metrics.h"
#include "text.h"
#include "webhook.h"

#define API_ID_MAX      64         /* bytes in a conversation id */
#define API_BODY_MAX    (64 << 10) /* request body cap (413 beyond) */
#define API_JSON_DEPTH  16         /* nesting levels a body may have */
#define API_MAX_WAIT_S  30         /* long-poll cap for ?wait= */
#define API_MAX_ORIGINS 16

struct api; /* opaque */

struct api_config {
    struct dialog *dialog;             /* borrowed */
    const char *admin_token;           /* NULL or "": admin calls are refused */
    const char *cors[API_MAX_ORIGINS]; /* allowed origins ("*": any, no credentials); borrowed */
    size_t n_cors;
    double rate_ip;          /* requests per second per client address; 0 = off */
    double rate_conv;        /* customer messages per second per conversation; 0 = off */
    struct metrics *metrics; /* borrowed; rendered by GET /metrics (may be NULL) */
    /* appends the transport's gauges to /metrics (may be NULL) */
    void (*gauges)(void *ctx, struct text_buf *out);
    void *gauges_ctx;
    struct webhook *webhook; /* borrowed; its counters join /metrics (may be NULL) */
};

/* One request as the transport parsed it; everything is borrowed. Header
 * and query fields are NULL when absent. */
/* Completion of a deferred request: runs exactly once, on the store's
 * writer thread or before api_handle() returns; it must only wake the
 * request (api_finish() is then called on the transport's thread). */
typedef void (*api_done_fn)(void *ctx);

struct api_request {
    const char *method, *path; /* path is percent-decoded, without the query */
    const char *content_type, *authorization, *kefu_token, *origin, *last_event_id;
    const char *q_after, *q_wait, *q_token, *q_since; /* query arguments */
    const char *body;
    size_t body_len;
    const char *ip;   /* client address as text (rate-limit key) */
    double now;       /* monotonic seconds */
    api_done_fn done; /* NULL: answer every request before api_handle() returns */
    void *done_ctx;
};

enum api_push {
    API_PUSH_NONE = 0,
    API_PUSH_WAIT,   /* long-poll: park until conv changes or wait_s passes, then api_poll() */
    API_PUSH_STREAM, /* SSE: stream api_events() for conv from after */
    API_PUSH_COMMIT, /* a write in flight: after api_request.done ran, api_finish() fills the response */
};

struct api_response {
    int status;
    json_t *json;              /* new: the body when set */
    struct text_buf text;      /* otherwise the body (owned) */
    const char *content_type;  /* static */
    char allow[80];            /* Allow header (405, OPTIONS), "" if none */
    int retry_after;           /* Retry-After seconds, 0 if none */
    int www_authenticate;      /* 1: add WWW-Authenticate: Bearer */
    const char *cors_origin;   /* Access-Control-Allow-Origin value (borrowed), NULL if none */
    int preflight;             /* 1: add the preflight headers */
    int push;                  /* enum api_push */
    char conv[API_ID_MAX + 1]; /* "" with API_PUSH_WAIT: the agent's queue */
    long after;                /* the last seq seen (or queue version) */
    double wait_s;
    size_t route;             /* index into api_route_names(), for metrics */
    const char *code;         /* error code of an error response (static), for the log */
    char who[64];             /* agent name, for the log */
    struct dialog_call *call; /* with API_PUSH_COMMIT: the message in flight (owned) */
};

/* Returns the route names used as metrics labels (static) and their count
 * in *n. The last two are "static" and "unmatched"; api_route_static() is
 * the index of "static". */
const char *const *api_route_names(size_t *n);
size_t api_route_static(void);    /* the metrics index of static files */
size_t api_route_unmatched(void); /* the metrics index of requests no route matched */

/* Creates the API over cfg (copied; pointers inside stay borrowed).
 * *out is new, free it with api_free(). */
int api_create(const struct api_config *cfg, struct api **out);
void api_free(struct api *a); /* frees a and its rate tables; NULL is fine */
/* Records that the queues changed (the dialog notified with conv NULL);
 * wakes nothing itself: http wakes the parked queue polls after it. */
void api_queue_changed(struct api *a);
/* While draining, /healthz answers 503 so balancers stop sending. */
void api_set_draining(struct api *a, int on);

/* Prepares an empty response. */
void api_response_init(struct api_response *r);
/* Frees the body (and finishes a message in flight whose done ran); r can
 * be reused after api_response_init(). */
void api_response_release(struct api_response *r);
/* Replaces r's body with {"error":{code, message}} and sets status. */
void api_error(struct api_response *r, int status, const char *code, const char *message);

/* Handles one request into resp (initialised by the caller). With
 * req->done set, resp->push may come back API_PUSH_COMMIT (see above). */
void api_handle(struct api *a, const struct api_request *req, struct api_response *resp);
/* Fills the response of an API_PUSH_COMMIT request once its done ran and
 * returns 0: 200 with the answer after a successful commit, else the error
 * (a failed commit is 503 storage_error: nothing was acknowledged).
 * Returns 1 when the message had waited behind its conversation's
 * previous one and now runs: park the request again until done runs. */
int api_finish(struct api *a, struct api_response *resp);
/* Long-poll: fills resp with the messages after `after` and returns 1, or,
 * when there are none and final is 0, returns 0 and leaves resp alone.
 * conv "" is the queue of agent resp->who, and `after` its version. */
int api_poll(struct api *a, const char *conv, long after, int final, struct api_response *resp);
/* SSE: appends an event per message after *after to out and advances
 * *after. Returns the number of events, or a negative KEFU_E* code when
 * the stream should end. */
int api_events(struct api *a, const char *conv, long *after, struct text_buf *out);

/* Returns 1 if s[0..len) nests arrays/objects deeper than max (strings
 * are skipped), else 0. Exposed for tests. */
int api_json_too_deep(const char *s, size_t len, int max);

#endif
