"""Debugger rules on an smdebug trial: ``python -m entry_points.debug_report --trial DIR_OR_S3``."""

import sys

from dogbreed.cli.debug_report import main

if __name__ == "__main__":
    sys.exit(main())
