"""ONNX export of a model dir: ``python -m entry_points.export --model-dir M --output model.onnx``."""

import sys

from dogbreed.cli.export import main

if __name__ == "__main__":
    sys.exit(main())
