"""A profile dir whose files are not what a profiled run writes: each refusal names the file, the line where there
is one, what is wrong and the columns or fields it needs (issue 24: every refusal read back)."""

from __future__ import annotations

import json

import pytest

from dogbreed.core.errors import ConfigError
from dogbreed.diagnostics.profile_data import read_profile_data
from tests.helpers.profile_files import write_profile_files


def _refusal(profile_dir) -> str:
    with pytest.raises(ConfigError) as refused:
        read_profile_data(profile_dir)
    return str(refused.value)


def test_a_utilisation_row_that_is_not_a_sample_names_its_line(tmp_path):
    profile = write_profile_files(tmp_path / "profile")
    path = profile / "utilisation.csv"
    lines = path.read_text().splitlines()
    lines[3] = "1.0,busy,41.0,900.0,30.0,20.0,12.5"  # the third sample: line 4 of the file
    path.write_text("\n".join(lines) + "\n")
    assert _refusal(profile) == (f"{path} line 4: not a utilisation sample (could not convert string to float: "
                                 "'busy'); the file needs the columns elapsed_s, cpu_percent, memory_percent, "
                                 "process_rss_mb")
    path.write_text("elapsed_s,cpu_percent\n0.0,10.0\n")
    assert _refusal(profile) == (f"{path} line 2: not a utilisation sample ('memory_percent'); the file needs the "
                                 "columns elapsed_s, cpu_percent, memory_percent, process_rss_mb")


def test_a_step_table_without_its_columns(tmp_path):
    profile = write_profile_files(tmp_path / "profile")
    path = profile / "step_times.csv"
    path.write_text("step,wait,step_s\n0,0.1,0.2\n")
    assert _refusal(profile) == (f"{path}: not a step-times table ('data_wait_s'); it needs the columns data_wait_s, "
                                 "step_s")


@pytest.mark.parametrize("facts, reason", [
    ({"format": 1, "batch_size": 16, "num_workers": 2, "profiler": "pytorch"}, "no device"),
    ({"format": 1, "batch_size": 16}, "no num_workers, profiler, device"),
    ({"format": 1, "batch_size": "sixteen", "num_workers": 2, "profiler": "pytorch", "device": "cpu"},
     "invalid literal for int() with base 10: 'sixteen'"),
    ([1, 2], "a JSON list, not an object"),
])
def test_run_facts_that_are_not_a_profiled_runs(tmp_path, facts, reason):
    profile = write_profile_files(tmp_path / "profile")
    (profile / "profile_run.json").write_text(json.dumps(facts))
    assert _refusal(profile) == (f"{profile / 'profile_run.json'}: not the run facts of a profiled run ({reason}); it "
                                 "needs batch_size, num_workers, profiler, device")


def test_step_times_are_written_to_the_microsecond(tmp_path):
    from dogbreed.diagnostics.profile_data import write_step_times_csv

    path = write_step_times_csv([1 / 3, 0.0], [2 / 3, 0.1], tmp_path / "deep" / "step_times.csv")
    assert path.read_bytes() == b"step,data_wait_s,step_s\r\n0,0.333333,0.666667\r\n1,0.0,0.1\r\n"  # csv: CRLF
