//! The LTX-2 audio+video diffusion transformer (`model.diffusion_model.*`), exact to ltx-core 1.0.0.
//!
//! One file per concern: [`config`], [`rope`], [`norm`], [`timestep`] (timestep embedding + AdaLN),
//! [`attention`], [`feed_forward`], [`perturbations`], [`block`], [`model`], [`text`] (the
//! per-request text keys/values). `attention`, `rope`,
//! `norm` and `feed_forward` are general and shared with the text connector.

pub mod attention;
pub mod block;
pub mod config;
pub mod feed_forward;
pub mod fused;
pub mod linears;
pub mod model;
pub mod norm;
pub mod perturbations;
pub mod rope;
pub mod text;
pub mod timestep;

pub use attention::{Attention, AttentionConfig, ContextKv};
pub use config::TransformerConfig;
pub use feed_forward::FeedForward;
pub use model::{to_denoised, LtxModel, Modality};
pub use perturbations::{Blocks, Perturbations};
pub use rope::{Rope, RopeSpec};
pub use text::{StreamText, TextKv};
