//! `feed_forward.py::FeedForward`: `net.0.proj` (Linear) -> GELU (tanh approximation) -> `net.2`.
//! Used by the DiT (`ff`, `audio_ff`) and the text connector.

use candle_core::{Module, Result, Tensor};
use candle_nn::VarBuilder;

use crate::linear::{linear_q, Linear};
use crate::quantization::Quantization;

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
        Self::new_quantized(dim, inner_dim, dim_out, Quantization::None, vb)
    }

    /// [`Self::new`] with both projections loaded under `quantization` (the DiT blocks).
    pub fn new_quantized(
        dim: usize,
        inner_dim: usize,
        dim_out: usize,
        quantization: Quantization,
        vb: VarBuilder,
    ) -> Result<Self> {
        let linear = |i: usize, o: usize, vb: VarBuilder| linear_q(i, o, true, quantization, vb);
        Ok(Self {
            proj_in: linear(dim, inner_dim, vb.pp("net").pp("0").pp("proj"))?,
            proj_out: linear(inner_dim, dim_out, vb.pp("net").pp("2"))?,
        })
    }

    /// Bytes both projections hold.
    pub fn resident_bytes(&self) -> u64 {
        self.proj_in.resident_bytes() + self.proj_out.resident_bytes()
    }
}

impl Module for FeedForward {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        // candle's `gelu` is the tanh approximation (`gelu_erf` is the exact one).
        self.proj_out.forward(&self.proj_in.forward(x)?.gelu()?)
    }
}
