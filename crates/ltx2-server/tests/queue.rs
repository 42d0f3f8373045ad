//! Queueing end to end: admission (200 or 429 with Retry-After), health while busy, cancellation
//! of abandoned and timed-out jobs, graceful shutdown.

mod common;

use std::time::Duration;

use common::*;
use ltx2_server::ServerConfig;
use reqwest::StatusCode;
use serde_json::{json, Value};

#[tokio::test(flavor = "multi_thread", worker_threads = 8)]
async fn eight_concurrent_requests_all_succeed_with_the_default_queue() {
    let server = TestServer::start(ServerConfig::default(), Duration::from_millis(5)).await;
    let small = json!({"prompt": "x", "width": 64, "height": 64, "num_frames": 9, "num_inference_steps": 10});
    let results = futures::future::join_all((0..8).map(|_| post(&server.url, &small))).await;
    for (status, r) in &results {
        assert_eq!(*status, StatusCode::OK, "{r}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 8)]
async fn a_full_queue_answers_429_with_retry_after_and_health_answers_meanwhile() {
    // One running + two waiting; everything beyond is refused, not queued.
    let config = ServerConfig {
        queue_capacity: 2,
        ..ServerConfig::default()
    };
    let server = TestServer::start(config, Duration::from_millis(100)).await;
    let slow = json!({"prompt": "x", "width": 64, "height": 64, "num_frames": 9, "num_inference_steps": 20});

    let first = tokio::spawn({
        let (url, body) = (server.url.clone(), slow.clone());
        async move { post(&url, &body).await }
    });
    let h = server
        .wait_health("a running job", |h| h["busy"] == true)
        .await;
    assert_eq!(h["status"], "healthy");
    let queued: Vec<_> = (0..2)
        .map(|_| {
            let (url, body) = (server.url.clone(), slow.clone());
            tokio::spawn(async move { post(&url, &body).await })
        })
        .collect();
    server
        .wait_health("two queued jobs", |h| h["pending"] == 3)
        .await;

    let r = reqwest::Client::new()
        .post(format!("{}/generate", server.url))
        .json(&slow)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry_after: u64 = r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(retry_after >= 1);
    assert_eq!(r.json::<Value>().await.unwrap()["error_type"], "overloaded");

    assert_eq!(first.await.unwrap().0, StatusCode::OK);
    for q in queued {
        assert_eq!(q.await.unwrap().0, StatusCode::OK);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 8)]
async fn eight_concurrent_requests_over_a_small_queue_get_ok_or_429() {
    let config = ServerConfig {
        queue_capacity: 2,
        ..ServerConfig::default()
    };
    let server = TestServer::start(config, Duration::from_millis(100)).await;
    let slow = json!({"prompt": "x", "width": 64, "height": 64, "num_frames": 9, "num_inference_steps": 20});
    let results = futures::future::join_all((0..8).map(|_| post(&server.url, &slow))).await;
    let ok = results.iter().filter(|(s, _)| *s == StatusCode::OK).count();
    let refused = results
        .iter()
        .filter(|(s, _)| *s == StatusCode::TOO_MANY_REQUESTS)
        .count();
    assert_eq!(ok + refused, 8, "every request answered with 200 or 429");
    // All 8 arrive within one job's run (2 s): one runs, two wait, five are refused.
    assert_eq!(ok, 3, "{results:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_disconnected_client_does_not_wedge_the_worker() {
    let server = TestServer::start(ServerConfig::default(), Duration::from_millis(50)).await;
    let long = json!({"prompt": "x", "width": 64, "height": 64, "num_frames": 9, "num_inference_steps": 100});
    let client = reqwest::Client::builder()
        .timeout(Duration::from_millis(500))
        .build()
        .unwrap();
    let r = client
        .post(format!("{}/generate", server.url))
        .json(&long)
        .send()
        .await;
    assert!(r.is_err(), "the client gave up");
    let h = server
        .wait_health("the abandoned job to be cancelled", |h| {
            h["cancelled"] == 1 && h["pending"] == 0
        })
        .await;
    assert_eq!(h["completed"], 0);
    assert_eq!(
        server
            .counters
            .cancelled
            .load(std::sync::atomic::Ordering::SeqCst),
        1,
        "stopped between steps"
    );
    let (status, _) = post(&server.url, &json!({"prompt": "x", "width": 64, "height": 64, "num_frames": 9, "num_inference_steps": 2})).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn shutdown_answers_the_request_in_flight_then_stops() {
    let mut server = TestServer::start(ServerConfig::default(), Duration::from_millis(50)).await;
    let body = json!({"prompt": "x", "width": 64, "height": 64, "num_frames": 9, "num_inference_steps": 10});
    let inflight = tokio::spawn({
        let url = server.url.clone();
        async move { post(&url, &body).await }
    });
    server
        .wait_health("a running job", |h| h["busy"] == true)
        .await;
    server.shutdown();
    assert_eq!(inflight.await.unwrap().0, StatusCode::OK);
    let done = std::mem::replace(&mut server.done, tokio::spawn(async { Ok(()) }));
    done.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_request_over_the_timeout_is_504_and_its_job_cancelled() {
    let config = ServerConfig {
        request_timeout_secs: 1,
        ..ServerConfig::default()
    };
    let server = TestServer::start(config, Duration::from_millis(50)).await;
    let long = json!({"prompt": "x", "width": 64, "height": 64, "num_frames": 9, "num_inference_steps": 100});
    let (status, r) = post(&server.url, &long).await;
    assert_eq!(status, StatusCode::GATEWAY_TIMEOUT, "{r}");
    assert_eq!(r["error_type"], "timeout");
    server
        .wait_health("the timed-out job to be cancelled", |h| {
            h["cancelled"] == 1 && h["busy"] == false
        })
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn with_no_waiting_room_back_to_back_requests_are_all_served() {
    // Capacity 0: only the running job. The slot is freed before the answer is sent, so a client
    // that sends its next request right after an answer is never refused.
    let config = ServerConfig {
        queue_capacity: 0,
        ..ServerConfig::default()
    };
    let server = TestServer::start(config, Duration::ZERO).await;
    let small = json!({"prompt": "x", "width": 64, "height": 64, "num_frames": 9, "num_inference_steps": 1});
    for i in 0..10 {
        let (status, r) = post(&server.url, &small).await;
        assert_eq!(status, StatusCode::OK, "request {i}: {r}");
    }
}
