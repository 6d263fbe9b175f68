//! Embeds every `kernels/*.cu` (and `.cuh`) source in the binary, so the CUDA backend can hand
//! them to NVRTC at run time without the source tree, and reruns when one changes.

use std::fmt::Write as _;
use std::path::Path;

fn main() {
    let dir = Path::new("kernels");
    println!("cargo:rerun-if-changed=kernels");
    let mut files: Vec<String> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.ends_with(".cu") || n.ends_with(".cuh"))
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    let mut out = String::from("/// (file name, source) of every kernel file, sorted by name.\n");
    out.push_str("pub const KERNEL_SOURCES: &[(&str, &str)] = &[\n");
    for f in &files {
        println!("cargo:rerun-if-changed=kernels/{f}");
        let abs = std::fs::canonicalize(dir.join(f)).expect("kernel file path");
        writeln!(
            out,
            "    ({f:?}, include_str!({:?})),",
            abs.display().to_string()
        )
        .unwrap();
    }
    out.push_str("];\n");
    let dest = Path::new(&std::env::var("OUT_DIR").unwrap()).join("kernel_sources.rs");
    std::fs::write(dest, out).expect("write kernel_sources.rs");
}
