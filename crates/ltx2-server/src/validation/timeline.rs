//! The timeline fields: `keyframes`, `audio_start_seconds`, and a `video` to `retake` or `extend`.

use ltx2_pipeline::media::audio::trim_clip;
use ltx2_pipeline::media::video::VideoLimits;
use ltx2_pipeline::{AudioClip, ClipInput, ExtendInput, ImageCondition, RetakeInput, SourceClip};

use super::{err, image, in_range, GenerateBody, Limits, ValidationError, DEFAULT_STRENGTH};
use crate::media;

/// Most keyframes one request may pin (each is a VAE encode and a latent frame of tokens).
pub const MAX_KEYFRAMES: usize = 16;
/// Largest frame of a clip to retake or extend (1080p): it is held decoded and processed at its
/// own size.
pub const MAX_CLIP_PIXELS: u64 = 1920 * 1080;

/// `keyframes` appended to `images` (which hold `image_start` / `image_end`): frames inside the
/// clip, no frame pinned twice, at most [`MAX_KEYFRAMES`].
pub(super) fn keyframes(
    body: &GenerateBody,
    num_frames: u32,
    limits: &Limits,
    images: &mut Vec<ImageCondition>,
) -> Result<bool, ValidationError> {
    let Some(entries) = &body.keyframes else {
        return Ok(false);
    };
    if entries.len() > MAX_KEYFRAMES {
        return Err(err(
            "keyframes",
            format!("at most {MAX_KEYFRAMES} keyframes, got {}", entries.len()),
        ));
    }
    for (i, k) in entries.iter().enumerate() {
        if k.frame >= num_frames {
            return Err(err(
                "keyframes",
                format!(
                    "[{i}].frame {} is past the last frame {}",
                    k.frame,
                    num_frames - 1
                ),
            ));
        }
        if let Some(j) = images.iter().position(|c| c.frame_index == k.frame) {
            let what = if j < images.len() - i {
                "image_start / image_end"
            } else {
                "another keyframe"
            };
            return Err(err(
                "keyframes",
                format!("[{i}].frame {} is already pinned by {what}", k.frame),
            ));
        }
        let strength = in_range(
            "keyframes",
            k.strength.unwrap_or(DEFAULT_STRENGTH),
            0.0,
            1.0,
        )
        .map_err(|e| err("keyframes", format!("[{i}].strength {}", e.message)))?;
        let img = image("keyframes", &k.image, &limits.image)
            .map_err(|e| err("keyframes", format!("[{i}].image {}", e.message)))?;
        images.push(ImageCondition {
            image: img,
            frame_index: k.frame,
            strength,
        });
    }
    Ok(true)
}

/// The conditioning audio from `audio_start_seconds` on.
pub(super) fn audio_start(
    body: &GenerateBody,
    clip: AudioClip,
    notes: &mut Vec<String>,
) -> Result<AudioClip, ValidationError> {
    let Some(start) = body.audio_start_seconds else {
        return Ok(clip);
    };
    let start = start as f64;
    if !(start >= 0.0 && start < clip.duration_seconds()) {
        return Err(err(
            "audio_start_seconds",
            format!(
                "must be in [0, {:.3}) (the audio's length), got {start}",
                clip.duration_seconds()
            ),
        ));
    }
    if start > 0.0 {
        notes.push(format!("audio used from {start} s on"));
    }
    Ok(trim_clip(&clip, start, None))
}

/// `video` with `retake` or `extend`.
pub(super) fn clip(
    body: &GenerateBody,
    limits: &Limits,
) -> Result<Option<ClipInput>, ValidationError> {
    let (video, retake, extend) = (&body.video, &body.retake, &body.extend);
    let Some(b64) = video else {
        for (field, given) in [("retake", retake.is_some()), ("extend", extend.is_some())] {
            if given {
                return Err(err(field, "needs the clip in `video`"));
            }
        }
        return Ok(None);
    };
    if retake.is_some() == extend.is_some() {
        return Err(err(
            "video",
            "needs exactly one of `retake` or `extend` (what to do with the clip)",
        ));
    }
    if body.control_video.is_some() {
        return Err(err(
            "control_video",
            "cannot be combined with a clip to retake or extend",
        ));
    }
    let bytes = media::decode_base64_field(b64).map_err(|m| err("video", m))?;
    let decode = VideoLimits {
        max_pixels: MAX_CLIP_PIXELS,
        max_frames: limits.max_frames as usize,
        keep_frames: None,
        audio: true,
    };
    let decoded = media::decode_video(&bytes, &decode).map_err(|m| err("video", m))?;
    let clip = SourceClip {
        fps: decoded.fps,
        frames: decoded.frames,
        audio: decoded.audio,
    };
    if let Some(r) = retake {
        let (video, audio) = match r.regenerate.as_deref().unwrap_or("both") {
            "video" => (true, false),
            "audio" => (false, true),
            "both" => (true, true),
            other => {
                return Err(err(
                    "retake",
                    format!("regenerate must be \"video\", \"audio\" or \"both\", got {other:?}"),
                ))
            }
        };
        let retake = RetakeInput {
            clip,
            start_seconds: r.start_seconds,
            end_seconds: r.end_seconds,
            regenerate_video: video,
            regenerate_audio: audio,
        };
        retake.check().map_err(|m| err("retake", m))?;
        return Ok(Some(ClipInput::Retake(retake)));
    }
    let e = extend.as_ref().expect("checked above");
    let total = clip.frames.len() as u64 + e.num_frames as u64;
    if e.num_frames == 0 || total > limits.max_frames as u64 {
        return Err(err(
            "extend",
            format!(
                "num_frames must be at least 1 and the extended clip at most {} frames; the clip has {}, asked for {}",
                limits.max_frames,
                clip.frames.len(),
                e.num_frames
            ),
        ));
    }
    Ok(Some(ClipInput::Extend(ExtendInput {
        clip,
        frames: e.num_frames,
    })))
}
