//! Exact spatial tiling of the video decode: each output tile is decoded from its latent tile plus
//! a halo of latent cells on every interior side and only the tile's own pixels are kept.
//!
//! Why it is exact: the decoder is a stack of "same" k×k convolutions, per-position PixelNorm and
//! SiLU, and depth-to-space reshapes; nothing looks at global statistics. The only thing a tile
//! gets wrong is its padding at an interior side (it reflects its own halo instead of seeing the
//! neighbours), and that error travels inwards by `k/2` positions per conv, i.e. by `k/2 / s`
//! latent cells for a conv at `s` positions per cell. A halo at least that deep (rounded up, see
//! [`super::VideoDecoder::spatial_receptive_radius`]) keeps the error out of the pixels we keep.
//! At the image borders the tile is clipped, so the decoder's own padding applies there exactly
//! as in the untiled decode.
//!
//! Time is not tiled: the decoder's temporal upsampling drops the first frame of every ×2 step
//! and its non-causal convs replicate the first/last frame, so an exact temporal split needs
//! frame-accurate bookkeeping of halos through every drop; all frames of a spatial tile are
//! decoded together instead. Peak memory is that of decoding `(tile + 2·halo)²` latent cells
//! over all frames, whatever the image size.

use std::ops::Range;

use candle_core::{Result, Tensor};

use super::VIDEO_SCALE_FACTORS;

/// One tile along one spatial axis, in latent cells.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExactAxisTile {
    /// The cells whose pixels this tile provides.
    pub own: Range<usize>,
    /// `own` widened by the halo and clipped to the latent.
    pub input: Range<usize>,
}

/// Splits `len` cells into `ceil(len / tile)` near-equal tiles (no sliver at the end), each
/// widened by `halo` cells on both sides and clipped to `0..len`.
pub fn exact_axis_tiles(len: usize, tile: usize, halo: usize) -> Vec<ExactAxisTile> {
    let tile = tile.max(1);
    let n = len.div_ceil(tile).max(1);
    (0..n)
        .map(|i| {
            let own = i * len / n..(i + 1) * len / n;
            let input = own.start.saturating_sub(halo)..(own.end + halo).min(len);
            ExactAxisTile { own, input }
        })
        .collect()
}

/// Decodes `latent (B, C, f, h, w)` tile by tile with any decoder (`decode_tile` maps a latent
/// tile to `(B, C_out, F, 32h', 32w')`) and stitches the tiles' own pixels. With `halo` at least
/// the decoder's spatial receptive radius the result equals the untiled decode; with less it is
/// an approximation. Returns the stitched video and the number of tiles decoded.
pub fn exact_tiled_decode_with(
    latent: &Tensor,
    tile_latents: usize,
    halo: usize,
    decode_tile: &mut dyn FnMut(&Tensor) -> Result<Tensor>,
) -> Result<(Tensor, usize)> {
    if tile_latents == 0 {
        candle_core::bail!("exact tiling: the tile size must be at least one latent cell");
    }
    let (_, _, _, h, w) = latent.dims5()?;
    let [_, sh, sw] = VIDEO_SCALE_FACTORS;
    let h_tiles = exact_axis_tiles(h, tile_latents, halo);
    let w_tiles = exact_axis_tiles(w, tile_latents, halo);
    let mut rows = Vec::with_capacity(h_tiles.len());
    for ht in &h_tiles {
        let mut row = Vec::with_capacity(w_tiles.len());
        for wt in &w_tiles {
            let tile = latent.narrow(3, ht.input.start, ht.input.len())?.narrow(
                4,
                wt.input.start,
                wt.input.len(),
            )?;
            let decoded = decode_tile(&tile)?;
            let (dh, dw) = (decoded.dim(3)?, decoded.dim(4)?);
            if dh != ht.input.len() * sh || dw != wt.input.len() * sw {
                candle_core::bail!(
                    "exact tiling: a {}x{} latent tile decoded to {dh}x{dw} pixels",
                    ht.input.len(),
                    wt.input.len()
                );
            }
            let own = decoded
                .narrow(3, (ht.own.start - ht.input.start) * sh, ht.own.len() * sh)?
                .narrow(4, (wt.own.start - wt.input.start) * sw, wt.own.len() * sw)?;
            row.push(own);
        }
        rows.push(Tensor::cat(&row, 4)?);
    }
    Ok((Tensor::cat(&rows, 3)?, h_tiles.len() * w_tiles.len()))
}

/// Adds the spatial reach of a stack of convolutions, tracked exactly as a fraction of a latent
/// cell: `num / den` cells, `den` = current positions per cell along the axis.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Reach {
    num: usize,
    den: usize,
}

impl Reach {
    pub(crate) fn new() -> Self {
        Self { num: 0, den: 1 }
    }

    /// A "same" convolution of odd `kernel` at the current resolution.
    pub(crate) fn conv(&mut self, kernel: usize) {
        self.num += kernel / 2;
    }

    /// The resolution grows by `factor` (depth-to-space); the reach so far keeps its size in cells.
    pub(crate) fn upsample(&mut self, factor: usize) {
        self.num *= factor;
        self.den *= factor;
    }

    /// Whole latent cells, rounded up.
    pub(crate) fn cells(self) -> usize {
        self.num.div_ceil(self.den)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn axis_tiles_cover_the_axis_once_and_clip_the_halo() {
        let tiles = exact_axis_tiles(10, 4, 2);
        let own: Vec<_> = tiles.iter().map(|t| t.own.clone()).collect();
        assert_eq!(own, vec![0..3, 3..6, 6..10]);
        let input: Vec<_> = tiles.iter().map(|t| t.input.clone()).collect();
        assert_eq!(input, vec![0..5, 1..8, 4..10]);
        assert_eq!(
            exact_axis_tiles(3, 8, 5),
            vec![ExactAxisTile {
                own: 0..3,
                input: 0..3
            }]
        );
    }

    #[test]
    fn reach_counts_fine_convs_as_fractions_of_a_cell() {
        let mut r = Reach::new();
        r.conv(3);
        r.upsample(2);
        r.conv(3);
        assert_eq!(r.cells(), 2); // 1 + 1/2, rounded up
        r.conv(3);
        assert_eq!(r.cells(), 2); // exactly 2
        r.upsample(4);
        r.conv(3);
        assert_eq!(r.cells(), 3); // 2 + 1/8
    }

    #[test]
    fn stitching_a_pointwise_decoder_is_exact_without_halo() -> Result<()> {
        // Nearest ×32 upsampling in space: no receptive field, so halo 0 must be exact.
        let up = |t: &Tensor| -> Result<Tensor> {
            let (b, c, f, h, w) = t.dims5()?;
            t.unsqueeze(4)?
                .unsqueeze(6)?
                .broadcast_as(vec![b, c, f, h, 32, w, 32])?
                .reshape((b, c, f, h * 32, w * 32))
        };
        let latent = Tensor::randn(0f32, 1., (1, 2, 2, 5, 3), &Device::Cpu)?;
        let (tiled, n) = exact_tiled_decode_with(&latent, 2, 0, &mut |t| up(t))?;
        assert_eq!(n, 3 * 2);
        let diff = (tiled - up(&latent)?)?
            .abs()?
            .max_all()?
            .to_scalar::<f32>()?;
        assert_eq!(diff, 0.0);
        Ok(())
    }
}
