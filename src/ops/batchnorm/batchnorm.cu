#include "act.cuh"

// Batch norm over channel c of x viewed as [n, c, s] (s = H*W for 2d, 1 for 1d): the m = n*s
// values of a channel are n runs of s contiguous floats, (ni*c + ci)*s + j.
//
// Statistics and gradient sums take one block per channel (blockIdx.x = channel): per-thread f32
// partials over a strided walk of the channel, then a fixed tree (warp shuffles, then one warp
// over the per-warp results in shared memory). No atomics, so results are deterministic. The
// element-wise kernels use a 2-d grid: blockIdx.x = channel (its coefficients are computed once
// per thread), blockIdx.y and the threads stride over the channel's m values.
//
// Per-channel coefficients (1/sqrt(var + eps) and the like) are formed in double from the f32
// inputs and rounded once: a handful of double operations per thread, so every coefficient has a
// single f32 rounding, as in the f64 reference.
//
// x, y, dy, dx and a fused ReLU's output are FP32 or 16-bit (act.cuh: `void*` + format);
// statistics, parameters and their gradients are FP32.
//
// Every kernel expects blockDim.x a multiple of 32 (the host launches 256).

// Walks a channel's flat index t = start, start + step, ... < n*s as (ni, j) without a division
// per element.
struct ChannelWalk {
    int ni, j, dn, dj, n, s;
    __device__ ChannelWalk(int start, int step, int n_, int s_) : n(n_), s(s_) {
        if (s_ <= 0) {  // no values: done at once
            ni = n_;
            j = dn = dj = 0;
            s = 1;
            return;
        }
        ni = start / s_;
        j = start % s_;
        dn = step / s_;
        dj = step % s_;
    }
    __device__ bool more() const { return ni < n; }
    __device__ long long at(int c, int ci) const {
        return ((long long)ni * c + ci) * (long long)s + j;
    }
    __device__ void next() {
        ni += dn;
        j += dj;
        if (j >= s) {
            j -= s;
            ++ni;
        }
    }
};

__device__ __forceinline__ float bn_warp_sum(float v) {
    for (int off = 16; off > 0; off >>= 1) v += __shfl_down_sync(0xffffffffu, v, off);
    return v;
}

// Sum of v over the block, returned to every thread. `sh` holds at least 32 floats; it is free
// for reuse once this returns.
__device__ float bn_block_sum(float v, float* sh) {
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    v = bn_warp_sum(v);
    if (lane == 0) sh[warp] = v;
    __syncthreads();
    if (warp == 0) {
        int warps = (blockDim.x + 31) >> 5;
        v = lane < warps ? sh[lane] : 0.f;
        v = bn_warp_sum(v);
        if (lane == 0) sh[0] = v;
    }
    __syncthreads();
    float total = sh[0];
    __syncthreads();
    return total;
}

__device__ __forceinline__ double bn_inv_std(float var, float eps) {
    return 1.0 / sqrt((double)var + (double)eps);
}

// Per-channel mean and biased variance, corrected two-pass: mu0 = sum(x)/m, then
// d = x - mu0, mean = mu0 + sum(d)/m, var = (sum(d^2) - sum(d)^2/m)/m. The correction term
// removes the error of mu0 from both (to first order), so a large common offset in x costs no
// accuracy. Grid: one block per channel.
extern "C" __global__ void bn_batch_stats(const void* __restrict__ x, int xf,
                                          float* __restrict__ mean, float* __restrict__ var, int n,
                                          int c, int s) {
    __shared__ float sh[32];
    int ci = blockIdx.x;
    double m = (double)n * (double)s;
    float acc = 0.f;
    for (ChannelWalk w(threadIdx.x, blockDim.x, n, s); w.more(); w.next()) acc += act_ld(x, w.at(c, ci), xf);
    float mu0 = (float)((double)bn_block_sum(acc, sh) / m);
    float sd = 0.f, sd2 = 0.f;
    for (ChannelWalk w(threadIdx.x, blockDim.x, n, s); w.more(); w.next()) {
        float d = act_ld(x, w.at(c, ci), xf) - mu0;
        sd += d;
        sd2 += d * d;
    }
    double total_d = bn_block_sum(sd, sh);
    double total_d2 = bn_block_sum(sd2, sh);
    if (threadIdx.x == 0) {
        double shift = total_d / m;
        mean[ci] = (float)((double)mu0 + shift);
        double v = (total_d2 - total_d * shift) / m;
        var[ci] = (float)(v > 0.0 ? v : 0.0);
    }
}

// y = gamma (x - mean) / sqrt(var + eps) + beta with the given per-channel mean and var (batch
// statistics in training, running statistics in inference). Grid: (c, blocks per channel).
extern "C" __global__ void bn_normalise(const void* __restrict__ x, int xf,
                                        const float* __restrict__ mean,
                                        const float* __restrict__ var,
                                        const float* __restrict__ gamma,
                                        const float* __restrict__ beta, void* __restrict__ y,
                                        int yf, int n, int c, int s, float eps) {
    int ci = blockIdx.x;
    float mu = mean[ci];
    float scale = (float)((double)gamma[ci] * bn_inv_std(var[ci], eps));
    float b = beta[ci];
    for (ChannelWalk w(blockIdx.y * blockDim.x + threadIdx.x, gridDim.y * blockDim.x, n, s);
         w.more(); w.next()) {
        long long i = w.at(c, ci);
        act_st(y, i, (act_ld(x, i, xf) - mu) * scale + b, yf);
    }
}

// ReLU's backward fused into the batch norm's: with `relu` (the output of a ReLU after this batch
// norm; null otherwise) the incoming gradient counts only where that output is > 0, exactly as
// relu_backward would have left it (NaN -> 0).
__device__ __forceinline__ float bn_grad_in(const void* __restrict__ dy, int dyf,
                                            const void* __restrict__ relu, int rf, long long i) {
    const float g = act_ld(dy, i, dyf);
    return (relu && !(act_ld(relu, i, rf) > 0.f)) ? 0.f : g;
}

// Per-channel gradient sums: dbeta = sum(dy), dgamma = sum(dy * xhat) with
// xhat = (x - mean) / sqrt(var + eps). Grid: one block per channel.
extern "C" __global__ void bn_backward_sums(const void* __restrict__ dy, int dyf,
                                            const void* __restrict__ relu, int rf,
                                            const void* __restrict__ x, int xf,
                                            const float* __restrict__ mean,
                                            const float* __restrict__ var,
                                            float* __restrict__ dgamma, float* __restrict__ dbeta,
                                            int n, int c, int s, float eps) {
    __shared__ float sh[32];
    int ci = blockIdx.x;
    float mu = mean[ci];
    float inv = (float)bn_inv_std(var[ci], eps);
    float sdy = 0.f, sdyx = 0.f;
    for (ChannelWalk w(threadIdx.x, blockDim.x, n, s); w.more(); w.next()) {
        long long i = w.at(c, ci);
        float g = bn_grad_in(dy, dyf, relu, rf, i);
        sdy += g;
        sdyx += g * ((act_ld(x, i, xf) - mu) * inv);
    }
    float total_dy = bn_block_sum(sdy, sh);
    float total_dyx = bn_block_sum(sdyx, sh);
    if (threadIdx.x == 0) {
        dbeta[ci] = total_dy;
        dgamma[ci] = total_dyx;
    }
}

// Training-mode dx = gamma inv / m (m dy - sum(dy) - xhat sum(dy xhat)), evaluated as
// a (dy - sum(dy)/m - (x - mean) k) with a = gamma inv and k = inv sum(dy xhat)/m per channel.
// Grid: (c, blocks per channel).
extern "C" __global__ void bn_backward_train_dx(
    const void* __restrict__ dy, int dyf, const void* __restrict__ relu, int rf,
    const void* __restrict__ x, int xf, const float* __restrict__ mean,
    const float* __restrict__ var, const float* __restrict__ gamma,
    const float* __restrict__ sum_dy, const float* __restrict__ sum_dy_xhat,
    void* __restrict__ dx, int dxf, int n, int c, int s, float eps) {
    int ci = blockIdx.x;
    double m = (double)n * (double)s;
    double inv = bn_inv_std(var[ci], eps);
    float mu = mean[ci];
    float a = (float)((double)gamma[ci] * inv);
    float mdy = (float)((double)sum_dy[ci] / m);
    float k = (float)(inv * (double)sum_dy_xhat[ci] / m);
    for (ChannelWalk w(blockIdx.y * blockDim.x + threadIdx.x, gridDim.y * blockDim.x, n, s);
         w.more(); w.next()) {
        long long i = w.at(c, ci);
        act_st(dx, i, a * ((bn_grad_in(dy, dyf, relu, rf, i) - mdy) - (act_ld(x, i, xf) - mu) * k),
               dxf);
    }
}

// Frozen-statistics dx = gamma / sqrt(var + eps) dy. Grid: (c, blocks per channel).
extern "C" __global__ void bn_backward_frozen_dx(const void* __restrict__ dy, int dyf,
                                                 const void* __restrict__ relu, int rf,
                                                 const float* __restrict__ var,
                                                 const float* __restrict__ gamma,
                                                 void* __restrict__ dx, int dxf, int n, int c,
                                                 int s, float eps) {
    int ci = blockIdx.x;
    float a = (float)((double)gamma[ci] * bn_inv_std(var[ci], eps));
    for (ChannelWalk w(blockIdx.y * blockDim.x + threadIdx.x, gridDim.y * blockDim.x, n, s);
         w.more(); w.next()) {
        long long i = w.at(c, ci);
        act_st(dx, i, a * bn_grad_in(dy, dyf, relu, rf, i), dxf);
    }
}

// In place: r_mean <- (1 - mom) r_mean + mom b_mean, r_var <- (1 - mom) r_var + mom b_var
// count/(count - 1). Computed in double like the reference and rounded once, with the exact
// f64 momentum (a double parameter): with momentum 0.1, about one value in ten is an exact tie
// between two floats, which only the exact momentum breaks the way the reference does. One
// thread per channel.
extern "C" __global__ void bn_update_running(float* __restrict__ running_mean,
                                             float* __restrict__ running_var,
                                             const float* __restrict__ batch_mean,
                                             const float* __restrict__ batch_var, int c,
                                             double mom, long long count) {
    int ci = blockIdx.x * blockDim.x + threadIdx.x;
    if (ci >= c) return;
    double unbias = (double)count / ((double)count - 1.0);
    running_mean[ci] =
        (float)((1.0 - mom) * (double)running_mean[ci] + mom * (double)batch_mean[ci]);
    running_var[ci] =
        (float)((1.0 - mom) * (double)running_var[ci] + mom * (double)batch_var[ci] * unbias);
}
