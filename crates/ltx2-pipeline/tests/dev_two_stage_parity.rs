//! ltx-pipelines 1.0.0 `TI2VidTwoStagesPipeline` (the official dev recipe) end to end against
//! `testdata/golden-pipelines/<layout>/e2e_dev_two_stage` (`$LTX2_GOLDEN_PIPELINES_DIR` for another
//! set): stage 1 at half size with the dev scheduler and full guidance on the checkpoint with a
//! user LoRA, x2 upsample, stage 2 with the distilled LoRA fused on top (switched in place on the
//! loaded model), decode. Recorded noise and contexts; every `out.*` checked, both layouts.

use anyhow::Context;
use candle_core::{DType, Device, Tensor};
use ltx2_model::golden::{
    pipelines_dir, pipelines_lora_stack as stack, pipelines_weights_dir as weights_dir, Checks,
    Golden, Tolerance,
};
use ltx2_model::lora::{apply_in_place, AppliedLoras, LoraStack};
use ltx2_model::quantization::Quantization;
use ltx2_pipeline::components::Models;
use ltx2_pipeline::denoise::Contexts;
use ltx2_pipeline::guidance::{Guidance, GuiderParams};
use ltx2_pipeline::latents::VideoLatentShape;
use ltx2_pipeline::noise::RecordedNoise;
use ltx2_pipeline::pipelines::{dev_two_stage, RunSpec};
use ltx2_pipeline::schedule::{Ltx2Scheduler, STAGE2_DISTILLED_SIGMAS};
use ltx2_pipeline::GenError;

fn guider(p: &serde_json::Value) -> anyhow::Result<GuiderParams> {
    let f = |k: &str| p[k].as_f64().map(|v| v as f32).context(k.to_string());
    anyhow::ensure!(
        p["skip_step"].as_u64().unwrap_or(0) == 0,
        "skip_step is not replayed"
    );
    Ok(GuiderParams {
        cfg: f("cfg_scale")?,
        stg: f("stg_scale")?,
        stg_blocks: p["stg_blocks"]
            .as_array()
            .context("stg_blocks")?
            .iter()
            .filter_map(|b| b.as_u64())
            .map(|b| b as usize)
            .collect(),
        modality: f("modality_scale")?,
        rescale: f("rescale_scale")?,
    })
}

fn run(layout: &str) -> anyhow::Result<()> {
    let dir = pipelines_dir();
    let g = Golden::load_from(&dir.join(layout), "e2e_dev_two_stage")?;
    let params = g.info().context("info")?["params"].clone();
    let weights = weights_dir(&dir, layout)?;
    let d = Device::Cpu;
    let checkpoint = weights.join("model.safetensors");
    let mut m = Models::load(
        &checkpoint,
        Some(&weights.join("upsampler.safetensors")),
        DType::F32,
        &d,
    )?;
    let swap =
        |m: &mut Models, applied: AppliedLoras, s: &LoraStack| -> Result<AppliedLoras, GenError> {
            let ltx = m.transformer.ltx_model_mut().expect("an LTX transformer");
            applied.restore(ltx);
            apply_in_place(
                ltx,
                &checkpoint,
                s,
                Quantization::None,
                DType::F32,
                &Device::Cpu,
            )
            .map_err(|e| GenError::Model(e.to_string()))
        };
    let stage1_loras = stack(&dir, &params["loras_stage1"])?;
    let stage2_loras = stack(&dir, &params["loras_stage2"])?;
    let mut applied = Some(swap(&mut m, AppliedLoras::default(), &stage1_loras)?);

    let steps = params["num_inference_steps"].as_u64().context("steps")? as usize;
    let sigmas = Ltx2Scheduler::default().sigmas(steps, None);
    let mut c = Checks::new(&g);
    c.check_with(
        "in.sigmas.stage1",
        &Tensor::new(sigmas.as_slice(), &d)?,
        Tolerance::MaxAbs(1e-6),
    )?;
    c.check_with(
        "in.sigmas.stage2",
        &Tensor::new(&STAGE2_DISTILLED_SIGMAS[..], &d)?,
        Tolerance::MaxAbs(0.0),
    )?;
    let guidance = Guidance {
        video: guider(&params["guidance"]["video"])?,
        audio: guider(&params["guidance"]["audio"])?,
    };
    let vshape = VideoLatentShape::from_dims(g.get("out.video_latent")?.dims())?;
    let spec = RunSpec {
        width: vshape.width * 32,
        height: vshape.height * 32,
        num_frames: (vshape.frames - 1) * 8 + 1,
        fps: params["fps"].as_f64().context("fps")? as f32,
        images: &[],
        audio: None,
    };
    let ctx = |p: &str| -> anyhow::Result<Contexts> {
        Ok(Contexts {
            video: g.get_f32(&format!("in.{p}video_context"), &d)?,
            audio: g.get_f32(&format!("in.{p}audio_context"), &d)?,
        })
    };
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
    let mut before_stage2 = |m: &mut Models| {
        applied = Some(swap(m, applied.take().unwrap_or_default(), &stage2_loras)?);
        Ok(())
    };
    let mut hook = |_: &str, _: &ltx2_pipeline::denoise::StepEvent<'_>| Ok(());
    let out = dev_two_stage(
        &mut m,
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
    c.check("out.waveform", &m.decode_audio(&out.stage2.audio_latent)?)?;
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
