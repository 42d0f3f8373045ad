//! Gemma-3 text model (the language model of `Gemma3ForConditionalGeneration`) returning every
//! hidden state, as ltx-core's `GemmaTextEncoder.encode` uses it: no logits, no KV cache.
//!
//! `hidden_states` follows HF: `[embed_tokens(ids) * sqrt(hidden), output of layer 0, ...,
//! output of layer L-2, norm(output of layer L-1)]` — `L + 1` tensors, the last one after the
//! final norm.

pub mod attention;
pub mod config;
pub mod layer;

use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Module, Result, Tensor};
use candle_nn::{Embedding, VarBuilder};

pub use attention::RopeTable;
pub(crate) use attention::{default_inv_freq, grouped_attention};
pub use config::{Gemma3Config, HiddenActivation, LayerType};
pub(crate) use layer::projection;
use layer::Gemma3DecoderLayer;
pub use layer::{GemmaMlp, GemmaRmsNorm};

use crate::quantization::GemmaQuantization;
use crate::text::TextError;

/// Prefixes under which HF folders store the language model, most specific first:
/// `Gemma3ForConditionalGeneration` as saved by transformers < 4.52 (the official 12B folders),
/// by transformers >= 4.52, and a text-only `Gemma3ForCausalLM`.
const LM_PREFIXES: [&str; 3] = ["language_model.model", "model.language_model", "model"];

#[derive(Debug, Clone)]
pub struct Gemma3TextModel {
    embed_tokens: Embedding,
    layers: Vec<Gemma3DecoderLayer>,
    norm: GemmaRmsNorm,
    cfg: Gemma3Config,
    /// `sqrt(hidden_size)` rounded to the weight dtype (HF: `embed_scale.to(dtype)` = 62.0 in bf16).
    embed_scale: f64,
}

impl Gemma3TextModel {
    /// `vb` is rooted at the language-model prefix (its children are `embed_tokens`, `layers`, `norm`).
    pub fn new(cfg: &Gemma3Config, vb: VarBuilder) -> Result<Self> {
        Self::new_quantized(cfg, GemmaQuantization::None, vb)
    }

    /// [`Self::new`] with the layers' projections held as `q` says.
    pub fn new_quantized(cfg: &Gemma3Config, q: GemmaQuantization, vb: VarBuilder) -> Result<Self> {
        let embed = vb
            .pp("embed_tokens")
            .get((cfg.vocab_size, cfg.hidden_size), "weight")?;
        let layers = (0..cfg.num_hidden_layers)
            .map(|i| Gemma3DecoderLayer::new(cfg, q, vb.pp("layers").pp(i)))
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            embed_tokens: Embedding::new(embed, cfg.hidden_size),
            layers,
            norm: GemmaRmsNorm::new(cfg.hidden_size, cfg.rms_norm_eps, vb.pp("norm"))?,
            cfg: cfg.clone(),
            embed_scale: round_to_dtype((cfg.hidden_size as f64).sqrt(), vb.dtype()),
        })
    }

    /// Loads the language model from an HF Gemma-3 folder (`config.json` + `*.safetensors`,
    /// sharded or not). Vision-tower shards are mapped but never read.
    pub fn from_folder(
        folder: &Path,
        dtype: DType,
        device: &Device,
    ) -> std::result::Result<Self, TextError> {
        Self::from_folder_quantized(folder, GemmaQuantization::None, dtype, device)
    }

    /// [`Self::from_folder`] with the layers' projections held as `q` says.
    pub fn from_folder_quantized(
        folder: &Path,
        q: GemmaQuantization,
        dtype: DType,
        device: &Device,
    ) -> std::result::Result<Self, TextError> {
        let cfg = Gemma3Config::from_folder(folder)?;
        let files = safetensors_files(folder)?;
        // SAFETY: the files are mmapped read-only; they must not be modified while loaded.
        let vb = unsafe { VarBuilder::from_mmaped_safetensors(&files, dtype, device)? };
        let prefix = LM_PREFIXES
            .iter()
            .find(|p| vb.contains_tensor(&format!("{p}.embed_tokens.weight")))
            .ok_or_else(|| {
                TextError::MissingWeights(format!(
                    "{}: no `embed_tokens.weight` under any of {LM_PREFIXES:?}",
                    folder.display()
                ))
            })?;
        Ok(Self::new_quantized(&cfg, q, vb.pp(*prefix))?)
    }

    /// Bytes the language model holds (embedding and norms as loaded, projections as held).
    pub fn resident_bytes(&self) -> u64 {
        crate::linear::tensor_bytes(self.embed_tokens.embeddings())
            + self.layers.iter().map(|l| l.resident_bytes()).sum::<u64>()
            + self.norm.resident_bytes()
    }

    pub fn config(&self) -> &Gemma3Config {
        &self.cfg
    }

    /// All `L + 1` hidden states `(B, T, hidden)` for `input_ids (B, T)`.
    ///
    /// `attention_mask (B, T)`: 1 = token, 0 = padding (keys at padding are never attended; the
    /// states of padded query rows are meaningless). `position_offset`: position of the first
    /// column — HF numbers the padded sequence from 0, so running only the `n` valid tokens of a
    /// left-padded prompt of length `T` with offset `T - n` reproduces its states exactly.
    pub fn forward(
        &self,
        input_ids: &Tensor,
        attention_mask: Option<&Tensor>,
        position_offset: usize,
    ) -> Result<Vec<Tensor>> {
        let (b, t) = input_ids.dims2()?;
        let device = input_ids.device();
        let dtype = self.embed_tokens.embeddings().dtype();
        let key_valid = key_valid_rows(attention_mask, b, t)?;
        let cfg = &self.cfg;
        let causal = |window| MaskPattern::Causal { window };
        let global_mask = additive_mask(b, t, causal(None), key_valid.as_deref(), device)?;
        let local_mask = if t > cfg.sliding_window {
            let window = causal(Some(cfg.sliding_window));
            additive_mask(b, t, window, key_valid.as_deref(), device)?
        } else {
            global_mask.clone()
        };
        let factor = cfg.rope_scaling.as_ref().map(|s| s.factor);
        let rope_global = RopeTable::new(
            cfg.rope_theta,
            factor,
            cfg.head_dim,
            position_offset,
            t,
            dtype,
            device,
        )?;
        let rope_local = RopeTable::new(
            cfg.rope_local_base_freq,
            None,
            cfg.head_dim,
            position_offset,
            t,
            dtype,
            device,
        )?;

        let mut x = (self.embed_tokens.forward(input_ids)? * self.embed_scale)?;
        let mut states = Vec::with_capacity(self.layers.len() + 1);
        for (i, layer) in self.layers.iter().enumerate() {
            states.push(x.clone());
            let (rope, mask) = match cfg.layer_type(i) {
                LayerType::FullAttention => (&rope_global, &global_mask),
                LayerType::SlidingAttention => (&rope_local, &local_mask),
            };
            x = layer.forward(&x, rope, mask)?;
        }
        states.push(self.norm.forward(&x)?);
        Ok(states)
    }
}

/// Which keys a query may see, besides the key padding (HF `masking_utils` patterns).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum MaskPattern {
    /// `j <= i`, and `i - j < window` on sliding layers.
    Causal { window: Option<usize> },
    /// Every key (`is_causal = False`), and `|i - j| <= window` on sliding layers.
    Bidirectional { window: Option<usize> },
}

impl MaskPattern {
    fn visible(self, i: usize, j: usize) -> bool {
        match self {
            Self::Causal { window } => j <= i && window.is_none_or(|w| i - j < w),
            Self::Bidirectional { window } => window.is_none_or(|w| i.abs_diff(j) <= w),
        }
    }
}

/// Additive f32 mask `(B, 1, T, T)`: key `j` is visible from query `i` iff `pattern` allows it and
/// `j` is not padding. A finite minimum (not -inf) keeps fully-masked padded rows finite, so they
/// cannot leak NaN into valid rows through `P @ V`.
pub(crate) fn additive_mask(
    b: usize,
    t: usize,
    pattern: MaskPattern,
    key_valid: Option<&[Vec<f32>]>,
    device: &Device,
) -> Result<Tensor> {
    let mut data = vec![0f32; b * t * t];
    for bi in 0..b {
        for i in 0..t {
            for j in 0..t {
                let visible = pattern.visible(i, j) && key_valid.is_none_or(|v| v[bi][j] != 0.0);
                if !visible {
                    data[(bi * t + i) * t + j] = f32::MIN;
                }
            }
        }
    }
    Tensor::from_vec(data, (b, 1, t, t), device)
}

/// `attention_mask (B, T)` as rows of f32 (1 = token), checked against `input_ids (B, T)`.
pub(crate) fn key_valid_rows(
    attention_mask: Option<&Tensor>,
    b: usize,
    t: usize,
) -> Result<Option<Vec<Vec<f32>>>> {
    let Some(mask) = attention_mask else {
        return Ok(None);
    };
    if mask.dims() != [b, t] {
        candle_core::bail!(
            "attention_mask {:?} does not match input_ids {:?}",
            mask.dims(),
            [b, t]
        );
    }
    Ok(Some(mask.to_dtype(DType::F32)?.to_vec2::<f32>()?))
}

/// `x` rounded to the precision of `dtype` (PyTorch casts scalar scales to the weight dtype).
pub(crate) fn round_to_dtype(x: f64, dtype: DType) -> f64 {
    match dtype {
        DType::BF16 => half::bf16::from_f64(x).to_f64(),
        DType::F16 => half::f16::from_f64(x).to_f64(),
        DType::F32 => x as f32 as f64,
        _ => x,
    }
}

/// The safetensors files of an HF folder: those named by `model.safetensors.index.json` when present
/// (in its order), else every `*.safetensors` in the folder, sorted.
pub(crate) fn safetensors_files(folder: &Path) -> std::result::Result<Vec<PathBuf>, TextError> {
    let index = folder.join("model.safetensors.index.json");
    let fail = |e: String| TextError::MissingWeights(format!("{}: {e}", folder.display()));
    let mut files: Vec<PathBuf> = Vec::new();
    if index.exists() {
        let text = std::fs::read_to_string(&index).map_err(|e| fail(e.to_string()))?;
        let json: serde_json::Value =
            serde_json::from_str(&text).map_err(|e| fail(e.to_string()))?;
        let map = json
            .get("weight_map")
            .and_then(|m| m.as_object())
            .ok_or_else(|| fail("model.safetensors.index.json has no `weight_map`".into()))?;
        for file in map.values().filter_map(|v| v.as_str()) {
            let path = folder.join(file);
            if !files.contains(&path) {
                files.push(path);
            }
        }
        files.sort();
    } else {
        let entries = std::fs::read_dir(folder).map_err(|e| fail(e.to_string()))?;
        for entry in entries {
            let path = entry.map_err(|e| fail(e.to_string()))?.path();
            if path.extension().is_some_and(|e| e == "safetensors") {
                files.push(path);
            }
        }
        files.sort();
    }
    if files.is_empty() {
        return Err(fail("no *.safetensors weights".into()));
    }
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sliding_mask_limits_distance_and_skips_padding() {
        let valid = vec![vec![0.0, 1.0, 1.0, 1.0]];
        let pattern = MaskPattern::Causal { window: Some(2) };
        let m = additive_mask(1, 4, pattern, Some(&valid), &Device::Cpu).unwrap();
        let m = m.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let visible: Vec<bool> = m.iter().map(|&v| v == 0.0).collect();
        #[rustfmt::skip]
        let expected = [
            false, false, false, false,
            false, true,  false, false,
            false, true,  true,  false,
            false, false, true,  true,
        ];
        assert_eq!(visible, expected);
    }

    #[test]
    fn embed_scale_is_rounded_like_pytorch() {
        assert_eq!(round_to_dtype(3840f64.sqrt(), DType::BF16), 62.0);
    }
}
