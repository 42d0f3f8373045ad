//! `NeighborhoodAttention3D` (ltx-core `transformer/attention.py`): Q/K/V projections, per-head
//! RMS norms of Q and K, `Q · head_dim^-1/2`, absolute RoPE, neighbourhood attention, output
//! projection. Channels-last `(B, T, H, W, C)` in and out.
//!
//! Checkpoints store the projections fused (`attn.qkv.{weight,bias}`, rows q | k | v; ltx-core's
//! loader splits them); split `to_q` / `to_k` / `to_v` keys are read as well.

use candle_core::{DType, Module, Result, Tensor};
use candle_nn::VarBuilder;

use super::na::neighborhood_attention;
use super::rope::AbsRope;
use crate::linear::{DenseLinear, Linear};

/// RMSNorm eps of every norm in the diffusion decoder.
pub const NORM_EPS: f64 = 1e-6;

/// `nn.Linear` over the last axis of a tensor of any rank.
pub fn linear_last(l: &Linear, x: &Tensor) -> Result<Tensor> {
    let dims = x.dims();
    let c = dims[dims.len() - 1];
    let n = x.elem_count() / c;
    let y = l.forward(&x.reshape((n, c))?)?;
    let mut out = dims.to_vec();
    *out.last_mut().expect("rank >= 1") = y.dim(1)?;
    y.reshape(out)
}

/// `nn.RMSNorm(eps=1e-6)` with a weight, over the last axis.
pub fn rms_norm_last(x: &Tensor, weight: &Tensor) -> Result<Tensor> {
    let dims = x.dims().to_vec();
    let c = dims[dims.len() - 1];
    let flat = x.contiguous()?.reshape(((), c))?;
    candle_nn::ops::rms_norm(&flat, &weight.to_dtype(x.dtype())?, NORM_EPS as f32)?.reshape(dims)
}

/// Loads `<vb>.weight [out, in]` / `<vb>.bias [out]`, multiplying the rows by `gate` (a static
/// gate folded at load as ltx-core does: `W ← g·W`, `b ← g·b` in f32, then rounded to the
/// checkpoint's dtype `stored`).
pub fn folded_linear(
    in_dim: usize,
    out_dim: usize,
    gate: Option<&Tensor>,
    stored: DType,
    vb: VarBuilder,
) -> Result<Linear> {
    let w = vb.get((out_dim, in_dim), "weight")?;
    let b = vb.get(out_dim, "bias")?;
    let Some(g) = gate else {
        return Ok(Linear::Dense(DenseLinear::new(w, Some(b))));
    };
    let g = g.to_dtype(DType::F32)?;
    let fold = |x: Tensor, g: &Tensor| -> Result<Tensor> {
        let dtype = x.dtype();
        x.to_dtype(DType::F32)?
            .broadcast_mul(g)?
            .to_dtype(stored)?
            .to_dtype(dtype)
    };
    let w = fold(w, &g.unsqueeze(1)?)?;
    let b = fold(b, &g)?;
    Ok(Linear::Dense(DenseLinear::new(w, Some(b))))
}

#[derive(Debug, Clone)]
pub struct NeighborhoodAttention3D {
    /// `[to_q; to_k; to_v]` as one `(3·dim, dim)` projection.
    qkv: Linear,
    proj: Linear,
    q_norm: Tensor,
    k_norm: Tensor,
    rope: AbsRope,
    dim: usize,
    heads: usize,
    head_dim: usize,
    kernel: [usize; 3],
}

impl NeighborhoodAttention3D {
    /// `vb` at `...attn`; `proj_gate` is the block's static `gate_msa` (diffusion blocks only).
    pub fn new(
        dim: usize,
        kernel: [usize; 3],
        head_dim: usize,
        proj_gate: Option<&Tensor>,
        stored: DType,
        vb: VarBuilder,
    ) -> Result<Self> {
        let (w, b) = if vb.contains_tensor("qkv.weight") {
            (
                vb.get((3 * dim, dim), "qkv.weight")?,
                vb.get(3 * dim, "qkv.bias")?,
            )
        } else {
            let qkv = vb.pp("qkv");
            let part = |name: &str| -> Result<(Tensor, Tensor)> {
                Ok((
                    qkv.get((dim, dim), &format!("{name}.weight"))?,
                    qkv.get(dim, &format!("{name}.bias"))?,
                ))
            };
            let (q, k, v) = (part("to_q")?, part("to_k")?, part("to_v")?);
            (
                Tensor::cat(&[q.0, k.0, v.0], 0)?,
                Tensor::cat(&[q.1, k.1, v.1], 0)?,
            )
        };
        Ok(Self {
            qkv: Linear::Dense(DenseLinear::new(w, Some(b))),
            proj: folded_linear(dim, dim, proj_gate, stored, vb.pp("proj"))?,
            q_norm: vb.get(head_dim, "q_norm.weight")?,
            k_norm: vb.get(head_dim, "k_norm.weight")?,
            rope: AbsRope::new(head_dim, 10000.0)?,
            dim,
            heads: dim / head_dim,
            head_dim,
            kernel,
        })
    }

    pub fn kernel(&self) -> [usize; 3] {
        self.kernel
    }

    /// Attention of an already normed (and modulated) `y (B, T, H, W, C)`; `w_pos` are the W
    /// positions of its columns. Returns the projected output `(B, T, H, W, C)`.
    fn attend(&self, y: &Tensor, w_pos: &[f32]) -> Result<Tensor> {
        let (b, t, h, w, _) = y.dims5()?;
        let qkv = linear_last(&self.qkv, y)?;
        let shape = (b, t, h, w, self.heads, self.head_dim);
        let part = |i: usize| {
            qkv.narrow(4, i * self.dim, self.dim)?
                .contiguous()?
                .reshape(shape)
        };
        let scale = (self.head_dim as f64).powf(-0.5);
        let q = (rms_norm_last(&part(0)?, &self.q_norm)? * scale)?;
        let k = rms_norm_last(&part(1)?, &self.k_norm)?;
        let q = self.rope.apply(&q, w_pos)?;
        let k = self.rope.apply(&k, w_pos)?;
        let out = neighborhood_attention(&q, &k, &part(2)?, self.kernel)?;
        linear_last(&self.proj, &out)
    }

    /// Whole-volume attention of the deterministic stages (`x` already normed).
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let (_, t, h, w, _) = x.dims5()?;
        let [kt, kh, kw] = self.kernel;
        if t < kt || h < kh || w < kw {
            candle_core::bail!(
                "neighbourhood attention needs (T, H, W) >= kernel {:?}, got ({t}, {h}, {w})",
                self.kernel
            );
        }
        let w_pos: Vec<f32> = (0..w).map(|i| i as f32).collect();
        self.attend(x, &w_pos)
    }

    /// The diffusion blocks' residual attention, ltx-core's W-chunked form
    /// (`chunked/attn.py`): `x + NA(rms_norm(x)·(1 + scale) + shift)`, computed on `w_chunks`
    /// slabs of `ceil(W / w_chunks)` columns, each widened by a halo of `k_w / 2` columns. A halo
    /// inside the volume holds the neighbouring columns (the left one only as many as the
    /// previous slab has, the rest zeros); at the volume's left and right borders it repeats
    /// the edge column. Each slab's queries thus see centred windows along W, unlike the
    /// whole-volume attention, which shifts them inwards at the borders.
    pub fn forward_w_chunked(
        &self,
        x: &Tensor,
        norm: &Tensor,
        scale: &Tensor,
        shift: &Tensor,
        w_chunks: usize,
    ) -> Result<Tensor> {
        let (_, _, _, w, _) = x.dims5()?;
        let halo = self.kernel[2] / 2;
        let chunk_w = w.div_ceil(w_chunks.max(1));
        let extent = chunk_w + 2 * halo;
        let y_of = |buf: &Tensor| -> Result<Tensor> {
            rms_norm_last(buf, norm)?
                .broadcast_mul(&(scale + 1.0)?)?
                .broadcast_add(shift)
        };
        let mut outs = Vec::with_capacity(w_chunks);
        let mut left_halo: Option<Tensor> = None;
        for i in 0..w_chunks.max(1) {
            let core_start = i * chunk_w;
            let core_end = ((i + 1) * chunk_w).min(w);
            if core_end <= core_start {
                break;
            }
            let core_len = core_end - core_start;
            let mut parts = Vec::new();
            if i == 0 {
                if halo > 0 {
                    parts.push(edge(x, core_start, halo)?);
                }
            } else {
                let lh = left_halo.take().expect("set by the previous slab");
                let have = lh.dim(3)?;
                if have < halo {
                    parts.push(zeros_w(x, halo - have)?);
                }
                parts.push(lh);
            }
            parts.push(x.narrow(3, core_start, core_len)?);
            let mut filled = halo + core_len;
            if i + 1 < w_chunks {
                let right_end = (core_end + halo).min(w);
                if right_end > core_end {
                    parts.push(x.narrow(3, core_end, right_end - core_end)?);
                    filled += right_end - core_end;
                }
                let take = halo.min(core_len);
                left_halo = Some(x.narrow(3, core_end - take, take)?);
            }
            if extent > filled {
                parts.push(edge(x, core_end - 1, extent - filled)?);
            }
            let buf = Tensor::cat(&parts, 3)?;
            let w_pos: Vec<f32> = (0..extent)
                .map(|j| (j as f32) + (core_start as f32 - halo as f32))
                .collect();
            let out = self.attend(&y_of(&buf)?, &w_pos)?;
            outs.push(out.narrow(3, halo, core_len)?);
        }
        x + Tensor::cat(&outs, 3)?
    }
}

/// Column `col` of `x (B, T, H, W, C)` repeated `n` times along W.
fn edge(x: &Tensor, col: usize, n: usize) -> Result<Tensor> {
    let (b, t, h, _, c) = x.dims5()?;
    x.narrow(3, col, 1)?
        .broadcast_as((b, t, h, n, c))?
        .contiguous()
}

fn zeros_w(x: &Tensor, n: usize) -> Result<Tensor> {
    let (b, t, h, _, c) = x.dims5()?;
    Tensor::zeros((b, t, h, n, c), x.dtype(), x.device())
}
