"""The profile report rebuilt from a profiled run's output (a dir, a job's output.tar.gz), with smdebug blocked:
``python -m entry_points.profile_report SOURCE --out DIR``. The S3 source: tests/sagemaker/test_job_output.py."""

from __future__ import annotations

import csv
import re
import tarfile

import pytest

from dogbreed.diagnostics.profile_data import read_profile_data, write_profile_data
from dogbreed.diagnostics.profile_report import RunFacts, UtilSample
from tests.helpers.profile_files import BOTTLENECK, check_report, write_job_output_archive, write_profile_files
from tests.helpers.report_checks import check_plot
from tests.helpers.smdebug_policy import block_smdebug, smdebug_modules_loaded

# how every "no profile here" refusal ends
RUN_A_PROFILED_TRAINING = (
    "run a profiled training first (python -m entry_points.profiled_train ..., or any training command with "
    "--profiler pytorch) and pass its --profile-dir (default <output-dir>/profile), the job's output.tar.gz, or its "
    "s3://.../<job-name>/tensorboard-output/ prefix")


@pytest.fixture(autouse=True)
def no_smdebug(monkeypatch):
    block_smdebug(monkeypatch)
    monkeypatch.setattr("dogbreed.cli.runner.configure_logging", lambda: None)  # keep pytest's log capture intact
    yield
    assert smdebug_modules_loaded() == []


def _report(source, out, capsys) -> tuple[int, str, str]:
    from entry_points.profile_report import main

    code = main([str(source), "--out", str(out)])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_report_from_a_local_profile_dir_says_what_the_csvs_hold(tmp_path, capsys):
    profile = write_profile_files(tmp_path / "reports" / "profile")
    code, out, err = _report(profile, tmp_path / "report", capsys)
    assert code == 0, err
    assert out.splitlines() == [f"Bottleneck: {BOTTLENECK}", f"report: {tmp_path / 'report' / 'profiler_report.md'}"]
    report = (tmp_path / "report" / "profiler_report.md").read_text()
    check_report(report)
    assert f"in {profile}." in report and "opens in TensorBoard" in report
    check_plot(tmp_path / "report" / "utilisation.png", (800, 350))
    check_plot(tmp_path / "report" / "step_times.png", (800, 350))


def test_report_from_an_output_dir_finds_its_profile_subdir(tmp_path, capsys):
    write_profile_files(tmp_path / "reports" / "profile")
    code, _, err = _report(tmp_path / "reports", tmp_path / "report", capsys)
    assert code == 0, err
    check_report((tmp_path / "report" / "profiler_report.md").read_text())


def test_report_from_a_job_output_archive(tmp_path, capsys):
    archive = write_job_output_archive(tmp_path / "output.tar.gz", tmp_path / "job")
    code, out, err = _report(archive, tmp_path / "report", capsys)
    assert code == 0, err
    assert out.splitlines()[0] == f"Bottleneck: {BOTTLENECK}"
    report = (tmp_path / "report" / "profiler_report.md").read_text()
    check_report(report)
    assert f"in {archive} (profile)." in report


def test_a_source_without_profile_data_says_what_it_found_and_what_to_run(tmp_path, capsys):
    (tmp_path / "reports" / "logs").mkdir(parents=True)
    (tmp_path / "reports" / "metrics.json").write_text("{}")
    (tmp_path / "reports" / "logs" / "metrics.csv").write_text("epoch\n")
    code, _, err = _report(tmp_path / "reports", tmp_path / "report", capsys)
    assert code == 2
    assert err == (f"error: {tmp_path / 'reports'} holds no profile data (no profile_run.json; found "
                   f"logs/metrics.csv, metrics.json): {RUN_A_PROFILED_TRAINING}\n")
    assert len(err.splitlines()) == 1 and not (tmp_path / "report").exists()


def test_a_profile_missing_a_csv_names_it(tmp_path, capsys):
    profile = write_profile_files(tmp_path / "profile")
    (profile / "step_times.csv").unlink()
    code, _, err = _report(profile, tmp_path / "report", capsys)
    assert code == 2
    assert err == f"error: {profile} lacks step_times.csv of a profiled run's output: {RUN_A_PROFILED_TRAINING}\n"


def test_two_profiled_runs_in_one_source_are_named(tmp_path, capsys):
    write_profile_files(tmp_path / "runs" / "a" / "profile")
    write_profile_files(tmp_path / "runs" / "b" / "profile")
    code, _, err = _report(tmp_path / "runs", tmp_path / "report", capsys)
    assert code == 2
    assert err == (f"error: {tmp_path / 'runs'} holds 2 profiled runs (a/profile, b/profile): pass the one to "
                   "report on\n")


def test_a_bad_out_or_a_plain_file_as_source_is_one_line(tmp_path, capsys):
    profile = write_profile_files(tmp_path / "profile")
    (tmp_path / "taken").write_text("")
    code, _, err = _report(profile, tmp_path / "taken", capsys)
    assert code == 2 and err == f"error: --out {tmp_path / 'taken'} is a file, not a directory: pass a directory path\n"
    code, _, err = _report(profile / "step_times.csv", tmp_path / "report", capsys)
    assert code == 2
    assert err == (f"error: {profile / 'step_times.csv'}: a file, not a dir or a .tar.gz archive; "
                   f"{RUN_A_PROFILED_TRAINING}\n")


def test_a_file_that_is_not_an_archive_is_refused(tmp_path, capsys):
    (tmp_path / "output.tar.gz").write_bytes(b"not a tar")
    code, _, err = _report(tmp_path / "output.tar.gz", tmp_path / "report", capsys)
    # in parentheses tarfile's reason, one line per method it tried (which methods depends on the Python)
    pattern = (re.escape(f"error: {tmp_path / 'output.tar.gz'}: not a readable tar archive (file could not be opened "
                         "successfully: ") + r"([^\n]+)" + re.escape("); pass the job's output.tar.gz\n"))
    assert code == 2 and re.fullmatch(pattern, err), err


def test_an_archive_member_outside_the_destination_is_refused(tmp_path, capsys):
    evil = tmp_path / "evil.txt"
    evil.write_text("x")
    with tarfile.open(tmp_path / "output.tar.gz", "w:gz") as tar:
        tar.add(evil, arcname="../escaped.txt")
    code, _, err = _report(tmp_path / "output.tar.gz", tmp_path / "report", capsys)
    # tarfile's filter names the member and where it would land: under a temp dir the report picks
    pattern = (re.escape(f"error: {tmp_path / 'output.tar.gz'}: not a readable tar archive ('../escaped.txt' would be "
                         "extracted to '") + r"(\S+/dogbreed-profile-[^/']+)"
               + re.escape("/escaped.txt', which is outside the destination); pass the job's output.tar.gz\n"))
    assert code == 2 and re.fullmatch(pattern, err), err
    assert not (tmp_path.parent / "escaped.txt").exists()


def test_profile_data_round_trips_through_its_files(tmp_path):
    samples = [UtilSample(0.5, 80.0, 41.0, 900.0, None, None, 20.0), UtilSample(1.0, 90.0, 42.0, 901.5)]
    facts = RunFacts(batch_size=8, num_workers=0, profiler="pytorch", device="cpu", waits_s=[0.25, 0.125],
                     steps_s=[0.5, 0.375])
    write_profile_data(tmp_path, samples, facts, monitor_interval_ms=50)
    read_samples, read_facts = read_profile_data(tmp_path)
    assert read_samples == samples and read_facts == facts
    with (tmp_path / "utilisation.csv").open() as handle:
        assert next(csv.DictReader(handle))["gpu_percent"] == ""


# --- acceptance: a real profiled run, then its report from the output, smdebug blocked throughout -----------------

def _profiled_argv(tiny_tree, model_dir, output_dir) -> list[str]:
    return ["--data-dir", str(tiny_tree), "--model-dir", str(model_dir), "--output-dir", str(output_dir),
            "--epochs", "1", "--batch-size", "4", "--image-size", "32", "--weights", "none", "--finetune", "full",
            "--num-workers", "0", "--accelerator", "cpu", "--monitor-interval-ms", "50"]


def _check_against_csvs(report: str, profile) -> None:
    """The report's numbers are those of the CSVs the run wrote (recomputed here), its bottleneck one of the two."""
    with (profile / "step_times.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    waits, steps = [float(r["data_wait_s"]) for r in rows], [float(r["step_s"]) for r in rows]
    assert len(rows) >= 2
    assert f"| timed training steps | {len(rows)} |" in report
    assert f"| mean step time | {1000 * sum(steps) / len(steps):.1f} ms |" in report
    assert f"| data-wait fraction of step time | {100 * sum(waits) / sum(steps):.1f}% |" in report
    assert "| profiler | pytorch |" in report and "| batch size / DataLoader workers | 4 / 0 |" in report
    [bottleneck] = [line for line in report.splitlines() if line.startswith("**Bottleneck.** ")]
    assert re.fullmatch(r"\*\*Bottleneck\.\*\* (Compute: \d+% of each step is forward/backward/optimizer; data waits "
                        r"only [\d.]+%\.|Data loading: [\d.]+% of each step waits for data \(images are decoded in "
                        r"the training process, --num-workers 0\)\. Raise --num-workers \(now 0\) or make decoding "
                        r"cheaper\.)", bottleneck), bottleneck


@pytest.mark.slow  # a training run: make test, not make test-quick
def test_a_local_profiled_run_without_smdebug_yields_the_bottleneck_report(tmp_path, tiny_tree, capsys):
    from entry_points.profiled_train import main

    assert main(_profiled_argv(tiny_tree, tmp_path / "model", tmp_path / "reports")) == 0
    summary = capsys.readouterr().out
    profile = tmp_path / "reports" / "profile"
    assert f"profile: {profile}/  debug trial: none" in summary
    assert not (tmp_path / "reports" / "debug-trial").exists()
    assert len(list(profile.glob("fit-profile*.pt.trace.json"))) == 1  # tensorboard_trace_handler's output
    code, out, err = _report(tmp_path / "reports", tmp_path / "report", capsys)
    assert code == 0, err
    report = (tmp_path / "report" / "profiler_report.md").read_text()
    _check_against_csvs(report, profile)
    assert out.splitlines()[0] == f"Bottleneck: {report.split('**Bottleneck.** ')[1].splitlines()[0]}"
    in_run = (profile / "profiler_report.md").read_text()  # written by the run itself, from the same files
    assert report.split("Raw data:")[0] == in_run.split("Raw data:")[0]
    assert f"in {tmp_path / 'reports'} (profile)." in report and "in this folder." in in_run


@pytest.mark.slow  # a training run: make test, not make test-quick
def test_a_profiled_job_without_smdebug_yields_the_report_from_its_output_layout(tmp_path, tiny_tree, capsys,
                                                                                monkeypatch):
    """A job's layout (SM_* set, /opt/ml under tmp): the profile goes to the TensorBoard path, the report's inputs
    also into output/data/profile; the report comes out the same from both, and from output.tar.gz."""
    from entry_points.profiled_train import main

    opt_ml = tmp_path / "opt" / "ml"
    monkeypatch.setenv("SM_MODEL_DIR", str(opt_ml / "model"))
    monkeypatch.setenv("SM_OUTPUT_DATA_DIR", str(opt_ml / "output" / "data"))
    monkeypatch.setenv("SM_CHANNEL_TRAINING", str(tiny_tree))
    monkeypatch.setenv("SM_NUM_GPUS", "0")
    argv = _profiled_argv(tiny_tree, opt_ml / "model", opt_ml / "output" / "data")[6:]  # paths from SM_* here
    assert main(argv) == 0
    tensorboard = opt_ml / "output" / "tensorboard"
    assert f"profile: {tensorboard}/  debug trial: none" in capsys.readouterr().out
    assert len(list(tensorboard.glob("fit-profile*.pt.trace.json"))) == 1
    copied = opt_ml / "output" / "data" / "profile"
    assert sorted(p.name for p in copied.iterdir()) == ["profile_run.json", "profiler_report.md", "step_times.csv",
                                                         "step_times.png", "utilisation.csv", "utilisation.png"]
    with tarfile.open(tmp_path / "output.tar.gz", "w:gz") as tar:
        tar.add(opt_ml / "output" / "data", arcname=".")
    reports = {}
    for name, source in (("tensorboard", tensorboard), ("archive", tmp_path / "output.tar.gz")):
        code, _, err = _report(source, tmp_path / name, capsys)
        assert code == 0, err
        reports[name] = (tmp_path / name / "profiler_report.md").read_text()
        _check_against_csvs(reports[name], tensorboard)
    assert reports["tensorboard"].split("Raw data:")[0] == reports["archive"].split("Raw data:")[0]
