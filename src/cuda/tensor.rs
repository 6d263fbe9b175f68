//! The CUDA backend's tensor: a shape and a device buffer.
//!
//! Clones share the buffer (cheap, like passing a reference); an op that updates a tensor in place
//! (Adam, running statistics) first takes a private copy if the buffer is shared, so a clone never
//! changes behind its owner's back — the same value semantics as the host `Tensor`.

use std::sync::Arc;

use super::device::{Arg, DevBuf, Device, Elem};
use crate::error::Result;
use crate::tensor::Tensor;

#[derive(Clone, Debug)]
pub struct CudaTensor {
    shape: Vec<usize>,
    buf: Arc<DevBuf>,
}

impl CudaTensor {
    /// An uninitialised float tensor of `shape` on `dev`.
    pub fn alloc(dev: &Arc<Device>, shape: &[usize]) -> Result<CudaTensor> {
        let len = shape.iter().product();
        Ok(CudaTensor {
            shape: shape.to_vec(),
            buf: Arc::new(dev.alloc(len, Elem::F32)?),
        })
    }
    /// An uninitialised tensor of `shape` stored as `elem` (16-bit formats: channels-last
    /// activations, `ops::channels_last`).
    pub fn alloc_as(dev: &Arc<Device>, shape: &[usize], elem: Elem) -> Result<CudaTensor> {
        let len = shape.iter().product();
        Ok(CudaTensor {
            shape: shape.to_vec(),
            buf: Arc::new(dev.alloc(len, elem)?),
        })
    }
    pub fn upload(dev: &Arc<Device>, t: &Tensor) -> Result<CudaTensor> {
        Ok(CudaTensor {
            shape: t.shape().to_vec(),
            buf: Arc::new(dev.upload_f32(t.data())?),
        })
    }
    /// `t` stored as `elem`: FP32 as is, or each value rounded to nearest even to bf16 / f16
    /// (how a 16-bit activation would hold it).
    pub fn upload_as(dev: &Arc<Device>, t: &Tensor, elem: Elem) -> Result<CudaTensor> {
        let bits: Vec<u16> = match elem {
            Elem::Bf16 => t
                .data()
                .iter()
                .map(|&v| half::bf16::from_f32(v).to_bits())
                .collect(),
            Elem::F16 => t
                .data()
                .iter()
                .map(|&v| half::f16::from_f32(v).to_bits())
                .collect(),
            _ => return CudaTensor::upload(dev, t),
        };
        Ok(CudaTensor {
            shape: t.shape().to_vec(),
            buf: Arc::new(dev.upload_u16(&bits, elem)?),
        })
    }
    /// A tensor of `shape` from host floats, copied asynchronously when `data` is pinned
    /// ([`Device::upload_f32_async`]: `data` must not change until the next synchronisation).
    pub fn upload_async(dev: &Arc<Device>, data: &[f32], shape: &[usize]) -> Result<CudaTensor> {
        debug_assert_eq!(data.len(), shape.iter().product::<usize>());
        Ok(CudaTensor {
            shape: shape.to_vec(),
            buf: Arc::new(dev.upload_f32_async(data)?),
        })
    }
    /// The values as host floats; 16-bit storage is widened exactly (every bf16 / f16 value
    /// is an f32 value).
    pub fn download(&self) -> Result<Tensor> {
        let dev = self.buf.device();
        let data = match self.buf.elem() {
            Elem::Bf16 => dev
                .download_u16(&self.buf)?
                .into_iter()
                .map(|b| half::bf16::from_bits(b).to_f32())
                .collect(),
            Elem::F16 => dev
                .download_u16(&self.buf)?
                .into_iter()
                .map(|b| half::f16::from_bits(b).to_f32())
                .collect(),
            _ => dev.download_f32(&self.buf)?,
        };
        Tensor::new(&self.shape, data)
    }
    /// The two kernel arguments of an activation (`act.cuh`): the buffer, as `void*`, and its
    /// format code, always the buffer's own.
    pub fn act(&self) -> [Arg<'_>; 2] {
        [Arg::Buf(&self.buf), Arg::Int(self.buf.elem().act_format())]
    }
    /// An optional activation's arguments: null and FP32 when absent.
    pub fn opt_act(t: Option<&CudaTensor>) -> [Arg<'_>; 2] {
        t.map_or([Arg::Null(Elem::F32), Arg::Int(0)], CudaTensor::act)
    }
    /// How the values are stored.
    pub fn elem(&self) -> Elem {
        self.buf.elem()
    }
    pub fn shape(&self) -> &[usize] {
        &self.shape
    }
    pub fn len(&self) -> usize {
        self.buf.len()
    }
    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }
    pub fn buf(&self) -> &DevBuf {
        &self.buf
    }
    pub fn device(&self) -> &Arc<Device> {
        self.buf.device()
    }
    /// The buffer, made private to this tensor first if a clone shares it, for writing in
    /// place: whatever was derived from its contents ([`Device::derived`]) is released.
    pub fn buf_mut(&mut self) -> Result<&DevBuf> {
        if Arc::get_mut(&mut self.buf).is_none() {
            let copy = self.buf.device().duplicate(&self.buf)?;
            self.buf = Arc::new(copy);
        }
        self.buf.device().forget_derived(self.buf.ptr());
        Ok(&self.buf)
    }
    /// Errors unless the shape is `shape` (same message as the host tensor's).
    pub fn expect_shape(&self, op: &'static str, what: &str, shape: &[usize]) -> Result<()> {
        crate::tensor::expect_shape(op, what, &self.shape, shape)
    }
    /// The same data under another shape with as many elements.
    pub fn reshaped(&self, shape: &[usize]) -> CudaTensor {
        debug_assert_eq!(shape.iter().product::<usize>(), self.len());
        CudaTensor {
            shape: shape.to_vec(),
            buf: self.buf.clone(),
        }
    }
}
