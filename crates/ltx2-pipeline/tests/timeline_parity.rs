//! ltx-pipelines 1.0.0 `KeyframeInterpolationPipeline` and `A2VidPipelineTwoStage` end to end
//! against `testdata/golden-pipelines/<layout>/e2e_{keyframes,a2v_two_stage}`
//! (`$LTX2_GOLDEN_PIPELINES_DIR` for another set). Both are the dev two-stage recipe (guided
//! half-size stage 1, x2 upsample, stage 2 with the distilled LoRA) with other conditioning:
//! keyframes — every image, frame 0 included, appended as guiding keyframe tokens at each stage's
//! size (frames that are not multiples of 8 included); A2V — the WAV decoded from its start time
//! for the clip's length, encoded, and frozen (mask 0, never noised) while only the video is
//! denoised, the audio guider off; the returned waveform is the input segment. Recorded noise
//! and contexts; the stage states, every `out.*`, both layouts.

mod common;

use anyhow::Context;
use candle_core::{Device, Tensor};
use common::{guidance, noise, Ledger, TWO_STAGE_NOISE};
use ltx2_model::golden::{
    pipelines_dir, pipelines_weights_dir as weights_dir, Checks, Golden, Tolerance,
};
use ltx2_pipeline::components::ConditionImage;
use ltx2_pipeline::denoise::Contexts;
use ltx2_pipeline::latents::{AudioLatentShape, VideoLatentShape};
use ltx2_pipeline::media::audio::{decode_audio, trim_clip};
use ltx2_pipeline::pipelines::{dev_two_stage, AudioInput, ImageInput, RunSpec};
use ltx2_pipeline::preprocess::rgb_from_hwc;
use ltx2_pipeline::schedule::Ltx2Scheduler;

enum Flow {
    Keyframes,
    AudioToVideo,
}

fn run(layout: &str, flow: Flow) -> anyhow::Result<()> {
    let name = match flow {
        Flow::Keyframes => "e2e_keyframes",
        Flow::AudioToVideo => "e2e_a2v_two_stage",
    };
    let dir = pipelines_dir();
    let g = Golden::load_from(&dir.join(layout), name)?;
    let params = g.info().context("info")?["params"].clone();
    let weights = weights_dir(&dir, layout)?;
    let d = Device::Cpu;
    let mut ledger = Ledger::load(&dir, &weights)?;
    ledger.switch(&params["loras_stage1"])?;
    let m = &ledger.models;
    let steps = params["num_inference_steps"].as_u64().context("steps")? as usize;
    let sigmas = Ltx2Scheduler::default().sigmas(steps, None);
    let mut c = Checks::new(&g);
    c.check_with(
        "in.sigmas.stage1",
        &common::sigmas(&sigmas)?,
        Tolerance::MaxAbs(1e-6),
    )?;
    let guidance = guidance(&params)?;
    let f = |k: &str| params[k].as_f64().with_context(|| k.to_string());
    let (height, width) = (f("height")? as usize, f("width")? as usize);
    let num_frames = f("frames")? as usize;
    let fps = f("fps")? as f32;

    let images: Vec<ImageInput> = match flow {
        Flow::Keyframes => params["keyframes"]
            .as_array()
            .context("keyframes")?
            .iter()
            .map(|k| -> anyhow::Result<ImageInput> {
                let key = k["image"].as_str().context("image")?;
                Ok(ImageInput {
                    image: ConditionImage::Rgb(rgb_from_hwc(&g.get(key)?)?),
                    frame_index: k["frame_idx"].as_u64().context("frame_idx")? as usize,
                    strength: k["strength"].as_f64().context("strength")? as f32,
                })
            })
            .collect::<anyhow::Result<_>>()?,
        Flow::AudioToVideo => vec![],
    };
    let audio = match flow {
        Flow::Keyframes => None,
        Flow::AudioToVideo => {
            let wav = g.get("in.audio_file")?.to_vec1::<u8>()?;
            let clip = decode_audio(&wav)?;
            let segment = trim_clip(
                &clip,
                f("audio_start_time")?,
                Some(f("audio_max_duration")?),
            );
            let channels = segment
                .channels
                .iter()
                .map(|ch| Tensor::new(ch.as_slice(), &d))
                .collect::<candle_core::Result<Vec<_>>>()?;
            // The pipeline returns the input segment as its audio.
            c.check("out.waveform", &Tensor::stack(&channels, 0)?)?;
            let frames = AudioLatentShape::from_video(num_frames, fps as f64).frames;
            let latent = m.encode_audio(&segment, frames)?;
            c.check_with(
                "dbg.stage1.audio.clean_latent",
                &ltx2_pipeline::latents::patchify_audio(&latent)?,
                Tolerance::RelL2(1e-5),
            )?;
            Some(AudioInput {
                latent,
                strength: 1.0,
            })
        }
    };
    let spec = RunSpec {
        width,
        height,
        num_frames,
        fps,
        images: &images,
        audio: audio.as_ref(),
        guiding_keyframes: matches!(flow, Flow::Keyframes),
    };
    anyhow::ensure!(
        VideoLatentShape::from_pixels(m.latent_channels(), num_frames, height, width)
            == VideoLatentShape::from_dims(g.get("out.video_latent")?.dims())?
    );
    let ctx = |p: &str| -> anyhow::Result<Contexts> {
        Ok(Contexts {
            video: g.get_f32(&format!("in.{p}video_context"), &d)?,
            audio: g.get_f32(&format!("in.{p}audio_context"), &d)?,
        })
    };
    let mut noise = noise(&g, &TWO_STAGE_NOISE, &d)?;
    let (m, mut before_stage2) = ledger.with_stage2(&params["loras_stage2"])?;
    let mut hook = |_: &str, _: &ltx2_pipeline::denoise::StepEvent<'_>| Ok(());
    // A2V: the audio guider has no negative context, so the unconditional pass keeps the
    // positive audio context (ltx-pipelines multi_modal_guider_denoising_func).
    let negative = match flow {
        Flow::Keyframes => ctx("neg_")?,
        Flow::AudioToVideo => Contexts {
            video: g.get_f32("in.neg_video_context", &d)?,
            audio: g.get_f32("in.audio_context", &d)?,
        },
    };
    let out = dev_two_stage(
        m,
        &spec,
        &sigmas,
        &ctx("")?,
        Some(&negative),
        &guidance,
        &mut noise,
        &mut before_stage2,
        &mut hook,
    )?;
    c.check("out.stage1.video_latent", &out.stage1.video_latent)?;
    c.check_if_present("out.stage1.audio_latent", &out.stage1.audio_latent)?;
    c.check("out.upscaled_video_latent", &out.upscaled_video_latent)?;
    c.check("out.video_latent", &out.stage2.video_latent)?;
    drop(before_stage2);
    if let Flow::Keyframes = flow {
        c.check("out.audio_latent", &out.stage2.audio_latent)?;
        c.check(
            "out.waveform",
            &ledger.models.decode_audio(&out.stage2.audio_latent)?,
        )?;
    }
    Ok(c.finish(&["out."])?)
}

#[test]
fn keyframe_interpolation_matches_ltx_pipelines_ltx2() -> anyhow::Result<()> {
    run("2.0", Flow::Keyframes)
}

#[test]
fn keyframe_interpolation_matches_ltx_pipelines_ltx23() -> anyhow::Result<()> {
    run("2.3", Flow::Keyframes)
}

#[test]
fn audio_to_video_two_stage_matches_ltx_pipelines_ltx2() -> anyhow::Result<()> {
    run("2.0", Flow::AudioToVideo)
}

#[test]
fn audio_to_video_two_stage_matches_ltx_pipelines_ltx23() -> anyhow::Result<()> {
    run("2.3", Flow::AudioToVideo)
}
