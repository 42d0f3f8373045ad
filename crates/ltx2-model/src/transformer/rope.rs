//! Rotary position embeddings of LTX-2 ("split" / rotate-half layout, fractional positions).
//!
//! General enough for every user: the video self-attention (3 axes `[t, y, x]`), audio and the
//! A↔V cross-attentions (1 axis, time) and the text connector (1 axis, token index). Positions are
//! inputs; nothing here knows about frames or fps.
//!
//! Numerics follow ltx-core: the frequency grid `(π/2)·θ^(k/(N-1))` is built in float64 (when
//! `frequencies_precision = float64`) and cast to f32; the angle `ω · (2·pos/max_pos − 1)`, its cos
//! and sin are f32; the result is cast to the activation dtype.

use candle_core::{DType, Device, Result, Tensor, D};

/// `rope_type` of the checkpoint config. LTX-2.0 uses `split`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RopeType {
    Split,
    Interleaved,
}

/// `frequencies_precision` of the checkpoint config: how the frequency grid is computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FrequenciesPrecision {
    Float32,
    Float64,
}

/// Per-head cos/sin tables, each `(B, heads, T, head_dim / 2)`.
#[derive(Debug, Clone)]
pub struct Rope {
    pub cos: Tensor,
    pub sin: Tensor,
}

/// The `N = inner_dim / (2 · n_axes)` angular frequencies `(π/2)·θ^(k/(N-1))`, `k = 0..N`.
pub fn freq_grid(
    theta: f64,
    n_axes: usize,
    inner_dim: usize,
    precision: FrequenciesPrecision,
) -> Vec<f32> {
    let n = inner_dim / (2 * n_axes);
    match precision {
        // numpy: linspace(0, 1, n) = i * (1/(n-1)) with the last point exactly 1, then
        // theta ** lin * pi / 2 in float64, then float32.
        FrequenciesPrecision::Float64 => {
            let step = if n > 1 { 1.0 / (n - 1) as f64 } else { 0.0 };
            (0..n)
                .map(|i| {
                    let lin = if n > 1 && i == n - 1 {
                        1.0
                    } else {
                        i as f64 * step
                    };
                    (theta.powf(lin) * std::f64::consts::PI / 2.0) as f32
                })
                .collect()
        }
        FrequenciesPrecision::Float32 => {
            let step = if n > 1 { 1.0 / (n - 1) as f32 } else { 0.0 };
            (0..n)
                .map(|i| {
                    let lin = if n > 1 && i == n - 1 {
                        1.0
                    } else {
                        i as f32 * step
                    };
                    (theta as f32).powf(lin) * (std::f32::consts::PI / 2.0)
                })
                .collect()
        }
    }
}

/// Midpoints `(start + end) / 2` of `[start, end)` positions `(B, n_axes, T, 2)` -> `(B, n_axes, T)`.
///
/// Computed in the positions' own float dtype (ltx-core keeps video positions in the latent dtype,
/// so a bf16 pipeline rounds the midpoints and `2·p/max_pos − 1` to bf16); integers become f32.
pub fn midpoints(positions: &Tensor) -> Result<Tensor> {
    let p = float_positions(positions)?;
    let start = p.narrow(D::Minus1, 0, 1)?.squeeze(D::Minus1)?;
    let end = p.narrow(D::Minus1, 1, 1)?.squeeze(D::Minus1)?;
    (start + end)?.affine(0.5, 0.0)
}

fn float_positions(p: &Tensor) -> Result<Tensor> {
    match p.dtype() {
        DType::F16 | DType::BF16 | DType::F32 | DType::F64 => Ok(p.clone()),
        _ => p.to_dtype(DType::F32),
    }
}

/// The settings that shape a RoPE table (a checkpoint-level choice plus the attention geometry).
#[derive(Debug, Clone, PartialEq)]
pub struct RopeSpec {
    /// Normaliser per axis: position `p` maps to `2·p/max_pos − 1`.
    pub max_pos: Vec<f64>,
    pub theta: f64,
    /// Width the table covers (the attention's `heads · head_dim`).
    pub inner_dim: usize,
    pub heads: usize,
    pub precision: FrequenciesPrecision,
}

/// Split-layout cos/sin for positions `grid` `(B, n_axes, T)` (already midpoints, any dtype),
/// returned in `out_dtype`, shaped `(B, heads, T, inner_dim / (2·heads))`.
///
/// Angles are laid out frequency-major over the axes (`[ω0·a0, ω0·a1, …, ω1·a0, …]`), left-padded
/// with `(cos 1, sin 0)` up to `inner_dim / 2`, then split evenly across heads.
pub fn split_rope(grid: &Tensor, spec: &RopeSpec, out_dtype: DType) -> Result<Rope> {
    let (b, n_axes, t) = grid.dims3()?;
    if n_axes != spec.max_pos.len() {
        candle_core::bail!(
            "rope: positions have {n_axes} axes but max_pos has {}",
            spec.max_pos.len()
        );
    }
    let half = spec.inner_dim / 2;
    if spec.heads == 0 || !half.is_multiple_of(spec.heads) {
        candle_core::bail!(
            "rope: inner_dim {} is not split evenly over {} heads",
            spec.inner_dim,
            spec.heads
        );
    }
    let dev = grid.device();
    let freqs = freq_grid(spec.theta, n_axes, spec.inner_dim, spec.precision);
    let n = freqs.len();
    let freqs = Tensor::from_vec(freqs, (1, 1, 1, n), dev)?;
    let max_pos: Vec<f32> = spec.max_pos.iter().map(|&m| m as f32).collect();
    let grid = float_positions(grid)?;
    let max_pos = Tensor::from_vec(max_pos, (1, 1, n_axes), dev)?.to_dtype(grid.dtype())?;
    // (B, T, n_axes) in the positions' dtype, divided (not multiplied by a reciprocal) as ltx-core
    // does; only the product with the f32 frequency grid is promoted to f32.
    let frac = grid.transpose(1, 2)?.broadcast_div(&max_pos)?;
    let centred = frac
        .affine(2.0, -1.0)?
        .to_dtype(DType::F32)?
        .unsqueeze(D::Minus1)?; // (B, T, n_axes, 1)
    let angles = centred
        .broadcast_mul(&freqs)? // (B, T, n_axes, N)
        .transpose(2, 3)?
        .contiguous()?
        .reshape((b, t, n * n_axes))?;
    let (mut cos, mut sin) = (angles.cos()?, angles.sin()?);
    let pad = half - n * n_axes;
    if pad > 0 {
        cos = Tensor::cat(
            &[Tensor::ones((b, t, pad), DType::F32, dev)?, cos],
            D::Minus1,
        )?;
        sin = Tensor::cat(
            &[Tensor::zeros((b, t, pad), DType::F32, dev)?, sin],
            D::Minus1,
        )?;
    }
    let per_head = half / spec.heads;
    let to_heads = |x: Tensor| -> Result<Tensor> {
        x.reshape((b, t, spec.heads, per_head))?
            .transpose(1, 2)?
            .contiguous()?
            .to_dtype(out_dtype)
    };
    Ok(Rope {
        cos: to_heads(cos)?,
        sin: to_heads(sin)?,
    })
}

/// [`split_rope`] on `[start, end)` positions `(B, n_axes, T, 2)` (their midpoints).
pub fn split_rope_from_bounds(
    positions: &Tensor,
    spec: &RopeSpec,
    out_dtype: DType,
) -> Result<Rope> {
    split_rope(&midpoints(positions)?, spec, out_dtype)
}

/// Token positions `0..len` as a `(1, 1, len)` grid (the 1-D layout of the text connector).
pub fn index_positions(len: usize, device: &Device) -> Result<Tensor> {
    Tensor::arange(0u32, len as u32, device)?
        .to_dtype(DType::F32)?
        .reshape((1, 1, len))
}

/// Rotates `x` `(B, T, heads·head_dim)` with per-head tables `(B, heads, T, head_dim/2)`: inside
/// each head, element `i < d/2` pairs with `i + d/2`: `(x1·cos − x2·sin, x2·cos + x1·sin)`.
/// One fused kernel on CUDA, [`apply_split_rope_reference`] elsewhere.
pub fn apply_split_rope(x: &Tensor, rope: &Rope) -> Result<Tensor> {
    #[cfg(feature = "cuda")]
    if let Some(y) = crate::cuda_ops::rope_split(x, &rope.cos, &rope.sin)? {
        return Ok(y);
    }
    apply_split_rope_reference(x, rope)
}

/// [`apply_split_rope`] as candle ops (each product rounded to the activation dtype).
pub fn apply_split_rope_reference(x: &Tensor, rope: &Rope) -> Result<Tensor> {
    let (b, t, inner) = x.dims3()?;
    let (_, heads, _, half) = rope.cos.dims4()?;
    if heads * half * 2 != inner {
        candle_core::bail!(
            "rope: table for {heads} heads x {} does not fit width {inner}",
            2 * half
        );
    }
    let xh = x.reshape((b, t, heads, 2 * half))?.transpose(1, 2)?; // (B, H, T, D)
    let x1 = xh.narrow(D::Minus1, 0, half)?;
    let x2 = xh.narrow(D::Minus1, half, half)?;
    let (cos, sin) = (&rope.cos, &rope.sin);
    let o1 = (x1.broadcast_mul(cos)? - x2.broadcast_mul(sin)?)?;
    let o2 = (x2.broadcast_mul(cos)? + x1.broadcast_mul(sin)?)?;
    Tensor::cat(&[o1, o2], D::Minus1)?
        .transpose(1, 2)?
        .reshape((b, t, inner))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn freq_grid_spans_half_pi_to_half_pi_theta() {
        let g = freq_grid(10000.0, 3, 4096, FrequenciesPrecision::Float64);
        assert_eq!(g.len(), 682);
        assert_eq!(g[0], std::f32::consts::FRAC_PI_2);
        assert!((g[681] / (5000.0 * std::f32::consts::PI) - 1.0).abs() < 1e-6);
    }

    #[test]
    fn rope_at_zero_angle_is_identity() -> Result<()> {
        // position = max_pos/2 gives 2*frac-1 = 0, so cos 1, sin 0 everywhere.
        let dev = Device::Cpu;
        let spec = RopeSpec {
            max_pos: vec![20.0],
            theta: 10000.0,
            inner_dim: 16,
            heads: 2,
            precision: FrequenciesPrecision::Float64,
        };
        let grid = Tensor::full(10f32, (1, 1, 3), &dev)?;
        let rope = split_rope(&grid, &spec, DType::F32)?;
        let x = Tensor::randn(0f32, 1.0, (1, 3, 16), &dev)?;
        let y = apply_split_rope(&x, &rope)?;
        let diff = (x - y)?.abs()?.max_all()?.to_scalar::<f32>()?;
        assert_eq!(diff, 0.0);
        Ok(())
    }
}
