//! `skinengine synth`: layouts and formats, determinism, and that the pictures carry the class.
//! (Rendering speed and a contact sheet to look at are in tests/synth_render.rs.)

use skinengine::classes::{self, COUNT};
use skinengine::data::synth::{
    SynthConfig, SynthLayout, SynthSummary, render_example, write_synth,
};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};

fn cfg(n: usize, layout: SynthLayout, seed: u64, width: u32, height: u32) -> SynthConfig {
    SynthConfig {
        n,
        layout,
        seed,
        width,
        height,
        ..SynthConfig::default()
    }
}

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// Lines of a CSV without its header (which must equal `header`), split at commas.
fn rows(text: &str, header: &str) -> Vec<Vec<String>> {
    assert!(text.ends_with('\n'), "file should end with a newline");
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some(header));
    lines
        .map(|l| l.split(',').map(str::to_string).collect())
        .collect()
}

fn is_id(s: &str, prefix: &str) -> bool {
    s.len() == prefix.len() + 7
        && s.starts_with(prefix)
        && s[prefix.len()..].bytes().all(|b| b.is_ascii_digit())
}

fn check_image(path: &Path, w: u32, h: u32) -> image::RgbImage {
    assert!(path.is_file(), "{} missing", path.display());
    let img = image::open(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .to_rgb8();
    assert_eq!(img.dimensions(), (w, h), "{}", path.display());
    img
}

fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// (image id -> (lesion id, class index)) from a HAM10000-layout folder, after checking formats.
fn check_ham(dir: &Path, s: &SynthSummary, w: u32, h: u32) -> BTreeMap<String, (String, usize)> {
    const DX_TYPES: [&str; 4] = ["histo", "follow_up", "consensus", "confocal"];
    const SEXES: [&str; 3] = ["male", "female", "unknown"];
    const LOCS: [&str; 15] = [
        "back",
        "lower extremity",
        "trunk",
        "upper extremity",
        "abdomen",
        "face",
        "chest",
        "foot",
        "unknown",
        "neck",
        "scalp",
        "hand",
        "ear",
        "genital",
        "acral",
    ];
    const DATASETS: [&str; 4] = ["vidir_modern", "rosendahl", "vidir_molemax", "vienna_dias"];
    let text = read(&dir.join("HAM10000_metadata.csv"));
    let rows = rows(
        &text,
        "lesion_id,image_id,dx,dx_type,age,sex,localization,dataset",
    );
    assert_eq!(rows.len(), s.images);
    let mut out = BTreeMap::new();
    let mut lesion_meta: HashMap<String, Vec<String>> = HashMap::new();
    for r in &rows {
        assert_eq!(r.len(), 8, "{r:?}");
        assert!(is_id(&r[0], "HAM_"), "{r:?}");
        assert!(is_id(&r[1], "ISIC_"), "{r:?}");
        let class = classes::DX
            .iter()
            .position(|d| *d == r[2])
            .expect("dx code");
        assert!(DX_TYPES.contains(&r[3].as_str()), "{r:?}");
        if !r[4].is_empty() {
            let a = r[4].strip_suffix(".0").expect("age like 45.0");
            let a: u32 = a.parse().unwrap();
            assert!(a.is_multiple_of(5) && a <= 90, "{r:?}");
        }
        assert!(SEXES.contains(&r[5].as_str()), "{r:?}");
        assert!(LOCS.contains(&r[6].as_str()), "{r:?}");
        assert!(DATASETS.contains(&r[7].as_str()), "{r:?}");
        // Every row of one lesion tells the same story (except the image).
        let meta: Vec<String> = [&r[2], &r[3], &r[4], &r[5], &r[6], &r[7]]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let prev = lesion_meta
            .entry(r[0].clone())
            .or_insert_with(|| meta.clone());
        assert_eq!(*prev, meta, "lesion {} has inconsistent rows", r[0]);
        assert!(
            out.insert(r[1].clone(), (r[0].clone(), class)).is_none(),
            "duplicate image {}",
            r[1]
        );
    }
    // Consecutive ids from ISIC_0024306; rows shuffled, not sorted.
    let ids: Vec<&String> = out.keys().collect();
    for (k, id) in ids.iter().enumerate() {
        assert_eq!(**id, format!("ISIC_{:07}", 24306 + k));
    }
    if rows.len() > 5 {
        let in_order: Vec<&String> = rows.iter().map(|r| &r[1]).collect();
        assert_ne!(in_order, ids, "metadata rows should be shuffled");
    }
    // First half of the ids in part 1, the rest in part 2; nothing else on disk.
    let half = rows.len().div_ceil(2);
    for (k, id) in ids.iter().enumerate() {
        let part = if k < half { 1 } else { 2 };
        check_image(
            &dir.join(format!("HAM10000_images_part_{part}/{id}.jpg")),
            w,
            h,
        );
    }
    assert_eq!(files_under(dir).len(), rows.len() + 1);
    // Summary agrees with the table.
    let mut per_class = [0; COUNT];
    let mut lesions_per_class = [
        HashSet::new(),
        HashSet::new(),
        HashSet::new(),
        HashSet::new(),
        HashSet::new(),
        HashSet::new(),
        HashSet::new(),
    ];
    for (lesion, c) in out.values() {
        per_class[*c] += 1;
        lesions_per_class[*c].insert(lesion.clone());
    }
    assert_eq!(per_class.to_vec(), s.class_images);
    assert_eq!(lesion_meta.len(), s.lesions);
    let lpc: Vec<usize> = lesions_per_class.iter().map(HashSet::len).collect();
    assert_eq!(lpc, s.class_lesions);
    out
}

#[test]
fn ham10000_layout_and_formats() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("ham");
    let s = write_synth(&dir, &cfg(40, SynthLayout::Ham10000, 1, 120, 90)).unwrap();
    assert_eq!(s.images, 40);
    assert!(s.lesions < 40 && s.lesions >= 14, "{s:?}");
    // n >= 14: at least two lesions of every class, NV the largest class.
    assert!(s.class_lesions.iter().all(|&l| l >= 2), "{s:?}");
    assert_eq!(s.class_images.iter().max(), Some(&s.class_images[1]));
    check_ham(&dir, &s, 120, 90);

    // Small sets: every class once from 7 images on.
    let dir7 = tmp.path().join("ham7");
    let s7 = write_synth(&dir7, &cfg(7, SynthLayout::Ham10000, 2, 64, 48)).unwrap();
    assert_eq!(s7.class_images, [1; COUNT]);
    check_ham(&dir7, &s7, 64, 48);
    let dir1 = tmp.path().join("ham1");
    let s1 = write_synth(&dir1, &cfg(1, SynthLayout::Ham10000, 2, 64, 48)).unwrap();
    assert_eq!((s1.images, s1.lesions), (1, 1));
    check_ham(&dir1, &s1, 64, 48);
}

#[test]
fn isic2018_layout_and_formats() {
    const CONFIRM: [&str; 4] = [
        "histopathology",
        "serial imaging showing no change",
        "single image expert consensus",
        "confocal microscopy with consensus dermoscopy",
    ];
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("isic");
    let s = write_synth(&dir, &cfg(30, SynthLayout::Isic2018, 4, 100, 75)).unwrap();
    let gt =
        rows(
            &read(&dir.join(
                "ISIC2018_Task3_Training_GroundTruth/ISIC2018_Task3_Training_GroundTruth.csv",
            )),
            "image,MEL,NV,BCC,AKIEC,BKL,DF,VASC",
        );
    let groups = rows(
        &read(&dir.join("ISIC2018_Task3_Training_LesionGroupings.csv")),
        "image,lesion_id,diagnosis_confirm_type",
    );
    assert_eq!(gt.len(), 30);
    assert_eq!(groups.len(), 30);
    let mut per_class = [0; COUNT];
    let mut lesion_class: HashMap<String, usize> = HashMap::new();
    for (k, (g, l)) in gt.iter().zip(&groups).enumerate() {
        // Sorted by id, consecutive from ISIC_0024306, same order in both tables.
        let id = format!("ISIC_{:07}", 24306 + k);
        assert_eq!(g[0], id);
        assert_eq!(l[0], id);
        assert_eq!(g.len(), 8);
        assert!(g[1..].iter().all(|v| v == "0.0" || v == "1.0"), "{g:?}");
        assert_eq!(g[1..].iter().filter(|v| *v == "1.0").count(), 1, "{g:?}");
        let c = g[1..].iter().position(|v| v == "1.0").unwrap();
        per_class[c] += 1;
        assert_eq!(l.len(), 3);
        assert!(is_id(&l[1], "HAM_"), "{l:?}");
        assert!(CONFIRM.contains(&l[2].as_str()), "{l:?}");
        assert_eq!(*lesion_class.entry(l[1].clone()).or_insert(c), c, "{l:?}");
        check_image(
            &dir.join(format!("ISIC2018_Task3_Training_Input/{id}.jpg")),
            100,
            75,
        );
    }
    assert_eq!(per_class.to_vec(), s.class_images);
    assert_eq!(lesion_class.len(), s.lesions);
    assert_eq!(files_under(&dir).len(), 32);
}

#[test]
fn same_seed_same_bytes_other_seed_differs() {
    let tmp = tempfile::tempdir().unwrap();
    let write = |name: &str, seed: u64| {
        let dir = tmp.path().join(name);
        write_synth(&dir, &cfg(12, SynthLayout::Ham10000, seed, 64, 48)).unwrap();
        files_under(&dir)
            .into_iter()
            .map(|p| {
                let rel = p.strip_prefix(&dir).unwrap().to_path_buf();
                (rel, std::fs::read(&p).unwrap())
            })
            .collect::<Vec<_>>()
    };
    let a = write("a", 5);
    let b = write("b", 5);
    assert_eq!(a.len(), 13);
    assert_eq!(a, b, "same seed must give identical files");
    let c = write("c", 6);
    let csv = |v: &[(PathBuf, Vec<u8>)]| {
        v.iter()
            .find(|(p, _)| p.ends_with("HAM10000_metadata.csv"))
            .unwrap()
            .1
            .clone()
    };
    assert_ne!(csv(&a), csv(&c));
    // Same file names (ids are consecutive), different pictures.
    for ((pa, ba), (pc, bc)) in a.iter().zip(&c) {
        if pa.extension().is_some_and(|e| e == "jpg") && pa == pc {
            assert_ne!(ba, bc, "{}", pa.display());
        }
    }
    let (w1, ic) = (
        render_example(0, 1, 64, 48).unwrap(),
        render_example(0, 2, 64, 48).unwrap(),
    );
    assert_eq!(w1, render_example(0, 1, 64, 48).unwrap());
    assert_ne!(w1, ic);
}

fn mean_abs_diff(a: &image::RgbImage, b: &image::RgbImage) -> f64 {
    a.as_raw()
        .iter()
        .zip(b.as_raw())
        .map(|(&x, &y)| (x as f64 - y as f64).abs())
        .sum::<f64>()
        / a.as_raw().len() as f64
}

/// Images (decoded) and (lesion, class) of a HAM10000-layout set.
fn load_set(dir: &Path, s: &SynthSummary, w: u32, h: u32) -> Vec<(String, usize, image::RgbImage)> {
    let labels = check_ham(dir, s, w, h);
    let half = labels.len().div_ceil(2);
    labels
        .into_iter()
        .enumerate()
        .map(|(k, (id, (lesion, c)))| {
            let part = if k < half { 1 } else { 2 };
            let img = image::open(dir.join(format!("HAM10000_images_part_{part}/{id}.jpg")))
                .unwrap()
                .to_rgb8();
            (lesion, c, img)
        })
        .collect()
}

#[test]
fn images_of_one_lesion_look_alike() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("d");
    let s = write_synth(&dir, &cfg(60, SynthLayout::Ham10000, 11, 120, 90)).unwrap();
    let set = load_set(&dir, &s, 120, 90);
    let (mut wins, mut total) = (0, 0);
    let (mut within_sum, mut between_sum) = (0.0, 0.0);
    for (i, (li, ci, a)) in set.iter().enumerate() {
        let (mut within, mut nw, mut between, mut nb) = (0.0, 0, 0.0, 0);
        for (j, (lj, cj, b)) in set.iter().enumerate() {
            if i == j || ci != cj {
                continue;
            }
            let d = mean_abs_diff(a, b);
            if li == lj {
                within += d;
                nw += 1;
            } else {
                between += d;
                nb += 1;
            }
        }
        if nw > 0 && nb > 0 {
            let (w, b) = (within / nw as f64, between / nb as f64);
            within_sum += w;
            between_sum += b;
            total += 1;
            if w < b {
                wins += 1;
            }
        }
    }
    eprintln!(
        "same lesion closer than other lesions of its class for {wins}/{total} images; \
         mean abs difference {:.1} (same lesion) vs {:.1} (other lesions)",
        within_sum / total as f64,
        between_sum / total as f64
    );
    assert!(total >= 10, "too few multi-image lesions: {total}");
    assert!(wins as f64 >= 0.9 * total as f64, "{wins}/{total}");
    assert!(within_sum < 0.6 * between_sum);
}

/// Mean RGB of the centre region and 8-bin histograms of each channel there.
fn colour_features(img: &image::RgbImage) -> Vec<f64> {
    let (w, h) = img.dimensions();
    let mut mean = [0.0f64; 3];
    let mut hist = [0.0f64; 24];
    let mut n = 0.0;
    for y in h / 4..3 * h / 4 {
        for x in w / 4..3 * w / 4 {
            let p = img.get_pixel(x, y).0;
            for c in 0..3 {
                mean[c] += p[c] as f64;
                hist[c * 8 + p[c] as usize / 32] += 1.0;
            }
            n += 1.0;
        }
    }
    mean.iter().chain(&hist).map(|v| v / n).collect()
}

type Confusion = [[usize; COUNT]; COUNT];

/// Confusion matrices (rows truth) on the training and the test half of a nearest-class-centroid
/// classifier on colour features, trained on half the lesions of a 200-image set.
fn centroid_classifier(seed: u64) -> (Confusion, Confusion) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("d");
    let s = write_synth(&dir, &cfg(200, SynthLayout::Ham10000, seed, 96, 72)).unwrap();
    let set = load_set(&dir, &s, 96, 72);
    // Half the lesions of every class train, the other half test (no lesion in both).
    let mut lesions: Vec<(usize, String)> = set.iter().map(|(l, c, _)| (*c, l.clone())).collect();
    lesions.sort();
    lesions.dedup();
    let mut train_lesions = HashSet::new();
    let mut seen = [0usize; COUNT];
    for (c, l) in &lesions {
        if seen[*c] % 2 == 0 {
            train_lesions.insert(l.clone());
        }
        seen[*c] += 1;
    }
    let feats: Vec<Vec<f64>> = set.iter().map(|(_, _, img)| colour_features(img)).collect();
    let dim = feats[0].len();
    let is_train = |i: usize| train_lesions.contains(&set[i].0);
    // Standardise with training statistics.
    let train: Vec<usize> = (0..set.len()).filter(|&i| is_train(i)).collect();
    let test: Vec<usize> = (0..set.len()).filter(|&i| !is_train(i)).collect();
    let mut mu = vec![0.0; dim];
    let mut sd = vec![0.0; dim];
    for &i in &train {
        for d in 0..dim {
            mu[d] += feats[i][d] / train.len() as f64;
        }
    }
    for &i in &train {
        for d in 0..dim {
            sd[d] += (feats[i][d] - mu[d]).powi(2) / train.len() as f64;
        }
    }
    let z = |i: usize| -> Vec<f64> {
        (0..dim)
            .map(|d| (feats[i][d] - mu[d]) / (sd[d].sqrt() + 1e-9))
            .collect()
    };
    let mut centroid = vec![vec![0.0; dim]; COUNT];
    let mut count = [0usize; COUNT];
    for &i in &train {
        let c = set[i].1;
        count[c] += 1;
        for (acc, v) in centroid[c].iter_mut().zip(z(i)) {
            *acc += v;
        }
    }
    for c in 0..7 {
        assert!(
            count[c] > 0,
            "class {} has no training image",
            classes::CODES[c]
        );
        for v in &mut centroid[c] {
            *v /= count[c] as f64;
        }
    }
    let classify = |i: usize| -> usize {
        let f = z(i);
        (0..7)
            .min_by(|&a, &b| {
                let da: f64 = f
                    .iter()
                    .zip(&centroid[a])
                    .map(|(x, m)| (x - m).powi(2))
                    .sum();
                let db: f64 = f
                    .iter()
                    .zip(&centroid[b])
                    .map(|(x, m)| (x - m).powi(2))
                    .sum();
                da.total_cmp(&db)
            })
            .unwrap()
    };
    let confusion = |idx: &[usize]| -> Confusion {
        let mut m = [[0usize; COUNT]; COUNT];
        for &i in idx {
            m[set[i].1][classify(i)] += 1;
        }
        m
    };
    (confusion(&train), confusion(&test))
}

/// (accuracy, balanced accuracy = mean recall over the classes present).
fn accuracies(m: &Confusion) -> (f64, f64) {
    let total: usize = m.iter().flatten().sum();
    let hits: usize = (0..7).map(|c| m[c][c]).sum();
    let recalls: Vec<f64> = (0..7)
        .filter(|&c| m[c].iter().sum::<usize>() > 0)
        .map(|c| m[c][c] as f64 / m[c].iter().sum::<usize>() as f64)
        .collect();
    (
        hits as f64 / total as f64,
        recalls.iter().sum::<f64>() / recalls.len() as f64,
    )
}

#[test]
fn classes_are_learnable_but_not_trivial() {
    // Three independent sets, pooled: a 100-image test half holds only 1-3 images of the rare
    // classes, so one set's balanced accuracy is noisy.
    let (mut train, mut test) = ([[0usize; COUNT]; COUNT], [[0usize; COUNT]; COUNT]);
    for seed in [21, 22, 23] {
        let (a, b) = centroid_classifier(seed);
        let ((ta, tb), (ea, eb)) = (accuracies(&a), accuracies(&b));
        eprintln!(
            "seed {seed}: train accuracy {ta:.3} (balanced {tb:.3}), \
             test accuracy {ea:.3} (balanced {eb:.3})"
        );
        assert!(
            ea < 0.95 && eb < 0.95,
            "classes should not be trivially separable"
        );
        for r in 0..7 {
            for c in 0..7 {
                train[r][c] += a[r][c];
                test[r][c] += b[r][c];
            }
        }
    }
    let ((ta, tb), (ea, eb)) = (accuracies(&train), accuracies(&test));
    eprintln!(
        "nearest class centroid on colour features, 3 sets pooled: train accuracy {ta:.3} \
         (balanced {tb:.3}), test accuracy {ea:.3} (balanced {eb:.3}); chance balanced 0.143\n\
         test confusion (rows truth, {codes:?}): {test:?}",
        codes = classes::CODES
    );
    assert!(eb > 0.3, "classes should be learnable: balanced {eb:.3}");
    assert!(
        eb < 0.9 && ea < 0.9,
        "classes should not be trivially separable"
    );
}

#[test]
fn errors_are_clear() {
    let tmp = tempfile::tempdir().unwrap();
    let e = write_synth(
        &tmp.path().join("z"),
        &cfg(0, SynthLayout::Ham10000, 0, 64, 48),
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("--n"), "{e}");
    assert!(!tmp.path().join("z").exists(), "nothing written on error");

    // What `skinengine synth --n 3 --size SIZE --out OUT` runs: the size parsed, then written.
    let args = |size: &str, out: &Path| (size.to_string(), out.to_path_buf());
    let run = |(size, out): &(String, PathBuf)| {
        let (width, height) = skinengine::data::synth::parse_size(size)?;
        write_synth(
            out,
            &SynthConfig {
                n: 3,
                layout: SynthLayout::Ham10000,
                seed: 0,
                width,
                height,
                ..SynthConfig::default()
            },
        )
    };
    for bad in [
        "600by450",
        "x450",
        "600x",
        "0x450",
        "600x-4",
        "600x450x3",
        "",
    ] {
        let e = run(&args(bad, &tmp.path().join("s")))
            .unwrap_err()
            .to_string();
        assert!(e.contains("--size") && e.contains("600x450"), "{bad}: {e}");
    }
    assert!(!tmp.path().join("s").exists());

    // A folder that already holds a data set is refused, whatever the layout asked for.
    let dir = tmp.path().join("ds");
    write_synth(&dir, &cfg(3, SynthLayout::Isic2018, 0, 32, 24)).unwrap();
    for layout in [SynthLayout::Ham10000, SynthLayout::Isic2018] {
        let e = write_synth(&dir, &cfg(3, layout, 0, 32, 24))
            .unwrap_err()
            .to_string();
        assert!(e.contains("already contains a data set"), "{e}");
        assert!(e.contains(&dir.display().to_string()), "{e}");
    }
    // Any other non-empty folder too; an empty one is fine.
    let other = tmp.path().join("other");
    std::fs::create_dir(&other).unwrap();
    std::fs::write(other.join("notes.txt"), "x").unwrap();
    let e = write_synth(&other, &cfg(3, SynthLayout::Ham10000, 0, 32, 24))
        .unwrap_err()
        .to_string();
    assert!(e.contains("not empty"), "{e}");
    let empty = tmp.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    run(&args("32x24", &empty)).unwrap();
    assert!(empty.join("HAM10000_metadata.csv").is_file());
    // A file where the folder should be.
    let e = write_synth(
        &other.join("notes.txt"),
        &cfg(3, SynthLayout::Ham10000, 0, 32, 24),
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("not a folder"), "{e}");
}
