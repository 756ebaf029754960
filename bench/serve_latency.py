"""Local endpoint cold start (and where its time goes), per-request latency against the in-process Predictor
baseline, and what the front (dogbreed.serving.front) adds against TorchServe's own port.

    .venv/bin/python bench/serve_latency.py [--model-dir M] [--requests 50] [--port 18080]

Without --model-dir it serves an untrained 133-breed, 224 px ResNet50 (same cost as the real model).
Everything is written to a temp dir that is removed at the end (or to --work-dir).
"""

from __future__ import annotations

import argparse
import http.client
import io
import os
import platform
import re
import statistics
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from dogbreed.core.network import build_resnet50
from dogbreed.core.transforms import Preprocessing
from dogbreed.data.demo import draw_breed_image
from dogbreed.serving.artifact import ModelConfig, save_artifact
from dogbreed.serving.local_endpoint import LocalEndpoint
from dogbreed.serving.predictor import Predictor


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines() if Path("/proc/cpuinfo").exists() else []:
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def make_model_dir(path: Path) -> Path:
    torch.manual_seed(0)
    config = ModelConfig(class_names=[f"Breed {i:03d}" for i in range(133)],
                         preprocessing=Preprocessing(image_size=224))
    return save_artifact(path, build_resnet50(133).eval(), config)


def make_jpegs(count: int) -> list[bytes]:
    rng = np.random.default_rng(0)
    images = []
    for i in range(count):
        buffer = io.BytesIO()
        draw_breed_image(i % 5, rng).resize((500, 375)).save(buffer, "JPEG", quality=90)  # dogImages-like size
        images.append(buffer.getvalue())
    return images


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q))


# Log lines that mark the cold start's phases, first occurrence, in order.
PHASES = (("JVM up (after the toolkit wrapper and the torchserve launcher)", "Initializing plugins manager"),
          ("worker Python process started", "s_name_part0"),
          ("worker asks to load the model (ts imports done)", "model_name: model"),
          ("model_fn done (handler imports, artifact, first forward)", "breeds on"),
          ("worker READY", "Backend response time"))
STAMP = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d,\d{3})")


def phase_times(log_text: str, launched_at: float) -> list[tuple[str, float, str]]:
    """(phase, seconds after launch, the log line) for each marker found in TorchServe's log."""
    found = []
    for name, marker in PHASES:
        for line in log_text.splitlines():
            match = STAMP.match(line)
            if match and marker in line and "ACCESS_LOG" not in line:
                stamp = datetime.strptime(match.group(1), "%Y-%m-%dT%H:%M:%S,%f").timestamp()
                text = line.split(" - ", 1)[-1]
                found.append((name, stamp - launched_at, text[text.find("(artifact"):] if "(artifact" in text
                              else text[:80]))
                break
    return found


def timed_posts(port: int, images: list[bytes]) -> list[float]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    latencies = []
    try:
        for image in images:
            start = time.perf_counter()
            connection.request("POST", "/invocations", body=image, headers={"Content-Type": "image/jpeg"})
            response = connection.getresponse()
            response.read()
            latencies.append((time.perf_counter() - start) * 1000)
            assert response.status == 200, response.status
    finally:
        connection.close()
    return latencies


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model-dir", type=Path)
    parser.add_argument("--requests", type=int, default=50)
    parser.add_argument("--port", type=int, default=18080)
    parser.add_argument("--work-dir", type=Path)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="serve-bench-") as scratch:
        work = args.work_dir or Path(scratch)
        model_dir = args.model_dir or make_model_dir(work / "model")
        images = make_jpegs(args.requests)

        library = Predictor.from_model_dir(model_dir, device="cpu")
        library.predict([images[0]])
        baseline = []
        for image in images:
            start = time.perf_counter()
            library.predict([image])
            baseline.append((time.perf_counter() - start) * 1000)

        endpoint = LocalEndpoint(work / "serve", model_dir=model_dir, port=args.port, workers=1)
        started = time.perf_counter()
        endpoint.start(timeout=300)
        ready = time.perf_counter() - started
        connection = http.client.HTTPConnection("127.0.0.1", args.port, timeout=60)
        try:
            connection.request("POST", "/invocations", body=images[0], headers={"Content-Type": "image/jpeg"})
            response = connection.getresponse()
            response.read()
            cold = time.perf_counter() - started
            assert response.status == 200, response.status
            latencies = timed_posts(args.port, images)
            # The front's cost: the same requests to TorchServe's own port (behind the front) and through it,
            # interleaved in rounds of 5 so load changes hit both alike.
            direct, fronted = [], []
            for i in range(0, len(images), 5):
                direct += timed_posts(args.port + 1, images[i:i + 5])
                fronted += timed_posts(args.port, images[i:i + 5])
            phases = phase_times(endpoint.log_path.read_text(errors="replace"), endpoint.launched_at)
        finally:
            connection.close()
            endpoint.stop()

    print(f"machine: {cpu_model()}, {os.cpu_count()} cores, torch {torch.__version__}, "
          f"python {platform.python_version()}, load average {os.getloadavg()[0]:.1f} at the end")
    print(f"cold start (stage model dir + launch to first 200 from /invocations): {cold:.1f} s "
          f"(all workers READY after {ready:.1f} s)")
    print(f"  checks (java -version, ports, no other TorchServe) {endpoint.timings['checks']:.2f} s, "
          f"stage model dir (load_artifact check + copy) {endpoint.timings['stage']:.2f} s, then after launch:")
    for name, seconds, line in phases:
        print(f"  +{seconds:6.2f} s  {name}: {line}")
    added = statistics.median(fronted) - statistics.median(direct)
    print(f"front: through it median {statistics.median(fronted):.1f} ms, TorchServe's own port median "
          f"{statistics.median(direct):.1f} ms: the front adds {added:+.1f} ms per request "
          f"({len(direct)} requests each, interleaved)")
    print(f"endpoint, {len(latencies)} sequential 500x375 JPEG requests: median {statistics.median(latencies):.1f} ms, "
          f"p95 {percentile(latencies, 95):.1f} ms, max {max(latencies):.1f} ms")
    print(f"baseline, in-process Predictor.predict on the same images: median {statistics.median(baseline):.1f} ms, "
          f"p95 {percentile(baseline, 95):.1f} ms")
    print(f"ratio endpoint/in-process (median): {statistics.median(latencies) / statistics.median(baseline):.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
