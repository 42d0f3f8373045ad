//! Spatial x2 latent upsampler parity with ltx-core 1.0.0 (`upsampler` golden) and loader checks.

use std::collections::HashMap;

use anyhow::Result;
use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use ltx2_model::golden::{weights_path, Golden, GoldenSet};
use ltx2_model::upsampler::{upsample_video, Config, LatentUpsampler};
use ltx2_model::video_vae::{self, PerChannelStatistics};

fn statistics(dev: &Device) -> Result<PerChannelStatistics> {
    statistics_of(GoldenSet::Ltx2, dev)
}

fn statistics_of(set: GoldenSet, dev: &Device) -> Result<PerChannelStatistics> {
    let path = set.weights_path("model.safetensors");
    let cfg = video_vae::Config::from_checkpoint(&path)?;
    let vb = unsafe { VarBuilder::from_mmaped_safetensors(&[path], DType::F32, dev)? };
    Ok(PerChannelStatistics::new(
        cfg.latent_channels,
        vb.pp("vae").pp("per_channel_statistics"),
    )?)
}

fn upsampler_tensors(dev: &Device) -> Result<HashMap<String, Tensor>> {
    Ok(candle_core::safetensors::load(
        weights_path("upsampler.safetensors"),
        dev,
    )?)
}

/// LTX-2: `ltx-2-spatial-upscaler-x2-1.0` (rational resampler); LTX-2.3:
/// `ltx-2.3-spatial-upscaler-x2-1.1` (plain Conv2d + pixel shuffle), both from the file's metadata.
fn upsampler_matches(set: GoldenSet) -> Result<()> {
    let dev = ltx2_model::golden::test_device().expect("LTX2_TEST_DEVICE");
    let g = set.load("upsampler")?;
    let upsampler =
        LatentUpsampler::from_file(&set.weights_path("upsampler.safetensors"), DType::F32, &dev)?;
    let stats = statistics_of(set, &dev)?;
    let latent = g.get_f32("in.latent", &dev)?;

    let raw_in = stats.un_normalize(&latent)?;
    g.check("dbg.un_normalized_in", &raw_in)?;
    let mut checks = Vec::new();
    let raw_out = upsampler.forward_traced(&raw_in, &mut |name, t| {
        let key = format!("dbg.{name}");
        if g.has(&key) {
            // Per-frame intermediates are stored frame-major `(B·F, C, H, W)` in some sets.
            let reference = g.get(&key)?;
            let t = if reference.rank() == 4 && t.rank() == 5 {
                let (b, c, f, h, w) = t.dims5()?;
                t.permute((0, 2, 1, 3, 4))?.reshape((b * f, c, h, w))?
            } else {
                t.clone()
            };
            checks.push(g.compare(&key, &t)?);
        }
        Ok(())
    })?;
    assert!(
        checks.iter().all(|r| r.passed),
        "an intermediate is off: {checks:?}"
    );
    g.check("dbg.upsampler_raw_out", &raw_out)?;

    let out = upsample_video(&latent, &upsampler, &stats)?;
    g.check("out.latent", &out)?;
    Ok(())
}

#[test]
fn upsampler_matches_ltx_core() -> Result<()> {
    upsampler_matches(GoldenSet::Ltx2)
}

#[test]
fn ltx23_upsampler_matches_ltx_core() -> Result<()> {
    upsampler_matches(GoldenSet::Ltx23)
}

#[test]
fn loader_accepts_the_plain_conv_pixel_shuffle_variant() -> Result<()> {
    let dev = ltx2_model::golden::test_device().expect("LTX2_TEST_DEVICE");
    let g = Golden::load("upsampler")?;
    let mut tensors = upsampler_tensors(&dev)?;
    // Rename the rational resampler's conv (a set made with the plain variant already has it).
    for suffix in ["weight", "bias"] {
        if let Some(t) = tensors.remove(&format!("upsampler.conv.{suffix}")) {
            tensors.insert(format!("upsampler.0.{suffix}"), t);
        }
    }
    tensors.remove("upsampler.blur_down.kernel");
    assert!(tensors.contains_key("upsampler.0.weight"));
    let mut cfg = Config::from_file(&weights_path("upsampler.safetensors"))?;
    cfg.rational_resampler = false;
    let vb = VarBuilder::from_tensors(tensors, DType::F32, &dev);
    let upsampler = LatentUpsampler::new(&cfg, vb)?;
    // At scale 2 both variants are Conv2d + the same pixel shuffle, so the outputs agree.
    let stats = statistics(&dev)?;
    let out = upsample_video(&g.get_f32("in.latent", &dev)?, &upsampler, &stats)?;
    g.check("out.latent", &out)?;
    Ok(())
}

#[test]
fn loader_rejects_a_file_without_a_resampler() -> Result<()> {
    let dev = ltx2_model::golden::test_device().expect("LTX2_TEST_DEVICE");
    let mut tensors = upsampler_tensors(&dev)?;
    tensors.retain(|k, _| !k.starts_with("upsampler."));
    let cfg = Config::from_file(&weights_path("upsampler.safetensors"))?;
    let err = LatentUpsampler::new(&cfg, VarBuilder::from_tensors(tensors, DType::F32, &dev))
        .expect_err("no upsampler.* keys must be rejected");
    let msg = err.to_string();
    assert!(
        msg.contains("upsampler.conv.weight") && msg.contains("upsampler.0.weight"),
        "{msg}"
    );
    Ok(())
}
