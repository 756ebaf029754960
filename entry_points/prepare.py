"""A prepared dataset: ``python -m entry_points.prepare --data-dir D --output P [--short-side N]``."""

import sys

from dogbreed.cli.prepare import main

if __name__ == "__main__":
    sys.exit(main())
