//! Data: image decoding and preprocessing, image folders.

pub mod files;
pub mod image;
