#!/usr/bin/env python3
"""Write a random-weight LTX-2 checkpoint in the official file layout.

    make_random_checkpoint.py --size tiny|19b --out DIR [--fp8] [--no-gemma-weights] [--device cuda]

DIR/model.safetensors      single-file checkpoint (keys of ltx-2-19b-distilled*.safetensors, `config` metadata)
DIR/upsampler.safetensors  spatial x2 latent upsampler (`config` metadata)
DIR/gemma/                 HF Gemma-3 folder: config.json, tokenizer + processor files, sharded weights + index

Key lists and shapes come from ltx-core's own constructors (ltx_ref_common.checkpoint_keys & co.); the 19B config
values are the real header's. dtypes: --size 19b writes BF16 (audio VAE + vocoder F32, as the real file; with
--fp8 the transformer-block Linear weights are float8_e4m3fn + 0-d F32 weight_scale / input_scale, the layout of
ltx-2-19b-distilled-fp8.safetensors); --size tiny writes F32. Tensors are generated one at a time on --device
(cuda when available) and streamed to disk, so host memory stays small.

Disk (19B): model.safetensors 43.5 GB bf16 / 27.3 GB with --fp8, upsampler 1.0 GB, gemma 24.4 GB.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import ltx_ref_common as common

_ST_DTYPES = {
    torch.float32: "F32",
    torch.bfloat16: "BF16",
    torch.float16: "F16",
    torch.float8_e4m3fn: "F8_E4M3",
}


def write_safetensors(path: Path, entries, metadata: dict | None, device: torch.device, seed: int) -> int:
    """Stream a safetensors file. `entries`: list of (key, shape, dtype, producer) where producer() returns the
    tensor (called in order, one at a time)."""
    header: dict = {}
    offset = 0
    for key, shape, dtype, _ in entries:
        nbytes = int(torch.Size(shape).numel()) * torch.empty((), dtype=dtype).element_size()
        header[key] = {"dtype": _ST_DTYPES[dtype], "shape": list(shape), "data_offsets": [offset, offset + nbytes]}
        offset += nbytes
    if metadata:
        header["__metadata__"] = metadata
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * ((8 - len(raw) % 8) % 8)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".partial")
    with open(tmp, "wb") as f:
        f.write(len(raw).to_bytes(8, "little"))
        f.write(raw)
        for key, shape, dtype, produce in entries:
            t = produce()
            assert tuple(t.shape) == tuple(shape) and t.dtype == dtype, (key, t.shape, t.dtype)
            f.write(t.contiguous().reshape(-1).view(torch.uint8).cpu().numpy().tobytes())
    tmp.rename(path)
    return offset


def _random(key, shape, dtype, device, seed):
    return lambda: common.random_tensor(key, shape, dtype, device, seed)


def checkpoint_entries(cfg: common.SizeConfig, fp8: bool, device: torch.device, seed: int):
    keys = common.checkpoint_keys(cfg)
    fp8_keys = common.fp8_quantized_keys(cfg) if fp8 else set()
    entries = []
    for key in sorted(keys):
        shape = keys[key]
        if key in fp8_keys:
            base = key[: -len(".weight")]
            cache: dict = {}

            def quantized(key=key, shape=shape, cache=cache):
                w = common.random_tensor(key, shape, torch.float32, device, seed)
                cache["q"], cache["scale"] = common.quantize_fp8(w)
                return cache["q"]

            entries.append((key, shape, torch.float8_e4m3fn, quantized))
            # weight_scale must follow its weight (it is produced by the same call).
            entries.append((base + ".weight_scale", (), torch.float32, lambda cache=cache: cache.pop("scale")))
            # Static activation scale for the scaled-MM path; a plausible constant (real file: ~1e-2).
            entries.append(
                (base + ".input_scale", (), torch.float32, lambda: torch.tensor(0.0157, dtype=torch.float32))
            )
        else:
            dtype = common.file_dtype(key, cfg.size, fp8_keys)
            if fp8 and dtype == torch.float32 and cfg.size == "tiny":
                dtype = torch.bfloat16  # the FP8 file stores everything else in BF16
            entries.append((key, shape, dtype, _random(key, shape, dtype, device, seed)))
    return entries


def write_gemma(cfg: common.SizeConfig, folder: Path, device: torch.device, seed: int, weights: bool) -> int:
    common.write_gemma_assets(cfg, folder)
    if not weights:
        return 0
    keys = common.gemma_keys(cfg)
    dtype = torch.float32 if cfg.size == "tiny" else torch.bfloat16
    elem = torch.empty((), dtype=dtype).element_size()
    shard_limit = 5 * 10**9
    # Language model first, then vision tower + projector (the HF folder's order).
    ordered = sorted(keys, key=lambda k: (not k.startswith("language_model."), k))
    shards: list[list[str]] = [[]]
    size = 0
    for k in ordered:
        nbytes = int(torch.Size(keys[k]).numel()) * elem
        if shards[-1] and size + nbytes > shard_limit:
            shards.append([])
            size = 0
        shards[-1].append(k)
        size += nbytes
    if len(shards) == 1 and any(not k.startswith("language_model.") for k in ordered):
        lm = [k for k in ordered if k.startswith("language_model.")]
        shards = [lm, [k for k in ordered if not k.startswith("language_model.")]]
    total = 0
    weight_map = {}
    for i, shard in enumerate(shards):
        name = f"model-{i + 1:05d}-of-{len(shards):05d}.safetensors"
        entries = [(k, keys[k], dtype, _random(k, keys[k], dtype, device, seed)) for k in shard]
        total += write_safetensors(folder / name, entries, {"format": "pt"}, device, seed)
        weight_map.update({k: name for k in shard})
    index = {"metadata": {"total_size": total}, "weight_map": weight_map}
    (folder / "model.safetensors.index.json").write_text(json.dumps(index, indent=2))
    return total


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", choices=["tiny", "19b"], required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--fp8", action="store_true", help="FP8 transformer-block Linears (distilled-fp8 layout)")
    ap.add_argument("--no-gemma-weights", action="store_true", help="gemma/ gets config + tokenizer files only")
    ap.add_argument("--skip", nargs="*", default=[], choices=["model", "upsampler", "gemma"])
    ap.add_argument("--debug-layers", type=int, default=0, help="validation only: DiT and Gemma depth (0: real)")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    device = torch.device(args.device)
    cfg = common.SizeConfig(args.size)
    if args.debug_layers:
        cfg.with_debug_layers(args.debug_layers)
    common.install_patches(cfg)
    report = {"size": args.size, "out": str(args.out), "fp8": args.fp8}
    t0 = time.perf_counter()
    if "model" not in args.skip:
        metadata = {"config": json.dumps(cfg.checkpoint_config), "model_version": cfg.model_version}
        entries = checkpoint_entries(cfg, args.fp8, device, args.seed)
        report["model_bytes"] = write_safetensors(args.out / "model.safetensors", entries, metadata, device, args.seed)
        report["model_tensors"] = len(entries)
    if "upsampler" not in args.skip:
        keys = common.upsampler_keys(cfg)
        dtype = torch.float32 if cfg.size == "tiny" else torch.bfloat16
        entries = [(k, keys[k], dtype, _random(k, keys[k], dtype, device, args.seed)) for k in sorted(keys)]
        metadata = {"config": json.dumps(cfg.upsampler_config)}
        report["upsampler_bytes"] = write_safetensors(
            args.out / "upsampler.safetensors", entries, metadata, device, args.seed
        )
    if "gemma" not in args.skip:
        report["gemma_bytes"] = write_gemma(cfg, args.out / "gemma", device, args.seed, not args.no_gemma_weights)
    report["seconds"] = round(time.perf_counter() - t0, 2)
    print(json.dumps(report))


if __name__ == "__main__":
    main()
