//! Multi-modal guidance in x0 space, as ltx-core's `MultiModalGuider.calculate`:
//!
//! `pred = c + (cfg - 1)(c - u_text) + stg (c - u_perturbed) + (modality - 1)(c - u_isolated)`,
//! then `pred *= r * std(c) / std(pred) + (1 - r)`. Each term costs one extra transformer pass
//! (negative-prompt context; self-attention skipped in the STG blocks; both audio<->video
//! cross-attentions skipped). A pass runs when either modality needs it, as in
//! `multi_modal_guider_denoising_func`.

use candle_core::{DType, Result, Tensor};

/// Guidance strengths of one modality (`MultiModalGuiderParams`).
#[derive(Debug, Clone, PartialEq)]
pub struct GuiderParams {
    pub cfg: f32,
    pub stg: f32,
    /// Transformer blocks whose self-attention is replaced by its value projection in the STG pass.
    pub stg_blocks: Vec<usize>,
    pub modality: f32,
    pub rescale: f32,
}

impl GuiderParams {
    /// No guidance: one transformer pass per step.
    pub fn disabled() -> Self {
        Self {
            cfg: 1.0,
            stg: 0.0,
            stg_blocks: vec![],
            modality: 1.0,
            rescale: 0.0,
        }
    }

    pub(crate) fn is_close(a: f32, b: f32) -> bool {
        // math.isclose defaults (rel 1e-9): effectively exact for f32 inputs.
        (a - b).abs() <= 1e-9 * a.abs().max(b.abs())
    }

    pub fn needs_unconditional(&self) -> bool {
        !Self::is_close(self.cfg, 1.0)
    }

    pub fn needs_perturbed(&self) -> bool {
        !Self::is_close(self.stg, 0.0)
    }

    pub fn needs_isolated(&self) -> bool {
        !Self::is_close(self.modality, 1.0)
    }

    /// Combines the predictions; a `None` term was not computed and contributes nothing.
    pub fn combine(
        &self,
        cond: &Tensor,
        uncond: Option<&Tensor>,
        perturbed: Option<&Tensor>,
        isolated: Option<&Tensor>,
    ) -> Result<Tensor> {
        let dtype = cond.dtype();
        let c = cond.to_dtype(DType::F32)?;
        let mut pred = c.clone();
        let terms = [
            (uncond, self.cfg - 1.0),
            (perturbed, self.stg),
            (isolated, self.modality - 1.0),
        ];
        for (other, scale) in terms {
            if let Some(u) = other {
                pred = (pred + ((&c - u.to_dtype(DType::F32)?)? * scale as f64)?)?;
            }
        }
        if self.rescale != 0.0 {
            // The ratio of two stds over the same element count: biased or unbiased gives the same.
            let factor = std(&c)? / std(&pred)?;
            let factor = self.rescale as f64 * factor + (1.0 - self.rescale as f64);
            pred = (pred * factor)?;
        }
        pred.to_dtype(dtype)
    }
}

fn std(t: &Tensor) -> Result<f64> {
    let v = t.flatten_all()?.to_dtype(DType::F64)?;
    let n = v.dim(0)? as f64;
    let mean = (v.sum_all()?.to_scalar::<f64>()?) / n;
    let var = (v - mean)?.sqr()?.sum_all()?.to_scalar::<f64>()? / n;
    Ok(var.sqrt())
}

/// Guidance of both modalities.
#[derive(Debug, Clone, PartialEq)]
pub struct Guidance {
    pub video: GuiderParams,
    pub audio: GuiderParams,
}

impl Guidance {
    pub fn disabled() -> Self {
        Self {
            video: GuiderParams::disabled(),
            audio: GuiderParams::disabled(),
        }
    }

    /// The LTX-2 (19B) dev defaults for one user `guidance_scale`; see
    /// [`crate::params::PipelineParams::guidance`] (other generations have their own defaults).
    pub fn dev(guidance_scale: f32, num_blocks: usize) -> Self {
        crate::params::PipelineParams::for_generation(ltx2_model::generation::Generation::Ltx2)
            .guidance(guidance_scale, num_blocks)
    }

    pub fn needs_unconditional(&self) -> bool {
        self.video.needs_unconditional() || self.audio.needs_unconditional()
    }

    /// Transformer forwards per step.
    pub fn forwards_per_step(&self) -> u32 {
        let any = |f: fn(&GuiderParams) -> bool| u32::from(f(&self.video) || f(&self.audio));
        1 + any(GuiderParams::needs_unconditional)
            + any(GuiderParams::needs_perturbed)
            + any(GuiderParams::needs_isolated)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn cfg_only_matches_the_formula() {
        let d = Device::Cpu;
        let c = Tensor::new(&[1f32, 2.0, 3.0], &d).unwrap();
        let u = Tensor::new(&[0f32, 1.0, 1.0], &d).unwrap();
        let p = GuiderParams {
            cfg: 3.0,
            ..GuiderParams::disabled()
        };
        let out = p
            .combine(&c, Some(&u), None, None)
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        assert_eq!(out, vec![3.0, 4.0, 7.0]);
    }

    #[test]
    fn rescale_one_restores_the_conditional_std() {
        let d = Device::Cpu;
        let c = Tensor::new(&[1f32, -2.0, 3.0, 0.5], &d).unwrap();
        let u = Tensor::new(&[0f32, 1.0, 1.0, 2.0], &d).unwrap();
        let p = GuiderParams {
            cfg: 5.0,
            rescale: 1.0,
            ..GuiderParams::disabled()
        };
        let out = p.combine(&c, Some(&u), None, None).unwrap();
        assert!((std(&out).unwrap() - std(&c).unwrap()).abs() < 1e-5);
    }

    #[test]
    fn pass_counts() {
        assert_eq!(Guidance::disabled().forwards_per_step(), 1);
        assert_eq!(Guidance::dev(1.0, 48).forwards_per_step(), 1);
        assert_eq!(Guidance::dev(3.0, 48).forwards_per_step(), 4);
        assert_eq!(Guidance::dev(3.0, 48).video.stg_blocks, vec![29]);
        assert_eq!(Guidance::dev(3.0, 2).video.stg_blocks, vec![1]);
    }
}
