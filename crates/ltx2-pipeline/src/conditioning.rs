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
    /// Appended as keyframe tokens even at frame 0 (`image_conditionings_by_adding_guiding_latent`).
    pub guiding: bool,
}

impl VideoCondition {
    /// Frame 0 replaces the first latent frame (`VideoConditionByLatentIndex(latent_idx=0)`); any
    /// other frame, or every frame when `guiding`, is appended as keyframe tokens
    /// (`VideoConditionByKeyframeIndex`), as `combined_image_conditionings` /
    /// `image_conditionings_by_adding_guiding_latent` do.
    pub fn apply(&self, state: &mut LatentState, fps: f32) -> Result<()> {
        if self.frame_index == 0 && !self.guiding {
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
/// one-frame latent shifted by `frame_index` pixel frames, with the causal fix only at frame 0
/// (ltx-core `VideoConditionByKeyframeIndex`).
pub fn append_keyframe(
    state: &mut LatentState,
    latent: &Tensor,
    frame_index: usize,
    strength: f32,
    fps: f32,
) -> Result<()> {
    let shape = VideoLatentShape::from_dims(latent.dims())?;
    let positions = video_positions(
        shape,
        fps,
        frame_index == 0,
        frame_index,
        state.latent.device(),
    )?;
    append_tokens(state, latent, &positions, strength, None)
}

/// ltx-core `VideoConditionByReferenceLatent` (IC-LoRA): the reference video's tokens appended
/// after the existing ones with mask `1 - strength`, positions of its own latent grid (causal
/// fix, time in seconds) with height and width multiplied by `downscale_factor` (the reference
/// was encoded at `1 / factor` of the size); wrapped in `ConditioningItemAttentionStrengthWrapper`
/// when `attention_strength` is given: the generated tokens and the reference attend to each
/// other with that weight.
pub fn append_reference(
    state: &mut LatentState,
    latent: &Tensor,
    downscale_factor: usize,
    strength: f32,
    attention_strength: Option<f32>,
    fps: f32,
) -> Result<()> {
    let shape = VideoLatentShape::from_dims(latent.dims())?;
    let mut positions = video_positions(shape, fps, true, 0, state.latent.device())?;
    if downscale_factor != 1 {
        let f = downscale_factor as f64;
        let t = positions.narrow(1, 0, 1)?;
        let hw = (positions.narrow(1, 1, 2)? * f)?;
        positions = Tensor::cat(&[&t, &hw], 1)?;
    }
    append_tokens(state, latent, &positions, strength, attention_strength)
}

/// Appends `latent`'s tokens with `positions` (f32, converted to the state's dtype) and mask
/// `1 - strength`; they get no keyframe embedding mark; the attention mask grows first (it reads
/// the token count before the append).
fn append_tokens(
    state: &mut LatentState,
    latent: &Tensor,
    positions: &Tensor,
    strength: f32,
    attention_strength: Option<f32>,
) -> Result<()> {
    let tokens = patchify_video(&latent.to_dtype(state.latent.dtype())?)?;
    let n = tokens.dim(1)?;
    let positions = positions.to_dtype(state.positions.dtype())?;
    let mask = Tensor::full(1.0 - strength, (1, n, 1), state.latent.device())?
        .to_dtype(state.denoise_mask.dtype())?;
    extend_attention_mask(state, n, attention_strength)?;
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

/// ltx-core `update_attention_mask` / `build_attention_mask` for `m` tokens about to be appended
/// to `state` (call before appending them). With a `cross` weight, or when a mask exists already,
/// the `(1, N+M, N+M)` mask keeps the old block, lets the new tokens attend to themselves (1),
/// sets `cross` between them and the generated tokens (both directions) and 0 between them and
/// earlier conditioning tokens; without either it stays `None` (full attention).
fn extend_attention_mask(state: &mut LatentState, m: usize, cross: Option<f32>) -> Result<()> {
    let cross = match (cross, &state.attention_mask) {
        (None, None) => return Ok(()),
        (Some(c), _) => c,
        (None, Some(_)) => 1.0,
    };
    let n = state.latent.dim(1)?;
    let noisy = state.base_tokens;
    let total = n + m;
    let old = match &state.attention_mask {
        Some(a) => a
            .to_dtype(candle_core::DType::F32)?
            .flatten_all()?
            .to_vec1::<f32>()?,
        None => vec![1.0; n * n],
    };
    let mut w = vec![0f32; total * total];
    for i in 0..n {
        w[i * total..i * total + n].copy_from_slice(&old[i * n..(i + 1) * n]);
    }
    for i in n..total {
        for j in n..total {
            w[i * total + j] = 1.0;
        }
        for j in 0..noisy {
            w[i * total + j] = cross;
            w[j * total + i] = cross;
        }
    }
    let dtype = state.latent.dtype();
    state.attention_mask =
        Some(Tensor::from_vec(w, (1, total, total), state.latent.device())?.to_dtype(dtype)?);
    Ok(())
}

/// An encoded reference (control) video for an IC-LoRA (see [`append_reference`]).
#[derive(Debug, Clone)]
pub struct ReferenceCondition {
    /// Normalized VAE latent `(1, C, F, h, w)` of the control video at `1 / downscale_factor` of
    /// the stage's size.
    pub latent: Tensor,
    pub downscale_factor: usize,
    pub strength: f32,
    /// Weight between generated and reference tokens; `None` = plain attention (ltx-pipelines
    /// wraps the item only for a strength below 1).
    pub attention_strength: Option<f32>,
}

impl ReferenceCondition {
    pub fn apply(&self, state: &mut LatentState, fps: f32) -> Result<()> {
        append_reference(
            state,
            &self.latent,
            self.downscale_factor,
            self.strength,
            self.attention_strength,
            fps,
        )
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device};

    /// ltx-core `build_attention_mask`'s block structure when a keyframe is appended after a
    /// weighted reference: the keyframe attends the generated tokens fully (1) and the reference
    /// not at all (0); the reference keeps its weight with the generated tokens.
    #[test]
    fn attention_mask_grows_blockwise() -> Result<()> {
        let d = Device::Cpu;
        let shape = VideoLatentShape {
            channels: 2,
            frames: 1,
            height: 1,
            width: 2,
        };
        let mut state = LatentState::video(shape, 24.0, None, DType::F32, &d)?;
        let one_token = Tensor::ones((1, 2, 1, 1, 1), DType::F32, &d)?;
        append_reference(&mut state, &one_token, 1, 1.0, Some(0.5), 24.0)?;
        append_keyframe(&mut state, &one_token, 8, 1.0, 24.0)?;
        let m = state
            .attention_mask
            .expect("a mask")
            .squeeze(0)?
            .to_vec2::<f32>()?;
        assert_eq!(
            m,
            vec![
                vec![1.0, 1.0, 0.5, 1.0],
                vec![1.0, 1.0, 0.5, 1.0],
                vec![0.5, 0.5, 1.0, 0.0],
                vec![1.0, 1.0, 0.0, 1.0],
            ]
        );
        Ok(())
    }
}
