//! Benchmark support: the real LTX-2 architecture (tiny or full 19B size) with random weights
//! generated directly in device memory (no files; the 19B would be 38 GB on disk), wrapped in the
//! serving [`Engine`], plus the FLOP model used for MFU.

pub mod flops;
pub mod layout;
pub mod random;

use std::collections::HashSet;

use candle_core::{DType, Device};
use candle_nn::VarBuilder;
use ltx2_model::quantization::{GemmaQuantization, Quantization};
use ltx2_model::text::gemma4::{Gemma4Config, Gemma4TextModel};
use ltx2_model::text::{
    Gemma3Config, Gemma3TextModel, GemmaTextModel, GemmaTokenizer, TextEncoder, TextEncoderOptions,
    LTX2_MAX_LENGTH,
};
use ltx2_model::transformer::{LtxModel, TransformerConfig};
use ltx2_model::upsampler::{Config as UpsamplerConfig, LatentUpsampler};

use crate::api::{GenError, ModelInfo, PipelineKind};
use crate::components::Models;
use crate::demo;
use crate::engine::Engine;
use crate::params::PipelineParams;
use ltx2_model::generation::Generation;
use random::RandomBackend;

/// Where the Gemma language model sits in the random checkpoint namespace (the demo's init rule
/// recognises Gemma norms by this prefix).
const GEMMA_PREFIX: &str = "language_model.model";
/// The random Gemma-4 sits elsewhere: its RMSNorm multiplies by `w`, so its norm gains take the
/// generic rule (1.0), not Gemma-3's (1 + w) identity 0.
const GEMMA4_PREFIX: &str = "gemma4.model";

/// Which architecture size to build.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModelSize {
    /// The golden set's tiny model (the demo's layout).
    Tiny,
    /// LTX-2 19B + Gemma-3 12B at their real widths.
    Ltx2_19b,
    /// LTX-2.3 22B + Gemma-3 12B at their real widths (gated attention, cross-attention AdaLN,
    /// feature extractor V2, 8-layer connectors, the 2.3 VAE, the 48 kHz BWE vocoder, the x2 v1.1
    /// upsampler).
    Ltx23_22b,
    /// LTX-2.5 22B: the 2.3 widths with the 2.5 transformer flags (no video FFN bias, keyframe
    /// position embedding, 1.2.0 AV cross AdaLN) and a Gemma-4 text tower at the Gemma-3 12B
    /// widths (LTX's `gemma4-12b-ltx-v1` config is not public; see [`gemma4_12b_assumed`]). The
    /// video decoder is the conv one (`ltx-2.5-video-vae-conv`); the diffusion decoder's full-size
    /// config is not public either.
    Ltx25_22b,
}

impl ModelSize {
    pub fn name(self) -> &'static str {
        match self {
            Self::Tiny => "tiny",
            Self::Ltx2_19b => "19b",
            Self::Ltx23_22b => "2.3-22b",
            Self::Ltx25_22b => "2.5-22b",
        }
    }

    pub fn generation(self) -> Generation {
        match self {
            Self::Tiny | Self::Ltx2_19b => Generation::Ltx2,
            Self::Ltx23_22b => Generation::Ltx23,
            Self::Ltx25_22b => Generation::Ltx25,
        }
    }
}

/// The `config` metadata of an LTX-2.3 22B checkpoint at its real sizes: the 2.3 flags and widths
/// (ltx-generations.md; diffusers' "2.3" converter presets for the VAE block stacks and the
/// vocoder widths), everything else as the 19B.
pub fn ltx23_22b_config() -> serde_json::Value {
    serde_json::json!({
        "transformer": {
            "num_layers": 48,
            "num_attention_heads": 32, "attention_head_dim": 128, "cross_attention_dim": 4096,
            "audio_num_attention_heads": 32, "audio_attention_head_dim": 64,
            "audio_cross_attention_dim": 2048,
            "apply_gated_attention": true,
            "cross_attention_adaln": true,
            "caption_proj_before_connector": true,
            "caption_projection_first_linear": false,
            "caption_proj_input_norm": false,
            "caption_projection_second_linear": false,
            "connector_apply_gated_attention": true,
            "connector_num_attention_heads": 32, "connector_attention_head_dim": 128,
            "audio_connector_num_attention_heads": 32, "audio_connector_attention_head_dim": 64,
            "connector_num_layers": 8,
            "connector_num_learnable_registers": 128,
            "connector_positional_embedding_max_pos": [4096],
            "rope_type": "split",
            "frequencies_precision": "float64",
        },
        "vae": {
            "latent_channels": 128,
            "decoder_base_channels": 128,
            "spatial_padding_mode": "zeros",
            "encoder_blocks": [
                ["res_x", {"num_layers": 4}], ["compress_space_res", {"multiplier": 2}],
                ["res_x", {"num_layers": 6}], ["compress_time_res", {"multiplier": 2}],
                ["res_x", {"num_layers": 4}], ["compress_all_res", {"multiplier": 2}],
                ["res_x", {"num_layers": 2}], ["compress_all_res", {"multiplier": 1}],
                ["res_x", {"num_layers": 2}]
            ],
            "decoder_blocks": [
                ["res_x", {"num_layers": 4}], ["compress_all", {"residual": false, "multiplier": 2}],
                ["res_x", {"num_layers": 6}], ["compress_all", {"residual": false, "multiplier": 2}],
                ["res_x", {"num_layers": 4}], ["compress_time", {"multiplier": 1}],
                ["res_x", {"num_layers": 2}], ["compress_space", {"multiplier": 2}],
                ["res_x", {"num_layers": 2}]
            ]
        },
        "vocoder": {
            "vocoder": {
                "resblock": "AMP1", "stereo": true, "activation": "snakebeta",
                "resblock_kernel_sizes": [3, 7, 11],
                "resblock_dilation_sizes": [[1, 3, 5], [1, 3, 5], [1, 3, 5]],
                "use_tanh_at_final": false, "use_bias_at_final": false,
                "upsample_rates": [5, 2, 2, 2, 2, 2],
                "upsample_kernel_sizes": [11, 4, 4, 4, 4, 4],
                "upsample_initial_channel": 1536
            },
            "bwe": {
                "resblock": "AMP1", "stereo": true, "activation": "snakebeta",
                "resblock_kernel_sizes": [3, 7, 11],
                "resblock_dilation_sizes": [[1, 3, 5], [1, 3, 5], [1, 3, 5]],
                "use_tanh_at_final": false, "use_bias_at_final": false,
                "upsample_rates": [6, 5, 2, 2, 2],
                "upsample_kernel_sizes": [12, 11, 4, 4, 4],
                "upsample_initial_channel": 512,
                "input_sampling_rate": 16000, "output_sampling_rate": 48000,
                "n_fft": 512, "hop_length": 80, "num_mels": 64
            }
        }
    })
}

/// The `config` metadata of an LTX-2.5 22B transformer at its real sizes: the 2.3 widths with the
/// flags of the official 2.5 files (ltx-core 1.2.0; the 2.5 golden set's `config` carries the same
/// flag set at tiny widths).
pub fn ltx25_22b_config() -> serde_json::Value {
    let mut c = ltx23_22b_config();
    let t = &mut c["transformer"];
    for (k, v) in [
        ("ff_bias", false),
        ("audio_ff_bias", true),
        ("use_keyframes_abs_pos_embedding", true),
        ("av_cross_ada_norm", true),
        ("use_middle_indices_grid", true),
        ("causal_temporal_positioning", true),
    ] {
        t[k] = v.into();
    }
    c
}

/// A Gemma-4 unified text tower at the Gemma-3 12B widths (3840 wide, 48 layers, 16 query and 8
/// KV heads of 256, MLP 15360, a full-attention layer every sixth) with Gemma-4's own parts:
/// 512-wide heads and partial ("proportional", 1/4) RoPE on the full layers. An assumption for
/// benchmarks only: the real `gemma4-12b-ltx-v1` config has not been published.
pub fn gemma4_12b_assumed() -> serde_json::Value {
    let layer_types: Vec<&str> = (0..48)
        .map(|i| {
            if i % 6 == 5 {
                "full_attention"
            } else {
                "sliding_attention"
            }
        })
        .collect();
    serde_json::json!({
        "model_type": "gemma4_unified",
        "gemma_version": "gemma4-12b-ltx-v1",
        "text_config": {
            "model_type": "gemma4_unified_text",
            "vocab_size": 262_144, "hidden_size": 3840, "intermediate_size": 15360,
            "num_hidden_layers": 48, "num_attention_heads": 16, "num_key_value_heads": 8,
            "head_dim": 256, "global_head_dim": 512, "num_global_key_value_heads": null,
            "hidden_activation": "gelu_pytorch_tanh", "rms_norm_eps": 1e-6, "pad_token_id": 0,
            "attention_bias": false, "attention_k_eq_v": false, "num_kv_shared_layers": 0,
            "use_double_wide_mlp": false, "sliding_window": 1024, "layer_types": layer_types,
            "use_bidirectional_attention": "vision", "final_logit_softcapping": null,
            "rope_parameters": {
                "full_attention": {"partial_rotary_factor": 0.25, "rope_theta": 1_000_000.0,
                                   "rope_type": "proportional"},
                "sliding_attention": {"rope_theta": 10_000.0, "rope_type": "default"}
            }
        }
    })
}

/// The text tower a random model is built with.
#[derive(Debug, Clone)]
pub enum GemmaSize {
    Gemma3(Gemma3Config),
    Gemma4(Gemma4Config),
}

impl GemmaSize {
    pub fn num_hidden_layers(&self) -> usize {
        match self {
            Self::Gemma3(c) => c.num_hidden_layers,
            Self::Gemma4(c) => c.num_hidden_layers,
        }
    }

    fn truncate(&mut self, n: usize) {
        match self {
            Self::Gemma3(c) => {
                c.num_hidden_layers = n;
                if let Some(types) = &mut c.layer_types {
                    types.truncate(n);
                }
            }
            Self::Gemma4(c) => {
                c.num_hidden_layers = n;
                c.layer_types.truncate(n);
            }
        }
    }
}

#[derive(Debug, Clone)]
pub struct RandomModelOptions {
    pub size: ModelSize,
    /// DiT depth override (e.g. 1 to smoke-test 19B widths on the CPU).
    pub layers: Option<usize>,
    /// Gemma depth override.
    pub text_layers: Option<usize>,
    pub pipeline: PipelineKind,
    pub dtype: DType,
    pub seed: u64,
    /// Keep the prompt cache on (off by default: each run then pays for its text encode, as the
    /// official pipeline does).
    pub prompt_cache: bool,
    /// Lay the DiT out as the official FP8 checkpoint (e4m3 weights + scales in blocks 1-42;
    /// [`random::RandomBackend::with_fp8_layout`]) instead of the bf16 one.
    pub fp8_weights: bool,
    /// How the DiT's block linears are loaded (as from a real file).
    pub quantization: Quantization,
    /// How Gemma's projections are held.
    pub gemma_quantization: GemmaQuantization,
}

/// What was built, for the report.
pub struct RandomModel {
    pub engine: Engine,
    pub transformer: TransformerConfig,
    pub gemma: GemmaSize,
    /// Text context length the DiT cross-attends to.
    pub text_tokens: usize,
    /// Bytes the built DiT's weights hold ([`LtxModel::resident_bytes`]).
    pub dit_resident_bytes: u64,
    /// Bytes the built Gemma language model holds.
    pub gemma_resident_bytes: u64,
}

struct Sizes {
    config: serde_json::Value,
    upsampler: UpsamplerConfig,
    gemma: GemmaSize,
    max_length: usize,
    /// Tiny: the layout's tensor names (checkpoint, upsampler, Gemma).
    present: Option<[HashSet<String>; 3]>,
}

fn sizes(opts: &RandomModelOptions) -> Result<Sizes, GenError> {
    let bad = |m: String| GenError::Model(format!("random model: {m}"));
    let mut s = match opts.size {
        ModelSize::Tiny => {
            let l = demo::layout()?;
            let upsampler = serde_json::from_value(l.upsampler_config.clone())
                .map_err(|e| bad(format!("upsampler config: {e}")))?;
            let gemma = Gemma3Config::from_json(&l.gemma_config).map_err(|e| bad(e.to_string()))?;
            let names =
                |m: &std::collections::HashMap<String, Vec<usize>>| m.keys().cloned().collect();
            Sizes {
                present: Some([names(&l.model), names(&l.upsampler), names(&l.gemma)]),
                config: l.checkpoint_config,
                upsampler,
                gemma: GemmaSize::Gemma3(gemma),
                max_length: demo::demo_max_length(),
            }
        }
        ModelSize::Ltx2_19b => Sizes {
            // Every section absent: each component falls back to its documented 19B values.
            config: serde_json::json!({ "transformer": {} }),
            upsampler: UpsamplerConfig::ltx2_spatial_x2(),
            gemma: GemmaSize::Gemma3(Gemma3Config::gemma3_12b()),
            max_length: LTX2_MAX_LENGTH,
            present: None,
        },
        ModelSize::Ltx23_22b => Sizes {
            config: ltx23_22b_config(),
            // ltx-2.3-spatial-upscaler-x2-1.1: the 19B's sizes without the rational resampler.
            upsampler: UpsamplerConfig {
                rational_resampler: false,
                ..UpsamplerConfig::ltx2_spatial_x2()
            },
            gemma: GemmaSize::Gemma3(Gemma3Config::gemma3_12b()),
            max_length: LTX2_MAX_LENGTH,
            present: None,
        },
        ModelSize::Ltx25_22b => Sizes {
            config: ltx25_22b_config(),
            // The 2.5 x2 upscaler's config is not public: the 2.3 v1.1 layout.
            upsampler: UpsamplerConfig {
                rational_resampler: false,
                ..UpsamplerConfig::ltx2_spatial_x2()
            },
            gemma: GemmaSize::Gemma4(
                Gemma4Config::from_json(&gemma4_12b_assumed()).map_err(|e| bad(e.to_string()))?,
            ),
            max_length: LTX2_MAX_LENGTH,
            present: None,
        },
    };
    if let Some(n) = opts.layers {
        s.config["transformer"]["num_layers"] = n.into();
    }
    if let Some(n) = opts.text_layers {
        s.gemma.truncate(n);
    }
    Ok(s)
}

/// The checkpoint-absent suffixes of a size's random layout.
fn absent_suffixes(size: ModelSize) -> &'static [&'static str] {
    match size {
        ModelSize::Ltx23_22b | ModelSize::Ltx25_22b => random::ABSENT_SUFFIXES_23,
        _ => random::ABSENT_SUFFIXES_19B,
    }
}

/// Which file a `VarBuilder` of [`build`] reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum File {
    Checkpoint,
    Upsampler,
    Gemma,
}

impl File {
    /// Per-file offset of the random seed (kept from the first version: same weights per seed).
    fn salt(self) -> u64 {
        match self {
            Self::Checkpoint => 0,
            Self::Upsampler => 1,
            Self::Gemma => 2,
        }
    }
}

/// Every component of one model, built from one `VarBuilder` per file.
struct Built {
    models: Models,
    text: TextEncoder,
    transformer: TransformerConfig,
    dit_resident_bytes: u64,
    gemma_resident_bytes: u64,
}

fn build(
    opts: &RandomModelOptions,
    s: &Sizes,
    vb: impl Fn(File) -> VarBuilder<'static>,
) -> Result<Built, GenError> {
    let model_err = |what: &str, e: String| GenError::Model(format!("random {what}: {e}"));
    let ckpt = vb(File::Checkpoint);
    let upsampler = if opts.pipeline == PipelineKind::DistilledTwoStage {
        Some(
            LatentUpsampler::new(&s.upsampler, vb(File::Upsampler))
                .map_err(|e| model_err("upsampler", e.to_string()))?,
        )
    } else {
        None
    };
    let transformer = TransformerConfig::from_checkpoint_config(&s.config)
        .map_err(|e| model_err("transformer config", e.to_string()))?;
    let dit = LtxModel::new_quantized(
        &transformer,
        opts.quantization,
        ckpt.pp("model.diffusion_model"),
    )
    .map_err(|e| model_err("transformer", e.to_string()))?;
    let dit_resident_bytes = dit.resident_bytes();
    let models = Models::new(Box::new(dit), upsampler, &s.config, ckpt.clone())
        .map_err(|e| model_err("checkpoint", e.to_string()))?;
    let q = opts.gemma_quantization;
    let (gemma, gemma_resident_bytes): (GemmaTextModel, u64) = match &s.gemma {
        GemmaSize::Gemma3(c) => {
            let m = Gemma3TextModel::new_quantized(c, q, vb(File::Gemma).pp(GEMMA_PREFIX))
                .map_err(|e| model_err("gemma", e.to_string()))?;
            let bytes = m.resident_bytes();
            (m.into(), bytes)
        }
        GemmaSize::Gemma4(c) => {
            let m = Gemma4TextModel::new_quantized(c, q, vb(File::Gemma).pp(GEMMA4_PREFIX))
                .map_err(|e| model_err("gemma-4", e.to_string()))?;
            let bytes = m.resident_bytes();
            (m.into(), bytes)
        }
    };
    let tokenizer = tiny_tokenizer(s.max_length)?;
    let text_opts = TextEncoderOptions {
        max_length: s.max_length,
        cache_capacity: if opts.prompt_cache { 32 } else { 0 },
        ..Default::default()
    };
    let id = format!("random:{:?}:{}", opts.size, opts.seed);
    let text = TextEncoder::from_parts(tokenizer, gemma, &s.config, ckpt, &text_opts, id)
        .map_err(|e| model_err("text encoder", e.to_string()))?;
    Ok(Built {
        models,
        text,
        transformer,
        dit_resident_bytes,
        gemma_resident_bytes,
    })
}

/// Builds the random-weight model on `device` and wraps it in the serving engine.
pub fn random_engine(opts: &RandomModelOptions, device: &Device) -> Result<RandomModel, GenError> {
    let s = sizes(opts)?;
    random::seed_device(device, opts.seed)?;
    match (opts.quantization, opts.fp8_weights) {
        (Quantization::Fp8ScaledMm, false) => {
            return Err(GenError::Model(
                "fp8-scaled-mm needs FP8 weights (the FP8 checkpoint layout)".into(),
            ))
        }
        (Quantization::Fp8Cast, true) => {
            return Err(GenError::Model(
                "fp8-cast casts bf16 weights; the FP8 layout is FP8 already".into(),
            ))
        }
        _ => {}
    }
    let absent = absent_suffixes(opts.size);
    let vb = |file: File| {
        let names = s.present.as_ref().map(|p| match file {
            File::Checkpoint => p[0].clone(),
            File::Upsampler => p[1].clone(),
            File::Gemma => p[2].clone(),
        });
        let backend = RandomBackend::new(opts.seed.wrapping_add(file.salt()), names)
            .with_absent(absent)
            .with_fp8_layout(opts.fp8_weights && file == File::Checkpoint);
        VarBuilder::from_backend(Box::new(backend), opts.dtype, device.clone())
    };
    let built = build(opts, &s, vb)?;
    let generation = opts.size.generation();
    let info = ModelInfo {
        name: format!("random-{}", opts.size.name()),
        is_demo: true,
        pipeline: opts.pipeline,
        device: if device.is_cuda() {
            "cuda".into()
        } else {
            "cpu".into()
        },
        dtype: format!("{:?}", opts.dtype).to_lowercase(),
        generation: generation.display_name().to_string(),
        audio_sample_rate: built.models.vocoder_rate(),
        audio_input: built.models.audio_input(),
        auto_duration: false,
        lora_dir: None,
        transformer_file: None,
        default_inference_steps: PipelineParams::for_generation(generation).num_inference_steps,
        backends: ltx2_model::backends::report(device, opts.dtype, opts.quantization),
    };
    Ok(RandomModel {
        engine: Engine::from_parts(built.models, Box::new(built.text), info, generation),
        transformer: built.transformer,
        gemma: s.gemma,
        text_tokens: s.max_length,
        dit_resident_bytes: built.dit_resident_bytes,
        gemma_resident_bytes: built.gemma_resident_bytes,
    })
}

/// The demo's tiny Gemma tokenizer: no tokenizer with Gemma's 262k vocabulary is available
/// offline; its ids are valid rows of the 12B embedding and the prompt is padded to the same
/// context length, so the DiT and connectors do the real work (Gemma runs the prompt's tokens).
fn tiny_tokenizer(max_length: usize) -> Result<GemmaTokenizer, GenError> {
    let path = demo::temp_demo_dir().with_extension("tokenizer.json");
    std::fs::write(&path, demo::tokenizer_json())
        .map_err(|e| GenError::Model(format!("writing {}: {e}", path.display())))?;
    let tok = GemmaTokenizer::from_file(&path, max_length);
    let _ = std::fs::remove_file(&path);
    tok.map_err(|e| GenError::Model(format!("tokenizer: {e}")))
}
