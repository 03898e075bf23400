/* test_dialog_mem.c — engine/dialog_mem.c: a conversation's memory read
 * into a tree without its intents and the intents' element texts, written
 * back, against jansson reading the same text whole: stored memories of
 * every shape (old rows, odd spacing, escapes, repeated keys, damaged
 * text), the 20 intents kept, and out of memory. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../engine/dialog_int.h"
#include "kefu.h"

/* reads text, writes it back and checks jansson sees the same object as in want (NULL: as in text) */
static void round_trip(const char *id, const char *text, const char *want)
{
    struct dialog_hist h = {0};
    json_t *mem = dialog_mem_parse(text, &h);
    assert_non_null(mem);
    assert_null(json_object_get(mem, "intents"));
    char *out = dialog_mem_dump(mem, &h);
    assert_non_null(out);
    json_t *a = json_loads(out, 0, NULL), *b = json_loads(want ? want : text, 0, NULL);
    if (!json_is_object(b)) {
        json_decref(b);
        b = json_object();
    }
    if (!json_equal(a, b)) {
        char *bs = json_dumps(b, JSON_COMPACT);
        print_error("case %s: wrote %s, want %s\n", id, out, bs);
        free(bs);
        fail();
    }
    json_decref(a);
    json_decref(b);
    free(out);
    json_decref(mem);
    dialog_hist_release(&h);
}

static const struct mem_case {
    const char *id, *text, *want; /* want NULL: the same object as text */
} cases[] = {
    {"1.1", NULL, "{}"},
    {"1.2", "{}", NULL},
    {"1.3", " { } ", "{}"},
    {"1.4", "{\"last_intent\":\"a.b\",\"last_topic\":\"a\"}", NULL},
    {"2.1",
     "{\"last_intent\":\"shipping.time\",\"intents\":[{\"intent\":\"shipping.time\",\"confidence\":0.9132,"
     "\"source\":\"rule\",\"seq\":2}],\"slots\":{\"order_id\":\"KF12345678\"}}",
     NULL},
    {"2.2", "{\"intents\":[]}", "{}"}, /* no intents: no key, as before the first */
    {"2.3",
     "{ \"intents\" : [ {\"intent\" : \"x\" , \"seq\" : 1e3 } , { } , [1, [2]] , null , true , -0.5 ] }",
     NULL},
    {"2.4",
     "{\"intents\":[{\"intent\":\"\\u9000\\\"\\\\ \\/\",\"confidence\":1.0,\"source\":\"kb\",\"seq\":3}]}",
     NULL},
    {"2.5", "{\"quick\":{\"seq\":4,\"replies\":[\"a\",\"b\"]},\"variants\":{\"x\":\"B\"},\"attrs\":{}}",
     NULL},
    /* a repeated key: the last one counts, as jansson reads it */
    {"3.1", "{\"intents\":[1,2],\"intents\":[3]}", "{\"intents\":[3]}"},
    {"3.2", "{\"intents\":\"not an array\",\"a\":1}", "{\"a\":1}"},
    /* damaged text: what jansson makes of it (nothing) */
    {"4.1", "{\"intents\":[1,2", "{}"},
    {"4.2", "{\"intents\":[01]}", "{}"},
    {"4.3", "{\"a\":1,}", "{}"},
    {"4.4", "[1,2]", "{}"},
    {"4.5", "{\"a\":\"tab\there\"}", "{}"},
    {"4.6", "{\"a\":1} x", "{}"},
    {"4.7", "{\"intents\":[{\"a\":\"\\x\"}]}", "{}"},
    {"4.8", "", "{}"},
};

static void test_round_trips(void **state)
{
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        round_trip(cases[i].id, cases[i].text, cases[i].want);
}

/* the newest 20 intents are kept, in order, the oldest out first */
static void test_twenty(void **state)
{
    struct dialog_hist h = {0};
    json_t *mem = dialog_mem_parse("{\"slots\":{}}", &h);
    for (long long s = 1; s <= 25; s++)
        assert_int_equal(dialog_hist_add(&h, s % 2 ? "order.refund_status" : "退款.\"q\"", 0.5, "rule", s),
                         0);
    char *out = dialog_mem_dump(mem, &h);
    json_decref(mem);
    dialog_hist_release(&h);
    /* read it again: the text a turn left is the next turn's input */
    mem = dialog_mem_parse(out, &h);
    assert_int_equal(h.n, 20);
    assert_int_equal(dialog_hist_add(&h, "x", 1, "kb", 26), 0);
    free(out);
    out = dialog_mem_dump(mem, &h);
    json_t *m = json_loads(out, 0, NULL);
    json_t *v = json_object_get(m, "intents");
    assert_int_equal(json_array_size(v), 20);
    for (size_t k = 0; k < 20; k++) {
        json_t *e = json_array_get(v, k);
        long long s = json_integer_value(json_object_get(e, "seq"));
        assert_int_equal(s, (long long)k + 7);
        assert_string_equal(json_string_value(json_object_get(e, "intent")), s == 26 ? "x"
                                                                             : s % 2 ? "order.refund_status"
                                                                                     : "退款.\"q\"");
    }
    assert_true(json_is_object(json_object_get(m, "slots")));
    json_decref(m);
    free(out);
    json_decref(mem);
    dialog_hist_release(&h);
}

/* out of memory at each allocation: NULL or a failure, never a crash or a leak */
static void test_oom(void **state)
{
    const char *text =
        "{\"last_intent\":\"a\",\"intents\":[{\"intent\":\"a\",\"confidence\":0.5,\"source\":\"rule\","
        "\"seq\":2}],\"slots\":{\"k\":\"v\"}}";
    for (long n = 1; n <= 40; n++) {
        struct dialog_hist h = {0};
        kefu_alloc_fail_after(n);
        json_t *mem = dialog_mem_parse(text, &h);
        if (mem) {
            dialog_hist_add(&h, "b", 0.25, "kb", 3);
            free(dialog_mem_dump(mem, &h));
        }
        kefu_alloc_fail_after(0);
        json_decref(mem);
        dialog_hist_release(&h);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trips),
        cmocka_unit_test(test_twenty),
        cmocka_unit_test(test_oom),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
