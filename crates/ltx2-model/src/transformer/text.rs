//! The text-only part of a transformer forward: caption projections, additive text masks and every
//! block's text cross-attention keys/values (`attn2` / `audio_attn2`). Without cross-attention
//! AdaLN (LTX-2.0) it depends on the prompt only, so a sampler computes it once per context and
//! reuses it in every step ([`LtxModel::forward_with_text`]); the per-step forward then does the
//! same ops on the same inputs, minus this work (about half of a 19B stage-1 forward).
//!
//! With `cross_attention_adaln` (LTX-2.3) the context is shifted and scaled by a σ-driven AdaLN in
//! every block and step, so there is nothing to precompute: [`LtxModel::prepare_text`] refuses.
//! Without `use_prompt_adaln_single` (ltx-core 1.2.0) only each block's static
//! `prompt_scale_shift_table` modulates the context, and the keys/values are computed from that.

use candle_core::{Result, Tensor};

use super::attention::ContextKv;
use super::block::modulate_context;
use super::model::LtxModel;
use super::norm::additive_mask;

/// One stream's precomputed text side.
#[derive(Debug, Clone)]
pub struct StreamText {
    /// Additive text mask `(B, 1, 1, S)`; `None` = attend to all tokens.
    pub context_mask: Option<Tensor>,
    /// `attn2` (video) / `audio_attn2` (audio) keys/values per block.
    pub kv: Vec<ContextKv>,
}

/// Both streams' precomputed text side, from [`LtxModel::prepare_text`].
#[derive(Debug, Clone)]
pub struct TextKv {
    pub video: StreamText,
    pub audio: StreamText,
}

impl LtxModel {
    /// Whether [`Self::prepare_text`] applies to this model (see
    /// [`super::TransformerConfig::text_kv_cacheable`]).
    pub fn text_kv_cacheable(&self) -> bool {
        self.config().text_kv_cacheable()
    }

    /// Precomputes the text side for the video and audio contexts (what [`super::Modality`]
    /// carries as `context`) and their optional keep-masks `(B, S)` (`context_mask`). Errors on a
    /// model with cross-attention AdaLN, whose keys/values change with σ.
    pub fn prepare_text(
        &self,
        video_context: &Tensor,
        video_mask: Option<&Tensor>,
        audio_context: &Tensor,
        audio_mask: Option<&Tensor>,
    ) -> Result<TextKv> {
        if !self.text_kv_cacheable() {
            candle_core::bail!(
                "this transformer has cross_attention_adaln: its text keys/values depend on sigma \
                 and cannot be computed once per stage (run the plain forward every step)"
            );
        }
        let dtype = self.dtype();
        let mask = |m: Option<&Tensor>| m.map(|k| additive_mask(k, dtype)).transpose();
        let video = self
            .video
            .project_context(&video_context.to_dtype(dtype)?)?;
        let audio = self
            .audio
            .project_context(&audio_context.to_dtype(dtype)?)?;
        let blocks = &self.transformer_blocks;
        Ok(TextKv {
            video: StreamText {
                context_mask: mask(video_mask)?,
                kv: blocks
                    .iter()
                    .map(|b| {
                        b.attn2.project_context(&static_modulation(
                            &video,
                            b.prompt_scale_shift_table.as_ref(),
                        )?)
                    })
                    .collect::<Result<_>>()?,
            },
            audio: StreamText {
                context_mask: mask(audio_mask)?,
                kv: blocks
                    .iter()
                    .map(|b| {
                        b.audio_attn2.project_context(&static_modulation(
                            &audio,
                            b.audio_prompt_scale_shift_table.as_ref(),
                        )?)
                    })
                    .collect::<Result<_>>()?,
            },
        })
    }
}

/// The context a block's text cross-attention reads when nothing σ-driven modulates it: as it is
/// (no cross-attention AdaLN), or shifted and scaled by the block's prompt table.
fn static_modulation(context: &Tensor, prompt_table: Option<&Tensor>) -> Result<Tensor> {
    match prompt_table {
        Some(table) => modulate_context(context, table, None),
        None => Ok(context.clone()),
    }
}
