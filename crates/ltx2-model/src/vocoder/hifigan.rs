//! The mel-to-waveform generator, ltx-core 1.0.0 `ltx_core/model/audio_vae/vocoder.py::Vocoder`:
//! the LTX-2.0 HiFi-GAN (`resblock` "1": LeakyReLUs, `ResBlock1`) and the LTX-2.3 BigVGAN-v2
//! variant (`resblock` "AMP1": no LeakyReLU before the upsamplings, `AMPBlock1` with anti-aliased
//! snake activations, `Activation1d(SnakeBeta)` before `conv_post`). The LTX-2.3 vocoder runs two
//! of these (`vocoder.vocoder`, `vocoder.bwe_generator`), see `bwe.rs`.

use candle_core::{DType, Module, Result, Tensor};
use candle_nn::{Conv1d, Conv1dConfig, ConvTranspose1d, ConvTranspose1dConfig, VarBuilder};

use super::amp::{Activation1d, AmpBlock1};
use super::config::{Activation, GeneratorConfig, ResblockKind, STEREO_MEL_CHANNELS};
use super::{record, Trace};

/// Slope of the LeakyReLUs before each upsampling and inside the residual blocks (`LRELU_SLOPE`).
const LRELU_SLOPE: f64 = 0.1;
/// The final activation is `nn.LeakyReLU()`, i.e. PyTorch's default slope, not `LRELU_SLOPE`.
const FINAL_LRELU_SLOPE: f64 = 0.01;
/// ltx-core hard-codes a stereo output.
const OUT_CHANNELS: usize = 2;

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
enum ResBlock {
    One(ResBlock1),
    Amp(AmpBlock1),
}

impl Module for ResBlock {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        match self {
            Self::One(b) => b.forward(x),
            Self::Amp(b) => b.forward(x),
        }
    }
}

/// What runs between the last residual stage and `conv_post`.
#[derive(Debug, Clone)]
enum PostActivation {
    LeakyRelu,
    /// ltx-core uses SnakeBeta here whatever `activation` says.
    AntiAliased(Activation1d),
}

/// ltx-core's `Vocoder` class: log-mel `(B, 2, T, mel)` -> waveform `(B, 2, T * hop_product)`.
#[derive(Debug, Clone)]
pub struct Generator {
    conv_pre: Conv1d,
    ups: Vec<ConvTranspose1d>,
    /// `resblocks[stage * num_kernels + j]`.
    resblocks: Vec<ResBlock>,
    num_kernels: usize,
    /// LeakyReLU(0.1) before each upsampling (HiFi-GAN only).
    lrelu_before_ups: bool,
    act_post: PostActivation,
    conv_post: Conv1d,
    use_tanh_at_final: bool,
    apply_final_activation: bool,
    output_sampling_rate: usize,
    dtype: DType,
}

impl Generator {
    /// `vb` is rooted at the generator's prefix (`vocoder` for 2.0; `vocoder.vocoder` or
    /// `vocoder.bwe_generator` for 2.3).
    pub fn new(cfg: &GeneratorConfig, vb: VarBuilder) -> Result<Self> {
        cfg.validate()?;
        let is_amp = cfg.resblock == ResblockKind::Amp1;
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
                let vb = vb.pp("resblocks").pp(resblocks.len());
                resblocks.push(if is_amp {
                    ResBlock::Amp(AmpBlock1::new(c_out, *rk, dil, cfg.activation, vb)?)
                } else {
                    ResBlock::One(ResBlock1::new(c_out, *rk, dil, vb)?)
                });
            }
        }
        let final_channels = c0 >> cfg.upsample_rates.len();
        let act_post = if is_amp {
            PostActivation::AntiAliased(Activation1d::new(
                final_channels,
                Activation::SnakeBeta,
                vb.pp("act_post"),
            )?)
        } else {
            PostActivation::LeakyRelu
        };
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
            lrelu_before_ups: !is_amp,
            act_post,
            conv_post,
            use_tanh_at_final: cfg.use_tanh_at_final,
            apply_final_activation: cfg.apply_final_activation,
            output_sampling_rate: cfg.output_sampling_rate,
            dtype: vb.dtype(),
        })
    }

    pub fn output_sampling_rate(&self) -> usize {
        self.output_sampling_rate
    }

    /// Log-mel `(B, 2, T, M)` with `2 M = 128` -> waveform `(B, 2, T * hop_product)`, in
    /// [-1, 1] unless built without the final activation.
    pub fn forward(&self, mel: &Tensor) -> Result<Tensor> {
        self.forward_traced(mel, None, "")
    }

    /// [`Self::forward`] that also records `{prefix}conv_pre_out` and `{prefix}ups{i}_out` (the
    /// transposed-convolution outputs) into `trace`.
    pub fn forward_traced(
        &self,
        mel: &Tensor,
        mut trace: Option<&mut Trace>,
        prefix: &str,
    ) -> Result<Tensor> {
        let (b, s, t, m) = mel.dims4()?;
        if s * m != STEREO_MEL_CHANNELS {
            candle_core::bail!("vocoder expects stereo mel with {STEREO_MEL_CHANNELS} = 2 x mel channels, got {s} x {m}");
        }
        let mel = mel.to_dtype(self.dtype)?;
        // (B, 2, T, M) -> (B, 2, M, T) -> (B, 2*M, T): channel = stereo_idx * M + mel_bin.
        let mut x = self
            .conv_pre
            .forward(&mel.transpose(2, 3)?.reshape((b, s * m, t))?)?;
        record(&mut trace, format!("{prefix}conv_pre_out"), &x);
        for (i, up) in self.ups.iter().enumerate() {
            if self.lrelu_before_ups {
                x = leaky_relu(&x, LRELU_SLOPE)?;
            }
            x = up.forward(&x)?;
            record(&mut trace, format!("{prefix}ups{i}_out"), &x);
            let blocks = &self.resblocks[i * self.num_kernels..(i + 1) * self.num_kernels];
            let mut sum = blocks[0].forward(&x)?;
            for block in &blocks[1..] {
                sum = (sum + block.forward(&x)?)?;
            }
            x = (sum / self.num_kernels as f64)?;
        }
        let x = match &self.act_post {
            PostActivation::LeakyRelu => leaky_relu(&x, FINAL_LRELU_SLOPE)?,
            PostActivation::AntiAliased(act) => act.forward(&x)?,
        };
        let x = self.conv_post.forward(&x)?;
        match (self.apply_final_activation, self.use_tanh_at_final) {
            (false, _) => Ok(x),
            (true, true) => x.tanh(),
            (true, false) => x.clamp(-1f32, 1f32),
        }
    }
}

impl Module for Generator {
    fn forward(&self, mel: &Tensor) -> Result<Tensor> {
        Generator::forward(self, mel)
    }
}
