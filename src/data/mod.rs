//! Data: labelled data sets in their on-disk layouts (and synthetic ones), splits, views,
//! class weights, image decoding and preprocessing, per-epoch training augmentation, image files.
//!
//! Dependencies run one way: `schema` (names of the layouts) <- `dataset` (reading them) and
//! `synth` (writing them); `image` (pixels, view transforms) <- `views` (which views exist);
//! `dataset` <- `split`, `views`; `image` <- `augment` (random per-epoch transforms);
//! `image`, `scaled` (DCT-scaled JPEG decoding) <- `input` (file -> model input, the one place
//! that picks full or scaled decoding).

pub mod augment;
pub mod class_weights;
pub mod dataset;
pub mod files;
pub mod image;
pub mod input;
pub mod integrity;
pub mod prefetch;
pub mod scaled;
pub mod schema;
pub mod split;
pub mod synth;
pub mod views;
