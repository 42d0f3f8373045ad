//! Gemma-4 (`gemma4_unified`) text-tower hyper-parameters from the HF config JSON (the packed
//! text-encoder file's `gemma_config` metadata, or a folder's `config.json`).
//!
//! Parsed as transformers 5.14 builds `Gemma4UnifiedTextConfig`: absent keys take the class
//! defaults, then `__post_init__` runs (default `layer_types` 5:1, the last layer forced to full
//! attention, `use_bidirectional_attention = "all"` halving the sliding window, default RoPE
//! parameters). Combinations on which the HF module would crash or compute something undefined
//! (e.g. a RoPE table narrower than the head, K=V without `num_global_key_value_heads`) are refused
//! here with the key that causes them.

use std::collections::HashMap;

use serde::Deserialize;

use crate::text::gemma3::{default_inv_freq, HiddenActivation, LayerType};
use crate::text::TextError;

/// The only `model_type` this module builds (the LTX-2.5 text encoder).
pub const GEMMA4_UNIFIED: &str = "gemma4_unified";

/// `use_bidirectional_attention`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BidirectionalAttention {
    /// Image/video soft tokens attend bidirectionally within their block; text stays causal (and
    /// a text-only prompt is plain causal).
    Vision,
    /// Every layer bidirectional (`is_causal = False`).
    All,
}

/// One layer type's `rope_parameters` entry.
#[derive(Debug, Clone, PartialEq)]
pub struct RopeParameters {
    pub rope_type: RopeKind,
    pub rope_theta: f64,
    pub partial_rotary_factor: Option<f64>,
    pub factor: Option<f64>,
}

/// The RoPE initialisations the Gemma-4 rotary embedding can build here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RopeKind {
    /// `compute_default_rope_parameters` of the Gemma-4 rotary module (always `head_dim` wide).
    Default,
    /// `linear`: default frequencies divided by `factor`.
    Linear,
    /// `proportional`: the first `partial_rotary_factor` of the pairs rotate, the rest get frequency
    /// zero; `global_head_dim` wide on full-attention layers.
    Proportional,
}

#[derive(Debug, Deserialize)]
struct RawRopeParameters {
    rope_type: Option<String>,
    #[serde(rename = "type")]
    legacy_type: Option<String>,
    rope_theta: Option<f64>,
    partial_rotary_factor: Option<f64>,
    factor: Option<f64>,
}

/// `text_config` keys, `None` where absent (the class default applies).
#[derive(Debug, Default, Deserialize)]
struct RawTextConfig {
    model_type: Option<String>,
    vocab_size: Option<usize>,
    hidden_size: Option<usize>,
    intermediate_size: Option<usize>,
    num_hidden_layers: Option<usize>,
    num_attention_heads: Option<usize>,
    num_key_value_heads: Option<usize>,
    head_dim: Option<usize>,
    hidden_activation: Option<HiddenActivation>,
    rms_norm_eps: Option<f64>,
    pad_token_id: Option<usize>,
    rope_parameters: Option<HashMap<String, RawRopeParameters>>,
    rope_theta: Option<f64>,
    partial_rotary_factor: Option<f64>,
    attention_bias: Option<bool>,
    sliding_window: Option<usize>,
    layer_types: Option<Vec<LayerType>>,
    #[serde(default = "vision")]
    use_bidirectional_attention: Option<BidirectionalAttention>,
    num_global_key_value_heads: Option<usize>,
    global_head_dim: Option<usize>,
    attention_k_eq_v: Option<bool>,
    num_kv_shared_layers: Option<usize>,
    use_double_wide_mlp: Option<bool>,
    /// Gemma-2's attention softcapping; the Gemma-4 attention never applies it, so a config that
    /// sets it asks for something this model does not do.
    attn_logit_softcapping: Option<f64>,
}

fn vision() -> Option<BidirectionalAttention> {
    Some(BidirectionalAttention::Vision)
}

/// The top-level keys read besides `text_config`.
#[derive(Debug, Default, Deserialize)]
struct RawConfig {
    model_type: Option<String>,
    gemma_version: Option<String>,
    image_token_id: Option<u32>,
    video_token_id: Option<u32>,
    audio_token_id: Option<u32>,
}

/// The Gemma-4 unified text tower after HF's `__post_init__`.
#[derive(Debug, Clone, PartialEq)]
pub struct Gemma4Config {
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub num_key_value_heads: usize,
    /// Head width of sliding layers (and of full layers when `global_head_dim` is 0).
    pub head_dim: usize,
    /// Head width of full-attention layers.
    pub global_head_dim: usize,
    /// KV heads of full layers with `attention_k_eq_v`.
    pub num_global_key_value_heads: Option<usize>,
    pub hidden_activation: HiddenActivation,
    pub rms_norm_eps: f64,
    pub pad_token_id: u32,
    pub rope_parameters: HashMap<LayerType, RopeParameters>,
    pub attention_bias: bool,
    /// After `__post_init__` (halved + 1 when `use_bidirectional_attention == "all"`).
    pub sliding_window: usize,
    pub layer_types: Vec<LayerType>,
    pub use_bidirectional_attention: Option<BidirectionalAttention>,
    /// Full layers use the key projection as values too (no `v_proj`).
    pub attention_k_eq_v: bool,
    /// The last `num_kv_shared_layers` layers reuse the K/V of the last earlier layer of their type.
    pub num_kv_shared_layers: usize,
    /// KV-shared layers get a twice as wide MLP.
    pub use_double_wide_mlp: bool,
    /// Top-level `image_token_id` / `video_token_id` / `audio_token_id`: `Gemma4UnifiedModel`
    /// embeds these placeholders as `<pad>` when no media is given (always, for text encoding).
    pub multimodal_token_ids: Vec<u32>,
    /// Top-level `gemma_version` (checked against the transformer's `gemma_source_checkpoint`).
    pub gemma_version: Option<String>,
}

impl Gemma4Config {
    /// From the whole HF config (`model_type` `gemma4_unified`, text tower under `text_config`).
    pub fn from_json(value: &serde_json::Value) -> Result<Self, TextError> {
        let fail = |e: String| TextError::Config(format!("gemma4 config: {e}"));
        let top: RawConfig =
            serde_json::from_value(value.clone()).map_err(|e| fail(e.to_string()))?;
        match top.model_type.as_deref() {
            Some(GEMMA4_UNIFIED) => {}
            other => {
                return Err(fail(format!(
                    "model_type {other:?}: only `{GEMMA4_UNIFIED}` is a Gemma-4 text encoder"
                )))
            }
        }
        let text = match value.get("text_config") {
            None | Some(serde_json::Value::Null) => RawTextConfig {
                use_bidirectional_attention: vision(),
                ..RawTextConfig::default()
            },
            Some(t) => {
                serde_json::from_value(t.clone()).map_err(|e| fail(format!("text_config: {e}")))?
            }
        };
        // `Gemma4UnifiedConfig` class defaults for the placeholders (the 12B vocabulary's ids).
        let ids = vec![
            top.image_token_id.unwrap_or(258_880),
            top.video_token_id.unwrap_or(258_884),
            top.audio_token_id.unwrap_or(258_881),
        ];
        let cfg = Self::from_text(text, ids, top.gemma_version)
            .map_err(|e| fail(format!("text_config: {e}")))?;
        Ok(cfg)
    }

    fn from_text(
        t: RawTextConfig,
        multimodal_token_ids: Vec<u32>,
        gemma_version: Option<String>,
    ) -> Result<Self, String> {
        if let Some(mt) = t.model_type.as_deref() {
            if mt != "gemma4_unified_text" {
                return Err(format!(
                    "model_type `{mt}` (expected `gemma4_unified_text`)"
                ));
            }
        }
        if t.attn_logit_softcapping.is_some() {
            return Err("attn_logit_softcapping is not a Gemma-4 setting".into());
        }
        let num_hidden_layers = t.num_hidden_layers.unwrap_or(30);
        let bidirectional = t.use_bidirectional_attention;
        let mut sliding_window = t.sliding_window.unwrap_or(1024);
        if bidirectional == Some(BidirectionalAttention::All) {
            sliding_window = sliding_window / 2 + 1;
        }
        let rope_parameters = rope_parameters(&t)?;
        let mut layer_types = t.layer_types.unwrap_or_else(|| {
            (0..num_hidden_layers)
                .map(|i| {
                    if (i + 1) % 6 == 0 {
                        LayerType::FullAttention
                    } else {
                        LayerType::SlidingAttention
                    }
                })
                .collect()
        });
        if let Some(last) = layer_types.last_mut() {
            if *last != LayerType::FullAttention {
                tracing::warn!("gemma4 config: the last layer must use full attention; forcing it");
                *last = LayerType::FullAttention;
            }
        }
        let cfg = Self {
            vocab_size: t.vocab_size.unwrap_or(262_144),
            hidden_size: t.hidden_size.unwrap_or(2304),
            intermediate_size: t.intermediate_size.unwrap_or(9216),
            num_hidden_layers,
            num_attention_heads: t.num_attention_heads.unwrap_or(8),
            num_key_value_heads: t.num_key_value_heads.unwrap_or(4),
            head_dim: t.head_dim.unwrap_or(256),
            global_head_dim: t.global_head_dim.unwrap_or(512),
            num_global_key_value_heads: t.num_global_key_value_heads,
            hidden_activation: t
                .hidden_activation
                .unwrap_or(HiddenActivation::GeluPytorchTanh),
            rms_norm_eps: t.rms_norm_eps.unwrap_or(1e-6),
            pad_token_id: t.pad_token_id.unwrap_or(0) as u32,
            rope_parameters,
            attention_bias: t.attention_bias.unwrap_or(false),
            sliding_window,
            layer_types,
            use_bidirectional_attention: bidirectional,
            attention_k_eq_v: t.attention_k_eq_v.unwrap_or(false),
            num_kv_shared_layers: t.num_kv_shared_layers.unwrap_or(0),
            use_double_wide_mlp: t.use_double_wide_mlp.unwrap_or(false),
            multimodal_token_ids,
            gemma_version,
        };
        cfg.validate()?;
        Ok(cfg)
    }

    fn validate(&self) -> Result<(), String> {
        if self.layer_types.len() != self.num_hidden_layers {
            return Err(format!(
                "layer_types has {} entries for {} layers",
                self.layer_types.len(),
                self.num_hidden_layers
            ));
        }
        if self.num_hidden_layers == 0 || self.hidden_size == 0 || self.num_attention_heads == 0 {
            return Err(
                "num_hidden_layers, hidden_size and num_attention_heads must be >= 1".into(),
            );
        }
        if self.pad_token_id as usize >= self.vocab_size {
            return Err(format!(
                "pad_token_id {} is outside the vocabulary ({})",
                self.pad_token_id, self.vocab_size
            ));
        }
        if self.num_kv_shared_layers >= self.num_hidden_layers {
            return Err(format!(
                "num_kv_shared_layers {} leaves no layer computing K/V ({} layers)",
                self.num_kv_shared_layers, self.num_hidden_layers
            ));
        }
        let first_shared = self.first_kv_shared_layer();
        for layer in 0..self.num_hidden_layers {
            let ty = self.layer_types[layer];
            let kv_heads = self.num_kv_heads(layer).ok_or_else(|| {
                "attention_k_eq_v needs num_global_key_value_heads (the full layers' KV heads)"
                    .to_string()
            })?;
            if kv_heads == 0 || !self.num_attention_heads.is_multiple_of(kv_heads) {
                return Err(format!(
                    "num_attention_heads {} is not a multiple of the {kv_heads} KV heads of layer \
                     {layer}",
                    self.num_attention_heads
                ));
            }
            let head_dim = self.layer_head_dim(layer);
            if head_dim == 0 || !head_dim.is_multiple_of(2) {
                return Err(format!(
                    "layer {layer}: head dim {head_dim} must be even for RoPE"
                ));
            }
            let freqs = self.inv_freq(ty)?.len();
            if 2 * freqs != head_dim {
                return Err(format!(
                    "rope_parameters.{} gives {freqs} frequencies for heads of {head_dim} \
                     (layer {layer}); transformers cannot apply it either",
                    layer_type_name(ty)
                ));
            }
            if layer >= first_shared && self.kv_source_layer(ty).is_none() {
                return Err(format!(
                    "layer {layer} shares K/V (num_kv_shared_layers) but no earlier layer is {}",
                    layer_type_name(ty)
                ));
            }
        }
        Ok(())
    }

    /// Index of the first layer that reuses K/V (`num_hidden_layers` when none does).
    pub fn first_kv_shared_layer(&self) -> usize {
        self.num_hidden_layers - self.num_kv_shared_layers
    }

    /// Whether `layer` reuses another layer's K/V instead of projecting its own.
    pub fn is_kv_shared(&self, layer: usize) -> bool {
        layer >= self.first_kv_shared_layer()
    }

    /// The layer whose K/V the shared layers of type `ty` reuse: the last non-shared one of `ty`.
    pub fn kv_source_layer(&self, ty: LayerType) -> Option<usize> {
        let first = self.first_kv_shared_layer();
        self.layer_types[..first].iter().rposition(|&t| t == ty)
    }

    /// HF's head width of `layer`: `global_head_dim` on full layers (when non-zero).
    pub fn layer_head_dim(&self, layer: usize) -> usize {
        match self.layer_types[layer] {
            LayerType::FullAttention if self.global_head_dim > 0 => self.global_head_dim,
            _ => self.head_dim,
        }
    }

    /// Whether `layer` uses the key projection as values (`attention_k_eq_v` on full layers).
    pub fn uses_k_as_v(&self, layer: usize) -> bool {
        self.attention_k_eq_v && self.layer_types[layer] == LayerType::FullAttention
    }

    /// KV heads of `layer` (`None`: K=V without `num_global_key_value_heads`).
    pub fn num_kv_heads(&self, layer: usize) -> Option<usize> {
        if self.uses_k_as_v(layer) {
            self.num_global_key_value_heads
        } else {
            Some(self.num_key_value_heads)
        }
    }

    /// MLP width of `layer` (doubled on KV-shared layers with `use_double_wide_mlp`; HF's MLP uses
    /// `layer >= first > 0`, which the config check above makes the same test).
    pub fn layer_intermediate_size(&self, layer: usize) -> usize {
        let doubled = self.use_double_wide_mlp && self.is_kv_shared(layer);
        self.intermediate_size * if doubled { 2 } else { 1 }
    }

    /// The RoPE inverse frequencies of layer type `ty` (`head_dim / 2` entries), f32 as HF's init.
    pub fn inv_freq(&self, ty: LayerType) -> Result<Vec<f32>, String> {
        let p = self
            .rope_parameters
            .get(&ty)
            .ok_or_else(|| format!("rope_parameters has no `{}` entry", layer_type_name(ty)))?;
        let head_dim = self.head_dim;
        Ok(match p.rope_type {
            RopeKind::Default => default_inv_freq(p.rope_theta, head_dim, head_dim),
            RopeKind::Linear => {
                let factor = p
                    .factor
                    .ok_or("rope_type `linear` needs `factor`".to_string())?;
                let partial = p.partial_rotary_factor.unwrap_or(1.0);
                let dim = (head_dim as f64 * partial) as usize;
                default_inv_freq(p.rope_theta, dim, dim)
                    .into_iter()
                    .map(|f| f / factor as f32)
                    .collect()
            }
            RopeKind::Proportional => {
                // `head_dim_key="global_head_dim"` on full layers (`getattr(...) or head_dim`).
                let dim = match ty {
                    LayerType::FullAttention if self.global_head_dim > 0 => self.global_head_dim,
                    _ => head_dim,
                };
                let partial = p.partial_rotary_factor.unwrap_or(1.0);
                // `int(rope_proportion * head_dim // 2)`: a float floor division.
                let angles = ((partial * dim as f64) / 2.0).floor() as usize;
                let factor = p.factor.unwrap_or(1.0) as f32;
                let mut inv = default_inv_freq(p.rope_theta, 2 * angles, dim);
                inv.resize((dim / 2).max(angles), 0.0);
                inv.into_iter().map(|f| f / factor).collect()
            }
        })
    }

    /// Number of hidden states the encoder returns (embedding output + one per layer).
    pub fn num_hidden_states(&self) -> usize {
        self.num_hidden_layers + 1
    }
}

fn layer_type_name(ty: LayerType) -> &'static str {
    match ty {
        LayerType::FullAttention => "full_attention",
        LayerType::SlidingAttention => "sliding_attention",
    }
}

/// `rope_parameters` keyed by layer type, after `standardize_rope_params` (a top-level
/// `rope_theta` fills missing thetas, a top-level `partial_rotary_factor` overrides) and with the
/// class default when absent.
fn rope_parameters(t: &RawTextConfig) -> Result<HashMap<LayerType, RopeParameters>, String> {
    let Some(raw) = &t.rope_parameters else {
        return Ok(HashMap::from([
            (
                LayerType::SlidingAttention,
                RopeParameters {
                    rope_type: RopeKind::Default,
                    rope_theta: 10_000.0,
                    partial_rotary_factor: None,
                    factor: None,
                },
            ),
            (
                LayerType::FullAttention,
                RopeParameters {
                    rope_type: RopeKind::Proportional,
                    rope_theta: 1_000_000.0,
                    partial_rotary_factor: Some(0.25),
                    factor: None,
                },
            ),
        ]));
    };
    let mut out = HashMap::new();
    for (name, p) in raw {
        let ty: LayerType = serde_json::from_value(serde_json::Value::String(name.clone()))
            .map_err(|_| {
                format!(
                    "rope_parameters must be keyed by layer type (sliding_attention, \
                     full_attention), got `{name}`"
                )
            })?;
        let kind = p
            .rope_type
            .as_deref()
            .or(p.legacy_type.as_deref())
            .unwrap_or("default");
        let rope_type = match kind {
            "default" => RopeKind::Default,
            "linear" => RopeKind::Linear,
            "proportional" => RopeKind::Proportional,
            other => {
                return Err(format!(
                    "rope_parameters.{name}.rope_type `{other}` is not supported (default, \
                     linear, proportional)"
                ))
            }
        };
        let rope_theta = p
            .rope_theta
            .or(t.rope_theta)
            .ok_or_else(|| format!("rope_parameters.{name} has no rope_theta"))?;
        out.insert(
            ty,
            RopeParameters {
                rope_type,
                rope_theta,
                partial_rotary_factor: t.partial_rotary_factor.or(p.partial_rotary_factor),
                factor: p.factor,
            },
        );
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tiny() -> serde_json::Value {
        serde_json::json!({
            "model_type": "gemma4_unified", "gemma_version": "v1",
            "image_token_id": 9, "video_token_id": 13, "audio_token_id": 10,
            "text_config": {
                "model_type": "gemma4_unified_text", "hidden_size": 32, "intermediate_size": 64,
                "num_hidden_layers": 4, "num_attention_heads": 4, "num_key_value_heads": 2,
                "head_dim": 16, "global_head_dim": 32, "vocab_size": 528, "sliding_window": 8,
                "layer_types": ["sliding_attention", "full_attention", "sliding_attention",
                                "full_attention"],
                "rope_parameters": {
                    "full_attention": {"partial_rotary_factor": 0.25, "rope_theta": 1e6,
                                       "rope_type": "proportional"},
                    "sliding_attention": {"rope_theta": 1e4, "rope_type": "default"}
                }
            }
        })
    }

    #[test]
    fn proportional_rope_rotates_a_quarter_of_the_global_head() {
        let cfg = Gemma4Config::from_json(&tiny()).unwrap();
        let full = cfg.inv_freq(LayerType::FullAttention).unwrap();
        assert_eq!(full.len(), 16);
        // 0.25 * 32 / 2 = 4 rotated pairs, exponents 2i / 32 (the whole head), then zeros.
        for (i, f) in full.iter().enumerate() {
            let want = if i < 4 {
                1.0 / 1e6f32.powf(2.0 * i as f32 / 32.0)
            } else {
                0.0
            };
            assert_eq!(*f, want, "{full:?}");
        }
        assert_eq!(cfg.inv_freq(LayerType::SlidingAttention).unwrap().len(), 8);
        assert_eq!(cfg.multimodal_token_ids, vec![9, 13, 10]);
        assert_eq!((cfg.layer_head_dim(0), cfg.layer_head_dim(1)), (16, 32));
    }

    #[test]
    fn post_init_forces_a_full_last_layer_and_halves_bidirectional_windows() {
        let mut json = tiny();
        json["text_config"]["layer_types"] = serde_json::json!([
            "sliding_attention",
            "full_attention",
            "sliding_attention",
            "sliding_attention"
        ]);
        json["text_config"]["use_bidirectional_attention"] = serde_json::json!("all");
        let cfg = Gemma4Config::from_json(&json).unwrap();
        assert_eq!(cfg.layer_types[3], LayerType::FullAttention);
        assert_eq!(cfg.sliding_window, 5);
        json["text_config"]["use_bidirectional_attention"] = serde_json::Value::Null;
        assert_eq!(
            Gemma4Config::from_json(&json)
                .unwrap()
                .use_bidirectional_attention,
            None
        );
    }

    #[test]
    fn kv_sharing_reuses_the_last_earlier_layer_of_the_same_type() {
        let mut json = tiny();
        json["text_config"]["num_kv_shared_layers"] = serde_json::json!(2);
        json["text_config"]["use_double_wide_mlp"] = serde_json::json!(true);
        let cfg = Gemma4Config::from_json(&json).unwrap();
        assert_eq!(cfg.kv_source_layer(LayerType::SlidingAttention), Some(0));
        assert_eq!(cfg.kv_source_layer(LayerType::FullAttention), Some(1));
        assert_eq!(cfg.layer_intermediate_size(1), 64);
        assert_eq!(cfg.layer_intermediate_size(2), 128);
        json["text_config"]["num_kv_shared_layers"] = serde_json::json!(3);
        let msg = Gemma4Config::from_json(&json).unwrap_err().to_string();
        assert!(msg.contains("no earlier layer is full_attention"), "{msg}");
    }

    #[test]
    fn refuses_what_transformers_cannot_run() {
        let mut json = tiny();
        json["text_config"]["attention_k_eq_v"] = serde_json::json!(true);
        let msg = Gemma4Config::from_json(&json).unwrap_err().to_string();
        assert!(msg.contains("num_global_key_value_heads"), "{msg}");
        let mut json = tiny();
        json["text_config"]["rope_parameters"]["full_attention"] =
            serde_json::json!({"rope_type": "default", "rope_theta": 1e6});
        let msg = Gemma4Config::from_json(&json).unwrap_err().to_string();
        assert!(msg.contains("rope_parameters.full_attention"), "{msg}");
        let mut json = tiny();
        json["text_config"]["rope_parameters"]["sliding_attention"]["rope_type"] =
            serde_json::json!("yarn");
        assert!(Gemma4Config::from_json(&json).is_err());
        let mut json = tiny();
        json["model_type"] = serde_json::json!("gemma3");
        let msg = Gemma4Config::from_json(&json).unwrap_err().to_string();
        assert!(msg.contains("gemma4_unified"), "{msg}");
    }
}
