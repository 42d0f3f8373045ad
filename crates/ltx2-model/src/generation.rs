//! Which LTX generation a checkpoint is: the one place every loader asks.
//!
//! The checkpoint says so itself: the top-level `model_version` metadata (what ltx-pipelines'
//! `detect_params` reads: the newest generation the version is at or above, 2.4 being the
//! LTX-2.5 line), the `gemma_source_checkpoint` metadata that LTX-2.5 (Gemma-4) transformer files
//! carry (ltx-core 1.2.0 matches it against the text encoder: [`check_gemma_source`]) and the
//! architecture flags of its `config` JSON (`apply_gated_attention`, `cross_attention_adaln`,
//! `caption_proj_before_connector`, a `bwe` vocoder, `ff_bias: false`, ...). The file name is only
//! a fallback for files without any of them. The components themselves never branch on the generation: they read
//! their flags from the config; the generation picks pipeline defaults, names the model for
//! people and catches files that mix generations.

use std::collections::HashMap;
use std::path::Path;

/// An LTX model generation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Generation {
    /// LTX-2 (19B, January 2026): `ltx-2-19b-*`.
    Ltx2,
    /// LTX-2.3 (22B, March 2026): `ltx-2.3-22b-*`.
    Ltx23,
    /// LTX-2.5 (22B, August 2026): split files, one per component (ltx-core 1.2.0).
    Ltx25,
}

impl Generation {
    /// Short name as in the release ("2.0", "2.3", "2.5").
    pub fn version(self) -> &'static str {
        match self {
            Self::Ltx2 => "2.0",
            Self::Ltx23 => "2.3",
            Self::Ltx25 => "2.5",
        }
    }

    /// Name for people: "LTX-2 (19B)", "LTX-2.3 (22B)", "LTX-2.5 (22B)".
    pub fn display_name(self) -> &'static str {
        match self {
            Self::Ltx2 => "LTX-2 (19B)",
            Self::Ltx23 => "LTX-2.3 (22B)",
            Self::Ltx25 => "LTX-2.5 (22B)",
        }
    }

    /// Parses a `model_version` value as ltx-pipelines 1.2.0's `detect_params` does: "-" read as
    /// "." (release candidates), numeric components up to the first non-numeric one, then the
    /// newest generation the version is at or above: >= 2.4 -> 2.5 (the 2.4 code path is 2.5's,
    /// and newer unknown versions inherit the closest known generation), >= 2.3 -> 2.3, else 2.0.
    /// `None` for values without a leading number (e.g. a free-form label; ltx-pipelines would
    /// give those the 2.0 defaults, here the config flags decide).
    pub fn from_model_version(version: &str) -> Option<Self> {
        let parsed = parse_model_version(&version.trim().replace('-', "."));
        if parsed.is_empty() {
            None
        } else if parsed.as_slice() >= [2, 4].as_slice() {
            Some(Self::Ltx25)
        } else if parsed.as_slice() >= [2, 3].as_slice() {
            Some(Self::Ltx23)
        } else {
            Some(Self::Ltx2)
        }
    }

    /// From an official file name (`ltx-2-19b-distilled.safetensors`, `ltx-2.3-22b-dev.safetensors`,
    /// `ltx-2.5-...`); `None` when the name says nothing.
    pub fn from_file_name(name: &str) -> Option<Self> {
        let n = name.to_ascii_lowercase();
        if n.contains("ltx-2.5") || n.contains("ltx2.5") || n.contains("ltx-2.4") {
            Some(Self::Ltx25)
        } else if n.contains("ltx-2.3") || n.contains("ltx2.3") {
            Some(Self::Ltx23)
        } else if n.contains("ltx-2-") || n.contains("ltx-2.0") || n.contains("19b") {
            Some(Self::Ltx2)
        } else {
            None
        }
    }
}

/// ltx-core 1.2.0 `parse_model_version`: the dot-separated components up to the first one that is
/// not a plain integer. Compared as sequences, a shorter prefix is smaller (`[2, 4] < [2, 4, 0]`),
/// as Python compares the tuples.
pub fn parse_model_version(version: &str) -> Vec<u64> {
    version
        .split('.')
        .map_while(|part| {
            (!part.is_empty() && part.bytes().all(|b| b.is_ascii_digit()))
                .then(|| part.parse().ok())
                .flatten()
        })
        .collect()
}

impl std::fmt::Display for Generation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.display_name())
    }
}

/// What the generation was read from, strongest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Evidence {
    /// The `model_version` metadata.
    ModelVersion,
    /// The `gemma_source_checkpoint` metadata (only LTX-2.5 / Gemma-4 transformer files carry it).
    GemmaSource,
    /// The `gemma_version` of a packed Gemma-4 text-encoder file's `gemma_config` metadata.
    GemmaConfig,
    /// The architecture flags of the `config` metadata.
    ConfigFlags,
    /// The file name (no usable metadata).
    FileName,
    /// Nothing at all: the 19B, which is what an unlabelled LTX-2 file is.
    Default,
}

/// The generation of one checkpoint file and how it was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub generation: Generation,
    pub evidence: Evidence,
    /// The raw `model_version` metadata, when present.
    pub model_version: Option<String>,
    /// `gemma_source_checkpoint.gemma_version`: the Gemma the file was trained with (LTX-2.5
    /// transformer files; checked against the text encoder by [`check_gemma_source`]).
    pub gemma_version: Option<String>,
    /// The 2.3+ architecture flags that are on in the `config` (for `ltx2 inspect`).
    pub flags: Vec<&'static str>,
}

/// A checkpoint whose generation is contradictory or not supported.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GenerationError {
    #[error("{file}: mixes model generations: {detail}")]
    Mixed { file: String, detail: String },
}

/// The transformer file and the Gemma text encoder do not belong together (ltx-core 1.2.0
/// `_check_gemma_version`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the text encoder does not match the transformer: {0}")]
pub struct GemmaMismatch(pub String);

/// The `config.transformer` flags that only LTX-2.3 and later set, in the order `inspect` prints.
const FLAGS_23: [&str; 4] = [
    "apply_gated_attention",
    "cross_attention_adaln",
    "caption_proj_before_connector",
    "connector_apply_gated_attention",
];

/// The 2.3+ flags that are on in a checkpoint `config` JSON (the whole JSON), plus `vocoder.bwe`
/// when the vocoder has a bandwidth-extension stage.
pub fn flags_on(config: &serde_json::Value) -> Vec<&'static str> {
    let t = config.get("transformer");
    let mut on: Vec<&'static str> = FLAGS_23
        .iter()
        .copied()
        .filter(|f| {
            t.and_then(|t| t.get(*f))
                .and_then(|v| v.as_bool())
                .unwrap_or(false)
        })
        .collect();
    if config
        .get("vocoder")
        .is_some_and(|v| v.get("bwe").is_some())
    {
        on.push("vocoder.bwe");
    }
    if t.and_then(|t| t.get("ff_bias")).and_then(|v| v.as_bool()) == Some(false) {
        on.push("ff_bias=false");
    }
    let flag = |key: &str| t.and_then(|t| t.get(key)).and_then(|v| v.as_bool());
    if flag("use_keyframes_abs_pos_embedding") == Some(true) {
        on.push("use_keyframes_abs_pos_embedding");
    }
    if flag("use_prompt_adaln_single") == Some(false) {
        on.push("use_prompt_adaln_single=false");
    }
    on
}

/// `gemma_source_checkpoint.gemma_version` of a file's metadata (a JSON object), when present.
/// `Err` with the reason when the entry exists but is not that.
fn gemma_source(metadata: &HashMap<String, String>) -> Result<Option<String>, String> {
    let Some(raw) = metadata.get("gemma_source_checkpoint") else {
        return Ok(None);
    };
    let value: serde_json::Value = serde_json::from_str(raw)
        .map_err(|e| format!("`gemma_source_checkpoint` metadata is not JSON: {e}"))?;
    match value.get("gemma_version") {
        Some(serde_json::Value::String(v)) => Ok(Some(v.clone())),
        _ => Err(format!(
            "`gemma_source_checkpoint` metadata has no string `gemma_version`: {raw}"
        )),
    }
}

/// The `gemma_version` of a packed text-encoder file's `gemma_config` (HF config JSON) when it is
/// a Gemma-4 one: only LTX-2.5 ships such a file.
fn gemma_config_version(metadata: &HashMap<String, String>) -> Option<String> {
    let config: serde_json::Value = serde_json::from_str(metadata.get("gemma_config")?).ok()?;
    let gemma4 = config
        .get("model_type")
        .and_then(|t| t.as_str())
        .is_some_and(|t| t.starts_with("gemma4"));
    gemma4.then(|| {
        config
            .get("gemma_version")
            .and_then(|v| v.as_str())
            .unwrap_or("gemma4")
            .to_string()
    })
}

/// Detects the generation from a file's metadata (`model_version`, `config`) and, failing both,
/// its name. A `model_version` that contradicts the architecture flags is an error.
pub fn detect(
    metadata: &HashMap<String, String>,
    file_name: &str,
) -> Result<Identity, GenerationError> {
    let config: Option<serde_json::Value> = metadata
        .get("config")
        .and_then(|c| serde_json::from_str(c).ok());
    let flags = config.as_ref().map(flags_on).unwrap_or_default();
    // A DiT's config. The duration head's file carries a `transformer` section too (the context
    // widths it projects from, next to its own `duration_head` section): no generation evidence.
    let has_transformer = config
        .as_ref()
        .is_some_and(|c| c.get("transformer").is_some() && c.get("duration_head").is_none());
    let by_flags = has_transformer.then(|| {
        if flags.contains(&"ff_bias=false") {
            Generation::Ltx25
        } else if flags.iter().any(|f| FLAGS_23.contains(f)) {
            Generation::Ltx23
        } else {
            Generation::Ltx2
        }
    });
    let model_version = metadata.get("model_version").cloned();
    let by_version = model_version
        .as_deref()
        .and_then(Generation::from_model_version);
    let mixed = |detail: String| GenerationError::Mixed {
        file: file_name.to_string(),
        detail,
    };
    let gemma_version = gemma_source(metadata).map_err(mixed)?;
    let (generation, evidence) = match (by_version, by_flags) {
        (Some(v), Some(f)) => {
            // 2.5 shares 2.3's flags; a 2.0 version with 2.3 flags (or the reverse) is a mix.
            let compatible = v == f || (v == Generation::Ltx25 && f == Generation::Ltx23);
            if !compatible {
                let on = if flags.is_empty() {
                    "none of the 2.3 flags (apply_gated_attention, cross_attention_adaln, caption_proj_before_connector)".to_string()
                } else {
                    flags.join(", ")
                };
                return Err(mixed(format!(
                    "metadata model_version {:?} says {} but its config.transformer has {on}, which is {}",
                    model_version.as_deref().unwrap_or_default(),
                    v.display_name(),
                    f.display_name()
                )));
            }
            (v, Evidence::ModelVersion)
        }
        (Some(v), None) => (v, Evidence::ModelVersion),
        (None, f) if gemma_version.is_some() => {
            if f.is_some_and(|f| f < Generation::Ltx23) {
                return Err(mixed(format!(
                    "it declares gemma_source_checkpoint (an LTX-2.5 / Gemma-4 file) but its config.transformer is {}",
                    Generation::Ltx2.display_name()
                )));
            }
            (Generation::Ltx25, Evidence::GemmaSource)
        }
        (None, Some(f)) => (f, Evidence::ConfigFlags),
        (None, None) if gemma_config_version(metadata).is_some() => {
            (Generation::Ltx25, Evidence::GemmaConfig)
        }
        (None, None) => match Generation::from_file_name(file_name) {
            Some(g) => (g, Evidence::FileName),
            None => (Generation::Ltx2, Evidence::Default),
        },
    };
    if let Some(gv) = &gemma_version {
        if generation < Generation::Ltx25 {
            return Err(mixed(format!(
                "it declares gemma_source_checkpoint {{gemma_version: {gv:?}}}, which only LTX-2.5 (Gemma-4) files carry, but is {generation} by its {}",
                match evidence {
                    Evidence::ModelVersion => "model_version",
                    _ => "config",
                }
            )));
        }
    }
    Ok(Identity {
        generation,
        evidence,
        model_version,
        gemma_version,
        flags,
    })
}

/// ltx-core 1.2.0 `_check_gemma_version`: whether the Gemma text encoder (its HF config's
/// `model_type` and top-level `gemma_version`) belongs to the transformer file `transformer`
/// describes. A file declaring `gemma_source_checkpoint` needs exactly that `gemma_version`; a
/// file without it whose `model_version` is at least 2.4.0 must declare one, except when the Gemma
/// config has no `gemma_version` either (`Ok(Some(warning))`: ltx-core only warns); any older file
/// needs a Gemma-3 encoder.
pub fn check_gemma_source(
    transformer: &Identity,
    gemma_model_type: Option<&str>,
    gemma_version: Option<&str>,
) -> Result<Option<String>, GemmaMismatch> {
    let fail = |m: String| Err(GemmaMismatch(m));
    if let Some(expected) = &transformer.gemma_version {
        if Some(expected.as_str()) != gemma_version {
            return fail(format!(
                "the transformer's gemma_source_checkpoint expects gemma_version {expected:?}, the Gemma config has {gemma_version:?}"
            ));
        }
        return Ok(None);
    }
    let version = transformer.model_version.as_deref();
    // ltx-core compares the raw value here (no "-" normalisation): "2.4" is below (2, 4, 0).
    if version.is_some_and(|v| parse_model_version(v).as_slice() >= [2, 4, 0].as_slice()) {
        return match gemma_version {
            None => Ok(Some(format!(
                "model_version {:?} requires gemma_source_checkpoint.gemma_version but the file does not declare it, and the Gemma config has no gemma_version: compatibility not checked",
                version.unwrap_or_default()
            ))),
            Some(_) => fail(format!(
                "model_version {:?} must declare gemma_source_checkpoint.gemma_version, but none was found",
                version.unwrap_or_default()
            )),
        };
    }
    if gemma_model_type != Some("gemma3") {
        return fail(format!(
            "the transformer has no gemma_source_checkpoint (model_version {version:?}), so it needs a Gemma 3 text encoder (model_type \"gemma3\"), got {gemma_model_type:?}"
        ));
    }
    Ok(None)
}

/// [`detect`] on a file, reading only its header.
pub fn detect_file(path: &Path) -> candle_core::Result<Identity> {
    let metadata = crate::checkpoint::read_metadata(path)?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    detect(&metadata, &name).map_err(|e| candle_core::Error::Msg(e.to_string()))
}

/// Keys (full checkpoint names) that only exist in another generation's layout than the one the
/// `config` JSON (the whole checkpoint config) describes: e.g. a 2.0 `caption_projection` in a file
/// whose config says `caption_proj_before_connector`, 2.3 `to_gate_logits` in a file without
/// gated attention, or 2.0/2.3 video feed-forward biases in a file with `ff_bias: false`. Such a
/// file was stitched together from two models; loading it would silently ignore weights.
pub fn foreign_keys<'a>(
    keys: impl IntoIterator<Item = &'a String>,
    config: &serde_json::Value,
) -> Vec<String> {
    let on = flags_on(config);
    let flag = |f: &str| on.contains(&f);
    let (gated, connector_gated, adaln, proj_before) = (
        flag("apply_gated_attention"),
        flag("connector_apply_gated_attention"),
        flag("cross_attention_adaln"),
        flag("caption_proj_before_connector"),
    );
    // ltx-core 1.2.0's flags, with its defaults for absent keys.
    let t = config.get("transformer");
    let bool_or = |key: &str, default: bool| {
        t.and_then(|t| t.get(key))
            .and_then(|v| v.as_bool())
            .unwrap_or(default)
    };
    let (ff_bias, audio_ff_bias, keyframes, prompt_adaln) = (
        bool_or("ff_bias", true),
        bool_or("audio_ff_bias", true),
        bool_or("use_keyframes_abs_pos_embedding", false),
        bool_or("use_prompt_adaln_single", true),
    );
    let block_ff_bias = |k: &str, ff: &str| {
        k.strip_prefix("model.diffusion_model.transformer_blocks.")
            .is_some_and(|rest| rest.contains(ff) && rest.ends_with(".bias"))
    };
    keys.into_iter()
        .filter(|k| {
            let gate = k.contains(".to_gate_logits.");
            let connector = k.contains("_embeddings_connector.");
            let gate_allowed = if connector { connector_gated } else { gated };
            (gate && !gate_allowed)
                || (!adaln
                    && (k.contains("prompt_adaln_single.")
                        || k.contains("prompt_scale_shift_table")))
                || (proj_before
                    && (k.starts_with("model.diffusion_model.caption_projection.")
                        || k.starts_with("model.diffusion_model.audio_caption_projection.")
                        || k.starts_with("text_embedding_projection.aggregate_embed.")))
                || (!proj_before
                    && (k.starts_with("text_embedding_projection.video_aggregate_embed.")
                        || k.starts_with("text_embedding_projection.audio_aggregate_embed.")))
                || (!ff_bias && block_ff_bias(k, ".ff.net."))
                || (!audio_ff_bias && block_ff_bias(k, ".audio_ff.net."))
                || (!keyframes && k.as_str() == "model.diffusion_model.keyframes_abs_pos_embedding")
                || (!prompt_adaln
                    && (k.starts_with("model.diffusion_model.prompt_adaln_single.")
                        || k.starts_with("model.diffusion_model.audio_prompt_adaln_single.")))
        })
        .cloned()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(version: Option<&str>, transformer: serde_json::Value) -> HashMap<String, String> {
        let mut m = HashMap::new();
        if let Some(v) = version {
            m.insert("model_version".into(), v.into());
        }
        m.insert(
            "config".into(),
            serde_json::json!({ "transformer": transformer }).to_string(),
        );
        m
    }

    #[test]
    fn model_versions() {
        use Generation::*;
        for (v, g) in [
            ("2.3.0", Some(Ltx23)),
            ("2.3", Some(Ltx23)),
            ("2.3.1-distilled", Some(Ltx23)),
            ("2.0.0", Some(Ltx2)),
            ("2", Some(Ltx2)),
            ("2.4.0", Some(Ltx25)),
            ("2.5.0", Some(Ltx25)),
            // ltx-pipelines 1.2.0: "-" is a separator, parsing stops at a non-number, newer
            // unknown versions take the newest known generation.
            ("2.4-rc2", Some(Ltx25)),
            ("2.3.rc1", Some(Ltx23)),
            ("2.3rc1", Some(Ltx2)),
            ("3.0", Some(Ltx25)),
            ("1.0", Some(Ltx2)),
            ("distilled", None),
            ("tiny-golden-ltx-2.0-19b-layout", None),
        ] {
            assert_eq!(Generation::from_model_version(v), g, "{v}");
        }
    }

    #[test]
    fn version_wins_and_flags_must_agree() {
        let flags23 =
            serde_json::json!({"apply_gated_attention": true, "cross_attention_adaln": true});
        let id = detect(&meta(Some("2.3.0"), flags23.clone()), "x.safetensors").unwrap();
        assert_eq!(id.generation, Generation::Ltx23);
        assert_eq!(id.evidence, Evidence::ModelVersion);
        let id = detect(&meta(None, flags23.clone()), "x.safetensors").unwrap();
        assert_eq!(
            (id.generation, id.evidence),
            (Generation::Ltx23, Evidence::ConfigFlags)
        );
        // A 2.3 label on a 19B config, and a 2.0 label on a 2.3 config, are mixes.
        let err = detect(&meta(Some("2.3.0"), serde_json::json!({})), "x").unwrap_err();
        assert!(err.to_string().contains("model_version"), "{err}");
        let err = detect(&meta(Some("2.0.0"), flags23), "x").unwrap_err();
        assert!(err.to_string().contains("apply_gated_attention"), "{err}");
    }

    #[test]
    fn model_version_parsing_follows_ltx_core() {
        assert_eq!(parse_model_version("2.5.0"), vec![2, 5, 0]);
        assert_eq!(parse_model_version("2.3.rc1"), vec![2, 3]);
        assert_eq!(parse_model_version("2.4-rc2"), vec![2]);
        assert_eq!(parse_model_version(""), Vec::<u64>::new());
        // Python tuple order: a shorter prefix is smaller.
        assert!(parse_model_version("2.4") < parse_model_version("2.4.0"));
    }

    /// The duration head's `config.transformer` holds only context widths: its `model_version`
    /// decides, no "mixed" verdict. A packed Gemma-4 text encoder is 2.5 by its `gemma_config`.
    #[test]
    fn component_files_of_ltx25() {
        let mut m = HashMap::new();
        m.insert("model_version".to_string(), "2.5.0".to_string());
        m.insert(
            "config".to_string(),
            serde_json::json!({"transformer": {"cross_attention_dim": 64, "audio_cross_attention_dim": 32},
                "duration_head": {}})
            .to_string(),
        );
        let id = detect(&m, "head.safetensors").unwrap();
        assert_eq!(
            (id.generation, id.evidence),
            (Generation::Ltx25, Evidence::ModelVersion)
        );
        let mut m = HashMap::new();
        m.insert(
            "gemma_config".to_string(),
            serde_json::json!({"model_type": "gemma4_unified", "gemma_version": "gemma4-12b-ltx-v1"})
                .to_string(),
        );
        let id = detect(&m, "text.safetensors").unwrap();
        assert_eq!(
            (id.generation, id.evidence),
            (Generation::Ltx25, Evidence::GemmaConfig)
        );
        // A Gemma-3 config says nothing about the generation.
        m.insert(
            "gemma_config".to_string(),
            serde_json::json!({"model_type": "gemma3"}).to_string(),
        );
        assert_eq!(
            detect(&m, "text.safetensors").unwrap().evidence,
            Evidence::Default
        );
    }

    fn meta25(version: Option<&str>, gemma: Option<&str>) -> HashMap<String, String> {
        let mut m = meta(
            version,
            serde_json::json!({"apply_gated_attention": true, "cross_attention_adaln": true,
                "caption_proj_before_connector": true, "ff_bias": false}),
        );
        if let Some(g) = gemma {
            m.insert(
                "gemma_source_checkpoint".into(),
                serde_json::json!({ "gemma_version": g }).to_string(),
            );
        }
        m
    }

    #[test]
    fn gemma_source_checkpoint_marks_ltx25() {
        let id = detect(&meta25(Some("2.5.0"), Some("gemma4-x")), "t").unwrap();
        assert_eq!(
            (id.generation, id.evidence, id.gemma_version.as_deref()),
            (Generation::Ltx25, Evidence::ModelVersion, Some("gemma4-x"))
        );
        assert!(id.flags.contains(&"ff_bias=false"));
        // Without model_version the declaration itself says 2.5, even over 2.3-only flags.
        let mut m = meta(
            None,
            serde_json::json!({"apply_gated_attention": true, "cross_attention_adaln": true}),
        );
        m.insert(
            "gemma_source_checkpoint".into(),
            r#"{"gemma_version": "g"}"#.into(),
        );
        let id = detect(&m, "t").unwrap();
        assert_eq!(
            (id.generation, id.evidence),
            (Generation::Ltx25, Evidence::GemmaSource)
        );
        // A 2.3 model_version (or a 2.0 config) with a Gemma-4 declaration is a mix.
        m.insert("model_version".into(), "2.3.0".into());
        let err = detect(&m, "t").unwrap_err().to_string();
        assert!(err.contains("gemma_source_checkpoint"), "{err}");
        let mut m20 = meta(None, serde_json::json!({}));
        m20.insert(
            "gemma_source_checkpoint".into(),
            r#"{"gemma_version": "g"}"#.into(),
        );
        assert!(detect(&m20, "t").is_err());
        // Not the expected JSON object: an error naming the key.
        let mut bad = meta25(Some("2.5.0"), None);
        bad.insert("gemma_source_checkpoint".into(), "gemma4".into());
        let err = detect(&bad, "t").unwrap_err().to_string();
        assert!(err.contains("gemma_source_checkpoint"), "{err}");
    }

    /// ltx-core 1.2.0 `_check_gemma_version`, branch by branch.
    #[test]
    fn text_encoder_must_match_the_transformer() {
        let id = |v: Option<&str>, g: Option<&str>| detect(&meta25(v, g), "t").unwrap();
        let with = id(Some("2.5.0"), Some("gemma4-12b-ltx-v1"));
        assert_eq!(
            check_gemma_source(&with, Some("gemma4_unified"), Some("gemma4-12b-ltx-v1")),
            Ok(None)
        );
        let err = check_gemma_source(&with, Some("gemma4_unified"), Some("other")).unwrap_err();
        assert!(err.to_string().contains("gemma4-12b-ltx-v1"), "{err}");
        // 2.5.0 without the declaration: an error, or only a warning when the Gemma has none.
        let without = id(Some("2.5.0"), None);
        assert!(check_gemma_source(&without, Some("gemma4_unified"), Some("g")).is_err());
        assert!(check_gemma_source(&without, Some("gemma4_unified"), None)
            .unwrap()
            .is_some());
        // Older files need Gemma 3 ("2.4" is below (2, 4, 0) in ltx-core's comparison).
        let old = detect(
            &meta(
                Some("2.3.0"),
                serde_json::json!({"apply_gated_attention": true}),
            ),
            "t",
        )
        .unwrap();
        assert_eq!(check_gemma_source(&old, Some("gemma3"), None), Ok(None));
        assert!(check_gemma_source(&old, Some("gemma4_unified"), None).is_err());
        let v24 = id(Some("2.4"), None);
        assert!(check_gemma_source(&v24, Some("gemma3"), Some("g")).is_ok());
    }

    #[test]
    fn ltx25_foreign_keys() {
        let dit = |k: &str| format!("model.diffusion_model.{k}");
        let keys: Vec<String> = [
            "transformer_blocks.0.ff.net.2.bias",
            "transformer_blocks.0.audio_ff.net.2.bias",
            "video_embeddings_connector.transformer_1d_blocks.0.ff.net.2.bias",
            "keyframes_abs_pos_embedding",
            "prompt_adaln_single.linear.bias",
        ]
        .iter()
        .map(|k| dit(k))
        .collect();
        let base = serde_json::json!({"apply_gated_attention": true, "cross_attention_adaln": true,
            "caption_proj_before_connector": true});
        let with = |extra: serde_json::Value| {
            let mut t = base.clone();
            t.as_object_mut()
                .unwrap()
                .extend(extra.as_object().unwrap().clone());
            serde_json::json!({ "transformer": t })
        };
        // 2.3: the keyframe embedding is foreign, everything else belongs.
        assert_eq!(
            foreign_keys(&keys, &with(serde_json::json!({}))),
            [dit("keyframes_abs_pos_embedding")]
        );
        // 2.5: DiT video FF biases are foreign (the connector's are not).
        let v25 =
            with(serde_json::json!({"ff_bias": false, "use_keyframes_abs_pos_embedding": true}));
        assert_eq!(
            foreign_keys(&keys, &v25),
            [dit("transformer_blocks.0.ff.net.2.bias")]
        );
        let v25_static = with(serde_json::json!({"ff_bias": false, "audio_ff_bias": false,
            "use_keyframes_abs_pos_embedding": true, "use_prompt_adaln_single": false}));
        assert_eq!(
            foreign_keys(&keys, &v25_static),
            [
                dit("transformer_blocks.0.ff.net.2.bias"),
                dit("transformer_blocks.0.audio_ff.net.2.bias"),
                dit("prompt_adaln_single.linear.bias"),
            ]
        );
    }

    #[test]
    fn file_name_is_the_last_resort() {
        let none = HashMap::new();
        let g = |n: &str| detect(&none, n).unwrap();
        assert_eq!(
            g("ltx-2.3-22b-distilled.safetensors").generation,
            Generation::Ltx23
        );
        assert_eq!(
            g("ltx-2.3-22b-distilled.safetensors").evidence,
            Evidence::FileName
        );
        assert_eq!(
            g("ltx-2-19b-dev-fp8.safetensors").generation,
            Generation::Ltx2
        );
        assert_eq!(g("model.safetensors").evidence, Evidence::Default);
    }

    #[test]
    fn foreign_keys_are_named() {
        let keys: Vec<String> = [
            "model.diffusion_model.caption_projection.linear_1.weight",
            "model.diffusion_model.transformer_blocks.0.attn1.to_gate_logits.weight",
            "model.diffusion_model.transformer_blocks.0.prompt_scale_shift_table",
            "text_embedding_projection.video_aggregate_embed.weight",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let v20 = serde_json::json!({"transformer": {}});
        assert_eq!(foreign_keys(&keys, &v20), keys[1..].to_vec());
        let v23 = serde_json::json!({"transformer": {
            "apply_gated_attention": true, "cross_attention_adaln": true,
            "caption_proj_before_connector": true}});
        assert_eq!(foreign_keys(&keys, &v23), keys[..1].to_vec());
    }
}
