//! Spatial x2 latent upsampler (`ltx-2-spatial-upscaler-x2-1.0.safetensors`, ltx-core
//! `model/upsampler`). It works on *un-normalized* latents: [`upsample_video`] wraps it with the
//! video VAE's per-channel statistics as the official pipeline does between its two stages.
//!
//! The resampler is picked by key presence: `upsampler.conv.*` is the rational resampler
//! (per-frame Conv2d + pixel shuffle + blur-downsample, the blur being the identity at scale 2),
//! `upsampler.0.*` the plain `Sequential(Conv, PixelShuffle)`.

use std::path::Path;

use candle_core::{DType, Device, Module, Result, Tensor};
use candle_nn::{Conv2d, Conv2dConfig, GroupNorm, VarBuilder};
use serde::Deserialize;

use crate::video_vae::conv3d::{Conv3d, Conv3dConfig, SpatialPadding, TemporalPadding};
use crate::video_vae::ops::depth_to_space;
use crate::video_vae::PerChannelStatistics;

/// PyTorch's `GroupNorm` default eps (not the 1e-6 used elsewhere in LTX-2).
const GROUP_NORM_EPS: f64 = 1e-5;
const GROUP_NORM_GROUPS: usize = 32;

/// The flat `config` metadata of the upsampler file (keys of ltx-core's
/// `LatentUpsamplerConfigurator`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default)]
pub struct Config {
    pub in_channels: usize,
    pub mid_channels: usize,
    pub num_blocks_per_stage: usize,
    pub dims: usize,
    pub spatial_upsample: bool,
    pub temporal_upsample: bool,
    pub spatial_scale: f64,
    pub rational_resampler: bool,
}

impl Default for Config {
    fn default() -> Self {
        Self::ltx2_spatial_x2()
    }
}

impl Config {
    /// `ltx-2-spatial-upscaler-x2-1.0.safetensors` (diffusers converter config "2.0").
    pub fn ltx2_spatial_x2() -> Self {
        Self {
            in_channels: 128,
            mid_channels: 1024,
            num_blocks_per_stage: 4,
            dims: 3,
            spatial_upsample: true,
            temporal_upsample: false,
            spatial_scale: 2.0,
            rational_resampler: true,
        }
    }

    /// Reads the `config` metadata of an upsampler safetensors file (19B values for absent keys).
    pub fn from_file(path: &Path) -> Result<Self> {
        match crate::checkpoint::read_config(path)? {
            None => Ok(Self::ltx2_spatial_x2()),
            Some(v) => Self::deserialize(&v).map_err(|e| {
                candle_core::Error::Msg(format!(
                    "{}: upsampler `config` metadata: {e}",
                    path.display()
                ))
            }),
        }
    }
}

/// `(b·f, C, H, W)` per-frame view of `(b, C, f, H, W)`, frame-major batch `(b f)`.
fn to_frames(x: &Tensor) -> Result<Tensor> {
    let (b, c, f, h, w) = x.dims5()?;
    x.permute((0, 2, 1, 3, 4))?.reshape((b * f, c, h, w))
}

fn from_frames(x: &Tensor, b: usize) -> Result<Tensor> {
    let (bf, c, h, w) = x.dims4()?;
    x.reshape((b, bf / b, c, h, w))?.permute((0, 2, 1, 3, 4))
}

/// `"b (c p1 p2) h w -> b c (h p1) (w p2)"`.
fn pixel_shuffle_2d(x: &Tensor, p: usize) -> Result<Tensor> {
    let (b, cp, h, w) = x.dims4()?;
    let c = cp / (p * p);
    x.reshape((b, c, p, p, h, w))?
        .permute((0, 1, 4, 2, 5, 3))?
        .reshape((b, c, h * p, w * p))
}

fn zero_padded_conv3d(cin: usize, cout: usize, vb: VarBuilder) -> Result<Conv3d> {
    Conv3d::new(
        Conv3dConfig::k3(cin, cout, TemporalPadding::Zeros, SpatialPadding::Zeros),
        vb,
    )
}

fn conv2d_k3(cin: usize, cout: usize, vb: VarBuilder) -> Result<Conv2d> {
    candle_nn::conv2d(
        cin,
        cout,
        3,
        Conv2dConfig {
            padding: 1,
            ..Default::default()
        },
        vb,
    )
}

/// `y = SiLU(norm2(conv2(SiLU(norm1(conv1(x))))) + x)`: the activation comes after the residual add.
#[derive(Debug, Clone)]
struct ResBlock {
    conv1: Conv3d,
    norm1: GroupNorm,
    conv2: Conv3d,
    norm2: GroupNorm,
}

impl ResBlock {
    fn new(channels: usize, vb: VarBuilder) -> Result<Self> {
        let gn = |vb| candle_nn::group_norm(GROUP_NORM_GROUPS, channels, GROUP_NORM_EPS, vb);
        Ok(Self {
            conv1: zero_padded_conv3d(channels, channels, vb.pp("conv1"))?,
            norm1: gn(vb.pp("norm1"))?,
            conv2: zero_padded_conv3d(channels, channels, vb.pp("conv2"))?,
            norm2: gn(vb.pp("norm2"))?,
        })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let h = self.norm1.forward(&self.conv1.forward(x)?)?.silu()?;
        let h = self.norm2.forward(&self.conv2.forward(&h)?)?;
        (h + x)?.silu()
    }
}

/// The `upsampler` module in its variants.
#[derive(Debug, Clone)]
enum Resampler {
    /// `SpatialRationalResampler`: per-frame Conv2d to `num²·mid`, pixel shuffle by `num`, then a
    /// 5×5 binomial blur with stride `den` (skipped for `den = 1`).
    Rational {
        conv: Conv2d,
        num: usize,
        den: usize,
        blur: Option<Tensor>,
    },
    /// `Sequential(Conv2d(mid, 4·mid), PixelShuffleND(2))` per frame.
    Spatial { conv: Conv2d },
    /// `Sequential(Conv3d(mid, k·mid), PixelShuffleND)` then drop the first frame; `stride` is
    /// `[2, 2, 2]` (spatio-temporal) or `[2, 1, 1]` (temporal).
    Temporal { conv: Conv3d, stride: [usize; 3] },
}

fn rational_for_scale(scale: f64) -> Result<(usize, usize)> {
    match scale {
        0.75 => Ok((3, 4)),
        1.5 => Ok((3, 2)),
        2.0 => Ok((2, 1)),
        4.0 => Ok((4, 1)),
        s => candle_core::bail!("upsampler: unsupported spatial_scale {s} (0.75, 1.5, 2.0 or 4.0)"),
    }
}

impl Resampler {
    fn new(cfg: &Config, vb: VarBuilder) -> Result<Self> {
        let mid = cfg.mid_channels;
        let rational = vb.contains_tensor("conv.weight");
        if rational != cfg.rational_resampler && (rational || vb.contains_tensor("0.weight")) {
            tracing::warn!(
                config = cfg.rational_resampler,
                keys = rational,
                "upsampler: `rational_resampler` disagrees with the file's keys; following the keys"
            );
        }
        if rational {
            if !cfg.spatial_upsample || cfg.temporal_upsample {
                candle_core::bail!("upsampler: `upsampler.conv.*` (rational resampler) needs a spatial-only config");
            }
            let (num, den) = rational_for_scale(cfg.spatial_scale)?;
            let conv = conv2d_k3(mid, num * num * mid, vb.pp("conv"))?;
            let blur = if den > 1 {
                let k = vb.get((1, 1, 5, 5), "blur_down.kernel")?;
                Some(k.broadcast_as((mid, 1, 5, 5))?.contiguous()?)
            } else {
                None
            };
            Ok(Self::Rational {
                conv,
                num,
                den,
                blur,
            })
        } else if vb.contains_tensor("0.weight") {
            let vb = vb.pp("0");
            match (cfg.spatial_upsample, cfg.temporal_upsample) {
                (true, true) => Ok(Self::Temporal {
                    conv: zero_padded_conv3d(mid, 8 * mid, vb)?,
                    stride: [2, 2, 2],
                }),
                (true, false) => Ok(Self::Spatial {
                    conv: conv2d_k3(mid, 4 * mid, vb)?,
                }),
                (false, true) => Ok(Self::Temporal {
                    conv: zero_padded_conv3d(mid, 2 * mid, vb)?,
                    stride: [2, 1, 1],
                }),
                (false, false) => candle_core::bail!(
                    "upsampler: config has neither spatial_upsample nor temporal_upsample"
                ),
            }
        } else {
            candle_core::bail!(
                "upsampler: the file has neither `upsampler.conv.weight` (rational resampler) nor \
                 `upsampler.0.weight` (plain conv + pixel shuffle)"
            )
        }
    }

    /// Returns the output and, for the per-frame variants, the conv output before the shuffle.
    fn forward(&self, x: &Tensor) -> Result<(Tensor, Option<Tensor>)> {
        let b = x.dim(0)?;
        match self {
            Self::Rational {
                conv,
                num,
                den,
                blur,
            } => {
                let y = conv.forward(&to_frames(x)?)?;
                let mut z = pixel_shuffle_2d(&y, *num)?;
                if let Some(k) = blur {
                    let c = z.dim(1)?;
                    z = z.conv2d(k, 2, *den, 1, c)?;
                }
                Ok((from_frames(&z, b)?, Some(y)))
            }
            Self::Spatial { conv } => {
                let y = conv.forward(&to_frames(x)?)?;
                Ok((from_frames(&pixel_shuffle_2d(&y, 2)?, b)?, Some(y)))
            }
            Self::Temporal { conv, stride } => {
                let y = depth_to_space(&conv.forward(x)?, *stride)?;
                let f = y.dim(2)?;
                Ok((y.narrow(2, 1, f - 1)?, None))
            }
        }
    }
}

#[derive(Debug, Clone)]
pub struct LatentUpsampler {
    initial_conv: Conv3d,
    initial_norm: GroupNorm,
    res_blocks: Vec<ResBlock>,
    upsampler: Resampler,
    post_upsample_res_blocks: Vec<ResBlock>,
    final_conv: Conv3d,
}

impl LatentUpsampler {
    /// `vb` at the root of the upsampler file (its keys have no prefix).
    pub fn new(cfg: &Config, vb: VarBuilder) -> Result<Self> {
        if cfg.dims != 3 {
            candle_core::bail!(
                "upsampler: dims = {} is not supported (LTX-2 upsamplers use 3)",
                cfg.dims
            );
        }
        let (c, mid) = (cfg.in_channels, cfg.mid_channels);
        let blocks = |vb: VarBuilder| -> Result<Vec<ResBlock>> {
            (0..cfg.num_blocks_per_stage)
                .map(|i| ResBlock::new(mid, vb.pp(i)))
                .collect()
        };
        Ok(Self {
            initial_conv: zero_padded_conv3d(c, mid, vb.pp("initial_conv"))?,
            initial_norm: candle_nn::group_norm(
                GROUP_NORM_GROUPS,
                mid,
                GROUP_NORM_EPS,
                vb.pp("initial_norm"),
            )?,
            res_blocks: blocks(vb.pp("res_blocks"))?,
            upsampler: Resampler::new(cfg, vb.pp("upsampler"))?,
            post_upsample_res_blocks: blocks(vb.pp("post_upsample_res_blocks"))?,
            final_conv: zero_padded_conv3d(mid, c, vb.pp("final_conv"))?,
        })
    }

    /// Loads an upsampler file: its `config` metadata and its weights (memory-mapped).
    pub fn from_file(path: &Path, dtype: DType, device: &Device) -> Result<Self> {
        let cfg = Config::from_file(path)?;
        // SAFETY: the file is memory-mapped read-only and not modified while the model lives.
        let vb = unsafe { VarBuilder::from_mmaped_safetensors(&[path], dtype, device)? };
        Self::new(&cfg, vb)
    }

    /// Un-normalized latent `(B, C, F, H, W)` → `(B, C, F, 2H, 2W)` (for the x2 spatial model).
    pub fn forward(&self, latent: &Tensor) -> Result<Tensor> {
        self.forward_traced(latent, &mut |_, _| Ok(()))
    }

    /// [`Self::forward`] handing intermediates to `hook`: `initial_out`, `res_block{i}_out`,
    /// `res_blocks_out`, `upsampler_conv_out` (per-frame variants), `upsampler_out`,
    /// `post_res_blocks_out`.
    pub fn forward_traced(
        &self,
        latent: &Tensor,
        hook: &mut dyn FnMut(&str, &Tensor) -> Result<()>,
    ) -> Result<Tensor> {
        let x = self.initial_conv.forward(latent)?;
        let mut x = self.initial_norm.forward(&x)?.silu()?;
        hook("initial_out", &x)?;
        for (i, block) in self.res_blocks.iter().enumerate() {
            x = block.forward(&x)?;
            hook(&format!("res_block{i}_out"), &x)?;
        }
        hook("res_blocks_out", &x)?;
        let (mut x, conv_out) = self.upsampler.forward(&x)?;
        if let Some(y) = conv_out {
            hook("upsampler_conv_out", &y)?;
        }
        hook("upsampler_out", &x)?;
        for block in &self.post_upsample_res_blocks {
            x = block.forward(&x)?;
        }
        hook("post_res_blocks_out", &x)?;
        self.final_conv.forward(&x)
    }
}

/// ltx-core `upsample_video`: `normalize(upsampler(un_normalize(latent)))` with the video VAE's
/// per-channel statistics; input and output are normalized latents.
pub fn upsample_video(
    latent: &Tensor,
    upsampler: &LatentUpsampler,
    stats: &PerChannelStatistics,
) -> Result<Tensor> {
    let x = stats.un_normalize(latent)?;
    let x = upsampler.forward(&x)?;
    stats.normalize(&x)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pixel_shuffle_2d_is_c_p1_p2_order() {
        // 4 channels of one pixel: channel p1*2 + p2 lands at (h = p1, w = p2).
        let x = Tensor::arange(0f32, 4., &Device::Cpu)
            .unwrap()
            .reshape((1, 4, 1, 1))
            .unwrap();
        let y = pixel_shuffle_2d(&x, 2)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        assert_eq!(y, vec![0., 1., 2., 3.]);
    }

    #[test]
    fn config_falls_back_to_the_x2_model() {
        let cfg: Config = serde_json::from_value(
            serde_json::json!({"_class_name": "LatentUpsampler", "in_channels": 8}),
        )
        .unwrap();
        assert_eq!(cfg.in_channels, 8);
        assert_eq!(cfg.mid_channels, 1024);
        assert!(cfg.rational_resampler);
        assert_eq!(rational_for_scale(2.0).unwrap(), (2, 1));
        assert!(rational_for_scale(3.0).is_err());
    }
}
