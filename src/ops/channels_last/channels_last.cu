#include "kernel_args.cuh"
#include "conv2d_tc.cuh"

// Channels-last (NHWC) inference on tensor cores: activations [N, H, W, C] stored in the
// format the convolutions compute in, so both GEMM operands stream into shared memory with
// cp.async and a 16-bit network moves half the bytes of an FP32 one.
//
// Storage per `format` (the kernels' FORMAT, as conv2d_tc.cuh): 0 = FP32 (TF32 convolutions:
// values stay FP32, the A fragments are tf32_round-ed in registers, so the rounding is the
// NCHW kernels'), 1 = bf16, 2 = IEEE half (16-bit values in `unsigned short` arrays). Every
// kernel takes an FP32 and a 16-bit pointer per tensor and uses the one its format names (the
// other is null). Sums and epilogues are FP32; a 16-bit output is rounded once, to nearest even,
// when stored.

// Value i of a channels-last tensor as FP32 (exact: bf16 and f16 values are FP32 values).
template <int FORMAT>
__device__ __forceinline__ float cl_load(const float* __restrict__ x32,
                                         const unsigned short* __restrict__ x16, long long i) {
    if (FORMAT == 0) return x32[i];
    if (FORMAT == 1) return bf16_to_f32(x16[i]);
    return f16_to_f32(x16[i]);
}

template <int FORMAT>
__device__ __forceinline__ void cl_store(float* __restrict__ y32, unsigned short* __restrict__ y16,
                                         long long i, float v) {
    if (FORMAT == 0)
        y32[i] = v;
    else if (FORMAT == 1)
        y16[i] = f32_to_bf16(v);
    else
        y16[i] = f32_to_f16(v);
}

// Runs BODY with FORMAT a compile-time constant equal to `format` (0, 1 or 2).
#define CL_DISPATCH(format, ...)        \
    do {                                \
        if ((format) == 0) {            \
            constexpr int FORMAT = 0;   \
            __VA_ARGS__;                \
        } else if ((format) == 1) {     \
            constexpr int FORMAT = 1;   \
            __VA_ARGS__;                \
        } else {                        \
            constexpr int FORMAT = 2;   \
            __VA_ARGS__;                \
        }                               \
    } while (0)

#define CL_GRID_STRIDE(i, total)                                                          \
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < (total); \
         i += (long long)blockDim.x * gridDim.x)

// FP32 NCHW [n, c, hw] -> channels-last [n, hw, c] in the format. One thread per output
// value: consecutive threads write consecutive channels of a pixel.
extern "C" __global__ void cl_from_nchw(const float* __restrict__ x, float* __restrict__ y32,
                                        unsigned short* __restrict__ y16, int n, int c, int hw,
                                        int format) {
    const long long total = (long long)n * hw * c;
    CL_DISPATCH(format, CL_GRID_STRIDE(o, total) {
        const long long ci = o % c, rest = o / c;
        const long long p = rest % hw, ni = rest / hw;
        cl_store<FORMAT>(y32, y16, o, x[(ni * c + ci) * hw + p]);
    });
}

// Channels-last [n, hw, c] in the format -> FP32 NCHW [n, c, hw] (exact).
extern "C" __global__ void cl_to_nchw(const float* __restrict__ x32,
                                      const unsigned short* __restrict__ x16,
                                      float* __restrict__ y, int n, int c, int hw, int format) {
    const long long total = (long long)n * c * hw;
    CL_DISPATCH(format, CL_GRID_STRIDE(o, total) {
        const long long p = o % hw, rest = o / hw;
        const long long ci = rest % c, ni = rest / c;
        y[o] = cl_load<FORMAT>(x32, x16, (ni * hw + p) * c + ci);
    });
}

// Max pooling channels-last, g in NCHW terms (o = c). The NCHW kernel's rule per channel: cells
// row by row, left to right, padding skipped, a later cell kept only when strictly greater (a NaN
// wins only as the first cell). The result is one of the stored values: no rounding.
extern "C" __global__ void cl_maxpool(const float* __restrict__ x32,
                                      const unsigned short* __restrict__ x16,
                                      float* __restrict__ y32, unsigned short* __restrict__ y16,
                                      Window g, int format) {
    const long long total = (long long)g.n * g.ho * g.wo * g.c;
    CL_DISPATCH(format, CL_GRID_STRIDE(o, total) {
        const int ci = (int)(o % g.c);
        long long rest = o / g.c;
        const int j = (int)(rest % g.wo);
        rest /= g.wo;
        const int i = (int)(rest % g.ho);
        const long long ni = rest / g.ho;
        const int r0 = max(i * g.sh - g.ph, 0), r1 = min(i * g.sh - g.ph + g.kh, g.h);
        const int c0 = max(j * g.sw - g.pw, 0), c1 = min(j * g.sw - g.pw + g.kw, g.w);
        const long long base = ni * g.h * g.w;
        float best = 0.f;
        bool any = false;
        for (int r = r0; r < r1; ++r)
            for (int cc = c0; cc < c1; ++cc) {
                const float v = cl_load<FORMAT>(x32, x16, (base + (long long)r * g.w + cc) * g.c + ci);
                if (!any || v > best) best = v;
                any = true;
            }
        cl_store<FORMAT>(y32, y16, o, best);  // a stored value: re-rounding leaves it as it is
    });
}

// Channels-last [n, hw, c] -> FP32 [n, c]: each channel summed over the pixels in order from
// -0.0, then times 1/hw (the NCHW kernel's and the CPU's order).
extern "C" __global__ void cl_global_avg_pool(const float* __restrict__ x32,
                                              const unsigned short* __restrict__ x16,
                                              float* __restrict__ y, int n, int hw, int c,
                                              int format) {
    const long long total = (long long)n * c;
    const float inv = 1.0f / (float)hw;
    CL_DISPATCH(format, CL_GRID_STRIDE(o, total) {
        const long long ci = o % c, ni = o / c;
        float s = -0.0f;
        for (int p = 0; p < hw; ++p) s += cl_load<FORMAT>(x32, x16, (ni * hw + p) * c + ci);
        y[o] = s * inv;
    });
}

// Weights [o, c, taps] -> [o, taps, c]: the channels-last GEMM's K order (tap, channel), which
// gemm_tc_pack then packs K-major in the format.
extern "C" __global__ void cl_weight_permute(const float* __restrict__ w, float* __restrict__ y,
                                             int o, int c, int taps) {
    const long long total = (long long)o * c * taps;
    CL_GRID_STRIDE(i, total) {
        const long long ci = i % c, rest = i / c;
        const long long t = rest % taps, oi = rest / taps;
        y[i] = w[(oi * c + ci) * taps + t];
    }
}

// Copies 16-byte chunks of ROWS packed weight rows (output channels r0.., `ldw` words each,
// rows >= R zero-filled) of k-tile kt into stage rows `first`.. over NT threads.
template <int ROWS, int NT>
__device__ __forceinline__ void cl_copy_weights(unsigned char* st, int first,
                                                const float* __restrict__ packed, int r0, int R,
                                                int ldw, int kt) {
    const unsigned char* base = reinterpret_cast<const unsigned char*>(packed);
    for (int i = threadIdx.x; i < ROWS * 4; i += NT) {
        const int r = i >> 2, c = i & 3;
        const bool ok = r0 + r < R;
        const unsigned char* src =
            ok ? base + ((size_t)(r0 + r) * ldw + (size_t)kt * 16 + c * 4) * 4 : base;
        cp_async_16(st + ctc_swz(first + r, c), src, ok ? 16 : 0);
    }
}

// The convolution as an implicit GEMM with M = output pixels (n, oh, ow) and N = output
// channels: Y[M, O] (row-major: NHWC) = A[M, K] W[K, O], K = (tap, channel). A row's k-tile is
// 64 consecutive bytes of one input pixel when C is a multiple of a 16-byte chunk (4 FP32 or 8
// 16-bit values; the host checks), so A arrives by cp.async like the packed weights: each
// thread copies one chunk column of two pixel rows, a padding tap or a row past M zero-filled.
// Block: BM pixels x 64 channels, the main loop and warp tiles of conv2d_tc.cuh.
template <int FORMAT, int BM>
__device__ __forceinline__ void cl_conv(unsigned char* smem, const float* __restrict__ x32,
                                        const unsigned short* __restrict__ x16,
                                        const float* __restrict__ wp,
                                        const float* __restrict__ bias,
                                        const float* __restrict__ r32,
                                        const unsigned short* __restrict__ r16,
                                        float* __restrict__ y32, unsigned short* __restrict__ y16,
                                        float* __restrict__ partial, int kps, int ldw,
                                        const Window& g, int relu) {
    constexpr int NT = 2 * BM;
    constexpr int CE = FORMAT == 0 ? 4 : 8;  // values per 16-byte chunk
    constexpr int KT = 4 * CE;               // values per k-tile
    constexpr int ES = FORMAT == 0 ? 4 : 2;  // bytes per value
    const int C = g.c, H = g.h, W = g.w, O = g.o;
    const int K = C * g.kh * g.kw;
    const int P = g.ho * g.wo;
    const long long M = (long long)g.n * P;
    const long long m0 = (long long)blockIdx.x * BM;
    const int n0 = blockIdx.y * CTC_BN;
    // Split K: this block's k-tiles kt0.. (kps of them, fewer in the last split).
    const int kt0 = blockIdx.z * kps;
    const int ktiles = max(0, min((K + KT - 1) / KT, kt0 + kps) - kt0);
    const unsigned char* xb = FORMAT == 0 ? reinterpret_cast<const unsigned char*>(x32)
                                          : reinterpret_cast<const unsigned char*>(x16);

    // This thread's A chunks: column ac of rows (tid + q NT) / 4, q = 0, 1 (the same column).
    const int ac = threadIdx.x & 3;
    long long apix[2];  // first pixel index of the row's image
    int aih[2], aiw[2];
    bool aok[2];
#pragma unroll
    for (int q = 0; q < 2; ++q) {
        const long long m = m0 + ((threadIdx.x + q * NT) >> 2);
        aok[q] = m < M;
        const long long mm = aok[q] ? m : 0;
        const long long img = mm / P;
        const int p = (int)(mm - img * P);
        const int oh = p / g.wo, ow = p - (p / g.wo) * g.wo;
        apix[q] = img * H * W;
        aih[q] = oh * g.sh - g.ph;
        aiw[q] = ow * g.sw - g.pw;
    }
    // Where the chunk's k lies: tap (ti, tj), channel c0. The main loop asks for k-tiles 0, 1,
    // 2, ... in order, so it steps by KT per call instead of dividing.
    int k = kt0 * KT + ac * CE;
    int c0 = k % C, tap = k / C;
    int ti = tap / g.kw, tj = tap - (tap / g.kw) * g.kw;

    auto fetch_async = [&](int kt, unsigned char* st) {
        (void)kt;
#pragma unroll
        for (int q = 0; q < 2; ++q) {
            const int r = (threadIdx.x + q * NT) >> 2;
            const int ih = aih[q] + ti, iw = aiw[q] + tj;
            const bool ok = aok[q] && k < K && ih >= 0 && ih < H && iw >= 0 && iw < W;
            const unsigned char* src =
                ok ? xb + ((apix[q] + (long long)ih * W + iw) * C + c0) * ES : xb;
            cp_async_16(st + ctc_swz(r, ac), src, ok ? 16 : 0);
        }
        k += KT;
        c0 += KT;
        while (c0 >= C) {
            c0 -= C;
            if (++tj == g.kw) {
                tj = 0;
                ++ti;
            }
        }
        cl_copy_weights<CTC_BN, NT>(st, BM, wp, n0, O, ldw, kt0 + kt);
    };
    auto none = [&](int) {};
    auto none_st = [&](unsigned char*) {};
    float acc[2][4][4];
    ctc_mainloop<FORMAT, BM, true>(smem, ktiles, acc, fetch_async, none, none_st);

    ctc_each(acc, 0, n0, [&](int mr, int n, float v) {
        const long long m = m0 + mr;
        if (m >= M || n >= O) return;
        const long long off = m * O + n;
        if (partial) {  // raw sums for cl_splitk_reduce
            partial[blockIdx.z * M * O + off] = v;
            return;
        }
        if (bias) v += __ldg(bias + n);
        if (r32 || r16) v += cl_load<FORMAT>(r32, r16, off);
        if (relu) v = fmaxf(v, 0.f);
        cl_store<FORMAT>(y32, y16, off, v);
    });
}

// 64-pixel tiles (128 threads) when the whole output has at most 64 pixels; 128 x 64 (256
// threads) otherwise. Grid: (pixel tiles, channel tiles, K splits). With `partial`, each split
// stores its raw sums to slab blockIdx.z [M, O] and cl_splitk_reduce finishes.
extern "C" __global__ void __launch_bounds__(128)
    conv2d_cl_tc_64(const float* __restrict__ x32, const unsigned short* __restrict__ x16,
                    const float* __restrict__ wp, const float* __restrict__ bias,
                    const float* __restrict__ r32, const unsigned short* __restrict__ r16,
                    float* __restrict__ y32, unsigned short* __restrict__ y16,
                    float* __restrict__ partial, int kps, int ldw, Window g, int relu, int format) {
    __shared__ __align__(128) unsigned char smem[CTC_SMEM(64)];
    CL_DISPATCH(format,
                cl_conv<FORMAT, 64>(smem, x32, x16, wp, bias, r32, r16, y32, y16, partial, kps,
                                        ldw, g, relu));
}

extern "C" __global__ void __launch_bounds__(256)
    conv2d_cl_tc_128(const float* __restrict__ x32, const unsigned short* __restrict__ x16,
                     const float* __restrict__ wp, const float* __restrict__ bias,
                     const float* __restrict__ r32, const unsigned short* __restrict__ r16,
                     float* __restrict__ y32, unsigned short* __restrict__ y16,
                     float* __restrict__ partial, int kps, int ldw, Window g, int relu,
                     int format) {
    __shared__ __align__(128) unsigned char smem[CTC_SMEM(128)];
    CL_DISPATCH(format,
                cl_conv<FORMAT, 128>(smem, x32, x16, wp, bias, r32, r16, y32, y16, partial, kps,
                                         ldw, g, relu));
}

// y = epilogue(sum of the `splits` slabs of `partial`, added in slab order) for the channels-last
// convolution's split K: `total` = M O values, channel = i % o.
extern "C" __global__ void cl_splitk_reduce(const float* __restrict__ partial,
                                            const float* __restrict__ bias,
                                            const float* __restrict__ r32,
                                            const unsigned short* __restrict__ r16,
                                            float* __restrict__ y32, unsigned short* __restrict__ y16,
                                            long long total, int splits, int o, int relu,
                                            int format) {
    CL_DISPATCH(format, CL_GRID_STRIDE(i, total) {
        float v = partial[i];
        for (int s = 1; s < splits; ++s) v += partial[s * total + i];
        if (bias) v += __ldg(bias + i % o);
        if (r32 || r16) v += cl_load<FORMAT>(r32, r16, i);
        if (relu) v = fmaxf(v, 0.f);
        cl_store<FORMAT>(y32, y16, i, v);
    });
}
