// One Adam / AdamW step in place, element-wise (grid-stride):
//   p <- p - lr*wd * p
//   m <- b1 m + (1 - b1) g;  v <- b2 v + (1 - b2) g^2
//   p <- p - (lr / bc1) * m / (sqrt(v) / sqrt(bc2) + eps),   bc_i = 1 - b_i^t
// which is the reference's p - lr (m / bc1) / (sqrt(v / bc2) + eps) rearranged as PyTorch does.
// The host computes lr*wd, 1 - b1, 1 - b2, lr / bc1 and 1 / sqrt(bc2) in double and passes them
// rounded to float. Every multiply-add is an explicit fmaf, so the GPU (which would contract
// a*b+c on its own) and the emulator round identically.
extern "C" __global__ void adam_step(float* __restrict__ p, const float* __restrict__ g,
                                     float* __restrict__ m, float* __restrict__ v, int n,
                                     float lr_wd, float b1, float one_minus_b1, float b2,
                                     float one_minus_b2, float step_size, float inv_sqrt_bc2,
                                     float eps) {
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += blockDim.x * gridDim.x) {
        float gi = g[i];
        float pi = fmaf(-lr_wd, p[i], p[i]);
        float mi = fmaf(b1, m[i], one_minus_b1 * gi);
        float vi = fmaf(b2, v[i], one_minus_b2 * (gi * gi));
        float denom = fmaf(sqrtf(vi), inv_sqrt_bc2, eps);
        p[i] = fmaf(-step_size, mi / denom, pi);
        m[i] = mi;
        v[i] = vi;
    }
}
