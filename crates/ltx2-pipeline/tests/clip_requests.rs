//! Retake and extend through the engine (the LTX-2 golden weights folder, distilled): the output
//! keeps the clip's size, rate and length (a size that is not a multiple of 32 and a frame count
//! that is not 8k + 1 included), the same seed gives the same clip, a retake changes only what it
//! was asked to, extend continues the clip (its frames before the boundary are the clip through
//! the VAE) and chains without drift, and inconsistent requests are refused naming the field.
//! The recipe's numerics are checked against ltx-pipelines in retake_parity.

use std::path::PathBuf;

use candle_core::Device;
use ltx2_pipeline::{
    load_generator_with, AudioClip, ClipInput, ExtendInput, GenError, GenerateOutput,
    GenerateRequest, Generator, LoadOptions, ModelSource, NoProgress, RetakeInput, RgbImage,
    SourceClip,
};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn clip(n: usize, audio: bool) -> SourceClip {
    let (w, h) = (80u32, 48u32);
    let frames = (0..n)
        .map(|t| {
            let mut data = Vec::with_capacity((w * h * 3) as usize);
            for y in 0..h {
                for x in 0..w {
                    data.extend_from_slice(&[
                        ((x + 3 * t as u32) * 3) as u8,
                        (y * 5) as u8,
                        if (x / 8 + y / 8) % 2 == 0 { 200 } else { 40 },
                    ]);
                }
            }
            RgbImage {
                width: w,
                height: h,
                data,
            }
        })
        .collect();
    let seconds = n as f64 / 24.0;
    let tone: Vec<f32> = (0..(seconds * 16_000.0) as usize)
        .map(|i| (0.3 * (i as f64 * 440.0 * std::f64::consts::TAU / 16_000.0).sin()) as f32)
        .collect();
    SourceClip {
        frames,
        fps: 24.0,
        audio: audio.then(|| AudioClip {
            sample_rate: 16_000,
            channels: vec![tone.clone(), tone],
        }),
    }
}

fn request(clip: ClipInput) -> GenerateRequest {
    GenerateRequest {
        prompt: "rain on a tin roof".into(),
        negative_prompt: String::new(),
        width: 288,
        height: 512,
        num_frames: 49,
        fps: 25.0,
        guidance_scale: 1.0,
        num_inference_steps: None,
        seed: 11,
        images: vec![],
        audio: None,
        include_audio: true,
        auto_duration: None,
        clip: Some(clip),
        keyframes: false,
        loras: vec![],
    }
}

fn retake(c: &SourceClip, span: (f64, f64), video: bool, audio: bool) -> GenerateRequest {
    request(ClipInput::Retake(RetakeInput {
        clip: c.clone(),
        start_seconds: span.0,
        end_seconds: span.1,
        regenerate_video: video,
        regenerate_audio: audio,
    }))
}

fn engine() -> anyhow::Result<Box<dyn Generator>> {
    let folder = ModelSource::Path(root().join("testdata/golden/weights"));
    Ok(load_generator_with(
        &folder,
        &Device::Cpu,
        &LoadOptions::default(),
    )?)
}

fn mean_abs(a: &[Vec<u8>], b: &[Vec<u8>]) -> f64 {
    let (mut s, mut n) = (0f64, 0usize);
    for (x, y) in a.iter().zip(b) {
        for (p, q) in x.iter().zip(y) {
            s += p.abs_diff(*q) as f64;
            n += 1;
        }
    }
    s / n as f64
}

fn geometry(o: &GenerateOutput) -> (u32, u32, usize, f32) {
    (
        o.video.width,
        o.video.height,
        o.video.frames.len(),
        o.video.fps,
    )
}

#[test]
fn retake_keeps_the_clip_geometry_and_changes_only_the_span() -> anyhow::Result<()> {
    let mut g = engine()?;
    let c = clip(20, true);
    let both = g.generate(&retake(&c, (0.3, 0.6), true, true), &NoProgress)?;
    assert_eq!(geometry(&both), (80, 48, 20, 24.0));
    assert_eq!(both.effective.pipeline, ltx2_pipeline::PipelineKind::Retake);
    let audio = both.audio.as_ref().expect("audio");
    println!(
        "retake audio {:.4} s for {:.4} s of video",
        audio.duration_seconds(),
        20.0 / 24.0
    );
    // The audio VAE works in 40 ms frames; the MP4 writer pads the rest.
    assert!((audio.duration_seconds() - 20.0 / 24.0).abs() <= 0.04);
    let again = g.generate(&retake(&c, (0.3, 0.6), true, true), &NoProgress)?;
    assert_eq!(
        both.video.frames, again.video.frames,
        "same seed, same clip"
    );
    // Audio only keeps the video latent (the clip through the VAE), video only keeps the audio
    // latent: each changes what it regenerates. (Where in the frames a latent change shows is
    // not checked here: the tiny model's random-weight decoder is not local; the masks and
    // latents are checked against ltx-pipelines in retake_parity.)
    let kept_video = g.generate(&retake(&c, (0.3, 0.6), false, true), &NoProgress)?;
    let kept_audio = g.generate(&retake(&c, (0.3, 0.6), true, false), &NoProgress)?;
    assert_ne!(kept_video.video.frames, kept_audio.video.frames);
    assert_ne!(kept_video.audio, kept_audio.audio);
    assert_ne!(kept_audio.audio, both.audio);
    let kept_audio2 = g.generate(&retake(&c, (0.3, 0.6), true, false), &NoProgress)?;
    assert_eq!(kept_audio.audio, kept_audio2.audio);

    for (req, field, needle) in [
        (
            retake(&c, (0.5, 1.2), true, true),
            "retake",
            "inside the clip",
        ),
        (retake(&c, (0.4, 0.3), true, true), "retake", "start < end"),
        (
            retake(&clip(20, false), (0.1, 0.3), false, true),
            "retake",
            "no audio track",
        ),
        (
            retake(&c, (0.1, 0.3), false, false),
            "retake",
            "regenerates nothing",
        ),
    ] {
        match g.generate(&req, &NoProgress) {
            Err(GenError::InvalidInput { field: f, message }) => {
                assert_eq!(f, field);
                assert!(message.contains(needle), "{message}");
            }
            other => panic!("expected a refusal, got {:?}", other.map(|o| o.effective)),
        }
    }
    Ok(())
}

#[test]
fn extend_continues_the_clip_and_chains_without_drift() -> anyhow::Result<()> {
    let mut g = engine()?;
    let c = clip(17, true);
    let ext = |clip: &SourceClip, frames: u32| {
        request(ClipInput::Extend(ExtendInput {
            clip: clip.clone(),
            frames,
        }))
    };
    let once = g.generate(&ext(&c, 16), &NoProgress)?;
    assert_eq!(once.effective.pipeline, ltx2_pipeline::PipelineKind::Extend);
    assert_eq!(geometry(&once), (80, 48, 33, 24.0));
    let audio = once.audio.as_ref().expect("audio");
    println!(
        "extend audio {:.4} s for {:.4} s of video",
        audio.duration_seconds(),
        33.0 / 24.0
    );
    assert!((audio.duration_seconds() - 33.0 / 24.0).abs() <= 0.05);
    // The audio up to the crossfade is the clip's own, resampled to the output rate.
    let own = ltx2_pipeline::media::audio::resampler(16_000, audio.sample_rate)
        .expect("16 kHz resamples")
        .process(&c.audio.as_ref().unwrap().channels[0]);
    let boundary = (17.0 / 24.0 * audio.sample_rate as f64).round() as usize;
    let fade = (0.02 * audio.sample_rate as f64).round() as usize;
    assert_eq!(
        &audio.channels[0][..boundary - fade],
        &own[..boundary - fade],
        "the clip's audio before the boundary"
    );
    assert_ne!(
        &audio.channels[0][boundary..boundary + 100],
        &own[boundary - 100..boundary]
    );
    assert!(
        once.effective
            .notes
            .iter()
            .any(|n| n.contains("crossfaded")),
        "{:?}",
        once.effective.notes
    );
    // The frames before the boundary are the clip's own (the MP4 re-encode is all that
    // touches them), the first new frame starts from the clip's last one.
    for (i, f) in once.video.frames[..17].iter().enumerate() {
        assert_eq!(f, &c.frames[i].data, "frame {i} is not the clip's");
    }
    assert_ne!(once.video.frames[17], c.frames[16].data);
    // Chaining: the extended clip extended again keeps size, rate and audio/video length.
    let as_clip = SourceClip {
        frames: once
            .video
            .frames
            .iter()
            .map(|d| RgbImage {
                width: 80,
                height: 48,
                data: d.clone(),
            })
            .collect(),
        fps: once.video.fps as f64,
        audio: once.audio.clone(),
    };
    let twice = g.generate(&ext(&as_clip, 8), &NoProgress)?;
    assert_eq!(geometry(&twice), (80, 48, 41, 24.0));
    let a2 = twice.audio.as_ref().expect("audio");
    println!(
        "extended twice: audio {:.4} s for {:.4} s of video",
        a2.duration_seconds(),
        41.0 / 24.0
    );
    assert!((a2.duration_seconds() - 41.0 / 24.0).abs() <= 0.05);
    match g.generate(&ext(&c, 0), &NoProgress) {
        Err(GenError::InvalidInput { field, .. }) => assert_eq!(field, "extend"),
        other => panic!("expected a refusal, got {:?}", other.map(|o| o.effective)),
    }
    Ok(())
}

/// What extend must equal, at the latent level: on the canvas (the clip, its last frame repeated
/// for the new frames) the temporal mask is 0 on the clip's complete latent frames and 1 after
/// (the retake machinery's `TemporalRegionMask` from the boundary on), and after denoising those
/// kept latent frames are the clip's encoding exactly, audio likewise up to the clip's audio end.
/// Then the frames before the boundary, decoded, against the clip encoded and decoded alone.
#[test]
fn extend_keeps_the_clip_latents_exactly() -> anyhow::Result<()> {
    use ltx2_pipeline::components::Models;
    use ltx2_pipeline::denoise::Contexts;
    use ltx2_pipeline::guidance::Guidance;
    use ltx2_pipeline::noise::SeededNoise;
    use ltx2_pipeline::pipelines::retake::{canvas, retake, RetakeSpec};
    use ltx2_pipeline::schedule::DISTILLED_SIGMAS;

    let w = root().join("testdata/golden/weights");
    let d = Device::Cpu;
    let m = Models::load(
        &w.join("model.safetensors"),
        None,
        candle_core::DType::F32,
        &d,
    )?;
    let c = clip(17, true);
    let (frames, cw, ch) = canvas(&c.frames, 33);
    assert_eq!((frames.len(), cw, ch), (33, 96, 64));
    let boundary = 17.0 / 24.0;
    let spec = RetakeSpec {
        frames: &frames,
        width: cw,
        height: ch,
        fps: 24.0,
        audio: c.audio.as_ref(),
        video_span: Some((boundary, f64::INFINITY)),
        audio_span: Some((boundary, f64::INFINITY)),
    };
    let ctx = Contexts {
        video: candle_core::Tensor::randn(0f32, 1.0, (1, 16, 32), &d)?,
        audio: candle_core::Tensor::randn(0f32, 1.0, (1, 16, 32), &d)?,
    };
    let mut hook = |_: &str, _: &ltx2_pipeline::denoise::StepEvent<'_>| Ok(());
    let out = retake(
        &m,
        &spec,
        &DISTILLED_SIGMAS,
        &ctx,
        None,
        &Guidance::disabled(),
        &mut SeededNoise::new(3),
        &mut hook,
    )?;
    // 5 latent frames of 2x3 tokens: the first 3 kept.
    let mask = out.video_mask.flatten_all()?.to_vec1::<f32>()?;
    assert_eq!(mask, [vec![0.0; 18], vec![1.0; 12]].concat());
    let kept = out.latents.video_latent.narrow(2, 0, 3)?;
    let clip_latent = out.clip_video_latent.narrow(2, 0, 3)?;
    let diff = (kept - &clip_latent)?
        .abs()?
        .max_all()?
        .to_scalar::<f32>()?;
    assert_eq!(diff, 0.0, "kept latent frames moved by {diff}");
    // The clip encoded alone (17 frames) gives the same first latent frames (causal encoder).
    let alone = m.encode_video(&canvas(&c.frames, 17).0, ch, cw)?;
    let enc = (alone - &clip_latent)?
        .abs()?
        .max_all()?
        .to_scalar::<f32>()?;
    assert!(
        enc < 1e-5,
        "the canvas changed the clip's encoding by {enc}"
    );
    let amask = out.audio_mask.flatten_all()?.to_vec1::<f32>()?;
    let akept = amask.iter().take_while(|&&v| v == 0.0).count();
    assert!(akept > 0 && amask[akept..].iter().all(|&v| v == 1.0));
    let a = out.latents.audio_latent.narrow(2, 0, akept)?;
    let ca = out
        .clip_audio_latent
        .as_ref()
        .expect("audio")
        .narrow(2, 0, akept)?;
    assert_eq!((a - ca)?.abs()?.max_all()?.to_scalar::<f32>()?, 0.0);
    // Decoded: the whole canvas at once (no seam) against the clip alone through the VAE. The
    // tiny model's random-weight decoder is not local in time, so this is reported, not bounded.
    let mut n = SeededNoise::new(5);
    let whole = ltx2_pipeline::components::pixels_to_frames(
        &m.decode_video(&out.latents.video_latent, &mut n)?,
        80,
        48,
    )?;
    let mut n = SeededNoise::new(5);
    let round_trip = ltx2_pipeline::components::pixels_to_frames(
        &m.decode_video(&clip_latent, &mut n)?,
        80,
        48,
    )?;
    println!(
        "extend: frames 0-16 vs the clip through the VAE alone: mean |diff| {:.2} (random-weight decoder)",
        mean_abs(&whole[..17], &round_trip[..17])
    );
    Ok(())
}
