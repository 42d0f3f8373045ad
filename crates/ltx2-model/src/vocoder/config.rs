//! Vocoder hyper-parameters from the checkpoint `config` metadata, parsed the way ltx-core 1.0.0
//! `model_configurator.py::VocoderConfigurator` does: a flat `vocoder` section is the LTX-2.0
//! HiFi-GAN, a nested `vocoder.vocoder` + `vocoder.bwe` section is the LTX-2.3 vocoder with
//! bandwidth extension.

use candle_core::Result;
use serde::Deserialize;

/// ltx-core hard-codes a stereo input: 2 channels x 64 mel bins flattened to 128 conv channels.
pub(crate) const STEREO_MEL_CHANNELS: usize = 128;

fn config_error(m: impl std::fmt::Display) -> candle_core::Error {
    candle_core::Error::Msg(format!("vocoder config: {m}"))
}

/// Residual block type (`resblock`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum ResblockKind {
    /// HiFi-GAN `ResBlock1` with LeakyReLUs (LTX-2.0).
    #[serde(rename = "1")]
    One,
    /// Never built by ltx-core's configurator; kept so the error names it.
    #[serde(rename = "2")]
    Two,
    /// BigVGAN-v2 `AMPBlock1` with anti-aliased snake activations (LTX-2.3).
    #[serde(rename = "AMP1")]
    Amp1,
}

/// The periodic activation inside `AMPBlock1` (`activation`); ignored by `ResBlock1`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum Activation {
    /// `x + 1/exp(alpha) sin^2(exp(alpha) x)` (one parameter per channel).
    #[serde(rename = "snake")]
    Snake,
    /// `x + 1/exp(beta) sin^2(exp(alpha) x)` (separate frequency and magnitude).
    #[serde(rename = "snakebeta")]
    SnakeBeta,
}

/// One generator (ltx-core's `Vocoder` class): the flat LTX-2.0 `vocoder` section, or one of the
/// two LTX-2.3 sub-sections. Absent keys take ltx-core's defaults (which are the 19B values).
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct GeneratorConfig {
    pub resblock: ResblockKind,
    pub stereo: bool,
    pub activation: Activation,
    pub upsample_rates: Vec<usize>,
    pub upsample_kernel_sizes: Vec<usize>,
    pub resblock_kernel_sizes: Vec<usize>,
    pub resblock_dilation_sizes: Vec<Vec<usize>>,
    pub upsample_initial_channel: usize,
    pub output_sampling_rate: usize,
    pub use_tanh_at_final: bool,
    pub use_bias_at_final: bool,
    /// Not a config key: ltx-core's `apply_final_activation` constructor argument, false for the
    /// BWE generator (its output is a residual, clamped only after the skip is added).
    #[serde(skip_deserializing, default = "yes")]
    pub apply_final_activation: bool,
}

fn yes() -> bool {
    true
}

impl Default for GeneratorConfig {
    fn default() -> Self {
        Self::ltx2_19b()
    }
}

impl GeneratorConfig {
    /// LTX-2 19B (`ltx-2-19b-*.safetensors` metadata), also ltx-core's defaults.
    pub fn ltx2_19b() -> Self {
        Self {
            resblock: ResblockKind::One,
            stereo: true,
            activation: Activation::Snake,
            upsample_rates: vec![6, 5, 2, 2, 2],
            upsample_kernel_sizes: vec![16, 15, 8, 4, 4],
            resblock_kernel_sizes: vec![3, 7, 11],
            resblock_dilation_sizes: vec![vec![1, 3, 5]; 3],
            upsample_initial_channel: 1024,
            output_sampling_rate: 24000,
            use_tanh_at_final: true,
            use_bias_at_final: true,
            apply_final_activation: true,
        }
    }

    fn parse(section: &serde_json::Value, name: &str) -> Result<Self> {
        serde_json::from_value(section.clone()).map_err(|e| config_error(format!("`{name}`: {e}")))
    }

    /// Checks what the modules need to build and to keep lengths exact. ltx-core's own
    /// configurator decides which `resblock` a generation may use ([`Config::from_checkpoint_config`]).
    pub fn validate(&self) -> Result<()> {
        let fail = |m: String| Err(config_error(m));
        if self.resblock == ResblockKind::Two {
            return fail(
                "`resblock` \"2\" is not supported (ltx-core builds \"1\" or \"AMP1\")".into(),
            );
        }
        if !self.stereo {
            return fail("`stereo: false` is not supported (ltx-core requires stereo)".into());
        }
        if self.upsample_rates.len() != self.upsample_kernel_sizes.len() {
            return fail("`upsample_rates` and `upsample_kernel_sizes` differ in length".into());
        }
        if self.resblock_kernel_sizes.len() != self.resblock_dilation_sizes.len()
            || self.resblock_kernel_sizes.is_empty()
        {
            return fail(
                "`resblock_kernel_sizes` and `resblock_dilation_sizes` differ in length".into(),
            );
        }
        if self.resblock_dilation_sizes.iter().any(|d| d.len() != 3) {
            return fail(format!(
                "resblock {:?} needs exactly 3 dilations per kernel",
                self.resblock
            ));
        }
        if self.resblock == ResblockKind::Amp1 {
            // AMPBlock1 pads by `(k*d - d) / 2` on both sides (not "same"): an odd total padding
            // would shorten the branch and break the residual sum.
            for (&k, dils) in self
                .resblock_kernel_sizes
                .iter()
                .zip(&self.resblock_dilation_sizes)
            {
                if k == 0 || dils.iter().any(|&d| d == 0 || (d * (k - 1)) % 2 != 0) {
                    return fail(format!(
                        "AMP1 resblock kernel {k} with dilations {dils:?} does not keep the length"
                    ));
                }
            }
        }
        for (&r, &k) in self.upsample_rates.iter().zip(&self.upsample_kernel_sizes) {
            if r == 0 || k < r || (k - r) % 2 != 0 {
                return fail(format!(
                    "upsample kernel {k} with stride {r} does not give an exact x{r} length"
                ));
            }
        }
        if self.upsample_initial_channel >> self.upsample_rates.len() == 0 {
            return fail(
                "`upsample_initial_channel` too small for the number of upsamplings".into(),
            );
        }
        Ok(())
    }

    /// Waveform samples per mel frame (240 for 19B: 10 ms at 24 kHz).
    pub fn hop_product(&self) -> usize {
        self.upsample_rates.iter().product()
    }
}

/// The LTX-2.3 vocoder with bandwidth extension: the `vocoder.vocoder` generator (mel -> low-rate
/// wave), the STFT / mel front-end and `vocoder.bwe` generator that predict the high band.
#[derive(Debug, Clone)]
pub struct BweConfig {
    /// `vocoder.vocoder`, with `output_sampling_rate` = `bwe.input_sampling_rate`.
    pub vocoder: GeneratorConfig,
    /// The generator keys of `vocoder.bwe`, no final activation, `output_sampling_rate` =
    /// `bwe.output_sampling_rate`.
    pub bwe_generator: GeneratorConfig,
    pub input_sampling_rate: usize,
    pub output_sampling_rate: usize,
    /// STFT size and window length of the causal mel front-end.
    pub n_fft: usize,
    pub hop_length: usize,
    pub num_mels: usize,
}

impl BweConfig {
    /// From the nested `vocoder` section (`{"vocoder": {...}, "bwe": {...}}`), with ltx-core's
    /// checks: both generators must say `resblock` "AMP1", `stereo` true, `activation` "snakebeta";
    /// the five BWE front-end keys are required.
    pub fn from_section(section: &serde_json::Value) -> Result<Self> {
        let empty = serde_json::json!({});
        let vocoder_section = section.get("vocoder").unwrap_or(&empty);
        let bwe = section
            .get("bwe")
            .ok_or_else(|| config_error("no `vocoder.bwe` section"))?;
        for (name, s) in [("vocoder.vocoder", vocoder_section), ("vocoder.bwe", bwe)] {
            for (key, expected) in [
                ("resblock", serde_json::json!("AMP1")),
                ("stereo", serde_json::json!(true)),
                ("activation", serde_json::json!("snakebeta")),
            ] {
                let actual = s.get(key).unwrap_or(&serde_json::Value::Null);
                if *actual != expected {
                    return Err(config_error(format!(
                        "`{name}.{key}` is {actual}, expected {expected} (the LTX-2.3 vocoder)"
                    )));
                }
            }
        }
        let required = |key: &str| -> Result<usize> {
            bwe.get(key)
                .ok_or_else(|| config_error(format!("missing `vocoder.bwe.{key}`")))?
                .as_u64()
                .map(|v| v as usize)
                .ok_or_else(|| {
                    config_error(format!("`vocoder.bwe.{key}` is not a non-negative integer"))
                })
        };
        let input_sampling_rate = required("input_sampling_rate")?;
        let output_sampling_rate = required("output_sampling_rate")?;
        let mut vocoder = GeneratorConfig::parse(vocoder_section, "vocoder.vocoder")?;
        vocoder.output_sampling_rate = input_sampling_rate;
        let mut bwe_generator = GeneratorConfig::parse(bwe, "vocoder.bwe")?;
        bwe_generator.output_sampling_rate = output_sampling_rate;
        bwe_generator.apply_final_activation = false;
        let cfg = Self {
            vocoder,
            bwe_generator,
            input_sampling_rate,
            output_sampling_rate,
            n_fft: required("n_fft")?,
            hop_length: required("hop_length")?,
            num_mels: required("num_mels")?,
        };
        cfg.validate()?;
        Ok(cfg)
    }

    /// Rate ratio of the skip resampler (ltx-core `output_sampling_rate // input_sampling_rate`).
    pub fn ratio(&self) -> usize {
        self.output_sampling_rate / self.input_sampling_rate.max(1)
    }

    /// What ltx-core asserts or fails on at run time, checked at load instead.
    pub fn validate(&self) -> Result<()> {
        self.vocoder
            .validate()
            .map_err(|e| e.context("in `vocoder.vocoder`"))?;
        self.bwe_generator
            .validate()
            .map_err(|e| e.context("in `vocoder.bwe`"))?;
        let fail = |m: String| Err(config_error(m));
        if self.input_sampling_rate == 0
            || self.output_sampling_rate < self.input_sampling_rate
            || !self
                .output_sampling_rate
                .is_multiple_of(self.input_sampling_rate)
        {
            return fail(format!(
                "`vocoder.bwe` rates {} -> {} are not an integer upsampling",
                self.input_sampling_rate, self.output_sampling_rate
            ));
        }
        if self.hop_length == 0 || self.n_fft == 0 {
            return fail("`vocoder.bwe.n_fft` and `hop_length` must be positive".into());
        }
        // The generator's conv_pre takes the stereo mel flattened to 128 channels.
        if 2 * self.num_mels != STEREO_MEL_CHANNELS {
            return fail(format!(
                "`vocoder.bwe.num_mels` {} does not give the {STEREO_MEL_CHANNELS} stereo mel channels the BWE generator takes",
                self.num_mels
            ));
        }
        // The residual (hop_product samples per mel frame) and the resampled skip (ratio x hop)
        // must have the same length (ltx-core asserts it).
        let per_frame = self.ratio() * self.hop_length;
        if self.bwe_generator.hop_product() != per_frame {
            return fail(format!(
                "`vocoder.bwe.upsample_rates` give {} samples per mel frame, but hop {} x ratio {} = {per_frame}",
                self.bwe_generator.hop_product(),
                self.hop_length,
                self.ratio()
            ));
        }
        Ok(())
    }
}

/// The `vocoder` section of the checkpoint `config` metadata: which vocoder, and its parameters.
#[derive(Debug, Clone)]
pub enum Config {
    /// LTX-2.0: one HiFi-GAN generator (`resblock` "1"), 24 kHz.
    Plain(GeneratorConfig),
    /// LTX-2.3: BigVGAN-v2 generator + bandwidth extension, 48 kHz.
    Bwe(BweConfig),
}

impl Default for Config {
    fn default() -> Self {
        Self::ltx2_19b()
    }
}

impl Config {
    /// LTX-2 19B (`ltx-2-19b-*.safetensors` metadata).
    pub fn ltx2_19b() -> Self {
        Self::Plain(GeneratorConfig::ltx2_19b())
    }

    /// Parses the `vocoder` section of the checkpoint `config` metadata; the whole metadata object
    /// is also accepted (its `vocoder` member is used). A section with `bwe` is the LTX-2.3 vocoder.
    pub fn from_checkpoint_config(config: &serde_json::Value) -> Result<Self> {
        // The 2.3 section itself has a `vocoder` member (the 16 kHz generator): recognise it by
        // its `bwe` member before looking for a nested `vocoder`.
        let section = if config.get("bwe").is_some() {
            config
        } else {
            config.get("vocoder").unwrap_or(config)
        };
        if section.get("bwe").is_some() {
            return Ok(Self::Bwe(BweConfig::from_section(section)?));
        }
        let cfg = GeneratorConfig::parse(section, "vocoder")?;
        // ltx-core's configurator builds a flat section as the 2.0 HiFi-GAN only.
        if cfg.resblock != ResblockKind::One {
            return Err(config_error(format!(
                "`resblock` {:?} is not supported without a `bwe` section (LTX-2.0 uses \"1\")",
                cfg.resblock
            )));
        }
        cfg.validate()?;
        Ok(Self::Plain(cfg))
    }

    /// Reads the config from a checkpoint file's metadata, falling back to [`Config::ltx2_19b`].
    pub fn from_checkpoint(path: &std::path::Path) -> Result<Self> {
        crate::checkpoint::component_config(path, Self::from_checkpoint_config, Self::ltx2_19b)
    }

    pub fn validate(&self) -> Result<()> {
        match self {
            Self::Plain(c) => c.validate(),
            Self::Bwe(c) => c.validate(),
        }
    }

    /// Sample rate of the waveform the vocoder returns (24 kHz for 2.0, 48 kHz for 2.3).
    pub fn output_sampling_rate(&self) -> usize {
        match self {
            Self::Plain(c) => c.output_sampling_rate,
            Self::Bwe(c) => c.output_sampling_rate,
        }
    }

    /// Output samples per mel frame (240 for 2.0; 160 x 3 = 480 for 2.3).
    pub fn hop_product(&self) -> usize {
        match self {
            Self::Plain(c) => c.hop_product(),
            Self::Bwe(c) => c.vocoder.hop_product() * c.ratio(),
        }
    }
}
