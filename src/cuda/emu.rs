//! The CPU emulator driver: runs the kernel sources (`src/ops/*/*.cu`, `src/cuda/*.cu`) compiled as C++ by build.rs
//! (`emu/cuda_emu.h`, `emu/runtime.cpp`). Memory is host memory aligned like `cuMemAlloc`'s
//! (256 bytes), poisoned with NaN on allocation so a kernel that leaves outputs unwritten fails
//! its tests instead of passing on zeros.

use std::alloc::Layout;
use std::ffi::{CString, c_char, c_void};
use std::sync::Arc;

use super::device::{Device, Dims, Driver};
use crate::error::{Error, Result};
use crate::kernels::KERNELS;

unsafe extern "C" {
    fn emu_launch(
        name: *const c_char,
        sig: *const c_char,
        grid: *const u32,
        block: *const u32,
        dyn_shared: u32,
        args: *mut *mut c_void,
        threads: u32,
        err: *mut c_char,
        err_len: usize,
    ) -> i32;
}

const ALIGN: usize = 256;

struct EmuDriver {
    threads: u32,
}

fn err(detail: String) -> Error {
    Error::Backend {
        backend: "cuda-emulator",
        detail,
    }
}

impl Driver for EmuDriver {
    /// The emulator allocates host memory.
    fn free_bytes(&self) -> Option<u64> {
        crate::io::meminfo::host_available()
    }
    fn describe(&self) -> String {
        format!(
            "CUDA emulator on the CPU ({} threads; kernel sources compiled as C++)",
            self.threads
        )
    }
    fn alloc(&self, bytes: usize) -> Result<u64> {
        let layout = Layout::from_size_align(bytes, ALIGN).map_err(|e| err(e.to_string()))?;
        // SAFETY: bytes > 0 (Device::alloc never asks for 0).
        let p = unsafe { std::alloc::alloc(layout) };
        if p.is_null() {
            return Err(err(format!("out of memory allocating {bytes} bytes")));
        }
        // SAFETY: p points at `bytes` writable bytes. 0xff bytes are NaN as f32.
        unsafe { std::ptr::write_bytes(p, 0xff, bytes) };
        Ok(p as u64)
    }
    fn free(&self, ptr: u64, bytes: usize) {
        let layout = Layout::from_size_align(bytes, ALIGN).expect("layout was valid at alloc");
        // SAFETY: allocated by `alloc` above with this layout.
        unsafe { std::alloc::dealloc(ptr as *mut u8, layout) };
    }
    fn write(&self, dst: u64, src: &[u8]) -> Result<()> {
        // SAFETY: dst is a live allocation at least src.len() bytes long (Device checks sizes).
        unsafe { std::ptr::copy_nonoverlapping(src.as_ptr(), dst as *mut u8, src.len()) };
        Ok(())
    }
    fn read(&self, src: u64, dst: &mut [u8]) -> Result<()> {
        // SAFETY: as for write.
        unsafe { std::ptr::copy_nonoverlapping(src as *const u8, dst.as_mut_ptr(), dst.len()) };
        Ok(())
    }
    fn copy(&self, dst: u64, src: u64, bytes: usize) -> Result<()> {
        // SAFETY: both live allocations of at least `bytes`; distinct buffers.
        unsafe { std::ptr::copy_nonoverlapping(src as *const u8, dst as *mut u8, bytes) };
        Ok(())
    }
    fn launch(&self, kernel: usize, dims: &Dims, params: &mut [*mut c_void]) -> Result<()> {
        let (_, name, sig) = KERNELS[kernel];
        let name_c = CString::new(name).unwrap();
        // The C++ side knows a struct parameter only as 'S' (its name is checked in Rust).
        let sig_c = CString::new(c_signature(sig)).unwrap();
        let mut msg = vec![0 as c_char; 512];
        // SAFETY: params point at values matching the kernel's signature (checked by
        // Device::launch and again by the emulator against the C++ types); pointer arguments
        // are live allocations of this driver.
        let rc = unsafe {
            emu_launch(
                name_c.as_ptr(),
                sig_c.as_ptr(),
                dims.grid.as_ptr(),
                dims.block.as_ptr(),
                dims.shared_bytes,
                params.as_mut_ptr(),
                self.threads,
                msg.as_mut_ptr(),
                msg.len(),
            )
        };
        if rc != 0 {
            // SAFETY: emu_launch writes a NUL-terminated message on failure.
            let m = unsafe { std::ffi::CStr::from_ptr(msg.as_ptr()) };
            return Err(err(m.to_string_lossy().into_owned()));
        }
        Ok(())
    }
    fn synchronize(&self) -> Result<()> {
        Ok(())
    }
    fn on_reuse(&self, ptr: u64, bytes: usize) {
        // SAFETY: a live allocation of `bytes` bytes owned by the free list until now.
        unsafe { std::ptr::write_bytes(ptr as *mut u8, 0xff, bytes) };
    }
}

/// A device that runs kernels in the emulator with `threads` OS threads (0 = all cores).
pub fn emulator(threads: usize) -> Arc<Device> {
    let threads = if threads == 0 {
        std::thread::available_parallelism().map_or(1, |n| n.get())
    } else {
        threads
    };
    Device::new(
        Box::new(EmuDriver {
            threads: threads as u32,
        }),
        "cuda-emulator",
    )
}

/// A kernel signature as the emulator's C++ templates spell it: `{Name}` becomes `S`.
fn c_signature(sig: &str) -> String {
    let mut out = String::with_capacity(sig.len());
    let mut in_name = false;
    for ch in sig.chars() {
        match ch {
            '{' => {
                in_name = true;
                out.push('S');
            }
            '}' => in_name = false,
            c if !in_name => out.push(c),
            _ => {}
        }
    }
    out
}
