"""A prepared dataset: the same ImageFolder tree (same splits, class folders and file names), every image decoded
once, oriented, RGB, its short side reduced to N, re-encoded at high quality; plus ``prepared_manifest.json``.

Training on it is just ``--data-dir PREPARED``: a training epoch then decodes small files instead of photos.
Re-running is cheap: an image whose source and output are unchanged (size, mtime or SHA-256; output SHA-256) is
skipped, an image whose source disappeared has its output removed, and a changed N re-prepares everything.
"""

from __future__ import annotations

import json
import logging
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from dogbreed.core.errors import DataError, ImageDecodeError
from dogbreed.core.fileio import atomic_write, disk_errors
from dogbreed.core.jsontext import parse_json
from dogbreed.core.transforms import eval_resize_size
from dogbreed.data.prepared_image import PrepareSettings, file_sha256, prepare_image
from dogbreed.data.sources import find_dataset_root
from dogbreed.data.splits import SplitDirs, bad_files_message, index_split, list_class_dirs

logger = logging.getLogger(__name__)

MANIFEST_NAME = "prepared_manifest.json"
MANIFEST_FORMAT = 1
# Default N: the short side the training recipe's largest use needs, with margin: evaluation resizes the short
# side to image_size * 232/224 (1.04x) before its centre crop; 1.15x leaves room (224 -> 258).
SHORT_SIDE_RATIO = 1.15
DEFAULT_JPEG_QUALITY = 95
CHECKPOINT_EVERY = 500  # images between manifest saves, so an interrupted run resumes where it stopped


def default_short_side(image_size: int) -> int:
    """N for ``--image-size``: 1.15x it, and never less than the evaluation resize."""
    return max(round(SHORT_SIDE_RATIO * image_size), eval_resize_size(image_size))


@dataclass
class PrepareReport:
    """What a run did: counts per action (resized, converted, copied, unchanged, removed), bytes, failures."""

    output: Path
    short_side: int
    counts: dict[str, int] = field(default_factory=dict)
    source_bytes: int = 0
    output_bytes: int = 0
    failed: dict[str, str] = field(default_factory=dict)

    def summary(self) -> str:
        done = ", ".join(f"{n} {action}" for action, n in sorted(self.counts.items()) if n)
        share = f" ({100 * self.output_bytes / self.source_bytes:.1f}%)" if self.source_bytes else ""
        return (f"prepared dataset {self.output} (short side {self.short_side}; {done or 'nothing to do'}): "
                f"{self.source_bytes / 1e6:.1f} MB of source images -> {self.output_bytes / 1e6:.1f} MB{share}. "
                f"Train with --data-dir {self.output}")


def _sources(root: Path) -> dict[str, Path]:
    """Every image training would read, by path relative to the dataset root (``train/001.A/x.jpg``)."""
    splits = SplitDirs.from_data_dir(root)
    files: dict[str, Path] = {}
    for split_dir in (splits.train, splits.valid, splits.test):
        if split_dir is None:
            continue
        index = index_split(split_dir, list_class_dirs(split_dir), check_headers=False)
        files.update({path.relative_to(root).as_posix(): path for path, _ in index.samples})
    return files


def read_manifest(output: Path) -> dict[str, Any] | None:
    """The manifest of a prepared dataset, None when there is none; a damaged one is an error naming it."""
    path = output / MANIFEST_NAME
    if not path.is_file():
        return None
    try:
        manifest = parse_json(path.read_bytes())
        if not isinstance(manifest.get("files"), dict):
            raise ValueError("no 'files' table")
        return manifest
    except (OSError, ValueError) as exc:
        raise DataError(f"{path} is damaged ({exc}): delete {output} and prepare again") from exc


def _check_output(root: Path, output: Path, manifest: dict[str, Any] | None, sources: dict[str, Path]) -> None:
    """Refuse to write into the data dir, into a folder that is not a prepared dataset, or next to files we did
    not write (training would read them too)."""
    src, out = root.resolve(), output.resolve()
    if src == out or src in out.parents or out in src.parents:
        raise DataError(f"--output {output} overlaps --data-dir {root}: choose a folder outside the dataset")
    if not output.exists():
        return
    if not output.is_dir():
        raise DataError(f"--output {output} is a file: choose a folder")
    existing = [p for p in output.rglob("*") if p.is_file() and not p.name.startswith(".")]
    if manifest is None:
        if existing:
            raise DataError(f"--output {output} is not empty and holds no {MANIFEST_NAME}: it is not a prepared "
                            "dataset. Choose a new or empty folder")
        return
    known = set(manifest["files"]) | set(sources) | {MANIFEST_NAME}
    unknown = [p for p in existing if p.relative_to(output).as_posix() not in known]
    if unknown:
        raise DataError(f"{len(unknown)} file(s) in {output} were not written by prepare and training would read "
                        f"them:\n{bad_files_message([(p, 'not from the data dir') for p in unknown])}\n"
                        "Remove them or choose a new --output")


def _up_to_date(entry: dict[str, Any] | None, source: Path, output: Path) -> bool:
    """The output of ``source`` is current: same source (size and mtime, else SHA-256) and an intact output."""
    if entry is None or not output.is_file() or output.stat().st_size != entry.get("output_bytes"):
        return False
    stat = source.stat()
    if stat.st_size != entry.get("source_bytes"):
        return False
    if stat.st_mtime_ns != entry.get("source_mtime_ns"):
        if file_sha256(source) != entry.get("source_sha256"):
            return False
        entry["source_mtime_ns"] = stat.st_mtime_ns  # touched, not changed
    return file_sha256(output) == entry.get("output_sha256")


def _prepare_one(job: tuple[Path, Path, PrepareSettings]) -> dict[str, Any] | str:
    """Worker: the manifest entry, or the reason the image failed."""
    source, output, settings = job
    try:
        return prepare_image(source, output, settings)
    except ImageDecodeError as exc:
        return str(exc)


def _run(jobs: list[tuple[Path, Path, PrepareSettings]], workers: int) -> Iterator[dict[str, Any] | str]:
    if workers <= 1 or len(jobs) < 2:
        yield from map(_prepare_one, jobs)
        return
    with ProcessPoolExecutor(max_workers=workers) as pool:
        yield from pool.map(_prepare_one, jobs, chunksize=8)


def _write_manifest(output: Path, settings: PrepareSettings, image_size: int | None, files: dict[str, Any],
                    failed: dict[str, str], *, complete: bool) -> None:
    source_bytes = sum(e["source_bytes"] for e in files.values())
    output_bytes = sum(e["output_bytes"] for e in files.values())
    manifest = {
        "format": MANIFEST_FORMAT, "complete": complete, **settings.to_dict(), "image_size": image_size,
        "totals": {"images": len(files), "source_bytes": source_bytes, "output_bytes": output_bytes,
                   "output_share": round(output_bytes / source_bytes, 4) if source_bytes else None},
        "failed": failed, "files": dict(sorted(files.items())),
    }
    text = json.dumps(manifest, indent=1) + "\n"
    atomic_write(output / MANIFEST_NAME, lambda handle: handle.write(text.encode("utf-8")))


def _prepare_all(jobs: list[tuple[Path, Path, PrepareSettings]], workers: int, output: Path, files: dict[str, Any],
                 report: PrepareReport, settings: PrepareSettings, derived_from: int | None) -> None:
    """Prepare every job into ``output``, adding to ``files`` and ``report``; the manifest is saved every
    :data:`CHECKPOINT_EVERY` images, so an interrupted run resumes where it stopped."""
    output.mkdir(parents=True, exist_ok=True)
    for done, ((source, target, _), result) in enumerate(zip(jobs, _run(jobs, workers)), start=1):
        name = target.relative_to(output).as_posix()
        if isinstance(result, str):
            report.failed[name] = result
            target.unlink(missing_ok=True)  # never keep a copy of an older version of a now unreadable file
        else:
            files[name] = result
            report.counts[result["action"]] = report.counts.get(result["action"], 0) + 1
        if done % CHECKPOINT_EVERY == 0:
            logger.info("prepared %d/%d images", done, len(jobs))
            _write_manifest(output, settings, derived_from, files, report.failed, complete=False)


def prepare_dataset(data_dir: Path, output: Path, *, short_side: int | None = None, image_size: int = 224,
                    jpeg_quality: int = DEFAULT_JPEG_QUALITY, workers: int = 1,
                    skip_bad_images: bool = False) -> PrepareReport:
    """Prepare ``data_dir`` (a dataset root, or a folder holding one) into ``output``; see the module doc.

    ``short_side`` defaults to :func:`default_short_side` of ``image_size``. Images that cannot be decoded are
    an error naming them all (after every other image is prepared), or left out with ``skip_bad_images``.
    """
    if short_side is not None and short_side < 8:
        raise DataError(f"--short-side must be at least 8 pixels (default: {default_short_side(224)}), got "
                        f"{short_side}")
    if not 1 <= jpeg_quality <= 100:
        raise DataError(f"--quality must be between 1 and 100 (default: {DEFAULT_JPEG_QUALITY}), got {jpeg_quality}")
    root = find_dataset_root(Path(data_dir))
    sources = _sources(root)
    settings = PrepareSettings(short_side=short_side or default_short_side(image_size), jpeg_quality=jpeg_quality)
    derived_from = image_size if short_side is None else None  # the --image-size N was derived from, if it was
    manifest = read_manifest(output)
    _check_output(root, output, manifest, sources)
    written_before: dict[str, Any] = manifest["files"] if manifest is not None else {}
    previous = written_before
    if manifest is not None and any(manifest.get(k) != v for k, v in settings.to_dict().items()):
        logger.info("settings changed (%s -> %s): preparing every image again",
                    {k: manifest.get(k) for k in settings.to_dict()}, settings.to_dict())
        previous = {}
    report = PrepareReport(output=output, short_side=settings.short_side)
    for name in sorted(set(written_before) - set(sources)):  # the source is gone: so is its prepared copy
        (output / name).unlink(missing_ok=True)
        report.counts["removed"] = report.counts.get("removed", 0) + 1
    files = {name: previous[name] for name in sources if _up_to_date(previous.get(name), sources[name], output / name)}
    report.counts["unchanged"] = len(files)
    jobs = [(sources[name], output / name, settings) for name in sorted(sources) if name not in files]
    logger.info("preparing %d of %d images into %s (short side %d, %d worker(s))", len(jobs), len(sources),
                output, settings.short_side, workers)
    needed = sum(source.stat().st_size for source, _, _ in jobs)  # at most: images are reduced, never enlarged
    with disk_errors(output, needed):  # a full or read-only disk: one line (each image is written whole or not)
        _prepare_all(jobs, workers, output, files, report, settings, derived_from)
    _write_manifest(output, settings, derived_from, files, report.failed, complete=not report.failed or skip_bad_images)
    report.source_bytes = sum(e["source_bytes"] for e in files.values())
    report.output_bytes = sum(e["output_bytes"] for e in files.values())
    if report.failed:
        listed = bad_files_message([(Path(n), reason) for n, reason in sorted(report.failed.items())])
        if not skip_bad_images:
            raise DataError(f"{len(report.failed)} image(s) in {root} could not be decoded (the others are "
                            f"prepared in {output}):\n{listed}\nFix or delete them and run prepare again, or pass "
                            "--skip-bad-images to leave them out")
        logger.warning("left out %d image(s) that could not be decoded:\n%s", len(report.failed), listed)
    return report


def prepared_warning(dataset_root: Path, image_size: int) -> str | None:
    """A warning when ``dataset_root`` is a prepared dataset too small for ``image_size``, or an unfinished one."""
    try:
        manifest = read_manifest(dataset_root)
    except DataError as exc:
        return str(exc)
    if manifest is None:
        return None
    if not manifest.get("complete", False):
        return (f"{dataset_root} is an unfinished prepared dataset (prepare stopped or found unreadable images): "
                "run prepare again")
    short_side, needed = int(manifest.get("short_side", 0)), eval_resize_size(image_size)
    if short_side < needed:
        return (f"{dataset_root} was prepared with short side {short_side}, smaller than the {needed} px that "
                f"--image-size {image_size} evaluates at: images are enlarged. Prepare it again with "
                f"--image-size {image_size}")
    return None
