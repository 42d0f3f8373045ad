//! Async jobs over the real server (test generator): submit, status, results, cancel, SSE
//! progress, expiry and the store's bound.

mod common;

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use common::*;
use ltx2_server::ServerConfig;
use reqwest::StatusCode;
use serde_json::{json, Value};

fn small(steps: u32) -> Value {
    json!({"prompt": "a cat", "width": 64, "height": 64, "num_frames": 9, "num_inference_steps": steps, "seed": 11})
}

async fn submit(url: &str, body: &Value) -> (StatusCode, Value) {
    let r = reqwest::Client::new()
        .post(format!("{url}/jobs"))
        .json(body)
        .send()
        .await
        .unwrap();
    (r.status(), r.json().await.unwrap())
}

async fn job(url: &str, id: &str) -> (StatusCode, Value) {
    let r = reqwest::get(format!("{url}/jobs/{id}")).await.unwrap();
    (r.status(), r.json().await.unwrap())
}

/// Polls the job until `pred` holds (bounded wait, not a timing assertion).
async fn wait_job(url: &str, id: &str, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (status, v) = job(url, id).await;
        assert_eq!(status, StatusCode::OK, "{v}");
        if pred(&v) {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}: {v}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn submit_poll_and_fetch_both_results() {
    let server = TestServer::start(ServerConfig::default(), Duration::from_millis(5)).await;
    let (status, created) = submit(&server.url, &small(4)).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{created}");
    let id = created["id"].as_str().unwrap().to_string();
    assert!(["queued", "running"].contains(&created["status"].as_str().unwrap()));
    assert_eq!(created["status_url"], format!("/jobs/{id}"));

    let done = wait_job(&server.url, &id, "success", |v| v["status"] == "succeeded").await;
    assert_eq!(done["stage"], "stage1");
    assert_eq!(
        (done["step"].as_u64(), done["total"].as_u64()),
        (Some(4), Some(4))
    );
    assert_eq!(done["eta_seconds"], 0.0);
    assert!(done["error"].is_null());

    let r = reqwest::get(format!("{}/jobs/{id}/result", server.url))
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["content-type"], "video/mp4");
    let mp4 = r.bytes().await.unwrap().to_vec();
    assert_eq!(&mp4[4..8], b"ftyp");
    let path = temp_dir("jobs").join("result.mp4");
    std::fs::write(&path, &mp4).unwrap();
    assert_spec_mp4(&path, 64, 64, 9);

    let r = reqwest::get(format!("{}/jobs/{id}/result.json", server.url))
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["resolution"], "64x64");
    assert_eq!(body["seed"], 11);
    assert_eq!(body["video_bytes"], mp4.len());
    assert_eq!(
        decode_video_field(&body),
        mp4,
        "JSON and binary results differ"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn invalid_body_is_rejected_at_submit_and_unknown_ids_are_404() {
    let server = TestServer::start(ServerConfig::default(), Duration::ZERO).await;
    let (status, e) = submit(&server.url, &json!({"prompt": "x", "height": 65})).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(e["field"], "height");
    assert_eq!(server.counters.started.load(Ordering::SeqCst), 0);
    for path in ["", "/result", "/result.json", "/events"] {
        let r = reqwest::get(format!("{}/jobs/nope{path}", server.url))
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::NOT_FOUND, "{path}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn delete_cancels_running_and_queued_jobs() {
    let server = TestServer::start(ServerConfig::default(), Duration::from_millis(20)).await;
    let (_, a) = submit(&server.url, &small(100)).await;
    let (_, b) = submit(&server.url, &small(100)).await;
    let (a, b) = (a["id"].as_str().unwrap(), b["id"].as_str().unwrap());
    let running = wait_job(&server.url, a, "a running with a step", |v| {
        v["status"] == "running" && v["step"].as_u64().is_some()
    })
    .await;
    assert!(running["eta_seconds"].as_f64().unwrap() > 0.0, "{running}");
    let (_, queued) = job(&server.url, b).await;
    assert_eq!(queued["status"], "queued");

    // The result of an unfinished job: 202 with the job and Retry-After.
    let r = reqwest::get(format!("{}/jobs/{a}/result", server.url))
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    assert!(r.headers().contains_key("retry-after"));

    let client = reqwest::Client::new();
    for id in [b, a] {
        let r = client
            .delete(format!("{}/jobs/{id}", server.url))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::ACCEPTED);
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["cancel_requested"], true);
    }
    for id in [a, b] {
        let v = wait_job(&server.url, id, "cancelled", |v| v["status"] == "cancelled").await;
        assert!(v["error"]["error"].as_str().unwrap().contains("DELETE"));
        let r = reqwest::get(format!("{}/jobs/{id}/result", server.url))
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::NOT_FOUND);
    }
    // The queued job never reached the generator; the running one stopped early.
    assert_eq!(server.counters.started.load(Ordering::SeqCst), 1);
    assert_eq!(server.counters.cancelled.load(Ordering::SeqCst), 1);
    assert_eq!(server.counters.finished.load(Ordering::SeqCst), 0);

    // DELETE of a finished job forgets it.
    let r = client
        .delete(format!("{}/jobs/{a}", server.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(job(&server.url, a).await.0, StatusCode::NOT_FOUND);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn events_stream_progress_until_done() {
    let server = TestServer::start(ServerConfig::default(), Duration::from_millis(20)).await;
    let (_, created) = submit(&server.url, &small(6)).await;
    let id = created["id"].as_str().unwrap();
    let r = reqwest::get(format!("{}/jobs/{id}/events", server.url))
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(r.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/event-stream"));
    // The stream ends by itself after `done`.
    let text = tokio::time::timeout(Duration::from_secs(60), r.text())
        .await
        .expect("event stream ends")
        .unwrap();
    let mut events = Vec::new();
    let mut name = String::new();
    for line in text.lines() {
        if let Some(n) = line.strip_prefix("event: ") {
            name = n.to_string();
        } else if let Some(d) = line.strip_prefix("data: ") {
            events.push((name.clone(), serde_json::from_str::<Value>(d).unwrap()));
        }
    }
    let (last_name, last) = events.last().expect("events");
    assert_eq!(last_name, "done");
    assert_eq!(last["status"], "succeeded");
    assert_eq!(events.iter().filter(|(n, _)| n == "done").count(), 1);
    let steps: Vec<u64> = events
        .iter()
        .filter_map(|(_, v)| v["step"].as_u64())
        .collect();
    assert!(steps.windows(2).all(|w| w[0] <= w[1]), "{steps:?}");
    assert!(
        events
            .iter()
            .any(|(n, v)| n == "progress" && v["status"] == "running"),
        "no running progress event in {text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn finished_jobs_expire_and_the_store_is_bounded() {
    let config = ServerConfig {
        job_ttl_secs: 1,
        max_jobs: 1,
        ..ServerConfig::default()
    };
    let server = TestServer::start(config, Duration::from_millis(20)).await;
    let (_, first) = submit(&server.url, &small(20)).await;
    let id = first["id"].as_str().unwrap();
    // The store holds one unfinished job: a second submission is refused.
    let (status, e) = submit(&server.url, &small(1)).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{e}");
    let done = wait_job(&server.url, id, "success", |v| v["status"] == "succeeded").await;
    assert_eq!(done["ttl_seconds"], 1);
    // A finished job gives way to a new one at once...
    let (status, second) = submit(&server.url, &small(1)).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{second}");
    assert_eq!(job(&server.url, id).await.0, StatusCode::NOT_FOUND);
    // ...and expires by itself after the TTL.
    let id2 = second["id"].as_str().unwrap();
    wait_job(&server.url, id2, "success", |v| v["status"] == "succeeded").await;
    let deadline = Instant::now() + Duration::from_secs(60);
    while job(&server.url, id2).await.0 != StatusCode::NOT_FOUND {
        assert!(Instant::now() < deadline, "job never expired");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let r = reqwest::get(format!("{}/jobs/{id2}/result", server.url))
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn openapi_lists_the_job_routes() {
    let server = TestServer::start(ServerConfig::default(), Duration::ZERO).await;
    let doc: Value = reqwest::get(format!("{}/openapi.json", server.url))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let paths = doc["paths"].as_object().unwrap();
    for p in [
        "/jobs",
        "/jobs/{id}",
        "/jobs/{id}/result",
        "/jobs/{id}/result.json",
        "/jobs/{id}/events",
        "/metrics",
    ] {
        assert!(paths.contains_key(p), "{p} missing from OpenAPI");
    }
    assert!(paths["/jobs/{id}"].get("delete").is_some());
}
