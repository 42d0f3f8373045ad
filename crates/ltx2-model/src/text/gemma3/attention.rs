//! Gemma-3 self-attention: GQA, per-head q/k RMSNorm before a rotate-half RoPE, scores scaled by
//! `query_pre_attn_scalar^-0.5`, an additive mask (causal, sliding window, key padding).

use candle_core::{DType, Device, Module, Result, Tensor};
use candle_nn::VarBuilder;

use super::config::Gemma3Config;
use super::layer::{projection, GemmaRmsNorm};
use crate::linear::Linear;
use crate::quantization::GemmaQuantization;

/// cos/sin of one RoPE kind for positions `offset..offset+T`, shape `(T, head_dim/2)`, in the
/// activation dtype (HF builds them in f32 and casts, as done here).
#[derive(Debug, Clone)]
pub struct RopeTable {
    pub cos: Tensor,
    pub sin: Tensor,
}

impl RopeTable {
    /// `inv_freq_i = 1 / theta^(2i/head_dim)` in f32 (HF's arithmetic), divided by the linear
    /// scaling factor when given; angle = position * inv_freq, also in f32.
    pub fn new(
        theta: f64,
        linear_factor: Option<f64>,
        head_dim: usize,
        offset: usize,
        len: usize,
        dtype: DType,
        device: &Device,
    ) -> Result<Self> {
        let inv_freq: Vec<f32> = default_inv_freq(theta, head_dim, head_dim)
            .into_iter()
            .map(|f| match linear_factor {
                Some(factor) => f / factor as f32,
                None => f,
            })
            .collect();
        Self::from_inv_freq(&inv_freq, offset, len, dtype, device)
    }

    /// cos/sin of `position * inv_freq` (f32 products, as HF's `inv_freq @ position_ids`) for
    /// positions `offset..offset+len`; `inv_freq` has `head_dim / 2` entries (zeros leave their
    /// pair of dimensions unrotated, as in Gemma-4's proportional RoPE).
    pub fn from_inv_freq(
        inv_freq: &[f32],
        offset: usize,
        len: usize,
        dtype: DType,
        device: &Device,
    ) -> Result<Self> {
        let half = inv_freq.len();
        let mut angles = Vec::with_capacity(len * half);
        for p in offset..offset + len {
            angles.extend(inv_freq.iter().map(|f| p as f32 * f));
        }
        let angles = Tensor::from_vec(angles, (len, half), device)?;
        Ok(Self {
            cos: angles.cos()?.to_dtype(dtype)?,
            sin: angles.sin()?.to_dtype(dtype)?,
        })
    }
}

/// HF's default RoPE frequencies for the first `rotated` dimensions of a `head_dim`-wide head:
/// `1 / theta^(2i / head_dim)` for `2i < rotated`, all in f32 like `base ** (arange(0, n, 2).float()
/// / head_dim)`.
pub(crate) fn default_inv_freq(theta: f64, rotated: usize, head_dim: usize) -> Vec<f32> {
    (0..rotated / 2)
        .map(|i| 1.0f32 / (theta as f32).powf((2 * i) as f32 / head_dim as f32))
        .collect()
}

/// Scaled dot-product attention with grouped K/V: `q (B, Hq, T, hd)`, `k`, `v (B, Hkv, T, hd)`,
/// query head `h` reads kv head `h / (Hq / Hkv)` (HF `repeat_kv`), `mask (B, 1, T, T)` additive f32
/// -> `(B, T, Hq * hd)`.
///
/// Scores and softmax in f32, as PyTorch SDPA (ltx-core's attention implementation) does for bf16
/// inputs; P is rounded to the value dtype before `P @ V`, as in flash kernels. No K/V copies: the
/// `rep` query heads of one kv head are stacked along the row axis of a single matmul.
pub(crate) fn grouped_attention(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    mask: &Tensor,
    scale: f64,
) -> Result<Tensor> {
    let (b, num_heads, t, hd) = q.dims4()?;
    let num_kv_heads = k.dim(1)?;
    let rep = num_heads / num_kv_heads;
    let q = q.reshape((b, num_kv_heads, rep * t, hd))?;
    let (q, k) = (q.to_dtype(DType::F32)?, k.to_dtype(DType::F32)?);
    let scores = q.matmul(&k.t()?)?;
    let scores = if scale == 1.0 {
        scores
    } else {
        (scores * scale)?
    };
    let scores = scores.reshape((b, num_heads, t, t))?;
    let probs = candle_nn::ops::softmax_last_dim(&scores.broadcast_add(mask)?)?;
    let probs = probs
        .to_dtype(v.dtype())?
        .reshape((b, num_kv_heads, rep * t, t))?;
    let out = probs.matmul(v)?.reshape((b, num_heads, t, hd))?;
    out.transpose(1, 2)?.reshape((b, t, num_heads * hd))
}

#[derive(Debug, Clone)]
pub struct Gemma3Attention {
    q_proj: Linear,
    k_proj: Linear,
    v_proj: Linear,
    o_proj: Linear,
    q_norm: GemmaRmsNorm,
    k_norm: GemmaRmsNorm,
    num_heads: usize,
    num_kv_heads: usize,
    head_dim: usize,
    scale: f64,
}

impl Gemma3Attention {
    pub fn new(cfg: &Gemma3Config, q: GemmaQuantization, vb: VarBuilder) -> Result<Self> {
        let (h, hd) = (cfg.hidden_size, cfg.head_dim);
        let (nq, nkv) = (cfg.num_attention_heads, cfg.num_key_value_heads);
        let bias = cfg.attention_bias;
        let proj = |i: usize, o: usize, name: &str| projection(i, o, bias, q, vb.pp(name));
        Ok(Self {
            q_proj: proj(h, nq * hd, "q_proj")?,
            k_proj: proj(h, nkv * hd, "k_proj")?,
            v_proj: proj(h, nkv * hd, "v_proj")?,
            o_proj: proj(nq * hd, h, "o_proj")?,
            q_norm: GemmaRmsNorm::new(hd, cfg.rms_norm_eps, vb.pp("q_norm"))?,
            k_norm: GemmaRmsNorm::new(hd, cfg.rms_norm_eps, vb.pp("k_norm"))?,
            num_heads: nq,
            num_kv_heads: nkv,
            head_dim: hd,
            scale: cfg.query_pre_attn_scalar.powf(-0.5),
        })
    }

    /// Bytes the projections and q/k norms hold.
    pub fn resident_bytes(&self) -> u64 {
        [&self.q_proj, &self.k_proj, &self.v_proj, &self.o_proj]
            .iter()
            .map(|l| l.resident_bytes())
            .sum::<u64>()
            + self.q_norm.resident_bytes()
            + self.k_norm.resident_bytes()
    }

    /// `x (B, T, hidden)`, `mask (B, 1, T, T)` additive f32 → `(B, T, hidden)` (after `o_proj`).
    pub fn forward(&self, x: &Tensor, rope: &RopeTable, mask: &Tensor) -> Result<Tensor> {
        let (b, t, _) = x.dims3()?;
        let hd = self.head_dim;
        let heads = |proj: &Linear, norm: Option<&GemmaRmsNorm>, n: usize| -> Result<Tensor> {
            let y = proj.forward(x)?.reshape((b, t, n, hd))?;
            let y = match norm {
                Some(norm) => norm.forward(&y)?,
                None => y,
            };
            y.transpose(1, 2)?.contiguous()
        };
        let q = heads(&self.q_proj, Some(&self.q_norm), self.num_heads)?;
        let k = heads(&self.k_proj, Some(&self.k_norm), self.num_kv_heads)?;
        let v = heads(&self.v_proj, None, self.num_kv_heads)?;
        let q = candle_nn::rotary_emb::rope(&q, &rope.cos, &rope.sin)?;
        let k = candle_nn::rotary_emb::rope(&k, &rope.cos, &rope.sin)?;

        let out = grouped_attention(&q, &k, &v, mask, self.scale)?;
        self.o_proj.forward(&out)
    }
}
