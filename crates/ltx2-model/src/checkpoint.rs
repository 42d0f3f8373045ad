//! Reading the official single-file checkpoint: component prefixes, the `config` metadata, dtypes
//! (f32, bf16, FP8 with per-tensor scales), parameter counts, and a checked transformer load.
//!
//! Only the header is parsed (the file is memory-mapped); tensors are read by the `VarBuilder`.
//! FP8 layers stay FP8 when the transformer is built ([`crate::linear`], [`crate::quantization`]).

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use candle_core::{DType, Device};
use safetensors::Dtype;

use crate::generation::{self, Generation, GenerationError, Identity};
use crate::memory::{self, Resident};
use crate::quantization::Quantization;
use crate::transformer::config::{AvCrossAdaln, ConfigError, TransformerConfig};
use crate::transformer::LtxModel;

/// The key prefix of the DiT inside the combined checkpoint.
pub const TRANSFORMER_PREFIX: &str = "model.diffusion_model.";

/// Largest safetensors header (JSON) accepted, in bytes. A real LTX checkpoint's is under 1 MiB;
/// the format's own limit (100 MB) would let a crafted file cost gigabytes of parsed JSON.
pub const MAX_HEADER_BYTES: u64 = 16 << 20;

/// A checkpoint that cannot be used as it is. Messages name the file and the offending key(s).
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    #[error("{path}: {message}")]
    Unreadable { path: PathBuf, message: String },
    #[error("{path}: missing tensor(s): {}", keys.join(", "))]
    MissingTensors { path: PathBuf, keys: Vec<String> },
    #[error("{path}: wrong shape(s): {}", mismatches.iter().map(|m| m.to_string()).collect::<Vec<_>>().join(", "))]
    WrongShapes {
        path: PathBuf,
        mismatches: Vec<ShapeMismatch>,
    },
    #[error("{path}: tensor {key} has unsupported dtype {dtype}")]
    UnsupportedDtype {
        path: PathBuf,
        key: String,
        dtype: String,
    },
    #[error("{path}: {source}")]
    Config { path: PathBuf, source: ConfigError },
    /// `model_version` and the config's architecture flags name different generations.
    #[error("{source}")]
    Generation { source: GenerationError },
    /// Keys that belong to another generation's layout than the file's config describes (a file
    /// stitched together from two models; loading it would silently ignore those weights).
    #[error("{path}: mixes model generations: a {generation} file with key(s) of another generation's layout: {}", keys.join(", "))]
    ForeignKeys {
        path: PathBuf,
        generation: Generation,
        keys: Vec<String>,
    },
    /// The quantization mode cannot load this file (e.g. `fp8-scaled-mm` without FP8 layers).
    #[error("{path}: --quantization {quantization}: {message}")]
    Quantization {
        path: PathBuf,
        quantization: Quantization,
        message: String,
    },
    #[error("{path}: building the model: {source}")]
    Build {
        path: PathBuf,
        source: candle_core::Error,
    },
}

/// One tensor whose shape differs from what the config implies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShapeMismatch {
    pub key: String,
    pub expected: Vec<usize>,
    pub found: Vec<usize>,
}

impl std::fmt::Display for ShapeMismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} is {:?}, expected {:?}",
            self.key, self.found, self.expected
        )
    }
}

/// What a key belongs to, by prefix (ltx2-architecture.md §7.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Component {
    /// `model.diffusion_model.*` except the connectors.
    Transformer,
    /// `model.diffusion_model.video_embeddings_connector.*`
    VideoConnector,
    /// `model.diffusion_model.audio_embeddings_connector.*`
    AudioConnector,
    /// `text_embedding_projection.*` (Gemma feature projection, `aggregate_embed`).
    TextEmbeddingProjection,
    /// `vae.*`
    VideoVae,
    /// `audio_vae.*`
    AudioVae,
    /// `vocoder.*`
    Vocoder,
    /// Anything else (e.g. the separate upsampler file, which has no prefix).
    Other,
}

impl Component {
    pub fn of(key: &str) -> Self {
        if let Some(rest) = key.strip_prefix(TRANSFORMER_PREFIX) {
            if rest.starts_with("video_embeddings_connector.") {
                return Self::VideoConnector;
            }
            if rest.starts_with("audio_embeddings_connector.") {
                return Self::AudioConnector;
            }
            return Self::Transformer;
        }
        for (prefix, c) in [
            ("text_embedding_projection.", Self::TextEmbeddingProjection),
            ("vae.", Self::VideoVae),
            ("audio_vae.", Self::AudioVae),
            ("vocoder.", Self::Vocoder),
        ] {
            if key.starts_with(prefix) {
                return c;
            }
        }
        Self::Other
    }

    /// The key prefix (empty for [`Component::Other`]).
    pub fn prefix(self) -> &'static str {
        match self {
            Self::Transformer => TRANSFORMER_PREFIX,
            Self::VideoConnector => "model.diffusion_model.video_embeddings_connector.",
            Self::AudioConnector => "model.diffusion_model.audio_embeddings_connector.",
            Self::TextEmbeddingProjection => "text_embedding_projection.",
            Self::VideoVae => "vae.",
            Self::AudioVae => "audio_vae.",
            Self::Vocoder => "vocoder.",
            Self::Other => "",
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Transformer => "transformer",
            Self::VideoConnector => "video connector",
            Self::AudioConnector => "audio connector",
            Self::TextEmbeddingProjection => "text embedding projection",
            Self::VideoVae => "video VAE",
            Self::AudioVae => "audio VAE",
            Self::Vocoder => "vocoder",
            Self::Other => "other (no known prefix)",
        }
    }
}

/// Header entry of one tensor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorEntry {
    pub dtype: Dtype,
    pub shape: Vec<usize>,
}

impl TensorEntry {
    pub fn elem_count(&self) -> u64 {
        self.shape.iter().map(|&d| d as u64).product()
    }
}

/// Whether a key is an FP8 quantization scale rather than a parameter (exact suffix match).
pub fn is_quantization_scale(key: &str) -> bool {
    key.ends_with(".weight_scale") || key.ends_with(".input_scale")
}

/// Per-component totals for `ltx2 inspect`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ComponentSummary {
    pub component: Component,
    pub tensors: usize,
    /// Elements of all tensors except FP8 scales.
    pub parameters: u64,
    /// Tensor count per dtype (`"BF16"`, `"F8_E4M3"`, ...).
    pub dtypes: BTreeMap<String, usize>,
    /// FP8 `weight_scale` / `input_scale` scalars.
    pub quantization_scales: usize,
}

/// The header of a safetensors checkpoint.
#[derive(Debug, Clone)]
pub struct Checkpoint {
    path: PathBuf,
    tensors: BTreeMap<String, TensorEntry>,
    metadata: HashMap<String, String>,
}

impl Checkpoint {
    /// Reads the header (the data stays on disk).
    pub fn open(path: impl AsRef<Path>) -> Result<Self, CheckpointError> {
        let path = path.as_ref().to_path_buf();
        let fail = |message: String| CheckpointError::Unreadable {
            path: path.clone(),
            message,
        };
        let file = std::fs::File::open(&path).map_err(|e| fail(format!("cannot open: {e}")))?;
        // SAFETY: read-only map of a file we do not modify; only the header is parsed here.
        let mmap =
            unsafe { memmap2::Mmap::map(&file) }.map_err(|e| fail(format!("cannot map: {e}")))?;
        Self::from_bytes(path, &mmap[..])
    }

    /// Parses the header of a whole safetensors file held in `bytes` (named `path` in errors).
    /// The header length is checked against [`MAX_HEADER_BYTES`] and the file's size before
    /// anything is parsed; the safetensors reader then refuses overlapping, out-of-order or
    /// out-of-file offsets and shapes whose size differs from their byte range.
    pub fn from_bytes(path: impl Into<PathBuf>, bytes: &[u8]) -> Result<Self, CheckpointError> {
        let path = path.into();
        let fail = |message: String| CheckpointError::Unreadable {
            path: path.clone(),
            message,
        };
        check_header_length(bytes.get(..8), bytes.len() as u64)
            .map_err(|m| fail(format!("not a valid safetensors file: {m}")))?;
        let (_, header) = safetensors::SafeTensors::read_metadata(bytes)
            .map_err(|e| fail(format!("not a valid safetensors file: {e}")))?;
        let tensors = header
            .tensors()
            .into_iter()
            .map(|(k, info)| {
                (
                    k,
                    TensorEntry {
                        dtype: info.dtype,
                        shape: info.shape.clone(),
                    },
                )
            })
            .collect();
        let metadata = header.metadata().clone().unwrap_or_default();
        Ok(Self {
            path,
            tensors,
            metadata,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Every tensor, sorted by key.
    pub fn tensors(&self) -> &BTreeMap<String, TensorEntry> {
        &self.tensors
    }

    pub fn metadata(&self) -> &HashMap<String, String> {
        &self.metadata
    }

    /// The parsed `config` metadata JSON, `Ok(None)` when absent.
    pub fn config(&self) -> Result<Option<serde_json::Value>, CheckpointError> {
        match self.metadata.get("config") {
            None => Ok(None),
            Some(text) => {
                serde_json::from_str(text)
                    .map(Some)
                    .map_err(|e| CheckpointError::Unreadable {
                        path: self.path.clone(),
                        message: format!("`config` metadata is not valid JSON: {e}"),
                    })
            }
        }
    }

    /// Which LTX generation the file is (`model_version`, else the config flags, else the file
    /// name; see [`crate::generation::detect`]); an error when `model_version` and the config
    /// flags contradict each other.
    pub fn identity(&self) -> Result<Identity, CheckpointError> {
        let name = self
            .path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        generation::detect(&self.metadata, &name).map_err(|e| match e {
            GenerationError::Mixed { detail, .. } => CheckpointError::Generation {
                source: GenerationError::Mixed {
                    file: self.path.display().to_string(),
                    detail,
                },
            },
        })
    }

    /// The transformer config from the metadata (19B values for absent keys). A file without
    /// `config` metadata gets the named config of its generation ([`Self::identity`]: the 22B for
    /// a 2.3 or 2.5 `model_version` or file name, else the 19B). The A↔V AdaLN inputs follow the
    /// ltx-core release the generation is matched to (1.2.0 for LTX-2.5, 1.0.0 before).
    pub fn transformer_config(&self) -> Result<TransformerConfig, CheckpointError> {
        let identity = self.identity()?;
        let mut cfg = match self.config()? {
            None => match identity.generation {
                Generation::Ltx25 => TransformerConfig::ltx25_22b(),
                Generation::Ltx23 => TransformerConfig::ltx23_22b(),
                Generation::Ltx2 => TransformerConfig::ltx2_19b(),
            },
            Some(config) => {
                TransformerConfig::from_checkpoint_config(&config).map_err(|source| {
                    CheckpointError::Config {
                        path: self.path.clone(),
                        source,
                    }
                })?
            }
        };
        cfg.av_cross_adaln = if identity.generation >= Generation::Ltx25 {
            AvCrossAdaln::OwnTimesteps
        } else {
            AvCrossAdaln::OtherSigma
        };
        Ok(cfg)
    }

    /// The checkpoint config the generation rules judge the keys by: the file's own, or for a
    /// file without one the flags of `cfg` (its connectors gated like its blocks, as in 2.3).
    fn layout_config(&self, cfg: &TransformerConfig) -> Result<serde_json::Value, CheckpointError> {
        Ok(self.config()?.unwrap_or_else(|| {
            serde_json::json!({ "transformer": {
                "apply_gated_attention": cfg.apply_gated_attention,
                "cross_attention_adaln": cfg.cross_attention_adaln,
                "caption_proj_before_connector": cfg.caption_proj_before_connector,
                "connector_apply_gated_attention": cfg.apply_gated_attention,
                "ff_bias": cfg.ff_bias,
                "audio_ff_bias": cfg.audio_ff_bias,
                "use_keyframes_abs_pos_embedding": cfg.use_keyframes_abs_pos_embedding,
                "use_prompt_adaln_single": cfg.use_prompt_adaln_single,
            }})
        }))
    }

    /// Totals per component present in the file, in [`Component`] order.
    pub fn components(&self) -> Vec<ComponentSummary> {
        let mut by: BTreeMap<Component, ComponentSummary> = BTreeMap::new();
        for (key, t) in &self.tensors {
            let c = Component::of(key);
            let s = by.entry(c).or_insert_with(|| ComponentSummary {
                component: c,
                tensors: 0,
                parameters: 0,
                dtypes: BTreeMap::new(),
                quantization_scales: 0,
            });
            s.tensors += 1;
            *s.dtypes.entry(t.dtype.to_string()).or_default() += 1;
            if is_quantization_scale(key) {
                s.quantization_scales += 1;
            } else {
                s.parameters += t.elem_count();
            }
        }
        by.into_values().collect()
    }

    /// Checks that the file is one generation (its `model_version` agrees with its config flags,
    /// and it holds no key of another generation's layout), then that every DiT tensor `cfg`
    /// implies is present with its shape and a loadable dtype; the errors list all foreign,
    /// missing or mis-shaped keys (full checkpoint names).
    pub fn check_transformer(&self, cfg: &TransformerConfig) -> Result<(), CheckpointError> {
        let identity = self.identity()?;
        let foreign = generation::foreign_keys(self.tensors.keys(), &self.layout_config(cfg)?);
        if !foreign.is_empty() {
            return Err(CheckpointError::ForeignKeys {
                path: self.path.clone(),
                generation: identity.generation,
                keys: foreign,
            });
        }
        let mut missing = Vec::new();
        let mut mismatches = Vec::new();
        for (rel, expected) in cfg.tensor_shapes() {
            let key = format!("{TRANSFORMER_PREFIX}{rel}");
            match self.tensors.get(&key) {
                None => missing.push(key),
                Some(t) if t.shape != expected => mismatches.push(ShapeMismatch {
                    key,
                    expected,
                    found: t.shape.clone(),
                }),
                Some(t) => {
                    if !matches!(
                        t.dtype,
                        Dtype::F32 | Dtype::BF16 | Dtype::F16 | Dtype::F8_E4M3
                    ) {
                        return Err(CheckpointError::UnsupportedDtype {
                            path: self.path.clone(),
                            key,
                            dtype: t.dtype.to_string(),
                        });
                    }
                }
            }
        }
        if !missing.is_empty() {
            return Err(CheckpointError::MissingTensors {
                path: self.path.clone(),
                keys: missing,
            });
        }
        if !mismatches.is_empty() {
            return Err(CheckpointError::WrongShapes {
                path: self.path.clone(),
                mismatches,
            });
        }
        Ok(())
    }

    /// Whether the DiT holds FP8 layers (`F8_E4M3` weights with a `weight_scale`).
    pub fn has_fp8_transformer(&self) -> bool {
        self.tensors
            .iter()
            .any(|(k, t)| Component::of(k) == Component::Transformer && t.dtype == Dtype::F8_E4M3)
    }

    /// Refuses a mode the file cannot serve, before anything is read: `fp8-cast` of a file that
    /// is already FP8, `fp8-scaled-mm` of a file without FP8 layers or without their
    /// `input_scale`.
    pub fn check_quantization(&self, quantization: Quantization) -> Result<(), CheckpointError> {
        let refuse = |message: String| {
            Err(CheckpointError::Quantization {
                path: self.path.clone(),
                quantization,
                message,
            })
        };
        let fp8 = self.has_fp8_transformer();
        match quantization {
            Quantization::None => Ok(()),
            Quantization::Fp8Cast if fp8 => refuse(
                "this checkpoint is already FP8 (F8_E4M3 weights with weight_scale); fp8-cast \
                 casts a bf16 checkpoint: use none (FP8 kept resident) or fp8-scaled-mm"
                    .into(),
            ),
            Quantization::Fp8Cast => Ok(()),
            Quantization::Fp8ScaledMm if !fp8 => refuse(
                "fp8-scaled-mm multiplies FP8 weights with their input_scale, and this \
                 checkpoint's transformer has no FP8 layers: use the FP8 checkpoint, or fp8-cast"
                    .into(),
            ),
            Quantization::Fp8ScaledMm => {
                let missing: Vec<String> = self
                    .tensors
                    .iter()
                    .filter(|(k, t)| {
                        Component::of(k) == Component::Transformer && t.dtype == Dtype::F8_E4M3
                    })
                    .map(|(k, _)| k.strip_suffix(".weight").unwrap_or(k))
                    .filter(|layer| !self.tensors.contains_key(&format!("{layer}.input_scale")))
                    .map(|layer| format!("{layer}.input_scale"))
                    .collect();
                if missing.is_empty() {
                    Ok(())
                } else {
                    refuse(format!(
                        "the FP8 layers need their static activation scale; missing: {}",
                        missing.join(", ")
                    ))
                }
            }
        }
    }

    /// Resident bytes per component when this file is loaded in `compute` under
    /// `quantization`, from the header alone ([`crate::memory`]).
    pub fn resident_memory(
        &self,
        quantization: Quantization,
        compute: DType,
    ) -> Result<BTreeMap<Component, Resident>, String> {
        let mut groups: BTreeMap<Component, Vec<(&str, &TensorEntry)>> = BTreeMap::new();
        for (k, t) in &self.tensors {
            groups.entry(Component::of(k)).or_default().push((k, t));
        }
        groups
            .into_iter()
            .map(|(c, tensors)| Ok((c, memory::resident(tensors, quantization, compute)?)))
            .collect()
    }

    /// Parses the config, checks the DiT tensors, and builds the transformer in `dtype` on
    /// `device`, each layer as the file stores it (FP8 layers stay FP8).
    pub fn load_transformer(
        &self,
        dtype: DType,
        device: &Device,
    ) -> Result<LtxModel, CheckpointError> {
        self.load_transformer_quantized(dtype, device, Quantization::None)
    }

    /// [`Self::load_transformer`] under a quantization mode (checked against the file first).
    /// [`Self::load_transformer_quantized`] with a LoRA stack fused into the weights it adapts
    /// (ltx-core's `apply_loras` numerics, see [`crate::lora`]); an empty stack loads the base.
    pub fn load_transformer_with_loras(
        &self,
        dtype: DType,
        device: &Device,
        quantization: Quantization,
        loras: &crate::lora::LoraStack,
    ) -> Result<LtxModel, Box<dyn std::error::Error + Send + Sync>> {
        if loras.is_empty() {
            return Ok(self.load_transformer_quantized(dtype, device, quantization)?);
        }
        let cfg = self.transformer_config()?;
        self.check_transformer(&cfg)?;
        self.check_quantization(quantization)?;
        // SAFETY: as in load_transformer_quantized.
        let st = unsafe { candle_core::safetensors::MmapedSafetensors::new(&self.path) }?;
        let vb = crate::lora::LoraBackend::new(st, loras.clone())?.var_builder(dtype, device);
        Ok(LtxModel::new_quantized(
            &cfg,
            quantization,
            vb.pp(TRANSFORMER_PREFIX.trim_end_matches('.')),
        )?)
    }

    pub fn load_transformer_quantized(
        &self,
        dtype: DType,
        device: &Device,
        quantization: Quantization,
    ) -> Result<LtxModel, CheckpointError> {
        let cfg = self.transformer_config()?;
        self.check_transformer(&cfg)?;
        self.check_quantization(quantization)?;
        let build = |source| CheckpointError::Build {
            path: self.path.clone(),
            source,
        };
        // SAFETY: the mapped file must not change while the model is loaded (weights are copied
        // out of the map by the VarBuilder).
        let vb =
            unsafe { candle_nn::VarBuilder::from_mmaped_safetensors(&[&self.path], dtype, device) }
                .map_err(build)?;
        LtxModel::new_quantized(
            &cfg,
            quantization,
            vb.pp(TRANSFORMER_PREFIX.trim_end_matches('.')),
        )
        .map_err(build)
    }
}

/// One component's typed config from a checkpoint file: `parse` reads it from the `config`
/// metadata, `default` (the documented 19B values) stands in when the file has none.
pub fn component_config<T>(
    path: &Path,
    parse: impl FnOnce(&serde_json::Value) -> candle_core::Result<T>,
    default: impl FnOnce() -> T,
) -> candle_core::Result<T> {
    match read_config(path)? {
        Some(config) => parse(&config),
        None => Ok(default()),
    }
}

/// The JSON stored under the `config` key of a safetensors file's metadata (sections
/// `transformer`, `vae`, `audio_vae`, `vocoder` in the LTX-2 checkpoint; the upsampler file keeps
/// its own flat config there). `Ok(None)` when the file has no such entry.
pub fn read_config(path: &Path) -> candle_core::Result<Option<serde_json::Value>> {
    let metadata = read_metadata(path)?;
    match metadata.get("config") {
        None => Ok(None),
        Some(text) => serde_json::from_str(text).map(Some).map_err(|e| {
            candle_core::Error::Msg(format!(
                "{}: `config` metadata is not valid JSON: {e}",
                path.display()
            ))
        }),
    }
}

/// The string-to-string `__metadata__` of a safetensors file. The whole header is validated as
/// [`Checkpoint::open`] does (size cap, offsets, shapes), so a crafted file is refused here,
/// before any loader maps it.
pub fn read_metadata(
    path: &Path,
) -> candle_core::Result<std::collections::HashMap<String, String>> {
    Checkpoint::open(path)
        .map(|c| c.metadata)
        .map_err(|e| candle_core::Error::Msg(e.to_string()))
}

/// The header length of a safetensors file of `file_len` bytes whose first 8 bytes are `prefix`,
/// when it is within [`MAX_HEADER_BYTES`] and the file.
fn check_header_length(prefix: Option<&[u8]>, file_len: u64) -> Result<u64, String> {
    let prefix: [u8; 8] = prefix
        .and_then(|p| p.try_into().ok())
        .ok_or("shorter than the 8-byte header length")?;
    let len = u64::from_le_bytes(prefix);
    if len > MAX_HEADER_BYTES {
        return Err(format!(
            "header length {len} is over the {MAX_HEADER_BYTES} bytes accepted"
        ));
    }
    if len + 8 > file_len {
        return Err(format!(
            "header length {len} is past the end of the {file_len}-byte file"
        ));
    }
    Ok(len)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn components_by_prefix() {
        assert_eq!(
            Component::of("model.diffusion_model.patchify_proj.weight"),
            Component::Transformer
        );
        assert_eq!(
            Component::of("model.diffusion_model.video_embeddings_connector.learnable_registers"),
            Component::VideoConnector
        );
        assert_eq!(
            Component::of("text_embedding_projection.aggregate_embed.weight"),
            Component::TextEmbeddingProjection
        );
        assert_eq!(
            Component::of("audio_vae.decoder.conv_in.conv.weight"),
            Component::AudioVae
        );
        assert_eq!(
            Component::of("vae.decoder.conv_in.conv.weight"),
            Component::VideoVae
        );
        assert_eq!(Component::of("vocoder.conv_pre.weight"), Component::Vocoder);
        assert_eq!(Component::of("initial_conv.weight"), Component::Other);
    }

    #[test]
    fn scales_match_by_exact_suffix() {
        assert!(is_quantization_scale(
            "a.audio_to_video_attn.to_v.weight_scale"
        ));
        assert!(!is_quantization_scale("a.audio_to_video_attn.to_v.weight"));
        assert!(!is_quantization_scale("a.weight_scale_table"));
    }
}
