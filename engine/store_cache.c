/* store_cache.c — see store_cache.h. */
#include "store_cache.h"

#include "kefu.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define STRIPES 64
#define WAYS    4 /* slots per set: ids whose hashes meet share a set, not a slot */

struct conv_slot {
    unsigned long used;  /* 0: empty; else its set's clock when last read or filled */
    struct store_conv c; /* c.memory owned */
};

struct cust_slot {
    unsigned long used;
    struct store_customer c;
};

struct store_cache {
    size_t conv_mask, cust_mask; /* sets - 1 */
    struct conv_slot *convs;     /* WAYS slots per set */
    struct cust_slot *custs;
    unsigned long *conv_gen, *cust_gen;     /* per set: moved by every commit that touches an id of it */
    unsigned long *conv_clock, *cust_clock; /* per set: the recency stamps of its slots */
    pthread_mutex_t lock[STRIPES];
    atomic_ullong hits, misses;
};

static size_t pow2(size_t n)
{
    size_t p = 1;
    while (p < n)
        p <<= 1;
    return p;
}

static size_t hash(const char *s)
{
    size_t h = 1469598103934665603ull;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h ^ (h >> 29);
}

static void free_arrays(struct store_cache *sc)
{
    free(sc->convs);
    free(sc->custs);
    free(sc->conv_gen);
    free(sc->cust_gen);
    free(sc->conv_clock);
    free(sc->cust_clock);
}

int store_cache_new(size_t conv_slots, size_t cust_slots, struct store_cache **out)
{
    *out = NULL;
    struct store_cache *sc = kefu_calloc(1, sizeof *sc);
    if (!sc)
        return KEFU_ENOMEM;
    sc->conv_mask = pow2(conv_slots > WAYS ? (conv_slots + WAYS - 1) / WAYS : 1) - 1;
    sc->cust_mask = pow2(cust_slots > WAYS ? (cust_slots + WAYS - 1) / WAYS : 1) - 1;
    sc->convs = kefu_calloc((sc->conv_mask + 1) * WAYS, sizeof *sc->convs);
    sc->custs = kefu_calloc((sc->cust_mask + 1) * WAYS, sizeof *sc->custs);
    sc->conv_gen = kefu_calloc(sc->conv_mask + 1, sizeof *sc->conv_gen);
    sc->cust_gen = kefu_calloc(sc->cust_mask + 1, sizeof *sc->cust_gen);
    sc->conv_clock = kefu_calloc(sc->conv_mask + 1, sizeof *sc->conv_clock);
    sc->cust_clock = kefu_calloc(sc->cust_mask + 1, sizeof *sc->cust_clock);
    if (!sc->convs || !sc->custs || !sc->conv_gen || !sc->cust_gen || !sc->conv_clock || !sc->cust_clock) {
        free_arrays(sc);
        free(sc);
        return KEFU_ENOMEM;
    }
    for (int i = 0; i < STRIPES; i++)
        pthread_mutex_init(&sc->lock[i], NULL);
    *out = sc;
    return 0;
}

void store_cache_free(struct store_cache *sc)
{
    if (!sc)
        return;
    for (size_t i = 0; i < (sc->conv_mask + 1) * WAYS; i++)
        free(sc->convs[i].c.memory);
    for (int i = 0; i < STRIPES; i++)
        pthread_mutex_destroy(&sc->lock[i]);
    free_arrays(sc);
    free(sc);
}

static pthread_mutex_t *lock_of(struct store_cache *sc, size_t set)
{
    pthread_mutex_t *m = &sc->lock[set % STRIPES];
    pthread_mutex_lock(m);
    return m;
}

/* The slot of id in conversation set k, or NULL; the set's lock held. */
static struct conv_slot *conv_find(struct store_cache *sc, size_t k, const char *id)
{
    struct conv_slot *s = &sc->convs[k * WAYS];
    for (int i = 0; i < WAYS; i++)
        if (s[i].used && strcmp(s[i].c.id, id) == 0)
            return &s[i];
    return NULL;
}

/* The slot a new row of set k takes: id's own, an empty one, or the least recently used. */
static struct conv_slot *conv_victim(struct store_cache *sc, size_t k, const char *id)
{
    struct conv_slot *s = conv_find(sc, k, id), *v = &sc->convs[k * WAYS];
    for (int i = 0; !s && i < WAYS; i++)
        if (sc->convs[k * WAYS + i].used < v->used)
            v = &sc->convs[k * WAYS + i];
    return s ? s : v;
}

static struct cust_slot *cust_find(struct store_cache *sc, size_t k, const char *id)
{
    struct cust_slot *s = &sc->custs[k * WAYS];
    for (int i = 0; i < WAYS; i++)
        if (s[i].used && strcmp(s[i].c.id, id) == 0)
            return &s[i];
    return NULL;
}

static struct cust_slot *cust_victim(struct store_cache *sc, size_t k, const char *id)
{
    struct cust_slot *s = cust_find(sc, k, id), *v = &sc->custs[k * WAYS];
    for (int i = 0; !s && i < WAYS; i++)
        if (sc->custs[k * WAYS + i].used < v->used)
            v = &sc->custs[k * WAYS + i];
    return s ? s : v;
}

int store_cache_get_conv(struct store_cache *sc, const char *id, struct store_conv *out, unsigned long *gen)
{
    size_t k = hash(id) & sc->conv_mask;
    pthread_mutex_t *m = lock_of(sc, k);
    struct conv_slot *s = conv_find(sc, k, id);
    int hit = s != NULL;
    if (hit) {
        s->used = ++sc->conv_clock[k];
        *out = s->c;
        size_t n = strlen(s->c.memory);
        if (!(out->memory = malloc(n + 1)))
            hit = 0;
        else
            memcpy(out->memory, s->c.memory, n + 1);
    }
    *gen = sc->conv_gen[k];
    pthread_mutex_unlock(m);
    atomic_fetch_add_explicit(hit ? &sc->hits : &sc->misses, 1, memory_order_relaxed);
    return hit ? 0 : KEFU_ENOENT;
}

int store_cache_get_token(struct store_cache *sc, const char *id, char *token, size_t cap)
{
    size_t k = hash(id) & sc->conv_mask;
    pthread_mutex_t *m = lock_of(sc, k);
    struct conv_slot *s = conv_find(sc, k, id);
    if (s) {
        s->used = ++sc->conv_clock[k];
        snprintf(token, cap, "%s", s->c.token);
    }
    pthread_mutex_unlock(m);
    atomic_fetch_add_explicit(s ? &sc->hits : &sc->misses, 1, memory_order_relaxed);
    return s ? 0 : KEFU_ENOENT;
}

void store_cache_fill_conv(struct store_cache *sc, const struct store_conv *c, unsigned long gen)
{
    size_t n = strlen(c->memory ? c->memory : "{}");
    char *mem = malloc(n + 1);
    if (!mem)
        return;
    memcpy(mem, c->memory ? c->memory : "{}", n + 1);
    size_t k = hash(c->id) & sc->conv_mask;
    pthread_mutex_t *m = lock_of(sc, k);
    if (sc->conv_gen[k] == gen) { /* no commit touched the set since the miss */
        struct conv_slot *s = conv_victim(sc, k, c->id);
        free(s->c.memory);
        s->c = *c;
        s->c.memory = mem;
        s->used = ++sc->conv_clock[k];
        mem = NULL;
    }
    pthread_mutex_unlock(m);
    free(mem);
}

void store_cache_wrote_conv(struct store_cache *sc, const struct store_conv *c)
{
    char *mem = NULL;
    size_t n = c->memory ? strlen(c->memory) : 0;
    if (c->memory && (mem = malloc(n + 1)))
        memcpy(mem, c->memory, n + 1);
    size_t k = hash(c->id) & sc->conv_mask;
    pthread_mutex_t *m = lock_of(sc, k);
    sc->conv_gen[k]++;
    struct conv_slot *s = conv_find(sc, k, c->id);
    if (s) {
        if (c->memory && !mem) { /* out of memory: forget the row rather than keep it stale */
            free(s->c.memory);
            memset(&s->c, 0, sizeof s->c);
            s->used = 0;
        } else {
            /* what the upsert changes; id, token, channel and created_at stay */
            struct store_conv *d = &s->c;
            memcpy(d->customer, c->customer, sizeof d->customer);
            memcpy(d->locale, c->locale, sizeof d->locale);
            d->state = c->state;
            memcpy(d->queue, c->queue, sizeof d->queue);
            d->priority = c->priority;
            d->anger = c->anger;
            memcpy(d->agent, c->agent, sizeof d->agent);
            d->misses = c->misses;
            memcpy(d->pending, c->pending, sizeof d->pending);
            memcpy(d->reason, c->reason, sizeof d->reason);
            d->updated_at = c->updated_at;
            d->queued_at = c->queued_at;
            d->last_seq = c->last_seq;
            if (mem) {
                free(d->memory);
                d->memory = mem;
                mem = NULL;
            }
        }
    }
    pthread_mutex_unlock(m);
    free(mem);
}

int store_cache_get_customer(struct store_cache *sc, const char *id, struct store_customer *out,
                             unsigned long *gen)
{
    size_t k = hash(id) & sc->cust_mask;
    pthread_mutex_t *m = lock_of(sc, k);
    struct cust_slot *s = cust_find(sc, k, id);
    if (s) {
        s->used = ++sc->cust_clock[k];
        *out = s->c;
    }
    *gen = sc->cust_gen[k];
    pthread_mutex_unlock(m);
    atomic_fetch_add_explicit(s ? &sc->hits : &sc->misses, 1, memory_order_relaxed);
    return s ? 0 : KEFU_ENOENT;
}

void store_cache_fill_customer(struct store_cache *sc, const struct store_customer *c, unsigned long gen)
{
    size_t k = hash(c->id) & sc->cust_mask;
    pthread_mutex_t *m = lock_of(sc, k);
    if (sc->cust_gen[k] == gen) {
        struct cust_slot *s = cust_victim(sc, k, c->id);
        s->c = *c;
        s->used = ++sc->cust_clock[k];
    }
    pthread_mutex_unlock(m);
}

void store_cache_wrote_customer(struct store_cache *sc, const char *id)
{
    size_t k = hash(id) & sc->cust_mask;
    pthread_mutex_t *m = lock_of(sc, k);
    sc->cust_gen[k]++;
    struct cust_slot *s = cust_find(sc, k, id);
    if (s)
        s->used = 0;
    pthread_mutex_unlock(m);
}

void store_cache_clear(struct store_cache *sc)
{
    for (size_t k = 0; k <= sc->conv_mask; k++) {
        pthread_mutex_t *m = lock_of(sc, k);
        sc->conv_gen[k]++;
        for (int i = 0; i < WAYS; i++) {
            struct conv_slot *s = &sc->convs[k * WAYS + i];
            free(s->c.memory);
            memset(&s->c, 0, sizeof s->c);
            s->used = 0;
        }
        pthread_mutex_unlock(m);
    }
    for (size_t k = 0; k <= sc->cust_mask; k++) {
        pthread_mutex_t *m = lock_of(sc, k);
        sc->cust_gen[k]++;
        for (int i = 0; i < WAYS; i++)
            sc->custs[k * WAYS + i].used = 0;
        pthread_mutex_unlock(m);
    }
}

void store_cache_counts(struct store_cache *sc, unsigned long long *hits, unsigned long long *misses)
{
    *hits = atomic_load_explicit(&sc->hits, memory_order_relaxed);
    *misses = atomic_load_explicit(&sc->misses, memory_order_relaxed);
}
