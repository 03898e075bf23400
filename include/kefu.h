/* kefu.h — error codes and the few definitions every module shares.
 * Functions return 0 on success or a negative KEFU_E* code; kefu_strerror()
 * names the code. Only api turns codes into HTTP statuses. */
#ifndef KEFU_H
#define KEFU_H

#include <stddef.h>

enum {
    KEFU_OK = 0,
    KEFU_ENOMEM = -1,     /* allocation failed */
    KEFU_EINVAL = -2,     /* bad argument or malformed input */
    KEFU_EUTF8 = -3,      /* input is not well-formed UTF-8 */
    KEFU_EIO = -4,        /* file or database I/O failed */
    KEFU_ESYNTAX = -5,    /* rule file does not parse or compile */
    KEFU_ENOENT = -6,     /* no such file, intent or record */
    KEFU_ERANGE = -7,     /* value or size out of range */
    KEFU_ELIMIT = -8,     /* a resource limit was hit (regex match limit, ...) */
    KEFU_EAUTH = -9,      /* missing or wrong credentials */
    KEFU_EPERM = -10,     /* credentials valid, action not allowed for them */
    KEFU_ECONFLICT = -11, /* the action does not fit the current state */
    KEFU_EBUSY = -12,     /* temporarily unavailable (overload, draining, no capacity) */
    KEFU_ENOSPC = -13,    /* the disk is full: nothing was written, retry later */
    KEFU_EUNAVAIL = -14,  /* the database server cannot be reached: nothing was written, retry later */
};

/* Returns a static, lowercase description of code. */
const char *kefu_strerror(int code);

/* Allocation goes through these so that tests can fail the Nth call.
 * Each returns new memory (free with free()) or NULL on failure. */
void *kefu_malloc(size_t n);
/* Like calloc(): n zeroed elements of size bytes; new memory or NULL. */
void *kefu_calloc(size_t n, size_t size);
/* Like realloc(): p is moved or kept; NULL on failure leaves p intact. */
void *kefu_realloc(void *p, size_t n);
/* Returns a new copy of s[0..n) with a NUL after it; free with free(). */
char *kefu_strndup(const char *s, size_t n);
/* Test hook: the nth allocation from now (1-based) fails; 0 turns it off. */
void kefu_alloc_fail_after(long n);
/* Hands free heap pages back to the system (glibc's malloc_trim; a no-op
 * elsewhere): after a big structure dies, so RSS shows what is live. */
void kefu_heap_trim(void);

#endif
