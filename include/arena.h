/* arena.h — bump allocation for data that dies all at once: a compiled
 * rule set, or everything one message needs. */
#ifndef KEFU_ARENA_H
#define KEFU_ARENA_H

#include <stddef.h>

struct arena_block;
struct arena {
    struct arena_block *head; /* owned chain of blocks */
    size_t block_size;
};

/* Prepares an empty arena whose blocks are at least block_size bytes. */
void arena_init(struct arena *a, size_t block_size);
/* Frees every block; a is empty again and can be reused. */
void arena_release(struct arena *a);
/* Returns n zeroed bytes aligned for any type, owned by a; NULL on failure. */
void *arena_alloc(struct arena *a, size_t n);
/* Returns a NUL-terminated copy of s[0..n) owned by a; NULL on failure. */
char *arena_strndup(struct arena *a, const char *s, size_t n);

#endif
