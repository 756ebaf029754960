"""``python -m entry_points.export``: a model dir as ONNX, checked against PyTorch in onnxruntime."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from dogbreed.cli.runner import run_command
from dogbreed.config.parser import CommandParser
from dogbreed.core.errors import ConfigError

PROG = "python -m entry_points.export"


def build_parser() -> CommandParser:
    parser = CommandParser(prog=PROG,
                           description="Export a model dir as ONNX (dynamic batch size; preprocessing, class names "
                                       "and temperature in its metadata) and check it in onnxruntime.")
    parser.add_argument("--model-dir", "--model_dir", type=Path, required=True, help="a model dir written by training")
    parser.add_argument("--output", type=Path, default=Path("model.onnx"), help="file to write (default: model.onnx)")
    parser.add_argument("--check-images", "--check_images", type=Path, nargs="*", default=None, metavar="IMAGE",
                        help="images for the parity check (default: two generated ones, as one batch of 2)")
    parser.add_argument("--precision", choices=("fp32", "int8"), default="fp32",
                        help="int8: ONNX Runtime quantize_static (QDQ, per-channel weights) calibrated on up to 256 "
                             "training images of --data-dir, removed below 99.5%% top-1 agreement with fp32 on its "
                             "validation split (bf16: not an ONNX Runtime CPU precision) (default: fp32)")
    parser.add_argument("--data-dir", "--data_dir", type=Path, default=None,
                        help="the dataset the model was trained on (train/ valid/): needed by --precision int8")
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
    if args.precision == "int8":
        return export_int8_command(args)
    output = export_onnx(args.model_dir, args.output)
    from dogbreed.serving.artifact import read_model_config

    images = args.check_images or _generated_images(read_model_config(args.model_dir).preprocessing.resize_size)
    delta = parity(output, args.model_dir, images)
    if not delta < PARITY_TOLERANCE:
        output.unlink(missing_ok=True)
        raise ConfigError(f"{output}: onnxruntime differs from PyTorch by {delta:.2e} (tolerance {PARITY_TOLERANCE}); "
                          "the export is not faithful and was removed")
    return f"{output} (onnxruntime parity on {len(images)} image(s): max |delta probability| {delta:.2e})"


def export_int8_command(args: Any) -> str:
    """fp32 graph (parity-checked) -> int8 graph checked on the validation split; the fp32 file is not kept."""
    if args.data_dir is None:
        raise ConfigError("--precision int8 needs --data-dir DIR (with train/ and valid/): int8 is calibrated on its "
                          "training images and checked against fp32 on its validation split")
    from dogbreed.cli.package import dataset_images
    from dogbreed.export.onnx_int8 import export_int8
    from dogbreed.serving.precision_check import spread

    train, valid = dataset_images(args.data_dir, args.model_dir)
    fp32 = args.output.with_name(f".{args.output.name}.fp32")
    try:
        export_command([*_fp32_argv(args), "--output", str(fp32)])
        agreement = export_int8(fp32, args.output, args.model_dir, spread(train), valid)
    finally:
        fp32.unlink(missing_ok=True)
    return f"{args.output} ({agreement.line()})"


def _fp32_argv(args: Any) -> list[str]:
    argv = ["--model-dir", str(args.model_dir)]
    if args.check_images:
        argv += ["--check-images", *map(str, args.check_images)]
    return argv


def main(argv: Sequence[str] | None = None) -> int:
    return run_command(lambda: export_command(argv))
