#include "act.cuh"
#include "kernel_args.cuh"
#include "conv2d_tc.cuh"

// Convolution forward on tensor cores: the implicit GEMM of conv2d.cu (M = O, N = batch * OH *
// OW, K = C * KH * KW; A = the weights [O, K], B = the im2col matrix, gathered tile by tile from
// x) with the main loop of conv2d_tc.cuh in TF32, BF16 or FP16 (`format` 0, 1, 2). The weights
// come packed K-major in the format (gemm_tc_pack, rows of `ldw` words, zero-padded to whole
// k-tiles) and stream through the cp.async pipeline; the B gather converts x as it stores.
// Same epilogue (bias, residual, ReLU) and split K (raw sums to `partial`, `kps` k-tiles per
// split, finished by conv2d_splitk_reduce) as the FP32 kernels. x, the residual and y are FP32
// or 16-bit activations (act.cuh: `void*` + format), independently of the arithmetic's format:
// the sums are FP32 and y is rounded once when stored.

template <int FORMAT, int BM>
__device__ __forceinline__ void ctc_forward(unsigned char* smem, const void* __restrict__ x,
                                            int xf, const float* __restrict__ wp,
                                            const int* __restrict__ ktab,
                                            const float* __restrict__ bias,
                                            const void* __restrict__ residual, int rf,
                                            void* __restrict__ y, int yf,
                                            float* __restrict__ partial, int kps, int ldw,
                                            const Window& g, int relu) {
    constexpr int NT = 2 * BM, VPW = FORMAT == 0 ? 1 : 2, KT = 16 * VPW;
    constexpr int CSTEP = NT / CTC_BN, WPT = 16 / CSTEP;  // word rows per thread and k-tile
    const int C = g.c, H = g.h, W = g.w, O = g.o;
    const int K = C * g.kh * g.kw;
    const int P = g.ho * g.wo;
    const int ncols = g.n * P;
    const int m0 = blockIdx.y * BM, n0 = blockIdx.x * CTC_BN;
    const int kt0 = blockIdx.z * kps;
    const int ktiles = max(0, min((K + KT - 1) / KT, kt0 + kps) - kt0);
    const int k_end = min(K, (kt0 + kps) * KT);
    const int tid = threadIdx.x;

    // B gather: this thread's column (output pixel) and word rows bw + CSTEP j of each k-tile.
    const int bc = tid % CTC_BN, bw = tid / CTC_BN;
    const int col = n0 + bc;
    const bool col_ok = col < ncols;
    const int cc = col_ok ? col : 0;
    const int img = cc / P;
    const int p = cc - img * P;
    const int oh = p / g.wo;
    const int ow = p - oh * g.wo;
    const int ih0 = oh * g.sh - g.ph;
    const int iw0 = ow * g.sw - g.pw;
    const long long xb = (long long)img * C * H * W;
    float breg[WPT * VPW];

    auto fetch_async = [&](int kt, unsigned char* st) {
        ctc_copy_a<BM>(st, wp, m0, O, ldw, kt0 + kt);
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
                    if (ktab == nullptr) {
                        // Pointwise (1x1, stride 1, unpadded: the host checks): row k = channel k.
                        val = act_ld(x, xb + (long long)k * P + p, xf);
                    } else {
                        // k -> (tap offset in an image, kh << 16 | kw), as in conv2d.cu.
                        const int2 t = __ldg(reinterpret_cast<const int2*>(ktab) + k);
                        const int ih = ih0 + (t.y >> 16);
                        const int iw = iw0 + (t.y & 0xffff);
                        if (ih >= 0 && ih < H && iw >= 0 && iw < W)
                            val = act_ld(x, xb + (ih0 * W + iw0) + t.x, xf);
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

    // y is [N, O, P].
    float* slab = partial ? partial + (size_t)blockIdx.z * ((size_t)ncols * O) : nullptr;
    // The epilogue's tests, hidden per element (act_uniform: one copy of the unrolled epilogue).
    const int epi = (slab ? 1 : 0) | (bias ? 2 : 0) | (residual ? 4 : 0) | (relu ? 8 : 0);
    ctc_each(acc, m0, n0, [&](int m, int cl, float v) {
        if (m >= O || cl >= ncols) return;
        const int n = cl / P;
        const size_t off = ((size_t)n * O + m) * P + (cl - n * P);
        const int e = act_uniform(epi);
        if (e & 1) {
            slab[off] = v;
            return;
        }
        if (e & 2) v += __ldg(bias + m);
        if (e & 4) v += act_ld(residual, off, act_uniform(rf));
        if (e & 8) v = fmaxf(v, 0.f);
        act_st(y, off, v, act_uniform(yf));
    });
}

template <int BM>
__device__ __forceinline__ void ctc_forward_any(unsigned char* smem, const void* x, int xf,
                                                const float* wp, const int* ktab,
                                                const float* bias, const void* residual, int rf,
                                                void* y, int yf, float* partial, int kps, int ldw,
                                                const Window& g, int relu, int format) {
#define CTC_FWD(F)                                                                            \
    ctc_forward<F, BM>(smem, x, xf, wp, ktab, bias, residual, rf, y, yf, partial, kps, ldw, g, \
                       relu)
    if (format == 0)
        CTC_FWD(0);
    else if (format == 1)
        CTC_FWD(1);
    else
        CTC_FWD(2);
#undef CTC_FWD
}

// 64 x 64 tiles (128 threads) for layers of at most 64 output channels; 128 x 64 (256 threads)
// otherwise. x [N, C, H, W]; wp the packed weights; ktab null for pointwise geometry.
extern "C" __global__ void __launch_bounds__(128)
    conv2d_tc_fwd_64(const void* __restrict__ x, int xf, const float* __restrict__ wp,
                     const int* __restrict__ ktab, const float* __restrict__ bias,
                     const void* __restrict__ residual, int rf, void* __restrict__ y, int yf,
                     float* __restrict__ partial, int kps, int ldw, Window g, int relu, int format) {
    __shared__ __align__(128) unsigned char smem[CTC_SMEM(64)];
    ctc_forward_any<64>(smem, x, xf, wp, ktab, bias, residual, rf, y, yf, partial, kps, ldw, g,
                         relu, format);
}

extern "C" __global__ void __launch_bounds__(256)
    conv2d_tc_fwd_128(const void* __restrict__ x, int xf, const float* __restrict__ wp,
                     const int* __restrict__ ktab, const float* __restrict__ bias,
                     const void* __restrict__ residual, int rf, void* __restrict__ y, int yf,
                     float* __restrict__ partial, int kps, int ldw, Window g, int relu, int format) {
    __shared__ __align__(128) unsigned char smem[CTC_SMEM(128)];
    ctc_forward_any<128>(smem, x, xf, wp, ktab, bias, residual, rf, y, yf, partial, kps, ldw, g,
                         relu, format);
}
