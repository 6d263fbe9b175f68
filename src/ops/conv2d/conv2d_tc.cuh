// The tensor-core main loop shared by the convolution kernels (conv2d_tc.cu: forward;
// conv2d_tc_grad.cu: data and weight gradients), each an implicit GEMM D[m][n] = sum_k A(m, k)
// B(k, n) in TF32 (FORMAT 0, mma m16n8k8), BF16 (1) or FP16 (2, both mma m16n8k16), always
// accumulating in FP32.
//
// Shared memory holds both operands K-major in the input format, as gemm_tc.cu does: one row of
// 64 bytes per k-tile for every m (rows 0..BM-1) and every n (rows BM..BM+63), i.e. 16 tf32 or
// 32 16-bit values, two to a 32-bit word with the lower k in the low half. The 16-byte chunks of
// a row are XOR-swizzled (chunk c of row r at c ^ ((r / 2) % 4)) so the ldmatrix.x4 reads of 8
// consecutive rows hit 8 distinct bank groups. Because the layout is the same for all three
// formats, the fragment reads are the same code: lane L of an 8x8 .b16 matrix gets 32 bits of
// row L/4 at word L%4, the tf32 A (g, t) / B (k=t, n=g) elements and the 16-bit (g, 2t..2t+1)
// pairs alike (tensor_core.cuh).
//
// Operands arrive two ways:
// - packed weights (forward, data gradient): K-major rows already rounded to the format
//   (gemm_tc_pack), copied by cp.async 16 bytes at a time, rows past M zero-filled, in a
//   3-stage pipeline (tile t+2 in flight while tile t is multiplied);
// - gathers (the im2col / dy / x operands, whose k order is not contiguous in NCHW memory):
//   plain loads into registers one tile ahead (issued before the current tile's mma so their
//   latency hides behind it), converted and rounded to the format as they are stored.
// Block: BM x 64 outputs, 2 BM threads = BM / 16 warps, each a 32 x 32 warp tile (2 x 4 mma
// tiles). The kernels declare the shared memory (CTC_SMEM(BM) bytes, one array per kernel so
// the three formats' instantiations share it) and pass it in.

#pragma once
#include "tensor_core.cuh"

#define CTC_BN 64
#define CTC_ROW_BYTES 64
#define CTC_STAGES 3
#define CTC_SMEM(BM) (CTC_STAGES * ((BM) + CTC_BN) * CTC_ROW_BYTES)

// Byte offset of 16-byte chunk c (0..3) of row r of a stage.
__device__ __forceinline__ int ctc_swz(int r, int c) {
    return r * CTC_ROW_BYTES + ((c ^ ((r >> 1) & 3)) << 4);
}

// Byte offset of 32-bit word w (0..15) of row r of a stage.
__device__ __forceinline__ int ctc_word(int r, int w) { return ctc_swz(r, w >> 2) + ((w & 3) << 2); }

// One shared-memory word in the format: tf32_round(v0), or (v0, v1) as a pair of 16-bit values.
template <int FORMAT>
__device__ __forceinline__ unsigned ctc_pack(float v0, float v1) {
    if (FORMAT == 0) return __float_as_uint(tf32_round(v0));
    if (FORMAT == 1) return pack_half2(f32_to_bf16(v0), f32_to_bf16(v1));
    return pack_half2(f32_to_f16(v0), f32_to_f16(v1));
}

// Copies 16-byte chunks of packed rows (K-major words, `ldw` words a row) into the A rows of a
// stage: rows m0.. of the block (rows >= M zero-filled), k-tile kt (whole tiles: the packed rows
// are zero-padded to a multiple of 16 words).
template <int BM>
__device__ __forceinline__ void ctc_copy_a(unsigned char* st, const float* __restrict__ packed,
                                           int m0, int M, int ldw, int kt) {
    const unsigned char* base = reinterpret_cast<const unsigned char*>(packed);
#pragma unroll
    for (int q = 0; q < 2; ++q) {  // BM rows x 4 chunks over 2 BM threads
        const int i = threadIdx.x + q * 2 * BM;
        const int r = i >> 2, c = i & 3;
        const bool ok = m0 + r < M;
        const unsigned char* src =
            ok ? base + ((size_t)(m0 + r) * ldw + (size_t)kt * 16 + c * 4) * 4 : base;
        cp_async_16(st + ctc_swz(r, c), src, ok ? 16 : 0);
    }
}

// The k loop over `ktiles` tiles into acc (zeroed here). fetch_async(kt, stage) issues the
// cp.async copies of tile kt (may do nothing); fetch(kt) gathers tile kt into registers;
// store(stage) writes those registers to a stage. ROUND_A: the A rows were copied as raw FP32
// (channels-last activations, conv2d_cl_tc.cu), so at TF32 each A fragment is tf32_round-ed in
// registers after its ldmatrix (the same values as rounding before the store).
template <int FORMAT, int BM, bool ROUND_A = false, typename FetchAsync, typename Fetch,
          typename Store>
__device__ __forceinline__ void ctc_mainloop(unsigned char* smem, int ktiles, float (&acc)[2][4][4],
                                             FetchAsync fetch_async, Fetch fetch, Store store) {
    constexpr int STAGE = (BM + CTC_BN) * CTC_ROW_BYTES;
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const int wm = warp >> 1, wn = warp & 1;  // warp tile (wm * 32.., wn * 32..)
#pragma unroll
    for (int i = 0; i < 2; ++i)
#pragma unroll
        for (int j = 0; j < 4; ++j)
#pragma unroll
            for (int v = 0; v < 4; ++v) acc[i][j][v] = 0.f;

#pragma unroll
    for (int s = 0; s < CTC_STAGES - 1; ++s) {
        if (s < ktiles) fetch_async(s, smem + s * STAGE);
        cp_async_commit();  // empty groups keep the group count = tile count
    }
    if (ktiles > 0) {
        fetch(0);
        store(smem);
    }
    cp_async_wait<CTC_STAGES - 2>();
    __syncthreads();
    // ldmatrix.x4 address of this lane: matrix q = lane / 8, row lane % 8 of it.
    const int lq = lane >> 3, lr = lane & 7;
    for (int t = 0; t < ktiles; ++t) {
        // Stage (t + 2) % 3 was last read in iteration t - 1, before its closing barrier.
        if (t + 2 < ktiles) fetch_async(t + 2, smem + ((t + 2) % CTC_STAGES) * STAGE);
        cp_async_commit();
        const bool more = t + 1 < ktiles;
        if (more) fetch(t + 1);
        const unsigned char* st = smem + (t % CTC_STAGES) * STAGE;
#pragma unroll
        for (int ks = 0; ks < 2; ++ks) {  // two mma k-steps of 32 bytes per 64-byte k-tile
            unsigned a[2][4], b[4][2];
#pragma unroll
            for (int mi = 0; mi < 2; ++mi) {
                // Matrices: rows 0-7 / 8-15 (q & 1) of chunk 2ks + (q >> 1) -> a0..a3.
                const int r = wm * 32 + mi * 16 + (lq & 1) * 8 + lr;
                ldmatrix_x4(a[mi], st + ctc_swz(r, 2 * ks + (lq >> 1)));
                if (FORMAT == 0 && ROUND_A)
#pragma unroll
                    for (int v = 0; v < 4; ++v)
                        a[mi][v] = __float_as_uint(tf32_round(__uint_as_float(a[mi][v])));
            }
#pragma unroll
            for (int nj = 0; nj < 2; ++nj) {
                // Matrices: n-tile 2nj + (q >> 1), chunk 2ks + (q & 1).
                const int r = BM + wn * 32 + (2 * nj + (lq >> 1)) * 8 + lr;
                unsigned rr[4];
                ldmatrix_x4(rr, st + ctc_swz(r, 2 * ks + (lq & 1)));
                b[2 * nj][0] = rr[0];
                b[2 * nj][1] = rr[1];
                b[2 * nj + 1][0] = rr[2];
                b[2 * nj + 1][1] = rr[3];
            }
#pragma unroll
            for (int mi = 0; mi < 2; ++mi)
#pragma unroll
                for (int ni = 0; ni < 4; ++ni) {
                    if (FORMAT == 0)
                        mma_tf32_m16n8k8(acc[mi][ni], a[mi], b[ni], acc[mi][ni]);
                    else if (FORMAT == 1)
                        mma_bf16_m16n8k16(acc[mi][ni], a[mi], b[ni], acc[mi][ni]);
                    else
                        mma_f16_m16n8k16(acc[mi][ni], a[mi], b[ni], acc[mi][ni]);
                }
        }
        // Stage (t + 1) % 3 was last read in iteration t - 2; its A rows (if copied) are
        // other bytes.
        if (more) store(smem + ((t + 1) % CTC_STAGES) * STAGE);
        cp_async_wait<CTC_STAGES - 2>();  // tile t + 1's copies (this thread's) have landed ...
        __syncthreads();                  // ... everyone's, and everyone is done with tile t
    }
    cp_async_wait<0>();  // only empty groups remain; leave nothing in flight
}

// f(m, n, value) for every accumulator of this thread, (m, n) in the block's output tile at
// (m0, n0): c0 (g, 2t), c1 (g, 2t+1), c2 (g+8, 2t), c3 (g+8, 2t+1) of each 16 x 8 mma tile.
template <typename F>
__device__ __forceinline__ void ctc_each(const float (&acc)[2][4][4], int m0, int n0, F f) {
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const int wm = warp >> 1, wn = warp & 1;
    const int g = lane >> 2, t4 = lane & 3;
#pragma unroll
    for (int mi = 0; mi < 2; ++mi)
#pragma unroll
        for (int ni = 0; ni < 4; ++ni)
#pragma unroll
            for (int v = 0; v < 4; ++v)
                f(m0 + wm * 32 + mi * 16 + g + (v >> 1) * 8, n0 + wn * 32 + ni * 8 + 2 * t4 + (v & 1),
                  acc[mi][ni][v]);
}
