//! GEMM at a chosen [`Precision`]: FP32 is the strided SGEMM of [`super::gemm`] (the default
//! everywhere, unchanged); TF32, BF16 and FP16 run the tensor-core kernel of `gemm_tc.cu`
//! (`mma.sync`, FP32 accumulation). Same operands, strides and epilogue as [`gemm::gemm`]:
//! C (row-major, `ldc` = n) = alpha A B + beta C + bias.
//!
//! Alignment: none is asked of the caller. The tensor-core kernel reads both operands K-major
//! (A(m, k) and B(k, n) with unit k stride) with 16-byte-aligned rows, as its `cp.async` /
//! `ldmatrix` need. A TF32 operand that already is so (k stride 1, row stride a multiple of 4
//! values, element offset a multiple of 4: buffers start 256-byte aligned) is read in place and
//! rounded in registers. Any other operand, and every BF16/FP16 one, is first packed K-major
//! into a scratch buffer (rounded to the format, K zero-padded to whole 64-byte k-tiles): one
//! extra pass over it (O(mk) or O(kn) against the O(mnk) product) and a copy in device memory
//! (4 bytes a value in TF32, 2 in BF16/FP16). M, N and K edges are zero-filled by `cp.async`
//! and masked at the store.
//!
//! Needs sm_80 or later on a GPU (`mma` .tf32/.bf16, `cp.async`).

use std::sync::Arc;

use super::device::{Arg, DevBuf, Device, Dims, Elem};
use super::gemm::{self, Mat, gemm_splits};
use super::launch::grid_stride;
use crate::error::{Error, Result, invalid};

/// Arithmetic of a matrix product on the CUDA backend. Inputs are rounded to the format (TF32:
/// 10 explicit mantissa bits, round to nearest, ties away; BF16: 7 bits; FP16: 10 bits and a
/// 5-bit exponent, both round to nearest even); products and sums are FP32 in every case.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Precision {
    /// IEEE single precision throughout (CUDA cores).
    #[default]
    Fp32,
    /// TensorFloat-32 inputs (tensor cores).
    Tf32,
    /// bfloat16 inputs (tensor cores).
    Bf16,
    /// IEEE half-precision inputs (tensor cores); |values| past 65504 become inf.
    Fp16,
}

impl Precision {
    pub const ALL: [Precision; 4] = [
        Precision::Fp32,
        Precision::Tf32,
        Precision::Bf16,
        Precision::Fp16,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Precision::Fp32 => "fp32",
            Precision::Tf32 => "tf32",
            Precision::Bf16 => "bf16",
            Precision::Fp16 => "fp16",
        }
    }

    /// Unit roundoff of the input format: |round(x) - x| <= u |x| (for FP16, inside its normal
    /// range: below 2^-14 the error is absolute, up to 2^-25).
    pub fn unit_roundoff(self) -> f64 {
        match self {
            Precision::Fp32 => 2f64.powi(-24),
            Precision::Tf32 | Precision::Fp16 => 2f64.powi(-11),
            Precision::Bf16 => 2f64.powi(-8),
        }
    }

    /// The tensor-core kernel's format code (gemm_tc_pack) and entry point; None for FP32.
    fn tensor_core(self) -> Option<(i32, &'static str)> {
        match self {
            Precision::Fp32 => None,
            Precision::Tf32 => Some((0, "gemm_tc_tf32")),
            Precision::Bf16 => Some((1, "gemm_tc_bf16")),
            Precision::Fp16 => Some((2, "gemm_tc_f16")),
        }
    }
}

impl std::str::FromStr for Precision {
    type Err = Error;
    fn from_str(s: &str) -> Result<Precision> {
        Precision::ALL
            .into_iter()
            .find(|p| p.name() == s)
            .ok_or_else(|| {
                invalid(
                    "precision",
                    format!("{s:?}: expected fp32, tf32, bf16 or fp16"),
                )
            })
    }
}

impl std::fmt::Display for Precision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Block tile of gemm_tc.cu (TC_BM x TC_BN) and the bytes of one k-tile row (TC_ROW_BYTES).
const TILE: usize = 64;
const ROW_BYTES: usize = 64;

/// [`gemm::gemm`] at `precision`: FP32 calls it unchanged; the others run the tensor-core
/// kernel (packing the operands it cannot read in place) (split over K for grids smaller than the GPU, as the FP32 path does).
#[allow(clippy::too_many_arguments)]
pub fn gemm_with(
    precision: Precision,
    dev: &Arc<Device>,
    a: Mat,
    b: Mat,
    c: &DevBuf,
    c_off: usize,
    bias: Option<&DevBuf>,
    (m, n, k): (usize, usize, usize),
    alpha: f32,
    beta: f32,
) -> Result<()> {
    let Some((format, kernel)) = precision.tensor_core() else {
        return gemm::gemm(dev, a, b, c, c_off, bias, (m, n, k), alpha, beta);
    };
    if m == 0 || n == 0 {
        return Ok(());
    }
    let elem_bytes = if format == 0 { 4 } else { 2 };
    let per_tile = ROW_BYTES / elem_bytes;
    // At least one (zero-filled) k-tile, so k = 0 still runs the epilogue (C = beta C + bias).
    let ktiles = k.div_ceil(per_tile).max(1);
    let kp = ktiles * per_tile;
    // Rows m of A, then rows n of B read as its transpose (row n, then k).
    let a_op = operand(dev, a.buf, a.offset, (m, k, kp), a.stride, format)?;
    let b_stride = (b.stride.1, b.stride.0);
    let b_op = operand(dev, b.buf, b.offset, (n, k, kp), b_stride, format)?;

    let (tiles_n, tiles_m) = (n.div_ceil(TILE), m.div_ceil(TILE));
    // gemm_splits keeps >= 256 terms a split; the k-tiles each split takes are whole.
    let splits = gemm_splits(tiles_n * tiles_m, k);
    let per_split = ktiles.div_ceil(splits);
    let splits = ktiles.div_ceil(per_split);
    let partial = if splits > 1 {
        Some(dev.alloc(splits * m * n, Elem::F32)?)
    } else {
        None
    };
    dev.launch(
        kernel,
        Dims::new([tiles_n as u32, tiles_m as u32, splits as u32], [128, 1, 1]),
        &[
            a_op.arg(),
            b_op.arg(),
            Arg::At(c, c_off),
            Arg::opt(bias),
            partial.as_ref().map_or(Arg::Null(Elem::F32), Arg::Buf),
            Arg::Int(per_split),
            Arg::Int(m),
            Arg::Int(n),
            Arg::Int(k),
            Arg::Int(a_op.ld()),
            Arg::Int(b_op.ld()),
            Arg::Int(n),
            Arg::F32(alpha),
            Arg::F32(beta),
        ],
    )?;
    if let Some(part) = &partial {
        super::gemm::splitk_reduce(dev, part, c, c_off, bias, (m, n), splits, beta)?;
    }
    Ok(())
}

/// An operand as the kernel reads it: K-major rows of `ld` values.
enum Operand<'a> {
    /// The caller's buffer, read in place from element `offset`.
    InPlace {
        buf: &'a DevBuf,
        offset: usize,
        ld: usize,
    },
    /// A packed copy.
    Packed { buf: DevBuf, ld: usize },
}

impl Operand<'_> {
    fn arg(&self) -> Arg<'_> {
        match self {
            Operand::InPlace { buf, offset, .. } => Arg::At(buf, *offset),
            Operand::Packed { buf, .. } => Arg::Buf(buf),
        }
    }
    fn ld(&self) -> usize {
        match self {
            Operand::InPlace { ld, .. } | Operand::Packed { ld, .. } => *ld,
        }
    }
}

/// X(r, k) = X[off + r * stride.0 + k * stride.1] as the kernel reads it: in place when it can
/// (TF32, unit k stride, 16-byte-aligned rows), else packed by [`pack`] with rows of `kp`.
fn operand<'a>(
    dev: &Arc<Device>,
    x: &'a DevBuf,
    off: usize,
    (rows, k, kp): (usize, usize, usize),
    stride: (usize, usize),
    format: i32,
) -> Result<Operand<'a>> {
    // Rows 4 floats apart from an offset of 4 floats keep every row 16-byte aligned, the buffer
    // start being 256-byte aligned (cuMemAlloc; the emulator's allocations alike).
    if format == 0
        && (stride.1 == 1 || k == 1)
        && stride.0.is_multiple_of(4)
        && off.is_multiple_of(4)
    {
        return Ok(Operand::InPlace {
            buf: x,
            offset: off,
            ld: stride.0,
        });
    }
    let buf = pack(dev, x, off, (rows, k, kp), stride, format)?;
    Ok(Operand::Packed { buf, ld: kp })
}

/// X(r, k) = X[off + r * stride.0 + k * stride.1], r < rows, k < k: packed K-major with rows of
/// `kp` values in `format` (gemm_tc_pack), zeros past k. Also packs the convolutions'
/// weights (src/ops/conv2d/cuda_tc.rs).
pub(crate) fn pack(
    dev: &Arc<Device>,
    x: &DevBuf,
    off: usize,
    (rows, k, kp): (usize, usize, usize),
    stride: (usize, usize),
    format: i32,
) -> Result<DevBuf> {
    let words = if format == 0 { kp } else { kp / 2 };
    let out = dev.alloc(rows * words, Elem::F32)?;
    dev.launch(
        "gemm_tc_pack",
        grid_stride(rows * words),
        &[
            Arg::At(x, off),
            Arg::Buf(&out),
            Arg::Int(rows),
            Arg::Int(k),
            Arg::Int(kp),
            Arg::Int(stride.0),
            Arg::Int(stride.1),
            Arg::Int(format as usize),
        ],
    )?;
    Ok(out)
}
