"""From scratch, full fine-tune: dogbreed learns as well as a plain PyTorch loop with the same budget.

The same generated photo-like dataset (benchlib: 10 classes, small JPEGs, 32 px crops; not separable by
one cue: hue, texture orientation and frequency, lighting, background and noise all vary), the same
ResNet50 from random weights, epochs, batch size, AdamW lr / weight decay, per-step cosine schedule and
training crop range, the same seed. Compared on test accuracy:

- the plain loop: torchvision ImageFolder + RandomResizedCrop(scale=(S, 1)) + flip, every parameter at lr;
- dogbreed ``--weights none --finetune full --crop-scale S`` (the backbone lr now follows --weights: 1.0);
- dogbreed with the old default backbone lr scale (0.1, meant for pretrained weights), to show the trap;
- both sides with the ImageNet crop range (S = 0.08) as well.

Bar: dogbreed's test accuracy >= the plain loop's - 0.05 at every crop range (the difference is printed).

    python bench/make_dataset.py   # not needed: this bench generates its own small dataset under --out
    python bench/bench_scratch_vs_loop.py            # 10 classes x 60 train / 20 valid / 20 test, 6 epochs
    python bench/bench_scratch_vs_loop.py --seed 1   # the same comparison with other random draws
    python bench/bench_scratch_vs_loop.py --smoke    # 3 classes x 8 / 4 / 4, 1 epoch
"""

from __future__ import annotations

import argparse
import logging
import math
import shutil
import time
from pathlib import Path
from typing import Any

import torch
from benchlib import OUT_DIR, make_dataset, print_machine, write_result
from torch import nn
from torch.utils.data import DataLoader
from torchvision import datasets
from torchvision import transforms as T
from torchvision.models import resnet50

MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
BAR = 0.05  # dogbreed may trail the plain loop by at most this much test accuracy


def plain_loop(data_dir: Path, *, epochs: int, batch_size: int, lr: float, weight_decay: float, image_size: int,
               crop_scale: float, seed: int) -> dict[str, Any]:
    """What a user would write by hand: ResNet50 from scratch, AdamW, a per-step cosine schedule."""
    torch.manual_seed(seed)
    start = time.perf_counter()
    train_tf = T.Compose([T.RandomResizedCrop(image_size, scale=(crop_scale, 1.0)), T.RandomHorizontalFlip(),
                          T.ToTensor(), T.Normalize(MEAN, STD)])
    eval_tf = T.Compose([T.Resize(round(image_size * 232 / 224)), T.CenterCrop(image_size), T.ToTensor(),
                         T.Normalize(MEAN, STD)])
    train_set = datasets.ImageFolder(str(data_dir / "train"), transform=train_tf)
    test_set = datasets.ImageFolder(str(data_dir / "test"), transform=eval_tf)
    train_loader = DataLoader(train_set, batch_size=batch_size, shuffle=True, drop_last=len(train_set) > batch_size)
    test_loader = DataLoader(test_set, batch_size=batch_size)
    model = resnet50(weights=None)
    model.fc = nn.Linear(model.fc.in_features, len(train_set.classes))
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(1, epochs * len(train_loader)))
    for _ in range(epochs):
        model.train()
        for images, targets in train_loader:
            optimizer.zero_grad()
            nn.functional.cross_entropy(model(images), targets).backward()
            optimizer.step()
            scheduler.step()
    model.eval()
    correct = 0
    with torch.no_grad():
        for images, targets in test_loader:
            correct += int((model(images).argmax(1) == targets).sum())
    return {"test_acc": correct / len(test_set), "seconds": time.perf_counter() - start}


def dogbreed_run(data_dir: Path, work: Path, *, epochs: int, batch_size: int, lr: float, weight_decay: float,
                 image_size: int, crop_scale: float, seed: int, backbone_lr_scale: float | None) -> dict[str, Any]:
    from dogbreed.config.options import TrainConfig
    from dogbreed.training.run import train

    values: dict[str, Any] = dict(
        data_dir=data_dir, model_dir=work / "model", output_dir=work / "reports", epochs=epochs,
        batch_size=batch_size, lr=lr, weight_decay=weight_decay, image_size=image_size, crop_scale=crop_scale,
        weights="none", finetune="full", num_workers=0, seed=seed, accelerator="cpu")
    if backbone_lr_scale is not None:
        values["backbone_lr_scale"] = backbone_lr_scale
    config = TrainConfig(**values)
    start = time.perf_counter()
    result = train(config)
    return {"test_acc": result.test_metrics["acc"], "train_acc": result.history[-1].get("train_acc"),
            "backbone_lr_scale": config.optimisation.backbone_lr_scale, "seconds": time.perf_counter() - start}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, for CI")
    parser.add_argument("--epochs", type=int, default=None, help="default 6 (smoke: 1)")
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--crop-scale", type=float, default=0.35, help="the gentler crop range compared")
    parser.add_argument("--seed", type=int, default=0, help="seed of both sides' runs (the dataset stays the same)")
    parser.add_argument("--out", type=Path, default=OUT_DIR)
    args = parser.parse_args()
    logging.getLogger("pytorch_lightning").setLevel(logging.ERROR)
    epochs = args.epochs or (1 if args.smoke else 6)
    classes, per_split = (3, {"train": 8, "valid": 4, "test": 4}) if args.smoke else \
        (10, {"train": 60, "valid": 20, "test": 20})
    budget = dict(epochs=epochs, batch_size=16 if args.smoke else 32, lr=args.lr, weight_decay=1e-4, image_size=32,
                  seed=args.seed)
    machine = print_machine()
    name = "scratch_smoke" if args.smoke else "scratch"
    data_dir = make_dataset(args.out / f"{name}_data", num_classes=classes, per_split=per_split, min_side=40,
                            max_side=96, seed=1)
    work = args.out / name
    shutil.rmtree(work, ignore_errors=True)
    print(f"data: {data_dir} ({classes} classes, {per_split}), budget: {budget}", flush=True)
    rows: dict[str, dict[str, Any]] = {}
    for scale in sorted({args.crop_scale, 0.08}, reverse=True):
        rows[f"plain loop, crop {scale}"] = plain_loop(data_dir, crop_scale=scale, **budget)
        rows[f"dogbreed, crop {scale}"] = dogbreed_run(data_dir, work / f"ours_{scale}", crop_scale=scale,
                                                       backbone_lr_scale=None, **budget)
    rows[f"dogbreed, crop {args.crop_scale}, old backbone lr scale 0.1"] = dogbreed_run(
        data_dir, work / "ours_old_scale", crop_scale=args.crop_scale, backbone_lr_scale=0.1, **budget)
    for label, row in rows.items():
        print(f"{label:<48} test_acc {row['test_acc']:.3f}  ({row['seconds']:.1f} s)", flush=True)
    verdicts = []
    for scale in sorted({args.crop_scale, 0.08}, reverse=True):
        ours, plain = rows[f"dogbreed, crop {scale}"]["test_acc"], rows[f"plain loop, crop {scale}"]["test_acc"]
        ratio = ours / plain if plain else math.inf
        passed = ours >= plain - BAR
        verdicts.append(passed)
        print(f"crop {scale}: ratio dogbreed/plain test_acc {ratio:.2f} (difference {ours - plain:+.3f}); "
              f"bar dogbreed >= plain - {BAR}: {'PASS' if passed else 'FAIL'}")
    result_name = f"{name}_smoke" if args.smoke else (name if args.seed == 0 else f"{name}_seed{args.seed}")
    write_result(result_name, {"machine": machine, "budget": budget, "classes": classes,
                 "per_split": per_split, "rows": rows, "bar": BAR, "passed": all(verdicts)}, args.out)


if __name__ == "__main__":
    main()
