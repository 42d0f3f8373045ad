//! The library API between callers (HTTP server, RunPod worker, CLI) and the generation engine.
//!
//! Callers hand a fully validated [`GenerateRequest`] to a [`Generator`] and get frames, audio and
//! the parameters that were really used back. Nothing in here names a tensor type, so the server
//! crate never depends on candle (the TEI `Backend` pattern, docs/style.md §1.1).

pub use ltx2_model::backends::BackendReport;
use std::time::Duration;

use serde::Serialize;

/// Decoded RGB image used as a conditioning frame.
#[derive(Debug, Clone, PartialEq)]
pub struct RgbImage {
    pub width: u32,
    pub height: u32,
    /// Row-major RGB8, `width * height * 3` bytes.
    pub data: Vec<u8>,
}

/// Decoded PCM audio, any sample rate and channel count.
#[derive(Debug, Clone, PartialEq)]
pub struct AudioClip {
    pub sample_rate: u32,
    /// One vector per channel, samples in [-1, 1].
    pub channels: Vec<Vec<f32>>,
}

impl AudioClip {
    pub fn num_samples(&self) -> usize {
        self.channels.first().map_or(0, Vec::len)
    }

    pub fn duration_seconds(&self) -> f64 {
        if self.sample_rate == 0 {
            0.0
        } else {
            self.num_samples() as f64 / self.sample_rate as f64
        }
    }
}

/// An image that conditions one output frame.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageCondition {
    pub image: RgbImage,
    /// Pixel frame index it pins (0 = first frame, `num_frames - 1` = last frame).
    pub frame_index: u32,
    /// 1.0 = frozen to the image, 0.0 = no influence.
    pub strength: f32,
}

/// Which sampling recipe runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PipelineKind {
    /// Distilled checkpoint: 8 steps at half resolution, x2 latent upsample, 3 refinement steps; no CFG.
    DistilledTwoStage,
    /// Distilled checkpoint, one stage at full resolution with the distilled sigmas.
    DistilledOneStage,
    /// Dev checkpoint: LTX2Scheduler with `num_inference_steps`, CFG with the negative prompt.
    Dev,
    /// Dev checkpoint with the upscaler and its generation's distilled LoRA (ltx-pipelines'
    /// `TI2VidTwoStagesPipeline`): the guided dev steps at half size, x2 upsample, then the
    /// distilled stage 2 with the distilled LoRA fused in.
    DevTwoStage,
    /// ltx-pipelines' `KeyframeInterpolationPipeline`: the dev two-stage recipe with every
    /// keyframe (frame 0 included) appended as guiding tokens.
    KeyframeInterpolation,
    /// ltx-pipelines' `A2VidPipelineTwoStage`: the dev two-stage recipe denoising the video only,
    /// the audio frozen, the audio guider off.
    A2vidTwoStage,
    /// ltx-pipelines' `RetakePipeline`: one stage at the clip's size regenerating a time span.
    Retake,
    /// Ours: a retake of the span after a clip on a longer canvas (the clip continued).
    Extend,
    /// A control video through an IC-LoRA (ltx-pipelines' `ICLoraPipeline`), on a distilled
    /// checkpoint with the upscaler: stage 1 at half size with the request's LoRAs and the
    /// control video as reference tokens, x2 upsample, stage 2 without any LoRA.
    IcLora,
}

/// A request the engine can run as is: sizes, frame count and seed are already resolved.
#[derive(Debug, Clone, PartialEq)]
pub struct GenerateRequest {
    pub prompt: String,
    pub negative_prompt: String,
    /// Output size in pixels (multiples of 32).
    pub width: u32,
    pub height: u32,
    /// `8k + 1` frames.
    pub num_frames: u32,
    pub fps: f32,
    pub guidance_scale: f32,
    /// Dev-scheduler steps; `None` = the model's official default
    /// ([`ModelInfo::default_inference_steps`]: 40 for LTX-2, 30 for LTX-2.3).
    pub num_inference_steps: Option<u32>,
    pub seed: u64,
    pub images: Vec<ImageCondition>,
    /// Audio that conditions the video, with its strength (1.0 = official audio-to-video: the
    /// audio is frozen and returned unchanged).
    pub audio: Option<(AudioClip, f32)>,
    /// Whether the caller wants the audio track back.
    pub include_audio: bool,
    /// Let the model choose the clip length from the prompt (LTX-2.5's duration head), within
    /// these bounds; `num_frames` is then the longest the request allows (an `image_end` pinned
    /// to its last frame moves to the chosen last frame).
    pub auto_duration: Option<AutoDuration>,
    /// LoRAs from the server's LoRA folder fused into the transformer for this request, in stack
    /// order (empty: the base model).
    pub loras: Vec<LoraChoice>,
    /// A clip the generation works from (an IC-LoRA control video, a clip to retake or
    /// extend); `None` = none.
    pub clip: Option<ClipInput>,
    /// The images are keyframes (`keyframes` in the API): on a dev checkpoint with the
    /// two-stage setup they run `KeyframeInterpolationPipeline` (every image appended as guiding
    /// tokens) instead of the first frame replacing the first latent frame.
    pub keyframes: bool,
}

/// A decoded clip given with the request, and what to do with it.
#[derive(Debug, Clone, PartialEq)]
pub enum ClipInput {
    /// Steers the generation through the IC-LoRA among the request's `loras`.
    Control(ControlVideo),
    /// Regenerate a time span of the clip, keep the rest.
    Retake(RetakeInput),
    /// Continue the clip.
    Extend(ExtendInput),
}

/// A user's clip, decoded.
#[derive(Debug, Clone, PartialEq)]
pub struct SourceClip {
    /// Frames in display order, all the same size.
    pub frames: Vec<RgbImage>,
    pub fps: f64,
    /// Its audio track, if it has one.
    pub audio: Option<AudioClip>,
}

impl SourceClip {
    pub fn duration_seconds(&self) -> f64 {
        self.frames.len() as f64 / self.fps
    }
}

/// `RetakePipeline`'s call: the span `[start, end)` in seconds and which modalities to redo.
#[derive(Debug, Clone, PartialEq)]
pub struct RetakeInput {
    pub clip: SourceClip,
    pub start_seconds: f64,
    pub end_seconds: f64,
    pub regenerate_video: bool,
    pub regenerate_audio: bool,
}

impl RetakeInput {
    /// The span lies inside the clip with start < end, something is regenerated, and audio only
    /// if the clip has an audio track. The message is for the `retake` field.
    pub fn check(&self) -> Result<(), String> {
        let duration = self.clip.duration_seconds();
        let (start, end) = (self.start_seconds, self.end_seconds);
        if !(start.is_finite()
            && end.is_finite()
            && 0.0 <= start
            && start < end
            && end <= duration + 1e-9)
        {
            return Err(format!(
                "the span [{start}, {end}) s must lie inside the clip's {duration:.3} s with start < end"
            ));
        }
        if !self.regenerate_video && !self.regenerate_audio {
            return Err("regenerates nothing: choose video, audio or both".into());
        }
        if self.regenerate_audio && self.clip.audio.is_none() {
            return Err("asks to regenerate audio but the clip has no audio track".into());
        }
        Ok(())
    }
}

/// Continue `clip` by `frames` frames at its size and rate.
#[derive(Debug, Clone, PartialEq)]
pub struct ExtendInput {
    pub clip: SourceClip,
    pub frames: u32,
}

/// A control video (depth, pose, edges, ...) for an IC-LoRA.
#[derive(Debug, Clone, PartialEq)]
pub struct ControlVideo {
    /// Decoded frames in display order; the first `num_frames` are used, each cover-resized and
    /// centre-cropped to the reference size (stage-1 size / the LoRA's
    /// `reference_downscale_factor`).
    pub frames: Vec<RgbImage>,
    /// Denoise strength of the reference tokens in [0, 1] (1 = kept as given).
    pub strength: f32,
    /// Attention weight between the generated and the reference tokens in [0, 1]
    /// (`conditioning_attention_strength`; 1 = plain attention).
    pub attention_strength: f32,
}

/// One LoRA of a request: a file name in the LoRA folder and its strength.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct LoraChoice {
    /// File name in the server's `--lora-dir` (with or without `.safetensors`).
    pub name: String,
    /// Multiplies the LoRA's delta (ltx-core's strength; 1 = as trained).
    pub strength: f32,
}

/// `num_frames: "auto"`: ltx-pipelines' `AutoDuration(min_seconds, max_seconds)` (defaults 1 s
/// and 20 s). The predicted length is snapped to the `8k + 1` grid inside the bounds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AutoDuration {
    pub min_seconds: f64,
    pub max_seconds: f64,
}

impl Default for AutoDuration {
    fn default() -> Self {
        Self {
            min_seconds: ltx2_model::duration_head::DEFAULT_MIN_SECONDS,
            max_seconds: ltx2_model::duration_head::DEFAULT_MAX_SECONDS,
        }
    }
}

/// What was really done; echoed to the user so no parameter is silently ignored.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EffectiveParams {
    pub pipeline: PipelineKind,
    /// Transformer evaluations per stage (e.g. `[8, 3]` for the distilled two-stage recipe).
    pub steps_per_stage: Vec<u32>,
    /// Transformer forwards per step (1 without guidance, 2 with CFG, ...).
    pub forwards_per_step: u32,
    pub guidance_scale: f32,
    pub negative_prompt_used: bool,
    /// Size the model actually rendered before any crop/resize to the requested size.
    pub rendered_width: u32,
    pub rendered_height: u32,
    pub num_frames: u32,
    pub fps: f32,
    pub seed: u64,
    /// Human-readable notes about adjustments (e.g. "num_inference_steps ignored: distilled").
    pub notes: Vec<String>,
    /// The LoRAs fused into the transformer for this run, in stack order.
    pub loras: Vec<LoraChoice>,
}

/// Wall time of each stage of one generation.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct StageTimings {
    /// `(stage name, seconds)` in execution order: text_encode, stage1, upsample, stage2,
    /// video_decode, audio_decode, vocoder, ...
    pub stages: Vec<(String, f64)>,
}

impl StageTimings {
    pub fn push(&mut self, stage: &str, elapsed: Duration) {
        self.stages.push((stage.to_string(), elapsed.as_secs_f64()));
    }

    pub fn total_seconds(&self) -> f64 {
        self.stages.iter().map(|(_, s)| s).sum()
    }
}

/// Decoded video: `num_frames` RGB8 frames of `width x height`.
#[derive(Debug, Clone, PartialEq)]
pub struct VideoFrames {
    pub width: u32,
    pub height: u32,
    pub fps: f32,
    /// One `width * height * 3` RGB8 buffer per frame.
    pub frames: Vec<Vec<u8>>,
}

/// Everything a generation produces.
#[derive(Debug, Clone, PartialEq)]
pub struct GenerateOutput {
    pub video: VideoFrames,
    /// Stereo at the model's vocoder rate ([`ModelInfo::audio_sample_rate`]: 24 kHz for LTX-2,
    /// 48 kHz for LTX-2.3) unless the input audio was returned unchanged; `None` when not requested.
    pub audio: Option<AudioClip>,
    pub effective: EffectiveParams,
    pub timings: StageTimings,
}

/// Progress of a running generation, reported from the engine thread.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum ProgressEvent {
    StageStarted {
        stage: String,
    },
    /// Denoising step `step` (1-based) of `total` in `stage` finished.
    Step {
        stage: String,
        step: u32,
        total: u32,
    },
    StageFinished {
        stage: String,
        seconds: f64,
    },
}

/// Receives progress and tells the engine whether to stop. Checked between steps.
pub trait Progress: Send + Sync {
    fn report(&self, event: ProgressEvent);
    fn is_cancelled(&self) -> bool {
        false
    }
}

/// Progress sink that ignores events and never cancels.
pub struct NoProgress;

impl Progress for NoProgress {
    fn report(&self, _event: ProgressEvent) {}
}

/// Why a generation did not produce output.
#[derive(Debug, thiserror::Error)]
pub enum GenError {
    /// The caller cancelled (or went away) between steps.
    #[error("generation cancelled")]
    Cancelled,
    /// The request is valid HTTP but cannot be served by this model (names the field).
    #[error("invalid `{field}`: {message}")]
    InvalidInput {
        field: &'static str,
        message: String,
    },
    /// Conditioning media could not be used (names the field).
    #[error("could not use `{field}`: {message}")]
    Media {
        field: &'static str,
        message: String,
    },
    /// A failure inside the model or device.
    #[error("model error: {0}")]
    Model(String),
}

/// A candle error's message without what only the server should see: the backtrace candle
/// captures when `RUST_BACKTRACE` is set, and file paths.
pub fn public_message(e: &candle_core::Error) -> String {
    match e {
        candle_core::Error::WithBacktrace { inner, .. }
        | candle_core::Error::WithPath { inner, .. } => public_message(inner),
        candle_core::Error::Context { inner, context } => {
            format!("{context}: {}", public_message(inner))
        }
        other => other.to_string(),
    }
}

impl From<candle_core::Error> for GenError {
    fn from(e: candle_core::Error) -> Self {
        GenError::Model(e.to_string())
    }
}

/// What conditioning audio the model's audio front-end takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct AudioInputSpec {
    /// Rate input audio is resampled to (the audio VAE's mel rate, 16 kHz for LTX-2 and 2.3).
    pub sample_rate: u32,
    /// Fewest samples at that rate it can encode (a centred STFT needs more than half a window).
    pub min_samples: usize,
}

impl AudioInputSpec {
    pub fn min_seconds(&self) -> f64 {
        self.min_samples as f64 / self.sample_rate.max(1) as f64
    }
}

/// Static facts about the loaded model, for `/health`, `/` and logs.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ModelInfo {
    /// `demo`, a folder path, or a hub repo id.
    pub name: String,
    /// True for the in-process random-weight demo model: output is noise, not a video of the prompt.
    pub is_demo: bool,
    pub pipeline: PipelineKind,
    pub device: String,
    pub dtype: String,
    /// Model generation, for people: "LTX-2 (19B)", "LTX-2.3 (22B)".
    pub generation: String,
    /// Sample rate of the generated audio (the vocoder's output rate).
    pub audio_sample_rate: u32,
    /// Whether the model can choose the clip length (`num_frames: "auto"`: LTX-2.5's duration
    /// head is loaded).
    pub auto_duration: bool,
    /// Dev-scheduler steps used when a request gives none (the official default of the
    /// generation); distilled pipelines ignore steps.
    pub default_inference_steps: u32,
    /// What conditioning audio it takes (checked before a request is queued).
    pub audio_input: AudioInputSpec,
    /// The LoRA folder requests pick from (`--lora-dir`); `None`: requests cannot carry LoRAs.
    #[serde(skip)]
    pub lora_dir: Option<std::path::PathBuf>,
    /// The transformer's checkpoint file, against which LoRAs are checked (`GET /loras`).
    #[serde(skip)]
    pub transformer_file: Option<std::path::PathBuf>,
    /// Which implementation attention, conv3d, the elementwise ops and the FP8 layers run on,
    /// and why a fallback was taken (probed at load; [`BackendReport::with_runtime_fallbacks`]
    /// adds what failed later).
    pub backends: BackendReport,
}

/// The engine: owns the models and the device, runs one request at a time.
pub trait Generator: Send {
    fn info(&self) -> ModelInfo;
    fn generate(
        &mut self,
        request: &GenerateRequest,
        progress: &dyn Progress,
    ) -> Result<GenerateOutput, GenError>;
}

/// Where the model comes from (`--model demo|PATH|hub[:REPO]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModelSource {
    /// Tiny random-weight LTX-2 built in-process: deterministic, fast on CPU, output is noise.
    Demo,
    /// A folder holding the LTX-2 checkpoint, the spatial upsampler and the Gemma folder.
    Path(std::path::PathBuf),
    /// Download the official files with hf-hub into the standard cache.
    Hub { repo: String },
}

impl std::str::FromStr for ModelSource {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "" => Err("model must not be empty".into()),
            "demo" => Ok(ModelSource::Demo),
            "hub" => Ok(ModelSource::Hub {
                repo: "Lightricks/LTX-2".into(),
            }),
            _ => match s.strip_prefix("hub:") {
                Some(repo) if !repo.is_empty() => Ok(ModelSource::Hub { repo: repo.into() }),
                Some(_) => Err("`hub:` needs a repo id, e.g. hub:Lightricks/LTX-2".into()),
                None => Ok(ModelSource::Path(s.into())),
            },
        }
    }
}
