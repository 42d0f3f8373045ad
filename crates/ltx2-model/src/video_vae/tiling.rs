//! Tiled decoding (ltx-core `video_vae.py::VideoDecoder.tiled_decode` and `tiling.py`): the latent
//! is cut into overlapping spatial and temporal tiles that are decoded one at a time and blended
//! with trapezoidal masks; finished frames are handed out chunk by chunk. Tiling bounds memory, it
//! is not exact: a tile only sees its own latents.

use std::ops::Range;

use candle_core::{DType, Device, Result, Tensor};

use super::VIDEO_SCALE_FACTORS;

/// Square spatial tiles (ltx-core `SpatialTilingConfig`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpatialTilingConfig {
    pub tile_size_in_pixels: usize,
    pub tile_overlap_in_pixels: usize,
}

impl SpatialTilingConfig {
    /// Size ≥ 64 and both multiples of 32, overlap < size (as ltx-core checks).
    pub fn new(tile_size_in_pixels: usize, tile_overlap_in_pixels: usize) -> Result<Self> {
        if tile_size_in_pixels < 64
            || !tile_size_in_pixels.is_multiple_of(32)
            || !tile_overlap_in_pixels.is_multiple_of(32)
        {
            candle_core::bail!(
                "spatial tiling: tile size {tile_size_in_pixels} must be >= 64 and it and the overlap \
                 {tile_overlap_in_pixels} multiples of 32"
            );
        }
        if tile_overlap_in_pixels >= tile_size_in_pixels {
            candle_core::bail!("spatial tiling: overlap {tile_overlap_in_pixels} must be < tile size {tile_size_in_pixels}");
        }
        Ok(Self {
            tile_size_in_pixels,
            tile_overlap_in_pixels,
        })
    }
}

/// Chunks of frames (ltx-core `TemporalTilingConfig`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TemporalTilingConfig {
    pub tile_size_in_frames: usize,
    pub tile_overlap_in_frames: usize,
}

impl TemporalTilingConfig {
    /// Size ≥ 16 and both multiples of 8, overlap < size (as ltx-core checks).
    pub fn new(tile_size_in_frames: usize, tile_overlap_in_frames: usize) -> Result<Self> {
        if tile_size_in_frames < 16
            || !tile_size_in_frames.is_multiple_of(8)
            || !tile_overlap_in_frames.is_multiple_of(8)
        {
            candle_core::bail!(
                "temporal tiling: tile size {tile_size_in_frames} must be >= 16 and it and the overlap \
                 {tile_overlap_in_frames} multiples of 8"
            );
        }
        if tile_overlap_in_frames >= tile_size_in_frames {
            candle_core::bail!(
                "temporal tiling: overlap {tile_overlap_in_frames} must be < tile size {tile_size_in_frames}"
            );
        }
        Ok(Self {
            tile_size_in_frames,
            tile_overlap_in_frames,
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TilingConfig {
    pub spatial: Option<SpatialTilingConfig>,
    pub temporal: Option<TemporalTilingConfig>,
}

impl Default for TilingConfig {
    /// ltx-core `TilingConfig.default()`: 512 px tiles with 64 px overlap, 64-frame tiles with
    /// 24 frames of overlap.
    fn default() -> Self {
        Self {
            spatial: Some(SpatialTilingConfig {
                tile_size_in_pixels: 512,
                tile_overlap_in_pixels: 64,
            }),
            temporal: Some(TemporalTilingConfig {
                tile_size_in_frames: 64,
                tile_overlap_in_frames: 24,
            }),
        }
    }
}

/// How [`super::VideoDecoder::decode_with`] splits the work.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecodeTiling {
    /// One decode of the whole latent.
    None,
    /// ltx-core's blended tiles (what the official CLI does): bounded memory in space and time,
    /// close to but not equal to the untiled decode.
    Blended(TilingConfig),
    /// Spatial tiles of `tile_latents` latent cells decoded with a halo of the decoder's
    /// receptive radius and stitched (see [`super::exact_tiling`]): equal to the untiled decode,
    /// memory bounded in space only.
    Exact { tile_latents: usize },
}

impl Default for DecodeTiling {
    /// ltx-core's default blended tiling, as the official CLI decodes.
    fn default() -> Self {
        Self::Blended(TilingConfig::default())
    }
}

impl DecodeTiling {
    /// Latent cells per exact tile when none is given: ltx-core's default 512 px tile.
    pub const DEFAULT_EXACT_TILE_LATENTS: usize = 512 / VIDEO_SCALE_FACTORS[1];
}

impl std::str::FromStr for DecodeTiling {
    type Err = String;

    /// `none`, `ltx-core` (the default blended tiles), `exact` or `exact:<tile_latents>`.
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        let bad = || {
            format!(
                "video decode tiling `{s}`: expected none, ltx-core, exact or exact:<latent cells>"
            )
        };
        match s.trim() {
            "none" => Ok(Self::None),
            "ltx-core" => Ok(Self::default()),
            "exact" => Ok(Self::Exact {
                tile_latents: Self::DEFAULT_EXACT_TILE_LATENTS,
            }),
            other => {
                let n = other.strip_prefix("exact:").ok_or_else(bad)?;
                match n.parse::<usize>() {
                    Ok(tile_latents) if tile_latents > 0 => Ok(Self::Exact { tile_latents }),
                    _ => Err(bad()),
                }
            }
        }
    }
}

/// How one axis is cut (ltx-core `DimensionIntervals`).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Intervals {
    starts: Vec<usize>,
    ends: Vec<usize>,
    left_ramps: Vec<usize>,
    right_ramps: Vec<usize>,
}

impl Intervals {
    fn whole(len: usize) -> Self {
        Self {
            starts: vec![0],
            ends: vec![len],
            left_ramps: vec![0],
            right_ramps: vec![0],
        }
    }
}

/// ltx-core `split_with_symmetric_overlaps`.
fn split_with_symmetric_overlaps(size: usize, overlap: usize, len: usize) -> Intervals {
    if len <= size {
        return Intervals::whole(len);
    }
    let amount = (len + size - 2 * overlap - 1) / (size - overlap);
    let starts: Vec<usize> = (0..amount).map(|i| i * (size - overlap)).collect();
    let mut ends: Vec<usize> = starts.iter().map(|s| s + size).collect();
    *ends.last_mut().expect("at least one tile") = len;
    let mut left_ramps = vec![overlap; amount];
    left_ramps[0] = 0;
    let mut right_ramps = vec![overlap; amount];
    right_ramps[amount - 1] = 0;
    Intervals {
        starts,
        ends,
        left_ramps,
        right_ramps,
    }
}

/// ltx-core `split_temporal_latents`: later tiles start one latent earlier (that latent decodes to
/// a single frame) and ramp in over it too.
fn split_temporal_latents(size: usize, overlap: usize, len: usize) -> Intervals {
    if len <= size {
        return Intervals::whole(len);
    }
    let mut iv = split_with_symmetric_overlaps(size, overlap, len);
    for i in 1..iv.starts.len() {
        iv.starts[i] -= 1;
        iv.left_ramps[i] += 1;
    }
    iv
}

/// ltx-core `compute_trapezoidal_mask_1d`.
fn trapezoidal_mask(
    len: usize,
    ramp_left: usize,
    ramp_right: usize,
    left_starts_from_0: bool,
) -> Vec<f32> {
    let (rl, rr) = (ramp_left.min(len), ramp_right.min(len));
    let mut mask = vec![1f32; len];
    if rl > 0 {
        for (i, m) in mask.iter_mut().take(rl).enumerate() {
            // linspace(0, 1, rl + 1)[:-1] or linspace(0, 1, rl + 2)[1:-1]
            *m *= if left_starts_from_0 {
                i as f32 / rl as f32
            } else {
                (i + 1) as f32 / (rl + 1) as f32
            };
        }
    }
    if rr > 0 {
        for (i, m) in mask[len - rr..].iter_mut().enumerate() {
            // linspace(1, 0, rr + 2)[1:-1]
            *m *= 1.0 - (i + 1) as f32 / (rr + 1) as f32;
        }
    }
    mask.iter().map(|m| m.clamp(0.0, 1.0)).collect()
}

/// One tile along one axis: latent range in, output range, blend mask (`None` = all ones).
#[derive(Debug, Clone, PartialEq)]
struct AxisTile {
    input: Range<usize>,
    output: Range<usize>,
    mask: Option<Vec<f32>>,
}

fn spatial_axis(
    cfg: Option<&SpatialTilingConfig>,
    len: usize,
    long_side: usize,
    scale: usize,
) -> Vec<AxisTile> {
    let Some(cfg) = cfg else {
        return vec![AxisTile {
            input: 0..len,
            output: 0..len * scale,
            mask: None,
        }];
    };
    let size = cfg.tile_size_in_pixels / scale;
    let overlap = cfg.tile_overlap_in_pixels / scale;
    let lower = 2.max(overlap + 1);
    // Python's round() on a float: ties to even.
    let scaled = ((size * len) as f64 / long_side as f64).round_ties_even() as usize;
    let iv = split_with_symmetric_overlaps(lower.max(scaled), overlap, len);
    (0..iv.starts.len())
        .map(|i| {
            let (start, stop) = (iv.starts[i] * scale, iv.ends[i] * scale);
            let mask = trapezoidal_mask(
                stop - start,
                iv.left_ramps[i] * scale,
                iv.right_ramps[i] * scale,
                false,
            );
            AxisTile {
                input: iv.starts[i]..iv.ends[i],
                output: start..stop,
                mask: Some(mask),
            }
        })
        .collect()
}

fn temporal_axis(cfg: Option<&TemporalTilingConfig>, len: usize, scale: usize) -> Vec<AxisTile> {
    let Some(cfg) = cfg else {
        return vec![AxisTile {
            input: 0..len,
            output: 0..(len - 1) * scale + 1,
            mask: None,
        }];
    };
    let iv = split_temporal_latents(
        cfg.tile_size_in_frames / scale,
        cfg.tile_overlap_in_frames / scale,
        len,
    );
    (0..iv.starts.len())
        .map(|i| {
            let (begin, end) = (iv.starts[i], iv.ends[i]);
            let (start, stop) = (begin * scale, 1 + (end - 1) * scale);
            let lr = iv.left_ramps[i];
            let left = if lr == 0 { 0 } else { 1 + (lr - 1) * scale };
            let mask = trapezoidal_mask(stop - start, left, iv.right_ramps[i] * scale, true);
            AxisTile {
                input: begin..end,
                output: start..stop,
                mask: Some(mask),
            }
        })
        .collect()
}

fn mask_tensor(mask: &Option<Vec<f32>>, axis: usize, device: &Device) -> Result<Tensor> {
    let mut shape = vec![1usize; 5];
    match mask {
        None => Tensor::ones(shape, DType::F32, device),
        Some(m) => {
            shape[axis] = m.len();
            Tensor::from_slice(m, shape, device)
        }
    }
}

/// `buf[.., .., t, h, w] += add` (candle has no in-place slice add: `add` is zero-padded to the
/// buffer's shape, which costs one pass over the buffer per tile).
fn add_into(
    buf: &Tensor,
    t: Range<usize>,
    h: Range<usize>,
    w: Range<usize>,
    add: &Tensor,
) -> Result<Tensor> {
    let (_, _, bt, bh, bw) = buf.dims5()?;
    let mut add = add.clone();
    for (dim, r, n) in [(2, t, bt), (3, h, bh), (4, w, bw)] {
        if r.len() != n {
            add = add.pad_with_zeros(dim, r.start, n - r.end)?;
        }
    }
    buf.broadcast_add(&add)
}

/// Tiled decode of `latent (B, C, f, h, w)` with any per-tile decoder (`decode_tile` maps a
/// latent tile to its `(B, out_channels, 8(f'−1) + 1, 32h', 32w')` pixels). Frames are handed to
/// `on_chunk` in order as soon as no later tile can touch them; concatenated along dim 2 they are
/// the whole video.
pub fn tiled_decode_with(
    latent: &Tensor,
    out_channels: usize,
    cfg: &TilingConfig,
    decode_tile: &mut dyn FnMut(&Tensor) -> Result<Tensor>,
    on_chunk: &mut dyn FnMut(Tensor) -> Result<()>,
) -> Result<()> {
    let (b, _, f, h, w) = latent.dims5()?;
    let [st, sh, sw] = VIDEO_SCALE_FACTORS;
    let (dev, dtype) = (latent.device(), latent.dtype());
    let long_side = h.max(w);
    let t_tiles = temporal_axis(cfg.temporal.as_ref(), f, st);
    let h_tiles = spatial_axis(cfg.spatial.as_ref(), h, long_side, sh);
    let w_tiles = spatial_axis(cfg.spatial.as_ref(), w, long_side, sw);
    let (full_h, full_w) = (h * sh, w * sw);

    // One tile on every axis: all masks and weights are 1, and the blend below would return the
    // decoded pixels bit for bit after five full-size passes over them.
    if let ([tt], [ht], [wt]) = (&t_tiles[..], &h_tiles[..], &w_tiles[..]) {
        let ones = |m: &Option<Vec<f32>>| m.as_ref().is_none_or(|m| m.iter().all(|&v| v == 1.0));
        if ones(&tt.mask) && ones(&ht.mask) && ones(&wt.mask) {
            let decoded = decode_tile(latent)?;
            let len = tt.output.len().min(decoded.dim(2)?);
            return on_chunk(decoded.narrow(2, 0, len)?);
        }
    }

    // (accumulated pixels, accumulated weights, output frame range) of the previous temporal group.
    let mut previous: Option<(Tensor, Tensor, Range<usize>)> = None;
    for tt in &t_tiles {
        let frames = tt.output.len();
        let mut buffer = Tensor::zeros((b, out_channels, frames, full_h, full_w), dtype, dev)?;
        let mut weights = Tensor::zeros((1, 1, frames, full_h, full_w), dtype, dev)?;
        let t_mask = mask_tensor(&tt.mask, 2, dev)?;
        for ht in &h_tiles {
            let th_mask = t_mask.broadcast_mul(&mask_tensor(&ht.mask, 3, dev)?)?;
            for wt in &w_tiles {
                let mask = th_mask
                    .broadcast_mul(&mask_tensor(&wt.mask, 4, dev)?)?
                    .to_dtype(dtype)?;
                let tile = latent
                    .narrow(2, tt.input.start, tt.input.len())?
                    .narrow(3, ht.input.start, ht.input.len())?
                    .narrow(4, wt.input.start, wt.input.len())?;
                let decoded = decode_tile(&tile)?;
                let len = frames.min(decoded.dim(2)?);
                let decoded = decoded.narrow(2, 0, len)?;
                let mask = if mask.dim(2)? > 1 {
                    mask.narrow(2, 0, len)?
                } else {
                    mask
                };
                let contribution = decoded.broadcast_mul(&mask)?;
                let full_mask = mask.broadcast_as((1, 1, len, ht.output.len(), wt.output.len()))?;
                buffer = add_into(
                    &buffer,
                    0..len,
                    ht.output.clone(),
                    wt.output.clone(),
                    &contribution,
                )?;
                weights = add_into(
                    &weights,
                    0..len,
                    ht.output.clone(),
                    wt.output.clone(),
                    &full_mask,
                )?;
            }
        }
        if let Some((prev_buf, prev_w, prev_range)) = previous.take() {
            // Frames both groups cover get the sum of both groups' weighted pixels and weights;
            // they stay in the current group, which may still blend them with the next one.
            if prev_range.end > tt.output.start {
                let overlap = prev_range.end - tt.output.start;
                let offset = tt.output.start - prev_range.start;
                let blend = |prev: &Tensor, cur: &Tensor| -> Result<Tensor> {
                    let sum = (prev.narrow(2, offset, overlap)? + cur.narrow(2, 0, overlap)?)?;
                    let rest = cur.dim(2)? - overlap;
                    if rest == 0 {
                        Ok(sum)
                    } else {
                        Tensor::cat(&[&sum, &cur.narrow(2, overlap, rest)?], 2)
                    }
                };
                buffer = blend(&prev_buf, &buffer)?;
                weights = blend(&prev_w, &weights)?;
            }
            let done = (tt.output.start - prev_range.start).min(prev_buf.dim(2)?);
            if done > 0 {
                let chunk = prev_buf.narrow(2, 0, done)?;
                let w = prev_w.narrow(2, 0, done)?.clamp(1e-8, f64::INFINITY)?;
                on_chunk(chunk.broadcast_div(&w)?)?;
            }
        }
        previous = Some((buffer, weights, tt.output.clone()));
    }
    if let Some((buf, w, _)) = previous {
        on_chunk(buf.broadcast_div(&w.clamp(1e-8, f64::INFINITY)?)?)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn symmetric_split_matches_ltx_core() {
        let iv = split_with_symmetric_overlaps(16, 2, 40);
        // amount = (40 + 16 - 4 - 1) // 14 = 3
        assert_eq!(iv.starts, vec![0, 14, 28]);
        assert_eq!(iv.ends, vec![16, 30, 40]);
        assert_eq!(iv.left_ramps, vec![0, 2, 2]);
        assert_eq!(iv.right_ramps, vec![2, 2, 0]);
        assert_eq!(
            split_with_symmetric_overlaps(16, 2, 16),
            Intervals::whole(16)
        );
    }

    #[test]
    fn causal_temporal_split_matches_the_ltx_core_docstring() {
        let iv = split_temporal_latents(24, 8, 56);
        assert_eq!(iv.starts, vec![0, 15, 31]);
        assert_eq!(iv.ends, vec![24, 40, 56]);
        assert_eq!(iv.left_ramps, vec![0, 9, 9]);
        assert_eq!(iv.right_ramps, vec![8, 8, 0]);
    }

    #[test]
    fn trapezoidal_masks_match_torch_linspace() {
        assert_eq!(
            trapezoidal_mask(6, 2, 0, false),
            vec![1. / 3., 2. / 3., 1., 1., 1., 1.]
        );
        assert_eq!(
            trapezoidal_mask(6, 2, 0, true),
            vec![0., 0.5, 1., 1., 1., 1.]
        );
        assert_eq!(
            trapezoidal_mask(5, 0, 3, false),
            vec![1., 1., 0.75, 0.5, 0.25]
        );
    }

    #[test]
    fn temporal_tiles_map_latents_to_causal_frame_ranges() {
        let cfg = TemporalTilingConfig::new(16, 8).unwrap();
        let tiles = temporal_axis(Some(&cfg), 5, 8);
        let ranges: Vec<_> = tiles
            .iter()
            .map(|t| (t.input.clone(), t.output.clone()))
            .collect();
        assert_eq!(
            ranges,
            vec![(0..2, 0..9), (0..3, 0..17), (1..4, 8..25), (2..5, 16..33)]
        );
        // Later tiles fade in from exactly 0 over 1 + (ramp − 1)·8 frames.
        let m = tiles[2].mask.as_ref().unwrap();
        assert_eq!(m[0], 0.0);
        assert_eq!(m.len(), 17);
    }

    #[test]
    fn decode_tiling_parses_every_mode() {
        assert_eq!("none".parse(), Ok(DecodeTiling::None));
        assert_eq!("ltx-core".parse(), Ok(DecodeTiling::default()));
        assert_eq!(
            "exact".parse(),
            Ok(DecodeTiling::Exact { tile_latents: 16 })
        );
        assert_eq!(
            "exact:8".parse(),
            Ok(DecodeTiling::Exact { tile_latents: 8 })
        );
        assert!("exact:0".parse::<DecodeTiling>().is_err());
        assert!("blend".parse::<DecodeTiling>().is_err());
    }

    #[test]
    fn config_validation_follows_ltx_core() {
        assert!(SpatialTilingConfig::new(32, 0).is_err());
        assert!(SpatialTilingConfig::new(96, 96).is_err());
        assert!(SpatialTilingConfig::new(96, 40).is_err());
        assert!(TemporalTilingConfig::new(8, 0).is_err());
        assert!(TemporalTilingConfig::new(24, 12).is_err());
        assert!(TemporalTilingConfig::new(24, 16).is_ok());
    }
}
