//! The CUDA dispatch of the model's hot ops (feature `cuda`): each function returns `Ok(Some(y))`
//! when the fast path ran, `Ok(None)` when the caller must run its candle reference (not on
//! CUDA, unsupported dtype or shape, fast path turned off or unavailable). A fast path that fails
//! is recorded once in [`crate::backends`] with its reason and never aborts the request.
//!
//! Switches, read once: `LTX2_CUDNN=0` (attention and conv3d on candle), `LTX2_FUSED_KERNELS=0`
//! (elementwise ops and the FP8 dequantization as candle ops), `LTX2_FP8_GEMM=0` (scaled-mm
//! emulated with f32 GEMMs).

use std::sync::OnceLock;

use candle_core::{DType, Device, Result, Tensor};
use ltx2_cuda::{cudnn, fp8_gemm, kernels};

use crate::backends::{self, BackendReport};
use crate::quantization::Quantization;

/// What the one-time probe of the CUDA paths found.
struct Probe {
    cudnn: std::result::Result<u32, String>,
    kernels: std::result::Result<(), String>,
    cublaslt: std::result::Result<(), String>,
}

fn off(var: &str) -> bool {
    std::env::var(var).as_deref() == Ok("0")
}

fn probe(device: &Device) -> Option<&'static Probe> {
    static PROBE: OnceLock<Probe> = OnceLock::new();
    let Device::Cuda(dev) = device else {
        return None;
    };
    Some(PROBE.get_or_init(|| Probe {
        cudnn: cudnn::init(dev),
        kernels: if off("LTX2_FUSED_KERNELS") {
            Err("turned off by LTX2_FUSED_KERNELS=0".into())
        } else {
            kernels::probe(dev).map_err(|e| format!("loading the fused PTX: {e}"))
        },
        cublaslt: if off("LTX2_FP8_GEMM") {
            Err("turned off by LTX2_FP8_GEMM=0".into())
        } else {
            fp8_gemm::probe(dev).map_err(|e| e.to_string())
        },
    }))
}

fn cudnn_ok(device: &Device) -> bool {
    probe(device).is_some_and(|p| p.cudnn.is_ok())
}

fn kernels_ok(device: &Device) -> bool {
    probe(device).is_some_and(|p| p.kernels.is_ok())
}

fn half_precision(dtype: DType) -> bool {
    matches!(dtype, DType::BF16 | DType::F16)
}

/// The CUDA part of [`backends::report`].
pub(crate) fn fill_report(
    device: &Device,
    dtype: DType,
    quantization: Quantization,
    r: &mut BackendReport,
) {
    let Some(p) = probe(device) else { return };
    match &p.cudnn {
        Ok(v) => {
            r.cudnn = Some(format!("{}.{}.{}", v / 10000, (v / 100) % 100, v % 100));
            r.conv3d = backends::CONV_CUDNN.into();
            if half_precision(dtype) {
                r.attention = backends::ATTENTION_CUDNN.into();
            } else {
                r.fallbacks.insert(
                    "attention".into(),
                    format!("cuDNN SDPA takes bf16/f16; the model runs {dtype:?}"),
                );
            }
        }
        Err(why) => {
            r.fallbacks.insert("cudnn".into(), why.clone());
        }
    }
    match &p.kernels {
        Ok(()) => r.elementwise = backends::ELEMENTWISE_FUSED.into(),
        Err(why) => {
            r.fallbacks.insert("elementwise".into(), why.clone());
        }
    }
    r.fp8_gemm = match (quantization, &p.cublaslt, &p.kernels) {
        (Quantization::Fp8ScaledMm, Ok(()), Ok(())) => "cublaslt-e4m3".into(),
        (Quantization::Fp8ScaledMm, Err(why), _) | (Quantization::Fp8ScaledMm, _, Err(why)) => {
            r.fallbacks.insert("fp8_gemm".into(), why.clone());
            "f32-emulation".into()
        }
        (_, _, Ok(())) => "dequant-kernel".into(),
        (_, _, Err(_)) => "dequant-candle".into(),
    };
}

/// cuDNN SDPA for bf16/f16 q/k/v `(B, L, H·D)` with an optional additive mask broadcastable to
/// `(B, 1, T, S)` (expanded to that shape: cuDNN's bias broadcasts over heads only).
pub fn sdpa(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    heads: usize,
    mask: Option<&Tensor>,
) -> Result<Option<Tensor>> {
    if !q.device().is_cuda() || !half_precision(q.dtype()) || !cudnn_ok(q.device()) {
        return Ok(None);
    }
    let (b, t, inner) = q.dims3()?;
    let s = k.dim(1)?;
    let d = inner / heads.max(1);
    if !d.is_multiple_of(8) || d > 256 || k.dtype() != q.dtype() || v.dtype() != q.dtype() {
        backends::record_fallback(
            "attention",
            format!("head dim {d} / dtypes {:?}: no cuDNN SDPA", k.dtype()),
        );
        return Ok(None);
    }
    let mask = match mask {
        None => None,
        Some(m) if m.rank() == 4 && m.dim(1)? == 1 => {
            let mb = m.dim(0)?;
            Some(
                m.to_dtype(q.dtype())?
                    .broadcast_as((mb, 1, t, s))?
                    .contiguous()?,
            )
        }
        Some(m) => {
            backends::record_fallback(
                "attention",
                format!("mask shape {:?} is not (B, 1, T|1, S)", m.dims()),
            );
            return Ok(None);
        }
    };
    match cudnn::sdpa(q, k, v, heads, mask.as_ref()) {
        Ok(y) => Ok(Some(y)),
        Err(e) => {
            backends::record_fallback(
                "attention",
                format!("q ({b}, {t}, {heads}x{d}), {s} keys: {e}"),
            );
            Ok(None)
        }
    }
}

/// cuDNN 3-D convolution + bias on channels-last copies: `x` `(B, C, T, H, W)` already padded in
/// time (and in space unless `spatial_pad` > 0, which cuDNN zero-pads), `taps[i]` = `W[:, :, i]`.
/// Returns `(B, K, T', H', W')` (a permuted view).
pub fn conv3d(
    x: &Tensor,
    taps: &[Tensor],
    bias: &Tensor,
    spatial_pad: usize,
) -> Result<Option<Tensor>> {
    if !x.device().is_cuda() || !cudnn_ok(x.device()) {
        return Ok(None);
    }
    let run = || -> Result<Tensor> {
        let w = Tensor::stack(taps, 2)?.to_dtype(x.dtype())?; // (K, C, kt, kh, kw)
        let w = w.permute((0, 2, 3, 4, 1))?.contiguous()?;
        let xc = x.permute((0, 2, 3, 4, 1))?.contiguous()?; // (B, T, H, W, C)
        let y = cudnn::conv_bias_channels_last(&xc, &w, bias, &[0, spatial_pad, spatial_pad])?;
        y.permute((0, 4, 1, 2, 3))
    };
    match run() {
        Ok(y) => Ok(Some(y)),
        Err(e) => {
            backends::record_fallback("conv3d", format!("x {:?}: {e}", x.dims()));
            Ok(None)
        }
    }
}

/// Runs a fused kernel when the kernels loaded; a failure is recorded once and answered `None`.
fn fused(device: &Device, op: &str, f: impl FnOnce() -> Result<Tensor>) -> Result<Option<Tensor>> {
    if !device.is_cuda() || !kernels_ok(device) {
        return Ok(None);
    }
    match f() {
        Ok(y) => Ok(Some(y)),
        Err(e) => {
            backends::record_fallback(op, e.to_string());
            Ok(None)
        }
    }
}

/// `rms_norm(x)·(1 + scale) + shift` in one kernel.
pub fn rms_norm_modulate(
    x: &Tensor,
    scale: &Tensor,
    shift: &Tensor,
    eps: f64,
) -> Result<Option<Tensor>> {
    if scale.dtype() != x.dtype() || shift.dtype() != x.dtype() {
        return Ok(None);
    }
    fused(x.device(), "rms_norm_modulate", || {
        kernels::rms_norm_modulate(x, scale, shift, eps as f32)
    })
}

/// `x + y·gate` in one kernel.
pub fn gate_residual(x: &Tensor, y: &Tensor, gate: &Tensor) -> Result<Option<Tensor>> {
    if y.dtype() != x.dtype() || gate.dtype() != x.dtype() {
        return Ok(None);
    }
    fused(x.device(), "gate_residual", || {
        kernels::gate_residual(x, y, gate)
    })
}

/// Split RoPE in one kernel, output in `x`'s `(B, T, H·D)` layout.
pub fn rope_split(x: &Tensor, cos: &Tensor, sin: &Tensor) -> Result<Option<Tensor>> {
    if cos.dtype() != x.dtype() {
        return Ok(None);
    }
    fused(x.device(), "rope", || kernels::rope_split(x, cos, sin))
}

/// Whether FP8 weights are dequantized by the fused kernel (else candle's cast + affine).
pub fn dequantize_kernel_available(device: &Device) -> bool {
    device.is_cuda() && kernels_ok(device)
}

/// ltx-core's scaled-mm on FP8 tensor cores: `x2d` `(tokens, in)` quantized with `input_scale`,
/// times `w` e4m3 `(out, in)`, scaled by `input_scale · weight_scale`, in `x2d`'s dtype.
pub fn fp8_scaled_mm(
    x2d: &Tensor,
    w: &Tensor,
    input_scale: f32,
    weight_scale: f32,
) -> Result<Option<Tensor>> {
    let dev = x2d.device();
    if !dev.is_cuda() || !kernels_ok(dev) || probe(dev).is_none_or(|p| p.cublaslt.is_err()) {
        return Ok(None);
    }
    let run = || -> Result<Tensor> {
        let q = kernels::fp8_quantize(x2d, input_scale)?;
        fp8_gemm::fp8_gemm(&q, w, input_scale * weight_scale, x2d.dtype())
    };
    match run() {
        Ok(y) => Ok(Some(y)),
        Err(e) => {
            backends::record_fallback(
                "fp8_gemm",
                format!("x {:?} w {:?}: {e}", x2d.dims(), w.dims()),
            );
            Ok(None)
        }
    }
}
