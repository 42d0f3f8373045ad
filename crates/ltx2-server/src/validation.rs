//! POST /generate body → a [`ValidRequest`] the engine can run as is.
//!
//! Every field is read on its own so a wrong type names the field. `num_frames` that is not
//! `8k + 1` is rejected (not snapped) with the nearest valid values in the message: a silent
//! change of the video length would surprise clients that compute durations themselves.

use crate::media;
use ltx2_pipeline::media::audio::{check_conditioning, AudioLimits};
use ltx2_pipeline::media::image::ImageLimits;
use ltx2_pipeline::media::video::VideoLimits;
use ltx2_pipeline::{
    AudioInputSpec, AutoDuration, ClipInput, ControlVideo, GenerateRequest, ImageCondition,
    LoraChoice,
};

mod body;
pub use body::{Auto, ExtendBody, GenerateBody, KeyframeBody, LoraBody, NumFrames, RetakeBody};
mod timeline;
pub use timeline::{MAX_CLIP_PIXELS, MAX_KEYFRAMES};

pub const DEFAULT_NEGATIVE_PROMPT: &str = "blurry, low quality, distorted, glitchy, watermark";
pub const DEFAULT_WIDTH: u32 = 288;
pub const DEFAULT_HEIGHT: u32 = 512;
pub const DEFAULT_NUM_FRAMES: u32 = 49;
pub const DEFAULT_FPS: u32 = 25;
pub const DEFAULT_GUIDANCE_SCALE: f32 = 3.0;
/// The spec's `num_inference_steps` default, which is the LTX-2 (19B) dev default. The engine
/// applies its own generation's default when a request gives none (30 for LTX-2.3).
pub const DEFAULT_STEPS: u32 = 40;
pub const DEFAULT_STRENGTH: f32 = 1.0;
pub const SIDE_MULTIPLE: u32 = 32;
pub const MIN_SIDE: u32 = 64;
pub const MIN_FRAMES: u32 = 9;
pub const MIN_FPS: u32 = 1;
pub const MAX_FPS: u32 = 120;
pub const MIN_GUIDANCE: f32 = 1.0;
pub const MAX_GUIDANCE: f32 = 20.0;
/// Largest frame of a control video (1080p, as [`MAX_CLIP_PIXELS`]): its frames are held decoded
/// until the reference is encoded at a fraction of the output size, so 4K clips are refused
/// rather than held.
pub const MAX_CONTROL_VIDEO_PIXELS: u64 = MAX_CLIP_PIXELS;

/// Configurable upper limits (see `ServerConfig`) and what the loaded model takes.
#[derive(Debug, Clone)]
pub struct Limits {
    pub max_width: u32,
    pub max_height: u32,
    pub max_frames: u32,
    pub max_steps: u32,
    /// Decoding bounds of `image_start` / `image_end`.
    pub image: ImageLimits,
    /// Longest `audio` accepted, in seconds.
    pub max_audio_seconds: f64,
    /// The conditioning audio the loaded model can encode (rate, least length).
    pub audio_input: AudioInputSpec,
    /// Whether the loaded model can choose the clip length (`num_frames: "auto"`).
    pub auto_duration: bool,
    /// The LoRA folder requests pick from (`None`: requests cannot carry LoRAs).
    pub loras: Option<ltx2_pipeline::loras::LoraCatalog>,
}

/// A rejected field: always names it.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("`{field}` {message}")]
pub struct ValidationError {
    pub field: &'static str,
    pub message: String,
}

fn err(field: &'static str, message: impl Into<String>) -> ValidationError {
    ValidationError {
        field,
        message: message.into(),
    }
}

/// What the engine gets plus what the response reports about the request itself.
#[derive(Debug, Clone)]
pub struct ValidRequest {
    pub request: GenerateRequest,
    pub has_image_start: bool,
    pub has_image_end: bool,
    pub seed_was_random: bool,
    /// The request set `negative_prompt` itself (not the default).
    pub negative_prompt_given: bool,
    /// Fields that had no effect, said out loud.
    pub notes: Vec<String>,
}

fn side(name: &'static str, value: u32, max: u32) -> Result<u32, ValidationError> {
    if !value.is_multiple_of(SIDE_MULTIPLE) || !(MIN_SIDE..=max).contains(&value) {
        let below = (value / SIDE_MULTIPLE * SIDE_MULTIPLE).clamp(MIN_SIDE, max);
        let above = (value.div_ceil(SIDE_MULTIPLE) * SIDE_MULTIPLE).clamp(MIN_SIDE, max);
        let nearest = if below == above {
            format!("{below}")
        } else {
            format!("{below} or {above}")
        };
        return Err(err(
            name,
            format!("must be a multiple of {SIDE_MULTIPLE} between {MIN_SIDE} and {max}, got {value} (nearest valid: {nearest})"),
        ));
    }
    Ok(value)
}

fn in_range(name: &'static str, value: f32, lo: f32, hi: f32) -> Result<f32, ValidationError> {
    if !(lo..=hi).contains(&value) {
        return Err(err(
            name,
            format!("must be between {lo} and {hi}, got {value}"),
        ));
    }
    Ok(value)
}

fn image(
    name: &'static str,
    value: &str,
    limits: &ImageLimits,
) -> Result<ltx2_pipeline::RgbImage, ValidationError> {
    let bytes = media::decode_base64_field(value).map_err(|m| err(name, m))?;
    media::decode_image(&bytes, limits).map_err(|m| err(name, m))
}

/// A frame count must be `8k + 1` within the limits; the error gives the nearest valid counts.
fn frame_count(num_frames: u32, max_frames: u32) -> Result<u32, ValidationError> {
    if num_frames % 8 != 1 || !(MIN_FRAMES..=max_frames).contains(&num_frames) {
        let below = (num_frames.saturating_sub(1) / 8 * 8 + 1).clamp(MIN_FRAMES, max_frames);
        let above =
            (num_frames.saturating_sub(1).div_ceil(8) * 8 + 1).clamp(MIN_FRAMES, max_frames);
        let nearest = if below == above {
            format!("{below}")
        } else {
            format!("{below} or {above}")
        };
        return Err(err(
            "num_frames",
            format!(
                "must be 8k+1 between {MIN_FRAMES} and {max_frames} (9, 17, 25, ..., 49, ..., 121), got {num_frames} (nearest valid: {nearest})"
            ),
        ));
    }
    Ok(num_frames)
}

/// The longest `8k + 1` frame count of at most `seconds` (at least 9, at most `max_frames`).
fn longest_frames(seconds: f64, fps: u32, max_frames: u32) -> u32 {
    let frames = (seconds * fps as f64 + 1e-9).floor().min(max_frames as f64) as u32;
    (frames.saturating_sub(1) / 8 * 8 + 1).clamp(MIN_FRAMES, max_frames)
}

/// The bounds of `num_frames: "auto"`: ltx-pipelines' defaults (1 s, 20 s) unless given, the
/// longest held to the server's `max_frames`.
fn auto_duration(
    body: &GenerateBody,
    fps: u32,
    limits: &Limits,
    notes: &mut Vec<String>,
) -> Result<AutoDuration, ValidationError> {
    if !limits.auto_duration {
        return Err(err(
            "num_frames",
            "\"auto\" needs a model with a duration head (LTX-2.5); the loaded model has none: give a frame count (8k+1)",
        ));
    }
    let defaults = AutoDuration::default();
    let min = body
        .min_duration_seconds
        .map_or(defaults.min_seconds, |s| s as f64);
    let max = body
        .max_duration_seconds
        .map_or(defaults.max_seconds, |s| s as f64);
    if min < 0.0 {
        return Err(err(
            "min_duration_seconds",
            format!("must not be negative, got {min}"),
        ));
    }
    let longest = limits.max_frames as f64 / fps as f64;
    if min > longest {
        return Err(err(
            "min_duration_seconds",
            format!(
                "asks for at least {min} s, but this server makes at most {} frames ({longest:.2} s at {fps} fps)",
                limits.max_frames
            ),
        ));
    }
    if max <= 0.0 || max < min {
        return Err(err(
            "max_duration_seconds",
            format!("must be positive and at least min_duration_seconds ({min}), got {max}"),
        ));
    }
    if max > longest && body.max_duration_seconds.is_some() {
        notes.push(format!(
            "max_duration_seconds: limited to {longest:.2} s, the server's largest num_frames ({}) at {fps} fps",
            limits.max_frames
        ));
    }
    Ok(AutoDuration {
        min_seconds: min,
        max_seconds: max.min(longest),
    })
}

/// The request fields [`control_video`] reads.
struct ControlFields<'a> {
    control_video: Option<&'a String>,
    control_strength: Option<f32>,
    control_attention_strength: Option<f32>,
    has_audio: bool,
}

/// `control_video` (+ its strengths): decoded, the first `num_frames` frames kept.
fn control_video(
    body: ControlFields<'_>,
    num_frames: u32,
    loras: &[LoraChoice],
    notes: &mut Vec<String>,
) -> Result<Option<ClipInput>, ValidationError> {
    let Some(s) = body.control_video else {
        for (field, given) in [
            ("control_strength", body.control_strength),
            (
                "control_attention_strength",
                body.control_attention_strength,
            ),
        ] {
            if given.is_some() {
                notes.push(format!("{field} had no effect: no control_video was given"));
            }
        }
        return Ok(None);
    };
    let strength = in_range(
        "control_strength",
        body.control_strength.unwrap_or(DEFAULT_STRENGTH),
        0.0,
        1.0,
    )?;
    let attention_strength = in_range(
        "control_attention_strength",
        body.control_attention_strength.unwrap_or(DEFAULT_STRENGTH),
        0.0,
        1.0,
    )?;
    if loras.is_empty() {
        return Err(err(
            "control_video",
            "needs the IC-LoRA it is for in `loras` (GET /loras lists them)",
        ));
    }
    if body.has_audio {
        return Err(err(
            "audio",
            "cannot be combined with control_video (ltx-pipelines' ICLoraPipeline has no audio conditioning)",
        ));
    }
    let bytes = media::decode_base64_field(s).map_err(|m| err("control_video", m))?;
    let decode = VideoLimits {
        max_pixels: MAX_CONTROL_VIDEO_PIXELS,
        keep_frames: Some(num_frames as usize),
        audio: false,
        ..VideoLimits::default()
    };
    let clip = media::decode_video(&bytes, &decode).map_err(|m| err("control_video", m))?;
    Ok(Some(ClipInput::Control(ControlVideo {
        frames: clip.frames,
        strength,
        attention_strength,
    })))
}

/// Checks every field against the limits, decodes the media and draws the seed.
pub fn validate(
    body: GenerateBody,
    limits: &Limits,
    mut notes: Vec<String>,
) -> Result<ValidRequest, ValidationError> {
    if body.prompt.trim().is_empty() {
        return Err(err("prompt", "must not be empty"));
    }
    let width = side(
        "width",
        body.width.unwrap_or(DEFAULT_WIDTH),
        limits.max_width,
    )?;
    let height = side(
        "height",
        body.height.unwrap_or(DEFAULT_HEIGHT),
        limits.max_height,
    )?;

    let fps = body.fps.unwrap_or(DEFAULT_FPS);
    if !(MIN_FPS..=MAX_FPS).contains(&fps) {
        return Err(err(
            "fps",
            format!("must be between {MIN_FPS} and {MAX_FPS}, got {fps}"),
        ));
    }
    let (num_frames, auto_duration) = match body.num_frames {
        Some(NumFrames::Auto(_)) => {
            let auto = auto_duration(&body, fps, limits, &mut notes)?;
            (
                longest_frames(auto.max_seconds, fps, limits.max_frames),
                Some(auto),
            )
        }
        count => {
            let n = match count {
                Some(NumFrames::Count(n)) => n,
                _ => DEFAULT_NUM_FRAMES,
            };
            for (field, given) in [
                ("min_duration_seconds", body.min_duration_seconds),
                ("max_duration_seconds", body.max_duration_seconds),
            ] {
                if given.is_some() {
                    notes.push(format!(
                        "{field} had no effect: it bounds num_frames \"auto\" only"
                    ));
                }
            }
            (frame_count(n, limits.max_frames)?, None)
        }
    };
    let guidance_scale = in_range(
        "guidance_scale",
        body.guidance_scale.unwrap_or(DEFAULT_GUIDANCE_SCALE),
        MIN_GUIDANCE,
        MAX_GUIDANCE,
    )?;
    // Absent: the loaded model's official default, chosen by the engine.
    let steps = body.num_inference_steps;
    if let Some(steps) = steps.filter(|s| !(1..=limits.max_steps).contains(s)) {
        return Err(err(
            "num_inference_steps",
            format!("must be between 1 and {}, got {steps}", limits.max_steps),
        ));
    }
    let image_strength = in_range(
        "image_strength",
        body.image_strength.unwrap_or(DEFAULT_STRENGTH),
        0.0,
        1.0,
    )?;
    let audio_strength = in_range(
        "audio_strength",
        body.audio_strength.unwrap_or(DEFAULT_STRENGTH),
        0.0,
        1.0,
    )?;

    let mut images = Vec::new();
    if let Some(s) = &body.image_start {
        images.push(ImageCondition {
            image: image("image_start", s, &limits.image)?,
            frame_index: 0,
            strength: image_strength,
        });
    }
    if let Some(s) = &body.image_end {
        let image = image("image_end", s, &limits.image)?;
        images.push(ImageCondition {
            image,
            frame_index: num_frames - 1,
            strength: image_strength,
        });
    }
    let keyframes = timeline::keyframes(&body, num_frames, limits, &mut images)?;
    if images.is_empty() && body.image_strength.is_some() {
        notes.push("image_strength had no effect: no image_start or image_end was given".into());
    }
    let audio = match &body.audio {
        Some(s) => {
            // Only the part that conditions the video is kept (the engine would cut the rest);
            // the whole input is still decoded to check its length.
            let video_seconds = num_frames as f64 / fps as f64;
            let bytes = media::decode_base64_field(s).map_err(|m| err("audio", m))?;
            let decode = AudioLimits {
                max_seconds: limits.max_audio_seconds,
                keep_seconds: Some(
                    video_seconds + body.audio_start_seconds.unwrap_or(0.0).max(0.0) as f64,
                ),
                keep_channels: 2,
            };
            let clip = media::decode_audio(&bytes, &decode).map_err(|m| err("audio", m))?;
            let clip = timeline::audio_start(&body, clip, &mut notes)?;
            check_conditioning(&clip, video_seconds, &limits.audio_input)
                .map_err(|m| err("audio", m))?;
            Some((clip, audio_strength))
        }
        None => {
            if body.audio_strength.is_some() {
                notes.push("audio_strength had no effect: no audio was given".into());
            }
            if body.audio_start_seconds.is_some() {
                notes.push("audio_start_seconds had no effect: no audio was given".into());
            }
            None
        }
    };
    let timeline_clip = timeline::clip(&body, limits)?;
    let loras: Vec<LoraChoice> = body
        .loras
        .unwrap_or_default()
        .into_iter()
        .map(|l| LoraChoice {
            name: l.name,
            strength: l.strength.unwrap_or(1.0),
        })
        .collect();
    if !loras.is_empty() {
        let Some(catalog) = &limits.loras else {
            return Err(err(
                "loras",
                "this server has no LoRA folder (start it with --lora-dir)",
            ));
        };
        catalog.check(&loras).map_err(|m| err("loras", m))?;
    }
    let clip = control_video(
        ControlFields {
            control_video: body.control_video.as_ref(),
            control_strength: body.control_strength,
            control_attention_strength: body.control_attention_strength,
            has_audio: body.audio.is_some(),
        },
        num_frames,
        &loras,
        &mut notes,
    )?;
    let negative_prompt_given = body.negative_prompt.is_some();
    let (seed, seed_was_random) = match body.seed {
        Some(s) => (s, false),
        None => (rand::random_range(1..=u32::MAX) as u64, true),
    };

    Ok(ValidRequest {
        request: GenerateRequest {
            prompt: body.prompt,
            negative_prompt: body
                .negative_prompt
                .unwrap_or_else(|| DEFAULT_NEGATIVE_PROMPT.into()),
            width,
            height,
            num_frames,
            fps: fps as f32,
            guidance_scale,
            num_inference_steps: steps,
            seed,
            images,
            audio,
            include_audio: body.include_audio.unwrap_or(true),
            auto_duration,
            loras,
            clip: timeline_clip.or(clip),
            keyframes,
        },
        has_image_start: body.image_start.is_some(),
        has_image_end: body.image_end.is_some(),
        seed_was_random,
        negative_prompt_given,
        notes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    fn limits() -> Limits {
        let c = crate::ServerConfig::default();
        Limits {
            max_width: c.max_width,
            max_height: c.max_height,
            max_frames: c.max_frames,
            max_steps: c.max_steps,
            image: ImageLimits {
                max_pixels: c.max_image_pixels,
            },
            max_audio_seconds: c.max_audio_seconds,
            audio_input: AudioInputSpec {
                sample_rate: 16_000,
                min_samples: 513,
            },
            auto_duration: false,
            loras: None,
        }
    }

    fn check(body: Value) -> Result<ValidRequest, ValidationError> {
        let (b, notes) = GenerateBody::from_json(body)?;
        validate(b, &limits(), notes)
    }

    /// With a model that has a duration head (LTX-2.5).
    fn check_auto(body: Value) -> Result<ValidRequest, ValidationError> {
        let (b, notes) = GenerateBody::from_json(body)?;
        let limits = Limits {
            auto_duration: true,
            ..limits()
        };
        validate(b, &limits, notes)
    }

    fn check_loras(body: Value) -> Result<ValidRequest, ValidationError> {
        let (b, notes) = GenerateBody::from_json(body)?;
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../testdata/golden-pipelines/loras");
        let limits = Limits {
            loras: Some(ltx2_pipeline::loras::LoraCatalog::new(&dir).unwrap()),
            ..limits()
        };
        validate(b, &limits, notes)
    }

    #[test]
    fn loras_are_validated_by_name_and_strength() {
        let v = check_loras(json!({"prompt": "x", "loras": [
            {"name": "2.0-a", "strength": 0.8}, {"name": "2.0-b.safetensors"}]}))
        .unwrap();
        let names: Vec<_> = v
            .request
            .loras
            .iter()
            .map(|l| (l.name.as_str(), l.strength))
            .collect();
        assert_eq!(names, [("2.0-a", 0.8), ("2.0-b.safetensors", 1.0)]);
        for body in [
            json!({"prompt": "x", "loras": "2.0-a"}),
            json!({"prompt": "x", "loras": [{"name": "../loras/2.0-a"}]}),
            json!({"prompt": "x", "loras": [{"name": "/etc/passwd"}]}),
            json!({"prompt": "x", "loras": [{"name": "missing"}]}),
            json!({"prompt": "x", "loras": [{"name": ".hidden"}]}),
            json!({"prompt": "x", "loras": [{"name": "2.0-a", "strength": 50}]}),
            json!({"prompt": "x", "loras": [{"name": "2.0-a", "strength": "1"}]}),
            json!({"prompt": "x", "loras": [{"name": "2.0-a", "weight": 1}]}),
            json!({"prompt": "x", "loras": [{"strength": 1}]}),
            json!({"prompt": "x", "loras": [{"name": "2.0-a"}, {"name": "2.0-a"}]}),
            json!({"prompt": "x", "loras": [1]}),
        ] {
            let e = check_loras(body.clone()).unwrap_err();
            assert_eq!(e.field, "loras", "{body}: {e}");
        }
        // No LoRA folder: refused, saying how to enable them.
        let e = check(json!({"prompt": "x", "loras": [{"name": "2.0-a"}]})).unwrap_err();
        assert!(
            e.field == "loras" && e.message.contains("--lora-dir"),
            "{e}"
        );
        // An empty list is no LoRA.
        assert!(check(json!({"prompt": "x", "loras": []}))
            .unwrap()
            .request
            .loras
            .is_empty());
    }

    #[test]
    fn auto_duration_needs_a_duration_head() {
        let e = check(json!({"prompt": "x", "num_frames": "auto"})).unwrap_err();
        assert_eq!(e.field, "num_frames");
        assert!(e.message.contains("duration head"), "{}", e.message);
        let e = check_auto(json!({"prompt": "x", "num_frames": "long"})).unwrap_err();
        assert_eq!(e.field, "num_frames");
    }

    #[test]
    fn auto_duration_bounds() {
        let max_frames = crate::ServerConfig::default().max_frames;
        // Defaults: ltx-pipelines' 1 s to 20 s, held to the server's longest clip (silently:
        // the client asked for no bound).
        let v = check_auto(json!({"prompt": "x", "num_frames": "auto"})).unwrap();
        let auto = v.request.auto_duration.unwrap();
        assert_eq!(v.request.num_frames, max_frames);
        assert_eq!(auto.min_seconds, 1.0);
        assert!((auto.max_seconds - max_frames as f64 / 25.0).abs() < 1e-9);
        assert!(v.notes.is_empty(), "{:?}", v.notes);
        // 2 s at 25 fps: at most 50 frames -> 49 (8k+1).
        let v = check_auto(json!({"prompt": "x", "num_frames": "auto",
            "min_duration_seconds": 0.5, "max_duration_seconds": 2}))
        .unwrap();
        let auto = v.request.auto_duration.unwrap();
        assert_eq!(
            (v.request.num_frames, auto.min_seconds, auto.max_seconds),
            (49, 0.5, 2.0)
        );
        // A longer bound than the server allows is held to it, with a note.
        let v =
            check_auto(json!({"prompt": "x", "num_frames": "auto", "max_duration_seconds": 60}))
                .unwrap();
        assert_eq!(v.request.num_frames, max_frames);
        assert!(
            v.notes
                .iter()
                .any(|n| n.starts_with("max_duration_seconds")),
            "{:?}",
            v.notes
        );
        for (body, field) in [
            (
                json!({"prompt": "x", "num_frames": "auto", "min_duration_seconds": -1}),
                "min_duration_seconds",
            ),
            (
                json!({"prompt": "x", "num_frames": "auto", "min_duration_seconds": 3, "max_duration_seconds": 2}),
                "max_duration_seconds",
            ),
            (
                json!({"prompt": "x", "num_frames": "auto", "min_duration_seconds": 600}),
                "min_duration_seconds",
            ),
            (
                json!({"prompt": "x", "num_frames": "auto", "max_duration_seconds": "5"}),
                "max_duration_seconds",
            ),
        ] {
            assert_eq!(check_auto(body).unwrap_err().field, field);
        }
        // Bounds without "auto" do nothing, and say so.
        let v = check_auto(json!({"prompt": "x", "num_frames": 49, "max_duration_seconds": 3}))
            .unwrap();
        assert!(v.request.auto_duration.is_none());
        assert!(v
            .notes
            .iter()
            .any(|n| n.contains("max_duration_seconds had no effect")));
    }

    #[test]
    fn defaults_match_the_spec() {
        let v = check(json!({"prompt": "a cat"})).unwrap();
        let r = &v.request;
        assert_eq!(
            (r.width, r.height, r.num_frames, r.fps),
            (288, 512, 49, 25.0)
        );
        // Steps are left to the model: 40 (the spec's value) for LTX-2, 30 for LTX-2.3.
        assert_eq!((r.guidance_scale, r.num_inference_steps), (3.0, None));
        assert_eq!(r.negative_prompt, DEFAULT_NEGATIVE_PROMPT);
        assert!(r.include_audio && r.audio.is_none() && r.images.is_empty());
        assert!(v.seed_was_random && r.seed != 0 && r.seed <= u32::MAX as u64);
        assert!(v.notes.is_empty());
    }

    #[test]
    fn errors_name_the_field() {
        let cases = [
            (json!({}), "prompt"),
            (json!({"prompt": "  "}), "prompt"),
            (json!({"prompt": 3}), "prompt"),
            (json!({"prompt": "x", "width": 300}), "width"),
            (json!({"prompt": "x", "height": 32}), "height"),
            (json!({"prompt": "x", "width": "288"}), "width"),
            (json!({"prompt": "x", "num_frames": 48}), "num_frames"),
            (json!({"prompt": "x", "fps": 0}), "fps"),
            (json!({"prompt": "x", "fps": 24.5}), "fps"),
            (
                json!({"prompt": "x", "guidance_scale": 0.5}),
                "guidance_scale",
            ),
            (
                json!({"prompt": "x", "num_inference_steps": 0}),
                "num_inference_steps",
            ),
            (json!({"prompt": "x", "seed": -1}), "seed"),
            (
                json!({"prompt": "x", "image_strength": 1.5}),
                "image_strength",
            ),
            (
                json!({"prompt": "x", "audio_strength": -0.1}),
                "audio_strength",
            ),
            (
                json!({"prompt": "x", "include_audio": "yes"}),
                "include_audio",
            ),
            (
                json!({"prompt": "x", "image_start": "not base64!"}),
                "image_start",
            ),
            (json!({"prompt": "x", "image_end": "aGVsbG8="}), "image_end"),
            (json!({"prompt": "x", "audio": "aGVsbG8="}), "audio"),
            (json!([1, 2]), "body"),
        ];
        for (body, field) in cases {
            let e = check(body.clone()).expect_err(&body.to_string());
            assert_eq!(e.field, field, "{body} -> {e}");
        }
    }

    #[test]
    fn nearest_valid_values_are_named() {
        let e = check(json!({"prompt": "x", "num_frames": 48})).unwrap_err();
        assert!(e.message.contains("41 or 49"), "{e}");
        let e = check(json!({"prompt": "x", "width": 300})).unwrap_err();
        assert!(e.message.contains("288 or 320"), "{e}");
    }

    #[test]
    fn ineffective_fields_are_reported() {
        let v =
            check(json!({"prompt": "x", "image_strength": 0.5, "audio_strength": 0.3, "foo": 1}))
                .unwrap();
        assert_eq!(v.notes.len(), 3, "{:?}", v.notes);
        let v = check(json!({"prompt": "x", "seed": 0, "width": 288.0, "negative_prompt": null}))
            .unwrap();
        assert_eq!(
            (v.request.seed, v.seed_was_random, v.request.width),
            (0, false, 288)
        );
    }
}
