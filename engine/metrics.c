/* metrics.c — per-route request counters and latency histograms. The
 * statuses kefu answers are a short fixed list, so a counter is a slot in
 * a flat array: [route][status]; anything else lands in "other". */
#include "metrics.h"

#include "kefu.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const int statuses[] = {200, 201, 204, 206, 304, 400, 401, 403, 404,
                               405, 409, 413, 415, 429, 500, 503, 0 /* other */};
#define N_STATUS (sizeof statuses / sizeof statuses[0])

static const double bounds[] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                0.1,    0.25,  0.5,    1,     2.5,  5,     10};
#define N_BOUND (sizeof bounds / sizeof bounds[0])

struct route_stats {
    atomic_ulong by_status[N_STATUS];
    atomic_ulong bucket[N_BOUND + 1]; /* last: +Inf */
    atomic_ulong micros;              /* sum of durations in microseconds */
};

struct metrics {
    const char *const *names;
    size_t n;
    struct route_stats *r; /* owned, n entries */
};

int metrics_create(const char *const *names, size_t n, struct metrics **out)
{
    struct metrics *m = kefu_calloc(1, sizeof *m);
    if (!m)
        return KEFU_ENOMEM;
    m->r = kefu_calloc(n ? n : 1, sizeof *m->r);
    if (!m->r) {
        free(m);
        return KEFU_ENOMEM;
    }
    m->names = names;
    m->n = n;
    *out = m;
    return 0;
}

void metrics_free(struct metrics *m)
{
    if (!m)
        return;
    free(m->r);
    free(m);
}

static size_t status_slot(int status)
{
    for (size_t k = 0; k + 1 < N_STATUS; k++)
        if (statuses[k] == status)
            return k;
    return N_STATUS - 1;
}

void metrics_observe(struct metrics *m, size_t route, int status, double seconds)
{
    if (!m || route >= m->n)
        return;
    struct route_stats *r = &m->r[route];
    atomic_fetch_add_explicit(&r->by_status[status_slot(status)], 1, memory_order_relaxed);
    size_t b = 0;
    while (b < N_BOUND && seconds > bounds[b])
        b++;
    atomic_fetch_add_explicit(&r->bucket[b], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&r->micros, (unsigned long)(seconds * 1e6), memory_order_relaxed);
}

int metrics_printf(struct text_buf *out, const char *fmt, ...)
{
    va_list ap;
    for (;;) {
        size_t room = out->cap > out->len ? out->cap - out->len : 0;
        va_start(ap, fmt);
        int n = vsnprintf(room ? out->s + out->len : NULL, room, fmt, ap);
        va_end(ap);
        if (n < 0)
            return KEFU_EINVAL;
        if ((size_t)n < room) {
            out->len += (size_t)n;
            return 0;
        }
        size_t cap = out->cap ? out->cap * 2 : 1024;
        while (cap < out->len + (size_t)n + 1)
            cap *= 2;
        char *s = kefu_realloc(out->s, cap);
        if (!s)
            return KEFU_ENOMEM;
        out->s = s;
        out->cap = cap;
    }
}

static int render_counts(const struct metrics *m, struct text_buf *out)
{
    int rc = metrics_printf(out, "# HELP kefu_http_requests_total HTTP requests by route and status.\n"
                                 "# TYPE kefu_http_requests_total counter\n");
    for (size_t i = 0; i < m->n && !rc; i++)
        for (size_t s = 0; s < N_STATUS && !rc; s++) {
            unsigned long v = atomic_load_explicit(&m->r[i].by_status[s], memory_order_relaxed);
            if (!v)
                continue;
            if (statuses[s])
                rc = metrics_printf(out, "kefu_http_requests_total{route=\"%s\",status=\"%d\"} %lu\n",
                                    m->names[i], statuses[s], v);
            else
                rc = metrics_printf(out, "kefu_http_requests_total{route=\"%s\",status=\"other\"} %lu\n",
                                    m->names[i], v);
        }
    return rc;
}

static int render_histogram(const struct metrics *m, struct text_buf *out)
{
    int rc = metrics_printf(out, "# HELP kefu_http_request_duration_seconds Time from request to response.\n"
                                 "# TYPE kefu_http_request_duration_seconds histogram\n");
    for (size_t i = 0; i < m->n && !rc; i++) {
        const struct route_stats *r = &m->r[i];
        unsigned long cum = 0;
        for (size_t b = 0; b <= N_BOUND; b++)
            cum += atomic_load_explicit(&r->bucket[b], memory_order_relaxed);
        if (!cum)
            continue;
        unsigned long total = cum;
        cum = 0;
        for (size_t b = 0; b < N_BOUND && !rc; b++) {
            cum += atomic_load_explicit(&r->bucket[b], memory_order_relaxed);
            rc =
                metrics_printf(out, "kefu_http_request_duration_seconds_bucket{route=\"%s\",le=\"%g\"} %lu\n",
                               m->names[i], bounds[b], cum);
        }
        if (!rc)
            rc = metrics_printf(out,
                                "kefu_http_request_duration_seconds_bucket{route=\"%s\",le=\"+Inf\"} %lu\n"
                                "kefu_http_request_duration_seconds_sum{route=\"%s\"} %.6f\n"
                                "kefu_http_request_duration_seconds_count{route=\"%s\"} %lu\n",
                                m->names[i], total, m->names[i],
                                atomic_load_explicit(&r->micros, memory_order_relaxed) / 1e6, m->names[i],
                                total);
    }
    return rc;
}

int metrics_render(const struct metrics *m, struct text_buf *out)
{
    int rc = render_counts(m, out);
    return rc ? rc : render_histogram(m, out);
}
