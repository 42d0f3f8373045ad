//! Loading a model folder in the official layout (`ModelSource::Path`) and the recipe it picks:
//! the demo weights written as a folder, with the checkpoint named as a dev or distilled release.

use ltx2_pipeline::demo::{write_demo_folder, CHECKPOINT_FILE, UPSAMPLER_FILE};
use ltx2_pipeline::engine::ModelFiles;
use ltx2_pipeline::{
    load_generator, GenError, GenerateRequest, ModelSource, NoProgress, PipelineKind,
};

fn folder(tag: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("ltx2-engine-folder-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    write_demo_folder(&dir).expect("demo folder");
    dir
}

fn request() -> GenerateRequest {
    GenerateRequest {
        prompt: "waves on a beach".into(),
        negative_prompt: "blurry".into(),
        width: 64,
        height: 64,
        num_frames: 9,
        fps: 25.0,
        guidance_scale: 3.0,
        num_inference_steps: Some(3),
        seed: 11,
        images: vec![],
        audio: None,
        include_audio: false,
        auto_duration: None,
        clip: None,
        keyframes: false,
        loras: vec![],
    }
}

#[test]
fn dev_checkpoint_runs_the_guided_scheduler_recipe() -> anyhow::Result<()> {
    let dir = folder("dev");
    std::fs::rename(
        dir.join(CHECKPOINT_FILE),
        dir.join("ltx-2-19b-dev.safetensors"),
    )?;
    let files = ModelFiles::discover(&dir)?;
    assert_eq!(files.pipeline(), PipelineKind::Dev);
    let mut g = load_generator(&ModelSource::Path(dir.clone()), &candle_core::Device::Cpu)?;
    assert!(!g.info().is_demo);
    let out = g.generate(&request(), &NoProgress)?;
    assert_eq!(out.effective.pipeline, PipelineKind::Dev);
    assert_eq!(out.effective.steps_per_stage, vec![3]);
    assert_eq!(out.effective.forwards_per_step, 4);
    assert!(out.effective.negative_prompt_used);
    assert_eq!(
        (out.effective.rendered_width, out.effective.rendered_height),
        (64, 64)
    );
    assert!(out.audio.is_none());
    assert_eq!(out.video.frames.len(), 9);

    let mut unguided = request();
    unguided.guidance_scale = 1.0;
    let out = g.generate(&unguided, &NoProgress)?;
    assert_eq!(out.effective.forwards_per_step, 1);
    assert!(!out.effective.negative_prompt_used);
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}

#[test]
fn distilled_without_upsampler_runs_one_stage() -> anyhow::Result<()> {
    let dir = folder("one-stage");
    std::fs::remove_file(dir.join(UPSAMPLER_FILE))?;
    let mut g = load_generator(&ModelSource::Path(dir.clone()), &candle_core::Device::Cpu)?;
    assert_eq!(g.info().pipeline, PipelineKind::DistilledOneStage);
    let out = g.generate(&request(), &NoProgress)?;
    assert_eq!(out.effective.steps_per_stage, vec![8]);
    let mut tiny = request();
    tiny.height = 32;
    assert!(matches!(
        g.generate(&tiny, &NoProgress),
        Err(GenError::InvalidInput {
            field: "height",
            ..
        })
    ));
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}

#[test]
fn folder_without_a_checkpoint_is_a_clear_error() {
    let dir = std::env::temp_dir().join(format!("ltx2-engine-empty-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    match load_generator(&ModelSource::Path(dir.clone()), &candle_core::Device::Cpu) {
        Err(GenError::InvalidInput {
            field: "model",
            message,
        }) => assert!(message.contains("checkpoint"), "{message}"),
        Err(e) => panic!("unexpected error {e}"),
        Ok(_) => panic!("an empty folder loaded"),
    }
    let _ = std::fs::remove_dir_all(&dir);
}
