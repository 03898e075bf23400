/* queue.h — the human queue: named queues of waiting conversations,
 * agents with skills (the queues they serve) and capacity (conversations
 * at once), claims, transfers, releases, positions and waiting times.
 * It lives in memory behind one mutex; the dialog module rebuilds it from
 * the store at startup (every conversation queued or with an agent), so it
 * is correct after a restart. Times are unix seconds passed by the caller.
 *
 * Order: a conversation's key is its queue time minus a head start for
 * priority, tier and anger (docs/operations.md); the smallest key is
 * claimed first. Every waiting conversation ages at the same rate, so the
 * order never changes while they wait and no one waits forever. */
#ifndef KEFU_QUEUE_H
#define KEFU_QUEUE_H

#include <stddef.h>

struct queue; /* opaque */

#define QUEUE_NAME_MAX       32
#define QUEUE_CONV_MAX       40
#define QUEUE_AGENT_MAX      64
#define QUEUE_AGENT_ONLINE_S 120 /* an agent seen within this many seconds is online */

/* Returns a new, empty queue (free with queue_free()), NULL on OOM. */
struct queue *queue_create(void);
void queue_free(struct queue *q); /* NULL is fine */

/* Adds agent name serving skills ("general|billing"; "*" or "" = every
 * queue) with room for capacity conversations. Returns 0, KEFU_EINVAL
 * (bad or duplicate name) or KEFU_ENOMEM. */
int queue_agent_add(struct queue *q, const char *name, const char *skills, int capacity);
/* Marks the agent as online at now (any authenticated call). */
void queue_agent_seen(struct queue *q, const char *agent, long long now);
/* What an agent says of themselves in the console; only online agents count as available. */
enum queue_presence { QUEUE_ONLINE = 0, QUEUE_AWAY = 1, QUEUE_OFFLINE = 2 };
/* Sets agent's presence (enum queue_presence). Returns 0, KEFU_ENOENT or KEFU_EINVAL. */
int queue_agent_presence(struct queue *q, const char *agent, int presence);
/* Returns 1 if agent may take conversations from queue name. */
int queue_agent_serves(struct queue *q, const char *agent, const char *name);

/* What makes a conversation more urgent than its queue time. */
struct queue_entry {
    const char *conv, *queue;
    int priority;    /* rules priority 0..3 (low..urgent) */
    int vip, gold;   /* customer tier */
    int anger;       /* angry customer */
    long long since; /* when it started waiting */
};
/* Puts conversation e->conv in e->queue, waiting (moving it if it was
 * anywhere else; an agent holding it loses it). Returns 0, KEFU_EINVAL or KEFU_ENOMEM. */
int queue_push(struct queue *q, const struct queue_entry *e);
/* Records at startup that agent already holds conv (queue_push() it first). */
int queue_assign(struct queue *q, const char *conv, const char *agent);

/* Claims conv for agent (NULL: the next waiting one the agent serves) and
 * copies its id into out[QUEUE_CONV_MAX]; *waited is how long it waited.
 * Claiming a conversation the agent already holds succeeds again (*waited
 * = -1). Returns 0, KEFU_ENOENT (no such conversation, or nothing waiting),
 * KEFU_EPERM (unknown agent or not their queue), KEFU_EBUSY (agent at
 * capacity) or KEFU_ECONFLICT (another agent holds it). */
int queue_claim(struct queue *q, const char *agent, const char *conv, long long now, char *out,
                long long *waited);
/* Undoes a claim that could not be stored: conv waits again where it was. */
void queue_unclaim(struct queue *q, const char *conv);
/* conv waits again (same queue time) in queue name, or its own if NULL: a
 * transfer or a release. Returns 0 or KEFU_ENOENT. */
int queue_requeue(struct queue *q, const char *conv, const char *name);
/* Removes conv (resolved); its agent gets the capacity back. */
void queue_remove(struct queue *q, const char *conv);

/* Where conv stands: 1-based position in its queue (0 when an agent holds
 * it), the queue's name and the seconds waited so far. Returns 0 or KEFU_ENOENT. */
int queue_position(struct queue *q, const char *conv, long long now, int *position, long long *wait_s,
                   char *name);
/* Returns 1 if an online agent (seen lately, presence online) serving queue name has free capacity now. */
int queue_available(struct queue *q, const char *name, long long now);
/* Returns 1 if some configured agent serves queue name (online or not). */
int queue_known(struct queue *q, const char *name);

/* One waiting conversation, in claim order; strings borrowed for the call. */
struct queue_item {
    const char *conv, *queue, *agent; /* agent NULL while waiting */
    int priority, position;
    long long since, wait_s;
};
typedef int (*queue_item_fn)(void *ctx, const struct queue_item *it);
/* Calls fn for every waiting conversation agent serves (agent NULL: all),
 * in claim order. Returns 0 or KEFU_EPERM (unknown agent). */
int queue_list(struct queue *q, const char *agent, long long now, queue_item_fn fn, void *ctx);

/* Per-queue figures for metrics; called per queue with waiting conversations or agents. */
typedef void (*queue_stat_fn)(void *ctx, const char *name, size_t waiting, size_t with_agents);
void queue_stats(struct queue *q, queue_stat_fn fn, void *ctx);

#endif
