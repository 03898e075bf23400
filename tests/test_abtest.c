/* test_abtest.c — the two-proportion z-test of A/B-tested replies on
 * worked cases (values computed by hand from the pooled formula), the
 * sample still needed, and the cases it cannot judge. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <math.h>

#include "abtest.h"
#include "kefu.h"

static const struct z_case {
    const char *id;
    long long n1, c1, n2, c2;
    double z, p;      /* expected, to 1e-3 relative */
    long long needed; /* more per arm */
} cases[] = {
    /* 60% of 1,000 against 50% of 1,000: pooled 0.55, se 0.022249, z 4.4947 */
    {"1.1", 1000, 600, 1000, 500, 4.4947, 6.97e-6, 0},
    /* the same rates on 100 each: z 1.4213, p 0.1552; 388 per arm detect 10 points, 288 more */
    {"1.2", 100, 60, 100, 50, 1.4213, 0.1552, 288},
    /* the other way round: the sign turns, nothing else */
    {"1.3", 100, 50, 100, 60, -1.4213, 0.1552, 288},
    /* 0 of 10 against 10 of 10: z -4.4721 */
    {"1.4", 10, 0, 10, 10, -4.4721, 7.74e-6, 0},
};

static void test_cases(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const struct z_case *c = &cases[i];
        struct abtest_result r;
        assert_int_equal(abtest_compare(c->n1, c->c1, c->n2, c->c2, &r), 0);
        if (fabs(r.z - c->z) > 1e-3 * fabs(c->z) || fabs(r.p_value - c->p) > 2e-3 * c->p ||
            r.needed != c->needed) {
            fprintf(stderr, "case %s: z %.5f p %.6g needed %lld, want z %.5f p %.6g needed %lld\n", c->id,
                    r.z, r.p_value, r.needed, c->z, c->p, c->needed);
            fail();
        }
    }
}

/* 2.1 what cannot be judged: no samples, equal rates, rates of 0 or 1 on both sides, bad counts */
static void test_edges(void **state)
{
    (void)state;
    struct abtest_result r;
    assert_int_equal(abtest_compare(0, 0, 50, 20, &r), 0);
    assert_true(r.z == 0 && r.p_value == 1 && r.needed == -1);
    assert_int_equal(abtest_compare(50, 20, 50, 20, &r), 0);
    assert_true(r.z == 0 && r.p_value == 1 && r.needed == -1);
    assert_int_equal(abtest_compare(50, 50, 40, 40, &r), 0); /* both 100%: no spread */
    assert_true(r.z == 0 && r.p_value == 1 && r.needed == -1);
    assert_int_equal(abtest_compare(10, 11, 10, 5, &r), KEFU_EINVAL);
    assert_int_equal(abtest_compare(-1, 0, 10, 5, &r), KEFU_EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_cases), cmocka_unit_test(test_edges)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
