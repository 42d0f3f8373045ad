//! Latent shapes, token layout (patchify), RoPE positions and the token-level [`LatentState`].
//!
//! Mirrors `ltx_core/types.py` (shapes), `ltx_core/components/patchifiers.py` (patch size 1,
//! positions) and `ltx_core/tools.py` (`create_initial_state`, `clear_conditioning`).

use candle_core::{DType, Device, Result, Tensor};

/// Pixel frames per latent frame (time compression of the video VAE).
pub const VIDEO_TIME_SCALE: usize = 8;
/// Pixels per latent cell (space compression of the video VAE).
pub const VIDEO_SPACE_SCALE: usize = 32;
/// Mel frames per audio latent frame.
pub const AUDIO_MEL_PER_LATENT: usize = 4;
/// Mel hop length and sample rate of the audio front-end (positions are in seconds).
pub const AUDIO_HOP_LENGTH: usize = 160;
pub const AUDIO_SAMPLE_RATE: usize = 16000;
/// Audio latent channels and mel bins (token width 8 x 16 = 128).
pub const AUDIO_LATENT_CHANNELS: usize = 8;
pub const AUDIO_LATENT_MEL_BINS: usize = 16;

/// Video latent `(1, channels, frames, height, width)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VideoLatentShape {
    pub channels: usize,
    pub frames: usize,
    pub height: usize,
    pub width: usize,
}

impl VideoLatentShape {
    /// `frames = (F - 1) / 8 + 1`, `height = H / 32`, `width = W / 32`.
    pub fn from_pixels(channels: usize, frames: usize, height: usize, width: usize) -> Self {
        Self {
            channels,
            frames: (frames - 1) / VIDEO_TIME_SCALE + 1,
            height: height / VIDEO_SPACE_SCALE,
            width: width / VIDEO_SPACE_SCALE,
        }
    }

    pub fn from_dims(dims: &[usize]) -> Result<Self> {
        match dims {
            [_, c, f, h, w] => Ok(Self {
                channels: *c,
                frames: *f,
                height: *h,
                width: *w,
            }),
            _ => candle_core::bail!("video latent must be (B, C, F, H, W), got {dims:?}"),
        }
    }

    pub fn tokens(&self) -> usize {
        self.frames * self.height * self.width
    }

    pub fn dims(&self) -> [usize; 5] {
        [1, self.channels, self.frames, self.height, self.width]
    }
}

/// Audio latent `(1, 8, frames, 16)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AudioLatentShape {
    pub channels: usize,
    pub frames: usize,
    pub mel_bins: usize,
}

impl AudioLatentShape {
    /// `frames = round(F / fps * 25)` with Python's half-to-even rounding, as
    /// `AudioLatentShape.from_video_pixel_shape`.
    pub fn from_video(num_frames: usize, fps: f64) -> Self {
        let per_second =
            AUDIO_SAMPLE_RATE as f64 / AUDIO_HOP_LENGTH as f64 / AUDIO_MEL_PER_LATENT as f64;
        let frames = (num_frames as f64 / fps * per_second).round_ties_even() as usize;
        Self {
            channels: AUDIO_LATENT_CHANNELS,
            frames,
            mel_bins: AUDIO_LATENT_MEL_BINS,
        }
    }

    pub fn from_dims(dims: &[usize]) -> Result<Self> {
        match dims {
            [_, c, t, m] => Ok(Self {
                channels: *c,
                frames: *t,
                mel_bins: *m,
            }),
            _ => candle_core::bail!("audio latent must be (B, C, T, M), got {dims:?}"),
        }
    }

    pub fn dims(&self) -> [usize; 4] {
        [1, self.channels, self.frames, self.mel_bins]
    }
}

/// `(B, C, F, H, W) -> (B, F*H*W, C)`, token index `(f*H + h)*W + w`.
pub fn patchify_video(latent: &Tensor) -> Result<Tensor> {
    let (b, c, f, h, w) = latent.dims5()?;
    latent
        .reshape((b, c, f * h * w))?
        .transpose(1, 2)?
        .contiguous()
}

/// Inverse of [`patchify_video`].
pub fn unpatchify_video(tokens: &Tensor, shape: VideoLatentShape) -> Result<Tensor> {
    let b = tokens.dim(0)?;
    tokens.transpose(1, 2)?.contiguous()?.reshape((
        b,
        shape.channels,
        shape.frames,
        shape.height,
        shape.width,
    ))
}

/// `(B, C, T, M) -> (B, T, C*M)`, feature index `c*M + m`.
pub fn patchify_audio(latent: &Tensor) -> Result<Tensor> {
    let (b, c, t, m) = latent.dims4()?;
    latent
        .permute((0, 2, 1, 3))?
        .contiguous()?
        .reshape((b, t, c * m))
}

/// Inverse of [`patchify_audio`].
pub fn unpatchify_audio(tokens: &Tensor, shape: AudioLatentShape) -> Result<Tensor> {
    let b = tokens.dim(0)?;
    tokens
        .reshape((b, shape.frames, shape.channels, shape.mel_bins))?
        .permute((0, 2, 1, 3))?
        .contiguous()
}

/// Video positions `(1, 3, T, 2)`: `[start, end)` per axis in (seconds, pixels, pixels).
///
/// `causal_fix` makes latent frame 0 cover one pixel frame (`t = max(8i + 1 - 8, 0)`), as for the
/// generated latent; keyframe tokens use no fix and are shifted by `frame_offset` pixel frames.
/// Time is divided by `fps` last, in f32, like ltx-core.
pub fn video_positions(
    shape: VideoLatentShape,
    fps: f32,
    causal_fix: bool,
    frame_offset: usize,
    device: &Device,
) -> Result<Tensor> {
    let n = shape.tokens();
    let (ts, ss) = (VIDEO_TIME_SCALE as f32, VIDEO_SPACE_SCALE as f32);
    let mut out = vec![0f32; 3 * n * 2];
    let mut idx = 0;
    for f in 0..shape.frames {
        let (mut t0, mut t1) = (f as f32 * ts, (f + 1) as f32 * ts);
        if causal_fix {
            t0 = (t0 + 1.0 - ts).max(0.0);
            t1 = (t1 + 1.0 - ts).max(0.0);
        }
        t0 = (t0 + frame_offset as f32) / fps;
        t1 = (t1 + frame_offset as f32) / fps;
        for h in 0..shape.height {
            for w in 0..shape.width {
                let vals = [
                    (t0, t1),
                    (h as f32 * ss, (h + 1) as f32 * ss),
                    (w as f32 * ss, (w + 1) as f32 * ss),
                ];
                for (axis, (s, e)) in vals.into_iter().enumerate() {
                    out[(axis * n + idx) * 2] = s;
                    out[(axis * n + idx) * 2 + 1] = e;
                }
                idx += 1;
            }
        }
    }
    Tensor::from_vec(out, (1, 3, n, 2), device)
}

/// Audio positions `(1, 1, T, 2)` in seconds: mel frames `[max(4j - 3, 0), 4j + 1)` times 160 / 16000
/// (causal audio VAE), computed in f32 in ltx-core's order.
pub fn audio_positions(frames: usize, device: &Device) -> Result<Tensor> {
    let k = AUDIO_MEL_PER_LATENT as f32;
    let sec = |j: usize| -> f32 {
        let mel = (j as f32 * k + 1.0 - k).max(0.0);
        mel * AUDIO_HOP_LENGTH as f32 / AUDIO_SAMPLE_RATE as f32
    };
    let out: Vec<f32> = (0..frames).flat_map(|j| [sec(j), sec(j + 1)]).collect();
    Tensor::from_vec(out, (1, 1, frames, 2), device)
}

/// One modality's token-level sampling state (ltx-core `LatentState`).
#[derive(Debug, Clone)]
pub struct LatentState {
    /// `(1, T, C)` current (noisy) tokens.
    pub latent: Tensor,
    /// `(1, T, C)` tokens conditioned tokens are pulled back to after every prediction.
    pub clean_latent: Tensor,
    /// `(1, T, 1)`: 1 = generate, 0 = frozen (1 - conditioning strength).
    pub denoise_mask: Tensor,
    /// `(1, axes, T, 2)` RoPE positions.
    pub positions: Tensor,
    /// Tokens of the generated latent; tokens past it are appended conditioning (keyframes).
    pub base_tokens: usize,
    /// `(1, T, 1)` video tokens that get LTX-2.5's keyframe absolute-position embedding: the
    /// first latent frame (with the causal VAE it encodes one pixel frame, like a generated
    /// keyframe) is always marked, appended conditioning tokens never (ltx-core 1.2.0
    /// `_first_frame_keyframes_mask` / `extend_keyframes_mask(marked=False)`). Models without
    /// the embedding ignore it; audio has none.
    pub keyframes_mask: Option<Tensor>,
    /// `(1, T, T)` self-attention weights in [0, 1] between the tokens (ltx-core
    /// `LatentState.attention_mask`, built by `update_attention_mask` as conditioning tokens are
    /// appended); `None` = every token attends to every token.
    pub attention_mask: Option<Tensor>,
}

impl LatentState {
    /// Initial state: `initial` tokens (or zeros) as latent and clean latent, mask 1.
    pub fn new(tokens: Tensor, positions: Tensor) -> Result<Self> {
        let (b, t, _) = tokens.dims3()?;
        let denoise_mask = Tensor::ones((b, t, 1), tokens.dtype(), tokens.device())?;
        Ok(Self {
            clean_latent: tokens.clone(),
            latent: tokens,
            denoise_mask,
            positions,
            base_tokens: t,
            keyframes_mask: None,
            attention_mask: None,
        })
    }

    /// Video state for `shape` at `fps`, from a normalized `(1, C, F, H, W)` latent or zeros.
    pub fn video(
        shape: VideoLatentShape,
        fps: f32,
        initial: Option<&Tensor>,
        dtype: DType,
        device: &Device,
    ) -> Result<Self> {
        let tokens = match initial {
            Some(l) => {
                if VideoLatentShape::from_dims(l.dims())? != shape {
                    candle_core::bail!(
                        "initial video latent {:?} does not match {shape:?}",
                        l.dims()
                    );
                }
                patchify_video(&l.to_dtype(dtype)?)?
            }
            None => Tensor::zeros((1, shape.tokens(), shape.channels), dtype, device)?,
        };
        // ltx-core 1.0.0 keeps video positions in the latent dtype (bf16 in the official runs).
        let mut state = Self::new(
            tokens,
            video_positions(shape, fps, true, 0, device)?.to_dtype(dtype)?,
        )?;
        let first_frame = shape.height * shape.width;
        let marks: Vec<f32> = (0..shape.tokens())
            .map(|i| if i < first_frame { 1.0 } else { 0.0 })
            .collect();
        state.keyframes_mask =
            Some(Tensor::from_vec(marks, (1, shape.tokens(), 1), device)?.to_dtype(dtype)?);
        Ok(state)
    }

    /// Audio state for `shape`, from a `(1, 8, T, 16)` latent or zeros.
    pub fn audio(
        shape: AudioLatentShape,
        initial: Option<&Tensor>,
        dtype: DType,
        device: &Device,
    ) -> Result<Self> {
        let tokens = match initial {
            Some(l) => {
                if AudioLatentShape::from_dims(l.dims())? != shape {
                    candle_core::bail!(
                        "initial audio latent {:?} does not match {shape:?}",
                        l.dims()
                    );
                }
                patchify_audio(&l.to_dtype(dtype)?)?
            }
            None => Tensor::zeros(
                (1, shape.frames, shape.channels * shape.mel_bins),
                dtype,
                device,
            )?,
        };
        Self::new(tokens, audio_positions(shape.frames, device)?)
    }

    /// `x = eps * (mask * s) + x * (1 - mask * s)` (`GaussianNoiser`); conditioned tokens (mask 0)
    /// stay clean.
    pub fn add_noise(&mut self, noise: &Tensor, scale: f32) -> Result<()> {
        let m = (&self.denoise_mask * scale as f64)?;
        let keep = m.affine(-1.0, 1.0)?;
        self.latent = (noise.broadcast_mul(&m)? + self.latent.broadcast_mul(&keep)?)?;
        Ok(())
    }

    /// Drops appended conditioning tokens (`clear_conditioning`), returning the generated tokens.
    pub fn generated_tokens(&self) -> Result<Tensor> {
        self.latent.narrow(1, 0, self.base_tokens)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patchify_round_trips() {
        let d = Device::Cpu;
        let x = Tensor::arange(0f32, 12.0, &d)
            .unwrap()
            .reshape((1, 2, 3, 2, 1))
            .unwrap();
        let shape = VideoLatentShape::from_dims(x.dims()).unwrap();
        let t = patchify_video(&x).unwrap();
        assert_eq!(t.dims(), &[1, 6, 2]);
        // token 1 = (f0, h1), channel 0 is element [0,0,0,1,0] = 1
        assert_eq!(
            t.get(0).unwrap().get(1).unwrap().to_vec1::<f32>().unwrap(),
            vec![1.0, 7.0]
        );
        let back = unpatchify_video(&t, shape).unwrap();
        assert_eq!(
            back.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
            x.flatten_all().unwrap().to_vec1::<f32>().unwrap()
        );

        let a = Tensor::arange(0f32, 2.0 * 3.0 * 4.0, &d)
            .unwrap()
            .reshape((1, 2, 3, 4))
            .unwrap();
        let ashape = AudioLatentShape::from_dims(a.dims()).unwrap();
        let at = patchify_audio(&a).unwrap();
        assert_eq!(at.dims(), &[1, 3, 8]);
        assert_eq!(
            at.get(0).unwrap().get(0).unwrap().to_vec1::<f32>().unwrap(),
            vec![0., 1., 2., 3., 12., 13., 14., 15.]
        );
        let back = unpatchify_audio(&at, ashape).unwrap();
        assert_eq!(
            back.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
            a.flatten_all().unwrap().to_vec1::<f32>().unwrap()
        );
    }

    #[test]
    fn audio_frames_use_bankers_rounding() {
        assert_eq!(AudioLatentShape::from_video(121, 24.0).frames, 126);
        assert_eq!(AudioLatentShape::from_video(17, 24.0).frames, 18);
        // 0.5 rounds to even: 24 frames at 50 fps = 0.48 s -> 12; 1 frame at 50 fps -> 0.5 -> 0
        assert_eq!(AudioLatentShape::from_video(1, 50.0).frames, 0);
    }
}
