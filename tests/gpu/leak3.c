/* leak-check's GPU check (tests/gpu/memory.sh; built on the GPU machine:
 *   gcc -g -O0 -o leak3 leak3.c -I/usr/local/cuda/include -lcuda).
 * Through the driver API in the primary context, it leaves 3 device buffers allocated at 2 call
 * sites — leak_site_a: 1 MiB and 2 MiB, leak_site_b: 3 MiB — and allocates and frees a 4th.
 * `leak3 destroy` resets the primary context before exit (what cudaDeviceReset does): the
 * driver frees them then, and compute-sanitizer --leak-check full reports them. Prints the three
 * pointers and exits 0. */
#include <cuda.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CK(x)                                                                  \
    do {                                                                       \
        CUresult r_ = (x);                                                     \
        if (r_ != CUDA_SUCCESS) {                                              \
            fprintf(stderr, "%s failed: %d\n", #x, (int)r_);                   \
            exit(2);                                                           \
        }                                                                      \
    } while (0)

__attribute__((noinline)) CUdeviceptr leak_site_a(size_t bytes) {
    CUdeviceptr p = 0;
    CK(cuMemAlloc(&p, bytes));
    return p;
}

__attribute__((noinline)) CUdeviceptr leak_site_b(size_t bytes) {
    CUdeviceptr p = 0;
    CK(cuMemAlloc(&p, bytes));
    return p;
}

int main(int argc, char **argv) {
    CUdevice dev;
    CUcontext ctx;
    CK(cuInit(0));
    CK(cuDeviceGet(&dev, 0));
    CK(cuDevicePrimaryCtxRetain(&ctx, dev));
    CK(cuCtxSetCurrent(ctx));
    CUdeviceptr a1 = leak_site_a(1 << 20);
    CUdeviceptr a2 = leak_site_a(2 << 20);
    CUdeviceptr b = leak_site_b(3 << 20);
    CUdeviceptr freed = leak_site_b(4 << 20);
    CK(cuMemFree(freed));
    printf("leaked 0x%llx 0x%llx 0x%llx\n", (unsigned long long)a1, (unsigned long long)a2,
           (unsigned long long)b);
    if (argc > 1 && !strcmp(argv[1], "destroy")) CK(cuDevicePrimaryCtxReset(dev));
    return 0;
}
