/* bare_mhd.c — the ceiling for bench/http.sh: a libmicrohttpd server in
 * the same mode as kefu serve (epoll, one thread per core, suspend/resume
 * allowed) that reads the body and answers a fixed JSON reply on a later
 * call, doing nothing else. Usage: bare_mhd PORT (runs until killed). */
#include <microhttpd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char reply[] =
    "{\"reply\":{\"text\":\"ok\",\"source\":\"rule\",\"confidence\":1},\"state\":\"bot\"}";

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                                  const char *version, const char *upload, size_t *upload_size,
                                  void **con_cls)
{
    static int marker;
    if (!*con_cls) {
        *con_cls = &marker;
        return MHD_YES;
    }
    if (*upload_size) {
        *upload_size = 0;
        return MHD_YES;
    }
    struct MHD_Response *r =
        MHD_create_response_from_buffer(sizeof reply - 1, (void *)reply, MHD_RESPMEM_PERSISTENT);
    MHD_add_response_header(r, "Content-Type", "application/json");
    enum MHD_Result ret = MHD_queue_response(c, 200, r);
    MHD_destroy_response(r);
    return ret;
}

int main(int argc, char **argv)
{
    unsigned port = argc > 1 ? (unsigned)atoi(argv[1]) : 8081;
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    struct MHD_Daemon *d =
        MHD_start_daemon(MHD_USE_EPOLL_INTERNAL_THREAD | MHD_ALLOW_SUSPEND_RESUME, (uint16_t)port, NULL, NULL,
                         on_request, NULL, MHD_OPTION_THREAD_POOL_SIZE, (unsigned)(cores > 1 ? cores : 1),
                         MHD_OPTION_CONNECTION_TIMEOUT, 30u, MHD_OPTION_END);
    if (!d)
        return 1;
    printf("bare_mhd: serving on http://127.0.0.1:%u\n", port);
    fflush(stdout);
    pause();
    MHD_stop_daemon(d);
    return 0;
}
