//! Parity of the LTX-2.3 audio decode path with ltx-core 1.0.0 goldens (`GoldenSet::Ltx23`): the
//! vocoder with bandwidth extension (48 kHz) and every intermediate its golden stores, the audio
//! VAE decoder (unchanged from 2.0), and `decode_audio(latent)` on the end-to-end goldens.

use std::collections::HashMap;

use anyhow::{bail, Context, Result};
use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use ltx2_model::audio_vae::{AudioDecoder, Config as AudioVaeConfig};
use ltx2_model::golden::{test_device, Checks, GoldenSet};
use ltx2_model::vocoder::{self, Trace, Vocoder, VocoderWithBwe};

const SET: GoldenSet = GoldenSet::Ltx23;

fn device() -> Device {
    test_device().expect("LTX2_TEST_DEVICE")
}

fn checkpoint() -> Result<(serde_json::Value, VarBuilder<'static>)> {
    let path = SET.weights_path("model.safetensors");
    let config = ltx2_model::checkpoint::read_config(&path)?
        .context("golden checkpoint has `config` metadata")?;
    let vb = unsafe { VarBuilder::from_mmaped_safetensors(&[path], DType::F32, &device())? };
    Ok((config, vb))
}

fn bwe_config(config: &serde_json::Value) -> Result<vocoder::BweConfig> {
    match vocoder::Config::from_checkpoint_config(config)? {
        vocoder::Config::Bwe(c) => Ok(c),
        other => bail!("the 2.3 checkpoint config is not a BWE vocoder: {other:?}"),
    }
}

/// Name in our [`Trace`] of a golden `dbg.*` key: the same name without `dbg.`, except the
/// low-rate generator's output, which the golden names after its 16 kHz rate.
fn trace_name(key: &str) -> &str {
    match key.strip_prefix("dbg.").unwrap_or(key) {
        "vocoder_16k_out" => "vocoder_out",
        other => other,
    }
}

/// mel -> 48 kHz waveform, and every `dbg.*` intermediate of the golden (16 kHz generator
/// `conv_pre` / `ups*` outputs, its waveform, the padded STFT input, magnitude, BWE mel, residual,
/// resampled skip). A golden intermediate we do not produce is a failure.
#[test]
fn vocoder_with_bwe() -> Result<()> {
    let (config, vb) = checkpoint()?;
    let g = SET.load("vocoder")?;
    let cfg = bwe_config(&config)?;
    let voc = VocoderWithBwe::new(&cfg, vb.pp("vocoder"))?;
    let resolved = SET.config_json("vocoder.json")?;
    if let Some(rate) = resolved.pointer("/resolved/output_rate") {
        assert_eq!(
            Some(voc.output_sampling_rate() as u64),
            rate.as_u64(),
            "output rate"
        );
    }
    let mut trace = Trace::default();
    let wave = voc.forward_traced(&g.get_f32("in.mel", &device())?, Some(&mut trace))?;
    let mut checks = Checks::new(&g);
    checks.check("out.waveform", &wave)?;
    let dbg = g.keys_with_prefix("dbg.");
    let mut missing = Vec::new();
    for key in &dbg {
        match trace.get(trace_name(key)) {
            Some(ours) => checks.check(key, ours)?,
            None => missing.push(key.clone()),
        }
    }
    if !missing.is_empty() {
        bail!(
            "golden intermediates not produced: {missing:?} (trace has {:?})",
            trace.names().collect::<Vec<_>>()
        );
    }
    println!("checked {} dbg.* intermediates", dbg.len());
    Ok(checks.finish(&["out."])?)
}

/// The public `Vocoder` the pipeline uses builds the BWE variant from the 2.3 metadata and gives
/// the same waveform.
#[test]
fn vocoder_enum_dispatches_to_bwe() -> Result<()> {
    let (config, vb) = checkpoint()?;
    let g = SET.load("vocoder")?;
    let voc = Vocoder::new(
        &vocoder::Config::from_checkpoint_config(&config)?,
        vb.pp("vocoder"),
    )?;
    assert!(matches!(voc, Vocoder::Bwe(_)));
    let wave = voc.forward(&g.get_f32("in.mel", &device())?)?;
    let mut checks = Checks::new(&g);
    checks.check("out.waveform", &wave)?;
    Ok(checks.finish(&["out."])?)
}

/// The audio VAE decoder is unchanged in 2.3: the 2.0 code on the 2.3 metadata and weights.
#[test]
fn audio_vae_decode() -> Result<()> {
    let (config, vb) = checkpoint()?;
    let g = SET.load("audio_vae_decode")?;
    let decoder = AudioDecoder::new(
        &AudioVaeConfig::from_checkpoint_config(&config)?,
        vb.pp("audio_vae"),
    )?;
    let mel = decoder.decode(&g.get_f32("in.latent", &device())?)?;
    let mut checks = Checks::new(&g);
    checks.check("out.mel", &mel)?;
    Ok(checks.finish(&["out."])?)
}

/// `decode_audio(latent)` = vocoder(audio_decoder(latent)): the latent of `audio_vae_decode`
/// against the vocoder golden (whose `in.mel` is that decoder's output).
#[test]
fn decode_audio_composite() -> Result<()> {
    let (config, vb) = checkpoint()?;
    let latent = SET
        .load("audio_vae_decode")?
        .get_f32("in.latent", &device())?;
    let g = SET.load("vocoder")?;
    let pipeline = vocoder::AudioDecodePipeline::new(
        &AudioVaeConfig::from_checkpoint_config(&config)?,
        &vocoder::Config::from_checkpoint_config(&config)?,
        vb,
    )?;
    let wave = pipeline.decode_audio(&latent)?;
    let report = g.compare_with(
        "out.waveform",
        &wave,
        g.tolerance("decode_audio(latent) composite"),
    )?;
    assert!(report.passed, "{report}");
    Ok(())
}

/// Every end-to-end golden of the set that stores its final audio latent and waveform
/// (`(channels, samples)` at 48 kHz, batch squeezed as ltx-core's `decode_audio` does).
#[test]
fn decode_audio_matches_e2e_waveforms() -> Result<()> {
    let (config, vb) = checkpoint()?;
    let decoder = AudioDecoder::new(
        &AudioVaeConfig::from_checkpoint_config(&config)?,
        vb.pp("audio_vae"),
    )?;
    let voc = Vocoder::new(
        &vocoder::Config::from_checkpoint_config(&config)?,
        vb.pp("vocoder"),
    )?;
    let mut names: Vec<String> = std::fs::read_dir(SET.dir())?
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter_map(|f| {
            f.strip_suffix(".safetensors")
                .filter(|n| n.starts_with("e2e_"))
                .map(str::to_string)
        })
        .collect();
    names.sort();
    let mut reports = Vec::new();
    for name in &names {
        let g = SET.load(name)?;
        if !(g.has("out.audio_latent") && g.has("out.waveform")) {
            continue;
        }
        let latent = g.get_f32("out.audio_latent", &device())?;
        let wave = vocoder::decode_audio(&latent, &decoder, &voc)?.squeeze(0)?;
        reports.push(g.compare("out.waveform", &wave)?);
    }
    assert!(
        !reports.is_empty(),
        "no end-to-end golden with an audio latent and a waveform in {names:?}"
    );
    let failed: Vec<String> = reports
        .iter()
        .filter(|r| !r.passed)
        .map(|r| r.to_string())
        .collect();
    assert!(failed.is_empty(), "{}", failed.join("\n"));
    Ok(())
}

/// The vocoder tensors of the golden checkpoint, on the CPU, by full key.
fn vocoder_tensors() -> Result<HashMap<String, Tensor>> {
    let all = candle_core::safetensors::load(SET.weights_path("model.safetensors"), &Device::Cpu)?;
    Ok(all
        .into_iter()
        .filter(|(k, _)| k.starts_with("vocoder."))
        .collect())
}

/// A 2.3 checkpoint missing a vocoder buffer or weight, or holding one with the wrong shape, fails
/// to load with an error that names the key (through `AudioDecodePipeline`, as the pipeline loads).
#[test]
fn missing_or_misshaped_vocoder_keys_are_named() -> Result<()> {
    let (config, _) = checkpoint()?;
    let vae_cfg = AudioVaeConfig::from_checkpoint_config(&config)?;
    let cfg = vocoder::Config::from_checkpoint_config(&config)?;
    let all = vocoder_tensors()?;
    let pick = |suffix: &str| -> Result<String> {
        let mut keys: Vec<&String> = all.keys().filter(|k| k.ends_with(suffix)).collect();
        keys.sort();
        keys.first()
            .map(|k| k.to_string())
            .with_context(|| format!("no vocoder key ending in {suffix}"))
    };
    let audio_vae =
        candle_core::safetensors::load(SET.weights_path("model.safetensors"), &Device::Cpu)?
            .into_iter()
            .filter(|(k, _)| k.starts_with("audio_vae."))
            .collect::<HashMap<_, _>>();
    let load = |tensors: HashMap<String, Tensor>| {
        let mut tensors = tensors;
        tensors.extend(audio_vae.clone());
        let vb = VarBuilder::from_tensors(tensors, DType::F32, &Device::Cpu);
        vocoder::AudioDecodePipeline::new(&vae_cfg, &cfg, vb).map(|_| ())
    };
    load(all.clone()).context("the complete set of keys loads")?;
    for suffix in [
        "mel_stft.mel_basis",
        "mel_stft.stft_fn.forward_basis",
        "act_post.upsample.filter",
        "downsample.lowpass.filter",
        "act.beta",
        "bwe_generator.conv_post.weight",
    ] {
        let key = pick(suffix)?;
        let mut missing = all.clone();
        missing.remove(&key);
        let err = load(missing)
            .expect_err("a missing key must fail")
            .to_string();
        // The first lines (context, candle's message); a backtrace may follow.
        let head: Vec<&str> = err.lines().take(2).collect();
        println!("missing {key}: {}", head.join(" | "));
        assert!(err.contains(&key), "error does not name {key}: {err}");

        let mut misshaped = all.clone();
        let t = &all[&key];
        misshaped.insert(
            key.clone(),
            Tensor::zeros(t.elem_count() + 1, t.dtype(), &Device::Cpu)?,
        );
        let err = load(misshaped)
            .expect_err("a mis-shaped key must fail")
            .to_string();
        assert!(err.contains(&key), "error does not name {key}: {err}");
    }
    Ok(())
}
