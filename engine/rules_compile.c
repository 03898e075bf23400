/* rules_compile.c — turn parsed rule files into the router's tables.
 * Terms are normalized and deduplicated into literals; expressions become
 * enode trees; regexes are checked and compiled (the JIT comes later, for
 * the hot ones: rules_jit.c); then every pattern
 * gets its trigger literals and every literal its rarest index key, which
 * is what keeps matching cost independent of the number of rules. */
#include "kefu.h"
#include "rules_build.h"
#include "text.h"

#include <stdlib.h>
#include <string.h>

#define MATCH_LIMIT 100000
#define DEPTH_LIMIT 1000

/* Growable uint32 vector in the tmp arena. */
struct u32v {
    uint32_t *v;
    size_t n, cap;
};

struct litmap_slot {
    uint32_t id_plus1;
    uint32_t hash;
};

struct compiler {
    struct builder *b;
    struct rules *rs;
    struct text_buf norm;
    struct text_toks toks;
    /* literals under construction */
    struct lit *lits;
    size_t n_lits, cap_lits;
    struct litmap_slot *map;
    size_t map_mask;
    struct enode *nodes;
    size_t n_nodes, cap_nodes;
    struct pattern *pats;
    size_t n_pats, cap_pats;
    struct u32v *pat_trig; /* per pattern: trigger literals (none: n == 0) */
    size_t cap_pat_trig;
    struct u32v *pat_req; /* per regex: required literals, group after group */
    size_t cap_pat_req;
    struct u32v *pat_req_end; /* per regex: end index in pat_req of each group */
    size_t cap_pat_req_end;
    uint32_t *pop; /* per literal: how many patterns use it */
    int oom;
};

static uint32_t hash_bytes(const char *s, size_t n, uint32_t seed)
{
    uint32_t h = 2166136261u ^ seed;
    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)s[i]) * 16777619u;
    return h;
}

static int u32_push(struct compiler *c, struct u32v *v, uint32_t x)
{
    uint32_t *slot = build_push(&c->b->tmp, &v->v, v->n, &v->cap, sizeof x);
    if (!slot)
        return c->oom = 1, -1;
    *slot = x;
    v->n++;
    return 0;
}

static int litmap_grow(struct compiler *c)
{
    size_t size = c->map ? (c->map_mask + 1) * 2 : 1024;
    struct litmap_slot *m = arena_alloc(&c->b->tmp, size * sizeof *m);
    if (!m)
        return -1;
    for (size_t k = 0; c->map && k <= c->map_mask; k++) {
        if (!c->map[k].id_plus1)
            continue;
        size_t h = c->map[k].hash & (size - 1);
        while (m[h].id_plus1)
            h = (h + 1) & (size - 1);
        m[h] = c->map[k];
    }
    c->map = m;
    c->map_mask = size - 1;
    return 0;
}

/* Returns the id of the literal (kind, s[0..n)), adding it if new; -1 on OOM. */
static long lit_intern(struct compiler *c, uint8_t kind, const char *s, size_t n, uint8_t nwords)
{
    if ((!c->map || c->n_lits * 2 >= c->map_mask) && litmap_grow(c) < 0)
        return c->oom = 1, -1;
    uint32_t h = hash_bytes(s, n, kind);
    size_t k = h & c->map_mask;
    while (c->map[k].id_plus1) {
        const struct lit *l = &c->lits[c->map[k].id_plus1 - 1];
        if (c->map[k].hash == h && l->kind == kind && l->len == n && memcmp(l->s, s, n) == 0)
            return c->map[k].id_plus1 - 1;
        k = (k + 1) & c->map_mask;
    }
    struct lit *l = build_push(&c->b->tmp, &c->lits, c->n_lits, &c->cap_lits, sizeof *l);
    if (!l || !(l->s = arena_strndup(&c->rs->arena, s, n)))
        return c->oom = 1, -1;
    l->len = (uint32_t)n;
    l->kind = kind;
    l->nwords = nwords;
    const char *sp = memchr(s, ' ', n);
    l->w0len = (uint8_t)(sp ? (size_t)(sp - s) : n > 255 ? 255 : n);
    c->map[k].id_plus1 = (uint32_t)++c->n_lits;
    c->map[k].hash = h;
    return (long)c->n_lits - 1;
}

/* Turns a term as written into a literal id; -1 after an error. */
static long term_literal(struct compiler *c, const char *text, size_t len, const struct bpos *pos)
{
    int rc = text_normalize(text, len, TEXT_FOLD, &c->norm);
    if (rc < 0)
        return rc == KEFU_ENOMEM ? (c->oom = 1, -1) : (build_error(c->b, pos, "term is not valid utf-8"), -1);
    if (c->norm.len == 0) {
        build_error(c->b, pos, "term '%.*s' is empty after normalization", (int)len, text);
        return -1;
    }
    if (text_tokenize(c->norm.s, c->norm.len, 0, &c->toks) < 0)
        return c->oom = 1, -1;
    if (c->toks.n == 0) {
        build_error(c->b, pos, "term '%.*s' has no letters, digits or chinese characters", (int)len, text);
        return -1;
    }
    /* Only words separated by single spaces? Then compare word by word. */
    size_t covered = 0;
    int words_only = 1;
    for (size_t k = 0; k < c->toks.n; k++) {
        if (c->toks.v[k].kind != TEXT_TOK_WORD)
            words_only = 0;
        covered += c->toks.v[k].len;
    }
    if (words_only && c->toks.n > 0 && covered + c->toks.n - 1 == c->norm.len && c->toks.n < 256) {
        char stems[1024];
        size_t sl = 0;
        for (size_t k = 0; k < c->toks.n; k++) {
            const struct text_tok *t = &c->toks.v[k];
            if (sl + t->len + 1 >= sizeof stems) {
                build_error(c->b, pos, "term is too long");
                return -1;
            }
            if (k)
                stems[sl++] = ' ';
            sl += text_stem(c->norm.s + t->off, t->len, stems + sl);
        }
        return lit_intern(c, LIT_WORDS, stems, sl, (uint8_t)c->toks.n);
    }
    if (c->norm.len < 3) {
        build_error(c->b, pos, "term '%.*s' is too short to match as text; use a word or 3 or more bytes",
                    (int)len, text);
        return -1;
    }
    return lit_intern(c, LIT_SUBSTR, c->norm.s, c->norm.len, 0);
}

static long node_new(struct compiler *c, uint8_t op, uint32_t a, uint32_t b)
{
    struct enode *e = build_push(&c->b->tmp, &c->nodes, c->n_nodes, &c->cap_nodes, sizeof *e);
    if (!e)
        return c->oom = 1, -1;
    e->op = op;
    e->a = a;
    e->b = b;
    return (long)c->n_nodes++;
}

static struct bconcept *find_concept(struct builder *b, const char *name)
{
    for (size_t k = 0; k < b->n_concepts; k++)
        if (strcmp(b->concepts[k].name, name) == 0)
            return &b->concepts[k];
    return NULL;
}

static long compile_expr(struct compiler *c, const struct bexpr *e);

/* Compiles a concept once into an OR of its terms. */
static long compile_concept(struct compiler *c, struct bconcept *k, const struct bpos *use)
{
    k->used = 1;
    if (k->state == 2)
        return k->node == UINT32_MAX ? -1 : (long)k->node;
    if (k->state == 1) {
        build_error(c->b, use, "concept '%s' refers to itself", k->name);
        return -1;
    }
    k->state = 1;
    long acc = -1;
    int failed = 0;
    for (size_t t = 0; t < k->n_terms; t++) {
        long n = compile_expr(c, k->terms[t]);
        if (n < 0) {
            failed = 1;
            continue;
        }
        acc = acc < 0 ? n : node_new(c, E_OR, (uint32_t)acc, (uint32_t)n);
        if (acc < 0)
            failed = 1;
    }
    k->state = 2;
    k->node = failed || acc < 0 ? UINT32_MAX : (uint32_t)acc;
    return failed ? -1 : acc;
}

static long compile_expr(struct compiler *c, const struct bexpr *e)
{
    long a, b;
    switch (e->op) {
    case BX_TERM:
        a = term_literal(c, e->text, e->len, &e->pos);
        return a < 0 ? -1 : node_new(c, E_LIT, (uint32_t)a, 0);
    case BX_REF: {
        struct bconcept *k = find_concept(c->b, e->text);
        if (!k) {
            build_error(c->b, &e->pos, "unknown concept '%s'", e->text);
            return -1;
        }
        return compile_concept(c, k, &e->pos);
    }
    case BX_NOT: a = compile_expr(c, e->a); return a < 0 ? -1 : node_new(c, E_NOT, (uint32_t)a, 0);
    default:
        a = compile_expr(c, e->a);
        b = compile_expr(c, e->b);
        if (a < 0 || b < 0)
            return -1;
        return node_new(c, e->op == BX_AND ? E_AND : E_OR, (uint32_t)a, (uint32_t)b);
    }
}

static uint64_t set_cost(const struct compiler *c, const uint32_t *v, size_t n)
{
    uint64_t cost = 0;
    for (size_t k = 0; k < n; k++)
        cost += c->pop[v[k]];
    return cost;
}

/* Trigger set of a node: literals one of which any true match contains,
 * chosen to be rarely shared with other patterns. Returns 0 with the set
 * appended to out, or 1 when there is none (a negation). */
static int triggers(struct compiler *c, uint32_t node, struct u32v *out, int depth)
{
    const struct enode *e = &c->nodes[node];
    if (depth > 200)
        return 1;
    switch (e->op) {
    case E_LIT: return u32_push(c, out, e->a) < 0 ? 1 : 0;
    case E_NOT: return 1;
    case E_OR: {
        if (triggers(c, e->a, out, depth + 1))
            return 1;
        return triggers(c, e->b, out, depth + 1);
    }
    default: { /* E_AND: the side whose triggers are shared least */
        struct u32v l = {0}, r = {0};
        int nl = triggers(c, e->a, &l, depth + 1);
        int nr = triggers(c, e->b, &r, depth + 1);
        if (nl && nr)
            return 1;
        const struct u32v *pick = nl                                               ? &r
                                  : nr                                             ? &l
                                  : set_cost(c, l.v, l.n) <= set_cost(c, r.v, r.n) ? &l
                                                                                   : &r;
        for (size_t k = 0; k < pick->n; k++)
            if (u32_push(c, out, pick->v[k]) < 0)
                return 1;
        return 0;
    }
    }
}

/* Counts, once per pattern, every literal it could be triggered by. */
static void count_node(struct compiler *c, uint32_t node, uint32_t *stamp, uint32_t p, int depth)
{
    const struct enode *e = &c->nodes[node];
    if (depth > 200 || e->op == E_NOT)
        return;
    if (e->op == E_LIT) {
        if (stamp[e->a] != p + 1) {
            stamp[e->a] = p + 1;
            c->pop[e->a]++;
        }
        return;
    }
    count_node(c, e->a, stamp, p, depth + 1);
    count_node(c, e->b, stamp, p, depth + 1);
}

/* Chooses every pattern's trigger set, knowing how widely each literal is
 * shared; a regex keeps its other required groups as checks. */
static int choose_triggers(struct compiler *c)
{
    c->pop = arena_alloc(&c->b->tmp, (c->n_lits + 1) * 4);
    uint32_t *stamp = arena_alloc(&c->b->tmp, (c->n_lits + 1) * 4);
    if (!c->pop || !stamp)
        return c->oom = 1, -1;
    for (size_t p = 0; p < c->n_pats; p++) {
        if (c->pats[p].kind == PAT_MATCH) {
            count_node(c, c->pats[p].root, stamp, (uint32_t)p, 0);
            continue;
        }
        for (size_t k = 0; k < c->pat_req[p].n; k++) {
            uint32_t l = c->pat_req[p].v[k];
            if (stamp[l] != p + 1) {
                stamp[l] = (uint32_t)p + 1;
                c->pop[l]++;
            }
        }
    }
    for (size_t p = 0; p < c->n_pats; p++) {
        struct pattern *pat = &c->pats[p];
        struct u32v *t = &c->pat_trig[p];
        if (pat->kind == PAT_MATCH) {
            triggers(c, pat->root, t, 0);
            continue;
        }
        const struct u32v *req = &c->pat_req[p], *ends = &c->pat_req_end[p];
        size_t best = SIZE_MAX, start = 0;
        uint64_t best_cost = UINT64_MAX;
        for (size_t g = 0; g < ends->n; g++) {
            uint64_t cost = set_cost(c, req->v + start, ends->v[g] - start);
            if (cost < best_cost)
                best_cost = cost, best = g;
            start = ends->v[g];
        }
        start = 0;
        for (size_t g = 0; g < ends->n; g++) {
            if (g == best)
                for (size_t k = start; k < ends->v[g]; k++)
                    u32_push(c, t, req->v[k]);
            start = ends->v[g];
        }
    }
    return c->oom ? -1 : 0;
}

/* Returns 1 if node can be true with none of its literals present. */
static int trigger_free(const struct compiler *c, uint32_t node, int depth)
{
    const struct enode *e = &c->nodes[node];
    if (depth > 200)
        return 1;
    switch (e->op) {
    case E_LIT: return 0;
    case E_NOT: return 1;
    case E_OR: return trigger_free(c, e->a, depth + 1) || trigger_free(c, e->b, depth + 1);
    default: return trigger_free(c, e->a, depth + 1) && trigger_free(c, e->b, depth + 1);
    }
}

static struct pattern *pat_new(struct compiler *c, uint8_t kind, uint32_t intent, const struct bpat *bp)
{
    struct pattern *p = build_push(&c->b->tmp, &c->pats, c->n_pats, &c->cap_pats, sizeof *p);
    struct u32v *t = build_push(&c->b->tmp, &c->pat_trig, c->n_pats, &c->cap_pat_trig, sizeof *t);
    struct u32v *r = build_push(&c->b->tmp, &c->pat_req, c->n_pats, &c->cap_pat_req, sizeof *r);
    struct u32v *re = build_push(&c->b->tmp, &c->pat_req_end, c->n_pats, &c->cap_pat_req_end, sizeof *re);
    if (!p || !t || !r || !re)
        return c->oom = 1, NULL;
    p->kind = kind;
    p->intent = intent;
    p->src = bp->text;
    p->file = bp->pos.file;
    p->line = bp->pos.line;
    c->n_pats++;
    return p;
}

/* Checks that the JIT accepts code, on a copy freed at once: the router
 * JIT-compiles only the regexes that prove hot (rules_jit.c), so only a
 * check that asks for it learns here which ones never will. */
static void jit_try(struct compiler *c, const pcre2_code *code, const struct bregex *re)
{
    pcre2_code *copy = pcre2_code_copy(code);
    if (!copy) {
        c->oom = 1;
        return;
    }
    int rc = pcre2_jit_compile(copy, PCRE2_JIT_COMPLETE);
    pcre2_code_free(copy);
    if (rc != 0) {
        PCRE2_UCHAR msg[128];
        pcre2_get_error_message(rc, msg, sizeof msg);
        build_warning(c->b, &re->pos, "regex could not be jit-compiled (%s); it runs in the interpreter",
                      (const char *)msg);
    }
}

struct emit_ctx {
    struct compiler *c;
    struct u32v *req, *ends;
};
static int emit_required(void *ctx, int group, const char *s, size_t n);

/* Compiles a regex with the house options; reports PCRE2's error at its
 * offset. With req (NULL for slots) also fills what every match contains
 * (see regex_read) and *groups, from the same reading of the pattern. */
static pcre2_code *regex_compile(struct compiler *c, const struct bregex *re, struct emit_ctx *req,
                                 int *groups)
{
    size_t off;
    const char *why;
    int n = regex_read(re->src, re->len, re->extended, &why, &off, req ? emit_required : NULL, req);
    if (n < 0) {
        c->oom = 1;
        return NULL;
    }
    if (groups)
        *groups = n;
    if (why) {
        struct bpos p = re->pos;
        p.col += 1 + (int)off; /* the slash, then the offset (ASCII before it in practice) */
        build_error(c->b, &p, "dangerous regex: %s", why);
        return NULL;
    }
    uint32_t opts = PCRE2_UTF | PCRE2_CASELESS | PCRE2_NO_UTF_CHECK;
    if (re->extended)
        opts |= PCRE2_EXTENDED;
    int err;
    PCRE2_SIZE eoff;
    pcre2_code *code = pcre2_compile((PCRE2_SPTR)re->src, re->len, opts, &err, &eoff, NULL);
    if (!code) {
        PCRE2_UCHAR msg[256];
        pcre2_get_error_message(err, msg, sizeof msg);
        struct bpos p = re->pos;
        size_t i = 0;
        int col = 1;
        while (i < eoff && i < re->len) {
            text_utf8_next(re->src, &i);
            col++;
        }
        p.col += col;
        build_error(c->b, &p, "bad regex: %s", (const char *)msg);
        return NULL;
    }
    uint32_t captures = 0;
    pcre2_pattern_info(code, PCRE2_INFO_CAPTURECOUNT, &captures);
    if (captures + 1 > c->rs->max_groups)
        c->rs->max_groups = captures + 1;
    if (c->b->diag->jit_check)
        jit_try(c, code, re);
    return code;
}

static int emit_required(void *ctx, int group, const char *s, size_t n)
{
    struct emit_ctx *e = ctx;
    /* the regex runs on folded text: file the literal in the same form */
    int rc = text_normalize(s, n, TEXT_FOLD, &e->c->norm);
    if (rc == 0 && e->c->norm.len >= 3) {
        s = e->c->norm.s;
        n = e->c->norm.len;
    }
    long id = lit_intern(e->c, LIT_SUBSTR, s, n, 0);
    if (id < 0 || u32_push(e->c, e->req, (uint32_t)id) < 0)
        return -1;
    if ((size_t)group >= e->ends->n)
        return u32_push(e->c, e->ends, (uint32_t)e->req->n);
    e->ends->v[group] = (uint32_t)e->req->n;
    return 0;
}

/* Checks {name} templates in a reply against the intent's slots. */
static void check_templates(struct compiler *c, const struct bintent *bi, const char *text,
                            const struct bpos *pos)
{
    if (bi->action) /* {order.status}: a field of the action's result, known only when it answers */
        return;
    for (const char *p = strchr(text, '{'); p; p = strchr(p + 1, '{')) {
        const char *end = strchr(p, '}');
        if (!end) {
            build_error(c->b, pos,
                        "unclosed '{' in reply (write {slot}, {customer.name}, {service_hours} or {kb:ID})");
            return;
        }
        size_t n = (size_t)(end - p - 1);
        const char *name = p + 1;
        if ((n > 3 && memcmp(name, "kb:", 3) == 0) || (n > 9 && memcmp(name, "customer.", 9) == 0) ||
            (n == 13 && memcmp(name, "service_hours", 13) == 0))
            continue;
        int found = 0;
        for (size_t k = 0; k < bi->n_slots && !found; k++)
            found = strlen(bi->slots[k].name) == n && memcmp(bi->slots[k].name, name, n) == 0;
        if (!found)
            build_error(c->b, pos, "unknown slot '%.*s' in reply template", (int)n, name);
    }
}

/* The A/B variants of bi: each reply's ~NAME is declared, every reply of an intent with
 * variants names one, every variant has a reply; copies them into it. */
static int check_variants(struct compiler *c, struct bintent *bi, struct rules_intent *it)
{
    for (size_t k = 0; k < bi->n_replies; k++) {
        const char *v = bi->replies[k].variant;
        size_t j = 0;
        while (v && j < bi->n_variants && strcmp(bi->variants[j].name, v) != 0)
            j++;
        if (v && j == bi->n_variants)
            build_error(c->b, &bi->reply_variant_pos[k],
                        "unknown variant '%s' (declare it: variant %s WEIGHT)", v, v);
        else if (!v && bi->n_variants)
            build_error(c->b, &bi->reply_pos[k],
                        "intent '%s' has variants: this reply must name one (reply ~NAME text)", bi->name);
    }
    for (size_t j = 0; j < bi->n_variants; j++) {
        size_t k = 0;
        while (k < bi->n_replies &&
               !(bi->replies[k].variant && strcmp(bi->replies[k].variant, bi->variants[j].name) == 0))
            k++;
        if (k == bi->n_replies)
            build_error(c->b, &bi->variant_pos[j], "variant '%s' has no reply (write: reply ~%s text)",
                        bi->variants[j].name, bi->variants[j].name);
    }
    if (!bi->n_variants)
        return 0;
    struct rules_variant *vs = arena_alloc(&c->rs->arena, bi->n_variants * sizeof *vs);
    if (!vs)
        return c->oom = 1, -1;
    memcpy(vs, bi->variants, bi->n_variants * sizeof *vs);
    it->variants = vs;
    it->n_variants = bi->n_variants;
    return 0;
}

/* The action, its `on` lines (grouped by condition text) and `set` lines. */
static int compile_action(struct compiler *c, const struct bintent *bi, struct rules_intent *it)
{
    struct rules *rs = c->rs;
    if (!bi->action) {
        if (bi->n_ons)
            build_error(c->b, &bi->on_pos[0], "'on' needs an 'action' line in intent '%s'", bi->name);
        else if (bi->n_sets)
            build_error(c->b, &bi->pos, "'set' needs an 'action' line in intent '%s'", bi->name);
        return 0;
    }
    it->action = bi->action;
    it->action_src = bi->action_pos.src;
    it->action_line = bi->action_pos.line;
    it->action_col = bi->action_pos.col;
    struct rules_on *on = arena_alloc(&rs->arena, (bi->n_ons + 1) * sizeof *on);
    struct rules_set *st = arena_alloc(&rs->arena, (bi->n_sets + 1) * sizeof *st);
    if (!on || !st)
        return c->oom = 1, -1;
    int groups = 0;
    for (size_t k = 0; k < bi->n_ons; k++) {
        on[k] = bi->ons[k];
        on[k].group = -1;
        for (size_t j = 0; j < k && on[k].group < 0; j++)
            if (strcmp(bi->on_text[j], bi->on_text[k]) == 0)
                on[k].group = on[j].group;
        if (on[k].group < 0)
            on[k].group = groups++;
    }
    if (bi->n_sets)
        memcpy(st, bi->sets, bi->n_sets * sizeof *st);
    it->ons = on;
    it->n_ons = bi->n_ons;
    it->sets = st;
    it->n_sets = bi->n_sets;
    return 0;
}

static int compile_intent(struct compiler *c, struct bintent *bi, uint32_t index)
{
    struct rules *rs = c->rs;
    struct rules_intent *it = &rs->intents[index];
    it->name = bi->name;
    it->file = bi->pos.file;
    it->line = bi->pos.line;
    it->priority = bi->priority;
    it->threshold = bi->has_threshold ? bi->threshold : c->b->default_threshold;
    it->when = bi->when;
    it->examples = bi->examples;
    it->n_examples = bi->n_examples;
    it->replies = bi->replies;
    it->n_replies = bi->n_replies;
    it->handoffs = bi->handoffs;
    it->n_handoffs = bi->n_handoffs;
    it->n_patterns = bi->n_pats;
    if (bi->topic) {
        it->topic = bi->topic;
    } else {
        const char *dot = strchr(bi->name, '.');
        it->topic = dot ? arena_strndup(&rs->arena, bi->name, (size_t)(dot - bi->name)) : bi->name;
    }
    /* arrays handed to the public struct must outlive the tmp arena */
    struct rules_example *ex = arena_alloc(&rs->arena, (bi->n_examples + 1) * sizeof *ex);
    struct rules_reply *rp = arena_alloc(&rs->arena, (bi->n_replies + 1) * sizeof *rp);
    struct rules_handoff *ho = arena_alloc(&rs->arena, (bi->n_handoffs + 1) * sizeof *ho);
    struct rules_slot *sl = arena_alloc(&rs->arena, (bi->n_slots + 1) * sizeof *sl);
    if (!ex || !rp || !ho || !sl)
        return c->oom = 1, -1;
    if (bi->n_examples)
        memcpy(ex, bi->examples, bi->n_examples * sizeof *ex);
    if (bi->n_replies)
        memcpy(rp, bi->replies, bi->n_replies * sizeof *rp);
    if (bi->n_handoffs)
        memcpy(ho, bi->handoffs, bi->n_handoffs * sizeof *ho);
    it->examples = ex;
    it->replies = rp;
    it->handoffs = ho;

    for (size_t k = 0; k < bi->n_replies; k++)
        check_templates(c, bi, bi->replies[k].text, &bi->reply_pos[k]);
    if (check_variants(c, bi, it) < 0 || compile_action(c, bi, it) < 0)
        return -1;

    for (size_t k = 0; k < bi->n_slots; k++) {
        struct bslot *bs = &bi->slots[k];
        sl[k].name = bs->name;
        sl[k].ask = bs->ask;
        sl[k].index = -1;
        if (bs->n_asks) {
            struct rules_reply *asks = arena_alloc(&rs->arena, bs->n_asks * sizeof *asks);
            if (!asks)
                return c->oom = 1, -1;
            memcpy(asks, bs->asks, bs->n_asks * sizeof *asks);
            sl[k].asks = asks;
            sl[k].n_asks = bs->n_asks;
        }
        if (!bs->re.src) {
            build_error(c->b, &bs->pos, "slot '%s' has no pattern (write: slot %s /PATTERN/ ask \"...\")",
                        bs->name, bs->name);
            continue;
        }
        pcre2_code *code = regex_compile(c, &bs->re, NULL, NULL);
        if (!code)
            continue;
        sl[k].index = (int)rs->n_slots;
        rs->slots[rs->n_slots++] = (struct slot_re){code, bs->re.pos.file, bs->re.pos.line};
    }
    it->slots = sl;
    it->n_slots = bi->n_slots;

    if (bi->n_pats == 0 && bi->n_examples == 0)
        build_warning(c->b, &bi->pos, "intent '%s' has no match, regex or example: nothing can route to it",
                      bi->name);
    if (bi->n_replies == 0 && bi->n_handoffs == 0)
        build_warning(c->b, &bi->pos, "intent '%s' has neither a reply nor a handoff", bi->name);

    for (size_t k = 0; k < bi->n_pats; k++) {
        struct bpat *bp = &bi->pats[k];
        if (bp->kind == PAT_MATCH) {
            long root = compile_expr(c, bp->expr);
            if (root < 0)
                continue;
            struct pattern *p = pat_new(c, PAT_MATCH, index, bp);
            if (!p)
                return -1;
            p->root = (uint32_t)root;
            if (trigger_free(c, (uint32_t)root, 0))
                build_error(
                    c->b, &bp->pos,
                    "this match can be true with none of its terms in the message; add a term outside '!'");
        } else {
            /* the required literals are found before the pattern exists: keep them here */
            struct u32v req = {0}, ends = {0};
            struct emit_ctx ec = {c, &req, &ends};
            int groups = 0;
            pcre2_code *code = regex_compile(c, &bp->re, &ec, &groups);
            if (!code) {
                if (c->oom)
                    return -1;
                continue;
            }
            struct pattern *p = pat_new(c, PAT_REGEX, index, bp);
            if (!p) {
                pcre2_code_free(code);
                return -1;
            }
            p->re = code;
            c->pat_req[c->n_pats - 1] = req;
            c->pat_req_end[c->n_pats - 1] = ends;
            if (groups == 0)
                build_warning(
                    c->b, &bp->re.pos,
                    "regex has no literal of 3 or more bytes that every match contains; it runs on every "
                    "message");
        }
    }
    return c->oom ? -1 : 0;
}

/* Candidate keys of a literal: every stem of a word literal, every byte
 * trigram of a text literal. Calls fn for each. */
static void lit_keys(const struct lit *l, void (*fn)(void *ctx, uint32_t key, uint32_t pos), void *ctx)
{
    const unsigned char *s = (const unsigned char *)l->s;
    if (l->kind == LIT_SUBSTR) {
        for (size_t i = 0; i + 3 <= l->len; i++)
            fn(ctx, key_trigram(s + i), (uint32_t)i);
        uint64_t v = 0; /* the window rolls one byte per position, as in the router */
        for (size_t i = 0; i + 1 < KEY_LONG_LEN && i < l->len; i++)
            v = v << 8 | s[i];
        for (size_t i = 0; i + KEY_LONG_LEN <= l->len; i++) {
            v = v << 8 | s[i + KEY_LONG_LEN - 1];
            fn(ctx, key_long_of(v), (uint32_t)i);
        }
        return;
    }
    size_t start = 0;
    for (size_t i = 0; i <= l->len; i++) {
        if (i < l->len && s[i] != ' ')
            continue;
        fn(ctx, key_word(l->s + start, i - start), (uint32_t)start);
        start = i + 1;
    }
}

/* A key → count table used twice: to count how many literals offer each
 * key, then to choose each literal's rarest. */
struct keycount {
    uint32_t *key; /* key + 1, 0 empty */
    uint32_t *count;
    size_t mask;
};

static uint32_t *kc_slot(struct keycount *kc, uint32_t key)
{
    size_t h = key_hash(key) & kc->mask;
    while (kc->key[h] && kc->key[h] != key + 1)
        h = (h + 1) & kc->mask;
    kc->key[h] = key + 1;
    return &kc->count[h];
}

struct choose_ctx {
    struct keycount *kc;
    uint32_t best_key, best_count, best_pos;
    uint32_t last; /* to count a key once per literal: last literal seen */
};

static void count_key(void *ctx, uint32_t key, uint32_t pos)
{
    (void)pos;
    struct choose_ctx *x = ctx;
    (*kc_slot(x->kc, key))++;
}

static void pick_key(void *ctx, uint32_t key, uint32_t pos)
{
    struct choose_ctx *x = ctx;
    uint32_t n = *kc_slot(x->kc, key);
    if (n < x->best_count) {
        x->best_count = n;
        x->best_key = key;
        x->best_pos = pos;
    }
}

static int build_index(struct compiler *c)
{
    struct rules *rs = c->rs;
    size_t n = c->n_lits;
    size_t offers = 0; /* keys offered, an upper bound on the distinct ones */
    for (size_t k = 0; k < n; k++)
        offers += c->lits[k].kind == LIT_SUBSTR ? 2 * (size_t)c->lits[k].len : c->lits[k].nwords;
    size_t size = 1024;
    while (size < offers * 2 + 64)
        size *= 2;
    struct keycount kc = {arena_alloc(&c->b->tmp, size * 4), arena_alloc(&c->b->tmp, size * 4), size - 1};
    uint32_t *chosen = arena_alloc(&c->b->tmp, (n + 1) * 4);
    if (!kc.key || !kc.count || !chosen)
        return c->oom = 1, -1;
    struct choose_ctx x = {.kc = &kc};
    for (size_t k = 0; k < n; k++)
        lit_keys(&c->lits[k], count_key, &x);
    /* the final key table: literals per chosen key */
    size_t ksize = 1024;
    while (ksize < n * 2 + 64)
        ksize *= 2;
    rs->keys = arena_alloc(&rs->arena, ksize * sizeof *rs->keys);
    rs->key_mask = ksize - 1;
    rs->key_lits = arena_alloc(&rs->arena, (n + 1) * 4);
    if (!rs->keys || !rs->key_lits)
        return c->oom = 1, -1;
    for (size_t k = 0; k < n; k++) {
        x.best_count = UINT32_MAX;
        x.best_key = 0;
        lit_keys(&c->lits[k], pick_key, &x);
        chosen[k] = x.best_key;
        c->lits[k].key_off = x.best_pos;
        if (x.best_key & KEY_WORD)
            continue;
        if (x.best_key & KEY_LONG)
            rs->has_long_keys = 1;
        else
            rs->has_trigram_keys = 1;
    }
    /* counting sort of literals by key slot */
    for (size_t k = 0; k < n; k++) {
        uint32_t key = chosen[k];
        size_t h = key_hash(key) & rs->key_mask;
        while (rs->keys[h].key && rs->keys[h].key != key + 1)
            h = (h + 1) & rs->key_mask;
        rs->keys[h].key = key + 1;
        rs->keys[h].n++;
        uint32_t hh = key_hash(key);
        rs->keybits[hh >> 22] |= 1ull << (hh >> 16 & 63);
    }
    uint32_t off = 0;
    for (size_t h = 0; h <= rs->key_mask; h++) {
        rs->keys[h].off = off;
        off += rs->keys[h].n;
        rs->keys[h].n = 0;
    }
    for (size_t k = 0; k < n; k++) {
        uint32_t key = chosen[k];
        size_t h = key_hash(key) & rs->key_mask;
        while (rs->keys[h].key != key + 1)
            h = (h + 1) & rs->key_mask;
        rs->key_lits[rs->keys[h].off + rs->keys[h].n++] = (uint32_t)k;
    }
    return 0;
}

/* Literal → patterns it triggers, and the list of untriggered patterns. */
static int build_triggers(struct compiler *c)
{
    struct rules *rs = c->rs;
    size_t total = 0;
    for (size_t p = 0; p < c->n_pats; p++) {
        total += c->pat_trig[p].n;
        if (c->pat_trig[p].n == 0)
            rs->n_always++;
    }
    rs->lit_pats = arena_alloc(&rs->arena, (total + 1) * 4);
    rs->always = arena_alloc(&rs->arena, (rs->n_always + 1) * 4);
    if (!rs->lit_pats || !rs->always)
        return c->oom = 1, -1;
    for (size_t p = 0; p < c->n_pats; p++)
        for (size_t k = 0; k < c->pat_trig[p].n; k++)
            c->lits[c->pat_trig[p].v[k]].pat_n++;
    uint32_t off = 0;
    for (size_t l = 0; l < c->n_lits; l++) {
        c->lits[l].pat_off = off;
        off += c->lits[l].pat_n;
        c->lits[l].pat_n = 0;
    }
    size_t na = 0;
    for (size_t p = 0; p < c->n_pats; p++) {
        if (c->pat_trig[p].n == 0 && c->pats[p].kind == PAT_REGEX)
            rs->always[na++] = (uint32_t)p;
        for (size_t k = 0; k < c->pat_trig[p].n; k++) {
            struct lit *l = &c->lits[c->pat_trig[p].v[k]];
            /* the same pattern may list a literal twice (a | a): keep one */
            if (l->pat_n && rs->lit_pats[l->pat_off + l->pat_n - 1] == p)
                continue;
            rs->lit_pats[l->pat_off + l->pat_n++] = (uint32_t)p;
        }
    }
    rs->n_always = na;
    /* every required group of a regex, checked before PCRE2 runs */
    size_t ng = 0, nl = 0;
    for (size_t p = 0; p < c->n_pats; p++)
        ng += c->pat_req_end[p].n, nl += c->pat_req[p].n;
    rs->chk = arena_alloc(&rs->arena, (ng + 1) * sizeof *rs->chk);
    rs->chk_lits = arena_alloc(&rs->arena, (nl + 1) * 4);
    if (!rs->chk || !rs->chk_lits)
        return c->oom = 1, -1;
    ng = nl = 0;
    for (size_t p = 0; p < c->n_pats; p++) {
        const struct u32v *req = &c->pat_req[p], *ends = &c->pat_req_end[p];
        c->pats[p].chk_off = (uint32_t)ng;
        c->pats[p].chk_n = (uint32_t)ends->n;
        uint32_t start = 0;
        for (size_t g = 0; g < ends->n; g++) {
            rs->chk[ng++] = (struct lgroup){(uint32_t)nl, ends->v[g] - start};
            for (uint32_t k = start; k < ends->v[g]; k++)
                rs->chk_lits[nl++] = req->v[k];
            start = ends->v[g];
        }
    }
    return 0;
}

struct nameref {
    const char *name;
    size_t i;
};

static int nameref_cmp(const void *a, const void *b)
{
    const struct nameref *x = a, *y = b;
    int c = strcmp(x->name, y->name);
    return c ? c : x->i < y->i ? -1 : x->i > y->i;
}

/* Reports every intent and concept name defined twice, at the later one (sorted, not pairwise:
 * a rule set of 10,000 intents would otherwise cost 50 million comparisons), and keeps the
 * intents' sorted order in rs->by_name for rules_find(). */
static void lint_names(struct builder *b, struct rules *rs)
{
    size_t n = b->n_intents > b->n_concepts ? b->n_intents : b->n_concepts;
    struct nameref *v = arena_alloc(&b->tmp, (n + 1) * sizeof *v);
    if (!v)
        return;
    for (size_t k = 0; k < b->n_intents; k++)
        v[k] = (struct nameref){b->intents[k].name, k};
    if (b->n_intents > 1)
        qsort(v, b->n_intents, sizeof *v, nameref_cmp);
    if ((rs->by_name = arena_alloc(&rs->arena, (b->n_intents + 1) * sizeof *rs->by_name)))
        for (size_t k = 0; k < b->n_intents; k++)
            rs->by_name[k] = (uint32_t)v[k].i; /* equal names in file order: the first defined first */
    for (size_t k = 1, first = 0; k < b->n_intents; k++) {
        if (strcmp(v[k].name, v[first].name) != 0) {
            first = k;
            continue;
        }
        const struct bintent *it = &b->intents[v[k].i], *was = &b->intents[v[first].i];
        build_error(b, &it->pos, "duplicate intent '%s' (first defined at %s:%d)", it->name, was->pos.file,
                    was->pos.line);
    }
    for (size_t k = 0; k < b->n_concepts; k++)
        v[k] = (struct nameref){b->concepts[k].name, k};
    if (b->n_concepts > 1)
        qsort(v, b->n_concepts, sizeof *v, nameref_cmp);
    for (size_t k = 1, first = 0; k < b->n_concepts; k++) {
        if (strcmp(v[k].name, v[first].name) != 0) {
            first = k;
            continue;
        }
        const struct bconcept *cn = &b->concepts[v[k].i], *was = &b->concepts[v[first].i];
        build_error(b, &cn->pos, "duplicate concept '%s' (first defined at %s:%d)", cn->name, was->pos.file,
                    was->pos.line);
    }
}

struct patref {
    const struct bpat *pat;
    const struct bintent *it;
    size_t order;
};

static int patref_cmp(const void *a, const void *b)
{
    const struct patref *x = a, *y = b;
    if (x->pat->kind != y->pat->kind)
        return x->pat->kind < y->pat->kind ? -1 : 1;
    int c = strcmp(x->pat->text, y->pat->text);
    if (c)
        return c;
    /* the winner first: higher priority, then file order */
    if (x->it->priority != y->it->priority)
        return x->it->priority > y->it->priority ? -1 : 1;
    return x->order < y->order ? -1 : x->order > y->order;
}

/* Warns about a pattern written identically in an intent that wins over it. */
static void lint_shadowed(struct compiler *c)
{
    struct builder *b = c->b;
    size_t n = 0;
    for (size_t i = 0; i < b->n_intents; i++)
        n += b->intents[i].n_pats;
    struct patref *v = arena_alloc(&b->tmp, (n + 1) * sizeof *v);
    if (!v)
        return;
    n = 0;
    for (size_t i = 0; i < b->n_intents; i++)
        for (size_t p = 0; p < b->intents[i].n_pats; p++)
            v[n++] = (struct patref){&b->intents[i].pats[p], &b->intents[i], i};
    qsort(v, n, sizeof *v, patref_cmp);
    for (size_t k = 1; k < n; k++) {
        size_t first = k - 1;
        while (first > 0 && v[first - 1].pat->kind == v[k].pat->kind &&
               strcmp(v[first - 1].pat->text, v[k].pat->text) == 0)
            first--;
        if (v[first].pat->kind != v[k].pat->kind || strcmp(v[first].pat->text, v[k].pat->text) != 0 ||
            v[first].it == v[k].it)
            continue;
        if (v[first].it->has_when || v[k].it->has_when)
            continue; /* conditions may keep them apart */
        build_warning(b, &v[k].pat->pos, "pattern is shadowed: intent '%s' (%s:%d) has the same one",
                      v[first].it->name, v[first].pat->pos.file, v[first].pat->pos.line);
    }
}

int rules_compile(struct builder *b, struct rules *rs)
{
    struct compiler c = {.b = b, .rs = rs};
    text_buf_init(&c.norm);
    text_toks_init(&c.toks);
    rs->default_threshold = b->default_threshold;
    rs->max_groups = 1;
    lint_names(b, rs);
    rs->n_intents = b->n_intents;
    rs->intents = arena_alloc(&rs->arena, (b->n_intents + 1) * sizeof *rs->intents);
    size_t n_slots = 0;
    for (size_t i = 0; i < b->n_intents; i++)
        n_slots += b->intents[i].n_slots;
    rs->slots = arena_alloc(&rs->arena, (n_slots + 1) * sizeof *rs->slots);
    if (!rs->intents || !rs->slots)
        c.oom = 1;
    for (size_t i = 0; i < b->n_intents && !c.oom; i++)
        compile_intent(&c, &b->intents[i], (uint32_t)i);
    for (size_t k = 0; k < b->n_concepts && !c.oom; k++) {
        if (!b->concepts[k].used && (!b->entry || b->concepts[k].pos.file == b->entry))
            build_warning(b, &b->concepts[k].pos, "concept '%s' is never used", b->concepts[k].name);
        else if (b->concepts[k].state != 2)
            compile_concept(&c, &b->concepts[k], &b->concepts[k].pos);
    }
    lint_shadowed(&c);
    if (!c.oom && choose_triggers(&c) == 0 && build_index(&c) == 0 && build_triggers(&c) == 0) {
        rs->lits = arena_alloc(&rs->arena, (c.n_lits + 1) * sizeof *rs->lits);
        rs->nodes = arena_alloc(&rs->arena, (c.n_nodes + 1) * sizeof *rs->nodes);
        rs->pats = arena_alloc(&rs->arena, (c.n_pats + 1) * sizeof *rs->pats);
        if (rs->lits && rs->nodes && rs->pats) {
            if (c.n_lits) /* the vectors are NULL while empty */
                memcpy(rs->lits, c.lits, c.n_lits * sizeof *rs->lits);
            if (c.n_nodes)
                memcpy(rs->nodes, c.nodes, c.n_nodes * sizeof *rs->nodes);
            if (c.n_pats)
                memcpy(rs->pats, c.pats, c.n_pats * sizeof *rs->pats);
            rs->n_lits = c.n_lits;
            rs->n_nodes = c.n_nodes;
            rs->n_pats = c.n_pats;
        } else {
            c.oom = 1;
        }
        /* the one mutable part of the set: evaluation counts and JIT copies */
        rs->pat_jit = arena_alloc(&rs->arena, (c.n_pats + 1) * sizeof *rs->pat_jit);
        rs->slot_jit = arena_alloc(&rs->arena, (rs->n_slots + 1) * sizeof *rs->slot_jit);
        if (rs->pat_jit && rs->slot_jit) {
            jit_cache_init(rs->pat_jit, c.n_pats);
            jit_cache_init(rs->slot_jit, rs->n_slots);
        } else {
            c.oom = 1;
        }
    }
    if (c.oom || !rs->pats) {
        /* regexes compiled so far are not yet owned by rs->pats */
        for (size_t p = 0; p < c.n_pats; p++)
            pcre2_code_free(c.pats[p].re);
        rs->n_pats = 0;
    }
    text_buf_release(&c.norm);
    text_toks_release(&c.toks);
    if (c.oom)
        return KEFU_ENOMEM;
    return b->diag->errors ? KEFU_ESYNTAX : 0;
}
