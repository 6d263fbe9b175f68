//! The plan of a synthetic data set, drawn serially from the seed before any pixel: how many
//! lesions of how many images, each lesion's class (image counts in HAM10000 proportions, every
//! class present once the set is large enough), lesion and image numbers, and the metadata
//! columns (dx_type, age, sex, localization, dataset) in roughly HAM10000's frequencies.

use crate::classes::{BKL, COUNT, DF, NV, VASC};
use crate::rng::Rng;

/// Images per class in HAM10000 (class order MEL, NV, BCC, AKIEC, BKL, DF, VASC).
pub const HAM_IMAGE_COUNTS: [usize; COUNT] = [1113, 6705, 514, 327, 1099, 115, 142];
/// Images per class in the ISIC 2019 training set (MEL, NV, BCC, AK, BKL, DF, VASC, SCC; no
/// UNK). Its first seven classes are HAM10000's in the same order (AK for AKIEC), so every
/// per-class rule below applies to both lists by index.
pub const ISIC2019_IMAGE_COUNTS: [usize; 8] = [4522, 12875, 3323, 867, 2624, 239, 253, 628];
/// HAM10000 lesions having 1, 2, ..., 6 images.
pub const HAM_LESIONS_BY_SIZE: [usize; 6] = [5514, 1423, 490, 34, 5, 4];
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

pub(super) struct PlannedLesion {
    pub class: usize,
    /// The number in `HAM_<7 digits>`.
    pub number: usize,
    /// Image indices (rank by id) of this lesion's images.
    pub images: Vec<usize>,
    pub dx_type: usize,
    pub age: Option<u32>,
    pub sex: &'static str,
    pub localization: &'static str,
    pub dataset: &'static str,
}

pub(super) struct Plan {
    pub lesions: Vec<PlannedLesion>,
    /// Lesion of every image (indexed by rank by id).
    pub image_lesion: Vec<usize>,
    /// Row order of the HAM10000 metadata table (image indices).
    pub row_order: Vec<usize>,
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

/// Images per class for `n` images: `min` of each class, the rest in the proportions of
/// `counts` (largest remainders).
fn class_quotas(n: usize, min: usize, counts: &[usize]) -> Vec<usize> {
    let k = counts.len();
    let rest = n - k * min;
    let total: usize = counts.iter().sum();
    let mut q = vec![min; k];
    let mut frac = vec![(0.0f64, 0usize); k];
    let mut given = 0;
    for c in 0..k {
        let exact = rest as f64 * counts[c] as f64 / total as f64;
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

/// The plan of `n` images whose classes follow `counts` (one per class of the list:
/// [`HAM_IMAGE_COUNTS`] or [`ISIC2019_IMAGE_COUNTS`]); HAM10000's draws are unchanged.
pub(super) fn make_plan(n: usize, seed: u64, counts: &[usize]) -> Plan {
    let k = counts.len();
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
    // At least one image of each class from k images on, two from 2 * k on.
    let min = if n < k {
        0
    } else if n < 2 * k {
        1
    } else {
        2
    };
    while sizes.len() < k * min {
        let big = (0..sizes.len())
            .max_by_key(|&i| (sizes[i], usize::MAX - i))
            .unwrap();
        sizes[big] -= 1;
        sizes.push(1);
    }
    rng.shuffle(&mut sizes);
    let l = sizes.len();

    // Classes: the k*min smallest lesions give every class its minimum; the rest go largest
    // first to a class with room for them, drawn in proportion to the images still missing.
    let quota = class_quotas(n, min, counts);
    let mut order: Vec<usize> = (0..l).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(sizes[i]));
    let mut class = vec![0usize; l];
    let mut got = vec![0i64; k];
    let reserved = k * min;
    for (j, &i) in order[l - reserved..].iter().enumerate() {
        class[i] = j % k;
        got[j % k] += sizes[i] as i64;
    }
    for &i in &order[..l - reserved] {
        let s = sizes[i] as i64;
        let deficit: Vec<i64> = (0..k).map(|c| quota[c] as i64 - got[c]).collect();
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
            (0..k).max_by_key(|&c| (deficit[c], k - c)).unwrap()
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
        // ISIC 2019's SCC (index 7): the oldest patients.
        let mean_age = [62.0, 45.0, 66.0, 68.0, 62.0, 52.0, 50.0, 70.0][c];
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
pub(super) fn sub_seed(seed: u64, tag: u64, i: u64) -> u64 {
    fmix64(fmix64(seed ^ tag.wrapping_mul(0x9E37_79B9_7F4A_7C15)).wrapping_add(i))
}

fn fmix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotas_and_plan_cover_every_class() {
        for n in [1, 6, 7, 13, 14, 20, 60, 200, 10015] {
            let min = if n >= 14 { 2 } else { usize::from(n >= 7) };
            let q = class_quotas(n, min, &HAM_IMAGE_COUNTS);
            assert_eq!(q.iter().sum::<usize>(), n);
            let p = make_plan(n, 3, &HAM_IMAGE_COUNTS);
            assert_eq!(p.image_lesion.len(), n);
            let mut per_class_lesions = [0; COUNT];
            let mut per_class_images = [0; COUNT];
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
                for c in 0..COUNT {
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

    #[test]
    fn isic2019_plan_has_every_class_in_its_proportions() {
        let k = ISIC2019_IMAGE_COUNTS.len();
        for n in [1, 7, 8, 15, 16, 40] {
            let p = make_plan(n, 5, &ISIC2019_IMAGE_COUNTS);
            let mut lesions = vec![0; k];
            for l in &p.lesions {
                lesions[l.class] += 1;
            }
            let min = if n >= 2 * k { 2 } else { usize::from(n >= k) };
            assert!(lesions.iter().all(|&c| c >= min), "{n}: {lesions:?}");
            assert_eq!(p.image_lesion.len(), n);
        }
        // 25,331 images: per-class counts within 3% (+6) of ISIC 2019's.
        let p = make_plan(25331, 1, &ISIC2019_IMAGE_COUNTS);
        let mut images = vec![0usize; k];
        for l in &p.lesions {
            images[l.class] += l.images.len();
        }
        for c in 0..k {
            let want = ISIC2019_IMAGE_COUNTS[c] as f64;
            assert!(
                (images[c] as f64 - want).abs() <= 0.03 * want + 6.0,
                "{images:?}"
            );
        }
    }
}
