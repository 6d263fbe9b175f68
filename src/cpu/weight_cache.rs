//! Packed convolution weights, kept between calls. Packing a weight matrix into micro-panels
//! reads and writes every weight once; for ResNet50 that is ~100 MB per forward pass (9 ms on one
//! core, a fifth of a batch-1 forward here), repeated identically for every batch because the
//! backbone's weights never change. Entries are keyed by the tensor's contents identifier
//! ([`Tensor::version`], fresh on any mutation and never reused), so a changed weight can never
//! be served a stale packing. Least recently used entries go once the cache passes its budget.
//!
//! One [`WeightCache`] per packed format: the direct kernel's panels ([`packed`]), Winograd's
//! transformed weights and the channels-last kernel's panels each keep their own.

use std::sync::{Arc, Mutex};

use super::conv_gemm::PackedA;
use crate::tensor::Tensor;

/// (content version of the weight tensor, and two sizes the packing depends on).
pub type Key = (u64, usize, usize);

struct Entry<T> {
    key: Key,
    value: Arc<T>,
    bytes: usize,
}

/// Weights in one packed format `T`, least recently used last out, within a byte budget.
pub struct WeightCache<T> {
    entries: Mutex<Vec<Entry<T>>>,
    budget: usize,
}

impl<T> WeightCache<T> {
    pub const fn new(budget: usize) -> Self {
        WeightCache {
            entries: Mutex::new(Vec::new()),
            budget,
        }
    }

    /// The entry of `key`, or `make()` stored under it (`bytes` of memory; larger than the
    /// whole budget, it is returned but not kept). `make` runs outside the lock: other
    /// threads' lookups do not wait for it.
    pub fn get(&self, key: Key, make: impl FnOnce() -> (T, usize)) -> Arc<T> {
        {
            let mut cache = self.entries.lock().unwrap();
            if let Some(i) = cache.iter().position(|e| e.key == key) {
                // Most recently used last.
                let e = cache.remove(i);
                let v = e.value.clone();
                cache.push(e);
                return v;
            }
        }
        let (value, bytes) = make();
        let value = Arc::new(value);
        let mut cache = self.entries.lock().unwrap();
        if bytes <= self.budget {
            let mut total: usize = cache.iter().map(|e| e.bytes).sum::<usize>() + bytes;
            while total > self.budget && !cache.is_empty() {
                total -= cache.remove(0).bytes;
            }
            cache.push(Entry {
                key,
                value: value.clone(),
                bytes,
            });
        }
        value
    }
}

/// Room for ResNet50's packed weights (~100 MB) with margin; beyond it, oldest entries go.
static DIRECT: WeightCache<PackedA> = WeightCache::new(256 << 20);

/// `w` viewed as [m, k], packed for the direct kernel; from the cache when this exact content
/// was packed before.
pub fn packed(w: &Tensor, m: usize, k: usize) -> Arc<PackedA> {
    DIRECT.get((w.version(), m, k), || {
        let p = PackedA::pack(w.data(), m, k);
        let bytes = p.bytes();
        (p, bytes)
    })
}
