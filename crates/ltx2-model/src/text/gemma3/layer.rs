//! Gemma decoder layer pieces: the RMSNorm (Gemma-3 `(1 + w)`, Gemma-4 `w` or weightless), the gated
//! MLP (shared with Gemma-4) and the Gemma-3 sandwich-norm layer.

use candle_core::{DType, Module, Result, Tensor, D};
use candle_nn::VarBuilder;

use super::attention::{Gemma3Attention, RopeTable};
use super::config::{Gemma3Config, HiddenActivation};
use crate::linear::{linear_b, linear_fp8_per_tensor, tensor_bytes, Linear};
use crate::quantization::GemmaQuantization;

/// One attention or MLP projection, as stored or quantized to per-tensor FP8 at load.
pub(crate) fn projection(
    in_dim: usize,
    out_dim: usize,
    bias: bool,
    q: GemmaQuantization,
    vb: VarBuilder,
) -> Result<Linear> {
    match q {
        GemmaQuantization::None => linear_b(in_dim, out_dim, bias, vb),
        GemmaQuantization::Fp8 => linear_fp8_per_tensor(in_dim, out_dim, bias, vb),
    }
}

/// Gemma RMSNorm: `x * rsqrt(mean(x^2) + eps) * scale`, always in f32 then cast back, as HF
/// does whatever the model dtype (a bf16 norm visibly changes the real model's states). The scale
/// is `1 + w` in Gemma-3 (weights stored as offsets from one), `w` in Gemma-4, and absent for
/// Gemma-4's value norm.
#[derive(Debug, Clone)]
pub struct GemmaRmsNorm {
    /// The multiplier, kept in f32; `None` = no learned scale.
    scale: Option<Tensor>,
    eps: f64,
}

impl GemmaRmsNorm {
    /// Gemma-3: scale `1 + weight`.
    pub fn new(dim: usize, eps: f64, vb: VarBuilder) -> Result<Self> {
        let weight = vb.get(dim, "weight")?.to_dtype(DType::F32)?;
        Ok(Self {
            scale: Some((weight + 1.0)?),
            eps,
        })
    }

    /// Gemma-4: scale `weight` itself (HF initialises it to ones).
    pub fn with_weight(dim: usize, eps: f64, vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            scale: Some(vb.get(dim, "weight")?.to_dtype(DType::F32)?),
            eps,
        })
    }

    /// No learned scale (Gemma-4 `v_norm`, `with_scale=False`).
    pub fn without_weight(eps: f64) -> Self {
        Self { scale: None, eps }
    }

    /// Bytes of the gain (f32 whatever the model dtype; none without a learned scale).
    pub fn resident_bytes(&self) -> u64 {
        self.scale.as_ref().map_or(0, tensor_bytes)
    }
}

impl Module for GemmaRmsNorm {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let dtype = x.dtype();
        let x = x.to_dtype(DType::F32)?;
        let inv_rms = (x.sqr()?.mean_keepdim(D::Minus1)? + self.eps)?
            .sqrt()?
            .recip()?;
        let normed = x.broadcast_mul(&inv_rms)?;
        match &self.scale {
            Some(scale) => normed.broadcast_mul(scale)?.to_dtype(dtype),
            None => normed.to_dtype(dtype),
        }
    }
}

/// `down_proj(act(gate_proj(x)) * up_proj(x))`, bias-free (Gemma-3 and Gemma-4).
#[derive(Debug, Clone)]
pub struct GemmaMlp {
    gate_proj: Linear,
    up_proj: Linear,
    down_proj: Linear,
    act: HiddenActivation,
}

impl GemmaMlp {
    /// The three projections held as `q` says.
    pub fn new(
        hidden: usize,
        intermediate: usize,
        act: HiddenActivation,
        q: GemmaQuantization,
        vb: VarBuilder,
    ) -> Result<Self> {
        let proj = |i: usize, o: usize, name: &str| projection(i, o, false, q, vb.pp(name));
        Ok(Self {
            gate_proj: proj(hidden, intermediate, "gate_proj")?,
            up_proj: proj(hidden, intermediate, "up_proj")?,
            down_proj: proj(intermediate, hidden, "down_proj")?,
            act,
        })
    }

    pub fn resident_bytes(&self) -> u64 {
        [&self.gate_proj, &self.up_proj, &self.down_proj]
            .iter()
            .map(|l| l.resident_bytes())
            .sum()
    }
}

impl Module for GemmaMlp {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let gate = self.gate_proj.forward(x)?;
        let gate = match self.act {
            // candle's `gelu` is the tanh approximation (= PyTorch `gelu(approximate="tanh")`).
            HiddenActivation::GeluPytorchTanh => gate.gelu()?,
            HiddenActivation::Gelu => gate.gelu_erf()?,
        };
        self.down_proj.forward(&(gate * self.up_proj.forward(x)?)?)
    }
}

/// One decoder layer with Gemma-3's sandwich norms:
/// `h = x + post_attention_layernorm(attn(input_layernorm(x)))`,
/// `out = h + post_feedforward_layernorm(mlp(pre_feedforward_layernorm(h)))`.
#[derive(Debug, Clone)]
pub struct Gemma3DecoderLayer {
    input_layernorm: GemmaRmsNorm,
    self_attn: Gemma3Attention,
    post_attention_layernorm: GemmaRmsNorm,
    pre_feedforward_layernorm: GemmaRmsNorm,
    mlp: GemmaMlp,
    post_feedforward_layernorm: GemmaRmsNorm,
}

impl Gemma3DecoderLayer {
    pub fn new(cfg: &Gemma3Config, q: GemmaQuantization, vb: VarBuilder) -> Result<Self> {
        let norm = |name: &str| GemmaRmsNorm::new(cfg.hidden_size, cfg.rms_norm_eps, vb.pp(name));
        Ok(Self {
            input_layernorm: norm("input_layernorm")?,
            self_attn: Gemma3Attention::new(cfg, q, vb.pp("self_attn"))?,
            post_attention_layernorm: norm("post_attention_layernorm")?,
            pre_feedforward_layernorm: norm("pre_feedforward_layernorm")?,
            mlp: GemmaMlp::new(
                cfg.hidden_size,
                cfg.intermediate_size,
                cfg.hidden_activation,
                q,
                vb.pp("mlp"),
            )?,
            post_feedforward_layernorm: norm("post_feedforward_layernorm")?,
        })
    }

    /// Bytes the layer holds (projections as loaded, f32 norm gains).
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
    }

    /// `mask`: additive `(B, 1, T, T)` f32 mask for this layer's attention kind.
    pub fn forward(&self, x: &Tensor, rope: &RopeTable, mask: &Tensor) -> Result<Tensor> {
        let attn = self
            .self_attn
            .forward(&self.input_layernorm.forward(x)?, rope, mask)?;
        let h = (x + self.post_attention_layernorm.forward(&attn)?)?;
        let mlp = self
            .mlp
            .forward(&self.pre_feedforward_layernorm.forward(&h)?)?;
        h + self.post_feedforward_layernorm.forward(&mlp)?
    }
}
