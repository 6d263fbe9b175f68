#include "tensor_core.cuh"

// Self-test kernels of tensor_core.cuh, one warp each: the host (src/cuda/tc_tests.rs) knows
// the answer of every one, so the same checks hold the emulator's definitions and (in the GPU
// check) the hardware to the PTX ISA. Fragments are built here from the layout formulas of the
// ISA, written independently of the emulator's inverse mapping in tensor_core.cuh.

// Per x[i]: out[3i] = bits of tf32_round(x), out[3i+1] = f32_to_bf16(x), out[3i+2] = f32_to_f16(x).
extern "C" __global__ void tc_selftest_convert(const float* __restrict__ x, int* __restrict__ out,
                                               int n) {
    const int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    out[3 * i] = (int)__float_as_uint(tf32_round(x[i]));
    out[3 * i + 1] = (int)f32_to_bf16(x[i]);
    out[3 * i + 2] = (int)f32_to_f16(x[i]);
}

// Per 16-bit pattern h[i] (low half of an int): out[2i] = bf16_to_f32, out[2i+1] = f16_to_f32.
extern "C" __global__ void tc_selftest_widen(const int* __restrict__ h, float* __restrict__ out,
                                             int n) {
    const int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    const unsigned short v = (unsigned short)(h[i] & 0xffff);
    out[2 * i] = bf16_to_f32(v);
    out[2 * i + 1] = f16_to_f32(v);
}

__device__ __forceinline__ unsigned tc_elem16(float v, int kind) {
    return kind == 1 ? f32_to_bf16(v) : f32_to_f16(v);
}

// D = A B + C through one mma of `kind` (0: tf32 m16n8k8, 1: bf16 m16n8k16, 2: f16 m16n8k16).
// A is row-major 16 x K, B row-major K x 8, C and D row-major 16 x 8 (K = 8 or 16). One warp.
extern "C" __global__ void tc_selftest_mma(const float* __restrict__ A, const float* __restrict__ B,
                                           const float* __restrict__ C, float* __restrict__ D,
                                           int kind) {
    const int lane = threadIdx.x % 32, g = lane / 4, t = lane % 4;
    unsigned a[4], b[2];
    float c[4], d[4];
    for (int i = 0; i < 4; ++i) c[i] = C[(g + (i >= 2 ? 8 : 0)) * 8 + 2 * t + (i & 1)];
    if (kind == 0) {
        // a0 (g, t), a1 (g+8, t), a2 (g, t+4), a3 (g+8, t+4); b0 (k=t, n=g), b1 (k=t+4, n=g)
        for (int i = 0; i < 4; ++i)
            a[i] = __float_as_uint(A[(g + (i & 1) * 8) * 8 + t + (i >> 1) * 4]);
        for (int i = 0; i < 2; ++i) b[i] = __float_as_uint(B[(t + 4 * i) * 8 + g]);
        mma_tf32_m16n8k8(d, a, b, c);
    } else {
        // Register i holds values 2i, 2i+1: rows g (i even) or g+8 (i odd), columns 2t, 2t+1,
        // plus 8 for i >= 2; B register i holds k = 2t + 8i, 2t + 8i + 1 of column g.
        for (int i = 0; i < 4; ++i) {
            const int row = g + (i & 1) * 8, col = 2 * t + (i >> 1) * 8;
            a[i] = pack_half2(tc_elem16(A[row * 16 + col], kind),
                              tc_elem16(A[row * 16 + col + 1], kind));
        }
        for (int i = 0; i < 2; ++i) {
            const int k = 2 * t + 8 * i;
            b[i] = pack_half2(tc_elem16(B[k * 8 + g], kind), tc_elem16(B[(k + 1) * 8 + g], kind));
        }
        if (kind == 1)
            mma_bf16_m16n8k16(d, a, b, c);
        else
            mma_f16_m16n8k16(d, a, b, c);
    }
    for (int i = 0; i < 4; ++i) D[(g + (i >= 2 ? 8 : 0)) * 8 + 2 * t + (i & 1)] = d[i];
}

// ldmatrix of every form. Matrix q (q < 4; q = 4 is poison) holds value q*64 + r*8 + c + 1 at
// row r, column c; its rows lie scattered in shared memory (row q*8+r at slot (q*8+r)*7 % 40), so
// only the per-lane addresses tie them together. Form v (0..5 = x1, x2, x4, x1.trans, x2.trans,
// x4.trans): lane L gives the address of row L%8 of matrix L/8 when that matrix is loaded, else
// of a poison row; out[(v*32 + L)*4 + q] = register q (-1 where the form has none).
extern "C" __global__ void tc_selftest_ldmatrix(int* __restrict__ out) {
    __shared__ __align__(16) unsigned short rows[40][8];
    const int lane = threadIdx.x % 32;
    for (int i = lane; i < 40; i += 32)
        for (int c = 0; c < 8; ++c) rows[(i * 7) % 40][c] = (unsigned short)(i * 8 + c + 1);
    __syncwarp();
    for (int v = 0; v < 6; ++v) {
        const int nmat = 1 << (v % 3);
        const int q = lane / 8, r = lane % 8;
        const int logical = q < nmat ? q * 8 + r : 32 + r;
        const void* p = &rows[(logical * 7) % 40][0];
        unsigned reg[4] = {0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu};
        switch (v) {
            case 0: ldmatrix_x1(reg, p); break;
            case 1: ldmatrix_x2(reg, p); break;
            case 2: ldmatrix_x4(reg, p); break;
            case 3: ldmatrix_x1_trans(reg, p); break;
            case 4: ldmatrix_x2_trans(reg, p); break;
            default: ldmatrix_x4_trans(reg, p); break;
        }
        for (int j = 0; j < 4; ++j) out[(v * 32 + lane) * 4 + j] = (int)reg[j];
    }
}

// cp.async groups, one warp: lane L copies src chunk (g*32 + L) (16 bytes) into buf[g][L] for
// g = 0, 1 in groups 0 and 1, and in group 2 only the first 4 * (L % 5) bytes of chunk 64 + L
// into buf[2][L] (src-size 0..16: zeros after them); buf starts at -1.
// out[s*128 + L*4 + j], s = 0: buf[2] before any wait (the emulator lands copies at the wait
// only, so it still holds -1 there; on the GPU it may hold either); s = 1: buf[0] after
// wait_group 2; s = 2: buf[1] after wait_group 1; s = 3: buf[2] after wait_group 0.
extern "C" __global__ void tc_selftest_cp_async(const float* __restrict__ src, float* __restrict__ out) {
    __shared__ __align__(16) float buf[3][32][4];
    const int lane = threadIdx.x % 32;
    for (int g = 0; g < 3; ++g)
        for (int j = 0; j < 4; ++j) buf[g][lane][j] = -1.f;
    for (int g = 0; g < 3; ++g) {
        cp_async_16(&buf[g][lane][0], src + (g * 32 + lane) * 4, g < 2 ? 16 : 4 * (lane % 5));
        cp_async_commit();
    }
    for (int j = 0; j < 4; ++j) out[lane * 4 + j] = buf[2][lane][j];
    cp_async_wait<2>();
    for (int j = 0; j < 4; ++j) out[128 + lane * 4 + j] = buf[0][lane][j];
    cp_async_wait<1>();
    for (int j = 0; j < 4; ++j) out[256 + lane * 4 + j] = buf[1][lane][j];
    cp_async_wait<0>();
    for (int j = 0; j < 4; ++j) out[384 + lane * 4 + j] = buf[2][lane][j];
}
