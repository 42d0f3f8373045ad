//! Tiled decoding of the diffusion decoder (ltx-core 1.2.0 `diffusion_tiling.prepare_tile_schedule`
//! and `DiffusionVideoDecoder._decode_pixels`).
//!
//! What tiling does here: stages 1-3 always run once on the whole latent (they are cheap); the
//! stage-4 input is then cut into overlapping tiles (sizes given in output frames / pixels,
//! `tile / pixel_scale` stage-4 cells, `pixel_scale` = the last upsampler's stride times the
//! patch), and each tile runs stage 4 and the diffusion stage on its own, with its own starting
//! noise, as if it were a whole video (the tile holding frame 0 drops the leading duplicate frame
//! of the time upsampler, the last one keeps the trailing ghost frames). The tiles' pixels are
//! blended with symmetric trapezoid ramps as wide as the overlaps (which partition unity, so no
//! weight buffer is needed when every overlap fits its neighbours). The overlaps must cover the
//! stage-4/5 attention halos ([`super::geometry::min_pixel_overlaps`]); smaller ones are an
//! error, as in ltx-core. A single tile covering the video is the untiled decode.

use candle_core::{Result, Tensor};

/// One axis of a [`DiffusionTiling`], in output frames (time) or pixels (height, width).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TileAxis {
    /// 0 = this axis is not tiled.
    pub size: usize,
    pub overlap: usize,
}

impl TileAxis {
    pub const UNTILED: Self = Self {
        size: 0,
        overlap: 0,
    };

    pub fn new(size: usize, overlap: usize) -> Self {
        Self { size, overlap }
    }

    pub fn is_tiled(&self) -> bool {
        self.size > 0
    }
}

/// ltx-core `TileSizeConfig` as the diffusion decoder uses it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DiffusionTiling {
    pub frames: TileAxis,
    pub height: TileAxis,
    pub width: TileAxis,
}

impl DiffusionTiling {
    /// One tile: the untiled decode.
    pub const UNTILED: Self = Self {
        frames: TileAxis::UNTILED,
        height: TileAxis::UNTILED,
        width: TileAxis::UNTILED,
    };
}

/// A tile along one axis: its stage-4 input range, output range and blend mask.
#[derive(Debug, Clone, PartialEq)]
pub struct AxisTile {
    /// Stage-4 cells (`None` = the whole axis).
    pub input: Option<std::ops::Range<usize>>,
    /// Output frames / pixels (`None` = the whole axis).
    pub output: Option<std::ops::Range<usize>>,
    /// Blend weights over `output` (length 1 = all ones, broadcast).
    pub mask: Vec<f32>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Interval {
    start: usize,
    end: usize,
    left_ramp: usize,
    right_ramp: usize,
}

/// ltx-core `split_by_size(size, overlap, min_tile_size)`.
fn split_by_size(
    len: usize,
    size: usize,
    overlap: usize,
    min_tile: usize,
) -> Result<Vec<Interval>> {
    let whole = vec![Interval {
        start: 0,
        end: len,
        left_ramp: 0,
        right_ramp: 0,
    }];
    if len < min_tile || len <= size {
        return Ok(whole);
    }
    let step = size - overlap;
    let amount = (len + size - 2 * overlap - 1) / step;
    let mut iv = vec![Interval {
        start: 0,
        end: size,
        left_ramp: 0,
        right_ramp: overlap,
    }];
    for i in 1..amount.saturating_sub(1) {
        iv.push(Interval {
            start: i * step,
            end: i * step + size,
            left_ramp: overlap,
            right_ramp: overlap,
        });
    }
    iv.push(Interval {
        start: (amount - 1) * step,
        end: len,
        left_ramp: overlap,
        right_ramp: 0,
    });
    // A short last tile grows to the left (the penultimate tile's right ramp widens).
    let n = iv.len();
    if n > 1 && iv[n - 1].end - iv[n - 1].start < min_tile {
        let new_start = iv[n - 1].end - min_tile;
        let widened = iv[n - 2].end - new_start;
        iv[n - 2].right_ramp = widened;
        iv[n - 1].start = new_start;
        iv[n - 1].left_ramp = widened;
    }
    for (i, t) in iv.iter().enumerate() {
        let l = t.end - t.start;
        if l < min_tile || t.left_ramp > l || t.right_ramp > l {
            candle_core::bail!("diffusion tiling: tile {i} ({t:?}) is below the minimum {min_tile} or its ramps do not fit");
        }
        if i > 0 {
            let overlap = iv[i - 1].end as isize - t.start as isize;
            if overlap < 0
                || iv[i - 1].right_ramp as isize != overlap
                || t.left_ramp as isize != overlap
            {
                candle_core::bail!(
                    "diffusion tiling: tiles {} and {i} overlap inconsistently",
                    i - 1
                );
            }
        }
    }
    Ok(iv)
}

/// ltx-core `compute_trapezoidal_mask_1d(length, left, right, left_starts_from_0=False)`.
pub fn trapezoid_mask(length: usize, left: usize, right: usize) -> Vec<f32> {
    let (left, right) = (left.min(length), right.min(length));
    let mut mask = vec![1f32; length];
    // torch.linspace(0, 1, n + 2)[1:-1] and linspace(1, 0, n + 2)[1:-1]: the ramps never
    // reach 0 or 1.
    let up = linspace(0.0, 1.0, left + 2);
    for (m, r) in mask.iter_mut().zip(&up[1..left + 1]) {
        *m *= r;
    }
    let down = linspace(1.0, 0.0, right + 2);
    for (m, r) in mask[length - right..].iter_mut().zip(&down[1..right + 1]) {
        *m *= r;
    }
    mask.iter().map(|v| v.clamp(0.0, 1.0)).collect()
}

/// `torch.linspace` in f32 (first half from `start`, second half from `end`).
fn linspace(start: f32, end: f32, n: usize) -> Vec<f32> {
    if n == 1 {
        return vec![start];
    }
    let step = (end - start) / (n - 1) as f32;
    (0..n)
        .map(|i| {
            if i < n / 2 {
                start + step * i as f32
            } else {
                end - step * (n - 1 - i) as f32
            }
        })
        .collect()
}

/// `_propagate_interval_through_upsample_hops` for one hop of `stride` (the time axis drops
/// the leading duplicate frame of a ×2 hop: the end moves back one, a non-first start too).
fn propagate(iv: Interval, stride: usize, causal: bool) -> Interval {
    let mut out = Interval {
        start: iv.start * stride,
        end: iv.end * stride,
        left_ramp: iv.left_ramp * stride,
        right_ramp: iv.right_ramp * stride,
    };
    if causal && stride == 2 {
        out.end -= 1;
        if iv.start != 0 {
            out.start -= 1;
        }
    }
    out
}

/// Per-axis tiles over a stage-4 input of `stage4 (T, H, W)`: `pixel_scale` output units per
/// stage-4 cell, `upsample` = the last upsampler's stride, `min_tile` / `overlaps` from
/// [`super::geometry`]. Axis order (T, H, W); the tiles are their cartesian product, time
/// slowest.
pub fn axis_tiles(
    tiling: &DiffusionTiling,
    stage4: [usize; 3],
    upsample: [usize; 3],
    patch: usize,
    min_tile: [usize; 3],
    overlaps: (usize, usize),
) -> Result<[Vec<AxisTile>; 3]> {
    let axes = [
        ("frames", tiling.frames),
        ("height", tiling.height),
        ("width", tiling.width),
    ];
    let pixel_scale = [upsample[0], upsample[1] * patch, upsample[2] * patch];
    let mut out: [Vec<AxisTile>; 3] = Default::default();
    for (a, (name, cfg)) in axes.into_iter().enumerate() {
        if !cfg.is_tiled() {
            out[a] = vec![AxisTile {
                input: None,
                output: None,
                mask: vec![1.0],
            }];
            continue;
        }
        let (unit, min_overlap) = if a == 0 {
            ("frames", overlaps.0)
        } else {
            ("px", overlaps.1)
        };
        let factor = pixel_scale[a];
        if cfg.overlap < min_overlap {
            candle_core::bail!(
                "{name} overlap {} {unit} is below the required {min_overlap} {unit}",
                cfg.overlap
            );
        }
        if cfg.size < 2 * factor || cfg.size % factor != 0 || cfg.overlap % factor != 0 {
            candle_core::bail!(
                "{name}: tile size {} and overlap {} must be multiples of {factor} and the size at least {}",
                cfg.size,
                cfg.overlap,
                2 * factor
            );
        }
        let overlap = cfg.overlap / factor;
        let size = (cfg.size / factor).max(2.max(overlap + 1));
        for iv in split_by_size(stage4[a], size, overlap, min_tile[a])? {
            let mut px = propagate(iv, upsample[a], a == 0);
            if a > 0 {
                px = propagate(px, patch, false);
            }
            out[a].push(AxisTile {
                input: Some(iv.start..iv.end),
                output: Some(px.start..px.end),
                mask: trapezoid_mask(px.end - px.start, px.left_ramp, px.right_ramp),
            });
        }
    }
    Ok(out)
}

/// `masks_are_complementary`: on every axis the masks of the distinct output ranges sum to 1
/// (within 1e-5), so the blend needs no weight buffer.
pub fn masks_are_complementary(axes: &[Vec<AxisTile>; 3], lengths: [usize; 3]) -> bool {
    (0..3).all(|a| {
        let mut acc = vec![0f32; lengths[a]];
        let mut seen = Vec::new();
        for tile in &axes[a] {
            if seen.contains(&tile.output) {
                continue;
            }
            seen.push(tile.output.clone());
            let range = tile.output.clone().unwrap_or(0..lengths[a]);
            for (k, i) in range.enumerate() {
                acc[i] += if tile.mask.len() == 1 {
                    tile.mask[0]
                } else {
                    tile.mask[k]
                };
            }
        }
        acc.iter().all(|v| (v - 1.0).abs() <= 1e-5)
    })
}

/// `x (B, C, F, H, W)` times the separable masks of a tile (length-1 masks broadcast).
pub fn scale_by_masks(x: &Tensor, masks: [&[f32]; 3]) -> Result<Tensor> {
    let mut out = x.clone();
    for (a, m) in masks.iter().enumerate() {
        if m.len() == 1 && m[0] == 1.0 {
            continue;
        }
        let mut shape = vec![1usize; 5];
        shape[a + 2] = m.len();
        let t = Tensor::from_vec(m.to_vec(), shape, x.device())?.to_dtype(x.dtype())?;
        out = out.broadcast_mul(&t)?;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trapezoid_matches_ltx_core() {
        // compute_trapezoidal_mask_1d(6, 2, 3): fade-in 1/3, 2/3; fade-out 3/4, 1/2, 1/4.
        let m = trapezoid_mask(6, 2, 3);
        let want = [1. / 3., 2. / 3., 1., 0.75, 0.5, 0.25];
        for (a, b) in m.iter().zip(want) {
            assert!((a - b).abs() < 1e-6, "{m:?}");
        }
    }

    #[test]
    fn split_grows_a_short_last_tile() -> Result<()> {
        // split_by_size(4, 1, min 3) over 9: [0,4) [3,7) [6,9) -> all >= 3.
        let iv = split_by_size(9, 4, 1, 3)?;
        let got: Vec<_> = iv
            .iter()
            .map(|i| (i.start, i.end, i.left_ramp, i.right_ramp))
            .collect();
        assert_eq!(got, vec![(0, 4, 0, 1), (3, 7, 1, 1), (6, 9, 1, 0)]);
        // over 8: [0,4) [3,7) [6,8) -> the last grows to [5,8), overlap 2.
        let iv = split_by_size(8, 4, 1, 3)?;
        let got: Vec<_> = iv
            .iter()
            .map(|i| (i.start, i.end, i.left_ramp, i.right_ramp))
            .collect();
        assert_eq!(got, vec![(0, 4, 0, 1), (3, 7, 1, 2), (5, 8, 2, 0)]);
        Ok(())
    }

    #[test]
    fn time_tiles_follow_the_dropped_leading_frame() -> Result<()> {
        let tiling = DiffusionTiling {
            frames: TileAxis::new(16, 8),
            ..DiffusionTiling::UNTILED
        };
        let axes = axis_tiles(&tiling, [17, 4, 4], [2, 2, 2], 4, [3, 3, 3], (8, 32))?;
        let t: Vec<_> = axes[0]
            .iter()
            .map(|a| (a.input.clone().unwrap(), a.output.clone().unwrap()))
            .collect();
        // Stage-4 tiles of 8 cells, overlap 4: frames 2s - 1 .. 2e - 1 (origin: 0 .. 2e - 1).
        assert_eq!(
            t,
            vec![
                (0..8, 0..15),
                (4..12, 7..23),
                (8..16, 15..31),
                (12..17, 23..33)
            ]
        );
        assert!(masks_are_complementary(&axes, [33, 32, 32]));
        Ok(())
    }
}
