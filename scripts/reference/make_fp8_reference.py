"""References for the FP8 paths that the golden sets do not cover, made with the official ltx-core 1.0.0.

1. `transformer_fp8_cast.safetensors` per golden set: the DiT loaded from the set's bf16 `weights/model.safetensors`
   under `QuantizationPolicy.fp8_cast()` (block q/k/v/out and feed-forward weights and biases cast to
   float8_e4m3fn at load, upcast for every matmul), run on the `in.*` tensors of the set's `transformer.safetensors`.
   Non-cast parameters (bf16 in the file) are upcast to float32 as the golden generator does for its FP8 runs;
   a float64 run gives the noise floor written to `tolerances.json` in the golden generator's format.
2. `gemma_per_tensor_ltx2.safetensors`: ltx-core's `quantize_weight_to_fp8_per_tensor` of every Gemma projection
   weight of the LTX-2 golden set's tiny Gemma (the per-tensor FP8 of `--gemma-quantization fp8`): e4m3 codes in
   the stored `[out, in]` layout and the f32 `weight_scale`.
3. `e4m3_rounding.safetensors`: PyTorch's `float8_e4m3fn` cast of every bfloat16 value of magnitude <= 464
   (what fp8-cast rounds) and of float32 values around every e4m3 rounding boundary plus random ones (what the
   scaled-mm activation quantization rounds).

Run (from the repository root, ~20 s):
    /work/goldenv/bin/python scripts/reference/make_fp8_reference.py --out testdata/fp8-reference
"""

import argparse
import json
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from ltx_core.model.transformer.modality import Modality
from ltx_core.quantization import QuantizationPolicy
from ltx_core.quantization.fp8_scaled_mm import quantize_weight_to_fp8_per_tensor
from ltx_pipelines.utils.model_ledger import ModelLedger

SETS = {"ltx2": "testdata/golden", "ltx23": "testdata/golden-2.3"}
FP8 = torch.float8_e4m3fn


def build(checkpoint: Path, dtype: torch.dtype):
    ledger = ModelLedger(
        dtype=torch.float32, device=torch.device("cpu"), checkpoint_path=str(checkpoint),
        quantization=QuantizationPolicy.fp8_cast(),
    )
    x0 = ledger.transformer()
    n_fp8 = 0
    for mod in x0.modules():
        for name, p in list(mod.named_parameters(recurse=False)):
            if p.dtype == FP8:
                n_fp8 += 1
                continue
            mod._parameters[name] = torch.nn.Parameter(p.detach().to(dtype).clone(), requires_grad=False)
        for name, b in list(mod.named_buffers(recurse=False)):
            if b is not None and b.dtype == torch.bfloat16:
                mod._buffers[name] = b.float()
    assert n_fp8 > 0, "fp8_cast cast nothing"
    return x0.eval(), n_fp8


def modality(t: dict, stream: str, dtype: torch.dtype) -> Modality:
    f = lambda k: t[f"in.{stream}.{k}"].to(dtype)  # noqa: E731
    return Modality(
        latent=f("latent"), sigma=t["in.sigma"].to(dtype), timesteps=f("timesteps"), positions=f("positions"),
        context=f("context"), enabled=True, context_mask=None,
    )


def run(x0, t: dict, dtype: torch.dtype):
    v, a = modality(t, "video", dtype), modality(t, "audio", dtype)
    with torch.no_grad():
        vel_v, vel_a = x0.velocity_model(v, a, None)
    den_v = v.latent - vel_v * v.timesteps
    den_a = a.latent - vel_a * a.timesteps
    return {"video.velocity": vel_v, "audio.velocity": vel_a, "video.denoised": den_v, "audio.denoised": den_a}


def rel_l2(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.double() - b.double()).norm() / b.double().norm())


def fp8_cast_reference(golden: Path, out: Path, name: str, tolerances: dict) -> None:
    inputs = load_file(str(golden / "transformer.safetensors"))
    ckpt = golden / "weights" / "model.safetensors"
    x32, n_fp8 = build(ckpt, torch.float32)
    x64, _ = build(ckpt, torch.float64)
    o32, o64 = run(x32, inputs, torch.float32), run(x64, inputs, torch.float64)
    tensors = {f"out.{k}": v.float().contiguous() for k, v in o32.items()}
    info = {
        "produced_by": "ModelLedger(checkpoint=weights/model.safetensors, quantization=QuantizationPolicy.fp8_cast())"
        ".transformer().velocity_model(video, audio, None), ltx-core 1.0.0; non-cast bf16 parameters upcast to float32",
        "inputs": f"the in.* tensors of {golden}/transformer.safetensors",
        "fp8_parameters": n_fp8,
        "denoised": "latent - velocity * timesteps",
    }
    save_file(tensors, str(out / f"{name}.safetensors"), metadata={"info": json.dumps(info)})
    entry = {}
    for k in o32:
        a, b = o32[k], o64[k]
        entry[f"out.{k}"] = {
            "rel_l2_f32_vs_f64": rel_l2(a, b),
            "max_abs_over_absmax_f32_vs_f64": float((a.double() - b).abs().max() / b.abs().max()),
        }
    tolerances[name] = entry
    print(name, n_fp8, "fp8 parameters", {k: f"{v['rel_l2_f32_vs_f64']:.2e}" for k, v in entry.items()})


def gemma_per_tensor(golden: Path, out: Path) -> None:
    tensors = {}
    for shard in sorted((golden / "weights" / "gemma").glob("*.safetensors")):
        for key, w in load_file(str(shard)).items():
            if key.startswith("language_model.") and ".layers." in key and key.endswith("_proj.weight") and (".self_attn." in key or ".mlp." in key):
                q, scale = quantize_weight_to_fp8_per_tensor(w)
                tensors[f"out.{key}.codes"] = q.t().contiguous().view(torch.uint8)
                tensors[f"out.{key}.weight_scale"] = scale.reshape(()).float()
    assert tensors, "no Gemma projections"
    info = {"produced_by": "ltx_core.quantization.fp8_scaled_mm.quantize_weight_to_fp8_per_tensor(w) on the "
            f"Gemma folder of {golden}; codes transposed back to [out, in]"}
    save_file(tensors, str(out / "gemma_per_tensor_ltx2.safetensors"), metadata={"info": json.dumps(info)})
    print("gemma per-tensor:", len(tensors) // 2, "weights")


def rounding_vectors(out: Path) -> None:
    bits = torch.arange(-(1 << 15), 1 << 15, dtype=torch.int32).to(torch.int16)
    bf = bits.view(torch.bfloat16)
    bf = bf[torch.isfinite(bf.float()) & (bf.float().abs() <= 464)]
    # float32: every e4m3 value, the midpoints between neighbours and one f32 ulp either side, random values.
    codes = torch.arange(256, dtype=torch.int32).to(torch.uint8).view(FP8).float()
    codes = torch.unique(codes[torch.isfinite(codes)])
    mids = (codes[1:] + codes[:-1]) / 2
    below, above = torch.nextafter(mids, torch.tensor(-1e9)), torch.nextafter(mids, torch.tensor(1e9))
    g = torch.Generator().manual_seed(0)
    rnd = torch.randn(40000, generator=g) * torch.exp2(torch.randint(-12, 9, (40000,), generator=g).float())
    f32 = torch.cat([codes, mids, below, above, rnd]).clamp(-448, 448)
    tensors = {
        "in.bf16": bf.contiguous(),
        "out.bf16_e4m3_bits": bf.to(FP8).view(torch.uint8).contiguous(),
        "in.f32": f32.contiguous(),
        "out.f32_e4m3_bits": f32.to(FP8).view(torch.uint8).contiguous(),
    }
    info = {"produced_by": f"torch {torch.__version__}: tensor.to(torch.float8_e4m3fn).view(torch.uint8)"}
    save_file(tensors, str(out / "e4m3_rounding.safetensors"), metadata={"info": json.dumps(info)})
    print("e4m3 rounding:", len(bf), "bf16 values,", len(f32), "f32 values")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", type=Path, default=Path("testdata/fp8-reference"))
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    tolerances: dict = {}
    for name, golden in SETS.items():
        fp8_cast_reference(Path(golden), args.out, f"transformer_fp8_cast_{name}", tolerances)
    gemma_per_tensor(Path(SETS["ltx2"]), args.out)
    rounding_vectors(args.out)
    (args.out / "tolerances.json").write_text(json.dumps(tolerances, indent=2) + "\n")


if __name__ == "__main__":
    main()
