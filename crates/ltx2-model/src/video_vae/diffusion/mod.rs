//! The LTX-2.5 one-step diffusion video decoder (ltx-core 1.2.0 `DiffusionVideoDecoder`, the
//! `CausalDiffusionVAE` of `vae/ltx-2.5-video-vae-bf16.safetensors`).
//!
//! Stages 1-4 upsample the normalized latent deterministically with neighbourhood-attention
//! transformer blocks and linear pixel-shuffle upsamplers into a context volume; stage 5 runs
//! diffusion blocks that predict the pixels (patchified, `patch_size`²·3 channels per token) from
//! that context and Gaussian noise at `t = 1` (one step, `model_output_type: "x0"`, in 2.5).
//!
//! The maths follows ltx-core's default decode preset (`DiffVAEMode.CHUNKED_EAGER`, what every
//! ltx-pipelines 1.2.0 pipeline passes): the stage-5 blocks see the stage-4 features through
//! `upsamples[3]` + `context_proj` ("deferred" context), and their attention runs on four
//! W-slabs with a `kernel_w / 2` halo that is edge-replicated at the volume's W borders (see
//! [`attention::NeighborhoodAttention3D::forward_w_chunked`]); the deterministic stages attend
//! over the whole volume. Neighbourhood windows are NATTEN's (shifted inwards at the borders),
//! computed exactly as ltx-core's eager tiled-SDPA fallback does (see [`na`]).
//!
//! Files: [`rope`] (absolute 3-axis RoPE), [`na`] (the windowed attention kernel),
//! [`attention`] (`NeighborhoodAttention3D`), [`blocks`] (SwiGLU, `NABlock`,
//! `DiffusionNABlock`, pixel-shuffle upsampler, shared AdaLN-Zero), [`geometry`] (size floors,
//! NATTEN border padding, crops), [`tiling`] (ltx-core's DiffVAE tile schedule and blend),
//! [`decoder`] (the decoder and its decode loop).

pub mod attention;
pub mod blocks;
pub mod decoder;
pub mod geometry;
pub mod na;
pub mod rope;
pub mod tiling;

use candle_core::Result;
use serde::Deserialize;

pub use decoder::{DiffusionVideoDecoder, NoiseFn};
pub use tiling::{DiffusionTiling, TileAxis};

/// What the stage-5 network predicts (`model_output_type`, a sibling of the `decoder` section).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum ModelOutputType {
    /// Velocity (ltx-core's default when the key is absent): Euler steps down to `t = 0`.
    #[serde(rename = "v")]
    Velocity,
    /// Clean pixels: the last step's prediction is the output.
    #[serde(rename = "x0")]
    X0,
}

/// `(stride (t, h, w), channel reduction)` of one pixel-shuffle upsampler.
pub type Upsample = ([usize; 3], usize);

/// The decoder hyperparameters (`config.vae.decoder`, keys as ltx-core's
/// `_build_diffusion_video_decoder` reads them; absent keys take its class defaults, which are the
/// production `CausalVideoAutoencoderL` layout).
#[derive(Debug, Clone, PartialEq)]
pub struct DiffusionDecoderConfig {
    /// Latent channels (`in_channels`, else the `vae` section's `latent_channels`).
    pub in_channels: usize,
    /// Pixel channels (3).
    pub out_channels: usize,
    /// Spatial patch of stage 5 (pixels per token side).
    pub patch_size: usize,
    /// Attention head width of every stage (`head_dim`, alias `na_head_dim`).
    pub head_dim: usize,
    /// Widths of stages 1-4, then the context width (the last entry).
    pub stage_channels: Vec<usize>,
    /// Blocks per deterministic stage, then the number of diffusion blocks (the last entry).
    pub stage_depths: Vec<usize>,
    /// Neighbourhood `(t, h, w)` of each stage (the last entry is unused: stage 5 has its own).
    pub stage_kernels: Vec<[usize; 3]>,
    /// The four upsamplers between the stages.
    pub upsamples: Vec<Upsample>,
    pub stage5_kernel: [usize; 3],
    /// Width of the diffusion blocks (default: the context width).
    pub stage5_channels: Option<usize>,
    /// Timestep embedding width.
    pub t_emb_dim: usize,
    pub default_num_inference_steps: usize,
    pub timestep_scale_multiplier: f64,
    pub model_output_type: ModelOutputType,
}

/// The raw `decoder` section; every key optional as in ltx-core.
#[derive(Debug, Clone, Default, Deserialize)]
struct RawDecoder {
    in_channels: Option<usize>,
    out_channels: Option<usize>,
    patch_size: Option<usize>,
    head_dim: Option<usize>,
    na_head_dim: Option<usize>,
    stage_channels: Option<Vec<usize>>,
    stage_depths: Option<Vec<usize>>,
    stage_kernels: Option<Vec<[usize; 3]>>,
    upsamples: Option<Vec<Upsample>>,
    stage5_kernel: Option<[usize; 3]>,
    stage5_channels: Option<usize>,
    t_emb_dim: Option<usize>,
    default_num_inference_steps: Option<usize>,
    timestep_scale_multiplier: Option<f64>,
}

fn bad(what: String) -> candle_core::Error {
    candle_core::Error::Msg(format!("diffusion video VAE config: {what}"))
}

impl DiffusionDecoderConfig {
    /// Parses the `vae` section of a `CausalDiffusionVAE` file: the nested `decoder` section (or
    /// the flat section itself), `model_output_type` and `latent_channels` beside it.
    pub fn from_vae_section(vae: &serde_json::Value) -> Result<Self> {
        let section = vae.get("decoder").unwrap_or(vae);
        let raw = RawDecoder::deserialize(section).map_err(|e| bad(format!("`decoder`: {e}")))?;
        let model_output_type = match vae.get("model_output_type") {
            None => ModelOutputType::Velocity,
            Some(v) => ModelOutputType::deserialize(v)
                .map_err(|e| bad(format!("`model_output_type`: {e}")))?,
        };
        let latent_channels = vae
            .get("latent_channels")
            .and_then(|v| v.as_u64())
            .map(|v| v as usize);
        let cfg = Self {
            in_channels: raw.in_channels.or(latent_channels).unwrap_or(128),
            out_channels: raw.out_channels.unwrap_or(3),
            patch_size: raw.patch_size.unwrap_or(4),
            head_dim: raw.head_dim.or(raw.na_head_dim).unwrap_or(64),
            stage_channels: raw
                .stage_channels
                .unwrap_or_else(|| vec![1024, 512, 256, 256, 128]),
            stage_depths: raw.stage_depths.unwrap_or_else(|| vec![4, 6, 4, 2, 8]),
            stage_kernels: raw
                .stage_kernels
                .unwrap_or_else(|| vec![[3, 7, 7], [3, 7, 7], [3, 5, 5], [3, 5, 5], [3, 3, 3]]),
            upsamples: raw.upsamples.unwrap_or_else(|| {
                vec![
                    ([1, 2, 2], 2),
                    ([2, 1, 1], 2),
                    ([2, 2, 2], 1),
                    ([2, 2, 2], 2),
                ]
            }),
            stage5_kernel: raw.stage5_kernel.unwrap_or([3, 7, 7]),
            stage5_channels: raw.stage5_channels,
            t_emb_dim: raw.t_emb_dim.unwrap_or(384),
            default_num_inference_steps: raw.default_num_inference_steps.unwrap_or(2),
            timestep_scale_multiplier: raw.timestep_scale_multiplier.unwrap_or(1.0),
            model_output_type,
        };
        cfg.validate()?;
        Ok(cfg)
    }

    /// The checks ltx-core's constructor asserts, as errors.
    pub fn validate(&self) -> Result<()> {
        let n = self.stage_channels.len();
        if n != 5 || self.stage_depths.len() != n || self.stage_kernels.len() != n {
            return Err(bad(format!(
                "stage_channels / stage_depths / stage_kernels need 5 entries each, got {} / {} / {}",
                n,
                self.stage_depths.len(),
                self.stage_kernels.len()
            )));
        }
        if self.upsamples.len() != n - 1 {
            return Err(bad(format!(
                "upsamples needs {} entries, got {}",
                n - 1,
                self.upsamples.len()
            )));
        }
        if self.head_dim == 0 || !self.head_dim.is_multiple_of(8) {
            return Err(bad(format!(
                "head_dim {} must be a positive multiple of 8",
                self.head_dim
            )));
        }
        for &c in self.stage_channels.iter().chain([&self.stage5_channels()]) {
            if c == 0 || !c.is_multiple_of(self.head_dim) {
                return Err(bad(format!(
                    "width {c} is not a multiple of head_dim {}",
                    self.head_dim
                )));
            }
        }
        for (i, &(stride, reduction)) in self.upsamples.iter().enumerate() {
            let c = self.stage_channels[i];
            if stride.contains(&0) || reduction == 0 || !c.is_multiple_of(reduction) {
                return Err(bad(format!(
                    "upsamples[{i}] = ({stride:?}, {reduction}) does not fit width {c}"
                )));
            }
            if stride[0] > 2 {
                return Err(bad(format!(
                    "upsamples[{i}]: a time stride of {} is not supported (1 or 2)",
                    stride[0]
                )));
            }
            if c / reduction != self.stage_channels[i + 1] {
                return Err(bad(format!(
                    "upsamples[{i}] gives {} channels, stage {} has {}",
                    c / reduction,
                    i + 2,
                    self.stage_channels[i + 1]
                )));
            }
        }
        let kernels = self.stage_kernels.iter().chain([&self.stage5_kernel]);
        if kernels.flatten().any(|&k| k == 0) {
            return Err(bad("kernel sizes must be positive".into()));
        }
        if self.default_num_inference_steps == 0 || self.patch_size == 0 {
            return Err(bad(
                "default_num_inference_steps and patch_size must be positive".into(),
            ));
        }
        Ok(())
    }

    /// Width of the diffusion blocks.
    pub fn stage5_channels(&self) -> usize {
        self.stage5_channels
            .unwrap_or(self.stage_channels[self.stage_channels.len() - 1])
    }

    /// Width of the stage-5 context (`upsamples[3]` output).
    pub fn context_channels(&self) -> usize {
        self.stage_channels[self.stage_channels.len() - 1]
    }

    /// Number of diffusion blocks.
    pub fn stage5_depth(&self) -> usize {
        self.stage_depths[self.stage_depths.len() - 1]
    }

    /// `linspace(1, 1/n, n)` (ltx-core `default_inference_timesteps`, float32).
    pub fn inference_timesteps(&self) -> Vec<f32> {
        let n = self.default_num_inference_steps;
        let (start, end) = (1.0f32, 1.0f32 / n as f32);
        if n == 1 {
            return vec![start];
        }
        // torch.linspace: the first half counts up from `start`, the second down from `end`.
        let step = (end - start) / (n - 1) as f32;
        (0..n)
            .map(|i| {
                if i < n / 2 {
                    start + step * i as f32
                } else {
                    end - step * (n - 1 - i) as f32
                }
            })
            .collect()
    }

    /// Latent frames replicated after the last one through stages 1-4 so NATTEN's window does not
    /// shift at the last frame (`(stage1 K_t / 2) · 2`).
    pub fn natten_trailing_pad_latent_frames(&self) -> usize {
        (self.stage_kernels[0][0] / 2) * 2
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_the_production_layout() -> Result<()> {
        let cfg = DiffusionDecoderConfig::from_vae_section(&serde_json::json!({
            "decoder": {"head_dim": 64}
        }))?;
        assert_eq!(cfg.stage_channels, vec![1024, 512, 256, 256, 128]);
        assert_eq!(cfg.stage5_depth(), 8);
        assert_eq!(cfg.model_output_type, ModelOutputType::Velocity);
        assert_eq!(cfg.inference_timesteps(), vec![1.0, 0.5]);
        assert_eq!(cfg.natten_trailing_pad_latent_frames(), 2);
        Ok(())
    }

    #[test]
    fn mismatched_upsampler_widths_are_an_error() {
        let json = serde_json::json!({"decoder": {
            "head_dim": 16, "stage_channels": [64, 32, 16, 16, 16],
            "upsamples": [[[1, 2, 2], 1], [[2, 1, 1], 2], [[2, 2, 2], 1], [[2, 2, 2], 1]]
        }});
        let e = DiffusionDecoderConfig::from_vae_section(&json).unwrap_err();
        assert!(e.to_string().contains("upsamples[0]"), "{e}");
    }
}
