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
 * Exit 0 when it handled everything. */
#include <dlfcn.h>
#include <pthread.h>
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
    if (!strcmp(what, "hop")) {
        pthread_t t;
        pthread_create(&t, NULL, unbound_thread, NULL);
        pthread_join(t, NULL);
        return 0;
    }
    return 64;
}
