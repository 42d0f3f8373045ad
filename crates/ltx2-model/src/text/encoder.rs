//! `TextEncoder`: prompt -> (video context, audio context), i.e. ltx-core's `encode_prompts` for
//! one prompt (tokenizer, Gemma, the feature extractor, both connectors), with a prompt cache.
//! The checkpoint config picks the feature extractor: V1 (LTX-2.0) feeds the same Gemma-wide
//! features to both connectors and the DiT projects them; V2 (LTX-2.3, 2.5) gives each connector its
//! own features at the DiT's inner width, so the contexts go straight into `attn2` / `audio_attn2`.
//!
//! Two layouts load: [`TextEncoder::load`] (an HF Gemma-3 folder + the single-file LTX-2.0 / 2.3
//! checkpoint) and [`TextEncoder::load_split`] (LTX-2.5's packed text-encoder file with Gemma,
//! tokenizer and projections, + the transformer file with the connectors and the config).
//!
//! Only the prompt's real tokens are run through Gemma and the feature extractor (at their padded
//! positions, so the numbers are those of the padded computation): padding never influences a
//! valid token (V1 pools its statistics over the valid tokens only, V2 is per token) and the
//! connector replaces it with registers anyway. For the real model that is ~n instead of 1024
//! tokens through 48 layers.

use std::path::Path;

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;

use super::cache::{CacheStats, PromptCache, PromptEmbeddings};
use super::connector::{ConnectorConfig, ConnectorKind, Embeddings1DConnector};
use super::feature_extractor::{FeatureExtractor, FeatureExtractorConfig, FeatureExtractorVariant};
use super::gemma::{geometry_from_assets, load_from_assets, GemmaSource, GemmaTextModel};
use super::gemma3::Gemma3Config;
use super::gemma_assets::GemmaAssets;
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
    Resident(Box<GemmaTextModel>),
    OnDemand(GemmaSource, GemmaQuantization),
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
        let geometry = FeatureExtractorConfig {
            hidden_size: gemma_cfg.hidden_size,
            num_hidden_states: gemma_cfg.num_hidden_states(),
        };
        let source = GemmaSource::Gemma3Folder(gemma_folder.to_path_buf());
        let gemma = match opts.gemma_residency {
            GemmaResidency::Resident => GemmaSlot::Resident(Box::new(source.load(
                opts.gemma_quantization,
                dtype,
                device,
            )?)),
            GemmaResidency::OnDemand => GemmaSlot::OnDemand(source, opts.gemma_quantization),
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
        Self::assemble(tokenizer, gemma, geometry, &config, vb, opts, model_id)
    }

    /// The split layout of LTX-2.5: `text_encoder`, the packed text-encoder file (Gemma weights,
    /// `gemma_config`, tokenizer bytes, `text_embedding_projection.*`) or an HF Gemma folder;
    /// `transformer`, the transformer file (connectors under `model.diffusion_model.*`, their
    /// `config.transformer`, and `gemma_source_checkpoint`, checked against the Gemma config like
    /// ltx-core's `_check_gemma_version`). The projections are looked up in both files, as ltx-core
    /// merges them into one state dict.
    pub fn load_split(
        text_encoder: &Path,
        transformer: &Path,
        opts: &TextEncoderOptions,
        dtype: DType,
        device: &Device,
    ) -> Result<Self, TextError> {
        let assets = GemmaAssets::load(text_encoder)?;
        let metadata = checkpoint::read_metadata(transformer)?;
        check_gemma_version(&metadata, &assets, transformer)?;
        let tokenizer = assets.tokenizer(opts.max_length)?;
        let geometry = geometry_from_assets(&assets)?;
        let gemma = match opts.gemma_residency {
            GemmaResidency::Resident => GemmaSlot::Resident(Box::new(load_from_assets(
                &assets,
                opts.gemma_quantization,
                dtype,
                device,
            )?)),
            GemmaResidency::OnDemand => GemmaSlot::OnDemand(
                GemmaSource::Assets(text_encoder.to_path_buf()),
                opts.gemma_quantization,
            ),
        };
        let config = match metadata.get("config") {
            Some(text) => serde_json::from_str(text).map_err(|e| {
                TextError::Config(format!(
                    "{}: `config` metadata is not JSON: {e}",
                    transformer.display()
                ))
            })?,
            None => serde_json::json!({}),
        };
        let mut files = vec![transformer.to_path_buf()];
        if text_encoder.is_file() {
            files.push(text_encoder.to_path_buf());
        }
        // SAFETY: mmapped read-only; the files must not change while loaded.
        let vb = unsafe { VarBuilder::from_mmaped_safetensors(&files, dtype, device)? };
        // The cache keys on everything that changes the contexts (FP8 Gemma gives other numbers).
        let model_id = format!(
            "{}|{}|{}|{dtype:?}|gemma-{}",
            text_encoder.display(),
            transformer.display(),
            opts.max_length,
            opts.gemma_quantization
        );
        Self::assemble(tokenizer, gemma, geometry, &config, vb, opts, model_id)
    }

    /// Builds the encoder from a tokenizer, a built Gemma and a `VarBuilder` at the LTX-2
    /// checkpoint root (feature extractor + connectors) with its `config` JSON: e.g. random
    /// weights generated in memory for benchmarks. `model_id` keys the prompt cache.
    pub fn from_parts(
        tokenizer: GemmaTokenizer,
        gemma: impl Into<GemmaTextModel>,
        config: &serde_json::Value,
        vb: VarBuilder,
        opts: &TextEncoderOptions,
        model_id: String,
    ) -> Result<Self, TextError> {
        let gemma = gemma.into();
        let geometry = gemma.geometry();
        let slot = GemmaSlot::Resident(Box::new(gemma));
        Self::assemble(tokenizer, slot, geometry, config, vb, opts, model_id)
    }

    fn assemble(
        tokenizer: GemmaTokenizer,
        gemma: GemmaSlot,
        gemma_geometry: FeatureExtractorConfig,
        config: &serde_json::Value,
        vb: VarBuilder,
        opts: &TextEncoderOptions,
        model_id: String,
    ) -> Result<Self, TextError> {
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
            GemmaSlot::OnDemand(source, q) => source
                .load(*q, self.dtype, &self.device)?
                .forward(&ids, None, pad)?,
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

    /// Which feature extractor the checkpoint selected (V1: LTX-2.0, V2: LTX-2.3 / 2.5).
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

/// The `gemma_source_checkpoint` rule of ltx-core 1.2.0 (`encoder_configurator._check_gemma_version`)
/// on the transformer file's metadata against the Gemma config:
///
/// * a declared `gemma_source_checkpoint.gemma_version` must equal the config's `gemma_version`;
/// * without one, a `model_version` >= 2.4.0 must declare it (unless the Gemma config has no
///   `gemma_version` either: then only a warning);
/// * older checkpoints must be paired with a Gemma-3 config.
pub fn check_gemma_version(
    transformer_metadata: &std::collections::HashMap<String, String>,
    assets: &GemmaAssets,
    transformer: &Path,
) -> Result<(), TextError> {
    let fail = |msg: String| TextError::Config(format!("{}: {msg}", transformer.display()));
    let actual = assets.config.get("gemma_version").filter(|v| !v.is_null());
    if let Some(raw) = transformer_metadata.get("gemma_source_checkpoint") {
        // ltx-core JSON-decodes every metadata value it can.
        let declared: serde_json::Value =
            serde_json::from_str(raw).unwrap_or_else(|_| serde_json::Value::String(raw.clone()));
        let serde_json::Value::Object(declared) = declared else {
            return Err(fail(format!(
                "gemma_source_checkpoint is not a JSON object: {raw}"
            )));
        };
        let expected = declared.get("gemma_version").filter(|v| !v.is_null());
        if expected != actual {
            return Err(fail(format!(
                "Gemma version mismatch: the checkpoint's gemma_source_checkpoint expects                  gemma_version={}, but the Gemma config of {} has gemma_version={}",
                python_repr(expected),
                assets.source.display(),
                python_repr(actual)
            )));
        }
        return Ok(());
    }
    let model_version = transformer_metadata.get("model_version");
    if let Some(version) = model_version {
        if parse_model_version(version).as_slice() >= [2, 4, 0].as_slice() {
            if actual.is_none() {
                tracing::warn!(
                    "{}: model_version {version} requires gemma_source_checkpoint.gemma_version                      but declares none, and the Gemma config of {} has no gemma_version either;                      skipping the version check",
                    transformer.display(),
                    assets.source.display()
                );
                return Ok(());
            }
            return Err(fail(format!(
                "model_version {version} must declare gemma_source_checkpoint.gemma_version                  (the Gemma config of {} has gemma_version={})",
                assets.source.display(),
                python_repr(actual)
            )));
        }
    }
    match assets.model_type() {
        Some("gemma3") => Ok(()),
        other => Err(fail(format!(
            "no gemma_source_checkpoint (model_version {}): expected a Gemma-3 config              (model_type 'gemma3') at {}, got model_type {}",
            model_version.map_or("None", String::as_str),
            assets.source.display(),
            other.map_or("None".to_string(), |t| format!("'{t}'"))
        ))),
    }
}

/// ltx-core's `parse_model_version`: the leading dot-separated integer components.
fn parse_model_version(version: &str) -> Vec<u64> {
    version
        .split('.')
        .map_while(|part| {
            (!part.is_empty() && part.bytes().all(|b| b.is_ascii_digit()))
                .then(|| part.parse().ok())
                .flatten()
        })
        .collect()
}

/// A JSON value the way Python's `repr` shows it in ltx-core's message (`'x'`, `None`).
fn python_repr(value: Option<&serde_json::Value>) -> String {
    match value {
        None => "None".into(),
        Some(serde_json::Value::String(s)) => format!("'{s}'"),
        Some(v) => v.to_string(),
    }
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
    fn model_versions_compare_like_ltx_core() {
        assert_eq!(parse_model_version("2.5.0"), vec![2, 5, 0]);
        assert_eq!(parse_model_version("2.3.rc1"), vec![2, 3]);
        assert_eq!(parse_model_version("2.4-rc2"), vec![2]);
        assert!(parse_model_version("2.4") < vec![2, 4, 0]);
        assert!(parse_model_version("2.10.1") >= vec![2, 4, 0]);
    }

    #[test]
    fn text_encoder_can_be_shared_between_threads() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<TextEncoder>();
    }
}
