//! The router: routes, body limit, JSON 404/405, error logging, Swagger UI.

pub mod error;
pub mod generate;
pub mod health;
pub mod info;

use axum::extract::DefaultBodyLimit;
use axum::http::Request;
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use tower_http::trace::TraceLayer;
use utoipa_swagger_ui::SwaggerUi;

use crate::jobs::http as jobs;
use crate::openapi;
use crate::AppState;
use error::{ApiError, ErrorResponse, ErrorType};

/// Every route of the API over `state`; no candle types, so tests can build it directly.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/generate", post(generate::generate))
        .route("/health", get(health::health))
        .route("/", get(info::info))
        .route("/jobs", post(jobs::create))
        .route("/jobs/{id}", get(jobs::status).delete(jobs::delete))
        .route("/jobs/{id}/result", get(jobs::result_mp4))
        .route("/jobs/{id}/result.json", get(jobs::result_json))
        .route("/jobs/{id}/events", get(jobs::events))
        .route("/metrics", get(crate::metrics::metrics))
        .merge(SwaggerUi::new("/docs").url("/openapi.json", openapi::document(state.engine.info())))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::middleware::map_response(log_errors))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            crate::metrics::count_requests,
        ))
        .layer(DefaultBodyLimit::max(state.config.max_body_bytes))
        .layer(TraceLayer::new_for_http().make_span_with(|req: &Request<_>| {
            tracing::info_span!("request", method = %req.method(), path = %req.uri().path(), id = %uuid::Uuid::new_v4())
        }))
        .with_state(state)
}

async fn not_found() -> ApiError {
    ApiError::new(ErrorType::NotFound, "no such endpoint; see GET / and /docs")
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        ErrorType::MethodNotAllowed,
        "method not allowed on this endpoint; see GET / and /docs",
    )
}

async fn log_errors(response: Response) -> Response {
    if let Some(e) = response.extensions().get::<ErrorResponse>() {
        if response.status().is_server_error() {
            tracing::error!(status = %response.status(), error = %e.error, "request failed");
        } else {
            tracing::warn!(status = %response.status(), error = %e.error, field = ?e.field, "request rejected");
        }
    }
    response
}
