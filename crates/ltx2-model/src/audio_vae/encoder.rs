//! `AudioEncoder`: log-mel `(B, 2, T, mel)` -> normalized latent means `(B, z, T', mel / 4)`.

use candle_core::{DType, Module, Result, Tensor};
use candle_nn::VarBuilder;

use super::layers::{pixel_norm, CausalConv2d, Downsample, MidBlock, ResnetBlock, PIXEL_NORM_EPS};
use super::{Config, PerChannelStatistics};

/// One resolution level `down.{l}`: `block.{i}` ResNet blocks, then `downsample` except at the last level.
#[derive(Debug, Clone)]
struct DownLevel {
    block: Vec<ResnetBlock>,
    downsample: Option<Downsample>,
}

#[derive(Debug, Clone)]
pub struct AudioEncoder {
    conv_in: CausalConv2d,
    down: Vec<DownLevel>,
    mid: MidBlock,
    conv_out: CausalConv2d,
    per_channel_statistics: PerChannelStatistics,
    in_channels: usize,
    dtype: DType,
}

impl AudioEncoder {
    /// `vb` is rooted at the checkpoint prefix `audio_vae` (reads `encoder.*` and
    /// `per_channel_statistics.*`).
    pub fn new(cfg: &Config, vb: VarBuilder) -> Result<Self> {
        cfg.validate()?;
        let axis = cfg.causality_axis;
        let enc = vb.pp("encoder");
        let conv_in = CausalConv2d::new(cfg.in_channels, cfg.ch, 3, axis, enc.pp("conv_in"))?;
        let levels = cfg.ch_mult.len();
        let mut down = Vec::with_capacity(levels);
        let mut block_in = cfg.ch;
        for (l, mult) in cfg.ch_mult.iter().enumerate() {
            let vb_l = enc.pp("down").pp(l);
            let block_out = cfg.ch * mult;
            let mut block = Vec::with_capacity(cfg.num_res_blocks);
            for i in 0..cfg.num_res_blocks {
                block.push(ResnetBlock::new(
                    block_in,
                    block_out,
                    axis,
                    vb_l.pp("block").pp(i),
                )?);
                block_in = block_out;
            }
            let downsample = if l + 1 < levels {
                Some(Downsample::new(block_in, axis, vb_l.pp("downsample"))?)
            } else {
                None
            };
            down.push(DownLevel { block, downsample });
        }
        let mid = MidBlock::new(block_in, axis, enc.pp("mid"))?;
        let z_out = if cfg.double_z {
            2 * cfg.z_channels
        } else {
            cfg.z_channels
        };
        let conv_out = CausalConv2d::new(block_in, z_out, 3, axis, enc.pp("conv_out"))?;
        let per_channel_statistics =
            PerChannelStatistics::new(cfg.latent_features(), vb.pp("per_channel_statistics"))?;
        Ok(Self {
            conv_in,
            down,
            mid,
            conv_out,
            per_channel_statistics,
            in_channels: cfg.in_channels,
            dtype: vb.dtype(),
        })
    }

    /// Raw encoder output (means and log-variances when `double_z`), before normalisation.
    pub fn forward_raw(&self, mel: &Tensor) -> Result<Tensor> {
        let (_, c, _, _) = mel.dims4()?;
        if c != self.in_channels {
            candle_core::bail!(
                "audio encoder expects {} mel channels (stereo), got {c}",
                self.in_channels
            );
        }
        let mut h = self.conv_in.forward(&mel.to_dtype(self.dtype)?)?;
        for level in &self.down {
            for block in &level.block {
                h = block.forward(&h)?;
            }
            if let Some(ds) = &level.downsample {
                h = ds.forward(&h)?;
            }
        }
        let h = self.mid.forward(&h)?;
        self.conv_out
            .forward(&pixel_norm(&h, PIXEL_NORM_EPS)?.silu()?)
    }

    /// Encodes a log-mel spectrogram `(B, in_channels, T, mel_bins)` into the normalized latent
    /// `(B, z_channels, T', latent_mel_bins)` the transformer works on (`T' = floor((T-1)/2)+1` twice).
    pub fn encode(&self, mel: &Tensor) -> Result<Tensor> {
        let h = self.forward_raw(mel)?;
        // torch.chunk(h, 2, dim=1)[0]: the means are the first ceil(C/2) channels.
        let c = h.dim(1)?;
        let means = h.narrow(1, 0, c.div_ceil(2))?;
        self.per_channel_statistics.normalize(&means)
    }
}

impl Module for AudioEncoder {
    fn forward(&self, mel: &Tensor) -> Result<Tensor> {
        self.encode(mel)
    }
}
