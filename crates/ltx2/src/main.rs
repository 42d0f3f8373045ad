//! `ltx2`: serve the HTTP API, run the RunPod worker, generate one video, inspect a checkpoint, benchmark.

mod cmd;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "ltx2", version, about = "LTX-2 audio+video generation server")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the HTTP API (POST /generate, /health, /docs).
    Serve(cmd::serve::Args),
    /// Run as a RunPod serverless worker.
    Worker(cmd::worker::Args),
    /// Generate one video to a file.
    Generate(cmd::generate::Args),
    /// Print the components, dtypes, parameter counts and config of a checkpoint.
    Inspect(cmd::inspect::Args),
    /// Time the pipeline at given shapes.
    Bench(cmd::bench::Args),
    /// Time switching LoRA sets on a loaded transformer (the server's per-request switch).
    BenchLora(cmd::bench_lora::Args),
}

fn main() -> anyhow::Result<()> {
    ltx2::process::tune_for_inference();
    let cli = Cli::parse();
    match cli.command {
        Command::Serve(args) => cmd::serve::run(args),
        Command::Worker(args) => cmd::worker::run(args),
        Command::Generate(args) => cmd::generate::run(args),
        Command::Inspect(args) => cmd::inspect::run(args),
        Command::Bench(args) => cmd::bench::run(args),
        Command::BenchLora(args) => cmd::bench_lora::run(args),
    }
}
