//! The text feature extractor between Gemma and the connectors (`text_embedding_projection.*`),
//! chosen from the checkpoint `config.transformer` the way ltx-core's
//! `encoder_configurator.py::_create_feature_extractor` does:
//!
//! * none of the V2 keys present -> [`FeatureExtractorV1`] (LTX-2.0): one bias-free
//!   `aggregate_embed` to the Gemma width shared by both streams, the DiT projects the captions;
//! * all four present with exactly `caption_proj_before_connector: true` and
//!   `caption_projection_first_linear`, `caption_proj_input_norm`,
//!   `caption_projection_second_linear` false -> [`FeatureExtractorV2`] (LTX-2.3): one projection
//!   per stream, straight to the DiT's inner widths;
//! * anything else is refused (ltx-core raises `NotImplementedError` on such config drift).

mod v1;
mod v2;

use candle_core::{DType, Result, Tensor};
use candle_nn::VarBuilder;

use crate::text::TextError;

pub use v1::FeatureExtractorV1;
pub use v2::{FeatureExtractorV2, FeatureExtractorV2Config, Stream};

/// Gemma geometry the extractors read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FeatureExtractorConfig {
    /// Gemma hidden size (3840 for 12B); V1's output width.
    pub hidden_size: usize,
    /// Number of hidden states stacked (layers + 1 = 49 for 12B).
    pub num_hidden_states: usize,
}

impl FeatureExtractorConfig {
    pub fn ltx2_19b() -> Self {
        Self {
            hidden_size: 3840,
            num_hidden_states: 49,
        }
    }
}

/// `_V2_EXPECTED_CONFIG`: the only V2 combination ltx-core builds.
const V2_EXPECTED: [(&str, bool); 4] = [
    ("caption_proj_before_connector", true),
    ("caption_projection_first_linear", false),
    ("caption_proj_input_norm", false),
    ("caption_projection_second_linear", false),
];

/// Which extractor a checkpoint uses, with its geometry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FeatureExtractorVariant {
    V1(FeatureExtractorConfig),
    V2(FeatureExtractorV2Config),
}

impl FeatureExtractorVariant {
    /// From the whole checkpoint `config` JSON and the Gemma geometry.
    pub fn from_checkpoint_config(
        config: &serde_json::Value,
        gemma: FeatureExtractorConfig,
    ) -> std::result::Result<Self, TextError> {
        let empty = serde_json::Map::new();
        let transformer = match config.get("transformer") {
            None => &empty,
            Some(serde_json::Value::Object(t)) => t,
            Some(_) => {
                return Err(TextError::Config(
                    "config.transformer is not a JSON object".into(),
                ))
            }
        };
        let present: Vec<&str> = V2_EXPECTED
            .iter()
            .map(|(k, _)| *k)
            .filter(|k| transformer.contains_key(*k))
            .collect();
        if present.is_empty() {
            return Ok(Self::V1(gemma));
        }
        let missing: Vec<&str> = V2_EXPECTED
            .iter()
            .map(|(k, _)| *k)
            .filter(|k| !transformer.contains_key(*k))
            .collect();
        if !missing.is_empty() {
            return Err(TextError::Config(format!(
                "partial FeatureExtractorV2 config: config.transformer has {} but not {}",
                present.join(", "),
                missing.join(", ")
            )));
        }
        let unexpected: Vec<String> = V2_EXPECTED
            .iter()
            .filter(|(k, expected)| !python_equals_bool(&transformer[*k], *expected))
            .map(|(k, expected)| {
                format!(
                    "config.transformer.{k} = {} (expected {expected})",
                    transformer[*k]
                )
            })
            .collect();
        if !unexpected.is_empty() {
            return Err(TextError::Config(format!(
                "unsupported text projection config (ltx-core only builds FeatureExtractorV2 with \
                 caption_proj_before_connector true and the caption_projection_* / \
                 caption_proj_input_norm flags false): {}",
                unexpected.join(", ")
            )));
        }
        let dim = |key: &str| -> std::result::Result<usize, TextError> {
            let value = transformer.get(key).ok_or_else(|| {
                TextError::Config(format!(
                    "config.transformer.{key} is required by FeatureExtractorV2 \
                     (caption_proj_before_connector)"
                ))
            })?;
            value
                .as_u64()
                .filter(|&v| v > 0)
                .map(|v| v as usize)
                .ok_or_else(|| {
                    TextError::Config(format!(
                        "config.transformer.{key} = {value}: expected a positive integer"
                    ))
                })
        };
        Ok(Self::V2(FeatureExtractorV2Config {
            gemma,
            video_inner_dim: dim("num_attention_heads")? * dim("attention_head_dim")?,
            audio_inner_dim: dim("audio_num_attention_heads")? * dim("audio_attention_head_dim")?,
        }))
    }

    /// ltx-core's class name.
    pub fn name(&self) -> &'static str {
        match self {
            Self::V1(_) => "FeatureExtractorV1",
            Self::V2(_) => "FeatureExtractorV2",
        }
    }

    /// Width of the video / audio features (= the connectors' widths).
    pub fn widths(&self) -> (usize, usize) {
        match self {
            Self::V1(c) => (c.hidden_size, c.hidden_size),
            Self::V2(c) => (c.video_inner_dim, c.audio_inner_dim),
        }
    }
}

/// Python's `value != expected` for a JSON value against a bool (`1 == True`, `0.0 == False`).
fn python_equals_bool(value: &serde_json::Value, expected: bool) -> bool {
    match value {
        serde_json::Value::Bool(b) => *b == expected,
        serde_json::Value::Number(n) => n.as_f64() == Some(if expected { 1.0 } else { 0.0 }),
        _ => false,
    }
}

/// The features of one batch of prompts, one tensor per connector.
#[derive(Debug, Clone)]
pub struct TextFeatures {
    /// `(B, T, video width)`: the video connector's input.
    pub video: Tensor,
    /// `(B, T, audio width)`: the audio connector's input (V1: the same tensor as `video`).
    pub audio: Tensor,
}

#[derive(Debug, Clone)]
pub enum FeatureExtractor {
    V1(FeatureExtractorV1),
    V2(FeatureExtractorV2),
}

impl FeatureExtractor {
    /// `vb` is rooted at `text_embedding_projection`.
    pub fn new(variant: FeatureExtractorVariant, vb: VarBuilder) -> Result<Self> {
        Ok(match variant {
            FeatureExtractorVariant::V1(cfg) => Self::V1(FeatureExtractorV1::new(cfg, vb)?),
            FeatureExtractorVariant::V2(cfg) => Self::V2(FeatureExtractorV2::new(cfg, vb)?),
        })
    }

    pub fn variant(&self) -> FeatureExtractorVariant {
        match self {
            Self::V1(fe) => FeatureExtractorVariant::V1(fe.config()),
            Self::V2(fe) => FeatureExtractorVariant::V2(fe.config()),
        }
    }

    /// `hidden_states`: the `L` Gemma states `(B, T, hidden)`; `mask (B, T)`: 1 = valid token.
    pub fn forward(&self, hidden_states: &[Tensor], mask: &Tensor) -> Result<TextFeatures> {
        match self {
            Self::V1(fe) => {
                let features = fe.forward(hidden_states, mask)?;
                Ok(TextFeatures {
                    video: features.clone(),
                    audio: features,
                })
            }
            Self::V2(fe) => {
                let (video, audio) = fe.forward(hidden_states, mask)?;
                Ok(TextFeatures { video, audio })
            }
        }
    }
}

/// `x` (f32) rounded to `dtype`'s precision, kept in f32: how ltx-core's intermediate tensors
/// of a bf16 model lose precision, reproduced while computing in f32.
fn round_to(x: &Tensor, dtype: DType) -> Result<Tensor> {
    match dtype {
        DType::F32 | DType::F64 => Ok(x.clone()),
        _ => x.to_dtype(dtype)?.to_dtype(DType::F32),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gemma() -> FeatureExtractorConfig {
        FeatureExtractorConfig {
            hidden_size: 32,
            num_hidden_states: 5,
        }
    }

    fn v2_config() -> serde_json::Value {
        serde_json::json!({"transformer": {
            "caption_proj_before_connector": true, "caption_projection_first_linear": false,
            "caption_proj_input_norm": false, "caption_projection_second_linear": false,
            "num_attention_heads": 2, "attention_head_dim": 32,
            "audio_num_attention_heads": 2, "audio_attention_head_dim": 16
        }})
    }

    fn error(config: &serde_json::Value) -> String {
        FeatureExtractorVariant::from_checkpoint_config(config, gemma())
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn no_v2_keys_is_v1() {
        for config in [
            serde_json::json!({}),
            serde_json::json!({"transformer": {"caption_channels": 3840}}),
        ] {
            let variant =
                FeatureExtractorVariant::from_checkpoint_config(&config, gemma()).unwrap();
            assert_eq!(variant, FeatureExtractorVariant::V1(gemma()));
        }
    }

    #[test]
    fn exact_v2_keys_select_v2_at_the_dit_widths() {
        let variant =
            FeatureExtractorVariant::from_checkpoint_config(&v2_config(), gemma()).unwrap();
        assert_eq!(variant.widths(), (64, 32));
        // Python compares with `!=`, so 1 / 0 stand for true / false.
        let mut config = v2_config();
        config["transformer"]["caption_proj_before_connector"] = serde_json::json!(1);
        config["transformer"]["caption_proj_input_norm"] = serde_json::json!(0);
        assert!(FeatureExtractorVariant::from_checkpoint_config(&config, gemma()).is_ok());
    }

    #[test]
    fn partial_v2_config_names_the_missing_keys() {
        // Even an explicit `false` alone is refused, as by ltx-core.
        let config = serde_json::json!({"transformer": {"caption_proj_before_connector": false}});
        let msg = error(&config);
        assert!(msg.contains("caption_projection_first_linear"), "{msg}");
        assert!(msg.contains("caption_proj_input_norm"), "{msg}");
        assert!(msg.contains("caption_projection_second_linear"), "{msg}");
    }

    #[test]
    fn other_v2_values_name_the_key() {
        for (key, value) in [
            ("caption_proj_before_connector", false),
            ("caption_projection_first_linear", true),
            ("caption_proj_input_norm", true),
            ("caption_projection_second_linear", true),
        ] {
            let mut config = v2_config();
            config["transformer"][key] = serde_json::json!(value);
            let msg = error(&config);
            assert!(
                msg.contains(&format!("config.transformer.{key} = {value}")),
                "{msg}"
            );
        }
    }

    #[test]
    fn v2_requires_the_dit_widths() {
        for key in ["attention_head_dim", "audio_num_attention_heads"] {
            let mut config = v2_config();
            config["transformer"].as_object_mut().unwrap().remove(key);
            let msg = error(&config);
            assert!(msg.contains(&format!("config.transformer.{key}")), "{msg}");
        }
    }

    #[test]
    fn v2_is_per_token_and_zero_at_padding() {
        use candle_core::Device;
        let dev = Device::Cpu;
        let cfg = FeatureExtractorV2Config {
            gemma: FeatureExtractorConfig {
                hidden_size: 4,
                num_hidden_states: 2,
            },
            video_inner_dim: 8,
            audio_inner_dim: 2,
        };
        let vb = VarBuilder::zeros(DType::F32, &dev);
        let fe = FeatureExtractorV2::new(cfg, vb).unwrap();
        let a = Tensor::new(&[[[3f32, 4., 0., 0.], [1., 1., 1., 1.]]], &dev).unwrap();
        let b = (&a * 2.0).unwrap();
        let mask = Tensor::new(&[[1u32, 0]], &dev).unwrap();
        let normed = fe.normalize(&[a, b], &mask).unwrap();
        let rows = normed.squeeze(0).unwrap().to_vec2::<f32>().unwrap();
        // Token 0: rms 2.5 in both layers (the second is twice the first), interleaved d * L + l.
        let expected = [1.2f32, 1.2, 1.6, 1.6, 0., 0., 0., 0.];
        for (got, want) in rows[0].iter().zip(expected) {
            assert!((got - want).abs() < 1e-5, "{rows:?}");
        }
        assert!(rows[1].iter().all(|&v| v == 0.0), "padding must be zero");
        let video = fe.aggregate_embed_input(&normed, Stream::Video).unwrap();
        let v = video.squeeze(0).unwrap().to_vec2::<f32>().unwrap();
        assert!((v[0][0] - 1.2 * 2f32.sqrt()).abs() < 1e-5);
    }
}
