//! Batch norm on the `cpu` backend: f32 storage, every sum and every per-element formula in f64
//! as the reference's, so results differ from the reference only by f64 rounding before the one
//! rounding to f32 (far inside the suite's f32 bounds).
//!
//! x is [N, C, S] (S = H*W, 1 for 1d): N*C planes of S contiguous values, channel c being the
//! planes n*C + c. Every pass walks the planes in memory order, split across threads in
//! contiguous ranges (rayon), so each thread streams through memory: walking a channel's N
//! planes instead (3 MB apart at [32, 256, 56, 56]) made the hardware prefetchers restart at
//! every plane and measured twice as slow. Per-plane results are then combined per channel over
//! the images in order (deterministic). The statistics take each plane's mean and squared
//! deviations in two passes while it is in cache and combine planes with Chan, Golub & LeVeque's
//! pairwise update: x is read from memory once and the variance never forms E[x^2] - E[x]^2.
//! Sums use 8 f64 lanes and the loops run as AVX-512 where the CPU has it
//! ([`multiversion!`](crate::multiversion)). Outputs are written once, with no zeroing pass.

use super::{BatchNormKernels, BnBatchStats, BnDims, BnParams};
use crate::cpu::CpuBackend;
use crate::cpu::par::{par_new, par_new_map};
use crate::cpu::scratch::with_scratch;
use crate::error::Result;
use crate::reference::ReferenceBackend;
use crate::tensor::Tensor;
use rayon::prelude::*;
use std::mem::MaybeUninit;

/// f64 lanes of the sums: independent accumulators the compiler keeps in vector registers.
const LANES: usize = 8;

/// Sum of f(x) over a plane, in f64 with [`LANES`] accumulators.
#[inline(always)]
fn sum1(x: &[f32], f: impl Fn(f64) -> f64) -> f64 {
    let mut acc = [0.0f64; LANES];
    let mut chunks = x.chunks_exact(LANES);
    for c in &mut chunks {
        for l in 0..LANES {
            acc[l] += f(c[l] as f64);
        }
    }
    let tail: f64 = chunks.remainder().iter().map(|&v| f(v as f64)).sum();
    acc.iter().sum::<f64>() + tail
}

/// A plane's (mean, sum of squared deviations from it), two passes in f64.
fn plane_stats(x: &[f32]) -> (f64, f64) {
    #[cfg(target_arch = "x86_64")]
    if crate::cpu::simd::avx512() {
        // SAFETY: the CPU has AVX-512F.
        return unsafe { avx512::plane_stats(x) };
    }
    plane_stats_portable(x)
}

fn plane_stats_portable(x: &[f32]) -> (f64, f64) {
    let mean = crate::cpu::simd::sum_f64_portable(x) / x.len() as f64;
    (mean, sum1(x, |v| (v - mean) * (v - mean)))
}

/// (sum dy, sum dy (x - mu)) over a plane, in f64.
fn sum_dy_dyxc(dy: &[f32], x: &[f32], mu: f64) -> (f64, f64) {
    #[cfg(target_arch = "x86_64")]
    if crate::cpu::simd::avx512() {
        // SAFETY: the CPU has AVX-512F.
        return unsafe { avx512::sum_dy_dyxc(dy, x, mu) };
    }
    sum_dy_dyxc_portable(dy, x, mu)
}

fn sum_dy_dyxc_portable(dy: &[f32], x: &[f32], mu: f64) -> (f64, f64) {
    let (mut a, mut b) = ([0.0f64; LANES], [0.0f64; LANES]);
    let (mut dc, mut xc) = (dy.chunks_exact(LANES), x.chunks_exact(LANES));
    for (d, x) in (&mut dc).zip(&mut xc) {
        for l in 0..LANES {
            let dv = d[l] as f64;
            a[l] += dv;
            b[l] += dv * (x[l] as f64 - mu);
        }
    }
    let (mut sa, mut sb) = (a.iter().sum::<f64>(), b.iter().sum::<f64>());
    for (&d, &x) in dc.remainder().iter().zip(xc.remainder()) {
        sa += d as f64;
        sb += d as f64 * (x as f64 - mu);
    }
    (sa, sb)
}

/// The two sums with AVX-512 intrinsics: LLVM's SLP vectoriser turns the portable [`LANES`]
/// loops into scalar conversions and 2-lane adds (measured: compute-bound at a third of memory
/// speed); here each step converts 8 f32 to 8 f64 and adds lane-wise, same lane structure.
#[cfg(target_arch = "x86_64")]
mod avx512 {
    use crate::cpu::simd::x86::{load8_f64 as load8, sum_f64};
    use std::arch::x86_64::*;

    #[target_feature(enable = "avx512f")]
    pub fn plane_stats(x: &[f32]) -> (f64, f64) {
        let full = x.len() / 8 * 8;
        let mean = sum_f64(x) / x.len() as f64;
        let (m, mut acc) = (_mm512_set1_pd(mean), _mm512_setzero_pd());
        for i in (0..full).step_by(8) {
            let d = _mm512_sub_pd(load8(x, i), m);
            acc = _mm512_add_pd(acc, _mm512_mul_pd(d, d));
        }
        let tail = x[full..]
            .iter()
            .map(|&v| (v as f64 - mean) * (v as f64 - mean));
        (mean, _mm512_reduce_add_pd(acc) + tail.sum::<f64>())
    }

    #[target_feature(enable = "avx512f")]
    pub fn sum_dy_dyxc(dy: &[f32], x: &[f32], mu: f64) -> (f64, f64) {
        let n = dy.len().min(x.len());
        let full = n / 8 * 8;
        let m = _mm512_set1_pd(mu);
        let (mut a, mut b) = (_mm512_setzero_pd(), _mm512_setzero_pd());
        for i in (0..full).step_by(8) {
            let d = load8(dy, i);
            a = _mm512_add_pd(a, d);
            b = _mm512_add_pd(b, _mm512_mul_pd(d, _mm512_sub_pd(load8(x, i), m)));
        }
        let (mut sa, mut sb) = (_mm512_reduce_add_pd(a), _mm512_reduce_add_pd(b));
        for i in full..n {
            sa += dy[i] as f64;
            sb += dy[i] as f64 * (x[i] as f64 - mu);
        }
        (sa, sb)
    }
}

crate::multiversion! {
    /// out = (x - mu) a + b, in f64.
    fn affine_plane(out: &mut [MaybeUninit<f32>], x: &[f32], mu: f64, a: f64, b: f64) {
        for (o, &v) in out.iter_mut().zip(x) {
            o.write(((v as f64 - mu) * a + b) as f32);
        }
    }
}

crate::multiversion! {
    /// Training-mode dx = a ((dy - mdy) - (x - mu) k), in f64.
    fn dx_plane(out: &mut [MaybeUninit<f32>], dy: &[f32], x: &[f32], c: [f64; 4]) {
        let [a, mdy, mu, k] = c;
        for ((o, &g), &v) in out.iter_mut().zip(dy).zip(x) {
            o.write((a * ((g as f64 - mdy) - (v as f64 - mu) * k)) as f32);
        }
    }
}

crate::multiversion! {
    /// Frozen-statistics dx = a dy, in f64.
    fn scale_plane(out: &mut [MaybeUninit<f32>], dy: &[f32], a: f64) {
        for (o, &g) in out.iter_mut().zip(dy) {
            o.write((a * g as f64) as f32);
        }
    }
}

/// f(plane index, plane) for every plane of x [N, C, S], in parallel, in memory order (the
/// default for empty planes).
fn per_plane<R, F>(x: &[f32], d: BnDims, f: F) -> Vec<R>
where
    R: Send + Default,
    F: Fn(usize, &[f32]) -> R + Sync,
{
    if d.s == 0 {
        return (0..d.n * d.c).map(|_| R::default()).collect();
    }
    x.par_chunks(d.s)
        .enumerate()
        .map(|(i, p)| f(i, p))
        .collect()
}

/// Per-channel (mean, biased variance) in f64.
fn stats_f64(x: &[f32], d: BnDims) -> Vec<(f64, f64)> {
    let planes = per_plane(x, d, |_, p| plane_stats(p));
    let nb = d.s as f64;
    (0..d.c)
        .map(|ci| {
            // Chan, Golub & LeVeque: (count, mean, M2) updated by each plane's (mean, M2).
            let (mut n, mut mean, mut m2) = (0.0f64, 0.0f64, 0.0f64);
            for ni in 0..d.n {
                let (mb, m2b) = planes[ni * d.c + ci];
                let total = n + nb;
                let delta = mb - mean;
                mean += delta * (nb / total);
                m2 += m2b + delta * delta * (n * nb / total);
                n = total;
            }
            (mean, m2 / n)
        })
        .collect()
}

fn f64s(t: &Tensor) -> Vec<f64> {
    t.data().iter().map(|&v| v as f64).collect()
}

impl BatchNormKernels for CpuBackend {
    fn normalize(
        &self,
        x: &Tensor,
        d: BnDims,
        mean: &Tensor,
        var: &Tensor,
        gamma: &Tensor,
        beta: &Tensor,
        eps: f64,
    ) -> Result<Tensor> {
        let (mean, var, gamma, beta) = (f64s(mean), f64s(var), f64s(gamma), f64s(beta));
        // The reference's gamma (x - mean) / sqrt(var + eps) + beta, in f64.
        let a: Vec<f64> = (0..d.c)
            .map(|ci| gamma[ci] * (1.0 / (var[ci] + eps).sqrt()))
            .collect();
        let y = par_new(x.len(), d.s, |i, out| {
            let ci = i % d.c;
            affine_plane(out, &x.data()[i * d.s..][..d.s], mean[ci], a[ci], beta[ci]);
        });
        Tensor::new(x.shape(), y)
    }
    fn batch_stats(&self, x: &Tensor, d: BnDims) -> Result<(Tensor, Tensor)> {
        let s = stats_f64(x.data(), d);
        let mean = s.iter().map(|&(m, _)| m as f32).collect();
        let var = s.iter().map(|&(_, v)| v as f32).collect();
        Ok((Tensor::new(&[d.c], mean)?, Tensor::new(&[d.c], var)?))
    }
    fn backward(
        &self,
        dy: &Tensor,
        relu_out: Option<&Tensor>,
        x: &Tensor,
        d: BnDims,
        gamma: &Tensor,
        mean: &Tensor,
        var: &Tensor,
        eps: f64,
        batch_stats: bool,
    ) -> Result<(Tensor, Tensor, Tensor)> {
        let (mean, var, gamma) = (f64s(mean), f64s(var), f64s(gamma));
        let m = d.m() as f64;
        let (xs, dys) = (x.data(), dy.data());
        let inv: Vec<f64> = var.iter().map(|v| 1.0 / (v + eps).sqrt()).collect();
        let xplane = |i: usize| &xs[i * d.s..][..d.s];
        // f(dy plane i): dy itself, or (fused ReLU backward) dy masked by the ReLU's output in
        // this thread's scratch buffer: one plane in cache instead of a whole masked tensor
        // written to memory and read back twice.
        let with_dy = |i: usize, f: &mut dyn FnMut(&[f32])| {
            let dp = &dys[i * d.s..][..d.s];
            match relu_out {
                None => f(dp),
                Some(r) => with_scratch(d.s, |m| {
                    for ((o, &g), &y) in m.iter_mut().zip(dp).zip(&r.data()[i * d.s..][..d.s]) {
                        *o = if y > 0.0 { g } else { 0.0 };
                    }
                    f(m)
                }),
            }
        };
        let (ci_of, a_of) = (|i: usize| i % d.c, |ci: usize| gamma[ci] * inv[ci]);
        let sums_of = |i: usize| {
            let mut s = (0.0, 0.0);
            with_dy(i, &mut |dp| s = sum_dy_dyxc(dp, xplane(i), mean[ci_of(i)]));
            s
        };
        // Per plane (sum dy, sum dy (x - mean)). Frozen statistics: dx = a dy needs no sums, so
        // each plane is summed and scaled in one visit; training: dx once the sums are known.
        let (dx, partial) = if batch_stats {
            (None, per_plane(dys, d, |i, _| sums_of(i)))
        } else if d.s == 0 {
            (Some(Vec::new()), vec![(0.0, 0.0); d.n * d.c])
        } else {
            let (dx, partial) = par_new_map(x.len(), d.s, |i, out| {
                let mut s = (0.0, 0.0);
                with_dy(i, &mut |dp| {
                    scale_plane(out, dp, a_of(ci_of(i)));
                    s = sum_dy_dyxc(dp, xplane(i), mean[ci_of(i)]);
                });
                s
            });
            (Some(dx), partial)
        };
        // (sum dy, sum dy xhat) per channel, images in order.
        let sums: Vec<(f64, f64)> = (0..d.c)
            .map(|ci| {
                let (mut sdy, mut sdyxc) = (0.0, 0.0);
                for ni in 0..d.n {
                    let (a, b) = partial[ni * d.c + ci];
                    sdy += a;
                    sdyxc += b;
                }
                (sdy, sdyxc * inv[ci])
            })
            .collect();
        // Training: dx = a (dy - sum(dy)/M - xhat sum(dy xhat)/M), the reference's
        // g inv / M (M dy - sum(dy) - xhat sum(dy xhat)).
        let dx = dx.unwrap_or_else(|| {
            par_new(x.len(), d.s, |i, out| {
                let ci = ci_of(i);
                let (sdy, sdyxhat) = sums[ci];
                let k = sdyxhat * inv[ci] / m;
                with_dy(i, &mut |dp| {
                    dx_plane(out, dp, xplane(i), [a_of(ci), sdy / m, mean[ci], k])
                });
            })
        });
        let dgamma = sums.iter().map(|&(_, g)| g as f32).collect();
        let dbeta = sums.iter().map(|&(b, _)| b as f32).collect();
        Ok((
            Tensor::new(x.shape(), dx)?,
            Tensor::new(&[d.c], dgamma)?,
            Tensor::new(&[d.c], dbeta)?,
        ))
    }
    /// A few thousand values per call (one per channel): the reference's f64 loop, already
    /// linear and far below a millisecond; threads would only add their start-up cost.
    fn update_running(
        &self,
        bn: &mut BnParams<Tensor>,
        stats: &BnBatchStats<Tensor>,
        momentum: f64,
    ) -> Result<()> {
        ReferenceBackend.update_running(bn, stats, momentum)
    }
}

#[cfg(test)]
mod tests {
    use crate::{Rng, Tensor};

    /// The AVX-512 sums against the portable ones (which CI machines without AVX-512 run), every
    /// tail length: the same f64 sums in another order, so within a few f64 ulps of the total.
    #[test]
    fn avx512_sums_match_portable() {
        #[cfg(target_arch = "x86_64")]
        if crate::cpu::simd::avx512() {
            let mut rng = Rng::new(7);
            for len in (1..40).chain([1031, 3136]) {
                let x = Tensor::<f32>::from_fn(&[len], |_| (100.0 + rng.normal()) as f32);
                let dy = Tensor::<f32>::randn(&[len], 1.0, &mut rng);
                let close = |a: f64, b: f64, scale: f64| {
                    assert!((a - b).abs() <= 1e-13 * scale, "len {len}: {a} vs {b}")
                };
                // SAFETY: the CPU has AVX-512F.
                let (m1, q1) = unsafe { super::avx512::plane_stats(x.data()) };
                let (m2, q2) = super::plane_stats_portable(x.data());
                close(m1, m2, 100.0);
                close(q1, q2, 1.0 + q2);
                // SAFETY: as above.
                let (a1, b1) = unsafe { super::avx512::sum_dy_dyxc(dy.data(), x.data(), m2) };
                let (a2, b2) = super::sum_dy_dyxc_portable(dy.data(), x.data(), m2);
                close(a1, a2, len as f64);
                close(b1, b2, 10.0 * len as f64);
            }
        }
    }
}
