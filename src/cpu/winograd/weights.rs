//! The F(4x4, 3x3) transform matrices and the transformed, packed weights U = G g G^T, cached
//! per weight tensor content like the direct kernel's packed weights (`cpu::weight_cache`).
//!
//! Matrices of Lavin & Gray (2016), interpolation points 0, 1, -1, 2, -2 and infinity; they
//! compute the cross-correlation y[i] = sum_a g[a] d[i + a] of a 6-sample input d with a
//! 3-tap filter g as y = A^T ((G g) . (B^T d)) for 4 outputs at once, and the 2-d version
//! Y = A^T ((G g G^T) . (B^T d B)) A for a 4x4 output tile from a 6x6 input tile.

use rayon::prelude::*;
use std::sync::Arc;

use crate::cpu::weight_cache::WeightCache;
use crate::tensor::Tensor;

/// Input tile side (4 outputs + 3 taps - 1).
pub const ALPHA: usize = 6;
/// Output tile side.
pub const TILE: usize = 4;
/// Transformed points per tile (ALPHA^2): 36 independent GEMMs.
pub const POINTS: usize = ALPHA * ALPHA;
/// Rows per packed weight panel (the GEMM micro-kernel's register rows).
pub const MR: usize = 8;

/// B^T, the input transform (integers: exact in f32).
pub const BT: [[f32; ALPHA]; ALPHA] = [
    [4.0, 0.0, -5.0, 0.0, 1.0, 0.0],
    [0.0, -4.0, -4.0, 1.0, 1.0, 0.0],
    [0.0, 4.0, -4.0, -1.0, 1.0, 0.0],
    [0.0, -2.0, -1.0, 2.0, 1.0, 0.0],
    [0.0, 2.0, -1.0, -2.0, 1.0, 0.0],
    [0.0, 4.0, 0.0, -5.0, 0.0, 1.0],
];

/// A^T, the output transform (integers: exact in f32).
pub const AT: [[f32; ALPHA]; TILE] = [
    [1.0, 1.0, 1.0, 1.0, 1.0, 0.0],
    [0.0, 1.0, -1.0, 2.0, -2.0, 0.0],
    [0.0, 1.0, 1.0, 4.0, 4.0, 0.0],
    [0.0, 1.0, -1.0, 8.0, -8.0, 1.0],
];

/// G, the filter transform; applied in f64 once per weight tensor, then rounded to f32.
pub const G: [[f64; 3]; ALPHA] = [
    [1.0 / 4.0, 0.0, 0.0],
    [-1.0 / 6.0, -1.0 / 6.0, -1.0 / 6.0],
    [-1.0 / 6.0, 1.0 / 6.0, -1.0 / 6.0],
    [1.0 / 24.0, 1.0 / 12.0, 1.0 / 6.0],
    [1.0 / 24.0, -1.0 / 12.0, 1.0 / 6.0],
    [0.0, 0.0, 1.0],
];

/// G g G^T of one 3x3 filter (row-major), in f64: point (xi, nu) at xi * 6 + nu.
pub fn filter_tile(g: &[f64]) -> [f64; POINTS] {
    let mut gg = [[0.0f64; 3]; ALPHA]; // G g
    for (xi, row) in gg.iter_mut().enumerate() {
        for (b, v) in row.iter_mut().enumerate() {
            *v = (0..3).map(|a| G[xi][a] * g[a * 3 + b]).sum();
        }
    }
    let mut u = [0.0f64; POINTS];
    for xi in 0..ALPHA {
        for nu in 0..ALPHA {
            u[xi * ALPHA + nu] = (0..3).map(|b| gg[xi][b] * G[nu][b]).sum();
        }
    }
    u
}

/// U for every (o, c) pair, packed for the GEMM micro-kernel: for each panel of MR output
/// channels (rows past O zero), for each of the 36 points, [C][MR] (k-major), so one point's
/// panel is one contiguous run of C * MR floats.
pub struct Transformed {
    data: Vec<f32>,
    c: usize,
}

impl Transformed {
    /// From weights [O, C, 3, 3].
    pub fn new(w: &[f32], o: usize, c: usize) -> Self {
        assert_eq!(w.len(), o * c * 9, "3x3 weights");
        let panels = o.div_ceil(MR);
        let per_panel = POINTS * c * MR;
        let mut data = vec![0.0f32; panels * per_panel];
        data.par_chunks_mut(per_panel)
            .enumerate()
            .for_each(|(p, panel)| {
                for r in 0..MR.min(o - p * MR) {
                    let oi = p * MR + r;
                    for ci in 0..c {
                        let g: Vec<f64> = w[(oi * c + ci) * 9..][..9]
                            .iter()
                            .map(|&v| v as f64)
                            .collect();
                        for (pt, &u) in filter_tile(&g).iter().enumerate() {
                            panel[(pt * c + ci) * MR + r] = u as f32;
                        }
                    }
                }
            });
        Transformed { data, c }
    }

    /// Point `pt`'s packed panel of output channels p*MR.., [C][MR].
    pub fn panel(&self, pt: usize, p: usize) -> &[f32] {
        let len = self.c * MR;
        &self.data[(p * POINTS + pt) * len..][..len]
    }

    pub fn bytes(&self) -> usize {
        self.data.len() * 4
    }
}

/// Room for ResNet50's transformed 3x3 weights (4x the 33 MB of raw 3x3 weights, ~130 MB).
static CACHE: WeightCache<Transformed> = WeightCache::new(192 << 20);

/// `w` [O, C, 3, 3] transformed; from the cache when this exact content (the tensor's version,
/// fresh on every mutation) was transformed before. Least recently used entries go first.
pub fn transformed(w: &Tensor, o: usize, c: usize) -> Arc<Transformed> {
    CACHE.get((w.version(), o, c), || {
        let u = Transformed::new(w.data(), o, c);
        let bytes = u.bytes();
        (u, bytes)
    })
}
