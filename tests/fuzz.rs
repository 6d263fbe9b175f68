//! A short run of every fuzz target (the long runs: `cargo run --release --example fuzz`, see
//! examples/fuzz/harness/mod.rs), under the same checks: no panic, no error that fails to
//! name its file, no execution past the time limit, no allocation past the target's cap (the
//! counting allocator below aborts the test binary). Then the inputs the long runs found,
//! each as a regression test of its fix.

#[path = "../examples/fuzz/harness/mod.rs"]
mod harness;

use harness::{Config, TARGETS, target};

#[global_allocator]
static ALLOC: harness::alloc::Counting = harness::alloc::Counting;

/// Executions per target: the seeds and a couple of thousand mutants (~1 s a target in the
/// test profile; the heavy targets also build a ResNet18 once).
const EXECS: u64 = 2_000;

#[test]
fn every_target_survives_a_short_run() {
    let mut problems = Vec::new();
    for name in TARGETS {
        let mut t = target(name).unwrap();
        let cfg = Config {
            execs: EXECS,
            seed: 14,
            ..Config::default()
        };
        let rep = harness::run(t.as_mut(), &cfg);
        let mut out = Vec::new();
        rep.print(&mut out, 3).unwrap();
        eprint!("{}", String::from_utf8_lossy(&out));
        assert_eq!(rep.execs, EXECS);
        if !rep.findings.is_empty() {
            problems.push(String::from_utf8_lossy(&out).into_owned());
        }
        // The mutants must reach success and at least two kinds of error (skeleton targets:
        // three kinds), or the target fuzzes nothing.
        assert!(
            rep.outcomes.len() >= 3,
            "{name}: only {} distinct outcomes",
            rep.outcomes.len()
        );
    }
    assert!(problems.is_empty(), "findings:\n{}", problems.join("\n"));
}

/// `bytes` (a safetensors file) with metadata `key` set to `value`.
fn with_metadata(bytes: &[u8], key: &str, value: &str) -> Vec<u8> {
    let (mut h, data) = harness::tensor_targets::split_file(bytes).unwrap();
    h.get_mut("__metadata__")
        .and_then(|m| m.as_object_mut())
        .unwrap()
        .insert(key.into(), value.into());
    harness::tensor_targets::join_file(&h, data, 0)
}

/// Found by the head-model target: the head's widths come from metadata and `load_model`
/// built the head (allocating [width, features] weights) before comparing them with the file's
/// tensors; "head": "[1000000000]" asked for 2 TB and aborted. Widths are now checked against
/// the tensors first (a zero width too, which let a later layer claim any size). Under a 64 MB
/// cap, the unfixed code aborts this test binary.
#[test]
fn head_widths_are_checked_before_the_head_is_built() {
    use skinengine::model::arch::Arch;
    use skinengine::reference::ReferenceBackend;
    use skinengine::train::model_file::load_model;
    let dir = tempfile::tempdir().unwrap();
    let good = harness::model_targets::head_file(dir.path(), Arch::ResNet18, &[8], false, false);
    let p = dir.path().join("model.safetensors");
    for (head, want) in [
        (
            "[1000000000]",
            "hidden.0.weight has shape [8, 512], the head metadata [1000000000] needs [1000000000, 512]",
        ),
        ("[0,1000000000]", "a layer of width 0"),
        ("[8,1000000000]", "missing tensor hidden.1.weight"),
    ] {
        std::fs::write(&p, with_metadata(&good, "head", head)).unwrap();
        harness::alloc::begin(64 << 20);
        let res = load_model(&ReferenceBackend, &p);
        harness::alloc::end();
        let e = res.err().expect("refused").to_string();
        assert!(
            e.contains("model.safetensors") && e.contains(want),
            "{head}: {e}"
        );
    }
    // The file as written still loads.
    std::fs::write(&p, &good).unwrap();
    assert!(load_model(&ReferenceBackend, &p).is_ok());
}

/// Found by the merge target: `merge` listed every missing shard of the record's `of`, so a
/// record claiming 4294967296 shards built billions of strings (the 201 MB request that tripped
/// the cap) and ran for minutes. The record's K/N is now checked like `--shard`'s, and at most
/// 10 missing shards are listed with a count of the rest.
#[test]
fn a_shard_record_claiming_billions_of_shards_is_refused_quickly() {
    use skinengine::pipeline::shard::merge;
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("1.csv");
    let header = "image,MEL,NV,BCC,AKIEC,BKL,DF,VASC\n";
    std::fs::write(&csv, header).unwrap();
    let record = |json: &str| {
        std::fs::write(dir.path().join("1.csv.shard.json"), json).unwrap();
        harness::alloc::begin(64 << 20);
        let t0 = std::time::Instant::now();
        let res = merge(&dir.path().join("out.csv"), std::slice::from_ref(&csv));
        harness::alloc::end();
        assert!(t0.elapsed().as_secs() < 5, "{json}: {:?}", t0.elapsed());
        res.expect_err("refused").to_string()
    };
    let e = record(r#"{"shard":1,"of":4294967296,"rows":0,"model":"m"}"#);
    assert!(
        e.contains("missing 2/4294967296, 3/4294967296")
            && e.contains("11/4294967296 and 4294967285 more"),
        "{e}"
    );
    // The input as found: shard 4294 of 4294967296 (then K > N, and K = 0).
    let e = record(r#"{"model":"image","of":4294967296,"rows":0,"shard":4294}"#);
    assert!(e.contains("missing 1/4294967296"), "{e}");
    for bad in [
        r#"{"shard":3,"of":2,"rows":0,"model":"m"}"#,
        r#"{"shard":0,"of":2,"rows":0,"model":"m"}"#,
    ] {
        let e = record(bad);
        assert!(
            e.contains("1.csv.shard.json") && e.contains("is not K/N"),
            "{e}"
        );
    }
}
