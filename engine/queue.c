/* queue.c — named queues, agents, claims and positions, in memory.
 * Conversations and agents are two arrays behind one mutex. A conversation
 * is found through a hash index of its id (a handoff looks its own up three
 * times, and a surge leaves thousands waiting); the other operations are
 * linear scans, which stay well under a millisecond for the few thousand
 * conversations a shop has waiting at once. The order key is
 * fixed when a conversation starts waiting (see queue.h), so positions are
 * a count of smaller keys in the same queue. */
#include "queue.h"

#include "kefu.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Head starts in seconds (docs/operations.md). */
static const long long prio_head[4] = {0, 300, 900, 1800}; /* low, normal, high, urgent */
#define VIP_HEAD   600
#define GOLD_HEAD  120
#define ANGER_HEAD 300

struct item {
    char conv[QUEUE_CONV_MAX], queue[QUEUE_NAME_MAX];
    int agent; /* index into agents, -1 while waiting */
    int priority;
    long long since, key, order; /* key: since minus head start; order: push counter, breaks ties */
};

struct agent {
    char name[QUEUE_AGENT_MAX];
    char *skills; /* "|general|billing|" or NULL for every queue; owned */
    int capacity, load;
    long long seen;
    int presence; /* enum queue_presence */
};

struct queue {
    pthread_mutex_t lock;
    struct item *items;
    size_t n, cap;
    size_t *slot;   /* open addressing, linear probing: 1 + an index into items, 0 empty */
    size_t n_slots; /* a power of two, at least twice cap */
    struct agent *agents;
    size_t n_agents, cap_agents;
    long long pushes;
};

struct queue *queue_create(void)
{
    struct queue *q = kefu_calloc(1, sizeof *q);
    if (q)
        pthread_mutex_init(&q->lock, NULL);
    return q;
}

void queue_free(struct queue *q)
{
    if (!q)
        return;
    for (size_t i = 0; i < q->n_agents; i++)
        free(q->agents[i].skills);
    free(q->agents);
    free(q->items);
    free(q->slot);
    pthread_mutex_destroy(&q->lock);
    free(q);
}

static int find_agent(const struct queue *q, const char *name)
{
    for (size_t i = 0; name && i < q->n_agents; i++)
        if (strcmp(q->agents[i].name, name) == 0)
            return (int)i;
    return -1;
}

static size_t conv_hash(const char *s)
{
    size_t h = 1469598103934665603ull;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h ^ (h >> 31);
}

/* The index slot holding conv, or the empty one where it would go. */
static size_t slot_of(const struct queue *q, const char *conv)
{
    size_t m = q->n_slots - 1, k = conv_hash(conv) & m;
    while (q->slot[k] && strcmp(q->items[q->slot[k] - 1].conv, conv) != 0)
        k = (k + 1) & m;
    return k;
}

static struct item *find_item(struct queue *q, const char *conv)
{
    if (!q->n)
        return NULL;
    size_t k = slot_of(q, conv);
    return q->slot[k] ? &q->items[q->slot[k] - 1] : NULL;
}

/* Indexes items[i] (its id not indexed yet). */
static void index_add(struct queue *q, size_t i)
{
    q->slot[slot_of(q, q->items[i].conv)] = i + 1;
}

/* Removes items[i] from the index, closing the gap so that every id after
 * it in its probe run stays reachable (no tombstones). */
static void index_del(struct queue *q, size_t i)
{
    size_t m = q->n_slots - 1, k = slot_of(q, q->items[i].conv);
    q->slot[k] = 0;
    for (size_t j = (k + 1) & m; q->slot[j]; j = (j + 1) & m) {
        size_t home = conv_hash(q->items[q->slot[j] - 1].conv) & m;
        /* j's entry may move into the gap k unless its home lies cyclically in (k, j] */
        if ((j > k && (home <= k || home > j)) || (j < k && home <= k && home > j)) {
            q->slot[k] = q->slot[j];
            q->slot[j] = 0;
            k = j;
        }
    }
}

/* Removes items[i]: the last item takes its place. */
static void remove_item(struct queue *q, size_t i)
{
    index_del(q, i);
    if (i != q->n - 1) {
        index_del(q, q->n - 1);
        q->items[i] = q->items[q->n - 1];
        q->n--;
        index_add(q, i);
    } else {
        q->n--;
    }
}

/* Room for one more item (the array and its index). Returns 0 or KEFU_ENOMEM. */
static int grow(struct queue *q)
{
    if (q->n < q->cap)
        return 0;
    size_t cap = q->cap ? q->cap * 2 : 64, n_slots = 4 * cap;
    struct item *v = kefu_realloc(q->items, cap * sizeof *v);
    if (!v)
        return KEFU_ENOMEM;
    q->items = v;
    size_t *s = kefu_calloc(n_slots, sizeof *s);
    if (!s)
        return KEFU_ENOMEM;
    q->cap = cap;
    free(q->slot);
    q->slot = s;
    q->n_slots = n_slots;
    for (size_t i = 0; i < q->n; i++)
        index_add(q, i);
    return 0;
}

static int serves(const struct agent *a, const char *name)
{
    if (!a->skills)
        return 1;
    char key[QUEUE_NAME_MAX + 2];
    snprintf(key, sizeof key, "|%s|", name);
    return strstr(a->skills, key) != NULL;
}

/* Turns "general|billing" into "|general|billing|"; "*" and "" into NULL. */
static int skills_copy(const char *skills, char **out)
{
    *out = NULL;
    if (!skills || !*skills || strcmp(skills, "*") == 0)
        return 0;
    size_t n = strlen(skills);
    if (!(*out = kefu_malloc(n + 3)))
        return KEFU_ENOMEM;
    snprintf(*out, n + 3, "|%s|", skills);
    return 0;
}

int queue_agent_add(struct queue *q, const char *name, const char *skills, int capacity)
{
    if (!name || !*name || strlen(name) >= QUEUE_AGENT_MAX || capacity < 1)
        return KEFU_EINVAL;
    pthread_mutex_lock(&q->lock);
    int rc = find_agent(q, name) >= 0 ? KEFU_EINVAL : 0;
    if (rc == 0 && q->n_agents == q->cap_agents) {
        size_t cap = q->cap_agents ? q->cap_agents * 2 : 8;
        struct agent *v = kefu_realloc(q->agents, cap * sizeof *v);
        if (v)
            q->agents = v, q->cap_agents = cap;
        else
            rc = KEFU_ENOMEM;
    }
    if (rc == 0) {
        struct agent *a = &q->agents[q->n_agents];
        memset(a, 0, sizeof *a);
        snprintf(a->name, sizeof a->name, "%s", name);
        a->capacity = capacity;
        if ((rc = skills_copy(skills, &a->skills)) == 0)
            q->n_agents++;
    }
    pthread_mutex_unlock(&q->lock);
    return rc;
}

void queue_agent_seen(struct queue *q, const char *agent, long long now)
{
    pthread_mutex_lock(&q->lock);
    int a = find_agent(q, agent);
    if (a >= 0)
        q->agents[a].seen = now;
    pthread_mutex_unlock(&q->lock);
}

int queue_agent_presence(struct queue *q, const char *agent, int presence)
{
    if (presence < QUEUE_ONLINE || presence > QUEUE_OFFLINE)
        return KEFU_EINVAL;
    pthread_mutex_lock(&q->lock);
    int a = find_agent(q, agent);
    if (a >= 0)
        q->agents[a].presence = presence;
    pthread_mutex_unlock(&q->lock);
    return a >= 0 ? 0 : KEFU_ENOENT;
}

int queue_agent_serves(struct queue *q, const char *agent, const char *name)
{
    pthread_mutex_lock(&q->lock);
    int a = find_agent(q, agent);
    int ok = a >= 0 && serves(&q->agents[a], name);
    pthread_mutex_unlock(&q->lock);
    return ok;
}

static long long head_start(const struct queue_entry *e)
{
    int p = e->priority < 0 ? 0 : e->priority > 3 ? 3 : e->priority;
    return prio_head[p] + (e->vip ? VIP_HEAD : e->gold ? GOLD_HEAD : 0) + (e->anger ? ANGER_HEAD : 0);
}

/* Frees the capacity its agent held; it waits again. */
static void unhold(struct queue *q, struct item *it)
{
    if (it->agent >= 0 && q->agents[it->agent].load > 0)
        q->agents[it->agent].load--;
    it->agent = -1;
}

static int entry_ok(const struct queue_entry *e)
{
    return e->conv && e->queue && strlen(e->conv) < QUEUE_CONV_MAX && *e->queue &&
           strlen(e->queue) < QUEUE_NAME_MAX;
}

/* queue_push() with the lock held. */
static int push_locked(struct queue *q, const struct queue_entry *e)
{
    struct item *it = find_item(q, e->conv);
    if (!it && grow(q) < 0)
        return KEFU_ENOMEM;
    if (!it) {
        it = &q->items[q->n++];
        memset(it, 0, sizeof *it);
        it->agent = -1;
        snprintf(it->conv, sizeof it->conv, "%s", e->conv);
        index_add(q, q->n - 1);
    }
    unhold(q, it);
    snprintf(it->queue, sizeof it->queue, "%s", e->queue);
    it->priority = e->priority;
    it->since = e->since;
    it->key = e->since - head_start(e);
    it->order = q->pushes++;
    return 0;
}

int queue_push(struct queue *q, const struct queue_entry *e)
{
    if (!entry_ok(e))
        return KEFU_EINVAL;
    pthread_mutex_lock(&q->lock);
    int rc = push_locked(q, e);
    pthread_mutex_unlock(&q->lock);
    return rc;
}

int queue_has(struct queue *q, const char *conv, const char *name, long long since)
{
    pthread_mutex_lock(&q->lock);
    const struct item *it = find_item(q, conv);
    int has = it && strcmp(it->queue, name) == 0 && it->since == since;
    pthread_mutex_unlock(&q->lock);
    return has;
}

/* Index of conv in e[n], or -1. */
static long entry_of(const struct queue_entry *e, size_t n, const char *conv)
{
    for (size_t k = 0; k < n; k++)
        if (strcmp(e[k].conv, conv) == 0)
            return (long)k;
    return -1;
}

int queue_sync(struct queue *q, const struct queue_entry *e, const char *const *holder, size_t n,
               long long keep_since)
{
    for (size_t k = 0; k < n; k++)
        if (!entry_ok(&e[k]))
            return KEFU_EINVAL;
    pthread_mutex_lock(&q->lock);
    for (size_t i = q->n; i-- > 0;) /* gone from the database: claimed away, resolved, erased */
        if (q->items[i].since < keep_since && entry_of(e, n, q->items[i].conv) < 0) {
            unhold(q, &q->items[i]);
            remove_item(q, i);
        }
    int rc = 0;
    for (size_t k = 0; k < n && rc == 0; k++) {
        struct item *it = find_item(q, e[k].conv);
        if (!it || strcmp(it->queue, e[k].queue) != 0 || it->since != e[k].since) {
            if ((rc = push_locked(q, &e[k])) < 0)
                break;
            it = find_item(q, e[k].conv);
        }
        int a = holder[k] ? find_agent(q, holder[k]) : -1;
        if (it->agent != a) {
            unhold(q, it);
            it->agent = a;
            if (a >= 0)
                q->agents[a].load++;
        }
    }
    pthread_mutex_unlock(&q->lock);
    return rc;
}

int queue_assign(struct queue *q, const char *conv, const char *agent)
{
    pthread_mutex_lock(&q->lock);
    struct item *it = find_item(q, conv);
    int a = find_agent(q, agent);
    int rc = !it ? KEFU_ENOENT : a < 0 ? KEFU_EPERM : 0;
    if (rc == 0) {
        unhold(q, it);
        it->agent = a;
        q->agents[a].load++; /* may exceed capacity after a config change: it only blocks new claims */
    }
    pthread_mutex_unlock(&q->lock);
    return rc;
}

static int before(const struct item *x, const struct item *y)
{
    return x->key < y->key || (x->key == y->key && x->order < y->order);
}

/* The next waiting conversation agent a serves, or NULL. */
static struct item *next_for(struct queue *q, const struct agent *a)
{
    struct item *best = NULL;
    for (size_t i = 0; i < q->n; i++) {
        struct item *it = &q->items[i];
        if (it->agent < 0 && serves(a, it->queue) && (!best || before(it, best)))
            best = it;
    }
    return best;
}

/* Checks and takes conv (or the next one) for agent index a; lock held. */
static int claim_locked(struct queue *q, int a, const char *conv, long long now, char *out, long long *waited)
{
    struct agent *ag = &q->agents[a];
    struct item *it = conv ? find_item(q, conv) : NULL;
    if (conv && !it)
        return KEFU_ENOENT;
    if (it && it->agent == a) {
        snprintf(out, QUEUE_CONV_MAX, "%s", it->conv);
        *waited = -1;
        return 0;
    }
    if (it && it->agent >= 0)
        return KEFU_ECONFLICT;
    if (it && !serves(ag, it->queue))
        return KEFU_EPERM;
    if (ag->load >= ag->capacity)
        return KEFU_EBUSY;
    if (!it && !(it = next_for(q, ag)))
        return KEFU_ENOENT;
    it->agent = a;
    ag->load++;
    ag->seen = now;
    snprintf(out, QUEUE_CONV_MAX, "%s", it->conv);
    *waited = now > it->since ? now - it->since : 0;
    return 0;
}

int queue_claim(struct queue *q, const char *agent, const char *conv, long long now, char *out,
                long long *waited)
{
    pthread_mutex_lock(&q->lock);
    int a = find_agent(q, agent);
    int rc = a < 0 ? KEFU_EPERM : claim_locked(q, a, conv, now, out, waited);
    pthread_mutex_unlock(&q->lock);
    return rc;
}

void queue_unclaim(struct queue *q, const char *conv)
{
    pthread_mutex_lock(&q->lock);
    struct item *it = find_item(q, conv);
    if (it)
        unhold(q, it);
    pthread_mutex_unlock(&q->lock);
}

int queue_requeue(struct queue *q, const char *conv, const char *name)
{
    if (name && (!*name || strlen(name) >= QUEUE_NAME_MAX))
        return KEFU_EINVAL;
    pthread_mutex_lock(&q->lock);
    struct item *it = find_item(q, conv);
    if (it) {
        unhold(q, it);
        if (name)
            snprintf(it->queue, sizeof it->queue, "%s", name);
    }
    pthread_mutex_unlock(&q->lock);
    return it ? 0 : KEFU_ENOENT;
}

void queue_remove(struct queue *q, const char *conv)
{
    pthread_mutex_lock(&q->lock);
    struct item *it = find_item(q, conv);
    if (it) {
        unhold(q, it);
        remove_item(q, (size_t)(it - q->items));
    }
    pthread_mutex_unlock(&q->lock);
}

/* 1-based position of a waiting item in its queue; lock held. */
static int position_of(const struct queue *q, const struct item *it)
{
    int pos = 1;
    for (size_t i = 0; i < q->n; i++) {
        const struct item *o = &q->items[i];
        pos += o->agent < 0 && before(o, it) && strcmp(o->queue, it->queue) == 0; /* it is not before it */
    }
    return pos;
}

int queue_position(struct queue *q, const char *conv, long long now, int *position, long long *wait_s,
                   char *name)
{
    pthread_mutex_lock(&q->lock);
    struct item *it = find_item(q, conv);
    if (it) {
        *position = it->agent >= 0 ? 0 : position_of(q, it);
        *wait_s = now > it->since ? now - it->since : 0;
        snprintf(name, QUEUE_NAME_MAX, "%s", it->queue);
    }
    pthread_mutex_unlock(&q->lock);
    return it ? 0 : KEFU_ENOENT;
}

int queue_available(struct queue *q, const char *name, long long now)
{
    int ok = 0;
    pthread_mutex_lock(&q->lock);
    for (size_t i = 0; i < q->n_agents && !ok; i++) {
        const struct agent *a = &q->agents[i];
        ok = a->seen && now - a->seen <= QUEUE_AGENT_ONLINE_S && a->presence == QUEUE_ONLINE &&
             a->load < a->capacity && serves(a, name);
    }
    pthread_mutex_unlock(&q->lock);
    return ok;
}

int queue_known(struct queue *q, const char *name)
{
    int ok = 0;
    pthread_mutex_lock(&q->lock);
    for (size_t i = 0; i < q->n_agents && !ok; i++)
        ok = serves(&q->agents[i], name);
    pthread_mutex_unlock(&q->lock);
    return ok;
}

static int cmp_items(const void *a, const void *b)
{
    const struct item *x = *(const struct item *const *)a, *y = *(const struct item *const *)b;
    return before(x, y) ? -1 : before(y, x) ? 1 : 0;
}

/* Sorted pointers to the waiting items agent index a serves (a < 0: all); new array. */
static const struct item **waiting_for(struct queue *q, int a, size_t *n)
{
    const struct item **v = kefu_calloc(q->n + 1, sizeof *v);
    *n = 0;
    if (!v)
        return NULL;
    for (size_t i = 0; i < q->n; i++)
        if (q->items[i].agent < 0 && (a < 0 || serves(&q->agents[a], q->items[i].queue)))
            v[(*n)++] = &q->items[i];
    qsort(v, *n, sizeof *v, cmp_items);
    return v;
}

int queue_list(struct queue *q, const char *agent, long long now, queue_item_fn fn, void *ctx)
{
    pthread_mutex_lock(&q->lock);
    int a = agent ? find_agent(q, agent) : -1;
    if (agent && a < 0) {
        pthread_mutex_unlock(&q->lock);
        return KEFU_EPERM;
    }
    size_t n;
    const struct item **v = waiting_for(q, a, &n);
    int rc = v ? 0 : KEFU_ENOMEM;
    for (size_t i = 0; i < n; i++) {
        struct queue_item qi = {v[i]->conv,
                                v[i]->queue,
                                NULL,
                                v[i]->priority,
                                position_of(q, v[i]),
                                v[i]->since,
                                now > v[i]->since ? now - v[i]->since : 0};
        if (fn(ctx, &qi))
            break;
    }
    free(v);
    pthread_mutex_unlock(&q->lock);
    return rc;
}

void queue_stats(struct queue *q, queue_stat_fn fn, void *ctx)
{
    pthread_mutex_lock(&q->lock);
    for (size_t i = 0; i < q->n; i++) {
        size_t j = 0, waiting = 0, held = 0;
        while (j < i && strcmp(q->items[j].queue, q->items[i].queue) != 0)
            j++;
        if (j < i)
            continue; /* counted with its first item */
        for (j = i; j < q->n; j++)
            if (strcmp(q->items[j].queue, q->items[i].queue) == 0)
                q->items[j].agent < 0 ? waiting++ : held++;
        fn(ctx, q->items[i].queue, waiting, held);
    }
    pthread_mutex_unlock(&q->lock);
}
