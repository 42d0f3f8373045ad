//! Vocoder: log-mel to stereo waveform (`vocoder.*`), ltx-core 1.0.0
//! `ltx_core/model/audio_vae/vocoder.py`, built from the checkpoint `config` as its
//! `VocoderConfigurator` does:
//!
//! * LTX-2.0: one HiFi-GAN generator (`resblock` "1"), 24 kHz (`hifigan`);
//! * LTX-2.3: `VocoderWithBWE` (`bwe`): a BigVGAN-v2 generator (`AMPBlock1` with anti-aliased
//!   SnakeBeta, `amp` + `resample`) at 16 kHz, then a causal STFT log-mel of its output, a second
//!   generator predicting the high band, added to a Hann-sinc x3 resampled skip: 48 kHz.

mod amp;
mod bwe;
mod config;
mod hifigan;
mod resample;

pub use amp::{Activation1d, AmpBlock1, Snake};
pub use bwe::{MelStft, VocoderWithBwe};
pub use config::{Activation, BweConfig, Config, GeneratorConfig, ResblockKind};
pub use hifigan::Generator;
pub use resample::{DownSample1d, UpSample1d};

use candle_core::{Module, Result, Tensor};
use candle_nn::VarBuilder;

use crate::audio_vae::{AudioDecoder, Config as AudioVaeConfig};

/// Named intermediate tensors of one forward pass, for parity tests and debugging.
#[derive(Debug, Default, Clone)]
pub struct Trace {
    entries: Vec<(String, Tensor)>,
}

impl Trace {
    pub fn record(&mut self, name: impl Into<String>, t: &Tensor) {
        self.entries.push((name.into(), t.clone()));
    }

    /// The last tensor recorded under `name`.
    pub fn get(&self, name: &str) -> Option<&Tensor> {
        self.entries
            .iter()
            .rev()
            .find(|(n, _)| n == name)
            .map(|(_, t)| t)
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.entries.iter().map(|(n, _)| n.as_str())
    }
}

/// Records into an optional trace (no-op without one).
pub(crate) fn record(trace: &mut Option<&mut Trace>, name: impl Into<String>, t: &Tensor) {
    if let Some(tr) = trace.as_deref_mut() {
        tr.record(name, t);
    }
}

/// The vocoder a checkpoint describes.
// One value per loaded model: the variants' size difference (a few hundred bytes of handles) costs
// nothing, and unboxed variants keep `match` at the call sites plain.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone)]
pub enum Vocoder {
    /// LTX-2.0 HiFi-GAN.
    Plain(Generator),
    /// LTX-2.3 vocoder with bandwidth extension.
    Bwe(VocoderWithBwe),
}

impl Vocoder {
    /// `vb` is rooted at the checkpoint prefix `vocoder`.
    pub fn new(cfg: &Config, vb: VarBuilder) -> Result<Self> {
        let ctx = |e: candle_core::Error| e.context("loading the vocoder (`vocoder.*`)");
        Ok(match cfg {
            Config::Plain(c) => Self::Plain(Generator::new(c, vb).map_err(ctx)?),
            Config::Bwe(c) => Self::Bwe(VocoderWithBwe::new(c, vb).map_err(ctx)?),
        })
    }

    /// 24000 for LTX-2.0, the BWE's `output_sampling_rate` (48000) for LTX-2.3.
    pub fn output_sampling_rate(&self) -> usize {
        match self {
            Self::Plain(g) => g.output_sampling_rate(),
            Self::Bwe(v) => v.output_sampling_rate(),
        }
    }

    /// Log-mel `(B, 2, T, mel)` -> waveform `(B, 2, samples)` in [-1, 1] at
    /// [`Self::output_sampling_rate`].
    pub fn forward(&self, mel: &Tensor) -> Result<Tensor> {
        match self {
            Self::Plain(g) => g.forward(mel),
            Self::Bwe(v) => v.forward(mel),
        }
    }
}

impl Module for Vocoder {
    fn forward(&self, mel: &Tensor) -> Result<Tensor> {
        Vocoder::forward(self, mel)
    }
}

/// Latent-to-waveform path (ltx-core `decode_audio`): audio VAE decoder then vocoder.
#[derive(Debug, Clone)]
pub struct AudioDecodePipeline {
    pub decoder: AudioDecoder,
    pub vocoder: Vocoder,
}

impl AudioDecodePipeline {
    /// Loads both from one checkpoint `VarBuilder` rooted at the file (not at a component prefix).
    pub fn new(vae_cfg: &AudioVaeConfig, vocoder_cfg: &Config, vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            decoder: AudioDecoder::new(vae_cfg, vb.pp("audio_vae"))?,
            vocoder: Vocoder::new(vocoder_cfg, vb.pp("vocoder"))?,
        })
    }

    /// Normalized audio latent `(B, 8, T, 16)` -> waveform `(B, 2, (4T - 3) * hop)` at
    /// [`Vocoder::output_sampling_rate`] (hop: [`Config::hop_product`], 240 for 2.0, 480 for 2.3).
    pub fn decode_audio(&self, latent: &Tensor) -> Result<Tensor> {
        self.vocoder.forward(&self.decoder.decode(latent)?)
    }
}

/// ltx-core `decode_audio(latent, audio_decoder, vocoder)` as a free function.
pub fn decode_audio(latent: &Tensor, decoder: &AudioDecoder, vocoder: &Vocoder) -> Result<Tensor> {
    vocoder.forward(&decoder.decode(latent)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bwe_section() -> serde_json::Value {
        let amp = serde_json::json!({"resblock": "AMP1", "stereo": true, "activation": "snakebeta",
            "use_tanh_at_final": false, "use_bias_at_final": false});
        let mut vocoder = amp.clone();
        vocoder["upsample_rates"] = serde_json::json!([5, 2, 2, 2, 2, 2]);
        vocoder["upsample_kernel_sizes"] = serde_json::json!([11, 4, 4, 4, 4, 4]);
        let mut bwe = amp;
        for (k, v) in [
            (
                "upsample_kernel_sizes",
                serde_json::json!([12, 11, 4, 4, 4]),
            ),
            ("input_sampling_rate", 16000.into()),
            ("output_sampling_rate", 48000.into()),
            ("n_fft", 512.into()),
            ("hop_length", 80.into()),
            ("num_mels", 64.into()),
        ] {
            bwe[k] = v;
        }
        serde_json::json!({"vocoder": vocoder, "bwe": bwe})
    }

    #[test]
    fn config_defaults_and_parsing() {
        let Config::Plain(cfg) = Config::from_checkpoint_config(
            &serde_json::json!({"vocoder": {"upsample_initial_channel": 64,
            "resblock": "1", "activation": "snake"}}),
        )
        .unwrap() else {
            panic!("a flat section is the 2.0 vocoder")
        };
        assert_eq!(cfg.upsample_initial_channel, 64);
        assert_eq!(cfg.hop_product(), 240);
        assert_eq!(Config::ltx2_19b().output_sampling_rate(), 24000);
        assert!(Config::from_checkpoint_config(
            &serde_json::json!({"vocoder": {"resblock": "AMP1"}})
        )
        .is_err());
        assert!(
            Config::from_checkpoint_config(&serde_json::json!({"vocoder": {"bwe": {}}})).is_err()
        );
    }

    #[test]
    fn bwe_config_from_the_metadata_or_the_section() {
        for json in [serde_json::json!({"vocoder": bwe_section()}), bwe_section()] {
            let cfg = Config::from_checkpoint_config(&json).unwrap();
            assert_eq!(cfg.output_sampling_rate(), 48000);
            assert_eq!(cfg.hop_product(), 480);
            let Config::Bwe(c) = cfg else {
                panic!("nested section is the 2.3 vocoder")
            };
            assert_eq!(c.vocoder.output_sampling_rate, 16000);
            assert!(c.vocoder.apply_final_activation);
            assert!(!c.bwe_generator.apply_final_activation);
            // Keys absent from the section take ltx-core's defaults.
            assert_eq!(c.bwe_generator.upsample_rates, vec![6, 5, 2, 2, 2]);
            assert_eq!(c.vocoder.upsample_initial_channel, 1024);
            assert_eq!(c.ratio(), 3);
        }
    }

    /// ltx-core's checks: the three values it requires in both sub-sections, and the five BWE
    /// front-end keys; the message names the key.
    #[test]
    fn bwe_config_errors_name_the_key() {
        let cases: [(&str, &str, serde_json::Value); 6] = [
            ("vocoder", "activation", "snake".into()),
            ("bwe", "resblock", "1".into()),
            ("bwe", "stereo", false.into()),
            ("bwe", "n_fft", serde_json::Value::Null),
            ("bwe", "output_sampling_rate", 44100.into()),
            ("bwe", "num_mels", 80.into()),
        ];
        for (section, key, value) in cases {
            let mut json = bwe_section();
            if value.is_null() {
                json[section].as_object_mut().unwrap().remove(key);
            } else {
                json[section][key] = value;
            }
            let err = Config::from_checkpoint_config(&json)
                .unwrap_err()
                .to_string();
            println!("{section}.{key}: {err}");
            let named = match key {
                "output_sampling_rate" => "rates",
                k => k,
            };
            assert!(err.contains(named), "{section}.{key}: {err}");
        }
    }
}
