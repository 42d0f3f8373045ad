//! What a request may ask of the loaded model, checked before anything runs; each error names
//! the request field.

use super::{no_duration_head, Engine};
use crate::api::*;

impl Engine {
    pub(super) fn validate(&self, req: &GenerateRequest) -> Result<(), GenError> {
        let invalid = |field, message: String| Err(GenError::InvalidInput { field, message });
        if req.auto_duration.is_some() && self.models.duration_head.is_none() {
            return Err(no_duration_head(&self.info));
        }
        if req.width == 0 || !req.width.is_multiple_of(32) {
            return invalid(
                "width",
                format!("must be a positive multiple of 32, got {}", req.width),
            );
        }
        if req.height == 0 || !req.height.is_multiple_of(32) {
            return invalid(
                "height",
                format!("must be a positive multiple of 32, got {}", req.height),
            );
        }
        if req.num_frames == 0 || !(req.num_frames - 1).is_multiple_of(8) {
            return invalid(
                "num_frames",
                format!("must be 8k + 1, got {}", req.num_frames),
            );
        }
        // The VAE decoder reflect-pads by one latent cell: a one-cell latent (32 px) cannot decode.
        if req.width < 64 || req.height < 64 {
            let field = if req.width < 64 { "width" } else { "height" };
            return invalid(
                field,
                format!("must be at least 64, got {}x{}", req.width, req.height),
            );
        }
        if !(req.fps.is_finite() && req.fps > 0.0) {
            return invalid("fps", format!("must be positive, got {}", req.fps));
        }
        for img in &req.images {
            if img.frame_index >= req.num_frames {
                return invalid(
                    "images",
                    format!(
                        "frame index {} is past the last frame {}",
                        img.frame_index,
                        req.num_frames - 1
                    ),
                );
            }
            if !(0.0..=1.0).contains(&img.strength) {
                return invalid(
                    "images",
                    format!("strength must be in [0, 1], got {}", img.strength),
                );
            }
        }
        if let Some((clip, s)) = &req.audio {
            if !(0.0..=1.0).contains(s) {
                return invalid("audio", format!("strength must be in [0, 1], got {s}"));
            }
            // The server checks this before queueing; callers of the library get the same error.
            let video_seconds = req.num_frames as f64 / req.fps as f64;
            crate::media::audio::check_conditioning(clip, video_seconds, &self.info.audio_input)
                .or_else(|m| invalid("audio", m))?;
        }
        match &req.clip {
            Some(ClipInput::Control(c)) => self.validate_control(req, c)?,
            Some(ClipInput::Retake(r)) => validate_retake(r)?,
            Some(ClipInput::Extend(e)) => validate_clip("extend", &e.clip).and_then(|_| {
                if e.frames == 0 {
                    return Err(GenError::InvalidInput {
                        field: "extend",
                        message: "num_frames must be at least 1".into(),
                    });
                }
                Ok(())
            })?,
            None => {}
        }
        if matches!(
            self.info.pipeline,
            PipelineKind::Dev | PipelineKind::DevTwoStage
        ) && req.num_inference_steps == Some(0)
        {
            return invalid("num_inference_steps", "must be at least 1".into());
        }
        Ok(())
    }

    fn validate_control(&self, req: &GenerateRequest, c: &ControlVideo) -> Result<(), GenError> {
        let invalid = |field, message: String| Err(GenError::InvalidInput { field, message });
        if self.info.pipeline != PipelineKind::DistilledTwoStage {
            return invalid(
                "control_video",
                format!(
                    "needs a distilled checkpoint with its x2 upsampler (ltx-pipelines' ICLoraPipeline); this model runs {:?}",
                    self.info.pipeline
                ),
            );
        }
        if req.loras.is_empty() {
            return invalid(
                "control_video",
                "needs the IC-LoRA it is for in `loras` (GET /loras lists them)".into(),
            );
        }
        if c.frames.is_empty() {
            return invalid("control_video", "the clip has no frames".into());
        }
        if !(0.0..=1.0).contains(&c.strength) {
            return invalid(
                "control_video",
                format!("strength must be in [0, 1], got {}", c.strength),
            );
        }
        if !(0.0..=1.0).contains(&c.attention_strength) {
            return invalid(
                "control_video",
                format!(
                    "attention_strength must be in [0, 1], got {}",
                    c.attention_strength
                ),
            );
        }
        if req.audio.is_some() {
            return invalid(
                "audio",
                "cannot be combined with control_video (ltx-pipelines' ICLoraPipeline has no audio conditioning)".into(),
            );
        }
        Ok(())
    }
}

/// A decoded clip the engine can work on.
fn validate_clip(field: &'static str, clip: &SourceClip) -> Result<(), GenError> {
    let invalid = |message: String| Err(GenError::InvalidInput { field, message });
    let Some(first) = clip.frames.first() else {
        return invalid("the clip has no frames".into());
    };
    if !(clip.fps.is_finite() && clip.fps > 0.0) {
        return invalid(format!("the clip's frame rate {} is not usable", clip.fps));
    }
    if clip
        .frames
        .iter()
        .any(|f| (f.width, f.height) != (first.width, first.height))
    {
        return invalid("the clip's frames change size".into());
    }
    Ok(())
}

/// A retake the engine can run: a usable clip and [`RetakeInput::check`].
fn validate_retake(r: &RetakeInput) -> Result<(), GenError> {
    validate_clip("retake", &r.clip)?;
    r.check().map_err(|message| GenError::InvalidInput {
        field: "retake",
        message,
    })
}
