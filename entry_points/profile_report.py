"""A profiled run's report from its output: ``python -m entry_points.profile_report SOURCE --out DIR``."""

import sys

from dogbreed.cli.profile_report import main

if __name__ == "__main__":
    sys.exit(main())
