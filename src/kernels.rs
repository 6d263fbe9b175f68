//! The CUDA kernel sources under `kernels/`, embedded at build time by `build.rs`.

include!(concat!(env!("OUT_DIR"), "/kernel_sources.rs"));
