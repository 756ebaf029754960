"""Build a SageMaker model archive: ``python -m entry_points.package --model-dir M --output model.tar.gz``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Sequence

from dogbreed.errors import DogBreedError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m entry_points.package", allow_abbrev=False,
                                     description="Package a model dir as a SageMaker-ready model.tar.gz.")
    parser.add_argument("--model-dir", "--model_dir", type=Path, required=True, help="a model dir written by training")
    parser.add_argument("--output", type=Path, default=Path("model.tar.gz"),
                        help="archive to write (default: model.tar.gz)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from dogbreed.packaging import build_model_archive

    try:
        output = build_model_archive(args.model_dir, args.output)
    except DogBreedError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
