//! The image pipeline as library calls with plain config structs: [`embed`] (backbone
//! features of image files), [`infer`] (class probabilities under a trained model file), and
//! the batch loop they share with training's feature pass ([`batches`]: decode ahead ->
//! forward -> download, one rule for bad images); Grad-CAM heat maps ([`gradcam`]: one image
//! in -> probabilities + map, for `infer --heatmaps` and a server alike).

pub mod batches;
pub mod embed;
pub mod gradcam;
pub mod heatmap;
pub mod infer;
pub mod infer_heatmaps;
pub mod model;
pub mod shard;
pub mod tta;

pub use batches::{BatchOptions, Computed, Skipped, describe_skipped, run_batches};
pub use embed::{EmbedConfig, EmbedOptions, Embedded, embed, embed_images, write_embedding};
pub use gradcam::{Explained, Explainer};
pub use infer::{InferConfig, Inferred, infer};
pub use model::{EvalModel, FrozenBackbone, Outputs};
pub use tta::Tta;
