//! `ResnetBlock3D` and `UNetMidBlock3D` (ltx-core `video_vae/resnet.py`), pixel-norm variant with
//! equal input and output channels: `x + conv2(SiLU(norm(conv1(SiLU(norm(x))))))`.

use candle_core::{Result, Tensor};
use candle_nn::VarBuilder;

use super::conv3d::{Conv3d, Conv3dConfig, SpatialPadding, TemporalPadding};
use super::ops::{pixel_norm_silu, PIXEL_NORM_EPS};

#[derive(Debug, Clone)]
pub struct ResnetBlock3D {
    conv1: Conv3d,
    conv2: Conv3d,
}

impl ResnetBlock3D {
    /// `vb` at `...res_blocks.{i}`; keys `conv1.conv.*`, `conv2.conv.*`.
    pub fn new(
        channels: usize,
        t: TemporalPadding,
        s: SpatialPadding,
        vb: VarBuilder,
    ) -> Result<Self> {
        let cfg = Conv3dConfig::k3(channels, channels, t, s);
        Ok(Self {
            conv1: Conv3d::new(cfg, vb.pp("conv1").pp("conv"))?,
            conv2: Conv3d::new(cfg, vb.pp("conv2").pp("conv"))?,
        })
    }

    /// The convolutions in the order they run (for receptive-field bookkeeping).
    pub fn convs(&self) -> [&Conv3d; 2] {
        [&self.conv1, &self.conv2]
    }

    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let h = pixel_norm_silu(x, PIXEL_NORM_EPS)?;
        let h = self.conv1.forward(&h)?;
        let h = pixel_norm_silu(&h, PIXEL_NORM_EPS)?;
        let h = self.conv2.forward(&h)?;
        x + h
    }
}

/// A stack of [`ResnetBlock3D`] (`res_x` in the block lists); keys `res_blocks.{i}.*`.
#[derive(Debug, Clone)]
pub struct UNetMidBlock3D {
    res_blocks: Vec<ResnetBlock3D>,
}

impl UNetMidBlock3D {
    pub fn new(
        channels: usize,
        num_layers: usize,
        t: TemporalPadding,
        s: SpatialPadding,
        vb: VarBuilder,
    ) -> Result<Self> {
        let vb = vb.pp("res_blocks");
        let res_blocks = (0..num_layers)
            .map(|i| ResnetBlock3D::new(channels, t, s, vb.pp(i)))
            .collect::<Result<Vec<_>>>()?;
        Ok(Self { res_blocks })
    }

    pub fn res_blocks(&self) -> &[ResnetBlock3D] {
        &self.res_blocks
    }

    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let mut x = x.clone();
        for block in &self.res_blocks {
            x = block.forward(&x)?;
        }
        Ok(x)
    }
}
