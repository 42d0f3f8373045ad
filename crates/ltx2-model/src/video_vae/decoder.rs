//! `VideoDecoder` (ltx-core `video_vae.py`): normalized latent `(B, C, f, h, w)` to pixels
//! `(B, 3, 8(f−1) + 1, 32h, 32w)`, roughly in [−1, 1] (not clamped). Non-causal in time
//! (`causal_decoder: false`) with reflect spatial padding for LTX-2.

use candle_core::{Result, Tensor};
use candle_nn::VarBuilder;

use super::conv3d::{Conv3d, Conv3dConfig, TemporalPadding};
use super::exact_tiling::{exact_tiled_decode_with, Reach};
use super::ops::{pixel_norm_silu, unpatchify, PIXEL_NORM_EPS};
use super::resnet::UNetMidBlock3D;
use super::sampling::DepthToSpaceUpsample;
use super::tiling::{tiled_decode_with, DecodeTiling, TilingConfig};
use super::{BlockKind, Config, PerChannelStatistics};

/// `conv_in`'s width (ltx-core 1.2.0 `_decoder_bottleneck_channels`): the up-sampling blocks
/// divide the channels by their multipliers on the way to `decoder_base_channels`, so the
/// bottleneck is the base times their product (8 for the 19B / 2.3 / 2.5 stacks; ltx-core
/// 1.0.0 hard-coded that 8).
fn bottleneck_channels(cfg: &Config) -> usize {
    let product: usize = cfg
        .decoder_blocks
        .iter()
        .filter(|b| b.kind.stride().is_some())
        .map(|b| b.multiplier.unwrap_or(1))
        .product();
    cfg.decoder_base_channels * product
}

#[derive(Debug, Clone)]
enum UpBlock {
    Res(UNetMidBlock3D),
    DepthToSpace(DepthToSpaceUpsample),
}

impl UpBlock {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        match self {
            Self::Res(b) => b.forward(x),
            Self::DepthToSpace(b) => b.forward(x),
        }
    }
}

#[derive(Debug, Clone)]
pub struct VideoDecoder {
    conv_in: Conv3d,
    up_blocks: Vec<UpBlock>,
    conv_out: Conv3d,
    per_channel_statistics: PerChannelStatistics,
    patch_size: usize,
    latent_channels: usize,
    out_channels: usize,
}

impl VideoDecoder {
    /// `vb` at `vae` (reads `decoder.*` and `per_channel_statistics.*`).
    pub fn new(cfg: &Config, vb: VarBuilder) -> Result<Self> {
        cfg.check_supported()?;
        let t = if cfg.causal_decoder {
            TemporalPadding::Causal
        } else {
            TemporalPadding::Replicate
        };
        let s = cfg.decoder_spatial_padding();
        let dec = vb.pp("decoder");
        let mut channels = bottleneck_channels(cfg);
        let conv_in = Conv3d::new(
            Conv3dConfig::k3(cfg.latent_channels, channels, t, s),
            dec.pp("conv_in").pp("conv"),
        )?;
        let vb_blocks = dec.pp("up_blocks");
        let mut up_blocks = Vec::with_capacity(cfg.decoder_blocks.len());
        for (i, spec) in cfg.decoder_blocks.iter().rev().enumerate() {
            let vb = vb_blocks.pp(i);
            let block = match spec.kind {
                BlockKind::ResX => {
                    if spec.inject_noise {
                        candle_core::bail!(
                            "video VAE config: decoder res_x with inject_noise is not supported"
                        );
                    }
                    let n = spec.num_layers.ok_or_else(|| {
                        candle_core::Error::Msg(format!(
                            "video VAE config: up_blocks.{i} res_x needs num_layers"
                        ))
                    })?;
                    UpBlock::Res(UNetMidBlock3D::new(channels, n, t, s, vb)?)
                }
                BlockKind::CompressTime | BlockKind::CompressSpace | BlockKind::CompressAll => {
                    let reduction = spec.multiplier.unwrap_or(1);
                    // ltx-core only honours `residual` for compress_all.
                    let residual = spec.kind == BlockKind::CompressAll && spec.residual;
                    let stride = spec.kind.stride().expect("compress block");
                    let block =
                        DepthToSpaceUpsample::new(channels, stride, residual, reduction, t, s, vb)?;
                    channels /= reduction;
                    UpBlock::DepthToSpace(block)
                }
                other => {
                    candle_core::bail!("video VAE config: decoder block {other:?} is not supported")
                }
            };
            up_blocks.push(block);
        }
        let conv_out = Conv3d::new(
            Conv3dConfig::k3(
                channels,
                cfg.out_channels * cfg.patch_size * cfg.patch_size,
                t,
                s,
            ),
            dec.pp("conv_out").pp("conv"),
        )?;
        let per_channel_statistics =
            PerChannelStatistics::new(cfg.latent_channels, vb.pp("per_channel_statistics"))?;
        Ok(Self {
            conv_in,
            up_blocks,
            conv_out,
            per_channel_statistics,
            patch_size: cfg.patch_size,
            latent_channels: cfg.latent_channels,
            out_channels: cfg.out_channels,
        })
    }

    pub fn per_channel_statistics(&self) -> &PerChannelStatistics {
        &self.per_channel_statistics
    }

    pub fn latent_channels(&self) -> usize {
        self.latent_channels
    }

    /// Normalized latent `(B, C, f, h, w)` → pixels `(B, 3, 8(f−1) + 1, 32h, 32w)`.
    pub fn decode(&self, latent: &Tensor) -> Result<Tensor> {
        self.decode_traced(latent, &mut |_, _| Ok(()))
    }

    /// [`Self::decode`] that hands every block output to `hook` (`conv_in_out`,
    /// `up_block{i}_out`), for debugging against reference activations.
    pub fn decode_traced(
        &self,
        latent: &Tensor,
        hook: &mut dyn FnMut(&str, &Tensor) -> Result<()>,
    ) -> Result<Tensor> {
        let c = latent.dim(1)?;
        if c != self.latent_channels {
            candle_core::bail!(
                "video decode: latent has {c} channels, the VAE {}",
                self.latent_channels
            );
        }
        let x = self.per_channel_statistics.un_normalize(latent)?;
        let mut x = self.conv_in.forward(&x)?;
        hook("conv_in_out", &x)?;
        for (i, block) in self.up_blocks.iter().enumerate() {
            x = block.forward(&x)?;
            hook(&format!("up_block{i}_out"), &x)?;
        }
        let x = pixel_norm_silu(&x, PIXEL_NORM_EPS)?;
        let x = self.conv_out.forward(&x)?;
        unpatchify(&x, self.patch_size)
    }

    /// Tiled [`Self::decode`] (ltx-core `tiled_decode`): tiles are decoded one at a time and
    /// blended; the result is close to, not equal to, the untiled decode.
    pub fn decode_tiled(&self, latent: &Tensor, tiling: &TilingConfig) -> Result<Tensor> {
        let mut chunks = Vec::new();
        self.decode_tiled_chunks(latent, tiling, &mut |c| {
            chunks.push(c);
            Ok(())
        })?;
        Tensor::cat(&chunks, 2)
    }

    /// How many latent cells of context, in height and width, one output pixel depends on in
    /// each direction: the decoder's spatial receptive radius. Walks the built stack: every
    /// "same" conv of kernel `k` at `s` positions per latent cell reaches `(k/2)/s` cells
    /// (`s` grows with each depth-to-space), PixelNorm/SiLU/reshapes reach nothing. The exact sum
    /// is rounded up, and the larger of the two axes is returned. Conservative: it assumes every
    /// tap of every conv matters, as it does for generic weights.
    pub fn spatial_receptive_radius(&self) -> usize {
        // Index 1 = height, 2 = width (depth-to-space strides are [t, h, w]).
        let axis = |a: usize| {
            let mut reach = Reach::new();
            reach.conv(self.conv_in.config().kernel);
            for block in &self.up_blocks {
                match block {
                    UpBlock::Res(b) => {
                        for conv in b.res_blocks().iter().flat_map(|r| r.convs()) {
                            reach.conv(conv.config().kernel);
                        }
                    }
                    UpBlock::DepthToSpace(b) => {
                        reach.conv(b.conv().config().kernel);
                        reach.upsample(b.stride()[a]);
                    }
                }
            }
            reach.conv(self.conv_out.config().kernel);
            reach.cells()
        };
        axis(1).max(axis(2))
    }

    /// Exact spatially tiled [`Self::decode`] (see [`super::exact_tiling`]): `tile_latents`²
    /// latent cells per tile, each decoded with a halo of [`Self::spatial_receptive_radius`]
    /// cells, all frames at once. Equal to the untiled decode up to float rounding; peak memory
    /// is that of decoding `(tile_latents + 2·radius)²` cells.
    pub fn decode_tiled_exact(&self, latent: &Tensor, tile_latents: usize) -> Result<Tensor> {
        let halo = self.spatial_receptive_radius();
        Ok(self.decode_tiled_with_halo(latent, tile_latents, halo)?.0)
    }

    /// [`Self::decode_tiled_exact`] with an explicit halo (exact only when `halo` ≥
    /// [`Self::spatial_receptive_radius`]); also returns the number of tiles decoded.
    pub fn decode_tiled_with_halo(
        &self,
        latent: &Tensor,
        tile_latents: usize,
        halo: usize,
    ) -> Result<(Tensor, usize)> {
        exact_tiled_decode_with(latent, tile_latents, halo, &mut |tile| self.decode(tile))
    }

    /// Decodes with the chosen tiling.
    pub fn decode_with(&self, latent: &Tensor, tiling: &DecodeTiling) -> Result<Tensor> {
        match tiling {
            DecodeTiling::None => self.decode(latent),
            DecodeTiling::Blended(cfg) => self.decode_tiled(latent, cfg),
            DecodeTiling::Exact { tile_latents } => self.decode_tiled_exact(latent, *tile_latents),
        }
    }

    /// Tiled decode that hands finished frame chunks `(B, 3, n, H, W)` to `on_chunk` in order, so
    /// the caller never holds the whole video.
    pub fn decode_tiled_chunks(
        &self,
        latent: &Tensor,
        tiling: &TilingConfig,
        on_chunk: &mut dyn FnMut(Tensor) -> Result<()>,
    ) -> Result<()> {
        tiled_decode_with(
            latent,
            self.out_channels,
            tiling,
            &mut |tile| self.decode(tile),
            on_chunk,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device};

    #[test]
    fn receptive_radius_of_the_19b_block_stack() -> Result<()> {
        // The radius depends on the block stack only, so the 19B stack with 1 base channel
        // (zero weights) stands in for the real decoder.
        let cfg = Config {
            decoder_base_channels: 1,
            ..Config::ltx2_19b()
        };
        let decoder = VideoDecoder::new(&cfg, VarBuilder::zeros(DType::F32, &Device::Cpu))?;
        // conv_in 1 + 10 res convs + 1 upsample conv at 1 cell, then (10 + 1)/2, (10 + 1)/4,
        // 10/8 + conv_out 1/8: 21.625 cells, rounded up.
        assert_eq!(decoder.spatial_receptive_radius(), 22);
        Ok(())
    }
}
