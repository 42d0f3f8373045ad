//! Building blocks of the audio VAE: causal Conv2d, PixelNorm, ResNet block, down/up-sampling.

use candle_core::{DType, Module, Result, Tensor, D};
use candle_nn::{Conv2d, Conv2dConfig, VarBuilder};

use super::CausalityAxis;

/// `F.pad`-style zero padding of a `(B, C, H, W)` tensor: `(left, right)` on W, `(top, bottom)` on H.
fn pad_hw(x: &Tensor, (left, right, top, bottom): (usize, usize, usize, usize)) -> Result<Tensor> {
    let x = if left + right > 0 {
        x.pad_with_zeros(3, left, right)?
    } else {
        x.clone()
    };
    if top + bottom > 0 {
        x.pad_with_zeros(2, top, bottom)
    } else {
        Ok(x)
    }
}

fn conv2d(in_c: usize, out_c: usize, k: usize, stride: usize, vb: VarBuilder) -> Result<Conv2d> {
    let cfg = Conv2dConfig {
        padding: 0,
        stride,
        ..Default::default()
    };
    candle_nn::conv2d(in_c, out_c, k, cfg, vb)
}

/// ltx-core `CausalConv2d` (checkpoint key `<name>.conv.{weight,bias}`): the convolution itself has
/// no padding; the input is zero-padded so that the causal axis only looks backwards.
#[derive(Debug, Clone)]
pub struct CausalConv2d {
    conv: Conv2d,
    padding: (usize, usize, usize, usize),
}

impl CausalConv2d {
    pub fn new(
        in_c: usize,
        out_c: usize,
        k: usize,
        axis: CausalityAxis,
        vb: VarBuilder,
    ) -> Result<Self> {
        let pad = k - 1;
        let padding = match axis {
            CausalityAxis::None => (pad / 2, pad - pad / 2, pad / 2, pad - pad / 2),
            CausalityAxis::Width | CausalityAxis::WidthCompatibility => {
                (pad, 0, pad / 2, pad - pad / 2)
            }
            CausalityAxis::Height => (pad / 2, pad - pad / 2, pad, 0),
        };
        Ok(Self {
            conv: conv2d(in_c, out_c, k, 1, vb.pp("conv"))?,
            padding,
        })
    }
}

impl Module for CausalConv2d {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.conv.forward(&pad_hw(x, self.padding)?)
    }
}

/// RMS over channels: `x / sqrt(mean(x², dim=1) + eps)` (eps 1e-6 in the audio VAE). Low-precision
/// inputs are normalised in f32.
pub fn pixel_norm(x: &Tensor, eps: f64) -> Result<Tensor> {
    let dt = x.dtype();
    let xf = if matches!(dt, DType::F32 | DType::F64) {
        x.clone()
    } else {
        x.to_dtype(DType::F32)?
    };
    let rms = (xf.sqr()?.mean_keepdim(1)? + eps)?.sqrt()?;
    xf.broadcast_div(&rms)?.to_dtype(dt)
}

pub const PIXEL_NORM_EPS: f64 = 1e-6;

/// `ResnetBlock` without timestep embedding: `nin_shortcut(x) + conv2(silu(norm(conv1(silu(norm(x))))))`.
#[derive(Debug, Clone)]
pub struct ResnetBlock {
    conv1: CausalConv2d,
    conv2: CausalConv2d,
    nin_shortcut: Option<CausalConv2d>,
}

impl ResnetBlock {
    pub fn new(in_c: usize, out_c: usize, axis: CausalityAxis, vb: VarBuilder) -> Result<Self> {
        let conv1 = CausalConv2d::new(in_c, out_c, 3, axis, vb.pp("conv1"))?;
        let conv2 = CausalConv2d::new(out_c, out_c, 3, axis, vb.pp("conv2"))?;
        let nin_shortcut = if in_c != out_c {
            Some(CausalConv2d::new(
                in_c,
                out_c,
                1,
                axis,
                vb.pp("nin_shortcut"),
            )?)
        } else {
            None
        };
        Ok(Self {
            conv1,
            conv2,
            nin_shortcut,
        })
    }
}

impl Module for ResnetBlock {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let h = self
            .conv1
            .forward(&pixel_norm(x, PIXEL_NORM_EPS)?.silu()?)?;
        let h = self
            .conv2
            .forward(&pixel_norm(&h, PIXEL_NORM_EPS)?.silu()?)?;
        let x = match &self.nin_shortcut {
            Some(s) => s.forward(x)?,
            None => x.clone(),
        };
        x + h
    }
}

/// `Downsample` with conv: asymmetric zero pad, then a plain k3 stride-2 `Conv2d` (key
/// `downsample.conv.*`, no causal wrapper). Maps each padded axis `n -> floor(n / 2)` (+1 in time).
#[derive(Debug, Clone)]
pub struct Downsample {
    conv: Conv2d,
    padding: (usize, usize, usize, usize),
}

impl Downsample {
    pub fn new(channels: usize, axis: CausalityAxis, vb: VarBuilder) -> Result<Self> {
        let padding = match axis {
            CausalityAxis::None => (0, 1, 0, 1),
            CausalityAxis::Width => (2, 0, 0, 1),
            CausalityAxis::Height => (0, 1, 2, 0),
            CausalityAxis::WidthCompatibility => (1, 0, 0, 1),
        };
        Ok(Self {
            conv: conv2d(channels, channels, 3, 2, vb.pp("conv"))?,
            padding,
        })
    }
}

impl Module for Downsample {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.conv.forward(&pad_hw(x, self.padding)?)
    }
}

/// `Upsample` with conv: nearest x2 on both axes, causal conv, then drop the first element of the
/// causal axis (the two first outputs only saw the first input frame), so `T -> 2T - 1`.
#[derive(Debug, Clone)]
pub struct Upsample {
    conv: CausalConv2d,
    axis: CausalityAxis,
}

impl Upsample {
    pub fn new(channels: usize, axis: CausalityAxis, vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            conv: CausalConv2d::new(channels, channels, 3, axis, vb.pp("conv"))?,
            axis,
        })
    }
}

impl Module for Upsample {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let (_, _, h, w) = x.dims4()?;
        let x = self.conv.forward(&x.upsample_nearest2d(2 * h, 2 * w)?)?;
        match self.axis {
            CausalityAxis::Height => x.narrow(2, 1, 2 * h - 1),
            CausalityAxis::Width => x.narrow(D::Minus1, 1, 2 * w - 1),
            CausalityAxis::None | CausalityAxis::WidthCompatibility => Ok(x),
        }
    }
}

/// `mid.block_1` / `mid.block_2` (no attention in LTX-2).
#[derive(Debug, Clone)]
pub struct MidBlock {
    block_1: ResnetBlock,
    block_2: ResnetBlock,
}

impl MidBlock {
    pub fn new(channels: usize, axis: CausalityAxis, vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            block_1: ResnetBlock::new(channels, channels, axis, vb.pp("block_1"))?,
            block_2: ResnetBlock::new(channels, channels, axis, vb.pp("block_2"))?,
        })
    }
}

impl Module for MidBlock {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.block_2.forward(&self.block_1.forward(x)?)
    }
}
