"""Training-pipeline decode + augment throughput per core, full-size photos vs the prepared dataset (issue 14).

One process, one torch thread by default (what each DataLoader worker gets). On the same photo-like JPEGs
(bench/out/data: 400x300 to 1600x1200) and on their prepared copy (``entry_points.prepare``, short side 258):

- baseline: torchvision ImageFolder + PIL default loader + RandomResizedCrop/RandomHorizontalFlip/ToTensor/Normalize;
- ours: the training dataset of ``DogBreedDataModule`` (crop drawn first, JPEG draft decoding, uint8 tensor ops);
- alternative: ``torchvision.io.decode_jpeg`` + ``transforms.v2`` on uint8 tensors (no draft decoding possible);
- floor: decoding alone at the smallest DCT scale (1/8): the entropy decoding no JPEG decoder can skip.

Rounds are interleaved (baseline, ours, alternative, floor, baseline, ...); the best round of each is reported,
as images per second of wall time and per CPU-second. Bytes before/after come from the prepare manifest.

    python bench/bench_pipeline.py                 # 1 torch thread, 3 rounds
    python bench/bench_pipeline.py --smoke
"""

from __future__ import annotations

import argparse
import io
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import torch
from benchlib import OUT_DIR, print_machine, write_result
from make_dataset import dataset_for
from PIL import Image
from torchvision import datasets
from torchvision import io as tvio
from torchvision import transforms as T
from torchvision.transforms import v2

from dogbreed.core.transforms import Preprocessing
from dogbreed.data.datamodule import DogBreedDataModule
from dogbreed.data.prepare import prepare_dataset
from dogbreed.data.splits import SplitDirs


def rates(fn: Callable[[int], Any], count: int) -> tuple[float, float]:
    """(images per wall second, images per CPU second) of ``fn(0..count-1)``."""
    wall, cpu = time.perf_counter(), time.process_time()
    for index in range(count):
        fn(index)
    return count / (time.perf_counter() - wall), count / max(1e-9, time.process_time() - cpu)


def baseline_dataset(split_dir: Path, pre: Preprocessing) -> datasets.ImageFolder:
    recipe = T.Compose([T.RandomResizedCrop(pre.image_size, antialias=True), T.RandomHorizontalFlip(),
                        T.ToTensor(), T.Normalize(pre.mean, pre.std)])
    return datasets.ImageFolder(str(split_dir), transform=recipe)


def our_dataset(data_dir: Path, pre: Preprocessing) -> Sequence:
    splits = SplitDirs.from_data_dir(data_dir)  # train/ + valid/: test on valid, so train stays whole
    dm = DogBreedDataModule(SplitDirs(splits.train, splits.valid, splits.test or splits.valid), preprocessing=pre,
                            allow_duplicates=True)  # valid may stand in for test: timing only
    dm.setup()
    return dm.datasets["train"]


def tensor_pipeline(paths: list[Path], pre: Preprocessing) -> Callable[[int], torch.Tensor]:
    """decode_jpeg (EXIF applied) + v2 RandomResizedCrop/flip on uint8, then float and normalise."""
    recipe = v2.Compose([v2.RandomResizedCrop(pre.image_size, antialias=True), v2.RandomHorizontalFlip(),
                         v2.ToDtype(torch.float32, scale=True), v2.Normalize(pre.mean, pre.std)])

    def load(index: int) -> torch.Tensor:
        data = tvio.read_file(str(paths[index]))
        return recipe(tvio.decode_jpeg(data, mode=tvio.ImageReadMode.RGB, apply_exif_orientation=True))
    return load


def draft_floor(paths: list[Path]) -> Callable[[int], Image.Image]:
    def decode(index: int) -> Image.Image:
        with Image.open(io.BytesIO(paths[index].read_bytes())) as image:
            image.draft("RGB", (image.width // 8, image.height // 8))
            image.load()
            return image
    return decode


def measure(data_dir: Path, pre: Preprocessing, rounds: int) -> dict[str, dict[str, float]]:
    base = baseline_dataset(data_dir / "train", pre)
    ours = our_dataset(data_dir, pre)
    paths = [Path(p) for p, _ in base.samples]
    assert paths == [p for p, _ in ours.samples], "baseline and ours must read the same files in the same order"
    variants: dict[str, Callable[[int], Any]] = {
        "baseline": base.__getitem__, "ours": ours.__getitem__,
        "decode_jpeg_v2": tensor_pipeline(paths, pre), "draft_1_8_decode_only": draft_floor(paths),
    }
    best: dict[str, dict[str, float]] = {name: {"img_s": 0.0, "img_per_cpu_s": 0.0} for name in variants}
    for _ in range(rounds):
        for name, fn in variants.items():
            torch.manual_seed(0)
            wall, cpu = rates(fn, len(paths))
            best[name]["img_s"] = max(best[name]["img_s"], wall)
            best[name]["img_per_cpu_s"] = max(best[name]["img_per_cpu_s"], cpu)
    for name in variants:
        best[name]["count"] = len(paths)
    return best


def show(label: str, results: dict[str, dict[str, float]], reference: dict[str, float]) -> None:
    for name, r in results.items():
        print(f"{label} {name:>22}: {r['img_s']:8.1f} img/s ({r['img_per_cpu_s']:8.1f} per CPU-s), ratio vs "
              f"baseline on full-size photos {r['img_s'] / reference['img_s']:5.2f}x "
              f"({r['img_per_cpu_s'] / reference['img_per_cpu_s']:5.2f}x in CPU time)", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads (DataLoader workers get 1)")
    parser.add_argument("--out", type=Path, default=OUT_DIR)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    machine = print_machine()
    image_size = 64 if args.smoke else 224
    pre = Preprocessing(image_size=image_size)
    data_dir = dataset_for(args.smoke, args.out / ("data_smoke" if args.smoke else "data"))
    prepared_dir = args.out / ("data_smoke_prepared" if args.smoke else "data_prepared")
    report = prepare_dataset(data_dir, prepared_dir, image_size=image_size, workers=2)
    print(f"bytes: {report.source_bytes} full-size -> {report.output_bytes} prepared "
          f"({100 * report.output_bytes / report.source_bytes:.1f}%; short side {report.short_side})", flush=True)
    rounds = 1 if args.smoke else args.rounds
    full = measure(data_dir, pre, rounds)
    prepared = measure(prepared_dir, pre, rounds)
    show("full-size", full, full["baseline"])
    show("prepared ", prepared, full["baseline"])
    ratios = {
        "ours_vs_baseline_full": full["ours"]["img_s"] / full["baseline"]["img_s"],
        "ours_prepared_vs_baseline_full": prepared["ours"]["img_s"] / full["baseline"]["img_s"],
        "ours_prepared_vs_baseline_prepared": prepared["ours"]["img_s"] / prepared["baseline"]["img_s"],
    }
    print(f"ratio ours/baseline, full-size photos: {ratios['ours_vs_baseline_full']:.2f}x (target 3x); "
          f"ours on the prepared dataset / baseline on full-size photos: "
          f"{ratios['ours_prepared_vs_baseline_full']:.2f}x (target 5x); both on the prepared dataset: "
          f"{ratios['ours_prepared_vs_baseline_prepared']:.2f}x", flush=True)
    print(f"torch threads: {torch.get_num_threads()}")
    write_result("pipeline_smoke" if args.smoke else "pipeline", {
        "machine": machine, "image_size": image_size, "full_size": full, "prepared": prepared, "ratios": ratios,
        "bytes": {"full_size": report.source_bytes, "prepared": report.output_bytes,
                  "share": report.output_bytes / report.source_bytes}}, args.out)


if __name__ == "__main__":
    main()
