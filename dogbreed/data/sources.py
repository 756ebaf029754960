"""Where the data comes from: a local dir, explicit split dirs, a download, or the demo generator."""

from __future__ import annotations

import logging
import shutil
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

from dogbreed.config.sections import DataOptions
from dogbreed.core.constants import DOGIMAGES_URL, TRAIN_SPLIT_NAMES
from dogbreed.core.errors import ConfigError, DataError, DownloadError
from dogbreed.data.progress import Progress
from dogbreed.data.splits import SplitDirs, missing_data_dir

logger = logging.getLogger(__name__)

DEFAULT_DOWNLOAD_DIR = Path("data")
DEFAULT_DEMO_DIR = Path("outputs/demo_data")
_CHUNK = 1 << 20


def find_dataset_root(data_dir: Path) -> Path:
    """``data_dir`` itself if it holds train/, else its single subfolder that does (e.g. data/dogImages)."""
    if any((data_dir / name).is_dir() for name in TRAIN_SPLIT_NAMES):
        return data_dir
    if data_dir.is_dir():
        candidates = [p for p in sorted(data_dir.iterdir()) if p.is_dir() and (p / "train").is_dir()]
        if len(candidates) == 1:
            return candidates[0]
    return data_dir


def _safe_extract(archive: zipfile.ZipFile, dest: Path) -> None:
    """Extract, refusing members that would land outside ``dest`` (zip-slip)."""
    root = dest.resolve()
    for member in archive.infolist():
        target = (dest / member.filename).resolve()
        if root != target and root not in target.parents:
            raise DownloadError(f"refusing to extract {member.filename!r}: it points outside {dest}")
    archive.extractall(dest)


def download_dataset(url: str, dest: Path) -> Path:
    """Download and unpack a dataset zip into ``dest``; skipped when ``dest`` already has a dataset."""
    existing = find_dataset_root(dest)
    if (existing / "train").is_dir():
        logger.info("dataset already present in %s: skipping download", existing)
        return existing
    if not url.lower().startswith(("https://", "http://")):
        raise DownloadError(f"--dataset-url {url}: only http:// and https:// URLs are downloaded; for a local zip, "
                            "unpack it yourself and pass --data-dir")
    dest.mkdir(parents=True, exist_ok=True)
    partial = dest / ".download.zip.part"
    try:
        with urllib.request.urlopen(url, timeout=60) as response, partial.open("wb") as out:  # noqa: S310 - http(s) only
            total = int(response.headers.get("Content-Length") or 0) or None
            with Progress(total, f"downloading {url.rsplit('/', 1)[-1]}", unit="B", leave=True) as bar:
                while chunk := response.read(_CHUNK):
                    out.write(chunk)
                    bar.update(len(chunk))
        with zipfile.ZipFile(partial) as archive:
            _safe_extract(archive, dest)
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise DownloadError(
            f"could not download {url} ({exc}). Check the network, or download the zip yourself, "
            f"unpack it and pass --data-dir"
        ) from exc
    except zipfile.BadZipFile as exc:
        raise DownloadError(f"{url} did not return a valid zip file ({exc})") from exc
    finally:
        partial.unlink(missing_ok=True)
    macos_junk = dest / "__MACOSX"
    if macos_junk.is_dir():
        shutil.rmtree(macos_junk)
    root = find_dataset_root(dest)
    if not (root / "train").is_dir():
        raise DownloadError(f"the archive from {url} has no train/ folder (unpacked into {dest})")
    return root


def resolve_splits(data: DataOptions, *, seed: int) -> SplitDirs:
    """Turn --demo / --download / --data-dir / --train-dir... into split dirs, or say how to get data (``seed``:
    the demo generator's)."""
    if data.demo:
        from dogbreed.data.demo import generate_demo_dataset

        root = data.data_dir or DEFAULT_DEMO_DIR
        return SplitDirs.from_data_dir(generate_demo_dataset(root, seed=seed))
    if data.download:
        root = download_dataset(data.dataset_url or DOGIMAGES_URL, data.data_dir or DEFAULT_DOWNLOAD_DIR)
        return SplitDirs.from_data_dir(root)
    if data.train_dir or data.valid_dir:
        if not data.train_dir:
            raise ConfigError("--valid-dir needs --train-dir (--test-dir is optional; a missing --valid-dir or "
                              "--test-dir is carved out of --train-dir, see --valid-pct and --test-pct)")
        return SplitDirs(train=data.train_dir, valid=data.valid_dir, test=data.test_dir)
    if data.data_dir:
        if not Path(data.data_dir).is_dir():  # training can also fetch or generate its data: say so
            raise DataError(f"{missing_data_dir(data.data_dir)}, or use --download or --demo")
        return SplitDirs.from_data_dir(find_dataset_root(data.data_dir))
    raise DataError(
        "no data: pass --data-dir DIR (a folder with train/ valid/ test/ of <breed>/<images>), "
        "or --download to fetch dogImages into ./data, or --demo to train on generated images"
    )
