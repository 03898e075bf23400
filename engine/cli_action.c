/* cli_action.c — the rules' actions on the command line: --actions FILE
 * (the server's configuration) and --stub NAME=JSON (an answer without the
 * network, or NAME=fail), shared by kefu check, ask, chat and test; and
 * one call of an intent's action for kefu ask, with what it chose. */
#include "cli_int.h"

#include "action.h"
#include "kefu.h"

#include <stdio.h>
#include <string.h>

int cli_actions_open(const char *file, char *const *stubs, size_t n, struct actions **out)
{
    char err[512];
    int rc = file ? actions_load(file, err, sizeof err, out) : actions_create(out);
    if (rc < 0)
        return file ? cli_fail("%s", err) : cli_fail("out of memory");
    for (size_t k = 0; k < n; k++) {
        const char *eq = strchr(stubs[k], '=');
        char name[80];
        if (!eq || eq == stubs[k] || eq - stubs[k] >= (long)sizeof name) {
            actions_free(*out);
            *out = NULL;
            return cli_fail("--stub takes NAME=JSON or NAME=fail, not '%s'", stubs[k]);
        }
        snprintf(name, sizeof name, "%.*s", (int)(eq - stubs[k]), stubs[k]);
        json_error_t je;
        json_t *v = strcmp(eq + 1, "fail") == 0 ? NULL : json_loads(eq + 1, JSON_REJECT_DUPLICATES, &je);
        if (strcmp(eq + 1, "fail") != 0 && !json_is_object(v)) {
            json_decref(v);
            actions_free(*out);
            *out = NULL;
            return cli_fail("--stub %s: the answer must be a JSON object or 'fail'", name);
        }
        rc = actions_stub(*out, name, v);
        json_decref(v);
        if (rc < 0) {
            actions_free(*out);
            *out = NULL;
            return cli_fail("out of memory");
        }
    }
    return 0;
}

int cli_action_run(struct actions *a, const struct rules_intent *it, json_t *slots, const struct attrs *conv,
                   struct cli_action *out)
{
    const char *locale = attrs_get(conv, "locale");
    json_t *body =
        json_pack("{s:s, s:s, s:O, s:{s:s, s:s, s:s}, s:s, s:s, s:s, s:{}}", "action", it->action, "intent",
                  it->name, "slots", slots, "customer", "id", attrs_get(conv, "customer.id"), "name",
                  attrs_get(conv, "customer.name"), "tier", attrs_get(conv, "tier"), "conversation", "",
                  "locale", locale, "channel", attrs_get(conv, "channel"), "attributes");
    if (!body)
        return KEFU_ENOMEM;
    out->ok = actions_call_wait(a, it->action, body, &out->result, out->outcome, sizeof out->outcome,
                                &out->seconds, &out->stubbed);
    json_decref(body);
    action_choose(it, out->ok, out->result, conv, locale,
                  rules_reply_pick(it->replies, it->n_replies, locale, 0), &out->ch);
    return 0;
}
