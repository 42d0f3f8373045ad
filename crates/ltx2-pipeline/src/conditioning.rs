//! Conditioning items that edit a [`LatentState`] before noising (ltx-core
//! `conditioning/types/{latent_cond,keyframe_cond}.py`, ltx-pipelines `denoise_video_only`).
//!
//! `strength` enters only through the denoise mask `m = 1 - strength`: initial noise
//! `x = eps*m*s + clean*(1 - m*s)`, per-token timestep `m*sigma`, and the x0 blend
//! `x0*m + clean*(1 - m)` after every prediction.

use candle_core::{Result, Tensor};

use crate::latents::{patchify_video, video_positions, LatentState, VideoLatentShape};

/// An encoded image pinned to a video frame.
#[derive(Debug, Clone)]
pub struct VideoCondition {
    /// Normalized VAE latent of one image, `(1, C, 1, h, w)` at the stage's latent size.
    pub latent: Tensor,
    /// Pixel frame index it conditions.
    pub frame_index: usize,
    pub strength: f32,
}

impl VideoCondition {
    /// Frame 0 replaces the first latent frame (`VideoConditionByLatentIndex(latent_idx=0)`); any
    /// other frame is appended as keyframe tokens (`VideoConditionByKeyframeIndex`), as
    /// `combined_image_conditionings` does.
    pub fn apply(&self, state: &mut LatentState, fps: f32) -> Result<()> {
        if self.frame_index == 0 {
            replace_latent_frame(state, &self.latent, 0, self.strength)
        } else {
            append_keyframe(state, &self.latent, self.frame_index, self.strength, fps)
        }
    }
}

/// Overwrites the tokens of latent frame `latent_idx` in `latent` and `clean_latent` with the
/// image tokens and sets their mask to `1 - strength`.
pub fn replace_latent_frame(
    state: &mut LatentState,
    latent: &Tensor,
    latent_idx: usize,
    strength: f32,
) -> Result<()> {
    let tokens = patchify_video(&latent.to_dtype(state.latent.dtype())?)?;
    let n = tokens.dim(1)?;
    let start = latent_idx * n;
    if start + n > state.base_tokens {
        candle_core::bail!(
            "conditioning latent frame {latent_idx} is outside the {} video tokens",
            state.base_tokens
        );
    }
    let mask = Tensor::full(1.0 - strength, (1, n, 1), state.denoise_mask.device())?
        .to_dtype(state.denoise_mask.dtype())?;
    state.latent = state.latent.slice_scatter(&tokens, 1, start)?;
    state.clean_latent = state.clean_latent.slice_scatter(&tokens, 1, start)?;
    state.denoise_mask = state.denoise_mask.slice_scatter(&mask, 1, start)?;
    Ok(())
}

/// Appends the image tokens after the existing ones with mask `1 - strength`, positions of a
/// one-frame latent without the causal fix shifted by `frame_index` pixel frames.
pub fn append_keyframe(
    state: &mut LatentState,
    latent: &Tensor,
    frame_index: usize,
    strength: f32,
    fps: f32,
) -> Result<()> {
    let shape = VideoLatentShape::from_dims(latent.dims())?;
    let tokens = patchify_video(&latent.to_dtype(state.latent.dtype())?)?;
    let n = tokens.dim(1)?;
    let device = state.latent.device().clone();
    let positions = video_positions(shape, fps, false, frame_index, &device)?
        .to_dtype(state.positions.dtype())?;
    let mask =
        Tensor::full(1.0 - strength, (1, n, 1), &device)?.to_dtype(state.denoise_mask.dtype())?;
    state.latent = Tensor::cat(&[&state.latent, &tokens], 1)?;
    state.clean_latent = Tensor::cat(&[&state.clean_latent, &tokens], 1)?;
    state.denoise_mask = Tensor::cat(&[&state.denoise_mask, &mask], 1)?;
    state.positions = Tensor::cat(&[&state.positions, &positions], 2)?;
    if let Some(k) = &state.keyframes_mask {
        state.keyframes_mask = Some(Tensor::cat(
            &[k, &mask.zeros_like()?.to_dtype(k.dtype())?],
            1,
        )?);
    }
    Ok(())
}

/// Audio conditioning: the whole audio state starts from the encoded clip with mask
/// `1 - strength`. Strength 1 is the official audio-to-video (`denoise_video_only`: audio tokens
/// frozen at timestep 0, still driving the video through cross-attention); 0 is plain joint
/// generation. (`audio_strength` is not an upstream concept; this is the generalisation of
/// architecture doc §6.2.)
pub fn condition_audio(state: &mut LatentState, strength: f32) -> Result<()> {
    state.denoise_mask = (state.denoise_mask.ones_like()? * (1.0 - strength) as f64)?;
    Ok(())
}
