//! Rust mirrors of the structs kernels take by value (`src/cuda/kernel_args.cuh`). build.rs
//! checks each against its header (same fields, same order, `int` = [`KInt`]); every field is a
//! [`KInt`], so a struct cannot be built from a size that does not fit a kernel `int`.

use super::device::{KInt, KernelStruct};
use crate::error::Result;

/// A sliding window over x [N, C, H, W] -> y [N, O, HO, WO] (convolution and pooling).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, bytemuck::Pod, bytemuck::Zeroable)]
pub struct Window {
    pub n: KInt,
    pub c: KInt,
    pub h: KInt,
    pub w: KInt,
    pub o: KInt,
    pub ho: KInt,
    pub wo: KInt,
    pub kh: KInt,
    pub kw: KInt,
    pub sh: KInt,
    pub sw: KInt,
    pub ph: KInt,
    pub pw: KInt,
}

impl KernelStruct for Window {
    const NAME: &'static str = "Window";
}

/// The sizes of a window, in the struct's order.
pub struct WindowSizes {
    pub input: [usize; 4],
    pub out: [usize; 3],
    pub kernel: (usize, usize),
    pub stride: (usize, usize),
    pub padding: (usize, usize),
}

impl Window {
    /// Every size range-checked for a kernel `int`; an error names `op`.
    pub fn new(op: &'static str, s: WindowSizes) -> Result<Window> {
        let k = |what: &str, v: usize| KInt::new(op, what, v);
        let [n, c, h, w] = s.input;
        let [o, ho, wo] = s.out;
        Ok(Window {
            n: k("batch", n)?,
            c: k("channels", c)?,
            h: k("height", h)?,
            w: k("width", w)?,
            o: k("output channels", o)?,
            ho: k("output height", ho)?,
            wo: k("output width", wo)?,
            kh: k("kernel height", s.kernel.0)?,
            kw: k("kernel width", s.kernel.1)?,
            sh: k("stride", s.stride.0)?,
            sw: k("stride", s.stride.1)?,
            ph: k("padding", s.padding.0)?,
            pw: k("padding", s.padding.1)?,
        })
    }
}
