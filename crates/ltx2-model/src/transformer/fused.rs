//! The block's elementwise chains, each one fused CUDA kernel on the GPU (`cuda_ops`) and a chain
//! of candle ops elsewhere. The candle chains (`*_reference`) define the numbers: the kernels
//! round every intermediate the chains store in the activation dtype, and the GPU tests compare
//! against them.

use candle_core::{Result, Tensor};

use super::norm::rms_norm;

/// `normed · (1 + scale) + shift` (AdaLN modulation).
pub fn modulate(normed: &Tensor, scale: &Tensor, shift: &Tensor) -> Result<Tensor> {
    normed.broadcast_mul(&(scale + 1.0)?)?.broadcast_add(shift)
}

/// `modulate(rms_norm(x), scale, shift)`: `x` `(B, T, D)`, `scale`/`shift` `(B, 1|T, D)`.
pub fn rms_norm_modulate(x: &Tensor, scale: &Tensor, shift: &Tensor, eps: f64) -> Result<Tensor> {
    #[cfg(feature = "cuda")]
    if let Some(y) = crate::cuda_ops::rms_norm_modulate(x, scale, shift, eps)? {
        return Ok(y);
    }
    rms_norm_modulate_reference(x, scale, shift, eps)
}

/// [`rms_norm_modulate`] as candle ops.
pub fn rms_norm_modulate_reference(
    x: &Tensor,
    scale: &Tensor,
    shift: &Tensor,
    eps: f64,
) -> Result<Tensor> {
    modulate(&rms_norm(x, None, eps)?, scale, shift)
}

/// The gated residual `x + y · gate`: `x`, `y` `(B, T, D)`, `gate` `(B, 1|T, D)`.
pub fn gate_residual(x: &Tensor, y: &Tensor, gate: &Tensor) -> Result<Tensor> {
    #[cfg(feature = "cuda")]
    if let Some(out) = crate::cuda_ops::gate_residual(x, y, gate)? {
        return Ok(out);
    }
    gate_residual_reference(x, y, gate)
}

/// [`gate_residual`] as candle ops.
pub fn gate_residual_reference(x: &Tensor, y: &Tensor, gate: &Tensor) -> Result<Tensor> {
    x + y.broadcast_mul(gate)?
}
