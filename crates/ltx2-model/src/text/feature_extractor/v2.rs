//! ltx-core `FeatureExtractorV2` (LTX-2.3, `caption_proj_before_connector`): every Gemma hidden
//! state is RMS-normalised per token (no learned weight, no mean, nothing shared across tokens),
//! the layers are interleaved into one `hidden * L` vector per token (`d * L + l`, as in V1) and
//! projected twice, straight to the DiT's widths:
//! `video = video_aggregate_embed(x * sqrt(V / hidden))`, `audio = audio_aggregate_embed(x *
//! sqrt(A / hidden))` (`text_embedding_projection.{video,audio}_aggregate_embed`, with bias).
//!
//! Because nothing is pooled over the sequence, a token's features do not depend on the padding
//! or on the other tokens: running only the real tokens gives exactly the padded result there.

use candle_core::{DType, Module, Result, Tensor, D};
use candle_nn::{linear, Linear, VarBuilder};

use super::{round_to, FeatureExtractorConfig};

/// `norm_and_concat_per_token_rms`'s epsilon.
const EPS: f64 = 1e-6;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FeatureExtractorV2Config {
    /// Gemma geometry: `hidden` (the `embedding_dim` of the rescale) and `L`.
    pub gemma: FeatureExtractorConfig,
    /// The DiT's video inner dim `V` (`num_attention_heads * attention_head_dim`).
    pub video_inner_dim: usize,
    /// The DiT's audio inner dim `A` (`audio_num_attention_heads * audio_attention_head_dim`).
    pub audio_inner_dim: usize,
}

impl FeatureExtractorV2Config {
    /// LTX-2.3 22B: Gemma-3 12B (3840 x 49) into 4096 (32 x 128) / 2048 (32 x 64).
    pub fn ltx23_22b() -> Self {
        Self {
            gemma: FeatureExtractorConfig::ltx2_19b(),
            video_inner_dim: 4096,
            audio_inner_dim: 2048,
        }
    }

    fn flat_dim(&self) -> usize {
        self.gemma.hidden_size * self.gemma.num_hidden_states
    }
}

#[derive(Debug, Clone)]
pub struct FeatureExtractorV2 {
    video_aggregate_embed: Linear,
    audio_aggregate_embed: Linear,
    cfg: FeatureExtractorV2Config,
}

/// Which of the two projections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Video,
    Audio,
}

impl FeatureExtractorV2 {
    /// `vb` is rooted at `text_embedding_projection`.
    pub fn new(cfg: FeatureExtractorV2Config, vb: VarBuilder) -> Result<Self> {
        let flat = cfg.flat_dim();
        Ok(Self {
            video_aggregate_embed: linear(
                flat,
                cfg.video_inner_dim,
                vb.pp("video_aggregate_embed"),
            )?,
            audio_aggregate_embed: linear(
                flat,
                cfg.audio_inner_dim,
                vb.pp("audio_aggregate_embed"),
            )?,
            cfg,
        })
    }

    pub fn config(&self) -> FeatureExtractorV2Config {
        self.cfg
    }

    /// The per-token RMS-normalised, interleaved states `(B, T, hidden * L)` in the states' dtype,
    /// zero at padding. `mask (B, T)`: 1 = valid token.
    ///
    /// In a bf16 model ltx-core computes every step in bf16 (each op rounds its result): the
    /// square, the mean, `+ eps`, the rsqrt and the product; we round at the same places.
    pub fn normalize(&self, hidden_states: &[Tensor], mask: &Tensor) -> Result<Tensor> {
        let l = self.cfg.gemma.num_hidden_states;
        if hidden_states.len() != l {
            candle_core::bail!(
                "feature extractor V2 expects {l} hidden states, got {}",
                hidden_states.len()
            );
        }
        let dtype = hidden_states[0].dtype();
        let (b, t, d) = hidden_states[0].dims3()?;
        if d != self.cfg.gemma.hidden_size {
            candle_core::bail!(
                "feature extractor V2 expects hidden size {}, got {d}",
                self.cfg.gemma.hidden_size
            );
        }
        let mut normed = Vec::with_capacity(l);
        for x in hidden_states {
            let x = x.to_dtype(DType::F32)?;
            let variance = round_to(&round_to(&x.sqr()?, dtype)?.mean_keepdim(D::Minus1)?, dtype)?;
            let inv_rms = round_to(
                &round_to(&(variance + EPS)?, dtype)?.sqrt()?.recip()?,
                dtype,
            )?;
            normed.push(round_to(&x.broadcast_mul(&inv_rms)?, dtype)?);
        }
        let stacked = Tensor::stack(&normed, D::Minus1)?.reshape((b, t, d * l))?;
        // `where` rather than `* mask`: states at padding may be anything, NaN included.
        let keep = mask
            .to_dtype(DType::F32)?
            .reshape((b, t, 1))?
            .ne(0f32)?
            .broadcast_as(stacked.shape())?;
        keep.where_cond(&stacked, &stacked.zeros_like()?)?
            .to_dtype(dtype)
    }

    /// `_rescale_norm`: the input of one `*_aggregate_embed`, `normed * sqrt(width / hidden)`
    /// (the golden's `dbg.*_aggregate_embed_in`). The factor is applied in f32 and the product
    /// rounded once, as PyTorch multiplies a bf16 tensor by a Python float.
    pub fn aggregate_embed_input(&self, normed: &Tensor, stream: Stream) -> Result<Tensor> {
        let width = match stream {
            Stream::Video => self.cfg.video_inner_dim,
            Stream::Audio => self.cfg.audio_inner_dim,
        };
        let factor = (width as f64 / self.cfg.gemma.hidden_size as f64).sqrt();
        match normed.dtype() {
            DType::F32 | DType::F64 => normed * factor,
            dtype => (normed.to_dtype(DType::F32)? * factor)?.to_dtype(dtype),
        }
    }

    /// `(video (B, T, V), audio (B, T, A))`.
    pub fn forward(&self, hidden_states: &[Tensor], mask: &Tensor) -> Result<(Tensor, Tensor)> {
        let normed = self.normalize(hidden_states, mask)?;
        let video = self
            .video_aggregate_embed
            .forward(&self.aggregate_embed_input(&normed, Stream::Video)?)?;
        let audio = self
            .audio_aggregate_embed
            .forward(&self.aggregate_embed_input(&normed, Stream::Audio)?)?;
        Ok((video, audio))
    }
}
