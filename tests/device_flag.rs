//! `--device cuda:N` through the real binary: every command that takes `--device` accepts
//! `cuda:N` and refuses malformed forms with the same message (a command declaring the flag with
//! clap's `value_enum` would refuse `cuda:N`: this finds it), and asking for a GPU that is not
//! there fails with a message naming it, never falls back to the CPU.

use std::process::{Command, Output};

fn run(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_skinengine"))
        .args(args)
        .output()
        .expect("running skinengine")
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// The subcommands listed by `skinengine --help` whose own help lists `--device`.
fn commands_with_device() -> Vec<String> {
    let top = text(&run(&["--help"]));
    let names: Vec<String> = top
        .lines()
        .skip_while(|l| !l.starts_with("Commands:"))
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .filter_map(|l| l.split_whitespace().next().map(str::to_string))
        .filter(|n| n != "help")
        .collect();
    assert!(names.len() > 5, "no command list in:\n{top}");
    names
        .into_iter()
        .filter(|c| text(&run(&[c, "--help"])).contains("--device <DEVICE>"))
        .collect()
}

#[test]
fn every_command_parses_cuda_n() {
    let cmds = commands_with_device();
    // The commands that ran on a backend when cuda:N was added; more may join.
    for c in [
        "train", "infer", "embed", "bench", "demo", "grads", "ablate",
    ] {
        assert!(cmds.iter().any(|x| x == c), "{c} has no --device: {cmds:?}");
    }
    for c in &cmds {
        // A valid value followed by --help: clap parses the value first, then prints help.
        for ok in ["cuda", "cuda:0", "cuda:3", "cpu", "auto"] {
            let o = run(&[c, "--device", ok, "--help"]);
            assert!(o.status.success(), "{c} --device {ok}: {}", text(&o));
        }
        let help = text(&run(&[c, "--help"]));
        assert!(help.contains("cuda:N"), "{c} --help does not list cuda:N");
        for (bad, says) in [
            ("cuda:-1", "\"-1\" is not a GPU number"),
            ("cuda:x", "\"x\" is not a GPU number"),
            ("cpu:1", "only cuda takes a device number"),
        ] {
            let o = run(&[c, "--device", bad, "--help"]);
            let t = text(&o);
            assert_eq!(o.status.code(), Some(2), "{c} --device {bad}: {t}");
            assert!(
                t.contains(&format!("invalid value '{bad}' for '--device <DEVICE>'"))
                    && t.contains(says),
                "{c} --device {bad}: {t}"
            );
        }
    }
}

/// A GPU number no machine has (the parser's maximum): an error naming the device asked for,
/// either "no CUDA driver" (this CI machine) or how many GPUs the driver shows.
#[test]
fn missing_gpu_is_an_error_naming_it() {
    let o = run(&["bench", "--device", "cuda:1023"]);
    let t = text(&o);
    assert!(!o.status.success(), "{t}");
    assert!(t.contains("--device cuda:1023"), "{t}");
    assert!(
        t.contains("no CUDA driver") || t.contains("the driver shows"),
        "{t}"
    );
    assert!(!t.contains("panicked"), "{t}");
}
