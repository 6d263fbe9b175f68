#include "kernel_args.cuh"

// Self-test kernels: not part of any op. They exercise the CUDA features the op kernels rely on
// (barriers, static and dynamic shared memory, warp shuffles and votes, atomics), so the same
// expected results (computed on the host) check the CPU emulator in `cargo test` and the real
// GPU in the GPU check: if both pass, the emulator means what the GPU means.

// Each block reverses its slice of x through dynamic shared memory (one float per thread).
extern "C" __global__ void selftest_block_reverse(const float* __restrict__ x,
                                                  float* __restrict__ y, int n) {
    extern __shared__ float buf[];
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    buf[threadIdx.x] = i < n ? x[i] : 0.f;
    __syncthreads();
    int j = blockIdx.x * blockDim.x + (blockDim.x - 1 - threadIdx.x);
    if (j < n) y[j] = buf[threadIdx.x];
}

// Per thread, 6 results from warp collectives over x (one int per thread, 64 threads/block):
// [0] warp sum by __shfl_down_sync tree (valid in lane 0 only; others get their partial),
// [1] butterfly sum by __shfl_xor_sync (every lane), [2] lane 0's value by __shfl_sync,
// [3] the previous lane's value by __shfl_up_sync (lane 0 keeps its own),
// [4] __ballot_sync of x > 0, [5] __any_sync(x > 100) + 2 * __all_sync(x > -100).
extern "C" __global__ void selftest_warp_ops(const int* __restrict__ x, int* __restrict__ y) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    int v = x[i];
    int down = v;
    for (int off = 16; off > 0; off >>= 1) down += __shfl_down_sync(0xffffffffu, down, off);
    int bfly = v;
    for (int m = 1; m < 32; m <<= 1) bfly += __shfl_xor_sync(0xffffffffu, bfly, m);
    int first = __shfl_sync(0xffffffffu, v, 0);
    int prev = __shfl_up_sync(0xffffffffu, v, 1);
    unsigned ballot = __ballot_sync(0xffffffffu, v > 0);
    int votes = __any_sync(0xffffffffu, v > 100) + 2 * __all_sync(0xffffffffu, v > -100);
    y[6 * i + 0] = down;
    y[6 * i + 1] = bfly;
    y[6 * i + 2] = first;
    y[6 * i + 3] = prev;
    y[6 * i + 4] = (int)ballot;
    y[6 * i + 5] = votes;
}

// Sum of x into total[0] by atomicAdd after a static-shared-memory block reduction.
extern "C" __global__ void selftest_atomic_sum(const float* __restrict__ x, float* total, int n) {
    __shared__ float part[256];
    float s = 0.f;
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += blockDim.x * gridDim.x) s += x[i];
    part[threadIdx.x] = s;
    __syncthreads();
    for (int w = blockDim.x / 2; w > 0; w >>= 1) {
        if (threadIdx.x < w) part[threadIdx.x] += part[threadIdx.x + w];
        __syncthreads();
    }
    if (threadIdx.x == 0) atomicAdd(total, part[0]);
}

// A struct and a double by value: out[0..13] = the Window's fields in order, out[13] = the
// double's bits (hi) and out[14] (lo), so the host sees that both arrive exactly as passed.
extern "C" __global__ void selftest_struct_args(Window g, double d, int* __restrict__ out) {
    if (blockIdx.x != 0 || threadIdx.x != 0) return;
    const int f[13] = {g.n, g.c, g.h, g.w, g.o, g.ho, g.wo, g.kh, g.kw, g.sh, g.sw, g.ph, g.pw};
    for (int i = 0; i < 13; ++i) out[i] = f[i];
    long long bits = __double_as_longlong(d);
    out[13] = (int)(bits >> 32);
    out[14] = (int)(bits & 0xffffffffLL);
}
