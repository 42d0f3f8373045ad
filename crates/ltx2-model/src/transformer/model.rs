//! `model.py::LTXModel` (audio+video) and the X0 conversion: patchify projections, the keyframe
//! absolute-position embedding (2.5), per-token AdaLN, caption projections (2.0) or the σ-driven
//! prompt AdaLN (2.3), RoPE, the A↔V cross-modal AdaLN inputs, 48 blocks, output heads.

use candle_core::{DType, Module, Result, Tensor};
use candle_nn::VarBuilder;

use super::block::{BasicAvTransformerBlock, StreamArgs, TextContext};
use super::config::{AvCrossAdaln, TransformerConfig, AV_CA_ROWS, PROMPT_ADALN_ROWS};
use super::norm::{additive_mask, layer_norm, log_attention_bias};
use super::perturbations::Perturbations;
use super::rope::{split_rope_from_bounds, RopeSpec};
use super::text::{StreamText, TextKv};
use super::timestep::AdaLayerNormSingle;
use crate::linear::{linear, tensor_bytes, Linear};
use crate::quantization::Quantization;

/// One modality's transformer input (ltx-core `Modality`).
#[derive(Debug, Clone)]
pub struct Modality {
    /// Patchified latent `(B, T, C)`.
    pub latent: Tensor,
    /// Per-token timesteps `(B, T, 1)` = `denoise_mask · σ` (not yet ×1000).
    pub timesteps: Tensor,
    /// `[start, end)` positions `(B, n_axes, T, 2)`: video (seconds, px, px), audio (seconds).
    /// RoPE arithmetic on them runs in their dtype: ltx-core 1.0.0 passes video positions in the
    /// latent dtype (bf16 in the bf16 pipelines) and audio positions in f32.
    pub positions: Tensor,
    /// Text context (connector output): `(B, S, caption_channels)` in 2.0, `(B, S, D)` at the
    /// stream width with `caption_proj_before_connector` (2.3).
    pub context: Tensor,
    /// Keep-mask `(B, S)` (1 = attend, 0 = padding), any dtype; `None` = attend to all tokens
    /// (what the pipelines pass).
    pub context_mask: Option<Tensor>,
    /// `σ` per sample `(B,)` (f32 in ltx-core); feeds the *other* modality's A↔V AdaLN (its gate,
    /// and with [`AvCrossAdaln::OtherSigma`] its scale/shift too) and, with the prompt AdaLN, this
    /// modality's `prompt_adaln_single`.
    pub sigma: Tensor,
    /// `(B, T, 1)`, non-zero on the tokens that encode a single standalone pixel frame (ltx-core
    /// 1.2.0 `keyframes_mask`: the first latent frame of the generated video and any generated
    /// keyframe slots); they get `keyframes_abs_pos_embedding` added. Ignored by models without
    /// `use_keyframes_abs_pos_embedding`; `None` marks no token.
    pub keyframes_mask: Option<Tensor>,
    /// `(B, T, T)` self-attention weights in [0, 1] (ltx-core `Modality.attention_mask`; IC-LoRA's
    /// conditioning attention strength between generated and reference tokens), applied as the
    /// additive bias `log(w)` (`w <= 0`: the dtype's lowest value); `None` = full attention.
    pub attention_mask: Option<Tensor>,
}

/// `PixArtAlphaTextProjection`: `linear_1 -> GELU(tanh) -> linear_2`.
#[derive(Debug, Clone)]
pub struct CaptionProjection {
    pub linear_1: Linear,
    pub linear_2: Linear,
}

impl CaptionProjection {
    pub fn new(in_dim: usize, dim: usize, vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            linear_1: linear(in_dim, dim, vb.pp("linear_1"))?,
            linear_2: linear(dim, dim, vb.pp("linear_2"))?,
        })
    }
}

impl Module for CaptionProjection {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.linear_2.forward(&self.linear_1.forward(x)?.gelu()?)
    }
}

/// The non-block modules of one stream. The video keys have no prefix (`patchify_proj`), the audio
/// keys an `audio_` prefix (`audio_patchify_proj`); the A↔V AdaLNs are named per direction.
#[derive(Debug, Clone)]
pub struct StreamModules {
    pub patchify_proj: Linear,
    pub adaln_single: AdaLayerNormSingle,
    /// 2.0 only: absent with `caption_proj_before_connector`.
    pub caption_projection: Option<CaptionProjection>,
    /// `prompt_adaln_single` / `audio_prompt_adaln_single` (`cross_attention_adaln` only).
    pub prompt_adaln_single: Option<AdaLayerNormSingle>,
    /// `av_ca_{video,audio}_scale_shift_adaln_single`
    pub av_ca_scale_shift_adaln_single: AdaLayerNormSingle,
    /// `av_ca_a2v_gate_adaln_single` (video) / `av_ca_v2a_gate_adaln_single` (audio)
    pub av_ca_gate_adaln_single: AdaLayerNormSingle,
    /// Output head table `(2, D)`: row 0 shift, row 1 scale.
    pub scale_shift_table: Tensor,
    /// `keyframes_abs_pos_embedding` `(1, D)` (video, `use_keyframes_abs_pos_embedding` only).
    pub keyframes_abs_pos_embedding: Option<Tensor>,
    pub proj_out: Linear,
    rope: RopeSpec,
    cross_rope: RopeSpec,
}

impl StreamModules {
    /// Bytes the stream's non-block modules hold.
    pub fn resident_bytes(&self) -> u64 {
        let adalns = [
            Some(&self.adaln_single),
            self.prompt_adaln_single.as_ref(),
            Some(&self.av_ca_scale_shift_adaln_single),
            Some(&self.av_ca_gate_adaln_single),
        ];
        let caption = self.caption_projection.as_ref().map_or(0, |c| {
            c.linear_1.resident_bytes() + c.linear_2.resident_bytes()
        });
        self.patchify_proj.resident_bytes()
            + adalns
                .into_iter()
                .flatten()
                .map(|a| a.resident_bytes())
                .sum::<u64>()
            + caption
            + tensor_bytes(&self.scale_shift_table)
            + self
                .keyframes_abs_pos_embedding
                .as_ref()
                .map_or(0, tensor_bytes)
            + self.proj_out.resident_bytes()
    }

    /// The DiT's side of the text context: the caption projection in 2.0, the identity when the
    /// projection ran before the connector (2.3).
    pub fn project_context(&self, context: &Tensor) -> Result<Tensor> {
        match &self.caption_projection {
            Some(p) => p.forward(context),
            None => Ok(context.clone()),
        }
    }
}

/// A stream after the preprocessing of ltx-core's `TransformerArgsPreprocessor`.
#[derive(Debug, Clone)]
pub struct PreparedStream {
    /// Patchified and projected tokens `(B, T, D)`.
    pub x: Tensor,
    pub args: StreamArgs,
    /// `(B, T, D)`, used by the output head.
    pub embedded_timestep: Tensor,
}

#[derive(Debug, Clone)]
pub struct LtxModel {
    cfg: TransformerConfig,
    pub video: StreamModules,
    pub audio: StreamModules,
    pub transformer_blocks: Vec<BasicAvTransformerBlock>,
}

/// Float tensors as they are, integer ones as f32.
fn float(t: &Tensor) -> Result<Tensor> {
    match t.dtype() {
        DType::F16 | DType::BF16 | DType::F32 | DType::F64 => Ok(t.clone()),
        _ => t.to_dtype(DType::F32),
    }
}

/// `x0 = latent − velocity · timesteps` per token, computed in f32, returned in the latent dtype.
pub fn to_denoised(latent: &Tensor, velocity: &Tensor, timesteps: &Tensor) -> Result<Tensor> {
    let f = |t: &Tensor| t.to_dtype(DType::F32);
    f(latent)?
        .sub(&f(velocity)?.broadcast_mul(&f(timesteps)?)?)?
        .to_dtype(latent.dtype())
}

impl LtxModel {
    /// `vb` rooted at `model.diffusion_model`, every layer as the file stores it. The config must
    /// have passed [`TransformerConfig::validate`].
    pub fn new(cfg: &TransformerConfig, vb: VarBuilder) -> Result<Self> {
        Self::new_quantized(cfg, Quantization::None, vb)
    }

    /// [`Self::new`] with the blocks' linears loaded under `quantization` (ltx-core's policies
    /// touch only `transformer_blocks.*`).
    pub fn new_quantized(
        cfg: &TransformerConfig,
        quantization: Quantization,
        vb: VarBuilder,
    ) -> Result<Self> {
        cfg.validate()
            .map_err(|e| candle_core::Error::Msg(e.to_string()))?;
        let (d, da) = (cfg.inner_dim(), cfg.audio_inner_dim());
        let rows = cfg.adaln_rows();
        let caption_projection = |dim: usize, name: &str| {
            cfg.has_caption_projection()
                .then(|| CaptionProjection::new(cfg.caption_channels, dim, vb.pp(name)))
                .transpose()
        };
        let prompt_adaln = |dim: usize, name: &str| {
            cfg.has_prompt_adaln()
                .then(|| AdaLayerNormSingle::new(dim, PROMPT_ADALN_ROWS, vb.pp(name)))
                .transpose()
        };
        let cross_rope = |heads: usize| RopeSpec {
            max_pos: vec![cfg.cross_pe_max_pos()],
            theta: cfg.positional_embedding_theta,
            inner_dim: cfg.audio_cross_attention_dim,
            heads,
            precision: cfg.frequencies_precision,
        };
        let video = StreamModules {
            patchify_proj: linear(cfg.in_channels, d, vb.pp("patchify_proj"))?,
            adaln_single: AdaLayerNormSingle::new(d, rows, vb.pp("adaln_single"))?,
            caption_projection: caption_projection(d, "caption_projection")?,
            prompt_adaln_single: prompt_adaln(d, "prompt_adaln_single")?,
            av_ca_scale_shift_adaln_single: AdaLayerNormSingle::new(
                d,
                AV_CA_ROWS,
                vb.pp("av_ca_video_scale_shift_adaln_single"),
            )?,
            av_ca_gate_adaln_single: AdaLayerNormSingle::new(
                d,
                1,
                vb.pp("av_ca_a2v_gate_adaln_single"),
            )?,
            scale_shift_table: vb.get((2, d), "scale_shift_table")?,
            keyframes_abs_pos_embedding: cfg
                .use_keyframes_abs_pos_embedding
                .then(|| vb.get((1, d), "keyframes_abs_pos_embedding"))
                .transpose()?,
            proj_out: linear(d, cfg.out_channels, vb.pp("proj_out"))?,
            rope: RopeSpec {
                max_pos: cfg.positional_embedding_max_pos.clone(),
                theta: cfg.positional_embedding_theta,
                inner_dim: d,
                heads: cfg.num_attention_heads,
                precision: cfg.frequencies_precision,
            },
            cross_rope: cross_rope(cfg.num_attention_heads),
        };
        let audio = StreamModules {
            patchify_proj: linear(cfg.audio_in_channels, da, vb.pp("audio_patchify_proj"))?,
            adaln_single: AdaLayerNormSingle::new(da, rows, vb.pp("audio_adaln_single"))?,
            caption_projection: caption_projection(da, "audio_caption_projection")?,
            prompt_adaln_single: prompt_adaln(da, "audio_prompt_adaln_single")?,
            av_ca_scale_shift_adaln_single: AdaLayerNormSingle::new(
                da,
                AV_CA_ROWS,
                vb.pp("av_ca_audio_scale_shift_adaln_single"),
            )?,
            av_ca_gate_adaln_single: AdaLayerNormSingle::new(
                da,
                1,
                vb.pp("av_ca_v2a_gate_adaln_single"),
            )?,
            scale_shift_table: vb.get((2, da), "audio_scale_shift_table")?,
            keyframes_abs_pos_embedding: None,
            proj_out: linear(da, cfg.audio_out_channels, vb.pp("audio_proj_out"))?,
            rope: RopeSpec {
                max_pos: cfg.audio_positional_embedding_max_pos.clone(),
                theta: cfg.positional_embedding_theta,
                inner_dim: da,
                heads: cfg.audio_num_attention_heads,
                precision: cfg.frequencies_precision,
            },
            cross_rope: cross_rope(cfg.audio_num_attention_heads),
        };
        let blocks = vb.pp("transformer_blocks");
        let transformer_blocks = (0..cfg.num_layers)
            .map(|i| BasicAvTransformerBlock::new(i, cfg, quantization, blocks.pp(i)))
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            cfg: cfg.clone(),
            video,
            audio,
            transformer_blocks,
        })
    }

    /// Bytes the DiT's weights hold as loaded (FP8 layers at one byte per weight plus their
    /// scales), not counting the shared FP8 dequantization scratch.
    pub fn resident_bytes(&self) -> u64 {
        self.video.resident_bytes()
            + self.audio.resident_bytes()
            + self
                .transformer_blocks
                .iter()
                .map(|b| b.resident_bytes())
                .sum::<u64>()
    }

    pub fn config(&self) -> &TransformerConfig {
        &self.cfg
    }

    /// The dtype the model computes in (that of its weights).
    pub fn dtype(&self) -> DType {
        self.video.scale_shift_table.dtype()
    }

    /// Patchify projection (+ keyframe embedding), AdaLN, caption projection (2.0) or prompt AdaLN
    /// (2.3), mask and RoPE of one stream; with `other`, also the A↔V inputs: cross RoPE from this
    /// stream's time axis and the cross AdaLN ([`AvCrossAdaln`]: the gate driven by the **other**
    /// stream's σ, the scale/shift by it too (ltx-core 1.0.0) or by this stream's per-token
    /// timesteps (1.2.0); `MultiModalTransformerArgsPreprocessor`).
    pub fn prepare(
        &self,
        s: &StreamModules,
        m: &Modality,
        other: Option<&Modality>,
    ) -> Result<PreparedStream> {
        self.prepare_with_text(s, m, other, None)
    }

    /// [`Self::prepare`]; with `text`, its keys/values and mask replace `m.context` /
    /// `m.context_mask`.
    pub fn prepare_with_text(
        &self,
        s: &StreamModules,
        m: &Modality,
        other: Option<&Modality>,
        text: Option<&StreamText>,
    ) -> Result<PreparedStream> {
        let dtype = self.dtype();
        let ts_scale = self.cfg.timestep_scale_multiplier;
        let mut x = s.patchify_proj.forward(&m.latent.to_dtype(dtype)?)?;
        if let (Some(emb), Some(mask)) = (&s.keyframes_abs_pos_embedding, &m.keyframes_mask) {
            // ltx-core `apply_keyframes_absolute_embedding`: x + (mask > 0) · embedding.
            let marked = float(mask)?.gt(0.0)?.to_dtype(dtype)?;
            x = (&x + marked.broadcast_mul(&emb.to_dtype(dtype)?)?)?;
        }
        let b = x.dim(0)?;
        // Scaled in the timesteps' own dtype, as ltx-core does (the pipeline decides it).
        let t = float(&m.timesteps)?.affine(ts_scale, 0.0)?.flatten_all()?;
        let (ada, embedded) = s.adaln_single.forward(&t, dtype)?;
        let timesteps = ada.reshape((b, (), ada.dim(1)?))?;
        let embedded_timestep = embedded.reshape((b, (), embedded.dim(1)?))?;
        let (text, context_mask) = match text {
            Some(t) => {
                if let Some(kv) = t.kv.first() {
                    if kv.k.dim(0)? != b {
                        candle_core::bail!(
                            "precomputed text has batch {} for latent batch {b}",
                            kv.k.dim(0)?
                        );
                    }
                }
                (TextContext::Cached(t.kv.clone()), t.context_mask.clone())
            }
            None => {
                let context = s.project_context(&m.context.to_dtype(dtype)?)?;
                let context = context.reshape((b, (), x.dim(2)?))?;
                let mask = m
                    .context_mask
                    .as_ref()
                    .map(|k| additive_mask(k, dtype))
                    .transpose()?;
                (TextContext::Projected(context), mask)
            }
        };
        // ltx-core `_prepare_timestep(modality.sigma, prompt_adaln)`: this stream's own σ, scaled
        // like the per-token timesteps.
        let prompt_timestep = match &s.prompt_adaln_single {
            Some(prompt_adaln) => {
                let sigma = float(&m.sigma)?.flatten_all()?;
                if sigma.dim(0)? != b {
                    candle_core::bail!("sigma has {} entries for batch {b}", sigma.dim(0)?);
                }
                let (p, _) = prompt_adaln.forward(&sigma.affine(ts_scale, 0.0)?, dtype)?;
                Some(p.reshape((b, (), p.dim(1)?))?)
            }
            None => None,
        };
        let pe = split_rope_from_bounds(&m.positions, &s.rope, dtype)?;
        let self_attention_mask = m
            .attention_mask
            .as_ref()
            .map(|w| log_attention_bias(w, dtype))
            .transpose()?;
        let mut args = StreamArgs {
            text,
            context_mask,
            self_attention_mask,
            timesteps,
            prompt_timestep,
            pe,
            cross_pe: None,
            cross_scale_shift_timestep: None,
            cross_gate_timestep: None,
        };
        if let Some(other) = other {
            let sigma = float(&other.sigma)?.flatten_all()?;
            if sigma.dim(0)? != b {
                candle_core::bail!(
                    "cross-modality sigma has {} entries for batch {b}",
                    sigma.dim(0)?
                );
            }
            let cross_t = sigma.affine(ts_scale, 0.0)?;
            let ss_t = match self.cfg.av_cross_adaln {
                AvCrossAdaln::OtherSigma => &cross_t,
                AvCrossAdaln::OwnTimesteps => &t,
            };
            let (ss, _) = s.av_ca_scale_shift_adaln_single.forward(ss_t, dtype)?;
            let gate_factor = self.cfg.av_ca_timestep_scale_multiplier / ts_scale;
            let (gate, _) = s
                .av_ca_gate_adaln_single
                .forward(&cross_t.affine(gate_factor, 0.0)?, dtype)?;
            args.cross_scale_shift_timestep = Some(ss.reshape((b, (), ss.dim(1)?))?);
            args.cross_gate_timestep = Some(gate.reshape((b, (), gate.dim(1)?))?);
            args.cross_pe = Some(split_rope_from_bounds(
                &m.positions.narrow(1, 0, 1)?,
                &s.cross_rope,
                dtype,
            )?);
        }
        Ok(PreparedStream {
            x,
            args,
            embedded_timestep,
        })
    }

    /// Output head: `proj_out(LayerNorm(x) · (1 + scale) + shift)` with `(shift, scale)` =
    /// `scale_shift_table + embedded_timestep`.
    pub fn output_head(
        &self,
        s: &StreamModules,
        x: &Tensor,
        embedded_timestep: &Tensor,
    ) -> Result<Tensor> {
        let d = x.dim(2)?;
        let table = s.scale_shift_table.to_dtype(x.dtype())?;
        let shift = table
            .narrow(0, 0, 1)?
            .reshape((1, 1, d))?
            .broadcast_add(embedded_timestep)?;
        let scale = table
            .narrow(0, 1, 1)?
            .reshape((1, 1, d))?
            .broadcast_add(embedded_timestep)?;
        let normed = layer_norm(x, self.cfg.norm_eps)?;
        s.proj_out.forward(
            &normed
                .broadcast_mul(&(scale + 1.0)?)?
                .broadcast_add(&shift)?,
        )
    }

    /// Joint forward; returns the velocities `(video (B, Tv, C), audio (B, Ta, Ca))`.
    pub fn forward(
        &self,
        video: &Modality,
        audio: &Modality,
        perturbations: &Perturbations,
    ) -> Result<(Tensor, Tensor)> {
        match self.forward_streams(Some(video), Some(audio), perturbations)? {
            (Some(v), Some(a)) => Ok((v, a)),
            _ => candle_core::bail!("joint forward lost a stream"),
        }
    }

    /// [`Self::forward`] on text precomputed by [`Self::prepare_text`] (the modalities' `context`
    /// and `context_mask` are then unused): the same result without the text-side work.
    pub fn forward_with_text(
        &self,
        video: &Modality,
        audio: &Modality,
        perturbations: &Perturbations,
        text: &TextKv,
    ) -> Result<(Tensor, Tensor)> {
        match self.forward_streams_with_text(Some(video), Some(audio), perturbations, Some(text))? {
            (Some(v), Some(a)) => Ok((v, a)),
            _ => candle_core::bail!("joint forward lost a stream"),
        }
    }

    /// Forward with either stream optional (video-only / audio-only skip the A↔V attentions).
    pub fn forward_streams(
        &self,
        video: Option<&Modality>,
        audio: Option<&Modality>,
        perturbations: &Perturbations,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        self.forward_streams_with_text(video, audio, perturbations, None)
    }

    /// [`Self::forward_streams`], with the text side taken from `text` when given.
    pub fn forward_streams_with_text(
        &self,
        video: Option<&Modality>,
        audio: Option<&Modality>,
        perturbations: &Perturbations,
        text: Option<&TextKv>,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        if text.is_some() && !self.text_kv_cacheable() {
            candle_core::bail!(
                "precomputed text keys/values given to a transformer with cross_attention_adaln"
            );
        }
        let pv = video
            .map(|v| self.prepare_with_text(&self.video, v, audio, text.map(|t| &t.video)))
            .transpose()?;
        let pa = audio
            .map(|a| self.prepare_with_text(&self.audio, a, video, text.map(|t| &t.audio)))
            .transpose()?;
        let mut vx = pv.as_ref().map(|p| p.x.clone());
        let mut ax = pa.as_ref().map(|p| p.x.clone());
        for block in &self.transformer_blocks {
            let v_in = vx.as_ref().zip(pv.as_ref().map(|p| &p.args));
            let a_in = ax.as_ref().zip(pa.as_ref().map(|p| &p.args));
            let (v, a) = block.forward(v_in, a_in, perturbations)?;
            (vx, ax) = (v, a);
        }
        let v_out = match (vx, &pv) {
            (Some(x), Some(p)) => Some(self.output_head(&self.video, &x, &p.embedded_timestep)?),
            _ => None,
        };
        let a_out = match (ax, &pa) {
            (Some(x), Some(p)) => Some(self.output_head(&self.audio, &x, &p.embedded_timestep)?),
            _ => None,
        };
        Ok((v_out, a_out))
    }
}
