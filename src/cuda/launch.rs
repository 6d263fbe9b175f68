//! Launch geometry shared by every op's CUDA code.

use super::device::Dims;

/// SMs of the GPUs we tune for (H100 / H200: 132). Fixed rather than read from the device, so
/// the emulator makes exactly the launches a GPU gets (split-K choices depend on it).
pub const SMS: usize = 132;

/// Threads per block of the grid-stride loops.
const THREADS: u32 = 256;

/// A 1-d grid-stride launch over `n` items: 256 threads per block and at most 65,535 blocks, so
/// huge tensors loop instead of launching millions of blocks (the kernels' `int` indices leave
/// room for that last stride, see [`super::device::MAX_KERNEL_INT`]).
pub fn grid_stride(n: usize) -> Dims {
    let mut d = Dims::linear(n, THREADS);
    d.grid[0] = d.grid[0].min(65_535);
    d
}
