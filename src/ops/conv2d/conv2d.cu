#include "act.cuh"
#include "simt_tile.cuh"
#include "kernel_args.cuh"

// Convolution forward as an implicit GEMM, with the inference epilogue fused:
//   y[n, o, p] = relu?( sum_k W[o, k] * X(k, (n, p)) + bias[o] + residual[n, o, p] )
// GEMM view: M = O (output channels), N = batch * OH * OW (output pixels), K = C * KH * KW.
// A = the weights, row-major [O, K] as PyTorch stores them; B = the im2col matrix, never
// materialised: each tile of it is gathered from x straight into shared memory.
//
// Tiling (siboehm-style): a block computes a BM x BN tile of y with 256 threads, each thread a
// TM x TN register tile; K advances BK = 8 at a time through double-buffered shared memory (the
// next tile's global loads are issued before the current tile's FMAs, so their latency hides
// behind arithmetic). A is stored transposed (As[k][m]) so both operands are read as float4
// broadcasts along m and n. Pointwise convolutions (1x1, stride 1, no padding: most of
// ResNet50) read B rows as plain contiguous runs of x, with float4 loads when a run of 4
// pixels cannot straddle two images.
//
// Layers whose output tiles are too few to fill the GPU (small maps at small batches) split K
// over gridDim.z; each split writes raw sums to a slab and conv2d_splitk_reduce adds them in a
// fixed order and applies the epilogue. General (non-pointwise) convolutions read a host-made
// table k -> (tap offset, kh, kw), so the im2col gather does no integer division.
//
// Also here: the bias gradient (per-channel sum of dy). The data and weight gradients are in
// conv2d_backward.cu.

#define CONV_BK 8
#define CONV_THREADS 256

// Everything a thread needs to gather B values of one output-pixel column.
struct ColInfo {
    int valid;  // column inside N
    int xbase;  // offset of image n in x
    int ih0;    // oh * SH - PH
    int iw0;    // ow * SW - PW
    int p;      // oh * OW + ow
};

__device__ __forceinline__ ColInfo col_info(int col, int ncols, int C, int H, int W, int OH,
                                            int OW, int SH, int SW, int PH, int PW) {
    ColInfo ci;
    ci.valid = col < ncols;
    int c = ci.valid ? col : 0;
    int P = OH * OW;
    int n = c / P;
    int p = c - n * P;
    int oh = p / OW;
    int ow = p - oh * OW;
    ci.xbase = n * C * H * W;
    ci.ih0 = oh * SH - PH;
    ci.iw0 = ow * SW - PW;
    ci.p = p;
    return ci;
}

template <int BM, int BN, int TM, int TN, bool POINTWISE>
__device__ __forceinline__ void conv_forward_tile(
    const float* __restrict__ x, const float* __restrict__ w, const int* __restrict__ ktab,
    const float* __restrict__ bias, const float* __restrict__ residual, float* __restrict__ y,
    float* __restrict__ partial, int kchunk, int N, int C, int H, int W, int O, int KH, int KW,
    int OH, int OW, int SH, int SW, int PH, int PW, int relu) {
    static_assert((BM / TM) * (BN / TN) == CONV_THREADS, "one register tile per thread");
    __shared__ __align__(16) float As[2][CONV_BK][BM];
    __shared__ __align__(16) float Bs[2][CONV_BK][BN];

    const int tid = threadIdx.x;
    const int K = C * KH * KW;
    const int P = OH * OW;
    const int ncols = N * P;
    const int m0 = blockIdx.y * BM;
    const int n0 = blockIdx.x * BN;
    // Split K: block z sums k in [k_begin, k_end) (kchunk is a multiple of BK) and, with
    // `partial`, stores its raw sums there for conv2d_splitk_reduce to add up and finish.
    const int k_begin = blockIdx.z * kchunk;
    const int k_end = min(K, k_begin + kchunk);

    // ---- A loads: BM x BK values per tile, (BM * BK) / 256 per thread, rows of 4 k's.
    constexpr int A_PER = BM * CONV_BK / CONV_THREADS;  // 4 (BM=128) or 2 (BM=64)
    const bool a_vec = (K & 3) == 0;
    // ---- B loads: BK x BN values per tile, (BK * BN) / 256 per thread.
    constexpr int B_PER = CONV_BK * BN / CONV_THREADS;  // 4 for BN = 128
    // Scalar gather: thread owns column b_col and rows b_row0 + j * (256 / BN).
    const int b_col = tid % BN;
    const int b_row0 = tid / BN;
    constexpr int B_ROW_STEP = CONV_THREADS / BN;
    ColInfo ci = col_info(n0 + b_col, ncols, C, H, W, OH, OW, SH, SW, PH, PW);
    // Vector path (pointwise, P % 4 == 0): thread owns row tid / (BN/4), 4 columns.
    const bool b_vec = POINTWISE && (P & 3) == 0;
    const int bv_row = tid / (BN / 4);
    const int bv_col = (tid % (BN / 4)) * 4;
    ColInfo civ = col_info(n0 + bv_col, ncols, C, H, W, OH, OW, SH, SW, PH, PW);

    float a_reg[A_PER];
    float b_reg[B_PER];

    auto load_a = [&](int k0) {
        if (a_vec) {
            // A_PER consecutive k's of one row: row = tid / (BK / A_PER) ...
            const int row = tid / (CONV_BK / A_PER);
            const int kk = (tid % (CONV_BK / A_PER)) * A_PER;
            const int m = m0 + row;
            const int k = k0 + kk;
#pragma unroll
            for (int i = 0; i < A_PER; ++i) a_reg[i] = 0.f;
            if (m < O) {
                if (A_PER == 4 && k + 3 < K) {
                    float4 v = *reinterpret_cast<const float4*>(w + (size_t)m * K + k);
                    a_reg[0] = v.x;
                    a_reg[1] = v.y;
                    a_reg[2] = v.z;
                    a_reg[3] = v.w;
                } else {
#pragma unroll
                    for (int i = 0; i < A_PER; ++i)
                        if (k + i < K) a_reg[i] = __ldg(w + (size_t)m * K + k + i);
                }
            }
        } else {
            const int row = tid / (CONV_BK / A_PER);
            const int kk = (tid % (CONV_BK / A_PER)) * A_PER;
            const int m = m0 + row;
#pragma unroll
            for (int i = 0; i < A_PER; ++i) {
                const int k = k0 + kk + i;
                a_reg[i] = (m < O && k < K) ? __ldg(w + (size_t)m * K + k) : 0.f;
            }
        }
    };
    auto store_a = [&](int buf) {
        const int row = tid / (CONV_BK / A_PER);
        const int kk = (tid % (CONV_BK / A_PER)) * A_PER;
#pragma unroll
        for (int i = 0; i < A_PER; ++i) As[buf][kk + i][row] = a_reg[i];
    };
    auto load_b = [&](int k0) {
        if (b_vec) {
            const int k = k0 + bv_row;
            if (k < K && civ.valid) {
                // 4 pixels of one image (P % 4 == 0 and bv_col % 4 == 0 keep them together).
                const float* src = x + civ.xbase + (size_t)k * P + civ.p;
                float4 v = *reinterpret_cast<const float4*>(src);
                b_reg[0] = v.x;
                b_reg[1] = v.y;
                b_reg[2] = v.z;
                b_reg[3] = v.w;
                // Columns past N (only in the last tile) are multiplied but never stored.
            } else {
#pragma unroll
                for (int i = 0; i < 4; ++i) b_reg[i] = 0.f;
            }
        } else {
#pragma unroll
            for (int j = 0; j < B_PER; ++j) {
                const int k = k0 + b_row0 + j * B_ROW_STEP;
                float v = 0.f;
                if (k < K && ci.valid) {
                    if (POINTWISE) {
                        v = __ldg(x + ci.xbase + (size_t)k * P + ci.p);
                    } else {
                        // k -> (offset of tap (c, kh, kw) in an image, kh << 16 | kw) from the
                        // host-made table: no integer division in the inner loop.
                        const int2 t = __ldg(reinterpret_cast<const int2*>(ktab) + k);
                        const int ih = ci.ih0 + (t.y >> 16);
                        const int iw = ci.iw0 + (t.y & 0xffff);
                        if (ih >= 0 && ih < H && iw >= 0 && iw < W)
                            v = __ldg(x + ci.xbase + (ci.ih0 * W + ci.iw0) + t.x);
                    }
                }
                b_reg[j] = v;
            }
        }
    };
    auto store_b = [&](int buf) {
        if (b_vec) {
            *reinterpret_cast<float4*>(&Bs[buf][bv_row][bv_col]) =
                make_float4(b_reg[0], b_reg[1], b_reg[2], b_reg[3]);
        } else {
#pragma unroll
            for (int j = 0; j < B_PER; ++j) Bs[buf][b_row0 + j * B_ROW_STEP][b_col] = b_reg[j];
        }
    };

    // Thread's register tile: rows ty*TM.. of the block tile, and two runs of 4 columns,
    // tx*4.. and BN/2 + tx*4... Neighbouring threads read neighbouring 16-byte B vectors from
    // shared memory (no bank conflicts) and store neighbouring 16-byte runs of y (coalesced).
    static_assert(TN == 8, "two runs of 4 columns per thread");
    const int tx = tid % (BN / TN);
    const int ty = tid / (BN / TN);
    // Block-tile column of register column j (j a multiple of 4).
    auto bcol = [&](int j) { return (j >> 2) * (BN / 2) + tx * 4; };
    float acc[TM][TN];
#pragma unroll
    for (int i = 0; i < TM; ++i)
#pragma unroll
        for (int j = 0; j < TN; ++j) acc[i][j] = 0.f;

    const int ktiles = (k_end - k_begin + CONV_BK - 1) / CONV_BK;
    load_a(k_begin);
    load_b(k_begin);
    store_a(0);
    store_b(0);
    __syncthreads();
    for (int t = 0; t < ktiles; ++t) {
        const int cur = t & 1;
        if (t + 1 < ktiles) {  // issue next tile's global loads before this tile's math
            load_a(k_begin + (t + 1) * CONV_BK);
            load_b(k_begin + (t + 1) * CONV_BK);
        }
#pragma unroll
        for (int kk = 0; kk < CONV_BK; ++kk)
            simt_tile_step<TM, TN, BN>(acc, &As[cur][kk][0], &Bs[cur][kk][0], ty, tx);
        if (t + 1 < ktiles) {
            // The other buffer was last read in iteration t-1, before that iteration's
            // closing barrier, so it can be overwritten now.
            store_a(cur ^ 1);
            store_b(cur ^ 1);
        }
        __syncthreads();
    }

    // Epilogue: bias, residual, ReLU, store (or raw sums to this split's partial slab).
    // Columns map to (n, p); y is [N, O, P]. When P % 4 == 0 a thread's 8 columns are two
    // aligned runs of 4 pixels of one image each: stored (and residuals read) as float4.
    float* out = partial ? partial + (size_t)blockIdx.z * ((size_t)ncols * O) : y;
    const bool epi = partial == nullptr;
    if ((P & 3) == 0) {
#pragma unroll
        for (int j = 0; j < TN; j += 4) {
            const int col = n0 + bcol(j);
            if (col >= ncols) continue;
            const int n = col / P;
            const int p = col - n * P;
#pragma unroll
            for (int i = 0; i < TM; ++i) {
                const int m = m0 + ty * TM + i;
                if (m >= O) continue;
                const size_t off = ((size_t)n * O + m) * P + p;
                float4 v = make_float4(acc[i][j], acc[i][j + 1], acc[i][j + 2], acc[i][j + 3]);
                if (epi) {
                    if (bias) {
                        const float b = __ldg(bias + m);
                        v.x += b;
                        v.y += b;
                        v.z += b;
                        v.w += b;
                    }
                    if (residual) {
                        const float4 r = *reinterpret_cast<const float4*>(residual + off);
                        v.x += r.x;
                        v.y += r.y;
                        v.z += r.z;
                        v.w += r.w;
                    }
                    if (relu) {
                        v.x = fmaxf(v.x, 0.f);
                        v.y = fmaxf(v.y, 0.f);
                        v.z = fmaxf(v.z, 0.f);
                        v.w = fmaxf(v.w, 0.f);
                    }
                }
                *reinterpret_cast<float4*>(out + off) = v;
            }
        }
        return;
    }
#pragma unroll
    for (int j = 0; j < TN; ++j) {
        const int col = n0 + bcol(j & ~3) + (j & 3);
        if (col >= ncols) continue;
        const int n = col / P;
        const int p = col - n * P;
#pragma unroll
        for (int i = 0; i < TM; ++i) {
            const int m = m0 + ty * TM + i;
            if (m >= O) continue;
            const size_t off = ((size_t)n * O + m) * P + p;
            float v = acc[i][j];
            if (epi) {
                if (bias) v += __ldg(bias + m);
                if (residual) v += __ldg(residual + off);
                if (relu) v = fmaxf(v, 0.f);
            }
            out[off] = v;
        }
    }
}

// Every forward kernel takes the same arguments: x, w, the k table (null for pointwise),
// bias / residual (null when absent), y, the split-K slab (null without split), kchunk, the
// geometry (one Window struct, src/cuda/kernel_args.cuh) and the ReLU flag.
// (Parameter lists are written out in full: build.rs reads kernel signatures from the source.)
#define CONV_ARGS                                                                             \
    x, w, ktab, bias, residual, y, partial, kchunk, g.n, g.c, g.h, g.w, g.o, g.kh, g.kw, g.ho, \
        g.wo, g.sh, g.sw, g.ph, g.pw, relu
// Pointwise kernels run only for 1x1, stride-1, unpadded geometry (the host picks them), so the
// window is passed as constants: output size = input size. Besides skipping the loads, this
// keeps the 128-tile kernel under its 128-register bound (reading every field from the struct
// spilled 44 bytes on sm_90).
#define CONV_ARGS_PW                                                                              \
    x, w, ktab, bias, residual, y, partial, kchunk, g.n, g.c, g.h, g.w, g.o, 1, 1, g.h, g.w, 1, 1, \
        0, 0, relu

// 128 x 128 tiles, 8 x 8 per thread: the default. (256, 2): at most 128 registers, so two
// blocks fit on an SM; the tile needs ~127 and would otherwise sit on that cliff.
extern "C" __global__ void __launch_bounds__(256, 2)
    conv2d_forward_128(
        const float* __restrict__ x, const float* __restrict__ w, const int* __restrict__ ktab,
        const float* __restrict__ bias, const float* __restrict__ residual, float* __restrict__ y,
        float* __restrict__ partial, int kchunk, Window g, int relu) {
    conv_forward_tile<128, 128, 8, 8, false>(CONV_ARGS);
}
extern "C" __global__ void __launch_bounds__(256, 2)
    conv2d_forward_pw_128(
        const float* __restrict__ x, const float* __restrict__ w, const int* __restrict__ ktab,
        const float* __restrict__ bias, const float* __restrict__ residual, float* __restrict__ y,
        float* __restrict__ partial, int kchunk, Window g, int relu) {
    conv_forward_tile<128, 128, 8, 8, true>(CONV_ARGS_PW);
}
// 64 x 128 tiles, 4 x 8 per thread: for O = 64 layers, where 128-row tiles would idle half.
extern "C" __global__ void __launch_bounds__(256)
    conv2d_forward_64(
        const float* __restrict__ x, const float* __restrict__ w, const int* __restrict__ ktab,
        const float* __restrict__ bias, const float* __restrict__ residual, float* __restrict__ y,
        float* __restrict__ partial, int kchunk, Window g, int relu) {
    conv_forward_tile<64, 128, 4, 8, false>(CONV_ARGS);
}
extern "C" __global__ void __launch_bounds__(256)
    conv2d_forward_pw_64(
        const float* __restrict__ x, const float* __restrict__ w, const int* __restrict__ ktab,
        const float* __restrict__ bias, const float* __restrict__ residual, float* __restrict__ y,
        float* __restrict__ partial, int kchunk, Window g, int relu) {
    conv_forward_tile<64, 128, 4, 8, true>(CONV_ARGS_PW);
}

// y = relu?(sum over the splits of partial[z] + bias + residual), the splits added in order
// (deterministic). partial is [splits][N, O, P]; total = N * O * P. The residual and y are FP32
// or 16-bit activations (act.cuh), y rounded once when stored.
extern "C" __global__ void conv2d_splitk_reduce(const float* __restrict__ partial,
                                                const float* __restrict__ bias,
                                                const void* __restrict__ residual, int rf,
                                                void* __restrict__ y, int yf, long long total,
                                                int splits, int O, int P, int relu) {
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < total;
         i += (long long)blockDim.x * gridDim.x) {
        float v = partial[i];
        for (int z = 1; z < splits; ++z) v += partial[z * total + i];
        if (bias) v += __ldg(bias + (int)((i / P) % O));
        if (residual) v += act_ld(residual, i, rf);
        if (relu) v = fmaxf(v, 0.f);
        act_st(y, i, v, yf);
    }
}

// db[o] = sum over n, p of dy[n, o, p]: one block per channel, tree reduction (deterministic).
// dy is an FP32 or 16-bit activation gradient (act.cuh).
extern "C" __global__ void conv2d_bias_grad(const void* __restrict__ dy, int dyf,
                                            float* __restrict__ db, int N, int O, int P) {
    __shared__ float part[256];
    const int o = blockIdx.x;
    float s = 0.f;
    for (int i = threadIdx.x; i < N * P; i += blockDim.x) {
        const int n = i / P;
        const int p = i - n * P;
        s += act_ld(dy, ((long long)n * O + o) * P + p, dyf);
    }
    part[threadIdx.x] = s;
    __syncthreads();
    for (int h = blockDim.x / 2; h > 0; h >>= 1) {
        if (threadIdx.x < h) part[threadIdx.x] += part[threadIdx.x + h];
        __syncthreads();
    }
    if (threadIdx.x == 0) db[o] = part[0];
}
