//! The demo model end to end through the `Generator` API: sizes, frame count, audio, determinism
//! per seed, the 64-multiple rendering of two-stage sizes, and image/audio conditioning.

use ltx2_pipeline::{
    load_generator, AudioClip, GenError, GenerateRequest, ImageCondition, ModelSource, NoProgress,
    PipelineKind, Progress, ProgressEvent, RgbImage,
};

fn request(seed: u64) -> GenerateRequest {
    GenerateRequest {
        prompt: "a cat on a cushion".into(),
        negative_prompt: String::new(),
        width: 96,
        height: 64,
        num_frames: 9,
        fps: 24.0,
        guidance_scale: 1.0,
        num_inference_steps: Some(8),
        seed,
        images: vec![],
        audio: None,
        include_audio: true,
        auto_duration: None,
        clip: None,
        keyframes: false,
        loras: vec![],
    }
}

#[test]
fn demo_generates_deterministic_video_and_audio() -> anyhow::Result<()> {
    let mut g = load_generator(&ModelSource::Demo, &candle_core::Device::Cpu)?;
    let info = g.info();
    assert!(info.is_demo);
    assert_eq!(info.pipeline, PipelineKind::DistilledTwoStage);

    let a = g.generate(&request(1), &NoProgress)?;
    assert_eq!((a.video.width, a.video.height), (96, 64));
    assert_eq!(a.video.frames.len(), 9);
    assert!(a.video.frames.iter().all(|f| f.len() == 96 * 64 * 3));
    // 96 is not a multiple of 64: rendered at 128 and centre-cropped.
    assert_eq!(
        (a.effective.rendered_width, a.effective.rendered_height),
        (128, 64)
    );
    assert_eq!(a.effective.steps_per_stage, vec![8, 3]);
    let stages: Vec<&str> = a.timings.stages.iter().map(|(s, _)| s.as_str()).collect();
    assert_eq!(
        stages,
        [
            "text_encode",
            "stage1",
            "upsample",
            "stage2",
            "video_decode",
            "audio_decode"
        ]
    );
    let audio = a.audio.as_ref().expect("audio requested");
    assert_eq!(audio.sample_rate, 24000);
    assert_eq!(audio.channels.len(), 2);
    assert!(audio.channels[0].iter().all(|v| v.is_finite()));

    let b = g.generate(&request(1), &NoProgress)?;
    assert_eq!(a.video, b.video);
    let c = g.generate(&request(2), &NoProgress)?;
    assert_ne!(a.video.frames, c.video.frames);
    Ok(())
}

#[test]
fn demo_takes_images_and_audio() -> anyhow::Result<()> {
    let mut g = load_generator(&ModelSource::Demo, &candle_core::Device::Cpu)?;
    let image = RgbImage {
        width: 50,
        height: 40,
        data: (0..50 * 40 * 3).map(|i| (i % 251) as u8).collect(),
    };
    let clip = AudioClip {
        sample_rate: 16000,
        channels: vec![(0..8000).map(|i| (i as f32 * 0.05).sin() * 0.3).collect()],
    };
    let mut req = request(3);
    req.images = vec![
        ImageCondition {
            image: image.clone(),
            frame_index: 0,
            strength: 1.0,
        },
        ImageCondition {
            image,
            frame_index: 8,
            strength: 0.8,
        },
    ];
    req.audio = Some((clip.clone(), 1.0));
    let out = g.generate(&req, &NoProgress)?;
    assert_eq!(out.video.frames.len(), 9);
    // Strength-1 audio conditions the video and comes back unchanged.
    assert_eq!(out.audio.as_ref(), Some(&clip));
    Ok(())
}

struct CancelAfterFirstStep(std::sync::atomic::AtomicBool);

impl Progress for CancelAfterFirstStep {
    fn report(&self, event: ProgressEvent) {
        if matches!(event, ProgressEvent::Step { .. }) {
            self.0.store(true, std::sync::atomic::Ordering::SeqCst);
        }
    }
    fn is_cancelled(&self) -> bool {
        self.0.load(std::sync::atomic::Ordering::SeqCst)
    }
}

#[test]
fn demo_cancels_and_rejects_bad_input() -> anyhow::Result<()> {
    let mut g = load_generator(&ModelSource::Demo, &candle_core::Device::Cpu)?;
    let cancel = CancelAfterFirstStep(Default::default());
    assert!(matches!(
        g.generate(&request(1), &cancel),
        Err(GenError::Cancelled)
    ));
    let mut bad = request(1);
    bad.num_frames = 10;
    assert!(matches!(
        g.generate(&bad, &NoProgress),
        Err(GenError::InvalidInput {
            field: "num_frames",
            ..
        })
    ));
    let mut bad = request(1);
    bad.width = 100;
    assert!(matches!(
        g.generate(&bad, &NoProgress),
        Err(GenError::InvalidInput { field: "width", .. })
    ));
    Ok(())
}
