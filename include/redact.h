/* redact.h — find and mask personal data in free text: phone numbers
 * (Chinese mobile, international +CC), e-mail addresses, Luhn-valid card
 * numbers and Chinese resident ID numbers (checksum valid). Hand-written
 * scanners, no regex: every candidate is checked (length, checksum,
 * boundaries) so that order numbers, dates and prices survive. Used by the
 * log (on by default) and, when configured, by dialog before it stores a
 * message. docs/operations.md lists what each kind matches. */
#ifndef KEFU_REDACT_H
#define KEFU_REDACT_H

#include <stddef.h>

enum redact_kind {
    REDACT_PHONE = 1u << 0, /* 1[3-9]xxxxxxxxx (optionally +86), +CC then 7..14 digits */
    REDACT_EMAIL = 1u << 1, /* local@domain.tld */
    REDACT_CARD = 1u << 2,  /* 13..19 digits, single spaces or dashes between groups, Luhn valid */
    REDACT_ID = 1u << 3,    /* 17 digits + digit or X, plausible birth date, ISO 7064 check */
    REDACT_ALL = REDACT_PHONE | REDACT_EMAIL | REDACT_CARD | REDACT_ID,
};

/* One sensitive span found in a text. */
struct redact_span {
    size_t start, len;
    unsigned kind; /* one enum redact_kind */
};

/* Finds the first span of kinds in s[0..len) that starts at or after from;
 * returns 1 and fills *out, or 0 when there is none. */
int redact_find(const char *s, size_t len, size_t from, unsigned kinds, struct redact_span *out);
/* Copies s[0..len) into *out (new, NUL-terminated, free()) with every span
 * of kinds replaced by its label ("[phone]", "[email]", "[card]", "[id]");
 * *count (may be NULL) gets the number replaced. Returns 0 or KEFU_ENOMEM. */
int redact_text(const char *s, size_t len, unsigned kinds, char **out, int *count);
/* Returns the label of one kind ("[phone]", ...); static. */
const char *redact_label(unsigned kind);
/* Parses "all", "off" (or "none") or a comma list of phone,email,card,id
 * into *kinds. Returns 0 or KEFU_EINVAL. */
int redact_parse(const char *spec, unsigned *kinds);

/* Checks used by the scanners, exposed for tests: 1 if the digits pass. */
int redact_luhn(const char *digits, size_t n);
/* 1 if id (18 bytes) is a Chinese resident ID: date plausible, check character right. */
int redact_cn_id(const char *id);

#endif
