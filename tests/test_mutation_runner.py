"""tools/mutation_tests.py, the test command make mutation hands mutmut: every failure must exit 1, because mutmut
2.x counts a mutant as killed only on status 1 (pytest's 2, a collection error, would read as a survivor)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

RUNNER = Path(__file__).resolve().parents[1] / "tools" / "mutation_tests.py"


@pytest.mark.parametrize("body, status", [
    ("def test_ok():\n    assert 1 + 1 == 2\n", 0),
    ("def test_fails():\n    assert 1 + 1 == 3\n", 1),  # pytest: 1
    ("import no_such_module_anywhere\n\ndef test_ok():\n    pass\n", 1),  # pytest: 2 (collection error)
    ("STAGE_WIDTHS = None\nFEATURES = STAGE_WIDTHS[-1]\n", 1),  # a mutant that breaks an import: pytest 2
    ("def helper():\n    pass\n", 1),  # no tests collected: pytest 5
])
def test_any_failure_exits_1_and_only_a_pass_exits_0(tmp_path, body, status):
    (tmp_path / "test_case.py").write_text(body)
    done = subprocess.run([sys.executable, str(RUNNER), "-q", "-p", "no:cacheprovider", "--noconftest",
                           str(tmp_path / "test_case.py")], capture_output=True, text=True, cwd=tmp_path,
                          timeout=120)
    assert done.returncode == status, done.stdout[-2000:]
