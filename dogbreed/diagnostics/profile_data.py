"""What a profiled run leaves for its report, written and read back.

A profiled run writes three files beside the profiler's own output (:mod:`dogbreed.diagnostics.profiling`):
``profile_run.json`` (the run's facts: batch size, DataLoader workers, profiler, device), ``utilisation.csv``
(the system samples) and ``step_times.csv`` (the data wait and duration of each timed training step). The report
(:func:`dogbreed.diagnostics.profile_report.write_profile_report`) is built from these files alone, so it comes
out the same for a local run and for a SageMaker job, wherever its output is read from: a dir, the job's
``output.tar.gz`` (unpacked) or its TensorBoard output downloaded from S3. Standard library only, plus the report's
dataclasses; no smdebug anywhere.
"""

from __future__ import annotations

import csv
import json
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any, Sequence

from dogbreed.core.errors import ConfigError
from dogbreed.diagnostics.profile_report import RunFacts, UtilSample

RUN_FACTS = "profile_run.json"
UTILISATION_CSV = "utilisation.csv"
STEP_TIMES_CSV = "step_times.csv"
REPORT_INPUTS = (RUN_FACTS, UTILISATION_CSV, STEP_TIMES_CSV)
FORMAT_VERSION = 1
_FACT_FIELDS = ("batch_size", "num_workers", "profiler", "device")
PROFILE_HINT = ("run a profiled training first (python -m entry_points.profiled_train ..., or any training command "
                "with --profiler pytorch) and pass its --profile-dir (default <output-dir>/profile), the job's "
                "output.tar.gz, or its s3://.../<job-name>/tensorboard-output/ prefix")


def write_utilisation_csv(samples: Sequence[UtilSample], path: Path) -> Path:
    """``utilisation.csv``: one row per sample; GPU columns are empty without a GPU."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=[f.name for f in fields(UtilSample)])
        writer.writeheader()
        writer.writerows(asdict(s) for s in samples)
    return path


def write_step_times_csv(waits_s: Sequence[float], steps_s: Sequence[float], path: Path) -> Path:
    """``step_times.csv``: each timed step's data wait and duration (s)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["step", "data_wait_s", "step_s"])
        writer.writerows((i, round(w, 6), round(s, 6)) for i, (w, s) in enumerate(zip(waits_s, steps_s)))
    return path


def write_run_facts(facts: RunFacts, path: Path, **extra: Any) -> Path:
    """``profile_run.json``: the facts the report needs that no CSV holds (``extra``: more context, e.g. the
    sampling interval or the trace files)."""
    record = {"format": FORMAT_VERSION, **{name: getattr(facts, name) for name in _FACT_FIELDS}, **extra}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record, indent=2, default=str) + "\n")
    return path


def write_profile_data(out_dir: Path, samples: Sequence[UtilSample], facts: RunFacts, **extra: Any) -> None:
    """All three report inputs into ``out_dir``."""
    write_utilisation_csv(samples, out_dir / UTILISATION_CSV)
    write_step_times_csv(facts.waits_s, facts.steps_s, out_dir / STEP_TIMES_CSV)
    write_run_facts(facts, out_dir / RUN_FACTS, **extra)


def _optional_float(text: str | None) -> float | None:
    return None if text is None or text.strip() in ("", "None") else float(text)


def _read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def _read_samples(path: Path) -> list[UtilSample]:
    required = ("elapsed_s", "cpu_percent", "memory_percent", "process_rss_mb")
    samples = []
    for number, row in enumerate(_read_csv(path), start=2):
        try:
            samples.append(UtilSample(float(row["elapsed_s"]), float(row["cpu_percent"]),
                                      float(row["memory_percent"]), float(row["process_rss_mb"]),
                                      gpu_percent=_optional_float(row.get("gpu_percent")),
                                      gpu_memory_percent=_optional_float(row.get("gpu_memory_percent")),
                                      process_cpu_percent=_optional_float(row.get("process_cpu_percent"))))
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError(f"{path} line {number}: not a utilisation sample ({exc}); the file needs the columns "
                              f"{', '.join(required)}") from exc
    return samples


def _read_steps(path: Path) -> tuple[list[float], list[float]]:
    try:
        rows = [(float(row["data_wait_s"]), float(row["step_s"])) for row in _read_csv(path)]
    except (KeyError, TypeError, ValueError) as exc:
        raise ConfigError(f"{path}: not a step-times table ({exc}); it needs the columns data_wait_s, step_s") from exc
    return [wait for wait, _ in rows], [step for _, step in rows]


def read_profile_data(profile_dir: Path) -> tuple[list[UtilSample], RunFacts]:
    """The samples and run facts a profiled run wrote into ``profile_dir``; a :class:`ConfigError` names what is
    missing or malformed."""
    profile_dir = Path(profile_dir)
    missing = [name for name in REPORT_INPUTS if not (profile_dir / name).is_file()]
    if missing:
        raise ConfigError(f"{profile_dir} lacks {', '.join(missing)} of a profiled run's output: {PROFILE_HINT}")
    try:
        record = json.loads((profile_dir / RUN_FACTS).read_text())
        if not isinstance(record, dict):
            raise ValueError(f"a JSON {type(record).__name__}, not an object")
        absent = [name for name in _FACT_FIELDS if name not in record]
        if absent:
            raise ValueError(f"no {', '.join(absent)}")
        values = {name: record[name] for name in _FACT_FIELDS}
        facts = RunFacts(batch_size=int(values["batch_size"]), num_workers=int(values["num_workers"]),
                         profiler=str(values["profiler"]), device=str(values["device"]))
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise ConfigError(f"{profile_dir / RUN_FACTS}: not the run facts of a profiled run ({exc}); it needs "
                          f"{', '.join(_FACT_FIELDS)}") from exc
    facts.waits_s, facts.steps_s = _read_steps(profile_dir / STEP_TIMES_CSV)
    return _read_samples(profile_dir / UTILISATION_CSV), facts


def find_profile_dir(root: Path, *, source: str | None = None) -> Path:
    """The dir under ``root`` (``root`` itself included) that holds ``profile_run.json``: exactly one must.
    ``source`` names what the user passed (an archive or S3 prefix unpacked into ``root``) in errors."""
    root, name = Path(root), source or str(root)
    if not root.is_dir():
        what = "a file, not a dir or a .tar.gz archive" if root.exists() else "no such directory"
        raise ConfigError(f"{name}: {what}; {PROFILE_HINT}")
    found = sorted(path.parent for path in root.rglob(RUN_FACTS))
    if len(found) == 1:
        return found[0]
    if found:
        where = ", ".join(str(path.relative_to(root)) or "." for path in found)
        raise ConfigError(f"{name} holds {len(found)} profiled runs ({where}): pass the one to report on")
    raise no_profile_data(name, [str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()])


def no_profile_data(source: str, found: Sequence[str]) -> ConfigError:
    """The error for a source without ``profile_run.json``: what it held (the first few names) and what to run."""
    names = sorted(found)
    seen = ", ".join(names[:6]) + (f" and {len(names) - 6} more" if len(names) > 6 else "") if names else "nothing"
    return ConfigError(f"{source} holds no profile data (no {RUN_FACTS}; found {seen}): {PROFILE_HINT}")
