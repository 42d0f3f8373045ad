//! The JSON body of `POST /generate`, read field by field so a wrong type names its field.
//!
//! From HTTP the body arrives as raw JSON and only the known fields' scalars are ever parsed into
//! values: a body of deeply nested or huge arrays costs its own size once, not the ~10x a
//! `serde_json::Value` tree of it would.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::{Map, Value};
use utoipa::ToSchema;

use super::{err, ValidationError};

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
    /// Number of frames, 8k+1 (9, 17, 25, ..., 49, ..., 121), or `"auto"`: the model chooses the
    /// length from the prompt (LTX-2.5's duration head) between `min_duration_seconds` and
    /// `max_duration_seconds`; the response's `num_frames` and `duration_seconds` say what it chose.
    #[schema(default = 49)]
    pub num_frames: Option<NumFrames>,
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
    /// Shortest clip `num_frames: "auto"` may choose, in seconds.
    #[schema(default = 1.0, minimum = 0.0)]
    pub min_duration_seconds: Option<f32>,
    /// Longest clip `num_frames: "auto"` may choose, in seconds (also bounded by the server's
    /// largest `num_frames`).
    #[schema(default = 20.0, minimum = 0.0)]
    pub max_duration_seconds: Option<f32>,
    /// LoRAs from the server's LoRA folder (`GET /loras`) fused into the model for this request,
    /// in stack order (at most 8).
    pub loras: Option<Vec<LoraBody>>,
    /// Base64 (data URI or bare) MP4 (H.264) control video for an IC-LoRA in `loras` (depth,
    /// pose, edges, ...): decoded in-process, its first `num_frames` frames resized to the
    /// reference size. Needs a distilled checkpoint with its x2 upsampler.
    pub control_video: Option<String>,
    /// How firmly the generation follows the control video, in [0, 1] (the reference tokens'
    /// conditioning strength; 1 = kept as given).
    #[schema(default = 1.0, minimum = 0.0, maximum = 1.0)]
    pub control_strength: Option<f32>,
    /// Attention weight between the generated video and the control video, in [0, 1]
    /// (ltx-pipelines' `conditioning_attention_strength`; 1 = plain attention).
    #[schema(default = 1.0, minimum = 0.0, maximum = 1.0)]
    pub control_attention_strength: Option<f32>,
    /// Images pinned to any frames (0 .. num_frames-1, not only multiples of 8), at most 16. On a
    /// dev checkpoint with the two-stage setup this runs ltx-pipelines'
    /// `KeyframeInterpolationPipeline`; `image_start` / `image_end` are shortcuts for frames 0 and
    /// the last.
    pub keyframes: Option<Vec<KeyframeBody>>,
    /// Where the conditioning `audio` starts, in seconds (A2V: the official call's
    /// `audio_start_time`; the clip's length is the maximum duration).
    #[schema(default = 0.0, minimum = 0.0)]
    pub audio_start_seconds: Option<f32>,
    /// Base64 (data URI or bare) MP4 (H.264, optional AAC) to retake or extend, decoded in-process;
    /// the output keeps its size and frame rate.
    pub video: Option<String>,
    /// Regenerate a time span of `video` and keep the rest (ltx-pipelines' `RetakePipeline`).
    pub retake: Option<RetakeBody>,
    /// Continue `video` (its last frames and audio condition the new ones); the response is the
    /// whole extended clip.
    pub extend: Option<ExtendBody>,
}

/// One keyframe.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct KeyframeBody {
    /// Base64 (data URI or bare) PNG/JPEG/WebP.
    pub image: String,
    /// The pixel frame it pins, 0 .. num_frames-1.
    pub frame: u32,
    /// In [0, 1] (1 = the frame is pinned to the image).
    #[schema(default = 1.0, minimum = 0.0, maximum = 1.0)]
    pub strength: Option<f32>,
}

/// What to retake.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RetakeBody {
    /// Start of the span, seconds from the clip's start.
    pub start_seconds: f64,
    /// End of the span (exclusive), within the clip.
    pub end_seconds: f64,
    /// `video`, `audio` or `both`.
    #[schema(default = "both")]
    pub regenerate: Option<String>,
}

/// How far to extend.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ExtendBody {
    /// New frames appended to the clip.
    pub num_frames: u32,
}

/// One LoRA of a request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct LoraBody {
    /// Its name in `GET /loras` (the file name in the LoRA folder, `.safetensors` optional).
    #[schema(example = "my-style")]
    pub name: String,
    /// Multiplies the LoRA's effect (1 = as trained).
    #[schema(default = 1.0, minimum = -10.0, maximum = 10.0)]
    pub strength: Option<f32>,
}

/// `num_frames`: a frame count (8k+1) or the word `"auto"`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum NumFrames {
    Count(u32),
    Auto(Auto),
}

/// The word `"auto"`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Auto {
    Auto,
}

const KNOWN_FIELDS: [&str; 26] = [
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
    "min_duration_seconds",
    "max_duration_seconds",
    "loras",
    "control_video",
    "control_strength",
    "control_attention_strength",
    "keyframes",
    "audio_start_seconds",
    "video",
    "retake",
    "extend",
];

/// A note per unknown field, in key order.
fn unknown_field_notes<'a>(keys: impl Iterator<Item = &'a String>) -> Vec<String> {
    keys.filter(|k| !KNOWN_FIELDS.contains(&k.as_str()))
        .map(|k| format!("unknown field `{k}` ignored"))
        .collect()
}

impl GenerateBody {
    /// Reads a JSON body field by field; returns the notes about unknown fields.
    pub fn from_json(body: Value) -> Result<(Self, Vec<String>), ValidationError> {
        let Value::Object(obj) = body else {
            return Err(err("body", "must be a JSON object"));
        };
        let notes = unknown_field_notes(obj.keys());
        Self::from_map(obj, notes)
    }

    /// [`Self::from_json`] of a raw JSON body: unknown fields are never parsed, and a known field
    /// holding an array or object is refused for its type without being parsed either.
    pub fn from_raw(body: Box<RawValue>) -> Result<(Self, Vec<String>), ValidationError> {
        let mut fields: BTreeMap<String, Box<RawValue>> =
            serde_json::from_str(body.get()).map_err(|_| err("body", "must be a JSON object"))?;
        drop(body);
        let notes = unknown_field_notes(fields.keys());
        let mut obj = Map::new();
        for name in KNOWN_FIELDS {
            let Some(raw) = fields.remove(name) else {
                continue;
            };
            let value = match raw.get().trim_start().as_bytes().first() {
                // The array and object fields: parsed (the body is size-bounded already).
                Some(b'[' | b'{') if PARSED_WHOLE.contains(&name) => {
                    serde_json::from_str(raw.get()).map_err(|e| err(name, e.to_string()))?
                }
                // Only the kind matters for the error; the content stays unparsed.
                Some(b'[') => Value::Array(Vec::new()),
                Some(b'{') => Value::Object(Map::new()),
                _ => serde_json::from_str(raw.get()).map_err(|e| err(name, e.to_string()))?,
            };
            obj.insert(name.to_string(), value);
        }
        Self::from_map(obj, notes)
    }

    /// Reads the fields out of `obj` (strings are moved, not copied: media fields are large).
    fn from_map(
        mut obj: Map<String, Value>,
        notes: Vec<String>,
    ) -> Result<(Self, Vec<String>), ValidationError> {
        let obj = &mut obj;
        let parsed = Self {
            prompt: string(obj, "prompt")?.ok_or_else(|| err("prompt", "is required"))?,
            negative_prompt: string(obj, "negative_prompt")?,
            width: uint(obj, "width")?,
            height: uint(obj, "height")?,
            num_frames: num_frames(obj)?,
            fps: uint(obj, "fps")?,
            guidance_scale: float(obj, "guidance_scale")?,
            num_inference_steps: uint(obj, "num_inference_steps")?,
            seed: integer(obj, "seed")?
                .map(|s| {
                    u64::try_from(s).map_err(|_| {
                        err(
                            "seed",
                            format!("must be between 0 and {}, got {s}", u64::MAX),
                        )
                    })
                })
                .transpose()?,
            image_start: string(obj, "image_start")?,
            image_end: string(obj, "image_end")?,
            image_strength: float(obj, "image_strength")?,
            include_audio: match field(obj, "include_audio") {
                None => None,
                Some(Value::Bool(b)) => Some(*b),
                Some(v) => {
                    return Err(err(
                        "include_audio",
                        format!("must be true or false, got {}", kind(v)),
                    ))
                }
            },
            audio: string(obj, "audio")?,
            audio_strength: float(obj, "audio_strength")?,
            min_duration_seconds: float(obj, "min_duration_seconds")?,
            max_duration_seconds: float(obj, "max_duration_seconds")?,
            loras: loras(obj)?,
            control_video: string(obj, "control_video")?,
            control_strength: float(obj, "control_strength")?,
            control_attention_strength: float(obj, "control_attention_strength")?,
            keyframes: nested(obj, "keyframes")?,
            audio_start_seconds: float(obj, "audio_start_seconds")?,
            video: string(obj, "video")?,
            retake: nested(obj, "retake")?,
            extend: nested(obj, "extend")?,
        };
        Ok((parsed, notes))
    }
}

/// The fields that are arrays or objects, parsed whole (the body is size-bounded already).
const PARSED_WHOLE: [&str; 4] = ["loras", "keyframes", "retake", "extend"];

/// An array or object field read with its schema; the error names the field and the problem.
fn nested<T: serde::de::DeserializeOwned>(
    obj: &mut Map<String, Value>,
    name: &'static str,
) -> Result<Option<T>, ValidationError> {
    match obj.remove(name) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => serde_json::from_value(v)
            .map(Some)
            .map_err(|e| err(name, format!("is malformed: {e}"))),
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

fn string(
    obj: &mut Map<String, Value>,
    name: &'static str,
) -> Result<Option<String>, ValidationError> {
    match obj.remove(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(v) => Err(err(name, format!("must be a string, got {}", kind(&v)))),
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

fn loras(obj: &mut Map<String, Value>) -> Result<Option<Vec<LoraBody>>, ValidationError> {
    let entries = match obj.remove("loras") {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Array(a)) => a,
        Some(v) => {
            return Err(err(
                "loras",
                format!(
                    "must be a list of {{\"name\", \"strength\"}} objects, got {}",
                    kind(&v)
                ),
            ))
        }
    };
    let mut out = Vec::with_capacity(entries.len());
    for (i, e) in entries.into_iter().enumerate() {
        let Value::Object(mut m) = e else {
            return Err(err(
                "loras",
                format!(
                    "[{i}] must be an object {{\"name\": ..., \"strength\": ...}}, got {}",
                    kind(&e)
                ),
            ));
        };
        if let Some(k) = m.keys().find(|k| *k != "name" && *k != "strength") {
            return Err(err(
                "loras",
                format!("[{i}] has an unknown key {k:?} (name, strength)"),
            ));
        }
        let name = match m.remove("name") {
            Some(Value::String(s)) => s,
            Some(v) => {
                return Err(err(
                    "loras",
                    format!("[{i}].name must be a string, got {}", kind(&v)),
                ))
            }
            None => return Err(err("loras", format!("[{i}].name is required"))),
        };
        let strength = match m.remove("strength") {
            None | Some(Value::Null) => None,
            Some(Value::Number(n)) => match n.as_f64() {
                Some(f) if f.is_finite() && f.abs() <= f32::MAX as f64 => Some(f as f32),
                _ => {
                    return Err(err(
                        "loras",
                        format!("[{i}].strength must be a finite number, got {n}"),
                    ))
                }
            },
            Some(v) => {
                return Err(err(
                    "loras",
                    format!("[{i}].strength must be a number, got {}", kind(&v)),
                ))
            }
        };
        out.push(LoraBody { name, strength });
    }
    Ok(Some(out))
}

fn num_frames(obj: &Map<String, Value>) -> Result<Option<NumFrames>, ValidationError> {
    match field(obj, "num_frames") {
        Some(Value::String(s)) if s == "auto" => Ok(Some(NumFrames::Auto(Auto::Auto))),
        Some(Value::String(_)) => Err(err(
            "num_frames",
            "must be a frame count (8k+1) or \"auto\", got another string",
        )),
        _ => Ok(uint(obj, "num_frames")?.map(NumFrames::Count)),
    }
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
