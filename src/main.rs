//! The `skinengine` command line. `--help` lists only commands that work.

use clap::{Parser, Subcommand};

// mimalloc keeps freed pages for reuse: ResNet activations are tens of MB per layer, and the
// system allocator returns such blocks to the kernel on free, so every layer of every batch
// would page-fault its output in again.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
use skinengine::cli::{ablate, bench, demo, embed, eval, inspect, synth, train};

#[derive(Parser)]
#[command(
    name = "skinengine",
    version,
    about = "Skin-lesion classification engine (ISIC 2018 Task 3 / HAM10000) on ResNet50 features"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// The whole pipeline on a small synthetic data set: synth, train, infer, eval, report.
    Demo(demo::DemoArgs),
    /// Train the classifier head on frozen ResNet50 features.
    Train(train::TrainArgs),
    /// Classify images with a trained model; writes an ISIC prediction CSV.
    Infer(train::InferArgs),
    /// Score a prediction CSV against ground truth with the official ISIC 2018 metrics.
    Eval(eval::EvalArgs),
    /// The seed's five cumulative configurations as one table beside its reported numbers.
    Ablate(ablate::AblateArgs),
    /// Write a synthetic dermoscopy data set in the HAM10000 or ISIC 2018 layout.
    Synth(synth::SynthArgs),
    /// ResNet50 features (2048-d, global average pool) for images, as a safetensors file.
    Embed(embed::EmbedArgs),
    /// Check a data folder: layout, classes, lesions and every problem found.
    Inspect(inspect::InspectArgs),
    /// ResNet50 forward throughput (images/s, GFLOP/s) on the chosen device.
    Bench(bench::BenchArgs),
    /// Show the hardware and libraries found (CPU features, CUDA driver, NVRTC).
    Doctor,
}

fn main() {
    let cli = Cli::parse();
    let result = match &cli.command {
        Command::Embed(a) => embed::run(a),
        Command::Bench(a) => bench::run(a),
        Command::Demo(a) => demo::run(a),
        Command::Train(a) => train::run(a),
        Command::Infer(a) => train::run_infer(a),
        Command::Synth(a) => synth::run(a),
        Command::Eval(a) => eval::run(a),
        Command::Ablate(a) => ablate::run(a),
        Command::Inspect(a) => inspect::run(a),
        Command::Doctor => {
            print!("{}", skinengine::doctor::report());
            Ok(())
        }
    };
    if let Err(e) = result {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}
