//! The official per-generation pipeline defaults (ltx-pipelines 1.0.0
//! `ltx_pipelines/utils/constants.py`: `LTX_2_PARAMS`, `LTX_2_3_PARAMS`), chosen by the
//! checkpoint's generation ([`ltx2_model::generation`]) the way `detect_params` chooses them from
//! `model_version`.

use ltx2_model::generation::Generation;

use crate::guidance::{Guidance, GuiderParams};

/// Dev-pipeline defaults of one generation. The distilled sigmas, the stage-2 noise scale and the
/// two-stage flow are the same for 2.0 and 2.3.
#[derive(Debug, Clone, PartialEq)]
pub struct PipelineParams {
    pub generation: Generation,
    /// `num_inference_steps` of the dev scheduler.
    pub num_inference_steps: u32,
    /// Video guider (`video_guider_params`); `cfg` is the user's `guidance_scale` at run time.
    pub video: GuiderParams,
    /// Audio guider (`audio_guider_params`).
    pub audio: GuiderParams,
    /// Distilled stage 1 with the ancestral sampler (ltx-pipelines 1.2.0: `model_version` >= 2.5).
    pub ancestral_stage1: bool,
    /// The CRF of the H.264 round trip ltx-pipelines applies to conditioning images (33; 18 from
    /// `model_version` 2.4 on). Our pipelines condition on the images as decoded (the goldens skip
    /// the round trip too), so this is reported, not applied.
    pub image_crf: u32,
}

impl PipelineParams {
    /// `LTX_2_PARAMS` (40 steps, STG block 29) for LTX-2; `LTX_2_3_PARAMS` (30 steps, STG block
    /// 28, the rest unchanged) for LTX-2.3. LTX-2.5 is not runnable here yet; it gets the 2.3 values.
    pub fn for_generation(generation: Generation) -> Self {
        let (steps, block) = match generation {
            Generation::Ltx2 => (40, 29),
            Generation::Ltx23 | Generation::Ltx25 => (30, 28),
        };
        let guider = |cfg: f32| GuiderParams {
            cfg,
            stg: 1.0,
            stg_blocks: vec![block],
            modality: 3.0,
            rescale: 0.7,
        };
        Self {
            generation,
            num_inference_steps: steps,
            video: guider(3.0),
            audio: guider(7.0),
            ancestral_stage1: generation == Generation::Ltx25,
            image_crf: if generation == Generation::Ltx25 {
                18
            } else {
                33
            },
        }
    }

    /// The dev guidance for one user `guidance_scale`: video cfg = `guidance_scale`, audio cfg
    /// scaled by the official audio/video ratio (7/3), STG / modality / rescale as the defaults.
    /// `guidance_scale == 1` disables all guidance (one pass per step). A model with fewer blocks
    /// than the STG block index (the tiny test models) perturbs its last block.
    pub fn guidance(&self, guidance_scale: f32, num_blocks: usize) -> Guidance {
        if GuiderParams::is_close(guidance_scale, 1.0) {
            return Guidance::disabled();
        }
        let last = num_blocks.saturating_sub(1);
        let fit = |p: &GuiderParams, cfg: f32| GuiderParams {
            cfg,
            stg_blocks: p.stg_blocks.iter().map(|&b| b.min(last)).collect(),
            ..p.clone()
        };
        let ratio = self.audio.cfg / self.video.cfg;
        Guidance {
            video: fit(&self.video, guidance_scale),
            audio: fit(&self.audio, guidance_scale * ratio),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn official_defaults_per_generation() {
        let p2 = PipelineParams::for_generation(Generation::Ltx2);
        assert_eq!(
            (p2.num_inference_steps, p2.video.stg_blocks.clone()),
            (40, vec![29])
        );
        let p23 = PipelineParams::for_generation(Generation::Ltx23);
        assert_eq!(
            (p23.num_inference_steps, p23.audio.stg_blocks.clone()),
            (30, vec![28])
        );
        let g = p23.guidance(3.0, 48);
        assert_eq!((g.video.cfg, g.audio.cfg), (3.0, 7.0));
        assert_eq!(g.video.stg_blocks, vec![28]);
        assert_eq!(p2.guidance(3.0, 2).video.stg_blocks, vec![1]);
        assert!(!p23.guidance(1.0, 48).needs_unconditional());
    }
}
