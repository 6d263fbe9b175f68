// Softmax and class-weighted cross-entropy over logits [N, K] (K classes, 7 for ISIC; any K
// works). A row is handled by one thread: K is small, and keeping each row's arithmetic
// sequential makes the softmax inside the cross-entropy identical to the standalone softmax.

// Max and sum of exp(z - max) of one row (max-subtracted, so no exp overflows: every term is
// in (0, 1] and the max's own term is exactly 1, so s >= 1).
__device__ __forceinline__ void softmax_row_stats(const float* __restrict__ z, int k, float* m_out,
                                                  float* s_out) {
    float m = __uint_as_float(0xff800000u);  // -inf
    for (int c = 0; c < k; ++c) m = fmaxf(m, z[c]);
    float s = 0.f;
    for (int c = 0; c < k; ++c) s += expf(z[c] - m);
    *m_out = m;
    *s_out = s;
}

// y = softmax(z) row-wise; a thread per row (grid-stride).
extern "C" __global__ void softmax_forward(const float* __restrict__ z, float* __restrict__ y,
                                           int n, int k) {
    for (int row = blockIdx.x * blockDim.x + threadIdx.x; row < n; row += blockDim.x * gridDim.x) {
        const float* zr = z + (long long)row * k;
        float* yr = y + (long long)row * k;
        float m, s;
        softmax_row_stats(zr, k, &m, &s);
        for (int c = 0; c < k; ++c) yr[c] = expf(zr[c] - m) / s;
    }
}

// Sum of a double over the block (blockDim.x a multiple of 32, at most 1024): shuffle tree per
// warp, then warp 0 adds the warp partials. Deterministic; every thread gets the total.
__device__ double block_sum_double(double v, double* part) {
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
    for (int off = 16; off > 0; off >>= 1) v += __shfl_down_sync(0xffffffffu, v, off);
    if (lane == 0) part[warp] = v;
    __syncthreads();
    if (warp == 0) {
        double t = lane < warps ? part[lane] : 0.0;
        for (int off = 16; off > 0; off >>= 1) t += __shfl_down_sync(0xffffffffu, t, off);
        if (lane == 0) part[32] = t;
    }
    __syncthreads();
    double total = part[32];
    __syncthreads();  // part may be reused by the caller's next reduction
    return total;
}

// Weighted cross-entropy, launched as ONE block that loops over the rows (batches are small).
// CE_j = (max_j - z_j[y_j]) + log(sum_c exp(z_jc - max_j)), the logsumexp form minus the label's
// logit, arranged so a huge max cancels exactly instead of rounding at its own magnitude.
// The batch sums run in double, so the normaliser adds no error worth counting.
//   seed == 0 (normalized): L = sum w_j CE_j / sum w_j,       grad_j = w_j / sum w  * (p_j - 1_y)
//   seed == 1:              L = mean CE_j * mean w_j,          grad_j = mean w / N * (p_j - 1_y)
// loss[0] receives L (as float); grad [N, K] dL/dz.
extern "C" __global__ void weighted_cross_entropy(const float* __restrict__ z,
                                                  const int* __restrict__ labels,
                                                  const float* __restrict__ class_w,
                                                  float* __restrict__ grad,
                                                  float* __restrict__ loss, int n, int k,
                                                  int seed) {
    __shared__ double part[33];
    double sum_w = 0.0, sum_l = 0.0;
    for (int row = threadIdx.x; row < n; row += blockDim.x) {
        const float* zr = z + (long long)row * k;
        int y = labels[row];
        float m, s;
        softmax_row_stats(zr, k, &m, &s);
        float ce = (m - zr[y]) + logf(s);
        double w = (double)class_w[y];
        sum_w += w;
        sum_l += seed ? (double)ce : w * (double)ce;
    }
    sum_w = block_sum_double(sum_w, part);
    sum_l = block_sum_double(sum_l, part);
    double mean_w = sum_w / (double)n;
    if (threadIdx.x == 0) {
        loss[0] = seed ? (float)(sum_l / (double)n * mean_w) : (float)(sum_l / sum_w);
    }
    float seed_factor = (float)(mean_w / (double)n);
    for (int row = threadIdx.x; row < n; row += blockDim.x) {
        const float* zr = z + (long long)row * k;
        float* gr = grad + (long long)row * k;
        int y = labels[row];
        float f = seed ? seed_factor : (float)((double)class_w[y] / sum_w);
        float m, s;
        softmax_row_stats(zr, k, &m, &s);
        for (int c = 0; c < k; ++c) {
            float p = expf(zr[c] - m) / s;
            gr[c] = f * (c == y ? p - 1.f : p);
        }
    }
}
