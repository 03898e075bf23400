/* httpc.h — kefu's outgoing HTTP calls (webhooks and the rules' actions).
 * One worker thread drives libcurl's multi interface, so many requests are
 * in flight at once without a thread each; each request ends in exactly one
 * callback on that thread. http:// and https:// only, certificates always
 * verified (the system's CAs, or a CA file), no redirects followed, a
 * connect and a total timeout, and a cap on the response kept. */
#ifndef KEFU_HTTPC_H
#define KEFU_HTTPC_H

#include <stddef.h>

struct httpc; /* opaque */

struct httpc_config {
    const char *ca_file;      /* PEM CA bundle servers must chain to; NULL: the system's CAs */
    double connect_timeout_s; /* default 5 */
    double timeout_s;         /* the whole request (default 10) */
    size_t max_response;      /* body bytes kept at most (default 64 KiB); more fails the request */
};

/* One POST; everything is copied by httpc_post(). */
struct httpc_request {
    const char *url;          /* http://… or https://… */
    const char *content_type; /* NULL: application/json */
    const char *body;
    size_t len;
    const char *const *headers; /* "Name: value" lines, NULL-terminated; may be NULL */
    double timeout_s;           /* this request's total timeout; 0: the client's */
    size_t max_response;        /* this request's response cap; 0: the client's */
};

/* How a request ended, borrowed for the callback. */
struct httpc_result {
    int rc;           /* 0: a response came (any status); KEFU_EIO: none (error says why);
                         KEFU_ERANGE: its body passed max_response; KEFU_EBUSY: httpc_free() ran first */
    long status;      /* HTTP status, 0 without a response */
    const char *body; /* NUL-terminated, len bytes ("" when none) */
    size_t len;
    const char *error; /* one lowercase line when rc < 0, else "" */
    int timed_out;     /* rc KEFU_EIO because a timeout passed */
};

/* Runs once per request on the worker thread (or in httpc_free()); must be short. */
typedef void (*httpc_done_fn)(void *ctx, const struct httpc_result *r);

/* Starts the worker thread; cfg's strings are copied. *out is new (httpc_free()).
 * Returns 0, KEFU_ENOENT (ca_file cannot be read) or KEFU_ENOMEM. */
int httpc_create(const struct httpc_config *cfg, struct httpc **out);
/* Stops the worker; requests still running end with KEFU_EBUSY. NULL is fine. */
void httpc_free(struct httpc *h);
/* Queues a POST and returns at once; done(ctx, result) runs exactly once later.
 * Returns 0, KEFU_EINVAL (not an http(s) URL: done does not run) or KEFU_ENOMEM. */
int httpc_post(struct httpc *h, const struct httpc_request *req, httpc_done_fn done, void *ctx);
/* httpc_post() and wait for its end: *status gets the HTTP status (0 for
 * none), err[cap] the error line. Returns the result's rc. Not from done. */
int httpc_post_wait(struct httpc *h, const struct httpc_request *req, long *status, char *err, size_t cap);
/* libcurl's version and TLS library, for kefu --version ("libcurl 7.88.1 (OpenSSL/3.0.11)"). */
const char *httpc_version(void);

#endif
