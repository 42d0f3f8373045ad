"""lora_fusion golden: the transformer forward with LoRAs fused by ltx-core's loader (one LoRA, a stack of two with
different strengths, an FP8 base checkpoint), plus a few fused weights to check the fusion itself."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

import make_golden as mg
from ltx_core.components.patchifiers import AudioPatchifier, VideoLatentPatchifier
from ltx_core.conditioning import VideoConditionByLatentIndex
from ltx_core.loader import LTXV_LORA_COMFY_RENAMING_MAP, LoraPathStrengthAndSDOps
from ltx_core.quantization import QuantizationPolicy
from ltx_core.quantization.fp8_scaled_mm import FP8_PREPARE_MODULE_OPS, FP8_TRANSPOSE_SD_OPS, FP8Linear
from ltx_core.tools import AudioLatentTools, VideoLatentTools
from ltx_core.types import AudioLatentShape, VideoLatentShape, VideoPixelShape
from ltx_pipelines.utils.helpers import modality_from_latent_state
from ltx_pipelines.utils.model_ledger import ModelLedger

CPU = torch.device("cpu")
FP8_POLICY = QuantizationPolicy(sd_ops=FP8_TRANSPOSE_SD_OPS, module_ops=(FP8_PREPARE_MODULE_OPS,))


def fused_keys(layout: str) -> dict[str, list[str]]:
    """LTXModel parameters stored as dbg.<case>.fused.<key> (checkpoint key minus 'model.diffusion_model.')."""
    v23 = layout == "2.3"
    return {
        "one": ["transformer_blocks.1.attn1.to_q.weight"] + (["transformer_blocks.1.attn1.to_gate_logits.weight"] if v23 else []),
        # a + b on the same weight; b alone on a top-level layer (and on a gate)
        "stack": ["transformer_blocks.1.attn1.to_q.weight", "proj_out.weight"]
        + (["transformer_blocks.1.video_to_audio_attn.to_gate_logits.weight"] if v23 else []),
        # an FP8-quantized layer (block 1) and a bf16 layer of the FP8 file (block 0 is excluded from quantization)
        "fp8": ["transformer_blocks.1.attn1.to_q.weight", "transformer_blocks.0.attn1.to_q.weight"]
        + (["transformer_blocks.1.attn1.to_gate_logits.weight", "prompt_adaln_single.linear.weight"] if v23 else []),
    }


class LoraFusion:
    def __init__(self, lay):
        self.lay = lay
        self.sh = lay.shapes["lora_fusion"]
        self.g = torch.Generator().manual_seed(3000 + lay.seed)
        ckpt = lay.weights / "model.safetensors"
        self.cases = {
            # name: (checkpoint, quantization, [(lora name, strength)])
            "base": (ckpt, None, []),
            "one": (ckpt, None, [("a", self.sh["strength_one"])]),
            "stack": (ckpt, None, [("a", self.sh["strength_stack"][0]), ("b", self.sh["strength_stack"][1])]),
            "fp8": (lay.weights / "model_fp8.safetensors", FP8_POLICY, [("a", self.sh["strength_fp8"])]),
        }

    def randn(self, *shape) -> torch.Tensor:
        return torch.randn(*shape, generator=self.g, dtype=torch.float32)

    def inputs(self):
        sh = self.sh
        pixel = VideoPixelShape(batch=1, frames=sh["frames"], height=sh["height"], width=sh["width"], fps=sh["fps"])
        vshape = VideoLatentShape.from_pixel_shape(pixel, latent_channels=mg.VIDEO_LATENT_CHANNELS)
        vtools = VideoLatentTools(VideoLatentPatchifier(patch_size=1), vshape, pixel.fps)
        atools = AudioLatentTools(AudioPatchifier(patch_size=1), AudioLatentShape.from_video_pixel_shape(pixel))
        vlat = self.randn(*vshape.to_torch_shape())
        vstate = vtools.create_initial_state(CPU, torch.float32, initial_latent=vlat)
        vstate = VideoConditionByLatentIndex(latent=vlat[:, :, :1].clone(), strength=1.0, latent_idx=0).apply_to(vstate, vtools)
        astate = atools.create_initial_state(CPU, torch.float32, initial_latent=self.randn(*atools.target_shape.to_torch_shape()))
        t = self.lay.config["transformer"]
        dims = ((t["caption_channels"],) * 2 if "caption_channels" in t else
                (t["num_attention_heads"] * t["attention_head_dim"], t["audio_num_attention_heads"] * t["audio_attention_head_dim"]))
        vctx = self.randn(1, mg.TEXT_SEQ_LEN, dims[0])
        actx = self.randn(1, mg.TEXT_SEQ_LEN, dims[1])
        return vstate, astate, torch.tensor(sh["sigma"], dtype=torch.float32), vctx, actx

    def model(self, case: str, dtype: torch.dtype, lora_paths: dict[str, Path]):
        ckpt, quant, loras = self.cases[case]
        specs = tuple(LoraPathStrengthAndSDOps(str(lora_paths[n]), s, LTXV_LORA_COMFY_RENAMING_MAP) for n, s in loras)
        return ModelLedger(dtype=dtype, device=CPU, checkpoint_path=str(ckpt), loras=specs, quantization=quant).transformer()

    @staticmethod
    def forward(x0, vstate, astate, sigma, vctx, actx, dtype):
        if dtype == torch.float64:  # as make_golden's transformer golden: positions too, so RoPE is float64 as well
            vstate, astate = (replace(st, latent=st.latent.double(), clean_latent=st.clean_latent.double(),
                                      denoise_mask=st.denoise_mask.double(), positions=st.positions.double())
                              for st in (vstate, astate))
            sigma, vctx, actx = sigma.double(), vctx.double(), actx.double()
        vmod = modality_from_latent_state(vstate, vctx, sigma)
        amod = modality_from_latent_state(astate, actx, sigma)
        with torch.inference_mode():
            vv, va = x0.velocity_model(vmod, amod, None)
            dv, da = x0(video=vmod, audio=amod, perturbations=None)
        return {"video.velocity": vv, "audio.velocity": va, "video.denoised": dv, "audio.denoised": da}

    @staticmethod
    def fused(x0, keys: list[str]) -> dict[str, torch.Tensor]:
        m = x0.velocity_model
        out = {}
        for k in keys:
            layer, leaf = k.rsplit(".", 1)
            mod = m.get_submodule(layer)
            if isinstance(mod, FP8Linear):  # module layout (in, out): store the checkpoint layout (out, in) + scale
                out[k] = mod.weight.detach().t().contiguous()
                out[f"{layer}.weight_scale"] = mod.weight_scale.detach().clone()
            else:
                out[k] = getattr(mod, leaf).detach().clone()
        return out

    def run(self) -> None:
        lay, w = self.lay, self.lay.writer
        mg._FP8Emulation.mode = "weight_only"  # FP8Linear: dequantized weight x float activations (the CPU / Rust path)
        vstate, astate, sigma, vctx, actx = self.inputs()
        t = {
            "in.video.latent": vstate.latent, "in.video.denoise_mask": vstate.denoise_mask, "in.video.positions": vstate.positions,
            "in.video.context": vctx, "in.audio.latent": astate.latent, "in.audio.denoise_mask": astate.denoise_mask,
            "in.audio.positions": astate.positions, "in.audio.context": actx, "in.sigma": sigma.reshape(1),
        }
        outs32 = {}
        keys = fused_keys(lay.name)
        for case in self.cases:
            x0 = self.model(case, torch.float32, lay.loras)
            outs32[case] = self.forward(x0, vstate, astate, sigma, vctx, actx, torch.float32)
            t.update({f"out.{case}.{k}": v for k, v in outs32[case].items()})
            if case != "base":
                t.update({f"dbg.{case}.fused.{k}": v for k, v in self.fused(x0, keys[case]).items()})
        self.check_documented_formula(t)
        w.write("lora_fusion", t, self.info())
        if not lay.with_f64:
            return
        exact = self.exact_loras()
        orig_mm = mg._FP8Emulation.scaled_mm

        def mm64(a, b, scale_a, scale_b, bias=None, out_dtype=torch.float64):
            out = (a.double() @ b.double()) * (scale_a.double() * scale_b.double())
            return (out + bias.double() if bias is not None else out).to(out_dtype)

        torch.ops.trtllm.cublas_scaled_mm = mm64
        try:
            with mg.float64_math():
                for case in self.cases:
                    o64 = self.forward(self.model(case, torch.float64, lay.loras), vstate, astate, sigma, vctx, actx, torch.float64)
                    for k in o64:
                        w.tol("lora_fusion", f"out.{case}.{k}", outs32[case][k], o64[k])
                    if case in ("one", "stack"):  # how much ltx-core's rounding of the LoRA product matters
                        ox = self.forward(self.model(case, torch.float64, exact), vstate, astate, sigma, vctx, actx, torch.float64)
                        for k in ("video.velocity", "audio.velocity"):
                            w.tolerances["lora_fusion"][f"out.{case}.{k} (vs exact float64 fusion)"] = {
                                "rel_l2": mg.rel_err(outs32[case][k], ox[k]),
                                "note": "informational, not a tolerance: float64 run whose LoRA files were first converted to "
                                "float64, i.e. without ltx-core's rounding of (B * strength) @ A to the LoRA file dtype"}
        finally:
            torch.ops.trtllm.cublas_scaled_mm = orig_mm

    def check_documented_formula(self, t: dict[str, torch.Tensor]) -> None:
        """The fusion rules written in info['fusion'] and the README, re-implemented independently from the files,
        must give the fused parameters bitwise."""
        base = load_file(str(self.lay.weights / "model.safetensors"))
        fp8 = load_file(str(self.lay.weights / "model_fp8.safetensors"))
        files = {n: load_file(str(p)) for n, p in self.lay.loras.items()}

        def delta(key: str, loras, dtype):
            parts = []
            for name, strength in loras:
                a = files[name].get(f"diffusion_model.{key[:-len('.weight')]}.lora_A.weight")
                if a is not None:
                    b = files[name][f"diffusion_model.{key[:-len('.weight')]}.lora_B.weight"]
                    parts.append(torch.matmul(b * strength, a).to(dtype))  # product in the LoRA file's dtype
            return parts[0] if len(parts) == 1 else torch.stack(parts).sum(0)

        for case in ("one", "stack", "fp8"):
            loras = self.cases[case][2]
            for k in [k for k in t if k.startswith(f"dbg.{case}.fused.") and k.endswith(".weight")]:
                key = k[len(f"dbg.{case}.fused."):]
                if case != "fp8":
                    ref = base["model.diffusion_model." + key].float() + delta(key, loras, torch.float32)
                    ok = torch.equal(ref, t[k])
                elif fp8["model.diffusion_model." + key].dtype == torch.float8_e4m3fn:
                    q = fp8["model.diffusion_model." + key]
                    w = q.float() * fp8["model.diffusion_model." + key[:-len(".weight")] + ".weight_scale"]
                    w = w + delta(key, loras, torch.bfloat16).float()
                    s = 448.0 / w.abs().amax()
                    q2 = torch.clamp(w * s, -448.0, 448.0).to(torch.float8_e4m3fn)
                    ok = torch.equal(q2.view(torch.uint8), t[k].view(torch.uint8)) and torch.equal(s.reciprocal(), t[k + "_scale"])
                else:
                    ok = torch.equal((delta(key, loras, torch.bfloat16) + fp8["model.diffusion_model." + key]).float(), t[k])
                if not ok:
                    raise SystemExit(f"lora_fusion: the documented fusion formula does not reproduce {k}")

    def exact_loras(self) -> dict[str, Path]:
        out = {}
        for name, path in self.lay.loras.items():
            p = self.lay.work / f"{self.lay.name}-{name}-f64.safetensors"
            save_file({k: v.double() for k, v in load_file(str(path)).items()}, str(p))
            out[name] = p
        return out

    def info(self) -> dict:
        c = self.cases
        lora_list = {k: [(f"loras/{self.lay.name}-{n}.safetensors", s) for n, s in v[2]] for k, v in c.items()}
        return {
            "produced_by": "X0Model from ltx_pipelines ModelLedger(dtype, checkpoint_path, loras=(LoraPathStrengthAndSDOps(path, "
            "strength, LTXV_LORA_COMFY_RENAMING_MAP), ...), quantization).transformer() -- ltx-core SingleGPUModelBuilder.build "
            "-> loader.fuse_loras.apply_loras; forward exactly as the transformer golden of make_golden.py",
            "cases": "base: the checkpoint without LoRA. one: LoRA a. stack: LoRA a + LoRA b (other strength, float32 file with "
            "ignored .alpha entries). fp8: weights/model_fp8.safetensors (scaled FP8 layout) with QuantizationPolicy(sd_ops="
            "FP8_TRANSPOSE_SD_OPS, module_ops=(FP8_PREPARE_MODULE_OPS,)) and LoRA a; FP8Linear evaluated weight-only "
            "(x @ (fp8_weight * weight_scale).T + bias, float activations; the TensorRT-LLM activation quantization is not "
            "stored here, see make_golden's transformer_fp8).",
            "fusion": "delta = sum over the stack of (lora_B * strength) @ lora_A, the matmul computed in the LoRA FILE dtype "
            "(bf16 for a, f32 for b) and then cast to the target dtype; fused = weight + delta. Non-FP8 base (bf16 file): target = "
            "ledger dtype (float32 here), so fused = f32(w_bf16) + f32(delta). Scaled FP8 weight (layers quantized in the FP8 "
            "file): w = fp8.T.float() * weight_scale (checkpoint layout), w' = w + f32(bf16(delta)), re-quantized per tensor: "
            "s = 448 / max|w'| (float32), fp8 = e4m3(clamp(w' * s, -448, 448)) (round to nearest), weight_scale' = 1 / s; "
            "input_scale unchanged. bf16 tensors of the FP8 file (block 0, top-level layers): fused = bf16(bf16(delta) + w) "
            "(target = the stored dtype, rounded to bf16). Keys without lora_A/lora_B keep their checkpoint values.",
            "notes": "in.* as make_golden's transformer golden: first latent frame conditioned (denoise_mask 0), timesteps = "
            "denoise_mask * sigma, random contexts at the transformer's context widths, context_mask None. out.<case>.* = "
            "velocity (LTXModel) and denoised (X0Model). dbg.<case>.fused.<key> = the fused parameter as loaded (LTXModel key; "
            "FP8 weights in checkpoint layout (out, in) as float8_e4m3fn, with <layer>.weight_scale). The float64 reference "
            "(tolerances.json) uses the same LoRA files, so it reproduces ltx-core's rounding of the LoRA product; the "
            "'(vs exact float64 fusion)' entries show what that rounding is worth.",
            "params": {"frames": self.sh["frames"], "height": self.sh["height"], "width": self.sh["width"], "fps": self.sh["fps"],
                       "sigma": self.sh["sigma"], "loras": lora_list, "fp8_linear_mode": "weight_only"},
        }
