//! A `VarBuilder` backend that draws every requested tensor from [`crate::demo::init_rule`]
//! instead of reading a file, so the full-size model can be built in device memory.

use std::collections::HashSet;

use candle_core::{DType, Device, Shape, Tensor};
use candle_nn::var_builder::SimpleBackend;
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;

use crate::demo::{init_cpu, init_rule, InitRule};

/// Keys that a real checkpoint may or may not have; loaders probe them with `contains_tensor`.
/// The random 19B is the dense bf16 release: no FP8 scales, the rational upsampler.
pub const ABSENT_SUFFIXES_19B: &[&str] = &["weight_scale", "input_scale", "upsampler.0.weight"];
/// The random 22B (LTX-2.3) is the dense bf16 release with the x2 v1.1 upsampler (plain conv +
/// pixel shuffle, no rational resampler).
pub const ABSENT_SUFFIXES_23: &[&str] = &[
    "weight_scale",
    "input_scale",
    "upsampler.conv.weight",
    "upsampler.blur_down.kernel",
];

/// Random weights on request. On the CPU each tensor comes from its own ChaCha20 stream seeded by
/// `(seed, name)`, so values do not depend on load order and equal the demo's rule; on CUDA they
/// are drawn with the device generator (seeded once, see [`seed_device`]) because generating
/// 19 B values on the host would take minutes.
pub struct RandomBackend {
    seed: u64,
    /// Names that exist (tiny layout); `None`: everything except the `absent` suffixes exists.
    present: Option<HashSet<String>>,
    absent: &'static [&'static str],
}

impl RandomBackend {
    pub fn new(seed: u64, present: Option<HashSet<String>>) -> Self {
        Self {
            seed,
            present,
            absent: ABSENT_SUFFIXES_19B,
        }
    }

    /// Which optional keys the full-size layout lacks (default: the 19B release's).
    pub fn with_absent(mut self, absent: &'static [&'static str]) -> Self {
        self.absent = absent;
        self
    }

    fn generate(
        &self,
        name: &str,
        shape: &[usize],
        dtype: DType,
        dev: &Device,
    ) -> candle_core::Result<Tensor> {
        let t = if dev.is_cpu() {
            let mut rng = ChaCha20Rng::seed_from_u64(self.seed ^ fnv1a(name));
            init_cpu(name, shape, &mut rng)?
        } else {
            match init_rule(name, shape) {
                InitRule::Fill(v) => Tensor::full(v, shape, dev)?,
                InitRule::Normal(std) => Tensor::randn(0f32, std, shape, dev)?,
            }
        };
        t.to_dtype(dtype)?.to_device(dev)
    }
}

/// Seeds the device generator (CUDA) so a run's random weights are reproducible on one GPU.
pub fn seed_device(device: &Device, seed: u64) -> candle_core::Result<()> {
    if device.is_cpu() {
        return Ok(());
    }
    device.set_seed(seed)
}

fn fnv1a(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ b as u64).wrapping_mul(0x0100_0000_01b3)
    })
}

impl SimpleBackend for RandomBackend {
    fn get(
        &self,
        s: Shape,
        name: &str,
        _h: candle_nn::Init,
        dtype: DType,
        dev: &Device,
    ) -> candle_core::Result<Tensor> {
        if !self.contains_tensor(name) {
            candle_core::bail!("random weights: `{name}` is not part of this model");
        }
        self.generate(name, s.dims(), dtype, dev)
    }

    fn get_unchecked(
        &self,
        name: &str,
        _dtype: DType,
        _dev: &Device,
    ) -> candle_core::Result<Tensor> {
        candle_core::bail!("random weights: `{name}` was requested without a shape")
    }

    fn contains_tensor(&self, name: &str) -> bool {
        match &self.present {
            Some(names) => names.contains(name),
            None => !self.absent.iter().any(|s| name.ends_with(s)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_weights_depend_on_name_not_order() {
        let b = RandomBackend::new(7, None);
        let dev = Device::Cpu;
        let a1 = b.generate("x.weight", &[4, 8], DType::F32, &dev).unwrap();
        let _ = b.generate("y.weight", &[4, 8], DType::F32, &dev).unwrap();
        let a2 = b.generate("x.weight", &[4, 8], DType::F32, &dev).unwrap();
        let d = (a1 - a2)
            .unwrap()
            .abs()
            .unwrap()
            .sum_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        assert_eq!(d, 0.0);
        assert!(!b.contains_tensor("blocks.0.to_q.weight_scale"));
        assert!(b.contains_tensor("blocks.0.to_q.weight"));
    }
}
