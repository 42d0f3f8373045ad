//! `feed_forward.py::FeedForward`: `net.0.proj` (Linear) -> GELU (tanh approximation) -> `net.2`.
//! Used by the DiT (`ff`, `audio_ff`) and the text connector. LTX-2.5's video feed-forwards have
//! no biases (`ff_bias: false`).

use candle_core::{Module, Result, Tensor};
use candle_nn::VarBuilder;

use crate::linear::{linear_b, Linear};

#[derive(Debug, Clone)]
pub struct FeedForward {
    /// `net.0.proj`
    pub proj_in: Linear,
    /// `net.2`
    pub proj_out: Linear,
}

impl FeedForward {
    /// `dim -> inner_dim -> dim_out` (ltx-core: `inner_dim = 4 · dim`); `vb` rooted at `ff`.
    pub fn new(dim: usize, inner_dim: usize, dim_out: usize, vb: VarBuilder) -> Result<Self> {
        Self::new_with_bias(dim, inner_dim, dim_out, true, vb)
    }

    /// [`Self::new`] with both projections' biases present or absent (`ff_bias`).
    pub fn new_with_bias(
        dim: usize,
        inner_dim: usize,
        dim_out: usize,
        bias: bool,
        vb: VarBuilder,
    ) -> Result<Self> {
        Ok(Self {
            proj_in: linear_b(dim, inner_dim, bias, vb.pp("net").pp("0").pp("proj"))?,
            proj_out: linear_b(inner_dim, dim_out, bias, vb.pp("net").pp("2"))?,
        })
    }
}

impl Module for FeedForward {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        // candle's `gelu` is the tanh approximation (`gelu_erf` is the exact one).
        self.proj_out.forward(&self.proj_in.forward(x)?.gelu()?)
    }
}
