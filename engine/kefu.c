/* kefu.c — error names and the allocation wrappers every module uses.
 * The wrappers exist so a test can make the Nth allocation fail and
 * prove that every error path cleans up. */
#include "kefu.h"

#include <stdlib.h>
#include <string.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif

static long fail_countdown; /* 0: off; otherwise allocations left before a failure */

const char *kefu_strerror(int code)
{
    switch (code) {
    case KEFU_OK: return "success";
    case KEFU_ENOMEM: return "out of memory";
    case KEFU_EINVAL: return "invalid argument";
    case KEFU_EUTF8: return "invalid utf-8";
    case KEFU_EIO: return "i/o error";
    case KEFU_ESYNTAX: return "syntax error";
    case KEFU_ENOENT: return "not found";
    case KEFU_ERANGE: return "out of range";
    case KEFU_ELIMIT: return "limit exceeded";
    case KEFU_EAUTH: return "not authenticated";
    case KEFU_EPERM: return "not allowed";
    case KEFU_ECONFLICT: return "conflicts with the current state";
    case KEFU_EBUSY: return "temporarily unavailable";
    case KEFU_ENOSPC: return "storage full";
    case KEFU_EUNAVAIL: return "store unavailable";
    default: return "unknown error";
    }
}

void kefu_alloc_fail_after(long n)
{
    fail_countdown = n;
}

static int should_fail(void)
{
    if (fail_countdown <= 0)
        return 0;
    return --fail_countdown == 0;
}

void *kefu_malloc(size_t n)
{
    return should_fail() ? NULL : malloc(n ? n : 1);
}

void *kefu_calloc(size_t n, size_t size)
{
    return should_fail() ? NULL : calloc(n ? n : 1, size ? size : 1);
}

void *kefu_realloc(void *p, size_t n)
{
    return should_fail() ? NULL : realloc(p, n ? n : 1);
}

char *kefu_strndup(const char *s, size_t n)
{
    char *d = kefu_malloc(n + 1);
    if (!d)
        return NULL;
    memcpy(d, s, n);
    d[n] = 0;
    return d;
}

void kefu_heap_trim(void)
{
#ifdef __GLIBC__
    malloc_trim(0); /* every arena, not only the main one; free pages inside them too */
#endif
}
