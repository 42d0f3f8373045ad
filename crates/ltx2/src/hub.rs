//! `--model hub[:REPO]`: downloads the official release files with hf-hub into the standard
//! Hugging Face cache and lays them out as a model folder that `ModelFiles::discover` accepts.
//!
//! The folder holds only symlinks into the cache (the checkpoint, the spatial upsampler and a
//! `gemma/` folder with one link per Gemma file), so nothing is copied and a second start finds
//! everything in the cache without touching the network.

use std::path::{Path, PathBuf};

use hf_hub::api::sync::{ApiBuilder, ApiError, ApiRepo};
use hf_hub::{Cache, Repo, RepoType};

pub const DEFAULT_ENDPOINT: &str = "https://huggingface.co";
/// `--model hub`: the spec's model, LTX-2 19B distilled FP8.
pub const DEFAULT_REPO: &str = "Lightricks/LTX-2";
pub const DEFAULT_CHECKPOINT_FILE: &str = "ltx-2-19b-distilled-fp8.safetensors";
pub const DEFAULT_UPSAMPLER_FILE: &str = "ltx-2-spatial-upscaler-x2-1.0.safetensors";
pub const LTX23_REPO: &str = "Lightricks/LTX-2.3";
/// LTX-2.3's distilled checkpoint (Lightricks/LTX-2.3, MODELS-LTX-2.3.md): the 1.1 release, bf16
/// (Lightricks publishes no FP8 file of 2.3).
pub const LTX23_CHECKPOINT_FILE: &str = "ltx-2.3-22b-distilled-1.1.safetensors";
pub const LTX23_UPSAMPLER_FILE: &str = "ltx-2.3-spatial-upscaler-x2-1.1.safetensors";
pub const LTX25_REPO: &str = "Lightricks/LTX-2.5";
/// LTX-2.5 is published one file per component, in sub-folders of the repo (Lightricks/LTX-2
/// README at v1.2.0): the distilled transformer (with the text connectors), the text encoder
/// (Gemma-4 with the feature projections and the tokenizer packed in), the video VAE (diffusion
/// decoder; `LTX2_VIDEO_DECODER=conv` takes the conv one), the audio VAE with the vocoder, the x2
/// spatial upscaler and the duration head. No separate Gemma repo is needed.
pub const LTX25_TRANSFORMER_FILE: &str =
    "diffusion_models/ltx-2.5-22b-distilled-transformer-bf16.safetensors";
pub const LTX25_TEXT_ENCODER_FILE: &str =
    "text_encoders/gemma4-12b-with-proj-ltx-2.5-bf16.safetensors";
pub const LTX25_VIDEO_VAE_FILE: &str = "vae/ltx-2.5-video-vae-bf16.safetensors";
pub const LTX25_VIDEO_VAE_CONV_FILE: &str = "vae/ltx-2.5-video-vae-conv-bf16.safetensors";
pub const LTX25_AUDIO_VAE_FILE: &str = "vae/ltx-2.5-audio-vae-bf16.safetensors";
pub const LTX25_UPSAMPLER_FILE: &str =
    "latent_upscale_models/ltx-2.5-latent-spatial-upscaler-x2-bf16-1.0.safetensors";
pub const LTX25_DURATION_HEAD_FILE: &str = "model_patches/ltx-2.5-duration-head-bf16.safetensors";
pub const DEFAULT_GEMMA_REPO: &str = "google/gemma-3-12b-it-qat-q4_0-unquantized";
/// The Gemma files the text encoder reads, besides the shards its index names.
pub const GEMMA_FILES: [&str; 4] = [
    "config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
];
const GEMMA_INDEX: &str = "model.safetensors.index.json";

/// Where and what to download. Production builds it with [`HubConfig::from_env`]; tests fill it in
/// directly so they never touch process-global environment variables.
#[derive(Debug, Clone)]
pub struct HubConfig {
    /// `HF_ENDPOINT`, without a trailing slash.
    pub endpoint: String,
    /// The hf-hub cache (`HF_HUB_CACHE`, else `$HF_HOME/hub`, else `~/.cache/huggingface/hub`).
    pub cache_dir: PathBuf,
    /// Where the per-repo folders of links are built (`<cache_dir>/../ltx2`), outside the hub cache
    /// so `hf cache scan` does not report them as broken repos.
    pub links_dir: PathBuf,
    pub token: Option<String>,
    /// `HF_HUB_OFFLINE`: use the cache only, never the network.
    pub offline: bool,
    /// `LTX2_CHECKPOINT_FILE`; `None`: the release's own ([`release_files`]).
    pub checkpoint_file: Option<String>,
    /// `LTX2_UPSAMPLER_FILE`.
    pub upsampler_file: UpsamplerFile,
    /// `LTX2_VIDEO_DECODER=conv`: the LTX-2.5 conv video VAE instead of the diffusion one.
    pub conv_video_decoder: bool,
    pub gemma_repo: String,
    pub progress: bool,
    /// Resumed attempts after a broken download (hf-hub resumes from the `.part` file).
    pub retries: usize,
}

impl HubConfig {
    /// The standard Hugging Face variables plus the ltx2 ones (see docs/DEPLOY.md).
    pub fn from_env() -> Self {
        Self::from_vars(|k| std::env::var(k).ok().filter(|v| !v.is_empty()))
    }

    /// [`HubConfig::from_env`] over any variable lookup.
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Self {
        let hf_home = var("HF_HOME").map(PathBuf::from).unwrap_or_else(|| {
            dirs_home()
                .unwrap_or_else(|| PathBuf::from("."))
                .join(".cache")
                .join("huggingface")
        });
        let cache_dir = var("HF_HUB_CACHE")
            .map(PathBuf::from)
            .unwrap_or_else(|| hf_home.join("hub"));
        let links_dir = cache_dir
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| cache_dir.clone())
            .join("ltx2");
        let token = var("HF_TOKEN").or_else(|| {
            let path = var("HF_TOKEN_PATH")
                .map(PathBuf::from)
                .unwrap_or_else(|| hf_home.join("token"));
            std::fs::read_to_string(path)
                .ok()
                .map(|t| t.trim().to_string())
                .filter(|t| !t.is_empty())
        });
        let offline = var("HF_HUB_OFFLINE")
            .map(|v| matches!(v.to_lowercase().as_str(), "1" | "true" | "yes" | "on"))
            .unwrap_or(false);
        let upsampler_file = match var("LTX2_UPSAMPLER_FILE") {
            Some(v) if v.eq_ignore_ascii_case("none") => UpsamplerFile::Skip,
            Some(v) => UpsamplerFile::Named(v),
            None => UpsamplerFile::Release,
        };
        Self {
            endpoint: var("HF_ENDPOINT")
                .unwrap_or_else(|| DEFAULT_ENDPOINT.into())
                .trim_end_matches('/')
                .to_string(),
            cache_dir,
            links_dir,
            token,
            offline,
            checkpoint_file: var("LTX2_CHECKPOINT_FILE"),
            upsampler_file,
            conv_video_decoder: var("LTX2_VIDEO_DECODER").is_some_and(|v| v == "conv"),
            gemma_repo: var("LTX2_GEMMA_REPO").unwrap_or_else(|| DEFAULT_GEMMA_REPO.into()),
            progress: true,
            retries: 3,
        }
    }
}

/// Which upsampler file to fetch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UpsamplerFile {
    /// The release's x2 spatial upscaler ([`release_files`]).
    Release,
    /// This file of the repo.
    Named(String),
    /// None: a one-stage distilled model.
    Skip,
}

/// The checkpoint and x2 spatial upscaler file names of a single-file release repo: LTX-2.3 for
/// `Lightricks/LTX-2.3` (and any repo id naming 2.3, e.g. a mirror), else the spec's LTX-2 19B
/// distilled FP8.
pub fn release_files(repo: &str) -> (&'static str, &'static str) {
    let name = repo_name(repo);
    if name.contains("2.3") || name.contains("2-3") {
        (LTX23_CHECKPOINT_FILE, LTX23_UPSAMPLER_FILE)
    } else {
        (DEFAULT_CHECKPOINT_FILE, DEFAULT_UPSAMPLER_FILE)
    }
}

fn repo_name(repo: &str) -> String {
    repo.rsplit('/').next().unwrap_or(repo).to_ascii_lowercase()
}

/// Whether `repo` holds a split (one file per component) release: LTX-2.5 (`Lightricks/LTX-2.5`
/// or any repo id naming 2.5).
pub fn is_split_release(repo: &str) -> bool {
    let name = repo_name(repo);
    name.contains("2.5") || name.contains("2-5")
}

impl HubConfig {
    /// The component files of a split release (LTX-2.5), in its sub-folders:
    /// `LTX2_CHECKPOINT_FILE` replaces the transformer (e.g. the dev one), `LTX2_UPSAMPLER_FILE`
    /// the upscaler (`none` skips it), `LTX2_VIDEO_DECODER=conv` picks the conv video VAE.
    pub fn split_files_for(&self, _repo: &str) -> Vec<String> {
        let mut files = vec![
            self.checkpoint_file
                .clone()
                .unwrap_or_else(|| LTX25_TRANSFORMER_FILE.to_string()),
            LTX25_TEXT_ENCODER_FILE.to_string(),
            if self.conv_video_decoder {
                LTX25_VIDEO_VAE_CONV_FILE
            } else {
                LTX25_VIDEO_VAE_FILE
            }
            .to_string(),
            LTX25_AUDIO_VAE_FILE.to_string(),
            LTX25_DURATION_HEAD_FILE.to_string(),
        ];
        match &self.upsampler_file {
            UpsamplerFile::Release => files.push(LTX25_UPSAMPLER_FILE.to_string()),
            UpsamplerFile::Named(f) => files.push(f.clone()),
            UpsamplerFile::Skip => {}
        }
        files
    }

    /// The checkpoint and (optional) upsampler files to fetch from `repo`.
    pub fn files_for(&self, repo: &str) -> (String, Option<String>) {
        let (checkpoint, upsampler) = release_files(repo);
        (
            self.checkpoint_file
                .clone()
                .unwrap_or_else(|| checkpoint.to_string()),
            match &self.upsampler_file {
                UpsamplerFile::Release => Some(upsampler.to_string()),
                UpsamplerFile::Named(f) => Some(f.clone()),
                UpsamplerFile::Skip => None,
            },
        )
    }
}

fn dirs_home() -> Option<PathBuf> {
    std::env::var_os("HOME").map(PathBuf::from)
}

/// Why the hub files could not be had. The messages say what to do next.
#[derive(Debug, thiserror::Error)]
pub enum HubError {
    #[error("cannot reach the Hugging Face hub at {endpoint} (offline?): {detail} — download the files and pass --model <folder>")]
    Unreachable { endpoint: String, detail: String },
    #[error("access to {repo} denied (HTTP {status}): accept the model's license on the hub and set HF_TOKEN")]
    Denied { repo: String, status: u16 },
    /// The hub answers 401 with `X-Error-Code: RepoNotFound` for a repo that does not exist or is
    /// private to others, so existence is not leaked.
    #[error("repository {repo} not found at {endpoint} (a typo, or private: then set HF_TOKEN)")]
    RepoNotFound { repo: String, endpoint: String },
    #[error("{file} not found in {repo} at {endpoint} (HTTP 404): check the repo id and the LTX2_*_FILE variables")]
    NotFound {
        repo: String,
        file: String,
        endpoint: String,
    },
    #[error("HF_HUB_OFFLINE is set and {file} of {repo} is not in the cache at {cache}")]
    NotCached {
        repo: String,
        file: String,
        cache: PathBuf,
    },
    #[error("downloading {file} from {repo}: HTTP {status} from {endpoint}")]
    Http {
        repo: String,
        file: String,
        endpoint: String,
        status: u16,
    },
    #[error("downloading {file} from {repo}: {source}")]
    Download {
        repo: String,
        file: String,
        #[source]
        source: ApiError,
    },
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{repo}/{file}: {message}")]
    BadIndex {
        repo: String,
        file: String,
        message: String,
    },
}

/// Downloads (or finds in the cache) the files of `repo` and the Gemma repo and returns a folder
/// of links to them in the official layout.
pub fn resolve(cfg: &HubConfig, repo: &str) -> Result<PathBuf, HubError> {
    let api = ApiBuilder::from_cache(Cache::new(cfg.cache_dir.clone()))
        .with_endpoint(cfg.endpoint.clone())
        .with_token(cfg.token.clone())
        .with_progress(cfg.progress)
        .with_retries(cfg.retries)
        .build()
        .map_err(|e| HubError::Download {
            repo: repo.into(),
            file: String::new(),
            source: e,
        })?;
    let fetch = |repo_id: &str, file: &str| -> Result<PathBuf, HubError> {
        let r = Repo::new(repo_id.to_string(), RepoType::Model);
        if let Some(p) = Cache::new(cfg.cache_dir.clone()).repo(r.clone()).get(file) {
            return Ok(p);
        }
        if cfg.offline {
            return Err(HubError::NotCached {
                repo: repo_id.into(),
                file: file.into(),
                cache: cfg.cache_dir.clone(),
            });
        }
        let api_repo: ApiRepo = api.repo(r);
        api_repo
            .download(file)
            .map_err(|e| classify(e, cfg, repo_id, file))
    };

    let mut links: Vec<(PathBuf, PathBuf)> = Vec::new();
    if is_split_release(repo) {
        // Linked under their repo paths, so the folder has the release's own layout.
        for file in cfg.split_files_for(repo) {
            let p = fetch(repo, &file)?;
            links.push((PathBuf::from(&file), p));
        }
        let dir = cfg.links_dir.join(sanitize(repo));
        build_link_folder(&dir, &links)?;
        return Ok(dir);
    }
    let (checkpoint_file, upsampler_file) = cfg.files_for(repo);
    let checkpoint = fetch(repo, &checkpoint_file)?;
    links.push((base_name(&checkpoint_file).into(), checkpoint));
    if let Some(up) = &upsampler_file {
        let p = fetch(repo, up)?;
        links.push((base_name(up).into(), p));
    }
    let gemma = Path::new("gemma");
    for f in GEMMA_FILES {
        links.push((gemma.join(f), fetch(&cfg.gemma_repo, f)?));
    }
    let index = fetch(&cfg.gemma_repo, GEMMA_INDEX)?;
    for shard in index_shards(&index).map_err(|message| HubError::BadIndex {
        repo: cfg.gemma_repo.clone(),
        file: GEMMA_INDEX.into(),
        message,
    })? {
        links.push((gemma.join(&shard), fetch(&cfg.gemma_repo, &shard)?));
    }
    links.push((gemma.join(GEMMA_INDEX), index));

    let dir = cfg.links_dir.join(sanitize(repo));
    build_link_folder(&dir, &links)?;
    Ok(dir)
}

/// Maps hf-hub's errors onto the cases a user can act on, by HTTP status where there is one.
fn classify(e: ApiError, cfg: &HubConfig, repo: &str, file: &str) -> HubError {
    match e {
        ApiError::TooManyRetries(inner) => classify(*inner, cfg, repo, file),
        ApiError::RequestError(req) => match *req {
            ureq::Error::Transport(t) => HubError::Unreachable {
                endpoint: cfg.endpoint.clone(),
                detail: t.to_string(),
            },
            ureq::Error::Status(401 | 404, ref r)
                if r.header("x-error-code") == Some("RepoNotFound") =>
            {
                HubError::RepoNotFound {
                    repo: repo.into(),
                    endpoint: cfg.endpoint.clone(),
                }
            }
            ureq::Error::Status(status @ (401 | 403), _) => HubError::Denied {
                repo: repo.into(),
                status,
            },
            ureq::Error::Status(404, _) => HubError::NotFound {
                repo: repo.into(),
                file: file.into(),
                endpoint: cfg.endpoint.clone(),
            },
            ureq::Error::Status(status, _) => HubError::Http {
                repo: repo.into(),
                file: file.into(),
                endpoint: cfg.endpoint.clone(),
                status,
            },
        },
        source => HubError::Download {
            repo: repo.into(),
            file: file.into(),
            source,
        },
    }
}

/// The shard file names a `model.safetensors.index.json` maps its tensors to, sorted, deduplicated.
pub fn index_shards(index: &Path) -> Result<Vec<String>, String> {
    let text = std::fs::read_to_string(index).map_err(|e| e.to_string())?;
    let json: serde_json::Value = serde_json::from_str(&text).map_err(|e| e.to_string())?;
    let map = json
        .get("weight_map")
        .and_then(|m| m.as_object())
        .ok_or("no `weight_map` object")?;
    let mut shards = Vec::new();
    for (key, v) in map {
        let s = v
            .as_str()
            .ok_or_else(|| format!("weight_map[{key}] is not a file name"))?;
        // Shards are files of the same repo folder; anything else would escape the link folder.
        if s.is_empty() || s.contains("..") || s.starts_with('/') {
            return Err(format!(
                "weight_map[{key}] = {s:?} is not a shard file name"
            ));
        }
        shards.push(s.to_string());
    }
    shards.sort();
    shards.dedup();
    if shards.is_empty() {
        return Err("`weight_map` names no shard".into());
    }
    Ok(shards)
}

fn base_name(file: &str) -> &str {
    file.rsplit('/').next().unwrap_or(file)
}

/// `Lightricks/LTX-2` → `Lightricks--LTX-2`, the hub cache's own convention.
fn sanitize(repo: &str) -> String {
    repo.replace('/', "--")
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// Rebuilds `dir` from scratch (so a link left by an earlier file-name override cannot be picked
/// up), in a temporary sibling renamed into place.
fn build_link_folder(dir: &Path, links: &[(PathBuf, PathBuf)]) -> Result<(), HubError> {
    let io = |what: String| move |source| HubError::Io { what, source };
    let parent = dir.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent).map_err(io(format!("creating {}", parent.display())))?;
    let tmp = parent.join(format!(
        ".{}.tmp-{}",
        dir.file_name().unwrap_or_default().to_string_lossy(),
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&tmp);
    for (name, target) in links {
        let link = tmp.join(name);
        if let Some(p) = link.parent() {
            std::fs::create_dir_all(p).map_err(io(format!("creating {}", p.display())))?;
        }
        // Absolute targets: the cache's own snapshot entries are relative links into its blobs.
        let target =
            std::path::absolute(target).map_err(io(format!("resolving {}", target.display())))?;
        symlink(&target, &link).map_err(io(format!("linking {}", link.display())))?;
    }
    // remove_dir_all removes the links, never what they point to.
    let _ = std::fs::remove_dir_all(dir);
    if let Err(e) = std::fs::rename(&tmp, dir) {
        let _ = std::fs::remove_dir_all(&tmp);
        // Another process built the same folder at the same moment: theirs is as good as ours.
        if !dir.is_dir() {
            return Err(HubError::Io {
                what: format!("moving the model folder into {}", dir.display()),
                source: e,
            });
        }
    }
    Ok(())
}

#[cfg(unix)]
fn symlink(target: &Path, link: &Path) -> std::io::Result<()> {
    std::os::unix::fs::symlink(target, link)
}

#[cfg(windows)]
fn symlink(target: &Path, link: &Path) -> std::io::Result<()> {
    std::os::windows::fs::symlink_file(target, link)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn cfg(vars: &[(&str, &str)]) -> HubConfig {
        let m: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        HubConfig::from_vars(|k| m.get(k).cloned())
    }

    #[test]
    fn env_defaults_and_overrides() {
        let c = cfg(&[("HF_HOME", "/h"), ("HF_TOKEN", "t")]);
        assert_eq!(c.endpoint, DEFAULT_ENDPOINT);
        assert_eq!(c.cache_dir, PathBuf::from("/h/hub"));
        assert_eq!(c.links_dir, PathBuf::from("/h/ltx2"));
        assert_eq!(c.token.as_deref(), Some("t"));
        assert_eq!(
            c.files_for(DEFAULT_REPO),
            (
                DEFAULT_CHECKPOINT_FILE.to_string(),
                Some(DEFAULT_UPSAMPLER_FILE.to_string())
            )
        );
        assert_eq!(
            c.files_for(LTX23_REPO),
            (
                LTX23_CHECKPOINT_FILE.to_string(),
                Some(LTX23_UPSAMPLER_FILE.to_string())
            )
        );
        assert_eq!(c.gemma_repo, DEFAULT_GEMMA_REPO);
        assert!(!c.offline);

        let c = cfg(&[
            ("HF_HOME", "/h"),
            ("HF_HUB_CACHE", "/c/hub"),
            ("HF_ENDPOINT", "http://mirror/"),
            ("HF_HUB_OFFLINE", "1"),
            ("LTX2_CHECKPOINT_FILE", "ltx-2-19b-dev.safetensors"),
            ("LTX2_UPSAMPLER_FILE", "none"),
            ("LTX2_GEMMA_REPO", "me/gemma"),
        ]);
        assert_eq!(c.endpoint, "http://mirror");
        assert_eq!(c.cache_dir, PathBuf::from("/c/hub"));
        assert_eq!(c.links_dir, PathBuf::from("/c/ltx2"));
        assert!(c.offline);
        assert_eq!(
            c.files_for(LTX23_REPO),
            ("ltx-2-19b-dev.safetensors".to_string(), None)
        );
        assert_eq!(c.gemma_repo, "me/gemma");
    }

    #[test]
    fn repo_folder_names() {
        assert_eq!(sanitize("Lightricks/LTX-2"), "Lightricks--LTX-2");
        assert_eq!(sanitize("a b/../c"), "a_b--..--c");
    }
}
