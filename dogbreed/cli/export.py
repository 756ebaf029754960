"""``python -m entry_points.export``: a model dir as ONNX, checked against PyTorch in onnxruntime."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from dogbreed.cli.runner import run_command
from dogbreed.config.parser import CommandParser
from dogbreed.core.errors import ConfigError

PROG = "python -m entry_points.export"


def build_parser() -> CommandParser:
    parser = CommandParser(prog=PROG, allow_abbrev=False,
                           description="Export a model dir as ONNX (dynamic batch size; preprocessing, class names "
                                       "and temperature in its metadata) and check it in onnxruntime.")
    parser.add_argument("--model-dir", "--model_dir", type=Path, required=True, help="a model dir written by training")
    parser.add_argument("--output", type=Path, default=Path("model.onnx"), help="file to write (default: model.onnx)")
    parser.add_argument("--check-images", "--check_images", type=Path, nargs="*", default=None, metavar="IMAGE",
                        help="images for the parity check (default: two generated ones, as one batch of 2)")
    return parser


def _generated_images(size: int) -> list:
    import numpy as np

    from dogbreed.data.demo import draw_breed_image

    rng = np.random.default_rng(0)
    return [draw_breed_image(i, rng).resize((size, size)) for i in range(2)]


def export_command(argv: Sequence[str] | None) -> str:
    args = build_parser().parse_args(argv)
    from dogbreed.export.onnx_export import PARITY_TOLERANCE, export_onnx, parity, require_export_extra

    require_export_extra()
    output = export_onnx(args.model_dir, args.output)
    from dogbreed.serving.artifact import read_model_config

    images = args.check_images or _generated_images(read_model_config(args.model_dir).preprocessing.resize_size)
    delta = parity(output, args.model_dir, images)
    if not delta < PARITY_TOLERANCE:
        output.unlink(missing_ok=True)
        raise ConfigError(f"{output}: onnxruntime differs from PyTorch by {delta:.2e} (tolerance {PARITY_TOLERANCE}); "
                          "the export is not faithful and was removed")
    return f"{output} (onnxruntime parity on {len(images)} image(s): max |delta probability| {delta:.2e})"


def main(argv: Sequence[str] | None = None) -> int:
    return run_command(lambda: export_command(argv))
