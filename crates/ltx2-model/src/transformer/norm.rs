//! The two normalisations of the DiT: RMSNorm (blocks, q/k norms, connector) and the mean-centred
//! LayerNorm of the output head. Neither block norm has an affine part; q/k norms carry a weight.

use candle_core::{DType, Result, Tensor, D};
use candle_nn::VarBuilder;

/// `x * rsqrt(mean(x^2, -1) + eps)`, optionally times `weight`, over the last dimension.
pub fn rms_norm(x: &Tensor, weight: Option<&Tensor>, eps: f64) -> Result<Tensor> {
    let x = x.contiguous()?;
    match weight {
        Some(w) => candle_nn::ops::rms_norm(&x, w, eps as f32),
        None => {
            let ones = Tensor::ones(x.dim(D::Minus1)?, x.dtype(), x.device())?;
            candle_nn::ops::rms_norm(&x, &ones, eps as f32)
        }
    }
}

/// `LayerNorm(elementwise_affine=False)` over the last dimension.
pub fn layer_norm(x: &Tensor, eps: f64) -> Result<Tensor> {
    let x = x.contiguous()?;
    let d = x.dim(D::Minus1)?;
    let ones = Tensor::ones(d, x.dtype(), x.device())?;
    let zeros = Tensor::zeros(d, x.dtype(), x.device())?;
    candle_nn::ops::layer_norm(&x, &ones, &zeros, eps as f32)
}

/// `torch.nn.RMSNorm(dim, eps)` with its learned `weight` (the attention `q_norm` / `k_norm`).
#[derive(Debug, Clone)]
pub struct RmsNorm {
    weight: Tensor,
    eps: f64,
}

impl RmsNorm {
    pub fn new(dim: usize, eps: f64, vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            weight: vb.get(dim, "weight")?,
            eps,
        })
    }

    pub fn resident_bytes(&self) -> u64 {
        crate::linear::tensor_bytes(&self.weight)
    }

    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let w = if self.weight.dtype() == x.dtype() {
            self.weight.clone()
        } else {
            self.weight.to_dtype(x.dtype())?
        };
        rms_norm(x, Some(&w), self.eps)
    }
}

/// The additive attention bias ltx-core builds from a 0/1 keep-mask `(B, S)` (any dtype):
/// `(mask - 1) * finfo(dtype).max`, shaped `(B, 1, 1, S)` to broadcast over heads and queries.
/// ltx-core `_prepare_self_attention_mask`: attention weights `w` in [0, 1] `(B, T, T)` to the
/// additive bias `(B, 1, T, T)`: `log(max(w, tiny))` where `w > 0` (in `w`'s dtype, as torch does),
/// the lowest finite value of `dtype` elsewhere (fully masked, yet no `-inf`).
pub fn log_attention_bias(w: &Tensor, dtype: DType) -> Result<Tensor> {
    // torch.finfo(x_dtype).min / .tiny
    let (lowest, tiny) = match dtype {
        DType::F16 => (half::f16::MIN.to_f64(), half::f16::MIN_POSITIVE.to_f64()),
        DType::BF16 => (half::bf16::MIN.to_f64(), half::bf16::MIN_POSITIVE.to_f64()),
        DType::F64 => (f64::MIN, f64::MIN_POSITIVE),
        _ => (f32::MIN as f64, f32::MIN_POSITIVE as f64),
    };
    let positive = w.gt(0.0)?;
    let log = w.maximum(tiny)?.log()?.to_dtype(dtype)?;
    let masked = Tensor::full(lowest, w.shape(), w.device())?.to_dtype(dtype)?;
    positive.where_cond(&log, &masked)?.unsqueeze(1)
}

pub fn additive_mask(keep: &Tensor, dtype: DType) -> Result<Tensor> {
    let (b, s) = keep.dims2()?;
    let max = match dtype {
        DType::F16 => half::f16::MAX.to_f64(),
        DType::BF16 => half::bf16::MAX.to_f64(),
        DType::F64 => f64::MAX,
        _ => f32::MAX as f64,
    };
    keep.to_dtype(DType::F32)?
        .affine(1.0, -1.0)?
        .to_dtype(dtype)?
        .reshape((b, 1, 1, s))?
        .affine(max, 0.0)
}
