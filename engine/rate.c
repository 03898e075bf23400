/* rate.c — token buckets in an open-addressed table under one mutex.
 * A lookup probes at most PROBE slots; a key that finds neither itself
 * nor a free slot takes over the least recently used one in the window,
 * which at worst forgives a flooder a little, never blocks a newcomer. */
#include "rate.h"

#include "kefu.h"

#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define PROBE 8

struct bucket {
    unsigned char key[RATE_KEY_MAX];
    unsigned char len; /* 0: free */
    double tokens, last;
};

struct rate {
    double per_s, burst;
    size_t slots;
    struct bucket *b; /* owned */
    pthread_mutex_t lock;
};

int rate_create(double per_s, double burst, size_t slots, struct rate **out)
{
    struct rate *r = kefu_calloc(1, sizeof *r);
    if (!r)
        return KEFU_ENOMEM;
    r->per_s = per_s;
    r->burst = burst < 1 ? 1 : burst;
    r->slots = slots < PROBE ? PROBE : slots;
    if (per_s > 0 && !(r->b = kefu_calloc(r->slots, sizeof *r->b))) {
        free(r);
        return KEFU_ENOMEM;
    }
    pthread_mutex_init(&r->lock, NULL);
    *out = r;
    return 0;
}

void rate_free(struct rate *r)
{
    if (!r)
        return;
    pthread_mutex_destroy(&r->lock);
    free(r->b);
    free(r);
}

static uint64_t hash(const unsigned char *k, size_t n)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (size_t i = 0; i < n; i++)
        h = (h ^ k[i]) * 1099511628211ull;
    return h;
}

/* Returns key's bucket, claiming a free or the stalest slot for a new key. */
static struct bucket *find(struct rate *r, const unsigned char *k, size_t n, double now)
{
    size_t at = (size_t)(hash(k, n) % r->slots);
    struct bucket *victim = NULL;
    for (size_t p = 0; p < PROBE; p++) {
        struct bucket *b = &r->b[(at + p) % r->slots];
        if (b->len == n && memcmp(b->key, k, n) == 0)
            return b;
        if (!b->len) {
            victim = b;
            break;
        }
        if (!victim || b->last < victim->last)
            victim = b;
    }
    memcpy(victim->key, k, n);
    victim->len = (unsigned char)n;
    victim->tokens = r->burst;
    victim->last = now;
    return victim;
}

int rate_take(struct rate *r, const void *key, size_t len, double now, double *retry_s)
{
    if (!r || r->per_s <= 0)
        return 0;
    if (len > RATE_KEY_MAX)
        len = RATE_KEY_MAX;
    if (len == 0) { /* the empty key is one bucket too */
        key = "-";
        len = 1;
    }
    pthread_mutex_lock(&r->lock);
    struct bucket *b = find(r, key, len, now);
    b->tokens += (now - b->last) * r->per_s;
    if (b->tokens > r->burst)
        b->tokens = r->burst;
    b->last = now;
    int rc = 0;
    if (b->tokens >= 1) {
        b->tokens -= 1;
    } else {
        rc = KEFU_ELIMIT;
        if (retry_s)
            *retry_s = (1 - b->tokens) / r->per_s;
    }
    pthread_mutex_unlock(&r->lock);
    return rc;
}
