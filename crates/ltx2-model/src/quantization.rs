//! How the DiT's block linears are stored and multiplied: ltx-core 1.0.0's `QuantizationPolicy`
//! (`ltx_core/quantization/`), chosen by the operator (`--quantization`, `LTX2_QUANTIZATION`).
//!
//! | mode | checkpoint | block linears resident as | product |
//! |---|---|---|---|
//! | `none` (default) | bf16 | the compute dtype | dense |
//! | `none` (default) | FP8 (`F8_E4M3` + `weight_scale`) | FP8 + scale | weight dequantized per layer (`f32(w)·weight_scale`), dense |
//! | `fp8-cast` | bf16 | FP8, no scale | weight upcast per layer, dense (ltx-core `UPCAST_DURING_INFERENCE`) |
//! | `fp8-scaled-mm` | FP8 with `input_scale` | FP8 + scales | activations quantized with `input_scale`, FP8×FP8 GEMM (ltx-core `FP8Linear`) |
//!
//! `none` on an FP8 file is ltx-core's `weight_only` numerics (what its FP8 goldens call
//! `out.weight_only.*`), the same numbers the loader produced when it dequantized at load, at half
//! the memory. The two rules below decide, by key, which layers each ltx-core policy touches.

use std::fmt;
use std::str::FromStr;

/// The DiT's key prefix inside the combined checkpoint (ltx-core strips it before its sd_ops).
const DIT_PREFIX: &str = "model.diffusion_model.";

/// Largest finite `float8_e4m3fn` value.
pub const E4M3_MAX: f32 = 448.0;

/// The quantization mode of the DiT's block linears (ltx-core's `--quantization` policies, plus
/// `none`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Quantization {
    /// Load what the file holds: bf16 stays dense; an FP8 file stays FP8 resident and each layer's
    /// weight is dequantized just before its matmul (weight-only numerics).
    #[default]
    None,
    /// ltx-core `QuantizationPolicy.fp8_cast()`: a bf16 checkpoint's block q/k/v/out and
    /// feed-forward weights and biases are cast to `float8_e4m3fn` at load (round to nearest, no
    /// scale) and upcast for each matmul.
    Fp8Cast,
    /// ltx-core `QuantizationPolicy.fp8_scaled_mm()`: an FP8 checkpoint's layers quantize their
    /// input with the static `input_scale` and multiply FP8 by FP8, scaled by both scales.
    Fp8ScaledMm,
}

impl Quantization {
    pub const ALL: [Quantization; 3] = [Self::None, Self::Fp8Cast, Self::Fp8ScaledMm];

    /// The CLI / environment spelling (ltx-pipelines' `--quantization` names).
    pub fn name(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Fp8Cast => "fp8-cast",
            Self::Fp8ScaledMm => "fp8-scaled-mm",
        }
    }
}

impl fmt::Display for Quantization {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Quantization {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|q| q.name() == s.trim())
            .ok_or_else(|| {
                format!(
                    "unknown quantization `{s}`: expected one of {}",
                    Self::ALL.map(|q| q.name()).join(", ")
                )
            })
    }
}

/// How the Gemma text encoder's linears are held (`--gemma-quantization`,
/// `LTX2_GEMMA_QUANTIZATION`), for either tower (Gemma-3 of LTX-2.0 / 2.3, Gemma-4 of LTX-2.5). ltx-core runs Gemma in bf16 (the parity default); FP8 is this
/// server's option to keep everything resident in 48 GB with an FP8 DiT (docs/PERFORMANCE.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum GemmaQuantization {
    /// As the folder or packed file stores them (bf16), in the compute dtype.
    #[default]
    None,
    /// The attention and MLP projections quantized at load to per-tensor FP8 with ltx-core's
    /// `quantize_weight_to_fp8_per_tensor` (scale `448 / max|w|`), dequantized per layer; the
    /// embedding and norms keep their dtype. Half the bytes, not ltx-core's numbers.
    Fp8,
}

impl GemmaQuantization {
    pub const ALL: [GemmaQuantization; 2] = [Self::None, Self::Fp8];

    pub fn name(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Fp8 => "fp8",
        }
    }
}

impl fmt::Display for GemmaQuantization {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for GemmaQuantization {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|q| q.name() == s.trim())
            .ok_or_else(|| format!("unknown Gemma quantization `{s}`: expected none or fp8"))
    }
}

/// Whether `--gemma-quantization fp8` quantizes the Gemma tensor `key`: the q/k/v/o attention
/// and gate/up/down MLP projection weights of every decoder layer (Gemma-3 or Gemma-4; a Gemma-4
/// layer stores only the projections it has: none for K/V on KV-shared layers, no `v_proj` with
/// K=V).
pub fn gemma_fp8_quantizes(key: &str) -> bool {
    const SUFFIXES: [&str; 7] = [
        ".self_attn.q_proj.weight",
        ".self_attn.k_proj.weight",
        ".self_attn.v_proj.weight",
        ".self_attn.o_proj.weight",
        ".mlp.gate_proj.weight",
        ".mlp.up_proj.weight",
        ".mlp.down_proj.weight",
    ];
    key.contains("layers.") && SUFFIXES.iter().any(|s| key.ends_with(s))
}

/// The key relative to the DiT (ltx-core matches its sd_ops after stripping the prefix).
fn dit_relative(key: &str) -> &str {
    key.strip_prefix(DIT_PREFIX).unwrap_or(key)
}

/// ltx-core `TRANSFORMER_LINEAR_DOWNCAST_MAP` (`fp8_cast.py`): whether `fp8-cast` downcasts the
/// tensor `key` (full or DiT-relative): prefix `transformer_blocks.` and one of the q/k/v/out or
/// feed-forward weight/bias suffixes. Every block is included; `to_gate_logits`, norms and tables
/// are not.
pub fn fp8_cast_casts(key: &str) -> bool {
    const SUFFIXES: [&str; 12] = [
        ".to_q.weight",
        ".to_q.bias",
        ".to_k.weight",
        ".to_k.bias",
        ".to_v.weight",
        ".to_v.bias",
        ".to_out.0.weight",
        ".to_out.0.bias",
        "ff.net.0.proj.weight",
        "ff.net.0.proj.bias",
        "ff.net.2.weight",
        "ff.net.2.bias",
    ];
    let rel = dit_relative(key);
    rel.starts_with("transformer_blocks.") && SUFFIXES.iter().any(|s| rel.ends_with(s))
}

/// ltx-core `EXCLUDED_LAYER_SUBSTRINGS` (`fp8_scaled_mm.py`) for a 48-block DiT: the layers
/// `FP8_PREPARE_MODULE_OPS` leaves as `nn.Linear` (and the official FP8 files store in bf16).
fn fp8_excluded(layer: &str) -> bool {
    const EXCLUDED: [&str; 13] = [
        "patchify_proj",
        "adaln_single",
        "av_ca_video_scale_shift_adaln_single",
        "av_ca_a2v_gate_adaln_single",
        "caption_projection",
        "proj_out",
        "audio_patchify_proj",
        "audio_adaln_single",
        "av_ca_audio_scale_shift_adaln_single",
        "av_ca_v2a_gate_adaln_single",
        "audio_caption_projection",
        "audio_proj_out",
        "transformer_blocks.0.",
    ];
    EXCLUDED.iter().any(|s| layer.contains(s))
        || (43..48).any(|i| layer.contains(&format!("transformer_blocks.{i}.")))
}

/// Whether ltx-core's FP8 scaled-mm path makes the linear layer `layer` (a module path such as
/// `model.diffusion_model.transformer_blocks.5.attn1.to_q`, full or DiT-relative) an `FP8Linear`:
/// every linear of `transformer_blocks.*` except blocks 0 and 43-47. This is the layout of the
/// official `*-fp8.safetensors` files; the loader itself follows what a file stores, and this
/// rule only lays out files that do not exist here (memory reports, benchmark weights).
pub fn fp8_scaled_mm_layer(layer: &str) -> bool {
    let rel = dit_relative(layer);
    rel.starts_with("transformer_blocks.") && !fp8_excluded(rel)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for q in Quantization::ALL {
            assert_eq!(q.name().parse::<Quantization>().unwrap(), q);
        }
        let e = "fp8".parse::<Quantization>().unwrap_err();
        assert!(e.contains("none, fp8-cast, fp8-scaled-mm"), "{e}");
    }

    #[test]
    fn gemma_fp8_takes_the_layer_projections_only() {
        let l = "language_model.model.layers.3.";
        for k in [
            "self_attn.q_proj.weight",
            "self_attn.o_proj.weight",
            "mlp.down_proj.weight",
        ] {
            assert!(gemma_fp8_quantizes(&format!("{l}{k}")), "{k}");
        }
        for k in [
            "self_attn.q_norm.weight",
            "input_layernorm.weight",
            "self_attn.q_proj.bias",
        ] {
            assert!(!gemma_fp8_quantizes(&format!("{l}{k}")), "{k}");
        }
        assert!(!gemma_fp8_quantizes(
            "language_model.model.embed_tokens.weight"
        ));
        assert_eq!(
            "fp8".parse::<GemmaQuantization>().unwrap(),
            GemmaQuantization::Fp8
        );
        assert!("int8".parse::<GemmaQuantization>().is_err());
    }

    #[test]
    fn fp8_cast_matches_ltx_core_suffixes() {
        let p = "model.diffusion_model.transformer_blocks.0.";
        for k in [
            "attn1.to_q.weight",
            "attn2.to_k.bias",
            "audio_to_video_attn.to_v.weight",
            "video_to_audio_attn.to_out.0.bias",
            "ff.net.0.proj.weight",
            "audio_ff.net.2.bias",
        ] {
            assert!(fp8_cast_casts(&format!("{p}{k}")), "{k}");
        }
        assert!(fp8_cast_casts("transformer_blocks.47.ff.net.2.weight"));
        for k in [
            "attn1.to_gate_logits.weight",
            "attn1.q_norm.weight",
            "scale_shift_table",
        ] {
            assert!(!fp8_cast_casts(&format!("{p}{k}")), "{k}");
        }
        // Not a DiT block: the connectors and the non-block layers keep their dtype.
        assert!(!fp8_cast_casts(
            "model.diffusion_model.video_embeddings_connector.transformer_1d_blocks.0.attn1.to_q.weight"
        ));
        assert!(!fp8_cast_casts("model.diffusion_model.proj_out.weight"));
    }

    #[test]
    fn scaled_mm_layers_skip_blocks_0_and_43_to_47() {
        let l = |i: usize| format!("model.diffusion_model.transformer_blocks.{i}.attn1.to_q");
        assert!(!fp8_scaled_mm_layer(&l(0)));
        assert!(fp8_scaled_mm_layer(&l(1)));
        assert!(fp8_scaled_mm_layer(&l(42)));
        for i in 43..48 {
            assert!(!fp8_scaled_mm_layer(&l(i)), "{i}");
        }
        // `transformer_blocks.4.` must not match `transformer_blocks.43.`-style prefixes only.
        assert!(fp8_scaled_mm_layer(&l(4)));
        assert!(fp8_scaled_mm_layer(
            "transformer_blocks.10.attn2.to_gate_logits"
        ));
        assert!(!fp8_scaled_mm_layer(
            "model.diffusion_model.adaln_single.linear"
        ));
    }
}
