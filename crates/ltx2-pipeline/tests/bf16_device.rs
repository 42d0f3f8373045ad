//! The distilled denoising loop in bf16 stays near the same loop in f32 on the test device
//! (`LTX2_TEST_DEVICE`): catches dtype bugs in the pipeline glue (schedules, Euler updates,
//! conditioning state) that single-forward bf16 checks miss. Not a parity tolerance: bf16 rounding
//! accumulates over the steps. The VAE decode is left out because candle's CPU conv has no bf16.

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

fn denoise(dtype: DType) -> anyhow::Result<(Tensor, Tensor)> {
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
    };
    let ctx = Contexts {
        video: g.get_f32("in.video_context", &d)?.to_dtype(dtype)?,
        audio: g.get_f32("in.audio_context", &d)?.to_dtype(dtype)?,
    };
    let mut noise = SeededNoise::new(7);
    let mut hook = |_: &str, _: &StepEvent<'_>| -> Result<(), GenError> { Ok(()) };
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
    Ok((out.video_latent, out.audio_latent))
}

#[test]
fn bf16_denoise_loop_stays_near_f32() -> anyhow::Result<()> {
    let (v32, a32) = denoise(DType::F32)?;
    let (v16, a16) = denoise(DType::BF16)?;
    assert_eq!(v16.dtype(), DType::BF16);
    let (ev, ea) = (rel_l2(&v16, &v32)?, rel_l2(&a16, &a32)?);
    println!("bf16 vs f32 after the distilled loop: video rel_l2 {ev:.3e}, audio rel_l2 {ea:.3e}");
    anyhow::ensure!(ev < 1e-2 && ea < 1e-2, "bf16 drifted: video {ev:.3e}, audio {ea:.3e}");
    Ok(())
}
