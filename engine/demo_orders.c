/* demo_orders.c — `kefu demo-orders`: the bundled shop's order system, a
 * stand-in for the real one so that `make run` answers "where is my order"
 * from data. A small libmicrohttpd server on a loopback port that answers
 * the bundled rules' actions (rules/orders.rules, rules/returns.rules):
 *
 *   POST /order_status, /order_tracking, /refund_status
 *   {"slots": {"order_id": "KF12345678"}, "locale": "zh", ...}
 *   → {"found": true, "order": {...}, "refund": {...}}   or   {"found": false}
 *
 * It knows a handful of demo orders in several states and words dates in
 * the request's language, as a shop's own system would. It is a demo: no
 * signature check, nothing stored. */
#include "demo.h"

#include "kefu.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <jansson.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct demo_order {
    const char *id, *status;
    const char *status_en, *status_zh;
    const char *carrier_en, *carrier_zh, *tracking;
    const char *eta_en, *eta_zh;       /* delivery (shipped) or dispatch (paid) */
    const char *scan_en, *scan_zh;     /* the last courier scan */
    const char *refund, *amount;       /* refund status: none, processing, done */
    const char *refund_en, *refund_zh; /* when it arrives or arrived */
};

static const struct demo_order orders[] = {
    {"KF12345678", "shipped", "shipped", "已发货", "SF Express", "顺丰速运", "SF1234567890123", "tomorrow",
     "明天", "arrived at the Shanghai sorting centre, 08:40 today", "今天 08:40 已到达上海转运中心", "none",
     "", "", ""},
    {"KF87654321", "paid", "paid, being packed", "已付款，正在备货", "", "", "", "today before 18:00",
     "今天 18:00 前", "", "", "none", "", "", ""},
    {"KF20250612", "delivered", "delivered", "已签收", "YTO Express", "圆通速递", "YT9876543210", "", "",
     "delivered and signed for, 5 December 14:12", "12 月 5 日 14:12 已签收", "processing", "129.00",
     "within 3 working days", "3 个工作日内"},
    {"KF11112222", "cancelled", "cancelled", "已取消", "", "", "", "", "", "", "", "done", "89.00",
     "on 3 December", "12 月 3 日"},
    {"KF55556666", "exception", "held up in transit", "配送异常", "ZTO Express", "中通快递", "ZT5566778899",
     "", "", "no scan for 4 days", "已 4 天没有物流更新", "none", "", "", ""},
};

static const struct demo_order *find(const char *id)
{
    char up[32];
    size_t n = 0;
    for (; id && id[n] && n < sizeof up - 1; n++)
        up[n] = (char)toupper((unsigned char)id[n]);
    up[n] = 0;
    for (size_t k = 0; k < sizeof orders / sizeof orders[0]; k++)
        if (strcmp(orders[k].id, up) == 0)
            return &orders[k];
    return NULL;
}

/* The answer for action path about the order in req (new JSON). */
static json_t *answer(const char *path, json_t *req)
{
    const char *id = json_string_value(json_object_get(json_object_get(req, "slots"), "order_id"));
    const char *locale = json_string_value(json_object_get(req, "locale"));
    int zh = locale && strncmp(locale, "zh", 2) == 0;
    const struct demo_order *o = find(id);
    if (!o)
        return json_pack("{s:b}", "found", 0);
    json_t *out = json_pack("{s:b}", "found", 1);
    if (strcmp(path, "/refund_status") == 0) {
        json_object_set_new(out, "refund",
                            json_pack("{s:s, s:s, s:s, s:s}", "order_id", o->id, "status", o->refund,
                                      "amount", o->amount, "eta", zh ? o->refund_zh : o->refund_en));
        return out;
    }
    json_object_set_new(out, "order",
                        json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s}", "id", o->id, "status", o->status,
                                  "status_text", zh ? o->status_zh : o->status_en, "carrier",
                                  zh ? o->carrier_zh : o->carrier_en, "tracking", o->tracking, "eta",
                                  zh ? o->eta_zh : o->eta_en, "last_scan", zh ? o->scan_zh : o->scan_en));
    return out;
}

struct upload {
    char buf[16384];
    size_t len;
    int over;
};

static enum MHD_Result reply(struct MHD_Connection *c, unsigned status, const char *body)
{
    struct MHD_Response *r =
        MHD_create_response_from_buffer(strlen(body), (void *)body, MHD_RESPMEM_MUST_COPY);
    if (!r)
        return MHD_NO;
    MHD_add_response_header(r, "Content-Type", "application/json");
    enum MHD_Result ok = MHD_queue_response(c, status, r);
    MHD_destroy_response(r);
    return ok;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                                  const char *version, const char *data, size_t *size, void **state)
{
    struct upload *u = *state;
    if (!u) {
        if (!(u = kefu_calloc(1, sizeof *u)))
            return MHD_NO;
        *state = u;
        return MHD_YES;
    }
    if (*size) {
        if (u->len + *size < sizeof u->buf) {
            memcpy(u->buf + u->len, data, *size);
            u->len += *size;
        } else {
            u->over = 1;
        }
        *size = 0;
        return MHD_YES;
    }
    if (strcmp(method, "POST") != 0)
        return reply(c, 405, "{\"error\":{\"code\":\"method_not_allowed\",\"message\":\"POST only\"}}");
    if (strcmp(url, "/order_status") != 0 && strcmp(url, "/order_tracking") != 0 &&
        strcmp(url, "/refund_status") != 0)
        return reply(c, 404, "{\"error\":{\"code\":\"not_found\",\"message\":\"no such action\"}}");
    json_t *req = u->over ? NULL : json_loadb(u->buf, u->len, 0, NULL);
    if (!json_is_object(req)) {
        json_decref(req);
        return reply(c, 400, "{\"error\":{\"code\":\"bad_request\",\"message\":\"expected a JSON object\"}}");
    }
    json_t *out = answer(url, req);
    char *text = out ? json_dumps(out, JSON_COMPACT) : NULL;
    enum MHD_Result ok = reply(c, text ? 200 : 500, text ? text : "{}");
    free(text);
    json_decref(out);
    json_decref(req);
    return ok;
}

static void on_completed(void *cls, struct MHD_Connection *c, void **state, enum MHD_RequestTerminationCode t)
{
    free(*state);
    *state = NULL;
}

int demo_orders_main(int argc, char **argv)
{
    const char *listen = "127.0.0.1:8089";
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            puts("usage: kefu demo-orders [--listen 127.0.0.1:PORT]\n\n"
                 "The bundled shop's demo order system for the rules' actions (make run starts it):\n"
                 "POST /order_status, /order_tracking and /refund_status with the action's JSON.\n"
                 "Port 0 picks a free one; the address it serves on is printed. Loopback only.");
            return 0;
        }
        if (strcmp(argv[i], "--listen") == 0 && i + 1 < argc) {
            listen = argv[++i];
            continue;
        }
        fprintf(stderr, "kefu: unknown option '%s' for 'demo-orders' (see kefu demo-orders --help)\n",
                argv[i]);
        return 2;
    }
    unsigned port;
    char tail;
    if (strncmp(listen, "127.0.0.1:", 10) != 0 || sscanf(listen + 10, "%u%c", &port, &tail) != 1 ||
        port > 65535) {
        fprintf(stderr, "kefu: demo-orders listens on 127.0.0.1:PORT only, not '%s'\n", listen);
        return 2;
    }
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    pthread_sigmask(SIG_BLOCK, &set, NULL); /* the daemon's thread inherits it; sigwait below takes them */
    struct MHD_Daemon *d = MHD_start_daemon(
        MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG, 0, NULL, NULL, on_request, NULL,
        MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sa, MHD_OPTION_CONNECTION_TIMEOUT, 10u,
        MHD_OPTION_CONNECTION_LIMIT, 64u, MHD_OPTION_NOTIFY_COMPLETED, on_completed, NULL, MHD_OPTION_END);
    if (!d) {
        fprintf(stderr, "kefu: demo-orders cannot listen on %s\n", listen);
        return 1;
    }
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
    printf("kefu demo-orders: serving on http://127.0.0.1:%u\n", di ? di->port : port);
    fflush(stdout);
    int sig;
    sigwait(&set, &sig);
    MHD_stop_daemon(d);
    return 0;
}
