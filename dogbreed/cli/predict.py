"""``python -m entry_points.predict``: top-k breeds for image files with a trained model dir.

Each answer says whether the model is confident (the artifact's abstention threshold); ``--explain OUT_DIR``
also writes a Grad-CAM overlay per image.
"""

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
    parser.add_argument("--explain", type=Path, default=None, metavar="OUT_DIR",
                        help="also write a Grad-CAM overlay of the top breed per image into OUT_DIR "
                             "(<image stem>_gradcam.png; needs pip install -e '.[explain]')")
    return parser


def predict_command(argv: Sequence[str] | None) -> str:
    args = build_parser().parse_args(argv)
    if args.explain is not None:
        from dogbreed.explain.gradcam import require_captum

        require_captum()  # before the model loads
    from dogbreed.serving.predictor import Predictor

    predictor = Predictor.from_model_dir(args.model_dir, device=args.device)
    answers = predictor.predict_answers(args.images, k=args.top_k)
    explained: list[Path] = []
    if args.explain is not None:
        from dogbreed.explain.gradcam import write_explanations

        explained = write_explanations(predictor, args.images, args.explain)
    if args.json:
        payload = [{"image": str(path), **answer.to_dict(),
                    **({"explanation": str(explained[i])} if explained else {})}
                   for i, (path, answer) in enumerate(zip(args.images, answers))]
        return json.dumps(payload, indent=2)
    lines = [f"{path}: {answer.to_text()}" for path, answer in zip(args.images, answers)]
    if explained:
        lines.append(f"Grad-CAM overlays: {args.explain}/ ({len(explained)} files)")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    return run_command(lambda: predict_command(argv))
