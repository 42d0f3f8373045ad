//! `attention.py::Attention` of ltx-core: q/k/v projections, q/k RMSNorm over the whole inner dim
//! (before the head split), optional split RoPE on q and k, scaled dot-product attention with an
//! optional additive mask, the LTX-2.3 per-head output gate (`to_gate_logits`), `to_out.0`. Shared
//! by the DiT (self, text-cross and A↔V attentions) and the text connectors.

use candle_core::{Module, Result, Tensor};
use candle_nn::VarBuilder;

use super::norm::RmsNorm;
use super::rope::{apply_split_rope, Rope};
use crate::linear::{linear_q, Linear};
use crate::quantization::Quantization;

/// Geometry of one attention module.
#[derive(Debug, Clone, PartialEq)]
pub struct AttentionConfig {
    /// Width of the query input and of the output.
    pub query_dim: usize,
    /// Width of the key/value input (`query_dim` for self-attention).
    pub context_dim: usize,
    pub heads: usize,
    pub head_dim: usize,
    /// Epsilon of the q/k RMSNorms.
    pub norm_eps: f64,
    /// LTX-2.3 `apply_gated_attention`: `to_gate_logits` (Linear `query_dim -> heads`, bias) scales
    /// each head's output by `2·sigmoid(logits)` before `to_out`.
    pub gated: bool,
}

impl AttentionConfig {
    pub fn inner_dim(&self) -> usize {
        self.heads * self.head_dim
    }
}

/// Keys and values of a RoPE-less cross-attention over a fixed context (the text), computed once
/// and reused while only the queries change (every denoising step).
#[derive(Debug, Clone)]
pub struct ContextKv {
    /// `k_norm(to_k(context))` `(B, S, inner)`.
    pub k: Tensor,
    /// `to_v(context)` `(B, S, inner)`.
    pub v: Tensor,
}

#[derive(Debug, Clone)]
pub struct Attention {
    pub to_q: Linear,
    pub to_k: Linear,
    pub to_v: Linear,
    /// `to_out.0` in the checkpoint.
    pub to_out: Linear,
    pub q_norm: RmsNorm,
    pub k_norm: RmsNorm,
    /// LTX-2.3 per-head output gate, computed from the query input.
    pub to_gate_logits: Option<Linear>,
    heads: usize,
    head_dim: usize,
}

impl Attention {
    /// `vb` is rooted at the module (e.g. `transformer_blocks.3.attn1`); linears as stored.
    pub fn new(cfg: &AttentionConfig, vb: VarBuilder) -> Result<Self> {
        Self::new_quantized(cfg, Quantization::None, vb)
    }

    /// [`Self::new`] with the projections loaded under `quantization` (the DiT blocks).
    pub fn new_quantized(
        cfg: &AttentionConfig,
        quantization: Quantization,
        vb: VarBuilder,
    ) -> Result<Self> {
        let inner = cfg.inner_dim();
        let linear = |i: usize, o: usize, vb: VarBuilder| linear_q(i, o, true, quantization, vb);
        Ok(Self {
            to_q: linear(cfg.query_dim, inner, vb.pp("to_q"))?,
            to_k: linear(cfg.context_dim, inner, vb.pp("to_k"))?,
            to_v: linear(cfg.context_dim, inner, vb.pp("to_v"))?,
            to_out: linear(inner, cfg.query_dim, vb.pp("to_out").pp("0"))?,
            q_norm: RmsNorm::new(inner, cfg.norm_eps, vb.pp("q_norm"))?,
            k_norm: RmsNorm::new(inner, cfg.norm_eps, vb.pp("k_norm"))?,
            to_gate_logits: cfg
                .gated
                .then(|| linear(cfg.query_dim, cfg.heads, vb.pp("to_gate_logits")))
                .transpose()?,
            heads: cfg.heads,
            head_dim: cfg.head_dim,
        })
    }

    /// Bytes the projections, gate and q/k norms hold.
    pub fn resident_bytes(&self) -> u64 {
        [&self.to_q, &self.to_k, &self.to_v, &self.to_out]
            .into_iter()
            .chain(&self.to_gate_logits)
            .map(Linear::resident_bytes)
            .sum::<u64>()
            + self.q_norm.resident_bytes()
            + self.k_norm.resident_bytes()
    }

    pub fn heads(&self) -> usize {
        self.heads
    }

    pub fn head_dim(&self) -> usize {
        self.head_dim
    }

    /// `x` `(B, T, query_dim)`; `context` `(B, S, context_dim)` or `None` for self-attention.
    /// `pe` rotates q, and k too unless `k_pe` is given (cross-attention between two position sets).
    /// `mask` is an additive bias broadcastable to `(B, heads, T, S)` (see
    /// [`super::norm::additive_mask`]). Returns `(B, T, query_dim)`.
    pub fn forward(
        &self,
        x: &Tensor,
        context: Option<&Tensor>,
        pe: Option<&Rope>,
        k_pe: Option<&Rope>,
        mask: Option<&Tensor>,
    ) -> Result<Tensor> {
        let context = context.unwrap_or(x);
        let v = self.to_v.forward(context)?;
        let mut q = self.q_norm.forward(&self.to_q.forward(x)?)?;
        let mut k = self.k_norm.forward(&self.to_k.forward(context)?)?;
        if let Some(pe) = pe {
            q = apply_split_rope(&q, pe)?;
            k = apply_split_rope(&k, k_pe.unwrap_or(pe))?;
        }
        let out = sdpa(&q, &k, &v, self.heads, mask)?;
        self.output(x, &out)
    }

    /// `to_out(gate(x) · out)`: the per-head gate (when the layer has one) then the output
    /// projection. `x` is the query input the gate logits are computed from.
    fn output(&self, x: &Tensor, out: &Tensor) -> Result<Tensor> {
        let Some(gate) = &self.to_gate_logits else {
            return self.to_out.forward(out);
        };
        let (b, t, inner) = out.dims3()?;
        // 2·sigmoid(logits): a zero-initialised gate is the identity.
        let gates = (candle_nn::ops::sigmoid(&gate.forward(x)?)? * 2.0)?
            .to_dtype(out.dtype())?
            .unsqueeze(3)?;
        let gated = out
            .reshape((b, t, self.heads, self.head_dim))?
            .broadcast_mul(&gates)?
            .reshape((b, t, inner))?;
        self.to_out.forward(&gated)
    }

    /// The key/value half of [`Self::forward`] without RoPE, for [`Self::forward_with_kv`].
    pub fn project_context(&self, context: &Tensor) -> Result<ContextKv> {
        Ok(ContextKv {
            k: self.k_norm.forward(&self.to_k.forward(context)?)?,
            v: self.to_v.forward(context)?,
        })
    }

    /// [`Self::forward`] with `pe = None` on precomputed keys/values: the same ops on the same
    /// inputs, so the same result.
    pub fn forward_with_kv(
        &self,
        x: &Tensor,
        kv: &ContextKv,
        mask: Option<&Tensor>,
    ) -> Result<Tensor> {
        let q = self.q_norm.forward(&self.to_q.forward(x)?)?;
        let out = sdpa(&q, &kv.k, &kv.v, self.heads, mask)?;
        self.output(x, &out)
    }

    /// The STG-perturbed self-attention of ltx-core (`all_perturbed`): the query/key path is
    /// skipped and the value projection passes through, `to_out(gate(x) · to_v(x))` (the LTX-2.3
    /// gate still applies).
    pub fn forward_value_passthrough(&self, x: &Tensor) -> Result<Tensor> {
        self.output(x, &self.to_v.forward(x)?)
    }
}

/// Most attention-score elements materialised at once; longer query sequences are processed in
/// query chunks (rows are independent, so the result is the same). 2^28 f32 scores = 1 GiB; the
/// 19B model's stage-2 video self-attention would otherwise need 32 x 24576^2 scores.
const MAX_SCORE_ELEMENTS: usize = 1 << 28;

/// Multi-head `softmax(q kᵀ / √d + mask) v` on `(B, T, H·D)` inputs, returning `(B, T, H·D)`:
/// cuDNN's fused SDPA on CUDA (bf16/f16) when available, else [`sdpa_reference`].
pub fn sdpa(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    heads: usize,
    mask: Option<&Tensor>,
) -> Result<Tensor> {
    #[cfg(feature = "cuda")]
    if let Some(out) = crate::cuda_ops::sdpa(q, k, v, heads, mask)? {
        return Ok(out);
    }
    sdpa_reference(q, k, v, heads, mask)
}

/// The chunked matmul-softmax-matmul attention: the reference the fused paths are tested against.
pub fn sdpa_reference(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    heads: usize,
    mask: Option<&Tensor>,
) -> Result<Tensor> {
    sdpa_chunked(q, k, v, heads, mask, MAX_SCORE_ELEMENTS)
}

fn sdpa_chunked(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    heads: usize,
    mask: Option<&Tensor>,
    max_score_elements: usize,
) -> Result<Tensor> {
    let (b, t, inner) = q.dims3()?;
    let s = k.dim(1)?;
    let d = inner / heads;
    let split = |x: &Tensor, len: usize| -> Result<Tensor> {
        x.reshape((b, len, heads, d))?.transpose(1, 2)?.contiguous()
    };
    let (q, k, v) = (split(q, t)?, split(k, s)?, split(v, s)?);
    let kt = k.t()?;
    let scale = 1.0 / (d as f64).sqrt();
    let mask = mask.map(|m| m.to_dtype(q.dtype())).transpose()?;
    let chunk = (max_score_elements / (b * heads * s).max(1)).clamp(1, t.max(1));
    let mut outs = Vec::with_capacity(t.div_ceil(chunk));
    for start in (0..t).step_by(chunk) {
        let len = chunk.min(t - start);
        let qc = if len == t {
            q.clone()
        } else {
            q.narrow(2, start, len)?
        };
        let mut scores = (qc.matmul(&kt)? * scale)?;
        if let Some(mask) = &mask {
            // A mask with a query axis longer than 1 is sliced along with the queries.
            let m = if mask.rank() == 4 && mask.dim(2)? == t && len != t {
                mask.narrow(2, start, len)?
            } else {
                mask.clone()
            };
            scores = scores.broadcast_add(&m)?;
        }
        let probs = candle_nn::ops::softmax_last_dim(&scores)?;
        outs.push(probs.matmul(&v)?);
    }
    let out = if outs.len() == 1 {
        outs.remove(0)
    } else {
        Tensor::cat(&outs, 2)?
    };
    out.transpose(1, 2)?.reshape((b, t, inner))
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn chunked_and_whole_attention_agree() -> Result<()> {
        let dev = Device::Cpu;
        let (b, t, s, heads, d) = (1, 37, 11, 2, 8);
        let q = Tensor::randn(0f32, 1.0, (b, t, heads * d), &dev)?;
        let k = Tensor::randn(0f32, 1.0, (b, s, heads * d), &dev)?;
        let v = Tensor::randn(0f32, 1.0, (b, s, heads * d), &dev)?;
        let mask = Tensor::randn(0f32, 1.0, (b, 1, 1, s), &dev)?;
        let whole = sdpa(&q, &k, &v, heads, Some(&mask))?;
        // 3 query rows per chunk: 13 chunks, the last one short.
        let chunked = sdpa_chunked(&q, &k, &v, heads, Some(&mask), 3 * b * heads * s)?;
        let diff = (whole - chunked)?.abs()?.max_all()?.to_scalar::<f32>()?;
        // Not bitwise: the matmul kernel blocks differently for other row counts.
        assert!(diff < 1e-5, "{diff}");
        Ok(())
    }
}
