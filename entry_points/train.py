"""Train, evaluate and export: ``python -m entry_points.train --help``. Local and SageMaker."""

from __future__ import annotations

import sys
from typing import Sequence

from dogbreed.config import parse_config
from dogbreed.errors import DogBreedError
from dogbreed.logging_setup import configure_logging


def main(argv: Sequence[str] | None = None) -> int:
    configure_logging()
    try:
        config = parse_config(argv)
        from dogbreed.training import train  # heavy imports after the flags are known to be valid

        result = train(config)
        if config.demo:
            from dogbreed.demo_run import show_demo_predictions

            show_demo_predictions(config, result)
    except DogBreedError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"model artifact: {result.model_dir}/  reports: {result.output_dir}/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
