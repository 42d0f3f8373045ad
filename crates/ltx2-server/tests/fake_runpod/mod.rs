//! An in-process fake of RunPod's job endpoints (job-take, job-stop, job-done, ping) that follows
//! the protocol of docs/rust-stack.md §6 and records everything the worker sends.

#![allow(dead_code)]

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};

pub const API_KEY: &str = "test-api-key";
pub const POD_ID: &str = "pod-under-test";

/// One thing the worker did, in arrival order.
#[derive(Debug, Clone)]
pub enum Seen {
    Take {
        pod: String,
        job_in_progress: Option<String>,
    },
    Ping {
        pod: String,
        job_ids: String,
        runpod_version: Option<String>,
    },
    Post(Posted),
}

#[derive(Debug, Clone)]
pub struct Posted {
    pub pod: String,
    pub job_id: String,
    pub is_stream: Option<String>,
    pub authorization: Option<String>,
    pub request_id: Option<String>,
    pub content_type: Option<String>,
    pub body: Value,
}

impl Posted {
    pub fn is_progress(&self) -> bool {
        self.body["status"] == "IN_PROGRESS"
    }
}

#[derive(Default)]
pub struct FakeState {
    queue: Mutex<VecDeque<Value>>,
    to_stop: Mutex<Vec<String>>,
    pub seen: Mutex<Vec<Seen>>,
    /// Requests whose Authorization was not the raw API key.
    pub unauthorized: Mutex<usize>,
}

pub struct FakeRunpod {
    pub base: String,
    pub state: Arc<FakeState>,
}

fn header(h: &HeaderMap, name: &str) -> Option<String> {
    h.get(name).and_then(|v| v.to_str().ok()).map(String::from)
}

fn authorized(state: &FakeState, h: &HeaderMap) -> bool {
    let ok = header(h, "authorization").as_deref() == Some(API_KEY);
    if !ok {
        *state.unauthorized.lock().unwrap() += 1;
    }
    ok
}

async fn take(
    State(s): State<Arc<FakeState>>,
    Path(pod): Path<String>,
    Query(q): Query<HashMap<String, String>>,
    h: HeaderMap,
) -> Response {
    if !authorized(&s, &h) {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    s.seen.lock().unwrap().push(Seen::Take {
        pod,
        job_in_progress: q.get("job_in_progress").cloned(),
    });
    let job = s.queue.lock().unwrap().pop_front();
    match job {
        Some(job) => Json(job).into_response(),
        None => {
            // A short long-poll.
            tokio::time::sleep(Duration::from_millis(20)).await;
            StatusCode::NO_CONTENT.into_response()
        }
    }
}

async fn stop(State(s): State<Arc<FakeState>>, Path(_pod): Path<String>, h: HeaderMap) -> Response {
    if !authorized(&s, &h) {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    let ids: Vec<String> = std::mem::take(&mut *s.to_stop.lock().unwrap());
    if ids.is_empty() {
        tokio::time::sleep(Duration::from_millis(20)).await;
        StatusCode::NO_CONTENT.into_response()
    } else {
        Json(json!({ "jobsToStop": ids })).into_response()
    }
}

async fn done(
    State(s): State<Arc<FakeState>>,
    Path((pod, job_id)): Path<(String, String)>,
    Query(q): Query<HashMap<String, String>>,
    h: HeaderMap,
    body: Bytes,
) -> Response {
    if !authorized(&s, &h) {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    let Ok(body) = serde_json::from_slice::<Value>(&body) else {
        return StatusCode::BAD_REQUEST.into_response();
    };
    s.seen.lock().unwrap().push(Seen::Post(Posted {
        pod,
        job_id,
        is_stream: q.get("isStream").cloned(),
        authorization: header(&h, "authorization"),
        request_id: header(&h, "x-request-id"),
        content_type: header(&h, "content-type"),
        body,
    }));
    StatusCode::OK.into_response()
}

async fn ping(
    State(s): State<Arc<FakeState>>,
    Path(pod): Path<String>,
    Query(q): Query<HashMap<String, String>>,
    h: HeaderMap,
) -> Response {
    if !authorized(&s, &h) {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    s.seen.lock().unwrap().push(Seen::Ping {
        pod,
        job_ids: q.get("job_id").cloned().unwrap_or_default(),
        runpod_version: q.get("runpod_version").cloned(),
    });
    StatusCode::OK.into_response()
}

impl FakeRunpod {
    pub async fn start() -> Self {
        let state = Arc::new(FakeState::default());
        let app = Router::new()
            .route("/v2/ep/job-take/{pod}", get(take))
            .route("/v2/ep/job-stop/{pod}", get(stop))
            .route("/v2/ep/job-done/{pod}/{job}", post(done))
            .route("/ping/{pod}", get(ping))
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self { base, state }
    }

    /// RunPod's URL templates for this fake (already carrying a query string, like the real ones).
    pub fn job_take_url(&self) -> String {
        format!("{}/v2/ep/job-take/$ID?gpu=TEST", self.base)
    }
    pub fn job_done_url(&self) -> String {
        format!("{}/v2/ep/job-done/$RUNPOD_POD_ID/$ID?gpu=TEST", self.base)
    }
    pub fn ping_url(&self) -> String {
        format!("{}/ping/$RUNPOD_POD_ID?gpu=TEST", self.base)
    }

    pub fn push_job(&self, id: &str, input: Value) {
        self.state
            .queue
            .lock()
            .unwrap()
            .push_back(json!({"id": id, "input": input}));
    }

    pub fn queued(&self) -> usize {
        self.state.queue.lock().unwrap().len()
    }

    pub fn stop_job(&self, id: &str) {
        self.state.to_stop.lock().unwrap().push(id.to_string());
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.state.seen.lock().unwrap().clone()
    }

    pub fn posts(&self) -> Vec<Posted> {
        self.seen()
            .into_iter()
            .filter_map(|s| match s {
                Seen::Post(p) => Some(p),
                _ => None,
            })
            .collect()
    }

    /// The final result posted for `job_id`, if any.
    pub fn result(&self, job_id: &str) -> Option<Posted> {
        self.posts()
            .into_iter()
            .find(|p| p.job_id == job_id && !p.is_progress())
    }

    /// Polls until `pred` holds (bounded wait, not a timing assertion).
    pub async fn wait_for(&self, what: &str, pred: impl Fn(&Self) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while !pred(self) {
            if Instant::now() > deadline {
                let seen = self.seen();
                let last: Vec<String> = seen[seen.len().saturating_sub(10)..]
                    .iter()
                    .map(|s| format!("{s:?}").chars().take(300).collect())
                    .collect();
                panic!(
                    "timed out waiting for {what}; last of {} seen: {last:#?}",
                    seen.len()
                );
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}
