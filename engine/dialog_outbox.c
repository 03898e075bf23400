/* dialog_outbox.c — the events dialog announces to webhooks. Each change
 * an operator's systems may want to hear about (a handoff, a claim, an
 * agent's message, a resolve, a rating, a VIP escalation) adds one outbox
 * event to the very batch that stores the change, so the event exists
 * exactly when the change does: a crash before the commit loses both,
 * after it neither. A red line's crossing belongs to no conversation: its
 * event is a batch of its own, under the conversation key "".
 * The webhook sender (webhook.c) delivers the rows; nothing here waits on
 * the network. */
#include "dialog_int.h"

#include "kefu.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

static const char *const event_names[] = {"handoff",         "claim",    "agent_message",
                                          "resolve",         "feedback", "redline.breached",
                                          "redline.cleared", "escalated"};
#define N_EVENTS (sizeof event_names / sizeof *event_names)

const char *dialog_event_name(unsigned ev)
{
    for (size_t i = 0; i < N_EVENTS; i++)
        if (ev == 1u << i)
            return event_names[i];
    return "";
}

int dialog_event_parse(const char *list, unsigned *mask)
{
    *mask = 0;
    const char *p = list;
    while (p && *p) {
        size_t n = strcspn(p, ",");
        size_t i = 0;
        while (i < N_EVENTS && !(strlen(event_names[i]) == n && strncmp(p, event_names[i], n) == 0))
            i++;
        if (i == N_EVENTS)
            return KEFU_EINVAL;
        *mask |= 1u << i;
        p += n + (p[n] == ',');
    }
    return *mask ? 0 : KEFU_EINVAL;
}

int dialog_outbox_init(struct dialog *d, const struct dialog_config *cfg)
{
    if (cfg->n_outbox > DIALOG_OUTBOX_MAX)
        return KEFU_EINVAL;
    for (int i = 0; i < cfg->n_outbox; i++) {
        const char *name = cfg->outbox[i].name;
        char *copy = name ? kefu_strndup(name, strlen(name)) : NULL;
        if (!copy)
            return name ? KEFU_ENOMEM : KEFU_EINVAL;
        d->outbox[d->n_outbox].name = copy;
        d->outbox[d->n_outbox++].events = cfg->outbox[i].events;
    }
    return 0;
}

void dialog_outbox_free(struct dialog *d)
{
    for (int i = 0; i < d->n_outbox; i++)
        free((char *)d->outbox[i].name);
    d->n_outbox = 0;
}

int dialog_outbox_wants(struct dialog *d, unsigned ev)
{
    for (int i = 0; i < d->n_outbox; i++)
        if (d->outbox[i].events & ev)
            return 1;
    return 0;
}

void dialog_out_release(struct dialog_out *e)
{
    free(e->body);
    e->body = NULL;
}

/* "ev_" and 32 hex digits of getrandom(); 0 or KEFU_EIO. */
static int event_id(char out[40])
{
    unsigned char raw[16];
    size_t got = 0;
    while (got < sizeof raw) {
        ssize_t r = getrandom(raw + got, sizeof raw - got, 0);
        if (r <= 0)
            return KEFU_EIO;
        got += (size_t)r;
    }
    memcpy(out, "ev_", 3);
    for (size_t i = 0; i < sizeof raw; i++)
        snprintf(out + 3 + 2 * i, 3, "%02x", raw[i]);
    return 0;
}

int dialog_outbox_add(struct dialog *d, struct store_batch *b, struct dialog_out *e, unsigned ev,
                      const char *conv, long long at, json_t *fields)
{
    int n = 0;
    for (int i = 0; i < d->n_outbox; i++)
        if (d->outbox[i].events & ev)
            e->targets[n++] = d->outbox[i].name;
    e->targets[n] = NULL;
    if (n == 0)
        return 0;
    if (event_id(e->id) < 0)
        return KEFU_EIO;
    json_t *body =
        json_pack("{s:s, s:s, s:I}", "id", e->id, "event", dialog_event_name(ev), "at", (json_int_t)at);
    if (body && conv)
        json_object_set_new(body, "conversation", json_string(conv));
    if (body && fields)
        json_object_update_missing(body, fields);
    e->body = body ? json_dumps(body, JSON_COMPACT | JSON_REAL_PRECISION(6)) : NULL;
    json_decref(body);
    if (!e->body)
        return KEFU_ENOMEM;
    return store_add_outbox(b, conv ? conv : "", at, dialog_event_name(ev), e->id, e->body, e->targets);
}
