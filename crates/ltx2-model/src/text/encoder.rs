//! `TextEncoder`: prompt -> (video context, audio context), i.e. ltx-core's `encode_prompts` for
//! one prompt (tokenizer, Gemma-3, the feature extractor, both connectors), with a prompt cache.
//! The checkpoint config picks the feature extractor: V1 (LTX-2.0) feeds the same Gemma-wide
//! features to both connectors and the DiT projects them; V2 (LTX-2.3) gives each connector its own
//! features at the DiT's inner width, so the contexts go straight into `attn2` / `audio_attn2`.
//!
//! Only the prompt's real tokens are run through Gemma and the feature extractor (at their padded
//! positions, so the numbers are those of the padded computation): padding never influences a
//! valid token (V1 pools its statistics over the valid tokens only, V2 is per token) and the
//! connector replaces it with registers anyway. For the real model that is ~n instead of 1024
//! tokens through 48 layers.

use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;

use super::cache::{CacheStats, PromptCache, PromptEmbeddings};
use super::connector::{ConnectorConfig, ConnectorKind, Embeddings1DConnector};
use super::feature_extractor::{FeatureExtractor, FeatureExtractorConfig, FeatureExtractorVariant};
use super::gemma3::{Gemma3Config, Gemma3TextModel};
use super::tokenizer::{GemmaTokenizer, LTX2_MAX_LENGTH};
use super::TextError;
use crate::checkpoint;
use crate::quantization::GemmaQuantization;

/// Where the Gemma weights live between prompts (see docs/TEXT_ENCODER_MEMORY.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum GemmaResidency {
    /// Loaded once and kept on the device (bf16 12B: ~24 GB). Fastest; the default.
    #[default]
    Resident,
    /// Loaded from the (page-cached, mmapped) folder on every cache miss and dropped right after,
    /// leaving the device memory to the DiT and VAEs between prompts.
    OnDemand,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TextEncoderOptions {
    /// Tokenizer padding/truncation length = context length (1024 for LTX-2).
    pub max_length: usize,
    /// Prompts kept in the LRU cache (0 disables it).
    pub cache_capacity: usize,
    pub gemma_residency: GemmaResidency,
    /// How Gemma's projections are held (bf16 as ltx-core, or per-tensor FP8 at half the bytes).
    pub gemma_quantization: GemmaQuantization,
}

impl Default for TextEncoderOptions {
    fn default() -> Self {
        Self {
            max_length: LTX2_MAX_LENGTH,
            cache_capacity: 32,
            gemma_residency: GemmaResidency::Resident,
            gemma_quantization: GemmaQuantization::None,
        }
    }
}

#[derive(Debug)]
enum GemmaSlot {
    Resident(Box<Gemma3TextModel>),
    OnDemand(PathBuf, GemmaQuantization),
}

#[derive(Debug)]
pub struct TextEncoder {
    tokenizer: GemmaTokenizer,
    gemma: GemmaSlot,
    feature_extractor: FeatureExtractor,
    video_connector: Embeddings1DConnector,
    audio_connector: Embeddings1DConnector,
    cache: PromptCache,
    model_id: String,
    dtype: DType,
    device: Device,
}

impl TextEncoder {
    /// `gemma_folder`: the HF Gemma-3 folder (`tokenizer.json`, `config.json`, safetensors);
    /// `checkpoint`: the LTX-2 single-file checkpoint (feature extractor + connectors + `config`).
    pub fn load(
        gemma_folder: &Path,
        checkpoint: &Path,
        opts: &TextEncoderOptions,
        dtype: DType,
        device: &Device,
    ) -> Result<Self, TextError> {
        let tokenizer = GemmaTokenizer::from_folder(gemma_folder, opts.max_length)?;
        let gemma_cfg = Gemma3Config::from_folder(gemma_folder)?;
        let gemma = match opts.gemma_residency {
            GemmaResidency::Resident => {
                GemmaSlot::Resident(Box::new(Gemma3TextModel::from_folder_quantized(
                    gemma_folder,
                    opts.gemma_quantization,
                    dtype,
                    device,
                )?))
            }
            GemmaResidency::OnDemand => {
                GemmaSlot::OnDemand(gemma_folder.to_path_buf(), opts.gemma_quantization)
            }
        };
        let config = checkpoint::read_config(checkpoint)?.unwrap_or_else(|| serde_json::json!({}));
        // SAFETY: mmapped read-only; the checkpoint must not change while loaded.
        let vb = unsafe { VarBuilder::from_mmaped_safetensors(&[checkpoint], dtype, device)? };
        // The cache keys on everything that changes the contexts (FP8 Gemma gives other numbers).
        let model_id = format!(
            "{}|{}|{}|{dtype:?}|gemma-{}",
            gemma_folder.display(),
            checkpoint.display(),
            opts.max_length,
            opts.gemma_quantization
        );
        Self::assemble(tokenizer, gemma, &gemma_cfg, &config, vb, opts, model_id)
    }

    /// Builds the encoder from a tokenizer, a built Gemma and a `VarBuilder` at the LTX-2
    /// checkpoint root (feature extractor + connectors) with its `config` JSON: e.g. random
    /// weights generated in memory for benchmarks. `model_id` keys the prompt cache.
    pub fn from_parts(
        tokenizer: GemmaTokenizer,
        gemma: Gemma3TextModel,
        config: &serde_json::Value,
        vb: VarBuilder,
        opts: &TextEncoderOptions,
        model_id: String,
    ) -> Result<Self, TextError> {
        let gemma_cfg = gemma.config().clone();
        let slot = GemmaSlot::Resident(Box::new(gemma));
        Self::assemble(tokenizer, slot, &gemma_cfg, config, vb, opts, model_id)
    }

    fn assemble(
        tokenizer: GemmaTokenizer,
        gemma: GemmaSlot,
        gemma_cfg: &Gemma3Config,
        config: &serde_json::Value,
        vb: VarBuilder,
        opts: &TextEncoderOptions,
        model_id: String,
    ) -> Result<Self, TextError> {
        let gemma_geometry = FeatureExtractorConfig {
            hidden_size: gemma_cfg.hidden_size,
            num_hidden_states: gemma_cfg.num_hidden_states(),
        };
        let variant = FeatureExtractorVariant::from_checkpoint_config(config, gemma_geometry)?;
        let (video_width, audio_width) = variant.widths();
        let connector = |kind: ConnectorKind, features: usize| {
            let cfg = ConnectorConfig::from_checkpoint_config(config, kind)?;
            check_connector_width(&cfg, kind, features, &variant)?;
            Ok::<_, TextError>(Embeddings1DConnector::new(
                &cfg,
                vb.pp(kind.checkpoint_prefix()),
            )?)
        };
        let video_connector = connector(ConnectorKind::Video, video_width)?;
        let audio_connector = connector(ConnectorKind::Audio, audio_width)?;
        let feature_extractor = FeatureExtractor::new(variant, vb.pp("text_embedding_projection"))?;
        Ok(Self {
            tokenizer,
            gemma,
            feature_extractor,
            video_connector,
            audio_connector,
            cache: PromptCache::new(opts.cache_capacity),
            model_id,
            dtype: vb.dtype(),
            device: vb.device().clone(),
        })
    }

    /// The contexts for `prompt`, from the cache when this exact prompt was encoded before.
    pub fn encode(&self, prompt: &str) -> Result<PromptEmbeddings, TextError> {
        if let Some(hit) = self.cache.get(&self.model_id, prompt) {
            return Ok(hit);
        }
        let out = self.encode_uncached(prompt)?;
        self.cache.insert(&self.model_id, prompt, out.clone());
        Ok(out)
    }

    /// [`Self::encode`] without touching the cache.
    pub fn encode_uncached(&self, prompt: &str) -> Result<PromptEmbeddings, TextError> {
        let tokens = self.tokenizer.encode(prompt)?;
        let (seq_len, pad, n) = (
            tokens.input_ids.len(),
            tokens.num_padding(),
            tokens.num_valid(),
        );
        let ids = tokens.valid_ids_tensor(&self.device)?;
        let states = match &self.gemma {
            GemmaSlot::Resident(gemma) => gemma.forward(&ids, None, pad)?,
            GemmaSlot::OnDemand(folder, q) => {
                Gemma3TextModel::from_folder_quantized(folder, *q, self.dtype, &self.device)?
                    .forward(&ids, None, pad)?
            }
        };
        let mask = Tensor::ones((1, n), DType::U32, &self.device)?;
        let features = self.feature_extractor.forward(&states, &mask)?;
        Ok(PromptEmbeddings {
            video_context: self
                .video_connector
                .forward_compact(&features.video, seq_len)?,
            audio_context: self
                .audio_connector
                .forward_compact(&features.audio, seq_len)?,
            num_tokens: n,
            truncated: tokens.truncated,
        })
    }

    pub fn tokenizer(&self) -> &GemmaTokenizer {
        &self.tokenizer
    }

    /// Which feature extractor the checkpoint selected (V1: LTX-2.0, V2: LTX-2.3).
    pub fn feature_extractor(&self) -> &FeatureExtractor {
        &self.feature_extractor
    }

    pub fn cache_stats(&self) -> CacheStats {
        self.cache.stats()
    }

    pub fn clear_cache(&self) {
        self.cache.clear()
    }

    /// Identifies the weights and settings; the cache key includes it.
    pub fn model_id(&self) -> &str {
        &self.model_id
    }
}

/// The connectors run at the width of the features they are given (V1: Gemma's, V2: the DiT's);
/// ltx-core would only fail inside the first attention, so say which keys disagree.
fn check_connector_width(
    cfg: &ConnectorConfig,
    kind: ConnectorKind,
    features: usize,
    variant: &FeatureExtractorVariant,
) -> Result<(), TextError> {
    if cfg.inner_dim() == features {
        return Ok(());
    }
    let keys = match kind {
        ConnectorKind::Video => "connector_num_attention_heads x connector_attention_head_dim",
        ConnectorKind::Audio => {
            "audio_connector_num_attention_heads x audio_connector_attention_head_dim"
        }
    };
    Err(TextError::Config(format!(
        "{kind:?} connector: config.transformer {keys} = {} but {} gives it {features}-wide \
         features",
        cfg.inner_dim(),
        variant.name()
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connector_width_must_match_the_features() {
        let variant = FeatureExtractorVariant::V1(FeatureExtractorConfig::ltx2_19b());
        let cfg = ConnectorConfig::ltx2_19b();
        assert!(check_connector_width(&cfg, ConnectorKind::Video, 3840, &variant).is_ok());
        let msg = check_connector_width(&cfg, ConnectorKind::Audio, 2048, &variant)
            .unwrap_err()
            .to_string();
        assert!(msg.contains("audio_connector_num_attention_heads"), "{msg}");
    }

    #[test]
    fn text_encoder_can_be_shared_between_threads() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<TextEncoder>();
    }
}
