//! `VideoEncoder` (ltx-core `video_vae.py`): pixels `(B, 3, 1 + 8k, H, W)` in [−1, 1] to the
//! normalized latent means `(B, C, 1 + k, H/32, W/32)`. Causal in time, zero spatial padding
//! (unless the config says otherwise).

use candle_core::{Result, Tensor};
use candle_nn::VarBuilder;

use super::conv3d::{Conv3d, Conv3dConfig, TemporalPadding};
use super::ops::{patchify, pixel_norm_silu, PIXEL_NORM_EPS};
use super::resnet::UNetMidBlock3D;
use super::sampling::SpaceToDepthDownsample;
use super::{BlockKind, Config, LatentLogVar, PerChannelStatistics};

#[derive(Debug, Clone)]
enum DownBlock {
    Res(UNetMidBlock3D),
    SpaceToDepth(SpaceToDepthDownsample),
}

impl DownBlock {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        match self {
            Self::Res(b) => b.forward(x),
            Self::SpaceToDepth(b) => b.forward(x),
        }
    }
}

#[derive(Debug, Clone)]
pub struct VideoEncoder {
    conv_in: Conv3d,
    down_blocks: Vec<DownBlock>,
    conv_out: Conv3d,
    per_channel_statistics: PerChannelStatistics,
    patch_size: usize,
    latent_channels: usize,
    /// Frames per latent frame: 2 per time-compressing block (ltx-core 1.2.0
    /// `SpatioTemporalScaleFactors.from_blocks`; 8 for every LTX stack).
    time_factor: usize,
}

impl VideoEncoder {
    /// `vb` at `vae` (reads `encoder.*` and `per_channel_statistics.*`).
    pub fn new(cfg: &Config, vb: VarBuilder) -> Result<Self> {
        cfg.check_supported()?;
        if cfg.latent_log_var == LatentLogVar::None {
            candle_core::bail!("video VAE config: latent_log_var = none is not supported");
        }
        let (t, s) = (TemporalPadding::Causal, cfg.encoder_spatial_padding());
        let enc = vb.pp("encoder");
        let mut channels = cfg.latent_channels;
        let conv_in = Conv3d::new(
            Conv3dConfig::k3(
                cfg.in_channels * cfg.patch_size * cfg.patch_size,
                channels,
                t,
                s,
            ),
            enc.pp("conv_in").pp("conv"),
        )?;
        let mut down_blocks = Vec::with_capacity(cfg.encoder_blocks.len());
        let vb_blocks = enc.pp("down_blocks");
        for (i, spec) in cfg.encoder_blocks.iter().enumerate() {
            let vb = vb_blocks.pp(i);
            let block = match spec.kind {
                BlockKind::ResX => {
                    let n = spec.num_layers.ok_or_else(|| {
                        candle_core::Error::Msg(format!(
                            "video VAE config: encoder_blocks[{i}] res_x needs num_layers"
                        ))
                    })?;
                    DownBlock::Res(UNetMidBlock3D::new(channels, n, t, s, vb)?)
                }
                BlockKind::CompressTimeRes
                | BlockKind::CompressSpaceRes
                | BlockKind::CompressAllRes => {
                    let out = channels * spec.multiplier.unwrap_or(2);
                    let stride = spec.kind.stride().expect("compress block");
                    let block = SpaceToDepthDownsample::new(channels, out, stride, t, s, vb)?;
                    channels = out;
                    DownBlock::SpaceToDepth(block)
                }
                other => {
                    candle_core::bail!("video VAE config: encoder block {other:?} is not supported")
                }
            };
            down_blocks.push(block);
        }
        let conv_out = Conv3d::new(
            Conv3dConfig::k3(
                channels,
                cfg.latent_log_var.conv_out_channels(cfg.latent_channels),
                t,
                s,
            ),
            enc.pp("conv_out").pp("conv"),
        )?;
        let per_channel_statistics =
            PerChannelStatistics::new(cfg.latent_channels, vb.pp("per_channel_statistics"))?;
        Ok(Self {
            conv_in,
            down_blocks,
            conv_out,
            per_channel_statistics,
            patch_size: cfg.patch_size,
            latent_channels: cfg.latent_channels,
            time_factor: cfg
                .encoder_blocks
                .iter()
                .filter(|b| b.kind.stride().is_some_and(|s| s[0] == 2))
                .fold(1, |f, _| f * 2),
        })
    }

    pub fn per_channel_statistics(&self) -> &PerChannelStatistics {
        &self.per_channel_statistics
    }

    /// `(B, 3, F, H, W)` in [−1, 1] → normalized latent `(B, C, (F−1)/8 + 1, H/32, W/32)`. Frames
    /// beyond the last `1 + 8k` are dropped, as ltx-core does (8: the stack's time factor).
    pub fn encode(&self, pixels: &Tensor) -> Result<Tensor> {
        self.encode_traced(pixels, &mut |_, _| Ok(()))
    }

    /// [`Self::encode`] that hands every block output to `hook` (`conv_in_out`,
    /// `down_block{i}_out`), for debugging against reference activations.
    pub fn encode_traced(
        &self,
        pixels: &Tensor,
        hook: &mut dyn FnMut(&str, &Tensor) -> Result<()>,
    ) -> Result<Tensor> {
        let (_, _, frames, _, _) = pixels.dims5()?;
        let extra = (frames.saturating_sub(1)) % self.time_factor;
        let pixels = if extra != 0 {
            tracing::warn!(
                frames,
                "video encode: cropping the last {extra} frames to get 1 + 8k"
            );
            pixels.narrow(2, 0, frames - extra)?
        } else {
            pixels.clone()
        };
        let x = patchify(&pixels, self.patch_size)?;
        let mut x = self.conv_in.forward(&x)?;
        hook("conv_in_out", &x)?;
        for (i, block) in self.down_blocks.iter().enumerate() {
            x = block.forward(&x)?;
            hook(&format!("down_block{i}_out"), &x)?;
        }
        let x = pixel_norm_silu(&x, PIXEL_NORM_EPS)?;
        let x = self.conv_out.forward(&x)?;
        let means = x.narrow(1, 0, self.latent_channels)?;
        self.per_channel_statistics.normalize(&means)
    }
}
