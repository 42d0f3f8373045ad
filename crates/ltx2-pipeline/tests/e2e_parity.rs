//! End-to-end parity with the e2e goldens: the official pipelines' runs replayed with the recorded
//! noise draws and text contexts, every `out.*` key checked (and the `dbg.*` per-step predictions
//! printed as diagnostics). Both generations: LTX-2 (`testdata/golden`, `$LTX2_GOLDEN_DIR`) and
//! LTX-2.3 (`testdata/golden-2.3`, `$LTX2_GOLDEN_23_DIR`), each with its own
//! `weights/{model,upsampler}.safetensors` and the dev defaults its `model_version` selects.

use candle_core::{DType, Tensor};
use ltx2_model::generation::detect_file;
use ltx2_model::golden::{Checks, Golden, GoldenSet, Tolerance};
use ltx2_pipeline::components::{ConditionImage, Models};
use ltx2_pipeline::denoise::{Contexts, StepEvent};
use ltx2_pipeline::guidance::Guidance;
use ltx2_pipeline::latents::VideoLatentShape;
use ltx2_pipeline::noise::RecordedNoise;
use ltx2_pipeline::params::PipelineParams;
use ltx2_pipeline::pipelines::{distilled_two_stage, one_stage, AudioInput, ImageInput, RunSpec};
use ltx2_pipeline::preprocess::rgb_from_hwc;
use ltx2_pipeline::schedule::{Ltx2Scheduler, DISTILLED_SIGMAS, STAGE2_DISTILLED_SIGMAS};
use ltx2_pipeline::GenError;

fn models(set: GoldenSet) -> anyhow::Result<Models> {
    let dev = ltx2_model::golden::test_device().expect("LTX2_TEST_DEVICE");
    Ok(Models::load(
        &set.weights_path("model.safetensors"),
        Some(&set.weights_path("upsampler.safetensors")),
        DType::F32,
        &dev,
    )?)
}

fn fps(set: GoldenSet) -> anyhow::Result<f32> {
    Ok(
        set.config_json("pipeline.json")?["video_pixel_shape"]["fps"]
            .as_f64()
            .expect("fps") as f32,
    )
}

/// The dev guidance the engine would run for this set's checkpoint (its generation's official
/// defaults, found from its metadata), at the golden's scale 3. The tiny 2-block model cannot hold
/// the real STG block (28 / 29 of 48): the set records where its generator put it.
fn dev_guidance(set: GoldenSet, num_blocks: usize) -> anyhow::Result<Guidance> {
    let generation = detect_file(&set.weights_path("model.safetensors"))?.generation;
    let mut guidance = PipelineParams::for_generation(generation).guidance(3.0, num_blocks);
    let recorded = &set.config_json("pipeline.json")?["cfg_guidance"];
    for (stream, params) in [
        ("video", &mut guidance.video),
        ("audio", &mut guidance.audio),
    ] {
        let r = &recorded[stream];
        if let Some(blocks) = r["stg_blocks_tiny"].as_array() {
            params.stg_blocks = blocks
                .iter()
                .filter_map(|b| b.as_u64())
                .map(|b| b as usize)
                .collect();
        }
        // The constants themselves must be the official ones the set was made with.
        for (key, ours) in [
            ("cfg", params.cfg),
            ("stg", params.stg),
            ("modality", params.modality),
            ("rescale", params.rescale),
        ] {
            if let Some(v) = r[key].as_f64() {
                anyhow::ensure!(
                    (v as f32 - ours).abs() < 1e-6,
                    "{stream} {key}: the set used {v}, our {generation:?} defaults give {ours}"
                );
            }
        }
    }
    Ok(guidance)
}

fn contexts(g: &Golden, prefix: &str) -> anyhow::Result<Contexts> {
    let d = ltx2_model::golden::test_device().expect("LTX2_TEST_DEVICE");
    Ok(Contexts {
        video: g.get_f32(&format!("in.{prefix}video_context"), &d)?,
        audio: g.get_f32(&format!("in.{prefix}audio_context"), &d)?,
    })
}

/// Prints how far each step's inputs and predictions are from the recorded ones (diagnostics).
fn dbg_hook<'a>(
    g: &'a Golden,
    stage_prefix: &'a dyn Fn(&str) -> String,
) -> impl FnMut(&str, &StepEvent<'_>) -> Result<(), GenError> + 'a {
    move |stage, e| {
        let p = format!("dbg.{}step{}.", stage_prefix(stage), e.step);
        for (name, t) in [
            ("video_latent_in", e.video_in),
            ("audio_latent_in", e.audio_in),
            ("video_denoised", e.video_denoised),
            ("audio_denoised", e.audio_denoised),
        ] {
            let key = format!("{p}{name}");
            if g.has(&key) {
                // Video tokens past the recorded count would be a shape bug: compare_with reports it.
                g.compare_with(&key, t, Tolerance::RelL2(1e-3))
                    .map_err(GenError::from)?;
            }
        }
        Ok(())
    }
}

fn run_one_stage(set: GoldenSet, name: &str) -> anyhow::Result<()> {
    let g = set.load(name)?;
    let d = ltx2_model::golden::test_device().expect("LTX2_TEST_DEVICE");
    let m = models(set)?;
    let vshape = VideoLatentShape::from_dims(g.get("out.video_latent")?.dims())?;
    let num_frames = (vshape.frames - 1) * 8 + 1;
    let (height, width) = (vshape.height * 32, vshape.width * 32);

    let cfg = g.has("in.neg_video_context");
    let sigmas: Vec<f32> = if cfg {
        let steps = g.get("in.sigmas")?.dim(0)? - 1;
        Ltx2Scheduler::default().sigmas(steps, None)
    } else {
        DISTILLED_SIGMAS.to_vec()
    };
    let rep = g.compare_with(
        "in.sigmas",
        &Tensor::new(sigmas.as_slice(), &d)?,
        Tolerance::MaxAbs(1e-6),
    )?;
    anyhow::ensure!(rep.passed, "our schedule differs from the golden's: {rep}");

    let mut images = vec![];
    if g.has("in.first_image") {
        images.push(ImageInput {
            image: ConditionImage::Pixels(g.get_f32("in.first_image", &d)?),
            frame_index: 0,
            strength: 1.0,
        });
    }
    if g.has("in.last_image") {
        images.push(ImageInput {
            image: ConditionImage::Pixels(g.get_f32("in.last_image", &d)?),
            frame_index: num_frames - 1,
            strength: 1.0,
        });
    }
    let audio = if g.has("in.audio_latent") {
        Some(AudioInput {
            latent: g.get_f32("in.audio_latent", &d)?,
            strength: 1.0,
        })
    } else {
        None
    };
    let spec = RunSpec {
        width,
        height,
        num_frames,
        fps: fps(set)?,
        images: &images,
        audio: audio.as_ref(),
        guiding_keyframes: false,
    };
    let ctx = contexts(&g, "")?;
    let (negative, guidance) = if cfg {
        (
            Some(contexts(&g, "neg_")?),
            dev_guidance(set, m.transformer.num_blocks())?,
        )
    } else {
        (None, Guidance::disabled())
    };
    let mut noise = RecordedNoise::new(vec![
        g.get_f32("in.noise.video", &d)?,
        g.get_f32("in.noise.audio", &d)?,
    ]);
    let prefix = |_: &str| String::new();
    let mut hook = dbg_hook(&g, &prefix);
    let out = one_stage(
        &m,
        &spec,
        &sigmas,
        &ctx,
        negative.as_ref(),
        &guidance,
        &mut noise,
        &mut hook,
    )?;

    let mut c = Checks::new(&g);
    c.check_if_present("out.video_latent", &out.video_latent)?;
    c.check_if_present("out.audio_latent", &out.audio_latent)?;
    if g.has("out.video") {
        c.check_if_present("out.video", &m.decode_video(&out.video_latent, &mut noise)?)?;
        // The engine decodes in ltx-core's default tiles; a video this small is one tile.
        c.check_if_present(
            "out.video",
            &m.decode_video_tiled(&out.video_latent, &mut noise)?,
        )?;
    }
    if g.has("out.waveform") {
        c.check_if_present("out.waveform", &m.decode_audio(&out.audio_latent)?)?;
    }
    Ok(c.finish(&["out."])?)
}

fn run_two_stage(set: GoldenSet, name: &str) -> anyhow::Result<()> {
    let g = set.load(name)?;
    let d = ltx2_model::golden::test_device().expect("LTX2_TEST_DEVICE");
    let m = models(set)?;
    let vshape = VideoLatentShape::from_dims(g.get("out.video_latent")?.dims())?;
    let num_frames = (vshape.frames - 1) * 8 + 1;
    for (key, ours) in [
        ("in.sigmas.stage1", &DISTILLED_SIGMAS[..]),
        ("in.sigmas.stage2", &STAGE2_DISTILLED_SIGMAS[..]),
    ] {
        let rep = g.compare_with(key, &Tensor::new(ours, &d)?, Tolerance::MaxAbs(0.0))?;
        anyhow::ensure!(rep.passed, "{rep}");
    }
    let mut images = vec![];
    if g.has("in.source_image") {
        images.push(ImageInput {
            image: ConditionImage::Rgb(rgb_from_hwc(&g.get("in.source_image")?)?),
            frame_index: 0,
            strength: 1.0,
        });
    }
    let spec = RunSpec {
        width: vshape.width * 32,
        height: vshape.height * 32,
        num_frames,
        fps: fps(set)?,
        images: &images,
        audio: None,
        guiding_keyframes: false,
    };
    let ctx = contexts(&g, "")?;
    let draws = [
        "stage1.video",
        "stage1.audio",
        "stage2.video",
        "stage2.audio",
    ]
    .iter()
    .map(|k| g.get_f32(&format!("in.noise.{k}"), &d))
    .collect::<candle_core::Result<Vec<_>>>()?;
    let mut noise = RecordedNoise::new(draws);
    let prefix = |stage: &str| format!("{stage}.");
    let mut hook = dbg_hook(&g, &prefix);
    let out = distilled_two_stage(&m, &spec, &ctx, &mut noise, None, &mut hook)?;

    let mut c = Checks::new(&g);
    c.check_if_present("out.stage1.video_latent", &out.stage1.video_latent)?;
    c.check_if_present("out.stage1.audio_latent", &out.stage1.audio_latent)?;
    c.check_if_present("out.upscaled_video_latent", &out.upscaled_video_latent)?;
    c.check_if_present("out.video_latent", &out.stage2.video_latent)?;
    c.check_if_present("out.audio_latent", &out.stage2.audio_latent)?;
    if g.has("out.video") {
        c.check_if_present(
            "out.video",
            &m.decode_video(&out.stage2.video_latent, &mut noise)?,
        )?;
    }
    if g.has("out.waveform") {
        c.check_if_present("out.waveform", &m.decode_audio(&out.stage2.audio_latent)?)?;
    }
    Ok(c.finish(&["out."])?)
}

#[test]
fn e2e_t2v() -> anyhow::Result<()> {
    run_one_stage(GoldenSet::Ltx2, "e2e_t2v")
}

#[test]
fn e2e_t2v_cfg() -> anyhow::Result<()> {
    run_one_stage(GoldenSet::Ltx2, "e2e_t2v_cfg")
}

#[test]
fn e2e_i2v() -> anyhow::Result<()> {
    run_one_stage(GoldenSet::Ltx2, "e2e_i2v")
}

#[test]
fn e2e_flf2v() -> anyhow::Result<()> {
    run_one_stage(GoldenSet::Ltx2, "e2e_flf2v")
}

#[test]
fn e2e_a2v() -> anyhow::Result<()> {
    run_one_stage(GoldenSet::Ltx2, "e2e_a2v")
}

#[test]
fn e2e_two_stage_t2v() -> anyhow::Result<()> {
    run_two_stage(GoldenSet::Ltx2, "e2e_two_stage_t2v")
}

#[test]
fn e2e_two_stage_i2v() -> anyhow::Result<()> {
    run_two_stage(GoldenSet::Ltx2, "e2e_two_stage_i2v")
}

#[test]
fn ltx23_e2e_t2v_cfg() -> anyhow::Result<()> {
    run_one_stage(GoldenSet::Ltx23, "e2e_t2v_cfg")
}

#[test]
fn ltx23_e2e_two_stage_t2v() -> anyhow::Result<()> {
    run_two_stage(GoldenSet::Ltx23, "e2e_two_stage_t2v")
}

#[test]
fn ltx23_e2e_two_stage_i2v() -> anyhow::Result<()> {
    run_two_stage(GoldenSet::Ltx23, "e2e_two_stage_i2v")
}

/// The A2V golden's audio latent is the official encoding of its waveform: our mel front-end and
/// audio encoder reproduce it (the path `generate` takes for uploaded audio).
#[test]
fn e2e_a2v_audio_encoding() -> anyhow::Result<()> {
    let g = Golden::load("e2e_a2v")?;
    let m = models(GoldenSet::Ltx2)?;
    let wave = g
        .get_f32(
            "in.audio_waveform_16k",
            &ltx2_model::golden::test_device().expect("LTX2_TEST_DEVICE"),
        )?
        .squeeze(0)?
        .to_vec2::<f32>()?;
    let clip = ltx2_pipeline::AudioClip {
        sample_rate: 16000,
        channels: wave,
    };
    let frames = g.get("in.audio_latent")?.dim(2)?;
    let ours = m.encode_audio(&clip, frames)?;
    let rep = g.compare_with("in.audio_latent", &ours, Tolerance::RelL2(1e-5))?;
    anyhow::ensure!(rep.passed, "{rep}");
    Ok(())
}

/// The two-stage goldens start from the text path of tokenizer prompts 0 (t2v) and 1 (i2v): our
/// text encoder (as the engine loads it) reproduces their contexts from the prompt text, so the
/// chain prompt -> contexts -> two-stage is covered.
fn two_stage_contexts_from_prompt_text(set: GoldenSet) -> anyhow::Result<()> {
    use ltx2_model::text::{TextEncoder, TextEncoderOptions};
    use ltx2_pipeline::components::PromptEncoder;
    let max_length = set.config_json("pipeline.json")?["text"]["max_length"]
        .as_u64()
        .expect("max_length") as usize;
    let opts = TextEncoderOptions {
        max_length,
        ..Default::default()
    };
    let text = TextEncoder::load(
        &set.weights_path("gemma"),
        &set.weights_path("model.safetensors"),
        &opts,
        DType::F32,
        &ltx2_model::golden::test_device().expect("LTX2_TEST_DEVICE"),
    )?;
    for (golden, prompt) in [("e2e_two_stage_t2v", 0), ("e2e_two_stage_i2v", 1)] {
        let g = set.load(golden)?;
        let ctx = PromptEncoder::encode(&text, &prompt_text(set, prompt)?)?;
        for (key, ours) in [
            ("in.video_context", &ctx.video),
            ("in.audio_context", &ctx.audio),
        ] {
            let rep = g.compare_with(key, ours, Tolerance::RelL2(1e-5))?;
            anyhow::ensure!(rep.passed, "{rep}");
        }
    }
    Ok(())
}

/// Prompt `i` of a set: the 2.0 set stores the UTF-8 bytes in its `tokenizer` golden, the 2.3 set
/// (which has no tokenizer golden) lists the prompts in its `text_encoder` golden's `info`.
fn prompt_text(set: GoldenSet, i: usize) -> anyhow::Result<String> {
    if set.dir().join("tokenizer.safetensors").is_file() {
        let bytes = set
            .load("tokenizer")?
            .get(&format!("in.prompt{i}.utf8"))?
            .to_dtype(DType::U8)?
            .flatten_all()?
            .to_vec1::<u8>()?;
        return Ok(String::from_utf8(bytes)?);
    }
    let info = set
        .load("text_encoder")?
        .info()
        .ok_or_else(|| anyhow::anyhow!("text_encoder golden has no info metadata"))?;
    // A JSON list, stored as a JSON string inside the info JSON.
    let list: Vec<String> = serde_json::from_str(
        info["prompts"]
            .as_str()
            .ok_or_else(|| anyhow::anyhow!("text_encoder info has no `prompts` string"))?,
    )?;
    list.get(i)
        .cloned()
        .ok_or_else(|| anyhow::anyhow!("text_encoder info has no prompt {i}"))
}

#[test]
fn two_stage_contexts_from_prompt_text_ltx2() -> anyhow::Result<()> {
    two_stage_contexts_from_prompt_text(GoldenSet::Ltx2)
}

#[test]
fn ltx23_two_stage_contexts_from_prompt_text() -> anyhow::Result<()> {
    two_stage_contexts_from_prompt_text(GoldenSet::Ltx23)
}
