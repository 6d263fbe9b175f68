//! The ops, one folder each; the unit of change of the engine. A folder holds everything of its
//! op:
//! - `mod.rs`: parameters, shape rules, the op's kernel trait (`<Op>Kernels`, what a backend
//!   implements, given inputs that are already checked) and its entry trait (`<Op>Ops`, the
//!   checked entry points every caller uses, implemented once for every backend);
//! - `reference.rs`: plain loops with f64 accumulation, generic over [`Real`](crate::real::Real)
//!   so gradient checks run in f64, and the `reference` backend's kernels;
//! - `cpu.rs`: the fast multithreaded kernels of the `cpu` backend;
//! - `cuda.rs` + `<op>.cu`: the CUDA kernels and their launches (build.rs finds every `.cu`);
//! - `tests.rs`: one suite, generic over the backend, run on every backend (see [`crate::testing`]).
//!
//! [`Backend`] is the sum of the op traits, so adding an op is: its folder, plus one line here for
//! the module and one in [`Backend`] and [`prelude`].

pub mod adam;
pub mod batchnorm;
pub mod channels_last;
pub mod conv2d;
pub mod dense;
pub mod dropout;
pub mod elementwise;
pub mod grad_scale;
pub mod host_buf;
pub mod loss;
pub mod pool;
pub mod sgd;

use crate::error::Result;
use crate::tensor::Tensor;

/// What every backend has besides its kernels: a tensor type living wherever it computes, and
/// the only two ways data crosses to and from the host.
pub trait BackendBase: Send + Sync {
    /// A tensor living wherever this backend computes.
    type Tensor: Clone + Send + Sync + std::fmt::Debug;

    fn name(&self) -> &'static str;
    fn upload(&self, t: &Tensor) -> Result<Self::Tensor>;
    fn download(&self, t: &Self::Tensor) -> Result<Tensor>;
    fn shape<'a>(&self, t: &'a Self::Tensor) -> &'a [usize];
    /// The same values under another shape with as many elements (a view where the backend can
    /// share storage, a copy otherwise).
    fn reshape(&self, t: &Self::Tensor, shape: &[usize]) -> Result<Self::Tensor>;
    /// How activations are stored: FP32 on the host backends; on CUDA, the 16-bit format of
    /// the convolutions at `--precision bf16|fp16` (`CudaBackend::activation_storage`).
    fn activation_storage(&self) -> crate::cuda::Elem {
        crate::cuda::Elem::F32
    }
    /// Bytes the values of `t` occupy: 4 a value on the host backends; the CUDA backend's
    /// 16-bit activations take 2 (what [`crate::model::net::Tape`] counts).
    fn stored_bytes(&self, t: &Self::Tensor) -> usize {
        4 * self.shape(t).iter().product::<usize>()
    }
    /// Bytes of memory this backend can still allocate (device memory, or the host's), when
    /// known: what training checks a batch against before it starts.
    fn free_memory(&self) -> Option<u64> {
        None
    }
    /// Host memory for a batch of `len` floats headed to this backend through
    /// [`BackendBase::upload_host`]: pinned where the backend gains from it (CUDA), plain
    /// otherwise. Allocating it may be slow; reuse it.
    fn host_buffer(&self, len: usize) -> Result<host_buf::HostBuf> {
        Ok(host_buf::HostBuf::plain(len))
    }
    /// The first `shape.iter().product()` floats of `buf` as a tensor of `shape`. The copy may
    /// still be running when this returns (CUDA, from pinned memory): `buf` must not be written
    /// before [`BackendBase::host_fence`] (or a download, which waits for it).
    fn upload_host(&self, buf: &host_buf::HostBuf, shape: &[usize]) -> Result<Self::Tensor> {
        let n = shape.iter().product::<usize>();
        self.upload(&Tensor::new(shape, buf[..n].to_vec())?)
    }
    /// Waits until every copy out of a host buffer has finished.
    fn host_fence(&self) -> Result<()> {
        Ok(())
    }
    /// The arithmetic of this backend's matrix products (`--precision`): FP32 on the host
    /// backends; the CUDA backend's own choice. Results that outlive a run and depend on it
    /// (feature caches, loss scaling) ask here.
    fn precisions(&self) -> crate::cuda::Precisions {
        crate::cuda::Precisions::default()
    }
    /// Runs `f` (a whole forward or backward pass) where this backend's kernels are launched
    /// from best. The host backends run it on a worker of their thread pool: each parallel
    /// region of a pass (one or more per op) launched from outside the pool hands its work to
    /// sleeping workers and puts the caller to sleep until they finish, two wake-ups per
    /// region (measured: 63 -> 57 ms per batch-1 ResNet50 forward on one thread, context
    /// switches per forward ~350 -> ~75 on two); launched from a
    /// worker, the region starts at once on the caller's own thread. CUDA runs it in place.
    fn run_on_workers<R: Send, F: FnOnce() -> R + Send>(&self, f: F) -> R {
        f()
    }
}

/// [`BackendBase`] for a backend computing on host [`Tensor`]s (`reference`, `cpu`): upload and
/// download are copies, so a caller can never alias a backend's tensor.
#[macro_export]
macro_rules! host_backend_base {
    ($backend:ty, $name:literal) => {
        impl $crate::ops::BackendBase for $backend {
            type Tensor = $crate::tensor::Tensor;

            fn name(&self) -> &'static str {
                $name
            }
            fn upload(
                &self,
                t: &$crate::tensor::Tensor,
            ) -> $crate::error::Result<$crate::tensor::Tensor> {
                Ok(t.clone())
            }
            fn download(
                &self,
                t: &$crate::tensor::Tensor,
            ) -> $crate::error::Result<$crate::tensor::Tensor> {
                Ok(t.clone())
            }
            fn shape<'a>(&self, t: &'a $crate::tensor::Tensor) -> &'a [usize] {
                t.shape()
            }
            fn reshape(
                &self,
                t: &$crate::tensor::Tensor,
                shape: &[usize],
            ) -> $crate::error::Result<$crate::tensor::Tensor> {
                t.clone().reshape(shape)
            }
            fn free_memory(&self) -> Option<u64> {
                $crate::io::meminfo::host_available()
            }
            // One copy into the tensor (the default would copy twice).
            fn upload_host(
                &self,
                buf: &$crate::ops::host_buf::HostBuf,
                shape: &[usize],
            ) -> $crate::error::Result<$crate::tensor::Tensor> {
                let n = shape.iter().product::<usize>();
                $crate::tensor::Tensor::new(shape, buf[..n].to_vec())
            }
            fn run_on_workers<R: Send, F: FnOnce() -> R + Send>(&self, f: F) -> R {
                $crate::cpu::par::on_pool(f)
            }
        }
    };
}

/// Everything model, training and data code may compute: the sum of the ops' entry traits.
/// Implemented for every type that implements all the ops' kernel traits; code written against
/// it never knows where it runs.
pub trait Backend:
    BackendBase
    + adam::AdamOps
    + batchnorm::BatchNormOps
    + channels_last::ChannelsLastOps
    + conv2d::Conv2dOps
    + dense::DenseOps
    + dropout::DropoutOps
    + elementwise::ElementwiseOps
    + grad_scale::GradScaleOps
    + loss::LossOps
    + pool::PoolOps
    + sgd::SgdOps
{
}

impl<B> Backend for B where
    B: BackendBase
        + adam::AdamOps
        + batchnorm::BatchNormOps
        + channels_last::ChannelsLastOps
        + conv2d::Conv2dOps
        + dense::DenseOps
        + dropout::DropoutOps
        + elementwise::ElementwiseOps
        + grad_scale::GradScaleOps
        + loss::LossOps
        + pool::PoolOps
        + sgd::SgdOps
{
}

/// The entry traits, for code that calls ops on a concrete backend type
/// (`use skinengine::ops::prelude::*;`). Generic code bounded by [`Backend`] needs no import.
pub mod prelude {
    pub use super::adam::AdamOps;
    pub use super::batchnorm::BatchNormOps;
    pub use super::channels_last::ChannelsLastOps;
    pub use super::conv2d::Conv2dOps;
    pub use super::dense::DenseOps;
    pub use super::dropout::DropoutOps;
    pub use super::elementwise::ElementwiseOps;
    pub use super::grad_scale::GradScaleOps;
    pub use super::loss::LossOps;
    pub use super::pool::PoolOps;
    pub use super::sgd::SgdOps;
    pub use super::{Backend, BackendBase};
}
