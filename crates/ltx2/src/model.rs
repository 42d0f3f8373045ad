//! `--model demo|PATH|hub[:REPO]` to a loaded generator: the hub case is downloaded into the
//! Hugging Face cache first, then loaded like a folder.

use candle_core::Device;
use ltx2_model::quantization::{GemmaQuantization, Quantization};
use ltx2_pipeline::{Generator, LoadOptions, ModelSource};

use crate::hub::{self, HubConfig};

/// How serve, worker and generate load the model (besides `--model` and `--device`).
#[derive(clap::Args, Debug, Clone)]
pub struct LoadArgs {
    /// How the DiT's block linears are held and multiplied: `none` (as the file stores them: an
    /// FP8 checkpoint stays FP8 in memory, dequantized per layer), `fp8-cast` (a bf16
    /// checkpoint's block linears cast to FP8 at load, ltx-core's fp8-cast) or `fp8-scaled-mm`
    /// (an FP8 checkpoint's FP8 x FP8 product with its input_scale, ltx-core's FP8Linear).
    #[arg(long, env = "LTX2_QUANTIZATION", default_value = "none")]
    pub quantization: Quantization,
    /// How Gemma-3's projections are held: `none` (bf16, as ltx-core) or `fp8` (per-tensor FP8
    /// at load, half the bytes: with an FP8 DiT everything stays resident in 48 GB; other numbers
    /// than ltx-core's).
    #[arg(long, env = "LTX2_GEMMA_QUANTIZATION", default_value = "none")]
    pub gemma_quantization: GemmaQuantization,
    /// Folder of LoRA `.safetensors` files (official layout) that requests may name in `loras`
    /// (`GET /loras` lists them); switching sets never reloads the base model.
    #[arg(long, env = "LTX2_LORA_DIR")]
    pub lora_dir: Option<std::path::PathBuf>,
    /// Memory for the fused layers of recently used LoRA sets (MB): switching back to a cached
    /// set swaps its layers in without fusing; 0 fuses on every switch.
    #[arg(long, env = "LTX2_LORA_CACHE_MB", default_value_t = 2048)]
    pub lora_cache_mb: u64,
}

impl LoadArgs {
    pub fn options(&self) -> LoadOptions {
        LoadOptions {
            quantization: self.quantization,
            gemma_quantization: self.gemma_quantization,
            lora_dir: self.lora_dir.clone(),
            lora_cache_bytes: self.lora_cache_mb * 1_000_000,
        }
    }
}

/// What serve, worker and generate load. Hub sources read their settings from the environment
/// (`HF_ENDPOINT`, `HF_HOME`, `HF_TOKEN`, `LTX2_*`; see docs/DEPLOY.md).
pub fn load_model(
    source: &ModelSource,
    device: &Device,
    options: &LoadOptions,
) -> anyhow::Result<Box<dyn Generator>> {
    let source = match source {
        ModelSource::Hub { repo } => {
            let folder = hub::resolve(&HubConfig::from_env(), repo)?;
            ModelSource::Path(folder)
        }
        other => other.clone(),
    };
    Ok(ltx2_pipeline::load_generator_with(
        &source, device, options,
    )?)
}
