/* dialog_erase.c — erasing one customer (the right to be forgotten).
 * Every conversation stripe is locked for the erase once no message is
 * committing, and a message waiting for its action meanwhile writes nothing
 * if its conversation is gone when it resumes (dialog_lock_all()), so no
 * write of that customer can land after the delete and put a row back; the store deletes with
 * secure_delete and truncates the WAL;
 * the in-memory queue forgets the conversations. Nothing else in dialog
 * holds customer text between calls. */
#include "dialog_int.h"

#include "kefu.h"
#include "text.h"

#include <stdlib.h>
#include <string.h>

static int collect_conv(void *ctx, const struct store_conv *c)
{
    json_array_append_new(ctx, json_string(c->id));
    return 0;
}

int dialog_erase_customer(struct dialog *d, const char *customer, json_t **out, json_t **convs)
{
    *out = NULL;
    if (convs)
        *convs = NULL;
    if (!customer || !*customer)
        return dialog_fail(KEFU_EINVAL, "missing customer id");
    if (!text_utf8_valid(customer, strlen(customer)))
        return dialog_fail(KEFU_EUTF8, "the customer id is not valid utf-8");
    json_t *ids = json_array();
    if (!ids)
        return dialog_fail(KEFU_ENOMEM, "out of memory");
    dialog_lock_all(d);
    int rc = store_customer_convs(d->st, customer, 0, collect_conv, ids);
    struct store_erased e;
    memset(&e, 0, sizeof e);
    if (rc == 0) {
        struct store_batch b;
        store_batch_init(&b);
        store_erase_customer(&b, customer, &e);
        rc = store_write(d->st, &b);
    }
    if (rc == 0)
        for (size_t i = 0; i < json_array_size(ids); i++)
            queue_remove(d->q, json_string_value(json_array_get(ids, i)));
    dialog_unlock_all(d);
    if (rc < 0) {
        json_decref(ids);
        return dialog_fail(rc, rc == KEFU_EBUSY ? "erased, but the log is still in use; erase again"
                                                : "cannot erase the customer");
    }
    if (e.customers == 0 && e.conversations == 0) {
        json_decref(ids);
        return dialog_fail(KEFU_ENOENT, "no customer '%s'", customer);
    }
    if (json_array_size(ids))
        dialog_notify(d, NULL, 0); /* the queues changed */
    *out = json_pack("{s:s, s:I, s:I}", "customer", customer, "conversations", (json_int_t)e.conversations,
                     "messages", (json_int_t)e.messages);
    if (convs)
        *convs = ids;
    else
        json_decref(ids);
    return *out ? 0 : dialog_fail(KEFU_ENOMEM, "out of memory");
}
