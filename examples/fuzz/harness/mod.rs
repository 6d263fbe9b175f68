//! A mutation fuzzer for every input parser, on stable Rust (no nightly, no cargo-fuzz /
//! cargo-bolero, no new dependencies). Why not bolero or libFuzzer: their coverage-guided
//! engines need nightly (sanitizer coverage) and cargo-bolero; on stable, bolero's `cargo test`
//! mode only feeds random `arbitrary` values, which almost never get past a safetensors length
//! prefix, a PNG CRC or a CSV header. Real coverage on stable comes from structure: every
//! target starts from valid files made in code by our own writers (official-format CSVs,
//! safetensors and model files written by `io::safetensors`, JPEG/PNG encoded by `image`, the
//! PyTorch fixtures) and mutates them with byte edits (flips, interesting values, insertions,
//! deletions, truncations, splices) stacked on structure-aware edits (CSV fields and rows,
//! safetensors header JSON: dtype, shape, offsets, metadata values; PNG chunks with their CRC
//! fixed so the decoder is reached; JPEG segment fields). In place of coverage feedback, inputs
//! that give a new *outcome* (a new error message class, or success) join the corpus, so
//! mutations build on inputs that already got further.
//!
//! Every execution is checked for: a panic (caught, with its message and location), an
//! execution slower than the per-input limit, an allocation past the target's cap (the
//! counting allocator in [`alloc`], installed by the runner and the test), and an error that
//! does not name the file (SPEC 7). The runner (`main.rs`) adds a watchdog for real hangs.

pub mod alloc;
pub mod csv_targets;
pub mod http_target;
pub mod image_target;
pub mod model_targets;
pub mod mutate;
pub mod pth_target;
pub mod tensor_targets;

use skinengine::Rng;
use std::collections::BTreeMap;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// One parser under test.
pub trait Target {
    fn name(&self) -> &'static str;
    /// Valid inputs to start from.
    fn seeds(&mut self) -> Vec<Vec<u8>>;
    /// A structure-aware mutation of `input` (None: only byte-level mutations apply).
    fn mutate(&self, _input: &[u8], _rng: &mut Rng) -> Option<Vec<u8>> {
        None
    }
    /// Runs the parser on `input` (written where the parser reads it). Err holds the error
    /// message the user would see.
    fn exec(&mut self, input: &[u8]) -> Result<(), String>;
    /// What every error message must contain: the folder the target's files live in (so the
    /// message names one of them).
    fn names(&self) -> &Path;
    /// Most bytes live at once during one execution; more is a finding (a size taken from the
    /// input and allocated without a check). Inputs are at most a few hundred KB.
    fn alloc_cap(&self) -> usize {
        256 << 20
    }
    /// An execution slower than this is a finding (a hang, or work out of proportion to the
    /// input).
    fn time_limit(&self) -> Duration {
        Duration::from_secs(1)
    }
    /// Percent of mutation steps that are structure-aware (the rest are byte-level).
    fn structured_percent(&self) -> usize {
        50
    }
    /// Whether the seeds themselves parse (false for skeleton files, which never load whole).
    fn seeds_load(&self) -> bool {
        true
    }
    /// Whether error `msg` names the file (SPEC 7); by default, whether it names the target's
    /// folder.
    fn names_file(&self, msg: &str) -> bool {
        msg.contains(&self.names().display().to_string())
    }
}

#[derive(Clone, Debug)]
pub struct Config {
    pub execs: u64,
    pub seed: u64,
    /// Overrides the target's per-execution time limit.
    pub time_limit: Option<Duration>,
    /// Mutated inputs are cut to this length.
    pub max_len: usize,
    /// Inputs kept for giving new outcomes, beyond the seeds.
    pub corpus_cap: usize,
    /// Print a line to stderr every this many executions (0: never).
    pub progress: u64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            execs: 10_000,
            seed: 0,
            time_limit: None,
            max_len: 1 << 20,
            corpus_cap: 512,
            progress: 0,
        }
    }
}

#[derive(Clone, Debug)]
pub struct Finding {
    /// "panic", "slow", "unnamed error" (an error that does not name the file).
    pub kind: &'static str,
    pub message: String,
    pub input: Vec<u8>,
}

#[derive(Debug, Default)]
pub struct Report {
    pub target: &'static str,
    pub execs: u64,
    pub ok: u64,
    pub elapsed: Duration,
    /// Outcome class -> count ("ok" or a normalised error message).
    pub outcomes: BTreeMap<String, u64>,
    /// One per distinct (kind, message class).
    pub findings: Vec<Finding>,
    pub corpus: usize,
    /// Largest per-execution peak of live bytes above the execution's start.
    pub peak_alloc: usize,
    pub slowest: Duration,
}

/// The input being executed, for the allocator's and the watchdog's reports.
pub static CURRENT: Mutex<(String, Vec<u8>)> = Mutex::new((String::new(), Vec::new()));

/// Called with true as an execution starts and false as it ends (the runner's watchdog).
type ExecHook = Box<dyn Fn(bool) + Send + Sync>;
static EXEC_HOOK: std::sync::OnceLock<ExecHook> = std::sync::OnceLock::new();

#[allow(dead_code)] // the runner's; the test has no watchdog
pub fn set_exec_hook(h: ExecHook) {
    let _ = EXEC_HOOK.set(h);
}

fn exec_hook(running: bool) {
    if let Some(h) = EXEC_HOOK.get() {
        h(running)
    }
}

thread_local! {
    static FUZZING: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
    static PANIC: std::cell::RefCell<Option<String>> = const { std::cell::RefCell::new(None) };
}

/// Panics while fuzzing are recorded (message and location), not printed; any other panic
/// (a test's own assertion) goes to the previous hook.
fn install_panic_hook() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let prev = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if FUZZING.with(|f| f.get()) {
                let msg = info
                    .payload()
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| info.payload().downcast_ref::<String>().cloned())
                    .unwrap_or_default();
                let at = info
                    .location()
                    .map(|l| format!("{}:{}", l.file(), l.line()))
                    .unwrap_or_default();
                PANIC.with(|p| *p.borrow_mut() = Some(format!("{msg} at {at}")));
            } else {
                prev(info)
            }
        }));
    });
}

/// An error message as an outcome class, its template: the first line (later lines list more
/// problems), without the target's folder, quoted and parenthesised parts (values from the
/// input; an unclosed one ends the message) and numbers, and then only lower-case words, so
/// "line 7: 'x' is not a number" and "line 9: 'y' is not a number" are one class. At most 8
/// words: values the messages do not quote (image ids, column names) come late in them.
pub fn outcome_class(msg: &str, dir: &Path) -> String {
    let first = msg.lines().next().unwrap_or("");
    let msg = first.replace(&dir.display().to_string(), "");
    // "/file.csv: problem": the file is the same for every input of a target (a target with
    // several files keeps the name).
    let msg = match msg.split_once(": ") {
        Some((file, rest)) if file.starts_with('/') && !file.contains(' ') => {
            format!("{}: {rest}", file.trim_start_matches('/'))
        }
        _ => msg,
    };
    let mut kept = String::new();
    let mut rest = msg.as_str();
    while let Some(c) = rest.chars().next() {
        let close = match c {
            '\'' | '"' | '`' => Some(c),
            '(' => Some(')'),
            '[' => Some(']'),
            _ => None,
        };
        rest = &rest[c.len_utf8()..];
        match close {
            Some(q) => match rest.find(q) {
                Some(p) => rest = &rest[p + q.len_utf8()..],
                None => break,
            },
            None => kept.push(c),
        }
    }
    let words: Vec<&str> = kept
        .split(|c: char| !c.is_ascii_alphanumeric() && c != '_' && c != '.')
        .filter(|w| {
            w.len() >= 2
                && w.bytes()
                    .all(|b| b.is_ascii_lowercase() || b == b'_' || b == b'.')
        })
        .take(8)
        .collect();
    words.join(" ")
}

/// Runs `cfg.execs` mutated inputs through `t`.
pub fn run(t: &mut dyn Target, cfg: &Config) -> Report {
    install_panic_hook();
    let mut rng = Rng::new(cfg.seed);
    let seeds = t.seeds();
    assert!(!seeds.is_empty(), "{}: no seeds", t.name());
    let n_seeds = seeds.len();
    let mut corpus = seeds;
    let mut rep = Report {
        target: t.name(),
        ..Report::default()
    };
    let mut found: BTreeMap<(&'static str, String), ()> = BTreeMap::new();
    let dir = t.names().to_path_buf();
    let limit = cfg.time_limit.unwrap_or_else(|| t.time_limit());
    let seeds_load = t.seeds_load();
    let start = Instant::now();
    for i in 0..cfg.execs {
        // The seeds themselves first (each must parse: a check on the seeds), then mutants.
        let input = if (i as usize) < n_seeds {
            corpus[i as usize].clone()
        } else {
            let base = &corpus[rng.below(corpus.len())];
            let mut cur = base.clone();
            for _ in 0..1 + rng.below(4) {
                let structured = if rng.below(100) < t.structured_percent() {
                    t.mutate(&cur, &mut rng)
                } else {
                    None
                };
                cur = match structured {
                    Some(m) => m,
                    None => mutate::bytes(&cur, &corpus, &mut rng),
                };
            }
            cur.truncate(cfg.max_len);
            cur
        };
        {
            let mut c = CURRENT.lock().unwrap_or_else(|e| e.into_inner());
            c.0.clear();
            c.0.push_str(t.name());
            c.1.clear();
            c.1.extend_from_slice(&input);
        }
        alloc::begin(t.alloc_cap());
        FUZZING.with(|f| f.set(true));
        exec_hook(true);
        let t0 = Instant::now();
        let res = catch_unwind(AssertUnwindSafe(|| t.exec(&input)));
        let took = t0.elapsed();
        exec_hook(false);
        FUZZING.with(|f| f.set(false));
        rep.peak_alloc = rep.peak_alloc.max(alloc::end());
        rep.slowest = rep.slowest.max(took);
        rep.execs += 1;
        let mut finding = |kind: &'static str, message: String, rep: &mut Report| {
            let key = (kind, outcome_class(&message, &dir));
            if found.insert(key, ()).is_none() {
                rep.findings.push(Finding {
                    kind,
                    message,
                    input: input.clone(),
                });
            }
        };
        let class = match res {
            Ok(Ok(())) => {
                rep.ok += 1;
                "ok".to_string()
            }
            Ok(Err(e)) => {
                if !t.names_file(&e) {
                    finding("unnamed error", e.clone(), &mut rep);
                }
                outcome_class(&e, &dir)
            }
            Err(_) => {
                let msg = PANIC.with(|p| p.borrow_mut().take()).unwrap_or_default();
                finding("panic", msg.clone(), &mut rep);
                format!("PANIC {msg}")
            }
        };
        if (i as usize) < n_seeds && seeds_load && class != "ok" {
            finding("seed refused", class.clone(), &mut rep);
        }
        if took > limit {
            finding(
                "slow",
                format!("{took:?} (limit {limit:?}): {class}"),
                &mut rep,
            );
        }
        if cfg.progress > 0 && (i + 1) % cfg.progress == 0 {
            eprintln!(
                "{}: {} executions, {:.0} s, {} outcomes, {} findings",
                t.name(),
                i + 1,
                start.elapsed().as_secs_f64(),
                rep.outcomes.len(),
                rep.findings.len()
            );
        }
        let count = rep.outcomes.entry(class).or_insert(0);
        *count += 1;
        // A new outcome: keep the input to mutate further.
        if *count == 1 && i as usize >= n_seeds {
            if corpus.len() < n_seeds + cfg.corpus_cap {
                corpus.push(input);
            } else {
                let at = n_seeds + rng.below(cfg.corpus_cap);
                corpus[at] = input;
            }
        }
    }
    rep.elapsed = start.elapsed();
    rep.corpus = corpus.len();
    rep
}

impl Report {
    pub fn print(
        &self,
        out: &mut impl std::io::Write,
        show_outcomes: usize,
    ) -> std::io::Result<()> {
        let secs = self.elapsed.as_secs_f64();
        writeln!(
            out,
            "target {}: {} executions in {:.1} s ({:.0}/s), {} ok, {} distinct outcomes, corpus {}, \
             slowest {:.1} ms, peak allocation {:.1} MiB, {} finding(s)",
            self.target,
            self.execs,
            secs,
            self.execs as f64 / secs.max(1e-9),
            self.ok,
            self.outcomes.len(),
            self.corpus,
            self.slowest.as_secs_f64() * 1e3,
            self.peak_alloc as f64 / (1 << 20) as f64,
            self.findings.len()
        )?;
        let mut by_count: Vec<(&String, &u64)> = self.outcomes.iter().collect();
        by_count.sort_by(|a, b| b.1.cmp(a.1));
        for (class, n) in by_count.iter().take(show_outcomes) {
            writeln!(out, "  {n:>9}  {class}")?;
        }
        for f in &self.findings {
            writeln!(
                out,
                "  FINDING [{}] {} ({} byte input)",
                f.kind,
                f.message,
                f.input.len()
            )?;
        }
        Ok(())
    }
}

/// A scratch folder for a target's files: in /dev/shm when there is one (no disk writes for
/// millions of executions), else the system's temporary folder.
pub fn scratch(name: &str) -> tempfile::TempDir {
    let shm = PathBuf::from("/dev/shm");
    let base = if shm.is_dir() {
        shm
    } else {
        std::env::temp_dir()
    };
    tempfile::Builder::new()
        .prefix(&format!("skinengine-fuzz-{name}-"))
        .tempdir_in(base)
        .expect("scratch folder")
}

/// Several files in one input: parts joined by [`SEP`] (a mutation that breaks a separator
/// merges two parts, which is one more way a file can be wrong).
pub const SEP: &[u8] = b"\n\0--8<--\0\n";

pub fn split_parts(input: &[u8], n: usize) -> Vec<&[u8]> {
    let mut parts = Vec::with_capacity(n);
    let mut rest = input;
    while parts.len() + 1 < n {
        match rest.windows(SEP.len()).position(|w| w == SEP) {
            Some(p) => {
                parts.push(&rest[..p]);
                rest = &rest[p + SEP.len()..];
            }
            None => break,
        }
    }
    parts.push(rest);
    parts
}

pub fn join_parts(parts: &[&[u8]]) -> Vec<u8> {
    parts.join(SEP)
}

/// Every target, in the order the runner runs them.
pub const TARGETS: [&str; 14] = [
    "ham",
    "isic",
    "split",
    "truth",
    "eval",
    "merge",
    "safetensors",
    "head-model",
    "net-model",
    "checkpoint",
    "finetune-checkpoint",
    "image",
    "pth",
    "http",
];

/// Targets named but not written yet (none now: `http`, issue 14's server, is in [`TARGETS`]).
#[allow(dead_code)] // the runner's
pub const PLANNED: [&str; 0] = [];

/// The target called `name` (its scratch folder made; seeds are built by `seeds`).
pub fn target(name: &str) -> Option<Box<dyn Target>> {
    Some(match name {
        "ham" => Box::new(csv_targets::Ham::new()),
        "isic" => Box::new(csv_targets::Isic::new()),
        "split" => Box::new(csv_targets::SplitCsv::new()),
        "truth" => Box::new(csv_targets::Truth::new()),
        "eval" => Box::new(csv_targets::Eval::new()),
        "merge" => Box::new(csv_targets::Merge::new()),
        "safetensors" => Box::new(tensor_targets::Safetensors::new()),
        "head-model" => Box::new(model_targets::HeadModel::new()),
        "net-model" => Box::new(model_targets::NetModel::new()),
        "checkpoint" => Box::new(model_targets::Checkpoint::new()),
        "finetune-checkpoint" => Box::new(model_targets::FineTuneCheckpoint::new()),
        "image" => Box::new(image_target::Image::new()),
        "pth" => Box::new(pth_target::Pth::new()),
        "http" => Box::new(http_target::Http::new()),
        _ => return None,
    })
}
