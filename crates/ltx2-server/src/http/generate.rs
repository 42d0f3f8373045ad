//! POST /generate: validate, queue, wait, encode the MP4, answer with the spec's fields plus what
//! was really done.

use std::time::{Duration, Instant};

use axum::extract::State;
use axum::Json;
use base64::Engine;
use ltx2_pipeline::media::mp4::{aac_output_rate, encode_mp4};
use ltx2_pipeline::{EffectiveParams, GenerateRequest, ModelInfo};
use serde::Serialize;
use serde_json::value::RawValue;
use serde_json::Value;
use tokio::sync::Semaphore;
use utoipa::ToSchema;

use super::error::{ApiError, AppJson, ErrorResponse, ErrorType};
use crate::engine::JobOutput;
use crate::validation::{self, GenerateBody, Limits, ValidRequest, ValidationError};
use crate::AppState;

/// Response of `POST /generate`: the spec's fields first, then extras describing what was done.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct GenerateResponse {
    /// `data:video/mp4;base64,...` (H.264 yuv420p + AAC-LC, moov first).
    pub video: String,
    /// Frames / fps of the returned video, rounded to 2 decimals.
    #[schema(example = 1.96)]
    pub duration_seconds: f64,
    /// `WIDTHxHEIGHT` of the returned video.
    #[schema(example = "288x512")]
    pub resolution: String,
    #[schema(example = 25)]
    pub fps: u32,
    /// The seed used (drawn at random when the request had none).
    #[schema(example = 1234567890)]
    pub seed: u64,
    /// Engine run time plus MP4 encoding, excluding time spent queued; rounded to 2 decimals.
    pub generation_time_seconds: f64,
    /// Whether the MP4 has an audio track.
    pub has_audio: bool,
    /// Sample rate of the MP4's AAC track (stereo): the model's vocoder rate (24000 for LTX-2,
    /// 48000 for LTX-2.3), or the input audio's when it was returned unchanged; null without audio.
    #[schema(example = 48000)]
    pub audio_sample_rate: Option<u32>,
    pub has_image_start: bool,
    pub has_image_end: bool,
    /// True when `seed` was drawn by the server.
    pub seed_was_random: bool,
    pub num_frames: u32,
    pub width: u32,
    pub height: u32,
    /// Size of the MP4 in bytes (before base64).
    pub video_bytes: usize,
    /// Parameters the engine really used.
    pub effective: Effective,
    pub timings: Timings,
    /// Adjustments and fields that had no effect (server and engine), in plain words.
    pub notes: Vec<String>,
    /// Loaded model (`demo` means random weights: the video is noise, not the prompt).
    pub model: String,
    /// Its generation: "LTX-2 (19B)" or "LTX-2.3 (22B)".
    pub model_generation: String,
    pub is_demo: bool,
}

/// Mirror of the engine's `EffectiveParams` (schema for OpenAPI).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Effective {
    /// `distilled_two_stage`, `distilled_one_stage`, `dev_two_stage`, `dev` or `ic_lora`.
    pub pipeline: String,
    /// Transformer evaluations per stage, e.g. `[8, 3]`.
    pub steps_per_stage: Vec<u32>,
    /// Transformer forwards per step (2 with CFG).
    pub forwards_per_step: u32,
    pub guidance_scale: f32,
    pub negative_prompt_used: bool,
    /// Size the model rendered before any resize to the requested size.
    pub rendered_width: u32,
    pub rendered_height: u32,
    pub num_frames: u32,
    pub fps: f32,
    pub seed: u64,
    /// The LoRAs fused into the model for this request, in stack order.
    pub loras: Vec<crate::validation::LoraBody>,
}

impl From<&EffectiveParams> for Effective {
    fn from(e: &EffectiveParams) -> Self {
        let pipeline = serde_json::to_value(e.pipeline)
            .ok()
            .and_then(|v| v.as_str().map(String::from));
        Self {
            pipeline: pipeline.unwrap_or_else(|| format!("{:?}", e.pipeline)),
            steps_per_stage: e.steps_per_stage.clone(),
            forwards_per_step: e.forwards_per_step,
            guidance_scale: e.guidance_scale,
            negative_prompt_used: e.negative_prompt_used,
            rendered_width: e.rendered_width,
            rendered_height: e.rendered_height,
            num_frames: e.num_frames,
            fps: e.fps,
            seed: e.seed,
            loras: e
                .loras
                .iter()
                .map(|l| crate::validation::LoraBody {
                    name: l.name.clone(),
                    strength: Some(l.strength),
                })
                .collect(),
        }
    }
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Timings {
    /// Waiting in the queue.
    pub queue_seconds: f64,
    /// The engine's run, all stages.
    pub engine_seconds: f64,
    pub encode_seconds: f64,
    /// Engine stages in execution order.
    pub stages: Vec<StageTiming>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct StageTiming {
    pub stage: String,
    pub seconds: f64,
}

/// What the request asked for, to spot engine changes the engine did not explain.
#[derive(Debug, Clone)]
struct Asked {
    guidance_scale: f32,
    /// `None`: the request left the steps to the model.
    steps: Option<u32>,
    num_frames: u32,
    fps: f32,
    seed: u64,
    negative_prompt_given: bool,
}

impl Asked {
    fn of(r: &ltx2_pipeline::GenerateRequest, negative_prompt_given: bool) -> Self {
        Self {
            guidance_scale: r.guidance_scale,
            steps: r.num_inference_steps,
            num_frames: r.num_frames,
            fps: r.fps,
            seed: r.seed,
            negative_prompt_given,
        }
    }

    /// Adds a note for each parameter the engine changed without a note naming it.
    fn note_differences(&self, e: &EffectiveParams, notes: &mut Vec<String>) {
        let changed = |field: &str, asked: String, used: String| {
            format!("{field}: requested {asked}, used {used}")
        };
        let mut diffs = Vec::new();
        if e.guidance_scale != self.guidance_scale {
            diffs.push((
                "guidance_scale",
                changed(
                    "guidance_scale",
                    self.guidance_scale.to_string(),
                    e.guidance_scale.to_string(),
                ),
            ));
        }
        if let Some(steps) = self.steps.filter(|s| e.steps_per_stage != [*s]) {
            let used = format!("{:?} steps per stage", e.steps_per_stage);
            diffs.push((
                "num_inference_steps",
                changed("num_inference_steps", steps.to_string(), used),
            ));
        }
        if e.num_frames != self.num_frames {
            diffs.push((
                "num_frames",
                changed(
                    "num_frames",
                    self.num_frames.to_string(),
                    e.num_frames.to_string(),
                ),
            ));
        }
        if e.fps != self.fps {
            diffs.push((
                "fps",
                changed("fps", self.fps.to_string(), e.fps.to_string()),
            ));
        }
        if e.seed != self.seed {
            diffs.push((
                "seed",
                changed("seed", self.seed.to_string(), e.seed.to_string()),
            ));
        }
        if self.negative_prompt_given && !e.negative_prompt_used {
            diffs.push((
                "negative_prompt",
                "negative_prompt had no effect: this run used no CFG".into(),
            ));
        }
        for (field, note) in diffs {
            if !notes.iter().any(|n| n.contains(field)) {
                notes.push(note);
            }
        }
    }
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// Generate a video (with audio) from a prompt, optional start/end images and optional audio.
#[utoipa::path(
    post,
    path = "/generate",
    request_body = GenerateBody,
    responses(
        (status = 200, description = "The video", body = GenerateResponse),
        (status = 400, description = "Body is not JSON", body = ErrorResponse),
        (status = 413, description = "Body over the size limit", body = ErrorResponse),
        (status = 415, description = "Content-Type is not application/json", body = ErrorResponse),
        (status = 422, description = "A field is invalid (named in `field`)", body = ErrorResponse),
        (status = 429, description = "Queue full; see Retry-After", body = ErrorResponse),
        (status = 500, description = "Generation or encoding failed", body = ErrorResponse),
        (status = 503, description = "Engine not running", body = ErrorResponse),
        (status = 504, description = "Request timed out", body = ErrorResponse),
    )
)]
pub async fn generate(
    State(state): State<AppState>,
    AppJson(body): AppJson<Box<RawValue>>,
) -> Result<Json<GenerateResponse>, ApiError> {
    let valid = validate_raw(state.limits(), body).await?;
    let (request, meta) = ResponseMeta::split(valid);
    let rx = state.engine.submit(request)?;
    let timeout = Duration::from_secs(state.config.request_timeout_secs);
    // Dropping `rx` (timeout, or this future dropped because the client left) cancels the job.
    let job = tokio::time::timeout(timeout, rx)
        .await
        .map_err(|_| {
            ApiError::new(
                ErrorType::Timeout,
                format!("no result within {}s", timeout.as_secs()),
            )
        })?
        .map_err(|_| ApiError::new(ErrorType::Unhealthy, "the generation engine stopped"))??;
    Ok(Json(finish(state.engine.info(), meta, job).await?.response))
}

/// Request bodies decoded at once, at most: decoding images and audio is CPU and memory heavy,
/// and each decode is bounded on its own (see `Limits`), so this bounds them all together.
pub const MAX_CONCURRENT_DECODES: usize = 4;
static DECODES: Semaphore = Semaphore::const_new(MAX_CONCURRENT_DECODES);

/// Reads and validates a `/generate` body (JSON value) off the async workers: decoding base64
/// images/audio is CPU work. Shared by the RunPod worker and its local API.
pub async fn validate_json(limits: Limits, body: Value) -> Result<ValidRequest, ApiError> {
    validate_off_thread(limits, move || GenerateBody::from_json(body)).await
}

/// [`validate_json`] of a raw body (`/generate`, `/jobs`): only known fields are parsed.
pub async fn validate_raw(limits: Limits, body: Box<RawValue>) -> Result<ValidRequest, ApiError> {
    validate_off_thread(limits, move || GenerateBody::from_raw(body)).await
}

async fn validate_off_thread(
    limits: Limits,
    read: impl FnOnce() -> Result<(GenerateBody, Vec<String>), ValidationError> + Send + 'static,
) -> Result<ValidRequest, ApiError> {
    let _permit = DECODES
        .acquire()
        .await
        .map_err(|_| ApiError::new(ErrorType::Unhealthy, "the server is shutting down"))?;
    tokio::task::spawn_blocking(move || {
        let (body, notes) = read()?;
        validation::validate(body, &limits, notes)
    })
    .await
    .map_err(|e| {
        ApiError::internal(
            ErrorType::Generation,
            format!("validation task failed: {e}"),
        )
    })?
    .map_err(ApiError::from)
}

/// What the response reports about the request itself, kept while the engine has the request.
#[derive(Debug, Clone)]
pub struct ResponseMeta {
    pub include_audio: bool,
    pub has_image_start: bool,
    pub has_image_end: bool,
    pub seed_was_random: bool,
    pub notes: Vec<String>,
    asked: Asked,
}

impl ResponseMeta {
    pub fn split(valid: ValidRequest) -> (GenerateRequest, ResponseMeta) {
        let meta = ResponseMeta {
            include_audio: valid.request.include_audio,
            has_image_start: valid.has_image_start,
            has_image_end: valid.has_image_end,
            seed_was_random: valid.seed_was_random,
            asked: Asked::of(&valid.request, valid.negative_prompt_given),
            notes: valid.notes,
        };
        (valid.request, meta)
    }
}

/// A finished generation: the MP4 and the `/generate` response (whose `video` is its data URI).
#[derive(Debug)]
pub struct Encoded {
    pub mp4: Vec<u8>,
    pub response: GenerateResponse,
}

/// Encodes the engine's output to MP4 and builds the `/generate` response.
pub async fn finish(
    info: &ModelInfo,
    meta: ResponseMeta,
    job: JobOutput,
) -> Result<Encoded, ApiError> {
    let mut notes = meta.notes;
    let out = job.output;
    notes.extend(out.effective.notes.iter().cloned());
    meta.asked.note_differences(&out.effective, &mut notes);
    let audio = match (meta.include_audio, out.audio) {
        (true, None) => {
            notes.push("include_audio was true but the engine produced no audio".into());
            None
        }
        (false, Some(_)) => None,
        (_, audio) => audio,
    };
    let has_audio = audio.is_some();
    let audio_sample_rate = audio.as_ref().map(|a| aac_output_rate(a.sample_rate));
    let video = out.video;
    let encode_start = Instant::now();
    let (mp4, video) =
        tokio::task::spawn_blocking(move || encode_mp4(&video, audio.as_ref()).map(|m| (m, video)))
            .await
            .map_err(|e| {
                ApiError::internal(ErrorType::Encoding, format!("encoder task failed: {e}"))
            })?
            .map_err(|e| ApiError::internal(ErrorType::Encoding, e))?;
    let encode_seconds = encode_start.elapsed().as_secs_f64();

    let num_frames = video.frames.len() as u32;
    let response = GenerateResponse {
        video: format!(
            "data:video/mp4;base64,{}",
            base64::engine::general_purpose::STANDARD.encode(&mp4)
        ),
        duration_seconds: round2(num_frames as f64 / video.fps as f64),
        resolution: format!("{}x{}", video.width, video.height),
        fps: video.fps.round() as u32,
        seed: out.effective.seed,
        generation_time_seconds: round2(job.run_seconds + encode_seconds),
        has_audio,
        audio_sample_rate,
        has_image_start: meta.has_image_start,
        has_image_end: meta.has_image_end,
        seed_was_random: meta.seed_was_random,
        num_frames,
        width: video.width,
        height: video.height,
        video_bytes: mp4.len(),
        effective: Effective::from(&out.effective),
        timings: Timings {
            queue_seconds: job.queue_seconds,
            engine_seconds: job.run_seconds,
            encode_seconds,
            stages: out
                .timings
                .stages
                .iter()
                .map(|(stage, seconds)| StageTiming {
                    stage: stage.clone(),
                    seconds: *seconds,
                })
                .collect(),
        },
        notes,
        model: info.name.clone(),
        model_generation: info.generation.clone(),
        is_demo: info.is_demo,
    };
    Ok(Encoded { mp4, response })
}
