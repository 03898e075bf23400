/* redact.c — the scanners of redact.h. A candidate may start only where
 * the byte before is not an ASCII letter or digit (nor a digit group
 * like "12." or "3,"), and must end the same way: KF13812345678 is an
 * order number, 0.13812345678 a fraction, neither a phone. Digit runs
 * are read with their single separators; each kind then checks what it
 * can: a card's Luhn digit, an ID's birth date and ISO 7064 MOD 11-2
 * check character, a phone's prefix and length. Everything is bytes:
 * non-ASCII text around a match (Chinese) is a boundary. */
#include "redact.h"

#include "kefu.h"

#include <string.h>

static int is_digit(unsigned char c)
{
    return c >= '0' && c <= '9';
}

static int is_alnum(unsigned char c)
{
    return is_digit(c) || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

/* 1 if a number may start at s[i]: no letter or digit before it, and no
 * "digit." or "digit," that would make it the tail of a longer number. */
static int starts_clean(const char *s, size_t i)
{
    if (i == 0)
        return 1;
    unsigned char p = (unsigned char)s[i - 1];
    if (is_alnum(p) || p == '+' || p == '_')
        return 0;
    if ((p == '.' || p == ',') && i >= 2 && is_digit((unsigned char)s[i - 2]))
        return 0;
    return 1;
}

/* 1 if a number may end before s[i] (same rules, looking forward). */
static int ends_clean(const char *s, size_t len, size_t i)
{
    if (i >= len)
        return 1;
    unsigned char c = (unsigned char)s[i];
    if (is_alnum(c) || c == '_')
        return 0;
    if ((c == '.' || c == ',') && i + 1 < len && is_digit((unsigned char)s[i + 1]))
        return 0;
    return 1;
}

/* A run of digits from s[i] with single separators from seps between
 * them (at most maxsep in a row); ends on a digit. Copies up to cap
 * digits into d; returns the digit count (0 if s[i] is no digit) and
 * the end offset in *end. More than cap digits return cap + 1. */
static size_t digit_run(const char *s, size_t len, size_t i, const char *seps, int maxsep, char *d,
                        size_t cap, size_t *end)
{
    size_t n = 0, j = i;
    *end = i;
    while (j < len) {
        if (is_digit((unsigned char)s[j])) {
            if (n == cap)
                return cap + 1;
            d[n++] = s[j++];
            *end = j;
            continue;
        }
        int k = 0;
        while (j + k < len && k < maxsep && s[j + k] && strchr(seps, s[j + k]))
            k++;
        if (k == 0 || j + k >= len || !is_digit((unsigned char)s[j + k]) || n == 0)
            break;
        j += k;
    }
    return n;
}

int redact_luhn(const char *digits, size_t n)
{
    int sum = 0;
    for (size_t k = 0; k < n; k++) {
        int v = digits[n - 1 - k] - '0';
        if (k % 2 == 1 && (v *= 2) > 9)
            v -= 9;
        sum += v;
    }
    return n > 0 && sum % 10 == 0;
}

static int days_in(int y, int m)
{
    static const int dm[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    int leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    return m == 2 && leap ? 29 : dm[m - 1];
}

int redact_cn_id(const char *id)
{
    static const int w[17] = {7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2};
    static const char check[] = "10X98765432";
    int sum = 0;
    for (int k = 0; k < 17; k++) {
        if (!is_digit((unsigned char)id[k]))
            return 0;
        sum += (id[k] - '0') * w[k];
    }
    int y = (id[6] - '0') * 1000 + (id[7] - '0') * 100 + (id[8] - '0') * 10 + (id[9] - '0');
    int m = (id[10] - '0') * 10 + (id[11] - '0');
    int dd = (id[12] - '0') * 10 + (id[13] - '0');
    if (id[0] == '0' || y < 1900 || y > 2100 || m < 1 || m > 12 || dd < 1 || dd > days_in(y, m))
        return 0;
    char c = id[17] == 'x' ? 'X' : id[17];
    return c == check[sum % 11];
}

/* ---- the kinds; each returns the match length at s[i] or 0 ---- */

static size_t match_id(const char *s, size_t len, size_t i)
{
    if (len - i < 18 || !ends_clean(s, len, i + 18))
        return 0;
    return redact_cn_id(s + i) ? 18 : 0;
}

static size_t match_card(const char *s, size_t len, size_t i)
{
    char d[20];
    size_t end, n = digit_run(s, len, i, " -", 1, d, 19, &end);
    if (n < 13 || n > 19 || !ends_clean(s, len, end) || !redact_luhn(d, n))
        return 0;
    return end - i;
}

/* 1[3-9] and 9 more digits, grouped like 138 1234 5678 or 138-1234-5678,
 * optionally after 86 or 0086 (the +86 form is international). */
static size_t match_cn_mobile(const char *s, size_t len, size_t i)
{
    char d[16];
    size_t end, n = digit_run(s, len, i, " -", 1, d, 15, &end);
    const char *m = d;
    if (n == 13 && memcmp(d, "86", 2) == 0)
        m += 2, n -= 2;
    else if (n == 15 && memcmp(d, "0086", 4) == 0)
        m += 4, n -= 4;
    if (n != 11 || m[0] != '1' || m[1] < '3' || m[1] > '9' || !ends_clean(s, len, end))
        return 0;
    return end - i;
}

/* '+', a country code, the rest: 8 to 15 digits in all (E.164), grouped
 * with spaces, dashes, dots or parentheses: +1 (415) 555-0100. */
static size_t match_intl(const char *s, size_t len, size_t i)
{
    if (s[i] != '+' || i + 1 >= len)
        return 0;
    size_t j = i + 1;
    if (s[j] == '(' && j + 1 < len)
        j++;
    char d[16];
    size_t end, n = digit_run(s, len, j, " -.()", 2, d, 15, &end);
    if (n < 8 || n > 15 || d[0] == '0' || !ends_clean(s, len, end))
        return 0;
    return end - i;
}

static int local_char(unsigned char c)
{
    return is_alnum(c) || (c && strchr("._%+-", c));
}

/* local@domain.tld: a local part of 1..64 bytes, labels of letters,
 * digits and dashes, at least two, the last of two or more letters. */
static size_t match_email(const char *s, size_t len, size_t i)
{
    if (i > 0 && local_char((unsigned char)s[i - 1]))
        return 0;
    size_t j = i;
    while (j < len && j - i <= 64 && local_char((unsigned char)s[j]))
        j++;
    if (j == i || j - i > 64 || j >= len || s[j] != '@' || s[i] == '.')
        return 0;
    size_t k = ++j, last = 0, labels = 0, end = 0;
    while (k < len) {
        size_t l = k;
        while (l < len && (is_alnum((unsigned char)s[l]) || s[l] == '-'))
            l++;
        if (l == k || s[k] == '-' || s[l - 1] == '-')
            break;
        labels++;
        last = k;
        end = l;
        if (l + 1 < len && s[l] == '.' && is_alnum((unsigned char)s[l + 1]))
            k = l + 1;
        else
            break;
    }
    if (labels < 2)
        return 0;
    for (size_t t = last; t < end; t++)
        if (is_digit((unsigned char)s[t]) || s[t] == '-')
            return 0;
    return end - last >= 2 ? end - i : 0;
}

/* The kind that matches at s[i], with its kind in *kind. A Chinese mobile
 * behind 86 can also pass Luhn: the phone is tried before the card. */
static size_t match_at(const char *s, size_t len, size_t i, unsigned kinds, unsigned *kind)
{
    unsigned char c = (unsigned char)s[i];
    size_t n;
    if ((kinds & REDACT_EMAIL) && local_char(c) && (n = match_email(s, len, i))) {
        *kind = REDACT_EMAIL;
        return n;
    }
    if (!starts_clean(s, i))
        return 0;
    if ((kinds & REDACT_PHONE) && c == '+' && (n = match_intl(s, len, i))) {
        *kind = REDACT_PHONE;
        return n;
    }
    if (!is_digit(c))
        return 0;
    if ((kinds & REDACT_ID) && (n = match_id(s, len, i))) {
        *kind = REDACT_ID;
        return n;
    }
    if ((kinds & REDACT_PHONE) && (n = match_cn_mobile(s, len, i))) {
        *kind = REDACT_PHONE;
        return n;
    }
    if ((kinds & REDACT_CARD) && (n = match_card(s, len, i))) {
        *kind = REDACT_CARD;
        return n;
    }
    return 0;
}

int redact_find(const char *s, size_t len, size_t from, unsigned kinds, struct redact_span *out)
{
    for (size_t i = from; i < len && kinds; i++) {
        unsigned kind = 0;
        size_t n = match_at(s, len, i, kinds, &kind);
        if (n) {
            out->start = i;
            out->len = n;
            out->kind = kind;
            return 1;
        }
    }
    return 0;
}

const char *redact_label(unsigned kind)
{
    switch (kind) {
    case REDACT_PHONE: return "[phone]";
    case REDACT_EMAIL: return "[email]";
    case REDACT_CARD: return "[card]";
    case REDACT_ID: return "[id]";
    default: return "[redacted]";
    }
}

int redact_text(const char *s, size_t len, unsigned kinds, char **out, int *count)
{
    /* a label is at most one byte longer than the shortest match it
     * replaces (a 6-byte e-mail becomes "[email]"): len / 6 covers it */
    char *o = kefu_malloc(len + len / 6 + 2);
    if (!o)
        return KEFU_ENOMEM;
    size_t w = 0, at = 0;
    int n = 0;
    struct redact_span sp;
    while (redact_find(s, len, at, kinds, &sp)) {
        const char *label = redact_label(sp.kind);
        size_t ll = strlen(label);
        memcpy(o + w, s + at, sp.start - at);
        w += sp.start - at;
        memcpy(o + w, label, ll);
        w += ll;
        at = sp.start + sp.len;
        n++;
    }
    memcpy(o + w, s + at, len - at);
    w += len - at;
    o[w] = 0;
    if (count)
        *count = n;
    *out = o;
    return 0;
}

int redact_parse(const char *spec, unsigned *kinds)
{
    static const struct {
        const char *name;
        unsigned kind;
    } names[] = {{"phone", REDACT_PHONE}, {"email", REDACT_EMAIL}, {"card", REDACT_CARD}, {"id", REDACT_ID}};
    if (!spec)
        return KEFU_EINVAL;
    if (strcmp(spec, "all") == 0 || strcmp(spec, "on") == 0) {
        *kinds = REDACT_ALL;
        return 0;
    }
    if (strcmp(spec, "off") == 0 || strcmp(spec, "none") == 0) {
        *kinds = 0;
        return 0;
    }
    unsigned k = 0;
    for (const char *p = spec; *p;) {
        size_t n = strcspn(p, ",");
        size_t t = 0;
        while (t < 4 && !(strlen(names[t].name) == n && strncmp(p, names[t].name, n) == 0))
            t++;
        if (t == 4)
            return KEFU_EINVAL;
        k |= names[t].kind;
        p += n;
        if (*p == ',' && *++p == 0)
            return KEFU_EINVAL;
    }
    if (k == 0)
        return KEFU_EINVAL;
    *kinds = k;
    return 0;
}
