// Inverted dropout, forward and backward alike (the map is its own adjoint): y[i] = x[i] * scale
// where element i is kept, else +0. The keep test is the integer rule of DropoutMask (mod.rs):
//   z = key + (i + 1) * 0x9E3779B97F4A7C15, bits = mix64(z) >> 40, keep iff bits >= threshold
// with key = mix64(seed) and the threshold and scale computed on the host, so the mask equals
// the CPU's and the reference's bit for bit. The index is widened to 64 bits before hashing.
// The key arrives as the bits of a long long (launch arguments are signed) and is read back
// unsigned: wrapping unsigned arithmetic, as Rust's wrapping_add / wrapping_mul.

__device__ __forceinline__ unsigned long long dropout_mix64(unsigned long long z) {
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

extern "C" __global__ void dropout_apply(const float* __restrict__ x, float* __restrict__ y,
                                         int n, long long key, unsigned threshold, float scale) {
    const unsigned long long k = (unsigned long long)key;
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += blockDim.x * gridDim.x) {
        unsigned long long z = k + ((unsigned long long)i + 1ull) * 0x9E3779B97F4A7C15ull;
        unsigned bits = (unsigned)(dropout_mix64(z) >> 40);
        y[i] = bits >= threshold ? x[i] * scale : 0.0f;
    }
}
