//! `ltx2 generate`: one video to an MP4 file, with a progress bar.

use std::path::PathBuf;
use std::sync::Mutex;

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};
use ltx2_pipeline::media::{audio::decode_audio, image::decode_image, mp4::encode_mp4};
use ltx2_pipeline::{GenerateRequest, ImageCondition, ModelSource, Progress, ProgressEvent};

#[derive(clap::Args)]
pub struct Args {
    /// `demo` (tiny random weights: output is noise), or a folder with the checkpoint, upsampler
    /// and Gemma folder.
    #[arg(long, env = "LTX2_MODEL", default_value = "demo")]
    pub model: ModelSource,
    #[command(flatten)]
    pub load: ltx2::model::LoadArgs,
    #[arg(long)]
    pub prompt: String,
    #[arg(long, default_value = "")]
    pub negative_prompt: String,
    #[arg(long, default_value_t = 288)]
    pub width: u32,
    #[arg(long, default_value_t = 512)]
    pub height: u32,
    /// `8k + 1` frames, or `auto`: the model chooses the length from the prompt (LTX-2.5's
    /// duration head) between --min-duration-seconds and --max-duration-seconds.
    #[arg(long, default_value = "49")]
    pub num_frames: FramesArg,
    /// Shortest clip `--num-frames auto` may choose.
    #[arg(long, default_value_t = ltx2_pipeline::AutoDuration::default().min_seconds)]
    pub min_duration_seconds: f64,
    /// Longest clip `--num-frames auto` may choose.
    #[arg(long, default_value_t = ltx2_pipeline::AutoDuration::default().max_seconds)]
    pub max_duration_seconds: f64,
    #[arg(long, default_value_t = 25.0)]
    pub fps: f32,
    #[arg(long, default_value_t = 3.0)]
    pub guidance_scale: f32,
    /// Dev checkpoints only; default: the model's official value (40 for LTX-2, 30 for LTX-2.3).
    #[arg(long)]
    pub num_inference_steps: Option<u32>,
    /// Random when absent (printed).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Image for the first frame.
    #[arg(long)]
    pub image_start: Option<PathBuf>,
    /// Image for the last frame.
    #[arg(long)]
    pub image_end: Option<PathBuf>,
    #[arg(long, default_value_t = 1.0)]
    pub image_strength: f32,
    /// Audio (WAV, FLAC, MP3, ...) that conditions the video.
    #[arg(long)]
    pub audio: Option<PathBuf>,
    #[arg(long, default_value_t = 1.0)]
    pub audio_strength: f32,
    /// A LoRA of --lora-dir to fuse in, `NAME` or `NAME:STRENGTH` (repeat to stack them).
    #[arg(long = "lora", value_name = "NAME[:STRENGTH]")]
    pub loras: Vec<String>,
    /// MP4 (H.264) control video for the IC-LoRA given with --lora (ltx-pipelines'
    /// ICLoraPipeline; needs a distilled checkpoint with its upsampler).
    #[arg(long)]
    pub control_video: Option<PathBuf>,
    #[arg(long, default_value_t = 1.0)]
    pub control_strength: f32,
    /// Attention weight between the generated and the control video, in [0, 1].
    #[arg(long, default_value_t = 1.0)]
    pub control_attention_strength: f32,
    /// Leave the audio track out.
    #[arg(long)]
    pub no_audio: bool,
    /// Output MP4 file.
    #[arg(short, long, default_value = "out.mp4")]
    pub output: PathBuf,
}

/// `--num-frames`: a count or `auto`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum FramesArg {
    Count(u32),
    Auto,
}

impl std::str::FromStr for FramesArg {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if s == "auto" {
            return Ok(Self::Auto);
        }
        s.parse()
            .map(Self::Count)
            .map_err(|_| format!("expected a frame count (8k+1) or `auto`, got {s:?}"))
    }
}

/// Progress bar per denoising stage.
struct Bar {
    bar: Mutex<Option<ProgressBar>>,
}

impl Progress for Bar {
    fn report(&self, event: ProgressEvent) {
        let mut bar = self.bar.lock().unwrap_or_else(|e| e.into_inner());
        match event {
            ProgressEvent::StageStarted { stage } => {
                if let Some(b) = bar.take() {
                    b.finish();
                }
                let b = ProgressBar::new_spinner();
                b.set_style(
                    ProgressStyle::with_template(
                        "{spinner} {msg:12} [{bar:30}] {pos}/{len} {elapsed}",
                    )
                    .unwrap_or_else(|_| ProgressStyle::default_bar())
                    .progress_chars("=> "),
                );
                b.set_message(stage);
                *bar = Some(b);
            }
            ProgressEvent::Step { step, total, .. } => {
                if let Some(b) = bar.as_ref() {
                    b.set_length(total as u64);
                    b.set_position(step as u64);
                }
            }
            ProgressEvent::StageFinished { .. } => {
                if let Some(b) = bar.take() {
                    b.finish();
                }
            }
        }
    }
}

fn image(
    path: &Option<PathBuf>,
    frame_index: u32,
    strength: f32,
) -> anyhow::Result<Option<ImageCondition>> {
    let Some(path) = path else { return Ok(None) };
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let image = decode_image(&bytes).with_context(|| format!("decoding {}", path.display()))?;
    Ok(Some(ImageCondition {
        image,
        frame_index,
        strength,
    }))
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let device = ltx2_pipeline::engine::best_device()?;
    let mut generator = ltx2::model::load_model(&args.model, &device, &args.load.options())
        .with_context(|| format!("loading model {:?}", args.model))?;
    let info = generator.info();
    if info.is_demo {
        eprintln!("note: the demo model has random weights; the video is noise, not the prompt");
    }
    let seed = args.seed.unwrap_or_else(rand_seed);
    let (num_frames, auto_duration) = match args.num_frames {
        FramesArg::Count(n) => (n, None),
        FramesArg::Auto => {
            let (min, max) = (args.min_duration_seconds, args.max_duration_seconds);
            anyhow::ensure!(
                min >= 0.0 && max > 0.0 && min <= max,
                "--min-duration-seconds {min} and --max-duration-seconds {max} must satisfy 0 <= min <= max"
            );
            // The longest 8k+1 clip within the bound: the engine never goes past it.
            let longest = ((max * args.fps as f64).floor() as u32).saturating_sub(1) / 8 * 8 + 1;
            let auto = ltx2_pipeline::AutoDuration {
                min_seconds: min,
                max_seconds: max,
            };
            (longest.max(9), Some(auto))
        }
    };
    let images = [
        image(&args.image_start, 0, args.image_strength)?,
        image(
            &args.image_end,
            num_frames.saturating_sub(1),
            args.image_strength,
        )?,
    ]
    .into_iter()
    .flatten()
    .collect();
    let audio = match &args.audio {
        Some(path) => {
            let bytes =
                std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
            Some((
                decode_audio(&bytes).with_context(|| format!("decoding {}", path.display()))?,
                args.audio_strength,
            ))
        }
        None => None,
    };
    let clip = match &args.control_video {
        Some(path) => {
            let bytes =
                std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
            let limits = ltx2_pipeline::media::video::VideoLimits {
                keep_frames: Some(num_frames as usize),
                audio: false,
                ..Default::default()
            };
            let video = ltx2_pipeline::media::video::decode_mp4_with(&bytes, &limits)
                .with_context(|| format!("decoding {}", path.display()))?;
            Some(ltx2_pipeline::ClipInput::Control(
                ltx2_pipeline::ControlVideo {
                    frames: video.frames,
                    strength: args.control_strength,
                    attention_strength: args.control_attention_strength,
                },
            ))
        }
        None => None,
    };
    let request = GenerateRequest {
        prompt: args.prompt,
        negative_prompt: args.negative_prompt,
        width: args.width,
        height: args.height,
        num_frames,
        fps: args.fps,
        guidance_scale: args.guidance_scale,
        num_inference_steps: args.num_inference_steps,
        seed,
        images,
        audio,
        include_audio: !args.no_audio,
        auto_duration,
        clip,
        keyframes: false,
        loras: args
            .loras
            .iter()
            .map(|l| parse_lora(l))
            .collect::<anyhow::Result<_>>()?,
    };
    let progress = Bar {
        bar: Mutex::new(None),
    };
    let out = generator.generate(&request, &progress)?;
    let mp4 = encode_mp4(&out.video, out.audio.as_ref()).context("encoding the MP4")?;
    std::fs::write(&args.output, mp4)
        .with_context(|| format!("writing {}", args.output.display()))?;
    eprintln!(
        "wrote {} ({}x{}, {} frames, seed {seed}, {:.1} s)",
        args.output.display(),
        out.video.width,
        out.video.height,
        out.video.frames.len(),
        out.timings.total_seconds()
    );
    eprintln!("effective: {}", serde_json::to_string(&out.effective)?);
    for note in &out.effective.notes {
        if note.starts_with("num_frames auto") {
            eprintln!("{note}");
        }
    }
    Ok(())
}

/// `NAME` or `NAME:STRENGTH` (strength 1 when absent).
fn parse_lora(arg: &str) -> anyhow::Result<ltx2_pipeline::LoraChoice> {
    let (name, strength) = match arg.rsplit_once(':') {
        Some((n, s)) => (
            n,
            s.parse::<f32>().map_err(|_| {
                anyhow::anyhow!("--lora {arg}: the strength after ':' is not a number")
            })?,
        ),
        None => (arg, 1.0),
    };
    Ok(ltx2_pipeline::LoraChoice {
        name: name.to_string(),
        strength,
    })
}

/// A seed from the clock and the process id (no RNG crate needed in the CLI).
fn rand_seed() -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    nanos ^ (u64::from(std::process::id()) << 32)
}
