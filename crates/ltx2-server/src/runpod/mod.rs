//! The RunPod serverless worker, natively (docs/rust-stack.md §6, read from runpod-python
//! 1.12.0): long-poll job take, result/progress POSTs, heartbeat, job-stop cancellation, SIGTERM
//! drain, plus the SDK's local modes (`--test_input`, `--rp_serve_api`).
//!
//! The job input is the body of `POST /generate` and the output its response: jobs go through the
//! server's validator and the one engine handle ([`handler::Handler`]).

pub mod client;
pub mod handler;
pub mod local;
pub mod worker;

use std::time::Duration;

pub use client::{RunpodClient, RunpodJob};
pub use handler::Handler;
pub use worker::run_worker;

/// The protocol version whose behaviour this worker follows (sent with pings like the SDK).
pub const RUNPOD_PROTOCOL_VERSION: &str = "1.12.0";

/// Worker settings, from the environment RunPod sets (see [`RunpodConfig::from_env`]).
#[derive(Debug, Clone)]
pub struct RunpodConfig {
    /// `RUNPOD_WEBHOOK_GET_JOB`: job-take URL with `$ID` (worker id).
    pub job_take_url: String,
    /// `RUNPOD_WEBHOOK_POST_OUTPUT`: result URL with `$RUNPOD_POD_ID` and `$ID` (job id).
    pub job_done_url: String,
    /// `RUNPOD_WEBHOOK_PING` with `$RUNPOD_POD_ID`; no heartbeat without it.
    pub ping_url: Option<String>,
    /// `RUNPOD_AI_API_KEY`, sent raw in `Authorization` (no "Bearer").
    pub api_key: Option<String>,
    /// `RUNPOD_POD_ID`, the worker id (random when unset).
    pub pod_id: String,
    /// `RUNPOD_PING_INTERVAL` (ms, default 10 000).
    pub ping_interval: Duration,
    /// `RUNPOD_ENDPOINT_ID`: when set, logs are JSON lines with `requestId`.
    pub endpoint_id: Option<String>,
    /// Client timeout of the job-take and job-stop long polls (the SDK's 90 s).
    pub long_poll_timeout: Duration,
    /// Least time between two polls that returned nothing (a server that answers 204 at once
    /// must not be hammered), and the first retry delay after an error.
    pub min_poll_interval: Duration,
    /// Wait after a 429 (the SDK's 5 s).
    pub rate_limit_wait: Duration,
}

impl RunpodConfig {
    /// Reads RunPod's environment; `None` when `RUNPOD_WEBHOOK_GET_JOB` is unset (local mode).
    pub fn from_env() -> anyhow::Result<Option<Self>> {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        let Some(job_take_url) = var("RUNPOD_WEBHOOK_GET_JOB") else {
            return Ok(None);
        };
        let job_done_url = var("RUNPOD_WEBHOOK_POST_OUTPUT").ok_or_else(|| {
            anyhow::anyhow!("RUNPOD_WEBHOOK_GET_JOB is set but RUNPOD_WEBHOOK_POST_OUTPUT is not")
        })?;
        let ping_interval = match var("RUNPOD_PING_INTERVAL") {
            Some(ms) => Duration::from_millis(ms.parse().map_err(|e| {
                anyhow::anyhow!("RUNPOD_PING_INTERVAL must be milliseconds, got {ms:?}: {e}")
            })?),
            None => Duration::from_secs(10),
        };
        Ok(Some(Self {
            job_take_url,
            job_done_url,
            ping_url: var("RUNPOD_WEBHOOK_PING"),
            api_key: var("RUNPOD_AI_API_KEY"),
            pod_id: var("RUNPOD_POD_ID").unwrap_or_else(|| uuid::Uuid::new_v4().to_string()),
            ping_interval,
            endpoint_id: var("RUNPOD_ENDPOINT_ID"),
            ..Self::with_urls(String::new(), String::new())
        }))
    }

    /// Defaults around the two required URLs (tests, or a custom control plane).
    pub fn with_urls(job_take_url: String, job_done_url: String) -> Self {
        Self {
            job_take_url,
            job_done_url,
            ping_url: None,
            api_key: None,
            pod_id: uuid::Uuid::new_v4().to_string(),
            ping_interval: Duration::from_secs(10),
            endpoint_id: None,
            long_poll_timeout: Duration::from_secs(90),
            min_poll_interval: Duration::from_secs(1),
            rate_limit_wait: Duration::from_secs(5),
        }
    }
}
