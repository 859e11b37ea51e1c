// Launch loop for the shim's GPU checks and overhead benchmark (built on the GPU machine:
//   nvcc -O2 -o shim_launch shim_launch.cu -lcuda).
//   shim_launch runtime N   N launches of an empty kernel through the runtime (<<<>>>)
//   shim_launch driver N    N cuLaunchKernel calls (driver API, linked against libcuda)
//   shim_launch setcurrent N  N cuCtxSetCurrent calls: a driver call that costs almost nothing,
//                           so with and without the shim the difference is the wrapper's cost
// Stops at the first failed launch: prints "launch I failed: CODE NAME" and exits 3.
// Prints "elapsed_us=T launches=N" (loop plus final synchronisation) and exits 0.
#include <cuda.h>
#include <cuda_runtime.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

__global__ void empty_kernel() {}

static const char *PTX =
    ".version 7.0\n.target sm_52\n.address_size 64\n.visible .entry empty() { ret; }\n";

static double now_us() {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: %s runtime|driver N\n", argv[0]);
        return 64;
    }
    long n = atol(argv[2]);
    if (!strcmp(argv[1], "runtime")) {
        cudaFree(0);  // initialise outside the timed loop
        empty_kernel<<<1, 1>>>();
        cudaDeviceSynchronize();
        double t0 = now_us();
        for (long i = 1; i <= n; i++) {
            empty_kernel<<<1, 1>>>();
            cudaError_t e = cudaGetLastError();
            if (e != cudaSuccess) {
                printf("launch %ld failed: %d %s\n", i, (int)e, cudaGetErrorName(e));
                return 3;
            }
        }
        cudaError_t e = cudaDeviceSynchronize();
        double t1 = now_us();
        if (e != cudaSuccess) {
            printf("synchronize failed: %d %s\n", (int)e, cudaGetErrorName(e));
            return 3;
        }
        printf("elapsed_us=%.0f launches=%ld\n", t1 - t0, n);
        return 0;
    }
    CUdevice dev;
    CUcontext ctx;
    CUmodule mod;
    CUfunction f;
    if (cuInit(0) || cuDeviceGet(&dev, 0) || cuDevicePrimaryCtxRetain(&ctx, dev) ||
        cuCtxSetCurrent(ctx) || cuModuleLoadData(&mod, PTX) ||
        cuModuleGetFunction(&f, mod, "empty")) {
        fprintf(stderr, "driver setup failed\n");
        return 2;
    }
    if (!strcmp(argv[1], "setcurrent")) {
        double t0 = now_us();
        for (long i = 1; i <= n; i++) {
            CUresult rc = cuCtxSetCurrent(ctx);
            if (rc != CUDA_SUCCESS) {
                printf("cuCtxSetCurrent %ld failed: %d\n", i, (int)rc);
                return 3;
            }
        }
        printf("elapsed_us=%.0f calls=%ld\n", now_us() - t0, n);
        return 0;
    }
    cuLaunchKernel(f, 1, 1, 1, 1, 1, 1, 0, 0, NULL, NULL);
    cuStreamSynchronize(0);
    double t0 = now_us();
    for (long i = 1; i <= n; i++) {
        CUresult rc = cuLaunchKernel(f, 1, 1, 1, 1, 1, 1, 0, 0, NULL, NULL);
        if (rc != CUDA_SUCCESS) {
            const char *name = "?";
            cuGetErrorName(rc, &name);
            printf("launch %ld failed: %d %s\n", i, (int)rc, name);
            return 3;
        }
    }
    CUresult rc = cuStreamSynchronize(0);
    double t1 = now_us();
    if (rc != CUDA_SUCCESS) {
        printf("synchronize failed: %d\n", (int)rc);
        return 3;
    }
    printf("elapsed_us=%.0f launches=%ld\n", t1 - t0, n);
    cuModuleUnload(mod);
    cuDevicePrimaryCtxRelease(dev);
    return 0;
}
