//! The OpenAPI document, generated from the handlers' request/response types.

use utoipa::OpenApi;

use crate::http::{generate, health, info};
use crate::jobs::http as jobs;
use crate::metrics;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "LTX-2 Video Generation API",
        description = "Generate videos with synchronized audio using LTX-2 19B. Use POST /generate with a JSON body."
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
