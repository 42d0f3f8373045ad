//! The GPU check's tests in one binary (`scripts/gpu/check.sh`): a CUDA build links candle, its
//! PTX and our kernels into every test binary, and the device call carries ~9 MiB beside the
//! tree, so the four suites it runs travel as one executable. Each module is the unchanged test
//! file (filter with `cuda_ops::`, `transformer_parity::`, ...); without the `cuda` feature the
//! binary is empty, so the CPU suite runs each file once, as its own target.
#![cfg(feature = "cuda")]

#[path = "cuda_ops.rs"]
mod cuda_ops;
#[path = "fp8.rs"]
mod fp8;
#[path = "transformer_parity.rs"]
mod transformer_parity;
#[path = "video_vae_parity.rs"]
mod video_vae_parity;
