//! Checks of the CUDA backend shared by the emulator tests (`tests/cuda_emulation.rs`, run by
//! `cargo test` everywhere) and the GPU tests (`tests/cuda_gpu.rs`, run by the GPU check on a
//! machine with a GPU). Each check takes the backend, so both run the identical launches.
#![allow(dead_code)]

pub mod adam;
pub mod batchnorm;
pub mod conv;
pub mod elementwise;
pub mod loss;
pub mod model;
pub mod pool;
pub mod selftest;
