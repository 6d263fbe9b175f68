// Strided single-precision GEMM for the dense layers and the convolution backward passes:
//   C[m * ldc + n] = alpha * sum_k A(m, k) B(k, n) + beta * C[m * ldc + n] + bias[n]
// with A(m, k) = A[m * sam + k * sak] and B(k, n) = B[k * sbk + n * sbn], so any transpose of a
// row-major matrix is a choice of strides, not a copy. beta == 0 never reads C (it may hold
// garbage); bias may be null.
//
// Grids of fewer blocks than the GPU has SMs (a batch of 32 through 2048 -> 1000: 16 blocks)
// split K over gridDim.z into a partial-sum slab, finished by gemm_splitk_reduce.
//
// Tiling: 64 x 64 block tile, 256 threads with 4 x 4 register tiles, BK = 16, double-buffered
// shared memory with the next tile's loads issued before the current tile's FMAs. Loads are
// scalar (strides are arbitrary); each operand's tile is walked along its unit-stride direction
// when it has one, so consecutive threads read consecutive addresses.

#define GEMM_BM 64
#define GEMM_BN 64
#define GEMM_BK 16
#define GEMM_TM 4
#define GEMM_TN 4

extern "C" __global__ void __launch_bounds__(256)
    gemm_strided(const float* __restrict__ A, const float* __restrict__ B, float* __restrict__ C,
                 const float* __restrict__ bias, float* __restrict__ partial, int kchunk, int M,
                 int N, int K, int sam, int sak, int sbk, int sbn, int ldc, float alpha,
                 float beta) {
    __shared__ __align__(16) float As[2][GEMM_BK][GEMM_BM];
    __shared__ __align__(16) float Bs[2][GEMM_BK][GEMM_BN];
    const int tid = threadIdx.x;
    const int m0 = blockIdx.y * GEMM_BM;
    const int n0 = blockIdx.x * GEMM_BN;
    // Split K (blockIdx.z): this block sums k in [k_begin, k_end); with `partial` it stores
    // alpha * its sums there ([z][M][N]) for gemm_splitk_reduce to finish.
    const int k_begin = blockIdx.z * kchunk;
    const int k_end = min(K, k_begin + kchunk);
    // 64 x 16 = 1024 values per operand tile: 4 per thread.
    const bool a_k_fast = sak == 1;
    const bool b_n_fast = sbn == 1;
    float a_reg[4], b_reg[4];

    auto load = [&](int k0) {
#pragma unroll
        for (int q = 0; q < 4; ++q) {
            const int i = tid + q * 256;
            int mm, kk;
            if (a_k_fast) {
                mm = i / GEMM_BK;
                kk = i % GEMM_BK;
            } else {
                kk = i / GEMM_BM;
                mm = i % GEMM_BM;
            }
            const int m = m0 + mm, k = k0 + kk;
            a_reg[q] = (m < M && k < k_end) ? __ldg(A + (size_t)m * sam + (size_t)k * sak) : 0.f;
            int nn;
            if (b_n_fast) {
                kk = i / GEMM_BN;
                nn = i % GEMM_BN;
            } else {
                nn = i / GEMM_BK;
                kk = i % GEMM_BK;
            }
            const int n = n0 + nn, kb = k0 + kk;
            b_reg[q] = (n < N && kb < k_end) ? __ldg(B + (size_t)kb * sbk + (size_t)n * sbn) : 0.f;
        }
    };
    auto store = [&](int buf) {
#pragma unroll
        for (int q = 0; q < 4; ++q) {
            const int i = tid + q * 256;
            if (a_k_fast)
                As[buf][i % GEMM_BK][i / GEMM_BK] = a_reg[q];
            else
                As[buf][i / GEMM_BM][i % GEMM_BM] = a_reg[q];
            if (b_n_fast)
                Bs[buf][i / GEMM_BN][i % GEMM_BN] = b_reg[q];
            else
                Bs[buf][i % GEMM_BK][i / GEMM_BK] = b_reg[q];
        }
    };

    const int tx = tid % (GEMM_BN / GEMM_TN);
    const int ty = tid / (GEMM_BN / GEMM_TN);
    float acc[GEMM_TM][GEMM_TN];
#pragma unroll
    for (int i = 0; i < GEMM_TM; ++i)
#pragma unroll
        for (int j = 0; j < GEMM_TN; ++j) acc[i][j] = 0.f;

    const int ktiles = (max(k_end - k_begin, 0) + GEMM_BK - 1) / GEMM_BK;
    load(k_begin);
    store(0);
    __syncthreads();
    for (int t = 0; t < ktiles; ++t) {
        const int cur = t & 1;
        if (t + 1 < ktiles) load(k_begin + (t + 1) * GEMM_BK);
#pragma unroll
        for (int kk = 0; kk < GEMM_BK; ++kk) {
            float4 a = *reinterpret_cast<const float4*>(&As[cur][kk][ty * GEMM_TM]);
            float4 b = *reinterpret_cast<const float4*>(&Bs[cur][kk][tx * GEMM_TN]);
            const float av[4] = {a.x, a.y, a.z, a.w};
            const float bv[4] = {b.x, b.y, b.z, b.w};
#pragma unroll
            for (int i = 0; i < GEMM_TM; ++i)
#pragma unroll
                for (int j = 0; j < GEMM_TN; ++j) acc[i][j] = fmaf(av[i], bv[j], acc[i][j]);
        }
        if (t + 1 < ktiles) store(cur ^ 1);
        __syncthreads();
    }

#pragma unroll
    for (int i = 0; i < GEMM_TM; ++i) {
        const int m = m0 + ty * GEMM_TM + i;
        if (m >= M) continue;
#pragma unroll
        for (int j = 0; j < GEMM_TN; ++j) {
            const int n = n0 + tx * GEMM_TN + j;
            if (n >= N) continue;
            if (partial) {
                partial[((size_t)blockIdx.z * M + m) * N + n] = alpha * acc[i][j];
                continue;
            }
            float* c = C + (size_t)m * ldc + n;
            float v = alpha * acc[i][j];
            if (beta != 0.f) v += beta * *c;
            if (bias) v += __ldg(bias + n);
            *c = v;
        }
    }
}

// C[m * ldc + n] = sum over the splits of partial[z][m][n] (in order: deterministic)
// + beta * C + bias[n].
extern "C" __global__ void gemm_splitk_reduce(const float* __restrict__ partial,
                                              float* __restrict__ C,
                                              const float* __restrict__ bias, int M, int N,
                                              int ldc, int splits, float beta) {
    const long long total = (long long)M * N;
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < total;
         i += (long long)blockDim.x * gridDim.x) {
        const int m = (int)(i / N), n = (int)(i % N);
        float v = partial[i];
        for (int z = 1; z < splits; ++z) v += partial[z * total + i];
        float* c = C + (size_t)m * ldc + n;
        if (beta != 0.f) v += beta * *c;
        if (bias) v += __ldg(bias + n);
        *c = v;
    }
}

// out[n] = sum over rows r of X[r * N + n]: column sums (the dense bias gradient). One thread per
// column, rows in order: deterministic, and rows are few (a batch).
extern "C" __global__ void sum_rows(const float* __restrict__ X, float* __restrict__ out, int R,
                                    int N) {
    const int n = blockIdx.x * blockDim.x + threadIdx.x;
    if (n >= N) return;
    float s = 0.f;
    for (int r = 0; r < R; ++r) s += X[(size_t)r * N + n];
    out[n] = s;
}
