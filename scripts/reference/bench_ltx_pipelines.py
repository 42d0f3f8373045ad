#!/usr/bin/env python3
"""Time the official ltx-pipelines DistilledPipeline end to end (prompt -> MP4 bytes), warm, per stage.

    bench_ltx_pipelines.py --size tiny|19b --frames 49 --height 320 --width 512 [--warmup 1 --iters 3]
                           [--weights DIR | (default) random in-memory weights] [--device cuda] [--out-mp4 PATH]

What runs: `ltx_pipelines.distilled.DistilledPipeline.__call__` unchanged (Gemma encode + connectors, stage 1 at
H/2 x W/2 with 8 steps, x2 latent upsample, stage 2 with 3 steps, video VAE decode with the CLI's
TilingConfig.default(), audio VAE + vocoder), then `ltx_pipelines.utils.media_io.encode_video` (libx264 + AAC
mux, as the CLI's main()) into an MP4 whose bytes are read back. The pipeline hard-codes bfloat16.

Harness changes (no numerics change):
* models resident: the ModelLedger caches each built model, so the per-call rebuilds (disk reads) of the official
  ledger are not timed; all models are built before the timed runs;
* per-stage timings: the functions DistilledPipeline.__call__ calls (encode_prompts, denoise_audio_video x2,
  upsample_video, decode_video, decode_audio) are wrapped with synchronised timers; decode_video's chunk generator is
  drained inside its timer so VAE decode and mux are separated;
* --size tiny: the golden generator's patches (ltx_ref_common.install_patches); without CUDA, torch.cuda.synchronize
  is a no-op;
* weights: random, generated in memory on the device by ltx-core's own builders (no files; see
  ltx_ref_common.RandomStateDictLoader), or read from a make_random_checkpoint.py folder with --weights.

Prints one JSON line (prefixed by nothing) with per-iteration and median timings and peak GPU memory.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import ltx_ref_common as common

DEFAULT_PROMPT = (
    "A golden retriever runs along a sunny beach at sunset, waves crashing behind it, "
    "its fur blowing in the wind while seagulls call overhead."
)
MODEL_METHODS = (
    "text_encoder",
    "gemma_embeddings_processor",
    "video_encoder",
    "transformer",
    "spatial_upsampler",
    "video_decoder",
    "audio_decoder",
    "vocoder",
)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def make_resident_ledger(args, cfg: common.SizeConfig, device: torch.device, dtype: torch.dtype):
    """A ModelLedger (official builders, SDOps and module ops) whose models are built once and then kept."""
    from ltx_core.loader.single_gpu_model_builder import SingleGPUModelBuilder as Builder
    from ltx_core.quantization import QuantizationPolicy
    from ltx_core.text_encoders.gemma import (
        GEMMA_LLM_KEY_OPS,
        GEMMA_MODEL_OPS,
        GemmaTextEncoderConfigurator,
        module_ops_from_gemma_root,
    )
    from ltx_pipelines.utils.model_ledger import ModelLedger

    quantization = {"none": None, "fp8-cast": QuantizationPolicy.fp8_cast()}[args.quantization]

    class ResidentLedger(ModelLedger):
        def __init__(self, loader, gemma_assets, **kw):
            self._loader = loader
            self._gemma_assets = gemma_assets
            self._cache: dict = {}
            super().__init__(**kw)

        def build_model_builders(self) -> None:
            super().build_model_builders()
            if self._loader is None:
                return
            for name in (
                "transformer_builder",
                "vae_decoder_builder",
                "vae_encoder_builder",
                "audio_encoder_builder",
                "audio_decoder_builder",
                "vocoder_builder",
                "embeddings_processor_builder",
                "upsampler_builder",
            ):
                setattr(self, name, common.replace_loader(getattr(self, name), self._loader))
            # Same construction as ModelLedger's, minus the weight-file discovery in the Gemma folder.
            self.text_encoder_builder = Builder(
                model_path=(common.RANDOM_GEMMA,),
                model_class_configurator=GemmaTextEncoderConfigurator,
                model_sd_ops=GEMMA_LLM_KEY_OPS,
                registry=self.registry,
                module_ops=(GEMMA_MODEL_OPS, *module_ops_from_gemma_root(self._gemma_assets)),
                model_loader=self._loader,
            )

    def cached(name):
        def method(self):
            if name not in self._cache:
                self._cache[name] = getattr(ModelLedger, name)(self)
            return self._cache[name]

        return method

    for name in MODEL_METHODS + ("audio_encoder",):
        setattr(ResidentLedger, name, cached(name))

    if args.weights:
        weights = Path(args.weights)
        loader, gemma_root = None, str(weights / "gemma")
        paths = {
            "checkpoint_path": str(weights / "model.safetensors"),
            "spatial_upsampler_path": str(weights / "upsampler.safetensors"),
            "gemma_root_path": gemma_root,
        }
        gemma_assets = gemma_root
    else:
        loader = common.random_loader(cfg, dtype=dtype, seed=args.weights_seed)
        gemma_assets = tempfile.mkdtemp(prefix="ltx2-ref-gemma-")
        common.write_gemma_assets(cfg, Path(gemma_assets))
        paths = {
            "checkpoint_path": common.RANDOM_CHECKPOINT,
            "spatial_upsampler_path": common.RANDOM_UPSAMPLER,
            "gemma_root_path": None,  # the text encoder builder is set up by ResidentLedger
        }
    return ResidentLedger(
        loader,
        gemma_assets,
        dtype=dtype,
        device=device,
        loras=(),
        quantization=quantization,
        **paths,
    )


class StageTimer:
    """Wraps the module-level functions DistilledPipeline.__call__ uses with synchronised timers."""

    def __init__(self, device: torch.device):
        self.device = device
        self.times: dict[str, float] = {}
        self._denoise_calls = 0
        self.after_text_encode = None  # called (untimed) after encode_prompts returns

    def reset(self) -> None:
        self.times = {}
        self._denoise_calls = 0

    def _record(self, name: str, fn, *a, **kw):
        sync(self.device)
        t0 = time.perf_counter()
        out = fn(*a, **kw)
        sync(self.device)
        self.times[name] = self.times.get(name, 0.0) + time.perf_counter() - t0
        return out

    def install(self) -> None:
        from ltx_pipelines import distilled

        orig = {
            n: getattr(distilled, n)
            for n in ("encode_prompts", "denoise_audio_video", "upsample_video", "vae_decode_video", "vae_decode_audio")
        }

        def encode_prompts(*a, **kw):
            out = self._record("text_encode", orig["encode_prompts"], *a, **kw)
            if self.after_text_encode is not None:
                self.after_text_encode()
            return out

        def denoise_audio_video(*a, **kw):
            self._denoise_calls += 1
            return self._record(f"stage{self._denoise_calls}", orig["denoise_audio_video"], *a, **kw)

        def upsample_video(*a, **kw):
            return self._record("upsample", orig["upsample_video"], *a, **kw)

        def vae_decode_video(*a, **kw):
            # The official generator decodes lazily while encode_video consumes it; drain it here.
            chunks = self._record("video_decode", lambda: list(orig["vae_decode_video"](*a, **kw)))
            return iter(chunks)

        def vae_decode_audio(*a, **kw):
            return self._record("audio_decode", orig["vae_decode_audio"], *a, **kw)

        distilled.encode_prompts = encode_prompts
        distilled.denoise_audio_video = denoise_audio_video
        distilled.upsample_video = upsample_video
        distilled.vae_decode_video = vae_decode_video
        distilled.vae_decode_audio = vae_decode_audio


def run_once(
    pipeline, args, timer: StageTimer, device: torch.device, tiling_config, out_dir: Path
) -> tuple[dict, bytes]:
    from ltx_core.model.video_vae import get_video_chunks_number
    from ltx_pipelines.utils.media_io import encode_video

    timer.reset()
    pipeline.model_ledger.text_encoder()  # rebuilt here, untimed, when --evict-text-encoder dropped it
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    mp4_path = out_dir / "out.mp4"
    sync(device)
    t0 = time.perf_counter()
    with torch.inference_mode():
        video, audio = pipeline(
            prompt=args.prompt,
            seed=args.seed,
            height=args.height,
            width=args.width,
            num_frames=args.frames,
            frame_rate=args.fps,
            images=[],
            tiling_config=tiling_config,
            enhance_prompt=False,
        )
        t_mux = time.perf_counter()
        encode_video(
            video=video,
            fps=args.fps,
            audio=audio,
            output_path=str(mp4_path),
            video_chunks_number=get_video_chunks_number(args.frames, tiling_config),
        )
        mp4 = mp4_path.read_bytes()
    t_end = time.perf_counter()
    total = t_end - t0
    stages = dict(timer.times)
    stages["mux"] = t_end - t_mux
    stages["other"] = total - sum(stages.values())
    result = {
        "total_s": total,
        "stages_s": stages,
        "mp4_bytes": len(mp4),
    }
    if device.type == "cuda":
        result["peak_mem_bytes"] = torch.cuda.max_memory_allocated(device)
    return result, mp4


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", choices=["tiny", "19b"], required=True)
    ap.add_argument("--pipeline", choices=["distilled"], default="distilled")
    ap.add_argument("--frames", type=int, default=49)
    ap.add_argument("--height", type=int, default=320)
    ap.add_argument("--width", type=int, default=512)
    ap.add_argument("--fps", type=float, default=24.0)
    ap.add_argument("--seed", type=int, default=10)
    ap.add_argument("--prompt", default=DEFAULT_PROMPT)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--iters", type=int, default=3)
    ap.add_argument("--weights", help="folder from make_random_checkpoint.py (default: random in-memory weights)")
    ap.add_argument(
        "--weights-seed", type=int, default=0, help="seed of the random weights (make_random_checkpoint's --seed)"
    )
    ap.add_argument("--quantization", choices=["none", "fp8-cast"], default="none")
    ap.add_argument(
        "--tiling", choices=["default", "none"], default="default", help="video decode tiling (CLI: default)"
    )
    ap.add_argument("--debug-layers", type=int, default=0, help="validation only: DiT and Gemma depth (0: real)")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch default)")
    ap.add_argument(
        "--evict-text-encoder",
        action="store_true",
        help="free Gemma after the prompt encode as the official pipeline does (rebuilt untimed before the next run);"
        " use when everything resident does not fit",
    )
    ap.add_argument("--out-mp4", help="also write the last MP4 here")
    args = ap.parse_args()

    device = torch.device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    if device.type != "cuda":
        # DistilledPipeline / cleanup_memory call torch.cuda.synchronize() unconditionally.
        torch.cuda.synchronize = lambda *a, **k: None
    if args.frames % 8 != 1:
        ap.error("--frames must be 8k+1")
    if args.height % 64 or args.width % 64:
        ap.error("the two-stage DistilledPipeline needs height and width multiples of 64 (assert_resolution)")

    cfg = common.SizeConfig(args.size)
    if args.debug_layers:
        cfg.with_debug_layers(args.debug_layers)
    common.install_patches(cfg)
    from ltx_core.model.video_vae import TilingConfig
    from ltx_pipelines.distilled import DistilledPipeline

    dtype = torch.bfloat16  # hard-coded by DistilledPipeline
    timer = StageTimer(device)
    timer.install()

    t0 = time.perf_counter()
    ledger = make_resident_ledger(args, cfg, device, dtype)
    pipeline = DistilledPipeline.__new__(DistilledPipeline)
    # DistilledPipeline.__init__ only builds the ledger and PipelineComponents; use ours.
    from ltx_pipelines.utils.types import PipelineComponents

    pipeline.device = device
    pipeline.dtype = dtype
    pipeline.model_ledger = ledger
    pipeline.pipeline_components = PipelineComponents(dtype=dtype, device=device)
    for name in MODEL_METHODS:
        getattr(ledger, name)()
    sync(device)
    build_s = time.perf_counter() - t0
    resident = torch.cuda.memory_allocated(device) if device.type == "cuda" else None

    if args.evict_text_encoder:

        def evict() -> None:
            ledger._cache.pop("text_encoder", None)
            import gc

            gc.collect()
            if device.type == "cuda":
                torch.cuda.empty_cache()

        timer.after_text_encode = evict
        evict()
    tiling = TilingConfig.default() if args.tiling == "default" else None
    runs = []
    mp4 = b""
    with tempfile.TemporaryDirectory(prefix="ltx2-ref-", dir="/dev/shm" if os.path.isdir("/dev/shm") else None) as d:
        for i in range(args.warmup + args.iters):
            result, mp4 = run_once(pipeline, args, timer, device, tiling, Path(d))
            result["warmup"] = i < args.warmup
            runs.append(result)
            print(
                f"# run {i} ({'warmup' if result['warmup'] else 'timed'}): {result['total_s']:.3f} s", file=sys.stderr
            )
    if args.out_mp4:
        Path(args.out_mp4).write_bytes(mp4)

    timed = [r for r in runs if not r["warmup"]] or runs
    stage_names = list(timed[0]["stages_s"])
    import ltx_core
    import transformers

    out = {
        "harness": "ltx-pipelines DistilledPipeline",
        "size": args.size,
        "debug_layers": args.debug_layers or None,
        "weights": args.weights or "random-in-memory",
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu",
        "dtype": str(dtype).replace("torch.", ""),
        "threads": torch.get_num_threads() if device.type == "cpu" else None,
        "quantization": args.quantization,
        "frames": args.frames,
        "height": args.height,
        "width": args.width,
        "fps": args.fps,
        "stage1_hw": [args.height // 2, args.width // 2],
        "tiling": args.tiling,
        "evict_text_encoder": args.evict_text_encoder,
        "warmup": args.warmup,
        "iters": args.iters,
        "build_s": round(build_s, 3),
        "total_s": [round(r["total_s"], 4) for r in timed],
        "warmup_total_s": [round(r["total_s"], 4) for r in runs if r["warmup"]],
        "median_total_s": round(statistics.median(r["total_s"] for r in timed), 4),
        "min_total_s": round(min(r["total_s"] for r in timed), 4),
        "median_stages_s": {n: round(statistics.median(r["stages_s"][n] for r in timed), 4) for n in stage_names},
        "mp4_bytes": timed[-1]["mp4_bytes"],
        "resident_mem_bytes": resident,
        "peak_mem_bytes": max((r.get("peak_mem_bytes", 0) for r in timed), default=None)
        if device.type == "cuda"
        else None,
        "versions": {
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "ltx_core": getattr(ltx_core, "__version__", "1.0.0"),
            "python": platform.python_version(),
        },
    }
    print(json.dumps(out))


if __name__ == "__main__":
    main()
