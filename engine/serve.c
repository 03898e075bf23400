/* serve.c — `kefu serve`: flags and environment → dialog_open() →
 * http_start(), then the main thread waits for signals on a signalfd
 * (blocked in every thread before any is created): SIGHUP reloads the
 * rules, SIGTERM and SIGINT drain the requests in flight and exit 0.
 * No work happens in a signal handler. docs/operations.md has the flags. */
#include "serve.h"

#include "action.h"

#include "dialog.h"
#include "http.h"
#include "kefu.h"
#include "log.h"
#include "redact.h"
#include "rules.h"
#include "store.h"
#include "webhook.h"

#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>

struct serve_opts {
    struct dialog_config dc;
    struct http_config hc;
    struct api_config ac;
    double rate;
    int drain_s;
    struct webhook_config wc;
    struct dialog_outbox_target hooks[DIALOG_OUTBOX_MAX]; /* --webhook, each with its --webhook-events */
    const char *hook_urls[DIALOG_OUTBOX_MAX];
    char cors_buf[1024];      /* KEFU_CORS_ORIGINS, split in place */
    const char *actions_file; /* --actions FILE (or KEFU_ACTIONS): the rules' actions */
};

static const char *usage_text =
    "usage: kefu serve [--listen ADDR:PORT] [--data DIR] [--rules DIR] [--corpus DIR] [--web DIR]\n"
    "                  [--rate-limit N] [--cors-origin ORIGIN]... [--miss-limit N] [--hours HH:MM-HH:MM]\n"
    "                  [--tz-offset MINUTES] [--threads N] [--drain-timeout S] [--log-level LEVEL]\n"
    "                  [--idle-timeout S] [--request-timeout S]\n"
    "                  [--webhook URL [--webhook-events LIST]]... [--webhook-ca FILE]\n"
    "                  [--webhook-attempts N] [--webhook-backoff S] [--trust-proxy on|off] [--commit "
    "group|each]\n"
    "                  [--log-redact KINDS] [--redact-store KINDS] [--store postgresql://...]\n"
    "                  [--redlines FILE|off] [--watch-interval S]\n"
    "                  [--actions FILE]\n\n"
    "Serves the HTTP API, the widget and the console. Defaults: 127.0.0.1:8080, data in data/,\n"
    "rules in rules/, articles in corpus/, static files in web/, 20 requests/s per address\n"
    "(--rate-limit 0 turns limits off). Environment: KEFU_AGENT_TOKENS (name:token,...),\n"
    "KEFU_ADMIN_TOKEN, KEFU_CORS_ORIGINS (comma-separated), KEFU_LOG_LEVEL,\n"
    "KEFU_WEBHOOK_SECRET (HMAC-SHA256 key for the webhooks), KEFU_LOG_REDACT,\n"
    "KEFU_REDACT_STORE, KEFU_STORE (as --store: conversations in PostgreSQL, not DIR/kefu.db).\n"
    "KINDS is all, off or a list of phone,email,card,id: what is\n"
    "masked in log lines (default all) and in message text before it is stored (default off).\n"
    "Red lines and VIP levels come from RULES/redlines.conf when it exists (--redlines) and are\n"
    "evaluated every 5 s (--watch-interval); crossings go to the log and the webhooks.\n"
    "A --webhook URL (http:// or https://, up to 8) gets every event, or those its following\n"
    "--webhook-events names (handoff,claim,agent_message,resolve,feedback,redline.breached,\n"
    "redline.cleared,escalated).\n"
    "--actions FILE (or KEFU_ACTIONS) configures the endpoints the rules' actions call\n"
    "(JSON: name → url, secret, timeout_s, max_bytes, ...; docs/operations.md); every\n"
    "action the rules name must be there.\n"
    "SIGHUP reloads the rules; SIGTERM or SIGINT drains and exits.";

static int bad(const char *fmt, const char *arg)
{
    fputs("kefu: ", stderr);
    fprintf(stderr, fmt, arg);
    fputc('\n', stderr);
    return 2;
}

static int add_origin(struct serve_opts *o, const char *origin)
{
    if (o->ac.n_cors == API_MAX_ORIGINS)
        return bad("at most 16 cors origins (%s)", origin);
    o->ac.cors[o->ac.n_cors++] = origin;
    return 0;
}

/* --log-redact and --redact-store (or their variables): what is masked where. */
static int redact_flag(struct serve_opts *o, const char *f, const char *v, int logs)
{
    unsigned kinds;
    if (redact_parse(v, &kinds) < 0)
        return bad("%s takes all, off or a list of phone,email,card,id", f);
    if (logs)
        log_set_redact(kinds);
    else
        o->dc.redact = kinds;
    return 0;
}

/* Reads the KEFU_* environment into o. */
static int read_env(struct serve_opts *o)
{
    o->dc.agents = getenv("KEFU_AGENT_TOKENS");
    o->ac.admin_token = getenv("KEFU_ADMIN_TOKEN");
    o->wc.secret = getenv("KEFU_WEBHOOK_SECRET");
    o->dc.store = getenv("KEFU_STORE");
    o->actions_file = getenv("KEFU_ACTIONS");
    const char *lr = getenv("KEFU_LOG_REDACT"), *rs = getenv("KEFU_REDACT_STORE");
    if (lr && redact_flag(o, "KEFU_LOG_REDACT", lr, 1))
        return 2;
    if (rs && redact_flag(o, "KEFU_REDACT_STORE", rs, 0))
        return 2;
    const char *lv = getenv("KEFU_LOG_LEVEL");
    if (lv && log_level_parse(lv) < 0)
        return bad("KEFU_LOG_LEVEL must be debug, info, warn or error, not '%s'", lv);
    if (lv)
        log_init(log_level_parse(lv), NULL);
    const char *co = getenv("KEFU_CORS_ORIGINS");
    if (!co || snprintf(o->cors_buf, sizeof o->cors_buf, "%s", co) >= (int)sizeof o->cors_buf)
        return 0;
    for (char *save = NULL, *t = strtok_r(o->cors_buf, ", ", &save); t; t = strtok_r(NULL, ", ", &save))
        if (add_origin(o, t))
            return 2;
    return 0;
}

/* --webhook URL adds a target with every event; --webhook-events LIST narrows the last one. */
static int webhook_flag(struct serve_opts *o, const char *f, const char *v)
{
    int n = o->dc.n_outbox;
    if (strcmp(f, "--webhook-events") == 0) {
        if (n == 0)
            return bad("--webhook-events applies to the --webhook before it (%s)", v);
        if (dialog_event_parse(v, &o->hooks[n - 1].events) < 0)
            return bad("--webhook-events takes a list of handoff,claim,agent_message,resolve,feedback,"
                       "redline.breached,redline.cleared,escalated, not '%s'",
                       v);
        return 0;
    }
    if (strncmp(v, "http://", 7) != 0 && strncmp(v, "https://", 8) != 0)
        return bad("--webhook takes an http:// or https:// URL, not '%s'", v);
    if (n == DIALOG_OUTBOX_MAX)
        return bad("at most 8 webhooks (%s)", v);
    o->hooks[n] = (struct dialog_outbox_target){v, DIALOG_EV_ALL};
    o->hook_urls[n] = v;
    o->dc.outbox = o->hooks;
    o->dc.n_outbox = n + 1;
    return 0;
}

static int number(const char *flag, const char *v, double lo, double hi, double *out)
{
    char *end;
    double x = v ? strtod(v, &end) : 0;
    if (!v || !*v || *end || !(x >= lo && x <= hi))
        return bad("%s needs a number in range", flag);
    *out = x;
    return 0;
}

/* Applies one flag with its value; returns 0, or 2 after an error. */
static int flag(struct serve_opts *o, const char *f, const char *v)
{
    double x;
    if (strcmp(f, "--listen") == 0)
        o->hc.listen = v;
    else if (strcmp(f, "--data") == 0)
        o->dc.data_dir = v;
    else if (strcmp(f, "--rules") == 0)
        o->dc.rules_dir = v;
    else if (strcmp(f, "--corpus") == 0)
        o->dc.corpus_dir = v;
    else if (strcmp(f, "--web") == 0)
        o->hc.web_dir = v;
    else if (strcmp(f, "--hours") == 0)
        o->dc.hours = v;
    else if (strcmp(f, "--store") == 0) {
        if (!store_is_uri(v))
            return bad("--store takes a postgresql:// URI, not '%s'", v);
        o->dc.store = v;
    } else if (strcmp(f, "--webhook") == 0 || strcmp(f, "--webhook-events") == 0)
        return webhook_flag(o, f, v);
    else if (strcmp(f, "--actions") == 0)
        o->actions_file = v;
    else if (strcmp(f, "--webhook-ca") == 0)
        o->wc.ca_file = v;
    else if (strcmp(f, "--redlines") == 0)
        o->dc.redlines = strcmp(v, "off") == 0 ? "" : v;
    else if (strcmp(f, "--watch-interval") == 0) {
        if (number(f, v, 0.05, 3600, &x))
            return 2;
        o->dc.watch_ms = (int)(x * 1000);
    } else if (strcmp(f, "--cors-origin") == 0)
        return add_origin(o, v);
    else if (strcmp(f, "--log-redact") == 0 || strcmp(f, "--redact-store") == 0)
        return redact_flag(o, f, v, strcmp(f, "--log-redact") == 0);
    else if (strcmp(f, "--log-level") == 0) {
        if (log_level_parse(v) < 0)
            return bad("--log-level must be debug, info, warn or error, not '%s'", v);
        log_init(log_level_parse(v), NULL);
    } else if (strcmp(f, "--rate-limit") == 0) {
        if (number(f, v, 0, 1e6, &o->rate))
            return 2;
    } else if (strcmp(f, "--miss-limit") == 0) {
        if (number(f, v, 1, 100, &x))
            return 2;
        o->dc.miss_limit = (int)x;
    } else if (strcmp(f, "--tz-offset") == 0) {
        if (number(f, v, -14 * 60, 14 * 60, &x))
            return 2;
        o->dc.tz_offset_min = (int)x;
    } else if (strcmp(f, "--threads") == 0) {
        if (number(f, v, 1, 64, &x))
            return 2;
        o->hc.threads = (unsigned)x;
    } else if (strcmp(f, "--trust-proxy") == 0) {
        if (strcmp(v, "on") != 0 && strcmp(v, "off") != 0)
            return bad("--trust-proxy takes on or off, not '%s'", v);
        o->hc.trust_proxy = strcmp(v, "on") == 0;
    } else if (strcmp(f, "--commit") == 0) {
        if (strcmp(v, "group") != 0 && strcmp(v, "each") != 0)
            return bad("--commit takes group or each, not '%s'", v);
        o->dc.group_commit = strcmp(v, "group") == 0 ? 1 : -1;
    } else if (strcmp(f, "--idle-timeout") == 0) {
        if (number(f, v, 1, 3600, &x))
            return 2;
        o->hc.timeout_s = (unsigned)x;
    } else if (strcmp(f, "--request-timeout") == 0) {
        if (number(f, v, 0, 3600, &x))
            return 2;
        o->hc.request_timeout_s = (unsigned)x;
    } else if (strcmp(f, "--webhook-attempts") == 0) {
        if (number(f, v, 1, 100, &x))
            return 2;
        o->wc.attempts = (int)x;
    } else if (strcmp(f, "--webhook-backoff") == 0) {
        if (number(f, v, 0.01, 3600, &o->wc.backoff_s))
            return 2;
    } else if (strcmp(f, "--drain-timeout") == 0) {
        if (number(f, v, 0, 3600, &x))
            return 2;
        o->drain_s = (int)x;
    } else {
        return bad("unknown option '%s' for 'serve' (see kefu serve --help)", f);
    }
    return 0;
}

/* Returns 0, 1 for --help, or 2 after an error. */
static int parse(int argc, char **argv, struct serve_opts *o)
{
    memset(o, 0, sizeof *o);
    dialog_config_default(&o->dc);
    o->dc.watch_ms = 5000;
    http_config_default(&o->hc);
    o->rate = 20;
    o->drain_s = 10;
    if (read_env(o))
        return 2;
    for (int i = 1; i < argc; i += 2) { /* every flag takes a value */
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0)
            return 1;
        if (argv[i][0] != '-')
            return bad("serve takes no arguments ('%s')", argv[i]);
        if (i + 1 >= argc)
            return bad("option '%s' needs a value", argv[i]);
        if (flag(o, argv[i], argv[i + 1]))
            return 2;
    }
    o->ac.rate_ip = o->rate;
    o->ac.rate_conv = o->rate > 0 ? 2 : 0;
    return 0;
}

static void log_diag(const struct rules_diag *d)
{
    for (size_t k = 0; k < d->n; k++) {
        const struct rules_msg *m = &d->v[k];
        log_msg(m->severity == RULES_ERROR ? LOG_LEVEL_ERROR : LOG_LEVEL_WARN, "%s:%d:%d: %s",
                m->file ? m->file : "", m->line, m->col, m->text ? m->text : "");
    }
}

static void reload(struct dialog *d)
{
    struct rules_diag diag;
    rules_diag_init(&diag);
    int rc = dialog_reload(d, &diag);
    log_diag(&diag);
    if (rc < 0)
        log_msg(LOG_LEVEL_ERROR, "reload failed (%d errors); the running rules stay", diag.errors);
    else
        log_msg(LOG_LEVEL_INFO, "rules reloaded");
    rules_diag_release(&diag);
}

/* Waits for signals until SIGTERM or SIGINT; returns the signal. */
/* Prints the demo shop's and the agent console's URLs when the web directory has them. */
static void print_pages(const char *web, const char *url)
{
    char path[4096];
    if (!web || snprintf(path, sizeof path, "%s/demo/index.html", web) >= (int)sizeof path ||
        access(path, R_OK) != 0)
        return;
    printf("kefu: demo shop with the chat widget on %s/demo\n", url);
    if (snprintf(path, sizeof path, "%s/console/index.html", web) < (int)sizeof path &&
        access(path, R_OK) == 0)
        printf("kefu: agent console on %s/console\n", url);
}

static int wait_signals(int fd, struct dialog *d)
{
    for (;;) {
        struct signalfd_siginfo si;
        ssize_t n = read(fd, &si, sizeof si);
        if (n != (ssize_t)sizeof si)
            continue;
        if (si.ssi_signo == SIGHUP) {
            log_msg(LOG_LEVEL_INFO, "SIGHUP: reloading the rules");
            reload(d);
            continue;
        }
        return (int)si.ssi_signo;
    }
}

/* The webhook sender on a store connection of its own (the outbox of the
 * data directory's kefu.db, or of the --store database every node shares).
 * Returns 0, or the exit code after a message. */
static int start_webhooks(struct serve_opts *o, struct store **st, struct webhook **wh)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/kefu.db", o->dc.data_dir);
    const char *where = o->dc.store ? o->dc.store : path;
    int rc = store_open(where, &(struct store_opts){.readers = 1, .cache_slots = -1}, st);
    if (rc < 0) {
        fprintf(stderr, "kefu: cannot open the store '%s' for the webhooks: %s\n",
                o->dc.store ? "(the --store URI)" : path, kefu_strerror(rc));
        return 1;
    }
    o->wc.store = *st;
    o->wc.urls = o->hook_urls;
    o->wc.n_urls = o->dc.n_outbox;
    if ((rc = webhook_create(&o->wc, wh)) < 0) {
        if (rc == KEFU_ENOENT)
            fprintf(stderr, "kefu: cannot read the webhook CA file '%s'\n", o->wc.ca_file);
        else
            fprintf(stderr, "kefu: cannot start the webhooks: %s\n", kefu_strerror(rc));
        store_close(*st);
        *st = NULL;
        return 2;
    }
    return 0;
}

static int run(struct serve_opts *o, int sfd)
{
    struct rules_diag diag;
    rules_diag_init(&diag);
    struct dialog *d = NULL;
    struct actions *acts = NULL;
    char err[512];
    if (o->actions_file && actions_load(o->actions_file, err, sizeof err, &acts) < 0) {
        fprintf(stderr, "kefu: %s\n", err);
        return 1;
    }
    o->dc.actions = acts;
    int rc = dialog_open(&o->dc, &diag, &d);
    if (rc < 0) {
        actions_free(acts);
        rules_diag_print(stderr, &diag);
        rules_diag_release(&diag);
        fprintf(stderr, "kefu: cannot open the engine (data '%s', rules '%s'): %s: %s\n", o->dc.data_dir,
                o->dc.rules_dir, kefu_strerror(rc), dialog_error());
        return 1;
    }
    log_diag(&diag);
    rules_diag_release(&diag);
    o->ac.dialog = d;
    struct webhook *wh = NULL;
    struct store *wst = NULL;
    if (o->dc.n_outbox && (rc = start_webhooks(o, &wst, &wh)) != 0) {
        dialog_close(d);
        actions_free(acts);
        return rc;
    }
    o->ac.webhook = wh;
    struct http *h = NULL;
    if ((rc = http_start(&o->hc, &o->ac, &h)) < 0) {
        fprintf(stderr, "kefu: cannot listen on '%s': %s\n", o->hc.listen,
                rc == KEFU_EINVAL ? "not ADDR:PORT" : "address in use or not available");
        webhook_free(wh);
        store_close(wst);
        dialog_close(d);
        actions_free(acts);
        return 1;
    }
    char url[200];
    http_url(h, url, sizeof url);
    printf("kefu: serving on %s\n", url);
    print_pages(o->hc.web_dir, url);
    fflush(stdout);
    json_t *f = json_pack("{s:s}", "url", url);
    log_json(LOG_LEVEL_INFO, "listening", f);
    json_decref(f);
    int sig = wait_signals(sfd, d);
    log_msg(LOG_LEVEL_INFO, "%s: draining", sig == SIGINT ? "SIGINT" : "SIGTERM");
    int left = http_drain(h, o->drain_s * 1000);
    http_stop(h);
    webhook_free(wh); /* what is on the wire stays pending, sent after the next start */
    store_close(wst);
    dialog_close(d);
    actions_free(acts); /* after the dialog: no turn waits for an action any more */
    log_msg(LOG_LEVEL_INFO, "stopped (%d requests cut)", left);
    return 0;
}

int serve_main(int argc, char **argv)
{
    struct serve_opts o;
    int rc = parse(argc, argv, &o);
    if (rc == 1) {
        puts(usage_text);
        return 0;
    }
    if (rc)
        return rc;
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGHUP);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    pthread_sigmask(SIG_BLOCK, &set, NULL); /* before any thread exists: all inherit it */
    signal(SIGPIPE, SIG_IGN);
    int sfd = signalfd(-1, &set, SFD_CLOEXEC);
    if (sfd < 0)
        return bad("cannot create a signalfd%s", "");
    rc = run(&o, sfd);
    close(sfd);
    return rc;
}
