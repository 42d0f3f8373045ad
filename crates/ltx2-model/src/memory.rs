//! Resident bytes of a set of tensors under a quantization mode, from names, dtypes and shapes
//! alone (a safetensors header, or a layout recorded from the constructors): a 19B or 22B plan is
//! checked without reading or allocating a weight.
//!
//! The rules are the loader's ([`crate::linear::linear_q`]): a stored `F8_E4M3` weight stays one
//! byte per element plus its f32 `weight_scale` (and `input_scale`, kept as a 4-byte scalar);
//! under `fp8-cast` the weights of ltx-core's downcast map become one byte per element (scale 1,
//! still a 4-byte field) and their biases stay in the compute dtype; every other tensor is held in
//! the compute dtype. [`crate::transformer::LtxModel::resident_bytes`] measures the same quantity
//! on a built model, and the tests hold the two equal.

use std::collections::BTreeMap;

use candle_core::DType;
use safetensors::Dtype;

use crate::checkpoint::TensorEntry;
use crate::quantization::{fp8_cast_casts, gemma_fp8_quantizes, GemmaQuantization, Quantization};

/// What a group of tensors holds when loaded.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Resident {
    /// Bytes of the weights as held (FP8 scales included).
    pub bytes: u64,
    /// Elements of the parameter tensors (scales excluded).
    pub parameters: u64,
    /// Linear weights held in FP8.
    pub fp8_weights: usize,
    /// Elements of the largest FP8 weight: the size of the per-layer dequantization scratch.
    pub largest_fp8_weight: u64,
}

impl Resident {
    /// The dequantization buffer the FP8 layers share (one per compute thread): the largest FP8
    /// weight in `compute` (weight-only) or in f32 (the scaled-mm emulation's unscaled operand).
    pub fn scratch_bytes(&self, quantization: Quantization, compute: DType) -> u64 {
        let per = match quantization {
            Quantization::Fp8ScaledMm => 4,
            _ => compute.size_in_bytes() as u64,
        };
        self.largest_fp8_weight * per
    }

    pub fn add(&mut self, other: &Resident) {
        self.bytes += other.bytes;
        self.parameters += other.parameters;
        self.fp8_weights += other.fp8_weights;
        self.largest_fp8_weight = self.largest_fp8_weight.max(other.largest_fp8_weight);
    }
}

/// Resident bytes of `tensors` loaded in `compute` under `quantization`. An error when the mode
/// cannot load them (`fp8-cast` of FP8 weights, `fp8-scaled-mm` of an FP8 weight without
/// `input_scale`), as the loader would refuse.
pub fn resident<'a>(
    tensors: impl IntoIterator<Item = (&'a str, &'a TensorEntry)>,
    quantization: Quantization,
    compute: DType,
) -> Result<Resident, String> {
    let tensors: BTreeMap<&str, &TensorEntry> = tensors.into_iter().collect();
    let held = compute.size_in_bytes() as u64;
    let mut r = Resident::default();
    for (&key, t) in &tensors {
        let n = t.elem_count();
        if key.ends_with(".weight_scale") || key.ends_with(".input_scale") {
            r.bytes += 4;
            continue;
        }
        r.parameters += n;
        let fp8 = if t.dtype == Dtype::F8_E4M3 {
            let layer = key.strip_suffix(".weight").unwrap_or(key);
            match quantization {
                Quantization::Fp8Cast => {
                    return Err(format!(
                        "{key} is already FP8: fp8-cast casts a bf16 checkpoint"
                    ))
                }
                Quantization::Fp8ScaledMm
                    if !tensors.contains_key(format!("{layer}.input_scale").as_str()) =>
                {
                    return Err(format!("{layer} has no input_scale for fp8-scaled-mm"))
                }
                _ => true,
            }
        } else {
            quantization == Quantization::Fp8Cast && key.ends_with(".weight") && fp8_cast_casts(key)
        };
        if fp8 {
            r.fp8_weights += 1;
            r.largest_fp8_weight = r.largest_fp8_weight.max(n);
            r.bytes += n;
            if t.dtype != Dtype::F8_E4M3 {
                // fp8-cast keeps its scale of 1 as a field too.
                r.bytes += 4;
            }
        } else {
            r.bytes += n * held;
        }
    }
    Ok(r)
}

/// Resident bytes of a Gemma language model's tensors (Gemma-3 or Gemma-4) loaded in `compute`:
/// the norm gains (`1 + w` or `w`) are kept in f32, the projections as `q` says (FP8: a byte per
/// weight plus the f32 scale), everything else (embedding, Gemma-4's `layer_scalar`) in `compute`.
pub fn resident_gemma<'a>(
    tensors: impl IntoIterator<Item = (&'a str, &'a TensorEntry)>,
    q: GemmaQuantization,
    compute: DType,
) -> Resident {
    let mut r = Resident::default();
    for (key, t) in tensors {
        let n = t.elem_count();
        r.parameters += n;
        if q == GemmaQuantization::Fp8 && gemma_fp8_quantizes(key) {
            r.fp8_weights += 1;
            r.largest_fp8_weight = r.largest_fp8_weight.max(n);
            r.bytes += n + 4;
        } else if key.ends_with("norm.weight") {
            r.bytes += n * 4;
        } else {
            r.bytes += n * compute.size_in_bytes() as u64;
        }
    }
    r
}

/// Bytes as GB (1e9) with two decimals and GiB in brackets, for reports.
pub fn format_bytes(bytes: u64) -> String {
    format!(
        "{:.2} GB ({:.2} GiB)",
        bytes as f64 / 1e9,
        bytes as f64 / (1u64 << 30) as f64
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(dtype: Dtype, shape: &[usize]) -> TensorEntry {
        TensorEntry {
            dtype,
            shape: shape.to_vec(),
        }
    }

    #[test]
    fn fp8_layers_cost_a_byte_per_weight_plus_scales() {
        let b = "model.diffusion_model.transformer_blocks.1.attn1.to_q";
        let tensors = [
            (format!("{b}.weight"), entry(Dtype::F8_E4M3, &[8, 4])),
            (format!("{b}.weight_scale"), entry(Dtype::F32, &[])),
            (format!("{b}.input_scale"), entry(Dtype::F32, &[])),
            (format!("{b}.bias"), entry(Dtype::BF16, &[8])),
            ("vae.x.weight".to_string(), entry(Dtype::BF16, &[3, 3])),
        ];
        let it = || tensors.iter().map(|(k, t)| (k.as_str(), t));
        let none = resident(it(), Quantization::None, DType::BF16).unwrap();
        assert_eq!(none.bytes, 32 + 4 + 4 + 8 * 2 + 9 * 2);
        assert_eq!(none.parameters, 32 + 8 + 9);
        assert_eq!((none.fp8_weights, none.largest_fp8_weight), (1, 32));
        assert_eq!(none.scratch_bytes(Quantization::None, DType::BF16), 64);
        let mm = resident(it(), Quantization::Fp8ScaledMm, DType::BF16).unwrap();
        assert_eq!(mm.bytes, none.bytes);
        assert_eq!(
            mm.scratch_bytes(Quantization::Fp8ScaledMm, DType::BF16),
            128
        );
        assert!(resident(it(), Quantization::Fp8Cast, DType::BF16).is_err());
        let no_input_scale = tensors.iter().filter(|(k, _)| !k.ends_with("input_scale"));
        let e = resident(
            no_input_scale.map(|(k, t)| (k.as_str(), t)),
            Quantization::Fp8ScaledMm,
            DType::BF16,
        )
        .unwrap_err();
        assert!(e.contains("input_scale"), "{e}");
    }

    #[test]
    fn fp8_cast_casts_block_weights_and_keeps_biases_in_the_compute_dtype() {
        let tensors = [
            (
                "model.diffusion_model.transformer_blocks.0.ff.net.0.proj.weight",
                entry(Dtype::BF16, &[16, 4]),
            ),
            (
                "model.diffusion_model.transformer_blocks.0.ff.net.0.proj.bias",
                entry(Dtype::BF16, &[16]),
            ),
            (
                "model.diffusion_model.transformer_blocks.0.attn1.to_gate_logits.weight",
                entry(Dtype::BF16, &[2, 4]),
            ),
        ];
        let it = || tensors.iter().map(|(k, t)| (*k, t));
        let r = resident(it(), Quantization::Fp8Cast, DType::F32).unwrap();
        assert_eq!(r.bytes, 64 + 4 + 16 * 4 + 8 * 4);
        assert_eq!(r.fp8_weights, 1);
        let dense = resident(it(), Quantization::None, DType::F32).unwrap();
        assert_eq!(dense.bytes, (64 + 16 + 8) * 4);
    }
}
