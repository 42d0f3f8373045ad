//! The Gemma assets ltx-core 1.2.0 reads (`gemma_assets.py::GemmaAssets`) from either layout:
//!
//! * the packed single-file text encoder of the split LTX-2.5 release
//!   (`text_encoders/gemma4-12b-with-proj-ltx-2.5-bf16.safetensors`): the HF `config.json` in the
//!   `gemma_config` metadata, `tokenizer.json` as the uint8 tensor `tokenizer_json`, the other HF
//!   files as `hf_asset__<name>` tensors (or, in older packs, metadata strings), the weights in the
//!   same file;
//! * an HF Gemma folder (`config.json`, `tokenizer.json`, sidecar JSON files, `model*.safetensors`).
//!
//! The generation is never guessed: the config's `model_type` says which Gemma it is.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::gemma3::safetensors_files;
use super::tokenizer::GemmaTokenizer;
use super::TextError;

/// Metadata key of the HF config in a packed file.
pub const GEMMA_CONFIG_METADATA_KEY: &str = "gemma_config";
/// Tensor holding the bytes of `tokenizer.json`.
pub const TOKENIZER_JSON_TENSOR_KEY: &str = "tokenizer_json";
/// Prefix of the tensors holding other HF files.
pub const HF_ASSET_TENSOR_PREFIX: &str = "hf_asset__";
/// Sidecars ltx-core requires (it builds the tokenizer and the prompt-enhancer processor).
const REQUIRED_SIDECARS: [&str; 2] = ["tokenizer_config.json", "processor_config.json"];
/// Sidecars older packs store as metadata strings.
const METADATA_FALLBACK_SIDECARS: [&str; 4] = [
    "tokenizer_config.json",
    "processor_config.json",
    "chat_template.jinja",
    "generation_config.json",
];

#[derive(Debug, Clone)]
pub struct GemmaAssets {
    /// The file or folder they came from (for messages).
    pub source: PathBuf,
    /// The HF `config.json` (top level, `text_config` nested for multimodal Gemmas).
    pub config: serde_json::Value,
    pub tokenizer_json: Vec<u8>,
    /// Other HF files by name (`tokenizer_config.json`, `processor_config.json`, ...).
    pub sidecars: BTreeMap<String, Vec<u8>>,
    /// The safetensors files holding the Gemma weights.
    pub weight_paths: Vec<PathBuf>,
}

impl GemmaAssets {
    /// From a packed `.safetensors` text-encoder file or an HF folder.
    pub fn load(path: &Path) -> Result<Self, TextError> {
        if path.is_dir() {
            Self::from_root(path)
        } else if path.is_file() && path.extension().is_some_and(|e| e == "safetensors") {
            Self::from_single_file(path)
        } else {
            Err(TextError::Config(format!(
                "Gemma path {} is neither a folder nor a .safetensors file",
                path.display()
            )))
        }
    }

    /// An HF folder: the top-level file of each name wins, else the first in sorted order below.
    pub fn from_root(root: &Path) -> Result<Self, TextError> {
        let fail = |e: String| TextError::Config(format!("{}: {e}", root.display()));
        let mut files = Vec::new();
        collect_files(root, &mut files).map_err(|e| fail(e.to_string()))?;
        // Shallow first, then by path: deterministic, and the root's own files win.
        files.sort_by_key(|p| (p.components().count(), p.clone()));
        let find = |name: &str| {
            files
                .iter()
                .find(|p| p.file_name().is_some_and(|n| n == name))
        };
        let read = |p: &Path| std::fs::read(p).map_err(|e| fail(format!("{}: {e}", p.display())));
        let config_path = find("config.json").ok_or_else(|| fail("no config.json".into()))?;
        let config = serde_json::from_slice(&read(config_path)?)
            .map_err(|e| fail(format!("config.json: {e}")))?;
        let tokenizer_path =
            find("tokenizer.json").ok_or_else(|| fail("no tokenizer.json".into()))?;
        let tokenizer_json = read(tokenizer_path)?;
        let mut sidecars = BTreeMap::new();
        for path in &files {
            let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
                continue;
            };
            let asset = name.ends_with(".json") || name.ends_with(".jinja");
            let excluded = name == "config.json" || name == "tokenizer.json";
            if asset && !excluded && !sidecars.contains_key(name) {
                sidecars.insert(name.to_string(), read(path)?);
            }
        }
        let weights_root = files
            .iter()
            .find(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with("model") && n.ends_with(".safetensors"))
            })
            .and_then(|p| p.parent())
            .ok_or_else(|| fail("no model*.safetensors weights".into()))?;
        let assets = Self {
            source: root.to_path_buf(),
            config,
            tokenizer_json,
            sidecars,
            weight_paths: safetensors_files(weights_root)?,
        };
        assets.require_sidecars()?;
        Ok(assets)
    }

    /// A packed text-encoder file.
    pub fn from_single_file(path: &Path) -> Result<Self, TextError> {
        let fail = |e: String| TextError::Config(format!("{}: {e}", path.display()));
        let file = std::fs::File::open(path).map_err(|e| fail(e.to_string()))?;
        // SAFETY: mmapped read-only; the file must not change while the assets are read.
        let mmap = unsafe { memmap2::Mmap::map(&file) }.map_err(|e| fail(e.to_string()))?;
        let (_, header) = safetensors::SafeTensors::read_metadata(&mmap)
            .map_err(|e| fail(format!("not a safetensors file: {e}")))?;
        let metadata = header.metadata().clone().unwrap_or_default();
        let raw_config = metadata.get(GEMMA_CONFIG_METADATA_KEY).ok_or_else(|| {
            fail(format!(
                "missing metadata key `{GEMMA_CONFIG_METADATA_KEY}` (the JSON HF config of the \
                 packed Gemma)"
            ))
        })?;
        let config = serde_json::from_str(raw_config)
            .map_err(|e| fail(format!("`{GEMMA_CONFIG_METADATA_KEY}` is not JSON: {e}")))?;
        let tensors = safetensors::SafeTensors::deserialize(&mmap)
            .map_err(|e| fail(format!("not a safetensors file: {e}")))?;
        let bytes_of = |name: &str| -> Result<Vec<u8>, TextError> {
            let view = tensors
                .tensor(name)
                .map_err(|e| fail(format!("tensor `{name}`: {e}")))?;
            tensor_bytes(&view).map_err(|e| fail(format!("tensor `{name}`: {e}")))
        };
        let tokenizer_json = bytes_of(TOKENIZER_JSON_TENSOR_KEY)?;
        let mut sidecars = BTreeMap::new();
        for name in tensors.names() {
            if let Some(asset) = name.strip_prefix(HF_ASSET_TENSOR_PREFIX) {
                sidecars.insert(asset.to_string(), bytes_of(name)?);
            }
        }
        for name in METADATA_FALLBACK_SIDECARS {
            if let (false, Some(text)) = (sidecars.contains_key(name), metadata.get(name)) {
                sidecars.insert(name.to_string(), text.as_bytes().to_vec());
            }
        }
        let assets = Self {
            source: path.to_path_buf(),
            config,
            tokenizer_json,
            sidecars,
            weight_paths: vec![path.to_path_buf()],
        };
        assets.require_sidecars()?;
        Ok(assets)
    }

    fn require_sidecars(&self) -> Result<(), TextError> {
        let missing: Vec<&str> = REQUIRED_SIDECARS
            .into_iter()
            .filter(|n| !self.sidecars.contains_key(*n))
            .collect();
        if missing.is_empty() {
            return Ok(());
        }
        Err(TextError::Config(format!(
            "Gemma assets from {} are missing {} (embed as {HF_ASSET_TENSOR_PREFIX}<name>)",
            self.source.display(),
            missing.join(", ")
        )))
    }

    /// The config's `model_type` (`gemma3`, `gemma4_unified`, ...).
    pub fn model_type(&self) -> Option<&str> {
        self.config.get("model_type").and_then(|v| v.as_str())
    }

    /// The config's top-level `gemma_version`.
    pub fn gemma_version(&self) -> Option<&str> {
        self.config.get("gemma_version").and_then(|v| v.as_str())
    }

    /// A sidecar parsed as JSON (`None` when absent).
    pub fn sidecar_json(&self, name: &str) -> Result<Option<serde_json::Value>, TextError> {
        self.sidecars
            .get(name)
            .map(|bytes| {
                serde_json::from_slice(bytes).map_err(|e| {
                    TextError::Config(format!("{}: {name}: {e}", self.source.display()))
                })
            })
            .transpose()
    }

    /// The tokenizer as ltx-core 1.2.0 builds it from these assets.
    pub fn tokenizer(&self, max_length: usize) -> Result<GemmaTokenizer, TextError> {
        let config = self.sidecar_json("tokenizer_config.json")?;
        GemmaTokenizer::from_hf_assets(&self.tokenizer_json, config.as_ref(), max_length)
            .map_err(|e| TextError::Tokenizer(format!("{}: {e}", self.source.display())))
    }
}

fn collect_files(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            collect_files(&path, out)?;
        } else {
            out.push(path);
        }
    }
    Ok(())
}

/// The bytes of a byte tensor: uint8 / int8 as stored; wider integers element-wise cast to uint8
/// (numpy `astype(np.uint8)`, what ltx-core does for packs that store the bytes as ints).
fn tensor_bytes(view: &safetensors::tensor::TensorView) -> Result<Vec<u8>, String> {
    use safetensors::Dtype;
    let data = view.data();
    let width = match view.dtype() {
        Dtype::U8 | Dtype::I8 => return Ok(data.to_vec()),
        Dtype::U16 | Dtype::I16 => 2,
        Dtype::U32 | Dtype::I32 => 4,
        Dtype::U64 | Dtype::I64 => 8,
        other => return Err(format!("dtype {other:?} is not a byte tensor")),
    };
    // Little-endian: the low byte of each element comes first.
    Ok(data.chunks_exact(width).map(|c| c[0]).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wide_integer_byte_tensors_keep_their_low_byte() {
        let data: Vec<u8> = [104i32, 105, 300]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        let view =
            safetensors::tensor::TensorView::new(safetensors::Dtype::I32, vec![3], &data).unwrap();
        assert_eq!(tensor_bytes(&view).unwrap(), vec![104, 105, 44]);
    }
}
