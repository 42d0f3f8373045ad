//! Gemma-4 self-attention (`Gemma4UnifiedTextAttention`). Against Gemma-3: the head width depends on
//! the layer type (`global_head_dim` on full layers), values get a weightless RMSNorm, scores are not
//! scaled (q/k are normalised), full layers may use the key projection as values
//! (`attention_k_eq_v`, with their own KV head count), and the last `num_kv_shared_layers` layers
//! project only queries and reuse the K/V of the last earlier layer of their type.

use candle_core::{Module, Result, Tensor};
use candle_nn::VarBuilder;

use super::config::Gemma4Config;
use crate::linear::Linear;
use crate::quantization::GemmaQuantization;
use crate::text::gemma3::{grouped_attention, projection, GemmaRmsNorm, LayerType, RopeTable};

/// K/V projections of a layer that computes its own.
#[derive(Debug, Clone)]
struct KvProjection {
    k_proj: Linear,
    /// `None` with `attention_k_eq_v` on a full layer: the raw key projection is the value too.
    v_proj: Option<Linear>,
    k_norm: GemmaRmsNorm,
    v_norm: GemmaRmsNorm,
}

/// The roped, normalised K and V `(B, Hkv, T, hd)` kept for the KV-shared layers, per layer type.
#[derive(Debug, Default)]
pub struct SharedKv {
    sliding: Option<(Tensor, Tensor)>,
    full: Option<(Tensor, Tensor)>,
}

impl SharedKv {
    fn slot(&mut self, ty: LayerType) -> &mut Option<(Tensor, Tensor)> {
        match ty {
            LayerType::SlidingAttention => &mut self.sliding,
            LayerType::FullAttention => &mut self.full,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Gemma4Attention {
    q_proj: Linear,
    q_norm: GemmaRmsNorm,
    /// `None` on KV-shared layers (no K/V weights in the checkpoint).
    kv: Option<KvProjection>,
    o_proj: Linear,
    layer_type: LayerType,
    num_heads: usize,
    num_kv_heads: usize,
    head_dim: usize,
    /// This layer's K/V are the ones the KV-shared layers of its type reuse.
    stores_kv: bool,
}

impl Gemma4Attention {
    /// The q/k/v/o projections held as `q` says (the same per-tensor FP8 as Gemma-3's).
    pub fn new(
        cfg: &Gemma4Config,
        layer: usize,
        q: GemmaQuantization,
        vb: VarBuilder,
    ) -> Result<Self> {
        let h = cfg.hidden_size;
        let hd = cfg.layer_head_dim(layer);
        let nq = cfg.num_attention_heads;
        let Some(nkv) = cfg.num_kv_heads(layer) else {
            candle_core::bail!(
                "layer {layer}: attention_k_eq_v without num_global_key_value_heads"
            );
        };
        let bias = cfg.attention_bias;
        let eps = cfg.rms_norm_eps;
        let layer_type = cfg.layer_types[layer];
        let proj = |i: usize, o: usize, name: &str| projection(i, o, bias, q, vb.pp(name));
        let kv = if cfg.is_kv_shared(layer) {
            None
        } else {
            Some(KvProjection {
                k_proj: proj(h, nkv * hd, "k_proj")?,
                v_proj: if cfg.uses_k_as_v(layer) {
                    None
                } else {
                    Some(proj(h, nkv * hd, "v_proj")?)
                },
                k_norm: GemmaRmsNorm::with_weight(hd, eps, vb.pp("k_norm"))?,
                v_norm: GemmaRmsNorm::without_weight(eps),
            })
        };
        Ok(Self {
            q_proj: proj(h, nq * hd, "q_proj")?,
            q_norm: GemmaRmsNorm::with_weight(hd, eps, vb.pp("q_norm"))?,
            kv,
            o_proj: proj(nq * hd, h, "o_proj")?,
            layer_type,
            num_heads: nq,
            num_kv_heads: nkv,
            head_dim: hd,
            stores_kv: !cfg.is_kv_shared(layer) && cfg.kv_source_layer(layer_type) == Some(layer),
        })
    }

    /// Bytes the projections and norms hold (KV-shared layers hold no K/V).
    pub fn resident_bytes(&self) -> u64 {
        let kv = self.kv.as_ref().map_or(0, |kv| {
            kv.k_proj.resident_bytes()
                + kv.v_proj.as_ref().map_or(0, |v| v.resident_bytes())
                + kv.k_norm.resident_bytes()
                + kv.v_norm.resident_bytes()
        });
        self.q_proj.resident_bytes()
            + self.o_proj.resident_bytes()
            + self.q_norm.resident_bytes()
            + kv
    }

    /// `x (B, T, hidden)`, `rope` of this layer type, `mask (B, 1, T, T)` additive f32 ->
    /// `(B, T, hidden)` after `o_proj`. `shared` carries the K/V between the source layers and the
    /// KV-shared ones.
    pub fn forward(
        &self,
        x: &Tensor,
        rope: &RopeTable,
        mask: &Tensor,
        shared: &mut SharedKv,
    ) -> Result<Tensor> {
        let (b, t, _) = x.dims3()?;
        let hd = self.head_dim;
        let split = |y: Tensor, n: usize| y.reshape((b, t, n, hd));
        let to_heads = |y: Tensor| y.transpose(1, 2)?.contiguous();
        let q = self
            .q_norm
            .forward(&split(self.q_proj.forward(x)?, self.num_heads)?)?;
        let q = candle_nn::rotary_emb::rope(&to_heads(q)?, &rope.cos, &rope.sin)?;
        let (k, v) = match &self.kv {
            Some(kv) => {
                let k = split(kv.k_proj.forward(x)?, self.num_kv_heads)?;
                // With K=V the value is the key projection before k_norm and RoPE.
                let v = match &kv.v_proj {
                    Some(v_proj) => split(v_proj.forward(x)?, self.num_kv_heads)?,
                    None => k.clone(),
                };
                let k = kv.k_norm.forward(&k)?;
                let k = candle_nn::rotary_emb::rope(&to_heads(k)?, &rope.cos, &rope.sin)?;
                let v = to_heads(kv.v_norm.forward(&v)?)?;
                if self.stores_kv {
                    *shared.slot(self.layer_type) = Some((k.clone(), v.clone()));
                }
                (k, v)
            }
            None => shared.slot(self.layer_type).clone().ok_or_else(|| {
                candle_core::Error::Msg(format!(
                    "KV-shared {:?} layer ran before its source layer",
                    self.layer_type
                ))
            })?,
        };
        // Gemma-4 scores are not scaled (`self.scaling = 1.0`).
        let out = grouped_attention(&q, &k, &v, mask, 1.0)?;
        self.o_proj.forward(&out)
    }
}
