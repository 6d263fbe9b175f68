//! ISIC 2018 Task 3 metrics on bad input: every error of reading ground-truth and prediction
//! CSVs names the file and the line (and the image and column where there is one), and the
//! files the scorer accepts are accepted. (Agreement with the official scorer is in
//! tests/metrics.rs.)

use skinengine::metrics::{ZERO_WEIGHT_IMAGE, read_ground_truth, read_predictions, score_files};

const HEADER: &str = "image,MEL,NV,BCC,AKIEC,BKL,DF,VASC";

// ---------------------------------------------------------------------------------------------
// Bad input: each error names the file and the line
// ---------------------------------------------------------------------------------------------

fn good_truth() -> String {
    let mut s = format!("{HEADER}\n");
    for (i, l) in [0, 1, 2, 3, 4, 5, 6].iter().enumerate() {
        let v: Vec<&str> = (0..7)
            .map(|c| if c == *l { "1.0" } else { "0.0" })
            .collect();
        s += &format!("ISIC_{i:07},{}\n", v.join(","));
    }
    s
}

fn good_pred() -> String {
    let mut s = format!("{HEADER}\n");
    for i in 0..7 {
        let v: Vec<String> = (0..7)
            .map(|c| if c == i { "0.7".into() } else { "0.05".into() })
            .collect();
        s += &format!("ISIC_{i:07},{}\n", v.join(","));
    }
    s
}

/// Scores `truth`/`pred` texts; returns the error message and the two paths.
fn err(truth: &str, pred: &str) -> (String, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let (t, p) = (dir.path().join("truth.csv"), dir.path().join("pred.csv"));
    std::fs::write(&t, truth).unwrap();
    std::fs::write(&p, pred).unwrap();
    let e = score_files(&t, &p)
        .map(|_| ())
        .expect_err("should fail")
        .to_string();
    (e, t.display().to_string(), p.display().to_string())
}

fn pred_err(pred: &str, needles: &[&str]) {
    let (e, _, p) = err(&good_truth(), pred);
    assert!(e.contains(&p), "error does not name {p}: {e}");
    for n in needles {
        assert!(e.contains(n), "error lacks {n:?}: {e}");
    }
}

fn truth_err(truth: &str, needles: &[&str]) {
    let (e, t, _) = err(truth, &good_pred());
    assert!(e.contains(&t), "error does not name {t}: {e}");
    for n in needles {
        assert!(e.contains(n), "error lacks {n:?}: {e}");
    }
}

#[test]
fn good_files_score() {
    let dir = tempfile::tempdir().unwrap();
    let (t, p) = (dir.path().join("t.csv"), dir.path().join("p.csv"));
    std::fs::write(&t, good_truth()).unwrap();
    // Columns in another order, `.JPG` suffix, CRLF line ends: all accepted, as by the scorer.
    let mut s = String::from("image,VASC,DF,BKL,AKIEC,BCC,NV,MEL\r\n");
    for i in 0..7 {
        let v: Vec<&str> = (0..7)
            .map(|c| if 6 - c == i { "0.7" } else { "0.05" })
            .collect();
        s += &format!("ISIC_{i:07}.JPG,{}\r\n", v.join(","));
    }
    std::fs::write(&p, s).unwrap();
    let r = score_files(&t, &p).unwrap();
    assert_eq!((r.bmca, r.accuracy, r.mean_precision), (1.0, 1.0, 1.0));
    assert_eq!(read_predictions(&p).unwrap().ids[0], "ISIC_0000000");
}

#[test]
fn prediction_errors_name_file_and_line() {
    let g = good_pred();
    let lines: Vec<&str> = g.lines().collect();
    let with = |i: usize, new: &str| {
        let mut l: Vec<String> = lines.iter().map(|s| s.to_string()).collect();
        l[i] = new.to_string();
        l.join("\n") + "\n"
    };
    // Missing image: named.
    let missing = lines[..7].join("\n") + "\n";
    pred_err(&missing, &["ISIC_0000006", "no prediction row"]);
    // Extra row: line and id.
    pred_err(
        &(g.clone() + "ISIC_0999999,0.1,0.1,0.1,0.1,0.1,0.1,0.1\n"),
        &["line 9", "ISIC_0999999", "not in the ground truth"],
    );
    // Duplicate row (also via the .jpg suffix).
    pred_err(
        &(g.clone() + "ISIC_0000003.jpg,0.1,0.1,0.1,0.1,0.1,0.1,0.1\n"),
        &["line 9", "duplicate image ISIC_0000003", "line 5"],
    );
    pred_err(
        &with(3, "ISIC_0000002,0.1,abc,0.1,0.1,0.1,0.1,0.1"),
        &["line 4", "ISIC_0000002", "NV", "'abc' is not a number"],
    );
    pred_err(
        &with(3, "ISIC_0000002,0.1,,0.1,0.1,0.1,0.1,0.1"),
        &["line 4", "NV", "missing value"],
    );
    pred_err(
        &with(3, "ISIC_0000002,0.1,NaN,0.1,0.1,0.1,0.1,0.1"),
        &["line 4", "NV", "missing value"],
    );
    pred_err(
        &with(5, "ISIC_0000004,0.1,0.1,0.1,0.1,1.01,0.1,0.1"),
        &["line 6", "BKL", "1.01", "outside [0, 1]"],
    );
    pred_err(
        &with(5, "ISIC_0000004,0.1,0.1,0.1,0.1,0.1,-0.0001,0.1"),
        &["line 6", "DF", "outside [0, 1]"],
    );
    pred_err(
        &with(5, "ISIC_0000004,0.1,0.1,0.1,0.1,0.1,inf,0.1"),
        &["line 6", "DF", "outside [0, 1]"],
    );
    pred_err(
        &with(2, "ISIC_0000001,0.1,0.1,0.1"),
        &["line 3", "4 fields", "header has 8"],
    );
    pred_err(
        &with(0, "image,MEL,NV,BCC,AKIEC,BKL,DF"),
        &["missing column(s) VASC"],
    );
    pred_err(
        &with(0, "image,MEL,NV,BCC,AKIEC,BKL,DF,VASCX"),
        &["missing column(s) VASC", "VASCX"],
    );
    pred_err(
        &(lines[0].to_string()
            + ",extra\n"
            + &lines[1..]
                .iter()
                .map(|l| format!("{l},0.1\n"))
                .collect::<String>()),
        &["unexpected column(s) extra"],
    );
    pred_err(
        &with(0, "id,MEL,NV,BCC,AKIEC,BKL,DF,VASC"),
        &["missing column 'image'"],
    );
    pred_err(
        &with(0, "image,MEL,NV,MEL,AKIEC,BKL,DF,VASC"),
        &["duplicate column 'MEL'"],
    );
    // A column of bare integers: pandas reads it as int64 and the scorer rejects it.
    let ints: String = std::iter::once(lines[0].to_string())
        .chain(lines[1..].iter().map(|l| {
            let mut f: Vec<&str> = l.split(',').collect();
            f[7] = if l.starts_with("ISIC_0000006") {
                "1"
            } else {
                "0"
            };
            f.join(",")
        }))
        .map(|l| l + "\n")
        .collect();
    pred_err(&ints, &["VASC", "only integers", "0.0, 1.0"]);
    pred_err(&format!("{HEADER}\n"), &["no data rows"]);
    pred_err("", &["empty CSV"]);
    pred_err(
        &with(1, "ISIC_0000000,0.7,0.05,0.05,0.05,0.05,0.05,\u{fffd}"),
        &["line 2", "VASC"],
    );
    // Not UTF-8, and a file that does not exist.
    let dir = tempfile::tempdir().unwrap();
    let (t, p) = (dir.path().join("t.csv"), dir.path().join("p.csv"));
    std::fs::write(&t, good_truth()).unwrap();
    std::fs::write(&p, b"image,MEL\n\xff\xfe,0.1\n").unwrap();
    let e = score_files(&t, &p).unwrap_err().to_string();
    assert!(
        e.contains(&p.display().to_string()) && e.contains("UTF-8"),
        "{e}"
    );
    let gone = dir.path().join("gone.csv");
    let e = score_files(&t, &gone).unwrap_err().to_string();
    assert!(e.contains("gone.csv"), "{e}");
}

#[test]
fn truth_errors_name_file_and_line() {
    let g = good_truth();
    let lines: Vec<&str> = g.lines().collect();
    let with = |i: usize, new: &str| {
        let mut l: Vec<String> = lines.iter().map(|s| s.to_string()).collect();
        l[i] = new.to_string();
        l.join("\n") + "\n"
    };
    truth_err(
        &with(2, "ISIC_0000001,0.0,0.5,0.0,0.0,0.0,0.0,0.0"),
        &["line 3", "ISIC_0000001", "NV", "must be 0 or 1"],
    );
    truth_err(
        &with(2, "ISIC_0000001,1.0,1.0,0.0,0.0,0.0,0.0,0.0"),
        &["line 3", "not one-hot", "MEL and NV"],
    );
    truth_err(
        &with(2, "ISIC_0000001,0.0,0.0,0.0,0.0,0.0,0.0,0.0"),
        &["line 3", "no class is 1"],
    );
    truth_err(
        &with(4, "ISIC_0000001,0.0,0.0,1.0,0.0,0.0,0.0,0.0"),
        &["line 5", "duplicate image ISIC_0000001", "line 3"],
    );
    truth_err(
        &with(4, "ISIC_0000003,0.0,0.0,x,0.0,0.0,0.0,0.0"),
        &["line 5", "BCC", "not a number"],
    );
    truth_err(
        &with(0, "image,MEL,NV,BCC,AKIEC,BKL,DF,VASC,comment"),
        &["unexpected column(s) comment"],
    );
    truth_err(
        &with(0, "image,MEL,NV,BCC,AKIEC,BKL,DF"),
        &["missing column(s) VASC"],
    );
    let weighted: String = std::iter::once(format!("{},score_weight", lines[0]))
        .chain(
            lines[1..]
                .iter()
                .enumerate()
                .map(|(i, l)| format!("{l},{}", if i == 3 { "-1" } else { "1.0" })),
        )
        .map(|l| l + "\n")
        .collect();
    truth_err(&weighted, &["line 5", "score_weight", ">= 0"]);
}

#[test]
fn truth_weights_and_the_zero_weight_image() {
    let dir = tempfile::tempdir().unwrap();
    let t = dir.path().join("t.csv");
    let mut s = format!("{HEADER},score_weight,validation_weight\n");
    s += "ISIC_0000001,1.0,0.0,0.0,0.0,0.0,0.0,0.0,2.0,0.0\n";
    s += &format!("{ZERO_WEIGHT_IMAGE},0.0,1.0,0.0,0.0,0.0,0.0,0.0,1.0,1.0\n");
    std::fs::write(&t, s).unwrap();
    let gt = read_ground_truth(&t).unwrap();
    assert_eq!(gt.score_weight, [2.0, 0.0]);
    assert_eq!(gt.validation_weight, [0.0, 0.0]);
    assert_eq!(gt.labels, [0, 1]);
    assert_eq!(gt.lines, [2, 3]);
    assert!(!gt.scorer_misaligns_weights());
}
