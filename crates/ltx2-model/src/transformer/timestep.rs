//! Timestep embedding and `AdaLayerNormSingle` (`adaln.py`, `timestep_embedding.py`).
//!
//! `t -> [cos(t·f), sin(t·f)]` (256 channels, `f_i = exp(-ln(10000)·i/128)`, f32) -> `linear_1` ->
//! SiLU -> `linear_2` = `embedded_timestep`; AdaLN = `linear(SiLU(embedded_timestep))`, `k·D` wide.

use candle_core::{DType, Module, Result, Tensor};
use candle_nn::VarBuilder;

use super::config::TIMESTEP_CHANNELS;
use crate::linear::{linear, Linear};

/// Sinusoidal embedding of `t` `(N,)` (already scaled, e.g. σ·1000): `(N, channels)` f32 ordered
/// `[cos, sin]` (`flip_sin_to_cos=True`, `downscale_freq_shift=0`, `max_period=10000`).
pub fn timestep_embedding(t: &Tensor, channels: usize) -> Result<Tensor> {
    let half = channels / 2;
    // f32 as in ltx-core: (-ln(10000) * i) / half, then exp.
    let neg_ln = -(10000f64.ln() as f32);
    let freqs: Vec<f32> = (0..half)
        .map(|i| ((neg_ln * i as f32) / half as f32).exp())
        .collect();
    let freqs = Tensor::from_vec(freqs, (1, half), t.device())?;
    let args = t
        .to_dtype(DType::F32)?
        .unsqueeze(1)?
        .broadcast_mul(&freqs)?;
    let emb = Tensor::cat(&[args.cos()?, args.sin()?], 1)?;
    if channels % 2 == 1 {
        return emb.pad_with_zeros(1, 0, 1);
    }
    Ok(emb)
}

/// `emb.timestep_embedder`: `linear_1 (256 -> D)`, SiLU, `linear_2 (D -> D)`.
#[derive(Debug, Clone)]
pub struct TimestepEmbedder {
    pub linear_1: Linear,
    pub linear_2: Linear,
}

impl TimestepEmbedder {
    pub fn new(dim: usize, vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            linear_1: linear(TIMESTEP_CHANNELS, dim, vb.pp("linear_1"))?,
            linear_2: linear(dim, dim, vb.pp("linear_2"))?,
        })
    }

    pub fn forward(&self, proj: &Tensor) -> Result<Tensor> {
        self.linear_2.forward(&self.linear_1.forward(proj)?.silu()?)
    }
}

/// `AdaLayerNormSingle(dim, embedding_coefficient = rows)`.
#[derive(Debug, Clone)]
pub struct AdaLayerNormSingle {
    /// `emb.timestep_embedder`
    pub timestep_embedder: TimestepEmbedder,
    pub linear: Linear,
    dim: usize,
    rows: usize,
}

impl AdaLayerNormSingle {
    /// `vb` rooted at the module (e.g. `adaln_single`).
    pub fn new(dim: usize, rows: usize, vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            timestep_embedder: TimestepEmbedder::new(dim, vb.pp("emb").pp("timestep_embedder"))?,
            linear: linear(dim, rows * dim, vb.pp("linear"))?,
            dim,
            rows,
        })
    }

    /// Bytes of its three linears.
    pub fn resident_bytes(&self) -> u64 {
        self.timestep_embedder.linear_1.resident_bytes()
            + self.timestep_embedder.linear_2.resident_bytes()
            + self.linear.resident_bytes()
    }

    pub fn rows(&self) -> usize {
        self.rows
    }

    /// `t` `(N,)` already multiplied by the timestep scale. Returns `(modulation (N, rows·D),
    /// embedded_timestep (N, D))` in `dtype`.
    ///
    /// Per-token timesteps take very few distinct values (σ and 0 for conditioning tokens), so the
    /// MLP runs once per distinct value and the rows are gathered back; each row's result is the
    /// same as computing it in place.
    pub fn forward(&self, t: &Tensor, dtype: DType) -> Result<(Tensor, Tensor)> {
        let values = t.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?;
        let mut uniq: Vec<f32> = Vec::new();
        let mut index: Vec<u32> = Vec::with_capacity(values.len());
        for v in &values {
            let pos = match uniq.iter().position(|u| u.to_bits() == v.to_bits()) {
                Some(p) => p,
                None => {
                    uniq.push(*v);
                    uniq.len() - 1
                }
            };
            index.push(pos as u32);
        }
        let n_uniq = uniq.len();
        let dev = t.device();
        let proj = timestep_embedding(&Tensor::from_vec(uniq, n_uniq, dev)?, TIMESTEP_CHANNELS)?;
        let embedded = self.timestep_embedder.forward(&proj.to_dtype(dtype)?)?;
        let modulation = self.linear.forward(&embedded.silu()?)?;
        if n_uniq == values.len() {
            return Ok((modulation, embedded));
        }
        let index = Tensor::from_vec(index, values.len(), dev)?;
        Ok((
            modulation.index_select(&index, 0)?,
            embedded.index_select(&index, 0)?,
        ))
    }

    pub fn dim(&self) -> usize {
        self.dim
    }
}
