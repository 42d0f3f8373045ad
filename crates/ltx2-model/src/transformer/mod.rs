//! The LTX-2 audio+video diffusion transformer (`model.diffusion_model.*`).
