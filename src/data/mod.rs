//! Data: image decoding and preprocessing, image folders.

pub mod dataset;
pub mod files;
pub mod image;
pub mod prefetch;
pub mod split;
pub mod synth;
pub mod views;
pub mod weights;
