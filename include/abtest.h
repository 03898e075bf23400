/* abtest.h — A/B-tested replies: the figures of each variant of an intent's reply
 * (answers, containment, satisfaction) from the store's history, which variants the
 * running rule set still holds, and a two-proportion z-test of containment between
 * the control (the first variant written) and each other variant. Reads the store and
 * the rule set; changes neither. */
#ifndef KEFU_ABTEST_H
#define KEFU_ABTEST_H

#include <jansson.h>

#include "rules.h"
#include "store.h"

/* The outcome of comparing two proportions c1/n1 and c2/n2. */
struct abtest_result {
    double z;         /* (p1 - p2) / pooled standard error; 0 when it cannot be computed */
    double p_value;   /* two-sided; 1 when it cannot be computed */
    long long needed; /* more samples per arm for 80% power at alpha 0.05 to detect the observed
                         difference (0: enough already); -1 when the proportions are equal */
};
/* Two-proportion z-test (pooled); counts must satisfy 0 <= c <= n. Returns 0 or KEFU_EINVAL. */
int abtest_compare(long long n1, long long c1, long long n2, long long c2, struct abtest_result *out);

/* The experiments: a new JSON array, one entry per intent with variants in rs (running) or in
 * the store's answers from since on (ended, history kept): {intent, running, control,
 * variants:[{name, weight (null once deleted), running, answers, contained, containment,
 * ratings, csat (null without ratings)}], tests:[{variant, z, p_value, significant, needed}]}.
 * rs may be NULL (nothing is running). NULL when the store fails. */
json_t *abtest_experiments(struct store *st, const struct rules *rs, long long since);

#endif
