//! `--model demo|PATH|hub[:REPO]` to a loaded generator: the hub case is downloaded into the
//! Hugging Face cache first, then loaded like a folder.

use candle_core::Device;
use ltx2_pipeline::{Generator, ModelSource};

use crate::hub::{self, HubConfig};

/// What serve, worker and generate load. Hub sources read their settings from the environment
/// (`HF_ENDPOINT`, `HF_HOME`, `HF_TOKEN`, `LTX2_*`; see docs/DEPLOY.md).
pub fn load_model(source: &ModelSource, device: &Device) -> anyhow::Result<Box<dyn Generator>> {
    let source = match source {
        ModelSource::Hub { repo } => {
            let folder = hub::resolve(&HubConfig::from_env(), repo)?;
            ModelSource::Path(folder)
        }
        other => other.clone(),
    };
    Ok(ltx2_pipeline::load_generator(&source, device)?)
}
