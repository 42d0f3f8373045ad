//! `--model hub`: the resolver against a fake Hugging Face hub on loopback serving the tiny golden
//! weights under the official file names, with the requests hf-hub 0.4 really makes (a
//! `Range: bytes=0-0` metadata GET reading `x-repo-commit`, `etag` and `content-range`, then a
//! ranged download). The config is passed explicitly, so no test sets an environment variable.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::body::Body;
use axum::http::{header, HeaderMap, StatusCode, Uri};
use axum::response::Response;
use ltx2::hub::{self, HubConfig, HubError};
use ltx2_pipeline::{load_generator, ModelSource};

const LTX_REPO: &str = "Lightricks/LTX-2";

fn golden_weights() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata/golden/weights")
}

fn golden23_weights() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata/golden-2.3/weights")
}

/// URL path (`/{repo}/resolve/main/{file}`) → file bytes; `status` overrides every answer.
/// Like the real hub, `.safetensors` (LFS) files are answered with a 302 carrying the commit and
/// `x-linked-etag`, to an absolute URL (the CDN, here `/lfs/...` on the same server) that serves
/// the bytes.
struct FakeHub {
    files: HashMap<String, Vec<u8>>,
    /// With the `X-Error-Code` header the real hub sends with it.
    status: Option<(StatusCode, &'static str)>,
}

const COMMIT: &str = "0123456789abcdef0123456789abcdef01234567";

fn resolve_path(repo: &str, file: &str) -> String {
    format!("/{repo}/resolve/main/{file}")
}

/// The official layout: the golden FP8 checkpoint and upsampler under the release names, the
/// golden Gemma folder (the files the resolver asks for, and the shards its index names) under
/// the Gemma repo.
fn official_files(gemma_repo: &str) -> HashMap<String, Vec<u8>> {
    let w = golden_weights();
    let mut files = HashMap::new();
    files.insert(
        resolve_path(LTX_REPO, hub::DEFAULT_CHECKPOINT_FILE),
        std::fs::read(w.join("model_fp8.safetensors")).unwrap(),
    );
    files.insert(
        resolve_path(LTX_REPO, hub::DEFAULT_UPSAMPLER_FILE),
        std::fs::read(w.join("upsampler.safetensors")).unwrap(),
    );
    add_gemma(&mut files, &w, gemma_repo);
    files
}

/// The LTX-2.3 release layout (`Lightricks/LTX-2.3`): the tiny 2.3 checkpoint and v1.1 upscaler
/// under the 2.3 release names, and the same Gemma repo.
fn official_files_23(gemma_repo: &str) -> HashMap<String, Vec<u8>> {
    let w = golden23_weights();
    let mut files = HashMap::new();
    files.insert(
        resolve_path(hub::LTX23_REPO, hub::LTX23_CHECKPOINT_FILE),
        std::fs::read(w.join("model.safetensors")).unwrap(),
    );
    files.insert(
        resolve_path(hub::LTX23_REPO, hub::LTX23_UPSAMPLER_FILE),
        std::fs::read(w.join("upsampler.safetensors")).unwrap(),
    );
    add_gemma(&mut files, &w, gemma_repo);
    files
}

/// The LTX-2.5 split release (`Lightricks/LTX-2.5`): the 2.5 golden set's component files under
/// their repo paths (sub-folders included); no Gemma repo.
fn official_files_25() -> HashMap<String, Vec<u8>> {
    let w = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata/golden-2.5/weights");
    [
        hub::LTX25_TRANSFORMER_FILE,
        hub::LTX25_TEXT_ENCODER_FILE,
        hub::LTX25_VIDEO_VAE_FILE,
        hub::LTX25_VIDEO_VAE_CONV_FILE,
        hub::LTX25_AUDIO_VAE_FILE,
        hub::LTX25_UPSAMPLER_FILE,
        hub::LTX25_DURATION_HEAD_FILE,
    ]
    .into_iter()
    .map(|f| {
        (
            resolve_path(hub::LTX25_REPO, f),
            std::fs::read(w.join(f)).unwrap(),
        )
    })
    .collect()
}

fn add_gemma(files: &mut HashMap<String, Vec<u8>>, w: &Path, gemma_repo: &str) {
    for e in std::fs::read_dir(w.join("gemma")).unwrap() {
        let p = e.unwrap().path();
        let name = p.file_name().unwrap().to_string_lossy().to_string();
        files.insert(resolve_path(gemma_repo, &name), std::fs::read(&p).unwrap());
    }
}

async fn answer(hub: Arc<FakeHub>, base: String, uri: Uri, headers: HeaderMap) -> Response {
    let reply = |status: StatusCode| Response::builder().status(status);
    if let Some((status, code)) = hub.status {
        return reply(status)
            .header("x-error-code", code)
            .body(Body::empty())
            .unwrap();
    }
    let (path, from_cdn) = match uri.path().strip_prefix("/lfs") {
        Some(p) => (p, true),
        None => (uri.path(), false),
    };
    let Some(bytes) = hub.files.get(path) else {
        return reply(StatusCode::NOT_FOUND)
            .header("x-error-code", "EntryNotFound")
            .body(Body::empty())
            .unwrap();
    };
    let mut h = std::collections::hash_map::DefaultHasher::new();
    bytes.hash(&mut h);
    let etag = format!("\"{:016x}{:08x}\"", h.finish(), bytes.len());
    if path.ends_with(".safetensors") && !from_cdn {
        return reply(StatusCode::FOUND)
            .header("x-repo-commit", COMMIT)
            .header("x-linked-etag", etag)
            .header(header::ETAG, "\"pointer\"")
            .header(header::LOCATION, format!("{base}/lfs{path}"))
            .body(Body::empty())
            .unwrap();
    }
    let start: usize = headers
        .get(header::RANGE)
        .and_then(|r| r.to_str().ok())
        .and_then(|r| r.strip_prefix("bytes="))
        .and_then(|r| r.split('-').next())
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let end = if headers
        .get(header::RANGE)
        .is_some_and(|r| r.as_bytes() == b"bytes=0-0")
    {
        1
    } else {
        bytes.len()
    };
    let start = start.min(end);
    reply(StatusCode::PARTIAL_CONTENT)
        .header("x-repo-commit", COMMIT)
        .header(header::ETAG, etag)
        .header(
            header::CONTENT_RANGE,
            format!("bytes {start}-{}/{}", end.saturating_sub(1), bytes.len()),
        )
        .body(Body::from(bytes[start..end].to_vec()))
        .unwrap()
}

/// Serves `hub` on 127.0.0.1:0 from a background runtime; returns the endpoint URL.
fn serve(hub: FakeHub) -> String {
    let hub = Arc::new(hub);
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let addr = listener.local_addr().unwrap();
    let base = format!("http://{addr}");
    let endpoint = base.clone();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let app = axum::Router::new().fallback(move |uri: Uri, headers: HeaderMap| {
                answer(hub.clone(), base.clone(), uri, headers)
            });
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            axum::serve(listener, app).await.unwrap();
        });
    });
    endpoint
}

fn temp_home(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("ltx2-hub-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// What `HubConfig::from_env` gives with `HF_HOME=home` and `HF_ENDPOINT=endpoint`, quiet.
fn config(endpoint: &str, home: &Path) -> HubConfig {
    let (endpoint, home) = (endpoint.to_string(), home.to_string_lossy().to_string());
    let mut cfg = HubConfig::from_vars(|k| match k {
        "HF_ENDPOINT" => Some(endpoint.clone()),
        "HF_HOME" => Some(home.clone()),
        _ => None,
    });
    cfg.progress = false;
    cfg.retries = 0;
    cfg
}

#[test]
fn hub_download_builds_a_loadable_model_folder() -> anyhow::Result<()> {
    let home = temp_home("ok");
    let endpoint = serve(FakeHub {
        files: official_files(hub::DEFAULT_GEMMA_REPO),
        status: None,
    });
    let cfg = config(&endpoint, &home);
    let folder = hub::resolve(&cfg, LTX_REPO)?;
    assert!(folder.starts_with(&home), "{}", folder.display());

    // Downloaded into the standard cache layout, byte for byte.
    let blob = std::fs::read(folder.join(hub::DEFAULT_CHECKPOINT_FILE))?;
    assert_eq!(
        blob,
        std::fs::read(golden_weights().join("model_fp8.safetensors"))?
    );
    // Stored under the LFS `x-linked-etag` (the content), not the pointer's own etag.
    let target = std::fs::canonicalize(folder.join(hub::DEFAULT_CHECKPOINT_FILE))?;
    assert_ne!(target.file_name().unwrap(), "pointer");
    let cached = home
        .join("hub/models--Lightricks--LTX-2/snapshots")
        .read_dir()?
        .count();
    assert_eq!(cached, 1);
    for shard in hub::index_shards(&golden_weights().join("gemma/model.safetensors.index.json"))
        .map_err(anyhow::Error::msg)?
    {
        assert!(folder.join("gemma").join(&shard).is_file(), "{shard}");
    }

    let g = load_generator(
        &ModelSource::Path(folder.clone()),
        &candle_core::Device::Cpu,
    )?;
    let info = g.info();
    assert!(!info.is_demo);
    assert_eq!(
        info.pipeline,
        ltx2_pipeline::PipelineKind::DistilledTwoStage
    );

    // A second start is served from the cache: the hub may be gone.
    let mut offline = config("http://127.0.0.1:9", &home);
    offline.offline = true;
    assert_eq!(hub::resolve(&offline, LTX_REPO)?, folder);
    let _ = std::fs::remove_dir_all(&home);
    Ok(())
}

/// `--model hub:Lightricks/LTX-2.3` fetches the 2.3 release files (not the 19B ones) and the
/// folder loads as an LTX-2.3 distilled two-stage model with 48 kHz audio.
#[test]
fn hub_download_of_the_ltx23_release() -> anyhow::Result<()> {
    let home = temp_home("ltx23");
    let endpoint = serve(FakeHub {
        files: official_files_23(hub::DEFAULT_GEMMA_REPO),
        status: None,
    });
    let folder = hub::resolve(&config(&endpoint, &home), hub::LTX23_REPO)?;
    assert!(folder.join(hub::LTX23_CHECKPOINT_FILE).is_file());
    assert!(folder.join(hub::LTX23_UPSAMPLER_FILE).is_file());
    assert!(!folder.join(hub::DEFAULT_CHECKPOINT_FILE).exists());
    let g = load_generator(&ModelSource::Path(folder), &candle_core::Device::Cpu)?;
    let info = g.info();
    assert_eq!(info.generation, "LTX-2.3 (22B)");
    assert_eq!(info.audio_sample_rate, 48_000);
    assert_eq!(
        info.pipeline,
        ltx2_pipeline::PipelineKind::DistilledTwoStage
    );
    let _ = std::fs::remove_dir_all(&home);
    Ok(())
}

/// `--model hub:Lightricks/LTX-2.5` fetches the split release's component files into its
/// sub-folders (no Gemma repo: the text encoder file packs Gemma-4 and its tokenizer), and the
/// folder is recognised as an LTX-2.5 split model.
#[test]
fn hub_download_of_the_ltx25_split_release() -> anyhow::Result<()> {
    let home = temp_home("ltx25");
    let endpoint = serve(FakeHub {
        files: official_files_25(),
        status: None,
    });
    let folder = hub::resolve(&config(&endpoint, &home), hub::LTX25_REPO)?;
    for f in [
        hub::LTX25_TRANSFORMER_FILE,
        hub::LTX25_TEXT_ENCODER_FILE,
        hub::LTX25_VIDEO_VAE_FILE,
        hub::LTX25_AUDIO_VAE_FILE,
        hub::LTX25_UPSAMPLER_FILE,
        hub::LTX25_DURATION_HEAD_FILE,
    ] {
        assert!(folder.join(f).is_file(), "{f}");
    }
    assert!(!folder.join(hub::LTX25_VIDEO_VAE_CONV_FILE).exists());
    assert!(!folder.join("gemma").exists());
    match ltx2_pipeline::engine::ModelFolder::discover(&folder)? {
        ltx2_pipeline::engine::ModelFolder::Split(f) => {
            assert_eq!(f.generation, ltx2_model::generation::Generation::Ltx25);
            assert_eq!(f.pipeline(), ltx2_pipeline::PipelineKind::DistilledTwoStage);
            assert!(f.duration_head.is_some());
        }
        other => panic!("expected the split layout: {other:?}"),
    }
    let _ = std::fs::remove_dir_all(&home);
    Ok(())
}

#[test]
fn hub_errors_say_what_to_do() {
    // Connection refused: a port that was free a moment ago.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", l.local_addr().unwrap())
    };
    let home = temp_home("offline");
    let err = hub::resolve(&config(&closed, &home), LTX_REPO).unwrap_err();
    assert!(matches!(err, HubError::Unreachable { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(
        msg.contains(&format!(
            "cannot reach the Hugging Face hub at {closed} (offline?)"
        )) && msg.contains("pass --model <folder>"),
        "{msg}"
    );

    let denied = serve(FakeHub {
        files: HashMap::new(),
        status: Some((StatusCode::UNAUTHORIZED, "GatedRepo")),
    });
    let err = hub::resolve(&config(&denied, &temp_home("401")), LTX_REPO).unwrap_err();
    assert!(
        matches!(err, HubError::Denied { status: 401, .. }),
        "{err:?}"
    );
    let msg = err.to_string();
    assert!(
        msg.contains("access to Lightricks/LTX-2 denied")
            && msg.contains("accept the model's license")
            && msg.contains("HF_TOKEN"),
        "{msg}"
    );

    let unknown = serve(FakeHub {
        files: HashMap::new(),
        status: Some((StatusCode::UNAUTHORIZED, "RepoNotFound")),
    });
    let err = hub::resolve(&config(&unknown, &temp_home("norepo")), "me/typo").unwrap_err();
    assert!(
        matches!(&err, HubError::RepoNotFound { repo, .. } if repo == "me/typo"),
        "{err:?}"
    );
    assert!(
        err.to_string().contains("repository me/typo not found"),
        "{err}"
    );

    // The Gemma repo lacks one shard its index names.
    let mut files = official_files(hub::DEFAULT_GEMMA_REPO);
    let missing = "model-00002-of-00002.safetensors";
    files
        .remove(&resolve_path(hub::DEFAULT_GEMMA_REPO, missing))
        .expect("the golden Gemma folder has this shard");
    let partial = serve(FakeHub {
        files,
        status: None,
    });
    let err = hub::resolve(&config(&partial, &temp_home("404")), LTX_REPO).unwrap_err();
    match &err {
        HubError::NotFound { repo, file, .. } => {
            assert_eq!(repo, hub::DEFAULT_GEMMA_REPO);
            assert_eq!(file, missing);
        }
        other => panic!("{other:?}"),
    }
    let msg = err.to_string();
    assert!(
        msg.contains(missing) && msg.contains(hub::DEFAULT_GEMMA_REPO) && msg.contains("404"),
        "{msg}"
    );

    // HF_HUB_OFFLINE with an empty cache names the file it lacks instead of trying the network.
    let mut cfg = config(&partial, &temp_home("nocache"));
    cfg.offline = true;
    let err = hub::resolve(&cfg, LTX_REPO).unwrap_err();
    assert!(
        matches!(&err, HubError::NotCached { file, .. } if file == hub::DEFAULT_CHECKPOINT_FILE),
        "{err:?}"
    );
}

/// The CLI reads the standard variables: `ltx2 generate --model hub` with `HF_ENDPOINT` and
/// `HF_HOME` set on the child process downloads, loads and renders; a closed endpoint fails with
/// the offline message.
#[test]
fn cli_generate_with_model_hub() {
    let endpoint = serve(FakeHub {
        files: official_files(hub::DEFAULT_GEMMA_REPO),
        status: None,
    });
    let home = temp_home("cli");
    let out = home.join("out.mp4");
    let run = |endpoint: &str, hf_home: &Path| {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_ltx2"));
        for k in [
            "HF_TOKEN",
            "HF_TOKEN_PATH",
            "HF_HUB_CACHE",
            "HF_HUB_OFFLINE",
            "LTX2_MODEL",
            "LTX2_CHECKPOINT_FILE",
            "LTX2_UPSAMPLER_FILE",
            "LTX2_GEMMA_REPO",
            "LTX2_GEMMA_DIR",
        ] {
            cmd.env_remove(k);
        }
        cmd.env("HF_ENDPOINT", endpoint)
            .env("HF_HOME", hf_home)
            .args(["generate", "--model", "hub", "--prompt", "waves"])
            .args(["--width", "64", "--height", "64", "--num-frames", "9"])
            .args(["--num-inference-steps", "2", "--seed", "1", "--no-audio"])
            .arg("--output")
            .arg(&out)
            .output()
            .expect("ltx2 binary runs")
    };
    let ok = run(&endpoint, &home);
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert!(std::fs::metadata(&out).unwrap().len() > 0);
    assert!(home
        .join("ltx2/Lightricks--LTX-2/gemma/config.json")
        .is_file());

    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", l.local_addr().unwrap())
    };
    let failed = run(&closed, &temp_home("cli-offline"));
    assert!(!failed.status.success());
    let stderr = String::from_utf8_lossy(&failed.stderr);
    assert!(
        stderr.contains("cannot reach the Hugging Face hub") && stderr.contains("--model <folder>"),
        "{stderr}"
    );
    let _ = std::fs::remove_dir_all(&home);
}
