//! Grad-CAM (Selvaraju et al. 2017) of a trained model file: where in an image the evidence for
//! a class lies. For the last convolutional block's map A (C channels of h x w; see
//! [`cam_slot`]: ResNets layer4's output, VGG19 its last convolution's ReLU output) and the
//! class's LOGIT y_c (the pre-softmax score, as in the paper: the softmax would mix in every
//! other class's score), alpha_k = mean over the h x w positions of dy_c/dA_k, and the map is
//! ReLU(sum_k alpha_k A_k). The gradient runs back through everything after the map in
//! evaluation mode: global pooling (or VGG's max-pool, flatten and classifier layers), a
//! fine-tuned network's head, or a head model's feature standardisation and head.
//!
//! [`Explainer`] is the library entry: a model file in, then images (a batch for `infer
//! --heatmaps`, or one decoded image for a server: [`Explainer::explain_image`]) -> class
//! probabilities + map. Every op runs on the backend, so every backend (reference, cpu, cuda,
//! the CUDA emulator) explains; the map and its gradient come to the host for the weighted sum.

use std::path::Path;

use super::heatmap::{Cam, overlay, seen_window};
use super::infer::head_backbone;
use super::model::FrozenBackbone;
use crate::backend::Backend;
use crate::classes::ClassList;
use crate::data::image::{INPUT_SIZE, Preprocess, Rgb, normalise_into, resize, shades_of_gray};
use crate::error::{Result, invalid};
use crate::model::net::gradcam::{Tail, TailValues, cam_slot};
use crate::model::net::{BnMode, Net};
use crate::tensor::Tensor;
use crate::train::head::Head;
use crate::train::model_file::{LoadedModel, load_model};
use crate::train::norm::FeatureNorm;

/// What is explained: a fine-tuned network, or a head on a frozen backbone's features.
pub enum CamModel<B: Backend> {
    Net(Net<B>),
    Head {
        backbone: FrozenBackbone<B>,
        head: Head<B>,
        norm: FeatureNorm,
    },
}

/// A model ready to classify and explain images.
pub struct Explainer<B: Backend> {
    pub model: CamModel<B>,
    /// Side of the square input.
    pub size: u32,
    pub preprocess: Preprocess,
    /// The model file's classes, in output order: what the probabilities, a class index and
    /// any report of them (CSV columns, heat map metadata, the server's JSON) refer to.
    pub classes: ClassList,
}

/// One image classified and explained.
#[derive(Clone, Debug)]
pub struct Explained {
    /// Class probabilities (averaged over the views when there are several), one per class of
    /// [`Explainer::classes`].
    pub probs: Vec<f32>,
    /// The class explained: the one asked for, else the most probable.
    pub class: usize,
    /// Channel weights alpha_k (mean gradient of the class logit over each channel's map).
    pub alphas: Vec<f32>,
    /// ReLU(sum_k alpha_k A_k) at the map's resolution, of the image itself (view 0).
    pub cam: Cam,
}

/// The forward pass from a map, with what its gradient needs.
pub struct FromMap<T> {
    /// [N, classes]
    pub logits: T,
    saved: Saved<T>,
}

enum Saved<T> {
    Net(TailValues<T>),
    Head {
        /// The backbone's tail (map -> features) when it is a [`Net`].
        tail: Option<TailValues<T>>,
        map_shape: Vec<usize>,
        /// (input, dense output, ReLU output) of each hidden layer.
        layers: Vec<(T, T, T)>,
        last_in: T,
    },
}

impl<B: Backend> Explainer<B> {
    /// The model file `model` (either format); a head model's backbone is `weights` or the file
    /// it records, checked as `infer` checks it. The classes are the list the file records
    /// (ISIC 2018's 7, ISIC 2019's 8, ...).
    pub fn load(b: &B, model: &Path, weights: Option<&Path>) -> Result<Self> {
        Ok(match load_model(b, model)? {
            LoadedModel::Net(m) => Explainer {
                model: CamModel::Net(m.net),
                size: m.size,
                preprocess: m.preprocess,
                classes: m.classes,
            },
            LoadedModel::Head(m) => Explainer {
                model: CamModel::Head {
                    backbone: head_backbone(b, model, weights, &m)?,
                    head: m.head,
                    norm: m.norm,
                },
                size: INPUT_SIZE,
                preprocess: m.preprocess,
                classes: m.classes,
            },
        })
    }

    /// The [`Net`] whose nodes run after the map, and the slot the gradient starts from (its
    /// logits, or the features a head model's head reads); `None` for the folded ResNet50.
    fn tail_net(&self) -> Result<Option<(&Net<B>, usize)>> {
        Ok(match &self.model {
            CamModel::Net(net) => {
                let logits = net
                    .graph
                    .logits
                    .ok_or_else(|| invalid("gradcam", "the network has no classifier"))?;
                Some((net, logits))
            }
            CamModel::Head {
                backbone: FrozenBackbone::Net(net),
                ..
            } => Some((net, net.graph.features)),
            CamModel::Head { .. } => None,
        })
    }

    /// The map Grad-CAM explains, [N, C, h, w], of normalised images `x` [N, 3, size, size].
    pub fn map(&self, b: &B, x: &B::Tensor) -> Result<B::Tensor> {
        match (self.tail_net()?, &self.model) {
            (Some((net, _)), _) => {
                let slot = cam_slot(&net.graph)?;
                // Every node frozen (evaluation mode); only the map is kept.
                let n = net.graph.nodes.len();
                let mut tape = net.forward(b, x, BnMode::Eval, n, &[slot])?;
                Ok(tape.values[slot].take().expect("kept slots are held"))
            }
            (
                None,
                CamModel::Head {
                    backbone: FrozenBackbone::Folded(m),
                    ..
                },
            ) => m.map(b, x),
            (None, _) => unreachable!("only the folded backbone has no tail net"),
        }
    }

    /// The class logits [N, classes] from a map (what [`Explainer::map`] returns, or any map of
    /// that shape), with the same ops as `infer`'s forward pass, so the probabilities are
    /// `infer`'s.
    pub fn logits_from_map(&self, b: &B, map: B::Tensor) -> Result<FromMap<B::Tensor>> {
        let tail = self.tail_net()?;
        match &self.model {
            CamModel::Net(net) => {
                let (_, out) = tail.expect("a Net has a tail");
                let v = Tail::new(net, out)?.forward(b, map)?;
                let logits = v.get(out).expect("computed").clone();
                Ok(FromMap {
                    logits,
                    saved: Saved::Net(v),
                })
            }
            CamModel::Head {
                backbone,
                head,
                norm,
            } => {
                let map_shape = b.shape(&map).to_vec();
                let (features, tail) = match backbone {
                    FrozenBackbone::Folded(_) => (b.global_avg_pool(&map)?, None),
                    FrozenBackbone::Net(net) => {
                        let out = net.graph.features;
                        let v = Tail::new(net, out)?.forward(b, map)?;
                        (v.get(out).expect("computed").clone(), Some(v))
                    }
                };
                let mut h = b.upload(&norm.apply(b.download(&features)?))?;
                // Head::forward in evaluation mode, keeping each layer's values.
                let mut layers = Vec::new();
                for l in &head.hidden {
                    let z = b.dense(&h, &l.w, Some(&l.b))?;
                    let a = match &l.bn {
                        Some(bn) => b.batchnorm_inference(&z, bn)?,
                        None => z.clone(),
                    };
                    let out = b.relu(&a)?;
                    layers.push((h, z, out.clone()));
                    h = out;
                }
                let logits = b.dense(&h, &head.out_w, Some(&head.out_b))?;
                Ok(FromMap {
                    logits,
                    saved: Saved::Head {
                        tail,
                        map_shape,
                        layers,
                        last_in: h,
                    },
                })
            }
        }
    }

    /// d(sum(logits * dlogits))/d(map) for the pass `from`: with one-hot rows of `dlogits`, the
    /// gradient of each image's class logit with respect to its map (images are independent in
    /// evaluation mode).
    pub fn map_gradient(
        &self,
        b: &B,
        from: &FromMap<B::Tensor>,
        dlogits: B::Tensor,
    ) -> Result<B::Tensor> {
        let tail = self.tail_net()?;
        match (&self.model, &from.saved) {
            (CamModel::Net(net), Saved::Net(v)) => {
                let (_, out) = tail.expect("a Net has a tail");
                Tail::new(net, out)?.backward(b, v, dlogits)
            }
            (
                CamModel::Head {
                    backbone,
                    head,
                    norm,
                },
                Saved::Head {
                    tail: tail_values,
                    map_shape,
                    layers,
                    last_in,
                },
            ) => {
                let mut d = b.dense_backward(&dlogits, last_in, &head.out_w)?.dx;
                for (l, (input, z, out)) in head.hidden.iter().zip(layers).rev() {
                    // ReLU's gradient mask from its output: out > 0 exactly where its input is.
                    let da = b.relu_backward(&d, out)?;
                    let dz = match &l.bn {
                        Some(bn) => b.batchnorm_inference_backward(&da, z, bn)?.0,
                        None => da,
                    };
                    d = b.dense_backward(&dz, input, &l.w)?.dx;
                }
                // The standardisation (f - mean) / std scales each feature's gradient by 1/std.
                let mut df = b.download(&d)?;
                let width = norm.std.len();
                for row in df.data_mut().chunks_mut(width) {
                    for (g, s) in row.iter_mut().zip(&norm.std) {
                        *g /= s;
                    }
                }
                let df = b.upload(&df)?;
                match (backbone, tail_values) {
                    (FrozenBackbone::Folded(_), _) => b.global_avg_pool_backward(&df, map_shape),
                    (FrozenBackbone::Net(net), Some(v)) => {
                        Tail::new(net, net.graph.features)?.backward(b, v, df)
                    }
                    (FrozenBackbone::Net(_), None) => unreachable!("a Net backbone keeps its tail"),
                }
            }
            _ => Err(invalid("gradcam", "a pass of another model")),
        }
    }

    /// Classifies and explains a batch `x` [items * views, 3, size, size] of normalised images,
    /// `views` consecutive rows per image (test-time augmentation; the first row is the image
    /// itself). Probabilities are averaged over an image's views exactly as `infer` averages
    /// them; the map explains `class` (default: the most probable class after averaging) on
    /// the first view only: the other views are flipped or rotated, and a map of the image
    /// itself is what is drawn over it.
    pub fn explain(
        &self,
        b: &B,
        x: &Tensor,
        views: usize,
        class: Option<usize>,
    ) -> Result<Vec<Explained>> {
        let map = self.map(b, &b.upload(x)?)?;
        self.explain_map(b, map, views, class)
    }

    /// [`Explainer::explain`] from the images' maps [items * views, C, h, w] (what
    /// [`Explainer::map`] returns, or a synthetic map with a known answer).
    pub fn explain_map(
        &self,
        b: &B,
        map: B::Tensor,
        views: usize,
        class: Option<usize>,
    ) -> Result<Vec<Explained>> {
        let k = self.classes.len();
        if let Some(c) = class.filter(|&c| c >= k) {
            return Err(invalid(
                "gradcam",
                format!("class {c} is not one of the {k} classes"),
            ));
        }
        let rows = b.shape(&map)[0];
        if views == 0 || rows % views != 0 {
            return Err(invalid(
                "gradcam",
                format!("{rows} rows are not whole images of {views} views"),
            ));
        }
        let from = self.logits_from_map(b, map.clone())?;
        let probs = b.download(&b.softmax(&from.logits)?)?;
        if probs.shape() != [rows, k] {
            return Err(invalid(
                "gradcam",
                format!(
                    "the model gives {:?} outputs for {rows} images of {k} classes ({})",
                    probs.shape(),
                    self.classes.joined()
                ),
            ));
        }
        let items = rows / views;
        let mut averaged = Vec::with_capacity(items);
        let mut dy = vec![0f32; rows * k];
        for i in 0..items {
            let mut avg = vec![0f32; k];
            for row in probs.data()[i * views * k..(i + 1) * views * k].chunks(k) {
                for (a, v) in avg.iter_mut().zip(row) {
                    *a += v / views as f32;
                }
            }
            // The argmax `infer`'s summary counts (ties: the last maximum).
            let c = class.unwrap_or_else(|| {
                (0..k)
                    .max_by(|&p, &q| avg[p].total_cmp(&avg[q]))
                    .unwrap_or(0)
            });
            dy[i * views * k + c] = 1.0;
            averaged.push((avg, c));
        }
        let dmap = self.map_gradient(b, &from, b.upload(&Tensor::new(&[rows, k], dy)?)?)?;
        let (a, da) = (b.download(&map)?, b.download(&dmap)?);
        let &[_, ch, h, w] = a.shape() else {
            return Err(invalid("gradcam", "the map is not [N, C, h, w]"));
        };
        let per = ch * h * w;
        Ok(averaged
            .into_iter()
            .enumerate()
            .map(|(i, (probs, class))| {
                let at = i * views * per;
                let (alphas, cam) =
                    grad_cam(&a.data()[at..at + per], &da.data()[at..at + per], ch, h, w);
                Explained {
                    probs,
                    class,
                    alphas,
                    cam,
                }
            })
            .collect())
    }

    /// One decoded image (its original pixels, any size) -> probabilities and the map of
    /// `class` (default: the most probable): the call a server makes per request. The image is
    /// preprocessed as `infer` preprocesses files (colour constancy, resize, normalise).
    pub fn explain_image(&self, b: &B, img: &Rgb, class: Option<usize>) -> Result<Explained> {
        let mut im = img.clone();
        if self.preprocess.color_constancy {
            shades_of_gray(&mut im, 6.0);
        }
        let im = resize(&im, self.preprocess.resize, self.size)?;
        let s = self.size as usize;
        let mut x = vec![0f32; 3 * s * s];
        normalise_into(&im, &mut x);
        let mut e = self.explain(b, &Tensor::new(&[1, 3, s, s], x)?, 1, class)?;
        Ok(e.pop().expect("one image in, one out"))
    }

    /// The heat map drawn over the original image `img` (the one explained): the map upsampled
    /// onto the region the network saw, jet-coloured and alpha-blended (see
    /// [`super::heatmap`]).
    pub fn overlay(&self, img: &Rgb, cam: &Cam) -> Rgb {
        let window = seen_window(img.width, img.height, &self.preprocess, self.size);
        overlay(img, cam, window)
    }
}

/// Grad-CAM of one image from its map `a` [C, h, w] and the gradient `da` of the class logit
/// with respect to it: alpha_k = mean of `da` over channel k's positions, and the map
/// ReLU(sum_k alpha_k A_k) (sums in f64). Returns (alphas, map).
pub fn grad_cam(a: &[f32], da: &[f32], c: usize, h: usize, w: usize) -> (Vec<f32>, Cam) {
    let hw = h * w;
    assert_eq!((a.len(), da.len()), (c * hw, c * hw), "grad_cam: map sizes");
    let alphas: Vec<f64> = da
        .chunks(hw)
        .map(|g| g.iter().map(|&v| v as f64).sum::<f64>() / hw as f64)
        .collect();
    let mut cam = vec![0f64; hw];
    for (k, ak) in a.chunks(hw).enumerate() {
        for (m, &v) in cam.iter_mut().zip(ak) {
            *m += alphas[k] * v as f64;
        }
    }
    (
        alphas.iter().map(|&v| v as f32).collect(),
        Cam {
            height: h,
            width: w,
            data: cam.iter().map(|&v| v.max(0.0) as f32).collect(),
        },
    )
}
