"""Pass-through wrappers that record what an unmodified pipeline ``__call__`` computes.

The pipelines call the ltx-core / ltx-pipelines helpers through their own module namespace (``denoise_audio_video``,
``euler_denoising_loop``, ``upsample_video``, ``vae_decode_audio``, ...). ``Tap.install(module)`` swaps those names
for wrappers that call the original and keep a copy of inputs / outputs; numerics are untouched. The Gaussian noiser is
swapped for make_golden's ReplayNoiser, which records the draws (float32 run) or replays them (float64 run).
"""

from __future__ import annotations

import contextlib

import torch

import make_golden as mg
from runtime_patches import module_globals


class NoiseTape:
    """Factory for the pipelines' ``GaussianNoiser(generator=...)``: records the draws of the seeded generator, or
    replays given draws (cast to the run dtype) so that the float64 reference sees the identical noise."""

    def __init__(self, replay: list[torch.Tensor] | None = None, dtype: torch.dtype = torch.float32):
        self.replay = replay
        self.dtype = dtype
        self.noisers: list[mg.ReplayNoiser] = []

    def __call__(self, generator: torch.Generator):
        if self.replay is None:
            n = mg.ReplayNoiser(generator=generator)
        else:
            n = mg.ReplayNoiser(noises=[x.to(self.dtype) for x in self.replay])
        self.noisers.append(n)
        return n

    @property
    def recorded(self) -> list[torch.Tensor]:
        assert len(self.noisers) == 1, "one GaussianNoiser per pipeline call"
        return self.noisers[0].recorded


class Tap:
    """Recorded tensors of one pipeline call, keyed with the golden's names."""

    def __init__(self) -> None:
        self.t: dict[str, torch.Tensor] = {}
        self.stage = 0  # euler loops seen so far (stage 1, stage 2)
        self.denoise_calls = 0
        self.video_frames: list[torch.Tensor] = []

    def put(self, key: str, value: torch.Tensor | None) -> None:
        if value is None:
            return
        assert key not in self.t, f"recorded twice: {key}"
        self.t[key] = value.detach().clone()

    # ------------------------------------------------------------------ wrappers
    def encode_prompts(self, orig):
        def wrapped(prompts, model_ledger, **kw):
            res = orig(prompts, model_ledger, **kw)
            names = ("", "neg_") if len(res) == 2 else ("",)
            for prefix, r in zip(names, res, strict=True):
                self.put(f"in.{prefix}video_context", r.video_encoding)
                self.put(f"in.{prefix}audio_context", r.audio_encoding)
            return res

        return wrapped

    def euler_denoising_loop(self, orig):
        def wrapped(sigmas, video_state, audio_state, stepper, denoise_fn):
            self.stage += 1
            s = f"dbg.stage{self.stage}"
            self.put(f"in.sigmas.stage{self.stage}", sigmas)
            for m, st in (("video", video_state), ("audio", audio_state)):
                self.put(f"{s}.{m}.positions", st.positions)
                self.put(f"{s}.{m}.denoise_mask", st.denoise_mask)
                self.put(f"{s}.{m}.clean_latent", st.clean_latent)
                self.put(f"{s}.{m}.latent_in", st.latent)  # after noising: the first transformer input
                self.put(f"{s}.{m}.attention_mask", st.attention_mask)

            def recording_fn(vs, as_, sig, step_index):
                dv, da = denoise_fn(vs, as_, sig, step_index)
                if step_index == 0:  # size budget: the guided prediction of the first step only
                    self.put(f"{s}.step0.video_denoised", dv)
                    self.put(f"{s}.step0.audio_denoised", da)
                return dv, da

            return orig(sigmas=sigmas, video_state=video_state, audio_state=audio_state, stepper=stepper,
                        denoise_fn=recording_fn)

        return wrapped

    def denoise_stage(self, orig, video_only: bool):
        def wrapped(*a, **kw):
            res = orig(*a, **kw)
            self.denoise_calls += 1
            k = f"out.stage{self.denoise_calls}"
            if video_only:
                self.put(f"{k}.video_latent", res.latent)
            else:
                self.put(f"{k}.video_latent", res[0].latent)
                self.put(f"{k}.audio_latent", res[1].latent)
            return res

        return wrapped

    def upsample_video(self, orig):
        def wrapped(*a, **kw):
            res = orig(*a, **kw)
            self.put("out.upscaled_video_latent", res)
            return res

        return wrapped

    def vae_decode_video(self, orig):
        def wrapped(latent, video_decoder, tiling_config=None, generator=None):
            self.put("out.video_latent", latent)
            for chunk in orig(latent, video_decoder, tiling_config, generator):
                self.video_frames.append(chunk.clone())
                yield chunk

        return wrapped

    def vae_decode_audio(self, orig):
        def wrapped(latent, audio_decoder, vocoder, *a, **kw):
            self.put("out.audio_latent", latent)
            res = orig(latent, audio_decoder, vocoder, *a, **kw)
            self.put("out.waveform", res.waveform)
            return res

        return wrapped

    def passthrough(self, orig, key: str):
        """Record the (tensor) result of a helper under ``key``."""

        def wrapped(*a, **kw):
            res = orig(*a, **kw)
            self.put(key, res)
            return res

        return wrapped

    # ------------------------------------------------------------------ install
    @contextlib.contextmanager
    def install(self, module, noise: NoiseTape, extra: dict | None = None):
        names = {"GaussianNoiser": noise}
        wrappers = {
            "encode_prompts": self.encode_prompts,
            "euler_denoising_loop": self.euler_denoising_loop,
            "upsample_video": self.upsample_video,
            "vae_decode_video": self.vae_decode_video,
            "vae_decode_audio": self.vae_decode_audio,
        }
        for name, wrap in wrappers.items():
            if hasattr(module, name):
                names[name] = wrap(getattr(module, name))
        if hasattr(module, "denoise_audio_video"):
            names["denoise_audio_video"] = self.denoise_stage(module.denoise_audio_video, video_only=False)
        if hasattr(module, "denoise_video_only"):
            names["denoise_video_only"] = self.denoise_stage(module.denoise_video_only, video_only=True)
        for name, key in (extra or {}).items():
            names[name] = self.passthrough(getattr(module, name), key)
        with module_globals(module, **names):
            yield self

    def finish(self) -> dict[str, torch.Tensor]:
        """Drop the last stage's ``out.stageN.*`` when it is exactly the decoded latent (it is stored as
        ``out.video_latent`` / ``out.audio_latent``), and add the decoded frames."""
        n = self.denoise_calls
        for m in ("video", "audio"):
            k = f"out.stage{n}.{m}_latent"
            if k in self.t and f"out.{m}_latent" in self.t and torch.equal(self.t[k], self.t[f"out.{m}_latent"]):
                del self.t[k]
        if self.video_frames:
            self.t["out.video"] = torch.cat(self.video_frames, 0)
        return self.t
