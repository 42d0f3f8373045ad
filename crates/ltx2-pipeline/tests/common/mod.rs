//! What the pipeline parity tests against `testdata/golden-pipelines` share: the guidance of a
//! golden's `params`, the tiny models with LoRA sets switched in place as the pipelines do, and
//! the recorded noise.

#![allow(dead_code)]

use anyhow::Context;
use candle_core::{DType, Device, Tensor};
use ltx2_model::golden::{pipelines_lora_stack, Golden};
use ltx2_model::lora::{apply_in_place, AppliedLoras};
use ltx2_model::quantization::Quantization;
use ltx2_pipeline::components::Models;
use ltx2_pipeline::guidance::{Guidance, GuiderParams};
use ltx2_pipeline::noise::RecordedNoise;
use ltx2_pipeline::GenError;

/// A golden's `MultiModalGuiderParams` (`params.guidance.<modality>`); a string there means the
/// default params (no guidance).
pub fn guider(p: &serde_json::Value) -> anyhow::Result<GuiderParams> {
    if !p.is_object() {
        return Ok(GuiderParams::disabled());
    }
    let f = |k: &str| p[k].as_f64().map(|v| v as f32).context(k.to_string());
    anyhow::ensure!(
        p["skip_step"].as_u64().unwrap_or(0) == 0,
        "skip_step is not replayed"
    );
    Ok(GuiderParams {
        cfg: f("cfg_scale")?,
        stg: f("stg_scale")?,
        stg_blocks: p["stg_blocks"]
            .as_array()
            .context("stg_blocks")?
            .iter()
            .filter_map(|b| b.as_u64())
            .map(|b| b as usize)
            .collect(),
        modality: f("modality_scale")?,
        rescale: f("rescale_scale")?,
    })
}

/// Both guiders of `params.guidance`.
pub fn guidance(params: &serde_json::Value) -> anyhow::Result<Guidance> {
    Ok(Guidance {
        video: guider(&params["guidance"]["video"])?,
        audio: guider(&params["guidance"]["audio"])?,
    })
}

/// The golden's `in.noise.<key>` draws that exist, in order.
pub fn noise(g: &Golden, keys: &[&str], d: &Device) -> anyhow::Result<RecordedNoise> {
    let draws = keys
        .iter()
        .filter(|k| g.has(&format!("in.noise.{k}")))
        .map(|k| g.get_f32(&format!("in.noise.{k}"), d))
        .collect::<candle_core::Result<Vec<_>>>()?;
    Ok(RecordedNoise::new(draws))
}

/// The two-stage draws of the pipeline goldens.
pub const TWO_STAGE_NOISE: [&str; 4] = [
    "stage1.video",
    "stage1.audio",
    "stage2.video",
    "stage2.audio",
];

/// The tiny model of a layout (with its upsampler) and the LoRA set it carries, switched in
/// place between the stages as ltx-pipelines' two model ledgers do.
pub struct Ledger {
    pub models: Models,
    checkpoint: std::path::PathBuf,
    dir: std::path::PathBuf,
    applied: AppliedLoras,
}

impl Ledger {
    pub fn load(dir: &std::path::Path, weights: &std::path::Path) -> anyhow::Result<Self> {
        let checkpoint = weights.join("model.safetensors");
        let models = Models::load(
            &checkpoint,
            Some(&weights.join("upsampler.safetensors")),
            DType::F32,
            &Device::Cpu,
        )?;
        Ok(Self {
            models,
            checkpoint,
            dir: dir.to_path_buf(),
            applied: AppliedLoras::default(),
        })
    }

    /// Puts the base layers back and fuses `loras` (a `params.loras_stage*` list).
    pub fn switch(&mut self, loras: &serde_json::Value) -> anyhow::Result<()> {
        let stack = pipelines_lora_stack(&self.dir, loras)?;
        swap(
            &mut self.models,
            &mut self.applied,
            &self.checkpoint,
            &stack,
        )?;
        Ok(())
    }

    /// The models for a pipeline call and its `before_stage2`, which switches them to `loras`.
    #[allow(clippy::type_complexity)]
    pub fn with_stage2(
        &mut self,
        loras: &serde_json::Value,
    ) -> anyhow::Result<(
        &mut Models,
        impl FnMut(&mut Models) -> Result<(), GenError> + '_,
    )> {
        let stack = pipelines_lora_stack(&self.dir, loras)?;
        let Self {
            models,
            checkpoint,
            applied,
            ..
        } = self;
        let checkpoint = &*checkpoint;
        Ok((models, move |m: &mut Models| {
            swap(m, applied, checkpoint, &stack).map_err(|e| GenError::Model(e.to_string()))
        }))
    }
}

fn swap(
    m: &mut Models,
    applied: &mut AppliedLoras,
    checkpoint: &std::path::Path,
    stack: &ltx2_model::lora::LoraStack,
) -> anyhow::Result<()> {
    let ltx = m
        .transformer
        .ltx_model_mut()
        .context("an LTX transformer")?;
    std::mem::take(applied).restore(ltx);
    *applied = apply_in_place(
        ltx,
        checkpoint,
        stack,
        Quantization::None,
        DType::F32,
        &Device::Cpu,
    )?;
    Ok(())
}

/// `Tensor` of sigmas, for the `in.sigmas.*` checks.
pub fn sigmas(s: &[f32]) -> candle_core::Result<Tensor> {
    Tensor::new(s, &Device::Cpu)
}
