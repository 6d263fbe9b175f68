//! Files in and out: safetensors tensors, PyTorch checkpoints (read without running their
//! code), atomic writes, the one CSV reader, the one folder walker and stable hashes.

pub mod atomic;
pub mod csv;
pub mod hash;
pub mod meminfo;
pub mod pth;
pub mod safetensors;
pub mod walk;
