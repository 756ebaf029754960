"""tools/mutation_sample.py: a seeded sample of mutmut's mutants, each run against the tests covering its line and,
when those pass, the package's test folder. Run here on a three-mutant toy package in a temporary tree."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest

TOOLS = Path(__file__).resolve().parents[1] / "tools"
sys.path.insert(0, str(TOOLS))

import mutation_sample  # noqa: E402

ARITH = "def add(a, b):\n    return a + b\n\n\ndef double(a):\n    return a * 2\n"
TESTS = ("from dogbreed.toy.arith import add, double\n\n\n"
         "def test_add():\n    assert add(2, 3) == 5\n\n\n"
         "def test_double():\n    assert double(3) > 3\n")


@pytest.mark.parametrize("killed, total, low, high", [
    (18, 20, 0.6990, 0.9721),
    (20, 20, 0.8389, 1.0),
    (0, 10, 0.0, 0.2775),
    (5, 10, 0.2366, 0.7634),
    (0, 0, 0.0, 1.0),
])
def test_wilson_interval_matches_hand_computed_values(killed, total, low, high):
    assert mutation_sample.wilson_interval(killed, total) == (pytest.approx(low, abs=1e-4),
                                                             pytest.approx(high, abs=1e-4))


@pytest.mark.parametrize("context, nodeid", [
    ("tests/a.py::test_b|run", "tests/a.py::test_b"),
    ("tests/a.py::test_b[x|y]|setup", "tests/a.py::test_b[x|y]"),
    ("tests/a.py::C::test_d[1]|teardown", "tests/a.py::C::test_d[1]"),
])
def test_a_coverage_context_gives_the_node_id(context, nodeid):
    assert mutation_sample.context_nodeid(context) == nodeid


def test_covering_tests_run_fastest_first_and_unknown_durations_last():
    coverage_map = {"durations": {"t::slow": 5.0, "t::fast": 0.1},
                    "lines": {"m.py": {"3": ["t::slow", "t::unknown", "t::fast"]}}}
    mutant = {"file": "m.py", "line_number": 3}
    assert mutation_sample.covering_tests(mutant, coverage_map) == ["t::fast", "t::slow", "t::unknown"]
    assert mutation_sample.covering_tests({"file": "m.py", "line_number": 4}, coverage_map) == []


@pytest.fixture
def toy_tree(tmp_path: Path) -> Path:
    (tmp_path / "dogbreed" / "toy").mkdir(parents=True)
    (tmp_path / "dogbreed" / "__init__.py").write_text("")
    (tmp_path / "dogbreed" / "toy" / "__init__.py").write_text("")
    (tmp_path / "dogbreed" / "toy" / "arith.py").write_text(ARITH)
    (tmp_path / "tests" / "toy").mkdir(parents=True)
    (tmp_path / "tests" / "toy" / "test_arith.py").write_text(TESTS)
    (tmp_path / "tools").mkdir()
    shutil.copy(TOOLS / "mutation_tests.py", tmp_path / "tools" / "mutation_tests.py")
    # Line 2 (add) is covered by test_add; line 6 (double) by nothing, as a module-level or subprocess-only line.
    (tmp_path / "map.json").write_text(json.dumps({
        "durations": {"tests/toy/test_arith.py::test_add": 0.01},
        "lines": {"dogbreed/toy/arith.py": {"2": ["tests/toy/test_arith.py::test_add"]}}}))
    return tmp_path


def run_args(tree: Path, *extra: str) -> list[str]:
    return ["run", "--package", "toy", "--sample", "10", "--root", str(tree), "--map", str(tree / "map.json"),
            "--results", str(tree / "out" / "toy.jsonl"), "--timeout", "120", *extra]


@pytest.mark.slow  # runs pytest in subprocesses over a toy tree: make test, not make test-quick
def test_a_sampled_run_kills_through_covering_tests_then_the_folder_and_reports_the_survivor(toy_tree, capsys):
    mutation_sample.main(run_args(toy_tree))
    records = [json.loads(line) for line in (toy_tree / "out" / "toy.jsonl").read_text().splitlines()]
    records.sort(key=lambda r: (r["line_number"], r["index"]))
    assert [(r["line_number"], r["index"], r["status"], r["covered"]) for r in records] == [
        (2, 0, "killed", True), (6, 0, "killed", False), (6, 1, "survived", False)]
    assert sorted(r["draw"] for r in records) == [0, 1, 2]
    assert [r["diff"] for r in records] == ["-    return a + b | +    return a - b",
                                            "-    return a * 2 | +    return a / 2",
                                            "-    return a * 2 | +    return a * 3"]
    assert [[(s["stage"], s["status"]) for s in r["stages"]] for r in records] == [
        [("covering", "killed")], [("folder", "killed")], [("folder", "survived")]]
    assert records[0]["stages"][0]["tests"] == 1 and records[1]["stages"][0]["tests"] == "tests/toy"
    assert {r["population"] for r in records} == {3}
    # Every mutant was restored: the file is byte for byte what it was.
    assert (toy_tree / "dogbreed" / "toy" / "arith.py").read_text() == ARITH
    capsys.readouterr()

    mutation_sample.main(["report", str(toy_tree / "out" / "toy.jsonl")])
    lines = capsys.readouterr().out.splitlines()
    assert lines[1].split() == ["toy", "3", "3", "2", "0", "67%", "[21%,", "94%]", "0", "67%"]
    assert lines[2].split(None, 2) == ["survived", "dogbreed/toy/arith.py:6", "-    return a * 2 | +    return a * 3"]
    assert len(lines) == 3

    # A survivor judged equivalent leaves the score's denominator and is listed with its reason.
    equivalents = toy_tree / "equivalents.json"
    equivalents.write_text(json.dumps([{"file": "dogbreed/toy/arith.py", "diff": records[2]["diff"],
                                        "reason": "any factor over 1 passes"}]))
    mutation_sample.main(["report", str(toy_tree / "out" / "toy.jsonl"), "--equivalents", str(equivalents)])
    lines = capsys.readouterr().out.splitlines()
    assert lines[1].split() == ["toy", "3", "3", "2", "1", "100%", "[34%,", "100%]", "0", "100%"]
    assert lines[2].split(None, 2) == ["equivalent", "dogbreed/toy/arith.py:6", "any factor over 1 passes"]


@pytest.mark.slow  # runs pytest in subprocesses over a toy tree: make test, not make test-quick
def test_recheck_applies_each_survivor_to_todays_tree_and_runs_the_new_tests(toy_tree, capsys):
    mutation_sample.main(run_args(toy_tree))
    results = toy_tree / "out" / "toy.jsonl"
    # A test written to kill the survivor (double(3) == 6 tells * 3 from * 2), and a line added above it.
    (toy_tree / "tests" / "toy" / "test_arith.py").write_text(TESTS + "\n\ndef test_double_exactly():\n"
                                                               "    assert double(3) == 6\n")
    (toy_tree / "dogbreed" / "toy" / "arith.py").write_text("LIMIT = 1\n" + ARITH)
    capsys.readouterr()
    mutation_sample.main(["recheck", str(results), "--root", str(toy_tree), "--timeout", "120"])
    assert capsys.readouterr().out.split(None, 2)[:2] == ["killed", "dogbreed/toy/arith.py:7"]
    records = [json.loads(line) for line in results.read_text().splitlines()]
    assert {(r["line_number"], r["index"]): r.get("recheck") for r in records} == {
        (2, 0): None, (6, 0): None, (6, 1): "killed"}
    assert (toy_tree / "dogbreed" / "toy" / "arith.py").read_text() == "LIMIT = 1\n" + ARITH
    mutation_sample.main(["report", str(results)])
    lines = capsys.readouterr().out.splitlines()
    assert lines[1].split() == ["toy", "3", "3", "2", "0", "67%", "[21%,", "94%]", "1", "100%"]
    assert lines[2].split()[:2] == ["killed", "dogbreed/toy/arith.py:6"]

    # Several paths for the second stage: the survivor is killed by a test outside its package's folder.
    (toy_tree / "tests" / "toy" / "test_arith.py").write_text(TESTS)
    (toy_tree / "tests" / "test_docs.py").write_text("from dogbreed.toy.arith import double\n\n\n"
                                                     "def test_doc():\n    assert double(5) == 10\n")
    for record in records:
        record.pop("recheck", None)
    results.write_text("".join(json.dumps(r) + "\n" for r in records))
    (toy_tree / "tests" / "test_docs.py").write_text("def test_elsewhere():\n"
                                                     "    assert __import__('dogbreed.toy.arith').toy.arith."
                                                     "double(5) == 10\n")
    mutation_sample.main(["recheck", str(results), "--root", str(toy_tree), "--folder", "tests/toy"])
    assert capsys.readouterr().out.split()[0] == "killed"  # the file names the module: it joins the second stage
    (toy_tree / "tests" / "test_docs.py").write_text("from dogbreed.toy.arith import double\n\n\n"
                                                     "def test_doc():\n    assert double(5) == 10\n")
    mutation_sample.main(["recheck", str(results), "--root", str(toy_tree), "--folder", "tests/toy tests/test_docs.py"])
    assert capsys.readouterr().out.split()[0] == "killed"
    # by default the second stage is the package's folder and the top-level test files
    assert mutation_sample.default_folder(toy_tree, "toy") == "tests/toy tests/test_docs.py"
    assert mutation_sample.default_folder(toy_tree, "toy/arith.py") == "tests/toy tests/test_docs.py"
    mutation_sample.main(["recheck", str(results), "--root", str(toy_tree)])
    assert capsys.readouterr().out.split()[0] == "killed"

    # A slow test kills it: only a recheck with --slow runs it (make test's set, as the independent check does).
    (toy_tree / "tests" / "test_docs.py").write_text("import pytest\n\nfrom dogbreed.toy.arith import double\n\n\n"
                                                     "@pytest.mark.slow\ndef test_doc():\n"
                                                     "    assert double(5) == 10\n")
    for folder, slow, state in [("tests", [], "survived"), ("tests", ["--slow"], "killed")]:
        mutation_sample.main(["recheck", str(results), "--root", str(toy_tree), "--folder", folder, *slow])
        assert capsys.readouterr().out.split()[0] == state
        (survivor,) = [r for r in map(json.loads, results.read_text().splitlines()) if r["status"] == "survived"]
        assert survivor["recheck_tests"] == "tests" + (
            " (slow tests too)" if slow else "")

    # The mutated line itself changed: the survivor is gone from today's source and says so.
    (toy_tree / "dogbreed" / "toy" / "arith.py").write_text(ARITH.replace("a * 2", "2 * a"))
    for record in records:
        record.pop("recheck", None)
    results.write_text("".join(json.dumps(r) + "\n" for r in records))
    mutation_sample.main(["recheck", str(results), "--root", str(toy_tree)])
    assert capsys.readouterr().out.split()[:2] == ["gone", "dogbreed/toy/arith.py:?"]


def test_a_run_refuses_to_append_without_resume_and_resume_runs_only_what_is_missing(toy_tree, capsys):
    results = toy_tree / "out" / "toy.jsonl"
    results.parent.mkdir()
    results.write_text(json.dumps({"file": "dogbreed/toy/arith.py", "line_number": 2, "index": 0}) + "\n")
    with pytest.raises(SystemExit) as refused:
        mutation_sample.main(run_args(toy_tree))
    assert str(refused.value) == f"{results} exists: pass --resume to continue it or choose another --results"
    mutation_sample.main(run_args(toy_tree, "--resume"))
    records = [json.loads(line) for line in results.read_text().splitlines()]
    assert [(r["line_number"], r["index"]) for r in records[:1]] == [(2, 0)]
    assert sorted((r["line_number"], r["index"]) for r in records[1:]) == [(6, 0), (6, 1)]
    out = capsys.readouterr().out
    assert "return a - b" not in out and out.count("return a * 2") == 2


def test_the_sample_is_seeded_and_sized(toy_tree):
    first, population = mutation_sample.sample_mutants(toy_tree, "toy", 2, seed=24)
    again, _ = mutation_sample.sample_mutants(toy_tree, "toy", 2, seed=24)
    assert population == 3 and len(first) == 2 and first == again
    assert [m["draw"] for m in first] == [0, 1]
    # A smaller sample is the first draws of a bigger one: a stopped run measured a random sample too.
    whole, _ = mutation_sample.sample_mutants(toy_tree, "toy", 3, seed=24)
    assert whole[:2] == first
    seeds = {tuple((m["line_number"], m["index"]) for m in mutation_sample.sample_mutants(toy_tree, "toy", 2, s)[0])
             for s in range(12)}
    assert len(seeds) == 6  # all six ordered pairs appear over twelve seeds: draw order is kept


def test_the_second_stage_adds_the_tests_executing_the_file_outside_the_folders_fastest_first():
    coverage_map = {"durations": {"tests/a/test_x.py::t1": 2.0, "tests/b/test_y.py::t2": 1.0,
                                  "tests/test_docs.py::t3": 0.5, "tests/c/test_z.py::t4": 0.1},
                    "lines": {"f.py": {"1": ["tests/a/test_x.py::t1", "tests/c/test_z.py::t4"],
                                       "5": ["tests/b/test_y.py::t2", "tests/test_docs.py::t3"]},
                              "g.py": {"1": ["tests/d/test_w.py::t5"]}}}
    assert mutation_sample.second_stage("f.py", "tests/a tests/test_docs.py", coverage_map) == [
        "tests/c/test_z.py::t4", "tests/b/test_y.py::t2", "tests/a", "tests/test_docs.py"]
    assert mutation_sample.second_stage("f.py", "tests/a", None) == ["tests/a"]
    assert mutation_sample.second_stage("h.py", "tests/a", coverage_map) == ["tests/a"]


def test_test_files_naming_the_module_outside_its_folder_join_the_second_stage(tmp_path):
    for name, text in {"tests/serving/test_a.py": "from dogbreed.serving.front import ROUTES\n",
                       "tests/config/test_pinned.py": "from dogbreed.serving.front import ROUTES\n",
                       "tests/config/test_other.py": "from dogbreed.serving.frontier import X\n",
                       "tests/test_docs.py": "import dogbreed.serving.artifact\n"}.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    # the folder's own files are there already; "frontier" names another module but contains the name: kept, a
    # superset is only slower
    assert mutation_sample.importing_tests(tmp_path, "dogbreed/serving/front.py") == [
        "tests/config/test_other.py", "tests/config/test_pinned.py"]
    assert mutation_sample.second_stage("dogbreed/serving/front.py", "tests/serving", None, tmp_path) == [
        "tests/serving", "tests/config/test_other.py", "tests/config/test_pinned.py"]


@pytest.mark.slow  # runs pytest in subprocesses over a toy tree: make test, not make test-quick
def test_a_map_naming_a_test_since_renamed_does_not_count_as_a_kill(toy_tree, capsys):
    mutation_sample.main(run_args(toy_tree))
    results = toy_tree / "out" / "toy.jsonl"
    stale = toy_tree / "out" / "stale_map.json"  # made before a test was renamed: pytest would refuse the old id
    (toy_tree / "tests" / "other").mkdir()
    (toy_tree / "tests" / "other" / "test_elsewhere.py").write_text("def test_new_name():\n    assert True\n")
    gone = "tests/other/test_elsewhere.py::test_old_name"  # outside the package's folder: the map adds it
    stale.write_text(json.dumps({"durations": {gone: 0.1}, "lines": {"dogbreed/toy/arith.py": {"6": [gone]}}}))
    capsys.readouterr()
    mutation_sample.main(["recheck", str(results), "--root", str(toy_tree), "--map", str(stale), "--timeout", "120"])
    assert capsys.readouterr().out.split(None, 2)[:2] == ["survived", "dogbreed/toy/arith.py:6"]
