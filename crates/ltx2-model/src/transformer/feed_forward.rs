//! `feed_forward.py::FeedForward`: `net.0.proj` (Linear) -> GELU (tanh approximation) -> `net.2`.
//! Used by the DiT (`ff`, `audio_ff`) and the text connector. LTX-2.5's video feed-forwards have
//! no biases (`ff_bias: false`).

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
        Self::new_with(dim, inner_dim, dim_out, true, Quantization::None, vb)
    }

    /// [`Self::new`] with both projections' biases present or absent (`ff_bias`,
    /// `audio_ff_bias`, `connector_ff_bias`) and loaded under `quantization` (the DiT blocks).
    pub fn new_with(
        dim: usize,
        inner_dim: usize,
        dim_out: usize,
        bias: bool,
        quantization: Quantization,
        vb: VarBuilder,
    ) -> Result<Self> {
        let linear = |i: usize, o: usize, vb: VarBuilder| linear_q(i, o, bias, quantization, vb);
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
