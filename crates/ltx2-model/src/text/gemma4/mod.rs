//! Gemma-4 text tower (the language model of `Gemma4UnifiedForConditionalGeneration`, transformers
//! 5.14) returning every hidden state, as ltx-core 1.2.0's `LTXGemmaTextEncoder.encode` gets them
//! from `model.model(input_ids, attention_mask, output_hidden_states=True)`: no logits, no cache.
//!
//! `hidden_states` follows transformers: `[embed(ids) * sqrt(hidden), output of layer 0, ...,
//! output of layer L-2, norm(output of layer L-1)]`. What is the same as Gemma-3 (RMSNorm, gated
//! MLP, RoPE tables, grouped attention, masks, embedding scale) is Gemma-3's code.

pub mod attention;
pub mod config;
pub mod layer;

use candle_core::{DType, Device, Module, Result, Tensor};
use candle_nn::{Embedding, VarBuilder};

use crate::linear::tensor_bytes;
use crate::quantization::GemmaQuantization;
use crate::text::gemma3::{
    additive_mask, key_valid_rows, round_to_dtype, GemmaRmsNorm, LayerType, MaskPattern, RopeTable,
};
use crate::text::gemma_assets::GemmaAssets;
use crate::text::TextError;
pub use attention::{Gemma4Attention, SharedKv};
pub use config::{BidirectionalAttention, Gemma4Config, RopeKind, RopeParameters, GEMMA4_UNIFIED};
pub use layer::Gemma4DecoderLayer;

/// Where the language model sits in a Gemma-4 weight file, as ltx-core probes it: the Comfy-flat
/// layout of the packed LTX text-encoder file (`model.layers.*`, recognised by layer 0's
/// `post_feedforward_layernorm`), or the HF layout (`model.language_model.*`).
const LM_PREFIXES: [(&str, &str); 2] = [
    ("model", "model.layers.0.post_feedforward_layernorm.weight"),
    (
        "model.language_model",
        "model.language_model.embed_tokens.weight",
    ),
];

#[derive(Debug, Clone)]
pub struct Gemma4TextModel {
    embed_tokens: Embedding,
    layers: Vec<Gemma4DecoderLayer>,
    norm: GemmaRmsNorm,
    cfg: Gemma4Config,
    /// `sqrt(hidden_size)` rounded to the weight dtype (`embed_scale.to(weight.dtype)`).
    embed_scale: f64,
}

impl Gemma4TextModel {
    /// `vb` is rooted at the language-model prefix (children `embed_tokens`, `layers`, `norm`).
    pub fn new(cfg: &Gemma4Config, vb: VarBuilder) -> Result<Self> {
        Self::new_quantized(cfg, GemmaQuantization::None, vb)
    }

    /// [`Self::new`] with the layers' projections held as `q` says.
    pub fn new_quantized(cfg: &Gemma4Config, q: GemmaQuantization, vb: VarBuilder) -> Result<Self> {
        let embed = vb
            .pp("embed_tokens")
            .get((cfg.vocab_size, cfg.hidden_size), "weight")?;
        let layers = (0..cfg.num_hidden_layers)
            .map(|i| Gemma4DecoderLayer::new(cfg, i, q, vb.pp("layers").pp(i)))
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            embed_tokens: Embedding::new(embed, cfg.hidden_size),
            layers,
            norm: GemmaRmsNorm::with_weight(cfg.hidden_size, cfg.rms_norm_eps, vb.pp("norm"))?,
            cfg: cfg.clone(),
            embed_scale: round_to_dtype((cfg.hidden_size as f64).sqrt(), vb.dtype()),
        })
    }

    /// Loads the language model from Gemma assets (the packed text-encoder file or an HF folder);
    /// vision / audio embedders are never read.
    pub fn load(
        assets: &GemmaAssets,
        dtype: DType,
        device: &Device,
    ) -> std::result::Result<Self, TextError> {
        Self::load_quantized(assets, GemmaQuantization::None, dtype, device)
    }

    /// [`Self::load`] with the layers' projections held as `q` says.
    pub fn load_quantized(
        assets: &GemmaAssets,
        q: GemmaQuantization,
        dtype: DType,
        device: &Device,
    ) -> std::result::Result<Self, TextError> {
        let cfg = Gemma4Config::from_json(&assets.config)?;
        // SAFETY: the files are mmapped read-only; they must not be modified while loaded.
        let vb =
            unsafe { VarBuilder::from_mmaped_safetensors(&assets.weight_paths, dtype, device)? };
        let prefix = LM_PREFIXES
            .iter()
            .find(|(_, probe)| vb.contains_tensor(probe))
            .map(|(prefix, _)| *prefix)
            .ok_or_else(|| {
                TextError::MissingWeights(format!(
                    "{}: no Gemma-4 language model (neither `{}` nor `{}`)",
                    assets.source.display(),
                    LM_PREFIXES[0].1,
                    LM_PREFIXES[1].1
                ))
            })?;
        Self::new_quantized(&cfg, q, vb.pp(prefix))
            .map_err(|e| TextError::MissingWeights(format!("{}: {e}", assets.source.display())))
    }

    /// Bytes the language model holds (embedding and norms as loaded, projections as held).
    pub fn resident_bytes(&self) -> u64 {
        tensor_bytes(self.embed_tokens.embeddings())
            + self.layers.iter().map(|l| l.resident_bytes()).sum::<u64>()
            + self.norm.resident_bytes()
    }

    pub fn config(&self) -> &Gemma4Config {
        &self.cfg
    }

    /// All `L + 1` hidden states `(B, T, hidden)` for `input_ids (B, T)`.
    ///
    /// `attention_mask (B, T)`: 1 = token, 0 = padding (keys at padding are never attended; the
    /// states of padded query rows are meaningless). `position_offset`: position of the first
    /// column; running only the `n` valid tokens of a left-padded prompt of length `T` with offset
    /// `T - n` reproduces their padded states exactly (causal or bidirectional: padding keys are
    /// masked either way).
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
        let bidirectional = cfg.use_bidirectional_attention == Some(BidirectionalAttention::All);
        let pattern = |ty: LayerType| {
            let window = match ty {
                LayerType::FullAttention => None,
                LayerType::SlidingAttention => Some(cfg.sliding_window),
            };
            if bidirectional {
                MaskPattern::Bidirectional { window }
            } else {
                MaskPattern::Causal { window }
            }
        };
        let mut per_type = Vec::new();
        for ty in [LayerType::SlidingAttention, LayerType::FullAttention] {
            if !cfg.layer_types.contains(&ty) {
                continue;
            }
            let inv_freq = cfg.inv_freq(ty).map_err(candle_core::Error::Msg)?;
            let rope = RopeTable::from_inv_freq(&inv_freq, position_offset, t, dtype, device)?;
            let mask = additive_mask(b, t, pattern(ty), key_valid.as_deref(), device)?;
            per_type.push((ty, rope, mask));
        }
        let for_type = |ty: LayerType| {
            per_type
                .iter()
                .find(|(t, _, _)| *t == ty)
                .map(|(_, rope, mask)| (rope, mask))
                .expect("built for every layer type of the config")
        };

        let ids = self.text_token_ids(input_ids)?;
        let mut x = (self.embed_tokens.forward(&ids)? * self.embed_scale)?;
        let mut states = Vec::with_capacity(self.layers.len() + 1);
        let mut shared = SharedKv::default();
        for (i, layer) in self.layers.iter().enumerate() {
            states.push(x.clone());
            let (rope, mask) = for_type(cfg.layer_types[i]);
            x = layer.forward(&x, rope, mask, &mut shared)?;
        }
        states.push(self.norm.forward(&x)?);
        Ok(states)
    }

    /// `Gemma4UnifiedModel.forward` without media: image / video / audio placeholder ids are
    /// embedded as `<pad>` (a prompt may spell them out literally).
    fn text_token_ids(&self, input_ids: &Tensor) -> Result<Tensor> {
        let ids = input_ids.to_dtype(DType::U32)?;
        let placeholders = &self.cfg.multimodal_token_ids;
        let (b, t) = ids.dims2()?;
        let mut flat = ids.flatten_all()?.to_vec1::<u32>()?;
        if !flat.iter().any(|id| placeholders.contains(id)) {
            return Ok(ids);
        }
        for id in &mut flat {
            if placeholders.contains(id) {
                *id = self.cfg.pad_token_id;
            }
        }
        Tensor::from_vec(flat, (b, t), ids.device())
    }
}
