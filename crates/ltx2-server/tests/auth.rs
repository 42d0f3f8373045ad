//! API keys and CORS on the real router: 401 without or with a wrong key on every protected
//! route, each configured key (flag and key file) accepted, health and docs open, the keys never
//! in the logs or metrics, the OpenAPI bearer scheme; CORS preflights refused by default and
//! allowed for a configured origin.

mod common;

use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use common::*;
use ltx2_server::ServerConfig;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

const KEY_FLAG: &str = "flag-key-5b0e8f1c2d7a4e69";
const KEY_FILE: &str = "file-key-9c41d2e7ab03f658";

/// Everything every test of this binary logs, at trace level for all targets.
fn logs() -> Arc<Mutex<Vec<u8>>> {
    static LOGS: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    LOGS.get_or_init(|| {
        let buf = Arc::new(Mutex::new(Vec::new()));
        let sink = buf.clone();
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new("trace"))
            .with_ansi(false)
            .with_writer(move || SharedWriter(sink.clone()))
            .init();
        buf
    })
    .clone()
}

struct SharedWriter(Arc<Mutex<Vec<u8>>>);

impl Write for SharedWriter {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn keyed_config(protect_docs: bool) -> ServerConfig {
    // One folder per call: tests run in parallel, and temp_dir empties the folder it returns (a
    // shared one was emptied under another test's starting server, which then exited).
    static CALLS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = temp_dir(&format!("keys-{protect_docs}-{n}"));
    let file = dir.join("keys.txt");
    std::fs::write(&file, format!("# clients\n\n{KEY_FILE}\n")).unwrap();
    ServerConfig {
        api_keys: vec![KEY_FLAG.parse().unwrap()],
        api_key_file: Some(file),
        protect_docs,
        ..ServerConfig::default()
    }
}

const SMALL: &str =
    r#"{"prompt": "x", "width": 64, "height": 64, "num_frames": 9, "num_inference_steps": 1}"#;

/// Every protected route with a request that would succeed (or 404 on an unknown job) once
/// authorised.
fn protected() -> Vec<(Method, &'static str, Option<&'static str>)> {
    vec![
        (Method::POST, "/generate", Some(SMALL)),
        (Method::POST, "/jobs", Some(SMALL)),
        (Method::GET, "/jobs/unknown", None),
        (Method::DELETE, "/jobs/unknown", None),
        (Method::GET, "/jobs/unknown/result", None),
        (Method::GET, "/jobs/unknown/result.json", None),
        (Method::GET, "/jobs/unknown/events", None),
        (Method::GET, "/", None),
        (Method::GET, "/metrics", None),
        (Method::GET, "/loras", None),
        (Method::GET, "/no-such-route", None),
        (Method::POST, "/health", None),
    ]
}

async fn send(
    url: &str,
    method: &Method,
    path: &str,
    body: Option<&str>,
    auth: Option<String>,
) -> reqwest::Response {
    let mut req = reqwest::Client::new().request(method.clone(), format!("{url}{path}"));
    if let Some(body) = body {
        req = req
            .header("content-type", "application/json")
            .body(body.to_string());
    }
    if let Some(auth) = auth {
        req = req.header("authorization", auth);
    }
    req.send().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn keys_guard_every_route_but_health_and_never_show_up() {
    let logs = logs();
    let server = TestServer::start(keyed_config(false), Duration::ZERO).await;
    let wrong = [
        None,
        Some(format!("Bearer {KEY_FLAG}x")),
        Some("Bearer ".to_string()),
        Some(KEY_FLAG.to_string()),
        Some(format!("Basic {KEY_FLAG}")),
        Some(format!("Bearer {}", &KEY_FILE[..10])),
    ];
    for (method, path, body) in protected() {
        for auth in &wrong {
            let r = send(&server.url, &method, path, body, auth.clone()).await;
            assert_eq!(
                r.status(),
                StatusCode::UNAUTHORIZED,
                "{method} {path} {auth:?}"
            );
            assert!(r.headers()["www-authenticate"]
                .to_str()
                .unwrap()
                .starts_with("Bearer"));
            let e: Value = r.json().await.unwrap();
            assert_eq!(
                (e["error_type"].as_str(), e["field"].as_str()),
                (Some("unauthorized"), Some("Authorization")),
                "{e}"
            );
            assert!(
                e["error"].as_str().unwrap().contains("Authorization"),
                "{e}"
            );
        }
        for key in [KEY_FLAG, KEY_FILE] {
            let r = send(
                &server.url,
                &method,
                path,
                body,
                Some(format!("Bearer {key}")),
            )
            .await;
            let status = r.status();
            assert_ne!(
                status,
                StatusCode::UNAUTHORIZED,
                "{method} {path} with a key"
            );
            let expected = match path {
                "/generate" | "/" | "/metrics" | "/loras" => StatusCode::OK,
                "/jobs" => StatusCode::ACCEPTED,
                "/health" => StatusCode::METHOD_NOT_ALLOWED,
                _ => StatusCode::NOT_FOUND,
            };
            assert_eq!(status, expected, "{method} {path}");
        }
    }
    // The scheme name is case-insensitive.
    let r = send(
        &server.url,
        &Method::GET,
        "/",
        None,
        Some(format!("bearer {KEY_FILE}")),
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK);

    for path in ["/health", "/docs/", "/openapi.json"] {
        let r = send(&server.url, &Method::GET, path, None, None).await;
        assert_eq!(r.status(), StatusCode::OK, "{path} is open");
    }

    let metrics = send(
        &server.url,
        &Method::GET,
        "/metrics",
        None,
        Some(format!("Bearer {KEY_FLAG}")),
    )
    .await
    .text()
    .await
    .unwrap();
    assert!(metrics.contains("status=\"401\""), "401s are counted");
    let logged = String::from_utf8_lossy(&logs.lock().unwrap()).into_owned();
    assert!(logged.contains("request"), "the log capture works");
    for key in [KEY_FLAG, KEY_FILE, &KEY_FILE[..10]] {
        assert!(!metrics.contains(key), "key in /metrics");
        assert!(!logged.contains(key), "key in the logs");
    }
    println!("{} log bytes at trace level, no key in them", logged.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn protect_docs_closes_the_docs_too() {
    let server = TestServer::start(keyed_config(true), Duration::ZERO).await;
    for path in ["/docs/", "/openapi.json"] {
        let r = send(&server.url, &Method::GET, path, None, None).await;
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "{path}");
        let r = send(
            &server.url,
            &Method::GET,
            path,
            None,
            Some(format!("Bearer {KEY_FILE}")),
        )
        .await;
        assert_eq!(r.status(), StatusCode::OK, "{path}");
    }
    let r = send(&server.url, &Method::GET, "/health", None, None).await;
    assert_eq!(r.status(), StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn openapi_declares_the_bearer_scheme() {
    let keyed = TestServer::start(keyed_config(false), Duration::ZERO).await;
    let open = TestServer::start(ServerConfig::default(), Duration::ZERO).await;
    for (server, required) in [(&keyed, true), (&open, false)] {
        let doc: Value = reqwest::get(format!("{}/openapi.json", server.url))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let scheme = &doc["components"]["securitySchemes"]["bearer_auth"];
        assert_eq!(
            (scheme["type"].as_str(), scheme["scheme"].as_str()),
            (Some("http"), Some("bearer")),
            "{scheme}"
        );
        if required {
            assert_eq!(doc["security"], json!([{"bearer_auth": []}]));
            assert_eq!(doc["paths"]["/health"]["get"]["security"], json!([{}]));
        } else {
            assert!(
                doc.get("security").is_none_or(Value::is_null),
                "{}",
                doc["security"]
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_open_server_behaves_as_before() {
    let server = TestServer::start(ServerConfig::default(), Duration::ZERO).await;
    let r = send(&server.url, &Method::POST, "/generate", Some(SMALL), None).await;
    assert_eq!(r.status(), StatusCode::OK);
    // A stray Authorization header is ignored.
    let r = send(
        &server.url,
        &Method::GET,
        "/",
        None,
        Some("Bearer whatever".into()),
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK);
}

async fn preflight(url: &str, origin: &str) -> reqwest::Response {
    reqwest::Client::new()
        .request(Method::OPTIONS, format!("{url}/generate"))
        .header("origin", origin)
        .header("access-control-request-method", "POST")
        .header(
            "access-control-request-headers",
            "authorization, content-type",
        )
        .send()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cors_is_closed_by_default_and_open_to_named_origins() {
    const APP: &str = "https://app.example.com";
    let closed = TestServer::start(keyed_config(false), Duration::ZERO).await;
    let r = preflight(&closed.url, APP).await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert!(r.headers().get("access-control-allow-origin").is_none());
    let e: Value = r.json().await.unwrap();
    assert_eq!(e["field"], "Origin", "{e}");
    let r = reqwest::Client::new()
        .get(format!("{}/health", closed.url))
        .header("origin", APP)
        .send()
        .await
        .unwrap();
    assert!(r.headers().get("access-control-allow-origin").is_none());

    let config = ServerConfig {
        cors_origins: vec![APP.into()],
        ..keyed_config(false)
    };
    let open = TestServer::start(config, Duration::ZERO).await;
    // Preflights carry no key: they are answered before authentication.
    let r = preflight(&open.url, APP).await;
    assert_eq!(r.status(), StatusCode::OK);
    let h = r.headers();
    assert_eq!(h["access-control-allow-origin"], APP);
    let allowed = h["access-control-allow-headers"]
        .to_str()
        .unwrap()
        .to_lowercase();
    assert!(
        allowed.contains("authorization") && allowed.contains("content-type"),
        "{allowed}"
    );
    let r = preflight(&open.url, "https://evil.example.com").await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert!(r.headers().get("access-control-allow-origin").is_none());
    // The real request from the allowed origin still needs the key, and names its request id.
    let r = reqwest::Client::new()
        .post(format!("{}/generate", open.url))
        .header("origin", APP)
        .header("content-type", "application/json")
        .body(SMALL)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(r.headers()["access-control-allow-origin"], APP);
    let exposed = r.headers()["access-control-expose-headers"]
        .to_str()
        .unwrap()
        .to_lowercase();
    assert!(exposed.contains("x-request-id"), "{exposed}");
}
