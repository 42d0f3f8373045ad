//! One id per request: generated here (never taken from the client, so it cannot forge log
//! lines), returned in `X-Request-Id` and in every error body, and recorded on the request's log
//! span, so a client's error report finds the server-side details.
//!
//! The id lives in a task-local for the request's future; work the request hands to another task
//! (an async job) carries it over with [`propagate`].

use std::future::Future;

use axum::extract::Request;
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::Response;
use tracing::Instrument;

pub const HEADER: &str = "x-request-id";

tokio::task_local! {
    static REQUEST_ID: String;
}

/// The id of the request being served (or the async job / RunPod job being run), if any.
pub fn current() -> Option<String> {
    REQUEST_ID.try_with(Clone::clone).ok()
}

/// Runs `fut` as request `id`.
pub async fn scope<F: Future>(id: String, fut: F) -> F::Output {
    REQUEST_ID.scope(id, fut).await
}

/// `fut` with the current request id and log span, for a task spawned on the request's behalf.
pub fn propagate<F: Future>(fut: F) -> impl Future<Output = F::Output> {
    let id = current().unwrap_or_default();
    REQUEST_ID
        .scope(id, fut)
        .instrument(tracing::Span::current())
}

/// The id of a request, in its extensions (for the log span).
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

/// Middleware: assigns the id, serves the request inside its scope, and names it in the response.
pub async fn assign(mut req: Request, next: Next) -> Response {
    let id = uuid::Uuid::new_v4().simple().to_string();
    req.extensions_mut().insert(RequestId(id.clone()));
    let mut response = scope(id.clone(), next.run(req)).await;
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(HEADER, value);
    }
    response
}
