/* Allocation-heavy loops for bench/leak_overhead.sh (built on the GPU machine:
 *   gcc -O2 -o alloc_loop alloc_loop.c -I/usr/local/cuda/include -lcuda).
 *   alloc_loop sync N BYTES    N cuMemAlloc + cuMemFree pairs
 *   alloc_loop async N BYTES   N cuMemAllocAsync + cuMemFreeAsync pairs on one stream (the
 *                              device's default pool), synchronised every 1000
 * Prints "elapsed_us=T allocations=N" and exits 0 (2 on a failed call). */
#include <cuda.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_us(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

#define CK(x)                                                                  \
    do {                                                                       \
        CUresult r_ = (x);                                                     \
        if (r_ != CUDA_SUCCESS) {                                              \
            fprintf(stderr, "%s failed: %d\n", #x, (int)r_);                   \
            return 2;                                                          \
        }                                                                      \
    } while (0)

int main(int argc, char **argv) {
    if (argc < 4) {
        fprintf(stderr, "usage: %s sync|async N BYTES\n", argv[0]);
        return 64;
    }
    long n = atol(argv[2]);
    size_t bytes = (size_t)atol(argv[3]);
    int async = !strcmp(argv[1], "async");
    CUdevice dev;
    CUcontext ctx;
    CUstream s;
    CK(cuInit(0));
    CK(cuDeviceGet(&dev, 0));
    CK(cuDevicePrimaryCtxRetain(&ctx, dev));
    CK(cuCtxSetCurrent(ctx));
    CK(cuStreamCreate(&s, CU_STREAM_NON_BLOCKING));
    CUdeviceptr p;
    /* Warm up outside the timed loop (the pool's first growth, the driver's first page). */
    for (int i = 0; i < 100; i++) {
        if (async) {
            CK(cuMemAllocAsync(&p, bytes, s));
            CK(cuMemFreeAsync(p, s));
        } else {
            CK(cuMemAlloc(&p, bytes));
            CK(cuMemFree(p));
        }
    }
    CK(cuStreamSynchronize(s));
    double t0 = now_us();
    for (long i = 1; i <= n; i++) {
        if (async) {
            CK(cuMemAllocAsync(&p, bytes, s));
            CK(cuMemFreeAsync(p, s));
            if (i % 1000 == 0) CK(cuStreamSynchronize(s));
        } else {
            CK(cuMemAlloc(&p, bytes));
            CK(cuMemFree(p));
        }
    }
    CK(cuStreamSynchronize(s));
    printf("elapsed_us=%.0f allocations=%ld\n", now_us() - t0, n);
    CK(cuStreamDestroy(s));
    return 0;
}
