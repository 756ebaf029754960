"""Accuracy on the prepared dataset vs the full-size photos: same seeds, same recipe (issue 14).

A photo-like dataset (10 classes x 30 train / 15 valid / 15 test, 400x300 to 1600x1200 JPEGs; neighbouring classes
are 36 degrees apart in hue and 18 degrees in texture orientation) and its prepared copy (``entry_points.prepare``
for the image size trained at). For each seed the same full fine-tune from scratch (``--weights none``: no ImageNet
weights offline) runs on both; the difference of the means is compared with the seed-to-seed spread. Accuracy is
not a timing: it does not depend on the machine's load.

    python bench/bench_prepared_accuracy.py                      # 3 seeds x 2 datasets, 64 px, 8 epochs
    python bench/bench_prepared_accuracy.py --seeds 5 --image-size 96
    python bench/bench_prepared_accuracy.py --smoke
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

from benchlib import OUT_DIR, make_dataset, print_machine, stopwatch, write_result

from dogbreed.config.options import TrainConfig
from dogbreed.data.prepare import prepare_dataset
from dogbreed.training.run import train

FULL = dict(num_classes=10, per_split={"train": 30, "valid": 15, "test": 15}, min_side=300, max_side=1600, seed=1)
SMOKE = dict(num_classes=3, per_split={"train": 4, "valid": 2, "test": 2}, min_side=120, max_side=320, seed=1)


def run_once(data_dir: Path, seed: int, args: argparse.Namespace, work: Path) -> dict[str, float]:
    config = TrainConfig(data_dir=data_dir, model_dir=work / "model", output_dir=work / "reports", seed=seed,
                         epochs=args.epochs, batch_size=args.batch_size, image_size=args.image_size, weights="none",
                         finetune="full", lr=args.lr, backbone_lr_scale=1.0, accelerator="cpu", num_workers=0)
    with stopwatch() as elapsed:
        result = train(config)
    return {"test_acc": result.test_metrics["acc"], "test_loss": result.test_metrics["loss"],
            "val_acc": result.history[-1]["val_acc"], "wall_s": elapsed["s"]}


def spread(values: list[float]) -> float:
    return statistics.stdev(values) if len(values) > 1 else 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--out", type=Path, default=OUT_DIR)
    args = parser.parse_args()
    if args.smoke:
        args.seeds, args.epochs, args.image_size, args.batch_size = 1, 1, 32, 4
    machine = print_machine()
    source = make_dataset(args.out / ("acc_smoke" if args.smoke else "acc_data"), **(SMOKE if args.smoke else FULL))
    prepared = args.out / (f"acc_{'smoke' if args.smoke else 'data'}_prepared_{args.image_size}")
    report = prepare_dataset(source, prepared, image_size=args.image_size, workers=2)
    print(f"bytes: {report.source_bytes} full-size -> {report.output_bytes} prepared "
          f"({100 * report.output_bytes / report.source_bytes:.1f}%; short side {report.short_side})", flush=True)
    runs: dict[str, list[dict[str, float]]] = {"full_size": [], "prepared": []}
    with tempfile.TemporaryDirectory(prefix="dogbreed-acc-") as tmp:
        for seed in range(args.seeds):
            for name, data_dir in (("full_size", source), ("prepared", prepared)):
                outcome = run_once(data_dir, seed, args, Path(tmp) / f"{name}-{seed}")
                runs[name].append(outcome)
                print(f"seed {seed} {name:>9}: test_acc {outcome['test_acc']:.3f} val_acc {outcome['val_acc']:.3f} "
                      f"test_loss {outcome['test_loss']:.3f} ({outcome['wall_s']:.0f} s)", flush=True)
    summary: dict[str, dict[str, float]] = {}
    for name, outcomes in runs.items():
        accs = [o["test_acc"] for o in outcomes]
        summary[name] = {"mean_test_acc": statistics.fmean(accs), "std_test_acc": spread(accs)}
        print(f"{name:>9}: test_acc mean {summary[name]['mean_test_acc']:.3f} "
              f"std {summary[name]['std_test_acc']:.3f} over {len(accs)} seed(s)")
    paired = [p["test_acc"] - f["test_acc"] for p, f in zip(runs["prepared"], runs["full_size"])]
    difference = statistics.fmean(paired)
    noise = max(summary["full_size"]["std_test_acc"], summary["prepared"]["std_test_acc"])
    verdict = "within noise" if abs(difference) <= noise else "outside the seed-to-seed spread"
    print(f"accuracy difference prepared - full-size: {difference:+.3f} (paired by seed: "
          f"{', '.join(f'{d:+.3f}' for d in paired)}); seed-to-seed spread {noise:.3f}: {verdict}")
    write_result("prepared_accuracy_smoke" if args.smoke else "prepared_accuracy", {
        "machine": machine, "args": {k: v for k, v in vars(args).items() if k != "out"}, "runs": runs,
        "summary": summary, "difference": difference, "paired": paired, "noise": noise, "verdict": verdict,
        "bytes": {"full_size": report.source_bytes, "prepared": report.output_bytes}}, args.out)


if __name__ == "__main__":
    main()
