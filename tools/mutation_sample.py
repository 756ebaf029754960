"""A seeded random sample of mutmut's mutants per subpackage, each run against the fast tests that cover its line.

``make mutation`` runs every mutant of one module against a fixed list of test files: exact, but an hour or more per
subpackage on 2 cores. This tool estimates a subpackage's score in minutes and says how sure the estimate is:

1. ``map``: the fast tests (``-m "not slow"``) run once under coverage with one context per test, giving for each line
   of ``dogbreed/`` the tests that execute it, and each test's duration.
2. ``run``: mutmut 2.5.1's own mutation operators list every mutant of the subpackage's files; a seeded random sample
   of them is applied one at a time (in the working tree given, restored after each) and the tests that cover the
   mutated line run, fastest first, stopping at the first failure. A mutant that survives them (or whose line no test
   covers: code reached only through a subprocess or a session fixture's first user, or run at import) is run again
   against every fast test that executes its file, the subpackage's test folder, the top-level test files and any
   other test file naming the module (a pinned list) before it is called a survivor.
   Each result is appended to a JSON-lines file, so a stopped run keeps what it measured and ``--resume``
   continues it.
3. ``recheck``: each survivor applied again to today's tree (found by its line's text) and run against its package's
   test folder, after tests were written to kill it.
4. ``report``: per subpackage, killed / sampled, the Wilson 95% interval of the score, the survivors killed since
   (``recheck``), and every survivor left: to kill with a test, or to list in ``--equivalents`` with the reason.

    python tools/mutation_sample.py map --out outputs/mutation/map.json
    python tools/mutation_sample.py run --package serving --sample 20 --map outputs/mutation/map.json \\
        --results outputs/mutation/serving.jsonl
    python tools/mutation_sample.py recheck outputs/mutation/serving.jsonl
    python tools/mutation_sample.py report outputs/mutation/*.jsonl --equivalents tools/mutation_equivalents.json

Not in CI (minutes per mutant on 2 cores). Run it in a separate worktree when you keep working: mutants are
written into the files of the tree it runs in.
"""

from __future__ import annotations

import argparse
import difflib
import json
import math
import os
import random
import subprocess
import sys
import time
from pathlib import Path


def wilson_interval(killed: int, total: int, z: float = 1.96) -> tuple[float, float]:
    """The Wilson score interval of a proportion: sound at 0 and at n, unlike the normal approximation."""
    if total == 0:
        return (0.0, 1.0)
    p = killed / total
    denominator = 1 + z * z / total
    centre = (p + z * z / (2 * total)) / denominator
    half = z * math.sqrt(p * (1 - p) / total + z * z / (4 * total * total)) / denominator
    return (max(0.0, centre - half), min(1.0, centre + half))


# --- map --------------------------------------------------------------------------------------------------------


class _Durations:
    """A pytest plugin recording each test's total time (setup + call + teardown) by node id."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    def pytest_runtest_logreport(self, report) -> None:
        self.seconds[report.nodeid] = self.seconds.get(report.nodeid, 0.0) + report.duration


def context_nodeid(context: str) -> str:
    """pytest-cov's per-test context ``tests/a.py::test_b[x]|run`` (or ``|setup``, ``|teardown``) -> the node id."""
    return context.rsplit("|", 1)[0]


def build_map(out: Path, pytest_args: list[str]) -> dict:
    import coverage
    import pytest

    data_file = out.with_suffix(".coverage")
    durations = _Durations()
    args = ["-q", "-p", "no:cacheprovider", "-m", "not slow", "--cov=dogbreed", "--cov-context=test",
            "--cov-report=", *pytest_args]
    os.environ["COVERAGE_FILE"] = str(data_file)
    status = pytest.main(args, plugins=[durations])
    if status not in (0, 1):
        raise SystemExit(f"the coverage run failed (pytest status {status}); no map written")
    data = coverage.CoverageData(basename=str(data_file))
    data.read()
    root = Path.cwd().resolve()
    lines: dict[str, dict[str, list[str]]] = {}
    for filename in data.measured_files():
        relative = Path(filename).resolve().relative_to(root).as_posix()
        by_line = data.contexts_by_lineno(filename)
        lines[relative] = {str(n): sorted({context_nodeid(c) for c in contexts if c})
                           for n, contexts in by_line.items()}
    result = {"pytest_status": status, "durations": durations.seconds, "lines": lines}
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result))
    return result


# --- run --------------------------------------------------------------------------------------------------------


def list_mutants(path: Path) -> list[dict]:
    """Every mutant mutmut 2.5.1 makes of one file: its line number, the line's text and its index on the line."""
    from mutmut import ALL, Context, list_mutations

    source = path.read_text()
    context = Context(source=source, mutation_id=ALL, filename=str(path))
    return [{"file": path.as_posix(), "line_number": m.line_number + 1, "line": m.line, "index": m.index}
            for m in list_mutations(context)]


def mutated_source(mutant: dict, root: Path) -> tuple[str, str]:
    from mutmut import Context, RelativeMutationID, mutate

    path = root / mutant["file"]
    original = path.read_text()
    mutation_id = RelativeMutationID(line=mutant["line"], index=mutant["index"],
                                     line_number=mutant["line_number"] - 1, filename=mutant["file"])
    mutated, performed = mutate(Context(source=original, mutation_id=mutation_id, filename=str(path)))
    if performed != 1 or mutated == original:
        raise RuntimeError(f"mutmut did not apply {mutant}")
    return original, mutated


def one_line_diff(original: str, mutated: str) -> str:
    changed = [line for line in difflib.unified_diff(original.splitlines(), mutated.splitlines(), lineterm="", n=0)
               if line[:1] in "+-" and not line.startswith(("+++", "---"))]
    return " | ".join(changed)


def covering_tests(mutant: dict, coverage_map: dict) -> list[str]:
    tests = coverage_map["lines"].get(mutant["file"], {}).get(str(mutant["line_number"]), [])
    durations = coverage_map["durations"]
    return sorted(tests, key=lambda t: (durations.get(t, 1e9), t))


def importing_tests(root: Path, file: str) -> list[str]:
    """Test files outside the package's folder that name the module (``dogbreed.serving.front``): a pinned list
    or constant is read there without running any of the module's lines."""
    module = file.removesuffix(".py").replace("/", ".")
    package = f"tests/{file.split('/')[1]}/" if file.count("/") >= 2 else ""
    found = []
    for path in sorted((root / "tests").rglob("test_*.py")):
        relative = path.relative_to(root).as_posix()
        if package and relative.startswith(package):
            continue
        if module in path.read_text(encoding="utf-8", errors="replace"):
            found.append(relative)
    return found


def second_stage(file: str, folder: str, coverage_map: dict | None, root: Path | None = None) -> list[str]:
    """The tests a survivor of the covering tests meets next: every fast test that executes any line of its file
    (a decorator or a constant runs at import, outside any test's context, but is used by the tests of the file's
    functions), fastest first, then ``folder``'s paths and the other test files that name the module."""
    paths = folder.split()
    if root is not None:
        paths += [t for t in importing_tests(root, file) if t not in paths]
    if coverage_map is None:
        return paths
    durations = coverage_map["durations"]
    tests = {t for lines in coverage_map["lines"].get(file, {}).values() for t in lines}
    inside = [t for t in tests if any(t == p or t.startswith(p.rstrip("/") + "/") or t.startswith(p + "::")
                                      for p in paths)]
    return sorted(tests - set(inside), key=lambda t: (durations.get(t, 1e9), t)) + paths


def collected_tests(root: Path, python: str) -> set[str]:
    """The test ids the unmutated tree has now. A map made on an older tree may name tests since renamed (a
    parametrised id follows its values): pytest refuses an unknown id, which would read as a kill."""
    done = subprocess.run([python, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider", "tests"],
                          cwd=root, env={**os.environ, "PYTHONPATH": str(root)}, capture_output=True, text=True)
    return {line.strip() for line in done.stdout.splitlines() if "::" in line}


def run_tests(root: Path, tests: list[str], timeout: float, python: str, slow: bool = False) -> tuple[str, float]:
    """``killed`` (any failure), ``survived`` (all passed) or ``timeout``, and the seconds it took; the fast tests
    only unless ``slow``."""
    args_file = root / ".mutation-sample-args"
    args_file.write_text("\n".join(tests) + "\n")
    env = {**os.environ, "PYTHONPATH": str(root), "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    command = [python, "tools/mutation_tests.py", "-x", "-q", "-p", "no:cacheprovider",
               *([] if slow else ["-m", "not slow"]), f"@{args_file.name}"]
    start = time.perf_counter()
    try:
        done = subprocess.run(command, cwd=root, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              timeout=timeout)
    except subprocess.TimeoutExpired:
        return "timeout", time.perf_counter() - start
    finally:
        args_file.unlink(missing_ok=True)
    return ("survived" if done.returncode == 0 else "killed"), time.perf_counter() - start


def default_folder(root: Path, package: str) -> str:
    """The second stage's tests: the package's folder and the top-level test files (the docs, the architecture,
    the README's numbers), which check module-level definitions (option help, constants) that run at import, where
    no test's coverage context sees them."""
    top_level = sorted(p.name for p in (root / "tests").glob("test_*.py"))
    return " ".join([f"tests/{package.split('/')[0].removesuffix('.py')}", *(f"tests/{name}" for name in top_level)])


def package_files(root: Path, package: str) -> list[Path]:
    base = root / "dogbreed" / package
    files = [base] if base.suffix == ".py" else sorted(base.rglob("*.py"))
    return [f.relative_to(root) for f in files if "__pycache__" not in f.parts]


def sample_mutants(root: Path, package: str, size: int, seed: int) -> tuple[list[dict], int]:
    everything: list[dict] = []
    for path in package_files(root, package):
        cwd = Path.cwd()
        os.chdir(root)
        try:
            everything.extend(list_mutants(path))
        finally:
            os.chdir(cwd)
    rng = random.Random(f"{package}:{seed}")
    # In draw order, not file order: a run stopped part way has still measured a random sample (its first draws).
    chosen = rng.sample(everything, min(size, len(everything)))
    return [{**mutant, "draw": draw} for draw, mutant in enumerate(chosen)], len(everything)


def run_sample(args: argparse.Namespace) -> None:
    root = Path(args.root).resolve()
    coverage_map = json.loads(Path(args.map).read_text())
    results = Path(args.results)
    done: set[tuple] = set()
    if args.resume and results.exists():
        for line in results.read_text().splitlines():
            record = json.loads(line)
            done.add((record["file"], record["line_number"], record["index"]))
    elif results.exists():
        raise SystemExit(f"{results} exists: pass --resume to continue it or choose another --results")
    chosen, population = sample_mutants(root, args.package, args.sample, args.seed)
    folder = args.folder or default_folder(root, args.package)
    print(f"{args.package}: {population} mutants, {len(chosen)} sampled (seed {args.seed}); second stage {folder}",
          flush=True)
    results.parent.mkdir(parents=True, exist_ok=True)
    for number, mutant in enumerate(chosen, 1):
        key = (mutant["file"], mutant["line_number"], mutant["index"])
        if key in done:
            continue
        path = root / mutant["file"]
        original, mutated = mutated_source(mutant, root)
        tests = covering_tests(mutant, coverage_map)
        stages = []
        try:
            path.write_text(mutated)
            status = "survived"
            if tests:
                status, seconds = run_tests(root, tests, args.timeout, args.python)
                stages.append({"stage": "covering", "tests": len(tests), "status": status,
                               "seconds": round(seconds, 1)})
            if status == "survived":
                second = second_stage(mutant["file"], folder, coverage_map, root)
                status, seconds = run_tests(root, second, args.timeout, args.python)
                stages.append({"stage": "folder", "tests": folder, "second_stage": len(second),
                               "status": status, "seconds": round(seconds, 1)})
        finally:
            path.write_text(original)
        record = {**mutant, "package": args.package, "population": population, "seed": args.seed,
                  "status": status, "covered": bool(tests), "diff": one_line_diff(original, mutated),
                  "stages": stages}
        with results.open("a") as handle:
            handle.write(json.dumps(record) + "\n")
        print(f"[{number}/{len(chosen)}] {status:8s} {mutant['file']}:{mutant['line_number']} "
              f"{record['diff'][:120]}", flush=True)


# --- recheck ----------------------------------------------------------------------------------------------------


def find_mutant(record: dict, root: Path) -> dict | None:
    """The record's mutant in today's source: mutmut names a mutant by its line's text and its index on the line,
    so it is found again after lines above it moved; None when the line itself changed."""
    cwd = Path.cwd()
    os.chdir(root)
    try:
        for mutant in list_mutants(Path(record["file"])):
            if mutant["line"] == record["line"] and mutant["index"] == record["index"]:
                return mutant
    finally:
        os.chdir(cwd)
    return None


def recheck(args: argparse.Namespace) -> None:
    """Each survivor of the result files, applied again to today's tree and run against its package's test folder
    (where the tests written to kill it live): ``recheck`` is ``killed``, ``survived`` or ``gone`` (its line
    changed; look at it again)."""
    root = Path(args.root).resolve()
    coverage_map = json.loads(Path(args.map).read_text()) if args.map else None
    known = collected_tests(root, args.python) if coverage_map is not None else set()
    for results in map(Path, args.results):
        records = [json.loads(line) for line in results.read_text().splitlines() if line.strip()]
        for record in records:
            if record["status"] != "survived":
                continue
            mutant = find_mutant(record, root)
            if mutant is None:
                record["recheck"] = "gone"
            else:
                folder = args.folder or default_folder(root, record["package"])
                path = root / mutant["file"]
                original, mutated = mutated_source(mutant, root)
                try:
                    path.write_text(mutated)
                    second = [t for t in second_stage(mutant["file"], folder, coverage_map, root)
                              if "::" not in t or t in known]  # paths, and the map's tests that still exist
                    record["recheck"], _ = run_tests(root, second, args.timeout, args.python, args.slow)
                    record["recheck_tests"] = f"{folder}{' (slow tests too)' if args.slow else ''}"
                finally:
                    path.write_text(original)
            print(f"{record['recheck']:8s} {record['file']}:{mutant['line_number'] if mutant else '?'} "
                  f"{record['diff'][:120]}", flush=True)
            results.write_text("".join(json.dumps(r) + "\n" for r in records))


# --- report -----------------------------------------------------------------------------------------------------


def load_equivalents(path: str | None) -> dict[tuple[str, str], str]:
    """``[{"file", "diff", "reason"}]``: survivors read and judged equivalent (no test can tell them apart)."""
    if not path:
        return {}
    return {(e["file"], e["diff"]): e["reason"] for e in json.loads(Path(path).read_text())}


def summarise(records: list[dict], equivalents: dict[tuple[str, str], str] | None = None) -> list[dict]:
    equivalents = equivalents or {}
    by_package: dict[str, list[dict]] = {}
    for record in records:
        by_package.setdefault(record["package"], []).append(record)
    rows = []
    for package, items in sorted(by_package.items()):
        killed = sum(r["status"] in ("killed", "timeout") for r in items)
        survived = [r for r in items if r["status"] == "survived"]
        equivalent = [r for r in survived if (r["file"], r["diff"]) in equivalents]
        live = [r for r in survived if (r["file"], r["diff"]) not in equivalents]
        later = sum(r.get("recheck") in ("killed", "timeout") for r in live)
        judged = len(items) - len(equivalent)
        low, high = wilson_interval(killed, judged)
        rows.append({"package": package, "population": items[0]["population"], "sampled": len(items),
                     "killed": killed, "equivalent": len(equivalent), "killed_later": later,
                     "score": killed / judged if judged else float("nan"), "low": low, "high": high,
                     "score_now": (killed + later) / judged if judged else float("nan"),
                     "survivors": live, "equivalents": equivalent})
    return rows


def report(paths: list[str], equivalents_path: str | None = None) -> None:
    records = [json.loads(line) for p in paths for line in Path(p).read_text().splitlines() if line.strip()]
    equivalents = load_equivalents(equivalents_path)
    print(f"{'package':14s} {'mutants':>7s} {'sampled':>7s} {'killed':>6s} {'equiv':>5s} {'score':>6s}  "
          f"{'95% interval':13s} {'+tests':>6s} {'now':>5s}")
    for row in summarise(records, equivalents):
        print(f"{row['package']:14s} {row['population']:7d} {row['sampled']:7d} {row['killed']:6d} "
              f"{row['equivalent']:5d} {row['score']:6.0%}  [{row['low']:.0%}, {row['high']:.0%}]".ljust(69)
              + f" {row['killed_later']:6d} {row['score_now']:5.0%}")
        for survivor in row["survivors"]:
            state = survivor.get("recheck", "survived")
            print(f"    {state:8s} {survivor['file']}:{survivor['line_number']}  {survivor['diff'][:150]}")
        for survivor in row["equivalents"]:
            print(f"    equivalent {survivor['file']}:{survivor['line_number']}  "
                  f"{equivalents[(survivor['file'], survivor['diff'])]}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    map_parser = commands.add_parser("map", help="run the fast tests under coverage, one context per test")
    map_parser.add_argument("--out", required=True)
    map_parser.add_argument("pytest_args", nargs="*", help="extra pytest arguments (e.g. test folders)")
    run_parser = commands.add_parser("run", help="apply a seeded sample of a subpackage's mutants")
    run_parser.add_argument("--package", required=True, help="a folder under dogbreed/ (serving) or a module "
                            "(core/fileio.py)")
    run_parser.add_argument("--sample", type=int, default=20)
    run_parser.add_argument("--seed", type=int, default=24)
    run_parser.add_argument("--map", required=True)
    run_parser.add_argument("--results", required=True)
    run_parser.add_argument("--resume", action="store_true")
    run_parser.add_argument("--root", default=".", help="the working tree to mutate (default: here)")
    run_parser.add_argument("--folder", help="the second stage's tests, space-separated paths (default: "
                            "tests/<package>)")
    run_parser.add_argument("--timeout", type=float, default=900.0, help="seconds per test run")
    run_parser.add_argument("--python", default=sys.executable)
    recheck_parser = commands.add_parser("recheck", help="apply each survivor again and run its package's tests")
    recheck_parser.add_argument("results", nargs="+")
    recheck_parser.add_argument("--root", default=".")
    recheck_parser.add_argument("--folder", help="space-separated test paths (default: tests/<package>)")
    recheck_parser.add_argument("--slow", action="store_true", help="run the slow tests too (make test's set)")
    recheck_parser.add_argument("--map", help="a coverage map of today's tree: the tests executing the survivor's file "
                                "run too")
    recheck_parser.add_argument("--timeout", type=float, default=900.0)
    recheck_parser.add_argument("--python", default=sys.executable)
    report_parser = commands.add_parser("report", help="scores and survivors from result files")
    report_parser.add_argument("results", nargs="+")
    report_parser.add_argument("--equivalents", help="a JSON list of {file, diff, reason}: survivors judged "
                               "equivalent, left out of the score")
    args = parser.parse_args(argv)
    if args.command == "map":
        build_map(Path(args.out), args.pytest_args)
    elif args.command == "run":
        run_sample(args)
    elif args.command == "recheck":
        recheck(args)
    else:
        report(args.results, args.equivalents)


if __name__ == "__main__":
    main()
