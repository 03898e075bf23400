/* router.c — choose the intent for one message.
 * The message is normalized once; every byte trigram (and every short
 * word) is looked up in the rule set's key table, which names the few
 * literals worth checking. Those that really occur trigger their
 * patterns, and only those patterns run: a match expression is evaluated
 * over the literals found, a regex with PCRE2 under match limits (in the
 * interpreter until it has run often enough to be JIT-compiled, see
 * rules_jit.c; the only write this file makes to a rule set).
 * All per-message state lives in the caller's scratch, stamped with an
 * epoch so that nothing is cleared between messages. */
#include "router.h"

#include "kefu.h"
#include "rules_int.h"
#include "text.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define MATCH_LIMIT    100000
#define DEPTH_LIMIT    1000
#define HEAP_LIMIT_KIB 8192

struct word {
    uint32_t off, len;           /* in the folded text */
    uint32_t stem_off, stem_len; /* in stems */
};

struct span {
    uint32_t start, end;
};

/* What one message knows about one literal: valid when stamp is the epoch. */
struct lit_state {
    uint32_t stamp;
    uint32_t occ_off, occ_n; /* its occurrences in scratch.occ; occ_n 0: absent */
};

struct cand_work {
    uint32_t intent;
    double confidence, rank;
    uint32_t pattern;
    struct router_hit hits[ROUTER_MAX_HITS];
    size_t n_hits;
};

struct router_scratch {
    uint32_t epoch;
    struct text_buf fold, light;
    struct text_toks toks;
    struct word *words;
    size_t n_words, cap_words;
    char *stems;
    size_t cap_stems;
    uint32_t *weight; /* weight[i]: letters before byte i */
    size_t cap_weight;

    /* per literal / pattern / intent, sized for the largest rule set seen */
    struct lit_state *lits;
    size_t cap_lits;
    uint32_t *pat_stamp;
    size_t cap_pats;
    uint32_t *intent_stamp, *intent_cand;
    size_t cap_intents;

    struct span *occ;
    size_t n_occ, cap_occ;
    uint32_t *present, *patlist;
    size_t n_present, cap_present, n_patlist, cap_patlist;
    struct span *spans;
    size_t cap_spans;
    struct cand_work *cands;
    size_t n_cands, cap_cands;

    pcre2_match_data *md;
    uint32_t md_groups;
    pcre2_match_context *mctx;
    pcre2_jit_stack *jit;
    char *slot_values;
    size_t cap_slot_values;
};

static int grow(void *pp, size_t *cap, size_t need, size_t el)
{
    if (need <= *cap)
        return 0;
    size_t ncap = *cap ? *cap : 16;
    while (ncap < need)
        ncap *= 2;
    void **p = pp;
    void *np = kefu_realloc(*p, ncap * el);
    if (!np)
        return -1;
    memset((char *)np + *cap * el, 0, (ncap - *cap) * el);
    *p = np;
    *cap = ncap;
    return 0;
}

struct router_scratch *router_scratch_create(void)
{
    struct router_scratch *sc = kefu_calloc(1, sizeof *sc);
    if (!sc)
        return NULL;
    text_buf_init(&sc->fold);
    text_buf_init(&sc->light);
    text_toks_init(&sc->toks);
    sc->mctx = pcre2_match_context_create(NULL);
    sc->jit = pcre2_jit_stack_create(32 * 1024, 512 * 1024, NULL);
    if (!sc->mctx || !sc->jit) {
        router_scratch_free(sc);
        return NULL;
    }
    pcre2_set_match_limit(sc->mctx, MATCH_LIMIT);
    pcre2_set_depth_limit(sc->mctx, DEPTH_LIMIT);
    pcre2_set_heap_limit(sc->mctx, HEAP_LIMIT_KIB);
    pcre2_jit_stack_assign(sc->mctx, NULL, sc->jit);
    return sc;
}

void router_scratch_free(struct router_scratch *sc)
{
    if (!sc)
        return;
    text_buf_release(&sc->fold);
    text_buf_release(&sc->light);
    text_toks_release(&sc->toks);
    free(sc->words);
    free(sc->stems);
    free(sc->weight);
    free(sc->lits);
    free(sc->pat_stamp);
    free(sc->intent_stamp);
    free(sc->intent_cand);
    free(sc->occ);
    free(sc->present);
    free(sc->patlist);
    free(sc->spans);
    free(sc->cands);
    free(sc->slot_values);
    pcre2_match_data_free(sc->md);
    pcre2_match_context_free(sc->mctx);
    pcre2_jit_stack_free(sc->jit);
    free(sc);
}

/* Sizes the scratch for rs and starts a new epoch. */
static int prepare(struct router_scratch *sc, const struct rules *rs)
{
    size_t cp = sc->cap_pats, ci = sc->cap_intents;
    if (grow(&sc->lits, &sc->cap_lits, rs->n_lits + 1, sizeof *sc->lits) < 0)
        return -1;
    if (grow(&sc->pat_stamp, &cp, rs->n_pats + 1, 4) < 0)
        return -1;
    sc->cap_pats = cp;
    if (grow(&sc->intent_stamp, &ci, rs->n_intents + 1, 4) < 0)
        return -1;
    ci = sc->cap_intents;
    if (grow(&sc->intent_cand, &ci, rs->n_intents + 1, 4) < 0)
        return -1;
    sc->cap_intents = ci;
    if (!sc->md || sc->md_groups < rs->max_groups) {
        pcre2_match_data_free(sc->md);
        sc->md_groups = rs->max_groups < 16 ? 16 : rs->max_groups;
        if (!(sc->md = pcre2_match_data_create(sc->md_groups, NULL)))
            return -1;
    }
    if (++sc->epoch == 0) { /* wrapped: forget every stamp */
        memset(sc->lits, 0, sc->cap_lits * sizeof *sc->lits);
        memset(sc->pat_stamp, 0, sc->cap_pats * 4);
        memset(sc->intent_stamp, 0, sc->cap_intents * 4);
        sc->epoch = 1;
    }
    sc->n_occ = sc->n_present = sc->n_patlist = sc->n_cands = 0;
    return 0;
}

/* Splits the folded text into stemmed words and letter weights. */
static int analyze(struct router_scratch *sc)
{
    const char *t = sc->fold.s;
    size_t len = sc->fold.len;
    if (text_tokenize(t, len, TEXT_TOK_WORDS, &sc->toks) < 0)
        return -1;
    sc->n_words = 0;
    size_t stem_len = 0;
    if (grow(&sc->stems, &sc->cap_stems, len + 1, 1) < 0 ||
        grow(&sc->weight, &sc->cap_weight, len + 1, 4) < 0)
        return -1;
    for (size_t k = 0; k < sc->toks.n; k++) {
        const struct text_tok *tk = &sc->toks.v[k];
        if (tk->kind != TEXT_TOK_WORD)
            continue;
        if (grow(&sc->words, &sc->cap_words, sc->n_words + 1, sizeof *sc->words) < 0)
            return -1;
        struct word *w = &sc->words[sc->n_words++];
        w->off = tk->off;
        w->len = tk->len;
        w->stem_off = (uint32_t)stem_len;
        w->stem_len = (uint32_t)text_stem(t + tk->off, tk->len, sc->stems + stem_len);
        stem_len += w->stem_len;
    }
    uint32_t acc = 0;
    for (size_t i = 0; i < len; i++) {
        sc->weight[i] = acc;
        unsigned char ch = (unsigned char)t[i];
        if ((ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || ch >= 0xc0)
            acc++; /* ASCII letters and digits, and the lead byte of every non-ASCII character */
    }
    sc->weight[len] = acc;
    return 0;
}

static int add_occ(struct router_scratch *sc, uint32_t start, uint32_t end)
{
    if (grow(&sc->occ, &sc->cap_occ, sc->n_occ + 1, sizeof *sc->occ) < 0)
        return -1;
    sc->occ[sc->n_occ++] = (struct span){start, end};
    return 0;
}

/* Finds every occurrence of literal id in the message. */
static int verify(struct router_scratch *sc, const struct rules *rs, uint32_t id)
{
    const struct lit *l = &rs->lits[id];
    struct lit_state *st = &sc->lits[id];
    st->stamp = sc->epoch;
    st->occ_off = (uint32_t)sc->n_occ;
    const char *t = sc->fold.s;
    size_t len = sc->fold.len;
    if (l->kind == LIT_SUBSTR) {
        const char *p = t;
        while ((p = memmem(p, len - (size_t)(p - t), l->s, l->len))) {
            if (add_occ(sc, (uint32_t)(p - t), (uint32_t)(p - t + l->len)) < 0)
                return -1;
            p += l->len;
        }
    } else {
        /* compare stems word by word, the first one cheaply */
        for (size_t w = 0; w + l->nwords <= sc->n_words; w++) {
            if (sc->words[w].stem_len != l->w0len ||
                memcmp(sc->stems + sc->words[w].stem_off, l->s, l->w0len) != 0)
                continue;
            const char *ls = l->s;
            size_t rest = l->len, k = 0;
            for (; k < l->nwords; k++) {
                const struct word *mw = &sc->words[w + k];
                const char *sp = memchr(ls, ' ', rest);
                size_t wl = sp ? (size_t)(sp - ls) : rest;
                if (wl != mw->stem_len || memcmp(ls, sc->stems + mw->stem_off, wl) != 0)
                    break;
                ls += wl + 1;
                rest -= wl + (sp ? 1 : 0);
            }
            if (k == l->nwords) {
                const struct word *last = &sc->words[w + k - 1];
                if (add_occ(sc, sc->words[w].off, last->off + last->len) < 0)
                    return -1;
            }
        }
    }
    st->occ_n = (uint32_t)sc->n_occ - st->occ_off;
    if (st->occ_n) {
        if (grow(&sc->present, &sc->cap_present, sc->n_present + 1, 4) < 0)
            return -1;
        sc->present[sc->n_present++] = id;
    }
    return 0;
}

/* Looks key up; at is where a trigram key sits in the text (UINT32_MAX for a
 * word key), so that a text literal is first compared there, in place. */
static int lookup(struct router_scratch *sc, const struct rules *rs, uint32_t key, uint32_t at)
{
    uint32_t n;
    const uint32_t *ids = rules_key_lits(rs, key, &n);
    for (uint32_t k = 0; k < n; k++) {
        uint32_t id = ids[k];
        if (sc->lits[id].stamp == sc->epoch)
            continue;
        const struct lit *l = &rs->lits[id];
        if (at != UINT32_MAX && l->kind == LIT_SUBSTR &&
            (at < l->key_off || at - l->key_off + l->len > sc->fold.len ||
             memcmp(sc->fold.s + at - l->key_off, l->s, l->len) != 0))
            continue; /* not here; another of its keys in the text may still find it */
        if (verify(sc, rs, id) < 0)
            return -1;
    }
    return 0;
}

/* The prefilter: every key of the message, then the patterns triggered. */
static int find_literals(struct router_scratch *sc, const struct rules *rs)
{
    const unsigned char *t = (const unsigned char *)sc->fold.s;
    size_t len = sc->fold.len;
    for (size_t w = 0; w < sc->n_words; w++)
        if (lookup(sc, rs, key_word(sc->stems + sc->words[w].stem_off, sc->words[w].stem_len), UINT32_MAX) <
            0)
            return -1;
    if (rs->has_trigram_keys)
        for (size_t i = 0; i + 3 <= len; i++)
            if (lookup(sc, rs, key_trigram(t + i), (uint32_t)i) < 0)
                return -1;
    if (rs->has_long_keys && len >= KEY_LONG_LEN) {
        uint64_t v = 0; /* the window rolls one byte per position */
        for (size_t i = 0; i + 1 < KEY_LONG_LEN; i++)
            v = v << 8 | t[i];
        for (size_t i = 0; i + KEY_LONG_LEN <= len; i++) {
            v = v << 8 | t[i + KEY_LONG_LEN - 1];
            if (lookup(sc, rs, key_long_of(v), (uint32_t)i) < 0)
                return -1;
        }
    }
    for (size_t k = 0; k < sc->n_present; k++) {
        const struct lit *l = &rs->lits[sc->present[k]];
        for (uint32_t j = 0; j < l->pat_n; j++) {
            uint32_t p = rs->lit_pats[l->pat_off + j];
            if (sc->pat_stamp[p] == sc->epoch)
                continue;
            sc->pat_stamp[p] = sc->epoch;
            if (grow(&sc->patlist, &sc->cap_patlist, sc->n_patlist + 1, 4) < 0)
                return -1;
            sc->patlist[sc->n_patlist++] = p;
        }
    }
    for (size_t k = 0; k < rs->n_always; k++) {
        if (grow(&sc->patlist, &sc->cap_patlist, sc->n_patlist + 1, 4) < 0)
            return -1;
        sc->patlist[sc->n_patlist++] = rs->always[k];
    }
    return 0;
}

static int lit_present(const struct router_scratch *sc, uint32_t id)
{
    return sc->lits[id].stamp == sc->epoch && sc->lits[id].occ_n > 0;
}

static int eval(const struct router_scratch *sc, const struct rules *rs, uint32_t node)
{
    const struct enode *e = &rs->nodes[node];
    switch (e->op) {
    case E_LIT: return lit_present(sc, e->a);
    case E_NOT: return !eval(sc, rs, e->a);
    case E_AND: return eval(sc, rs, e->a) && eval(sc, rs, e->b);
    default: return eval(sc, rs, e->a) || eval(sc, rs, e->b);
    }
}

struct collect {
    struct router_scratch *sc;
    const struct rules *rs;
    size_t n_spans;
    struct cand_work *cw;
    int oom;
};

/* Gathers the spans of the present literals that count for a true node. */
static void collect(struct collect *cx, uint32_t node)
{
    const struct enode *e = &cx->rs->nodes[node];
    if (e->op == E_NOT)
        return;
    if (e->op != E_LIT) {
        collect(cx, e->a);
        collect(cx, e->b);
        return;
    }
    struct router_scratch *sc = cx->sc;
    if (!lit_present(sc, e->a))
        return;
    uint32_t off = sc->lits[e->a].occ_off, n = sc->lits[e->a].occ_n;
    if (grow(&sc->spans, &sc->cap_spans, cx->n_spans + n, sizeof *sc->spans) < 0) {
        cx->oom = 1;
        return;
    }
    for (uint32_t k = 0; k < n; k++)
        sc->spans[cx->n_spans++] = sc->occ[off + k];
    struct cand_work *cw = cx->cw;
    int dup = 0;
    for (size_t h = 0; h < cw->n_hits; h++)
        dup |= cw->hits[h].what == cx->rs->lits[e->a].s;
    if (!dup && cw->n_hits < ROUTER_MAX_HITS)
        cw->hits[cw->n_hits++] =
            (struct router_hit){cx->rs->lits[e->a].s, sc->occ[off].start, sc->occ[off].end};
}

static int span_cmp(const void *a, const void *b)
{
    const struct span *x = a, *y = b;
    return x->start < y->start ? -1 : x->start > y->start;
}

/* Letters covered by the union of spans[0..n). */
static uint32_t covered(const struct router_scratch *sc, struct span *s, size_t n)
{
    if (n > 1)
        qsort(s, n, sizeof *s, span_cmp);
    uint32_t total = 0, cur_start = 0, cur_end = 0;
    for (size_t k = 0; k < n; k++) {
        if (k == 0 || s[k].start > cur_end) {
            if (k)
                total += sc->weight[cur_end] - sc->weight[cur_start];
            cur_start = s[k].start;
            cur_end = s[k].end;
        } else if (s[k].end > cur_end) {
            cur_end = s[k].end;
        }
    }
    if (n)
        total += sc->weight[cur_end] - sc->weight[cur_start];
    return total;
}

static double confidence(const struct router_scratch *sc, uint32_t cov)
{
    uint32_t all = sc->weight[sc->fold.len];
    double share = all ? (double)cov / all : 0;
    if (share > 1)
        share = 1;
    return 0.6 + 0.4 * sqrt(share);
}

/* Returns 1 for the errors of a search stopped by the match, depth or heap limit. */
static int limit_error(int rc)
{
    return rc == PCRE2_ERROR_MATCHLIMIT || rc == PCRE2_ERROR_DEPTHLIMIT || rc == PCRE2_ERROR_HEAPLIMIT;
}

/* Evaluates pattern p; on a match fills cw and returns 1. */
static int try_pattern(struct router_scratch *sc, const struct rules *rs, uint32_t p, struct cand_work *cw,
                       size_t *limit_hits)
{
    const struct pattern *pat = &rs->pats[p];
    memset(cw, 0, sizeof *cw);
    cw->intent = pat->intent;
    cw->pattern = p;
    if (pat->kind == PAT_MATCH) {
        if (!eval(sc, rs, pat->root))
            return 0;
        struct collect cx = {sc, rs, 0, cw, 0};
        collect(&cx, pat->root);
        if (cx.oom)
            return -1;
        cw->confidence = confidence(sc, covered(sc, sc->spans, cx.n_spans));
        return 1;
    }
    for (uint32_t g = 0; g < pat->chk_n; g++) { /* every required literal group first */
        const struct lgroup *grp = &rs->chk[pat->chk_off + g];
        uint32_t k = 0;
        while (k < grp->n && !lit_present(sc, rs->chk_lits[grp->off + k]))
            k++;
        if (k == grp->n)
            return 0;
    }
    struct jit_cache *jc = &rs->pat_jit[p];
    const pcre2_code *code = jit_code(jc, pat->re, pat->file, pat->line);
    int rc = pcre2_match(code, (PCRE2_SPTR)sc->fold.s, sc->fold.len, 0, PCRE2_NO_UTF_CHECK, sc->md, sc->mctx);
    if (rc == PCRE2_ERROR_NOMATCH)
        return 0;
    if (rc < 0) {
        (*limit_hits)++;                        /* match, depth or heap limit: counts as no match */
        if (code == pat->re && limit_error(rc)) /* the JIT runs the same bounded search faster: now */
            jit_promote(jc, pat->re, pat->file, pat->line);
        return 0;
    }
    PCRE2_SIZE *ov = pcre2_get_ovector_pointer(sc->md);
    struct span s = {(uint32_t)ov[0], (uint32_t)ov[1]};
    cw->confidence = confidence(sc, covered(sc, &s, 1));
    cw->hits[0] = (struct router_hit){pat->src, s.start, s.end};
    cw->n_hits = 1;
    return 1;
}

static int cand_cmp(const void *a, const void *b)
{
    const struct cand_work *x = a, *y = b;
    if (x->rank != y->rank)
        return x->rank > y->rank ? -1 : 1;
    return x->intent < y->intent ? -1 : x->intent > y->intent; /* file order breaks ties */
}

int router_match(const struct rules *rs, struct router_scratch *sc, const char *text, size_t len,
                 const struct attrs *attrs, const struct router_opts *opts, struct router_result *out)
{
    memset(out, 0, sizeof *out);
    int rc = text_normalize(text, len, TEXT_FOLD, &sc->fold);
    if (rc < 0)
        return rc;
    out->norm = sc->fold.s;
    out->norm_len = sc->fold.len;
    if (prepare(sc, rs) < 0 || analyze(sc) < 0 || find_literals(sc, rs) < 0)
        return KEFU_ENOMEM;
    out->literals_found = sc->n_present;
    out->patterns_tried = sc->n_patlist;
    for (size_t k = 0; k < sc->n_patlist; k++) {
        uint32_t p = sc->patlist[k];
        const struct rules_intent *it = &rs->intents[rs->pats[p].intent];
        struct cand_work cw;
        int m = try_pattern(sc, rs, p, &cw, &out->limit_hits);
        if (m < 0)
            return KEFU_ENOMEM;
        if (!m)
            continue;
        uint32_t i = cw.intent;
        if (!(opts && opts->assume == (long)i) && !rules_cond_eval(it->when, attrs)) {
            int seen = 0;
            for (size_t s = 0; s < out->n_skipped; s++)
                seen |= out->skipped[s] == i;
            if (!seen && out->n_skipped < ROUTER_MAX_CANDS)
                out->skipped[out->n_skipped++] = i;
            continue;
        }
        cw.rank = cw.confidence + it->priority / 100.0;
        if (sc->intent_stamp[i] == sc->epoch) {
            struct cand_work *old = &sc->cands[sc->intent_cand[i]];
            if (cw.confidence > old->confidence)
                *old = cw;
            continue;
        }
        if (grow(&sc->cands, &sc->cap_cands, sc->n_cands + 1, sizeof *sc->cands) < 0)
            return KEFU_ENOMEM;
        sc->intent_stamp[i] = sc->epoch;
        sc->intent_cand[i] = (uint32_t)sc->n_cands;
        sc->cands[sc->n_cands++] = cw;
    }
    if (sc->n_cands > 1)
        qsort(sc->cands, sc->n_cands, sizeof *sc->cands, cand_cmp);
    for (size_t k = 0; k < sc->n_cands && k < ROUTER_MAX_CANDS; k++) {
        const struct cand_work *cw = &sc->cands[k];
        const struct pattern *pat = &rs->pats[cw->pattern];
        struct router_cand *c = &out->cand[out->n++];
        c->intent = cw->intent;
        c->confidence = cw->confidence;
        c->rank = cw->rank;
        c->regex = pat->kind == PAT_REGEX;
        c->pattern = pat->src;
        c->file = pat->file;
        c->line = pat->line;
        memcpy(c->hits, cw->hits, sizeof c->hits);
        c->n_hits = cw->n_hits;
    }
    return 0;
}

int router_slots(const struct rules *rs, struct router_scratch *sc, uint32_t intent, const char *text,
                 size_t len, struct router_slot *out, size_t cap, size_t *n)
{
    *n = 0;
    if (intent >= rs->n_intents)
        return KEFU_EINVAL;
    const struct rules_intent *it = &rs->intents[intent];
    if (it->n_slots == 0)
        return 0;
    int rc = text_normalize(text, len, 0, &sc->light);
    if (rc < 0)
        return rc;
    if (grow(&sc->slot_values, &sc->cap_slot_values, (sc->light.len + 1) * it->n_slots, 1) < 0)
        return KEFU_ENOMEM;
    size_t used = 0;
    for (size_t k = 0; k < it->n_slots && *n < cap; k++) {
        const struct rules_slot *s = &it->slots[k];
        if (s->index < 0)
            continue;
        const struct slot_re *sr = &rs->slots[s->index];
        struct jit_cache *jc = &rs->slot_jit[s->index];
        const pcre2_code *code = jit_code(jc, sr->re, sr->file, sr->line);
        int m = pcre2_match(code, (PCRE2_SPTR)sc->light.s, sc->light.len, 0, PCRE2_NO_UTF_CHECK, sc->md,
                            sc->mctx);
        if (code == sr->re && limit_error(m))
            jit_promote(jc, sr->re, sr->file, sr->line);
        if (m <= 0)
            continue;
        PCRE2_SIZE *ov = pcre2_get_ovector_pointer(sc->md);
        size_t g = m > 1 && ov[2] != PCRE2_UNSET ? 1 : 0;
        size_t a = ov[2 * g], b = ov[2 * g + 1];
        if (b < a) /* \K can put the end before the start */
            continue;
        char *v = sc->slot_values + used;
        memcpy(v, sc->light.s + a, b - a);
        v[b - a] = 0;
        used += b - a + 1;
        out[(*n)++] = (struct router_slot){s->name, v};
    }
    return 0;
}
