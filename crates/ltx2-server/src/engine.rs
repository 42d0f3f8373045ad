//! The one OS thread that owns the [`Generator`] (and so the device), fed by a bounded queue.
//!
//! Admission is counted here, before the channel: at most `capacity` jobs wait behind the running
//! one; beyond that `submit` says `Full` (HTTP 429). A job whose caller went away (reply receiver
//! dropped) is skipped if still queued and cancelled between steps if running.

use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Instant;

use ltx2_pipeline::{
    GenError, GenerateOutput, GenerateRequest, Generator, ModelInfo, Progress, ProgressEvent,
};
use tokio::sync::{mpsc, oneshot};

/// A finished job with how long it waited and ran.
#[derive(Debug)]
pub struct JobOutput {
    pub output: GenerateOutput,
    pub queue_seconds: f64,
    pub run_seconds: f64,
}

pub type JobResult = Result<JobOutput, GenError>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubmitError {
    /// Queue full; retry after about this many seconds.
    Full { retry_after_secs: u64 },
    /// The engine thread is gone.
    Closed,
}

struct Job {
    request: GenerateRequest,
    reply: oneshot::Sender<JobResult>,
    span: tracing::Span,
    enqueued: Instant,
    control: JobControl,
}

/// What the engine tells a job's observer, on the engine thread.
#[derive(Debug, Clone, PartialEq)]
pub enum JobEvent {
    /// The job left the queue and the generator started on it.
    Started,
    Progress(ProgressEvent),
}

/// Optional hooks of one job (async jobs, RunPod worker): an observer of its events and a flag
/// that cancels it between steps (or skips it while queued), besides dropping the receiver.
#[derive(Clone, Default)]
pub struct JobControl {
    pub observer: Option<Arc<dyn Fn(JobEvent) + Send + Sync>>,
    pub cancel: Option<Arc<AtomicBool>>,
}

impl JobControl {
    fn cancelled(&self) -> bool {
        self.cancel
            .as_ref()
            .is_some_and(|c| c.load(Ordering::SeqCst))
    }

    fn notify(&self, event: JobEvent) {
        if let Some(observer) = &self.observer {
            observer(event);
        }
    }
}

/// Counters shared between the handlers and the engine thread.
#[derive(Debug, Default)]
pub struct EngineStats {
    /// Jobs accepted and not yet finished (queued + running).
    pub pending: AtomicUsize,
    pub running: AtomicBool,
    pub alive: AtomicBool,
    pub completed: AtomicU64,
    pub failed: AtomicU64,
    pub cancelled: AtomicU64,
    pub last_run_ms: AtomicU64,
    /// Per-stage wall times of finished jobs (for /metrics).
    pub stages: crate::metrics::StageHistograms,
}

/// Cheap to clone; what the HTTP handlers hold.
#[derive(Clone)]
pub struct EngineHandle {
    tx: mpsc::Sender<Job>,
    stats: Arc<EngineStats>,
    info: Arc<ModelInfo>,
    capacity: usize,
}

/// Starts the engine thread. Dropping every [`EngineHandle`] closes the queue; the thread then
/// finishes the running job and exits (join the returned handle).
pub fn spawn(
    mut generator: Box<dyn Generator>,
    capacity: usize,
) -> std::io::Result<(EngineHandle, JoinHandle<()>)> {
    let info = Arc::new(generator.info());
    let (tx, mut rx) = mpsc::channel::<Job>(capacity + 1);
    let stats = Arc::new(EngineStats::default());
    stats.alive.store(true, Ordering::SeqCst);
    let thread_stats = stats.clone();
    let join = std::thread::Builder::new()
        .name("ltx2-engine".into())
        .spawn(move || {
            let stats = thread_stats;
            // Marks the engine dead however the thread ends.
            struct Alive(Arc<EngineStats>);
            impl Drop for Alive {
                fn drop(&mut self) {
                    self.0.alive.store(false, Ordering::SeqCst);
                }
            }
            let _alive = Alive(stats.clone());
            while let Some(job) = rx.blocking_recv() {
                run_job(generator.as_mut(), job, &stats);
            }
            tracing::info!("engine queue closed, engine thread exiting");
        })?;
    Ok((
        EngineHandle {
            tx,
            stats,
            info,
            capacity,
        },
        join,
    ))
}

fn run_job(generator: &mut dyn Generator, job: Job, stats: &EngineStats) {
    let _enter = job.span.enter();
    let queue_seconds = job.enqueued.elapsed().as_secs_f64();
    if job.reply.is_closed() || job.control.cancelled() {
        tracing::info!("job cancelled (or caller went away) while queued; skipped");
        stats.cancelled.fetch_add(1, Ordering::Relaxed);
        stats.pending.fetch_sub(1, Ordering::SeqCst);
        let _ = job.reply.send(Err(GenError::Cancelled));
        return;
    }
    stats.running.store(true, Ordering::SeqCst);
    job.control.notify(JobEvent::Started);
    let started = Instant::now();
    let progress = JobProgress {
        reply: &job.reply,
        control: &job.control,
    };
    let result = std::panic::catch_unwind(AssertUnwindSafe(|| {
        generator.generate(&job.request, &progress)
    }))
    .unwrap_or_else(|panic| {
        let msg = panic
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_else(|| "unknown panic".into());
        tracing::error!(%msg, "generator panicked");
        Err(GenError::Model(format!("engine panicked: {msg}")))
    });
    let run_seconds = started.elapsed().as_secs_f64();
    stats.running.store(false, Ordering::SeqCst);
    stats
        .last_run_ms
        .store((run_seconds * 1000.0) as u64, Ordering::Relaxed);
    match &result {
        Ok(output) => {
            stats.stages.observe(&output.timings);
            stats.completed.fetch_add(1, Ordering::Relaxed)
        }
        Err(GenError::Cancelled) => stats.cancelled.fetch_add(1, Ordering::Relaxed),
        Err(_) => stats.failed.fetch_add(1, Ordering::Relaxed),
    };
    tracing::info!(
        run_seconds,
        queue_seconds,
        ok = result.is_ok(),
        "job finished"
    );
    // Free the slot before answering, so a client that sends its next request as soon as it
    // has this answer is not refused.
    stats.pending.fetch_sub(1, Ordering::SeqCst);
    let reply = result.map(|output| JobOutput {
        output,
        queue_seconds,
        run_seconds,
    });
    if job.reply.send(reply).is_err() {
        tracing::info!("caller went away before the result was ready");
    }
}

/// Progress of one job: logs events and passes them to the job's observer; the job is cancelled
/// once its caller drops the receiver or sets its cancel flag.
struct JobProgress<'a> {
    reply: &'a oneshot::Sender<JobResult>,
    control: &'a JobControl,
}

impl Progress for JobProgress<'_> {
    fn report(&self, event: ProgressEvent) {
        tracing::debug!(?event, "progress");
        self.control.notify(JobEvent::Progress(event));
    }

    fn is_cancelled(&self) -> bool {
        self.reply.is_closed() || self.control.cancelled()
    }
}

impl EngineHandle {
    /// Queues a request; the receiver yields its result. Dropping the receiver cancels the job.
    pub fn submit(
        &self,
        request: GenerateRequest,
    ) -> Result<oneshot::Receiver<JobResult>, SubmitError> {
        self.submit_with(request, JobControl::default())
    }

    /// [`Self::submit`] with an observer of the job's progress and a cancel flag.
    pub fn submit_with(
        &self,
        request: GenerateRequest,
        control: JobControl,
    ) -> Result<oneshot::Receiver<JobResult>, SubmitError> {
        if !self.is_alive() {
            return Err(SubmitError::Closed);
        }
        let admitted = self
            .stats
            .pending
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |p| {
                (p < self.capacity + 1).then_some(p + 1)
            });
        if admitted.is_err() {
            return Err(SubmitError::Full {
                retry_after_secs: self.retry_after(),
            });
        }
        let (reply, rx) = oneshot::channel();
        let job = Job {
            request,
            reply,
            span: tracing::Span::current(),
            enqueued: Instant::now(),
            control,
        };
        if self.tx.try_send(job).is_err() {
            self.stats.pending.fetch_sub(1, Ordering::SeqCst);
            return Err(if self.is_alive() {
                SubmitError::Full {
                    retry_after_secs: self.retry_after(),
                }
            } else {
                SubmitError::Closed
            });
        }
        Ok(rx)
    }

    /// Seconds until a slot is likely free (one job has to finish): the last job's run time,
    /// at least 1 s; 5 s before any job has run.
    fn retry_after(&self) -> u64 {
        let last = self.stats.last_run_ms.load(Ordering::Relaxed);
        if last == 0 {
            5
        } else {
            last.div_ceil(1000).clamp(1, 3600)
        }
    }

    pub fn is_alive(&self) -> bool {
        self.stats.alive.load(Ordering::SeqCst)
    }

    pub fn info(&self) -> &ModelInfo {
        &self.info
    }

    pub fn stats(&self) -> &EngineStats {
        &self.stats
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }
}
