"""``python -m entry_points.package``: a SageMaker-ready ``model.tar.gz`` from a model dir."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from dogbreed.cli.runner import run_command
from dogbreed.config.parser import CommandParser
from dogbreed.core.constants import PRECISIONS
from dogbreed.core.errors import ConfigError
from dogbreed.core.fileio import check_writable_dir

PROG = "python -m entry_points.package"


def build_parser() -> CommandParser:
    parser = CommandParser(prog=PROG,
                           description="Package a model dir as a SageMaker-ready model.tar.gz.")
    parser.add_argument("--model-dir", "--model_dir", type=Path, required=True, help="a model dir written by training")
    parser.add_argument("--output", type=Path, default=Path("model.tar.gz"),
                        help="archive to write (default: model.tar.gz)")
    parser.add_argument("--precision", choices=PRECISIONS, default=None,
                        help="the precision the endpoint serves by default: bf16 and int8 are measured against fp32 "
                             "on the validation split of --data-dir and refused below 99.5%% top-1 agreement; "
                             "the choice is recorded in the model dir (default: keep what it records, else fp32)")
    parser.add_argument("--data-dir", "--data_dir", type=Path, default=None,
                        help="the dataset the model was trained on (train/ valid/): needed by --precision bf16|int8 "
                             "(int8 calibrates on up to 256 training images)")
    return parser


def dataset_images(data_dir: Path, model_dir: Path) -> tuple[list[Path], list[Path]]:
    """The train and validation images of ``data_dir``, whose classes must be as many as the model's."""
    from dogbreed.data.sources import find_dataset_root
    from dogbreed.data.splits import SplitDirs, index_split, list_class_dirs
    from dogbreed.serving.artifact import read_model_config

    splits = SplitDirs.from_data_dir(find_dataset_root(data_dir))
    if splits.valid is None:
        raise ConfigError(f"--data-dir {data_dir} has no validation split (valid/): the reduced precision is checked "
                          "on held-out images, so give the dataset with the valid/ folder the model was validated on")
    valid = splits.valid
    classes = list_class_dirs(valid)
    expected = read_model_config(model_dir).num_classes
    if len(classes) != expected:
        raise ConfigError(f"--data-dir {data_dir}: {valid} has {len(classes)} class folders but the model "
                          f"predicts {expected} breeds: pass the dataset the model was trained on")

    def images(split: Path) -> list[Path]:
        return [path for path, _ in index_split(split, classes, check_headers=False).samples]

    return images(splits.train), images(valid)


def require_data_dir(precision: str, data_dir: Path | None) -> Path:
    """bf16 and int8 are measured against fp32 on the validation split: they need ``--data-dir``."""
    if data_dir is None:
        raise ConfigError(f"--precision {precision} needs --data-dir DIR (with train/ and valid/): the reduced "
                          "model is checked against fp32 on the validation split")
    return data_dir


def reduce_precision(model_dir: Path, precision: str, data_dir: Path | None) -> str:
    """Measure and record ``precision`` in the model dir (the serving module refuses it below 99.5%)."""
    from dogbreed.serving.precision_check import reduce_model_dir, spread

    if precision == "fp32":
        return reduce_model_dir(model_dir, precision, []).precision
    train, valid = dataset_images(require_data_dir(precision, data_dir), model_dir)
    calibration = spread(train) if precision == "int8" else []
    return reduce_model_dir(model_dir, precision, valid, calibration).line()


def archive_line(archive: Path, size_bytes: int, replaced: bool) -> str:
    """``wrote model.tar.gz (97.9 MB)``, or ``replaced`` when an archive was there before."""
    return f"{'replaced' if replaced else 'wrote'} {archive} ({size_bytes / 1e6:.1f} MB)"


def check_output(output: Path) -> None:
    """``--output`` can be written, checked before the model is loaded or measured (as train checks its dirs)."""
    if output.is_dir():
        raise ConfigError(f"--output {output} is a directory: pass the archive's file name, e.g. {output}/model.tar.gz")
    check_writable_dir(output.parent, "--output's folder")


def package_command(argv: Sequence[str] | None) -> str:
    args = build_parser().parse_args(argv)
    check_output(args.output)
    from dogbreed.serving.packaging import build_model_archive, check_model_dir

    measured = ""
    if args.precision in ("bf16", "int8"):
        require_data_dir(args.precision, args.data_dir)  # before anything is read
    if args.precision is not None:
        check_model_dir(args.model_dir)
        measured = f" ({reduce_precision(args.model_dir, args.precision, args.data_dir)})"
    replaced = args.output.exists()
    archive = build_model_archive(args.model_dir, args.output)
    return f"{archive_line(archive, archive.stat().st_size, replaced)}{measured}"


def main(argv: Sequence[str] | None = None) -> int:
    return run_command(lambda: package_command(argv))
