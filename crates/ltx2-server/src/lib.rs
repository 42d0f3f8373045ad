//! HTTP API of the spec (POST /generate, /health, /, /docs), async jobs, metrics, and the RunPod
//! serverless worker, all over one engine thread that owns the device.

pub mod auth;
pub mod config;
pub mod cors;
pub mod engine;
pub mod http;
pub mod jobs;
pub mod media;
pub mod metrics;
pub mod openapi;
pub mod runpod;
pub mod validation;

use std::future::Future;
use std::sync::Arc;

use anyhow::Context;
use ltx2_pipeline::Generator;
use tokio::net::TcpListener;

pub use config::ServerConfig;
pub use engine::EngineHandle;
pub use http::router;

/// What every handler shares.
#[derive(Clone)]
pub struct AppState {
    pub engine: EngineHandle,
    pub config: Arc<ServerConfig>,
    pub jobs: Arc<jobs::JobStore>,
    pub http_metrics: Arc<metrics::HttpMetrics>,
    pub auth: auth::ApiKeys,
    pub cors: cors::CorsOrigins,
}

impl AppState {
    /// Fails on an unreadable key file or a malformed `--cors-origin`.
    pub fn new(engine: EngineHandle, config: ServerConfig) -> anyhow::Result<Self> {
        Ok(Self {
            auth: auth::ApiKeys::from_config(&config)?,
            cors: cors::CorsOrigins::parse(&config.cors_origins)?,
            jobs: Arc::new(jobs::JobStore::new(
                std::time::Duration::from_secs(config.job_ttl_secs),
                config.max_jobs,
            )),
            engine,
            config: Arc::new(config),
            http_metrics: Arc::default(),
        })
    }

    /// The request limits for the loaded model.
    pub fn limits(&self) -> validation::Limits {
        self.config.limits(self.engine.info())
    }
}

/// Serves the API on `listener` until SIGTERM or Ctrl-C, then finishes in-flight requests and
/// stops the engine thread.
pub async fn serve(
    listener: TcpListener,
    generator: Box<dyn Generator>,
    config: ServerConfig,
) -> anyhow::Result<()> {
    serve_with_shutdown(listener, generator, config, shutdown_signal()).await
}

/// [`serve`] with a caller-chosen shutdown trigger (tests).
pub async fn serve_with_shutdown(
    listener: TcpListener,
    generator: Box<dyn Generator>,
    config: ServerConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    // Settings first: a bad key file or origin fails before the engine thread starts.
    let auth = auth::ApiKeys::from_config(&config)?;
    cors::CorsOrigins::parse(&config.cors_origins)?;
    let (engine, join) =
        engine::spawn(generator, config.queue_capacity).context("starting the engine thread")?;
    let info = engine.info().clone();
    let addr = listener.local_addr()?;
    tracing::info!(%addr, model = %info.name, demo = info.is_demo, device = %info.device, "serving");
    if auth.is_open() {
        tracing::warn!(%addr, "no API key configured: anyone who can reach this port can generate (set --api-key, LTX2_API_KEYS or --api-key-file)");
    } else {
        tracing::info!(
            keys = auth.len(),
            protect_docs = config.protect_docs,
            "API keys required (Authorization: Bearer) on every route but GET /health{}",
            if config.protect_docs {
                ""
            } else {
                ", /docs and /openapi.json"
            }
        );
    }
    if config.cors_origins.is_empty() {
        tracing::info!(
            "CORS closed: browsers on other origins cannot call this API (--cors-origin)"
        );
    } else {
        tracing::info!(origins = ?config.cors_origins, "CORS open to these origins");
    }
    let app = router(AppState::new(engine, config)?);
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
        .context("HTTP server")?;
    // The router (and every engine handle in it) is gone: the queue is closed, the thread ends
    // after its current job.
    tokio::task::spawn_blocking(move || join.join())
        .await?
        .map_err(|_| anyhow::anyhow!("engine thread panicked"))?;
    tracing::info!("shut down");
    Ok(())
}

/// Resolves on SIGTERM or Ctrl-C.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::error!(%e, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::error!(%e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => tracing::info!("Ctrl-C: shutting down"),
        _ = terminate => tracing::info!("SIGTERM: shutting down"),
    }
}
