//! Absolute 3-axis RoPE of the diffusion decoder's attention (ltx-core `rope_math.py`): the head
//! is split into `(d_t, d_h, d_w)` channels, each rotated in interleaved pairs `(2i, 2i+1)` by
//! `position · base^(-2i/d)` of its own axis. Positions are local (0-based along T and H; the
//! caller gives W, which a W-slab offsets). Only differences of positions reach the attention
//! scores, so tile-local positions give the same attention as global ones.

use candle_core::{DType, Result, Tensor};

/// ltx-core `default_rope_dim_split`: a quarter of the head (even) for time, the rest split
/// evenly (and even) between height and width.
pub fn default_rope_dim_split(head_dim: usize) -> [usize; 3] {
    let mut d_t = (head_dim / 4) / 2 * 2;
    let mut d_hw = (head_dim - d_t) / 2;
    if !d_hw.is_multiple_of(2) {
        d_t -= 2;
        d_hw = (head_dim - d_t) / 2;
    }
    [d_t, d_hw, d_hw]
}

/// `1 / base^(i / dim)` for `i = 0, 2, .., dim - 2`, computed in f64 and rounded to f32 (numpy).
fn inv_freqs(dim: usize, base: f64) -> Vec<f32> {
    (0..dim)
        .step_by(2)
        .map(|i| (1.0 / base.powf(i as f64 / dim as f64)) as f32)
        .collect()
}

/// The rotation of one attention module (`rope_dim_split`, base 10000).
#[derive(Debug, Clone)]
pub struct AbsRope {
    split: [usize; 3],
    inv: [Vec<f32>; 3],
}

impl AbsRope {
    pub fn new(head_dim: usize, base: f64) -> Result<Self> {
        let split = default_rope_dim_split(head_dim);
        if split.iter().any(|&d| d == 0 || d % 2 != 0) || split.iter().sum::<usize>() != head_dim {
            candle_core::bail!("RoPE split {split:?} does not fit head_dim {head_dim}");
        }
        Ok(Self {
            split,
            inv: split.map(|d| inv_freqs(d, base)),
        })
    }

    /// `(cos, sin)` of shape `(1, T, H, W, 1, head_dim/2)`: each pair's angle comes from its
    /// axis' position (T and H count from 0, W is `w_pos`), `pos · inv` in f32 as ltx-core.
    fn tables(
        &self,
        t: usize,
        h: usize,
        w_pos: &[f32],
        dev: &candle_core::Device,
    ) -> Result<(Tensor, Tensor)> {
        let w = w_pos.len();
        let t_pos: Vec<f32> = (0..t).map(|i| i as f32).collect();
        let h_pos: Vec<f32> = (0..h).map(|i| i as f32).collect();
        let mut cos = Vec::with_capacity(3);
        let mut sin = Vec::with_capacity(3);
        for (axis, pos) in [&t_pos[..], &h_pos[..], w_pos].into_iter().enumerate() {
            let inv = &self.inv[axis];
            let angles: Vec<f32> = pos
                .iter()
                .flat_map(|&p| inv.iter().map(move |&f| p * f))
                .collect();
            let mut shape = [1usize, 1, 1, 1, 1, inv.len()];
            shape[axis + 1] = pos.len();
            let c: Vec<f32> = angles.iter().map(|a| a.cos()).collect();
            let s: Vec<f32> = angles.iter().map(|a| a.sin()).collect();
            let full = [1, t, h, w, 1, inv.len()];
            cos.push(Tensor::from_vec(c, &shape[..], dev)?.broadcast_as(&full[..])?);
            sin.push(Tensor::from_vec(s, &shape[..], dev)?.broadcast_as(&full[..])?);
        }
        Ok((Tensor::cat(&cos, 5)?, Tensor::cat(&sin, 5)?))
    }

    /// Rotates `x (B, T, H, W, heads, head_dim)` in f32 and returns it in `x`'s dtype.
    pub fn apply(&self, x: &Tensor, w_pos: &[f32]) -> Result<Tensor> {
        let [b, t, h, w, nh, hd] = super::na::dims6(x)?;
        if w != w_pos.len() || hd != self.split.iter().sum::<usize>() {
            candle_core::bail!(
                "RoPE: input {:?} does not match {} W positions / head_dim {:?}",
                x.dims(),
                w_pos.len(),
                self.split
            );
        }
        let (cos, sin) = self.tables(t, h, w_pos, x.device())?;
        let pairs = x
            .to_dtype(DType::F32)?
            .reshape(vec![b, t, h, w, nh, hd / 2, 2])?;
        let xe = pairs.narrow(6, 0, 1)?.squeeze(6)?;
        let xo = pairs.narrow(6, 1, 1)?.squeeze(6)?;
        let re = (xe.broadcast_mul(&cos)? - xo.broadcast_mul(&sin)?)?;
        let ro = (xe.broadcast_mul(&sin)? + xo.broadcast_mul(&cos)?)?;
        Tensor::stack(&[re, ro], 6)?
            .reshape((b, t, h, w, nh, hd))?
            .to_dtype(x.dtype())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn dim_split_matches_ltx_core() {
        assert_eq!(default_rope_dim_split(64), [16, 24, 24]);
        assert_eq!(default_rope_dim_split(16), [4, 6, 6]);
        // 24 -> d_t 6, d_hw 9 (odd) -> d_t 4, d_hw 10.
        assert_eq!(default_rope_dim_split(24), [4, 10, 10]);
    }

    #[test]
    fn only_position_differences_reach_the_scores() -> Result<()> {
        let dev = Device::Cpu;
        let rope = AbsRope::new(16, 10000.0)?;
        let q = Tensor::randn(0f32, 1., (1, 2, 3, 4, 1, 16), &dev)?;
        let k = Tensor::randn(0f32, 1., (1, 2, 3, 4, 1, 16), &dev)?;
        let scores = |offset: f32| -> Result<Tensor> {
            let w: Vec<f32> = (0..4).map(|i| i as f32 + offset).collect();
            let (q, k) = (rope.apply(&q, &w)?, rope.apply(&k, &w)?);
            let q = q.reshape((24, 16))?;
            let k = k.reshape((24, 16))?;
            q.matmul(&k.t()?)
        };
        let diff = (scores(0.0)? - scores(-3.0)?)?
            .abs()?
            .max_all()?
            .to_scalar::<f32>()?;
        assert!(diff < 1e-4, "{diff}");
        Ok(())
    }
}
