"""Top-k breeds for image files: ``python -m entry_points.predict --model-dir M IMAGE...``."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Sequence

from dogbreed.errors import DogBreedError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m entry_points.predict", allow_abbrev=False,
                                     description="Predict dog breeds with a trained model dir.")
    parser.add_argument("images", nargs="+", type=Path, help="image files (JPEG, PNG, WebP, ...)")
    parser.add_argument("--model-dir", "--model_dir", type=Path, required=True, help="a model dir written by training")
    parser.add_argument("--top-k", "--top_k", type=int, default=5, help="breeds per image (default: 5)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of text")
    parser.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from dogbreed.serving import Predictor

    try:
        predictor = Predictor.from_model_dir(args.model_dir, device=args.device)
        results = predictor.predict(args.images, k=args.top_k)
    except DogBreedError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.json:
        payload = [{"image": str(path), "predictions": [p.to_dict() for p in preds]}
                   for path, preds in zip(args.images, results)]
        print(json.dumps(payload, indent=2))
    else:
        for path, preds in zip(args.images, results):
            print(f"{path}: " + ", ".join(f"{p.breed} ({p.index}) {p.probability:.3f}" for p in preds))
    return 0


if __name__ == "__main__":
    sys.exit(main())
