//! One sampling stage (ltx-pipelines `denoise_audio_video` / `denoise_video_only`): build both
//! latent states, apply the conditionings, noise, run the Euler loop, drop appended tokens and
//! unpatchify.

use candle_core::{DType, Device, Tensor};

use crate::api::GenError;
use crate::conditioning::{condition_audio, ReferenceCondition, VideoCondition};
use crate::denoise::{denoise_loop, Contexts, StepCallback, Stepper, VelocityModel};
use crate::guidance::Guidance;
use crate::latents::{
    unpatchify_audio, unpatchify_video, AudioLatentShape, LatentState, VideoLatentShape,
};
use crate::noise::NoiseSource;

/// Everything one stage needs besides the model, the text and the noise.
#[derive(Debug, Clone)]
pub struct StagePlan<'a> {
    pub video_shape: VideoLatentShape,
    pub audio_shape: AudioLatentShape,
    pub fps: f32,
    /// Encoded image conditionings at this stage's latent size.
    pub video_conditions: &'a [VideoCondition],
    /// IC-LoRA reference video, appended after the image conditionings.
    pub reference: Option<&'a ReferenceCondition>,
    /// Normalized `(1, C, F, H, W)` latent the video starts from (stage 2: the upsampled one).
    pub initial_video: Option<&'a Tensor>,
    /// `(1, 8, T, 16)` latent the audio starts from (stage 2: stage 1's; A2V: the encoded clip).
    pub initial_audio: Option<&'a Tensor>,
    /// `Some(strength)` when `initial_audio` is conditioning audio (mask `1 - strength`).
    pub audio_strength: Option<f32>,
    /// `s` in `x = eps * mask * s + x * (1 - mask * s)`: 1 for stage 1, `sigmas[0]` for stage 2.
    pub noise_scale: f32,
    pub sigmas: &'a [f32],
}

/// Unpatchified results of a stage.
#[derive(Debug, Clone)]
pub struct StageOutput {
    pub video_latent: Tensor,
    pub audio_latent: Tensor,
}

/// The initial (noised) states of a stage, before any step: also what the tests compare with
/// the goldens' positions, masks and clean latents.
pub fn initial_states(
    plan: &StagePlan<'_>,
    noise: &mut dyn NoiseSource,
    dtype: DType,
    device: &Device,
) -> candle_core::Result<(LatentState, LatentState)> {
    let mut video = LatentState::video(
        plan.video_shape,
        plan.fps,
        plan.initial_video,
        dtype,
        device,
    )?;
    for c in plan.video_conditions {
        c.apply(&mut video, plan.fps)?;
    }
    if let Some(r) = plan.reference {
        r.apply(&mut video, plan.fps)?;
    }
    let mut audio = LatentState::audio(plan.audio_shape, plan.initial_audio, dtype, device)?;
    if let Some(strength) = plan.audio_strength {
        condition_audio(&mut audio, strength)?;
    }
    let vn = noise.draw(video.latent.dims(), dtype, device)?;
    let an = noise.draw(audio.latent.dims(), dtype, device)?;
    video.add_noise(&vn, plan.noise_scale)?;
    audio.add_noise(&an, plan.noise_scale)?;
    Ok((video, audio))
}

/// Runs one stage end to end with the Euler stepper.
#[allow(clippy::too_many_arguments)]
pub fn run_stage<M: VelocityModel + ?Sized>(
    model: &M,
    plan: &StagePlan<'_>,
    ctx: &Contexts,
    negative: Option<&Contexts>,
    guidance: &Guidance,
    noise: &mut dyn NoiseSource,
    on_step: &mut StepCallback<'_>,
) -> Result<StageOutput, GenError> {
    run_stage_with(
        model,
        plan,
        ctx,
        negative,
        guidance,
        noise,
        &mut Stepper::Euler,
        on_step,
    )
}

/// [`run_stage`] with another stepper (the ancestral one of LTX-2.5's distilled stage 1).
#[allow(clippy::too_many_arguments)]
pub fn run_stage_with<M: VelocityModel + ?Sized>(
    model: &M,
    plan: &StagePlan<'_>,
    ctx: &Contexts,
    negative: Option<&Contexts>,
    guidance: &Guidance,
    noise: &mut dyn NoiseSource,
    stepper: &mut Stepper<'_>,
    on_step: &mut StepCallback<'_>,
) -> Result<StageOutput, GenError> {
    let dtype = ctx.video.dtype();
    let device = ctx.video.device().clone();
    let (mut video, mut audio) = initial_states(plan, noise, dtype, &device)?;
    denoise_loop(
        model,
        &mut video,
        &mut audio,
        plan.sigmas,
        ctx,
        negative,
        guidance,
        stepper,
        on_step,
    )?;
    let video_latent = unpatchify_video(&video.generated_tokens()?, plan.video_shape)?;
    let audio_latent = unpatchify_audio(&audio.generated_tokens()?, plan.audio_shape)?;
    Ok(StageOutput {
        video_latent,
        audio_latent,
    })
}
