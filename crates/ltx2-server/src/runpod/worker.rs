//! The worker loop: take a job, run it on the engine (progress POSTed as it goes), POST the
//! result; a heartbeat task and a job-stop task run beside it, unaffected by a long job.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tokio::sync::watch;
use tracing::Instrument;

use super::client::Poll;
use super::{Handler, RunpodClient, RunpodConfig, RunpodJob};

/// Jobs in progress and their cancel flags.
type Active = Arc<Mutex<HashMap<String, Arc<AtomicBool>>>>;

/// What a worker did before it stopped.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct WorkerSummary {
    pub succeeded: usize,
    pub failed: usize,
}

/// Takes and runs jobs until `shutdown` resolves; then takes no more, finishes the job in
/// progress, posts its result and returns.
pub async fn run_worker(
    handler: Handler,
    config: RunpodConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<WorkerSummary> {
    let client = Arc::new(RunpodClient::new(config)?);
    let (stopping_tx, mut stopping) = watch::channel(false);
    tokio::spawn(async move {
        shutdown.await;
        tracing::info!("shutdown requested: taking no more jobs, finishing the one in progress");
        let _ = stopping_tx.send(true);
    });
    // Ends the side tasks once the loop has drained.
    let (done_tx, done) = watch::channel(false);
    let active: Active = Arc::default();
    let mut side_tasks = vec![tokio::spawn(job_stop_loop(
        client.clone(),
        active.clone(),
        done.clone(),
    ))];
    if client.config.ping_url.is_some() && client.config.api_key.is_some() {
        side_tasks.push(tokio::spawn(heartbeat_loop(
            client.clone(),
            active.clone(),
            done.clone(),
        )));
    } else {
        tracing::warn!("RUNPOD_WEBHOOK_PING or RUNPOD_AI_API_KEY unset: no heartbeat");
    }
    tracing::info!(worker_id = %client.config.pod_id, "RunPod worker started");

    let mut summary = WorkerSummary::default();
    let mut failures = 0u32;
    while !*stopping.borrow() {
        let polled_at = Instant::now();
        let taken = tokio::select! {
            biased;
            _ = stopping.wait_for(|s| *s) => break,
            taken = client.take_jobs(false) => taken,
        };
        match taken {
            Ok(Poll::Got(jobs)) => {
                failures = 0;
                // Concurrency 1: the engine runs one job at a time anyway.
                for job in jobs {
                    if run_one(&client, &handler, &active, job).await {
                        summary.succeeded += 1;
                    } else {
                        summary.failed += 1;
                    }
                }
                continue;
            }
            Ok(Poll::Nothing) => failures = 0,
            Ok(Poll::RateLimited) => {
                tracing::warn!("job-take rate limited");
                sleep_unless(client.config.rate_limit_wait, &mut stopping).await;
                continue;
            }
            Err(e) => {
                failures = failures.saturating_add(1);
                tracing::error!("job-take failed: {e:#}");
                let backoff = client.config.min_poll_interval * failures.min(30);
                sleep_unless(backoff, &mut stopping).await;
                continue;
            }
        }
        let wait = client
            .config
            .min_poll_interval
            .saturating_sub(polled_at.elapsed());
        sleep_unless(wait, &mut stopping).await;
    }
    let _ = done_tx.send(true);
    for task in side_tasks {
        let _ = task.await;
    }
    tracing::info!(?summary, "RunPod worker stopped");
    Ok(summary)
}

async fn sleep_unless(duration: Duration, stopping: &mut watch::Receiver<bool>) {
    tokio::select! {
        _ = tokio::time::sleep(duration) => {}
        _ = stopping.wait_for(|s| *s) => {}
    }
}

/// Runs one job and posts its result; true when it succeeded.
async fn run_one(
    client: &Arc<RunpodClient>,
    handler: &Handler,
    active: &Active,
    job: RunpodJob,
) -> bool {
    let span = tracing::info_span!("job", request_id = %job.id);
    async {
        tracing::info!("job started");
        let cancel = Arc::new(AtomicBool::new(false));
        lock(active).insert(job.id.clone(), cancel.clone());
        let (progress_tx, mut progress_rx) = watch::channel::<Option<Value>>(None);
        let poster = {
            let job_id = job.id.clone();
            let client = client.clone();
            tokio::spawn(
                async move {
                    // Ends when the job is done (sender dropped); coalesces fast updates.
                    while progress_rx.changed().await.is_ok() {
                        let Some(update) = progress_rx.borrow_and_update().clone() else {
                            continue;
                        };
                        let body = json!({"status": "IN_PROGRESS", "output": update});
                        if let Err(e) = client.post_job_done(&job_id, &body).await {
                            tracing::warn!("progress update not delivered: {e:#}");
                        }
                    }
                }
                .in_current_span(),
            )
        };
        // The RunPod job id is the request id of everything logged for it.
        let result = crate::http::request_id::scope(
            job.id.clone(),
            handler.run(job.input, cancel.clone(), Some(progress_tx)),
        )
        .await;
        // Progress must not arrive after the result.
        let _ = poster.await;
        lock(active).remove(&job.id);
        let (ok, body) = match result {
            Ok(output) => (true, json!({"output": output})),
            Err(e) => {
                let cancelled = cancel.load(Ordering::SeqCst);
                tracing::warn!(cancelled, field = ?e.body.field, "job failed: {}", e.body.error);
                (false, json!({"error": handler.error_string(&e)}))
            }
        };
        match client.post_job_done(&job.id, &body).await {
            Ok(()) => tracing::info!(ok, "job result posted"),
            Err(e) => tracing::error!("job result not delivered: {e:#}"),
        }
        ok
    }
    .instrument(span)
    .await
}

fn lock(active: &Active) -> std::sync::MutexGuard<'_, HashMap<String, Arc<AtomicBool>>> {
    active.lock().unwrap_or_else(|e| e.into_inner())
}

/// Heartbeat on its own task: keeps going while a job occupies the engine thread.
async fn heartbeat_loop(
    client: Arc<RunpodClient>,
    active: Active,
    mut done: watch::Receiver<bool>,
) {
    loop {
        let ids: Vec<String> = lock(&active).keys().cloned().collect();
        if let Err(e) = client.ping(&ids).await {
            tracing::warn!("heartbeat failed: {e:#}");
        }
        tokio::select! {
            _ = tokio::time::sleep(client.config.ping_interval) => {}
            _ = done.wait_for(|d| *d) => return,
        }
    }
}

/// Long-polls job-stop and raises the cancel flag of every listed job this worker runs.
async fn job_stop_loop(client: Arc<RunpodClient>, active: Active, mut done: watch::Receiver<bool>) {
    loop {
        let polled_at = Instant::now();
        let polled = tokio::select! {
            polled = client.jobs_to_stop() => polled,
            _ = done.wait_for(|d| *d) => return,
        };
        let wait = match polled {
            Ok(Poll::Got(ids)) => {
                for id in ids {
                    match lock(&active).get(&id) {
                        Some(flag) => {
                            tracing::info!(request_id = %id, "job-stop: cancelling");
                            flag.store(true, Ordering::SeqCst);
                        }
                        None => {
                            tracing::debug!(request_id = %id, "job-stop for a job not running here")
                        }
                    }
                }
                Duration::ZERO
            }
            Ok(Poll::Nothing) => client
                .config
                .min_poll_interval
                .saturating_sub(polled_at.elapsed()),
            Ok(Poll::RateLimited) => client.config.rate_limit_wait,
            Err(e) => {
                tracing::debug!("job-stop poll failed: {e:#}");
                client.config.min_poll_interval
            }
        };
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = done.wait_for(|d| *d) => return,
        }
    }
}
