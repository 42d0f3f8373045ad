//! Gemma-4 decoder layer (`Gemma4UnifiedTextDecoderLayer`): Gemma-3's sandwich norms (with plain
//! `w` RMSNorm weights), the shared gated MLP (twice as wide on KV-shared layers with
//! `use_double_wide_mlp`), and the whole output scaled by the per-layer `layer_scalar` buffer.

use candle_core::{Module, Result, Tensor};
use candle_nn::VarBuilder;

use super::attention::{Gemma4Attention, SharedKv};
use super::config::Gemma4Config;
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
    pub fn new(cfg: &Gemma4Config, layer: usize, vb: VarBuilder) -> Result<Self> {
        let norm =
            |name: &str| GemmaRmsNorm::with_weight(cfg.hidden_size, cfg.rms_norm_eps, vb.pp(name));
        Ok(Self {
            input_layernorm: norm("input_layernorm")?,
            self_attn: Gemma4Attention::new(cfg, layer, vb.pp("self_attn"))?,
            post_attention_layernorm: norm("post_attention_layernorm")?,
            pre_feedforward_layernorm: norm("pre_feedforward_layernorm")?,
            mlp: GemmaMlp::new(
                cfg.hidden_size,
                cfg.layer_intermediate_size(layer),
                cfg.hidden_activation,
                vb.pp("mlp"),
            )?,
            post_feedforward_layernorm: norm("post_feedforward_layernorm")?,
            layer_scalar: vb.get(1, "layer_scalar")?,
        })
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
