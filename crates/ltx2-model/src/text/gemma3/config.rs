//! Gemma-3 text-model hyper-parameters, read from the HF folder's `config.json`.
//!
//! ltx-core itself ignores that file and uses its hard-coded `GEMMA3_CONFIG_FOR_LTX` (= the
//! `google/gemma-3-12b-it` text config); we read the folder so that other sizes (the tiny golden
//! model) load unchanged, and fall back to the 12B value for every absent key, which is also what HF
//! does for the sparse `text_config` of the real folder.

use std::path::Path;

use serde::Deserialize;

use crate::text::TextError;

/// Which attention a decoder layer uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LayerType {
    /// Local attention over the last `sliding_window` tokens, RoPE theta `rope_local_base_freq`.
    SlidingAttention,
    /// Causal attention over every token, RoPE theta `rope_theta` with `rope_scaling`.
    FullAttention,
}

/// `rope_scaling` of the global layers. Only `linear` (divide `inv_freq` by `factor`) is used by
/// Gemma 3; anything else is rejected at load rather than silently mis-computed.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct RopeScaling {
    pub rope_type: String,
    pub factor: f64,
}

/// `hidden_activation` (HF `ACT2FN` names): the Gemma default tanh GELU, or the exact (erf) one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum HiddenActivation {
    #[serde(alias = "gelu_pytorch_tanh", alias = "gelu_tanh")]
    GeluPytorchTanh,
    #[serde(rename = "gelu")]
    Gelu,
}

fn default_act() -> HiddenActivation {
    HiddenActivation::GeluPytorchTanh
}

/// The `text_config` of a Gemma-3 HF folder.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default)]
pub struct Gemma3Config {
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub num_key_value_heads: usize,
    pub head_dim: usize,
    pub query_pre_attn_scalar: f64,
    pub rms_norm_eps: f64,
    pub rope_theta: f64,
    pub rope_local_base_freq: f64,
    pub rope_scaling: Option<RopeScaling>,
    pub sliding_window: usize,
    pub sliding_window_pattern: usize,
    /// Newer transformers write the per-layer choice explicitly; it wins over the pattern.
    pub layer_types: Option<Vec<LayerType>>,
    pub vocab_size: usize,
    #[serde(default = "default_act")]
    pub hidden_activation: HiddenActivation,
    pub attention_bias: bool,
    /// Gemma 2 only; Gemma 3 has none. Read so that a config that sets it is rejected.
    pub attn_logit_softcapping: Option<f64>,
}

impl Default for Gemma3Config {
    fn default() -> Self {
        Self::gemma3_12b()
    }
}

impl Gemma3Config {
    /// `google/gemma-3-12b-it` text config = ltx-core `GEMMA3_CONFIG_FOR_LTX.text_config`.
    pub fn gemma3_12b() -> Self {
        Self {
            hidden_size: 3840,
            intermediate_size: 15360,
            num_hidden_layers: 48,
            num_attention_heads: 16,
            num_key_value_heads: 8,
            head_dim: 256,
            query_pre_attn_scalar: 256.0,
            rms_norm_eps: 1e-6,
            rope_theta: 1_000_000.0,
            rope_local_base_freq: 10_000.0,
            rope_scaling: Some(RopeScaling {
                rope_type: "linear".into(),
                factor: 8.0,
            }),
            sliding_window: 1024,
            sliding_window_pattern: 6,
            layer_types: None,
            vocab_size: 262_208,
            hidden_activation: HiddenActivation::GeluPytorchTanh,
            attention_bias: false,
            attn_logit_softcapping: None,
        }
    }

    /// Parses a folder's `config.json`: the text config is nested under `text_config` in the
    /// multimodal (`Gemma3ForConditionalGeneration`) folders and at top level in text-only ones.
    pub fn from_json(value: &serde_json::Value) -> Result<Self, TextError> {
        let text = value.get("text_config").unwrap_or(value);
        let cfg: Self = serde_json::from_value(text.clone())
            .map_err(|e| TextError::Config(format!("gemma text_config: {e}")))?;
        cfg.validate()
            .map_err(|e| TextError::Config(format!("gemma text_config: {e}")))?;
        Ok(cfg)
    }

    /// Reads `<folder>/config.json`; a folder without one gets the 12B config.
    pub fn from_folder(folder: &Path) -> Result<Self, TextError> {
        let path = folder.join("config.json");
        if !path.exists() {
            return Ok(Self::gemma3_12b());
        }
        let fail = |e: String| TextError::Config(format!("{}: {e}", path.display()));
        let text = std::fs::read_to_string(&path).map_err(|e| fail(e.to_string()))?;
        let value: serde_json::Value =
            serde_json::from_str(&text).map_err(|e| fail(e.to_string()))?;
        Self::from_json(&value).map_err(|e| fail(e.to_string()))
    }

    fn validate(&self) -> Result<(), String> {
        if self.attn_logit_softcapping.is_some() {
            return Err("attn_logit_softcapping is not supported (not a Gemma-3 setting)".into());
        }
        if let Some(s) = &self.rope_scaling {
            if s.rope_type != "linear" {
                return Err(format!(
                    "rope_scaling.rope_type `{}` is not supported (only `linear`)",
                    s.rope_type
                ));
            }
        }
        if self.num_key_value_heads == 0
            || !self
                .num_attention_heads
                .is_multiple_of(self.num_key_value_heads)
        {
            return Err(format!(
                "num_attention_heads {} is not a multiple of num_key_value_heads {}",
                self.num_attention_heads, self.num_key_value_heads
            ));
        }
        if !self.head_dim.is_multiple_of(2) {
            return Err(format!("head_dim {} must be even for RoPE", self.head_dim));
        }
        if let Some(types) = &self.layer_types {
            if types.len() != self.num_hidden_layers {
                return Err(format!(
                    "layer_types has {} entries for {} layers",
                    types.len(),
                    self.num_hidden_layers
                ));
            }
        } else if self.sliding_window_pattern == 0 {
            return Err("sliding_window_pattern must be >= 1".into());
        }
        Ok(())
    }

    /// Layers `pattern-1, 2*pattern-1, ...` are global, the others sliding (HF Gemma-3 rule).
    pub fn layer_type(&self, layer: usize) -> LayerType {
        match &self.layer_types {
            Some(types) => types[layer],
            None if (layer + 1).is_multiple_of(self.sliding_window_pattern) => {
                LayerType::FullAttention
            }
            None => LayerType::SlidingAttention,
        }
    }

    /// Number of hidden states the encoder returns (embedding output + one per layer).
    pub fn num_hidden_states(&self) -> usize {
        self.num_hidden_layers + 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sparse_real_config_falls_back_to_12b_values() {
        // The real folder's text_config lists only a few keys.
        let json = serde_json::json!({
            "model_type": "gemma3",
            "text_config": {
                "hidden_size": 3840, "intermediate_size": 15360, "model_type": "gemma3_text",
                "num_attention_heads": 16, "num_hidden_layers": 48, "num_key_value_heads": 8,
                "rope_scaling": {"factor": 8.0, "rope_type": "linear"}, "sliding_window": 1024
            }
        });
        let cfg = Gemma3Config::from_json(&json).unwrap();
        assert_eq!(cfg, Gemma3Config::gemma3_12b());
        let globals: Vec<usize> = (0..48)
            .filter(|&l| cfg.layer_type(l) == LayerType::FullAttention)
            .collect();
        assert_eq!(globals, vec![5, 11, 17, 23, 29, 35, 41, 47]);
    }

    #[test]
    fn rejects_unknown_rope_scaling() {
        let json = serde_json::json!({"rope_scaling": {"factor": 8.0, "rope_type": "yarn"}});
        assert!(Gemma3Config::from_json(&json).is_err());
    }
}
