/* rules_regex.c — read a PCRE2 pattern the way the compiler needs to:
 * which literal strings every match must contain (so the router runs the
 * regex only when one is present), and whether the pattern has the shape
 * of catastrophic backtracking (a repeated group around a repetition).
 * This is a conservative reader, not a regex engine: whatever it does not
 * understand breaks a literal run, so the strings it returns are always
 * truly required; PCRE2 itself still decides whether the pattern is valid. */
#include "rules_int.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#define MAX_SET  16 /* strings in one requirement; more means "not selective" */
#define MAX_RUN  64
#define MAX_CONJ 8 /* separate requirements kept for the top level */

/* A requirement: a match contains at least one of these strings. */
struct req {
    int n; /* 0: nothing known */
    char s[MAX_SET][MAX_RUN];
    unsigned char len[MAX_SET];
};

struct rx {
    const char *p;
    size_t i, n;
    int ext;
    int depth;
    const char *danger;
    size_t danger_off;
    struct req conj[MAX_CONJ]; /* every requirement of the current top-level alternative */
    int n_conj;
};

/* Scores a requirement: the shortest string counts, more strings cost. */
static int req_score(const struct req *r)
{
    if (r->n == 0)
        return -1;
    int shortest = MAX_RUN;
    for (int k = 0; k < r->n; k++)
        if (r->len[k] < shortest)
            shortest = r->len[k];
    return shortest * 16 - r->n;
}

/* Copies the used part of a requirement. */
static void req_copy(struct req *to, const struct req *from)
{
    to->n = from->n;
    for (int k = 0; k < from->n; k++) {
        memcpy(to->s[k], from->s[k], from->len[k]);
        to->len[k] = from->len[k];
    }
}

static void req_offer(struct req *best, const struct req *cand)
{
    if (req_score(cand) > req_score(best))
        req_copy(best, cand);
}

/* Offers a requirement of the sequence being read; at the top level it is
 * also kept as one of the conjuncts every match must satisfy. */
static void offer(struct rx *x, struct req *best, const struct req *cand)
{
    if (cand->n == 0)
        return;
    if (x->depth == 0 && x->n_conj < MAX_CONJ)
        req_copy(&x->conj[x->n_conj++], cand);
    req_offer(best, cand);
}

/* Offers the literal run as a one-string requirement (3 bytes at least). */
static void offer_run(struct rx *x, struct req *best, const char *run, size_t len)
{
    /* trim spaces at the ends: they carry no selectivity */
    while (len && run[0] == ' ')
        run++, len--;
    while (len && run[len - 1] == ' ')
        len--;
    if (len < 3)
        return;
    if (len >= MAX_RUN)
        len = MAX_RUN - 1;
    struct req r;
    r.n = 1;
    memcpy(r.s[0], run, len);
    r.len[0] = (unsigned char)len;
    offer(x, best, &r);
}

static void skip_ext(struct rx *x)
{
    while (x->ext && x->i < x->n) {
        char ch = x->p[x->i];
        if (ch == ' ' || ch == '\t' || ch == '\n')
            x->i++;
        else if (ch == '#')
            while (x->i < x->n && x->p[x->i] != '\n')
                x->i++;
        else
            break;
    }
}

/* Reads a quantifier at x->i if there is one: returns 0 none, 1 optional
 * (?, *, {0..}), 2 at least once (+, {n..} n>=1); *unbounded says whether
 * it has no upper bound. */
static int read_quant(struct rx *x, int *unbounded)
{
    skip_ext(x);
    *unbounded = 0;
    if (x->i >= x->n)
        return 0;
    char ch = x->p[x->i];
    int kind = 0;
    if (ch == '?' || ch == '*' || ch == '+') {
        x->i++;
        kind = ch == '+' ? 2 : 1;
        *unbounded = ch != '?';
    } else if (ch == '{') {
        size_t j = x->i + 1;
        unsigned lo = 0;
        int digits = 0;
        while (j < x->n && isdigit((unsigned char)x->p[j]))
            lo = lo * 10 + (unsigned)(x->p[j++] - '0'), digits++;
        int comma = j < x->n && x->p[j] == ',';
        if (comma)
            j++;
        int hi_digits = 0;
        while (j < x->n && isdigit((unsigned char)x->p[j]))
            j++, hi_digits++;
        if (!digits || j >= x->n || x->p[j] != '}')
            return 0; /* a literal brace */
        x->i = j + 1;
        kind = lo == 0 ? 1 : 2;
        *unbounded = comma && !hi_digits;
    } else {
        return 0;
    }
    if (x->i < x->n && (x->p[x->i] == '?' || x->p[x->i] == '+'))
        x->i++; /* lazy or possessive */
    return kind;
}

/* Skips a character class starting at '['. */
static void skip_class(struct rx *x)
{
    x->i++;
    if (x->i < x->n && x->p[x->i] == '^')
        x->i++;
    if (x->i < x->n && x->p[x->i] == ']')
        x->i++;
    while (x->i < x->n && x->p[x->i] != ']') {
        if (x->p[x->i] == '\\')
            x->i++;
        else if (x->p[x->i] == '[' && x->i + 1 < x->n && x->p[x->i + 1] == ':') {
            const char *end = strstr(x->p + x->i, ":]");
            if (end && (size_t)(end - x->p) < x->n)
                x->i = (size_t)(end - x->p) + 1;
        }
        x->i++;
    }
    if (x->i < x->n)
        x->i++;
}

struct group_info {
    int has_unbounded; /* something inside repeats without bound */
    int n_alts;
    unsigned char first[8]; /* first literal byte of each alternative, 0 unknown */
};

static void parse_alt(struct rx *x, struct req *out, struct group_info *gi);

/* Parses a group from after '(' to after ')'; fills its requirement. */
static void parse_group(struct rx *x, struct req *out, struct group_info *gi, int *capturing_or_plain)
{
    *capturing_or_plain = 1;
    if (x->i < x->n && x->p[x->i] == '?') {
        char k = x->i + 1 < x->n ? x->p[x->i + 1] : 0;
        if (k == ':' || k == '|' || k == '>') {
            x->i += 2;
        } else if (k == '<' && x->i + 2 < x->n && x->p[x->i + 2] != '=' && x->p[x->i + 2] != '!') {
            while (x->i < x->n && x->p[x->i] != '>')
                x->i++;
            x->i++;
        } else if (k == 'P' && x->i + 2 < x->n && x->p[x->i + 2] == '<') {
            while (x->i < x->n && x->p[x->i] != '>')
                x->i++;
            x->i++;
        } else if (k == '\'') {
            x->i += 2;
            while (x->i < x->n && x->p[x->i] != '\'')
                x->i++;
            x->i++;
        } else {
            /* lookaround, options, comments, conditionals: contributes nothing */
            *capturing_or_plain = 0;
        }
    }
    x->depth++;
    parse_alt(x, out, gi);
    x->depth--;
    if (!*capturing_or_plain)
        out->n = 0;
    if (x->i < x->n && x->p[x->i] == ')')
        x->i++;
}

/* Parses alternatives until ')' or the end; out gets the union of each
 * alternative's best requirement (nothing if any alternative has none). */
static void parse_alt(struct rx *x, struct req *out, struct group_info *gi)
{
    struct req all;
    all.n = 0;
    int any_none = 0;
    memset(gi, 0, sizeof *gi);
    for (;;) {
        struct req best;
        best.n = 0;
        if (x->depth == 0)
            x->n_conj = 0;
        char run[MAX_RUN];
        size_t rl = 0;
        int first_seen = 0;
        unsigned char first = 0;
        while (x->i < x->n && x->p[x->i] != '|' && x->p[x->i] != ')') {
            skip_ext(x);
            if (x->i >= x->n || x->p[x->i] == '|' || x->p[x->i] == ')')
                break;
            char ch = x->p[x->i];
            size_t at = x->i;
            int lit = 0; /* 1: a literal byte sequence appended to run */
            char buf[8];
            size_t bl = 0;
            if (ch == '\\') {
                char e = x->i + 1 < x->n ? x->p[x->i + 1] : 0;
                x->i += 2;
                if (e == 's') {
                    buf[bl++] = ' ';
                    lit = 1;
                } else if (e == 'b' || e == 'B' || e == 'A' || e == 'z' || e == 'Z' || e == 'G') {
                    continue; /* zero-width: the run goes on */
                } else if (e && !isalnum((unsigned char)e)) {
                    buf[bl++] = e;
                    lit = 1;
                } else if (e == 'p' || e == 'P' || e == 'x' || e == 'g' || e == 'k' || e == 'N' || e == 'o') {
                    if (x->i < x->n && (x->p[x->i] == '{' || x->p[x->i] == '<')) {
                        char close = x->p[x->i] == '{' ? '}' : '>';
                        while (x->i < x->n && x->p[x->i] != close)
                            x->i++;
                        x->i++;
                    } else if (e == 'x') {
                        x->i += 2;
                    } else if (x->i < x->n) {
                        x->i++;
                    }
                } else if (e == 'Q') {
                    const char *end = strstr(x->p + x->i, "\\E");
                    x->i = end && (size_t)(end - x->p) < x->n ? (size_t)(end - x->p) + 2 : x->n;
                }
            } else if (ch == '[') {
                skip_class(x);
            } else if (ch == '(') {
                x->i++;
                struct req g;
                g.n = 0;
                struct group_info inner;
                int plain;
                parse_group(x, &g, &inner, &plain);
                int unb;
                int q = read_quant(x, &unb);
                if (unb && inner.has_unbounded && !x->danger) {
                    x->danger = "nested unbounded quantifier: a repeated group around a repetition";
                    x->danger_off = at;
                }
                if (unb && !x->danger && inner.n_alts > 1) {
                    for (int a = 0; a < inner.n_alts && a < 8; a++)
                        for (int b = a + 1; b < inner.n_alts && b < 8; b++)
                            if (inner.first[a] && inner.first[a] == inner.first[b]) {
                                x->danger = "repeated group whose alternatives start alike";
                                x->danger_off = at;
                            }
                }
                if (unb || inner.has_unbounded)
                    gi->has_unbounded = 1;
                if (q != 1 && plain)
                    offer(x, &best, &g);
                if (!first_seen)
                    first_seen = 1;
                offer_run(x, &best, run, rl);
                rl = 0;
                continue;
            } else if (ch == '.' || ch == '^' || ch == '$') {
                x->i++;
            } else {
                /* a literal character, possibly multi-byte */
                size_t len = 1;
                unsigned char u = (unsigned char)ch;
                if (u >= 0xf0)
                    len = 4;
                else if (u >= 0xe0)
                    len = 3;
                else if (u >= 0xc0)
                    len = 2;
                for (size_t k = 0; k < len && x->i < x->n; k++)
                    buf[bl++] = (char)tolower((unsigned char)x->p[x->i++]);
                lit = 1;
            }
            if (!first_seen) {
                first_seen = 1;
                first = lit ? (unsigned char)buf[0] : 0;
            }
            int unb;
            int q = read_quant(x, &unb);
            if (unb)
                gi->has_unbounded = 1;
            /* normalized text has single spaces: \s+ (or ' '+) is exactly one space */
            int one_space = lit && q == 2 && bl == 1 && buf[0] == ' ';
            if (one_space)
                q = 0;
            if (lit && q != 1 && rl + bl < MAX_RUN) {
                memcpy(run + rl, buf, bl);
                rl += bl;
            }
            if (!lit || q != 0) {
                offer_run(x, &best, run, rl);
                rl = 0;
            }
        }
        offer_run(x, &best, run, rl);
        if (gi->n_alts < 8)
            gi->first[gi->n_alts] = first;
        gi->n_alts++;
        if (best.n == 0)
            any_none = 1;
        else if (all.n + best.n <= MAX_SET) {
            for (int k = 0; k < best.n; k++) {
                memcpy(all.s[all.n], best.s[k], best.len[k]);
                all.len[all.n++] = best.len[k];
            }
        } else {
            any_none = 1;
        }
        if (x->i < x->n && x->p[x->i] == '|') {
            x->i++;
            continue;
        }
        break;
    }
    if (any_none)
        all.n = 0;
    if (x->depth == 0 && gi->n_alts > 1) { /* top-level alternatives: only their union is required */
        x->n_conj = 0;
        if (all.n)
            req_copy(&x->conj[x->n_conj++], &all);
    }
    req_copy(out, &all);
}

static void analyze(const char *pat, size_t len, int extended, struct req *out, struct rx *x)
{
    /* only the scalars: conj[] is written before it is read (n_conj says how far) */
    x->p = pat;
    x->i = 0;
    x->n = len;
    x->ext = extended;
    x->depth = 0;
    x->danger = NULL;
    x->danger_off = 0;
    x->n_conj = 0;
    struct group_info gi;
    out->n = 0;
    while (x->i < x->n) {
        struct req r;
        parse_alt(x, &r, &gi);
        if (x->i < x->n && x->p[x->i] == ')') {
            x->i++; /* unbalanced: PCRE2 will report it; nothing is required */
            out->n = 0;
            continue;
        }
        req_copy(out, &r);
    }
}

/* Returns 1 if the pattern turns on extended mode inline, like (?x) or
 * (?ix:...): its spaces then mean nothing, and this reader gives up. */
static int inline_extended(const char *pat, size_t len)
{
    for (size_t i = 0; i + 2 < len; i++) {
        if (pat[i] == '\\') {
            i++;
            continue;
        }
        if (pat[i] != '(' || pat[i + 1] != '?')
            continue;
        for (size_t j = i + 2; j < len && (isalpha((unsigned char)pat[j]) || pat[j] == '-' || pat[j] == '^');
             j++)
            if (pat[j] == 'x' && j + 1 < len)
                return 1;
    }
    return 0;
}

int regex_read(const char *pat, size_t len, int extended, const char **danger, size_t *off,
               int (*emit)(void *ctx, int group, const char *s, size_t n), void *ctx)
{
    *danger = NULL;
    *off = 0;
    struct req r;
    struct rx *x = malloc(sizeof *x);
    if (!x)
        return -1;
    analyze(pat, len, extended, &r, x);
    *danger = x->danger;
    *off = x->danger_off;
    int n = emit && !x->danger && !inline_extended(pat, len) ? x->n_conj : 0;
    for (int g = 0; g < n; g++)
        for (int k = 0; k < x->conj[g].n; k++)
            if (emit(ctx, g, x->conj[g].s[k], x->conj[g].len[k]) < 0) {
                free(x);
                return -1;
            }
    free(x);
    return n;
}
