//! `ltx2 serve`: load the model, then serve the HTTP API until SIGTERM/Ctrl-C.

use anyhow::Context;
use candle_core::Device;
use ltx2_pipeline::ModelSource;
use ltx2_server::ServerConfig;

#[derive(clap::Args)]
pub struct Args {
    /// Address to listen on.
    #[arg(long, env = "LTX2_HOST", default_value = "0.0.0.0")]
    pub host: String,
    /// Port to listen on.
    #[arg(long, env = "LTX2_PORT", default_value_t = 8000)]
    pub port: u16,
    /// `demo` (tiny random weights: output is noise), a folder with the checkpoint, upsampler and
    /// Gemma, or `hub[:REPO]` to download from the Hugging Face hub.
    #[arg(long, env = "LTX2_MODEL", default_value = "demo")]
    pub model: ModelSource,
    /// `auto` (first CUDA GPU when built with `cuda`, else CPU), `cpu`, or `cuda:N`.
    #[arg(long, env = "LTX2_DEVICE", default_value = "auto")]
    pub device: String,
    #[command(flatten)]
    pub load: ltx2::model::LoadArgs,
    #[command(flatten)]
    pub server: ServerConfig,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,tower_http=info".into()),
        )
        .init();
    // Loaded before binding, so a bad model path fails at startup instead of on the first request.
    let device = parse_device(&args.device)?;
    let generator = ltx2::model::load_model(&args.model, &device, &args.load.options())
        .with_context(|| format!("loading model {:?} on {device:?}", args.model))?;
    let info = generator.info();
    if info.is_demo {
        tracing::warn!("serving the demo model: random weights, videos are noise, not the prompt");
    }
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind((args.host.as_str(), args.port))
            .await
            .with_context(|| format!("binding {}:{}", args.host, args.port))?;
        ltx2_server::serve(listener, generator, args.server).await
    })
}

pub(crate) fn parse_device(spec: &str) -> anyhow::Result<Device> {
    Ok(match spec {
        "auto" => Device::cuda_if_available(0)?,
        "cpu" => Device::Cpu,
        _ => match spec.strip_prefix("cuda").map(|n| n.trim_start_matches(':')) {
            Some("") => Device::new_cuda(0)?,
            Some(n) => Device::new_cuda(
                n.parse()
                    .with_context(|| format!("bad GPU index in --device {spec}"))?,
            )?,
            None => anyhow::bail!("--device must be auto, cpu or cuda[:N], got {spec}"),
        },
    })
}
