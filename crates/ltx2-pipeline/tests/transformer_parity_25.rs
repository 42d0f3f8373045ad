//! LTX-2.5 transformer (split file `diffusion_models/ltx-2.5-22b-*-transformer-*.safetensors`,
//! `model.diffusion_model.*`, its own `config`) against ltx-core 1.2.0 on the `transformer` and
//! `transformer_keyframes` goldens of `GoldenSet::Ltx25`.
//!
//! Those goldens store what `DiffusionStage` starts from (clean latents, the recorded noise, σ,
//! the contexts) and one Euler step σ -> 0, whose result is the X0 prediction. This test rebuilds
//! the step's state as ltx-core does: `VideoLatentTools` / `AudioLatentTools` positions, the
//! `keyframes_mask` that marks the first latent frame (the causal VAE's single-pixel-frame frame)
//! and, in the keyframes golden, the appended `VideoGeneratedKeyframeSlots` tokens (zeros at a
//! `[k, k + 1)` pixel-frame span, marked too), the `GaussianNoiser` lerps, per-token timesteps
//! `mask · σ`; then runs the model and the Euler step and unpatchifies, slot tokens split off into
//! `generated_keyframes` as `clear_conditioning` does.

use anyhow::{ensure, Context, Result};
use candle_core::{DType, Device, Tensor};
use ltx2_model::checkpoint::Checkpoint;
use ltx2_model::golden::{Checks, Golden, GoldenSet};
use ltx2_model::transformer::config::AvCrossAdaln;
use ltx2_model::transformer::{to_denoised, LtxModel, Modality, Perturbations};
use ltx2_pipeline::latents::{
    audio_positions, patchify_audio, patchify_video, unpatchify_audio, unpatchify_video,
    video_positions, AudioLatentShape, VideoLatentShape,
};

const SET: GoldenSet = GoldenSet::Ltx25;

fn device() -> Device {
    ltx2_model::golden::test_device().expect("LTX2_TEST_DEVICE")
}

/// A weight file of the set by its `manifest.json` name (`weights.transformer`, ...).
fn weight_file(name: &str) -> Result<std::path::PathBuf> {
    let text = std::fs::read_to_string(SET.dir().join("manifest.json"))?;
    let manifest: serde_json::Value = serde_json::from_str(&text)?;
    let rel = manifest["weights"][name]
        .as_str()
        .with_context(|| format!("manifest.json has no weights.{name}"))?;
    Ok(SET.dir().join(rel))
}

fn load_model(dev: &Device) -> Result<LtxModel> {
    Ok(Checkpoint::open(weight_file("transformer")?)?.load_transformer(DType::F32, dev)?)
}

/// `torch.lerp(start, end, w)` with a scalar weight, as its CPU kernel computes it in f32.
fn lerp(start: &Tensor, end: &Tensor, w: f32) -> Result<Tensor> {
    Ok(if w.abs() < 0.5 {
        (start + ((end - start)? * w as f64)?)?
    } else {
        (end - ((end - start)? * (1.0 - w) as f64)?)?
    })
}

/// Positions `(1, 3, H'W', 2)` of one generated keyframe slot at pixel frame `k`: the spatial
/// grid of a one-frame latent, time exactly `[k, k + 1) / fps` (ltx-core `_slot_positions`).
fn slot_positions(shape: VideoLatentShape, k: usize, fps: f32, dev: &Device) -> Result<Tensor> {
    let frame = VideoLatentShape { frames: 1, ..shape };
    let spatial = video_positions(frame, fps, false, 0, dev)?.narrow(1, 1, 2)?;
    let n = frame.tokens();
    let (t0, t1) = (k as f32 / fps, (k as f32 + 1.0) / fps);
    let time = Tensor::new(&[t0, t1], dev)?
        .reshape((1, 1, 1, 2))?
        .broadcast_as((1, 1, n, 2))?;
    Ok(Tensor::cat(&[&time, &spatial], 1)?)
}

/// One step's inputs, built from a golden.
struct Step {
    video: Modality,
    audio: Modality,
    vshape: VideoLatentShape,
    ashape: AudioLatentShape,
    /// Pixel-frame indices of the generated keyframe slots (appended after the video tokens).
    keyframes: Vec<usize>,
    sigma: f32,
}

fn build_step(g: &Golden, dev: &Device) -> Result<Step> {
    let info = g.info().context("golden has `info`")?;
    let fps = info["fps"].as_f64().context("info.fps")? as f32;
    let sigma = g.get_f32("in.sigma", dev)?.to_scalar::<f32>()?;
    let video_x0 = g.get_f32("in.video_x0_init", dev)?;
    let audio_x0 = g.get_f32("in.audio_x0_init", dev)?;
    let vshape = VideoLatentShape::from_dims(video_x0.dims())?;
    let ashape = AudioLatentShape::from_dims(audio_x0.dims())?;
    let keyframes: Vec<usize> = if g.has("in.keyframe_pixel_frames") {
        g.get("in.keyframe_pixel_frames")?
            .to_vec1::<i64>()?
            .into_iter()
            .map(|k| k as usize)
            .collect()
    } else {
        Vec::new()
    };

    // Video: the target tokens, then one latent frame of zeros per slot.
    let per_frame = vshape.height * vshape.width;
    let mut tokens = vec![patchify_video(&video_x0)?];
    let mut positions = vec![video_positions(vshape, fps, true, 0, dev)?];
    for &k in &keyframes {
        tokens.push(Tensor::zeros(
            (1, per_frame, vshape.channels),
            DType::F32,
            dev,
        )?);
        positions.push(slot_positions(vshape, k, fps, dev)?);
    }
    let clean = Tensor::cat(&tokens, 1)?;
    let positions = Tensor::cat(&positions, 2)?;
    let n = clean.dim(1)?;
    // Marked: the first latent frame (one pixel frame, causal VAE) and every slot token.
    let marks: Vec<f32> = (0..n)
        .map(|i| {
            if i < per_frame || i >= vshape.tokens() {
                1.0
            } else {
                0.0
            }
        })
        .collect();
    let keyframes_mask = Tensor::from_vec(marks, (1, n, 1), dev)?;

    let noise_v = g.get_f32("in.video_noise", dev)?;
    let noise_a = g.get_f32("in.audio_noise", dev)?;
    ensure!(
        noise_v.dims() == clean.dims(),
        "in.video_noise {:?} does not cover the {:?} video tokens",
        noise_v.dims(),
        clean.dims()
    );
    // GaussianNoiser: lerp(latent, noise, σ), then lerp(clean, ., mask) = itself at mask 1.
    let video_latent = lerp(&clean, &noise_v, sigma)?;
    let audio_latent = lerp(&patchify_audio(&audio_x0)?, &noise_a, sigma)?;
    let ts = |t: usize| Tensor::full(sigma, (1, t, 1), dev);
    let sigma_t = Tensor::new(&[sigma], dev)?;
    Ok(Step {
        video: Modality {
            timesteps: ts(n)?,
            latent: video_latent,
            positions,
            context: g.get_f32("in.video_context", dev)?,
            context_mask: None,
            sigma: sigma_t.clone(),
            keyframes_mask: Some(keyframes_mask),
            attention_mask: None,
        },
        audio: Modality {
            timesteps: ts(audio_latent.dim(1)?)?,
            latent: audio_latent,
            positions: audio_positions(ashape.frames, dev)?,
            context: g.get_f32("in.audio_context", dev)?,
            context_mask: None,
            sigma: sigma_t,
            keyframes_mask: None,
            attention_mask: None,
        },
        vshape,
        ashape,
        keyframes,
        sigma,
    })
}

/// `EulerDiffusionStep` from σ to 0 on the X0 prediction (denoise mask 1 everywhere).
fn euler_to_zero(m: &Modality, velocity: &Tensor, sigma: f32) -> Result<Tensor> {
    let x0 = to_denoised(&m.latent, velocity, &m.timesteps)?;
    let v = ((&m.latent - &x0)? / sigma as f64)?;
    Ok((&m.latent + (v * (0.0 - sigma) as f64)?)?)
}

fn run(name: &str) -> Result<()> {
    let dev = device();
    let model = load_model(&dev)?;
    let g = SET.load(name)?;
    let s = build_step(&g, &dev)?;
    let mut c = Checks::new(&g);

    // Per-block hidden states (the slot tokens ride along, appended last).
    let pv = model.prepare(&model.video, &s.video, Some(&s.audio))?;
    let pa = model.prepare(&model.audio, &s.audio, Some(&s.video))?;
    let (mut vx, mut ax) = (pv.x.clone(), pa.x.clone());
    for (i, block) in model.transformer_blocks.iter().enumerate() {
        let (v, a) = block.forward(
            Some((&vx, &pv.args)),
            Some((&ax, &pa.args)),
            &Perturbations::none(),
        )?;
        (vx, ax) = (v.context("video out")?, a.context("audio out")?);
        c.check(&format!("dbg.block{i}.video_out"), &vx)?;
        c.check(&format!("dbg.block{i}.audio_out"), &ax)?;
    }

    let (vel_v, vel_a) = model.forward(&s.video, &s.audio, &Perturbations::none())?;
    let video = euler_to_zero(&s.video, &vel_v, s.sigma)?;
    let audio = euler_to_zero(&s.audio, &vel_a, s.sigma)?;
    let base = s.vshape.tokens();
    c.check(
        "out.video_x0",
        &unpatchify_video(&video.narrow(1, 0, base)?, s.vshape)?,
    )?;
    c.check("out.audio_x0", &unpatchify_audio(&audio, s.ashape)?)?;
    if !s.keyframes.is_empty() {
        let frame = VideoLatentShape {
            frames: 1,
            ..s.vshape
        };
        let per = frame.tokens();
        let slots = (0..s.keyframes.len())
            .map(|i| unpatchify_video(&video.narrow(1, base + i * per, per)?, frame))
            .collect::<candle_core::Result<Vec<_>>>()?;
        c.check("out.generated_keyframes", &Tensor::cat(&slots, 2)?)?;
    }
    Ok(c.finish(&["out.", "dbg."])?)
}

#[test]
fn transformer_matches_ltx_core() -> Result<()> {
    run("transformer")
}

#[test]
fn transformer_with_generated_keyframe_slots_matches_ltx_core() -> Result<()> {
    run("transformer_keyframes")
}

/// The file is loaded with ltx-core 1.2.0's rules: 2.5 layout flags from its own `config`, and
/// 1.2.0's A↔V AdaLN inputs.
#[test]
fn split_file_config() -> Result<()> {
    let ckpt = Checkpoint::open(weight_file("transformer")?)?;
    let cfg = ckpt.transformer_config()?;
    let resolved = SET.config_json("transformer.json")?;
    let flag = |k: &str| resolved[k].as_bool();
    assert_eq!(Some(cfg.ff_bias), flag("ff_bias"));
    assert_eq!(Some(cfg.audio_ff_bias), flag("audio_ff_bias"));
    assert_eq!(
        Some(cfg.use_keyframes_abs_pos_embedding),
        flag("use_keyframes_abs_pos_embedding")
    );
    assert_eq!(cfg.av_cross_adaln, AvCrossAdaln::OwnTimesteps);
    assert_eq!(Some(cfg.num_layers as u64), resolved["num_layers"].as_u64());
    Ok(())
}

/// The keyframe embedding changes exactly the marked tokens' inputs: without the mask the first
/// latent frame's patchified tokens are plain `patchify_proj` outputs.
#[test]
fn keyframe_embedding_touches_marked_tokens_only() -> Result<()> {
    let dev = device();
    let model = load_model(&dev)?;
    let g = SET.load("transformer_keyframes")?;
    let s = build_step(&g, &dev)?;
    let marked = model.prepare(&model.video, &s.video, None)?.x;
    let plain = Modality {
        keyframes_mask: None,
        attention_mask: None,
        ..s.video.clone()
    };
    let unmarked = model.prepare(&model.video, &plain, None)?.x;
    let emb = model
        .video
        .keyframes_abs_pos_embedding
        .clone()
        .context("2.5 model has the keyframe embedding")?;
    let diff = (&marked - &unmarked)?.squeeze(0)?;
    let mask = s
        .video
        .keyframes_mask
        .context("mask")?
        .flatten_all()?
        .to_vec1::<f32>()?;
    for (i, m) in mask.iter().enumerate() {
        let row = diff.get(i)?;
        let expected = if *m > 0.0 {
            emb.squeeze(0)?
        } else {
            row.zeros_like()?
        };
        let err = (&row - &expected)?.abs()?.max_all()?.to_scalar::<f32>()?;
        ensure!(err < 1e-5, "token {i} (mark {m}): off by {err}");
    }
    Ok(())
}
