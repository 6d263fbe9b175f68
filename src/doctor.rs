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
    let nvrtc = probe_library(&[
        "libnvrtc.so.13",
        "libnvrtc.so.12",
        "libnvrtc.so",
        "nvrtc64_120_0.dll",
    ]);
    let _ = writeln!(
        s,
        "nvrtc library: {}",
        nvrtc.unwrap_or_else(|| "not found (install nvidia-cuda-nvrtc or the CUDA toolkit)".into())
    );
    let _ = writeln!(
        s,
        "kernel sources embedded: {}",
        crate::kernels::KERNEL_SOURCES.len()
    );
    let _ = writeln!(s, "backends: cpu, reference");
    s
}
