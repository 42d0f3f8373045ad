//! Stage timing and progress for one request.

use std::time::Instant;

use candle_core::Device;

use crate::api::*;
use crate::denoise::StepEvent;
use crate::pipelines::RunObserver;

/// Tracks stage boundaries from the step callbacks: emits progress and records timings.
pub(super) struct StageClock<'a> {
    pub(super) progress: &'a dyn Progress,
    /// Synchronized at each stage end so an asynchronous device (CUDA) charges work to its stage.
    pub(super) device: &'a Device,
    pub(super) timings: StageTimings,
    pub(super) current: Option<(String, Instant)>,
}

impl<'a> StageClock<'a> {
    pub(super) fn new(progress: &'a dyn Progress, device: &'a Device) -> Self {
        Self {
            progress,
            device,
            timings: StageTimings::default(),
            current: None,
        }
    }

    pub(super) fn start(&mut self, stage: &str) {
        self.finish();
        self.progress.report(ProgressEvent::StageStarted {
            stage: stage.to_string(),
        });
        self.current = Some((stage.to_string(), Instant::now()));
    }

    pub(super) fn finish(&mut self) {
        if let Some((stage, t)) = self.current.take() {
            // A failed sync surfaces at the next real op; the timing is then moot anyway.
            let _ = self.device.synchronize();
            let elapsed = t.elapsed();
            self.progress.report(ProgressEvent::StageFinished {
                stage: stage.clone(),
                seconds: elapsed.as_secs_f64(),
            });
            self.timings.push(&stage, elapsed);
        }
    }

    fn step(&mut self, stage: &str, e: &StepEvent<'_>) -> Result<(), GenError> {
        if self.current.as_ref().map(|(s, _)| s.as_str()) != Some(stage) {
            self.start(stage);
        }
        self.progress.report(ProgressEvent::Step {
            stage: stage.to_string(),
            step: e.step as u32 + 1,
            total: e.total as u32,
        });
        if self.progress.is_cancelled() {
            return Err(GenError::Cancelled);
        }
        Ok(())
    }
}

impl RunObserver for StageClock<'_> {
    fn stage(&mut self, name: &str) -> Result<(), GenError> {
        self.start(name);
        if self.progress.is_cancelled() {
            return Err(GenError::Cancelled);
        }
        Ok(())
    }

    fn step(&mut self, stage: &str, e: &StepEvent<'_>) -> Result<(), GenError> {
        StageClock::step(self, stage, e)
    }
}
