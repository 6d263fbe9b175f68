//! Build steps for the CUDA side:
//! 1. embed every kernel source (`src/ops/<op>/<op>.cu`, shared `src/cuda/*.cu`) and every
//!    shared device header (`*.cuh`) in the binary, so the CUDA backend hands them to NVRTC at
//!    run time without the source tree;
//! 2. list every `extern "C" __global__` kernel with its argument types, so each launch is
//!    checked against the kernel's real signature on the GPU and in the emulator alike;
//! 3. check that every `struct` in a `.cuh` header has a `#[repr(C)]` Rust mirror with the same
//!    fields in the same order and of matching types (kernel geometry travels as such structs);
//! 4. on Linux, compile the same sources as C++ for the CPU emulator (`emu/`), which
//!    `cargo test` uses to run every kernel against the reference ops on machines without a GPU.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

struct KernelDecl {
    file: String,
    name: String,
    sig: String,
}

/// Folders searched (recursively) for `.cu` / `.cuh` files.
const KERNEL_DIRS: &[&str] = &["src/ops", "src/cuda"];

fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    let mut entries: Vec<PathBuf> = rd.filter_map(|e| e.ok()).map(|e| e.path()).collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            walk(&p, out);
        } else {
            out.push(p);
        }
    }
}

fn rel(p: &Path) -> String {
    p.to_string_lossy().replace('\\', "/")
}

fn main() {
    println!("cargo:rerun-if-changed=emu");
    println!("cargo::rustc-check-cfg=cfg(skinengine_emu)");
    let mut all = Vec::new();
    for d in KERNEL_DIRS {
        println!("cargo:rerun-if-changed={d}");
        walk(Path::new(d), &mut all);
    }
    let ext = |p: &PathBuf, e: &str| p.extension().is_some_and(|x| x == e);
    let sources: Vec<PathBuf> = all.iter().filter(|p| ext(p, "cu")).cloned().collect();
    let headers: Vec<PathBuf> = all.iter().filter(|p| ext(p, "cuh")).cloned().collect();
    let rust_files: Vec<PathBuf> = all.iter().filter(|p| ext(p, "rs")).cloned().collect();

    // Kernel file names must be unique: they name NVRTC programs, cache files and emulator
    // translation units.
    let mut names: Vec<String> = sources
        .iter()
        .chain(&headers)
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    names.sort();
    if let Some(w) = names.windows(2).find(|w| w[0] == w[1]) {
        panic!("two kernel files are named {}: names must be unique", w[0]);
    }

    let mut kernels = Vec::new();
    let mut out = String::from(
        "/// (path, source) of every kernel file (`.cu`), sorted by path.\n\
         pub const KERNEL_SOURCES: &[(&str, &str)] = &[\n",
    );
    for p in &sources {
        println!("cargo:rerun-if-changed={}", rel(p));
        let abs = std::fs::canonicalize(p).expect("kernel file path");
        writeln!(
            out,
            "    ({:?}, include_str!({:?})),",
            rel(p),
            abs.display().to_string()
        )
        .unwrap();
        let src = std::fs::read_to_string(&abs).expect("read kernel file");
        kernels.extend(parse_kernels(&rel(p), &src));
    }
    out.push_str("];\n\n");
    out.push_str(
        "/// (include name, source) of every shared device header (`.cuh`); NVRTC gets them all,\n\
         /// and they are part of every module's cache key.\n\
         pub const KERNEL_HEADERS: &[(&str, &str)] = &[\n",
    );
    let mut header_structs = Vec::new();
    for p in &headers {
        println!("cargo:rerun-if-changed={}", rel(p));
        let abs = std::fs::canonicalize(p).expect("header path");
        let name = p.file_name().unwrap().to_string_lossy();
        writeln!(
            out,
            "    ({name:?}, include_str!({:?})),",
            abs.display().to_string()
        )
        .unwrap();
        let src = std::fs::read_to_string(&abs).expect("read header");
        header_structs.extend(parse_c_structs(&rel(p), &src));
    }
    out.push_str("];\n\n");
    check_struct_mirrors(&header_structs, &rust_files);
    out.push_str(
        "/// (file, kernel, argument codes) of every `extern \"C\" __global__` kernel. Codes: \
         F float*, I int*, H unsigned short*, V void* (a float or 16-bit buffer), f float, i int, u unsigned, l long long, d double, {Name} a struct.\n",
    );
    out.push_str("pub const KERNELS: &[(&str, &str, &str)] = &[\n");
    for k in &kernels {
        writeln!(out, "    ({:?}, {:?}, {:?}),", k.file, k.name, k.sig).unwrap();
    }
    out.push_str("];\n");
    let out_dir = PathBuf::from(std::env::var("OUT_DIR").unwrap());
    std::fs::write(out_dir.join("kernel_sources.rs"), out).expect("write kernel_sources.rs");

    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux") {
        let header_dirs: Vec<PathBuf> = headers
            .iter()
            .map(|h| std::fs::canonicalize(h.parent().unwrap()).unwrap())
            .collect();
        build_emulator(&out_dir, &sources, &header_dirs, &kernels);
        println!("cargo:rustc-cfg=skinengine_emu");
    }
}

/// A struct field: (name, type as written).
type Fields = Vec<(String, String)>;

/// `struct Name { int a; float b, c; };` declarations of a header (comments stripped).
fn parse_c_structs(file: &str, src: &str) -> Vec<(String, String, Fields)> {
    let src = strip_comments(src);
    let mut found = Vec::new();
    let mut rest = src.as_str();
    while let Some(pos) = rest.find("struct ") {
        let after = &rest[pos + 7..];
        let Some(open) = after.find('{') else { break };
        let name = after[..open].trim().to_string();
        let close = after.find('}').expect("unclosed struct");
        let mut fields = Vec::new();
        for decl in after[open + 1..close]
            .split(';')
            .map(str::trim)
            .filter(|d| !d.is_empty())
        {
            let words: Vec<&str> = decl.split_whitespace().collect();
            let (ty, names) = match words.as_slice() {
                ["long", "long", rest @ ..] => ("long long".to_string(), rest.join(" ")),
                [ty, rest @ ..] => (ty.to_string(), rest.join(" ")),
                [] => continue,
            };
            for n in names.split(',').map(str::trim) {
                fields.push((n.to_string(), ty.clone()));
            }
        }
        found.push((file.to_string(), name, fields));
        rest = &after[close..];
    }
    found
}

/// Every header struct needs a `#[repr(C)]` Rust struct of the same name with the same fields,
/// in the same order, of the mirrored types; a mismatch stops the build with both spellings.
fn check_struct_mirrors(structs: &[(String, String, Fields)], rust_files: &[PathBuf]) {
    let mut rust_src = String::new();
    for f in rust_files {
        println!("cargo:rerun-if-changed={}", rel(f));
        rust_src.push_str(&std::fs::read_to_string(f).unwrap_or_default());
        rust_src.push('\n');
    }
    for (file, name, fields) in structs {
        let pat = format!("pub struct {name} {{");
        let Some(pos) = rust_src.find(&pat) else {
            panic!(
                "{file}: struct {name} has no #[repr(C)] Rust mirror (`pub struct {name}`) under src/ops or src/cuda"
            );
        };
        let before = &rust_src[..pos];
        let attr_start = before.rfind("\n\n").unwrap_or(0);
        if !before[attr_start..].contains("#[repr(C)]") {
            panic!("Rust struct {name} mirrors {file} but is not #[repr(C)]");
        }
        let body_start = pos + pat.len();
        let body_end = body_start + rust_src[body_start..].find('}').unwrap();
        let rust_fields: Vec<(String, String)> = strip_comments(&rust_src[body_start..body_end])
            .split(',')
            .map(str::trim)
            .filter(|f| !f.is_empty())
            .map(|f| {
                let f = f.trim_start_matches("pub ").trim();
                let (n, t) = f.split_once(':').expect("field `name: type`");
                (n.trim().to_string(), t.trim().to_string())
            })
            .collect();
        let mirrored: Vec<(String, String)> = fields
            .iter()
            .map(|(n, t)| {
                let rt = match t.as_str() {
                    // Every int is a range-checked KInt on the Rust side.
                    "int" => "KInt",
                    "unsigned" => "u32",
                    "float" => "f32",
                    "double" => "f64",
                    "long long" => "i64",
                    other => panic!(
                        "{file}: struct {name}: field type `{other}` has no Rust mirror rule"
                    ),
                };
                (n.clone(), rt.to_string())
            })
            .collect();
        if mirrored != rust_fields {
            panic!(
                "{file}: struct {name} {mirrored:?} does not match its Rust mirror {rust_fields:?} \
                 (same fields, same order, int=KInt unsigned=u32 float=f32 double=f64 long long=i64)"
            );
        }
    }
}

/// Compiles each kernel file as its own C++ translation unit with `emu/cuda_emu.h` forced in,
/// plus a table per file and one registry the runtime looks kernels up in.
fn build_emulator(
    out_dir: &Path,
    files: &[PathBuf],
    header_dirs: &[PathBuf],
    kernels: &[KernelDecl],
) {
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
    for d in header_dirs {
        build.include(d);
    }
    let mut registry = String::from("#include \"cuda_emu.h\"\n#include <cstring>\n");
    let mut lookups = String::new();
    for p in files {
        let f = &rel(p);
        let stem = p
            .file_stem()
            .unwrap()
            .to_string_lossy()
            .replace(['-', '.'], "_");
        let abs = std::fs::canonicalize(p).unwrap();
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
            .collect::<Vec<String>>()
            .concat();
        found.push(KernelDecl {
            file: file.to_string(),
            name,
            sig,
        });
        rest = &rest[close..];
    }
    found
}

fn param_code(file: &str, kernel: &str, p: &str) -> String {
    let words: Vec<&str> = p
        .split(|c: char| c.is_whitespace() || c == '*')
        .filter(|w| !w.is_empty() && *w != "const" && *w != "__restrict__")
        .collect();
    let ty = words[..words.len().saturating_sub(1)].join(" ");
    let code = match (p.contains('*'), ty.as_str()) {
        (true, "float") => 'F',
        (true, "int") => 'I',
        (true, "unsigned short") => 'H',
        // An activation in any float format (src/cuda/act.cuh), followed by its format code.
        (true, "void") => 'V',
        (false, "float") => 'f',
        (false, "int") => 'i',
        (false, "unsigned" | "unsigned int") => 'u',
        (false, "long long" | "int64_t") => 'l',
        (false, "double") => 'd',
        // A geometry struct passed by value (mirrored in Rust, checked by name at launch).
        (false, s) if s.starts_with(|c: char| c.is_ascii_uppercase()) => {
            return format!("{{{s}}}");
        }
        _ => panic!("{file}: kernel {kernel}: unsupported parameter type in `{p}`"),
    };
    code.to_string()
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
