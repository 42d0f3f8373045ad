//! Transformer FLOPs of a request from its token counts (docs: anchors.md §4.2): 2 FLOPs per
//! weight per token for every linear a token goes through, plus the attention score and value
//! products. Text K/V projections are left out where they run once per stage (LTX-2: cached text
//! K/V), as in the anchors' workload table, so MFU is comparable with it; with LTX-2.3's
//! cross-attention AdaLN the context is modulated by σ, so they are counted in every forward.

use ltx2_model::transformer::config::FF_MULT;
use ltx2_model::transformer::TransformerConfig;

use crate::api::{EffectiveParams, PipelineKind};
use crate::latents::{AudioLatentShape, VideoLatentShape};

/// Tokens one transformer forward sees.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct ForwardTokens {
    pub video: usize,
    pub audio: usize,
    pub text: usize,
}

/// FLOPs of one forward (all blocks).
pub fn forward_flops(cfg: &TransformerConfig, t: ForwardTokens) -> f64 {
    let (d, da) = (cfg.inner_dim() as f64, cfg.audio_inner_dim() as f64);
    let (nv, na, nt) = (t.video as f64, t.audio as f64, t.text as f64);
    let ff = 2.0 * FF_MULT as f64;
    // Linears per video token: self-attn QKVO, text cross-attn Q/O, FFN, A2V Q/O, V2A K/V.
    let video_params = 4.0 * d * d + 2.0 * d * d + ff * d * d + 2.0 * d * da + 2.0 * d * da;
    // Per audio token: self-attn QKVO, text cross-attn Q/O, FFN, A2V K/V, V2A Q/O.
    let audio_params = 4.0 * da * da + 2.0 * da * da + ff * da * da + 4.0 * da * da;
    let linears = 2.0 * (nv * video_params + na * audio_params);
    // QK^T and PV: 4 * Nq * Nk * width.
    let attention =
        4.0 * (nv * nv * d + nv * nt * d + na * na * da + na * nt * da + 2.0 * nv * na * da);
    // Text K/V of attn2 / audio_attn2 (context at the stream widths in 2.3).
    let text_kv = if cfg.cross_attention_adaln {
        2.0 * nt * (2.0 * d * d + 2.0 * da * da)
    } else {
        0.0
    };
    cfg.num_layers as f64 * (linears + attention + text_kv)
}

/// Per-stage forward tokens and counts of a finished request.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct StageWork {
    pub stage: String,
    pub tokens: ForwardTokens,
    pub forwards: usize,
    pub flops: f64,
}

/// The transformer work a request did, from what the engine reports it rendered.
pub fn request_work(
    cfg: &TransformerConfig,
    eff: &EffectiveParams,
    text_tokens: usize,
) -> Vec<StageWork> {
    let frames = eff.num_frames as usize;
    let audio = AudioLatentShape::from_video(frames, eff.fps as f64).frames;
    let (h, w) = (eff.rendered_height as usize, eff.rendered_width as usize);
    let sizes: Vec<(&str, usize, usize)> = match eff.pipeline {
        PipelineKind::DistilledTwoStage => vec![("stage1", h / 2, w / 2), ("stage2", h, w)],
        _ => vec![("stage1", h, w)],
    };
    sizes
        .into_iter()
        .zip(&eff.steps_per_stage)
        .enumerate()
        .map(|(i, ((stage, h, w), &steps))| {
            let tokens = ForwardTokens {
                video: VideoLatentShape::from_pixels(0, frames, h, w).tokens(),
                audio,
                text: text_tokens,
            };
            // Guidance multiplies the first (or only) stage; the refinement stage runs without.
            let per_step = if i == 0 {
                eff.forwards_per_step as usize
            } else {
                1
            };
            let forwards = steps as usize * per_step;
            StageWork {
                stage: stage.to_string(),
                tokens,
                forwards,
                flops: forwards as f64 * forward_flops(cfg, tokens),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_anchor_table_for_the_headline_request() {
        // anchors.md §4.3: S1 280 video + 49 audio tokens ≈ 7.9 TFLOP per forward (1024 text).
        let cfg = TransformerConfig::ltx2_19b();
        let f = forward_flops(
            &cfg,
            ForwardTokens {
                video: 280,
                audio: 49,
                text: 1024,
            },
        );
        assert!((f / 1e12 - 7.9).abs() < 0.5, "{}", f / 1e12);
        let f2 = forward_flops(
            &cfg,
            ForwardTokens {
                video: 1120,
                audio: 49,
                text: 1024,
            },
        );
        assert!((f2 / 1e12 - 31.2).abs() < 2.0, "{}", f2 / 1e12);
    }
}
