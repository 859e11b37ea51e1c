/* A fake libcuda.so.1 for CI (no GPU): just enough of the driver API, with the real
 * signatures, to prove the shim's interception paths (linked symbols, dlsym,
 * cuGetProcAddress with versions and per-thread-stream flags) and what leak-check records
 * (stream-ordered and managed allocations, the virtual memory API).
 *
 * Model: 1 device with 1 GiB; contexts are current per thread; launching without a current
 * context answers CUDA_ERROR_INVALID_CONTEXT (201). FAKE_CUDA_THUNKS=1 makes cuGetProcAddress
 * answer pointers that are not the exported symbols (exercises the shim's version rule). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef int CUresult;
typedef void *CUcontext;
typedef uint64_t CUdeviceptr;

static __thread CUcontext current;
static uint64_t next_ptr = 0x100000;
static uint64_t used;
#define TOTAL (1ull << 30)
static int launches_legacy, launches_ptsz;

CUresult cuInit(unsigned flags) { (void)flags; return 0; }
CUresult cuCtxGetCurrent(CUcontext *c) { *c = current; return 0; }
CUresult cuCtxSetCurrent(CUcontext c) { current = c; return 0; }
CUresult cuCtxGetDevice(int *d) { if (!current) return 201; *d = 0; return 0; }
CUresult cuCtxCreate_v2(CUcontext *c, unsigned flags, int dev) {
    (void)flags; (void)dev;
    *c = malloc(16);
    current = *c;
    return 0;
}
CUresult cuCtxDestroy_v2(CUcontext c) { if (current == c) current = 0; free(c); return 0; }
/* The primary context: one per process, never freed. */
static char primary[16];
CUresult cuDeviceGet(int *d, int ordinal) { if (ordinal) return 101; *d = 0; return 0; }
CUresult cuDevicePrimaryCtxRetain(CUcontext *c, int dev) { (void)dev; *c = primary; return 0; }
CUresult cuDevicePrimaryCtxReset_v2(int dev) {
    (void)dev;
    if (current == (CUcontext)primary) current = 0;
    return 0;
}
CUresult cuStreamCreate(void **s, unsigned flags) { (void)flags; *s = primary + 1; return 0; }
CUresult cuStreamDestroy_v2(void *s) { (void)s; return 0; }
CUresult cuMemAlloc_v2(CUdeviceptr *p, size_t size) {
    if (!current) return 201;
    if (used + size > TOTAL) return 2;
    used += size;
    *p = next_ptr;
    next_ptr += (size + 0xfff) & ~0xfffull;
    return 0;
}
/* Sizes are not tracked per pointer: the fake frees nothing (enough for the tests). */
CUresult cuMemFree_v2(CUdeviceptr p) { (void)p; return current ? 0 : 201; }
CUresult cuMemGetInfo_v2(size_t *free_, size_t *total) {
    if (!current) return 201;
    *free_ = TOTAL - used;
    *total = TOTAL;
    return 0;
}
CUresult cuLaunchKernel(void *f, unsigned gx, unsigned gy, unsigned gz, unsigned bx,
                        unsigned by, unsigned bz, unsigned shmem, void *stream, void **params,
                        void **extra) {
    (void)f; (void)gx; (void)gy; (void)gz; (void)bx; (void)by; (void)bz; (void)shmem;
    (void)stream; (void)params; (void)extra;
    if (!current) return 201;
    launches_legacy++;
    return 0;
}
CUresult cuLaunchKernel_ptsz(void *f, unsigned gx, unsigned gy, unsigned gz, unsigned bx,
                             unsigned by, unsigned bz, unsigned shmem, void *stream,
                             void **params, void **extra) {
    (void)f; (void)gx; (void)gy; (void)gz; (void)bx; (void)by; (void)bz; (void)shmem;
    (void)stream; (void)params; (void)extra;
    if (!current) return 201;
    launches_ptsz++;
    return 0;
}
/* Stream-ordered, managed and pitched allocations come from the same bump allocator. */
CUresult cuMemAllocAsync(CUdeviceptr *p, size_t size, void *stream) {
    (void)stream;
    return cuMemAlloc_v2(p, size);
}
CUresult cuMemFreeAsync(CUdeviceptr p, void *stream) { (void)stream; return cuMemFree_v2(p); }
CUresult cuMemAllocManaged(CUdeviceptr *p, size_t size, unsigned flags) {
    (void)flags;
    return cuMemAlloc_v2(p, size);
}
CUresult cuMemAllocPitch_v2(CUdeviceptr *p, size_t *pitch, size_t width, size_t height,
                            unsigned elem) {
    (void)elem;
    *pitch = (width + 511) & ~(size_t)511;
    return cuMemAlloc_v2(p, *pitch * height);
}
/* Virtual memory management: handles and address ranges are numbers handed out in order. */
typedef struct { int type, handle_types, location_type, location_id; } Prop;
static uint64_t next_handle = 1, next_va = 0x7000000000ull;
CUresult cuMemCreate(uint64_t *h, size_t size, const Prop *prop, uint64_t flags) {
    (void)flags;
    if (!current) return 201;
    if (!prop || size % (2u << 20)) return 1;
    *h = next_handle++;
    return 0;
}
CUresult cuMemRelease(uint64_t h) { return h ? 0 : 1; }
CUresult cuMemAddressReserve(CUdeviceptr *p, size_t size, size_t align, CUdeviceptr addr,
                             uint64_t flags) {
    (void)align; (void)addr; (void)flags;
    *p = next_va;
    next_va += size;
    return 0;
}
CUresult cuMemAddressFree(CUdeviceptr p, size_t size) { (void)size; return p ? 0 : 1; }
CUresult cuMemMap(CUdeviceptr p, size_t size, size_t offset, uint64_t h, uint64_t flags) {
    (void)size; (void)offset; (void)flags;
    return p && h ? 0 : 1;
}
CUresult cuMemUnmap(CUdeviceptr p, size_t size) { (void)size; return p ? 0 : 1; }
CUresult cuStreamSynchronize(void *s) { (void)s; return current ? 0 : 201; }
CUresult cuCtxSynchronize(void) { return current ? 0 : 201; }
/* Not part of the driver API: lets the test program check which variant ran. */
int fake_launches(int ptsz) { return ptsz ? launches_ptsz : launches_legacy; }

CUresult cuGetProcAddress_v2(const char *symbol, void **pfn, int version, uint64_t flags,
                             int *status);

static CUresult thunk_alloc(CUdeviceptr *p, size_t s) { return cuMemAlloc_v2(p, s); }
static CUresult thunk_launch(void *f, unsigned gx, unsigned gy, unsigned gz, unsigned bx,
                             unsigned by, unsigned bz, unsigned shmem, void *stream,
                             void **params, void **extra) {
    return cuLaunchKernel(f, gx, gy, gz, bx, by, bz, shmem, stream, params, extra);
}

static void *lookup(const char *symbol, int version, uint64_t flags) {
    int ptds = (flags & 2) != 0;
    int thunks = getenv("FAKE_CUDA_THUNKS") != NULL;
    if (!strcmp(symbol, "cuInit")) return (void *)cuInit;
    if (!strcmp(symbol, "cuCtxGetCurrent")) return (void *)cuCtxGetCurrent;
    if (!strcmp(symbol, "cuCtxSetCurrent")) return (void *)cuCtxSetCurrent;
    if (!strcmp(symbol, "cuCtxGetDevice")) return (void *)cuCtxGetDevice;
    if (!strcmp(symbol, "cuCtxCreate")) return (void *)cuCtxCreate_v2;
    if (!strcmp(symbol, "cuCtxDestroy")) return (void *)cuCtxDestroy_v2;
    if (!strcmp(symbol, "cuMemFree")) return (void *)cuMemFree_v2;
    if (!strcmp(symbol, "cuMemGetInfo")) return (void *)cuMemGetInfo_v2;
    if (!strcmp(symbol, "cuStreamSynchronize")) return (void *)cuStreamSynchronize;
    if (!strcmp(symbol, "cuCtxSynchronize")) return (void *)cuCtxSynchronize;
    if (!strcmp(symbol, "cuGetProcAddress")) return (void *)cuGetProcAddress_v2;
    if (!strcmp(symbol, "cuMemAllocAsync")) return (void *)cuMemAllocAsync;
    if (!strcmp(symbol, "cuMemFreeAsync")) return (void *)cuMemFreeAsync;
    if (!strcmp(symbol, "cuMemAllocManaged")) return (void *)cuMemAllocManaged;
    if (!strcmp(symbol, "cuMemAllocPitch")) return (void *)cuMemAllocPitch_v2;
    if (!strcmp(symbol, "cuMemCreate")) return (void *)cuMemCreate;
    if (!strcmp(symbol, "cuMemRelease")) return (void *)cuMemRelease;
    if (!strcmp(symbol, "cuMemAddressReserve")) return (void *)cuMemAddressReserve;
    if (!strcmp(symbol, "cuMemAddressFree")) return (void *)cuMemAddressFree;
    if (!strcmp(symbol, "cuMemMap")) return (void *)cuMemMap;
    if (!strcmp(symbol, "cuMemUnmap")) return (void *)cuMemUnmap;
    if (!strcmp(symbol, "cuMemAlloc"))
        return version >= 3020 ? (thunks ? (void *)thunk_alloc : (void *)cuMemAlloc_v2) : NULL;
    if (!strcmp(symbol, "cuLaunchKernel")) {
        if (ptds) return (void *)cuLaunchKernel_ptsz;
        return thunks ? (void *)thunk_launch : (void *)cuLaunchKernel;
    }
    return NULL;
}

CUresult cuGetProcAddress_v2(const char *symbol, void **pfn, int version, uint64_t flags,
                             int *status) {
    void *p = lookup(symbol, version, flags);
    if (status) *status = p ? 0 : 1;
    if (!p) { *pfn = NULL; return 500; }
    *pfn = p;
    return 0;
}
