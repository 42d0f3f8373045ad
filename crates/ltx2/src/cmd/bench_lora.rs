//! `ltx2 bench-lora`: how long switching LoRA sets takes on a loaded transformer, the way the
//! server switches them between requests (`LoraState`: the previous set's layers put back, the
//! new set's layers re-read from the memory-mapped checkpoint and fused, or swapped in from the
//! fused-layer cache). Only the DiT is loaded; prints one JSON object.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;
use candle_core::DType;
use clap::Parser;
use ltx2_model::checkpoint::Checkpoint;
use ltx2_model::quantization::Quantization;
use ltx2_pipeline::loras::{LoraCatalog, LoraState};
use ltx2_pipeline::model_files::ModelFiles;
use ltx2_pipeline::LoraChoice;

#[derive(Parser, Debug)]
pub struct Args {
    /// A model folder (the checkpoint is found as `serve` finds it) or a checkpoint file.
    #[arg(long)]
    pub model: PathBuf,
    /// The LoRA folder (`serve --lora-dir`).
    #[arg(long)]
    pub lora_dir: PathBuf,
    /// A set, `NAME[:STRENGTH],NAME[:STRENGTH]...`; repeat for more sets. The bench cycles
    /// base -> set 1 -> set 2 -> ... -> base.
    #[arg(long = "set", required = true)]
    pub sets: Vec<String>,
    /// How many times the cycle runs (the first pass fuses; later ones hit the cache).
    #[arg(long, default_value_t = 3)]
    pub cycles: usize,
    /// Fused-layer cache (`serve --lora-cache-mb`); 0 fuses on every switch.
    #[arg(long, default_value_t = 2048)]
    pub lora_cache_mb: u64,
    #[arg(long, env = "LTX2_QUANTIZATION", default_value = "none")]
    pub quantization: Quantization,
}

fn parse_set(s: &str) -> anyhow::Result<Vec<LoraChoice>> {
    s.split(',')
        .filter(|e| !e.is_empty())
        .map(|e| {
            let (name, strength) = match e.rsplit_once(':') {
                Some((n, v)) => (n, v.parse::<f32>().with_context(|| format!("--set {e}"))?),
                None => (e, 1.0),
            };
            Ok(LoraChoice {
                name: name.to_string(),
                strength,
            })
        })
        .collect()
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let device = ltx2_pipeline::engine::best_device()?;
    let dtype = if device.is_cuda() {
        DType::BF16
    } else {
        DType::F32
    };
    let checkpoint = if args.model.is_dir() {
        ModelFiles::discover(&args.model)?.checkpoint
    } else {
        args.model.clone()
    };
    let sets = args
        .sets
        .iter()
        .map(|s| parse_set(s))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let started = Instant::now();
    let mut model = Checkpoint::open(&checkpoint)?.load_transformer_quantized(
        dtype,
        &device,
        args.quantization,
    )?;
    let load_seconds = started.elapsed().as_secs_f64();
    let catalog = LoraCatalog::new(&args.lora_dir)?;
    for (i, set) in sets.iter().enumerate() {
        catalog
            .check(set)
            .map_err(|m| anyhow::anyhow!("--set {}: {m}", args.sets[i]))?;
    }
    let mut state = LoraState::new(
        Some(catalog),
        checkpoint.clone(),
        None,
        args.quantization,
        dtype,
        device.clone(),
    )
    .with_cache_budget(args.lora_cache_mb << 20);
    let mut switches = Vec::new();
    let names: Vec<String> = std::iter::once("base".to_string())
        .chain(args.sets.iter().cloned())
        .collect();
    let mut from = 0usize;
    for cycle in 0..args.cycles {
        for (to, wanted) in sets
            .iter()
            .enumerate()
            .map(|(i, s)| (i + 1, s.as_slice()))
            .chain([(0, &[][..])])
        {
            let t = Instant::now();
            state.switch(&mut model, wanted)?;
            device.synchronize()?;
            let seconds = t.elapsed().as_secs_f64();
            let what = state
                .take_last_switch()
                .unwrap_or_else(|| "base layers put back".into());
            switches.push(serde_json::json!({
                "cycle": cycle,
                "from": names[from],
                "to": names[to],
                "seconds": seconds,
                "what": what,
            }));
            from = to;
        }
    }
    let report = serde_json::json!({
        "checkpoint": checkpoint.display().to_string(),
        "device": format!("{device:?}"),
        "dtype": format!("{dtype:?}"),
        "quantization": args.quantization.to_string(),
        "lora_cache_mb": args.lora_cache_mb,
        "transformer_load_seconds": load_seconds,
        "switches": switches,
    });
    println!("{}", serde_json::to_string_pretty(&report)?);
    Ok(())
}
