//! Views: the images the classifier actually sees after augmentation and oversampling. Each view
//! is (sample, transform) with a stable name (`<image id>` + suffix) so its features can be
//! cached and found again.
//!
//! - `mirror`: every image also horizontally flipped (`_hflip`).
//! - `oversample` (the seed's scheme): DF and VASC get 4 random central crops (`_crop<k>`, about
//!   the central 500x350 of a 600x450 image with +-20 px jitter, scaled for other sizes) plus
//!   the mirror of each (`_crop<k>_hflip`); AKIEC gets a vertical flip (`_vflip`) and its mirror
//!   (`_vflip_hflip`). Crops are real crops, drawn from an RNG seeded by (seed, image id, k), so
//!   a view's pixels never depend on which other images are in the set.
//! - The rules are keyed by class code and looked up in the data set's class list
//!   ([`crate::classes::ClassList::same_class`]): ISIC 2019's `AK` is HAM10000's `AKIEC` and gets
//!   its vertical flip; a class the seed did not know (ISIC 2019's `SCC`) gets the default rule,
//!   no extra views, like MEL, NV, BCC and BKL.
//!
//! What a transform does to pixels lives in `data::image` ([`Transform`], `image::apply`): this
//! module only decides which views exist and names them.

use crate::data::dataset::Dataset;
use crate::data::image::{CropFrac, Transform};
use crate::io::hash::fnv1a64;
use crate::rng::Rng;

#[derive(Clone, Debug, PartialEq)]
pub struct View {
    pub sample: usize,
    pub transform: Transform,
    /// `<image id>[_crop<k>][_vflip][_hflip]`
    pub name: String,
}

#[derive(Clone, Debug, PartialEq)]
pub struct ViewConfig {
    pub mirror: bool,
    pub oversample: bool,
    /// Random central crops per image of a crop class.
    pub crops: usize,
    /// Codes of the classes that get crops (default DF, VASC).
    pub crop_classes: Vec<String>,
    /// Codes of the classes that get a vertical flip (default AKIEC, which is ISIC 2019's AK).
    pub vflip_classes: Vec<String>,
}

impl Default for ViewConfig {
    fn default() -> Self {
        ViewConfig {
            mirror: false,
            oversample: false,
            crops: 4,
            crop_classes: vec!["DF".into(), "VASC".into()],
            vflip_classes: vec!["AKIEC".into()],
        }
    }
}

/// The k-th random central crop: about the central 500x350 of 600x450 (w 5/6, h 7/9 of the
/// image), centre jittered by up to 20/600 of the width and 20/450 of the height.
pub fn random_crop(seed: u64, id: &str, k: usize) -> CropFrac {
    let mut rng =
        Rng::new(seed ^ fnv1a64(id.as_bytes()) ^ (k as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
    let (w, h) = (500.0 / 600.0, 350.0 / 450.0);
    let dx = rng.uniform(-20.0, 20.0) / 600.0;
    let dy = rng.uniform(-20.0, 20.0) / 450.0;
    CropFrac {
        x: (1.0 - w) / 2.0 + dx,
        y: (1.0 - h) / 2.0 + dy,
        w,
        h,
    }
}

/// The views of the samples `indices` (in order), under `cfg`.
pub fn make_views(ds: &Dataset, indices: &[usize], cfg: &ViewConfig, seed: u64) -> Vec<View> {
    // The rules' classes as indices of the data set's list (codes it lacks match nothing).
    let resolve = |codes: &[String]| -> Vec<usize> {
        codes
            .iter()
            .filter_map(|c| ds.classes.same_class(c))
            .collect()
    };
    let (crop_classes, vflip_classes) = (resolve(&cfg.crop_classes), resolve(&cfg.vflip_classes));
    let mut out = Vec::new();
    for &i in indices {
        let s = &ds.samples[i];
        let mut base = vec![(Transform::IDENTITY, String::new())];
        if cfg.oversample {
            let label = s.label.unwrap_or(usize::MAX);
            if crop_classes.contains(&label) {
                for k in 0..cfg.crops {
                    let t = Transform {
                        crop: Some(random_crop(seed, &s.id, k)),
                        ..Transform::IDENTITY
                    };
                    base.push((t, format!("_crop{}", k + 1)));
                }
            }
            if vflip_classes.contains(&label) {
                base.push((
                    Transform {
                        vflip: true,
                        ..Transform::IDENTITY
                    },
                    "_vflip".into(),
                ));
            }
        }
        // The seed mirrored every image (--mirror) and, when oversampling, every added view too.
        let oversampled = base.len() > 1;
        for (t, suffix) in base {
            let is_extra = !suffix.is_empty();
            out.push(View {
                sample: i,
                transform: t,
                name: format!("{}{suffix}", s.id),
            });
            if cfg.mirror || (is_extra && oversampled) {
                out.push(View {
                    sample: i,
                    transform: t.mirrored(),
                    name: format!("{}{suffix}_hflip", s.id),
                });
            }
        }
    }
    out
}

/// The seed's protocol: views of ALL images are made first, then split at random by view, so
/// copies of one image (and other images of its lesion) can sit on both sides. Returns
/// (train views, val views). Kept only to reproduce the seed's leaked numbers side by side.
pub fn seed_protocol_split(
    views: Vec<View>,
    val_fraction: f64,
    seed: u64,
) -> (Vec<View>, Vec<View>) {
    let mut order: Vec<usize> = (0..views.len()).collect();
    Rng::new(seed).shuffle(&mut order);
    let n_val = (val_fraction * views.len() as f64).round() as usize;
    let mut is_val = vec![false; views.len()];
    for &i in &order[..n_val.min(views.len())] {
        is_val[i] = true;
    }
    let (mut tr, mut va) = (Vec::new(), Vec::new());
    for (v, val) in views.into_iter().zip(is_val) {
        if val { va.push(v) } else { tr.push(v) }
    }
    (tr, va)
}
