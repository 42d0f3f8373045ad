//! Anti-aliased resampling with one FIR filter shared by every channel (ltx-core
//! `vocoder.py::UpSample1d`, `DownSample1d` / `LowPassFilter1d`, from BigVGAN v2).
//!
//! The filter is the same for all channels (ltx-core expands it into a depthwise `groups = C`
//! convolution), so channels are folded into the batch and one single-channel convolution runs:
//! the same sums, without candle splitting a grouped convolution into `C` separate ones.

use candle_core::{DType, Device, Result, Tensor};

/// Runs `f` on `(B, C, L)` as `(B*C, 1, L)` and restores the channel dim.
fn per_channel(x: &Tensor, f: impl FnOnce(&Tensor) -> Result<Tensor>) -> Result<Tensor> {
    let (b, c, l) = x.dims3()?;
    let y = f(&x.reshape((b * c, 1, l))?)?;
    let l_out = y.dim(2)?;
    y.reshape((b, c, l_out))
}

/// `UpSample1d`: replicate pad, transposed convolution with stride `ratio`, gain `ratio`, crop.
#[derive(Debug, Clone)]
pub struct UpSample1d {
    /// `(1, 1, K)`.
    filter: Tensor,
    ratio: usize,
    pad: usize,
    pad_left: usize,
    pad_right: usize,
}

impl UpSample1d {
    /// The BigVGAN kaiser-sinc variant around a filter loaded from the checkpoint
    /// (`...upsample.filter`, `(1, 1, kernel_size)`).
    pub fn kaiser(ratio: usize, filter: Tensor) -> Result<Self> {
        let (_, _, k) = filter.dims3()?;
        if ratio == 0 || k < ratio {
            candle_core::bail!("UpSample1d: kernel {k} shorter than ratio {ratio}");
        }
        let pad = k / ratio - 1;
        Ok(Self {
            filter,
            ratio,
            pad,
            pad_left: pad * ratio + (k - ratio) / 2,
            pad_right: pad * ratio + (k - ratio).div_ceil(2),
        })
    }

    /// The Hann-windowed sinc variant (`window_type="hann"`), the kernel of
    /// `torchaudio.functional.resample` for an integer ratio. ltx-core does not store it in the
    /// checkpoint (`persistent=False`) and builds it in float32 on the CPU; so is it built here,
    /// with the same operations in the same order.
    pub fn hann(ratio: usize, dtype: DType, device: &Device) -> Result<Self> {
        const ROLLOFF: f32 = 0.99;
        const LOWPASS_FILTER_WIDTH: f32 = 6.0;
        if ratio == 0 {
            candle_core::bail!("UpSample1d: ratio must be positive");
        }
        // `math.ceil(6 / 0.99)` is evaluated on Python floats (f64).
        let width = (LOWPASS_FILTER_WIDTH as f64 / ROLLOFF as f64).ceil() as usize;
        let kernel_size = 2 * width * ratio + 1;
        let filter: Vec<f32> = (0..kernel_size)
            .map(|i| {
                let t = (i as f32 / ratio as f32 - width as f32) * ROLLOFF;
                let clamped = t.clamp(-LOWPASS_FILTER_WIDTH, LOWPASS_FILTER_WIDTH);
                let w = (clamped * std::f32::consts::PI / LOWPASS_FILTER_WIDTH / 2.0).cos();
                let window = w * w;
                sinc(t) * window * ROLLOFF / ratio as f32
            })
            .collect();
        let filter = Tensor::from_vec(filter, (1, 1, kernel_size), device)?.to_dtype(dtype)?;
        Ok(Self {
            filter,
            ratio,
            pad: width,
            pad_left: 2 * width * ratio,
            pad_right: kernel_size - ratio,
        })
    }

    /// The filter taps `(1, 1, K)`.
    pub fn filter(&self) -> &Tensor {
        &self.filter
    }

    /// `(B, C, L)` -> `(B, C, ratio * L)`.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let filter = self.filter.to_dtype(x.dtype())?;
        per_channel(&x.pad_with_same(2, self.pad, self.pad)?, |x| {
            let y = (x.conv_transpose1d(&filter, 0, 0, self.ratio, 1, 1)? * self.ratio as f64)?;
            let len = y.dim(2)?;
            y.narrow(2, self.pad_left, len - self.pad_left - self.pad_right)
        })
    }
}

/// `torch.sinc` in float32: `sin(pi x) / (pi x)`, 1 at 0.
fn sinc(x: f32) -> f32 {
    if x == 0.0 {
        1.0
    } else {
        let px = std::f32::consts::PI * x;
        px.sin() / px
    }
}

/// `DownSample1d` = `LowPassFilter1d` with stride `ratio`: replicate pad, strided convolution
/// with the kaiser-sinc filter loaded from the checkpoint (`...downsample.lowpass.filter`).
#[derive(Debug, Clone)]
pub struct DownSample1d {
    /// `(1, 1, K)`.
    filter: Tensor,
    stride: usize,
    pad_left: usize,
    pad_right: usize,
}

impl DownSample1d {
    pub fn new(ratio: usize, filter: Tensor) -> Result<Self> {
        let (_, _, k) = filter.dims3()?;
        if ratio == 0 || k == 0 {
            candle_core::bail!("DownSample1d: kernel {k} / ratio {ratio} must be positive");
        }
        let even = usize::from(k % 2 == 0);
        Ok(Self {
            filter,
            stride: ratio,
            pad_left: k / 2 - even,
            pad_right: k / 2,
        })
    }

    /// `(B, C, L)` -> `(B, C, ceil(L / ratio))`.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let filter = self.filter.to_dtype(x.dtype())?;
        per_channel(&x.pad_with_same(2, self.pad_left, self.pad_right)?, |x| {
            x.conv1d(&filter, 0, self.stride, 1, 1)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The Hann kernel is torchaudio's resampling kernel for 16 -> 48 kHz: 43 taps, symmetric,
    /// passing DC with gain 1 per phase once the x3 gain is applied.
    #[test]
    fn hann_kernel_shape_symmetry_and_dc_gain() -> Result<()> {
        let up = UpSample1d::hann(3, DType::F32, &Device::Cpu)?;
        let taps = up.filter().flatten_all()?.to_vec1::<f32>()?;
        assert_eq!(taps.len(), 43);
        for i in 0..taps.len() {
            assert!((taps[i] - taps[taps.len() - 1 - i]).abs() < 1e-7);
        }
        // A constant signal stays constant (up to the rolloff's passband error).
        let x = Tensor::ones((1, 2, 20), DType::F32, &Device::Cpu)?;
        let y = up.forward(&x)?;
        assert_eq!(y.dims(), &[1, 2, 60]);
        let v = y.flatten_all()?.to_vec1::<f32>()?;
        assert!(v.iter().all(|s| (s - 1.0).abs() < 2e-2), "{v:?}");
        Ok(())
    }

    /// Up then down by 2 with the BigVGAN paddings keeps the length; a moving impulse comes out
    /// where it went in.
    #[test]
    fn kaiser_paddings_keep_lengths() -> Result<()> {
        let dev = Device::Cpu;
        let taps: Vec<f32> = (0..12)
            .map(|i| {
                let t = i as f32 - 5.5;
                sinc(0.5 * t) * 0.5
            })
            .collect();
        let filter = Tensor::from_vec(taps, (1, 1, 12), &dev)?;
        let up = UpSample1d::kaiser(2, filter.clone())?;
        let down = DownSample1d::new(2, filter)?;
        let x = Tensor::arange(0f32, 30., &dev)?.reshape((1, 3, 10))?;
        let y = up.forward(&x)?;
        assert_eq!(y.dims(), &[1, 3, 20]);
        assert_eq!(down.forward(&y)?.dims(), &[1, 3, 10]);
        Ok(())
    }
}
