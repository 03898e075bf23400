/* rules.c — read rule files: diagnostics, loading, and the line parser.
 * Each line is one statement; the parser turns it into builder records
 * with positions (rules_build.h) and rules_compile.c makes the rule set.
 * The public accessors of a compiled set live here too. */
#include "rules.h"

#include "kefu.h"
#include "rules_build.h"
#include "text.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* ---- diagnostics ---- */

void rules_diag_init(struct rules_diag *d)
{
    memset(d, 0, sizeof *d);
}

void rules_diag_release(struct rules_diag *d)
{
    for (size_t i = 0; i < d->n; i++) {
        free(d->v[i].file);
        free(d->v[i].text);
        free(d->v[i].src);
    }
    free(d->v);
    memset(d, 0, sizeof *d);
}

static char *dup_or_null(const char *s)
{
    return s ? kefu_strndup(s, strlen(s)) : NULL;
}

static void diag_vadd(struct rules_diag *d, int severity, const char *file, int line, int col,
                      const char *src, const char *fmt, va_list ap)
{
    if (d->n == d->cap) {
        size_t cap = d->cap ? d->cap * 2 : 16;
        struct rules_msg *v = kefu_realloc(d->v, cap * sizeof *v);
        if (!v)
            return;
        d->v = v;
        d->cap = cap;
    }
    char buf[1024];
    vsnprintf(buf, sizeof buf, fmt, ap);
    struct rules_msg *m = &d->v[d->n++];
    m->file = dup_or_null(file ? file : "");
    m->line = line;
    m->col = col;
    m->severity = severity;
    m->text = dup_or_null(buf);
    m->src = dup_or_null(src);
    if (severity == RULES_ERROR)
        d->errors++;
    else
        d->warnings++;
}

void rules_diag_add(struct rules_diag *d, int severity, const char *file, int line, int col, const char *src,
                    const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    diag_vadd(d, severity, file, line, col, src, fmt, ap);
    va_end(ap);
}

/* Display width of a code point in a terminal: 2 for East Asian wide forms. */
static int cp_width(uint32_t cp)
{
    if ((cp >= 0x1100 && cp <= 0x115f) || (cp >= 0x2e80 && cp <= 0xa4cf) || (cp >= 0xac00 && cp <= 0xd7a3) ||
        (cp >= 0xf900 && cp <= 0xfaff) || (cp >= 0xfe30 && cp <= 0xfe4f) || (cp >= 0xff00 && cp <= 0xff60) ||
        (cp >= 0xffe0 && cp <= 0xffe6) || cp >= 0x20000)
        return 2;
    return 1;
}

void rules_diag_print(FILE *f, const struct rules_diag *d)
{
    for (size_t k = 0; k < d->n; k++) {
        const struct rules_msg *m = &d->v[k];
        const char *sev = m->severity == RULES_WARNING ? "warning: " : "";
        if (m->line > 0)
            fprintf(f, "%s:%d:%d: %s%s\n", m->file, m->line, m->col, sev, m->text);
        else /* about a whole file or directory */
            fprintf(f, "%s: %s%s\n", m->file, sev, m->text);
        if (!m->src)
            continue;
        fprintf(f, "  %s\n  ", m->src);
        size_t i = 0, len = strlen(m->src);
        for (int c = 1; c < m->col && i < len; c++) {
            if (m->src[i] == '\t') {
                fputc('\t', f);
                i++;
                continue;
            }
            uint32_t cp = text_utf8_next(m->src, &i);
            fputs(cp_width(cp) == 2 ? "  " : " ", f);
        }
        fputs("^\n", f);
    }
}

/* ---- builder helpers ---- */

void *build_push(struct arena *a, void *v, size_t n, size_t *cap, size_t el)
{
    void **vp = v;
    if (n >= *cap) {
        size_t ncap = *cap ? *cap * 2 : 8;
        void *nv = arena_alloc(a, ncap * el);
        if (!nv)
            return NULL;
        if (*vp)
            memcpy(nv, *vp, *cap * el);
        *vp = nv;
        *cap = ncap;
    }
    return (char *)*vp + n * el;
}

static void build_vreport(struct builder *b, int sev, const struct bpos *pos, const char *fmt, va_list ap)
{
    diag_vadd(b->diag, sev, pos ? pos->file : "", pos ? pos->line : 0, pos ? pos->col : 0,
              pos ? pos->src : NULL, fmt, ap);
}

void build_error(struct builder *b, const struct bpos *pos, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    build_vreport(b, RULES_ERROR, pos, fmt, ap);
    va_end(ap);
}

void build_warning(struct builder *b, const struct bpos *pos, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    build_vreport(b, RULES_WARNING, pos, fmt, ap);
    va_end(ap);
}

/* ---- the line cursor ---- */

struct cur {
    struct builder *b;
    const char *file; /* kept in b->keep */
    const char *line; /* NUL-terminated, kept in b->tmp */
    size_t len, i;
    int lineno;
    int failed;   /* an error was reported on this line */
    int any_attr; /* an `on` condition: any name is a field of the action's result */
};

static struct bpos pos_at(const struct cur *c, size_t i)
{
    struct bpos p = {c->file, c->line, c->lineno, 1};
    for (size_t k = 0; k < i && k < c->len;) {
        text_utf8_next(c->line, &k);
        p.col++;
    }
    return p;
}

__attribute__((format(printf, 3, 4))) static void err_at(struct cur *c, size_t i, const char *fmt, ...)
{
    if (c->failed)
        return; /* one error per line: the rest is usually a consequence */
    struct bpos p = pos_at(c, i);
    va_list ap;
    va_start(ap, fmt);
    build_vreport(c->b, RULES_ERROR, &p, fmt, ap);
    va_end(ap);
    c->failed = 1;
}

static void skip_ws(struct cur *c)
{
    while (c->i < c->len && (c->line[c->i] == ' ' || c->line[c->i] == '\t'))
        c->i++;
}

static int at_comment(const struct cur *c, size_t i)
{
    return i < c->len && c->line[i] == '#' && (i == 0 || c->line[i - 1] == ' ' || c->line[i - 1] == '\t');
}

static int at_end(struct cur *c)
{
    skip_ws(c);
    return c->i >= c->len || at_comment(c, c->i);
}

static int is_word_char(char ch)
{
    return isalnum((unsigned char)ch) || ch == '_' || ch == '.' || ch == '-' || ch == '@';
}

/* Reads a keyword or name; returns its length (0 if none). */
static size_t read_word(struct cur *c, const char **s)
{
    skip_ws(c);
    size_t start = c->i;
    while (c->i < c->len && is_word_char(c->line[c->i]))
        c->i++;
    *s = c->line + start;
    return c->i - start;
}

/* Reads a name: the run up to white space or a comment, so that a bad
 * character is reported inside the name rather than after it. */
static size_t read_name(struct cur *c, const char **s)
{
    skip_ws(c);
    size_t start = c->i;
    while (c->i < c->len && c->line[c->i] != ' ' && c->line[c->i] != '\t' && c->line[c->i] != '=' &&
           !at_comment(c, c->i))
        c->i++;
    *s = c->line + start;
    return c->i - start;
}

static int word_is(const char *s, size_t n, const char *w)
{
    return strlen(w) == n && memcmp(s, w, n) == 0;
}

/* Reads a "quoted string" into the keep arena; NULL after reporting an error. */
static char *read_string(struct cur *c)
{
    skip_ws(c);
    if (c->i >= c->len || c->line[c->i] != '"') {
        err_at(c, c->i, "expected a quoted string");
        return NULL;
    }
    size_t open = c->i++;
    char *out = arena_alloc(c->b->keep, c->len - open + 1);
    if (!out)
        return NULL;
    size_t n = 0;
    while (c->i < c->len && c->line[c->i] != '"') {
        char ch = c->line[c->i++];
        if (ch == '\\' && c->i < c->len) {
            char e = c->line[c->i++];
            ch = e == 'n' ? '\n' : e == 't' ? '\t' : e;
        }
        out[n++] = ch;
    }
    if (c->i >= c->len) {
        err_at(c, open, "unterminated string");
        return NULL;
    }
    c->i++;
    out[n] = 0;
    return out;
}

/* Reads free text up to a comment or the end, trimmed, with \# \n \t \\
 * unescaped, into the keep arena. */
static char *read_rest(struct cur *c, size_t *n_out)
{
    skip_ws(c);
    char *out = arena_alloc(c->b->keep, c->len - c->i + 1);
    if (!out)
        return NULL;
    size_t n = 0;
    while (c->i < c->len && !at_comment(c, c->i)) {
        char ch = c->line[c->i++];
        if (ch == '\\' && c->i < c->len && strchr("#nt\\", c->line[c->i])) {
            char e = c->line[c->i++];
            ch = e == 'n' ? '\n' : e == 't' ? '\t' : e;
        }
        out[n++] = ch;
    }
    while (n > 0 && (out[n - 1] == ' ' || out[n - 1] == '\t'))
        n--;
    out[n] = 0;
    if (n_out)
        *n_out = n;
    return out;
}

static void expect_end(struct cur *c)
{
    if (!at_end(c))
        err_at(c, c->i, "unexpected text after the statement");
}

static int valid_intent_name(const char *s, size_t n)
{
    if (n == 0 || s[0] == '.' || s[n - 1] == '.')
        return 0;
    for (size_t i = 0; i < n; i++) {
        char ch = s[i];
        if (!(islower((unsigned char)ch) || isdigit((unsigned char)ch) || ch == '_' || ch == '.'))
            return 0;
        if (ch == '.' && s[i + 1] == '.')
            return 0;
    }
    return 1;
}

static int valid_locale(const char *s, size_t n)
{
    if (n < 2)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!(islower((unsigned char)s[i]) || isdigit((unsigned char)s[i]) || s[i] == '-'))
            return 0;
    return 1;
}

static char *keep_copy(struct cur *c, const char *s, size_t n)
{
    return arena_strndup(c->b->keep, s, n);
}

static int read_number(struct cur *c, double *out)
{
    skip_ws(c);
    size_t start = c->i;
    while (c->i < c->len && (isdigit((unsigned char)c->line[c->i]) || strchr("+-.eE", c->line[c->i])))
        c->i++;
    char buf[64];
    size_t n = c->i - start;
    if (n == 0 || n >= sizeof buf) {
        err_at(c, start, "expected a number");
        return -1;
    }
    memcpy(buf, c->line + start, n);
    buf[n] = 0;
    char *end;
    *out = strtod(buf, &end);
    if (*end || !isfinite(*out)) {
        err_at(c, start, "'%s' is not a number", buf);
        return -1;
    }
    return 0;
}

/* Consumes the ')' that closes the '(' at open; reports it missing. */
static int expect_close(struct cur *c, size_t open)
{
    skip_ws(c);
    if (c->i >= c->len || c->line[c->i] != ')') {
        err_at(c, open, "unclosed '('");
        return -1;
    }
    c->i++;
    return 0;
}

/* ---- regex literals: /pattern/flags ---- */

static int read_regex(struct cur *c, struct bregex *re)
{
    skip_ws(c);
    if (c->i >= c->len || c->line[c->i] != '/') {
        err_at(c, c->i, "expected a regex in slashes, like /refund(ed)?/");
        return -1;
    }
    size_t open = c->i++;
    re->pos = pos_at(c, open);
    size_t start = c->i;
    while (c->i < c->len && c->line[c->i] != '/') {
        if (c->line[c->i] == '\\' && c->i + 1 < c->len)
            c->i++;
        c->i++;
    }
    if (c->i >= c->len) {
        err_at(c, open, "unterminated regex");
        return -1;
    }
    /* '\/' is how a slash is written between the slashes; PCRE2 needs '/'. */
    char *src = arena_alloc(c->b->keep, c->i - start + 1);
    if (!src)
        return -1;
    size_t n = 0;
    for (size_t k = start; k < c->i; k++) {
        if (c->line[k] == '\\' && k + 1 < c->i && c->line[k + 1] == '/')
            k++;
        src[n++] = c->line[k];
    }
    re->src = src;
    re->len = n;
    c->i++;
    while (c->i < c->len && isalpha((unsigned char)c->line[c->i])) {
        char f = c->line[c->i];
        if (f == 'i')
            re->caseless = 1;
        else if (f == 'x')
            re->extended = 1;
        else {
            err_at(c, c->i, "unknown regex flag '%c' (use i or x)", f);
            return -1;
        }
        c->i++;
    }
    return 0;
}

/* ---- match expressions ---- */

static struct bexpr *bx_new(struct cur *c, uint8_t op, size_t at)
{
    struct bexpr *e = arena_alloc(&c->b->tmp, sizeof *e);
    if (e) {
        e->op = op;
        e->pos = pos_at(c, at);
    }
    return e;
}

static struct bexpr *parse_or(struct cur *c, int depth);

static int is_op_char(char ch)
{
    return ch == '&' || ch == '|' || ch == '!' || ch == '(' || ch == ')' || ch == '~' || ch == '"';
}

static struct bexpr *parse_ref(struct cur *c)
{
    size_t at = c->i++;
    const char *name;
    size_t n;
    size_t save = c->i;
    while (c->i < c->len && (isalnum((unsigned char)c->line[c->i]) || strchr("_.-", c->line[c->i])))
        c->i++;
    name = c->line + save;
    n = c->i - save;
    if (n == 0) {
        err_at(c, at, "expected a concept name after '~'");
        return NULL;
    }
    struct bexpr *e = bx_new(c, BX_REF, at);
    if (e) {
        e->text = arena_strndup(&c->b->tmp, name, n);
        e->len = n;
    }
    return e;
}

static struct bexpr *parse_term(struct cur *c, int in_list)
{
    skip_ws(c);
    size_t at = c->i;
    if (c->i < c->len && c->line[c->i] == '~')
        return parse_ref(c);
    if (c->i < c->len && c->line[c->i] == '"') {
        char *s = read_string(c);
        if (!s)
            return NULL;
        struct bexpr *e = bx_new(c, BX_TERM, at);
        if (e) {
            e->text = s;
            e->len = strlen(s);
        }
        return e;
    }
    while (c->i < c->len && !is_op_char(c->line[c->i]) && !at_comment(c, c->i) &&
           !(in_list && c->line[c->i] == ','))
        c->i++;
    size_t end = c->i;
    while (end > at && (c->line[end - 1] == ' ' || c->line[end - 1] == '\t'))
        end--;
    if (end == at) {
        err_at(c, at,
               c->i < c->len && !at_comment(c, c->i) ? "expected a term before '%c'" : "expected a term",
               c->i < c->len ? c->line[c->i] : ' ');
        return NULL;
    }
    struct bexpr *e = bx_new(c, BX_TERM, at);
    if (e) {
        e->text = keep_copy(c, c->line + at, end - at);
        e->len = end - at;
    }
    return e;
}

static struct bexpr *parse_unary(struct cur *c, int depth)
{
    skip_ws(c);
    if (depth > 64) {
        err_at(c, c->i, "expression nested too deeply");
        return NULL;
    }
    size_t at = c->i;
    if (c->i < c->len && c->line[c->i] == '!') {
        c->i++;
        struct bexpr *e = bx_new(c, BX_NOT, at);
        if (!e || !(e->a = parse_unary(c, depth + 1)))
            return NULL;
        return e;
    }
    if (c->i < c->len && c->line[c->i] == '(') {
        c->i++;
        struct bexpr *e = parse_or(c, depth + 1);
        return e && expect_close(c, at) == 0 ? e : NULL;
    }
    return parse_term(c, 0);
}

/* Parses one level of binary operators: level 0 is '|' between '&'
 * expressions, level 1 is '&' between unary ones. */
static struct bexpr *parse_level(struct cur *c, int depth, int level)
{
    if (level == 2)
        return parse_unary(c, depth);
    char op = level == 0 ? '|' : '&';
    struct bexpr *l = parse_level(c, depth, level + 1);
    while (l) {
        skip_ws(c);
        if (c->i >= c->len || c->line[c->i] != op)
            break;
        struct bexpr *e = bx_new(c, level == 0 ? BX_OR : BX_AND, c->i++);
        if (!e)
            return NULL;
        e->a = l;
        if (!(e->b = parse_level(c, depth, level + 1)))
            return NULL;
        l = e;
    }
    return l;
}

static struct bexpr *parse_or(struct cur *c, int depth)
{
    return parse_level(c, depth, 0);
}

/* ---- conditions ---- */

static const char *const known_attrs[] = {"channel",         "locale",         "tier",   "hours",
                                          "previous_intent", "previous_topic", "misses", NULL};

static int attr_known(const char *s, size_t n)
{
    for (int k = 0; known_attrs[k]; k++)
        if (word_is(s, n, known_attrs[k]))
            return 1;
    return (n > 9 && memcmp(s, "customer.", 9) == 0) || (n > 5 && memcmp(s, "attr.", 5) == 0);
}

static struct rules_cond *cond_new(struct cur *c, uint8_t op)
{
    struct rules_cond *k = arena_alloc(c->b->keep, sizeof *k);
    if (k)
        k->op = op;
    return k;
}

/* Reads a condition value: a quoted string or a bare run of [^ \t(),#]. */
static const char *read_value(struct cur *c)
{
    skip_ws(c);
    if (c->i < c->len && c->line[c->i] == '"')
        return read_string(c);
    size_t at = c->i;
    while (c->i < c->len && !strchr(" \t(),#", c->line[c->i]) &&
           !(c->line[c->i] == '-' && c->i + 1 < c->len && c->line[c->i + 1] == '>'))
        c->i++;
    if (c->i == at) {
        err_at(c, at, "expected a value");
        return NULL;
    }
    return keep_copy(c, c->line + at, c->i - at);
}

static const struct rules_cond *parse_cond_or(struct cur *c, int depth);

static const struct rules_cond *parse_cmp(struct cur *c)
{
    const char *attr;
    size_t at = (skip_ws(c), c->i);
    size_t n = read_word(c, &attr);
    if (n == 0) {
        err_at(c, at, "expected an attribute name");
        return NULL;
    }
    if (!c->any_attr && !attr_known(attr, n)) {
        err_at(c, at,
               "unknown attribute '%.*s' (channel, locale, tier, hours, previous_intent, previous_topic, "
               "misses, "
               "customer.NAME)",
               (int)n, attr);
        return NULL;
    }
    skip_ws(c);
    static const struct {
        const char *s;
        uint8_t op;
    } ops[] = {{"!=", C_NE}, {"<=", C_LE}, {">=", C_GE}, {"=", C_EQ}, {"<", C_LT}, {">", C_GT}};
    struct rules_cond *k = NULL;
    size_t opat = c->i;
    for (size_t j = 0; j < sizeof ops / sizeof ops[0] && !k; j++) {
        size_t l = strlen(ops[j].s);
        if (c->len - c->i >= l && memcmp(c->line + c->i, ops[j].s, l) == 0) {
            c->i += l;
            k = cond_new(c, ops[j].op);
        }
    }
    if (!k) {
        const char *w;
        size_t wn = read_word(c, &w);
        if (!word_is(w, wn, "in")) {
            err_at(c, opat, "expected =, !=, <, <=, >, >= or in");
            return NULL;
        }
        k = cond_new(c, C_IN);
    }
    if (!k)
        return NULL;
    k->attr = keep_copy(c, attr, n);
    size_t cap = 0;
    if (k->op == C_IN) {
        skip_ws(c);
        if (c->i >= c->len || c->line[c->i] != '(') {
            err_at(c, c->i, "expected '(' after in");
            return NULL;
        }
        c->i++;
        for (;;) {
            const char *v = read_value(c);
            if (!v)
                return NULL;
            const char **slot = build_push(c->b->keep, &k->values, k->n_values, &cap, sizeof *k->values);
            if (!slot)
                return NULL;
            *slot = v;
            k->n_values++;
            skip_ws(c);
            if (c->i < c->len && c->line[c->i] == ',') {
                c->i++;
                continue;
            }
            if (c->i < c->len && c->line[c->i] == ')') {
                c->i++;
                break;
            }
            err_at(c, c->i, "expected ',' or ')'");
            return NULL;
        }
    } else {
        size_t vat = (skip_ws(c), c->i);
        const char *v = read_value(c);
        if (!v)
            return NULL;
        if (k->op >= C_LT && k->op <= C_GE) {
            char *end;
            strtod(v, &end);
            if (*end || !*v) {
                err_at(c, vat, "'%s' is not a number", v);
                return NULL;
            }
        }
        k->values = arena_alloc(c->b->keep, sizeof *k->values);
        if (!k->values)
            return NULL;
        k->values[0] = v;
        k->n_values = 1;
    }
    return k;
}

static int peek_keyword(struct cur *c, const char *kw)
{
    skip_ws(c);
    size_t l = strlen(kw);
    return c->len - c->i >= l && memcmp(c->line + c->i, kw, l) == 0 &&
           (c->i + l == c->len || !is_word_char(c->line[c->i + l]));
}

static const struct rules_cond *parse_cond_unary(struct cur *c, int depth)
{
    if (depth > 32) {
        err_at(c, c->i, "condition nested too deeply");
        return NULL;
    }
    if (peek_keyword(c, "not")) {
        c->i += 3;
        struct rules_cond *k = cond_new(c, C_NOT);
        if (!k || !(k->a = parse_cond_unary(c, depth + 1)))
            return NULL;
        return k;
    }
    skip_ws(c);
    if (c->i < c->len && c->line[c->i] == '(') {
        size_t at = c->i++;
        const struct rules_cond *k = parse_cond_or(c, depth + 1);
        return k && expect_close(c, at) == 0 ? k : NULL;
    }
    return parse_cmp(c);
}

/* Parses one level of condition operators: level 0 is 'or' between 'and'
 * terms, level 1 is 'and' between unary ones. */
static const struct rules_cond *parse_cond_level(struct cur *c, int depth, int level)
{
    if (level == 2)
        return parse_cond_unary(c, depth);
    const char *kw = level == 0 ? "or" : "and";
    const struct rules_cond *l = parse_cond_level(c, depth, level + 1);
    while (l && peek_keyword(c, kw)) {
        c->i += strlen(kw);
        struct rules_cond *k = cond_new(c, level == 0 ? C_OR : C_AND);
        if (!k)
            return NULL;
        k->a = l;
        if (!(k->b = parse_cond_level(c, depth, level + 1)))
            return NULL;
        l = k;
    }
    return l;
}

static const struct rules_cond *parse_cond_or(struct cur *c, int depth)
{
    return parse_cond_level(c, depth, 0);
}

/* ---- statements ---- */

static int load_path(struct builder *b, const char *path, const struct bpos *from);

static struct bintent *current_intent(struct cur *c, const char *kw, size_t n, size_t at)
{
    if (c->b->n_intents == 0) {
        err_at(c, at, "'%.*s' outside an intent (start one with 'intent NAME')", (int)n, kw);
        return NULL;
    }
    return &c->b->intents[c->b->n_intents - 1];
}

static void stmt_include(struct cur *c)
{
    size_t sat = (skip_ws(c), c->i);
    char *rel = read_string(c);
    if (!rel)
        return;
    expect_end(c);
    char path[PATH_MAX];
    const char *slash = strrchr(c->file, '/');
    if (rel[0] == '/' || !slash)
        snprintf(path, sizeof path, "%s", rel);
    else
        snprintf(path, sizeof path, "%.*s/%s", (int)(slash - c->file), c->file, rel);
    struct bpos p = pos_at(c, sat);
    load_path(c->b, path, &p);
}

static void stmt_concept(struct cur *c)
{
    const char *name;
    size_t at = (skip_ws(c), c->i);
    size_t n = read_name(c, &name);
    if (n == 0 || !valid_intent_name(name, n)) {
        err_at(c, at, n ? "bad concept name '%.*s' (use a-z, 0-9, _ and .)" : "expected a concept name",
               (int)n, name);
        return;
    }
    skip_ws(c);
    if (c->i >= c->len || c->line[c->i] != '=') {
        err_at(c, c->i, "expected '=' after the concept name");
        return;
    }
    c->i++;
    struct builder *b = c->b;
    struct bconcept *k = build_push(&b->tmp, &b->concepts, b->n_concepts, &b->cap_concepts, sizeof *k);
    if (!k)
        return;
    k->name = arena_strndup(&b->tmp, name, n);
    k->pos = pos_at(c, at);
    k->node = UINT32_MAX;
    for (;;) {
        struct bexpr *t = parse_term(c, 1);
        if (!t)
            return;
        struct bexpr **slot = build_push(&b->tmp, &k->terms, k->n_terms, &k->cap_terms, sizeof *slot);
        if (!slot)
            return;
        *slot = t;
        k->n_terms++;
        if (at_end(c))
            break;
        if (c->line[c->i] != ',') {
            err_at(c, c->i, "expected ',' between the terms of a concept");
            return;
        }
        c->i++;
    }
    b->n_concepts++;
}

static void stmt_intent(struct cur *c)
{
    const char *name;
    size_t at = (skip_ws(c), c->i);
    size_t n = read_name(c, &name);
    if (n == 0) {
        err_at(c, at, "expected an intent name");
        return;
    }
    if (!valid_intent_name(name, n)) {
        err_at(c, at, "bad intent name '%.*s' (use a-z, 0-9 and _ in dot-separated parts)", (int)n, name);
        return;
    }
    expect_end(c);
    struct builder *b = c->b;
    struct bintent *it = build_push(&b->tmp, &b->intents, b->n_intents, &b->cap_intents, sizeof *it);
    if (!it)
        return;
    it->name = keep_copy(c, name, n);
    it->pos = pos_at(c, at);
    b->n_intents++;
}

static void stmt_text_line(struct cur *c, struct bintent *it, int is_reply, const char *locale, size_t at)
{
    size_t n;
    size_t tat = (skip_ws(c), c->i);
    char *text = read_rest(c, &n);
    if (!text)
        return;
    if (n == 0) {
        err_at(c, at, is_reply ? "empty reply" : "empty example");
        return;
    }
    struct arena *t = &c->b->tmp;
    if (is_reply) {
        struct rules_reply *r = build_push(t, &it->replies, it->n_replies, &it->cap_replies, sizeof *r);
        struct bpos *p = build_push(t, &it->reply_pos, it->n_replies, &it->cap_reply_pos, sizeof *p);
        struct bpos *vp =
            build_push(t, &it->reply_variant_pos, it->n_replies, &it->cap_reply_variant_pos, sizeof *vp);
        if (!r || !p || !vp)
            return;
        r->locale = locale;
        r->text = text;
        *p = pos_at(c, tat);
        if (text[0] == '~') { /* reply ~NAME text: the reply of one A/B variant */
            size_t vn = 1;
            while (text[vn] && text[vn] != ' ' && text[vn] != '\t')
                vn++;
            *vp = *p;
            if (vn == 1) {
                err_at(c, tat, "expected a variant name after '~' (reply ~NAME text)");
                return;
            }
            r->variant = keep_copy(c, text + 1, vn - 1);
            while (text[vn] == ' ' || text[vn] == '\t')
                vn++;
            if (!text[vn]) {
                err_at(c, at, "empty reply");
                return;
            }
            r->text = text + vn;
            *p = pos_at(c, tat + vn);
        }
        it->n_replies++;
    } else {
        struct rules_example *e = build_push(t, &it->examples, it->n_examples, &it->cap_examples, sizeof *e);
        struct bpos *p = build_push(t, &it->example_pos, it->n_examples, &it->cap_example_pos, sizeof *p);
        if (!e || !p)
            return;
        e->text = text;
        e->file = c->file;
        e->line = c->lineno;
        *p = pos_at(c, tat);
        e->col = p->col;
        it->n_examples++;
    }
}

static void stmt_pattern(struct cur *c, struct bintent *it, uint8_t kind, size_t at)
{
    struct bpat p = {.kind = kind, .pos = pos_at(c, at)};
    size_t start = (skip_ws(c), c->i);
    if (kind == PAT_MATCH) {
        if (at_end(c)) {
            err_at(c, c->i, "expected a match expression");
            return;
        }
        if (!(p.expr = parse_or(c, 0)))
            return;
        if (c->i < c->len && c->line[c->i] == ')') {
            err_at(c, c->i, "unmatched ')'");
            return;
        }
    } else if (read_regex(c, &p.re) < 0) {
        return;
    }
    size_t end = c->i;
    expect_end(c);
    if (c->failed)
        return;
    p.text = keep_copy(c, c->line + start, end - start);
    struct bpat *slot = build_push(&c->b->tmp, &it->pats, it->n_pats, &it->cap_pats, sizeof *slot);
    if (!slot)
        return;
    *slot = p;
    it->n_pats++;
}

static struct bslot *find_slot(struct bintent *it, const char *name, size_t n)
{
    for (size_t k = 0; k < it->n_slots; k++)
        if (word_is(name, n, it->slots[k].name))
            return &it->slots[k];
    return NULL;
}

static void stmt_slot(struct cur *c, struct bintent *it, const char *locale)
{
    const char *name;
    size_t at = (skip_ws(c), c->i);
    size_t n = read_word(c, &name);
    if (n == 0 || !valid_intent_name(name, n) || memchr(name, '.', n)) {
        err_at(c, at, "expected a slot name (a-z, 0-9, _)");
        return;
    }
    struct bslot *s = find_slot(it, name, n);
    skip_ws(c);
    int has_re = c->i < c->len && c->line[c->i] == '/';
    if (has_re && *locale) {
        err_at(c, c->i, "a localized slot line only gives the question; put the pattern on 'slot %.*s'",
               (int)n, name);
        return;
    }
    if (has_re && s && s->re.src) {
        err_at(c, at, "slot '%.*s' already has a pattern", (int)n, name);
        return;
    }
    if (!s) {
        s = build_push(&c->b->tmp, &it->slots, it->n_slots, &it->cap_slots, sizeof *s);
        if (!s)
            return;
        s->name = keep_copy(c, name, n);
        s->pos = pos_at(c, at);
        it->n_slots++;
    }
    if (has_re && read_regex(c, &s->re) < 0)
        return;
    if (at_end(c))
        return;
    const char *w;
    size_t wat = c->i;
    size_t wn = read_word(c, &w);
    if (!word_is(w, wn, "ask")) {
        err_at(c, wat,
               has_re ? "expected 'ask \"question\"' after the slot pattern" : "expected a /pattern/ or ask");
        return;
    }
    char *q = read_string(c);
    if (!q)
        return;
    expect_end(c);
    if (!*locale) {
        s->ask = q;
        return;
    }
    struct rules_reply *r = build_push(&c->b->tmp, &s->asks, s->n_asks, &s->cap_asks, sizeof *r);
    if (r) {
        r->locale = locale;
        r->text = q;
        s->n_asks++;
    }
}

static int parse_prio_name(const char *s, size_t n)
{
    static const char *const names[] = {"low", "normal", "high", "urgent"};
    for (int k = 0; k < 4; k++)
        if (word_is(s, n, names[k]))
            return k;
    return -1;
}

/* Reads "queue NAME [priority P]" to the end of the line into h; 0 or -1. */
static int handoff_target(struct cur *c, struct rules_handoff *h);

static void stmt_handoff(struct cur *c, struct bintent *it)
{
    struct rules_handoff h = {.priority = RULES_PRIO_NORMAL};
    if (peek_keyword(c, "if")) {
        c->i += 2;
        if (!(h.cond = parse_cond_or(c, 0)))
            return;
        skip_ws(c);
        if (c->len - c->i < 2 || memcmp(c->line + c->i, "->", 2) != 0) {
            err_at(c, c->i, "expected '->' after the handoff condition");
            return;
        }
        c->i += 2;
    }
    if (handoff_target(c, &h) < 0)
        return;
    struct rules_handoff *slot =
        build_push(&c->b->tmp, &it->handoffs, it->n_handoffs, &it->cap_handoffs, sizeof h);
    if (slot && !c->failed) {
        *slot = h;
        it->n_handoffs++;
    }
}

static int handoff_target(struct cur *c, struct rules_handoff *hp)
{
    struct rules_handoff h = *hp;
    const char *w;
    size_t wat = (skip_ws(c), c->i);
    size_t wn = read_word(c, &w);
    if (!word_is(w, wn, "queue")) {
        err_at(c, wat, "expected 'queue NAME'");
        return -1;
    }
    size_t qat = (skip_ws(c), c->i);
    wn = read_word(c, &w);
    if (wn == 0 || !valid_intent_name(w, wn)) {
        err_at(c, qat, "expected a queue name");
        return -1;
    }
    h.queue = keep_copy(c, w, wn);
    if (!at_end(c)) {
        wat = c->i;
        wn = read_word(c, &w);
        if (!word_is(w, wn, "priority")) {
            err_at(c, wat, "expected 'priority low|normal|high|urgent' or the end of the line");
            return -1;
        }
        size_t pat = (skip_ws(c), c->i);
        wn = read_word(c, &w);
        if ((h.priority = parse_prio_name(w, wn)) < 0) {
            err_at(c, pat, "unknown priority '%.*s' (low, normal, high or urgent)", (int)wn, w);
            return -1;
        }
    }
    expect_end(c);
    *hp = h;
    return c->failed ? -1 : 0;
}

/* action NAME: the server-side endpoint called once the slots are filled. */
static void stmt_action(struct cur *c, struct bintent *it, size_t at)
{
    const char *w;
    size_t wat = (skip_ws(c), c->i);
    size_t wn = read_word(c, &w);
    if (wn == 0 || !valid_intent_name(w, wn) || memchr(w, '.', wn)) {
        err_at(c, wat, "expected an action name (a-z, 0-9, _)");
        return;
    }
    if (it->action) {
        err_at(c, at, "intent '%s' already has an action", it->name);
        return;
    }
    it->action = keep_copy(c, w, wn);
    it->action_pos = pos_at(c, wat);
    it->action_pos.src = keep_copy(c, c->line, c->len);
    expect_end(c);
}

/* on COND -> reply[@LOCALE] TEXT | on COND -> handoff queue NAME [priority P]; COND may be 'failed'. */
static void stmt_on(struct cur *c, struct bintent *it, size_t at)
{
    struct rules_on on = {0};
    size_t cat = (skip_ws(c), c->i);
    if (peek_keyword(c, "failed")) {
        c->i += 6;
        on.failed = 1;
    } else {
        c->any_attr = 1;
        on.cond = parse_cond_or(c, 0);
        c->any_attr = 0;
        if (!on.cond)
            return;
    }
    size_t cend = c->i;
    skip_ws(c);
    if (c->len - c->i < 2 || memcmp(c->line + c->i, "->", 2) != 0) {
        err_at(c, c->i, "expected '->' after the condition");
        return;
    }
    c->i += 2;
    const char *w;
    size_t wat = (skip_ws(c), c->i);
    size_t wn = read_word(c, &w);
    const char *at_sign = memchr(w, '@', wn);
    size_t base = at_sign ? (size_t)(at_sign - w) : wn;
    if (word_is(w, base, "reply")) {
        const char *locale = "";
        if (at_sign) {
            size_t ln = wn - base - 1;
            if (!valid_locale(at_sign + 1, ln)) {
                err_at(c, wat + base + 1, "bad locale '%.*s' (like en, zh or zh-hant)", (int)ln, at_sign + 1);
                return;
            }
            locale = keep_copy(c, at_sign + 1, ln);
        }
        size_t n;
        skip_ws(c);
        char *text = read_rest(c, &n);
        if (!text)
            return;
        if (n == 0) {
            err_at(c, wat, "empty reply");
            return;
        }
        struct rules_reply *r = arena_alloc(c->b->keep, sizeof *r);
        if (!r)
            return;
        r->locale = locale;
        r->text = text;
        on.reply = r;
    } else if (word_is(w, wn, "handoff")) {
        struct rules_handoff *h = arena_alloc(c->b->keep, sizeof *h);
        if (!h)
            return;
        *h = (struct rules_handoff){.priority = RULES_PRIO_NORMAL};
        if (handoff_target(c, h) < 0)
            return;
        on.handoff = h;
    } else {
        err_at(c, wat, "expected 'reply TEXT' or 'handoff queue NAME' after '->'");
        return;
    }
    if (c->failed)
        return;
    struct arena *t = &c->b->tmp;
    struct rules_on *slot = build_push(t, &it->ons, it->n_ons, &it->cap_ons, sizeof *slot);
    const char **txt = build_push(t, &it->on_text, it->n_ons, &it->cap_on_text, sizeof *txt);
    struct bpos *p = build_push(t, &it->on_pos, it->n_ons, &it->cap_on_pos, sizeof *p);
    if (!slot || !txt || !p)
        return;
    *slot = on;
    *txt = keep_copy(c, c->line + cat, cend - cat);
    *p = pos_at(c, at);
    it->n_ons++;
}

/* set NAME = FIELD: a slot (or attr.NAME) from the action's result. */
static void stmt_set(struct cur *c, struct bintent *it)
{
    const char *name, *field;
    size_t nat = (skip_ws(c), c->i);
    size_t nn = read_word(c, &name);
    int is_attr = nn > 5 && memcmp(name, "attr.", 5) == 0;
    if (nn == 0 || !valid_intent_name(name, nn) || (!is_attr && memchr(name, '.', nn))) {
        err_at(c, nat, "expected a slot name (a-z, 0-9, _) or attr.NAME");
        return;
    }
    skip_ws(c);
    if (c->i >= c->len || c->line[c->i] != '=') {
        err_at(c, c->i, "expected '=' and a field of the action's result");
        return;
    }
    c->i++;
    size_t fat = (skip_ws(c), c->i);
    size_t fn = read_word(c, &field);
    if (fn == 0 || !valid_intent_name(field, fn)) {
        err_at(c, fat, "expected a field of the action's result (like order.status)");
        return;
    }
    expect_end(c);
    struct rules_set *slot = build_push(&c->b->tmp, &it->sets, it->n_sets, &it->cap_sets, sizeof *slot);
    if (!slot || c->failed)
        return;
    slot->name = keep_copy(c, name, nn);
    slot->field = keep_copy(c, field, fn);
    it->n_sets++;
}

/* variant NAME WEIGHT: an arm of the intent's A/B test. */
static void stmt_variant(struct cur *c, struct bintent *it, size_t at)
{
    const char *name;
    size_t nat = (skip_ws(c), c->i);
    size_t nn = read_name(c, &name);
    if (nn == 0) {
        err_at(c, nat, "expected 'variant NAME WEIGHT'");
        return;
    }
    for (size_t k = 0; k < nn; k++)
        if (!isalnum((unsigned char)name[k]) && name[k] != '_' && name[k] != '-') {
            err_at(c, nat + k, "a variant name is letters, digits, '_' and '-'");
            return;
        }
    if (nn > 31) {
        err_at(c, nat, "a variant name has at most 31 characters");
        return;
    }
    for (size_t k = 0; k < it->n_variants; k++)
        if (word_is(name, nn, it->variants[k].name)) {
            err_at(c, nat, "intent '%s' already has a variant '%.*s'", it->name, (int)nn, name);
            return;
        }
    double w;
    size_t wat = (skip_ws(c), c->i);
    if (at_end(c)) {
        err_at(c, wat, "expected the variant's weight (a whole number from 1 to 1000)");
        return;
    }
    if (read_number(c, &w) < 0)
        return;
    if (w != floor(w) || w < 1 || w > 1000) {
        err_at(c, wat, "a variant's weight is a whole number from 1 to 1000");
        return;
    }
    expect_end(c);
    struct arena *t = &c->b->tmp;
    struct rules_variant *v = build_push(t, &it->variants, it->n_variants, &it->cap_variants, sizeof *v);
    struct bpos *p = build_push(t, &it->variant_pos, it->n_variants, &it->cap_variant_pos, sizeof *p);
    if (!v || !p)
        return;
    v->name = keep_copy(c, name, nn);
    v->weight = (int)w;
    *p = pos_at(c, nat);
    it->n_variants++;
}

static void stmt_setting(struct cur *c, struct bintent *it, const char *kw, size_t kn, size_t at)
{
    if (word_is(kw, kn, "priority")) {
        double v;
        size_t vat = (skip_ws(c), c->i);
        if (read_number(c, &v) < 0)
            return;
        if (it->has_priority)
            err_at(c, at, "intent '%s' already has a priority", it->name);
        else if (v != floor(v) || v < -100 || v > 100)
            err_at(c, vat, "priority must be a whole number from -100 to 100");
        else
            it->priority = (int)v;
        it->has_priority = 1;
    } else if (word_is(kw, kn, "threshold")) {
        double v;
        size_t vat = (skip_ws(c), c->i);
        if (read_number(c, &v) < 0)
            return;
        if (it->has_threshold)
            err_at(c, at, "intent '%s' already has a threshold", it->name);
        else if (v < 0 || v > 1)
            err_at(c, vat, "threshold must be between 0 and 1");
        it->threshold = v;
        it->has_threshold = 1;
    } else if (word_is(kw, kn, "when")) {
        if (it->has_when) {
            err_at(c, at, "intent '%s' already has a 'when' line (combine them with and)", it->name);
            return;
        }
        it->when = parse_cond_or(c, 0);
        it->has_when = 1;
    } else { /* topic */
        const char *w;
        size_t wat = (skip_ws(c), c->i);
        size_t wn = read_word(c, &w);
        if (wn == 0 || !valid_intent_name(w, wn)) {
            err_at(c, wat, "expected a topic name");
            return;
        }
        it->topic = keep_copy(c, w, wn);
    }
    expect_end(c);
}

static void parse_line(struct cur *c)
{
    if (at_end(c))
        return;
    const char *kw;
    size_t at = c->i;
    size_t kn = read_word(c, &kw);
    if (kn == 0) {
        err_at(c, at, "expected a statement (intent, concept, include, example, match, regex, reply, ...)");
        return;
    }
    const char *at_sign = memchr(kw, '@', kn);
    size_t base = at_sign ? (size_t)(at_sign - kw) : kn;
    const char *locale = "";
    if (at_sign) {
        size_t ln = kn - base - 1;
        if (!(word_is(kw, base, "reply") || word_is(kw, base, "slot"))) {
            err_at(c, at, "only reply and slot take a @locale");
            return;
        }
        if (!valid_locale(at_sign + 1, ln)) {
            err_at(c, at + base + 1, "bad locale '%.*s' (like en, zh or zh-hant)", (int)ln, at_sign + 1);
            return;
        }
        locale = keep_copy(c, at_sign + 1, ln);
    }
    if (word_is(kw, kn, "include"))
        return stmt_include(c);
    if (word_is(kw, kn, "concept"))
        return stmt_concept(c);
    if (word_is(kw, kn, "intent"))
        return stmt_intent(c);
    if (word_is(kw, kn, "default")) {
        const char *w;
        size_t wat = (skip_ws(c), c->i);
        size_t wn = read_word(c, &w);
        if (!word_is(w, wn, "threshold")) {
            err_at(c, wat, "expected 'default threshold X'");
            return;
        }
        double v;
        size_t vat = (skip_ws(c), c->i);
        if (read_number(c, &v) < 0)
            return;
        if (v < 0 || v > 1)
            err_at(c, vat, "threshold must be between 0 and 1");
        c->b->default_threshold = v;
        c->b->default_pos = pos_at(c, at);
        expect_end(c);
        return;
    }
    static const char *const body[] = {"example", "match",    "regex",     "slot",    "reply",
                                       "when",    "priority", "threshold", "handoff", "topic",
                                       "variant", "action",   "on",        "set",     NULL};
    int known = 0;
    for (int k = 0; body[k]; k++)
        known |= word_is(kw, base, body[k]);
    if (!known) {
        err_at(c, at, "unknown directive '%.*s'", (int)kn, kw);
        return;
    }
    struct bintent *it = current_intent(c, kw, kn, at);
    if (!it)
        return;
    if (word_is(kw, base, "example"))
        stmt_text_line(c, it, 0, "", at);
    else if (word_is(kw, base, "reply"))
        stmt_text_line(c, it, 1, locale, at);
    else if (word_is(kw, base, "match"))
        stmt_pattern(c, it, PAT_MATCH, at);
    else if (word_is(kw, base, "regex"))
        stmt_pattern(c, it, PAT_REGEX, at);
    else if (word_is(kw, base, "slot"))
        stmt_slot(c, it, locale);
    else if (word_is(kw, base, "handoff"))
        stmt_handoff(c, it);
    else if (word_is(kw, base, "variant"))
        stmt_variant(c, it, at);
    else if (word_is(kw, base, "action"))
        stmt_action(c, it, at);
    else if (word_is(kw, base, "on"))
        stmt_on(c, it, at);
    else if (word_is(kw, base, "set"))
        stmt_set(c, it);
    else
        stmt_setting(c, it, kw, kn, at);
}

/* Parses a whole file held in text (NUL-terminated, len bytes). */
static void parse_text(struct builder *b, const char *file, char *text, size_t len)
{
    struct cur c = {.b = b, .file = file};
    if (!text_utf8_valid(text, len)) {
        /* find the first bad line to point at */
        size_t start = 0;
        int lineno = 1;
        for (size_t i = 0; i <= len; i++) {
            if (i == len || text[i] == '\n') {
                if (!text_utf8_valid(text + start, i - start)) {
                    struct bpos p = {file, NULL, lineno, 1};
                    build_error(b, &p, "invalid utf-8 on this line; rule files must be utf-8");
                    return;
                }
                start = i + 1;
                lineno++;
            }
        }
        return;
    }
    char *p = text;
    for (int lineno = 1; p < text + len || (p == text && len == 0 && 0); lineno++) {
        char *nl = memchr(p, '\n', (size_t)(text + len - p));
        size_t n = nl ? (size_t)(nl - p) : (size_t)(text + len - p);
        if (n > 0 && p[n - 1] == '\r')
            n--;
        p[n] = 0;
        c.line = p;
        c.len = n;
        c.i = 0;
        c.lineno = lineno;
        c.failed = 0;
        parse_line(&c);
        if (!nl)
            break;
        p = nl + 1;
    }
}

static int read_file(const char *path, char **out, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return KEFU_EIO;
    size_t cap = 4096, n = 0;
    char *buf = kefu_malloc(cap);
    while (buf) {
        if (n + 1 >= cap) {
            char *nb = kefu_realloc(buf, cap *= 2);
            if (!nb) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = nb;
        }
        size_t r = fread(buf + n, 1, cap - n - 1, f);
        n += r;
        if (r == 0)
            break;
    }
    int bad = ferror(f);
    fclose(f);
    if (!buf)
        return KEFU_ENOMEM;
    if (bad) {
        free(buf);
        return KEFU_EIO;
    }
    buf[n] = 0;
    *out = buf;
    *len = n;
    return 0;
}

static int load_path(struct builder *b, const char *path, const struct bpos *from)
{
    char real[PATH_MAX];
    if (!realpath(path, real)) {
        if (from)
            build_error(b, from, "cannot open '%s': %s", path, strerror(errno));
        else
            rules_diag_add(b->diag, RULES_ERROR, path, 0, 0, NULL, "cannot open '%s': %s", path,
                           strerror(errno));
        return KEFU_EIO;
    }
    struct stat st;
    if (stat(real, &st) != 0 || !S_ISREG(st.st_mode)) { /* a device or FIFO could block or never end */
        if (from)
            build_error(b, from, "cannot include '%s': not a regular file", path);
        else
            rules_diag_add(b->diag, RULES_ERROR, path, 0, 0, NULL, "cannot read '%s': not a regular file",
                           path);
        return KEFU_EIO;
    }
    for (size_t k = 0; k < b->n_seen; k++)
        if (strcmp(b->seen[k], real) == 0)
            return 0; /* each file once */
    char **slot = build_push(&b->tmp, &b->seen, b->n_seen, &b->cap_seen, sizeof *slot);
    if (!slot || !(*slot = arena_strndup(&b->tmp, real, strlen(real))))
        return KEFU_ENOMEM;
    b->n_seen++;
    char *text;
    size_t len;
    int rc = read_file(path, &text, &len);
    if (rc < 0) {
        rules_diag_add(b->diag, RULES_ERROR, path, 0, 0, NULL, "cannot read '%s': %s", path, strerror(errno));
        return rc;
    }
    char *copy = arena_strndup(&b->tmp, text, len);
    free(text);
    const char *file = arena_strndup(b->keep, path, strlen(path));
    if (!copy || !file)
        return KEFU_ENOMEM;
    if (b->single && !b->entry)
        b->entry = file; /* the file asked for; the rest are its includes */
    parse_text(b, file, copy, len);
    return 0;
}

/* ---- loading ---- */

static struct rules *rules_new(void)
{
    struct rules *rs = kefu_calloc(1, sizeof *rs);
    if (!rs)
        return NULL;
    atomic_init(&rs->refs, 1);
    arena_init(&rs->arena, 64 * 1024);
    rs->default_threshold = 0.6;
    return rs;
}

static int msg_cmp(const void *a, const void *b)
{
    const struct rules_msg *x = a, *y = b;
    int c = strcmp(x->file, y->file);
    if (c)
        return c;
    if (x->line != y->line)
        return x->line < y->line ? -1 : 1;
    if (x->col != y->col)
        return x->col < y->col ? -1 : 1;
    return x < y ? -1 : x > y; /* keep the order of equal positions */
}

typedef int (*load_fn)(struct builder *b, const void *arg);

static int load_with(load_fn fn, const void *arg, struct rules_diag *diag, struct rules **out)
{
    *out = NULL;
    struct rules *rs = rules_new();
    if (!rs)
        return KEFU_ENOMEM;
    struct builder b = {.keep = &rs->arena, .diag = diag, .default_threshold = 0.6};
    arena_init(&b.tmp, 64 * 1024);
    int errors_before = diag->errors;
    size_t first_msg = diag->n;
    int rc = fn(&b, arg);
    /* compile even after parse errors, so that one run reports them all */
    if (rc == 0)
        rc = rules_compile(&b, rs);
    if (rc == 0 && diag->errors != errors_before)
        rc = KEFU_ESYNTAX;
    if (diag->n > first_msg) /* in file and line order, whichever stage found them */
        qsort(diag->v + first_msg, diag->n - first_msg, sizeof *diag->v, msg_cmp);
    arena_release(&b.tmp);
    if (rc < 0) {
        rules_unref(rs);
        return rc;
    }
    /* the parse trees and file texts just freed are several times the set: give them back */
    kefu_heap_trim();
    *out = rs;
    return 0;
}

static int name_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int load_dir_fn(struct builder *b, const void *arg)
{
    const char *dir = arg;
    DIR *d = opendir(dir);
    if (!d) {
        rules_diag_add(b->diag, RULES_ERROR, dir, 0, 0, NULL, "cannot open rule directory '%s': %s", dir,
                       strerror(errno));
        return KEFU_EIO;
    }
    char **names = NULL;
    size_t n = 0, cap = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        size_t l = strlen(e->d_name);
        if (l < 7 || strcmp(e->d_name + l - 6, ".rules") != 0 || e->d_name[0] == '.')
            continue;
        char **slot = build_push(&b->tmp, &names, n, &cap, sizeof *slot);
        if (!slot || !(*slot = arena_strndup(&b->tmp, e->d_name, l))) {
            closedir(d);
            return KEFU_ENOMEM;
        }
        n++;
    }
    closedir(d);
    if (n == 0) {
        rules_diag_add(b->diag, RULES_ERROR, dir, 0, 0, NULL, "no .rules files in '%s'", dir);
        return KEFU_ENOENT;
    }
    qsort(names, n, sizeof *names, name_cmp);
    for (size_t k = 0; k < n; k++) {
        char path[PATH_MAX];
        size_t dl = strlen(dir);
        snprintf(path, sizeof path, "%s%s%s", dir, dl && dir[dl - 1] == '/' ? "" : "/", names[k]);
        int rc = load_path(b, path, NULL);
        if (rc == KEFU_ENOMEM)
            return rc;
    }
    return 0;
}

static int load_file_fn(struct builder *b, const void *arg)
{
    b->single = 1;
    return load_path(b, arg, NULL);
}

struct string_src {
    const char *name, *src;
};

static int load_string_fn(struct builder *b, const void *arg)
{
    const struct string_src *s = arg;
    size_t len = strlen(s->src);
    char *copy = arena_strndup(&b->tmp, s->src, len);
    const char *file = arena_strndup(b->keep, s->name, strlen(s->name));
    if (!copy || !file)
        return KEFU_ENOMEM;
    parse_text(b, file, copy, len);
    return 0;
}

int rules_load_dir(const char *dir, struct rules_diag *diag, struct rules **out)
{
    return load_with(load_dir_fn, dir, diag, out);
}

int rules_load_file(const char *path, struct rules_diag *diag, struct rules **out)
{
    return load_with(load_file_fn, path, diag, out);
}

int rules_load_string(const char *name, const char *src, struct rules_diag *diag, struct rules **out)
{
    struct string_src s = {name, src};
    return load_with(load_string_fn, &s, diag, out);
}

struct rules *rules_ref(struct rules *rs)
{
    atomic_fetch_add_explicit(&rs->refs, 1, memory_order_relaxed);
    return rs;
}

void rules_unref(struct rules *rs)
{
    if (!rs || atomic_fetch_sub_explicit(&rs->refs, 1, memory_order_acq_rel) != 1)
        return;
    for (size_t k = 0; k < rs->n_pats; k++)
        pcre2_code_free(rs->pats[k].re);
    for (size_t k = 0; k < rs->n_slots; k++)
        pcre2_code_free(rs->slots[k].re);
    /* the acq_rel above makes every thread's published JIT copy visible here */
    jit_cache_release(rs->pat_jit, rs->n_pats);
    jit_cache_release(rs->slot_jit, rs->n_slots);
    arena_release(&rs->arena);
    free(rs);
}

/* ---- accessors ---- */

size_t rules_count(const struct rules *rs)
{
    return rs->n_intents;
}

const struct rules_intent *rules_intent(const struct rules *rs, size_t i)
{
    return i < rs->n_intents ? &rs->intents[i] : NULL;
}

long rules_find(const struct rules *rs, const char *name)
{
    if (!rs->by_name) {
        for (size_t k = 0; k < rs->n_intents; k++)
            if (strcmp(rs->intents[k].name, name) == 0)
                return (long)k;
        return -1;
    }
    size_t lo = 0, hi = rs->n_intents; /* the first in name order not below name */
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (strcmp(rs->intents[rs->by_name[mid]].name, name) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < rs->n_intents && strcmp(rs->intents[rs->by_name[lo]].name, name) == 0 ? (long)rs->by_name[lo]
                                                                                      : -1;
}

double rules_default_threshold(const struct rules *rs)
{
    return rs->default_threshold;
}

const char *attrs_get(const struct attrs *a, const char *key)
{
    for (size_t k = 0; a && k < a->n; k++)
        if (a->v[k].key && strcmp(a->v[k].key, key) == 0)
            return a->v[k].value ? a->v[k].value : "";
    return "";
}

static int num_cmp(const char *x, const char *y, int *out)
{
    char *e1, *e2;
    double a = strtod(x, &e1), b = strtod(y, &e2);
    if (!*x || !*y || *e1 || *e2)
        return -1;
    *out = a < b ? -1 : a > b;
    return 0;
}

int rules_cond_eval(const struct rules_cond *c, const struct attrs *a)
{
    if (!c)
        return 1;
    int r;
    switch (c->op) {
    case C_AND: return rules_cond_eval(c->a, a) && rules_cond_eval(c->b, a);
    case C_OR: return rules_cond_eval(c->a, a) || rules_cond_eval(c->b, a);
    case C_NOT: return !rules_cond_eval(c->a, a);
    case C_EQ: return strcmp(attrs_get(a, c->attr), c->values[0]) == 0;
    case C_NE: return strcmp(attrs_get(a, c->attr), c->values[0]) != 0;
    case C_IN:
        for (size_t k = 0; k < c->n_values; k++)
            if (strcmp(attrs_get(a, c->attr), c->values[k]) == 0)
                return 1;
        return 0;
    default:
        if (num_cmp(attrs_get(a, c->attr), c->values[0], &r) < 0)
            return 0;
        return c->op == C_LT ? r < 0 : c->op == C_LE ? r <= 0 : c->op == C_GT ? r > 0 : r >= 0;
    }
}

static void witness_set(struct attr *v, size_t cap, size_t *n, const char *key, const char *value)
{
    for (size_t k = 0; k < *n; k++)
        if (strcmp(v[k].key, key) == 0) {
            v[k].value = value;
            return;
        }
    if (*n < cap)
        v[(*n)++] = (struct attr){key, value};
}

static void witness(const struct rules_cond *c, int negated, struct attr *v, size_t cap, size_t *n)
{
    struct attrs a = {v, *n};
    uint8_t op = c->op;
    if (op == C_NOT) {
        witness(c->a, !negated, v, cap, n);
        return;
    }
    if (op == C_AND || op == C_OR) {
        /* not (a or b) is (not a) and (not b): both sides must hold then */
        if ((op == C_AND) != negated) {
            witness(c->a, negated, v, cap, n);
            witness(c->b, negated, v, cap, n);
        } else {
            witness(c->a, negated, v, cap, n);
        }
        return;
    }
    if (negated) /* flip the comparison */
        op = op == C_EQ   ? C_NE
             : op == C_NE ? C_EQ
             : op == C_LT ? C_GE
             : op == C_LE ? C_GT
             : op == C_GT ? C_LE
             : op == C_GE ? C_LT
                          : op;
    const char *cur = attrs_get(&a, c->attr);
    switch (op) {
    case C_EQ: witness_set(v, cap, n, c->attr, c->values[0]); break;
    case C_IN:
        if (!negated)
            witness_set(v, cap, n, c->attr, c->values[0]);
        break;
    case C_NE:
        if (strcmp(cur, c->values[0]) == 0)
            witness_set(v, cap, n, c->attr, *c->values[0] ? "" : "-");
        break;
    case C_LE:
    case C_GE: witness_set(v, cap, n, c->attr, c->values[0]); break;
    case C_LT: witness_set(v, cap, n, c->attr, "-1e300"); break;
    case C_GT: witness_set(v, cap, n, c->attr, "1e300"); break;
    }
}

int rules_cond_witness(const struct rules_cond *c, struct attr *v, size_t cap, size_t *n)
{
    *n = 0;
    if (!c)
        return 1;
    witness(c, 0, v, cap, n);
    struct attrs a = {v, *n};
    return rules_cond_eval(c, &a);
}

/* Does reply locale l serve the wanted locale in this pass: 0 exact, 1 the
 * same language (lang bytes of it), 2 the default? */
static int locale_serves(const char *l, const char *locale, size_t lang, int pass)
{
    if (pass == 0)
        return locale && *locale && strcmp(l, locale) == 0;
    if (pass == 1)
        return lang && strlen(l) == lang && strncmp(l, locale, lang) == 0;
    return !*l;
}

const char *rules_reply_pick(const struct rules_reply *v, size_t n, const char *locale, unsigned turn)
{
    size_t lang = 0;
    if (locale)
        while (locale[lang] && locale[lang] != '-' && locale[lang] != '_')
            lang++;
    for (int pass = 0; pass < 3; pass++) {
        size_t count = 0;
        for (size_t k = 0; k < n; k++)
            count += locale_serves(v[k].locale, locale, lang, pass);
        if (count == 0)
            continue;
        size_t want = turn % count;
        for (size_t k = 0; k < n; k++)
            if (locale_serves(v[k].locale, locale, lang, pass) && want-- == 0)
                return v[k].text;
    }
    return NULL;
}

const char *rules_reply_pick_variant(const struct rules_reply *v, size_t n, const char *locale,
                                     const char *variant, unsigned turn)
{
    if (!variant)
        return rules_reply_pick(v, n, locale, turn);
    size_t lang = 0;
    if (locale)
        while (locale[lang] && locale[lang] != '-' && locale[lang] != '_')
            lang++;
    for (int pass = 0; pass < 3; pass++) {
        size_t count = 0;
        for (size_t k = 0; k < n; k++)
            count += locale_serves(v[k].locale, locale, lang, pass) &&
                     (!v[k].variant || strcmp(v[k].variant, variant) == 0);
        if (count == 0)
            continue;
        size_t want = turn % count;
        for (size_t k = 0; k < n; k++)
            if (locale_serves(v[k].locale, locale, lang, pass) &&
                (!v[k].variant || strcmp(v[k].variant, variant) == 0) && want-- == 0)
                return v[k].text;
    }
    return NULL;
}

const struct rules_variant *rules_variant_find(const struct rules_intent *it, const char *name)
{
    for (size_t k = 0; name && k < it->n_variants; k++)
        if (strcmp(it->variants[k].name, name) == 0)
            return &it->variants[k];
    return NULL;
}

const struct rules_variant *rules_variant_pick(const struct rules_intent *it, const char *key)
{
    if (it->n_variants == 0)
        return NULL;
    uint64_t h = 1469598103934665603ULL; /* FNV-1a of key and the intent's name */
    for (const char *s = key; s && *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    for (const char *s = it->name; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    h ^= h >> 29;
    h *= 0xbf58476d1ce4e5b9ULL;
    h ^= h >> 32;
    long total = 0;
    for (size_t k = 0; k < it->n_variants; k++)
        total += it->variants[k].weight;
    long r = (long)(h % (uint64_t)total);
    for (size_t k = 0; k < it->n_variants; k++)
        if ((r -= it->variants[k].weight) < 0)
            return &it->variants[k];
    return &it->variants[it->n_variants - 1];
}

size_t rules_render(const char *tpl, rules_fill_fn fill, void *ctx, char *buf, size_t cap)
{
    size_t o = 0;
    if (!cap)
        return 0;
    for (const char *p = tpl; *p && o + 1 < cap;) {
        const char *end = *p == '{' ? strchr(p, '}') : NULL;
        if (!end) {
            buf[o++] = *p++;
            continue;
        }
        char name[128];
        snprintf(name, sizeof name, "%.*s", (int)(end - p - 1), p + 1);
        const char *val = fill(ctx, name);
        o += (size_t)snprintf(buf + o, cap - o, "%s", val ? val : "");
        if (o >= cap)
            o = cap - 1;
        p = end + 1;
    }
    buf[o] = 0;
    return o;
}

int rules_check_actions(const struct rules *rs, int (*known)(void *ctx, const char *name), void *ctx,
                        struct rules_diag *diag)
{
    int n = 0;
    for (size_t i = 0; i < rs->n_intents; i++) {
        const struct rules_intent *it = &rs->intents[i];
        if (!it->action || known(ctx, it->action))
            continue;
        rules_diag_add(diag, RULES_ERROR, it->file, it->action_line, it->action_col, it->action_src,
                       "unknown action '%s' (not in the actions configuration)", it->action);
        n++;
    }
    return n;
}

int rules_on_pick(const struct rules_intent *it, int failed, const struct attrs *a, size_t *first)
{
    for (size_t k = 0; k < it->n_ons; k++) {
        const struct rules_on *o = &it->ons[k];
        if (failed ? o->failed : !o->failed && rules_cond_eval(o->cond, a)) {
            if (first)
                *first = k;
            return o->group;
        }
    }
    return -1;
}

const struct rules_handoff *rules_handoff_for(const struct rules_intent *it, const struct attrs *a)
{
    for (size_t k = 0; k < it->n_handoffs; k++)
        if (rules_cond_eval(it->handoffs[k].cond, a))
            return &it->handoffs[k];
    return NULL;
}

const char *rules_priority_name(int priority)
{
    static const char *const names[] = {"low", "normal", "high", "urgent"};
    return priority >= 0 && priority < 4 ? names[priority] : "normal";
}
