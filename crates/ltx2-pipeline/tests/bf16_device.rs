//! The distilled denoising loop in bf16 stays near the same loop in f32 on the test device
//! (`LTX2_TEST_DEVICE`): catches dtype bugs in the pipeline glue (schedules, Euler updates,
//! conditioning state) that single-forward bf16 checks miss. Not a parity tolerance: bf16 keeps
//! ~3 significant digits. Measured on CPU: first-step x0 video 3.8e-2, audio 5.0e-2 (one forward,
//! plus the latent's own rounding: transformer_parity's single-forward smoke bound is 5e-2, so
//! 1e-1 here leaves room for other devices' accumulation order); after the 8 steps video 1.0e-1,
//! audio 8.9e-2, bounded at 2.5e-1. A wrong cast or a dtype-dependent branch lands at O(1). The VAE decode is left out (candle's CPU conv has no bf16).

use candle_core::{DType, Tensor};
use ltx2_model::golden::{config_json, test_device, weights_path, Golden};
use ltx2_pipeline::components::Models;
use ltx2_pipeline::denoise::{Contexts, StepEvent};
use ltx2_pipeline::guidance::Guidance;
use ltx2_pipeline::latents::VideoLatentShape;
use ltx2_pipeline::noise::SeededNoise;
use ltx2_pipeline::pipelines::{one_stage, RunSpec};
use ltx2_pipeline::schedule::DISTILLED_SIGMAS;
use ltx2_pipeline::GenError;

fn rel_l2(a: &Tensor, b: &Tensor) -> anyhow::Result<f64> {
    let (a, b) = (a.to_dtype(DType::F64)?, b.to_dtype(DType::F64)?);
    let num = (&a - &b)?.sqr()?.sum_all()?.to_scalar::<f64>()?.sqrt();
    let den = b.sqr()?.sum_all()?.to_scalar::<f64>()?.sqrt();
    Ok(num / den.max(1e-30))
}

/// `(first-step video x0, first-step audio x0, final video latent, final audio latent)`.
fn denoise(dtype: DType) -> anyhow::Result<[Tensor; 4]> {
    let d = test_device()?;
    let g = Golden::load("e2e_t2v")?;
    let m = Models::load(
        &weights_path("model.safetensors"),
        Some(&weights_path("upsampler.safetensors")),
        dtype,
        &d,
    )?;
    let vshape = VideoLatentShape::from_dims(g.get("out.video_latent")?.dims())?;
    let spec = RunSpec {
        width: vshape.width * 32,
        height: vshape.height * 32,
        num_frames: (vshape.frames - 1) * 8 + 1,
        fps: config_json("pipeline.json")?["video_pixel_shape"]["fps"]
            .as_f64()
            .unwrap_or(25.0) as f32,
        images: &[],
        audio: None,
        guiding_keyframes: false,
    };
    let ctx = Contexts {
        video: g.get_f32("in.video_context", &d)?.to_dtype(dtype)?,
        audio: g.get_f32("in.audio_context", &d)?.to_dtype(dtype)?,
    };
    let mut noise = SeededNoise::new(7);
    let mut first: Option<(Tensor, Tensor)> = None;
    let mut hook = |_: &str, e: &StepEvent<'_>| -> Result<(), GenError> {
        if first.is_none() {
            first = Some((e.video_denoised.clone(), e.audio_denoised.clone()));
        }
        Ok(())
    };
    let out = one_stage(
        &m,
        &spec,
        &DISTILLED_SIGMAS,
        &ctx,
        None,
        &Guidance::disabled(),
        &mut noise,
        &mut hook,
    )?;
    let (v0, a0) = first.ok_or_else(|| anyhow::anyhow!("the loop reported no step"))?;
    Ok([v0, a0, out.video_latent, out.audio_latent])
}

#[test]
fn bf16_denoise_loop_stays_near_f32() -> anyhow::Result<()> {
    let f32_run = denoise(DType::F32)?;
    let bf16_run = denoise(DType::BF16)?;
    assert_eq!(bf16_run[2].dtype(), DType::BF16);
    let names = [
        "step0 video x0",
        "step0 audio x0",
        "final video latent",
        "final audio latent",
    ];
    let bounds = [1e-1, 1e-1, 2.5e-1, 2.5e-1];
    let mut failures = vec![];
    for i in 0..4 {
        let e = rel_l2(&bf16_run[i], &f32_run[i])?;
        println!(
            "bf16 vs f32, {}: rel_l2 {e:.3e} (bound {:.1e})",
            names[i], bounds[i]
        );
        if e.is_nan() || e >= bounds[i] {
            failures.push(format!("{}: {e:.3e}", names[i]));
        }
    }
    anyhow::ensure!(failures.is_empty(), "bf16 drifted: {}", failures.join(", "));
    Ok(())
}
