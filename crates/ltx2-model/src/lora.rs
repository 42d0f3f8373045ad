//! LoRA files in the official layout, fused into the transformer's weights exactly as ltx-core
//! 1.0.0 does (`loader/fuse_loras.py`, with ltx-pipelines' `LTXV_LORA_COMFY_RENAMING_MAP`).
//!
//! A file holds `diffusion_model.<module>.lora_A.weight` `(rank, in)` and `.lora_B.weight`
//! `(out, rank)` per adapted module; `<module>` is the transformer's own path
//! (`transformer_blocks.0.attn1.to_q`, `proj_out`, 2.3's `...to_gate_logits`,
//! `prompt_adaln_single.linear`), i.e. checkpoint key `model.diffusion_model.<module>.weight`.
//! `.alpha` entries are ignored, as ltx-core ignores them (no alpha / rank scaling).
//!
//! Fusion numerics (all reproduced because the golden tolerances are of their size):
//! * per LoRA `delta_i = (B_i · s_i) @ A_i` in the LoRA file's dtype (a bf16 file rounds `B · s`
//!   and the product to bf16), cast to the deltas dtype, summed over the stack in stack order;
//! * bf16 base weight: deltas in the target dtype (the builder's), `W' = delta + W`;
//! * bf16 weight inside an FP8 checkpoint: ltx-core keeps it bf16, `W' = bf16(delta_bf16 + W)`;
//! * scaled-FP8 weight: `w' = f32(W)·weight_scale + f32(delta_bf16)`, re-quantized per tensor
//!   ([`crate::fp8::quantize_per_tensor`]); `input_scale` unchanged.
//!
//! LoRAs reach the transformer only: ltx-core builds the text connectors (same checkpoint prefix)
//! without them, so a LoRA naming a connector module is refused here rather than ignored.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use candle_core::safetensors::MmapedSafetensors;
use candle_core::{DType, Device, Result, Shape, Tensor};
use candle_nn::var_builder::SimpleBackend;
use candle_nn::VarBuilder;

use crate::fp8;

/// Checkpoint prefix of the transformer's modules.
pub const TRANSFORMER_PREFIX: &str = "model.diffusion_model.";

/// What a LoRA file or stack cannot be applied for; names the file and the keys.
#[derive(Debug, thiserror::Error)]
pub enum LoraError {
    #[error("LoRA {file}: {message}")]
    File { file: String, message: String },
    #[error("LoRA {file} matches no weight of the loaded model: {keys}")]
    NoMatch { file: String, keys: String },
    #[error("LoRA {file} does not fit the loaded model: {details}")]
    Shapes { file: String, details: String },
}

/// One adapted module: `lora_A` `(rank, in)`, `lora_B` `(out, rank)`, in the file's dtype.
#[derive(Debug, Clone)]
pub struct LoraPair {
    pub a: Tensor,
    pub b: Tensor,
}

/// A LoRA file, read once (on the CPU, in its own dtype).
#[derive(Debug)]
pub struct LoraFile {
    pub name: String,
    pub path: PathBuf,
    /// Largest rank over its modules.
    pub rank: usize,
    pub dtype: DType,
    /// Transformer module path → its pair.
    pub modules: BTreeMap<String, LoraPair>,
    pub metadata: HashMap<String, String>,
}

fn file_err(path: &Path, message: impl Into<String>) -> LoraError {
    LoraError::File {
        file: path.display().to_string(),
        message: message.into(),
    }
}

impl LoraFile {
    /// Reads `path` (any name; `name` is how requests and logs call it).
    pub fn open(path: &Path, name: &str) -> std::result::Result<Self, LoraError> {
        let metadata =
            crate::checkpoint::read_metadata(path).map_err(|e| file_err(path, e.to_string()))?;
        // SAFETY: read-only map of a file nobody modifies while it is read.
        let st =
            unsafe { MmapedSafetensors::new(path) }.map_err(|e| file_err(path, e.to_string()))?;
        let mut halves: BTreeMap<String, (Option<Tensor>, Option<Tensor>)> = BTreeMap::new();
        let mut unknown = Vec::new();
        for (key, _) in st.tensors() {
            // LTXV_LORA_COMFY_RENAMING_MAP: "diffusion_model." removed wherever it appears.
            let k = key.replacen("diffusion_model.", "", 1);
            if let Some(m) = k.strip_suffix(".lora_A.weight") {
                halves.entry(m.to_string()).or_default().0 = Some(load(&st, &key, path)?);
            } else if let Some(m) = k.strip_suffix(".lora_B.weight") {
                halves.entry(m.to_string()).or_default().1 = Some(load(&st, &key, path)?);
            } else if !k.ends_with(".alpha") {
                unknown.push(key);
            }
        }
        if !unknown.is_empty() {
            unknown.sort();
            return Err(file_err(
                path,
                format!(
                    "keys that are neither lora_A / lora_B weights nor alpha: {}",
                    list(&unknown)
                ),
            ));
        }
        let mut modules = BTreeMap::new();
        let (mut rank, mut dtype) = (0, None);
        for (module, (a, b)) in halves {
            let (Some(a), Some(b)) = (a, b) else {
                return Err(file_err(
                    path,
                    format!("{module} has only one of lora_A / lora_B"),
                ));
            };
            let (ra, _) = a
                .dims2()
                .map_err(|_| file_err(path, format!("{module}.lora_A is not 2-D")))?;
            let (_, rb) = b
                .dims2()
                .map_err(|_| file_err(path, format!("{module}.lora_B is not 2-D")))?;
            if ra != rb || a.dtype() != b.dtype() {
                return Err(file_err(
                    path,
                    format!(
                        "{module}: lora_A {:?} {:?} and lora_B {:?} {:?} do not pair (rank, dtype)",
                        a.dims(),
                        a.dtype(),
                        b.dims(),
                        b.dtype()
                    ),
                ));
            }
            if !matches!(a.dtype(), DType::BF16 | DType::F16 | DType::F32) {
                return Err(file_err(
                    path,
                    format!("{module}: unsupported LoRA dtype {:?}", a.dtype()),
                ));
            }
            if *dtype.get_or_insert(a.dtype()) != a.dtype() {
                return Err(file_err(path, "mixes dtypes across modules"));
            }
            rank = rank.max(ra);
            modules.insert(module, LoraPair { a, b });
        }
        if modules.is_empty() {
            return Err(file_err(path, "holds no lora_A / lora_B pairs"));
        }
        Ok(Self {
            name: name.to_string(),
            path: path.to_path_buf(),
            rank,
            dtype: dtype.unwrap_or(DType::F32),
            modules,
            metadata,
        })
    }

    /// `delta = (B · strength) @ A` computed as ltx-core does, in the file's dtype, returned in
    /// f32 (exact for every LoRA dtype).
    pub fn delta(&self, module: &str, strength: f32) -> Result<Option<Tensor>> {
        let Some(p) = self.modules.get(module) else {
            return Ok(None);
        };
        let s = Tensor::new(strength, &Device::Cpu)?;
        let b = p.b.to_dtype(DType::F32)?.broadcast_mul(&s)?;
        let b = round_to(&b, self.dtype)?;
        let prod = b.matmul(&p.a.to_dtype(DType::F32)?)?;
        Ok(Some(round_to(&prod, self.dtype)?))
    }

    /// The modules' kinds (`attn1.to_q`, `ff.net.0.proj`, ...) for listings.
    pub fn targets(&self) -> BTreeSet<String> {
        self.modules.keys().map(|m| module_kind(m)).collect()
    }
}

fn load(st: &MmapedSafetensors, key: &str, path: &Path) -> std::result::Result<Tensor, LoraError> {
    st.load(key, &Device::Cpu)
        .map_err(|e| file_err(path, format!("{key}: {e}")))
}

fn list(keys: &[String]) -> String {
    const SHOWN: usize = 8;
    let mut s = keys
        .iter()
        .take(SHOWN)
        .cloned()
        .collect::<Vec<_>>()
        .join(", ");
    if keys.len() > SHOWN {
        s.push_str(&format!(" and {} more", keys.len() - SHOWN));
    }
    s
}

/// `t` (f32) rounded to `dtype`'s precision, kept in f32.
fn round_to(t: &Tensor, dtype: DType) -> Result<Tensor> {
    match dtype {
        DType::F32 => Ok(t.clone()),
        d => t.to_dtype(d)?.to_dtype(DType::F32),
    }
}

/// Whether a LoRA's modules `(module, rank, out, in)` fit a transformer whose checkpoint keys have
/// the shapes `shape_of` gives: a LoRA that matches no weight, names a module the model does not
/// have (or a text connector, which ltx-core never adapts), or whose `out x in` differs from the
/// weight is refused, naming them.
pub fn fit(
    file: &str,
    modules: &[(String, usize, usize, usize)],
    shape_of: &dyn Fn(&str) -> Option<Vec<usize>>,
) -> std::result::Result<(), LoraError> {
    let mut missing = Vec::new();
    let mut wrong = Vec::new();
    for (module, rank, out, inp) in modules {
        let key = format!("{TRANSFORMER_PREFIX}{module}.weight");
        let Some(shape) = shape_of(&key) else {
            missing.push(module.clone());
            continue;
        };
        if module.starts_with("video_embeddings_connector.")
            || module.starts_with("audio_embeddings_connector.")
        {
            missing.push(format!(
                "{module} (text connector: ltx-core applies no LoRA there)"
            ));
            continue;
        }
        if shape != [*out, *inp] {
            wrong.push(format!(
                "{module}: LoRA makes {out}x{inp} (rank {rank}), the weight is {shape:?}"
            ));
        }
    }
    if missing.len() == modules.len() {
        return Err(LoraError::NoMatch {
            file: file.to_string(),
            keys: list(&missing),
        });
    }
    wrong.extend(missing.into_iter().map(|m| format!("{m}: no such weight")));
    if !wrong.is_empty() {
        return Err(LoraError::Shapes {
            file: file.to_string(),
            details: list(&wrong),
        });
    }
    Ok(())
}

/// A tensor's shape as the header gives it.
type Shape2 = Vec<usize>;

/// What a LoRA file holds, from its header only (nothing is read): for listings and checks
/// before a request is queued.
#[derive(Debug, Clone, serde::Serialize)]
pub struct LoraSummary {
    pub name: String,
    /// Largest rank over its modules.
    pub rank: usize,
    pub dtype: String,
    /// Adapted modules `(module, rank, out, in)`.
    #[serde(skip)]
    pub modules: Vec<(String, usize, usize, usize)>,
    /// Distinct module kinds (`attn1.to_q`, `ff.net.0.proj`, `proj_out`, ...).
    pub targets: BTreeSet<String>,
    /// `safetensors` metadata (e.g. an IC-LoRA's `reference_downscale_factor`).
    pub metadata: HashMap<String, String>,
}

impl LoraSummary {
    pub fn read(path: &Path, name: &str) -> std::result::Result<Self, LoraError> {
        let ckpt =
            crate::checkpoint::Checkpoint::open(path).map_err(|e| file_err(path, e.to_string()))?;
        let mut halves: BTreeMap<String, (Option<Shape2>, Option<Shape2>)> = BTreeMap::new();
        let mut dtypes = BTreeSet::new();
        for (key, entry) in ckpt.tensors() {
            let k = key.replacen("diffusion_model.", "", 1);
            let shape = Some(entry.shape.clone());
            if let Some(m) = k.strip_suffix(".lora_A.weight") {
                halves.entry(m.to_string()).or_default().0 = shape;
                dtypes.insert(format!("{:?}", entry.dtype));
            } else if let Some(m) = k.strip_suffix(".lora_B.weight") {
                halves.entry(m.to_string()).or_default().1 = shape;
            } else if !k.ends_with(".alpha") {
                return Err(file_err(
                    path,
                    format!("{key} is neither a lora_A / lora_B weight nor alpha"),
                ));
            }
        }
        let mut modules = Vec::new();
        for (m, (a, b)) in halves {
            match (a.as_deref(), b.as_deref()) {
                (Some(&[ra, inp]), Some(&[out, rb])) if ra == rb => modules.push((m, ra, out, inp)),
                _ => {
                    return Err(file_err(
                        path,
                        format!(
                            "{m}: lora_A / lora_B missing or not a (rank, in) / (out, rank) pair"
                        ),
                    ))
                }
            }
        }
        if modules.is_empty() {
            return Err(file_err(path, "holds no lora_A / lora_B pairs"));
        }
        let targets = modules.iter().map(|(m, ..)| module_kind(m)).collect();
        Ok(Self {
            name: name.to_string(),
            rank: modules.iter().map(|m| m.1).max().unwrap_or(0),
            dtype: dtypes.into_iter().collect::<Vec<_>>().join("+"),
            modules,
            targets,
            metadata: ckpt.metadata().clone(),
        })
    }

    /// Whether it fits the transformer of `checkpoint` ([`fit`]).
    pub fn fits(
        &self,
        checkpoint: &crate::checkpoint::Checkpoint,
    ) -> std::result::Result<(), LoraError> {
        let shape_of = |key: &str| checkpoint.tensors().get(key).map(|e| e.shape.clone());
        fit(&self.name, &self.modules, &shape_of)
    }
}

/// `transformer_blocks.3.attn1.to_q` → `attn1.to_q`; top-level modules as they are.
fn module_kind(m: &str) -> String {
    let parts: Vec<&str> = m.split('.').collect();
    match parts.as_slice() {
        [blocks, i, rest @ ..] if blocks.ends_with("blocks") && i.parse::<usize>().is_ok() => {
            rest.join(".")
        }
        _ => m.to_string(),
    }
}

/// LoRAs with their strengths, in stack order.
#[derive(Debug, Clone, Default)]
pub struct LoraStack {
    pub entries: Vec<(Arc<LoraFile>, f32)>,
}

impl LoraStack {
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Every adapted module of the stack.
    pub fn modules(&self) -> BTreeSet<&str> {
        self.entries
            .iter()
            .flat_map(|(f, _)| f.modules.keys().map(String::as_str))
            .collect()
    }

    /// Refuses a LoRA that does not fit `checkpoint` (see [`fit`]).
    pub fn check(&self, checkpoint: &MmapedSafetensors) -> std::result::Result<(), LoraError> {
        for (file, _) in &self.entries {
            let modules = file
                .modules
                .iter()
                .map(|(m, p)| {
                    let (rank, inp) = p.a.dims2()?;
                    let (out, _) = p.b.dims2()?;
                    Ok((m.clone(), rank, out, inp))
                })
                .collect::<Result<Vec<_>>>()?;
            let shape_of = |key: &str| checkpoint.get(key).ok().map(|v| v.shape().to_vec());
            fit(&file.path.display().to_string(), &modules, &shape_of)?;
        }
        Ok(())
    }

    /// Sum of the stack's deltas of `module` in `dtype`'s precision (f32 result), or `None`.
    fn deltas(&self, module: &str, dtype: DType) -> Result<Option<Tensor>> {
        let mut sum: Option<Tensor> = None;
        for (file, strength) in &self.entries {
            if let Some(d) = file.delta(module, *strength)? {
                let d = round_to(&d, dtype)?;
                sum = Some(match sum {
                    None => d,
                    Some(s) => s.add(&d)?,
                });
            }
        }
        // torch sums a bf16 stack in f32 and rounds once.
        sum.map(|s| round_to(&s, dtype)).transpose()
    }
}

impl From<candle_core::Error> for LoraError {
    fn from(e: candle_core::Error) -> Self {
        LoraError::File {
            file: "?".into(),
            message: e.to_string(),
        }
    }
}

/// A checkpoint seen through a LoRA stack: the transformer weights the stack adapts come back
/// fused, everything else as stored. Build the model from [`LoraBackend::var_builder`].
pub struct LoraBackend {
    inner: MmapedSafetensors,
    stack: LoraStack,
    /// The file stores scaled FP8 layers: its bf16 weights are fused in bf16 (ltx-core's target
    /// dtype there is the weight's own).
    fp8_file: bool,
    /// Fused scaled-FP8 layers (codes, weight_scale), shared by the weight and scale lookups.
    fp8_fused: Mutex<HashMap<String, (Tensor, f32)>>,
}

impl LoraBackend {
    pub fn new(inner: MmapedSafetensors, stack: LoraStack) -> std::result::Result<Self, LoraError> {
        stack.check(&inner)?;
        let fp8_file = inner
            .tensors()
            .iter()
            .any(|(k, _)| k.starts_with(TRANSFORMER_PREFIX) && k.ends_with(".weight_scale"));
        Ok(Self {
            inner,
            stack,
            fp8_file,
            fp8_fused: Mutex::new(HashMap::new()),
        })
    }

    /// A `VarBuilder` over the fused view (memory-mapped base weights, fused ones computed as
    /// they are asked for).
    pub fn var_builder(self, dtype: DType, device: &Device) -> VarBuilder<'static> {
        VarBuilder::from_backend(Box::new(self), dtype, device.clone())
    }

    /// What the model gets for checkpoint key `name`: the fused weight (as stored: FP8 codes for
    /// a scaled-FP8 layer, whose `weight_scale` key gives the new scale) or the stored tensor.
    pub fn tensor(&self, name: &str) -> Result<Tensor> {
        let stored = self.inner.load(name, &Device::Cpu)?.dtype();
        let dtype = if self.adapted(name, ".weight").is_some() && stored != DType::F8E4M3 {
            DType::F32
        } else {
            stored
        };
        self.get_unchecked(name, dtype, &Device::Cpu)
    }

    /// The adapted module of a checkpoint key ending in `suffix`, if the stack adapts it.
    fn adapted<'a>(&self, name: &'a str, suffix: &str) -> Option<&'a str> {
        let module = name
            .strip_prefix(TRANSFORMER_PREFIX)?
            .strip_suffix(suffix)?;
        self.stack
            .entries
            .iter()
            .any(|(f, _)| f.modules.contains_key(module))
            .then_some(module)
    }

    fn fused_fp8(&self, module: &str, weight_key: &str) -> Result<(Tensor, f32)> {
        if let Some(hit) = self.fp8_fused.lock().expect("lora cache").get(module) {
            return Ok(hit.clone());
        }
        let stored = self.inner.load(weight_key, &Device::Cpu)?;
        let scale_key = format!("{TRANSFORMER_PREFIX}{module}.weight_scale");
        let scale = self
            .inner
            .load(&scale_key, &Device::Cpu)?
            .to_dtype(DType::F32)?
            .flatten_all()?
            .to_vec1::<f32>()?[0];
        let delta = self
            .stack
            .deltas(module, DType::BF16)?
            .expect("adapted module has a delta");
        let w = stored
            .to_dtype(DType::F32)?
            .broadcast_mul(&Tensor::new(scale, &Device::Cpu)?)?
            .add(&delta)?;
        let q = fp8::quantize_per_tensor(&w)?;
        let fused = (q.raw().clone(), q.scale());
        self.fp8_fused
            .lock()
            .expect("lora cache")
            .insert(module.to_string(), fused.clone());
        Ok(fused)
    }

    fn fused(&self, module: &str, name: &str, dtype: DType, dev: &Device) -> Result<Tensor> {
        let stored = self.inner.load(name, &Device::Cpu)?;
        match stored.dtype() {
            DType::F8E4M3 => {
                let (codes, _) = self.fused_fp8(module, name)?;
                codes.to_dtype(dtype)?.to_device(dev)
            }
            DType::BF16 | DType::F16 | DType::F32 => {
                // ltx-core's target dtype: the weight's own inside an FP8 file, else the ledger's.
                let target = if self.fp8_file { stored.dtype() } else { dtype };
                let delta = self
                    .stack
                    .deltas(module, target)?
                    .expect("adapted module has a delta");
                let w = delta.add(&stored.to_dtype(DType::F32)?)?;
                round_to(&w, target)?.to_dtype(dtype)?.to_device(dev)
            }
            other => candle_core::bail!("{name}: cannot fuse a LoRA into a {other:?} weight"),
        }
    }
}

impl SimpleBackend for LoraBackend {
    fn get(
        &self,
        s: Shape,
        name: &str,
        h: candle_nn::Init,
        dtype: DType,
        dev: &Device,
    ) -> Result<Tensor> {
        let t = self.get_unchecked(name, dtype, dev)?;
        if t.shape() != &s {
            return Err(candle_core::Error::UnexpectedShape {
                msg: format!("shape mismatch for {name}"),
                expected: s,
                got: t.shape().clone(),
            }
            .bt());
        }
        let _ = h;
        Ok(t)
    }

    fn get_unchecked(&self, name: &str, dtype: DType, dev: &Device) -> Result<Tensor> {
        if let Some(module) = self.adapted(name, ".weight") {
            return self.fused(module, name, dtype, dev);
        }
        if let Some(module) = self.adapted(name, ".weight_scale") {
            let weight_key = format!("{TRANSFORMER_PREFIX}{module}.weight");
            let (_, scale) = self.fused_fp8(module, &weight_key)?;
            return Tensor::new(scale, dev)?.to_dtype(dtype);
        }
        self.inner.load(name, dev)?.to_dtype(dtype)
    }

    fn contains_tensor(&self, name: &str) -> bool {
        self.inner.get(name).is_ok()
    }
}

/// The base layers a LoRA set replaced in a loaded model, to put back when the set changes.
#[derive(Debug, Default)]
pub struct AppliedLoras {
    originals: Vec<(String, crate::linear::Linear)>,
}

impl AppliedLoras {
    /// Number of layers the set replaced.
    pub fn layers(&self) -> usize {
        self.originals.len()
    }

    /// The fused layers the set put into `model` (cheap clones: tensors are shared), to swap in
    /// again later with [`swap_in`] without fusing.
    pub fn fused_layers(
        &self,
        model: &mut crate::transformer::LtxModel,
    ) -> Vec<(String, crate::linear::Linear)> {
        let names: BTreeSet<&str> = self.originals.iter().map(|(n, _)| n.as_str()).collect();
        model
            .linears_mut()
            .into_iter()
            .filter(|(n, _)| names.contains(n.as_str()))
            .map(|(n, l)| (n, l.clone()))
            .collect()
    }

    /// Puts the base layers back.
    pub fn restore(self, model: &mut crate::transformer::LtxModel) {
        let mut originals: HashMap<String, crate::linear::Linear> =
            self.originals.into_iter().collect();
        for (name, slot) in model.linears_mut() {
            if let Some(base) = originals.remove(&name) {
                *slot = base;
            }
        }
    }
}

/// Puts already fused layers (from [`AppliedLoras::fused_layers`]) into `model`; returns what to
/// restore.
pub fn swap_in(
    model: &mut crate::transformer::LtxModel,
    fused: &[(String, crate::linear::Linear)],
) -> AppliedLoras {
    let mut by_name: HashMap<&str, &crate::linear::Linear> =
        fused.iter().map(|(n, l)| (n.as_str(), l)).collect();
    let mut applied = AppliedLoras::default();
    for (name, slot) in model.linears_mut() {
        if let Some(l) = by_name.remove(name.as_str()) {
            let base = std::mem::replace(slot, l.clone());
            applied.originals.push((name, base));
        }
    }
    applied
}

/// Fuses `stack` into a loaded `model` in place: only the layers it adapts are rebuilt, from
/// `checkpoint` (the file the model was loaded from; memory-mapped, only those layers are read)
/// through [`LoraBackend`] and the loader's own construction (a stored FP8 layer stays FP8, the
/// blocks under `quantization`). Returns what to restore.
pub fn apply_in_place(
    model: &mut crate::transformer::LtxModel,
    checkpoint: &Path,
    stack: &LoraStack,
    quantization: crate::quantization::Quantization,
    dtype: DType,
    device: &Device,
) -> std::result::Result<AppliedLoras, LoraError> {
    let mut applied = AppliedLoras::default();
    if stack.is_empty() {
        return Ok(applied);
    }
    // SAFETY: read-only map of the model's own checkpoint, not modified while it is served.
    let st = unsafe { MmapedSafetensors::new(checkpoint) }
        .map_err(|e| file_err(checkpoint, e.to_string()))?;
    let vb = LoraBackend::new(st, stack.clone())?
        .var_builder(dtype, device)
        .pp(TRANSFORMER_PREFIX.trim_end_matches('.'));
    let wanted: BTreeSet<String> = stack.modules().into_iter().map(String::from).collect();
    let mut done = BTreeSet::new();
    let result = (|| -> Result<()> {
        for (name, slot) in model.linears_mut() {
            if !wanted.contains(&name) {
                continue;
            }
            let (out, inp) = slot.dims();
            let q = if name.starts_with("transformer_blocks.") {
                quantization
            } else {
                crate::quantization::Quantization::None
            };
            let fused = crate::linear::linear_q(inp, out, slot.bias().is_some(), q, vb.pp(&name))?;
            applied
                .originals
                .push((name.clone(), std::mem::replace(slot, fused)));
            done.insert(name);
        }
        Ok(())
    })();
    if let Err(e) = result {
        applied.restore(model);
        return Err(LoraError::File {
            file: checkpoint.display().to_string(),
            message: format!("fusing the LoRA set: {e}"),
        });
    }
    let skipped: Vec<String> = wanted.difference(&done).cloned().collect();
    if !skipped.is_empty() {
        applied.restore(model);
        let files = stack
            .entries
            .iter()
            .map(|(f, _)| f.name.clone())
            .collect::<Vec<_>>()
            .join(", ");
        return Err(LoraError::Shapes {
            file: files,
            details: format!("not linear layers of the loaded DiT: {}", list(&skipped)),
        });
    }
    Ok(applied)
}
