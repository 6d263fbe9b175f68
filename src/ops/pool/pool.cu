#include "act.cuh"
#include "kernel_args.cuh"

// Pooling kernels: max-pool 2d forward and backward, global average pool forward and backward.
// Layout NCHW; a "plane" is one (n, c) slice of H x W values. Offsets into whole tensors are
// 64-bit; sizes within a plane and counts of planes fit in int (checked on the host).
// Activations and their gradients are FP32 or 16-bit (act.cuh: `void*` + format); the average
// pool's output and incoming gradient (the head's side) are FP32.

// In-plane index (r * w + c) of the maximum of output window (i, j): the window's cells are
// visited row by row, left to right, skipping padding (which therefore never wins), and a later
// cell replaces the best only when strictly greater, so ties go to the first cell in that order
// and a NaN wins only as the first real cell, exactly as the reference's `v > best`. The host
// guarantees every window overlaps the input; -1 is returned otherwise (H or W of 0).
__device__ __forceinline__ int maxpool_argmax(const void* __restrict__ x, int xf,
                                              long long base, int h, int w, int i, int j, int kh,
                                              int kw, int sh, int sw, int ph, int pw) {
    int r0 = i * sh - ph, c0 = j * sw - pw;
    int r1 = min(r0 + kh, h), c1 = min(c0 + kw, w);
    r0 = max(r0, 0);
    c0 = max(c0, 0);
    int best = -1;
    float bv = 0.f;
    for (int r = r0; r < r1; ++r) {
        for (int c = c0; c < c1; ++c) {
            float v = act_ld(x, base + r * w + c, xf);
            if (best < 0 || v > bv) {
                best = r * w + c;
                bv = v;
            }
        }
    }
    return best;
}

// y[plane, i, j] = max of its window. One thread per output element (grid-stride).
extern "C" __global__ void maxpool2d_forward(const void* __restrict__ x, int xf,
                                             void* __restrict__ y, int yf, Window g) {
    const int h = g.h, w = g.w, ho = g.ho, wo = g.wo, kh = g.kh, kw = g.kw;
    const int sh = g.sh, sw = g.sw, ph = g.ph, pw = g.pw;
    long long total = (long long)g.n * g.c * ho * wo;
    for (long long o = blockIdx.x * (long long)blockDim.x + threadIdx.x; o < total;
         o += (long long)blockDim.x * gridDim.x) {
        int j = (int)(o % wo);
        int i = (int)((o / wo) % ho);
        long long plane = o / ((long long)ho * wo);
        const long long base = plane * h * w;
        int a = maxpool_argmax(x, xf, base, h, w, i, j, kh, kw, sh, sw, ph, pw);
        // A stored value: storing it in x's format again leaves it exact.
        act_st(y, o, a >= 0 ? act_ld(x, base + a, xf) : __uint_as_float(0xff800000u), yf);
    }
}

// Gather form of the max-pool gradient: each input cell sums dy over the output windows that
// cover it and whose argmax (recomputed with the forward's tie rule) it is. No atomics, so the
// result is deterministic; the sum runs in double in output order starting from 0, the very
// arithmetic of the reference's scatter, so the result equals it bit for bit.
extern "C" __global__ void maxpool2d_backward(const void* __restrict__ dy, int dyf,
                                              const void* __restrict__ x, int xf,
                                              void* __restrict__ dx, int dxf, Window g) {
    const int h = g.h, w = g.w, ho = g.ho, wo = g.wo, kh = g.kh, kw = g.kw;
    const int sh = g.sh, sw = g.sw, ph = g.ph, pw = g.pw;
    long long total = (long long)g.n * g.c * h * w;
    for (long long e = blockIdx.x * (long long)blockDim.x + threadIdx.x; e < total;
         e += (long long)blockDim.x * gridDim.x) {
        int c = (int)(e % w);
        int r = (int)((e / w) % h);
        long long plane = e / ((long long)h * w);
        const long long base = plane * h * w, dbase = plane * ho * wo;
        // Windows covering row r: i * sh - ph <= r <= i * sh - ph + kh - 1.
        int lo_r = r + ph - kh + 1, lo_c = c + pw - kw + 1;
        int i0 = lo_r <= 0 ? 0 : (lo_r + sh - 1) / sh;
        int j0 = lo_c <= 0 ? 0 : (lo_c + sw - 1) / sw;
        int i1 = min((r + ph) / sh, ho - 1);
        int j1 = min((c + pw) / sw, wo - 1);
        int me = r * w + c;
        double acc = 0.0;
        for (int i = i0; i <= i1; ++i) {
            for (int j = j0; j <= j1; ++j) {
                if (maxpool_argmax(x, xf, base, h, w, i, j, kh, kw, sh, sw, ph, pw) == me) {
                    acc += (double)act_ld(dy, dbase + i * wo + j, dyf);
                }
            }
        }
        act_st(dx, e, (float)acc, dxf);
    }
}

// y[plane] = mean of the plane. One warp per plane: each lane sums a strided share in order,
// then a shuffle tree adds the 32 partials (deterministic). Blocks of whole warps; a warp whose
// plane is past the end leaves as a whole, so no shuffle waits on an absent lane.
extern "C" __global__ void global_avg_pool_forward(const void* __restrict__ x, int xf,
                                                   float* __restrict__ y, int planes, int hw) {
    int lane = threadIdx.x & 31;
    int warps = blockDim.x >> 5;
    for (long long plane = (long long)blockIdx.x * warps + (threadIdx.x >> 5); plane < planes;
         plane += (long long)gridDim.x * warps) {
        const long long base = plane * hw;
        float s = 0.f;
        for (int i = lane; i < hw; i += 32) s += act_ld(x, base + i, xf);
        for (int off = 16; off > 0; off >>= 1) s += __shfl_down_sync(0xffffffffu, s, off);
        if (lane == 0) y[plane] = s / (float)hw;
    }
}

// dx[plane, :] = dy[plane] / hw. One correctly rounded float division (hw < 2^24 is exact as a
// float), which equals the reference's f64 division rounded to f32 (double rounding is harmless
// for division from 53 to 24 bits).
extern "C" __global__ void global_avg_pool_backward(const float* __restrict__ dy,
                                                    void* __restrict__ dx, int dxf, int planes,
                                                    int hw) {
    long long total = (long long)planes * hw;
    float fhw = (float)hw;
    for (long long e = blockIdx.x * (long long)blockDim.x + threadIdx.x; e < total;
         e += (long long)blockDim.x * gridDim.x) {
        act_st(dx, e, dy[e / hw] / fhw, dxf);
    }
}
