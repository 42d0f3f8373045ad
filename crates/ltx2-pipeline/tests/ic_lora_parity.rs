//! ltx-pipelines 1.0.0 `ICLoraPipeline` end to end against
//! `testdata/golden-pipelines/<layout>/e2e_ic_lora{,_attn}` (`$LTX2_GOLDEN_PIPELINES_DIR` for another
//! set): the control video's frames preprocessed and encoded at the stage-1 size / the LoRA's
//! `reference_downscale_factor`, appended as reference tokens (positions scaled by the factor;
//! with an attention strength below 1, the `(N+M)^2` self-attention mask), stage 1 on the model
//! with the IC-LoRA fused, then (e2e_ic_lora) x2 upsample and stage 2 on the model with the LoRA
//! taken off again, or (e2e_ic_lora_attn) stage 1 decoded directly. Recorded noise and contexts;
//! the stage-1 state, every `out.*`, both layouts.

mod common;

use anyhow::Context;
use candle_core::{DType, Device, Tensor};
use common::{noise, Ledger, TWO_STAGE_NOISE};
use ltx2_model::golden::{
    pipelines_dir, pipelines_weights_dir as weights_dir, Checks, Golden, Tolerance,
};
use ltx2_model::lora::LoraFile;
use ltx2_pipeline::conditioning::ReferenceCondition;
use ltx2_pipeline::denoise::Contexts;
use ltx2_pipeline::latents::{AudioLatentShape, VideoLatentShape};
use ltx2_pipeline::noise::RecordedNoise;
use ltx2_pipeline::pipelines::ic_lora::{ic_lora, ControlSpec, REFERENCE_DOWNSCALE_FACTOR_KEY};
use ltx2_pipeline::pipelines::RunSpec;
use ltx2_pipeline::preprocess::{image_to_pixels, rgb_from_hwc};
use ltx2_pipeline::schedule::{DISTILLED_SIGMAS, STAGE2_DISTILLED_SIGMAS};
use ltx2_pipeline::stage::{initial_states, StagePlan};

fn run(layout: &str, name: &str) -> anyhow::Result<()> {
    let dir = pipelines_dir();
    let g = Golden::load_from(&dir.join(layout), name)?;
    let params = g.info().context("info")?["params"].clone();
    let weights = weights_dir(&dir, layout)?;
    let d = Device::Cpu;
    anyhow::ensure!(
        params["loras_stage2"]
            .as_array()
            .is_some_and(|a| a.is_empty()),
        "upstream's stage 2 has no LoRA"
    );
    // The factor comes from the IC-LoRA file's metadata, as the pipeline reads it.
    let ic_path = dir.join(
        params["loras_stage1"][0][0]
            .as_str()
            .context("loras_stage1 path")?,
    );
    let factor: usize = LoraFile::open(&ic_path, "ic")?
        .metadata
        .get(REFERENCE_DOWNSCALE_FACTOR_KEY)
        .context("reference_downscale_factor metadata")?
        .parse()?;
    anyhow::ensure!(factor as u64 == params["reference_downscale_factor"].as_u64().unwrap_or(0));
    let mut ledger = Ledger::load(&dir, &weights)?;
    ledger.switch(&params["loras_stage1"])?;
    let m = &ledger.models;

    let mut c = Checks::new(&g);
    c.check_with(
        "in.sigmas.stage1",
        &common::sigmas(&DISTILLED_SIGMAS)?,
        Tolerance::MaxAbs(0.0),
    )?;
    if g.has("in.sigmas.stage2") {
        c.check_with(
            "in.sigmas.stage2",
            &common::sigmas(&STAGE2_DISTILLED_SIGMAS)?,
            Tolerance::MaxAbs(0.0),
        )?;
    }
    let f = |k: &str| params[k].as_f64().with_context(|| k.to_string());
    let (height, width) = (f("height")? as usize, f("width")? as usize);
    let num_frames = f("frames")? as usize;
    let fps = f("fps")? as f32;
    let spec = RunSpec {
        width,
        height,
        num_frames,
        fps,
        images: &[],
        audio: None,
        guiding_keyframes: false,
    };
    let control_u8 = g.get("in.control_video_uint8")?;
    let frames = (0..control_u8.dim(0)?)
        .map(|i| rgb_from_hwc(&control_u8.get(i)?))
        .collect::<candle_core::Result<Vec<_>>>()?;
    let (ref_h, ref_w) = (height / 2 / factor, width / 2 / factor);
    let used = &frames[..frames.len().min(num_frames)];
    if g.has("in.control_video") {
        let pixels = used
            .iter()
            .map(|fr| image_to_pixels(fr, ref_h, ref_w, &d))
            .collect::<candle_core::Result<Vec<_>>>()?;
        c.check_with(
            "in.control_video",
            &Tensor::cat(&pixels, 2)?,
            Tolerance::MaxAbs(1e-5),
        )?;
    }
    let ctx = Contexts {
        video: g.get_f32("in.video_context", &d)?,
        audio: g.get_f32("in.audio_context", &d)?,
    };
    let control = ControlSpec {
        frames: &frames,
        strength: f("control_strength")? as f32,
        attention_strength: f("conditioning_attention_strength")? as f32,
        downscale_factor: factor,
        skip_stage_2: params["skip_stage_2"].as_bool().context("skip_stage_2")?,
    };

    // The stage-1 state: reference tokens, positions, masks, first noising.
    let reference = ReferenceCondition {
        latent: m.encode_video(used, ref_h, ref_w)?,
        downscale_factor: factor,
        strength: control.strength,
        attention_strength: (control.attention_strength < 1.0)
            .then_some(control.attention_strength),
    };
    let plan = StagePlan {
        video_shape: VideoLatentShape::from_pixels(
            m.latent_channels(),
            num_frames,
            height / 2,
            width / 2,
        ),
        audio_shape: AudioLatentShape::from_video(num_frames, fps as f64),
        fps,
        video_conditions: &[],
        reference: Some(&reference),
        initial_video: None,
        initial_audio: None,
        audio_strength: None,
        noise_scale: 1.0,
        sigmas: &DISTILLED_SIGMAS,
    };
    let (video, audio) = initial_states(
        &plan,
        &mut noise(&g, &TWO_STAGE_NOISE[..2], &d)?,
        DType::F32,
        &d,
    )?;
    let exact = Tolerance::MaxAbs(1e-6);
    c.check_with("dbg.stage1.video.positions", &video.positions, exact)?;
    c.check_with("dbg.stage1.video.denoise_mask", &video.denoise_mask, exact)?;
    c.check_with(
        "dbg.stage1.video.clean_latent",
        &video.clean_latent,
        Tolerance::MaxAbs(1e-4),
    )?;
    c.check_with(
        "dbg.stage1.video.latent_in",
        &video.latent,
        Tolerance::MaxAbs(1e-4),
    )?;
    c.check_with("dbg.stage1.audio.positions", &audio.positions, exact)?;
    match (
        &video.attention_mask,
        g.has("dbg.stage1.video.attention_mask"),
    ) {
        (Some(mask), true) => c.check_with("dbg.stage1.video.attention_mask", mask, exact)?,
        (None, false) => {}
        (ours, golden) => anyhow::bail!(
            "attention mask: ours {}, golden {}",
            if ours.is_some() { "present" } else { "absent" },
            if golden { "present" } else { "absent" }
        ),
    }

    let mut noise: RecordedNoise = noise(&g, &TWO_STAGE_NOISE, &d)?;
    let (m, mut before_stage2) = ledger.with_stage2(&params["loras_stage2"])?;
    let mut hook = |_: &str, _: &ltx2_pipeline::denoise::StepEvent<'_>| Ok(());
    let out = ic_lora(
        m,
        &spec,
        &control,
        &ctx,
        &mut noise,
        &mut before_stage2,
        &mut hook,
    )?;
    c.check_if_present("out.stage1.video_latent", &out.stage1.video_latent)?;
    c.check_if_present("out.stage1.audio_latent", &out.stage1.audio_latent)?;
    if let Some((upscaled, _)) = &out.stage2 {
        c.check("out.upscaled_video_latent", upscaled)?;
    }
    drop(before_stage2);
    let m = &ledger.models;
    let last = out.final_latents();
    c.check("out.video_latent", &last.video_latent)?;
    c.check("out.audio_latent", &last.audio_latent)?;
    c.check("out.waveform", &m.decode_audio(&last.audio_latent)?)?;
    if g.has("out.video") {
        // ltx-pipelines' uint8 frames: ((x + 1) / 2).clamp(0, 1) * 255, truncated, (F, H, W, 3).
        let pixels = m.decode_video(&last.video_latent, &mut noise)?;
        let frames = ((pixels + 1.0)? / 2.0)?
            .clamp(0f32, 1f32)?
            .affine(255.0, 0.0)?
            .floor()?
            .squeeze(0)?
            .permute((1, 2, 3, 0))?;
        c.check("out.video", &frames)?;
    }
    Ok(c.finish(&["out."])?)
}

#[test]
fn ic_lora_two_stage_matches_ltx_pipelines_ltx2() -> anyhow::Result<()> {
    run("2.0", "e2e_ic_lora")
}

#[test]
fn ic_lora_two_stage_matches_ltx_pipelines_ltx23() -> anyhow::Result<()> {
    run("2.3", "e2e_ic_lora")
}

#[test]
fn ic_lora_attention_strength_matches_ltx_pipelines_ltx2() -> anyhow::Result<()> {
    run("2.0", "e2e_ic_lora_attn")
}

#[test]
fn ic_lora_attention_strength_matches_ltx_pipelines_ltx23() -> anyhow::Result<()> {
    run("2.3", "e2e_ic_lora_attn")
}
