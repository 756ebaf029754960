"""What ``notebooks/train_and_deploy.ipynb`` may launch, decided once: safe to "Run all" on any account.

Against a local stand-in for AWS (``AWS_ENDPOINT_URL`` on this machine: moto in CI) every section sends its
requests, so the real SDK builds and the tests check them; nothing there can run a job, so nothing waits for one.
Against a real account a section runs only when its switch is on, and its jobs are waited for. With every switch
off, the notebook sends no request at all: it trains, profiles, debugs and predicts locally.
"""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass
from typing import Mapping
from urllib.parse import urlparse

LOCAL_STACK = "local-stack"
AWS = "aws"


@dataclass(frozen=True)
class Section:
    """A notebook switch: what it launches and what that costs (us-east-1 on-demand list prices, late 2026:
    check the SageMaker pricing page for your region)."""

    switch: str
    launches: str
    cost: str


SECTIONS = (
    Section("RUN_TRAINING", "1 training job on 1 x ml.g5.xlarge (A10G)",
            "~$1.41/h; head-only dogImages, 5 epochs: ~10 min"),
    Section("RUN_TUNING", "a tuning job: MAX_JOBS training jobs, MAX_PARALLEL_JOBS at a time, ml.g5.xlarge each",
            "~$1.41/h per job; 4 jobs ~40 min of instance time"),
    Section("RUN_DISTRIBUTED", "1 training job on 2 x ml.g5.12xlarge (4 A10G each), torchrun + DDP",
            "~$7.09/h per instance; many accounts have a quota of 0: ask for 'ml.g5.12xlarge for training job usage'"),
    Section("RUN_SPOT", "1 training job on spot ml.g5.xlarge, checkpoints to S3",
            "up to ~70% below on-demand; needs a spot training quota; may be interrupted and resumed"),
    Section("RUN_PROFILED", "1 profiled training job on ml.g5.xlarge, its profile synced to S3 (TensorBoard output)",
            "~$1.41/h; 5 epochs ~10 min"),
    Section("DEPLOY", "1 real-time endpoint on 1 x ml.m5.large, deleted at the end of its cell",
            "~$0.115/h while it exists"),
    Section("RUN_BATCH_TRANSFORM", "1 Batch Transform job over the test images on 1 x ml.m5.large",
            "~$0.115/h for the job's minutes; no endpoint left behind"),
    Section("REGISTER", "1 model package in the Model Registry group 'dogbreed' (PendingManualApproval)",
            "free (the archive's S3 storage only)"),
)
SWITCHES = tuple(section.switch for section in SECTIONS)


def aws_target(environ: Mapping[str, str] | None = None) -> str:
    """``local-stack`` when ``AWS_ENDPOINT_URL`` points at this machine (a loopback address), else ``aws``."""
    environ = os.environ if environ is None else environ
    host = urlparse(environ.get("AWS_ENDPOINT_URL", "")).hostname
    if not host:  # unset, empty, or a URL without a host
        return AWS
    if host == "localhost":
        return LOCAL_STACK
    try:
        return LOCAL_STACK if ipaddress.ip_address(host).is_loopback else AWS
    except ValueError:  # a name other than localhost: never assumed to be this machine
        return AWS


def plan(switches: Mapping[str, bool], target: str) -> dict[str, bool]:
    """Which sections run: all of them against the local stack, the switched-on ones against AWS."""
    unknown = set(switches) - set(SWITCHES)
    if unknown:
        raise ValueError(f"unknown notebook switch(es) {sorted(unknown)}; known: {', '.join(SWITCHES)}")
    return {name: target == LOCAL_STACK or bool(switches.get(name, False)) for name in SWITCHES}


def format_plan(sections: Mapping[str, bool], target: str) -> str:
    """A table of the sections: on/off, what each launches, what it costs."""
    width = max(len(name) for name in SWITCHES)
    how = ("requests are sent and checked; no job runs, nothing waits" if target == LOCAL_STACK
           else "only switched-on sections run; jobs are waited for")
    lines = [f"target: {target} ({how})"]
    for section in SECTIONS:
        state = "on " if sections[section.switch] else "off"
        lines.append(f"{section.switch:<{width}} {state}  {section.launches}; {section.cost}")
    if target == AWS and not any(sections.values()):
        lines.append("nothing will be launched and no request sent: the local sections (debug rules, predictions) "
                     "still run. Set a switch to True in the parameters cell to launch it.")
    return "\n".join(lines)


def uses_training_data(sections: Mapping[str, bool]) -> bool:
    """Whether any launched section reads the dataset from S3."""
    return any(sections[name] for name in ("RUN_TRAINING", "RUN_TUNING", "RUN_DISTRIBUTED", "RUN_SPOT",
                                           "RUN_PROFILED"))


def uses_aws(sections: Mapping[str, bool]) -> bool:
    return any(sections.values())
