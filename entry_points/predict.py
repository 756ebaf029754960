"""Top-k breeds for image files: ``python -m entry_points.predict --model-dir M IMAGE...``."""

import sys

from dogbreed.cli.predict import main

if __name__ == "__main__":
    sys.exit(main())
