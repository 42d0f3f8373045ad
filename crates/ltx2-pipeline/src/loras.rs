//! Per-request LoRA sets from the server's LoRA folder (`--lora-dir`).
//!
//! Names resolve inside the folder only (a plain file name, with or without `.safetensors`; no
//! path, no `..`, no hidden file, no link out of the folder). The engine keeps the base
//! transformer resident and, when a request's set differs from the one applied, puts the base
//! layers back and fuses the new set into the layers it adapts
//! ([`ltx2_model::lora::apply_in_place`]): only those layers are read from the memory-mapped
//! checkpoint and rebuilt, never the whole model. Parsed LoRA files are cached by path.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use candle_core::{DType, Device};
use ltx2_model::checkpoint::Checkpoint;
use ltx2_model::lora::{self, AppliedLoras, LoraFile, LoraStack, LoraSummary};
use ltx2_model::quantization::Quantization;
use serde::Serialize;

use crate::api::{GenError, LoraChoice};
use crate::denoise::VelocityModel;

/// Most LoRAs one request may stack.
pub const MAX_LORAS: usize = 8;
/// Strengths outside this range are refused (ltx-pipelines takes any float; beyond it the model
/// only produces noise).
pub const MAX_ABS_STRENGTH: f32 = 10.0;
/// Parsed LoRA files kept in memory between requests.
const FILE_CACHE: usize = 16;

/// The `--lora-dir` folder.
#[derive(Debug, Clone)]
pub struct LoraCatalog {
    dir: PathBuf,
}

/// One entry of `GET /loras`.
#[derive(Debug, Clone, Serialize)]
pub struct LoraListing {
    /// What a request names it by (the file name without `.safetensors`).
    pub name: String,
    #[serde(flatten)]
    pub summary: Option<LoraSummary>,
    /// Whether it fits the loaded transformer (every module it adapts exists with its shape).
    pub fits_loaded_model: bool,
    /// Generations whose layout it targets: LTX-2.3 / 2.5 only when it adapts modules only they
    /// have (`to_gate_logits`, the prompt AdaLN), else any.
    pub generations: &'static str,
    /// Why it cannot be used, when it cannot.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl LoraCatalog {
    pub fn new(dir: &Path) -> Result<Self, GenError> {
        let dir = dir.canonicalize().map_err(|e| GenError::InvalidInput {
            field: "lora_dir",
            message: format!("{}: {e}", dir.display()),
        })?;
        if !dir.is_dir() {
            return Err(GenError::InvalidInput {
                field: "lora_dir",
                message: format!("{} is not a folder", dir.display()),
            });
        }
        Ok(Self { dir })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The file a request's `name` means, or why it means none (for a 422 on `loras`).
    pub fn resolve(&self, name: &str) -> Result<PathBuf, String> {
        let plain = !name.is_empty()
            && name.len() <= 200
            && !name.starts_with('.')
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '+'));
        if !plain || name.contains("..") {
            return Err(format!(
                "name {name:?} must be a plain file name in the LoRA folder (letters, digits, . _ - +; no path)"
            ));
        }
        let file = if name.ends_with(".safetensors") {
            name.to_string()
        } else {
            format!("{name}.safetensors")
        };
        let path = self.dir.join(file);
        let real = path
            .canonicalize()
            .map_err(|_| format!("no LoRA named {name:?} (GET /loras lists them)"))?;
        if !real.starts_with(&self.dir) || !real.is_file() {
            return Err(format!("no LoRA named {name:?} (GET /loras lists them)"));
        }
        Ok(real)
    }

    /// Checks a request's set: at most [`MAX_LORAS`], each name resolvable, strengths finite
    /// and within ±[`MAX_ABS_STRENGTH`], no name twice. The message names the entry.
    pub fn check(&self, choices: &[LoraChoice]) -> Result<(), String> {
        if choices.len() > MAX_LORAS {
            return Err(format!(
                "at most {MAX_LORAS} LoRAs per request, got {}",
                choices.len()
            ));
        }
        let mut seen = std::collections::HashSet::new();
        for (i, c) in choices.iter().enumerate() {
            let path = self.resolve(&c.name).map_err(|m| format!("[{i}]: {m}"))?;
            if !c.strength.is_finite() || c.strength.abs() > MAX_ABS_STRENGTH {
                return Err(format!(
                    "[{i}].strength must be a number in [-{MAX_ABS_STRENGTH}, {MAX_ABS_STRENGTH}], got {}",
                    c.strength
                ));
            }
            if !seen.insert(path) {
                return Err(format!("[{i}]: {:?} is already in the set", c.name));
            }
        }
        Ok(())
    }

    /// Every `.safetensors` file of the folder, read from its header (nothing is loaded), and
    /// whether it fits `transformer` (the loaded model's transformer file).
    pub fn list(&self, transformer: Option<&Path>) -> Vec<LoraListing> {
        let ckpt = transformer.and_then(|p| Checkpoint::open(p).ok());
        let mut names: Vec<String> = std::fs::read_dir(&self.dir)
            .map(|d| {
                d.filter_map(|e| e.ok())
                    .filter_map(|e| e.file_name().into_string().ok())
                    .filter(|n| n.ends_with(".safetensors") && !n.starts_with('.'))
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        names
            .into_iter()
            .map(|file| {
                let name = file.trim_end_matches(".safetensors").to_string();
                match LoraSummary::read(&self.dir.join(&file), &name) {
                    Ok(s) => {
                        let fit = ckpt.as_ref().map(|c| s.fits(c));
                        let generations = if s.targets.iter().any(|t| {
                            t.ends_with("to_gate_logits") || t.contains("prompt_adaln_single")
                        }) {
                            "LTX-2.3, LTX-2.5"
                        } else {
                            "any"
                        };
                        LoraListing {
                            name,
                            fits_loaded_model: matches!(fit, Some(Ok(()))),
                            error: fit.and_then(|f| f.err()).map(|e| e.to_string()),
                            summary: Some(s),
                            generations,
                        }
                    }
                    Err(e) => LoraListing {
                        name,
                        summary: None,
                        fits_loaded_model: false,
                        generations: "unknown",
                        error: Some(e.to_string()),
                    },
                }
            })
            .collect()
    }
}

/// What the engine needs to switch LoRA sets on its transformer.
pub struct LoraState {
    catalog: Option<LoraCatalog>,
    /// The transformer's checkpoint (the fused layers are re-read from it).
    checkpoint: PathBuf,
    /// The generation's official distilled LoRA in the model folder (dev two-stage recipe).
    distilled: Option<PathBuf>,
    quantization: Quantization,
    dtype: DType,
    device: Device,
    files: HashMap<PathBuf, Arc<LoraFile>>,
    /// The applied set, by resolved file and strength.
    current: Vec<(PathBuf, f32)>,
    applied: AppliedLoras,
    /// Fused layers of recently used sets, most recent last, within `cache_budget` bytes.
    cache: Vec<CachedSet>,
    cache_budget: u64,
    /// What the last switch did, for the request's notes.
    last_switch: Option<String>,
}

struct CachedSet {
    key: Vec<(PathBuf, f32)>,
    layers: Vec<(String, ltx2_model::linear::Linear)>,
    bytes: u64,
}

/// ltx-pipelines' default strength of the distilled LoRA (`DEFAULT_LORA_STRENGTH`).
pub const DISTILLED_LORA_STRENGTH: f32 = 1.0;

impl LoraState {
    pub fn new(
        catalog: Option<LoraCatalog>,
        checkpoint: PathBuf,
        distilled: Option<PathBuf>,
        quantization: Quantization,
        dtype: DType,
        device: Device,
    ) -> Self {
        Self {
            catalog,
            checkpoint,
            distilled,
            quantization,
            dtype,
            device,
            files: HashMap::new(),
            current: Vec::new(),
            applied: AppliedLoras::default(),
            cache: Vec::new(),
            cache_budget: 0,
            last_switch: None,
        }
    }

    /// Keeps the fused layers of recently used sets up to `bytes` (`--lora-cache-mb`): switching
    /// back to one of them swaps its layers in without reading or fusing anything.
    pub fn with_cache_budget(mut self, bytes: u64) -> Self {
        self.cache_budget = bytes;
        self
    }

    /// What the last switch did (`None`: the set was already applied).
    pub fn take_last_switch(&mut self) -> Option<String> {
        self.last_switch.take()
    }

    pub fn checkpoint(&self) -> &Path {
        &self.checkpoint
    }

    pub fn catalog(&self) -> Option<&LoraCatalog> {
        self.catalog.as_ref()
    }

    pub fn distilled_lora(&self) -> Option<&Path> {
        self.distilled.as_deref()
    }

    fn resolve(&self, wanted: &[LoraChoice]) -> Result<Vec<(PathBuf, f32)>, GenError> {
        if wanted.is_empty() {
            return Ok(vec![]);
        }
        let catalog = self.catalog.as_ref().ok_or_else(|| {
            invalid("the server has no LoRA folder (start it with --lora-dir)".into())
        })?;
        catalog.check(wanted).map_err(invalid)?;
        wanted
            .iter()
            .map(|c| Ok((catalog.resolve(&c.name).map_err(invalid)?, c.strength)))
            .collect()
    }

    /// Makes `model` carry exactly the request's set (a no-op when it already does). On an
    /// error the model is back at its base weights.
    pub fn switch(
        &mut self,
        model: &mut dyn VelocityModel,
        wanted: &[LoraChoice],
    ) -> Result<(), GenError> {
        let entries = self.resolve(wanted);
        self.apply(model, entries)
    }

    /// ltx-pipelines `ICLoraPipeline.__init__`: the `reference_downscale_factor` of the set (from
    /// each file's metadata; 1 when none says otherwise). Two LoRAs asking for different factors
    /// cannot be combined; `Ok(None)` when no LoRA of the set carries the key (no IC-LoRA).
    pub fn reference_downscale_factor(
        &self,
        wanted: &[LoraChoice],
    ) -> Result<Option<usize>, GenError> {
        let key = crate::pipelines::ic_lora::REFERENCE_DOWNSCALE_FACTOR_KEY;
        let mut found: Option<(usize, String)> = None;
        for (i, (path, _)) in self.resolve(wanted)?.iter().enumerate() {
            let summary = ltx2_model::lora::LoraSummary::read(path, &wanted[i].name)
                .map_err(|e| invalid(e.to_string()))?;
            let Some(raw) = summary.metadata.get(key) else {
                continue;
            };
            let factor = raw
                .trim()
                .parse::<usize>()
                .ok()
                .filter(|f| (1..=16).contains(f))
                .ok_or_else(|| {
                    invalid(format!(
                        "[{i}] {:?}: {key} {raw:?} is not a whole number in 1..=16",
                        wanted[i].name
                    ))
                })?;
            match &found {
                Some((f, other)) if *f != factor && *f != 1 && factor != 1 => {
                    return Err(invalid(format!(
                        "[{i}] {:?} has {key} {factor} but {other:?} has {f}: LoRAs with different reference scales cannot be combined",
                        wanted[i].name
                    )))
                }
                Some((f, _)) if *f != 1 => {}
                _ => found = Some((factor, wanted[i].name.clone())),
            }
        }
        Ok(found.map(|(f, _)| f))
    }

    /// The request's set plus the distilled LoRA on top, for stage 2 of the dev two-stage
    /// recipe.
    pub fn switch_with_distilled(
        &mut self,
        model: &mut dyn VelocityModel,
        wanted: &[LoraChoice],
    ) -> Result<(), GenError> {
        let distilled = self
            .distilled
            .clone()
            .ok_or_else(|| GenError::Model("no distilled LoRA in the model folder".into()))?;
        let entries = self.resolve(wanted).map(|mut e| {
            e.push((distilled, DISTILLED_LORA_STRENGTH));
            e
        });
        self.apply(model, entries)
    }

    fn apply(
        &mut self,
        model: &mut dyn VelocityModel,
        entries: Result<Vec<(PathBuf, f32)>, GenError>,
    ) -> Result<(), GenError> {
        if let Ok(e) = &entries {
            if *e == self.current {
                return Ok(());
            }
        }
        let Some(ltx) = model.ltx_model_mut() else {
            return Err(invalid("this model cannot take LoRAs".into()));
        };
        std::mem::take(&mut self.applied).restore(ltx);
        self.current.clear();
        let entries = entries?;
        if entries.is_empty() {
            return Ok(());
        }
        let started = std::time::Instant::now();
        if let Some(i) = self.cache.iter().position(|c| c.key == entries) {
            let hit = self.cache.remove(i);
            self.applied = lora::swap_in(ltx, &hit.layers);
            self.last_switch = Some(format!(
                "loras: {} fused layers reused from the cache",
                hit.layers.len()
            ));
            self.cache.push(hit);
            self.current = entries;
            return Ok(());
        }
        let mut stack = LoraStack::default();
        for (path, strength) in &entries {
            if !self.files.contains_key(path) {
                if self.files.len() >= FILE_CACHE {
                    self.files.clear();
                }
                let name = path
                    .file_stem()
                    .map(|s| s.to_string_lossy().into_owned())
                    .unwrap_or_default();
                let file = LoraFile::open(path, &name).map_err(|e| invalid(e.to_string()))?;
                self.files.insert(path.clone(), Arc::new(file));
            }
            stack.entries.push((self.files[path].clone(), *strength));
        }
        self.applied = lora::apply_in_place(
            ltx,
            &self.checkpoint,
            &stack,
            self.quantization,
            self.dtype,
            &self.device,
        )
        .map_err(|e| invalid(e.to_string()))?;
        tracing::info!(
            loras = ?entries,
            layers = self.applied.layers(),
            seconds = started.elapsed().as_secs_f64(),
            "LoRA set applied"
        );
        self.last_switch = Some(format!(
            "loras: {} layers fused in {:.2} s",
            self.applied.layers(),
            started.elapsed().as_secs_f64()
        ));
        if self.cache_budget > 0 {
            let layers = self.applied.fused_layers(ltx);
            let bytes: u64 = layers.iter().map(|(_, l)| l.resident_bytes()).sum();
            if bytes <= self.cache_budget {
                self.cache.push(CachedSet {
                    key: entries.clone(),
                    layers,
                    bytes,
                });
                while self.cache.iter().map(|c| c.bytes).sum::<u64>() > self.cache_budget {
                    self.cache.remove(0);
                }
            }
        }
        self.current = entries;
        Ok(())
    }
}

fn invalid(message: String) -> GenError {
    GenError::InvalidInput {
        field: "loras",
        message,
    }
}
