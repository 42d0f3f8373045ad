"""Shared helpers for the ltx-pipelines reference harness (make_random_checkpoint.py, bench_ltx_pipelines.py).

Everything here drives the official ltx-core 1.0.0 / ltx-pipelines 1.0.0 code; nothing re-implements a model.

* Configs: `--size tiny` reuses the golden tiny configuration (the `config` metadata of
  testdata/golden/weights/model.safetensors, the upsampler's metadata and weights/gemma/config.json);
  `--size 19b` is the real LTX-2 19B configuration (the values of the official checkpoint header, see
  ltx2-architecture.md §3.1/§7.1 and GEMMA3_CONFIG_FOR_LTX for Gemma-3-12B).
* Key lists and shapes: built from ltx-core's own configurators on the meta device and mapped back to the
  official checkpoint key names; every mapped key is checked against ltx-core's own SDOps renaming rules.
* Random weights: `RandomStateDictLoader` plugs into ltx-core's `SingleGPUModelBuilder.model_loader`, so models are
  built by ltx-core's normal path (SDOps, module ops, load_state_dict(assign=True)); only the safetensors read is
  replaced by generating the tensors (on the target device) from the key list.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import shutil
import struct
from dataclasses import replace
from pathlib import Path

import torch

REPO_ROOT = Path(__file__).resolve().parents[2]
GOLDEN_WEIGHTS = REPO_ROOT / "testdata" / "golden" / "weights"
# Tokenizer / processor files copied into every generated Gemma folder (the tiny HF `tokenizers` tokenizer of the
# golden set: a tokenizer with Gemma's real 262k vocabulary is not available offline; its ids (< 528) are valid
# ids of the 12B embedding table and prompts are padded to the fixed max length anyway, so the compute is the same).
GEMMA_ASSET_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "preprocessor_config.json",
    "processor_config.json",
)

# The official header's extra (unused by ltx-core) video VAE statistics, kept so the key layout matches.
EXTRA_VAE_STAT_KEYS = ("channel", "mean-of-stds", "mean-of-stds_over_std-of-means")


# ----------------------------------------------------------------------------------------------------------------
# Configurations


def _read_safetensors_metadata(path: Path) -> dict:
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(n))
    return header.get("__metadata__", {})


def ltx2_19b_config() -> dict:
    """The `config` metadata of ltx-2-19b-distilled*.safetensors (values of the real header; keys as the
    ltx-core configurators read them)."""
    transformer = {
        "_class_name": "AVTransformer3DModel",
        "activation_fn": "gelu-approximate",
        "attention_bias": True,
        "attention_head_dim": 128,
        "attention_type": "default",
        "audio_attention_head_dim": 64,
        "audio_cross_attention_dim": 2048,
        "audio_num_attention_heads": 32,
        "audio_in_channels": 128,
        "audio_out_channels": 128,
        "audio_positional_embedding_max_pos": [20],
        "av_ca_timestep_scale_multiplier": 1000.0,
        "av_cross_ada_norm": True,
        "caption_channels": 3840,
        "causal_temporal_positioning": True,
        "connector_attention_head_dim": 128,
        "connector_norm_output": True,
        "connector_num_attention_heads": 30,
        "connector_num_layers": 2,
        "connector_num_learnable_registers": 128,
        "connector_positional_embedding_max_pos": [4096],
        "cross_attention_dim": 4096,
        "cross_attention_norm": True,
        "double_self_attention": False,
        "dropout": 0.0,
        "frequencies_precision": "float64",
        "in_channels": 128,
        "norm_elementwise_affine": False,
        "norm_eps": 1e-06,
        "norm_num_groups": 32,
        "num_attention_heads": 32,
        "num_embeds_ada_norm": 1000,
        "num_layers": 48,
        "num_vector_embeds": None,
        "only_cross_attention": False,
        "out_channels": 128,
        "positional_embedding_max_pos": [20, 2048, 2048],
        "positional_embedding_theta": 10000.0,
        "positional_embedding_type": "rope",
        "qk_norm": "rms_norm",
        "rope_type": "split",
        "share_ff": False,
        "standardization_norm": "rms_norm",
        "timestep_scale_multiplier": 1000,
        "upcast_attention": False,
        "use_audio_video_cross_attention": True,
        "use_embeddings_connector": True,
        "use_linear_projection": False,
        "use_middle_indices_grid": True,
    }

    def res(n: int, **extra) -> list:
        return ["res_x", {"num_layers": n, **extra}]

    vae = {
        "_class_name": "CausalVideoAutoencoder",
        "dims": 3,
        "in_channels": 3,
        "out_channels": 3,
        "latent_channels": 128,
        "encoder_blocks": [
            res(4),
            ["compress_space_res", {"multiplier": 2}],
            res(6),
            ["compress_time_res", {"multiplier": 2}],
            res(6),
            ["compress_all_res", {"multiplier": 2}],
            res(2),
            ["compress_all_res", {"multiplier": 2}],
            res(2),
        ],
        "decoder_blocks": [
            res(5, inject_noise=False),
            ["compress_all", {"residual": True, "multiplier": 2}],
            res(5, inject_noise=False),
            ["compress_all", {"residual": True, "multiplier": 2}],
            res(5, inject_noise=False),
            ["compress_all", {"residual": True, "multiplier": 2}],
            res(5, inject_noise=False),
        ],
        "scaling_factor": 1.0,
        "norm_layer": "pixel_norm",
        "patch_size": 4,
        "latent_log_var": "uniform",
        "use_quant_conv": False,
        "causal_decoder": False,
        "timestep_conditioning": False,
        "normalize_latent_channels": False,
        "decoder_base_channels": 128,
    }
    audio_vae = {
        "model": {
            "params": {
                "ddconfig": {
                    "double_z": True,
                    "mel_bins": 64,
                    "z_channels": 8,
                    "resolution": 256,
                    "downsample_time": False,
                    "in_channels": 2,
                    "out_ch": 2,
                    "ch": 128,
                    "ch_mult": [1, 2, 4],
                    "num_res_blocks": 2,
                    "attn_resolutions": [],
                    "dropout": 0.0,
                    "mid_block_add_attention": False,
                    "norm_type": "pixel",
                    "causality_axis": "height",
                },
                "sampling_rate": 16000,
            }
        },
        "preprocessing": {
            "audio": {"sampling_rate": 16000},
            "stft": {"hop_length": 160, "filter_length": 1024, "causal": True},
            "mel": {"n_mel_channels": 64},
        },
    }
    vocoder = {
        "resblock": "1",
        "stereo": True,
        "upsample_rates": [6, 5, 2, 2, 2],
        "upsample_kernel_sizes": [16, 15, 8, 4, 4],
        "resblock_kernel_sizes": [3, 7, 11],
        "resblock_dilation_sizes": [[1, 3, 5], [1, 3, 5], [1, 3, 5]],
        "upsample_initial_channel": 1024,
        "output_sampling_rate": 24000,
        "activation": "snake",
        "use_tanh_at_final": True,
        "use_bias_at_final": True,
    }
    return {"transformer": transformer, "vae": vae, "audio_vae": audio_vae, "vocoder": vocoder}


def ltx2_19b_upsampler_config() -> dict:
    """`config` metadata of ltx-2-spatial-upscaler-x2-1.0.safetensors (§1.5)."""
    return {
        "_class_name": "LatentUpsampler",
        "in_channels": 128,
        "mid_channels": 1024,
        "num_blocks_per_stage": 4,
        "dims": 3,
        "spatial_upsample": True,
        "temporal_upsample": False,
        "spatial_scale": 2.0,
        "rational_resampler": True,
    }


class SizeConfig:
    """Everything that differs between the tiny golden configuration and the real 19B model."""

    def __init__(self, size: str):
        if size not in ("tiny", "19b"):
            raise ValueError(f"--size must be tiny or 19b, got {size!r}")
        self.size = size
        if size == "tiny":
            self.checkpoint_config = json.loads(
                _read_safetensors_metadata(GOLDEN_WEIGHTS / "model.safetensors")["config"]
            )
            self.model_version = "random-tiny-ltx-2.0-19b-layout"
            self.upsampler_config = json.loads(
                _read_safetensors_metadata(GOLDEN_WEIGHTS / "upsampler.safetensors")["config"]
            )
            self.gemma_config = json.loads((GOLDEN_WEIGHTS / "gemma" / "config.json").read_text())
            # The golden generator's tokenizer length (the connector's 128 registers need a multiple of 128).
            self.tokenizer_max_length = 128
        else:
            from ltx_core.text_encoders.gemma.config import Gemma3ConfigData

            self.checkpoint_config = ltx2_19b_config()
            self.model_version = "random-ltx-2.0-19b"
            self.upsampler_config = ltx2_19b_upsampler_config()
            self.gemma_config = Gemma3ConfigData().to_dict()
            self.tokenizer_max_length = 1024  # ltx-core's hard-coded value for the real model

    def with_debug_layers(self, layers: int) -> SizeConfig:
        """Validation only: keep every width of the configuration but cut the DiT and Gemma depth to `layers`
        (lets the 19B widths run on a small CPU machine). Never use for timings."""
        self.checkpoint_config["transformer"]["num_layers"] = layers
        self.gemma_config["text_config"]["num_hidden_layers"] = layers
        self.model_version += f"-debug-{layers}-layers"
        return self

    @property
    def video_latent_channels(self) -> int:
        return self.checkpoint_config["vae"].get("latent_channels", 128)


# ----------------------------------------------------------------------------------------------------------------
# Patches that make ltx-core accept a configuration other than the hard-coded real one (all no-ops for 19B numerics)

_PATCHED: dict = {}


def install_patches(cfg: SizeConfig) -> None:
    """Minimal patches, the same ones the golden generator used (testdata/golden/README.md "What the generator
    patched", items 1, 2, 4 and 8). For --size 19b only item 8 (tokenizer.json instead of a SentencePiece model)
    changes anything."""
    if _PATCHED.get("size") == cfg.size:
        return
    assert "size" not in _PATCHED, "patches for another size are already installed"
    import ltx_pipelines.utils.types as pipeline_types
    from ltx_core.model.audio_vae import model_configurator as audio_cfg
    from ltx_core.model.audio_vae.ops import PerChannelStatistics
    from ltx_core.text_encoders.gemma import config as gemma_cfg_mod
    from ltx_core.text_encoders.gemma.encoders import base_encoder

    # 1. Gemma dims: GEMMA3_CONFIG_FOR_LTX is a hard-coded dataclass; set its fields from the config dict.
    target = gemma_cfg_mod.GEMMA3_CONFIG_FOR_LTX
    for key, value in cfg.gemma_config.items():
        if key in ("text_config", "vision_config"):
            sub = getattr(target, key)
            for k, v in value.items():
                if k == "rope_scaling" and isinstance(v, dict):
                    for rk, rv in v.items():
                        setattr(sub.rope_scaling, rk, rv)
                elif hasattr(sub, k):
                    setattr(sub, k, v)
        elif hasattr(target, key):
            setattr(target, key, value)

    # 2. Audio latent statistics length = patchified latent width (z_channels * mel_bins / 4); ltx-core uses `ch`,
    #    which equals it in the real model (8 * 16 = 128).
    dd = cfg.checkpoint_config["audio_vae"]["model"]["params"]["ddconfig"]
    stats_len = dd.get("z_channels", 8) * (dd.get("mel_bins", 64) // 4)
    for cls in (audio_cfg.AudioEncoderConfigurator, audio_cfg.AudioDecoderConfigurator):
        original = cls.from_config.__func__

        def from_config(klass, config, _original=original):
            model = _original(klass, config)
            if model.per_channel_statistics.get_buffer("std-of-means").shape[0] != stats_len:
                model.per_channel_statistics = PerChannelStatistics(latent_channels=stats_len)
            return model

        cls.from_config = classmethod(from_config)

    # 4. ltx-pipelines hard-codes 128 latent channels.
    pipeline_types.VIDEO_LATENT_CHANNELS = cfg.video_latent_channels

    # 8. The Gemma folder ships tokenizer.json (HF tokenizers), not a SentencePiece tokenizer.model; the tokenizer
    #    length is 1024 for the real model (ltx-core's value) and 128 for tiny.
    original_find = base_encoder.find_matching_file

    def find_matching_file(root, pattern):
        if pattern == "tokenizer.model":
            pattern = "tokenizer.json"
        return original_find(root, pattern)

    base_encoder.find_matching_file = find_matching_file
    if cfg.tokenizer_max_length != 1024:
        base_encoder.LTXVGemmaTokenizer = functools.partial(_tokenizer_with_length, max_length=cfg.tokenizer_max_length)
    _PATCHED["size"] = cfg.size


def _tokenizer_with_length(path, _ignored_length=None, *, max_length):
    from ltx_core.text_encoders.gemma.tokenizer import LTXVGemmaTokenizer

    return LTXVGemmaTokenizer(path, max_length)


# ----------------------------------------------------------------------------------------------------------------
# Key lists: ltx-core constructors -> official checkpoint keys


def _component_specs():
    """(component, configurator, official SDOps, [(module prefix, file prefix)]) for the single-file checkpoint."""
    from ltx_core.model.audio_vae import (
        AUDIO_VAE_DECODER_COMFY_KEYS_FILTER,
        AUDIO_VAE_ENCODER_COMFY_KEYS_FILTER,
        VOCODER_COMFY_KEYS_FILTER,
        AudioDecoderConfigurator,
        AudioEncoderConfigurator,
        VocoderConfigurator,
    )
    from ltx_core.model.transformer import LTXV_MODEL_COMFY_RENAMING_MAP, LTXModelConfigurator
    from ltx_core.model.video_vae import (
        VAE_DECODER_COMFY_KEYS_FILTER,
        VAE_ENCODER_COMFY_KEYS_FILTER,
        VideoDecoderConfigurator,
        VideoEncoderConfigurator,
    )
    from ltx_core.text_encoders.gemma import EMBEDDINGS_PROCESSOR_KEY_OPS, EmbeddingsProcessorConfigurator

    return [
        ("transformer", LTXModelConfigurator, LTXV_MODEL_COMFY_RENAMING_MAP, [("", "model.diffusion_model.")]),
        (
            "embeddings_processor",
            EmbeddingsProcessorConfigurator,
            EMBEDDINGS_PROCESSOR_KEY_OPS,
            [
                ("video_connector.", "model.diffusion_model.video_embeddings_connector."),
                ("audio_connector.", "model.diffusion_model.audio_embeddings_connector."),
                ("feature_extractor.aggregate_embed.", "text_embedding_projection.aggregate_embed."),
            ],
        ),
        (
            "video_encoder",
            VideoEncoderConfigurator,
            VAE_ENCODER_COMFY_KEYS_FILTER,
            [("per_channel_statistics.", "vae.per_channel_statistics."), ("", "vae.encoder.")],
        ),
        (
            "video_decoder",
            VideoDecoderConfigurator,
            VAE_DECODER_COMFY_KEYS_FILTER,
            [("per_channel_statistics.", "vae.per_channel_statistics."), ("", "vae.decoder.")],
        ),
        (
            "audio_encoder",
            AudioEncoderConfigurator,
            AUDIO_VAE_ENCODER_COMFY_KEYS_FILTER,
            [("per_channel_statistics.", "audio_vae.per_channel_statistics."), ("", "audio_vae.encoder.")],
        ),
        (
            "audio_decoder",
            AudioDecoderConfigurator,
            AUDIO_VAE_DECODER_COMFY_KEYS_FILTER,
            [("per_channel_statistics.", "audio_vae.per_channel_statistics."), ("", "audio_vae.decoder.")],
        ),
        ("vocoder", VocoderConfigurator, VOCODER_COMFY_KEYS_FILTER, [("", "vocoder.")]),
    ]


def _map_keys(module_sd: dict, prefixes, sd_ops, what: str) -> dict:
    out = {}
    for key, tensor in module_sd.items():
        file_key = None
        for module_prefix, file_prefix in prefixes:
            if key.startswith(module_prefix):
                if file_prefix is None:
                    break
                file_key = file_prefix + key[len(module_prefix) :]
                break
        if file_key is None:
            continue
        if sd_ops is not None:
            back = sd_ops.apply_to_key(file_key)
            back_keys = [] if back is None else [r[0] for r in sd_ops.apply_to_key_value(back, tensor)]
            if key not in back_keys:
                raise RuntimeError(f"{what}: checkpoint key {file_key} maps back to {back_keys}, not {key!r}")
        out[file_key] = tuple(tensor.shape)
    return out


def _meta_state_dict(configurator, config: dict) -> dict:
    with torch.device("meta"):
        model = configurator.from_config(config)
    return model.state_dict()


def checkpoint_keys(cfg: SizeConfig) -> dict[str, tuple[int, ...]]:
    """Key -> shape of the single-file LTX checkpoint, from ltx-core's constructors."""
    install_patches(cfg)
    keys: dict[str, tuple[int, ...]] = {}
    for what, configurator, sd_ops, prefixes in _component_specs():
        for k, shape in _map_keys(
            _meta_state_dict(configurator, cfg.checkpoint_config), prefixes, sd_ops, what
        ).items():
            if k in keys and keys[k] != shape:
                raise RuntimeError(f"{k}: two components disagree on its shape ({keys[k]} vs {shape})")
            keys[k] = shape
    latent = cfg.video_latent_channels
    for name in EXTRA_VAE_STAT_KEYS:
        keys[f"vae.per_channel_statistics.{name}"] = (latent,)
    return keys


def fp8_quantized_keys(cfg: SizeConfig) -> set[str]:
    """Checkpoint keys of the Linear weights ltx-core's FP8 path converts (FP8_PREPARE_MODULE_OPS on the meta
    transformer; layout of ltx-2-19b-distilled-fp8.safetensors)."""
    from ltx_core.model.transformer import LTXModelConfigurator
    from ltx_core.quantization.fp8_scaled_mm import FP8_PREPARE_MODULE_OPS, FP8Linear

    with torch.device("meta"):
        model = LTXModelConfigurator.from_config(cfg.checkpoint_config)
        model = FP8_PREPARE_MODULE_OPS.mutator(model)
    return {
        f"model.diffusion_model.{name}.weight"
        for name, module in model.named_modules()
        if isinstance(module, FP8Linear)
    }


def upsampler_keys(cfg: SizeConfig) -> dict[str, tuple[int, ...]]:
    from ltx_core.model.upsampler import LatentUpsamplerConfigurator

    sd = _meta_state_dict(LatentUpsamplerConfigurator, cfg.upsampler_config)
    return {k: tuple(v.shape) for k, v in sd.items()}


def gemma_keys(cfg: SizeConfig) -> dict[str, tuple[int, ...]]:
    """Key -> shape in the HF Gemma-3 folder layout (`language_model.model.*`, `vision_tower.*`,
    `multi_modal_projector.*`), from ltx-core's GemmaTextEncoderConfigurator (+ GEMMA_MODEL_OPS)."""
    install_patches(cfg)
    from ltx_core.text_encoders.gemma import GEMMA_LLM_KEY_OPS, GemmaTextEncoderConfigurator

    sd = GemmaTextEncoderConfigurator.from_config({}).state_dict()
    prefixes = [
        ("model.model.language_model.", "language_model.model."),
        ("model.model.vision_tower.", "vision_tower."),
        ("model.model.multi_modal_projector.", "multi_modal_projector."),
        ("model.lm_head.", None),  # tied to embed_tokens by GEMMA_LLM_KEY_OPS
    ]
    return _map_keys(sd, prefixes, GEMMA_LLM_KEY_OPS, "gemma")


def file_dtype(key: str, size: str, fp8_keys: set[str]) -> torch.dtype:
    if size == "tiny":
        return torch.float32
    if key in fp8_keys:
        return torch.float8_e4m3fn
    # The real combined file stores the audio VAE and vocoder in F32, the rest in BF16 (§7.3).
    if key.startswith(("audio_vae.", "vocoder.")):
        return torch.float32
    return torch.bfloat16


# ----------------------------------------------------------------------------------------------------------------
# Random tensors


def _key_seed(key: str, seed: int) -> int:
    return (int.from_bytes(hashlib.sha256(key.encode()).digest()[:6], "little") + seed) % (2**62)


def random_tensor(key: str, shape, dtype: torch.dtype, device: torch.device, seed: int = 0) -> torch.Tensor:
    """A deterministic random tensor for `key`, with a scale that keeps activations finite (weights ~ N(0, 1/fan_in),
    norm weights ~ 1, VAE std statistics positive). Generated in float32 on `device`, then cast."""
    gen = torch.Generator(device=device).manual_seed(_key_seed(key, seed))
    shape = tuple(shape)
    name = key.rsplit(".", 1)[-1]
    gemma = key.startswith(("language_model.", "vision_tower.", "multi_modal_projector."))
    if name in ("std-of-means", "mean-of-stds", "mean-of-stds_over_std-of-means", "channel"):
        t = torch.rand(shape, generator=gen, device=device) + 0.5
    elif name == "mean-of-means":
        t = torch.randn(shape, generator=gen, device=device) * 0.1
    elif len(shape) >= 2:
        fan_in = math.prod(shape[1:])
        t = torch.randn(shape, generator=gen, device=device) * (1.0 / math.sqrt(max(fan_in, 1)))
    elif name == "weight" and len(shape) == 1 and not gemma:
        t = 1.0 + 0.02 * torch.randn(shape, generator=gen, device=device)  # affine norms multiply by weight
    else:
        t = 0.02 * torch.randn(shape, generator=gen, device=device)  # biases, tables, Gemma's (1 + w) norms
    return t.to(dtype)


def quantize_fp8(w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-tensor e4m3 quantization as in the official FP8 file: w ~= q.float() * weight_scale."""
    scale = (w.float().abs().amax() / 448.0).clamp(min=1e-12)
    q = (w.float() / scale).clamp(-448.0, 448.0).to(torch.float8_e4m3fn)
    return q, scale.reshape(()).float()


class RandomStateDictLoader:
    """ltx-core StateDictLoader that generates the tensors of a virtual safetensors file instead of reading one.

    `files` maps a path (as the builder passes it) to (config or None, {key: shape}). Tensors are produced in
    `dtype` directly on the load device, then go through the builder's SDOps exactly like file tensors."""

    def __init__(self, files: dict[str, tuple[dict | None, dict]], dtype: torch.dtype, seed: int = 0):
        self.files = files
        self.dtype = dtype
        self.seed = seed

    def metadata(self, path: str) -> dict:
        config, _ = self.files[path]
        return config or {}

    def load(self, path, sd_ops=None, device: torch.device | None = None):
        from ltx_core.loader.primitives import StateDict

        device = device or torch.device("cpu")
        sd, size, dtypes = {}, 0, set()
        for shard in path if isinstance(path, list) else [path]:
            _, keys = self.files[shard]
            for name, shape in keys.items():
                expected = name if sd_ops is None else sd_ops.apply_to_key(name)
                if expected is None:
                    continue
                value = random_tensor(name, shape, self.dtype, device, self.seed)
                pairs = ((expected, value),) if sd_ops is None else sd_ops.apply_to_key_value(expected, value)
                for k, v in pairs:
                    size += v.nbytes
                    dtypes.add(v.dtype)
                    sd[k] = v
        return StateDict(sd=sd, device=device, size=size, dtype=dtypes)


def write_gemma_assets(cfg: SizeConfig, folder: Path) -> None:
    """config.json + tokenizer/processor files of a Gemma folder (no weights)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps(cfg.gemma_config, indent=2))
    for name in GEMMA_ASSET_FILES:
        shutil.copyfile(GOLDEN_WEIGHTS / "gemma" / name, folder / name)


RANDOM_CHECKPOINT = "random://ltx2/model.safetensors"
RANDOM_UPSAMPLER = "random://ltx2/upsampler.safetensors"
RANDOM_GEMMA = "random://ltx2/gemma/model.safetensors"


def random_loader(cfg: SizeConfig, dtype: torch.dtype, seed: int = 0) -> RandomStateDictLoader:
    files = {
        RANDOM_CHECKPOINT: (cfg.checkpoint_config, checkpoint_keys(cfg)),
        RANDOM_UPSAMPLER: (cfg.upsampler_config, upsampler_keys(cfg)),
        RANDOM_GEMMA: (None, gemma_keys(cfg)),
    }
    return RandomStateDictLoader(files, dtype=dtype, seed=seed)


def replace_loader(builder, loader):
    return replace(builder, model_loader=loader)
