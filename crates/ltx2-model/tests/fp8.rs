//! The FP8 paths beyond the golden outputs: FP8 kept resident gives the numbers of
//! dequantize-at-load, `fp8-cast` matches ltx-core's policy (testdata/fp8-reference, made by
//! scripts/reference/make_fp8_reference.py), e4m3 rounding equals PyTorch's, the header-only
//! memory estimate equals what the built model holds, bf16 runs stay close, and modes a file
//! cannot serve are load errors. Both golden layouts (LTX-2 19B, LTX-2.3 22B).

use std::path::PathBuf;

use anyhow::{Context, Result};
use candle_core::{DType, Device, Module, Tensor};
use ltx2_model::checkpoint::{Checkpoint, CheckpointError, Component};
use ltx2_model::golden::{Checks, Golden, GoldenSet, Tolerance};
use ltx2_model::linear::{DenseLinear, Linear};
use ltx2_model::quantization::Quantization;
use ltx2_model::transformer::{to_denoised, LtxModel, Modality, Perturbations};

const SETS: [GoldenSet; 2] = [GoldenSet::Ltx2, GoldenSet::Ltx23];

/// testdata/fp8-reference, or `$LTX2_FP8_REFERENCE_DIR` (test binaries run on another machine).
fn reference_dir() -> PathBuf {
    match std::env::var_os("LTX2_FP8_REFERENCE_DIR") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../testdata/fp8-reference"),
    }
}

fn reference_name(set: GoldenSet) -> &'static str {
    match set {
        GoldenSet::Ltx2 => "transformer_fp8_cast_ltx2",
        GoldenSet::Ltx23 => "transformer_fp8_cast_ltx23",
        // The 2.5 golden set has no FP8 checkpoint and no fp8-cast reference (yet).
        GoldenSet::Ltx25 => panic!("no fp8-cast reference for {set:?}"),
    }
}

fn load(set: GoldenSet, file: &str, dtype: DType, q: Quantization) -> Result<LtxModel> {
    let dev = ltx2_model::golden::test_device().expect("LTX2_TEST_DEVICE");
    Ok(Checkpoint::open(set.weights_path(file))?.load_transformer_quantized(dtype, &dev, q)?)
}

/// One stream's f32 inputs (a bf16 model takes them as they are, like the dense bf16 test).
fn modality(g: &Golden, stream: &str) -> Result<Modality> {
    let dev = ltx2_model::golden::test_device().expect("LTX2_TEST_DEVICE");
    let f = |k: &str| -> Result<Tensor> { Ok(g.get_f32(&format!("in.{stream}.{k}"), &dev)?) };
    Ok(Modality {
        latent: f("latent")?,
        timesteps: f("timesteps")?,
        positions: f("positions")?,
        context: f("context")?,
        context_mask: None,
        sigma: g.get_f32("in.sigma", &dev)?,
        keyframes_mask: None,
        attention_mask: None,
    })
}

/// `(video, audio)` velocities of `model` on the set's (f32) transformer inputs, as f32.
fn velocities(set: GoldenSet, model: &LtxModel) -> Result<(Tensor, Tensor)> {
    let g = set.load("transformer")?;
    let (v, a) = (modality(&g, "video")?, modality(&g, "audio")?);
    let (vv, va) = model.forward(&v, &a, &Perturbations::none())?;
    Ok((vv.to_dtype(DType::F32)?, va.to_dtype(DType::F32)?))
}

/// Every linear of the DiT's blocks.
fn block_linears(model: &LtxModel) -> Vec<&Linear> {
    let mut out = vec![];
    for b in &model.transformer_blocks {
        for a in [
            &b.attn1,
            &b.attn2,
            &b.audio_attn1,
            &b.audio_attn2,
            &b.audio_to_video_attn,
            &b.video_to_audio_attn,
        ] {
            out.extend([&a.to_q, &a.to_k, &a.to_v, &a.to_out]);
            out.extend(&a.to_gate_logits);
        }
        for ff in [&b.ff, &b.audio_ff] {
            out.extend([&ff.proj_in, &ff.proj_out]);
        }
    }
    out
}

fn bits(t: &Tensor) -> Result<Vec<u32>> {
    Ok(t.to_dtype(DType::F32)?
        .flatten_all()?
        .to_vec1::<f32>()?
        .iter()
        .map(|v| v.to_bits())
        .collect())
}

/// Each FP8 layer kept resident gives, bit for bit, the output of the dense layer built from
/// the dequantize-at-load weight (`f32(w) · weight_scale` cast once), in f32 and bf16.
#[test]
fn resident_fp8_equals_dequantize_at_load_bitwise() -> Result<()> {
    for set in SETS {
        for dtype in [DType::F32, DType::BF16] {
            let model = load(set, "model_fp8.safetensors", dtype, Quantization::None)?;
            let mut fp8 = 0;
            for (i, l) in block_linears(&model).into_iter().enumerate() {
                let Linear::Fp8(layer) = l else { continue };
                fp8 += 1;
                assert_eq!(layer.weight().raw().dtype(), DType::F8E4M3);
                let (_, in_dim) = l.dims();
                let x = Tensor::randn(0f32, 1.0, (1, 7, in_dim), layer.weight().raw().device())?
                    .to_dtype(dtype)?;
                let dense = DenseLinear::new(l.weight()?, l.bias().cloned());
                assert_eq!(
                    bits(&l.forward(&x)?)?,
                    bits(&dense.forward(&x)?)?,
                    "{set:?} {dtype:?} layer {i}"
                );
            }
            assert!(fp8 > 0, "{set:?}: no FP8 layer");
        }
    }
    Ok(())
}

/// `--quantization fp8-cast` on the bf16 checkpoint equals ltx-core's `fp8_cast()` policy.
#[test]
fn fp8_cast_matches_ltx_core() -> Result<()> {
    for set in SETS {
        let model = load(set, "model.safetensors", DType::F32, Quantization::Fp8Cast)?;
        let cast = block_linears(&model)
            .into_iter()
            .filter(|l| l.fp8_scales().is_some())
            .count();
        // 2 blocks x (6 attentions x q/k/v/out + 2 feed-forwards x 2): the gates stay dense.
        assert_eq!(cast, model.transformer_blocks.len() * (6 * 4 + 2 * 2));
        let g = set.load("transformer")?;
        let reference = Golden::load_from(&reference_dir(), reference_name(set))?;
        let (v, a) = (modality(&g, "video")?, modality(&g, "audio")?);
        let (vv, va) = model.forward(&v, &a, &Perturbations::none())?;
        let mut c = Checks::new(&reference);
        c.check("out.video.velocity", &vv)?;
        c.check("out.audio.velocity", &va)?;
        c.check(
            "out.video.denoised",
            &to_denoised(&v.latent, &vv, &v.timesteps)?,
        )?;
        c.check(
            "out.audio.denoised",
            &to_denoised(&a.latent, &va, &a.timesteps)?,
        )?;
        c.finish(&["out."])?;
        // The cast is not a no-op: the plain bf16 model's output misses the reference.
        let plain = set.load("transformer")?.get("out.video.velocity")?;
        let d = reference.compare_part(
            "out.video.velocity",
            "plain vs fp8-cast",
            &plain,
            &reference.get("out.video.velocity")?,
        )?;
        assert!(!d.passed, "{set:?}: fp8-cast indistinguishable from bf16");
    }
    Ok(())
}

/// The scaled-mm and weight-only products are different numerics: each matches its own golden
/// outputs and misses the other's, so the scaled-mm test cannot pass by accident.
#[test]
fn scaled_mm_and_weight_only_are_told_apart() -> Result<()> {
    for set in SETS {
        let g = set.load("transformer_fp8")?;
        for (q, own, other) in [
            (Quantization::None, "weight_only", "scaled_mm"),
            (Quantization::Fp8ScaledMm, "scaled_mm", "weight_only"),
        ] {
            let model = load(set, "model_fp8.safetensors", DType::F32, q)?;
            let (vv, _) = velocities(set, &model)?;
            let key = |m: &str| format!("out.{m}.video.velocity");
            assert!(g.compare(&key(own), &vv)?.passed, "{set:?} {q}");
            assert!(!g.compare(&key(other), &vv)?.passed, "{set:?} {q}");
        }
    }
    Ok(())
}

/// bf16 builds of the FP8 paths land near the golden outputs (bf16 rounding only: a smoke
/// bound, not a parity tolerance, as for the dense bf16 model).
#[test]
fn bf16_fp8_paths_run_close_to_the_reference() -> Result<()> {
    let bound = Tolerance::RelL2(5e-2);
    for set in SETS {
        let fp8 = set.load("transformer_fp8")?;
        for (q, mode) in [
            (Quantization::None, "weight_only"),
            (Quantization::Fp8ScaledMm, "scaled_mm"),
        ] {
            let model = load(set, "model_fp8.safetensors", DType::BF16, q)?;
            let (vv, va) = velocities(set, &model)?;
            assert!(
                fp8.compare_with(&format!("out.{mode}.video.velocity"), &vv, bound)?
                    .passed
            );
            assert!(
                fp8.compare_with(&format!("out.{mode}.audio.velocity"), &va, bound)?
                    .passed
            );
        }
        let model = load(set, "model.safetensors", DType::BF16, Quantization::Fp8Cast)?;
        let (vv, va) = velocities(set, &model)?;
        let reference = Golden::load_from(&reference_dir(), reference_name(set))?;
        assert!(
            reference
                .compare_with("out.video.velocity", &vv, bound)?
                .passed
        );
        assert!(
            reference
                .compare_with("out.audio.velocity", &va, bound)?
                .passed
        );
    }
    Ok(())
}

/// The header-only estimate ([`Checkpoint::resident_memory`]) is exactly what the built DiT
/// holds, for every mode a file serves, in f32 and bf16; FP8 storage is about half of bf16.
#[test]
fn header_estimate_equals_the_built_model() -> Result<()> {
    for set in SETS {
        for (file, modes) in [
            (
                "model_fp8.safetensors",
                [Quantization::None, Quantization::Fp8ScaledMm],
            ),
            (
                "model.safetensors",
                [Quantization::None, Quantization::Fp8Cast],
            ),
        ] {
            let ckpt = Checkpoint::open(set.weights_path(file))?;
            for q in modes {
                for dtype in [DType::F32, DType::BF16] {
                    let predicted = ckpt
                        .resident_memory(q, dtype)
                        .map_err(anyhow::Error::msg)?
                        .remove(&Component::Transformer)
                        .context("no transformer")?;
                    let model = load(set, file, dtype, q)?;
                    assert_eq!(
                        predicted.bytes,
                        model.resident_bytes(),
                        "{set:?} {file} {q} {dtype:?}"
                    );
                }
            }
        }
        // Dense bf16 vs the FP8 file as stored: the quantized layers shrink to a byte per weight.
        let dense = load(set, "model.safetensors", DType::BF16, Quantization::None)?;
        let fp8 = load(
            set,
            "model_fp8.safetensors",
            DType::BF16,
            Quantization::None,
        )?;
        let linears = |m: &LtxModel| -> u64 {
            block_linears(m)
                .into_iter()
                .filter(|l| matches!(l, Linear::Fp8(_)))
                .map(|l| l.dims().0 as u64 * l.dims().1 as u64)
                .sum()
        };
        let quantized_weights = linears(&fp8);
        assert_eq!(
            dense.resident_bytes() - fp8.resident_bytes(),
            quantized_weights - 8 * fp8_layer_count(&fp8) as u64,
            "{set:?}: each FP8 weight saves one byte per element, less its two f32 scales"
        );
    }
    Ok(())
}

/// LTX-2.5's split transformer file (bias-free video feed-forwards, `ff_bias: false`) under
/// `fp8-cast`: every block q/k/v/out and feed-forward weight is cast, the video feed-forwards stay
/// bias-free and the audio ones keep their biases, and the header estimate is what the built DiT
/// holds. (No ltx-core 1.2.0 fp8-cast reference exists for the 2.5 set; the numerics are the
/// 2.0 / 2.3 ones above, same layers, same rounding.)
#[test]
fn fp8_cast_loads_the_2_5_split_transformer() -> Result<()> {
    let set = GoldenSet::Ltx25;
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(set.dir().join("manifest.json"))?)?;
    let rel = manifest["weights"]["transformer"]
        .as_str()
        .context("manifest.json has no weights.transformer")?;
    let ckpt = Checkpoint::open(set.dir().join(rel))?;
    for dtype in [DType::F32, DType::BF16] {
        let model = ckpt.load_transformer_quantized(dtype, &Device::Cpu, Quantization::Fp8Cast)?;
        let cast = block_linears(&model)
            .into_iter()
            .filter(|l| l.fp8_scales().is_some())
            .count();
        assert_eq!(cast, model.transformer_blocks.len() * (6 * 4 + 2 * 2));
        for b in &model.transformer_blocks {
            assert!(b.ff.proj_in.bias().is_none() && b.ff.proj_out.bias().is_none());
            assert!(b.audio_ff.proj_in.bias().is_some() && b.audio_ff.proj_out.bias().is_some());
            assert!(b.ff.proj_in.fp8_scales().is_some());
        }
        for q in [Quantization::None, Quantization::Fp8Cast] {
            let predicted = ckpt
                .resident_memory(q, dtype)
                .map_err(anyhow::Error::msg)?
                .remove(&Component::Transformer)
                .context("no transformer")?;
            let built = ckpt.load_transformer_quantized(dtype, &Device::Cpu, q)?;
            assert_eq!(predicted.bytes, built.resident_bytes(), "{q} {dtype:?}");
        }
    }
    Ok(())
}

fn fp8_layer_count(m: &LtxModel) -> usize {
    block_linears(m)
        .into_iter()
        .filter(|l| matches!(l, Linear::Fp8(_)))
        .count()
}

/// Modes a file cannot serve are refused before loading, naming the mode and the reason.
#[test]
fn unservable_modes_are_load_errors() -> Result<()> {
    let set = GoldenSet::Ltx2;
    let fp8 = Checkpoint::open(set.weights_path("model_fp8.safetensors"))?;
    let e = fp8
        .load_transformer_quantized(DType::F32, &Device::Cpu, Quantization::Fp8Cast)
        .unwrap_err();
    assert!(matches!(e, CheckpointError::Quantization { .. }), "{e}");
    assert!(e.to_string().contains("already FP8"), "{e}");
    let bf16 = Checkpoint::open(set.weights_path("model.safetensors"))?;
    let e = bf16
        .load_transformer_quantized(DType::F32, &Device::Cpu, Quantization::Fp8ScaledMm)
        .unwrap_err();
    assert!(e.to_string().contains("no FP8 layers"), "{e}");

    // An FP8 file without its activation scales: weight-only loads, scaled-mm names the keys.
    let dir = std::env::temp_dir().join(format!("ltx2-fp8-no-input-scale-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let path = dir.join("model_fp8.safetensors");
    let bytes = std::fs::read(set.weights_path("model_fp8.safetensors"))?;
    let st = safetensors::SafeTensors::deserialize(&bytes)?;
    let (_, header) = safetensors::SafeTensors::read_metadata(&bytes)?;
    let kept: Vec<(String, safetensors::tensor::TensorView)> = st
        .tensors()
        .into_iter()
        .filter(|(k, _)| !k.ends_with(".input_scale"))
        .collect();
    safetensors::serialize_to_file(kept, header.metadata().clone(), &path)?;
    let stripped = Checkpoint::open(&path)?;
    stripped.load_transformer_quantized(DType::F32, &Device::Cpu, Quantization::None)?;
    let e = stripped
        .load_transformer_quantized(DType::F32, &Device::Cpu, Quantization::Fp8ScaledMm)
        .unwrap_err();
    let msg = e.to_string();
    assert!(
        msg.contains("input_scale") && msg.contains("transformer_blocks.1."),
        "{msg}"
    );
    std::fs::remove_dir_all(dir)?;
    Ok(())
}

/// candle's e4m3 conversion (the `float8` crate) rounds like PyTorch's `float8_e4m3fn` cast: every
/// bf16 value fp8-cast can meet, and f32 values at and around every rounding boundary.
#[test]
fn e4m3_rounding_equals_pytorch() -> Result<()> {
    let g = Golden::load_from(&reference_dir(), "e4m3_rounding")?;
    for (input, expected) in [
        ("in.bf16", "out.bf16_e4m3_bits"),
        ("in.f32", "out.f32_e4m3_bits"),
    ] {
        let x = g.get(input)?;
        let ours = e4m3_bits(&ltx2_model::fp8::cast_to_e4m3(&x, input)?)?;
        let theirs = g.get(expected)?.to_vec1::<u8>()?;
        assert_eq!(ours.len(), theirs.len());
        let diff = ours.iter().zip(&theirs).filter(|(a, b)| a != b).count();
        assert_eq!(diff, 0, "{input}: {diff} of {} codes differ", ours.len());
    }
    Ok(())
}

/// Raw e4m3 codes of an `F8E4M3` tensor.
fn e4m3_bits(t: &Tensor) -> candle_core::Result<Vec<u8>> {
    Ok(t.flatten_all()?
        .to_vec1::<float8::F8E4M3>()?
        .iter()
        .map(|v| v.to_bits())
        .collect())
}
