/* test_queue.c — the human queue: claim order by priority, tier, anger
 * and waiting time; skills and capacity; claims that repeat; transfers,
 * releases and resolves; positions and waiting times at every moment. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kefu.h"
#include "queue.h"

static struct queue *fresh(void)
{
    struct queue *q = queue_create();
    assert_non_null(q);
    assert_int_equal(queue_agent_add(q, "amy", "general|billing", 2), 0);
    assert_int_equal(queue_agent_add(q, "bob", "complaints", 1), 0);
    assert_int_equal(queue_agent_add(q, "cat", "*", 10), 0);
    return q;
}

static void push(struct queue *q, const char *conv, const char *name, int prio, int vip, int anger,
                 long long since)
{
    struct queue_entry e = {conv, name, prio, vip, 0, anger, since};
    assert_int_equal(queue_push(q, &e), 0);
}

static void claim(struct queue *q, const char *agent, const char *conv, long long now, int want,
                  const char *expect)
{
    char got[QUEUE_CONV_MAX] = "";
    long long waited;
    int rc = queue_claim(q, agent, conv, now, got, &waited);
    if (rc != want)
        fail_msg("claim %s by %s: %d, expected %d", conv ? conv : "(next)", agent, rc, want);
    if (expect)
        assert_string_equal(got, expect);
}

/* 1.1 agents: names are unique, capacity at least 1, skills decide what they serve */
static void test_agents(void **state)
{
    struct queue *q = fresh();
    assert_int_equal(queue_agent_add(q, "amy", "*", 1), KEFU_EINVAL);
    assert_int_equal(queue_agent_add(q, "zed", "*", 0), KEFU_EINVAL);
    assert_int_equal(queue_agent_add(q, "", "*", 1), KEFU_EINVAL);
    assert_true(queue_agent_serves(q, "amy", "billing"));
    assert_false(queue_agent_serves(q, "amy", "bill"));
    assert_false(queue_agent_serves(q, "amy", "complaints"));
    assert_true(queue_agent_serves(q, "cat", "anything"));
    assert_false(queue_agent_serves(q, "nobody", "general"));
    assert_true(queue_known(q, "complaints"));
    queue_free(q);
}

/* 2.1 claim order: priority, then VIP, then anger give a head start; otherwise first come */
static void test_order(void **state)
{
    struct queue *q = fresh();
    push(q, "plain-early", "general", 1, 0, 0, 1000);
    push(q, "plain-late", "general", 1, 0, 0, 1100);
    push(q, "high", "general", 2, 0, 0, 1500);   /* head start 900 − 300 over normal */
    push(q, "vip", "general", 1, 1, 0, 1500);    /* head start 600 */
    push(q, "angry", "general", 1, 0, 1, 1250);  /* head start 300 */
    push(q, "low-old", "general", 0, 0, 0, 200); /* waited so long it is first */
    const char *order[] = {"low-old", "high", "vip", "angry", "plain-early", "plain-late"};
    for (int i = 0; i < 6; i++) {
        int pos;
        long long wait;
        char name[QUEUE_NAME_MAX];
        assert_int_equal(queue_position(q, order[i], 2000, &pos, &wait, name), 0);
        if (pos != i + 1)
            fail_msg("%s at position %d, expected %d", order[i], pos, i + 1);
        assert_string_equal(name, "general");
    }
    for (int i = 0; i < 6; i++)
        claim(q, "cat", NULL, 2000, 0, order[i]);
    queue_free(q);
}

/* 2.2 positions and waiting times move as others are claimed and time passes */
static void test_positions(void **state)
{
    struct queue *q = fresh();
    push(q, "a", "billing", 1, 0, 0, 100);
    push(q, "b", "billing", 1, 0, 0, 110);
    push(q, "c", "general", 1, 0, 0, 120);
    int pos;
    long long wait;
    char name[QUEUE_NAME_MAX];
    assert_int_equal(queue_position(q, "b", 130, &pos, &wait, name), 0);
    assert_int_equal(pos, 2);
    assert_int_equal(wait, 20);
    assert_int_equal(queue_position(q, "c", 130, &pos, &wait, name), 0);
    assert_int_equal(pos, 1); /* positions count within one queue */
    claim(q, "amy", "a", 140, 0, "a");
    assert_int_equal(queue_position(q, "b", 200, &pos, &wait, name), 0);
    assert_int_equal(pos, 1);
    assert_int_equal(wait, 90);
    assert_int_equal(queue_position(q, "a", 200, &pos, &wait, name), 0);
    assert_int_equal(pos, 0); /* with an agent */
    assert_int_equal(queue_position(q, "zz", 200, &pos, &wait, name), KEFU_ENOENT);
    queue_free(q);
}

/* 3.1 skills: an agent claims only from the queues they serve */
static void test_skills(void **state)
{
    struct queue *q = fresh();
    push(q, "comp", "complaints", 2, 0, 0, 100);
    push(q, "gen", "general", 1, 0, 0, 200);
    claim(q, "amy", "comp", 300, KEFU_EPERM, NULL);
    claim(q, "amy", NULL, 300, 0, "gen"); /* the complaint is older and higher but not hers */
    claim(q, "bob", NULL, 300, 0, "comp");
    claim(q, "nobody", NULL, 300, KEFU_EPERM, NULL);
    claim(q, "cat", NULL, 300, KEFU_ENOENT, NULL); /* nothing left */
    claim(q, "cat", "missing", 300, KEFU_ENOENT, NULL);
    queue_free(q);
}

/* 3.2 capacity: bob holds one at most; resolving frees the place */
static void test_capacity(void **state)
{
    struct queue *q = fresh();
    push(q, "c1", "complaints", 1, 0, 0, 100);
    push(q, "c2", "complaints", 1, 0, 0, 110);
    claim(q, "bob", NULL, 200, 0, "c1");
    claim(q, "bob", NULL, 200, KEFU_EBUSY, NULL);
    claim(q, "bob", "c2", 200, KEFU_EBUSY, NULL);
    queue_agent_seen(q, "bob", 200);
    assert_false(queue_available(q, "complaints", 200)); /* bob is full */
    queue_remove(q, "c1");
    assert_true(queue_available(q, "complaints", 200));
    assert_false(queue_available(q, "complaints", 200 + QUEUE_AGENT_ONLINE_S + 1)); /* bob went quiet */
    assert_int_equal(queue_agent_presence(q, "bob", QUEUE_AWAY), 0);                /* bob says he is away */
    assert_false(queue_available(q, "complaints", 200));
    assert_int_equal(queue_agent_presence(q, "bob", QUEUE_OFFLINE), 0);
    assert_false(queue_available(q, "complaints", 200));
    assert_int_equal(queue_agent_presence(q, "bob", QUEUE_ONLINE), 0);
    assert_true(queue_available(q, "complaints", 200));
    assert_int_equal(queue_agent_presence(q, "nobody", QUEUE_AWAY), KEFU_ENOENT);
    assert_int_equal(queue_agent_presence(q, "bob", 7), KEFU_EINVAL);
    claim(q, "bob", NULL, 210, 0, "c2");
    queue_free(q);
}

/* 3.3 repeating a claim succeeds without taking more capacity; another agent's is a conflict */
static void test_claim_again(void **state)
{
    struct queue *q = fresh();
    push(q, "g", "general", 1, 0, 0, 100);
    push(q, "h", "general", 1, 0, 0, 110);
    claim(q, "amy", "g", 200, 0, "g");
    char got[QUEUE_CONV_MAX];
    long long waited;
    assert_int_equal(queue_claim(q, "amy", "g", 300, got, &waited), 0);
    assert_int_equal(waited, -1);
    claim(q, "cat", "g", 300, KEFU_ECONFLICT, NULL);
    claim(q, "amy", "h", 300, 0, "h"); /* capacity 2: the repeat did not count */
    queue_free(q);
}

/* 4.1 transfer keeps the waiting time and frees the agent; release puts it back in place */
static void test_transfer_release(void **state)
{
    struct queue *q = fresh();
    push(q, "t", "general", 1, 0, 0, 100);
    push(q, "u", "billing", 1, 0, 0, 150);
    claim(q, "amy", "t", 200, 0, "t");
    assert_int_equal(queue_requeue(q, "t", "complaints"), 0);
    int pos;
    long long wait;
    char name[QUEUE_NAME_MAX];
    assert_int_equal(queue_position(q, "t", 400, &pos, &wait, name), 0);
    assert_string_equal(name, "complaints");
    assert_int_equal(pos, 1);
    assert_int_equal(wait, 300);
    claim(q, "amy", "t", 400, KEFU_EPERM, NULL); /* no longer her queue */
    claim(q, "bob", NULL, 400, 0, "t");
    assert_int_equal(queue_requeue(q, "t", NULL), 0); /* release */
    assert_int_equal(queue_position(q, "t", 400, &pos, &wait, name), 0);
    assert_string_equal(name, "complaints");
    assert_int_equal(pos, 1);
    claim(q, "bob", NULL, 400, 0, "t"); /* bob's place came back */
    assert_int_equal(queue_requeue(q, "nope", NULL), KEFU_ENOENT);
    assert_int_equal(queue_requeue(q, "t", ""), KEFU_EINVAL);
    queue_free(q);
}

/* 4.2 unclaim puts a conversation back where it was (a claim that failed to store) */
static void test_unclaim(void **state)
{
    struct queue *q = fresh();
    push(q, "a", "general", 1, 0, 0, 100);
    push(q, "b", "general", 1, 0, 0, 200);
    claim(q, "amy", NULL, 300, 0, "a");
    queue_unclaim(q, "a");
    int pos;
    long long wait;
    char name[QUEUE_NAME_MAX];
    assert_int_equal(queue_position(q, "a", 300, &pos, &wait, name), 0);
    assert_int_equal(pos, 1);
    claim(q, "amy", NULL, 300, 0, "a");
    claim(q, "amy", NULL, 300, 0, "b"); /* capacity 2 intact */
    queue_free(q);
}

/* 5.1 rebuilt after a restart: assigned conversations count against capacity */
static void test_assign(void **state)
{
    struct queue *q = fresh();
    push(q, "x", "complaints", 1, 0, 0, 100);
    push(q, "y", "complaints", 1, 0, 0, 100);
    assert_int_equal(queue_assign(q, "x", "bob"), 0);
    assert_int_equal(queue_assign(q, "x", "nobody"), KEFU_EPERM);
    assert_int_equal(queue_assign(q, "zz", "bob"), KEFU_ENOENT);
    claim(q, "bob", "y", 200, KEFU_EBUSY, NULL);
    claim(q, "bob", "x", 200, 0, "x"); /* already his */
    queue_free(q);
}

struct listed {
    char convs[8][QUEUE_CONV_MAX];
    int pos[8];
    int n;
};

static int list_fn(void *ctx, const struct queue_item *it)
{
    struct listed *l = ctx;
    snprintf(l->convs[l->n], QUEUE_CONV_MAX, "%s", it->conv);
    l->pos[l->n++] = it->position;
    return 0;
}

static void stat_fn(void *ctx, const char *name, size_t waiting, size_t held)
{
    int *sum = ctx;
    *sum += (int)(waiting * 10 + held);
}

/* 7.1 sync: the queue becomes what the database holds; a conversation
 * claimed on another node is held there (capacity counts it), one gone is
 * dropped unless it was pushed here since keep_since, known ones keep their order */
static void test_sync(void **state)
{
    struct queue *q = fresh();
    push(q, "g1", "general", 1, 1, 0, 100); /* vip: a head start the sync must keep */
    push(q, "g2", "general", 1, 0, 0, 90);
    push(q, "gone", "general", 1, 0, 0, 50);
    push(q, "fresh", "general", 1, 0, 0, 500); /* pushed here, its commit on its way */
    assert_int_equal(queue_has(q, "g1", "general", 100), 1);
    assert_int_equal(queue_has(q, "g1", "billing", 100), 0);
    assert_int_equal(queue_has(q, "g1", "general", 101), 0);
    struct queue_entry e[] = {
        {"g1", "general", 1, 0, 0, 0, 100},
        {"g2", "general", 1, 0, 0, 0, 90},
        {"b9", "billing", 1, 0, 0, 0, 120}, /* queued on another node */
    };
    const char *holder[] = {NULL, "amy", NULL}; /* g2 claimed by amy on another node */
    assert_int_equal(queue_sync(q, e, holder, 3, 400), 0);
    int pos;
    long long wait;
    char name[QUEUE_NAME_MAX];
    assert_int_equal(queue_position(q, "gone", 450, &pos, &wait, name), KEFU_ENOENT);
    assert_int_equal(queue_position(q, "fresh", 600, &pos, &wait, name), 0);
    assert_int_equal(queue_position(q, "g2", 450, &pos, &wait, name), 0);
    assert_int_equal(pos, 0); /* held */
    assert_int_equal(queue_position(q, "b9", 450, &pos, &wait, name), 0);
    assert_string_equal(name, "billing");
    claim(q, "cat", "g2", 450, KEFU_ECONFLICT, NULL);
    claim(q, "cat", NULL, 450, 0, "g1"); /* g1 kept its vip head start over fresh */
    claim(q, "amy", NULL, 450, 0, "b9");
    claim(q, "amy", NULL, 450, KEFU_EBUSY, NULL); /* g2 and b9: amy's capacity of 2 */
    holder[1] = NULL; /* amy let g2 go on the other node, and the database has b9 waiting */
    assert_int_equal(queue_sync(q, e, holder, 3, 400), 0);
    assert_int_equal(queue_position(q, "b9", 450, &pos, &wait, name), 0);
    assert_int_equal(pos, 1); /* waiting again: a claim the database does not hold does not count */
    claim(q, "amy", "g2", 450, 0, "g2");
    struct queue_entry bad = {"x", "", 1, 0, 0, 0, 1};
    const char *none = NULL;
    assert_int_equal(queue_sync(q, &bad, &none, 1, 0), KEFU_EINVAL);
    queue_free(q);
}

/* 6.1 an agent's list holds their queues only, in claim order, with positions */
static void test_list(void **state)
{
    struct queue *q = fresh();
    push(q, "g2", "general", 1, 0, 0, 200);
    push(q, "c1", "complaints", 1, 0, 0, 50);
    push(q, "b1", "billing", 1, 0, 0, 150);
    push(q, "g1", "general", 1, 0, 0, 100);
    struct listed l = {0};
    assert_int_equal(queue_list(q, "amy", 300, list_fn, &l), 0);
    assert_int_equal(l.n, 3);
    assert_string_equal(l.convs[0], "g1");
    assert_string_equal(l.convs[1], "b1");
    assert_string_equal(l.convs[2], "g2");
    assert_int_equal(l.pos[1], 1); /* first in billing */
    assert_int_equal(l.pos[2], 2); /* second in general */
    memset(&l, 0, sizeof l);
    assert_int_equal(queue_list(q, NULL, 300, list_fn, &l), 0);
    assert_int_equal(l.n, 4);
    assert_int_equal(queue_list(q, "nobody", 300, list_fn, &l), KEFU_EPERM);
    claim(q, "bob", NULL, 300, 0, "c1");
    int sum = 0;
    queue_stats(q, stat_fn, &sum);
    assert_int_equal(sum, 20 + 10 + 1); /* general 2 waiting, billing 1, complaints 1 held */
    queue_free(q);
}

/* 6.2 thousands waiting: every conversation is found by its id after
 * removals in scattered order (each moves the last one into its place),
 * pushes that move conversations between queues, and the index's growth;
 * positions count the earlier ones of the same queue */
static void test_many(void **state)
{
    (void)state;
    struct queue *q = fresh();
    enum { N = 3000 };
    static int gone[N];
    char id[16], name[QUEUE_NAME_MAX];
    for (int i = 0; i < N; i++) {
        snprintf(id, sizeof id, "c%d", i);
        push(q, id, i % 2 ? "billing" : "general", 1, 0, 0, 1000 + i);
        gone[i] = 0;
    }
    for (int k = 0; k < N; k++) { /* every third, in an order unrelated to the pushes */
        int i = (int)((k * 7919L) % N);
        if (i % 3 == 0) {
            snprintf(id, sizeof id, "c%d", i);
            queue_remove(q, id);
            gone[i] = 1;
        }
    }
    for (int i = 1; i < N; i += 10) { /* moved to the other queue, keeping their time */
        snprintf(id, sizeof id, "c%d", i);
        if (!gone[i])
            push(q, id, i % 2 ? "general" : "billing", 1, 0, 0, 1000 + i);
    }
    int ahead[2] = {0, 0}; /* waiting so far in general, billing */
    for (int i = 0; i < N; i++) {
        snprintf(id, sizeof id, "c%d", i);
        int pos;
        long long wait;
        if (gone[i]) {
            assert_int_equal(queue_position(q, id, 5000, &pos, &wait, name), KEFU_ENOENT);
            continue;
        }
        int moved = i % 10 == 1, billing = (i % 2 == 1) != moved;
        assert_int_equal(queue_position(q, id, 5000, &pos, &wait, name), 0);
        assert_string_equal(name, billing ? "billing" : "general");
        assert_int_equal(queue_has(q, id, name, 1000 + i), 1);
        assert_int_equal(pos, ++ahead[billing]);
        assert_int_equal(wait, 5000 - (1000 + i));
    }
    assert_int_equal(queue_position(q, "c3000", 5000, &(int){0}, &(long long){0}, name), KEFU_ENOENT);
    queue_free(q);
}

/* 6.2 allocation failures leave the queue usable */
static void test_alloc_failure(void **state)
{
    struct queue *q = fresh();
    kefu_alloc_fail_after(1);
    struct queue_entry e = {"a", "general", 1, 0, 0, 0, 1};
    assert_int_equal(queue_push(q, &e), KEFU_ENOMEM);
    kefu_alloc_fail_after(0);
    assert_int_equal(queue_push(q, &e), 0);
    claim(q, "amy", NULL, 10, 0, "a");
    queue_free(q);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_agents),
        cmocka_unit_test(test_order),
        cmocka_unit_test(test_positions),
        cmocka_unit_test(test_skills),
        cmocka_unit_test(test_capacity),
        cmocka_unit_test(test_claim_again),
        cmocka_unit_test(test_transfer_release),
        cmocka_unit_test(test_unclaim),
        cmocka_unit_test(test_assign),
        cmocka_unit_test(test_list),
        cmocka_unit_test(test_alloc_failure),
        cmocka_unit_test(test_sync),
        cmocka_unit_test(test_many),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
