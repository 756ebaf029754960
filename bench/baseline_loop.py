"""The baseline: how the original project trained, written by us from its description.

torchvision ImageFolder + PIL + torchvision transforms (Resize 224, RandomRotation 5, flip,
RandomCrop 224 pad 10, Normalize; eval Resize 224 + CenterCrop 224), a frozen ResNet50 run on
every batch of every epoch, a new Linear head, AdamW, batch size 64. One deliberate difference:
the frozen backbone is kept in eval mode (the original's ``model.train()`` would also move the
BatchNorm running statistics), so both sides of a comparison use the identical backbone.

    python bench/baseline_loop.py --epochs 2          # on bench/out/data
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader
from torchvision import datasets
from torchvision import transforms as T
from torchvision.models import ResNet, resnet50

MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def original_transforms(image_size: int) -> tuple[T.Compose, T.Compose]:
    train = T.Compose([T.Resize(image_size), T.RandomRotation(5), T.RandomHorizontalFlip(0.5),
                       T.RandomCrop(image_size, padding=10), T.ToTensor(), T.Normalize(MEAN, STD)])
    valid = T.Compose([T.Resize(image_size), T.CenterCrop(image_size), T.ToTensor(), T.Normalize(MEAN, STD)])
    return train, valid


def frozen_resnet50(num_classes: int, backbone_state: dict[str, torch.Tensor] | None) -> ResNet:
    model = resnet50(weights=None)
    if backbone_state is not None:
        model.load_state_dict({k: v for k, v in backbone_state.items() if not k.startswith("fc.")}, strict=False)
    for param in model.parameters():
        param.requires_grad = False
    model.fc = nn.Linear(model.fc.in_features, num_classes)
    return model


def evaluate(model: ResNet, loader: DataLoader) -> tuple[float, float]:
    """(mean loss per sample, accuracy)."""
    model.eval()
    loss_sum, correct, count = 0.0, 0, 0
    with torch.no_grad():
        for images, targets in loader:
            logits = model(images)
            loss_sum += nn.functional.cross_entropy(logits, targets, reduction="sum").item()
            correct += int((logits.argmax(1) == targets).sum())
            count += targets.numel()
    return loss_sum / count, correct / count


def train_baseline(
    data_dir: Path, *, epochs: int, batch_size: int = 64, image_size: int = 224, lr: float = 1e-3,
    seed: int = 0, backbone_state: dict[str, torch.Tensor] | None = None, num_workers: int = 0,
) -> dict[str, Any]:
    """Train the head the original way; returns wall time, per-epoch times and final val accuracy."""
    torch.manual_seed(seed)
    start = time.perf_counter()
    train_tf, valid_tf = original_transforms(image_size)
    train_set = datasets.ImageFolder(str(data_dir / "train"), transform=train_tf)
    valid_set = datasets.ImageFolder(str(data_dir / "valid"), transform=valid_tf)
    train_loader = DataLoader(train_set, batch_size=batch_size, shuffle=True, num_workers=num_workers)
    valid_loader = DataLoader(valid_set, batch_size=batch_size, shuffle=False, num_workers=num_workers)
    model = frozen_resnet50(len(train_set.classes), backbone_state)
    optimizer = torch.optim.AdamW(model.fc.parameters(), lr=lr)
    epoch_seconds, history = [], []
    for epoch in range(epochs):
        epoch_start = time.perf_counter()
        model.train()
        model.apply(lambda m: m.eval() if isinstance(m, nn.BatchNorm2d) else None)  # frozen backbone
        for images, targets in train_loader:
            optimizer.zero_grad()
            loss = nn.functional.cross_entropy(model(images), targets)
            loss.backward()
            optimizer.step()
        val_loss, val_acc = evaluate(model, valid_loader)
        epoch_seconds.append(time.perf_counter() - epoch_start)
        history.append({"epoch": epoch + 1, "val_loss": val_loss, "val_acc": val_acc})
    return {"seconds": time.perf_counter() - start, "epoch_seconds": epoch_seconds,
            "val_acc": history[-1]["val_acc"], "history": history}


def main() -> None:
    from benchlib import OUT_DIR, print_machine

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", type=Path, default=OUT_DIR / "data")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--backbone", type=Path, default=None, help="a resnet50 state_dict (default: random init)")
    args = parser.parse_args()
    print_machine()
    backbone = torch.load(args.backbone, map_location="cpu", weights_only=True) if args.backbone else None
    result = train_baseline(args.data_dir, epochs=args.epochs, lr=args.lr, image_size=args.image_size,
                            backbone_state=backbone)
    print(f"baseline: {result['seconds']:.1f} s, epochs {[round(s, 1) for s in result['epoch_seconds']]}, "
          f"val_acc {result['val_acc']:.3f}")


if __name__ == "__main__":
    main()
