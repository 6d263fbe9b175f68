// Unscaling for dynamic loss scaling: out[i] = g[i] * inv_scale (one f32 multiply, the CPU's and
// the reference's bits) and *found_inf = 1 when any g[i] or out[i] has all exponent bits set
// (inf or NaN; the output too, because inv_scale > 1 can overflow a finite gradient).
// found_inf is shared by every tensor of one unscale (the host zeroes it once and reads it once
// after the last launch, so one list costs one 4-byte download). Threads that see a non-finite
// value all store the same 1: a benign race, as in PyTorch's non-finite check; no atomics.

extern "C" __global__ void unscale_check(const float* __restrict__ g, float* __restrict__ out,
                                         int n, float inv_scale, int* __restrict__ found_inf) {
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += blockDim.x * gridDim.x) {
        const float v = g[i];
        const float y = v * inv_scale;
        const unsigned e = 0x7f800000u;
        if ((__float_as_uint(v) & e) == e || (__float_as_uint(y) & e) == e) *found_inf = 1;
        out[i] = y;
    }
}
