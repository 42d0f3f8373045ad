//! The release layouts `ltx2 inspect --memory --layout` reports are what the loaders read: the
//! tiny layout recorded from the loaders is the golden checkpoint's, its FP8 twin is the golden
//! FP8 file's DiT (ltx-core's FP8 layer rule), and the 19B DiT has the config's tensors.

use std::collections::BTreeMap;

use ltx2_model::checkpoint::{Checkpoint, Component, TensorEntry};
use ltx2_model::golden::weights_path;
use ltx2_model::memory::resident;
use ltx2_model::quantization::Quantization;
use ltx2_model::transformer::TransformerConfig;
use ltx2_pipeline::bench::layout::release_layout;
use ltx2_pipeline::bench::ModelSize;

fn dit(t: &BTreeMap<String, TensorEntry>) -> BTreeMap<String, TensorEntry> {
    t.iter()
        .filter(|(k, _)| Component::of(k) == Component::Transformer)
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

#[test]
fn tiny_layout_is_the_golden_checkpoints() -> anyhow::Result<()> {
    let l = release_layout(ModelSize::Tiny, None)?;
    let file = Checkpoint::open(weights_path("model.safetensors"))?;
    for (k, t) in &l.checkpoint {
        let stored = file.tensors().get(k);
        assert_eq!(stored.map(|s| &s.shape), Some(&t.shape), "{k}");
    }
    // Every DiT tensor of the file is read.
    assert_eq!(dit(&l.checkpoint).len(), dit(file.tensors()).len());
    let fp8 = Checkpoint::open(weights_path("model_fp8.safetensors"))?;
    assert_eq!(dit(&l.checkpoint_fp8), dit(fp8.tensors()));
    Ok(())
}

#[test]
fn ltx2_19b_layout_has_the_config_dit() -> anyhow::Result<()> {
    let l = release_layout(ModelSize::Ltx2_19b, None)?;
    let cfg = TransformerConfig::ltx2_19b();
    let expected: BTreeMap<String, Vec<usize>> = cfg
        .tensor_shapes()
        .into_iter()
        .map(|(k, s)| (format!("model.diffusion_model.{k}"), s))
        .collect();
    let recorded: BTreeMap<String, Vec<usize>> = dit(&l.checkpoint)
        .into_iter()
        .map(|(k, t)| (k, t.shape))
        .collect();
    assert_eq!(recorded, expected);
    let it = |t: &BTreeMap<String, TensorEntry>| dit(t).into_iter().collect::<Vec<_>>();
    let (bf16, fp8) = (it(&l.checkpoint), it(&l.checkpoint_fp8));
    let bytes = |v: &Vec<(String, TensorEntry)>, q| {
        resident(
            v.iter().map(|(k, t)| (k.as_str(), t)),
            q,
            candle_core::DType::BF16,
        )
        .map_err(anyhow::Error::msg)
    };
    let dense = bytes(&bf16, Quantization::None)?;
    assert_eq!(dense.parameters, cfg.parameter_count());
    assert_eq!(dense.bytes, 2 * cfg.parameter_count());
    // Blocks 1-42 of 48 hold their 28 linears (6 attentions x 4, 2 feed-forwards x 2) in FP8.
    let stored_fp8 = bytes(&fp8, Quantization::None)?;
    assert_eq!(stored_fp8.fp8_weights, 42 * (6 * 4 + 2 * 2));
    assert!(stored_fp8.bytes < dense.bytes * 6 / 10);
    Ok(())
}
