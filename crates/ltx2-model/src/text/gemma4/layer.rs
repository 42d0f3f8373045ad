//! Gemma-4 decoder layer (`Gemma4UnifiedTextDecoderLayer`): Gemma-3's sandwich norms (with plain
//! `w` RMSNorm weights), the shared gated MLP (twice as wide on KV-shared layers with
//! `use_double_wide_mlp`), and the whole output scaled by the per-layer `layer_scalar` buffer.

use candle_core::{Module, Result, Tensor};
use candle_nn::VarBuilder;

use super::attention::{Gemma4Attention, SharedKv};
use super::config::Gemma4Config;
use crate::linear::tensor_bytes;
use crate::quantization::GemmaQuantization;
use crate::text::gemma3::{GemmaMlp, GemmaRmsNorm, RopeTable};

#[derive(Debug, Clone)]
pub struct Gemma4DecoderLayer {
    input_layernorm: GemmaRmsNorm,
    self_attn: Gemma4Attention,
    post_attention_layernorm: GemmaRmsNorm,
    pre_feedforward_layernorm: GemmaRmsNorm,
    mlp: GemmaMlp,
    post_feedforward_layernorm: GemmaRmsNorm,
    /// `layer_scalar` `(1,)`, a persistent buffer of the checkpoint.
    layer_scalar: Tensor,
}

impl Gemma4DecoderLayer {
    /// The attention and MLP projections held as `q` says.
    pub fn new(
        cfg: &Gemma4Config,
        layer: usize,
        q: GemmaQuantization,
        vb: VarBuilder,
    ) -> Result<Self> {
        let norm =
            |name: &str| GemmaRmsNorm::with_weight(cfg.hidden_size, cfg.rms_norm_eps, vb.pp(name));
        Ok(Self {
            input_layernorm: norm("input_layernorm")?,
            self_attn: Gemma4Attention::new(cfg, layer, q, vb.pp("self_attn"))?,
            post_attention_layernorm: norm("post_attention_layernorm")?,
            pre_feedforward_layernorm: norm("pre_feedforward_layernorm")?,
            mlp: GemmaMlp::new(
                cfg.hidden_size,
                cfg.layer_intermediate_size(layer),
                cfg.hidden_activation,
                q,
                vb.pp("mlp"),
            )?,
            post_feedforward_layernorm: norm("post_feedforward_layernorm")?,
            layer_scalar: vb.get(1, "layer_scalar")?,
        })
    }

    /// Bytes the layer holds (projections as loaded, f32 norm gains, the layer scalar).
    pub fn resident_bytes(&self) -> u64 {
        let norms = [
            &self.input_layernorm,
            &self.post_attention_layernorm,
            &self.pre_feedforward_layernorm,
            &self.post_feedforward_layernorm,
        ];
        self.self_attn.resident_bytes()
            + self.mlp.resident_bytes()
            + norms.iter().map(|n| n.resident_bytes()).sum::<u64>()
            + tensor_bytes(&self.layer_scalar)
    }

    /// `h = x + post_attn_norm(attn(in_norm(x)))`,
    /// `out = (h + post_ff_norm(mlp(pre_ff_norm(h)))) * layer_scalar`.
    pub fn forward(
        &self,
        x: &Tensor,
        rope: &RopeTable,
        mask: &Tensor,
        shared: &mut SharedKv,
    ) -> Result<Tensor> {
        let attn = self
            .self_attn
            .forward(&self.input_layernorm.forward(x)?, rope, mask, shared)?;
        let h = (x + self.post_attention_layernorm.forward(&attn)?)?;
        let mlp = self
            .mlp
            .forward(&self.pre_feedforward_layernorm.forward(&h)?)?;
        (h + self.post_feedforward_layernorm.forward(&mlp)?)?
            .broadcast_mul(&self.layer_scalar.to_dtype(x.dtype())?)
    }
}
