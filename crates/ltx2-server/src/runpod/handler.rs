//! One RunPod job: the `/generate` body in, the `/generate` response out, over the engine handle.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Instant;

use ltx2_pipeline::{GenError, ProgressEvent};
use serde_json::{json, Value};
use tokio::sync::watch;

use crate::engine::{EngineHandle, JobControl, JobEvent};
use crate::http::error::{ApiError, ErrorType};
use crate::http::generate::{finish, validate_json, ResponseMeta};
use crate::validation::Limits;

/// Runs jobs on the shared engine with the server's validation.
#[derive(Clone)]
pub struct Handler {
    pub engine: EngineHandle,
    pub limits: Limits,
    /// `worker_id` in error reports.
    pub worker_id: String,
}

impl Handler {
    /// Validates `input` like `POST /generate`, runs it, and returns the `/generate` JSON.
    /// `progress` receives `{stage, step, total, ...}` objects; setting `cancel` stops the job.
    pub async fn run(
        &self,
        input: Value,
        cancel: Arc<AtomicBool>,
        progress: Option<watch::Sender<Option<Value>>>,
    ) -> Result<Value, ApiError> {
        let valid = validate_json(self.limits.clone(), input).await?;
        let (request, meta) = ResponseMeta::split(valid);
        let started = Instant::now();
        let observer = progress.map(|tx| {
            Arc::new(move |event: JobEvent| {
                let elapsed_seconds = (started.elapsed().as_secs_f64() * 100.0).round() / 100.0;
                let update = match event {
                    JobEvent::Started => {
                        json!({"stage": "started", "elapsed_seconds": elapsed_seconds})
                    }
                    JobEvent::Progress(ProgressEvent::StageStarted { stage }) => {
                        json!({"stage": stage, "elapsed_seconds": elapsed_seconds})
                    }
                    JobEvent::Progress(ProgressEvent::Step { stage, step, total }) => json!({
                        "stage": stage, "step": step, "total": total,
                        "elapsed_seconds": elapsed_seconds,
                    }),
                    JobEvent::Progress(ProgressEvent::StageFinished { stage, seconds }) => json!({
                        "stage": stage, "stage_seconds": seconds, "finished": true,
                        "elapsed_seconds": elapsed_seconds,
                    }),
                };
                // Latest wins: a slow control plane sees fewer, never stale, updates.
                tx.send_replace(Some(update));
            }) as Arc<dyn Fn(JobEvent) + Send + Sync>
        });
        let rx = self.engine.submit_with(
            request,
            JobControl {
                observer,
                cancel: Some(cancel),
            },
        )?;
        let job = match rx.await {
            Ok(Ok(job)) => job,
            Ok(Err(GenError::Cancelled)) => {
                return Err(ApiError::new(
                    ErrorType::Unhealthy,
                    "job cancelled (RunPod job-stop or worker shutdown)",
                ))
            }
            Ok(Err(e)) => return Err(e.into()),
            Err(_) => {
                return Err(ApiError::new(
                    ErrorType::Unhealthy,
                    "the generation engine stopped",
                ))
            }
        };
        let encoded = finish(self.engine.info(), meta, job).await?;
        serde_json::to_value(encoded.response)
            .map_err(|e| ApiError::internal(ErrorType::Encoding, e))
    }

    /// The `error` string of a failed job: a JSON object like the SDK's (`error_type`,
    /// `error_message`, plus `field` naming the bad input field).
    pub fn error_string(&self, e: &ApiError) -> String {
        let error_type = serde_json::to_value(e.body.error_type)
            .ok()
            .and_then(|v| v.as_str().map(String::from))
            .unwrap_or_default();
        json!({
            "error_type": error_type,
            "error_message": e.body.error,
            "field": e.body.field,
            "worker_id": self.worker_id,
            "hostname": std::env::var("RUNPOD_POD_HOSTNAME").ok(),
            "runpod_version": super::RUNPOD_PROTOCOL_VERSION,
        })
        .to_string()
    }
}
