//! The loaded models a pipeline runs, and the small operations on them that every pipeline
//! shares (image encoding, audio encoding, decoding to frames and waveforms).

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use ltx2_model::audio_vae::{AudioEncoder, AudioProcessor, Config as AudioVaeConfig};
use ltx2_model::quantization::Quantization;
use ltx2_model::transformer::{
    Blocks, LtxModel, Modality, Perturbations, TextKv, TransformerConfig,
};
use ltx2_model::upsampler::{upsample_video, LatentUpsampler};
use ltx2_model::video_vae::file::{AnyVideoDecoder, VideoVaeFile};
use ltx2_model::video_vae::{DecodeTiling, VideoEncoder};
use ltx2_model::vocoder::{AudioDecodePipeline, Config as VocoderConfig};
use rayon::prelude::*;

use crate::api::{public_message, AudioClip, AudioInputSpec, GenError, RgbImage};
use crate::denoise::{Contexts, ModalityInput, Perturbation, PreparedText, VelocityModel};
use crate::noise::NoiseSource;
use crate::preprocess::image_to_pixels;

/// Prompt -> (video, audio) text contexts (Gemma + feature extractor + connectors).
pub trait PromptEncoder: Send {
    fn encode(&self, prompt: &str) -> candle_core::Result<Contexts>;
}

/// Everything but the text encoder: from one LTX-2 / LTX-2.3 checkpoint (+ the upsampler file),
/// or from the component files of LTX-2.5.
pub struct Models {
    pub transformer: Box<dyn VelocityModel + Send>,
    pub video_encoder: VideoEncoder,
    /// The conv decoder, or LTX-2.5's one-step diffusion decoder.
    pub video_decoder: AnyVideoDecoder,
    /// How [`Self::decode_video_tiled`] splits the decode; ltx-core's blended tiles by default.
    pub video_tiling: DecodeTiling,
    /// Needed by the two-stage recipe only.
    pub upsampler: Option<LatentUpsampler>,
    pub audio_decoder: AudioDecodePipeline,
    pub audio_encoder: AudioEncoder,
    pub audio_processor: AudioProcessor,
    /// LTX-2.5's clip-length head (`model_patches/ltx-2.5-duration-head-bf16.safetensors`).
    pub duration_head: Option<ltx2_model::duration_head::DurationHead>,
    pub dtype: DType,
    pub device: Device,
}

impl Models {
    /// Loads the VAEs, audio VAE and vocoder from a checkpoint `VarBuilder` rooted at the file
    /// and its `config` metadata; the transformer and upsampler are built by the caller.
    pub fn new(
        transformer: Box<dyn VelocityModel + Send>,
        upsampler: Option<LatentUpsampler>,
        config: &serde_json::Value,
        vb: VarBuilder,
    ) -> candle_core::Result<Self> {
        let vae = ltx2_model::video_vae::file::VaeConfigs::from_checkpoint_config(config)?;
        let vae_vb = vb.pp("vae");
        let video_encoder = VideoEncoder::new(&vae.encoder, vae_vb.clone())?;
        let video_decoder = AnyVideoDecoder::new(&vae.decoder, vae_vb, vb.dtype())?;
        Self::assemble(
            transformer,
            upsampler,
            video_encoder,
            video_decoder,
            config,
            vb,
        )
    }

    /// The audio side from a `VarBuilder` rooted where `audio_vae.*` and `vocoder.*` live (the
    /// single checkpoint, or LTX-2.5's audio file) with that file's `config`.
    fn assemble(
        transformer: Box<dyn VelocityModel + Send>,
        upsampler: Option<LatentUpsampler>,
        video_encoder: VideoEncoder,
        video_decoder: AnyVideoDecoder,
        config: &serde_json::Value,
        vb: VarBuilder,
    ) -> candle_core::Result<Self> {
        let audio_cfg = AudioVaeConfig::from_checkpoint_config(config)?;
        let vocoder_cfg = VocoderConfig::from_checkpoint_config(config)?;
        Ok(Self {
            transformer,
            video_encoder,
            video_decoder,
            video_tiling: DecodeTiling::default(),
            upsampler,
            audio_decoder: AudioDecodePipeline::new(&audio_cfg, &vocoder_cfg, vb.clone())?,
            audio_encoder: AudioEncoder::new(&audio_cfg, vb.pp("audio_vae"))?,
            audio_processor: AudioProcessor::new(audio_cfg.mel_config())?,
            duration_head: None,
            dtype: vb.dtype(),
            device: vb.device().clone(),
        })
    }

    /// Loads a checkpoint file (transformer, VAEs, audio VAE, vocoder; `config` metadata) and,
    /// when given, the spatial upsampler file; the DiT as the file stores it.
    pub fn load(
        checkpoint: &std::path::Path,
        upsampler: Option<&std::path::Path>,
        dtype: DType,
        device: &Device,
    ) -> candle_core::Result<Self> {
        Self::load_quantized(checkpoint, upsampler, dtype, device, Quantization::None)
    }

    /// [`Self::load`] with the DiT's block linears under `quantization`.
    pub fn load_quantized(
        checkpoint: &std::path::Path,
        upsampler: Option<&std::path::Path>,
        dtype: DType,
        device: &Device,
        quantization: Quantization,
    ) -> candle_core::Result<Self> {
        let config =
            ltx2_model::checkpoint::read_config(checkpoint)?.unwrap_or(serde_json::Value::Null);
        // SAFETY: the files are memory-mapped read-only and not modified while the models live.
        let vb = unsafe { VarBuilder::from_mmaped_safetensors(&[checkpoint], dtype, device)? };
        let upsampler = upsampler
            .map(|p| LatentUpsampler::from_file(p, dtype, device))
            .transpose()?;
        // The checked loader names missing or mis-shaped DiT keys, refuses a mode the file cannot
        // serve, and keeps FP8 layers in FP8.
        let transformer = ltx2_model::checkpoint::Checkpoint::open(checkpoint)
            .and_then(|c| c.load_transformer_quantized(dtype, device, quantization))
            .map_err(|e| candle_core::Error::Msg(e.to_string()))?;
        Self::new(Box::new(transformer), upsampler, &config, vb)
    }

    /// Loads LTX-2.5's component files: the transformer (checked loader), the video VAE file
    /// (encoder + conv or diffusion decoder), the audio file (audio VAE + vocoder), the upscaler;
    /// the DiT as the file stores it.
    pub fn load_split(
        files: &crate::model_files::SplitModelFiles,
        dtype: DType,
        device: &Device,
    ) -> candle_core::Result<Self> {
        Self::load_split_quantized(files, dtype, device, Quantization::None)
    }

    /// [`Self::load_split`] with the DiT's block linears under `quantization`.
    pub fn load_split_quantized(
        files: &crate::model_files::SplitModelFiles,
        dtype: DType,
        device: &Device,
        quantization: Quantization,
    ) -> candle_core::Result<Self> {
        let ctx = |what: &str, path: &std::path::Path| {
            let (what, path) = (what.to_string(), path.display().to_string());
            move |e: candle_core::Error| candle_core::Error::Msg(format!("{what} {path}: {e}"))
        };
        let transformer = ltx2_model::checkpoint::Checkpoint::open(&files.transformer)
            .and_then(|c| c.load_transformer_quantized(dtype, device, quantization))
            .map_err(|e| candle_core::Error::Msg(e.to_string()))?;
        let vae = VideoVaeFile::load(&files.video_vae, dtype, device)
            .map_err(ctx("video VAE", &files.video_vae))?;
        let upsampler = files
            .upsampler
            .as_ref()
            .map(|p| LatentUpsampler::from_file(p, dtype, device).map_err(ctx("upscaler", p)))
            .transpose()?;
        let duration_head = match &files.duration_head {
            Some(p) => ltx2_model::duration_head::DurationHead::from_file(p, dtype, device)
                .map_err(ctx("duration head", p))?,
            None => None,
        };
        let audio = &files.audio_vae;
        let config = ltx2_model::checkpoint::read_config(audio)?.unwrap_or(serde_json::Value::Null);
        // SAFETY: the file is memory-mapped read-only and not modified while the models live.
        let vb = unsafe { VarBuilder::from_mmaped_safetensors(&[audio], dtype, device)? };
        let mut models = Self::assemble(
            Box::new(transformer),
            upsampler,
            vae.encoder,
            vae.decoder,
            &config,
            vb,
        )
        .map_err(ctx("audio VAE", audio))?;
        models.duration_head = duration_head;
        Ok(models)
    }

    /// Builds every component from a `VarBuilder` rooted at the checkpoint layout.
    pub fn from_var_builder(
        config: &serde_json::Value,
        vb: VarBuilder,
        upsampler: Option<LatentUpsampler>,
    ) -> candle_core::Result<Self> {
        let tcfg = TransformerConfig::from_checkpoint_config(config)
            .map_err(|e| candle_core::Error::Msg(e.to_string()))?;
        let transformer = LtxModel::new(&tcfg, vb.pp("model.diffusion_model"))?;
        Self::new(Box::new(transformer), upsampler, config, vb)
    }

    pub fn latent_channels(&self) -> usize {
        self.video_decoder.latent_channels()
    }

    /// Encodes a conditioning image at `height x width` pixels: `(1, C, 1, h, w)`.
    pub fn encode_image(
        &self,
        image: &ConditionImage,
        height: usize,
        width: usize,
    ) -> candle_core::Result<Tensor> {
        let pixels = match image {
            ConditionImage::Rgb(img) => image_to_pixels(img, height, width, &self.device)?,
            ConditionImage::Pixels(t) => {
                let (_, _, _, h, w) = t.dims5()?;
                if (h, w) != (height, width) {
                    candle_core::bail!(
                        "prepared image is {w}x{h}, the stage needs {width}x{height}"
                    );
                }
                t.clone()
            }
        };
        self.video_encoder
            .encode(&pixels.to_dtype(self.dtype)?.to_device(&self.device)?)
    }

    /// Encodes a clip's frames (ltx-pipelines `load_video_conditioning`: each frame
    /// cover-resized, centre-cropped and normalized like an image, then one VAE encode; the
    /// encoder drops frames past the last `8k + 1`).
    pub fn encode_video(
        &self,
        frames: &[RgbImage],
        height: usize,
        width: usize,
    ) -> candle_core::Result<Tensor> {
        let pixels = frames
            .iter()
            .map(|f| image_to_pixels(f, height, width, &self.device))
            .collect::<candle_core::Result<Vec<_>>>()?;
        let pixels = Tensor::cat(&pixels, 2)?;
        self.video_encoder.encode(&pixels.to_dtype(self.dtype)?)
    }

    /// Encodes conditioning audio into `frames` latent frames (truncated or zero-padded, as
    /// ltx-pipelines `_conform_latent_length`).
    pub fn encode_audio(&self, clip: &AudioClip, frames: usize) -> Result<Tensor, GenError> {
        let media = |message: String| GenError::Media {
            field: "audio",
            message,
        };
        if clip.channels.is_empty() || clip.num_samples() == 0 {
            return Err(media("the audio has no samples".into()));
        }
        let wave = crate::media::audio::stereo_waveform(clip, &self.device)
            .map_err(|e| media(public_message(&e)))?;
        let mel = self
            .audio_processor
            .waveform_to_mel(&wave, clip.sample_rate as usize)
            .map_err(|e| media(public_message(&e)))?;
        let latent = self.audio_encoder.encode(&mel.to_dtype(self.dtype)?)?;
        Ok(conform_frames(&latent, frames)?)
    }

    /// Stage-1 latent -> stage-2 initial latent (x2 in space), in normalized space.
    pub fn upsample(&self, latent: &Tensor) -> Result<Tensor, GenError> {
        let up = self
            .upsampler
            .as_ref()
            .ok_or_else(|| GenError::Model("no spatial upsampler loaded".into()))?;
        Ok(upsample_video(
            latent,
            up,
            self.video_encoder.per_channel_statistics(),
        )?)
    }

    /// Normalized latent -> float pixels `(1, 3, F, H, W)` (unclamped). `noise` feeds the
    /// LTX-2.5 diffusion decoder's starting noise (the conv decoders draw nothing).
    pub fn decode_video(
        &self,
        latent: &Tensor,
        noise: &mut dyn NoiseSource,
    ) -> candle_core::Result<Tensor> {
        let dev = latent.device().clone();
        self.video_decoder
            .decode(latent, &mut |shape| noise.draw(shape, DType::F32, &dev))
    }

    /// [`Self::decode_video`] split as [`Self::video_tiling`] says. The default is ltx-core's
    /// `TilingConfig.default()` (512 px / 64 px overlap, 64 frames / 24 overlap), as the official
    /// CLI decodes: bounded memory at large sizes, a single tile (= untiled) for small videos.
    /// `DecodeTiling::Exact` equals the untiled decode but only bounds memory in space.
    pub fn decode_video_tiled(
        &self,
        latent: &Tensor,
        noise: &mut dyn NoiseSource,
    ) -> candle_core::Result<Tensor> {
        let dev = latent.device().clone();
        self.video_decoder
            .decode_with(latent, &self.video_tiling, &mut |shape| {
                noise.draw(shape, DType::F32, &dev)
            })
    }

    /// Normalized audio latent -> waveform `(2, N)` at the vocoder rate.
    pub fn decode_audio(&self, latent: &Tensor) -> candle_core::Result<Tensor> {
        self.audio_decoder.decode_audio(latent)?.squeeze(0)
    }

    /// What conditioning audio [`Self::encode_audio`] takes.
    pub fn audio_input(&self) -> AudioInputSpec {
        let mel = self.audio_processor.config();
        AudioInputSpec {
            sample_rate: mel.sample_rate as u32,
            min_samples: mel.n_fft / 2 + 1,
        }
    }

    pub fn vocoder_rate(&self) -> u32 {
        self.audio_decoder.vocoder.output_sampling_rate() as u32
    }
}

/// A conditioning image: decoded RGB (resized per stage), or pixels already prepared at the
/// stage's size (tests feeding the goldens' inputs).
#[derive(Debug, Clone)]
pub enum ConditionImage {
    Rgb(RgbImage),
    Pixels(Tensor),
}

/// Truncates or zero-pads dim 2 to `frames`.
pub fn conform_frames(latent: &Tensor, frames: usize) -> candle_core::Result<Tensor> {
    let have = latent.dim(2)?;
    if have >= frames {
        return latent.narrow(2, 0, frames);
    }
    let mut dims = latent.dims().to_vec();
    dims[2] = frames - have;
    let pad = Tensor::zeros(dims, latent.dtype(), latent.device())?;
    Tensor::cat(&[latent, &pad], 2)
}

/// Float pixels `(1, 3, F, H, W)` in ~[-1, 1] -> RGB8 frames, `((x + 1) / 2).clamp(0, 1) * 255`
/// truncated (ltx-core `decode_video`), cropped to `width x height` around the centre. One pass
/// over the pixels, frames in parallel (the chain of tensor ops it replaces made eight full-size
/// passes, as long as the video decode itself).
pub fn pixels_to_frames(
    pixels: &Tensor,
    width: usize,
    height: usize,
) -> candle_core::Result<Vec<Vec<u8>>> {
    let (_, c, f, h, w) = pixels.dims5()?;
    if c != 3 {
        candle_core::bail!("pixels_to_frames: expected 3 channels, got {c}");
    }
    let (top, left) = (
        (h.saturating_sub(height)) / 2,
        (w.saturating_sub(width)) / 2,
    );
    let (height, width) = (height.min(h), width.min(w));
    let x = pixels
        .squeeze(0)?
        .to_dtype(DType::F32)?
        .to_device(&Device::Cpu)?
        .contiguous()?;
    let (storage, layout) = x.storage_and_layout();
    let candle_core::Storage::Cpu(cpu) = &*storage else {
        candle_core::bail!("pixels_to_frames: pixels are not on the CPU");
    };
    let (start, _) = layout
        .contiguous_offsets()
        .expect("contiguous() gives a contiguous layout");
    let data = &cpu.as_slice::<f32>()?[start..];
    let plane = f * h * w;
    Ok((0..f)
        .into_par_iter()
        .map(|i| {
            let mut frame = vec![0u8; height * width * 3];
            for (y, out) in (top..top + height).zip(frame.chunks_exact_mut(width * 3)) {
                let row = |ch: usize| {
                    let at = ch * plane + (i * h + y) * w + left;
                    &data[at..at + width]
                };
                rgb_row(out, [row(0), row(1), row(2)]);
            }
            frame
        })
        .collect())
}

/// `((x + 1) / 2).clamp(0, 1) * 255` truncated, as candle computes it in f32 (NaN gives 0, as
/// `as u8` did), for three channel rows interleaved into `out`.
#[inline(always)]
fn rgb_row_generic(out: &mut [u8], rows: [&[f32]; 3]) {
    let n = out.len() / 3;
    let [r, g, b] = rows.map(|row| &row[..n]);
    let px = |v: f32| {
        // `max`/`min` map NaN to the other operand: 0 (`clamp` would keep the NaN).
        #[allow(clippy::manual_clamp)]
        let v = ((v + 1.0) * 0.5).max(0.0).min(1.0) * 255.0;
        // SAFETY: v is in [0, 255].
        unsafe { v.to_int_unchecked::<i32>() as u8 }
    };
    for (i, o) in out.chunks_exact_mut(3).enumerate() {
        o[0] = px(r[i]);
        o[1] = px(g[i]);
        o[2] = px(b[i]);
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn rgb_row_avx2(out: &mut [u8], rows: [&[f32]; 3]) {
    rgb_row_generic(out, rows)
}

/// [`rgb_row_generic`], built for AVX2 where the CPU has it (the crate targets baseline x86-64).
fn rgb_row(out: &mut [u8], rows: [&[f32]; 3]) {
    #[cfg(target_arch = "x86_64")]
    if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
        // SAFETY: the CPU has AVX2 and FMA.
        return unsafe { rgb_row_avx2(out, rows) };
    }
    rgb_row_generic(out, rows)
}

/// `(2, N)` waveform -> [`AudioClip`].
pub fn waveform_to_clip(wave: &Tensor, sample_rate: u32) -> candle_core::Result<AudioClip> {
    let rows = wave
        .to_dtype(DType::F32)?
        .to_device(&Device::Cpu)?
        .to_vec2::<f32>()?;
    Ok(AudioClip {
        sample_rate,
        channels: rows,
    })
}

fn blocks(list: &[usize]) -> Blocks {
    if list.is_empty() {
        Blocks::None
    } else {
        Blocks::Only(list.to_vec())
    }
}

impl VelocityModel for LtxModel {
    fn ltx_model_mut(&mut self) -> Option<&mut LtxModel> {
        Some(self)
    }

    fn velocity(
        &self,
        video: ModalityInput<'_>,
        audio: ModalityInput<'_>,
        p: &Perturbation,
    ) -> candle_core::Result<(Tensor, Tensor)> {
        self.velocity_with_text(video, audio, p, None)
    }

    fn prepare_text(&self, ctx: &Contexts) -> candle_core::Result<Option<PreparedText>> {
        // With cross-attention AdaLN (2.3) the text keys/values change with sigma: nothing to
        // precompute, the sampler runs the plain forward every step.
        if !self.text_kv_cacheable() {
            return Ok(None);
        }
        // The pipelines pass no text mask (as in `velocity_with_text`).
        let text = LtxModel::prepare_text(self, &ctx.video, None, &ctx.audio, None)?;
        Ok(Some(std::sync::Arc::new(text)))
    }

    fn velocity_with_text(
        &self,
        video: ModalityInput<'_>,
        audio: ModalityInput<'_>,
        p: &Perturbation,
        text: Option<&PreparedText>,
    ) -> candle_core::Result<(Tensor, Tensor)> {
        let text = text
            .map(|t| {
                t.downcast_ref::<TextKv>().ok_or_else(|| {
                    candle_core::Error::Msg("prepared text is not the transformer's".into())
                })
            })
            .transpose()?;
        let modality = |m: ModalityInput<'_>| -> candle_core::Result<Modality> {
            Ok(Modality {
                latent: m.latent.clone(),
                timesteps: m.timesteps.clone(),
                positions: m.positions.clone(),
                context: m.context.clone(),
                context_mask: None,
                sigma: Tensor::new(&[m.sigma], m.latent.device())?.to_dtype(m.latent.dtype())?,
                // The 2.0 / 2.3 transformers have no keyframe embedding.
                keyframes_mask: m.keyframes_mask.cloned(),
                attention_mask: m.attention_mask.cloned(),
            })
        };
        let all_or_none = |b: bool| if b { Blocks::All } else { Blocks::None };
        let perturbations = Perturbations {
            skip_video_self_attn: blocks(&p.skip_video_self_attn),
            skip_audio_self_attn: blocks(&p.skip_audio_self_attn),
            skip_a2v_cross_attn: all_or_none(p.skip_a2v),
            skip_v2a_cross_attn: all_or_none(p.skip_v2a),
        };
        let (video, audio) = (modality(video)?, modality(audio)?);
        match text {
            Some(t) => self.forward_with_text(&video, &audio, &perturbations, t),
            None => self.forward(&video, &audio, &perturbations),
        }
    }

    fn num_blocks(&self) -> usize {
        self.config().num_layers
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A tiny transformer with zero weights, in the 2.0 or the 2.3 layout.
    fn tiny(ltx23: bool) -> LtxModel {
        let cfg = TransformerConfig {
            num_layers: 1,
            num_attention_heads: 2,
            attention_head_dim: 8,
            cross_attention_dim: 16,
            audio_num_attention_heads: 2,
            audio_attention_head_dim: 4,
            audio_cross_attention_dim: 8,
            caption_channels: 12,
            apply_gated_attention: ltx23,
            cross_attention_adaln: ltx23,
            caption_proj_before_connector: ltx23,
            ..TransformerConfig::ltx2_19b()
        };
        LtxModel::new(&cfg, VarBuilder::zeros(DType::F32, &Device::Cpu)).unwrap()
    }

    #[test]
    fn text_keys_values_are_prepared_only_without_cross_attention_adaln() {
        let contexts = |video: usize, audio: usize| Contexts {
            video: Tensor::zeros((1, 3, video), DType::F32, &Device::Cpu).unwrap(),
            audio: Tensor::zeros((1, 3, audio), DType::F32, &Device::Cpu).unwrap(),
        };
        let ltx2 = tiny(false);
        assert!(VelocityModel::prepare_text(&ltx2, &contexts(12, 12))
            .unwrap()
            .is_some());
        // 2.3: the sampler gets nothing to reuse and runs the plain forward every step.
        let ltx23 = tiny(true);
        assert!(VelocityModel::prepare_text(&ltx23, &contexts(16, 8))
            .unwrap()
            .is_none());
    }

    #[test]
    fn frames_are_the_truncated_clamped_pixels_cropped_around_the_centre() {
        // Values beyond [-1, 1] on both sides, an odd crop, and a strided (non-contiguous) input.
        let pixels = (Tensor::randn(0f32, 0.8, (1, 3, 4, 6, 9), &Device::Cpu).unwrap() * 1.5)
            .unwrap()
            .transpose(3, 4)
            .unwrap();
        let frames = pixels_to_frames(&pixels, 4, 5).unwrap();
        // (w, h) = (6, 9) crop to 4 x 5: top 2, left 1.
        let x = pixels
            .squeeze(0)
            .unwrap()
            .narrow(2, 2, 5)
            .unwrap()
            .narrow(3, 1, 4)
            .unwrap();
        let expected = ((x + 1.0).unwrap() / 2.0)
            .unwrap()
            .clamp(0f32, 1f32)
            .unwrap()
            .affine(255.0, 0.0)
            .unwrap()
            .permute((1, 2, 3, 0))
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        assert_eq!(frames.len(), 4);
        let got: Vec<u8> = frames.concat();
        let want: Vec<u8> = expected.iter().map(|&v| v as u8).collect();
        assert_eq!(got, want);
        assert!(want.contains(&0) && want.contains(&255));
    }
}
