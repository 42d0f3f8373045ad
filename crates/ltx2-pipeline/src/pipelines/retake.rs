//! ltx-pipelines `RetakePipeline`: regenerate the part of a clip between two times and keep the
//! rest. The clip's frames and audio are encoded into the initial latents; a per-token temporal
//! mask (`TemporalRegionMask`) sets `denoise_mask = 1` on the tokens whose time span overlaps
//! `[start, end)` and 0 elsewhere, per modality (a modality that is not regenerated gets an
//! all-zero mask and is kept); one stage at the clip's size, guided (dev) or with the distilled
//! sigmas. Also the base of our `extend` (a retake of the span after the clip on a longer canvas).

use candle_core::{DType, Device, Tensor};

use super::StageHook;
use crate::api::{AudioClip, GenError, RgbImage};
use crate::components::Models;
use crate::denoise::{denoise_loop, Contexts, Stepper};
use crate::guidance::Guidance;
use crate::latents::{
    audio_positions, unpatchify_audio, unpatchify_video, video_positions, AudioLatentShape,
    LatentState, VideoLatentShape,
};
use crate::noise::NoiseSource;
use crate::stage::StageOutput;

/// A time span `[start, end)` in seconds to regenerate in one modality; `None` keeps the
/// modality as given.
pub type Span = Option<(f64, f64)>;

/// The clip to work on, already at a size the VAE takes (multiples of 32, `8k + 1` frames).
#[derive(Debug, Clone)]
pub struct RetakeSpec<'a> {
    /// Frames in display order, all `width x height`.
    pub frames: &'a [RgbImage],
    pub width: usize,
    pub height: usize,
    pub fps: f32,
    /// The clip's audio (encoded, trimmed or zero-padded to the video's length); `None`: the
    /// audio is generated from noise everywhere.
    pub audio: Option<&'a AudioClip>,
    pub video_span: Span,
    pub audio_span: Span,
}

/// What the recipe produces before decoding, and the masks it used (token layout `(1, T, 1)`).
#[derive(Debug, Clone)]
pub struct RetakeOutput {
    pub clip_video_latent: Tensor,
    pub clip_audio_latent: Option<Tensor>,
    pub video_mask: Tensor,
    pub audio_mask: Tensor,
    pub latents: StageOutput,
}

/// `image` padded to `width x height` by repeating its edge pixels, centred.
pub fn pad_edges(image: &RgbImage, width: usize, height: usize) -> RgbImage {
    let (w, h) = (image.width as usize, image.height as usize);
    let (left, top) = ((width - w) / 2, (height - h) / 2);
    let mut data = vec![0u8; width * height * 3];
    for y in 0..height {
        let sy = y.saturating_sub(top).min(h - 1);
        for x in 0..width {
            let sx = x.saturating_sub(left).min(w - 1);
            let (s, d) = ((sy * w + sx) * 3, (y * width + x) * 3);
            data[d..d + 3].copy_from_slice(&image.data[s..s + 3]);
        }
    }
    RgbImage {
        width: width as u32,
        height: height as u32,
        data,
    }
}

/// The canvas the VAE can take: frames padded to multiples of 32 and to `8k + 1` frames (at
/// least `frames`), by repeating edges and the last frame.
pub fn canvas(clip: &[RgbImage], frames: usize) -> (Vec<RgbImage>, usize, usize) {
    let (w, h) = (clip[0].width as usize, clip[0].height as usize);
    let (cw, ch) = (w.div_ceil(32) * 32, h.div_ceil(32) * 32);
    let total = (frames.max(clip.len()) - 1).div_ceil(8) * 8 + 1;
    let mut out: Vec<RgbImage> = clip.iter().map(|f| pad_edges(f, cw, ch)).collect();
    while out.len() < total {
        out.push(out[out.len() - 1].clone());
    }
    (out, cw, ch)
}

/// `TemporalRegionMask.apply_to`: 1 where a token's `[t_start, t_end)` (seconds, float32)
/// overlaps `[start, end)` (`t_end > start && t_start < end`), else 0; `bounds` is the time axis
/// of the positions `(1, axes, T, 2)`.
pub fn temporal_region_mask(bounds: &Tensor, span: Span) -> candle_core::Result<Tensor> {
    let t = bounds
        .narrow(1, 0, 1)?
        .to_dtype(DType::F32)?
        .flatten_all()?;
    let v = t.to_vec1::<f32>()?;
    let mask: Vec<f32> = v
        .chunks_exact(2)
        .map(|b| match span {
            Some((start, end)) if b[1] > start as f32 && b[0] < end as f32 => 1.0,
            _ => 0.0,
        })
        .collect();
    let n = mask.len();
    Tensor::from_vec(mask, (1, n, 1), bounds.device())
}

/// The initial states: the clip's latents as latent and clean latent, the temporal masks, the
/// first noising (`x = eps * mask + clean * (1 - mask)`).
pub fn retake_states(
    video_latent: &Tensor,
    audio_latent: Option<&Tensor>,
    audio_shape: AudioLatentShape,
    spec: &RetakeSpec<'_>,
    noise: &mut dyn NoiseSource,
    dtype: DType,
    device: &Device,
) -> Result<(LatentState, LatentState), GenError> {
    let vshape = VideoLatentShape::from_dims(video_latent.dims())?;
    let mut video = LatentState::video(vshape, spec.fps, Some(video_latent), dtype, device)?;
    // Token times in float32 whatever the compute dtype, as ltx-core compares them.
    let vbounds = video_positions(vshape, spec.fps, true, 0, device)?;
    video.denoise_mask = temporal_region_mask(&vbounds, spec.video_span)?.to_dtype(dtype)?;
    let mut audio = LatentState::audio(audio_shape, audio_latent, dtype, device)?;
    if audio_latent.is_some() {
        let abounds = audio_positions(audio_shape.frames, device)?;
        audio.denoise_mask = temporal_region_mask(&abounds, spec.audio_span)?.to_dtype(dtype)?;
    }
    let vn = noise.draw(video.latent.dims(), dtype, device)?;
    let an = noise.draw(audio.latent.dims(), dtype, device)?;
    video.add_noise(&vn, 1.0)?;
    audio.add_noise(&an, 1.0)?;
    Ok((video, audio))
}

/// Runs the recipe: `sigmas` with `guidance` (dev; `negative` for CFG) or the distilled sigmas
/// with guidance disabled.
#[allow(clippy::too_many_arguments)]
pub fn retake(
    m: &Models,
    spec: &RetakeSpec<'_>,
    sigmas: &[f32],
    ctx: &Contexts,
    negative: Option<&Contexts>,
    guidance: &Guidance,
    noise: &mut dyn NoiseSource,
    hook: &mut StageHook<'_>,
) -> Result<RetakeOutput, GenError> {
    let num_frames = spec.frames.len();
    if num_frames == 0 || !(num_frames - 1).is_multiple_of(8) {
        return Err(GenError::InvalidInput {
            field: "video",
            message: format!("the clip must have 8k + 1 frames here, got {num_frames}"),
        });
    }
    hook.stage("clip_encode")?;
    let device = m.device.clone();
    let dtype = ctx.video.dtype();
    let clip_video_latent = m.encode_video(spec.frames, spec.height, spec.width)?;
    let audio_shape = AudioLatentShape::from_video(num_frames, spec.fps as f64);
    let clip_audio_latent = match spec.audio {
        Some(clip) => Some(m.encode_audio(clip, audio_shape.frames)?),
        None => None,
    };
    let (mut video, mut audio) = retake_states(
        &clip_video_latent,
        clip_audio_latent.as_ref(),
        audio_shape,
        spec,
        noise,
        dtype,
        &device,
    )?;
    let (video_mask, audio_mask) = (video.denoise_mask.clone(), audio.denoise_mask.clone());
    hook.stage("denoise")?;
    denoise_loop(
        m.transformer.as_ref(),
        &mut video,
        &mut audio,
        sigmas,
        ctx,
        negative,
        guidance,
        &mut Stepper::Euler,
        &mut |e| hook.step("denoise", e),
    )?;
    let vshape = VideoLatentShape::from_dims(clip_video_latent.dims())?;
    Ok(RetakeOutput {
        latents: StageOutput {
            video_latent: unpatchify_video(&video.generated_tokens()?, vshape)?,
            audio_latent: unpatchify_audio(&audio.generated_tokens()?, audio_shape)?,
        },
        clip_video_latent,
        clip_audio_latent,
        video_mask,
        audio_mask,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canvas_pads_edges_and_frames() {
        let img = RgbImage {
            width: 2,
            height: 1,
            data: vec![10, 10, 10, 200, 200, 200],
        };
        let p = pad_edges(&img, 4, 3);
        // left pad 1, top pad 1: row 0 repeats row 0 of the image.
        assert_eq!(
            p.data,
            [
                [10u8, 10, 10, 10, 10, 10, 200, 200, 200, 200, 200, 200],
                [10, 10, 10, 10, 10, 10, 200, 200, 200, 200, 200, 200],
                [10, 10, 10, 10, 10, 10, 200, 200, 200, 200, 200, 200],
            ]
            .concat()
        );
        let (frames, w, h) = canvas(&vec![img; 10], 12);
        assert_eq!((frames.len(), w, h), (17, 32, 32));
    }
}
