//! LTX-2 generation: sigma schedules, the Euler loop on x0 predictions, image/audio conditioning,
//! the distilled two-stage and dev pipelines, and media in/out (images, audio, MP4).

pub mod api;
pub mod bench;
pub mod components;
pub mod conditioning;
pub mod demo;
pub mod denoise;
pub mod engine;
pub mod guidance;
pub mod latents;
pub mod loras;
pub mod media;
pub mod model_files;
pub mod noise;
pub mod params;
pub mod pipelines;
pub mod preprocess;
pub mod schedule;
pub mod stage;

pub use api::*;
pub use engine::{load_generator, load_generator_with, LoadOptions};
