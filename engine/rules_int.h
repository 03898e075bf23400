/* rules_int.h — the compiled rule set as the router sees it. Private to
 * rules*.c and router.c; nothing else includes it.
 *
 * Terms become literals (deduplicated across the whole set); match
 * expressions become trees of enodes over literals; every pattern is
 * reachable from the literals that trigger it, and every literal from the
 * one key (a byte trigram, or a short word) that the router looks up.
 *
 * A compiled set is immutable and shared by every thread; its one mutable
 * part is the JIT cache of its regexes (struct jit_cache, rules_jit.c):
 * counters and pointers updated with atomics only, never under a lock. */
#ifndef KEFU_RULES_INT_H
#define KEFU_RULES_INT_H

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <stdatomic.h>
#include <stdint.h>

#include "arena.h"
#include "rules.h"

enum lit_kind {
    LIT_WORDS = 1,  /* stemmed words compared word by word: s is "stem stem ..." */
    LIT_SUBSTR = 2, /* folded text compared as a substring */
};

struct lit {
    char *s; /* folded text (LIT_SUBSTR) or stems joined by one space (LIT_WORDS) */
    uint32_t len;
    uint8_t kind;
    uint8_t nwords;
    uint8_t w0len;   /* LIT_WORDS: length of the first stem */
    uint32_t key_off; /* LIT_SUBSTR: where its key (trigram or long window) starts in s */
    uint32_t pat_off, pat_n; /* range in rules.lit_pats: patterns this literal triggers */
};

enum enode_op { E_LIT = 1, E_AND, E_OR, E_NOT };
struct enode {
    uint8_t op;
    uint32_t a, b; /* E_LIT: a is a literal id; E_NOT: a; E_AND/E_OR: a, b */
};

enum pattern_kind { PAT_MATCH = 1, PAT_REGEX = 2 };
struct pattern {
    uint8_t kind;
    uint32_t intent;
    uint32_t root;  /* PAT_MATCH: root enode */
    pcre2_code *re; /* PAT_REGEX: owned, compiled for the interpreter (see struct jit_cache) */
    const char *src; /* the pattern as written */
    const char *file;
    int line;
    uint32_t chk_off, chk_n; /* PAT_REGEX: groups in rules.chk that must all hold before it runs */
};

/* A requirement checked before a regex runs: one of lits[off..off+n) is present. */
struct lgroup {
    uint32_t off, n; /* range in rules.chk_lits */
};

struct slot_re {
    pcre2_code *re; /* owned; runs on the light (unfolded) text */
    const char *file;
    int line;
};

/* Lazy JIT. Every regex is compiled for PCRE2's interpreter at load; the
 * one that has run RULES_JIT_AFTER times (or hit a match limit) is claimed
 * by the thread that notices, with a CAS on state, which JIT-compiles a
 * private copy (pcre2_code_copy: the shared code is never written) and
 * publishes it with a release store; matchers load it with acquire and use
 * it from then on. Both codes are freed with the rule set. */
enum jit_state { JIT_COLD = 0, JIT_CLAIMED = 1, JIT_READY = 2, JIT_FAILED = 3 };
struct jit_cache {
    _Atomic(pcre2_code *) code; /* the JIT-compiled copy once published; owned */
    atomic_uint uses;           /* evaluations, counted (relaxed) while JIT_COLD */
    atomic_uchar state;         /* enum jit_state */
};

/* Key space: a byte trigram packs into 24 bits (text literals); a stemmed
 * word hashes into 31 bits with bit 31 set (word literals); a window of
 * KEY_LONG_LEN bytes of a longer text literal hashes into 30 bits with bit 30
 * set. Long keys tell apart literals made of the same few common words
 * ("reviews for the portable projector"), which share all their trigrams. */
#define KEY_WORD     (1u << 31)
#define KEY_LONG     (1u << 30)
#define KEY_LONG_LEN 8

struct keyslot {
    uint32_t key;      /* key + 1, 0 marks an empty slot */
    uint32_t off, n;   /* range in rules.key_lits */
};

/* Condition tree. */
enum cond_op { C_AND = 1, C_OR, C_NOT, C_EQ, C_NE, C_LT, C_LE, C_GT, C_GE, C_IN };
struct rules_cond {
    uint8_t op;
    const struct rules_cond *a, *b; /* C_AND/C_OR: a, b; C_NOT: a */
    const char *attr;               /* comparisons */
    const char **values;
    size_t n_values;
};

struct rules {
    atomic_int refs;
    struct arena arena; /* every string and array below, except pcre2 codes */
    double default_threshold;

    struct rules_intent *intents;
    size_t n_intents;
    uint32_t *by_name; /* intent indexes in name order (rules_find()); NULL: none kept */

    struct lit *lits;
    size_t n_lits;
    struct enode *nodes;
    size_t n_nodes;
    struct pattern *pats;
    size_t n_pats;
    uint32_t *lit_pats; /* CSR: patterns per literal */

    struct lgroup *chk; /* required literal groups of regexes */
    uint32_t *chk_lits;

    uint32_t *always; /* patterns with no trigger: evaluated for every message */
    size_t n_always;

    uint64_t keybits[1024]; /* one bit per key hash: most message trigrams stop here */
    struct keyslot *keys; /* open addressing, power of two */
    size_t key_mask;
    uint32_t *key_lits; /* CSR: literals per key */

    struct slot_re *slots;
    size_t n_slots;
    struct jit_cache *pat_jit;  /* per pattern (only regexes use theirs); the mutable part */
    struct jit_cache *slot_jit; /* per slot pattern */
    uint32_t max_groups; /* largest capture count among patterns and slots */
    int has_trigram_keys; /* some literal is filed under a trigram: scan the bytes */
    int has_long_keys;    /* some literal is filed under a long window: scan those too */
};

/* rules_regex.c */
/* Reads a regex once, for two facts. *danger: NULL if the pattern has no
 * nested unbounded quantifier, else a static description, with *off the
 * byte offset of the offending group. And what every match contains:
 * groups of lower-case strings, each group a requirement (one of its
 * strings occurs), all groups at once; emit() (may be NULL) is called per
 * string with its group number. Returns the number of groups (0: no usable
 * literal, the regex must run on every message; also when dangerous), or
 * -1 when emit() or an allocation fails. */
int regex_read(const char *pat, size_t len, int extended, const char **danger, size_t *off,
               int (*emit)(void *ctx, int group, const char *s, size_t n), void *ctx);

/* rules_jit.c */
/* The slow path of jit_code(): counts one evaluation, JIT-compiles a copy
 * when this one crosses the threshold; returns the code to match with. */
const pcre2_code *jit_code_slow(struct jit_cache *jc, const pcre2_code *re, const char *file, int line);
/* Claims and JIT-compiles re now, whatever its count (a limit was hit). */
void jit_promote(struct jit_cache *jc, const pcre2_code *re, const char *file, int line);
/* Prepares n empty caches. */
void jit_cache_init(struct jit_cache *jc, size_t n);
/* Frees the JIT copies of n caches (the rule set's last reference). */
void jit_cache_release(struct jit_cache *jc, size_t n);

/* Returns the code to match re with: its JIT copy once published (one
 * acquire load, no write), else re itself, counting the evaluation. */
static inline const pcre2_code *jit_code(struct jit_cache *jc, const pcre2_code *re, const char *file, int line)
{
    const pcre2_code *j = atomic_load_explicit(&jc->code, memory_order_acquire);
    return j ? j : jit_code_slow(jc, re, file, line);
}

/* Packs the byte trigram at s into a key. */
static inline uint32_t key_trigram(const unsigned char *s)
{
    return (uint32_t)s[0] << 16 | (uint32_t)s[1] << 8 | s[2];
}
/* Hashes a window of KEY_LONG_LEN bytes, packed big-endian into v, into a
 * key. A scan keeps v rolling: v = v << 8 | next byte (8 bytes fill 64 bits). */
static inline uint32_t key_long_of(uint64_t v)
{
    return KEY_LONG | (uint32_t)((v * 0x9E3779B97F4A7C15ull) >> 34);
}
_Static_assert(KEY_LONG_LEN == 8, "key_long_of() rolls a window of exactly 64 bits");

/* Hashes a stemmed word into a key. */
static inline uint32_t key_word(const char *s, size_t n)
{
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)s[i]) * 16777619u;
    return KEY_WORD | h;
}
static inline uint32_t key_hash(uint32_t key)
{
    return key * 2654435761u;
}
/* Returns the literals indexed under key (count in *n); NULL if none. */
static inline const uint32_t *rules_key_lits(const struct rules *rs, uint32_t key, uint32_t *n)
{
    uint32_t hh = key_hash(key);
    if (!(rs->keybits[hh >> 22] >> (hh >> 16 & 63) & 1))
        return *n = 0, (const uint32_t *)0;
    uint32_t h = hh & (uint32_t)rs->key_mask;
    for (;;) {
        const struct keyslot *k = &rs->keys[h];
        if (k->key == 0)
            return *n = 0, (const uint32_t *)0;
        if (k->key == key + 1)
            return *n = k->n, rs->key_lits + k->off;
        h = (h + 1) & (uint32_t)rs->key_mask;
    }
}

#endif
