#include "kernel_args.cuh"
#include "simt_tile.cuh"

// Convolution gradients as implicit GEMMs: no im2col / col2im buffer is ever written; each tile
// of the gathered operand goes from global memory straight into shared memory, as in the
// forward kernel (conv2d.cu), whose tiling this file follows (256 threads, BK = 8, A stored
// transposed, double-buffered shared memory, 8 x 8 register tiles, two runs of 4 columns).
//
// Data gradient (strided or over-padded geometry; stride-1 geometry runs the forward kernel on
// dy with the flipped, transposed weights, see cuda.rs):
//   dx[n, c, h, w] = sum over (o, kh, kw) of W[o, c, kh, kw] * dy[n, o, oh, ow]
//   where oh * SH = h + PH - kh and ow * SW = w + PW - kw (taps that miss are zero).
//   GEMM: M = C, N = batch * H * W, K = O * KH * KW; A = Wt [C, K] (the weights transposed,
//   row-major), B gathered from dy.
// Weight gradient:
//   dW[o, (c, kh, kw)] = sum over (n, oh, ow) of dy[n, o, oh, ow] * x[n, c, oh*SH-PH+kh, ow*SW-PW+kw]
//   GEMM: M = O, N = C * KH * KW, reduction R = batch * OH * OW; A gathered from dy, B from x.
//   R is long and M x N small for most layers (layer1's 1x1: one 64 x 64 tile over 100k terms),
//   so R is split over gridDim.z; the splits' raw sums go to a slab and conv2d_splitk_reduce
//   adds them in a fixed order (deterministic, like the forward's split K).

#define GB_BK 8
#define GB_THREADS 256

// Everything a thread needs about one reduction index r = (n, oh, ow) of the weight gradient.
struct GradPix {
    int valid;  // r inside this split's range
    int dyoff;  // offset of dy[n, 0, oh, ow]
    int xoff;   // offset of x[n, 0, ih0, iw0] (may point before the image: only read when valid)
    int ih0;    // oh * SH - PH
    int iw0;    // ow * SW - PW
};

__device__ __forceinline__ int div_stride(int v, int s) { return s == 2 ? v >> 1 : v / s; }

template <int BM, int BN, int TM, int TN, bool WGRAD>
__device__ __forceinline__ void conv_grad_tile(const float* __restrict__ a_src,
                                               const float* __restrict__ b_src,
                                               const int* __restrict__ ktab,
                                               float* __restrict__ out, float* __restrict__ partial,
                                               int kchunk, const Window& g) {
    static_assert((BM / TM) * (BN / TN) == GB_THREADS, "one register tile per thread");
    static_assert(TN == 8, "two runs of 4 columns per thread");
    __shared__ __align__(16) float As[2][GB_BK][BM];
    __shared__ __align__(16) float Bs[2][GB_BK][BN];

    const int tid = threadIdx.x;
    const int C = g.c, H = g.h, W = g.w, O = g.o, KH = g.kh, KW = g.kw, OH = g.ho, OW = g.wo;
    const int SH = g.sh, SW = g.sw, PH = g.ph, PW = g.pw;
    const int P = OH * OW;
    const int HW = H * W;
    // GEMM sizes: rows M, columns NC, reduction K (for the weight gradient, K = batch * P).
    const int M = WGRAD ? O : C;
    const int NC = WGRAD ? C * KH * KW : g.n * HW;
    const int K = WGRAD ? g.n * P : O * KH * KW;
    const int m0 = blockIdx.y * BM;
    const int n0 = blockIdx.x * BN;
    const int k_begin = blockIdx.z * kchunk;
    const int k_end = min(K, k_begin + kchunk);

    constexpr int A_PER = BM * GB_BK / GB_THREADS;  // 4
    constexpr int B_PER = GB_BK * BN / GB_THREADS;  // 4
    float a_reg[A_PER];
    float b_reg[B_PER];

    // ---- Data gradient: A = Wt rows (contiguous k), B = dy gathered per output column.
    // Thread's B column and its first row (as in the forward kernel's scalar gather).
    const int b_col = tid % BN;
    const int b_row0 = tid / BN;
    constexpr int B_ROW_STEP = GB_THREADS / BN;
    int d_valid = 0, d_base = 0, d_hp = 0, d_wp = 0;
    if (!WGRAD) {
        const int col = n0 + b_col;
        d_valid = col < NC;
        const int c = d_valid ? col : 0;
        const int n = c / HW;
        const int q = c - n * HW;
        const int h = q / W;
        d_base = n * O * P;
        d_hp = h + PH;
        d_wp = (q - h * W) + PW;
    }
    // ---- Weight gradient: both operands indexed by r; thread owns r = k0 + (tid % BK) and
    // rows / columns tid / BK + 32 i, so its r's position is worked out once per tile.
    const int g_kk = tid % GB_BK;
    const int g_line = tid / GB_BK;
    constexpr int G_STEP = GB_THREADS / GB_BK;  // 32
    auto grad_pix = [&](int r) {
        GradPix px;
        px.valid = r < k_end;
        const int rr = px.valid ? r : 0;
        const int n = rr / P;
        const int p = rr - n * P;
        const int oh = p / OW;
        const int ow = p - oh * OW;
        px.dyoff = n * O * P + p;
        px.ih0 = oh * SH - PH;
        px.iw0 = ow * SW - PW;
        px.xoff = n * C * HW + px.ih0 * W + px.iw0;
        return px;
    };

    auto load = [&](int k0) {
        if (WGRAD) {
            const GradPix px = grad_pix(k0 + g_kk);
#pragma unroll
            for (int i = 0; i < A_PER; ++i) {
                const int m = m0 + g_line + i * G_STEP;
                a_reg[i] = (px.valid && m < M) ? __ldg(a_src + px.dyoff + (size_t)m * P) : 0.f;
            }
#pragma unroll
            for (int i = 0; i < B_PER; ++i) {
                const int j = n0 + g_line + i * G_STEP;
                float v = 0.f;
                if (px.valid && j < NC) {
                    const int2 t = __ldg(reinterpret_cast<const int2*>(ktab) + j);
                    const int ih = px.ih0 + (t.y >> 16);
                    const int iw = px.iw0 + (t.y & 0xffff);
                    if (ih >= 0 && ih < H && iw >= 0 && iw < W) v = __ldg(b_src + (px.xoff + t.x));
                }
                b_reg[i] = v;
            }
        } else {
            const int row = tid / (GB_BK / A_PER);
            const int kk = (tid % (GB_BK / A_PER)) * A_PER;
            const int m = m0 + row;
#pragma unroll
            for (int i = 0; i < A_PER; ++i) {
                const int k = k0 + kk + i;
                a_reg[i] = (m < M && k < k_end) ? __ldg(a_src + (size_t)m * K + k) : 0.f;
            }
#pragma unroll
            for (int j = 0; j < B_PER; ++j) {
                const int k = k0 + b_row0 + j * B_ROW_STEP;
                float v = 0.f;
                if (k < k_end && d_valid) {
                    // k -> (offset of dy channel o, kh << 16 | kw) from the host-made table.
                    const int2 t = __ldg(reinterpret_cast<const int2*>(ktab) + k);
                    const int th = d_hp - (t.y >> 16);
                    const int tw = d_wp - (t.y & 0xffff);
                    if (th >= 0 && tw >= 0) {
                        const int oh = div_stride(th, SH);
                        const int ow = div_stride(tw, SW);
                        if (oh * SH == th && ow * SW == tw && oh < OH && ow < OW)
                            v = __ldg(b_src + d_base + t.x + oh * OW + ow);
                    }
                }
                b_reg[j] = v;
            }
        }
    };
    auto store = [&](int buf) {
        if (WGRAD) {
#pragma unroll
            for (int i = 0; i < A_PER; ++i) As[buf][g_kk][g_line + i * G_STEP] = a_reg[i];
#pragma unroll
            for (int i = 0; i < B_PER; ++i) Bs[buf][g_kk][g_line + i * G_STEP] = b_reg[i];
        } else {
            const int row = tid / (GB_BK / A_PER);
            const int kk = (tid % (GB_BK / A_PER)) * A_PER;
#pragma unroll
            for (int i = 0; i < A_PER; ++i) As[buf][kk + i][row] = a_reg[i];
#pragma unroll
            for (int j = 0; j < B_PER; ++j) Bs[buf][b_row0 + j * B_ROW_STEP][b_col] = b_reg[j];
        }
    };

    const int tx = tid % (BN / TN);
    const int ty = tid / (BN / TN);
    auto bcol = [&](int j) { return (j >> 2) * (BN / 2) + tx * 4; };
    float acc[TM][TN];
#pragma unroll
    for (int i = 0; i < TM; ++i)
#pragma unroll
        for (int j = 0; j < TN; ++j) acc[i][j] = 0.f;

    const int ktiles = (k_end - k_begin + GB_BK - 1) / GB_BK;
    if (ktiles > 0) {
        load(k_begin);
        store(0);
    }
    __syncthreads();
    for (int t = 0; t < ktiles; ++t) {
        const int cur = t & 1;
        if (t + 1 < ktiles) load(k_begin + (t + 1) * GB_BK);
#pragma unroll
        for (int kk = 0; kk < GB_BK; ++kk)
            simt_tile_step<TM, TN, BN>(acc, &As[cur][kk][0], &Bs[cur][kk][0], ty, tx);
        // The other buffer was last read in iteration t-1, before its closing barrier.
        if (t + 1 < ktiles) store(cur ^ 1);
        __syncthreads();
    }

    // Store: dW is [O, K] row-major; dx is [N, C, H*W] (column = (n, pixel)). With a split,
    // raw sums go to this split's slab of the same layout.
    const size_t total = (size_t)M * NC;
    float* dst = partial ? partial + (size_t)blockIdx.z * total : out;
#pragma unroll
    for (int j = 0; j < TN; ++j) {
        const int col = n0 + bcol(j & ~3) + (j & 3);
        if (col >= NC) continue;
        size_t base;
        size_t row_step;
        if (WGRAD) {
            base = col;
            row_step = NC;
        } else {
            const int n = col / HW;
            base = (size_t)n * C * HW + (col - n * HW);
            row_step = HW;
        }
#pragma unroll
        for (int i = 0; i < TM; ++i) {
            const int m = m0 + ty * TM + i;
            if (m < M) dst[base + (size_t)m * row_step] = acc[i][j];
        }
    }
}

// dx of a strided (or over-padded) convolution: wt = the weights as [C, O * KH * KW], dy
// [N, O, OH, OW], ktab k = (o, kh, kw) -> (o * OH * OW, kh << 16 | kw); dx [N, C, H, W] or, with
// a K split, raw sums in partial [splits][N, C, H, W].
extern "C" __global__ void __launch_bounds__(256)
    conv2d_dgrad(const float* __restrict__ wt, const float* __restrict__ dy,
                 const int* __restrict__ ktab, float* __restrict__ dx,
                 float* __restrict__ partial, int kchunk, Window g) {
    conv_grad_tile<128, 128, 8, 8, false>(wt, dy, ktab, dx, partial, kchunk, g);
}

// dW [O, C * KH * KW] of any convolution: dy [N, O, OH, OW], x [N, C, H, W], ktab the forward's
// table j = (c, kh, kw) -> ((c * H + kh) * W + kw, kh << 16 | kw); kchunk terms of the
// reduction over (n, oh, ow) per split, raw sums in partial [splits][O, K] when split.
extern "C" __global__ void __launch_bounds__(256)
    conv2d_wgrad(const float* __restrict__ dy, const float* __restrict__ x,
                 const int* __restrict__ ktab, float* __restrict__ dw,
                 float* __restrict__ partial, int kchunk, Window g) {
    conv_grad_tile<128, 128, 8, 8, true>(dy, x, ktab, dw, partial, kchunk, g);
}

// wt[c, o, kh', kw'] = w[o, c, kh, kw], with (kh', kw') = (KH-1-kh, KW-1-kw) when `flip`: the
// weights of the data gradient seen as a convolution (flip) or as the A operand of
// conv2d_dgrad (no flip).
extern "C" __global__ void conv2d_weight_transpose(const float* __restrict__ w,
                                                   float* __restrict__ wt, int O, int C, int taps,
                                                   int flip) {
    const long long total = (long long)O * C * taps;
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < total;
         i += (long long)blockDim.x * gridDim.x) {
        const int t = (int)(i % taps);
        const int c = (int)((i / taps) % C);
        const int o = (int)(i / ((long long)taps * C));
        const int tt = flip ? taps - 1 - t : t;
        wt[((size_t)c * O + o) * taps + tt] = w[i];
    }
}
