"""The test command ``make mutation`` gives mutmut: pytest, exiting 1 on any failure.

mutmut 2.x counts a mutant as killed only when the test command exits with status 1. A mutant that breaks an
import (``STAGE_WIDTHS = None`` in a module the tests import) makes pytest exit 2 (a collection error), and mutmut
would report it as a survivor. Any status but 0 is a failure here; a run that collects no tests (5) fails too,
so a mistyped test path stops mutmut at its baseline run instead of reporting every mutant as surviving.

    python tools/mutation_tests.py -x -q tests/core/test_resnet.py
"""

from __future__ import annotations

import sys

import pytest

if __name__ == "__main__":
    sys.exit(0 if pytest.main(sys.argv[1:]) == 0 else 1)
