//! The LTX-2 audio+video diffusion transformer (`model.diffusion_model.*`), exact to ltx-core 1.0.0.
//!
//! One file per concern: [`config`], [`rope`], [`norm`], [`timestep`] (timestep embedding + AdaLN),
//! [`attention`], [`feed_forward`], [`block`], [`model`]. `attention`, `rope`, `norm` and
//! `feed_forward` are general and shared with the text connector.

pub mod attention;
pub mod config;
pub mod feed_forward;
pub mod norm;
pub mod rope;

pub use attention::{Attention, AttentionConfig};
pub use config::TransformerConfig;
pub use feed_forward::FeedForward;
pub use rope::{Rope, RopeSpec};
