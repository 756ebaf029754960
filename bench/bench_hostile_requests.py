"""What the serving hardening costs and saves: 16-bit PNG decoding, a hostile batch, the weights hash at load.

1. One flat 16-bit grayscale PNG of SIDE x SIDE (36 megapixels by default) decoded by ``open_image``: the old
   float64 conversion (the baseline, re-created here) vs the lookup table, time and peak RSS growth, each in a
   fresh process so the peaks do not mix.
2. A hostile request: 16 such PNGs as JSON instances (~1.5 MB). ``input_fn`` now refuses it (413, pixel budget)
   from the headers; the old handler decoded all 16 with the float64 path (estimated: 16 x one decode).
3. Model load (``load_artifact``): the share of it spent hashing model.pth to check ``weights_sha256``.

    python bench/bench_hostile_requests.py
    python bench/bench_hostile_requests.py --smoke
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import os
import resource
import statistics
import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path

import numpy as np
from benchlib import OUT_DIR, print_machine, write_result
from PIL import Image

REPO = Path(__file__).resolve().parent.parent


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def flat_png16(side: int, value: int = 40000) -> bytes:
    row = b"\x00" + value.to_bytes(2, "big") * side
    compressor = zlib.compressobj(9)
    rows_per_chunk = max(1, min(100, side))
    body = b"".join(compressor.compress(row * rows_per_chunk) for _ in range(side // rows_per_chunk))
    body += compressor.compress(row * (side % rows_per_chunk)) + compressor.flush()
    header = struct.pack(">IIBBBBB", side, side, 16, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + _chunk(b"IDAT", body) + _chunk(b"IEND", b"")


def float64_to_l(image: Image.Image) -> Image.Image:
    """The conversion serving used before: a float64 copy of the whole image, then two more temporaries."""
    array = np.asarray(image, dtype=np.float64)
    return Image.fromarray(np.clip(array * (255.0 / 65535.0), 0, 255).astype(np.uint8), "L")


def measure_in_this_process(variant: str, side: int) -> dict[str, float]:
    from dogbreed.core import images

    if variant == "float64":
        images._sixteen_bit_to_l = float64_to_l  # type: ignore[assignment]
    data = flat_png16(side)
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.perf_counter()
    pixel = images.open_image(data, strict=True).getpixel((0, 0))
    seconds = time.perf_counter() - start
    growth_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base) / 1024
    assert pixel == (155, 155, 155), pixel
    return {"seconds": seconds, "peak_growth_mb": growth_mb}


def measure(variant: str, side: int, repeats: int) -> dict[str, float]:
    runs = []
    for _ in range(repeats):
        out = subprocess.run([sys.executable, __file__, "--measure", variant, "--side", str(side)],
                             capture_output=True, text=True, check=True, cwd=REPO)
        runs.append(json.loads(out.stdout.strip().splitlines()[-1]))
    return {key: statistics.median(run[key] for run in runs) for key in runs[0]}


def hostile_batch_refusal(side: int, repeats: int) -> float:
    from dogbreed.serving.handlers import input_fn

    image = base64.b64encode(flat_png16(side)).decode()
    body = json.dumps({"instances": [image] * 16}).encode()
    if 16 * side * side <= 80_000_000:  # smoke sizes fit the default budget: shrink it to keep the same refusal
        os.environ["DOGBREED_MAX_REQUEST_PIXELS"] = str(4 * side * side)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        try:
            input_fn(body, "application/json")
            raise AssertionError("the hostile batch was accepted")
        except Exception as exc:  # the 413 is the expected outcome; anything else propagates
            if getattr(exc, "status_code", None) != 413:
                raise
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def weights_hash_share(out: Path, repeats: int) -> dict[str, float]:
    from dogbreed.core.network import build_resnet50
    from dogbreed.core.transforms import Preprocessing
    from dogbreed.serving.artifact import ModelConfig, load_artifact, save_artifact

    model_dir = save_artifact(out / "hostile_model", build_resnet50(133),
                              ModelConfig(class_names=[f"breed {i}" for i in range(133)],
                                          preprocessing=Preprocessing(image_size=224)))
    data = (model_dir / "model.pth").read_bytes()
    hashing, loading = [], []
    for _ in range(repeats):
        start = time.perf_counter()
        hashlib.sha256(data).hexdigest()
        hashing.append(time.perf_counter() - start)
        start = time.perf_counter()
        load_artifact(model_dir)
        loading.append(time.perf_counter() - start)
    return {"hash_s": statistics.median(hashing), "load_artifact_s": statistics.median(loading),
            "weights_mb": len(data) / 1e6}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true")
    parser.add_argument("--side", type=int, default=None, help="PNG side in pixels (default 6000; smoke 600)")
    parser.add_argument("--repeats", type=int, default=None, help="default 3 (smoke: 1)")
    parser.add_argument("--out", type=Path, default=OUT_DIR)
    parser.add_argument("--measure", choices=("float64", "table"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    side = args.side or (600 if args.smoke else 6000)
    if args.measure:
        print(json.dumps(measure_in_this_process(args.measure, side)))
        return
    repeats = args.repeats or (1 if args.smoke else 3)
    machine = print_machine()
    old, new = measure("float64", side, repeats), measure("table", side, repeats)
    megapixels = side * side / 1e6
    print(f"16-bit decode of one {side}x{side} PNG ({megapixels:g} MP): float64 {old['seconds']:.2f} s, "
          f"+{old['peak_growth_mb']:.0f} MB peak; lookup table {new['seconds']:.2f} s, "
          f"+{new['peak_growth_mb']:.0f} MB peak")
    print(f"ratio float64/table: time {old['seconds'] / new['seconds']:.2f}x, "
          f"peak memory {old['peak_growth_mb'] / max(new['peak_growth_mb'], 1):.2f}x")
    refusal = hostile_batch_refusal(side, repeats)
    print(f"hostile batch (16 x {megapixels:g} MP 16-bit PNG): refused (413) in {refusal * 1e3:.1f} ms; "
          f"the old handler decoded them all: ~{16 * old['seconds']:.1f} s (16 x one float64 decode), "
          f"ratio {16 * old['seconds'] / refusal:.0f}x")
    load = weights_hash_share(args.out, repeats)
    share = 100 * load["hash_s"] / load["load_artifact_s"]
    print(f"weights hash at load: sha256 of {load['weights_mb']:.0f} MB model.pth {load['hash_s'] * 1e3:.0f} ms of "
          f"a {load['load_artifact_s'] * 1e3:.0f} ms load_artifact ({share:.0f}%)")
    write_result("hostile_smoke" if args.smoke else "hostile", {
        "machine": machine, "side": side, "float64": old, "table": new, "hostile_refusal_s": refusal,
        "weights_hash": load}, args.out)


if __name__ == "__main__":
    main()
