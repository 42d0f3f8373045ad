//! The audio VAE's front-end (ltx-core `AudioProcessor`): resample to the VAE rate with
//! torchaudio's `functional.resample` (Hann-windowed sinc), then torchaudio's `MelSpectrogram`
//! (periodic Hann window, centred reflect-padded STFT, magnitude, slaney mel scale and norm) and
//! `log(clamp(mel, 1e-5))`.
//!
//! This is preprocessing on the host: it runs in f64 on `Vec`s (closer to the float64 reference than
//! PyTorch's float32 is) and returns a tensor on the input's device and dtype.

use std::f64::consts::PI;
use std::sync::Arc;

use candle_core::{DType, Device, Result, Tensor};
use realfft::{RealFftPlanner, RealToComplex};

/// Mel front-end settings (ltx-core `AudioProcessor(target_sample_rate, mel_bins, mel_hop_length, n_fft)`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MelConfig {
    /// Rate the spectrogram is computed at; input audio is resampled to it. `f_max` is half of it.
    pub sample_rate: usize,
    /// FFT size and window length.
    pub n_fft: usize,
    pub hop_length: usize,
    pub n_mels: usize,
    /// Channels the encoder expects (2: mono input is duplicated).
    pub channels: usize,
}

impl MelConfig {
    /// LTX-2 19B: 16 kHz, n_fft 1024, hop 160, 64 mels, stereo.
    pub fn ltx2_19b() -> Self {
        Self {
            sample_rate: 16000,
            n_fft: 1024,
            hop_length: 160,
            n_mels: 64,
            channels: 2,
        }
    }
}

/// Most kernel values a [`SincResampler`] may hold (32 MiB of f64): every usual audio rate
/// (8, 11.025, 16, 22.05, 24, 32, 44.1, 48, 88.2, 96, 176.4, 192 kHz) to 16 kHz is far below.
pub const MAX_RESAMPLER_KERNEL: usize = 1 << 22;

/// torchaudio `functional.resample` with `resampling_method="sinc_interp_hann"`: a polyphase FIR of
/// Hann-windowed sinc kernels, one per output phase, applied with stride `orig` on the zero-padded
/// input (`width` before, `width + orig` after), output truncated to `ceil(len * new / orig)`.
#[derive(Debug, Clone)]
pub struct SincResampler {
    /// Rates divided by their gcd.
    orig: usize,
    new: usize,
    width: usize,
    /// `new` kernels of `2 * width + orig` taps each.
    kernels: Vec<f64>,
}

impl SincResampler {
    /// torchaudio's defaults: `lowpass_filter_width = 6`, `rolloff = 0.99`.
    pub fn new(orig_freq: usize, new_freq: usize) -> Result<Self> {
        Self::with_params(orig_freq, new_freq, 6, 0.99)
    }

    pub fn with_params(
        orig_freq: usize,
        new_freq: usize,
        lowpass_filter_width: usize,
        rolloff: f64,
    ) -> Result<Self> {
        if orig_freq == 0 || new_freq == 0 {
            candle_core::bail!(
                "resample: sample rates must be positive (got {orig_freq} -> {new_freq})"
            );
        }
        if lowpass_filter_width == 0 {
            candle_core::bail!("resample: lowpass_filter_width must be positive");
        }
        let (orig, new, width, taps) =
            Self::geometry(orig_freq, new_freq, lowpass_filter_width, rolloff);
        if new.saturating_mul(taps) > MAX_RESAMPLER_KERNEL {
            candle_core::bail!(
                "resample: {orig_freq} Hz -> {new_freq} Hz needs a {new} x {taps} kernel (rates with a small common divisor); at most {MAX_RESAMPLER_KERNEL} taps are allowed"
            );
        }
        let lpw = lowpass_filter_width as f64;
        let base_freq = orig.min(new) as f64 * rolloff;
        let scale = base_freq / orig as f64;
        let mut kernels = Vec::with_capacity(new * taps);
        for phase in 0..new {
            for k in 0..taps {
                let idx = (k as f64 - width as f64) / orig as f64;
                let t = ((-(phase as f64)) / new as f64 + idx) * base_freq;
                let t = t.clamp(-lpw, lpw);
                let window = (t * PI / lpw / 2.0).cos().powi(2);
                let t = t * PI;
                let sinc = if t == 0.0 { 1.0 } else { t.sin() / t };
                kernels.push(sinc * window * scale);
            }
        }
        Ok(Self {
            orig,
            new,
            width,
            kernels,
        })
    }

    /// `(orig, new, width, taps)`: the rates divided by their gcd, the kernel half-width and the
    /// taps per kernel. The kernel holds `new * taps` values: small for usual rates (44.1 kHz ->
    /// 16 kHz: 160 x 475) but gigabytes for rates whose gcd with the target is small (44 101 Hz).
    pub fn geometry(
        orig_freq: usize,
        new_freq: usize,
        lowpass_filter_width: usize,
        rolloff: f64,
    ) -> (usize, usize, usize, usize) {
        let g = gcd(orig_freq, new_freq).max(1);
        let (orig, new) = (orig_freq / g, new_freq / g);
        let base_freq = orig.min(new) as f64 * rolloff;
        let width = (lowpass_filter_width as f64 * orig as f64 / base_freq).ceil() as usize;
        (orig, new, width, 2 * width + orig)
    }

    /// Whether [`Self::new`] accepts `orig_freq -> new_freq` (its kernel fits [`MAX_RESAMPLER_KERNEL`]).
    pub fn supports(orig_freq: usize, new_freq: usize) -> bool {
        if orig_freq == 0 || new_freq == 0 {
            return false;
        }
        let (_, new, _, taps) = Self::geometry(orig_freq, new_freq, 6, 0.99);
        new.saturating_mul(taps) <= MAX_RESAMPLER_KERNEL
    }

    /// `ceil(len * new / orig)`.
    pub fn output_len(&self, input_len: usize) -> usize {
        (input_len * self.new).div_ceil(self.orig)
    }

    pub fn process(&self, input: &[f32]) -> Vec<f32> {
        let taps = 2 * self.width + self.orig;
        let out_len = self.output_len(input.len());
        let mut out = Vec::with_capacity(out_len);
        // Sample `i` of the padded signal is input[i - width] (zero outside).
        let at = |i: usize| -> f64 {
            i.checked_sub(self.width)
                .and_then(|j| input.get(j))
                .map_or(0.0, |&v| v as f64)
        };
        'frames: for frame in 0.. {
            let start = frame * self.orig;
            for kernel in self.kernels.chunks_exact(taps) {
                if out.len() == out_len {
                    break 'frames;
                }
                let acc: f64 = kernel
                    .iter()
                    .enumerate()
                    .map(|(k, w)| w * at(start + k))
                    .sum();
                out.push(acc as f32);
            }
        }
        out
    }
}

fn gcd(a: usize, b: usize) -> usize {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

/// Slaney mel scale (librosa / torchaudio `mel_scale="slaney"`): linear below 1 kHz, log above.
fn hz_to_mel_slaney(hz: f64) -> f64 {
    let f_sp = 200.0 / 3.0;
    let min_log_hz = 1000.0;
    let min_log_mel = min_log_hz / f_sp;
    let logstep = 6.4f64.ln() / 27.0;
    if hz >= min_log_hz {
        min_log_mel + (hz / min_log_hz).ln() / logstep
    } else {
        hz / f_sp
    }
}

fn mel_to_hz_slaney(mel: f64) -> f64 {
    let f_sp = 200.0 / 3.0;
    let min_log_hz = 1000.0;
    let min_log_mel = min_log_hz / f_sp;
    let logstep = 6.4f64.ln() / 27.0;
    if mel >= min_log_mel {
        min_log_hz * (logstep * (mel - min_log_mel)).exp()
    } else {
        f_sp * mel
    }
}

fn linspace(start: f64, end: f64, n: usize) -> Vec<f64> {
    match n {
        0 => vec![],
        1 => vec![start],
        _ => (0..n)
            .map(|i| start + (end - start) * i as f64 / (n - 1) as f64)
            .collect(),
    }
}

/// torchaudio `melscale_fbanks(n_freqs, f_min, f_max, n_mels, sample_rate, norm="slaney",
/// mel_scale="slaney")`, row-major `(n_freqs, n_mels)`.
pub fn mel_filterbank(
    n_freqs: usize,
    f_min: f64,
    f_max: f64,
    n_mels: usize,
    sample_rate: usize,
) -> Vec<f64> {
    let all_freqs = linspace(0.0, (sample_rate / 2) as f64, n_freqs);
    let m_pts = linspace(hz_to_mel_slaney(f_min), hz_to_mel_slaney(f_max), n_mels + 2);
    let f_pts: Vec<f64> = m_pts.iter().map(|&m| mel_to_hz_slaney(m)).collect();
    let mut fb = vec![0.0; n_freqs * n_mels];
    for (i, &f) in all_freqs.iter().enumerate() {
        for m in 0..n_mels {
            let down = (f - f_pts[m]) / (f_pts[m + 1] - f_pts[m]);
            let up = (f_pts[m + 2] - f) / (f_pts[m + 2] - f_pts[m + 1]);
            let enorm = 2.0 / (f_pts[m + 2] - f_pts[m]);
            fb[i * n_mels + m] = down.min(up).max(0.0) * enorm;
        }
    }
    fb
}

/// Log-mel spectrogram of mono/stereo waveforms at any rate (ltx-core `AudioProcessor`).
pub struct AudioProcessor {
    cfg: MelConfig,
    window: Vec<f64>,
    filterbank: Vec<f64>,
    fft: Arc<dyn RealToComplex<f64>>,
}

impl std::fmt::Debug for AudioProcessor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AudioProcessor")
            .field("cfg", &self.cfg)
            .finish_non_exhaustive()
    }
}

impl AudioProcessor {
    pub fn new(cfg: MelConfig) -> Result<Self> {
        if cfg.n_fft < 2
            || cfg.hop_length == 0
            || cfg.n_mels == 0
            || cfg.sample_rate == 0
            || cfg.channels == 0
        {
            candle_core::bail!("mel front-end: invalid settings {cfg:?}");
        }
        // torch.hann_window(n, periodic=True).
        let n = cfg.n_fft;
        let window = (0..n)
            .map(|i| 0.5 - 0.5 * (2.0 * PI * i as f64 / n as f64).cos())
            .collect();
        let filterbank = mel_filterbank(
            n / 2 + 1,
            0.0,
            cfg.sample_rate as f64 / 2.0,
            cfg.n_mels,
            cfg.sample_rate,
        );
        let fft = RealFftPlanner::<f64>::new().plan_fft_forward(n);
        Ok(Self {
            cfg,
            window,
            filterbank,
            fft,
        })
    }

    pub fn config(&self) -> &MelConfig {
        &self.cfg
    }

    /// The mel filterbank, `(n_fft / 2 + 1, n_mels)` f32.
    pub fn filterbank(&self, device: &Device) -> Result<Tensor> {
        let fb: Vec<f32> = self.filterbank.iter().map(|&v| v as f32).collect();
        Tensor::from_vec(fb, (self.cfg.n_fft / 2 + 1, self.cfg.n_mels), device)
    }

    /// Mel frames for `samples` samples at the target rate: `1 + samples / hop`.
    pub fn num_frames(&self, samples: usize) -> usize {
        1 + samples / self.cfg.hop_length
    }

    /// `log(clamp(mel, 1e-5))` of one channel already at the target rate, row-major `(frames, n_mels)`.
    pub fn log_mel(&self, samples: &[f32]) -> Result<Vec<f32>> {
        let n_fft = self.cfg.n_fft;
        let pad = n_fft / 2;
        if samples.len() <= pad {
            candle_core::bail!(
                "mel front-end: {} samples is too short for a centred {n_fft}-point STFT (need more than {pad})",
                samples.len()
            );
        }
        let len = samples.len() as isize;
        // Reflect padding (no edge repeat), as torch.stft(center=True, pad_mode="reflect").
        let reflect = |i: isize| -> f64 {
            let j = if i < 0 {
                -i
            } else if i >= len {
                2 * (len - 1) - i
            } else {
                i
            };
            samples[j as usize] as f64
        };
        let n_mels = self.cfg.n_mels;
        let n_freqs = n_fft / 2 + 1;
        let frames = self.num_frames(samples.len());
        let mut input = self.fft.make_input_vec();
        let mut spectrum = self.fft.make_output_vec();
        let mut magnitude = vec![0.0f64; n_freqs];
        let mut out = Vec::with_capacity(frames * n_mels);
        for t in 0..frames {
            let start = (t * self.cfg.hop_length) as isize - pad as isize;
            for (k, x) in input.iter_mut().enumerate() {
                *x = reflect(start + k as isize) * self.window[k];
            }
            self.fft
                .process(&mut input, &mut spectrum)
                .map_err(|e| candle_core::Error::Msg(format!("mel front-end FFT: {e}")))?;
            for (m, c) in magnitude.iter_mut().zip(spectrum.iter()) {
                *m = c.re.hypot(c.im);
            }
            for m in 0..n_mels {
                let mel: f64 = (0..n_freqs)
                    .map(|k| magnitude[k] * self.filterbank[k * n_mels + m])
                    .sum();
                out.push(mel.max(1e-5).ln() as f32);
            }
        }
        Ok(out)
    }

    /// Resamples a `(B, C, S)` waveform from `sample_rate` to the target rate (identity when equal).
    pub fn resample(&self, waveform: &Tensor, sample_rate: usize) -> Result<Tensor> {
        if sample_rate == self.cfg.sample_rate {
            return Ok(waveform.clone());
        }
        let (b, c, _) = waveform.dims3()?;
        let resampler = SincResampler::new(sample_rate, self.cfg.sample_rate)?;
        let rows = waveform
            .to_dtype(DType::F32)?
            .flatten_to(1)?
            .to_vec2::<f32>()?;
        let out: Vec<f32> = rows.iter().flat_map(|r| resampler.process(r)).collect();
        let s = out.len() / (b * c).max(1);
        Tensor::from_vec(out, (b, c, s), waveform.device())?.to_dtype(waveform.dtype())
    }

    /// ltx-core `AudioProcessor.waveform_to_mel`: `(B, C, S)` at `sample_rate` -> log-mel
    /// `(B, channels, 1 + S'/hop, n_mels)` with `S'` the resampled length. A mono input is
    /// duplicated to the expected channel count.
    pub fn waveform_to_mel(&self, waveform: &Tensor, sample_rate: usize) -> Result<Tensor> {
        let (b, c, _) = waveform.dims3()?;
        let waveform = match (c, self.cfg.channels) {
            (c, want) if c == want => waveform.clone(),
            (1, want) => waveform.repeat((1, want, 1))?,
            (c, want) => candle_core::bail!(
                "mel front-end: expected {want} audio channels (or mono), got {c}"
            ),
        };
        let waveform = self.resample(&waveform, sample_rate)?;
        let rows = waveform
            .to_dtype(DType::F32)?
            .flatten_to(1)?
            .to_vec2::<f32>()?;
        let mut out = Vec::new();
        for row in &rows {
            out.extend(self.log_mel(row)?);
        }
        let frames = self.num_frames(rows.first().map_or(0, |r| r.len()));
        let channels = self.cfg.channels;
        Tensor::from_vec(
            out,
            (b, channels, frames, self.cfg.n_mels),
            waveform.device(),
        )?
        .to_dtype(waveform.dtype())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resampler_lengths_follow_torchaudio() {
        let r = SincResampler::new(24000, 16000).unwrap();
        assert_eq!((r.orig, r.new, r.width), (3, 2, 10));
        assert_eq!(r.output_len(16800), 11200);
        assert_eq!(r.process(&vec![0.0; 16801]).len(), 11201);
        let r = SincResampler::new(44100, 16000).unwrap();
        assert_eq!((r.orig, r.new), (441, 160));
        assert_eq!(r.process(&vec![0.5; 4410]).len(), 1600);
    }

    #[test]
    fn kernel_size_is_bounded() {
        for rate in [
            8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000, 88200, 96000, 176400,
            192000,
        ] {
            assert!(SincResampler::supports(rate, 16000), "{rate}");
            assert!(SincResampler::supports(rate, 24000), "{rate}");
        }
        // gcd 1 with 16 kHz: a 16000 x 44135 kernel (5.6 GB of f64) is refused before allocating.
        assert!(!SincResampler::supports(44101, 16000));
        let e = SincResampler::new(44101, 16000).unwrap_err().to_string();
        assert!(e.contains("44101 Hz -> 16000 Hz"), "{e}");
        assert!(!SincResampler::supports(0, 16000));
    }

    #[test]
    fn resampling_keeps_a_constant_signal_away_from_the_edges() {
        let r = SincResampler::new(48000, 16000).unwrap();
        let out = r.process(&vec![1.0; 4800]);
        // The kernel sums to ~rolloff-limited unity gain at DC.
        for v in &out[100..1500] {
            assert!((v - 1.0).abs() < 2e-2, "{v}");
        }
    }

    #[test]
    fn slaney_scale_round_trips() {
        for hz in [0.0, 500.0, 1000.0, 4321.0, 8000.0] {
            assert!((mel_to_hz_slaney(hz_to_mel_slaney(hz)) - hz).abs() < 1e-9);
        }
    }

    #[test]
    fn short_input_is_an_error() {
        let p = AudioProcessor::new(MelConfig::ltx2_19b()).unwrap();
        assert!(p.log_mel(&[0.0; 512]).is_err());
        assert_eq!(p.log_mel(&[0.0; 513]).unwrap().len(), 4 * 64);
    }
}
