//! Fully connected layer y = x W^T + b, PyTorch's `nn.Linear` layout:
//! x [N, I], W [O, I], b [O] -> y [N, O].

pub mod cpu;
pub mod cuda;
pub mod reference;

use crate::error::{Result, shape_err};
use crate::tensor::ShapeFmt;

/// (n, in, out) after checking x, W and the optional bias.
pub fn dims(x: &[usize], w: &[usize], b: Option<&[usize]>) -> Result<(usize, usize, usize)> {
    const OP: &str = "dense";
    let (&[n, i], &[o, wi]) = (x, w) else {
        return Err(shape_err(
            OP,
            format!(
                "input {} must be [N, in] and weight {} must be [out, in]",
                ShapeFmt(x),
                ShapeFmt(w)
            ),
        ));
    };
    if i != wi {
        return Err(shape_err(
            OP,
            format!(
                "input {} has {i} features but weight {} expects {wi}",
                ShapeFmt(x),
                ShapeFmt(w)
            ),
        ));
    }
    if let Some(b) = b
        && b != [o]
    {
        return Err(shape_err(
            OP,
            format!(
                "bias {} must be [{o}] for weight {}",
                ShapeFmt(b),
                ShapeFmt(w)
            ),
        ));
    }
    Ok((n, i, o))
}

/// The three gradients of a dense layer.
#[derive(Clone, Debug)]
pub struct DenseGrads<T> {
    pub dx: T,
    pub dw: T,
    pub db: T,
}
