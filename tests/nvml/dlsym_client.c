/* An NVML client that loads the library the way Go's NVML bindings do: dlopen
 * ("libnvidia-ml.so.1") and dlsym for every function. The NVML shim's tests run it against a
 * replayed snapshot, with and without the interposer preloaded.
 *
 *   dlsym_client info              one JSON line per GPU
 *   dlsym_client wait-xid MS       registers XID events on every GPU, waits up to MS ms each
 *                                  time, prints one line per event until MS passes without one
 *   dlsym_client bench N           N calls of nvmlDeviceGetCurrPcieLinkWidth: ns per call
 *   dlsym_client where NAME…       which loaded file dlsym's answer for each name lies in
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef void *dev_t_;
typedef struct {
    void *device;
    unsigned long long eventType, eventData;
    unsigned int gpuInstanceId, computeInstanceId;
} event_data;
typedef struct {
    unsigned int fieldId, scopeId;
    long long timestamp, latencyUsec;
    unsigned int valueType, nvmlReturn;
    unsigned long long value;
} field_value;

static void *lib;

static void *sym(const char *name) {
    void *p = dlsym(lib, name);
    if (!p) {
        fprintf(stderr, "missing %s\n", name);
        exit(3);
    }
    return p;
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(int argc, char **argv) {
    if (argc < 2) return 2;
    lib = dlopen("libnvidia-ml.so.1", RTLD_NOW | RTLD_LOCAL);
    if (!lib) {
        fprintf(stderr, "dlopen: %s\n", dlerror());
        return 3;
    }
    int (*init)(void) = sym("nvmlInit_v2");
    int (*count)(unsigned *) = sym("nvmlDeviceGetCount_v2");
    int (*by_index)(unsigned, dev_t_ *) = sym("nvmlDeviceGetHandleByIndex_v2");
    int (*name)(dev_t_, char *, unsigned) = sym("nvmlDeviceGetName");
    int (*width)(dev_t_, unsigned *) = sym("nvmlDeviceGetCurrPcieLinkWidth");
    int (*gen)(dev_t_, unsigned *) = sym("nvmlDeviceGetCurrPcieLinkGeneration");
    int (*link_state)(dev_t_, unsigned, unsigned *) = sym("nvmlDeviceGetNvLinkState");
    int (*ecc)(dev_t_, unsigned, unsigned, unsigned long long *) = sym("nvmlDeviceGetTotalEccErrors");
    int (*fields)(dev_t_, int, field_value *) = sym("nvmlDeviceGetFieldValues");
    int (*fan)(dev_t_, unsigned *) = sym("nvmlDeviceGetFanSpeed");
    int (*serial_lookup)(const char *, dev_t_ *) = sym("nvmlDeviceGetHandleBySerial");
    int rc = init();
    if (rc) {
        printf("{\"init\":%d}\n", rc);
        return 1;
    }
    unsigned n = 0;
    count(&n);
    dev_t_ devs[64];
    int lookup[64];
    for (unsigned i = 0; i < n && i < 64; i++) lookup[i] = by_index(i, &devs[i]);

    if (!strcmp(argv[1], "info")) {
        for (unsigned i = 0; i < n && i < 64; i++) {
            char nm[96] = "";
            unsigned w = 0, g = 0, l0 = 9, f = 0;
            unsigned long long unc = 0;
            field_value fv = {.fieldId = 230};
            int rn = lookup[i] ? lookup[i] : name(devs[i], nm, sizeof nm);
            int rw = lookup[i] ? lookup[i] : width(devs[i], &w);
            int rg = lookup[i] ? lookup[i] : gen(devs[i], &g);
            int rl = lookup[i] ? lookup[i] : link_state(devs[i], 0, &l0);
            int re = lookup[i] ? lookup[i] : ecc(devs[i], 1, 0, &unc);
            int rf = lookup[i] ? lookup[i] : fields(devs[i], 1, &fv);
            int rfan = lookup[i] ? lookup[i] : fan(devs[i], &f);
            printf("{\"gpu\":%u,\"lookup_rc\":%d,\"name_rc\":%d,\"name\":\"%s\",\"width_rc\":%d,\"width\":%u,"
                   "\"gen_rc\":%d,\"gen\":%u,\"link0_rc\":%d,\"link0\":%u,\"ecc_rc\":%d,\"ecc_unc_volatile\":%llu,"
                   "\"recovery_rc\":%d,\"recovery_field_rc\":%u,\"recovery\":%llu,\"fan_rc\":%d}\n",
                   i, lookup[i], rn, nm, rw, w, rg, g, rl, l0, re, unc, rf, fv.nvmlReturn, fv.value, rfan);
        }
        dev_t_ d;
        printf("{\"serial_lookup_rc\":%d}\n", serial_lookup("0000000000001", &d));
        return 0;
    }
    if (!strcmp(argv[1], "wait-xid") && argc > 2) {
        int (*create)(void **) = sym("nvmlEventSetCreate");
        int (*reg)(dev_t_, unsigned long long, void *) = sym("nvmlDeviceRegisterEvents");
        int (*wait)(void *, event_data *, unsigned) = sym("nvmlEventSetWait_v2");
        unsigned ms = (unsigned)atoi(argv[2]);
        void *set = 0;
        printf("{\"create_rc\":%d}\n", create(&set));
        for (unsigned i = 0; i < n && i < 64; i++)
            printf("{\"register_rc\":%d,\"gpu\":%u}\n", reg(devs[i], 8, set), i);
        double t0 = now_s();
        for (;;) {
            event_data e;
            memset(&e, 0, sizeof e);
            int r = wait(set, &e, ms);
            if (r) {
                printf("{\"wait_rc\":%d,\"t\":%.3f}\n", r, now_s() - t0);
                break;
            }
            int gpu = -1;
            for (unsigned i = 0; i < n && i < 64; i++)
                if (devs[i] == e.device) gpu = (int)i;
            printf("{\"event_type\":%llu,\"xid\":%llu,\"gpu\":%d,\"t\":%.3f}\n", e.eventType, e.eventData, gpu,
                   now_s() - t0);
            fflush(stdout);
        }
        return 0;
    }
    if (!strcmp(argv[1], "where")) {
        for (int i = 2; i < argc; i++) {
            void *p = dlsym(lib, argv[i]);
            Dl_info info;
            const char *file = p && dladdr(p, &info) && info.dli_fname ? info.dli_fname : "";
            printf("{\"name\":\"%s\",\"found\":%d,\"in\":\"%s\"}\n", argv[i], p != 0, file);
        }
        return 0;
    }
    if (!strcmp(argv[1], "bench") && argc > 2 && n > 0) {
        long calls = atol(argv[2]);
        unsigned w;
        double t0 = now_s();
        for (long i = 0; i < calls; i++) width(devs[0], &w);
        printf("{\"ns_per_call\":%.1f}\n", (now_s() - t0) * 1e9 / calls);
        return 0;
    }
    return 2;
}
