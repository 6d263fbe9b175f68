// Structs that kernels take by value, mirrored field for field by `#[repr(C)]` Rust structs of
// the same name (src/cuda/kernel_args.rs); build.rs stops the build if the two disagree.
#pragma once

// A sliding window over x [N, C, H, W] -> y [N, O, HO, WO]: convolution and pooling use the same
// struct, so their geometry has one order everywhere (input, output, kernel, stride, padding).
// For pooling O = C.
struct Window {
    int n, c, h, w;
    int o, ho, wo;
    int kh, kw;
    int sh, sw;
    int ph, pw;
};
