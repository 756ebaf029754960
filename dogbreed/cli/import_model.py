"""``python -m entry_points.import_model``: a model dir from a dogbreed checkpoint or a torchvision ResNet50.

``--checkpoint epoch=3.ckpt`` takes the class names and preprocessing from the checkpoint's run;
``--state-dict FILE --classes FILE`` takes a torchvision ``resnet50`` state_dict (or, with ``--trust-pickle``, a
model saved whole with ``torch.save(model, f)``), with the preprocessing given here or ImageNet's.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Sequence

from dogbreed.cli.runner import run_command
from dogbreed.config.parser import CommandParser
from dogbreed.core.constants import IMAGENET_MEAN, IMAGENET_STD, MAX_IMAGE_SIZE
from dogbreed.core.errors import ConfigError

PROG = "python -m entry_points.import_model"
IMAGENET_IMAGE_SIZE = 224
INTERPOLATIONS = ("bilinear", "bicubic", "nearest")
_PREPROCESSING = ("image_size", "resize_size", "mean", "std", "interpolation")


def _floats(values: Sequence[float]) -> str:
    return " ".join(f"{v:g}" for v in values)


def build_parser() -> CommandParser:
    parser = CommandParser(prog=PROG,
                           description="Make a model dir (that predicts, serves, packages and exports like a trained "
                                       "one) from a dogbreed checkpoint or a torchvision ResNet50.")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--checkpoint", type=Path, metavar="FILE",
                        help="an epoch=N.ckpt of a dogbreed run (--checkpoint-dir): classes and preprocessing come "
                             "from its run; the model dir records which epoch it holds")
    source.add_argument("--state-dict", "--state_dict", type=Path, metavar="FILE",
                        help="a torchvision resnet50 state_dict (torch.save(model.state_dict(), FILE)), or with "
                             "--trust-pickle a whole pickled resnet50; needs --classes")
    parser.add_argument("--classes", type=Path, metavar="FILE",
                        help="with --state-dict: the class names in output order, one per line (or a JSON list)")
    parser.add_argument("--trust-pickle", "--trust_pickle", action="store_true",
                        help="with --state-dict: allow a pickled model (loading it runs code from the file; only for "
                             "files you trust)")
    parser.add_argument("--model-dir", "--model_dir", type=Path, required=True, help="where the model dir is written")
    pre = parser.add_argument_group("preprocessing (--state-dict only; a checkpoint's come from its run)")
    pre.add_argument("--image-size", "--image_size", type=int,
                     help=f"centre-crop size the network sees (default: {IMAGENET_IMAGE_SIZE})")
    pre.add_argument("--resize-size", "--resize_size", type=int,
                     help="short side before the centre crop (default: round(image-size * 232 / 224))")
    pre.add_argument("--mean", type=float, nargs=3, metavar="M", help=f"per-channel mean (default: "
                                                                      f"{_floats(IMAGENET_MEAN)}, ImageNet's)")
    pre.add_argument("--std", type=float, nargs=3, metavar="S", help=f"per-channel std (default: "
                                                                    f"{_floats(IMAGENET_STD)}, ImageNet's)")
    pre.add_argument("--interpolation", choices=INTERPOLATIONS, help="resize interpolation (default: bilinear)")
    return parser


def _check(args: argparse.Namespace) -> None:
    given = [f"--{name.replace('_', '-')}" for name in _PREPROCESSING if getattr(args, name) is not None]
    if args.checkpoint is not None:
        extra = given + (["--classes"] if args.classes else []) + (["--trust-pickle"] if args.trust_pickle else [])
        if extra:
            raise ConfigError(f"{', '.join(extra)} with --checkpoint: a checkpoint's classes and preprocessing come "
                              "from its run (and it is always loaded weights-only); drop them")
        return
    if args.classes is None:
        raise ConfigError("--state-dict needs --classes FILE: the class names in output order, one per line")
    if args.image_size is not None and not 32 <= args.image_size <= MAX_IMAGE_SIZE:
        raise ConfigError(f"--image-size must be between 32 and {MAX_IMAGE_SIZE}, got {args.image_size}")
    size = args.image_size or IMAGENET_IMAGE_SIZE
    if args.resize_size is not None and not size <= args.resize_size <= 2 * MAX_IMAGE_SIZE:
        raise ConfigError(f"--resize-size must be at least the crop size ({size}) and at most {2 * MAX_IMAGE_SIZE}, "
                          f"got {args.resize_size}")
    if args.std is not None and not all(0 < s < float("inf") for s in args.std):
        raise ConfigError(f"--std must be three positive finite numbers, got {_floats(args.std)}")
    if args.mean is not None and not all(abs(m) < float("inf") for m in args.mean):
        raise ConfigError(f"--mean must be three finite numbers, got {_floats(args.mean)}")


def import_command(argv: Sequence[str] | None) -> str:
    args = build_parser().parse_args(argv)
    _check(args)
    if args.checkpoint is not None:
        from dogbreed.training.checkpoint_model import import_checkpoint

        model_dir, model = import_checkpoint(args.checkpoint, args.model_dir)
        of = f" (of {model.options['epochs']})" if "epochs" in model.options else ""
        return (f"model dir {model_dir}: epoch {model.epoch}{of} from {args.checkpoint} ({len(model.class_dirs)} "
                "classes; not calibrated: temperature 1, no abstention)")
    from dogbreed.core.transforms import Preprocessing
    from dogbreed.serving.model_import import (
        build_imported_net,
        file_sha256,
        load_foreign_weights,
        read_class_names,
        save_imported_model,
    )

    class_names = read_class_names(args.classes)
    state, pickled = load_foreign_weights(args.state_dict, trust_pickle=args.trust_pickle)
    net = build_imported_net(state, class_names, f"--state-dict {args.state_dict}")
    preprocessing = Preprocessing(image_size=args.image_size or IMAGENET_IMAGE_SIZE, resize_size=args.resize_size or 0,
                                  mean=tuple(args.mean or IMAGENET_MEAN), std=tuple(args.std or IMAGENET_STD),
                                  interpolation=args.interpolation or "bilinear")
    record = {"state_dict": args.state_dict.name, "sha256": file_sha256(args.state_dict), "pickled": pickled}
    save_imported_model(args.model_dir, net, class_names, preprocessing, imported_from=record)
    return (f"model dir {args.model_dir}: {args.state_dict} ({len(class_names)} classes, "
            f"{'pickled model' if pickled else 'state_dict'}; preprocessing: crop {preprocessing.image_size}, "
            f"resize {preprocessing.resize_size})")


def main(argv: Sequence[str] | None = None) -> int:
    return run_command(lambda: import_command(argv))
