//! What a kernel launch is made of: buffer element types, launch dimensions, range-checked
//! `int`s, structs passed by value, and [`Arg`], one argument as [`super::Device::launch`]
//! checks it against the signature build.rs parsed from the kernel's source.

use super::device::DevBuf;
use crate::error::Result;

/// Element type of a buffer; kernels take `float*`, `int*` or (either 16-bit format)
/// `unsigned short*`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Elem {
    F32,
    I32,
    /// bfloat16 bits (channels-last activations at `--precision bf16`).
    Bf16,
    /// IEEE binary16 bits (channels-last activations at `--precision fp16`).
    F16,
}

impl Elem {
    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            Elem::F32 | Elem::I32 => 4,
            Elem::Bf16 | Elem::F16 => 2,
        }
    }
}

/// Grid, block and dynamic shared memory of one launch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Dims {
    pub grid: [u32; 3],
    pub block: [u32; 3],
    pub shared_bytes: u32,
}

impl Dims {
    /// A 1-d launch covering `n` items with `threads` per block.
    pub fn linear(n: usize, threads: u32) -> Dims {
        let blocks = n.div_ceil(threads as usize).max(1);
        Dims {
            grid: [blocks as u32, 1, 1],
            block: [threads, 1, 1],
            shared_bytes: 0,
        }
    }
    pub fn new(grid: [u32; 3], block: [u32; 3]) -> Dims {
        Dims {
            grid,
            block,
            shared_bytes: 0,
        }
    }
}

/// A kernel `int` that is known to fit: made only by [`KInt::new`], which checks the range, so a
/// geometry struct built from these cannot carry a silently truncated size.
#[repr(transparent)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, bytemuck::Pod, bytemuck::Zeroable)]
pub struct KInt(i32);

impl KInt {
    /// `v` as a kernel `int`, or a shape error naming the op and what is too large.
    pub fn new(op: &'static str, what: &str, v: usize) -> Result<KInt> {
        if v > MAX_KERNEL_INT {
            return Err(crate::error::shape_err(
                op,
                format!(
                    "{what} {v} is more than the CUDA kernels' 32-bit indices allow; split the batch"
                ),
            ));
        }
        Ok(KInt(v as i32))
    }
    pub fn get(self) -> i32 {
        self.0
    }
}

/// A `#[repr(C)]` struct passed to kernels by value, mirrored field for field by a `struct` of
/// the same name in a `.cuh` header (build.rs checks the two agree).
pub trait KernelStruct: bytemuck::Pod {
    const NAME: &'static str;
}

/// One kernel argument. Buffers are checked for element type, integers for range and structs
/// for name against the kernel's signature at launch.
#[derive(Clone, Copy)]
pub enum Arg<'a> {
    Buf(&'a DevBuf),
    /// A pointer `offset` elements into a buffer (one image of a batch, say).
    At(&'a DevBuf, usize),
    /// A null pointer of the given element type (an absent optional input).
    Null(Elem),
    F32(f32),
    F64(f64),
    /// A count, size, index or flag for an `int` parameter: the launch refuses values past
    /// [`MAX_KERNEL_INT`], so no call site can truncate one.
    Int(usize),
    /// A `long long` parameter.
    I64(i64),
    U32(u32),
    /// A struct by value: (its name, its bytes).
    Struct(&'static str, &'a [u8]),
}

impl<'a> Arg<'a> {
    /// An optional float buffer: the buffer, or a null pointer.
    pub fn opt(b: Option<&'a DevBuf>) -> Arg<'a> {
        b.map_or(Arg::Null(Elem::F32), Arg::Buf)
    }
    /// A geometry struct by value.
    pub fn by_value<T: KernelStruct>(v: &'a T) -> Arg<'a> {
        Arg::Struct(T::NAME, bytemuck::bytes_of(v))
    }
    /// A boolean flag as an `int` 0 / 1.
    pub fn flag(b: bool) -> Arg<'a> {
        Arg::Int(b as usize)
    }
    pub(super) fn code(&self) -> String {
        let elem = |e: Elem| match e {
            Elem::F32 => 'F',
            Elem::I32 => 'I',
            // The launch check cannot tell the two 16-bit formats apart: kernels taking them
            // also take the format code, and their host code passes the buffer's own.
            Elem::Bf16 | Elem::F16 => 'H',
        };
        let c = match self {
            Arg::Buf(b) | Arg::At(b, _) => elem(b.elem()),
            Arg::Null(e) => elem(*e),
            Arg::F32(_) => 'f',
            Arg::F64(_) => 'd',
            Arg::Int(_) => 'i',
            Arg::U32(_) => 'u',
            Arg::I64(_) => 'l',
            Arg::Struct(name, _) => return format!("{{{name}}}"),
        };
        c.to_string()
    }
    /// The value as the bytes cuLaunchKernel reads (little endian), in 8-byte words.
    pub(super) fn slot(&self) -> Vec<u64> {
        match *self {
            Arg::Buf(b) => vec![b.ptr()],
            Arg::At(b, off) => vec![b.ptr() + (b.elem().size() * off) as u64],
            Arg::Null(_) => vec![0],
            Arg::F32(v) => vec![v.to_bits() as u64],
            Arg::F64(v) => vec![v.to_bits()],
            Arg::Int(v) => vec![v as u32 as u64],
            Arg::U32(v) => vec![v as u64],
            Arg::I64(v) => vec![v as u64],
            Arg::Struct(_, bytes) => {
                let mut words = vec![0u64; bytes.len().div_ceil(8)];
                bytemuck::cast_slice_mut::<u64, u8>(&mut words)[..bytes.len()]
                    .copy_from_slice(bytes);
                words
            }
        }
    }
}

/// The largest count a kernel may take as an `int`. Grid-stride loops step up to 65535 blocks x
/// 256 threads past their last index, and that must not overflow either.
pub const MAX_KERNEL_INT: usize = i32::MAX as usize - 65_535 * 256;
