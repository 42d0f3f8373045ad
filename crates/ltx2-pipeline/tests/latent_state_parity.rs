//! Initial latent states of the e2e goldens: positions, denoise masks, clean latents and the
//! noised step-0 latents, built from the recorded noise and (for image/audio conditioning) the
//! goldens' own encoded latents. Needs no model.

use candle_core::{DType, Tensor};
use ltx2_model::golden::{Golden, Tolerance};
use ltx2_pipeline::conditioning::VideoCondition;
use ltx2_pipeline::latents::{AudioLatentShape, VideoLatentShape};
use ltx2_pipeline::noise::RecordedNoise;
use ltx2_pipeline::stage::{initial_states, StagePlan};

const EXACT: Tolerance = Tolerance::MaxAbs(1e-6);

struct Case {
    golden: &'static str,
    prefix: &'static str,
    noise: [&'static str; 2],
    scale: f32,
}

fn check_case(case: &Case) -> anyhow::Result<()> {
    let g = Golden::load(case.golden)?;
    let d = ltx2_model::golden::test_device().expect("LTX2_TEST_DEVICE");
    let p = case.prefix;
    let fps = ltx2_model::golden::config_json("pipeline.json")?["video_pixel_shape"]["fps"]
        .as_f64()
        .unwrap() as f32;
    let is_stage2 = p.contains("stage2");
    let out_video = if g.has("out.video_latent") {
        "out.video_latent"
    } else {
        unreachable!()
    };
    let vshape = VideoLatentShape::from_dims(
        g.get(if is_stage2 || !g.has("out.stage1.video_latent") {
            out_video
        } else {
            "out.stage1.video_latent"
        })?
        .dims(),
    )?;
    let audio_key = if g.has("out.audio_latent") {
        "out.audio_latent"
    } else {
        "in.audio_latent"
    };
    let ashape = AudioLatentShape::from_dims(g.get(audio_key)?.dims())?;
    let mut conds = vec![];
    let first = format!("dbg.{p}first_image_latent");
    if g.has(&first) {
        conds.push(VideoCondition {
            latent: g.get_f32(&first, &d)?,
            frame_index: 0,
            strength: 1.0,
            guiding: false,
        });
    }
    if g.has("dbg.last_image_latent") {
        let frames = (vshape.frames - 1) * 8 + 1;
        conds.push(VideoCondition {
            latent: g.get_f32("dbg.last_image_latent", &d)?,
            frame_index: frames - 1,
            strength: 1.0,
            guiding: false,
        });
    }
    let init_video = if is_stage2 {
        Some(g.get_f32("out.upscaled_video_latent", &d)?)
    } else {
        None
    };
    let init_audio = if is_stage2 {
        Some(g.get_f32("out.stage1.audio_latent", &d)?)
    } else if g.has("in.audio_latent") {
        Some(g.get_f32("in.audio_latent", &d)?)
    } else {
        None
    };
    let sigmas = [1.0f32, 0.0];
    let plan = StagePlan {
        video_shape: vshape,
        audio_shape: ashape,
        fps,
        video_conditions: &conds,
        reference: None,
        initial_video: init_video.as_ref(),
        initial_audio: init_audio.as_ref(),
        audio_strength: if !is_stage2 && g.has("in.audio_latent") {
            Some(1.0)
        } else {
            None
        },
        noise_scale: case.scale,
        sigmas: &sigmas,
    };
    let mut noise = RecordedNoise::new(vec![
        g.get_f32(case.noise[0], &d)?,
        g.get_f32(case.noise[1], &d)?,
    ]);
    let (video, audio) = initial_states(&plan, &mut noise, DType::F32, &d)?;
    let cmp = |key: String, t: &Tensor| -> anyhow::Result<()> {
        if g.has(&key) {
            anyhow::ensure!(g.compare_with(&key, t, EXACT)?.passed, "{key}");
        }
        Ok(())
    };
    cmp(format!("dbg.{p}video_positions"), &video.positions)?;
    cmp(format!("dbg.{p}video_denoise_mask"), &video.denoise_mask)?;
    cmp(format!("dbg.{p}video_clean_latent"), &video.clean_latent)?;
    cmp(format!("dbg.{p}audio_positions"), &audio.positions)?;
    cmp(format!("dbg.{p}audio_denoise_mask"), &audio.denoise_mask)?;
    cmp(format!("dbg.{p}step0.video_latent_in"), &video.latent)?;
    cmp(format!("dbg.{p}step0.audio_latent_in"), &audio.latent)?;
    Ok(())
}

fn one_stage(golden: &'static str) -> Case {
    Case {
        golden,
        prefix: "",
        noise: ["in.noise.video", "in.noise.audio"],
        scale: 1.0,
    }
}

#[test]
fn one_stage_initial_states_match() -> anyhow::Result<()> {
    for name in ["e2e_t2v", "e2e_t2v_cfg", "e2e_i2v", "e2e_flf2v", "e2e_a2v"] {
        check_case(&one_stage(name))?;
    }
    Ok(())
}

#[test]
fn two_stage_initial_states_match() -> anyhow::Result<()> {
    let s2 = ltx2_pipeline::schedule::STAGE2_DISTILLED_SIGMAS[0];
    for name in ["e2e_two_stage_t2v", "e2e_two_stage_i2v"] {
        check_case(&Case {
            golden: name,
            prefix: "stage1.",
            noise: ["in.noise.stage1.video", "in.noise.stage1.audio"],
            scale: 1.0,
        })?;
        check_case(&Case {
            golden: name,
            prefix: "stage2.",
            noise: ["in.noise.stage2.video", "in.noise.stage2.audio"],
            scale: s2,
        })?;
    }
    Ok(())
}
