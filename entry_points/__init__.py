"""The commands, run as ``python -m entry_points.<command>``.

Run with a Python that lacks dogbreed's dependencies (the system Python instead of ``.venv``'s), a command would end
in a ``ModuleNotFoundError`` traceback; it ends in one line saying what to do instead. (SageMaker runs these files
as scripts: this package file is then not imported and nothing changes.)
"""

import sys

_previous_hook = sys.excepthook


def _missing_dependency(kind, value, traceback):  # type: ignore[no-untyped-def]
    name = getattr(value, "name", None) or ""
    if issubclass(kind, ModuleNotFoundError) and name and name.split(".")[0] != "dogbreed":
        print(f"error: Python module {name.split('.')[0]} is not installed for {sys.executable}: activate "
              "dogbreed's environment first (. .venv/bin/activate), or create it with make install", file=sys.stderr)
        return
    _previous_hook(kind, value, traceback)


sys.excepthook = _missing_dependency
