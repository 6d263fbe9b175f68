//! The CUDA kernel sources (`src/ops/<op>/<op>.cu`, `src/cuda/*.cu`) and device headers (`*.cuh`), embedded at build time by `build.rs`.

include!(concat!(env!("OUT_DIR"), "/kernel_sources.rs"));
