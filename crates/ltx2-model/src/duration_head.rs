//! LTX-2.5 duration head (`duration_head.*`, `model_patches/ltx-2.5-duration-head-*.safetensors`),
//! ltx-core 1.2.0 `duration_head/`: predicts a clip length in seconds from the text connectors'
//! outputs (the DiT contexts), and ltx-pipelines' `DurationPredictor` rule that turns it into a
//! frame count on the video VAE's `8k + 1` grid.
//!
//! Each stream is projected to a shared width and tagged with a learned modality embedding; the
//! tokens of both are concatenated and pooled by `nn.MultiheadAttention` with learned queries; a
//! GELU(tanh) MLP gives the log-duration, exponentiated to seconds. No mask: the connectors fill
//! padding with learned registers, so every token is valid.

use std::path::Path;

use candle_core::{DType, Device, Module, Result, Tensor};
use candle_nn::VarBuilder;
use serde::Deserialize;

use crate::linear::{linear, Linear};
use crate::transformer::attention::sdpa;

/// Key prefix of the head in its file (and in any file that shares it).
pub const DURATION_HEAD_PREFIX: &str = "duration_head";
/// Pixel frames per latent frame: frame counts are snapped to `8k + 1`.
const TIME_SCALE: i64 = 8;

/// The `duration_head` section of the `config` metadata (ltx-core reads it with these defaults;
/// it has "no finalized config schema yet").
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct HeadConfig {
    pub pooler_hidden_dim: usize,
    pub num_queries: usize,
    pub num_pooler_heads: usize,
    pub mlp_hidden: usize,
}

impl Default for HeadConfig {
    fn default() -> Self {
        Self {
            pooler_hidden_dim: 256,
            num_queries: 1,
            num_pooler_heads: 4,
            mlp_hidden: 256,
        }
    }
}

/// Hyper-parameters of the head: the input widths are the transformer's context widths
/// (`config.transformer.{cross_attention_dim, audio_cross_attention_dim}`, defaults 4096 / 2048).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub video_cross_attention_dim: usize,
    pub audio_cross_attention_dim: usize,
    pub head: HeadConfig,
}

impl Config {
    /// ltx-core's defaults (the 22B context widths, the head's own defaults).
    pub fn ltx25_22b() -> Self {
        Self {
            video_cross_attention_dim: 4096,
            audio_cross_attention_dim: 2048,
            head: HeadConfig::default(),
        }
    }

    /// From the whole `config` metadata JSON (`DurationHeadConfigurator.from_metadata`).
    pub fn from_checkpoint_config(config: &serde_json::Value) -> Result<Self> {
        let t = config.get("transformer");
        let dim = |key: &str, default: usize| -> Result<usize> {
            match t.and_then(|t| t.get(key)) {
                None => Ok(default),
                Some(v) => v.as_u64().map(|n| n as usize).ok_or_else(|| {
                    candle_core::Error::Msg(format!(
                        "duration head config: transformer.{key} is not a positive integer: {v}"
                    ))
                }),
            }
        };
        let head = match config.get("duration_head") {
            None => HeadConfig::default(),
            Some(section) => HeadConfig::deserialize(section).map_err(|e| {
                candle_core::Error::Msg(format!("duration head config: duration_head: {e}"))
            })?,
        };
        let cfg = Self {
            video_cross_attention_dim: dim("cross_attention_dim", 4096)?,
            audio_cross_attention_dim: dim("audio_cross_attention_dim", 2048)?,
            head,
        };
        cfg.validate()?;
        Ok(cfg)
    }

    fn validate(&self) -> Result<()> {
        let h = &self.head;
        if h.num_pooler_heads == 0 || !h.pooler_hidden_dim.is_multiple_of(h.num_pooler_heads) {
            candle_core::bail!(
                "duration head config: pooler_hidden_dim {} is not a multiple of num_pooler_heads {}",
                h.pooler_hidden_dim,
                h.num_pooler_heads
            );
        }
        if h.num_queries == 0 {
            candle_core::bail!("duration head config: num_queries must be at least 1");
        }
        Ok(())
    }

    /// Every tensor (keys relative to `duration_head.`) with its shape.
    pub fn tensor_shapes(&self) -> Vec<(String, Vec<usize>)> {
        let h = &self.head;
        let d = h.pooler_hidden_dim;
        let mut out = Vec::new();
        let mut lin = |name: &str, i: usize, o: usize| {
            out.push((format!("{name}.weight"), vec![o, i]));
            out.push((format!("{name}.bias"), vec![o]));
        };
        lin("video_input_proj", self.video_cross_attention_dim, d);
        lin("audio_input_proj", self.audio_cross_attention_dim, d);
        lin("attention_pooler.cross_attn.out_proj", d, d);
        lin("mlp_hidden", d * h.num_queries, h.mlp_hidden);
        lin("mlp_out", h.mlp_hidden, 1);
        out.push(("video_modality_emb".into(), vec![d]));
        out.push(("audio_modality_emb".into(), vec![d]));
        out.push((
            "attention_pooler.query_tokens".into(),
            vec![h.num_queries, d],
        ));
        out.push((
            "attention_pooler.cross_attn.in_proj_weight".into(),
            vec![3 * d, d],
        ));
        out.push((
            "attention_pooler.cross_attn.in_proj_bias".into(),
            vec![3 * d],
        ));
        out
    }
}

/// `AttentionPooler`: `num_queries` learned tokens cross-attend to the tokens through
/// `nn.MultiheadAttention` (packed `in_proj_{weight,bias}` in q, k, v order, `out_proj`).
#[derive(Debug, Clone)]
pub struct AttentionPooler {
    /// `query_tokens` `(Q, D)`.
    pub query_tokens: Tensor,
    to_q: Linear,
    to_k: Linear,
    to_v: Linear,
    pub out_proj: Linear,
    heads: usize,
}

impl AttentionPooler {
    /// `vb` at `duration_head.attention_pooler`.
    pub fn new(dim: usize, num_queries: usize, heads: usize, vb: VarBuilder) -> Result<Self> {
        let mha = vb.pp("cross_attn");
        let w = mha.get((3 * dim, dim), "in_proj_weight")?;
        let b = mha.get(3 * dim, "in_proj_bias")?;
        let part = |i: usize| -> Result<Linear> {
            Ok(Linear::Dense(crate::linear::DenseLinear::new(
                w.narrow(0, i * dim, dim)?,
                Some(b.narrow(0, i * dim, dim)?),
            )))
        };
        Ok(Self {
            query_tokens: vb.get((num_queries, dim), "query_tokens")?,
            to_q: part(0)?,
            to_k: part(1)?,
            to_v: part(2)?,
            out_proj: linear(dim, dim, mha.pp("out_proj"))?,
            heads,
        })
    }

    /// `tokens` `(B, T, D)` -> pooled `(B, Q, D)`.
    pub fn forward(&self, tokens: &Tensor) -> Result<Tensor> {
        let (b, _, d) = tokens.dims3()?;
        let (q_len, _) = self.query_tokens.dims2()?;
        let queries = self
            .query_tokens
            .to_dtype(tokens.dtype())?
            .unsqueeze(0)?
            .broadcast_as((b, q_len, d))?
            .contiguous()?;
        let q = self.to_q.forward(&queries)?;
        let k = self.to_k.forward(tokens)?;
        let v = self.to_v.forward(tokens)?;
        self.out_proj.forward(&sdpa(&q, &k, &v, self.heads, None)?)
    }
}

/// `DurationHead`.
#[derive(Debug, Clone)]
pub struct DurationHead {
    pub video_input_proj: Linear,
    pub video_modality_emb: Tensor,
    pub audio_input_proj: Linear,
    pub audio_modality_emb: Tensor,
    pub attention_pooler: AttentionPooler,
    pub mlp_hidden: Linear,
    pub mlp_out: Linear,
    cfg: Config,
}

impl DurationHead {
    /// `vb` at `duration_head`.
    pub fn new(cfg: &Config, vb: VarBuilder) -> Result<Self> {
        cfg.validate()?;
        let h = &cfg.head;
        let d = h.pooler_hidden_dim;
        Ok(Self {
            video_input_proj: linear(cfg.video_cross_attention_dim, d, vb.pp("video_input_proj"))?,
            video_modality_emb: vb.get(d, "video_modality_emb")?,
            audio_input_proj: linear(cfg.audio_cross_attention_dim, d, vb.pp("audio_input_proj"))?,
            audio_modality_emb: vb.get(d, "audio_modality_emb")?,
            attention_pooler: AttentionPooler::new(
                d,
                h.num_queries,
                h.num_pooler_heads,
                vb.pp("attention_pooler"),
            )?,
            mlp_hidden: linear(d * h.num_queries, h.mlp_hidden, vb.pp("mlp_hidden"))?,
            mlp_out: linear(h.mlp_hidden, 1, vb.pp("mlp_out"))?,
            cfg: cfg.clone(),
        })
    }

    /// Loads the head from a file with its `config` metadata (`duration_head.*` keys; any other
    /// tensors are ignored, so a file that also holds other components works). `Ok(None)` when the
    /// file has no `duration_head.*` tensor at all (pre-2.5 checkpoints: no auto duration, as
    /// ltx-pipelines' `DurationPredictor.from_checkpoint`); an error naming the keys when it has
    /// some but not all of them, or wrong shapes.
    pub fn from_file(path: &Path, dtype: DType, device: &Device) -> Result<Option<Self>> {
        let ckpt = crate::checkpoint::Checkpoint::open(path)
            .map_err(|e| candle_core::Error::Msg(e.to_string()))?;
        let prefix = format!("{DURATION_HEAD_PREFIX}.");
        if !ckpt.tensors().keys().any(|k| k.starts_with(&prefix)) {
            return Ok(None);
        }
        let config = ckpt
            .config()
            .map_err(|e| candle_core::Error::Msg(e.to_string()))?;
        let cfg = match config {
            Some(c) => Config::from_checkpoint_config(&c)?,
            None => Config::ltx25_22b(),
        };
        let (mut missing, mut wrong) = (Vec::new(), Vec::new());
        for (rel, shape) in cfg.tensor_shapes() {
            let key = format!("{prefix}{rel}");
            match ckpt.tensors().get(&key) {
                None => missing.push(key),
                Some(t) if t.shape != shape => {
                    wrong.push(format!("{key} is {:?}, expected {shape:?}", t.shape))
                }
                Some(_) => {}
            }
        }
        if !missing.is_empty() || !wrong.is_empty() {
            candle_core::bail!(
                "{}: incomplete duration head: missing [{}], wrong shapes [{}]",
                path.display(),
                missing.join(", "),
                wrong.join(", ")
            );
        }
        // SAFETY: read-only map of a weights file that is not modified while loaded.
        let vb = unsafe { VarBuilder::from_mmaped_safetensors(&[path], dtype, device)? };
        Self::new(&cfg, vb.pp(DURATION_HEAD_PREFIX)).map(Some)
    }

    pub fn config(&self) -> &Config {
        &self.cfg
    }

    /// Seconds `(B,)` from the video connector output `(B, T_v, video_cross_attention_dim)`, the
    /// audio one `(B, T_a, audio_cross_attention_dim)`, or both.
    pub fn forward(&self, video: Option<&Tensor>, audio: Option<&Tensor>) -> Result<Tensor> {
        let dtype = self.video_modality_emb.dtype();
        let group = |x: &Tensor, proj: &Linear, emb: &Tensor| -> Result<Tensor> {
            proj.forward(&x.to_dtype(dtype)?)?.broadcast_add(emb)
        };
        let mut groups = Vec::with_capacity(2);
        if let Some(v) = video {
            groups.push(group(v, &self.video_input_proj, &self.video_modality_emb)?);
        }
        if let Some(a) = audio {
            groups.push(group(a, &self.audio_input_proj, &self.audio_modality_emb)?);
        }
        if groups.is_empty() {
            candle_core::bail!("the duration head needs the video or the audio tokens (or both)");
        }
        let tokens = Tensor::cat(&groups, 1)?;
        let pooled = self.attention_pooler.forward(&tokens)?;
        let flat = pooled.flatten_from(1)?;
        // candle's `gelu` is the tanh approximation.
        let hidden = self.mlp_hidden.forward(&flat)?.gelu()?;
        self.mlp_out.forward(&hidden)?.squeeze(1)?.exp()
    }
}

/// ltx-pipelines `DurationPredictor.__call__` defaults: predictions are clamped to [1 s, 20 s].
pub const DEFAULT_MIN_SECONDS: f64 = 1.0;
pub const DEFAULT_MAX_SECONDS: f64 = 20.0;

/// `seconds_to_clamped_num_frames` with the predictor's clamp: `round(seconds · fps)` (Python's
/// half-to-even) clamped to `[round(min_s · fps), round(max_s · fps)]`, floored to the `8k + 1`
/// grid, and moved up to the next grid point (at most the maximum) when flooring undershot the
/// minimum. Errors where ltx-core raises (a clamped count below one frame).
pub fn seconds_to_num_frames(
    seconds: f64,
    frame_rate: f64,
    min_seconds: f64,
    max_seconds: f64,
) -> Result<usize> {
    if !seconds.is_finite() || !frame_rate.is_finite() || frame_rate <= 0.0 {
        candle_core::bail!("duration: cannot convert {seconds} s at {frame_rate} fps to frames");
    }
    let round = |x: f64| x.round_ties_even() as i64;
    let (min_frames, max_frames) = (
        round(min_seconds * frame_rate),
        round(max_seconds * frame_rate),
    );
    let raw = round(seconds * frame_rate).min(max_frames).max(min_frames);
    if raw < 1 {
        candle_core::bail!("duration: frames must be >= 1, got {raw}");
    }
    let mut frames = (raw - 1) / TIME_SCALE * TIME_SCALE + 1;
    if frames < min_frames {
        let up = (min_frames - 1 + TIME_SCALE - 1) / TIME_SCALE * TIME_SCALE + 1;
        frames = up.min(max_frames);
    }
    Ok(frames as usize)
}

/// `DurationPredictor.__call__`: the head on one prompt's encodings (batch 1), then
/// [`seconds_to_num_frames`]. Returns `(seconds, frames)`.
pub fn predict_num_frames(
    head: &DurationHead,
    video: Option<&Tensor>,
    audio: Option<&Tensor>,
    frame_rate: f64,
    min_seconds: f64,
    max_seconds: f64,
) -> Result<(f32, usize)> {
    let seconds = head.forward(video, audio)?;
    if seconds.dims() != [1] {
        candle_core::bail!(
            "the duration predictor takes one prompt at a time, got predictions of shape {:?}",
            seconds.dims()
        );
    }
    let s = seconds.to_dtype(DType::F32)?.to_vec1::<f32>()?[0];
    let frames = seconds_to_num_frames(s as f64, frame_rate, min_seconds, max_seconds)?;
    Ok((s, frames))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_follow_the_pipeline_rule() {
        let f = |s: f64| seconds_to_num_frames(s, 24.0, 1.0, 20.0).unwrap();
        // 5 s at 24 fps = 120 frames -> floored to 113 (8 * 14 + 1).
        assert_eq!(f(5.0), 113);
        assert_eq!(f(5.0 + 2.0 / 24.0), 121);
        // Clamped to [24, 480] frames, then snapped: 24 floors to 17 < 24, so up to 25.
        assert_eq!(f(0.01), 25);
        assert_eq!(f(100.0), 473);
        // Python's half-to-even: 8.5 frames round to 8 (-> 1 on the grid), not 9.
        assert_eq!(seconds_to_num_frames(4.25, 2.0, 0.0, 100.0).unwrap(), 1);
        assert_eq!(seconds_to_num_frames(4.75, 2.0, 0.0, 100.0).unwrap(), 9);
        assert!(seconds_to_num_frames(0.0, 24.0, 0.0, 10.0).is_err());
        assert!(seconds_to_num_frames(f64::NAN, 24.0, 1.0, 20.0).is_err());
    }

    #[test]
    fn config_defaults_and_sections() {
        let cfg = Config::from_checkpoint_config(&serde_json::json!({
            "transformer": {"cross_attention_dim": 64},
            "duration_head": {"pooler_hidden_dim": 16, "num_pooler_heads": 2}
        }))
        .unwrap();
        assert_eq!(cfg.video_cross_attention_dim, 64);
        assert_eq!(cfg.audio_cross_attention_dim, 2048);
        assert_eq!(cfg.head.mlp_hidden, 256);
        assert_eq!(cfg.tensor_shapes().len(), 15);
        let err = Config::from_checkpoint_config(&serde_json::json!({
            "duration_head": {"pooler_hidden_dim": 10, "num_pooler_heads": 4}
        }))
        .unwrap_err();
        assert!(err.to_string().contains("num_pooler_heads"), "{err}");
    }
}
