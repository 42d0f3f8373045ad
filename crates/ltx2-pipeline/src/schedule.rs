//! Sigma schedules: the distilled model's fixed lists and the dev model's `LTX2Scheduler`.
//!
//! Mirrors `ltx_pipelines/utils/constants.py` (`DISTILLED_SIGMA_VALUES`,
//! `STAGE_2_DISTILLED_SIGMA_VALUES`) and `ltx_core/components/schedulers.py::LTX2Scheduler`.
//! Every list ends with 0; a list of `n + 1` values drives `n` transformer evaluations.

/// Stage-1 sigmas of the distilled checkpoint (8 steps).
pub const DISTILLED_SIGMAS: [f32; 9] = [
    1.0, 0.99375, 0.9875, 0.98125, 0.975, 0.909375, 0.725, 0.421875, 0.0,
];

/// Stage-2 (refinement) sigmas of the distilled checkpoint (3 steps); the first value is also the
/// noise scale used to re-noise the upsampled latent.
pub const STAGE2_DISTILLED_SIGMAS: [f32; 4] = [0.909375, 0.725, 0.421875, 0.0];

/// Token count at which the shift equals `base_shift`.
const BASE_SHIFT_ANCHOR: f64 = 1024.0;
/// Token count at which the shift equals `max_shift`; also what every ltx-pipelines pipeline uses
/// (they pass no latent to the scheduler).
const MAX_SHIFT_ANCHOR: f64 = 4096.0;

/// The dev model's scheduler: a token-count dependent time shift, optionally stretched so the
/// last non-zero sigma equals `terminal`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Ltx2Scheduler {
    pub max_shift: f64,
    pub base_shift: f64,
    pub stretch: bool,
    pub terminal: f64,
}

impl Default for Ltx2Scheduler {
    fn default() -> Self {
        Self {
            max_shift: 2.05,
            base_shift: 0.95,
            stretch: true,
            terminal: 0.1,
        }
    }
}

impl Ltx2Scheduler {
    /// `steps + 1` sigmas from 1 down to 0. `tokens` is the latent token count (frames x height x
    /// width of the latent); `None` means 4096, which is what the official pipelines use.
    ///
    /// Evaluated in f32 in exactly PyTorch's order (`torch.linspace`, `scalar / tensor` as
    /// `reciprocal * scalar`): with one step the stretch divides two rounding errors, so only the
    /// same f32 operations give the official `[0.1, 0]`.
    pub fn sigmas(&self, steps: usize, tokens: Option<usize>) -> Vec<f32> {
        let tokens = tokens.map_or(MAX_SHIFT_ANCHOR, |t| t as f64);
        let slope = (self.max_shift - self.base_shift) / (MAX_SHIFT_ANCHOR - BASE_SHIFT_ANCHOR);
        let shift = tokens * slope + (self.base_shift - slope * BASE_SHIFT_ANCHOR);
        let e = shift.exp() as f32;
        let mut sigmas: Vec<f32> = linspace_f32(1.0, 0.0, steps + 1)
            .into_iter()
            .map(|s| {
                if s != 0.0 {
                    (1.0 / (e + (1.0 / s - 1.0))) * e
                } else {
                    0.0
                }
            })
            .collect();
        if self.stretch {
            if let Some(&last) = sigmas.iter().rev().find(|&&s| s != 0.0) {
                let scale = (1.0 - last) / (1.0 - self.terminal) as f32;
                for s in sigmas.iter_mut().filter(|s| **s != 0.0) {
                    *s = 1.0 - (1.0 - *s) / scale;
                }
            }
        }
        sigmas
    }
}

/// `torch.linspace` in f32: the first half counts up from `start`, the second half down from `end`.
fn linspace_f32(start: f32, end: f32, n: usize) -> Vec<f32> {
    if n == 1 {
        return vec![start];
    }
    let step = (end - start) / (n - 1) as f32;
    let half = n / 2;
    (0..n)
        .map(|i| {
            if i < half {
                start + step * i as f32
            } else {
                end - step * (n - i - 1) as f32
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ends_at_zero_and_stretches_to_terminal() {
        let s = Ltx2Scheduler::default().sigmas(8, None);
        assert_eq!(s.len(), 9);
        assert!((s[0] - 1.0).abs() < 1e-6);
        assert_eq!(s[8], 0.0);
        assert!((s[7] - 0.1).abs() < 1e-6);
        assert!(s.windows(2).all(|w| w[0] > w[1]));
    }
}
