//! The AVX-512 forward of small maps (14x14, 7x7) in groups of images, one GEMM per group:
//! one image's 49 or 196 columns leave the last 32-wide tile a third to a half empty, a
//! group's fill it ([`crate::cpu::conv_gemm::conv_group`]).

use super::ConvGeom;
use super::cpu::{HostEpilogue, SendPtr};
use crate::cpu::conv_gemm::PackedA;
use crate::cpu::scratch::with_outer_scratch;
use crate::cpu::threads;
use crate::tensor::Tensor;
use rayon::prelude::*;

/// Images per GEMM in the forward of small maps: as many as fit [`WIDE_FROM`] columns (10 for
/// 7x7, 2 for 14x14), while leaving at least one group per thread. Grouping does not change
/// any sum (each output element is still summed over K in the same order), so results do not
/// depend on it.
pub(super) fn group_images(g: &ConvGeom) -> usize {
    use crate::cpu::conv_gemm::WIDE_FROM;
    let hw = g.ho * g.wo;
    if hw >= WIDE_FROM {
        return 1;
    }
    (WIDE_FROM / hw).min(g.n / threads()).max(1)
}

/// The forward in groups of `group` images, groups in parallel: one GEMM per group into a
/// scratch matrix [O, group*HW], then each image's rows copied out through the epilogue
/// (bias, residual, ReLU: the same additions in the same order as the kernel's own epilogue,
/// so the result is bit-identical to the one-image path).
pub(super) fn forward_groups(
    x: &Tensor,
    a: &PackedA,
    g: &ConvGeom,
    e: HostEpilogue,
    group: usize,
    y: SendPtr,
) {
    use crate::cpu::conv_gemm::{TapTable, conv_group};
    let (xin, hw) = (g.c * g.h * g.w, g.ho * g.wo);
    let yout = g.o * hw;
    let full = TapTable::grouped(g, group);
    let last = g.n % group;
    let tail = (last > 0).then(|| TapTable::grouped(g, last));
    (0..g.n.div_ceil(group)).into_par_iter().for_each(|gi| {
        let n0 = gi * group;
        let taps = if n0 + group <= g.n {
            &full
        } else {
            tail.as_ref().expect("tail group")
        };
        let gn = taps.cols() / hw;
        let xg = &x.data()[n0 * xin..(n0 + gn) * xin];
        let yp = y; // the whole SendPtr, not its raw field, moves into the closure
        with_outer_scratch(g.o * gn * hw, |yg| {
            // SAFETY: AVX-512F was detected (forward_avx512's caller); yg holds O * gn*HW floats.
            unsafe { conv_group(xg, g, a, taps, yg.as_mut_ptr(), 0..g.o) };
            for i in 0..gn {
                let ni = n0 + i;
                // SAFETY: image ni's output lies in the allocation and only this task writes it.
                let out = unsafe { std::slice::from_raw_parts_mut(yp.0.add(ni * yout), yout) };
                let res = e.residual.map(|r| &r[ni * yout..(ni + 1) * yout]);
                for (o, row) in out.chunks_mut(hw).enumerate() {
                    let src = &yg[o * gn * hw + i * hw..][..hw];
                    let bias = e.bias.map_or(0.0, |b| b[o]);
                    for (j, (d, &v)) in row.iter_mut().zip(src).enumerate() {
                        let mut v = v;
                        if e.bias.is_some() {
                            v += bias;
                        }
                        if let Some(r) = res {
                            v += r[o * hw + j];
                        }
                        // As the kernel's max(v, 0): 0 for NaN and -0.
                        *d = match e.relu {
                            true if v > 0.0 => v,
                            true => 0.0,
                            false => v,
                        };
                    }
                }
            }
        });
    });
}

/// [`forward_groups`] with a chosen group size, on a fresh output (tests: results must not
/// depend on the group size).
#[cfg(test)]
pub(super) fn forward_in_groups(
    x: &Tensor,
    w: &Tensor,
    g: &ConvGeom,
    e: HostEpilogue,
    group: usize,
) -> Tensor {
    let a = PackedA::pack(w.data(), g.o, g.c * g.kh * g.kw);
    let mut y = vec![0.0f32; g.n * g.o * g.ho * g.wo];
    forward_groups(x, &a, g, e, group, SendPtr(y.as_mut_ptr()));
    Tensor::new(&g.y_shape(), y).expect("output shape matches")
}
