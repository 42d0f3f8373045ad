//! Checkpoint reading: config parsing, the 19B shape/parameter arithmetic, FP8 layers, and typed
//! errors naming the key when a transformer tensor is missing or mis-shaped.

use std::collections::HashMap;
use std::path::PathBuf;

use anyhow::{Context, Result};
use candle_core::{DType, Device};
use ltx2_model::checkpoint::{Checkpoint, CheckpointError, Component, TRANSFORMER_PREFIX};
use ltx2_model::golden::{config_json, weights_path};
use ltx2_model::transformer::TransformerConfig;
use safetensors::tensor::TensorView;

fn temp_dir(name: &str) -> Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!(
        "ltx2-checkpoint-loader-{}-{name}",
        std::process::id()
    ));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

/// Writes a copy of the golden checkpoint with `edit` applied to its tensor list (metadata kept).
fn write_edited_copy(
    name: &str,
    edit: impl Fn(&str, &TensorView) -> Option<(safetensors::Dtype, Vec<usize>)>,
    drop_key: Option<&str>,
) -> Result<PathBuf> {
    let bytes = std::fs::read(weights_path("model.safetensors"))?;
    let st = safetensors::SafeTensors::deserialize(&bytes)?;
    let (_, header) = safetensors::SafeTensors::read_metadata(&bytes)?;
    let metadata: Option<HashMap<String, String>> = header.metadata().clone();
    let mut views = Vec::new();
    for (key, view) in st.tensors() {
        if Some(key.as_str()) == drop_key {
            continue;
        }
        let view = match edit(&key, &view) {
            Some((dtype, shape)) => TensorView::new(dtype, shape, view.data())?,
            None => view,
        };
        views.push((key, view));
    }
    let path = temp_dir(name)?.join("model.safetensors");
    safetensors::serialize_to_file(views, metadata, &path)?;
    Ok(path)
}

fn golden_transformer_config() -> Result<TransformerConfig> {
    Ok(Checkpoint::open(weights_path("model.safetensors"))?.transformer_config()?)
}

#[test]
fn config_metadata_parses_to_the_resolved_tiny_config() -> Result<()> {
    let cfg = golden_transformer_config()?;
    let resolved = config_json("transformer.json")?;
    let n = |v: &serde_json::Value| v.as_u64().unwrap() as usize;
    assert_eq!(cfg.num_layers, n(&resolved["num_layers"]));
    assert_eq!(
        cfg.num_attention_heads,
        n(&resolved["video"]["num_attention_heads"])
    );
    assert_eq!(
        cfg.attention_head_dim,
        n(&resolved["video"]["attention_head_dim"])
    );
    assert_eq!(cfg.in_channels, n(&resolved["video"]["in_channels"]));
    assert_eq!(
        cfg.audio_num_attention_heads,
        n(&resolved["audio"]["num_attention_heads"])
    );
    assert_eq!(
        cfg.audio_attention_head_dim,
        n(&resolved["audio"]["attention_head_dim"])
    );
    assert_eq!(cfg.audio_in_channels, n(&resolved["audio"]["in_channels"]));
    assert_eq!(cfg.caption_channels, n(&resolved["caption_channels"]));
    assert_eq!(
        cfg.cross_pe_max_pos(),
        resolved["cross_pe_max_pos"].as_f64().unwrap()
    );
    assert_eq!(
        cfg.av_ca_timestep_scale_multiplier,
        resolved["av_ca_timestep_scale_multiplier"]
            .as_f64()
            .unwrap()
    );
    Ok(())
}

#[test]
fn golden_checkpoint_matches_its_config_and_counts_parameters() -> Result<()> {
    let ckpt = Checkpoint::open(weights_path("model.safetensors"))?;
    let cfg = ckpt.transformer_config()?;
    ckpt.check_transformer(&cfg)?;
    let summary = ckpt.components();
    let dit = summary
        .iter()
        .find(|s| s.component == Component::Transformer)
        .context("no transformer")?;
    assert_eq!(dit.parameters, cfg.parameter_count());
    assert_eq!(dit.tensors, cfg.tensor_shapes().len());
    for c in [
        Component::VideoConnector,
        Component::AudioConnector,
        Component::VideoVae,
        Component::Vocoder,
    ] {
        assert!(summary.iter().any(|s| s.component == c), "{c:?} not found");
    }
    Ok(())
}

#[test]
fn ltx2_19b_config_has_about_18_9b_dit_parameters() {
    let cfg = TransformerConfig::ltx2_19b();
    cfg.validate().unwrap();
    let n = cfg.parameter_count();
    println!(
        "19B DiT parameters: {n} ({} tensors)",
        cfg.tensor_shapes().len()
    );
    assert!((18.8e9..19.0e9).contains(&(n as f64)), "{n}");
    // 3510 DiT tensors per ltx2-architecture.md §7.1.
    assert_eq!(cfg.tensor_shapes().len(), 3510);
}

#[test]
fn missing_transformer_tensor_is_named() -> Result<()> {
    let cfg = golden_transformer_config()?;
    // The last block's a2v value projection: its name also contains `to_v` of other modules.
    let (rel, _) = cfg
        .tensor_shapes()
        .into_iter()
        .rfind(|(k, _)| k.ends_with("audio_to_video_attn.to_v.weight"))
        .context("no a2v to_v")?;
    let key = format!("{TRANSFORMER_PREFIX}{rel}");
    let path = write_edited_copy("missing", |_, _| None, Some(&key))?;
    let err = Checkpoint::open(&path)?
        .load_transformer(DType::F32, &Device::Cpu)
        .unwrap_err();
    println!("{err}");
    assert!(
        matches!(&err, CheckpointError::MissingTensors { keys, .. } if keys == &vec![key.clone()]),
        "{err}"
    );
    assert!(err.to_string().contains(&key));
    std::fs::remove_dir_all(path.parent().unwrap())?;
    Ok(())
}

#[test]
fn misshaped_transformer_tensor_is_named() -> Result<()> {
    let key = format!("{TRANSFORMER_PREFIX}transformer_blocks.0.scale_shift_table");
    let path = write_edited_copy(
        "misshaped",
        |k, v| (k == key).then(|| (v.dtype(), v.shape().iter().rev().copied().collect())),
        None,
    )?;
    let err = Checkpoint::open(&path)?
        .load_transformer(DType::F32, &Device::Cpu)
        .unwrap_err();
    println!("{err}");
    match &err {
        CheckpointError::WrongShapes { mismatches, .. } => {
            assert_eq!(mismatches.len(), 1);
            assert_eq!(mismatches[0].key, key);
        }
        other => panic!("expected WrongShapes, got {other}"),
    }
    assert!(err.to_string().contains(&key));
    std::fs::remove_dir_all(path.parent().unwrap())?;
    Ok(())
}

#[test]
fn not_a_checkpoint_is_an_error() -> Result<()> {
    let dir = temp_dir("garbage")?;
    let path = dir.join("model.safetensors");
    std::fs::write(&path, b"definitely not safetensors")?;
    assert!(matches!(
        Checkpoint::open(&path),
        Err(CheckpointError::Unreadable { .. })
    ));
    std::fs::remove_dir_all(dir)?;
    Ok(())
}

#[test]
fn fp8_checkpoint_keeps_scales_on_the_quantized_layers_only() -> Result<()> {
    let ckpt = Checkpoint::open(weights_path("model_fp8.safetensors"))?;
    let fp8_keys: Vec<&String> = ckpt
        .tensors()
        .iter()
        .filter(|(_, t)| t.dtype == safetensors::Dtype::F8_E4M3)
        .map(|(k, _)| k)
        .collect();
    assert!(!fp8_keys.is_empty());
    let model = ckpt.load_transformer(DType::F32, &Device::Cpu)?;
    for (i, block) in model.transformer_blocks.iter().enumerate() {
        let key =
            format!("{TRANSFORMER_PREFIX}transformer_blocks.{i}.audio_to_video_attn.to_v.weight");
        let quantized = fp8_keys.contains(&&key);
        let scales = block.audio_to_video_attn.to_v.fp8_scales();
        assert_eq!(scales.is_some(), quantized, "{key}");
        if let Some(s) = scales {
            let stored = ckpt
                .tensors()
                .contains_key(&format!("{}.input_scale", key.trim_end_matches(".weight")));
            assert_eq!(s.input_scale.is_some(), stored);
        }
        let out_key = key.replace(".to_v.", ".to_out.0.");
        assert_eq!(
            block.audio_to_video_attn.to_out.fp8_scales().is_some(),
            fp8_keys.contains(&&out_key)
        );
    }
    let summary = ckpt.components();
    let dit = summary
        .iter()
        .find(|s| s.component == Component::Transformer)
        .context("no transformer")?;
    assert_eq!(dit.parameters, ckpt.transformer_config()?.parameter_count());
    assert_eq!(dit.quantization_scales, 2 * fp8_keys.len());
    Ok(())
}

#[test]
fn upsampler_file_opens_without_prefixes() -> Result<()> {
    let ckpt = Checkpoint::open(weights_path("upsampler.safetensors"))?;
    let summary = ckpt.components();
    assert_eq!(summary.len(), 1);
    assert_eq!(summary[0].component, Component::Other);
    assert!(ckpt.config()?.is_some());
    Ok(())
}
