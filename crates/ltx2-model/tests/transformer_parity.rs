//! Parity of the AV transformer with ltx-core 1.0.0 on the `transformer`, `transformer_masked` and
//! `transformer_fp8` goldens (weights from the golden checkpoints, config from their metadata).

use anyhow::{Context, Result};
use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use ltx2_model::checkpoint::read_config;
use ltx2_model::golden::{weights_path, Checks, Golden, Tolerance};
use ltx2_model::quantization::Quantization;
use ltx2_model::transformer::{to_denoised, LtxModel, Modality, Perturbations, TransformerConfig};

fn load_model(file: &str, dev: &Device) -> Result<LtxModel> {
    load_model_as(file, DType::F32, Quantization::None, dev)
}

fn load_model_as(
    file: &str,
    dtype: DType,
    quantization: Quantization,
    dev: &Device,
) -> Result<LtxModel> {
    let path = weights_path(file);
    let config = read_config(&path)?.context("checkpoint has no `config` metadata")?;
    let cfg = TransformerConfig::from_checkpoint_config(&config)?;
    let vb = unsafe { VarBuilder::from_mmaped_safetensors(&[&path], dtype, dev)? };
    Ok(LtxModel::new_quantized(
        &cfg,
        quantization,
        vb.pp("model.diffusion_model"),
    )?)
}

fn modality(g: &Golden, stream: &str, dev: &Device) -> Result<Modality> {
    let context_mask = if g.has("in.context_mask") {
        Some(g.get("in.context_mask")?)
    } else {
        None
    };
    Ok(Modality {
        latent: g.get_f32(&format!("in.{stream}.latent"), dev)?,
        timesteps: g.get_f32(&format!("in.{stream}.timesteps"), dev)?,
        positions: g.get_f32(&format!("in.{stream}.positions"), dev)?,
        context: g.get_f32(&format!("in.{stream}.context"), dev)?,
        context_mask,
        sigma: g.get_f32("in.sigma", dev)?,
        keyframes_mask: None,
        attention_mask: None,
    })
}

/// Debug intermediates: preprocessing of both streams and the per-block outputs.
fn check_intermediates(
    model: &LtxModel,
    v: &Modality,
    a: &Modality,
    prefix: &str,
    c: &mut Checks,
) -> Result<()> {
    let pv = model.prepare(&model.video, v, Some(a))?;
    let pa = model.prepare(&model.audio, a, Some(v))?;
    for (name, p) in [("video", &pv), ("audio", &pa)] {
        c.check_if_present(&format!("dbg.{name}.x_patchified"), &p.x)?;
        let projected = p.args.text.projected().context("projected text context")?;
        c.check_if_present(&format!("dbg.{name}.context_projected"), projected)?;
        c.check_if_present(&format!("dbg.{name}.adaln_timestep"), &p.args.timesteps)?;
        c.check_if_present(
            &format!("dbg.{name}.embedded_timestep"),
            &p.embedded_timestep,
        )?;
        c.check_if_present(&format!("dbg.{name}.rope_cos"), &p.args.pe.cos)?;
        c.check_if_present(&format!("dbg.{name}.rope_sin"), &p.args.pe.sin)?;
        let cross = p.args.cross_pe.as_ref().context("cross RoPE")?;
        c.check_if_present(&format!("dbg.{name}.cross_rope_cos"), &cross.cos)?;
        c.check_if_present(&format!("dbg.{name}.cross_rope_sin"), &cross.sin)?;
        let ss = p
            .args
            .cross_scale_shift_timestep
            .as_ref()
            .context("cross scale/shift")?;
        c.check_if_present(&format!("dbg.{name}.cross_scale_shift_timestep"), ss)?;
        let gate = p.args.cross_gate_timestep.as_ref().context("cross gate")?;
        c.check_if_present(&format!("dbg.{name}.cross_gate_timestep"), gate)?;
        if let Some(mask) = &p.args.context_mask {
            c.check_if_present(&format!("dbg.{name}.context_mask_additive"), mask)?;
        }
    }
    let (mut vx, mut ax) = (pv.x.clone(), pa.x.clone());
    for (i, block) in model.transformer_blocks.iter().enumerate() {
        let (v, a) = block.forward(
            Some((&vx, &pv.args)),
            Some((&ax, &pa.args)),
            &Perturbations::none(),
        )?;
        (vx, ax) = (v.context("video out")?, a.context("audio out")?);
        c.check_if_present(&format!("dbg.{prefix}block{i}.video_out"), &vx)?;
        c.check_if_present(&format!("dbg.{prefix}block{i}.audio_out"), &ax)?;
    }
    Ok(())
}

/// Runs the joint forward on `inputs`' `in.*` and checks `outputs`' `out.{prefix}*` (and dbg.*).
fn run(weights: &str, inputs: &str, outputs: &str, prefix: &str) -> Result<()> {
    run_q(weights, Quantization::None, inputs, outputs, prefix)
}

/// [`run`] with the DiT loaded under `quantization`.
fn run_q(
    weights: &str,
    quantization: Quantization,
    inputs: &str,
    outputs: &str,
    prefix: &str,
) -> Result<()> {
    let dev = ltx2_model::golden::test_device().expect("LTX2_TEST_DEVICE");
    let model = load_model_as(weights, DType::F32, quantization, &dev)?;
    let gi = Golden::load(inputs)?;
    let go = Golden::load(outputs)?;
    let (v, a) = (modality(&gi, "video", &dev)?, modality(&gi, "audio", &dev)?);
    let mut c = Checks::new(&go);
    check_intermediates(&model, &v, &a, prefix, &mut c)?;
    let (vel_v, vel_a) = model.forward(&v, &a, &Perturbations::none())?;
    c.check(&format!("out.{prefix}video.velocity"), &vel_v)?;
    c.check(&format!("out.{prefix}audio.velocity"), &vel_a)?;
    c.check(
        &format!("out.{prefix}video.denoised"),
        &to_denoised(&v.latent, &vel_v, &v.timesteps)?,
    )?;
    c.check(
        &format!("out.{prefix}audio.denoised"),
        &to_denoised(&a.latent, &vel_a, &a.timesteps)?,
    )?;
    Ok(c.finish(&[&format!("out.{prefix}"), &format!("dbg.{prefix}")])?)
}

#[test]
fn transformer_matches_ltx_core() -> Result<()> {
    run("model.safetensors", "transformer", "transformer", "")
}

#[test]
fn transformer_with_text_mask_matches_ltx_core() -> Result<()> {
    run(
        "model.safetensors",
        "transformer_masked",
        "transformer_masked",
        "",
    )
}

/// The FP8 file as stored (FP8 weights resident, dequantized per layer): ltx-core's weight-only
/// product.
#[test]
fn transformer_fp8_weight_only_matches_ltx_core() -> Result<()> {
    run(
        "model_fp8.safetensors",
        "transformer",
        "transformer_fp8",
        "weight_only.",
    )
}

/// `--quantization fp8-scaled-mm`: activations quantized with each layer's `input_scale`, FP8 x
/// FP8 product (emulated exactly on the CPU) — ltx-core's `FP8Linear`.
#[test]
fn transformer_fp8_scaled_mm_matches_ltx_core() -> Result<()> {
    run_q(
        "model_fp8.safetensors",
        Quantization::Fp8ScaledMm,
        "transformer",
        "transformer_fp8",
        "scaled_mm.",
    )
}

/// `‖a − b‖ / ‖b‖`.
fn rel_l2(a: &Tensor, b: &Tensor) -> Result<f64> {
    let sq = |t: &Tensor| -> Result<f64> {
        Ok(t.to_dtype(DType::F64)?
            .sqr()?
            .sum_all()?
            .to_scalar::<f64>()?)
    };
    Ok((sq(&(a - b)?)? / sq(b)?.max(f64::MIN_POSITIVE)).sqrt())
}

/// The forward on text precomputed once ([`LtxModel::prepare_text`], what the sampler reuses in
/// every step) equals the plain forward, and so still matches ltx-core.
fn precomputed_text_equals_plain_forward(golden: &str) -> Result<()> {
    let dev = ltx2_model::golden::test_device().expect("LTX2_TEST_DEVICE");
    let model = load_model("model.safetensors", &dev)?;
    let g = Golden::load(golden)?;
    let (v, a) = (modality(&g, "video", &dev)?, modality(&g, "audio", &dev)?);
    let text = model.prepare_text(
        &v.context,
        v.context_mask.as_ref(),
        &a.context,
        a.context_mask.as_ref(),
    )?;
    assert_eq!(text.video.kv.len(), model.transformer_blocks.len());
    let (plain_v, plain_a) = model.forward(&v, &a, &Perturbations::none())?;
    let (text_v, text_a) = model.forward_with_text(&v, &a, &Perturbations::none(), &text)?;
    let (ev, ea) = (rel_l2(&text_v, &plain_v)?, rel_l2(&text_a, &plain_a)?);
    println!("{golden}: precomputed text vs plain forward rel_l2 video={ev:.3e} audio={ea:.3e}");
    assert!(ev <= 1e-6 && ea <= 1e-6, "video {ev}, audio {ea}");
    let mut c = Checks::new(&g);
    c.check("out.video.velocity", &text_v)?;
    c.check("out.audio.velocity", &text_a)?;
    // Perturbed passes reuse the same text.
    let (stg_v, _) = model.forward(&v, &a, &Perturbations::stg(&[0]))?;
    let (stg_text_v, _) = model.forward_with_text(&v, &a, &Perturbations::stg(&[0]), &text)?;
    let es = rel_l2(&stg_text_v, &stg_v)?;
    println!("{golden}: precomputed text vs plain STG forward rel_l2 video={es:.3e}");
    assert!(es <= 1e-6, "stg {es}");
    Ok(c.finish(&[])?)
}

#[test]
fn precomputed_text_equals_plain_forward_unmasked() -> Result<()> {
    precomputed_text_equals_plain_forward("transformer")
}

#[test]
fn precomputed_text_equals_plain_forward_masked() -> Result<()> {
    precomputed_text_equals_plain_forward("transformer_masked")
}

fn max_abs_diff(a: &Tensor, b: &Tensor) -> Result<f32> {
    Ok((a - b)?.abs()?.flatten_all()?.max(0)?.to_scalar::<f32>()?)
}

/// An isolated modality (both A↔V attentions skipped everywhere) is the same as running that
/// modality alone.
#[test]
fn isolated_modalities_equal_single_stream_forwards() -> Result<()> {
    let dev = ltx2_model::golden::test_device().expect("LTX2_TEST_DEVICE");
    let model = load_model("model.safetensors", &dev)?;
    let g = Golden::load("transformer")?;
    let (v, a) = (modality(&g, "video", &dev)?, modality(&g, "audio", &dev)?);
    let (iso_v, iso_a) = model.forward(&v, &a, &Perturbations::isolated())?;
    let (alone_v, _) = model.forward_streams(Some(&v), None, &Perturbations::none())?;
    let (_, alone_a) = model.forward_streams(None, Some(&a), &Perturbations::none())?;
    assert!(max_abs_diff(&iso_v, &alone_v.context("video")?)? < 1e-6);
    assert!(max_abs_diff(&iso_a, &alone_a.context("audio")?)? < 1e-6);
    // And the cross-attentions do matter in the joint forward.
    let (joint_v, _) = model.forward(&v, &a, &Perturbations::none())?;
    assert!(max_abs_diff(&iso_v, &joint_v)? > 1e-4);
    Ok(())
}

/// STG in one block changes both streams' outputs (the perturbed self-attention is replaced by its
/// value projection) and leaves unlisted blocks alone.
#[test]
fn stg_perturbs_only_the_listed_blocks() -> Result<()> {
    let dev = ltx2_model::golden::test_device().expect("LTX2_TEST_DEVICE");
    let model = load_model("model.safetensors", &dev)?;
    let g = Golden::load("transformer")?;
    let (v, a) = (modality(&g, "video", &dev)?, modality(&g, "audio", &dev)?);
    let (base_v, base_a) = model.forward(&v, &a, &Perturbations::none())?;
    let (stg_v, stg_a) = model.forward(&v, &a, &Perturbations::stg(&[0]))?;
    assert!(max_abs_diff(&base_v, &stg_v)? > 1e-4);
    assert!(max_abs_diff(&base_a, &stg_a)? > 1e-4);
    let beyond = model.transformer_blocks.len();
    let (far_v, far_a) = model.forward(&v, &a, &Perturbations::stg(&[beyond]))?;
    assert_eq!(max_abs_diff(&base_v, &far_v)?, 0.0);
    assert_eq!(max_abs_diff(&base_a, &far_a)?, 0.0);
    Ok(())
}

/// The model is dtype-generic: a bf16 build runs and lands near the f32 reference (bf16 rounding
/// only; this is a smoke bound, not a parity tolerance).
#[test]
fn bf16_model_runs_close_to_the_reference() -> Result<()> {
    let dev = ltx2_model::golden::test_device().expect("LTX2_TEST_DEVICE");
    let model = load_model_as("model.safetensors", DType::BF16, Quantization::None, &dev)?;
    let g = Golden::load("transformer")?;
    let (v, a) = (modality(&g, "video", &dev)?, modality(&g, "audio", &dev)?);
    let (vel_v, vel_a) = model.forward(&v, &a, &Perturbations::none())?;
    assert_eq!(vel_v.dtype(), DType::BF16);
    let bound = Tolerance::RelL2(5e-2);
    // Printed so a GPU run records the bf16 error of its fast paths, not only the pass.
    for (key, vel) in [
        ("out.video.velocity", &vel_v),
        ("out.audio.velocity", &vel_a),
    ] {
        let report = g.compare_with(key, &vel.to_dtype(DType::F32)?, bound)?;
        println!("bf16 on {dev:?}: {report}");
        assert!(report.passed, "{report}");
    }
    Ok(())
}
