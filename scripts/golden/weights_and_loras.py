"""Tiny model weights (make_golden's machinery, or the vendored seed-0 files) and tiny LoRAs in the official layout.

Weights: make_golden.Generator.make_weights() writes model.safetensors (bf16), upsampler.safetensors and the tiny Gemma
folder exactly as ``make_golden.py --slim --seed S`` (2.0) / ``--model 2.3 --seed S`` do; the FP8 file is quantized
from the same values with make_golden's calibration (its connector and transformer golden inputs, drawn from the same
random stream), so seed 0 reproduces the vendored ``testdata/golden/weights`` / ``testdata/golden-2.3/weights``
tensor for tensor (safetensors headers differ only in key order). The shared set does not copy them: ``weights.json``
names the vendored folder and the SHA-256 of every file, and the goldens are computed from those very files.

LoRAs: ltx-core 1.0.0 fuses ``<module>.lora_A.weight`` (rank, in) / ``<module>.lora_B.weight`` (out, rank) onto
``<module>.weight`` after ``LTXV_LORA_COMFY_RENAMING_MAP`` strips ``diffusion_model.`` from the LoRA keys: delta =
(B * strength) @ A computed in the LoRA file's dtype, summed over the stack, added to the weight (loader/fuse_loras.py).
``.alpha`` entries are loaded and ignored (no alpha / rank scaling).
"""

from __future__ import annotations

import hashlib
import json
import math
import shutil
import zlib
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file

import make_golden as mg

VENDORED = {"2.0": "testdata/golden/weights", "2.3": "testdata/golden-2.3/weights"}
WEIGHT_FILES = ("model.safetensors", "model_fp8.safetensors", "upsampler.safetensors")


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def build_weights(layout: str, seed: int, shapes: str, out: Path) -> None:
    """Write weights/{model,model_fp8,upsampler}.safetensors + weights/gemma/ under ``out`` with make_golden's code.
    ``shapes`` selects make_golden's shape set for the FP8 calibration inputs (shared for seed 0, other otherwise)."""
    gen = mg.Generator(seed, shapes, out, with_f64=False, model=layout, slim=(layout == "2.0"))
    gen.make_weights()
    # make_golden's input stream: golden_connector draws the fake Gemma states, golden_transformer its inputs;
    # calibrate_input_absmax() runs the transformer golden inputs through the model (golden_fp8)
    gen.connector_inputs()
    gen.tr_inputs = gen.transformer_inputs()
    fp8 = mg.make_fp8_tensors(gen.tensors, gen.calibrate_input_absmax())
    if layout == "2.3":
        fp8 = {k: v for k, v in fp8.items() if k.startswith("model.diffusion_model.")}
    meta = {"config": json.dumps(gen.config), "model_version": mg.MODELS[layout]["fp8_version"]}
    save_file(fp8, str(out / "weights" / "model_fp8.safetensors"), metadata=meta)


def _files(weights_dir: Path) -> list[Path]:
    return sorted(p for p in weights_dir.rglob("*") if p.is_file())


def platform_dependent_bound(key: str, ref: torch.Tensor) -> tuple[float, str] | None:
    """Tensors whose last bits depend on the BLAS build / thread count, and that no golden reads:
    * ``vocoder.mel_stft.stft_fn.inverse_basis`` (2.3): np.linalg.pinv in make_golden.vocoder_fixed_buffers; the
      pseudo-inverse STFT basis is a checkpoint buffer no forward pass uses;
    * ``*.input_scale`` (FP8 file): make_golden's calibration = max |activation| of a float32 transformer run, whose
      summation order follows the thread count; only the TensorRT-LLM activation quantization reads it (the goldens
      here evaluate FP8Linear weight-only)."""
    if key == "vocoder.mel_stft.stft_fn.inverse_basis":
        return 1e-12, "pinv rounding; unused by any forward pass"
    if key.endswith(".input_scale"):
        return 1e-5 * float(ref.abs().max()), "calibration max|x| in another summation order; unused by the goldens"
    return None


def compare_tensors(a: Path, b: Path) -> tuple[bool, list[str]]:
    """(identical apart from platform-dependent keys within their bound, notes on those keys)."""
    notes = []
    with safe_open(str(a), "pt") as fa, safe_open(str(b), "pt") as fb:
        if sorted(fa.keys()) != sorted(fb.keys()) or (fa.metadata() or {}) != (fb.metadata() or {}):
            return False, notes
        for k in fa.keys():
            x, y = fa.get_tensor(k), fb.get_tensor(k)
            if x.dtype != y.dtype or x.shape != y.shape:
                return False, notes
            if torch.equal(x.reshape(-1).view(torch.uint8), y.reshape(-1).view(torch.uint8)):
                continue
            diff = float((x.double() - y.double()).abs().max())
            bound = platform_dependent_bound(k, y)
            if bound is None or diff > bound[0]:
                return False, notes
            notes.append(f"{k} differs by {diff:.1e} ({bound[1]})")
    return True, notes


def verify_against_vendored(built: Path, vendored: Path) -> dict:
    """Every file of the rebuilt weights folder must match the vendored one: tensors (bitwise) and metadata for
    safetensors files, bytes for the others. Returns the comparison report for weights.json."""
    rel = lambda p, root: str(p.relative_to(root))  # noqa: E731
    b_files, v_files = {rel(p, built): p for p in _files(built)}, {rel(p, vendored): p for p in _files(vendored)}
    if sorted(b_files) != sorted(v_files):
        raise SystemExit(f"weights differ in file list: {sorted(set(b_files) ^ set(v_files))}")
    report = {}
    for name, p in sorted(b_files.items()):
        q = v_files[name]
        if p.suffix == ".safetensors":
            ok, notes = compare_tensors(p, q)
            how = "identical tensors (bitwise) and metadata" + "".join(f"; {n}" for n in notes)
        else:
            ok, how = p.read_bytes() == q.read_bytes(), "byte-identical"
        if not ok:
            raise SystemExit(f"rebuilt weights/{name} differs from the vendored {q}: refusing to write the set")
        report[name] = how
    return report


def canonical_header(path: Path) -> None:
    """Rewrite a safetensors header with sorted JSON keys (the writer orders the metadata entries at random), so that
    the same tensors give the same bytes and SHA-256 on every run. Data offsets are unchanged."""
    raw = path.read_bytes()
    n = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8 : 8 + n])
    text = json.dumps(header, sort_keys=True, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    path.write_bytes(len(text).to_bytes(8, "little") + text + raw[8 + n :])


def weights_entry(weights_dir: Path, location: str, path: str, verified: dict | None) -> dict:
    files = {str(p.relative_to(weights_dir)): {"sha256": sha256(p), "bytes": p.stat().st_size} for p in _files(weights_dir)}
    e = {"location": location, "path": path, "files": files}
    if verified is not None:
        e["rebuilt_and_compared"] = verified
    return e


def prepare_weights(layout: str, seed: int, shapes: str, set_dir: Path, repo_root: Path, work: Path) -> tuple[Path, dict]:
    """Returns (weights folder the goldens are computed from, its weights.json entry)."""
    mg_shapes = "shared" if shapes == "shared" else "other"
    tmp = work / f"build-{layout}"
    build_weights(layout, seed, mg_shapes, tmp)
    if seed == 0 and shapes == "shared":
        vendored = repo_root / VENDORED[layout]
        report = verify_against_vendored(tmp / "weights", vendored)
        return vendored, weights_entry(vendored, "repo", VENDORED[layout], report)
    dst = set_dir / f"weights-{layout}"
    if dst.exists():
        shutil.rmtree(dst)
    shutil.copytree(tmp / "weights", dst)
    for p in dst.rglob("*.safetensors"):
        canonical_header(p)
    return dst, weights_entry(dst, "set", f"weights-{layout}", None)


# =============================================================================
# LoRAs
# =============================================================================

_ATTN = ("to_q", "to_k", "to_v", "to_out.0")


def _block_targets(name: str, layout: str) -> list[str]:
    """Module paths (inside each transformer block) a LoRA adapts."""
    if name == "a":  # a "style" LoRA: video + audio + cross-modal attention, both FFs
        t = [f"attn1.{m}" for m in _ATTN] + ["attn2.to_q", "attn2.to_v", "ff.net.0.proj", "ff.net.2",
                                            "audio_attn1.to_q", "audio_attn1.to_out.0", "audio_ff.net.2",
                                            "audio_to_video_attn.to_q", "audio_to_video_attn.to_k", "video_to_audio_attn.to_v"]
        if layout == "2.3":
            t += ["attn1.to_gate_logits", "attn2.to_gate_logits", "audio_to_video_attn.to_gate_logits"]
        return t
    if name == "b":  # overlaps a on three modules (stacked deltas add up)
        t = ["attn1.to_q", "attn1.to_out.0", "ff.net.2", "audio_attn2.to_k"]
        return t + (["video_to_audio_attn.to_gate_logits"] if layout == "2.3" else [])
    if name == "distilled":  # every Linear of every block
        t = []
        for a in ("attn1", "attn2", "audio_attn1", "audio_attn2", "audio_to_video_attn", "video_to_audio_attn"):
            t += [f"{a}.{m}" for m in _ATTN] + ([f"{a}.to_gate_logits"] if layout == "2.3" else [])
        return t + ["ff.net.0.proj", "ff.net.2", "audio_ff.net.0.proj", "audio_ff.net.2"]
    if name == "ic":  # IC-LoRA: video self / text attention and FF
        t = [f"attn1.{m}" for m in _ATTN] + [f"attn2.{m}" for m in _ATTN] + ["ff.net.0.proj", "ff.net.2"]
        return t + (["attn1.to_gate_logits"] if layout == "2.3" else [])
    raise KeyError(name)


def _top_targets(name: str, layout: str) -> list[str]:
    if name == "a" and layout == "2.3":  # the 2.3 prompt AdaLN (cross-attention AdaLN of the text K/V)
        return ["prompt_adaln_single.linear", "audio_prompt_adaln_single.linear"]
    if name == "b":  # top-level layers (outside the FP8-quantized blocks)
        return ["proj_out", "audio_proj_out", "patchify_proj"]
    return []


LORA_SPECS = {
    # name: (rank, scale of B relative to the weight, stored dtype, metadata, with alpha entries)
    "a": (4, 0.3, torch.bfloat16, {}, False),
    "b": (2, 0.4, torch.float32, {}, True),
    "distilled": (4, 0.25, torch.bfloat16, {}, False),
    "ic": (4, 0.3, torch.bfloat16, {"reference_downscale_factor": "2"}, False),
}


def lora_file_name(layout: str, name: str) -> str:
    return f"loras/{layout}-{name}.safetensors"


def build_lora(name: str, layout: str, seed: int, base: dict[str, tuple[int, ...]]) -> dict[str, torch.Tensor]:
    """LoRA tensors for the tiny transformer whose (module -> weight shape) map is ``base``."""
    rank, scale, dtype, _meta, alpha = LORA_SPECS[name]
    n_blocks = 1 + max(int(k.split(".")[1]) for k in base if k.startswith("transformer_blocks."))
    modules = [f"transformer_blocks.{i}.{m}" for i in range(n_blocks) for m in _block_targets(name, layout)]
    modules += _top_targets(name, layout)
    out = {}
    for mod in modules:
        d_out, d_in = base[mod]
        g = torch.Generator().manual_seed(zlib.crc32(f"{seed}:lora:{layout}:{name}:{mod}".encode()) & 0x7FFFFFFF)
        a = torch.randn(rank, d_in, generator=g) / math.sqrt(d_in)
        b = torch.randn(d_out, rank, generator=g) * (scale / math.sqrt(rank))
        out[f"diffusion_model.{mod}.lora_A.weight"] = a.to(dtype).contiguous()
        out[f"diffusion_model.{mod}.lora_B.weight"] = b.to(dtype).contiguous()
        if alpha:  # ltx-core ignores it; 2 * rank so that an alpha / rank scaling would show
            out[f"diffusion_model.{mod}.alpha"] = torch.tensor(2.0 * rank, dtype=torch.float32)
    return dict(sorted(out.items()))


def linear_shapes(config: dict) -> dict[str, tuple[int, ...]]:
    from ltx_core.model.transformer import LTXModelConfigurator

    with torch.device("meta"):
        m = LTXModelConfigurator.from_config(config)
    return {n: tuple(mod.weight.shape) for n, mod in m.named_modules() if isinstance(mod, torch.nn.Linear)}


def write_loras(layout: str, seed: int, config: dict, set_dir: Path) -> dict[str, dict]:
    """Writes loras/<layout>-<name>.safetensors; returns {name: weights.json entry}."""
    (set_dir / "loras").mkdir(parents=True, exist_ok=True)
    shapes = linear_shapes(config)
    entries = {}
    for name, (rank, _s, dtype, meta, alpha) in LORA_SPECS.items():
        tensors = build_lora(name, layout, seed, shapes)
        path = set_dir / lora_file_name(layout, name)
        save_file(tensors, str(path), metadata=dict(meta) or None)
        modules = sorted({k[len("diffusion_model."):-len(".lora_A.weight")] for k in tensors if k.endswith(".lora_A.weight")})
        entries[name] = {"path": lora_file_name(layout, name), "sha256": sha256(path), "bytes": path.stat().st_size,
                         "rank": rank, "dtype": str(dtype).replace("torch.", ""), "metadata": meta,
                         "alpha_entries": alpha, "modules": modules}
    return entries
