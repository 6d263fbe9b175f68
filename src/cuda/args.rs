//! The pieces of a kernel launch that need no device: buffer element types, launch dimensions,
//! range-checked `int`s and structs passed by value (`super::device::Arg` puts them together
//! with buffers, as [`super::Device::launch`] checks them against the signature build.rs parsed
//! from the kernel's source).

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
    /// The format code a kernel taking this buffer as an activation (`const void*`, `act.cuh`)
    /// gets beside it: 0 FP32, 1 bf16, 2 IEEE half (an int buffer is refused by the launch
    /// check before its code matters).
    pub fn act_format(self) -> usize {
        match self {
            Elem::F32 | Elem::I32 => 0,
            Elem::Bf16 => 1,
            Elem::F16 => 2,
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

/// The largest count a kernel may take as an `int`. Grid-stride loops step up to 65535 blocks x
/// 256 threads past their last index, and that must not overflow either.
pub const MAX_KERNEL_INT: usize = i32::MAX as usize - 65_535 * 256;

/// Whether a launch's argument codes (one per argument, `Arg::code`) fit a kernel's signature:
/// one code per argument (a struct's `{Name}` is one), equal, except that `V` (an activation,
/// `void*`) takes a float or a 16-bit buffer.
pub(crate) fn signature_matches(sig: &str, codes: impl Iterator<Item = String>) -> bool {
    let mut rest = sig;
    for code in codes {
        let Some(first) = rest.chars().next() else {
            return false;
        };
        let len = if first == '{' {
            rest.find('}').map_or(rest.len(), |i| i + 1)
        } else {
            1
        };
        let want = &rest[..len];
        if !(want == code || (want == "V" && (code == "F" || code == "H"))) {
            return false;
        }
        rest = &rest[len..];
    }
    rest.is_empty()
}
