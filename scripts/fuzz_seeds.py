#!/usr/bin/env python3
"""Seed corpora for the fuzz targets (fuzz/fuzz_targets), taken from what the tests send.

Writes OUT/<target>/<name> for request_body, image_decode, audio_decode, mp4_decode and
safetensors_header: the request bodies of the server tests (valid and each invalid class), the media the tests
decode (PNG/JPEG/WebP, WAV in every PCM layout, FLAC, OGG/Vorbis, MP3, AAC in MP4, the
crafted headers of the bounded-decoding tests) and the safetensors headers of the golden
checkpoints (with their real `config` metadata and key lists, data shrunk away). Media other
than PNG and WAV are made with ffmpeg when it is installed (the tests need it anyway).

Usage: scripts/fuzz_seeds.py OUT
"""

import base64
import json
import math
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import zlib

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def write(out, target, name, data):
    d = os.path.join(out, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())


def png(w, h, claim=None):
    raw = b"".join(b"\x00" + bytes((x * 7 + y * 3) & 255 for x in range(w * 3)) for y in range(h))

    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    cw, ch = claim or (w, h)
    ihdr = struct.pack(">IIBBBBB", cw, ch, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")


def wav(rate, channels, frames, bits=16, claim=None, fmt_tag=1):
    width = bits // 8
    data = bytearray()
    for i in range(frames):
        v = math.sin(i * 0.05)
        for _ in range(channels):
            if fmt_tag == 3:
                data += struct.pack("<f" if bits == 32 else "<d", v * 0.5)
            elif bits == 8:
                data += bytes([int(128 + v * 100)])
            else:
                data += int(v * (2 ** (bits - 2))).to_bytes(width, "little", signed=True)
    n = claim if claim is not None else len(data)
    fmt = struct.pack("<HHIIHH", fmt_tag, channels, rate, rate * channels * width, channels * width, bits)
    return b"RIFF" + struct.pack("<I", min(n + 36, 0xFFFFFFFF)) + b"WAVEfmt " + struct.pack("<I", 16) + fmt + b"data" + struct.pack("<I", n) + bytes(data)


def ffmpeg(args, suffix):
    if not shutil.which("ffmpeg"):
        return None
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "out" + suffix)
        r = subprocess.run(["ffmpeg", "-hide_banner", "-loglevel", "error", "-y"] + args + [path])
        if r.returncode != 0:
            return None
        with open(path, "rb") as f:
            return f.read()


def image_seeds(out):
    imgs = {
        "png_16x16": png(16, 16),
        "png_1x1": png(1, 1),
        "png_claims_100000": png(8, 8, (100000, 100000)),
        "png_claims_8192": png(8, 8, (8192, 8192)),
    }
    src = ["-f", "lavfi", "-i", "testsrc=size=24x16:rate=1", "-frames:v", "1"]
    for name, args, suffix in [
        ("jpeg", [], ".jpg"),
        ("jpeg_progressive", ["-c:v", "mjpeg", "-q:v", "5"], ".jpg"),
        ("webp_lossless", ["-c:v", "libwebp", "-lossless", "1"], ".webp"),
        ("webp_lossy", ["-c:v", "libwebp"], ".webp"),
        ("png_rgba", ["-pix_fmt", "rgba"], ".png"),
        ("png_gray16", ["-pix_fmt", "gray16be"], ".png"),
    ]:
        data = ffmpeg(src + args, suffix)
        if data:
            imgs[name] = data
    for name, data in imgs.items():
        # Mode byte: even = raw bytes, odd = a request field (data URI or bare base64).
        write(out, "image_decode", name, b"\x00" + data)
        write(out, "image_decode", name + "_datauri", b"\x01data:image/png;base64," + base64.b64encode(data))
    write(out, "image_decode", "bare_base64", b"\x01" + base64.b64encode(imgs["png_16x16"]))


def audio_seeds(out):
    clips = {
        "wav_s16_mono_16k": wav(16000, 1, 800),
        "wav_u8_mono_8k": wav(8000, 1, 400, bits=8),
        "wav_s24_stereo_44k1": wav(44100, 2, 600, bits=24),
        "wav_s32_mono_48k": wav(48000, 1, 600, bits=32),
        "wav_f32_stereo_22k05": wav(22050, 2, 500, bits=32, fmt_tag=3),
        "wav_f64_mono_96k": wav(96000, 1, 500, bits=64, fmt_tag=3),
        "wav_6ch": wav(24000, 6, 200),
        "wav_claims_4gb": wav(16000, 1, 100, claim=0x7FFFFFF0),
        "wav_44101hz": wav(44101, 1, 400),
    }
    with open(os.path.join(ROOT, "crates/ltx2-pipeline/tests/fixtures/tone.m4a"), "rb") as f:
        clips["m4a_tone_fixture"] = f.read()
    src = ["-f", "lavfi", "-i", "sine=frequency=440:duration=0.1", "-ac", "1", "-ar", "16000"]
    for name, args, suffix in [
        ("flac", [], ".flac"),
        ("ogg_vorbis", ["-c:a", "libvorbis"], ".ogg"),
        ("mp3", ["-c:a", "libmp3lame", "-b:a", "32k"], ".mp3"),
        ("m4a_aac", ["-c:a", "aac", "-b:a", "32k"], ".m4a"),
        ("wav_adpcm_ima", ["-c:a", "adpcm_ima_wav"], ".wav"),
        ("wav_adpcm_ms", ["-c:a", "adpcm_ms"], ".wav"),
    ]:
        data = ffmpeg(src + args, suffix)
        if data:
            clips[name] = data
    for name, data in clips.items():
        write(out, "audio_decode", name, data)


def video_seeds(out):
    lavfi = ["-f", "lavfi", "-i", "testsrc2=size=64x48:rate=24"]
    tone = ["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100"]
    for name, args in [
        ("x264_high_bframes_aac", lavfi + tone + ["-t", "0.5", "-c:v", "libx264", "-profile:v", "high", "-bf", "2", "-pix_fmt", "yuv420p", "-c:a", "aac"]),
        ("x264_baseline", lavfi + ["-t", "0.3", "-c:v", "libx264", "-profile:v", "baseline", "-pix_fmt", "yuv420p"]),
        ("x264_rotated", lavfi + ["-t", "0.3", "-c:v", "libx264", "-pix_fmt", "yuv420p", "-metadata:s:v:0", "rotate=90"]),
        ("x264_fragmented", lavfi + ["-t", "0.3", "-c:v", "libx264", "-pix_fmt", "yuv420p", "-movflags", "frag_keyframe+empty_moov"]),
        ("mpeg4_part2", lavfi + ["-t", "0.2", "-c:v", "mpeg4"]),
    ]:
        data = ffmpeg(args, ".mp4")
        if data:
            write(out, "mp4_decode", name, data)


def request_seeds(out):
    tiny_png = "data:image/png;base64," + base64.b64encode(png(16, 16)).decode()
    tiny_wav = "data:audio/wav;base64," + base64.b64encode(wav(16000, 1, 8000)).decode()
    small = {"prompt": "x", "width": 64, "height": 64, "num_frames": 9}
    bodies = {
        "spec_quickstart": {"prompt": "A cat sitting calmly on a cushion", "width": 288, "height": 512},
        "all_fields": {
            "prompt": "x", "negative_prompt": "ugly", "width": 64, "height": 96, "num_frames": 17,
            "fps": 24, "guidance_scale": 1.0, "num_inference_steps": 3, "seed": 42,
            "include_audio": False, "image_start": tiny_png, "image_end": tiny_png,
            "image_strength": 0.5, "audio": tiny_wav, "audio_strength": 0.4, "colour": "blue",
        },
        "with_audio": dict(small, audio=tiny_wav),
        "with_image": dict(small, image_start=tiny_png),
        "float_ints": {"prompt": "x", "width": 288.0, "seed": 0, "negative_prompt": None},
        "width_300": dict(small, width=300),
        "frames_48": dict(small, num_frames=48),
        "wrong_types": {"prompt": ["a"], "width": "288", "include_audio": 1},
        "negative_seed": dict(small, seed=-5),
        "huge_seed": dict(small, seed=1e300),
        "bad_base64": dict(small, image_start="%%%not base64%%%"),
        "auto": dict(small, num_frames="auto"),
        "auto_bounds": dict(small, num_frames="auto", min_duration_seconds=2, max_duration_seconds=5.5),
        "auto_bad_bounds": dict(small, num_frames="auto", min_duration_seconds=10, max_duration_seconds=1),
        "auto_huge": dict(small, num_frames="auto", fps=1, max_duration_seconds=1e30),
        "loras": dict(small, loras=[{"name": "2.0-a", "strength": 0.8}, {"name": "2.3-b.safetensors"}]),
        "loras_escape": dict(small, loras=[{"name": "../loras/2.0-a", "strength": 1}]),
        "loras_twice": dict(small, loras=[{"name": "2.0-a"}, {"name": "2.0-a.safetensors"}]),
        "loras_strength": dict(small, loras=[{"name": "2.0-a", "strength": 1e9}]),
        "not_an_object": "just a string",
        "array": [1, 2],
    }
    with open(os.path.join(ROOT, "test_input.json")) as f:
        bodies["runpod_test_input"] = json.load(f)["input"]
    for name, body in bodies.items():
        write(out, "request_body", name, json.dumps(body))
    write(out, "request_body", "nan", '{"prompt": "x", "guidance_scale": NaN}')
    write(out, "request_body", "nested", '{"prompt": "x", "extra": ' + "[" * 64 + "]" * 64 + "}")


def safetensors(header, data=b""):
    text = json.dumps(header, separators=(",", ":")).encode()
    return struct.pack("<Q", len(text)) + text + data


def safetensors_seeds(out):
    for rel in ["testdata/golden/weights/model.safetensors",
                "testdata/golden/weights/upsampler.safetensors",
                "testdata/golden-2.3/weights/model.safetensors",
                "testdata/golden-2.3/weights/upsampler.safetensors"]:
        path = os.path.join(ROOT, rel)
        if not os.path.exists(path):
            continue
        with open(path, "rb") as f:
            n = struct.unpack("<Q", f.read(8))[0]
            header = json.loads(f.read(n))
        meta = header.pop("__metadata__", {})
        tag = rel.split("/")[1] + "_" + os.path.basename(rel).split(".")[0]
        # The real config and key list, every tensor emptied so the file stays small and valid.
        empty = {k: {"dtype": v["dtype"], "shape": [0], "data_offsets": [0, 0]} for k, v in header.items()}
        write(out, "safetensors_header", tag + "_keys", safetensors(dict(empty, __metadata__=meta)))
        write(out, "safetensors_header", tag + "_metadata", safetensors({"__metadata__": meta}))
    one = {"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}
    write(out, "safetensors_header", "one_tensor", safetensors(one, b"\0" * 8))
    for rel in ["testdata/golden/scheduler.safetensors", "testdata/golden/tokenizer.safetensors"]:
        with open(os.path.join(ROOT, rel), "rb") as f:
            write(out, "safetensors_header", os.path.basename(rel), f.read())


def main():
    out = sys.argv[1]
    request_seeds(out)
    image_seeds(out)
    audio_seeds(out)
    video_seeds(out)
    safetensors_seeds(out)
    for t in sorted(os.listdir(out)):
        print(f"{t}: {len(os.listdir(os.path.join(out, t)))} seeds")


if __name__ == "__main__":
    main()
