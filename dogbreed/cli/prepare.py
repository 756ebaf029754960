"""``python -m entry_points.prepare``: a prepared copy of a dataset, decoded once and reduced for training."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Sequence

from dogbreed.cli.runner import run_command
from dogbreed.config.options import MAX_NUM_WORKERS
from dogbreed.config.parser import CommandParser, str2bool
from dogbreed.core.constants import MAX_IMAGE_SIZE, MIN_IMAGE_SIZE
from dogbreed.core.errors import ConfigError

PROG = "python -m entry_points.prepare"
logger = logging.getLogger(__name__)
DESCRIPTION = (
    "Write the same ImageFolder tree (same splits, class folders and file names) with every image decoded once "
    "(EXIF orientation applied, RGB), its short side reduced to N (never enlarged) and re-encoded at high quality, "
    "plus prepared_manifest.json (source sizes, N, checksums). Train on it with --data-dir OUTPUT, or upload OUTPUT "
    "as the SageMaker training channel. Re-running skips images that are already prepared."
)


def build_parser() -> CommandParser:
    parser = CommandParser(prog=PROG, description=DESCRIPTION)
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
    cpus = os.cpu_count() or 1
    if args.workers != -1 and not 1 <= args.workers <= MAX_NUM_WORKERS:
        raise ConfigError(f"--workers must be between 1 and {MAX_NUM_WORKERS} processes, or -1 for one per CPU "
                          f"(each is a process decoding full-size images), got {args.workers}")
    if not MIN_IMAGE_SIZE <= args.image_size <= MAX_IMAGE_SIZE:
        raise ConfigError(f"--image-size must be between {MIN_IMAGE_SIZE} and {MAX_IMAGE_SIZE} (the training "
                          f"range), got {args.image_size}")
    if args.short_side is not None and args.short_side > 4 * MAX_IMAGE_SIZE:
        raise ConfigError(f"--short-side must be at most {4 * MAX_IMAGE_SIZE} pixels (prepared images are reduced, "
                          f"never enlarged), got {args.short_side}")
    from dogbreed.data.prepare import prepare_dataset  # heavy: after the options are valid

    workers = args.workers if args.workers > 0 else cpus
    if workers > 2 * cpus:
        logger.info("--workers %d capped at %d (2 x the %d CPU(s)): decoding is CPU-bound", workers, 2 * cpus, cpus)
        workers = 2 * cpus
    report = prepare_dataset(args.data_dir, args.output, short_side=args.short_side, image_size=args.image_size,
                             jpeg_quality=args.quality, workers=workers, skip_bad_images=args.skip_bad_images)
    return report.summary()


def main(argv: Sequence[str] | None = None) -> int:
    return run_command(lambda: prepare_command(argv))
