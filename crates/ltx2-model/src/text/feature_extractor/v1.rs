//! ltx-core `FeatureExtractorV1` (LTX-2.0): every Gemma hidden state is normalised per (sample,
//! layer) over its valid tokens, the layers are interleaved into one `hidden * L` vector per token
//! (layer index fastest: `d * L + l`) and projected back to `hidden` by
//! `text_embedding_projection.aggregate_embed` (no bias). The same features feed both connectors.

use candle_core::{DType, Module, Result, Tensor, D};
use candle_nn::{linear_no_bias, Linear, VarBuilder};

use super::{round_to, FeatureExtractorConfig};

const EPS: f64 = 1e-6;

#[derive(Debug, Clone)]
pub struct FeatureExtractorV1 {
    aggregate_embed: Linear,
    cfg: FeatureExtractorConfig,
}

impl FeatureExtractorV1 {
    /// `vb` is rooted at `text_embedding_projection`.
    pub fn new(cfg: FeatureExtractorConfig, vb: VarBuilder) -> Result<Self> {
        let in_dim = cfg.hidden_size * cfg.num_hidden_states;
        Ok(Self {
            aggregate_embed: linear_no_bias(in_dim, cfg.hidden_size, vb.pp("aggregate_embed"))?,
            cfg,
        })
    }

    pub fn config(&self) -> FeatureExtractorConfig {
        self.cfg
    }

    /// The normalised, interleaved projection input `(B, T, hidden * L)` in the states' dtype; pad
    /// positions are zero. `mask (B, T)`: 1 = valid token.
    ///
    /// Statistics are computed in f32 with ltx-core's intermediate roundings to the states' dtype.
    pub fn normalize(&self, hidden_states: &[Tensor], mask: &Tensor) -> Result<Tensor> {
        if hidden_states.len() != self.cfg.num_hidden_states {
            candle_core::bail!(
                "feature extractor expects {} hidden states, got {}",
                self.cfg.num_hidden_states,
                hidden_states.len()
            );
        }
        let dtype = hidden_states[0].dtype();
        let (b, t, d) = hidden_states[0].dims3()?;
        let mask = mask.to_dtype(DType::F32)?.reshape((b, t, 1))?;
        let valid = mask.ne(0f32)?.broadcast_as((b, t, d))?;
        // n * D + eps, as ltx-core's `denom + eps`.
        let denom = ((mask.sum_keepdim(1)? * d as f64)? + EPS)?;
        let pos_inf = Tensor::full(f32::INFINITY, (b, t, d), mask.device())?;
        let neg_inf = Tensor::full(f32::NEG_INFINITY, (b, t, d), mask.device())?;
        let mut normed = Vec::with_capacity(hidden_states.len());
        for x in hidden_states {
            let x = x.to_dtype(DType::F32)?;
            // ltx-core's roundings in a bf16 model: the sum and the range (and `range + eps`) are
            // bf16 tensors, the mean and the normalised values f32 (type promotion with `denom`).
            let sum = x.broadcast_mul(&mask)?.sum_keepdim(2)?.sum_keepdim(1)?;
            let mean = (round_to(&sum, dtype)? / &denom)?;
            let min = valid
                .where_cond(&x, &pos_inf)?
                .min_keepdim(2)?
                .min_keepdim(1)?;
            let max = valid
                .where_cond(&x, &neg_inf)?
                .max_keepdim(2)?
                .max_keepdim(1)?;
            let range = round_to(&(round_to(&(max - min)?, dtype)? + EPS)?, dtype)?;
            normed.push((x.broadcast_sub(&mean)? * 8.0)?.broadcast_div(&range)?);
        }
        let stacked = Tensor::stack(&normed, D::Minus1)?.reshape((b, t, d * normed.len()))?;
        // `where` rather than `* mask`: states at padding may be anything, NaN included.
        let keep = mask.ne(0f32)?.broadcast_as(stacked.shape())?;
        keep.where_cond(&stacked, &stacked.zeros_like()?)?
            .to_dtype(dtype)
    }

    /// `(B, T, hidden)` features for both connectors.
    pub fn forward(&self, hidden_states: &[Tensor], mask: &Tensor) -> Result<Tensor> {
        self.aggregate_embed
            .forward(&self.normalize(hidden_states, mask)?)
    }
}
