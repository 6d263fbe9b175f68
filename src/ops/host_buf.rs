//! Host memory for batches on their way to a backend (issue 13): plain memory for the host
//! backends, page-locked ("pinned") memory for CUDA. A copy from pageable memory is staged by
//! the driver through its own pinned bounce buffer and blocks the caller; from pinned memory it
//! is one DMA at full PCIe speed that can run while the host goes on decoding the next batch.
//! Batches are decoded straight into these buffers (`data::prefetch::decode_ahead_host`) and the buffers
//! are reused batch after batch, so pinning (slow: it maps pages) happens a few times per run.

use std::ops::{Deref, DerefMut};
use std::ptr::NonNull;
use std::sync::Arc;

/// Frees pinned memory: the driver that allocated it.
pub trait PinnedFree: Send + Sync {
    /// Releases `bytes` bytes at `ptr`, which this allocator gave out and nobody uses any more.
    fn free_pinned(&self, ptr: *mut u8, bytes: usize);
}

/// `len` floats of host memory, plain or pinned; reads and writes as a `[f32]`.
pub enum HostBuf {
    Plain(Vec<f32>),
    Pinned(Pinned),
}

/// Pinned memory owned by a [`HostBuf`], returned to its allocator when dropped.
pub struct Pinned {
    ptr: NonNull<f32>,
    len: usize,
    owner: Arc<dyn PinnedFree>,
}

// SAFETY: the memory is owned exclusively by this value (like a Vec); the allocator handle is
// Send + Sync.
unsafe impl Send for Pinned {}
unsafe impl Sync for Pinned {}

impl Pinned {
    /// Takes ownership of `len` floats at `ptr` and zeroes them (so they read as initialised).
    ///
    /// # Safety
    /// `ptr` must point at `len * 4` writable bytes, aligned for f32, that nothing else uses,
    /// allocated by `owner`, which frees them when this value drops.
    pub unsafe fn new(ptr: NonNull<f32>, len: usize, owner: Arc<dyn PinnedFree>) -> Pinned {
        // SAFETY: the caller guarantees len floats of writable memory at ptr.
        unsafe { std::ptr::write_bytes(ptr.as_ptr(), 0, len) };
        Pinned { ptr, len, owner }
    }
}

impl Drop for Pinned {
    fn drop(&mut self) {
        self.owner
            .free_pinned(self.ptr.as_ptr() as *mut u8, self.len * 4);
    }
}

impl HostBuf {
    /// `len` zeroed floats of ordinary memory.
    pub fn plain(len: usize) -> HostBuf {
        HostBuf::Plain(vec![0.0; len])
    }

    pub fn is_pinned(&self) -> bool {
        matches!(self, HostBuf::Pinned(_))
    }
}

impl Deref for HostBuf {
    type Target = [f32];
    fn deref(&self) -> &[f32] {
        match self {
            HostBuf::Plain(v) => v,
            // SAFETY: len initialised floats owned by this value (Pinned::new zeroed them).
            HostBuf::Pinned(p) => unsafe { std::slice::from_raw_parts(p.ptr.as_ptr(), p.len) },
        }
    }
}

impl DerefMut for HostBuf {
    fn deref_mut(&mut self) -> &mut [f32] {
        match self {
            HostBuf::Plain(v) => v,
            // SAFETY: as in deref; &mut self makes the access exclusive.
            HostBuf::Pinned(p) => unsafe { std::slice::from_raw_parts_mut(p.ptr.as_ptr(), p.len) },
        }
    }
}

impl std::fmt::Debug for HostBuf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "HostBuf({} floats, {})",
            self.len(),
            if self.is_pinned() { "pinned" } else { "plain" }
        )
    }
}

#[cfg(test)]
mod tests {
    use crate::ops::host_buf::{HostBuf, Pinned, PinnedFree};
    use std::ptr::NonNull;
    use std::sync::{Arc, Mutex};

    /// Counts what it frees, from the standard allocator.
    #[derive(Default)]
    struct Counting(Mutex<Vec<usize>>);
    impl PinnedFree for Counting {
        fn free_pinned(&self, ptr: *mut u8, bytes: usize) {
            self.0.lock().unwrap().push(bytes);
            let layout = std::alloc::Layout::from_size_align(bytes, 64).unwrap();
            // SAFETY: allocated below with this layout.
            unsafe { std::alloc::dealloc(ptr, layout) };
        }
    }

    #[test]
    fn pinned_buffers_read_write_as_slices_and_are_freed_once_with_their_size() {
        let owner = Arc::new(Counting::default());
        {
            let layout = std::alloc::Layout::from_size_align(10 * 4, 64).unwrap();
            // SAFETY: non-zero size.
            let p = NonNull::new(unsafe { std::alloc::alloc(layout) } as *mut f32).unwrap();
            // SAFETY: 40 fresh bytes, freed by owner.
            let mut b = HostBuf::Pinned(unsafe { Pinned::new(p, 10, owner.clone()) });
            assert!(b.is_pinned());
            assert_eq!(&b[..], &[0.0; 10]);
            b[3] = 2.5;
            b[9] = -1.0;
            assert_eq!((b[3], b[9], b.iter().sum::<f32>()), (2.5, -1.0, 1.5));
        }
        assert_eq!(*owner.0.lock().unwrap(), vec![40]);
        let p = HostBuf::plain(4);
        assert!(!p.is_pinned() && p.len() == 4);
    }
}
