//! Model-folder discovery for the LTX-2.5 split layout (the 2.5 golden set's `weights/`, laid out
//! like the Hugging Face repo): each component file is recognised by its header, and a folder
//! with a missing or mismatched component is refused naming the file and why.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use ltx2_model::generation::Generation;
use ltx2_model::golden::GoldenSet;
use ltx2_pipeline::engine::{ModelFolder, SplitModelFiles};
use ltx2_pipeline::{GenError, PipelineKind};

fn weights() -> PathBuf {
    GoldenSet::Ltx25.weights_path("")
}

/// A copy of the 2.5 weights folder (symlinks, so nothing is duplicated) to edit.
fn copy_folder(tag: &str) -> PathBuf {
    let dst = std::env::temp_dir().join(format!("ltx2-model-folder-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dst);
    fn link_tree(src: &Path, dst: &Path) {
        std::fs::create_dir_all(dst).unwrap();
        for e in std::fs::read_dir(src).unwrap() {
            let p = e.unwrap().path();
            let to = dst.join(p.file_name().unwrap());
            if p.is_dir() {
                link_tree(&p, &to);
            } else {
                std::os::unix::fs::symlink(std::path::absolute(&p).unwrap(), &to).unwrap();
            }
        }
    }
    link_tree(&weights(), &dst);
    dst
}

/// Rewrites `path` (a link into the golden set) as a real file whose metadata has `key = value`.
fn set_metadata(path: &Path, key: &str, value: &str) {
    let bytes = std::fs::read(path).unwrap();
    let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
    let mut metadata: HashMap<String, String> = meta.metadata().clone().unwrap_or_default();
    metadata.insert(key.into(), value.into());
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let views: Vec<(String, safetensors::tensor::TensorView<'_>)> = st.tensors();
    let out = safetensors::serialize(views, Some(metadata)).unwrap();
    std::fs::remove_file(path).unwrap();
    std::fs::write(path, out).unwrap();
}

fn discover_split(dir: &Path) -> Result<SplitModelFiles, GenError> {
    match ModelFolder::discover(dir)? {
        ModelFolder::Split(f) => Ok(f),
        ModelFolder::Single(f) => panic!("expected the split layout, got {f:?}"),
    }
}

#[test]
fn the_split_release_layout_is_recognised_by_its_headers() -> anyhow::Result<()> {
    let dir = weights();
    let f = discover_split(&dir)?;
    assert_eq!(f.generation, Generation::Ltx25);
    assert_eq!(
        f.transformer,
        dir.join(ltx2_pipeline::model_files::TRANSFORMER_FILE)
    );
    assert_eq!(
        f.text_encoder,
        dir.join(ltx2_pipeline::model_files::TEXT_ENCODER_FILE)
    );
    // The diffusion decoder is the default video VAE; the conv one is there too.
    assert_eq!(
        f.video_vae,
        dir.join(ltx2_pipeline::model_files::VIDEO_VAE_FILE)
    );
    assert_eq!(
        f.audio_vae,
        dir.join(ltx2_pipeline::model_files::AUDIO_VAE_FILE)
    );
    assert_eq!(
        f.upsampler,
        Some(dir.join(ltx2_pipeline::model_files::UPSAMPLER_FILE))
    );
    assert_eq!(
        f.duration_head,
        Some(dir.join(ltx2_pipeline::model_files::DURATION_HEAD_FILE))
    );
    assert_eq!(f.pipeline(), PipelineKind::DistilledTwoStage);

    // Flat folder with renamed files: the headers alone decide.
    let flat = std::env::temp_dir().join(format!("ltx2-model-folder-flat-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&flat);
    std::fs::create_dir_all(&flat)?;
    for (i, p) in [&f.transformer, &f.text_encoder, &f.video_vae, &f.audio_vae]
        .into_iter()
        .enumerate()
    {
        std::os::unix::fs::symlink(
            std::path::absolute(p)?,
            flat.join(format!("part{i}.safetensors")),
        )?;
    }
    let g = discover_split(&flat)?;
    assert_eq!(
        std::fs::canonicalize(&g.text_encoder)?,
        std::fs::canonicalize(&f.text_encoder)?
    );
    assert_eq!(
        std::fs::canonicalize(&g.video_vae)?,
        std::fs::canonicalize(&f.video_vae)?
    );
    assert_eq!(g.upsampler, None);
    let _ = std::fs::remove_dir_all(&flat);
    Ok(())
}

#[test]
fn a_missing_component_is_named() {
    let dir = copy_folder("missing");
    std::fs::remove_file(dir.join(ltx2_pipeline::model_files::TEXT_ENCODER_FILE)).unwrap();
    let err = discover_split(&dir).unwrap_err().to_string();
    assert!(
        err.contains("no text encoder file") && err.contains("gemma4-12b-with-proj-ltx-2.5"),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_component_of_another_generation_is_refused_naming_the_file() {
    let dir = copy_folder("mismatch");
    // Both video VAE files now claim to be LTX-2.3's.
    for f in [
        ltx2_pipeline::model_files::VIDEO_VAE_FILE,
        ltx2_pipeline::model_files::VIDEO_VAE_CONV_FILE,
    ] {
        set_metadata(&dir.join(f), "model_version", "2.3.0");
    }
    let err = discover_split(&dir).unwrap_err().to_string();
    assert!(
        err.contains("ltx-2.5-video-vae") && err.contains("LTX-2.3") && err.contains("2.3.0"),
        "{err}"
    );
    assert!(err.contains("video VAE"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}
