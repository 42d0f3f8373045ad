//! ltx-pipelines `ICLoraPipeline`: a control video (depth, pose, edges, ...) steers the
//! generation through an in-context LoRA. Stage 1 at half size runs the distilled sigmas on the
//! model with the IC-LoRA fused and the control video's latent appended as reference tokens
//! (`VideoConditionByReferenceLatent`); stage 2 (x2 upsample + the distilled refinement) runs on
//! the model *without any LoRA* and without the reference, exactly as upstream's second model
//! ledger (`loras=[]`) does.

use candle_core::Tensor;

use super::{check_two_stage_size, half_size_stage1, refine, RunSpec, StageHook};
use crate::api::{GenError, RgbImage};
use crate::components::Models;
use crate::conditioning::ReferenceCondition;
use crate::denoise::{Contexts, Stepper};
use crate::guidance::Guidance;
use crate::noise::NoiseSource;
use crate::schedule::DISTILLED_SIGMAS;
use crate::stage::StageOutput;

/// The IC-LoRA metadata key (safetensors header) giving the output/reference size ratio the LoRA
/// was trained with.
pub const REFERENCE_DOWNSCALE_FACTOR_KEY: &str = "reference_downscale_factor";

/// The control video and how it conditions.
#[derive(Debug, Clone)]
pub struct ControlSpec<'a> {
    /// Decoded frames in display order; only the first `num_frames` are used.
    pub frames: &'a [RgbImage],
    /// Denoise strength of the reference tokens (1 = kept clean).
    pub strength: f32,
    /// Attention weight between generated and reference tokens, in [0, 1]
    /// (`conditioning_attention_strength`).
    pub attention_strength: f32,
    /// From the IC-LoRA's metadata (1 when it has none).
    pub downscale_factor: usize,
    /// Decode stage 1 at half size (upstream's `skip_stage_2`).
    pub skip_stage_2: bool,
}

/// What the recipe produces before decoding.
#[derive(Debug, Clone)]
pub struct IcLoraOutput {
    /// The encoded control video (stage-1 reference latent).
    pub reference_latent: Tensor,
    pub stage1: StageOutput,
    /// The x2-upsampled stage-1 video and stage 2's result; `None` with `skip_stage_2`.
    pub stage2: Option<(Tensor, StageOutput)>,
}

impl IcLoraOutput {
    /// The latents to decode (stage 2's, or stage 1's when it was skipped).
    pub fn final_latents(&self) -> &StageOutput {
        self.stage2.as_ref().map_or(&self.stage1, |(_, s)| s)
    }
}

/// ltx-pipelines `ICLoraPipeline._create_conditionings`' reference size check: the stage-1 size
/// divided by the factor, which the VAE must be able to encode (multiples of 32).
pub fn reference_size(
    spec: &RunSpec<'_>,
    downscale_factor: usize,
) -> Result<(usize, usize), GenError> {
    let (h1, w1) = (spec.height / 2, spec.width / 2);
    let f = downscale_factor.max(1);
    if !h1.is_multiple_of(f)
        || !w1.is_multiple_of(f)
        || !(h1 / f).is_multiple_of(32)
        || !(w1 / f).is_multiple_of(32)
    {
        return Err(GenError::InvalidInput {
            field: "control_video",
            message: format!(
                "the IC-LoRA reads its control video at 1/{f} of the {w1}x{h1} first stage, which must be a multiple of 32 pixels; choose a width and height that are multiples of {}",
                64 * f
            ),
        });
    }
    Ok((h1 / f, w1 / f))
}

/// Runs the recipe. `models` carry the request's LoRAs (the IC-LoRA among them) for stage 1;
/// `before_stage2` must take every LoRA off (upstream's stage-2 model has none).
#[allow(clippy::too_many_arguments)]
pub fn ic_lora(
    m: &mut Models,
    spec: &RunSpec<'_>,
    control: &ControlSpec<'_>,
    ctx: &Contexts,
    noise: &mut dyn NoiseSource,
    before_stage2: &mut dyn FnMut(&mut Models) -> Result<(), GenError>,
    hook: &mut StageHook<'_>,
) -> Result<IcLoraOutput, GenError> {
    check_two_stage_size(spec)?;
    if control.frames.is_empty() {
        return Err(GenError::InvalidInput {
            field: "control_video",
            message: "the control video has no frames".into(),
        });
    }
    let (ref_h, ref_w) = reference_size(spec, control.downscale_factor)?;
    hook.stage("control_encode")?;
    let frames = &control.frames[..control.frames.len().min(spec.num_frames)];
    let reference_latent = m.encode_video(frames, ref_h, ref_w)?;
    let reference = ReferenceCondition {
        latent: reference_latent.clone(),
        downscale_factor: control.downscale_factor.max(1),
        strength: control.strength,
        attention_strength: (control.attention_strength < 1.0)
            .then_some(control.attention_strength),
    };
    let stage1 = half_size_stage1(
        m,
        spec,
        &DISTILLED_SIGMAS,
        ctx,
        None,
        &Guidance::disabled(),
        noise,
        &mut Stepper::Euler,
        Some(&reference),
        hook,
    )?;
    if control.skip_stage_2 {
        return Ok(IcLoraOutput {
            reference_latent,
            stage1,
            stage2: None,
        });
    }
    hook.stage("upsample")?;
    let upscaled = m.upsample(&stage1.video_latent)?;
    before_stage2(m)?;
    let out = refine(m, spec, ctx, stage1, upscaled, noise, hook)?;
    Ok(IcLoraOutput {
        reference_latent,
        stage1: out.stage1,
        stage2: Some((out.upscaled_video_latent, out.stage2)),
    })
}
