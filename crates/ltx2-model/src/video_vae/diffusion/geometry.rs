//! Shape bookkeeping of the diffusion decoder (ltx-core `diffusion_tiling.py`, geometry half):
//! size floors so every stage's neighbourhood fits, the NATTEN last-frame padding, how extents
//! map from the latent to stage 4 and to pixels, and the pad / crop helpers.

use candle_core::{Result, Tensor};

use super::{DiffusionDecoderConfig, Upsample};

/// How [`resize_axis`] pads or crops.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResizeMode {
    /// Pad by repeating the last slice; crop from the end.
    RepeatLast,
    /// Pad by repeating the first / last slice, `need / 2` in front; crop the same split.
    Symmetric,
}

/// Elements added (pad) or removed (crop) on each side of an axis.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AxisPad {
    pub before: usize,
    pub after: usize,
}

/// ltx-core `resize_axis`: pads or crops axis `dim` of `x` to `size`.
pub fn resize_axis(
    x: &Tensor,
    dim: usize,
    size: usize,
    mode: ResizeMode,
) -> Result<(Tensor, AxisPad)> {
    let len = x.dim(dim)?;
    if size == 0 {
        candle_core::bail!("resize_axis: target size must be >= 1");
    }
    if len == size {
        return Ok((x.clone(), AxisPad::default()));
    }
    let repeat = |at: usize, n: usize| -> Result<Tensor> {
        let mut shape = x.dims().to_vec();
        shape[dim] = n;
        x.narrow(dim, at, 1)?.broadcast_as(shape)?.contiguous()
    };
    if len < size {
        let need = size - len;
        let (before, after) = match mode {
            ResizeMode::RepeatLast => (0, need),
            ResizeMode::Symmetric => (need / 2, need - need / 2),
        };
        let mut parts = Vec::with_capacity(3);
        if before > 0 {
            parts.push(repeat(0, before)?);
        }
        parts.push(x.clone());
        if after > 0 {
            parts.push(repeat(len - 1, after)?);
        }
        return Ok((Tensor::cat(&parts, dim)?, AxisPad { before, after }));
    }
    let need = len - size;
    let before = match mode {
        ResizeMode::RepeatLast => 0,
        ResizeMode::Symmetric => need / 2,
    };
    Ok((
        x.narrow(dim, before, size)?,
        AxisPad {
            before,
            after: need - before,
        },
    ))
}

/// Per-axis latent size below which some stage's neighbourhood would not fit
/// (`all_stages_min_tile_size`): `ceil(kernel / cumulative stride)` over stages 1-5.
pub fn all_stages_min_latent(cfg: &DiffusionDecoderConfig) -> [usize; 3] {
    let mut cumulative = [1usize; 3];
    let mut mins = [1usize; 3];
    for (stage, (stride, _)) in cfg.upsamples.iter().enumerate() {
        for a in 0..3 {
            mins[a] = mins[a].max(cfg.stage_kernels[stage][a].div_ceil(cumulative[a]));
        }
        for a in 0..3 {
            cumulative[a] *= stride[a];
        }
    }
    for a in 0..3 {
        mins[a] = mins[a].max(cfg.stage5_kernel[a].div_ceil(cumulative[a]));
    }
    mins
}

/// ltx-core `ensure_min_latent_shape`: frames padded by repeating the last one, height and width
/// by edge replication split around the content.
pub fn ensure_min_latent(latent: &Tensor, mins: [usize; 3]) -> Result<(Tensor, [AxisPad; 3])> {
    let mut x = latent.clone();
    let mut pads = [AxisPad::default(); 3];
    let modes = [
        ResizeMode::RepeatLast,
        ResizeMode::Symmetric,
        ResizeMode::Symmetric,
    ];
    for a in 0..3 {
        if x.dim(a + 2)? < mins[a] {
            let (y, pad) = resize_axis(&x, a + 2, mins[a], modes[a])?;
            x = y;
            pads[a] = pad;
        }
    }
    Ok((x, pads))
}

/// Extent after one upsampler along time: `2t − 1` when the leading duplicate is dropped.
fn up_t(t: usize, stride: usize, drop_leading_frame: bool) -> usize {
    if stride == 2 && drop_leading_frame {
        t * 2 - 1
    } else {
        t * stride
    }
}

/// Stage-4 input `(T, H, W)` of a latent after the first three upsamplers.
pub fn stage4_thw(upsamples: &[Upsample], latent: [usize; 3]) -> [usize; 3] {
    let [mut t, mut h, mut w] = latent;
    for (s, _) in &upsamples[..3] {
        t = up_t(t, s[0], true);
        h *= s[1];
        w *= s[2];
    }
    [t, h, w]
}

/// Pixel `(F, H, W)` of the stage-5 canvas of a stage-4 extent (the last upsampler, then the
/// patch), at least `stage5_kernel_t` frames when the tile holds the trailing ghost frames.
pub fn stage5_pixel_shape(
    stage4: [usize; 3],
    stride: [usize; 3],
    patch: usize,
    stage5_kernel_t: usize,
    drop_leading_frame: bool,
    pad_trailing: bool,
) -> [usize; 3] {
    let mut frames = up_t(stage4[0], stride[0], drop_leading_frame);
    if pad_trailing {
        frames = frames.max(stage5_kernel_t);
    }
    [
        frames,
        stage4[1] * stride[1] * patch,
        stage4[2] * stride[2] * patch,
    ]
}

/// ltx-core `crop_trailing_context_natten_pad` on a channels-last `(B, T, H, W, C)`: drops the
/// `n_latent · time_scale` ghost frames, keeping at least `min_frames`.
pub fn crop_trailing_ghost(
    context: &Tensor,
    n_latent: usize,
    time_scale: usize,
    min_frames: usize,
) -> Result<Tensor> {
    if n_latent == 0 {
        return Ok(context.clone());
    }
    let t = context.dim(1)?;
    let content = t.saturating_sub(n_latent * time_scale).max(1);
    let keep = t.min(content.max(min_frames));
    Ok(resize_axis(context, 1, keep, ResizeMode::RepeatLast)?.0)
}

/// Minimum stage-4 tile `(T, H, W)` so stages 4 and 5 each see at least their kernel.
pub fn tile_min_size(cfg: &DiffusionDecoderConfig) -> [usize; 3] {
    let (k4, k5, s) = (cfg.stage_kernels[3], cfg.stage5_kernel, cfg.upsamples[3].0);
    [0, 1, 2].map(|a| k4[a].max(k5[a].div_ceil(s[a])))
}

/// One-sided halos in stage-4 cells of stage 4 and of stage 5 (`compute_tile_halos`).
pub fn tile_halos(cfg: &DiffusionDecoderConfig) -> [[usize; 3]; 2] {
    let (k4, d4) = (cfg.stage_kernels[3], cfg.stage_depths[3]);
    let (k5, d5, s) = (cfg.stage5_kernel, cfg.stage5_depth(), cfg.upsamples[3].0);
    [
        [0, 1, 2].map(|a| d4 * (k4[a] / 2)),
        [0, 1, 2].map(|a| (d5 * (k5[a] / 2)).div_ceil(s[a])),
    ]
}

/// Pixels (frames) per stage-4 cell: the last upsampler times the patch.
pub fn stage4_pixel_scale(cfg: &DiffusionDecoderConfig) -> [usize; 3] {
    let s = cfg.upsamples[3].0;
    [s[0], s[1] * cfg.patch_size, s[2] * cfg.patch_size]
}

/// The overlaps a tiled decode needs (`recommended_pixel_overlaps`): `(frames, pixels)`, the
/// larger stage halo scaled to pixels and rounded up to 8 frames / 32 pixels.
pub fn min_pixel_overlaps(cfg: &DiffusionDecoderConfig) -> (usize, usize) {
    let halos = tile_halos(cfg);
    let scale = stage4_pixel_scale(cfg);
    let dominant = |a: usize| halos[0][a].max(halos[1][a]);
    let frames = (dominant(0) * scale[0]).div_ceil(8) * 8;
    let pixels = (dominant(1).max(dominant(2)) * scale[1]).div_ceil(32) * 32;
    (frames, pixels)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    fn golden_like() -> DiffusionDecoderConfig {
        DiffusionDecoderConfig::from_vae_section(&serde_json::json!({
            "decoder": {"head_dim": 16, "stage_channels": [64, 32, 16, 16, 16],
                        "stage_depths": [1, 1, 1, 1, 2], "stage5_kernel": [3, 5, 5],
                        "stage_kernels": [[3, 3, 3], [3, 3, 3], [3, 3, 3], [3, 3, 3], [3, 3, 3]],
                        "upsamples": [[[1, 2, 2], 2], [[2, 1, 1], 2], [[2, 2, 2], 1], [[2, 2, 2], 1]]}
        }))
        .unwrap()
    }

    #[test]
    fn floors_and_shapes() {
        let cfg = golden_like();
        assert_eq!(all_stages_min_latent(&cfg), [3, 3, 3]);
        // 3 latent frames + 2 ghost frames -> 17 stage-4 frames; 3 x 3 cells -> 12 x 12.
        assert_eq!(stage4_thw(&cfg.upsamples, [5, 3, 3]), [17, 12, 12]);
        assert_eq!(
            stage5_pixel_shape([9, 12, 12], [2, 2, 2], 4, 3, true, true),
            [17, 96, 96]
        );
        assert_eq!(tile_min_size(&cfg), [3, 3, 3]);
        assert_eq!(tile_halos(&cfg), [[1, 1, 1], [1, 2, 2]]);
        assert_eq!(min_pixel_overlaps(&cfg), (8, 32));
    }

    #[test]
    fn resize_pads_and_crops_symmetrically() -> Result<()> {
        let x = Tensor::arange(0f32, 3., &Device::Cpu)?;
        let (y, pad) = resize_axis(&x, 0, 6, ResizeMode::Symmetric)?;
        assert_eq!(y.to_vec1::<f32>()?, [0., 0., 1., 2., 2., 2.]);
        assert_eq!(
            pad,
            AxisPad {
                before: 1,
                after: 2
            }
        );
        let (z, pad) = resize_axis(&y, 0, 3, ResizeMode::Symmetric)?;
        assert_eq!(z.to_vec1::<f32>()?, [0., 1., 2.]);
        assert_eq!(
            pad,
            AxisPad {
                before: 1,
                after: 2
            }
        );
        Ok(())
    }
}
