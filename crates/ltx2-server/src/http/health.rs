//! GET /health: answers from shared counters, so it never waits for the running job.

use std::sync::atomic::Ordering;

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;

use crate::AppState;

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct HealthResponse {
    /// `healthy`, or `unhealthy` (HTTP 503) when the engine thread is gone.
    #[schema(example = "healthy")]
    pub status: String,
    pub model: String,
    pub is_demo: bool,
    /// A job is running right now.
    pub busy: bool,
    /// Jobs accepted and not finished (running + queued).
    pub pending: usize,
    /// Jobs that may wait behind the running one.
    pub queue_capacity: usize,
    pub completed: u64,
    pub failed: u64,
    pub cancelled: u64,
}

/// Liveness and queue state.
#[utoipa::path(get, path = "/health", responses(
    (status = 200, description = "Engine running", body = HealthResponse),
    (status = 503, description = "Engine stopped", body = HealthResponse),
))]
pub async fn health(State(state): State<AppState>) -> (StatusCode, Json<HealthResponse>) {
    let engine = &state.engine;
    let stats = engine.stats();
    let alive = engine.is_alive();
    let body = HealthResponse {
        status: if alive { "healthy" } else { "unhealthy" }.into(),
        model: engine.info().name.clone(),
        is_demo: engine.info().is_demo,
        busy: stats.running.load(Ordering::SeqCst),
        pending: stats.pending.load(Ordering::SeqCst),
        queue_capacity: engine.capacity(),
        completed: stats.completed.load(Ordering::Relaxed),
        failed: stats.failed.load(Ordering::Relaxed),
        cancelled: stats.cancelled.load(Ordering::Relaxed),
    };
    (
        if alive {
            StatusCode::OK
        } else {
            StatusCode::SERVICE_UNAVAILABLE
        },
        Json(body),
    )
}
