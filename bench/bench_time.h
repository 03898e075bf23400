/* bench_time.h — the clocks and the median the in-process benchmarks share. */
#ifndef KEFU_BENCH_TIME_H
#define KEFU_BENCH_TIME_H

#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Wall-clock seconds (monotonic). */
static inline double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* CPU seconds of this thread: its own cost, without the time other processes
 * of a shared machine took. */
static inline double cpu_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static inline int dbl_cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* The median of src[0..n) (n <= 99), src left as it is. */
static inline double median(const double *src, int n)
{
    double v[99];
    memcpy(v, src, (size_t)n * sizeof *v);
    qsort(v, (size_t)n, sizeof *v, dbl_cmp);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

#endif
