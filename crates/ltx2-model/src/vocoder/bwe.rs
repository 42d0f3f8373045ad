//! The LTX-2.3 vocoder with bandwidth extension (ltx-core 1.0.0 `vocoder.py::VocoderWithBWE`,
//! `MelSTFT`, `_STFTFn`): a 16 kHz generator, then a second generator that predicts the band up to
//! 24 kHz from the log-mel of the first one's output, added to a resampled copy of it: 48 kHz.

use candle_core::{Result, Tensor};
use candle_nn::VarBuilder;

use super::config::BweConfig;
use super::hifigan::Generator;
use super::resample::UpSample1d;
use super::{record, Trace};

/// `log(clamp(mel, min=1e-5))`.
const LOG_MEL_FLOOR: f64 = 1e-5;

/// Causal log-mel front-end whose DFT x window basis and mel filterbank are checkpoint buffers
/// (ltx-core loads the exact bf16 bases the BWE generator was trained with: never recomputed).
#[derive(Debug, Clone)]
pub struct MelStft {
    /// `stft_fn.forward_basis` `(2 F, 1, n_fft)`: rows of Re then Im.
    forward_basis: Tensor,
    /// `mel_basis` `(num_mels, F)`.
    mel_basis: Tensor,
    n_freqs: usize,
    hop_length: usize,
    /// `win_length - hop_length` zeros on the left only: frame `t` sees no future samples.
    left_pad: usize,
}

impl MelStft {
    /// `vb` at `vocoder.mel_stft`. `stft_fn.inverse_basis` is not loaded: the forward pass never
    /// uses it.
    pub fn new(cfg: &BweConfig, vb: VarBuilder) -> Result<Self> {
        let n_freqs = cfg.n_fft / 2 + 1;
        // ltx-core builds MelSTFT with win_length = n_fft.
        let win_length = cfg.n_fft;
        Ok(Self {
            forward_basis: vb.get((2 * n_freqs, 1, cfg.n_fft), "stft_fn.forward_basis")?,
            mel_basis: vb.get((cfg.num_mels, n_freqs), "mel_basis")?,
            n_freqs,
            hop_length: cfg.hop_length,
            left_pad: win_length.saturating_sub(cfg.hop_length),
        })
    }

    /// Waveforms `(N, T)` -> linear magnitude `(N, F, frames)`.
    pub fn magnitude(&self, y: &Tensor) -> Result<Tensor> {
        let y = y.unsqueeze(1)?.pad_with_zeros(2, self.left_pad, 0)?;
        let basis = self.forward_basis.to_dtype(y.dtype())?;
        let spec = y.conv1d(&basis, 0, self.hop_length, 1, 1)?;
        let real = spec.narrow(1, 0, self.n_freqs)?;
        let imag = spec.narrow(1, self.n_freqs, self.n_freqs)?;
        (real.sqr()? + imag.sqr()?)?.sqrt()
    }

    /// Magnitude `(N, F, frames)` -> log-mel `(N, num_mels, frames)`.
    pub fn log_mel(&self, magnitude: &Tensor) -> Result<Tensor> {
        let mel_basis = self.mel_basis.to_dtype(magnitude.dtype())?;
        mel_basis
            .broadcast_matmul(magnitude)?
            .maximum(LOG_MEL_FLOOR)?
            .log()
    }
}

/// `VocoderWithBWE`: mel `(B, 2, T, mel)` -> waveform `(B, 2, T * hop * ratio)` in [-1, 1] at
/// `output_sampling_rate`.
#[derive(Debug, Clone)]
pub struct VocoderWithBwe {
    vocoder: Generator,
    bwe_generator: Generator,
    mel_stft: MelStft,
    resampler: UpSample1d,
    input_sampling_rate: usize,
    output_sampling_rate: usize,
    hop_length: usize,
}

impl VocoderWithBwe {
    /// `vb` at the checkpoint prefix `vocoder` (holding `vocoder.*`, `bwe_generator.*`,
    /// `mel_stft.*`).
    pub fn new(cfg: &BweConfig, vb: VarBuilder) -> Result<Self> {
        cfg.validate()?;
        Ok(Self {
            vocoder: Generator::new(&cfg.vocoder, vb.pp("vocoder"))?,
            bwe_generator: Generator::new(&cfg.bwe_generator, vb.pp("bwe_generator"))?,
            mel_stft: MelStft::new(cfg, vb.pp("mel_stft"))?,
            resampler: UpSample1d::hann(cfg.ratio(), vb.dtype(), vb.device())?,
            input_sampling_rate: cfg.input_sampling_rate,
            output_sampling_rate: cfg.output_sampling_rate,
            hop_length: cfg.hop_length,
        })
    }

    pub fn output_sampling_rate(&self) -> usize {
        self.output_sampling_rate
    }

    pub fn forward(&self, mel: &Tensor) -> Result<Tensor> {
        self.forward_traced(mel, None)
    }

    /// [`Self::forward`] recording the intermediates into `trace`: the 16 kHz generator's
    /// `conv_pre_out` / `ups{i}_out`, the BWE generator's with the prefix `bwe_generator.`, and
    /// `vocoder_out`, `bwe_stft_in` (channels folded into the batch), `bwe_stft_magnitude`,
    /// `bwe_mel_in`, `bwe_residual`, `bwe_skip_resampled`.
    pub fn forward_traced(&self, mel: &Tensor, mut trace: Option<&mut Trace>) -> Result<Tensor> {
        let x = self.vocoder.forward_traced(mel, trace.as_deref_mut(), "")?;
        let (b, c, length_low_rate) = x.dims3()?;
        let output_length = length_low_rate * self.output_sampling_rate / self.input_sampling_rate;
        record(&mut trace, "vocoder_out", &x);

        // Whole hops only, so the mel has exactly one frame per hop.
        let remainder = length_low_rate % self.hop_length;
        let x = if remainder == 0 {
            x
        } else {
            x.pad_with_zeros(2, 0, self.hop_length - remainder)?
        };
        let flat = x.reshape((b * c, x.dim(2)?))?;
        record(&mut trace, "bwe_stft_in", &flat);
        let magnitude = self.mel_stft.magnitude(&flat)?;
        record(&mut trace, "bwe_stft_magnitude", &magnitude);
        let log_mel = self.mel_stft.log_mel(&magnitude)?;
        let (_, n_mels, frames) = log_mel.dims3()?;
        // (B*C, mels, frames) -> (B, C, frames, mels), the layout the generator takes.
        let mel_for_bwe = log_mel.reshape((b, c, n_mels, frames))?.transpose(2, 3)?;
        record(&mut trace, "bwe_mel_in", &mel_for_bwe);
        let residual = self.bwe_generator.forward_traced(
            &mel_for_bwe,
            trace.as_deref_mut(),
            "bwe_generator.",
        )?;
        record(&mut trace, "bwe_residual", &residual);
        let skip = self.resampler.forward(&x)?;
        record(&mut trace, "bwe_skip_resampled", &skip);
        if residual.dims() != skip.dims() {
            candle_core::bail!(
                "vocoder BWE: residual {:?} != resampled skip {:?}",
                residual.dims(),
                skip.dims()
            );
        }
        (residual + skip)?
            .clamp(-1f32, 1f32)?
            .narrow(2, 0, output_length)
    }
}
