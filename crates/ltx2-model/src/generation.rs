//! Which LTX generation a checkpoint is: the one place every loader asks.
//!
//! The checkpoint says so itself: the top-level `model_version` metadata (what ltx-pipelines'
//! `detect_params` reads: a version starting with "2.3" selects the 2.3 defaults) and the
//! architecture flags of its `config` JSON (`apply_gated_attention`, `cross_attention_adaln`,
//! `caption_proj_before_connector`, a `bwe` vocoder, ...). The file name is only a fallback for
//! files without either. The components themselves never branch on the generation: they read
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
    /// LTX-2.5 (22B, August 2026): split files; not loadable yet.
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

    /// Parses a `model_version` value: "2.3.0", "2.3", "2.3.0-distilled" -> 2.3 (ltx-pipelines'
    /// prefix rule); 2.4 and later -> 2.5 (the 2.4 code path is 2.5's); "2.0"/"2" and 1.x/0.x -> 2.0.
    /// `None` for values that are not a version (e.g. a free-form label).
    pub fn from_model_version(version: &str) -> Option<Self> {
        let v = version.trim();
        let mut parts = v.split(|c: char| !c.is_ascii_digit());
        let major: u32 = parts.next()?.parse().ok()?;
        let minor: u32 = match v[major.to_string().len()..].strip_prefix('.') {
            Some(rest) => rest
                .split(|c: char| !c.is_ascii_digit())
                .next()
                .and_then(|m| m.parse().ok())
                .unwrap_or(0),
            None => 0,
        };
        match (major, minor) {
            (0 | 1, _) | (2, 0..=2) => Some(Self::Ltx2),
            (2, 3) => Some(Self::Ltx23),
            (2, _) => Some(Self::Ltx25),
            _ => None,
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
    /// The 2.3+ architecture flags that are on in the `config` (for `ltx2 inspect`).
    pub flags: Vec<&'static str>,
}

/// A checkpoint whose generation is contradictory or not supported.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GenerationError {
    #[error("{file}: mixes model generations: {detail}")]
    Mixed { file: String, detail: String },
}

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
    on
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
    let has_transformer = config
        .as_ref()
        .is_some_and(|c| c.get("transformer").is_some());
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
        (None, Some(f)) => (f, Evidence::ConfigFlags),
        (None, None) => match Generation::from_file_name(file_name) {
            Some(g) => (g, Evidence::FileName),
            None => (Generation::Ltx2, Evidence::Default),
        },
    };
    Ok(Identity {
        generation,
        evidence,
        model_version,
        flags,
    })
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
/// whose config says `caption_proj_before_connector`, or 2.3 `to_gate_logits` in a file without
/// gated attention. Such a file was stitched together from two models; loading it would silently
/// ignore weights.
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
