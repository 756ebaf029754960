"""P5: serving precision, fp32 vs bf16 vs int8, ratios in one run.

Images/s per core at batch 1 and 16 (224 px) through ``Predictor.predict_logits`` (preprocessed batches, calls
interleaved, medians), top-1 agreement and max |delta p| against fp32 on the test split of a trained model, and
the local endpoint's median/p95 per request for fp32 vs the best reduced precision (the fastest that keeps
>= 99.5% agreement and runs natively here). int8 is made the way ``package --precision int8`` makes it
(calibrated on training images, checked on the validation split, ``model_int8.pth``).

Without --model-dir: a generated 5-breed photo-like dataset and a head fitted on the features of a seeded
random-init backbone (no ImageNet weights offline). A real model: --model-dir M --data-dir D (train/ valid/ test/).

    python bench/bench_serving_precision.py [--lock FILE] [--model-dir M --data-dir D]
    python bench/bench_serving_precision.py --smoke
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import http.client
import io
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import torch
from benchlib import OUT_DIR, draw_photo_like, make_dataset, print_machine, write_result

from dogbreed.core.network import build_resnet50
from dogbreed.core.resnet import Bottleneck
from dogbreed.core.transforms import Preprocessing
from dogbreed.serving.artifact import ModelConfig, save_artifact
from dogbreed.serving.precision import BF16_CPU_FLAGS, cpu_flags
from dogbreed.serving.precision_check import MIN_AGREEMENT, image_batches, measure_agreement, reduce_model_dir, spread
from dogbreed.serving.predictor import Predictor

RESIDUAL_SCALE = 0.2


def split_images(data_dir: Path, split: str) -> list[Path]:
    return sorted(p for p in (data_dir / split).rglob("*") if p.is_file() and not p.name.startswith("."))


def fit_head_model(data_dir: Path, model_dir: Path, size: int) -> Path:
    """A trained model dir: seeded random backbone (BatchNorm statistics of the train split), linear head fitted
    (Adam, 300 steps) on its train features."""
    classes = sorted(p.name for p in (data_dir / "train").iterdir() if p.is_dir())
    torch.manual_seed(0)
    net = build_resnet50(len(classes)).eval()
    config = ModelConfig(class_names=classes, preprocessing=Preprocessing(image_size=size))
    paths = split_images(data_dir, "train")
    labels = torch.tensor([classes.index(p.parent.name) for p in paths])
    head, net.fc = net.fc, torch.nn.Identity()
    predictor = Predictor(net, config, torch.device("cpu"), tta="none")
    # BatchNorm statistics re-estimated on the train split, as a trained network's match its data: with the
    # init statistics (mean 0, var 1) activations grow block after block and the class signal is a tiny relative
    # difference that any rounding erases, which says nothing about a trained model.
    for module in net.modules():
        if isinstance(module, Bottleneck):  # small residual branches, as in trained ResNets (a random net is chaotic)
            torch.nn.init.constant_(module.bn3.weight, RESIDUAL_SCALE)
        if isinstance(module, torch.nn.BatchNorm2d):
            module.reset_running_stats()
            module.momentum = None  # cumulative average over the pass
    net.train()
    with torch.no_grad():
        for batch in image_batches(predictor, paths, 32):
            net(batch)
    net.eval()
    with torch.inference_mode():
        features = torch.cat([predictor.net(batch) for batch in image_batches(predictor, paths, 32)])
    mean, std = features.mean(0), features.std()  # one scale: a per-feature one amplifies near-constant features
    linear = torch.nn.Linear(features.shape[1], len(classes))
    optimiser = torch.optim.Adam(linear.parameters(), lr=1e-2, weight_decay=1e-4)
    for _ in range(300):
        optimiser.zero_grad()
        torch.nn.functional.cross_entropy(linear((features - mean) / std), labels).backward()
        optimiser.step()
    with torch.no_grad():  # fc(x) = linear((x - mean) / std): the head takes the raw backbone features
        head.weight.copy_(linear.weight / std)
        head.bias.copy_(linear.bias - (linear.weight * mean / std).sum(1))
    net.fc = head
    return save_artifact(model_dir, net.to(memory_format=torch.contiguous_format).eval(), config)


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


@contextlib.contextmanager
def held(lock: Path | None) -> Iterator[None]:
    """The machine-wide serving lock around the endpoint part (one TorchServe at a time)."""
    if lock is None:
        yield
        return
    with open(lock, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def endpoint_latencies(model_dir: Path, precision: str, images: list[bytes], port: int) -> list[float]:
    """Per-request milliseconds of a local endpoint serving ``precision`` (DOGBREED_PRECISION)."""
    from dogbreed.serving.local_endpoint import LocalEndpoint

    os.environ["DOGBREED_PRECISION"] = precision
    with tempfile.TemporaryDirectory(prefix="precision-serve-") as work:
        endpoint = LocalEndpoint(Path(work) / "serve", model_dir=model_dir, port=port, workers=1)
        endpoint.start(timeout=600)
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        latencies = []
        try:
            for image in [images[0], *images]:  # the first request is a warm-up, not counted
                start = time.perf_counter()
                connection.request("POST", "/invocations", body=image, headers={"Content-Type": "image/jpeg"})
                response = connection.getresponse()
                response.read()
                if response.status != 200:
                    raise RuntimeError(f"endpoint answered {response.status}")
                latencies.append((time.perf_counter() - start) * 1000)
        finally:
            connection.close()
            endpoint.stop()
            os.environ.pop("DOGBREED_PRECISION", None)
    return latencies[1:]


def jpegs(count: int) -> list[bytes]:
    rng = np.random.default_rng(1)
    out = []
    for i in range(count):
        buffer = io.BytesIO()
        draw_photo_like(i % 5, 5, (500, 375), rng).save(buffer, format="JPEG", quality=90)
        out.append(buffer.getvalue())
    return out


def throughput(predictors: dict[str, Predictor], batches: dict[int, torch.Tensor], repeats: int) -> dict[str, Any]:
    threads = torch.get_num_threads()
    result: dict[str, Any] = {}
    for size, batch in batches.items():
        calls = {name: (lambda p=p: p.predict_logits(batch)) for name, p in predictors.items()}
        seconds = median_seconds(calls, repeats)
        result[size] = {name: size / s / threads for name, s in seconds.items()}
        shown = ", ".join(f"{name} {value:.2f}" for name, value in result[size].items())
        ratios = ", ".join(f"{name}/fp32 {value / result[size]['fp32']:.2f}x"
                           for name, value in result[size].items() if name != "fp32")
        print(f"throughput, batch {size}: images/s per core: {shown}; ratio {ratios}", flush=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true", help="64 px, a few images, no endpoint")
    parser.add_argument("--model-dir", type=Path, default=None)
    parser.add_argument("--data-dir", type=Path, default=None)
    parser.add_argument("--repeats", type=int, default=None, help="default 10 (smoke: 2)")
    parser.add_argument("--images-per-class", type=int, default=None,
                        help="generated data: test and valid images per breed, twice as many train (default 40: "
                             "200 test images, enough to resolve 99.5%%; smoke: 3)")
    parser.add_argument("--requests", type=int, default=30, help="endpoint requests per precision")
    parser.add_argument("--port", type=int, default=18280)
    parser.add_argument("--lock", type=Path, default=None, help="flock this file around the endpoint part")
    parser.add_argument("--no-endpoint", action="store_true")
    parser.add_argument("--out", type=Path, default=OUT_DIR)
    args = parser.parse_args()
    repeats = args.repeats or (2 if args.smoke else 10)
    size, big = (64, 4) if args.smoke else (224, 16)
    machine = print_machine()
    load = os.getloadavg()
    print(f"load average at start: {load[0]:.1f} {load[1]:.1f} {load[2]:.1f} on {os.cpu_count()} cores", flush=True)
    native_bf16 = bool(cpu_flags() & set(BF16_CPU_FLAGS))
    work = Path(tempfile.mkdtemp(prefix="precision-bench-", dir=args.out if args.out.is_dir() else None))
    try:
        result = run(args, work, size, big, repeats, native_bf16)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    result.update(machine=machine, load_start=load, load_end=os.getloadavg(), native_bf16=native_bf16)
    print(f"load average at end: {result['load_end'][0]:.1f}", flush=True)
    write_result("p5_precision_smoke" if args.smoke else "p5_precision", result, args.out)


def run(args: argparse.Namespace, work: Path, size: int, big: int, repeats: int, native_bf16: bool) -> dict:
    if args.model_dir is None:
        count = args.images_per_class or (3 if args.smoke else 40)
        per_split = {"train": 2 * count, "valid": count, "test": count}
        data_dir = make_dataset(work / "data", per_split=per_split, max_side=640)
        model_dir = fit_head_model(data_dir, work / "model", size)
    else:
        data_dir = args.data_dir
        model_dir = Path(shutil.copytree(args.model_dir, work / "model"))
    packaged = reduce_model_dir(model_dir, "int8", split_images(data_dir, "valid"),
                                spread(split_images(data_dir, "train")), minimum=0.0)
    print(f"package --precision int8 (validation split): {packaged.line()}", flush=True)
    fp32 = Predictor.from_model_dir(model_dir, device="cpu", tta="none", precision="fp32")
    predictors = {"fp32": fp32,
                  "bf16": Predictor(fp32.net, fp32.config, torch.device("cpu"), tta="none", precision="bf16"),
                  "int8": Predictor.from_model_dir(model_dir, device="cpu", tta="none", precision="int8")}
    flags = " or ".join(BF16_CPU_FLAGS)
    print(f"bf16: native ({flags})" if native_bf16 else
          f"bf16: EMULATED: this CPU has no {flags} flag, so the endpoint would serve fp32", flush=True)
    test = split_images(data_dir, "test" if (data_dir / "test").is_dir() else "valid")
    agreement = {}
    for name in ("bf16", "int8"):
        measured = measure_agreement(fp32, predictors[name], image_batches(fp32, test))
        agreement[name] = {"agreement": measured.agreement, "max_abs_delta_p": measured.max_abs_delta_p,
                           "images": measured.images}
        print(f"top-1 agreement on the test split: {measured.line()}", flush=True)
    one = fp32.preprocess(test[:1])
    many = fp32.preprocess((test * big)[:big])
    speed = throughput(predictors, {1: one, big: many}, repeats)
    result: dict[str, Any] = {"image_size": size, "batch": big, "throughput_per_core": speed, "agreement": agreement,
                              "package_int8": packaged.line()}
    runnable = [n for n in ("bf16", "int8") if agreement[n]["agreement"] >= MIN_AGREEMENT
                and (n != "bf16" or native_bf16)]
    if args.smoke or args.no_endpoint or not runnable:
        why = "--smoke" if args.smoke else "--no-endpoint" if args.no_endpoint else "no reduced precision qualifies"
        print(f"endpoint: skipped ({why})", flush=True)
        return result
    best = max(runnable, key=lambda n: speed[big][n])
    images = jpegs(args.requests)
    with held(args.lock):
        latencies = {name: endpoint_latencies(model_dir, name, images, args.port) for name in ("fp32", best)}
    for name, values in latencies.items():
        print(f"endpoint {name}: {len(values)} sequential 500x375 JPEG requests: median "
              f"{statistics.median(values):.1f} ms, p95 {float(np.percentile(values, 95)):.1f} ms", flush=True)
    ratio = statistics.median(latencies[best]) / statistics.median(latencies["fp32"])
    print(f"ratio endpoint median {best}/fp32: {ratio:.2f} (target <= 0.6)", flush=True)
    result["endpoint_ms"] = {name: {"median": statistics.median(v), "p95": float(np.percentile(v, 95))}
                             for name, v in latencies.items()}
    return result


if __name__ == "__main__":
    main()
