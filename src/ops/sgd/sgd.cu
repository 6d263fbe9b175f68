// One SGD step in place, element-wise (grid-stride), in torch.optim.SGD's order:
//   g <- g + wd p                                   (wd != 0)
//   b <- g (first step) or mu b + (1 - dampening) g (buf != nullptr, i.e. momentum != 0)
//   g <- g + mu b (nesterov) or b
//   p <- p - lr g
// The host passes lr, wd, mu and 1 - dampening (computed in double) rounded to float, and a
// null buffer when momentum is 0, which the kernel then never touches. Every multiply-add is
// an explicit fmaf, so the GPU (which would contract a*b+c on its own) and the emulator round
// identically. The branches are uniform across the grid.
extern "C" __global__ void sgd_step(float* __restrict__ p, const float* __restrict__ g,
                                    float* __restrict__ buf, int n, float lr, float wd,
                                    float mu, float one_minus_damp, int first, int nesterov) {
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += blockDim.x * gridDim.x) {
        float pi = p[i];
        float d = g[i];
        if (wd != 0.0f) d = fmaf(wd, pi, d);
        if (buf != nullptr) {
            float b = first ? d : fmaf(mu, buf[i], one_minus_damp * d);
            buf[i] = b;
            d = nesterov ? fmaf(mu, b, d) : b;
        }
        p[i] = fmaf(-lr, d, pi);
    }
}
