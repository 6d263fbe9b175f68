//! Fast CPU dense layer: three GEMMs on strided views (no transposes materialised).

use super::{DenseDims, DenseGrads, DenseKernels};
use crate::cpu::gemm::{View, sgemm};
use crate::cpu::{CpuBackend, threads};
use crate::error::Result;
use crate::tensor::Tensor;

pub fn forward(x: &Tensor, w: &Tensor, b: Option<&Tensor>, d: DenseDims) -> Result<Tensor> {
    let DenseDims { n, i, o } = d;
    let mut y = match b {
        // Start from the broadcast bias and accumulate x W^T onto it.
        Some(b) => b.data().repeat(n),
        None => vec![0.0; n * o],
    };
    sgemm(
        &mut y,
        View::rm(x.data(), n, i),
        View::rm_t(w.data(), i, o),
        b.is_some(),
        threads(),
    );
    Tensor::new(&[n, o], y)
}

pub fn backward(dy: &Tensor, x: &Tensor, w: &Tensor, d: DenseDims) -> Result<DenseGrads<Tensor>> {
    let DenseDims { n, i, o } = d;
    let t = threads();
    let mut dx = vec![0.0; n * i];
    sgemm(
        &mut dx,
        View::rm(dy.data(), n, o),
        View::rm(w.data(), o, i),
        false,
        t,
    );
    let mut dw = vec![0.0; o * i];
    sgemm(
        &mut dw,
        View::rm_t(dy.data(), o, n),
        View::rm(x.data(), n, i),
        false,
        t,
    );
    let mut db = vec![0.0f32; o];
    for row in dy.data().chunks(o) {
        db.iter_mut().zip(row).for_each(|(d, v)| *d += v);
    }
    Ok(DenseGrads {
        dx: Tensor::new(&[n, i], dx)?,
        dw: Tensor::new(&[o, i], dw)?,
        db: Tensor::new(&[o], db)?,
    })
}

impl DenseKernels for CpuBackend {
    fn forward(&self, x: &Tensor, w: &Tensor, b: Option<&Tensor>, d: DenseDims) -> Result<Tensor> {
        forward(x, w, b, d)
    }
    fn backward(
        &self,
        dy: &Tensor,
        x: &Tensor,
        w: &Tensor,
        d: DenseDims,
    ) -> Result<DenseGrads<Tensor>> {
        backward(dy, x, w, d)
    }
}
