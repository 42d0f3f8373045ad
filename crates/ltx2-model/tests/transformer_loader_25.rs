//! The LTX-2.5 split transformer file through the checked loader: its generation and Gemma
//! declaration from the metadata, a layout that is exactly what its `config` implies (the golden
//! parity of the loaded model is `ltx2-pipeline`'s `transformer_parity_25`), and the errors on
//! edited copies: missing 2.5 tensors, video feed-forward biases in a bias-free file, a Gemma that
//! does not belong to it.

use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use candle_core::{DType, Device};
use ltx2_model::checkpoint::{Checkpoint, CheckpointError, TRANSFORMER_PREFIX};
use ltx2_model::generation::{check_gemma_source, Evidence, Generation};
use ltx2_model::golden::GoldenSet;
use ltx2_model::transformer::config::AvCrossAdaln;
use safetensors::tensor::TensorView;
use safetensors::Dtype;

const SET: GoldenSet = GoldenSet::Ltx25;

fn manifest() -> Result<serde_json::Value> {
    let text = std::fs::read_to_string(SET.dir().join("manifest.json"))?;
    Ok(serde_json::from_str(&text)?)
}

/// A weight file of the set by its `manifest.json` name (`weights.transformer`, ...).
fn weight_file(name: &str) -> Result<PathBuf> {
    let rel = manifest()?["weights"][name]
        .as_str()
        .with_context(|| format!("manifest.json has no weights.{name}"))?
        .to_string();
    Ok(SET.dir().join(rel))
}

#[test]
fn identity_and_layout_of_the_split_file() -> Result<()> {
    let ckpt = Checkpoint::open(weight_file("transformer")?)?;
    let id = ckpt.identity()?;
    assert_eq!(
        (id.generation, id.evidence),
        (Generation::Ltx25, Evidence::ModelVersion)
    );
    assert_eq!(
        id.gemma_version.as_deref(),
        manifest()?["gemma_version"].as_str()
    );
    let cfg = ckpt.transformer_config()?;
    assert_eq!(cfg.av_cross_adaln, AvCrossAdaln::OwnTimesteps);
    ckpt.check_transformer(&cfg)?;
    // Every DiT key of the file (the connectors aside) is one the config implies, and back.
    let ours: BTreeSet<String> = cfg
        .tensor_shapes()
        .into_iter()
        .map(|(k, _)| format!("{TRANSFORMER_PREFIX}{k}"))
        .collect();
    let file: BTreeSet<String> = ckpt
        .tensors()
        .keys()
        .filter(|k| k.starts_with(TRANSFORMER_PREFIX) && !k.contains("_embeddings_connector."))
        .cloned()
        .collect();
    assert_eq!(ours, file);
    let model = ckpt.load_transformer(DType::F32, &Device::Cpu)?;
    assert!(model.video.keyframes_abs_pos_embedding.is_some());
    assert!(model.transformer_blocks[0].ff.proj_in.bias().is_none());
    assert!(model.transformer_blocks[0]
        .audio_ff
        .proj_in
        .bias()
        .is_some());
    Ok(())
}

/// The transformer's Gemma declaration against the set's Gemma-4 config (ltx-core 1.2.0
/// `_check_gemma_version`): it matches, and a different `gemma_version` is refused.
#[test]
fn gemma_declaration_matches_the_text_encoder() -> Result<()> {
    let id = Checkpoint::open(weight_file("transformer")?)?.identity()?;
    let path = SET.dir().join(
        manifest()?["weights"]["gemma_root"]
            .as_str()
            .context("weights.gemma_root")?,
    );
    let gemma: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path.join("config.json"))?)?;
    let model_type = gemma["model_type"].as_str();
    let version = gemma["gemma_version"].as_str();
    assert_eq!(check_gemma_source(&id, model_type, version)?, None);
    assert!(check_gemma_source(&id, model_type, Some("gemma3-12b")).is_err());
    assert!(check_gemma_source(&id, Some("gemma3"), None).is_err());
    Ok(())
}

// ---- the loader on edited copies of the 2.5 file ----

/// A checkpoint held in memory: every tensor as raw bytes, plus the metadata.
struct Copy {
    tensors: Vec<(String, Dtype, Vec<usize>, Vec<u8>)>,
    metadata: HashMap<String, String>,
}

impl Copy {
    fn read(path: PathBuf) -> Result<Self> {
        let bytes = std::fs::read(&path)?;
        let st = safetensors::SafeTensors::deserialize(&bytes)?;
        let (_, header) = safetensors::SafeTensors::read_metadata(&bytes)?;
        let tensors = st
            .tensors()
            .into_iter()
            .map(|(k, v)| (k, v.dtype(), v.shape().to_vec(), v.data().to_vec()))
            .collect();
        Ok(Self {
            tensors,
            metadata: header.metadata().clone().unwrap_or_default(),
        })
    }

    /// Writes the copy as `<temp>/<dir>/<file>`.
    fn write(&self, dir: &str, file: &str) -> Result<PathBuf> {
        let dir = std::env::temp_dir().join(format!("ltx2-t25-{}-{dir}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        let path = dir.join(file);
        let views = self
            .tensors
            .iter()
            .map(|(k, dt, shape, data)| Ok((k.clone(), TensorView::new(*dt, shape.clone(), data)?)))
            .collect::<Result<Vec<_>>>()?;
        let metadata = (!self.metadata.is_empty()).then(|| self.metadata.clone());
        safetensors::serialize_to_file(views, metadata, &path)?;
        Ok(path)
    }
}

/// Loads a written copy and removes its directory.
fn load(path: PathBuf) -> Result<CheckpointError> {
    let result = Checkpoint::open(&path)?.load_transformer(DType::F32, &Device::Cpu);
    if let Some(dir) = path.parent() {
        let _ = std::fs::remove_dir_all(dir);
    }
    match result {
        Ok(_) => bail!("the edited file loaded"),
        Err(e) => {
            println!("{e}");
            Ok(e)
        }
    }
}

/// Without the keyframe embedding or an audio feed-forward bias the load fails naming them.
#[test]
fn missing_25_tensors_are_named() -> Result<()> {
    let removed: Vec<String> = [
        "keyframes_abs_pos_embedding",
        "transformer_blocks.1.audio_ff.net.0.proj.bias",
    ]
    .iter()
    .map(|k| format!("{TRANSFORMER_PREFIX}{k}"))
    .collect();
    let mut copy = Copy::read(weight_file("transformer")?)?;
    copy.tensors.retain(|(k, ..)| !removed.contains(k));
    match load(copy.write("missing", "t.safetensors")?)? {
        CheckpointError::MissingTensors { keys, .. } => {
            assert_eq!(
                keys.iter().collect::<BTreeSet<_>>(),
                removed.iter().collect()
            );
        }
        other => bail!("expected MissingTensors, got {other}"),
    }
    Ok(())
}

/// Video feed-forward biases in a file whose config says `ff_bias: false` belong to another
/// layout: refused with the keys named instead of silently ignored.
#[test]
fn video_ff_biases_in_a_bias_free_file_are_refused() -> Result<()> {
    let added = format!("{TRANSFORMER_PREFIX}transformer_blocks.0.ff.net.2.bias");
    let mut copy = Copy::read(weight_file("transformer")?)?;
    copy.tensors
        .push((added.clone(), Dtype::BF16, vec![4], vec![0u8; 8]));
    match load(copy.write("ffbias", "t.safetensors")?)? {
        CheckpointError::ForeignKeys {
            keys, generation, ..
        } => {
            assert_eq!(keys, [added]);
            assert_eq!(generation, Generation::Ltx25);
        }
        other => bail!("expected ForeignKeys, got {other}"),
    }
    Ok(())
}

/// A 2.3 `model_version` on the file is a contradiction (its Gemma-4 declaration and
/// `ff_bias: false` are 2.5's).
#[test]
fn relabelled_file_is_refused() -> Result<()> {
    let mut copy = Copy::read(weight_file("transformer")?)?;
    copy.metadata.insert("model_version".into(), "2.3.0".into());
    let err = load(copy.write("relabelled", "t.safetensors")?)?;
    assert!(matches!(err, CheckpointError::Generation { .. }), "{err}");
    Ok(())
}
