//! Which implementation each hot op runs on, and why a fallback was taken: what the start-up log,
//! `GET /` and `ltx2 bench` report.
//!
//! The static part comes from the device, the dtype and a one-time probe of the CUDA paths
//! (libcudnn loadable, fused PTX loadable, cuBLASLt handle); the dynamic part is every run-time
//! fallback (e.g. a shape cuDNN has no plan for), recorded once per op by [`record_fallback`]
//! and logged once.

use std::collections::BTreeMap;
use std::sync::Mutex;

use candle_core::{DType, Device};
use serde::Serialize;

use crate::quantization::Quantization;

/// Attention: cuDNN's fused SDPA.
pub const ATTENTION_CUDNN: &str = "cudnn-sdpa";
/// Attention: the chunked matmul-softmax-matmul of `transformer::attention` (the reference).
pub const ATTENTION_CHUNKED: &str = "chunked";
/// VAE conv3d: cuDNN's N-d convolution (channels-last, bias fused).
pub const CONV_CUDNN: &str = "cudnn";
/// VAE conv3d: candle's conv2d per time tap on the GPU (im2col + GEMM).
pub const CONV_CANDLE: &str = "candle";
/// VAE conv3d: candle's conv2d per time tap on the CPU.
pub const CONV_CANDLE_CPU: &str = "candle-cpu";
/// RMSNorm+modulate, gate+residual, RoPE: one CUDA kernel each.
pub const ELEMENTWISE_FUSED: &str = "fused-cuda";
/// The same as chains of candle ops (the reference).
pub const ELEMENTWISE_CANDLE: &str = "candle";

/// What the loaded model runs on.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct BackendReport {
    /// [`ATTENTION_CUDNN`] or [`ATTENTION_CHUNKED`].
    pub attention: String,
    /// [`CONV_CUDNN`], [`CONV_CANDLE`] or [`CONV_CANDLE_CPU`].
    pub conv3d: String,
    /// [`ELEMENTWISE_FUSED`] or [`ELEMENTWISE_CANDLE`].
    pub elementwise: String,
    /// `--quantization`: none, fp8-cast or fp8-scaled-mm.
    pub fp8_mode: String,
    /// How FP8-resident layers multiply: `cublaslt-e4m3` (FP8 tensor cores), `f32-emulation`
    /// (scaled-mm numerics with f32 GEMMs), `dequant-kernel` / `dequant-candle` / `dequant-cpu`
    /// (weight dequantized per layer, then a dense GEMM).
    pub fp8_gemm: String,
    /// The cuDNN library version in use, e.g. `9.13.0`.
    pub cudnn: Option<String>,
    /// Op → why it runs on its fallback (probe failures, wrong dtype, shapes without a plan).
    pub fallbacks: BTreeMap<String, String>,
}

impl BackendReport {
    /// This report plus the run-time fallbacks recorded since it was made.
    pub fn with_runtime_fallbacks(&self) -> Self {
        let mut r = self.clone();
        for (op, why) in runtime_fallbacks() {
            r.fallbacks.entry(op).or_insert(why);
        }
        r
    }

    /// One line for the start-up log.
    pub fn summary(&self) -> String {
        let mut s = format!(
            "attention={} conv3d={} elementwise={} fp8_mode={} fp8_gemm={} cudnn={}",
            self.attention,
            self.conv3d,
            self.elementwise,
            self.fp8_mode,
            self.fp8_gemm,
            self.cudnn.as_deref().unwrap_or("none"),
        );
        for (op, why) in &self.fallbacks {
            s.push_str(&format!("; {op} fallback: {why}"));
        }
        s
    }
}

static RUNTIME: Mutex<BTreeMap<String, String>> = Mutex::new(BTreeMap::new());

/// Records (and logs, the first time per op) that `op` took its fallback because of `why`.
pub fn record_fallback(op: &str, why: impl Into<String>) {
    let mut m = RUNTIME.lock().unwrap_or_else(|p| p.into_inner());
    if !m.contains_key(op) {
        let why = why.into();
        tracing::warn!(op, reason = %why, "CUDA fast path unavailable, using the fallback");
        m.insert(op.to_string(), why);
    }
}

/// The run-time fallbacks recorded so far.
pub fn runtime_fallbacks() -> BTreeMap<String, String> {
    RUNTIME.lock().unwrap_or_else(|p| p.into_inner()).clone()
}

/// What `device` runs for a model in `dtype` under `quantization`. On CUDA this probes the fast
/// paths once (loading libcudnn, the fused PTX and a cuBLASLt handle).
pub fn report(device: &Device, dtype: DType, quantization: Quantization) -> BackendReport {
    let mut r = BackendReport {
        attention: ATTENTION_CHUNKED.into(),
        conv3d: CONV_CANDLE_CPU.into(),
        elementwise: ELEMENTWISE_CANDLE.into(),
        fp8_mode: quantization.name().into(),
        fp8_gemm: match quantization {
            Quantization::Fp8ScaledMm => "f32-emulation".into(),
            _ => "dequant-cpu".into(),
        },
        cudnn: None,
        fallbacks: BTreeMap::new(),
    };
    if !device.is_cuda() {
        return r;
    }
    r.conv3d = CONV_CANDLE.into();
    r.fp8_gemm = match quantization {
        Quantization::Fp8ScaledMm => "f32-emulation".into(),
        _ => "dequant-candle".into(),
    };
    #[cfg(feature = "cuda")]
    crate::cuda_ops::fill_report(device, dtype, quantization, &mut r);
    #[cfg(not(feature = "cuda"))]
    let _ = dtype;
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_reports_the_reference_paths() {
        let r = report(&Device::Cpu, DType::F32, Quantization::None);
        assert_eq!(r.attention, "chunked");
        assert_eq!(r.conv3d, "candle-cpu");
        assert_eq!(r.elementwise, "candle");
        assert_eq!(r.fp8_mode, "none");
        assert_eq!(r.fp8_gemm, "dequant-cpu");
        assert_eq!(r.cudnn, None);
        let s = report(&Device::Cpu, DType::BF16, Quantization::Fp8ScaledMm);
        assert_eq!(s.fp8_mode, "fp8-scaled-mm");
        assert_eq!(s.fp8_gemm, "f32-emulation");
        assert!(r
            .summary()
            .starts_with("attention=chunked conv3d=candle-cpu"));
    }

    #[test]
    fn runtime_fallbacks_are_kept_once_and_merged() {
        record_fallback("test-op", "first reason");
        record_fallback("test-op", "second reason");
        let r = BackendReport::default().with_runtime_fallbacks();
        assert_eq!(r.fallbacks["test-op"], "first reason");
    }
}
