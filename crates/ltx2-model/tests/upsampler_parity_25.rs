//! LTX-2.5 split upscaler file
//! (`latent_upscale_models/ltx-2.5-latent-spatial-upscaler-x2-bf16-1.0.safetensors`, keys without a
//! prefix, its own `config`) against ltx-core 1.2.0's `VideoUpsampler` block (`upsampler` golden of
//! `GoldenSet::Ltx25`): un-normalize with the encoder statistics of the 2.5 video VAE file (bare
//! `per_channel_statistics.*`), upsample, normalize.

use anyhow::{Context, Result};
use candle_core::{DType, Device};
use candle_nn::VarBuilder;
use ltx2_model::golden::{test_device, Checks, GoldenSet};
use ltx2_model::upsampler::{upsample_video, Config, LatentUpsampler};
use ltx2_model::video_vae::PerChannelStatistics;

const SET: GoldenSet = GoldenSet::Ltx25;
/// The video VAE file whose encoder statistics `VideoUpsampler` reads.
const VIDEO_VAE: &str = "vae/ltx-2.5-video-vae-bf16.safetensors";

fn device() -> Device {
    test_device().expect("LTX2_TEST_DEVICE")
}

#[test]
fn upsampler_matches_ltx_core() -> Result<()> {
    let dev = device();
    let g = SET.load("upsampler")?;
    let info = g.info().context("upsampler has `info` metadata")?;
    let path = SET.weights_path(info["file"].as_str().context("info.file")?);
    let cfg = Config::from_file(&path)?;
    let upsampler = LatentUpsampler::from_file(&path, DType::F32, &dev)?;
    let vae = SET.weights_path(VIDEO_VAE);
    // SAFETY: read-only map of a test file nobody writes.
    let vb = unsafe { VarBuilder::from_mmaped_safetensors(&[vae], DType::F32, &dev)? };
    // The upsampler works on latents of its `in_channels`: one statistic per channel.
    let stats = PerChannelStatistics::new(cfg.in_channels, vb.pp("per_channel_statistics"))?;
    let out = upsample_video(&g.get_f32("in.latent", &dev)?, &upsampler, &stats)?;
    let mut checks = Checks::new(&g);
    checks.check("out.latent", &out)?;
    Ok(checks.finish(&["out.", "dbg."])?)
}
