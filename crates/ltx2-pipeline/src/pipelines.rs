//! The sampling recipes: distilled two-stage (ltx-pipelines `DistilledPipeline`), one-stage
//! (distilled sigmas, or the dev scheduler with guidance), on already-encoded text contexts.

use candle_core::Tensor;

pub mod ic_lora;
pub mod retake;

use crate::api::GenError;
use crate::components::{ConditionImage, Models};
use crate::conditioning::{ReferenceCondition, VideoCondition};
use crate::denoise::Stepper;
use crate::denoise::{Contexts, StepEvent};
use crate::guidance::Guidance;
use crate::latents::{AudioLatentShape, VideoLatentShape};
use crate::noise::NoiseSource;
use crate::schedule::{DISTILLED_SIGMAS, STAGE2_DISTILLED_SIGMAS};
use crate::stage::{run_stage, run_stage_with, StageOutput, StagePlan};

/// An image pinned to a pixel frame.
#[derive(Debug, Clone)]
pub struct ImageInput {
    pub image: ConditionImage,
    pub frame_index: usize,
    pub strength: f32,
}

/// Encoded conditioning audio (`(1, 8, T, 16)`, already conformed to the video length).
#[derive(Debug, Clone)]
pub struct AudioInput {
    pub latent: Tensor,
    pub strength: f32,
}

/// Size, length and conditioning of one run. `width`/`height` are the rendered size (multiples
/// of 32; of 64 for the two-stage recipe).
#[derive(Debug, Clone)]
pub struct RunSpec<'a> {
    pub width: usize,
    pub height: usize,
    pub num_frames: usize,
    pub fps: f32,
    pub images: &'a [ImageInput],
    pub audio: Option<&'a AudioInput>,
    /// Every image, frame 0 included, is appended as guiding keyframe tokens (ltx-pipelines
    /// `image_conditionings_by_adding_guiding_latent`, `KeyframeInterpolationPipeline`) instead of
    /// frame 0 replacing the first latent frame (`combined_image_conditionings`).
    pub guiding_keyframes: bool,
}

/// Watches a run: stage boundaries (`denoise`; `stage1`, `upsample`, `stage2`) and every step.
/// Returning an error (e.g. [`GenError::Cancelled`]) stops the run. Any
/// `FnMut(&str, &StepEvent) -> Result<(), GenError>` is an observer that only watches steps.
pub trait RunObserver {
    fn stage(&mut self, _name: &str) -> Result<(), GenError> {
        Ok(())
    }

    fn step(&mut self, stage: &str, event: &StepEvent<'_>) -> Result<(), GenError>;
}

impl<F: FnMut(&str, &StepEvent<'_>) -> Result<(), GenError>> RunObserver for F {
    fn step(&mut self, stage: &str, event: &StepEvent<'_>) -> Result<(), GenError> {
        self(stage, event)
    }
}

/// The observer argument of the recipes.
pub type StageHook<'a> = dyn RunObserver + 'a;

/// Everything the two-stage recipe produces before decoding.
#[derive(Debug, Clone)]
pub struct TwoStageOutput {
    pub stage1: StageOutput,
    pub upscaled_video_latent: Tensor,
    pub stage2: StageOutput,
}

fn conditions(
    m: &Models,
    spec: &RunSpec<'_>,
    height: usize,
    width: usize,
) -> Result<Vec<VideoCondition>, GenError> {
    spec.images
        .iter()
        .map(|img| {
            let latent = m.encode_image(&img.image, height, width)?;
            Ok(VideoCondition {
                latent,
                frame_index: img.frame_index,
                strength: img.strength,
                guiding: spec.guiding_keyframes,
            })
        })
        .collect()
}

fn shapes(
    m: &Models,
    spec: &RunSpec<'_>,
    height: usize,
    width: usize,
) -> (VideoLatentShape, AudioLatentShape) {
    (
        VideoLatentShape::from_pixels(m.latent_channels(), spec.num_frames, height, width),
        AudioLatentShape::from_video(spec.num_frames, spec.fps as f64),
    )
}

/// One stage at the full size: the distilled sigmas without guidance (`DistilledOneStage`), or
/// the dev scheduler's sigmas with guidance (`Dev`).
#[allow(clippy::too_many_arguments)]
pub fn one_stage(
    m: &Models,
    spec: &RunSpec<'_>,
    sigmas: &[f32],
    ctx: &Contexts,
    negative: Option<&Contexts>,
    guidance: &Guidance,
    noise: &mut dyn NoiseSource,
    hook: &mut StageHook<'_>,
) -> Result<StageOutput, GenError> {
    hook.stage("denoise")?;
    let (vshape, ashape) = shapes(m, spec, spec.height, spec.width);
    let conds = conditions(m, spec, spec.height, spec.width)?;
    let plan = StagePlan {
        video_shape: vshape,
        audio_shape: ashape,
        fps: spec.fps,
        video_conditions: &conds,
        reference: None,
        initial_video: None,
        initial_audio: spec.audio.map(|a| &a.latent),
        audio_strength: spec.audio.map(|a| a.strength),
        noise_scale: 1.0,
        sigmas,
    };
    run_stage(
        m.transformer.as_ref(),
        &plan,
        ctx,
        negative,
        guidance,
        noise,
        &mut |e| hook.step("denoise", e),
    )
}

/// ltx-pipelines 1.2.0 `DistilledPipeline` for `model_version` >= 2.5: stage 1 is sampled with
/// `EulerAncestralDiffusionStep(eta = 1, s_noise = 1)` (`ANCESTRAL_ETA`, `ANCESTRAL_S_NOISE`).
pub const ANCESTRAL_ETA: f32 = 1.0;
pub const ANCESTRAL_S_NOISE: f32 = 1.0;
/// The ancestral noise comes from its own generator seeded `seed + ANCESTRAL_NOISE_SEED_OFFSET`.
pub const ANCESTRAL_NOISE_SEED_OFFSET: u64 = 10_000;

/// The distilled recipe: 8 steps at half size, x2 latent upsample, 3 steps at full size
/// re-noised at `STAGE2_DISTILLED_SIGMAS[0]` (video and audio), images re-encoded per stage.
/// With `ancestral_noise` (LTX-2.5), stage 1 steps with the ancestral sampler drawing from it.
pub fn distilled_two_stage(
    m: &Models,
    spec: &RunSpec<'_>,
    ctx: &Contexts,
    noise: &mut dyn NoiseSource,
    ancestral_noise: Option<&mut dyn NoiseSource>,
    hook: &mut StageHook<'_>,
) -> Result<TwoStageOutput, GenError> {
    check_two_stage_size(spec)?;
    let mut stepper = match ancestral_noise {
        Some(noise) => Stepper::Ancestral {
            eta: ANCESTRAL_ETA,
            s_noise: ANCESTRAL_S_NOISE,
            noise,
        },
        None => Stepper::Euler,
    };
    let stage1 = half_size_stage1(
        m,
        spec,
        &DISTILLED_SIGMAS,
        ctx,
        None,
        &Guidance::disabled(),
        noise,
        &mut stepper,
        None,
        hook,
    )?;
    hook.stage("upsample")?;
    let upscaled = m.upsample(&stage1.video_latent)?;
    refine(m, spec, ctx, stage1, upscaled, noise, hook)
}

/// Stage 1 of the two-stage recipes: at half the rendered size, images encoded at that size,
/// the conditioning audio (if any) as the initial audio latent.
#[allow(clippy::too_many_arguments)]
pub(crate) fn half_size_stage1(
    m: &Models,
    spec: &RunSpec<'_>,
    sigmas: &[f32],
    ctx: &Contexts,
    negative: Option<&Contexts>,
    guidance: &Guidance,
    noise: &mut dyn NoiseSource,
    stepper: &mut Stepper<'_>,
    reference: Option<&ReferenceCondition>,
    hook: &mut StageHook<'_>,
) -> Result<StageOutput, GenError> {
    hook.stage("stage1")?;
    let (h1, w1) = (spec.height / 2, spec.width / 2);
    let (vshape1, ashape) = shapes(m, spec, h1, w1);
    let conds1 = conditions(m, spec, h1, w1)?;
    let plan1 = StagePlan {
        video_shape: vshape1,
        audio_shape: ashape,
        fps: spec.fps,
        video_conditions: &conds1,
        reference,
        initial_video: None,
        initial_audio: spec.audio.map(|a| &a.latent),
        audio_strength: spec.audio.map(|a| a.strength),
        noise_scale: 1.0,
        sigmas,
    };
    run_stage_with(
        m.transformer.as_ref(),
        &plan1,
        ctx,
        negative,
        guidance,
        noise,
        stepper,
        &mut |e| hook.step("stage1", e),
    )
}

pub(crate) fn check_two_stage_size(spec: &RunSpec<'_>) -> Result<(), GenError> {
    if !spec.width.is_multiple_of(64) || !spec.height.is_multiple_of(64) {
        return Err(GenError::InvalidInput {
            field: "width",
            message: format!(
                "the two-stage recipe renders multiples of 64, got {}x{}",
                spec.width, spec.height
            ),
        });
    }
    Ok(())
}

/// Stage 2 of both two-stage recipes: the upscaled video and the stage-1 audio re-noised at
/// `STAGE2_DISTILLED_SIGMAS[0]`, 3 Euler steps without guidance at full size, images
/// re-encoded at that size.
pub(crate) fn refine(
    m: &Models,
    spec: &RunSpec<'_>,
    ctx: &Contexts,
    stage1: StageOutput,
    upscaled: Tensor,
    noise: &mut dyn NoiseSource,
    hook: &mut StageHook<'_>,
) -> Result<TwoStageOutput, GenError> {
    hook.stage("stage2")?;
    let (vshape2, ashape) = shapes(m, spec, spec.height, spec.width);
    let conds2 = conditions(m, spec, spec.height, spec.width)?;
    let plan2 = StagePlan {
        video_shape: vshape2,
        audio_shape: ashape,
        fps: spec.fps,
        video_conditions: &conds2,
        reference: None,
        initial_video: Some(&upscaled),
        initial_audio: Some(&stage1.audio_latent),
        audio_strength: spec.audio.map(|a| a.strength),
        noise_scale: STAGE2_DISTILLED_SIGMAS[0],
        sigmas: &STAGE2_DISTILLED_SIGMAS,
    };
    let stage2 = run_stage(
        m.transformer.as_ref(),
        &plan2,
        ctx,
        None,
        &Guidance::disabled(),
        noise,
        &mut |e| hook.step("stage2", e),
    )?;
    Ok(TwoStageOutput {
        stage1,
        upscaled_video_latent: upscaled,
        stage2,
    })
}

/// ltx-pipelines `TI2VidTwoStagesPipeline`, the official dev recipe: stage 1 at half size with
/// the dev scheduler's `sigmas` and full guidance (CFG with `negative`, STG, modality isolation,
/// rescale) on the model as loaded (with the request's LoRAs), x2 latent upsample, then
/// `before_stage2` (which fuses the generation's distilled LoRA on top) and the distilled stage 2.
#[allow(clippy::too_many_arguments)]
pub fn dev_two_stage(
    m: &mut Models,
    spec: &RunSpec<'_>,
    sigmas: &[f32],
    ctx: &Contexts,
    negative: Option<&Contexts>,
    guidance: &Guidance,
    noise: &mut dyn NoiseSource,
    before_stage2: &mut dyn FnMut(&mut Models) -> Result<(), GenError>,
    hook: &mut StageHook<'_>,
) -> Result<TwoStageOutput, GenError> {
    check_two_stage_size(spec)?;
    let stage1 = half_size_stage1(
        m,
        spec,
        sigmas,
        ctx,
        negative,
        guidance,
        noise,
        &mut Stepper::Euler,
        None,
        hook,
    )?;
    hook.stage("upsample")?;
    let upscaled = m.upsample(&stage1.video_latent)?;
    before_stage2(m)?;
    refine(m, spec, ctx, stage1, upscaled, noise, hook)
}
