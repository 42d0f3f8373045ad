//! `num_frames: "auto"` on an LTX-2.5 folder (the 2.5 golden set's tiny split weights): the engine
//! lets the duration head choose the length from the prompt's contexts, exactly as ltx-pipelines'
//! `resolve_num_frames` does (same contexts, same bounds, same 8k+1 snapping), and everything
//! downstream follows the chosen length: the video, the audio track, an `image_end` pinned to the
//! last frame. A model without a duration head refuses "auto" naming `num_frames`.

use candle_core::{DType, Device};
use ltx2_model::golden::GoldenSet;
use ltx2_model::text::{TextEncoder, TextEncoderOptions};
use ltx2_pipeline::components::{Models, PromptEncoder};
use ltx2_pipeline::engine::ModelFolder;
use ltx2_pipeline::{
    load_generator, AutoDuration, GenError, GenerateRequest, ImageCondition, ModelSource,
    NoProgress, RgbImage,
};

const PROMPT: &str = "a dog barks twice at the mailman";

fn request(auto: AutoDuration) -> GenerateRequest {
    GenerateRequest {
        prompt: PROMPT.into(),
        negative_prompt: String::new(),
        width: 64,
        height: 64,
        // The longest clip the request allows: 49 frames at 25 fps = 1.96 s.
        num_frames: 49,
        fps: 25.0,
        guidance_scale: 1.0,
        num_inference_steps: None,
        seed: 5,
        images: vec![],
        audio: None,
        include_audio: true,
        auto_duration: Some(auto),
        clip: None,
        keyframes: false,
        loras: vec![],
    }
}

/// What ltx-pipelines would choose: the duration head on the prompt's contexts, bounded by the
/// request (at most its `num_frames`, at least one latent step past the first frame).
fn expected_frames(auto: AutoDuration, longest: usize, fps: f64) -> anyhow::Result<(f32, usize)> {
    let dev = Device::Cpu;
    let files = match ModelFolder::discover(&GoldenSet::Ltx25.weights_path(""))? {
        ModelFolder::Split(f) => f,
        other => anyhow::bail!("the 2.5 weights are not a split model folder: {other:?}"),
    };
    let m = Models::load_split(&files, DType::F32, &dev)?;
    let text = TextEncoder::load_split(
        &files.text_encoder,
        &files.transformer,
        &TextEncoderOptions::default(),
        DType::F32,
        &dev,
    )?;
    let ctx = PromptEncoder::encode(&text, PROMPT)?;
    let head = m
        .duration_head
        .as_ref()
        .expect("the 2.5 folder has a duration head");
    let min = auto.min_seconds.max(9.0 / fps);
    let max = auto.max_seconds.min(longest as f64 / fps).max(min);
    let (s, f) = ltx2_model::duration_head::predict_num_frames(
        head,
        Some(&ctx.video),
        Some(&ctx.audio),
        fps,
        min,
        max,
    )?;
    Ok((s, f.clamp(9, longest)))
}

#[test]
fn auto_duration_follows_the_duration_head() -> anyhow::Result<()> {
    let folder = GoldenSet::Ltx25.weights_path("");
    let mut g = load_generator(&ModelSource::Path(folder), &Device::Cpu)?;
    assert!(g.info().auto_duration);

    // Bounds wide enough for the head's own choice, then a narrow one that must clamp it.
    let wide = AutoDuration {
        min_seconds: 0.1,
        max_seconds: 1.96,
    };
    let (seconds, frames) = expected_frames(wide, 49, 25.0)?;
    println!("duration head: {seconds:.4} s -> {frames} frames");
    let mut req = request(wide);
    let white = RgbImage {
        width: 8,
        height: 8,
        data: vec![255; 8 * 8 * 3],
    };
    // An image_end at the longest clip's last frame belongs to the chosen clip's last frame.
    req.images.push(ImageCondition {
        image: white,
        frame_index: 48,
        strength: 1.0,
    });
    let out = g.generate(&req, &NoProgress)?;
    assert_eq!(out.effective.num_frames as usize, frames);
    assert_eq!(out.video.frames.len(), frames);
    assert!(frames % 8 == 1 && frames <= 49);
    let note = out
        .effective
        .notes
        .iter()
        .find(|n| n.starts_with("num_frames auto"))
        .expect("a note says what the head chose");
    assert!(note.contains(&format!("{seconds:.2} s")), "{note}");
    let audio = out.audio.expect("audio asked for");
    let audio_seconds = audio.num_samples() as f64 / audio.sample_rate as f64;
    assert!(
        (audio_seconds - frames as f64 / 25.0).abs() < 0.05,
        "audio {audio_seconds} s for {frames} frames"
    );

    // A floor above the prediction wins, snapped to the grid inside the bounds.
    let floor = AutoDuration {
        min_seconds: 1.5,
        max_seconds: 1.96,
    };
    let (_, floored) = expected_frames(floor, 49, 25.0)?;
    let out = g.generate(&request(floor), &NoProgress)?;
    assert_eq!(out.video.frames.len(), floored);
    assert!(floored as f64 / 25.0 >= 1.5 - 8.0 / 25.0, "{floored}");
    Ok(())
}

#[test]
fn auto_duration_needs_a_duration_head() -> anyhow::Result<()> {
    let folder = GoldenSet::Ltx23.weights_path("");
    let mut g = load_generator(&ModelSource::Path(folder), &Device::Cpu)?;
    assert!(!g.info().auto_duration);
    match g.generate(&request(AutoDuration::default()), &NoProgress) {
        Err(GenError::InvalidInput { field, message }) => {
            assert_eq!(field, "num_frames");
            assert!(message.contains("duration head"), "{message}");
        }
        other => panic!("expected a num_frames error, got {:?}", other.map(|_| ())),
    }
    Ok(())
}
