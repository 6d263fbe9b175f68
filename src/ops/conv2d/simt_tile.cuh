// The FP32 CUDA-core GEMM step shared by the convolution forward (conv2d.cu) and its gradient
// kernels (conv2d_backward.cu): one K row of the block's shared-memory tiles into a thread's
// TM x TN register tile.
#pragma once

// acc[i][j] += A[ty*TM + i] * B[bcol(j)] for the K row `a_row` of A (TM contiguous values per
// thread) and `b_row` of B (two runs of 4 columns, tx*4.. and BN/2 + tx*4..: neighbouring threads
// read neighbouring 16-byte vectors, so no bank conflicts). Both rows 16-byte aligned.
template <int TM, int TN, int BN>
__device__ __forceinline__ void simt_tile_step(float (&acc)[TM][TN], const float* a_row,
                                               const float* b_row, int ty, int tx) {
    static_assert(TM % 4 == 0 && TN == 8, "float4 runs: TM a multiple of 4, two runs of 4 columns");
    float a[TM], b[TN];
#pragma unroll
    for (int i = 0; i < TM; i += 4) {
        float4 v = *reinterpret_cast<const float4*>(a_row + ty * TM + i);
        a[i] = v.x;
        a[i + 1] = v.y;
        a[i + 2] = v.z;
        a[i + 3] = v.w;
    }
#pragma unroll
    for (int j = 0; j < TN; j += 4) {
        float4 v = *reinterpret_cast<const float4*>(b_row + (j >> 2) * (BN / 2) + tx * 4);
        b[j] = v.x;
        b[j + 1] = v.y;
        b[j + 2] = v.z;
        b[j + 3] = v.w;
    }
#pragma unroll
    for (int i = 0; i < TM; ++i)
#pragma unroll
        for (int j = 0; j < TN; ++j) acc[i][j] = fmaf(a[i], b[j], acc[i][j]);
}
