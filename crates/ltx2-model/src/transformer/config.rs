//! `TransformerConfig`: the `transformer` section of the checkpoint's `config` metadata, with the
//! LTX-2 19B values as fallbacks for absent keys.
//!
//! One config for every generation: the LTX-2.3 architecture is the 19B one plus three flags
//! (`apply_gated_attention`, `cross_attention_adaln`, `caption_proj_before_connector`), LTX-2.5
//! (ltx-core 1.2.0) adds four more (`ff_bias`, `audio_ff_bias`, `use_keyframes_abs_pos_embedding`,
//! `use_prompt_adaln_single`, each defaulting to the older behaviour as in ltx-core), and every
//! component reads the flag it owns.
//!
//! Absent keys: ltx-core's `LTXModelConfigurator` has its own defaults, and two of them differ
//! from the 19B values used here (`av_ca_timestep_scale_multiplier` 1, `frequencies_precision`
//! float32; 1.0.0 also defaulted `rope_type` to "interleaved", 1.2.0 to "split"). The official
//! 19B and 22B files set them explicitly, so the difference only matters for hand-written configs.

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
    /// Width of the text context seen by the video `attn2` (the caption projection's output, or
    /// with `caption_proj_before_connector` the connector's): the video inner dim.
    pub cross_attention_dim: usize,
    pub audio_num_attention_heads: usize,
    pub audio_attention_head_dim: usize,
    pub audio_in_channels: usize,
    pub audio_out_channels: usize,
    /// Width of the audio text context and of both A↔V cross-attentions (and their RoPE).
    pub audio_cross_attention_dim: usize,
    /// Width of the connector output fed to `caption_projection` / `audio_caption_projection`;
    /// unused (and absent from 2.3 configs) with `caption_proj_before_connector`.
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
    /// LTX-2.3: a per-head output gate (`to_gate_logits`) in all six block attentions.
    pub apply_gated_attention: bool,
    /// LTX-2.3: the text cross-attention is modulated too: 9 AdaLN rows instead of 6 (rows 6..9 =
    /// shift, scale, gate of the query side) and a σ-driven `prompt_adaln_single` that shifts and
    /// scales the context (per block `prompt_scale_shift_table`).
    pub cross_attention_adaln: bool,
    /// LTX-2.3: the caption projection runs on the text side (feature extractor V2), so the DiT
    /// has no `caption_projection` / `audio_caption_projection` and its contexts arrive at the
    /// inner widths.
    pub caption_proj_before_connector: bool,
    /// LTX-2.5 sets it false: the video feed-forwards (`ff.net.*`) have no biases.
    pub ff_bias: bool,
    /// Biases of the audio feed-forwards (`audio_ff.net.*`); true in every official file.
    pub audio_ff_bias: bool,
    /// LTX-2.5: a learned `keyframes_abs_pos_embedding` `(1, D)` added after `patchify_proj` to
    /// the video tokens that encode a single pixel frame ([`super::Modality::keyframes_mask`]).
    pub use_keyframes_abs_pos_embedding: bool,
    /// With `cross_attention_adaln`: whether the σ-driven `prompt_adaln_single` exists. Without it
    /// only the static per-block `prompt_scale_shift_table` modulates the text context, which makes
    /// the text keys/values independent of σ again (ltx-core 1.2.0, default true).
    pub use_prompt_adaln_single: bool,
    /// Which timesteps drive the A↔V cross-attention AdaLN. Not a checkpoint key: it is the
    /// behaviour of the ltx-core release a generation is matched to, set by the loader.
    #[serde(skip)]
    pub av_cross_adaln: AvCrossAdaln,
}

/// The inputs of the A↔V cross-attention AdaLNs (`av_ca_*_scale_shift_adaln_single` and
/// `av_ca_*_gate_adaln_single`), which changed between ltx-core releases. They agree whenever every
/// token of a stream has that stream's σ as timestep (no conditioned tokens).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AvCrossAdaln {
    /// ltx-core 1.0.0 (LTX-2, LTX-2.3): scale/shift and gate both from the *other* stream's
    /// scalar σ, one value per sample.
    #[default]
    OtherSigma,
    /// ltx-core 1.2.0 (LTX-2.5): scale/shift from this stream's per-token timesteps (denoise
    /// mask · σ, so conditioned tokens get 0), the gate from the other stream's σ.
    OwnTimesteps,
}

/// Bounds [`TransformerConfig::validate`] puts on a file's config (far above any LTX model: the
/// 22B has 48 layers of 32 heads of 128).
pub const MAX_LAYERS: usize = 1024;
pub const MAX_HEADS: usize = 1024;
pub const MAX_HEAD_DIM: usize = 4096;
pub const MAX_CHANNELS: usize = 1 << 16;

/// Feed-forward expansion (hard-coded `mult=4` in ltx-core's `FeedForward`).
pub const FF_MULT: usize = 4;
/// Sinusoidal channels of the timestep embedding.
pub const TIMESTEP_CHANNELS: usize = 256;
/// AdaLN rows per block (shift/scale/gate for self-attention and feed-forward).
pub const ADALN_ROWS: usize = 6;
/// Extra AdaLN rows with `cross_attention_adaln` (shift/scale/gate of the text cross-attention).
pub const ADALN_CROSS_ATTN_ROWS: usize = 3;
/// Rows of `prompt_adaln_single` and of the per-block `prompt_scale_shift_table` (shift, scale of
/// the text context).
pub const PROMPT_ADALN_ROWS: usize = 2;
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
            ff_bias: true,
            audio_ff_bias: true,
            use_keyframes_abs_pos_embedding: false,
            use_prompt_adaln_single: true,
            av_cross_adaln: AvCrossAdaln::OtherSigma,
        }
    }

    /// LTX-2.3 22B (`ltx-2.3-22b-*.safetensors`): the 19B geometry (48 blocks, video 32×128 with
    /// 4096-wide text, audio 32×64 with 2048-wide text) with gated attention, cross-attention
    /// AdaLN and the caption projection moved to the text side. Stands in for a 2.3 file without
    /// `config` metadata and sizes the benchmarks.
    pub fn ltx23_22b() -> Self {
        Self {
            apply_gated_attention: true,
            cross_attention_adaln: true,
            caption_proj_before_connector: true,
            ..Self::ltx2_19b()
        }
    }

    /// LTX-2.5 22B (`ltx-2.5-22b-*-transformer-*.safetensors`, ltx-core 1.2.0): the 2.3
    /// architecture with bias-free video feed-forwards, the keyframe absolute-position embedding
    /// and 1.2.0's A↔V AdaLN inputs. Stands in for a 2.5 file without `config` metadata and sizes
    /// the benchmarks.
    pub fn ltx25_22b() -> Self {
        Self {
            ff_bias: false,
            use_keyframes_abs_pos_embedding: true,
            av_cross_adaln: AvCrossAdaln::OwnTimesteps,
            ..Self::ltx23_22b()
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

    /// Errors on settings this implementation does not run and on inconsistent widths.
    pub fn validate(&self) -> Result<(), ConfigError> {
        // The config sizes what is checked and built (`tensor_shapes` lists every layer): a
        // crafted file's absurd values must fail here, not as an allocation of their size or an
        // arithmetic overflow. The bounds are orders of magnitude above any LTX model.
        for (key, value, max) in [
            ("num_layers", self.num_layers, MAX_LAYERS),
            ("num_attention_heads", self.num_attention_heads, MAX_HEADS),
            ("attention_head_dim", self.attention_head_dim, MAX_HEAD_DIM),
            (
                "audio_num_attention_heads",
                self.audio_num_attention_heads,
                MAX_HEADS,
            ),
            (
                "audio_attention_head_dim",
                self.audio_attention_head_dim,
                MAX_HEAD_DIM,
            ),
            ("in_channels", self.in_channels, MAX_CHANNELS),
            ("out_channels", self.out_channels, MAX_CHANNELS),
            ("audio_in_channels", self.audio_in_channels, MAX_CHANNELS),
            ("audio_out_channels", self.audio_out_channels, MAX_CHANNELS),
            ("caption_channels", self.caption_channels, MAX_CHANNELS),
            (
                "cross_attention_dim",
                self.cross_attention_dim,
                MAX_HEADS * MAX_HEAD_DIM,
            ),
            (
                "audio_cross_attention_dim",
                self.audio_cross_attention_dim,
                MAX_HEADS * MAX_HEAD_DIM,
            ),
        ] {
            if value == 0 || value > max {
                return Err(ConfigError::Invalid(format!(
                    "{key} = {value} is outside 1..={max}"
                )));
            }
        }
        if self.positional_embedding_max_pos.len() > 8
            || self.audio_positional_embedding_max_pos.len() > 8
        {
            return Err(ConfigError::Invalid(
                "positional_embedding_max_pos has more than 8 axes".into(),
            ));
        }
        let unsupported = |key: &str| Err(ConfigError::Unsupported(key.to_string()));
        if self.rope_type != RopeType::Split {
            return unsupported("rope_type (only \"split\")");
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
        // ltx-core reshapes the context to (B, S, inner_dim) before attn2 reads it as
        // cross_attention_dim: the caption projection outputs inner_dim in 2.0, the connector in
        // 2.3 (and the cross-attention AdaLN modulates it with inner_dim-wide rows).
        let source = if self.caption_proj_before_connector {
            "the text connector output (caption_proj_before_connector)"
        } else {
            "the caption projection output"
        };
        if self.cross_attention_dim != self.inner_dim() {
            return Err(ConfigError::Invalid(format!(
                "cross_attention_dim {} != num_attention_heads * attention_head_dim {}, the width of {source}",
                self.cross_attention_dim,
                self.inner_dim()
            )));
        }
        if self.audio_cross_attention_dim != self.audio_inner_dim() {
            return Err(ConfigError::Invalid(format!(
                "audio_cross_attention_dim {} != audio_num_attention_heads * audio_attention_head_dim {}, the width of {source}",
                self.audio_cross_attention_dim,
                self.audio_inner_dim()
            )));
        }
        Ok(())
    }

    /// AdaLN rows per block: 6, or 9 with `cross_attention_adaln`.
    pub fn adaln_rows(&self) -> usize {
        ADALN_ROWS
            + if self.cross_attention_adaln {
                ADALN_CROSS_ATTN_ROWS
            } else {
                0
            }
    }

    /// Whether the DiT holds `caption_projection` / `audio_caption_projection` (2.0 layout).
    pub fn has_caption_projection(&self) -> bool {
        !self.caption_proj_before_connector
    }

    /// Whether the DiT holds `prompt_adaln_single` / `audio_prompt_adaln_single`.
    pub fn has_prompt_adaln(&self) -> bool {
        self.cross_attention_adaln && self.use_prompt_adaln_single
    }

    /// Whether the text keys/values of every block depend on the text alone, so a sampler may
    /// compute them once per stage ([`super::LtxModel::prepare_text`]). Not with the σ-driven
    /// prompt AdaLN: the context is then modulated by σ in every step.
    pub fn text_kv_cacheable(&self) -> bool {
        !self.has_prompt_adaln()
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
        let rows = self.adaln_rows();
        let mut adalns = vec![
            ("adaln_single", d, rows),
            ("audio_adaln_single", da, rows),
            ("av_ca_video_scale_shift_adaln_single", d, AV_CA_ROWS),
            ("av_ca_a2v_gate_adaln_single", d, 1),
            ("av_ca_audio_scale_shift_adaln_single", da, AV_CA_ROWS),
            ("av_ca_v2a_gate_adaln_single", da, 1),
        ];
        if self.has_prompt_adaln() {
            adalns.push(("prompt_adaln_single", d, PROMPT_ADALN_ROWS));
            adalns.push(("audio_prompt_adaln_single", da, PROMPT_ADALN_ROWS));
        }
        for (name, dim, k) in adalns {
            lin(
                &format!("{name}.emb.timestep_embedder.linear_1"),
                TIMESTEP_CHANNELS,
                dim,
            );
            lin(&format!("{name}.emb.timestep_embedder.linear_2"), dim, dim);
            lin(&format!("{name}.linear"), dim, k * dim);
        }
        if self.has_caption_projection() {
            lin("caption_projection.linear_1", self.caption_channels, d);
            lin("caption_projection.linear_2", d, d);
            lin(
                "audio_caption_projection.linear_1",
                self.caption_channels,
                da,
            );
            lin("audio_caption_projection.linear_2", da, da);
        }
        lin("proj_out", d, self.out_channels);
        lin("audio_proj_out", da, self.audio_out_channels);
        let gated = self.apply_gated_attention;
        // `heads` only sizes the gate (Linear query_dim -> heads).
        let attn = |out: &mut Vec<(String, Vec<usize>)>,
                    name: &str,
                    q: usize,
                    kv: usize,
                    (heads, head_dim): (usize, usize)| {
            let inner = heads * head_dim;
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
            if gated {
                out.push((format!("{name}.to_gate_logits.weight"), vec![heads, q]));
                out.push((format!("{name}.to_gate_logits.bias"), vec![heads]));
            }
        };
        let ff = |out: &mut Vec<(String, Vec<usize>)>, name: &str, dim: usize, bias: bool| {
            let inner = dim * FF_MULT;
            out.push((format!("{name}.net.0.proj.weight"), vec![inner, dim]));
            if bias {
                out.push((format!("{name}.net.0.proj.bias"), vec![inner]));
            }
            out.push((format!("{name}.net.2.weight"), vec![dim, inner]));
            if bias {
                out.push((format!("{name}.net.2.bias"), vec![dim]));
            }
        };
        if self.use_keyframes_abs_pos_embedding {
            out.push(("keyframes_abs_pos_embedding".into(), vec![1, d]));
        }
        out.push(("scale_shift_table".into(), vec![2, d]));
        out.push(("audio_scale_shift_table".into(), vec![2, da]));
        let xa = self.audio_cross_attention_dim;
        let vh = (self.num_attention_heads, self.attention_head_dim);
        let ah = (
            self.audio_num_attention_heads,
            self.audio_attention_head_dim,
        );
        for i in 0..self.num_layers {
            let p = format!("transformer_blocks.{i}");
            out.push((format!("{p}.scale_shift_table"), vec![rows, d]));
            out.push((format!("{p}.audio_scale_shift_table"), vec![rows, da]));
            if self.cross_attention_adaln {
                out.push((
                    format!("{p}.prompt_scale_shift_table"),
                    vec![PROMPT_ADALN_ROWS, d],
                ));
                out.push((
                    format!("{p}.audio_prompt_scale_shift_table"),
                    vec![PROMPT_ADALN_ROWS, da],
                ));
            }
            out.push((
                format!("{p}.scale_shift_table_a2v_ca_video"),
                vec![AV_CA_ROWS + 1, d],
            ));
            out.push((
                format!("{p}.scale_shift_table_a2v_ca_audio"),
                vec![AV_CA_ROWS + 1, da],
            ));
            attn(&mut out, &format!("{p}.attn1"), d, d, vh);
            attn(
                &mut out,
                &format!("{p}.attn2"),
                d,
                self.cross_attention_dim,
                vh,
            );
            attn(&mut out, &format!("{p}.audio_attn1"), da, da, ah);
            attn(&mut out, &format!("{p}.audio_attn2"), da, xa, ah);
            // ltx-core builds both A↔V attentions with the audio heads × audio head_dim.
            attn(&mut out, &format!("{p}.audio_to_video_attn"), d, da, ah);
            attn(&mut out, &format!("{p}.video_to_audio_attn"), da, d, ah);
            ff(&mut out, &format!("{p}.ff"), d, self.ff_bias);
            ff(&mut out, &format!("{p}.audio_ff"), da, self.audio_ff_bias);
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
    #[error("transformer config: unsupported setting `{0}`")]
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

    fn tiny(flags: bool) -> TransformerConfig {
        TransformerConfig {
            num_layers: 1,
            num_attention_heads: 2,
            attention_head_dim: 8,
            cross_attention_dim: 16,
            audio_num_attention_heads: 2,
            audio_attention_head_dim: 4,
            audio_cross_attention_dim: 8,
            caption_channels: 12,
            apply_gated_attention: flags,
            cross_attention_adaln: flags,
            caption_proj_before_connector: flags,
            ..TransformerConfig::ltx2_19b()
        }
    }

    #[test]
    fn ltx23_flags_are_accepted() {
        let cfg = TransformerConfig::from_checkpoint_config(&serde_json::json!({
            "transformer": {
                "apply_gated_attention": true,
                "cross_attention_adaln": true,
                "caption_proj_before_connector": true,
                "caption_projection_first_linear": false,
                "connector_apply_gated_attention": true
            }
        }))
        .unwrap();
        assert_eq!(cfg, TransformerConfig::ltx23_22b());
        assert_eq!(cfg.adaln_rows(), 9);
        assert!(!cfg.has_caption_projection());
        assert!(!cfg.text_kv_cacheable());
    }

    #[test]
    fn ltx23_contexts_must_arrive_at_the_inner_widths() {
        let err = TransformerConfig::from_checkpoint_config(&serde_json::json!({
            "transformer": { "caption_proj_before_connector": true, "audio_cross_attention_dim": 4096 }
        }))
        .unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("audio_cross_attention_dim 4096"), "{msg}");
        assert!(msg.contains("connector"), "{msg}");
    }

    #[test]
    fn ltx23_tensor_layout() {
        let (v20, v23) = (tiny(false), tiny(true));
        let keys = |c: &TransformerConfig| -> std::collections::BTreeMap<String, Vec<usize>> {
            c.tensor_shapes().into_iter().collect()
        };
        let (k20, k23) = (keys(&v20), keys(&v23));
        let shape =
            |k: &std::collections::BTreeMap<String, Vec<usize>>, key: &str| k.get(key).cloned();
        // Gates: (heads, query_dim) in all six attentions; the A↔V ones have the audio heads.
        for (attn, q) in [
            ("attn1", 16),
            ("attn2", 16),
            ("audio_attn1", 8),
            ("audio_attn2", 8),
            ("audio_to_video_attn", 16),
            ("video_to_audio_attn", 8),
        ] {
            let key = format!("transformer_blocks.0.{attn}.to_gate_logits.weight");
            assert_eq!(shape(&k23, &key), Some(vec![2, q]), "{key}");
            assert_eq!(shape(&k20, &key), None, "{key}");
        }
        assert_eq!(
            shape(&k23, "transformer_blocks.0.scale_shift_table"),
            Some(vec![9, 16])
        );
        assert_eq!(
            shape(&k20, "transformer_blocks.0.scale_shift_table"),
            Some(vec![6, 16])
        );
        assert_eq!(
            shape(&k23, "transformer_blocks.0.audio_scale_shift_table"),
            Some(vec![9, 8])
        );
        assert_eq!(
            shape(&k23, "adaln_single.linear.weight"),
            Some(vec![9 * 16, 16])
        );
        assert_eq!(
            shape(&k23, "audio_adaln_single.linear.weight"),
            Some(vec![9 * 8, 8])
        );
        assert_eq!(
            shape(&k23, "prompt_adaln_single.linear.weight"),
            Some(vec![2 * 16, 16])
        );
        assert_eq!(
            shape(
                &k23,
                "audio_prompt_adaln_single.emb.timestep_embedder.linear_1.weight"
            ),
            Some(vec![8, TIMESTEP_CHANNELS])
        );
        assert_eq!(
            shape(&k23, "transformer_blocks.0.prompt_scale_shift_table"),
            Some(vec![2, 16])
        );
        assert_eq!(
            shape(&k23, "transformer_blocks.0.audio_prompt_scale_shift_table"),
            Some(vec![2, 8])
        );
        assert!(k23.keys().all(|k| !k.contains("caption_projection")));
        assert!(k20.keys().all(|k| !k.contains("prompt_")));
        // Per block: 6 gates (weight + bias) and 2 prompt tables; globally 2 prompt AdaLNs
        // (6 tensors each) in, 2 caption projections (4 tensors each) out.
        assert_eq!(k23.len(), k20.len() + 6 * 2 + 2 + 2 * 6 - 2 * 4);
    }

    #[test]
    fn ltx23_22b_layout_has_4186_tensors() {
        let cfg = TransformerConfig::ltx23_22b();
        cfg.validate().unwrap();
        let (n19, n23) = (
            TransformerConfig::ltx2_19b().parameter_count(),
            cfg.parameter_count(),
        );
        println!(
            "22B DiT parameters: {n23} ({} tensors)",
            cfg.tensor_shapes().len()
        );
        // 3510 (19B) + 48 blocks × (12 gate tensors + 2 prompt tables) + 12 (prompt AdaLNs) − 8
        // (caption projections).
        assert_eq!(cfg.tensor_shapes().len(), 3510 + 48 * 14 + 12 - 8);
        // Gates 48·6·(heads·query_dim + heads), 3 more AdaLN rows, the prompt AdaLNs and tables,
        // minus the caption projections (3840-wide inputs).
        let (d, da) = (4096u64, 2048u64);
        let gate_params: u64 = 48
            * [d, d, da, da, d, da]
                .iter()
                .map(|&q| 32 * q + 32)
                .sum::<u64>();
        let adaln_extra = 3 * d * (d + 1) + 3 * da * (da + 1) + 48 * 3 * (d + da);
        let prompt = |w: u64| (256 * w + w) + (w * w + w) + (2 * w * w + 2 * w) + 48 * 2 * w;
        let caption = |w: u64| (3840 * w + w) + (w * w + w);
        assert_eq!(
            n23,
            n19 + gate_params + adaln_extra + prompt(d) + prompt(da) - caption(d) - caption(da)
        );
    }

    #[test]
    fn ltx25_flags_are_read_with_ltx_core_defaults() {
        let cfg = TransformerConfig::from_checkpoint_config(&serde_json::json!({
            "transformer": {
                "apply_gated_attention": true,
                "cross_attention_adaln": true,
                "caption_proj_before_connector": true,
                "ff_bias": false,
                "audio_ff_bias": true,
                "use_keyframes_abs_pos_embedding": true
            }
        }))
        .unwrap();
        // The A↔V AdaLN inputs are not a config key: the loader sets them from the generation.
        assert_eq!(
            cfg,
            TransformerConfig {
                av_cross_adaln: AvCrossAdaln::OtherSigma,
                ..TransformerConfig::ltx25_22b()
            }
        );
        let old =
            TransformerConfig::from_checkpoint_config(&serde_json::json!({"transformer": {}}))
                .unwrap();
        assert!(old.ff_bias && old.audio_ff_bias && old.use_prompt_adaln_single);
        assert!(!old.use_keyframes_abs_pos_embedding);
    }

    #[test]
    fn ltx25_tensor_layout() {
        let v23 = tiny(true);
        let v25 = TransformerConfig {
            ff_bias: false,
            use_keyframes_abs_pos_embedding: true,
            ..tiny(true)
        };
        let keys = |c: &TransformerConfig| -> std::collections::BTreeMap<String, Vec<usize>> {
            c.tensor_shapes().into_iter().collect()
        };
        let (k23, k25) = (keys(&v23), keys(&v25));
        let gone: Vec<&String> = k23.keys().filter(|k| !k25.contains_key(*k)).collect();
        let added: Vec<&String> = k25.keys().filter(|k| !k23.contains_key(*k)).collect();
        assert_eq!(
            gone,
            [
                "transformer_blocks.0.ff.net.0.proj.bias",
                "transformer_blocks.0.ff.net.2.bias"
            ]
        );
        assert_eq!(added, ["keyframes_abs_pos_embedding"]);
        assert_eq!(k25["keyframes_abs_pos_embedding"], vec![1, 16]);
        assert!(k25.contains_key("transformer_blocks.0.audio_ff.net.2.bias"));
        let no_audio_bias = TransformerConfig {
            audio_ff_bias: false,
            ..v25.clone()
        };
        assert!(!keys(&no_audio_bias).contains_key("transformer_blocks.0.audio_ff.net.2.bias"));
    }

    /// Without `use_prompt_adaln_single` the prompt AdaLNs are gone (the per-block prompt tables
    /// stay) and the text keys/values are cacheable again.
    #[test]
    fn static_prompt_modulation() {
        let cfg = TransformerConfig {
            use_prompt_adaln_single: false,
            ..tiny(true)
        };
        let keys: Vec<String> = cfg.tensor_shapes().into_iter().map(|(k, _)| k).collect();
        assert!(!keys.iter().any(|k| k.contains("prompt_adaln_single")));
        assert!(keys.contains(&"transformer_blocks.0.prompt_scale_shift_table".to_string()));
        assert!(cfg.text_kv_cacheable());
        assert!(!tiny(true).text_kv_cacheable());
        let vb = candle_nn::VarBuilder::zeros(candle_core::DType::F32, &candle_core::Device::Cpu);
        let model = crate::transformer::LtxModel::new(&cfg, vb).unwrap();
        assert!(model.video.prompt_adaln_single.is_none());
        assert!(model.transformer_blocks[0]
            .prompt_scale_shift_table
            .is_some());
    }

    #[test]
    fn ltx25_22b_layout() {
        let (c23, c25) = (
            TransformerConfig::ltx23_22b(),
            TransformerConfig::ltx25_22b(),
        );
        c25.validate().unwrap();
        println!(
            "LTX-2.5 22B DiT parameters: {} ({} tensors)",
            c25.parameter_count(),
            c25.tensor_shapes().len()
        );
        // 48 blocks lose the two video FF biases; one (1, 4096) keyframe embedding is added.
        assert_eq!(
            c25.tensor_shapes().len(),
            c23.tensor_shapes().len() - 48 * 2 + 1
        );
        let d = 4096u64;
        assert_eq!(
            c25.parameter_count(),
            c23.parameter_count() - 48 * (4 * d + d) + d
        );
    }

    #[test]
    fn tiny_ltx23_model_builds_from_shapes_alone() {
        let cfg = tiny(true);
        let vb = candle_nn::VarBuilder::zeros(candle_core::DType::F32, &candle_core::Device::Cpu);
        let model = crate::transformer::LtxModel::new(&cfg, vb).unwrap();
        assert!(model.video.caption_projection.is_none());
        assert!(model.audio.prompt_adaln_single.is_some());
        assert!(model.transformer_blocks[0].attn2.to_gate_logits.is_some());
    }

    #[test]
    fn absurd_sizes_are_refused_before_use() {
        for (key, value) in [
            ("num_layers", serde_json::json!(1_000_000_000_000u64)),
            ("num_attention_heads", serde_json::json!(1u64 << 40)),
            ("attention_head_dim", serde_json::json!(0)),
            ("in_channels", serde_json::json!(1u64 << 33)),
        ] {
            let config = serde_json::json!({ "transformer": { key: value } });
            let e = TransformerConfig::from_checkpoint_config(&config).unwrap_err();
            assert!(e.to_string().contains(key), "{e}");
        }
    }
}
