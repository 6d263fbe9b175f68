//! The `reference` backend: the ops' reference implementations (`src/ops/<op>/reference.rs`) on
//! host f32 tensors. Slow and plain on purpose; it exists to check the fast backends.

use crate::error::Result;
use crate::ops::BackendBase;
use crate::tensor::Tensor;

#[derive(Clone, Copy, Debug, Default)]
pub struct ReferenceBackend;

impl BackendBase for ReferenceBackend {
    type Tensor = Tensor;

    fn name(&self) -> &'static str {
        "reference"
    }
    fn upload(&self, t: &Tensor) -> Result<Tensor> {
        Ok(t.clone())
    }
    fn download(&self, t: &Tensor) -> Result<Tensor> {
        Ok(t.clone())
    }
    fn shape<'a>(&self, t: &'a Tensor) -> &'a [usize] {
        t.shape()
    }
}
