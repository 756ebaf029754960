"""P4: full fine-tune step time through Lightning (our DogBreedClassifier + Trainer settings)
vs a raw PyTorch loop doing the same work (same network, channels-last, AdamW, cosine, CE).

Both train on the same in-memory batches (decode excluded: this measures the framework), the
first steps are warm-up, rounds rotate the order of the variants, medians reported. A third variant, the
raw loop with a contiguous (non channels-last) network, shows what the channels-last default buys.

    python bench/bench_finetune_step.py              # batch 16, 160px, 5 timed steps x 3 rounds
    python bench/bench_finetune_step.py --smoke
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time
from pathlib import Path

import pytorch_lightning as pl
import torch
from benchlib import OUT_DIR, print_machine, write_result
from pytorch_lightning.callbacks import Callback
from torch.utils.data import DataLoader, TensorDataset

from dogbreed.config.options import TrainConfig
from dogbreed.training.module import DogBreedClassifier
from dogbreed.training.run import build_trainer


class StepTimer(Callback):
    """Wall time of each training batch (forward, backward, optimiser, metrics, logging)."""

    def __init__(self) -> None:
        self.seconds: list[float] = []
        self._start = 0.0

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self._start = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.seconds.append(time.perf_counter() - self._start)


def lightning_steps(model: DogBreedClassifier, loader: DataLoader, steps: int) -> list[float]:
    timer = StepTimer()
    config = TrainConfig(accelerator="cpu", epochs=1, precision="auto")
    trainer = build_trainer(config, [timer], max_steps=steps, limit_val_batches=0, num_sanity_val_steps=0,
                            enable_progress_bar=False)
    trainer.fit(model, train_dataloaders=loader)
    return timer.seconds


def raw_steps(model: DogBreedClassifier, loader: DataLoader, steps: int, channels_last: bool) -> list[float]:
    net = model.net.to(memory_format=torch.channels_last if channels_last else torch.contiguous_format).train()
    optimizer = torch.optim.AdamW(net.parameters(), lr=1e-3, weight_decay=1e-4)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=steps)
    seconds = []
    for step, (images, targets) in enumerate(loader):
        if step == steps:
            break
        start = time.perf_counter()
        if channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        loss = torch.nn.functional.cross_entropy(net(images), targets)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        scheduler.step()
        seconds.append(time.perf_counter() - start)
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", type=Path, default=OUT_DIR)
    args = parser.parse_args()
    batch, size, timed, warmup = (4, 64, 2, 1) if args.smoke else (16, 160, 5, 2)
    machine = print_machine()
    pl.seed_everything(0, verbose=False)
    steps = timed + warmup
    data = TensorDataset(torch.randn(batch * steps, 3, size, size), torch.randint(0, 5, (batch * steps,)))
    loader = DataLoader(data, batch_size=batch, shuffle=False)
    template = DogBreedClassifier(num_classes=5, finetune="full", lr=1e-3, backbone_lr_scale=1.0)
    times: dict[str, list[float]] = {"raw": [], "lightning": [], "raw_contiguous": []}
    variants = {
        "raw": lambda: raw_steps(copy.deepcopy(template), loader, steps, channels_last=True),
        "lightning": lambda: lightning_steps(copy.deepcopy(template), loader, steps),
        "raw_contiguous": lambda: raw_steps(copy.deepcopy(template), loader, steps, channels_last=False),
    }
    order = list(variants)
    for round_index in range(1 if args.smoke else args.rounds):
        for name in order[round_index % 3:] + order[:round_index % 3]:  # rotate: no variant always first
            times[name] += variants[name]()[warmup:]
    medians = {name: statistics.median(values) for name, values in times.items()}
    print(f"full fine-tune step, batch {batch}, {size}px: raw loop {medians['raw']:.3f} s, Lightning "
          f"{medians['lightning']:.3f} s, ratio Lightning/raw {medians['lightning'] / medians['raw']:.3f} "
          f"(median of {len(times['raw'])} steps each)")
    print(f"channels-last vs contiguous (raw loop): {medians['raw_contiguous'] / medians['raw']:.2f}x faster "
          f"({medians['raw_contiguous']:.3f} s contiguous)")
    write_result("p4_smoke" if args.smoke else "p4", {"machine": machine, "batch": batch, "size": size,
                 "median_step_s": medians, "steps_s": times}, args.out)


if __name__ == "__main__":
    main()
