//! The router: routes, request ids, CORS, authentication, body limit, JSON 404/405, panics
//! answered as JSON 500s, error logging, Swagger UI.

pub mod error;
pub mod generate;
pub mod health;
pub mod info;
pub mod loras;
pub mod redact;
pub mod request_id;

use std::any::Any;

use axum::extract::DefaultBodyLimit;
use axum::http::Request;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::trace::TraceLayer;
use utoipa_swagger_ui::SwaggerUi;

use crate::jobs::http as jobs;
use crate::openapi;
use crate::AppState;
use error::{ApiError, ErrorResponse, ErrorType};
use request_id::RequestId;

/// Every route of the API over `state`; no candle types, so tests can build it directly.
pub fn router(state: AppState) -> Router {
    let doc = openapi::document(state.engine.info(), !state.auth.is_open());
    let mut app = Router::new()
        .route("/generate", post(generate::generate))
        .route("/health", get(health::health))
        .route("/", get(info::info))
        .route("/loras", get(loras::loras))
        .route("/jobs", post(jobs::create))
        .route("/jobs/{id}", get(jobs::status).delete(jobs::delete))
        .route("/jobs/{id}/result", get(jobs::result_mp4))
        .route("/jobs/{id}/result.json", get(jobs::result_json))
        .route("/jobs/{id}/events", get(jobs::events))
        .route("/metrics", get(crate::metrics::metrics))
        .merge(SwaggerUi::new("/docs").url("/openapi.json", doc))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        // Innermost first: a request passes these bottom-up.
        .layer(axum::middleware::from_fn_with_state(
            state.auth.clone(),
            crate::auth::require_key,
        ))
        .layer(axum::middleware::map_response(log_errors))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            crate::metrics::count_requests,
        ))
        .layer(DefaultBodyLimit::max(state.config.max_body_bytes))
        .layer(CatchPanicLayer::custom(panic_response));
    if let Some(cors) = state.cors.layer() {
        app = app.layer(cors);
    }
    app.layer(axum::middleware::from_fn_with_state(
        state.cors.clone(),
        crate::cors::refuse_preflight,
    ))
    .layer(TraceLayer::new_for_http().make_span_with(|req: &Request<_>| {
        let id = req
            .extensions()
            .get::<RequestId>()
            .map_or("-", |r| r.0.as_str());
        tracing::info_span!("request", method = %req.method(), path = %req.uri().path(), id = %id)
    }))
    .layer(axum::middleware::from_fn(request_id::assign))
    .with_state(state)
}

/// A handler that panicked: logged with its message, answered as a generic 500.
fn panic_response(panic: Box<dyn Any + Send + 'static>) -> Response {
    let message = panic
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| panic.downcast_ref::<&str>().copied())
        .unwrap_or("unknown panic");
    ApiError::internal(
        ErrorType::Generation,
        format!("handler panicked: {message}"),
    )
    .into_response()
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
