//! The [`Generator`] implementation: loads a model folder (or builds the demo model), validates a
//! request against what the model can do, runs the recipe and decodes frames and audio.
//!
//! Sizes: the two-stage distilled recipe runs stage 1 at half size, so it renders multiples of
//! 64. A requested size that is a multiple of 32 but not of 64 (the spec's 288x512) is rendered
//! at the next multiples of 64 (320x512) and the decoded frames are centre-cropped to exactly the
//! requested size; conditioning images are cover-resized to the rendered size, so the crop keeps
//! their centre. `EffectiveParams.rendered_{width,height}` report the rendered size and a note
//! says so. One-stage and dev recipes render multiples of 32 as requested.

use std::path::{Path, PathBuf};
use std::time::Instant;

use candle_core::{DType, Device};
use ltx2_model::generation::{self, Generation, Identity};
use ltx2_model::quantization::{GemmaQuantization, Quantization};
use ltx2_model::text::{TextEncoder, TextEncoderOptions};

use crate::api::*;
use crate::components::{
    pixels_to_frames, waveform_to_clip, ConditionImage, Models, PromptEncoder,
};
use crate::demo;
use crate::denoise::{Contexts, StepEvent};
use crate::guidance::Guidance;
use crate::latents::AudioLatentShape;
use crate::noise::SeededNoise;
use crate::params::PipelineParams;
use crate::pipelines::{
    distilled_two_stage, one_stage, AudioInput, ImageInput, RunObserver, RunSpec,
};
use crate::schedule::{Ltx2Scheduler, DISTILLED_SIGMAS};

impl PromptEncoder for TextEncoder {
    fn encode(&self, prompt: &str) -> candle_core::Result<Contexts> {
        let e = TextEncoder::encode(self, prompt)
            .map_err(|e| candle_core::Error::Msg(e.to_string()))?;
        Ok(Contexts {
            video: e.video_context,
            audio: e.audio_context,
        })
    }
}

/// A loaded model ready to serve requests.
pub struct Engine {
    models: Models,
    text: Box<dyn PromptEncoder>,
    info: ModelInfo,
    /// The official defaults of the checkpoint's generation (dev steps, STG block, guidance).
    params: PipelineParams,
}

/// The files of a model folder (official release names).
#[derive(Debug, Clone)]
pub struct ModelFiles {
    pub checkpoint: PathBuf,
    pub upsampler: Option<PathBuf>,
    pub gemma: PathBuf,
}

impl ModelFiles {
    /// Finds the checkpoint, the spatial upsampler and the Gemma folder in `dir`.
    ///
    /// Official release names come first: `ltx-2*.safetensors` (LTX-2 `ltx-2-19b-*`, LTX-2.3
    /// `ltx-2.3-22b-*`; the newest generation, then distilled, then non-FP8 preferred) and the
    /// x2 spatial upscaler of the checkpoint's generation (`ltx-2-spatial-upscaler-x2-1.0`,
    /// `ltx-2.3-spatial-upscaler-x2-1.1`; the newest version). LoRAs, the x1.5 and temporal
    /// upscalers are never picked. Files with other names are recognised by their `config`
    /// metadata (a `transformer` section, or `_class_name: LatentUpsampler` with a x2 spatial
    /// config), so a renamed copy or a test set in the same layout loads too. Gemma is a
    /// sub-folder with `tokenizer.json` and `config.json`, else `$LTX2_GEMMA_DIR`.
    pub fn discover(dir: &Path) -> Result<Self, GenError> {
        let bad = |m: String| GenError::InvalidInput {
            field: "model",
            message: m,
        };
        let entries: Vec<PathBuf> = std::fs::read_dir(dir)
            .map_err(|e| bad(format!("cannot read {}: {e}", dir.display())))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .collect();
        let safetensors: Vec<SafetensorsFile> = entries
            .iter()
            .filter(|p| p.is_file() && file_name(p).ends_with(".safetensors"))
            .map(|p| SafetensorsFile::read(p))
            .collect();
        let named = |f: &&SafetensorsFile| {
            f.name.starts_with("ltx-2") && !f.name.contains("upscaler") && !f.name.contains("lora")
        };
        let mut checkpoints: Vec<&SafetensorsFile> = safetensors.iter().filter(named).collect();
        if checkpoints.is_empty() {
            checkpoints = safetensors.iter().filter(|f| f.has_transformer).collect();
        }
        checkpoints.sort_by_key(|f| {
            (
                std::cmp::Reverse(f.generation),
                !f.is_distilled(),
                f.name.contains("fp8"),
                f.name.clone(),
            )
        });
        let chosen = checkpoints.first().ok_or_else(|| {
            bad(format!(
                "no LTX-2 checkpoint in {} (ltx-2*.safetensors, or a safetensors file whose `config` metadata has a `transformer` section)",
                dir.display()
            ))
        })?;
        let checkpoint = chosen.path.clone();
        let generation = chosen.generation;
        // An upscaler is matched to the checkpoint's generation by its name (its metadata has no
        // version); one whose name says nothing is accepted. Newest version first.
        let mut upsamplers: Vec<&SafetensorsFile> = safetensors
            .iter()
            .filter(|f| f.name.contains("spatial-upscaler-x2") || f.is_x2_upsampler)
            .filter(|f| f.name_generation.is_none_or(|g| g == generation))
            .collect();
        upsamplers.sort_by_key(|f| {
            (
                f.name_generation.is_none(),
                !f.name.contains("spatial-upscaler-x2"),
                std::cmp::Reverse(f.name.clone()),
            )
        });
        let upsampler = upsamplers.first().map(|f| f.path.clone());
        let gemma = entries
            .iter()
            .filter(|p| {
                p.is_dir() && p.join("tokenizer.json").is_file() && p.join("config.json").is_file()
            })
            .min_by_key(|p| (!file_name(p).contains("gemma"), file_name(p)))
            .cloned()
            .or_else(|| std::env::var_os("LTX2_GEMMA_DIR").map(PathBuf::from))
            .ok_or_else(|| {
                bad(format!(
                    "no Gemma folder (with tokenizer.json and config.json) in {}, and LTX2_GEMMA_DIR is not set",
                    dir.display()
                ))
            })?;
        Ok(Self {
            checkpoint,
            upsampler,
            gemma,
        })
    }

    /// Distilled checkpoints (by file name or `model_version` metadata) run the two-stage recipe
    /// (one stage without an upsampler); others are dev checkpoints.
    pub fn pipeline(&self) -> PipelineKind {
        match (
            SafetensorsFile::read(&self.checkpoint).is_distilled(),
            self.upsampler.is_some(),
        ) {
            (true, true) => PipelineKind::DistilledTwoStage,
            (true, false) => PipelineKind::DistilledOneStage,
            (false, _) => PipelineKind::Dev,
        }
    }

    /// The checkpoint's generation, from its metadata (see [`ltx2_model::generation`]); a file
    /// that contradicts itself (e.g. a 2.3 `model_version` on a 19B config) is an error.
    pub fn identity(&self) -> Result<Identity, GenError> {
        generation::detect_file(&self.checkpoint).map_err(|e| GenError::InvalidInput {
            field: "model",
            message: e.to_string(),
        })
    }
}

fn file_name(p: &Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().to_lowercase())
        .unwrap_or_default()
}

/// What discovery needs to know about a safetensors file: its name and, from the header only,
/// which component its `config` metadata describes and which generation it is.
struct SafetensorsFile {
    path: PathBuf,
    name: String,
    model_version: String,
    has_transformer: bool,
    /// `LatentUpsampler` metadata of a spatial-only x2 upsampler.
    is_x2_upsampler: bool,
    /// From the metadata, then the name (an unreadable or contradictory header counts as 2.0
    /// here; loading reports the real error).
    generation: Generation,
    /// What the file name alone says.
    name_generation: Option<Generation>,
}

impl SafetensorsFile {
    fn read(path: &Path) -> Self {
        // An unreadable header just means "not recognised"; loading reports the real error.
        let metadata = ltx2_model::checkpoint::read_metadata(path).unwrap_or_default();
        let config: Option<serde_json::Value> = metadata
            .get("config")
            .and_then(|c| serde_json::from_str(c).ok());
        let name = file_name(path);
        let upsampler = config
            .as_ref()
            .filter(|c| c.get("_class_name").and_then(|c| c.as_str()) == Some("LatentUpsampler"));
        let is_x2_upsampler = upsampler.is_some_and(|c| {
            let get = |k: &str| c.get(k).cloned();
            get("spatial_scale").and_then(|v| v.as_f64()).unwrap_or(2.0) == 2.0
                && get("temporal_upsample").and_then(|v| v.as_bool()) != Some(true)
                && get("spatial_upsample").and_then(|v| v.as_bool()) != Some(false)
        });
        Self {
            path: path.to_path_buf(),
            model_version: metadata
                .get("model_version")
                .map(|v| v.to_lowercase())
                .unwrap_or_default(),
            has_transformer: config
                .as_ref()
                .is_some_and(|c| c.get("transformer").is_some()),
            is_x2_upsampler,
            generation: generation::detect(&metadata, &name)
                .map(|i| i.generation)
                .unwrap_or(Generation::Ltx2),
            name_generation: Generation::from_file_name(&name),
            name,
        }
    }

    fn is_distilled(&self) -> bool {
        self.name.contains("distilled") || self.model_version.contains("distilled")
    }
}

/// How to load a model beyond where it comes from (`ltx2 serve/generate/worker` flags).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LoadOptions {
    /// How the DiT's block linears are stored and multiplied (`--quantization`,
    /// `LTX2_QUANTIZATION`): see [`ltx2_model::quantization`]. A mode the checkpoint cannot serve
    /// is a load error.
    pub quantization: Quantization,
    /// How Gemma's projections are held (`--gemma-quantization`, `LTX2_GEMMA_QUANTIZATION`).
    pub gemma_quantization: GemmaQuantization,
}

/// Loads a generator from `--model demo|PATH|hub[:REPO]` with the default [`LoadOptions`].
pub fn load_generator(
    source: &ModelSource,
    device: &Device,
) -> Result<Box<dyn Generator>, GenError> {
    load_generator_with(source, device, &LoadOptions::default())
}

/// Loads a generator from `--model demo|PATH|hub[:REPO]`. F32 on the CPU, BF16 on CUDA.
pub fn load_generator_with(
    source: &ModelSource,
    device: &Device,
    options: &LoadOptions,
) -> Result<Box<dyn Generator>, GenError> {
    let dtype = if device.is_cuda() {
        DType::BF16
    } else {
        DType::F32
    };
    match source {
        ModelSource::Demo => {
            let dir = demo::temp_demo_dir();
            demo::write_demo_folder(&dir)?;
            let files = ModelFiles::discover(&dir);
            let engine = files.and_then(|f| {
                Engine::load(&f, "demo", true, demo::demo_max_length(), dtype, device, options)
            });
            // Everything is memory-mapped or read by now; the folder is not needed any more.
            let _ = std::fs::remove_dir_all(&dir);
            Ok(Box::new(engine?))
        }
        ModelSource::Path(dir) => {
            let files = ModelFiles::discover(dir)?;
            let name = dir.display().to_string();
            let max_length = ltx2_model::text::LTX2_MAX_LENGTH;
            let engine = Engine::load(&files, &name, false, max_length, dtype, device, options)?;
            Ok(Box::new(engine))
        }
        ModelSource::Hub { repo } => Err(GenError::InvalidInput {
            field: "model",
            message: format!("downloading `{repo}` from the hub is not built yet; download it and pass the folder path"),
        }),
    }
}

impl Engine {
    pub fn load(
        files: &ModelFiles,
        name: &str,
        is_demo: bool,
        max_length: usize,
        dtype: DType,
        device: &Device,
        options: &LoadOptions,
    ) -> Result<Self, GenError> {
        let model_err = |e: candle_core::Error| {
            GenError::Model(format!("loading {}: {e}", files.checkpoint.display()))
        };
        let identity = files.identity()?;
        if identity.generation == Generation::Ltx25 {
            return Err(GenError::InvalidInput {
                field: "model",
                message: format!(
                    "{} is {} (model_version {:?}), which this server does not run yet; use an LTX-2 or LTX-2.3 checkpoint",
                    files.checkpoint.display(),
                    identity.generation,
                    identity.model_version.as_deref().unwrap_or("unknown")
                ),
            });
        }
        let params = PipelineParams::for_generation(identity.generation);
        tracing::info!(
            checkpoint = %files.checkpoint.display(),
            generation = %identity.generation,
            evidence = ?identity.evidence,
            flags = ?identity.flags,
            "model generation"
        );
        tracing::info!(
            quantization = %options.quantization,
            gemma_quantization = %options.gemma_quantization,
            "quantization"
        );
        let mut models = Models::load_quantized(
            &files.checkpoint,
            files.upsampler.as_deref(),
            dtype,
            device,
            options.quantization,
        )
        .map_err(model_err)?;
        // Operator switch for the video decode split (ltx-core blend by default, see `DecodeTiling`).
        if let Ok(v) = std::env::var("LTX2_VAE_TILING") {
            models.video_tiling = v
                .parse()
                .map_err(|e| GenError::Model(format!("LTX2_VAE_TILING: {e}")))?;
        }
        let opts = TextEncoderOptions {
            max_length,
            gemma_quantization: options.gemma_quantization,
            ..Default::default()
        };
        let text = TextEncoder::load(&files.gemma, &files.checkpoint, &opts, dtype, device)
            .map_err(|e| {
                GenError::Model(format!(
                    "loading the text encoder from {}: {e}",
                    files.gemma.display()
                ))
            })?;
        let info = ModelInfo {
            name: name.to_string(),
            is_demo,
            pipeline: files.pipeline(),
            device: if device.is_cuda() {
                "cuda".into()
            } else {
                "cpu".into()
            },
            dtype: format!("{dtype:?}").to_lowercase(),
            generation: identity.generation.display_name().to_string(),
            audio_sample_rate: models.vocoder_rate(),
            default_inference_steps: params.num_inference_steps,
        };
        Ok(Self {
            models,
            text: Box::new(text),
            info,
            params,
        })
    }

    /// An engine from models built by the caller (e.g. random weights generated in memory by
    /// `ltx2 bench`); runs exactly the serving code path with the defaults of `generation`.
    pub fn from_parts(
        models: Models,
        text: Box<dyn PromptEncoder>,
        info: ModelInfo,
        generation: Generation,
    ) -> Self {
        Self {
            models,
            text,
            info,
            params: PipelineParams::for_generation(generation),
        }
    }

    fn validate(&self, req: &GenerateRequest) -> Result<(), GenError> {
        let invalid = |field, message: String| Err(GenError::InvalidInput { field, message });
        if req.width == 0 || !req.width.is_multiple_of(32) {
            return invalid(
                "width",
                format!("must be a positive multiple of 32, got {}", req.width),
            );
        }
        if req.height == 0 || !req.height.is_multiple_of(32) {
            return invalid(
                "height",
                format!("must be a positive multiple of 32, got {}", req.height),
            );
        }
        if req.num_frames == 0 || !(req.num_frames - 1).is_multiple_of(8) {
            return invalid(
                "num_frames",
                format!("must be 8k + 1, got {}", req.num_frames),
            );
        }
        // The VAE decoder reflect-pads by one latent cell: a one-cell latent (32 px) cannot decode.
        if req.width < 64 || req.height < 64 {
            let field = if req.width < 64 { "width" } else { "height" };
            return invalid(
                field,
                format!("must be at least 64, got {}x{}", req.width, req.height),
            );
        }
        if !(req.fps.is_finite() && req.fps > 0.0) {
            return invalid("fps", format!("must be positive, got {}", req.fps));
        }
        for img in &req.images {
            if img.frame_index >= req.num_frames {
                return invalid(
                    "images",
                    format!(
                        "frame index {} is past the last frame {}",
                        img.frame_index,
                        req.num_frames - 1
                    ),
                );
            }
            if !(0.0..=1.0).contains(&img.strength) {
                return invalid(
                    "images",
                    format!("strength must be in [0, 1], got {}", img.strength),
                );
            }
        }
        if let Some((_, s)) = &req.audio {
            if !(0.0..=1.0).contains(s) {
                return invalid("audio", format!("strength must be in [0, 1], got {s}"));
            }
        }
        if self.info.pipeline == PipelineKind::Dev && req.num_inference_steps == Some(0) {
            return invalid("num_inference_steps", "must be at least 1".into());
        }
        Ok(())
    }
}

/// Tracks stage boundaries from the step callbacks: emits progress and records timings.
struct StageClock<'a> {
    progress: &'a dyn Progress,
    /// Synchronized at each stage end so an asynchronous device (CUDA) charges work to its stage.
    device: &'a Device,
    timings: StageTimings,
    current: Option<(String, Instant)>,
}

impl StageClock<'_> {
    fn start(&mut self, stage: &str) {
        self.finish();
        self.progress.report(ProgressEvent::StageStarted {
            stage: stage.to_string(),
        });
        self.current = Some((stage.to_string(), Instant::now()));
    }

    fn finish(&mut self) {
        if let Some((stage, t)) = self.current.take() {
            // A failed sync surfaces at the next real op; the timing is then moot anyway.
            let _ = self.device.synchronize();
            let elapsed = t.elapsed();
            self.progress.report(ProgressEvent::StageFinished {
                stage: stage.clone(),
                seconds: elapsed.as_secs_f64(),
            });
            self.timings.push(&stage, elapsed);
        }
    }

    fn step(&mut self, stage: &str, e: &StepEvent<'_>) -> Result<(), GenError> {
        if self.current.as_ref().map(|(s, _)| s.as_str()) != Some(stage) {
            self.start(stage);
        }
        self.progress.report(ProgressEvent::Step {
            stage: stage.to_string(),
            step: e.step as u32 + 1,
            total: e.total as u32,
        });
        if self.progress.is_cancelled() {
            return Err(GenError::Cancelled);
        }
        Ok(())
    }
}

impl RunObserver for StageClock<'_> {
    fn stage(&mut self, name: &str) -> Result<(), GenError> {
        self.start(name);
        if self.progress.is_cancelled() {
            return Err(GenError::Cancelled);
        }
        Ok(())
    }

    fn step(&mut self, stage: &str, e: &StepEvent<'_>) -> Result<(), GenError> {
        StageClock::step(self, stage, e)
    }
}

impl Generator for Engine {
    fn info(&self) -> ModelInfo {
        self.info.clone()
    }

    fn generate(
        &mut self,
        req: &GenerateRequest,
        progress: &dyn Progress,
    ) -> Result<GenerateOutput, GenError> {
        self.validate(req)?;
        let kind = self.info.pipeline;
        let m = &self.models;
        let mut notes = vec![];
        let (w, h) = (req.width as usize, req.height as usize);
        let (rw, rh) = match kind {
            PipelineKind::DistilledTwoStage => (w.div_ceil(64) * 64, h.div_ceil(64) * 64),
            _ => (w, h),
        };
        if (rw, rh) != (w, h) {
            notes.push(format!("rendered at {rw}x{rh} (the two-stage recipe needs multiples of 64), centre-cropped to {w}x{h}"));
        }
        let guidance = match kind {
            PipelineKind::Dev => self
                .params
                .guidance(req.guidance_scale, m.transformer.num_blocks()),
            _ => Guidance::disabled(),
        };
        if kind != PipelineKind::Dev {
            if req.guidance_scale != 1.0 {
                notes.push(format!(
                    "guidance_scale {} ignored: the distilled model runs without guidance",
                    req.guidance_scale
                ));
            }
            if let Some(steps) = req.num_inference_steps {
                notes.push(format!(
                    "num_inference_steps {steps} ignored: the distilled model uses its fixed sigmas"
                ));
            }
        } else if req.num_inference_steps.is_none() {
            notes.push(format!(
                "num_inference_steps not given: {} steps, the official {} dev default",
                self.params.num_inference_steps,
                self.params.generation.display_name()
            ));
        }
        let mut clock = StageClock {
            progress,
            device: &m.device,
            timings: StageTimings::default(),
            current: None,
        };

        clock.start("text_encode");
        let ctx = self.text.encode(&req.prompt)?;
        let negative = if guidance.needs_unconditional() {
            Some(self.text.encode(&req.negative_prompt)?)
        } else {
            None
        };

        let num_frames = req.num_frames as usize;
        let audio_frames = AudioLatentShape::from_video(num_frames, req.fps as f64).frames;
        let audio_in = match &req.audio {
            Some((clip, strength)) => {
                clock.start("audio_encode");
                let duration = num_frames as f64 / req.fps as f64;
                let clip = crate::media::audio::trim_clip(clip, 0.0, Some(duration));
                Some(AudioInput {
                    latent: m.encode_audio(&clip, audio_frames)?,
                    strength: *strength,
                })
            }
            None => None,
        };
        let images: Vec<ImageInput> = req
            .images
            .iter()
            .map(|c| ImageInput {
                image: ConditionImage::Rgb(c.image.clone()),
                frame_index: c.frame_index as usize,
                strength: c.strength,
            })
            .collect();
        let spec = RunSpec {
            width: rw,
            height: rh,
            num_frames,
            fps: req.fps,
            images: &images,
            audio: audio_in.as_ref(),
        };
        let mut noise = SeededNoise::new(req.seed);
        let (steps_per_stage, video_latent, audio_latent) = match kind {
            PipelineKind::DistilledTwoStage => {
                let out = distilled_two_stage(m, &spec, &ctx, &mut noise, &mut clock)?;
                (vec![8, 3], out.stage2.video_latent, out.stage2.audio_latent)
            }
            PipelineKind::DistilledOneStage => {
                let out = one_stage(
                    m,
                    &spec,
                    &DISTILLED_SIGMAS,
                    &ctx,
                    None,
                    &guidance,
                    &mut noise,
                    &mut clock,
                )?;
                (vec![8], out.video_latent, out.audio_latent)
            }
            PipelineKind::Dev => {
                let steps =
                    req.num_inference_steps
                        .unwrap_or(self.params.num_inference_steps) as usize;
                let sigmas = Ltx2Scheduler::default().sigmas(steps, None);
                let out = one_stage(
                    m,
                    &spec,
                    &sigmas,
                    &ctx,
                    negative.as_ref(),
                    &guidance,
                    &mut noise,
                    &mut clock,
                )?;
                (vec![steps as u32], out.video_latent, out.audio_latent)
            }
        };

        clock.start("video_decode");
        let pixels = m.decode_video_tiled(&video_latent)?;
        let frames = pixels_to_frames(&pixels, w, h)?;
        let audio = match (&req.audio, req.include_audio) {
            (_, false) => None,
            (Some((clip, s)), true) if *s >= 1.0 => {
                notes.push(
                    "audio returned unchanged: it conditioned the video at strength 1".into(),
                );
                Some(clip.clone())
            }
            _ => {
                clock.start("audio_decode");
                Some(waveform_to_clip(
                    &m.decode_audio(&audio_latent)?,
                    m.vocoder_rate(),
                )?)
            }
        };
        clock.finish();
        if self.info.is_demo {
            notes.push("demo model: random weights, the output is noise".into());
        }
        let effective = EffectiveParams {
            pipeline: kind,
            steps_per_stage,
            forwards_per_step: guidance.forwards_per_step(),
            guidance_scale: if kind == PipelineKind::Dev {
                req.guidance_scale
            } else {
                1.0
            },
            negative_prompt_used: negative.is_some(),
            rendered_width: rw as u32,
            rendered_height: rh as u32,
            num_frames: req.num_frames,
            fps: req.fps,
            seed: req.seed,
            notes,
        };
        Ok(GenerateOutput {
            video: VideoFrames {
                width: w as u32,
                height: h as u32,
                fps: req.fps,
                frames,
            },
            audio,
            effective,
            timings: clock.timings,
        })
    }
}

/// CUDA device 0 when built with CUDA and one is present, else the CPU.
pub fn best_device() -> Result<Device, GenError> {
    Ok(Device::cuda_if_available(0)?)
}
