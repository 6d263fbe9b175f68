#include "kernel_args.cuh"
#include "tensor_core.cuh"

// Convolution forward on tensor cores (TF32 inputs, FP32 accumulation): the implicit GEMM of
// conv2d.cu (M = O, N = batch * OH * OW, K = C * KH * KW; A = the weights [O, K], B = the
// im2col matrix gathered tile by tile from x) with mma.sync m16n8k8 .tf32 in place of FMAs.
// Same arguments, epilogue (bias, residual, ReLU) and split K (raw sums to `partial`, finished by
// conv2d_splitk_reduce) as the FP32 kernels, so the host launches either.
//
// First version, correctness before speed: 64 x 64 block tiles, 4 warps of 32 x 32 (2 x 4 mmas
// per k-step), BK = 8 (one mma k), one shared-memory buffer filled with plain loads (rounded to
// TF32 with tf32_round as they are stored, so the mma reads defined bit patterns) and the
// fragments read straight from shared memory. The rows are padded (A: 8 + 4, B: 64 + 8 floats)
// so each fragment load hits 32 distinct banks. Left for later: cp.async double buffering,
// ldmatrix, larger tiles, BF16/FP16.

#define TC_BM 64
#define TC_BN 64
#define TC_BK 8
#define TC_THREADS 128

extern "C" __global__ void __launch_bounds__(TC_THREADS)
    conv2d_forward_tc_tf32(const float* __restrict__ x, const float* __restrict__ w,
                           const int* __restrict__ ktab, const float* __restrict__ bias,
                           const float* __restrict__ residual, float* __restrict__ y,
                           float* __restrict__ partial, int kchunk, Window g, int relu) {
    __shared__ float As[TC_BM][TC_BK + 4];
    __shared__ float Bs[TC_BK][TC_BN + 8];
    const int C = g.c, H = g.h, W = g.w, O = g.o;
    const int K = C * g.kh * g.kw;
    const int P = g.ho * g.wo;
    const int ncols = g.n * P;
    const int m0 = blockIdx.y * TC_BM;
    const int n0 = blockIdx.x * TC_BN;
    const int k_begin = blockIdx.z * kchunk;
    const int k_end = min(K, k_begin + kchunk);
    const int tid = threadIdx.x;

    // A loads: row tid / 2, 4 consecutive k from (tid % 2) * 4.
    const int a_row = tid >> 1;
    const int a_k = (tid & 1) * 4;
    // B loads: column tid % 64, rows tid / 64 + 2 j (j < 4); the column's pixel is fixed.
    const int b_col = tid & (TC_BN - 1);
    const int b_row0 = tid >> 6;
    const int col = n0 + b_col;
    const bool col_ok = col < ncols;
    const int cc = col_ok ? col : 0;
    const int img = cc / P;
    const int p = cc - img * P;
    const int oh = p / g.wo;
    const int ow = p - oh * g.wo;
    const int ih0 = oh * g.sh - g.ph;
    const int iw0 = ow * g.sw - g.pw;
    const float* xb = x + (size_t)img * C * H * W;

    const int warp = tid >> 5, lane = tid & 31;
    const int gq = lane >> 2, tq = lane & 3;
    const int wm = (warp >> 1) * 32, wn = (warp & 1) * 32;
    float acc[2][4][4];
#pragma unroll
    for (int i = 0; i < 2; ++i)
#pragma unroll
        for (int j = 0; j < 4; ++j)
#pragma unroll
            for (int r = 0; r < 4; ++r) acc[i][j][r] = 0.f;

    for (int k0 = k_begin; k0 < k_end; k0 += TC_BK) {
        float av[4], bv[4];
        const int m = m0 + a_row;
#pragma unroll
        for (int i = 0; i < 4; ++i) {
            const int k = k0 + a_k + i;
            av[i] = (m < O && k < k_end) ? __ldg(w + (size_t)m * K + k) : 0.f;
        }
#pragma unroll
        for (int j = 0; j < 4; ++j) {
            const int k = k0 + b_row0 + 2 * j;
            float v = 0.f;
            if (col_ok && k < k_end) {
                if (ktab == nullptr) {
                    // Pointwise (1x1, stride 1, unpadded: the host checks): row k is channel k.
                    v = __ldg(xb + (size_t)k * P + p);
                } else {
                    // k -> (tap offset in an image, kh << 16 | kw), as in conv2d.cu.
                    const int2 t = __ldg(reinterpret_cast<const int2*>(ktab) + k);
                    const int ih = ih0 + (t.y >> 16);
                    const int iw = iw0 + (t.y & 0xffff);
                    if (ih >= 0 && ih < H && iw >= 0 && iw < W) v = __ldg(xb + (ih0 * W + iw0) + t.x);
                }
            }
            bv[j] = v;
        }
        __syncthreads();  // the previous k-tile's fragments are read
#pragma unroll
        for (int i = 0; i < 4; ++i) As[a_row][a_k + i] = tf32_round(av[i]);
#pragma unroll
        for (int j = 0; j < 4; ++j) Bs[b_row0 + 2 * j][b_col] = tf32_round(bv[j]);
        __syncthreads();

        unsigned af[2][4], bf[4][2];
#pragma unroll
        for (int i = 0; i < 2; ++i) {
            const int r = wm + i * 16 + gq;
            af[i][0] = __float_as_uint(As[r][tq]);
            af[i][1] = __float_as_uint(As[r + 8][tq]);
            af[i][2] = __float_as_uint(As[r][tq + 4]);
            af[i][3] = __float_as_uint(As[r + 8][tq + 4]);
        }
#pragma unroll
        for (int j = 0; j < 4; ++j) {
            const int c = wn + j * 8 + gq;
            bf[j][0] = __float_as_uint(Bs[tq][c]);
            bf[j][1] = __float_as_uint(Bs[tq + 4][c]);
        }
#pragma unroll
        for (int i = 0; i < 2; ++i)
#pragma unroll
            for (int j = 0; j < 4; ++j) mma_tf32_m16n8k8(acc[i][j], af[i], bf[j], acc[i][j]);
    }

    // Epilogue (y is [N, O, P]): c0 (row g, col 2t), c1 (g, 2t+1), c2 (g+8, 2t), c3 (g+8, 2t+1).
    float* out = partial ? partial + (size_t)blockIdx.z * ((size_t)ncols * O) : y;
    const bool epi = partial == nullptr;
#pragma unroll
    for (int i = 0; i < 2; ++i)
#pragma unroll
        for (int j = 0; j < 4; ++j)
#pragma unroll
            for (int r = 0; r < 4; ++r) {
                const int m = m0 + wm + i * 16 + gq + (r >> 1) * 8;
                const int cl = n0 + wn + j * 8 + 2 * tq + (r & 1);
                if (m >= O || cl >= ncols) continue;
                const int n = cl / P;
                const int pp = cl - n * P;
                const size_t off = ((size_t)n * O + m) * P + pp;
                float v = acc[i][j][r];
                if (epi) {
                    if (bias) v += __ldg(bias + m);
                    if (residual) v += __ldg(residual + off);
                    if (relu) v = fmaxf(v, 0.f);
                }
                out[off] = v;
            }
}
