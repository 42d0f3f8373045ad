"""End-to-end goldens: the unmodified ltx-pipelines 1.0.0 pipeline classes, constructed and called as their ``main()``
does (CPU, tiny models, replayed noise), once in float32 (the golden) and once in float64 (the tolerance reference).

Each scenario builds the pipeline object and its call arguments; ``run()`` executes ``pipeline(**kwargs)`` inside
``runtime_patches.pipelines_at(dtype)`` with the recording wrappers of ``recorder.Tap`` installed in the pipeline's
module, then stores inputs (``in.*``), results (``out.*``) and trajectory (``dbg.*``) of that call.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable

import numpy as np
import torch

import make_golden as mg
import media_inputs as media
from ltx_core.components.guiders import MultiModalGuiderParams
from ltx_core.loader import LTXV_LORA_COMFY_RENAMING_MAP, LoraPathStrengthAndSDOps
from ltx_pipelines.a2vid_two_stage import A2VidPipelineTwoStage
from ltx_pipelines.ic_lora import ICLoraPipeline
from ltx_pipelines.keyframe_interpolation import KeyframeInterpolationPipeline
from ltx_pipelines.retake import RetakePipeline
from ltx_pipelines.ti2vid_two_stages import TI2VidTwoStagesPipeline
from ltx_pipelines.utils.args import ImageConditioningInput
from ltx_pipelines.utils.constants import DEFAULT_NEGATIVE_PROMPT, LTX_2_3_PARAMS, detect_params
from recorder import NoiseTape, Tap
from runtime_patches import float64_reference, pipelines_at
import runtime_patches as rp

CPU = torch.device("cpu")
NOISE_ORDER_TWO_STAGE = ("stage1.video", "stage1.audio", "stage2.video", "stage2.audio")


def utf8(text: str) -> torch.Tensor:
    return torch.tensor(list(text.encode("utf-8")), dtype=torch.uint8)


def guider_params(ckpt: Path) -> tuple[MultiModalGuiderParams, MultiModalGuiderParams, dict]:
    """detect_params(checkpoint) (model_version '2.3*' -> LTX_2_3_PARAMS, else LTX_2_PARAMS), STG block b of the
    48-block model mapped to tiny block b - 28 (2.0: 29 -> 1, 2.3: 28 -> 0) as in make_golden."""
    p = detect_params(str(ckpt))
    v, a = (replace(g, stg_blocks=[b - mg.STG_BLOCK_OFFSET for b in g.stg_blocks])
            for g in (p.video_guider_params, p.audio_guider_params))
    desc = {"source": "ltx_pipelines.utils.constants.detect_params(checkpoint) -> "
            + ("LTX_2_3_PARAMS" if p is LTX_2_3_PARAMS else "LTX_2_PARAMS"),
            "video": {**v.__dict__}, "audio": {**a.__dict__},
            "stg_block_mapping": f"real block b -> tiny block b - {mg.STG_BLOCK_OFFSET}"}
    return v, a, desc


@dataclass
class Run:
    """One scenario: how to build the pipeline, its call arguments, and what to store."""

    name: str
    module: object
    build: Callable[[], object]
    kwargs: dict
    noise_names: tuple[str, ...]
    inputs: dict[str, torch.Tensor] = field(default_factory=dict)
    extra_taps: dict[str, str] = field(default_factory=dict)
    keep_pixels: bool = False
    info: dict = field(default_factory=dict)
    post: Callable[[dict, object], None] | None = None  # (tensors, returned audio) -> adds scenario outputs


def call(run: Run, dtype: torch.dtype, replay: list[torch.Tensor] | None) -> tuple[dict, list[torch.Tensor]]:
    tap, noise = Tap(), NoiseTape(replay=replay, dtype=dtype)
    with pipelines_at(dtype), tap.install(run.module, noise, run.extra_taps), torch.inference_mode():
        pipe = run.build()
        video, audio = pipe(**run.kwargs)
        for _ in video:  # decode_video is lazy: the recording wrapper keeps the frames
            pass
    t = tap.finish()
    if run.post is not None:
        run.post(t, audio)
    return t, noise.recorded if replay is None else replay


def produce(run: Run, with_f64: bool) -> tuple[dict, dict]:
    """(golden tensors, float64 results) of one scenario."""
    out32, noise = call(run, torch.float32, None)
    assert len(noise) == len(run.noise_names), (run.name, len(noise))
    t = dict(run.inputs)
    t.update({k: v for k, v in out32.items() if k.startswith("in.")})
    t.update({f"in.noise.{n}": x for n, x in zip(run.noise_names, noise, strict=True)})
    t.update({k: v for k, v in out32.items() if not k.startswith("in.")})
    if not run.keep_pixels:
        t.pop("out.video")
    out64 = {}
    if with_f64:
        with float64_reference():
            out64, _ = call(run, torch.float64, noise)
    return t, out64


def execute(run: Run, writer: mg.GoldenWriter, with_f64: bool) -> None:
    t, out64 = produce(run, with_f64)
    writer.write(run.name, t, run.info)
    for k in sorted(t):
        if k.startswith("out.") and k in out64:
            writer.tol(run.name, k, t[k], out64[k])


def execute_group(name: str, runs: dict[str, Run], writer: mg.GoldenWriter, with_f64: bool, info: dict,
                  extra: dict[str, torch.Tensor]) -> None:
    """Several calls of one pipeline that differ in a flag, stored in one golden: in.* must agree (stored once),
    out.* are stored per variant as out.<variant>.*, dbg.* once when identical and as dbg.<variant>.* otherwise."""
    results = {v: produce(r, with_f64) for v, r in runs.items()}
    t = dict(extra)
    keys = sorted({k for tv, _ in results.values() for k in tv})
    for k in keys:
        vals = {v: tv[k] for v, (tv, _) in results.items() if k in tv}
        same = len(vals) == len(runs) and all(torch.equal(x, next(iter(vals.values()))) for x in vals.values())
        if k.startswith("in."):
            assert same, f"{name}: input {k} differs between variants"
            t[k] = next(iter(vals.values()))
        elif k.startswith("dbg.") and same:
            t[k] = next(iter(vals.values()))
        else:
            head, rest = k.split(".", 1)
            for v, x in vals.items():
                t[f"{head}.{v}.{rest}"] = x
    writer.write(name, t, info)
    for v, (tv, out64) in results.items():
        for k in sorted(tv):
            if k.startswith("out.") and k in out64:
                writer.tol(name, f"out.{v}.{k[4:]}", tv[k], out64[k])


class Scenarios:
    """The e2e goldens of one layout (2.0 or 2.3)."""

    def __init__(self, lay):
        self.lay = lay
        self.sh = lay.shapes
        w = lay.weights
        self.ckpt, self.ups, self.gemma = str(w / "model.safetensors"), str(w / "upsampler.safetensors"), str(w / "gemma")
        self.synth = media.Synth(lay.seed)
        self.vg, self.ag, self.guidance = guider_params(w / "model.safetensors")
        self.media_dir = lay.work / f"media-{lay.name}"
        self.media_dir.mkdir(parents=True, exist_ok=True)

    def lora(self, name: str, strength: float) -> LoraPathStrengthAndSDOps:
        return LoraPathStrengthAndSDOps(str(self.lay.loras[name]), strength, LTXV_LORA_COMFY_RENAMING_MAP)

    def lora_desc(self, *pairs) -> list:
        return [[f"loras/{self.lay.name}-{n}.safetensors", s] for n, s in pairs]

    def seed_for(self, k: int) -> int:
        return 1000 * self.lay.seed + 17 * k + 5

    def shape_params(self, s: dict) -> dict:
        return {"frames": s["frames"], "height": s["height"], "width": s["width"], "fps": s["fps"]}

    # ------------------------------------------------------------------ dev two-stage
    def dev_two_stage(self) -> Run:
        s = self.sh["dev_two_stage"]
        user, dist = ("a", s["user_lora"]), ("distilled", s["distilled_lora"])
        kwargs = dict(prompt=s["prompt"], negative_prompt=DEFAULT_NEGATIVE_PROMPT, seed=self.seed_for(1), height=s["height"],
                      width=s["width"], num_frames=s["frames"], frame_rate=s["fps"], num_inference_steps=s["steps"],
                      video_guider_params=self.vg, audio_guider_params=self.ag, images=[], tiling_config=None,
                      enhance_prompt=False)
        build = lambda: TI2VidTwoStagesPipeline(  # noqa: E731
            checkpoint_path=self.ckpt, distilled_lora=[self.lora(*dist)], spatial_upsampler_path=self.ups,
            gemma_root=self.gemma, loras=[self.lora(*user)], device=CPU)
        params = {**self.shape_params(s), "seed": kwargs["seed"], "num_inference_steps": s["steps"], "guidance": self.guidance,
                  "loras_stage1": self.lora_desc(user), "loras_stage2": self.lora_desc(user, dist),
                  "prompt": s["prompt"], "negative_prompt": "DEFAULT_NEGATIVE_PROMPT"}
        info = {"produced_by": "ltx_pipelines.ti2vid_two_stages.TI2VidTwoStagesPipeline(checkpoint_path, distilled_lora=[distilled], "
                "spatial_upsampler_path, gemma_root, loras=[a]).__call__(prompt, negative_prompt, seed, height, width, num_frames, "
                "frame_rate, num_inference_steps, video/audio guider params, images=[], tiling_config=None)",
                "flow": "encode_prompts(prompt, negative) -> stage 1 at half size: LTX2Scheduler().execute(steps) sigmas, "
                "multi_modal_guider_factory_denoising_func (per step: positive, negative-context, STG and isolated-modality "
                "passes; CFG / STG / modality / rescale as in params.guidance), transformer = checkpoint + LoRA a -> "
                "upsample_video (x2) -> stage 2 at full size: STAGE_2_DISTILLED_SIGMA_VALUES, noise_scale 0.909375 on the "
                "upscaled video and the stage-1 audio, simple_denoising_func, transformer = checkpoint + LoRA a + distilled LoRA "
                "-> VideoDecoder (untiled) + audio decoder + vocoder.",
                "params": params}
        return Run("e2e_dev_two_stage", rp.ti2vid_two_stages_mod, build, kwargs, NOISE_ORDER_TWO_STAGE,
                   inputs={"in.prompt.utf8": utf8(s["prompt"]), "in.negative_prompt.utf8": utf8(DEFAULT_NEGATIVE_PROMPT)},
                   keep_pixels=s.get("pixels", False), info=info)

    # ------------------------------------------------------------------ IC-LoRA
    def ic_lora(self, attn: bool = False) -> Run:
        s = self.sh["ic_lora_attn" if attn else "ic_lora"]
        src = self.synth.video(s["control_frames"], *s["control_size"], phase=0.4)
        path = self.media_dir / ("control_attn.mov" if attn else "control.mov")
        media.write_mov(path, src, s["fps"])
        kwargs = dict(prompt=s["prompt"], seed=self.seed_for(3 if attn else 2), height=s["height"], width=s["width"],
                      num_frames=s["frames"], frame_rate=s["fps"], images=[], video_conditioning=[(str(path), s["control_strength"])],
                      enhance_prompt=False, tiling_config=None, conditioning_attention_strength=s["attention_strength"],
                      skip_stage_2=s["skip_stage_2"])
        build = lambda: ICLoraPipeline(distilled_checkpoint_path=self.ckpt, spatial_upsampler_path=self.ups,  # noqa: E731
                                       gemma_root=self.gemma, loras=[self.lora("ic", s["ic_lora"])], device=CPU)
        params = {**self.shape_params(s), "seed": kwargs["seed"], "loras_stage1": self.lora_desc(("ic", s["ic_lora"])),
                  "loras_stage2": [], "reference_downscale_factor": 2, "control_strength": s["control_strength"],
                  "conditioning_attention_strength": s["attention_strength"], "skip_stage_2": s["skip_stage_2"],
                  "control_video": {"frames": int(src.shape[0]), "height": int(src.shape[1]), "width": int(src.shape[2]),
                                    "fps": s["fps"], "frame_cap": s["frames"]}, "prompt": s["prompt"]}
        noise = ("stage1.video", "stage1.audio") if s["skip_stage_2"] else NOISE_ORDER_TWO_STAGE
        info = {"produced_by": "ltx_pipelines.ic_lora.ICLoraPipeline(distilled_checkpoint_path, spatial_upsampler_path, gemma_root, "
                "loras=[ic]).__call__(prompt, seed, height, width, num_frames, frame_rate, images=[], video_conditioning=[(control, "
                "strength)], conditioning_attention_strength, skip_stage_2)",
                "flow": "reference_downscale_factor read from the IC-LoRA's safetensors metadata (2) -> stage 1 at half size with "
                "the IC-LoRA fused: load_video_conditioning(control, height/2/2, width/2/2, frame_cap=num_frames) (decode, per frame "
                "resize_and_center_crop + normalize = in.control_video) -> VideoEncoder -> VideoConditionByReferenceLatent("
                "downscale_factor 2, strength): reference tokens appended after the generated ones with positions from their own "
                "latent grid, causal fix, time / fps, height and width x2; denoise_mask 1 - strength"
                + (", wrapped in ConditioningItemAttentionStrengthWrapper(attention_mask=strength): a (B, N+M, N+M) self-attention "
                   "mask, 1 within the generated and within the reference tokens, the strength between them, turned into an "
                   "additive log(mask) bias (0 -> finfo.min) by the transformer" if s["attention_strength"] < 1.0 else "")
                + "; DISTILLED_SIGMA_VALUES, simple_denoising_func"
                + (" -> skip_stage_2: decoded at half size" if s["skip_stage_2"] else
                   " -> upsample_video -> stage 2 WITHOUT any LoRA (stage_2_model_ledger has loras=[]) and without the reference, "
                   "STAGE_2_DISTILLED_SIGMA_VALUES, noise_scale 0.909375") + " -> decoders.",
                "params": params}
        return Run("e2e_ic_lora_attn" if attn else "e2e_ic_lora", rp.ic_lora_mod, build, kwargs, noise,
                   inputs={"in.prompt.utf8": utf8(s["prompt"]), "in.control_video_uint8": torch.from_numpy(src)},
                   # size budget: the normalized control video (what the VAE encoder consumes) in e2e_ic_lora only
                   extra_taps={} if attn else {"load_video_conditioning": "in.control_video"},
                   keep_pixels=s.get("pixels", False), info=info)

    # ------------------------------------------------------------------ keyframes
    def keyframes(self) -> Run:
        s = self.sh["keyframes"]
        images, inputs = [], {"in.prompt.utf8": utf8(s["prompt"]), "in.negative_prompt.utf8": utf8(DEFAULT_NEGATIVE_PROMPT)}
        for i, (frame, strength, size) in enumerate(s["keyframes"]):
            img = self.synth.image(*size, phase=1.1 * i)
            path = self.media_dir / f"keyframe{i}.png"
            media.write_png(path, img)
            images.append(ImageConditioningInput(str(path), frame, strength, crf=0))
            inputs[f"in.keyframe{i}.image"] = torch.from_numpy(img)
        dist = ("distilled", s["distilled_lora"])
        kwargs = dict(prompt=s["prompt"], negative_prompt=DEFAULT_NEGATIVE_PROMPT, seed=self.seed_for(4), height=s["height"],
                      width=s["width"], num_frames=s["frames"], frame_rate=s["fps"], num_inference_steps=s["steps"],
                      video_guider_params=self.vg, audio_guider_params=self.ag, images=images, tiling_config=None,
                      enhance_prompt=False)
        build = lambda: KeyframeInterpolationPipeline(  # noqa: E731
            checkpoint_path=self.ckpt, distilled_lora=[self.lora(*dist)], spatial_upsampler_path=self.ups,
            gemma_root=self.gemma, loras=[], device=CPU)
        params = {**self.shape_params(s), "seed": kwargs["seed"], "num_inference_steps": s["steps"], "guidance": self.guidance,
                  "keyframes": [{"image": f"in.keyframe{i}.image", "frame_idx": f, "strength": st, "crf": 0}
                                for i, (f, st, _) in enumerate(s["keyframes"])],
                  "loras_stage1": [], "loras_stage2": self.lora_desc(dist), "prompt": s["prompt"],
                  "negative_prompt": "DEFAULT_NEGATIVE_PROMPT"}
        info = {"produced_by": "ltx_pipelines.keyframe_interpolation.KeyframeInterpolationPipeline(checkpoint_path, distilled_lora="
                "[distilled], spatial_upsampler_path, gemma_root, loras=[]).__call__(..., images=[ImageConditioningInput(png, "
                "frame_idx, strength, crf=0), ...])",
                "flow": "As e2e_dev_two_stage, but every image (frame 0 included) goes through "
                "image_conditionings_by_adding_guiding_latent at each stage's resolution: load_image_conditioning (PNG decode, "
                "crf=0 = no H.264 round trip, resize_and_center_crop, normalize) -> VideoEncoder -> VideoConditionByKeyframeIndex("
                "frame_idx, strength): one latent frame of tokens APPENDED per image, positions = its own grid (causal fix only "
                "when frame_idx == 0) shifted by frame_idx pixel frames, time / fps; denoise_mask 1 - strength; removed by "
                "clear_conditioning before decoding. Stage 1: checkpoint, guided; stage 2: + distilled LoRA, plain.",
                "params": params}
        return Run("e2e_keyframes", rp.keyframe_mod, build, kwargs, NOISE_ORDER_TWO_STAGE, inputs=inputs,
                   keep_pixels=s.get("pixels", False), info=info)

    # ------------------------------------------------------------------ retake
    def retake_clip(self) -> tuple[Path, dict, dict]:
        s = self.sh["retake"]
        frames = self.synth.video(s["frames"], s["height"], s["width"], phase=2.0)
        s16 = self.synth.waveform_s16(s["frames"] / s["fps"] + s["audio_extra_seconds"], s["audio_sr"], phase=0.3)
        path = self.media_dir / "clip.mov"
        media.write_mov(path, frames, s["fps"], s16, s["audio_sr"])
        t = {"in.clip.frames": torch.from_numpy(frames), "in.clip.waveform": torch.from_numpy(s16.astype(np.float32) / 32768.0)}
        params = {**self.shape_params(s), "sample_rate": s["audio_sr"], "samples": int(s16.shape[1])}
        return path, t, params

    RETAKE_VARIANTS = {"regen_video": (True, False), "regen_audio": (False, True), "regen_both": (True, True)}

    def retake_run(self, variant: str, clip: Path) -> Run:
        s = self.sh["retake"]
        regen_video, regen_audio = self.RETAKE_VARIANTS[variant]
        kwargs = dict(video_path=str(clip), prompt=s["prompt"], start_time=s["span"][0], end_time=s["span"][1],
                      seed=self.seed_for(5), negative_prompt=DEFAULT_NEGATIVE_PROMPT, num_inference_steps=s["steps"],
                      video_guider_params=self.vg, audio_guider_params=self.ag, regenerate_video=regen_video,
                      regenerate_audio=regen_audio, enhance_prompt=False, distilled=False, tiling_config=None)
        build = lambda: RetakePipeline(checkpoint_path=self.ckpt, gemma_root=self.gemma, loras=[], device=CPU)  # noqa: E731

        def post(t: dict, _audio) -> None:
            # the masks TemporalRegionMask built (token layout (1, T, 1)): an output of this golden
            t["out.video_denoise_mask"] = t.pop("dbg.stage1.video.denoise_mask")
            t["out.audio_denoise_mask"] = t.pop("dbg.stage1.audio.denoise_mask")

        return Run(f"e2e_retake[{variant}]", rp.retake_mod, build, kwargs, ("video", "audio"),
                   inputs={"in.prompt.utf8": utf8(s["prompt"]), "in.negative_prompt.utf8": utf8(DEFAULT_NEGATIVE_PROMPT)},
                   extra_taps={"_encode_video_for_retake": "dbg.clip_video_latent", "_encode_audio_for_retake": "dbg.clip_audio_latent"},
                   post=post)

    def retake(self) -> tuple[str, dict[str, Run], dict, dict]:
        """(golden name, variant runs, info, clip tensors): RetakePipeline with regenerate_video / regenerate_audio =
        (True, False), (False, True), (True, True) on one clip, same prompt and seed."""
        s = self.sh["retake"]
        clip, clip_t, clip_params = self.retake_clip()
        runs = {v: self.retake_run(v, clip) for v in self.RETAKE_VARIANTS}
        params = {**self.shape_params(s), "seed": self.seed_for(5), "num_inference_steps": s["steps"], "guidance": self.guidance,
                  "start_time": s["span"][0], "end_time": s["span"][1], "distilled": False,
                  "variants": {v: {"regenerate_video": rv, "regenerate_audio": ra} for v, (rv, ra) in self.RETAKE_VARIANTS.items()},
                  "clip": clip_params, "prompt": s["prompt"], "negative_prompt": "DEFAULT_NEGATIVE_PROMPT"}
        info = {"produced_by": "ltx_pipelines.retake.RetakePipeline(checkpoint_path, gemma_root, loras=[]).__call__(video_path=clip, "
                "prompt, start_time, end_time, seed, negative_prompt, num_inference_steps, video/audio guider params, "
                "regenerate_video, regenerate_audio, distilled=False), three times: the variants regen_video (True, False), "
                "regen_audio (False, True), regen_both (True, True); out.<variant>.* per call, inputs (same clip, prompts, seed, "
                "hence the same noise) once",
                "flow": "Clip in.clip.frames / in.clip.waveform (written as a QuickTime file, rawvideo rgb24 + pcm_s16le, read back "
                "by get_videostream_metadata (fps, frame count, size), load_video_conditioning (at the clip's own size: "
                "resize_and_center_crop is the identity; x / 127.5 - 1) and decode_audio_from_file (int16 / 32768)) -> VideoEncoder "
                "= initial video latent (dbg.clip_video_latent); waveform -> encode_audio (resampled to 16 kHz if needed, mel, "
                "AudioEncoder), trimmed / zero-padded to AudioLatentShape.from_video_pixel_shape frames (dbg.clip_audio_latent). "
                "TemporalRegionMask per modality: denoise_mask = 1 on tokens whose time span [t_start, t_end) overlaps [start_time, "
                "end_time) (t_end > start and t_start < end, float32 token times), 0 elsewhere (video: latent frame bounds through "
                "get_pixel_coords with the causal fix, / fps; audio: the patchifier's bounds in seconds). A modality that is not "
                "regenerated gets the region [0, 0): an all-zero mask, so it is kept exactly (the docstring of regenerate_video "
                "describes False as 'fully regenerate'; the code keeps it). Noise: latent = noise * mask + clean * (1 - mask). One "
                "guided stage (LTX2Scheduler sigmas, multi_modal_guider_denoising_func); post_process_latent keeps mask-0 tokens "
                "clean; then VideoDecoder (untiled) + audio decoder + vocoder at the clip's size. out.<variant>.*_denoise_mask = the "
                "masks (token layout (1, T, 1)).",
                "params": params}
        return "e2e_retake", runs, info, clip_t

    # ------------------------------------------------------------------ audio-to-video
    def a2v(self) -> Run:
        s = self.sh["a2v"]
        s16 = self.synth.waveform_s16(s["audio_seconds"], s["audio_sr"], phase=1.7)
        path = self.media_dir / "audio.wav"
        media.write_wav(path, s16, s["audio_sr"])
        max_duration = s["frames"] / s["fps"]  # the CLI default (--audio-max-duration unset)
        dist = ("distilled", s["distilled_lora"])
        kwargs = dict(prompt=s["prompt"], negative_prompt=DEFAULT_NEGATIVE_PROMPT, seed=self.seed_for(6), height=s["height"],
                      width=s["width"], num_frames=s["frames"], frame_rate=s["fps"], num_inference_steps=s["steps"],
                      video_guider_params=self.vg, images=[], audio_path=str(path), audio_start_time=s["start_time"],
                      audio_max_duration=max_duration, tiling_config=None, enhance_prompt=False)
        build = lambda: A2VidPipelineTwoStage(  # noqa: E731
            checkpoint_path=self.ckpt, distilled_lora=[self.lora(*dist)], spatial_upsampler_path=self.ups,
            gemma_root=self.gemma, loras=[], device=CPU)

        def post(t: dict, audio) -> None:
            t["out.waveform"] = audio.waveform.clone()  # the input audio segment itself (not VAE-decoded)

        params = {**self.shape_params(s), "seed": kwargs["seed"], "num_inference_steps": s["steps"],
                  "guidance": {"video": self.guidance["video"], "audio": "MultiModalGuiderParams() (no guidance)",
                               "source": self.guidance["source"], "stg_block_mapping": self.guidance["stg_block_mapping"]},
                  "audio_start_time": s["start_time"], "audio_max_duration": max_duration, "audio_sample_rate": s["audio_sr"],
                  "loras_stage1": [], "loras_stage2": self.lora_desc(dist), "prompt": s["prompt"],
                  "negative_prompt": "DEFAULT_NEGATIVE_PROMPT"}
        info = {"produced_by": "ltx_pipelines.a2vid_two_stage.A2VidPipelineTwoStage(checkpoint_path, distilled_lora=[distilled], "
                "spatial_upsampler_path, gemma_root, loras=[]).__call__(..., images=[], audio_path=wav, audio_start_time, "
                "audio_max_duration=num_frames / frame_rate)",
                "flow": "in.audio_file (16-bit PCM WAV bytes) -> decode_audio_from_file(start_time, max_duration): samples "
                "[round(start * sr), + round(max_duration * sr)) / 32768 = out.waveform (the pipeline returns this input segment, "
                "not a decoded one) -> encode_audio (resample to 16 kHz, mel, AudioEncoder) = dbg.encoded_audio_latent -> cropped "
                "to AudioLatentShape.from_duration(num_frames / frame_rate) frames. Stage 1 (half size): denoise_video_only: audio "
                "noised with scale 0 and denoise_mask 0 (stays the encoded audio), video guided by the video params (audio guider "
                "defaults: no extra passes for audio). upsample_video -> stage 2: denoise_video_only with the distilled LoRA, "
                "noise_scale 0.909375 on the video only, same audio latent -> VideoDecoder. No audio decoding.",
                "params": params}
        return Run("e2e_a2v_two_stage", rp.a2vid_mod, build, kwargs, NOISE_ORDER_TWO_STAGE,
                   inputs={"in.prompt.utf8": utf8(s["prompt"]), "in.negative_prompt.utf8": utf8(DEFAULT_NEGATIVE_PROMPT),
                           "in.audio_file": torch.frombuffer(bytearray(path.read_bytes()), dtype=torch.uint8)},
                   extra_taps={"vae_encode_audio": "dbg.encoded_audio_latent"}, keep_pixels=s.get("pixels", False), info=info,
                   post=post)

    # ------------------------------------------------------------------ all
    def generate(self, writer: mg.GoldenWriter, with_f64: bool, log) -> None:
        for make in (self.dev_two_stage, self.ic_lora, lambda: self.ic_lora(attn=True), self.keyframes, self.retake, self.a2v):
            t0 = time.time()
            item = make()
            if isinstance(item, Run):
                execute(item, writer, with_f64)
                name = item.name
            else:
                name, runs, info, extra = item
                execute_group(name, runs, writer, with_f64, info, extra)
            log(f"{name}: {time.time() - t0:.1f}s")
