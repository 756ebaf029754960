"""``python -m entry_points.predict``: top-k breeds for image files with a trained model dir."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

from dogbreed.cli.runner import run_command
from dogbreed.config.parser import CommandParser

PROG = "python -m entry_points.predict"


def build_parser() -> CommandParser:
    parser = CommandParser(prog=PROG, allow_abbrev=False, description="Predict dog breeds with a trained model dir.")
    parser.add_argument("images", nargs="+", type=Path, help="image files (JPEG, PNG, WebP, ...)")
    parser.add_argument("--model-dir", "--model_dir", type=Path, required=True, help="a model dir written by training")
    parser.add_argument("--top-k", "--top_k", type=int, default=5, help="breeds per image (default: 5)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of text")
    parser.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    return parser


def predict_command(argv: Sequence[str] | None) -> str:
    args = build_parser().parse_args(argv)
    from dogbreed.serving.predictor import Predictor

    predictor = Predictor.from_model_dir(args.model_dir, device=args.device)
    results = predictor.predict(args.images, k=args.top_k)
    if args.json:
        payload = [{"image": str(path), "predictions": [p.to_dict() for p in preds]}
                   for path, preds in zip(args.images, results)]
        return json.dumps(payload, indent=2)
    return "\n".join(f"{path}: " + ", ".join(f"{p.breed} ({p.index}) {p.probability:.3f}" for p in preds)
                     for path, preds in zip(args.images, results))


def main(argv: Sequence[str] | None = None) -> int:
    return run_command(lambda: predict_command(argv))
