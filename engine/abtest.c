/* abtest.c — A/B-tested replies: per-variant figures and the test between arms.
 * An intent's variants are its experiment while the rule set holds two or more of
 * them; the answers table keeps every answer's variant, so deleting a variant ends
 * the experiment and leaves its history. Containment (no handoff and no repeat of
 * the intent in the conversation's next two customer messages) is the proportion
 * compared: a two-proportion z-test, pooled, two-sided; "needed" is the sample per
 * arm that would detect the difference seen with 80% power at alpha 0.05. */
#include "abtest.h"

#include "kefu.h"

#include <math.h>
#include <string.h>

#define Z_ALPHA 1.959963985 /* two-sided 5% */
#define Z_POWER 0.841621234 /* 80% power */

int abtest_compare(long long n1, long long c1, long long n2, long long c2, struct abtest_result *out)
{
    *out = (struct abtest_result){0, 1, -1};
    if (n1 < 0 || n2 < 0 || c1 < 0 || c2 < 0 || c1 > n1 || c2 > n2)
        return KEFU_EINVAL;
    if (n1 == 0 || n2 == 0)
        return 0;
    double p1 = (double)c1 / (double)n1, p2 = (double)c2 / (double)n2;
    double p = (double)(c1 + c2) / (double)(n1 + n2);
    double se = sqrt(p * (1 - p) * (1.0 / (double)n1 + 1.0 / (double)n2));
    if (se > 0) {
        out->z = (p1 - p2) / se;
        out->p_value = erfc(fabs(out->z) / sqrt(2.0));
    }
    if (p1 != p2) {
        double pbar = (p1 + p2) / 2;
        double a = Z_ALPHA * sqrt(2 * pbar * (1 - pbar)) + Z_POWER * sqrt(p1 * (1 - p1) + p2 * (1 - p2));
        double n = ceil(a * a / ((p1 - p2) * (p1 - p2)));
        long long have = n1 < n2 ? n1 : n2;
        out->needed = n > (double)have ? (long long)n - have : 0;
    }
    return 0;
}

/* The entry of intent in list (created when missing). */
static json_t *entry(json_t *list, const char *intent)
{
    size_t i;
    json_t *e;
    json_array_foreach(list, i,
                       e) if (strcmp(json_string_value(json_object_get(e, "intent")), intent) == 0) return e;
    e = json_pack("{s:s, s:b, s:[], s:[]}", "intent", intent, "running", 0, "variants", "tests");
    json_array_append_new(list, e);
    return e;
}

static json_t *arm(json_t *e, const char *name)
{
    size_t i;
    json_t *v;
    json_array_foreach(json_object_get(e, "variants"), i,
                       v) if (strcmp(json_string_value(json_object_get(v, "name")), name) == 0) return v;
    v = json_pack("{s:s, s:n, s:b, s:I, s:I, s:f, s:I, s:n}", "name", name, "weight", "running", 0, "answers",
                  (json_int_t)0, "contained", (json_int_t)0, "containment", 0.0, "ratings", (json_int_t)0,
                  "csat");
    json_array_append_new(json_object_get(e, "variants"), v);
    return v;
}

static int add_row(void *ctx, const struct store_variant_row *r)
{
    json_t *v = arm(entry(ctx, r->intent), r->variant);
    json_object_set_new(v, "answers", json_integer(r->answers));
    json_object_set_new(v, "contained", json_integer(r->contained));
    json_object_set_new(v, "containment",
                        json_real(r->answers ? (double)r->contained / (double)r->answers : 0));
    json_object_set_new(v, "ratings", json_integer(r->ratings));
    json_object_set_new(v, "csat", r->ratings ? json_real(r->rating_avg) : json_null());
    return 0;
}

/* Marks what rs still holds: the intents with two or more variants run, with their weights. */
static void running(json_t *list, const struct rules *rs)
{
    for (size_t i = 0; rs && i < rules_count(rs); i++) {
        const struct rules_intent *it = rules_intent(rs, i);
        if (it->n_variants < 2)
            continue;
        json_t *e = entry(list, it->name);
        json_object_set_new(e, "running", json_true());
        json_object_set_new(e, "control", json_string(it->variants[0].name));
        for (size_t k = 0; k < it->n_variants; k++) {
            json_t *v = arm(e, it->variants[k].name);
            json_object_set_new(v, "weight", json_integer(it->variants[k].weight));
            json_object_set_new(v, "running", json_true());
        }
    }
}

/* The tests of one experiment: the control against each other variant. */
static void tests(json_t *e)
{
    json_t *vs = json_object_get(e, "variants"), *ctl = NULL, *v;
    const char *name = json_string_value(json_object_get(e, "control"));
    size_t i;
    json_array_foreach(vs, i, v)
    { /* without a running control, the arm with the most answers */
        if (name ? strcmp(json_string_value(json_object_get(v, "name")), name) == 0
                 : !ctl || json_integer_value(json_object_get(v, "answers")) >
                               json_integer_value(json_object_get(ctl, "answers")))
            ctl = v;
    }
    if (!ctl)
        return;
    if (!name)
        json_object_set(e, "control", json_object_get(ctl, "name"));
    json_array_foreach(vs, i, v)
    {
        if (v == ctl)
            continue;
        struct abtest_result r;
        abtest_compare(json_integer_value(json_object_get(ctl, "answers")),
                       json_integer_value(json_object_get(ctl, "contained")),
                       json_integer_value(json_object_get(v, "answers")),
                       json_integer_value(json_object_get(v, "contained")), &r);
        json_array_append_new(json_object_get(e, "tests"),
                              json_pack("{s:O, s:f, s:f, s:b, s:I}", "variant", json_object_get(v, "name"),
                                        "z", r.z, "p_value", r.p_value, "significant", r.p_value < 0.05,
                                        "needed", (json_int_t)r.needed));
    }
}

json_t *abtest_experiments(struct store *st, const struct rules *rs, long long since)
{
    json_t *list = json_array();
    if (!list)
        return NULL;
    if (store_variants(st, since, add_row, list) < 0) {
        json_decref(list);
        return NULL;
    }
    running(list, rs);
    size_t i;
    json_t *e;
    json_array_foreach(list, i, e)
    {
        if (!json_object_get(e, "control"))
            json_object_set_new(e, "control", json_null());
        if (json_is_null(json_object_get(e, "control")))
            json_object_del(e, "control");
        tests(e);
        if (!json_object_get(e, "control"))
            json_object_set_new(e, "control", json_null());
    }
    return list;
}
