//! `AudioDecoder`: normalized latent `(B, z, T, mel / 4)` -> log-mel `(B, out_ch, 4T - 3, mel_bins)`.

use candle_core::{DType, Module, Result, Tensor};
use candle_nn::VarBuilder;

use super::layers::{pixel_norm, CausalConv2d, MidBlock, ResnetBlock, Upsample, PIXEL_NORM_EPS};
use super::{CausalityAxis, Config, PerChannelStatistics, LATENT_DOWNSAMPLE_FACTOR};

/// One resolution level `up.{l}`: `num_res_blocks + 1` ResNet blocks, then `upsample` except at level 0.
#[derive(Debug, Clone)]
struct UpLevel {
    block: Vec<ResnetBlock>,
    upsample: Option<Upsample>,
}

#[derive(Debug, Clone)]
pub struct AudioDecoder {
    conv_in: CausalConv2d,
    mid: MidBlock,
    /// Indexed by level as in the checkpoint; run from the last level down to 0.
    up: Vec<UpLevel>,
    conv_out: CausalConv2d,
    per_channel_statistics: PerChannelStatistics,
    out_ch: usize,
    mel_bins: usize,
    causality_axis: CausalityAxis,
    dtype: DType,
}

impl AudioDecoder {
    /// `vb` is rooted at the checkpoint prefix `audio_vae` (reads `decoder.*` and
    /// `per_channel_statistics.*`).
    pub fn new(cfg: &Config, vb: VarBuilder) -> Result<Self> {
        cfg.validate()?;
        let axis = cfg.causality_axis;
        let dec = vb.pp("decoder");
        let levels = cfg.ch_mult.len();
        let base = cfg.ch * cfg.ch_mult[levels - 1];
        let conv_in = CausalConv2d::new(cfg.z_channels, base, 3, axis, dec.pp("conv_in"))?;
        let mid = MidBlock::new(base, axis, dec.pp("mid"))?;
        let mut up: Vec<Option<UpLevel>> = (0..levels).map(|_| None).collect();
        let mut block_in = base;
        for l in (0..levels).rev() {
            let vb_l = dec.pp("up").pp(l);
            let block_out = cfg.ch * cfg.ch_mult[l];
            let mut block = Vec::with_capacity(cfg.num_res_blocks + 1);
            for i in 0..=cfg.num_res_blocks {
                block.push(ResnetBlock::new(
                    block_in,
                    block_out,
                    axis,
                    vb_l.pp("block").pp(i),
                )?);
                block_in = block_out;
            }
            let upsample = if l != 0 {
                Some(Upsample::new(block_in, axis, vb_l.pp("upsample"))?)
            } else {
                None
            };
            up[l] = Some(UpLevel { block, upsample });
        }
        let up = up.into_iter().flatten().collect();
        let conv_out = CausalConv2d::new(block_in, cfg.out_ch, 3, axis, dec.pp("conv_out"))?;
        let per_channel_statistics =
            PerChannelStatistics::new(cfg.latent_features(), vb.pp("per_channel_statistics"))?;
        Ok(Self {
            conv_in,
            mid,
            up,
            conv_out,
            per_channel_statistics,
            out_ch: cfg.out_ch,
            mel_bins: cfg.mel_bins,
            causality_axis: axis,
            dtype: vb.dtype(),
        })
    }

    /// Mel frames the decoder returns for `latent_frames` latent frames (`4T - 3` when causal).
    pub fn target_frames(&self, latent_frames: usize) -> usize {
        let frames = latent_frames * LATENT_DOWNSAMPLE_FACTOR;
        if self.causality_axis == CausalityAxis::None {
            frames
        } else {
            frames.saturating_sub(LATENT_DOWNSAMPLE_FACTOR - 1).max(1)
        }
    }

    /// Decodes a normalized latent `(B, z, T, F)` into a log-mel spectrogram
    /// `(B, out_ch, target_frames(T), mel_bins)` (cropped, then zero-padded, to that shape).
    pub fn decode(&self, latent: &Tensor) -> Result<Tensor> {
        let (_, _, frames, _) = latent.dims4()?;
        let sample = self
            .per_channel_statistics
            .un_normalize(&latent.to_dtype(self.dtype)?)?;
        let mut h = self.mid.forward(&self.conv_in.forward(&sample)?)?;
        for level in self.up.iter().rev() {
            for block in &level.block {
                h = block.forward(&h)?;
            }
            if let Some(us) = &level.upsample {
                h = us.forward(&h)?;
            }
        }
        let h = self
            .conv_out
            .forward(&pixel_norm(&h, PIXEL_NORM_EPS)?.silu()?)?;
        self.adjust_output_shape(&h, self.target_frames(frames))
    }

    /// ltx-core `_adjust_output_shape`: crop to the target, then zero-pad time/frequency up to it.
    fn adjust_output_shape(&self, h: &Tensor, target_time: usize) -> Result<Tensor> {
        let (_, c, t, f) = h.dims4()?;
        let h = h.narrow(1, 0, c.min(self.out_ch))?;
        let h = h.narrow(2, 0, t.min(target_time))?;
        let h = h.narrow(3, 0, f.min(self.mel_bins))?;
        let h = h.pad_with_zeros(2, 0, target_time - t.min(target_time))?;
        h.pad_with_zeros(3, 0, self.mel_bins - f.min(self.mel_bins))
    }
}

impl Module for AudioDecoder {
    fn forward(&self, latent: &Tensor) -> Result<Tensor> {
        self.decode(latent)
    }
}
