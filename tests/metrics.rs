//! ISIC 2018 Task 3 and ISIC 2019 Task 1 metrics: agreement with the official scorer
//! `isic-challenge-scoring` 5.6.0 on committed fixtures (tests/fixtures/scorer/, written by
//! tools/make_scorer_fixture.py and tools/make_scorer_fixture_2019.py), small
//! hand-computed cases, the prediction-CSV round trip and the `eval` command; every bad-input
//! error is in tests/metrics_inputs.rs.
//!
//! Tolerance against the scorer: none. Every value must have the same bits as the scorer's (or
//! both be NaN): src/metrics/ performs the scorer's floating-point operations in its order,
//! NumPy's pairwise summation included. (The largest difference is printed as well.)

use skinengine::classes::{self, COUNT, ClassList};
use skinengine::eval::{EvalConfig, evaluate_files};
use skinengine::metrics::{
    ClassMetrics, Report, ZERO_WEIGHT_IMAGE, argmax_or_tie, evaluate, evaluate_probs,
    format_probability, read_ground_truth, score_files, write_predictions_csv,
};
use std::path::{Path, PathBuf};

const HEADER: &str = "image,MEL,NV,BCC,AKIEC,BKL,DF,VASC";

fn fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/scorer")
}

fn parse_f64(v: &serde_json::Value) -> f64 {
    let s = v
        .as_str()
        .unwrap_or_else(|| panic!("expected a string, got {v}"));
    if s == "NaN" {
        f64::NAN
    } else {
        s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
    }
}

/// Compares bitwise; records the absolute difference.
fn same(what: &str, ours: f64, scorer: f64, max_diff: &mut f64) {
    if ours.is_nan() && scorer.is_nan() {
        return;
    }
    *max_diff = max_diff.max((ours - scorer).abs());
    assert!(
        ours.to_bits() == scorer.to_bits(),
        "{what}: ours {ours:?} vs scorer {scorer:?} (diff {:e})",
        ours - scorer
    );
}

fn metric(m: &ClassMetrics, scorer_name: &str) -> f64 {
    let ours = if scorer_name == "dice" {
        "f1"
    } else {
        scorer_name
    };
    m.fields()
        .iter()
        .find(|(k, _)| *k == ours)
        .unwrap_or_else(|| panic!("no metric {ours}"))
        .1
}

const SCORER_METRICS: [&str; 9] = [
    "accuracy",
    "sensitivity",
    "specificity",
    "dice",
    "ppv",
    "npv",
    "auc",
    "auc_sens_80",
    "ap",
];

/// Compares every value of one fixture with the scorer's, bitwise; `want_classes` are the
/// truth file's columns in its order (the scorer's order). Returns the largest absolute
/// difference and the number of values compared.
fn check_case(case: &str, want_classes: &[&str]) -> (f64, usize) {
    let dir = fixture_dir().join(case);
    let expected: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("expected.json")).unwrap()).unwrap();
    let r = score_files(&dir.join("truth.csv"), &dir.join("pred.csv"))
        .unwrap_or_else(|e| panic!("{case}: {e}"));
    let extra = &expected["extra"];
    // The ISIC 2019 fixtures record the scorer's class order; the 2018 ones predate that.
    if let Some(c) = extra.get("classes") {
        let scorer_classes: Vec<String> = serde_json::from_value(c.clone()).unwrap();
        assert_eq!(r.classes, scorer_classes, "{case}");
    }
    assert_eq!(r.classes, want_classes, "{case}");
    let score = &expected["score"];
    let mut d = 0.0f64;
    let mut compared = 0;
    let mut cmp = |what: String, ours: f64, v: &serde_json::Value| {
        same(&format!("{case}: {what}"), ours, parse_f64(v), &mut d);
        compared += 1;
    };
    cmp("overall".into(), r.bmca, &score["overall"]);
    cmp(
        "aggregate.balanced_accuracy".into(),
        r.bmca,
        &score["aggregate"]["balanced_accuracy"],
    );
    cmp(
        "validation".into(),
        r.validation_bmca.unwrap(),
        &score["validation"],
    );
    for name in SCORER_METRICS {
        for (c, class) in r.classes.iter().enumerate() {
            cmp(
                format!("{class} {name}"),
                metric(&r.per_class[c], name),
                &score["per_category"][name][class],
            );
        }
        cmp(
            format!("macro {name}"),
            metric(&r.macro_average, name),
            &score["macro_average"][name],
        );
    }
    cmp("accuracy".into(), r.accuracy, &extra["accuracy"]);
    cmp(
        "mean_precision".into(),
        r.mean_precision,
        &extra["mean_precision"],
    );
    let confusion: Vec<Vec<usize>> = serde_json::from_value(extra["confusion"].clone()).unwrap();
    let undecided: Vec<usize> = serde_json::from_value(extra["undecided"].clone()).unwrap();
    assert_eq!(
        r.confusion.iter().map(|r| r.to_vec()).collect::<Vec<_>>(),
        confusion,
        "{case}: confusion"
    );
    assert_eq!(r.undecided.to_vec(), undecided, "{case}: undecided");
    assert_eq!(
        r.classes_predicted() as u64,
        extra["classes_predicted"].as_u64().unwrap(),
        "{case}"
    );
    (d, compared)
}

#[test]
fn equals_official_scorer_on_fixtures() {
    let mut total = 0;
    for case in ["basic", "isic_test", "weighted", "large"] {
        let (d, n) = check_case(case, &classes::CODES);
        eprintln!("{case}: {n} values, max |ours - scorer| = {d:e}");
        total += n;
    }
    assert_eq!(total, 4 * 77);
}

/// ISIC 2019 Task 1 (fixtures tests/fixtures/scorer/isic2019_*, written by
/// tools/make_scorer_fixture_2019.py): the 9 columns of the 2019 test ground truth with UNK
/// images and weights, against predictions as `infer` writes them (UNK 0.0, columns in another
/// order).
#[test]
fn isic2019_test_ground_truth_with_unk_matches_the_official_scorer() {
    let list = ClassList::isic2019();
    let (d, n) = check_case("isic2019_test", &list.prediction_columns());
    eprintln!("isic2019_test: {n} values, max |ours - scorer| = {d:e}");
    // 3 scores + 9 metrics x (9 classes + macro) + accuracy + mean precision.
    assert_eq!(n, 3 + 9 * 10 + 2);
    // The validation weights differ from the score weights: two different numbers.
    let dir = fixture_dir().join("isic2019_test");
    let r = score_files(&dir.join("truth.csv"), &dir.join("pred.csv")).unwrap();
    assert_ne!(r.bmca.to_bits(), r.validation_bmca.unwrap().to_bits());
    // UNK is never predicted (always 0.0), so its sensitivity at 0.5 is 0 and it is never the
    // argmax: a model of the 8 trained classes loses exactly the UNK images.
    assert_eq!(r.per_class[8].sensitivity, 0.0);
    assert!(r.confusion.iter().all(|row| row[8] == 0));
}

/// ISIC 2019, the 8 trained classes of train's val_truth.csv.
#[test]
fn isic2019_trained_classes_match_the_official_scorer() {
    let list = ClassList::isic2019();
    let (d, n) = check_case("isic2019_trained", &list.codes());
    eprintln!("isic2019_trained: {n} values, max |ours - scorer| = {d:e}");
    assert_eq!(n, 3 + 9 * 9 + 2);
    let gt = read_ground_truth(&fixture_dir().join("isic2019_trained/truth.csv")).unwrap();
    assert_eq!(gt.classes, list.codes());
}

#[test]
fn fixtures_cover_what_they_claim() {
    let dir = fixture_dir();
    // basic: tied rows, DF never the argmax, `.jpg` suffixes, exact 0.5 values.
    let r = score_files(&dir.join("basic/truth.csv"), &dir.join("basic/pred.csv")).unwrap();
    assert!(r.undecided.iter().sum::<usize>() >= 3);
    assert_eq!(r.confusion.iter().map(|row| row[5]).sum::<usize>(), 0);
    let pred = std::fs::read_to_string(dir.join("basic/pred.csv")).unwrap();
    assert!(pred.contains(".jpg,") && pred.contains(",0.50"));
    // isic_test: ISIC_0035068 present and weighted 0.
    let gt = read_ground_truth(&dir.join("isic_test/truth.csv")).unwrap();
    let i = gt.ids.iter().position(|s| s == ZERO_WEIGHT_IMAGE).unwrap();
    assert_eq!((gt.score_weight[i], gt.validation_weight[i]), (0.0, 0.0));
    let r = score_files(
        &dir.join("isic_test/truth.csv"),
        &dir.join("isic_test/pred.csv"),
    )
    .unwrap();
    assert_eq!(r.n, gt.ids.len() - 1);
    // weighted: validation differs from overall.
    let r = score_files(
        &dir.join("weighted/truth.csv"),
        &dir.join("weighted/pred.csv"),
    )
    .unwrap();
    assert_ne!(r.validation_bmca, Some(r.bmca));
    for case in ["basic", "isic_test", "weighted", "large"] {
        for f in ["truth.csv", "pred.csv", "expected.json"] {
            let len = std::fs::metadata(dir.join(case).join(f)).unwrap().len();
            assert!(len < 20_000, "{case}/{f} is {len} bytes");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Hand-computed cases
// ---------------------------------------------------------------------------------------------

/// A row with `hi` in column `c` and `lo` elsewhere.
fn row(c: usize, hi: f64, lo: f64) -> [f64; COUNT] {
    let mut r = [lo; COUNT];
    r[c] = hi;
    r
}

#[test]
fn bmca_mean_precision_accuracy_and_ties_by_hand() {
    // Class 0 (MEL): 4 rows: 2 right, 1 predicted NV, 1 tied MEL/NV.
    // Class 1 (NV): 2 rows: both right.   Class 2..6: 1 row each, all right except VASC -> NV.
    let mut tied = [0.1; COUNT];
    tied[0] = 0.4;
    tied[1] = 0.4;
    let labels = [0, 0, 0, 0, 1, 1, 2, 3, 4, 5, 6];
    let probs = [
        row(0, 0.9, 0.01),
        row(0, 0.6, 0.2),
        row(1, 0.7, 0.05),
        tied,
        row(1, 0.8, 0.0),
        row(1, 0.55, 0.3),
        row(2, 0.9, 0.0),
        row(3, 0.9, 0.0),
        row(4, 0.9, 0.0),
        row(5, 0.9, 0.0),
        row(1, 0.9, 0.0),
    ];
    let r = evaluate(&labels, &probs, None).unwrap();
    // recall: MEL 2/4, NV 2/2, BCC..DF 1, VASC 0.
    assert_eq!(r.bmca, (0.5 + 1.0 + 1.0 + 1.0 + 1.0 + 1.0 + 0.0) / 7.0);
    // precision over predicted classes: MEL 2/2, NV 2/4 (two wrong NV predictions), BCC..DF 1;
    // VASC never predicted: left out (6 classes), and the tied row predicts nothing.
    assert_eq!(r.classes_predicted(), 6);
    assert_eq!(r.mean_precision, (1.0 + 0.5 + 1.0 + 1.0 + 1.0 + 1.0) / 6.0);
    assert_eq!(r.accuracy, 8.0 / 11.0);
    assert_eq!(r.undecided, [1, 0, 0, 0, 0, 0, 0]);
    assert_eq!(r.confusion[0], [2, 1, 0, 0, 0, 0, 0]);
    assert_eq!(r.confusion[6], [0, 1, 0, 0, 0, 0, 0]);
    assert_eq!(r.confusion.iter().flatten().sum::<usize>(), 10);
    assert_eq!(r.n, 11);
    // Thresholded MEL (p > 0.5 on the MEL column only): rows 0,1 positive -> TP 2, FN 2,
    // FP 0, TN 7. The tied row (0.4) is negative.
    let mel = &r.per_class[0];
    assert_eq!(mel.sensitivity, 0.5);
    assert_eq!(mel.specificity, 1.0);
    assert_eq!(mel.ppv, 1.0);
    assert_eq!(mel.npv, 7.0 / 9.0);
    assert_eq!(mel.f1, 4.0 / 6.0);
    assert_eq!(mel.accuracy, 9.0 / 11.0);
    // NV: p > 0.5 on rows 2,4,5,10 -> TP 2 (rows 4,5), FP 2 (rows 2,10), FN 0, TN 7.
    let nv = &r.per_class[1];
    assert_eq!((nv.sensitivity, nv.ppv, nv.npv), (1.0, 0.5, 1.0));
    assert_eq!(nv.specificity, 7.0 / 9.0);
    // VASC: its column is never > 0.5: PPV undefined -> 1.0 (the scorer's rule), sensitivity 0.
    let vasc = &r.per_class[6];
    assert_eq!((vasc.ppv, vasc.sensitivity, vasc.f1), (1.0, 0.0, 0.0));
}

#[test]
fn threshold_is_strictly_above_one_half() {
    let labels = [0, 1];
    let probs = [row(0, 0.5, 0.1), row(1, 0.5000001, 0.1)];
    let r = evaluate(&labels, &probs, None).unwrap();
    assert_eq!(r.per_class[0].sensitivity, 0.0); // 0.5 is not positive
    assert_eq!(r.per_class[1].sensitivity, 1.0);
    assert_eq!(r.bmca, 1.0); // the argmax does not care
}

#[test]
fn undefined_ratios_count_as_one() {
    // MEL: no positives in truth and none predicted above 0.5: sensitivity, PPV and F1 are 0/0.
    let labels = [1, 1, 2];
    let probs = [row(1, 0.9, 0.0), row(1, 0.9, 0.0), row(2, 0.9, 0.0)];
    let r = evaluate(&labels, &probs, None).unwrap();
    let m = &r.per_class[0];
    assert_eq!(
        (m.sensitivity, m.ppv, m.f1, m.specificity),
        (1.0, 1.0, 1.0, 1.0)
    );
    // BCC: TP 1, TN 2, FN 0.
    assert_eq!(r.per_class[2].npv, 1.0);
}

#[test]
fn auc_and_ap_by_hand_with_tied_scores() {
    // MEL column scores [0.9, 0.9, 0.3, 0.1], MEL truth [1, 0, 1, 0].
    // AUC = (tie 0.5 + 1 + 0 + 1) / 4 = 0.625.
    // AP: thresholds 0.9 (P 1/2, R 1/2), 0.3 (P 2/3, R 1), 0.1 (P 1/2, R 1):
    //     0.5 * 1/2 + 0.5 * 2/3.
    let labels = [0, 1, 0, 1];
    let s = [0.9, 0.9, 0.3, 0.1];
    let probs: Vec<[f64; COUNT]> = s
        .iter()
        .map(|&v| {
            let mut r = [0.0; COUNT];
            r[0] = v;
            r[1] = 1.0 - v;
            r
        })
        .collect();
    let r = evaluate(&labels, &probs, None).unwrap();
    assert!((r.per_class[0].auc - 0.625).abs() < 1e-15);
    assert!((r.per_class[0].ap - (0.25 + 1.0 / 3.0)).abs() < 1e-15);
    // Partial AUC above 80% sensitivity: the ROC curve is (0, 0), (0.5, 0.5), (0.5, 1), (1, 1);
    // the part with tpr >= 0.8 runs from (0.5, 0.8) up to (0.5, 1) (no width), then to (1, 1):
    // area 0.5 * 1.
    assert!((r.per_class[0].auc_sens_80 - 0.5).abs() < 1e-15);
    // Weights 0 remove rows: dropping the negative tied at 0.9 gives a perfect ranking.
    let r = evaluate(&labels, &probs, Some(&[1.0, 0.0, 1.0, 1.0])).unwrap();
    assert_eq!((r.per_class[0].auc, r.per_class[0].ap), (1.0, 1.0));
    assert_eq!(r.n, 3);
}

#[test]
fn class_without_positives_is_nan_not_an_error() {
    // DF (5) never occurs in truth: the official scorer crashes on this; we give NaN AUC.
    let labels = [0, 1, 2, 3, 4, 6];
    let probs: Vec<[f64; COUNT]> = labels.iter().map(|&l| row(l, 0.8, 0.03)).collect();
    let r = evaluate(&labels, &probs, None).unwrap();
    assert_eq!(r.bmca, 1.0); // mean over the 6 classes present
    assert!(r.per_class[5].auc.is_nan());
    assert!(r.per_class[5].auc_sens_80.is_nan());
    assert_eq!(r.per_class[5].ap, 0.0); // sklearn's value
    assert_eq!(r.per_class[5].sensitivity, 1.0);
    assert_eq!(r.macro_average.auc, 1.0); // NaN skipped
    let j = r.to_json();
    assert!(j["per_class"]["DF"]["auc"].is_null());
    assert_eq!(j["bmca"].as_f64(), Some(1.0));
}

#[test]
fn argmax_ties_are_exact() {
    assert_eq!(argmax_or_tie(&[0.1, 0.3, 0.3, 0.0, 0.0, 0.0, 0.0]), None);
    assert_eq!(
        argmax_or_tie(&[0.1, 0.3, 0.30000000000000004, 0.0, 0.0, 0.0, 0.0]),
        Some(2)
    );
    assert_eq!(argmax_or_tie(&[0.0; COUNT]), None);
    // Ties below the maximum do not matter.
    assert_eq!(argmax_or_tie(&[0.1, 0.1, 0.5, 0.0, 0.0, 0.0, 0.0]), Some(2));
}

#[test]
fn bad_evaluate_inputs_are_errors() {
    assert!(evaluate(&[0], &[], None).is_err());
    assert!(evaluate(&[7], &[[0.1; COUNT]], None).is_err());
    assert!(evaluate(&[0], &[[f64::NAN; COUNT]], None).is_err());
    assert!(evaluate(&[0], &[[0.1; COUNT]], Some(&[0.0])).is_err());
    assert!(evaluate(&[0], &[[0.1; COUNT]], Some(&[-1.0])).is_err());
    assert!(evaluate(&[], &[], None).is_err());
}

// ---------------------------------------------------------------------------------------------
// Prediction CSV: writing, round trip
// ---------------------------------------------------------------------------------------------

#[test]
fn probabilities_are_written_as_decimals() {
    assert_eq!(format_probability(0.0), "0.0");
    assert_eq!(format_probability(-0.0), "0.0");
    assert_eq!(format_probability(1.0), "1.0");
    assert_eq!(format_probability(0.5), "0.5");
    assert_eq!(format_probability(1e-7), "0.0000001");
    assert_eq!(format_probability(0.1), "0.1");
    for v in [0.1f32, 1e-30, 0.99999994, 0.33333334, 1.4e-45] {
        let s = format_probability(v);
        assert!(s.contains('.') && !s.contains('e'), "{s}");
        assert_eq!(s.parse::<f32>().unwrap(), v, "{s}");
    }
}

/// A small deterministic generator (no dependency on the crate's RNG).
struct Lcg(u64);
impl Lcg {
    fn next(&mut self) -> f32 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((self.0 >> 40) as f32) / (1u64 << 24) as f32
    }
}

#[test]
fn written_csv_scores_like_the_values_in_memory() {
    let dir = tempfile::tempdir().unwrap();
    let mut g = Lcg(42);
    let n = 300;
    let mut labels = Vec::new();
    let mut probs = Vec::new();
    let mut truth = format!("{HEADER}\n");
    let mut ids = Vec::new();
    for i in 0..n {
        let l = (i * 5 + i / 7) % 7;
        let mut p = [0f32; COUNT];
        for v in &mut p {
            *v = g.next().powi(3);
        }
        p[l] += g.next() * 0.5;
        let s: f32 = p.iter().sum();
        for v in &mut p {
            *v /= s;
        }
        match i % 10 {
            0 => p = [0.0, 0.5, 0.5, 0.0, 0.0, 0.0, 0.0], // tie, exact values
            1 => p = [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0],
            2 => p[3] = 1e-12,
            3 => p[0] = p[1], // tie or duplicate score
            _ => {}
        }
        let id = format!("ISIC_{:07}", 9_999_999 - i);
        let onehot: Vec<&str> = (0..7).map(|c| if c == l { "1.0" } else { "0.0" }).collect();
        truth += &format!("{id},{}\n", onehot.join(","));
        ids.push(id);
        labels.push(l);
        probs.push(p);
    }
    let (tp, pp) = (dir.path().join("t.csv"), dir.path().join("sub/p.csv"));
    std::fs::write(&tp, truth).unwrap();
    write_predictions_csv(&pp, &ids, &probs).unwrap();
    let text = std::fs::read_to_string(&pp).unwrap();
    assert!(text.starts_with(&format!("{HEADER}\n")));
    for line in text.lines().skip(1) {
        for f in line.split(',').skip(1) {
            assert!(
                f.contains('.') && !f.contains('e'),
                "bare or exponent value {f}"
            );
        }
    }
    let from_file = score_files(&tp, &pp).unwrap();
    let mut in_memory = evaluate_probs(&labels, &probs).unwrap();
    assert!(in_memory.undecided.iter().sum::<usize>() >= 30);
    // Rows are sorted by id in the file path, reversed here: only last bits could differ, and
    // with unit weights every sum is exact, so the reports are identical.
    in_memory.validation_bmca = from_file.validation_bmca;
    assert_eq!(bits(&from_file), bits(&in_memory));
    assert_eq!(from_file.confusion, in_memory.confusion);
}

fn bits(r: &Report) -> Vec<u64> {
    let mut v = vec![
        r.bmca.to_bits(),
        r.mean_precision.to_bits(),
        r.accuracy.to_bits(),
    ];
    for m in r.per_class.iter().chain([&r.macro_average]) {
        v.extend(m.fields().iter().map(|(_, x)| x.to_bits()));
    }
    v
}

#[test]
fn write_predictions_rejects_bad_input() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("p.csv");
    let ok = [[0.1f32; COUNT]];
    assert!(write_predictions_csv(&p, &["a", "b"], &ok).is_err());
    assert!(write_predictions_csv(&p, &["a,b"], &ok).is_err());
    assert!(write_predictions_csv(&p, &[""], &ok).is_err());
    assert!(write_predictions_csv(&p, &["a", "a"], &[[0.1; COUNT], [0.1; COUNT]]).is_err());
    let mut bad = [0.1f32; COUNT];
    bad[3] = 1.5;
    let e = write_predictions_csv(&p, &["a"], &[bad])
        .unwrap_err()
        .to_string();
    assert!(e.contains("AKIEC") && e.contains("1.5"), "{e}");
    bad[3] = f32::NAN;
    assert!(write_predictions_csv(&p, &["a"], &[bad]).is_err());
    assert!(!p.exists());
}

// ---------------------------------------------------------------------------------------------
// The command
// ---------------------------------------------------------------------------------------------

#[test]
fn eval_command_writes_json_with_the_documented_keys() {
    let dir = tempfile::tempdir().unwrap();
    let case = fixture_dir().join("basic");
    let out = dir.path().join("report.json");
    evaluate_files(&EvalConfig {
        truth: case.join("truth.csv"),
        pred: case.join("pred.csv"),
        out: Some(out.clone()),
    })
    .unwrap();
    let j: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    for k in [
        "bmca",
        "mean_precision",
        "accuracy",
        "per_class",
        "confusion",
    ] {
        assert!(j.get(k).is_some(), "missing key {k}");
    }
    for c in classes::CODES {
        for k in [
            "sensitivity",
            "specificity",
            "ppv",
            "npv",
            "f1",
            "auc",
            "ap",
        ] {
            assert!(j["per_class"][c][k].is_f64(), "{c}.{k}");
        }
    }
    let conf = j["confusion"].as_array().unwrap();
    assert_eq!(conf.len(), 7);
    assert!(conf.iter().all(|r| r.as_array().unwrap().len() == 7));
    let r = score_files(&case.join("truth.csv"), &case.join("pred.csv")).unwrap();
    // The laid-out text holds the same values as the Value form (up to serde_json's reading,
    // which without its `float_roundtrip` feature may be 1 ulp off; the digits written are
    // the shortest that round-trip).
    assert_close(&j, &r.to_json(), "");
    assert!(r.to_table().contains("mean_precision"));
}

fn assert_close(a: &serde_json::Value, b: &serde_json::Value, at: &str) {
    use serde_json::Value::*;
    match (a, b) {
        (Number(x), Number(y)) => {
            let (x, y) = (x.as_f64().unwrap(), y.as_f64().unwrap());
            assert!((x - y).abs() <= 1e-15 * y.abs(), "{at}: {x} vs {y}");
        }
        (Array(x), Array(y)) => {
            assert_eq!(x.len(), y.len(), "{at}");
            for (i, (x, y)) in x.iter().zip(y).enumerate() {
                assert_close(x, y, &format!("{at}[{i}]"));
            }
        }
        (Object(x), Object(y)) => {
            assert_eq!(
                x.keys().collect::<Vec<_>>(),
                y.keys().collect::<Vec<_>>(),
                "{at}"
            );
            for (k, v) in x {
                assert_close(v, &y[k], &format!("{at}.{k}"));
            }
        }
        _ => assert_eq!(a, b, "{at}"),
    }
}
