//! Resampling blocks (ltx-core `video_vae/sampling.py`): the encoder's `SpaceToDepthDownsample`
//! (`compress_*_res`) and the decoder's `DepthToSpaceUpsample` (`compress_*`).

use candle_core::{Result, Tensor};
use candle_nn::VarBuilder;

use super::conv3d::{Conv3d, Conv3dConfig, SpatialPadding, TemporalPadding};
use super::ops::{depth_to_space_from, space_to_depth};

/// `conv` to `out/∏stride` channels then space-to-depth, plus a skip that space-to-depths the input
/// and averages groups of `in·∏stride/out` consecutive channels. Key `conv.conv.*`.
#[derive(Debug, Clone)]
pub struct SpaceToDepthDownsample {
    conv: Conv3d,
    stride: [usize; 3],
    group_size: usize,
    out_channels: usize,
}

impl SpaceToDepthDownsample {
    pub fn new(
        in_channels: usize,
        out_channels: usize,
        stride: [usize; 3],
        t: TemporalPadding,
        s: SpatialPadding,
        vb: VarBuilder,
    ) -> Result<Self> {
        let prod: usize = stride.iter().product();
        if !out_channels.is_multiple_of(prod) || !(in_channels * prod).is_multiple_of(out_channels)
        {
            candle_core::bail!(
                "SpaceToDepthDownsample: {in_channels} -> {out_channels} with stride {stride:?}"
            );
        }
        let conv = Conv3d::new(
            Conv3dConfig::k3(in_channels, out_channels / prod, t, s),
            vb.pp("conv").pp("conv"),
        )?;
        Ok(Self {
            conv,
            stride,
            group_size: in_channels * prod / out_channels,
            out_channels,
        })
    }

    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        // A time stride of 2 first duplicates frame 0 so that 1 + 8k frames stay 1 + 4k.
        let x = if self.stride[0] == 2 {
            Tensor::cat(&[&x.narrow(2, 0, 1)?, x], 2)?
        } else {
            x.clone()
        };
        let skip = space_to_depth(&x, self.stride)?;
        let (b, _, d, h, w) = skip.dims5()?;
        let skip = skip
            .reshape(vec![b, self.out_channels, self.group_size, d, h, w])?
            .mean(2)?;
        let main = space_to_depth(&self.conv.forward(&x)?, self.stride)?;
        main + skip
    }
}

/// `conv` to `∏stride·in/reduction` channels then depth-to-space (dropping the first frame when
/// time doubles), plus optionally the depth-to-space of the input tiled (`repeat`, not
/// interleave) `∏stride/reduction` times along channels. Key `conv.conv.*`.
#[derive(Debug, Clone)]
pub struct DepthToSpaceUpsample {
    conv: Conv3d,
    stride: [usize; 3],
    residual: bool,
    num_repeat: usize,
}

impl DepthToSpaceUpsample {
    pub fn new(
        in_channels: usize,
        stride: [usize; 3],
        residual: bool,
        reduction: usize,
        t: TemporalPadding,
        s: SpatialPadding,
        vb: VarBuilder,
    ) -> Result<Self> {
        let prod: usize = stride.iter().product();
        if reduction == 0 || !prod.is_multiple_of(reduction) {
            candle_core::bail!("DepthToSpaceUpsample: {in_channels} channels, stride {stride:?}, reduction {reduction}");
        }
        let out = prod * in_channels / reduction;
        let conv = Conv3d::new(
            Conv3dConfig::k3(in_channels, out, t, s),
            vb.pp("conv").pp("conv"),
        )?;
        Ok(Self {
            conv,
            stride,
            residual,
            num_repeat: prod / reduction,
        })
    }

    /// The convolution, run before the depth-to-space at the input resolution.
    pub fn conv(&self) -> &Conv3d {
        &self.conv
    }

    /// Time/height/width upsampling factors.
    pub fn stride(&self) -> [usize; 3] {
        self.stride
    }

    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        // Doubling time drops the first output frame (1 + 8k frames stay 1 + 8k after x2).
        let drop = usize::from(self.stride[0] == 2);
        let main = depth_to_space_from(&self.conv.forward(x)?, self.stride, drop)?;
        if !self.residual {
            return Ok(main);
        }
        // The skip is repeated (tiled) `num_repeat` times along channels: broadcast it over
        // main's channels viewed as `(num_repeat, C / num_repeat)` rather than copy it.
        let skip = depth_to_space_from(x, self.stride, drop)?;
        let (b, c, t, h, w) = main.dims5()?;
        let main = main.reshape(vec![b, self.num_repeat, c / self.num_repeat, t, h, w])?;
        main.broadcast_add(&skip.unsqueeze(1)?)?
            .reshape((b, c, t, h, w))
    }
}
