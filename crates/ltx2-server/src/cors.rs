//! CORS, closed by default: a browser preflight from an origin not named with `--cors-origin` is
//! answered 403 (naming the `Origin` header), and no response carries
//! `Access-Control-Allow-Origin` for it. Named origins (or `*`) get tower-http's CORS layer.
//!
//! The layer sits outside authentication: preflights carry no `Authorization` header.

use std::time::Duration;

use anyhow::Context;
use axum::extract::{Request, State};
use axum::http::{header, HeaderName, HeaderValue, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tower_http::cors::{AllowOrigin, CorsLayer};

use crate::http::error::{ApiError, ErrorType};
use crate::http::request_id;

/// The origins browsers may call the API from.
#[derive(Debug, Clone, Default)]
pub struct CorsOrigins {
    origins: Vec<HeaderValue>,
    any: bool,
}

impl CorsOrigins {
    /// From `--cors-origin` values: `scheme://host[:port]` (a trailing `/` is dropped) or `*`.
    pub fn parse(values: &[String]) -> anyhow::Result<Self> {
        let mut out = Self::default();
        for v in values.iter().map(|v| v.trim()).filter(|v| !v.is_empty()) {
            if v == "*" {
                out.any = true;
                continue;
            }
            let origin = v.trim_end_matches('/');
            let (scheme, host) = origin.split_once("://").with_context(|| {
                format!("--cors-origin {v:?}: an origin is scheme://host[:port]")
            })?;
            anyhow::ensure!(
                matches!(scheme, "http" | "https") && !host.is_empty() && !host.contains('/'),
                "--cors-origin {v:?}: an origin is http(s)://host[:port], without a path"
            );
            out.origins.push(
                HeaderValue::from_str(origin)
                    .with_context(|| format!("--cors-origin {v:?} is not a valid header value"))?,
            );
        }
        Ok(out)
    }

    pub fn is_closed(&self) -> bool {
        !self.any && self.origins.is_empty()
    }

    fn allows(&self, origin: &HeaderValue) -> bool {
        self.any || self.origins.iter().any(|o| o == origin)
    }

    /// The tower-http layer for the allowed origins; `None` when CORS is closed.
    pub fn layer(&self) -> Option<CorsLayer> {
        if self.is_closed() {
            return None;
        }
        let allow = if self.any {
            AllowOrigin::any()
        } else {
            AllowOrigin::list(self.origins.clone())
        };
        Some(
            CorsLayer::new()
                .allow_origin(allow)
                .allow_methods([Method::GET, Method::POST, Method::DELETE])
                .allow_headers([header::AUTHORIZATION, header::CONTENT_TYPE])
                .expose_headers([
                    header::RETRY_AFTER,
                    HeaderName::from_static(request_id::HEADER),
                ])
                .max_age(Duration::from_secs(3600)),
        )
    }
}

/// Middleware: 403 for a preflight (`OPTIONS` with `Origin` and
/// `Access-Control-Request-Method`) from an origin that is not allowed.
pub async fn refuse_preflight(
    State(cors): State<CorsOrigins>,
    req: Request,
    next: Next,
) -> Response {
    let headers = req.headers();
    let preflight = req.method() == Method::OPTIONS
        && headers.contains_key(header::ACCESS_CONTROL_REQUEST_METHOD);
    match headers.get(header::ORIGIN) {
        Some(origin) if preflight && !cors.allows(origin) => {
            let message = if cors.is_closed() {
                "cross-origin requests are not enabled on this server (see --cors-origin)".into()
            } else {
                format!(
                    "origin {:?} is not allowed to call this API (see --cors-origin)",
                    origin.to_str().unwrap_or("?")
                )
            };
            ApiError::new(ErrorType::Forbidden, message)
                .with_field("Origin")
                .into_response()
        }
        _ => next.run(req).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_are_checked() {
        let c = CorsOrigins::parse(&["https://app.example.com/".into()]).unwrap();
        assert!(c.allows(&HeaderValue::from_static("https://app.example.com")));
        assert!(!c.allows(&HeaderValue::from_static("https://evil.example.com")));
        assert!(CorsOrigins::parse(&[]).unwrap().is_closed());
        assert!(CorsOrigins::parse(&["*".into()])
            .unwrap()
            .allows(&HeaderValue::from_static("http://x")));
        for bad in ["app.example.com", "ftp://x", "https://x/path"] {
            assert!(CorsOrigins::parse(&[bad.into()]).is_err(), "{bad}");
        }
    }
}
