//! ltx-core `Embeddings1DConnector` (video and audio: same architecture, separate weights under
//! `model.diffusion_model.{video,audio}_embeddings_connector.`): padding replaced by learnable
//! registers with the valid tokens moved to the front, 1-D split RoPE over token indices, pre-norm
//! self-attention / feed-forward blocks, a final weightless RMSNorm. Attention, RoPE, norms and
//! feed-forward are the DiT's own modules. LTX-2.3 (`connector_apply_gated_attention`) adds the
//! per-head `attn1.to_gate_logits` gate and gives the audio connector its own width
//! (`audio_connector_*`), both read from the checkpoint config.

use candle_core::{DType, Module, Result, Tensor};
use candle_nn::VarBuilder;
use serde::Deserialize;

use crate::quantization::Quantization;
use crate::text::TextError;
use crate::transformer::attention::{Attention, AttentionConfig};
use crate::transformer::feed_forward::FeedForward;
use crate::transformer::norm::{additive_mask, rms_norm};
use crate::transformer::rope::{
    index_positions, split_rope, FrequenciesPrecision, Rope, RopeSpec, RopeType,
};

/// ltx-core's `rms_norm` / `Attention` default epsilon.
const NORM_EPS: f64 = 1e-6;
/// ltx-core's `FeedForward` expansion.
const FF_MULT: usize = 4;

/// Which of the two connectors; selects the checkpoint prefix and the `audio_connector_*` overrides.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectorKind {
    Video,
    Audio,
}

impl ConnectorKind {
    /// Key prefix relative to the checkpoint root.
    pub fn checkpoint_prefix(self) -> &'static str {
        match self {
            Self::Video => "model.diffusion_model.video_embeddings_connector",
            Self::Audio => "model.diffusion_model.audio_embeddings_connector",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct ConnectorConfig {
    pub num_attention_heads: usize,
    pub attention_head_dim: usize,
    pub num_layers: usize,
    /// `None` disables register replacement (the padding mask is then kept).
    pub num_learnable_registers: Option<usize>,
    pub positional_embedding_max_pos: Vec<f64>,
    /// Not configurable in ltx-core (constructor default).
    pub positional_embedding_theta: f64,
    pub frequencies_precision: FrequenciesPrecision,
    /// `connector_apply_gated_attention` (LTX-2.3): `attn1.to_gate_logits` in every block.
    pub apply_gated_attention: bool,
    /// `connector_ff_bias` (ltx-core 1.2.0, default true): biases of the feed-forward linears.
    pub ff_bias: bool,
}

/// The connector keys of the checkpoint's `transformer` config section.
#[derive(Debug, Default, Deserialize)]
struct ConnectorKeys {
    connector_num_attention_heads: Option<usize>,
    connector_attention_head_dim: Option<usize>,
    connector_num_layers: Option<usize>,
    connector_num_learnable_registers: Option<usize>,
    connector_positional_embedding_max_pos: Option<Vec<f64>>,
    audio_connector_num_attention_heads: Option<usize>,
    audio_connector_attention_head_dim: Option<usize>,
    audio_connector_num_layers: Option<usize>,
    connector_apply_gated_attention: Option<bool>,
    connector_ff_bias: Option<bool>,
    rope_type: Option<RopeType>,
    frequencies_precision: Option<FrequenciesPrecision>,
}

impl ConnectorConfig {
    /// LTX-2.0 19B: 30 heads x 128, 2 layers, 128 registers, `max_pos [4096]`, float64 grid.
    pub fn ltx2_19b() -> Self {
        Self {
            num_attention_heads: 30,
            attention_head_dim: 128,
            num_layers: 2,
            num_learnable_registers: Some(128),
            positional_embedding_max_pos: vec![4096.0],
            positional_embedding_theta: 10000.0,
            frequencies_precision: FrequenciesPrecision::Float64,
            apply_gated_attention: false,
            ff_bias: true,
        }
    }

    /// LTX-2.3 22B: gated, video 32 x 128 (4096), audio 32 x 64 (2048), 8 layers (the widths of
    /// the 22B DiT; the checkpoint config says so itself, this is for tests and benchmarks).
    pub fn ltx23_22b(kind: ConnectorKind) -> Self {
        let head_dim = match kind {
            ConnectorKind::Video => 128,
            ConnectorKind::Audio => 64,
        };
        Self {
            num_attention_heads: 32,
            attention_head_dim: head_dim,
            num_layers: 8,
            apply_gated_attention: true,
            ..Self::ltx2_19b()
        }
    }

    /// From the whole checkpoint `config` JSON, as ltx-core's (Audio)Embeddings1DConnectorConfigurator.
    ///
    /// One deliberate difference: an absent `connector_positional_embedding_max_pos` falls back to
    /// the 19B value `[4096]` (what diffusers / ComfyUI hard-code and the checkpoint is expected to
    /// hold), not to ltx-core's constructor default `[1]` (ltx2-architecture.md §10.2); a warning
    /// is logged.
    pub fn from_checkpoint_config(
        config: &serde_json::Value,
        kind: ConnectorKind,
    ) -> std::result::Result<Self, TextError> {
        let keys: ConnectorKeys = match config.get("transformer") {
            Some(section) => serde_json::from_value(section.clone())
                .map_err(|e| TextError::Config(format!("transformer (connector keys): {e}")))?,
            None => ConnectorKeys::default(),
        };
        if keys.rope_type.is_some_and(|r| r != RopeType::Split) {
            return Err(TextError::Config(
                "connector: only rope_type \"split\" is supported".into(),
            ));
        }
        let base = Self::ltx2_19b();
        let heads = keys
            .connector_num_attention_heads
            .unwrap_or(base.num_attention_heads);
        let head_dim = keys
            .connector_attention_head_dim
            .unwrap_or(base.attention_head_dim);
        let layers = keys.connector_num_layers.unwrap_or(base.num_layers);
        let (heads, head_dim, layers) = match kind {
            ConnectorKind::Video => (heads, head_dim, layers),
            ConnectorKind::Audio => (
                keys.audio_connector_num_attention_heads.unwrap_or(heads),
                keys.audio_connector_attention_head_dim.unwrap_or(head_dim),
                keys.audio_connector_num_layers.unwrap_or(layers),
            ),
        };
        let max_pos = keys
            .connector_positional_embedding_max_pos
            .unwrap_or_else(|| {
                tracing::warn!(
                    "checkpoint config has no connector_positional_embedding_max_pos; using {:?}",
                    base.positional_embedding_max_pos
                );
                base.positional_embedding_max_pos.clone()
            });
        if max_pos.len() != 1 {
            return Err(TextError::Config(format!(
                "connector_positional_embedding_max_pos must have 1 entry, got {max_pos:?}"
            )));
        }
        Ok(Self {
            num_attention_heads: heads,
            attention_head_dim: head_dim,
            num_layers: layers,
            num_learnable_registers: Some(keys.connector_num_learnable_registers.unwrap_or(128))
                .filter(|&n| n > 0),
            positional_embedding_max_pos: max_pos,
            positional_embedding_theta: base.positional_embedding_theta,
            frequencies_precision: keys
                .frequencies_precision
                .unwrap_or(base.frequencies_precision),
            apply_gated_attention: keys
                .connector_apply_gated_attention
                .unwrap_or(base.apply_gated_attention),
            ff_bias: keys.connector_ff_bias.unwrap_or(base.ff_bias),
        })
    }

    pub fn inner_dim(&self) -> usize {
        self.num_attention_heads * self.attention_head_dim
    }

    fn rope_spec(&self) -> RopeSpec {
        RopeSpec {
            max_pos: self.positional_embedding_max_pos.clone(),
            theta: self.positional_embedding_theta,
            inner_dim: self.inner_dim(),
            heads: self.num_attention_heads,
            precision: self.frequencies_precision,
        }
    }
}

/// `_BasicTransformerBlock1D`: `x += attn1(rms(x))`, `x += ff(rms(x))`.
#[derive(Debug, Clone)]
struct BasicTransformerBlock1D {
    attn1: Attention,
    ff: FeedForward,
}

impl BasicTransformerBlock1D {
    fn new(cfg: &ConnectorConfig, vb: VarBuilder) -> Result<Self> {
        let dim = cfg.inner_dim();
        let attn = AttentionConfig {
            query_dim: dim,
            context_dim: dim,
            heads: cfg.num_attention_heads,
            head_dim: cfg.attention_head_dim,
            norm_eps: NORM_EPS,
            gated: cfg.apply_gated_attention,
        };
        Ok(Self {
            attn1: Attention::new(&attn, vb.pp("attn1"))?,
            // Not a DiT block: ltx-core's quantization policies leave the connectors' linears alone.
            ff: FeedForward::new_with(
                dim,
                dim * FF_MULT,
                dim,
                cfg.ff_bias,
                Quantization::None,
                vb.pp("ff"),
            )?,
        })
    }

    fn forward(&self, x: &Tensor, rope: &Rope, mask: Option<&Tensor>) -> Result<Tensor> {
        let attn =
            self.attn1
                .forward(&rms_norm(x, None, NORM_EPS)?, None, Some(rope), None, mask)?;
        let x = (x + attn)?;
        let ff = self.ff.forward(&rms_norm(&x, None, NORM_EPS)?)?;
        x + ff
    }
}

#[derive(Debug, Clone)]
pub struct Embeddings1DConnector {
    learnable_registers: Option<Tensor>,
    transformer_1d_blocks: Vec<BasicTransformerBlock1D>,
    cfg: ConnectorConfig,
}

impl Embeddings1DConnector {
    /// `vb` is rooted at `model.diffusion_model.{video,audio}_embeddings_connector`.
    pub fn new(cfg: &ConnectorConfig, vb: VarBuilder) -> Result<Self> {
        let learnable_registers = match cfg.num_learnable_registers {
            Some(n) => Some(vb.get((n, cfg.inner_dim()), "learnable_registers")?),
            None => None,
        };
        let transformer_1d_blocks = (0..cfg.num_layers)
            .map(|i| BasicTransformerBlock1D::new(cfg, vb.pp("transformer_1d_blocks").pp(i)))
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            learnable_registers,
            transformer_1d_blocks,
            cfg: cfg.clone(),
        })
    }

    pub fn config(&self) -> &ConnectorConfig {
        &self.cfg
    }

    /// `features (B, T, D)` with `mask (B, T)` (1 = valid token, any side of padding) ->
    /// `(B, T, D)`. With registers (LTX-2), every output position is valid (full attention).
    pub fn forward(&self, features: &Tensor, mask: &Tensor) -> Result<Tensor> {
        match &self.learnable_registers {
            Some(_) => self.run(&self.registers_applied(features, mask)?, None),
            None => self.run(features, Some(&additive_mask(mask, features.dtype())?)),
        }
    }

    /// Register replacement alone (the golden's `dbg.*.block0_in`): per sample, the valid tokens
    /// in order, then registers up to `T`.
    pub fn registers_applied(&self, features: &Tensor, mask: &Tensor) -> Result<Tensor> {
        let (b, t, _) = features.dims3()?;
        let keep = mask
            .to_dtype(DType::F32)?
            .reshape((b, t))?
            .to_vec2::<f32>()?;
        let mut rows = Vec::with_capacity(b);
        for (bi, keep) in keep.iter().enumerate() {
            let valid: Vec<u32> = (0..t as u32).filter(|&j| keep[j as usize] != 0.0).collect();
            let n = valid.len();
            let idx = Tensor::from_vec(valid, n, features.device())?;
            let compact = features.get(bi)?.index_select(&idx, 0)?.unsqueeze(0)?;
            rows.push(self.with_registers(&compact, t)?);
        }
        Tensor::cat(&rows, 0)
    }

    /// The fast path for one left- or right-padded prompt already reduced to its `n` valid tokens
    /// `valid (1, n, D)`: the output is `(1, seq_len, D)`, identical to [`Self::forward`] on the
    /// padded features. Requires registers (LTX-2 always has them).
    pub fn forward_compact(&self, valid: &Tensor, seq_len: usize) -> Result<Tensor> {
        self.run(&self.with_registers(valid, seq_len)?, None)
    }

    /// `_replace_padded_with_learnable_registers` on a compacted prompt: positions `n..seq_len`
    /// get `learnable_registers[p % num_registers]`.
    fn with_registers(&self, valid: &Tensor, seq_len: usize) -> Result<Tensor> {
        let Some(registers) = self.learnable_registers.as_ref() else {
            candle_core::bail!("connector has no learnable registers");
        };
        let (_, n, _) = valid.dims3()?;
        if n > seq_len {
            candle_core::bail!("connector: {n} valid tokens exceed the sequence length {seq_len}");
        }
        if n == seq_len {
            return Ok(valid.clone());
        }
        let count = registers.dim(0)? as u32;
        let idx: Vec<u32> = (n as u32..seq_len as u32).map(|p| p % count).collect();
        let idx = Tensor::from_vec(idx, seq_len - n, valid.device())?;
        let fill = registers
            .index_select(&idx, 0)?
            .to_dtype(valid.dtype())?
            .unsqueeze(0)?;
        Tensor::cat(&[valid, &fill], 1)
    }

    /// The 1-D RoPE over positions `0..t`.
    fn rope(&self, t: usize, x: &Tensor) -> Result<Rope> {
        split_rope(
            &index_positions(t, x.device())?,
            &self.cfg.rope_spec(),
            x.dtype(),
        )
    }

    /// Block `index` alone on a register-filled input `x (B, T, D)` with full attention (the
    /// golden's `dbg.*_connector.block<index>_out` from `block<index>_in`).
    pub fn block_forward(&self, index: usize, x: &Tensor) -> Result<Tensor> {
        let Some(block) = self.transformer_1d_blocks.get(index) else {
            candle_core::bail!(
                "connector has {} blocks, no block {index}",
                self.transformer_1d_blocks.len()
            );
        };
        block.forward(x, &self.rope(x.dim(1)?, x)?, None)
    }

    /// RoPE over positions `0..T`, the blocks and the final weightless RMSNorm.
    fn run(&self, x: &Tensor, bias: Option<&Tensor>) -> Result<Tensor> {
        let rope = self.rope(x.dim(1)?, x)?;
        let mut x = x.clone();
        for block in &self.transformer_1d_blocks {
            x = block.forward(&x, &rope, bias)?;
        }
        rms_norm(&x, None, NORM_EPS)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_connector_keys_with_audio_overrides() {
        let config = serde_json::json!({"transformer": {
            "connector_num_attention_heads": 2, "connector_attention_head_dim": 16,
            "connector_num_layers": 2, "connector_positional_embedding_max_pos": [4096],
            "audio_connector_num_layers": 3, "frequencies_precision": "float32"
        }});
        let video = ConnectorConfig::from_checkpoint_config(&config, ConnectorKind::Video).unwrap();
        let audio = ConnectorConfig::from_checkpoint_config(&config, ConnectorKind::Audio).unwrap();
        assert_eq!((video.inner_dim(), video.num_layers), (32, 2));
        assert_eq!((audio.inner_dim(), audio.num_layers), (32, 3));
        assert_eq!(video.frequencies_precision, FrequenciesPrecision::Float32);
    }

    #[test]
    fn absent_keys_give_the_19b_connector() {
        let cfg =
            ConnectorConfig::from_checkpoint_config(&serde_json::json!({}), ConnectorKind::Audio)
                .unwrap();
        assert_eq!(cfg, ConnectorConfig::ltx2_19b());
    }

    #[test]
    fn reads_the_ltx23_connector_keys() {
        let config = serde_json::json!({"transformer": {
            "connector_num_attention_heads": 32, "connector_attention_head_dim": 128,
            "connector_num_layers": 8, "connector_positional_embedding_max_pos": [4096],
            "audio_connector_num_attention_heads": 32, "audio_connector_attention_head_dim": 64,
            "connector_apply_gated_attention": true
        }});
        for kind in [ConnectorKind::Video, ConnectorKind::Audio] {
            let cfg = ConnectorConfig::from_checkpoint_config(&config, kind).unwrap();
            assert_eq!(cfg, ConnectorConfig::ltx23_22b(kind));
        }
        assert_eq!(
            ConnectorConfig::ltx23_22b(ConnectorKind::Audio).inner_dim(),
            2048
        );
    }

    #[test]
    fn connector_ff_bias_false_loads_bias_free_feed_forwards() {
        use candle_core::{DType, Device};
        let config = serde_json::json!({"transformer": {
            "connector_num_attention_heads": 2, "connector_attention_head_dim": 4,
            "connector_num_layers": 1, "connector_positional_embedding_max_pos": [4096],
            "connector_ff_bias": false
        }});
        let cfg = ConnectorConfig::from_checkpoint_config(&config, ConnectorKind::Video).unwrap();
        assert!(!cfg.ff_bias);
        let vm = candle_nn::VarMap::new();
        let vb = VarBuilder::from_varmap(&vm, DType::F32, &Device::Cpu);
        Embeddings1DConnector::new(&cfg, vb).unwrap();
        let keys = vm
            .data()
            .lock()
            .unwrap()
            .keys()
            .cloned()
            .collect::<Vec<_>>();
        assert!(keys
            .iter()
            .any(|k| k == "transformer_1d_blocks.0.ff.net.2.weight"));
        assert!(
            !keys
                .iter()
                .any(|k| k.contains("ff.net") && k.ends_with(".bias")),
            "{keys:?}"
        );
    }

    #[test]
    fn gated_connector_loads_to_gate_logits() {
        use candle_core::{DType, Device};
        let mut cfg = ConnectorConfig::ltx2_19b();
        (
            cfg.num_attention_heads,
            cfg.attention_head_dim,
            cfg.num_layers,
        ) = (2, 4, 1);
        cfg.apply_gated_attention = true;
        let vm = candle_nn::VarMap::new();
        let vb = VarBuilder::from_varmap(&vm, DType::F32, &Device::Cpu);
        Embeddings1DConnector::new(&cfg, vb).unwrap();
        let keys = vm
            .data()
            .lock()
            .unwrap()
            .keys()
            .cloned()
            .collect::<Vec<_>>();
        assert!(
            keys.iter()
                .any(|k| k == "transformer_1d_blocks.0.attn1.to_gate_logits.weight"),
            "{keys:?}"
        );
    }
}
