// The CUDA C equivalent of gpu_doctor.ptx, for reading and for regeneration checks.
// The shipped PTX is hand-written to .version 7.0 / sm_52 so that any driver since CUDA 11
// JITs it; nvcc 13 cannot emit that old a target. To check the PTX on a machine with a
// toolkit: `ptxas -arch=sm_90 src/probe/kernels/gpu_doctor.ptx -o /dev/null`
// (tests/gpu/run.sh does this on the device machine).
#include <cstdint>

extern "C" __global__ void empty() {}

extern "C" __global__ void trap_kernel() { asm volatile("trap;"); }

extern "C" __global__ void write_u32(uint32_t *p, uint32_t value) { *p = value; }

extern "C" __global__ void fill_u32(uint32_t *p, uint32_t value, uint64_t n) {
    for (uint64_t i = (uint64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n;
         i += (uint64_t)gridDim.x * blockDim.x)
        p[i] = value;
}

extern "C" __global__ void delayed_fill_u32(uint32_t *p, uint32_t value, uint64_t n, uint64_t delay) {
    uint64_t t0 = clock64();
    while (clock64() - t0 < delay) {}
    for (uint64_t i = (uint64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n;
         i += (uint64_t)gridDim.x * blockDim.x)
        p[i] = value;
}

extern "C" __global__ void spin_wait(volatile uint32_t *flag, uint64_t max_cycles) {
    uint64_t t0 = clock64();
    while (*flag == 0 && clock64() - t0 < max_cycles) {}
}

extern "C" __global__ void copy_v4(const uint4 *__restrict__ src, uint4 *dst, uint64_t n) {
    for (uint64_t i = (uint64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n;
         i += (uint64_t)gridDim.x * blockDim.x)
        dst[i] = __ldg(&src[i]);
}
