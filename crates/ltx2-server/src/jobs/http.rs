//! `/jobs` routes: submit, status, result (MP4 or JSON), cancel, server-sent progress events.

use std::convert::Infallible;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::Json;
use futures::Stream;
use serde::Serialize;
use serde_json::value::RawValue;
use utoipa::ToSchema;

use super::{JobRecord, JobStatus, JobView};
use crate::http::error::{ApiError, AppJson, ErrorResponse, ErrorType};
use crate::http::generate::{validate_raw, GenerateResponse, ResponseMeta};
use crate::validation::GenerateBody;
use crate::AppState;

/// Answer of `POST /jobs`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct JobCreated {
    pub id: String,
    pub status: JobStatus,
    /// `GET` it for status, progress and ETA.
    #[schema(example = "/jobs/0b6c.../")]
    pub status_url: String,
    /// Server-sent events of progress until the job ends.
    pub events_url: String,
    /// The MP4 once `status` is `succeeded` (`result.json` for the `/generate` JSON).
    pub result_url: String,
}

fn not_found(id: &str) -> ApiError {
    ApiError::new(
        ErrorType::NotFound,
        format!("no job `{id}` (unknown, deleted, or its result expired)"),
    )
    .with_field("id")
}

fn last_run(state: &AppState) -> Option<f64> {
    let ms = state.engine.stats().last_run_ms.load(Ordering::Relaxed);
    (ms > 0).then(|| ms as f64 / 1000.0)
}

fn record(state: &AppState, id: &str) -> Result<Arc<JobRecord>, ApiError> {
    state.jobs.get(id).ok_or_else(|| not_found(id))
}

/// Queue a generation and return at once; same body as `POST /generate`.
#[utoipa::path(
    post,
    path = "/jobs",
    request_body = GenerateBody,
    responses(
        (status = 202, description = "Queued", body = JobCreated),
        (status = 422, description = "A field is invalid (named in `field`)", body = ErrorResponse),
        (status = 429, description = "Queue or job store full; see Retry-After", body = ErrorResponse),
        (status = 503, description = "Engine not running", body = ErrorResponse),
    )
)]
pub async fn create(
    State(state): State<AppState>,
    AppJson(body): AppJson<Box<RawValue>>,
) -> Result<(StatusCode, Json<JobCreated>), ApiError> {
    let valid = validate_raw(state.limits(), body).await?;
    let (request, meta) = ResponseMeta::split(valid);
    let job = state.jobs.submit(&state.engine, request, meta, None)?;
    let id = job.id.clone();
    Ok((
        StatusCode::ACCEPTED,
        Json(JobCreated {
            status: job.status(),
            status_url: format!("/jobs/{id}"),
            events_url: format!("/jobs/{id}/events"),
            result_url: format!("/jobs/{id}/result"),
            id,
        }),
    ))
}

/// Status, stage, step/total, ETA and error of a job.
#[utoipa::path(
    get,
    path = "/jobs/{id}",
    params(("id" = String, Path, description = "Job id from POST /jobs")),
    responses(
        (status = 200, description = "The job", body = JobView),
        (status = 404, description = "Unknown or expired job", body = ErrorResponse),
    )
)]
pub async fn status(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<JobView>, ApiError> {
    let job = record(&state, &id)?;
    Ok(Json(state.jobs.view(&job, last_run(&state))))
}

/// The error a result request gets while the job has no result.
fn no_result(state: &AppState, job: &JobRecord) -> Response {
    let view = state.jobs.view(job, last_run(state));
    match view.status {
        // Not an error: the client polls. 202 + the job's view + when to ask again.
        JobStatus::Queued | JobStatus::Running => {
            let retry = view.eta_seconds.unwrap_or(5.0).clamp(1.0, 60.0).ceil() as u64;
            (
                StatusCode::ACCEPTED,
                [(header::RETRY_AFTER, retry.to_string())],
                Json(view),
            )
                .into_response()
        }
        JobStatus::Cancelled => ApiError::new(
            ErrorType::NotFound,
            format!("job `{}` was cancelled: it has no result", job.id),
        )
        .into_response(),
        _ => {
            let e = view.error.unwrap_or(super::JobError {
                error: "job failed".into(),
                error_type: ErrorType::Generation,
                field: None,
                request_id: None,
            });
            let mut api = ApiError::new(e.error_type, e.error);
            api.body.field = e.field;
            // The request that submitted the job: the log has its details under that id.
            api.body.request_id = e.request_id.or(api.body.request_id);
            api.into_response()
        }
    }
}

/// The finished video as `video/mp4`.
#[utoipa::path(
    get,
    path = "/jobs/{id}/result",
    params(("id" = String, Path, description = "Job id from POST /jobs")),
    responses(
        (status = 200, description = "The MP4", content_type = "video/mp4", body = Vec<u8>),
        (status = 202, description = "Not finished yet; see Retry-After", body = JobView),
        (status = 404, description = "Unknown, expired or cancelled job", body = ErrorResponse),
        (status = 422, description = "The job failed on a field", body = ErrorResponse),
        (status = 500, description = "The job failed", body = ErrorResponse),
    )
)]
pub async fn result_mp4(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let job = record(&state, &id)?;
    Ok(match job.result() {
        Some(encoded) => (
            [
                (header::CONTENT_TYPE, "video/mp4".to_string()),
                (
                    header::CONTENT_DISPOSITION,
                    format!("attachment; filename=\"{id}.mp4\""),
                ),
            ],
            encoded.mp4.clone(),
        )
            .into_response(),
        None => no_result(&state, &job),
    })
}

/// The `POST /generate` response of a finished job.
#[utoipa::path(
    get,
    path = "/jobs/{id}/result.json",
    params(("id" = String, Path, description = "Job id from POST /jobs")),
    responses(
        (status = 200, description = "Same JSON as POST /generate", body = GenerateResponse),
        (status = 202, description = "Not finished yet; see Retry-After", body = JobView),
        (status = 404, description = "Unknown, expired or cancelled job", body = ErrorResponse),
        (status = 422, description = "The job failed on a field", body = ErrorResponse),
        (status = 500, description = "The job failed", body = ErrorResponse),
    )
)]
pub async fn result_json(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let job = record(&state, &id)?;
    Ok(match job.result() {
        Some(encoded) => Json(encoded.response.clone()).into_response(),
        None => no_result(&state, &job),
    })
}

/// Cancel a queued or running job (202: it stops at the next step and ends `cancelled`), or
/// forget a finished one and its result (200).
#[utoipa::path(
    delete,
    path = "/jobs/{id}",
    params(("id" = String, Path, description = "Job id from POST /jobs")),
    responses(
        (status = 202, description = "Cancellation requested", body = JobView),
        (status = 200, description = "Finished job deleted", body = JobView),
        (status = 404, description = "Unknown or expired job", body = ErrorResponse),
    )
)]
pub async fn delete(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<JobView>), ApiError> {
    let job = record(&state, &id)?;
    if state.jobs.cancel(&job) {
        Ok((
            StatusCode::ACCEPTED,
            Json(state.jobs.view(&job, last_run(&state))),
        ))
    } else {
        state.jobs.remove(&id);
        Ok((
            StatusCode::OK,
            Json(state.jobs.view(&job, last_run(&state))),
        ))
    }
}

/// Server-sent events: `progress` (a job view) on every change, then one `done` and the end.
#[utoipa::path(
    get,
    path = "/jobs/{id}/events",
    params(("id" = String, Path, description = "Job id from POST /jobs")),
    responses(
        (status = 200, description = "text/event-stream of JobView (events `progress`, `done`)", content_type = "text/event-stream", body = JobView),
        (status = 404, description = "Unknown or expired job", body = ErrorResponse),
    )
)]
pub async fn events(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let job = record(&state, &id)?;
    let rx = job.subscribe();
    let stream = futures::stream::unfold(
        (rx, job, state, true, false),
        |(mut rx, job, state, first, ended)| async move {
            if ended {
                return None;
            }
            if !first {
                // The record (holding the sender) lives as long as `job`: this only waits.
                rx.changed().await.ok()?;
            }
            rx.borrow_and_update();
            let view = state.jobs.view(&job, last_run(&state));
            let done = view.status.is_terminal();
            let event = Event::default()
                .event(if done { "done" } else { "progress" })
                .json_data(&view)
                .unwrap_or_else(|_| Event::default().event("error"));
            Some((Ok(event), (rx, job, state, false, done)))
        },
    );
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}
