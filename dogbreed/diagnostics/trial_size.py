"""How many bytes an smdebug trial will take, estimated before training, so a toy run with small save
intervals does not fill a disk without a word.

What smdebug writes per saved step (measured on ResNet50 trials): every registered parameter (weights and
biases) in both modes, plus the gradient of every trainable parameter in TRAIN mode; losses are negligible.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from torch import nn

from dogbreed.data.progress import format_bytes

WARN_BYTES = 1 << 30  # a trial estimated above 1 GiB gets a warning


@dataclass(frozen=True)
class TrialSizeEstimate:
    train_saves: int
    eval_saves: int
    bytes_per_train_save: int
    bytes_per_eval_save: int

    @property
    def total_bytes(self) -> int:
        return self.train_saves * self.bytes_per_train_save + self.eval_saves * self.bytes_per_eval_save


def saved_steps(steps: int, interval: int) -> int:
    """Steps 0, interval, 2*interval, ... below ``steps``."""
    return math.ceil(steps / interval) if steps > 0 else 0


def estimate_trial_size(module: nn.Module, *, train_steps: int, eval_steps: int, train_interval: int,
                        eval_interval: int) -> TrialSizeEstimate:
    """The bytes smdebug writes for ``module`` (the registered network) over a run of that many steps."""
    parameters = sum(p.numel() * p.element_size() for p in module.parameters())
    gradients = sum(p.numel() * p.element_size() for p in module.parameters() if p.requires_grad)
    return TrialSizeEstimate(
        train_saves=saved_steps(train_steps, train_interval),
        eval_saves=saved_steps(eval_steps, eval_interval),
        bytes_per_train_save=parameters + gradients,
        bytes_per_eval_save=parameters,
    )


def too_large(estimate: TrialSizeEstimate) -> bool:
    return estimate.total_bytes > WARN_BYTES


def size_message(estimate: TrialSizeEstimate, debug_dir: object, *, train_interval: int, eval_interval: int,
                 train_steps: int, eval_steps: int) -> str:
    """One line: the estimate, how it is made up, and (when large) which intervals to raise."""
    text = (f"smdebug will write about {format_bytes(estimate.total_bytes)} to {debug_dir}: "
            f"{estimate.train_saves} TRAIN save(s) of {format_bytes(estimate.bytes_per_train_save)} "
            f"(every {train_interval} of {train_steps} steps) and {estimate.eval_saves} EVAL save(s) of "
            f"{format_bytes(estimate.bytes_per_eval_save)} (every {eval_interval} of about {eval_steps} steps)")
    if too_large(estimate):
        text += ("; raise --debug-train-interval / --debug-eval-interval (defaults 100 and 10) to write less")
    return text
