"""P1 on a small run (issue 25 item 4): the whole process of a head-only run against the plain loop, and what the
count of backbone forwards says the ratio could be at best.

A 64/16/16 set of photo-sized JPEGs (4 classes x 16/4/4, 300-1600 px), 224 px, 10 epochs, batch 64, lr 3e-3, the
seeded random backbone of bench_head_training.py given to both sides. Each side is a fresh process, timed from
launch to exit (start-up, imports, decoding, everything):

- the plain loop: ``bench/baseline_loop.py`` (the original project's way: the frozen backbone runs on every
  training and validation batch of every epoch, no test pass): epochs x (train + valid) backbone forwards;
- dogbreed: ``python -m entry_points.train --finetune head`` with a cold feature cache: one backbone pass per train,
  valid and test image (``--cached-views 1``), then the head on cached features, calibration, artifact, reports.

The forward-count ideal is the ratio of those counts (800 / 96 = 8.3x here); the target is a measured ratio of at
least 0.9x of it. The sides alternate (plain, ours, plain, ours, ...) and the medians are compared.

    python bench/bench_small_run.py                 # 64/16/16, 10 epochs, 3 repeats
    python bench/bench_small_run.py --smoke         # tiny, for tests
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench_head_training import seeded_backbone
from benchlib import OUT_DIR, make_dataset, print_machine, write_result

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
FULL = {"num_classes": 4, "per_split": {"train": 16, "valid": 4, "test": 4}, "min_side": 300, "max_side": 1600}
SMOKE = {"num_classes": 3, "per_split": {"train": 4, "valid": 2, "test": 2}, "min_side": 120, "max_side": 320}


def _timed(command: list[str], cwd: Path) -> tuple[float, str]:
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, cwd=cwd)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{done.stderr[-3000:]}")
    return seconds, done.stdout


def export_seconds(summary: str) -> float:
    """The run summary's ``export + reports`` line, in seconds (the phase after the recorded timing)."""
    found = re.search(r"^\s*export \+ reports\s+([0-9.]+)s", summary, re.MULTILINE)
    if found is None:
        raise SystemExit(f"no 'export + reports' line in the run summary:\n{summary[-2000:]}")
    return float(found.group(1))


def run_plain(data: Path, weights: Path, epochs: int, image_size: int) -> float:
    return _timed([sys.executable, str(BENCH / "baseline_loop.py"), "--data-dir", str(data), "--epochs", str(epochs),
                   "--lr", "3e-3", "--image-size", str(image_size), "--backbone", str(weights)], cwd=BENCH)[0]


def run_ours(data: Path, weights: Path, epochs: int, image_size: int, work: Path) -> tuple[float, dict[str, Any]]:
    shutil.rmtree(work, ignore_errors=True)  # a cold cache every time
    seconds, summary = _timed([sys.executable, "-m", "entry_points.train", "--data-dir", str(data),
                      "--model-dir", str(work / "model"), "--output-dir", str(work / "reports"),
                      "--cache-dir", str(work / "feature_cache"), "--epochs", str(epochs), "--batch-size", "64",
                      "--lr", "3e-3", "--image-size", str(image_size), "--weights", str(weights),
                      "--finetune", "head", "--cached-views", "1", "--accelerator", "cpu", "--seed", "0",
                      "--num-workers", "0"], cwd=REPO)
    timing = json.loads((work / "reports" / "metrics.json").read_text())["timing"]
    return seconds, {**timing, "export_and_reports_s": export_seconds(summary)}


def forward_counts(spec: dict[str, Any], epochs: int) -> tuple[int, int]:
    """(plain loop, dogbreed) backbone forwards: every epoch's train + valid vs one pass over every split."""
    per_split, classes = spec["per_split"], spec["num_classes"]
    plain = epochs * (per_split["train"] + per_split["valid"]) * classes
    ours = (per_split["train"] + per_split["valid"] + per_split["test"]) * classes
    return plain, ours


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, 1 repeat (tests)")
    parser.add_argument("--repeats", type=int, default=None, help="alternating runs per side (default 3; smoke 1)")
    parser.add_argument("--out", type=Path, default=OUT_DIR)
    args = parser.parse_args()
    machine = print_machine()
    load = os.getloadavg()
    print(f"load average at start: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} on {os.cpu_count()} cores")
    spec, image_size, epochs = (SMOKE, 64, 2) if args.smoke else (FULL, 224, 10)
    repeats = args.repeats or (1 if args.smoke else 3)
    suffix = "_smoke" if args.smoke else ""
    data = make_dataset(args.out / f"small_run_data{suffix}", **spec)
    weights = seeded_backbone(args.out / "seeded_resnet50.pth")
    plain_s: list[float] = []
    ours_s: list[float] = []
    timings: list[dict[str, Any]] = []
    for repeat in range(repeats):
        plain_s.append(run_plain(data, weights, epochs, image_size))
        seconds, timing = run_ours(data, weights, epochs, image_size, args.out / f"small_run{suffix}")
        ours_s.append(seconds)
        timings.append(timing)
        outside = seconds - timing["total_s"] - timing["export_and_reports_s"]
        print(f"repeat {repeat + 1}: plain loop {plain_s[-1]:.2f} s, dogbreed {seconds:.2f} s (recorded phases "
              f"{timing['total_s']:.2f} s, export + reports {timing['export_and_reports_s']:.2f} s, start-up "
              f"(imports) and exit {outside:.2f} s)", flush=True)
    plain_forwards, our_forwards = forward_counts(spec, epochs)
    ideal = plain_forwards / our_forwards
    ratio = statistics.median(plain_s) / statistics.median(ours_s)
    middle = timings[ours_s.index(statistics.median(ours_s))] if repeats % 2 else timings[-1]
    phases = ", ".join(f"{k.removesuffix('_s')} {v:.2f} s" for k, v in middle.items()
                       if k.endswith("_s") and not k.endswith("per_s") and k != "total_s")
    print(f"dogbreed phases (median run): {phases}")
    print(f"backbone forwards: plain loop {plain_forwards}, dogbreed {our_forwards}: "
          f"forward-count ideal {ideal:.2f}x")
    print(f"whole process, median of {repeats}: plain loop {statistics.median(plain_s):.2f} s, "
          f"dogbreed {statistics.median(ours_s):.2f} s: ratio plain/dogbreed {ratio:.2f}x = "
          f"{ratio / ideal:.2f} of the ideal (target >= 0.9)")
    end = os.getloadavg()[0]
    print(f"load average at end: {end:.2f}")
    write_result("small_run" + suffix,
                 {"machine": machine, "load_start": load[0], "load_end": end, "plain_s": plain_s, "ours_s": ours_s,
                  "timing": timings, "forwards": {"plain": plain_forwards, "ours": our_forwards},
                  "ideal": ideal, "ratio": ratio, "share_of_ideal": ratio / ideal}, args.out)


if __name__ == "__main__":
    main()
