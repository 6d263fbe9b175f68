//! `--device` as text: `auto`, `cpu`, `cuda`, `cuda:N`, `cuda-emulator`, `reference`.
//!
//! Not a `clap::ValueEnum`: `cuda:N` carries a number, which a value enum cannot. Instead
//! [`DeviceChoice`] has `FromStr`/`Display` and a clap value parser (so `#[arg(long,
//! default_value_t = DeviceChoice::Auto)]` picks it up without `value_enum`) that lists the
//! choices in `--help` and refuses anything else with a message naming the accepted forms.

use std::fmt;
use std::str::FromStr;

use super::select::DeviceChoice;

/// The accepted forms, for help and error messages.
const FORMS: &str = "auto, cpu, cuda, cuda:N (N = GPU ordinal 0, 1, ...), cuda-emulator, reference";

/// Largest ordinal accepted by the parser; far above any machine's GPU count, low enough that a
/// typo (`cuda:100000`) is caught here instead of by the driver.
const MAX_ORDINAL: usize = 1023;

impl FromStr for DeviceChoice {
    type Err = String;

    fn from_str(s: &str) -> Result<DeviceChoice, String> {
        let t = s.trim().to_ascii_lowercase();
        let choice = match t.as_str() {
            "auto" => DeviceChoice::Auto,
            "cpu" => DeviceChoice::Cpu,
            "cuda" => DeviceChoice::Cuda(0),
            "cuda-emulator" => DeviceChoice::CudaEmulator,
            "reference" => DeviceChoice::Reference,
            _ => {
                if let Some(n) = t.strip_prefix("cuda:") {
                    return parse_ordinal(n).map(DeviceChoice::Cuda).map_err(|why| {
                        format!("{s:?}: {why}; a GPU is chosen as cuda:N, e.g. cuda:0 or cuda:1")
                    });
                }
                if let Some((name, _)) = t.split_once(':') {
                    return Err(format!(
                        "{s:?}: only cuda takes a device number (cuda:N); {name} does not. \
                         Expected one of: {FORMS}"
                    ));
                }
                return Err(format!("unknown device {s:?}; expected one of: {FORMS}"));
            }
        };
        Ok(choice)
    }
}

/// `N` of `cuda:N`: plain decimal digits (no sign, no spaces), at most [`MAX_ORDINAL`].
fn parse_ordinal(n: &str) -> Result<usize, String> {
    if n.is_empty() {
        return Err("the GPU number after \"cuda:\" is missing".into());
    }
    if !n.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!(
            "{n:?} is not a GPU number (a non-negative whole number)"
        ));
    }
    match n.parse::<usize>() {
        Ok(v) if v <= MAX_ORDINAL => Ok(v),
        _ => Err(format!(
            "GPU number {n} is too large (at most {MAX_ORDINAL})"
        )),
    }
}

impl fmt::Display for DeviceChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeviceChoice::Auto => f.write_str("auto"),
            DeviceChoice::Cpu => f.write_str("cpu"),
            DeviceChoice::Cuda(0) => f.write_str("cuda"),
            DeviceChoice::Cuda(n) => write!(f, "cuda:{n}"),
            DeviceChoice::CudaEmulator => f.write_str("cuda-emulator"),
            DeviceChoice::Reference => f.write_str("reference"),
        }
    }
}

/// clap's parser for `--device`: [`FromStr`] for the value, the forms for `--help`.
#[derive(Clone, Copy, Debug, Default)]
pub struct DeviceParser;

impl clap::builder::TypedValueParser for DeviceParser {
    type Value = DeviceChoice;

    fn parse_ref(
        &self,
        cmd: &clap::Command,
        arg: Option<&clap::Arg>,
        value: &std::ffi::OsStr,
    ) -> Result<DeviceChoice, clap::Error> {
        // A function parser turns the FromStr message into clap's "invalid value 'X' for
        // '--device <DEVICE>': <message>" error.
        let f = |s: &str| s.parse::<DeviceChoice>();
        f.parse_ref(cmd, arg, value)
    }

    fn possible_values(
        &self,
    ) -> Option<Box<dyn Iterator<Item = clap::builder::PossibleValue> + '_>> {
        use clap::builder::PossibleValue as P;
        Some(Box::new(
            [
                P::new("auto").help(
                    "CUDA (GPU 0) when a GPU, its driver and NVRTC are usable, else the CPU \
                     (with a note saying why)",
                ),
                P::new("cpu").help("The fast multithreaded CPU backend"),
                P::new("cuda").help("NVIDIA GPU 0 through NVRTC-compiled kernels (= cuda:0)"),
                P::new("cuda:N").help(
                    "NVIDIA GPU number N (0, 1, ... as doctor lists them, after \
                     CUDA_VISIBLE_DEVICES): one process per GPU",
                ),
                P::new("cuda-emulator").help(
                    "The CUDA kernels run by the CPU emulator (slow; for checking the CUDA \
                     path without a GPU)",
                ),
                P::new("reference")
                    .help("The plain-loop f64-accumulating reference backend (slow; for checking)"),
            ]
            .into_iter(),
        ))
    }
}

impl clap::builder::ValueParserFactory for DeviceChoice {
    type Parser = DeviceParser;
    fn value_parser() -> DeviceParser {
        DeviceParser
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepted_forms() {
        for (s, d) in [
            ("auto", DeviceChoice::Auto),
            ("cpu", DeviceChoice::Cpu),
            ("cuda", DeviceChoice::Cuda(0)),
            ("cuda:0", DeviceChoice::Cuda(0)),
            ("cuda:3", DeviceChoice::Cuda(3)),
            ("CUDA:12", DeviceChoice::Cuda(12)),
            ("cuda-emulator", DeviceChoice::CudaEmulator),
            ("reference", DeviceChoice::Reference),
        ] {
            assert_eq!(s.parse::<DeviceChoice>(), Ok(d), "{s}");
            // Display gives back a form that parses to the same choice (clap prints the
            // default this way, and error messages name the device this way).
            assert_eq!(d.to_string().parse::<DeviceChoice>(), Ok(d), "{s}");
        }
        assert_eq!(DeviceChoice::Cuda(0).to_string(), "cuda");
        assert_eq!(DeviceChoice::Cuda(3).to_string(), "cuda:3");
    }

    #[test]
    fn refused_forms_say_why() {
        for (s, says) in [
            ("cuda:-1", "\"-1\" is not a GPU number"),
            ("cuda:x", "\"x\" is not a GPU number"),
            ("cuda:+1", "\"+1\" is not a GPU number"),
            ("cuda: 1", "\" 1\" is not a GPU number"),
            ("cuda:1.5", "\"1.5\" is not a GPU number"),
            ("cuda:", "number after \"cuda:\" is missing"),
            ("cuda:99999999999999999999", "too large"),
            ("cuda:1024", "too large (at most 1023)"),
            (
                "cpu:1",
                "only cuda takes a device number (cuda:N); cpu does not",
            ),
            ("cuda-emulator:0", "cuda-emulator does not"),
            ("gpu", "unknown device \"gpu\""),
            ("", "unknown device \"\""),
        ] {
            let e = s.parse::<DeviceChoice>().unwrap_err();
            assert!(e.contains(says), "{s:?}: {e}");
        }
        // Every refusal lists what is accepted.
        for s in ["cpu:1", "gpu"] {
            let e = s.parse::<DeviceChoice>().unwrap_err();
            assert!(e.contains("cuda:N"), "{s:?}: {e}");
        }
        assert!(
            "cuda:x"
                .parse::<DeviceChoice>()
                .unwrap_err()
                .contains("cuda:0 or cuda:1")
        );
    }

    /// Through clap, as the commands use it: the derive picks the parser up from
    /// `ValueParserFactory`, the default prints as `auto`, errors name the flag.
    #[test]
    fn through_clap() {
        use clap::Parser;
        #[derive(Parser, Debug)]
        struct A {
            #[arg(long, default_value_t = DeviceChoice::Auto)]
            device: DeviceChoice,
        }
        assert_eq!(A::try_parse_from(["t"]).unwrap().device, DeviceChoice::Auto);
        let a = A::try_parse_from(["t", "--device", "cuda:2"]).unwrap();
        assert_eq!(a.device, DeviceChoice::Cuda(2));
        let e = A::try_parse_from(["t", "--device", "cpu:1"])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("invalid value 'cpu:1' for '--device <DEVICE>'")
                && e.contains("cpu does not"),
            "{e}"
        );
        use clap::CommandFactory;
        let help = A::command().render_long_help().to_string();
        for form in [
            "auto",
            "cpu",
            "cuda:N",
            "cuda-emulator",
            "reference",
            "[default: auto]",
        ] {
            assert!(help.contains(form), "{form} missing from help:\n{help}");
        }
    }

    /// `check_ordinal`'s message names the GPU asked for and how many there are.
    #[test]
    fn missing_ordinal_names_the_count() {
        use crate::cuda::gpu::check_ordinal;
        assert!(check_ordinal(0, 1).is_ok() && check_ordinal(3, 4).is_ok());
        for (n, count, says) in [
            (1, 1, "there is no GPU 1; the driver shows 1 GPU (cuda:0)"),
            (
                4,
                4,
                "there is no GPU 4; the driver shows 4 GPUs (cuda:0 to cuda:3)",
            ),
            (0, 0, "there is no GPU 0; the driver shows no GPU"),
        ] {
            let e = check_ordinal(n, count).unwrap_err().to_string();
            assert!(
                e.contains(says) && e.contains(&format!("--device cuda:{n}")),
                "{e}"
            );
        }
    }

    /// Resolving `cuda:N` for a GPU that is not there is an error, never a panic or a silent
    /// fall back to the CPU: here (no driver) it says there is no driver; on a GPU machine it
    /// names the count.
    #[test]
    fn cuda_n_without_that_gpu_is_an_error() {
        let count = crate::cuda::gpu::device_count();
        let n = *count.as_ref().unwrap_or(&0);
        for d in [DeviceChoice::Cuda(n), DeviceChoice::Cuda(n + 5)] {
            let Err(e) = d.resolve() else {
                panic!("{d} resolved on a machine with {n} GPUs")
            };
            let e = e.to_string();
            match &count {
                Ok(_) => assert!(e.contains("the driver shows"), "{e}"),
                Err(_) => assert!(
                    e.contains("no CUDA driver") || e.contains("no usable GPU"),
                    "{e}"
                ),
            }
        }
    }
}
