//! ltx-pipelines 1.0.0 `TI2VidTwoStagesPipeline` (the official dev recipe) end to end against
//! `testdata/golden-pipelines/<layout>/e2e_dev_two_stage` (`$LTX2_GOLDEN_PIPELINES_DIR` for another
//! set): stage 1 at half size with the dev scheduler and full guidance on the checkpoint with a
//! user LoRA, x2 upsample, stage 2 with the distilled LoRA fused on top (switched in place on the
//! loaded model), decode. Recorded noise and contexts; every `out.*` checked, both layouts.

mod common;

use anyhow::Context;
use candle_core::Device;
use common::{guidance, noise, Ledger, TWO_STAGE_NOISE};
use ltx2_model::golden::{
    pipelines_dir, pipelines_weights_dir as weights_dir, Checks, Golden, Tolerance,
};
use ltx2_pipeline::denoise::Contexts;
use ltx2_pipeline::latents::VideoLatentShape;
use ltx2_pipeline::pipelines::{dev_two_stage, RunSpec};
use ltx2_pipeline::schedule::{Ltx2Scheduler, STAGE2_DISTILLED_SIGMAS};

fn run(layout: &str) -> anyhow::Result<()> {
    let dir = pipelines_dir();
    let g = Golden::load_from(&dir.join(layout), "e2e_dev_two_stage")?;
    let params = g.info().context("info")?["params"].clone();
    let weights = weights_dir(&dir, layout)?;
    let d = Device::Cpu;
    let mut ledger = Ledger::load(&dir, &weights)?;
    ledger.switch(&params["loras_stage1"])?;

    let steps = params["num_inference_steps"].as_u64().context("steps")? as usize;
    let sigmas = Ltx2Scheduler::default().sigmas(steps, None);
    let mut c = Checks::new(&g);
    c.check_with(
        "in.sigmas.stage1",
        &common::sigmas(&sigmas)?,
        Tolerance::MaxAbs(1e-6),
    )?;
    c.check_with(
        "in.sigmas.stage2",
        &common::sigmas(&STAGE2_DISTILLED_SIGMAS)?,
        Tolerance::MaxAbs(0.0),
    )?;
    let guidance = guidance(&params)?;
    let vshape = VideoLatentShape::from_dims(g.get("out.video_latent")?.dims())?;
    let spec = RunSpec {
        width: vshape.width * 32,
        height: vshape.height * 32,
        num_frames: (vshape.frames - 1) * 8 + 1,
        fps: params["fps"].as_f64().context("fps")? as f32,
        images: &[],
        audio: None,
        guiding_keyframes: false,
    };
    let ctx = |p: &str| -> anyhow::Result<Contexts> {
        Ok(Contexts {
            video: g.get_f32(&format!("in.{p}video_context"), &d)?,
            audio: g.get_f32(&format!("in.{p}audio_context"), &d)?,
        })
    };
    let mut noise = noise(&g, &TWO_STAGE_NOISE, &d)?;
    let (m, mut before_stage2) = ledger.with_stage2(&params["loras_stage2"])?;
    let mut hook = |_: &str, _: &ltx2_pipeline::denoise::StepEvent<'_>| Ok(());
    let out = dev_two_stage(
        m,
        &spec,
        &sigmas,
        &ctx("")?,
        Some(&ctx("neg_")?),
        &guidance,
        &mut noise,
        &mut before_stage2,
        &mut hook,
    )?;
    c.check("out.stage1.video_latent", &out.stage1.video_latent)?;
    c.check("out.stage1.audio_latent", &out.stage1.audio_latent)?;
    c.check("out.upscaled_video_latent", &out.upscaled_video_latent)?;
    c.check("out.video_latent", &out.stage2.video_latent)?;
    c.check("out.audio_latent", &out.stage2.audio_latent)?;
    drop(before_stage2);
    c.check(
        "out.waveform",
        &ledger.models.decode_audio(&out.stage2.audio_latent)?,
    )?;
    Ok(c.finish(&["out."])?)
}

#[test]
fn dev_two_stage_matches_ltx_pipelines_ltx2() -> anyhow::Result<()> {
    run("2.0")
}

#[test]
fn dev_two_stage_matches_ltx_pipelines_ltx23() -> anyhow::Result<()> {
    run("2.3")
}
