//! The fuzz runner: every input parser under a mutation fuzzer on stable Rust (see
//! `harness/mod.rs` for the design).
//!
//! ```sh
//! cargo run --release --example fuzz -- --target csv --execs 1000000 [--seed S]
//! cargo run --release --example fuzz -- --list
//! ```
//!
//! `--target` takes a target name, a comma-separated list, `all`, or a group: `csv` (ham,
//! isic, split, truth, eval, merge), `tensors` (safetensors, head-model, net-model,
//! checkpoint, finetune-checkpoint), `image`, `pth`. Prints per target: executions, time,
//! distinct outcomes (the most frequent with `--show N`), and findings; finding inputs are
//! saved under fuzz-findings/. Exits 1 when there is a finding. A watchdog saves the input and
//! exits 2 when one execution runs past `--hang-secs` (default 60); an allocation past a
//! target's cap saves the input and aborts (harness/alloc.rs).

mod harness;

use harness::{Config, PLANNED, TARGETS, alloc, target};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

#[global_allocator]
static ALLOC: alloc::Counting = alloc::Counting;

fn usage() -> ! {
    eprintln!(
        "usage: fuzz --target NAME[,NAME..]|all|csv|tensors|image|pth [--execs N] [--seed S] \
         [--time-limit-ms MS] [--hang-secs S] [--show N] [--list]"
    );
    std::process::exit(2)
}

fn group(name: &str) -> Vec<&'static str> {
    let csv = ["ham", "isic", "split", "truth", "eval", "merge"];
    let tensors = [
        "safetensors",
        "head-model",
        "net-model",
        "checkpoint",
        "finetune-checkpoint",
    ];
    match name {
        "all" => TARGETS.to_vec(),
        "csv" => csv.to_vec(),
        "tensors" => tensors.to_vec(),
        _ => match TARGETS.iter().find(|t| **t == name) {
            Some(t) => vec![*t],
            None if PLANNED.contains(&name) => {
                eprintln!("target {name}: planned, not written yet (see harness::PLANNED)");
                std::process::exit(2)
            }
            None => {
                eprintln!("unknown target {name}; targets: {}", TARGETS.join(", "));
                std::process::exit(2)
            }
        },
    }
}

/// Milliseconds since the runner started at which the current execution began (0: none).
static EXEC_START: AtomicU64 = AtomicU64::new(0);

fn main() {
    let mut args = std::env::args().skip(1);
    let mut cfg = Config {
        progress: 100_000,
        ..Config::default()
    };
    let (mut names, mut hang, mut show) = (Vec::new(), 60u64, 8);
    while let Some(a) = args.next() {
        let mut val = || args.next().unwrap_or_else(|| usage());
        match a.as_str() {
            "--target" => {
                for n in val().split(',') {
                    names.extend(group(n));
                }
            }
            "--execs" => cfg.execs = val().parse().unwrap_or_else(|_| usage()),
            "--seed" => cfg.seed = val().parse().unwrap_or_else(|_| usage()),
            "--time-limit-ms" => {
                cfg.time_limit = Some(Duration::from_millis(
                    val().parse().unwrap_or_else(|_| usage()),
                ))
            }
            "--hang-secs" => hang = val().parse().unwrap_or_else(|_| usage()),
            "--show" => show = val().parse().unwrap_or_else(|_| usage()),
            "--list" => {
                println!("{}", TARGETS.join("\n"));
                println!("(planned: {})", PLANNED.join(", "));
                return;
            }
            _ => usage(),
        }
    }
    if names.is_empty() {
        usage();
    }
    // The watchdog: one execution running past `hang` seconds is a hang; its input is saved.
    let t0 = Instant::now();
    std::thread::spawn(move || {
        loop {
            std::thread::sleep(Duration::from_millis(200));
            let s = EXEC_START.load(Relaxed);
            let now = t0.elapsed().as_millis() as u64;
            if s != 0 && now.saturating_sub(s) > hang * 1000 {
                let cur = harness::CURRENT.lock().unwrap_or_else(|e| e.into_inner());
                let _ = std::fs::create_dir_all(alloc::FINDINGS);
                let path = format!("{}/{}-hang.bin", alloc::FINDINGS, cur.0);
                let _ = std::fs::write(&path, &cur.1);
                eprintln!(
                    "FINDING [hang] one execution of {} ran past {hang} s; input: {path}",
                    cur.0
                );
                std::process::exit(2);
            }
        }
    });
    harness::set_exec_hook(Box::new(move |running| {
        let v = if running {
            (t0.elapsed().as_millis() as u64).max(1)
        } else {
            0
        };
        EXEC_START.store(v, Relaxed);
    }));
    let mut findings = 0;
    for name in names {
        let mut t = target(name).expect("listed target");
        let rep = harness::run(t.as_mut(), &cfg);
        rep.print(&mut std::io::stdout(), show).unwrap();
        for (i, f) in rep.findings.iter().enumerate() {
            let _ = std::fs::create_dir_all(alloc::FINDINGS);
            let kind = f.kind.replace(' ', "-");
            let path = format!("{}/{name}-{kind}-{i}.bin", alloc::FINDINGS);
            let _ = std::fs::write(&path, &f.input);
            println!("  saved {path}");
        }
        findings += rep.findings.len();
    }
    if findings > 0 {
        std::process::exit(1);
    }
}
