#include "tensor_core.cuh"

// Tensor-core GEMM with the epilogue of gemm_strided (gemm.cu):
//   C[m * ldc + n] = alpha * sum_k A(m, k) B(k, n) + beta * C[m * ldc + n] + bias[n]
// in TF32 (mma m16n8k8), BF16 or FP16 (mma m16n8k16), always accumulating in FP32.
//
// The kernels read both operands K-major: A as [M][lda], B as its transpose [N][ldb], rows
// 16-byte aligned (launched by src/cuda/gemm_tc.rs):
// 1. gemm_tc_pack writes an operand K-major in the input format: tf32_round-ed floats, or bf16 /
//    f16 bits two to a 32-bit word, K zero-padded to a whole k-tile (64 bytes a row). Any
//    strides of the source are taken there (transposes cost nothing more) and the inputs are
//    rounded explicitly. Packed operands travel as float* (the launch checker knows float* and
//    int*): 32-bit words. TF32 operands already K-major with aligned rows skip the pack.
// 2. gemm_tc_{tf32,bf16,f16}: 64 x 64 block tile, 4 warps of 32 x 32 (2 x 4 mma tiles each),
//    a 3-stage cp.async pipeline of 64-byte k-rows (16 tf32 or 32 16-bit values a stage), rows
//    beyond M or N and values past K zero-filled by cp.async (src-size), fragments read with
//    ldmatrix.x4 from XOR-swizzled shared memory; TF32 fragments are tf32_round-ed after the
//    load (idempotent on packed operands, the rounding itself on unpacked ones), so the inputs
//    are rounded explicitly either way and the emulator matches the GPU on them bit for bit.
//    Split K over gridDim.z into a partial-sum slab as gemm_strided does (finished by
//    gemm_splitk_reduce).
//
// Both operands K-major makes every fragment a plain (non-transposed) ldmatrix, byte for byte
// the same for all three formats: a 16-byte row of an 8x8 .b16 matrix is 4 tf32 or 8 16-bit
// values, and lane L receives 32 bits of row L/4 at column L%4 of 32-bit words -- exactly the
// A (g, t) / B (k=t, n=g) elements of the tf32 layout and the (g, 2t..2t+1) pairs of the 16-bit
// one (see tensor_core.cuh).

#define TC_BM 64
#define TC_BN 64
#define TC_ROW_BYTES 64  // one k-tile of one row: 4 chunks of 16 bytes
#define TC_STAGES 3
#define TC_THREADS 128

// format: 0 tf32 (one value a word), 1 bf16, 2 f16 (two values a word, the lower k in the low
// half). P[r * words_per_row + w] for r < rows; X(r, k) = X[r * s_row + k * s_k] for k < K, 0 past.
extern "C" __global__ void gemm_tc_pack(const float* __restrict__ X, float* __restrict__ P,
                                        int rows, int K, int Kp, int s_row, int s_k, int format) {
    const int wpr = format == 0 ? Kp : Kp / 2;
    const long long total = (long long)rows * wpr;
    unsigned* out = reinterpret_cast<unsigned*>(P);
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < total;
         i += (long long)blockDim.x * gridDim.x) {
        const long long r = i / wpr;
        const int w = (int)(i % wpr);
        const float* row = X + r * s_row;
        if (format == 0) {
            out[i] = w < K ? __float_as_uint(tf32_round(__ldg(row + (long long)w * s_k))) : 0u;
        } else {
            const int k0 = 2 * w, k1 = 2 * w + 1;
            const float v0 = k0 < K ? __ldg(row + (long long)k0 * s_k) : 0.f;
            const float v1 = k1 < K ? __ldg(row + (long long)k1 * s_k) : 0.f;
            out[i] = format == 1 ? pack_half2(f32_to_bf16(v0), f32_to_bf16(v1))
                                 : pack_half2(f32_to_f16(v0), f32_to_f16(v1));
        }
    }
}

// Byte offset of 16-byte chunk c (0..3) of row r in a stage: chunk c ^ ((r / 2) % 4). Eight
// consecutive rows of one logical chunk (one ldmatrix matrix) then fall in eight distinct 16-byte
// bank groups of the 128-byte bank window (rows r and r+1 share a window, the XOR separates
// the pairs), so ldmatrix reads are free of bank conflicts.
__device__ __forceinline__ int tc_swz(int r, int c) {
    return r * TC_ROW_BYTES + ((c ^ ((r >> 1) & 3)) << 4);
}

// FORMAT as gemm_tc_pack's. A(m, k) = A[m * lda + k], B(k, n) = B[n * ldb + k] (values of the
// format; lda and ldb a multiple of 16 bytes, A and B 16-byte aligned), k < K.
template <int FORMAT>
__device__ __forceinline__ void gemm_tc_body(const float* __restrict__ A, const float* __restrict__ B,
                                             float* __restrict__ C, const float* __restrict__ bias,
                                             float* __restrict__ partial, int ktiles_per_split,
                                             int M, int N, int K, int lda, int ldb, int ldc,
                                             float alpha, float beta) {
    // Rows 0..63 of a stage: A's block rows; 64..127: B's block columns.
    __shared__ __align__(128) unsigned char smem[TC_STAGES][(TC_BM + TC_BN) * TC_ROW_BYTES];
    const int tid = threadIdx.x, lane = tid % 32, warp = tid / 32;
    const int wm = warp / 2, wn = warp % 2;  // warp tile (wm*32.., wn*32..)
    const int m0 = blockIdx.y * TC_BM, n0 = blockIdx.x * TC_BN;
    const int elem_bytes = FORMAT == 0 ? 4 : 2;
    const long long a_row = (long long)lda * elem_bytes, b_row = (long long)ldb * elem_bytes;
    const long long k_bytes = (long long)K * elem_bytes;
    const int ktiles_all = (int)((k_bytes + TC_ROW_BYTES - 1) / TC_ROW_BYTES);
    const int kt_begin = blockIdx.z * ktiles_per_split;
    const int ktiles = max(0, min(ktiles_all, kt_begin + ktiles_per_split) - kt_begin);
    const unsigned char* Ab = reinterpret_cast<const unsigned char*>(A);
    const unsigned char* Bb = reinterpret_cast<const unsigned char*>(B);

    // One stage: 128 rows x 4 chunks = 512 cp.async, 4 per thread.
    auto load = [&](int stage, int kt) {
#pragma unroll
        for (int q = 0; q < 4; ++q) {
            const int i = tid + q * TC_THREADS;
            const int r = i >> 2, c = i & 3;
            const bool is_a = r < TC_BM;
            const int g = is_a ? m0 + r : n0 + r - TC_BM;
            const long long kb = (long long)(kt_begin + kt) * TC_ROW_BYTES + c * 16;
            // Bytes of this chunk inside the matrix: rows past M / N and values past K read
            // nothing and are zero-filled; such a chunk's source address is the (mapped) start.
            const long long left = g < (is_a ? M : N) ? k_bytes - kb : 0;
            const int bytes = left <= 0 ? 0 : (left >= 16 ? 16 : (int)left);
            const unsigned char* base = is_a ? Ab : Bb;
            const unsigned char* src = bytes ? base + g * (is_a ? a_row : b_row) + kb : base;
            cp_async_16(&smem[stage][tc_swz(r, c)], src, bytes);
        }
    };

    float acc[2][4][4];
#pragma unroll
    for (int i = 0; i < 2; ++i)
#pragma unroll
        for (int j = 0; j < 4; ++j)
#pragma unroll
            for (int v = 0; v < 4; ++v) acc[i][j][v] = 0.f;

#pragma unroll
    for (int s = 0; s < TC_STAGES - 1; ++s) {
        if (s < ktiles) load(s, s);
        cp_async_commit();  // empty groups keep the group count = tile count
    }
    // ldmatrix.x4 address of this lane: matrix q = lane / 8, row lane % 8 of it.
    const int lq = lane >> 3, lr = lane & 7;
    for (int t = 0; t < ktiles; ++t) {
        cp_async_wait<TC_STAGES - 2>();  // this thread's copies of tile t have landed ...
        __syncthreads();  // ... everyone's, and everyone is done with tile t-1's buffer
        if (t + TC_STAGES - 1 < ktiles) load((t + TC_STAGES - 1) % TC_STAGES, t + TC_STAGES - 1);
        cp_async_commit();
        const unsigned char* st = smem[t % TC_STAGES];
#pragma unroll
        for (int ks = 0; ks < 2; ++ks) {  // two mma k-steps of 32 bytes per 64-byte k-tile
            unsigned a[2][4], b[4][2];
#pragma unroll
            for (int mi = 0; mi < 2; ++mi) {
                // Matrices: rows 0-7 / 8-15 (q & 1) of chunk 2ks + (q >> 1) -> a0..a3.
                const int r = wm * 32 + mi * 16 + (lq & 1) * 8 + lr;
                ldmatrix_x4(a[mi], st + tc_swz(r, 2 * ks + (lq >> 1)));
            }
#pragma unroll
            for (int nj = 0; nj < 2; ++nj) {
                // Matrices: n-tile 2nj + (q >> 1), chunk 2ks + (q & 1) -> b[2nj][0..1], b[2nj+1][0..1].
                const int r = TC_BM + wn * 32 + (2 * nj + (lq >> 1)) * 8 + lr;
                unsigned rr[4];
                ldmatrix_x4(rr, st + tc_swz(r, 2 * ks + (lq & 1)));
                b[2 * nj][0] = rr[0];
                b[2 * nj][1] = rr[1];
                b[2 * nj + 1][0] = rr[2];
                b[2 * nj + 1][1] = rr[3];
            }
            if (FORMAT == 0) {
                // Round the tf32 operands here (the mma would truncate them).
#pragma unroll
                for (int i = 0; i < 8; ++i) {
                    unsigned* ra = &a[i / 4][i % 4];
                    unsigned* rb = &b[i / 2][i % 2];
                    *ra = __float_as_uint(tf32_round(__uint_as_float(*ra)));
                    *rb = __float_as_uint(tf32_round(__uint_as_float(*rb)));
                }
            }
#pragma unroll
            for (int mi = 0; mi < 2; ++mi)
#pragma unroll
                for (int ni = 0; ni < 4; ++ni) {
                    if (FORMAT == 0)
                        mma_tf32_m16n8k8(acc[mi][ni], a[mi], b[ni], acc[mi][ni]);
                    else if (FORMAT == 1)
                        mma_bf16_m16n8k16(acc[mi][ni], a[mi], b[ni], acc[mi][ni]);
                    else
                        mma_f16_m16n8k16(acc[mi][ni], a[mi], b[ni], acc[mi][ni]);
                }
        }
    }
    cp_async_wait<0>();  // only empty groups remain; leave nothing in flight

    // c0 (g, 2t), c1 (g, 2t+1), c2 (g+8, 2t), c3 (g+8, 2t+1) of each 16 x 8 tile.
    const int g = lane >> 2, t4 = lane & 3;
#pragma unroll
    for (int mi = 0; mi < 2; ++mi)
#pragma unroll
        for (int ni = 0; ni < 4; ++ni)
#pragma unroll
            for (int v = 0; v < 4; ++v) {
                const int m = m0 + wm * 32 + mi * 16 + g + (v >> 1) * 8;
                const int n = n0 + wn * 32 + ni * 8 + 2 * t4 + (v & 1);
                if (m >= M || n >= N) continue;
                if (partial) {
                    partial[((size_t)blockIdx.z * M + m) * N + n] = alpha * acc[mi][ni][v];
                    continue;
                }
                float* c = C + (size_t)m * ldc + n;
                float out = alpha * acc[mi][ni][v];
                if (beta != 0.f) out += beta * *c;
                if (bias) out += __ldg(bias + n);
                *c = out;
            }
}

// The three entry points (written out: build.rs reads kernel signatures from the source).
extern "C" __global__ void __launch_bounds__(TC_THREADS)
    gemm_tc_tf32(const float* __restrict__ A, const float* __restrict__ B, float* __restrict__ C,
         const float* __restrict__ bias, float* __restrict__ partial, int ktiles_per_split, int M,
         int N, int K, int lda, int ldb, int ldc, float alpha, float beta) {
    gemm_tc_body<0>(A, B, C, bias, partial, ktiles_per_split, M, N, K, lda, ldb, ldc, alpha,
                    beta);
}

extern "C" __global__ void __launch_bounds__(TC_THREADS)
    gemm_tc_bf16(const float* __restrict__ A, const float* __restrict__ B, float* __restrict__ C,
         const float* __restrict__ bias, float* __restrict__ partial, int ktiles_per_split, int M,
         int N, int K, int lda, int ldb, int ldc, float alpha, float beta) {
    gemm_tc_body<1>(A, B, C, bias, partial, ktiles_per_split, M, N, K, lda, ldb, ldc, alpha,
                    beta);
}

extern "C" __global__ void __launch_bounds__(TC_THREADS)
    gemm_tc_f16(const float* __restrict__ A, const float* __restrict__ B, float* __restrict__ C,
         const float* __restrict__ bias, float* __restrict__ partial, int ktiles_per_split, int M,
         int N, int K, int lda, int ldb, int ldc, float alpha, float beta) {
    gemm_tc_body<2>(A, B, C, bias, partial, ktiles_per_split, M, N, K, lda, ldb, ldc, alpha,
                    beta);
}
