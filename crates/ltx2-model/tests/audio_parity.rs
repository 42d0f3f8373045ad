//! Parity of the audio path with ltx-core 1.0.0 goldens: mel front-end (incl. 24 kHz resampling),
//! audio VAE encoder and decoder, vocoder, and the `decode_audio` composite.

use candle_core::{DType, Result, Tensor};
use candle_nn::VarBuilder;
use ltx2_model::audio_vae::{AudioDecoder, AudioEncoder, AudioProcessor, Config, MelConfig};
use ltx2_model::golden::{weights_path, Golden};
use ltx2_model::vocoder::{self, Vocoder};

fn checkpoint() -> Result<(serde_json::Value, VarBuilder<'static>)> {
    let path = weights_path("model.safetensors");
    let config = ltx2_model::checkpoint::read_config(&path)?
        .expect("golden checkpoint has `config` metadata");
    let vb = unsafe {
        VarBuilder::from_mmaped_safetensors(
            &[path],
            DType::F32,
            &ltx2_model::golden::test_device().expect("LTX2_TEST_DEVICE"),
        )?
    };
    Ok((config, vb))
}

fn mel_processor(config: &serde_json::Value) -> Result<AudioProcessor> {
    AudioProcessor::new(Config::from_checkpoint_config(config)?.mel_config())
}

/// Sample rate of a golden waveform, from the `_16k` / `_24k` suffix of its key.
fn rate_of(key: &str) -> usize {
    let khz: usize = key
        .rsplit('_')
        .next()
        .and_then(|s| s.strip_suffix('k'))
        .and_then(|s| s.parse().ok())
        .unwrap();
    khz * 1000
}

#[test]
fn mel_filterbank_matches_torchaudio() -> Result<()> {
    let (config, _) = checkpoint()?;
    let g = Golden::load("audio_mel")?;
    let p = mel_processor(&config)?;
    g.check(
        "dbg.mel_filterbank",
        &p.filterbank(&ltx2_model::golden::test_device().expect("LTX2_TEST_DEVICE"))?,
    )?;
    Ok(())
}

#[test]
fn mel_from_16k() -> Result<()> {
    let (config, _) = checkpoint()?;
    let g = Golden::load("audio_mel")?;
    let p = mel_processor(&config)?;
    let key = "in.waveform_16k";
    let mel = p.waveform_to_mel(
        &g.get_f32(
            key,
            &ltx2_model::golden::test_device().expect("LTX2_TEST_DEVICE"),
        )?,
        rate_of(key),
    )?;
    g.check("out.mel", &mel)?;
    Ok(())
}

#[test]
fn mel_from_24k_resamples_like_torchaudio() -> Result<()> {
    let (config, _) = checkpoint()?;
    let g = Golden::load("audio_mel")?;
    let p = mel_processor(&config)?;
    let key = "in.waveform_24k";
    let wave = g.get_f32(
        key,
        &ltx2_model::golden::test_device().expect("LTX2_TEST_DEVICE"),
    )?;
    g.check("out.resampled_16k", &p.resample(&wave, rate_of(key))?)?;
    g.check("out.mel_from_24k", &p.waveform_to_mel(&wave, rate_of(key))?)?;
    Ok(())
}

#[test]
fn mono_is_duplicated_to_stereo() -> Result<()> {
    let p = AudioProcessor::new(MelConfig::ltx2_19b())?;
    let mono = Tensor::arange(
        0f32,
        4000.,
        &ltx2_model::golden::test_device().expect("LTX2_TEST_DEVICE"),
    )?
    .affine(0.01, 0.)?
    .sin()?
    .reshape((1, 1, 4000))?;
    let mel = p.waveform_to_mel(&mono, 16000)?;
    assert_eq!(mel.dims(), &[1, 2, 26, 64]);
    let diff = (mel.get_on_dim(1, 0)? - mel.get_on_dim(1, 1)?)?
        .abs()?
        .max_all()?
        .to_scalar::<f32>()?;
    assert_eq!(diff, 0.0);
    Ok(())
}

#[test]
fn audio_vae_encode() -> Result<()> {
    let (config, vb) = checkpoint()?;
    let g = Golden::load("audio_vae_encode")?;
    let cfg = Config::from_checkpoint_config(&config)?;
    let encoder = AudioEncoder::new(&cfg, vb.pp("audio_vae"))?;
    let latent = encoder.encode(&g.get_f32(
        "in.mel",
        &ltx2_model::golden::test_device().expect("LTX2_TEST_DEVICE"),
    )?)?;
    g.check("out.latent", &latent)?;
    Ok(())
}

#[test]
fn audio_vae_decode() -> Result<()> {
    let (config, vb) = checkpoint()?;
    let g = Golden::load("audio_vae_decode")?;
    let cfg = Config::from_checkpoint_config(&config)?;
    let decoder = AudioDecoder::new(&cfg, vb.pp("audio_vae"))?;
    let mel = decoder.decode(&g.get_f32(
        "in.latent",
        &ltx2_model::golden::test_device().expect("LTX2_TEST_DEVICE"),
    )?)?;
    g.check("out.mel", &mel)?;
    Ok(())
}

#[test]
fn vocoder_waveform() -> Result<()> {
    let (config, vb) = checkpoint()?;
    let g = Golden::load("vocoder")?;
    let cfg = vocoder::Config::from_checkpoint_config(&config)?;
    let voc = Vocoder::new(&cfg, vb.pp("vocoder"))?;
    let wave = voc.forward(&g.get_f32(
        "in.mel",
        &ltx2_model::golden::test_device().expect("LTX2_TEST_DEVICE"),
    )?)?;
    g.check("out.waveform", &wave)?;
    Ok(())
}

/// `decode_audio(latent)` = vocoder(audio_decoder(latent)): the latent of `audio_vae_decode`
/// against the vocoder golden (whose `in.mel` is that decoder's output).
#[test]
fn decode_audio_composite() -> Result<()> {
    let (config, vb) = checkpoint()?;
    let latent = Golden::load("audio_vae_decode")?.get_f32(
        "in.latent",
        &ltx2_model::golden::test_device().expect("LTX2_TEST_DEVICE"),
    )?;
    let g = Golden::load("vocoder")?;
    let decoder = AudioDecoder::new(
        &Config::from_checkpoint_config(&config)?,
        vb.pp("audio_vae"),
    )?;
    let voc = Vocoder::new(
        &vocoder::Config::from_checkpoint_config(&config)?,
        vb.pp("vocoder"),
    )?;
    let wave = vocoder::decode_audio(&latent, &decoder, &voc)?;
    let report = g.compare_with(
        "out.waveform",
        &wave,
        g.tolerance("decode_audio(latent) composite"),
    )?;
    assert!(report.passed, "{report}");
    Ok(())
}

/// Waveform -> latent as the A2V pipeline does it (`AudioProcessor` + `AudioEncoder`): the e2e_a2v
/// golden's audio latent is its 16 kHz waveform encoded, truncated to the video's audio length.
#[test]
fn encode_audio_matches_a2v_conditioning_latent() -> Result<()> {
    let (config, vb) = checkpoint()?;
    let g = Golden::load("e2e_a2v")?;
    let cfg = Config::from_checkpoint_config(&config)?;
    let encoder = AudioEncoder::new(&cfg, vb.pp("audio_vae"))?;
    let processor = AudioProcessor::new(cfg.mel_config())?;
    let key = "in.audio_waveform_16k";
    let wave = g.get_f32(
        key,
        &ltx2_model::golden::test_device().expect("LTX2_TEST_DEVICE"),
    )?;
    let latent = ltx2_model::audio_vae::encode_audio(&wave, rate_of(key), &processor, &encoder)?;
    let frames = g.get("in.audio_latent")?.dim(2)?;
    g.check("in.audio_latent", &latent.narrow(2, 0, frames)?)?;
    Ok(())
}

/// `decode_audio` on the final audio latent of every end-to-end golden that stores its waveform
/// (`(channels, samples)`, batch squeezed as ltx-core's `decode_audio` does).
#[test]
fn decode_audio_matches_e2e_waveforms() -> Result<()> {
    let (config, vb) = checkpoint()?;
    let decoder = AudioDecoder::new(
        &Config::from_checkpoint_config(&config)?,
        vb.pp("audio_vae"),
    )?;
    let voc = Vocoder::new(
        &vocoder::Config::from_checkpoint_config(&config)?,
        vb.pp("vocoder"),
    )?;
    let mut checked = 0;
    for name in [
        "e2e_t2v",
        "e2e_t2v_cfg",
        "e2e_i2v",
        "e2e_flf2v",
        "e2e_two_stage_t2v",
        "e2e_two_stage_i2v",
    ] {
        let g = Golden::load(name)?;
        if !(g.has("out.audio_latent") && g.has("out.waveform")) {
            continue;
        }
        let latent = g.get_f32(
            "out.audio_latent",
            &ltx2_model::golden::test_device().expect("LTX2_TEST_DEVICE"),
        )?;
        let wave = vocoder::decode_audio(&latent, &decoder, &voc)?.squeeze(0)?;
        g.check("out.waveform", &wave)?;
        checked += 1;
    }
    assert!(
        checked > 0,
        "no end-to-end golden with an audio latent and a waveform"
    );
    Ok(())
}
