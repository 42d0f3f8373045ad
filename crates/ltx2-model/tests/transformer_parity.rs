//! Parity of the AV transformer with ltx-core 1.0.0 on the `transformer`, `transformer_masked` and
//! `transformer_fp8` goldens (weights from the golden checkpoints, config from their metadata).

use anyhow::{bail, Context, Result};
use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use ltx2_model::checkpoint::read_config;
use ltx2_model::golden::{weights_path, Golden, ParityReport};
use ltx2_model::transformer::{to_denoised, LtxModel, Modality, Perturbations, TransformerConfig};

fn load_model(file: &str, dev: &Device) -> Result<LtxModel> {
    let path = weights_path(file);
    let config = read_config(&path)?.context("checkpoint has no `config` metadata")?;
    let cfg = TransformerConfig::from_checkpoint_config(&config)?;
    let vb = unsafe { VarBuilder::from_mmaped_safetensors(&[&path], DType::F32, dev)? };
    Ok(LtxModel::new(&cfg, vb.pp("model.diffusion_model"))?)
}

fn modality(g: &Golden, stream: &str, dev: &Device) -> Result<Modality> {
    let context_mask = if g.has("in.context_mask") {
        Some(g.get("in.context_mask")?)
    } else {
        None
    };
    Ok(Modality {
        latent: g.get_f32(&format!("in.{stream}.latent"), dev)?,
        timesteps: g.get_f32(&format!("in.{stream}.timesteps"), dev)?,
        positions: g.get_f32(&format!("in.{stream}.positions"), dev)?,
        context: g.get_f32(&format!("in.{stream}.context"), dev)?,
        context_mask,
        sigma: g.get_f32("in.sigma", dev)?,
    })
}

/// Collects every comparison so one run reports all errors, then fails on any.
struct Checks<'a> {
    g: &'a Golden,
    reports: Vec<ParityReport>,
}

impl<'a> Checks<'a> {
    fn new(g: &'a Golden) -> Self {
        Self {
            g,
            reports: Vec::new(),
        }
    }

    fn check(&mut self, key: &str, ours: &Tensor) -> Result<()> {
        self.reports.push(self.g.compare(key, ours)?);
        Ok(())
    }

    /// Like `check` when the golden holds the key (debug intermediates differ between files).
    fn check_if_present(&mut self, key: &str, ours: &Tensor) -> Result<()> {
        if self.g.has(key) {
            self.check(key, ours)?;
        }
        Ok(())
    }

    fn finish(self) -> Result<()> {
        let failed: Vec<String> = self
            .reports
            .iter()
            .filter(|r| !r.passed)
            .map(|r| r.to_string())
            .collect();
        if !failed.is_empty() {
            bail!("{} parity failures:\n{}", failed.len(), failed.join("\n"));
        }
        Ok(())
    }
}

/// Debug intermediates: preprocessing of both streams and the per-block outputs.
fn check_intermediates(
    model: &LtxModel,
    v: &Modality,
    a: &Modality,
    prefix: &str,
    c: &mut Checks,
) -> Result<()> {
    let pv = model.prepare(&model.video, v, Some(a))?;
    let pa = model.prepare(&model.audio, a, Some(v))?;
    for (name, p) in [("video", &pv), ("audio", &pa)] {
        c.check_if_present(&format!("dbg.{name}.x_patchified"), &p.x)?;
        c.check_if_present(&format!("dbg.{name}.context_projected"), &p.args.context)?;
        c.check_if_present(&format!("dbg.{name}.adaln_timestep"), &p.args.timesteps)?;
        c.check_if_present(
            &format!("dbg.{name}.embedded_timestep"),
            &p.embedded_timestep,
        )?;
        c.check_if_present(&format!("dbg.{name}.rope_cos"), &p.args.pe.cos)?;
        c.check_if_present(&format!("dbg.{name}.rope_sin"), &p.args.pe.sin)?;
        let cross = p.args.cross_pe.as_ref().context("cross RoPE")?;
        c.check_if_present(&format!("dbg.{name}.cross_rope_cos"), &cross.cos)?;
        c.check_if_present(&format!("dbg.{name}.cross_rope_sin"), &cross.sin)?;
        let ss = p
            .args
            .cross_scale_shift_timestep
            .as_ref()
            .context("cross scale/shift")?;
        c.check_if_present(&format!("dbg.{name}.cross_scale_shift_timestep"), ss)?;
        let gate = p.args.cross_gate_timestep.as_ref().context("cross gate")?;
        c.check_if_present(&format!("dbg.{name}.cross_gate_timestep"), gate)?;
        if let Some(mask) = &p.args.context_mask {
            c.check_if_present(&format!("dbg.{name}.context_mask_additive"), mask)?;
        }
    }
    let (mut vx, mut ax) = (pv.x.clone(), pa.x.clone());
    for (i, block) in model.transformer_blocks.iter().enumerate() {
        let (v, a) = block.forward(
            Some((&vx, &pv.args)),
            Some((&ax, &pa.args)),
            &Perturbations::none(),
        )?;
        (vx, ax) = (v.context("video out")?, a.context("audio out")?);
        c.check_if_present(&format!("dbg.{prefix}block{i}.video_out"), &vx)?;
        c.check_if_present(&format!("dbg.{prefix}block{i}.audio_out"), &ax)?;
    }
    Ok(())
}

/// Runs the joint forward on `inputs`' `in.*` and checks `outputs`' `out.{prefix}*` (and dbg.*).
fn run(weights: &str, inputs: &str, outputs: &str, prefix: &str) -> Result<()> {
    let dev = Device::Cpu;
    let model = load_model(weights, &dev)?;
    let gi = Golden::load(inputs)?;
    let go = Golden::load(outputs)?;
    let (v, a) = (modality(&gi, "video", &dev)?, modality(&gi, "audio", &dev)?);
    let mut c = Checks::new(&go);
    check_intermediates(&model, &v, &a, prefix, &mut c)?;
    let (vel_v, vel_a) = model.forward(&v, &a, &Perturbations::none())?;
    c.check(&format!("out.{prefix}video.velocity"), &vel_v)?;
    c.check(&format!("out.{prefix}audio.velocity"), &vel_a)?;
    c.check(
        &format!("out.{prefix}video.denoised"),
        &to_denoised(&v.latent, &vel_v, &v.timesteps)?,
    )?;
    c.check(
        &format!("out.{prefix}audio.denoised"),
        &to_denoised(&a.latent, &vel_a, &a.timesteps)?,
    )?;
    c.finish()
}

#[test]
fn transformer_matches_ltx_core() -> Result<()> {
    run("model.safetensors", "transformer", "transformer", "")
}

#[test]
fn transformer_with_text_mask_matches_ltx_core() -> Result<()> {
    run(
        "model.safetensors",
        "transformer_masked",
        "transformer_masked",
        "",
    )
}

#[test]
fn transformer_fp8_weight_only_matches_ltx_core() -> Result<()> {
    run(
        "model_fp8.safetensors",
        "transformer",
        "transformer_fp8",
        "weight_only.",
    )
}
