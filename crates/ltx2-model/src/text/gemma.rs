//! Either Gemma text tower behind one interface, and where to (re)load it from. The config's
//! `model_type` picks the family (`gemma3` -> Gemma-3, `gemma4_unified` -> Gemma-4), as ltx-core's
//! `get_gemma_ops` does; nothing else is accepted for encoding.

use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Result, Tensor};
use candle_nn::VarBuilder;

use super::feature_extractor::FeatureExtractorConfig;
use super::gemma3::{Gemma3Config, Gemma3TextModel};
use super::gemma4::{Gemma4TextModel, GEMMA4_UNIFIED};
use super::gemma_assets::GemmaAssets;
use super::TextError;
use crate::quantization::GemmaQuantization;

/// Where ltx-core's Gemma-3 key ops find the language model of a packed Gemma-3 file.
const GEMMA3_PACKED_PREFIX: &str = "language_model.model";

#[derive(Debug, Clone)]
pub enum GemmaTextModel {
    Gemma3(Gemma3TextModel),
    Gemma4(Gemma4TextModel),
}

impl From<Gemma3TextModel> for GemmaTextModel {
    fn from(model: Gemma3TextModel) -> Self {
        Self::Gemma3(model)
    }
}

impl From<Gemma4TextModel> for GemmaTextModel {
    fn from(model: Gemma4TextModel) -> Self {
        Self::Gemma4(model)
    }
}

impl GemmaTextModel {
    /// The geometry the feature extractor reads (hidden size, layers + 1).
    pub fn geometry(&self) -> FeatureExtractorConfig {
        match self {
            Self::Gemma3(m) => FeatureExtractorConfig {
                hidden_size: m.config().hidden_size,
                num_hidden_states: m.config().num_hidden_states(),
            },
            Self::Gemma4(m) => FeatureExtractorConfig {
                hidden_size: m.config().hidden_size,
                num_hidden_states: m.config().num_hidden_states(),
            },
        }
    }

    /// Bytes the language model holds (embedding and norms as loaded, projections as held).
    pub fn resident_bytes(&self) -> u64 {
        match self {
            Self::Gemma3(m) => m.resident_bytes(),
            Self::Gemma4(m) => m.resident_bytes(),
        }
    }

    /// All hidden states; see [`Gemma3TextModel::forward`] / [`Gemma4TextModel::forward`].
    pub fn forward(
        &self,
        input_ids: &Tensor,
        attention_mask: Option<&Tensor>,
        position_offset: usize,
    ) -> Result<Vec<Tensor>> {
        match self {
            Self::Gemma3(m) => m.forward(input_ids, attention_mask, position_offset),
            Self::Gemma4(m) => m.forward(input_ids, attention_mask, position_offset),
        }
    }
}

/// How a Gemma is (re)loaded: an HF Gemma-3 folder (the LTX-2.0 / 2.3 layout), or Gemma assets
/// (a packed text-encoder file or an HF folder of any supported family).
#[derive(Debug, Clone)]
pub enum GemmaSource {
    Gemma3Folder(PathBuf),
    Assets(PathBuf),
}

impl GemmaSource {
    pub fn path(&self) -> &Path {
        match self {
            Self::Gemma3Folder(p) | Self::Assets(p) => p,
        }
    }

    /// The text tower with its projections held as `q` says.
    pub fn load(
        &self,
        q: GemmaQuantization,
        dtype: DType,
        device: &Device,
    ) -> std::result::Result<GemmaTextModel, TextError> {
        match self {
            Self::Gemma3Folder(folder) => {
                Ok(Gemma3TextModel::from_folder_quantized(folder, q, dtype, device)?.into())
            }
            Self::Assets(path) => load_from_assets(&GemmaAssets::load(path)?, q, dtype, device),
        }
    }
}

/// The text tower of `assets`, by the config's `model_type`, its projections held as `q` says
/// (both families quantize the same q/k/v/o and gate/up/down projections).
pub fn load_from_assets(
    assets: &GemmaAssets,
    q: GemmaQuantization,
    dtype: DType,
    device: &Device,
) -> std::result::Result<GemmaTextModel, TextError> {
    match assets.model_type() {
        Some(GEMMA4_UNIFIED) => {
            Ok(Gemma4TextModel::load_quantized(assets, q, dtype, device)?.into())
        }
        Some("gemma3") => {
            let cfg = Gemma3Config::from_json(&assets.config)?;
            // SAFETY: mmapped read-only; the files must not change while loaded.
            let vb = unsafe {
                VarBuilder::from_mmaped_safetensors(&assets.weight_paths, dtype, device)?
            };
            // A folder keeps the HF names; ltx-core's Gemma-3 ops read packed files under
            // `language_model.model.` like the official 12B folder.
            let prefix = ["language_model.model", "model.language_model", "model"]
                .into_iter()
                .find(|p| vb.contains_tensor(&format!("{p}.embed_tokens.weight")))
                .unwrap_or(GEMMA3_PACKED_PREFIX);
            Ok(Gemma3TextModel::new_quantized(&cfg, q, vb.pp(prefix))
                .map_err(|e| {
                    TextError::MissingWeights(format!("{}: {e}", assets.source.display()))
                })?
                .into())
        }
        other => Err(TextError::Config(format!(
            "{}: Gemma model_type {other:?} cannot encode prompts (supported: gemma3, \
             {GEMMA4_UNIFIED})",
            assets.source.display()
        ))),
    }
}

/// The `(hidden_size, layers + 1)` of the Gemma `assets` describe, without loading weights.
pub fn geometry_from_assets(
    assets: &GemmaAssets,
) -> std::result::Result<FeatureExtractorConfig, TextError> {
    match assets.model_type() {
        Some(GEMMA4_UNIFIED) => {
            let cfg = super::gemma4::Gemma4Config::from_json(&assets.config)?;
            Ok(FeatureExtractorConfig {
                hidden_size: cfg.hidden_size,
                num_hidden_states: cfg.num_hidden_states(),
            })
        }
        Some("gemma3") => {
            let cfg = Gemma3Config::from_json(&assets.config)?;
            Ok(FeatureExtractorConfig {
                hidden_size: cfg.hidden_size,
                num_hidden_states: cfg.num_hidden_states(),
            })
        }
        other => Err(TextError::Config(format!(
            "{}: Gemma model_type {other:?} cannot encode prompts (supported: gemma3, \
             {GEMMA4_UNIFIED})",
            assets.source.display()
        ))),
    }
}
