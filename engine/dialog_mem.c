/* dialog_mem.c — a conversation's memory as a turn reads and writes it.
 * The memory is one JSON object in the store (slots, the last intent and
 * topic, variants, quick replies, attributes, actions and "intents": the
 * last DIALOG_HIST intents understood, each {intent, confidence, source,
 * seq}). The intents are most of its bytes and a turn only appends to them,
 * so they are kept as the JSON text of each element, cut out of the stored
 * text by a small scanner that takes exactly what jansson takes (anything
 * else goes to jansson whole, as before), and written back as they were; only
 * the rest of the object becomes a jansson tree. The stored text keeps its
 * shape, so every other reader (the handoff packet, the agent's context,
 * PostgreSQL) reads it with jansson as before. */
#include "dialog_int.h"
#include "jsonw.h"
#include "kefu.h"
#include "text.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *ws(const char *p, const char *end)
{
    while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'))
        p++;
    return p;
}

/* 1 for the bytes that end a run of plain string bytes: controls, quote, backslash */
static const unsigned char stop[256] = {
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 1, ['\\'] = 1,
};

/* The value of the four hex digits at p, or -1. */
static long hex4(const char *p, const char *end)
{
    if (end - p < 4)
        return -1;
    long v = 0;
    for (int k = 0; k < 4; k++) {
        char c = p[k];
        int d = c >= '0' && c <= '9'   ? c - '0'
                : c >= 'a' && c <= 'f' ? c - 'a' + 10
                : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                       : -1;
        if (d < 0)
            return -1;
        v = v * 16 + d;
    }
    return v;
}

/* The end of the JSON string starting at p ('"'), or NULL. */
static const char *skip_string(const char *p, const char *end)
{
    for (p++; p < end; p++) {
        while (p < end && !stop[(unsigned char)*p])
            p++;
        if (p >= end)
            break;
        unsigned char ch = (unsigned char)*p;
        if (ch == '"')
            return p + 1;
        if (ch < 0x20)
            return NULL;
        if (ch == '\\') {
            if (++p >= end)
                return NULL;
            if (*p == 'u') {
                /* what jansson refuses goes to jansson: \u0000 and unpaired surrogates */
                long u = hex4(p + 1, end);
                if (u <= 0 || (u >= 0xDC00 && u <= 0xDFFF))
                    return NULL;
                p += 4;
                if (u >= 0xD800 && u <= 0xDBFF) {
                    long lo = end - p > 2 && p[1] == '\\' && p[2] == 'u' ? hex4(p + 3, end) : -1;
                    if (lo < 0xDC00 || lo > 0xDFFF)
                        return NULL;
                    p += 6;
                }
            } else if (!strchr("\"\\/bfnrt", *p) || !*p) {
                return NULL;
            }
        }
    }
    return NULL;
}

/* The end of the JSON number at p, or NULL; NULL too for what jansson
 * refuses or may (an integer past 18 digits, a real that overflows). */
static const char *skip_number(const char *p, const char *end)
{
    const char *s = p;
    int real = 0;
    if (p < end && *p == '-')
        p++;
    if (p < end && *p == '0')
        p++;
    else if (p < end && *p >= '1' && *p <= '9')
        while (p < end && *p >= '0' && *p <= '9')
            p++;
    else
        return NULL;
    if (p < end && *p == '.') {
        const char *d = ++p;
        while (p < end && *p >= '0' && *p <= '9')
            p++;
        if (p == d)
            return NULL;
        real = 1;
    }
    if (p < end && (*p == 'e' || *p == 'E')) {
        real = 2; /* only an exponent can take a real past DBL_MAX in 63 characters */
        p++;
        if (p < end && (*p == '+' || *p == '-'))
            p++;
        const char *d = p;
        while (p < end && *p >= '0' && *p <= '9')
            p++;
        if (p == d)
            return NULL;
    }
    if (!real)
        return p - s - (*s == '-') <= 18 ? p : NULL;
    char buf[64];
    if (p - s >= (long)sizeof buf)
        return NULL;
    if (real == 1)
        return p;
    memcpy(buf, s, (size_t)(p - s));
    buf[p - s] = 0;
    double v = strtod(buf, NULL);
    return isinf(v) ? NULL : p;
}

/* The end of the JSON value starting at p, or NULL; depth bounds nesting. */
static const char *skip_value(const char *p, const char *end, int depth)
{
    if (p >= end || depth > 32)
        return NULL;
    switch (*p) {
    case '"': return skip_string(p, end);
    case '{':
    case '[': {
        char close = *p == '{' ? '}' : ']';
        int obj = *p == '{';
        p = ws(p + 1, end);
        if (p < end && *p == close)
            return p + 1;
        for (;;) {
            if (obj) {
                if (p >= end || *p != '"' || !(p = skip_string(p, end)))
                    return NULL;
                p = ws(p, end);
                if (p >= end || *p != ':')
                    return NULL;
                p = ws(p + 1, end);
            }
            if (!(p = skip_value(p, end, depth + 1)))
                return NULL;
            p = ws(p, end);
            if (p < end && *p == ',') {
                p = ws(p + 1, end);
                continue;
            }
            return p < end && *p == close ? p + 1 : NULL;
        }
    }
    case 't': return end - p >= 4 && memcmp(p, "true", 4) == 0 ? p + 4 : NULL;
    case 'f': return end - p >= 5 && memcmp(p, "false", 5) == 0 ? p + 5 : NULL;
    case 'n': return end - p >= 4 && memcmp(p, "null", 4) == 0 ? p + 4 : NULL;
    default: return skip_number(p, end);
    }
}

/* Appends n bytes to the growing buffer *b (length *len, capacity *cap). */
static int put(char **b, size_t *len, size_t *cap, const char *s, size_t n)
{
    if (*len + n + 1 > *cap) {
        size_t c = *cap ? *cap : 256;
        while (*len + n + 1 > c)
            c *= 2;
        char *nb = kefu_realloc(*b, c);
        if (!nb)
            return KEFU_ENOMEM;
        *b = nb;
        *cap = c;
    }
    memcpy(*b + *len, s, n);
    *len += n;
    (*b)[*len] = 0;
    return 0;
}

/* Adds the element text s[0..n) as the newest intent, the oldest out past DIALOG_HIST. */
static int hist_push(struct dialog_hist *h, const char *s, size_t n)
{
    if (h->n == DIALOG_HIST) {
        /* drop the oldest: move the others' text to the front */
        size_t cut = h->off[1];
        memmove(h->buf, h->buf + cut, h->len - cut);
        h->len -= cut;
        for (size_t i = 1; i < h->n; i++)
            h->off[i - 1] = h->off[i] - cut;
        h->n--;
    }
    size_t at = h->len;
    if (put(&h->buf, &h->len, &h->cap, s, n) < 0)
        return KEFU_ENOMEM;
    h->off[h->n++] = at;
    return 0;
}

/* Takes the elements of the array text p[0..end) into h; 0, or -1 when it is no array of values. */
static int hist_scan(struct dialog_hist *h, const char *p, const char *end)
{
    p = ws(p + 1, end);
    if (p < end && *p == ']')
        return 0;
    for (;;) {
        const char *e = skip_value(p, end, 1);
        if (!e || hist_push(h, p, (size_t)(e - p)) < 0)
            return -1;
        p = ws(e, end);
        if (p < end && *p == ',') {
            p = ws(p + 1, end);
            continue;
        }
        return p < end && *p == ']' ? 0 : -1;
    }
}

/* The slow path, for text the scanner did not take: jansson reads it all
 * and the intents' elements are dumped one by one. */
static json_t *parse_tree(const char *text, struct dialog_hist *h)
{
    json_t *mem = json_loads(text, 0, NULL);
    if (!json_is_object(mem)) {
        json_decref(mem);
        return json_object();
    }
    json_t *v = json_object_get(mem, "intents"), *el;
    size_t i;
    json_array_foreach(v, i, el)
    {
        char *s = json_dumps(el, JSON_COMPACT | JSON_ENCODE_ANY); /* every digit: as they were */
        if (s)
            hist_push(h, s, strlen(s));
        free(s);
    }
    json_object_del(mem, "intents");
    return mem;
}

json_t *dialog_mem_parse(const char *text, struct dialog_hist *h)
{
    h->n = h->len = 0;
    if (!text)
        text = "{}";
    size_t tlen = strlen(text);
    const char *end = text + tlen, *p = ws(text, end);
    char *rest = NULL;
    size_t rlen = 0, rcap = 0;
    int ok = p < end && *p == '{' && put(&rest, &rlen, &rcap, "{", 1) == 0;
    if (ok) {
        p = ws(p + 1, end);
        if (p < end && *p == '}')
            p++;
        else
            for (;;) {
                const char *k = p, *ke = p < end && *p == '"' ? skip_string(p, end) : NULL;
                const char *v = ke ? ws(ke, end) : NULL;
                if (!v || v >= end || *v != ':') {
                    ok = 0;
                    break;
                }
                v = ws(v + 1, end);
                const char *ve = skip_value(v, end, 1);
                if (!ve) {
                    ok = 0;
                    break;
                }
                if (ke - k == 9 && memcmp(k, "\"intents\"", 9) == 0) {
                    h->n = h->len = 0; /* a repeated key: the last one counts, as in jansson */
                    /* jansson refuses invalid UTF-8: so does this value, which it never sees */
                    if (!text_utf8_valid(v, (size_t)(ve - v)) || (*v == '[' && hist_scan(h, v, ve) < 0)) {
                        ok = 0;
                        break;
                    }
                } else if ((rlen > 1 && put(&rest, &rlen, &rcap, ",", 1) < 0) ||
                           put(&rest, &rlen, &rcap, k, (size_t)(ve - k)) < 0) {
                    ok = 0;
                    break;
                }
                p = ws(ve, end);
                if (p < end && *p == ',') {
                    p = ws(p + 1, end);
                    continue;
                }
                if (p < end && *p == '}') {
                    p++;
                    break;
                }
                ok = 0;
                break;
            }
        ok = ok && ws(p, end) == end && put(&rest, &rlen, &rcap, "}", 1) == 0;
    }
    json_t *mem = NULL;
    if (ok)
        mem = rlen == 2 ? json_object() : json_loadb(rest, rlen, 0, NULL);
    free(rest);
    if (json_is_object(mem))
        return mem;
    json_decref(mem);
    h->n = h->len = 0;
    return parse_tree(text, h);
}

int dialog_hist_add(struct dialog_hist *h, const char *intent, double confidence, const char *source,
                    long long seq)
{
    struct text_buf b;
    char num[40];
    text_buf_init(&b);
    int rc = jsonw_raw(&b, "{\"intent\":", 10);
    if (rc == 0)
        rc = jsonw_string(&b, intent, strlen(intent));
    if (rc == 0)
        rc = jsonw_raw(&b, ",\"confidence\":", 14);
    if (rc == 0)
        rc = jsonw_raw(&b, num, (size_t)jsonw_real(confidence, num, sizeof num));
    if (rc == 0)
        rc = jsonw_raw(&b, ",\"source\":", 10);
    if (rc == 0)
        rc = jsonw_string(&b, source, strlen(source));
    if (rc == 0)
        rc = jsonw_raw(&b, num, (size_t)snprintf(num, sizeof num, ",\"seq\":%lld}", seq));
    if (rc == 0)
        rc = hist_push(h, b.s, b.len);
    text_buf_release(&b);
    return rc;
}

char *dialog_mem_dump(json_t *mem, const struct dialog_hist *h)
{
    struct text_buf b;
    text_buf_init(&b);
    int rc = jsonw_append(&b, mem);
    if (rc == 0 && h->n) {
        b.len--; /* reopen the object */
        rc = b.len > 1 ? jsonw_raw(&b, ",\"intents\":[", 12) : jsonw_raw(&b, "\"intents\":[", 11);
        for (size_t i = 0; rc == 0 && i < h->n; i++) {
            size_t e = i + 1 < h->n ? h->off[i + 1] : h->len;
            if (i)
                rc = jsonw_raw(&b, ",", 1);
            if (rc == 0)
                rc = jsonw_raw(&b, h->buf + h->off[i], e - h->off[i]);
        }
        if (rc == 0)
            rc = jsonw_raw(&b, "]}", 2);
    }
    if (rc < 0) {
        text_buf_release(&b);
        return NULL;
    }
    return b.s;
}

void dialog_hist_release(struct dialog_hist *h)
{
    free(h->buf);
    *h = (struct dialog_hist){0};
}
