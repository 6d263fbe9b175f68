#include "act.cuh"

// Element-wise kernels: activations (`<name>_forward` / `<name>_backward`, see Activation in
// mod.rs) and the residual add. Grid-stride loops, so any launch size covers any length; scalar
// accesses that rely on coalescing (lengths are arbitrary). Every tensor is FP32 or 16-bit
// (act.cuh: a `void*` and its format); values are computed in FP32 and rounded once when stored.

extern "C" __global__ void relu_forward(const void* __restrict__ x, int xf, void* __restrict__ y,
                                        int yf, int n) {
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += blockDim.x * gridDim.x) {
        float v = act_ld(x, i, xf);
        act_st(y, i, v > 0.f ? v : 0.f, yf);
    }
}

// dx = dy where x > 0 (the gradient at exactly 0 is taken as 0, as in the reference).
extern "C" __global__ void relu_backward(const void* __restrict__ dy, int dyf,
                                         const void* __restrict__ x, int xf,
                                         void* __restrict__ dx, int dxf, int n) {
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += blockDim.x * gridDim.x) {
        act_st(dx, i, act_ld(x, i, xf) > 0.f ? act_ld(dy, i, dyf) : 0.f, dxf);
    }
}

extern "C" __global__ void add_forward(const void* __restrict__ a, int af,
                                       const void* __restrict__ b, int bf, void* __restrict__ y,
                                       int yf, int n) {
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += blockDim.x * gridDim.x) {
        act_st(y, i, act_ld(a, i, af) + act_ld(b, i, bf), yf);
    }
}

// SiLU: y = x * sigmoid(x) = x / (1 + e^-x), the formula of Activation::f32 (mod.rs). expf, not
// __expf: the fast intrinsic's error grows with |x| and would break the tests' bound.
extern "C" __global__ void silu_forward(const void* __restrict__ x, int xf, void* __restrict__ y,
                                        int yf, int n) {
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += blockDim.x * gridDim.x) {
        float v = act_ld(x, i, xf);
        act_st(y, i, v / (1.f + expf(-v)), yf);
    }
}

// dx = dy * s (1 + x (1 - s)), s = sigmoid(x).
extern "C" __global__ void silu_backward(const void* __restrict__ dy, int dyf,
                                         const void* __restrict__ x, int xf,
                                         void* __restrict__ dx, int dxf, int n) {
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += blockDim.x * gridDim.x) {
        float v = act_ld(x, i, xf);
        float s = 1.f / (1.f + expf(-v));
        act_st(dx, i, act_ld(dy, i, dyf) * (s * (1.f + v * (1.f - s))), dxf);
    }
}

// y = x as FP32 (exact): a 16-bit activation entering an FP32-only kernel (the dense layers).
extern "C" __global__ void act_widen(const void* __restrict__ x, int xf, float* __restrict__ y,
                                     int n) {
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += blockDim.x * gridDim.x) {
        y[i] = act_ld(x, i, xf);
    }
}
