//! Every server setting, as one clap struct: each flag also reads its `LTX2_*` environment variable.

use clap::Args;

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
        }
    }
}

impl ServerConfig {
    pub fn limits(&self) -> Limits {
        Limits {
            max_width: self.max_width,
            max_height: self.max_height,
            max_frames: self.max_frames,
            max_steps: self.max_steps,
        }
    }
}
