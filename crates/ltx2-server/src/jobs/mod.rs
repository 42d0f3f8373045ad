//! Async jobs: submit now, poll (or follow server-sent events) later, fetch the MP4 when done.
//!
//! A job is one engine submission ([`EngineHandle::submit_with`]) whose progress observer writes
//! into the job's record; a task awaits the engine's answer and encodes the MP4 exactly like
//! `/generate`. Finished jobs are kept `ttl` and then evicted (lazily, on every store access); at
//! most `max_jobs` are held, the oldest finished ones giving way to new submissions.

pub mod http;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use ltx2_pipeline::{GenError, GenerateRequest, ProgressEvent};
use serde::Serialize;
use tokio::sync::watch;
use utoipa::ToSchema;

use crate::engine::{EngineHandle, JobControl, JobEvent};
use crate::http::error::{ApiError, ErrorType};
use crate::http::generate::{finish, Encoded, ResponseMeta};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum JobStatus {
    Queued,
    Running,
    Succeeded,
    Failed,
    Cancelled,
}

impl JobStatus {
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            JobStatus::Succeeded | JobStatus::Failed | JobStatus::Cancelled
        )
    }

    pub fn as_str(self) -> &'static str {
        match self {
            JobStatus::Queued => "queued",
            JobStatus::Running => "running",
            JobStatus::Succeeded => "succeeded",
            JobStatus::Failed => "failed",
            JobStatus::Cancelled => "cancelled",
        }
    }

    pub const ALL: [JobStatus; 5] = [
        JobStatus::Queued,
        JobStatus::Running,
        JobStatus::Succeeded,
        JobStatus::Failed,
        JobStatus::Cancelled,
    ];
}

/// Why a job failed, in the API's error shape.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct JobError {
    pub error: String,
    pub error_type: ErrorType,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// Id of the request that submitted the job (the server log's details are under it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
}

/// `GET /jobs/{id}`: where a job stands.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct JobView {
    pub id: String,
    pub status: JobStatus,
    /// Engine stage running now (`stage1`, `stage2`, `video_decode`, ...).
    pub stage: Option<String>,
    /// Last finished denoising step of `stage` (1-based) and the stage's step count.
    pub step: Option<u32>,
    pub total: Option<u32>,
    /// Rough seconds until done: the current stage's remaining steps at its measured rate, or the
    /// last job's run time minus what has elapsed (times the jobs ahead when queued).
    pub eta_seconds: Option<f64>,
    /// Seconds since submission.
    pub elapsed_seconds: f64,
    /// Submission time, seconds since the Unix epoch.
    pub created_at: u64,
    /// Seconds the result stays available after the job finished.
    pub ttl_seconds: u64,
    /// True once `DELETE /jobs/{id}` asked to cancel it.
    pub cancel_requested: bool,
    pub error: Option<JobError>,
}

#[derive(Debug, Default)]
struct JobState {
    status: Option<JobStatus>,
    stage: Option<String>,
    step: Option<u32>,
    total: Option<u32>,
    started: Option<Instant>,
    stage_started: Option<Instant>,
    last_event: Option<Instant>,
    finished: Option<Instant>,
    error: Option<JobError>,
    result: Option<Arc<Encoded>>,
}

pub struct JobRecord {
    pub id: String,
    created: Instant,
    created_unix: u64,
    cancel: Arc<AtomicBool>,
    state: Mutex<JobState>,
    /// Bumped on every change; SSE followers wait on it.
    version: watch::Sender<u64>,
}

impl JobRecord {
    fn new(id: String) -> Self {
        let created_unix = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        Self {
            id,
            created: Instant::now(),
            created_unix,
            cancel: Arc::new(AtomicBool::new(false)),
            state: Mutex::new(JobState {
                status: Some(JobStatus::Queued),
                ..JobState::default()
            }),
            version: watch::Sender::new(0),
        }
    }

    fn update(&self, f: impl FnOnce(&mut JobState)) {
        {
            let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
            // A finished job never changes again (a late progress event must not revive it).
            if state.status.is_some_and(JobStatus::is_terminal) {
                return;
            }
            f(&mut state);
        }
        self.version.send_modify(|v| *v += 1);
    }

    fn on_event(&self, event: JobEvent) {
        let now = Instant::now();
        self.update(|s| {
            match event {
                JobEvent::Started => {
                    s.status = Some(JobStatus::Running);
                    s.started = Some(now);
                }
                JobEvent::Progress(ProgressEvent::StageStarted { stage }) => {
                    s.stage = Some(stage);
                    s.stage_started = Some(now);
                    s.step = None;
                    s.total = None;
                }
                JobEvent::Progress(ProgressEvent::Step { stage, step, total }) => {
                    if s.stage.as_deref() != Some(stage.as_str()) {
                        // No StageStarted seen: the stage began when the previous event ended.
                        s.stage = Some(stage);
                        s.stage_started = s.last_event.or(s.started);
                    }
                    s.step = Some(step);
                    s.total = Some(total);
                }
                JobEvent::Progress(ProgressEvent::StageFinished { .. }) => {}
            }
            s.last_event = Some(now);
        });
    }

    /// Ends the job. A job whose cancellation `DELETE /jobs/{id}` accepted (202) ends
    /// `cancelled` whatever it reached meanwhile (the last step, the MP4 encode): its result is
    /// dropped. [`JobStore::cancel`] sets the flag under the same lock, so the two cannot cross.
    fn finish(&self, status: JobStatus, error: Option<JobError>, result: Option<Arc<Encoded>>) {
        self.update(|s| {
            if self.cancel.load(Ordering::SeqCst) && status != JobStatus::Cancelled {
                s.status = Some(JobStatus::Cancelled);
                s.error = Some(cancelled_error("cancelled by DELETE /jobs/{id}"));
                s.result = None;
            } else {
                s.status = Some(status);
                s.error = error;
                s.result = result;
            }
            s.finished = Some(Instant::now());
        });
    }

    pub fn status(&self) -> JobStatus {
        self.state
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .status
            .unwrap_or(JobStatus::Queued)
    }

    /// The MP4 and `/generate` response of a succeeded job.
    pub fn result(&self) -> Option<Arc<Encoded>> {
        self.state
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .result
            .clone()
    }

    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.version.subscribe()
    }

    fn finished_at(&self) -> Option<Instant> {
        self.state
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .finished
    }

    fn view(&self, now: Instant, ttl: Duration, last_run: Option<f64>, ahead: usize) -> JobView {
        let s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let status = s.status.unwrap_or(JobStatus::Queued);
        let eta_seconds = match status {
            JobStatus::Queued => last_run.map(|r| r * (ahead + 1) as f64),
            JobStatus::Running => {
                let stage_eta = match (s.stage_started, s.step, s.total) {
                    (Some(t0), Some(step), Some(total)) if step > 0 => Some(
                        now.duration_since(t0).as_secs_f64() / step as f64
                            * total.saturating_sub(step) as f64,
                    ),
                    _ => None,
                };
                let run_eta = match (last_run, s.started) {
                    (Some(r), Some(t0)) => {
                        Some((r - now.duration_since(t0).as_secs_f64()).max(0.0))
                    }
                    _ => None,
                };
                match (stage_eta, run_eta) {
                    (Some(a), Some(b)) => Some(a.max(b)),
                    (a, b) => a.or(b),
                }
            }
            _ => Some(0.0),
        };
        JobView {
            id: self.id.clone(),
            status,
            stage: s.stage.clone(),
            step: s.step,
            total: s.total,
            eta_seconds: eta_seconds.map(|e| (e * 10.0).round() / 10.0),
            elapsed_seconds: now.duration_since(self.created).as_secs_f64(),
            created_at: self.created_unix,
            ttl_seconds: ttl.as_secs(),
            cancel_requested: self.cancel.load(Ordering::SeqCst),
            error: s.error.clone(),
        }
    }
}

/// Every async job the server holds.
pub struct JobStore {
    jobs: Mutex<HashMap<String, Arc<JobRecord>>>,
    ttl: Duration,
    max_jobs: usize,
}

impl JobStore {
    pub fn new(ttl: Duration, max_jobs: usize) -> Self {
        Self {
            jobs: Mutex::new(HashMap::new()),
            ttl,
            max_jobs: max_jobs.max(1),
        }
    }

    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<JobRecord>>> {
        let mut jobs = self.jobs.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        jobs.retain(|_, j| {
            j.finished_at()
                .is_none_or(|t| now.duration_since(t) < self.ttl)
        });
        jobs
    }

    /// Queues `request` on the engine as a new job (its id is `id` when given, else a UUID).
    /// Must be called inside a tokio runtime: a task awaits the result and encodes the MP4.
    pub fn submit(
        self: &Arc<Self>,
        engine: &EngineHandle,
        request: GenerateRequest,
        meta: ResponseMeta,
        id: Option<String>,
    ) -> Result<Arc<JobRecord>, ApiError> {
        let mut jobs = self.lock();
        if jobs.len() >= self.max_jobs {
            let oldest_finished = jobs
                .values()
                .filter_map(|j| j.finished_at().map(|t| (t, j.id.clone())))
                .min();
            match oldest_finished {
                Some((_, id)) => {
                    jobs.remove(&id);
                }
                None => {
                    return Err(ApiError {
                        retry_after_secs: Some(5),
                        ..ApiError::new(
                            ErrorType::Overloaded,
                            format!(
                                "{} jobs are queued or running (the store's limit); retry later",
                                jobs.len()
                            ),
                        )
                    })
                }
            }
        }
        let id = id.unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
        let record = Arc::new(JobRecord::new(id.clone()));
        let observer = record.clone();
        let control = JobControl {
            observer: Some(Arc::new(move |event| observer.on_event(event))),
            cancel: Some(record.cancel.clone()),
        };
        let rx = engine.submit_with(request, control)?;
        jobs.insert(id, record.clone());
        drop(jobs);

        let info = engine.info().clone();
        let task_record = record.clone();
        // The task answers for the submitting request: same id and log span.
        tokio::spawn(crate::http::request_id::propagate(async move {
            let record = task_record;
            match rx.await {
                // Cancelled after the last step: no MP4 to encode (finish() ends it cancelled).
                Ok(Ok(_)) if record.cancel.load(Ordering::SeqCst) => {
                    record.finish(JobStatus::Cancelled, None, None)
                }
                Ok(Ok(job)) => match finish(&info, meta, job).await {
                    Ok(encoded) => {
                        record.finish(JobStatus::Succeeded, None, Some(Arc::new(encoded)))
                    }
                    Err(e) => record.finish(JobStatus::Failed, Some(job_error(e)), None),
                },
                Ok(Err(GenError::Cancelled)) => {
                    let error = if record.cancel.load(Ordering::SeqCst) {
                        "cancelled by DELETE /jobs/{id}"
                    } else {
                        "cancelled: the server is shutting down"
                    };
                    record.finish(JobStatus::Cancelled, Some(cancelled_error(error)), None)
                }
                Ok(Err(e)) => record.finish(JobStatus::Failed, Some(job_error(e.into())), None),
                Err(_) => record.finish(
                    JobStatus::Failed,
                    Some(job_error(ApiError::new(
                        ErrorType::Unhealthy,
                        "the generation engine stopped",
                    ))),
                    None,
                ),
            }
            tracing::info!(job = %record.id, status = record.status().as_str(), "async job finished");
        }));
        Ok(record)
    }

    pub fn get(&self, id: &str) -> Option<Arc<JobRecord>> {
        self.lock().get(id).cloned()
    }

    /// The job's view; `last_run` is the engine's last run time (for the ETA).
    pub fn view(&self, record: &JobRecord, last_run: Option<f64>) -> JobView {
        let ahead = if record.status() == JobStatus::Queued {
            self.lock()
                .values()
                .filter(|j| {
                    j.created < record.created
                        && matches!(j.status(), JobStatus::Queued | JobStatus::Running)
                })
                .count()
        } else {
            0
        };
        record.view(Instant::now(), self.ttl, last_run, ahead)
    }

    /// Asks a queued or running job to stop; returns false when it had already finished.
    /// Asks a queued or running job to stop; false when it had already finished. The flag is set
    /// under the record's lock, so a job this returns true for ends `cancelled` (see `finish`).
    pub fn cancel(&self, record: &JobRecord) -> bool {
        {
            let state = record.state.lock().unwrap_or_else(|e| e.into_inner());
            if state.status.is_some_and(JobStatus::is_terminal) {
                return false;
            }
            record.cancel.store(true, Ordering::SeqCst);
        }
        record.version.send_modify(|v| *v += 1);
        true
    }

    /// Forgets a job (its result included).
    pub fn remove(&self, id: &str) -> Option<Arc<JobRecord>> {
        self.lock().remove(id)
    }

    pub fn count_by_status(&self) -> Vec<(JobStatus, usize)> {
        let jobs = self.lock();
        JobStatus::ALL
            .iter()
            .map(|&s| (s, jobs.values().filter(|j| j.status() == s).count()))
            .collect()
    }
}

fn cancelled_error(why: &str) -> JobError {
    JobError {
        error: why.into(),
        error_type: ErrorType::Unhealthy,
        field: None,
        request_id: crate::http::request_id::current(),
    }
}

fn job_error(e: ApiError) -> JobError {
    JobError {
        error: e.body.error,
        error_type: e.body.error_type,
        field: e.body.field,
        request_id: e.body.request_id,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finished_jobs_are_final_and_expire() {
        let store = JobStore::new(Duration::ZERO, 4);
        let r = Arc::new(JobRecord::new("a".into()));
        store.jobs.lock().unwrap().insert("a".into(), r.clone());
        r.on_event(JobEvent::Started);
        assert_eq!(r.status(), JobStatus::Running);
        r.finish(JobStatus::Failed, None, None);
        r.on_event(JobEvent::Started);
        assert_eq!(r.status(), JobStatus::Failed);
        // ttl 0: gone at the next access.
        assert!(store.get("a").is_none());
    }

    /// Soak finding: a DELETE answered 202 while the job was past its last step (decoding or
    /// encoding the MP4) still ended `succeeded`, its result kept.
    #[test]
    fn a_cancel_accepted_before_the_end_wins_over_the_result() {
        let store = JobStore::new(Duration::from_secs(60), 4);
        let r = Arc::new(JobRecord::new("c".into()));
        store.jobs.lock().unwrap().insert("c".into(), r.clone());
        r.on_event(JobEvent::Started);
        assert!(store.cancel(&r));
        r.finish(JobStatus::Succeeded, None, None);
        assert_eq!(r.status(), JobStatus::Cancelled);
        let v = store.view(&r, None);
        assert!(v.cancel_requested);
        assert_eq!(
            v.error.map(|e| e.error).as_deref(),
            Some("cancelled by DELETE /jobs/{id}")
        );
        // Failing after the cancel also ends it cancelled; a finished job refuses a cancel.
        let f = Arc::new(JobRecord::new("f".into()));
        assert!(store.cancel(&f));
        f.finish(JobStatus::Failed, None, None);
        assert_eq!(f.status(), JobStatus::Cancelled);
        assert!(!store.cancel(&f));
        let done = Arc::new(JobRecord::new("d".into()));
        done.finish(JobStatus::Succeeded, None, None);
        assert!(!store.cancel(&done));
        assert!(!done.cancel.load(Ordering::SeqCst));
        assert_eq!(done.status(), JobStatus::Succeeded);
    }

    #[test]
    fn step_events_give_a_stage_eta() {
        let r = JobRecord::new("b".into());
        r.on_event(JobEvent::Started);
        r.on_event(JobEvent::Progress(ProgressEvent::Step {
            stage: "stage1".into(),
            step: 2,
            total: 8,
        }));
        let v = r.view(Instant::now(), Duration::from_secs(60), None, 0);
        assert_eq!(v.stage.as_deref(), Some("stage1"));
        assert_eq!((v.step, v.total), (Some(2), Some(8)));
        assert!(v.eta_seconds.is_some());
    }
}
