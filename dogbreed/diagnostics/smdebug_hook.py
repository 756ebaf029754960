"""SageMaker Debugger (smdebug) for Lightning: one callback, strictly optional, and the size of the trial it
will write.

Inside a SageMaker job whose estimator sent a Debugger config, the hook is built from that JSON
(``SMDEBUG_CONFIG_FILE_PATH`` or /opt/ml/input/config/debughookconfig.json). Locally it is built from
``--debug-dir`` with per-mode save intervals. Without either, or without smdebug installed, the
callback does nothing and says so once.

A local trial's size is estimated before training, so a toy run with small save intervals does not fill a disk
without a word. What smdebug writes per saved step (measured on ResNet50 trials): every registered parameter
(weights and biases) in both modes, plus the gradient of every trainable parameter in TRAIN mode; losses are
negligible. smdebug's own logging is turned down first (:func:`dogbreed.diagnostics.quiet_smdebug_logging`).
"""

from __future__ import annotations

import logging
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
from pytorch_lightning.callbacks import Callback
from pytorch_lightning.trainer.states import TrainerFn
from torch import nn

from dogbreed.config.sections import DiagnosticsOptions
from dogbreed.core.errors import ConfigError
from dogbreed.data.progress import format_bytes
from dogbreed.diagnostics import quiet_smdebug_logging
from dogbreed.diagnostics.smdebug_image import refuse_smdebug_where_it_cannot_run

logger = logging.getLogger(__name__)

# smdebug/core/config_constants.py: CONFIG_FILE_PATH_ENV_STR, DEFAULT_CONFIG_FILE_PATH.
CONFIG_PATH_ENV = "SMDEBUG_CONFIG_FILE_PATH"
DEFAULT_SAGEMAKER_CONFIG = Path("/opt/ml/input/config/debughookconfig.json")
LOCAL_COLLECTIONS = ("losses", "weights", "biases", "gradients")
# smdebug refuses an out_dir holding this file (core/hook_utils.py verify_and_get_out_dir).
TRIAL_END_MARKER = "training_job_end.ts"


def smdebug_available() -> bool:
    """True when ``smdebug.pytorch`` imports (it needs protobuf<=3.20.3, numpy<2.3, pandas, psutil)."""
    quiet_smdebug_logging()
    try:
        import smdebug.pytorch  # noqa: F401
    except Exception as exc:  # noqa: BLE001 - any import failure means "not usable here"
        logger.debug("smdebug is not importable: %s", exc)
        return False
    return True


def sagemaker_debug_config_path() -> Path | None:
    """The Debugger hook config SageMaker wrote for this job, if there is one."""
    env = os.environ.get(CONFIG_PATH_ENV)
    path = Path(env) if env else DEFAULT_SAGEMAKER_CONFIG
    return path if path.is_file() else None


def refuse_finished_trial(debug_dir: Path) -> None:
    """smdebug will not write into a finished trial; say so before any training starts."""
    if (debug_dir / TRIAL_END_MARKER).exists():
        raise ConfigError(f"--debug-dir {debug_dir} already holds a finished smdebug trial; "
                          "pass a new directory or delete the old one")


def _debugging_requested(debug_dir: Path | None) -> bool:
    """Whether a run should carry the callback: a local --debug-dir or a SageMaker Debugger config."""
    return debug_dir is not None or sagemaker_debug_config_path() is not None


def _stepping_module(pl_module: pl.LightningModule) -> nn.Module:
    """The nn.Module whose forward runs once per batch, as the module says (``per_batch_module()``: the whole
    network, or only its head when training on cached features); ``net`` for a module that does not say."""
    ask = getattr(pl_module, "per_batch_module", None)
    module = ask() if callable(ask) else getattr(pl_module, "net", None)
    if not isinstance(module, nn.Module):
        raise TypeError(f"SmDebugCallback needs {type(pl_module).__name__}.per_batch_module() or .net: "
                        "the nn.Module called once per batch")
    return module


class SmDebugCallback(Callback):
    """Registers ``pl_module.net`` and ``pl_module.loss_fn`` with an smdebug hook and keeps its mode in step.

    Modes: sanity check, validation and test are EVAL; training is TRAIN. Only global rank 0 writes.
    """

    def __init__(
        self,
        debug_dir: Path | None = None,
        *,
        train_interval: int = 100,
        eval_interval: int = 10,
        collections: tuple[str, ...] = LOCAL_COLLECTIONS,
    ) -> None:
        if train_interval < 1 or eval_interval < 1:
            raise ConfigError("--debug-train-interval and --debug-eval-interval must be at least 1")
        self.debug_dir = Path(debug_dir) if debug_dir is not None else None
        self.train_interval = train_interval
        self.eval_interval = eval_interval
        self.collections = collections
        self.hook: Any | None = None
        self.source: str = ""  # "sagemaker" or "local" once a hook exists
        self._decided = False
        self._registered: set[int] = set()
        self._added_hooks: list[tuple[dict, Any]] = []  # (hook dict, key) of each hook smdebug added
        self._detached: list[tuple[dict, Any, Any]] = []  # removed after a test pass, put back by the next one

    @classmethod
    def from_options(cls, options: DiagnosticsOptions) -> "SmDebugCallback":
        return cls(options.debug_dir, train_interval=options.debug_train_interval,
                   eval_interval=options.debug_eval_interval)

    # -- hook construction -------------------------------------------------------------------
    def _build_hook(self) -> Any | None:
        quiet_smdebug_logging()  # else ~160 INFO lines (one per parameter) when it registers a ResNet50
        if not smdebug_available():
            logger.info("smdebug is not installed (pip install -e '.[debug]'): tensors are not collected")
            return None
        import smdebug.pytorch as smd

        json_path = sagemaker_debug_config_path()
        if json_path is not None:
            self.source = "sagemaker"
            logger.info("smdebug: hook from the SageMaker Debugger config %s", json_path)
            return smd.Hook.create_from_json_file(str(json_path))
        if self.debug_dir is None:
            logger.info("smdebug: no Debugger config and no --debug-dir: tensors are not collected")
            return None
        refuse_finished_trial(self.debug_dir)
        from smdebug import modes
        from smdebug.core.save_config import SaveConfigMode

        self.source = "local"
        save_config = smd.SaveConfig(mode_save_configs={
            modes.TRAIN: SaveConfigMode(save_interval=self.train_interval),
            modes.EVAL: SaveConfigMode(save_interval=self.eval_interval),
        })
        logger.info("smdebug: writing %s to %s (TRAIN every %d steps, EVAL every %d)", ", ".join(self.collections),
                    self.debug_dir, self.train_interval, self.eval_interval)
        return smd.Hook(out_dir=str(self.debug_dir), save_config=save_config,
                        include_collections=list(self.collections), export_tensorboard=False)

    def _ensure_hook(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Create the hook once (rank 0 only) and register each network/loss object once."""
        if not self._decided:
            self._decided = True
            self.hook = self._build_hook() if trainer.is_global_zero else None
        if self.hook is None:
            return
        net, loss_fn = _stepping_module(pl_module), getattr(pl_module, "loss_fn", None)
        if not isinstance(loss_fn, nn.modules.loss._Loss):
            raise TypeError(f"SmDebugCallback needs {type(pl_module).__name__}.loss_fn to be a torch loss module "
                            f"(smdebug's register_loss asserts it), got {type(loss_fn).__name__}")
        if id(net) not in self._registered:
            before = _module_hooks(net, loss_fn)
            # Its forward runs once per batch, which is what advances smdebug's step.
            self.hook.register_module(net)
            self.hook.register_loss(loss_fn)
            self._registered.update({id(net), id(loss_fn)})
            self._added_hooks += [(hooks, key) for hooks, keys in before for key in set(hooks) - keys]
        else:
            self._reattach()

    def _detach(self) -> None:
        """Remove smdebug's forward hooks: after the test pass the run still uses the network (calibration, TTA
        cost), and those forwards are not training or evaluation steps to record."""
        self._detached = [(hooks, key, hooks.pop(key)) for hooks, key in self._added_hooks if key in hooks]

    def _reattach(self) -> None:
        """A later fit or test of the same module (smdebug refuses to register a module twice)."""
        for hooks, key, function in self._detached:
            hooks[key] = function
        self._detached = []

    def _set_mode(self, mode_name: str) -> None:
        if self.hook is not None:
            from smdebug import modes

            self.hook.set_mode(getattr(modes, mode_name))

    def _close(self) -> None:
        if self.hook is not None:
            self.hook.close()

    # -- Lightning hooks -----------------------------------------------------------------------
    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # After strategy.setup(): devices are set and DDP has wrapped the module.
        self._ensure_hook(trainer, pl_module)
        self._set_mode("TRAIN")

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Before the first training step (the loaders are sized now): how big the local trial will get."""
        if self.hook is None or self.source != "local":
            return
        epochs = max(0, (trainer.max_epochs or 0) - trainer.current_epoch)
        val_batches = int(sum(_batch_counts(trainer.num_val_batches)))
        train_steps = int(trainer.num_training_batches) * epochs
        # sanity check + validation every epoch + the test split (counted like the validation split)
        eval_steps = int(sum(_batch_counts(trainer.num_sanity_val_batches))) + val_batches * (epochs + 1)
        estimate = estimate_trial_size(_stepping_module(pl_module), train_steps=train_steps, eval_steps=eval_steps,
                                       train_interval=self.train_interval, eval_interval=self.eval_interval)
        message = size_message(estimate, self.debug_dir, train_interval=self.train_interval,
                               eval_interval=self.eval_interval, train_steps=train_steps, eval_steps=eval_steps)
        logger.log(logging.WARNING if _too_large(estimate) else logging.INFO, message)

    def on_sanity_check_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._set_mode("EVAL")

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._set_mode("TRAIN")

    def on_validation_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._ensure_hook(trainer, pl_module)  # also covers a bare trainer.validate()
        self._set_mode("EVAL")

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.state.fn == TrainerFn.FITTING:  # validation inside fit (sanity check included)
            self._set_mode("TRAIN")

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._close()

    def on_test_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._ensure_hook(trainer, pl_module)
        self._set_mode("EVAL")

    def on_test_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # smdebug reopens its writers on the next saved step, so closing after fit and again here is safe; the
        # hooks come off so that later forwards of the same network are not recorded as steps.
        self._close()
        self._detach()


def _module_hooks(*modules: nn.Module) -> list[tuple[dict, set]]:
    """Every forward (pre-)hook dict of ``modules`` and their submodules, with the keys they hold now."""
    dicts = [hooks for module in modules for sub in module.modules()
             for hooks in (sub._forward_hooks, sub._forward_pre_hooks)]
    return [(hooks, set(hooks)) for hooks in dicts]


def _batch_counts(value: Any) -> list[float]:
    """Lightning gives per-dataloader batch counts as a list (or a number); infinite ones count as 0."""
    counts = value if isinstance(value, (list, tuple)) else [value]
    return [float(c) if c is not None and float(c) != float("inf") else 0.0 for c in counts]


def debug_callbacks(options: DiagnosticsOptions) -> list[Callback]:
    """The smdebug callback when this run asks for it (``--debug-dir`` or a SageMaker Debugger config); refused
    where smdebug cannot run (:mod:`dogbreed.diagnostics.smdebug_image`)."""
    if not _debugging_requested(options.debug_dir):
        return []
    config = sagemaker_debug_config_path()
    refuse_smdebug_where_it_cannot_run(f"--debug-dir {options.debug_dir}" if config is None
                                       else f"the SageMaker Debugger config {config}")
    if options.debug_dir is not None and config is None:
        refuse_finished_trial(Path(options.debug_dir))  # before the trainer is built
    return [SmDebugCallback.from_options(options)]


# --- how big a local trial will get -------------------------------------------------------------------------------

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


def _too_large(estimate: TrialSizeEstimate) -> bool:
    return estimate.total_bytes > WARN_BYTES


def size_message(estimate: TrialSizeEstimate, debug_dir: object, *, train_interval: int, eval_interval: int,
                 train_steps: int, eval_steps: int) -> str:
    """One line: the estimate, how it is made up, and (when large) which intervals to raise."""
    text = (f"smdebug will write about {format_bytes(estimate.total_bytes)} to {debug_dir}: "
            f"{estimate.train_saves} TRAIN save(s) of {format_bytes(estimate.bytes_per_train_save)} "
            f"(every {train_interval} of {train_steps} steps) and {estimate.eval_saves} EVAL save(s) of "
            f"{format_bytes(estimate.bytes_per_eval_save)} (every {eval_interval} of about {eval_steps} steps)")
    if _too_large(estimate):
        text += ("; raise --debug-train-interval / --debug-eval-interval (defaults 100 and 10) to write less")
    return text
