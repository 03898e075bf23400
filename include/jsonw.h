/* jsonw.h — a jansson tree written as compact JSON text, byte for byte as
 * json_dumps(v, JSON_COMPACT | JSON_REAL_PRECISION(6)) writes it, without
 * its per-character callbacks: the answers and memories of the message path. */
#ifndef KEFU_JSONW_H
#define KEFU_JSONW_H

#include <jansson.h>
#include <stddef.h>

#include "text.h"

/* Appends v to b (a text_buf the caller holds); 0, or KEFU_ENOMEM with b
 * as it was before the call. v is borrowed. */
int jsonw_append(struct text_buf *b, const json_t *v);
/* Appends the bytes s[0..n) as they are (JSON text the caller made); 0 or KEFU_ENOMEM. */
int jsonw_raw(struct text_buf *b, const char *s, size_t n);
/* Appends s as a JSON string with jansson's escapes; 0 or KEFU_ENOMEM. */
int jsonw_string(struct text_buf *b, const char *s, size_t n);
/* Writes the real v as JSON_REAL_PRECISION(6) does into buf (cap >= 32); returns its length. */
int jsonw_real(double v, char *buf, size_t cap);
/* v as text: a new string (free with free()), NULL when out of memory. */
char *jsonw_dumps(const json_t *v);

#endif
