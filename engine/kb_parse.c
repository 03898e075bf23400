/* kb_parse.c — one article file: the header of `key: value` lines, the
 * Markdown body, and the body's plain text for the index.
 * The format is documented in docs/corpus.md. Every mistake is reported
 * with file:line:col (columns in characters) and the source line, the way
 * rule errors are, so an editor fixes articles and rules the same way. */
#include "kb_int.h"

#include "kefu.h"

#include <stdlib.h>
#include <string.h>

void kb_article_init(struct kb_article *a)
{
    memset(a, 0, sizeof *a);
    text_buf_init(&a->questions);
    text_buf_init(&a->text);
}

void kb_article_release(struct kb_article *a)
{
    free(a->id);
    free(a->locale);
    free(a->title);
    free(a->tags);
    free(a->body);
    text_buf_release(&a->questions);
    text_buf_release(&a->text);
    kb_article_init(a);
}

int kb_locale_valid(const char *l)
{
    return strcmp(l, "en") == 0 || strcmp(l, "zh") == 0 || strcmp(l, "zh-hant") == 0;
}

int kb_locale_match(const char *a, const char *w)
{
    if (!w || !*w || strcmp(a, w) == 0)
        return 2;
    size_t la = strcspn(a, "-_"), lw = strcspn(w, "-_");
    return la == lw && strncmp(a, w, la) == 0 ? 1 : 0;
}

/* ---- positions -------------------------------------------------------- */

/* Length of the line at s, which has n bytes left: up to the next '\n' or
 * the end (the text need not be NUL-terminated). */
static size_t line_len(const char *s, size_t n)
{
    const char *nl = memchr(s, '\n', n);
    return nl ? (size_t)(nl - s) : n;
}

/* The source being parsed and where each diagnostic points. */
struct parser {
    const char *file, *src;
    size_t len;
    struct rules_diag *d;
    int errors;
    char *line_buf; /* the current line, for diagnostics */
};

/* Column (in characters, 1-based) of byte offset at within line [ls, ...). */
static int col_of(const char *ls, size_t at)
{
    int col = 1;
    for (size_t i = 0; i < at; i++)
        col += ((unsigned char)ls[i] & 0xC0) != 0x80;
    return col;
}

static void perr(struct parser *p, int line, const char *ls, size_t ll, size_t at, const char *msg,
                 const char *arg)
{
    char *src = kefu_strndup(ls, ll);
    if (src && !text_utf8_valid(src, ll))
        src[0] = 0; /* never echo invalid bytes */
    rules_diag_add(p->d, RULES_ERROR, p->file, line, col_of(ls, at), src, msg, arg ? arg : "");
    free(src);
    p->errors++;
}

/* Reports the first invalid UTF-8 byte, if any. Returns 1 if valid. */
static int check_utf8(struct parser *p)
{
    if (text_utf8_valid(p->src, p->len))
        return 1;
    const char *ls = p->src;
    int line = 1;
    for (size_t i = 0; i < p->len;) {
        size_t n = 1;
        unsigned char c = (unsigned char)p->src[i];
        if (c >= 0x80 || c == 0) {
            n = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC0 ? 2 : 1;
            if (i + n > p->len || !text_utf8_valid(p->src + i, n)) {
                size_t ll = line_len(ls, (size_t)(p->src + p->len - ls));
                perr(p, line, ls, (size_t)(p->src + i - ls) < ll ? (size_t)(p->src + i - ls) : ll,
                     (size_t)(p->src + i - ls), "invalid utf-8%s", NULL);
                return 0;
            }
        }
        if (c == '\n') {
            line++;
            ls = p->src + i + 1;
        }
        i += n;
    }
    return 0;
}

/* ---- header ----------------------------------------------------------- */

static int id_valid(const char *s, size_t n)
{
    if (n == 0 || n > 100 || s[0] == '-')
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '-'))
            return 0;
    return 1;
}

struct header_line {
    int line;
    const char *ls;                    /* the line */
    size_t ll;                         /* its length without \r\n */
    size_t key, key_len, val, val_len; /* offsets in the line */
};

/* Stores the value of a once-only key; reports a repeat. */
static int set_once(struct parser *p, const struct header_line *h, char **slot, int *seen_line)
{
    if (*slot) {
        char msg[80];
        snprintf(msg, sizeof msg, "duplicate '%.*s' (first on line %d)", (int)h->key_len, h->ls + h->key,
                 *seen_line);
        perr(p, h->line, h->ls, h->ll, h->key, "%s", msg);
        return 0;
    }
    *seen_line = h->line;
    if (!(*slot = kefu_strndup(h->ls + h->val, h->val_len)))
        return KEFU_ENOMEM;
    return 0;
}

struct header_seen {
    int id, locale, title, tags; /* the line each was first set on */
    unsigned mentioned; /* 1 id, 2 locale, 4 title: present, even with a bad value; 8 a malformed line */
};

/* Interprets one `key: value` line. Returns 0 or KEFU_ENOMEM (errors go to p). */
static int header_field(struct parser *p, const struct header_line *h, struct kb_article *a,
                        struct header_seen *s)
{
    const char *k = h->ls + h->key, *v = h->ls + h->val;
    size_t kn = h->key_len;
    s->mentioned |= (kn == 2 && memcmp(k, "id", 2) == 0)       ? 1u
                    : (kn == 6 && memcmp(k, "locale", 6) == 0) ? 2u
                    : (kn == 5 && memcmp(k, "title", 5) == 0)  ? 4u
                                                               : 0u;
    if (h->val_len == 0) {
        char key[64];
        snprintf(key, sizeof key, "%.*s", (int)(kn < 60 ? kn : 60), k);
        perr(p, h->line, h->ls, h->ll, h->val, "'%s' has no value", key);
        return 0;
    }
    if (kn == 2 && memcmp(k, "id", 2) == 0) {
        if (!id_valid(v, h->val_len)) {
            perr(p, h->line, h->ls, h->ll, h->val, "invalid id (use lowercase letters, digits and '-')%s",
                 NULL);
            return 0;
        }
        if (!a->id)
            a->id_line = h->line;
        return set_once(p, h, &a->id, &s->id);
    }
    if (kn == 6 && memcmp(k, "locale", 6) == 0) {
        char l[16];
        snprintf(l, sizeof l, "%.*s", (int)(h->val_len < 15 ? h->val_len : 15), v);
        if (h->val_len > 15 || !kb_locale_valid(l)) {
            perr(p, h->line, h->ls, h->ll, h->val, "unknown locale (expected en, zh or zh-hant)%s", NULL);
            return 0;
        }
        return set_once(p, h, &a->locale, &s->locale);
    }
    if (kn == 5 && memcmp(k, "title", 5) == 0)
        return set_once(p, h, &a->title, &s->title);
    if (kn == 4 && memcmp(k, "tags", 4) == 0)
        return set_once(p, h, &a->tags, &s->tags);
    if (kn == 8 && memcmp(k, "question", 8) == 0) {
        int rc = a->questions.len ? kb_buf_add(&a->questions, "\n", 1) : 0;
        return rc ? rc : kb_buf_add(&a->questions, v, h->val_len);
    }
    char key[64];
    snprintf(key, sizeof key, "%.*s", (int)(kn < 60 ? kn : 60), k);
    perr(p, h->line, h->ls, h->ll, h->key, "unknown key '%s' (expected id, locale, title, tags or question)",
         key);
    return 0;
}

/* Splits one header line into key and value; reports a line that is not `key: value`. */
static int header_split(struct parser *p, struct header_line *h)
{
    const char *ls = h->ls;
    size_t i = 0;
    while (i < h->ll && ((ls[i] >= 'a' && ls[i] <= 'z') || (ls[i] >= 'A' && ls[i] <= 'Z') || ls[i] == '_'))
        i++;
    if (i == 0 || i >= h->ll || ls[i] != ':') {
        perr(p, h->line, ls, h->ll, i < h->ll ? i : h->ll,
             "expected 'key: value' (the header ends at the first blank line)%s", NULL);
        return 0;
    }
    h->key = 0;
    h->key_len = i;
    i++;
    while (i < h->ll && (ls[i] == ' ' || ls[i] == '\t'))
        i++;
    size_t e = h->ll;
    while (e > i && (ls[e - 1] == ' ' || ls[e - 1] == '\t'))
        e--;
    h->val = i;
    h->val_len = e - i;
    return 1;
}

/* Reports a required key the header lacks, at line (the end of the header). */
static void require(struct parser *p, int line, const char *ls, size_t ll, unsigned have, const char *key)
{
    if (!have)
        perr(p, line, ls, ll, 0, "missing '%s' in the article header", key);
}

/* Parses the header; *body is set to the offset where the body starts. */
static int parse_header(struct parser *p, struct kb_article *a, size_t *body, int *body_line)
{
    struct header_seen seen = {0, 0, 0, 0, 0};
    size_t i = 0;
    int line = 1, rc = 0;
    if (p->len >= 3 && memcmp(p->src, "\xEF\xBB\xBF", 3) == 0)
        i = 3; /* byte order mark */
    const char *last = p->src + i;
    size_t last_len = 0;
    int last_line = 1;
    while (i < p->len && rc == 0) {
        struct header_line h = {line, p->src + i, 0, 0, 0, 0, 0};
        size_t nl = i;
        while (nl < p->len && p->src[nl] != '\n')
            nl++;
        h.ll = nl - i;
        if (h.ll && h.ls[h.ll - 1] == '\r')
            h.ll--;
        i = nl < p->len ? nl + 1 : nl;
        line++;
        if (h.ll == 0)
            break;
        last = h.ls;
        last_len = h.ll;
        last_line = h.line;
        if (header_split(p, &h))
            rc = header_field(p, &h, a, &seen);
        else
            seen.mentioned |= 8u;
    }
    *body = i;
    *body_line = line;
    if (seen.mentioned & 8u) /* a line that is no header line may have been meant as the key */
        return rc;
    require(p, last_line, last, last_len, seen.mentioned & 1, "id");
    require(p, last_line, last, last_len, seen.mentioned & 2, "locale");
    require(p, last_line, last, last_len, seen.mentioned & 4, "title");
    return rc;
}

int kb_article_parse(const char *file, const char *src, size_t len, struct kb_article *a,
                     struct rules_diag *d)
{
    struct parser p = {file, src, len, d, 0, NULL};
    kb_article_init(a);
    if (!check_utf8(&p))
        return KEFU_ESYNTAX;
    size_t body = 0;
    int body_line = 1;
    int rc = parse_header(&p, a, &body, &body_line);
    if (rc == 0 && !p.errors) {
        size_t e = len;
        while (body < e && (src[body] == '\n' || src[body] == '\r' || src[body] == ' '))
            body++;
        while (e > body && (src[e - 1] == '\n' || src[e - 1] == '\r' || src[e - 1] == ' '))
            e--;
        if (body == e) {
            rules_diag_add(d, RULES_ERROR, file, body_line - 1, 1, NULL,
                           "the article has no body (write it after the blank line that ends the header)");
            p.errors++;
        } else if (!(a->body = kefu_strndup(src + body, e - body))) {
            rc = KEFU_ENOMEM;
        } else {
            rc = kb_md_strip(a->body, e - body, &a->text);
        }
        if (!a->tags && rc == 0 && !(a->tags = kefu_strndup("", 0)))
            rc = KEFU_ENOMEM;
        if (rc == 0)
            rc = kb_buf_add(&a->questions, "", 0);
    }
    if (rc == 0 && p.errors)
        rc = KEFU_ESYNTAX;
    if (rc < 0)
        kb_article_release(a);
    return rc;
}

/* ---- Markdown → plain text -------------------------------------------- */

static int is_alnum(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           (unsigned char)c >= 0x80;
}

/* Length of a line's block prefix: heading #s, quote >, list bullet or number. */
static size_t block_prefix(const char *s, size_t n)
{
    size_t i = 0;
    while (i < n && (s[i] == ' ' || s[i] == '\t'))
        i++;
    while (i < n && s[i] == '>') { /* quotes, possibly nested */
        i++;
        while (i < n && s[i] == ' ')
            i++;
    }
    size_t j = i;
    while (j < n && s[j] == '#')
        j++;
    if (j > i && j - i <= 6 && (j == n || s[j] == ' '))
        return j < n ? j + 1 : j;
    if (i + 1 < n && (s[i] == '-' || s[i] == '*' || s[i] == '+') && s[i + 1] == ' ')
        return i + 2;
    j = i;
    while (j < n && s[j] >= '0' && s[j] <= '9')
        j++;
    if (j > i && j + 1 < n && (s[j] == '.' || s[j] == ')') && s[j + 1] == ' ')
        return j + 2;
    return i;
}

/* 1 for a thematic break (---, ***, ___) or a table separator row. */
static int rule_line(const char *s, size_t n)
{
    size_t marks = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '-' || s[i] == '*' || s[i] == '_' || s[i] == '=')
            marks++;
        else if (s[i] != ' ' && s[i] != '|' && s[i] != ':')
            return 0;
    }
    return marks >= 3;
}

/* Appends the inline text of s[0..n): links and images keep their text,
 * emphasis and code marks go, table pipes become spaces, HTML tags vanish. */
static int md_inline(const char *s, size_t n, struct text_buf *out)
{
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0;) {
        char c = s[i];
        if (c == '!' && i + 1 < n && s[i + 1] == '[') {
            i++;
            continue;
        }
        if (c == ']' && i + 1 < n && s[i + 1] == '(') { /* skip the link target */
            const char *close = memchr(s + i, ')', n - i);
            if (close) {
                i = (size_t)(close - s) + 1;
                continue;
            }
        }
        if (c == '<' && i + 1 < n && (s[i + 1] == '/' || (s[i + 1] >= 'a' && s[i + 1] <= 'z'))) {
            const char *close = memchr(s + i, '>', n - i);
            if (close && !memchr(s + i, ' ', (size_t)(close - s) - i) &&
                memchr(s + i, ':', (size_t)(close - s) - i)) {
                rc = kb_buf_add(out, s + i + 1, (size_t)(close - s) - i - 1); /* <https://...> */
                i = (size_t)(close - s) + 1;
                continue;
            }
            if (close) {
                i = (size_t)(close - s) + 1;
                continue;
            }
        }
        if (c == '*' || c == '`' || c == '[' || c == ']' || c == '~') {
            i++;
            continue;
        }
        if (c == '_' && !(i > 0 && is_alnum(s[i - 1]) && i + 1 < n && is_alnum(s[i + 1]))) {
            i++;
            continue;
        }
        if (c == '\\' && i + 1 < n && !is_alnum(s[i + 1])) { /* escaped punctuation */
            rc = kb_buf_add(out, s + i + 1, 1);
            i += 2;
            continue;
        }
        rc = kb_buf_add(out, c == '|' ? " " : s + i, 1);
        i++;
    }
    return rc;
}

/* Collapses space runs, drops spaces around line breaks and at the ends, in place. */
static void tidy(struct text_buf *b)
{
    size_t o = 0;
    for (size_t i = 0; i < b->len; i++) {
        char c = b->s[i] == '\t' ? ' ' : b->s[i];
        if (c == ' ' && (o == 0 || b->s[o - 1] == ' ' || b->s[o - 1] == '\n'))
            continue;
        if (c == '\n')
            while (o > 0 && b->s[o - 1] == ' ')
                o--;
        b->s[o++] = c;
    }
    while (o > 0 && (b->s[o - 1] == ' ' || b->s[o - 1] == '\n'))
        o--;
    b->len = o;
    b->s[o] = 0;
}

int kb_md_strip(const char *md, size_t len, struct text_buf *out)
{
    out->len = 0;
    int rc = kb_buf_add(out, "", 0), fence = 0, blank = 0, hard = 0;
    for (size_t i = 0; i < len && rc == 0;) {
        const char *ls = md + i;
        size_t ll = line_len(ls, len - i);
        i += ll + 1;
        if (ll && ls[ll - 1] == '\r')
            ll--;
        size_t lead = 0;
        while (lead < ll && (ls[lead] == ' ' || ls[lead] == '\t'))
            lead++;
        if (ll - lead >= 3 && (memcmp(ls + lead, "```", 3) == 0 || memcmp(ls + lead, "~~~", 3) == 0)) {
            fence = !fence;
            continue;
        }
        if (lead == ll) {
            blank = out->len > 0;
            continue;
        }
        if (!fence && rule_line(ls, ll))
            continue;
        size_t pre = fence ? 0 : block_prefix(ls, ll);
        int block = fence || pre > lead || ls[lead] == '|'; /* a list item, heading, quote or table row */
        if (out->len) /* a soft line break inside a paragraph is a space */
            rc = blank ? kb_buf_add(out, "\n\n", 2) : kb_buf_add(out, block || hard ? "\n" : " ", 1);
        blank = 0;
        hard = block && !fence && ls[lead] == '#';
        if (rc == 0)
            rc = fence ? kb_buf_add(out, ls, ll) : md_inline(ls + pre, ll - pre, out);
    }
    if (rc == 0)
        tidy(out);
    return rc;
}
