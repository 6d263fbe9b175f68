//! Build steps for the CUDA side:
//! 1. embed every `kernels/*.cu` (and `.cuh`) source in the binary, so the CUDA backend hands
//!    them to NVRTC at run time without the source tree;
//! 2. list every `extern "C" __global__` kernel with its argument types, so each launch is
//!    checked against the kernel's real signature on the GPU and in the emulator alike;
//! 3. on Linux, compile the same sources as C++ for the CPU emulator (`emu/`), which
//!    `cargo test` uses to run every kernel against the reference ops on machines without a GPU.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

struct KernelDecl {
    file: String,
    name: String,
    sig: String,
}

fn main() {
    let dir = Path::new("kernels");
    println!("cargo:rerun-if-changed=kernels");
    println!("cargo:rerun-if-changed=emu");
    println!("cargo::rustc-check-cfg=cfg(skinengine_emu)");
    let mut files: Vec<String> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.ends_with(".cu") || n.ends_with(".cuh"))
                .collect()
        })
        .unwrap_or_default();
    files.sort();

    let mut kernels = Vec::new();
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
        if f.ends_with(".cu") {
            let src = std::fs::read_to_string(&abs).expect("read kernel file");
            kernels.extend(parse_kernels(f, &src));
        }
    }
    out.push_str("];\n\n");
    out.push_str(
        "/// (file, kernel, argument codes) of every `extern \"C\" __global__` kernel. Codes: \
         F float*, I int*, f float, i int, u unsigned, l long long.\n",
    );
    out.push_str("pub const KERNELS: &[(&str, &str, &str)] = &[\n");
    for k in &kernels {
        writeln!(out, "    ({:?}, {:?}, {:?}),", k.file, k.name, k.sig).unwrap();
    }
    out.push_str("];\n");
    let out_dir = PathBuf::from(std::env::var("OUT_DIR").unwrap());
    std::fs::write(out_dir.join("kernel_sources.rs"), out).expect("write kernel_sources.rs");

    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux") {
        build_emulator(&out_dir, &files, &kernels);
        println!("cargo:rustc-cfg=skinengine_emu");
    }
}

/// Compiles each kernel file as its own C++ translation unit with `emu/cuda_emu.h` forced in,
/// plus a table per file and one registry the runtime looks kernels up in.
fn build_emulator(out_dir: &Path, files: &[String], kernels: &[KernelDecl]) {
    let emu_dir = out_dir.join("emu");
    std::fs::create_dir_all(&emu_dir).unwrap();
    let header = std::fs::canonicalize("emu/cuda_emu.h").expect("emu/cuda_emu.h");
    let mut build = cc::Build::new();
    build
        .cpp(true)
        .std("c++20")
        .opt_level(2)
        .warnings(false)
        .flag("-Wno-unknown-pragmas")
        // Kernels read float arrays through float4 pointers, as CUDA code does.
        .flag("-fno-strict-aliasing")
        .include("emu")
        .file("emu/runtime.cpp");
    let mut registry = String::from("#include \"cuda_emu.h\"\n#include <cstring>\n");
    let mut lookups = String::new();
    for f in files.iter().filter(|f| f.ends_with(".cu")) {
        let stem = f.trim_end_matches(".cu").replace(['-', '.'], "_");
        let abs = std::fs::canonicalize(Path::new("kernels").join(f)).unwrap();
        let src = std::fs::read_to_string(&abs).unwrap();
        let mut tu = format!("#line 1 {:?}\n", abs.display().to_string());
        tu.push_str(&rewrite_dynamic_shared(&src));
        tu.push_str("\nstatic const emu::Kernel emu_table[] = {\n");
        let mine: Vec<_> = kernels.iter().filter(|k| &k.file == f).collect();
        for k in &mine {
            writeln!(tu, "    EMU_KERNEL({}),", k.name).unwrap();
        }
        if mine.is_empty() {
            tu.push_str("    {nullptr, nullptr, nullptr},\n");
        }
        writeln!(
            tu,
            "}};\nextern \"C\" const emu::Kernel* emu_table_{stem}(size_t* n) {{ *n = {}; return emu_table; }}",
            mine.len()
        )
        .unwrap();
        let path = emu_dir.join(format!("{stem}.cpp"));
        std::fs::write(&path, tu).unwrap();
        build.file(&path);
        writeln!(
            registry,
            "extern \"C\" const emu::Kernel* emu_table_{stem}(size_t*);"
        )
        .unwrap();
        writeln!(
            lookups,
            "    {{ size_t n; const emu::Kernel* t = emu_table_{stem}(&n); for (size_t i = 0; i < n; ++i) if (!std::strcmp(t[i].name, name)) return &t[i]; }}"
        )
        .unwrap();
    }
    registry.push_str("extern \"C\" const emu::Kernel* emu_find_kernel(const char* name) {\n");
    registry.push_str(&lookups);
    registry.push_str("    return nullptr;\n}\n");
    let reg_path = emu_dir.join("registry.cpp");
    std::fs::write(&reg_path, registry).unwrap();
    build.file(&reg_path);
    build.flag("-include").flag(header.to_str().unwrap());
    // Faults the GPU raises but x86 forgives: misaligned vector loads (float4 must be 16-byte
    // aligned) and indexing past a static (shared-memory) array abort with a message instead of
    // running on. Debug-profile builds only (what `cargo test` uses): release binaries must not
    // need gcc's sanitizer runtime on machines that lack it.
    if std::env::var("PROFILE").as_deref() == Ok("debug") {
        build
            .flag("-fsanitize=alignment,bounds")
            .flag("-fno-sanitize-recover=all");
        println!("cargo:rustc-link-lib=ubsan");
    }
    build.compile("skinengine_emu");
}

/// `extern __shared__ [__align__(n)] T name[];` (dynamic shared memory, sized at launch) has no
/// C++ equivalent; the emulator gets `T* name = (T*)emu_dynamic_shared();` on the same line.
fn rewrite_dynamic_shared(src: &str) -> String {
    let mut out = String::with_capacity(src.len());
    for line in src.lines() {
        let t = line.trim_start();
        if let Some(rest) = t.strip_prefix("extern __shared__")
            && let Some(decl) = rest.trim().strip_suffix("[];")
        {
            let mut toks: Vec<&str> = decl
                .split_whitespace()
                .filter(|w| !w.starts_with("__align__"))
                .collect();
            let name = toks
                .pop()
                .expect("dynamic shared declaration without a name");
            let ty = toks.join(" ");
            let indent = &line[..line.len() - t.len()];
            writeln!(
                out,
                "{indent}{ty}* {name} = reinterpret_cast<{ty}*>(emu_dynamic_shared());"
            )
            .unwrap();
        } else {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

/// Finds `extern "C" __global__ ... name(params)` declarations and encodes their parameter
/// types. Comments are stripped first so a commented-out kernel is not listed.
fn parse_kernels(file: &str, src: &str) -> Vec<KernelDecl> {
    let src = strip_comments(src);
    let mut found = Vec::new();
    let marker = "extern \"C\" __global__";
    let mut rest = src.as_str();
    while let Some(pos) = rest.find(marker) {
        rest = &rest[pos + marker.len()..];
        let open = rest.find('(').expect("kernel without parameter list");
        let mut head = rest[..open].trim().to_string();
        // `__launch_bounds__(...)` has its own parentheses: skip past it.
        let mut params_from = open;
        if head.ends_with("__launch_bounds__") {
            let close = rest[open..].find(')').unwrap() + open;
            let open2 = rest[close..].find('(').unwrap() + close;
            head = rest[close + 1..open2].trim().to_string();
            params_from = open2;
        }
        let name = head
            .split_whitespace()
            .last()
            .expect("kernel name")
            .to_string();
        let close = rest[params_from..]
            .find(')')
            .expect("unclosed parameter list")
            + params_from;
        let params = &rest[params_from + 1..close];
        let sig: String = params
            .split(',')
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(|p| param_code(file, &name, p))
            .collect();
        found.push(KernelDecl {
            file: file.to_string(),
            name,
            sig,
        });
        rest = &rest[close..];
    }
    found
}

fn param_code(file: &str, kernel: &str, p: &str) -> char {
    let words: Vec<&str> = p
        .split(|c: char| c.is_whitespace() || c == '*')
        .filter(|w| !w.is_empty() && *w != "const" && *w != "__restrict__")
        .collect();
    let ty = words[..words.len().saturating_sub(1)].join(" ");
    match (p.contains('*'), ty.as_str()) {
        (true, "float") => 'F',
        (true, "int") => 'I',
        (false, "float") => 'f',
        (false, "int") => 'i',
        (false, "unsigned" | "unsigned int") => 'u',
        (false, "long long" | "int64_t") => 'l',
        _ => panic!("{file}: kernel {kernel}: unsupported parameter type in `{p}`"),
    }
}

fn strip_comments(src: &str) -> String {
    let mut out = String::with_capacity(src.len());
    let mut chars = src.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '/' && chars.peek() == Some(&'/') {
            for c in chars.by_ref() {
                if c == '\n' {
                    out.push('\n');
                    break;
                }
            }
        } else if c == '/' && chars.peek() == Some(&'*') {
            chars.next();
            let mut prev = ' ';
            for c in chars.by_ref() {
                if prev == '*' && c == '/' {
                    break;
                }
                prev = c;
            }
        } else {
            out.push(c);
        }
    }
    out
}
