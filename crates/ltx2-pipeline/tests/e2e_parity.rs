//! End-to-end parity with the e2e goldens: the official pipelines' runs replayed with the recorded
//! noise draws and text contexts, every `out.*` key checked (and the `dbg.*` per-step predictions
//! printed as diagnostics). Weights: `testdata/golden/weights/{model,upsampler}.safetensors`.

use candle_core::{DType, Tensor};
use ltx2_model::golden::{config_json, weights_path, Golden, Tolerance};
use ltx2_pipeline::components::{ConditionImage, Models};
use ltx2_pipeline::denoise::{Contexts, StepEvent};
use ltx2_pipeline::guidance::Guidance;
use ltx2_pipeline::latents::VideoLatentShape;
use ltx2_pipeline::noise::RecordedNoise;
use ltx2_pipeline::pipelines::{distilled_two_stage, one_stage, AudioInput, ImageInput, RunSpec};
use ltx2_pipeline::preprocess::rgb_from_hwc;
use ltx2_pipeline::schedule::{Ltx2Scheduler, DISTILLED_SIGMAS, STAGE2_DISTILLED_SIGMAS};
use ltx2_pipeline::GenError;

fn models() -> anyhow::Result<Models> {
    let dev = ltx2_model::golden::test_device().expect("LTX2_TEST_DEVICE");
    Ok(Models::load(
        &weights_path("model.safetensors"),
        Some(&weights_path("upsampler.safetensors")),
        DType::F32,
        &dev,
    )?)
}

fn fps() -> anyhow::Result<f32> {
    Ok(config_json("pipeline.json")?["video_pixel_shape"]["fps"]
        .as_f64()
        .expect("fps") as f32)
}

fn contexts(g: &Golden, prefix: &str) -> anyhow::Result<Contexts> {
    let d = ltx2_model::golden::test_device().expect("LTX2_TEST_DEVICE");
    Ok(Contexts {
        video: g.get_f32(&format!("in.{prefix}video_context"), &d)?,
        audio: g.get_f32(&format!("in.{prefix}audio_context"), &d)?,
    })
}

/// Checks every listed output that the golden holds; collects failures instead of stopping at the first.
struct Checker<'a> {
    g: &'a Golden,
    failures: Vec<String>,
}

impl Checker<'_> {
    fn out(&mut self, key: &str, ours: &Tensor) -> anyhow::Result<()> {
        if self.g.has(key) {
            let r = self.g.compare(key, ours)?;
            if !r.passed {
                self.failures.push(r.to_string());
            }
        }
        Ok(())
    }

    fn finish(self) -> anyhow::Result<()> {
        anyhow::ensure!(
            self.failures.is_empty(),
            "parity failures:\n{}",
            self.failures.join("\n")
        );
        Ok(())
    }
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

fn run_one_stage(name: &str) -> anyhow::Result<()> {
    let g = Golden::load(name)?;
    let d = ltx2_model::golden::test_device().expect("LTX2_TEST_DEVICE");
    let m = models()?;
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
        fps: fps()?,
        images: &images,
        audio: audio.as_ref(),
    };
    let ctx = contexts(&g, "")?;
    let (negative, guidance) = if cfg {
        (
            Some(contexts(&g, "neg_")?),
            Guidance::dev(3.0, m.transformer.num_blocks()),
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

    let mut c = Checker {
        g: &g,
        failures: vec![],
    };
    c.out("out.video_latent", &out.video_latent)?;
    c.out("out.audio_latent", &out.audio_latent)?;
    if g.has("out.video") {
        c.out("out.video", &m.decode_video(&out.video_latent)?)?;
        // The engine decodes in ltx-core's default tiles; a video this small is one tile.
        c.out("out.video", &m.decode_video_tiled(&out.video_latent)?)?;
    }
    if g.has("out.waveform") {
        c.out("out.waveform", &m.decode_audio(&out.audio_latent)?)?;
    }
    c.finish()
}

fn run_two_stage(name: &str) -> anyhow::Result<()> {
    let g = Golden::load(name)?;
    let d = ltx2_model::golden::test_device().expect("LTX2_TEST_DEVICE");
    let m = models()?;
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
        fps: fps()?,
        images: &images,
        audio: None,
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
    let out = distilled_two_stage(&m, &spec, &ctx, &mut noise, &mut hook)?;

    let mut c = Checker {
        g: &g,
        failures: vec![],
    };
    c.out("out.stage1.video_latent", &out.stage1.video_latent)?;
    c.out("out.stage1.audio_latent", &out.stage1.audio_latent)?;
    c.out("out.upscaled_video_latent", &out.upscaled_video_latent)?;
    c.out("out.video_latent", &out.stage2.video_latent)?;
    c.out("out.audio_latent", &out.stage2.audio_latent)?;
    if g.has("out.video") {
        c.out("out.video", &m.decode_video(&out.stage2.video_latent)?)?;
    }
    if g.has("out.waveform") {
        c.out("out.waveform", &m.decode_audio(&out.stage2.audio_latent)?)?;
    }
    c.finish()
}

#[test]
fn e2e_t2v() -> anyhow::Result<()> {
    run_one_stage("e2e_t2v")
}

#[test]
fn e2e_t2v_cfg() -> anyhow::Result<()> {
    run_one_stage("e2e_t2v_cfg")
}

#[test]
fn e2e_i2v() -> anyhow::Result<()> {
    run_one_stage("e2e_i2v")
}

#[test]
fn e2e_flf2v() -> anyhow::Result<()> {
    run_one_stage("e2e_flf2v")
}

#[test]
fn e2e_a2v() -> anyhow::Result<()> {
    run_one_stage("e2e_a2v")
}

#[test]
fn e2e_two_stage_t2v() -> anyhow::Result<()> {
    run_two_stage("e2e_two_stage_t2v")
}

#[test]
fn e2e_two_stage_i2v() -> anyhow::Result<()> {
    run_two_stage("e2e_two_stage_i2v")
}

/// The A2V golden's audio latent is the official encoding of its waveform: our mel front-end and
/// audio encoder reproduce it (the path `generate` takes for uploaded audio).
#[test]
fn e2e_a2v_audio_encoding() -> anyhow::Result<()> {
    let g = Golden::load("e2e_a2v")?;
    let m = models()?;
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
#[test]
fn two_stage_contexts_from_prompt_text() -> anyhow::Result<()> {
    use ltx2_model::text::{TextEncoder, TextEncoderOptions};
    use ltx2_pipeline::components::PromptEncoder;
    let max_length = config_json("pipeline.json")?["text"]["max_length"]
        .as_u64()
        .expect("max_length") as usize;
    let opts = TextEncoderOptions {
        max_length,
        ..Default::default()
    };
    let text = TextEncoder::load(
        &weights_path("gemma"),
        &weights_path("model.safetensors"),
        &opts,
        DType::F32,
        &ltx2_model::golden::test_device().expect("LTX2_TEST_DEVICE"),
    )?;
    let tokenizer = Golden::load("tokenizer")?;
    for (golden, prompt) in [("e2e_two_stage_t2v", 0), ("e2e_two_stage_i2v", 1)] {
        let g = Golden::load(golden)?;
        let bytes = tokenizer
            .get(&format!("in.prompt{prompt}.utf8"))?
            .to_dtype(DType::U8)?
            .flatten_all()?
            .to_vec1::<u8>()?;
        let ctx = PromptEncoder::encode(&text, &String::from_utf8(bytes)?)?;
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
