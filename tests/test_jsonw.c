/* test_jsonw.c — engine/jsonw.c writes the same bytes as
 * json_dumps(v, JSON_COMPACT | JSON_REAL_PRECISION(6)) for a table of
 * values (every type, escapes, non-ASCII text, nesting, numbers at their
 * edges, insertion order), and leaves the buffer as it was when an
 * allocation fails. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jsonw.h"
#include "kefu.h"

static const char *const texts[] = {
    "{}",
    "[]",
    "{\"reply\":{\"text\":\"Delivery takes 2-3 days.\",\"source\":\"rule\",\"confidence\":0.9132},\"seq\":4}",
    "[1,-1,0,9223372036854775807,-9223372036854775808,true,false,null]",
    "[0.0,1.0,0.5,0.1234,0.0005,0.12,0.9999,0.3333333,2.5,1e-9,1e-12,1e-41]",
    "[0.00001,123456789.0,-0.25,1e300,-0.0]",
    "[\"\\\"\\\\\\/\\b\\f\\n\\r\\t\\u0001\\u001f\\u007f\"]",
    "{\"zh\":\"退款什么时候到账\",\"emoji\":\"\\ud83d\\ude00\",\"é\":\"ü\"}",
    "{\"b\":1,\"a\":2,\"c\":{\"z\":[{\"y\":[]}],\"x\":{}}}",
    "\"a string alone\"",
    "42",
    "[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]",
};

static void test_same_bytes(void **state)
{
    for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++) {
        json_error_t err;
        json_t *v = json_loads(texts[i], JSON_DECODE_ANY, &err);
        if (!v)
            fail_msg("case %zu: %s", i, err.text);
        char *want = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY | JSON_REAL_PRECISION(6));
        char *got = jsonw_dumps(v);
        assert_non_null(got);
        if (strcmp(got, want) != 0)
            fail_msg("case %zu: wrote %s, jansson %s", i, got, want);
        free(want);
        free(got);
        json_decref(v);
    }
    /* an object built in code keeps its insertion order, as json_dumps does */
    json_t *o = json_pack("{s:s, s:f, s:i}", "text", "x", "confidence", 0.75, "seq", 3);
    json_object_set_new(o, "a", json_null());
    char *want = json_dumps(o, JSON_COMPACT | JSON_REAL_PRECISION(6)), *got = jsonw_dumps(o);
    assert_string_equal(got, want);
    free(want);
    free(got);
    json_decref(o);
}

/* appending to a buffer: text before stays, a failed append leaves it as it was */
static void test_append_oom(void **state)
{
    char big[3000];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = 0; /* longer than the buffer's first allocation */
    json_t *v = json_pack("{s:[s]}", "a", big);
    struct text_buf b;
    text_buf_init(&b);
    assert_int_equal(jsonw_raw(&b, "head:", 5), 0);
    kefu_alloc_fail_after(1);
    assert_int_equal(jsonw_append(&b, v), KEFU_ENOMEM);
    kefu_alloc_fail_after(0);
    assert_string_equal(b.s, "head:");
    assert_int_equal(jsonw_append(&b, v), 0);
    assert_int_equal(strncmp(b.s, "head:{\"a\":[\"xxx", 15), 0);
    assert_int_equal(b.len, strlen(b.s));
    text_buf_release(&b);
    for (long n = 1; n <= 4; n++) {
        kefu_alloc_fail_after(n);
        free(jsonw_dumps(v));
        kefu_alloc_fail_after(0);
    }
    json_decref(v);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_same_bytes),
        cmocka_unit_test(test_append_oom),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
