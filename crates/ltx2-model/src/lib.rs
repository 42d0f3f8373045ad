//! LTX-2 model components in candle, named after the official checkpoint keys.
//!
//! Each component has a `Config`, a `new(cfg, vb)` that loads it from a `VarBuilder` rooted at the
//! component's checkpoint prefix, and a `forward`. Sampling and media live in `ltx2-pipeline`.

pub mod alloc_meter;
pub mod audio_vae;
pub mod backends;
pub mod checkpoint;
#[cfg(feature = "cuda")]
pub mod cuda_ops;
pub mod duration_head;
pub mod fp8;
pub mod generation;
pub mod golden;
pub mod linear;
pub mod lora;
pub mod memory;
pub mod quantization;
pub mod text;
pub mod transformer;
pub mod upsampler;
pub mod video_vae;
pub mod vocoder;
