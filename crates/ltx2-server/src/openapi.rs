//! The OpenAPI document, generated from the handlers' request/response types.

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::OpenApi;

use crate::http::{generate, health, info, loras};
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
        loras::loras,
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
    let auto = if m.auto_duration {
        " This model chooses the clip length itself with num_frames: \"auto\" (bounded by \
         min_duration_seconds / max_duration_seconds)."
    } else {
        ""
    };
    format!(
        "Generates videos with synchronized audio ({} Hz stereo AAC) with the {} model. \
         POST /generate with a JSON body: text-to-video, image-to-video (image_start/image_end), \
         keyframes at any frame (keyframes), audio-to-video (audio, audio_start_seconds), a clip \
         (video, an MP4) to retake (retake: a time span of video, audio or both) or extend \
         (extend), and IC-LoRA control (control_video with an IC-LoRA in loras).{auto}",
        m.audio_sample_rate, m.generation
    )
}

/// Name of the bearer scheme in the document.
pub const BEARER_SCHEME: &str = "bearer_auth";

/// The OpenAPI document for the loaded model: the generated paths and schemas, with the
/// description naming the model's generation and output audio rate. The bearer scheme is always
/// declared (Swagger's "Authorize" button); with `keys_required` every operation but
/// `GET /health` requires it.
pub fn document(m: &ltx2_pipeline::ModelInfo, keys_required: bool) -> utoipa::openapi::OpenApi {
    let mut doc = ApiDoc::openapi();
    doc.info.description = Some(description(m));
    let scheme = HttpBuilder::new()
        .scheme(HttpAuthScheme::Bearer)
        .description(Some(
            "An API key configured with --api-key / LTX2_API_KEYS / --api-key-file, sent as `Authorization: Bearer <key>`.",
        ))
        .build();
    doc.components
        .get_or_insert_with(Default::default)
        .add_security_scheme(BEARER_SCHEME, SecurityScheme::Http(scheme));
    if keys_required {
        doc.security = Some(vec![SecurityRequirement::new(
            BEARER_SCHEME,
            Vec::<String>::new(),
        )]);
        // An empty requirement: this operation needs nothing.
        if let Some(get) = doc
            .paths
            .paths
            .get_mut("/health")
            .and_then(|p| p.get.as_mut())
        {
            get.security = Some(vec![SecurityRequirement::default()]);
        }
    }
    doc
}
