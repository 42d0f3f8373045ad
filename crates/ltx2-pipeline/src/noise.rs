//! Seeded Gaussian noise.
//!
//! The official pipelines draw from a `torch.Generator` (CUDA Philox), which cannot be reproduced
//! outside PyTorch. We draw our own: a ChaCha20 stream (`rand_chacha::ChaCha20Rng::seed_from_u64`)
//! sampled with `rand_distr::StandardNormal` as f32, on the CPU, then moved to the device. The
//! same seed gives bit-identical noise on any machine and any device. Draw order follows the
//! official `GaussianNoiser`: stage-1 video, stage-1 audio, stage-2 video, stage-2 audio.
//! Tests replay the recorded official draws through [`RecordedNoise`].

use std::collections::VecDeque;

use candle_core::{DType, Device, Result, Tensor};
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;
use rand_distr::{Distribution, StandardNormal};

/// Where the denoising loop gets its Gaussian draws from.
pub trait NoiseSource {
    /// A standard-normal tensor of `shape` (f32, then cast to `dtype`) on `device`.
    fn draw(&mut self, shape: &[usize], dtype: DType, device: &Device) -> Result<Tensor>;
}

/// Reproducible noise from a seed (ChaCha20 + standard normal).
pub struct SeededNoise {
    rng: ChaCha20Rng,
}

impl SeededNoise {
    pub fn new(seed: u64) -> Self {
        Self {
            rng: ChaCha20Rng::seed_from_u64(seed),
        }
    }
}

impl NoiseSource for SeededNoise {
    fn draw(&mut self, shape: &[usize], dtype: DType, device: &Device) -> Result<Tensor> {
        let n: usize = shape.iter().product();
        let values: Vec<f32> = (0..n)
            .map(|_| StandardNormal.sample(&mut self.rng))
            .collect();
        Tensor::from_vec(values, shape, &Device::Cpu)?
            .to_dtype(dtype)?
            .to_device(device)
    }
}

/// Replays given tensors in order (the official draws recorded in the golden files).
pub struct RecordedNoise {
    draws: VecDeque<Tensor>,
}

impl RecordedNoise {
    pub fn new(draws: Vec<Tensor>) -> Self {
        Self {
            draws: draws.into(),
        }
    }
}

impl NoiseSource for RecordedNoise {
    fn draw(&mut self, shape: &[usize], dtype: DType, device: &Device) -> Result<Tensor> {
        let t = self.draws.pop_front().ok_or_else(|| {
            candle_core::Error::Msg(format!("no recorded noise left for a draw of {shape:?}"))
        })?;
        if t.dims() != shape {
            candle_core::bail!(
                "recorded noise has shape {:?}, the pipeline asks for {shape:?}",
                t.dims()
            );
        }
        t.to_dtype(dtype)?.to_device(device)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_noise_other_seed_other_noise() {
        let d = Device::Cpu;
        let a = SeededNoise::new(7)
            .draw(&[2, 3], DType::F32, &d)
            .unwrap()
            .to_vec2::<f32>()
            .unwrap();
        let b = SeededNoise::new(7)
            .draw(&[2, 3], DType::F32, &d)
            .unwrap()
            .to_vec2::<f32>()
            .unwrap();
        let c = SeededNoise::new(8)
            .draw(&[2, 3], DType::F32, &d)
            .unwrap()
            .to_vec2::<f32>()
            .unwrap();
        assert_eq!(a, b);
        assert_ne!(a, c);
    }

    #[test]
    fn seeded_noise_is_roughly_standard_normal() {
        let v = SeededNoise::new(1)
            .draw(&[20000], DType::F32, &Device::Cpu)
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        let mean = v.iter().sum::<f32>() / v.len() as f32;
        let var = v.iter().map(|x| (x - mean) * (x - mean)).sum::<f32>() / v.len() as f32;
        assert!(mean.abs() < 0.03, "mean {mean}");
        assert!((var - 1.0).abs() < 0.05, "var {var}");
    }
}
