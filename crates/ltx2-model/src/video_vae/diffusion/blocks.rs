//! The diffusion decoder's blocks (ltx-core `transformer/blocks.py`, `layers.py`, `swiglu.py`,
//! `chunked/*.py`), channels-last `(B, T, H, W, C)`.

use candle_core::{DType, Result, Tensor};
use candle_nn::VarBuilder;

use super::attention::{folded_linear, linear_last, rms_norm_last, NeighborhoodAttention3D};
use crate::linear::{linear, linear_no_bias, Linear};

/// Tokens per SwiGLU chunk: bounds the `(tokens, 4·dim)` hidden activation (the MLP is per
/// token, so chunking changes nothing but memory).
const MLP_CHUNK_TOKENS: usize = 1 << 16;

/// `w_down(silu(w_gate(x)) · w_up(x))`, no biases, hidden width `round_up(4·dim, 16)`.
#[derive(Debug, Clone)]
pub struct SwiGlu {
    w_gate: Linear,
    w_up: Linear,
    w_down: Linear,
}

impl SwiGlu {
    /// `down_gate` is a static gate folded into `w_down` (diffusion blocks' `gate_mlp`).
    pub fn new(
        dim: usize,
        down_gate: Option<&Tensor>,
        stored: DType,
        vb: VarBuilder,
    ) -> Result<Self> {
        let hidden = (dim * 4).div_ceil(16) * 16;
        let w_down = match down_gate {
            None => linear_no_bias(hidden, dim, vb.pp("w_down"))?,
            Some(g) => {
                let w = vb.pp("w_down").get((dim, hidden), "weight")?;
                let dtype = w.dtype();
                let w = w
                    .to_dtype(DType::F32)?
                    .broadcast_mul(&g.to_dtype(DType::F32)?.unsqueeze(1)?)?
                    .to_dtype(stored)?
                    .to_dtype(dtype)?;
                Linear::Dense(crate::linear::DenseLinear::new(w, None))
            }
        };
        Ok(Self {
            w_gate: linear_no_bias(dim, hidden, vb.pp("w_gate"))?,
            w_up: linear_no_bias(dim, hidden, vb.pp("w_up"))?,
            w_down,
        })
    }

    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let dims = x.dims().to_vec();
        let c = dims[dims.len() - 1];
        let flat = x.contiguous()?.reshape(((), c))?;
        let n = flat.dim(0)?;
        let mut outs = Vec::with_capacity(n.div_ceil(MLP_CHUNK_TOKENS));
        let mut start = 0;
        while start < n {
            let len = MLP_CHUNK_TOKENS.min(n - start);
            let xc = flat.narrow(0, start, len)?;
            let g = linear_last(&self.w_gate, &xc)?.silu()?;
            let u = linear_last(&self.w_up, &xc)?;
            outs.push(linear_last(&self.w_down, &(g * u)?)?);
            start += len;
        }
        Tensor::cat(&outs, 0)?.reshape(dims)
    }
}

/// A deterministic-stage block: `x + NA(norm1(x))`, then `x + SwiGLU(norm2(x))`.
#[derive(Debug, Clone)]
pub struct NaBlock {
    norm1: Tensor,
    attn: NeighborhoodAttention3D,
    norm2: Tensor,
    mlp: SwiGlu,
}

impl NaBlock {
    pub fn new(dim: usize, kernel: [usize; 3], head_dim: usize, vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            norm1: vb.get(dim, "norm1.weight")?,
            attn: NeighborhoodAttention3D::new(
                dim,
                kernel,
                head_dim,
                None,
                vb.dtype(),
                vb.pp("attn"),
            )?,
            norm2: vb.get(dim, "norm2.weight")?,
            mlp: SwiGlu::new(dim, None, vb.dtype(), vb.pp("mlp"))?,
        })
    }

    pub fn attn(&self) -> &NeighborhoodAttention3D {
        &self.attn
    }

    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let x = (x + self.attn.forward(&rms_norm_last(x, &self.norm1)?)?)?;
        &x + self.mlp.forward(&rms_norm_last(&x, &self.norm2)?)?
    }
}

/// `LinearPixelShuffleUpsample`: a linear channel expansion, then
/// `b t h w (c p1 p2 p3) -> b (t p1) (h p2) (w p3) c`; with a time stride of 2 the first
/// output frame is dropped when the input holds the video's first frame (`drop_leading_frame`),
/// which keeps the causal 1 + 2k frame mapping.
#[derive(Debug, Clone)]
pub struct PixelShuffleUpsample {
    proj: Linear,
    stride: [usize; 3],
    out_channels: usize,
}

impl PixelShuffleUpsample {
    pub fn new(
        in_channels: usize,
        stride: [usize; 3],
        reduction: usize,
        vb: VarBuilder,
    ) -> Result<Self> {
        let volume: usize = stride.iter().product();
        let proj_out = volume * in_channels / reduction;
        Ok(Self {
            proj: linear(in_channels, proj_out, vb.pp("proj"))?,
            stride,
            out_channels: proj_out / volume,
        })
    }

    pub fn stride(&self) -> [usize; 3] {
        self.stride
    }

    pub fn forward(&self, x: &Tensor, drop_leading_frame: bool) -> Result<Tensor> {
        let (b, t, h, w, _) = x.dims5()?;
        let [p1, p2, p3] = self.stride;
        let c = self.out_channels;
        let y = linear_last(&self.proj, x)?
            .reshape(vec![b, t, h, w, c, p1, p2, p3])?
            .permute(vec![0, 1, 5, 2, 6, 3, 7, 4])?
            .reshape((b, t * p1, h * p2, w * p3, c))?;
        if p1 == 2 && drop_leading_frame {
            y.narrow(1, 1, t * p1 - 1)
        } else {
            Ok(y)
        }
    }
}

/// The shared AdaLN-Zero of the diffusion blocks: `proj(silu(t_emb))` cut into 7 rows
/// (scale/shift/gate of attention, scale/shift/gate of the MLP, context gate), each
/// `(B, 1, 1, 1, dim)`.
#[derive(Debug, Clone)]
pub struct AdaLnZero {
    proj: Linear,
    dim: usize,
}

impl AdaLnZero {
    pub const ROWS: usize = 7;

    pub fn new(dim: usize, t_emb_dim: usize, vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            proj: linear(t_emb_dim, Self::ROWS * dim, vb.pp("proj"))?,
            dim,
        })
    }

    pub fn forward(&self, t_emb: &Tensor) -> Result<Vec<Tensor>> {
        let b = t_emb.dim(0)?;
        let h = linear_last(&self.proj, &t_emb.silu()?)?;
        (0..Self::ROWS)
            .map(|i| {
                h.narrow(1, i * self.dim, self.dim)?
                    .reshape((b, 1, 1, 1, self.dim))
            })
            .collect()
    }
}

/// A stage-5 block (`DiffusionNABlock` as ltx-core's `ChunkedDiffusionNABlock` runs it): adds
/// the projected stage-4 context, then the modulated attention and MLP residuals. The static
/// gates of the checkpoint (`gate_msa`, `gate_mlp`, `gate_ctx`) are folded into `attn.proj`,
/// `mlp.w_down` and `context_proj` at load, so the residuals are ungated.
#[derive(Debug, Clone)]
pub struct DiffusionNaBlock {
    context_proj: Linear,
    scale_shift_table: Tensor,
    norm1: Tensor,
    attn: NeighborhoodAttention3D,
    norm2: Tensor,
    mlp: SwiGlu,
}

impl DiffusionNaBlock {
    /// `stored`: the checkpoint dtype the folded weights are rounded to (as ltx-core's loader).
    pub fn new(
        dim: usize,
        kernel: [usize; 3],
        context_channels: usize,
        head_dim: usize,
        stored: DType,
        vb: VarBuilder,
    ) -> Result<Self> {
        let gate = |name: &str| -> Result<Option<Tensor>> {
            if vb.contains_tensor(name) {
                Ok(Some(vb.get(dim, name)?))
            } else {
                Ok(None)
            }
        };
        let (g_msa, g_mlp, g_ctx) = (gate("gate_msa")?, gate("gate_mlp")?, gate("gate_ctx")?);
        Ok(Self {
            context_proj: folded_linear(
                context_channels,
                dim,
                g_ctx.as_ref(),
                stored,
                vb.pp("context_proj"),
            )?,
            scale_shift_table: vb.get((AdaLnZero::ROWS, dim), "scale_shift_table")?,
            norm1: vb.get(dim, "norm1.weight")?,
            attn: NeighborhoodAttention3D::new(
                dim,
                kernel,
                head_dim,
                g_msa.as_ref(),
                stored,
                vb.pp("attn"),
            )?,
            norm2: vb.get(dim, "norm2.weight")?,
            mlp: SwiGlu::new(dim, g_mlp.as_ref(), stored, vb.pp("mlp"))?,
        })
    }

    /// `x (B, T, H, W, C5)`: the stage-5 tokens; `stage4_feat`: the stage-4 output before its
    /// upsampler, which `upsample` (= `upsamples[3]`) and `context_proj` bring to `x`'s grid.
    pub fn forward(
        &self,
        x: &Tensor,
        stage4_feat: &Tensor,
        modulation: &[Tensor],
        upsample: &PixelShuffleUpsample,
        drop_leading_frame: bool,
        w_chunks: usize,
    ) -> Result<Tensor> {
        let row = |i: usize| -> Result<Tensor> {
            let table = self
                .scale_shift_table
                .get(i)?
                .to_dtype(modulation[i].dtype())?;
            modulation[i].broadcast_add(&table)
        };
        let context = linear_last(
            &self.context_proj,
            &upsample.forward(stage4_feat, drop_leading_frame)?,
        )?;
        if context.dims() != x.dims() {
            candle_core::bail!(
                "diffusion block: context {:?} does not match the stage-5 tokens {:?}",
                context.dims(),
                x.dims()
            );
        }
        let x = (x + context)?;
        let x = self
            .attn
            .forward_w_chunked(&x, &self.norm1, &row(0)?, &row(1)?, w_chunks)?;
        let (scale, shift) = (row(3)?, row(4)?);
        let y = rms_norm_last(&x, &self.norm2)?
            .broadcast_mul(&(scale + 1.0)?)?
            .broadcast_add(&shift)?;
        &x + self.mlp.forward(&y)?
    }
}
