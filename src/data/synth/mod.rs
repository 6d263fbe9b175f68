//! Synthetic dermoscopy-like data sets in the real HAM10000, ISIC 2018 Task 3 and ISIC 2019
//! Task 1 layouts, for demos, tests and benchmarks (the real data cannot be downloaded here).
//! ISIC 2019 adds SCC lesions and follows ISIC 2019's class proportions (see `layout`).
//!
//! What is drawn, and why:
//! - Lesions and images per lesion follow HAM10000 (1 image: 5,514 lesions, 2: 1,423, 3: 490,
//!   4: 34, 5: 5, 6: 4); classes are given to lesions so that image counts approximate
//!   MEL 1113, NV 6705, BCC 514, AKIEC 327, BKL 1099, DF 115, VASC 142 of 10,015, and every class
//!   has at least one lesion from 7 images on and at least two from 14 on (so stratified,
//!   lesion-grouped splits work on small sets).
//! - Images: skin with smooth colour variation, a dermoscope's dark circular vignette, a few
//!   hairs, and a lesion whose look depends on its class (NV round uniform brown; MEL large,
//!   irregular, many colours; BCC pearly pink with branching red vessels; AKIEC scaly red patch
//!   with an ill-defined border; BKL waxy mottled brown with a sharp border; DF small brown ring
//!   with a pale centre; VASC red/purple lobules). Per-lesion size/colour jitter and atypical
//!   variants make the classes overlap; per-image noise, rotation, shift, scale and brightness
//!   make images of one lesion alike but not identical.
//! - Everything is a pure function of the seed: the plan is drawn serially from one generator,
//!   every lesion's look from a generator seeded by (seed, lesion), every image's variation from
//!   one seeded by (seed, image). Images render in parallel with identical bytes whatever the
//!   thread count.
//!
//! Files: `plan` (which lesions, images and classes), `look` (a lesion's per-class appearance),
//! `shot` (one photograph's pose, exposure, hairs), `noise`, `render` (pixels), `layout` (where
//! files go and the tables, with names from `data::schema`); this module checks the request
//! and runs them.

mod layout;
mod look;
mod noise;
mod plan;
mod render;
mod shot;

pub use layout::SynthLayout;
pub use plan::{HAM_IMAGE_COUNTS, HAM_LESIONS_BY_SIZE, ISIC2019_IMAGE_COUNTS};

use crate::error::{Result, file_err, invalid};
use crate::io::walk::{Walk, walk};
use indicatif::{ProgressBar, ProgressStyle};
use look::Look;
use plan::{make_plan, sub_seed};
use rayon::prelude::*;
use render::render;
use shot::Shot;
use std::path::Path;
use std::time::Instant;

/// Number of the first image, as in HAM10000 (`ISIC_0024306`).
pub const FIRST_IMAGE_NUMBER: usize = 24306;

#[derive(Clone, Debug)]
pub struct SynthConfig {
    /// Number of images (>= 1).
    pub n: usize,
    pub layout: SynthLayout,
    pub seed: u64,
    pub width: u32,
    pub height: u32,
    /// JPEG quality (1..=100).
    pub quality: u8,
    /// Show a progress bar on stderr.
    pub progress: bool,
}

impl Default for SynthConfig {
    fn default() -> Self {
        SynthConfig {
            n: 100,
            layout: SynthLayout::Ham10000,
            seed: 0,
            width: 600,
            height: 450,
            quality: 90,
            progress: false,
        }
    }
}

/// What [`write_synth`] wrote.
#[derive(Clone, Debug, PartialEq)]
pub struct SynthSummary {
    pub images: usize,
    pub lesions: usize,
    /// Images per class (class order of the layout's list, [`SynthLayout::classes`]).
    pub class_images: Vec<usize>,
    /// Lesions per class.
    pub class_lesions: Vec<usize>,
    /// Wall time of the whole write, seconds.
    pub seconds: f64,
}

/// Parses `WIDTHxHEIGHT` (for example `600x450`).
pub fn parse_size(s: &str) -> Result<(u32, u32)> {
    let bad = |why: &str| {
        invalid(
            "synth",
            format!("--size: expected WIDTHxHEIGHT such as 600x450, got '{s}' ({why})"),
        )
    };
    let (w, h) = s
        .trim()
        .split_once(['x', 'X'])
        .ok_or_else(|| bad("no 'x' between width and height"))?;
    let w: u32 = w
        .trim()
        .parse()
        .map_err(|_| bad("width is not a whole number"))?;
    let h: u32 = h
        .trim()
        .parse()
        .map_err(|_| bad("height is not a whole number"))?;
    check_size(w, h).map_err(|_| bad("each side must be between 16 and 8192 pixels"))?;
    Ok((w, h))
}

fn check_size(w: u32, h: u32) -> Result<()> {
    if !(16..=8192).contains(&w) || !(16..=8192).contains(&h) {
        return Err(invalid(
            "synth",
            format!("image size {w}x{h}: each side must be between 16 and 8192 pixels"),
        ));
    }
    Ok(())
}

/// Writes a synthetic data set of `cfg.n` images under `out` in `cfg.layout`. `out` must not
/// exist or be an empty folder.
pub fn write_synth(out: &Path, cfg: &SynthConfig) -> Result<SynthSummary> {
    let t0 = Instant::now();
    if cfg.n == 0 {
        return Err(invalid("synth", "--n must be at least 1"));
    }
    if cfg.n > 9_999_999 - FIRST_IMAGE_NUMBER {
        return Err(invalid(
            "synth",
            format!("--n {} is too large for 7-digit image ids", cfg.n),
        ));
    }
    check_size(cfg.width, cfg.height)?;
    if !(1..=100).contains(&cfg.quality) {
        return Err(invalid("synth", "JPEG quality must be in 1..=100"));
    }
    check_out_folder(out)?;
    let plan = make_plan(cfg.n, cfg.seed, cfg.layout.image_counts());
    let n = cfg.n;

    for d in &layout::folders(out, cfg.layout) {
        std::fs::create_dir_all(d)
            .map_err(|e| file_err(d, format!("cannot create folder: {e}")))?;
    }

    let looks: Vec<Look> = (0..plan.lesions.len())
        .map(|i| Look::draw(plan.lesions[i].class, sub_seed(cfg.seed, 1, i as u64)))
        .collect();

    let bar = if cfg.progress {
        let b = ProgressBar::new(n as u64);
        b.set_style(
            ProgressStyle::with_template("{bar:30} {pos}/{len} images  {per_sec}  ETA {eta}")
                .expect("static template"),
        );
        b
    } else {
        ProgressBar::hidden()
    };
    let (w, h) = (cfg.width as usize, cfg.height as usize);
    (0..n).into_par_iter().try_for_each(|k| -> Result<()> {
        let look = &looks[plan.image_lesion[k]];
        let shot = Shot::draw(w, h, sub_seed(cfg.seed, 2, k as u64));
        let rgb = render(look, &shot, w, h);
        let mut jpeg = Vec::with_capacity(w * h / 4);
        let path = layout::image_folder(out, cfg.layout, k, n).join(format!("{}.jpg", image_id(k)));
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpeg, cfg.quality)
            .encode(&rgb, w as u32, h as u32, image::ExtendedColorType::Rgb8)
            .map_err(|e| file_err(&path, format!("cannot encode JPEG: {e}")))?;
        std::fs::write(&path, &jpeg).map_err(|e| file_err(&path, format!("cannot write: {e}")))?;
        bar.inc(1);
        Ok(())
    })?;
    bar.finish_and_clear();

    // Tables last: a run that dies half-way leaves no table that names missing images.
    layout::write_tables(out, (cfg.layout, cfg.seed), &plan, image_id, lesion_id)?;

    let k = cfg.layout.image_counts().len();
    let mut class_images = vec![0; k];
    let mut class_lesions = vec![0; k];
    for l in &plan.lesions {
        class_images[l.class] += l.images.len();
        class_lesions[l.class] += 1;
    }
    Ok(SynthSummary {
        images: n,
        lesions: plan.lesions.len(),
        class_images,
        class_lesions,
        seconds: t0.elapsed().as_secs_f64(),
    })
}

/// Renders one image of a fresh lesion of class `class` (index into ISIC 2019's list, whose
/// first 7 are ISIC 2018's [`crate::classes::CODES`]; 7 is SCC); for looking at the generator
/// and for benchmarks. Row-major RGB8, `width * height * 3` bytes.
pub fn render_example(class: usize, seed: u64, width: u32, height: u32) -> Result<Vec<u8>> {
    let k = ISIC2019_IMAGE_COUNTS.len();
    if class >= k {
        return Err(invalid(
            "synth",
            format!("class index {class} is not in 0..{k}"),
        ));
    }
    check_size(width, height)?;
    let (w, h) = (width as usize, height as usize);
    let look = Look::draw(class, sub_seed(seed, 1, 0));
    let shot = Shot::draw(w, h, sub_seed(seed, 2, 0));
    Ok(render(&look, &shot, w, h))
}

/// The id of image `k` (by rank): `ISIC_<7 digits>` from [`FIRST_IMAGE_NUMBER`] on.
pub fn image_id(k: usize) -> String {
    format!("ISIC_{:07}", FIRST_IMAGE_NUMBER + k)
}

/// The HAM10000-style id of lesion `number`.
fn lesion_id(number: usize) -> String {
    format!("HAM_{number:07}")
}

/// Refuses an output folder that exists and is not empty (naming a data set found there).
fn check_out_folder(out: &Path) -> Result<()> {
    if !out.exists() {
        return Ok(());
    }
    if !out.is_dir() {
        return Err(file_err(out, "exists and is not a folder"));
    }
    let top = Walk {
        max_depth: 0,
        folders: true,
    };
    let entries: Vec<String> = walk(out, top)?
        .iter()
        .filter_map(|p| p.file_name())
        .map(|n| n.to_string_lossy().into_owned())
        .collect();
    if entries.is_empty() {
        return Ok(());
    }
    if let Some(m) = layout::dataset_markers()
        .iter()
        .find(|m| entries.iter().any(|e| e == *m))
    {
        return Err(file_err(
            out,
            format!(
                "already contains a data set ({m}); refusing to mix files: \
                 give a new or empty folder, or delete this one first"
            ),
        ));
    }
    Err(file_err(
        out,
        format!(
            "is not empty ({} entries, for example '{}'); give a new or empty folder",
            entries.len(),
            entries[0]
        ),
    ))
}
