//! The real binary with the demo model (the real engine: text encoder, audio VAE, MP4 writer)
//! and `RUST_BACKTRACE=1`, as containers often run it: bad media is refused at validation with a
//! 422 that carries no backtrace, path or internal name (the engine's job count does not move);
//! an API key guards every route but /health and never reaches the log; without a key the server
//! says at start-up that it is open.

#[path = "../../ltx2-server/tests/common/mod.rs"]
mod common;

use std::fs::File;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use common::{png_bytes, temp_dir, wav_bytes};
use reqwest::StatusCode;
use serde_json::{json, Value};

const KEY: &str = "demo-key-3f9a1c7e5b2d4a60";

struct Served {
    child: Child,
    url: String,
    log: PathBuf,
}

impl Served {
    fn start(name: &str, extra: &[&str]) -> Self {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let log = temp_dir(name).join("server.log");
        let file = File::create(&log).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_ltx2"))
            .args(["serve", "--model", "demo", "--host", "127.0.0.1"])
            .args(["--port", &port.to_string()])
            .args(extra)
            .env("RUST_BACKTRACE", "1")
            .env("RUST_LOG", "debug")
            .env_remove("LTX2_API_KEYS")
            .stdout(Stdio::from(file.try_clone().unwrap()))
            .stderr(Stdio::from(file))
            .spawn()
            .expect("ltx2 binary runs");
        let served = Self {
            child,
            url: format!("http://127.0.0.1:{port}"),
            log,
        };
        let deadline = Instant::now() + Duration::from_secs(120);
        while Command::new("curl")
            .args(["-sf", &format!("{}/health", served.url)])
            .output()
            .map_or(true, |o| !o.status.success())
        {
            assert!(Instant::now() < deadline, "ltx2 serve never became healthy");
            std::thread::sleep(Duration::from_millis(200));
        }
        served
    }

    /// SIGTERM, wait for the graceful exit, return the log.
    fn stop(mut self) -> String {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(60);
        while self.child.try_wait().unwrap().is_none() {
            assert!(Instant::now() < deadline, "no exit after SIGTERM");
            std::thread::sleep(Duration::from_millis(100));
        }
        std::fs::read_to_string(&self.log).unwrap()
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// `wav_bytes` with the data length the header states replaced.
fn lying_wav(frames: usize) -> Vec<u8> {
    let mut w = wav_bytes(16_000, 1, frames as f32 / 16_000.0);
    w[40..44].copy_from_slice(&0x7FFF_FFF0u32.to_le_bytes());
    w[4..8].copy_from_slice(&0xFFFF_FFF0u32.to_le_bytes());
    w
}

async fn post(url: &str, body: &Value, key: Option<&str>) -> (StatusCode, Value) {
    let mut req = reqwest::Client::new()
        .post(format!("{url}/generate"))
        .json(body);
    if let Some(key) = key {
        req = req.bearer_auth(key);
    }
    let r = req.send().await.unwrap();
    (r.status(), r.json().await.unwrap())
}

fn assert_clean(what: &str, body: &Value) {
    let text = body.to_string();
    for mark in [
        "backtrace",
        "\\n",
        ".rs:",
        "::",
        "/work/",
        "/root/",
        "/rustc/",
        "crates/",
        "panicked",
    ] {
        assert!(!text.contains(mark), "{what}: `{mark}` in {text}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_server_refuses_bad_media_cleanly_and_guards_its_key() {
    let served = Served::start("hardening-keyed", &["--api-key", KEY]);
    let url = served.url.clone();
    let small = json!({"prompt": "a cat", "width": 64, "height": 64, "num_frames": 9});
    let with = |field: &str, value: String| {
        let mut b = small.clone();
        b[field] = json!(value);
        b
    };
    let wav_uri = |bytes: Vec<u8>| format!("data:audio/wav;base64,{}", b64(&bytes));

    let (status, r) = post(&url, &small, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{r}");
    let (status, _) = post(&url, &small, Some("not-the-key")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let health: Value = reqwest::get(format!("{url}/health"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(health["status"], "healthy");

    let mut png = png_bytes(8, 8, 1);
    png.truncate(40);
    let cases = [
        (
            "WAV whose header lies about its length",
            with("audio", wav_uri(lying_wav(100))),
        ),
        (
            "audio too short for the model",
            with("audio", wav_uri(wav_bytes(16_000, 1, 0.02))),
        ),
        (
            "audio at 44101 Hz",
            with("audio", wav_uri(wav_bytes(44_101, 1, 0.5))),
        ),
        (
            "truncated PNG",
            with(
                "image_start",
                format!("data:image/png;base64,{}", b64(&png)),
            ),
        ),
    ];
    for (what, body) in &cases {
        let (status, r) = post(&url, body, Some(KEY)).await;
        println!("{what}: {status} {}", r["error"]);
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{what}: {r}");
        assert_clean(what, &r);
    }
    let health: Value = reqwest::get(format!("{url}/health"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        (health["completed"].as_u64(), health["failed"].as_u64()),
        (Some(0), Some(0)),
        "nothing reached the engine: {health}"
    );
    // Audio the model can take runs through the real audio encoder.
    let ok = with("audio", wav_uri(wav_bytes(16_000, 1, 0.5)));
    let (status, r) = post(&url, &ok, Some(KEY)).await;
    assert_eq!(status, StatusCode::OK, "{}", r["error"]);

    let log = served.stop();
    assert!(log.contains("API keys required"), "{log}");
    assert!(!log.contains(KEY), "the key is in the log");
    assert!(!log.contains("no API key configured"));
    println!("{} log bytes at debug level, no key in them", log.len());
}

#[test]
fn an_open_server_says_so_at_start_up() {
    let served = Served::start("hardening-open", &[]);
    let log = served.stop();
    assert!(log.contains("no API key configured"), "{log}");
    assert!(log.contains("CORS closed"), "{log}");
}
