/* rate.h — token buckets keyed by a short byte string (an IP address, a
 * conversation id). A fixed table: when it is full the stalest bucket in
 * the probe window is reused, so memory stays bounded under a flood. */
#ifndef KEFU_RATE_H
#define KEFU_RATE_H

#include <stddef.h>

struct rate; /* opaque */

#define RATE_KEY_MAX 64 /* longer keys are cut */

/* Creates buckets refilling per_s tokens a second up to burst, in a table
 * of slots entries. per_s 0 allows everything. *out is new (rate_free()). */
int rate_create(double per_s, double burst, size_t slots, struct rate **out);
void rate_free(struct rate *r); /* frees r and its table; NULL is fine */
/* Takes a token from key's bucket at time now (seconds, monotonic).
 * Returns 0, or KEFU_ELIMIT with *retry_s set to the seconds until a
 * token is back. Thread-safe. */
int rate_take(struct rate *r, const void *key, size_t len, double now, double *retry_s);

#endif
