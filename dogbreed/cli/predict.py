"""``python -m entry_points.predict``: top-k breeds for image files, directories and globs with a model dir.

Each input becomes one record: ``{"image": path, "confident": bool, "predictions": [{"breed", "index",
"probability"}, ...]}`` (plus ``"rejection"`` when the artifact's abstention threshold says the model is not
confident), or ``{"image": path, "error": "<one line>"}`` for a file that is missing, not an image or truncated;
the other images still get their answer and the command exits 1. ``--json`` prints a JSON array of records,
``--jsonl`` one record per line (the shape Batch Transform output is assembled into). ``--explain OUT_DIR`` also
writes a Grad-CAM overlay per answered image.
"""

from __future__ import annotations

import glob
import io
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Sequence

from dogbreed.cli.runner import Outcome, run_command
from dogbreed.config.options import MAX_BATCH_SIZE, MAX_TOP_K
from dogbreed.config.parser import CommandParser
from dogbreed.config.sections import OutputOptions
from dogbreed.core.constants import DEFAULT_TOP_K, IMAGE_EXTENSIONS, PRECISIONS
from dogbreed.core.errors import ConfigError

PROG = "python -m entry_points.predict"
EXIT_SOME_FAILED = 1
GLOB_CHARACTERS = frozenset("*?[")
DEFAULT_BATCH_SIZE = 16
MAX_EXPLAIN_TOP_K = 20
DEFAULT_MODEL_DIR = OutputOptions().model_dir  # train's --model-dir default


def build_parser() -> CommandParser:
    parser = CommandParser(prog=PROG, description="Predict dog breeds with a trained model dir.")
    parser.add_argument("images", nargs="+", metavar="IMAGE",
                        help="image files, directories (searched recursively for "
                             f"{', '.join(sorted(IMAGE_EXTENSIONS))}) or glob patterns such as 'photos/*.jpg'")
    parser.add_argument("--model-dir", "--model_dir", type=Path, default=None,
                        help=f"a model dir written by training (default: {DEFAULT_MODEL_DIR}, where "
                             "python -m entry_points.train writes it)")
    parser.add_argument("--top-k", "--top_k", type=int, default=DEFAULT_TOP_K,
                        help=f"breeds per image (default: {DEFAULT_TOP_K})")
    output = parser.add_mutually_exclusive_group()
    output.add_argument("--json", action="store_true", help="print one JSON array of records")
    output.add_argument("--jsonl", action="store_true", help="print one JSON record per line")
    parser.add_argument("--batch-size", "--batch_size", type=int, default=DEFAULT_BATCH_SIZE,
                        help=f"images per forward pass (default: {DEFAULT_BATCH_SIZE})")
    parser.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    parser.add_argument("--precision", choices=PRECISIONS, default=None,
                        help="fp32, bf16 (autocast, where the CPU or GPU has it; else fp32 with one log line) or "
                             "int8 (CPU; the model_int8.pth of package --precision int8) (default: what the model "
                             "dir records, else fp32)")
    parser.add_argument("--explain", type=Path, default=None, metavar="OUT_DIR",
                        help="also write a Grad-CAM overlay of the top breed per image into OUT_DIR "
                             "(<image stem>_gradcam.png; needs pip install -e '.[explain]')")
    parser.add_argument("--explain-top-k", "--explain_top_k", type=int, default=1, metavar="K",
                        help="with --explain: explain the K best breeds side by side, each panel at the photo's "
                             "size (default: 1)")
    return parser


@dataclass(frozen=True)
class ImageInput:
    """One image to predict (``error`` empty) or an input that failed before decoding."""

    name: str
    error: str = ""


def _image_files(directory: Path) -> list[Path]:
    """Image files under ``directory``, skipping hidden ones and those in hidden folders (``._dog.jpg``,
    ``.ipynb_checkpoints/``), with the training data check's own rule."""
    from dogbreed.data.splits import is_hidden

    return sorted(p for p in directory.rglob("*")
                  if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS and not is_hidden(p, directory))


def _expand_one(argument: str) -> Iterator[ImageInput]:
    from dogbreed.core.images import looks_like_url  # core.images loads PIL and NumPy: not for --help

    if looks_like_url(argument):
        yield ImageInput(argument, "a URL: images are never downloaded; download it first "
                                   "(e.g. curl -o photo.jpg URL) and pass the file")
        return
    path = Path(argument)
    if path.is_dir():
        files = _image_files(path)
        if not files:
            yield ImageInput(argument, f"directory has no image files ({', '.join(sorted(IMAGE_EXTENSIONS))})")
        yield from (ImageInput(str(f)) for f in files)
        return
    if path.exists() or not GLOB_CHARACTERS & set(argument):
        yield ImageInput(argument, "" if path.is_file() else "file not found")
        return
    matches = sorted(glob.glob(argument, recursive=True))
    if not matches:
        yield ImageInput(argument, "no file matches this pattern")
    for match in matches:
        yield from _expand_one(match) if Path(match).is_dir() else [ImageInput(match)]


def expand_inputs(arguments: Sequence[str]) -> list[ImageInput]:
    """Files, directories (recursively, image extensions only) and globs -> inputs in order, each path once."""
    seen: set[str] = set()
    inputs = []
    for argument in arguments:
        for item in _expand_one(argument):
            if item.name not in seen:
                seen.add(item.name)
                inputs.append(item)
    return inputs


def read_image(path: str) -> bytes:
    """The file's bytes if they hold a complete image; raises ValueError with a one-line reason if not."""
    from PIL import Image, UnidentifiedImageError

    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        raise ValueError("file not found") from None
    except OSError as exc:
        raise ValueError(f"cannot read the file ({exc.strerror or exc})") from None
    if not data:
        raise ValueError("empty file")
    try:
        with Image.open(io.BytesIO(data)) as image:
            image_format = image.format
    except UnidentifiedImageError:
        raise ValueError("not an image (PIL cannot identify it: use JPEG, PNG or WebP)") from None
    except Image.DecompressionBombError as exc:
        from dogbreed.core.images import bomb_size

        raise ValueError(f"too many pixels to decode safely ({bomb_size(exc)}): resize it") from None
    except (OSError, ValueError, SyntaxError) as exc:
        if "truncated" in str(exc).lower():
            raise ValueError("truncated file (it ends inside the image header)") from None
        raise ValueError(f"unreadable image header ({exc})") from None
    if image_format is None:
        raise ValueError("not an image (PIL cannot identify it: use JPEG, PNG or WebP)")
    return data  # completeness: the strict decode in predict_records


def record(name: str, answer: Any = None, error: str = "") -> dict[str, Any]:
    """One output record: the image and its answer (``confident``, ``predictions``, ``rejection``?), or the image
    and its error."""
    if error or answer is None:
        return {"image": name, "error": error or "no answer"}
    return {"image": name, **answer.to_dict()}


def predict_records(predictor: Any, inputs: Sequence[ImageInput], k: int, batch_size: int) -> list[dict[str, Any]]:
    """A record per input, in input order; decoding errors become error records, never abort the batch."""
    from dogbreed.core.errors import ImageDecodeError

    results: dict[str, dict[str, Any]] = {}
    pending: list[tuple[str, Any]] = []

    def flush() -> None:
        if pending:
            batch = predictor.transform_batch([image for _, image in pending])
            for (name, _), answer in zip(pending, predictor.answers(predictor.predict_logits(batch), k)):
                results[name] = record(name, answer)
            pending.clear()

    for item in inputs:
        if item.error:
            results[item.name] = record(item.name, error=item.error)
            continue
        try:
            image = predictor.decode(read_image(item.name))  # the endpoint's input policy
        except (ValueError, ImageDecodeError) as exc:
            results[item.name] = record(item.name, error=str(exc).splitlines()[0])
            continue
        pending.append((item.name, image))
        if len(pending) >= batch_size:
            flush()
    flush()
    return [results[item.name] for item in inputs]


def render_text(records: Sequence[dict[str, Any]]) -> str:
    lines = []
    for rec in records:
        if "error" in rec:
            lines.append(f"{rec['image']}: error: {rec['error']}")
            continue
        shown = ", ".join(f"{p['breed']} ({p['index']}) {p['probability']:.3f}" for p in rec["predictions"])
        rejection = rec.get("rejection")
        if rejection:
            shown = (f"NOT CONFIDENT ({rejection['score_type']} {rejection['score']:.3f} < threshold "
                     f"{rejection['threshold']:.3f}: no breed clears the confidence threshold); best guesses: {shown}")
        lines.append(f"{rec['image']}: {shown}")
    return "\n".join(lines)


def predict_command(argv: Sequence[str] | None) -> Outcome:
    args = build_parser().parse_args(argv)
    for option, value, limit, reason in (("--top-k", args.top_k, MAX_TOP_K, "breeds listed per image"),
                                         ("--batch-size", args.batch_size, MAX_BATCH_SIZE, "images decoded and held "
                                          "in memory at once"),
                                         ("--explain-top-k", args.explain_top_k, MAX_EXPLAIN_TOP_K, "panels per "
                                          "overlay, each at the photo's size")):
        if value < 1:  # the value is named: it may come from a script, not the line in front of the user
            raise ConfigError(f"{option} must be at least 1, got {value}")
        if value > limit:
            raise ConfigError(f"{option} must be at most {limit} ({reason}), got {value}")
    inputs = expand_inputs(args.images)
    if args.explain is not None:
        from dogbreed.explain.gradcam import require_captum

        require_captum()  # before the model loads
    from dogbreed.serving.artifact import quality_warning
    from dogbreed.serving.predictor import Predictor

    if args.model_dir is None and not DEFAULT_MODEL_DIR.is_dir():
        raise ConfigError(f"no model in {DEFAULT_MODEL_DIR} (the default --model-dir): train one first with "
                          "python -m entry_points.train, or pass --model-dir")
    predictor = Predictor.from_model_dir(args.model_dir or DEFAULT_MODEL_DIR, device=args.device,
                                         precision=args.precision)
    if args.explain is not None and predictor.precision == "int8":
        raise ConfigError("--explain needs the gradients of a float model and this one serves int8: add "
                          "--precision fp32")
    warning = quality_warning(predictor.config)
    if warning:
        print(warning, file=sys.stderr, flush=True)
    records = predict_records(predictor, inputs, args.top_k, args.batch_size)
    explained = 0
    if args.explain is not None:
        from dogbreed.explain.gradcam import write_explanations

        answered = [rec for rec in records if "error" not in rec]
        overlays = write_explanations(predictor, [Path(r["image"]) for r in answered], args.explain,
                                      top_k=args.explain_top_k)
        for rec, overlay in zip(answered, overlays):
            rec["explanation"] = str(overlay)
        explained = len(answered)
    if args.json:
        text = json.dumps(records, indent=2)
    elif args.jsonl:
        text = "\n".join(json.dumps(rec) for rec in records)
    else:
        text = render_text(records)
        note = next((rec["abstention"] for rec in records if "abstention" in rec), None)
        if note:  # a model without an abstention rule: said once, not on every line
            text += f"\nnote: {note}"
        if args.explain is not None:
            text += f"\nGrad-CAM overlays: {args.explain}/ ({explained} files)"
    failed = sum("error" in rec for rec in records)
    if failed:
        print(f"{failed} of {len(records)} image(s) failed", file=sys.stderr, flush=True)
    return Outcome(summary=text, status=EXIT_SOME_FAILED if failed else 0)


def main(argv: Sequence[str] | None = None) -> int:
    return run_command(lambda: predict_command(argv))
