/* agents.c — agent accounts (agents.h) over the store's agents table. A
 * token is 128 random bits in hex; the table keeps its SHA-256 (a token is
 * random enough that no salt or slow hash is needed to keep it from being
 * guessed back), so reading the database gives no one a working token. */
#include "agents.h"

#include "kefu.h"
#include "store.h"

#include <openssl/evp.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>

void agents_token_hash(const char *token, char out[65])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    out[0] = 0;
    if (!EVP_Digest(token, strlen(token), md, &n, EVP_sha256(), NULL))
        return;
    for (unsigned int i = 0; i < n && i < 32; i++)
        snprintf(out + 2 * i, 3, "%02x", md[i]);
}

int agents_name_ok(const char *s)
{
    size_t n = s ? strlen(s) : 0;
    return n > 0 && n < 64 && strspn(s, "abcdefghijklmnopqrstuvwxyz0123456789_-") == n;
}

/* A new token and its hash. */
static int new_token(char token[AGENTS_TOKEN_LEN + 1], char hash[65])
{
    unsigned char raw[AGENTS_TOKEN_LEN / 2];
    size_t got = 0;
    while (got < sizeof raw) {
        ssize_t r = getrandom(raw + got, sizeof raw - got, 0);
        if (r <= 0)
            return KEFU_EIO;
        got += (size_t)r;
    }
    for (size_t i = 0; i < sizeof raw; i++)
        snprintf(token + 2 * i, 3, "%02x", raw[i]);
    agents_token_hash(token, hash);
    return *hash ? 0 : KEFU_EIO;
}

static int write(struct store *st, const struct store_agent *a, int update)
{
    struct store_batch b;
    store_batch_init(&b);
    if (update)
        store_update_agent(&b, a);
    else
        store_add_agent(&b, a);
    return store_write(st, &b);
}

int agents_add(struct store *st, const char *name, const char *skills, int capacity, long long now,
               char token[AGENTS_TOKEN_LEN + 1])
{
    *token = 0;
    size_t n = skills ? strlen(skills) : 0;
    if (!agents_name_ok(name) || n > 255 || capacity < 0 || capacity > 100 ||
        (n && strspn(skills, "abcdefghijklmnopqrstuvwxyz0123456789_.-,|*") != n))
        return KEFU_EINVAL;
    struct store_agent a = {.capacity = capacity, .created_at = now, .updated_at = now};
    snprintf(a.name, sizeof a.name, "%s", name);
    for (size_t i = 0; i < n; i++) /* the queue module's separator is '|' */
        a.skills[i] = skills[i] == ',' ? '|' : skills[i];
    int rc = new_token(token, a.token_hash);
    if (rc == 0)
        rc = write(st, &a, 0);
    if (rc < 0)
        *token = 0;
    return rc;
}

int agents_change(struct store *st, const char *name, const char *what, long long now,
                  char token[AGENTS_TOKEN_LEN + 1])
{
    *token = 0;
    int rotate = strcmp(what, "rotate") == 0, disable = strcmp(what, "disable") == 0;
    if (!rotate && !disable && strcmp(what, "enable") != 0)
        return KEFU_EINVAL;
    struct store_agent a;
    int rc = agents_name_ok(name) ? store_get_agent(st, name, 0, &a) : KEFU_ENOENT;
    if (rc == 0 && rotate)
        rc = new_token(token, a.token_hash);
    else if (rc == 0)
        a.disabled = disable;
    a.updated_at = now;
    if (rc == 0)
        rc = write(st, &a, 1);
    if (rc < 0)
        *token = 0;
    return rc;
}

/* store_agent_fn: one account as JSON. */
static int list_one(void *ctx, const struct store_agent *a)
{
    json_t *skills = json_array();
    for (const char *p = *a->skills ? a->skills : "*"; *p;) {
        size_t n = strcspn(p, "|");
        if (n)
            json_array_append_new(skills, json_stringn(p, n));
        p += n + (p[n] == '|');
    }
    json_array_append_new(ctx, json_pack("{s:s, s:s, s:o, s:i, s:I, s:I}", "name", a->name, "state",
                                         a->disabled ? "disabled" : "enabled", "skills", skills, "capacity",
                                         a->capacity > 0 ? a->capacity : 3, "created_at",
                                         (json_int_t)a->created_at, "updated_at", (json_int_t)a->updated_at));
    return 0;
}

int agents_list(struct store *st, json_t **out)
{
    *out = json_array();
    if (!*out)
        return KEFU_ENOMEM;
    int rc = store_agents(st, list_one, *out);
    if (rc < 0) {
        json_decref(*out);
        *out = NULL;
    }
    return rc;
}
