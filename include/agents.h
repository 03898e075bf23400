/* agents.h — agent accounts in the store: making one (a random token,
 * shown once, of which only a SHA-256 is stored), disabling, enabling and
 * rotating it, and listing them. Used by `kefu agent` (cli_agent.c) and the
 * admin API (through dialog); dialog_agent_auth() checks tokens against them. */
#ifndef KEFU_AGENTS_H
#define KEFU_AGENTS_H

#include <jansson.h>

struct store;

#define AGENTS_TOKEN_LEN 32 /* hex digits of a new token */

/* Writes the hex SHA-256 of token into out (65 bytes). */
void agents_token_hash(const char *token, char out[65]);
/* 1 if name can be an account's: 1-63 characters of a-z, 0-9, '_', '-'. */
int agents_name_ok(const char *name);
/* Adds agent name serving skills (queue names separated by ',' or '|', "" for
 * every queue) with capacity (0: the default, 3); token[] gets the new token.
 * Returns 0, KEFU_EINVAL (a bad name, skills or capacity), KEFU_ECONFLICT (the
 * name exists) or a store failure. */
int agents_add(struct store *st, const char *name, const char *skills, int capacity, long long now,
               char token[AGENTS_TOKEN_LEN + 1]);
/* what: "disable", "enable" or "rotate" (token[] gets the new token; "" for
 * the others). Returns 0, KEFU_EINVAL, KEFU_ENOENT or a store failure. */
int agents_change(struct store *st, const char *name, const char *what, long long now,
                  char token[AGENTS_TOKEN_LEN + 1]);
/* *out: a new array of {name, state, skills:[...], capacity, created_at, updated_at}. */
int agents_list(struct store *st, json_t **out);

#endif
