//! The HTTP server end to end (real listener, real router, test generator): responses, errors,
//! limits, engine failures, docs. Queueing is in queue.rs.

mod common;

use std::time::{Duration, Instant};

use base64::Engine;
use common::*;
use ltx2_server::ServerConfig;
use reqwest::StatusCode;
use serde_json::{json, Value};

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn response_has_spec_fields_and_what_was_done() {
    let server = TestServer::start(ServerConfig::default(), Duration::ZERO).await;
    let started = Instant::now();
    let (status, r) = post(&server.url, &json!({"prompt": "A cat playing piano"})).await;
    let latency = started.elapsed();
    assert_eq!(status, StatusCode::OK, "{r}");
    let mp4 = decode_video_field(&r);
    println!(
        "default request (288x512, 49 frames, test generator): {latency:?}, MP4 {} bytes",
        mp4.len()
    );
    assert!(r["video"]
        .as_str()
        .unwrap()
        .starts_with("data:video/mp4;base64,"));
    assert_eq!(r["duration_seconds"], 1.96);
    assert_eq!(r["resolution"], "288x512");
    assert_eq!(r["fps"], 25);
    assert!(r["seed"].as_u64().unwrap() > 0 && r["seed_was_random"] == true);
    assert!(r["generation_time_seconds"].as_f64().unwrap() >= 0.0);
    assert_eq!(
        (
            r["has_audio"].as_bool(),
            r["has_image_start"].as_bool(),
            r["has_image_end"].as_bool()
        ),
        (Some(true), Some(false), Some(false))
    );
    assert_eq!(r["video_bytes"], mp4.len());
    assert_eq!(r["effective"]["steps_per_stage"], json!([40]));
    assert_eq!(r["effective"]["guidance_scale"], 3.0);
    assert_eq!(r["effective"]["pipeline"], "dev");
    assert!(r["timings"]["stages"][0]["stage"] == "stage1");
    assert!(r["notes"]
        .as_array()
        .unwrap()
        .iter()
        .any(|n| n.as_str().unwrap().contains("test generator")));

    let dir = temp_dir("fields");
    std::fs::write(dir.join("out.mp4"), &mp4).unwrap();
    assert_spec_mp4(&dir.join("out.mp4"), 288, 512, 49);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_parameter_takes_effect_or_is_reported() {
    let server = TestServer::start(ServerConfig::default(), Duration::ZERO).await;
    let body = json!({
        "prompt": "x", "negative_prompt": "ugly", "width": 64, "height": 96, "num_frames": 17, "fps": 24,
        "guidance_scale": 1.0, "num_inference_steps": 3, "seed": 42, "include_audio": false,
        "image_end": format!("data:image/webp;base64,{}", b64(&encode_image(32, 32, 5, image::ImageFormat::WebP))),
        "image_start": b64(&encode_image(40, 30, 7, image::ImageFormat::Jpeg)),
        "image_strength": 0.5, "audio_strength": 0.4, "colour": "blue"
    });
    let (status, r) = post(&server.url, &body).await;
    assert_eq!(status, StatusCode::OK, "{r}");
    assert_eq!(
        (
            r["resolution"].as_str(),
            r["fps"].as_u64(),
            r["num_frames"].as_u64()
        ),
        (Some("64x96"), Some(24), Some(17))
    );
    assert_eq!(
        (r["seed"].as_u64(), r["seed_was_random"].as_bool()),
        (Some(42), Some(false))
    );
    assert_eq!(
        (
            r["has_audio"].as_bool(),
            r["has_image_start"].as_bool(),
            r["has_image_end"].as_bool()
        ),
        (Some(false), Some(true), Some(true))
    );
    assert_eq!(r["effective"]["steps_per_stage"], json!([3]));
    assert_eq!(r["effective"]["forwards_per_step"], 1);
    let notes: Vec<&str> = r["notes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n.as_str().unwrap())
        .collect();
    assert!(
        notes
            .iter()
            .any(|n| n.contains("audio_strength had no effect")),
        "{notes:?}"
    );
    assert!(
        notes.iter().any(|n| n.contains("unknown field `colour`")),
        "{notes:?}"
    );
    // guidance_scale 1.0 means no CFG: the given negative prompt had no effect, and the response says so.
    assert!(
        notes
            .iter()
            .any(|n| n.contains("negative_prompt had no effect")),
        "{notes:?}"
    );
    let dir = temp_dir("params");
    std::fs::write(dir.join("out.mp4"), decode_video_field(&r)).unwrap();
    let p = ffprobe(&dir.join("out.mp4"));
    assert_eq!((p.width, p.height, p.frames, p.audio), (64, 96, 17, None));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bad_inputs_are_4xx_naming_the_field_and_the_server_stays_healthy() {
    let server = TestServer::start(ServerConfig::default(), Duration::ZERO).await;
    let text = b64(b"definitely not an image");
    let cases = [
        (json!({"width": 288}), "prompt"),
        (json!({"prompt": ""}), "prompt"),
        (json!({"prompt": ["a"]}), "prompt"),
        (json!({"prompt": "x", "width": 300}), "width"),
        (json!({"prompt": "x", "height": 100000}), "height"),
        (json!({"prompt": "x", "width": "288"}), "width"),
        (json!({"prompt": "x", "num_frames": 50}), "num_frames"),
        (json!({"prompt": "x", "num_frames": 1.5}), "num_frames"),
        (json!({"prompt": "x", "fps": 1000}), "fps"),
        (
            json!({"prompt": "x", "guidance_scale": -3}),
            "guidance_scale",
        ),
        (
            json!({"prompt": "x", "guidance_scale": "high"}),
            "guidance_scale",
        ),
        (
            json!({"prompt": "x", "num_inference_steps": 0}),
            "num_inference_steps",
        ),
        (json!({"prompt": "x", "seed": -5}), "seed"),
        (
            json!({"prompt": "x", "image_strength": 1.01}),
            "image_strength",
        ),
        (
            json!({"prompt": "x", "audio_strength": 2}),
            "audio_strength",
        ),
        (json!({"prompt": "x", "include_audio": 1}), "include_audio"),
        (
            json!({"prompt": "x", "image_start": "%%%not base64%%%"}),
            "image_start",
        ),
        (
            json!({"prompt": "x", "image_start": format!("data:image/png;base64,{text}")}),
            "image_start",
        ),
        (
            json!({"prompt": "x", "image_end": format!("data:image/png;base64,{}", b64(&png_bytes(8, 8, 1)[..40]))}),
            "image_end",
        ),
        (
            json!({"prompt": "x", "audio": format!("data:audio/wav;base64,{text}")}),
            "audio",
        ),
        (
            json!({"prompt": "x", "audio": "not base64 at all!"}),
            "audio",
        ),
        (json!("just a string"), "body"),
    ];
    for (body, field) in cases {
        let (status, r) = post(&server.url, &body).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}: {r}");
        assert_eq!(r["field"], field, "{body}: {r}");
        assert_eq!(r["error_type"], "validation");
        assert!(
            r["error"].as_str().unwrap().contains(&format!("`{field}`")),
            "message names the field: {r}"
        );
    }
    for (raw, content_type, status) in [
        (
            r#"{"prompt": "x", "guidance_scale": NaN}"#,
            "application/json",
            StatusCode::BAD_REQUEST,
        ),
        (
            r#"{"prompt": "x", "seed": Infinity}"#,
            "application/json",
            StatusCode::BAD_REQUEST,
        ),
        (
            r#"{"prompt": "x""#,
            "application/json",
            StatusCode::BAD_REQUEST,
        ),
        (
            r#"{"prompt": "x"}"#,
            "text/plain",
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
        ),
    ] {
        let (s, r) = post_raw(&server.url, raw, content_type).await;
        assert_eq!(s, status, "{raw}: {r}");
        assert!(r["error"].is_string() && r["field"] == "body", "{raw}: {r}");
    }
    let r = reqwest::get(format!("{}/nope", server.url)).await.unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    assert!(r.json::<Value>().await.unwrap()["error"].is_string());
    let r = reqwest::get(format!("{}/generate", server.url))
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert!(r.json::<Value>().await.unwrap()["error"].is_string());

    assert_eq!(server.health().await["status"], "healthy");
    assert_eq!(
        server
            .counters
            .started
            .load(std::sync::atomic::Ordering::SeqCst),
        0,
        "nothing invalid reached the engine"
    );
    let (status, _) = post(
        &server.url,
        &json!({"prompt": "x", "num_frames": 9, "width": 64, "height": 64}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn body_over_the_limit_is_413() {
    let config = ServerConfig {
        max_body_bytes: 4096,
        ..ServerConfig::default()
    };
    let server = TestServer::start(config, Duration::ZERO).await;
    let big = json!({"prompt": "x", "image_start": "A".repeat(8192)});
    let (status, r) = post(&server.url, &big).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{r}");
    assert_eq!(r["error_type"], "payload_too_large");
    assert_eq!(server.health().await["status"], "healthy");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn info_docs_and_openapi_are_served_offline() {
    let server = TestServer::start(ServerConfig::default(), Duration::ZERO).await;
    let info: Value = reqwest::get(format!("{}/", server.url))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(info["defaults"]["width"], 288);
    assert_eq!(info["defaults"]["height"], 512);
    assert_eq!(info["defaults"]["num_frames"], 49);
    assert_eq!(
        info["defaults"]["negative_prompt"],
        "blurry, low quality, distorted, glitchy, watermark"
    );
    assert_eq!(info["model"]["name"], "test");
    // The engine's backend report, plus the run-time fallbacks recorded since load.
    let b = &info["model"]["backends"];
    assert_eq!(b["attention"], "chunked", "{info}");
    assert_eq!(b["conv3d"], "candle-cpu");
    assert_eq!(b["fp8_gemm"], "dequant-cpu");
    assert_eq!(b["fallbacks"]["cudnn"], "not a CUDA device");
    ltx2_model::backends::record_fallback("http-test-op", "recorded after load");
    let info: Value = reqwest::get(format!("{}/", server.url))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        info["model"]["backends"]["fallbacks"]["http-test-op"],
        "recorded after load"
    );

    let doc: Value = reqwest::get(format!("{}/openapi.json", server.url))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    for path in ["/generate", "/health", "/"] {
        assert!(doc["paths"][path].is_object(), "{path} documented");
    }
    let schema = &doc["components"]["schemas"]["GenerateBody"];
    println!("{}", serde_json::to_string_pretty(schema).unwrap());
    assert_eq!(
        schema["required"],
        json!(["prompt"]),
        "only prompt is required"
    );
    assert_eq!(schema["properties"]["width"]["default"], 288);
    assert_eq!(schema["properties"]["num_frames"]["default"], 49);
    let props = &schema["properties"];
    for field in [
        "prompt",
        "negative_prompt",
        "width",
        "height",
        "num_frames",
        "fps",
        "guidance_scale",
        "num_inference_steps",
        "seed",
        "image_start",
        "image_end",
        "image_strength",
        "include_audio",
        "audio",
        "audio_strength",
    ] {
        assert!(props[field].is_object(), "request field {field} documented");
    }
    assert!(doc["components"]["schemas"]["GenerateResponse"]["properties"]["video"].is_object());

    let docs = reqwest::get(format!("{}/docs/", server.url)).await.unwrap();
    assert_eq!(docs.status(), StatusCode::OK);
    assert!(docs.text().await.unwrap().contains("swagger-ui"));
    let bundle = reqwest::get(format!("{}/docs/swagger-ui-bundle.js", server.url))
        .await
        .unwrap();
    assert_eq!(bundle.status(), StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn engine_failures_are_answered_and_the_engine_keeps_running() {
    let server = TestServer::start(ServerConfig::default(), Duration::ZERO).await;
    let small = |prompt: &str| json!({"prompt": prompt, "width": 64, "height": 64, "num_frames": 9, "num_inference_steps": 2});
    let (status, r) = post(&server.url, &small("PANIC")).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR, "{r}");
    assert_eq!(r["error_type"], "generation");
    let (status, r) = post(&server.url, &small("FAIL")).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR, "{r}");
    // The engine's own words stay in the server log, under the request id the client gets.
    let id = r["request_id"].as_str().expect("request id");
    let error = r["error"].as_str().unwrap();
    assert!(!error.contains("device lost") && error.contains(id), "{r}");
    let (status, r) = post(&server.url, &small("REJECT")).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{r}");
    assert_eq!(r["field"], "width");
    let h = server.health().await;
    assert_eq!(
        (h["status"].as_str(), h["failed"].as_u64()),
        (Some("healthy"), Some(3))
    );
    let (status, _) = post(&server.url, &small("fine")).await;
    assert_eq!(status, StatusCode::OK);
}
