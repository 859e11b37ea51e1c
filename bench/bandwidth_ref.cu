// Reference copy-bandwidth measurement for `gpu-doctor bandwidth`, written with NVIDIA's
// method (nvbandwidth, cuda-samples p2pBandwidthLatencyTest) in plain CUDA C++:
//   a spin kernel holds the stream while a batch of copies is enqueued, CUDA events bracket the
//   batch, the host then releases the spin flag; warm-up copies first; several samples, median.
// Pageable copies are synchronous: timed with the host clock around cudaMemcpy.
// GB/s = 10^9 bytes per second; every byte counted once (bidirectional: both directions summed).
//
// Build: nvcc -O2 -arch=sm_90 -o bandwidth_ref bench/bandwidth_ref.cu
// Usage: bandwidth_ref [size_bytes=536870912] [copies=16] [samples=3] [warmup=4] [slow_copies=4]
// Output, one line per path (parsed by bench/bandwidth.sh):
//   RESULT path=<name> bus=<pci bus id> peer=<pci bus id or -> gbps=<median> min=<min> max=<max>

#include <cuda_runtime.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

#define CK(x)                                                                                 \
    do {                                                                                      \
        cudaError_t e_ = (x);                                                                 \
        if (e_ != cudaSuccess) {                                                              \
            fprintf(stderr, "%s:%d: %s: %s\n", __FILE__, __LINE__, #x, cudaGetErrorString(e_)); \
            exit(1);                                                                          \
        }                                                                                     \
    } while (0)

__global__ void spin_wait(volatile unsigned *flag, unsigned long long max_cycles) {
    long long t0 = clock64();
    while (*flag == 0 && (unsigned long long)(clock64() - t0) < max_cycles) {
    }
}

__global__ void copy_v4(const uint4 *__restrict__ src, uint4 *dst, unsigned long long n) {
    for (unsigned long long i = (unsigned long long)blockIdx.x * blockDim.x + threadIdx.x; i < n;
         i += (unsigned long long)gridDim.x * blockDim.x)
        dst[i] = __ldg(&src[i]);
}

static const unsigned long long SPIN_CYCLES = 1000000000ULL;

struct Opts {
    size_t size = 512ull << 20;
    int copies = 16, samples = 3, warmup = 4, slow = 4;
};

struct Dev {
    int id;
    std::string bus;
    cudaStream_t s[2];
    cudaEvent_t e[3];
    volatile unsigned *flag_h;
    unsigned *flag_d;
};

static void set_flag(Dev &d, unsigned v) {
    *d.flag_h = v;
    std::atomic_thread_fence(std::memory_order_seq_cst);
}

static void open_dev(Dev &d, int id) {
    d.id = id;
    CK(cudaSetDevice(id));
    char bus[32];
    CK(cudaDeviceGetPCIBusId(bus, sizeof bus, id));
    d.bus = bus;
    for (auto &s : d.s) CK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
    for (auto &e : d.e) CK(cudaEventCreate(&e));
    void *p;
    CK(cudaHostAlloc(&p, 4096, cudaHostAllocMapped | cudaHostAllocPortable));
    d.flag_h = (volatile unsigned *)p;
    *d.flag_h = 1;
    CK(cudaHostGetDevicePointer((void **)&d.flag_d, p, 0));
}

static void close_dev(Dev &d) {
    CK(cudaSetDevice(d.id));
    CK(cudaDeviceSynchronize());
    for (auto &e : d.e) CK(cudaEventDestroy(e));
    for (auto &s : d.s) CK(cudaStreamDestroy(s));
    CK(cudaFreeHost((void *)d.flag_h));
}

using Op = std::function<void(cudaStream_t)>;

// One held sample on d's stream 0: seconds.
static double held(Dev &d, int copies, const Op &op) {
    CK(cudaSetDevice(d.id));
    set_flag(d, 0);
    spin_wait<<<1, 1, 0, d.s[0]>>>(d.flag_d, SPIN_CYCLES);
    CK(cudaGetLastError());
    CK(cudaEventRecord(d.e[0], d.s[0]));
    for (int i = 0; i < copies; i++) op(d.s[0]);
    CK(cudaEventRecord(d.e[1], d.s[0]));
    set_flag(d, 1);
    CK(cudaEventSynchronize(d.e[1]));
    float ms = 0;
    CK(cudaEventElapsedTime(&ms, d.e[0], d.e[1]));
    return ms / 1e3;
}

// Both directions: a spins and starts, b's stream (or a's stream 1) waits, a waits for b's end.
static double held_bidir(Dev &a, Dev &b, int copies, const Op &op_a, const Op &op_b) {
    bool same = &a == &b;
    cudaStream_t sa = a.s[0], sb = same ? a.s[1] : b.s[0];
    cudaEvent_t eb = same ? a.e[2] : b.e[2];
    CK(cudaSetDevice(a.id));
    set_flag(a, 0);
    spin_wait<<<1, 1, 0, sa>>>(a.flag_d, SPIN_CYCLES);
    CK(cudaGetLastError());
    CK(cudaEventRecord(a.e[0], sa));
    CK(cudaStreamWaitEvent(sb, a.e[0], 0));
    for (int i = 0; i < copies; i++) {
        CK(cudaSetDevice(a.id));
        op_a(sa);
        CK(cudaSetDevice(same ? a.id : b.id));
        op_b(sb);
    }
    CK(cudaSetDevice(same ? a.id : b.id));
    CK(cudaEventRecord(eb, sb));
    CK(cudaSetDevice(a.id));
    CK(cudaStreamWaitEvent(sa, eb, 0));
    CK(cudaEventRecord(a.e[1], sa));
    set_flag(a, 1);
    CK(cudaEventSynchronize(a.e[1]));
    float ms = 0;
    CK(cudaEventElapsedTime(&ms, a.e[0], a.e[1]));
    return ms / 1e3;
}

static void report(const char *path, const std::string &bus, const std::string &peer,
                   double bytes, std::vector<double> secs) {
    std::vector<double> r;
    for (double s : secs) r.push_back(bytes / s / 1e9);
    std::sort(r.begin(), r.end());
    size_t n = r.size();
    double med = n % 2 ? r[n / 2] : (r[n / 2 - 1] + r[n / 2]) / 2;
    printf("RESULT path=%s bus=%s peer=%s gbps=%.3f min=%.3f max=%.3f\n", path, bus.c_str(),
           peer.c_str(), med, r.front(), r.back());
    fflush(stdout);
}

static void warm(Dev &d, int n, const Op &op) {
    CK(cudaSetDevice(d.id));
    for (int i = 0; i < n; i++) op(d.s[0]);
    CK(cudaStreamSynchronize(d.s[0]));
}

static void device_paths(Dev &d, const Opts &o) {
    size_t n = o.size;
    CK(cudaSetDevice(d.id));
    int sms = 0;
    CK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, d.id));
    void *da, *db, *ha, *hb;
    CK(cudaMalloc(&da, n));
    CK(cudaMalloc(&db, n));
    CK(cudaHostAlloc(&ha, n, cudaHostAllocDefault));
    CK(cudaHostAlloc(&hb, n, cudaHostAllocDefault));
    memset(ha, 1, n);
    memset(hb, 0, n);
    char *pa = (char *)malloc(n), *pb = (char *)malloc(n);
    memset(pa, 2, n);
    memset(pb, 0, n);
    double bytes = (double)n * o.copies;
    std::vector<double> secs;
    auto run = [&](const char *path, const Op &op) {
        warm(d, o.warmup, op);
        secs.clear();
        for (int i = 0; i < o.samples; i++) secs.push_back(held(d, o.copies, op));
        report(path, d.bus, "-", bytes, secs);
    };
    run("h2d_pinned", [&](cudaStream_t s) { CK(cudaMemcpyAsync(da, ha, n, cudaMemcpyHostToDevice, s)); });
    run("d2h_pinned", [&](cudaStream_t s) { CK(cudaMemcpyAsync(hb, da, n, cudaMemcpyDeviceToHost, s)); });

    auto wall = [&](const char *path, const std::function<void()> &op) {
        op();
        CK(cudaDeviceSynchronize());
        secs.clear();
        for (int i = 0; i < o.samples; i++) {
            auto t0 = std::chrono::steady_clock::now();
            for (int c = 0; c < o.slow; c++) op();
            CK(cudaDeviceSynchronize());
            secs.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
        }
        report(path, d.bus, "-", (double)n * o.slow, secs);
    };
    wall("h2d_pageable", [&] { CK(cudaMemcpy(da, pa, n, cudaMemcpyHostToDevice)); });
    wall("d2h_pageable", [&] { CK(cudaMemcpy(pb, da, n, cudaMemcpyDeviceToHost)); });

    Op h2d = [&](cudaStream_t s) { CK(cudaMemcpyAsync(db, ha, n, cudaMemcpyHostToDevice, s)); };
    Op d2h = [&](cudaStream_t s) { CK(cudaMemcpyAsync(hb, da, n, cudaMemcpyDeviceToHost, s)); };
    for (int i = 0; i < o.warmup; i++) {
        h2d(d.s[0]);
        d2h(d.s[1]);
    }
    CK(cudaDeviceSynchronize());
    secs.clear();
    for (int i = 0; i < o.samples; i++) secs.push_back(held_bidir(d, d, o.copies, h2d, d2h));
    report("bidir_pinned", d.bus, "-", 2 * bytes, secs);

    run("d2d_ce", [&](cudaStream_t s) { CK(cudaMemcpyAsync(da, db, n, cudaMemcpyDeviceToDevice, s)); });
    unsigned long long elems = n / 16;
    run("d2d_sm", [&](cudaStream_t s) {
        copy_v4<<<sms * 4, 512, 0, s>>>((const uint4 *)da, (uint4 *)db, elems);
        CK(cudaGetLastError());
    });

    CK(cudaFree(da));
    CK(cudaFree(db));
    CK(cudaFreeHost(ha));
    CK(cudaFreeHost(hb));
    free(pa);
    free(pb);
}

static void peer_paths(std::vector<Dev> &devs, const Opts &o) {
    size_t n = o.size;
    int count = (int)devs.size();
    std::vector<void *> src(count), dst(count);
    for (int i = 0; i < count; i++) {
        CK(cudaSetDevice(devs[i].id));
        CK(cudaMalloc(&src[i], n));
        CK(cudaMalloc(&dst[i], n));
        CK(cudaMemset(src[i], i + 1, n));
    }
    std::vector<std::vector<int>> on(count, std::vector<int>(count, 0));
    for (int i = 0; i < count; i++)
        for (int j = 0; j < count; j++) {
            if (i == j) continue;
            int ij = 0, ji = 0;
            CK(cudaDeviceCanAccessPeer(&ij, devs[i].id, devs[j].id));
            CK(cudaDeviceCanAccessPeer(&ji, devs[j].id, devs[i].id));
            if (ij && ji) {
                CK(cudaSetDevice(devs[i].id));
                cudaError_t e = cudaDeviceEnablePeerAccess(devs[j].id, 0);
                if (e == cudaErrorPeerAccessAlreadyEnabled) cudaGetLastError();
                else CK(e);
                on[i][j] = 1;
            }
        }
    double bytes = (double)n * o.copies;
    std::vector<double> secs;
    for (int i = 0; i < count; i++)
        for (int j = 0; j < count; j++) {
            if (i == j || !on[i][j] || !on[j][i]) continue;
            Dev &a = devs[i];
            int ia = a.id, jb = devs[j].id;
            Op op = [&, ia, jb, i, j](cudaStream_t s) { CK(cudaMemcpyPeerAsync(dst[j], jb, src[i], ia, n, s)); };
            warm(a, o.warmup, op);
            secs.clear();
            for (int k = 0; k < o.samples; k++) secs.push_back(held(a, o.copies, op));
            report("p2p", a.bus, devs[j].bus, bytes, secs);
        }
    for (int i = 0; i < count; i++)
        for (int j = i + 1; j < count; j++) {
            if (!on[i][j] || !on[j][i]) continue;
            Dev &a = devs[i], &b = devs[j];
            int ia = a.id, jb = b.id;
            Op ab = [&, ia, jb, i, j](cudaStream_t s) { CK(cudaMemcpyPeerAsync(dst[j], jb, src[i], ia, n, s)); };
            Op ba = [&, ia, jb, i, j](cudaStream_t s) { CK(cudaMemcpyPeerAsync(dst[i], ia, src[j], jb, n, s)); };
            for (int k = 0; k < o.warmup; k++) {
                CK(cudaSetDevice(ia));
                ab(a.s[0]);
                CK(cudaSetDevice(jb));
                ba(b.s[0]);
            }
            CK(cudaSetDevice(ia));
            CK(cudaDeviceSynchronize());
            CK(cudaSetDevice(jb));
            CK(cudaDeviceSynchronize());
            secs.clear();
            for (int k = 0; k < o.samples; k++) secs.push_back(held_bidir(a, b, o.copies, ab, ba));
            report("p2p_bidir", a.bus, b.bus, 2 * bytes, secs);
        }
    for (int i = 0; i < count; i++)
        for (int j = 0; j < count; j++)
            if (on[i][j]) {
                CK(cudaSetDevice(devs[i].id));
                CK(cudaDeviceDisablePeerAccess(devs[j].id));
            }
    for (int i = 0; i < count; i++) {
        CK(cudaSetDevice(devs[i].id));
        CK(cudaFree(src[i]));
        CK(cudaFree(dst[i]));
    }
}

int main(int argc, char **argv) {
    Opts o;
    if (argc > 1) o.size = strtoull(argv[1], nullptr, 10);
    if (argc > 2) o.copies = atoi(argv[2]);
    if (argc > 3) o.samples = atoi(argv[3]);
    if (argc > 4) o.warmup = atoi(argv[4]);
    if (argc > 5) o.slow = atoi(argv[5]);
    int count = 0;
    CK(cudaGetDeviceCount(&count));
    std::vector<Dev> devs(count);
    for (int i = 0; i < count; i++) open_dev(devs[i], i);
    for (auto &d : devs) device_paths(d, o);
    if (count > 1) peer_paths(devs, o);
    for (auto &d : devs) close_dev(d);
    return 0;
}
