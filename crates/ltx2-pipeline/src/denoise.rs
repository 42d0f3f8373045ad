//! The Euler loops on x0 predictions (ltx-pipelines `euler_denoising_loop` with ltx-core's
//! `X0Model`, `post_process_latent` and `EulerDiffusionStep`; and, for LTX-2.5's distilled stage 1,
//! ltx-pipelines 1.2.0's `euler_ancestral_denoising_loop` with `EulerAncestralDiffusionStep`),
//! generic over the velocity model.
//!
//! Per step with `sigma = sigmas[i]`, `next = sigmas[i + 1]` and per-token `t = mask * sigma`:
//! `x0 = x - v * t`; guidance in x0 space; `x0 = x0 * mask + clean * (1 - mask)`;
//! Euler: `x += (x - x0) / sigma * (next - sigma)`. Ancestral: an Euler step to
//! `sigma_down <= next`, then noise back up to `next` (see [`ancestral_step`]).

use std::any::Any;
use std::sync::Arc;

use candle_core::{DType, Result, Tensor};

use crate::api::GenError;
use crate::guidance::Guidance;
use crate::latents::LatentState;
use crate::noise::NoiseSource;

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
    /// `(1, T, 1)` tokens that get the keyframe position embedding (LTX-2.5; see
    /// [`LatentState::keyframes_mask`]).
    pub keyframes_mask: Option<&'a Tensor>,
    /// `(1, T, T)` self-attention weights in [0, 1] (see [`LatentState::attention_mask`]).
    pub attention_mask: Option<&'a Tensor>,
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

/// What a model precomputed from one [`Contexts`] (for the LTX-2 transformer, the text
/// keys/values of every block); opaque to the sampler, which only hands it back.
pub type PreparedText = Arc<dyn Any + Send + Sync>;

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

    /// The LTX transformer behind this model, for swapping LoRA-adapted layers; `None` for
    /// stand-ins.
    fn ltx_model_mut(&mut self) -> Option<&mut ltx2_model::transformer::LtxModel> {
        None
    }

    /// The work that depends on the text contexts only, done once per stage and context rather
    /// than in every step; `None` when the model has nothing to precompute.
    fn prepare_text(&self, _ctx: &Contexts) -> Result<Option<PreparedText>> {
        Ok(None)
    }

    /// [`Self::velocity`] with the output of [`Self::prepare_text`] for the inputs' contexts; the
    /// same result.
    fn velocity_with_text(
        &self,
        video: ModalityInput<'_>,
        audio: ModalityInput<'_>,
        perturbation: &Perturbation,
        _text: Option<&PreparedText>,
    ) -> Result<(Tensor, Tensor)> {
        self.velocity(video, audio, perturbation)
    }
}

/// A context with what the model precomputed from it.
struct TextInput<'a> {
    ctx: &'a Contexts,
    prepared: Option<PreparedText>,
}

impl<'a> TextInput<'a> {
    fn new<M: VelocityModel + ?Sized>(model: &M, ctx: &'a Contexts) -> Result<Self> {
        Ok(Self {
            ctx,
            prepared: model.prepare_text(ctx)?,
        })
    }
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

/// `x0 = x - v * t` per token (ltx-core `to_denoised` with the modality's timesteps), in f32 and
/// rounded to the latent dtype, as ltx-core does in bf16 runs.
fn to_denoised(x: &Tensor, v: &Tensor, timesteps: &Tensor) -> Result<Tensor> {
    let f = |t: &Tensor| t.to_dtype(DType::F32);
    (f(x)? - f(v)?.broadcast_mul(&f(timesteps)?)?)?.to_dtype(x.dtype())
}

/// `x0 * mask + clean * (1 - mask)` (`post_process_latent`).
fn blend(x0: &Tensor, state: &LatentState) -> Result<Tensor> {
    let f = |t: &Tensor| t.to_dtype(DType::F32);
    let mask = f(&state.denoise_mask)?;
    let keep = mask.affine(-1.0, 1.0)?;
    (f(x0)?.broadcast_mul(&mask)? + f(&state.clean_latent)?.broadcast_mul(&keep)?)?
        .to_dtype(x0.dtype())
}

/// `EulerDiffusionStep`: `vel = (x - x0) / sigma` rounded to the latent dtype, then
/// `x + vel * (next - sigma)` in f32, rounded again.
fn euler(x: &Tensor, x0: &Tensor, sigma: f32, next: f32) -> Result<Tensor> {
    let f = |t: &Tensor| t.to_dtype(DType::F32);
    let vel = ((f(x)? - f(x0)?)? / sigma as f64)?.to_dtype(x.dtype())?;
    (f(x)? + (f(&vel)? * (next - sigma) as f64)?)?.to_dtype(x.dtype())
}

/// The guided x0 predictions of one step.
fn denoise_step<M: VelocityModel + ?Sized>(
    model: &M,
    video: &LatentState,
    audio: &LatentState,
    sigma: f32,
    ctx: &TextInput<'_>,
    negative: Option<&TextInput<'_>>,
    guidance: &Guidance,
) -> Result<(Tensor, Tensor)> {
    let vt = (&video.denoise_mask * sigma as f64)?;
    let at = (&audio.denoise_mask * sigma as f64)?;
    let x0 = |t: &TextInput<'_>, p: &Perturbation| -> Result<(Tensor, Tensor)> {
        let c = t.ctx;
        let vi = ModalityInput {
            latent: &video.latent,
            timesteps: &vt,
            sigma,
            positions: &video.positions,
            context: &c.video,
            keyframes_mask: video.keyframes_mask.as_ref(),
            attention_mask: video.attention_mask.as_ref(),
        };
        let ai = ModalityInput {
            latent: &audio.latent,
            timesteps: &at,
            sigma,
            positions: &audio.positions,
            context: &c.audio,
            keyframes_mask: audio.keyframes_mask.as_ref(),
            attention_mask: audio.attention_mask.as_ref(),
        };
        let (vv, av) = model.velocity_with_text(vi, ai, p, t.prepared.as_ref())?;
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

/// How a step moves the latent from `sigma` to `next` given the x0 prediction.
pub enum Stepper<'a> {
    /// `EulerDiffusionStep` (deterministic).
    Euler,
    /// `EulerAncestralDiffusionStep(eta, s_noise)` (rectified-flow ancestral): noise for the
    /// renoise term comes from `noise`, video then audio each step, none at a final `next = 0`
    /// (ltx-pipelines draws it from its own generator seeded `seed + 10000`).
    Ancestral {
        eta: f32,
        s_noise: f32,
        noise: &'a mut dyn NoiseSource,
    },
}

/// `EulerAncestralDiffusionStep.step` on a mask-blended x0, in f32 like ltx-core (the scalar
/// coefficients too), then `post_process_latent` and the cast to the latent dtype. At
/// `next = 0` the result is the x0 prediction and no noise is drawn.
fn ancestral_step(
    state: &LatentState,
    x0: &Tensor,
    sigma: f32,
    next: f32,
    eta: f32,
    s_noise: f32,
    noise: &mut dyn NoiseSource,
) -> Result<Tensor> {
    let f = |t: &Tensor| t.to_dtype(DType::F32);
    let x0 = f(x0)?;
    if next == 0.0 {
        return x0.to_dtype(state.latent.dtype());
    }
    let x = f(&state.latent)?;
    let downstep_ratio = 1.0f32 + (next / sigma - 1.0) * eta;
    let sigma_down = next * downstep_ratio;
    let r = sigma_down / sigma;
    let mut x_next = ((&x * r as f64)? + (&x0 * (1.0f32 - r) as f64)?)?;
    if eta > 0.0 {
        let alpha_next = 1.0f32 - next;
        let alpha_down = 1.0f32 - sigma_down;
        let renoise = (next * next
            - sigma_down * sigma_down * (alpha_next * alpha_next) / (alpha_down * alpha_down))
            .max(0.0)
            .sqrt();
        // Drawn in the latent's dtype, as `torch.randn(x.shape, dtype=x.dtype)`.
        let eps = f(&noise.draw(
            state.latent.dims(),
            state.latent.dtype(),
            state.latent.device(),
        )?)?;
        x_next =
            ((x_next * (alpha_next / alpha_down) as f64)? + (eps * (s_noise * renoise) as f64)?)?;
    }
    blend(&x_next, state)?.to_dtype(state.latent.dtype())
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
    denoise_loop(
        model,
        video,
        audio,
        sigmas,
        ctx,
        negative,
        guidance,
        &mut Stepper::Euler,
        on_step,
    )
}

/// The loop over `sigmas` on both states in place, stepping with `stepper`.
#[allow(clippy::too_many_arguments)]
pub fn denoise_loop<M: VelocityModel + ?Sized>(
    model: &M,
    video: &mut LatentState,
    audio: &mut LatentState,
    sigmas: &[f32],
    ctx: &Contexts,
    negative: Option<&Contexts>,
    guidance: &Guidance,
    stepper: &mut Stepper<'_>,
    on_step: &mut StepCallback<'_>,
) -> std::result::Result<(), GenError> {
    let total = sigmas.len().saturating_sub(1);
    // The text side is the same in every step: prepared once here, per context.
    let ctx = TextInput::new(model, ctx)?;
    let negative = match negative {
        Some(n) if guidance.needs_unconditional() => Some(TextInput::new(model, n)?),
        _ => None,
    };
    for (step, w) in sigmas.windows(2).enumerate() {
        let (sigma, next) = (w[0], w[1]);
        let (vx0, ax0) = denoise_step(
            model,
            video,
            audio,
            sigma,
            &ctx,
            negative.as_ref(),
            guidance,
        )?;
        on_step(&StepEvent {
            step,
            total,
            video_in: &video.latent,
            audio_in: &audio.latent,
            video_denoised: &vx0,
            audio_denoised: &ax0,
        })?;
        match stepper {
            Stepper::Euler => {
                let vx0 = blend(&vx0, video)?;
                let ax0 = blend(&ax0, audio)?;
                video.latent = euler(&video.latent, &vx0, sigma, next)?;
                audio.latent = euler(&audio.latent, &ax0, sigma, next)?;
            }
            Stepper::Ancestral {
                eta,
                s_noise,
                noise,
            } => {
                // post_process_latent on the f32 prediction first (ltx-pipelines 1.2.0
                // `_ModalityStep`), video then audio.
                let vx0 = blend(&vx0.to_dtype(DType::F32)?, video)?;
                let ax0 = blend(&ax0.to_dtype(DType::F32)?, audio)?;
                video.latent = ancestral_step(video, &vx0, sigma, next, *eta, *s_noise, *noise)?;
                audio.latent = ancestral_step(audio, &ax0, sigma, next, *eta, *s_noise, *noise)?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    /// Predicts the velocity that points every token at `target` (x0 = target).
    struct TowardsTarget {
        video: Tensor,
        audio: Tensor,
    }

    impl VelocityModel for TowardsTarget {
        fn velocity(
            &self,
            v: ModalityInput<'_>,
            a: ModalityInput<'_>,
            _: &Perturbation,
        ) -> Result<(Tensor, Tensor)> {
            // x0 = x - vel * t  =>  vel = (x - target) / t (t > 0 on generated tokens).
            let vel = |x: &Tensor, target: &Tensor, t: &Tensor| {
                (x - target)?.broadcast_div(&t.clamp(1e-6, f64::MAX)?)
            };
            Ok((
                vel(v.latent, &self.video, v.timesteps)?,
                vel(a.latent, &self.audio, a.timesteps)?,
            ))
        }

        fn num_blocks(&self) -> usize {
            1
        }
    }

    fn state(x: Tensor, clean: Tensor, mask: &[f32]) -> LatentState {
        let t = x.dim(1).unwrap();
        let positions = Tensor::zeros((1, 1, t, 2), DType::F32, x.device()).unwrap();
        let denoise_mask = Tensor::new(mask, x.device())
            .unwrap()
            .reshape((1, t, 1))
            .unwrap();
        LatentState {
            latent: x,
            clean_latent: clean,
            denoise_mask,
            positions,
            base_tokens: t,
            keyframes_mask: None,
            attention_mask: None,
        }
    }

    #[test]
    fn loop_lands_on_x0_and_keeps_conditioned_tokens() {
        let d = Device::Cpu;
        let noise = Tensor::new(&[[[0.5f32, -1.0], [2.0, 0.3], [1.0, 1.0]]], &d).unwrap();
        let clean = Tensor::new(&[[[9f32, 9.0], [0.0, 0.0], [0.0, 0.0]]], &d).unwrap();
        let target = Tensor::new(&[[[1f32, 2.0], [3.0, 4.0], [5.0, 6.0]]], &d).unwrap();
        // Token 0 is conditioned (mask 0): it starts and stays at its clean value.
        let mut video = state(noise.clone(), clean.clone(), &[0.0, 1.0, 1.0]);
        video.latent = Tensor::cat(
            &[
                &clean.narrow(1, 0, 1).unwrap(),
                &noise.narrow(1, 1, 2).unwrap(),
            ],
            1,
        )
        .unwrap();
        let mut audio = state(noise.clone(), clean.clone(), &[1.0, 1.0, 1.0]);
        let model = TowardsTarget {
            video: target.clone(),
            audio: target.clone(),
        };
        let ctx = Contexts {
            video: target.clone(),
            audio: target.clone(),
        };
        let mut steps = 0;
        euler_loop(
            &model,
            &mut video,
            &mut audio,
            &crate::schedule::DISTILLED_SIGMAS,
            &ctx,
            None,
            &Guidance::disabled(),
            &mut |e| {
                steps += 1;
                assert_eq!(e.total, 8);
                Ok(())
            },
        )
        .unwrap();
        assert_eq!(steps, 8);
        let v = video
            .latent
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        let want = [9.0, 9.0, 3.0, 4.0, 5.0, 6.0];
        for (a, b) in v.iter().zip(want) {
            assert!((a - b).abs() < 1e-4, "{v:?}");
        }
        let a = audio
            .latent
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        for (x, y) in a.iter().zip([1.0, 2.0, 3.0, 4.0, 5.0, 6.0]) {
            assert!((x - y).abs() < 1e-4, "{a:?}");
        }
    }
}
