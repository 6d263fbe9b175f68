// Element-wise kernels: activations (`<name>_forward` / `<name>_backward`, see Activation in
// mod.rs) and the residual add. Grid-stride loops, so any
// launch size covers any length; float4 loads where the caller guarantees alignment is not
// needed (lengths are arbitrary), so these stay scalar and rely on coalescing.

extern "C" __global__ void relu_forward(const float* __restrict__ x, float* __restrict__ y, int n) {
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += blockDim.x * gridDim.x) {
        float v = x[i];
        y[i] = v > 0.f ? v : 0.f;
    }
}

// dx = dy where x > 0 (the gradient at exactly 0 is taken as 0, as in the reference).
extern "C" __global__ void relu_backward(const float* __restrict__ dy, const float* __restrict__ x,
                                         float* __restrict__ dx, int n) {
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += blockDim.x * gridDim.x) {
        dx[i] = x[i] > 0.f ? dy[i] : 0.f;
    }
}

extern "C" __global__ void add_forward(const float* __restrict__ a, const float* __restrict__ b,
                                       float* __restrict__ y, int n) {
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += blockDim.x * gridDim.x) {
        y[i] = a[i] + b[i];
    }
}

// SiLU: y = x * sigmoid(x) = x / (1 + e^-x), the formula of Activation::f32 (mod.rs). expf, not
// __expf: the fast intrinsic's error grows with |x| and would break the tests' bound.
extern "C" __global__ void silu_forward(const float* __restrict__ x, float* __restrict__ y, int n) {
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += blockDim.x * gridDim.x) {
        float v = x[i];
        y[i] = v / (1.f + expf(-v));
    }
}

// dx = dy * s (1 + x (1 - s)), s = sigmoid(x).
extern "C" __global__ void silu_backward(const float* __restrict__ dy, const float* __restrict__ x,
                                         float* __restrict__ dx, int n) {
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += blockDim.x * gridDim.x) {
        float v = x[i];
        float s = 1.f / (1.f + expf(-v));
        dx[i] = dy[i] * (s * (1.f + v * (1.f - s)));
    }
}
