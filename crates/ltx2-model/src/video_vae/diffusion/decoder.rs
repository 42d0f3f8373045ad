//! `DiffusionVideoDecoder` (ltx-core 1.2.0 `diffusion_video_decoder.py`): normalized latent
//! `(B, C, f, h, w)` to pixels `(B, 3, 8(f − 1) + 1, 32h, 32w)` in about [−1, 1].
//!
//! Decode, as ltx-core's `_decode_pixels`:
//! 1. latents smaller than every stage's neighbourhood are edge-padded ([`geometry`]), the last
//!    latent frame is repeated `(K_t/2)·2` more times (NATTEN's window would otherwise shift at
//!    the last frame), and stages 1-3 run on the whole volume;
//! 2. per tile ([`tiling`]; one tile when untiled): stage 4, the ghost frames cropped, then the
//!    diffusion steps from Gaussian noise on the tile's stage-5 canvas at `t = 1`
//!    (`linspace(1, 1/n, n)`; x0 output: one step and the prediction is the result; velocity:
//!    Euler steps to 0);
//! 3. tiles blended, the padding cropped.
//!
//! The starting noise comes from the caller ([`NoiseFn`]): one draw per tile of the tile's
//! stage-5 canvas `(B, 3, F, H, W)` for a one-step x0 decoder, else one draw of the whole padded
//! video shared by the tiles (ltx-core draws the same shapes, in the same order, from its
//! `torch.Generator`).

use candle_core::{DType, Result, Tensor};
use candle_nn::VarBuilder;

use super::attention::{linear_last, rms_norm_last};
use super::blocks::{AdaLnZero, DiffusionNaBlock, NaBlock, PixelShuffleUpsample};
use super::geometry::{self, ResizeMode};
use super::tiling::{self, DiffusionTiling};
use super::{DiffusionDecoderConfig, ModelOutputType};
use crate::linear::{linear, Linear};
use crate::transformer::timestep::timestep_embedding;
use crate::video_vae::ops::{patchify, unpatchify};
use crate::video_vae::PerChannelStatistics;

/// Where the decoder's starting noise comes from: called with a shape, returns standard-normal
/// values of that shape (any dtype / device; they are cast). Pipelines plug their seeded
/// stream in; tests replay ltx-core's recorded draws.
pub type NoiseFn<'a> = dyn FnMut(&[usize]) -> Result<Tensor> + 'a;

/// ltx-core's `_CHUNKED_W_CHUNKS`: the diffusion blocks attend on this many W-slabs.
pub const W_CHUNKS: usize = 4;

/// Channels of the sinusoidal timestep projection (`PixArtAlphaCombinedTimestepSizeEmbeddings`).
const TIMESTEP_CHANNELS: usize = 256;

#[derive(Debug, Clone)]
pub struct DiffusionVideoDecoder {
    cfg: DiffusionDecoderConfig,
    per_channel_statistics: PerChannelStatistics,
    conv_in: Linear,
    det_stages: Vec<Vec<NaBlock>>,
    upsamples: Vec<PixelShuffleUpsample>,
    t_linear_1: Linear,
    t_linear_2: Linear,
    conv_in_x_t: Linear,
    shared_adaln: AdaLnZero,
    diff_blocks: Vec<DiffusionNaBlock>,
    norm_out: Tensor,
    conv_out: Linear,
}

impl DiffusionVideoDecoder {
    /// `vb` where `decoder.*` and `per_channel_statistics.*` live (the split file's root, or
    /// `vae` of a single-file checkpoint). `stored` is the checkpoint dtype of the gated
    /// linears: ltx-core rounds the folded `gate · W` back to it.
    pub fn new(cfg: &DiffusionDecoderConfig, vb: VarBuilder, stored: DType) -> Result<Self> {
        cfg.validate()?;
        let dec = vb.pp("decoder");
        let ch = &cfg.stage_channels;
        let mut det_stages = Vec::with_capacity(4);
        let mut upsamples = Vec::with_capacity(4);
        for (i, &(stride, reduction)) in cfg.upsamples.iter().enumerate() {
            let vb_stage = dec.pp("det_stages").pp(i);
            let blocks = (0..cfg.stage_depths[i])
                .map(|j| NaBlock::new(ch[i], cfg.stage_kernels[i], cfg.head_dim, vb_stage.pp(j)))
                .collect::<Result<Vec<_>>>()?;
            det_stages.push(blocks);
            upsamples.push(PixelShuffleUpsample::new(
                ch[i],
                stride,
                reduction,
                dec.pp("upsamples").pp(i),
            )?);
        }
        let c5 = cfg.stage5_channels();
        let pixel_channels = cfg.out_channels * cfg.patch_size * cfg.patch_size;
        let t_mlp = dec.pp("t_embedder").pp("mlp");
        let diff_blocks = (0..cfg.stage5_depth())
            .map(|i| {
                DiffusionNaBlock::new(
                    c5,
                    cfg.stage5_kernel,
                    cfg.context_channels(),
                    cfg.head_dim,
                    stored,
                    dec.pp("diff_blocks").pp(i),
                )
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            per_channel_statistics: PerChannelStatistics::new(
                cfg.in_channels,
                vb.pp("per_channel_statistics"),
            )?,
            conv_in: linear(cfg.in_channels, ch[0], dec.pp("conv_in"))?,
            det_stages,
            upsamples,
            t_linear_1: linear(TIMESTEP_CHANNELS, cfg.t_emb_dim, t_mlp.pp("0"))?,
            t_linear_2: linear(cfg.t_emb_dim, cfg.t_emb_dim, t_mlp.pp("2"))?,
            conv_in_x_t: linear(pixel_channels, c5, dec.pp("conv_in_x_t"))?,
            shared_adaln: AdaLnZero::new(c5, cfg.t_emb_dim, dec.pp("shared_adaln"))?,
            diff_blocks,
            norm_out: dec.get(c5, "norm_out.weight")?,
            conv_out: linear(c5, pixel_channels, dec.pp("conv_out"))?,
            cfg: cfg.clone(),
        })
    }

    pub fn config(&self) -> &DiffusionDecoderConfig {
        &self.cfg
    }

    pub fn per_channel_statistics(&self) -> &PerChannelStatistics {
        &self.per_channel_statistics
    }

    pub fn latent_channels(&self) -> usize {
        self.cfg.in_channels
    }

    /// Output frames / pixels per latent cell: the upsamplers' strides, times the patch in space.
    pub fn scale_factors(&self) -> [usize; 3] {
        let mut s = [1, self.cfg.patch_size, self.cfg.patch_size];
        for (stride, _) in &self.cfg.upsamples {
            for a in 0..3 {
                s[a] *= stride[a];
            }
        }
        s
    }

    /// Stages 1-3 on a (padded) normalized latent: the channels-last stage-4 input.
    pub fn forward_stages_1_to_3(&self, latent: &Tensor) -> Result<Tensor> {
        let x = self.per_channel_statistics.un_normalize(latent)?;
        let mut x = linear_last(&self.conv_in, &x.permute((0, 2, 3, 4, 1))?.contiguous()?)?;
        for stage in 0..3 {
            for block in &self.det_stages[stage] {
                x = block.forward(&x)?;
            }
            x = self.upsamples[stage].forward(&x, true)?;
        }
        Ok(x)
    }

    /// Stage 4's blocks on a stage-4 tile (its upsampler runs inside each diffusion block, as
    /// ltx-core's deferred pathway); the trailing ghost frames are cropped when the tile has them.
    fn stage4(&self, x: &Tensor, pad_trailing: bool) -> Result<Tensor> {
        let mut x = x.clone();
        for block in &self.det_stages[3] {
            x = block.forward(&x)?;
        }
        if !pad_trailing {
            return Ok(x);
        }
        let up_t = self.cfg.upsamples[3].0[0];
        let ghost_per_latent: usize = self.cfg.upsamples[..3].iter().map(|(s, _)| s[0]).product();
        geometry::crop_trailing_ghost(
            &x,
            self.cfg.natten_trailing_pad_latent_frames(),
            ghost_per_latent,
            self.cfg.stage5_kernel[0].div_ceil(up_t).max(1),
        )
    }

    /// One stage-5 step: the model's prediction in pixel space `(B, 3, F, H, W)`.
    fn diff_step(
        &self,
        x_t: &Tensor,
        context: &Tensor,
        t: f32,
        drop_leading_frame: bool,
    ) -> Result<Tensor> {
        let b = x_t.dim(0)?;
        let dtype = context.dtype();
        let patched = patchify(x_t, self.cfg.patch_size)?
            .permute((0, 2, 3, 4, 1))?
            .contiguous()?;
        let mut x = linear_last(&self.conv_in_x_t, &patched)?;
        let t = Tensor::from_vec(
            vec![(self.cfg.timestep_scale_multiplier as f32) * t; b],
            b,
            x.device(),
        )?;
        let t_proj = timestep_embedding(&t, TIMESTEP_CHANNELS)?.to_dtype(dtype)?;
        let t_emb = linear_last(
            &self.t_linear_2,
            &linear_last(&self.t_linear_1, &t_proj)?.silu()?,
        )?;
        let modulation = self.shared_adaln.forward(&t_emb)?;
        for block in &self.diff_blocks {
            x = block.forward(
                &x,
                context,
                &modulation,
                &self.upsamples[3],
                drop_leading_frame,
                W_CHUNKS,
            )?;
        }
        let x = linear_last(&self.conv_out, &rms_norm_last(&x, &self.norm_out)?)?;
        unpatchify(
            &x.permute((0, 4, 1, 2, 3))?.contiguous()?,
            self.cfg.patch_size,
        )
    }

    /// `x − (t_now − t_next)·v` in f32 (`_euler_step`; x0 predictions become `(x − x0)/t`).
    fn euler_step(&self, x_t: &Tensor, out: &Tensor, t_now: f32, t_next: f32) -> Result<Tensor> {
        let x = x_t.to_dtype(DType::F32)?;
        let out = out.to_dtype(DType::F32)?;
        let v = match self.cfg.model_output_type {
            ModelOutputType::Velocity => out,
            ModelOutputType::X0 => ((&x - out)? / t_now as f64)?,
        };
        (x - (v * (t_now - t_next) as f64)?)?.to_dtype(x_t.dtype())
    }

    /// Stage 4 and the diffusion steps of one stage-4 tile, from `x_t` on its stage-5 canvas.
    fn decode_one_tile(
        &self,
        feat: &Tensor,
        x_t: Tensor,
        is_origin: bool,
        pad_trailing: bool,
    ) -> Result<Tensor> {
        let context = self.stage4(feat, pad_trailing)?;
        let steps = self.cfg.inference_timesteps();
        let mut x_t = x_t;
        for pair in steps.windows(2) {
            let out = self.diff_step(&x_t, &context, pair[0], is_origin)?;
            x_t = self.euler_step(&x_t, &out, pair[0], pair[1])?;
        }
        let t_last = steps[steps.len() - 1];
        let out = self.diff_step(&x_t, &context, t_last, is_origin)?;
        match self.cfg.model_output_type {
            ModelOutputType::X0 => Ok(out),
            ModelOutputType::Velocity => self.euler_step(&x_t, &out, t_last, 0.0),
        }
    }

    /// Untiled decode.
    pub fn decode(&self, latent: &Tensor, noise: &mut NoiseFn) -> Result<Tensor> {
        self.decode_tiled(latent, &DiffusionTiling::UNTILED, noise)
    }

    /// Decode with ltx-core's DiffVAE tiling (see [`tiling`]); returns `(B, 3, F, H, W)`.
    pub fn decode_tiled(
        &self,
        latent: &Tensor,
        tiling_cfg: &DiffusionTiling,
        noise: &mut NoiseFn,
    ) -> Result<Tensor> {
        let (b, c, f, h, w) = latent.dims5()?;
        if c != self.cfg.in_channels {
            candle_core::bail!(
                "diffusion video decode: latent has {c} channels, the VAE {}",
                self.cfg.in_channels
            );
        }
        let dtype = latent.dtype();
        let scale = self.scale_factors();
        let content = [(f - 1) * scale[0] + 1, h * scale[1], w * scale[2]];
        let (latent, pads) =
            geometry::ensure_min_latent(latent, geometry::all_stages_min_latent(&self.cfg))?;
        let work = [latent.dim(2)?, latent.dim(3)?, latent.dim(4)?];
        let full = [
            (work[0] - 1) * scale[0] + 1,
            work[1] * scale[1],
            work[2] * scale[2],
        ];
        let s4 = geometry::stage4_thw(&self.cfg.upsamples, work);
        let up3 = self.cfg.upsamples[3].0;
        let axes = tiling::axis_tiles(
            tiling_cfg,
            s4,
            up3,
            self.cfg.patch_size,
            geometry::tile_min_size(&self.cfg),
            geometry::min_pixel_overlaps(&self.cfg),
        )?;
        let n_ghost = self.cfg.natten_trailing_pad_latent_frames();
        let padded =
            geometry::resize_axis(&latent, 2, work[0] + n_ghost, ResizeMode::RepeatLast)?.0;
        let feat = self.forward_stages_1_to_3(&padded)?;

        let single_step_x0 = self.cfg.default_num_inference_steps == 1
            && self.cfg.model_output_type == ModelOutputType::X0;
        let cast = |t: Tensor| t.to_dtype(dtype)?.to_device(latent.device());
        let shared_noise = if single_step_x0 {
            None
        } else {
            Some(cast(noise(&[
                b,
                self.cfg.out_channels,
                full[0],
                full[1],
                full[2],
            ])?)?)
        };
        let complementary = tiling::masks_are_complementary(&axes, full);
        let out_shape = (b, self.cfg.out_channels, full[0], full[1], full[2]);
        let mut buffer = Tensor::zeros(out_shape, DType::F32, latent.device())?;
        let mut weights = if complementary {
            None
        } else {
            Some(Tensor::zeros(out_shape, DType::F32, latent.device())?)
        };
        for tt in &axes[0] {
            for th in &axes[1] {
                for tw in &axes[2] {
                    let whole = |r: &Option<std::ops::Range<usize>>, len: usize| {
                        r.clone().unwrap_or(0..len)
                    };
                    let (t_in, h_in, w_in) = (
                        whole(&tt.input, s4[0]),
                        whole(&th.input, s4[1]),
                        whole(&tw.input, s4[2]),
                    );
                    let is_origin = t_in.start == 0;
                    let pad_trailing = t_in.end == s4[0];
                    let t_stop = if pad_trailing { feat.dim(1)? } else { t_in.end };
                    let feat_tile = feat
                        .narrow(1, t_in.start, t_stop - t_in.start)?
                        .narrow(2, h_in.start, h_in.len())?
                        .narrow(3, w_in.start, w_in.len())?;
                    let out = [
                        whole(&tt.output, full[0]),
                        whole(&th.output, full[1]),
                        whole(&tw.output, full[2]),
                    ];
                    let canvas = geometry::stage5_pixel_shape(
                        [t_in.len(), h_in.len(), w_in.len()],
                        up3,
                        self.cfg.patch_size,
                        self.cfg.stage5_kernel[0],
                        is_origin,
                        pad_trailing,
                    );
                    let x_t = match &shared_noise {
                        None => cast(noise(&[
                            b,
                            self.cfg.out_channels,
                            canvas[0],
                            canvas[1],
                            canvas[2],
                        ])?)?,
                        Some(n) => {
                            let x = n
                                .narrow(2, out[0].start, out[0].len())?
                                .narrow(3, out[1].start, out[1].len())?
                                .narrow(4, out[2].start, out[2].len())?;
                            let x =
                                geometry::resize_axis(&x, 2, canvas[0], ResizeMode::RepeatLast)?.0;
                            let x =
                                geometry::resize_axis(&x, 3, canvas[1], ResizeMode::Symmetric)?.0;
                            geometry::resize_axis(&x, 4, canvas[2], ResizeMode::Symmetric)?.0
                        }
                    };
                    let px = self.decode_one_tile(&feat_tile, x_t, is_origin, pad_trailing)?;
                    let px = geometry::resize_axis(&px, 2, out[0].len(), ResizeMode::RepeatLast)?.0;
                    let px = geometry::resize_axis(&px, 3, out[1].len(), ResizeMode::Symmetric)?.0;
                    let px = geometry::resize_axis(&px, 4, out[2].len(), ResizeMode::Symmetric)?.0;
                    let masks = [&tt.mask[..], &th.mask[..], &tw.mask[..]];
                    let ranges = [out[0].clone(), out[1].clone(), out[2].clone()];
                    let px = px.to_dtype(DType::F32)?;
                    buffer = add_region(&buffer, &tiling::scale_by_masks(&px, masks)?, &ranges)?;
                    if let Some(wts) = weights.as_mut() {
                        let ones = px.ones_like()?;
                        *wts = add_region(wts, &tiling::scale_by_masks(&ones, masks)?, &ranges)?;
                    }
                }
            }
        }
        if let Some(wts) = weights {
            buffer = buffer.broadcast_div(&wts.clamp(1e-8f32, f32::MAX)?)?;
        }
        buffer
            .narrow(2, 0, content[0])?
            .narrow(3, pads[1].before * scale[1], content[1])?
            .narrow(4, pads[2].before * scale[2], content[2])?
            .to_dtype(dtype)
    }
}

/// `buffer[.., t, h, w] += x` over the given output ranges.
fn add_region(buffer: &Tensor, x: &Tensor, ranges: &[std::ops::Range<usize>; 3]) -> Result<Tensor> {
    let current = buffer
        .narrow(2, ranges[0].start, ranges[0].len())?
        .narrow(3, ranges[1].start, ranges[1].len())?
        .narrow(4, ranges[2].start, ranges[2].len())?;
    let sum = (current + x)?;
    buffer.slice_assign(
        &[
            0..buffer.dim(0)?,
            0..buffer.dim(1)?,
            ranges[0].clone(),
            ranges[1].clone(),
            ranges[2].clone(),
        ],
        &sum,
    )
}
