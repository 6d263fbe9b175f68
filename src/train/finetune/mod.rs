//! Training through the backbone (`train --fine-tune layer4|layer3|layer2|all`): the network
//! (backbone + a head of our own, [`HeadSpec`]) trains from a chosen stage on, on images
//! augmented afresh every epoch, with Adam/AdamW or SGD, two learning rates, a schedule and
//! gradient accumulation; validation runs the whole network in evaluation mode after every
//! epoch; the model file carries the whole network.
//!
//! Files: [`config`] (what a fine-tuning run adds to `TrainConfig`), [`step`] (one optimiser
//! step: micro-batches, accumulation), [`images`] (decoding: augmented training images,
//! evaluation images), [`checkpoint`] (network + optimiser state, resumable exactly),
//! [`memory`] (will the batch fit: measured, refused up front with one that does), [`run`] (the
//! run, in order).
//!
//! What is not cached, and why: `--fine-tune head` trains on cached backbone features (the
//! backbone never changes). When the backbone trains, the frozen part below the first trained
//! stage does not change either, but its input does: every epoch draws a new augmentation of
//! every image, so the frozen part's outputs are new every epoch and a cache would hold each
//! one once. Caching them would mean training on fixed views, which is what fine-tuning with
//! augmentation improves on; the frozen part instead runs forward only (no tape, no backward,
//! about a third of its training cost).

pub mod checkpoint;
pub mod config;
pub mod images;
pub mod memory;
pub mod run;
pub mod step;

pub use config::{FineTune, FineTuneConfig};
pub use step::{train_step, trained_params};
