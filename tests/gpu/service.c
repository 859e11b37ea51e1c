/* A service that leaks, for `gpu-doctor leak-check --survive-after` (tests/gpu/memory.sh;
 * built on the GPU machine: gcc -O2 -o service service.c -I/usr/local/cuda/include -lcuda).
 * Every 100 ms it handles a "request" that allocates 8 MiB of device memory it never frees
 * (a cache without eviction), until it is stopped (SIGTERM). */
#include <cuda.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

__attribute__((noinline)) static CUdeviceptr handle_request(void) {
    CUdeviceptr p = 0;
    if (cuMemAlloc(&p, 8 << 20) != CUDA_SUCCESS) {
        fprintf(stderr, "out of memory\n");
        exit(3);
    }
    return p;
}

int main(void) {
    CUdevice dev;
    CUcontext ctx;
    if (cuInit(0) || cuDeviceGet(&dev, 0) || cuDevicePrimaryCtxRetain(&ctx, dev) ||
        cuCtxSetCurrent(ctx)) {
        fprintf(stderr, "setup failed\n");
        return 2;
    }
    printf("serving\n");
    fflush(stdout);
    for (;;) {
        handle_request();
        usleep(100 * 1000);
    }
}
