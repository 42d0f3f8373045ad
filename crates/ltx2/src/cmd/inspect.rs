//! `ltx2 inspect`: what a checkpoint holds (components by key prefix, dtypes, parameter counts) and
//! its parsed config; for a model folder, which file plays which part (the LTX-2.5 split layout
//! or the single-file one) and then each file.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use ltx2_model::checkpoint::{Checkpoint, Component};
use ltx2_model::generation::{self, Evidence};

#[derive(clap::Args)]
pub struct Args {
    /// A safetensors checkpoint (the combined LTX-2 file, its FP8 variant, the upsampler, one of
    /// the LTX-2.5 split files) or a model folder (every component file in turn).
    pub checkpoint: PathBuf,
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
    if args.checkpoint.is_dir() {
        return inspect_folder(&args.checkpoint);
    }
    inspect_file(&args.checkpoint)
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
