//! The GPU driver: cudarc (dynamically loaded, so the binary builds and runs without CUDA),
//! one context on one GPU (ordinal 0 unless `--device cuda:N` says otherwise), the legacy
//! default stream for every launch and copy (so copies are ordered after the kernels that
//! produce their data without extra events), modules compiled by NVRTC on first use and kept
//! for the life of the device.

use std::collections::HashMap;
use std::ffi::{CString, c_void};
use std::sync::{Arc, Mutex};

use cudarc::driver::{CudaContext, result, sys};

use super::device::{Device, Dims, Driver};
use super::nvrtc::{self, Target};
use crate::error::{Error, Result};
use crate::kernels::KERNELS;

fn err(detail: String) -> Error {
    Error::Backend {
        backend: "cuda",
        detail,
    }
}

/// A loaded function handle; only used under `GpuDriver`'s context.
#[derive(Clone, Copy)]
struct Func(sys::CUfunction);
// SAFETY: CUDA function handles are plain identifiers valid in any thread once the owning
// context is current; the driver binds the context before every use.
unsafe impl Send for Func {}
unsafe impl Sync for Func {}

#[derive(Clone, Copy)]
struct Module(sys::CUmodule);
// SAFETY: as for Func.
unsafe impl Send for Module {}
unsafe impl Sync for Module {}

pub struct GpuInfo {
    pub name: String,
    pub compute_capability: (i32, i32),
    pub driver_version: i32,
    pub total_mem: usize,
}

struct GpuDriver {
    ctx: Arc<CudaContext>,
    info: GpuInfo,
    arch: u32,
    modules: Mutex<HashMap<&'static str, Module>>,
    funcs: Mutex<Vec<Option<Func>>>,
}

/// Whether the CUDA driver library can be loaded (probing first: cudarc panics otherwise).
pub fn driver_available() -> bool {
    // SAFETY: only tries to dlopen the candidate library names.
    unsafe { sys::is_culib_present() }
}

fn driver_version() -> Result<i32> {
    let mut v = 0;
    // SAFETY: library present (checked by callers); out-pointer valid.
    unsafe { sys::cuDriverGetVersion(&mut v) }
        .result()
        .map_err(|e| err(format!("cuDriverGetVersion: {e:?}")))?;
    Ok(v)
}

/// The first GPU's description, or why there is none.
pub fn probe() -> Result<GpuInfo> {
    no_driver_err()?;
    let ctx = CudaContext::new(0).map_err(|e| err(format!("no usable GPU: {e:?}")))?;
    info(&ctx)
}

/// Every GPU the driver shows this process (after `CUDA_VISIBLE_DEVICES`), by ordinal: each
/// one's description or why it cannot be used. Err when there is no driver or it cannot count.
pub fn probe_all() -> Result<Vec<Result<GpuInfo>>> {
    let n = device_count()?;
    Ok((0..n)
        .map(|i| {
            CudaContext::new(i)
                .map_err(|e| err(format!("cuda:{i} unusable: {e:?}")))
                .and_then(|ctx| info(&ctx))
        })
        .collect())
}

/// How many GPUs the driver shows this process.
pub fn device_count() -> Result<usize> {
    no_driver_err()?;
    CudaContext::device_count()
        .map(|n| n.max(0) as usize)
        .map_err(|e| err(format!("no usable GPU: {e:?}")))
}

fn no_driver_err() -> Result<()> {
    if driver_available() {
        return Ok(());
    }
    Err(err(
        "no CUDA driver library (libcuda.so.1) on this machine: no NVIDIA driver".into(),
    ))
}

/// `--device cuda:{ordinal}` on a machine with `count` GPUs: an error naming both when there is
/// no such GPU.
pub fn check_ordinal(ordinal: usize, count: usize) -> Result<()> {
    if ordinal < count {
        return Ok(());
    }
    let have = match count {
        0 => "no GPU".to_string(),
        1 => "1 GPU (cuda:0)".to_string(),
        n => format!("{n} GPUs (cuda:0 to cuda:{})", n - 1),
    };
    Err(err(format!(
        "--device cuda:{ordinal}: there is no GPU {ordinal}; the driver shows {have} \
         (after CUDA_VISIBLE_DEVICES; `skinengine doctor` lists them)"
    )))
}

fn info(ctx: &Arc<CudaContext>) -> Result<GpuInfo> {
    Ok(GpuInfo {
        name: ctx.name().map_err(|e| err(format!("{e:?}")))?,
        compute_capability: ctx
            .compute_capability()
            .map_err(|e| err(format!("{e:?}")))?,
        driver_version: driver_version()?,
        total_mem: ctx.total_mem().map_err(|e| err(format!("{e:?}")))?,
    })
}

/// A device on GPU 0. Needs the CUDA driver and NVRTC; errors say which is missing.
pub fn gpu() -> Result<Arc<Device>> {
    Ok(gpu_and_capability()?.0)
}

/// [`gpu`] and its compute capability (major, minor).
pub fn gpu_and_capability() -> Result<(Arc<Device>, (i32, i32))> {
    gpu_on(0)
}

/// A device on GPU `ordinal` (`--device cuda:N`) and its compute capability; an error naming
/// the number of GPUs when there is no such GPU.
pub fn gpu_on(ordinal: usize) -> Result<(Arc<Device>, (i32, i32))> {
    no_driver_err()?;
    check_ordinal(ordinal, device_count()?)?;
    if !nvrtc::available() {
        // Reuse nvrtc's message, which says where to get the library.
        nvrtc::version()?;
    }
    let ctx = CudaContext::new(ordinal)
        .map_err(|e| err(format!("no usable GPU at cuda:{ordinal}: {e:?}")))?;
    let info = info(&ctx)?;
    let (major, minor) = info.compute_capability;
    let driver = GpuDriver {
        ctx,
        arch: (major * 10 + minor) as u32,
        info,
        modules: Mutex::new(HashMap::new()),
        funcs: Mutex::new(vec![None; KERNELS.len()]),
    };
    Ok((Device::new(Box::new(driver), "cuda"), (major, minor)))
}

impl GpuDriver {
    fn bind(&self) -> Result<()> {
        self.ctx
            .bind_to_thread()
            .map_err(|e| err(format!("binding the CUDA context: {e:?}")))
    }

    /// Compiles (or loads from the cache) and loads the module of one kernel file: CUBIN for
    /// this GPU's architecture; PTX when this NVRTC cannot target the architecture.
    fn module(&self, file: &'static str) -> Result<Module> {
        if let Some(m) = self.modules.lock().unwrap().get(file) {
            return Ok(*m);
        }
        let (image, what) = match nvrtc::compile_cached(file, self.arch, Target::Cubin) {
            Ok(b) => (b, format!("CUBIN for sm_{}", self.arch)),
            Err(cubin_err) => {
                // This NVRTC does not know the GPU (a newer GPU than the NVRTC): PTX for the
                // newest architecture it knows that the GPU can run, finished by the driver.
                let fallback = nvrtc::supported_archs()
                    .ok()
                    .and_then(|a| a.into_iter().filter(|&v| v as u32 <= self.arch).max())
                    .ok_or(cubin_err)?;
                let mut ptx = nvrtc::compile_cached(file, fallback as u32, Target::Ptx)?;
                ptx.push(0);
                (ptx, format!("PTX for compute_{fallback}"))
            }
        };
        // SAFETY: image is a complete CUBIN or NUL-terminated PTX; context bound.
        let m =
            unsafe { result::module::load_data(image.as_ptr() as *const c_void) }.map_err(|e| {
                let nv = nvrtc::version().map_or("?".into(), |(a, b)| format!("{a}.{b}"));
                err(format!(
                    "loading {file} ({what}, NVRTC {nv}, driver CUDA {}.{}): {e:?}; \
                     code from an NVRTC newer than the driver is refused: put the NVRTC that \
                     matches the driver (the CUDA toolkit's) first on LD_LIBRARY_PATH",
                    self.info.driver_version / 1000,
                    (self.info.driver_version % 1000) / 10
                ))
            })?;
        self.modules.lock().unwrap().insert(file, Module(m));
        Ok(Module(m))
    }

    fn function(&self, kernel: usize) -> Result<Func> {
        if let Some(f) = self.funcs.lock().unwrap()[kernel] {
            return Ok(f);
        }
        let (file, name, _) = KERNELS[kernel];
        let m = self.module(file)?;
        // SAFETY: module loaded in this context and never unloaded while the driver lives.
        let f = unsafe { result::module::get_function(m.0, CString::new(name).unwrap()) }
            .map_err(|e| err(format!("kernel {name} in {file}: {e:?}")))?;
        self.funcs.lock().unwrap()[kernel] = Some(Func(f));
        Ok(Func(f))
    }
}

impl Driver for GpuDriver {
    fn describe(&self) -> String {
        let (ma, mi) = self.info.compute_capability;
        format!(
            "cuda:{} {} (compute capability {ma}.{mi}, {:.1} GiB, driver {}.{})",
            self.ctx.ordinal(),
            self.info.name,
            self.info.total_mem as f64 / (1u64 << 30) as f64,
            self.info.driver_version / 1000,
            (self.info.driver_version % 1000) / 10
        )
    }
    fn alloc(&self, bytes: usize) -> Result<u64> {
        self.bind()?;
        // SAFETY: plain device allocation; freed by `free`.
        unsafe { result::malloc_sync(bytes) }
            .map_err(|e| err(format!("allocating {bytes} bytes of GPU memory: {e:?}")))
    }
    fn free_bytes(&self) -> Option<u64> {
        self.bind().ok()?;
        result::mem_get_info()
            .ok()
            .map(|(free, _total)| free as u64)
    }
    fn free(&self, ptr: u64, _bytes: usize) {
        if self.bind().is_ok() {
            // SAFETY: ptr came from malloc_sync and is freed once (the pool drops it).
            let _ = unsafe { result::free_sync(ptr) };
        }
    }
    fn write(&self, dst: u64, src: &[u8]) -> Result<()> {
        self.bind()?;
        // SAFETY: dst is a live allocation of at least src.len() bytes; synchronous copy on
        // the legacy stream, ordered after earlier launches.
        unsafe { result::memcpy_htod_sync(dst, src) }.map_err(|e| err(format!("upload: {e:?}")))
    }
    fn alloc_host(&self, bytes: usize) -> Result<*mut u8> {
        self.bind()?;
        // SAFETY: plain page-locked allocation (flags 0: portable to this context only, which
        // is the one every upload uses); freed by free_host. cuMemHostAlloc aligns to pages.
        unsafe { result::malloc_host(bytes, 0) }
            .map(|p| p as *mut u8)
            .map_err(|e| {
                err(format!(
                    "allocating {bytes} bytes of pinned host memory: {e:?}"
                ))
            })
    }
    fn free_host(&self, ptr: *mut u8, _bytes: usize) {
        if self.bind().is_ok() {
            // SAFETY: ptr came from malloc_host and is freed once (its HostBuf drops it).
            let _ = unsafe { result::free_host(ptr as *mut c_void) };
        }
    }
    fn write_async(&self, dst: u64, src: &[u8]) -> Result<()> {
        self.bind()?;
        // SAFETY: dst is a live allocation of at least src.len() bytes; src is pinned memory
        // (HostBuf) that its owner keeps unchanged until the next synchronisation or download
        // (BackendBase::upload_host's contract). Legacy stream: ordered with the launches.
        unsafe { result::memcpy_htod_async(dst, src, std::ptr::null_mut()) }
            .map_err(|e| err(format!("upload: {e:?}")))
    }
    fn read(&self, src: u64, dst: &mut [u8]) -> Result<()> {
        self.bind()?;
        // SAFETY: as for write; this waits for the kernels that wrote `src`, so an
        // asynchronous kernel failure surfaces here at the latest.
        unsafe { result::memcpy_dtoh_sync(dst, src) }
            .map_err(|e| err(format!("download (or an earlier kernel) failed: {e:?}")))
    }
    fn copy(&self, dst: u64, src: u64, bytes: usize) -> Result<()> {
        self.bind()?;
        // SAFETY: both live allocations of at least `bytes`.
        unsafe { result::memcpy_dtod_async(dst, src, bytes, std::ptr::null_mut()) }
            .map_err(|e| err(format!("device copy: {e:?}")))
    }
    fn launch(&self, kernel: usize, dims: &Dims, params: &mut [*mut c_void]) -> Result<()> {
        self.bind()?;
        let f = self.function(kernel)?;
        if dims.shared_bytes > 48 * 1024 {
            // SAFETY: valid function handle; raising the opt-in shared memory limit.
            unsafe {
                result::function::set_function_attribute(
                    f.0,
                    sys::CUfunction_attribute::CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES,
                    dims.shared_bytes as i32,
                )
            }
            .map_err(|e| err(format!("{}: shared memory limit: {e:?}", KERNELS[kernel].1)))?;
        }
        // SAFETY: params match the kernel's signature (checked by Device::launch against the
        // signature parsed from the source); pointer arguments are live device allocations.
        unsafe {
            result::launch_kernel(
                f.0,
                (dims.grid[0], dims.grid[1], dims.grid[2]),
                (dims.block[0], dims.block[1], dims.block[2]),
                dims.shared_bytes,
                std::ptr::null_mut(),
                params,
            )
        }
        .map_err(|e| err(format!("launching {}: {e:?}", KERNELS[kernel].1)))
    }
    fn synchronize(&self) -> Result<()> {
        self.bind()?;
        self.ctx
            .synchronize()
            .map_err(|e| err(format!("a kernel failed: {e:?}")))
    }
}
