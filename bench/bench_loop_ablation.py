"""The training loop, measured: last vs best epoch, early stopping, head / full / gradual fine-tuning, and the
ImageNet crop (scale 0.08) vs the small-image default (--crop-min-side 0.5), over two datasets and several seeds.

Every row is a run of the public CLI (``python -m entry_points.train``) with ``--checkpoint-dir``; the test
accuracy of the exported model (the best epoch) is in its metrics.json, and the last epoch's weights (the newest
checkpoint) are tested here on the same test split with the same Predictor, so "last vs best" is measured on test
images, not on the validation split that chose the best epoch.

Datasets: the generated demo (``--demo``'s 5 breeds, 64 px) and small photo-like scans (benchlib: 10 classes,
32-48 px JPEGs, trained at 32 px: the case where the ImageNet crop blows up 9-pixel crops).

    python bench/bench_loop_ablation.py                       # 3 seeds, both datasets, every row
    python bench/bench_loop_ablation.py --seeds 0 --rows full,full_es
    python bench/bench_loop_ablation.py --smoke               # 2 rows, 1 seed, tiny sizes, 2 epochs (a CI run)

``--weights`` (head and gradual rows; default imagenet, downloaded once) may be a resnet50 state_dict path, or
``pretrain``: offline (no ImageNet weights), a backbone trained here from scratch on a third, disjoint generated
dataset (20 classes of photo-like JPEGs, seed 99, 48 px, 12 epochs) stands in for a pretrained one; its model.pth is
the state_dict (the 20-class head is dropped by --weights). The smoke run saves a random one, so its head rows are at
chance and only show that the rows run. ``--threads N`` sets each training run's torch threads (OMP_NUM_THREADS), so
two ablations over different seeds can share a machine without oversubscribing it; accuracy is what is compared,
and ``wall s`` is only comparable between rows of one invocation.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import torch
from benchlib import OUT_DIR, make_dataset, print_machine, write_result

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from dogbreed.serving.artifact import load_artifact, save_artifact  # noqa: E402
from dogbreed.serving.predictor import Predictor  # noqa: E402

FULL = ["--weights", "none", "--finetune", "full", "--lr", "2e-3", "--backbone-lr-scale", "1.0"]
# (row, what, flags); {weights} is --weights for the rows that start from a pretrained backbone
ROWS: list[tuple[str, str, list[str]]] = [
    ("full", "full fine-tune from scratch, best epoch (last epoch measured too)", FULL),
    ("full_es", "the same with --early-stopping 3", [*FULL, "--early-stopping", "3"]),
    ("full_crop008", "the same without the small-image crop (--crop-min-side 0: the ImageNet crop 0.08)",
     [*FULL, "--crop-min-side", "0", "--crop-scale", "0.08"]),
    ("head", "frozen pretrained backbone, head on cached features", ["--weights", "{weights}", "--finetune", "head",
                                                                     "--lr", "1e-3"]),
    ("gradual", "head for 1 epoch, then everything (backbone lr x0.1)",
     ["--weights", "{weights}", "--finetune", "gradual", "--freeze-epochs", "1", "--lr", "1e-3",
      "--backbone-lr-scale", "0.1"]),
]
DATASETS = {"demo": 64, "scans32": 32}  # dataset -> --image-size
SETTINGS = {"epochs": 12, "batch-size": 16}
SMOKE_SETTINGS = {"epochs": 2, "batch-size": 8}
SMOKE_ROWS = {"full_es", "gradual"}  # 4 short runs: that every kind of row runs, not what it measures
SMOKE_IMAGE_SIZE = 32


def datasets(out: Path, smoke: bool) -> dict[str, Path]:
    from dogbreed.data.demo import generate_demo_dataset

    per_split = {"train": 4, "valid": 2, "test": 2} if smoke else {"train": 60, "valid": 20, "test": 20}
    demo = generate_demo_dataset(out / "demo_data")
    if smoke:  # the first images per breed
        subset = out / "demo_small"
        for split, count in per_split.items():
            for breed in sorted(p for p in (demo / split).iterdir() if p.is_dir()):
                (subset / split / breed.name).mkdir(parents=True, exist_ok=True)
                for image in sorted(breed.iterdir())[:count]:
                    shutil.copy2(image, subset / split / breed.name / image.name)
        demo = subset
    scans = make_dataset(out / "scans32", num_classes=3 if smoke else 10, per_split=per_split, min_side=32,
                         max_side=48, seed=5)
    return {"demo": demo, "scans32": scans}


PRETRAIN_DATA: dict[str, Any] = {"num_classes": 20, "per_split": {"train": 40, "valid": 10, "test": 10},
                                 "min_side": 40, "max_side": 80, "seed": 99}
PRETRAIN_IMAGE_SIZE = 48


def pretrained_stand_in(out: Path, threads: int | None) -> str:
    """Train the stand-in backbone once (reused when its model dir exists) and return its state_dict path."""
    model = out / "pretrain" / "model" / "model.pth"
    if model.is_file():
        return str(model)
    data = make_dataset(out / "pretrain_data", **PRETRAIN_DATA)
    command = [sys.executable, "-m", "entry_points.train", "--data-dir", str(data), "--model-dir", str(model.parent),
               "--output-dir", str(out / "pretrain" / "reports"), "--image-size", str(PRETRAIN_IMAGE_SIZE),
               "--seed", "0", "--num-workers", "0", "--calibrate", "false", *FULL, "--epochs", "12",
               "--batch-size", "16"]
    done = subprocess.run(command, capture_output=True, text=True, cwd=REPO, env=_env(threads))
    if done.returncode != 0:
        raise SystemExit(f"pretraining the stand-in backbone failed ({' '.join(command)}):\n{done.stderr[-3000:]}")
    test = json.loads((out / "pretrain" / "reports" / "metrics.json").read_text())["test"]["acc"]
    print(f"stand-in backbone: 20 generated classes, test acc {test:.3f} ({model})", flush=True)
    return str(model)


def _env(threads: int | None) -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": str(threads)} if threads else dict(os.environ)


def last_epoch_accuracy(checkpoint_dir: Path, model_dir: Path, test_dir: Path) -> float:
    """Test accuracy of the newest checkpoint's weights, served like the exported model."""
    newest = max(checkpoint_dir.glob("epoch=*.ckpt"), key=lambda p: int(p.stem.split("=")[1]))
    state = torch.load(newest, map_location="cpu", weights_only=True)["state_dict"]
    net, config = load_artifact(model_dir)
    net.load_state_dict({k[len("net."):]: v for k, v in state.items() if k.startswith("net.")})
    last_dir = model_dir.parent / "model_last"
    save_artifact(last_dir, net, config)
    predictor = Predictor.from_model_dir(last_dir, device="cpu")
    class_dirs = sorted(d for d in test_dir.iterdir() if d.is_dir())  # the training order of the classes
    images = [(p, label) for label, d in enumerate(class_dirs) for p in sorted(d.iterdir()) if p.is_file()]
    probabilities = predictor.predict_proba(predictor.preprocess([p for p, _ in images]))
    labels = torch.tensor([label for _, label in images])
    return float((probabilities.argmax(1) == labels).float().mean())


def run(row: str, flags: list[str], data_dir: Path, image_size: int, seed: int, out: Path,
        settings: dict[str, int], threads: int | None = None) -> dict[str, Any]:
    run_dir = out / f"{data_dir.name}_{row}_seed{seed}"
    shutil.rmtree(run_dir, ignore_errors=True)
    command = [sys.executable, "-m", "entry_points.train", "--data-dir", str(data_dir), "--model-dir",
               str(run_dir / "model"), "--output-dir", str(run_dir / "reports"), "--checkpoint-dir",
               str(run_dir / "ckpt"), "--cache-dir", str(out / "feature_cache"), "--image-size", str(image_size),
               "--seed", str(seed), "--num-workers", "0", "--calibrate", "false",
               *[x for k, v in settings.items() for x in (f"--{k}", str(v))], *flags]
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, cwd=REPO, env=_env(threads))
    if done.returncode != 0:
        raise SystemExit(f"{row} failed ({' '.join(command)}):\n{done.stderr[-3000:]}")
    metrics = json.loads((run_dir / "reports" / "metrics.json").read_text())
    return {"row": row, "dataset": data_dir.name, "seed": seed, "seconds": time.perf_counter() - start,
            "epochs_run": len(metrics["history"]), "best_epoch": metrics["best"]["epoch"],
            "test_acc_best": metrics["test"]["acc"],
            "test_acc_last": last_epoch_accuracy(run_dir / "ckpt", run_dir / "model", data_dir / "test"),
            "command": " ".join(command[1:])}


def _spread(values: list[float]) -> str:
    mean = statistics.fmean(values)
    return f"{mean:.3f} ± {statistics.stdev(values):.3f}" if len(values) > 1 else f"{mean:.3f}"


def markdown(results: list[dict[str, Any]], seeds: list[int]) -> str:
    lines = [f"| dataset | row | test acc, best epoch (mean ± sd over {len(seeds)} seed(s)) | test acc, last epoch | "
             "epochs run | wall s |", "|---|---|---|---|---|---|"]
    for dataset in dict.fromkeys(r["dataset"] for r in results):
        for row in dict.fromkeys(r["row"] for r in results):
            rs = [r for r in results if r["dataset"] == dataset and r["row"] == row]
            if rs:
                lines.append(f"| {dataset} | {row} | {_spread([r['test_acc_best'] for r in rs])} | "
                             f"{_spread([r['test_acc_last'] for r in rs])} | "
                             f"{_spread([float(r['epochs_run']) for r in rs])} | "
                             f"{statistics.fmean(r['seconds'] for r in rs):.0f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true", help="1 seed, 4/2/2 images per class, 2 epochs")
    parser.add_argument("--seeds", default="0,1,2", help="comma-separated seeds (default: 0,1,2)")
    parser.add_argument("--rows", default="", help="comma-separated subset of " + ",".join(r for r, _, _ in ROWS))
    parser.add_argument("--weights", default="imagenet",
                        help="--weights of the head and gradual rows: imagenet, a state_dict path, or pretrain")
    parser.add_argument("--datasets", default="", help="comma-separated subset of " + ",".join(DATASETS))
    parser.add_argument("--threads", type=int, default=None, help="torch threads per training run")
    parser.add_argument("--out", type=Path, default=OUT_DIR)
    parser.add_argument("--combine", type=Path, nargs="+", default=None,
                        help="only print the table of these result JSON files together (runs split over processes)")
    args = parser.parse_args()
    if args.combine:
        combined = [r for f in args.combine for r in json.loads(f.read_text())["results"]]
        print(markdown(combined, sorted({r["seed"] for r in combined})))
        return
    machine = print_machine()
    out = args.out / ("loop_smoke" if args.smoke else "loop")
    out.mkdir(parents=True, exist_ok=True)
    seeds = [0] if args.smoke else [int(s) for s in args.seeds.split(",")]
    weights = args.weights
    if args.smoke:  # no download: a random resnet50 state_dict stands in for pretrained weights
        from dogbreed.core.network import build_resnet50

        weights = str(out / "random_resnet50.pt")
        torch.save(build_resnet50(1000).state_dict(), weights)
    elif weights == "pretrain":
        weights = pretrained_stand_in(args.out / "loop", args.threads)
    wanted = {r for r in args.rows.split(",") if r} or (SMOKE_ROWS if args.smoke else set())
    wanted_data = {d for d in args.datasets.split(",") if d}
    settings = SMOKE_SETTINGS if args.smoke else SETTINGS
    results = []
    for name, data_dir in datasets(out, args.smoke).items():
        if wanted_data and name not in wanted_data:
            continue
        for row, _, flags in ROWS:
            if wanted and row not in wanted:
                continue
            for seed in seeds:
                size = SMOKE_IMAGE_SIZE if args.smoke else DATASETS[name]
                result = run(row, [f.format(weights=weights) for f in flags], data_dir, size, seed, out, settings,
                             args.threads)
                print(f"{name} {row} seed {seed}: test acc best {result['test_acc_best']:.3f}, last "
                      f"{result['test_acc_last']:.3f}, {result['epochs_run']} epochs", flush=True)
                results.append(result)
    table = markdown(results, seeds)
    print(table)
    part = "" if args.smoke or not (args.seeds != "0,1,2" or wanted_data or args.rows) else \
        "_" + "_".join(x for x in (f"seeds{'-'.join(map(str, seeds))}", "-".join(sorted(wanted_data)),
                                   "-".join(sorted(wanted))) if x)  # parts run in parallel keep their own files
    (out / f"bench_loop_ablation{part}.md").write_text(table + "\n")
    write_result("bench_loop_ablation" + ("_smoke" if args.smoke else part),
                 {"machine": machine, "settings": settings, "results": results}, args.out)


if __name__ == "__main__":
    main()
