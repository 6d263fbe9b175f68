//! Files in and out: safetensors tensors, atomic writes.

pub mod atomic;
pub mod safetensors;
