"""The mutation exercise of issue 12: apply each hand-made mutant, run the tests that cover it, put the code back.

    .venv/bin/python tools/mutation.py                 # every mutant, a markdown table on stdout
    .venv/bin/python tools/mutation.py --only 3 7      # some of them (numbers as in the table)
    .venv/bin/python tools/mutation.py --list          # the mutants, without running anything

A mutant is killed when its covering tests fail (or fail to import) and survives when they pass. Each mutant
replaces one exact snippet that must occur once in its file; the file is restored byte for byte afterwards,
also on Ctrl-C. Covering tests run with ``-m "not slow"`` unless a mutant names slow tests explicitly.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Mutant:
    file: str
    old: str
    new: str
    tests: tuple[str, ...]
    what: str


M = Mutant
MUTANTS: list[Mutant] = [
    # --- the 11 survivors of the first exercise (issue 12), the range checks one mutant each
    M(
        "dogbreed/config/parser.py",
        "    values.update(environment_defaults)\n    values.update(given)\n",
        "    values.update(given)\n    values.update(environment_defaults)\n",
        ("tests/config/test_config_precedence_and_ranges.py",),
        "SageMaker environment defaults applied after explicit options",
    ),
    M(
        "dogbreed/config/options.py",
        '        (opt.batch_size >= 1, "--batch-size must be at least 1"),\n',
        "",
        ("tests/config/test_config_precedence_and_ranges.py", "tests/config/test_config.py"),
        "range check --batch-size removed",
    ),
    M(
        "dogbreed/config/options.py",
        "(_finite(opt.weight_decay) and opt.weight_decay >= 0,",
        "(True,",
        ("tests/config/test_config_precedence_and_ranges.py", "tests/config/test_config.py"),
        "range check --weight-decay removed",
    ),
    M(
        "dogbreed/config/options.py",
        "(32 <= data.image_size <= MAX_IMAGE_SIZE,",
        "(data.image_size <= MAX_IMAGE_SIZE,",
        ("tests/config/test_config_precedence_and_ranges.py", "tests/config/test_config.py"),
        "range check --image-size removed",
    ),
    M(
        "dogbreed/config/options.py",
        "(_finite(opt.label_smoothing) and 0 <= opt.label_smoothing < 1,",
        "(_finite(opt.label_smoothing) and 0 <= opt.label_smoothing <= 1,",
        ("tests/config/test_config_precedence_and_ranges.py", "tests/config/test_config.py"),
        "range check --label-smoothing removed",
    ),
    M(
        "dogbreed/config/options.py",
        '        (config.outputs.top_k >= 1, "--top-k must be at least 1"),\n',
        "",
        ("tests/config/test_config_precedence_and_ranges.py", "tests/config/test_config.py"),
        "range check --top-k removed",
    ),
    M(
        "dogbreed/config/options.py",
        '        (config.cache.cached_views >= 0, "--cached-views must be >= 0 (0 disables the feature cache)"),\n',
        "",
        ("tests/config/test_config_precedence_and_ranges.py", "tests/config/test_config.py"),
        "range check --cached-views removed",
    ),
    M(
        "dogbreed/tuning/search_space.py",
        "values[p.name] = trial.suggest_float(p.name, p.low, p.high, log=p.log)",
        "values[p.name] = trial.suggest_float(p.name, p.low, p.high)",
        ("tests/tuning/test_tuning_sampling.py", "tests/tuning/test_hpo.py"),
        "local sweep samples lr/weight-decay without log scale",
    ),
    M(
        "dogbreed/diagnostics/rules.py",
        "            self.last[name] = (current_step, value)\n            fell =",
        "            fell =",
        ("tests/diagnostics/test_debug_rule_boundaries.py", "tests/diagnostics/test_debug_rules.py"),
        "LossNotDecreasing compares with the first loss, not the last check (plateau after an early drop)",
    ),
    M(
        "dogbreed/diagnostics/rules.py",
        "            if self._exceeded > self.patience:",
        "            if self._exceeded >= self.patience:",
        ("tests/diagnostics/test_debug_rule_boundaries.py", "tests/diagnostics/test_debug_rules.py"),
        "Overfit fires at patience, not patience+1",
    ),
    M(
        "dogbreed/diagnostics/rules.py",
        "value < self.best[mode] - self.delta:",
        "value < self.best[mode]:",
        ("tests/diagnostics/test_debug_rule_boundaries.py", "tests/diagnostics/test_debug_rules.py"),
        "Overtraining: any decrease is an optimum (delta ignored: a flat loss within +-delta never fires)",
    ),
    M(
        "dogbreed/training/module.py",
        'MulticlassF1Score(num_classes, average="macro")',
        'MulticlassF1Score(num_classes, average="micro")',
        ("tests/training/test_loss_and_metrics.py", "tests/training/test_training.py"),
        "f1_macro computed as micro F1",
    ),
    M(
        "dogbreed/training/module.py",
        "nn.CrossEntropyLoss(label_smoothing=label_smoothing)",
        "nn.CrossEntropyLoss()",
        ("tests/training/test_loss_and_metrics.py", "tests/training/test_model.py"),
        "label smoothing never reaches the loss",
    ),
    M(
        "dogbreed/core/fileio.py",
        '    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)\n',
        "    fd, tmp = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC), path\n",
        ("tests/training/test_training_batches.py", "tests/training/test_feature_cache.py"),
        "atomic_write writes in place (no temp file, the rename is a no-op)",
    ),
    M(
        "dogbreed/data/datamodule.py",
        "drop_last=shuffle and len(dataset) > self.batch_size,",
        "drop_last=False,",
        ("tests/training/test_training_batches.py", "tests/data/test_data.py"),
        "no drop_last: a k*batch+1 train split ends in a 1-image batch",
    ),
    M(
        "dogbreed/training/module.py",
        "        if self.backbone_frozen:\n            freeze_backbone_batchnorm(self.net)\n\n    def forward",
        "        pass\n\n    def forward",
        ("tests/training/test_training_batches.py", "tests/training/test_model.py"),
        "per-step BatchNorm re-freeze removed",
    ),
]

# Mutants of what issue 12's other tests cover (constants, serving, reports), beyond the listed survivors.
EXTRA_MUTANTS: list[Mutant] = [
    M(
        "dogbreed/core/constants.py",
        "IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)",
        "IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.406, 0.456)",
        ("tests/core/test_transforms.py", "tests/core/test_preprocessing_recipe.py"),
        "ImageNet mean: G and B swapped",
    ),
    M(
        "dogbreed/core/constants.py",
        "EVAL_RESIZE_RATIO: float = 232 / 224",
        "EVAL_RESIZE_RATIO: float = 256 / 224",
        ("tests/core/test_transforms.py", "tests/core/test_preprocessing_recipe.py"),
        "eval resize ratio 256/224 (the V1 recipe)",
    ),
    M(
        "dogbreed/core/transforms.py",
        "            T.CenterCrop(pre.image_size),\n",
        "            T.CenterCrop(pre.resize_size),\n            T.Resize((pre.image_size, pre.image_size)),\n",
        ("tests/core/test_transforms.py", "tests/core/test_preprocessing_recipe.py"),
        "eval squashes instead of centre-cropping",
    ),
    M(
        "dogbreed/data/splits.py",
        r'_CLASS_PREFIX = re.compile(r"^\d+[._\-\s]+")',
        r'_CLASS_PREFIX = re.compile(r"^\d+[.]")',
        ("tests/data/test_data.py", "tests/core/test_preprocessing_recipe.py"),
        "class prefix: only '<digits>.' is stripped",
    ),
    M(
        "dogbreed/serving/requests.py",
        "    if len(instances) > limits.max_batch:",
        "    if len(instances) >= limits.max_batch:",
        ("tests/serving/test_request_handling.py",),
        "a JSON batch of exactly the limit is refused",
    ),
    M(
        "dogbreed/serving/requests.py",
        "    if batched and shape[0] > limits.max_batch:",
        "    if batched and shape[0] > limits.max_batch + 1:",
        ("tests/serving/test_request_handling.py",),
        "an npy batch of limit+1 is accepted",
    ),
    M(
        "dogbreed/serving/requests.py",
        "        if media and quality > 0:",
        "        if media:",
        ("tests/serving/test_request_handling.py", "tests/serving/test_inference_handlers.py"),
        "Accept q=0 is treated as acceptable",
    ),
    M(
        "dogbreed/serving/requests.py",
        '    return (header or "").split(";", 1)[0].strip().lower()',
        '    return (header or "").split(";", 1)[0].strip()',
        ("tests/serving/test_request_handling.py", "tests/serving/test_inference_handlers.py"),
        "content type compared case-sensitively",
    ),
    M(
        "dogbreed/core/images.py",
        "        _load(image, strict)\n",
        "        _load(image, False)\n",
        ("tests/serving/test_request_handling.py", "tests/serving/test_serving_hardening.py"),
        "truncated images accepted (strict decoding off: missing data padded)",
    ),
    M(
        "dogbreed/serving/handlers.py",
        "    top_k = request.top_k or ServingLimits.from_env().default_top_k",
        "    top_k = ServingLimits.from_env().default_top_k",
        ("tests/serving/test_request_handling.py", "tests/serving/test_inference_handlers.py"),
        "the request's top_k is ignored",
    ),
    M(
        "dogbreed/serving/requests.py",
        "    if width * height > limits.max_pixels:",
        "    if width * height >= limits.max_pixels:",
        ("tests/serving/test_request_handling.py", "tests/serving/test_inference_handlers.py"),
        "an image of exactly max_pixels is refused",
    ),
    M(
        "dogbreed/training/reports.py",
        'writer.writerow([i, class_names[i], correct, total, f"{acc:.4f}"])',
        'writer.writerow([i, class_names[i], correct, total, f"{acc:.2f}"])',
        ("tests/training/test_report_contents.py",),
        "per-class accuracy rounded to 2 decimals",
    ),
    M(
        "dogbreed/training/plots.py",
        '    image = ax.imshow(normalised.numpy(), cmap="Blues", vmin=0, vmax=1)',
        '    image = ax.imshow(normalised.numpy() * 0, cmap="Blues", vmin=0, vmax=1)',
        ("tests/training/test_report_contents.py",),
        "confusion matrix plot drawn empty",
    ),
    M(
        "dogbreed/diagnostics/profile_report.py",
        "    if wait >= DATA_WAIT_BOTTLENECK:",
        "    if wait >= 0.0:",
        ("tests/diagnostics/test_profiling.py",),
        "every run reported as data-loading bound",
    ),
    # --- this round's changed modules (issues 10, 11, 13, 14, 15)
    M(
        "dogbreed/core/calibration.py",
        "    return torch.softmax(logits / temperature, dim=-1)",
        "    return torch.softmax(logits * temperature, dim=-1)",
        ("tests/core/test_calibration.py",),
        "temperature multiplies the logits instead of dividing them",
    ),
    M(
        "dogbreed/core/tta.py",
        "        return torch.stack([batch, batch.flip(-1)], dim=1).flatten(0, 1)",
        "        return torch.stack([batch, batch], dim=1).flatten(0, 1)",
        ("tests/core/test_tta.py",),
        "flip TTA forgets to flip (two identical views)",
    ),
    M(
        "dogbreed/cli/predict.py",
        "EXIT_SOME_FAILED = 1",
        "EXIT_SOME_FAILED = 0",
        ("tests/cli/test_predict_cli.py",),
        "predict exits 0 although some images failed",
    ),
    M(
        "dogbreed/data/prepare.py",
        "SHORT_SIDE_RATIO = 1.15",
        "SHORT_SIDE_RATIO = 1.0",
        ("tests/data/test_prepare.py",),
        "prepared short side 1.0x the image size (below the evaluation resize room)",
    ),
    M(
        "dogbreed/serving/packaging.py",
        '    kind = "a regular file" if member.isreg() else "a directory" if member.isdir() else None',
        '    kind = "a regular file" if member.isreg() or member.issym() '
        'else "a directory" if member.isdir() else None',
        ("tests/serving/test_archive_safety.py",),
        "symlink members accepted in a model archive",
    ),
    M(
        "dogbreed/data/samplers.py",
        "        return iter(range(self.rank, self.total_size, self.num_replicas))",
        "        return iter([*range(self.rank, self.total_size, self.num_replicas), self.rank])",
        ("tests/data/test_ddp_evaluation.py",),
        "evaluation shards padded with a duplicate sample (DDP test metrics off)",
    ),
    M(
        "dogbreed/sagemaker/jobs.py",
        "    if instance_count > 1 and not distributed:",
        "    if False:",
        ("tests/sagemaker/test_sagemaker_guards.py",),
        "several instances without distributed=True accepted (each host hangs as node 0)",
    ),
    M(
        "dogbreed/training/checkpoints.py",
        "KEEP_CHECKPOINTS = 2",
        "KEEP_CHECKPOINTS = 1",
        ("tests/training/test_checkpoint_resume.py::test_finished_run_keeps_the_newest_two_checkpoints_and_a_marker",),
        "only the newest checkpoint kept (no fallback when it is corrupt)",
    ),
    M(
        "dogbreed/training/checkpoints.py",
        "        if differences:\n",
        "        if False:\n",
        ("tests/training/test_checkpoint_resume.py",),
        "a checkpoint of another run (other options or data) resumed silently",
    ),
]


def _apply(mutant: Mutant) -> bytes:
    path = REPO / mutant.file
    original = path.read_bytes()
    text = original.decode()
    count = text.count(mutant.old)
    if count != 1:
        raise SystemExit(f"{mutant.file}: the snippet occurs {count} times (expected once): {mutant.old!r}")
    path.write_text(text.replace(mutant.old, mutant.new))
    return original


def run(mutant: Mutant, timeout: int) -> tuple[str, str, float]:
    """(outcome, killing test or note, seconds). Outcome: killed / SURVIVED / timeout / no tests."""
    path = REPO / mutant.file
    tests = [t for t in mutant.tests if (REPO / t.split("::")[0]).exists()]  # an older checkout lacks some files
    if not tests:
        return "no tests", "none of its covering test files exists here", 0.0
    original = _apply(mutant)
    start = time.monotonic()
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider",
             *([] if any("::" in test for test in tests) else ["-m", "not slow"]), *tests],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired:
        return "timeout", f"covering tests ran past {timeout} s", time.monotonic() - start
    finally:
        path.write_bytes(original)
    seconds = time.monotonic() - start
    if proc.returncode == 0:
        return "SURVIVED", "", seconds
    failed = re.findall(r"^(?:FAILED|ERROR) (.+?)(?: - .*)?$", proc.stdout, flags=re.MULTILINE)
    return "killed", failed[0] if failed else f"pytest exit {proc.returncode}", seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", type=int, nargs="*", help="mutant numbers to run (default: all)")
    parser.add_argument("--extra", action="store_true", help="also the mutants beyond the issue's survivors")
    parser.add_argument("--list", action="store_true", help="print the mutants and exit")
    parser.add_argument("--timeout", type=int, default=1200, help="seconds per mutant")
    args = parser.parse_args(argv)
    mutants = MUTANTS + (EXTRA_MUTANTS if args.extra or args.list else [])
    chosen = [(i, m) for i, m in enumerate(mutants, 1) if not args.only or i in args.only]
    if subprocess.run(["git", "diff", "--quiet", "--", "dogbreed"], cwd=REPO).returncode != 0:
        raise SystemExit("dogbreed/ has uncommitted changes: commit or stash them first")
    print("| # | file | change | outcome | killing test | s |\n|---|---|---|---|---|---|", flush=True)
    killed = 0
    for number, mutant in chosen:
        if args.list:
            print(f"| {number} | {mutant.file} | {mutant.what} | | {' '.join(mutant.tests)} | |")
            continue
        outcome, note, seconds = run(mutant, args.timeout)
        killed += outcome == "killed"
        print(f"| {number} | {mutant.file} | {mutant.what} | {outcome} | {note} | {seconds:.0f} |", flush=True)
    if not args.list:
        print(f"\nscore: {killed}/{len(chosen)} killed ({100 * killed / max(len(chosen), 1):.0f}%)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
