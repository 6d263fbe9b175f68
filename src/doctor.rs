//! `skinengine doctor`: what hardware and libraries this machine offers the engine.

use std::fmt::Write as _;

/// CPU model name from /proc/cpuinfo (Linux), if readable.
fn cpu_model() -> Option<String> {
    let info = std::fs::read_to_string("/proc/cpuinfo").ok()?;
    info.lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split(':').nth(1))
        .map(|s| s.trim().to_string())
}

/// SIMD features the fast CPU kernels can use.
fn cpu_features() -> Vec<&'static str> {
    let mut f = Vec::new();
    #[cfg(target_arch = "x86_64")]
    {
        macro_rules! probe {
            ($($name:tt),*) => {$(
                if std::arch::is_x86_feature_detected!($name) { f.push($name); }
            )*};
        }
        probe!(
            "sse4.2", "avx", "avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512vl"
        );
    }
    #[cfg(target_arch = "aarch64")]
    {
        if std::arch::is_aarch64_feature_detected!("neon") {
            f.push("neon");
        }
    }
    f
}

/// Whether a shared library can be loaded; probing by dlopen never panics, unlike calling into
/// a CUDA binding whose library is absent.
fn probe_library(candidates: &[&str]) -> Option<String> {
    candidates.iter().find_map(|name| {
        // SAFETY: loading a system library runs its initialisers; the CUDA driver and NVRTC
        // libraries are designed to be dlopen-ed this way.
        unsafe { libloading::Library::new(*name) }
            .ok()
            .map(|_| name.to_string())
    })
}

pub fn report() -> String {
    let mut s = String::new();
    let _ = writeln!(s, "skinengine {}", env!("CARGO_PKG_VERSION"));
    let _ = writeln!(
        s,
        "cpu: {} ({} logical cores)",
        cpu_model().unwrap_or_else(|| "unknown model".into()),
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    let _ = writeln!(s, "cpu features: {}", cpu_features().join(" "));
    let cuda = probe_library(&["libcuda.so.1", "libcuda.so", "nvcuda.dll"]);
    let _ = writeln!(
        s,
        "cuda driver library: {}",
        cuda.unwrap_or_else(|| "not found (no NVIDIA driver on this machine)".into())
    );
    if crate::cuda::gpu::driver_available() {
        // Every GPU, by the ordinal `--device cuda:N` takes.
        match crate::cuda::gpu::probe_all() {
            Ok(gpus) if gpus.is_empty() => {
                let _ = writeln!(s, "gpu: none (the driver shows no device)");
            }
            Ok(gpus) => {
                for (i, g) in gpus.iter().enumerate() {
                    let _ = match g {
                        Ok(g) => writeln!(
                            s,
                            "gpu cuda:{i}: {} (compute capability {}.{}, {:.1} GiB), driver \
                             supports CUDA {}.{}",
                            g.name,
                            g.compute_capability.0,
                            g.compute_capability.1,
                            g.total_mem as f64 / (1u64 << 30) as f64,
                            g.driver_version / 1000,
                            (g.driver_version % 1000) / 10
                        ),
                        Err(e) => writeln!(s, "gpu cuda:{i}: not usable ({e})"),
                    };
                }
            }
            Err(e) => {
                let _ = writeln!(s, "gpu: none usable ({e})");
            }
        }
    }
    match crate::cuda::nvrtc::version() {
        Ok((ma, mi)) => {
            let archs = crate::cuda::nvrtc::supported_archs()
                .map(|a| {
                    a.iter()
                        .map(|v| format!("sm_{v}"))
                        .collect::<Vec<_>>()
                        .join(" ")
                })
                .unwrap_or_default();
            let _ = writeln!(s, "nvrtc: {ma}.{mi} (targets: {archs})");
        }
        Err(e) => {
            let _ = writeln!(s, "nvrtc: {e}");
        }
    }
    let _ = writeln!(
        s,
        "kernels: {} in {} files (src/ops/*/*.cu, src/cuda/*.cu); CPU emulator: {}",
        crate::kernels::KERNELS.len(),
        crate::cuda::nvrtc::kernel_files().len(),
        if cfg!(skinengine_emu) {
            "built in"
        } else {
            "not built (Linux only)"
        }
    );
    let cuda_line = if crate::cuda::gpu::driver_available() && crate::cuda::nvrtc::available() {
        "cuda"
    } else {
        "cuda (unavailable here)"
    };
    let _ = writeln!(s, "backends: cpu, reference, {cuda_line}, cuda-emulator");
    s
}

/// `doctor --compile-kernels`: every kernel file through NVRTC for each architecture, one line
/// per kernel; optionally PTX for the lowest architecture into `ptx_dir` (for ptxas reports).
/// Returns whether everything compiled.
pub fn compile_kernels(archs: &[u32], ptx_dir: Option<&std::path::Path>) -> crate::Result<bool> {
    use crate::cuda::nvrtc::{self, Target};
    let (ma, mi) = nvrtc::version()?;
    println!("NVRTC {ma}.{mi}");
    let mut ok = true;
    for &arch in archs {
        for file in nvrtc::kernel_files() {
            let t = std::time::Instant::now();
            let r = nvrtc::compile(file, arch, Target::Cubin);
            let secs = t.elapsed().as_secs_f64();
            let kernels: Vec<&str> = crate::kernels::KERNELS
                .iter()
                .filter(|k| k.0 == file)
                .map(|k| k.1)
                .collect();
            match r {
                Ok(cubin) => {
                    for k in &kernels {
                        println!(
                            "ok    sm_{arch}  {file:<36} {k:<28} (file: {} KiB cubin, {secs:.1} s)",
                            cubin.len().div_ceil(1024)
                        );
                    }
                }
                Err(e) => {
                    ok = false;
                    for k in &kernels {
                        println!("FAIL  sm_{arch}  {file:<36} {k}");
                    }
                    println!("{e}");
                }
            }
        }
    }
    if let Some(dir) = ptx_dir {
        let arch = *archs.iter().min().unwrap_or(&80);
        std::fs::create_dir_all(dir)
            .map_err(|e| crate::error::file_err(dir, format!("cannot create: {e}")))?;
        for file in nvrtc::kernel_files() {
            match nvrtc::compile(file, arch, Target::Ptx) {
                Ok(ptx) => {
                    let base = file.rsplit('/').next().unwrap_or(file);
                    let path = dir.join(base.replace(".cu", ".ptx"));
                    std::fs::write(&path, ptx)
                        .map_err(|e| crate::error::file_err(&path, format!("cannot write: {e}")))?;
                }
                Err(e) => {
                    ok = false;
                    println!("FAIL  compute_{arch} PTX {file}\n{e}");
                }
            }
        }
        println!(
            "PTX for compute_{arch} written to {} (one file per kernel file)",
            dir.display()
        );
    }
    Ok(ok)
}
