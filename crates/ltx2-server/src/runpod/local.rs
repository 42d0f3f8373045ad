//! The SDK's local modes: `--test_input` (one job, then exit) and `--rp_serve_api` (a local
//! HTTP API with RunPod's `/run`, `/runsync`, `/status/{id}`, `/cancel/{id}`).

use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};

use super::Handler;
use crate::http::error::{ApiError, ErrorType};
use crate::http::generate::{validate_json, ResponseMeta};
use crate::jobs::{JobStatus, JobStore};

/// Runs the `input` of a test-input document (`{"input": {...}}`) as job `local_test`; returns
/// the SDK-style record `{"id", "status": "COMPLETED", "output"}` or `{"id", "status": "FAILED",
/// "error"}` and whether it succeeded.
pub async fn run_test_input(handler: &Handler, document: Value) -> (bool, Value) {
    let Some(input) = document.get("input").cloned() else {
        let e = ApiError::new(
            ErrorType::Validation,
            "test input must be a JSON object with an `input` key",
        )
        .with_field("input");
        return (
            false,
            json!({"id": "local_test", "status": "FAILED", "error": handler.error_string(&e)}),
        );
    };
    match handler
        .run(input, Arc::new(AtomicBool::new(false)), None)
        .await
    {
        Ok(output) => (
            true,
            json!({"id": "local_test", "status": "COMPLETED", "output": output}),
        ),
        Err(e) => (
            false,
            json!({"id": "local_test", "status": "FAILED", "error": handler.error_string(&e)}),
        ),
    }
}

#[derive(Clone)]
struct LocalState {
    handler: Handler,
    jobs: Arc<JobStore>,
}

/// Router of the local API (`--rp_serve_api`); async jobs live in a [`JobStore`] kept `ttl`.
pub fn local_api_router(handler: Handler, ttl: Duration, max_jobs: usize) -> Router {
    Router::new()
        .route("/", get(index))
        .route("/run", post(run))
        .route("/runsync", post(runsync))
        .route("/status/{id}", get(status).post(status))
        .route("/cancel/{id}", post(cancel))
        .with_state(LocalState {
            handler,
            jobs: Arc::new(JobStore::new(ttl, max_jobs)),
        })
}

async fn index() -> Json<Value> {
    Json(json!({
        "description": "RunPod local test API of the ltx2 worker; input = the body of POST /generate",
        "endpoints": ["POST /run", "POST /runsync", "GET|POST /status/{id}", "POST /cancel/{id}"],
    }))
}

fn input_of(body: &Value) -> Result<Value, ApiError> {
    body.get("input").cloned().ok_or_else(|| {
        ApiError::new(ErrorType::Validation, "body must be `{\"input\": {...}}`")
            .with_field("input")
    })
}

async fn run(
    State(s): State<LocalState>,
    Json(body): Json<Value>,
) -> Result<Json<Value>, ApiError> {
    if body.get("webhook").is_some() {
        tracing::warn!("`webhook` is not called by the local test API");
    }
    let id = format!("test-{}", uuid::Uuid::new_v4());
    crate::http::request_id::scope(id.clone(), async {
        let valid = validate_json(s.handler.limits.clone(), input_of(&body)?).await?;
        let (request, meta) = ResponseMeta::split(valid);
        s.jobs
            .submit(&s.handler.engine, request, meta, Some(id.clone()))?;
        Ok(Json(json!({"id": id, "status": "IN_PROGRESS"})))
    })
    .await
}

async fn runsync(State(s): State<LocalState>, Json(body): Json<Value>) -> Json<Value> {
    let id = format!("test-{}", uuid::Uuid::new_v4());
    let result = match input_of(&body) {
        Ok(input) => {
            let run = s.handler.run(input, Arc::new(AtomicBool::new(false)), None);
            crate::http::request_id::scope(id.clone(), run).await
        }
        Err(e) => Err(e),
    };
    Json(match result {
        Ok(output) => json!({"id": id, "status": "COMPLETED", "output": output}),
        Err(e) => json!({"id": id, "status": "FAILED", "error": s.handler.error_string(&e)}),
    })
}

/// Serves [`local_api_router`] until `shutdown`.
pub async fn serve_local_api(
    listener: tokio::net::TcpListener,
    app: Router,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
        .map_err(|e| anyhow::anyhow!("local API server: {e}"))
}

fn runpod_status(status: JobStatus) -> &'static str {
    match status {
        JobStatus::Queued => "IN_QUEUE",
        JobStatus::Running => "IN_PROGRESS",
        JobStatus::Succeeded => "COMPLETED",
        JobStatus::Failed => "FAILED",
        JobStatus::Cancelled => "CANCELLED",
    }
}

async fn status(State(s): State<LocalState>, Path(id): Path<String>) -> Response {
    let Some(job) = s.jobs.get(&id) else {
        return (
            StatusCode::NOT_FOUND,
            Json(json!({"id": id, "error": "no such job (unknown or expired)"})),
        )
            .into_response();
    };
    let view = s.jobs.view(&job, None);
    let mut out = json!({"id": id, "status": runpod_status(view.status)});
    if let Some(result) = job.result() {
        out["output"] = serde_json::to_value(&result.response).unwrap_or(Value::Null);
    } else if let Some(e) = view.error {
        let mut api = ApiError::new(e.error_type, e.error);
        api.body.field = e.field;
        out["error"] = s.handler.error_string(&api).into();
    } else if view.step.is_some() {
        out["output"] = json!({"stage": view.stage, "step": view.step, "total": view.total});
    }
    Json(out).into_response()
}

async fn cancel(State(s): State<LocalState>, Path(id): Path<String>) -> Response {
    match s.jobs.get(&id) {
        Some(job) => {
            s.jobs.cancel(&job);
            Json(json!({"id": id, "status": runpod_status(job.status())})).into_response()
        }
        None => (
            StatusCode::NOT_FOUND,
            Json(json!({"id": id, "error": "no such job"})),
        )
            .into_response(),
    }
}
