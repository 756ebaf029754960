"""``python -m entry_points.package``: a SageMaker-ready ``model.tar.gz`` from a model dir."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from dogbreed.cli.runner import run_command
from dogbreed.config.parser import CommandParser

PROG = "python -m entry_points.package"


def build_parser() -> CommandParser:
    parser = CommandParser(prog=PROG, allow_abbrev=False,
                           description="Package a model dir as a SageMaker-ready model.tar.gz.")
    parser.add_argument("--model-dir", "--model_dir", type=Path, required=True, help="a model dir written by training")
    parser.add_argument("--output", type=Path, default=Path("model.tar.gz"),
                        help="archive to write (default: model.tar.gz)")
    return parser


def archive_line(archive: Path, size_bytes: int, replaced: bool) -> str:
    """``wrote model.tar.gz (97.9 MB)``, or ``replaced`` when an archive was there before."""
    return f"{'replaced' if replaced else 'wrote'} {archive} ({size_bytes / 1e6:.1f} MB)"


def package_command(argv: Sequence[str] | None) -> str:
    args = build_parser().parse_args(argv)
    from dogbreed.serving.packaging import build_model_archive

    replaced = args.output.exists()
    archive = build_model_archive(args.model_dir, args.output)
    return archive_line(archive, archive.stat().st_size, replaced)


def main(argv: Sequence[str] | None = None) -> int:
    return run_command(lambda: package_command(argv))
