//! LTX-2 generation: sigma schedules, the Euler loop on x0 predictions, image/audio conditioning,
//! the distilled two-stage and dev pipelines, and media in/out (images, audio, MP4).

pub mod api;
pub mod media;

pub use api::*;
