//! GET /loras: the LoRAs of the server's LoRA folder a request may name, read from their headers
//! (nothing is loaded), with whether each fits the loaded transformer.

use axum::extract::State;
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;

use crate::AppState;

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct LorasResponse {
    /// Whether requests may carry `loras` (the server was started with `--lora-dir`).
    pub enabled: bool,
    pub loras: Vec<LoraEntry>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct LoraEntry {
    /// What a request's `loras[].name` says.
    #[schema(example = "my-style")]
    pub name: String,
    /// Largest rank of its modules.
    pub rank: Option<usize>,
    /// Stored dtype(s) of its weights.
    pub dtype: Option<String>,
    /// Module kinds it adapts (`attn1.to_q`, `ff.net.0.proj`, `proj_out`, ...).
    pub targets: Vec<String>,
    /// Number of modules it adapts.
    pub modules: usize,
    /// Generations whose layout it targets ("any", or "LTX-2.3, LTX-2.5" when it adapts
    /// modules only they have).
    pub generations: String,
    /// Whether every module it adapts exists in the loaded transformer with its shape.
    pub fits_loaded_model: bool,
    /// Why it cannot be used, when it cannot.
    pub error: Option<String>,
    /// Its safetensors metadata (e.g. an IC-LoRA's `reference_downscale_factor`).
    pub metadata: std::collections::BTreeMap<String, String>,
}

/// The LoRA folder's files.
#[utoipa::path(get, path = "/loras", responses((status = 200, body = LorasResponse)))]
pub async fn loras(State(state): State<AppState>) -> Json<LorasResponse> {
    let info = state.engine.info().clone();
    let Some(dir) = info.lora_dir.clone() else {
        return Json(LorasResponse {
            enabled: false,
            loras: vec![],
        });
    };
    // Header reads of a folder: off the async threads.
    let listing = tokio::task::spawn_blocking(move || {
        ltx2_pipeline::loras::LoraCatalog::new(&dir)
            .map(|c| c.list(info.transformer_file.as_deref()))
            .unwrap_or_default()
    })
    .await
    .unwrap_or_default();
    Json(LorasResponse {
        enabled: true,
        loras: listing
            .into_iter()
            .map(|l| LoraEntry {
                name: l.name,
                rank: l.summary.as_ref().map(|s| s.rank),
                dtype: l.summary.as_ref().map(|s| s.dtype.clone()),
                targets: l
                    .summary
                    .as_ref()
                    .map(|s| s.targets.iter().cloned().collect())
                    .unwrap_or_default(),
                modules: l.summary.as_ref().map_or(0, |s| s.modules.len()),
                generations: l.generations.to_string(),
                fits_loaded_model: l.fits_loaded_model,
                error: l.error,
                metadata: l
                    .summary
                    .map(|s| s.metadata.into_iter().collect())
                    .unwrap_or_default(),
            })
            .collect(),
    })
}
