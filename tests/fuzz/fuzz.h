/* fuzz.h — what every fuzz target shares: where the sources are, and
 * MUST(), which aborts (a crash libFuzzer keeps) when a promise breaks. */
#ifndef KEFU_FUZZ_H
#define KEFU_FUZZ_H

#include <stdio.h>
#include <stdlib.h>

#ifndef KEFU_SRC_DIR
#define KEFU_SRC_DIR "."
#endif

#define MUST(cond)                                                                                           \
    do {                                                                                                     \
        if (!(cond)) {                                                                                       \
            fprintf(stderr, "%s: broken promise: %s (line %d)\n", __FILE__, #cond, __LINE__);                \
            abort();                                                                                         \
        }                                                                                                    \
    } while (0)

#endif
