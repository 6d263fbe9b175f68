//! `infer --shard K/N` + `merge`: the shard CSVs of a model over a folder, merged, are byte for
//! byte the CSV one `infer` over the whole folder writes; an incomplete, repeated or mixed set of
//! shards, or a CSV edited after the fact, is refused with an error naming the problem and
//! nothing is written.

use skinengine::data::synth::{SynthConfig, write_synth};
use std::path::Path;
use std::process::Command;

fn cli(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_skinengine"))
        .args(args)
        .output()
        .unwrap()
}

fn ok(args: &[&str]) {
    let out = cli(args);
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn fails(args: &[&str], want: &str) {
    let out = cli(args);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{args:?} succeeded");
    assert!(err.contains(want), "{args:?}: {err}");
}

#[test]
fn merged_shards_equal_one_run_byte_for_byte_and_bad_sets_are_refused() {
    let d = tempfile::tempdir().unwrap();
    let p = |s: &str| d.path().join(s).display().to_string();
    write_synth(
        Path::new(&p("data")),
        &SynthConfig {
            n: 26,
            width: 64,
            height: 48,
            seed: 9,
            ..SynthConfig::default()
        },
    )
    .unwrap();
    let common = ["--device", "cpu", "--threads", "2"];
    let (data, run) = (p("data"), p("run"));
    let mut train = vec!["train", "--data", &data];
    train.extend(["--out", &run, "--backbone", "resnet18", "--epochs", "1"]);
    train.extend(common);
    ok(&train);
    let model = p("run/model.safetensors");
    let images = data.clone();
    let infer = |out: &str, shard: Option<&str>| {
        let mut a = vec![
            "infer", "--model", &model, "--images", &images, "--out", out,
        ];
        a.extend(common);
        if let Some(s) = shard {
            a.extend(["--shard", s]);
        }
        ok(&a);
    };
    let all = p("all.csv");
    infer(&all, None);
    let shards: Vec<String> = (1..=3).map(|k| p(&format!("s{k}.csv"))).collect();
    for (k, s) in shards.iter().enumerate() {
        infer(s, Some(&format!("{}/3", k + 1)));
        assert!(Path::new(&format!("{s}.shard.json")).exists());
    }
    let merged = p("merged.csv");
    let mut m = vec!["merge", "--out", &merged];
    m.extend(shards.iter().map(String::as_str));
    ok(&m);
    assert!(
        std::fs::read(&merged).unwrap() == std::fs::read(&all).unwrap(),
        "merged shards differ from one run"
    );
    let rows = |f: &str| std::fs::read_to_string(f).unwrap().lines().count() - 1;
    assert_eq!(rows(&all), 26);
    assert!(shards.iter().all(|s| rows(s) < 26));

    // Refused, nothing written: a missing shard, a shard given twice, another partition, a CSV
    // without its record, a row moved to another shard's file.
    let bad = p("bad.csv");
    fails(
        &["merge", "--out", &bad, &shards[0], &shards[2]],
        "missing 2/3",
    );
    fails(
        &["merge", "--out", &bad, &shards[0], &shards[0], &shards[1]],
        "given twice",
    );
    let other = p("o1.csv");
    infer(&other, Some("1/2"));
    fails(
        &["merge", "--out", &bad, &shards[0], &other],
        "earlier file is of 3 shards",
    );
    std::fs::copy(&shards[1], p("plain.csv")).unwrap();
    fails(
        &[
            "merge",
            "--out",
            &bad,
            &shards[0],
            &p("plain.csv"),
            &shards[2],
        ],
        "infer --shard",
    );
    let s1 = std::fs::read_to_string(&shards[0]).unwrap();
    let s2 = std::fs::read_to_string(&shards[1]).unwrap();
    let moved = s2.lines().nth(1).unwrap();
    std::fs::write(&shards[0], format!("{s1}{moved}\n")).unwrap();
    fails(
        &["merge", "--out", &bad, &shards[0], &shards[1], &shards[2]],
        "belongs to shard 2/3",
    );
    assert!(!Path::new(&bad).exists());
    // Bad --shard values are refused by the argument parser.
    let mut a = vec![
        "infer", "--model", &model, "--images", &images, "--out", &bad,
    ];
    a.extend(["--shard", "4/3"]);
    fails(&a, "1 <= K <= N");
}
