//! CUDA fast paths of ltx2, all behind the `cuda` feature (without it this crate is empty):
//!
//! - [`cudnn`]: fused attention (cuDNN SDPA) and channels-last N-d convolution + bias through a
//!   small C++ shim over NVIDIA's header-only cudnn-frontend; libcudnn is dlopen'ed at run time,
//!   so a host without it loses only these two ops.
//! - [`fp8_gemm`]: the E4M3×E4M3 tensor-core GEMM of `--quantization fp8-scaled-mm` (cuBLASLt).
//! - [`kernels`]: fused elementwise kernels (RMSNorm + AdaLN modulation, gate + residual, split
//!   RoPE, FP8 quantize / dequantize) compiled to PTX by the build script.
//!
//! Every entry point returns an error rather than panicking; ltx2-model decides the fallback
//! and reports it (`ltx2_model::backends`).

#[cfg(feature = "cuda")]
pub mod cudnn;
#[cfg(feature = "cuda")]
pub mod fp8_gemm;
#[cfg(feature = "cuda")]
pub mod kernels;

/// Whether this build carries the CUDA paths.
pub const ENABLED: bool = cfg!(feature = "cuda");
