/* metrics.h — HTTP counters and the request latency histogram for
 * /metrics: requests by route and status, seconds by route. Lock-free
 * (relaxed atomics); rendered as Prometheus text. */
#ifndef KEFU_METRICS_H
#define KEFU_METRICS_H

#include <stddef.h>

#include "text.h"

struct metrics; /* opaque */

/* Creates counters for n routes named by names (borrowed; must outlive
 * the metrics). *out is new, free it with metrics_free(). */
int metrics_create(const char *const *names, size_t n, struct metrics **out);
void metrics_free(struct metrics *m); /* frees m; NULL is fine */
/* Counts one finished request of route (0 <= route < n) with status. */
void metrics_observe(struct metrics *m, size_t route, int status, double seconds);
/* Appends the kefu_http_requests_total counters and the
 * kefu_http_request_duration_seconds histogram to out. */
int metrics_render(const struct metrics *m, struct text_buf *out);
/* Appends printf-formatted text to out (grows it). Returns 0 or KEFU_ENOMEM. */
int metrics_printf(struct text_buf *out, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
