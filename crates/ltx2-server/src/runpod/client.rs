//! HTTP calls of the RunPod job protocol: take, stop, result/progress POST, ping.

use std::time::Duration;

use anyhow::Context;
use reqwest::{header, StatusCode};
use serde::Deserialize;
use serde_json::Value;

use super::{RunpodConfig, RUNPOD_PROTOCOL_VERSION};

/// One job handed out by `job-take`.
#[derive(Debug, Clone, Deserialize)]
pub struct RunpodJob {
    pub id: String,
    pub input: Value,
}

/// What a poll got: jobs, nothing, or "slow down".
#[derive(Debug)]
pub enum Poll<T> {
    Got(T),
    Nothing,
    RateLimited,
}

pub struct RunpodClient {
    http: reqwest::Client,
    pub config: RunpodConfig,
}

fn with_query(url: &str, query: &str) -> String {
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}{query}")
}

impl RunpodClient {
    pub fn new(config: RunpodConfig) -> anyhow::Result<Self> {
        let mut headers = header::HeaderMap::new();
        if let Some(key) = &config.api_key {
            let mut value = header::HeaderValue::from_str(key)
                .context("RUNPOD_AI_API_KEY is not a valid header value")?;
            value.set_sensitive(true);
            headers.insert(header::AUTHORIZATION, value);
        }
        headers.insert(
            header::CONTENT_TYPE,
            header::HeaderValue::from_static("application/json"),
        );
        let http = reqwest::Client::builder()
            .default_headers(headers)
            .user_agent(concat!(
                "ltx2-worker/",
                env!("CARGO_PKG_VERSION"),
                " (RunPod serverless protocol)"
            ))
            .timeout(Duration::from_secs(600))
            .build()
            .context("building the HTTP client")?;
        Ok(Self { http, config })
    }

    fn take_url(&self, job_in_progress: bool) -> String {
        with_query(
            &self.config.job_take_url.replace("$ID", &self.config.pod_id),
            &format!("job_in_progress={}", u8::from(job_in_progress)),
        )
    }

    /// `GET` job-take (long poll). 200 gives one job or, from the batch variant, a list.
    pub async fn take_jobs(&self, job_in_progress: bool) -> anyhow::Result<Poll<Vec<RunpodJob>>> {
        let response = self
            .http
            .get(self.take_url(job_in_progress))
            .timeout(self.config.long_poll_timeout)
            .send()
            .await
            .context("job-take request")?;
        match response.status() {
            StatusCode::NO_CONTENT => return Ok(Poll::Nothing),
            // "Expected with FlashBoot": nothing to do, poll again.
            StatusCode::BAD_REQUEST => return Ok(Poll::Nothing),
            StatusCode::TOO_MANY_REQUESTS => return Ok(Poll::RateLimited),
            s if !s.is_success() => anyhow::bail!("job-take answered {s}"),
            _ => {}
        }
        let body = response.bytes().await.context("job-take body")?;
        if body.iter().all(u8::is_ascii_whitespace) {
            return Ok(Poll::Nothing);
        }
        let value: Value = serde_json::from_slice(&body).context("job-take body is not JSON")?;
        let jobs = match value {
            Value::Array(items) => items
                .into_iter()
                .map(serde_json::from_value)
                .collect::<Result<Vec<RunpodJob>, _>>(),
            one => serde_json::from_value(one).map(|j| vec![j]),
        }
        .context("job-take body has no `id` and `input`")?;
        Ok(if jobs.is_empty() {
            Poll::Nothing
        } else {
            Poll::Got(jobs)
        })
    }

    /// `GET` job-stop (long poll on the job-take URL with `/job-take/` → `/job-stop/`).
    pub async fn jobs_to_stop(&self) -> anyhow::Result<Poll<Vec<String>>> {
        let url = self.take_url(true).replace("/job-take/", "/job-stop/");
        let response = self
            .http
            .get(url)
            .timeout(self.config.long_poll_timeout)
            .send()
            .await
            .context("job-stop request")?;
        match response.status() {
            StatusCode::NO_CONTENT => return Ok(Poll::Nothing),
            StatusCode::TOO_MANY_REQUESTS => return Ok(Poll::RateLimited),
            s if !s.is_success() => anyhow::bail!("job-stop answered {s}"),
            _ => {}
        }
        #[derive(Deserialize)]
        struct Stop {
            #[serde(rename = "jobsToStop", default)]
            jobs_to_stop: Vec<String>,
        }
        let body = response.bytes().await.context("job-stop body")?;
        if body.iter().all(u8::is_ascii_whitespace) {
            return Ok(Poll::Nothing);
        }
        let stop: Stop = serde_json::from_slice(&body).context("job-stop body")?;
        Ok(Poll::Got(stop.jobs_to_stop))
    }

    /// `POST` a result (`{"output": ..}` / `{"error": ..}`) or an in-progress update to the
    /// job-done URL: 3 attempts with Fibonacci backoff, like the SDK.
    pub async fn post_job_done(&self, job_id: &str, body: &Value) -> anyhow::Result<()> {
        let url = with_query(
            &self
                .config
                .job_done_url
                .replace("$RUNPOD_POD_ID", &self.config.pod_id)
                .replace("$ID", job_id),
            "isStream=false",
        );
        // The SDK sends the JSON text with this (odd) content type; RunPod expects it.
        let text = serde_json::to_string(body)?;
        if text.len() > 20 * 1024 * 1024 {
            tracing::warn!(
                bytes = text.len(),
                "result is over RunPod's 20 MB body limit; it may be rejected"
            );
        }
        let base = self.config.min_poll_interval;
        let (mut a, mut b) = (base, base);
        let mut last_error = None;
        for attempt in 1..=3 {
            let sent = self
                .http
                .post(&url)
                .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                .header("X-Request-ID", job_id)
                .body(text.clone())
                .send()
                .await;
            match sent {
                Ok(r) if r.status().is_success() => return Ok(()),
                Ok(r) => last_error = Some(anyhow::anyhow!("job-done answered {}", r.status())),
                Err(e) => last_error = Some(anyhow::Error::new(e).context("job-done request")),
            }
            if attempt < 3 {
                tokio::time::sleep(a).await;
                (a, b) = (b, a + b);
            }
        }
        Err(last_error.expect("three failed attempts"))
    }

    /// `GET` the ping URL with the ids of the jobs in progress.
    pub async fn ping(&self, job_ids: &[String]) -> anyhow::Result<()> {
        let Some(ping_url) = &self.config.ping_url else {
            return Ok(());
        };
        let url = with_query(
            &ping_url.replace("$RUNPOD_POD_ID", &self.config.pod_id),
            &format!(
                "job_id={}&runpod_version={RUNPOD_PROTOCOL_VERSION}",
                job_ids.join(",")
            ),
        );
        let r = self
            .http
            .get(url)
            .timeout(self.config.ping_interval * 2)
            .send()
            .await
            .context("ping request")?;
        if !r.status().is_success() {
            anyhow::bail!("ping answered {}", r.status());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_substitute_ids_and_append_queries() {
        let mut cfg = RunpodConfig::with_urls(
            "https://api.runpod.ai/v2/ep/job-take/$ID?gpu=H100".into(),
            "https://api.runpod.ai/v2/ep/job-done/$RUNPOD_POD_ID/$ID?gpu=H100".into(),
        );
        cfg.pod_id = "pod1".into();
        let c = RunpodClient::new(cfg).unwrap();
        assert_eq!(
            c.take_url(false),
            "https://api.runpod.ai/v2/ep/job-take/pod1?gpu=H100&job_in_progress=0"
        );
        assert_eq!(with_query("http://x/a", "b=1"), "http://x/a?b=1");
    }
}
