"""Head-only training on cached backbone features (``--finetune head`` with ``--cached-views K``): the feature cache
and the training on it, together.

The frozen backbone runs once per image and view; every epoch then trains ``net.fc`` on the stored 2048-d
features. The LightningModule is the normal :class:`DogBreedClassifier` (same loss, metrics, optimiser, schedule,
logging) whose forward skips the backbone, and its ``net`` still holds the full ResNet50: the exported artifact is
the same as one trained the slow way, so serving is unchanged.

The cache: one file per distinct split content under the cache dir, named by a key that hashes everything the
features depend on: the image files (path, size, mtime), the backbone weights, the preprocessing, the number of
views and (for augmented views only) the seed. A changed input gives a new key, so a stale file is never read; a
file whose metadata, shapes or checksum do not match is rebuilt. Files are float16 (float32 if a value would
overflow) and written atomically.
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

import pytorch_lightning as pl
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from dogbreed.config.sections import CacheOptions
from dogbreed.core.augment import TrainTransform
from dogbreed.core.errors import torch_load_reason
from dogbreed.core.fileio import atomic_write
from dogbreed.core.images import open_image
from dogbreed.core.network import HEAD_PREFIX
from dogbreed.core.resnet import ResNet
from dogbreed.core.transforms import Preprocessing, build_eval_transform, build_train_transform, decode_eval_image
from dogbreed.data.datamodule import DogBreedDataModule, ImageFileDataset, SplitLoaders
from dogbreed.data.progress import Progress
from dogbreed.data.samplers import evaluation_sampler
from dogbreed.training.module import DogBreedClassifier
from dogbreed.training.reports import RunCounts

logger = logging.getLogger(__name__)

# --- the feature cache --------------------------------------------------------------------------------------------

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
    needed = cached.features.nbytes + cached.labels.nbytes
    atomic_write(path, lambda handle: torch.save(payload, handle), needed_bytes=needed)


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
        logger.warning("feature cache %s is unreadable (%s): rebuilding it", path, torch_load_reason(exc))
        return None
    bad = [name for failed, name in problems if failed]
    if bad:
        logger.warning("feature cache %s does not match (%s): rebuilding it", path, ", ".join(bad))
        return None
    return CachedFeatures(features=features, labels=labels)


def feature_extractor(net: ResNet, device: torch.device) -> nn.Module:
    """A copy of ``net`` without its head, in eval mode (BatchNorm uses running stats), channels-last."""
    backbone = copy.deepcopy(net)
    backbone.fc = nn.Identity()  # type: ignore[assignment]  # this copy hands out the pooled features
    return backbone.to(device).to(memory_format=torch.channels_last).eval().requires_grad_(False)


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
def _extract_features(
    backbone: nn.Module, dataset: Dataset, *, batch_size: int, num_workers: int,
    device: torch.device, autocast_dtype: torch.dtype | None = None, progress: Progress | None = None,
) -> torch.Tensor:
    """Pooled features (N, D) of a dataset of (image, label), float32 on the CPU; ``progress`` counts images."""
    batches = -(-len(dataset) // batch_size)  # type: ignore[arg-type]  # a map-style dataset of images
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=min(num_workers, max(1, batches)),
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
    transform = build_train_transform(pre)
    train_images = ImageFileDataset(samples, transform, decode=None if isinstance(transform, TrainTransform) else
                                    open_image, skip_bad_images=skip_bad_images)
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
            _extract_features(backbone, view_dataset(view), batch_size=batch_size, num_workers=num_workers,
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


# --- training the head on cached features -------------------------------------------------------------------------

# Mixed-precision settings under which extraction runs in autocast (features are stored in fp16 anyway).
_AUTOCAST_DTYPES = {"bf16-mixed": torch.bfloat16, "16-mixed": torch.float16}


def uses_feature_cache(cache: CacheOptions, finetune: str) -> bool:
    """Head-only runs train on cached features unless ``--cached-views 0``."""
    return finetune == "head" and cache.cached_views >= 1


def default_cache_dir(cache: CacheOptions, output_dir: Path) -> Path:
    """``--cache-dir``, else ``feature_cache`` next to the output dir (shared by runs and trials)."""
    return Path(cache.cache_dir) if cache.cache_dir else Path(output_dir).parent / "feature_cache"


class FeatureHeadClassifier(DogBreedClassifier):
    """:class:`DogBreedClassifier` fed pooled backbone features: only ``net.fc`` runs."""

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.net.fc(features)

    def per_batch_module(self) -> torch.nn.Module:
        """Only the head runs per batch here."""
        return self.net.fc

    _saved_threads: int | None = None

    @classmethod
    def from_classifier(cls, model: DogBreedClassifier) -> "FeatureHeadClassifier":
        """The same module, weights and hyperparameters, now fed features (no second ResNet50 is built:
        building one costs ~1 s on 2 cores, a large share of a cached run)."""
        model.__class__ = cls
        return model  # type: ignore[return-value]

    def on_train_batch_start(self, batch: Any, batch_idx: int) -> None:
        """The backbone never runs here, so its BatchNorm mode needs no re-applying."""

    def setup(self, stage: str) -> None:
        # A (64, 2048) x (2048, C) step is tiny: on CPU, waking a second intra-op thread costs
        # more than it saves (busy 2-core machine: 30 head steps took 3.7 s with 2 threads; the whole
        # cached 10-epoch run, extraction excluded, took 1.7 s with 1).
        if self.device.type == "cpu" and self._saved_threads is None:
            self._saved_threads = torch.get_num_threads()
            torch.set_num_threads(1)

    def teardown(self, stage: str) -> None:
        if self._saved_threads is not None:
            torch.set_num_threads(self._saved_threads)
            self._saved_threads = None


class _FeatureViews(Dataset):
    """(feature, label) pairs; with several views, each draw takes one view at random (the
    cached counterpart of drawing a fresh augmentation every epoch)."""

    def __init__(self, cached: CachedFeatures, random_view: bool) -> None:
        self.cached = cached
        self.random_view = random_view and cached.views > 1

    def __len__(self) -> int:
        return int(self.cached.labels.shape[0])

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        view = int(torch.randint(self.cached.views, ())) if self.random_view else 0
        return self.cached.features[index, view].float(), int(self.cached.labels[index])


class FeatureDataModule(SplitLoaders, pl.LightningDataModule):
    """Serves cached features for train/valid/test, with the image data module's batch policy."""

    def __init__(
        self, features: dict[str, CachedFeatures], *, class_names: list[str], preprocessing: Preprocessing,
        batch_size: int, cache_hits: dict[str, bool],
    ) -> None:
        super().__init__()
        self.features = features
        self.class_names = class_names
        self.preprocessing = preprocessing
        self.batch_size = batch_size
        self.cache_hits = cache_hits

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def _loader(self, name: str, shuffle: bool) -> DataLoader:
        dataset = _FeatureViews(self.features[name], random_view=shuffle)
        # In-memory tensors: worker processes would only add start-up cost.
        return DataLoader(dataset, batch_size=self.batch_size, shuffle=shuffle, num_workers=0,
                          sampler=None if shuffle else evaluation_sampler(dataset),  # DDP: each eval image once
                          drop_last=shuffle and len(dataset) > self.batch_size)


def _extraction_device(accelerator: str) -> torch.device:
    wants_gpu = accelerator in ("auto", "gpu", "cuda")
    return torch.device("cuda" if wants_gpu and torch.cuda.is_available() else "cpu")


def build_feature_data(
    datamodule: DogBreedDataModule, net: ResNet, *, cache: CacheOptions, output_dir: Path, seed: int,
    batch_size: int, accelerator: str, precision: str = "32-true", splits: tuple[str, ...] | None = None,
) -> FeatureDataModule:
    """The cached-feature counterpart of an image data module: every split (or those in ``splits``) through
    ``net``'s backbone once, or read from the cache."""
    device = _extraction_device(accelerator)
    cache_dir = default_cache_dir(cache, output_dir)
    digest = backbone_digest(net)
    features: dict[str, CachedFeatures] = {}
    hits: dict[str, bool] = {}
    for split, dataset in datamodule.datasets.items():
        if splits is not None and split not in splits:
            continue
        features[split], hits[split] = cached_split_features(
            cache_dir, split, net, dataset.samples, pre=datamodule.preprocessing,
            views=cache.cached_views if split == "train" else 1, seed=seed,
            batch_size=batch_size, num_workers=datamodule.num_workers, device=device,
            autocast_dtype=_AUTOCAST_DTYPES.get(precision), backbone_hash=digest,
            skip_bad_images=datamodule.skip_bad_images,
        )
    logger.info("feature cache %s: %s", cache_dir, ", ".join(f"{s} {'hit' if h else 'built'}" for s, h in hits.items()))
    return FeatureDataModule(features, class_names=datamodule.class_names, preprocessing=datamodule.preprocessing,
                             batch_size=batch_size, cache_hits=hits)


def run_counts(images: DogBreedDataModule, datamodule: pl.LightningDataModule, *, epochs: int,
               resumed_after: int = 0) -> RunCounts:
    """What a run processed: images per split, the epochs this process trained (``epochs`` done in all, less the
    ``resumed_after`` a checkpoint had done), and the backbone passes its feature cache made (a gradual run's
    head-phase data holds its features as ``feature_data``)."""
    counts = RunCounts(images={split: len(ds) for split, ds in images.datasets.items()},
                       epochs=epochs - resumed_after, resumed_after=resumed_after)
    datamodule = getattr(datamodule, "feature_data", datamodule)
    if isinstance(datamodule, FeatureDataModule):
        built = [datamodule.features[split] for split, hit in datamodule.cache_hits.items() if not hit]
        counts.extracted_images = sum(int(cached.features.shape[0]) * cached.views for cached in built)
    return counts
