//! Winograd F(4x4, 3x3) for stride-1 3x3 convolutions on the AVX-512 CPU path (forward only;
//! the gradients stay on the direct kernels).
//!
//! The whole batch is cut into 4x4 output tiles (6x6 input tiles, overlapping by 2), in order
//! (image, tile row, tile column), so small maps (14x14 = 16 tiles, 7x7 = 4) of several images
//! fill one GEMM. Blocks of `tb` tiles go to threads; for each block: V = B^T d B of every
//! tile and input channel ([36][C][tb]), 36 GEMMs M[pt] = U[pt] [O x C] x V[pt] [C x tb] with
//! the transformed weights U = G g G^T (computed in f64 once per weight tensor, cached), then
//! Y = A^T M A with bias, residual and ReLU applied before the store. When the blocks cannot
//! fill the threads, output channels are split too (each task transforms its block's input).
//! 36 products per 4x4 outputs instead of 144: 4x fewer multiply-adds in the GEMMs.
//!
//! Error bound (derived from the transforms, checked by tests.rs). With u = 2^-24, every
//! output is within (C + 20) * 1.01 * u * Yabs of the exact result, Yabs being the same
//! computation on absolute values: sum over c of |A|^T ((|G| |g| |G|^T) . (|B|^T |d| |B|)) |A|.
//! The 20 rounding steps besides the C-term sum: the input transform (two passes of at most 4
//! terms each, 8), rounding U to f32 (1), the product (1), the output transform (two passes of
//! at most 5 terms, 10). Against the direct convolution's scale D = sum |w| |x| (the bound the
//! direct kernel meets with 9C terms), Yabs / D is at most the transforms' amplification for
//! data of one magnitude: per dimension, sum over taps a and pixels p of
//! |A^T[i, .]| |G[., a]| |B^T[., p]| / 3 = 5.3, 5.7, 8 and 16 for output rows i = 0..3, so
//! up to 16 x 16 = 256 for the tile's corner output in 2-d (transforms_amplification in
//! tests.rs recomputes these). That is the worst case; the errors measured on random data at
//! every ResNet50 3x3 shape (tests.rs, `resnet_shapes_error`) are what the README reports.

mod kernel;
#[cfg(test)]
pub(crate) mod tests;
pub mod weights;

pub(crate) mod forcing;

pub use forcing::with_winograd;

use crate::cpu::threads;
use crate::ops::conv2d::ConvGeom;
use crate::tensor::Tensor;
pub use kernel::Epilogue;
use kernel::{LANES, Tiles};
use rayon::prelude::*;
use weights::{MR, POINTS};

/// Whether Winograd may be used: on unless SKINENGINE_WINOGRAD=0, or forced by
/// [`with_winograd`]. Forcing on still requires a 3x3 stride-1 shape and AVX-512F.
fn enabled() -> Option<bool> {
    static ENV: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    forcing::forced().or_else(|| {
        let on = *ENV.get_or_init(|| std::env::var("SKINENGINE_WINOGRAD").as_deref() != Ok("0"));
        (!on).then_some(false)
    })
}

/// A 3x3, stride-1 convolution on a CPU with AVX-512F (the check the direct kernel's
/// dispatch uses, so forcing the portable paths turns this off too).
pub fn supported(g: &ConvGeom) -> bool {
    g.kh == 3 && g.kw == 3 && g.sh == 1 && g.sw == 1 && crate::cpu::conv_gemm::available()
}

/// Whether the forward of `g` takes Winograd: supported, and a shape where it was measured
/// faster than the direct kernel (see [`faster`]), unless forced.
pub fn use_for(g: &ConvGeom) -> bool {
    supported(g)
        && match enabled() {
            Some(on) => on,
            None => faster(g),
        }
}

/// The measured rule (benches/ops.rs, `cpu_conv2d_winograd`, same run as the direct kernel,
/// 2 threads, bias + ReLU): Winograd was 1.2-1.9x faster at every ResNet50 stride-1 3x3 shape
/// with at least 16 tiles (56x56, 28x28 and 14x14 maps at batch 1, all at batch 8), and 3x
/// slower on one 7x7 map (4 tiles: the 37 MB of transformed layer4 weights are streamed for 4
/// tiles). So: at least 16 tiles in the batch, and channels that fill the GEMM panels.
fn faster(g: &ConvGeom) -> bool {
    let tiles = g.n * g.ho.div_ceil(weights::TILE) * g.wo.div_ceil(weights::TILE);
    g.c >= 32 && g.o >= 32 && tiles >= 16
}

/// Tiles per block: V of a block (36 C tb floats) about 1 MB.
fn tile_block(g: &ConvGeom) -> usize {
    if let Some(tb) = std::env::var("SKINENGINE_WINO_TB")
        .ok()
        .and_then(|s| s.parse::<usize>().ok())
    {
        return tb.div_ceil(LANES).max(1) * LANES;
    }
    ((1 << 18) / (POINTS * g.c) / LANES).clamp(1, 16) * LANES
}

/// One task: (first tile, tiles (a multiple of 16), first and end output channel).
type Task = (usize, usize, usize, usize);

/// The tasks of one convolution: blocks of at most `tb_max` tiles, as many as the threads or a
/// multiple of them; output channels split in multiples of MR when blocks are fewer than threads.
fn plan(g: &ConvGeom, count: usize, threads: usize, tb_max: usize) -> Vec<Task> {
    let mut nb = count.div_ceil(tb_max);
    // Even work per thread: as many blocks as threads, or a multiple of them.
    nb = nb.div_ceil(threads) * threads;
    let tb = count.div_ceil(nb).div_ceil(LANES) * LANES;
    let nb = count.div_ceil(tb);
    let osplit = threads.div_ceil(nb).min(g.o.div_ceil(MR));
    let ostep = g.o.div_ceil(osplit).div_ceil(MR) * MR;
    let mut tasks = Vec::new();
    for b in 0..nb {
        let t0 = b * tb;
        let len = tb.min((count - t0).div_ceil(LANES) * LANES);
        for o0 in (0..g.o).step_by(ostep) {
            tasks.push((t0, len, o0, (o0 + ostep).min(g.o)));
        }
    }
    tasks
}

#[derive(Clone, Copy)]
struct SendPtr(*mut f32);
// SAFETY: tasks write disjoint (tile, output channel) sets of the output through it.
unsafe impl Send for SendPtr {}
unsafe impl Sync for SendPtr {}

impl SendPtr {
    /// Through a method, so closures capture the whole (Send) wrapper, not the raw field.
    fn get(self) -> *mut f32 {
        self.0
    }
}

/// y = epilogue(conv(x, w)) by Winograd F(4x4, 3x3). `g` must be [`supported`].
pub fn forward(x: &Tensor, w: &Tensor, g: &ConvGeom, e: Epilogue) -> Tensor {
    forward_split(x, w, g, e, threads(), tile_block(g))
}

/// [`forward`] planned for `threads` threads and blocks of at most `tb_max` tiles (tests reach
/// every split on small shapes).
fn forward_split(
    x: &Tensor,
    w: &Tensor,
    g: &ConvGeom,
    e: Epilogue,
    threads: usize,
    tb_max: usize,
) -> Tensor {
    assert!(
        supported(g),
        "Winograd F(4x4, 3x3) needs a 3x3 stride-1 convolution and AVX-512F"
    );
    let u = weights::transformed(w, g.o, g.c);
    let tiles = Tiles::new(g);
    let total = g.n * g.o * g.ho * g.wo;
    let mut y: Vec<f32> = Vec::with_capacity(total);
    let yp = SendPtr(y.as_mut_ptr());
    let tasks = plan(g, tiles.count, threads, tb_max);
    tasks.par_iter().for_each(|&(t0, tb, o0, o1)| {
        let rows = (o1 - o0).div_ceil(MR) * MR;
        let vlen = POINTS * g.c * tb;
        crate::cpu::scratch::with_scratch(vlen + POINTS * rows * tb, |buf| {
            let (v, m) = buf.split_at_mut(vlen);
            // SAFETY: AVX-512F checked by `supported`; each task writes the outputs of its own
            // tiles (disjoint output pixels) and channels; `y` holds the whole output.
            #[cfg(target_arch = "x86_64")]
            unsafe {
                kernel::input_transform(x.data(), g, &tiles, t0, tb, v);
                kernel::gemms(&u, g.c, o0, o1, tb, v, m);
                kernel::output_transform(m, g, &tiles, t0, tb, (o0, o1), yp.get(), &e);
            }
        });
    });
    // SAFETY: the tasks cover every tile and channel, and every valid output of a tile is
    // stored (the masks are off only outside the map).
    unsafe { y.set_len(total) };
    Tensor::new(&g.y_shape(), y).expect("output shape matches")
}
