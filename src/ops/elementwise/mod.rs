//! ReLU and the residual add. Shape rule: element-wise ops need identical shapes (no broadcasting:
//! nothing in ResNet50 or the head needs it, and an accidental broadcast hides bugs).

pub mod cpu;
pub mod cuda;
pub mod reference;

use crate::error::{Result, shape_err};
use crate::tensor::ShapeFmt;

pub fn check_same(op: &'static str, a: &[usize], b: &[usize]) -> Result<()> {
    if a != b {
        return Err(shape_err(
            op,
            format!(
                "operands must have the same shape, got {} and {}",
                ShapeFmt(a),
                ShapeFmt(b)
            ),
        ));
    }
    Ok(())
}
