//! With `RUST_BACKTRACE=1` (common in containers), no error body carries a backtrace, a source
//! path or an internal name, for every class of bad input the tests send: malformed JSON, wrong
//! types, out-of-range values, undecodable and oversized media, lying audio headers, auth and
//! CORS refusals, engine failures and panics. Every error names its request id, the same as the
//! `X-Request-Id` header. Media that cannot condition the model is refused at validation: the
//! engine never sees it.

mod common;

use std::sync::atomic::Ordering;
use std::time::Duration;

use base64::Engine;
use common::*;
use ltx2_server::ServerConfig;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// 16-bit PCM WAV of `frames` frames with explicit header fields; `claimed` overrides the data
/// length the header states.
pub fn wav_with(rate: u32, channels: u16, frames: usize, claimed: Option<u32>) -> Vec<u8> {
    let data_len = (frames * channels as usize * 2) as u32;
    let claimed = claimed.unwrap_or(data_len);
    let mut w = Vec::new();
    w.extend_from_slice(b"RIFF");
    w.extend_from_slice(&claimed.saturating_add(36).to_le_bytes());
    w.extend_from_slice(b"WAVEfmt ");
    w.extend_from_slice(&16u32.to_le_bytes());
    w.extend_from_slice(&1u16.to_le_bytes());
    w.extend_from_slice(&channels.to_le_bytes());
    w.extend_from_slice(&rate.to_le_bytes());
    w.extend_from_slice(&rate.wrapping_mul(channels as u32 * 2).to_le_bytes());
    w.extend_from_slice(&channels.wrapping_mul(2).to_le_bytes());
    w.extend_from_slice(&16u16.to_le_bytes());
    w.extend_from_slice(b"data");
    w.extend_from_slice(&claimed.to_le_bytes());
    for i in 0..frames * channels as usize {
        w.extend_from_slice(&(((i as f32 * 0.07).sin() * 9000.0) as i16).to_le_bytes());
    }
    w
}

fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in bytes {
        crc ^= b as u32;
        for _ in 0..8 {
            crc = (crc >> 1) ^ (0xEDB8_8320 & (crc & 1).wrapping_neg());
        }
    }
    !crc
}

/// A PNG whose IHDR (CRC fixed up) claims `w x h`.
pub fn png_claiming(w: u32, h: u32) -> Vec<u8> {
    let mut png = png_bytes(8, 8, 3);
    png[16..20].copy_from_slice(&w.to_be_bytes());
    png[20..24].copy_from_slice(&h.to_be_bytes());
    let crc = crc32(&png[12..29]);
    png[29..33].copy_from_slice(&crc.to_be_bytes());
    png
}

/// Marks of internals a client must never see.
fn assert_clean(what: &str, status: StatusCode, header_id: Option<String>, body: &Value) {
    let error = body["error"]
        .as_str()
        .unwrap_or_else(|| panic!("{what}: no error in {body}"));
    let text = body.to_string();
    for mark in [
        "backtrace",
        "\\n",
        ".rs:",
        ".rs ",
        "::",
        "/work/",
        "/root/",
        "/home/",
        "/rustc/",
        "crates/",
        "panicked",
        "RUST_BACKTRACE",
    ] {
        assert!(
            !text.contains(mark),
            "{what} ({status}): `{mark}` in {text}"
        );
    }
    let id = body["request_id"].as_str();
    assert!(id.is_some(), "{what}: no request_id in {body}");
    assert_eq!(
        id.map(String::from),
        header_id,
        "{what}: body and header ids differ"
    );
    println!("{status} {what}: {error}");
}

async fn check(
    client: &reqwest::Client,
    what: &str,
    req: reqwest::RequestBuilder,
    expected: StatusCode,
) -> Value {
    let _ = client;
    let r = req.send().await.unwrap();
    let status = r.status();
    let header_id = r
        .headers()
        .get("x-request-id")
        .map(|v| v.to_str().unwrap().to_string());
    let body: Value = r.json().await.unwrap();
    assert_eq!(status, expected, "{what}: {body}");
    assert_clean(what, status, header_id, &body);
    body
}

/// Every class of invalid body: (what, body, field at fault).
fn invalid_bodies() -> Vec<(&'static str, Value, &'static str)> {
    let small = json!({"prompt": "x", "width": 64, "height": 64, "num_frames": 9});
    let with = |field: &str, value: Value| {
        let mut b = small.clone();
        b[field] = value;
        b
    };
    let text = b64(b"definitely not media");
    let audio = |bytes: Vec<u8>| json!(format!("data:audio/wav;base64,{}", b64(&bytes)));
    let image = |bytes: Vec<u8>| json!(format!("data:image/png;base64,{}", b64(&bytes)));

    // (what, body, field) -> 422 naming the field.
    vec![
        ("missing prompt", json!({"width": 288}), "prompt"),
        ("empty prompt", json!({"prompt": ""}), "prompt"),
        (
            "prompt of the wrong type",
            json!({"prompt": ["a"]}),
            "prompt",
        ),
        (
            "width not a multiple of 32",
            with("width", json!(300)),
            "width",
        ),
        (
            "height out of range",
            with("height", json!(100000)),
            "height",
        ),
        ("number as a string", with("width", json!("288")), "width"),
        (
            "num_frames not 8k+1",
            with("num_frames", json!(50)),
            "num_frames",
        ),
        (
            "fractional num_frames",
            with("num_frames", json!(1.5)),
            "num_frames",
        ),
        ("fps out of range", with("fps", json!(1000)), "fps"),
        (
            "guidance_scale negative",
            with("guidance_scale", json!(-3)),
            "guidance_scale",
        ),
        (
            "steps zero",
            with("num_inference_steps", json!(0)),
            "num_inference_steps",
        ),
        ("seed negative", with("seed", json!(-5)), "seed"),
        ("huge number", json!({"prompt": "x", "seed": 1e300}), "seed"),
        (
            "strength out of range",
            with("image_strength", json!(1.01)),
            "image_strength",
        ),
        (
            "include_audio of the wrong type",
            with("include_audio", json!(1)),
            "include_audio",
        ),
        (
            "image not base64",
            with("image_start", json!("%%%")),
            "image_start",
        ),
        (
            "image not an image",
            with("image_start", image(b"definitely not media".to_vec())),
            "image_start",
        ),
        (
            "truncated PNG",
            with("image_end", image(png_bytes(8, 8, 1)[..40].to_vec())),
            "image_end",
        ),
        (
            "PNG claiming 100000x100000",
            with("image_start", image(png_claiming(100_000, 100_000))),
            "image_start",
        ),
        (
            "audio not audio",
            with("audio", json!(format!("data:audio/wav;base64,{text}"))),
            "audio",
        ),
        (
            "audio not base64",
            with("audio", json!("not base64 at all!")),
            "audio",
        ),
        (
            "WAV whose header lies about its length",
            with("audio", audio(wav_with(16_000, 1, 100, Some(0x7FFF_FFF0)))),
            "audio",
        ),
        (
            "audio too short for the model",
            with("audio", audio(wav_with(16_000, 1, 400, None))),
            "audio",
        ),
        (
            "audio at 44101 Hz",
            with("audio", audio(wav_with(44_101, 1, 44_101, None))),
            "audio",
        ),
        (
            "audio at 4 GHz",
            with("audio", audio(wav_with(u32::MAX, 1, 1000, None))),
            "audio",
        ),
        (
            "WAV with 65535 channels",
            with("audio", audio(wav_with(16_000, 65_535, 2, None))),
            "audio",
        ),
        (
            "audio longer than the limit",
            with("audio", audio(wav_with(8_000, 1, 8_000 * 61, None))),
            "audio",
        ),
        ("body not an object", json!("just a string"), "body"),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn no_error_body_shows_the_inside() {
    // Before anything captures a backtrace (std reads it once).
    std::env::set_var("RUST_BACKTRACE", "1");
    let config = ServerConfig {
        max_body_bytes: 12 << 20,
        max_audio_seconds: 60.0,
        ..ServerConfig::default()
    };
    let server = TestServer::start(config, Duration::ZERO).await;
    let client = reqwest::Client::new();
    let url = &server.url;
    let small = json!({"prompt": "x", "width": 64, "height": 64, "num_frames": 9});
    let invalid = invalid_bodies();
    for (what, body, field) in invalid {
        let req = client.post(format!("{url}/generate")).json(&body);
        let e = check(&client, what, req, StatusCode::UNPROCESSABLE_ENTITY).await;
        assert_eq!(e["field"], field, "{what}: {e}");
        // The same validation runs for async jobs.
        let req = client.post(format!("{url}/jobs")).json(&body);
        check(
            &client,
            &format!("{what} (POST /jobs)"),
            req,
            StatusCode::UNPROCESSABLE_ENTITY,
        )
        .await;
    }
    assert_eq!(
        server.counters.started.load(Ordering::SeqCst),
        0,
        "no bad input reached the engine"
    );

    // Known fields holding arrays are refused by type without being parsed, however deep;
    // unknown fields are never parsed (serde_json skips them without recursing).
    let deep = format!("{{\"prompt\": {}1{}}}", "[".repeat(500), "]".repeat(500));
    let deeper = format!(
        "{{\"prompt\": \"x\", \"extra\": {}1{}}}",
        "[".repeat(4 << 20),
        "]".repeat(4 << 20)
    );
    let raw: Vec<(&str, String, &str, StatusCode)> = vec![
        (
            "NaN",
            r#"{"prompt": "x", "guidance_scale": NaN}"#.into(),
            "application/json",
            StatusCode::BAD_REQUEST,
        ),
        (
            "truncated JSON",
            r#"{"prompt": "x""#.into(),
            "application/json",
            StatusCode::BAD_REQUEST,
        ),
        (
            "JSON nested 500 deep",
            deep,
            "application/json",
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "not UTF-8",
            "{\"prompt\": \"\u{FFFD}\"}".replace('\u{FFFD}', "\\udc00"),
            "application/json",
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "text/plain body",
            r#"{"prompt": "x"}"#.into(),
            "text/plain",
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
        ),
        (
            "body over the limit",
            format!("{{\"prompt\": \"{}\"}}", "x".repeat(13 << 20)),
            "application/json",
            StatusCode::PAYLOAD_TOO_LARGE,
        ),
    ];
    for (what, body, content_type, status) in raw {
        // A fresh connection each: after a 413 the server closes the one that sent the body.
        let req = reqwest::Client::new()
            .post(format!("{url}/generate"))
            .header("content-type", content_type)
            .body(body);
        check(&client, what, req, status).await;
    }
    // Skipped without recursion: answered, and the server is still there.
    let r = client
        .post(format!("{url}/generate"))
        .header("content-type", "application/json")
        .body(deeper)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK, "unknown field nested 4M deep");
    let ok: Value = r.json().await.unwrap();
    assert!(ok["notes"]
        .to_string()
        .contains("unknown field `extra` ignored"));

    check(
        &client,
        "unknown route",
        client.get(format!("{url}/nope")),
        StatusCode::NOT_FOUND,
    )
    .await;
    check(
        &client,
        "wrong method",
        client.get(format!("{url}/generate")),
        StatusCode::METHOD_NOT_ALLOWED,
    )
    .await;
    check(
        &client,
        "unknown job",
        client.get(format!("{url}/jobs/nope")),
        StatusCode::NOT_FOUND,
    )
    .await;
    check(
        &client,
        "CORS preflight",
        client
            .request(Method::OPTIONS, format!("{url}/generate"))
            .header("origin", "https://x.example")
            .header("access-control-request-method", "POST"),
        StatusCode::FORBIDDEN,
    )
    .await;

    // Engine failures: the model's own words (and a panic's) stay in the server log.
    let fail = |prompt: &str| {
        let mut b = small.clone();
        b["prompt"] = json!(prompt);
        b["num_inference_steps"] = json!(1);
        b
    };
    for (prompt, status) in [
        ("FAIL", StatusCode::INTERNAL_SERVER_ERROR),
        ("PANIC", StatusCode::INTERNAL_SERVER_ERROR),
        ("REJECT", StatusCode::UNPROCESSABLE_ENTITY),
    ] {
        let req = client.post(format!("{url}/generate")).json(&fail(prompt));
        let e = check(&client, &format!("engine {prompt}"), req, status).await;
        if status.is_server_error() {
            let id = e["request_id"].as_str().unwrap();
            assert!(e["error"].as_str().unwrap().contains(id), "{e}");
            assert!(!e["error"].as_str().unwrap().contains("device lost"), "{e}");
        }
    }
    // An async job that fails reports the id of the request that submitted it.
    let r = client
        .post(format!("{url}/jobs"))
        .json(&fail("FAIL"))
        .send()
        .await
        .unwrap();
    let submitted = r.headers()["x-request-id"].to_str().unwrap().to_string();
    let job: Value = r.json().await.unwrap();
    let view = loop {
        let v: Value = client
            .get(format!("{url}/jobs/{}", job["id"].as_str().unwrap()))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if v["status"] == "failed" {
            break v;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(view["error"]["request_id"], submitted, "{view}");
    assert!(!view.to_string().contains("device lost"), "{view}");

    assert_eq!(server.health().await["status"], "healthy");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn runpod_jobs_get_the_same_validation_and_clean_errors() {
    std::env::set_var("RUST_BACKTRACE", "1");
    let counters = std::sync::Arc::new(Counters::default());
    let generator = Box::new(TestGenerator {
        step_delay: Duration::ZERO,
        counters: counters.clone(),
    });
    let (engine, _join) = ltx2_server::engine::spawn(generator, 4).unwrap();
    let config = ServerConfig {
        max_audio_seconds: 60.0,
        ..ServerConfig::default()
    };
    let handler = ltx2_server::runpod::Handler {
        limits: config.limits(engine.info()),
        engine,
        worker_id: "pod".into(),
    };
    let mut bodies = invalid_bodies();
    bodies.push((
        "engine failure",
        json!({"prompt": "FAIL", "width": 64, "height": 64, "num_frames": 9, "num_inference_steps": 1}),
        "",
    ));
    for (what, body, field) in bodies {
        let id = format!("job-{}", what.len());
        let cancel = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let e = ltx2_server::http::request_id::scope(id.clone(), handler.run(body, cancel, None))
            .await
            .expect_err(what);
        let reported: Value = serde_json::from_str(&handler.error_string(&e)).unwrap();
        println!("RunPod {what}: {reported}");
        if !field.is_empty() {
            assert_eq!(reported["field"], field, "{what}: {reported}");
            assert_eq!(reported["error_type"], "validation", "{what}: {reported}");
        }
        let text = reported.to_string();
        for mark in [
            "backtrace",
            "\\n",
            ".rs:",
            "::",
            "/work/",
            "crates/",
            "panicked",
            "device lost",
        ] {
            assert!(!text.contains(mark), "{what}: `{mark}` in {text}");
        }
        assert_eq!(e.body.request_id.as_deref(), Some(id.as_str()), "{what}");
    }
    assert_eq!(
        counters.started.load(Ordering::SeqCst),
        1,
        "only the valid request reached the engine"
    );
}
