/* store_cache.h — the store's in-memory copy of recently read conversation
 * and customer rows (internal to store.c).
 *
 * The writer thread is the only writer of the database, so it keeps the
 * copies true: after each commit it applies every committed conversation
 * row to its copy and drops the copies of changed customers; an erase
 * drops everything. A reader that missed fills the slot only if no commit
 * touched the slot's set since it looked (each set has a generation that
 * every commit touching it moves), so a row read before a commit can never
 * overwrite what that commit wrote. A hash of the id picks a set of four
 * slots; a new row takes an empty one or the least recently used, so ids
 * whose hashes meet do not evict each other on every read. Sets are
 * guarded by striped mutexes. */
#ifndef KEFU_STORE_CACHE_H
#define KEFU_STORE_CACHE_H

#include "store.h"

#include <stddef.h>

struct store_cache;

/* Creates a cache of conv_slots conversations and cust_slots customers (each
 * rounded up to a power of two). *out is new (store_cache_free()). Returns 0 or KEFU_ENOMEM. */
int store_cache_new(size_t conv_slots, size_t cust_slots, struct store_cache **out);
/* Frees the cache and every copy it holds. NULL is fine. */
void store_cache_free(struct store_cache *sc);

/* Copies conversation id into *out (its memory is new: store_conv_release())
 * and returns 0; on a miss returns KEFU_ENOENT and sets *gen for store_cache_fill_conv(). */
int store_cache_get_conv(struct store_cache *sc, const char *id, struct store_conv *out, unsigned long *gen);
/* Copies only conversation id's token into token[cap]: 0, or KEFU_ENOENT on a miss. */
int store_cache_get_token(struct store_cache *sc, const char *id, char *token, size_t cap);
/* Keeps a copy of c, read from the database after store_cache_get_conv() missed with gen. */
void store_cache_fill_conv(struct store_cache *sc, const struct store_conv *c, unsigned long gen);
/* Writer: conversation row c was committed as store_put_conv() writes it
 * (c->memory NULL keeps the stored memory). */
void store_cache_wrote_conv(struct store_cache *sc, const struct store_conv *c);

/* The same three for customers; a committed customer row drops its copy. */
int store_cache_get_customer(struct store_cache *sc, const char *id, struct store_customer *out,
                             unsigned long *gen);
void store_cache_fill_customer(struct store_cache *sc, const struct store_customer *c, unsigned long gen);
void store_cache_wrote_customer(struct store_cache *sc, const char *id);

/* Writer: drops every copy (after an erase). */
void store_cache_clear(struct store_cache *sc);

/* Hits and misses so far (relaxed counts, for metrics and tests). */
void store_cache_counts(struct store_cache *sc, unsigned long long *hits, unsigned long long *misses);

#endif
