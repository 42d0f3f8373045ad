//! The engine side of an IC-LoRA request: the reference scale from the LoRAs' metadata, the
//! recipe with every LoRA taken off before stage 2, and what the response says about it.

use candle_core::Tensor;

use super::{Engine, StageClock};
use crate::api::*;
use crate::components::Models;
use crate::denoise::Contexts;
use crate::noise::NoiseSource;
use crate::pipelines::ic_lora::{ic_lora, ControlSpec};
use crate::pipelines::RunSpec;

impl Engine {
    /// The request's `reference_downscale_factor` (1 when no LoRA of the set names one).
    pub(super) fn ic_lora_factor(&self, req: &GenerateRequest) -> Result<usize, GenError> {
        match &self.loras {
            Some(state) => Ok(state.reference_downscale_factor(&req.loras)?.unwrap_or(1)),
            None => Ok(1),
        }
    }

    /// Runs `ICLoraPipeline` on the loaded model, which already carries the request's LoRAs.
    /// Returns the steps per stage and the latents to decode.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn run_ic_lora(
        &mut self,
        spec: &RunSpec<'_>,
        control: &ControlVideo,
        factor: usize,
        ctx: &Contexts,
        noise: &mut dyn NoiseSource,
        clock: &mut StageClock<'_>,
        notes: &mut Vec<String>,
    ) -> Result<(Vec<u32>, Tensor, Tensor), GenError> {
        let loras = self.loras.as_mut().ok_or_else(|| GenError::InvalidInput {
            field: "control_video",
            message: format!("{} cannot take LoRAs (a model folder can)", self.info.name),
        })?;
        let mut before_stage2 = |models: &mut Models| loras.switch(&mut *models.transformer, &[]);
        let out = ic_lora(
            &mut self.models,
            spec,
            &ControlSpec {
                frames: &control.frames,
                strength: control.strength,
                attention_strength: control.attention_strength,
                downscale_factor: factor,
                skip_stage_2: false,
            },
            ctx,
            noise,
            &mut before_stage2,
            clock,
        )?;
        let used = control.frames.len().min(spec.num_frames);
        notes.push(format!(
            "IC-LoRA: {used} of the control video's {} frames read at {}x{} (1/{factor} of the {}x{} first stage), strength {}, attention strength {}; stage 2 ran without LoRAs",
            control.frames.len(),
            spec.width / 2 / factor,
            spec.height / 2 / factor,
            spec.width / 2,
            spec.height / 2,
            control.strength,
            control.attention_strength,
        ));
        if used < spec.num_frames {
            notes.push(format!(
                "the control video has {used} frames for {} output frames: the reference covers the first {} (the VAE keeps 8k + 1 frames)",
                spec.num_frames,
                ((used - 1) / 8) * 8 + 1
            ));
        }
        let last = out.final_latents();
        Ok((
            vec![8, 3],
            last.video_latent.clone(),
            last.audio_latent.clone(),
        ))
    }
}
