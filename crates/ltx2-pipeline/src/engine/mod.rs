//! The [`Generator`] implementation: loads a model folder (or builds the demo model), validates a
//! request against what the model can do, runs the recipe and decodes frames and audio.
//!
//! Sizes: the two-stage distilled recipe runs stage 1 at half size, so it renders multiples of
//! 64. A requested size that is a multiple of 32 but not of 64 (the spec's 288x512) is rendered
//! at the next multiples of 64 (320x512) and the decoded frames are centre-cropped to exactly the
//! requested size; conditioning images are cover-resized to the rendered size, so the crop keeps
//! their centre. `EffectiveParams.rendered_{width,height}` report the rendered size and a note
//! says so. One-stage and dev recipes render multiples of 32 as requested.

use candle_core::{DType, Device};
use ltx2_model::generation::Generation;
use ltx2_model::quantization::{GemmaQuantization, Quantization};
use ltx2_model::text::{TextEncoder, TextEncoderOptions};

use crate::api::*;
use crate::components::{
    pixels_to_frames, waveform_to_clip, ConditionImage, Models, PromptEncoder,
};
use crate::demo;
use crate::denoise::Contexts;
use crate::guidance::Guidance;
use crate::latents::AudioLatentShape;
pub use crate::model_files::{ModelFiles, ModelFolder, SplitModelFiles};

mod clip;
mod clock;
mod ic_lora;
mod validate;
use crate::noise::SeededNoise;
use crate::params::PipelineParams;
use crate::pipelines::{
    distilled_two_stage, one_stage, AudioInput, ImageInput, RunSpec, ANCESTRAL_NOISE_SEED_OFFSET,
};
use crate::schedule::{Ltx2Scheduler, DISTILLED_SIGMAS};
use clock::StageClock;

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
    /// Per-request LoRA sets (models loaded from a folder; not the demo or bench models).
    loras: Option<crate::loras::LoraState>,
}

/// How to load a model beyond where it comes from (`ltx2 serve/generate/worker` flags).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LoadOptions {
    /// How the DiT's block linears are stored and multiplied (`--quantization`,
    /// `LTX2_QUANTIZATION`): see [`ltx2_model::quantization`]. A mode the checkpoint cannot serve
    /// is a load error.
    pub quantization: Quantization,
    /// How Gemma's projections are held (`--gemma-quantization`, `LTX2_GEMMA_QUANTIZATION`).
    pub gemma_quantization: GemmaQuantization,
    /// The folder requests pick LoRAs from (`--lora-dir`, `LTX2_LORA_DIR`).
    pub lora_dir: Option<std::path::PathBuf>,
    /// Bytes of fused layers of recently used LoRA sets kept for reuse (`--lora-cache-mb`);
    /// 0 fuses on every switch.
    pub lora_cache_bytes: u64,
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
            let name = dir.display().to_string();
            let max_length = ltx2_model::text::LTX2_MAX_LENGTH;
            Ok(Box::new(match ModelFolder::discover(dir)? {
                ModelFolder::Single(files) => {
                    Engine::load(&files, &name, false, max_length, dtype, device, options)?
                }
                ModelFolder::Split(files) => {
                    Engine::load_split(&files, &name, max_length, dtype, device, options)?
                }
            }))
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
            // LTX-2.5 is published only as component files.
            return Err(GenError::InvalidInput {
                field: "model",
                message: format!(
                    "{} says it is {} (model_version {:?}) but is a single-file checkpoint; LTX-2.5 loads from its component files (diffusion_models/, text_encoders/, vae/, ...)",
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
        let info = folder_info(
            name,
            is_demo,
            files.pipeline(),
            identity.generation,
            &models,
            &params,
            options.quantization,
        );
        // The demo's folder is gone after loading: it cannot re-read layers for LoRAs.
        let loras = (!is_demo)
            .then(|| {
                lora_state(
                    options,
                    &files.checkpoint,
                    files.distilled_lora.clone(),
                    dtype,
                    device,
                )
            })
            .transpose()?;
        Ok(Self::with_loras(
            models,
            Box::new(text),
            info,
            params,
            loras,
        ))
    }

    /// LTX-2.5 from its component files ([`SplitModelFiles`]): the transformer with the
    /// connectors, Gemma-4 + projections + tokenizer from the text encoder file, the video VAE
    /// file (diffusion or conv decoder), the audio file, the upscaler and the duration head.
    pub fn load_split(
        files: &SplitModelFiles,
        name: &str,
        max_length: usize,
        dtype: DType,
        device: &Device,
        options: &LoadOptions,
    ) -> Result<Self, GenError> {
        let params = PipelineParams::for_generation(files.generation);
        tracing::info!(
            transformer = %files.transformer.display(),
            text_encoder = %files.text_encoder.display(),
            video_vae = %files.video_vae.display(),
            audio_vae = %files.audio_vae.display(),
            generation = %files.generation,
            "model files"
        );
        tracing::info!(
            quantization = %options.quantization,
            gemma_quantization = %options.gemma_quantization,
            "quantization"
        );
        let mut models = Models::load_split_quantized(files, dtype, device, options.quantization)
            .map_err(|e| GenError::Model(format!("loading {name}: {e}")))?;
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
        let text = TextEncoder::load_split(
            &files.text_encoder,
            &files.transformer,
            &opts,
            dtype,
            device,
        )
        .map_err(|e| {
            GenError::Model(format!(
                "loading the text encoder from {}: {e}",
                files.text_encoder.display()
            ))
        })?;
        let info = folder_info(
            name,
            false,
            files.pipeline(),
            files.generation,
            &models,
            &params,
            options.quantization,
        );
        let loras = Some(lora_state(
            options,
            &files.transformer,
            None,
            dtype,
            device,
        )?);
        Ok(Self::with_loras(
            models,
            Box::new(text),
            info,
            params,
            loras,
        ))
    }

    fn with_loras(
        models: Models,
        text: Box<dyn PromptEncoder>,
        mut info: ModelInfo,
        params: PipelineParams,
        loras: Option<crate::loras::LoraState>,
    ) -> Self {
        if let Some(state) = &loras {
            info.lora_dir = state.catalog().map(|c| c.dir().to_path_buf());
            info.transformer_file = Some(state.checkpoint().to_path_buf());
        }
        Self {
            models,
            text,
            info,
            params,
            loras,
        }
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
            loras: None,
        }
    }

    /// `num_frames: "auto"`: the duration head on the prompt's connector outputs, snapped to the
    /// `8k + 1` grid inside the request's bounds (never below 9 frames, never above
    /// `req.num_frames`, the longest the request allows). Returns `(seconds, frames)`.
    fn predict_num_frames(
        &self,
        ctx: &Contexts,
        req: &GenerateRequest,
        auto: &AutoDuration,
    ) -> Result<(f32, usize), GenError> {
        let head = self
            .models
            .duration_head
            .as_ref()
            .ok_or_else(|| no_duration_head(&self.info))?;
        let fps = req.fps as f64;
        // At least one latent step past the first frame; at most the request's own bound.
        let min_seconds = auto.min_seconds.max(9.0 / fps);
        let max_seconds = auto.max_seconds.min(req.num_frames as f64 / fps);
        let (seconds, frames) = ltx2_model::duration_head::predict_num_frames(
            head,
            Some(&ctx.video),
            Some(&ctx.audio),
            fps,
            min_seconds,
            max_seconds.max(min_seconds),
        )?;
        Ok((seconds, frames.clamp(9, req.num_frames as usize)))
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
        let mut lora_note = None;
        match &mut self.loras {
            Some(state) => {
                state.switch(&mut *self.models.transformer, &req.loras)?;
                lora_note = state.take_last_switch();
            }
            None if !req.loras.is_empty() => {
                return Err(GenError::InvalidInput {
                    field: "loras",
                    message: format!("{} cannot take LoRAs (a model folder can)", self.info.name),
                })
            }
            None => {}
        }
        if matches!(req.clip, Some(ClipInput::Retake(_) | ClipInput::Extend(_))) {
            return self.generate_from_clip(req, progress, lora_note);
        }
        let control = match &req.clip {
            Some(ClipInput::Control(c)) => Some((c, self.ic_lora_factor(req)?)),
            _ => None,
        };
        // Audio at strength 1 is frozen: ltx-pipelines' A2V recipe turns the audio guider off and
        // keeps the positive audio context in the unconditional pass.
        let frozen_audio = matches!(&req.audio, Some((_, s)) if *s >= 1.0);
        let kind = match (control, self.info.pipeline) {
            (Some(_), _) => PipelineKind::IcLora,
            (None, PipelineKind::DevTwoStage) if req.keyframes && !req.images.is_empty() => {
                PipelineKind::KeyframeInterpolation
            }
            (None, PipelineKind::DevTwoStage) if frozen_audio => PipelineKind::A2vidTwoStage,
            (None, kind) => kind,
        };
        let m = &self.models;
        let mut notes: Vec<String> = lora_note.into_iter().collect();
        let (w, h) = (req.width as usize, req.height as usize);
        // IC-LoRA: stage 1 / the reference scale must still be a multiple of 32.
        let q = match (kind, control) {
            (_, Some((_, factor))) => 64 * factor,
            (
                PipelineKind::DistilledTwoStage
                | PipelineKind::DevTwoStage
                | PipelineKind::KeyframeInterpolation
                | PipelineKind::A2vidTwoStage,
                None,
            ) => 64,
            _ => 1,
        };
        let (rw, rh) = (w.div_ceil(q) * q, h.div_ceil(q) * q);
        if (rw, rh) != (w, h) {
            notes.push(format!("rendered at {rw}x{rh} (this recipe needs multiples of {q}), centre-cropped to {w}x{h}"));
        }
        let dev = matches!(
            kind,
            PipelineKind::Dev
                | PipelineKind::DevTwoStage
                | PipelineKind::KeyframeInterpolation
                | PipelineKind::A2vidTwoStage
        );
        let mut guidance = if dev {
            self.params
                .guidance(req.guidance_scale, m.transformer.num_blocks())
        } else {
            Guidance::disabled()
        };
        if frozen_audio {
            guidance.audio = crate::guidance::GuiderParams::disabled();
        }
        if !dev {
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
        let device = m.device.clone();
        let mut clock = StageClock::new(progress, &device);

        clock.start("text_encode");
        let ctx = self.text.encode(&req.prompt)?;
        let negative = if guidance.needs_unconditional() {
            let mut n = self.text.encode(&req.negative_prompt)?;
            if frozen_audio {
                n.audio = ctx.audio.clone();
            }
            Some(n)
        } else {
            None
        };

        let num_frames = match &req.auto_duration {
            Some(auto) => {
                let (seconds, frames) = self.predict_num_frames(&ctx, req, auto)?;
                notes.push(format!(
                    "num_frames auto: the duration head predicted {seconds:.2} s, {frames} frames at {} fps (bounds {:.2} to {:.2} s)",
                    req.fps, auto.min_seconds, auto.max_seconds
                ));
                frames
            }
            None => req.num_frames as usize,
        };
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
                // With an automatic length, an image pinned to the longest clip's last frame
                // belongs to the chosen clip's last frame.
                frame_index: if req.auto_duration.is_some() && c.frame_index + 1 == req.num_frames {
                    num_frames - 1
                } else {
                    c.frame_index as usize
                },
                strength: c.strength,
            })
            .collect();
        if let Some(img) = images.iter().find(|i| i.frame_index >= num_frames) {
            return Err(GenError::InvalidInput {
                field: "images",
                message: format!(
                    "an image is pinned to frame {} but the predicted clip has {num_frames} frames",
                    img.frame_index
                ),
            });
        }
        let spec = RunSpec {
            width: rw,
            height: rh,
            num_frames,
            fps: req.fps,
            images: &images,
            audio: audio_in.as_ref(),
            guiding_keyframes: kind == PipelineKind::KeyframeInterpolation,
        };
        let mut noise = SeededNoise::new(req.seed);
        let (steps_per_stage, video_latent, audio_latent) = match kind {
            PipelineKind::IcLora => {
                let (c, factor) = control.expect("IcLora runs only with a control video");
                self.run_ic_lora(&spec, c, factor, &ctx, &mut noise, &mut clock, &mut notes)?
            }
            PipelineKind::DistilledTwoStage => {
                let mut ancestral = self
                    .params
                    .ancestral_stage1
                    .then(|| SeededNoise::new(req.seed.wrapping_add(ANCESTRAL_NOISE_SEED_OFFSET)));
                let out = distilled_two_stage(
                    m,
                    &spec,
                    &ctx,
                    &mut noise,
                    ancestral
                        .as_mut()
                        .map(|n| n as &mut dyn crate::noise::NoiseSource),
                    &mut clock,
                )?;
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
            PipelineKind::Retake | PipelineKind::Extend => {
                unreachable!("clips run in generate_from_clip")
            }
            PipelineKind::DevTwoStage
            | PipelineKind::KeyframeInterpolation
            | PipelineKind::A2vidTwoStage => {
                let steps =
                    req.num_inference_steps
                        .unwrap_or(self.params.num_inference_steps) as usize;
                let sigmas = Ltx2Scheduler::default().sigmas(steps, None);
                let loras = self.loras.as_mut().ok_or_else(|| {
                    GenError::Model("the dev two-stage recipe needs a model folder".into())
                })?;
                let wanted = req.loras.clone();
                let mut before_stage2 = |models: &mut Models| {
                    loras.switch_with_distilled(&mut *models.transformer, &wanted)
                };
                let out = crate::pipelines::dev_two_stage(
                    &mut self.models,
                    &spec,
                    &sigmas,
                    &ctx,
                    negative.as_ref(),
                    &guidance,
                    &mut noise,
                    &mut before_stage2,
                    &mut clock,
                )?;
                notes.push(format!(
                    "dev two-stage recipe: {steps} guided steps at half size, x2 upsample, 3 distilled steps with {} fused at strength {}",
                    self.loras
                        .as_ref()
                        .and_then(|l| l.distilled_lora())
                        .and_then(|p| p.file_name())
                        .map(|n| n.to_string_lossy().into_owned())
                        .unwrap_or_default(),
                    crate::loras::DISTILLED_LORA_STRENGTH
                ));
                (
                    vec![steps as u32, 3],
                    out.stage2.video_latent,
                    out.stage2.audio_latent,
                )
            }
        };
        let m = &self.models;

        clock.start("video_decode");
        // The LTX-2.5 diffusion decoder's starting noise continues the request's stream, as the
        // official pipeline hands its generator on to the decoder.
        let pixels = m.decode_video_tiled(&video_latent, &mut noise)?;
        let frames = pixels_to_frames(&pixels, w, h)?;
        let audio = match (&req.audio, req.include_audio) {
            (_, false) => None,
            (Some((clip, s)), true) if *s >= 1.0 => {
                notes.push(
                    "audio returned unchanged: it conditioned the video at strength 1".into(),
                );
                if req.auto_duration.is_some() {
                    // Cut to the chosen length (the request was sized for the longest clip).
                    let seconds = num_frames as f64 / req.fps as f64;
                    Some(crate::media::audio::trim_clip(clip, 0.0, Some(seconds)))
                } else {
                    Some(clip.clone())
                }
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
            loras: req.loras.clone(),
            pipeline: kind,
            steps_per_stage,
            forwards_per_step: guidance.forwards_per_step(),
            guidance_scale: if dev { req.guidance_scale } else { 1.0 },
            negative_prompt_used: negative.is_some(),
            rendered_width: rw as u32,
            rendered_height: rh as u32,
            num_frames: num_frames as u32,
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

/// What a model loaded from a folder reports (the LoRA fields are filled by `with_loras`).
fn folder_info(
    name: &str,
    is_demo: bool,
    pipeline: PipelineKind,
    generation: Generation,
    models: &Models,
    params: &PipelineParams,
    quantization: ltx2_model::quantization::Quantization,
) -> ModelInfo {
    let backends = ltx2_model::backends::report(&models.device, models.dtype, quantization);
    tracing::info!(backends = %backends.summary(), "compute backends");
    ModelInfo {
        name: name.to_string(),
        is_demo,
        pipeline,
        device: if models.device.is_cuda() {
            "cuda".into()
        } else {
            "cpu".into()
        },
        dtype: format!("{:?}", models.dtype).to_lowercase(),
        generation: generation.display_name().to_string(),
        audio_sample_rate: models.vocoder_rate(),
        audio_input: models.audio_input(),
        auto_duration: models.duration_head.is_some(),
        default_inference_steps: params.num_inference_steps,
        lora_dir: None,
        transformer_file: None,
        backends,
    }
}

fn lora_state(
    options: &LoadOptions,
    checkpoint: &std::path::Path,
    distilled: Option<std::path::PathBuf>,
    dtype: DType,
    device: &Device,
) -> Result<crate::loras::LoraState, GenError> {
    let catalog = options
        .lora_dir
        .as_deref()
        .map(crate::loras::LoraCatalog::new)
        .transpose()?;
    Ok(crate::loras::LoraState::new(
        catalog,
        checkpoint.to_path_buf(),
        distilled,
        options.quantization,
        dtype,
        device.clone(),
    )
    .with_cache_budget(options.lora_cache_bytes))
}

fn no_duration_head(info: &ModelInfo) -> GenError {
    GenError::InvalidInput {
        field: "num_frames",
        message: format!(
            "\"auto\" needs a model with a duration head (LTX-2.5 with {}); {} has none: give a frame count",
            crate::model_files::DURATION_HEAD_FILE,
            info.generation
        ),
    }
}

/// CUDA device 0 when built with CUDA and one is present, else the CPU.
pub fn best_device() -> Result<Device, GenError> {
    Ok(Device::cuda_if_available(0)?)
}
