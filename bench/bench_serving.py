"""P3: serving latency and throughput, the library Predictor vs the bare model forward.

Latency: one 224px JPEG through ``Predictor.predict`` (decode, preprocess, forward, softmax,
top-k) vs ``net(x)`` on an already preprocessed tensor, for (a) the same channels-last network
the Predictor holds and (b) a plain torchvision ResNet50 (contiguous) as a user would load it.
Throughput: 16 images per call. Also the forward of the layouts/precisions behind our defaults.
Calls are interleaved, medians reported.

    python bench/bench_serving.py
    python bench/bench_serving.py --smoke
"""

from __future__ import annotations

import argparse
import copy
import io
import statistics
import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from benchlib import OUT_DIR, draw_photo_like, print_machine, write_result

from dogbreed.core.network import build_resnet50
from dogbreed.core.transforms import Preprocessing
from dogbreed.serving.artifact import ModelConfig, save_artifact
from dogbreed.serving.predictor import Predictor


def median_seconds(calls: dict[str, Callable[[], object]], repeats: int) -> dict[str, float]:
    """Median wall time per call, the calls interleaved round-robin after one warm-up each."""
    for call in calls.values():
        call()
    times: dict[str, list[float]] = {name: [] for name in calls}
    for _ in range(repeats):
        for name, call in calls.items():
            start = time.perf_counter()
            call()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in times.items()}


def jpeg_bytes(size: int, count: int) -> list[bytes]:
    rng = np.random.default_rng(0)
    out = []
    for i in range(count):
        buffer = io.BytesIO()
        draw_photo_like(i % 5, 5, (size, size), rng).save(buffer, format="JPEG", quality=90)
        out.append(buffer.getvalue())
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true")
    parser.add_argument("--repeats", type=int, default=None, help="default 15 (smoke: 2)")
    parser.add_argument("--out", type=Path, default=OUT_DIR)
    args = parser.parse_args()
    repeats = args.repeats or (2 if args.smoke else 15)
    size, batch = (64, 4) if args.smoke else (224, 16)
    machine = print_machine()
    torch.manual_seed(0)
    pre = Preprocessing(image_size=size)
    model_dir = save_artifact(args.out / ("p3_model_smoke" if args.smoke else "p3_model"), build_resnet50(5),
                              ModelConfig(class_names=[f"breed {i}" for i in range(5)], preprocessing=pre))
    predictor = Predictor.from_model_dir(model_dir, device="cpu")
    plain_net = copy.deepcopy(predictor.net).to(memory_format=torch.contiguous_format).eval()
    images = jpeg_bytes(size, batch)
    one, many = predictor.preprocess(images[:1]), predictor.preprocess(images)

    def bare(net: torch.nn.Module, x: torch.Tensor) -> Callable[[], object]:
        def call() -> object:
            with torch.inference_mode():
                return net(x)
        return call

    one_cl, many_cl = (t.contiguous(memory_format=torch.channels_last) for t in (one, many))
    latency = median_seconds({
        "predictor": lambda: predictor.predict(images[:1], k=3),
        "bare_same_net": bare(predictor.net, one_cl),
        "bare_plain_net": bare(plain_net, one),
    }, repeats)
    throughput = median_seconds({
        "predictor": lambda: predictor.predict(images, k=3),
        "bare_same_net": bare(predictor.net, many_cl),
        "bare_plain_net": bare(plain_net, many),
    }, max(2, repeats // 3))
    print(f"latency, 1 image {size}px: Predictor {latency['predictor'] * 1e3:.1f} ms, bare forward "
          f"(same channels-last net) {latency['bare_same_net'] * 1e3:.1f} ms, plain torchvision net "
          f"{latency['bare_plain_net'] * 1e3:.1f} ms")
    print(f"P3 overhead ratio Predictor/bare: {latency['predictor'] / latency['bare_same_net']:.3f} (same net), "
          f"{latency['predictor'] / latency['bare_plain_net']:.3f} (vs plain net)")
    rates = {name: batch / seconds for name, seconds in throughput.items()}
    print(f"throughput, batch {batch}: Predictor {rates['predictor']:.1f} img/s, bare same net "
          f"{rates['bare_same_net']:.1f} img/s, plain net {rates['bare_plain_net']:.1f} img/s; "
          f"ratio Predictor/bare {rates['predictor'] / rates['bare_same_net']:.3f}", flush=True)

    def bf16(net: torch.nn.Module, x: torch.Tensor) -> Callable[[], object]:
        def call() -> object:
            with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
                return net(x)
        return call

    layouts = median_seconds({"contiguous_fp32": bare(plain_net, many),
                              "channels_last_fp32": bare(predictor.net, many_cl),
                              "channels_last_bf16": bf16(predictor.net, many_cl)}, max(2, repeats // 3))
    print("forward batch {}: ".format(batch) + ", ".join(f"{k} {batch / v:.1f} img/s" for k, v in layouts.items()))
    write_result("p3_smoke" if args.smoke else "p3", {"machine": machine, "latency_s": latency,
                 "throughput_img_s": rates, "forward_layouts_s": layouts}, args.out)


if __name__ == "__main__":
    main()
