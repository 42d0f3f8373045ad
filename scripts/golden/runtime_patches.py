"""Run-time patches that let the unmodified ltx-pipelines 1.0.0 pipeline classes run on CPU in float32 / float64.

Each pipeline's ``__init__`` / ``__call__`` hard-codes ``torch.bfloat16`` and calls ``torch.cuda.synchronize()``; the
ltx-core LoRA loader leaves the unfused weights in the checkpoint dtype. Nothing here changes a formula: every patch
either replaces a dtype constant, removes a device synchronisation, or casts bf16-valued parameters exactly to the run
dtype. The README of the generated set lists them ("What the generator patched").
"""

from __future__ import annotations

import contextlib
import types

import torch

import ltx_pipelines.a2vid_two_stage as a2vid_mod
import ltx_pipelines.ic_lora as ic_lora_mod
import ltx_pipelines.keyframe_interpolation as keyframe_mod
import ltx_pipelines.retake as retake_mod
import ltx_pipelines.ti2vid_two_stages as ti2vid_two_stages_mod
import ltx_pipelines.utils.helpers as pipeline_helpers
import ltx_pipelines.utils.types as pipeline_types
from ltx_pipelines.utils.model_ledger import ModelLedger

import make_golden as mg

PIPELINE_MODULES = (ti2vid_two_stages_mod, ic_lora_mod, keyframe_mod, retake_mod, a2vid_mod)
FP8_DTYPES = (torch.float8_e4m3fn, torch.float8_e5m2)


class _TorchAtDtype(types.ModuleType):
    """Stand-in for the ``torch`` module inside one pipeline module: ``torch.bfloat16`` (the pipelines' hard-coded
    compute dtype, read in ``__init__`` for the ledgers and in ``__call__`` for latents and conditioning images) is
    the run dtype; every other attribute is the real torch's."""

    def __init__(self, dtype: torch.dtype):
        super().__init__("torch")
        self._run_dtype = dtype

    def __getattr__(self, name: str):
        if name == "bfloat16":
            return self._run_dtype
        return getattr(torch, name)


def _no_cleanup() -> None:
    """helpers.cleanup_memory = gc.collect() + CUDA cache release between stages: GPU memory housekeeping only (and
    ~0.5 s of gc per call on CPU)."""


@contextlib.contextmanager
def pipelines_at(dtype: torch.dtype):
    """Inside: the pipeline modules see ``torch.bfloat16 == dtype`` and skip cleanup_memory()."""
    saved = [(m, m.torch, m.cleanup_memory) for m in (*PIPELINE_MODULES, pipeline_helpers)]
    for m in PIPELINE_MODULES:
        m.torch = _TorchAtDtype(dtype)
    for m in (*PIPELINE_MODULES, pipeline_helpers):  # helpers: encode_prompts calls it too
        m.cleanup_memory = _no_cleanup
    try:
        yield
    finally:
        for m, t, c in saved:
            m.torch, m.cleanup_memory = t, c


def _cast_to_run_dtype(model: torch.nn.Module, dtype: torch.dtype) -> None:
    """ltx-core 1.0.0 ``apply_loras`` (default DummyRegistry: ``destination_sd`` = the checkpoint state dict) converts
    only the weights it fuses to the ledger dtype; the others keep the checkpoint dtype (bf16) and are assigned as is.
    On the GPU the ledger dtype is bf16 too, so the model is uniform; at float32 / float64 it would mix dtypes. Cast
    every non-FP8 floating parameter / buffer to the run dtype (exact: bf16 values are representable). Also gives the
    tensors fresh aligned storage (see make_golden.realign)."""
    for mod in model.modules():
        for name, p in list(mod.named_parameters(recurse=False)):
            if p.is_floating_point() and p.dtype not in FP8_DTYPES:
                mod._parameters[name] = torch.nn.Parameter(p.detach().to(dtype).clone(), requires_grad=False)
        for name, b in list(mod.named_buffers(recurse=False)):
            if b is not None and b.is_floating_point() and b.dtype not in FP8_DTYPES:
                mod._buffers[name] = b.to(dtype).clone()


_ORIG_TRANSFORMER = ModelLedger.transformer


def _transformer_at_ledger_dtype(self: ModelLedger):
    model = _ORIG_TRANSFORMER(self)
    _cast_to_run_dtype(model, self.dtype)
    return model


def install() -> None:
    """Global patches (idempotent): make_golden's tiny-model patches, no CUDA synchronisation, ledger dtype for
    LoRA-fused transformers, 8 video latent channels in PipelineComponents."""
    mg.patch_tiny_gemma()
    mg.patch_gemma_loader()
    mg.patch_audio_stats()
    mg.patch_fp8_ops()
    torch.cuda.synchronize = lambda *a, **k: None  # the pipelines synchronise after every stage; no GPU here
    ModelLedger.transformer = _transformer_at_ledger_dtype
    # PipelineComponents.__init__ reads this module global (128 in the real model) for the latent shapes
    pipeline_types.VIDEO_LATENT_CHANNELS = mg.VIDEO_LATENT_CHANNELS


@contextlib.contextmanager
def module_globals(module, **replacements):
    """Temporarily replace names in a module's namespace (recording wrappers, noiser replay)."""
    saved = {k: getattr(module, k) for k in replacements}
    for k, v in replacements.items():
        setattr(module, k, v)
    try:
        yield
    finally:
        for k, v in saved.items():
            setattr(module, k, v)


def _encode_audio_float64(orig):
    """retake casts the source waveform to the pipeline dtype before encode_audio, whose AudioProcessor keeps its mel
    filterbank in float32: float64 waveform @ float32 filterbank fails. For float64 waveforms (float64 reference only)
    hand encode_audio the same AudioProcessor in float64."""
    from ltx_core.model.audio_vae import AudioProcessor

    def wrapped(audio, audio_encoder, audio_processor=None):
        if audio_processor is None and audio.waveform.dtype == torch.float64:
            audio_processor = AudioProcessor(target_sample_rate=audio_encoder.sample_rate, mel_bins=audio_encoder.mel_bins,
                                             mel_hop_length=audio_encoder.mel_hop_length, n_fft=audio_encoder.n_fft).double()
        return orig(audio, audio_encoder, audio_processor)

    return wrapped


@contextlib.contextmanager
def float64_pipelines():
    """float64 reference runs: encode_audio with a float64 AudioProcessor where the pipeline hands it a float64 wave."""
    mods = [m for m in PIPELINE_MODULES if hasattr(m, "vae_encode_audio")]
    saved = [(m, m.vae_encode_audio) for m in mods]
    for m in mods:
        m.vae_encode_audio = _encode_audio_float64(m.vae_encode_audio)
    try:
        yield
    finally:
        for m, f in saved:
            m.vae_encode_audio = f


@contextlib.contextmanager
def float64_reference():
    """The float64 reference runs: make_golden's float64 scalar helpers and HF Gemma-3 RMSNorm / RoPE in float64."""
    with mg.float64_math(), mg.gemma_float64(), float64_pipelines():
        yield
