/* jsonw.c — compact JSON text from a jansson tree, the same bytes as
 * json_dumps(v, JSON_COMPACT | JSON_REAL_PRECISION(6)) (objects in their
 * insertion order, strings escaped as jansson escapes them), written
 * straight into a growing buffer: json_dumps goes through a callback per
 * piece and formats every number with printf. Strings in a tree were
 * checked as UTF-8 when they were made, so they are copied in runs. */
#include "jsonw.h"
#include "kefu.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int grow(struct text_buf *b, size_t n)
{
    if (b->len + n + 1 <= b->cap)
        return 0;
    size_t c = b->cap ? b->cap : 1024; /* an answer or a memory in one allocation */
    while (b->len + n + 1 > c)
        c *= 2;
    char *s = kefu_realloc(b->s, c);
    if (!s)
        return KEFU_ENOMEM;
    b->s = s;
    b->cap = c;
    return 0;
}

int jsonw_raw(struct text_buf *b, const char *s, size_t n)
{
    if (grow(b, n) < 0)
        return KEFU_ENOMEM;
    char *d = b->s + b->len;
    if (n <= 8) /* most pieces are a brace, a comma or a short key: no call for them */
        for (size_t i = 0; i < n; i++)
            d[i] = s[i];
    else
        memcpy(d, s, n);
    b->len += n;
    b->s[b->len] = 0;
    return 0;
}

/* 1 for the bytes jansson escapes: controls, quote, backslash */
static const unsigned char esc[256] = {
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 1, ['\\'] = 1,
};

int jsonw_string(struct text_buf *b, const char *s, size_t n)
{
    size_t keep = b->len;
    int rc = jsonw_raw(b, "\"", 1);
    const char *run = s, *end = s + n;
    for (; rc == 0 && s < end; s++) {
        unsigned char ch = (unsigned char)*s;
        if (!esc[ch])
            continue;
        char e[8];
        size_t k = 2;
        e[0] = '\\';
        switch (ch) {
        case '"': e[1] = '"'; break;
        case '\\': e[1] = '\\'; break;
        case '\b': e[1] = 'b'; break;
        case '\f': e[1] = 'f'; break;
        case '\n': e[1] = 'n'; break;
        case '\r': e[1] = 'r'; break;
        case '\t': e[1] = 't'; break;
        default: k = (size_t)snprintf(e, sizeof e, "\\u%04X", ch); break;
        }
        rc = jsonw_raw(b, run, (size_t)(s - run));
        if (rc == 0)
            rc = jsonw_raw(b, e, k);
        run = s + 1;
    }
    if (rc == 0)
        rc = jsonw_raw(b, run, (size_t)(s - run));
    if (rc == 0)
        rc = jsonw_raw(b, "\"", 1);
    if (rc < 0 && b->s) {
        b->len = keep;
        b->s[keep] = 0;
    }
    return rc;
}

int jsonw_real(double v, char *buf, size_t cap)
{
    double k = round(v * 1e4);
    if (v >= 0 && v <= 1 && !signbit(v) && k / 1e4 == v && cap >= 8) {
        /* four decimals at most (confidences): the digits "%.6g" gives, without printf */
        long q = (long)k;
        char *p = buf;
        *p++ = (char)('0' + q / 10000);
        *p++ = '.';
        q %= 10000;
        if (!q)
            *p++ = '0';
        for (long div = 1000; q; div /= 10) {
            *p++ = (char)('0' + q / div);
            q %= div;
        }
        *p = 0;
        return (int)(p - buf);
    }
    /* anything else: as jansson writes it */
    json_t *j = json_real(v);
    char *t = j ? json_dumps(j, JSON_ENCODE_ANY | JSON_REAL_PRECISION(6)) : NULL;
    int n = snprintf(buf, cap, "%s", t ? t : "0.0");
    free(t);
    json_decref(j);
    return n < (int)cap ? n : (int)cap - 1;
}

static int put_int(struct text_buf *b, json_int_t v)
{
    char d[24], *p = d + sizeof d;
    unsigned long long u = v < 0 ? 0ULL - (unsigned long long)v : (unsigned long long)v;
    do
        *--p = (char)('0' + u % 10);
    while (u /= 10);
    if (v < 0)
        *--p = '-';
    return jsonw_raw(b, p, (size_t)(d + sizeof d - p));
}

static int value(struct text_buf *b, const json_t *v, int depth)
{
    if (depth > 2048)
        return KEFU_EINVAL;
    switch (json_typeof(v)) {
    case JSON_OBJECT: {
        int rc = jsonw_raw(b, "{", 1), first = 1;
        const char *key;
        json_t *x;
        json_object_foreach((json_t *)v, key, x)
        {
            if (rc == 0 && !first)
                rc = jsonw_raw(b, ",", 1);
            if (rc == 0)
                rc = jsonw_string(b, key, strlen(key));
            if (rc == 0)
                rc = jsonw_raw(b, ":", 1);
            if (rc == 0)
                rc = value(b, x, depth + 1);
            first = 0;
        }
        return rc ? rc : jsonw_raw(b, "}", 1);
    }
    case JSON_ARRAY: {
        int rc = jsonw_raw(b, "[", 1);
        for (size_t i = 0; rc == 0 && i < json_array_size(v); i++) {
            if (i)
                rc = jsonw_raw(b, ",", 1);
            if (rc == 0)
                rc = value(b, json_array_get(v, i), depth + 1);
        }
        return rc ? rc : jsonw_raw(b, "]", 1);
    }
    case JSON_STRING: return jsonw_string(b, json_string_value(v), json_string_length(v));
    case JSON_INTEGER: return put_int(b, json_integer_value(v));
    case JSON_REAL: {
        char d[40];
        return jsonw_raw(b, d, (size_t)jsonw_real(json_real_value(v), d, sizeof d));
    }
    case JSON_TRUE: return jsonw_raw(b, "true", 4);
    case JSON_FALSE: return jsonw_raw(b, "false", 5);
    default: return jsonw_raw(b, "null", 4);
    }
}

int jsonw_append(struct text_buf *b, const json_t *v)
{
    size_t keep = b->len;
    int rc = v ? value(b, v, 0) : KEFU_EINVAL;
    if (rc < 0 && b->s) {
        b->len = keep;
        b->s[keep] = 0;
    }
    return rc;
}

char *jsonw_dumps(const json_t *v)
{
    struct text_buf b;
    text_buf_init(&b);
    if (jsonw_append(&b, v) < 0) {
        text_buf_release(&b);
        return NULL;
    }
    return b.s ? b.s : kefu_strndup("", 0);
}
