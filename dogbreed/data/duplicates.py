"""Images in more than one split (a leak: a test image the model trained on inflates test accuracy).

Cheap enough for the data check: only files whose size occurs in more than one split are hashed (SHA-256), and a
prepared dataset's manifest already records each file's SHA-256 (``output_sha256``), used where the size agrees.
"""

from __future__ import annotations

import json
import logging
from collections import defaultdict
from pathlib import Path
from typing import Mapping, Sequence

from dogbreed.core.errors import DataError
from dogbreed.data.prepared_image import file_sha256

logger = logging.getLogger(__name__)

MANIFEST_NAME = "prepared_manifest.json"  # dogbreed.data.prepare writes it (that module imports this package)
MAX_LISTED = 10


def _manifest_digests(root: Path) -> dict[Path, tuple[int, str]]:
    """``path -> (bytes, sha256)`` from a prepared dataset's manifest under ``root``; empty when there is none."""
    try:
        files = json.loads((root / MANIFEST_NAME).read_text(encoding="utf-8")).get("files", {})
        return {root / name: (int(entry["output_bytes"]), str(entry["output_sha256"]))
                for name, entry in files.items()}
    except (OSError, ValueError, TypeError, KeyError, AttributeError):
        return {}


def cross_split_duplicates(files: Mapping[str, Sequence[Path]],
                           root: Path | None = None) -> list[list[tuple[str, Path]]]:
    """Groups of byte-identical files that lie in more than one split: ``[[(split, path), ...], ...]``."""
    by_size: dict[int, list[tuple[str, Path]]] = defaultdict(list)
    for split, paths in files.items():
        for path in paths:
            by_size[path.stat().st_size].append((split, path))
    known = _manifest_digests(root) if root is not None else {}
    by_digest: dict[str, list[tuple[str, Path]]] = defaultdict(list)
    for size, members in by_size.items():
        if len({split for split, _ in members}) < 2:
            continue
        for split, path in members:
            recorded = known.get(path)
            by_digest[recorded[1] if recorded and recorded[0] == size else file_sha256(path)].append((split, path))
    return [group for group in by_digest.values() if len({split for split, _ in group}) > 1]


def check_no_leaks(files: Mapping[str, Sequence[Path]], *, allow: bool, root: Path | None = None) -> int:
    """Refuse (or, with ``allow``, warn about) images that appear in more than one split, by name; returns how
    many groups of identical files there are."""
    groups = cross_split_duplicates(files, root)
    if not groups:
        return 0
    shown = "; ".join(" = ".join(f"{split}:{path}" for split, path in group) for group in groups[:MAX_LISTED])
    more = f"; ... and {len(groups) - MAX_LISTED} more" if len(groups) > MAX_LISTED else ""
    what = f"{len(groups)} image(s) appear byte for byte in more than one split ({shown}{more})"
    if not allow:
        raise DataError(f"{what}: a test or validation image the model trains on inflates its accuracy. Remove the "
                        "copies, or pass --allow-duplicates to train anyway")
    logger.warning("%s: the metrics of those splits are inflated (--allow-duplicates)", what)
    return len(groups)
