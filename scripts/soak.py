#!/usr/bin/env python3
"""Soak test: the real `ltx2 serve --model demo` on 127.0.0.1 under a bounded mix of traffic.

For MINUTES, WORKERS client threads (default 4) send, each in turn, one of: good synchronous
generations (some with image/audio conditioning, some larger so the queue fills), invalid bodies
of every class, bodies over the size limit, requests without or with a wrong API key, clients
that disconnect or time out mid-request, async jobs that are polled to the end or cancelled with
DELETE (some followed over server-sent events), and health/metrics reads. The server runs with a
small queue (4) and a 2 s request timeout (a job takes 0.1-1.5 s on a CPU), so 429s and 504s
happen too.

Checks, at the end:
- none lost: every request that was not deliberately abandoned got an HTTP answer; every async
  job accepted (202) reached a terminal state, `cancelled` when cancelled before it finished;
- nothing left behind: after the load stops, /health shows no pending job;
- resident memory stays bounded: sampled every 5 s; after a warm-up (60 s), the peak of the
  second half of the run stays within 10 % + 16 MiB of the first half's, and under 1 GiB;
- SIGTERM while requests are in flight: they are all answered, then the process exits 0;
- a DELETE /jobs/{id} answered 202 ends that job `cancelled` (200: it had finished, and is gone);
- the server log (SOAK_LOG, default /tmp/ltx2-soak-server.log) shows no panic.

Only 127.0.0.1 is used: the server binds it and every connection goes to it.

Usage: scripts/soak.py [--minutes 10] [--workers 4] [--binary target/debug/ltx2] [--json OUT]
Prints a report (requests by kind and outcome, jobs, memory start/max/end, the checks) and exits
non-zero when a check fails.
"""

import argparse
import base64
import collections
import http.client
import json
import math
import os
import random
import secrets
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
import zlib

HOST = "127.0.0.1"


def free_port():
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def png(w, h):
    raw = b"".join(b"\x00" + bytes((x * 5 + y) & 255 for x in range(w * 3)) for y in range(h))

    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def wav(rate, frames, claim=None):
    data = b"".join(struct.pack("<h", int(8000 * math.sin(i * 0.05))) for i in range(frames))
    n = claim if claim is not None else len(data)
    return (b"RIFF" + struct.pack("<I", min(n + 36, 0xFFFFFFFF)) + b"WAVEfmt "
            + struct.pack("<IHHIIHH", 16, 1, 1, rate, rate * 2, 2, 16)
            + b"data" + struct.pack("<I", n) + data)


def uri(mime, data):
    return f"data:{mime};base64," + base64.b64encode(data).decode()


SMALL = {"prompt": "a cat", "width": 64, "height": 64, "num_frames": 9}
LARGE = {"prompt": "a dog", "width": 128, "height": 128, "num_frames": 17}
IMAGE = uri("image/png", png(32, 32))
AUDIO = uri("audio/wav", wav(16000, 8000))
INVALID = [
    {"width": 64},
    {"prompt": ""},
    dict(SMALL, width=300),
    dict(SMALL, num_frames=48),
    dict(SMALL, fps=0),
    dict(SMALL, seed=-1),
    dict(SMALL, image_start="%%%"),
    dict(SMALL, image_start=uri("image/png", b"not an image")),
    dict(SMALL, audio=uri("audio/wav", wav(16000, 100, claim=0x7FFFFFF0))),
    dict(SMALL, audio=uri("audio/wav", wav(44101, 4000))),
    "not an object",
]


class Stats:
    def __init__(self):
        self.lock = threading.Lock()
        self.outcomes = collections.Counter()
        self.lost = []
        self.jobs = {}  # id -> dict(cancel=bool, final=str|None)

    def add(self, kind, outcome):
        with self.lock:
            self.outcomes[(kind, str(outcome))] += 1

    def lose(self, kind, detail):
        with self.lock:
            self.lost.append(f"{kind}: {detail}")
            self.outcomes[(kind, "LOST")] += 1


class Client:
    def __init__(self, port, key, stats, timeout):
        self.port, self.key, self.stats, self.timeout = port, key, stats, timeout

    def request(self, method, path, body=None, key=True, timeout=None, raw=None, ctype="application/json"):
        conn = http.client.HTTPConnection(HOST, self.port, timeout=timeout or self.timeout)
        try:
            headers = {}
            if key:
                headers["Authorization"] = f"Bearer {self.key if key is True else key}"
            data = None
            if raw is not None:
                data = raw
            elif body is not None:
                data = json.dumps(body).encode()
            if data is not None:
                headers["Content-Type"] = ctype
            conn.request(method, path, body=data, headers=headers)
            r = conn.getresponse()
            payload = r.read()
            return r.status, payload
        finally:
            conn.close()

    def json(self, method, path, body=None, **kw):
        status, payload = self.request(method, path, body, **kw)
        try:
            return status, json.loads(payload) if payload else None
        except ValueError:
            return status, None


def sync_generate(c, kind, body):
    try:
        status, r = c.json("POST", "/generate", body)
    except Exception as e:  # no answer to a request we waited for: lost
        c.stats.lose(kind, repr(e))
        return
    if status == 200 and not (r and str(r.get("video", "")).startswith("data:video/mp4;base64,")):
        c.stats.lose(kind, "200 without a video")
        return
    if status >= 400 and not (r and "error" in r and "request_id" in r):
        c.stats.lose(kind, f"{status} without the error shape: {r}")
        return
    c.stats.add(kind, status)


def abandon(c, kind, after):
    """Sends a good request and hangs up after `after` seconds without reading the answer."""
    s = socket.create_connection((HOST, c.port))
    body = json.dumps(LARGE).encode()
    s.sendall(b"POST /generate HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
              + f"Authorization: Bearer {c.key}\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body)
    time.sleep(after)
    s.close()
    c.stats.add(kind, "abandoned")


def client_timeout(c, kind):
    try:
        c.request("POST", "/generate", LARGE, timeout=0.5)
        c.stats.add(kind, "answered before the client timeout")
    except (socket.timeout, TimeoutError):
        c.stats.add(kind, "client timed out")
    except Exception as e:
        c.stats.lose(kind, repr(e))


def oversized(c, kind, limit):
    conn = http.client.HTTPConnection(HOST, c.port, timeout=c.timeout)
    body = b'{"prompt": "' + b"x" * (limit + 1024) + b'"}'
    try:
        conn.putrequest("POST", "/generate")
        conn.putheader("Content-Type", "application/json")
        conn.putheader("Authorization", f"Bearer {c.key}")
        conn.putheader("Content-Length", str(len(body)))
        conn.endheaders()
        try:
            conn.send(body)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server answered before reading it all
        r = conn.getresponse()
        r.read()
        c.stats.add(kind, r.status)
    except (BrokenPipeError, ConnectionResetError) as e:
        c.stats.add(kind, "closed before an answer was read")
    except Exception as e:
        c.stats.lose(kind, repr(e))
    finally:
        conn.close()


def async_job(c, kind, cancel, follow_events):
    try:
        status, r = c.json("POST", "/jobs", SMALL if not cancel else LARGE)
    except Exception as e:
        c.stats.lose(kind, repr(e))
        return
    if status != 202:
        c.stats.add(kind, f"submit {status}")
        return
    jid = r["id"]
    with c.stats.lock:
        c.stats.jobs[jid] = {"cancel": cancel, "final": None}
    if follow_events:
        try:
            conn = http.client.HTTPConnection(HOST, c.port, timeout=c.timeout)
            conn.request("GET", f"/jobs/{jid}/events", headers={"Authorization": f"Bearer {c.key}"})
            resp = conn.getresponse()
            resp.readline()
            conn.close()  # hang up mid-stream
        except Exception:
            pass
    if cancel:
        time.sleep(random.uniform(0, 1.5))
        try:
            ds, dv = c.json("DELETE", f"/jobs/{jid}")
        except Exception as e:
            c.stats.lose(kind, f"DELETE {jid}: {e!r}")
            return
        with c.stats.lock:
            c.stats.jobs[jid]["delete"] = ds
        if ds == 200:
            # It had finished before the DELETE, which forgot it (and its result): its final
            # state is the one the answer shows, and the job is gone from now on.
            final = dv["status"] if dv else None
            if final not in ("succeeded", "failed", "cancelled"):
                c.stats.lose(kind, f"DELETE {jid} answered 200 for an unfinished job: {dv}")
                return
            with c.stats.lock:
                c.stats.jobs[jid]["final"] = final
            c.stats.add(kind, f"{final} before the DELETE")
            return
        if ds != 202:
            c.stats.lose(kind, f"DELETE {jid} answered {ds}: {dv}")
            return
    deadline = time.time() + 600
    while time.time() < deadline:
        try:
            status, v = c.json("GET", f"/jobs/{jid}")
        except Exception:
            time.sleep(0.5)
            continue
        if status == 200 and v["status"] in ("succeeded", "failed", "cancelled"):
            with c.stats.lock:
                c.stats.jobs[jid]["final"] = v["status"]
            c.stats.add(kind, v["status"])
            if v["status"] == "succeeded":
                s2, mp4 = c.request("GET", f"/jobs/{jid}/result")
                if s2 != 200 or not mp4[4:8] == b"ftyp":
                    c.stats.lose(kind, f"{jid} succeeded but /result gave {s2}")
            return
        if status == 404:
            c.stats.lose(kind, f"{jid} disappeared before finishing")
            return
        time.sleep(0.3)
    c.stats.lose(kind, f"{jid} never finished")


def worker(c, stop, limit, rng):
    mix = [
        (20, lambda: sync_generate(c, "generate", SMALL)),
        (6, lambda: sync_generate(c, "generate_large", LARGE)),
        (5, lambda: sync_generate(c, "generate_image", dict(SMALL, image_start=IMAGE))),
        (5, lambda: sync_generate(c, "generate_audio", dict(SMALL, audio=AUDIO))),
        (15, lambda: sync_generate(c, "invalid", rng.choice(INVALID))),
        (4, lambda: oversized(c, "oversized", limit)),
        (4, lambda: c.stats.add("no_key", c.request("GET", "/", key=False)[0])),
        (3, lambda: c.stats.add("wrong_key", c.request("POST", "/generate", SMALL, key="wrong")[0])),
        (5, lambda: abandon(c, "disconnect", rng.uniform(0.05, 2.0))),
        (4, lambda: client_timeout(c, "client_timeout")),
        (8, lambda: async_job(c, "job", cancel=False, follow_events=rng.random() < 0.5)),
        (8, lambda: async_job(c, "job_cancelled", cancel=True, follow_events=False)),
        (6, lambda: c.stats.add("health", c.request("GET", "/health", key=False)[0])),
        (3, lambda: c.stats.add("metrics", c.request("GET", "/metrics")[0])),
    ]
    weights = [w for w, _ in mix]
    while not stop.is_set():
        action = rng.choices(mix, weights)[0][1]
        try:
            action()
        except Exception as e:  # a bug in the soak itself must not go unnoticed
            c.stats.lose("soak", repr(e))
        time.sleep(rng.uniform(0.0, 0.3))


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--minutes", type=float, default=10)
    p.add_argument("--workers", type=int, default=4)
    p.add_argument("--binary", default="target/debug/ltx2")
    p.add_argument("--json")
    p.add_argument("--seed", type=int, default=1)
    args = p.parse_args()
    port = free_port()
    key = secrets.token_hex(16)
    limit = 1 << 20
    log_path = os.environ.get("SOAK_LOG", "/tmp/ltx2-soak-server.log")
    env = dict(os.environ, LTX2_API_KEYS=key, RUST_LOG="info")
    cmd = [args.binary, "serve", "--model", "demo", "--host", HOST, "--port", str(port),
           "--queue-capacity", "4", "--request-timeout-secs", "2", "--max-body-bytes", str(limit),
           "--max-jobs", "64", "--job-ttl-secs", "600"]
    log = open(log_path, "w")
    server = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
    stats = Stats()
    c = Client(port, key, stats, timeout=120)
    deadline = time.time() + 120
    while True:
        try:
            if c.request("GET", "/health", key=False)[0] == 200:
                break
        except OSError:
            pass
        if time.time() > deadline or server.poll() is not None:
            sys.exit("the server did not start; see " + log_path)
        time.sleep(0.2)
    started = time.time()
    samples = [(0.0, rss_kib(server.pid))]
    stop = threading.Event()
    threads = [threading.Thread(target=worker, args=(Client(port, key, stats, 120), stop, limit, random.Random(args.seed + i)))
               for i in range(args.workers)]
    for t in threads:
        t.start()
    end = started + args.minutes * 60
    while time.time() < end:
        time.sleep(5)
        samples.append((time.time() - started, rss_kib(server.pid)))
        if server.poll() is not None:
            stats.lose("server", f"exited with {server.returncode} during the run")
            break
    stop.set()
    for t in threads:
        t.join(timeout=900)

    # Drained: no job left pending.
    deadline = time.time() + 300
    while time.time() < deadline:
        _, h = c.json("GET", "/health", key=False)
        if h["pending"] == 0 and not h["busy"]:
            break
        time.sleep(0.5)
    health_after = h
    samples.append((time.time() - started, rss_kib(server.pid)))

    # SIGTERM with requests in flight: each must still be answered.
    inflight = []
    answers = []

    def one():
        try:
            answers.append(c.request("POST", "/generate", SMALL, timeout=300)[0])
        except Exception as e:
            answers.append(repr(e))

    for _ in range(3):
        t = threading.Thread(target=one)
        t.start()
        inflight.append(t)
    deadline = time.time() + 30
    while time.time() < deadline and c.json("GET", "/health", key=False)[1]["pending"] < len(inflight):
        time.sleep(0.05)
    server.send_signal(signal.SIGTERM)
    for t in inflight:
        t.join(timeout=300)
    try:
        rc = server.wait(timeout=120)
    except subprocess.TimeoutExpired:
        server.kill()
        rc = "no exit within 120 s"
    log.close()

    with open(log_path, errors="replace") as f:
        lines = f.readlines()
    panics = [line.strip() for line in lines if "panicked" in line]
    log_levels = {lvl: sum(1 for line in lines if f" {lvl}" in line) for lvl in ("WARN", "ERROR")}

    # Memory: after a warm-up (caches, allocator arenas, the job store filling up), the peak of
    # the second half of the run must not exceed the first half's by more than 10 % + 16 MiB.
    warmup = min(60, args.minutes * 15)
    run = [(t, s) for t, s in samples if t >= warmup]
    half = warmup + (samples[-1][0] - warmup) / 2
    first_half = max((s for t, s in run if t < half), default=samples[0][1])
    second_half = max((s for t, s in run if t >= half), default=samples[-1][1])
    rss_start = run[0][1] if run else samples[0][1]
    rss_end = samples[-1][1]
    rss_max = max(s for _, s in samples)
    jobs = stats.jobs.values()
    unfinished = [j for j, v in stats.jobs.items() if v["final"] is None]
    # A DELETE answered 202 ("cancellation requested") must end the job `cancelled`, whatever
    # stage it had reached; one answered 200 had already finished and was forgotten.
    cancel_ignored = [f'{j}: {v["final"]}' for j, v in stats.jobs.items()
                      if v.get("delete") == 202 and v["final"] != "cancelled"]
    checks = {
        "no request lost": not stats.lost,
        "every accepted job finished": not unfinished,
        "every job cancelled with 202 ended cancelled": not cancel_ignored,
        "no job pending after the load": health_after["pending"] == 0,
        "in-flight requests answered at SIGTERM": answers == [200] * len(inflight),
        "exit 0 after SIGTERM": rc == 0,
        "no panic in the server log": not panics,
        "resident memory bounded": second_half <= first_half * 1.1 + 16 * 1024 and rss_max < 1024 * 1024,
    }
    report = {
        "minutes": args.minutes,
        "workers": args.workers,
        "requests": sum(stats.outcomes.values()),
        "outcomes": {f"{k} -> {o}": n for (k, o), n in sorted(stats.outcomes.items())},
        "jobs": {
            "accepted": len(stats.jobs),
            "cancel_requested": sum(1 for v in jobs if v["cancel"]),
            "delete_answers": dict(collections.Counter(str(v.get("delete")) for v in jobs if v["cancel"])),
            "cancelled_with_202_but_not_cancelled": cancel_ignored[:20],
            "final": dict(collections.Counter(v["final"] for v in jobs)),
        },
        "health_after_load": health_after,
        "sigterm": {"in_flight_answers": answers, "exit": rc},
        "rss_mib": {"first": round(samples[0][1] / 1024, 1), "after_warmup": round(rss_start / 1024, 1),
                    "max": round(rss_max / 1024, 1), "end": round(rss_end / 1024, 1),
                    "max_first_half": round(first_half / 1024, 1), "max_second_half": round(second_half / 1024, 1),
                    "samples": [(round(t), round(s / 1024, 1)) for t, s in samples]},
        "lost": stats.lost[:20],
        "server_log_panics": panics[:20],
        "server_log_lines": dict(log_levels, total=len(lines)),
        "checks": checks,
    }
    print(json.dumps(report, indent=2))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=2)
    sys.exit(0 if all(checks.values()) else 1)


if __name__ == "__main__":
    main()
