// Activations and their gradients as FP32 or 16-bit values (issue 12: BF16 / FP16 storage in
// training, as PyTorch's autocast leaves a network's activations in the autocast type).
//
// A kernel takes such a tensor as `const void*` (or `void*`) followed by its `int` format:
// 0 = FP32, 1 = bf16, 2 = IEEE half, the codes of channels_last.cu and conv2d_tc.cuh's 16-bit
// formats. The host passes each buffer's own format (CudaTensor::act), so a tensor is never
// misread; the launch check accepts only float or 16-bit buffers for `void*`. Loads widen exactly
// (every bf16 / f16 value is an FP32 value); stores round once, to nearest even. Every
// computation stays FP32.
//
// The format is a run-time argument rather than a template parameter: a warp-uniform branch per
// access, where a template would multiply the instantiations of every kernel by 3 per tensor.
#pragma once
#include "tensor_core.cuh"

// `v` unchanged, but opaque to the optimiser. For the per-element branches of an unrolled
// epilogue (32 values a thread in the tensor-core kernels): NVVM otherwise threads the same
// uniform test (a format, a null bias or residual, split K) from one element to the next, so
// each combination of outcomes gets its own copy of the whole unrolled epilogue. That made
// conv2d_tc.cu 7.8 MB of PTX (4,044 integer divisions for 6 epilogues of 32 values) and 96 s
// of NVRTC + ptxas per architecture; with the tests hidden, 1.7 MB and 7.5 s. The asm is empty:
// no instruction is emitted, one uniform branch per test remains.
__device__ __forceinline__ int act_uniform(int v) {
#ifdef SKINENGINE_NVRTC
    asm volatile("" : "+r"(v));
#endif
    return v;
}

__device__ __forceinline__ float act_ld(const void* __restrict__ p, long long i, int fmt) {
    if (fmt == 0) return __ldg(reinterpret_cast<const float*>(p) + i);
    const unsigned short h = __ldg(reinterpret_cast<const unsigned short*>(p) + i);
    return fmt == 1 ? bf16_to_f32(h) : f16_to_f32(h);
}

__device__ __forceinline__ void act_st(void* __restrict__ p, long long i, float v, int fmt) {
    if (fmt == 0)
        reinterpret_cast<float*>(p)[i] = v;
    else if (fmt == 1)
        reinterpret_cast<unsigned short*>(p)[i] = f32_to_bf16(v);
    else
        reinterpret_cast<unsigned short*>(p)[i] = f32_to_f16(v);
}

// The same load in two halves, for gathers that hold many values in registers before storing
// them (conv2d_tc_grad.cu's weight gradient): one 32-bit word a value (an FP32's bits, or the
// 16-bit value zero-extended; 0 is +0 in every format), widened when stored.
__device__ __forceinline__ unsigned act_ld_bits(const void* __restrict__ p, long long i, int fmt) {
    if (fmt == 0) return __ldg(reinterpret_cast<const unsigned*>(p) + i);
    return __ldg(reinterpret_cast<const unsigned short*>(p) + i);
}

__device__ __forceinline__ float act_bits_to_f32(unsigned b, int fmt) {
    if (fmt == 0) return __uint_as_float(b);
    return fmt == 1 ? bf16_to_f32((unsigned short)b) : f16_to_f32((unsigned short)b);
}
