//! The Euler loop on x0 predictions (ltx-pipelines `euler_denoising_loop` with ltx-core's
//! `X0Model`, `post_process_latent` and `EulerDiffusionStep`), generic over the velocity model.
//!
//! Per step with `sigma = sigmas[i]`, `next = sigmas[i + 1]` and per-token `t = mask * sigma`:
//! `x0 = x - v * t`; guidance in x0 space; `x0 = x0 * mask + clean * (1 - mask)`;
//! `x += (x - x0) / sigma * (next - sigma)`.

use candle_core::{Result, Tensor};

use crate::api::GenError;
use crate::guidance::Guidance;
use crate::latents::LatentState;

/// One modality as the transformer sees it (ltx-core `Modality`).
#[derive(Debug, Clone, Copy)]
pub struct ModalityInput<'a> {
    /// `(1, T, C)` tokens.
    pub latent: &'a Tensor,
    /// `(1, T, 1)` per-token `mask * sigma`.
    pub timesteps: &'a Tensor,
    /// The step's scalar sigma (feeds the cross-modal AdaLN).
    pub sigma: f32,
    /// `(1, axes, T, 2)` RoPE positions.
    pub positions: &'a Tensor,
    /// `(1, L, D)` text context.
    pub context: &'a Tensor,
}

/// Parts of the transformer switched off in a guidance pass (ltx-core `PerturbationType`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Perturbation {
    /// Blocks whose video self-attention outputs its value projection (STG).
    pub skip_video_self_attn: Vec<usize>,
    /// Blocks whose audio self-attention outputs its value projection (STG).
    pub skip_audio_self_attn: Vec<usize>,
    /// Skip audio->video cross-attention in every block.
    pub skip_a2v: bool,
    /// Skip video->audio cross-attention in every block.
    pub skip_v2a: bool,
}

/// The audio+video velocity model (the LTX-2 transformer, or a stand-in in tests).
pub trait VelocityModel {
    /// `(video_velocity, audio_velocity)`, shaped like the input latents.
    fn velocity(
        &self,
        video: ModalityInput<'_>,
        audio: ModalityInput<'_>,
        perturbation: &Perturbation,
    ) -> Result<(Tensor, Tensor)>;

    /// Number of transformer blocks (for the STG block choice).
    fn num_blocks(&self) -> usize;
}

/// Text contexts of both streams.
#[derive(Debug, Clone)]
pub struct Contexts {
    pub video: Tensor,
    pub audio: Tensor,
}

/// What a step reports: the latents fed to it and the (guided, not yet blended) x0 predictions.
pub struct StepEvent<'a> {
    pub step: usize,
    pub total: usize,
    pub video_in: &'a Tensor,
    pub audio_in: &'a Tensor,
    pub video_denoised: &'a Tensor,
    pub audio_denoised: &'a Tensor,
}

/// Callback after every step; returning an error (e.g. [`GenError::Cancelled`]) stops the loop.
pub type StepCallback<'a> = dyn FnMut(&StepEvent<'_>) -> std::result::Result<(), GenError> + 'a;

/// `x0 = x - v * t` per token (ltx-core `to_denoised` with the modality's timesteps).
fn to_denoised(x: &Tensor, v: &Tensor, timesteps: &Tensor) -> Result<Tensor> {
    x - v.broadcast_mul(timesteps)?
}

/// `x0 * mask + clean * (1 - mask)`.
fn blend(x0: &Tensor, state: &LatentState) -> Result<Tensor> {
    let keep = state.denoise_mask.affine(-1.0, 1.0)?;
    x0.broadcast_mul(&state.denoise_mask)? + state.clean_latent.broadcast_mul(&keep)?
}

/// `x + (x - x0) / sigma * (next - sigma)`.
fn euler(x: &Tensor, x0: &Tensor, sigma: f32, next: f32) -> Result<Tensor> {
    let vel = ((x - x0)? / sigma as f64)?;
    x + (vel * (next - sigma) as f64)?
}

/// The guided x0 predictions of one step.
fn denoise_step<M: VelocityModel + ?Sized>(
    model: &M,
    video: &LatentState,
    audio: &LatentState,
    sigma: f32,
    ctx: &Contexts,
    negative: Option<&Contexts>,
    guidance: &Guidance,
) -> Result<(Tensor, Tensor)> {
    let vt = (&video.denoise_mask * sigma as f64)?;
    let at = (&audio.denoise_mask * sigma as f64)?;
    let x0 = |c: &Contexts, p: &Perturbation| -> Result<(Tensor, Tensor)> {
        let vi = ModalityInput {
            latent: &video.latent,
            timesteps: &vt,
            sigma,
            positions: &video.positions,
            context: &c.video,
        };
        let ai = ModalityInput {
            latent: &audio.latent,
            timesteps: &at,
            sigma,
            positions: &audio.positions,
            context: &c.audio,
        };
        let (vv, av) = model.velocity(vi, ai, p)?;
        Ok((
            to_denoised(&video.latent, &vv, &vt)?,
            to_denoised(&audio.latent, &av, &at)?,
        ))
    };
    let none = Perturbation::default();
    let cond = x0(ctx, &none)?;
    let (gv, ga) = (&guidance.video, &guidance.audio);
    if guidance.forwards_per_step() == 1 {
        return Ok(cond);
    }
    let uncond = if guidance.needs_unconditional() {
        let neg = negative.ok_or_else(|| {
            candle_core::Error::Msg("CFG needs the negative-prompt contexts".into())
        })?;
        Some(x0(neg, &none)?)
    } else {
        None
    };
    let perturbed = if gv.needs_perturbed() || ga.needs_perturbed() {
        let p = Perturbation {
            skip_video_self_attn: if gv.needs_perturbed() {
                gv.stg_blocks.clone()
            } else {
                vec![]
            },
            skip_audio_self_attn: if ga.needs_perturbed() {
                ga.stg_blocks.clone()
            } else {
                vec![]
            },
            ..Default::default()
        };
        Some(x0(ctx, &p)?)
    } else {
        None
    };
    let isolated = if gv.needs_isolated() || ga.needs_isolated() {
        Some(x0(
            ctx,
            &Perturbation {
                skip_a2v: true,
                skip_v2a: true,
                ..Default::default()
            },
        )?)
    } else {
        None
    };
    let video_x0 = gv.combine(
        &cond.0,
        uncond.as_ref().map(|u| &u.0),
        perturbed.as_ref().map(|u| &u.0),
        isolated.as_ref().map(|u| &u.0),
    )?;
    let audio_x0 = ga.combine(
        &cond.1,
        uncond.as_ref().map(|u| &u.1),
        perturbed.as_ref().map(|u| &u.1),
        isolated.as_ref().map(|u| &u.1),
    )?;
    Ok((video_x0, audio_x0))
}

/// Runs the Euler loop over `sigmas` on both states in place.
#[allow(clippy::too_many_arguments)]
pub fn euler_loop<M: VelocityModel + ?Sized>(
    model: &M,
    video: &mut LatentState,
    audio: &mut LatentState,
    sigmas: &[f32],
    ctx: &Contexts,
    negative: Option<&Contexts>,
    guidance: &Guidance,
    on_step: &mut StepCallback<'_>,
) -> std::result::Result<(), GenError> {
    let total = sigmas.len().saturating_sub(1);
    for (step, w) in sigmas.windows(2).enumerate() {
        let (sigma, next) = (w[0], w[1]);
        let (vx0, ax0) = denoise_step(model, video, audio, sigma, ctx, negative, guidance)?;
        on_step(&StepEvent {
            step,
            total,
            video_in: &video.latent,
            audio_in: &audio.latent,
            video_denoised: &vx0,
            audio_denoised: &ax0,
        })?;
        let vx0 = blend(&vx0, video)?;
        let ax0 = blend(&ax0, audio)?;
        video.latent = euler(&video.latent, &vx0, sigma, next)?;
        audio.latent = euler(&audio.latent, &ax0, sigma, next)?;
    }
    Ok(())
}
