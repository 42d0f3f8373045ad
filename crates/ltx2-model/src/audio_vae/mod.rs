//! Audio VAE (encoder/decoder over log-mel spectrograms) and the mel front-end (`mel`).
//!
//! Mirrors ltx-core 1.0.0 `ltx_core/model/audio_vae/*`: causal 2D convolutions along time, PixelNorm
//! ResNet blocks, stride-2 downsampling / nearest upsampling, and per-channel latent statistics
//! applied on the patchified `(c·mel + f)` feature vector.

mod decoder;
mod encoder;
mod layers;
pub mod mel;

pub use decoder::AudioDecoder;
pub use encoder::AudioEncoder;
pub use mel::{AudioProcessor, MelConfig, SincResampler, MAX_RESAMPLER_KERNEL};

use candle_core::{Result, Tensor};
use candle_nn::VarBuilder;
use serde::Deserialize;

/// ltx-core `encode_audio`: waveform `(B, C, S)` at `sample_rate` (mono is duplicated, any rate is
/// resampled) -> normalized latent `(B, z_channels, T', latent_mel_bins)`.
pub fn encode_audio(
    waveform: &Tensor,
    sample_rate: usize,
    processor: &AudioProcessor,
    encoder: &AudioEncoder,
) -> Result<Tensor> {
    encoder.encode(&processor.waveform_to_mel(waveform, sample_rate)?)
}

/// Mel frames per latent frame: two stride-2 causal downsamplings in time (ltx-core
/// `LATENT_DOWNSAMPLE_FACTOR`, a constant there too, not a config value).
pub const LATENT_DOWNSAMPLE_FACTOR: usize = 4;

/// Which spatial axis of `(B, C, H=time, W=freq)` the convolutions are causal along.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum CausalityAxis {
    #[serde(rename = "none")]
    None,
    #[serde(rename = "width")]
    Width,
    #[serde(rename = "height")]
    Height,
    #[serde(rename = "width-compatibility")]
    WidthCompatibility,
}

/// Normalisation inside the ResNet blocks. Only PixelNorm exists for the causal LTX-2 VAE (ltx-core
/// refuses GroupNorm in a causal block).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NormType {
    Pixel,
    Group,
}

/// Audio VAE hyper-parameters: the `audio_vae.model.params.ddconfig` section of the checkpoint's
/// `config` metadata plus the preprocessing values the encoder/decoder read. Absent keys take the
/// LTX-2 19B values.
#[derive(Debug, Clone)]
pub struct Config {
    pub ch: usize,
    pub ch_mult: Vec<usize>,
    pub num_res_blocks: usize,
    pub attn_resolutions: Vec<usize>,
    pub resolution: usize,
    pub z_channels: usize,
    pub double_z: bool,
    pub in_channels: usize,
    pub out_ch: usize,
    pub mid_block_add_attention: bool,
    pub norm_type: NormType,
    pub causality_axis: CausalityAxis,
    /// Mel bins of the spectrogram (decoder output width).
    pub mel_bins: usize,
    pub sampling_rate: usize,
    pub mel_hop_length: usize,
    pub n_fft: usize,
}

/// The keys of `ddconfig` we read; everything optional so absent keys fall back to 19B values.
#[derive(Debug, Default, Deserialize)]
struct DdConfig {
    ch: Option<usize>,
    ch_mult: Option<Vec<usize>>,
    num_res_blocks: Option<usize>,
    attn_resolutions: Option<Vec<usize>>,
    resolution: Option<usize>,
    z_channels: Option<usize>,
    double_z: Option<bool>,
    in_channels: Option<usize>,
    out_ch: Option<usize>,
    mid_block_add_attention: Option<bool>,
    norm_type: Option<NormType>,
    causality_axis: Option<CausalityAxis>,
    mel_bins: Option<usize>,
}

impl Config {
    /// LTX-2 19B (`ltx-2-19b-*.safetensors` metadata; diffusers' converter config "2.0").
    pub fn ltx2_19b() -> Self {
        Self {
            ch: 128,
            ch_mult: vec![1, 2, 4],
            num_res_blocks: 2,
            attn_resolutions: vec![],
            resolution: 256,
            z_channels: 8,
            double_z: true,
            in_channels: 2,
            out_ch: 2,
            mid_block_add_attention: false,
            norm_type: NormType::Pixel,
            causality_axis: CausalityAxis::Height,
            mel_bins: 64,
            sampling_rate: 16000,
            mel_hop_length: 160,
            n_fft: 1024,
        }
    }

    /// Parses the `audio_vae` section of the checkpoint `config` metadata (the whole metadata
    /// object is also accepted: its `audio_vae` member is used).
    pub fn from_checkpoint_config(config: &serde_json::Value) -> Result<Self> {
        let section = config.get("audio_vae").unwrap_or(config);
        let bad = |what: &str, e: serde_json::Error| {
            candle_core::Error::Msg(format!("audio_vae config: invalid `{what}`: {e}"))
        };
        let params = section.pointer("/model/params");
        let dd: DdConfig = match params.and_then(|p| p.get("ddconfig")) {
            Some(v) => {
                serde_json::from_value(v.clone()).map_err(|e| bad("model.params.ddconfig", e))?
            }
            None => DdConfig::default(),
        };
        let usize_at = |ptr: &str| {
            section
                .pointer(ptr)
                .and_then(|v| v.as_u64())
                .map(|v| v as usize)
        };
        let d = Self::ltx2_19b();
        let cfg = Self {
            ch: dd.ch.unwrap_or(d.ch),
            ch_mult: dd.ch_mult.unwrap_or(d.ch_mult),
            num_res_blocks: dd.num_res_blocks.unwrap_or(d.num_res_blocks),
            attn_resolutions: dd.attn_resolutions.unwrap_or(d.attn_resolutions),
            resolution: dd.resolution.unwrap_or(d.resolution),
            z_channels: dd.z_channels.unwrap_or(d.z_channels),
            double_z: dd.double_z.unwrap_or(d.double_z),
            in_channels: dd.in_channels.unwrap_or(d.in_channels),
            out_ch: dd.out_ch.unwrap_or(d.out_ch),
            mid_block_add_attention: dd
                .mid_block_add_attention
                .unwrap_or(d.mid_block_add_attention),
            norm_type: dd.norm_type.unwrap_or(d.norm_type),
            causality_axis: dd.causality_axis.unwrap_or(d.causality_axis),
            mel_bins: dd
                .mel_bins
                .or_else(|| usize_at("/preprocessing/mel/n_mel_channels"))
                .or_else(|| usize_at("/variables/mel_bins"))
                .unwrap_or(d.mel_bins),
            sampling_rate: usize_at("/model/params/sampling_rate").unwrap_or(d.sampling_rate),
            mel_hop_length: usize_at("/preprocessing/stft/hop_length").unwrap_or(d.mel_hop_length),
            n_fft: usize_at("/preprocessing/stft/filter_length").unwrap_or(d.n_fft),
        };
        cfg.validate()?;
        Ok(cfg)
    }

    /// Reads the config from a checkpoint file's metadata, falling back to [`Config::ltx2_19b`]
    /// when the file has no `config` entry.
    pub fn from_checkpoint(path: &std::path::Path) -> Result<Self> {
        crate::checkpoint::component_config(path, Self::from_checkpoint_config, Self::ltx2_19b)
    }

    /// Rejects configurations this port does not implement (attention blocks, GroupNorm), which
    /// no LTX-2 checkpoint uses, instead of silently computing something else.
    pub fn validate(&self) -> Result<()> {
        let fail = |m: String| Err(candle_core::Error::Msg(format!("audio_vae config: {m}")));
        if self.ch_mult.is_empty() {
            return fail("`ch_mult` is empty".into());
        }
        if self.mid_block_add_attention {
            return fail(
                "`mid_block_add_attention: true` is not supported (LTX-2 uses false)".into(),
            );
        }
        if self.norm_type != NormType::Pixel {
            return fail(format!(
                "`norm_type` {:?} is not supported (LTX-2 uses \"pixel\")",
                self.norm_type
            ));
        }
        let n = self.ch_mult.len();
        let enc_res = (0..n).map(|l| self.resolution >> l);
        let dec_res = (0..n).map(|l| self.resolution >> (n - 1 - l));
        if enc_res
            .chain(dec_res)
            .any(|r| self.attn_resolutions.contains(&r))
        {
            return fail(format!(
                "`attn_resolutions` {:?} enables attention blocks, which are not supported",
                self.attn_resolutions
            ));
        }
        Ok(())
    }

    /// Mel bins of the latent: each downsampling maps `F -> floor(F / 2)` (pad right by 1, k3, s2).
    pub fn latent_mel_bins(&self) -> usize {
        (1..self.ch_mult.len()).fold(self.mel_bins, |f, _| f / 2)
    }

    /// Width of the patchified latent the statistics act on (`z_channels * latent_mel_bins`).
    pub fn latent_features(&self) -> usize {
        self.z_channels * self.latent_mel_bins()
    }

    /// Settings of the mel front-end the encoder expects.
    pub fn mel_config(&self) -> MelConfig {
        MelConfig {
            sample_rate: self.sampling_rate,
            n_fft: self.n_fft,
            hop_length: self.mel_hop_length,
            n_mels: self.mel_bins,
            channels: self.in_channels,
        }
    }
}

/// `audio_vae.per_channel_statistics.{mean-of-means,std-of-means}`: one value per patchified
/// latent feature `c * F + f`.
#[derive(Debug, Clone)]
pub struct PerChannelStatistics {
    mean_of_means: Tensor,
    std_of_means: Tensor,
}

impl PerChannelStatistics {
    pub fn new(features: usize, vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            mean_of_means: vb.get(features, "mean-of-means")?,
            std_of_means: vb.get(features, "std-of-means")?,
        })
    }

    /// The statistics laid out as `(1, C, 1, F)` to broadcast over a `(B, C, T, F)` latent, which is
    /// element for element the patchified `(B, T, C·F)` arithmetic of ltx-core.
    fn as_latent_layout(&self, latent: &Tensor) -> Result<(Tensor, Tensor)> {
        let (_, c, _, f) = latent.dims4()?;
        let n = self.mean_of_means.dim(0)?;
        if c * f != n {
            candle_core::bail!(
                "audio latent has {c} channels x {f} mel bins = {} features, per_channel_statistics has {n}",
                c * f
            );
        }
        let dt = latent.dtype();
        let mean = self.mean_of_means.to_dtype(dt)?.reshape((1, c, 1, f))?;
        let std = self.std_of_means.to_dtype(dt)?.reshape((1, c, 1, f))?;
        Ok((mean, std))
    }

    pub fn normalize(&self, latent: &Tensor) -> Result<Tensor> {
        let (mean, std) = self.as_latent_layout(latent)?;
        latent.broadcast_sub(&mean)?.broadcast_div(&std)
    }

    pub fn un_normalize(&self, latent: &Tensor) -> Result<Tensor> {
        let (mean, std) = self.as_latent_layout(latent)?;
        latent.broadcast_mul(&std)?.broadcast_add(&mean)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absent_keys_fall_back_to_19b() {
        let cfg = Config::from_checkpoint_config(&serde_json::json!({"audio_vae": {}})).unwrap();
        assert_eq!(cfg.ch, 128);
        assert_eq!(cfg.latent_mel_bins(), 16);
        assert_eq!(cfg.latent_features(), 128);
        assert_eq!(cfg.causality_axis, CausalityAxis::Height);
    }

    #[test]
    fn nested_keys_are_read() {
        let v = serde_json::json!({"audio_vae": {
            "model": {"params": {"ddconfig": {"ch": 8, "causality_axis": "height", "norm_type": "pixel",
                "mid_block_add_attention": false, "attn_resolutions": []}, "sampling_rate": 22050}},
            "preprocessing": {"stft": {"hop_length": 256, "filter_length": 2048}, "mel": {"n_mel_channels": 80}}
        }});
        let cfg = Config::from_checkpoint_config(&v).unwrap();
        assert_eq!(
            (
                cfg.ch,
                cfg.sampling_rate,
                cfg.mel_hop_length,
                cfg.n_fft,
                cfg.mel_bins
            ),
            (8, 22050, 256, 2048, 80)
        );
    }

    #[test]
    fn attention_is_rejected() {
        let v = serde_json::json!({"model": {"params": {"ddconfig": {"mid_block_add_attention": true}}}});
        assert!(Config::from_checkpoint_config(&v).is_err());
        let v = serde_json::json!({"model": {"params": {"ddconfig": {"attn_resolutions": [128]}}}});
        assert!(Config::from_checkpoint_config(&v).is_err());
    }
}
