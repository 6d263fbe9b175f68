//! Reading and writing safetensors files (the `safetensors` crate parses and validates the
//! header and offsets; this module converts dtypes and turns its errors into ours).
//! f32, f16 and bf16 tensors are read as f32 (`half` does the conversion).

use crate::error::{Result, file_err};
use crate::io::atomic::write_atomic;
use crate::tensor::Tensor;
use safetensors::{Dtype, SafeTensors, tensor::TensorView};
use std::collections::{BTreeMap, HashMap};
use std::path::Path;

/// Named f32 tensors plus the file's string metadata.
#[derive(Clone, Debug, Default)]
pub struct TensorFile {
    pub tensors: BTreeMap<String, Tensor>,
    pub metadata: HashMap<String, String>,
}

fn to_f32(path: &Path, name: &str, view: &TensorView) -> Result<Vec<f32>> {
    let data = view.data();
    let conv = |width: usize, f: &dyn Fn([u8; 2]) -> f32| -> Vec<f32> {
        data.chunks_exact(width).map(|c| f([c[0], c[1]])).collect()
    };
    Ok(match view.dtype() {
        Dtype::F32 => data
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect(),
        Dtype::F16 => conv(2, &|b| half::f16::from_le_bytes(b).to_f32()),
        Dtype::BF16 => conv(2, &|b| half::bf16::from_le_bytes(b).to_f32()),
        other => {
            return Err(file_err(
                path,
                format!(
                    "tensor '{name}' has dtype {other:?}; only F32, F16 and BF16 are supported"
                ),
            ));
        }
    })
}

/// Reads every tensor whose name passes `keep` (all dtypes are checked only for kept tensors).
pub fn read_filtered(path: &Path, keep: impl Fn(&str) -> bool) -> Result<TensorFile> {
    let bytes = std::fs::read(path).map_err(|e| file_err(path, format!("cannot read: {e}")))?;
    let st = SafeTensors::deserialize(&bytes)
        .map_err(|e| file_err(path, format!("not a valid safetensors file: {e}")))?;
    let mut out = TensorFile::default();
    let (_, meta) = SafeTensors::read_metadata(&bytes)
        .map_err(|e| file_err(path, format!("not a valid safetensors file: {e}")))?;
    if let Some(m) = meta.metadata() {
        out.metadata = m.clone();
    }
    for (name, view) in st.tensors() {
        if !keep(&name) {
            continue;
        }
        let data = to_f32(path, &name, &view)?;
        let t = Tensor::new(view.shape(), data)
            .map_err(|e| file_err(path, format!("tensor '{name}': {e}")))?;
        out.tensors.insert(name, t);
    }
    Ok(out)
}

pub fn read(path: &Path) -> Result<TensorFile> {
    read_filtered(path, |_| true)
}

/// Writes f32 tensors and metadata atomically.
pub fn write(
    path: &Path,
    tensors: &[(&str, &Tensor)],
    metadata: &HashMap<String, String>,
) -> Result<()> {
    let views: Vec<(String, TensorView)> = tensors
        .iter()
        .map(|(name, t)| {
            TensorView::new(
                Dtype::F32,
                t.shape().to_vec(),
                bytemuck::cast_slice(t.data()),
            )
            .map(|v| (name.to_string(), v))
            .map_err(|e| file_err(path, format!("tensor '{name}': {e}")))
        })
        .collect::<Result<_>>()?;
    let meta = (!metadata.is_empty()).then(|| metadata.clone());
    let bytes = safetensors::serialize(views, meta)
        .map_err(|e| file_err(path, format!("cannot serialise: {e}")))?;
    write_atomic(path, &bytes)
}
