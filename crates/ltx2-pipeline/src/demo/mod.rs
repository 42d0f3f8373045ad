//! The demo model: a tiny random-weight LTX-2 built in-process, for trying the server and the CLI
//! without the 19B weights. Its output is noise, not a video of the prompt
//! ([`crate::ModelInfo::is_demo`]).
//!
//! It is the real architecture at the golden set's tiny size (`layout.json`: the tensor names and
//! shapes of `testdata/golden/weights/{model,upsampler}.safetensors` and the Gemma language model,
//! with the three `config` JSONs; `tokenizer.json`: the golden set's tiny Gemma tokenizer). The
//! weights are drawn from a fixed ChaCha20 seed, so every run of every build is identical. They are
//! written as a model folder in the official layout (checkpoint with `config` metadata, upsampler,
//! Gemma folder) to a temporary directory and loaded with the same code as a real folder, so the
//! demo exercises the real loaders too. Files are removed once memory-mapped.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;
use rand_distr::{Distribution, StandardNormal};
use serde::Deserialize;

use crate::api::GenError;

const LAYOUT: &str = include_str!("layout.json");
const TOKENIZER: &[u8] = include_bytes!("tokenizer.json");
/// Seed of the demo weights (fixed: the demo is the same everywhere).
const DEMO_SEED: u64 = 0x17_02;

/// File names the demo folder uses (those of the official release).
pub const CHECKPOINT_FILE: &str = "ltx-2-19b-distilled.safetensors";
pub const UPSAMPLER_FILE: &str = "ltx-2-spatial-upscaler-x2-1.0.safetensors";
pub const GEMMA_DIR: &str = "gemma-3-12b-it";

/// Tensor names/shapes and configs of the tiny model (`layout.json`).
#[derive(Deserialize)]
pub struct Layout {
    pub checkpoint_config: serde_json::Value,
    pub model_version: String,
    pub model: HashMap<String, Vec<usize>>,
    pub upsampler_config: serde_json::Value,
    pub upsampler: HashMap<String, Vec<usize>>,
    pub gemma: HashMap<String, Vec<usize>>,
    pub gemma_config: serde_json::Value,
}

/// The tiny model's layout.
pub fn layout() -> Result<Layout, GenError> {
    serde_json::from_str(LAYOUT).map_err(|e| GenError::Model(format!("demo layout: {e}")))
}

/// The tiny Gemma tokenizer (`tokenizer.json` bytes); its ids are valid rows of any Gemma vocabulary.
pub fn tokenizer_json() -> &'static [u8] {
    TOKENIZER
}

/// How a random-weight tensor is filled.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum InitRule {
    Fill(f32),
    /// N(0, std^2).
    Normal(f32),
}

/// The value rule for every tensor of a random-weight LTX-2 (demo and benchmarks): statistics and
/// norm gains at their neutral values, weights scaled by `1/sqrt(fan_in)` so activations stay
/// O(1) through the random network.
pub fn init_rule(name: &str, shape: &[usize]) -> InitRule {
    let is_gemma_norm = name.starts_with("language_model.") && name.contains("norm");
    if name.ends_with("mean-of-means") || is_gemma_norm {
        // Gemma RMSNorm multiplies by (1 + w): 0 is the identity.
        return InitRule::Fill(0.0);
    }
    if name.ends_with("std-of-means")
        || (shape.len() == 1 && name.contains("norm") && name.ends_with("weight"))
    {
        return InitRule::Fill(1.0);
    }
    if shape.len() == 1 && name.ends_with("bias") {
        return InitRule::Fill(0.0);
    }
    let fan_in: usize = if shape.len() >= 2 {
        shape[1..].iter().product()
    } else {
        1
    };
    if name.contains("scale_shift_table") {
        InitRule::Normal(0.1)
    } else {
        InitRule::Normal(1.0 / (fan_in as f32).sqrt())
    }
}

/// [`init_rule`] drawn from `rng` on the CPU, in f32.
pub fn init_cpu(name: &str, shape: &[usize], rng: &mut ChaCha20Rng) -> candle_core::Result<Tensor> {
    match init_rule(name, shape) {
        InitRule::Fill(v) => Tensor::full(v, shape, &Device::Cpu),
        InitRule::Normal(std) => {
            let n: usize = shape.iter().product();
            let values: Vec<f32> = (0..n)
                .map(|_| StandardNormal.sample(&mut *rng))
                .map(|v: f32| v * std)
                .collect();
            Tensor::from_vec(values, shape, &Device::Cpu)
        }
    }
}

fn write_file(
    path: &Path,
    tensors: &HashMap<String, Vec<usize>>,
    metadata: HashMap<String, String>,
    rng: &mut ChaCha20Rng,
) -> Result<(), GenError> {
    let mut names: Vec<&String> = tensors.keys().collect();
    names.sort();
    let data = names
        .into_iter()
        .map(|k| Ok((k.clone(), init_cpu(k, &tensors[k], rng)?)))
        .collect::<candle_core::Result<Vec<_>>>()?;
    safetensors::serialize_to_file(data, Some(metadata), path)
        .map_err(|e| GenError::Model(format!("writing demo weights: {e}")))
}

/// Writes the demo model folder (official layout) into `dir`.
pub fn write_demo_folder(dir: &Path) -> Result<(), GenError> {
    let io = |e: std::io::Error| {
        GenError::Model(format!("writing the demo model to {}: {e}", dir.display()))
    };
    let layout = layout()?;
    let mut rng = ChaCha20Rng::seed_from_u64(DEMO_SEED);
    std::fs::create_dir_all(dir.join(GEMMA_DIR)).map_err(io)?;
    let meta = |config: &serde_json::Value, version: Option<&str>| {
        let mut m = HashMap::from([("config".to_string(), config.to_string())]);
        if let Some(v) = version {
            m.insert("model_version".into(), v.into());
        }
        m
    };
    write_file(
        &dir.join(CHECKPOINT_FILE),
        &layout.model,
        meta(&layout.checkpoint_config, Some(&layout.model_version)),
        &mut rng,
    )?;
    write_file(
        &dir.join(UPSAMPLER_FILE),
        &layout.upsampler,
        meta(&layout.upsampler_config, None),
        &mut rng,
    )?;
    let gemma = dir.join(GEMMA_DIR);
    write_file(
        &gemma.join("model.safetensors"),
        &layout.gemma,
        HashMap::from([("format".into(), "pt".into())]),
        &mut rng,
    )?;
    std::fs::write(gemma.join("config.json"), layout.gemma_config.to_string()).map_err(io)?;
    std::fs::write(gemma.join("tokenizer.json"), TOKENIZER).map_err(io)?;
    Ok(())
}

/// A fresh temporary folder for the demo files.
pub fn temp_demo_dir() -> PathBuf {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    std::env::temp_dir().join(format!("ltx2-demo-{}-{nanos}", std::process::id()))
}

/// Context length of the demo text encoder (the tiny Gemma's `max_length`).
pub fn demo_max_length() -> usize {
    128
}
