//! Packed convolution weights, kept between calls. Packing a weight matrix into micro-panels
//! reads and writes every weight once; for ResNet50 that is ~100 MB per forward pass (9 ms on one
//! core, a fifth of a batch-1 forward here), repeated identically for every batch because the
//! backbone's weights never change. Entries are keyed by the tensor's contents identifier
//! ([`Tensor::version`], fresh on any mutation and never reused), so a changed weight can never
//! be served a stale packing. Least recently used entries go once the cache passes its budget.

use std::sync::{Arc, Mutex};

use super::conv_gemm::PackedA;
use crate::tensor::Tensor;

/// Room for ResNet50's packed weights (~100 MB) with margin; beyond it, oldest entries go.
const BUDGET_BYTES: usize = 256 << 20;

struct Entry {
    key: (u64, usize, usize),
    packed: Arc<PackedA>,
    bytes: usize,
}

static CACHE: Mutex<Vec<Entry>> = Mutex::new(Vec::new());

/// `w` viewed as [m, k], packed; from the cache when this exact content was packed before.
pub fn packed(w: &Tensor, m: usize, k: usize) -> Arc<PackedA> {
    let key = (w.version(), m, k);
    {
        let mut cache = CACHE.lock().unwrap();
        if let Some(i) = cache.iter().position(|e| e.key == key) {
            // Most recently used last.
            let e = cache.remove(i);
            let p = e.packed.clone();
            cache.push(e);
            return p;
        }
    }
    // Pack outside the lock: other threads' lookups should not wait for it.
    let packed = Arc::new(PackedA::pack(w.data(), m, k));
    let bytes = packed.bytes();
    let mut cache = CACHE.lock().unwrap();
    if bytes <= BUDGET_BYTES {
        let mut total: usize = cache.iter().map(|e| e.bytes).sum::<usize>() + bytes;
        while total > BUDGET_BYTES && !cache.is_empty() {
            total -= cache.remove(0).bytes;
        }
        cache.push(Entry {
            key,
            packed: packed.clone(),
            bytes,
        });
    }
    packed
}
