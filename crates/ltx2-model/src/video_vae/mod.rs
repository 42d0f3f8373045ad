//! Video VAE encoder/decoder (`vae.*`) and the causal/non-causal Conv3d it is built from
//! (ltx-core 1.0.0 / 1.2.0 `ltx_core/model/video_vae`), and the LTX-2.5 diffusion decoder
//! ([`diffusion`]).
//!
//! The conv block stack comes from the `vae` section of the checkpoint `config` metadata
//! (`encoder_blocks`, `decoder_blocks`, `patch_size`, ...); absent keys fall back to the LTX-2 19B
//! values ([`Config::ltx2_19b`]). [`file`] reads a whole video VAE file and picks the decoder from
//! its `_class_name` (conv `CausalVideoAutoencoder` or the 2.5 `CausalDiffusionVAE`).

pub mod conv3d;
mod conv3d_cpu;
pub mod decoder;
pub mod diffusion;
pub mod encoder;
pub mod exact_tiling;
pub mod file;
pub mod ops;
mod ops_cpu;
pub mod resnet;
pub mod sampling;
pub mod tiling;

use candle_core::{Result, Tensor};
use candle_nn::VarBuilder;
use serde::Deserialize;

pub use conv3d::{Conv3d, Conv3dConfig, SpatialPadding, TemporalPadding};
pub use decoder::VideoDecoder;
pub use diffusion::{DiffusionDecoderConfig, DiffusionTiling, DiffusionVideoDecoder, NoiseFn};
pub use encoder::VideoEncoder;
pub use file::{AnyVideoDecoder, DecoderConfig, VaeConfigs, VideoVaeFile};
pub use tiling::{DecodeTiling, SpatialTilingConfig, TemporalTilingConfig, TilingConfig};

/// Pixels per latent cell: time, height, width (`f = (F − 1)/8 + 1`, `h = H/32`, `w = W/32`).
pub const VIDEO_SCALE_FACTORS: [usize; 3] = [8, 32, 32];

/// Normalisation inside the VAE blocks (ltx-core `NormLayerType`). Only pixel norm is used by LTX-2.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NormLayer {
    PixelNorm,
    GroupNorm,
}

/// Encoder output variance layout (ltx-core `LogVarianceType`); only the means are used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LatentLogVar {
    PerChannel,
    Uniform,
    Constant,
    None,
}

impl LatentLogVar {
    /// Channels of the encoder's `conv_out` for `latent` means.
    pub fn conv_out_channels(self, latent: usize) -> usize {
        match self {
            Self::PerChannel => 2 * latent,
            Self::Uniform | Self::Constant => latent + 1,
            Self::None => latent,
        }
    }
}

/// Kind of one entry of `encoder_blocks` / `decoder_blocks`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BlockKind {
    ResX,
    ResXY,
    AttnResX,
    CompressTime,
    CompressSpace,
    CompressAll,
    CompressAllXY,
    CompressTimeRes,
    CompressSpaceRes,
    CompressAllRes,
}

impl BlockKind {
    /// Time/height/width stride of a compress block (`None` for res blocks).
    pub fn stride(self) -> Option<[usize; 3]> {
        match self {
            Self::CompressTime | Self::CompressTimeRes => Some([2, 1, 1]),
            Self::CompressSpace | Self::CompressSpaceRes => Some([1, 2, 2]),
            Self::CompressAll | Self::CompressAllXY | Self::CompressAllRes => Some([2, 2, 2]),
            Self::ResX | Self::ResXY | Self::AttnResX => None,
        }
    }
}

/// The parameters of a block: a bare layer count or a dict (ltx-core accepts both).
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
enum RawBlockParams {
    Layers(usize),
    Dict {
        num_layers: Option<usize>,
        multiplier: Option<usize>,
        residual: Option<bool>,
        inject_noise: Option<bool>,
    },
}

/// One `[name, params]` entry of `encoder_blocks` / `decoder_blocks`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(from = "(BlockKind, RawBlockParams)")]
pub struct BlockSpec {
    pub kind: BlockKind,
    pub num_layers: Option<usize>,
    pub multiplier: Option<usize>,
    pub residual: bool,
    pub inject_noise: bool,
}

impl From<(BlockKind, RawBlockParams)> for BlockSpec {
    fn from((kind, params): (BlockKind, RawBlockParams)) -> Self {
        match params {
            RawBlockParams::Layers(n) => Self::res(kind, n),
            RawBlockParams::Dict {
                num_layers,
                multiplier,
                residual,
                inject_noise,
            } => Self {
                kind,
                num_layers,
                multiplier,
                residual: residual.unwrap_or(false),
                inject_noise: inject_noise.unwrap_or(false),
            },
        }
    }
}

impl BlockSpec {
    fn res(kind: BlockKind, num_layers: usize) -> Self {
        Self {
            kind,
            num_layers: Some(num_layers),
            multiplier: None,
            residual: false,
            inject_noise: false,
        }
    }
    fn compress(kind: BlockKind, multiplier: usize, residual: bool) -> Self {
        Self {
            kind,
            num_layers: None,
            multiplier: Some(multiplier),
            residual,
            inject_noise: false,
        }
    }
}

/// The `vae` section of the checkpoint `config` metadata (keys as ltx-core's
/// `VideoEncoderConfigurator` / `VideoDecoderConfigurator` read them).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct Config {
    pub dims: usize,
    pub in_channels: usize,
    pub out_channels: usize,
    pub latent_channels: usize,
    pub patch_size: usize,
    pub norm_layer: NormLayer,
    pub latent_log_var: LatentLogVar,
    /// One key for both halves; when absent the encoder pads with zeros and the decoder reflects.
    pub spatial_padding_mode: Option<SpatialPadding>,
    pub causal_decoder: bool,
    pub timestep_conditioning: bool,
    pub decoder_base_channels: usize,
    pub encoder_blocks: Vec<BlockSpec>,
    /// Listed from the latent side's *last* block: `up_blocks.0` is the last entry.
    pub decoder_blocks: Vec<BlockSpec>,
}

impl Default for Config {
    fn default() -> Self {
        Self::ltx2_19b()
    }
}

impl Config {
    /// LTX-2 19B (`ltx-2-19b-*.safetensors`, the "v0.9.5 block stack", §4 of the architecture notes).
    pub fn ltx2_19b() -> Self {
        use BlockKind::*;
        let res = BlockSpec::res;
        Self {
            dims: 3,
            in_channels: 3,
            out_channels: 3,
            latent_channels: 128,
            patch_size: 4,
            norm_layer: NormLayer::PixelNorm,
            latent_log_var: LatentLogVar::Uniform,
            spatial_padding_mode: None,
            causal_decoder: false,
            timestep_conditioning: false,
            decoder_base_channels: 128,
            encoder_blocks: vec![
                res(ResX, 4),
                BlockSpec::compress(CompressSpaceRes, 2, false),
                res(ResX, 6),
                BlockSpec::compress(CompressTimeRes, 2, false),
                res(ResX, 6),
                BlockSpec::compress(CompressAllRes, 2, false),
                res(ResX, 2),
                BlockSpec::compress(CompressAllRes, 2, false),
                res(ResX, 2),
            ],
            decoder_blocks: vec![
                res(ResX, 5),
                BlockSpec::compress(CompressAll, 2, true),
                res(ResX, 5),
                BlockSpec::compress(CompressAll, 2, true),
                res(ResX, 5),
                BlockSpec::compress(CompressAll, 2, true),
                res(ResX, 5),
            ],
        }
    }

    /// Parses the `vae` section of the checkpoint's `config` JSON (the whole JSON, as returned
    /// by [`crate::checkpoint::read_config`]); a missing section gives the 19B config.
    pub fn from_checkpoint_config(config: &serde_json::Value) -> Result<Self> {
        match config.get("vae") {
            None => Ok(Self::ltx2_19b()),
            Some(vae) => Self::deserialize(vae)
                .map_err(|e| candle_core::Error::Msg(format!("checkpoint config `vae`: {e}"))),
        }
    }

    /// Reads the `vae` section from a safetensors file's metadata.
    pub fn from_checkpoint(path: &std::path::Path) -> Result<Self> {
        crate::checkpoint::component_config(path, Self::from_checkpoint_config, Self::ltx2_19b)
    }

    pub fn encoder_spatial_padding(&self) -> SpatialPadding {
        self.spatial_padding_mode.unwrap_or(SpatialPadding::Zeros)
    }

    pub fn decoder_spatial_padding(&self) -> SpatialPadding {
        self.spatial_padding_mode.unwrap_or(SpatialPadding::Reflect)
    }

    /// Rejects the ltx-core options this port does not implement (none are used by LTX-2).
    pub(crate) fn check_supported(&self) -> Result<()> {
        let fail = |what: String| {
            Err(candle_core::Error::Msg(format!(
                "video VAE config: {what} is not supported"
            )))
        };
        if self.dims != 3 {
            return fail(format!("dims = {}", self.dims));
        }
        if self.norm_layer != NormLayer::PixelNorm {
            return fail(format!("norm_layer = {:?}", self.norm_layer));
        }
        if self.timestep_conditioning {
            return fail("timestep_conditioning = true".into());
        }
        Ok(())
    }
}

/// `per_channel_statistics.{mean-of-means, std-of-means}`: the diffusion model works on
/// `(x − mean) / std` per latent channel. Other keys of the checkpoint's statistics are ignored.
#[derive(Debug, Clone)]
pub struct PerChannelStatistics {
    mean_of_means: Tensor,
    std_of_means: Tensor,
}

impl PerChannelStatistics {
    /// `vb` at `vae.per_channel_statistics`.
    pub fn new(latent_channels: usize, vb: VarBuilder) -> Result<Self> {
        let shape = (1, latent_channels, 1, 1, 1);
        Ok(Self {
            mean_of_means: vb.get(latent_channels, "mean-of-means")?.reshape(shape)?,
            std_of_means: vb.get(latent_channels, "std-of-means")?.reshape(shape)?,
        })
    }

    /// `(x − mean-of-means) / std-of-means` for `(B, C, F, H, W)`.
    pub fn normalize(&self, x: &Tensor) -> Result<Tensor> {
        let (m, s) = self.for_input(x)?;
        x.broadcast_sub(&m)?.broadcast_div(&s)
    }

    /// `x · std-of-means + mean-of-means` for `(B, C, F, H, W)`.
    pub fn un_normalize(&self, x: &Tensor) -> Result<Tensor> {
        let (m, s) = self.for_input(x)?;
        x.broadcast_mul(&s)?.broadcast_add(&m)
    }

    fn for_input(&self, x: &Tensor) -> Result<(Tensor, Tensor)> {
        let cast = |t: &Tensor| t.to_device(x.device())?.to_dtype(x.dtype());
        Ok((cast(&self.mean_of_means)?, cast(&self.std_of_means)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_block_lists_in_both_forms() {
        let json = serde_json::json!({"vae": {
            "latent_channels": 8,
            "encoder_blocks": [["res_x", {"num_layers": 1}], ["compress_space_res", {"multiplier": 2}], ["res_x", 3]],
            "decoder_blocks": [["res_x", {"num_layers": 2, "inject_noise": false}],
                               ["compress_all", {"residual": true, "multiplier": 2}]],
            "decoder_base_channels": 4
        }});
        let cfg = Config::from_checkpoint_config(&json).unwrap();
        assert_eq!(cfg.latent_channels, 8);
        assert_eq!(cfg.encoder_blocks[2], BlockSpec::res(BlockKind::ResX, 3));
        assert_eq!(cfg.encoder_blocks[1].multiplier, Some(2));
        assert!(cfg.decoder_blocks[1].residual);
        // Absent keys keep the 19B values.
        assert_eq!(cfg.patch_size, 4);
        assert_eq!(cfg.decoder_spatial_padding(), SpatialPadding::Reflect);
        assert_eq!(cfg.encoder_spatial_padding(), SpatialPadding::Zeros);
    }

    #[test]
    fn unknown_block_names_are_an_error() {
        let json = serde_json::json!({"vae": {"encoder_blocks": [["res_z", 1]]}});
        assert!(Config::from_checkpoint_config(&json).is_err());
    }
}
