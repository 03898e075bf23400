/* fuzz_api.c — libFuzzer target for the HTTP API handlers without a
 * socket: the input is one request in a small text form,
 *
 *     METHOD PATH[?QUERY]
 *     Header: value          (Content-Type, Authorization, X-Kefu-Token,
 *     ...                     Origin, Last-Event-ID)
 *
 *     BODY
 *
 * turned into a struct api_request for api_handle() on the real engine
 * (dialog_open() over a temporary data directory, the bundled rules and
 * the bundled corpus, so that replies link real articles), opened once per
 * process. So that inputs reach the
 * handlers behind authentication, the harness makes two conversations and
 * an agent at start, and replaces $C1/$T1 and $C2/$T2 (their ids and
 * tokens), $A (the agent's token) and $K (the admin token) anywhere in the
 * input. Requests take the server's path: a customer message is started
 * with a completion (api_request.done), waited for and finished with
 * api_finish(); a long-poll is answered at once (api_poll() final), a
 * stream yields its first events. What must hold for every request: a status in
 * 200..599 and never 500; an error status comes with
 * {"error":{"code":string,"message":string}}; Access-Control-Allow-Origin
 * is only ever the one allowed origin, and only when asked for by it; and
 * conversation 2's token never gets a 2xx on conversation 1. */
#include "api.h"
#include "dialog.h"
#include "kefu.h"
#include "log.h"

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fuzz.h"

#define ORIGIN      "https://shop.example"
#define AGENT_TOKEN "tok-alice-0123456789"
#define ADMIN_TOKEN "adm-0123456789abcdef"
#define MAX_REQ     (API_BODY_MAX + 4096)

static struct dialog *dlg;
static struct api *api;
static char data_dir[256];
static char conv[2][API_ID_MAX + 1], token[2][128];
static double clock_s;

/* The completion of a message in flight: set on the store's writer thread. */
static pthread_mutex_t done_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t done_cond = PTHREAD_COND_INITIALIZER;
static int done_flag;

static void on_done(void *ctx)
{
    pthread_mutex_lock(&done_lock);
    done_flag = 1;
    pthread_cond_signal(&done_cond);
    pthread_mutex_unlock(&done_lock);
}

/* Waits for the completion and takes it: the next one (a message that runs
 * again after an action answered or behind another) waits anew. */
static void wait_done(void)
{
    pthread_mutex_lock(&done_lock);
    while (!done_flag)
        pthread_cond_wait(&done_cond, &done_lock);
    done_flag = 0;
    pthread_mutex_unlock(&done_lock);
}

static void make_conv(int k)
{
    json_t *req = json_pack("{s:s, s:{s:s}}", "channel", "web", "customer", "id", k ? "fuzz-b" : "fuzz-a");
    json_t *out = NULL;
    if (!req || dialog_conversation_create(dlg, req, &out) != 0)
        abort();
    snprintf(conv[k], sizeof conv[k], "%s", json_string_value(json_object_get(out, "id")));
    snprintf(token[k], sizeof token[k], "%s", json_string_value(json_object_get(out, "token")));
    json_decref(req);
    json_decref(out);
}

/* Removes the data directory at exit (the engine is closed first). */
static void cleanup(void)
{
    dialog_close(dlg);
    api_free(api);
    const char *names[] = {"kefu.db", "kefu.db-wal", "kefu.db-shm", "kb.db", "kb.db-wal", "kb.db-shm"};
    char p[512];
    for (size_t k = 0; k < sizeof names / sizeof names[0]; k++) {
        snprintf(p, sizeof p, "%s/%s", data_dir, names[k]);
        unlink(p);
    }
    rmdir(data_dir);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    struct stat st;
    /* the store commits with synchronous=FULL: on tmpfs that costs nothing */
    const char *base = stat("/dev/shm", &st) == 0 && access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
    if (getenv("KEFU_FUZZ_TMP")) /* tests/fuzz.sh's own directory, removed after the run whatever happens */
        base = getenv("KEFU_FUZZ_TMP");
    snprintf(data_dir, sizeof data_dir, "%s/kefu-fuzz-api-XXXXXX", base);
    if (!mkdtemp(data_dir))
        abort();
    log_init(LOG_LEVEL_OFF, NULL);
    struct dialog_config dc;
    dialog_config_default(&dc);
    dc.data_dir = data_dir;
    dc.rules_dir = KEFU_SRC_DIR "/rules";
    dc.corpus_dir = KEFU_SRC_DIR "/corpus";
    dc.agents = "alice:" AGENT_TOKEN;
    struct rules_diag d;
    rules_diag_init(&d);
    if (dialog_open(&dc, &d, &dlg) != 0) {
        rules_diag_print(stderr, &d);
        fprintf(stderr, "fuzz_api: cannot open the engine: %s\n", dialog_error());
        abort();
    }
    rules_diag_release(&d);
    struct api_config ac = {.dialog = dlg, .admin_token = ADMIN_TOKEN, .cors = {ORIGIN}, .n_cors = 1};
    if (api_create(&ac, &api) != 0)
        abort();
    make_conv(0);
    make_conv(1);
    atexit(cleanup);
    return 0;
}

/* Copies in[0..n) to out with the placeholders replaced; returns the length. */
static size_t expand(const char *in, size_t n, char *out, size_t cap)
{
    size_t o = 0;
    for (size_t i = 0; i < n && o + 1 < cap;) {
        const char *rep = NULL;
        size_t skip = 0;
        if (in[i] == '$' && i + 2 < n + 1) {
            char a = i + 1 < n ? in[i + 1] : 0, b = i + 2 < n ? in[i + 2] : 0;
            if ((a == 'C' || a == 'T') && (b == '1' || b == '2')) {
                rep = a == 'C' ? conv[b - '1'] : token[b - '1'];
                skip = 3;
            } else if (a == 'A') {
                rep = AGENT_TOKEN, skip = 2;
            } else if (a == 'K') {
                rep = ADMIN_TOKEN, skip = 2;
            }
        }
        if (rep) {
            size_t r = strlen(rep);
            if (o + r + 1 >= cap)
                break;
            memcpy(out + o, rep, r);
            o += r;
            i += skip;
        } else {
            out[o++] = in[i++];
        }
    }
    out[o] = 0;
    return o;
}

/* Splits "k=v&k=v" into the four query arguments api.h knows. */
static void query(char *q, struct api_request *r)
{
    for (char *save = NULL, *kv = strtok_r(q, "&", &save); kv; kv = strtok_r(NULL, "&", &save)) {
        char *eq = strchr(kv, '=');
        const char *v = eq ? (*eq = 0, eq + 1) : "";
        if (strcmp(kv, "after") == 0)
            r->q_after = v;
        else if (strcmp(kv, "wait") == 0)
            r->q_wait = v;
        else if (strcmp(kv, "token") == 0)
            r->q_token = v;
        else if (strcmp(kv, "since") == 0)
            r->q_since = v;
    }
}

static void header(char *line, struct api_request *r)
{
    char *colon = strchr(line, ':');
    if (!colon)
        return;
    *colon = 0;
    const char *v = colon + 1;
    while (*v == ' ')
        v++;
    static const struct {
        const char *name;
        size_t off;
    } known[] = {
        {"content-type", offsetof(struct api_request, content_type)},
        {"authorization", offsetof(struct api_request, authorization)},
        {"x-kefu-token", offsetof(struct api_request, kefu_token)},
        {"origin", offsetof(struct api_request, origin)},
        {"last-event-id", offsetof(struct api_request, last_event_id)},
    };
    for (size_t k = 0; k < sizeof known / sizeof known[0]; k++)
        if (strcasecmp(line, known[k].name) == 0)
            *(const char **)(void *)((char *)r + known[k].off) = v;
}

/* Does the request carry conversation 2's token on conversation 1, and no
 * credential that may open conversation 1 (its own token, the agent's or the
 * admin's) in any field the server reads one from? */
static int swapped_token(const struct api_request *r)
{
    const char *t[] = {r->authorization, r->kefu_token, r->q_token};
    int has = 0;
    for (size_t k = 0; k < 3; k++) {
        if (!t[k])
            continue;
        if (strstr(t[k], token[0]) || strstr(t[k], AGENT_TOKEN) || strstr(t[k], ADMIN_TOKEN))
            return 0;
        if (strstr(t[k], token[1]))
            has = 1;
    }
    char seg[API_ID_MAX + 32];
    snprintf(seg, sizeof seg, "/conversations/%s", conv[0]);
    const char *p = strstr(r->path, seg);
    return has && p && (p[strlen(seg)] == 0 || p[strlen(seg)] == '/');
}

static void check(const struct api_request *r, const struct api_response *resp)
{
    MUST(resp->status >= 200 && resp->status <= 599);
    MUST(resp->status != 500);
    if (resp->status >= 400) {
        json_t *e = json_object_get(resp->json, "error");
        MUST(json_is_string(json_object_get(e, "code")) && json_is_string(json_object_get(e, "message")));
    }
    if (resp->json) {
        char *s = json_dumps(resp->json, JSON_COMPACT);
        MUST(s != NULL);
        free(s);
    }
    if (resp->cors_origin)
        MUST(r->origin && strcmp(r->origin, ORIGIN) == 0 && strcmp(resp->cors_origin, ORIGIN) == 0);
    /* a CORS preflight reads no token and answers alike for every caller */
    if (swapped_token(r) && strcmp(r->method, "OPTIONS") != 0)
        MUST(resp->status >= 400);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static char buf[MAX_REQ];
    if (size > API_BODY_MAX + 1024)
        return 0;
    size_t n = expand((const char *)data, size, buf, sizeof buf);
    struct api_request r = {.ip = "127.0.0.1", .done = on_done};
    char *nl = memchr(buf, '\n', n);
    char *line_end = nl ? nl : buf + n;
    *line_end = 0;
    char *sp = strchr(buf, ' ');
    if (!sp)
        return 0;
    *sp = 0;
    r.method = buf;
    char *path = sp + 1;
    char *qm = strchr(path, '?');
    if (qm) {
        *qm = 0;
        query(qm + 1, &r);
    }
    r.path = path;
    char *p = nl ? nl + 1 : buf + n;
    while (p < buf + n) { /* headers up to an empty line */
        char *e = memchr(p, '\n', (size_t)(buf + n - p));
        if (!e)
            e = buf + n;
        if (e == p) {
            p++;
            break;
        }
        *e = 0;
        header(p, &r);
        p = e + 1;
    }
    r.body = p < buf + n ? p : NULL;
    r.body_len = p < buf + n ? (size_t)(buf + n - p) : 0;
    r.now = (clock_s += 0.001);

    struct api_response resp;
    api_response_init(&resp);
    done_flag = 0;
    api_handle(api, &r, &resp);
    if (resp.push == API_PUSH_COMMIT) {
        int rounds = 0;
        do { /* an action's answer, then the commit: each completion is one finish */
            wait_done();
            api_finish(api, &resp);
        } while (resp.push == API_PUSH_COMMIT && ++rounds < 8);
        MUST(resp.push == API_PUSH_NONE);
    } else if (resp.push == API_PUSH_WAIT) {
        MUST(api_poll(api, resp.conv, resp.after, 1, &resp) == 1);
    } else if (resp.push == API_PUSH_STREAM) {
        struct text_buf out;
        text_buf_init(&out);
        long after = resp.after;
        int rc = api_events(api, resp.conv, &after, &out);
        MUST(rc >= 0 || rc == KEFU_ENOENT);
        MUST(after >= resp.after);
        text_buf_release(&out);
    }
    check(&r, &resp);
    api_response_release(&resp);
    return 0;
}
