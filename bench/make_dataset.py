"""Generate the benchmark dataset: photo-like JPEGs, 400x300 to 1600x1200, learnable classes.

    python bench/make_dataset.py                # 5 classes x (40 train + 10 valid) -> bench/out/data
    python bench/make_dataset.py --smoke        # 3 classes x (4 + 2), small images
"""

from __future__ import annotations

import argparse
from pathlib import Path

from benchlib import OUT_DIR, make_dataset

FULL = dict(num_classes=5, per_split={"train": 40, "valid": 10}, min_side=300, max_side=1600)
SMOKE = dict(num_classes=3, per_split={"train": 4, "valid": 2}, min_side=120, max_side=320)


def dataset_for(smoke: bool, root: Path | None = None) -> Path:
    """The benchmark dataset (full or smoke size), generated on first use."""
    spec = SMOKE if smoke else FULL
    root = root or OUT_DIR / ("data_smoke" if smoke else "data")
    return make_dataset(root, **spec)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true", help="tiny dataset for tests")
    parser.add_argument("--root", type=Path, default=None, help="where to write it (default: bench/out/data)")
    args = parser.parse_args()
    root = dataset_for(args.smoke, args.root)
    count = sum(1 for _ in root.rglob("*.jpg"))
    print(f"dataset: {root} ({count} JPEGs)")


if __name__ == "__main__":
    main()
