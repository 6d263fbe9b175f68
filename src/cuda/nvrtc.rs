//! Run-time compilation of the kernel sources (`src/ops/*/*.cu`, `src/cuda/*.cu`) with NVRTC:
//! CUBIN for the device's own architecture (PTX for the driver to finish only when NVRTC does not
//! know the architecture), cached on disk under a key of source and header hash, architecture,
//! target, NVRTC version and options.

use std::ffi::CString;
use std::path::PathBuf;

use cudarc::nvrtc::{result, sys};

use crate::error::{Error, Result};
use crate::kernels::{KERNEL_HEADERS, KERNEL_SOURCES};

/// Options every kernel is compiled with. No fast-math: the kernels are checked against the
/// reference ops at float32 rounding, and `--use_fast_math` would trade that away silently.
const OPTIONS: &[&str] = &["--std=c++17", "-DSKINENGINE_NVRTC=1"];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    /// Machine code for exactly this architecture (`sm_XY`).
    Cubin,
    /// Virtual-architecture PTX (`compute_XY`), finished by the driver at load time.
    Ptx,
}

fn err(detail: String) -> Error {
    Error::Backend {
        backend: "cuda",
        detail,
    }
}

/// Whether an NVRTC library can be loaded (probing first: cudarc panics on a missing library).
pub fn available() -> bool {
    // SAFETY: only tries to dlopen the candidate library names.
    unsafe { sys::is_culib_present() }
}

fn ensure_available() -> Result<()> {
    if available() {
        Ok(())
    } else {
        Err(err(format!(
            "no NVRTC library found (looked for {}); install the CUDA toolkit or \
             `pip install nvidia-cuda-nvrtc` and put its lib folder on LD_LIBRARY_PATH",
            cudarc::get_lib_name_candidates("nvrtc")
                .into_iter()
                .filter(|n| n.contains(".so."))
                .collect::<Vec<_>>()
                .join(", ")
        )))
    }
}

/// NVRTC's (major, minor) version.
pub fn version() -> Result<(i32, i32)> {
    ensure_available()?;
    let (mut major, mut minor) = (0, 0);
    // SAFETY: library present; out-pointers valid.
    let rc = unsafe { sys::nvrtcVersion(&mut major, &mut minor) };
    rc.result()
        .map_err(|e| err(format!("nvrtcVersion: {e:?}")))?;
    Ok((major, minor))
}

/// Architectures (e.g. 75, 80, 90) this NVRTC can compile machine code for.
pub fn supported_archs() -> Result<Vec<i32>> {
    ensure_available()?;
    let mut n = 0;
    // SAFETY: library present; out-pointers sized from the count.
    unsafe {
        sys::nvrtcGetNumSupportedArchs(&mut n)
            .result()
            .map_err(|e| err(format!("{e:?}")))?;
        let mut v = vec![0; n.max(0) as usize];
        sys::nvrtcGetSupportedArchs(v.as_mut_ptr())
            .result()
            .map_err(|e| err(format!("{e:?}")))?;
        Ok(v)
    }
}

/// The embedded source of one kernel file.
pub fn source(file: &str) -> Result<&'static str> {
    KERNEL_SOURCES
        .iter()
        .find(|(f, _)| *f == file)
        .map(|(_, s)| *s)
        .ok_or_else(|| err(format!("no kernel file {file} in this build")))
}

/// Compiles one kernel file. Errors carry the file name and NVRTC's log.
pub fn compile(file: &str, arch: u32, target: Target) -> Result<Vec<u8>> {
    ensure_available()?;
    let src = source(file)?;
    let arch_opt = match target {
        Target::Cubin => format!("--gpu-architecture=sm_{arch}"),
        Target::Ptx => format!("--gpu-architecture=compute_{arch}"),
    };
    let mut opts: Vec<String> = OPTIONS.iter().map(|s| s.to_string()).collect();
    opts.push(arch_opt);
    let src_c = CString::new(src).map_err(|_| err(format!("{file}: NUL byte")))?;
    let base = file.rsplit('/').next().unwrap_or(file);
    let name_c = CString::new(base).unwrap();
    // Every shared device header goes to NVRTC by its include name, so `#include "x.cuh"`
    // resolves without a toolkit or the source tree.
    let header_srcs: Vec<CString> = KERNEL_HEADERS
        .iter()
        .map(|(_, s)| CString::new(*s).unwrap())
        .collect();
    let header_names: Vec<CString> = KERNEL_HEADERS
        .iter()
        .map(|(n, _)| CString::new(*n).unwrap())
        .collect();
    let src_ptrs: Vec<*const std::ffi::c_char> = header_srcs.iter().map(|c| c.as_ptr()).collect();
    let name_ptrs: Vec<*const std::ffi::c_char> = header_names.iter().map(|c| c.as_ptr()).collect();
    let mut prog = std::mem::MaybeUninit::uninit();
    // SAFETY: every pointer is a live NUL-terminated string for the duration of the call;
    // NVRTC copies what it keeps.
    unsafe {
        sys::nvrtcCreateProgram(
            prog.as_mut_ptr(),
            src_c.as_ptr(),
            name_c.as_ptr(),
            src_ptrs.len() as i32,
            src_ptrs.as_ptr(),
            name_ptrs.as_ptr(),
        )
        .result()
        .map_err(|e| err(format!("{file}: nvrtcCreateProgram: {e:?}")))?;
    }
    // SAFETY: created successfully above.
    let prog = unsafe { prog.assume_init() };
    // SAFETY: prog is a live program until destroy_program below; buffers sized by NVRTC.
    unsafe {
        let compiled = result::compile_program(prog, &opts);
        let out = match compiled {
            Err(e) => {
                let log = result::get_program_log(prog)
                    .map(|l| {
                        let bytes: Vec<u8> = l.iter().map(|&c| c as u8).collect();
                        String::from_utf8_lossy(&bytes)
                            .trim_end_matches('\0')
                            .to_string()
                    })
                    .unwrap_or_default();
                Err(err(format!(
                    "{file}: NVRTC compile for {} failed ({e:?}):\n{log}",
                    opts.last().unwrap()
                )))
            }
            Ok(()) => match target {
                // PTX text without NVRTC's terminating NUL (the loader adds one back).
                Target::Ptx => result::get_ptx(prog)
                    .map(|p| {
                        let mut v: Vec<u8> = p.iter().map(|&c| c as u8).collect();
                        while v.last() == Some(&0) {
                            v.pop();
                        }
                        v
                    })
                    .map_err(|e| err(format!("{file}: nvrtcGetPTX: {e:?}"))),
                Target::Cubin => {
                    let mut size = 0usize;
                    let mut cubin = Vec::new();
                    let r = sys::nvrtcGetCUBINSize(prog, &mut size)
                        .result()
                        .and_then(|_| {
                            cubin = vec![0u8; size];
                            sys::nvrtcGetCUBIN(prog, cubin.as_mut_ptr() as *mut _).result()
                        });
                    r.map(|_| cubin)
                        .map_err(|e| err(format!("{file}: nvrtcGetCUBIN: {e:?}")))
                }
            },
        };
        let _ = result::destroy_program(prog);
        out
    }
}

/// The cache key: FNV-1a over the parts, each ended by a separator (stable across releases).
fn fnv1a(parts: &[&[u8]]) -> u64 {
    let mut h = crate::io::hash::Fnv1a64::new();
    for p in parts {
        h.write(p);
        h.separator();
    }
    h.finish()
}

fn cache_dir() -> Option<PathBuf> {
    if let Some(d) = std::env::var_os("SKINENGINE_KERNEL_CACHE") {
        return Some(PathBuf::from(d));
    }
    std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .map(|d| d.join("skinengine").join("kernels"))
}

/// [`compile`] through the on-disk cache. A cache that cannot be written is not an error.
pub fn compile_cached(file: &str, arch: u32, target: Target) -> Result<Vec<u8>> {
    let (major, minor) = version()?;
    let src = source(file)?;
    let mut parts: Vec<&[u8]> = vec![src.as_bytes()];
    for (name, h) in KERNEL_HEADERS {
        parts.push(name.as_bytes());
        parts.push(h.as_bytes());
    }
    let opts = format!("{arch}:{target:?}:{major}.{minor}:{}", OPTIONS.join(" "));
    parts.push(opts.as_bytes());
    let key = fnv1a(&parts);
    let ext = match target {
        Target::Cubin => "cubin",
        Target::Ptx => "ptx",
    };
    let stem = file
        .rsplit('/')
        .next()
        .unwrap_or(file)
        .trim_end_matches(".cu");
    let path = cache_dir().map(|d| d.join(format!("{stem}-sm{arch}-{key:016x}.{ext}")));
    if let Some(p) = &path
        && let Ok(bytes) = std::fs::read(p)
        && !bytes.is_empty()
    {
        return Ok(bytes);
    }
    let bytes = compile(file, arch, target)?;
    if let Some(p) = &path
        && let Some(dir) = p.parent()
        && std::fs::create_dir_all(dir).is_ok()
    {
        // Write-then-rename so a concurrent reader never sees half a file.
        let tmp = p.with_extension(format!("{ext}.tmp{}", std::process::id()));
        if std::fs::write(&tmp, &bytes).is_ok() {
            let _ = std::fs::rename(&tmp, p);
        }
    }
    Ok(bytes)
}

/// Kernel files (`.cu`) in this build, sorted.
pub fn kernel_files() -> Vec<&'static str> {
    KERNEL_SOURCES
        .iter()
        .map(|(f, _)| *f)
        .filter(|f| f.ends_with(".cu"))
        .collect()
}
