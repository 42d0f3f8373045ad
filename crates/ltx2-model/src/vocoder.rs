//! HiFi-GAN vocoder: log-mel to 24 kHz stereo waveform (`vocoder.*`).
//!
//! ltx-core 1.0.0 `ltx_core/model/audio_vae/vocoder.py::Vocoder` with `resblock "1"` (the LTX-2.0
//! vocoder; the BigVGAN "AMP1" + bandwidth-extension variant is LTX-2.3 only and rejected here).

use candle_core::{DType, Module, Result, Tensor};
use candle_nn::{Conv1d, Conv1dConfig, ConvTranspose1d, ConvTranspose1dConfig, VarBuilder};
use serde::Deserialize;

use crate::audio_vae::{AudioDecoder, Config as AudioVaeConfig};

/// Slope of the LeakyReLUs before each upsampling and inside the residual blocks (`LRELU_SLOPE`).
const LRELU_SLOPE: f64 = 0.1;
/// The final activation is `nn.LeakyReLU()`, i.e. PyTorch's default slope, not `LRELU_SLOPE`.
const FINAL_LRELU_SLOPE: f64 = 0.01;
/// ltx-core hard-codes a stereo input: 2 channels x 64 mel bins flattened to 128 conv channels.
const STEREO_MEL_CHANNELS: usize = 128;
/// ltx-core hard-codes a stereo output.
const OUT_CHANNELS: usize = 2;

/// Residual block type (`config.vocoder.resblock`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum ResblockKind {
    #[serde(rename = "1")]
    One,
    #[serde(rename = "2")]
    Two,
    #[serde(rename = "AMP1")]
    Amp1,
}

/// The `vocoder` section of the checkpoint `config` metadata; absent keys take the 19B values
/// (which are also ltx-core's defaults).
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct Config {
    pub resblock: ResblockKind,
    pub stereo: bool,
    pub upsample_rates: Vec<usize>,
    pub upsample_kernel_sizes: Vec<usize>,
    pub resblock_kernel_sizes: Vec<usize>,
    pub resblock_dilation_sizes: Vec<Vec<usize>>,
    pub upsample_initial_channel: usize,
    pub output_sampling_rate: usize,
    pub use_tanh_at_final: bool,
    pub use_bias_at_final: bool,
}

impl Default for Config {
    fn default() -> Self {
        Self::ltx2_19b()
    }
}

impl Config {
    /// LTX-2 19B (`ltx-2-19b-*.safetensors` metadata).
    pub fn ltx2_19b() -> Self {
        Self {
            resblock: ResblockKind::One,
            stereo: true,
            upsample_rates: vec![6, 5, 2, 2, 2],
            upsample_kernel_sizes: vec![16, 15, 8, 4, 4],
            resblock_kernel_sizes: vec![3, 7, 11],
            resblock_dilation_sizes: vec![vec![1, 3, 5]; 3],
            upsample_initial_channel: 1024,
            output_sampling_rate: 24000,
            use_tanh_at_final: true,
            use_bias_at_final: true,
        }
    }

    /// Parses the `vocoder` section of the checkpoint `config` metadata (the whole metadata object is
    /// also accepted: its `vocoder` member is used).
    pub fn from_checkpoint_config(config: &serde_json::Value) -> Result<Self> {
        let section = config.get("vocoder").unwrap_or(config);
        if section.get("bwe").is_some() {
            candle_core::bail!("vocoder config: the LTX-2.3 vocoder with bandwidth extension (`bwe`) is not supported");
        }
        let cfg: Self = serde_json::from_value(section.clone())
            .map_err(|e| candle_core::Error::Msg(format!("vocoder config: {e}")))?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Reads the config from a checkpoint file's metadata, falling back to [`Config::ltx2_19b`].
    pub fn from_checkpoint(path: &std::path::Path) -> Result<Self> {
        crate::checkpoint::component_config(path, Self::from_checkpoint_config, Self::ltx2_19b)
    }

    pub fn validate(&self) -> Result<()> {
        let fail = |m: String| Err(candle_core::Error::Msg(format!("vocoder config: {m}")));
        if self.resblock != ResblockKind::One {
            return fail(format!(
                "`resblock` {:?} is not supported (LTX-2.0 uses \"1\")",
                self.resblock
            ));
        }
        if !self.stereo {
            return fail("`stereo: false` is not supported (ltx-core requires stereo)".into());
        }
        if self.upsample_rates.len() != self.upsample_kernel_sizes.len() {
            return fail("`upsample_rates` and `upsample_kernel_sizes` differ in length".into());
        }
        if self.resblock_kernel_sizes.len() != self.resblock_dilation_sizes.len()
            || self.resblock_kernel_sizes.is_empty()
        {
            return fail(
                "`resblock_kernel_sizes` and `resblock_dilation_sizes` differ in length".into(),
            );
        }
        if self.resblock_dilation_sizes.iter().any(|d| d.len() != 3) {
            return fail("resblock \"1\" needs exactly 3 dilations per kernel".into());
        }
        for (&r, &k) in self.upsample_rates.iter().zip(&self.upsample_kernel_sizes) {
            if k < r || (k - r) % 2 != 0 {
                return fail(format!(
                    "upsample kernel {k} with stride {r} does not give an exact x{r} length"
                ));
            }
        }
        if self.upsample_initial_channel >> self.upsample_rates.len() == 0 {
            return fail(
                "`upsample_initial_channel` too small for the number of upsamplings".into(),
            );
        }
        Ok(())
    }

    /// Waveform samples per mel frame (240 for 19B: 10 ms at 24 kHz).
    pub fn hop_product(&self) -> usize {
        self.upsample_rates.iter().product()
    }
}

/// Conv1d with PyTorch `padding="same"` (asymmetric when the total padding is odd).
#[derive(Debug, Clone)]
struct SameConv1d {
    conv: Conv1d,
    pad: (usize, usize),
}

impl SameConv1d {
    fn new(channels: usize, k: usize, dilation: usize, vb: VarBuilder) -> Result<Self> {
        let total = dilation * (k - 1);
        let (left, right) = (total / 2, total - total / 2);
        let padding = if left == right { left } else { 0 };
        let cfg = Conv1dConfig {
            padding,
            dilation,
            ..Default::default()
        };
        let conv = candle_nn::conv1d(channels, channels, k, cfg, vb)?;
        let pad = if left == right { (0, 0) } else { (left, right) };
        Ok(Self { conv, pad })
    }
}

impl Module for SameConv1d {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.conv
            .forward(&x.pad_with_zeros(2, self.pad.0, self.pad.1)?)
    }
}

fn leaky_relu(x: &Tensor, slope: f64) -> Result<Tensor> {
    x.maximum(&(x * slope)?)
}

/// HiFi-GAN `ResBlock1`: for each dilation `d`, `x += conv2(lrelu(conv1_d(lrelu(x))))`.
#[derive(Debug, Clone)]
struct ResBlock1 {
    convs1: Vec<SameConv1d>,
    convs2: Vec<SameConv1d>,
}

impl ResBlock1 {
    fn new(channels: usize, k: usize, dilations: &[usize], vb: VarBuilder) -> Result<Self> {
        let mut convs1 = Vec::with_capacity(dilations.len());
        let mut convs2 = Vec::with_capacity(dilations.len());
        for (i, &d) in dilations.iter().enumerate() {
            convs1.push(SameConv1d::new(channels, k, d, vb.pp("convs1").pp(i))?);
            convs2.push(SameConv1d::new(channels, k, 1, vb.pp("convs2").pp(i))?);
        }
        Ok(Self { convs1, convs2 })
    }
}

impl Module for ResBlock1 {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let mut x = x.clone();
        for (c1, c2) in self.convs1.iter().zip(&self.convs2) {
            let xt = c1.forward(&leaky_relu(&x, LRELU_SLOPE)?)?;
            let xt = c2.forward(&leaky_relu(&xt, LRELU_SLOPE)?)?;
            x = (xt + x)?;
        }
        Ok(x)
    }
}

#[derive(Debug, Clone)]
pub struct Vocoder {
    conv_pre: Conv1d,
    ups: Vec<ConvTranspose1d>,
    /// `resblocks[stage * num_kernels + j]`.
    resblocks: Vec<ResBlock1>,
    num_kernels: usize,
    conv_post: Conv1d,
    use_tanh_at_final: bool,
    output_sampling_rate: usize,
    dtype: DType,
}

impl Vocoder {
    /// `vb` is rooted at the checkpoint prefix `vocoder`.
    pub fn new(cfg: &Config, vb: VarBuilder) -> Result<Self> {
        cfg.validate()?;
        let c0 = cfg.upsample_initial_channel;
        let conv_pre = candle_nn::conv1d(
            STEREO_MEL_CHANNELS,
            c0,
            7,
            Conv1dConfig {
                padding: 3,
                ..Default::default()
            },
            vb.pp("conv_pre"),
        )?;
        let mut ups = Vec::new();
        let mut resblocks = Vec::new();
        for (i, (&r, &k)) in cfg
            .upsample_rates
            .iter()
            .zip(&cfg.upsample_kernel_sizes)
            .enumerate()
        {
            let (c_in, c_out) = (c0 >> i, c0 >> (i + 1));
            let up_cfg = ConvTranspose1dConfig {
                padding: (k - r) / 2,
                stride: r,
                ..Default::default()
            };
            ups.push(candle_nn::conv_transpose1d(
                c_in,
                c_out,
                k,
                up_cfg,
                vb.pp("ups").pp(i),
            )?);
            for (rk, dil) in cfg
                .resblock_kernel_sizes
                .iter()
                .zip(&cfg.resblock_dilation_sizes)
            {
                let idx = resblocks.len();
                resblocks.push(ResBlock1::new(c_out, *rk, dil, vb.pp("resblocks").pp(idx))?);
            }
        }
        let final_channels = c0 >> cfg.upsample_rates.len();
        let post_cfg = Conv1dConfig {
            padding: 3,
            ..Default::default()
        };
        let conv_post = if cfg.use_bias_at_final {
            candle_nn::conv1d(
                final_channels,
                OUT_CHANNELS,
                7,
                post_cfg,
                vb.pp("conv_post"),
            )?
        } else {
            candle_nn::conv1d_no_bias(
                final_channels,
                OUT_CHANNELS,
                7,
                post_cfg,
                vb.pp("conv_post"),
            )?
        };
        Ok(Self {
            conv_pre,
            ups,
            resblocks,
            num_kernels: cfg.resblock_kernel_sizes.len(),
            conv_post,
            use_tanh_at_final: cfg.use_tanh_at_final,
            output_sampling_rate: cfg.output_sampling_rate,
            dtype: vb.dtype(),
        })
    }

    pub fn output_sampling_rate(&self) -> usize {
        self.output_sampling_rate
    }

    /// Log-mel `(B, 2, T, mel)` -> waveform `(B, 2, T * hop_product)` in [-1, 1].
    pub fn forward(&self, mel: &Tensor) -> Result<Tensor> {
        let (b, s, t, m) = mel.dims4()?;
        if s * m != STEREO_MEL_CHANNELS {
            candle_core::bail!("vocoder expects stereo mel with {STEREO_MEL_CHANNELS} = 2 x mel channels, got {s} x {m}");
        }
        let mel = mel.to_dtype(self.dtype)?;
        // (B, 2, T, M) -> (B, 2, M, T) -> (B, 2*M, T): channel = stereo_idx * M + mel_bin.
        let mut x = self
            .conv_pre
            .forward(&mel.transpose(2, 3)?.reshape((b, s * m, t))?)?;
        for (i, up) in self.ups.iter().enumerate() {
            x = up.forward(&leaky_relu(&x, LRELU_SLOPE)?)?;
            let blocks = &self.resblocks[i * self.num_kernels..(i + 1) * self.num_kernels];
            let mut sum = blocks[0].forward(&x)?;
            for block in &blocks[1..] {
                sum = (sum + block.forward(&x)?)?;
            }
            x = (sum / self.num_kernels as f64)?;
        }
        let x = self
            .conv_post
            .forward(&leaky_relu(&x, FINAL_LRELU_SLOPE)?)?;
        if self.use_tanh_at_final {
            x.tanh()
        } else {
            x.clamp(-1f32, 1f32)
        }
    }
}

impl Module for Vocoder {
    fn forward(&self, mel: &Tensor) -> Result<Tensor> {
        Vocoder::forward(self, mel)
    }
}

/// Latent-to-waveform path (ltx-core `decode_audio`): audio VAE decoder then vocoder.
#[derive(Debug, Clone)]
pub struct AudioDecodePipeline {
    pub decoder: AudioDecoder,
    pub vocoder: Vocoder,
}

impl AudioDecodePipeline {
    /// Loads both from one checkpoint `VarBuilder` rooted at the file (not at a component prefix).
    pub fn new(vae_cfg: &AudioVaeConfig, vocoder_cfg: &Config, vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            decoder: AudioDecoder::new(vae_cfg, vb.pp("audio_vae"))?,
            vocoder: Vocoder::new(vocoder_cfg, vb.pp("vocoder"))?,
        })
    }

    /// Normalized audio latent `(B, 8, T, 16)` -> waveform `(B, 2, (4T - 3) * 240)` at
    /// [`Vocoder::output_sampling_rate`].
    pub fn decode_audio(&self, latent: &Tensor) -> Result<Tensor> {
        self.vocoder.forward(&self.decoder.decode(latent)?)
    }
}

/// ltx-core `decode_audio(latent, audio_decoder, vocoder)` as a free function.
pub fn decode_audio(latent: &Tensor, decoder: &AudioDecoder, vocoder: &Vocoder) -> Result<Tensor> {
    vocoder.forward(&decoder.decode(latent)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_defaults_and_parsing() {
        let cfg = Config::from_checkpoint_config(
            &serde_json::json!({"vocoder": {"upsample_initial_channel": 64,
            "resblock": "1", "activation": "snake"}}),
        )
        .unwrap();
        assert_eq!(cfg.upsample_initial_channel, 64);
        assert_eq!(cfg.hop_product(), 240);
        assert!(Config::from_checkpoint_config(
            &serde_json::json!({"vocoder": {"resblock": "AMP1"}})
        )
        .is_err());
        assert!(
            Config::from_checkpoint_config(&serde_json::json!({"vocoder": {"bwe": {}}})).is_err()
        );
    }
}
