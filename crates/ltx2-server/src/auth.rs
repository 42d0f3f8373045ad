//! Optional API keys: with any configured, every route but `GET /health` (and the docs, unless
//! `--protect-docs`) needs `Authorization: Bearer <key>`.
//!
//! Only SHA-256 digests of the keys are kept, and a presented key's digest is compared with every
//! one of them in constant time (no early exit), so neither a key's content nor its length leaks
//! through timing. Keys are never logged: [`ApiKey`]'s `Debug` is redacted, the request span
//! records method and path only, and metrics label by route.

use std::path::Path;
use std::str::FromStr;

use anyhow::Context;
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};
use subtle::{Choice, ConstantTimeEq};

use crate::http::error::{ApiError, ErrorType};
use crate::ServerConfig;

/// One configured key. Its `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKey(String);

impl ApiKey {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ApiKey(<redacted>)")
    }
}

impl FromStr for ApiKey {
    type Err = String;

    /// Surrounding whitespace is dropped; a key must be non-empty visible ASCII (what a client
    /// can put in a header as is). The error never repeats the key.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let key = s.trim();
        if key.is_empty() {
            return Err("an API key must not be empty".into());
        }
        if !key.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(
                "an API key may only hold visible ASCII characters (no spaces or control characters)"
                    .into(),
            );
        }
        Ok(Self(key.to_string()))
    }
}

/// The keys a server accepts, as digests.
#[derive(Clone, Default)]
pub struct ApiKeys {
    digests: Vec<[u8; 32]>,
    /// `/docs` and `/openapi.json` need a key too.
    pub protect_docs: bool,
}

impl std::fmt::Debug for ApiKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiKeys")
            .field("count", &self.digests.len())
            .field("protect_docs", &self.protect_docs)
            .finish()
    }
}

fn digest(key: &str) -> [u8; 32] {
    Sha256::digest(key.as_bytes()).into()
}

impl ApiKeys {
    pub fn new<'a>(keys: impl IntoIterator<Item = &'a ApiKey>, protect_docs: bool) -> Self {
        let mut digests: Vec<[u8; 32]> = keys.into_iter().map(|k| digest(k.as_str())).collect();
        digests.sort_unstable();
        digests.dedup();
        Self {
            digests,
            protect_docs,
        }
    }

    /// `--api-key` / `LTX2_API_KEYS` plus the lines of `--api-key-file`.
    pub fn from_config(config: &ServerConfig) -> anyhow::Result<Self> {
        let mut keys = config.api_keys.clone();
        if let Some(path) = &config.api_key_file {
            keys.extend(read_key_file(path)?);
        }
        Ok(Self::new(&keys, config.protect_docs))
    }

    /// No key configured: every route is open.
    pub fn is_open(&self) -> bool {
        self.digests.is_empty()
    }

    pub fn len(&self) -> usize {
        self.digests.len()
    }

    pub fn is_empty(&self) -> bool {
        self.digests.is_empty()
    }

    /// Whether `presented` is one of the keys, in time independent of which (if any) it matches.
    pub fn check(&self, presented: &str) -> bool {
        let d = digest(presented);
        let mut found = Choice::from(0);
        for k in &self.digests {
            found |= k.ct_eq(&d);
        }
        found.into()
    }

    /// Routes reachable without a key.
    fn is_public(&self, method: &Method, path: &str) -> bool {
        let health = path == "/health" && (method == Method::GET || method == Method::HEAD);
        let docs = path == "/openapi.json" || path == "/docs" || path.starts_with("/docs/");
        health || (docs && !self.protect_docs)
    }
}

/// One key per line; blank lines and lines starting with `#` are skipped.
fn read_key_file(path: &Path) -> anyhow::Result<Vec<ApiKey>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading the API key file {}", path.display()))?;
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
        .map(|(i, l)| {
            l.parse()
                .map_err(|e| anyhow::anyhow!("{}, line {}: {e}", path.display(), i + 1))
        })
        .collect()
}

fn unauthorized(message: &str) -> Response {
    let mut response = ApiError::new(ErrorType::Unauthorized, message)
        .with_field("Authorization")
        .into_response();
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Bearer realm=\"ltx2\""),
    );
    response
}

/// Middleware: lets a request through when no key is configured, its route is public, or it
/// carries a configured key; else 401 naming the header.
pub async fn require_key(State(keys): State<ApiKeys>, req: Request, next: Next) -> Response {
    if keys.is_open() || keys.is_public(req.method(), req.uri().path()) {
        return next.run(req).await;
    }
    let Some(value) = req.headers().get(header::AUTHORIZATION) else {
        return unauthorized(
            "this server needs an API key: send it as the `Authorization: Bearer <key>` header",
        );
    };
    let token = value
        .to_str()
        .ok()
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim());
    match token {
        Some(token) if keys.check(token) => next.run(req).await,
        Some(_) => unauthorized("the `Authorization` header does not hold a valid API key"),
        None => unauthorized("the `Authorization` header must be `Bearer <key>`"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_match_exactly_and_never_print() {
        let a: ApiKey = " key-one ".parse().unwrap();
        let b: ApiKey = "key-two".parse().unwrap();
        let keys = ApiKeys::new([&a, &b], false);
        assert!(keys.check("key-one") && keys.check("key-two"));
        for wrong in ["", "key", "key-one ", "KEY-ONE", "key-one-and-more"] {
            assert!(!keys.check(wrong), "{wrong:?}");
        }
        assert!(!format!("{a:?} {keys:?}").contains("key-one"));
        assert!("two words".parse::<ApiKey>().is_err());
        assert!("".parse::<ApiKey>().is_err());
        assert!(ApiKeys::default().is_open());
    }

    #[test]
    fn public_routes() {
        let keys = ApiKeys::new([&"k".parse().unwrap()], false);
        assert!(keys.is_public(&Method::GET, "/health"));
        assert!(!keys.is_public(&Method::POST, "/health"));
        assert!(keys.is_public(&Method::GET, "/docs/index.html"));
        assert!(keys.is_public(&Method::GET, "/openapi.json"));
        for path in ["/", "/generate", "/jobs", "/metrics", "/docsx", "/nope"] {
            assert!(!keys.is_public(&Method::GET, path), "{path}");
        }
        let protected = ApiKeys::new([&"k".parse().unwrap()], true);
        assert!(!protected.is_public(&Method::GET, "/openapi.json"));
        assert!(protected.is_public(&Method::GET, "/health"));
    }
}
