//! 3-D convolution built from 2-D convolutions, one per time tap, because candle has no conv3d.
//!
//! The time axis is folded into the conv2d batch: for tap `i` the frames `i..i + T_out` of the
//! (padded) input form a `(B·T_out, C, H, W)` batch that is convolved with the weight slice
//! `W[:, :, i]`; the taps are summed. Everything that knows this trick is in this file, so a fused
//! CUDA kernel can replace [`Conv3d::forward`] without touching the models. f32 on the CPU runs
//! the packed-GEMM kernel of `conv3d_cpu.rs` instead.

use candle_core::{DType, Module, Result, Tensor};
use candle_nn::VarBuilder;

use super::conv3d_cpu::Conv3dCpu;

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

/// How the weight is kept: sliced per time tap for the conv2d decomposition, or whole for the
/// CPU kernel (only one of the two, so the weights are not held twice).
#[derive(Debug, Clone)]
enum Weight {
    /// `weight[:, :, i]` for each time tap `i`, each `[out, in, k, k]`.
    Taps(Vec<Tensor>),
    /// `[out, in·k³ + 1]`: the weight flattened with the bias as the last column, contiguous f32
    /// on the CPU.
    WithBias(Tensor),
}

#[derive(Debug, Clone)]
pub struct Conv3d {
    weight: Weight,
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
        let weight = if weight.device().is_cpu() && weight.dtype() == DType::F32 {
            let flat = weight.flatten_from(1)?;
            Weight::WithBias(Tensor::cat(&[&flat, &bias.unsqueeze(1)?], 1)?)
        } else {
            Weight::Taps(taps_of(&weight)?)
        };
        Ok(Self { weight, bias, cfg })
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
    /// on the chunking (the CPU kernel needs none: its buffers are per block of rows). On CUDA
    /// with cuDNN, one cuDNN 3-D convolution instead.
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
        let Weight::Taps(taps) = &self.weight else {
            return Ok(None); // the CPU layout: not on a GPU
        };
        if !x.device().is_cuda() || x.dim(1)? != self.cfg.in_channels {
            return Ok(None);
        }
        let (k, p) = (self.cfg.kernel, self.cfg.kernel / 2);
        let (x, conv_pad) = match self.cfg.spatial_padding {
            SpatialPadding::Zeros => (x.clone(), p),
            SpatialPadding::Reflect => (reflect_pad(&reflect_pad(x, 3, p)?, 4, p)?, 0),
        };
        let x = pad_time(&x, self.cfg.temporal_padding, k, 2)?;
        crate::cuda_ops::conv3d(&x, taps, &self.bias, conv_pad)
    }

    /// The candle paths (the references): the CPU kernel for f32 on the CPU, else conv2d per
    /// time tap with time folded into the batch.
    pub fn forward_candle(&self, x: &Tensor, frames_per_chunk: Option<usize>) -> Result<Tensor> {
        let c = x.dim(1)?;
        if c != self.cfg.in_channels {
            candle_core::bail!(
                "Conv3d: expected {} input channels, got {c}",
                self.cfg.in_channels
            );
        }
        match &self.weight {
            Weight::WithBias(w) if x.device().is_cpu() && x.dtype() == DType::F32 => {
                let op = Conv3dCpu {
                    kernel: self.cfg.kernel,
                    temporal: self.cfg.temporal_padding,
                    spatial: self.cfg.spatial_padding,
                    block_rows: None,
                };
                x.contiguous()?.apply_op2_no_bwd(w, &op)
            }
            _ => self.forward_taps(x, frames_per_chunk),
        }
    }

    /// The conv2d-per-time-tap decomposition (every device and dtype).
    fn forward_taps(&self, x: &Tensor, frames_per_chunk: Option<usize>) -> Result<Tensor> {
        let owned;
        let taps = match &self.weight {
            Weight::Taps(t) => t,
            Weight::WithBias(w) => {
                let (co, ci, k) = (self.cfg.out_channels, self.cfg.in_channels, self.cfg.kernel);
                owned = taps_of(&w.narrow(1, 0, ci * k * k * k)?.reshape((co, ci, k, k, k))?)?;
                &owned
            }
        };
        let (b, c, _, _, _) = x.dims5()?;
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
            for (i, tap) in taps.iter().enumerate() {
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

/// `weight[:, :, i]` for each time tap `i`, contiguous.
fn taps_of(weight: &Tensor) -> Result<Vec<Tensor>> {
    (0..weight.dim(2)?)
        .map(|i| weight.narrow(2, i, 1)?.squeeze(2)?.contiguous())
        .collect()
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

    fn conv_vb(w: &Tensor, b: &Tensor) -> VarBuilder<'static> {
        VarBuilder::from_tensors(
            [
                ("weight".to_string(), w.clone()),
                ("bias".to_string(), b.clone()),
            ]
            .into(),
            DType::F32,
            &Device::Cpu,
        )
    }

    fn reference(
        x: &Tensor,
        w: &Tensor,
        b: &Tensor,
        t: TemporalPadding,
        s: SpatialPadding,
    ) -> Tensor {
        let k = w.dim(2).unwrap();
        let p = k / 2;
        let xp = pad_time(x, t, k, 2).unwrap();
        let xp = match s {
            SpatialPadding::Zeros => xp
                .pad_with_zeros(3, p, p)
                .unwrap()
                .pad_with_zeros(4, p, p)
                .unwrap(),
            SpatialPadding::Reflect => reflect_pad(&reflect_pad(&xp, 3, p).unwrap(), 4, p).unwrap(),
        };
        naive(&xp, w, b)
    }

    const PADDINGS: [(TemporalPadding, SpatialPadding); 6] = [
        (TemporalPadding::Causal, SpatialPadding::Zeros),
        (TemporalPadding::Causal, SpatialPadding::Reflect),
        (TemporalPadding::Replicate, SpatialPadding::Zeros),
        (TemporalPadding::Replicate, SpatialPadding::Reflect),
        (TemporalPadding::Zeros, SpatialPadding::Zeros),
        (TemporalPadding::Zeros, SpatialPadding::Reflect),
    ];

    #[test]
    fn taps_match_a_direct_conv3d_for_every_padding() {
        let dev = Device::Cpu;
        let x = Tensor::randn(0f32, 1., (2, 3, 4, 5, 6), &dev).unwrap();
        let w = Tensor::randn(0f32, 1., (4, 3, 3, 3, 3), &dev).unwrap();
        let b = Tensor::randn(0f32, 1., 4, &dev).unwrap();
        for (t, s) in PADDINGS {
            let conv = Conv3d::new(Conv3dConfig::k3(3, 4, t, s), conv_vb(&w, &b)).unwrap();
            let ours = conv.forward_taps(&x, None).unwrap();
            let reference = reference(&x, &w, &b, t, s);
            assert_eq!(ours.dims(), reference.dims());
            let d = max_diff(&ours, &reference);
            assert!(d < 1e-4, "{t:?} {s:?}: {d}");
            for chunk in [1, 3] {
                let chunked = conv.forward_taps(&x, Some(chunk)).unwrap();
                assert_eq!(max_diff(&chunked, &ours), 0.0, "chunk {chunk}");
            }
        }
    }

    /// The CPU kernel against the direct loop, with blocks of 1-3 rows (edges inside and
    /// between blocks, a last block shorter than the others), k = 3 and 5, batch 2.
    #[test]
    fn cpu_kernel_matches_a_direct_conv3d_for_every_padding_and_block() {
        let dev = Device::Cpu;
        for (k, dims) in [(3, (2, 3, 4, 7, 6)), (5, (1, 2, 6, 8, 9))] {
            let (_, ci, _, _, _) = dims;
            let x = Tensor::randn(0f32, 1., dims, &dev).unwrap();
            let w = Tensor::randn(0f32, 1., (5, ci, k, k, k), &dev).unwrap();
            let b = Tensor::randn(0f32, 1., 5, &dev).unwrap();
            for (t, s) in PADDINGS {
                let reference = reference(&x, &w, &b, t, s);
                for block_rows in [None, Some(1), Some(2), Some(3)] {
                    let op = Conv3dCpu {
                        kernel: k,
                        temporal: t,
                        spatial: s,
                        block_rows,
                    };
                    let wb =
                        Tensor::cat(&[&w.flatten_from(1).unwrap(), &b.unsqueeze(1).unwrap()], 1)
                            .unwrap();
                    let ours = x.apply_op2_no_bwd(&wb, &op).unwrap();
                    assert_eq!(ours.dims(), reference.dims());
                    let d = max_diff(&ours, &reference);
                    assert!(d < 1e-4, "k {k} {t:?} {s:?} rows {block_rows:?}: {d}");
                }
            }
        }
    }

    #[test]
    fn f32_cpu_forward_runs_the_kernel_and_matches_the_taps() {
        let dev = Device::Cpu;
        let x = Tensor::randn(0f32, 1., (1, 4, 5, 9, 7), &dev).unwrap();
        let w = Tensor::randn(0f32, 0.3, (6, 4, 3, 3, 3), &dev).unwrap();
        let b = Tensor::randn(0f32, 1., 6, &dev).unwrap();
        for (t, s) in PADDINGS {
            let conv = Conv3d::new(Conv3dConfig::k3(4, 6, t, s), conv_vb(&w, &b)).unwrap();
            assert!(matches!(conv.weight, Weight::WithBias(_)));
            // A strided input (the kernel makes it contiguous first).
            let xt = x.transpose(3, 4).unwrap();
            let fast = conv.forward(&xt).unwrap();
            let taps = conv.forward_taps(&xt, None).unwrap();
            let d = max_diff(&fast, &taps);
            assert!(d < 1e-4, "{t:?} {s:?}: {d}");
        }
    }

    /// The kernel against candle's conv2d per time tap (the path every other device runs) at
    /// the channel counts of the tiny and 19B VAEs: a K = C_in·27 of up to 3456 that the GEMM
    /// splits into several depth blocks, frames 1-5 (causal padding reads the first frame up to
    /// twice), several row blocks per frame, weights scaled like a trained conv (N(0, 1/K)).
    #[test]
    fn cpu_kernel_matches_candle_conv2d_taps_at_vae_channel_counts() {
        let dev = Device::Cpu;
        // (C_in, C_out, T, H, W): conv_in, a mid-block conv, an upsampler conv, conv_out, a
        // single frame.
        let shapes = [
            (8, 128, 2, 4, 5),
            (128, 128, 3, 8, 6),
            (64, 256, 4, 6, 7),
            (128, 48, 5, 16, 10),
            (3, 7, 1, 9, 7),
        ];
        for (ci, co, t, h, w) in shapes {
            let x = Tensor::randn(0f32, 1., (1, ci, t, h, w), &dev).unwrap();
            let std = (1.0 / (ci * 27) as f64).sqrt() as f32;
            let wt = Tensor::randn(0f32, std, (co, ci, 3, 3, 3), &dev).unwrap();
            let b = Tensor::randn(0f32, 0.1, co, &dev).unwrap();
            for (tp, sp) in PADDINGS {
                let conv = Conv3d::new(Conv3dConfig::k3(ci, co, tp, sp), conv_vb(&wt, &b)).unwrap();
                let fast = conv.forward(&x).unwrap();
                let taps = conv.forward_taps(&x, None).unwrap();
                assert_eq!(fast.dims(), taps.dims());
                // Both sum the same products in different orders: float noise only (outputs
                // are O(1); one misplaced tap moves them by O(0.1)).
                let d = max_diff(&fast, &taps);
                assert!(d < 2e-5, "{ci}->{co} {t}x{h}x{w} {tp:?} {sp:?}: {d}");
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
