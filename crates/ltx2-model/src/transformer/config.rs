//! `TransformerConfig`: the `transformer` section of the checkpoint's `config` metadata, with the
//! LTX-2 19B values as fallbacks for absent keys.

use serde::Deserialize;

use super::rope::{FrequenciesPrecision, RopeType};

/// Hyper-parameters of the AV DiT (`model.diffusion_model.*`). Field names are the metadata keys.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default)]
pub struct TransformerConfig {
    pub num_layers: usize,
    pub num_attention_heads: usize,
    pub attention_head_dim: usize,
    pub in_channels: usize,
    pub out_channels: usize,
    /// Width of the (projected) text context seen by the video `attn2`.
    pub cross_attention_dim: usize,
    pub audio_num_attention_heads: usize,
    pub audio_attention_head_dim: usize,
    pub audio_in_channels: usize,
    pub audio_out_channels: usize,
    /// Width of the audio text context and of both A↔V cross-attentions (and their RoPE).
    pub audio_cross_attention_dim: usize,
    /// Width of the connector output fed to `caption_projection` / `audio_caption_projection`.
    pub caption_channels: usize,
    pub norm_eps: f64,
    pub positional_embedding_theta: f64,
    pub positional_embedding_max_pos: Vec<f64>,
    pub audio_positional_embedding_max_pos: Vec<f64>,
    pub timestep_scale_multiplier: f64,
    pub av_ca_timestep_scale_multiplier: f64,
    pub rope_type: RopeType,
    pub frequencies_precision: FrequenciesPrecision,
    pub use_middle_indices_grid: bool,
    /// LTX-2.3 features; must be false for this implementation.
    pub apply_gated_attention: bool,
    pub cross_attention_adaln: bool,
    pub caption_proj_before_connector: bool,
}

/// Feed-forward expansion (hard-coded `mult=4` in ltx-core's `FeedForward`).
pub const FF_MULT: usize = 4;
/// Sinusoidal channels of the timestep embedding.
pub const TIMESTEP_CHANNELS: usize = 256;
/// AdaLN rows per block (shift/scale/gate for self-attention and feed-forward).
pub const ADALN_ROWS: usize = 6;
/// AdaLN rows of the A↔V scale/shift tables (a2v scale, shift, v2a scale, shift); the gate is a 5th
/// row in the per-block table and a separate 1-row AdaLN.
pub const AV_CA_ROWS: usize = 4;

impl Default for TransformerConfig {
    fn default() -> Self {
        Self::ltx2_19b()
    }
}

impl TransformerConfig {
    /// LTX-2.0 19B (`ltx-2-19b-*.safetensors`): 48 blocks, video 32×128, audio 32×64, see
    /// ltx2-architecture.md §3.1 (diffusers' "2.0" converter config agrees).
    pub fn ltx2_19b() -> Self {
        Self {
            num_layers: 48,
            num_attention_heads: 32,
            attention_head_dim: 128,
            in_channels: 128,
            out_channels: 128,
            cross_attention_dim: 4096,
            audio_num_attention_heads: 32,
            audio_attention_head_dim: 64,
            audio_in_channels: 128,
            audio_out_channels: 128,
            audio_cross_attention_dim: 2048,
            caption_channels: 3840,
            norm_eps: 1e-6,
            positional_embedding_theta: 10000.0,
            positional_embedding_max_pos: vec![20.0, 2048.0, 2048.0],
            audio_positional_embedding_max_pos: vec![20.0],
            timestep_scale_multiplier: 1000.0,
            av_ca_timestep_scale_multiplier: 1000.0,
            rope_type: RopeType::Split,
            frequencies_precision: FrequenciesPrecision::Float64,
            use_middle_indices_grid: true,
            apply_gated_attention: false,
            cross_attention_adaln: false,
            caption_proj_before_connector: false,
        }
    }

    /// Parses the whole checkpoint `config` JSON (its `transformer` section; absent section or keys
    /// fall back to [`Self::ltx2_19b`]) and rejects settings this implementation does not run.
    pub fn from_checkpoint_config(config: &serde_json::Value) -> Result<Self, ConfigError> {
        let cfg: Self = match config.get("transformer") {
            Some(section) => serde_json::from_value(section.clone())
                .map_err(|e| ConfigError::Invalid(format!("transformer: {e}")))?,
            None => Self::ltx2_19b(),
        };
        cfg.validate()?;
        Ok(cfg)
    }

    /// Errors on LTX-2.3-only features and inconsistent widths.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let unsupported = |key: &str| Err(ConfigError::Unsupported(key.to_string()));
        if self.rope_type != RopeType::Split {
            return unsupported("rope_type (only \"split\")");
        }
        if self.apply_gated_attention {
            return unsupported("apply_gated_attention");
        }
        if self.cross_attention_adaln {
            return unsupported("cross_attention_adaln");
        }
        if self.caption_proj_before_connector {
            return unsupported("caption_proj_before_connector");
        }
        if !self.use_middle_indices_grid {
            return unsupported("use_middle_indices_grid = false");
        }
        if self.positional_embedding_max_pos.is_empty()
            || self.audio_positional_embedding_max_pos.is_empty()
        {
            return Err(ConfigError::Invalid(
                "positional_embedding_max_pos must not be empty".into(),
            ));
        }
        if self.cross_attention_dim != self.inner_dim() {
            // The caption projection outputs inner_dim; attn2 reads it as cross_attention_dim.
            return Err(ConfigError::Invalid(format!(
                "cross_attention_dim {} != num_attention_heads * attention_head_dim {}",
                self.cross_attention_dim,
                self.inner_dim()
            )));
        }
        if self.audio_cross_attention_dim != self.audio_inner_dim() {
            return Err(ConfigError::Invalid(format!(
                "audio_cross_attention_dim {} != audio inner dim {}",
                self.audio_cross_attention_dim,
                self.audio_inner_dim()
            )));
        }
        Ok(())
    }

    pub fn inner_dim(&self) -> usize {
        self.num_attention_heads * self.attention_head_dim
    }

    pub fn audio_inner_dim(&self) -> usize {
        self.audio_num_attention_heads * self.audio_attention_head_dim
    }

    /// `max(video max_pos[0], audio max_pos[0])`: the time normaliser of the A↔V cross RoPE.
    pub fn cross_pe_max_pos(&self) -> f64 {
        self.positional_embedding_max_pos[0].max(self.audio_positional_embedding_max_pos[0])
    }

    /// Every DiT tensor (keys relative to `model.diffusion_model.`) with its shape, in the
    /// unquantized layout. The loader checks a checkpoint against it and the parameter count is
    /// computed from it without allocating anything.
    pub fn tensor_shapes(&self) -> Vec<(String, Vec<usize>)> {
        let (d, da) = (self.inner_dim(), self.audio_inner_dim());
        let mut out = Vec::new();
        let mut lin = |name: &str, i: usize, o: usize| {
            out.push((format!("{name}.weight"), vec![o, i]));
            out.push((format!("{name}.bias"), vec![o]));
        };
        lin("patchify_proj", self.in_channels, d);
        lin("audio_patchify_proj", self.audio_in_channels, da);
        for (name, dim, k) in [
            ("adaln_single", d, ADALN_ROWS),
            ("audio_adaln_single", da, ADALN_ROWS),
            ("av_ca_video_scale_shift_adaln_single", d, AV_CA_ROWS),
            ("av_ca_a2v_gate_adaln_single", d, 1),
            ("av_ca_audio_scale_shift_adaln_single", da, AV_CA_ROWS),
            ("av_ca_v2a_gate_adaln_single", da, 1),
        ] {
            lin(
                &format!("{name}.emb.timestep_embedder.linear_1"),
                TIMESTEP_CHANNELS,
                dim,
            );
            lin(&format!("{name}.emb.timestep_embedder.linear_2"), dim, dim);
            lin(&format!("{name}.linear"), dim, k * dim);
        }
        lin("caption_projection.linear_1", self.caption_channels, d);
        lin("caption_projection.linear_2", d, d);
        lin(
            "audio_caption_projection.linear_1",
            self.caption_channels,
            da,
        );
        lin("audio_caption_projection.linear_2", da, da);
        lin("proj_out", d, self.out_channels);
        lin("audio_proj_out", da, self.audio_out_channels);
        let attn =
            |out: &mut Vec<(String, Vec<usize>)>, name: &str, q: usize, kv: usize, inner: usize| {
                for (proj, i, o) in [
                    ("to_q", q, inner),
                    ("to_k", kv, inner),
                    ("to_v", kv, inner),
                    ("to_out.0", inner, q),
                ] {
                    out.push((format!("{name}.{proj}.weight"), vec![o, i]));
                    out.push((format!("{name}.{proj}.bias"), vec![o]));
                }
                out.push((format!("{name}.q_norm.weight"), vec![inner]));
                out.push((format!("{name}.k_norm.weight"), vec![inner]));
            };
        let ff = |out: &mut Vec<(String, Vec<usize>)>, name: &str, dim: usize| {
            let inner = dim * FF_MULT;
            out.push((format!("{name}.net.0.proj.weight"), vec![inner, dim]));
            out.push((format!("{name}.net.0.proj.bias"), vec![inner]));
            out.push((format!("{name}.net.2.weight"), vec![dim, inner]));
            out.push((format!("{name}.net.2.bias"), vec![dim]));
        };
        out.push(("scale_shift_table".into(), vec![2, d]));
        out.push(("audio_scale_shift_table".into(), vec![2, da]));
        let xa = self.audio_cross_attention_dim;
        for i in 0..self.num_layers {
            let p = format!("transformer_blocks.{i}");
            out.push((format!("{p}.scale_shift_table"), vec![ADALN_ROWS, d]));
            out.push((format!("{p}.audio_scale_shift_table"), vec![ADALN_ROWS, da]));
            out.push((
                format!("{p}.scale_shift_table_a2v_ca_video"),
                vec![AV_CA_ROWS + 1, d],
            ));
            out.push((
                format!("{p}.scale_shift_table_a2v_ca_audio"),
                vec![AV_CA_ROWS + 1, da],
            ));
            attn(&mut out, &format!("{p}.attn1"), d, d, d);
            attn(
                &mut out,
                &format!("{p}.attn2"),
                d,
                self.cross_attention_dim,
                d,
            );
            attn(&mut out, &format!("{p}.audio_attn1"), da, da, da);
            attn(&mut out, &format!("{p}.audio_attn2"), da, xa, da);
            attn(&mut out, &format!("{p}.audio_to_video_attn"), d, da, da);
            attn(&mut out, &format!("{p}.video_to_audio_attn"), da, d, da);
            ff(&mut out, &format!("{p}.ff"), d);
            ff(&mut out, &format!("{p}.audio_ff"), da);
        }
        out
    }

    /// Number of DiT parameters implied by the config (connectors excluded).
    pub fn parameter_count(&self) -> u64 {
        self.tensor_shapes()
            .iter()
            .map(|(_, s)| s.iter().product::<usize>() as u64)
            .sum()
    }
}

/// A checkpoint config the transformer cannot be built from.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("transformer config: {0}")]
    Invalid(String),
    #[error("transformer config: unsupported setting `{0}` (LTX-2.3 feature or not LTX-2.0)")]
    Unsupported(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absent_keys_fall_back_to_19b() {
        let cfg = TransformerConfig::from_checkpoint_config(&serde_json::json!({
            "transformer": { "num_layers": 2 }
        }))
        .unwrap();
        assert_eq!(cfg.num_layers, 2);
        assert_eq!(cfg.inner_dim(), 4096);
        assert_eq!(cfg.frequencies_precision, FrequenciesPrecision::Float64);
    }

    #[test]
    fn model_builds_from_shapes_alone() {
        // What benchmarks do at 19B (here at a tiny size): a model from a zeros VarBuilder.
        let cfg = TransformerConfig {
            num_layers: 1,
            num_attention_heads: 2,
            attention_head_dim: 8,
            cross_attention_dim: 16,
            audio_num_attention_heads: 2,
            audio_attention_head_dim: 4,
            audio_cross_attention_dim: 8,
            caption_channels: 12,
            ..TransformerConfig::ltx2_19b()
        };
        let vb = candle_nn::VarBuilder::zeros(candle_core::DType::F32, &candle_core::Device::Cpu);
        let model = crate::transformer::LtxModel::new(&cfg, vb).unwrap();
        assert_eq!(model.transformer_blocks.len(), 1);
    }

    #[test]
    fn gated_attention_is_rejected() {
        let err = TransformerConfig::from_checkpoint_config(&serde_json::json!({
            "transformer": { "apply_gated_attention": true }
        }))
        .unwrap_err();
        assert!(err.to_string().contains("apply_gated_attention"));
    }
}
