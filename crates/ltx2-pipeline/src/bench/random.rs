//! A `VarBuilder` backend that draws every requested tensor from [`crate::demo::init_rule`]
//! instead of reading a file, so the full-size model can be built in device memory.

use std::collections::HashSet;

use candle_core::{DType, Device, Shape, Tensor};
use candle_nn::var_builder::SimpleBackend;
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;

use ltx2_model::quantization::{fp8_scaled_mm_layer, E4M3_MAX};

use crate::demo::{init_cpu, init_rule, InitRule};

/// `weight_scale` of every random FP8 layer: the init rule's N(0, 1/√fan_in) weights are e4m3
/// codes of magnitude ~8-23 at the DiT's widths (normal numbers, full 3-bit precision), clamped
/// far out in the tail (±0.44).
pub const FP8_WEIGHT_SCALE: f32 = 1.0 / 1024.0;
/// `input_scale` of every random FP8 layer: activations up to ±16 are represented.
pub const FP8_INPUT_SCALE: f32 = 16.0 / E4M3_MAX;

/// The layer a `<layer>.weight_scale` / `<layer>.input_scale` key belongs to.
fn scale_layer(name: &str) -> Option<&str> {
    name.strip_suffix(".weight_scale")
        .or_else(|| name.strip_suffix(".input_scale"))
}

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
    /// The layout of the official FP8 files: the block linears ltx-core's FP8 path quantizes
    /// (blocks 1-42 of 48) hold e4m3 weights with `weight_scale` and `input_scale`.
    fp8: bool,
}

impl RandomBackend {
    pub fn new(seed: u64, present: Option<HashSet<String>>) -> Self {
        Self {
            seed,
            present,
            absent: ABSENT_SUFFIXES_19B,
            fp8: false,
        }
    }

    /// Lays the DiT out as an FP8 checkpoint ([`Self::fp8`]).
    pub fn with_fp8_layout(mut self, fp8: bool) -> Self {
        self.fp8 = fp8;
        self
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
        if name.ends_with(".weight_scale") {
            return Tensor::full(FP8_WEIGHT_SCALE, shape, dev);
        }
        if name.ends_with(".input_scale") {
            return Tensor::full(FP8_INPUT_SCALE, shape, dev);
        }
        let t = if dev.is_cpu() {
            let mut rng = ChaCha20Rng::seed_from_u64(self.seed ^ fnv1a(name));
            init_cpu(name, shape, &mut rng)?
        } else {
            match init_rule(name, shape) {
                InitRule::Fill(v) => Tensor::full(v, shape, dev)?,
                InitRule::Normal(std) => Tensor::randn(0f32, std, shape, dev)?,
            }
        };
        if dtype == DType::F8E4M3 {
            // The loader asks for e4m3 only where a weight_scale exists: store the codes.
            let codes = t.affine(1.0 / FP8_WEIGHT_SCALE as f64, 0.0)?;
            return codes
                .clamp(-E4M3_MAX, E4M3_MAX)?
                .to_dtype(dtype)?
                .to_device(dev);
        }
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
        if let Some(layer) = scale_layer(name) {
            return self.fp8
                && fp8_scaled_mm_layer(layer)
                && self.contains_tensor(&format!("{layer}.weight"));
        }
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

    #[test]
    fn fp8_layout_quantizes_the_official_layers() -> candle_core::Result<()> {
        let b = RandomBackend::new(7, None).with_fp8_layout(true);
        let l = |i: usize| format!("model.diffusion_model.transformer_blocks.{i}.ff.net.2");
        assert!(b.contains_tensor(&format!("{}.weight_scale", l(1))));
        assert!(b.contains_tensor(&format!("{}.input_scale", l(42))));
        assert!(!b.contains_tensor(&format!("{}.weight_scale", l(0))));
        assert!(!b.contains_tensor(&format!("{}.weight_scale", l(47))));
        assert!(!b.contains_tensor("model.diffusion_model.proj_out.weight_scale"));
        let w = b.generate(
            &format!("{}.weight", l(1)),
            &[64, 256],
            DType::F8E4M3,
            &Device::Cpu,
        )?;
        let w = (w.to_dtype(DType::F32)? * FP8_WEIGHT_SCALE as f64)?;
        // The dequantized weights keep the init rule's spread (1/√256 = 0.0625).
        let std = w.sqr()?.mean_all()?.sqrt()?.to_scalar::<f32>()?;
        assert!((std - 0.0625).abs() < 0.005, "{std}");
        Ok(())
    }
}
