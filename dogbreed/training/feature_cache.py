"""Backbone feature cache for head-only training: pooled ResNet50 features, computed once.

One file per distinct split content under the cache dir, named by a key that hashes everything the features
depend on: the image files (path, size, mtime), the backbone weights, the preprocessing, the
number of views and (for augmented views only) the seed. A changed input gives a new key, so
a stale file is never read; a file whose metadata, shapes or checksum do not match is rebuilt.
Files are float16 (float32 if a value would overflow) and written atomically.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import json
import logging
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, Callable, Sequence

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset
from torchvision.models import ResNet

from dogbreed.core.fileio import atomic_write
from dogbreed.core.network import HEAD_PREFIX
from dogbreed.core.transforms import Preprocessing, build_eval_transform, build_train_transform, decode_eval_image
from dogbreed.data.datamodule import ImageFileDataset
from dogbreed.data.progress import Progress

logger = logging.getLogger(__name__)

CACHE_FORMAT_VERSION = 1
FP16_MAX = 65504.0


@dataclass(frozen=True)
class CachedFeatures:
    """``features``: (N, K, D) pooled backbone outputs, K views per image; ``labels``: (N,)."""

    features: torch.Tensor
    labels: torch.Tensor

    @property
    def views(self) -> int:
        return int(self.features.shape[1])


def backbone_digest(net: ResNet) -> str:
    """SHA-256 of every backbone tensor (names, shapes, dtypes, values); the head is excluded."""
    digest = hashlib.sha256()
    for name, tensor in sorted(net.state_dict().items()):
        if name.startswith(HEAD_PREFIX):
            continue
        value = tensor.detach().cpu().contiguous()
        digest.update(f"{name}:{tuple(value.shape)}:{value.dtype}".encode())
        digest.update(value.reshape(-1).view(torch.uint8).numpy().tobytes() if value.numel() else b"")
    return digest.hexdigest()


def cache_key(
    samples: Sequence[tuple[Path, int]], *, backbone: str, preprocessing: Preprocessing,
    views: int, augmented: bool, seed: int,
) -> str:
    """Hex key of one split's cache. The seed only matters (and only counts) for augmented views."""
    files = []
    for path, label in samples:
        stat = Path(path).stat()
        files.append([str(Path(path).resolve()), stat.st_size, stat.st_mtime_ns, label])
    spec = {
        "format": CACHE_FORMAT_VERSION, "files": files, "backbone": backbone,
        # The training crop range shapes augmented views only: eval-view caches survive a --crop-scale change.
        "preprocessing": preprocessing.to_dict() if augmented else preprocessing.eval_dict(),
        "views": views, "augmented": augmented,
        "seed": seed if augmented else None, "torch": torch.__version__.split("+")[0],
    }
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()


def _checksum(features: torch.Tensor, labels: torch.Tensor) -> str:
    digest = hashlib.sha256(features.contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    digest.update(labels.contiguous().numpy().tobytes())
    return digest.hexdigest()


def save_features(path: Path, key: str, cached: CachedFeatures) -> None:
    """Write via a temp file in the same dir and an atomic rename: readers never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "format": CACHE_FORMAT_VERSION, "key": key, "features": cached.features, "labels": cached.labels,
        "shape": list(cached.features.shape), "checksum": _checksum(cached.features, cached.labels),
    }
    atomic_write(path, lambda handle: torch.save(payload, handle))


def load_features(path: Path, key: str, count: int, views: int) -> CachedFeatures | None:
    """The cached features if the file is complete and matches ``key``; None (with a log line) if not."""
    if not path.is_file():
        return None
    try:
        payload: dict[str, Any] = torch.load(path, map_location="cpu", weights_only=True)
        features, labels = payload["features"], payload["labels"]
        problems = [
            (payload.get("format") != CACHE_FORMAT_VERSION, "format version"),
            (payload.get("key") != key, "key"),
            (features.dim() != 3 or tuple(features.shape[:2]) != (count, views), "feature shape"),
            (list(features.shape) != payload.get("shape"), "recorded shape"),
            (tuple(labels.shape) != (count,), "label count"),
            (payload.get("checksum") != _checksum(features, labels), "checksum"),
        ]
    except Exception as exc:  # noqa: BLE001 - truncated/corrupt files raise many types; all mean "rebuild"
        logger.warning("feature cache %s is unreadable (%s): rebuilding it", path, exc)
        return None
    bad = [name for failed, name in problems if failed]
    if bad:
        logger.warning("feature cache %s does not match (%s): rebuilding it", path, ", ".join(bad))
        return None
    return CachedFeatures(features=features, labels=labels)


def feature_extractor(net: ResNet, device: torch.device) -> nn.Module:
    """A copy of ``net`` without its head, in eval mode (BatchNorm uses running stats), channels-last."""
    backbone = copy.deepcopy(net)
    backbone.fc = nn.Identity()
    return backbone.to(device, memory_format=torch.channels_last).eval().requires_grad_(False)


class _SeededView(Dataset):
    """View ``view`` of every image, its random augmentation seeded by (seed, view, index), so
    the result does not depend on worker count or order."""

    def __init__(self, images: ImageFileDataset, view: int, seed: int) -> None:
        self.images, self.view, self.seed = images, view, seed

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed((self.seed * 1_000_003 + self.view) * 1_000_003 + index)
            return self.images[index]


@torch.inference_mode()
def extract_features(
    backbone: nn.Module, dataset: Dataset, *, batch_size: int, num_workers: int,
    device: torch.device, autocast_dtype: torch.dtype | None = None, progress: Progress | None = None,
) -> torch.Tensor:
    """Pooled features (N, D) of a dataset of (image, label), float32 on the CPU; ``progress`` counts images."""
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=num_workers,
                        pin_memory=device.type == "cuda")
    chunks = []
    for images, _ in loader:
        images = images.to(device, non_blocking=True, memory_format=torch.channels_last)
        autocast = torch.autocast(device.type, dtype=autocast_dtype) if autocast_dtype else contextlib.nullcontext()
        with autocast:
            chunks.append(backbone(images).float().cpu())
        if progress is not None:
            progress.update(len(images))
    return torch.cat(chunks)


def _views_dataset(
    samples: Sequence[tuple[Path, int]], pre: Preprocessing, views: int, seed: int, skip_bad_images: bool = False,
) -> Callable[[int], Dataset]:
    if views == 1:  # the eval view: the same decode and transform as validation and serving
        eval_images = ImageFileDataset(samples, build_eval_transform(pre), decode=partial(decode_eval_image, pre=pre),
                                       skip_bad_images=skip_bad_images)
        return lambda view: eval_images
    # The training transform decodes itself, drafting JPEGs at the scale its crop allows.
    train_images = ImageFileDataset(samples, build_train_transform(pre), decode=None, skip_bad_images=skip_bad_images)
    return lambda view: _SeededView(train_images, view, seed)


def build_split_features(
    net: ResNet, samples: Sequence[tuple[Path, int]], *, pre: Preprocessing, views: int, seed: int,
    batch_size: int, num_workers: int, device: torch.device, autocast_dtype: torch.dtype | None = None,
    skip_bad_images: bool = False,
    split: str = "",
) -> CachedFeatures:
    """Run the frozen backbone over every view of every image of one split (with progress output)."""
    backbone = feature_extractor(net, device)
    view_dataset = _views_dataset(samples, pre, views, seed, skip_bad_images)
    with Progress(len(samples) * views, f"extracting {split or 'backbone'} features") as progress:
        per_view = [
            extract_features(backbone, view_dataset(view), batch_size=batch_size, num_workers=num_workers,
                             device=device, autocast_dtype=autocast_dtype, progress=progress)
            for view in range(views)
        ]
    features = torch.stack(per_view, dim=1)
    if not torch.isfinite(features).all():
        raise FloatingPointError("backbone features contain NaN/inf: check the --weights file")
    dtype = torch.float16 if features.abs().max() < FP16_MAX else torch.float32
    labels = torch.tensor([label for _, label in samples], dtype=torch.long)
    return CachedFeatures(features=features.to(dtype), labels=labels)


def cached_split_features(
    cache_dir: Path, split: str, net: ResNet, samples: Sequence[tuple[Path, int]], *, pre: Preprocessing,
    views: int, seed: int, batch_size: int, num_workers: int, device: torch.device,
    autocast_dtype: torch.dtype | None = None, backbone_hash: str | None = None, skip_bad_images: bool = False,
) -> tuple[CachedFeatures, bool]:
    """Features of one split from the cache, built (and stored) on a miss. Returns (features, hit)."""
    augmented = views > 1
    key = cache_key(samples, backbone=backbone_hash or backbone_digest(net), preprocessing=pre,
                    views=views, augmented=augmented, seed=seed)
    # Named by key only: a split with the same files (e.g. test = valid when there is no test/) shares it.
    path = Path(cache_dir) / f"features-{key[:24]}.pt"
    cached = load_features(path, key, len(samples), views)
    if cached is not None:
        logger.info("feature cache hit: %s", path)
        return cached, True
    logger.info("feature cache miss: extracting %d image(s) x %d view(s) of %s", len(samples), views, split)
    # DataLoaders draw from the global RNG: isolate them, so a cold run trains exactly like a warm one.
    with torch.random.fork_rng(devices=[]):
        cached = build_split_features(net, samples, pre=pre, views=views, seed=seed, batch_size=batch_size,
                                      num_workers=num_workers, device=device, autocast_dtype=autocast_dtype,
                                      skip_bad_images=skip_bad_images,
                                      split=split)
    save_features(path, key, cached)
    return cached, False
