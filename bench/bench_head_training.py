"""P1 + local HPO: head-only training, ours (feature cache) vs the original loop (bench/baseline_loop.py).

Both sides use the same backbone: a seeded ``weights=None`` ResNet50 (offline: no ImageNet
weights), saved once and given to ours with ``--weights PATH``. Same data, epochs, batch 64, lr.

    python bench/bench_head_training.py             # 5 classes x (40 train + 10 valid), 10 epochs, 8 trials
    python bench/bench_head_training.py --smoke     # tiny, for tests
"""

from __future__ import annotations

import argparse
import contextlib
import io
import logging
import shutil
from pathlib import Path
from typing import Any

import torch
from baseline_loop import train_baseline
from benchlib import OUT_DIR, print_machine, stopwatch, write_result
from make_dataset import dataset_for
from torchvision.models import resnet50

from dogbreed.config.options import TrainConfig
from dogbreed.training.run import train


def seeded_backbone(path: Path, seed: int = 0) -> Path:
    """The shared random-init backbone (same file for ours and the baseline)."""
    if not path.is_file():
        torch.manual_seed(seed)
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save(resnet50(weights=None).state_dict(), path)
    return path


def run_ours(data_dir: Path, work: Path, weights: Path, *, epochs: int, lr: float, image_size: int) -> dict[str, Any]:
    config = TrainConfig(
        data_dir=data_dir, model_dir=work / "model", output_dir=work / "reports", cache_dir=work / "feature_cache",
        epochs=epochs, batch_size=64, lr=lr, image_size=image_size, weights=str(weights), finetune="head",
        cached_views=1, accelerator="cpu", seed=0,
    )
    with stopwatch() as timer, contextlib.redirect_stdout(io.StringIO()):
        result = train(config)
    return {"seconds": timer["s"], "val_acc": result.history[-1]["val_acc"], "test_acc": result.test_metrics["acc"]}


def hpo_with_cache(data_dir: Path, work: Path, weights: Path, *, trials: int, epochs: int, image_size: int) -> dict:
    """``trials`` Optuna trials over lr (log-uniform 1e-5..1e-2) from a cold cache."""
    import optuna

    shutil.rmtree(work / "feature_cache", ignore_errors=True)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=0))
    seconds: list[float] = []

    def objective(trial: optuna.Trial) -> float:
        lr = trial.suggest_float("lr", 1e-5, 1e-2, log=True)
        run = run_ours(data_dir, work, weights, epochs=epochs, lr=lr, image_size=image_size)
        seconds.append(run["seconds"])
        return run["val_acc"]

    with stopwatch() as timer:
        study.optimize(objective, n_trials=trials)
    return {"seconds": timer["s"], "trial_seconds": seconds, "best_val_acc": study.best_value,
            "best_lr": study.best_params["lr"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true", help="tiny sizes (tests)")
    parser.add_argument("--epochs", type=int, default=None, help="default 10 (smoke: 2)")
    parser.add_argument("--trials", type=int, default=None, help="HPO trials, default 8 (smoke: 2)")
    parser.add_argument("--lr", type=float, default=3e-3, help="same lr for both sides")
    parser.add_argument("--out", type=Path, default=OUT_DIR)
    args = parser.parse_args()
    logging.getLogger("pytorch_lightning").setLevel(logging.ERROR)
    epochs = args.epochs or (2 if args.smoke else 10)
    trials = args.trials or (2 if args.smoke else 8)
    image_size = 64 if args.smoke else 224
    machine = print_machine()
    data_dir = dataset_for(args.smoke, args.out / ("data_smoke" if args.smoke else "data"))
    work = args.out / ("p1_smoke" if args.smoke else "p1")
    shutil.rmtree(work, ignore_errors=True)
    weights = seeded_backbone(work / "backbone_seed0.pth")
    print(f"data: {data_dir}, {epochs} epochs, batch 64, lr {args.lr}, image {image_size}px, "
          "backbone: seeded weights=None ResNet50 (same file both sides)", flush=True)
    ours_cold = run_ours(data_dir, work, weights, epochs=epochs, lr=args.lr, image_size=image_size)
    print(f"ours, cold cache (extraction included): {ours_cold['seconds']:.1f} s, val_acc {ours_cold['val_acc']:.3f}")
    ours_warm = run_ours(data_dir, work, weights, epochs=epochs, lr=args.lr, image_size=image_size)
    print(f"ours, warm cache: {ours_warm['seconds']:.1f} s, val_acc {ours_warm['val_acc']:.3f}", flush=True)
    state = torch.load(weights, weights_only=True)
    base = train_baseline(data_dir, epochs=epochs, lr=args.lr, image_size=image_size, backbone_state=state)
    epoch_cost = sum(base["epoch_seconds"]) / len(base["epoch_seconds"])
    print(f"baseline: {base['seconds']:.1f} s ({epoch_cost:.1f} s/epoch), val_acc {base['val_acc']:.3f}")
    print(f"P1 ratio baseline/ours: cold cache {base['seconds'] / ours_cold['seconds']:.1f}x, "
          f"warm cache {base['seconds'] / ours_warm['seconds']:.1f}x; val_acc ours {ours_cold['val_acc']:.3f} "
          f"vs baseline {base['val_acc']:.3f}", flush=True)
    hpo = hpo_with_cache(data_dir, work, weights, trials=trials, epochs=epochs, image_size=image_size)
    estimate = trials * base["seconds"]
    print(f"HPO {trials} trials with the cache (cold start): {hpo['seconds']:.1f} s, best val_acc "
          f"{hpo['best_val_acc']:.3f} at lr {hpo['best_lr']:.2e}; baseline estimate {trials} x {base['seconds']:.1f} s "
          f"= {estimate:.0f} s; ratio {estimate / hpo['seconds']:.1f}x")
    write_result("p1_smoke" if args.smoke else "p1", {"machine": machine, "epochs": epochs, "lr": args.lr,
                 "ours_cold": ours_cold, "ours_warm": ours_warm, "baseline": base, "hpo": hpo,
                 "hpo_baseline_estimate_s": estimate}, args.out)


if __name__ == "__main__":
    main()
