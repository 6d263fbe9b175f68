//! The `skinengine` command line. `--help` lists only commands that work.

use clap::{Parser, Subcommand};

// mimalloc keeps freed pages for reuse: ResNet activations are tens of MB per layer, and the
// system allocator returns such blocks to the kernel on free, so every layer of every batch
// would page-fault its output in again.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
use skinengine::cli::{
    ablate, bench, bench_kernels, convert, demo, embed, eval, grads, inspect, merge, serve, synth,
    train,
};

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
    /// Train a classifier: the head on cached frozen backbone features (default), or through
    /// the backbone with --fine-tune layer4|layer3|layer2|all.
    Train(Box<train::TrainArgs>),
    /// Classify images with a trained model; writes an ISIC prediction CSV.
    Infer(train::InferArgs),
    /// Join the CSVs of `infer --shard K/N` runs into the CSV one run over all images writes.
    Merge(merge::MergeArgs),
    /// Score a prediction CSV against ground truth with the official ISIC 2018 metrics.
    Eval(eval::EvalArgs),
    /// The seed's five cumulative configurations as one table beside its reported numbers.
    Ablate(ablate::AblateArgs),
    /// Write a synthetic dermoscopy data set in the HAM10000 or ISIC 2018 layout.
    Synth(synth::SynthArgs),
    /// ResNet50 features (2048-d, global average pool) for images, as a safetensors file.
    Embed(embed::EmbedArgs),
    /// Loss and every parameter gradient through the weights' own classifier (check against
    /// PyTorch autograd: tools/torch_grads.py).
    Grads(grads::GradsArgs),
    /// HTTP server: POST /v1/classify (JSON probabilities, Grad-CAM heat map on request), a web
    /// page at /, /healthz, /metrics; dynamic batching onto the device.
    Serve(serve::ServeArgs),
    /// Check a data folder: layout, classes, lesions and every problem found.
    Inspect(inspect::InspectArgs),
    /// A PyTorch .pth checkpoint (torch.save) to safetensors, reading its pickle without
    /// running any code.
    Convert(convert::ConvertArgs),
    /// Forward throughput (images/s, GFLOP/s) of ResNet50 (or any ResNet: --backbone) on the
    /// chosen device; --train times training steps.
    Bench(bench::BenchArgs),
    /// Each ResNet50 convolution and dense layer timed alone, with its GEMM size (m, n, k).
    BenchKernels(bench_kernels::BenchKernelsArgs),
    /// Show the hardware and libraries found (CPU features, GPU, CUDA driver, NVRTC).
    Doctor(DoctorArgs),
}

#[derive(clap::Args)]
struct DoctorArgs {
    /// Compile every kernel with the NVRTC on the library path; one line per kernel, exit
    /// status 1 if any fails.
    #[arg(long)]
    compile_kernels: bool,
    /// Target architecture(s) for --compile-kernels, e.g. sm_90 (repeatable; default: this
    /// machine's GPU, else sm_80 and sm_90).
    #[arg(long, value_parser = parse_arch)]
    arch: Vec<u32>,
    /// With --compile-kernels: also write PTX (for the lowest --arch) here, for ptxas reports.
    #[arg(long)]
    ptx_dir: Option<std::path::PathBuf>,
}

fn parse_arch(s: &str) -> Result<u32, String> {
    let digits = s.trim_start_matches("sm_").trim_start_matches("compute_");
    digits
        .parse::<u32>()
        .ok()
        .filter(|v| (30..=200).contains(v))
        .ok_or_else(|| format!("expected an architecture like sm_90, got {s:?}"))
}

fn doctor(a: &DoctorArgs) -> skinengine::Result<()> {
    print!("{}", skinengine::doctor::report());
    if !a.compile_kernels {
        return Ok(());
    }
    let archs = if !a.arch.is_empty() {
        a.arch.clone()
    } else if let Ok(g) = skinengine::cuda::gpu::probe() {
        vec![(g.compute_capability.0 * 10 + g.compute_capability.1) as u32]
    } else {
        vec![80, 90]
    };
    if !skinengine::doctor::compile_kernels(&archs, a.ptx_dir.as_deref())? {
        eprintln!("error: some kernels failed to compile");
        std::process::exit(1);
    }
    Ok(())
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
        Command::Merge(a) => merge::run(a),
        Command::Ablate(a) => ablate::run(a),
        Command::Inspect(a) => inspect::run(a),
        Command::Serve(a) => serve::run(a),
        Command::Grads(a) => grads::run(a),
        Command::Convert(a) => convert::run(a),
        Command::BenchKernels(a) => bench_kernels::run(a),
        Command::Doctor(a) => doctor(a),
    };
    if let Err(e) = result {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}
