"""The benchmarks run end to end at tiny sizes and print their ratios (no timing asserts)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent / "bench"

EXPECTED_LINES = {
    "accuracy_recipes.py": ["| recipe | what | test acc | + flip TTA | TTA cost ratio |", "| R7 | R6 + label"],
    "make_dataset.py": ["dataset:"],
    "bench_loop_ablation.py": ["| dataset | row | test acc, best epoch (mean ± sd over 1 seed(s))",
                               "| scans32 | gradual |", "demo full_es seed 0: test acc best"],
    # 2 epochs x (4 train + 2 valid) x 3 classes = 36 forwards; (4 + 2 + 2) x 3 = 24: written out by hand
    "bench_small_run.py": ["backbone forwards: plain loop 36, dogbreed 24: forward-count ideal 1.50x",
                           "of the ideal (target >= 0.9)", "export + reports", "start-up (imports) and exit"],
    "bench_calibration_phase.py": ["of the run; target <= 10%", "ratio old/new calibration phase:"],
    "bench_head_training.py": ["P1 ratio baseline/ours:", "HPO 2 trials with the cache", "val_acc ours"],
    "bench_decode.py": ["eval: torchvision ImageFolder", "train: torchvision ImageFolder", "ratio"],
    "bench_serving.py": ["P3 overhead ratio Predictor/bare:", "throughput, batch 4"],
    "bench_serving_precision.py": ["throughput, batch 1: images/s per core: fp32", "throughput, batch 4:",
                                   "ratio bf16/fp32", "int8/fp32", "top-1 agreement on the test split: int8 vs fp32",
                                   "package --precision int8 (validation split):", "endpoint: skipped (--smoke)"],
    "bench_finetune_step.py": ["ratio Lightning/raw", "channels-last vs contiguous"],
    "bench_hostile_requests.py": ["16-bit decode of one", "ratio float64/table", "refused (413)",
                                  "weights hash at load"],
    "bench_layers.py": ["train --help (s, process wall time)", "handler import (s)", "floor: `import torch"],
    "bench_scratch_vs_loop.py": ["plain loop, crop 0.35", "dogbreed, crop 0.08", "ratio dogbreed/plain test_acc",
                                 "old backbone lr scale 0.1"],
    "bench_pipeline.py": ["bytes:", "ratio vs baseline on full-size photos", "draft_1_8_decode_only:",
                          "ratio ours/baseline, full-size photos:", "(target 5x)"],
    "bench_prepared_accuracy.py": ["bytes:", "seed 0  prepared: test_acc", "accuracy difference prepared - full-size:"],
}


@pytest.mark.slow
@pytest.mark.parametrize("script", sorted(EXPECTED_LINES))
def test_benchmark_smoke_run_prints_its_ratios(script, tmp_path):
    args = [sys.executable, str(BENCH / script), "--smoke"]
    if script == "make_dataset.py":
        args += ["--root", str(tmp_path / "data")]
    else:
        args += ["--out", str(tmp_path)]
    done = subprocess.run(args, capture_output=True, text=True, timeout=600, cwd=BENCH.parent)
    assert done.returncode == 0, done.stderr[-3000:]
    for expected in EXPECTED_LINES[script]:
        assert expected in done.stdout, (expected, done.stdout[-2000:])
    if script != "make_dataset.py":
        assert "machine: cpu=" in done.stdout and "torch=" in done.stdout
        assert list(tmp_path.glob("*_smoke.json"))  # numbers saved under the given out dir
