/* rules_jit.c — JIT-compile a rule set's regexes once they prove hot.
 * Loading compiles every regex for PCRE2's interpreter only: JIT code for
 * 18,000 patterns costs most of a 10,000-intent reload and tens of MiB,
 * and most patterns run rarely. The router counts evaluations per regex;
 * the thread that sees a regex reach RULES_JIT_AFTER (or hit a match limit)
 * claims it with a CAS, JIT-compiles a private copy and publishes it. The
 * shared code is never written, as PCRE2 requires for code other threads
 * are matching with (pcre2api, "Multithreading"). See struct jit_cache. */
#include "kefu.h"
#include "log.h"
#include "rules_int.h"

void jit_cache_init(struct jit_cache *jc, size_t n)
{
    for (size_t k = 0; k < n; k++) {
        atomic_init(&jc[k].code, NULL);
        atomic_init(&jc[k].uses, 0);
        atomic_init(&jc[k].state, JIT_COLD);
    }
}

void jit_cache_release(struct jit_cache *jc, size_t n)
{
    for (size_t k = 0; jc && k < n; k++)
        pcre2_code_free(atomic_load_explicit(&jc[k].code, memory_order_acquire));
}

/* Compiles and publishes the JIT copy; the caller holds the claim. */
static void jit_build(struct jit_cache *jc, const pcre2_code *re, const char *file, int line)
{
    pcre2_code *copy = pcre2_code_copy(re);
    int rc = copy ? pcre2_jit_compile(copy, PCRE2_JIT_COMPLETE) : PCRE2_ERROR_NOMEMORY;
    if (rc == 0) {
        /* release: whoever loads the pointer sees the finished JIT code */
        atomic_store_explicit(&jc->code, copy, memory_order_release);
        atomic_store_explicit(&jc->state, JIT_READY, memory_order_release);
        return;
    }
    pcre2_code_free(copy);
    atomic_store_explicit(&jc->state, JIT_FAILED, memory_order_release);
    PCRE2_UCHAR msg[128];
    pcre2_get_error_message(rc, msg, sizeof msg);
    log_msg(LOG_LEVEL_WARN, "regex at %s:%d could not be jit-compiled (%s); it runs in the interpreter",
            file ? file : "?", line, (const char *)msg);
}

void jit_promote(struct jit_cache *jc, const pcre2_code *re, const char *file, int line)
{
    unsigned char cold = JIT_COLD;
    /* relaxed is enough: the CAS only picks one thread; re was published with the rule set */
    if (atomic_compare_exchange_strong_explicit(&jc->state, &cold, JIT_CLAIMED, memory_order_relaxed,
                                                memory_order_relaxed))
        jit_build(jc, re, file, line);
}

const pcre2_code *jit_code_slow(struct jit_cache *jc, const pcre2_code *re, const char *file, int line)
{
    if (atomic_load_explicit(&jc->state, memory_order_relaxed) != JIT_COLD)
        return re; /* another thread compiles it, or the JIT refused it: no more writes here */
    unsigned n = atomic_fetch_add_explicit(&jc->uses, 1, memory_order_relaxed) + 1;
    if (n < RULES_JIT_AFTER)
        return re;
    jit_promote(jc, re, file, line);
    const pcre2_code *j = atomic_load_explicit(&jc->code, memory_order_acquire);
    return j ? j : re;
}

/* Adds one cache to st. */
static void stats_add(struct jit_cache *jc, struct rules_jit_stats *st)
{
    st->regexes++;
    int state = atomic_load_explicit(&jc->state, memory_order_acquire);
    if (state == JIT_FAILED)
        st->failed++;
    if (state != JIT_READY)
        return;
    st->compiled++;
    size_t size = 0;
    if (pcre2_pattern_info(atomic_load_explicit(&jc->code, memory_order_acquire), PCRE2_INFO_JITSIZE,
                           &size) == 0)
        st->jit_bytes += size;
}

void rules_jit_stats(const struct rules *rs, struct rules_jit_stats *st)
{
    *st = (struct rules_jit_stats){0};
    for (size_t p = 0; rs->pat_jit && p < rs->n_pats; p++)
        if (rs->pats[p].kind == PAT_REGEX)
            stats_add(&rs->pat_jit[p], st);
    for (size_t k = 0; rs->slot_jit && k < rs->n_slots; k++)
        stats_add(&rs->slot_jit[k], st);
}
