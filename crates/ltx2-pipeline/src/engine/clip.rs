//! Requests that work on a user's clip: retake (ltx-pipelines `RetakePipeline`) and extend (ours).
//!
//! Both run the retake recipe at the clip's own size and rate. The VAE takes multiples of 32
//! pixels and `8k + 1` frames, which a phone clip rarely has: frames are padded by repeating
//! their edge pixels (centred) to the next multiple of 32 and the last frame is repeated up to
//! the next `8k + 1` frames; the decoded result is cropped back, so the output has exactly the
//! clip's size, rate and length (plus the new frames for extend). The padding never reaches the
//! returned pixels.
//!
//! Extend is a retake of the span after the clip on a canvas `frames` longer: the clip (its
//! video and audio) is encoded as the canvas's start and kept (denoise mask 0), the tokens whose
//! time span reaches past the last complete latent frame of the clip are generated. The whole
//! canvas is denoised jointly and decoded in one piece; the returned frames before the boundary
//! are the clip's own pixels and the VAE's residual on the last of them is faded out over the
//! first new frames ([`hand_off`]), so the generated motion starts exactly where the clip ends.

use super::{Engine, StageClock};
use crate::api::*;
use crate::components::{pixels_to_frames, waveform_to_clip};
use crate::guidance::Guidance;
use crate::noise::SeededNoise;
use crate::pipelines::retake::{canvas, retake, RetakeSpec};
use crate::schedule::{Ltx2Scheduler, DISTILLED_SIGMAS};

/// Frames over which extend fades the clip's VAE residual out of the new frames.
const HAND_OFF_FRAMES: usize = 8;

/// Extend's join: the first `kept` frames become the clip's own pixels (not its VAE round trip),
/// and the residual between the clip's last kept frame and its decoded version is added to the
/// next `fade` generated frames with a linearly decreasing weight, so the generated motion starts
/// exactly where the clip ends and the reconstruction error fades out instead of jumping in.
pub(crate) fn hand_off(video: &mut [Vec<u8>], clip: &[RgbImage], kept: usize, fade: usize) {
    let last = kept - 1;
    let residual: Vec<i16> = clip[last]
        .data
        .iter()
        .zip(&video[last])
        .map(|(&o, &d)| o as i16 - d as i16)
        .collect();
    for (frame, original) in video.iter_mut().zip(clip).take(kept) {
        frame.copy_from_slice(&original.data);
    }
    for j in 0..fade.min(video.len().saturating_sub(kept)) {
        let weight = (fade - j) as f32 / (fade + 1) as f32;
        for (p, r) in video[kept + j].iter_mut().zip(&residual) {
            *p = (*p as f32 + weight * *r as f32).round().clamp(0.0, 255.0) as u8;
        }
    }
}

/// Length of extend's audio crossfade, just before the boundary.
pub(crate) const CROSSFADE_SECONDS: f64 = 0.02;

/// Extend's audio join: the clip's own audio (resampled to the output rate) up to `from` seconds,
/// a linear crossfade of [`CROSSFADE_SECONDS`] into the generated track ending there, the
/// generated track after. A rate the resampler cannot take at a bounded cost keeps the decoded
/// canvas (the clip through the audio VAE). Returns the note that says which.
pub(crate) fn splice_audio(
    original: &AudioClip,
    generated: &AudioClip,
    from: f64,
) -> (AudioClip, String) {
    let rate = generated.sample_rate;
    let resampled: Option<Vec<Vec<f32>>> = if original.sample_rate == rate {
        Some(original.channels.clone())
    } else {
        crate::media::audio::resampler(original.sample_rate, rate)
            .map(|r| original.channels.iter().map(|c| r.process(c)).collect())
    };
    let Some(own) = resampled else {
        return (
            generated.clone(),
            format!(
                "extend: the clip's {} Hz audio is kept through the audio VAE (no resampler to {rate} Hz)",
                original.sample_rate
            ),
        );
    };
    let own_len = own.first().map_or(0, Vec::len);
    let b = ((from * rate as f64).round() as usize)
        .min(own_len)
        .min(generated.num_samples());
    let w = ((CROSSFADE_SECONDS * rate as f64).round() as usize).min(b);
    let channels = generated
        .channels
        .iter()
        .enumerate()
        .map(|(i, gen)| {
            let src = &own[i.min(own.len() - 1)];
            let mut out = gen.clone();
            for (j, v) in out.iter_mut().enumerate().take(b) {
                *v = if j + w < b {
                    src[j]
                } else {
                    let t = (j + w - b + 1) as f32 / (w + 1) as f32;
                    src[j] * (1.0 - t) + *v * t
                };
            }
            out
        })
        .collect();
    (
        AudioClip {
            sample_rate: rate,
            channels,
        },
        format!(
            "extend: the clip's own audio up to {:.3} s, crossfaded into the new audio over {} ms",
            b as f64 / rate as f64,
            (CROSSFADE_SECONDS * 1000.0) as u32
        ),
    )
}

impl Engine {
    /// Retake and extend: one stage at the clip's size (guided on a dev checkpoint, the distilled
    /// sigmas on a distilled one), decoded and cropped back to the clip's geometry.
    pub(super) fn generate_from_clip(
        &mut self,
        req: &GenerateRequest,
        progress: &dyn Progress,
        lora_note: Option<String>,
    ) -> Result<GenerateOutput, GenError> {
        let (clip, kind, out_frames, video_span, audio_span) = match &req.clip {
            Some(ClipInput::Retake(r)) => {
                let span = Some((r.start_seconds, r.end_seconds));
                (
                    &r.clip,
                    PipelineKind::Retake,
                    r.clip.frames.len(),
                    r.regenerate_video.then_some(span).flatten(),
                    r.regenerate_audio.then_some(span).flatten(),
                )
            }
            Some(ClipInput::Extend(e)) => {
                let n = e.clip.frames.len();
                // Keep the largest 8k + 1 prefix; a latent frame that mixes clip and new frames
                // is generated (the causal VAE encodes frames 8k-7..8k together).
                let kept = (n - 1) / 8 * 8 + 1;
                let video_from = kept as f64 / e.clip.fps;
                // An audio track shorter than the video (the audio VAE works in 40 ms frames, a
                // previous extend's output) is continued from where it ends, not from silence.
                let audio_from = e
                    .clip
                    .audio
                    .as_ref()
                    .map_or(video_from, |a| a.duration_seconds().min(video_from));
                (
                    &e.clip,
                    PipelineKind::Extend,
                    n + e.frames as usize,
                    Some((video_from, f64::INFINITY)),
                    Some((audio_from, f64::INFINITY)),
                )
            }
            _ => unreachable!("generate_from_clip runs retake and extend"),
        };
        let dev = matches!(
            self.info.pipeline,
            PipelineKind::Dev | PipelineKind::DevTwoStage
        );
        let fps = clip.fps as f32;
        let (w, h) = (
            clip.frames[0].width as usize,
            clip.frames[0].height as usize,
        );
        let (frames, cw, ch) = canvas(&clip.frames, out_frames);
        let mut notes: Vec<String> = lora_note.into_iter().collect();
        notes.push(format!(
            "the clip sets the size, rate and length: {w}x{h} at {fps} fps, {out_frames} frames (width, height, num_frames and fps of the request do not apply)"
        ));
        if (cw, ch) != (w, h) || frames.len() != out_frames {
            notes.push(format!(
                "rendered at {cw}x{ch}, {} frames (edges and the last frame repeated; the VAE takes multiples of 32 and 8k + 1 frames), cropped back",
                frames.len()
            ));
        }
        let (guidance, sigmas) = if dev {
            let steps = req
                .num_inference_steps
                .unwrap_or(self.params.num_inference_steps) as usize;
            (
                self.params
                    .guidance(req.guidance_scale, self.models.transformer.num_blocks()),
                Ltx2Scheduler::default().sigmas(steps, None),
            )
        } else {
            (Guidance::disabled(), DISTILLED_SIGMAS.to_vec())
        };
        let device = self.models.device.clone();
        let mut clock = StageClock::new(progress, &device);
        clock.start("text_encode");
        let ctx = self.text.encode(&req.prompt)?;
        let negative = if guidance.needs_unconditional() {
            Some(self.text.encode(&req.negative_prompt)?)
        } else {
            None
        };
        // The clip's audio, cut or zero-padded to the canvas by the audio encoder.
        let spec = RetakeSpec {
            frames: &frames,
            width: cw,
            height: ch,
            fps,
            audio: clip.audio.as_ref(),
            video_span,
            audio_span: if clip.audio.is_some() {
                audio_span
            } else {
                None
            },
        };
        if clip.audio.is_none() {
            notes.push("the clip has no audio: the audio track is generated".into());
        }
        let mut noise = SeededNoise::new(req.seed);
        let out = retake(
            &self.models,
            &spec,
            &sigmas,
            &ctx,
            negative.as_ref(),
            &guidance,
            &mut noise,
            &mut clock,
        )?;
        clock.start("video_decode");
        let pixels = self
            .models
            .decode_video_tiled(&out.latents.video_latent, &mut noise)?;
        let mut video = pixels_to_frames(&pixels, w, h)?;
        video.truncate(out_frames);
        if let Some(ClipInput::Extend(e)) = &req.clip {
            let kept = (e.clip.frames.len() - 1) / 8 * 8 + 1;
            hand_off(&mut video, &e.clip.frames, kept, HAND_OFF_FRAMES);
            notes.push(format!(
                "extend: frames 0-{} are the clip's own, the new frames continue from it (the VAE's residual on the last kept frame faded out over {HAND_OFF_FRAMES} frames)",
                kept - 1
            ));
        }
        let audio = if req.include_audio {
            clock.start("audio_decode");
            let wave = waveform_to_clip(
                &self.models.decode_audio(&out.latents.audio_latent)?,
                self.models.vocoder_rate(),
            )?;
            let wave = match &req.clip {
                Some(ClipInput::Extend(e)) => match (&e.clip.audio, audio_span) {
                    (Some(original), Some((from, _))) => {
                        let (joined, note) = splice_audio(original, &wave, from);
                        notes.push(note);
                        joined
                    }
                    _ => wave,
                },
                _ => wave,
            };
            Some(crate::media::audio::trim_clip(
                &wave,
                0.0,
                Some(out_frames as f64 / clip.fps),
            ))
        } else {
            None
        };
        clock.finish();
        if self.info.is_demo {
            notes.push("demo model: random weights, the output is noise".into());
        }
        let effective = EffectiveParams {
            loras: req.loras.clone(),
            pipeline: kind,
            steps_per_stage: vec![(sigmas.len() - 1) as u32],
            forwards_per_step: guidance.forwards_per_step(),
            guidance_scale: if dev { req.guidance_scale } else { 1.0 },
            negative_prompt_used: negative.is_some(),
            rendered_width: cw as u32,
            rendered_height: ch as u32,
            num_frames: out_frames as u32,
            fps,
            seed: req.seed,
            notes,
        };
        Ok(GenerateOutput {
            video: VideoFrames {
                width: w as u32,
                height: h as u32,
                fps,
                frames: video,
            },
            audio,
            effective,
            timings: clock.timings,
        })
    }
}
