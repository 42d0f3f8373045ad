//! Every [`Linear`] of the DiT by its checkpoint module path (`transformer_blocks.3.attn1.to_q`,
//! `audio_proj_out`, ...): what a LoRA names, so a request's LoRA set can swap the adapted layers
//! of a loaded model in place instead of rebuilding it.

use super::attention::Attention;
use super::feed_forward::FeedForward;
use super::model::{LtxModel, StreamModules};
use super::timestep::AdaLayerNormSingle;
use crate::linear::Linear;

type Slots<'a> = Vec<(String, &'a mut Linear)>;

fn attention<'a>(out: &mut Slots<'a>, p: &str, a: &'a mut Attention) {
    out.push((format!("{p}.to_q"), &mut a.to_q));
    out.push((format!("{p}.to_k"), &mut a.to_k));
    out.push((format!("{p}.to_v"), &mut a.to_v));
    out.push((format!("{p}.to_out.0"), &mut a.to_out));
    if let Some(g) = &mut a.to_gate_logits {
        out.push((format!("{p}.to_gate_logits"), g));
    }
}

fn feed_forward<'a>(out: &mut Slots<'a>, p: &str, f: &'a mut FeedForward) {
    out.push((format!("{p}.net.0.proj"), &mut f.proj_in));
    out.push((format!("{p}.net.2"), &mut f.proj_out));
}

fn adaln<'a>(out: &mut Slots<'a>, p: &str, a: &'a mut AdaLayerNormSingle) {
    let e = &mut a.timestep_embedder;
    out.push((
        format!("{p}.emb.timestep_embedder.linear_1"),
        &mut e.linear_1,
    ));
    out.push((
        format!("{p}.emb.timestep_embedder.linear_2"),
        &mut e.linear_2,
    ));
    out.push((format!("{p}.linear"), &mut a.linear));
}

/// `audio_` for the audio stream's top-level modules; the A↔V AdaLN names are their own.
fn stream<'a>(out: &mut Slots<'a>, s: &'a mut StreamModules, audio: bool) {
    let pre = if audio { "audio_" } else { "" };
    out.push((format!("{pre}patchify_proj"), &mut s.patchify_proj));
    adaln(out, &format!("{pre}adaln_single"), &mut s.adaln_single);
    if let Some(c) = &mut s.caption_projection {
        out.push((format!("{pre}caption_projection.linear_1"), &mut c.linear_1));
        out.push((format!("{pre}caption_projection.linear_2"), &mut c.linear_2));
    }
    if let Some(p) = &mut s.prompt_adaln_single {
        adaln(out, &format!("{pre}prompt_adaln_single"), p);
    }
    let (ss, gate) = if audio {
        (
            "av_ca_audio_scale_shift_adaln_single",
            "av_ca_v2a_gate_adaln_single",
        )
    } else {
        (
            "av_ca_video_scale_shift_adaln_single",
            "av_ca_a2v_gate_adaln_single",
        )
    };
    adaln(out, ss, &mut s.av_ca_scale_shift_adaln_single);
    adaln(out, gate, &mut s.av_ca_gate_adaln_single);
    out.push((format!("{pre}proj_out"), &mut s.proj_out));
}

impl LtxModel {
    /// Every linear layer with its module path (the checkpoint key without
    /// `model.diffusion_model.` and `.weight`).
    pub fn linears_mut(&mut self) -> Vec<(String, &mut Linear)> {
        let mut out = Vec::new();
        stream(&mut out, &mut self.video, false);
        stream(&mut out, &mut self.audio, true);
        for (i, b) in self.transformer_blocks.iter_mut().enumerate() {
            let p = format!("transformer_blocks.{i}");
            attention(&mut out, &format!("{p}.attn1"), &mut b.attn1);
            attention(&mut out, &format!("{p}.attn2"), &mut b.attn2);
            attention(&mut out, &format!("{p}.audio_attn1"), &mut b.audio_attn1);
            attention(&mut out, &format!("{p}.audio_attn2"), &mut b.audio_attn2);
            attention(
                &mut out,
                &format!("{p}.audio_to_video_attn"),
                &mut b.audio_to_video_attn,
            );
            attention(
                &mut out,
                &format!("{p}.video_to_audio_attn"),
                &mut b.video_to_audio_attn,
            );
            feed_forward(&mut out, &format!("{p}.ff"), &mut b.ff);
            feed_forward(&mut out, &format!("{p}.audio_ff"), &mut b.audio_ff);
        }
        out
    }
}
