//! LTX-2.5 split audio file (`vae/ltx-2.5-audio-vae-bf16.safetensors`: `audio_vae.*` and
//! `vocoder.{vocoder,bwe_generator,mel_stft}.*`, config `{audio_vae, vocoder: {vocoder, bwe}}`)
//! against ltx-core 1.2.0's `AudioDecoder` block (`audio_vae_decode` golden of
//! `GoldenSet::Ltx25`): latent -> audio VAE decoder -> mel -> vocoder with bandwidth extension.

use anyhow::{Context, Result};
use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use ltx2_model::audio_vae::Config as AudioVaeConfig;
use ltx2_model::generation::{detect_file, Generation};
use ltx2_model::golden::{test_device, Checks, GoldenSet};
use ltx2_model::vocoder::{self, AudioDecodePipeline};

const SET: GoldenSet = GoldenSet::Ltx25;

fn device() -> Device {
    test_device().expect("LTX2_TEST_DEVICE")
}

/// The audio file named in the golden's `info.file`, relative to the set's `weights/`.
fn audio_file() -> Result<std::path::PathBuf> {
    let g = SET.load("audio_vae_decode")?;
    let info = g.info().context("audio_vae_decode has `info` metadata")?;
    let rel = info["file"].as_str().context("info.file")?;
    Ok(SET.weights_path(rel))
}

fn pipeline(path: &std::path::Path, dev: &Device) -> Result<AudioDecodePipeline> {
    let config = ltx2_model::checkpoint::read_config(path)?.context("`config` metadata")?;
    // SAFETY: read-only map of a test file nobody writes.
    let vb = unsafe { VarBuilder::from_mmaped_safetensors(&[path], DType::F32, dev)? };
    Ok(AudioDecodePipeline::new(
        &AudioVaeConfig::from_checkpoint_config(&config)?,
        &vocoder::Config::from_checkpoint_config(&config)?,
        vb,
    )?)
}

#[test]
fn audio_file_is_ltx25() -> Result<()> {
    let id = detect_file(&audio_file()?)?;
    assert_eq!(id.generation, Generation::Ltx25, "{id:?}");
    Ok(())
}

/// Normalized latent -> 48 kHz stereo waveform, and the rate the block reports.
#[test]
fn audio_vae_decode() -> Result<()> {
    let dev = device();
    let g = SET.load("audio_vae_decode")?;
    let p = pipeline(&audio_file()?, &dev)?;
    let latent = g.get_f32("in.latent", &dev)?;
    // ltx-core's `AudioDecoder` block returns the batch-squeezed `(channels, samples)` waveform.
    let wave = p.decode_audio(&latent)?.squeeze(0)?;
    let mut checks = Checks::new(&g);
    checks.check("out.waveform", &wave)?;
    let rate = Tensor::new(p.vocoder.output_sampling_rate() as i64, &Device::Cpu)?;
    checks.check("out.sampling_rate", &rate)?;
    Ok(checks.finish(&["out."])?)
}
