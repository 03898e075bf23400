/* hostile_client.c — a raw-socket HTTP client for tests/hostile.sh, for the
 * cases curl cannot make: a request sent one byte at a time, headers that
 * announce a body that is never sent, bytes exactly as written.
 *
 *   hostile_client raw PORT [WAIT_S]
 *       sends stdin as is to 127.0.0.1:PORT (without closing the sending
 *       side), then prints the status code of the reply ("000" if none came
 *       within WAIT_S seconds, default 5) and how many bytes were sent.
 *   hostile_client slow PORT INTERVAL_MS MAX_S
 *       sends "POST /v1/conversations" with a never-ending header one byte
 *       every INTERVAL_MS; prints "closed BYTES SECONDS" when the server
 *       closes the connection, or "open BYTES SECONDS" after MAX_S.
 * Only 127.0.0.1; every wait is bounded. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static int dial(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((unsigned short)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        perror("hostile_client: connect");
        exit(2);
    }
    return fd;
}

/* Reads the reply's status code within wait_s seconds; 0 if none. */
static int status(int fd, double wait_s)
{
    char buf[4096];
    size_t n = 0;
    double end = now() + wait_s;
    while (n < sizeof buf - 1) {
        int ms = (int)((end - now()) * 1000);
        struct pollfd p = {fd, POLLIN, 0};
        if (ms <= 0 || poll(&p, 1, ms) <= 0)
            break;
        ssize_t r = recv(fd, buf + n, sizeof buf - 1 - n, 0);
        if (r <= 0)
            break;
        n += (size_t)r;
        buf[n] = 0;
        if (strstr(buf, "\r\n"))
            break;
    }
    buf[n] = 0;
    int code = 0;
    if (sscanf(buf, "HTTP/1.%*d %d", &code) != 1)
        code = 0;
    return code;
}

static int cmd_raw(int port, double wait_s)
{
    int fd = dial(port);
    char buf[65536];
    size_t sent = 0;
    ssize_t n;
    while ((n = read(0, buf, sizeof buf)) > 0) {
        ssize_t w = send(fd, buf, (size_t)n, MSG_NOSIGNAL);
        if (w < 0)
            break;
        sent += (size_t)w;
    }
    printf("%03d %zu\n", status(fd, wait_s), sent);
    close(fd);
    return 0;
}

static int cmd_slow(int port, int interval_ms, double max_s)
{
    static const char req[] = "POST /v1/conversations HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ";
    int fd = dial(port);
    double t0 = now();
    size_t sent = 0;
    for (;;) {
        char ch = sent < sizeof req - 1 ? req[sent] : 'a';
        if (send(fd, &ch, 1, MSG_NOSIGNAL) != 1) {
            printf("closed %zu %.1f\n", sent, now() - t0);
            break;
        }
        sent++;
        struct pollfd p = {fd, POLLIN, 0};
        if (poll(&p, 1, interval_ms) > 0) { /* the server spoke or hung up */
            char b[512];
            if (recv(fd, b, sizeof b, 0) <= 0) {
                printf("closed %zu %.1f\n", sent, now() - t0);
                break;
            }
        }
        if (now() - t0 > max_s) {
            printf("open %zu %.1f\n", sent, now() - t0);
            break;
        }
    }
    close(fd);
    return 0;
}

int main(int argc, char **argv)
{
    signal(SIGPIPE, SIG_IGN);
    if (argc >= 3 && strcmp(argv[1], "raw") == 0)
        return cmd_raw(atoi(argv[2]), argc > 3 ? atof(argv[3]) : 5);
    if (argc == 5 && strcmp(argv[1], "slow") == 0)
        return cmd_slow(atoi(argv[2]), atoi(argv[3]), atof(argv[4]));
    fprintf(stderr, "usage: hostile_client raw PORT [WAIT_S] | slow PORT INTERVAL_MS MAX_S\n");
    return 2;
}
