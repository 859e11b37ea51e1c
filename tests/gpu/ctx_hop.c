/* The context-migration bug in miniature, for `gpu-doctor trace ctx -- ./ctx_hop` (built on the
 * GPU machine: gcc -o ctx_hop ctx_hop.c -I/usr/local/cuda/include -lcuda -lpthread).
 * The main thread retains the primary context and makes it current; a second OS thread then
 * allocates without binding a context (CUDA_ERROR_INVALID_CONTEXT, 201), binds it, allocates
 * again (success). Exits 0 when the driver answered exactly that. */
#include <cuda.h>
#include <pthread.h>
#include <stdio.h>

static CUcontext ctx;
static CUresult first, second;

static void *worker(void *arg) {
    (void)arg;
    CUdeviceptr p = 0;
    first = cuMemAlloc(&p, 1 << 20); /* no context current on this thread */
    if (first == CUDA_SUCCESS) cuMemFree(p);
    cuCtxSetCurrent(ctx);
    second = cuMemAlloc(&p, 1 << 20);
    if (second == CUDA_SUCCESS) cuMemFree(p);
    return NULL;
}

int main(void) {
    CUdevice dev;
    if (cuInit(0) || cuDeviceGet(&dev, 0) || cuDevicePrimaryCtxRetain(&ctx, dev) ||
        cuCtxSetCurrent(ctx)) {
        fprintf(stderr, "setup failed\n");
        return 2;
    }
    CUdeviceptr p;
    if (cuMemAlloc(&p, 1 << 20) == CUDA_SUCCESS) cuMemFree(p);
    pthread_t t;
    pthread_create(&t, NULL, worker, NULL);
    pthread_join(t, NULL);
    printf("unbound thread: %d, after cuCtxSetCurrent: %d\n", (int)first, (int)second);
    cuCtxSetCurrent(NULL);
    cuDevicePrimaryCtxRelease(dev);
    return (first == CUDA_ERROR_INVALID_CONTEXT && second == CUDA_SUCCESS) ? 0 : 1;
}
