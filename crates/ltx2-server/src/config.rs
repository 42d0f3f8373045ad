//! Every server setting, as one clap struct: each flag also reads its `LTX2_*` environment variable.

use std::path::PathBuf;

use clap::Args;
use ltx2_pipeline::media::audio::DEFAULT_MAX_AUDIO_SECONDS;
use ltx2_pipeline::media::image::{ImageLimits, DEFAULT_MAX_IMAGE_PIXELS};
use ltx2_pipeline::ModelInfo;

use crate::auth::ApiKey;
use crate::validation::Limits;

#[derive(Debug, Clone, Args)]
pub struct ServerConfig {
    /// Jobs that may wait behind the running one; a full queue answers 429 with Retry-After.
    #[arg(long, env = "LTX2_QUEUE_CAPACITY", default_value_t = 8)]
    pub queue_capacity: usize,
    /// Largest accepted request body in bytes (base64 images/audio are large).
    #[arg(long, env = "LTX2_MAX_BODY_BYTES", default_value_t = 64 * 1024 * 1024)]
    pub max_body_bytes: usize,
    /// Largest accepted `width`, in pixels.
    #[arg(long, env = "LTX2_MAX_WIDTH", default_value_t = 1536)]
    pub max_width: u32,
    /// Largest accepted `height`, in pixels.
    #[arg(long, env = "LTX2_MAX_HEIGHT", default_value_t = 1536)]
    pub max_height: u32,
    /// Largest accepted `num_frames` (must itself be 8k+1).
    #[arg(long, env = "LTX2_MAX_FRAMES", default_value_t = 257)]
    pub max_frames: u32,
    /// Largest accepted `num_inference_steps`.
    #[arg(long, env = "LTX2_MAX_STEPS", default_value_t = 100)]
    pub max_steps: u32,
    /// Seconds a request may wait and run before it is answered 504 (and its job cancelled).
    #[arg(long, env = "LTX2_REQUEST_TIMEOUT_SECS", default_value_t = 1800)]
    pub request_timeout_secs: u64,
    /// Seconds a finished async job (`POST /jobs`) keeps its result before it is evicted.
    #[arg(long, env = "LTX2_JOB_TTL_SECS", default_value_t = 1800)]
    pub job_ttl_secs: u64,
    /// Async jobs held at most (queued, running and finished); the oldest finished give way.
    #[arg(long, env = "LTX2_MAX_JOBS", default_value_t = 64)]
    pub max_jobs: usize,
    /// Largest `image_start` / `image_end` in pixels (width x height), checked on the header
    /// before decoding.
    #[arg(long, env = "LTX2_MAX_IMAGE_PIXELS", default_value_t = DEFAULT_MAX_IMAGE_PIXELS)]
    pub max_image_pixels: u64,
    /// Longest `audio` in seconds; decoding stops and the request is refused past it.
    #[arg(long, env = "LTX2_MAX_AUDIO_SECONDS", default_value_t = DEFAULT_MAX_AUDIO_SECONDS)]
    pub max_audio_seconds: f64,
    /// An API key clients must send as `Authorization: Bearer <key>` (repeat the flag for
    /// several; the env variable takes them comma-separated). None: the API is open.
    #[arg(
        long = "api-key",
        env = "LTX2_API_KEYS",
        value_delimiter = ',',
        hide_env_values = true
    )]
    pub api_keys: Vec<ApiKey>,
    /// A file of API keys, one per line (`#` comments and blank lines ignored), added to
    /// `--api-key`.
    #[arg(long, env = "LTX2_API_KEY_FILE")]
    pub api_key_file: Option<PathBuf>,
    /// Require the key for `/docs` and `/openapi.json` too (open by default so Swagger's
    /// "Authorize" can be reached).
    #[arg(long, env = "LTX2_PROTECT_DOCS")]
    pub protect_docs: bool,
    /// An origin browsers may call the API from (`https://app.example.com`; repeat for several,
    /// comma-separated in the env variable; `*` for any). None: cross-origin calls are refused.
    #[arg(long = "cors-origin", env = "LTX2_CORS_ORIGINS", value_delimiter = ',')]
    pub cors_origins: Vec<String>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            queue_capacity: 8,
            max_body_bytes: 64 * 1024 * 1024,
            max_width: 1536,
            max_height: 1536,
            max_frames: 257,
            max_steps: 100,
            request_timeout_secs: 1800,
            job_ttl_secs: 1800,
            max_jobs: 64,
            max_image_pixels: DEFAULT_MAX_IMAGE_PIXELS,
            max_audio_seconds: DEFAULT_MAX_AUDIO_SECONDS,
            api_keys: Vec::new(),
            api_key_file: None,
            protect_docs: false,
            cors_origins: Vec::new(),
        }
    }
}

impl ServerConfig {
    /// The request limits for the loaded model (its audio front-end, whether it can choose the
    /// clip length).
    pub fn limits(&self, model: &ModelInfo) -> Limits {
        Limits {
            max_width: self.max_width,
            max_height: self.max_height,
            max_frames: self.max_frames,
            max_steps: self.max_steps,
            image: ImageLimits {
                max_pixels: self.max_image_pixels,
            },
            max_audio_seconds: self.max_audio_seconds,
            audio_input: model.audio_input,
            auto_duration: model.auto_duration,
            // Checked at load; a folder removed since then refuses every LoRA request.
            loras: model
                .lora_dir
                .as_deref()
                .and_then(|d| ltx2_pipeline::loras::LoraCatalog::new(d).ok()),
        }
    }
}
