//! `feed_forward.py::FeedForward`: `net.0.proj` (Linear) -> GELU (tanh approximation) -> `net.2`.
//! Used by the DiT (`ff`, `audio_ff`) and the text connector.

use candle_core::{Module, Result, Tensor};
use candle_nn::VarBuilder;

use crate::linear::{linear, Linear};

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
        Ok(Self {
            proj_in: linear(dim, inner_dim, vb.pp("net").pp("0").pp("proj"))?,
            proj_out: linear(inner_dim, dim_out, vb.pp("net").pp("2"))?,
        })
    }
}

impl Module for FeedForward {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        // candle's `gelu` is the tanh approximation (`gelu_erf` is the exact one).
        self.proj_out.forward(&self.proj_in.forward(x)?.gelu()?)
    }
}
