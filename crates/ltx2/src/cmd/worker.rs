//! `ltx2 worker`: the RunPod serverless worker (and the SDK's local modes) over one engine.
//!
//! Mode, like runpod-python: `--rp_serve_api` serves the local test API; `--test_input` runs one
//! job and exits 0/1; with `RUNPOD_WEBHOOK_GET_JOB` set it works for RunPod until SIGTERM;
//! otherwise `./test_input.json` is run when present.

use std::fmt;
use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use ltx2_pipeline::ModelSource;
use ltx2_server::runpod::{local, run_worker, Handler, RunpodConfig};
use ltx2_server::ServerConfig;
use serde_json::Value;
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, FormattedFields};
use tracing_subscriber::registry::LookupSpan;

#[derive(clap::Args)]
pub struct Args {
    /// `demo` (tiny random weights: output is noise), a folder with the checkpoint, upsampler and
    /// Gemma, or `hub[:REPO]` to download from the Hugging Face hub.
    #[arg(long, env = "LTX2_MODEL", default_value = "demo")]
    pub model: ModelSource,
    /// `auto` (first CUDA GPU when built with `cuda`, else CPU), `cpu`, or `cuda:N`.
    #[arg(long, env = "LTX2_DEVICE", default_value = "auto")]
    pub device: String,
    #[command(flatten)]
    pub load: ltx2::model::LoadArgs,
    /// Run this job document (`{"input": {...}}`, the input being a POST /generate body) once,
    /// print the result and exit 0 (completed) or 1 (failed).
    #[arg(long = "test_input", value_name = "JSON")]
    pub test_input: Option<String>,
    /// Serve RunPod's local test API (POST /run, POST /runsync, GET|POST /status/{id}).
    #[arg(long = "rp_serve_api")]
    pub rp_serve_api: bool,
    #[arg(long = "rp_api_host", default_value = "localhost")]
    pub rp_api_host: String,
    #[arg(long = "rp_api_port", default_value_t = 8000)]
    pub rp_api_port: u16,
    /// Log level (also `RUNPOD_LOG_LEVEL`); `RUST_LOG` overrides it.
    #[arg(
        long = "rp_log_level",
        env = "RUNPOD_LOG_LEVEL",
        default_value = "info"
    )]
    pub rp_log_level: String,
    #[command(flatten)]
    pub server: ServerConfig,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let runpod = RunpodConfig::from_env()?;
    init_logging(
        &args.rp_log_level,
        std::env::var("RUNPOD_ENDPOINT_ID").is_ok_and(|v| !v.is_empty()),
    );
    let test_input = match (&args.test_input, &runpod, args.rp_serve_api) {
        (Some(json), _, _) => Some(json.clone()),
        (None, None, false) if Path::new("test_input.json").exists() => {
            tracing::info!("local mode: running ./test_input.json");
            Some(std::fs::read_to_string("test_input.json").context("reading test_input.json")?)
        }
        _ => None,
    };
    if test_input.is_none() && runpod.is_none() && !args.rp_serve_api {
        anyhow::bail!(
            "RUNPOD_WEBHOOK_GET_JOB is not set and there is no test input: run inside RunPod, \
             or pass --test_input '{{\"input\": {{...}}}}', --rp_serve_api, or add ./test_input.json"
        );
    }
    let document: Option<Value> = test_input
        .map(|t| serde_json::from_str(&t).context("test input is not JSON"))
        .transpose()?;

    // Loaded before taking jobs, so a bad model fails the worker at start, not every job.
    let device = super::serve::parse_device(&args.device)?;
    let generator = ltx2::model::load_model(&args.model, &device, &args.load.options())
        .with_context(|| format!("loading model {:?} on {device:?}", args.model))?;
    if generator.info().is_demo {
        tracing::warn!("demo model: random weights, videos are noise, not the prompt");
    }
    let (engine, engine_thread) = ltx2_server::engine::spawn(generator, args.server.queue_capacity)
        .context("starting the engine thread")?;
    if !args.server.api_keys.is_empty() || args.server.api_key_file.is_some() {
        // RunPod authenticates callers of the endpoint; the worker only talks to RunPod.
        tracing::warn!("--api-key / --api-key-file are ignored by the worker: RunPod authenticates endpoint callers");
    }
    let limits = args.server.limits(engine.info());
    let handler = Handler {
        engine,
        limits,
        worker_id: runpod
            .as_ref()
            .map_or_else(|| "local".to_string(), |r| r.pod_id.clone()),
    };

    let runtime = tokio::runtime::Runtime::new()?;
    let outcome = runtime.block_on(async move {
        if args.rp_serve_api {
            let addr = (args.rp_api_host.as_str(), args.rp_api_port);
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("binding {}:{}", args.rp_api_host, args.rp_api_port))?;
            tracing::info!(addr = %listener.local_addr()?, "RunPod local test API");
            let app = local::local_api_router(
                handler,
                Duration::from_secs(args.server.job_ttl_secs),
                args.server.max_jobs,
            );
            local::serve_local_api(listener, app, ltx2_server::shutdown_signal()).await
        } else if let Some(document) = document {
            let (ok, result) = local::run_test_input(&handler, document).await;
            println!("{result}");
            if ok {
                Ok(())
            } else {
                anyhow::bail!("the test job failed")
            }
        } else {
            let config = runpod.expect("checked above");
            run_worker(handler, config, ltx2_server::shutdown_signal())
                .await
                .map(|_| ())
        }
    });
    // Every engine handle is gone with the runtime's tasks: the engine thread ends.
    drop(runtime);
    let _ = engine_thread.join();
    outcome
}

fn init_logging(level: &str, json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level.to_lowercase()));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        // Plain text: the span fields are parsed back for `request_id` and RunPod shows raw text.
        .with_ansi(false)
        .event_format(RunpodFormat { json })
        // stdout carries only a --test_input result; RunPod collects both streams.
        .with_writer(std::io::stderr)
        .init();
}

/// RunPod's log lines: `{"requestId", "message", "level"}` JSON when `RUNPOD_ENDPOINT_ID` is set
/// (what the RunPod console parses), else `LEVEL  | [request id | ] message`.
struct RunpodFormat {
    json: bool,
}

#[derive(Default)]
struct Fields {
    message: String,
    request_id: Option<String>,
    rest: Vec<String>,
}

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        match field.name() {
            "message" => self.message = format!("{value:?}"),
            "request_id" => self.request_id = Some(format!("{value:?}")),
            name => self.rest.push(format!("{name}={value:?}")),
        }
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        match field.name() {
            "message" => self.message = value.to_string(),
            "request_id" => self.request_id = Some(value.to_string()),
            name => self.rest.push(format!("{name}={value}")),
        }
    }
}

impl<S, N> FormatEvent<S, N> for RunpodFormat
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let mut fields = Fields::default();
        event.record(&mut fields);
        // The job span (`request_id = ...`) of the worker loop names the request.
        if fields.request_id.is_none() {
            if let Some(scope) = ctx.event_scope() {
                for span in scope.from_root() {
                    let ext = span.extensions();
                    let Some(f) = ext.get::<FormattedFields<N>>() else {
                        continue;
                    };
                    if let Some(v) = f
                        .fields
                        .split_whitespace()
                        .find_map(|kv| kv.strip_prefix("request_id="))
                    {
                        fields.request_id = Some(v.trim_matches('"').to_string());
                    }
                }
            }
        }
        let mut message = fields.message;
        if !fields.rest.is_empty() {
            message = format!("{message} {}", fields.rest.join(" "));
        }
        let level = event.metadata().level().as_str();
        if self.json {
            let line = serde_json::json!({
                "requestId": fields.request_id,
                "message": message,
                "level": level,
            });
            writeln!(writer, "{line}")
        } else {
            match fields.request_id {
                Some(id) => writeln!(writer, "{level:<7}| {id} | {message}"),
                None => writeln!(writer, "{level:<7}| {message}"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::sync::{Arc, Mutex};

    use super::RunpodFormat;

    #[derive(Clone, Default)]
    struct Buf(Arc<Mutex<Vec<u8>>>);

    impl Write for Buf {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn capture(json: bool) -> String {
        let buf = Buf::default();
        let out = buf.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_ansi(false)
            .event_format(RunpodFormat { json })
            .with_writer(move || out.clone())
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            tracing::info!("worker started");
            let span = tracing::info_span!("job", request_id = %"job-42");
            let _e = span.enter();
            tracing::warn!(field = "width", "job failed");
        });
        let bytes = buf.0.lock().unwrap().clone();
        String::from_utf8(bytes).unwrap()
    }

    #[test]
    fn json_lines_carry_the_request_id() {
        let text = capture(true);
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(
            lines[0],
            serde_json::json!({"requestId": null, "message": "worker started", "level": "INFO"})
        );
        assert_eq!(lines[1]["requestId"], "job-42");
        assert_eq!(lines[1]["level"], "WARN");
        assert_eq!(lines[1]["message"], "job failed field=width");
    }

    #[test]
    fn plain_lines_are_level_bar_message() {
        let text = capture(false);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "INFO   | worker started");
        assert_eq!(lines[1], "WARN   | job-42 | job failed field=width");
    }
}
