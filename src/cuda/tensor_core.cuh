// Every tensor-core instruction the kernels use, each behind one small device function:
//   mma_tf32_m16n8k8, mma_bf16_m16n8k16, mma_f16_m16n8k16 (FP32 accumulate, D = A B + C),
//   ldmatrix_x1/x2/x4 (+ _trans), cp_async_16 (with zero-fill) + cp_async_commit +
//   cp_async_wait<N>, tf32_round,
//   and f32 <-> bf16 / f16 conversions written out in integer code (round to nearest even,
//   NaN and inf kept), so NVRTC needs neither cuda_fp16.h nor cuda_bf16.h.
// On the GPU (NVRTC, sm_80+) they are inline PTX. In the CPU emulator (SKINENGINE_CUDA_EMU,
// defined by emu/cuda_emu.h) they are warp collectives with the per-lane fragment layouts of the
// PTX ISA ("Matrix Fragments for mma.m16n8k8 / m16n8k16", "ldmatrix"), checked against CUTLASS's
// cute/atom/mma_traits_sm80.hpp. With g = lane / 4 and t = lane % 4:
//   m16n8k8 .tf32  A (16x8): a0 (g, t)  a1 (g+8, t)  a2 (g, t+4)  a3 (g+8, t+4)
//                  B (8x8):  b0 (k=t, n=g)  b1 (k=t+4, n=g)
//   m16n8k16 .f16/.bf16, two values per 32-bit register, the lower index in the low half:
//                  A (16x16): reg0 (g, 2t..2t+1)  reg1 (g+8, 2t..)  reg2 (g, 2t+8..)  reg3 (g+8, 2t+8..)
//                  B (16x8):  reg0 (k=2t..2t+1, n=g)  reg1 (k=2t+8.., n=g)
//   C/D (16x8, both): c0 (g, 2t)  c1 (g, 2t+1)  c2 (g+8, 2t)  c3 (g+8, 2t+1)
//   ldmatrix .m8n8 .b16: lanes 8q..8q+7 give the row addresses of matrix q (16 bytes each);
//     register q of lane L holds row L/4, columns 2(L%4), 2(L%4)+1 of matrix q; with .trans,
//     rows 2(L%4), 2(L%4)+1 of column L/4 (the transpose).
// Every lane of the warp must call the mma/ldmatrix functions together (as on the GPU).
#pragma once

// ---- conversions (same integer code on the GPU and in the emulator) ----------------------

// f32 -> bf16 bits, round to nearest even; a NaN stays a (quiet) NaN with its sign; values
// rounding past the largest bf16 become inf.
__device__ __forceinline__ unsigned short f32_to_bf16(float x) {
    unsigned u = __float_as_uint(x);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (unsigned short)((u >> 16) | 0x0040u);
    u += 0x7fffu + ((u >> 16) & 1u);  // a carry out of the mantissa bumps the exponent: exact RNE
    return (unsigned short)(u >> 16);
}

// bf16 -> f32 is exact; a NaN comes back quiet (as x86 and the `half` crate do).
__device__ __forceinline__ float bf16_to_f32(unsigned short h) {
    const unsigned u = (unsigned)h << 16;
    return __uint_as_float((u & 0x7fffffffu) > 0x7f800000u ? u | 0x00400000u : u);
}

// f32 -> IEEE binary16 bits, round to nearest even, subnormals exact, overflow to inf, NaN quiet
// with the top payload bits.
__device__ __forceinline__ unsigned short f32_to_f16(float x) {
    const unsigned u = __float_as_uint(x);
    const unsigned sign = (u >> 16) & 0x8000u;
    const unsigned a = u & 0x7fffffffu;
    if (a > 0x7f800000u) return (unsigned short)(sign | 0x7e00u | ((a >> 13) & 0x3ffu));
    // 65520 = 65504 + half an ulp: the tie rounds to the even neighbour 65536, i.e. inf.
    if (a >= 0x477ff000u) return (unsigned short)(sign | 0x7c00u);
    if (a >= 0x38800000u) {  // >= 2^-14: a normal half; rebias the exponent by 127 - 15
        unsigned r = a - 0x38000000u;
        r += 0xfffu + ((r >> 13) & 1u);
        return (unsigned short)(sign | (r >> 13));
    }
    if (a <= 0x33000000u) return (unsigned short)sign;  // <= 2^-25: ties to the even 0
    // Subnormal half: the value in units of 2^-24 is m * 2^(e - 126), m with its hidden bit.
    const unsigned e = a >> 23, m = (a & 0x7fffffu) | 0x800000u;
    const unsigned shift = 126u - e;  // 14..24
    unsigned q = m >> shift;
    const unsigned rem = m & ((1u << shift) - 1u), half = 1u << (shift - 1u);
    if (rem > half || (rem == half && (q & 1u))) ++q;  // q = 0x400 is the smallest normal
    return (unsigned short)(sign | q);
}

// f16 -> f32 is exact; a NaN comes back quiet with its payload. Normal and subnormal halves
// alike: the exponent and mantissa bits moved to FP32's places read as 2^-112 times the value
// (an FP32 subnormal for a subnormal half), and times 2^112 that is exact. Branch-free: the
// 16-bit activation loads (act.cuh) inline this into register-heavy gathers.
__device__ __forceinline__ float f16_to_f32(unsigned short h) {
    const unsigned sign = ((unsigned)h & 0x8000u) << 16;
    const unsigned em = (unsigned)h & 0x7fffu, m = em & 0x3ffu;
    const float mag = __uint_as_float(em << 13) * 0x1p112f;
    const unsigned special = 0x7f800000u | (m ? 0x00400000u | (m << 13) : 0u);
    return __uint_as_float(sign | (em >= 0x7c00u ? special : __float_as_uint(mag)));
}

// Two 16-bit values in one register: `lo` in bits 0..15 (the lower fragment index).
__device__ __forceinline__ unsigned pack_half2(unsigned short lo, unsigned short hi) {
    return (unsigned)lo | ((unsigned)hi << 16);
}

#ifdef SKINENGINE_CUDA_EMU
// ---- the emulator's definitions ------------------------------------------------------------
#include <cstdio>
#include <cstdlib>

// cvt.rna.tf32.f32: round to nearest, ties away from zero, to 10 mantissa bits (the low 13
// bits cleared). Adding half an ulp to the magnitude and truncating is exactly that; the largest
// floats round to inf. inf passes unchanged; a NaN keeps its sign and gets its top mantissa bits
// set, so it is still a NaN once an mma drops the low 13 bits (the GPU's NaN payload is not
// specified; tests check only NaN and sign).
inline float tf32_round(float x) {
    unsigned u = __float_as_uint(x);
    if ((u & 0x7f800000u) == 0x7f800000u) return (u & 0x7fffffu) ? __uint_as_float(u | 0x7fffe000u) : x;
    return __uint_as_float((u + 0x1000u) & 0xffffe000u);
}

// One m16n8kK mma: each lane publishes pointers to its fragments, waits for the warp, computes
// its own four outputs from the other lanes' registers, waits again (so no lane changes a
// register another still reads), and only then writes d (d may be c). `K16` selects the 16-bit
// layouts; `elem(reg, half)` decodes one input value. Products of tf32/bf16/f16 values are
// exact in f32; the k terms are added to c in order in f32 (the tensor core's own order and
// truncation differ: tests bound that difference, they do not assume equality).
template <bool K16, typename Elem>
inline void emu_mma(float* d, const unsigned* a, const unsigned* b, const float* c, Elem elem) {
    // (a, b, c) of this lane, published by address. (No C struct here: build.rs wants a Rust
    // mirror for every struct in a .cuh.)
    const void* mine[3] = {a, b, c};
    uint64_t* slots = emu_warp_slots();
    const unsigned lane = emu_lane();
    slots[lane] = (uint64_t)(uintptr_t)&mine;
    emu_warp_sync();
    const unsigned* fa[32];
    const unsigned* fb[32];
    for (unsigned l = 0; l < 32; ++l) {
        const void* const* p = (const void* const*)(uintptr_t)slots[l];
        fa[l] = (const unsigned*)p[0];
        fb[l] = (const unsigned*)p[1];
    }
    const unsigned g = lane / 4, t = lane % 4;
    const int kdim = K16 ? 16 : 8;
    float out[4];
    for (int i = 0; i < 4; ++i) {
        const unsigned row = g + (i >= 2 ? 8u : 0u), col = 2 * t + (i & 1);
        float acc = c[i];
        for (int k = 0; k < kdim; ++k) {
            float av, bv;
            if (K16) {
                const unsigned ka = (unsigned)k;
                const unsigned al = (row % 8) * 4 + (ka % 8) / 2;
                const unsigned ar = (row >= 8 ? 1u : 0u) + (ka >= 8 ? 2u : 0u);
                av = elem(fa[al][ar], ka & 1);
                const unsigned bl = col * 4 + (ka % 8) / 2;
                bv = elem(fb[bl][ka >= 8 ? 1 : 0], ka & 1);
            } else {
                const unsigned ka = (unsigned)k;
                const unsigned al = (row % 8) * 4 + ka % 4;
                const unsigned ar = (row >= 8 ? 1u : 0u) + (ka >= 4 ? 2u : 0u);
                av = elem(fa[al][ar], 0);
                bv = elem(fb[col * 4 + ka % 4][ka >= 4 ? 1 : 0], 0);
            }
            acc = std::fma(av, bv, acc);  // the product is exact: fma == add of the product
        }
        out[i] = acc;
    }
    emu_warp_sync();
    for (int i = 0; i < 4; ++i) d[i] = out[i];
}

// The tensor core reads a .tf32 operand's top 19 bits: the low 13 are ignored (truncation).
inline void mma_tf32_m16n8k8(float* d, const unsigned* a, const unsigned* b, const float* c) {
    emu_mma<false>(d, a, b, c, [](unsigned r, unsigned) { return __uint_as_float(r & 0xffffe000u); });
}
inline void mma_bf16_m16n8k16(float* d, const unsigned* a, const unsigned* b, const float* c) {
    emu_mma<true>(d, a, b, c, [](unsigned r, unsigned h) {
        return bf16_to_f32((unsigned short)(h ? r >> 16 : r & 0xffffu));
    });
}
inline void mma_f16_m16n8k16(float* d, const unsigned* a, const unsigned* b, const float* c) {
    emu_mma<true>(d, a, b, c, [](unsigned r, unsigned h) {
        return f16_to_f32((unsigned short)(h ? r >> 16 : r & 0xffffu));
    });
}

// ldmatrix .m8n8 .b16 of NMAT matrices, plain or transposed. Row addresses must be 16-byte
// aligned (the GPU faults otherwise): the emulator aborts instead of reading on.
template <int NMAT, bool TRANS>
inline void ldmatrix_impl(unsigned* r, const void* row_addr) {
    uint64_t* slots = emu_warp_slots();
    const unsigned lane = emu_lane();
    slots[lane] = (uint64_t)(uintptr_t)row_addr;
    emu_warp_sync();
    for (int q = 0; q < NMAT; ++q)
        for (int i = 0; i < 8; ++i)
            if (slots[q * 8 + i] % 16 != 0) {
                std::fprintf(stderr, "ldmatrix: lane %d gave a row address not 16-byte aligned\n",
                             q * 8 + i);
                std::abort();
            }
    unsigned out[4];
    for (int q = 0; q < NMAT; ++q) {
        auto at = [&](unsigned row, unsigned col) {
            return ((const unsigned short*)(uintptr_t)slots[q * 8 + row])[col];
        };
        const unsigned s = lane / 4, p = 2 * (lane % 4);
        if (TRANS)
            out[q] = pack_half2(at(p, s), at(p + 1, s));
        else
            out[q] = pack_half2(at(s, p), at(s, p + 1));
    }
    emu_warp_sync();
    for (int q = 0; q < NMAT; ++q) r[q] = out[q];
}

inline void cp_async_16(void* smem_dst, const void* gmem_src, int src_bytes = 16) {
    if (src_bytes < 0 || src_bytes > 16 || (uintptr_t)smem_dst % 16 || (uintptr_t)gmem_src % 16) {
        std::fprintf(stderr, "cp.async: src-size %d or an address not 16-byte aligned\n", src_bytes);
        std::abort();
    }
    emu_cp_async(smem_dst, gmem_src, 16, (unsigned)src_bytes);
}
inline void cp_async_commit() { emu_cp_async_commit(); }
template <int N>
inline void cp_async_wait() {
    emu_cp_async_wait((unsigned)N);
}

#else
// ---- the GPU's definitions: inline PTX (sm_80 and later) ------------------------------------
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ < 800
#error "tensor_core.cuh needs sm_80 or later (mma .tf32/.bf16, cp.async)"
#endif

__device__ __forceinline__ unsigned smem_u32(const void* p) {
    unsigned r;
    asm("{ .reg .u64 a; cvta.to.shared.u64 a, %1; cvt.u32.u64 %0, a; }" : "=r"(r) : "l"(p));
    return r;
}

// The low 13 bits are cleared after the cvt (a no-op where the hardware clears them itself), so
// the result is one defined f32 bit pattern, the emulator's.
__device__ __forceinline__ float tf32_round(float x) {
    unsigned r;
    asm("cvt.rna.tf32.f32 %0, %1;" : "=r"(r) : "f"(x));
    return __uint_as_float(r & 0xffffe000u);
}

#define SKE_MMA_F32(name, shape_types)                                                        \
    __device__ __forceinline__ void name(float* d, const unsigned* a, const unsigned* b,      \
                                         const float* c) {                                   \
        asm volatile("mma.sync.aligned." shape_types                                         \
                     " {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%10,%11,%12,%13};"            \
                     : "=f"(d[0]), "=f"(d[1]), "=f"(d[2]), "=f"(d[3])                        \
                     : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]),     \
                       "f"(c[0]), "f"(c[1]), "f"(c[2]), "f"(c[3]));                          \
    }
SKE_MMA_F32(mma_tf32_m16n8k8, "m16n8k8.row.col.f32.tf32.tf32.f32")
SKE_MMA_F32(mma_bf16_m16n8k16, "m16n8k16.row.col.f32.bf16.bf16.f32")
SKE_MMA_F32(mma_f16_m16n8k16, "m16n8k16.row.col.f32.f16.f16.f32")
#undef SKE_MMA_F32

template <int NMAT, bool TRANS>
__device__ __forceinline__ void ldmatrix_impl(unsigned* r, const void* row_addr);
template <>
__device__ __forceinline__ void ldmatrix_impl<1, false>(unsigned* r, const void* p) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x1.shared.b16 {%0}, [%1];"
                 : "=r"(r[0]) : "r"(smem_u32(p)));
}
template <>
__device__ __forceinline__ void ldmatrix_impl<2, false>(unsigned* r, const void* p) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x2.shared.b16 {%0,%1}, [%2];"
                 : "=r"(r[0]), "=r"(r[1]) : "r"(smem_u32(p)));
}
template <>
__device__ __forceinline__ void ldmatrix_impl<4, false>(unsigned* r, const void* p) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3]) : "r"(smem_u32(p)));
}
template <>
__device__ __forceinline__ void ldmatrix_impl<1, true>(unsigned* r, const void* p) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x1.trans.shared.b16 {%0}, [%1];"
                 : "=r"(r[0]) : "r"(smem_u32(p)));
}
template <>
__device__ __forceinline__ void ldmatrix_impl<2, true>(unsigned* r, const void* p) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x2.trans.shared.b16 {%0,%1}, [%2];"
                 : "=r"(r[0]), "=r"(r[1]) : "r"(smem_u32(p)));
}
template <>
__device__ __forceinline__ void ldmatrix_impl<4, true>(unsigned* r, const void* p) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3]) : "r"(smem_u32(p)));
}

// 16 bytes global -> shared, asynchronously (.cg: through L2 only): the first src_bytes (0..16)
// from gmem_src, zeros after them (src-size 0 reads nothing, but src must still be mapped).
// Both addresses 16-byte aligned.
__device__ __forceinline__ void cp_async_16(void* smem_dst, const void* gmem_src, int src_bytes = 16) {
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;" ::"r"(smem_u32(smem_dst)),
                 "l"(gmem_src), "r"(src_bytes)
                 : "memory");
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;" ::: "memory"); }
template <int N>
__device__ __forceinline__ void cp_async_wait() {
    asm volatile("cp.async.wait_group %0;" ::"n"(N) : "memory");
}
#endif

// The named forms the kernels call (one definition each, over either backend above).
__device__ __forceinline__ void ldmatrix_x1(unsigned* r, const void* p) { ldmatrix_impl<1, false>(r, p); }
__device__ __forceinline__ void ldmatrix_x2(unsigned* r, const void* p) { ldmatrix_impl<2, false>(r, p); }
__device__ __forceinline__ void ldmatrix_x4(unsigned* r, const void* p) { ldmatrix_impl<4, false>(r, p); }
__device__ __forceinline__ void ldmatrix_x1_trans(unsigned* r, const void* p) { ldmatrix_impl<1, true>(r, p); }
__device__ __forceinline__ void ldmatrix_x2_trans(unsigned* r, const void* p) { ldmatrix_impl<2, true>(r, p); }
__device__ __forceinline__ void ldmatrix_x4_trans(unsigned* r, const void* p) { ldmatrix_impl<4, true>(r, p); }
