/* fuzz_mem.c — libFuzzer target for engine/dialog_mem.c, the memory's
 * reader and writer on the message path, against jansson reading the same
 * bytes whole. Whatever the bytes, the text written back is JSON jansson
 * reads, and it means what jansson made of the input: the same object with
 * "intents" kept only as a non-empty array, trimmed to its newest
 * DIALOG_HIST elements ({} for what jansson refuses or what is no object),
 * the other keys' reals at the six digits the memory was always written with.
 * One intent added then gives DIALOG_HIST at most, the new one last. */
#include "dialog_int.h"
#include "kefu.h"

#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"

/* jansson's reading of text, as the memory must keep it: the intents as
 * they were, the rest as written with JSON_REAL_PRECISION(6) (as before) */
static json_t *expected(const char *text)
{
    json_t *j = json_loads(text, 0, NULL);
    if (!json_is_object(j)) {
        json_decref(j);
        return json_object();
    }
    json_t *v = json_incref(json_object_get(j, "intents"));
    json_object_del(j, "intents");
    char *rest = json_dumps(j, JSON_COMPACT | JSON_REAL_PRECISION(6));
    json_decref(j);
    j = json_loads(rest, 0, NULL);
    free(rest);
    MUST(j);
    if (json_is_array(v) && json_array_size(v)) {
        while (json_array_size(v) > DIALOG_HIST)
            json_array_remove(v, 0);
        json_object_set(j, "intents", v);
    }
    json_decref(v);
    return j;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = kefu_strndup((const char *)data, size); /* the store hands a C string */
    if (!text)
        return 0;
    struct dialog_hist h = {0};
    json_t *mem = dialog_mem_parse(text, &h);
    MUST(mem && json_is_object(mem) && !json_object_get(mem, "intents"));
    MUST(h.n <= DIALOG_HIST);
    char *out = dialog_mem_dump(mem, &h);
    MUST(out);
    json_t *got = json_loads(out, 0, NULL), *want = expected(text);
    MUST(got);
    MUST(json_equal(got, want));
    /* a turn's intent on top */
    MUST(dialog_hist_add(&h, "order.refund_status", 0.9132, "rule", 7) == 0);
    char *out2 = dialog_mem_dump(mem, &h);
    MUST(out2);
    json_t *got2 = json_loads(out2, 0, NULL);
    json_t *v = json_object_get(got2, "intents");
    MUST(json_array_size(v) >= 1 && json_array_size(v) <= DIALOG_HIST);
    json_t *last = json_array_get(v, json_array_size(v) - 1);
    MUST(json_integer_value(json_object_get(last, "seq")) == 7);
    MUST(json_real_value(json_object_get(last, "confidence")) == 0.9132);
    free(out2);
    json_decref(got2);
    free(out);
    json_decref(got);
    json_decref(want);
    json_decref(mem);
    dialog_hist_release(&h);
    free(text);
    return 0;
}
