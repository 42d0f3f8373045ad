//! A video VAE file, whole: which decoder it holds and both halves loaded.
//!
//! The class comes from the file's own metadata, never from its name: `config.vae._class_name`
//! `CausalVideoAutoencoder` (or absent, the LTX-2 / 2.3 single-file checkpoints) is the conv VAE,
//! whose `vae` section is flat; `CausalDiffusionVAE` (LTX-2.5 `vae/ltx-2.5-video-vae-bf16`) nests
//! an `encoder` section (the conv encoder, `blocks` / `out_channels` naming) and a `decoder`
//! section (the diffusion decoder) with `model_output_type` beside them. Other classes are an
//! error. Keys are read bare (`encoder.*`, `decoder.*`, `per_channel_statistics.*`, the split
//! files) or under `vae.` (single-file checkpoints), whichever the file has.

use std::path::Path;

use candle_core::{DType, Device, Result, Tensor};
use candle_nn::VarBuilder;
use serde::Deserialize;

use super::diffusion::{
    DiffusionDecoderConfig, DiffusionTiling, DiffusionVideoDecoder, NoiseFn, TileAxis,
};
use super::{
    BlockSpec, Config, DecodeTiling, LatentLogVar, NormLayer, PerChannelStatistics, SpatialPadding,
    VideoDecoder, VideoEncoder,
};

/// `_class_name` of the conv VAE (also what a missing name means, as in ltx-core).
pub const CONV_VAE_CLASS: &str = "CausalVideoAutoencoder";
/// `_class_name` of the LTX-2.5 diffusion VAE.
pub const DIFFUSION_VAE_CLASS: &str = "CausalDiffusionVAE";

/// Which decoder, with its config.
#[derive(Debug, Clone, PartialEq)]
pub enum DecoderConfig {
    Conv(Config),
    Diffusion(DiffusionDecoderConfig),
}

/// The configs of both halves of a video VAE file.
#[derive(Debug, Clone, PartialEq)]
pub struct VaeConfigs {
    /// The encoder (decoder fields unused for a diffusion VAE).
    pub encoder: Config,
    pub decoder: DecoderConfig,
}

/// The nested `encoder` section of a `CausalDiffusionVAE` (ltx-core
/// `_prepare_video_encoder_kwargs`); absent keys fall back to the `vae` section, then ltx-core's
/// defaults.
#[derive(Debug, Default, Deserialize)]
struct NestedEncoder {
    dims: Option<usize>,
    in_channels: Option<usize>,
    /// The latent width.
    out_channels: Option<usize>,
    blocks: Option<Vec<BlockSpec>>,
    encoder_blocks: Option<Vec<BlockSpec>>,
    patch_size: Option<usize>,
    norm_layer: Option<NormLayer>,
    latent_log_var: Option<LatentLogVar>,
    spatial_padding_mode: Option<SpatialPadding>,
}

fn bad(what: String) -> candle_core::Error {
    candle_core::Error::Msg(format!("video VAE config: {what}"))
}

impl VaeConfigs {
    /// From a file's whole `config` JSON; no `vae` section means the LTX-2 19B conv VAE.
    pub fn from_checkpoint_config(config: &serde_json::Value) -> Result<Self> {
        let Some(vae) = config.get("vae") else {
            let cfg = Config::ltx2_19b();
            return Ok(Self {
                encoder: cfg.clone(),
                decoder: DecoderConfig::Conv(cfg),
            });
        };
        let class = match vae.get("_class_name") {
            None => CONV_VAE_CLASS,
            Some(v) => v
                .as_str()
                .ok_or_else(|| bad(format!("`_class_name` {v} is not a string")))?,
        };
        match class {
            CONV_VAE_CLASS => {
                let cfg = Config::from_checkpoint_config(config)?;
                Ok(Self { encoder: cfg.clone(), decoder: DecoderConfig::Conv(cfg) })
            }
            DIFFUSION_VAE_CLASS => Ok(Self {
                encoder: nested_encoder_config(vae)?,
                decoder: DecoderConfig::Diffusion(DiffusionDecoderConfig::from_vae_section(vae)?),
            }),
            other => Err(bad(format!(
                "`_class_name` {other:?} is not a known video VAE ({CONV_VAE_CLASS}, {DIFFUSION_VAE_CLASS})"
            ))),
        }
    }

    /// Reads a file's `config` metadata.
    pub fn from_checkpoint(path: &Path) -> Result<Self> {
        let config = crate::checkpoint::read_config(path)?.unwrap_or(serde_json::Value::Null);
        Self::from_checkpoint_config(&config)
    }
}

fn nested_encoder_config(vae: &serde_json::Value) -> Result<Config> {
    let section = vae.get("encoder").unwrap_or(vae);
    let enc = NestedEncoder::deserialize(section).map_err(|e| bad(format!("`encoder`: {e}")))?;
    let top = |key: &str| vae.get(key).and_then(|v| v.as_u64()).map(|v| v as usize);
    let top_padding = vae
        .get("encoder_spatial_padding_mode")
        .map(|v| {
            SpatialPadding::deserialize(v)
                .map_err(|e| bad(format!("`encoder_spatial_padding_mode`: {e}")))
        })
        .transpose()?;
    Ok(Config {
        dims: enc.dims.or(top("dims")).unwrap_or(3),
        in_channels: enc.in_channels.unwrap_or(3),
        latent_channels: enc.out_channels.or(top("latent_channels")).unwrap_or(128),
        patch_size: enc.patch_size.unwrap_or(4),
        norm_layer: enc.norm_layer.unwrap_or(NormLayer::PixelNorm),
        latent_log_var: enc.latent_log_var.unwrap_or(LatentLogVar::Uniform),
        spatial_padding_mode: Some(
            enc.spatial_padding_mode
                .or(top_padding)
                .unwrap_or(SpatialPadding::Zeros),
        ),
        encoder_blocks: enc.blocks.or(enc.encoder_blocks).unwrap_or_default(),
        ..Config::ltx2_19b()
    })
}

/// The decoder of either class.
#[derive(Debug, Clone)]
pub enum AnyVideoDecoder {
    Conv(VideoDecoder),
    Diffusion(Box<DiffusionVideoDecoder>),
}

impl AnyVideoDecoder {
    /// `vb` where `decoder.*` / `per_channel_statistics.*` live; `stored` is the checkpoint
    /// dtype of the diffusion decoder's gated linears (see [`DiffusionVideoDecoder::new`]).
    pub fn new(cfg: &DecoderConfig, vb: VarBuilder, stored: DType) -> Result<Self> {
        Ok(match cfg {
            DecoderConfig::Conv(c) => Self::Conv(VideoDecoder::new(c, vb)?),
            DecoderConfig::Diffusion(c) => {
                Self::Diffusion(Box::new(DiffusionVideoDecoder::new(c, vb, stored)?))
            }
        })
    }

    pub fn latent_channels(&self) -> usize {
        match self {
            Self::Conv(d) => d.latent_channels(),
            Self::Diffusion(d) => d.latent_channels(),
        }
    }

    pub fn per_channel_statistics(&self) -> &PerChannelStatistics {
        match self {
            Self::Conv(d) => d.per_channel_statistics(),
            Self::Diffusion(d) => d.per_channel_statistics(),
        }
    }

    /// Untiled decode to `(B, 3, F, H, W)` in about [−1, 1]; `noise` is only drawn from by the
    /// diffusion decoder.
    pub fn decode(&self, latent: &Tensor, noise: &mut NoiseFn) -> Result<Tensor> {
        match self {
            Self::Conv(d) => d.decode(latent),
            Self::Diffusion(d) => d.decode(latent, noise),
        }
    }

    /// Decode split as `tiling` says. The diffusion decoder has no exact tiling and tiles with
    /// its own blend (ltx-core's DiffVAE schedule): `Blended` sizes become its tile sizes and
    /// `Exact { tile_latents }` spatial tiles of `32·tile_latents` pixels, each with the
    /// overlaps raised to the decoder's minimum (stage-4/5 attention halos).
    pub fn decode_with(
        &self,
        latent: &Tensor,
        tiling: &DecodeTiling,
        noise: &mut NoiseFn,
    ) -> Result<Tensor> {
        match self {
            Self::Conv(d) => d.decode_with(latent, tiling),
            Self::Diffusion(d) => {
                d.decode_tiled(latent, &diffusion_tiling(d.config(), tiling), noise)
            }
        }
    }
}

/// [`DecodeTiling`] in the diffusion decoder's terms.
pub fn diffusion_tiling(cfg: &DiffusionDecoderConfig, tiling: &DecodeTiling) -> DiffusionTiling {
    let (min_frames, min_pixels) = super::diffusion::geometry::min_pixel_overlaps(cfg);
    let scale = super::diffusion::geometry::stage4_pixel_scale(cfg);
    // Sizes and overlaps on the decoder's grid, the size above the overlap (ltx-core rejects
    // anything else).
    let axis = |size: usize, overlap: usize, min_overlap: usize, unit: usize| {
        let overlap = overlap.max(min_overlap).div_ceil(unit) * unit;
        let size = size.div_ceil(unit) * unit;
        TileAxis::new(size.max(overlap + unit).max(2 * unit), overlap)
    };
    match tiling {
        DecodeTiling::None => DiffusionTiling::UNTILED,
        DecodeTiling::Blended(cfg) => {
            let spatial = cfg
                .spatial
                .map(|s| (s.tile_size_in_pixels, s.tile_overlap_in_pixels));
            let frames = cfg.temporal.map(|t| {
                axis(
                    t.tile_size_in_frames,
                    t.tile_overlap_in_frames,
                    min_frames,
                    scale[0],
                )
            });
            DiffusionTiling {
                frames: frames.unwrap_or(TileAxis::UNTILED),
                height: spatial
                    .map_or(TileAxis::UNTILED, |(s, o)| axis(s, o, min_pixels, scale[1])),
                width: spatial.map_or(TileAxis::UNTILED, |(s, o)| axis(s, o, min_pixels, scale[2])),
            }
        }
        DecodeTiling::Exact { tile_latents } => {
            let px = tile_latents * super::VIDEO_SCALE_FACTORS[1];
            DiffusionTiling {
                frames: TileAxis::UNTILED,
                height: axis(px, 0, min_pixels, scale[1]),
                width: axis(px, 0, min_pixels, scale[2]),
            }
        }
    }
}

/// Both halves of a video VAE file.
#[derive(Debug, Clone)]
pub struct VideoVaeFile {
    pub configs: VaeConfigs,
    pub encoder: VideoEncoder,
    pub decoder: AnyVideoDecoder,
}

impl VideoVaeFile {
    /// Loads a split video VAE file (or the `vae.` part of a single-file checkpoint) in `dtype`.
    pub fn load(path: &Path, dtype: DType, device: &Device) -> Result<Self> {
        let header = crate::checkpoint::Checkpoint::open(path)
            .map_err(|e| candle_core::Error::Msg(e.to_string()))?;
        let configs = VaeConfigs::from_checkpoint(path)?;
        let prefixed = header.tensors().keys().any(|k| k.starts_with("vae."));
        let stored = header
            .tensors()
            .iter()
            .find(|(k, _)| k.contains("decoder.diff_blocks.") && k.ends_with(".attn.proj.weight"))
            .map(|(_, e)| DType::try_from(e.dtype))
            .transpose()?
            .unwrap_or(dtype);
        // SAFETY: the file is memory-mapped read-only and not modified while the model lives.
        let vb = unsafe { VarBuilder::from_mmaped_safetensors(&[path], dtype, device)? };
        let vb = if prefixed { vb.pp("vae") } else { vb };
        Ok(Self {
            encoder: VideoEncoder::new(&configs.encoder, vb.clone())?,
            decoder: AnyVideoDecoder::new(&configs.decoder, vb, stored)?,
            configs,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_class_picks_the_decoder() -> Result<()> {
        let conv = VaeConfigs::from_checkpoint_config(&serde_json::json!({"vae": {
            "_class_name": "CausalVideoAutoencoder", "latent_channels": 8, "decoder_base_channels": 2
        }}))?;
        assert!(matches!(conv.decoder, DecoderConfig::Conv(ref c) if c.decoder_base_channels == 2));
        let diff = VaeConfigs::from_checkpoint_config(&serde_json::json!({"vae": {
            "_class_name": "CausalDiffusionVAE", "latent_channels": 8, "model_output_type": "x0",
            "encoder": {"blocks": [["res_x", {"num_layers": 1}]], "out_channels": 8, "spatial_padding_mode": "zeros"},
            "decoder": {"head_dim": 16, "stage_channels": [64, 32, 16, 16, 16],
                        "upsamples": [[[1, 2, 2], 2], [[2, 1, 1], 2], [[2, 2, 2], 1], [[2, 2, 2], 1]]}
        }}))?;
        assert_eq!(diff.encoder.latent_channels, 8);
        assert_eq!(diff.encoder.encoder_blocks.len(), 1);
        match diff.decoder {
            DecoderConfig::Diffusion(d) => {
                assert_eq!(d.in_channels, 8);
                assert_eq!(
                    d.model_output_type,
                    super::super::diffusion::ModelOutputType::X0
                );
            }
            other => panic!("{other:?}"),
        }
        let unknown = VaeConfigs::from_checkpoint_config(
            &serde_json::json!({"vae": {"_class_name": "Other"}}),
        );
        assert!(unknown.unwrap_err().to_string().contains("Other"));
        Ok(())
    }

    #[test]
    fn decode_tilings_map_onto_the_diffusion_grid() -> Result<()> {
        // The production layout: overlaps of at least 8 frames / 96 pixels on an 2 / 8 grid.
        let cfg = DiffusionDecoderConfig::from_vae_section(&serde_json::json!({"decoder": {}}))?;
        let t = diffusion_tiling(&cfg, &DecodeTiling::default());
        assert_eq!(t.frames, TileAxis::new(64, 24));
        assert_eq!(t.height, TileAxis::new(512, 96));
        assert_eq!(t.width, TileAxis::new(512, 96));
        let exact = diffusion_tiling(&cfg, &DecodeTiling::Exact { tile_latents: 2 });
        assert_eq!(exact.frames, TileAxis::UNTILED);
        // 64 px would not exceed the 96 px overlap: grown to overlap + one 8 px cell.
        assert_eq!(exact.height, TileAxis::new(104, 96));
        assert_eq!(
            diffusion_tiling(&cfg, &DecodeTiling::None),
            DiffusionTiling::UNTILED
        );
        Ok(())
    }
}
