//! ISIC 2019 Task 1 metrics: agreement with the official scorer `isic-challenge-scoring` 5.6.0
//! on committed fixtures (tests/fixtures/scorer/isic2019_*, written by
//! tools/make_scorer_fixture_2019.py): the 9 columns of the 2019 test ground truth with UNK
//! images and weights, against predictions as `infer` writes them (UNK 0.0, columns in another
//! order), and the 8 trained classes of train's val_truth.csv.
//!
//! Tolerance against the scorer: none, as in tests/metrics.rs: every value must have the same
//! bits as the scorer's (or both be NaN).

use skinengine::classes::ClassList;
use skinengine::metrics::{ClassMetrics, read_ground_truth, score_files};
use std::path::{Path, PathBuf};

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

/// Compares every value of the fixture bitwise; returns the number compared.
fn check_case(case: &str, want_classes: &[&str]) -> usize {
    let dir = fixture_dir().join(case);
    let expected: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("expected.json")).unwrap()).unwrap();
    let r = score_files(&dir.join("truth.csv"), &dir.join("pred.csv"))
        .unwrap_or_else(|e| panic!("{case}: {e}"));
    let extra = &expected["extra"];
    // The classes in the scorer's order (the truth file's columns).
    let scorer_classes: Vec<String> = serde_json::from_value(extra["classes"].clone()).unwrap();
    assert_eq!(r.classes, scorer_classes, "{case}");
    assert_eq!(r.classes, want_classes, "{case}");
    let mut compared = 0;
    let mut cmp = |what: String, ours: f64, v: &serde_json::Value| {
        let scorer = parse_f64(v);
        assert!(
            (ours.is_nan() && scorer.is_nan()) || ours.to_bits() == scorer.to_bits(),
            "{case}: {what}: ours {ours:?} vs scorer {scorer:?}"
        );
        compared += 1;
    };
    let score = &expected["score"];
    cmp("overall".into(), r.bmca, &score["overall"]);
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
    assert_eq!(r.confusion, confusion, "{case}: confusion");
    assert_eq!(r.undecided, undecided, "{case}: undecided");
    assert_eq!(
        r.classes_predicted() as u64,
        extra["classes_predicted"].as_u64().unwrap(),
        "{case}"
    );
    compared
}

#[test]
fn isic2019_test_ground_truth_with_unk_matches_the_official_scorer() {
    let list = ClassList::isic2019();
    let n = check_case("isic2019_test", &list.prediction_columns());
    // 2 scores + 9 metrics x (9 classes + macro) + accuracy + mean precision.
    assert_eq!(n, 2 + 9 * 10 + 2);
    // The validation weights differ from the score weights: two different numbers.
    let dir = fixture_dir().join("isic2019_test");
    let r = score_files(&dir.join("truth.csv"), &dir.join("pred.csv")).unwrap();
    assert_ne!(r.bmca.to_bits(), r.validation_bmca.unwrap().to_bits());
    // UNK is never predicted (always 0.0), so its sensitivity at 0.5 is 0 and it is never the
    // argmax: a model of the 8 trained classes loses exactly the UNK images.
    assert_eq!(r.per_class[8].sensitivity, 0.0);
    assert!(r.confusion.iter().all(|row| row[8] == 0));
}

#[test]
fn isic2019_trained_classes_match_the_official_scorer() {
    let list = ClassList::isic2019();
    let n = check_case("isic2019_trained", &list.codes());
    assert_eq!(n, 2 + 9 * 9 + 2);
    let gt = read_ground_truth(&fixture_dir().join("isic2019_trained/truth.csv")).unwrap();
    assert_eq!(gt.classes, list.codes());
}
