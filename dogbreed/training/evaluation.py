"""Logits of the model as it will be served (the artifact's TTA, float32) over a list of images or over cached
features, with the wall time per image: what calibration, abstention and the TTA cost report are computed on."""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from functools import partial
from typing import Sequence

import torch
from torch.utils.data import DataLoader, Dataset
from torchvision.models import ResNet

from dogbreed.core.images import ImageSource
from dogbreed.core.transforms import Preprocessing, decode_eval_image
from dogbreed.core.tta import build_tta_transform, tta_logits
from dogbreed.training.feature_cache import CachedFeatures


@dataclass(frozen=True)
class SplitLogits:
    """``logits`` (N, C) float32 on the CPU, ``labels`` (N,) (-1 for images without a breed)."""

    logits: torch.Tensor
    labels: torch.Tensor

    @property
    def accuracy(self) -> float:
        if self.labels.numel() == 0:
            return float("nan")
        return float((self.logits.argmax(dim=1) == self.labels).double().mean())


class _Images(Dataset):
    def __init__(self, sources: Sequence[ImageSource], pre: Preprocessing, tta: str) -> None:
        self.sources, self.transform = list(sources), build_tta_transform(pre, tta)
        self.decode = partial(decode_eval_image, pre=pre)

    def __len__(self) -> int:
        return len(self.sources)

    def __getitem__(self, index: int) -> torch.Tensor:
        return self.transform(self.decode(self.sources[index]))


@torch.inference_mode()
def image_logits(
    net: ResNet, sources: Sequence[ImageSource], labels: Sequence[int] | None = None, *, pre: Preprocessing,
    tta: str, batch_size: int, num_workers: int = 0,
) -> SplitLogits:
    """Decode and preprocess exactly as serving does, forward every TTA view, average the logits."""
    device = next(net.parameters()).device
    was_training = net.training
    net.eval()
    # PIL images in memory cannot go to worker processes cheaply; files can.
    workers = num_workers if all(not hasattr(s, "getpixel") for s in sources) else 0
    loader = DataLoader(_Images(sources, pre, tta), batch_size=batch_size, shuffle=False, num_workers=workers)
    chunks = [tta_logits(net, batch.to(device, non_blocking=True), tta, pre.image_size).cpu() for batch in loader]
    net.train(was_training)
    logits = torch.cat(chunks) if chunks else torch.empty(0, net.fc.out_features)
    targets = torch.tensor(list(labels) if labels is not None else [-1] * len(sources), dtype=torch.long)
    return SplitLogits(logits, targets)


@torch.inference_mode()
def tta_cost(net: ResNet, sources: Sequence[ImageSource], *, pre: Preprocessing, tta: str,
             repeats: int = 3) -> dict[str, float]:
    """Seconds per image with ``tta`` and without, on the same images, interleaved after a warm-up (medians of
    ``repeats``): end to end (decode, preprocess, forward, as serving runs it) and the forward alone."""
    device = next(net.parameters()).device
    was_training = net.training
    net.eval()
    modes = {"tta": (tta, build_tta_transform(pre, tta)), "none": ("none", build_tta_transform(pre, "none"))}

    def timed(mode: str, transform: object, decoded: list | None) -> tuple[float, float]:
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        images = decoded if decoded is not None else [decode_eval_image(source, pre) for source in sources]
        batch = torch.stack([transform(image) for image in images]).to(device)  # type: ignore[operator]
        forward_start = time.perf_counter()
        tta_logits(net, batch, mode, pre.image_size)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        end = time.perf_counter()
        return end - start, end - forward_start

    for mode, transform in modes.values():  # warm-up: lazy initialisation, caches
        timed(mode, transform, None)
    runs: dict[str, list[tuple[float, float]]] = {name: [] for name in modes}
    for _ in range(repeats):
        for name, (mode, transform) in modes.items():
            runs[name].append(timed(mode, transform, None))
    net.train(was_training)
    count = max(1, len(sources))
    cost = {f"{kind}_seconds_per_image{'' if name == 'tta' else '_without_tta'}":
            statistics.median(run[index] for run in runs[name]) / count
            for name in modes for index, kind in enumerate(("end_to_end", "forward"))}
    cost["end_to_end_cost_ratio"] = cost["end_to_end_seconds_per_image"] / max(
        cost["end_to_end_seconds_per_image_without_tta"], 1e-12)
    cost["forward_cost_ratio"] = cost["forward_seconds_per_image"] / max(
        cost["forward_seconds_per_image_without_tta"], 1e-12)
    return cost


@torch.inference_mode()
def feature_logits(net: ResNet, cached: CachedFeatures) -> SplitLogits:
    """The head applied to cached eval-view features (view 0): the no-TTA logits without a backbone pass."""
    head = net.fc
    device = head.weight.device
    logits = head(cached.features[:, 0].to(device, dtype=head.weight.dtype)).float().cpu()
    return SplitLogits(logits, cached.labels.clone())
