"""What the layering buys: `train --help` wall time, the serving handler's import time, endpoint cold start.

    .venv/bin/python bench/bench_layers.py --baseline-ref 959a196 [--repeats 7] [--port 18180]
    .venv/bin/python bench/bench_layers.py --smoke          # one repeat, no endpoint, baseline = HEAD

The baseline is the same project at ``--baseline-ref`` (exported with ``git archive`` into a temp dir, so the
repository is not touched), run with the same interpreter and packages on the same machine, alternating with the
current tree. Each figure is the median over ``--repeats`` fresh processes. The handler import is also compared
with importing torch, torchvision, PIL and numpy alone (the floor any handler pays).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.benchlib import OUT_DIR, print_machine, write_result  # noqa: E402

FLOOR_IMPORT = "import torch, torchvision, PIL.Image, numpy"
TIMED_IMPORT = "import time; t = time.perf_counter(); {statement}; print(time.perf_counter() - t)"
COLD_START = """
import http.client, sys, time
from pathlib import Path
sys.path.insert(0, ".")
try:
    from dogbreed.serving.local_endpoint import LocalEndpoint
except ImportError:
    from dogbreed.local_endpoint import LocalEndpoint
model_dir, work, port, image = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3]), Path(sys.argv[4]).read_bytes()
started = time.perf_counter()
endpoint = LocalEndpoint(work, model_dir=model_dir, port=port, workers=1)
endpoint.start(timeout=600)
try:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    connection.request("POST", "/invocations", body=image, headers={"Content-Type": "image/jpeg"})
    response = connection.getresponse()
    response.read()
    assert response.status == 200, response.status
    print(time.perf_counter() - started)
finally:
    endpoint.stop()
"""


def export_tree(ref: str, destination: Path) -> Path:
    """The project at ``ref`` as plain files (``git archive``): no worktree, no change to the repository."""
    archive = destination.with_suffix(".tar")
    subprocess.run(["git", "archive", "--format=tar", f"--output={archive}", ref], cwd=REPO, check=True)
    with tarfile.open(archive) as tar:
        tar.extractall(destination, filter="data")
    archive.unlink()
    return destination


def handler_module(tree: Path) -> str:
    """The module every endpoint worker imports, in either layout (flat before the layering, subpackages after)."""
    new_layout = (tree / "dogbreed" / "serving" / "handlers.py").is_file()
    return "dogbreed.serving.handlers" if new_layout else "dogbreed.inference"


def run_seconds(args: list[str], cwd: Path) -> float:
    """Wall time of a fresh process (interpreter start included)."""
    start = time.perf_counter()
    subprocess.run(args, cwd=cwd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def import_seconds(statement: str, cwd: Path) -> float:
    """Time of ``statement`` inside a fresh process (interpreter start excluded)."""
    out = subprocess.run([sys.executable, "-c", TIMED_IMPORT.format(statement=statement)], cwd=cwd, check=True,
                         capture_output=True, text=True)
    return float(out.stdout.strip().splitlines()[-1])


def cold_start_seconds(tree: Path, model_dir: Path, image: Path, work: Path, port: int) -> float:
    out = subprocess.run([sys.executable, "-c", COLD_START, str(model_dir), str(work), str(port), str(image)],
                         cwd=tree, check=True, capture_output=True, text=True, timeout=900)
    return float(out.stdout.strip().splitlines()[-1])


def make_inputs(scratch: Path, image_size: int, classes: int) -> tuple[Path, Path]:
    import io

    import numpy as np
    import torch

    from dogbreed.core.network import build_resnet50
    from dogbreed.core.transforms import Preprocessing
    from dogbreed.data.demo import draw_breed_image
    from dogbreed.serving.artifact import ModelConfig, save_artifact

    torch.manual_seed(0)
    config = ModelConfig(class_names=[f"Breed {i:03d}" for i in range(classes)],
                         preprocessing=Preprocessing(image_size=image_size))
    model_dir = save_artifact(scratch / "model", build_resnet50(classes).eval(), config)
    buffer = io.BytesIO()
    draw_breed_image(0, np.random.default_rng(0)).resize((500, 375)).save(buffer, "JPEG", quality=90)
    image = scratch / "dog.jpg"
    image.write_bytes(buffer.getvalue())
    return model_dir, image


def median_pair(measure, trees: dict[str, Path], repeats: int) -> dict[str, float]:
    """Alternate baseline and current ``repeats`` times (after one discarded warm-up each); medians."""
    for tree in trees.values():
        measure(tree)
    samples: dict[str, list[float]] = {name: [] for name in trees}
    for _ in range(repeats):
        for name, tree in trees.items():
            samples[name].append(measure(tree))
    return {name: statistics.median(values) for name, values in samples.items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--baseline-ref", default="HEAD", help="git ref of the baseline (default: HEAD)")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--port", type=int, default=18180)
    parser.add_argument("--no-endpoint", action="store_true", help="skip the endpoint cold start (needs Java)")
    parser.add_argument("--smoke", action="store_true", help="one repeat, no endpoint")
    parser.add_argument("--out", type=Path, default=OUT_DIR, help="where layers.json goes (default: bench/out)")
    args = parser.parse_args()
    repeats = 1 if args.smoke else args.repeats
    load_before = os.getloadavg()[0]

    with tempfile.TemporaryDirectory(prefix="bench-layers-") as scratch_name:
        scratch = Path(scratch_name)
        trees = {"baseline": export_tree(args.baseline_ref, scratch / "baseline"), "current": REPO}
        results: dict[str, dict[str, float]] = {}
        results["train --help (s, process wall time)"] = median_pair(
            lambda tree: run_seconds([sys.executable, "-m", "entry_points.train", "--help"], tree), trees, repeats)
        results["handler import (s)"] = median_pair(
            lambda tree: import_seconds(f"import {handler_module(tree)}", tree), trees, repeats)
        floor = statistics.median(import_seconds(FLOOR_IMPORT, REPO) for _ in range(repeats + 1))
        if not (args.smoke or args.no_endpoint):
            model_dir, image = make_inputs(scratch, 224, 133)
            runs = iter(range(1000))
            results["endpoint cold start (s, launch to first 200)"] = median_pair(
                lambda tree: cold_start_seconds(tree, model_dir, image, scratch / f"serve-{next(runs)}", args.port),
                trees, max(1, repeats // 2))

    print_machine()
    print(f"{os.cpu_count()} cores; load average {load_before:.2f} before, {os.getloadavg()[0]:.2f} after; "
          f"baseline = {args.baseline_ref}, {repeats} repeats (medians)")
    print(f"{'measure':<46} {'baseline':>9} {'current':>9} {'ratio':>7}")
    for measure, values in results.items():
        ratio = values["baseline"] / values["current"] if values["current"] else float("nan")
        print(f"{measure:<46} {values['baseline']:>9.3f} {values['current']:>9.3f} {ratio:>6.1f}x")
    handler = results["handler import (s)"]["current"]
    print(f"floor: `{FLOOR_IMPORT}` alone takes {floor:.3f} s; the handler import is {handler / floor:.2f}x that")
    name = "layers_smoke" if args.smoke else "layers"
    write_result(name, {"results": results, "floor_import_s": floor, "baseline_ref": args.baseline_ref,
                        "repeats": repeats, "load_before": load_before}, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
