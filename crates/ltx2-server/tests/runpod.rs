//! The RunPod worker against an in-process fake of RunPod's job endpoints, with the test
//! generator on the real engine thread: results, bad input, progress, heartbeat during a long
//! job, job-stop cancellation, shutdown drain, and the local test modes.

mod common;
mod fake_runpod;

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use common::{Counters, TestGenerator};
use fake_runpod::{FakeRunpod, Seen, API_KEY, POD_ID};
use ltx2_server::runpod::worker::WorkerSummary;
use ltx2_server::runpod::{local, run_worker, Handler, RunpodConfig};
use ltx2_server::ServerConfig;
use serde_json::{json, Value};
use tokio::sync::oneshot;

struct Worker {
    counters: Arc<Counters>,
    shutdown: Option<oneshot::Sender<()>>,
    done: tokio::task::JoinHandle<anyhow::Result<WorkerSummary>>,
}

fn handler(step_delay: Duration) -> (Handler, Arc<Counters>) {
    let counters = Arc::new(Counters::default());
    let generator = Box::new(TestGenerator {
        step_delay,
        counters: counters.clone(),
    });
    let (engine, _join) = ltx2_server::engine::spawn(generator, 4).unwrap();
    let limits = ServerConfig::default().limits(engine.info());
    let handler = Handler {
        engine,
        limits,
        worker_id: POD_ID.into(),
    };
    (handler, counters)
}

fn start_worker(fake: &FakeRunpod, step_delay: Duration) -> Worker {
    let (handler, counters) = handler(step_delay);
    let mut config = RunpodConfig::with_urls(fake.job_take_url(), fake.job_done_url());
    config.ping_url = Some(fake.ping_url());
    config.api_key = Some(API_KEY.into());
    config.pod_id = POD_ID.into();
    config.ping_interval = Duration::from_millis(50);
    config.min_poll_interval = Duration::from_millis(20);
    let (tx, rx) = oneshot::channel::<()>();
    let done = tokio::spawn(run_worker(handler, config, async {
        let _ = rx.await;
    }));
    Worker {
        counters,
        shutdown: Some(tx),
        done,
    }
}

impl Worker {
    async fn stop(mut self) -> WorkerSummary {
        let _ = self.shutdown.take().unwrap().send(());
        tokio::time::timeout(Duration::from_secs(60), self.done)
            .await
            .expect("worker stops after shutdown")
            .unwrap()
            .unwrap()
    }
}

fn small(prompt: &str, steps: u32) -> Value {
    json!({"prompt": prompt, "width": 64, "height": 64, "num_frames": 9, "num_inference_steps": steps, "seed": 7})
}

fn error_of(body: &Value) -> Value {
    serde_json::from_str(body["error"].as_str().expect("error is a string")).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn jobs_are_taken_and_results_posted_and_bad_input_does_not_stop_the_worker() {
    let fake = FakeRunpod::start().await;
    fake.push_job("job-good-1", small("a cat", 3));
    fake.push_job("job-bad", json!({"prompt": "a cat", "width": 300}));
    fake.push_job("job-no-prompt", json!({"width": 64}));
    fake.push_job("job-good-2", small("a dog", 2));
    let worker = start_worker(&fake, Duration::ZERO);
    fake.wait_for("four results", |f| {
        ["job-good-1", "job-bad", "job-no-prompt", "job-good-2"]
            .iter()
            .all(|id| f.result(id).is_some())
    })
    .await;

    for id in ["job-good-1", "job-good-2"] {
        let r = fake.result(id).unwrap();
        let out = &r.body["output"];
        assert!(r.body.get("error").is_none(), "{id}: {}", r.body);
        assert!(out["video"]
            .as_str()
            .unwrap()
            .starts_with("data:video/mp4;base64,"));
        assert_eq!(out["resolution"], "64x64");
        assert_eq!(out["seed"], 7);
        assert_eq!(out["num_frames"], 9);
        // The protocol's envelope.
        assert_eq!(r.pod, POD_ID);
        assert_eq!(r.is_stream.as_deref(), Some("false"));
        assert_eq!(r.authorization.as_deref(), Some(API_KEY));
        assert_eq!(r.request_id.as_deref(), Some(id));
        assert_eq!(
            r.content_type.as_deref(),
            Some("application/x-www-form-urlencoded")
        );
    }
    let bad = error_of(&fake.result("job-bad").unwrap().body);
    assert_eq!(bad["field"], "width", "{bad}");
    assert_eq!(bad["error_type"], "validation");
    assert!(bad["error_message"].as_str().unwrap().contains("width"));
    let missing = error_of(&fake.result("job-no-prompt").unwrap().body);
    assert_eq!(missing["field"], "prompt", "{missing}");

    // Progress came from the engine, as IN_PROGRESS posts, all before the job's result.
    let posts = fake.posts();
    let result_at = posts
        .iter()
        .position(|p| p.job_id == "job-good-1" && !p.is_progress())
        .unwrap();
    let progress: Vec<_> = posts
        .iter()
        .enumerate()
        .filter(|(_, p)| p.job_id == "job-good-1" && p.is_progress())
        .collect();
    assert!(!progress.is_empty(), "no progress posted");
    assert!(progress.iter().all(|(i, _)| *i < result_at));
    assert!(progress
        .iter()
        .any(|(_, p)| p.body["output"]["stage"] == "stage1" && p.body["output"]["total"] == 3));
    // Jobs were taken one at a time.
    assert!(fake.seen().iter().all(|s| match s {
        Seen::Take {
            pod,
            job_in_progress,
        } => pod == POD_ID && job_in_progress.as_deref() == Some("0"),
        _ => true,
    }));
    assert_eq!(*fake.state.unauthorized.lock().unwrap(), 0);

    let summary = worker.stop().await;
    assert_eq!(
        summary,
        WorkerSummary {
            succeeded: 2,
            failed: 2
        }
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn heartbeat_keeps_pinging_while_a_long_job_blocks_the_engine() {
    let fake = FakeRunpod::start().await;
    // 20 steps x 50 ms on the engine thread; pings every 50 ms on their own task.
    fake.push_job("job-long", small("long", 20));
    let worker = start_worker(&fake, Duration::from_millis(50));
    fake.wait_for("the result", |f| f.result("job-long").is_some())
        .await;
    let seen = fake.seen();
    let result_at = seen
        .iter()
        .position(|s| matches!(s, Seen::Post(p) if !p.is_progress()))
        .unwrap();
    let pings_during_job = seen[..result_at]
        .iter()
        .filter(|s| matches!(s, Seen::Ping { job_ids, .. } if job_ids == "job-long"))
        .count();
    assert!(
        pings_during_job >= 2,
        "pings naming the running job: {pings_during_job}"
    );
    assert!(seen.iter().all(|s| match s {
        Seen::Ping {
            pod,
            runpod_version,
            ..
        } => pod == POD_ID && runpod_version.is_some(),
        _ => true,
    }));
    assert!(fake
        .result("job-long")
        .unwrap()
        .body
        .get("output")
        .is_some());
    worker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_job_in_jobs_to_stop_is_cancelled_and_reported() {
    let fake = FakeRunpod::start().await;
    fake.push_job("job-stop-me", small("endless", 100));
    let worker = start_worker(&fake, Duration::from_millis(20));
    fake.wait_for("the job to run", |f| {
        f.posts()
            .iter()
            .any(|p| p.job_id == "job-stop-me" && p.is_progress())
    })
    .await;
    fake.stop_job("job-stop-me");
    fake.wait_for("the result", |f| f.result("job-stop-me").is_some())
        .await;
    let err = error_of(&fake.result("job-stop-me").unwrap().body);
    assert!(
        err["error_message"].as_str().unwrap().contains("cancelled"),
        "{err}"
    );
    assert_eq!(worker.counters.cancelled.load(Ordering::SeqCst), 1);
    assert_eq!(worker.counters.finished.load(Ordering::SeqCst), 0);
    // The worker carries on.
    fake.push_job("job-after", small("next", 1));
    fake.wait_for("the next result", |f| f.result("job-after").is_some())
        .await;
    assert!(fake
        .result("job-after")
        .unwrap()
        .body
        .get("output")
        .is_some());
    let summary = worker.stop().await;
    assert_eq!(
        summary,
        WorkerSummary {
            succeeded: 1,
            failed: 1
        }
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn shutdown_finishes_the_job_in_progress_and_takes_no_more() {
    let fake = FakeRunpod::start().await;
    fake.push_job("job-inflight", small("drain me", 20));
    let mut worker = start_worker(&fake, Duration::from_millis(30));
    fake.wait_for("the job to run", |f| {
        f.posts()
            .iter()
            .any(|p| p.job_id == "job-inflight" && p.is_progress())
    })
    .await;
    let _ = worker.shutdown.take().unwrap().send(());
    fake.push_job("job-too-late", small("never", 1));
    let summary = tokio::time::timeout(Duration::from_secs(60), worker.done)
        .await
        .expect("worker exits after draining")
        .unwrap()
        .unwrap();
    assert_eq!(
        summary,
        WorkerSummary {
            succeeded: 1,
            failed: 0
        }
    );
    let r = fake
        .result("job-inflight")
        .expect("in-flight result posted");
    assert!(r.body.get("output").is_some(), "{}", r.body);
    assert_eq!(worker.counters.cancelled.load(Ordering::SeqCst), 0);
    assert_eq!(fake.queued(), 1, "a job was taken after shutdown");
    assert!(fake.result("job-too-late").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn test_input_runs_one_job_locally() {
    let (handler, _) = handler(Duration::ZERO);
    let (ok, out) = local::run_test_input(&handler, json!({"input": small("local", 1)})).await;
    assert!(ok, "{out}");
    assert_eq!(out["id"], "local_test");
    assert_eq!(out["status"], "COMPLETED");
    assert_eq!(out["output"]["resolution"], "64x64");
    let (ok, out) = local::run_test_input(
        &handler,
        json!({"input": {"prompt": "x", "num_frames": 10}}),
    )
    .await;
    assert!(!ok);
    assert_eq!(out["status"], "FAILED");
    assert_eq!(error_of(&out)["field"], "num_frames");
    let (ok, out) = local::run_test_input(&handler, json!({"prompt": "no input key"})).await;
    assert!(!ok);
    assert_eq!(error_of(&out)["field"], "input");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_repos_test_input_json_is_valid() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../test_input.json");
    let doc: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let (handler, _) = handler(Duration::ZERO);
    // Validation only: the spec's example is a full-size job; run it at a test size.
    let mut input = doc["input"].clone();
    input["num_frames"] = json!(9);
    input["num_inference_steps"] = json!(1);
    let (ok, out) = local::run_test_input(&handler, json!({ "input": input })).await;
    assert!(ok, "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn local_api_run_status_and_runsync() {
    let (handler, _) = handler(Duration::from_millis(10));
    let app = local::local_api_router(handler, Duration::from_secs(60), 8);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let client = reqwest::Client::new();

    let r: Value = client
        .post(format!("{url}/runsync"))
        .json(&json!({"input": small("sync", 2)}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(r["status"], "COMPLETED", "{r}");
    assert_eq!(r["output"]["resolution"], "64x64");

    let r: Value = client
        .post(format!("{url}/runsync"))
        .json(&json!({"input": {"prompt": "x", "fps": 0}}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(r["status"], "FAILED");
    assert_eq!(error_of(&r)["field"], "fps");

    let r: Value = client
        .post(format!("{url}/run"))
        .json(&json!({"input": small("async", 5)}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(r["status"], "IN_PROGRESS");
    let id = r["id"].as_str().unwrap().to_string();
    assert!(id.starts_with("test-"));
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let last = loop {
        let s: Value = client
            .post(format!("{url}/status/{id}"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if s["status"] == "COMPLETED" || s["status"] == "FAILED" {
            break s;
        }
        assert!(
            ["IN_QUEUE", "IN_PROGRESS"].contains(&s["status"].as_str().unwrap()),
            "{s}"
        );
        assert!(std::time::Instant::now() < deadline, "job never finished");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(last["status"], "COMPLETED", "{last}");
    assert_eq!(last["output"]["resolution"], "64x64");
    let missing = client
        .get(format!("{url}/status/nope"))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
}

/// The Docker image cannot be built here (no Docker engine); this checks what can be checked
/// statically: instructions parse, CUDA builder + runtime stages, the worker command, and every
/// `COPY` source exists and is not excluded by .dockerignore. (`hadolint Dockerfile` is clean.)
#[test]
fn dockerfile_builds_with_cuda_and_runs_ltx2() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let text = std::fs::read_to_string(root.join("Dockerfile")).unwrap();
    let ignore = std::fs::read_to_string(root.join(".dockerignore")).unwrap();
    // Join continuation lines, drop comments and blanks.
    let mut instructions: Vec<String> = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        let t = line.trim();
        if current.is_empty() && (t.is_empty() || t.starts_with('#')) {
            continue;
        }
        match t.strip_suffix('\\') {
            Some(part) => current.push_str(&format!("{part} ")),
            None => {
                current.push_str(t);
                instructions.push(std::mem::take(&mut current));
            }
        }
    }
    assert!(current.is_empty(), "dangling line continuation");
    const KNOWN: [&str; 12] = [
        "FROM",
        "ARG",
        "ENV",
        "RUN",
        "COPY",
        "WORKDIR",
        "EXPOSE",
        "CMD",
        "SHELL",
        "LABEL",
        "ENTRYPOINT",
        "USER",
    ];
    for i in &instructions {
        let word = i.split_whitespace().next().unwrap();
        assert!(KNOWN.contains(&word), "unknown instruction {i:?}");
    }
    let froms: Vec<&String> = instructions
        .iter()
        .filter(|i| i.starts_with("FROM "))
        .collect();
    assert_eq!(froms.len(), 2, "builder + runtime stages");
    assert!(froms[0].contains("-devel-") && froms[0].ends_with("AS builder"));
    assert!(froms[1].contains("-runtime-"));
    assert!(instructions.iter().any(|i| i.starts_with("RUN ")
        && i.contains("cargo build --release --locked -p ltx2 --features cuda")));
    assert!(instructions
        .iter()
        .any(|i| i.starts_with("ENV ") && i.contains("CUDA_COMPUTE_CAP=")));
    assert_eq!(instructions.last().unwrap(), r#"CMD ["ltx2", "serve"]"#);
    assert!(instructions.iter().any(|i| i == "EXPOSE 8000"));
    let ignored: Vec<&str> = ignore
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    for copy in instructions
        .iter()
        .filter(|i| i.starts_with("COPY ") && !i.contains("--from="))
    {
        let parts: Vec<&str> = copy.split_whitespace().collect();
        for src in &parts[1..parts.len() - 1] {
            assert!(root.join(src).exists(), "COPY source {src} missing");
            assert!(
                !ignored.contains(src),
                "COPY source {src} is in .dockerignore"
            );
        }
    }
    // The build needs the workspace, not the golden data or build outputs.
    for must in ["target", ".git", "testdata"] {
        assert!(ignored.contains(&must), ".dockerignore lacks {must}");
    }
}
