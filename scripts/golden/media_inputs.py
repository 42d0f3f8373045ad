"""Synthetic media the pipelines read from disk, written as real files so the official loaders run unpatched.

Images: PNG (lossless; PIL decode = the stored uint8 array). Control video and retake clip: QuickTime .mov with
``rawvideo`` rgb24 frames and ``pcm_s16le`` audio (lossless, so ``decode_video_from_file`` / ``decode_audio_from_file``
return exactly the stored frames / samples, and ``get_videostream_metadata`` reads fps and frame count from it). Audio
for A2V: a 16-bit PCM WAV. Every decoded value is asserted equal to what the goldens store as ``in.*``.
"""

from __future__ import annotations

import math
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import torch
from PIL import Image

from ltx_pipelines.utils.media_io import decode_audio_from_file, decode_video_from_file, get_videostream_metadata


class Synth:
    """Deterministic smooth test media (a little noise so that nothing is trivially compressible)."""

    def __init__(self, seed: int):
        self.seed = seed
        self.g = torch.Generator().manual_seed(4000 + seed)

    def image(self, height: int, width: int, phase: float) -> np.ndarray:
        y = torch.linspace(0, 1, height)[:, None]
        x = torch.linspace(0, 1, width)[None, :]
        ch = [127.5 + 110 * torch.sin(2 * math.pi * (x * (c + 1.3) + y * (1.7 - 0.4 * c)) + phase + c) for c in range(3)]
        img = torch.stack(ch, -1) + 6 * torch.randn(height, width, 3, generator=self.g)
        return img.round().clamp(0, 255).to(torch.uint8).numpy()

    def video(self, frames: int, height: int, width: int, phase: float) -> np.ndarray:
        """(F, H, W, 3) uint8: a pattern drifting over time."""
        return np.stack([self.image(height, width, phase + 0.35 * f) for f in range(frames)], 0)

    def waveform_s16(self, seconds: float, sr: int, phase: float) -> np.ndarray:
        """(2, N) int16 stereo: two chirps + noise."""
        n = int(round(seconds * sr))
        t = torch.arange(n, dtype=torch.float64) / sr
        left = 0.35 * torch.sin(2 * math.pi * (180.0 + 150 * t) * t + phase) + 0.15 * torch.sin(2 * math.pi * 900.0 * t)
        right = 0.3 * torch.sin(2 * math.pi * 260.0 * t + 0.5 + phase) + 0.1 * torch.sin(2 * math.pi * (1400.0 - 300 * t) * t)
        wav = torch.stack([left, right], 0) + 0.02 * torch.randn(2, n, generator=self.g, dtype=torch.float64)
        return (wav.clamp(-1, 1) * 32767).round().to(torch.int16).numpy()


def write_png(path: Path, img: np.ndarray) -> None:
    Image.fromarray(img).save(path)
    back = np.array(Image.open(path))[..., :3]
    assert np.array_equal(back, img), path


def _add_audio(container, sr: int):
    stream = container.add_stream("pcm_s16le", rate=sr)
    stream.layout = "stereo"
    return stream


def _encode_audio(container, stream, s16: np.ndarray, sr: int) -> None:
    frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(s16.T).reshape(1, -1), format="s16", layout="stereo")
    frame.sample_rate = sr
    frame.pts = 0
    for p in stream.encode(frame):
        container.mux(p)
    for p in stream.encode():
        container.mux(p)


def write_mov(path: Path, frames: np.ndarray, fps: float, s16: np.ndarray | None = None, sr: int | None = None) -> None:
    """rawvideo rgb24 (+ pcm_s16le) in a QuickTime container; checked by decoding it with ltx-pipelines' readers."""
    c = av.open(str(path), "w", format="mov")
    vs = c.add_stream("rawvideo", rate=Fraction(fps).limit_denominator(1000))
    vs.width, vs.height, vs.pix_fmt = frames.shape[2], frames.shape[1], "rgb24"
    aus = _add_audio(c, sr) if s16 is not None else None
    for f in frames:
        for p in vs.encode(av.VideoFrame.from_ndarray(f, format="rgb24")):
            c.mux(p)
    for p in vs.encode():
        c.mux(p)
    if aus is not None:
        _encode_audio(c, aus, s16, sr)
    c.close()
    meta = get_videostream_metadata(str(path))
    assert meta == (float(fps), frames.shape[0], frames.shape[2], frames.shape[1]), meta
    back = torch.cat(list(decode_video_from_file(str(path), frames.shape[0], "cpu"))).numpy()
    assert np.array_equal(back, frames), path
    if s16 is not None:
        audio = decode_audio_from_file(str(path), "cpu")
        assert audio.sampling_rate == sr and np.array_equal(audio.waveform[0].numpy(), s16 / 32768.0), path


def write_wav(path: Path, s16: np.ndarray, sr: int) -> None:
    c = av.open(str(path), "w", format="wav")
    _encode_audio(c, _add_audio(c, sr), s16, sr)
    c.close()
    audio = decode_audio_from_file(str(path), "cpu")
    assert audio.sampling_rate == sr and np.array_equal(audio.waveform[0].numpy(), s16 / 32768.0), path
