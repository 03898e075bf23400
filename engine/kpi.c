/* kpi.c — the KPI table of the service papers: one row per channel (the store's
 * figures from since on), each KPI compared with the red line of its metric
 * (the first line of that metric without a where filter), so a reader sees at
 * once which are over. First-contact resolution and handling time have no red-line
 * metric and are shown without one. */
#include "kpi.h"

#include "kefu.h"

#include <string.h>

/* {name, op, threshold} of the red line for metric, or null. */
static json_t *line_of(const struct redline *rl, int metric)
{
    const char *name;
    double t;
    int is_min;
    if (redline_threshold(rl, metric, &name, &t, &is_min) < 0)
        return json_null();
    return json_pack("{s:s, s:s, s:f}", "name", name, "op", is_min ? "min" : "max", "threshold", t);
}

/* 1 when value (a JSON number, or null) is over the line (null: no line). */
static int over(json_t *line, json_t *value)
{
    if (!json_is_object(line) || !json_is_number(value))
        return 0;
    double t = json_real_value(json_object_get(line, "threshold")), v = json_number_value(value);
    return strcmp(json_string_value(json_object_get(line, "op")), "min") == 0 ? v < t : v > t;
}

static json_t *avg_or_null(long long n, double avg)
{
    return n ? json_real(avg) : json_null();
}

static int add_row(void *ctx, const struct store_kpi_row *k)
{
    json_t *t = ctx, *lines = json_object_get(t, "redlines");
    json_t *row = json_pack("{s:s, s:I, s:o, s:o, s:o, s:o, s:o, s:I}", "channel", k->channel,
                            "conversations", (json_int_t)k->conversations, "automation",
                            k->handled ? json_real((double)k->answered / (double)k->handled) : json_null(),
                            "first_contact_resolution",
                            k->conversations ? json_real((double)k->first_contact / (double)k->conversations)
                                             : json_null(),
                            "first_response_s", avg_or_null(k->responses, k->response_avg), "handling_s",
                            avg_or_null(k->handled_by_agents, k->handling_avg), "csat",
                            avg_or_null(k->ratings, k->rating_avg), "ratings", (json_int_t)k->ratings);
    if (!row)
        return 1;
    json_t *breached = json_array();
    static const char *const kpis[][2] = {
        {"automation", "automation"}, {"first_response", "first_response_s"}, {"csat", "csat"}};
    for (size_t i = 0; i < 3; i++)
        if (over(json_object_get(lines, kpis[i][0]), json_object_get(row, kpis[i][1])))
            json_array_append_new(breached, json_string(kpis[i][1]));
    json_object_set_new(row, "breached", breached);
    json_array_append_new(json_object_get(t, "channels"), row);
    return 0;
}

json_t *kpi_table(struct store *st, const struct redline *rl, long long since)
{
    json_t *t = json_pack("{s:I, s:{s:o, s:o, s:o}, s:[]}", "since", (json_int_t)since, "redlines",
                          "automation", line_of(rl, RL_AUTOMATION), "first_response",
                          line_of(rl, RL_FIRST_RESPONSE), "csat", line_of(rl, RL_CSAT), "channels");
    if (t && store_kpi(st, since, add_row, t) < 0) {
        json_decref(t);
        return NULL;
    }
    return t;
}
