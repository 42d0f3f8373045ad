//! Model folders: which files hold the model, found by their official release names and, for
//! files with other names, by their metadata.
//!
//! Two layouts: the single-file checkpoint of LTX-2 / LTX-2.3 (`ltx-2-19b-*`, `ltx-2.3-22b-*`: DiT,
//! connectors, VAEs, vocoder in one file, plus the x2 upscaler and a Gemma-3 folder) and the split
//! layout of LTX-2.5 (one file per component, in the Hugging Face repo's sub-folders:
//! `diffusion_models/`, `text_encoders/`, `vae/`, `latent_upscale_models/`, `model_patches/`).
//! Every split file is recognised by what its header says (its `config` sections, `gemma_config`,
//! key prefixes), and files of another generation than the transformer's are refused, naming
//! the file and why.

use std::path::{Path, PathBuf};

use ltx2_model::generation::{self, Generation, Identity};

use crate::api::{GenError, PipelineKind};

/// The files of a model folder (official release names).
#[derive(Debug, Clone)]
pub struct ModelFiles {
    pub checkpoint: PathBuf,
    pub upsampler: Option<PathBuf>,
    pub gemma: PathBuf,
    /// The official distilled LoRA of the checkpoint's generation
    /// (`ltx-2-19b-distilled-lora-384.safetensors`, `ltx-2.3-22b-distilled-lora-384*.safetensors`):
    /// with a dev checkpoint and the upscaler it selects the dev two-stage recipe.
    pub distilled_lora: Option<PathBuf>,
}

impl ModelFiles {
    /// Finds the checkpoint, the spatial upsampler and the Gemma folder in `dir`.
    ///
    /// Official release names come first: `ltx-2*.safetensors` (LTX-2 `ltx-2-19b-*`, LTX-2.3
    /// `ltx-2.3-22b-*`; the newest generation, then distilled, then non-FP8 preferred) and the
    /// x2 spatial upscaler of the checkpoint's generation (`ltx-2-spatial-upscaler-x2-1.0`,
    /// `ltx-2.3-spatial-upscaler-x2-1.1`; the newest version). LoRAs, the x1.5 and temporal
    /// upscalers are never picked. Files with other names are recognised by their `config`
    /// metadata (a `transformer` section, or `_class_name: LatentUpsampler` with a x2 spatial
    /// config), so a renamed copy or a test set in the same layout loads too. Gemma is a
    /// sub-folder with `tokenizer.json` and `config.json`, else `$LTX2_GEMMA_DIR`.
    pub fn discover(dir: &Path) -> Result<Self, GenError> {
        let bad = |m: String| GenError::InvalidInput {
            field: "model",
            message: m,
        };
        let entries: Vec<PathBuf> = std::fs::read_dir(dir)
            .map_err(|e| bad(format!("cannot read {}: {e}", dir.display())))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .collect();
        let safetensors: Vec<SafetensorsFile> = entries
            .iter()
            .filter(|p| p.is_file() && file_name(p).ends_with(".safetensors"))
            .map(|p| SafetensorsFile::read(p))
            .collect();
        let named = |f: &&SafetensorsFile| {
            f.name.starts_with("ltx-2") && !f.name.contains("upscaler") && !f.name.contains("lora")
        };
        let mut checkpoints: Vec<&SafetensorsFile> = safetensors.iter().filter(named).collect();
        if checkpoints.is_empty() {
            checkpoints = safetensors.iter().filter(|f| f.has_transformer).collect();
        }
        checkpoints.sort_by_key(|f| {
            (
                std::cmp::Reverse(f.generation),
                !f.is_distilled(),
                f.name.contains("fp8"),
                f.name.clone(),
            )
        });
        let chosen = checkpoints.first().ok_or_else(|| {
            bad(format!(
                "no LTX-2 checkpoint in {} (ltx-2*.safetensors, or a safetensors file whose `config` metadata has a `transformer` section)",
                dir.display()
            ))
        })?;
        let checkpoint = chosen.path.clone();
        let generation = chosen.generation;
        // An upscaler is matched to the checkpoint's generation by its name (its metadata has no
        // version); one whose name says nothing is accepted. Newest version first.
        let mut upsamplers: Vec<&SafetensorsFile> = safetensors
            .iter()
            .filter(|f| f.name.contains("spatial-upscaler-x2") || f.is_x2_upsampler)
            .filter(|f| f.name_generation.is_none_or(|g| g == generation))
            .collect();
        upsamplers.sort_by_key(|f| {
            (
                f.name_generation.is_none(),
                !f.name.contains("spatial-upscaler-x2"),
                std::cmp::Reverse(f.name.clone()),
            )
        });
        let upsampler = upsamplers.first().map(|f| f.path.clone());
        // Matched to the checkpoint's generation by name (a LoRA's metadata has no version).
        let mut loras: Vec<&SafetensorsFile> = safetensors
            .iter()
            .filter(|f| f.name.contains("distilled-lora") && f.name_generation == Some(generation))
            .collect();
        loras.sort_by_key(|f| std::cmp::Reverse(f.name.clone()));
        let distilled_lora = loras.first().map(|f| f.path.clone());
        let gemma = entries
            .iter()
            .filter(|p| {
                p.is_dir() && p.join("tokenizer.json").is_file() && p.join("config.json").is_file()
            })
            .min_by_key(|p| (!file_name(p).contains("gemma"), file_name(p)))
            .cloned()
            .or_else(|| std::env::var_os("LTX2_GEMMA_DIR").map(PathBuf::from))
            .ok_or_else(|| {
                bad(format!(
                    "no Gemma folder (with tokenizer.json and config.json) in {}, and LTX2_GEMMA_DIR is not set",
                    dir.display()
                ))
            })?;
        Ok(Self {
            checkpoint,
            upsampler,
            gemma,
            distilled_lora,
        })
    }

    /// Distilled checkpoints (by file name or `model_version` metadata) run the two-stage recipe
    /// (one stage without an upsampler); others are dev checkpoints.
    pub fn pipeline(&self) -> PipelineKind {
        match (
            SafetensorsFile::read(&self.checkpoint).is_distilled(),
            self.upsampler.is_some(),
        ) {
            (true, true) => PipelineKind::DistilledTwoStage,
            (true, false) => PipelineKind::DistilledOneStage,
            (false, true) if self.distilled_lora.is_some() => PipelineKind::DevTwoStage,
            (false, _) => PipelineKind::Dev,
        }
    }

    /// The checkpoint's generation, from its metadata (see [`ltx2_model::generation`]); a file
    /// that contradicts itself (e.g. a 2.3 `model_version` on a 19B config) is an error.
    pub fn identity(&self) -> Result<Identity, GenError> {
        generation::detect_file(&self.checkpoint).map_err(|e| GenError::InvalidInput {
            field: "model",
            message: e.to_string(),
        })
    }
}

fn file_name(p: &Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().to_lowercase())
        .unwrap_or_default()
}

/// What discovery needs to know about a safetensors file: its name and, from the header only,
/// which component its `config` metadata describes and which generation it is.
struct SafetensorsFile {
    path: PathBuf,
    name: String,
    model_version: String,
    has_transformer: bool,
    /// `LatentUpsampler` metadata of a spatial-only x2 upsampler.
    is_x2_upsampler: bool,
    /// From the metadata, then the name (an unreadable or contradictory header counts as 2.0
    /// here; loading reports the real error).
    generation: Generation,
    /// What the file name alone says.
    name_generation: Option<Generation>,
}

impl SafetensorsFile {
    fn read(path: &Path) -> Self {
        // An unreadable header just means "not recognised"; loading reports the real error.
        let metadata = ltx2_model::checkpoint::read_metadata(path).unwrap_or_default();
        let config: Option<serde_json::Value> = metadata
            .get("config")
            .and_then(|c| serde_json::from_str(c).ok());
        let name = file_name(path);
        let upsampler = config
            .as_ref()
            .filter(|c| c.get("_class_name").and_then(|c| c.as_str()) == Some("LatentUpsampler"));
        let is_x2_upsampler = upsampler.is_some_and(|c| {
            let get = |k: &str| c.get(k).cloned();
            get("spatial_scale").and_then(|v| v.as_f64()).unwrap_or(2.0) == 2.0
                && get("temporal_upsample").and_then(|v| v.as_bool()) != Some(true)
                && get("spatial_upsample").and_then(|v| v.as_bool()) != Some(false)
        });
        Self {
            path: path.to_path_buf(),
            model_version: metadata
                .get("model_version")
                .map(|v| v.to_lowercase())
                .unwrap_or_default(),
            has_transformer: config
                .as_ref()
                .is_some_and(|c| c.get("transformer").is_some()),
            is_x2_upsampler,
            generation: generation::detect(&metadata, &name)
                .map(|i| i.generation)
                .unwrap_or(Generation::Ltx2),
            name_generation: Generation::from_file_name(&name),
            name,
        }
    }

    fn is_distilled(&self) -> bool {
        self.name.contains("distilled") || self.model_version.contains("distilled")
    }
}

/// The component files of an LTX-2.5 model (the split layout).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SplitModelFiles {
    /// `diffusion_models/ltx-2.5-22b-{distilled,dev}-transformer-bf16.safetensors`: the DiT and
    /// both text connectors (`model.diffusion_model.*`).
    pub transformer: PathBuf,
    /// `text_encoders/gemma4-12b-with-proj-ltx-2.5-bf16.safetensors`: Gemma-4, the feature
    /// projections and the tokenizer (`gemma_config` metadata).
    pub text_encoder: PathBuf,
    /// `vae/ltx-2.5-video-vae-bf16.safetensors` (diffusion decoder) or
    /// `vae/ltx-2.5-video-vae-conv-bf16.safetensors` (conv decoder).
    pub video_vae: PathBuf,
    /// `vae/ltx-2.5-audio-vae-bf16.safetensors`: audio VAE and vocoder.
    pub audio_vae: PathBuf,
    /// `latent_upscale_models/ltx-2.5-latent-spatial-upscaler-x2-bf16-1.0.safetensors`.
    pub upsampler: Option<PathBuf>,
    /// `model_patches/ltx-2.5-duration-head-bf16.safetensors`.
    pub duration_head: Option<PathBuf>,
    pub generation: Generation,
}

/// A model folder in one of the two layouts.
#[derive(Debug, Clone)]
pub enum ModelFolder {
    Single(ModelFiles),
    Split(SplitModelFiles),
}

impl ModelFolder {
    /// Finds the model in `dir`: a split LTX-2.5 transformer file (in `dir` or its official
    /// sub-folders) makes it a split model, else the single-file discovery of [`ModelFiles`].
    pub fn discover(dir: &Path) -> Result<Self, GenError> {
        let files = split_candidates(dir)?;
        if files.iter().any(|f| f.role == Role::Transformer) {
            return SplitModelFiles::from_files(dir, &files).map(Self::Split);
        }
        ModelFiles::discover(dir).map(Self::Single)
    }

    pub fn pipeline(&self) -> PipelineKind {
        match self {
            Self::Single(f) => f.pipeline(),
            Self::Split(f) => f.pipeline(),
        }
    }
}

/// Which component a split file is, by its header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Transformer,
    TextEncoder,
    VideoVae,
    AudioVae,
    Upsampler,
    DurationHead,
    /// A single-file checkpoint (DiT + VAEs in one file): LTX-2 / LTX-2.3.
    Monolithic,
    Other,
}

struct SplitFile {
    path: PathBuf,
    name: String,
    role: Role,
    /// From `model_version` / `gemma_source_checkpoint` / the config flags; `None` when the
    /// file says nothing about its generation (e.g. an upscaler, whose metadata has no version).
    generation: Option<Generation>,
    model_version: Option<String>,
    distilled: bool,
    /// Diffusion (`CausalDiffusionVAE`) rather than conv video decoder.
    diffusion_decoder: bool,
}

/// The official sub-folders of the Hugging Face repo, searched besides `dir` itself.
const SPLIT_SUBFOLDERS: [&str; 5] = [
    "diffusion_models",
    "text_encoders",
    "vae",
    "latent_upscale_models",
    "model_patches",
];

fn split_candidates(dir: &Path) -> Result<Vec<SplitFile>, GenError> {
    let bad = |m: String| GenError::InvalidInput {
        field: "model",
        message: m,
    };
    let mut paths = Vec::new();
    for d in std::iter::once(dir.to_path_buf()).chain(SPLIT_SUBFOLDERS.iter().map(|s| dir.join(s)))
    {
        if !d.is_dir() {
            continue;
        }
        let entries =
            std::fs::read_dir(&d).map_err(|e| bad(format!("cannot read {}: {e}", d.display())))?;
        for e in entries.filter_map(|e| e.ok()) {
            let p = e.path();
            if p.is_file() && file_name(&p).ends_with(".safetensors") {
                paths.push(p);
            }
        }
    }
    paths.sort();
    Ok(paths.iter().map(|p| SplitFile::read(p)).collect())
}

impl SplitFile {
    fn read(path: &Path) -> Self {
        let name = file_name(path);
        // An unreadable header is "not recognised"; loading reports the real error.
        let header = read_header(path).unwrap_or_default();
        let metadata = &header.metadata;
        let config: Option<serde_json::Value> = metadata
            .get("config")
            .and_then(|c| serde_json::from_str(c).ok());
        let section = |k: &str| config.as_ref().is_some_and(|c| c.get(k).is_some());
        let has_prefix = |p: &str| header.keys.iter().any(|k| k.starts_with(p));
        let role = if metadata.contains_key("gemma_config") {
            Role::TextEncoder
        } else if section("duration_head") {
            Role::DurationHead
        } else if section("transformer") && section("vae") {
            Role::Monolithic
        } else if section("transformer") && has_prefix("model.diffusion_model.") {
            Role::Transformer
        } else if section("vae") {
            Role::VideoVae
        } else if section("audio_vae") {
            Role::AudioVae
        } else if config
            .as_ref()
            .and_then(|c| c.get("_class_name"))
            .and_then(|c| c.as_str())
            == Some("LatentUpsampler")
        {
            let c = config.as_ref().expect("checked above");
            let spatial_x2 = c
                .get("spatial_scale")
                .and_then(|v| v.as_f64())
                .unwrap_or(2.0)
                == 2.0
                && c.get("temporal_upsample").and_then(|v| v.as_bool()) != Some(true)
                && c.get("spatial_upsample").and_then(|v| v.as_bool()) != Some(false);
            if spatial_x2 {
                Role::Upsampler
            } else {
                Role::Other
            }
        } else {
            Role::Other
        };
        let model_version = metadata.get("model_version").cloned();
        let generation = if metadata.contains_key("gemma_source_checkpoint") {
            // Only LTX-2.5 (gemma4) checkpoints declare their Gemma source.
            model_version
                .as_deref()
                .and_then(Generation::from_model_version)
                .or(Some(Generation::Ltx25))
        } else if role == Role::Monolithic || role == Role::Transformer {
            generation::detect(metadata, &name)
                .ok()
                .map(|i| i.generation)
        } else {
            model_version
                .as_deref()
                .and_then(Generation::from_model_version)
                .or_else(|| Generation::from_file_name(&name))
        };
        let diffusion_decoder = config
            .as_ref()
            .and_then(|c| c.get("vae"))
            .and_then(|v| v.get("_class_name"))
            .and_then(|v| v.as_str())
            .is_some_and(|c| c.contains("Diffusion"));
        Self {
            path: path.to_path_buf(),
            distilled: name.contains("distilled")
                || model_version
                    .as_deref()
                    .is_some_and(|v| v.to_lowercase().contains("distilled")),
            name,
            role,
            generation,
            model_version,
            diffusion_decoder,
        }
    }
}

#[derive(Default)]
struct Header {
    metadata: std::collections::HashMap<String, String>,
    keys: Vec<String>,
}

/// The metadata and tensor names of a safetensors file, reading only its header.
fn read_header(path: &Path) -> Option<Header> {
    let ckpt = ltx2_model::checkpoint::Checkpoint::open(path).ok()?;
    Some(Header {
        metadata: ckpt.metadata().clone(),
        keys: ckpt.tensors().keys().cloned().collect(),
    })
}

impl SplitModelFiles {
    fn from_files(dir: &Path, files: &[SplitFile]) -> Result<Self, GenError> {
        let bad = |m: String| GenError::InvalidInput {
            field: "model",
            message: m,
        };
        let of = |role: Role| files.iter().filter(move |f| f.role == role);
        // Distilled first (the two-stage recipe), as with the single-file checkpoints.
        let transformer = of(Role::Transformer)
            .min_by_key(|f| (!f.distilled, f.name.clone()))
            .expect("the caller saw a transformer file");
        let generation = transformer.generation.unwrap_or(Generation::Ltx25);
        // Every component must be of the transformer's generation when its file says which.
        let mismatch = |f: &SplitFile, what: &str| -> Option<String> {
            match f.generation {
                Some(g) if g != generation => Some(format!(
                    "{} is an {} {what} ({}), but the transformer {} is {}",
                    f.path.display(),
                    g.display_name(),
                    f.model_version
                        .as_deref()
                        .map(|v| format!("model_version {v:?}"))
                        .unwrap_or_else(|| "by its name".into()),
                    transformer.path.display(),
                    generation.display_name()
                )),
                _ => None,
            }
        };
        let pick = |role: Role,
                    what: &str,
                    expected: &str,
                    prefer: &dyn Fn(&SplitFile) -> bool|
         -> Result<Option<PathBuf>, GenError> {
            let mut candidates: Vec<&SplitFile> = of(role).collect();
            if candidates.is_empty() {
                return Ok(None);
            }
            // A file of the transformer's generation (or one that does not say) wins; a folder
            // that only has another generation's component is refused, naming it.
            let matching: Vec<&SplitFile> = candidates
                .iter()
                .copied()
                .filter(|f| mismatch(f, what).is_none())
                .collect();
            if matching.is_empty() {
                let reason = mismatch(candidates[0], what).unwrap_or_default();
                return Err(bad(format!(
                    "{reason}; put the {what} of the same release beside it ({expected})"
                )));
            }
            candidates = matching;
            candidates.sort_by_key(|f| (!prefer(f), f.name.clone()));
            Ok(Some(candidates[0].path.clone()))
        };
        let required = |p: Option<PathBuf>, what: &str, expected: &str| {
            p.ok_or_else(|| {
                bad(format!(
                    "{} has the {} transformer {} but no {what} file ({expected})",
                    dir.display(),
                    generation.display_name(),
                    transformer.path.display()
                ))
            })
        };
        // A single-file checkpoint beside a split transformer is another model: say so.
        if let Some(m) = of(Role::Monolithic).next() {
            if let Some(reason) = mismatch(m, "single-file checkpoint") {
                tracing::warn!("{reason}; it is ignored (the split files are used)");
            }
        }
        let use_conv = std::env::var("LTX2_VIDEO_DECODER").is_ok_and(|v| v == "conv");
        let text_encoder = required(
            pick(
                Role::TextEncoder,
                "text encoder",
                TEXT_ENCODER_FILE,
                &|_| true,
            )?,
            "text encoder",
            TEXT_ENCODER_FILE,
        )?;
        let video_vae = required(
            pick(Role::VideoVae, "video VAE", VIDEO_VAE_FILE, &|f| {
                f.diffusion_decoder != use_conv
            })?,
            "video VAE",
            VIDEO_VAE_FILE,
        )?;
        let audio_vae = required(
            pick(Role::AudioVae, "audio VAE", AUDIO_VAE_FILE, &|_| true)?,
            "audio VAE",
            AUDIO_VAE_FILE,
        )?;
        let upsampler = pick(Role::Upsampler, "spatial upscaler", UPSAMPLER_FILE, &|f| {
            f.name.contains("spatial-upscaler-x2")
        })?;
        let duration_head = pick(
            Role::DurationHead,
            "duration head",
            DURATION_HEAD_FILE,
            &|_| true,
        )?;
        Ok(Self {
            transformer: transformer.path.clone(),
            text_encoder,
            video_vae,
            audio_vae,
            upsampler,
            duration_head,
            generation,
        })
    }

    /// Distilled transformers run the two-stage recipe (one stage without an upscaler); others
    /// are dev models.
    pub fn pipeline(&self) -> PipelineKind {
        let distilled = SplitFile::read(&self.transformer).distilled;
        match (distilled, self.upsampler.is_some()) {
            (true, true) => PipelineKind::DistilledTwoStage,
            (true, false) => PipelineKind::DistilledOneStage,
            (false, _) => PipelineKind::Dev,
        }
    }
}

/// The official LTX-2.5 file names (Lightricks/LTX-2 README at v1.2.0, "LTX-2.5 models").
pub const TRANSFORMER_FILE: &str =
    "diffusion_models/ltx-2.5-22b-distilled-transformer-bf16.safetensors";
pub const TEXT_ENCODER_FILE: &str = "text_encoders/gemma4-12b-with-proj-ltx-2.5-bf16.safetensors";
pub const VIDEO_VAE_FILE: &str = "vae/ltx-2.5-video-vae-bf16.safetensors";
pub const VIDEO_VAE_CONV_FILE: &str = "vae/ltx-2.5-video-vae-conv-bf16.safetensors";
pub const AUDIO_VAE_FILE: &str = "vae/ltx-2.5-audio-vae-bf16.safetensors";
pub const UPSAMPLER_FILE: &str =
    "latent_upscale_models/ltx-2.5-latent-spatial-upscaler-x2-bf16-1.0.safetensors";
pub const DURATION_HEAD_FILE: &str = "model_patches/ltx-2.5-duration-head-bf16.safetensors";
