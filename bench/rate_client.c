/* rate_client.c — a bounded constant-rate HTTP client for bench/http.sh:
 * latency at a fixed request rate, which wrk (closed loop: the next
 * request leaves when the last answer came) cannot measure. Request i is
 * due at start + i / RATE whatever happened before it; it goes out on the
 * first idle keep-alive connection at or after that time, and its latency
 * runs from the due time to the last byte of the answer, so a stall of
 * the server counts against every request it delayed (no coordinated
 * omission). One thread, epoll, CONNS connections to 127.0.0.1:PORT;
 * requests POST {"text": TEXT} to /v1/conversations/ID/messages with the
 * bearer TOKEN of the next conversation of CONVFILE ("id token" lines).
 * Bounded: RATE * SECONDS requests, then at most 10 s for the stragglers.
 * Prints one JSON line: rate asked and reached, sent, answered, errors
 * (non-2xx, cut connections, unanswered), latency p50/p90/p99/p999/max in
 * milliseconds.
 * Usage: rate_client PORT RATE SECONDS CONNS CONVFILE TEXT */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_CONNS 1024
#define BUF       16384

struct conn {
    int fd, busy;
    double due; /* of the request in flight */
    char in[BUF];
    size_t len;
    char out[1024];
    size_t out_len, out_off;
};

static struct conn conns[MAX_CONNS];
static int n_conns, ep;
static char (*ids)[72], (*tokens)[72];
static size_t n_convs;
static double *lat;
static long answered, errors;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static int connect_one(struct conn *c, unsigned port)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c->fd < 0)
        return -1;
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (connect(c->fd, (struct sockaddr *)&sa, sizeof sa) < 0 && errno != EINPROGRESS)
        return -1;
    struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT | EPOLLET, .data.ptr = c};
    return epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev);
}

static void flush_out(struct conn *c)
{
    while (c->out_off < c->out_len) {
        ssize_t n = send(c->fd, c->out + c->out_off, c->out_len - c->out_off, MSG_NOSIGNAL);
        if (n <= 0)
            return; /* EAGAIN: EPOLLOUT brings us back; an error shows up on read */
        c->out_off += (size_t)n;
    }
}

static void send_request(struct conn *c, long i, double due, const char *text)
{
    size_t k = (size_t)i % n_convs;
    char body[512];
    int bl = snprintf(body, sizeof body, "{\"text\":\"%s\"}", text);
    c->out_len = (size_t)snprintf(c->out, sizeof c->out,
                                  "POST /v1/conversations/%s/messages HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                                  "Authorization: Bearer %s\r\nContent-Type: application/json\r\n"
                                  "Content-Length: %d\r\n\r\n%s",
                                  ids[k], tokens[k], bl, body);
    c->out_off = 0;
    c->busy = 1;
    c->due = due;
    c->len = 0;
    flush_out(c);
}

/* Returns the length of a complete response at the head of c->in, 0 if incomplete. */
static size_t complete(struct conn *c, int *status)
{
    c->in[c->len < BUF ? c->len : BUF - 1] = 0;
    char *end = strstr(c->in, "\r\n\r\n");
    if (!end)
        return 0;
    *status = atoi(c->in + 9); /* "HTTP/1.1 200" */
    char *cl = strcasestr(c->in, "\r\nContent-Length:");
    size_t body = cl && cl < end ? strtoul(cl + 17, NULL, 10) : 0;
    size_t total = (size_t)(end + 4 - c->in) + body;
    return c->len >= total ? total : 0;
}

static void on_readable(struct conn *c, double *lat_out)
{
    for (;;) {
        ssize_t n = recv(c->fd, c->in + c->len, BUF - 1 - c->len, 0);
        if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK)) {
            c->busy = 0; /* its request stays unanswered */
            close(c->fd);
            c->fd = -1;
            return;
        }
        if (n < 0)
            break;
        c->len += (size_t)n;
        if (c->len >= BUF - 1)
            break;
    }
    int status = 0;
    if (c->busy && complete(c, &status)) {
        lat_out[answered++] = now_s() - c->due;
        if (status < 200 || status > 299)
            errors++;
        c->busy = 0;
        c->len = 0;
    }
}

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double pct(double p)
{
    if (!answered)
        return 0;
    size_t k = (size_t)(p / 100.0 * (double)(answered - 1) + 0.5);
    return lat[k] * 1e3;
}

static int read_convs(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    size_t cap = 1024;
    ids = malloc(cap * sizeof *ids);
    tokens = malloc(cap * sizeof *tokens);
    char a[72], b[72];
    while (ids && tokens && fscanf(f, "%71s %71s", a, b) == 2) {
        if (n_convs == cap) {
            cap *= 2;
            ids = realloc(ids, cap * sizeof *ids);
            tokens = realloc(tokens, cap * sizeof *tokens);
            if (!ids || !tokens)
                break;
        }
        memcpy(ids[n_convs], a, sizeof a);
        memcpy(tokens[n_convs], b, sizeof b);
        n_convs++;
    }
    fclose(f);
    return n_convs ? 0 : -1;
}

int main(int argc, char **argv)
{
    if (argc != 7) {
        fprintf(stderr, "usage: rate_client PORT RATE SECONDS CONNS CONVFILE TEXT\n");
        return 2;
    }
    unsigned port = (unsigned)atoi(argv[1]);
    double rate = atof(argv[2]), secs = atof(argv[3]);
    n_conns = atoi(argv[4]);
    const char *text = argv[6];
    long total = (long)(rate * secs);
    if (rate <= 0 || secs <= 0 || total < 1 || total > 10000000 || n_conns < 1 || n_conns > MAX_CONNS ||
        strlen(text) > 400 || strpbrk(text, "\"\\")) {
        fprintf(stderr, "rate_client: bad arguments\n");
        return 2;
    }
    if (read_convs(argv[5]) < 0) {
        fprintf(stderr, "rate_client: no conversations in %s\n", argv[5]);
        return 1;
    }
    lat = malloc((size_t)total * sizeof *lat);
    ep = epoll_create1(EPOLL_CLOEXEC);
    if (!lat || ep < 0)
        return 1;
    for (int k = 0; k < n_conns; k++)
        if (connect_one(&conns[k], port) < 0) {
            fprintf(stderr, "rate_client: cannot connect to 127.0.0.1:%u\n", port);
            return 1;
        }
    double t0 = now_s() + 0.05, deadline = t0 + secs + 10;
    long next = 0, sent = 0;
    struct epoll_event evs[64];
    while (now_s() < deadline) {
        double now = now_s();
        for (int k = 0; k < n_conns && next < total && t0 + next / rate <= now; k++)
            if (conns[k].fd >= 0 && !conns[k].busy) {
                send_request(&conns[k], next, t0 + next / rate, text);
                next++;
                sent++;
            }
        int in_flight = 0;
        for (int k = 0; k < n_conns; k++)
            in_flight += conns[k].fd >= 0 && conns[k].busy;
        if (next >= total && !in_flight)
            break;
        double wait = next < total ? t0 + next / rate - now_s() : 0.01;
        int ms = wait <= 0 ? 0 : (int)(wait * 1e3) + 1;
        int n = epoll_wait(ep, evs, 64, ms);
        for (int e = 0; e < n; e++) {
            struct conn *c = evs[e].data.ptr;
            if (c->fd < 0)
                continue;
            if (evs[e].events & EPOLLOUT)
                flush_out(c);
            if (evs[e].events & (EPOLLIN | EPOLLHUP | EPOLLERR))
                on_readable(c, lat);
        }
    }
    double elapsed = now_s() - t0;
    long unanswered = sent - answered;
    qsort(lat, (size_t)answered, sizeof *lat, cmp);
    printf("{\"rate\":%.0f,\"reached\":%.1f,\"sent\":%ld,\"answered\":%ld,\"errors\":%ld,\"unsent\":%ld,"
           "\"p50_ms\":%.3f,\"p90_ms\":%.3f,\"p99_ms\":%.3f,\"p999_ms\":%.3f,\"max_ms\":%.3f}\n",
           rate, answered / (elapsed > secs ? elapsed : secs), sent, answered, errors + unanswered,
           total - sent, pct(50), pct(90), pct(99), pct(99.9), answered ? lat[answered - 1] * 1e3 : 0);
    for (int k = 0; k < n_conns; k++)
        if (conns[k].fd >= 0)
            close(conns[k].fd);
    close(ep);
    free(lat);
    free(ids);
    free(tokens);
    return 0;
}
