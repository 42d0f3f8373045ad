//! POST /generate body → a [`ValidRequest`] the engine can run as is.
//!
//! Every field is read on its own so a wrong type names the field. `num_frames` that is not
//! `8k + 1` is rejected (not snapped) with the nearest valid values in the message: a silent
//! change of the video length would surprise clients that compute durations themselves.

use ltx2_pipeline::{GenerateRequest, ImageCondition};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;

use crate::media;

pub const DEFAULT_NEGATIVE_PROMPT: &str = "blurry, low quality, distorted, glitchy, watermark";
pub const DEFAULT_WIDTH: u32 = 288;
pub const DEFAULT_HEIGHT: u32 = 512;
pub const DEFAULT_NUM_FRAMES: u32 = 49;
pub const DEFAULT_FPS: u32 = 25;
pub const DEFAULT_GUIDANCE_SCALE: f32 = 3.0;
pub const DEFAULT_STEPS: u32 = 40;
pub const DEFAULT_STRENGTH: f32 = 1.0;
pub const SIDE_MULTIPLE: u32 = 32;
pub const MIN_SIDE: u32 = 64;
pub const MIN_FRAMES: u32 = 9;
pub const MIN_FPS: u32 = 1;
pub const MAX_FPS: u32 = 120;
pub const MIN_GUIDANCE: f32 = 1.0;
pub const MAX_GUIDANCE: f32 = 20.0;

/// Configurable upper limits (see `ServerConfig`).
#[derive(Debug, Clone)]
pub struct Limits {
    pub max_width: u32,
    pub max_height: u32,
    pub max_frames: u32,
    pub max_steps: u32,
}

/// Request body of `POST /generate`. Only `prompt` is required; `null` means the default.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct GenerateBody {
    /// Video description; describe visuals and sounds. "A person speaking: ..." for speech.
    #[schema(example = "A cat sitting calmly on a cushion, soft lighting")]
    pub prompt: String,
    /// What to avoid (used with CFG, i.e. guidance_scale > 1 on the dev pipeline).
    #[schema(default = "blurry, low quality, distorted, glitchy, watermark")]
    pub negative_prompt: Option<String>,
    /// Width in pixels, a multiple of 32.
    #[schema(default = 288, minimum = 64, multiple_of = 32)]
    pub width: Option<u32>,
    /// Height in pixels, a multiple of 32.
    #[schema(default = 512, minimum = 64, multiple_of = 32)]
    pub height: Option<u32>,
    /// Number of frames, 8k+1 (9, 17, 25, ..., 49, ..., 121).
    #[schema(default = 49, minimum = 9)]
    pub num_frames: Option<u32>,
    /// Frame rate of the output video (integer).
    #[schema(default = 25, minimum = 1, maximum = 120)]
    pub fps: Option<u32>,
    /// CFG scale; 1.0 disables CFG.
    #[schema(default = 3.0, minimum = 1.0, maximum = 20.0)]
    pub guidance_scale: Option<f32>,
    /// Denoising steps (dev pipeline; the distilled pipeline uses its fixed schedule and says so).
    #[schema(default = 40, minimum = 1)]
    pub num_inference_steps: Option<u32>,
    /// Seed for reproducibility; null draws a random one, reported in the response.
    #[schema(example = 1234567890)]
    pub seed: Option<u64>,
    /// Base64 (data URI or bare) PNG/JPEG/WebP conditioning the first frame.
    pub image_start: Option<String>,
    /// Base64 (data URI or bare) PNG/JPEG/WebP conditioning the last frame.
    pub image_end: Option<String>,
    /// Image conditioning strength in [0, 1] (1 = frame pinned to the image).
    #[schema(default = 1.0, minimum = 0.0, maximum = 1.0)]
    pub image_strength: Option<f32>,
    /// Include the generated audio track in the MP4.
    #[schema(default = true)]
    pub include_audio: Option<bool>,
    /// Base64 (data URI or bare) WAV conditioning the generation (audio-to-video).
    pub audio: Option<String>,
    /// Audio conditioning strength in [0, 1].
    #[schema(default = 1.0, minimum = 0.0, maximum = 1.0)]
    pub audio_strength: Option<f32>,
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
    /// Fields that had no effect, said out loud.
    pub notes: Vec<String>,
}

const KNOWN_FIELDS: [&str; 15] = [
    "prompt",
    "negative_prompt",
    "width",
    "height",
    "num_frames",
    "fps",
    "guidance_scale",
    "num_inference_steps",
    "seed",
    "image_start",
    "image_end",
    "image_strength",
    "include_audio",
    "audio",
    "audio_strength",
];

impl GenerateBody {
    /// Reads a JSON body field by field; returns the notes about unknown fields.
    pub fn from_json(body: Value) -> Result<(Self, Vec<String>), ValidationError> {
        let Value::Object(obj) = body else {
            return Err(err("body", "must be a JSON object"));
        };
        let notes = obj
            .keys()
            .filter(|k| !KNOWN_FIELDS.contains(&k.as_str()))
            .map(|k| format!("unknown field `{k}` ignored"))
            .collect();
        let parsed = Self {
            prompt: string(&obj, "prompt")?.ok_or_else(|| err("prompt", "is required"))?,
            negative_prompt: string(&obj, "negative_prompt")?,
            width: uint(&obj, "width")?,
            height: uint(&obj, "height")?,
            num_frames: uint(&obj, "num_frames")?,
            fps: uint(&obj, "fps")?,
            guidance_scale: float(&obj, "guidance_scale")?,
            num_inference_steps: uint(&obj, "num_inference_steps")?,
            seed: integer(&obj, "seed")?
                .map(|s| {
                    u64::try_from(s).map_err(|_| {
                        err(
                            "seed",
                            format!("must be between 0 and {}, got {s}", u64::MAX),
                        )
                    })
                })
                .transpose()?,
            image_start: string(&obj, "image_start")?,
            image_end: string(&obj, "image_end")?,
            image_strength: float(&obj, "image_strength")?,
            include_audio: match field(&obj, "include_audio") {
                None => None,
                Some(Value::Bool(b)) => Some(*b),
                Some(v) => {
                    return Err(err(
                        "include_audio",
                        format!("must be true or false, got {}", kind(v)),
                    ))
                }
            },
            audio: string(&obj, "audio")?,
            audio_strength: float(&obj, "audio_strength")?,
        };
        Ok((parsed, notes))
    }
}

fn field<'a>(obj: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    obj.get(name).filter(|v| !v.is_null())
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn string(obj: &Map<String, Value>, name: &'static str) -> Result<Option<String>, ValidationError> {
    match field(obj, name) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(v) => Err(err(name, format!("must be a string, got {}", kind(v)))),
    }
}

/// Integers may be written as `288` or `288.0`.
fn integer(obj: &Map<String, Value>, name: &'static str) -> Result<Option<i128>, ValidationError> {
    let Some(v) = field(obj, name) else {
        return Ok(None);
    };
    let n = match v {
        Value::Number(n) => n,
        v => return Err(err(name, format!("must be an integer, got {}", kind(v)))),
    };
    if let Some(u) = n.as_u64() {
        return Ok(Some(u as i128));
    }
    if let Some(i) = n.as_i64() {
        return Ok(Some(i as i128));
    }
    match n.as_f64() {
        Some(f) if f.is_finite() && f.fract() == 0.0 && f.abs() < 9.0e18 => Ok(Some(f as i128)),
        _ => Err(err(name, format!("must be an integer, got {n}"))),
    }
}

fn uint(obj: &Map<String, Value>, name: &'static str) -> Result<Option<u32>, ValidationError> {
    integer(obj, name)?
        .map(|i| {
            u32::try_from(i).map_err(|_| err(name, format!("must be a positive integer, got {i}")))
        })
        .transpose()
}

fn float(obj: &Map<String, Value>, name: &'static str) -> Result<Option<f32>, ValidationError> {
    match field(obj, name) {
        None => Ok(None),
        Some(Value::Number(n)) => match n.as_f64() {
            Some(f) if f.is_finite() && f.abs() <= f32::MAX as f64 => Ok(Some(f as f32)),
            _ => Err(err(name, format!("must be a finite number, got {n}"))),
        },
        Some(v) => Err(err(name, format!("must be a number, got {}", kind(v)))),
    }
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

fn image(name: &'static str, value: &str) -> Result<ltx2_pipeline::RgbImage, ValidationError> {
    let bytes = media::decode_base64_field(value).map_err(|m| err(name, m))?;
    media::decode_image(&bytes).map_err(|m| err(name, format!("could not be decoded: {m}")))
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

    let num_frames = body.num_frames.unwrap_or(DEFAULT_NUM_FRAMES);
    if num_frames % 8 != 1 || !(MIN_FRAMES..=limits.max_frames).contains(&num_frames) {
        let below = (num_frames.saturating_sub(1) / 8 * 8 + 1).clamp(MIN_FRAMES, limits.max_frames);
        let above =
            (num_frames.saturating_sub(1).div_ceil(8) * 8 + 1).clamp(MIN_FRAMES, limits.max_frames);
        let nearest = if below == above {
            format!("{below}")
        } else {
            format!("{below} or {above}")
        };
        return Err(err(
            "num_frames",
            format!(
                "must be 8k+1 between {MIN_FRAMES} and {} (9, 17, 25, ..., 49, ..., 121), got {num_frames} (nearest valid: {nearest})",
                limits.max_frames
            ),
        ));
    }
    let fps = body.fps.unwrap_or(DEFAULT_FPS);
    if !(MIN_FPS..=MAX_FPS).contains(&fps) {
        return Err(err(
            "fps",
            format!("must be between {MIN_FPS} and {MAX_FPS}, got {fps}"),
        ));
    }
    let guidance_scale = in_range(
        "guidance_scale",
        body.guidance_scale.unwrap_or(DEFAULT_GUIDANCE_SCALE),
        MIN_GUIDANCE,
        MAX_GUIDANCE,
    )?;
    let steps = body.num_inference_steps.unwrap_or(DEFAULT_STEPS);
    if !(1..=limits.max_steps).contains(&steps) {
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
            image: image("image_start", s)?,
            frame_index: 0,
            strength: image_strength,
        });
    }
    if let Some(s) = &body.image_end {
        let image = image("image_end", s)?;
        images.push(ImageCondition {
            image,
            frame_index: num_frames - 1,
            strength: image_strength,
        });
    }
    if images.is_empty() && body.image_strength.is_some() {
        notes.push("image_strength had no effect: no image_start or image_end was given".into());
    }
    let audio = match &body.audio {
        Some(s) => {
            let bytes = media::decode_base64_field(s).map_err(|m| err("audio", m))?;
            Some((
                media::decode_audio(&bytes)
                    .map_err(|m| err("audio", format!("could not be decoded: {m}")))?,
                audio_strength,
            ))
        }
        None => {
            if body.audio_strength.is_some() {
                notes.push("audio_strength had no effect: no audio was given".into());
            }
            None
        }
    };
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
        },
        has_image_start: body.image_start.is_some(),
        has_image_end: body.image_end.is_some(),
        seed_was_random,
        notes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn limits() -> Limits {
        crate::ServerConfig::default().limits()
    }

    fn check(body: Value) -> Result<ValidRequest, ValidationError> {
        let (b, notes) = GenerateBody::from_json(body)?;
        validate(b, &limits(), notes)
    }

    #[test]
    fn defaults_match_the_spec() {
        let v = check(json!({"prompt": "a cat"})).unwrap();
        let r = &v.request;
        assert_eq!(
            (r.width, r.height, r.num_frames, r.fps),
            (288, 512, 49, 25.0)
        );
        assert_eq!((r.guidance_scale, r.num_inference_steps), (3.0, 40));
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
