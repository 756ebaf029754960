"""Issue 22.3: the head phase of ``--finetune gradual`` on cached backbone features vs on images (the old behaviour,
still what ``--cached-views 0`` does).

Same data, seeded ``weights=None`` backbone (offline), ``--freeze-epochs F`` then one full epoch; the head phase is
timed from the start of the feature cache (extraction, or reading it) to the start of the first full epoch, so
both sides include their sanity check and validation. Rows: images; cached features, cold cache (extraction
included); cached features, warm cache.

    python bench/bench_gradual_head_phase.py            # 5 classes x (40 train + 10 valid) JPEGs, 64 px, F=3
    python bench/bench_gradual_head_phase.py --smoke    # 3 classes x (4 + 2), F=1
"""

from __future__ import annotations

import argparse
import contextlib
import io
import logging
import shutil
import time
from pathlib import Path
from typing import Any

from bench_head_training import seeded_backbone
from benchlib import OUT_DIR, print_machine, write_result
from make_dataset import dataset_for
from pytorch_lightning.callbacks import Callback

from dogbreed.config.options import TrainConfig
from dogbreed.training.run import train


class HeadPhaseClock(Callback):
    """When fit started and when the first full epoch started (perf_counter seconds)."""

    def __init__(self, freeze_epochs: int) -> None:
        self.freeze_epochs = freeze_epochs
        self.fit_start = self.switch = 0.0

    def on_fit_start(self, trainer, pl_module) -> None:
        self.fit_start = time.perf_counter()

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        if trainer.current_epoch == self.freeze_epochs:
            self.switch = time.perf_counter()


def run(data_dir: Path, work: Path, weights: Path, *, cached_views: int, freeze: int, image_size: int) -> dict:
    config = TrainConfig(
        data_dir=data_dir, model_dir=work / "model", output_dir=work / "reports", cache_dir=work.parent / "cache",
        epochs=freeze + 1, freeze_epochs=freeze, batch_size=32, lr=1e-3, image_size=image_size,
        weights=str(weights), finetune="gradual", cached_views=cached_views, accelerator="cpu", num_workers=0, seed=0,
    )
    clock = HeadPhaseClock(freeze)
    with contextlib.redirect_stdout(io.StringIO()):
        result = train(config, extra_callbacks=[clock], test=False)
    features_s = float(result.timing.get("feature_cache_s", 0.0))
    head_s = features_s + clock.switch - clock.fit_start
    return {"head_phase_s": head_s, "feature_cache_s": features_s,
            "val_acc_after_head": result.history[freeze - 1]["val_acc"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true", help="tiny sizes (tests)")
    parser.add_argument("--out", type=Path, default=OUT_DIR)
    args = parser.parse_args()
    logging.getLogger("pytorch_lightning").setLevel(logging.ERROR)
    freeze, image_size = (1, 32) if args.smoke else (3, 64)
    machine = print_machine()
    data_dir = dataset_for(args.smoke, args.out / ("data_smoke" if args.smoke else "data"))
    root = args.out / ("gradual_smoke" if args.smoke else "gradual")
    shutil.rmtree(root, ignore_errors=True)
    weights = seeded_backbone(root / "backbone_seed0.pth")
    print(f"data: {data_dir}, --freeze-epochs {freeze} + 1 full epoch, batch 32, image {image_size}px", flush=True)
    rows: dict[str, Any] = {}
    for name, views in (("images", 0), ("features_cold", 1), ("features_warm", 1)):
        rows[name] = run(data_dir, root / name, weights, cached_views=views, freeze=freeze, image_size=image_size)
        print(f"{name}: head phase {rows[name]['head_phase_s']:.1f} s (feature cache "
              f"{rows[name]['feature_cache_s']:.1f} s), val_acc after it {rows[name]['val_acc_after_head']:.3f}",
              flush=True)
    base = rows["images"]["head_phase_s"]
    print(f"head phase ratio images/features: cold cache {base / rows['features_cold']['head_phase_s']:.1f}x, "
          f"warm cache {base / rows['features_warm']['head_phase_s']:.1f}x")
    write_result("gradual_smoke" if args.smoke else "gradual", {"machine": machine, "freeze_epochs": freeze,
                                                                 "image_size": image_size, **rows}, args.out)


if __name__ == "__main__":
    main()
