#!/usr/bin/env python3
"""Reference data for the Gemma-4 text-tower options the LTX-2.5 golden's tiny config leaves off, and for the
tokenizer rules of ltx-core 1.2.0 under other tokenizer_config.json flags.

The LTX-2.5 golden (testdata/golden-2.5) covers the configuration of the real text encoder (sliding + full layers,
proportional RoPE, GQA, layer scalars). transformers 5.14's Gemma-4 (`gemma4_unified`) also has K=V attention,
KV-shared layers, double-wide MLPs, all-bidirectional attention, other RoPE kinds, biases and class defaults; this
script runs each of them through the official code, as ltx-core's `LTXGemmaTextEncoder.encode` calls it
(`model.model(input_ids, attention_mask, output_hidden_states=True)`), and records the hidden states. Nothing is
re-implemented: the model is transformers' own, the tokenizer is ltx-core's `LTXGemmaTokenizer` around the
`PreTrainedTokenizerFast` that `gemma_assets.build_gemma_hf_tokenizer` builds.

Weights are deterministic random values rounded to bfloat16 and written as packed text-encoder files
(`gemma_config` metadata, `tokenizer_json` / `hf_asset__*` bytes), alternately in the Comfy-flat (`model.layers.*`)
and the HF (`model.language_model.*`) key layout. Float32 outputs; tolerances.json holds the float32-vs-float64
distance on the valid tokens, like the golden sets.

Usage (the LTX-2.5 golden venv: torch 2.7.1, transformers 5.14.1, ltx-core 1.2.0):
    python scripts/reference/make_gemma4_variants.py --tokenizer testdata/golden-2.5/weights/gemma4 \
        --out testdata/gemma4-variants
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import struct
import zlib
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "2")

import torch

if not hasattr(torch.compiler, "nested_compile_region"):  # ltx-core 1.2.0 imports it (torch >= 2.8 only)
    torch.compiler.nested_compile_region = lambda fn=None, **_kw: fn if fn is not None else (lambda f: f)

import transformers  # noqa: E402
from safetensors.torch import save  # noqa: E402

from ltx_core.text_encoders.gemma import gemma_assets  # noqa: E402
from ltx_core.text_encoders.gemma.tokenizer import LTXGemmaTokenizer, PaddingSide  # noqa: E402

TOP = {"image_token_id": 9, "audio_token_id": 10, "video_token_id": 13, "boi_token_id": 7, "eoi_token_id": 8,
       "boa_token_id": 11, "eoa_token_index": 12, "gemma_version": "gemma4-variants"}
S, F = "sliding_attention", "full_attention"
BASE = {
    "model_type": "gemma4_unified_text", "vocab_size": 64, "hidden_size": 16, "intermediate_size": 24,
    "num_hidden_layers": 4, "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 8,
    "global_head_dim": 16, "sliding_window": 4, "layer_types": [S, F, S, F],
    "rope_parameters": {F: {"rope_type": "proportional", "partial_rotary_factor": 0.25, "rope_theta": 1e6},
                        S: {"rope_type": "default", "rope_theta": 1e4}},
}
# name -> (text_config, comfy-flat keys?)
VARIANTS = {
    "kv_shared_double_wide": ({**BASE, "num_hidden_layers": 5, "layer_types": [S, F, S, S, F],
                               "num_kv_shared_layers": 2, "use_double_wide_mlp": True}, True),
    "k_eq_v_bias": ({**BASE, "attention_k_eq_v": True, "num_global_key_value_heads": 1, "attention_bias": True},
                    False),
    "bidirectional_all": ({**BASE, "use_bidirectional_attention": "all", "sliding_window": 6}, True),
    "linear_rope_gelu": ({**BASE, "global_head_dim": 8, "hidden_activation": "gelu",
                          "rope_parameters": {F: {"rope_type": "linear", "factor": 4.0, "rope_theta": 1e4},
                                              S: {"rope_type": "proportional", "partial_rotary_factor": 0.5,
                                                  "factor": 2.0, "rope_theta": 1e4}}}, False),
    # Only sizes: default layer pattern (5:1, last layer forced full), default RoPE, sliding window, bidirectionality.
    "class_defaults": ({"vocab_size": 64, "hidden_size": 16, "intermediate_size": 24, "num_hidden_layers": 7,
                        "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 8, "global_head_dim": 16},
                       True),
}
SEQ, PAD = 12, 4  # batch of two: prompt 0 unpadded (with an image placeholder id), prompt 1 left-padded by PAD

TOKENIZER_MAX = 12
TOKENIZER_PROMPTS = ["A red fox runs across a snowy field at dawn.", "<bos>The chef slices fresh tomatoes",
                     "", "  waves  ", "<image_soft_token> the dancer",
                     "The astronaut floats inside the space station while music plays in warm colors."]


def tokenizer_cases(base: dict) -> dict[str, dict]:
    no_pad = {k: v for k, v in base.items() if k != "pad_token"}
    return {"as_packed": base, "add_bos": {**base, "add_bos_token": True},
            "add_eos": {**base, "add_eos_token": True}, "bos_and_eos": {**base, "add_bos_token": True,
                                                                          "add_eos_token": True},
            "no_pad_token": no_pad, "truncate_left": {**base, "truncation_side": "left"}}


def init(key: str, shape: tuple[int, ...]) -> torch.Tensor:
    g = torch.Generator().manual_seed(zlib.crc32(key.encode()) & 0x7FFFFFFF)
    t = torch.empty(shape)
    leaf = key.rsplit(".", 1)[-1]
    if leaf == "layer_scalar":
        return t.uniform_(0.5, 1.5, generator=g)
    if leaf == "bias":
        return t.normal_(0.0, 0.05, generator=g)
    if len(shape) == 1:
        return t.normal_(1.0, 0.1, generator=g)
    return t.normal_(0.0, 1.0 / math.sqrt(shape[1]), generator=g)


_F64 = {"on": False}
_FLOAT, _TO = torch.Tensor.float, torch.Tensor.to


@contextlib.contextmanager
def float64_math():
    """transformers hard-codes float32 in the Gemma RMSNorm / RoPE (`.float()`); for the float64 reference those
    casts produce float64 instead."""
    def flt(self, *a, **kw):
        return _TO(self, torch.float64) if _F64["on"] else _FLOAT(self, *a, **kw)

    def to(self, *args, **kw):
        if _F64["on"]:
            args = tuple(torch.float64 if a is torch.float32 else a for a in args)
            if kw.get("dtype") is torch.float32:
                kw["dtype"] = torch.float64
        return _TO(self, *args, **kw)

    _F64["on"] = True
    torch.Tensor.float, torch.Tensor.to = flt, to
    try:
        yield
    finally:
        _F64["on"] = False
        torch.Tensor.float, torch.Tensor.to = _FLOAT, _TO


def save_sorted(tensors: dict[str, torch.Tensor], path: Path, metadata: dict[str, str]) -> None:
    raw = save({k: v.contiguous() for k, v in tensors.items()}, metadata=metadata)
    (n,) = struct.unpack("<Q", raw[:8])
    text = json.dumps(json.loads(raw[8:8 + n]), sort_keys=True, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    path.write_bytes(struct.pack("<Q", len(text)) + text + raw[8 + n:])


def as_bytes(data: bytes) -> torch.Tensor:
    return torch.tensor(list(data), dtype=torch.uint8)


def run(config: dict, state: dict[str, torch.Tensor], ids: torch.Tensor, mask: torch.Tensor, dtype) -> torch.Tensor:
    hf = transformers.CONFIG_MAPPING["gemma4_unified"].from_dict(dict(config))
    model = transformers.AutoModelForImageTextToText.from_config(hf)
    missing, unexpected = model.load_state_dict(state, strict=False)
    assert not unexpected and all(k.startswith("lm_head.") for k in missing), (missing, unexpected)
    model = model.to(dtype).eval()
    with torch.no_grad():
        out = model.model(input_ids=ids, attention_mask=mask, output_hidden_states=True)
    return torch.stack(out.hidden_states, 1)  # (B, L+1, T, D)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tokenizer", required=True, type=Path, help="a Gemma-4 HF folder (tokenizer files)")
    ap.add_argument("--out", required=True, type=Path)
    args = ap.parse_args()
    (args.out / "weights").mkdir(parents=True, exist_ok=True)
    assets = gemma_assets.GemmaAssets.from_root(args.tokenizer)
    tok_cfg = assets.sidecar_json("tokenizer_config.json")
    sidecars = {f"hf_asset__{n}": as_bytes(assets.sidecar_bytes(n))
                for n in ("tokenizer_config.json", "processor_config.json")}

    g = torch.Generator().manual_seed(1234)
    ids = torch.randint(14, 64, (2, SEQ), generator=g)
    ids[0, 0] = ids[1, PAD] = 2  # <bos>
    ids[0, 5] = TOP["image_token_id"]
    ids[1, :PAD] = 0
    mask = torch.ones(2, SEQ, dtype=torch.int64)
    mask[1, :PAD] = 0
    valid = mask.bool()[:, None, :, None]

    tensors: dict[str, torch.Tensor] = {"in.input_ids": ids, "in.attention_mask": mask,
                                        "in.tokenizer_json": as_bytes(assets.tokenizer_json)}
    tolerances: dict = {}
    info: dict = {"variants": {}, "tokenizer_cases": {}, "tokenizer_max_length": TOKENIZER_MAX,
                  "tokenizer_prompts": TOKENIZER_PROMPTS}
    for name, (text_config, comfy_flat) in VARIANTS.items():
        config = {"model_type": "gemma4_unified", "text_config": text_config, **TOP}
        hf = transformers.CONFIG_MAPPING["gemma4_unified"].from_dict(dict(config))
        shapes = {k: tuple(v.shape) for k, v in transformers.AutoModelForImageTextToText.from_config(hf)
                  .state_dict().items() if not k.startswith("lm_head.")}
        state = {k: init(f"{name}:{k}", s).to(torch.bfloat16).float() for k, s in sorted(shapes.items())}
        h32 = run(config, state, ids, mask, torch.float32)
        with float64_math():
            h64 = run(config, {k: v.double() for k, v in state.items()}, ids, mask, torch.float64)
        h32 = torch.where(valid, h32, torch.zeros(()))
        h64 = torch.where(valid, h64, torch.zeros((), dtype=torch.float64))
        key = f"out.{name}.hidden_states"
        tensors[key] = h32
        rel = ((h32.double() - h64).norm() / h64.norm()).item()
        tolerances[key] = {"rel_l2_f32_vs_f64": rel, "note": "valid tokens only (padded rows are zero)"}
        file_keys = {}
        for k, v in state.items():
            k = k.removeprefix("model.")  # HF module names -> checkpoint names below
            if comfy_flat:
                out = "model." + k.removeprefix("language_model.")
            else:
                out = "model." + k
            file_keys[out] = v.to(torch.bfloat16)
        packed = {**file_keys, "tokenizer_json": as_bytes(assets.tokenizer_json), **sidecars}
        save_sorted(packed, args.out / "weights" / f"{name}.safetensors",
                    {"format": "pt", "gemma_config": json.dumps(config, sort_keys=True)})
        info["variants"][name] = {"file": f"weights/{name}.safetensors", "comfy_flat": comfy_flat,
                                  "text_config": text_config}
        print(f"{name}: rel_l2 f32 vs f64 {rel:.3e}")

    for case, cfg in tokenizer_cases(tok_cfg).items():
        case_assets = gemma_assets.GemmaAssets(source=case, config_dict=assets.config_dict,
                                               tokenizer_json=assets.tokenizer_json,
                                               sidecars={"tokenizer_config.json": json.dumps(cfg).encode()},
                                               weight_paths=())
        tok = LTXGemmaTokenizer(gemma_assets.build_gemma_hf_tokenizer(case_assets, TOKENIZER_MAX), TOKENIZER_MAX,
                                padding_side=PaddingSide.LEFT)
        rows = [tok.tokenize_with_weights(p)["gemma"] for p in TOKENIZER_PROMPTS]
        tensors[f"out.tokenizer.{case}.input_ids"] = torch.tensor([[int(t) for t, _ in r] for r in rows])
        tensors[f"out.tokenizer.{case}.attention_mask"] = torch.tensor([[int(m) for _, m in r] for r in rows])
        info["tokenizer_cases"][case] = cfg

    save_sorted(tensors, args.out / "gemma4_variants.safetensors", {"info": json.dumps(info, sort_keys=True)})
    (args.out / "tolerances.json").write_text(json.dumps({"gemma4_variants": tolerances}, indent=2,
                                                         sort_keys=True) + "\n")
    versions = {"torch": torch.__version__, "transformers": transformers.__version__}
    print(json.dumps(versions))


if __name__ == "__main__":
    main()
