//! f32 matrix multiply on the `gemm` crate (AVX2/AVX-512/NEON micro-kernels with packing and
//! cache blocking, ~100 GFLOP/s per Zen 4 core): far better than hand-rolled loops and it keeps
//! this module to a strided-view wrapper.

/// A strided matrix view: element (r, c) is at `ptr[r * rs + c * cs]`.
#[derive(Clone, Copy)]
pub struct View<'a> {
    pub data: &'a [f32],
    pub rows: usize,
    pub cols: usize,
    pub rs: isize,
    pub cs: isize,
}

impl<'a> View<'a> {
    /// Row-major `rows x cols`.
    pub fn rm(data: &'a [f32], rows: usize, cols: usize) -> Self {
        View {
            data,
            rows,
            cols,
            rs: cols as isize,
            cs: 1,
        }
    }
    /// The transpose of row-major `cols x rows` data (no copy).
    pub fn rm_t(data: &'a [f32], rows: usize, cols: usize) -> Self {
        View {
            data,
            rows,
            cols,
            rs: 1,
            cs: rows as isize,
        }
    }
    fn max_index(&self) -> usize {
        if self.rows == 0 || self.cols == 0 {
            return 0;
        }
        (self.rows - 1) * self.rs as usize + (self.cols - 1) * self.cs as usize
    }
}

/// c (row-major m x n) = a (m x k) * b (k x n) [+ c when `accumulate`].
/// `threads > 1` lets the gemm crate split the product over rayon's pool.
pub fn sgemm(c: &mut [f32], a: View, b: View, accumulate: bool, threads: usize) {
    let (m, k, n) = (a.rows, a.cols, b.cols);
    assert_eq!(b.rows, k, "sgemm: inner dimensions {k} vs {}", b.rows);
    assert!(
        c.len() >= m * n,
        "sgemm: output holds {} < {m}x{n}",
        c.len()
    );
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !accumulate {
            c[..m * n].fill(0.0);
        }
        return;
    }
    assert!(
        a.max_index() < a.data.len() && b.max_index() < b.data.len(),
        "sgemm: view out of bounds"
    );
    let par = if threads > 1 {
        gemm::Parallelism::Rayon(threads)
    } else {
        gemm::Parallelism::None
    };
    // K in blocks of at most KC, each added to c in order. When m or n is over 64 the gemm
    // crate blocks K itself by a depth it derives from the L1 cache read from the machine
    // (gemm-common 0.19 `kernel_params`: for these f32 kernels 64 x the L1 ways rounded up to
    // a power of two, at least 512): 1024 on this 48 KiB 12-way L1 (K = 1152 ran as 2 x 576,
    // measured), 512 on a 32 KiB 8-way one (Zen 4: 3 x 384), so one product rounded
    // differently on two AVX-512 CPUs. Given at most 512 it does not block further, so every
    // product is the same sums in the same order on every CPU with the same instruction set
    // (README, "Results across CPUs").
    for k0 in (0..k).step_by(KC) {
        let kb = KC.min(k - k0);
        let a_off = (k0 as isize * a.cs) as usize;
        let b_off = (k0 as isize * b.rs) as usize;
        // SAFETY: the asserts above bound every index gemm touches: a, b within their slices
        // (the block starts k0 columns / rows in and reads kb of them), c within m*n row-major
        // elements; c does not alias a or b (it is a distinct &mut).
        unsafe {
            gemm::gemm(
                m,
                n,
                kb,
                c.as_mut_ptr(),
                1,
                n as isize,
                accumulate || k0 > 0,
                a.data.as_ptr().add(a_off),
                a.cs,
                a.rs,
                b.data.as_ptr().add(b_off),
                b.cs,
                b.rs,
                1.0,
                1.0,
                false,
                false,
                false,
                par,
            );
        }
    }
}

/// The largest K of one `gemm` crate call (see [`sgemm`]): its own smallest cache-derived depth.
pub const KC: usize = 512;

#[cfg(test)]
mod tests {
    use super::*;

    /// The product every dense layer and gemm-path convolution gets, bit for bit, on any x86-64
    /// CPU with FMA (the gemm crate's FMA kernels; AVX-512 CPUs run them too, its AVX-512
    /// kernels are not built): per output, K in blocks of [`KC`], each block a sequence of fused
    /// multiply-adds from zero, the blocks added to c in order. Nothing in it depends on the
    /// CPU's caches or the thread count. Without the K blocks in `sgemm` the shapes with m or n
    /// over 64 fail on a 48 KiB 12-way L1 (the crate's own 2 x 576 for K = 1152).
    #[test]
    #[cfg(target_arch = "x86_64")]
    fn sgemm_is_the_same_sums_on_every_fma_cpu() {
        if !std::arch::is_x86_feature_detected!("fma") {
            eprintln!("no FMA on this CPU: the gemm crate runs its scalar kernels; not checked");
            return;
        }
        let mut rng = crate::Rng::new(5);
        let mut checked = 0;
        // (m, k, n): m or n over 64 (the cache-derived blocking), both at most 64, K below,
        // at and above one block, K not a multiple of it.
        for (m, k, n) in [
            (32, 1152, 96),
            (70, 2048, 40),
            (130, 600, 65),
            (16, 2048, 64),
            (48, 4608, 50),
            (20, 300, 30),
            (66, 512, 66),
            (90, 1000, 17),
        ] {
            let a: Vec<f32> = (0..m * k).map(|_| rng.normal() as f32).collect();
            let b: Vec<f32> = (0..k * n).map(|_| rng.normal() as f32).collect();
            let c0: Vec<f32> = (0..m * n).map(|_| rng.normal() as f32).collect();
            // Row-major and transposed operands (the dense backward passes use both).
            for (ta, tb) in [(false, false), (true, false), (false, true)] {
                let av = if ta {
                    View::rm_t(&a, m, k)
                } else {
                    View::rm(&a, m, k)
                };
                let bv = if tb {
                    View::rm_t(&b, k, n)
                } else {
                    View::rm(&b, k, n)
                };
                let at = |i: usize, p: usize| a[(i as isize * av.rs + p as isize * av.cs) as usize];
                let bt = |p: usize, j: usize| b[(p as isize * bv.rs + j as isize * bv.cs) as usize];
                for accumulate in [false, true] {
                    let mut want = if accumulate {
                        c0.clone()
                    } else {
                        vec![0.0; m * n]
                    };
                    for (i, j) in (0..m).flat_map(|i| (0..n).map(move |j| (i, j))) {
                        for k0 in (0..k).step_by(KC) {
                            let mut acc = 0.0f32;
                            for p in k0..(k0 + KC).min(k) {
                                acc = at(i, p).mul_add(bt(p, j), acc);
                            }
                            let c = &mut want[i * n + j];
                            *c = if k0 == 0 && !accumulate {
                                acc
                            } else {
                                *c + acc
                            };
                        }
                    }
                    for threads in [1, 2] {
                        let mut got = if accumulate {
                            c0.clone()
                        } else {
                            vec![7.0; m * n]
                        };
                        sgemm(&mut got, av, bv, accumulate, threads);
                        let bad = (0..m * n)
                            .filter(|&x| got[x].to_bits() != want[x].to_bits())
                            .count();
                        assert_eq!(
                            bad,
                            0,
                            "{m}x{k}x{n} ta {ta} tb {tb} acc {accumulate} threads {threads}: \
                             {bad} of {} outputs differ",
                            m * n
                        );
                        checked += 1;
                    }
                }
            }
        }
        assert_eq!(checked, 8 * 3 * 2 * 2);
    }
}
