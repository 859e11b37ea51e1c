/* Test program for the shim on CI, run against fake_cuda.c. Reaches the driver through one
 * path, given as argv[1]:
 *   dlsym  dlopen("libcuda.so.1") + dlsym of versioned names
 *   proc   dlsym("cuGetProcAddress") then cuGetProcAddress("cuGetProcAddress") for the _v2
 *          entry point, then base names with CUDA 12.0 (like the CUDA runtime); argv[2] "ptds"
 *          asks for per-thread-stream entry points
 *   link   (built with -DLINKED -lcuda) the linked symbols
 * and does argv[3] (or argv[2] for dlsym/link):
 *   alloc N MIB   allocate N x MIB MiB, print each result, handle OOM, print cuMemGetInfo
 *   launch N      launch N kernels, print failures, exit 3 on the first failure
 *   hop           thread 1 creates a context; thread 2 launches without one (201)
 *   abort-on-oom N MIB  like alloc but abort() on OOM
 *   mt T N        T threads launch N kernels each (context bound on each), print failures
 *   exit-early N MIB  allocate N x MIB MiB, launch 3 kernels, then _exit(0): no exit handlers
 *   killed N MIB  the same, then SIGKILL to itself
 *   leak [destroy]  3 buffers left allocated at 2 call sites (leak_site_a: 1 and 2 MiB,
 *                 leak_site_b: 3 MiB), one freed; "destroy": cuCtxDestroy before exit
 *   vmm           reserve 16 MiB, create and map 2 x 2 MiB, unmap and release one: one handle
 *                 left mapped, the reservation left
 *   kinds         one allocation of each kind: async (freed), managed, pitch, async left
 *   grow STEPS MS MIB  allocate MIB every MS ms for STEPS steps (a steady leak)
 * Exit 0 when it handled everything. */
#include <dlfcn.h>
#include <pthread.h>
#include <signal.h>
#include <unistd.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef int CUresult;
typedef void *CUcontext;
typedef uint64_t CUdeviceptr;
typedef CUresult (*init_t)(unsigned);
typedef CUresult (*ctx_create_t)(CUcontext *, unsigned, int);
typedef CUresult (*ctx_set_t)(CUcontext);
typedef CUresult (*alloc_t)(CUdeviceptr *, size_t);
typedef CUresult (*free_t)(CUdeviceptr);
typedef CUresult (*info_t)(size_t *, size_t *);
typedef CUresult (*launch_t)(void *, unsigned, unsigned, unsigned, unsigned, unsigned,
                             unsigned, unsigned, void *, void **, void **);
typedef CUresult (*sync_t)(void);
typedef CUresult (*gpa_t)(const char *, void **, int, uint64_t, int *);

#ifdef LINKED
CUresult cuInit(unsigned);
CUresult cuCtxCreate_v2(CUcontext *, unsigned, int);
CUresult cuCtxSetCurrent(CUcontext);
CUresult cuMemAlloc_v2(CUdeviceptr *, size_t);
CUresult cuMemFree_v2(CUdeviceptr);
CUresult cuMemGetInfo_v2(size_t *, size_t *);
CUresult cuLaunchKernel(void *, unsigned, unsigned, unsigned, unsigned, unsigned, unsigned,
                        unsigned, void *, void **, void **);
CUresult cuCtxSynchronize(void);
#endif

static const char *via;
static int ptds;
static void *lib;
static gpa_t gpa;

static void *get(const char *base, const char *versioned) {
    void *p = NULL;
    if (!strcmp(via, "dlsym")) {
        p = dlsym(lib, versioned);
    } else if (!strcmp(via, "proc")) {
        int status = 0;
        if (gpa(base, &p, 12000, ptds ? 2 : 1, &status) != 0) p = NULL;
    }
#ifdef LINKED
    else if (!strcmp(via, "link")) {
        if (!strcmp(versioned, "cuInit")) p = (void *)cuInit;
        if (!strcmp(versioned, "cuCtxCreate_v2")) p = (void *)cuCtxCreate_v2;
        if (!strcmp(versioned, "cuCtxSetCurrent")) p = (void *)cuCtxSetCurrent;
        if (!strcmp(versioned, "cuMemAlloc_v2")) p = (void *)cuMemAlloc_v2;
        if (!strcmp(versioned, "cuMemFree_v2")) p = (void *)cuMemFree_v2;
        if (!strcmp(versioned, "cuMemGetInfo_v2")) p = (void *)cuMemGetInfo_v2;
        if (!strcmp(versioned, "cuLaunchKernel")) p = (void *)cuLaunchKernel;
        if (!strcmp(versioned, "cuCtxSynchronize")) p = (void *)cuCtxSynchronize;
    }
#endif
    if (!p) {
        fprintf(stderr, "cannot resolve %s\n", versioned);
        exit(10);
    }
    return p;
}

static launch_t launch;
static CUcontext ctx;

static int per_thread;
static int mt_failures;
static pthread_mutex_t mt_lock = PTHREAD_MUTEX_INITIALIZER;
static ctx_set_t set_current;

static void *mt_thread(void *arg) {
    (void)arg;
    set_current(ctx);
    int failures = 0;
    for (int i = 0; i < per_thread; i++)
        if (launch(NULL, 1, 1, 1, 1, 1, 1, 0, NULL, NULL, NULL) != 0) failures++;
    pthread_mutex_lock(&mt_lock);
    mt_failures += failures;
    pthread_mutex_unlock(&mt_lock);
    return NULL;
}

/* Call sites of leak-check's tests: not inlined, so each is a frame of its own. */
__attribute__((noinline)) CUdeviceptr leak_site_a(alloc_t alloc, size_t bytes) {
    CUdeviceptr p = 0;
    if (alloc(&p, bytes) != 0) exit(20);
    return p;
}
__attribute__((noinline)) CUdeviceptr leak_site_b(alloc_t alloc, size_t bytes) {
    CUdeviceptr p = 0;
    if (alloc(&p, bytes) != 0) exit(21);
    return p;
}
__attribute__((noinline)) CUdeviceptr grow_site(alloc_t alloc, size_t bytes) {
    CUdeviceptr p = 0;
    if (alloc(&p, bytes) != 0) exit(22);
    return p;
}

typedef CUresult (*alloc_async_t)(CUdeviceptr *, size_t, void *);
typedef CUresult (*free_async_t)(CUdeviceptr, void *);
typedef CUresult (*managed_t)(CUdeviceptr *, size_t, unsigned);
typedef CUresult (*pitch_t)(CUdeviceptr *, size_t *, size_t, size_t, unsigned);
typedef struct { int type, handle_types, location_type, location_id; int rest[8]; } Prop;
typedef CUresult (*create_t)(uint64_t *, size_t, const Prop *, uint64_t);
typedef CUresult (*release_t)(uint64_t);
typedef CUresult (*reserve_t)(CUdeviceptr *, size_t, size_t, CUdeviceptr, uint64_t);
typedef CUresult (*addr_free_t)(CUdeviceptr, size_t);
typedef CUresult (*map_t)(CUdeviceptr, size_t, size_t, uint64_t, uint64_t);
typedef CUresult (*unmap_t)(CUdeviceptr, size_t);

static void *unbound_thread(void *arg) {
    (void)arg;
    CUresult rc = launch(NULL, 1, 1, 1, 1, 1, 1, 0, NULL, NULL, NULL);
    printf("thread 2 launch: %d\n", rc);
    return NULL;
}

int main(int argc, char **argv) {
    if (argc < 3) return 64;
    via = argv[1];
    int arg = 2;
    if (strcmp(via, "link")) {
        lib = dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL);
        if (!lib) { fprintf(stderr, "%s\n", dlerror()); return 11; }
    }
    if (!strcmp(via, "proc")) {
        gpa_t first = (gpa_t)dlsym(lib, "cuGetProcAddress_v2");
        if (!first) return 12;
        void *p = NULL;
        int status = 0;
        /* Like the runtime: ask the driver for its own entry point. */
        if (first("cuGetProcAddress", &p, 12000, 0, &status) != 0 || !p) return 13;
        gpa = (gpa_t)p;
        ptds = !strcmp(argv[2], "ptds");
        arg = 3;
    }
    if (argc <= arg) return 64;
    const char *what = argv[arg];
    ((init_t)get("cuInit", "cuInit"))(0);
    ctx_create_t create = (ctx_create_t)get("cuCtxCreate", "cuCtxCreate_v2");
    alloc_t alloc = (alloc_t)get("cuMemAlloc", "cuMemAlloc_v2");
    free_t mfree = (free_t)get("cuMemFree", "cuMemFree_v2");
    info_t info = (info_t)get("cuMemGetInfo", "cuMemGetInfo_v2");
    launch = (launch_t)get("cuLaunchKernel", "cuLaunchKernel");
    if (create(&ctx, 0, 0) != 0) return 14;

    if (!strcmp(what, "alloc") || !strcmp(what, "abort-on-oom")) {
        int n = atoi(argv[arg + 1]);
        size_t mib = (size_t)atoi(argv[arg + 2]) << 20;
        int ooms = 0;
        CUdeviceptr ptrs[256];
        int held = 0;
        for (int i = 0; i < n && i < 256; i++) {
            CUresult rc = alloc(&ptrs[held], mib);
            printf("alloc %d: %d\n", i, rc);
            if (rc == 2) {
                ooms++;
                if (!strcmp(what, "abort-on-oom")) abort();
            } else if (rc == 0) {
                held++;
            } else {
                return 3;
            }
        }
        size_t fr = 0, tot = 0;
        info(&fr, &tot);
        printf("meminfo free=%zu total=%zu\n", fr, tot);
        for (int i = 0; i < held; i++) mfree(ptrs[i]);
        info(&fr, &tot);
        printf("after free: free=%zu total=%zu ooms=%d\n", fr, tot, ooms);
        return 0;
    }
    if (!strcmp(what, "launch")) {
        int n = atoi(argv[arg + 1]);
        for (int i = 1; i <= n; i++) {
            CUresult rc = launch(NULL, 1, 1, 1, 1, 1, 1, 0, NULL, NULL, NULL);
            if (rc != 0) {
                printf("launch %d failed: %d\n", i, rc);
                return 3;
            }
        }
        int (*count)(int) = (int (*)(int))dlsym(lib ? lib : RTLD_DEFAULT, "fake_launches");
        if (count) printf("launched legacy=%d ptsz=%d\n", count(0), count(1));
        return 0;
    }
    if (!strcmp(what, "mt")) {
        int threads = atoi(argv[arg + 1]);
        per_thread = atoi(argv[arg + 2]);
        set_current = (ctx_set_t)get("cuCtxSetCurrent", "cuCtxSetCurrent");
        pthread_t t[64];
        for (int i = 0; i < threads && i < 64; i++) pthread_create(&t[i], NULL, mt_thread, NULL);
        for (int i = 0; i < threads && i < 64; i++) pthread_join(t[i], NULL);
        printf("mt failures=%d\n", mt_failures);
        return 0;
    }
    if (!strcmp(what, "exit-early") || !strcmp(what, "killed")) {
        int n = atoi(argv[arg + 1]);
        size_t mib = (size_t)atoi(argv[arg + 2]) << 20;
        for (int i = 0; i < n; i++) {
            CUdeviceptr p;
            if (alloc(&p, mib) != 0) return 3;
        }
        for (int i = 0; i < 3; i++) launch(NULL, 1, 1, 1, 1, 1, 1, 0, NULL, NULL, NULL);
        printf("allocated %d x %zu\n", n, mib);
        fflush(stdout);
        if (!strcmp(what, "killed")) raise(SIGKILL);
        _exit(0);
    }
    if (!strcmp(what, "leak")) {
        CUdeviceptr a1 = leak_site_a(alloc, 1 << 20);
        CUdeviceptr a2 = leak_site_a(alloc, 2 << 20);
        CUdeviceptr b = leak_site_b(alloc, 3 << 20);
        CUdeviceptr freed = leak_site_b(alloc, 4 << 20);
        mfree(freed);
        printf("leaked %#llx %#llx %#llx\n", (unsigned long long)a1, (unsigned long long)a2,
               (unsigned long long)b);
        if (argc > arg + 1 && !strcmp(argv[arg + 1], "destroy")) {
            CUresult (*destroy)(CUcontext) =
                (CUresult (*)(CUcontext))get("cuCtxDestroy", "cuCtxDestroy_v2");
            if (destroy(ctx) != 0) return 4;
        }
        return 0;
    }
    if (!strcmp(what, "vmm")) {
        create_t create_h = (create_t)get("cuMemCreate", "cuMemCreate");
        release_t release = (release_t)get("cuMemRelease", "cuMemRelease");
        reserve_t reserve = (reserve_t)get("cuMemAddressReserve", "cuMemAddressReserve");
        map_t map = (map_t)get("cuMemMap", "cuMemMap");
        unmap_t unmap = (unmap_t)get("cuMemUnmap", "cuMemUnmap");
        (void)(addr_free_t)get("cuMemAddressFree", "cuMemAddressFree");
        Prop prop = {1, 0, 1, 0, {0}};
        CUdeviceptr va = 0;
        uint64_t h1 = 0, h2 = 0;
        size_t two = 2 << 20;
        if (reserve(&va, 16 << 20, 0, 0, 0) != 0) return 5;
        if (create_h(&h1, two, &prop, 0) != 0 || create_h(&h2, two, &prop, 0) != 0) return 6;
        if (map(va, two, 0, h1, 0) != 0 || map(va + two, two, 0, h2, 0) != 0) return 7;
        if (unmap(va + two, two) != 0 || release(h2) != 0) return 8;
        printf("vmm va=%#llx\n", (unsigned long long)va);
        return 0;
    }
    if (!strcmp(what, "kinds")) {
        alloc_async_t aa = (alloc_async_t)get("cuMemAllocAsync", "cuMemAllocAsync");
        free_async_t fa = (free_async_t)get("cuMemFreeAsync", "cuMemFreeAsync");
        managed_t managed = (managed_t)get("cuMemAllocManaged", "cuMemAllocManaged");
        pitch_t pitch = (pitch_t)get("cuMemAllocPitch", "cuMemAllocPitch_v2");
        CUdeviceptr p1, p2, m, pp;
        size_t width_pitch = 0;
        if (aa(&p1, 1 << 20, NULL) || aa(&p2, 5 << 20, NULL) || fa(p1, NULL)) return 5;
        if (managed(&m, 1 << 20, 1) || pitch(&pp, &width_pitch, 1000, 1024, 4)) return 6;
        printf("pitch %zu\n", width_pitch);
        return 0;
    }
    if (!strcmp(what, "grow")) {
        int steps = atoi(argv[arg + 1]);
        int ms = atoi(argv[arg + 2]);
        size_t mib = (size_t)atoi(argv[arg + 3]) << 20;
        for (int i = 0; i < steps; i++) {
            grow_site(alloc, mib);
            usleep(ms * 1000);
        }
        return 0;
    }
    if (!strcmp(what, "hop")) {
        pthread_t t;
        pthread_create(&t, NULL, unbound_thread, NULL);
        pthread_join(t, NULL);
        return 0;
    }
    return 64;
}
