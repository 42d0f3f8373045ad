//! GET /: what this API is, the loaded model, request defaults and limits.

use axum::extract::State;
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;

use crate::validation::*;
use crate::AppState;

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ApiInfo {
    pub name: String,
    pub description: String,
    pub version: String,
    pub model: ModelView,
    pub endpoints: Vec<EndpointInfo>,
    /// Value of each request field when omitted or null.
    pub defaults: Defaults,
    pub limits: LimitsView,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ModelView {
    pub name: String,
    pub is_demo: bool,
    /// "LTX-2 (19B)" or "LTX-2.3 (22B)".
    pub generation: String,
    pub pipeline: String,
    pub device: String,
    pub dtype: String,
    /// Sample rate of the generated audio track (stereo).
    pub audio_sample_rate: u32,
    /// Whether `num_frames: "auto"` is available (LTX-2.5's duration head chooses the length).
    pub auto_duration: bool,
    /// Which implementation the hot ops run on, and why a fallback was taken.
    pub backends: BackendsView,
}

/// The compute backends in use (`ltx2_model::backends::BackendReport`).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct BackendsView {
    /// `cudnn-sdpa` (cuDNN fused attention) or `chunked` (matmul-softmax-matmul).
    pub attention: String,
    /// `cudnn`, `candle` (conv2d per time tap on the GPU) or `candle-cpu`.
    pub conv3d: String,
    /// `fused-cuda` (RMSNorm+modulate, gate+residual, RoPE kernels) or `candle`.
    pub elementwise: String,
    /// `--quantization`: none, fp8-cast or fp8-scaled-mm.
    pub fp8_mode: String,
    /// How FP8 layers multiply: cublaslt-e4m3, f32-emulation, dequant-kernel, dequant-candle or
    /// dequant-cpu.
    pub fp8_gemm: String,
    /// cuDNN version in use.
    pub cudnn: Option<String>,
    /// Op → why it runs on its fallback.
    pub fallbacks: std::collections::BTreeMap<String, String>,
}

impl From<ltx2_pipeline::BackendReport> for BackendsView {
    fn from(r: ltx2_pipeline::BackendReport) -> Self {
        Self {
            attention: r.attention,
            conv3d: r.conv3d,
            elementwise: r.elementwise,
            fp8_mode: r.fp8_mode,
            fp8_gemm: r.fp8_gemm,
            cudnn: r.cudnn,
            fallbacks: r.fallbacks,
        }
    }
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct EndpointInfo {
    pub method: String,
    pub path: String,
    pub description: String,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Defaults {
    pub negative_prompt: String,
    pub width: u32,
    pub height: u32,
    pub num_frames: u32,
    pub fps: u32,
    pub guidance_scale: f32,
    /// The loaded model's official dev default (40 for LTX-2, 30 for LTX-2.3); distilled
    /// checkpoints ignore it.
    pub num_inference_steps: u32,
    /// null = random, reported in the response.
    pub seed: Option<u64>,
    pub image_strength: f32,
    pub include_audio: bool,
    pub audio_strength: f32,
    /// Bounds of `num_frames: "auto"`, in seconds.
    pub min_duration_seconds: f64,
    pub max_duration_seconds: f64,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct LimitsView {
    pub size_multiple: u32,
    pub min_side: u32,
    pub max_width: u32,
    pub max_height: u32,
    /// num_frames must be 8k+1 in [min_frames, max_frames].
    pub min_frames: u32,
    pub max_frames: u32,
    pub min_fps: u32,
    pub max_fps: u32,
    pub min_guidance_scale: f32,
    pub max_guidance_scale: f32,
    pub max_inference_steps: u32,
    pub max_body_bytes: usize,
    pub queue_capacity: usize,
    /// Most entries of `keyframes`.
    pub max_keyframes: usize,
    /// Largest frame (width x height) of a `video` or `control_video` clip.
    pub max_clip_pixels: u64,
}

/// API description, loaded model, defaults and limits.
#[utoipa::path(get, path = "/", responses((status = 200, body = ApiInfo)))]
pub async fn info(State(state): State<AppState>) -> Json<ApiInfo> {
    let m = state.engine.info();
    let c = &state.config;
    let endpoint = |method: &str, path: &str, description: &str| EndpointInfo {
        method: method.into(),
        path: path.into(),
        description: description.into(),
    };
    Json(ApiInfo {
        name: "LTX-2 Video Generation API".into(),
        description: crate::openapi::description(m),
        version: env!("CARGO_PKG_VERSION").into(),
        model: ModelView {
            name: m.name.clone(),
            is_demo: m.is_demo,
            generation: m.generation.clone(),
            audio_sample_rate: m.audio_sample_rate,
            auto_duration: m.auto_duration,
            pipeline: serde_json::to_value(m.pipeline)
                .ok()
                .and_then(|v| v.as_str().map(String::from))
                .unwrap_or_default(),
            device: m.device.clone(),
            dtype: m.dtype.clone(),
            backends: m.backends.with_runtime_fallbacks().into(),
        },
        endpoints: vec![
            endpoint(
                "POST",
                "/generate",
                "Generate an MP4 (H.264 + AAC) returned as a base64 data URI",
            ),
            endpoint("GET", "/health", "Liveness and queue state"),
            endpoint("GET", "/", "This description"),
            endpoint(
                "GET",
                "/loras",
                "LoRAs requests may name in `loras` (--lora-dir)",
            ),
            endpoint("GET", "/docs", "Swagger UI"),
            endpoint("GET", "/openapi.json", "OpenAPI document"),
        ],
        defaults: Defaults {
            negative_prompt: DEFAULT_NEGATIVE_PROMPT.into(),
            width: DEFAULT_WIDTH,
            height: DEFAULT_HEIGHT,
            num_frames: DEFAULT_NUM_FRAMES,
            fps: DEFAULT_FPS,
            guidance_scale: DEFAULT_GUIDANCE_SCALE,
            num_inference_steps: m.default_inference_steps,
            seed: None,
            image_strength: DEFAULT_STRENGTH,
            include_audio: true,
            audio_strength: DEFAULT_STRENGTH,
            min_duration_seconds: ltx2_pipeline::AutoDuration::default().min_seconds,
            max_duration_seconds: ltx2_pipeline::AutoDuration::default().max_seconds,
        },
        limits: LimitsView {
            size_multiple: SIDE_MULTIPLE,
            min_side: MIN_SIDE,
            max_width: c.max_width,
            max_height: c.max_height,
            min_frames: MIN_FRAMES,
            max_frames: c.max_frames,
            min_fps: MIN_FPS,
            max_fps: MAX_FPS,
            min_guidance_scale: MIN_GUIDANCE,
            max_guidance_scale: MAX_GUIDANCE,
            max_inference_steps: c.max_steps,
            max_body_bytes: c.max_body_bytes,
            queue_capacity: c.queue_capacity,
            max_keyframes: crate::validation::MAX_KEYFRAMES,
            max_clip_pixels: crate::validation::MAX_CLIP_PIXELS,
        },
    })
}
