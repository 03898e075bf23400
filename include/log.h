/* log.h — structured logs: one JSON object per line on stderr (ts, level,
 * msg, then fields). Thread-safe; each line is written with one call.
 * Never pass tokens or message text at any level: redaction of phone
 * numbers, e-mail, cards and ID numbers (on by default) is a second line
 * of defence for what other fields carry (paths, names), not a licence. */
#ifndef KEFU_LOG_H
#define KEFU_LOG_H

#include <jansson.h>
#include <stdio.h>

enum log_level {
    LOG_LEVEL_DEBUG = 0,
    LOG_LEVEL_INFO = 1,
    LOG_LEVEL_WARN = 2,
    LOG_LEVEL_ERROR = 3,
    LOG_LEVEL_OFF = 4
};

/* Sets the lowest level written and the stream (NULL: stderr). */
void log_init(int level, FILE *f);
/* Sets the kinds of personal data masked in every line (enum redact_kind;
 * REDACT_ALL by default, 0 turns redaction off). */
void log_set_redact(unsigned kinds);
/* Returns the kinds masked now. */
unsigned log_redact(void);
/* Parses "debug", "info", "warn" or "error"; returns the level or -1. */
int log_level_parse(const char *name);
/* Returns 1 when level would be written. */
int log_enabled(int level);
/* Writes {ts, level, msg, ...fields}; fields is borrowed and may be NULL. */
void log_json(int level, const char *msg, json_t *fields);
/* Writes {ts, level, msg} with msg formatted like printf. */
void log_msg(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
