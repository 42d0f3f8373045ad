//! `GET /metrics`: valid Prometheus text, and the counters move with real traffic.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::*;
use ltx2_server::ServerConfig;
use serde_json::json;

/// One sample line: `name{labels} value`.
#[derive(Debug)]
struct Sample {
    name: String,
    labels: Vec<(String, String)>,
    value: f64,
}

/// Parses the Prometheus text format strictly: every line is a comment or a sample.
fn parse(text: &str) -> Vec<Sample> {
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        if line.is_empty() || line.starts_with('#') {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let kind = rest.split_whitespace().nth(1).unwrap_or("");
                assert!(
                    ["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind),
                    "line {n}: bad TYPE {line:?}"
                );
            }
            continue;
        }
        let name_end = line
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
            .unwrap_or_else(|| panic!("line {n}: no value: {line:?}"));
        let name = &line[..name_end];
        assert!(
            !name.is_empty() && !name.starts_with(|c: char| c.is_ascii_digit()),
            "line {n}: bad name {line:?}"
        );
        let mut rest = &line[name_end..];
        let mut labels = Vec::new();
        if let Some(after) = rest.strip_prefix('{') {
            let mut chars = after.char_indices().peekable();
            let consumed;
            loop {
                let Some(&(i, c)) = chars.peek() else {
                    panic!("line {n}: unterminated labels {line:?}")
                };
                if c == '}' {
                    consumed = i + 1;
                    break;
                }
                if c == ',' {
                    chars.next();
                    continue;
                }
                let mut key = String::new();
                while let Some(&(_, c)) = chars.peek() {
                    if c == '=' {
                        break;
                    }
                    assert!(
                        c.is_ascii_alphanumeric() || c == '_',
                        "line {n}: bad label {line:?}"
                    );
                    key.push(c);
                    chars.next();
                }
                chars.next();
                assert_eq!(
                    chars.next().map(|(_, c)| c),
                    Some('"'),
                    "line {n}: {line:?}"
                );
                let mut value = String::new();
                loop {
                    match chars.next() {
                        Some((_, '\\')) => match chars.next() {
                            Some((_, 'n')) => value.push('\n'),
                            Some((_, c @ ('\\' | '"'))) => value.push(c),
                            other => panic!("line {n}: bad escape {other:?}"),
                        },
                        Some((_, '"')) => break,
                        Some((_, c)) => value.push(c),
                        None => panic!("line {n}: unterminated label value {line:?}"),
                    }
                }
                labels.push((key, value));
            }
            rest = &after[consumed..];
        }
        let value = rest
            .strip_prefix(' ')
            .unwrap_or_else(|| panic!("line {n}: no space before value {line:?}"));
        let value: f64 = match value {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            v => v
                .parse()
                .unwrap_or_else(|_| panic!("line {n}: bad value {line:?}")),
        };
        out.push(Sample {
            name: name.to_string(),
            labels,
            value,
        });
    }
    out
}

fn find<'a>(samples: &'a [Sample], name: &str, labels: &[(&str, &str)]) -> Option<&'a Sample> {
    samples.iter().find(|s| {
        s.name == name
            && labels
                .iter()
                .all(|(k, v)| s.labels.iter().any(|(a, b)| a == k && b == v))
    })
}

async fn scrape(url: &str) -> Vec<Sample> {
    let r = reqwest::get(format!("{url}/metrics")).await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain"));
    parse(&r.text().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn metrics_are_valid_prometheus_text_and_follow_traffic() {
    let server = TestServer::start(ServerConfig::default(), Duration::ZERO).await;
    let before = scrape(&server.url).await;
    assert_eq!(find(&before, "ltx2_queue_depth", &[]).unwrap().value, 0.0);
    assert_eq!(find(&before, "ltx2_engine_up", &[]).unwrap().value, 1.0);
    assert!(find(&before, "ltx2_stage_seconds_count", &[]).is_none());

    let client = reqwest::Client::new();
    let body = json!({"prompt": "a cat", "width": 64, "height": 64, "num_frames": 9, "num_inference_steps": 2});
    for _ in 0..2 {
        let r = client
            .post(format!("{}/generate", server.url))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
    let r = client
        .post(format!("{}/generate", server.url))
        .json(&json!({"prompt": "a cat", "width": 65}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 422);

    let after = scrape(&server.url).await;
    let jobs = |outcome| {
        find(&after, "ltx2_jobs_total", &[("outcome", outcome)])
            .unwrap()
            .value
    };
    assert_eq!(
        (jobs("succeeded"), jobs("failed"), jobs("cancelled")),
        (2.0, 0.0, 0.0)
    );
    let requests = |status| {
        find(
            &after,
            "ltx2_http_requests_total",
            &[
                ("method", "POST"),
                ("route", "/generate"),
                ("status", status),
            ],
        )
        .map(|s| s.value)
    };
    assert_eq!(requests("200"), Some(2.0));
    assert_eq!(requests("422"), Some(1.0));

    // The test generator reports one stage, `stage1`: a complete, cumulative histogram.
    let count = find(&after, "ltx2_stage_seconds_count", &[("stage", "stage1")])
        .unwrap()
        .value;
    assert_eq!(count, 2.0);
    let buckets: Vec<&Sample> = after
        .iter()
        .filter(|s| {
            s.name == "ltx2_stage_seconds_bucket"
                && s.labels.iter().any(|(k, v)| k == "stage" && v == "stage1")
        })
        .collect();
    assert!(buckets.windows(2).all(|w| w[0].value <= w[1].value));
    let inf = buckets
        .iter()
        .find(|s| s.labels.iter().any(|(k, v)| k == "le" && v == "+Inf"))
        .unwrap();
    assert_eq!(inf.value, count);
    assert!(find(&after, "ltx2_stage_seconds_sum", &[("stage", "stage1")]).is_some());

    // Every sample has a TYPE line for its family.
    let text = reqwest::get(format!("{}/metrics", server.url))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let types: HashMap<&str, &str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split_once(' '))
        .collect();
    for s in parse(&text) {
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|suffix| {
                s.name
                    .strip_suffix(suffix)
                    .filter(|f| types.get(f) == Some(&"histogram"))
            })
            .unwrap_or(&s.name);
        assert!(types.contains_key(family), "{} has no TYPE", s.name);
    }
}
