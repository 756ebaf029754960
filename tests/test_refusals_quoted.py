"""Every refusal dogbreed raises is quoted by some test (issue 24): a message nothing reads back can change, lose
its figures or name the wrong option unseen. For each ``raise SomeError("...")`` in ``dogbreed/``, the longest
literal run of its message (12 characters or more, between the ``{...}`` of an f-string) must appear among the
string constants of ``tests/`` (joined as Python joins adjacent literals). A new refusal without a test fails here
by name; the few left out are listed below with the reason."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PROBE = 24  # characters of the literal run looked for: long enough to be one message, short enough to survive wraps

# (file, the message's longest literal run): why no test quotes it.
NOT_QUOTED = {
    ("dogbreed/diagnostics/rules.py", "); install it with pip install -e '.[debug]'"):
        "raised at import when smdebug is absent; CI installs smdebug, and the smdebug policy tests cover its absence",
    ("dogbreed/diagnostics/rules.py", "no loss values in mode"): "smdebug rule internals (a trial without losses)",
    ("dogbreed/diagnostics/rules.py", "no loss tensors in the trial: save the 'losses' collection"):
        "smdebug rule internals (three rules say it)",
    ("dogbreed/diagnostics/rules.py", "no activation inputs, gradients or losses in the trial"):
        "smdebug rule internals",
    ("dogbreed/diagnostics/smdebug_hook.py", ".per_batch_module() or .net: the nn.Module called once per batch"):
        "a programming error in a LightningModule, not user input",
    ("dogbreed/diagnostics/smdebug_hook.py",
     ".loss_fn to be a torch loss module (smdebug's register_loss asserts it), got"):
        "a programming error in a LightningModule, not user input",
    ("dogbreed/serving/local_endpoint.py", "the serving process exited during startup:"):
        "needs TorchServe dying at start-up; its worker failures are tested through worker_error",
    ("dogbreed/serving/model_import.py", ": the written weights differ from the imported ones"):
        "a check that the artifact writer round-trips; no input reaches it",
    ("dogbreed/serving/packaging.py", "resolves outside the destination:"):
        "behind the member checks that refuse links and '..' first (tests/serving/test_archive_safety.py)",
    ("dogbreed/serving/packaging.py", "has no data:"): "behind the member checks that refuse non-regular files first",
    ("dogbreed/serving/requests.py", "unsupported .npy version"):
        "never shown: caught and worded as 'its header cannot be parsed' (tests/serving/test_request_refusals.py)",
    ("dogbreed/training/before_training.py", "Lightning's LR finder plot returned no figure"):
        "guards Lightning's API, not user input",
    ("dogbreed/training/evaluation.py", "trainer.test() ran but produced no confusion matrix"):
        "guards Lightning's API, not user input",
    ("dogbreed/training/selection.py", "the best epoch's weights do not fit this network ("):
        "weights the same run saved a moment earlier; no input reaches it",
}


def _constants(path: Path) -> list[str]:
    return [node.value for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
            if isinstance(node, ast.Constant) and isinstance(node.value, str)]


def _refusals() -> list[tuple[str, int, str]]:
    found = []
    for path in sorted((ROOT / "dogbreed").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not (isinstance(node, ast.Raise) and isinstance(node.exc, ast.Call) and node.exc.args):
                continue
            message = node.exc.args[-1] if getattr(node.exc.func, "id", "") == "RequestError" else node.exc.args[0]
            runs = [run.strip() for constant in ast.walk(message)
                    if isinstance(constant, ast.Constant) and isinstance(constant.value, str)
                    for run in re.split(r"[{}]", constant.value) if len(run.strip()) >= 12]
            if runs:
                found.append((path.relative_to(ROOT).as_posix(), node.lineno, max(runs, key=len)))
    return found


def test_every_refusal_is_quoted_by_a_test():
    quoted = "\n".join(text for path in (ROOT / "tests").rglob("*.py") if path != Path(__file__).resolve()
                        for text in _constants(path))  # not this file: its list names them
    missing = {(file, run): line for file, line, run in _refusals() if run[:PROBE] not in quoted}
    new = [f"{file}:{line}: {run!r}" for (file, run), line in sorted(missing.items()) if (file, run) not in NOT_QUOTED]
    assert new == [], "refusals no test quotes (quote each in a test, or list it in NOT_QUOTED with the reason)"
    stale = sorted(set(NOT_QUOTED) - set(missing))
    assert stale == [], "NOT_QUOTED lists refusals a test now quotes (or that are gone): remove them"


def test_the_check_finds_an_unquoted_refusal(tmp_path, monkeypatch):
    """The check itself: a module with a refusal no test quotes is reported, by file and line."""
    package = tmp_path / "dogbreed"
    package.mkdir()
    (package / "m.py").write_text('def f(x):\n    raise ValueError(f"{x} is a brand new refusal nobody quotes")\n')
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "test_m.py").write_text('MESSAGE = "something else entirely"\n')
    monkeypatch.setitem(globals(), "ROOT", tmp_path)
    assert _refusals() == [("dogbreed/m.py", 2, "is a brand new refusal nobody quotes")]
