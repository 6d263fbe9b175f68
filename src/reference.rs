//! The `reference` backend: the ops' reference implementations (`src/ops/<op>/reference.rs`) on
//! host f32 tensors. Slow and plain on purpose; it exists to check the fast backends.

#[derive(Clone, Copy, Debug, Default)]
pub struct ReferenceBackend;

crate::host_backend_base!(ReferenceBackend, "reference");
