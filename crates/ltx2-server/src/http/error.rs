//! One error type for every handler, one status table, one JSON shape
//! (`{"error": "...", "error_type": "...", "field": "...", "request_id": "..."}`; the spec's clients
//! test `"error" in result`).
//!
//! Messages say what is wrong and nothing about the inside: every message is passed through
//! [`public_text`] (no backtrace, path or Rust item name), and the details of a server-side failure
//! (5xx) are logged under the request id while the client gets a fixed sentence naming that id.

use axum::extract::rejection::JsonRejection;
use axum::extract::FromRequest;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use ltx2_pipeline::GenError;
use serde::Serialize;
use utoipa::ToSchema;

use super::redact::public_text;
use super::request_id;
use crate::engine::SubmitError;
use crate::validation::ValidationError;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ErrorType {
    /// A field is missing, of the wrong type, out of range, or its media cannot be decoded.
    Validation,
    /// The body is not JSON.
    MalformedJson,
    /// The body was not sent as `Content-Type: application/json`.
    UnsupportedMediaType,
    /// The body is larger than the configured limit.
    PayloadTooLarge,
    /// The queue is full; see `Retry-After`.
    Overloaded,
    /// The engine is not running.
    Unhealthy,
    /// The request took longer than the configured timeout.
    Timeout,
    /// The model failed while generating.
    Generation,
    /// The MP4 could not be written.
    Encoding,
    NotFound,
    MethodNotAllowed,
    /// No `Authorization: Bearer <key>` header, or not a configured key.
    Unauthorized,
    /// A cross-origin request from an origin this server does not allow.
    Forbidden,
}

impl ErrorType {
    pub fn status(self) -> StatusCode {
        match self {
            ErrorType::Validation => StatusCode::UNPROCESSABLE_ENTITY,
            ErrorType::MalformedJson => StatusCode::BAD_REQUEST,
            ErrorType::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ErrorType::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ErrorType::Overloaded => StatusCode::TOO_MANY_REQUESTS,
            ErrorType::Unhealthy => StatusCode::SERVICE_UNAVAILABLE,
            ErrorType::Timeout => StatusCode::GATEWAY_TIMEOUT,
            ErrorType::Generation | ErrorType::Encoding => StatusCode::INTERNAL_SERVER_ERROR,
            ErrorType::NotFound => StatusCode::NOT_FOUND,
            ErrorType::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ErrorType::Unauthorized => StatusCode::UNAUTHORIZED,
            ErrorType::Forbidden => StatusCode::FORBIDDEN,
        }
    }
}

/// Body of every error response.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ErrorResponse {
    /// Human-readable message; names the field when one is at fault.
    #[schema(
        example = "`width` must be a multiple of 32 between 64 and 1536, got 300 (nearest valid: 288 or 320)"
    )]
    pub error: String,
    pub error_type: ErrorType,
    /// The request field (or header) at fault, when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// Id of the request (also in `X-Request-Id`): the server log has the details under it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
}

#[derive(Debug, Clone)]
pub struct ApiError {
    pub body: ErrorResponse,
    pub retry_after_secs: Option<u64>,
}

impl ApiError {
    /// An error whose message is meant for the client (redacted all the same).
    pub fn new(error_type: ErrorType, error: impl Into<String>) -> Self {
        Self {
            body: ErrorResponse {
                error: public_text(&error.into()),
                error_type,
                field: None,
                request_id: request_id::current(),
            },
            retry_after_secs: None,
        }
    }

    /// A failure inside the server: `detail` goes to the log (at error level, under the request
    /// id), the client gets a fixed sentence for `error_type` that names the request id.
    pub fn internal(error_type: ErrorType, detail: impl std::fmt::Display) -> Self {
        let id = request_id::current();
        tracing::error!(request_id = id.as_deref().unwrap_or("-"), error_type = ?error_type, "{detail}");
        let what = match error_type {
            ErrorType::Encoding => "the MP4 could not be written",
            _ => "generation failed inside the server",
        };
        let error = match &id {
            Some(id) => format!("{what}; the server log has the details under request id {id}"),
            None => format!("{what}; the server log has the details"),
        };
        Self {
            body: ErrorResponse {
                error,
                error_type,
                field: None,
                request_id: id,
            },
            retry_after_secs: None,
        }
    }

    pub fn with_field(mut self, field: &str) -> Self {
        self.body.field = Some(field.to_string());
        self
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.body.error_type.status();
        let mut response = (status, Json(self.body.clone())).into_response();
        if let Some(secs) = self.retry_after_secs {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        // Logged by the middleware in `http::log_errors`, so building a response stays pure.
        response.extensions_mut().insert(self.body);
        response
    }
}

impl From<ValidationError> for ApiError {
    fn from(e: ValidationError) -> Self {
        ApiError::new(ErrorType::Validation, e.to_string()).with_field(e.field)
    }
}

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> Self {
        let kind = match rejection.status() {
            StatusCode::PAYLOAD_TOO_LARGE => ErrorType::PayloadTooLarge,
            StatusCode::UNSUPPORTED_MEDIA_TYPE => ErrorType::UnsupportedMediaType,
            StatusCode::UNPROCESSABLE_ENTITY => ErrorType::Validation,
            _ => ErrorType::MalformedJson,
        };
        let message = match kind {
            ErrorType::PayloadTooLarge => {
                "request body is larger than the server's limit (see --max-body-bytes)".into()
            }
            _ => rejection.body_text(),
        };
        ApiError::new(kind, message).with_field("body")
    }
}

impl From<SubmitError> for ApiError {
    fn from(e: SubmitError) -> Self {
        match e {
            SubmitError::Full { retry_after_secs } => ApiError {
                retry_after_secs: Some(retry_after_secs),
                ..ApiError::new(
                    ErrorType::Overloaded,
                    "the generation queue is full; retry later",
                )
            },
            SubmitError::Closed => {
                ApiError::new(ErrorType::Unhealthy, "the generation engine is not running")
            }
        }
    }
}

impl From<GenError> for ApiError {
    fn from(e: GenError) -> Self {
        match e {
            GenError::InvalidInput { field, .. } | GenError::Media { field, .. } => {
                ApiError::new(ErrorType::Validation, e.to_string()).with_field(field)
            }
            GenError::Cancelled => ApiError::new(
                ErrorType::Unhealthy,
                "generation was cancelled (server shutting down)",
            ),
            GenError::Model(_) => ApiError::internal(ErrorType::Generation, e),
        }
    }
}

/// `Json<T>` whose rejections use the error shape above.
#[derive(FromRequest)]
#[from_request(via(axum::Json), rejection(ApiError))]
pub struct AppJson<T>(pub T);
