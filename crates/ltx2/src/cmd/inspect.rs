//! `ltx2 inspect`: what a checkpoint holds (components by key prefix, dtypes, parameter counts) and
//! its parsed config; for a model folder, which file plays which part (the LTX-2.5 split layout
//! or the single-file one) and then each file; with `--memory`, the resident bytes per component
//! and quantization mode.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use candle_core::DType;
use ltx2_model::checkpoint::{Checkpoint, Component};
use ltx2_model::generation::{self, Evidence};
use ltx2_model::quantization::GemmaQuantization;
use ltx2_pipeline::bench::ModelSize;

use super::inspect_memory::Report;

#[derive(Clone, Copy, clap::ValueEnum)]
enum Layout {
    /// LTX-2 19B (`ltx-2-19b-*`, its `-fp8` twin, Gemma-3 12B, the x2 1.0 upsampler).
    #[value(name = "19b")]
    Ltx2_19b,
    /// LTX-2.3 22B (`ltx-2.3-22b-*`, Gemma-3 12B, the x2 1.1 upsampler).
    #[value(name = "2.3-22b")]
    Ltx23_22b,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum Compute {
    Bf16,
    F32,
}

#[derive(clap::Args)]
pub struct Args {
    /// A safetensors checkpoint (the combined LTX-2 file, its FP8 variant, the upsampler, one of
    /// the LTX-2.5 split files) or a model folder (every component file in turn).
    #[arg(required_unless_present = "layout")]
    pub checkpoint: Option<PathBuf>,
    /// Print the bytes each component holds resident under each quantization mode the file
    /// serves (header only: nothing is read or allocated).
    #[arg(long)]
    memory: bool,
    /// With --memory: a release's layout at its real sizes instead of a file (recorded from the
    /// loaders; bf16 and FP8 checkpoints, Gemma-3 12B, upsampler).
    #[arg(long, value_enum, requires = "memory", conflicts_with = "checkpoint")]
    layout: Option<Layout>,
    /// With --memory: also count this Gemma-3 folder's language model.
    #[arg(long, requires = "memory")]
    gemma: Option<PathBuf>,
    /// With --memory: also count this upsampler file.
    #[arg(long, requires = "memory")]
    upsampler: Option<PathBuf>,
    /// With --memory: the dtype dense weights are held in (bf16 on CUDA, f32 on the CPU).
    #[arg(long, value_enum, default_value = "bf16")]
    dtype: Compute,
    /// With --memory: how Gemma's projections are held (none | fp8), as the load flag.
    #[arg(long, default_value = "none")]
    gemma_quantization: GemmaQuantization,
}

fn billions(n: u64) -> String {
    if n >= 1_000_000_000 {
        format!("{:.3} B", n as f64 / 1e9)
    } else if n >= 1_000_000 {
        format!("{:.3} M", n as f64 / 1e6)
    } else {
        format!("{n}")
    }
}

fn dtype_list(d: &BTreeMap<String, usize>) -> String {
    d.iter()
        .map(|(k, v)| format!("{k} x{v}"))
        .collect::<Vec<_>>()
        .join(", ")
}

pub fn run(args: Args) -> anyhow::Result<()> {
    if args.memory {
        let compute = match args.dtype {
            Compute::Bf16 => DType::BF16,
            Compute::F32 => DType::F32,
        };
        let report = match (args.layout, &args.checkpoint) {
            (Some(layout), _) => {
                let size = match layout {
                    Layout::Ltx2_19b => ModelSize::Ltx2_19b,
                    Layout::Ltx23_22b => ModelSize::Ltx23_22b,
                };
                println!(
                    "layout: {} release (recorded from the loaders)",
                    size.name()
                );
                Report::for_layout(size, args.gemma_quantization, compute)?
            }
            (None, Some(path)) => {
                println!("checkpoint: {}", path.display());
                {
                    let (gemma, upsampler) = (args.gemma.as_deref(), args.upsampler.as_deref());
                    Report::for_files(path, gemma, upsampler, args.gemma_quantization, compute)?
                }
            }
            (None, None) => anyhow::bail!("--memory needs a checkpoint or --layout"),
        };
        report.print();
        return Ok(());
    }
    let Some(checkpoint) = &args.checkpoint else {
        anyhow::bail!("give a checkpoint file (or --memory --layout 19b|2.3-22b)");
    };
    if checkpoint.is_dir() {
        return inspect_folder(checkpoint);
    }
    inspect_file(checkpoint)
}

/// The folder's layout as the loader sees it, then each of its files.
fn inspect_folder(dir: &Path) -> anyhow::Result<()> {
    use ltx2_pipeline::engine::ModelFolder;
    let parts: Vec<(&str, PathBuf)> = match ModelFolder::discover(dir)? {
        ModelFolder::Split(f) => {
            println!(
                "model folder: {} ({}, split layout: one file per component)",
                dir.display(),
                f.generation.display_name()
            );
            let mut parts = vec![
                ("transformer + text connectors", f.transformer),
                (
                    "text encoder (Gemma + feature projections + tokenizer)",
                    f.text_encoder,
                ),
                ("video VAE", f.video_vae),
                ("audio VAE + vocoder", f.audio_vae),
            ];
            parts.extend(f.upsampler.map(|p| ("x2 spatial upscaler", p)));
            parts.extend(f.duration_head.map(|p| ("duration head", p)));
            parts
        }
        ModelFolder::Single(f) => {
            println!(
                "model folder: {} (single-file layout; Gemma folder {})",
                dir.display(),
                f.gemma.display()
            );
            let mut parts = vec![("checkpoint", f.checkpoint)];
            parts.extend(f.upsampler.map(|p| ("x2 spatial upscaler", p)));
            parts
        }
    };
    for (role, path) in &parts {
        println!("  {role:<56} {}", path.display());
    }
    for (role, path) in &parts {
        println!("\n======== {role}");
        inspect_file(path)?;
    }
    Ok(())
}

fn inspect_file(path: &Path) -> anyhow::Result<()> {
    let ckpt = Checkpoint::open(path)?;
    println!("checkpoint: {}", ckpt.path().display());
    let summary = ckpt.components();
    let total_tensors: usize = summary.iter().map(|s| s.tensors).sum();
    let total_params: u64 = summary.iter().map(|s| s.parameters).sum();
    let mut all_dtypes: BTreeMap<String, usize> = BTreeMap::new();
    println!("\ncomponents:");
    for s in &summary {
        let prefix = s.component.prefix();
        let prefix = if prefix.is_empty() {
            "(no prefix)".to_string()
        } else {
            format!("{prefix}*")
        };
        println!(
            "  {:<26} {:<52} {:>6} tensors  {:>12} params  [{}]{}",
            s.component.name(),
            prefix,
            s.tensors,
            billions(s.parameters),
            dtype_list(&s.dtypes),
            if s.quantization_scales > 0 {
                format!("  ({} FP8 scales)", s.quantization_scales)
            } else {
                String::new()
            }
        );
        for (k, v) in &s.dtypes {
            *all_dtypes.entry(k.clone()).or_default() += v;
        }
    }
    println!(
        "\ntotal: {total_tensors} tensors, {} parameters ({total_params})",
        billions(total_params)
    );
    println!("dtypes: {}", dtype_list(&all_dtypes));

    let mut meta_keys: Vec<&String> = ckpt.metadata().keys().collect();
    meta_keys.sort();
    println!(
        "\nmetadata keys: {}",
        meta_keys
            .iter()
            .map(|k| k.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    );
    if let Some(version) = ckpt.metadata().get("model_version") {
        println!("model_version: {version}");
    }
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    match generation::detect(ckpt.metadata(), &name) {
        Ok(id) => {
            let from = match id.evidence {
                Evidence::ModelVersion => "its model_version metadata",
                Evidence::GemmaSource => "its gemma_source_checkpoint metadata",
                Evidence::GemmaConfig => "the gemma_version of its gemma_config metadata",
                Evidence::ConfigFlags => "its config flags",
                Evidence::FileName => "its file name (no metadata says)",
                Evidence::Default => "nothing in the file: assumed",
            };
            println!("generation: {} (from {from})", id.generation);
            println!(
                "2.3+ flags on: {}",
                if id.flags.is_empty() {
                    "none".to_string()
                } else {
                    id.flags.join(", ")
                }
            );
        }
        Err(e) => println!("generation: {e}"),
    }

    if summary
        .iter()
        .any(|s| s.component == Component::Transformer)
    {
        println!("\ntransformer config (parsed, 19B fallbacks for absent keys):");
        match ckpt.transformer_config() {
            Ok(cfg) => {
                println!("{cfg:#?}");
                println!(
                    "implied DiT parameters: {} ({})",
                    billions(cfg.parameter_count()),
                    cfg.parameter_count()
                );
                match ckpt.check_transformer(&cfg) {
                    Ok(()) => println!(
                        "transformer tensors: all {} present with the expected shapes",
                        cfg.tensor_shapes().len()
                    ),
                    Err(e) => println!("transformer tensors: {e}"),
                }
            }
            Err(e) => println!("  {e}"),
        }
    }
    if let Some(config) = ckpt.config()? {
        println!("\nconfig metadata:");
        println!("{}", serde_json::to_string_pretty(&config)?);
    }
    Ok(())
}
