//! `ltx2 inspect --memory`: the bytes each component holds resident under each quantization mode,
//! from safetensors headers (a checkpoint, optionally a Gemma folder and an upsampler file) or
//! from a release layout recorded at real sizes (`--layout 19b | 2.3-22b`), without reading or
//! allocating a weight. The rules are the loader's ([`ltx2_model::memory`]).

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::Context;
use candle_core::DType;
use ltx2_model::checkpoint::{Checkpoint, Component, TensorEntry};
use ltx2_model::memory::{format_bytes, resident, resident_gemma, Resident};
use ltx2_model::quantization::{GemmaQuantization, Quantization};
use ltx2_pipeline::bench::layout::{release_layout, Tensors};
use ltx2_pipeline::bench::ModelSize;

/// One way of loading the DiT: which checkpoint file and which mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Plan {
    pub file: &'static str,
    pub quantization: Quantization,
}

/// Resident bytes of every component under each plan (`None`: the plan cannot load the file).
pub struct Report {
    pub compute: DType,
    pub plans: Vec<Plan>,
    /// `(component name, per plan)`, in display order.
    pub rows: Vec<(String, Vec<Option<Resident>>)>,
}

/// The checkpoint's components (by key prefix), one column per plan.
fn checkpoint_rows(
    tensors: &Tensors,
    plans: &[(Plan, &Tensors)],
    compute: DType,
) -> Vec<(String, Vec<Option<Resident>>)> {
    let mut components: Vec<Component> = tensors.keys().map(|k| Component::of(k)).collect();
    components.sort();
    components.dedup();
    components
        .into_iter()
        .map(|c| {
            let per_plan = plans
                .iter()
                .map(|(plan, file)| {
                    let group = file.iter().filter(|(k, _)| Component::of(k) == c);
                    resident(
                        group.map(|(k, t)| (k.as_str(), t)),
                        plan.quantization,
                        compute,
                    )
                    .ok()
                })
                .collect();
            (c.name().to_string(), per_plan)
        })
        .collect()
}

/// The Gemma language model held as `q` says, under every plan.
fn gemma_row(
    name: &str,
    tensors: &Tensors,
    q: GemmaQuantization,
    n: usize,
    compute: DType,
) -> (String, Vec<Option<Resident>>) {
    let r = resident_gemma(tensors.iter().map(|(k, t)| (k.as_str(), t)), q, compute);
    (format!("{name}, {q}"), vec![Some(r); n])
}

/// A file that is not the DiT's (the upsampler): the same bytes under every plan.
fn extra_row(
    name: &str,
    tensors: &Tensors,
    n: usize,
    compute: DType,
) -> (String, Vec<Option<Resident>>) {
    let r = resident(
        tensors.iter().map(|(k, t)| (k.as_str(), t)),
        Quantization::None,
        compute,
    )
    .ok();
    (name.to_string(), vec![r; n])
}

impl Report {
    /// The recorded release layout of `size`: its bf16 checkpoint (none, fp8-cast) and FP8
    /// checkpoint (none, fp8-scaled-mm), Gemma-3 12B and the x2 upsampler.
    pub fn for_layout(
        size: ModelSize,
        gemma_quantization: GemmaQuantization,
        compute: DType,
    ) -> anyhow::Result<Self> {
        let l = release_layout(size, None)?;
        let plans = [
            (plan("bf16", Quantization::None), &l.checkpoint),
            (plan("bf16", Quantization::Fp8Cast), &l.checkpoint),
            (plan("fp8", Quantization::None), &l.checkpoint_fp8),
            (plan("fp8", Quantization::Fp8ScaledMm), &l.checkpoint_fp8),
        ];
        let mut rows = checkpoint_rows(&l.checkpoint, &plans, compute);
        let name = "Gemma-3 12B (language model)";
        rows.push(gemma_row(
            name,
            &l.gemma,
            gemma_quantization,
            plans.len(),
            compute,
        ));
        rows.push(extra_row(
            "x2 upsampler",
            &l.upsampler,
            plans.len(),
            compute,
        ));
        Ok(Self {
            compute,
            plans: plans.iter().map(|(p, _)| *p).collect(),
            rows,
        })
    }

    /// A checkpoint file's header under every mode it serves, plus a Gemma folder and an
    /// upsampler file when given.
    pub fn for_files(
        checkpoint: &Path,
        gemma: Option<&Path>,
        upsampler: Option<&Path>,
        gemma_quantization: GemmaQuantization,
        compute: DType,
    ) -> anyhow::Result<Self> {
        let ckpt = Checkpoint::open(checkpoint)?;
        let modes: Vec<Quantization> = Quantization::ALL
            .into_iter()
            .filter(|q| ckpt.check_quantization(*q).is_ok())
            .collect();
        let file = if ckpt.has_fp8_transformer() {
            "fp8"
        } else {
            "bf16"
        };
        let tensors = ckpt.tensors().clone();
        let plans: Vec<(Plan, &Tensors)> =
            modes.iter().map(|q| (plan(file, *q), &tensors)).collect();
        let mut rows = checkpoint_rows(&tensors, &plans, compute);
        if let Some(dir) = gemma {
            let lm = gemma_tensors(dir)?;
            let name = "Gemma-3 (language model)";
            rows.push(gemma_row(
                name,
                &lm,
                gemma_quantization,
                plans.len(),
                compute,
            ));
        }
        if let Some(path) = upsampler {
            let up = Checkpoint::open(path)?.tensors().clone();
            rows.push(extra_row("upsampler", &up, plans.len(), compute));
        }
        Ok(Self {
            compute,
            plans: plans.iter().map(|(p, _)| *p).collect(),
            rows,
        })
    }

    /// Sum over all rows per plan, and the per-layer dequantization scratch of the plan.
    pub fn totals(&self) -> Vec<Option<(Resident, u64)>> {
        (0..self.plans.len())
            .map(|i| {
                let mut total = Resident::default();
                for (_, per_plan) in &self.rows {
                    total.add(per_plan[i].as_ref()?);
                }
                let scratch = total.scratch_bytes(self.plans[i].quantization, self.compute);
                Some((total, scratch))
            })
            .collect()
    }

    /// The bytes of the row named `name` under plan `i`.
    pub fn row(&self, name: &str, i: usize) -> Option<Resident> {
        self.rows.iter().find(|(n, _)| n == name)?.1[i]
    }

    pub fn print(&self) {
        let cell = |r: &Option<Resident>| match r {
            Some(r) => format!("{:.3}", r.bytes as f64 / 1e9),
            None => "-".to_string(),
        };
        let head: Vec<String> = self
            .plans
            .iter()
            .map(|p| format!("{} file, {}", p.file, p.quantization))
            .collect();
        println!(
            "resident weights in GB (1e9 bytes), compute dtype {:?}:\n",
            self.compute
        );
        println!("| component | parameters | {} |", head.join(" | "));
        println!("|---|---:|{}", "---:|".repeat(self.plans.len()));
        for (name, per_plan) in &self.rows {
            let params = per_plan.iter().flatten().next().map_or(0, |r| r.parameters);
            let cells: Vec<String> = per_plan.iter().map(cell).collect();
            println!(
                "| {name} | {:.3} B | {} |",
                params as f64 / 1e9,
                cells.join(" | ")
            );
        }
        let totals = self.totals();
        let total_cells: Vec<String> = totals.iter().map(|t| cell(&t.map(|(r, _)| r))).collect();
        println!("| **everything** | | {} |", total_cells.join(" | "));
        let scratch: Vec<String> = totals
            .iter()
            .map(|t| match t {
                Some((_, s)) => format!("{:.3}", *s as f64 / 1e9),
                None => "-".into(),
            })
            .collect();
        println!(
            "| FP8 dequantization scratch (one per compute thread) | | {} |",
            scratch.join(" | ")
        );
        println!();
        for (i, p) in self.plans.iter().enumerate() {
            let Some((total, scratch)) = totals[i] else {
                continue;
            };
            let dit = self.row(Component::Transformer.name(), i);
            println!(
                "{} file, {}: DiT {}, everything {} (+ scratch {}){}",
                p.file,
                p.quantization,
                dit.map_or("-".into(), |r| format_bytes(r.bytes)),
                format_bytes(total.bytes),
                format_bytes(scratch),
                match self.row_containing("Gemma", i) {
                    Some(g) => format!(
                        "; without Gemma (offloaded between prompts) {}",
                        format_bytes(total.bytes - g.bytes)
                    ),
                    None => String::new(),
                }
            );
        }
    }

    fn row_containing(&self, needle: &str, i: usize) -> Option<Resident> {
        self.rows.iter().find(|(n, _)| n.contains(needle))?.1[i]
    }
}

fn plan(file: &'static str, quantization: Quantization) -> Plan {
    Plan { file, quantization }
}

/// The language-model tensors of a Gemma-3 folder (`language_model.*` of every shard; the
/// vision tower is never read).
fn gemma_tensors(dir: &Path) -> anyhow::Result<Tensors> {
    let mut out: BTreeMap<String, TensorEntry> = BTreeMap::new();
    let entries = std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))?;
    for e in entries {
        let path = e?.path();
        if path.extension().is_some_and(|x| x == "safetensors") {
            for (k, t) in Checkpoint::open(&path)?.tensors() {
                if k.starts_with("language_model.") {
                    out.insert(k.clone(), t.clone());
                }
            }
        }
    }
    anyhow::ensure!(
        !out.is_empty(),
        "{}: no language_model.* tensors in its safetensors files",
        dir.display()
    );
    Ok(out)
}
