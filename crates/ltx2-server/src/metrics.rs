//! `GET /metrics` in the Prometheus text format (version 0.0.4): queue depth, jobs by outcome,
//! per-stage latency histograms (from `GenerateOutput::timings`), HTTP request counts, stored
//! async jobs by status. Device memory is omitted: the `Generator` trait does not expose it.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::Ordering;
use std::sync::Mutex;

use axum::extract::{MatchedPath, Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use ltx2_pipeline::StageTimings;

use crate::engine::EngineHandle;
use crate::jobs::JobStore;
use crate::AppState;

/// Upper bounds (seconds) of the stage-latency buckets: from a tiny CPU test to a long GPU stage.
pub const STAGE_BUCKETS: [f64; 14] = [
    0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 25.0, 60.0, 120.0, 300.0, 600.0,
];

#[derive(Debug, Default, Clone)]
struct Histogram {
    /// Non-cumulative counts per bucket of [`STAGE_BUCKETS`], then the `+Inf` overflow.
    counts: [u64; STAGE_BUCKETS.len() + 1],
    sum: f64,
    count: u64,
}

impl Histogram {
    fn observe(&mut self, seconds: f64) {
        let i = STAGE_BUCKETS
            .iter()
            .position(|&le| seconds <= le)
            .unwrap_or(STAGE_BUCKETS.len());
        self.counts[i] += 1;
        self.sum += seconds;
        self.count += 1;
    }
}

/// Wall time of each engine stage, one histogram per stage name.
#[derive(Debug, Default)]
pub struct StageHistograms {
    stages: Mutex<BTreeMap<String, Histogram>>,
}

impl StageHistograms {
    pub fn observe(&self, timings: &StageTimings) {
        let mut stages = self.stages.lock().unwrap_or_else(|e| e.into_inner());
        for (stage, seconds) in &timings.stages {
            stages.entry(stage.clone()).or_default().observe(*seconds);
        }
    }

    fn snapshot(&self) -> BTreeMap<String, Histogram> {
        self.stages
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

/// HTTP requests by method, matched route (not the raw path: ids would explode the label set)
/// and status code.
#[derive(Debug, Default)]
pub struct HttpMetrics {
    requests: Mutex<BTreeMap<(String, String, u16), u64>>,
}

impl HttpMetrics {
    pub fn record(&self, method: &str, route: &str, status: u16) {
        let mut r = self.requests.lock().unwrap_or_else(|e| e.into_inner());
        *r.entry((method.to_string(), route.to_string(), status))
            .or_default() += 1;
    }
}

/// Middleware counting every request into [`HttpMetrics`].
pub async fn count_requests(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let method = req.method().to_string();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", |m| m.as_str())
        .to_string();
    let response = next.run(req).await;
    state
        .http_metrics
        .record(&method, &route, response.status().as_u16());
    response
}

/// Prometheus scrape endpoint.
#[utoipa::path(
    get,
    path = "/metrics",
    responses((status = 200, description = "Prometheus text format 0.0.4", body = String, content_type = "text/plain"))
)]
pub async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        render(&state.engine, &state.http_metrics, Some(&state.jobs)),
    )
}

fn escape(label: &str) -> String {
    label
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// Renders every metric; `jobs` is absent where no async job store runs.
pub fn render(engine: &EngineHandle, http: &HttpMetrics, jobs: Option<&JobStore>) -> String {
    let stats = engine.stats();
    let mut out = String::new();
    let pending = stats.pending.load(Ordering::SeqCst);
    let running = stats.running.load(Ordering::SeqCst);

    header(
        &mut out,
        "ltx2_engine_up",
        "gauge",
        "1 while the engine thread runs.",
    );
    let _ = writeln!(out, "ltx2_engine_up {}", u8::from(engine.is_alive()));
    header(
        &mut out,
        "ltx2_queue_depth",
        "gauge",
        "Jobs waiting behind the running one.",
    );
    let _ = writeln!(
        out,
        "ltx2_queue_depth {}",
        pending.saturating_sub(usize::from(running))
    );
    header(
        &mut out,
        "ltx2_queue_capacity",
        "gauge",
        "Jobs that may wait behind the running one.",
    );
    let _ = writeln!(out, "ltx2_queue_capacity {}", engine.capacity());
    header(
        &mut out,
        "ltx2_engine_running",
        "gauge",
        "1 while a job runs on the engine.",
    );
    let _ = writeln!(out, "ltx2_engine_running {}", u8::from(running));

    header(
        &mut out,
        "ltx2_jobs_total",
        "counter",
        "Engine jobs finished, by outcome.",
    );
    for (outcome, counter) in [
        ("succeeded", &stats.completed),
        ("failed", &stats.failed),
        ("cancelled", &stats.cancelled),
    ] {
        let _ = writeln!(
            out,
            "ltx2_jobs_total{{outcome=\"{outcome}\"}} {}",
            counter.load(Ordering::Relaxed)
        );
    }
    header(
        &mut out,
        "ltx2_last_run_seconds",
        "gauge",
        "Engine run time of the last finished job.",
    );
    let _ = writeln!(
        out,
        "ltx2_last_run_seconds {}",
        stats.last_run_ms.load(Ordering::Relaxed) as f64 / 1000.0
    );

    header(
        &mut out,
        "ltx2_stage_seconds",
        "histogram",
        "Wall time of each engine stage of successful jobs.",
    );
    for (stage, h) in stats.stages.snapshot() {
        let stage = escape(&stage);
        let mut cumulative = 0;
        for (le, n) in STAGE_BUCKETS.iter().zip(h.counts) {
            cumulative += n;
            let _ = writeln!(
                out,
                "ltx2_stage_seconds_bucket{{stage=\"{stage}\",le=\"{le}\"}} {cumulative}"
            );
        }
        let _ = writeln!(
            out,
            "ltx2_stage_seconds_bucket{{stage=\"{stage}\",le=\"+Inf\"}} {}",
            h.count
        );
        let _ = writeln!(out, "ltx2_stage_seconds_sum{{stage=\"{stage}\"}} {}", h.sum);
        let _ = writeln!(
            out,
            "ltx2_stage_seconds_count{{stage=\"{stage}\"}} {}",
            h.count
        );
    }

    header(
        &mut out,
        "ltx2_http_requests_total",
        "counter",
        "HTTP requests by method, route and status.",
    );
    let requests = http
        .requests
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    for ((method, route, status), n) in requests {
        let _ = writeln!(
            out,
            "ltx2_http_requests_total{{method=\"{}\",route=\"{}\",status=\"{status}\"}} {n}",
            escape(&method),
            escape(&route)
        );
    }

    if let Some(jobs) = jobs {
        header(
            &mut out,
            "ltx2_async_jobs",
            "gauge",
            "Async jobs held in the job store, by status.",
        );
        for (status, n) in jobs.count_by_status() {
            let _ = writeln!(out, "ltx2_async_jobs{{status=\"{}\"}} {n}", status.as_str());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_are_upper_inclusive() {
        let mut h = Histogram::default();
        for s in [0.01, 0.011, 700.0] {
            h.observe(s);
        }
        assert_eq!(h.counts[0], 1);
        assert_eq!(h.counts[1], 1);
        assert_eq!(h.counts[STAGE_BUCKETS.len()], 1);
        assert_eq!(h.count, 3);
    }

    #[test]
    fn labels_are_escaped() {
        assert_eq!(escape("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
