//! The CSV readers: HAM10000 metadata and ISIC 2018 ground truth + lesion groupings (through
//! `data::dataset::load`, the way `train`, `inspect` and `embed` read a data folder),
//! `split.csv` (`data::split::read_split`), the scorer's ground truth and the whole of `eval`
//! (`metrics::score_files`: ground truth, predictions, matching, scoring), and `merge`'s shard
//! CSVs with their `.shard.json` records. Seeds are files in the official formats.

use super::{Target, join_parts, mutate, scratch, split_parts};
use skinengine::Rng;
use skinengine::classes;
use skinengine::data::dataset::{self, Dataset};
use skinengine::data::schema::{ham, isic};
use skinengine::data::split::{SplitKind, read_split, split, write_split};
use skinengine::pipeline::shard::{Shard, merge};
use std::path::{Path, PathBuf};
use tempfile::TempDir;

const IMAGES: usize = 24;

fn image_id(i: usize) -> String {
    format!("ISIC_{:07}", 24306 + i)
}

/// A folder with empty image files (the readers only look for them; nothing is decoded).
fn data_dir(name: &str) -> TempDir {
    let d = scratch(name);
    for i in 0..IMAGES {
        std::fs::write(d.path().join(format!("{}.jpg", image_id(i))), b"").unwrap();
    }
    d
}

fn ham_csv(bom: bool, crlf: bool, dataset_col: bool) -> Vec<u8> {
    let cols: Vec<&str> = if dataset_col {
        ham::COLUMNS.to_vec()
    } else {
        ham::COLUMNS[..7].to_vec()
    };
    let mut lines = vec![cols.join(",")];
    for i in 0..IMAGES {
        let mut f = vec![
            format!("HAM_{:07}", i / 2),
            image_id(i),
            classes::DX[i % classes::COUNT].to_string(),
            ["histo", "follow_up", "consensus", "confocal"][i % 4].to_string(),
            if i == 3 {
                String::new()
            } else {
                format!("{}.0", 30 + i * 5)
            },
            ["male", "female", "unknown"][i % 3].to_string(),
            ["scalp", "back", "lower extremity", "\"face, left\""][i % 4].to_string(),
        ];
        if dataset_col {
            f.push("vidir_modern".into());
        }
        lines.push(f.join(","));
    }
    let nl = if crlf { "\r\n" } else { "\n" };
    let mut s = if bom {
        "\u{feff}".to_string()
    } else {
        String::new()
    };
    s.push_str(&lines.join(nl));
    s.push_str(nl);
    s.into_bytes()
}

fn one_hot(label: usize) -> String {
    (0..classes::COUNT)
        .map(|k| if k == label { "1.0" } else { "0.0" })
        .collect::<Vec<_>>()
        .join(",")
}

fn isic_gt(ext: bool) -> Vec<u8> {
    let mut s = format!("{},{}\n", isic::IMAGE, classes::CODES.join(","));
    for i in 0..IMAGES {
        let id = image_id(i) + if ext && i % 3 == 0 { ".jpg" } else { "" };
        s.push_str(&format!("{id},{}\n", one_hot(i % classes::COUNT)));
    }
    s.into_bytes()
}

fn isic_groupings() -> Vec<u8> {
    let mut s = isic::GROUPINGS_COLUMNS.join(",") + "\n";
    for i in 0..IMAGES {
        s.push_str(&format!(
            "{},IL_{:07},{}\n",
            image_id(i),
            i / 3,
            ["histopathology", "serial imaging showing no change"][i % 2]
        ));
    }
    s.into_bytes()
}

/// Applies a CSV edit to one of the parts of a multi-file input.
fn mutate_part(input: &[u8], n: usize, rng: &mut Rng) -> Option<Vec<u8>> {
    let mut parts: Vec<Vec<u8>> = split_parts(input, n).iter().map(|p| p.to_vec()).collect();
    let k = rng.below(parts.len());
    parts[k] = mutate::csv(&parts[k], rng)?;
    let refs: Vec<&[u8]> = parts.iter().map(Vec::as_slice).collect();
    Some(join_parts(&refs))
}

fn write_or_remove(path: &Path, part: Option<&&[u8]>) {
    match part {
        Some(b) => std::fs::write(path, b).unwrap(),
        None => {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// A data folder in the HAM10000 layout: the metadata CSV is the input.
pub struct Ham {
    dir: TempDir,
}

impl Ham {
    pub fn new() -> Self {
        Ham {
            dir: data_dir("ham"),
        }
    }
}

impl Target for Ham {
    fn name(&self) -> &'static str {
        "ham"
    }
    fn seeds(&mut self) -> Vec<Vec<u8>> {
        vec![
            ham_csv(false, false, true),
            ham_csv(true, true, false),
            ham_csv(false, true, true),
        ]
    }
    fn mutate(&self, input: &[u8], rng: &mut Rng) -> Option<Vec<u8>> {
        mutate::csv(input, rng)
    }
    fn exec(&mut self, input: &[u8]) -> Result<(), String> {
        std::fs::write(self.dir.path().join(ham::METADATA_FILES[0]), input).unwrap();
        dataset::load(self.dir.path())
            .map(drop)
            .map_err(|e| e.to_string())
    }
    fn names(&self) -> &Path {
        self.dir.path()
    }
}

/// A data folder in the ISIC 2018 Task 3 layout: ground truth and lesion groupings (absent when
/// the input has one part).
pub struct Isic {
    dir: TempDir,
}

impl Isic {
    pub fn new() -> Self {
        Isic {
            dir: data_dir("isic"),
        }
    }
}

impl Target for Isic {
    fn name(&self) -> &'static str {
        "isic"
    }
    fn seeds(&mut self) -> Vec<Vec<u8>> {
        vec![
            join_parts(&[&isic_gt(false), &isic_groupings()]),
            join_parts(&[&isic_gt(true), &isic_groupings()]),
            isic_gt(false),
        ]
    }
    fn mutate(&self, input: &[u8], rng: &mut Rng) -> Option<Vec<u8>> {
        mutate_part(input, 2, rng)
    }
    fn exec(&mut self, input: &[u8]) -> Result<(), String> {
        let parts = split_parts(input, 2);
        let d = self.dir.path();
        write_or_remove(
            &d.join(isic::ground_truth_file(isic::TRAINING)),
            parts.first(),
        );
        write_or_remove(&d.join(isic::groupings_file(isic::TRAINING)), parts.get(1));
        dataset::load(d).map(drop).map_err(|e| e.to_string())
    }
    fn names(&self) -> &Path {
        self.dir.path()
    }
}

/// `split.csv` of `train --split-file`, for a fixed HAM10000 data set.
pub struct SplitCsv {
    dir: TempDir,
    ds: Dataset,
}

impl SplitCsv {
    pub fn new() -> Self {
        let dir = data_dir("split");
        std::fs::write(
            dir.path().join(ham::METADATA_FILES[0]),
            ham_csv(false, false, true),
        )
        .unwrap();
        let ds = dataset::load(dir.path()).expect("the split target's data set");
        SplitCsv { dir, ds }
    }
    fn path(&self) -> PathBuf {
        self.dir.path().join("split.csv")
    }
}

impl Target for SplitCsv {
    fn name(&self) -> &'static str {
        "split"
    }
    fn seeds(&mut self) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        for (kind, seed) in [(SplitKind::Lesion, 0), (SplitKind::Image, 1)] {
            let s = split(&self.ds, kind, 0.5, seed).unwrap();
            write_split(&self.path(), &self.ds, &s).unwrap();
            out.push(std::fs::read(self.path()).unwrap());
        }
        out
    }
    fn mutate(&self, input: &[u8], rng: &mut Rng) -> Option<Vec<u8>> {
        mutate::csv(input, rng)
    }
    fn exec(&mut self, input: &[u8]) -> Result<(), String> {
        std::fs::write(self.path(), input).unwrap();
        read_split(&self.path(), &self.ds)
            .map(drop)
            .map_err(|e| e.to_string())
    }
    fn names(&self) -> &Path {
        self.dir.path()
    }
}

fn fixture(rel: &str) -> Vec<u8> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(rel);
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

const SCORER_SETS: [&str; 3] = ["basic", "weighted", "isic_test"];

/// The scorer's ground-truth reader (`eval --truth`).
pub struct Truth {
    dir: TempDir,
}

impl Truth {
    pub fn new() -> Self {
        Truth {
            dir: scratch("truth"),
        }
    }
}

impl Target for Truth {
    fn name(&self) -> &'static str {
        "truth"
    }
    fn seeds(&mut self) -> Vec<Vec<u8>> {
        let mut v: Vec<Vec<u8>> = SCORER_SETS
            .iter()
            .map(|s| fixture(&format!("scorer/{s}/truth.csv")))
            .collect();
        v.push(isic_gt(false));
        v
    }
    fn mutate(&self, input: &[u8], rng: &mut Rng) -> Option<Vec<u8>> {
        mutate::csv(input, rng)
    }
    fn exec(&mut self, input: &[u8]) -> Result<(), String> {
        let p = self.dir.path().join("truth.csv");
        std::fs::write(&p, input).unwrap();
        skinengine::metrics::read_ground_truth(&p)
            .map(drop)
            .map_err(|e| e.to_string())
    }
    fn names(&self) -> &Path {
        self.dir.path()
    }
}

/// The whole of `eval`: ground truth and predictions read, matched and scored.
pub struct Eval {
    dir: TempDir,
}

impl Eval {
    pub fn new() -> Self {
        Eval {
            dir: scratch("eval"),
        }
    }
}

impl Target for Eval {
    fn name(&self) -> &'static str {
        "eval"
    }
    fn seeds(&mut self) -> Vec<Vec<u8>> {
        SCORER_SETS
            .iter()
            .map(|s| {
                join_parts(&[
                    &fixture(&format!("scorer/{s}/truth.csv")),
                    &fixture(&format!("scorer/{s}/pred.csv")),
                ])
            })
            .collect()
    }
    fn mutate(&self, input: &[u8], rng: &mut Rng) -> Option<Vec<u8>> {
        mutate_part(input, 2, rng)
    }
    fn exec(&mut self, input: &[u8]) -> Result<(), String> {
        let parts = split_parts(input, 2);
        let (t, p) = (
            self.dir.path().join("truth.csv"),
            self.dir.path().join("pred.csv"),
        );
        std::fs::write(&t, parts[0]).unwrap();
        std::fs::write(&p, parts.get(1).copied().unwrap_or_default()).unwrap();
        skinengine::metrics::score_files(&t, &p)
            .map(drop)
            .map_err(|e| e.to_string())
    }
    fn names(&self) -> &Path {
        self.dir.path()
    }
}

/// `merge` of shard CSVs, each with its `.shard.json` record: parts are (record, CSV) pairs.
pub struct Merge {
    dir: TempDir,
}

impl Merge {
    pub fn new() -> Self {
        Merge {
            dir: scratch("merge"),
        }
    }
}

fn shard_files(k: usize, n: usize) -> (Vec<u8>, Vec<u8>) {
    let mut csv = format!("{},{}\n", isic::IMAGE, classes::CODES.join(","));
    let mut rows = 0;
    for i in 0..40 {
        let id = image_id(i);
        if (Shard { k, n }).contains(&id) {
            csv.push_str(&format!("{id},0.1,0.2,0.1,0.1,0.3,0.1,0.1\n"));
            rows += 1;
        }
    }
    let json =
        format!(r#"{{"shard":{k},"of":{n},"rows":{rows},"model":"0123456789abcdef00001000"}}"#);
    (json.into_bytes(), csv.into_bytes())
}

impl Target for Merge {
    fn name(&self) -> &'static str {
        "merge"
    }
    fn seeds(&mut self) -> Vec<Vec<u8>> {
        let (j1, c1) = shard_files(1, 1);
        let (a, b) = (shard_files(1, 2), shard_files(2, 2));
        vec![
            join_parts(&[&j1, &c1]),
            join_parts(&[&a.0, &a.1, &b.0, &b.1]),
        ]
    }
    fn mutate(&self, input: &[u8], rng: &mut Rng) -> Option<Vec<u8>> {
        if rng.below(2) == 0 {
            return mutate_part(input, 4, rng);
        }
        // A field of a shard record: a number past every limit, of the wrong type, absent.
        let mut parts: Vec<Vec<u8>> = split_parts(input, 4).iter().map(|p| p.to_vec()).collect();
        let k = 2 * rng.below(parts.len().div_ceil(2));
        let mut v: serde_json::Value = serde_json::from_slice(&parts[k]).ok()?;
        let m = v.as_object_mut()?;
        let key = ["shard", "of", "rows", "model"][rng.below(4)];
        let new = match rng.below(6) {
            0 => serde_json::Value::Null,
            1 => serde_json::json!(-1),
            2 => serde_json::json!(mutate::token(rng)),
            3 => serde_json::json!([0u64, 1, 2, 3, 1 << 20, 1 << 32, u64::MAX][rng.below(7)]),
            4 => serde_json::json!(2.5),
            _ => {
                m.remove(key);
                serde_json::Value::Null
            }
        };
        if !new.is_null() {
            m.insert(key.into(), new);
        }
        parts[k] = v.to_string().into_bytes();
        let refs: Vec<&[u8]> = parts.iter().map(Vec::as_slice).collect();
        Some(join_parts(&refs))
    }
    fn exec(&mut self, input: &[u8]) -> Result<(), String> {
        let parts = split_parts(input, 4);
        let d = self.dir.path();
        let mut csvs = Vec::new();
        for (i, pair) in parts.chunks(2).enumerate() {
            let csv = d.join(format!("{}.csv", i + 1));
            std::fs::write(
                PathBuf::from(format!("{}.shard.json", csv.display())),
                pair[0],
            )
            .unwrap();
            std::fs::write(&csv, pair.get(1).copied().unwrap_or_default()).unwrap();
            csvs.push(csv);
        }
        merge(&d.join("merged.csv"), &csvs)
            .map(drop)
            .map_err(|e| e.to_string())
    }
    /// Problems of the set of shards (one missing, none with an image) concern no one file.
    fn names_file(&self, msg: &str) -> bool {
        msg.contains(&self.dir.path().display().to_string())
            || msg.starts_with("merge: invalid argument: incomplete set of shards")
            || msg.starts_with("merge: invalid argument: no image in any shard")
    }
    fn names(&self) -> &Path {
        self.dir.path()
    }
}
