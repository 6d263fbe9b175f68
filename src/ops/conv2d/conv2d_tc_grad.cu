#include "act.cuh"
#include "kernel_args.cuh"
#include "conv2d_tc.cuh"

// Convolution gradients on tensor cores (TF32 / BF16 / FP16 inputs, FP32 sums): the implicit
// GEMMs of conv2d_backward.cu with the main loop of conv2d_tc.cuh. Split K as there: raw sums
// of `kps` k-tiles per split to `partial` (same layout, one slab a split), added in a fixed order
// by conv2d_splitk_reduce.
//
// Data gradient of strided / over-padded geometry (stride 1 runs the tensor-core forward on dy
// with the flipped, transposed weights, cuda_tc.rs): M = C, N = batch * H * W, K = O * KH * KW;
// A = the transposed weights [C, K], packed K-major (cp.async); B gathered from dy through the
// stride (taps that miss a dy pixel read zero).
// Weight gradient: M = O, N = C * KH * KW, K = batch * OH * OW; both operands gathered (A from
// dy, B from x), each thread owning one k word and a run of rows, so the 16 threads of a row
// read consecutive pixels.
// dy, x and dx are FP32 or 16-bit activations (act.cuh: `void*` + format); dx is rounded once
// when stored, dW (and every split slab) is FP32.

__device__ __forceinline__ int ctc_div_stride(int v, int s) { return s == 2 ? v >> 1 : v / s; }

template <int FORMAT, int BM>
__device__ __forceinline__ void ctc_dgrad(unsigned char* smem, const float* __restrict__ wtp,
                                          const void* __restrict__ dy, int dyf,
                                          const int* __restrict__ ktab, void* __restrict__ dx,
                                          int dxf, float* __restrict__ partial, int kps, int ldw,
                                          const Window& g) {
    constexpr int NT = 2 * BM, VPW = FORMAT == 0 ? 1 : 2, KT = 16 * VPW;
    constexpr int CSTEP = NT / CTC_BN, WPT = 16 / CSTEP;
    const int C = g.c, O = g.o, OH = g.ho, OW = g.wo, SH = g.sh, SW = g.sw;
    const int HW = g.h * g.w, P = OH * OW;
    const int M = C, NC = g.n * HW, K = O * g.kh * g.kw;
    const int m0 = blockIdx.y * BM, n0 = blockIdx.x * CTC_BN;
    const int kt0 = blockIdx.z * kps;
    const int ktiles = max(0, min((K + KT - 1) / KT, kt0 + kps) - kt0);
    const int k_end = min(K, (kt0 + kps) * KT);
    const int tid = threadIdx.x;

    // B gather: this thread's column (n, h, w) of dx.
    const int bc = tid % CTC_BN, bw = tid / CTC_BN;
    const int col = n0 + bc;
    const bool col_ok = col < NC;
    const int cc = col_ok ? col : 0;
    const int n = cc / HW;
    const int q = cc - n * HW;
    const int h = q / g.w;
    const long long d_base = (long long)n * O * P;
    const int d_hp = h + g.ph, d_wp = (q - h * g.w) + g.pw;
    float breg[WPT * VPW];

    auto fetch_async = [&](int kt, unsigned char* st) {
        ctc_copy_a<BM>(st, wtp, m0, M, ldw, kt0 + kt);
    };
    auto fetch = [&](int kt) {
        const int kb = (kt0 + kt) * KT;
#pragma unroll
        for (int j = 0; j < WPT; ++j)
#pragma unroll
            for (int v = 0; v < VPW; ++v) {
                const int k = kb + (bw + CSTEP * j) * VPW + v;
                float val = 0.f;
                if (col_ok && k < k_end) {
                    // k -> (offset of dy channel o, kh << 16 | kw) from the host-made table.
                    const int2 t = __ldg(reinterpret_cast<const int2*>(ktab) + k);
                    const int th = d_hp - (t.y >> 16);
                    const int tw = d_wp - (t.y & 0xffff);
                    if (th >= 0 && tw >= 0) {
                        const int oh = ctc_div_stride(th, SH), ow = ctc_div_stride(tw, SW);
                        if (oh * SH == th && ow * SW == tw && oh < OH && ow < OW)
                            val = act_ld(dy, d_base + t.x + oh * OW + ow, dyf);
                    }
                }
                breg[j * VPW + v] = val;
            }
    };
    auto store = [&](unsigned char* st) {
#pragma unroll
        for (int j = 0; j < WPT; ++j)
            *reinterpret_cast<unsigned*>(st + ctc_word(BM + bc, bw + CSTEP * j)) =
                ctc_pack<FORMAT>(breg[j * VPW], breg[j * VPW + VPW - 1]);
    };
    float acc[2][4][4];
    ctc_mainloop<FORMAT, BM>(smem, ktiles, acc, fetch_async, fetch, store);

    // dx is [N, C, H * W]: column (n, pixel), row c.
    float* slab = partial ? partial + (size_t)blockIdx.z * ((size_t)M * NC) : nullptr;
    ctc_each(acc, m0, n0, [&](int m, int cl, float v) {
        if (m >= M || cl >= NC) return;
        const int nn = cl / HW;
        const size_t off = ((size_t)nn * C + m) * HW + (cl - nn * HW);
        if (act_uniform(slab != nullptr))  // one copy of the epilogue (act.cuh)
            slab[off] = v;
        else
            act_st(dx, off, v, act_uniform(dxf));
    });
}

template <int FORMAT, int BM>
__device__ __forceinline__ void ctc_wgrad(unsigned char* smem, const void* __restrict__ dy,
                                          int dyf, const void* __restrict__ x, int xf,
                                          const int* __restrict__ ktab, float* __restrict__ dw,
                                          float* __restrict__ partial, int kps, const Window& g) {
    constexpr int NT = 2 * BM, VPW = FORMAT == 0 ? 1 : 2, KT = 16 * VPW;
    constexpr int RSTEP = NT / 16, AR = BM / RSTEP, BR = CTC_BN / RSTEP;  // rows per thread
    const int C = g.c, H = g.h, W = g.w, O = g.o, OW = g.wo;
    const int P = g.ho * OW, HW = H * W;
    const int M = O, NC = C * g.kh * g.kw, K = g.n * P;
    const int m0 = blockIdx.y * BM, n0 = blockIdx.x * CTC_BN;
    const int kt0 = blockIdx.z * kps;
    const int ktiles = max(0, min((K + KT - 1) / KT, kt0 + kps) - kt0);
    const int k_end = min(K, (kt0 + kps) * KT);
    const int tid = threadIdx.x;
    const int kw_ = tid & 15, row0 = tid >> 4;  // this thread's word and first row
    // Raw words (act_ld_bits), widened by `store`: the loads of one tile are in flight while
    // the previous tile multiplies, and raw words keep the format's conversion out of that
    // window. ptxas 13.5, sm_90, 256 threads: 124 registers, against 128 (its cap there, with
    // no margin) converting at load time.
    unsigned areg[AR * VPW], breg[BR * VPW];

    auto fetch_async = [](int, unsigned char*) {};
    auto fetch = [&](int kt) {
#pragma unroll
        for (int v = 0; v < VPW; ++v) {
            // The reduction index r = (image, output pixel) of this value.
            const int r = ((kt0 + kt) * 16 + kw_) * VPW + v;
            const bool ok = r < k_end;
            const int rr = ok ? r : 0;
            const int img = rr / P;
            const int p = rr - img * P;
            const int oh = p / OW;
            const int ow = p - oh * OW;
            const int ih0 = oh * g.sh - g.ph, iw0 = ow * g.sw - g.pw;
            const long long dyp = (long long)img * O * P + p;
            const long long xp = (long long)img * C * HW + (ih0 * W + iw0);
#pragma unroll
            for (int i = 0; i < AR; ++i) {
                const int m = m0 + row0 + RSTEP * i;
                areg[i * VPW + v] = ok && m < M ? act_ld_bits(dy, dyp + (long long)m * P, dyf) : 0u;
            }
#pragma unroll
            for (int i = 0; i < BR; ++i) {
                const int j = n0 + row0 + RSTEP * i;
                unsigned val = 0u;
                if (ok && j < NC) {
                    // j -> ((c * H + kh) * W + kw, kh << 16 | kw): the forward's table.
                    const int2 t = __ldg(reinterpret_cast<const int2*>(ktab) + j);
                    const int ih = ih0 + (t.y >> 16);
                    const int iw = iw0 + (t.y & 0xffff);
                    if (ih >= 0 && ih < H && iw >= 0 && iw < W) val = act_ld_bits(x, xp + t.x, xf);
                }
                breg[i * VPW + v] = val;
            }
        }
    };
    auto store = [&](unsigned char* st) {
#pragma unroll
        for (int i = 0; i < AR; ++i)
            *reinterpret_cast<unsigned*>(st + ctc_word(row0 + RSTEP * i, kw_)) =
                ctc_pack<FORMAT>(act_bits_to_f32(areg[i * VPW], dyf),
                                 act_bits_to_f32(areg[i * VPW + VPW - 1], dyf));
#pragma unroll
        for (int i = 0; i < BR; ++i)
            *reinterpret_cast<unsigned*>(st + ctc_word(BM + row0 + RSTEP * i, kw_)) =
                ctc_pack<FORMAT>(act_bits_to_f32(breg[i * VPW], xf),
                                 act_bits_to_f32(breg[i * VPW + VPW - 1], xf));
    };
    float acc[2][4][4];
    ctc_mainloop<FORMAT, BM>(smem, ktiles, acc, fetch_async, fetch, store);

    // dW is [O, C * KH * KW] row-major.
    float* out = partial ? partial + (size_t)blockIdx.z * ((size_t)M * NC) : dw;
    ctc_each(acc, m0, n0, [&](int m, int cl, float v) {
        if (m < M && cl < NC) out[(size_t)m * NC + cl] = v;
    });
}

// wtp: the weights as [C, O * KH * KW] packed K-major in the format; dy [N, O, OH, OW]; ktab
// k = (o, kh, kw) -> (o * OH * OW, kh << 16 | kw); dx [N, C, H, W].
#define CTC_DGRAD(BM)                                                                         \
    if (format == 0)                                                                          \
        ctc_dgrad<0, BM>(smem, wtp, dy, dyf, ktab, dx, dxf, partial, kps, ldw, g);             \
    else if (format == 1)                                                                     \
        ctc_dgrad<1, BM>(smem, wtp, dy, dyf, ktab, dx, dxf, partial, kps, ldw, g);             \
    else                                                                                      \
        ctc_dgrad<2, BM>(smem, wtp, dy, dyf, ktab, dx, dxf, partial, kps, ldw, g)

extern "C" __global__ void __launch_bounds__(128)
    conv2d_tc_dgrad_64(const float* __restrict__ wtp, const void* __restrict__ dy, int dyf,
                       const int* __restrict__ ktab, void* __restrict__ dx, int dxf,
                       float* __restrict__ partial, int kps, int ldw, Window g, int format) {
    __shared__ __align__(128) unsigned char smem[CTC_SMEM(64)];
    CTC_DGRAD(64);
}

extern "C" __global__ void __launch_bounds__(256)
    conv2d_tc_dgrad_128(const float* __restrict__ wtp, const void* __restrict__ dy, int dyf,
                        const int* __restrict__ ktab, void* __restrict__ dx, int dxf,
                        float* __restrict__ partial, int kps, int ldw, Window g, int format) {
    __shared__ __align__(128) unsigned char smem[CTC_SMEM(128)];
    CTC_DGRAD(128);
}

// dy [N, O, OH, OW], x [N, C, H, W], ktab the forward's table; dW [O, C * KH * KW].
#define CTC_WGRAD(BM)                                                                         \
    if (format == 0)                                                                          \
        ctc_wgrad<0, BM>(smem, dy, dyf, x, xf, ktab, dw, partial, kps, g);                     \
    else if (format == 1)                                                                     \
        ctc_wgrad<1, BM>(smem, dy, dyf, x, xf, ktab, dw, partial, kps, g);                     \
    else                                                                                      \
        ctc_wgrad<2, BM>(smem, dy, dyf, x, xf, ktab, dw, partial, kps, g)

extern "C" __global__ void __launch_bounds__(128)
    conv2d_tc_wgrad_64(const void* __restrict__ dy, int dyf, const void* __restrict__ x, int xf,
                       const int* __restrict__ ktab, float* __restrict__ dw,
                       float* __restrict__ partial, int kps, Window g, int format) {
    __shared__ __align__(128) unsigned char smem[CTC_SMEM(64)];
    CTC_WGRAD(64);
}

extern "C" __global__ void __launch_bounds__(256)
    conv2d_tc_wgrad_128(const void* __restrict__ dy, int dyf, const void* __restrict__ x, int xf,
                        const int* __restrict__ ktab, float* __restrict__ dw,
                        float* __restrict__ partial, int kps, Window g, int format) {
    __shared__ __align__(128) unsigned char smem[CTC_SMEM(128)];
    CTC_WGRAD(128);
}
