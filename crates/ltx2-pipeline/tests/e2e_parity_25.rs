//! LTX-2.5 end to end: ltx-pipelines 1.2.0 `DistilledPipeline` (text-to-video) replayed with the
//! 2.5 set's recorded noise, from its split component files — prompt → Gemma-4 text encoder →
//! stage 1 at half size with the ancestral Euler sampler (eta 1, its own noise stream) → x2
//! upscaler → stage 2 (Euler, re-noised at 0.909375) → audio VAE + 48 kHz vocoder. Every `out.*`
//! and `dbg.*` of `e2e_distilled_t2v` is checked (`$LTX2_GOLDEN_25_DIR`, else `testdata/golden-2.5`).

use candle_core::{DType, Tensor};
use ltx2_model::golden::{Checks, GoldenSet};
use ltx2_model::text::{TextEncoder, TextEncoderOptions};
use ltx2_pipeline::components::{Models, PromptEncoder};
use ltx2_pipeline::engine::ModelFolder;
use ltx2_pipeline::latents::VideoLatentShape;
use ltx2_pipeline::noise::RecordedNoise;
use ltx2_pipeline::pipelines::{distilled_two_stage, RunSpec};
use ltx2_pipeline::schedule::{DISTILLED_SIGMAS, STAGE2_DISTILLED_SIGMAS};

const SET: GoldenSet = GoldenSet::Ltx25;

#[test]
fn ltx25_e2e_distilled_t2v() -> anyhow::Result<()> {
    let dev = ltx2_model::golden::test_device().expect("LTX2_TEST_DEVICE");
    let g = SET.load("e2e_distilled_t2v")?;
    let info = g
        .info()
        .ok_or_else(|| anyhow::anyhow!("golden has no info"))?;
    // The official constants, as the set recorded them.
    let sigmas = |k: &str| -> Vec<f32> {
        info[k]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_f64())
                    .map(|v| v as f32)
                    .collect()
            })
            .unwrap_or_default()
    };
    anyhow::ensure!(
        sigmas("stage_1_sigmas") == DISTILLED_SIGMAS,
        "stage-1 sigmas"
    );
    anyhow::ensure!(
        sigmas("stage_2_sigmas") == STAGE2_DISTILLED_SIGMAS,
        "stage-2 sigmas"
    );
    anyhow::ensure!(
        info["ancestral_eta"].as_f64() == Some(ltx2_pipeline::pipelines::ANCESTRAL_ETA as f64)
            && info["ancestral_noise_seed"].as_u64()
                == Some(
                    ltx2_pipeline::pipelines::ANCESTRAL_NOISE_SEED_OFFSET
                        + info["seed"].as_u64().unwrap_or(0)
                ),
        "ancestral sampler settings: {info}"
    );

    let files = match ModelFolder::discover(&SET.weights_path(""))? {
        ModelFolder::Split(f) => f,
        other => anyhow::bail!("the 2.5 weights are not a split model folder: {other:?}"),
    };
    let m = Models::load_split(&files, DType::F32, &dev)?;
    let max_length = SET.config_json("text.json")?["max_length"]
        .as_u64()
        .expect("max_length") as usize;
    let opts = TextEncoderOptions {
        max_length,
        ..Default::default()
    };
    let text = TextEncoder::load_split(
        &files.text_encoder,
        &files.transformer,
        &opts,
        DType::F32,
        &dev,
    )?;
    let prompt = String::from_utf8(g.get("in.prompt0_utf8")?.flatten_all()?.to_vec1::<u8>()?)?;
    let ctx = PromptEncoder::encode(&text, &prompt)?;

    let mut c = Checks::new(&g);
    c.check("dbg.video_context", &ctx.video)?;
    c.check("dbg.audio_context", &ctx.audio)?;

    let vshape = VideoLatentShape::from_dims(g.get("out.video_latent")?.dims())?;
    let spec = RunSpec {
        width: vshape.width * 32,
        height: vshape.height * 32,
        num_frames: (vshape.frames - 1) * 8 + 1,
        fps: info["fps"].as_f64().expect("fps") as f32,
        images: &[],
        audio: None,
        guiding_keyframes: false,
    };
    let draws = |prefix: &str| -> anyhow::Result<Vec<Tensor>> {
        let mut keys = g.keys_with_prefix(prefix);
        keys.sort_by_key(|k| k[prefix.len()..].parse::<usize>().unwrap_or(usize::MAX));
        keys.iter().map(|k| Ok(g.get_f32(k, &dev)?)).collect()
    };
    let mut noise = RecordedNoise::new(draws("in.gaussian_noise")?);
    let mut ancestral = RecordedNoise::new(draws("in.ancestral_noise")?);
    let out = distilled_two_stage(
        &m,
        &spec,
        &ctx,
        &mut noise,
        Some(&mut ancestral),
        &mut |_: &str, _: &ltx2_pipeline::denoise::StepEvent<'_>| Ok(()),
    )?;
    c.check("dbg.stage1_video_latent", &out.stage1.video_latent)?;
    c.check("dbg.stage1_audio_latent", &out.stage1.audio_latent)?;
    c.check("dbg.upscaled_video_latent", &out.upscaled_video_latent)?;
    c.check("out.video_latent", &out.stage2.video_latent)?;
    c.check("out.audio_latent", &out.stage2.audio_latent)?;
    c.check("out.waveform", &m.decode_audio(&out.stage2.audio_latent)?)?;
    Ok(c.finish(&["out.", "dbg."])?)
}
