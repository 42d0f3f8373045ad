//! BigVGAN-v2 residual block `AMPBlock1` and its anti-aliased periodic activation (ltx-core
//! `vocoder.py::AMPBlock1`, `Activation1d`, `Snake`, `SnakeBeta`).

use candle_core::{Module, Result, Tensor};
use candle_nn::{Conv1d, Conv1dConfig, VarBuilder};

use super::config::Activation;
use super::resample::{DownSample1d, UpSample1d};

/// `Activation1d` runs the activation at twice the rate: ltx-core's defaults, never overridden.
const ACT_RATIO: usize = 2;
/// Length of the kaiser-sinc up- and down-sampling filters (`up_kernel_size` / `down_kernel_size`).
const ACT_KERNEL: usize = 12;
/// `Snake.eps` / `SnakeBeta.eps`.
const SNAKE_EPS: f64 = 1e-9;

/// `Snake` / `SnakeBeta` with log-scale parameters (`alpha_logscale=True`, the only way ltx-core
/// builds them): `x + 1/(exp(beta) + eps) * sin(exp(alpha) x)^2`, with `beta = alpha` for Snake.
#[derive(Debug, Clone)]
pub struct Snake {
    /// `exp(alpha)`, `(1, C, 1)`.
    frequency: Tensor,
    /// `1 / (exp(beta) + eps)`, `(1, C, 1)`.
    inv_magnitude: Tensor,
}

impl Snake {
    /// `vb` at the activation (`...act`): `alpha` (and `beta` for SnakeBeta), each `(channels,)`.
    pub fn new(channels: usize, kind: Activation, vb: VarBuilder) -> Result<Self> {
        let alpha = vb.get(channels, "alpha")?;
        let magnitude = match kind {
            Activation::Snake => alpha.clone(),
            Activation::SnakeBeta => vb.get(channels, "beta")?,
        };
        // Parameters are fixed at inference: exponentiate once, as ltx-core does every call.
        let frequency = alpha.exp()?.reshape((1, channels, 1))?;
        let inv_magnitude = (magnitude.exp()? + SNAKE_EPS)?
            .recip()?
            .reshape((1, channels, 1))?;
        Ok(Self {
            frequency,
            inv_magnitude,
        })
    }
}

impl Module for Snake {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let periodic = x.broadcast_mul(&self.frequency)?.sin()?.sqr()?;
        x + periodic.broadcast_mul(&self.inv_magnitude)?
    }
}

/// `Activation1d`: x2 kaiser-sinc upsampling, the snake, kaiser low-pass + x2 decimation, so the
/// activation's harmonics above the original Nyquist are filtered out.
#[derive(Debug, Clone)]
pub struct Activation1d {
    act: Snake,
    upsample: UpSample1d,
    downsample: DownSample1d,
}

impl Activation1d {
    /// `vb` at the activation module (`...acts1.0`, `...act_post`): `act.*`, `upsample.filter`,
    /// `downsample.lowpass.filter` (the filters are checkpoint buffers).
    pub fn new(channels: usize, kind: Activation, vb: VarBuilder) -> Result<Self> {
        let filter_shape = (1, 1, ACT_KERNEL);
        Ok(Self {
            act: Snake::new(channels, kind, vb.pp("act"))?,
            upsample: UpSample1d::kaiser(ACT_RATIO, vb.get(filter_shape, "upsample.filter")?)?,
            downsample: DownSample1d::new(
                ACT_RATIO,
                vb.get(filter_shape, "downsample.lowpass.filter")?,
            )?,
        })
    }
}

impl Module for Activation1d {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.downsample
            .forward(&self.act.forward(&self.upsample.forward(x)?)?)
    }
}

/// `AMPBlock1`: for each dilation `d`, `x += conv2(act2(conv1_d(act1(x))))`.
#[derive(Debug, Clone)]
pub struct AmpBlock1 {
    convs1: Vec<Conv1d>,
    convs2: Vec<Conv1d>,
    acts1: Vec<Activation1d>,
    acts2: Vec<Activation1d>,
}

impl AmpBlock1 {
    /// `vb` at `resblocks.{i}`. The paddings `(k d - d) / 2` keep the length for the kernel /
    /// dilation pairs `GeneratorConfig::validate` accepts.
    pub fn new(
        channels: usize,
        kernel_size: usize,
        dilations: &[usize],
        activation: Activation,
        vb: VarBuilder,
    ) -> Result<Self> {
        let conv = |d: usize, vb: VarBuilder| {
            let cfg = Conv1dConfig {
                padding: (kernel_size * d - d) / 2,
                dilation: d,
                ..Default::default()
            };
            candle_nn::conv1d(channels, channels, kernel_size, cfg, vb)
        };
        let mut block = Self {
            convs1: Vec::new(),
            convs2: Vec::new(),
            acts1: Vec::new(),
            acts2: Vec::new(),
        };
        for (i, &d) in dilations.iter().enumerate() {
            block.convs1.push(conv(d, vb.pp("convs1").pp(i))?);
            block.convs2.push(conv(1, vb.pp("convs2").pp(i))?);
            let act = |name: &str| Activation1d::new(channels, activation, vb.pp(name).pp(i));
            block.acts1.push(act("acts1")?);
            block.acts2.push(act("acts2")?);
        }
        Ok(block)
    }
}

impl Module for AmpBlock1 {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let mut x = x.clone();
        for (((c1, c2), a1), a2) in self
            .convs1
            .iter()
            .zip(&self.convs2)
            .zip(&self.acts1)
            .zip(&self.acts2)
        {
            let xt = c2.forward(&a2.forward(&c1.forward(&a1.forward(&x)?)?)?)?;
            x = (x + xt)?;
        }
        Ok(x)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device};
    use std::collections::HashMap;

    /// Snake (one parameter) and SnakeBeta (two) read different keys and give the closed forms.
    #[test]
    fn snake_and_snakebeta_formulas() -> Result<()> {
        let dev = Device::Cpu;
        let mut ts = HashMap::new();
        ts.insert("alpha".to_string(), Tensor::new(&[0.0f32, 0.5], &dev)?);
        ts.insert("beta".to_string(), Tensor::new(&[1.0f32, -1.0], &dev)?);
        let vb = VarBuilder::from_tensors(ts, DType::F32, &dev);
        let x = Tensor::new(&[[[0.3f32], [-1.2]]], &dev)?;
        let snake = Snake::new(2, Activation::Snake, vb.clone())?.forward(&x)?;
        let beta = Snake::new(2, Activation::SnakeBeta, vb)?.forward(&x)?;
        let expect = |x: f64, a: f64, b: f64| x + (a.exp() * x).sin().powi(2) / (b.exp() + 1e-9);
        let s = snake.flatten_all()?.to_vec1::<f32>()?;
        let sb = beta.flatten_all()?.to_vec1::<f32>()?;
        for (i, (xv, a, b)) in [(0.3f64, 0.0f64, 1.0f64), (-1.2, 0.5, -1.0)]
            .into_iter()
            .enumerate()
        {
            assert!((s[i] as f64 - expect(xv, a, a)).abs() < 1e-6, "snake {i}");
            assert!(
                (sb[i] as f64 - expect(xv, a, b)).abs() < 1e-6,
                "snakebeta {i}"
            );
        }
        Ok(())
    }
}
