//! One device interface over two drivers: the GPU (cudarc + NVRTC) and the CPU emulator that runs
//! the same kernel sources (`src/ops/*/*.cu`, `src/cuda/*.cu`). Everything above this file (the CUDA backend's launch code) is shared
//! by both, so a test under emulation exercises the same grid sizes, arguments and buffers the GPU
//! gets.
//!
//! Memory: device buffers are raw allocations owned by [`DevBuf`]; dropping one returns it to a
//! per-size free list, so a forward pass that needs the same sizes every batch allocates only on
//! the first one (no allocation on the hot path; [`Device::alloc_stats`] counts).

use std::collections::HashMap;
use std::ffi::c_void;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

pub use super::args::{Dims, Elem, KInt, KernelStruct, MAX_KERNEL_INT};
use crate::error::{Error, Result};
use crate::kernels::KERNELS;

/// What a driver must provide: raw memory, copies, launches. Pointers are device addresses
/// (host addresses for the emulator).
pub(crate) trait Driver: Send + Sync {
    fn describe(&self) -> String;
    fn alloc(&self, bytes: usize) -> Result<u64>;
    fn free(&self, ptr: u64, bytes: usize);
    fn write(&self, dst: u64, src: &[u8]) -> Result<()>;
    fn read(&self, src: u64, dst: &mut [u8]) -> Result<()>;
    fn copy(&self, dst: u64, src: u64, bytes: usize) -> Result<()>;
    /// `params[i]` points at argument i's value, as for cuLaunchKernel.
    fn launch(&self, kernel: usize, dims: &Dims, params: &mut [*mut c_void]) -> Result<()>;
    fn synchronize(&self) -> Result<()>;
    /// Called when a freed buffer is handed out again. The emulator poisons it (NaN) so a kernel
    /// that leaves part of its output unwritten cannot pass on a previous result.
    fn on_reuse(&self, _ptr: u64, _bytes: usize) {}
    /// Bytes the driver can still allocate, when known.
    fn free_bytes(&self) -> Option<u64> {
        None
    }
    /// `bytes` (> 0) of page-locked host memory, 64-byte aligned (the GPU: cuMemHostAlloc).
    /// The default (the emulator) is ordinary memory, so the pinned-buffer path runs the same
    /// code under emulation.
    fn alloc_host(&self, bytes: usize) -> Result<*mut u8> {
        let layout = std::alloc::Layout::from_size_align(bytes, 64)
            .map_err(|e| self.host_err(e.to_string()))?;
        // SAFETY: bytes > 0 (Device::host_buffer asks for at least 4).
        let p = unsafe { std::alloc::alloc(layout) };
        if p.is_null() {
            return Err(self.host_err(format!("out of memory allocating {bytes} bytes")));
        }
        Ok(p)
    }
    /// Frees what [`Driver::alloc_host`] gave, with the same size.
    fn free_host(&self, ptr: *mut u8, bytes: usize) {
        let layout = std::alloc::Layout::from_size_align(bytes, 64).expect("valid at alloc");
        // SAFETY: allocated by the default alloc_host with this layout.
        unsafe { std::alloc::dealloc(ptr, layout) };
    }
    /// Copies `src` (memory from [`Driver::alloc_host`]) to `dst`, ordered after earlier
    /// launches and before later ones, possibly returning before the copy is done: `src` must
    /// not change until [`Driver::synchronize`] or a read. Default: [`Driver::write`].
    fn write_async(&self, dst: u64, src: &[u8]) -> Result<()> {
        self.write(dst, src)
    }
    /// An error about host memory, for the defaults above.
    fn host_err(&self, detail: String) -> Error {
        Error::Backend {
            backend: "cuda",
            detail: format!("pinned host memory: {detail}"),
        }
    }
}

/// Returns pinned host buffers ([`crate::ops::host_buf::HostBuf`]) to the device's driver.
struct HostFree(Arc<Device>);

impl crate::ops::host_buf::PinnedFree for HostFree {
    fn free_pinned(&self, ptr: *mut u8, bytes: usize) {
        self.0.driver.free_host(ptr, bytes);
    }
}

/// One kernel argument. Buffers are checked for element type, integers for range and structs
/// for name against the kernel's signature at launch.
#[derive(Clone, Copy)]
pub enum Arg<'a> {
    Buf(&'a DevBuf),
    /// A pointer `offset` elements into a buffer (one image of a batch, say).
    At(&'a DevBuf, usize),
    /// A null pointer of the given element type (an absent optional input).
    Null(Elem),
    F32(f32),
    F64(f64),
    /// A count, size, index or flag for an `int` parameter: the launch refuses values past
    /// [`MAX_KERNEL_INT`], so no call site can truncate one.
    Int(usize),
    /// A `long long` parameter.
    I64(i64),
    U32(u32),
    /// A struct by value: (its name, its bytes).
    Struct(&'static str, &'a [u8]),
}

impl<'a> Arg<'a> {
    /// An optional float buffer: the buffer, or a null pointer.
    pub fn opt(b: Option<&'a DevBuf>) -> Arg<'a> {
        b.map_or(Arg::Null(Elem::F32), Arg::Buf)
    }
    /// A geometry struct by value.
    pub fn by_value<T: KernelStruct>(v: &'a T) -> Arg<'a> {
        Arg::Struct(T::NAME, bytemuck::bytes_of(v))
    }
    /// A boolean flag as an `int` 0 / 1.
    pub fn flag(b: bool) -> Arg<'a> {
        Arg::Int(b as usize)
    }
    fn code(&self) -> String {
        let elem = |e: Elem| match e {
            Elem::F32 => 'F',
            Elem::I32 => 'I',
            // The launch check cannot tell the two 16-bit formats apart: kernels taking them
            // also take the format code, and their host code passes the buffer's own.
            Elem::Bf16 | Elem::F16 => 'H',
        };
        let c = match self {
            Arg::Buf(b) | Arg::At(b, _) => elem(b.elem),
            Arg::Null(e) => elem(*e),
            Arg::F32(_) => 'f',
            Arg::F64(_) => 'd',
            Arg::Int(_) => 'i',
            Arg::U32(_) => 'u',
            Arg::I64(_) => 'l',
            Arg::Struct(name, _) => return format!("{{{name}}}"),
        };
        c.to_string()
    }
    /// The value as the bytes cuLaunchKernel reads (little endian), in 8-byte words.
    fn slot(&self) -> Vec<u64> {
        match *self {
            Arg::Buf(b) => vec![b.ptr],
            Arg::At(b, off) => vec![b.ptr + (b.elem.size() * off) as u64],
            Arg::Null(_) => vec![0],
            Arg::F32(v) => vec![v.to_bits() as u64],
            Arg::F64(v) => vec![v.to_bits()],
            Arg::Int(v) => vec![v as u32 as u64],
            Arg::U32(v) => vec![v as u64],
            Arg::I64(v) => vec![v as u64],
            Arg::Struct(_, bytes) => {
                let mut words = vec![0u64; bytes.len().div_ceil(8)];
                bytemuck::cast_slice_mut::<u64, u8>(&mut words)[..bytes.len()]
                    .copy_from_slice(bytes);
                words
            }
        }
    }
}

/// One buffer derived from a source buffer ([`Device::derived`]).
struct Derived {
    key: String,
    ptr: u64,
    bytes: usize,
    len: usize,
    elem: Elem,
}

/// Buffers allocated from the driver vs. served from the free list.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AllocStats {
    pub driver_allocs: u64,
    pub reused: u64,
}

pub struct Device {
    driver: Box<dyn Driver>,
    backend: &'static str,
    free: Mutex<HashMap<usize, Vec<u64>>>,
    driver_allocs: AtomicU64,
    reused: AtomicU64,
    /// Read-only tables uploaded once and kept for the device's life: key -> (ptr, bytes, len).
    consts: Mutex<HashMap<String, (u64, usize, usize)>>,
    /// Buffers computed from another buffer's contents (packed weights), per source address:
    /// (what was derived, ptr, bytes, len, elem). Released with the source (or when the source
    /// is written in place, [`Device::forget_derived`]), so a reused address never serves a
    /// stale copy.
    derived: Mutex<HashMap<u64, Vec<Derived>>>,
    /// Synchronise after every launch (SKINENGINE_CUDA_SYNC=1): a failing kernel is then
    /// reported at its own launch rather than at the next copy back.
    sync_each: bool,
}

impl Device {
    pub(crate) fn new(driver: Box<dyn Driver>, backend: &'static str) -> Arc<Device> {
        Arc::new(Device {
            driver,
            backend,
            free: Mutex::new(HashMap::new()),
            driver_allocs: AtomicU64::new(0),
            reused: AtomicU64::new(0),
            consts: Mutex::new(HashMap::new()),
            derived: Mutex::new(HashMap::new()),
            sync_each: std::env::var("SKINENGINE_CUDA_SYNC").is_ok_and(|v| v == "1"),
        })
    }

    pub fn describe(&self) -> String {
        self.driver.describe()
    }

    pub fn err(&self, detail: impl Into<String>) -> Error {
        Error::Backend {
            backend: self.backend,
            detail: detail.into(),
        }
    }

    /// Bytes still available for buffers: what the driver can allocate plus what this device's
    /// free lists hold (given back to the driver when an allocation would otherwise fail).
    pub fn free_memory(&self) -> Option<u64> {
        let pooled: usize = self
            .free
            .lock()
            .unwrap()
            .iter()
            .map(|(bytes, ptrs)| bytes * ptrs.len())
            .sum();
        Some(self.driver.free_bytes()? + pooled as u64)
    }

    pub fn alloc_stats(&self) -> AllocStats {
        AllocStats {
            driver_allocs: self.driver_allocs.load(Ordering::Relaxed),
            reused: self.reused.load(Ordering::Relaxed),
        }
    }

    /// A buffer of `len` elements; contents undefined (poisoned with NaN under emulation).
    pub fn alloc(self: &Arc<Self>, len: usize, elem: Elem) -> Result<DevBuf> {
        // Round to 256 bytes (the driver's own alignment) so near sizes share free lists, and
        // never allocate zero bytes.
        let bytes = (len.max(1) * elem.size()).div_ceil(256) * 256;
        let cached = self.free.lock().unwrap().get_mut(&bytes).and_then(Vec::pop);
        let ptr = match cached {
            Some(p) => {
                self.reused.fetch_add(1, Ordering::Relaxed);
                self.driver.on_reuse(p, bytes);
                p
            }
            None => {
                self.driver_allocs.fetch_add(1, Ordering::Relaxed);
                match self.driver.alloc(bytes) {
                    Ok(p) => p,
                    Err(_) => {
                        // Out of memory: give every cached buffer back and try once more.
                        self.trim();
                        self.driver.alloc(bytes)?
                    }
                }
            }
        };
        Ok(DevBuf {
            ptr,
            bytes,
            len,
            elem,
            dev: self.clone(),
            owned: true,
        })
    }

    /// A read-only int table, made by `make` and uploaded the first time `key` is asked for,
    /// then kept until the device goes: later calls cost no copy (a copy would also make the host
    /// wait for the GPU). The handle does not own the memory.
    pub fn constant_i32(
        self: &Arc<Self>,
        key: &str,
        make: impl FnOnce() -> Vec<i32>,
    ) -> Result<DevBuf> {
        let mut consts = self.consts.lock().unwrap();
        let (ptr, bytes, len) = match consts.get(key) {
            Some(&e) => e,
            None => {
                let data = make();
                let bytes = (data.len().max(1) * 4).div_ceil(256) * 256;
                let ptr = self.driver.alloc(bytes)?;
                self.driver.write(ptr, bytemuck::cast_slice(&data))?;
                consts.insert(key.to_string(), (ptr, bytes, data.len()));
                (ptr, bytes, data.len())
            }
        };
        Ok(DevBuf {
            ptr,
            bytes,
            len,
            elem: Elem::I32,
            dev: self.clone(),
            owned: false,
        })
    }

    /// The buffer `make` derives from the contents of `src` (e.g. weights packed for a kernel),
    /// made the first time `key` is asked for with this source and kept until `src` is released
    /// or written in place: later calls cost nothing. The handle does not own the memory; use it
    /// while `src` is borrowed.
    pub fn derived(
        self: &Arc<Self>,
        src: &DevBuf,
        key: &str,
        make: impl FnOnce() -> Result<DevBuf>,
    ) -> Result<DevBuf> {
        let handle = |d: &Derived| DevBuf {
            ptr: d.ptr,
            bytes: d.bytes,
            len: d.len,
            elem: d.elem,
            dev: self.clone(),
            owned: false,
        };
        if let Some(d) = self
            .derived
            .lock()
            .unwrap()
            .get(&src.ptr)
            .and_then(|v| v.iter().find(|d| d.key == key))
        {
            return Ok(handle(d));
        }
        // Made without the lock held: `make` allocates and launches (and may release buffers).
        let mut buf = make()?;
        buf.owned = false; // the cache owns it now
        let d = Derived {
            key: key.to_string(),
            ptr: buf.ptr,
            bytes: buf.bytes,
            len: buf.len,
            elem: buf.elem,
        };
        let h = handle(&d);
        self.derived
            .lock()
            .unwrap()
            .entry(src.ptr)
            .or_default()
            .push(d);
        Ok(h)
    }

    /// How many derived buffers are cached (tests).
    #[cfg(test)]
    pub(crate) fn derived_count(&self) -> usize {
        self.derived.lock().unwrap().values().map(Vec::len).sum()
    }

    /// Releases what was derived from the buffer at `ptr` (its contents are about to change).
    pub fn forget_derived(&self, ptr: u64) {
        let gone = self.derived.lock().unwrap().remove(&ptr);
        for d in gone.into_iter().flatten() {
            self.release(d.ptr, d.bytes);
        }
    }

    /// Returns every cached free buffer to the driver.
    pub fn trim(&self) {
        let mut free = self.free.lock().unwrap();
        for (bytes, ptrs) in free.drain() {
            for p in ptrs {
                self.driver.free(p, bytes);
            }
        }
    }

    pub fn upload_f32(self: &Arc<Self>, data: &[f32]) -> Result<DevBuf> {
        let b = self.alloc(data.len(), Elem::F32)?;
        self.driver.write(b.ptr, bytemuck::cast_slice(data))?;
        Ok(b)
    }

    /// `len` floats of pinned host memory for uploads by [`Device::upload_f32_async`].
    pub fn host_buffer(self: &Arc<Self>, len: usize) -> Result<crate::ops::host_buf::HostBuf> {
        use crate::ops::host_buf::{HostBuf, Pinned};
        let bytes = len.max(1) * 4;
        let p = self.driver.alloc_host(bytes)?;
        let ptr = std::ptr::NonNull::new(p as *mut f32)
            .ok_or_else(|| self.err("pinned host allocation returned null"))?;
        // SAFETY: `bytes` fresh, 64-byte aligned bytes from this driver, freed by HostFree.
        Ok(HostBuf::Pinned(unsafe {
            Pinned::new(ptr, len.max(1), Arc::new(HostFree(self.clone())))
        }))
    }

    /// [`Device::upload_f32`] from pinned memory: on the GPU the copy is asynchronous (`data`
    /// must not change until the next synchronisation or download).
    pub fn upload_f32_async(self: &Arc<Self>, data: &[f32]) -> Result<DevBuf> {
        let b = self.alloc(data.len(), Elem::F32)?;
        self.driver.write_async(b.ptr, bytemuck::cast_slice(data))?;
        Ok(b)
    }

    /// Raw 16-bit values into a new buffer of `elem` ([`Elem::Bf16`] or [`Elem::F16`]).
    pub fn upload_u16(self: &Arc<Self>, data: &[u16], elem: Elem) -> Result<DevBuf> {
        if elem.size() != 2 {
            return Err(self.err(format!("upload_u16 into a {elem:?} buffer")));
        }
        let b = self.alloc(data.len(), elem)?;
        self.driver.write(b.ptr, bytemuck::cast_slice(data))?;
        Ok(b)
    }

    pub fn upload_i32(self: &Arc<Self>, data: &[i32]) -> Result<DevBuf> {
        let b = self.alloc(data.len(), Elem::I32)?;
        self.driver.write(b.ptr, bytemuck::cast_slice(data))?;
        Ok(b)
    }

    pub fn download_f32(&self, b: &DevBuf) -> Result<Vec<f32>> {
        if b.elem != Elem::F32 {
            return Err(self.err(format!("download_f32 of a {:?} buffer", b.elem)));
        }
        let mut out = vec![0f32; b.len];
        self.driver
            .read(b.ptr, bytemuck::cast_slice_mut(&mut out))?;
        Ok(out)
    }

    pub fn download_i32(&self, b: &DevBuf) -> Result<Vec<i32>> {
        if b.elem != Elem::I32 {
            return Err(self.err(format!("download_i32 of a {:?} buffer", b.elem)));
        }
        let mut out = vec![0i32; b.len];
        self.driver
            .read(b.ptr, bytemuck::cast_slice_mut(&mut out))?;
        Ok(out)
    }

    /// The raw 16-bit values of a [`Elem::Bf16`] or [`Elem::F16`] buffer.
    pub fn download_u16(&self, b: &DevBuf) -> Result<Vec<u16>> {
        if b.elem.size() != 2 {
            return Err(self.err(format!("download_u16 of a {:?} buffer", b.elem)));
        }
        let mut out = vec![0u16; b.len];
        self.driver
            .read(b.ptr, bytemuck::cast_slice_mut(&mut out))?;
        Ok(out)
    }

    /// A new buffer holding a copy of `b`.
    pub fn duplicate(self: &Arc<Self>, b: &DevBuf) -> Result<DevBuf> {
        let out = self.alloc(b.len, b.elem)?;
        self.driver.copy(out.ptr, b.ptr, b.len * b.elem.size())?;
        Ok(out)
    }

    pub fn synchronize(&self) -> Result<()> {
        self.driver.synchronize()
    }

    /// Launches kernel `name` after checking the arguments against the signature parsed from its
    /// source: a wrong count or type is an error here, never a corrupt launch.
    pub fn launch(&self, name: &str, dims: Dims, args: &[Arg]) -> Result<()> {
        let idx = kernel_index(name).ok_or_else(|| self.err(format!("no kernel named {name}")))?;
        let (file, _, sig) = KERNELS[idx];
        let passed: String = args.iter().map(Arg::code).collect();
        if !super::args::signature_matches(sig, args.iter().map(Arg::code)) {
            return Err(self.err(format!(
                "launch of {name} ({file}) passes arguments '{passed}' but the kernel takes '{sig}'"
            )));
        }
        let threads: u64 = dims.block.iter().map(|&v| v as u64).product();
        if threads == 0 || threads > 1024 || dims.grid.contains(&0) {
            return Err(self.err(format!(
                "launch of {name}: invalid grid {:?} / block {:?}",
                dims.grid, dims.block
            )));
        }
        // Kernels take sizes as `int` and index one tensor with `int`: every integer argument and
        // every buffer must fit, checked here once for all call sites.
        for (i, a) in args.iter().enumerate() {
            let (what, v) = match *a {
                Arg::Int(v) => ("argument", v),
                Arg::Buf(b) | Arg::At(b, _) => ("buffer argument length", b.len),
                _ => continue,
            };
            if v > MAX_KERNEL_INT {
                return Err(crate::error::shape_err(
                    KERNELS[idx].1,
                    format!(
                        "{what} {i} ({v}) is more than the CUDA kernels' 32-bit indices allow; \
                         split the batch"
                    ),
                ));
            }
        }
        if let Some(Arg::At(b, off)) = args
            .iter()
            .find(|a| matches!(a, Arg::At(b, off) if *off > b.len))
        {
            return Err(self.err(format!(
                "launch of {name}: offset {off} past the end of a {}-element buffer",
                b.len
            )));
        }
        let mut slots: Vec<Vec<u64>> = args.iter().map(Arg::slot).collect();
        let mut params: Vec<*mut c_void> = slots
            .iter_mut()
            .map(|s| s.as_mut_ptr() as *mut c_void)
            .collect();
        self.driver.launch(idx, &dims, &mut params)?;
        if self.sync_each {
            self.driver
                .synchronize()
                .map_err(|e| self.err(format!("after {name}: {e}")))?;
        }
        Ok(())
    }

    fn release(&self, ptr: u64, bytes: usize) {
        self.free
            .lock()
            .unwrap()
            .entry(bytes)
            .or_default()
            .push(ptr);
        // The address may be handed out again: nothing derived from its old contents survives.
        self.forget_derived(ptr);
    }
}

impl Drop for Device {
    fn drop(&mut self) {
        self.trim();
        for (_, (ptr, bytes, _)) in self.consts.lock().unwrap().drain() {
            self.driver.free(ptr, bytes);
        }
        for d in self.derived.lock().unwrap().drain().flat_map(|(_, v)| v) {
            self.driver.free(d.ptr, d.bytes);
        }
    }
}

/// Index of a kernel in [`KERNELS`], by name.
pub fn kernel_index(name: &str) -> Option<usize> {
    KERNELS.iter().position(|k| k.1 == name)
}

/// Device memory owned by the program; returned to the device's free list when dropped.
pub struct DevBuf {
    ptr: u64,
    bytes: usize,
    len: usize,
    elem: Elem,
    dev: Arc<Device>,
    /// False for handles to [`Device::constant_i32`] tables, which the device frees itself.
    owned: bool,
}

impl DevBuf {
    /// The device address (what a cache keyed by buffer identity uses).
    pub(crate) fn ptr(&self) -> u64 {
        self.ptr
    }
    pub fn len(&self) -> usize {
        self.len
    }
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
    pub fn elem(&self) -> Elem {
        self.elem
    }
    pub fn device(&self) -> &Arc<Device> {
        &self.dev
    }
}

impl Drop for DevBuf {
    fn drop(&mut self) {
        if self.owned {
            self.dev.release(self.ptr, self.bytes);
        }
    }
}

impl std::fmt::Debug for DevBuf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "DevBuf({:?} x {})", self.elem, self.len)
    }
}
