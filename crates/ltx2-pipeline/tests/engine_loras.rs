//! Per-request LoRA sets on a loaded engine (the LTX-2 golden weights folder, the official-layout
//! LoRAs of testdata/golden-pipelines/loras): a set changes the output, the same set gives the
//! same output again, going back to no LoRA gives the base output bit for bit (the base layers
//! are restored, nothing reloaded), `effective.loras` echoes the set, and names that are paths,
//! unknown, doubled, or LoRAs that do not fit the model are refused naming `loras`. The fusion
//! numerics themselves are checked against ltx-core in ltx2-model's lora_fusion test.

use std::path::PathBuf;

use candle_core::Device;
use ltx2_pipeline::{
    load_generator_with, GenError, GenerateRequest, LoadOptions, LoraChoice, ModelSource,
    NoProgress,
};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A dev model folder (the LTX-2 golden weights under the official dev names) with the upscaler
/// and the generation's distilled LoRA: the two-stage dev setup.
fn dev_folder(tag: &str) -> anyhow::Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("ltx2-dev-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    let w = root().join("testdata/golden/weights");
    for (src, dst) in [
        (w.join("model.safetensors"), "ltx-2-19b-dev.safetensors"),
        (
            w.join("upsampler.safetensors"),
            "ltx-2-spatial-upscaler-x2-1.0.safetensors",
        ),
        (w.join("gemma"), "gemma"),
        (
            root().join("testdata/golden-pipelines/loras/2.0-distilled.safetensors"),
            "ltx-2-19b-distilled-lora-384.safetensors",
        ),
    ] {
        std::os::unix::fs::symlink(src.canonicalize()?, dir.join(dst))?;
    }
    Ok(dir)
}

fn request(loras: &[(&str, f32)]) -> GenerateRequest {
    GenerateRequest {
        prompt: "a red fox runs through fresh snow".into(),
        negative_prompt: String::new(),
        width: 64,
        height: 64,
        num_frames: 9,
        fps: 24.0,
        guidance_scale: 1.0,
        num_inference_steps: None,
        seed: 7,
        images: vec![],
        audio: None,
        include_audio: false,
        auto_duration: None,
        clip: None,
        keyframes: false,
        loras: loras
            .iter()
            .map(|(n, s)| LoraChoice {
                name: n.to_string(),
                strength: *s,
            })
            .collect(),
    }
}

#[test]
fn lora_sets_switch_per_request() -> anyhow::Result<()> {
    let options = LoadOptions {
        lora_dir: Some(root().join("testdata/golden-pipelines/loras")),
        ..Default::default()
    };
    let folder = ModelSource::Path(root().join("testdata/golden/weights"));
    let mut g = load_generator_with(&folder, &Device::Cpu, &options)?;
    let frames = |r: &GenerateRequest, g: &mut Box<dyn ltx2_pipeline::Generator>| {
        g.generate(r, &NoProgress)
            .map(|o| (o.video.frames, o.effective.loras))
    };
    let (base, none) = frames(&request(&[]), &mut g)?;
    assert!(none.is_empty());
    let (with_a, echoed) = frames(&request(&[("2.0-a", 0.8)]), &mut g)?;
    assert_eq!(echoed, request(&[("2.0-a", 0.8)]).loras);
    assert_ne!(base, with_a, "the LoRA changed nothing");
    let (stack, _) = frames(
        &request(&[("2.0-a", 0.6), ("2.0-b.safetensors", 1.3)]),
        &mut g,
    )?;
    assert_ne!(stack, with_a);
    let (again, _) = frames(&request(&[("2.0-a", 0.8)]), &mut g)?;
    assert_eq!(again, with_a, "the same set must give the same video");
    let (back, _) = frames(&request(&[]), &mut g)?;
    assert_eq!(
        back, base,
        "without LoRAs the base model must come back exactly"
    );

    for (loras, needle) in [
        (
            vec![("../golden-pipelines/loras/2.0-a", 1.0)],
            "plain file name",
        ),
        (vec![("nope", 1.0)], "no LoRA named"),
        (
            vec![("2.0-a", 1.0), ("2.0-a.safetensors", 0.5)],
            "already in the set",
        ),
        (vec![("2.0-a", f32::NAN)], "strength"),
        (vec![("2.3-a", 1.0)], "to_gate_logits"),
    ] {
        match g.generate(&request(&loras), &NoProgress) {
            Err(GenError::InvalidInput { field, message }) => {
                assert_eq!(field, "loras");
                assert!(message.contains(needle), "{message}");
            }
            other => panic!(
                "{loras:?}: expected a loras error, got {:?}",
                other.map(|_| ())
            ),
        }
        // A refused set leaves the base model in place.
        let (after, _) = frames(&request(&[]), &mut g)?;
        assert_eq!(after, base);
    }
    Ok(())
}

#[test]
fn without_a_lora_folder_loras_are_refused() -> anyhow::Result<()> {
    let folder = ModelSource::Path(root().join("testdata/golden/weights"));
    let mut g = load_generator_with(&folder, &Device::Cpu, &LoadOptions::default())?;
    match g.generate(&request(&[("2.0-a", 1.0)]), &NoProgress) {
        Err(GenError::InvalidInput { field, message }) => {
            assert_eq!(field, "loras");
            assert!(message.contains("--lora-dir"), "{message}");
        }
        other => panic!("expected a loras error, got {:?}", other.map(|_| ())),
    }
    Ok(())
}

/// A dev checkpoint with the upscaler and its generation's distilled LoRA in the folder runs the
/// official dev two-stage recipe (guided half-size stage, distilled stage 2 with the LoRA fused
/// in), with or without user LoRAs, and says so; the same request twice gives the same video
/// (the stage-2 LoRA set is switched back for stage 1 of the next request).
#[test]
fn dev_checkpoint_with_distilled_lora_runs_two_stages() -> anyhow::Result<()> {
    let dir = dev_folder("two-stage")?;
    let options = LoadOptions {
        lora_dir: Some(root().join("testdata/golden-pipelines/loras")),
        ..Default::default()
    };
    let mut g = load_generator_with(&ModelSource::Path(dir.clone()), &Device::Cpu, &options)?;
    assert_eq!(g.info().pipeline, ltx2_pipeline::PipelineKind::DevTwoStage);
    let mut req = request(&[("2.0-a", 0.7)]);
    req.guidance_scale = 3.0;
    req.num_inference_steps = Some(2);
    let a = g.generate(&req, &NoProgress)?;
    assert_eq!(
        a.effective.pipeline,
        ltx2_pipeline::PipelineKind::DevTwoStage
    );
    assert_eq!(a.effective.steps_per_stage, vec![2, 3]);
    assert!(a.effective.negative_prompt_used);
    assert!(
        a.effective
            .notes
            .iter()
            .any(|n| n.contains("ltx-2-19b-distilled-lora-384.safetensors")),
        "{:?}",
        a.effective.notes
    );
    let plain = g.generate(&request(&[]), &NoProgress)?;
    let b = g.generate(&req, &NoProgress)?;
    assert_eq!(a.video.frames, b.video.frames);
    assert_ne!(a.video.frames, plain.video.frames);
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}

/// One request's frames and its `loras:` notes.
type Run = (Vec<Vec<u8>>, Vec<String>);

/// With a cache budget, switching back to a recently used set swaps its fused layers in without
/// fusing again, and gives the same video as fusing; without one it fuses every time.
#[test]
fn fused_sets_are_reused_within_the_cache_budget() -> anyhow::Result<()> {
    let run = |budget: u64| -> anyhow::Result<Vec<Run>> {
        let options = LoadOptions {
            lora_dir: Some(root().join("testdata/golden-pipelines/loras")),
            lora_cache_bytes: budget,
            ..Default::default()
        };
        let folder = ModelSource::Path(root().join("testdata/golden/weights"));
        let mut g = load_generator_with(&folder, &Device::Cpu, &options)?;
        let mut out = vec![];
        for set in [
            &[("2.0-a", 0.8)][..],
            &[],
            &[("2.0-b", 1.0)],
            &[("2.0-a", 0.8)],
        ] {
            let o = g.generate(&request(set), &NoProgress)?;
            let notes = o
                .effective
                .notes
                .into_iter()
                .filter(|n| n.starts_with("loras:"))
                .collect();
            out.push((o.video.frames, notes));
        }
        Ok(out)
    };
    let cached = run(1 << 30)?;
    let uncached = run(0)?;
    println!("{:?}", cached.iter().map(|c| &c.1).collect::<Vec<_>>());
    assert!(cached[0].1[0].contains("fused in"), "{:?}", cached[0].1);
    assert!(cached[1].1.is_empty(), "no LoRA: nothing to say");
    assert!(
        cached[3].1[0].contains("reused from the cache"),
        "{:?}",
        cached[3].1
    );
    assert!(uncached[3].1[0].contains("fused in"), "{:?}", uncached[3].1);
    assert_eq!(cached[3].0, cached[0].0);
    assert_eq!(cached[3].0, uncached[3].0);
    assert_eq!(cached[2].0, uncached[2].0);
    Ok(())
}

/// Frames of a moving bright bar on grey (a stand-in for a pose / depth video).
fn control_frames(n: usize, shift: usize) -> Vec<ltx2_pipeline::RgbImage> {
    (0..n)
        .map(|t| {
            let (w, h) = (48u32, 40u32);
            let mut data = Vec::with_capacity((w * h * 3) as usize);
            for _y in 0..h {
                for x in 0..w {
                    let on = (x as usize + 48 - (3 * t + shift) % 48) % 48 < 6;
                    data.extend_from_slice(&if on { [240, 240, 240] } else { [60, 60, 60] });
                }
            }
            ltx2_pipeline::RgbImage {
                width: w,
                height: h,
                data,
            }
        })
        .collect()
}

fn with_control(mut req: GenerateRequest, frames: Vec<ltx2_pipeline::RgbImage>) -> GenerateRequest {
    req.clip = Some(ltx2_pipeline::ClipInput::Control(
        ltx2_pipeline::ControlVideo {
            frames,
            strength: 1.0,
            attention_strength: 0.5,
        },
    ));
    req
}

/// A request with a control video runs ltx-pipelines' ICLoraPipeline (its numerics are checked
/// in ic_lora_parity): the reference scale comes from the IC-LoRA's metadata, the output has the
/// requested size, the control video changes the result, the same request gives the same video,
/// stage 2 ran without LoRAs yet the next plain request still gets the exact base model, and
/// inconsistent requests are refused naming the field.
#[test]
fn control_video_runs_the_ic_lora_recipe() -> anyhow::Result<()> {
    let options = LoadOptions {
        lora_dir: Some(root().join("testdata/golden-pipelines/loras")),
        ..Default::default()
    };
    let folder = ModelSource::Path(root().join("testdata/golden/weights"));
    let mut g = load_generator_with(&folder, &Device::Cpu, &options)?;
    assert_eq!(
        g.info().pipeline,
        ltx2_pipeline::PipelineKind::DistilledTwoStage
    );
    let base = g.generate(&request(&[]), &NoProgress)?;
    let req = with_control(request(&[("2.0-ic", 1.0)]), control_frames(12, 0));
    let a = g.generate(&req, &NoProgress)?;
    assert_eq!(a.effective.pipeline, ltx2_pipeline::PipelineKind::IcLora);
    assert_eq!(a.effective.steps_per_stage, vec![8, 3]);
    assert_eq!((a.video.width, a.video.height), (64, 64));
    // reference_downscale_factor 2: stage 1 / 2 must be a multiple of 32 -> rendered at 128.
    assert_eq!(
        (a.effective.rendered_width, a.effective.rendered_height),
        (128, 128)
    );
    let notes = a.effective.notes.join(" | ");
    assert!(
        notes.contains("IC-LoRA: 9 of the control video's 12 frames read at 32x32 (1/2"),
        "{notes}"
    );
    let other = g.generate(
        &with_control(request(&[("2.0-ic", 1.0)]), control_frames(12, 20)),
        &NoProgress,
    )?;
    assert_ne!(
        a.video.frames, other.video.frames,
        "the control video changed nothing"
    );
    let again = g.generate(&req, &NoProgress)?;
    assert_eq!(a.video.frames, again.video.frames);
    let back = g.generate(&request(&[]), &NoProgress)?;
    assert_eq!(
        back.video.frames, base.video.frames,
        "the base model must come back exactly"
    );

    let refused = |r: GenerateRequest, g: &mut Box<dyn ltx2_pipeline::Generator>| match g
        .generate(&r, &NoProgress)
    {
        Err(GenError::InvalidInput { field, message }) => (field, message),
        other => panic!("expected a refusal, got {:?}", other.map(|o| o.effective)),
    };
    let (field, message) = refused(with_control(request(&[]), control_frames(9, 0)), &mut g);
    assert_eq!(field, "control_video");
    assert!(message.contains("IC-LoRA"), "{message}");
    let mut strong = with_control(request(&[("2.0-ic", 1.0)]), control_frames(9, 0));
    if let Some(ltx2_pipeline::ClipInput::Control(c)) = &mut strong.clip {
        c.attention_strength = 1.5;
    }
    let (field, message) = refused(strong, &mut g);
    assert_eq!(field, "control_video");
    assert!(message.contains("attention_strength"), "{message}");
    let mut with_audio = with_control(request(&[("2.0-ic", 1.0)]), control_frames(9, 0));
    with_audio.audio = Some((
        ltx2_pipeline::AudioClip {
            sample_rate: 16_000,
            channels: vec![vec![0.0; 16_000]; 2],
        },
        1.0,
    ));
    let (field, _) = refused(with_audio, &mut g);
    assert_eq!(field, "audio");
    Ok(())
}

/// On a dev checkpoint with the two-stage setup, `keyframes` select ltx-pipelines'
/// KeyframeInterpolationPipeline and audio at strength 1 its A2VidPipelineTwoStage (numerics in
/// timeline_parity); the response says which ran and returns the conditioning audio unchanged.
#[test]
fn dev_two_stage_setup_runs_keyframes_and_audio_to_video() -> anyhow::Result<()> {
    let dir = dev_folder("timeline")?;
    let mut g = load_generator_with(
        &ModelSource::Path(dir.clone()),
        &Device::Cpu,
        &LoadOptions::default(),
    )?;
    let img = |seed: u8| ltx2_pipeline::RgbImage {
        width: 24,
        height: 16,
        data: (0..24 * 16 * 3)
            .map(|i| (i as u8).wrapping_mul(seed))
            .collect(),
    };
    let mut req = request(&[]);
    req.num_frames = 17;
    req.num_inference_steps = Some(2);
    req.guidance_scale = 3.0;
    req.images = [(0, 3), (11, 5), (16, 7)]
        .into_iter()
        .map(|(f, s)| ltx2_pipeline::ImageCondition {
            image: img(s),
            frame_index: f,
            strength: 0.9,
        })
        .collect();
    let combined = g.generate(&req, &NoProgress)?;
    assert_eq!(
        combined.effective.pipeline,
        ltx2_pipeline::PipelineKind::DevTwoStage
    );
    req.keyframes = true;
    let keyframed = g.generate(&req, &NoProgress)?;
    assert_eq!(
        keyframed.effective.pipeline,
        ltx2_pipeline::PipelineKind::KeyframeInterpolation
    );
    assert_ne!(combined.video.frames, keyframed.video.frames);

    let mut a2v = request(&[]);
    a2v.num_inference_steps = Some(2);
    a2v.guidance_scale = 3.0;
    a2v.include_audio = true;
    let clip = ltx2_pipeline::AudioClip {
        sample_rate: 24_000,
        channels: vec![
            (0..12_000)
                .map(|i| (i as f32 * 0.05).sin() * 0.3)
                .collect::<Vec<f32>>();
            2
        ],
    };
    a2v.audio = Some((clip.clone(), 1.0));
    let out = g.generate(&a2v, &NoProgress)?;
    assert_eq!(
        out.effective.pipeline,
        ltx2_pipeline::PipelineKind::A2vidTwoStage
    );
    assert_eq!(out.audio.as_ref(), Some(&clip));
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}
