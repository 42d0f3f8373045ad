//! The OpenAPI document, generated from the handlers' request/response types.

use utoipa::OpenApi;

use crate::http::{generate, health, info};
use crate::jobs::http as jobs;
use crate::metrics;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "LTX-2 Video Generation API",
        description = "Generate videos with synchronized audio using LTX. Use POST /generate with a JSON body."
    ),
    paths(
        generate::generate,
        health::health,
        info::info,
        jobs::create,
        jobs::status,
        jobs::result_mp4,
        jobs::result_json,
        jobs::delete,
        jobs::events,
        metrics::metrics
    )
)]
pub struct ApiDoc;

/// What this API does with the loaded model, stated with its real generation and audio rate (used
/// by `GET /` and as the OpenAPI document's description).
pub fn description(m: &ltx2_pipeline::ModelInfo) -> String {
    format!(
        "Generates videos with synchronized audio ({} Hz stereo AAC) with the {} model. \
         POST /generate with a JSON body: text-to-video, image-to-video (image_start/image_end) and \
         audio-to-video (audio).",
        m.audio_sample_rate, m.generation
    )
}

/// The OpenAPI document for the loaded model: the generated paths and schemas, with the
/// description naming the model's generation and output audio rate.
pub fn document(m: &ltx2_pipeline::ModelInfo) -> utoipa::openapi::OpenApi {
    let mut doc = ApiDoc::openapi();
    doc.info.description = Some(description(m));
    doc
}
