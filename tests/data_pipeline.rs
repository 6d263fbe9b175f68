//! Data readers on real files in the official layouts (with the real files' quirks), leak-free
//! splits, views, class weights, colour constancy and the bad inputs of SPEC section 7.

use skinengine::classes;
use skinengine::data::class_weights::ClassWeights;
use skinengine::data::dataset::{Layout, load};
use skinengine::data::image::{CropFrac, Rgb, Transform, apply, shades_of_gray};
use skinengine::data::split::{SplitKind, read_split, split, write_split};
use skinengine::data::views::{ViewConfig, make_views, seed_protocol_split};
use std::collections::HashSet;
use std::path::Path;

fn jpg(path: &Path, shade: u8) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    image::RgbImage::from_fn(40, 30, |x, y| {
        image::Rgb([shade, (x * 6) as u8, (y * 8) as u8])
    })
    .save(path)
    .unwrap();
}

/// A HAM10000-style folder: `lesions` lesions of 1-3 images, classes cycling; image_id with and
/// without `.jpg`, empty ages, the extra `dataset` column, images split over two part folders.
fn ham(dir: &Path, lesions: usize) -> usize {
    let mut csv = String::from("lesion_id,image_id,dx,dx_type,age,sex,localization,dataset\n");
    let mut n = 0;
    for l in 0..lesions {
        for k in 0..(l % 3 + 1) {
            let id = format!("ISIC_{:07}", 24306 + n);
            let part = if n % 2 == 0 {
                "HAM10000_images_part_1"
            } else {
                "HAM10000_images_part_2"
            };
            jpg(
                &dir.join(part).join(format!("{id}.jpg")),
                (n * 7 % 256) as u8,
            );
            let shown = if k == 1 {
                format!("{id}.jpg")
            } else {
                id.clone()
            };
            let age = if n % 5 == 0 {
                String::new()
            } else {
                format!("{}.0", 30 + n % 50)
            };
            csv += &format!(
                "HAM_{:07},{shown},{},histo,{age},male,back,vidir_modern\n",
                l,
                classes::DX[l % classes::COUNT]
            );
            n += 1;
        }
    }
    std::fs::write(dir.join("HAM10000_metadata.csv"), csv).unwrap();
    n
}

#[test]
fn reads_ham10000_layout_with_its_quirks() {
    let d = tempfile::tempdir().unwrap();
    let n = ham(d.path(), 21);
    let ds = load(d.path()).unwrap();
    assert_eq!(ds.layout, Layout::Ham10000);
    assert_eq!(ds.samples.len(), n);
    assert!(ds.problems.is_empty(), "{:?}", ds.problems);
    assert_eq!(ds.lesion_count(), 21);
    assert_eq!(ds.counts().iter().sum::<usize>(), n);
    let s = ds.samples.iter().find(|s| s.id == "ISIC_0024307").unwrap();
    assert_eq!(s.label, Some(1)); // lesion 1 -> nv
    assert_eq!(s.meta["dataset"], "vidir_modern");
    assert!(ds.samples.iter().any(|s| s.meta["age"].is_empty()));
}

fn isic(dir: &Path, with_groupings: bool) -> usize {
    let gt_dir = dir.join("ISIC2018_Task3_Training_GroundTruth");
    std::fs::create_dir_all(&gt_dir).unwrap();
    let mut gt = String::from("image,MEL,NV,BCC,AKIEC,BKL,DF,VASC\n");
    let mut lg = String::from("image,lesion_id,diagnosis_confirm_type\n");
    for i in 0..28 {
        let id = format!("ISIC_{:07}", 30000 + i);
        jpg(
            &dir.join("ISIC2018_Task3_Training_Input")
                .join(format!("{id}.jpg")),
            i as u8 * 9,
        );
        let c = i % 7;
        let onehot: Vec<&str> = (0..7).map(|k| if k == c { "1.0" } else { "0.0" }).collect();
        gt += &format!("{id},{}\n", onehot.join(","));
        lg += &format!("{id},HAM_{:07},histopathology\n", i / 2 * 2 % 28 + c * 100);
    }
    std::fs::write(gt_dir.join("ISIC2018_Task3_Training_GroundTruth.csv"), gt).unwrap();
    if with_groupings {
        std::fs::write(dir.join("ISIC2018_Task3_Training_LesionGroupings.csv"), lg).unwrap();
    }
    28
}

#[test]
fn reads_isic2018_layout_with_and_without_groupings() {
    let d = tempfile::tempdir().unwrap();
    isic(d.path(), true);
    let ds = load(d.path()).unwrap();
    assert_eq!(ds.layout, Layout::Isic2018);
    assert_eq!(ds.samples.len(), 28);
    assert!(
        ds.has_lesions && ds.problems.is_empty(),
        "{:?}",
        ds.problems
    );
    assert_eq!(ds.counts(), [4; classes::COUNT]);
    assert_eq!(ds.samples[3].label, Some(3));
    assert_eq!(
        ds.samples[0].meta["diagnosis_confirm_type"],
        "histopathology"
    );

    let d2 = tempfile::tempdir().unwrap();
    isic(d2.path(), false);
    let ds = load(d2.path()).unwrap();
    assert!(!ds.has_lesions);
    assert!(
        ds.notes.iter().any(|n| n.contains("its own lesion")),
        "{:?}",
        ds.notes
    );
    assert_eq!(ds.lesion_count(), 28);
}

#[test]
fn plain_folder_and_nothing_found() {
    let d = tempfile::tempdir().unwrap();
    jpg(&d.path().join("a/x1.jpg"), 1);
    jpg(&d.path().join("x2.jpg"), 2);
    let ds = load(d.path()).unwrap();
    assert_eq!(ds.layout, Layout::Folder);
    assert_eq!(ds.samples.len(), 2);
    assert!(ds.samples.iter().all(|s| s.label.is_none()));
    let empty = tempfile::tempdir().unwrap();
    let msg = load(empty.path()).unwrap_err().to_string();
    assert!(
        msg.contains("no data set found") && msg.contains("HAM10000_metadata.csv"),
        "{msg}"
    );
}

#[test]
fn bad_rows_are_listed_with_file_and_row() {
    let d = tempfile::tempdir().unwrap();
    ham(d.path(), 7);
    let meta = d.path().join("HAM10000_metadata.csv");
    let mut csv = std::fs::read_to_string(&meta).unwrap();
    csv += "HAM_9999999,ISIC_9999999,mel,histo,40.0,male,back,rosendahl\n"; // no image file
    csv += "HAM_9999998,ISIC_0024306,nv,histo,40.0,male,back,rosendahl\n"; // duplicate id
    csv += "HAM_9999997,ISIC_0024307,melanoma,histo,40.0,male,back,rosendahl\n"; // dup + label
    csv += "HAM_9999996,,nv,histo,40.0,male,back,rosendahl\n"; // no image id
    jpg(&d.path().join("extra/ISIC_7777777.jpg"), 5);
    std::fs::write(&meta, csv).unwrap();
    let ds = load(d.path()).unwrap();
    let all = ds.problems.join("\n");
    assert!(
        all.contains("HAM10000_metadata.csv: row")
            && all.contains("ISIC_9999999 is listed but no file"),
        "{all}"
    );
    assert!(all.contains("duplicate image id ISIC_0024306"), "{all}");
    assert!(all.contains("empty image id"), "{all}");
    assert_eq!(ds.problems.len(), 4, "{all}");
    assert!(
        ds.notes
            .iter()
            .any(|n| n.contains("1 image files are not listed")),
        "{:?}",
        ds.notes
    );

    // Unknown label and non-one-hot rows in the ISIC layout.
    let d2 = tempfile::tempdir().unwrap();
    isic(d2.path(), true);
    let gt = d2
        .path()
        .join("ISIC2018_Task3_Training_GroundTruth/ISIC2018_Task3_Training_GroundTruth.csv");
    let mut s = std::fs::read_to_string(&gt).unwrap();
    s = s.replacen("ISIC_0030001,0.0,1.0", "ISIC_0030001,0.0,0.5", 1);
    s = s.replacen("ISIC_0030002,0.0,0.0,1.0", "ISIC_0030002,1.0,0.0,1.0", 1);
    std::fs::write(&gt, s).unwrap();
    let ds = load(d2.path()).unwrap();
    assert_eq!(ds.problems.len(), 2, "{:?}", ds.problems);
    assert!(
        ds.problems
            .iter()
            .all(|p| p.contains("not one-hot") && p.contains("GroundTruth.csv: row"))
    );

    // Every row unusable: an empty data set is an error naming the folder and the reasons.
    let d3 = tempfile::tempdir().unwrap();
    std::fs::write(
        d3.path().join("HAM10000_metadata"),
        "lesion_id,image_id,dx\nHAM_1,ISIC_1,nv\n",
    )
    .unwrap();
    let msg = load(d3.path()).unwrap_err().to_string();
    assert!(
        msg.contains("empty data set") && msg.contains("ISIC_1 is listed"),
        "{msg}"
    );
    // Missing required column.
    std::fs::write(d3.path().join("HAM10000_metadata"), "lesion,image_id,dx\n").unwrap();
    let msg = load(d3.path()).unwrap_err().to_string();
    assert!(msg.contains("missing column 'lesion_id'"), "{msg}");
}

#[test]
fn lesion_split_keeps_lesions_and_views_on_one_side() {
    let d = tempfile::tempdir().unwrap();
    ham(d.path(), 140);
    let ds = load(d.path()).unwrap();
    let sp = split(&ds, SplitKind::Lesion, 0.2, 3).unwrap();
    assert_eq!(sp.train.len() + sp.val.len(), ds.samples.len());
    let lesions = |ix: &[usize]| {
        ix.iter()
            .map(|&i| ds.samples[i].lesion.clone())
            .collect::<HashSet<_>>()
    };
    assert!(
        lesions(&sp.train).is_disjoint(&lesions(&sp.val)),
        "a lesion crosses the split"
    );
    // Stratified: every class is in validation, at about 20% of its images.
    let counts = ds.counts();
    for (c, &count) in counts.iter().enumerate() {
        let v = sp
            .val
            .iter()
            .filter(|&&i| ds.samples[i].label == Some(c))
            .count();
        let want = 0.2 * count as f64;
        assert!(
            v > 0 && (v as f64 - want).abs() <= 3.0,
            "class {c}: {v} in val, want ~{want}"
        );
    }
    // Views of the training split (mirror + oversampling) never name a validation image.
    let cfg = ViewConfig {
        mirror: true,
        oversample: true,
        ..ViewConfig::default()
    };
    let tv = make_views(&ds, &sp.train, &cfg, 3);
    let val_ids: HashSet<&str> = sp.val.iter().map(|&i| ds.samples[i].id.as_str()).collect();
    assert!(tv.iter().all(
        |v| !val_ids.contains(ds.samples[v.sample].id.as_str()) && sp.train.contains(&v.sample)
    ));
    // Same seed, same split; another seed, another split.
    assert_eq!(split(&ds, SplitKind::Lesion, 0.2, 3).unwrap(), sp);
    assert_ne!(split(&ds, SplitKind::Lesion, 0.2, 4).unwrap(), sp);
    // split.csv round trip, and errors for a split of another data set.
    let p = d.path().join("split.csv");
    write_split(&p, &ds, &sp).unwrap();
    assert_eq!(read_split(&p, &ds).unwrap(), sp);
    let text = std::fs::read_to_string(&p).unwrap();
    std::fs::write(&p, text.replacen("ISIC_0024306", "ISIC_1234567", 1)).unwrap();
    let msg = read_split(&p, &ds).unwrap_err().to_string();
    assert!(
        msg.contains("ISIC_1234567") && msg.contains("not in the data set"),
        "{msg}"
    );
    // Image split (for comparison) covers everything too.
    let si = split(&ds, SplitKind::Image, 0.2, 3).unwrap();
    assert_eq!(si.train.len() + si.val.len(), ds.samples.len());
    assert!(split(&ds, SplitKind::Lesion, 1.0, 3).is_err());
}

#[test]
fn views_names_and_seed_protocol() {
    let d = tempfile::tempdir().unwrap();
    ham(d.path(), 7); // lesion l has class l: mel, nv(2 imgs), bcc(3), akiec, bkl(2), df(3), vasc
    let ds = load(d.path()).unwrap();
    let all: Vec<usize> = (0..ds.samples.len()).collect();
    let plain = make_views(&ds, &all, &ViewConfig::default(), 1);
    assert_eq!(plain.len(), ds.samples.len());
    let cfg = ViewConfig {
        mirror: true,
        oversample: true,
        ..ViewConfig::default()
    };
    let v = make_views(&ds, &all, &cfg, 1);
    let names: HashSet<&str> = v.iter().map(|v| v.name.as_str()).collect();
    assert_eq!(names.len(), v.len(), "view names must be unique");
    let df = ds.samples.iter().find(|s| s.label == Some(5)).unwrap();
    for suffix in ["", "_hflip", "_crop1", "_crop4_hflip"] {
        assert!(
            names.contains(format!("{}{suffix}", df.id).as_str()),
            "{suffix}"
        );
    }
    let ak = ds.samples.iter().find(|s| s.label == Some(3)).unwrap();
    assert!(names.contains(format!("{}_vflip_hflip", ak.id).as_str()));
    // Counts: every image x2 (mirror); DF/VASC +8 each (4 crops + mirrors); AKIEC +2.
    let n_dfv = ds
        .samples
        .iter()
        .filter(|s| matches!(s.label, Some(5) | Some(6)))
        .count();
    let n_ak = ds.samples.iter().filter(|s| s.label == Some(3)).count();
    assert_eq!(v.len(), 2 * ds.samples.len() + 8 * n_dfv + 2 * n_ak);
    // Crops are real (not the whole image), stable for a given seed, different across k.
    let c1 = v
        .iter()
        .find(|x| x.name == format!("{}_crop1", df.id))
        .unwrap();
    let again = make_views(&ds, &all, &cfg, 1);
    assert_eq!(again, v);
    let c = c1.transform.crop.unwrap();
    assert!(c.w < 0.9 && c.h < 0.9 && c.x > 0.0);
    // Seed protocol: splits views, so one image's views can sit on both sides (the leak).
    let (tr, va) = seed_protocol_split(v.clone(), 0.3, 2);
    assert_eq!(tr.len() + va.len(), v.len());
    let tr_s: HashSet<usize> = tr.iter().map(|x| x.sample).collect();
    assert!(
        va.iter().any(|x| tr_s.contains(&x.sample)),
        "expected the seed protocol's leak"
    );
}

#[test]
fn transforms_flip_and_crop_pixels() {
    // 3x2 image with distinct pixels.
    let img = Rgb {
        width: 3,
        height: 2,
        pixels: (0..18).collect(),
    };
    let h = apply(
        &img,
        &Transform {
            hflip: true,
            ..Transform::IDENTITY
        },
    );
    assert_eq!(&h.pixels[..3], &[6, 7, 8]); // first pixel is the old top-right
    let v = apply(
        &img,
        &Transform {
            vflip: true,
            ..Transform::IDENTITY
        },
    );
    assert_eq!(&v.pixels[..3], &[9, 10, 11]); // first pixel is the old bottom-left
    let c = apply(
        &img,
        &Transform {
            crop: Some(CropFrac {
                x: 1.0 / 3.0,
                y: 0.5,
                w: 2.0 / 3.0,
                h: 0.5,
            }),
            ..Transform::IDENTITY
        },
    );
    assert_eq!((c.width, c.height), (2, 1));
    assert_eq!(c.pixels, vec![12, 13, 14, 15, 16, 17]);
}

#[test]
fn class_weights_and_colour_constancy() {
    let labels = [0, 1, 1, 1, 2, 2, 6, 6];
    assert_eq!(
        ClassWeights::None.compute(&labels).unwrap(),
        [1.0; classes::COUNT]
    );
    let f = ClassWeights::Frequency.compute(&labels).unwrap();
    assert_eq!(f, [0.125, 0.375, 0.25, 0.0, 0.0, 0.0, 0.25]);
    let inv = ClassWeights::Inverse.compute(&labels).unwrap();
    assert!((inv[1] - 8.0 / 21.0).abs() < 1e-6 && inv[3] == 0.0);
    let e: ClassWeights = "1,2,3,4,5,6,7".parse().unwrap();
    assert_eq!(e.compute(&labels).unwrap()[6], 7.0);
    assert!("1,2".parse::<ClassWeights>().is_err() && "balanced".parse::<ClassWeights>().is_err());

    // A grey scene under a reddish light becomes neutral; a neutral image is unchanged.
    let mut img = Rgb {
        width: 2,
        height: 1,
        pixels: vec![200, 100, 100, 100, 50, 50],
    };
    shades_of_gray(&mut img, 6.0);
    let p = &img.pixels;
    assert!(
        p[0].abs_diff(p[1]) <= 1 && p[1] == p[2] && p[3].abs_diff(p[4]) <= 1,
        "{p:?}"
    );
    let mut grey = Rgb {
        width: 1,
        height: 1,
        pixels: vec![90, 90, 90],
    };
    shades_of_gray(&mut grey, 6.0);
    assert_eq!(grey.pixels, vec![90, 90, 90]);
}

#[test]
fn synth_output_loads_in_both_layouts() {
    use skinengine::data::synth::{SynthConfig, SynthLayout, write_synth};
    let layouts = [
        SynthLayout::Ham10000,
        SynthLayout::Isic2018,
        SynthLayout::Isic2019,
    ];
    for layout in layouts {
        let d = tempfile::tempdir().unwrap();
        let cfg = SynthConfig {
            n: 40,
            layout,
            width: 64,
            height: 48,
            seed: 9,
            ..SynthConfig::default()
        };
        let summary = write_synth(d.path(), &cfg).unwrap();
        let ds = load(d.path()).unwrap();
        let want = match layout {
            SynthLayout::Ham10000 => Layout::Ham10000,
            SynthLayout::Isic2018 => Layout::Isic2018,
            SynthLayout::Isic2019 => Layout::Isic2019,
        };
        assert_eq!(ds.layout, want);
        assert!(ds.problems.is_empty(), "{:?}", ds.problems);
        assert!(ds.has_lesions);
        assert_eq!(ds.samples.len(), 40);
        assert_eq!(ds.counts(), summary.class_images);
        assert_eq!(ds.lesion_count(), summary.lesions);
        // The default split keeps lesions whole on synth data too.
        let sp = split(&ds, SplitKind::Lesion, 0.25, 1).unwrap();
        let tr: HashSet<&str> = sp
            .train
            .iter()
            .map(|&i| ds.samples[i].lesion.as_str())
            .collect();
        assert!(
            sp.val
                .iter()
                .all(|&i| !tr.contains(ds.samples[i].lesion.as_str()))
        );
    }
}
