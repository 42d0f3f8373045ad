//! Test-only engine and server harness: a deterministic `Generator` (synthetic frames + a sine
//! tone) behind the real router on a real TCP listener.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ltx2_pipeline::{
    AudioClip, EffectiveParams, GenError, GenerateOutput, GenerateRequest, Generator, ModelInfo,
    PipelineKind, Progress, ProgressEvent, StageTimings, VideoFrames,
};
use ltx2_server::ServerConfig;
use reqwest::StatusCode;
use serde_json::Value;
use tokio::sync::oneshot;

#[derive(Debug, Default)]
pub struct Counters {
    pub started: AtomicUsize,
    pub finished: AtomicUsize,
    pub cancelled: AtomicUsize,
}

pub struct TestGenerator {
    pub step_delay: Duration,
    pub counters: Arc<Counters>,
}

impl Generator for TestGenerator {
    fn info(&self) -> ModelInfo {
        ModelInfo {
            name: "test".into(),
            is_demo: true,
            pipeline: PipelineKind::Dev,
            device: "cpu".into(),
            dtype: "f32".into(),
            generation: "test".into(),
            audio_sample_rate: 24_000,
            auto_duration: false,
            lora_dir: None,
            transformer_file: None,
            default_inference_steps: 40,
            backends: ltx2_pipeline::BackendReport {
                attention: "chunked".into(),
                conv3d: "candle-cpu".into(),
                elementwise: "candle".into(),
                fp8_mode: "none".into(),
                fp8_gemm: "dequant-cpu".into(),
                cudnn: None,
                fallbacks: [("cudnn".to_string(), "not a CUDA device".to_string())].into(),
            },
            audio_input: ltx2_pipeline::AudioInputSpec {
                sample_rate: 16_000,
                min_samples: 513,
            },
        }
    }

    fn generate(
        &mut self,
        r: &GenerateRequest,
        progress: &dyn Progress,
    ) -> Result<GenerateOutput, GenError> {
        let start = Instant::now();
        self.counters.started.fetch_add(1, Ordering::SeqCst);
        // Prompts that drive the failure paths.
        match r.prompt.as_str() {
            "PANIC" => panic!("test generator asked to panic"),
            "REJECT" => {
                return Err(GenError::InvalidInput {
                    field: "width",
                    message: "not supported by this test model".into(),
                })
            }
            "FAIL" => return Err(GenError::Model("device lost".into())),
            _ => {}
        }
        let steps = r
            .num_inference_steps
            .unwrap_or(self.info().default_inference_steps);
        for step in 1..=steps {
            if progress.is_cancelled() {
                self.counters.cancelled.fetch_add(1, Ordering::SeqCst);
                return Err(GenError::Cancelled);
            }
            std::thread::sleep(self.step_delay);
            progress.report(ProgressEvent::Step {
                stage: "stage1".into(),
                step,
                total: steps,
            });
        }
        let (w, h) = (r.width as usize, r.height as usize);
        let frames = (0..r.num_frames as usize)
            .map(|t| {
                let mut f = vec![0u8; w * h * 3];
                for y in 0..h {
                    for x in 0..w {
                        let i = (y * w + x) * 3;
                        f[i] = ((x + 3 * t) % 256) as u8;
                        f[i + 1] = ((y + r.seed as usize) % 256) as u8;
                        f[i + 2] = ((x + y) / 4 % 256) as u8;
                    }
                }
                f
            })
            .collect::<Vec<_>>();
        let mut frames = frames;
        for cond in &r.images {
            // Nearest-neighbour paste: enough to show the image reached the engine.
            let img = &cond.image;
            let f = &mut frames[cond.frame_index as usize];
            for y in 0..h {
                for x in 0..w {
                    let (sx, sy) = (x * img.width as usize / w, y * img.height as usize / h);
                    let s = (sy * img.width as usize + sx) * 3;
                    f[(y * w + x) * 3..(y * w + x) * 3 + 3].copy_from_slice(&img.data[s..s + 3]);
                }
            }
        }
        let audio = r.include_audio.then(|| {
            let n = (r.num_frames as f64 / r.fps as f64 * 24_000.0).round() as usize;
            let tone: Vec<f32> = (0..n)
                .map(|i| 0.3 * (i as f32 * 440.0 * std::f32::consts::TAU / 24_000.0).sin())
                .collect();
            AudioClip {
                sample_rate: 24_000,
                channels: vec![tone.clone(), tone],
            }
        });
        let mut timings = StageTimings::default();
        timings.push("stage1", start.elapsed());
        self.counters.finished.fetch_add(1, Ordering::SeqCst);
        Ok(GenerateOutput {
            video: VideoFrames {
                width: r.width,
                height: r.height,
                fps: r.fps,
                frames,
            },
            audio,
            effective: EffectiveParams {
                pipeline: PipelineKind::Dev,
                steps_per_stage: vec![steps],
                forwards_per_step: if r.guidance_scale > 1.0 { 2 } else { 1 },
                guidance_scale: r.guidance_scale,
                negative_prompt_used: r.guidance_scale > 1.0,
                rendered_width: r.width,
                rendered_height: r.height,
                num_frames: r.num_frames,
                fps: r.fps,
                seed: r.seed,
                notes: vec!["test generator: synthetic frames and a 440 Hz tone".into()],
                loras: r.loras.clone(),
            },
            timings,
        })
    }
}

pub struct TestServer {
    pub url: String,
    pub counters: Arc<Counters>,
    shutdown: Option<oneshot::Sender<()>>,
    pub done: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl TestServer {
    pub async fn start(config: ServerConfig, step_delay: Duration) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let counters = Arc::new(Counters::default());
        let generator = Box::new(TestGenerator {
            step_delay,
            counters: counters.clone(),
        });
        let (tx, rx) = oneshot::channel::<()>();
        let done = tokio::spawn(ltx2_server::serve_with_shutdown(
            listener,
            generator,
            config,
            async {
                let _ = rx.await;
            },
        ));
        Self {
            url,
            counters,
            shutdown: Some(tx),
            done,
        }
    }

    pub fn shutdown(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }

    pub async fn health(&self) -> Value {
        reqwest::get(format!("{}/health", self.url))
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// Polls /health until `pred` holds (bounded wait, not a timing assertion).
    pub async fn wait_health(&self, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let h = self.health().await;
            if pred(&h) {
                return h;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}; last health: {h}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

pub fn png_bytes(w: u32, h: u32, seed: u8) -> Vec<u8> {
    encode_image(w, h, seed, image::ImageFormat::Png)
}

pub fn encode_image(w: u32, h: u32, seed: u8, format: image::ImageFormat) -> Vec<u8> {
    let img = image::RgbImage::from_fn(w, h, |x, y| {
        image::Rgb([(x as u8).wrapping_add(seed), y as u8, seed])
    });
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, format).unwrap();
    out.into_inner()
}

/// 16-bit PCM WAV of a 220 Hz tone.
pub fn wav_bytes(sample_rate: u32, channels: u16, seconds: f32) -> Vec<u8> {
    let n = (sample_rate as f32 * seconds) as usize;
    let data_len = (n * channels as usize * 2) as u32;
    let mut wav = Vec::new();
    wav.extend_from_slice(b"RIFF");
    wav.extend_from_slice(&(36 + data_len).to_le_bytes());
    wav.extend_from_slice(b"WAVEfmt ");
    wav.extend_from_slice(&16u32.to_le_bytes());
    wav.extend_from_slice(&1u16.to_le_bytes());
    wav.extend_from_slice(&channels.to_le_bytes());
    wav.extend_from_slice(&sample_rate.to_le_bytes());
    wav.extend_from_slice(&(sample_rate * channels as u32 * 2).to_le_bytes());
    wav.extend_from_slice(&(channels * 2).to_le_bytes());
    wav.extend_from_slice(&16u16.to_le_bytes());
    wav.extend_from_slice(b"data");
    wav.extend_from_slice(&data_len.to_le_bytes());
    for i in 0..n {
        let s = ((i as f32 * 220.0 * std::f32::consts::TAU / sample_rate as f32).sin() * 10_000.0)
            as i16;
        for _ in 0..channels {
            wav.extend_from_slice(&s.to_le_bytes());
        }
    }
    wav
}

pub fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("ltx2-server-test-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// What ffprobe sees in an MP4 file.
#[derive(Debug)]
pub struct Probe {
    pub video_codec: String,
    pub pix_fmt: String,
    pub width: u64,
    pub height: u64,
    pub frames: u64,
    pub audio: Option<(String, u64, u64)>,
}

pub fn ffprobe(path: &Path) -> Probe {
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-count_frames",
            "-show_streams",
            "-of",
            "json",
        ])
        .arg(path)
        .output()
        .expect("ffprobe is installed");
    assert!(
        out.status.success(),
        "ffprobe {}: {}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let streams = v["streams"].as_array().unwrap();
    let video = streams
        .iter()
        .find(|s| s["codec_type"] == "video")
        .expect("video stream");
    let audio = streams
        .iter()
        .find(|s| s["codec_type"] == "audio")
        .map(|a| {
            (
                a["codec_name"].as_str().unwrap().to_string(),
                a["sample_rate"].as_str().unwrap().parse().unwrap(),
                a["channels"].as_u64().unwrap(),
            )
        });
    Probe {
        video_codec: video["codec_name"].as_str().unwrap().to_string(),
        pix_fmt: video["pix_fmt"].as_str().unwrap_or_default().to_string(),
        width: video["width"].as_u64().unwrap(),
        height: video["height"].as_u64().unwrap(),
        frames: video["nb_read_frames"].as_str().unwrap().parse().unwrap(),
        audio,
    }
}

/// Checks a saved MP4 is H.264 of the given size and frame count with 24 kHz stereo AAC.
pub fn assert_spec_mp4(path: &Path, width: u64, height: u64, frames: u64) {
    assert_spec_mp4_at(path, width, height, frames, 24_000)
}

/// [`assert_spec_mp4`] with the AAC track at `audio_rate` (48 kHz for LTX-2.3's vocoder).
pub fn assert_spec_mp4_at(path: &Path, width: u64, height: u64, frames: u64, audio_rate: u64) {
    let p = ffprobe(path);
    assert_eq!(p.video_codec, "h264", "{}", path.display());
    assert_eq!(p.pix_fmt, "yuv420p", "{}", path.display());
    assert_eq!(
        (p.width, p.height, p.frames),
        (width, height, frames),
        "{}",
        path.display()
    );
    assert_eq!(
        p.audio,
        Some(("aac".to_string(), audio_rate, 2)),
        "{}",
        path.display()
    );
}

pub fn decode_video_field(response: &Value) -> Vec<u8> {
    use base64::Engine;
    let video = response["video"].as_str().expect("video field");
    let payload = video
        .strip_prefix("data:video/mp4;base64,")
        .expect("data URI prefix");
    base64::engine::general_purpose::STANDARD
        .decode(payload)
        .unwrap()
}

pub async fn post(url: &str, body: &Value) -> (StatusCode, Value) {
    let r = reqwest::Client::new()
        .post(format!("{url}/generate"))
        .json(body)
        .send()
        .await
        .unwrap();
    let status = r.status();
    (status, r.json().await.unwrap())
}

pub async fn post_raw(url: &str, body: &str, content_type: &str) -> (StatusCode, Value) {
    let r = reqwest::Client::new()
        .post(format!("{url}/generate"))
        .header("content-type", content_type)
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    let status = r.status();
    (status, r.json().await.unwrap())
}
