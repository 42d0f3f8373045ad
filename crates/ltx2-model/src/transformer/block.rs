//! `transformer.py::BasicAVTransformerBlock`: per stream, modulated self-attention, then the text
//! cross-attention (unmodulated in LTX-2.0; with `cross_attention_adaln` (2.3) modulated on both
//! sides and gated); then audio↔video cross-attention on norms taken once before either update;
//! then modulated feed-forwards.

use candle_core::{Module, Result, Tensor};
use candle_nn::VarBuilder;

use super::attention::{Attention, AttentionConfig, ContextKv};
use super::config::{TransformerConfig, ADALN_ROWS, AV_CA_ROWS, FF_MULT, PROMPT_ADALN_ROWS};
use super::feed_forward::FeedForward;
use super::fused::{gate_residual, modulate, rms_norm_modulate};
use super::norm::rms_norm;
use super::perturbations::Perturbations;
use super::rope::Rope;
use crate::linear::tensor_bytes;
use crate::quantization::Quantization;

/// One stream's block inputs that stay fixed over the blocks (ltx-core `TransformerArgs` minus `x`).
#[derive(Debug, Clone)]
pub struct StreamArgs {
    /// Text cross-attention input.
    pub text: TextContext,
    /// Additive text mask `(B, 1, 1, S)`, `None` = attend to all tokens.
    pub context_mask: Option<Tensor>,
    /// Additive self-attention bias `(B, 1, T, T)` (from [`super::Modality::attention_mask`]).
    pub self_attention_mask: Option<Tensor>,
    /// AdaLN output `(B, T, k·D)` (T may be 1), k = 6, or 9 with `cross_attention_adaln`.
    pub timesteps: Tensor,
    /// `prompt_adaln_single(σ)` output `(B, 1, 2·D)` (shift, scale of the text context); only
    /// with `cross_attention_adaln` and `use_prompt_adaln_single`.
    pub prompt_timestep: Option<Tensor>,
    /// Self-attention RoPE.
    pub pe: Rope,
    /// A↔V cross-attention RoPE (time axis only); `None` when the other stream is absent.
    pub cross_pe: Option<Rope>,
    /// `av_ca_*_scale_shift_adaln_single` output `(B, 1|T, 4·D)`.
    pub cross_scale_shift_timestep: Option<Tensor>,
    /// `av_ca_*_gate_adaln_single` output `(B, 1|T, D)`.
    pub cross_gate_timestep: Option<Tensor>,
}

/// The text side of a stream's cross-attention (`attn2` / `audio_attn2`).
#[derive(Debug, Clone)]
pub enum TextContext {
    /// Text context at the stream width `(B, S, D)` (after the caption projection in 2.0); each
    /// block projects its keys/values on the fly.
    Projected(Tensor),
    /// Keys/values per block (index = block index), from [`super::LtxModel::prepare_text`].
    Cached(Vec<ContextKv>),
}

impl TextContext {
    /// The projected context when the keys/values are computed on the fly.
    pub fn projected(&self) -> Option<&Tensor> {
        match self {
            Self::Projected(t) => Some(t),
            Self::Cached(_) => None,
        }
    }
}

#[derive(Debug, Clone)]
pub struct BasicAvTransformerBlock {
    idx: usize,
    norm_eps: f64,
    pub attn1: Attention,
    pub attn2: Attention,
    pub ff: FeedForward,
    /// `(6 | 9, D)`: shift/scale/gate of self-attention, of the FF, and (9 rows) of the query side
    /// of the text cross-attention.
    pub scale_shift_table: Tensor,
    /// `(2, D)` shift/scale of the text context (`cross_attention_adaln` only).
    pub prompt_scale_shift_table: Option<Tensor>,
    pub audio_attn1: Attention,
    pub audio_attn2: Attention,
    pub audio_ff: FeedForward,
    pub audio_scale_shift_table: Tensor,
    pub audio_prompt_scale_shift_table: Option<Tensor>,
    /// Q video, K/V audio.
    pub audio_to_video_attn: Attention,
    /// Q audio, K/V video.
    pub video_to_audio_attn: Attention,
    pub scale_shift_table_a2v_ca_video: Tensor,
    pub scale_shift_table_a2v_ca_audio: Tensor,
}

/// Rows `rows` of `table (k, D) + timestep.reshape(B, T, k, D)`, each `(B, T, D)`.
fn ada_values(table: &Tensor, timestep: &Tensor, start: usize, len: usize) -> Result<Vec<Tensor>> {
    let (k, d) = table.dims2()?;
    let (b, t, _) = timestep.dims3()?;
    let ts = timestep.reshape((b, t, k, d))?.narrow(2, start, len)?;
    let tab = table
        .narrow(0, start, len)?
        .to_dtype(ts.dtype())?
        .reshape((1, 1, len, d))?;
    let sum = tab.broadcast_add(&ts)?;
    (0..len).map(|i| sum.narrow(2, i, 1)?.squeeze(2)).collect()
}

/// The text context of the cross-attention AdaLN: `context · (1 + scale) + shift` with `(shift,
/// scale)` = the block's `prompt_scale_shift_table` `(2, D)`, plus the prompt AdaLN output
/// `(B, 1, 2·D)` when the model has one.
pub fn modulate_context(
    context: &Tensor,
    prompt_table: &Tensor,
    prompt_timestep: Option<&Tensor>,
) -> Result<Tensor> {
    let [shift, scale]: [Tensor; 2] = match prompt_timestep {
        Some(t) => ada_values(prompt_table, t, 0, PROMPT_ADALN_ROWS)?,
        None => {
            let d = prompt_table.dim(1)?;
            let table = prompt_table.to_dtype(context.dtype())?;
            (0..PROMPT_ADALN_ROWS)
                .map(|i| table.narrow(0, i, 1)?.reshape((1, 1, d)))
                .collect::<Result<Vec<_>>>()?
        }
    }
    .try_into()
    .map_err(|_| candle_core::Error::Msg("prompt ada rows".into()))?;
    modulate(context, &scale, &shift)
}

/// A↔V values: rows `start..start+2` (scale, shift) of the 4-row part with `ss_timestep`, and the
/// gate (row 4) with `gate_timestep`.
fn av_values(
    table: &Tensor,
    ss_timestep: &Tensor,
    gate_timestep: &Tensor,
    start: usize,
) -> Result<[Tensor; 3]> {
    let ss = ada_values(&table.narrow(0, 0, AV_CA_ROWS)?, ss_timestep, start, 2)?;
    let gate = ada_values(&table.narrow(0, AV_CA_ROWS, 1)?, gate_timestep, 0, 1)?;
    let [scale, shift]: [Tensor; 2] = ss
        .try_into()
        .map_err(|_| candle_core::Error::Msg("ada rows".into()))?;
    let [gate]: [Tensor; 1] = gate
        .try_into()
        .map_err(|_| candle_core::Error::Msg("ada rows".into()))?;
    Ok([scale, shift, gate])
}

fn three(v: Vec<Tensor>) -> Result<[Tensor; 3]> {
    v.try_into()
        .map_err(|_| candle_core::Error::Msg("ada rows".into()))
}

fn required<'a>(t: &'a Option<Tensor>, what: &str) -> Result<&'a Tensor> {
    t.as_ref()
        .ok_or_else(|| candle_core::Error::Msg(format!("block input missing: {what}")))
}

impl BasicAvTransformerBlock {
    /// `vb` rooted at `transformer_blocks.{idx}`; the attention and feed-forward linears are
    /// loaded under `quantization`.
    pub fn new(
        idx: usize,
        cfg: &TransformerConfig,
        quantization: Quantization,
        vb: VarBuilder,
    ) -> Result<Self> {
        let (d, da) = (cfg.inner_dim(), cfg.audio_inner_dim());
        let eps = cfg.norm_eps;
        let att = |q: usize, kv: usize, heads: usize, head_dim: usize| AttentionConfig {
            query_dim: q,
            context_dim: kv,
            heads,
            head_dim,
            norm_eps: eps,
            gated: cfg.apply_gated_attention,
        };
        let (h, hd) = (cfg.num_attention_heads, cfg.attention_head_dim);
        let (ha, hda) = (cfg.audio_num_attention_heads, cfg.audio_attention_head_dim);
        let rows = cfg.adaln_rows();
        let prompt_table = |dim: usize, name: &str| {
            cfg.cross_attention_adaln
                .then(|| vb.get((PROMPT_ADALN_ROWS, dim), name))
                .transpose()
        };
        let q = quantization;
        let attn =
            |cfg: AttentionConfig, name: &str| Attention::new_quantized(&cfg, q, vb.pp(name));
        let ff = |dim: usize, bias: bool, name: &str| {
            FeedForward::new_with(dim, dim * FF_MULT, dim, bias, q, vb.pp(name))
        };
        Ok(Self {
            idx,
            norm_eps: eps,
            attn1: attn(att(d, d, h, hd), "attn1")?,
            attn2: attn(att(d, cfg.cross_attention_dim, h, hd), "attn2")?,
            ff: ff(d, cfg.ff_bias, "ff")?,
            scale_shift_table: vb.get((rows, d), "scale_shift_table")?,
            prompt_scale_shift_table: prompt_table(d, "prompt_scale_shift_table")?,
            audio_attn1: attn(att(da, da, ha, hda), "audio_attn1")?,
            audio_attn2: attn(
                att(da, cfg.audio_cross_attention_dim, ha, hda),
                "audio_attn2",
            )?,
            audio_ff: ff(da, cfg.audio_ff_bias, "audio_ff")?,
            audio_scale_shift_table: vb.get((rows, da), "audio_scale_shift_table")?,
            audio_prompt_scale_shift_table: prompt_table(da, "audio_prompt_scale_shift_table")?,
            // ltx-core builds both A↔V attentions with the audio heads × audio head_dim.
            audio_to_video_attn: attn(att(d, da, ha, hda), "audio_to_video_attn")?,
            video_to_audio_attn: attn(att(da, d, ha, hda), "video_to_audio_attn")?,
            scale_shift_table_a2v_ca_video: vb
                .get((AV_CA_ROWS + 1, d), "scale_shift_table_a2v_ca_video")?,
            scale_shift_table_a2v_ca_audio: vb
                .get((AV_CA_ROWS + 1, da), "scale_shift_table_a2v_ca_audio")?,
        })
    }

    /// Bytes the block holds (its linears in their resident storage, norms and tables).
    pub fn resident_bytes(&self) -> u64 {
        let attns = [
            &self.attn1,
            &self.attn2,
            &self.audio_attn1,
            &self.audio_attn2,
            &self.audio_to_video_attn,
            &self.video_to_audio_attn,
        ];
        let tables = [
            Some(&self.scale_shift_table),
            self.prompt_scale_shift_table.as_ref(),
            Some(&self.audio_scale_shift_table),
            self.audio_prompt_scale_shift_table.as_ref(),
            Some(&self.scale_shift_table_a2v_ca_video),
            Some(&self.scale_shift_table_a2v_ca_audio),
        ];
        attns.iter().map(|a| a.resident_bytes()).sum::<u64>()
            + self.ff.resident_bytes()
            + self.audio_ff.resident_bytes()
            + tables.into_iter().flatten().map(tensor_bytes).sum::<u64>()
    }

    /// Self-attention (optionally STG-perturbed) and text cross-attention of one stream.
    #[allow(clippy::too_many_arguments)]
    fn self_and_text(
        &self,
        x: &Tensor,
        args: &StreamArgs,
        table: &Tensor,
        prompt_table: Option<&Tensor>,
        attn1: &Attention,
        attn2: &Attention,
        perturbed: bool,
    ) -> Result<Tensor> {
        let [shift, scale, gate] = three(ada_values(table, &args.timesteps, 0, 3)?)?;
        let normed = rms_norm_modulate(x, &scale, &shift, self.norm_eps)?;
        let attn = if perturbed {
            attn1.forward_value_passthrough(&normed)?
        } else {
            attn1.forward(
                &normed,
                None,
                Some(&args.pe),
                None,
                args.self_attention_mask.as_ref(),
            )?
        };
        let x = gate_residual(x, &attn, &gate)?;
        let text = match prompt_table {
            Some(prompt_table) => self.modulated_text(&x, args, table, prompt_table, attn2)?,
            None => self.plain_text(&x, args, attn2)?,
        };
        x + text
    }

    /// LTX-2.0 text cross-attention: `attn2(rms_norm(x), context)`.
    fn plain_text(&self, x: &Tensor, args: &StreamArgs, attn2: &Attention) -> Result<Tensor> {
        let normed = rms_norm(x, None, self.norm_eps)?;
        let mask = args.context_mask.as_ref();
        match &args.text {
            TextContext::Projected(context) => {
                attn2.forward(&normed, Some(context), None, None, mask)
            }
            TextContext::Cached(kv) => attn2.forward_with_kv(&normed, self.cached_kv(kv)?, mask),
        }
    }

    /// `cross_attention_adaln` (ltx-core `apply_cross_attention_adaln`): rows 6..9 of the AdaLN
    /// give the query side's shift, scale and the output gate; the prompt table (plus, with
    /// `use_prompt_adaln_single`, the σ-driven prompt timestep) gives the context's shift and scale.
    fn modulated_text(
        &self,
        x: &Tensor,
        args: &StreamArgs,
        table: &Tensor,
        prompt_table: &Tensor,
        attn2: &Attention,
    ) -> Result<Tensor> {
        let [shift_q, scale_q, gate] = three(ada_values(table, &args.timesteps, ADALN_ROWS, 3)?)?;
        let query = rms_norm_modulate(x, &scale_q, &shift_q, self.norm_eps)?;
        let mask = args.context_mask.as_ref();
        let out = match &args.text {
            TextContext::Projected(context) => {
                let context =
                    modulate_context(context, prompt_table, args.prompt_timestep.as_ref())?;
                attn2.forward(&query, Some(&context), None, None, mask)?
            }
            // Only without the prompt AdaLN: the keys/values were computed from the context
            // modulated by the static table alone.
            TextContext::Cached(kv) => {
                if args.prompt_timestep.is_some() {
                    candle_core::bail!(
                        "the prompt AdaLN modulates the text context in every step: precomputed \
                         text keys/values cannot be used"
                    );
                }
                attn2.forward_with_kv(&query, self.cached_kv(kv)?, mask)?
            }
        };
        out.broadcast_mul(&gate)
    }

    fn cached_kv<'a>(&self, kv: &'a [ContextKv]) -> Result<&'a ContextKv> {
        kv.get(self.idx).ok_or_else(|| {
            candle_core::Error::Msg(format!("no text keys/values for block {}", self.idx))
        })
    }

    fn feed_forward(
        &self,
        x: &Tensor,
        args: &StreamArgs,
        table: &Tensor,
        ff: &FeedForward,
    ) -> Result<Tensor> {
        let [shift, scale, gate] = three(ada_values(table, &args.timesteps, 3, 3)?)?;
        let normed = rms_norm_modulate(x, &scale, &shift, self.norm_eps)?;
        gate_residual(x, &ff.forward(&normed)?, &gate)
    }

    /// One block. Either stream may be absent (video-only / audio-only); the A↔V attentions run
    /// only when both are present.
    pub fn forward(
        &self,
        video: Option<(&Tensor, &StreamArgs)>,
        audio: Option<(&Tensor, &StreamArgs)>,
        perturbations: &Perturbations,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let i = self.idx;
        let mut vx = match video {
            Some((x, a)) => Some(self.self_and_text(
                x,
                a,
                &self.scale_shift_table,
                self.prompt_scale_shift_table.as_ref(),
                &self.attn1,
                &self.attn2,
                perturbations.skip_video_self_attn.contains(i),
            )?),
            None => None,
        };
        let mut ax = match audio {
            Some((x, a)) => Some(self.self_and_text(
                x,
                a,
                &self.audio_scale_shift_table,
                self.audio_prompt_scale_shift_table.as_ref(),
                &self.audio_attn1,
                &self.audio_attn2,
                perturbations.skip_audio_self_attn.contains(i),
            )?),
            None => None,
        };

        if let (Some((_, va)), Some((_, aa)), Some(v), Some(a)) =
            (video, audio, vx.clone(), ax.clone())
        {
            // Both norms are taken before either update: v2a sees the pre-a2v video.
            let v_norm = rms_norm(&v, None, self.norm_eps)?;
            let a_norm = rms_norm(&a, None, self.norm_eps)?;
            let (v_pe, a_pe) = (
                va.cross_pe
                    .as_ref()
                    .ok_or_else(|| candle_core::Error::Msg("video cross RoPE missing".into()))?,
                aa.cross_pe
                    .as_ref()
                    .ok_or_else(|| candle_core::Error::Msg("audio cross RoPE missing".into()))?,
            );
            let (v_ss, v_gate) = (
                required(&va.cross_scale_shift_timestep, "video cross scale/shift")?,
                required(&va.cross_gate_timestep, "video cross gate")?,
            );
            let (a_ss, a_gate) = (
                required(&aa.cross_scale_shift_timestep, "audio cross scale/shift")?,
                required(&aa.cross_gate_timestep, "audio cross gate")?,
            );
            if !perturbations.skip_a2v_cross_attn.contains(i) {
                let [sc_v, sh_v, gate] =
                    av_values(&self.scale_shift_table_a2v_ca_video, v_ss, v_gate, 0)?;
                let [sc_a, sh_a, _] =
                    av_values(&self.scale_shift_table_a2v_ca_audio, a_ss, a_gate, 0)?;
                let q = modulate(&v_norm, &sc_v, &sh_v)?;
                let kv = modulate(&a_norm, &sc_a, &sh_a)?;
                let out = self.audio_to_video_attn.forward(
                    &q,
                    Some(&kv),
                    Some(v_pe),
                    Some(a_pe),
                    None,
                )?;
                vx = Some(gate_residual(&v, &out, &gate)?);
            }
            if !perturbations.skip_v2a_cross_attn.contains(i) {
                let [sc_a, sh_a, gate] =
                    av_values(&self.scale_shift_table_a2v_ca_audio, a_ss, a_gate, 2)?;
                let [sc_v, sh_v, _] =
                    av_values(&self.scale_shift_table_a2v_ca_video, v_ss, v_gate, 2)?;
                let q = modulate(&a_norm, &sc_a, &sh_a)?;
                let kv = modulate(&v_norm, &sc_v, &sh_v)?;
                let out = self.video_to_audio_attn.forward(
                    &q,
                    Some(&kv),
                    Some(a_pe),
                    Some(v_pe),
                    None,
                )?;
                ax = Some(gate_residual(&a, &out, &gate)?);
            }
        }

        if let (Some(x), Some((_, a))) = (vx.as_ref(), video) {
            vx = Some(self.feed_forward(x, a, &self.scale_shift_table, &self.ff)?);
        }
        if let (Some(x), Some((_, a))) = (ax.as_ref(), audio) {
            ax = Some(self.feed_forward(x, a, &self.audio_scale_shift_table, &self.audio_ff)?);
        }
        Ok((vx, ax))
    }
}
