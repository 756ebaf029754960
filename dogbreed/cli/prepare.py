"""``python -m entry_points.prepare``: a prepared copy of a dataset, decoded once and reduced for training."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

from dogbreed.cli.runner import run_command
from dogbreed.config.parser import CommandParser, str2bool

PROG = "python -m entry_points.prepare"
DESCRIPTION = (
    "Write the same ImageFolder tree (same splits, class folders and file names) with every image decoded once "
    "(EXIF orientation applied, RGB), its short side reduced to N (never enlarged) and re-encoded at high quality, "
    "plus prepared_manifest.json (source sizes, N, checksums). Train on it with --data-dir OUTPUT, or upload OUTPUT "
    "as the SageMaker training channel. Re-running skips images that are already prepared."
)


def build_parser() -> CommandParser:
    parser = CommandParser(prog=PROG, allow_abbrev=False, description=DESCRIPTION)
    parser.add_argument("--data-dir", "--data_dir", type=Path, required=True,
                        help="dataset root with train/ valid/ test/ (or a folder holding one, e.g. data/)")
    parser.add_argument("--output", type=Path, required=True, help="where the prepared dataset goes (a new folder)")
    parser.add_argument("--short-side", "--short_side", type=int, default=None,
                        help="short side N in pixels (default: 1.15 x --image-size, 258 for 224)")
    parser.add_argument("--image-size", "--image_size", type=int, default=224,
                        help="the --image-size you will train at; sets the default N (default: 224)")
    parser.add_argument("--quality", type=int, default=95, help="JPEG/WebP quality of re-encoded images (default: 95)")
    parser.add_argument("--workers", type=int, default=-1, help="processes (default: -1, every CPU)")
    parser.add_argument("--skip-bad-images", "--skip_bad_images", type=str2bool, nargs="?", const=True,
                        default=False, help="leave out images that cannot be decoded instead of failing")
    return parser


def prepare_command(argv: Sequence[str] | None) -> str:
    args = build_parser().parse_args(argv)
    from dogbreed.data.prepare import prepare_dataset  # heavy: after the options are valid

    workers = args.workers if args.workers > 0 else (os.cpu_count() or 1)
    report = prepare_dataset(args.data_dir, args.output, short_side=args.short_side, image_size=args.image_size,
                             jpeg_quality=args.quality, workers=workers, skip_bad_images=args.skip_bad_images)
    return report.summary()


def main(argv: Sequence[str] | None = None) -> int:
    return run_command(lambda: prepare_command(argv))
