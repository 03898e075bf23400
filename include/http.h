/* http.h — the libmicrohttpd server: connections, limits, uploads, static
 * files and the push channels (long-poll and SSE without blocking a pool
 * thread). Requests for the API go to api.h; http knows no routes. */
#ifndef KEFU_HTTP_H
#define KEFU_HTTP_H

#include "api.h"

struct http; /* opaque */

struct http_config {
    const char *listen;         /* "127.0.0.1:8080", "[::1]:8080", "0.0.0.0:0" (0: any free port) */
    const char *web_dir;        /* static files; NULL or missing: none */
    unsigned threads;           /* pool size; 0 = number of cores */
    unsigned conn_limit;        /* connections in all (default 4096) */
    unsigned per_ip_limit;      /* connections per client address (default 256) */
    unsigned timeout_s;         /* idle connection timeout (default 30) */
    unsigned request_timeout_s; /* a request must arrive whole this long after accept or the
                                   previous response, or its connection is cut (default 30; 0 off) */
    double ping_s;              /* SSE heartbeat interval (default 15) */
    int trust_proxy;            /* 1: the client is the last X-Forwarded-For address (behind a proxy only) */
};
/* Fills the defaults above (listen 127.0.0.1:8080, web "web"). */
void http_config_default(struct http_config *c);

/* Starts serving: creates the api over acfg (its metrics and gauges are
 * filled in here), registers for dialog notifications and starts the
 * daemon. *out is new; stop it with http_stop(). Returns 0, KEFU_EINVAL
 * for a bad listen address, KEFU_EIO when the port cannot be bound. */
int http_start(const struct http_config *cfg, const struct api_config *acfg, struct http **out);
/* Returns the bound port (useful after listening on port 0). */
unsigned http_port(const struct http *h);
/* Writes the base URL ("http://127.0.0.1:8080") into buf. */
void http_url(const struct http *h, char *buf, size_t cap);
/* Stops accepting, answers parked long-polls, ends SSE streams and waits
 * up to timeout_ms for requests in flight. Returns how many are left. */
int http_drain(struct http *h, int timeout_ms);
/* Stops the daemon and frees everything (drains for 0 ms first if
 * http_drain() was not called). NULL is fine. */
void http_stop(struct http *h);
/* Requests in flight right now (parked long-polls and open streams count). */
int http_in_flight(const struct http *h);

#endif
