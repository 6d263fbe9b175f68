//! The `skinengine` command line. `--help` lists only commands that work.

use clap::{Parser, Subcommand};

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
    /// Show the hardware and libraries found (CPU features, CUDA driver, NVRTC).
    Doctor,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Doctor => print!("{}", skinengine::doctor::report()),
    }
    Ok(())
}
