//! `VideoDecoder` (ltx-core `video_vae.py`): normalized latent `(B, C, f, h, w)` to pixels
//! `(B, 3, 8(f−1) + 1, 32h, 32w)`, roughly in [−1, 1] (not clamped). Non-causal in time
//! (`causal_decoder: false`) with reflect spatial padding for LTX-2.

use candle_core::{Result, Tensor};
use candle_nn::VarBuilder;

use super::conv3d::{Conv3d, Conv3dConfig, TemporalPadding};
use super::ops::{pixel_norm, unpatchify, PIXEL_NORM_EPS};
use super::resnet::UNetMidBlock3D;
use super::sampling::DepthToSpaceUpsample;
use super::tiling::{tiled_decode_with, TilingConfig};
use super::{BlockKind, Config, PerChannelStatistics};

/// ltx-core hard-codes three ×2 channel reductions: `conv_in` has `8 · decoder_base_channels`.
const FEATURE_CHANNELS_PER_BASE: usize = 8;

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
        let mut channels = cfg.decoder_base_channels * FEATURE_CHANNELS_PER_BASE;
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
        let x = pixel_norm(&x, PIXEL_NORM_EPS)?.silu()?;
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
