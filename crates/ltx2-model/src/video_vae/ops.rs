//! Parameter-free reshapes and norms of the video VAE (ltx-core `video_vae/ops.py`, `sampling.py`,
//! `common/normalization.py`).

use candle_core::{DType, Result, Tensor};

use super::ops_cpu::{ChannelsToSpaceCpu, PixelNormSiluCpu, MAX_INTERLEAVE};

/// ltx-core `PixelNorm` eps for the video VAE.
pub const PIXEL_NORM_EPS: f64 = 1e-8;

/// `silu(pixel_norm(x))`, the pre-activation of every VAE conv after the first. f32 on the CPU
/// runs it as one pass over `x` (the op chain costs six full-size passes and allocations, which
/// at the decoder's full resolution take as long as the convolutions).
pub fn pixel_norm_silu(x: &Tensor, eps: f64) -> Result<Tensor> {
    if is_cpu_f32(x) && x.rank() >= 2 {
        x.contiguous()?.apply_op1_no_bwd(&PixelNormSiluCpu { eps })
    } else {
        pixel_norm(x, eps)?.silu()
    }
}

/// `x / sqrt(mean_c(x²) + eps)` over dim 1, computed in f32 for half-precision inputs.
pub fn pixel_norm(x: &Tensor, eps: f64) -> Result<Tensor> {
    let dtype = x.dtype();
    let xf = match dtype {
        DType::F16 | DType::BF16 => x.to_dtype(DType::F32)?,
        _ => x.clone(),
    };
    let rms = (xf.sqr()?.mean_keepdim(1)? + eps)?.sqrt()?;
    xf.broadcast_div(&rms)?.to_dtype(dtype)
}

/// Decoded pixels `(B, 3, F, H, W)` in about [−1, 1] to the first video's frames `(F, H, W, 3)`
/// in [0, 1]: `((x + 1) · 0.5).clamp(0, 1)`, ltx-core's `decode_video` output layout.
pub fn to_unit_frames(pixels: &Tensor) -> Result<Tensor> {
    ((pixels.get(0)?.permute((1, 2, 3, 0))? + 1.0)? * 0.5)?
        .clamp(0f32, 1f32)?
        .contiguous()
}

/// VAE patchify `"b c f (h q) (w r) -> b (c r q) f h w"`: the width offset `r` comes before the
/// height offset `q` in the channel index (`c·p² + r·p + q`), unlike a usual pixel shuffle.
pub fn patchify(x: &Tensor, p: usize) -> Result<Tensor> {
    if p == 1 {
        return Ok(x.clone());
    }
    let (b, c, f, h, w) = x.dims5()?;
    if h % p != 0 || w % p != 0 {
        candle_core::bail!("patchify: {h}x{w} is not a multiple of the patch size {p}");
    }
    x.reshape(vec![b, c, f, h / p, p, w / p, p])?
        // (b, c, f, h, q, w, r) -> (b, c, r, q, f, h, w)
        .permute(vec![0, 1, 6, 4, 2, 3, 5])?
        .reshape((b, c * p * p, f, h / p, w / p))
}

/// Inverse of [`patchify`]: `"b (c r q) f h w -> b c f (h q) (w r)"`.
pub fn unpatchify(x: &Tensor, p: usize) -> Result<Tensor> {
    if p == 1 {
        return Ok(x.clone());
    }
    let (b, crq, f, h, w) = x.dims5()?;
    if crq % (p * p) != 0 {
        candle_core::bail!("unpatchify: {crq} channels is not a multiple of {}", p * p);
    }
    if is_cpu_f32(x) && p <= MAX_INTERLEAVE {
        let op = ChannelsToSpaceCpu {
            p: [1, p, p],
            coef: [0, 1, p],
            drop: 0,
        };
        return x.contiguous()?.apply_op1_no_bwd(&op);
    }
    let c = crq / (p * p);
    x.reshape(vec![b, c, p, p, f, h, w])?
        // (b, c, r, q, f, h, w) -> (b, c, f, h, q, w, r)
        .permute(vec![0, 1, 4, 5, 3, 6, 2])?
        .reshape((b, c, f, h * p, w * p))
}

/// `"b c (d p1) (h p2) (w p3) -> b (c p1 p2 p3) d h w"`.
pub fn space_to_depth(x: &Tensor, s: [usize; 3]) -> Result<Tensor> {
    let (b, c, d, h, w) = x.dims5()?;
    let [p1, p2, p3] = s;
    if d % p1 != 0 || h % p2 != 0 || w % p3 != 0 {
        candle_core::bail!("space_to_depth: ({d}, {h}, {w}) is not divisible by {s:?}");
    }
    x.reshape(vec![b, c, d / p1, p1, h / p2, p2, w / p3, p3])?
        .permute(vec![0, 1, 3, 5, 7, 2, 4, 6])?
        .reshape((b, c * p1 * p2 * p3, d / p1, h / p2, w / p3))
}

/// `"b (c p1 p2 p3) d h w -> b c (d p1) (h p2) (w p3)"`.
pub fn depth_to_space(x: &Tensor, s: [usize; 3]) -> Result<Tensor> {
    depth_to_space_from(x, s, 0)
}

/// [`depth_to_space`] without its first `drop` output frames (the decoder's time upsampling
/// drops one), contiguous.
pub fn depth_to_space_from(x: &Tensor, s: [usize; 3], drop: usize) -> Result<Tensor> {
    let (b, cp, d, h, w) = x.dims5()?;
    let [p1, p2, p3] = s;
    let prod = p1 * p2 * p3;
    if cp % prod != 0 {
        candle_core::bail!("depth_to_space: {cp} channels is not divisible by {prod}");
    }
    if drop > d * p1 {
        candle_core::bail!("depth_to_space: cannot drop {drop} of {} frames", d * p1);
    }
    if is_cpu_f32(x) && p3 <= MAX_INTERLEAVE {
        let op = ChannelsToSpaceCpu {
            p: s,
            coef: [p2 * p3, p3, 1],
            drop,
        };
        return x.contiguous()?.apply_op1_no_bwd(&op);
    }
    let c = cp / prod;
    let y = x
        .reshape(vec![b, c, p1, p2, p3, d, h, w])?
        .permute(vec![0, 1, 5, 2, 6, 3, 7, 4])?
        .reshape((b, c, d * p1, h * p2, w * p3))?;
    if drop == 0 {
        Ok(y)
    } else {
        y.narrow(2, drop, d * p1 - drop)?.contiguous()
    }
}

fn is_cpu_f32(x: &Tensor) -> bool {
    x.device().is_cpu() && x.dtype() == DType::F32
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn patchify_puts_width_offset_before_height_offset() {
        // One channel, one frame, 2x2 pixels with values (h, w) -> 10h + w.
        let x = Tensor::new(&[0f32, 1., 10., 11.], &Device::Cpu)
            .unwrap()
            .reshape((1, 1, 1, 2, 2))
            .unwrap();
        let y = patchify(&x, 2)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        // channel r*2 + q holds pixel (h = q, w = r)
        assert_eq!(y, vec![0., 10., 1., 11.]);
        let back = unpatchify(&patchify(&x, 2).unwrap(), 2).unwrap();
        assert_eq!(
            back.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
            vec![0., 1., 10., 11.]
        );
    }

    #[test]
    fn fused_pixel_norm_silu_matches_the_op_chain() {
        // Rank 5 (video) and 4, a strided input, more positions than one work item.
        let x = Tensor::randn(0f32, 2., (2, 5, 3, 31, 23), &Device::Cpu).unwrap();
        for x in [
            x.clone(),
            x.transpose(3, 4).unwrap(),
            x.flatten_from(3).unwrap(),
        ] {
            let fused = pixel_norm_silu(&x, PIXEL_NORM_EPS).unwrap();
            let chain = pixel_norm(&x, PIXEL_NORM_EPS).unwrap().silu().unwrap();
            assert_eq!(fused.dims(), chain.dims());
            let d: f32 = (fused - chain)
                .unwrap()
                .abs()
                .unwrap()
                .flatten_all()
                .unwrap()
                .max(0)
                .unwrap()
                .to_scalar()
                .unwrap();
            assert!(d < 1e-5, "{d}");
        }
    }

    /// `x (B, C, D, H, W)` with C split as `(C / ∏offsets, offsets..)`, permuted and reshaped:
    /// the rearranges of `depth_to_space` / `unpatchify` as the other devices run them.
    fn permuted(
        x: &Tensor,
        offsets: &[usize],
        perm: Vec<usize>,
        out: (usize, usize, usize, usize, usize),
    ) -> Tensor {
        let (b, c, d, h, w) = x.dims5().unwrap();
        let mut split = vec![b, c / offsets.iter().product::<usize>()];
        split.extend_from_slice(offsets);
        split.extend([d, h, w]);
        x.reshape(split)
            .unwrap()
            .permute(perm)
            .unwrap()
            .reshape(out)
            .unwrap()
    }

    #[test]
    fn cpu_rearranges_match_the_generic_permutes() {
        let x = Tensor::randn(0f32, 1., (2, 16, 3, 5, 7), &Device::Cpu).unwrap();
        let v = |t: &Tensor| t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        // unpatchify, p = 4: (b, c, r, q, f, h, w) -> (b, c, f, h, q, w, r)
        let generic = permuted(&x, &[4, 4], vec![0, 1, 4, 5, 3, 6, 2], (2, 1, 3, 20, 28));
        assert_eq!(v(&unpatchify(&x, 4).unwrap()), v(&generic));
        // depth_to_space, stride (2, 2, 2) and (1, 2, 2), with and without the first frame.
        for s in [[2, 2, 2], [1, 2, 2]] {
            let (d, c) = (3 * s[0], 16 / s.iter().product::<usize>());
            let generic = permuted(&x, &s, vec![0, 1, 5, 2, 6, 3, 7, 4], (2, c, d, 10, 14));
            assert_eq!(v(&depth_to_space(&x, s).unwrap()), v(&generic));
            let dropped = depth_to_space_from(&x, s, 1).unwrap();
            assert_eq!(dropped.dims(), &[2, c, d - 1, 10, 14]);
            assert_eq!(v(&dropped), v(&generic.narrow(2, 1, d - 1).unwrap()));
        }
        // A strided input takes the same path.
        let xt = x.transpose(3, 4).unwrap();
        let generic = permuted(
            &xt.contiguous().unwrap(),
            &[2, 2, 2],
            vec![0, 1, 5, 2, 6, 3, 7, 4],
            (2, 2, 6, 14, 10),
        );
        assert_eq!(v(&depth_to_space(&xt, [2, 2, 2]).unwrap()), v(&generic));
    }

    #[test]
    fn depth_to_space_inverts_space_to_depth() {
        let x = Tensor::randn(0f32, 1., (1, 3, 4, 6, 8), &Device::Cpu).unwrap();
        for s in [[2, 2, 2], [1, 2, 2], [2, 1, 1]] {
            let y = depth_to_space(&space_to_depth(&x, s).unwrap(), s).unwrap();
            let d: f32 = (y - &x)
                .unwrap()
                .abs()
                .unwrap()
                .flatten_all()
                .unwrap()
                .max(0)
                .unwrap()
                .to_scalar()
                .unwrap();
            assert_eq!(d, 0.0);
        }
    }

    #[test]
    fn space_to_depth_channel_order_is_c_p1_p2_p3() {
        // (1, 1, 2, 2, 2) with value 4d + 2h + w: channel p1*4 + p2*2 + p3 holds (d, h, w) = (p1, p2, p3).
        let x = Tensor::arange(0f32, 8., &Device::Cpu)
            .unwrap()
            .reshape((1, 1, 2, 2, 2))
            .unwrap();
        let y = space_to_depth(&x, [2, 2, 2])
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        assert_eq!(y, (0..8).map(|v| v as f32).collect::<Vec<_>>());
    }
}
