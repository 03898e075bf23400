/* log.c — JSON log lines. The line is built in memory (jansson) and
 * written with a single fwrite so that lines from different threads never
 * interleave; stdio's own lock orders them. Every string of the line
 * (msg and each field, nested too) goes through redact_text() first
 * unless redaction was turned off (log_set_redact()). */
#include "log.h"

#include "redact.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

static int min_level = LOG_LEVEL_INFO;
static FILE *out_stream;
static unsigned redact_kinds = REDACT_ALL;

static const char *const level_names[] = {"debug", "info", "warn", "error"};

void log_init(int level, FILE *f)
{
    min_level = level;
    out_stream = f;
}

void log_set_redact(unsigned kinds)
{
    redact_kinds = kinds;
}

unsigned log_redact(void)
{
    return redact_kinds;
}

/* Replaces every string inside v (object values, array items) by its
 * redacted form; a string that cannot be redacted (no memory) is dropped
 * to "[redacted]" rather than written as it is. */
static void redact_json(json_t *v)
{
    if (json_is_object(v)) {
        const char *k;
        json_t *x;
        json_object_foreach(v, k, x)
        {
            if (json_is_string(x)) {
                char *r = NULL;
                int n = 0;
                if (redact_text(json_string_value(x), json_string_length(x), redact_kinds, &r, &n) < 0)
                    json_object_set_new(v, k, json_string("[redacted]"));
                else if (n > 0)
                    json_object_set_new(v, k, json_string(r));
                free(r);
            } else {
                redact_json(x);
            }
        }
    } else if (json_is_array(v)) {
        for (size_t i = 0; i < json_array_size(v); i++) {
            json_t *x = json_array_get(v, i);
            if (json_is_string(x)) {
                char *r = NULL;
                int n = 0;
                if (redact_text(json_string_value(x), json_string_length(x), redact_kinds, &r, &n) < 0)
                    json_array_set_new(v, i, json_string("[redacted]"));
                else if (n > 0)
                    json_array_set_new(v, i, json_string(r));
                free(r);
            } else {
                redact_json(x);
            }
        }
    }
}

int log_level_parse(const char *name)
{
    for (int k = 0; k < 4; k++)
        if (name && strcmp(name, level_names[k]) == 0)
            return k;
    return -1;
}

int log_enabled(int level)
{
    return level >= min_level;
}

/* Formats the current UTC time as 2026-12-02T07:05:01.123Z into buf. */
static void now_iso(char *buf, size_t cap)
{
    struct timeval tv;
    struct tm tm;
    gettimeofday(&tv, NULL);
    gmtime_r(&tv.tv_sec, &tm);
    size_t n = strftime(buf, cap, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf + n, cap - n, ".%03dZ", (int)(tv.tv_usec / 1000));
}

void log_json(int level, const char *msg, json_t *fields)
{
    if (!log_enabled(level))
        return;
    char ts[40];
    now_iso(ts, sizeof ts);
    json_t *o = json_object();
    if (!o)
        return;
    json_object_set_new(o, "ts", json_string(ts));
    json_object_set_new(o, "level", json_string(level_names[level < 0 || level > 3 ? 3 : level]));
    json_object_set_new(o, "msg", json_string(msg ? msg : ""));
    if (fields && redact_kinds) {
        json_t *copy = json_deep_copy(fields); /* fields are borrowed: redact a copy */
        json_object_update(o, copy);
        json_decref(copy);
    } else if (fields) {
        json_object_update(o, fields);
    }
    if (redact_kinds)
        redact_json(o); /* the timestamp never looks like personal data */
    char *s = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(6));
    json_decref(o);
    if (!s)
        return;
    size_t n = strlen(s);
    s[n] = '\n'; /* json_dumps leaves room for its NUL; reuse it for the newline */
    FILE *f = out_stream ? out_stream : stderr;
    fwrite(s, 1, n + 1, f);
    fflush(f);
    free(s);
}

void log_msg(int level, const char *fmt, ...)
{
    if (!log_enabled(level))
        return;
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    log_json(level, buf, NULL);
}
