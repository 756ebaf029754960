"""P2: decode + preprocess images/s, ours vs torchvision ImageFolder with default PIL loading.

Eval path: ImageFolder (pil_loader) + Resize/CenterCrop/ToTensor/Normalize vs our eval dataset
(JPEG draft decode + the same resize/crop + one-pass NumPy normalisation). Train path: the same
RandomResizedCrop/flip recipe both sides (ours without draft). Single process, rounds
interleaved (baseline, ours, baseline, ours, ...), best round reported. Also prints the mean
|difference| of our eval tensors from the plain ones.

    python bench/bench_decode.py            # bench/out/data (250 JPEGs, 400x300..1600x1200)
    python bench/bench_decode.py --smoke
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Sequence

import torch
from benchlib import OUT_DIR, print_machine, write_result
from make_dataset import dataset_for
from torchvision import datasets
from torchvision import transforms as T

from dogbreed.core.transforms import Preprocessing
from dogbreed.data.datamodule import DogBreedDataModule
from dogbreed.data.splits import SplitDirs


def images_per_second(dataset: Sequence, count: int) -> float:
    start = time.perf_counter()
    for index in range(count):
        dataset[index]
    return count / (time.perf_counter() - start)


def torchvision_sets(root: Path, pre: Preprocessing) -> dict[str, datasets.ImageFolder]:
    normalize = [T.ToTensor(), T.Normalize(pre.mean, pre.std)]
    eval_tf = T.Compose([T.Resize(pre.resize_size, antialias=True), T.CenterCrop(pre.image_size), *normalize])
    train_tf = T.Compose([T.RandomResizedCrop(pre.image_size, antialias=True), T.RandomHorizontalFlip(), *normalize])
    return {"eval": datasets.ImageFolder(str(root), transform=eval_tf),
            "train": datasets.ImageFolder(str(root), transform=train_tf)}


def our_sets(data_dir: Path, split: str, pre: Preprocessing) -> dict[str, Sequence]:
    """Our eval dataset for ``split`` (used as 'valid' so it gets the eval decode) and our train one."""
    folder = data_dir / split  # as test too: a missing test split would be carved out of train
    as_valid = DogBreedDataModule(SplitDirs(train=folder, valid=folder, test=folder), preprocessing=pre,
                                  allow_duplicates=True)  # one folder read as each split: timing only
    as_valid.setup()
    return {"eval": as_valid.datasets["valid"], "train": as_valid.datasets["train"]}


def compare(name: str, baseline: Sequence, ours: Sequence, count: int, rounds: int) -> dict[str, float]:
    base_rates, our_rates = [], []
    for _ in range(rounds):
        base_rates.append(images_per_second(baseline, count))
        our_rates.append(images_per_second(ours, count))
    base, our = max(base_rates), max(our_rates)
    print(f"{name}: torchvision ImageFolder {base:.1f} img/s, ours {our:.1f} img/s, ratio {our / base:.2f}x "
          f"(best of {rounds} interleaved rounds, {count} images each)", flush=True)
    return {"baseline_img_s": base, "ours_img_s": our, "ratio": our / base}


def mean_abs_diff(baseline: Sequence, ours: Sequence, count: int) -> float:
    diffs = [(baseline[i][0] - ours[i][0]).abs().mean().item() for i in range(count)]
    return sum(diffs) / len(diffs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", type=Path, default=OUT_DIR)
    parser.add_argument("--threads", type=int, default=None,
                        help="torch intra-op threads (DataLoader workers run with 1); default: torch's choice")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    machine = print_machine()
    data_dir = dataset_for(args.smoke, args.out / ("data_smoke" if args.smoke else "data"))
    pre = Preprocessing(image_size=64 if args.smoke else 224)
    base, ours = torchvision_sets(data_dir / "train", pre), our_sets(data_dir, "train", pre)
    assert [s[1] for s in base["eval"].samples] == [label for _, label in ours["eval"].samples]
    count = len(ours["eval"])
    results = {name: compare(name, base[name], ours[name], count, 1 if args.smoke else args.rounds)
               for name in ("eval", "train")}
    results["eval_mean_abs_diff"] = mean_abs_diff(base["eval"], ours["eval"], count)
    print(f"eval tensors, mean |ours - plain| (normalised units): {results['eval_mean_abs_diff']:.4f}")
    print(f"torch threads for these per-image ops: {torch.get_num_threads()}")
    write_result("p2_smoke" if args.smoke else "p2", {"machine": machine, **results}, args.out)


if __name__ == "__main__":
    main()
