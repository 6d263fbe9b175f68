//! The `skinengine` command line. `--help` lists only commands that work.

use clap::{Parser, Subcommand};

// mimalloc keeps freed pages for reuse: ResNet activations are tens of MB per layer, and the
// system allocator returns such blocks to the kernel on free, so every layer of every batch
// would page-fault its output in again.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
use skinengine::cli::{bench, embed};

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
    /// ResNet50 features (2048-d, global average pool) for images, as a safetensors file.
    Embed(embed::EmbedArgs),
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
