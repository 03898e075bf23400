/* kpi.h — the service KPI table on one screen: for a period and per channel,
 * automation (bot resolution), first-contact resolution, agents' average first
 * response, average handling time and CSAT, each beside its red line when the
 * red-line file has one. Reads the store and the red lines; changes neither. */
#ifndef KEFU_KPI_H
#define KEFU_KPI_H

#include <jansson.h>

#include "redline.h"
#include "store.h"

/* → a new {since, redlines:{automation, first_response, csat: {name, op, threshold} or null},
 * channels:[{channel, conversations, automation, first_contact_resolution, first_response_s,
 * handling_s, csat, ratings, breached:[KPI...]}]} for what happened from since on; rates are
 * 0..1, averages null without samples. rl may be NULL. NULL when the store fails. */
json_t *kpi_table(struct store *st, const struct redline *rl, long long since);

#endif
