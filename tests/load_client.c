/* load_client.c — the load behind tests/crash.sh and tests/soak.sh: plain
 * HTTP/1.1 over keep-alive loopback connections, one per thread, bounded
 * in time and count.
 *
 *   load_client crash URL THREADS SECONDS ACKS TAG
 *     THREADS writers each create a conversation and post messages with
 *     client_id TAG-<thread>-<n> until SECONDS pass or the server goes
 *     away (it is killed with SIGKILL meanwhile). Every message answered
 *     2xx is appended to ACKS as "<conversation> <client_id>" — the list
 *     the script then looks for in the database. With LOAD_NACKS=FILE set,
 *     every other answer is appended there as "<conversation> <client_id>
 *     <status>" and the writer goes on (a full disk comes and goes).
 *
 *   load_client soak URL SECONDS AGENT_TOKEN PAUSE_MS
 *     steady mixed traffic: customer threads open conversations, ask
 *     questions, poll, ask for a person and rate; an agent thread claims,
 *     reads the context, replies and resolves. Any unexpected status is
 *     an error; prints the counts and exits 1 if there was one.
 *
 * It talks only to 127.0.0.1 / ::1 URLs. */
#include <arpa/inet.h>
#include <errno.h>
#include <jansson.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#define MAX_THREADS 128
#define BUF_CAP     (256 << 10)

static char host[64];
static int port;
static double deadline;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static void pause_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* One keep-alive connection and its receive buffer. */
struct conn {
    int fd;
    char *buf;
    size_t len;
};

static int conn_open(struct conn *c)
{
    c->len = 0;
    c->fd = socket(AF_INET, SOCK_STREAM, 0);
    if (c->fd < 0)
        return -1;
    struct timeval tv = {15, 0};
    setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(c->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    inet_pton(AF_INET, host, &a.sin_addr);
    if (connect(c->fd, (struct sockaddr *)&a, sizeof a) < 0) {
        close(c->fd);
        c->fd = -1;
        return -1;
    }
    return 0;
}

static void conn_close(struct conn *c)
{
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
}

/* Sends one request and reads the response; *body points into c->buf
 * (NUL-terminated). Returns the status, or -1 when the connection failed
 * (the server is gone or cut us off). */
static int request(struct conn *c, const char *method, const char *path, const char *auth, const char *body,
                   const char **resp)
{
    if (c->fd < 0 && conn_open(c) < 0)
        return -1;
    char head[1024];
    size_t bl = body ? strlen(body) : 0;
    int hl =
        snprintf(head, sizeof head, "%s %s HTTP/1.1\r\nHost: %s:%d\r\n%s%s%s%sContent-Length: %zu\r\n\r\n",
                 method, path, host, port, body ? "Content-Type: application/json\r\n" : "",
                 auth ? "Authorization: Bearer " : "", auth ? auth : "", auth ? "\r\n" : "", bl);
    if (send(c->fd, head, (size_t)hl, MSG_NOSIGNAL) != hl ||
        (bl && send(c->fd, body, bl, MSG_NOSIGNAL) != (ssize_t)bl)) {
        conn_close(c);
        return -1;
    }
    c->len = 0;
    size_t need = 0, hdr = 0;
    int status = -1, close_after = 0;
    for (;;) {
        if (hdr && c->len >= hdr + need)
            break;
        if (c->len + 1 >= BUF_CAP) {
            conn_close(c);
            return -1;
        }
        ssize_t n = recv(c->fd, c->buf + c->len, BUF_CAP - 1 - c->len, 0);
        if (n <= 0) {
            conn_close(c);
            return -1;
        }
        c->len += (size_t)n;
        c->buf[c->len] = 0;
        if (!hdr) {
            char *e = strstr(c->buf, "\r\n\r\n");
            if (!e)
                continue;
            hdr = (size_t)(e - c->buf) + 4;
            if (sscanf(c->buf, "HTTP/1.%*d %d", &status) != 1) {
                conn_close(c);
                return -1;
            }
            char *cl = strcasestr(c->buf, "\r\ncontent-length:");
            if (!cl || cl > e) { /* every answer of ours has a length */
                conn_close(c);
                return -1;
            }
            need = strtoul(cl + 17, NULL, 10);
            char *cc = strcasestr(c->buf, "\r\nconnection: close");
            close_after = cc && cc < e;
        }
    }
    c->buf[hdr + need] = 0;
    *resp = c->buf + hdr;
    if (close_after)
        conn_close(c);
    return status;
}

/* ---- crash ---- */

/* A growing text of lines. */
struct lines {
    char *s;
    size_t n, cap, count;
};

static void lines_add(struct lines *l, const char *conv, const char *cid, int status)
{
    size_t need = strlen(conv) + strlen(cid) + 16;
    if (l->n + need + 1 > l->cap) {
        l->cap = (l->cap + need) * 2;
        l->s = realloc(l->s, l->cap);
        if (!l->s)
            abort();
    }
    l->n += (size_t)(status ? sprintf(l->s + l->n, "%s %s %d\n", conv, cid, status)
                            : sprintf(l->s + l->n, "%s %s\n", conv, cid));
    l->count++;
}

struct writer {
    int id;
    const char *tag;
    struct lines acks, nacks;
    size_t sent;
    int errors;
};

static int keep_going; /* LOAD_NACKS set: non-2xx answers are logged, not fatal */

static const char *const texts[] = {
    "where is my order KF12345678", "hello",      "how do I get a refund",   "退款什么时候到账", "asdf qwer",
    "can I change my address",      "发票怎么开", "my parcel never arrived",
};

static void *crash_writer(void *arg)
{
    struct writer *w = arg;
    struct conn c = {-1, malloc(BUF_CAP), 0};
    char body[512], path[160], conv[80], token[80];
    const char *resp;
    snprintf(body, sizeof body, "{\"channel\":\"web\",\"customer\":{\"id\":\"crash-%s-%d\"}}", w->tag, w->id);
    int s = request(&c, "POST", "/v1/conversations", NULL, body, &resp);
    json_t *j = s == 201 ? json_loads(resp, 0, NULL) : NULL;
    const char *id = json_string_value(json_object_get(j, "id")),
               *tok = json_string_value(json_object_get(j, "token"));
    if (!id || !tok) {
        if (s > 0)
            w->errors++, fprintf(stderr, "create: status %d\n", s);
        json_decref(j);
        free(c.buf);
        conn_close(&c);
        return NULL;
    }
    snprintf(conv, sizeof conv, "%s", id);
    snprintf(token, sizeof token, "%s", tok);
    json_decref(j);
    snprintf(path, sizeof path, "/v1/conversations/%s/messages", conv);
    for (int n = 0; now_s() < deadline; n++) {
        char cid[96];
        snprintf(cid, sizeof cid, "%s-%d-%d", w->tag, w->id, n);
        snprintf(body, sizeof body, "{\"text\":\"%s (%s)\",\"client_id\":\"%s\"}",
                 texts[(unsigned)(n + w->id) % (sizeof texts / sizeof texts[0])], cid, cid);
        w->sent++;
        s = request(&c, "POST", path, token, body, &resp);
        if (s < 0)
            break; /* the server is gone: what it acknowledged is in acks */
        if (s >= 200 && s < 300)
            lines_add(&w->acks, conv, cid, 0);
        else if (keep_going)
            lines_add(&w->nacks, conv, cid, s);
        else
            w->errors++, fprintf(stderr, "message: status %d %s\n", s, resp);
    }
    conn_close(&c);
    free(c.buf);
    return NULL;
}

static int run_crash(int threads, double seconds, const char *acks, const char *tag)
{
    static struct writer w[MAX_THREADS];
    pthread_t th[MAX_THREADS];
    deadline = now_s() + seconds;
    keep_going = getenv("LOAD_NACKS") != NULL;
    for (int i = 0; i < threads; i++) {
        w[i] = (struct writer){.id = i, .tag = tag};
        pthread_create(&th[i], NULL, crash_writer, &w[i]);
    }
    const char *nacks = getenv("LOAD_NACKS");
    FILE *f = fopen(acks, "a"), *nf = nacks ? fopen(nacks, "a") : NULL;
    if (!f || (nacks && !nf))
        return 2;
    size_t total = 0, refused = 0, sent = 0;
    int errors = 0;
    for (int i = 0; i < threads; i++) {
        pthread_join(th[i], NULL);
        fwrite(w[i].acks.s ? w[i].acks.s : "", 1, w[i].acks.n, f);
        if (nf)
            fwrite(w[i].nacks.s ? w[i].nacks.s : "", 1, w[i].nacks.n, nf);
        total += w[i].acks.count;
        refused += w[i].nacks.count;
        sent += w[i].sent;
        errors += w[i].errors;
        free(w[i].acks.s);
        free(w[i].nacks.s);
    }
    fclose(f);
    if (nf)
        fclose(nf);
    printf("sent %zu acked %zu refused %zu errors %d\n", sent, total, refused, errors);
    return errors ? 1 : 0;
}

/* ---- soak ---- */

static atomic_long n_req, n_err, n_conv, n_handoff, n_resolved;
static const char *agent_token;
static int soak_pause;

/* Counts a request; any status outside ok (and not in also) is an error. */
static int expect(int s, int ok, int also, const char *what, const char *resp)
{
    atomic_fetch_add(&n_req, 1);
    if (s == ok || (also && s == also))
        return 0;
    atomic_fetch_add(&n_err, 1);
    fprintf(stderr, "soak: %s: status %d %.200s\n", what, s, s > 0 && resp ? resp : "");
    return -1;
}

static const char *const questions[] = {
    "where is my order KF12345678",
    "how do I get a refund",
    "退款什么时候到账",
    "how much is shipping",
    "发票怎么开",
    "zzz qqq",
    "reset my password",
    "优惠券怎么用",
};

/* One customer conversation: questions, polls, a request for a person,
 * waiting for the agent's answer, a rating. */
static void customer_round(struct conn *c, int id, unsigned *seed)
{
    char body[512], path[200], conv[80], token[80];
    const char *resp;
    snprintf(body, sizeof body, "{\"channel\":\"web\",\"customer\":{\"id\":\"soak-%d-%u\"}}", id, *seed % 50);
    int s = request(c, "POST", "/v1/conversations", NULL, body, &resp);
    if (expect(s, 201, 0, "create", resp) < 0)
        return;
    json_t *j = json_loads(resp, 0, NULL);
    snprintf(conv, sizeof conv, "%s", json_string_value(json_object_get(j, "id")));
    snprintf(token, sizeof token, "%s", json_string_value(json_object_get(j, "token")));
    json_decref(j);
    atomic_fetch_add(&n_conv, 1);
    int asks = 2 + (int)(rand_r(seed) % 3);
    for (int k = 0; k < asks && now_s() < deadline; k++) {
        snprintf(path, sizeof path, "/v1/conversations/%s/messages", conv);
        snprintf(body, sizeof body, "{\"text\":\"%s\"}", questions[rand_r(seed) % 8]);
        if (expect(request(c, "POST", path, token, body, &resp), 200, 0, "message", resp) < 0)
            return;
        pause_ms(soak_pause);
        snprintf(path, sizeof path, "/v1/conversations/%s/messages?after=0", conv);
        if (expect(request(c, "GET", path, token, NULL, &resp), 200, 0, "poll", resp) < 0)
            return;
        pause_ms(soak_pause);
    }
    if (rand_r(seed) % 2 == 0)
        return; /* half leave without a person */
    snprintf(path, sizeof path, "/v1/conversations/%s/messages", conv);
    if (expect(request(c, "POST", path, token, "{\"text\":\"转人工\"}", &resp), 200, 0, "handoff", resp) < 0)
        return;
    atomic_fetch_add(&n_handoff, 1);
    /* wait (bounded) for the agent to answer and resolve */
    for (int k = 0; k < 40 && now_s() < deadline; k++) {
        snprintf(path, sizeof path, "/v1/conversations/%s/messages?after=0&wait=1", conv);
        if (expect(request(c, "GET", path, token, NULL, &resp), 200, 0, "wait", resp) < 0)
            return;
        if (strstr(resp, "\"state\":\"resolved\"")) {
            snprintf(path, sizeof path, "/v1/conversations/%s/feedback", conv);
            expect(request(c, "POST", path, token, "{\"rating\":5,\"comment\":\"thanks\"}", &resp), 200, 0,
                   "feedback", resp);
            return;
        }
    }
}

static void *soak_customer(void *arg)
{
    int id = (int)(long)arg;
    unsigned seed = (unsigned)id * 7919u + 1;
    struct conn c = {-1, malloc(BUF_CAP), 0};
    while (now_s() < deadline)
        customer_round(&c, id, &seed);
    conn_close(&c);
    free(c.buf);
    return NULL;
}

static void *soak_agent(void *arg)
{
    (void)arg;
    struct conn c = {-1, malloc(BUF_CAP), 0};
    const char *resp;
    char path[200], conv[80];
    while (now_s() < deadline) {
        if (expect(request(&c, "GET", "/v1/queue", agent_token, NULL, &resp), 200, 0, "queue", resp) < 0)
            break;
        int s = request(&c, "POST", "/v1/queue/claim", agent_token, NULL, &resp);
        if (expect(s, 200, 404, "claim", resp) < 0)
            break;
        if (s == 404) { /* nothing waits */
            pause_ms(100);
            continue;
        }
        json_t *j = json_loads(resp, 0, NULL);
        const char *id = json_string_value(json_object_get(json_object_get(j, "conversation"), "id"));
        snprintf(conv, sizeof conv, "%s", id ? id : "");
        json_decref(j);
        snprintf(path, sizeof path, "/v1/conversations/%s", conv);
        if (expect(request(&c, "GET", path, agent_token, NULL, &resp), 200, 0, "context", resp) < 0)
            break;
        snprintf(path, sizeof path, "/v1/conversations/%s/agent-messages", conv);
        if (expect(
                request(&c, "POST", path, agent_token, "{\"text\":\"Hello, I am looking into it.\"}", &resp),
                200, 0, "reply", resp) < 0)
            break;
        pause_ms(soak_pause);
        snprintf(path, sizeof path, "/v1/conversations/%s/resolve", conv);
        if (expect(request(&c, "POST", path, agent_token, NULL, &resp), 200, 0, "resolve", resp) < 0)
            break;
        atomic_fetch_add(&n_resolved, 1);
    }
    conn_close(&c);
    free(c.buf);
    return NULL;
}

static int run_soak(double seconds, const char *token, int pause, int customers)
{
    agent_token = token;
    soak_pause = pause;
    deadline = now_s() + seconds;
    pthread_t th[MAX_THREADS];
    int n = customers > MAX_THREADS - 1 ? MAX_THREADS - 1 : customers;
    for (int i = 0; i < n; i++)
        pthread_create(&th[i], NULL, soak_customer, (void *)(long)i);
    pthread_create(&th[n], NULL, soak_agent, NULL);
    for (int i = 0; i <= n; i++)
        pthread_join(th[i], NULL);
    printf("requests %ld errors %ld conversations %ld handoffs %ld resolved %ld\n", atomic_load(&n_req),
           atomic_load(&n_err), atomic_load(&n_conv), atomic_load(&n_handoff), atomic_load(&n_resolved));
    return atomic_load(&n_err) ? 1 : 0;
}

/* Takes http://127.0.0.1:PORT (or http://[::1]... is refused: IPv4 only here). */
static int parse_url(const char *url)
{
    if (sscanf(url, "http://%63[0-9.]:%d", host, &port) != 2 || strcmp(host, "127.0.0.1") != 0)
        return -1;
    return 0;
}

int main(int argc, char **argv)
{
    if (argc == 7 && strcmp(argv[1], "crash") == 0 && parse_url(argv[2]) == 0) {
        int t = atoi(argv[3]);
        if (t < 1 || t > MAX_THREADS)
            t = 64;
        return run_crash(t, atof(argv[4]), argv[5], argv[6]);
    }
    if (argc == 7 && strcmp(argv[1], "soak") == 0 && parse_url(argv[2]) == 0)
        return run_soak(atof(argv[3]), argv[4], atoi(argv[5]), atoi(argv[6]));
    fprintf(stderr, "usage: load_client crash http://127.0.0.1:PORT THREADS SECONDS ACKS TAG\n"
                    "       load_client soak http://127.0.0.1:PORT SECONDS AGENT_TOKEN PAUSE_MS CUSTOMERS\n");
    return 2;
}
