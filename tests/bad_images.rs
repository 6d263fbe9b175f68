//! Truncated, corrupt and oversized images in every command (issue 13, SPEC section 7): a JPEG
//! cut short in its entropy data is reported by name with "truncated" by `inspect` (decoding
//! or not), left out and listed by `train` (head on frozen features and fine-tuning: in the
//! log and the run's `skipped.txt`, decided when the data set is loaded, so it is in neither
//! split), `embed` (stderr and the file's `skipped` metadata) and `infer` (stderr; not in the
//! CSV); with `--strict` each command fails naming the file and writes nothing. Oversized
//! images are refused from their header with their size. The detection itself (every cut point,
//! flipped bits, trailing bytes) is tested in `data::integrity`.
//!
//! Small and fast: 14 synthetic 64x48 images, random-init ResNet18 (no weights file needed
//! for train/infer), one epoch.

use skinengine::data::dataset::load;
use skinengine::data::image::{check_file, load_rgb};
use skinengine::data::split::{SplitKind, read_split, split, write_split};
use skinengine::data::synth::{SynthConfig, SynthLayout, write_synth};
use skinengine::io::safetensors as st;
use skinengine::model::arch::Arch;
use skinengine::model::init::random_weights;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// A HAM10000-layout data set whose first image (by id) is cut in its entropy data; returns
/// the cut image's path.
fn data_with_a_truncated_image(dir: &Path) -> PathBuf {
    write_synth(
        dir,
        &SynthConfig {
            n: 14,
            width: 64,
            height: 48,
            seed: 3,
            layout: SynthLayout::Ham10000,
            ..SynthConfig::default()
        },
    )
    .unwrap();
    let mut jpgs: Vec<PathBuf> = skinengine::io::walk::walk(dir, skinengine::io::walk::Walk::FILES)
        .unwrap()
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "jpg"))
        .collect();
    jpgs.sort_by_key(|p| p.file_name().unwrap().to_owned());
    let bad = jpgs[0].clone();
    let bytes = std::fs::read(&bad).unwrap();
    // 70% in: past the headers, inside the scan. The decoder alone fills the rest with grey.
    std::fs::write(&bad, &bytes[..bytes.len() * 7 / 10]).unwrap();
    bad
}

fn name(p: &Path) -> String {
    p.file_name().unwrap().to_string_lossy().into_owned()
}

fn cli(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_skinengine"))
        .args(args)
        .output()
        .unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// `o` succeeded / failed, and its output names `file` as truncated.
fn names_truncated(o: &Output, file: &str, ok: bool) {
    let t = text(o);
    assert_eq!(o.status.success(), ok, "{t}");
    assert!(
        t.lines()
            .any(|l| l.contains(file) && l.contains("truncated")),
        "no line naming {file} as truncated:\n{t}"
    );
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn inspect_reports_a_truncated_image_decoding_or_not() {
    let d = tempfile::tempdir().unwrap();
    let data = d.path().join("data");
    let bad = name(&data_with_a_truncated_image(&data));
    for extra in [&[][..], &["--no-decode"]] {
        let mut a = vec!["inspect", "--data", s(&data)];
        a.extend_from_slice(extra);
        let o = cli(&a);
        names_truncated(&o, &bad, true);
        assert!(text(&o).contains("problems: 1"), "{}", text(&o));
        a.push("--strict");
        let o = cli(&a);
        names_truncated(&o, &bad, false);
        assert!(text(&o).contains("1 problems found (--strict)"));
    }
}

/// The ids written to the run's split.csv.
fn split_ids(run: &Path) -> String {
    std::fs::read_to_string(run.join("split.csv")).unwrap()
}

#[test]
fn train_head_and_infer_skip_a_truncated_image_or_stop_with_strict() {
    let d = tempfile::tempdir().unwrap();
    let data = d.path().join("data");
    let bad_path = data_with_a_truncated_image(&data);
    let bad = name(&bad_path);
    let id = bad.trim_end_matches(".jpg");
    let run = d.path().join("run");
    let train = |out: &Path, strict: bool| {
        let mut a = vec![
            "train",
            "--data",
            s(&data),
            "--out",
            s(out),
            "--backbone",
            "resnet18",
            "--head",
            "8",
            "--epochs",
            "1",
            "--batch-size",
            "4",
            "--val-fraction",
            "0.3",
            "--device",
            "cpu",
        ];
        if strict {
            a.push("--strict");
        }
        cli(&a)
    };
    let o = train(&run, false);
    names_truncated(&o, &bad, true);
    // Left out when the data set was loaded: in neither split, listed in the run folder.
    assert!(!split_ids(&run).contains(id), "{}", split_ids(&run));
    let listed = std::fs::read_to_string(run.join("skipped.txt")).unwrap();
    assert_eq!(listed.lines().count(), 1, "{listed}");
    assert!(
        listed.contains(&bad) && listed.contains("truncated"),
        "{listed}"
    );
    let report = std::fs::read_to_string(run.join("report.md")).unwrap();
    assert!(report.contains("Skipped 1 unreadable images"), "{report}");

    // --strict: the error names the file, and the run folder is never created.
    let strict_run = d.path().join("strict_run");
    let o = train(&strict_run, true);
    names_truncated(&o, &bad, false);
    assert!(!strict_run.exists());

    // infer on the data folder: the truncated image is listed and not in the CSV.
    let model = run.join("model.safetensors");
    let csv = d.path().join("pred.csv");
    let infer = |out: &Path, strict: bool| {
        let mut a = vec![
            "infer",
            "--model",
            s(&model),
            "--images",
            s(&data),
            "--out",
            s(out),
            "--device",
            "cpu",
        ];
        if strict {
            a.push("--strict");
        }
        cli(&a)
    };
    let o = infer(&csv, false);
    names_truncated(&o, &bad, true);
    let rows = std::fs::read_to_string(&csv).unwrap();
    assert_eq!(rows.lines().count(), 1 + 13, "{rows}");
    assert!(!rows.contains(id));
    let strict_csv = d.path().join("strict.csv");
    let o = infer(&strict_csv, true);
    names_truncated(&o, &bad, false);
    assert!(!strict_csv.exists());
}

#[test]
fn fine_tuning_skips_a_truncated_image_or_stops_with_strict() {
    let d = tempfile::tempdir().unwrap();
    let data = d.path().join("data");
    let bad = name(&data_with_a_truncated_image(&data));
    let run = d.path().join("run");
    let train = |out: &Path, strict: bool| {
        let mut a = vec![
            "train",
            "--data",
            s(&data),
            "--out",
            s(out),
            "--fine-tune",
            "all",
            "--backbone",
            "resnet18",
            "--image-size",
            "32",
            "--head",
            "8",
            "--epochs",
            "1",
            "--batch-size",
            "4",
            "--val-fraction",
            "0.3",
            "--device",
            "cpu",
        ];
        if strict {
            a.push("--strict");
        }
        cli(&a)
    };
    let o = train(&run, false);
    names_truncated(&o, &bad, true);
    assert!(!split_ids(&run).contains(bad.trim_end_matches(".jpg")));
    let listed = std::fs::read_to_string(run.join("skipped.txt")).unwrap();
    assert!(
        listed.contains(&bad) && listed.contains("truncated"),
        "{listed}"
    );
    let strict_run = d.path().join("strict_run");
    names_truncated(&train(&strict_run, true), &bad, false);
    assert!(!strict_run.exists());
}

#[test]
fn embed_skips_a_truncated_image_and_records_it_or_stops_with_strict() {
    let d = tempfile::tempdir().unwrap();
    let data = d.path().join("data");
    let bad_path = data_with_a_truncated_image(&data);
    let bad = name(&bad_path);
    let weights = d.path().join("resnet18.safetensors");
    let sd = random_weights(Arch::ResNet18, 1, None);
    let named: Vec<_> = sd.iter().map(|(k, v)| (k.as_str(), v)).collect();
    st::write(&weights, &named, &HashMap::new()).unwrap();
    let embed = |out: &Path, strict: bool| {
        let mut a = vec![
            "embed",
            "--weights",
            s(&weights),
            "--images",
            s(&data),
            "--out",
            s(out),
            "--device",
            "cpu",
        ];
        if strict {
            a.push("--strict");
        }
        cli(&a)
    };
    let out = d.path().join("e.safetensors");
    names_truncated(&embed(&out, false), &bad, true);
    let f = st::read(&out).unwrap();
    assert_eq!(f.tensors["features"].shape(), &[13, 512]);
    let skipped: serde_json::Value = serde_json::from_str(&f.metadata["skipped"]).unwrap();
    assert_eq!(skipped.as_array().unwrap().len(), 1, "{skipped}");
    assert_eq!(skipped[0]["file"], bad_path.display().to_string());
    assert!(
        skipped[0]["problem"]
            .as_str()
            .unwrap()
            .contains("truncated")
    );
    let strict_out = d.path().join("strict.safetensors");
    names_truncated(&embed(&strict_out, true), &bad, false);
    assert!(!strict_out.exists());
}

/// A split file written while the image was whole (`train --split-file`, a run resumed after
/// the file was damaged) still fits the data set without it; an id the data set never had is
/// still refused.
#[test]
fn a_split_file_listing_a_left_out_image_still_fits() {
    let d = tempfile::tempdir().unwrap();
    let data = d.path().join("data");
    let bad = data_with_a_truncated_image(&data);
    let id = bad.file_stem().unwrap().to_str().unwrap();
    let mut ds = load(&data).unwrap();
    let before = split(&ds, SplitKind::Lesion, 0.3, 1).unwrap();
    let file = d.path().join("split.csv");
    write_split(&file, &ds, &before).unwrap();
    assert!(std::fs::read_to_string(&file).unwrap().contains(id));
    let left_out = ds.remove_bad_images();
    assert_eq!(left_out.len(), 1);
    assert_eq!(ds.left_out, [id]);
    let after = read_split(&file, &ds).unwrap();
    assert_eq!(after.train.len() + after.val.len(), 13);
    // Each remaining image keeps its side.
    let text = std::fs::read_to_string(&file).unwrap();
    for (i, smp) in ds.samples.iter().enumerate() {
        let was_val = text
            .lines()
            .any(|l| l.starts_with(&format!("{},val,", smp.id)));
        assert_eq!(after.val.contains(&i), was_val, "{}", smp.id);
    }
    ds.left_out.clear();
    let e = read_split(&file, &ds).unwrap_err().to_string();
    assert!(
        e.contains(&format!("image '{id}' is not in the data set")),
        "{e}"
    );
}

/// `bytes` with the 32-bit CRC of the chunk at `at` (length, type, data, CRC) recomputed.
fn fix_png_crc(bytes: &mut [u8], at: usize) {
    let len = u32::from_be_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
    let crc = crc32fast::hash(&bytes[at + 4..at + 8 + len]);
    bytes[at + 8 + len..at + 12 + len].copy_from_slice(&crc.to_be_bytes());
}

#[test]
fn oversized_images_are_refused_from_their_header_with_their_size() {
    let d = tempfile::tempdir().unwrap();
    let img = image::RgbImage::from_fn(16, 12, |x, y| image::Rgb([x as u8 * 9, y as u8 * 7, 3]));
    // PNG: IHDR (at byte 8) says 20000 x 10000, its CRC made right, so only the size is wrong.
    let png = d.path().join("huge.png");
    img.save(&png).unwrap();
    let mut b = std::fs::read(&png).unwrap();
    b[16..20].copy_from_slice(&20000u32.to_be_bytes());
    b[20..24].copy_from_slice(&10000u32.to_be_bytes());
    fix_png_crc(&mut b, 8);
    std::fs::write(&png, &b).unwrap();
    // JPEG: the frame header (SOF0) says 12000 wide, 9000 high.
    let jpg = d.path().join("huge.jpg");
    img.save(&jpg).unwrap();
    let mut b = std::fs::read(&jpg).unwrap();
    let sof = b.windows(2).position(|w| w == [0xFF, 0xC0]).unwrap();
    b[sof + 5..sof + 7].copy_from_slice(&9000u16.to_be_bytes());
    b[sof + 7..sof + 9].copy_from_slice(&12000u16.to_be_bytes());
    std::fs::write(&jpg, &b).unwrap();
    for (p, size) in [(&png, "20000 x 10000"), (&jpg, "12000 x 9000")] {
        for e in [
            check_file(p).unwrap_err().to_string(),
            load_rgb(p).unwrap_err().to_string(),
        ] {
            assert!(
                e.contains(&name(p)) && e.contains(&format!("image too large ({size}, limit 64")),
                "{e}"
            );
        }
    }
}
