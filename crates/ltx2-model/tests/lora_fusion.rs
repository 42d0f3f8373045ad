//! LoRA fusion against ltx-core 1.0.0 (`testdata/golden-pipelines/<layout>/lora_fusion`, made by
//! scripts/golden/make.sh; `$LTX2_GOLDEN_PIPELINES_DIR` for another set): one transformer forward
//! with no LoRA, one LoRA, a stack of two (one of them float32 with alpha entries, which ltx-core
//! ignores) and one LoRA fused into the FP8 checkpoint (re-quantized per tensor), in the LTX-2
//! and LTX-2.3 layouts (2.3 LoRAs adapt `to_gate_logits` and the prompt AdaLN too). Also checks
//! the fused weights the golden recorded, and that a LoRA that does not fit is refused by name.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result};
use candle_core::{DType, Device, Tensor};
use ltx2_model::checkpoint::Checkpoint;
use ltx2_model::golden::{
    pipelines_dir, pipelines_lora_stack, pipelines_weights_dir, Checks, Golden, Tolerance,
};
use ltx2_model::lora::{LoraBackend, LoraError, LoraFile, LoraStack};
use ltx2_model::quantization::Quantization;
use ltx2_model::transformer::{to_denoised, Modality, Perturbations};

fn weights_dir(dir: &Path, layout: &str) -> Result<PathBuf> {
    Ok(pipelines_weights_dir(dir, layout)?)
}

fn stack(dir: &Path, spec: &serde_json::Value) -> Result<LoraStack> {
    Ok(pipelines_lora_stack(dir, spec)?)
}

fn modality(g: &Golden, stream: &str) -> Result<Modality> {
    let dev = Device::Cpu;
    let f = |k: &str| -> Result<Tensor> { Ok(g.get_f32(&format!("in.{stream}.{k}"), &dev)?) };
    let sigma = g.get_f32("in.sigma", &dev)?;
    Ok(Modality {
        latent: f("latent")?,
        timesteps: f("denoise_mask")?.broadcast_mul(&sigma)?,
        positions: f("positions")?,
        context: f("context")?,
        context_mask: None,
        sigma,
        keyframes_mask: None,
        attention_mask: None,
    })
}

#[test]
fn lora_fusion_matches_ltx_core() -> Result<()> {
    let dir = pipelines_dir();
    for layout in ["2.0", "2.3"] {
        let g = Golden::load_from(&dir.join(layout), "lora_fusion")?;
        let info = g.info().context("info")?;
        let params = &info["params"];
        let weights = weights_dir(&dir, layout)?;
        let mut c = Checks::new(&g);
        for case in ["base", "one", "stack", "fp8"] {
            let loras = stack(&dir, &params["loras"][case])?;
            let file = if case == "fp8" {
                "model_fp8.safetensors"
            } else {
                "model.safetensors"
            };
            let ckpt = Checkpoint::open(weights.join(file))?;
            let model = ckpt
                .load_transformer_with_loras(DType::F32, &Device::Cpu, Quantization::None, &loras)
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            let (v, a) = (modality(&g, "video")?, modality(&g, "audio")?);
            let (vv, va) = model.forward(&v, &a, &Perturbations::none())?;
            c.check(&format!("out.{case}.video.velocity"), &vv)?;
            c.check(&format!("out.{case}.audio.velocity"), &va)?;
            c.check(
                &format!("out.{case}.video.denoised"),
                &to_denoised(&v.latent, &vv, &v.timesteps)?,
            )?;
            c.check(
                &format!("out.{case}.audio.denoised"),
                &to_denoised(&a.latent, &va, &a.timesteps)?,
            )?;

            // The fused weights ltx-core's state dict held.
            let prefix = format!("dbg.{case}.fused.");
            let keys = g.keys_with_prefix(&prefix);
            if keys.is_empty() {
                continue;
            }
            // SAFETY: read-only map of a test file.
            let st = unsafe { candle_core::safetensors::MmapedSafetensors::new(ckpt.path()) }?;
            let backend = LoraBackend::new(st, loras.clone())?;
            for key in keys {
                let name = format!("model.diffusion_model.{}", &key[prefix.len()..]);
                let ours = backend.tensor(&name)?;
                let reference = g.get(&key)?;
                if reference.dtype() == DType::F8E4M3 {
                    // Fused FP8 codes: ltx-core keeps them transposed for cuBLAS.
                    let same = |t: &Tensor| -> Result<bool> {
                        Ok(t.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?
                            == reference
                                .to_dtype(DType::F32)?
                                .flatten_all()?
                                .to_vec1::<f32>()?)
                    };
                    let ok = same(&ours)? || same(&ours.t()?.contiguous()?)?;
                    println!(
                        "lora {layout} {key}: FP8 codes {}",
                        if ok { "bitwise equal" } else { "DIFFER" }
                    );
                    if ok {
                        c.covered(&key);
                    } else {
                        c.fail(format!("{layout} {key}: fused FP8 codes differ"));
                    }
                } else {
                    c.check_with(&key, &ours.to_dtype(DType::F32)?, Tolerance::RelL2(1e-6))?;
                }
            }
        }
        c.finish(&["out.", "dbg."])?;
    }
    Ok(())
}

/// A set switched on a loaded model (`apply_in_place`, then restore, then another set) gives the
/// outputs of the model loaded with that set: what a server does between requests.
#[test]
fn lora_sets_switch_in_place() -> Result<()> {
    let dir = pipelines_dir();
    for layout in ["2.0", "2.3"] {
        let g = Golden::load_from(&dir.join(layout), "lora_fusion")?;
        let params = g.info().context("info")?["params"].clone();
        let weights = weights_dir(&dir, layout)?;
        for (file, cases) in [
            ("model.safetensors", vec!["one", "base", "stack", "one"]),
            ("model_fp8.safetensors", vec!["fp8"]),
        ] {
            let path = weights.join(file);
            let mut model = Checkpoint::open(&path)?.load_transformer_quantized(
                DType::F32,
                &Device::Cpu,
                Quantization::None,
            )?;
            let mut applied = ltx2_model::lora::AppliedLoras::default();
            let mut c = Checks::new(&g);
            for case in cases {
                applied.restore(&mut model);
                let loras = stack(&dir, &params["loras"][case])?;
                applied = ltx2_model::lora::apply_in_place(
                    &mut model,
                    &path,
                    &loras,
                    Quantization::None,
                    DType::F32,
                    &Device::Cpu,
                )?;
                let (v, a) = (modality(&g, "video")?, modality(&g, "audio")?);
                let (vv, va) = model.forward(&v, &a, &Perturbations::none())?;
                println!(
                    "{layout} {file} {case}: {} layers swapped",
                    applied.layers()
                );
                c.check(&format!("out.{case}.video.velocity"), &vv)?;
                c.check(&format!("out.{case}.audio.velocity"), &va)?;
            }
            c.finish(&[])?;
        }
    }
    Ok(())
}

fn write_lora(path: &Path, tensors: &[(&str, &[usize])]) -> Result<()> {
    let map: std::collections::HashMap<String, Tensor> = tensors
        .iter()
        .map(|(k, shape)| {
            Ok((
                k.to_string(),
                Tensor::zeros(*shape, DType::BF16, &Device::Cpu)?,
            ))
        })
        .collect::<Result<_>>()?;
    candle_core::safetensors::save(&map, path)?;
    Ok(())
}

fn refusal(lora: &Path, checkpoint: &Path) -> Result<String> {
    let mut s = LoraStack::default();
    s.entries.push((Arc::new(LoraFile::open(lora, "x")?), 1.0));
    // SAFETY: read-only map of a test file.
    let st = unsafe { candle_core::safetensors::MmapedSafetensors::new(checkpoint) }?;
    match LoraBackend::new(st, s) {
        Err(e @ (LoraError::Shapes { .. } | LoraError::NoMatch { .. })) => Ok(e.to_string()),
        Err(e) => anyhow::bail!("unexpected error {e}"),
        Ok(_) => anyhow::bail!("{} accepted on {}", lora.display(), checkpoint.display()),
    }
}

#[test]
fn lora_that_does_not_fit_is_refused_by_name() -> Result<()> {
    let dir = pipelines_dir();
    let ckpt20 = weights_dir(&dir, "2.0")?.join("model.safetensors");
    // A 2.3 LoRA adapts to_gate_logits and the prompt AdaLN, which the 2.0 model does not have.
    let m = refusal(&dir.join("loras/2.3-a.safetensors"), &ckpt20)?;
    println!("{m}");
    assert!(
        m.contains("2.3-a.safetensors") && m.contains("to_gate_logits: no such weight"),
        "{m}"
    );

    let tmp = std::env::temp_dir().join(format!("ltx2-lora-test-{}", std::process::id()));
    std::fs::create_dir_all(&tmp)?;
    // Wrong shapes: the tiny model's to_q is 64x64.
    let wrong = tmp.join("wrong.safetensors");
    write_lora(
        &wrong,
        &[
            (
                "diffusion_model.transformer_blocks.0.attn1.to_q.lora_A.weight",
                &[4, 48],
            ),
            (
                "diffusion_model.transformer_blocks.0.attn1.to_q.lora_B.weight",
                &[64, 4],
            ),
        ],
    )?;
    let m = refusal(&wrong, &ckpt20)?;
    println!("{m}");
    assert!(
        m.contains("wrong.safetensors") && m.contains("transformer_blocks.0.attn1.to_q"),
        "{m}"
    );
    // Keys of another model entirely, and a text connector (ltx-core never adapts those).
    let other = tmp.join("other.safetensors");
    write_lora(
        &other,
        &[
            ("diffusion_model.unet.down.0.lora_A.weight", &[4, 8]),
            ("diffusion_model.unet.down.0.lora_B.weight", &[8, 4]),
        ],
    )?;
    let m = refusal(&other, &ckpt20)?;
    println!("{m}");
    assert!(
        m.contains("matches no weight") && m.contains("unet.down.0"),
        "{m}"
    );
    // Not a LoRA at all: a half pair.
    let half = tmp.join("half.safetensors");
    write_lora(
        &half,
        &[("diffusion_model.proj_out.lora_A.weight", &[4, 64])],
    )?;
    let e = LoraFile::open(&half, "half").unwrap_err().to_string();
    assert!(
        e.contains("proj_out has only one of lora_A / lora_B"),
        "{e}"
    );
    std::fs::remove_dir_all(&tmp)?;
    Ok(())
}
