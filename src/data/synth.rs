//! Synthetic dermoscopy-like data sets in the real HAM10000 and ISIC 2018 Task 3 layouts, for
//! demos, tests and benchmarks (the real data cannot be downloaded here).
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

use crate::CLASSES;
use crate::error::{Result, file_err, invalid};
use crate::io::atomic::write_atomic;
use crate::rng::Rng;
use indicatif::{ProgressBar, ProgressStyle};
use rayon::prelude::*;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Images per class in HAM10000 (class order MEL, NV, BCC, AKIEC, BKL, DF, VASC).
pub const HAM_IMAGE_COUNTS: [usize; 7] = [1113, 6705, 514, 327, 1099, 115, 142];
/// HAM10000 lesions having 1, 2, ..., 6 images.
pub const HAM_LESIONS_BY_SIZE: [usize; 6] = [5514, 1423, 490, 34, 5, 4];
/// Number of the first image, as in HAM10000 (`ISIC_0024306`).
pub const FIRST_IMAGE_NUMBER: usize = 24306;
/// HAM10000 `dx` codes in class order.
pub const DX_CODES: [&str; 7] = ["mel", "nv", "bcc", "akiec", "bkl", "df", "vasc"];

pub const HAM_METADATA_HEADER: &str = "lesion_id,image_id,dx,dx_type,age,sex,localization,dataset";
pub const ISIC_GROUND_TRUTH_HEADER: &str = "image,MEL,NV,BCC,AKIEC,BKL,DF,VASC";
pub const ISIC_GROUPINGS_HEADER: &str = "image,lesion_id,diagnosis_confirm_type";

const MEL: usize = 0;
const NV: usize = 1;
const BCC: usize = 2;
const AKIEC: usize = 3;
const BKL: usize = 4;
const DF: usize = 5;
const VASC: usize = 6;

const DX_TYPES: [&str; 4] = ["histo", "follow_up", "consensus", "confocal"];
/// ISIC 2018 `diagnosis_confirm_type` for each of [`DX_TYPES`].
const CONFIRM_TYPES: [&str; 4] = [
    "histopathology",
    "serial imaging showing no change",
    "single image expert consensus",
    "confocal microscopy with consensus dermoscopy",
];
/// Localizations of HAM10000 with their image counts there.
const LOCALIZATIONS: [(&str, f64); 15] = [
    ("back", 2192.0),
    ("lower extremity", 2077.0),
    ("trunk", 1404.0),
    ("upper extremity", 1118.0),
    ("abdomen", 1022.0),
    ("face", 745.0),
    ("chest", 407.0),
    ("foot", 319.0),
    ("unknown", 234.0),
    ("neck", 168.0),
    ("scalp", 128.0),
    ("hand", 90.0),
    ("ear", 56.0),
    ("genital", 48.0),
    ("acral", 7.0),
];

/// Which on-disk layout to write.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum SynthLayout {
    /// `HAM10000_metadata.csv` + `HAM10000_images_part_{1,2}/` (Harvard Dataverse / Kaggle).
    #[default]
    #[value(name = "ham10000")]
    Ham10000,
    /// `ISIC2018_Task3_Training_{Input,GroundTruth}/` + `..._LesionGroupings.csv`.
    #[value(name = "isic2018")]
    Isic2018,
}

impl SynthLayout {
    pub fn name(self) -> &'static str {
        match self {
            SynthLayout::Ham10000 => "ham10000",
            SynthLayout::Isic2018 => "isic2018",
        }
    }
}

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
    /// Images per class (class order of [`CLASSES`]).
    pub class_images: [usize; 7],
    /// Lesions per class.
    pub class_lesions: [usize; 7],
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
    let plan = make_plan(cfg.n, cfg.seed);
    let n = cfg.n;

    let image_dir = |k: usize| -> PathBuf {
        match cfg.layout {
            SynthLayout::Ham10000 if k < n.div_ceil(2) => out.join("HAM10000_images_part_1"),
            SynthLayout::Ham10000 => out.join("HAM10000_images_part_2"),
            SynthLayout::Isic2018 => out.join("ISIC2018_Task3_Training_Input"),
        }
    };
    let dirs: Vec<PathBuf> = match cfg.layout {
        SynthLayout::Ham10000 => vec![
            out.join("HAM10000_images_part_1"),
            out.join("HAM10000_images_part_2"),
        ],
        SynthLayout::Isic2018 => vec![
            out.join("ISIC2018_Task3_Training_Input"),
            out.join("ISIC2018_Task3_Training_GroundTruth"),
        ],
    };
    for d in &dirs {
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
        let path = image_dir(k).join(format!("{}.jpg", image_id(k)));
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpeg, cfg.quality)
            .encode(&rgb, w as u32, h as u32, image::ExtendedColorType::Rgb8)
            .map_err(|e| file_err(&path, format!("cannot encode JPEG: {e}")))?;
        std::fs::write(&path, &jpeg).map_err(|e| file_err(&path, format!("cannot write: {e}")))?;
        bar.inc(1);
        Ok(())
    })?;
    bar.finish_and_clear();

    // Tables last: a run that dies half-way leaves no table that names missing images.
    match cfg.layout {
        SynthLayout::Ham10000 => {
            let mut s = String::with_capacity(64 * (n + 1));
            s.push_str(HAM_METADATA_HEADER);
            s.push('\n');
            for &k in &plan.row_order {
                let l = &plan.lesions[plan.image_lesion[k]];
                let age = l.age.map_or_else(String::new, |a| format!("{a}.0"));
                s.push_str(&format!(
                    "{},{},{},{},{},{},{},{}\n",
                    lesion_id(l.number),
                    image_id(k),
                    DX_CODES[l.class],
                    DX_TYPES[l.dx_type],
                    age,
                    l.sex,
                    l.localization,
                    l.dataset
                ));
            }
            write_atomic(&out.join("HAM10000_metadata.csv"), s.as_bytes())?;
        }
        SynthLayout::Isic2018 => {
            let mut gt = String::with_capacity(48 * (n + 1));
            let mut groups = String::with_capacity(64 * (n + 1));
            gt.push_str(ISIC_GROUND_TRUTH_HEADER);
            gt.push('\n');
            groups.push_str(ISIC_GROUPINGS_HEADER);
            groups.push('\n');
            for k in 0..n {
                let l = &plan.lesions[plan.image_lesion[k]];
                gt.push_str(&image_id(k));
                for c in 0..7 {
                    gt.push_str(if c == l.class { ",1.0" } else { ",0.0" });
                }
                gt.push('\n');
                groups.push_str(&format!(
                    "{},{},{}\n",
                    image_id(k),
                    lesion_id(l.number),
                    CONFIRM_TYPES[l.dx_type]
                ));
            }
            write_atomic(
                &out.join("ISIC2018_Task3_Training_GroundTruth")
                    .join("ISIC2018_Task3_Training_GroundTruth.csv"),
                gt.as_bytes(),
            )?;
            write_atomic(
                &out.join("ISIC2018_Task3_Training_LesionGroupings.csv"),
                groups.as_bytes(),
            )?;
        }
    }

    let mut class_images = [0; 7];
    let mut class_lesions = [0; 7];
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

/// Renders one image of a fresh lesion of class `class` (index into [`CLASSES`]); for looking
/// at the generator and for benchmarks. Row-major RGB8, `width * height * 3` bytes.
pub fn render_example(class: usize, seed: u64, width: u32, height: u32) -> Result<Vec<u8>> {
    if class >= CLASSES.len() {
        return Err(invalid(
            "synth",
            format!("class index {class} is not in 0..7"),
        ));
    }
    check_size(width, height)?;
    let (w, h) = (width as usize, height as usize);
    let look = Look::draw(class, sub_seed(seed, 1, 0));
    let shot = Shot::draw(w, h, sub_seed(seed, 2, 0));
    Ok(render(&look, &shot, w, h))
}

pub fn image_id(k: usize) -> String {
    format!("ISIC_{:07}", FIRST_IMAGE_NUMBER + k)
}

fn lesion_id(number: usize) -> String {
    format!("HAM_{number:07}")
}

/// Names that mark a folder as holding a data set of one of the layouts.
const DATASET_MARKERS: [&str; 7] = [
    "HAM10000_metadata.csv",
    "HAM10000_metadata",
    "HAM10000_images_part_1",
    "HAM10000_images_part_2",
    "ISIC2018_Task3_Training_Input",
    "ISIC2018_Task3_Training_GroundTruth",
    "ISIC2018_Task3_Training_LesionGroupings.csv",
];

fn check_out_folder(out: &Path) -> Result<()> {
    if !out.exists() {
        return Ok(());
    }
    if !out.is_dir() {
        return Err(file_err(out, "exists and is not a folder"));
    }
    let entries: Vec<String> = std::fs::read_dir(out)
        .map_err(|e| file_err(out, format!("cannot list folder: {e}")))?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    if entries.is_empty() {
        return Ok(());
    }
    if let Some(m) = DATASET_MARKERS
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

// ---------------------------------------------------------------------------------------------
// The plan: lesions, classes, ids, metadata.

struct PlannedLesion {
    class: usize,
    /// The number in `HAM_<7 digits>`.
    number: usize,
    /// Image indices (rank by id) of this lesion's images.
    images: Vec<usize>,
    dx_type: usize,
    age: Option<u32>,
    sex: &'static str,
    localization: &'static str,
    dataset: &'static str,
}

struct Plan {
    lesions: Vec<PlannedLesion>,
    /// Lesion of every image (indexed by rank by id).
    image_lesion: Vec<usize>,
    /// Row order of the HAM10000 metadata table (image indices).
    row_order: Vec<usize>,
}

/// Index drawn with probability proportional to `weights` (not all zero).
fn pick(rng: &mut Rng, weights: &[f64]) -> usize {
    let total: f64 = weights.iter().sum();
    let mut x = rng.next_f64() * total;
    for (i, &w) in weights.iter().enumerate() {
        if x < w {
            return i;
        }
        x -= w;
    }
    weights.iter().rposition(|&w| w > 0.0).unwrap_or(0)
}

/// Images per class for `n` images: `min` of each class, the rest in HAM10000 proportions
/// (largest remainders).
fn class_quotas(n: usize, min: usize) -> [usize; 7] {
    let rest = n - 7 * min;
    let total: usize = HAM_IMAGE_COUNTS.iter().sum();
    let mut q = [min; 7];
    let mut frac = [(0.0f64, 0usize); 7];
    let mut given = 0;
    for c in 0..7 {
        let exact = rest as f64 * HAM_IMAGE_COUNTS[c] as f64 / total as f64;
        q[c] += exact.floor() as usize;
        given += exact.floor() as usize;
        frac[c] = (exact - exact.floor(), c);
    }
    frac.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    for &(_, c) in frac.iter().take(rest - given) {
        q[c] += 1;
    }
    q
}

fn make_plan(n: usize, seed: u64) -> Plan {
    let mut rng = Rng::new(sub_seed(seed, 0, 0));
    // Images per lesion.
    let size_w: Vec<f64> = HAM_LESIONS_BY_SIZE.iter().map(|&c| c as f64).collect();
    let mut sizes = Vec::new();
    let mut total = 0;
    while total < n {
        let s = (pick(&mut rng, &size_w) + 1).min(n - total);
        sizes.push(s);
        total += s;
    }
    let min = match n {
        0..7 => 0,
        7..14 => 1,
        _ => 2,
    };
    while sizes.len() < 7 * min {
        let big = (0..sizes.len())
            .max_by_key(|&i| (sizes[i], usize::MAX - i))
            .unwrap();
        sizes[big] -= 1;
        sizes.push(1);
    }
    rng.shuffle(&mut sizes);
    let l = sizes.len();

    // Classes: the 7*min smallest lesions give every class its minimum; the rest go largest
    // first to a class with room for them, drawn in proportion to the images still missing.
    let quota = class_quotas(n, min);
    let mut order: Vec<usize> = (0..l).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(sizes[i]));
    let mut class = vec![0usize; l];
    let mut got = [0i64; 7];
    let reserved = 7 * min;
    for (j, &i) in order[l - reserved..].iter().enumerate() {
        class[i] = j % 7;
        got[j % 7] += sizes[i] as i64;
    }
    for &i in &order[..l - reserved] {
        let s = sizes[i] as i64;
        let deficit: Vec<i64> = (0..7).map(|c| quota[c] as i64 - got[c]).collect();
        let fits: Vec<f64> = deficit
            .iter()
            .map(|&d| if d >= s { d as f64 } else { 0.0 })
            .collect();
        let open: Vec<f64> = deficit.iter().map(|&d| d.max(0) as f64).collect();
        let c = if fits.iter().any(|&w| w > 0.0) {
            pick(&mut rng, &fits)
        } else if open.iter().any(|&w| w > 0.0) {
            pick(&mut rng, &open)
        } else {
            (0..7).max_by_key(|&c| (deficit[c], 7 - c)).unwrap()
        };
        class[i] = c;
        got[c] += s;
    }

    // Ids: lesion numbers shuffled, image ids dealt out in shuffled order.
    let mut numbers: Vec<usize> = (0..l).collect();
    rng.shuffle(&mut numbers);
    let mut ids: Vec<usize> = (0..n).collect();
    rng.shuffle(&mut ids);
    let mut image_lesion = vec![0usize; n];
    let mut next = 0;
    let mut lesions = Vec::with_capacity(l);
    let loc_w: Vec<f64> = LOCALIZATIONS.iter().map(|&(_, w)| w).collect();
    for i in 0..l {
        let mut images: Vec<usize> = ids[next..next + sizes[i]].to_vec();
        next += sizes[i];
        images.sort_unstable();
        for &k in &images {
            image_lesion[k] = i;
        }
        let c = class[i];
        // [histo, follow_up, consensus, confocal] roughly as in HAM10000 per class.
        let dx_w: [f64; 4] = match c {
            NV => [0.37, 0.55, 0.07, 0.01],
            BKL => [0.52, 0.0, 0.34, 0.14],
            DF => [0.3, 0.0, 0.7, 0.0],
            VASC => [0.45, 0.0, 0.55, 0.0],
            _ => [1.0, 0.0, 0.0, 0.0],
        };
        let dx_type = pick(&mut rng, &dx_w);
        let mean_age = [62.0, 45.0, 66.0, 68.0, 62.0, 52.0, 50.0][c];
        let age = if rng.next_f64() < 0.006 {
            None
        } else {
            let a = (mean_age + 15.0 * rng.normal()).clamp(0.0, 85.0);
            Some(((a / 5.0).round() * 5.0) as u32)
        };
        let sex = ["male", "female", "unknown"][pick(&mut rng, &[0.54, 0.455, 0.005])];
        let localization = LOCALIZATIONS[pick(&mut rng, &loc_w)].0;
        let dataset = if dx_type == 1 {
            "vidir_molemax"
        } else {
            ["vidir_modern", "rosendahl", "vidir_molemax", "vienna_dias"]
                [pick(&mut rng, &[3363.0, 2259.0, 250.0, 439.0])]
        };
        lesions.push(PlannedLesion {
            class: c,
            number: numbers[i],
            images,
            dx_type,
            age,
            sex,
            localization,
            dataset,
        });
    }
    let mut row_order: Vec<usize> = (0..n).collect();
    rng.shuffle(&mut row_order);
    Plan {
        lesions,
        image_lesion,
        row_order,
    }
}

/// A well-mixed seed for stream `tag`, item `i` of the run seeded `seed` (bijective in `i` for
/// a fixed seed and tag, so no two items share a stream).
fn sub_seed(seed: u64, tag: u64, i: u64) -> u64 {
    fmix64(fmix64(seed ^ tag.wrapping_mul(0x9E37_79B9_7F4A_7C15)).wrapping_add(i))
}

fn fmix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

// ---------------------------------------------------------------------------------------------
// Noise.

#[inline]
fn hash2(ix: i32, iy: i32, seed: u32) -> u32 {
    let mut h = seed
        ^ (ix as u32).wrapping_mul(0x27d4_eb2d)
        ^ (iy as u32).wrapping_mul(0x1656_67b1).rotate_left(13);
    h = (h ^ (h >> 15)).wrapping_mul(0x85eb_ca6b);
    h = (h ^ (h >> 13)).wrapping_mul(0xc2b2_ae35);
    h ^ (h >> 16)
}

#[inline]
fn unit(h: u32) -> f32 {
    (h >> 8) as f32 * (1.0 / 16_777_216.0)
}

/// Value noise in [0, 1): random values on the integer lattice, smoothly interpolated.
#[inline]
fn value_noise(seed: u32, x: f32, y: f32) -> f32 {
    let (x0, y0) = (x.floor(), y.floor());
    let (ix, iy) = (x0 as i32, y0 as i32);
    let (fx, fy) = (x - x0, y - y0);
    let sx = fx * fx * (3.0 - 2.0 * fx);
    let sy = fy * fy * (3.0 - 2.0 * fy);
    let a = unit(hash2(ix, iy, seed));
    let b = unit(hash2(ix + 1, iy, seed));
    let c = unit(hash2(ix, iy + 1, seed));
    let d = unit(hash2(ix + 1, iy + 1, seed));
    let top = a + (b - a) * sx;
    let bottom = c + (d - c) * sx;
    top + (bottom - top) * sy
}

/// Fractal value noise, centred and scaled to roughly unit standard deviation
/// (one octave of value noise has a standard deviation of about 0.18).
#[inline]
fn fbm(seed: u32, x: f32, y: f32, octaves: u32) -> f32 {
    let (mut sum, mut amp, mut norm2) = (0.0f32, 1.0f32, 0.0f32);
    let (mut x, mut y) = (x, y);
    for o in 0..octaves {
        sum += amp * (value_noise(seed.wrapping_add(o.wrapping_mul(0x9E37_79B9)), x, y) - 0.5);
        norm2 += amp * amp;
        amp *= 0.5;
        // Next octave: double frequency, turned by ~29 degrees so lattice artefacts of the
        // octaves do not line up.
        (x, y) = (
            2.03 * (0.875 * x - 0.484 * y) + 17.3,
            2.03 * (0.484 * x + 0.875 * y) + 5.1,
        );
    }
    sum / (norm2.sqrt() * 0.18)
}

#[inline]
fn smoothstep(e0: f32, e1: f32, x: f32) -> f32 {
    let t = ((x - e0) / (e1 - e0)).clamp(0.0, 1.0);
    t * t * (3.0 - 2.0 * t)
}

#[inline]
fn mix(a: [f32; 3], b: [f32; 3], t: f32) -> [f32; 3] {
    [
        a[0] + (b[0] - a[0]) * t,
        a[1] + (b[1] - a[1]) * t,
        a[2] + (b[2] - a[2]) * t,
    ]
}

#[inline]
fn scale(a: [f32; 3], s: f32) -> [f32; 3] {
    [a[0] * s, a[1] * s, a[2] * s]
}

// ---------------------------------------------------------------------------------------------
// Lesion looks.

/// Everything that makes one lesion (and its patient's skin) look like itself. Lengths are in
/// units of the image height; lesion-local coordinates are in units of the lesion radius.
#[derive(Clone, Debug)]
struct Look {
    class: usize,
    skin: [f32; 3],
    skin_var: f32,
    skin_red: f32,
    /// Fine skin texture: amplitude and frequency (per image height).
    skin_tex: f32,
    skin_tex_scale: f32,
    /// Pigment network (NV, MEL): strength and frequency (per lesion radius).
    net: f32,
    net_scale: f32,
    skin_seed: u32,
    /// Illumination falloff towards the edges.
    falloff: f32,
    /// Radius (in half-widths) where the dermoscope's dark vignette starts.
    vignette: f32,
    centre: (f32, f32),
    radius: f32,
    /// Minor / major axis.
    aspect: f32,
    angle: f32,
    /// Border modulation: (sin, cos) coefficients of harmonics 2..=6 of the polar angle.
    harm: [(f32, f32); 5],
    /// Half-width of the border transition, in radii.
    edge: f32,
    border_noise: f32,
    opacity: f32,
    seed: u32,
    /// Class-specific palette.
    pal: [[f32; 3]; 5],
    /// Class-specific weights.
    wt: [f32; 4],
    tex: f32,
    tex_scale: f32,
    /// Direction of the colour asymmetry (unit vector).
    dir: (f32, f32),
    /// VASC lobules: centre, radius (lesion-local) and colour.
    lobes: Vec<((f32, f32), f32, [f32; 3])>,
    /// BCC vessels: polylines in lesion-local coordinates.
    vessels: Vec<Vec<(f32, f32)>>,
    vessel_col: [f32; 3],
    /// Vessel width in units of the image height.
    vessel_width: f32,
    /// Lesion-local radius outside which the lesion is surely invisible.
    extent: f32,
}

/// `c` made lighter or darker (standard deviation `sd` levels at mid-grey) and its hue shifted
/// slightly: multiplicative, so dark colours keep their hue.
fn jitter(rng: &mut Rng, c: [f32; 3], sd: f64) -> [f32; 3] {
    let common = 1.0 + rng.normal() * sd / 128.0;
    let mut out = c;
    for v in &mut out {
        let own = 1.0 + rng.normal() * sd / 640.0;
        *v = (*v as f64 * common * own).clamp(0.0, 255.0) as f32;
    }
    out
}

fn u(rng: &mut Rng, lo: f64, hi: f64) -> f32 {
    rng.uniform(lo, hi) as f32
}

impl Look {
    fn draw(class: usize, seed: u64) -> Look {
        let rng = &mut Rng::new(seed);
        // Skin: fair to light-brown, pinkish under the dermoscope.
        let tone = u(rng, 0.0, 1.0);
        let skin = jitter(
            rng,
            mix([236.0, 186.0, 166.0], [196.0, 140.0, 112.0], tone),
            6.0,
        );
        let mut l = Look {
            class,
            skin,
            skin_var: u(rng, 0.03, 0.08),
            skin_red: u(rng, 0.0, 1.0),
            skin_tex: u(rng, 0.015, 0.045),
            skin_tex_scale: u(rng, 14.0, 28.0),
            net: 0.0,
            net_scale: 12.0,
            skin_seed: rng.next_u64() as u32,
            falloff: u(rng, 0.0, 0.3),
            vignette: if rng.next_f64() < 0.25 {
                u(rng, 1.2, 1.4)
            } else {
                u(rng, 0.82, 1.15)
            },
            centre: ((0.07 * rng.normal()) as f32, (0.05 * rng.normal()) as f32),
            radius: 0.15,
            aspect: u(rng, 0.7, 1.0),
            angle: u(rng, 0.0, std::f64::consts::TAU),
            harm: [(0.0, 0.0); 5],
            edge: 0.1,
            border_noise: 0.04,
            opacity: 0.9,
            seed: rng.next_u64() as u32,
            pal: [[0.0; 3]; 5],
            wt: [0.0; 4],
            tex: 0.1,
            tex_scale: 4.0,
            dir: (1.0, 0.0),
            lobes: Vec::new(),
            vessels: Vec::new(),
            vessel_col: [0.0; 3],
            vessel_width: 0.0,
            extent: 2.0,
        };
        let a = u(rng, 0.0, std::f64::consts::TAU);
        l.dir = (a.cos(), a.sin());
        // Border harmonics with amplitudes up to `amp` (falling with the order).
        let harmonics = |rng: &mut Rng, amp: f64| {
            let mut h = [(0.0f32, 0.0f32); 5];
            for (k, hk) in h.iter_mut().enumerate() {
                let a = rng.uniform(0.3, 1.0) * amp / (1.0 + 0.4 * k as f64);
                let phi = rng.uniform(0.0, std::f64::consts::TAU);
                *hk = ((a * phi.cos()) as f32, (a * phi.sin()) as f32);
            }
            h
        };
        // A darker or lighter lesion than its class usually is: classes overlap.
        let shade = u(rng, 0.82, 1.15);
        match class {
            NV => {
                let dysplastic = rng.next_f64() < 0.22;
                l.radius = u(rng, 0.16, 0.33) * if dysplastic { 1.25 } else { 1.0 };
                l.aspect = u(rng, 0.72, 1.0);
                l.harm = harmonics(rng, if dysplastic { 0.1 } else { 0.04 });
                l.edge = u(rng, 0.06, 0.18);
                l.border_noise = u(rng, 0.02, 0.07);
                l.opacity = u(rng, 0.75, 0.97);
                l.pal[0] = jitter(rng, scale([158.0, 108.0, 78.0], shade), 14.0);
                l.pal[1] = jitter(rng, scale([112.0, 72.0, 50.0], shade), 14.0);
                l.pal[2] = jitter(rng, [80.0, 52.0, 40.0], 10.0);
                l.wt[0] = if dysplastic { u(rng, 0.4, 1.0) } else { 0.0 };
                l.tex = u(rng, 0.03, 0.08);
                l.tex_scale = u(rng, 3.0, 5.0);
                l.net = if rng.next_f64() < 0.6 {
                    u(rng, 0.1, 0.3)
                } else {
                    0.0
                };
                l.net_scale = u(rng, 10.0, 16.0);
            }
            MEL => {
                let featureless = rng.next_f64() < 0.2;
                l.radius = u(rng, 0.24, 0.45);
                l.aspect = u(rng, 0.6, 0.95);
                l.harm = harmonics(rng, if featureless { 0.06 } else { 0.18 });
                l.edge = u(rng, 0.04, 0.16);
                l.border_noise = u(rng, 0.05, 0.15);
                l.opacity = u(rng, 0.85, 1.0);
                l.pal[0] = jitter(rng, scale([150.0, 102.0, 74.0], shade), 14.0); // light brown
                l.pal[1] = jitter(rng, scale([92.0, 58.0, 40.0], shade), 12.0); // dark brown
                l.pal[2] = jitter(rng, [40.0, 30.0, 32.0], 8.0); // black
                l.pal[3] = jitter(rng, [112.0, 118.0, 134.0], 12.0); // blue-grey
                l.pal[4] = jitter(rng, [176.0, 86.0, 82.0], 12.0); // reddish
                let p = |rng: &mut Rng, prob: f64| {
                    if featureless || rng.next_f64() > prob {
                        0.0
                    } else {
                        u(rng, 0.4, 1.0)
                    }
                };
                l.wt = [
                    if featureless { 0.2 } else { u(rng, 0.3, 1.0) }, // black
                    0.8 * p(rng, 0.65),                               // blue-grey
                    p(rng, 0.5),                                      // red
                    u(rng, 0.2, 0.7),                                 // asymmetry
                ];
                l.tex_scale = u(rng, 1.4, 2.4);
                l.net = if rng.next_f64() < 0.5 {
                    u(rng, 0.15, 0.4)
                } else {
                    0.0
                };
                l.net_scale = u(rng, 8.0, 14.0);
            }
            BCC => {
                l.radius = u(rng, 0.17, 0.33);
                l.aspect = u(rng, 0.7, 1.0);
                l.harm = harmonics(rng, 0.06);
                l.edge = u(rng, 0.1, 0.22);
                l.border_noise = u(rng, 0.03, 0.08);
                l.opacity = u(rng, 0.45, 0.78);
                l.pal[0] = jitter(rng, [226.0, 172.0, 172.0], 10.0); // pink
                l.pal[1] = jitter(rng, [242.0, 212.0, 206.0], 6.0); // pearly centre
                l.pal[2] = jitter(rng, [98.0, 104.0, 122.0], 12.0); // pigmented nests
                l.wt[0] = if rng.next_f64() < 0.3 {
                    u(rng, 0.4, 0.9)
                } else {
                    0.0
                };
                l.tex_scale = u(rng, 3.0, 5.0);
                l.vessel_col = jitter(rng, [172.0, 32.0, 46.0], 10.0);
                l.vessel_width = u(rng, 0.0018, 0.0035);
                let trees = 3 + rng.below(5);
                for _ in 0..trees {
                    let r = rng.uniform(0.0, 0.6);
                    let t = rng.uniform(0.0, std::f64::consts::TAU);
                    let start = ((r * t.cos()) as f32, (r * t.sin()) as f32);
                    let dir = rng.uniform(0.0, std::f64::consts::TAU) as f32;
                    grow_vessel(rng, start, dir, 0, &mut l.vessels);
                }
            }
            AKIEC => {
                l.radius = u(rng, 0.2, 0.38);
                l.aspect = u(rng, 0.6, 1.0);
                l.harm = harmonics(rng, 0.1);
                l.edge = u(rng, 0.25, 0.45);
                l.border_noise = u(rng, 0.06, 0.14);
                l.opacity = u(rng, 0.5, 0.85);
                l.pal[0] = jitter(rng, scale([206.0, 108.0, 100.0], shade), 14.0); // red-pink
                l.pal[1] = jitter(rng, [238.0, 228.0, 198.0], 8.0); // scale
                l.wt[0] = u(rng, 0.15, 0.7); // amount of scale
                l.tex = u(rng, 0.08, 0.18);
                l.tex_scale = u(rng, 8.0, 13.0);
            }
            BKL => {
                let dark = rng.next_f64() < 0.2;
                l.radius = u(rng, 0.2, 0.38);
                l.aspect = u(rng, 0.62, 1.0);
                l.harm = harmonics(rng, 0.08);
                l.edge = u(rng, 0.015, 0.05);
                l.border_noise = u(rng, 0.01, 0.04);
                l.opacity = u(rng, 0.85, 1.0);
                let base = if dark {
                    [120.0, 84.0, 60.0]
                } else {
                    [172.0, 128.0, 94.0]
                };
                l.pal[0] = jitter(rng, scale(base, shade), 18.0);
                l.pal[1] = jitter(rng, [230.0, 218.0, 190.0], 8.0); // milia-like dots
                l.tex = u(rng, 0.06, 0.14);
                l.tex_scale = u(rng, 4.0, 7.0);
                l.wt[0] = u(rng, 0.0, 0.9);
            }
            DF => {
                l.radius = u(rng, 0.12, 0.22);
                l.aspect = u(rng, 0.7, 1.0);
                l.harm = harmonics(rng, 0.05);
                l.edge = u(rng, 0.18, 0.35);
                l.border_noise = u(rng, 0.04, 0.1);
                l.opacity = u(rng, 0.7, 0.95);
                l.pal[0] = jitter(rng, scale([140.0, 96.0, 74.0], shade), 14.0); // ring
                l.pal[1] = jitter(rng, [232.0, 210.0, 196.0], 8.0); // pale centre
                l.wt[0] = u(rng, 0.35, 0.6); // pale radius
                l.tex = u(rng, 0.05, 0.12);
                l.tex_scale = u(rng, 8.0, 12.0);
            }
            _ => {
                // VASC
                l.radius = u(rng, 0.13, 0.26);
                l.edge = u(rng, 0.04, 0.1);
                l.border_noise = u(rng, 0.01, 0.04);
                l.opacity = u(rng, 0.85, 1.0);
                let lobes = 3 + rng.below(4);
                let red = jitter(rng, [168.0, 36.0, 62.0], 12.0);
                let purple = jitter(rng, [106.0, 40.0, 94.0], 12.0);
                for _ in 0..lobes {
                    let r = rng.uniform(0.0, 0.5);
                    let t = rng.uniform(0.0, std::f64::consts::TAU);
                    let c = ((r * t.cos()) as f32, (r * t.sin()) as f32);
                    let lr = u(rng, 0.3, 0.6);
                    let col = scale(mix(red, purple, u(rng, 0.0, 1.0)), shade);
                    l.lobes.push((c, lr, col));
                }
                l.tex = u(rng, 0.04, 0.1);
                l.tex_scale = u(rng, 4.0, 7.0);
            }
        }
        let harm_sum: f32 = l.harm.iter().map(|(s, c)| s.abs() + c.abs()).sum();
        let lobe_max = l
            .lobes
            .iter()
            .map(|((x, y), r, _)| (x * x + y * y).sqrt() + r)
            .fold(0.0f32, f32::max);
        l.extent = (1.0 + harm_sum).max(lobe_max) * (1.0 + l.edge + 4.0 * l.border_noise) + 0.05;
        l
    }
}

/// A random-walk vessel from `start` heading `dir`, branching now and then (lesion-local units).
fn grow_vessel(
    rng: &mut Rng,
    start: (f32, f32),
    mut dir: f32,
    depth: u32,
    out: &mut Vec<Vec<(f32, f32)>>,
) {
    let mut p = start;
    let mut line = vec![p];
    let steps = 8 + rng.below(16);
    for _ in 0..steps {
        dir += (0.4 * rng.normal()) as f32;
        let step = u(rng, 0.03, 0.06);
        p = (p.0 + step * dir.cos(), p.1 + step * dir.sin());
        if p.0 * p.0 + p.1 * p.1 > 0.9 {
            break;
        }
        line.push(p);
        if depth < 2 && rng.next_f64() < 0.12 {
            let side = if rng.next_f64() < 0.5 { -1.0 } else { 1.0 };
            let turn = side * u(rng, 0.4, 1.0);
            grow_vessel(rng, p, dir + turn, depth + 1, out);
        }
    }
    if line.len() > 1 {
        out.push(line);
    }
}

/// One photograph of a lesion: pose, exposure, noise and hairs.
struct Shot {
    rot: f32,
    shift: (f32, f32),
    scale: f32,
    gain: [f32; 3],
    noise: f32,
    seed: u32,
    /// Hairs: polylines in pixel coordinates.
    hairs: Vec<Vec<(f32, f32)>>,
    hair_col: [f32; 3],
    hair_half_width: f32,
}

impl Shot {
    fn draw(w: usize, h: usize, seed: u64) -> Shot {
        let rng = &mut Rng::new(seed);
        let bright = 1.0 + 0.04 * rng.normal();
        let mut gain = [0.0f32; 3];
        for g in &mut gain {
            *g = (bright + 0.015 * rng.normal()) as f32;
        }
        let (wf, hf) = (w as f32, h as f32);
        let n_hairs = if rng.next_f64() < 0.3 {
            0
        } else {
            1 + rng.below(5)
        };
        let mut hairs = Vec::with_capacity(n_hairs);
        for _ in 0..n_hairs {
            let p0 = (u(rng, -0.1, 1.1) * wf, u(rng, -0.1, 1.1) * hf);
            let a = u(rng, 0.0, std::f64::consts::TAU);
            let len = u(rng, 0.3, 1.1) * hf;
            let p2 = (p0.0 + len * a.cos(), p0.1 + len * a.sin());
            let bend = u(rng, -0.25, 0.25) * len;
            let mid = ((p0.0 + p2.0) / 2.0, (p0.1 + p2.1) / 2.0);
            let p1 = (mid.0 - bend * a.sin(), mid.1 + bend * a.cos());
            let pts = (0..=24)
                .map(|i| {
                    let t = i as f32 / 24.0;
                    let (s, tt) = ((1.0 - t) * (1.0 - t), t * t);
                    let m = 2.0 * t * (1.0 - t);
                    (
                        s * p0.0 + m * p1.0 + tt * p2.0,
                        s * p0.1 + m * p1.1 + tt * p2.1,
                    )
                })
                .collect();
            hairs.push(pts);
        }
        Shot {
            rot: (0.15 * rng.normal()) as f32,
            shift: ((0.02 * rng.normal()) as f32, (0.02 * rng.normal()) as f32),
            scale: (1.0 + 0.04 * rng.normal()) as f32,
            gain,
            noise: u(rng, 2.0, 6.0),
            seed: rng.next_u64() as u32,
            hairs,
            hair_col: jitter(rng, [46.0, 34.0, 28.0], 8.0),
            hair_half_width: (hf / 450.0 * u(rng, 0.45, 1.0)).max(0.35),
        }
    }
}

/// Draws an anti-aliased polyline of half-width `hw` (pixels) into `cov` (coverage 0..=255,
/// maximum over strokes).
fn stamp_polyline(cov: &mut [u8], w: usize, h: usize, pts: &[(f32, f32)], hw: f32) {
    let reach = hw + 1.0;
    for seg in pts.windows(2) {
        let (a, b) = (seg[0], seg[1]);
        let len = ((b.0 - a.0).powi(2) + (b.1 - a.1).powi(2)).sqrt();
        let steps = (len / 0.5).ceil().max(1.0) as usize;
        for i in 0..=steps {
            let t = i as f32 / steps as f32;
            let (px, py) = (a.0 + (b.0 - a.0) * t, a.1 + (b.1 - a.1) * t);
            if px < -reach || py < -reach || px > w as f32 + reach || py > h as f32 + reach {
                continue;
            }
            let x0 = (px - reach).floor().max(0.0) as usize;
            let y0 = (py - reach).floor().max(0.0) as usize;
            let x1 = ((px + reach).ceil() as usize).min(w - 1);
            let y1 = ((py + reach).ceil() as usize).min(h - 1);
            for y in y0..=y1 {
                for x in x0..=x1 {
                    let dx = x as f32 + 0.5 - px;
                    let dy = y as f32 + 0.5 - py;
                    let c = (hw + 0.5 - (dx * dx + dy * dy).sqrt()).clamp(0.0, 1.0);
                    let v = (c * 255.0) as u8;
                    let slot = &mut cov[y * w + x];
                    if v > *slot {
                        *slot = v;
                    }
                }
            }
        }
    }
}

/// Pigment network: 1 on the lines of a ridged-noise mesh, 0 in its holes (times `strength`).
#[inline]
fn network(l: &Look, qx: f32, qy: f32, strength: f32) -> f32 {
    if l.net <= 0.0 || strength <= 0.0 {
        return 0.0;
    }
    let n = fbm(l.seed ^ 0x1E7, qx * l.net_scale, qy * l.net_scale, 1);
    strength * (1.0 - smoothstep(0.0, 0.45, n.abs()))
}

/// Colour and opacity of the lesion at lesion-local point `q` (`r2` = |q|^2), or None outside.
#[inline]
fn shade_lesion(l: &Look, qx: f32, qy: f32, r2: f32) -> Option<([f32; 3], f32)> {
    let r = r2.sqrt().max(1e-6);
    // Normalised distance to the border (1 on the border).
    let mut lobe = 0;
    let d0 = if l.class == VASC {
        let mut best = f32::MAX;
        for (i, ((cx, cy), lr, _)) in l.lobes.iter().enumerate() {
            let dd = ((qx - cx).powi(2) + (qy - cy).powi(2)).sqrt() / lr;
            if dd < best {
                best = dd;
                lobe = i;
            }
        }
        best
    } else {
        // cos/sin of k*theta by complex multiplication: no trigonometry per pixel.
        let (c1, s1) = (qx / r, qy / r);
        let (mut ck, mut sk) = (c1, s1);
        let mut b = 1.0;
        for &(hs, hc) in &l.harm {
            let (nc, ns) = (ck * c1 - sk * s1, sk * c1 + ck * s1);
            ck = nc;
            sk = ns;
            b += hs * sk + hc * ck;
        }
        r / b.max(0.2)
    };
    let d = d0 + l.border_noise * fbm(l.seed ^ 0xB0D0, qx * 3.0, qy * 3.0, 2);
    let alpha = l.opacity * (1.0 - smoothstep(1.0 - l.edge, 1.0 + l.edge, d));
    if alpha <= 0.002 {
        return None;
    }
    let ts = l.tex_scale;
    let col = match l.class {
        NV => {
            let t = fbm(l.seed, qx * ts, qy * ts, 2);
            let mut c = mix(l.pal[1], l.pal[0], smoothstep(0.0, 1.0, d));
            if l.wt[0] > 0.0 {
                // Dysplastic naevus: a few darker eccentric patches.
                let n = fbm(l.seed ^ 0x5EED, qx * 2.5, qy * 2.5, 2)
                    + 0.6 * (qx * l.dir.0 + qy * l.dir.1);
                let inside = 1.0 - smoothstep(0.6, 0.95, d);
                c = mix(c, l.pal[2], l.wt[0] * inside * smoothstep(0.5, 1.3, n));
            }
            scale(
                c,
                (1.0 + l.tex * t) * (1.0 - l.net * network(l, qx, qy, 1.0)),
            )
        }
        MEL => {
            let n1 = fbm(l.seed, qx * ts, qy * ts, 3);
            let n2 = fbm(l.seed ^ 0x5EED, qx * ts * 1.3, qy * ts * 1.3, 2);
            let g = (qx * l.dir.0 + qy * l.dir.1) * l.wt[3];
            let x = n1 + 1.4 * g;
            let mut c = mix(l.pal[0], l.pal[1], smoothstep(-0.9, 0.7, x));
            c = mix(c, l.pal[2], l.wt[0] * smoothstep(0.5, 1.6, x));
            c = mix(c, l.pal[3], l.wt[1] * smoothstep(0.2, 1.3, n2));
            c = mix(c, l.pal[4], l.wt[2] * smoothstep(0.3, 1.4, -n2));
            let net = l.net * network(l, qx, qy, smoothstep(-0.8, 0.8, n1));
            scale(c, (0.9 + 0.1 * d.min(1.0)) * (1.0 - net))
        }
        BCC => {
            let n = fbm(l.seed, qx * ts, qy * ts, 2);
            let mut c = mix(l.pal[1], l.pal[0], smoothstep(0.1, 1.0, d));
            c = mix(c, [250.0, 240.0, 238.0], 0.5 * smoothstep(1.0, 1.8, n));
            if l.wt[0] > 0.0 {
                let m = fbm(l.seed ^ 0x5EED, qx * 4.0, qy * 4.0, 2);
                c = mix(c, l.pal[2], l.wt[0] * smoothstep(1.0, 1.5, m));
            }
            c
        }
        AKIEC => {
            let rough = fbm(l.seed, qx * 7.0, qy * 7.0, 2);
            let sc = fbm(l.seed ^ 0x5EED, qx * ts, qy * ts, 2);
            let c = scale(l.pal[0], 1.0 + l.tex * rough);
            mix(
                c,
                l.pal[1],
                0.8 * smoothstep(1.3 - l.wt[0], 1.9 - l.wt[0], sc),
            )
        }
        BKL => {
            let t = fbm(l.seed, qx * ts, qy * ts, 3);
            let c = scale(l.pal[0], 1.0 + l.tex * t);
            let dots = value_noise(l.seed ^ 0xD075, qx * 14.0, qy * 14.0);
            mix(c, l.pal[1], l.wt[0] * smoothstep(0.8, 0.9, dots))
        }
        DF => {
            let t = fbm(l.seed, qx * ts, qy * ts, 2);
            let pr = l.wt[0];
            let c = mix(l.pal[1], l.pal[0], smoothstep(pr - 0.25, pr + 0.15, d));
            scale(c, 1.0 + l.tex * t)
        }
        _ => {
            // VASC: lobules darker in their middle.
            let t = fbm(l.seed, qx * ts, qy * ts, 2);
            let c = scale(l.lobes[lobe].2, 0.78 + 0.22 * d.min(1.0));
            scale(c, 1.0 + l.tex * t)
        }
    };
    Some((col, alpha))
}

/// Renders one image: row-major RGB8, `w * h * 3` bytes.
fn render(l: &Look, s: &Shot, w: usize, h: usize) -> Vec<u8> {
    let (wf, hf) = (w as f32, h as f32);
    // Overlays first (coverage buffers), composited in the pixel pass.
    let ang = l.angle + s.rot;
    let (ca, sa) = (ang.cos(), ang.sin());
    let rad = l.radius * s.scale;
    let centre = (l.centre.0 + s.shift.0, l.centre.1 + s.shift.1);
    let to_pixel = |q: (f32, f32)| {
        let (lx, ly) = (q.0 * rad, q.1 * rad * l.aspect);
        let px = centre.0 + lx * ca - ly * sa;
        let py = centre.1 + lx * sa + ly * ca;
        (px * hf + wf / 2.0, py * hf + hf / 2.0)
    };
    let vessels = if l.vessels.is_empty() {
        None
    } else {
        let mut cov = vec![0u8; w * h];
        let hw = (l.vessel_width * hf * 0.5).max(0.3);
        for v in &l.vessels {
            let pts: Vec<(f32, f32)> = v.iter().map(|&q| to_pixel(q)).collect();
            stamp_polyline(&mut cov, w, h, &pts, hw);
        }
        Some(cov)
    };
    let hairs = if s.hairs.is_empty() {
        None
    } else {
        let mut cov = vec![0u8; w * h];
        for hpts in &s.hairs {
            stamp_polyline(&mut cov, w, h, hpts, s.hair_half_width);
        }
        Some(cov)
    };

    let inv_r = 1.0 / rad;
    let inv_ra = 1.0 / (rad * l.aspect);
    let ext2 = l.extent * l.extent;
    let half_w = wf / 2.0;
    // Skin (smooth colour variation and fine texture) on a grid of about 110 rows, interpolated
    // per row: the finest texture has about 55 cycles per image height.
    let g = (h / 110).clamp(1, 8);
    let (gw, gh) = (w / g + 2, h / g + 2);
    let mut grid = vec![(0.0f32, 0.0f32); gw * gh];
    let ts = l.skin_tex_scale;
    for gy in 0..gh {
        for gx in 0..gw {
            let px = ((gx * g) as f32 + 0.5 - wf / 2.0) / hf;
            let py = ((gy * g) as f32 + 0.5 - hf / 2.0) / hf;
            // Texture turned ~31 degrees so its noise lattice does not line up with the pixels.
            let (tx, ty) = (
                (0.857 * px - 0.515 * py) * ts,
                (0.515 * px + 0.857 * py) * ts,
            );
            let var = l.skin_var * fbm(l.skin_seed, px * 2.2, py * 2.2, 2);
            let tex = l.skin_tex * fbm(l.skin_seed ^ 0x7E7, tx, ty, 2);
            grid[gy * gw + gx] = (
                (1.0 + var) * (1.0 + tex),
                l.skin_red * fbm(l.skin_seed ^ 0x0ED, px * 1.6 + 7.0, py * 1.6, 1),
            );
        }
    }
    let mut skin_row = vec![(0.0f32, 0.0f32); w];
    let mut out = vec![0u8; w * h * 3];
    for y in 0..h {
        let py = (y as f32 + 0.5 - hf / 2.0) / hf;
        let vy = (y as f32 + 0.5 - hf / 2.0) / half_w;
        let (gy, ty) = (y / g, (y % g) as f32 / g as f32);
        for (x, sv) in skin_row.iter_mut().enumerate() {
            let (gx, tx) = (x / g, (x % g) as f32 / g as f32);
            let at = |gx: usize, gy: usize| grid[gy * gw + gx];
            let (a, b, c, d) = (
                at(gx, gy),
                at(gx + 1, gy),
                at(gx, gy + 1),
                at(gx + 1, gy + 1),
            );
            let top = (a.0 + (b.0 - a.0) * tx, a.1 + (b.1 - a.1) * tx);
            let bot = (c.0 + (d.0 - c.0) * tx, c.1 + (d.1 - c.1) * tx);
            *sv = (top.0 + (bot.0 - top.0) * ty, top.1 + (bot.1 - top.1) * ty);
        }
        for (x, &(sb, sr)) in skin_row.iter().enumerate() {
            let i = y * w + x;
            let px = (x as f32 + 0.5 - wf / 2.0) / hf;
            // Skin: smooth brightness and redness variation, illumination falloff.
            let illum = 1.0 - l.falloff * (px * px + py * py);
            let mut c = [
                (l.skin[0] + 8.0 * sr) * sb,
                (l.skin[1] - 6.0 * sr) * sb,
                (l.skin[2] - 3.0 * sr) * sb,
            ];
            // Lesion.
            let (dx, dy) = (px - centre.0, py - centre.1);
            let qx = (dx * ca + dy * sa) * inv_r;
            let qy = (-dx * sa + dy * ca) * inv_ra;
            let r2 = qx * qx + qy * qy;
            if r2 < ext2
                && let Some((lc, a)) = shade_lesion(l, qx, qy, r2)
            {
                c = mix(c, lc, a);
            }
            if let Some(v) = &vessels
                && v[i] > 0
            {
                c = mix(c, l.vessel_col, 0.85 * v[i] as f32 / 255.0);
            }
            if let Some(hc) = &hairs
                && hc[i] > 0
            {
                c = mix(c, s.hair_col, 0.9 * hc[i] as f32 / 255.0);
            }
            // Dermoscope vignette (radius in half-widths from the image centre).
            let vx = (x as f32 + 0.5 - wf / 2.0) / half_w;
            let rr = (vx * vx + vy * vy).sqrt();
            let dark = 1.0 - 0.94 * smoothstep(l.vignette, l.vignette + 0.07, rr);
            let f = illum * dark;
            // Sensor noise: triangular, per channel.
            let hsh = hash2(x as i32, y as i32, s.seed);
            let hsh2 = hash2(y as i32, x as i32, s.seed ^ 0x7777);
            let nz = [
                ((hsh & 0xFFFF) as f32 + (hsh2 & 0xFFFF) as f32) / 65536.0 - 1.0,
                ((hsh >> 16) as f32 + (hsh2 >> 16) as f32) / 65536.0 - 1.0,
                (((hsh ^ hsh2.rotate_left(7)) & 0xFFFF) as f32 / 32768.0) - 1.0,
            ];
            for ch in 0..3 {
                let v = c[ch] * f * s.gain[ch] + s.noise * 1.7 * nz[ch];
                out[i * 3 + ch] = v.clamp(0.0, 255.0) as u8;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fbm_is_roughly_unit_scale() {
        for oct in 1..=3 {
            let (mut s, mut s2, n) = (0.0f64, 0.0f64, 40_000);
            for i in 0..n {
                let v = fbm(7, (i % 200) as f32 * 0.173, (i / 200) as f32 * 0.131, oct) as f64;
                s += v;
                s2 += v * v;
            }
            let mean = s / n as f64;
            let sd = (s2 / n as f64 - mean * mean).sqrt();
            assert!(
                mean.abs() < 0.15 && (0.7..1.3).contains(&sd),
                "{oct}: {mean} {sd}"
            );
        }
    }

    #[test]
    fn quotas_and_plan_cover_every_class() {
        for n in [1, 6, 7, 13, 14, 20, 60, 200, 10015] {
            let min = if n >= 14 { 2 } else { usize::from(n >= 7) };
            let q = class_quotas(n, min);
            assert_eq!(q.iter().sum::<usize>(), n);
            let p = make_plan(n, 3);
            assert_eq!(p.image_lesion.len(), n);
            let mut per_class_lesions = [0; 7];
            let mut per_class_images = [0; 7];
            for l in &p.lesions {
                per_class_lesions[l.class] += 1;
                per_class_images[l.class] += l.images.len();
                assert!((1..=6).contains(&l.images.len()));
            }
            assert!(
                per_class_lesions.iter().all(|&c| c >= min),
                "{n}: {per_class_lesions:?}"
            );
            if n == 10015 {
                let mut sizes = [0usize; 6];
                for l in &p.lesions {
                    sizes[l.images.len() - 1] += 1;
                }
                eprintln!(
                    "n 10015: images per class {per_class_images:?}, lesions by size {sizes:?}"
                );
                for c in 0..7 {
                    let diff = per_class_images[c] as f64 - HAM_IMAGE_COUNTS[c] as f64;
                    assert!(
                        diff.abs() <= 0.03 * HAM_IMAGE_COUNTS[c] as f64 + 6.0,
                        "{per_class_images:?}"
                    );
                }
                let lesions = p.lesions.len() as f64;
                assert!((lesions - 7470.0).abs() < 150.0, "{lesions}");
            }
        }
    }
}
