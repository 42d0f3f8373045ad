"""The two shape sets. ``shared`` is committed (testdata/golden-pipelines, seed 0); ``holdout`` differs in every
dimension a test could silently depend on (frames, sizes, aspect, fps, audio length and rate, steps, strengths, keyframe
frames, retake span, audio start, prompts) and is generated on demand (``make.sh --seed 1 --shapes holdout``).

Constraints: frames = 8k + 1; one-stage sizes multiples of 32 and at least 64 (the 2.0 decoder reflect-pads its 1-pixel
borders, which needs two latent pixels), two-stage multiples of 64 (stage 1 runs at half size);
IC-LoRA sizes multiples of 128 (the reference is loaded at stage-1 size / reference_downscale_factor 2). Retake spans
stay away from token boundaries (the pipeline compares float32 token times with them, so a tie would be a coin toss).
"""

SHAPE_SETS = {
    "shared": {
        "lora_fusion": {"frames": 9, "height": 64, "width": 96, "fps": 24.0, "sigma": 0.7,
                        "strength_one": 0.8, "strength_stack": (0.6, 1.3), "strength_fp8": 0.8},
        "dev_two_stage": {"frames": 9, "height": 128, "width": 128, "fps": 24.0, "steps": 3, "user_lora": 0.7,
                          "distilled_lora": 0.8,
                          "prompt": "A red fox runs across a snowy field at dawn, the camera pans left as birds sing."},
        "ic_lora": {"frames": 9, "height": 128, "width": 128, "fps": 24.0, "ic_lora": 1.0, "control_frames": 12,
                    "control_size": (36, 40), "control_strength": 1.0, "attention_strength": 1.0, "skip_stage_2": False,
                    "prompt": "The dancer spins around an empty stage under soft light while the music grows louder."},
        "ic_lora_attn": {"frames": 9, "height": 128, "width": 128, "fps": 24.0, "ic_lora": 0.9, "control_frames": 9,
                         "control_size": (32, 40), "control_strength": 0.8, "attention_strength": 0.5, "skip_stage_2": True,
                         "pixels": True,
                         "prompt": "A small robot rolls along the kitchen floor in a close-up shot."},
        "keyframes": {"frames": 17, "height": 128, "width": 192, "fps": 24.0, "steps": 3, "distilled_lora": 1.0,
                      # (pixel frame, strength, source image (height, width)); frame 11 is not a multiple of 8
                      "keyframes": [(0, 1.0, (48, 72)), (11, 0.8, (40, 64)), (16, 0.9, (56, 80))],
                      "prompt": "The old lighthouse glows above the rocky coast at sunset as waves crash against the wall."},
        "retake": {"frames": 17, "height": 64, "width": 64, "fps": 48.0, "steps": 3, "span": (0.05, 0.15), "audio_sr": 16000,
                   "audio_extra_seconds": 0.1,
                   "prompt": "Heavy rain falls on the tin roof and a bell rings twice in the distance."},
        "a2v": {"frames": 9, "height": 128, "width": 128, "fps": 24.0, "steps": 3, "distilled_lora": 1.0, "audio_sr": 24000,
                "audio_seconds": 0.8, "start_time": 0.25,
                "prompt": "The violinist plays near the calm sea while the crowd cheers in the busy square."},
    },
    "holdout": {
        "lora_fusion": {"frames": 17, "height": 64, "width": 128, "fps": 30.0, "sigma": 0.45,
                        "strength_one": 1.2, "strength_stack": (0.9, -0.7), "strength_fp8": 0.6},
        "dev_two_stage": {"frames": 17, "height": 128, "width": 192, "fps": 30.0, "steps": 2, "user_lora": 1.0,
                          "distilled_lora": 0.6,
                          "prompt": "A paper boat drifts down a rain gutter while thunder rumbles far away."},
        "ic_lora": {"frames": 17, "height": 128, "width": 256, "fps": 25.0, "ic_lora": 0.8, "control_frames": 20,
                    "control_size": (48, 80), "control_strength": 0.9, "attention_strength": 1.0, "skip_stage_2": False,
                    "prompt": "Slow dolly shot of a baker pulling bread from a stone oven, crackling crust."},
        "ic_lora_attn": {"frames": 17, "height": 128, "width": 256, "fps": 25.0, "ic_lora": 1.1, "control_frames": 17,
                         "control_size": (40, 72), "control_strength": 1.0, "attention_strength": 0.3, "skip_stage_2": True,
                         "pixels": True,
                         "prompt": "Wind in the reeds, a heron lands and the water ripples quietly."},
        "keyframes": {"frames": 25, "height": 128, "width": 128, "fps": 25.0, "steps": 2, "distilled_lora": 0.7,
                      "keyframes": [(0, 0.9, (96, 72)), (13, 1.0, (64, 64)), (21, 0.6, (120, 100))],
                      "prompt": "A lighthouse keeper climbs the spiral stairs at night while the storm shakes the windows."},
        "retake": {"frames": 25, "height": 96, "width": 64, "fps": 30.0, "steps": 2, "span": (0.31, 0.55), "audio_sr": 24000,
                   "audio_extra_seconds": 0.05,
                   "prompt": "Gulls cry over the harbor as fishing boats rock and ropes creak."},
        "a2v": {"frames": 17, "height": 128, "width": 192, "fps": 30.0, "steps": 2, "distilled_lora": 0.7, "audio_sr": 16000,
                "audio_seconds": 1.2, "start_time": 0.4,
                "prompt": "A kettle whistles in a warm kitchen and a dog shakes water from its fur beside the door."},
    },
}
