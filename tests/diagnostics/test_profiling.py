"""Profiled runs: Lightning profiler output, utilisation CSV, data-wait timing and the report."""

from __future__ import annotations

import csv
import json
import re
import time
from dataclasses import replace
from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from dogbreed.config.parser import parse_config
from dogbreed.core.errors import ConfigError
from dogbreed.diagnostics.profile_report import RunFacts, UtilSample, analyse
from dogbreed.diagnostics.profiling import PROFILE_SUBDIR, ProfilingCallback, build_profiler, profiling_callbacks
from dogbreed.diagnostics.run_policy import profiled_config, train_with_diagnostics
from dogbreed.diagnostics.smdebug_hook import CONFIG_PATH_ENV
from dogbreed.sagemaker.environment import config_defaults
from dogbreed.training.setup import check_output_locations, output_locations
from tests.helpers.builders import fast_config
from tests.helpers.report_checks import check_plot, json_layout


@pytest.mark.slow  # a training run or subprocess: make test, not make test-quick
def test_pytorch_profiled_run_writes_trace_operator_table_utilisation_and_report(tmp_path, tiny_tree):
    config = fast_config(tmp_path, tiny_tree, batch_size=4, profiler="pytorch", monitor_interval_ms=50)
    train_with_diagnostics(config)
    out = tmp_path / "reports" / PROFILE_SUBDIR
    [trace] = out.glob("fit-*.pt.trace.json")
    assert json.loads(trace.read_text())["traceEvents"]
    assert not set("[]*?") & set(trace.name)  # no glob characters: the name works unquoted in a shell
    with (out / "fit-top_operators.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0]) == ["operator", "calls", "self_cpu_us", "cpu_total_us", "self_device_us", "device_total_us"]
    assert any(r["operator"] == "aten::convolution_backward" and int(r["calls"]) > 0 for r in rows)
    assert float(rows[0]["self_cpu_us"]) >= float(rows[-1]["self_cpu_us"]) > 0
    assert "aten::" in (out / "fit-top_operators.txt").read_text()
    with (out / "utilisation.csv").open() as handle:
        samples = list(csv.DictReader(handle))
    assert len(samples) >= 2 and all(0 <= float(s["cpu_percent"]) <= 100 for s in samples)
    assert float(samples[-1]["process_rss_mb"]) > 50
    assert all(0 <= float(s["process_cpu_percent"]) <= 100 for s in samples)
    report = (out / "profiler_report.md").read_text()
    assert "**Bottleneck.**" in report and "**Batch size.**" in report and "| profiler | pytorch |" in report
    for png in ("utilisation.png", "step_times.png"):
        assert f"({png})" in report
        check_plot(out / png, (800, 350))


@pytest.mark.slow  # a training run or subprocess: make test, not make test-quick
def test_profiled_train_entry_point_defaults_to_pytorch_profiler_and_a_local_trial(tmp_path, tiny_tree, capsys,
                                                                                    monkeypatch):
    from entry_points.profiled_train import main

    monkeypatch.setattr("dogbreed.cli.runner.configure_logging", lambda: None)  # keep pytest's log capture intact

    code = main(["--data-dir", str(tiny_tree), "--model-dir", str(tmp_path / "model"), "--output-dir",
                 str(tmp_path / "reports"), "--epochs", "1", "--batch-size", "4", "--image-size", "32",
                 "--weights", "none", "--finetune", "full", "--num-workers", "0", "--accelerator", "cpu"])
    assert code == 0
    assert len(list((tmp_path / "reports" / PROFILE_SUBDIR).glob("fit-profile*.pt.trace.json"))) == 1
    report = (tmp_path / "reports" / PROFILE_SUBDIR / "profiler_report.md").read_text()
    assert report.startswith("# Profiler report\n") and "| profiler | pytorch |" in report
    assert "| batch size / DataLoader workers | 4 / 0 |" in report
    assert (tmp_path / "reports" / "debug-trial" / "training_job_end.ts").is_file()
    assert f"debug trial: {tmp_path / 'reports' / 'debug-trial'}" in capsys.readouterr().out


def test_profiling_defaults_leave_the_trial_to_sagemaker_when_debugger_is_configured(tmp_path, monkeypatch):
    config = fast_config(tmp_path, tmp_path)
    assert profiled_config(config).diagnostics.debug_dir == tmp_path / "reports" / "debug-trial"
    assert profiled_config(replace(config, profiler="advanced")).diagnostics.profiler == "advanced"
    (tmp_path / "debughookconfig.json").write_text("{}")
    monkeypatch.setenv(CONFIG_PATH_ENV, str(tmp_path / "debughookconfig.json"))
    defaults = profiled_config(config)
    assert defaults.diagnostics.debug_dir is None and defaults.diagnostics.profiler == "pytorch"


def test_unknown_profiler_is_rejected_with_the_valid_names(tmp_path):
    with pytest.raises(ConfigError) as refused:
        build_profiler(replace(fast_config(tmp_path, tmp_path), profiler="bogus").diagnostics, tmp_path / "reports")
    assert str(refused.value) == "--profiler 'bogus': use simple, advanced or pytorch (or leave it empty)"


class Vectors(Dataset):
    """64 random vectors; ``delay_s`` of sleep per item stands in for slow image decoding."""

    def __init__(self, delay_s: float) -> None:
        self.delay_s = delay_s
        self.x, self.y = torch.randn(64, 8), torch.randint(0, 2, (64,))

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        if self.delay_s:
            time.sleep(self.delay_s)
        return self.x[index], self.y[index]


class TinyModule(pl.LightningModule):
    """``step_s`` of sleep per training step stands in for forward/backward compute."""

    def __init__(self, step_s: float = 0.0) -> None:
        super().__init__()
        self.net = nn.Linear(8, 2)
        self.step_s = step_s

    def training_step(self, batch, batch_idx):
        if self.step_s:
            time.sleep(self.step_s)
        x, y = batch
        return nn.functional.cross_entropy(self.net(x), y)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


def _profile_tiny_run(tmp_path: Path, delay_s: float, step_s: float = 0.0) -> tuple[ProfilingCallback, str]:
    callback = ProfilingCallback(tmp_path / f"profile-{delay_s}", interval_ms=50, batch_size=4, num_workers=0)
    trainer = pl.Trainer(max_epochs=1, limit_train_batches=8, accelerator="cpu", logger=False,
                         enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                         callbacks=[callback])
    trainer.fit(TinyModule(step_s), DataLoader(Vectors(delay_s), batch_size=4))
    return callback, callback.report_path.read_text()


def _bottleneck(report: str) -> str:
    [line] = [line for line in report.splitlines() if line.startswith("**Bottleneck.** ")]
    return line[len("**Bottleneck.** "):]


def test_data_wait_fraction_is_higher_with_a_slow_dataset(tmp_path):
    # Slow: 200 ms of "decoding" per batch and no compute. Fast: no decoding and 100 ms of "compute" per step,
    # so its wait fraction is tiny (an in-memory batch takes well under a millisecond) however loaded the machine.
    slow, slow_report = _profile_tiny_run(tmp_path, delay_s=0.05)
    fast, fast_report = _profile_tiny_run(tmp_path, delay_s=0.0, step_s=0.1)
    assert len(slow.steps_s) == len(fast.steps_s) == 7  # 8 batches, the first is not timed
    assert slow.wait_fraction > 0.5 and fast.wait_fraction < 0.3
    assert re.fullmatch(r"Data loading: \d+% of each step waits for data \(images are decoded in the training "
                        r"process, --num-workers 0\)\. Raise --num-workers \(now 0\) or make decoding cheaper\.",
                        _bottleneck(slow_report)), slow_report
    assert re.fullmatch(r"Compute: \d+% of each step is forward/backward/optimizer; data waits only [\d.]+%\.",
                        _bottleneck(fast_report)), fast_report
    for report, steps in ((slow_report, 7), (fast_report, 7)):
        assert f"| timed training steps | {steps} |" in report
        assert "| device | cpu |" in report and "| batch size / DataLoader workers | 4 / 0 |" in report
    with (tmp_path / "profile-0.05" / "step_times.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 7 and all(float(r["data_wait_s"]) >= 0.2 for r in rows)
    assert [int(r["step"]) for r in rows] == list(range(7))
    assert all(float(r["step_s"]) >= float(r["data_wait_s"]) for r in rows)
    check_plot(tmp_path / "profile-0.05" / "step_times.png", (800, 350))
    check_plot(tmp_path / "profile-0.05" / "utilisation.png", (800, 350))


def _samples(cpu: float, gpu: float | None = None, gpu_mem: float | None = None,
             process: float | None = None) -> list[UtilSample]:
    return [UtilSample(i * 0.5, cpu, 40.0, 500.0, gpu, gpu_mem, process) for i in range(10)]


def test_report_recommends_a_larger_batch_when_the_gpu_is_under_used():
    facts = RunFacts(batch_size=32, num_workers=4, profiler="simple", device="cuda:0",
                     waits_s=[0.01] * 5, steps_s=[0.1] * 5)
    findings = analyse(_samples(cpu=50, gpu=30, gpu_mem=20), facts)
    assert findings.batch_advice.startswith("The GPU is under-used (p95 utilisation 30%, memory 20%)")
    assert "try --batch-size 64 (now 32)" in findings.batch_advice
    assert findings.bottleneck.startswith("The GPU is under-used (p95 30%) although only 10% of a step waits")
    busy = analyse(_samples(cpu=50, gpu=95, gpu_mem=80), facts)
    assert busy.batch_advice == "The GPU is busy (p95 utilisation 95%, memory 80%): keep --batch-size 32."
    assert busy.bottleneck.startswith("Compute: 90% of each step")


def test_report_names_data_loading_as_the_bottleneck():
    facts = RunFacts(batch_size=16, num_workers=2, profiler="simple", device="cpu",
                     waits_s=[0.062] * 4, steps_s=[0.1] * 4)
    findings = analyse(_samples(cpu=95), facts)
    assert findings.wait_fraction == pytest.approx(0.62)
    assert findings.bottleneck == ("Data loading: 62% of each step waits for data (2 DataLoader workers cannot "
                                   "keep up). Raise --num-workers (now 2) or make decoding cheaper.")
    assert findings.batch_advice == "The CPU is busy (p95 95%): keep --batch-size 16."
    shared = analyse(_samples(cpu=95, process=20), facts)
    assert shared.batch_advice == ("The CPU is busy (p95 95%): keep --batch-size 16. Other processes take most of "
                                   "it (this run: p95 20%), so step times here are inflated.")


@pytest.mark.parametrize("kind, marker", [("simple", "FIT Profiler Report"),
                                          ("advanced", "Profile stats for: run_training_epoch")])
def test_lightning_profilers_write_their_report_under_profile(tmp_path, kind, marker):
    config = fast_config(tmp_path, tmp_path, profiler=kind)
    trainer = pl.Trainer(max_epochs=1, limit_train_batches=4, accelerator="cpu", logger=False,
                         enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                         profiler=build_profiler(config.diagnostics, config.outputs.output_dir))
    trainer.fit(TinyModule(), DataLoader(Vectors(0.0), batch_size=4))
    assert marker in (tmp_path / "reports" / PROFILE_SUBDIR / "fit-profile.txt").read_text()


def test_profile_dir_option_moves_the_profile_and_copies_the_report_to_the_output_dir(tmp_path):
    config = fast_config(tmp_path, tmp_path, profiler="pytorch", monitor_interval_ms=20,
                         profile_dir=tmp_path / "tensorboard")
    callbacks = profiling_callbacks(config.diagnostics, output_dir=config.outputs.output_dir, batch_size=4,
                                    num_workers=0)
    trainer = pl.Trainer(max_epochs=1, limit_train_batches=6, accelerator="cpu", logger=False,
                         enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                         callbacks=callbacks, profiler=build_profiler(config.diagnostics, config.outputs.output_dir))
    trainer.fit(TinyModule(), DataLoader(Vectors(0.0), batch_size=4))
    profile, copy = tmp_path / "tensorboard", tmp_path / "reports" / PROFILE_SUBDIR
    assert len(list(profile.glob("fit-profile*.pt.trace.json"))) == 1  # torch.profiler's tensorboard_trace_handler
    assert json.loads((profile / "profile_run.json").read_text()) == {
        "format": 1, "batch_size": 4, "num_workers": 0, "profiler": "pytorch", "device": "cpu",
        "monitor_interval_ms": 20}
    assert json_layout((profile / "profile_run.json").read_text()) == (2, True)
    assert sorted(p.name for p in copy.iterdir()) == ["profile_run.json", "profiler_report.md", "step_times.csv",
                                                      "step_times.png", "utilisation.csv", "utilisation.png"]
    assert (copy / "step_times.csv").read_text() == (profile / "step_times.csv").read_text()
    assert "| timed training steps | 5 |" in (copy / "profiler_report.md").read_text()


def test_profile_dir_inside_the_model_dir_is_refused(tmp_path):
    model = tmp_path / "model"
    with pytest.raises(ConfigError) as refused:
        parse_config(["--model-dir", str(tmp_path / "model"), "--profile-dir", str(tmp_path / "model" / "profile")])
    assert str(refused.value) == (f"--profile-dir {model / 'profile'} is --model-dir {model} or inside it: the "
                                  "model artifact would carry the profile; pass a dir outside it (default: "
                                  "<output-dir>/profile)")
    with pytest.raises(ConfigError) as refused:
        parse_config(["--model-dir", str(tmp_path / "model"), "--profile-dir", str(tmp_path / "model")])
    assert str(refused.value) == (f"--profile-dir {model} is --model-dir {model} or inside it: the model artifact "
                                  "would carry the profile; pass a dir outside it (default: <output-dir>/profile)")
    parse_config(["--model-dir", str(tmp_path / "model"), "--profile-dir", str(tmp_path / "model-profile")])
    (tmp_path / "a-file").write_text("")
    with pytest.raises(ConfigError) as refused:
        check_output_locations(output_locations(fast_config(tmp_path, tmp_path).outputs, checkpoint_dir=None,
                                                debug_dir=None, cache_dir=None, profile_dir=tmp_path / "a-file"))
    assert str(refused.value) == (f"--profile-dir {tmp_path / 'a-file'} is a file, not a directory: pass a "
                                  "directory path")


@pytest.mark.parametrize("tensorboard_config, expected", [(None, "opt/ml/output/tensorboard"),
                                                          ({"LocalPath": "/tb/here"}, "/tb/here")])
def test_in_a_sagemaker_job_the_profile_goes_to_the_tensorboard_path(tmp_path, tensorboard_config, expected):
    environ = {"SM_MODEL_DIR": str(tmp_path / "opt/ml/model"),
               "SM_OUTPUT_DATA_DIR": str(tmp_path / "opt/ml/output/data")}
    if tensorboard_config is not None:
        (tmp_path / "opt/ml/input/config").mkdir(parents=True)
        (tmp_path / "opt/ml/input/config/tensorboardoutputconfig.json").write_text(json.dumps(tensorboard_config))
    config = parse_config([], environment_defaults=config_defaults(environ))
    assert config.diagnostics.profile_dir == tmp_path / expected
    assert parse_config(["--profile-dir", "/mine"], environment_defaults=config_defaults(environ)).diagnostics \
        .profile_dir == Path("/mine")
    assert parse_config([]).diagnostics.profile_dir is None  # locally: <output-dir>/profile
    assert fast_config(tmp_path, tmp_path).diagnostics.profile_dir_for(Path("out")) == Path("out/profile")


def test_profiler_file_names_have_no_glob_brackets(tmp_path):
    from dogbreed.diagnostics.profiling import OperatorTableProfiler

    profiler = OperatorTableProfiler(dirpath=tmp_path, filename="fit")
    name = profiler._prepare_filename(action_name="[Strategy]SingleDeviceStrategy.training_step", extension="")
    assert name == "fit-Strategy-SingleDeviceStrategy.training_step"
