//! ltx-pipelines 1.0.0 `RetakePipeline` (dev, guided) end to end against
//! `testdata/golden-pipelines/<layout>/e2e_retake` (`$LTX2_GOLDEN_PIPELINES_DIR` for another set):
//! the clip's frames and waveform encoded into the initial latents, the temporal region masks
//! for regenerating the video only, the audio only, and both, one guided stage, decode. Recorded
//! noise and contexts; both layouts.

mod common;

use anyhow::Context;
use candle_core::{DType, Device, Tensor};
use ltx2_model::golden::{
    pipelines_dir, pipelines_weights_dir as weights_dir, Checks, Golden, Tolerance,
};
use ltx2_pipeline::components::Models;
use ltx2_pipeline::denoise::Contexts;
use ltx2_pipeline::pipelines::retake::{retake, RetakeSpec};
use ltx2_pipeline::preprocess::rgb_from_hwc;
use ltx2_pipeline::schedule::Ltx2Scheduler;
use ltx2_pipeline::AudioClip;

fn run(layout: &str) -> anyhow::Result<()> {
    let dir = pipelines_dir();
    let g = Golden::load_from(&dir.join(layout), "e2e_retake")?;
    let params = g.info().context("info")?["params"].clone();
    let weights = weights_dir(&dir, layout)?;
    let d = Device::Cpu;
    let m = Models::load(&weights.join("model.safetensors"), None, DType::F32, &d)?;
    let steps = params["num_inference_steps"].as_u64().context("steps")? as usize;
    let sigmas = Ltx2Scheduler::default().sigmas(steps, None);
    let mut c = Checks::new(&g);
    c.check_with(
        "in.sigmas.stage1",
        &Tensor::new(sigmas.as_slice(), &d)?,
        Tolerance::MaxAbs(1e-6),
    )?;
    let guidance = common::guidance(&params)?;
    let clip_u8 = g.get("in.clip.frames")?;
    let frames = (0..clip_u8.dim(0)?)
        .map(|i| rgb_from_hwc(&clip_u8.get(i)?))
        .collect::<candle_core::Result<Vec<_>>>()?;
    let wave = g.get_f32("in.clip.waveform", &d)?;
    let audio = AudioClip {
        sample_rate: params["clip"]["sample_rate"]
            .as_u64()
            .context("sample_rate")? as u32,
        channels: (0..wave.dim(0)?)
            .map(|i| wave.get(i)?.to_vec1::<f32>())
            .collect::<candle_core::Result<_>>()?,
    };
    let fps = params["fps"].as_f64().context("fps")? as f32;
    let span = (
        params["start_time"].as_f64().context("start_time")?,
        params["end_time"].as_f64().context("end_time")?,
    );
    let ctx = |p: &str| -> anyhow::Result<Contexts> {
        Ok(Contexts {
            video: g.get_f32(&format!("in.{p}video_context"), &d)?,
            audio: g.get_f32(&format!("in.{p}audio_context"), &d)?,
        })
    };
    let (h, w) = (clip_u8.dim(1)?, clip_u8.dim(2)?);
    for variant in ["regen_video", "regen_audio", "regen_both"] {
        let v = &params["variants"][variant];
        let spec = RetakeSpec {
            frames: &frames,
            width: w,
            height: h,
            fps,
            audio: Some(&audio),
            video_span: v["regenerate_video"]
                .as_bool()
                .unwrap_or(false)
                .then_some(span),
            audio_span: v["regenerate_audio"]
                .as_bool()
                .unwrap_or(false)
                .then_some(span),
        };
        let mut noise = common::noise(&g, &["video", "audio"], &d)?;
        let mut hook = |_: &str, _: &ltx2_pipeline::denoise::StepEvent<'_>| Ok(());
        let out = retake(
            &m,
            &spec,
            &sigmas,
            &ctx("")?,
            Some(&ctx("neg_")?),
            &guidance,
            &mut noise,
            &mut hook,
        )?;
        if variant == "regen_video" {
            c.check_with(
                "dbg.clip_video_latent",
                &out.clip_video_latent,
                Tolerance::RelL2(1e-5),
            )?;
            c.check_with(
                "dbg.clip_audio_latent",
                out.clip_audio_latent.as_ref().context("audio latent")?,
                Tolerance::RelL2(1e-5),
            )?;
        }
        c.check(
            &format!("out.{variant}.video_denoise_mask"),
            &out.video_mask,
        )?;
        c.check(
            &format!("out.{variant}.audio_denoise_mask"),
            &out.audio_mask,
        )?;
        c.check(
            &format!("out.{variant}.video_latent"),
            &out.latents.video_latent,
        )?;
        c.check(
            &format!("out.{variant}.audio_latent"),
            &out.latents.audio_latent,
        )?;
        c.check(
            &format!("out.{variant}.waveform"),
            &m.decode_audio(&out.latents.audio_latent)?,
        )?;
    }
    Ok(c.finish(&["out."])?)
}

#[test]
fn retake_matches_ltx_pipelines_ltx2() -> anyhow::Result<()> {
    run("2.0")
}

#[test]
fn retake_matches_ltx_pipelines_ltx23() -> anyhow::Result<()> {
    run("2.3")
}
