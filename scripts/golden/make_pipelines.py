#!/usr/bin/env python3
"""Golden generator for the official ltx-pipelines 1.0.0 pipelines on tiny models, both checkpoint layouts.

Goldens per layout (``<out>/2.0/``, ``<out>/2.3/``): lora_fusion (one LoRA, a stack of two, an FP8 base), the dev
two-stage pipeline (TI2VidTwoStagesPipeline with a user LoRA and the distilled LoRA), IC-LoRA (ICLoraPipeline, plus a
conditioning-attention-strength variant), keyframe interpolation, retake (video / audio / both) and audio-to-video
two-stage. The pipeline classes are the unmodified PyPI ltx-pipelines / ltx-core 1.0.0 ones, called as their main()
does, on CPU in float32 (goldens) and float64 (tolerances); see runtime_patches.py for the few dtype / device patches.

Usage (see README.md here):
    make.sh --seed 0 --shapes shared --out testdata/golden-pipelines
    make.sh --seed 1 --shapes holdout --out /tmp/golden-pipelines-holdout
"""

from __future__ import annotations

import os

os.environ.setdefault("TQDM_DISABLE", "1")  # ltx-pipelines' loops use tqdm

import argparse
import json
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

import make_golden as mg  # noqa: E402
import runtime_patches  # noqa: E402
import weights_and_loras as wl  # noqa: E402
from readme_text import write_readme  # noqa: E402
from scenario_lora_fusion import LoraFusion  # noqa: E402
from scenarios_e2e import Scenarios  # noqa: E402
from shape_sets import SHAPE_SETS  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Layout:
    """Everything the goldens of one checkpoint layout need."""

    name: str  # "2.0" (LTX-2 19B layout) or "2.3" (LTX-2.3 22B layout)
    config: dict
    weights: Path  # folder holding model.safetensors, model_fp8.safetensors, upsampler.safetensors, gemma/
    loras: dict[str, Path]
    seed: int
    shapes: dict
    writer: mg.GoldenWriter
    work: Path  # scratch space (media files, float64 LoRA copies)
    with_f64: bool


def generate_layout(name: str, args, work: Path, weights_json: dict) -> dict:
    t0 = time.time()
    config = mg.MODELS[name]["config"]()
    weights, entry = wl.prepare_weights(name, args.seed, args.shapes, args.out, REPO_ROOT, work)
    lora_entries = wl.write_loras(name, args.seed, config, args.out)
    weights_json["weights"][name] = entry
    weights_json["loras"][name] = lora_entries
    lay_dir = args.out / name
    lay_dir.mkdir(parents=True, exist_ok=True)
    lay = Layout(name, config, weights, {n: args.out / e["path"] for n, e in lora_entries.items()}, args.seed,
                 SHAPE_SETS[args.shapes], mg.GoldenWriter(lay_dir), work, not args.no_f64)
    print(f"[{name}] weights + loras: {time.time() - t0:.1f}s", flush=True)
    t1 = time.time()
    LoraFusion(lay).run()
    print(f"[{name}] lora_fusion: {time.time() - t1:.1f}s", flush=True)
    Scenarios(lay).generate(lay.writer, lay.with_f64, lambda msg: print(f"[{name}] {msg}", flush=True))
    lay.writer.manifest["generator"] = {
        "script": "scripts/golden/make_pipelines.py", "seed": args.seed, "shapes": args.shapes, "layout": name,
        "torch": torch.__version__, "ltx_core": "1.0.0", "ltx_pipelines": "1.0.0",
        "weights": "../weights.json -> weights." + name, "f64_reference": lay.with_f64,
    }
    (lay_dir / "manifest.json").write_text(json.dumps(lay.writer.manifest, separators=(",", ":")) + "\n")
    (lay_dir / "tolerances.json").write_text(json.dumps(lay.writer.tolerances, indent=2) + "\n")
    print(f"[{name}] done: {time.time() - t0:.1f}s", flush=True)
    return {"manifest": lay.writer.manifest, "tolerances": lay.writer.tolerances}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--shapes", choices=sorted(SHAPE_SETS), default="shared")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--model", choices=("2.0", "2.3", "both"), default="both")
    ap.add_argument("--no-f64", action="store_true", help="skip the float64 reference runs (no tolerances.json entries)")
    ap.add_argument("--threads", type=int, default=1,
                    help="torch CPU threads (default 1: the tiny GEMMs gain nothing from more, and on a shared machine "
                    "extra threads make it several times slower)")
    args = ap.parse_args()
    args.out = args.out.resolve()
    t0 = time.time()
    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    runtime_patches.install()
    for stale in ("2.0", "2.3", "loras", "weights-2.0", "weights-2.3"):
        if (args.out / stale).exists():
            shutil.rmtree(args.out / stale)
    args.out.mkdir(parents=True, exist_ok=True)
    layouts = ("2.0", "2.3") if args.model == "both" else (args.model,)
    weights_json = {"seed": args.seed, "shapes": args.shapes, "weights": {}, "loras": {}}
    results = {}
    with tempfile.TemporaryDirectory(prefix="golden-pipelines-") as tmp:
        for name in layouts:
            results[name] = generate_layout(name, args, Path(tmp), weights_json)
    (args.out / "weights.json").write_text(json.dumps(weights_json, indent=2) + "\n")
    write_readme(args.out, args, weights_json, results, SHAPE_SETS[args.shapes])
    for p in args.out.rglob("*"):
        if p.is_file():
            p.chmod(0o644)
    total = sum(p.stat().st_size for p in args.out.rglob("*") if p.is_file())
    print(f"[golden-pipelines] done in {time.time() - t0:.1f}s, {total / 1e6:.2f} MB in {args.out}", flush=True)


if __name__ == "__main__":
    main()
