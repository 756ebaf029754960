"""The accuracy recipe, as an ablation grid run through the public CLI (``python -m entry_points.train``).

Each row is one training run; every run evaluates with and without flip TTA, so the TTA lever is a column
(with its per-image cost ratio measured in the same run). The markdown table goes to stdout and to
``<out>/accuracy_recipes.md``; the numbers to ``<out>/accuracy_recipes.json``.

    # dogImages on a GPU (ImageNet weights are downloaded once into the torch hub cache):
    python bench/accuracy_recipes.py --data-dir data/dogImages --out bench/out/recipes
    # CI / no data, no internet: the same grid on a few generated demo images, weights none, tiny sizes:
    python bench/accuracy_recipes.py --smoke

``--rows R1,R5`` runs a subset; ``--epochs``/``--batch-size`` override the grid's.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from benchlib import OUT_DIR, print_machine, write_result

REPO = Path(__file__).resolve().parent.parent

# (name, what changes, flags). Full fine-tuning rows share lr 1e-3 with the backbone at 0.1x.
FULL = ["--finetune", "full", "--lr", "1e-3", "--backbone-lr-scale", "0.1", "--cached-views", "0"]
GRID: list[tuple[str, str, list[str]]] = [
    ("R1", "frozen backbone, ImageNet V1 weights, 224 px", ["--weights", "imagenet-v1", "--image-size", "224"]),
    ("R2", "frozen backbone, ImageNet V2 weights, 224 px", ["--weights", "imagenet", "--image-size", "224"]),
    ("R3", "full fine-tune, V2, 224 px", ["--weights", "imagenet", "--image-size", "224", *FULL]),
    ("R4", "full fine-tune, V2, 288 px", ["--weights", "imagenet", "--image-size", "288", *FULL]),
    ("R5", "R4 + EMA 0.999", ["--weights", "imagenet", "--image-size", "288", *FULL, "--ema-decay", "0.999"]),
    ("R6", "R5 + MixUp 0.2 / CutMix 1.0", ["--weights", "imagenet", "--image-size", "288", *FULL, "--ema-decay",
                                            "0.999", "--mixup-alpha", "0.2", "--cutmix-alpha", "1.0"]),
    ("R7", "R6 + label smoothing 0.1", ["--weights", "imagenet", "--image-size", "288", *FULL, "--ema-decay", "0.999",
                                        "--mixup-alpha", "0.2", "--cutmix-alpha", "1.0", "--label-smoothing", "0.1"]),
]
FULL_SETTINGS = {"epochs": "5", "batch-size": "32"}
FULL_EPOCHS = {"R3": "10", "R4": "10", "R5": "10", "R6": "15", "R7": "15"}
# --smoke: no pretrained weights here, so every row uses --weights none (R1 and R2 then differ only in name),
# and 32/40 px stand in for 224/288.
SMOKE_SIZES = {"224": "32", "288": "40"}
SMOKE_SETTINGS = {"epochs": "1", "batch-size": "8"}
SMOKE_PER_SPLIT = {"train": 8, "valid": 4, "test": 4}  # images per breed: the first ones of the demo dataset


def smoke_dataset(out: Path) -> Path:
    """The first images per breed of the generated demo dataset (5 breeds), copied once into ``out``."""
    import shutil

    sys.path.insert(0, str(REPO))
    from dogbreed.data.demo import generate_demo_dataset

    demo = generate_demo_dataset(out / "demo_data")
    subset = out / "demo_smoke"
    for split, count in SMOKE_PER_SPLIT.items():
        for breed in sorted(p for p in (demo / split).iterdir() if p.is_dir()):
            target = subset / split / breed.name
            target.mkdir(parents=True, exist_ok=True)
            for image in sorted(p for p in breed.iterdir() if p.is_file())[:count]:
                if not (target / image.name).exists():
                    shutil.copy2(image, target / image.name)
    return subset


def smoke_flags(flags: list[str]) -> list[str]:
    out = list(flags)
    if "--finetune" not in out:  # a frozen random backbone is refused (chance level): smoke rows train it all
        out += ["--finetune", "full"]
    for i, flag in enumerate(out[:-1]):
        if flag == "--weights":
            out[i + 1] = "none"
        elif flag == "--image-size":
            out[i + 1] = SMOKE_SIZES[out[i + 1]]
        elif flag == "--ema-decay":
            out[i + 1] = "0.5"  # a few steps only: 0.999 would keep the initial weights
        elif flag == "--lr":
            out[i + 1] = "2e-3"
        elif flag == "--backbone-lr-scale":
            out[i + 1] = "1.0"
    return out


def run_row(name: str, flags: list[str], data_dir: Path, out: Path, settings: dict[str, str]) -> dict[str, Any]:
    row_dir = out / name
    command = [sys.executable, "-m", "entry_points.train", "--data-dir", str(data_dir), "--model-dir",
               str(row_dir / "model"), "--output-dir", str(row_dir / "reports"), "--tta", "flip",
               "--cache-dir", str(out / "feature_cache"), *[x for k, v in settings.items() for x in (f"--{k}", v)],
               *flags]
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, cwd=REPO)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{name} failed ({' '.join(command)}):\n{done.stderr[-3000:]}")
    metrics = json.loads((row_dir / "reports" / "metrics.json").read_text())
    abstention = metrics.get("abstention", {})
    return {
        "row": name, "command": " ".join(command[1:]), "seconds": seconds,
        "test_acc": metrics["tta"]["test_acc_without_tta"], "test_acc_flip_tta": metrics["tta"]["test_acc"],
        "tta_cost_ratio": metrics["tta"]["end_to_end_cost_ratio"],
        "ece_before": metrics["calibration"]["test"]["ece_before"],
        "ece_after": metrics["calibration"]["test"]["ece_after"],
        "temperature": metrics["calibration"]["temperature"],
        "abstention_score": abstention.get("score"),
        "auroc": abstention.get("auroc_test_vs_ood", {}).get(abstention.get("score"), float("nan")),
    }


def markdown(rows: list[dict[str, Any]], descriptions: dict[str, str]) -> str:
    lines = ["| recipe | what | test acc | + flip TTA | TTA cost ratio | ECE before -> after | T | AUROC (score) "
             "| wall s |", "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['row']} | {descriptions[r['row']]} | {r['test_acc']:.4f} | {r['test_acc_flip_tta']:.4f} | "
                     f"{r['tta_cost_ratio']:.2f} | {r['ece_before']:.4f} -> {r['ece_after']:.4f} | "
                     f"{r['temperature']:.3g} | {r['auroc']:.3f} ({r['abstention_score']}) | {r['seconds']:.0f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true",
                        help="8/4/4 demo images per breed, weights none, 32/40 px, 1 epoch")
    parser.add_argument("--data-dir", type=Path, default=None, help="dataset root (train/ valid/ test/)")
    parser.add_argument("--rows", default="", help="comma-separated subset, e.g. R2,R7 (default: all)")
    parser.add_argument("--epochs", default=None, help="override every row's epochs")
    parser.add_argument("--batch-size", default=None, help="override every row's batch size")
    parser.add_argument("--out", type=Path, default=OUT_DIR)
    args = parser.parse_args()
    machine = print_machine()
    out = args.out / ("recipes_smoke" if args.smoke else "recipes")
    data_dir = args.data_dir
    if args.smoke and data_dir is None:
        data_dir = smoke_dataset(args.out)
    if data_dir is None:
        parser.error("--data-dir is required without --smoke")
    wanted = {r.strip() for r in args.rows.split(",") if r.strip()}
    rows, descriptions = [], {name: what for name, what, _ in GRID}
    for name, what, flags in GRID:
        if wanted and name not in wanted:
            continue
        settings = dict(SMOKE_SETTINGS if args.smoke else {**FULL_SETTINGS, "epochs": FULL_EPOCHS.get(name, "5")})
        settings.update({k: v for k, v in (("epochs", args.epochs), ("batch-size", args.batch_size)) if v})
        row = run_row(name, smoke_flags(flags) if args.smoke else flags, Path(data_dir), out, settings)
        print(f"{name}: test acc {row['test_acc']:.4f}, with flip TTA {row['test_acc_flip_tta']:.4f}, "
              f"TTA cost ratio {row['tta_cost_ratio']:.2f} ({row['seconds']:.0f} s)", flush=True)
        rows.append(row)
    table = markdown(rows, descriptions)
    print(("smoke mode (8/4/4 demo images per breed, weights none, 32/40 px, 1 epoch): the levers run; "
           "accuracies mean nothing\n"
           if args.smoke else "") + table)
    out.mkdir(parents=True, exist_ok=True)
    (out / "accuracy_recipes.md").write_text(table + "\n", encoding="utf-8")
    write_result("accuracy_recipes_smoke" if args.smoke else "accuracy_recipes",
                 {"machine": machine, "data_dir": str(data_dir), "rows": rows}, args.out)


if __name__ == "__main__":
    main()
