//! 3-D convolution built from 2-D convolutions, one per time tap, because candle has no conv3d.
//!
//! The time axis is folded into the conv2d batch: for tap `i` the frames `i..i + T_out` of the
//! (padded) input form a `(B·T_out, C, H, W)` batch that is convolved with the weight slice
//! `W[:, :, i]`; the taps are summed. Everything that knows this trick is in this file, so a fused
//! CUDA kernel can replace [`Conv3d::forward`] without touching the models.

use candle_core::{DType, Module, Result, Tensor};
use candle_nn::VarBuilder;

/// How the time axis is padded before the convolution (all LTX-2 VAE convs have `kt = 3`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TemporalPadding {
    /// `kt − 1` copies of the first frame in front (ltx-core `CausalConv3d(causal=True)`).
    Causal,
    /// `(kt − 1)/2` copies of the first frame in front and of the last frame behind
    /// (ltx-core `CausalConv3d(causal=False)`).
    Replicate,
    /// `(kt − 1)/2` zero frames on each side (a plain `nn.Conv3d(padding=1)`).
    Zeros,
}

/// How `H` and `W` are padded (by `k/2` on each side).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SpatialPadding {
    Zeros,
    Reflect,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Conv3dConfig {
    pub in_channels: usize,
    pub out_channels: usize,
    /// Cubic kernel size (odd).
    pub kernel: usize,
    pub temporal_padding: TemporalPadding,
    pub spatial_padding: SpatialPadding,
}

impl Conv3dConfig {
    /// A `k = 3` convolution.
    pub fn k3(
        in_channels: usize,
        out_channels: usize,
        t: TemporalPadding,
        s: SpatialPadding,
    ) -> Self {
        Self {
            in_channels,
            out_channels,
            kernel: 3,
            temporal_padding: t,
            spatial_padding: s,
        }
    }
}

/// Conv3d with stride 1, `weight [out, in, k, k, k]` and `bias [out]` at the given `VarBuilder`.
/// Upper bound (elements) on the conv2d input batch unrolled by im2col, see [`Conv3d::forward`].
const IM2COL_BUDGET: usize = 1 << 28;

#[derive(Debug, Clone)]
pub struct Conv3d {
    /// `weight[:, :, i]` for each time tap `i`, each `[out, in, k, k]`.
    taps: Vec<Tensor>,
    bias: Tensor,
    cfg: Conv3dConfig,
}

impl Conv3d {
    pub fn new(cfg: Conv3dConfig, vb: VarBuilder) -> Result<Self> {
        let k = cfg.kernel;
        if k.is_multiple_of(2) {
            candle_core::bail!("Conv3d: kernel size {k} must be odd");
        }
        let weight = vb.get((cfg.out_channels, cfg.in_channels, k, k, k), "weight")?;
        let bias = vb.get(cfg.out_channels, "bias")?;
        let taps = (0..k)
            .map(|i| weight.narrow(2, i, 1)?.squeeze(2)?.contiguous())
            .collect::<Result<Vec<_>>>()?;
        Ok(Self { taps, bias, cfg })
    }

    pub fn config(&self) -> &Conv3dConfig {
        &self.cfg
    }

    /// `(B, C_in, T, H, W) -> (B, C_out, T, H, W)`.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.forward_chunked(x, None)
    }

    /// [`Self::forward`] with at most `frames_per_chunk` output frames per conv2d batch (`None`:
    /// as many as keep an im2col buffer under `IM2COL_BUDGET` elements). Results do not depend
    /// on the chunking. On CUDA with cuDNN, one cuDNN 3-D convolution instead (no chunks).
    pub fn forward_chunked(&self, x: &Tensor, frames_per_chunk: Option<usize>) -> Result<Tensor> {
        #[cfg(feature = "cuda")]
        if let Some(y) = self.forward_cudnn(x)? {
            return Ok(y);
        }
        self.forward_candle(x, frames_per_chunk)
    }

    /// The CUDA dispatch hook: pads as [`Self::forward_candle`] does (zero spatial padding is
    /// left to cuDNN) and runs `cuda_ops::conv3d`; `None` when cuDNN is not available.
    #[cfg(feature = "cuda")]
    fn forward_cudnn(&self, x: &Tensor) -> Result<Option<Tensor>> {
        if !x.device().is_cuda() || x.dim(1)? != self.cfg.in_channels {
            return Ok(None);
        }
        let (k, p) = (self.cfg.kernel, self.cfg.kernel / 2);
        let (x, conv_pad) = match self.cfg.spatial_padding {
            SpatialPadding::Zeros => (x.clone(), p),
            SpatialPadding::Reflect => (reflect_pad(&reflect_pad(x, 3, p)?, 4, p)?, 0),
        };
        let x = pad_time(&x, self.cfg.temporal_padding, k, 2)?;
        crate::cuda_ops::conv3d(&x, &self.taps, &self.bias, conv_pad)
    }

    /// The candle path: conv2d per time tap, time folded into the batch (the reference).
    pub fn forward_candle(&self, x: &Tensor, frames_per_chunk: Option<usize>) -> Result<Tensor> {
        let (b, c, _, _, _) = x.dims5()?;
        if c != self.cfg.in_channels {
            candle_core::bail!(
                "Conv3d: expected {} input channels, got {c}",
                self.cfg.in_channels
            );
        }
        let k = self.cfg.kernel;
        let p = k / 2;
        // Work in (B, T, C, H, W): a run of frames is then one contiguous block (B = 1) that the
        // conv2d batch can view without a copy. The padding copies produce that layout directly.
        let x = x.permute((0, 2, 1, 3, 4))?;
        let (x, conv_pad) = match self.cfg.spatial_padding {
            SpatialPadding::Zeros => (x, p),
            SpatialPadding::Reflect => (reflect_pad(&reflect_pad(&x, 3, p)?, 4, p)?, 0),
        };
        let x = pad_time(&x, self.cfg.temporal_padding, k, 1)?.contiguous()?;
        let (_, t_pad, _, h, w) = x.dims5()?;
        let t_out = t_pad + 1 - k;
        // Output frames per conv2d batch, so that an im2col buffer (CUDA without cuDNN builds one
        // of `frames·C·k²·H·W` elements) stays bounded on full-resolution videos.
        let per_frame = b * c * k * k * h * w;
        let chunk = frames_per_chunk
            .unwrap_or(IM2COL_BUDGET / per_frame.max(1))
            .clamp(1, t_out);
        let dtype = x.dtype();
        let acc_dtype = match dtype {
            DType::BF16 | DType::F16 => DType::F32,
            other => other,
        };
        let mut outputs = Vec::with_capacity(t_out.div_ceil(chunk));
        for start in (0..t_out).step_by(chunk) {
            let len = chunk.min(t_out - start);
            let mut acc: Option<Tensor> = None;
            for (i, tap) in self.taps.iter().enumerate() {
                let xi = x.narrow(1, start + i, len)?.reshape((b * len, c, h, w))?;
                // Half-precision taps are summed in f32, as a fused conv3d would accumulate.
                let yi = xi.conv2d(tap, conv_pad, 1, 1, 1)?.to_dtype(acc_dtype)?;
                acc = Some(match acc {
                    None => yi,
                    Some(a) => (a + yi)?,
                });
            }
            let y = acc.expect("kernel has at least one tap");
            let bias = self.bias.to_dtype(acc_dtype)?.reshape((1, (), 1, 1))?;
            let y = y.broadcast_add(&bias)?.to_dtype(dtype)?;
            let (_, co, ho, wo) = y.dims4()?;
            outputs.push(y.reshape((b, len, co, ho, wo))?);
        }
        let y = if outputs.len() == 1 {
            outputs.pop().expect("one chunk")
        } else {
            Tensor::cat(&outputs, 1)?
        };
        y.permute((0, 2, 1, 3, 4))
    }
}

impl Module for Conv3d {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        Conv3d::forward(self, x)
    }
}

/// Pads the time axis `dim` for a kernel of `k` taps.
fn pad_time(x: &Tensor, mode: TemporalPadding, k: usize, dim: usize) -> Result<Tensor> {
    let t = x.dim(dim)?;
    let first = || x.narrow(dim, 0, 1);
    let last = || x.narrow(dim, t - 1, 1);
    match mode {
        TemporalPadding::Causal => {
            let mut parts = vec![first()?; k - 1];
            parts.push(x.clone());
            Tensor::cat(&parts, dim)
        }
        TemporalPadding::Replicate => {
            let p = (k - 1) / 2;
            let mut parts = vec![first()?; p];
            parts.push(x.clone());
            parts.extend(std::iter::repeat_n(last()?, p));
            Tensor::cat(&parts, dim)
        }
        TemporalPadding::Zeros => x.pad_with_zeros(dim, (k - 1) / 2, (k - 1) / 2),
    }
}

/// PyTorch `padding_mode="reflect"`: mirror without repeating the edge element.
pub(crate) fn reflect_pad(x: &Tensor, dim: usize, p: usize) -> Result<Tensor> {
    if p == 0 {
        return Ok(x.clone());
    }
    let n = x.dim(dim)?;
    if n <= p {
        candle_core::bail!("reflect padding {p} needs a dimension larger than {p}, got {n}");
    }
    let mut parts = Vec::with_capacity(2 * p + 1);
    for i in (1..=p).rev() {
        parts.push(x.narrow(dim, i, 1)?);
    }
    parts.push(x.clone());
    for i in 1..=p {
        parts.push(x.narrow(dim, n - 1 - i, 1)?);
    }
    Tensor::cat(&parts, dim)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device};

    /// Direct 3-D convolution in plain loops, the reference for the tap decomposition.
    fn naive(x: &Tensor, w: &Tensor, b: &Tensor) -> Tensor {
        let (n, c, t, h, wd) = x.dims5().unwrap();
        let (co, _, k, _, _) = w.dims5().unwrap();
        let xv = x.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let wv = w.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let bv = b.to_vec1::<f32>().unwrap();
        let (to, ho, wo) = (t + 1 - k, h + 1 - k, wd + 1 - k);
        let mut out = vec![0f32; n * co * to * ho * wo];
        for ni in 0..n {
            for o in 0..co {
                for ti in 0..to {
                    for hi in 0..ho {
                        for wi in 0..wo {
                            let mut s = bv[o];
                            for ci in 0..c {
                                for a in 0..k {
                                    for bb in 0..k {
                                        for cc in 0..k {
                                            let xi = (((ni * c + ci) * t + ti + a) * h + hi + bb)
                                                * wd
                                                + wi
                                                + cc;
                                            let wi_ = (((o * c + ci) * k + a) * k + bb) * k + cc;
                                            s += xv[xi] * wv[wi_];
                                        }
                                    }
                                }
                            }
                            out[(((ni * co + o) * to + ti) * ho + hi) * wo + wi] = s;
                        }
                    }
                }
            }
        }
        Tensor::from_vec(out, (n, co, to, ho, wo), &Device::Cpu).unwrap()
    }

    fn max_diff(a: &Tensor, b: &Tensor) -> f32 {
        (a - b)
            .unwrap()
            .abs()
            .unwrap()
            .flatten_all()
            .unwrap()
            .max(0)
            .unwrap()
            .to_scalar()
            .unwrap()
    }

    #[test]
    fn taps_match_a_direct_conv3d_for_every_padding() {
        let dev = Device::Cpu;
        let x = Tensor::randn(0f32, 1., (2, 3, 4, 5, 6), &dev).unwrap();
        let w = Tensor::randn(0f32, 1., (4, 3, 3, 3, 3), &dev).unwrap();
        let b = Tensor::randn(0f32, 1., 4, &dev).unwrap();
        let vb = VarBuilder::from_tensors(
            [
                ("weight".to_string(), w.clone()),
                ("bias".to_string(), b.clone()),
            ]
            .into(),
            DType::F32,
            &dev,
        );
        for t in [
            TemporalPadding::Causal,
            TemporalPadding::Replicate,
            TemporalPadding::Zeros,
        ] {
            for s in [SpatialPadding::Zeros, SpatialPadding::Reflect] {
                let conv = Conv3d::new(Conv3dConfig::k3(3, 4, t, s), vb.clone()).unwrap();
                let ours = conv.forward(&x).unwrap();
                let xp = pad_time(&x, t, 3, 2).unwrap();
                let xp = match s {
                    SpatialPadding::Zeros => xp
                        .pad_with_zeros(3, 1, 1)
                        .unwrap()
                        .pad_with_zeros(4, 1, 1)
                        .unwrap(),
                    SpatialPadding::Reflect => {
                        reflect_pad(&reflect_pad(&xp, 3, 1).unwrap(), 4, 1).unwrap()
                    }
                };
                let reference = naive(&xp, &w, &b);
                assert_eq!(ours.dims(), reference.dims());
                assert!(max_diff(&ours, &reference) < 1e-4, "{t:?} {s:?}");
                for chunk in [1, 3] {
                    let chunked = conv.forward_chunked(&x, Some(chunk)).unwrap();
                    assert_eq!(max_diff(&chunked, &ours), 0.0, "chunk {chunk}");
                }
            }
        }
    }

    #[test]
    fn half_precision_input_keeps_its_dtype_and_stays_close() {
        let dev = Device::Cpu;
        let x = Tensor::randn(0f32, 1., (1, 4, 3, 5, 5), &dev).unwrap();
        let w = Tensor::randn(0f32, 0.2, (4, 4, 3, 3, 3), &dev).unwrap();
        let b = Tensor::randn(0f32, 1., 4, &dev).unwrap();
        let tensors = |dt| {
            [
                ("weight".to_string(), w.to_dtype(dt).unwrap()),
                ("bias".to_string(), b.to_dtype(dt).unwrap()),
            ]
            .into()
        };
        let cfg = Conv3dConfig::k3(4, 4, TemporalPadding::Causal, SpatialPadding::Reflect);
        let full = Conv3d::new(
            cfg,
            VarBuilder::from_tensors(tensors(DType::F32), DType::F32, &dev),
        )
        .unwrap();
        let half = Conv3d::new(
            cfg,
            VarBuilder::from_tensors(tensors(DType::F16), DType::F16, &dev),
        )
        .unwrap();
        let y32 = full.forward(&x).unwrap();
        let y16 = half.forward(&x.to_dtype(DType::F16).unwrap()).unwrap();
        assert_eq!(y16.dtype(), DType::F16);
        let y16 = y16.to_dtype(DType::F32).unwrap();
        let rel = max_diff(&y16, &y32)
            / y32
                .abs()
                .unwrap()
                .flatten_all()
                .unwrap()
                .max(0)
                .unwrap()
                .to_scalar::<f32>()
                .unwrap();
        assert!(rel < 1e-2, "{rel}");
    }

    #[test]
    fn reflect_pad_mirrors_without_the_edge() {
        let x = Tensor::new(&[1f32, 2., 3., 4.], &Device::Cpu).unwrap();
        let y = reflect_pad(&x, 0, 2).unwrap().to_vec1::<f32>().unwrap();
        assert_eq!(y, vec![3., 2., 1., 2., 3., 4., 3., 2.]);
    }

    #[test]
    fn causal_padding_repeats_the_first_frame() {
        let x = Tensor::arange(0f32, 3., &Device::Cpu)
            .unwrap()
            .reshape((1, 1, 3, 1, 1))
            .unwrap();
        let y = pad_time(&x, TemporalPadding::Causal, 3, 2)
            .unwrap()
            .flatten_all()
            .unwrap();
        assert_eq!(y.to_vec1::<f32>().unwrap(), vec![0., 0., 0., 1., 2.]);
        let y = pad_time(&x, TemporalPadding::Replicate, 3, 2)
            .unwrap()
            .flatten_all()
            .unwrap();
        assert_eq!(y.to_vec1::<f32>().unwrap(), vec![0., 0., 1., 2., 2.]);
    }
}
