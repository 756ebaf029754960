"""Issue 25.4: what the calibration phase costs in a small run, against what it cost when it always ran the
backbone over 32 + 32 generated non-dog images.

A head-only run, 10 epochs, on a 64/16/16 set of photo-sized JPEGs (4 classes x 16/4/4, 300-1600 px, 224 px
model, seeded random backbone as in bench_head_training.py). The phase now reuses the cached validation and test
features (no backbone pass) and sizes the non-dog set to the job (none when validation is too small to check an
abstention rule on, which 16 images are). The old cost is measured in the same process on the same network: the
backbone over the 64 generated images the old phase always ran.

    python bench/bench_calibration_phase.py            # 64/16/16, 10 epochs
    python bench/bench_calibration_phase.py --smoke    # tiny, for tests
"""

from __future__ import annotations

import argparse
import contextlib
import io
import logging
import os
from pathlib import Path

from bench_head_training import seeded_backbone
from benchlib import OUT_DIR, make_dataset, print_machine, stopwatch, write_result

from dogbreed.config.options import TrainConfig
from dogbreed.data.ood import generated_ood_images
from dogbreed.serving.artifact import load_artifact
from dogbreed.training.evaluation import image_logits
from dogbreed.training.run import train

FULL = dict(num_classes=4, per_split={"train": 16, "valid": 4, "test": 4}, min_side=300, max_side=1600)
SMOKE = dict(num_classes=3, per_split={"train": 4, "valid": 2, "test": 2}, min_side=120, max_side=320)
OLD_OOD_IMAGES = 64  # 32 + 32 generated images, every run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true", help="tiny sizes (tests)")
    parser.add_argument("--out", type=Path, default=OUT_DIR)
    args = parser.parse_args()
    logging.getLogger("pytorch_lightning").setLevel(logging.ERROR)
    machine = print_machine()
    load = os.getloadavg()[0]
    spec, image_size = (SMOKE, 64) if args.smoke else (FULL, 224)
    data = make_dataset(args.out / ("calibration_data_smoke" if args.smoke else "calibration_data"), **spec)
    work = args.out / ("calibration_run_smoke" if args.smoke else "calibration_run")
    weights = seeded_backbone(args.out / "seeded_resnet50.pth")
    config = TrainConfig(data_dir=data, model_dir=work / "model", output_dir=work / "reports",
                         cache_dir=work / "feature_cache", epochs=2 if args.smoke else 10, batch_size=64, lr=3e-3,
                         image_size=image_size, weights=str(weights), finetune="head", cached_views=1,
                         accelerator="cpu", seed=0, num_workers=0)
    with contextlib.redirect_stdout(io.StringIO()):
        result = train(config)
    timing = result.timing
    net, model_config = load_artifact(config.outputs.model_dir)
    ood = generated_ood_images(OLD_OOD_IMAGES, seed=1)
    with stopwatch() as old:
        image_logits(net, ood, pre=model_config.preprocessing, tta="none", batch_size=64)
    share = timing["calibration_s"] / timing["total_s"]
    old_share = (timing["calibration_s"] + old["s"]) / (timing["total_s"] + old["s"])
    print(f"run total {timing['total_s']:.2f} s, calibration phase {timing['calibration_s']:.3f} s "
          f"({share:.1%} of the run; target <= 10%)")
    print(f"old phase's extra backbone pass over {OLD_OOD_IMAGES} generated images: {old['s']:.2f} s "
          f"(its share would be {old_share:.1%})")
    print(f"ratio old/new calibration phase: {(timing['calibration_s'] + old['s']) / timing['calibration_s']:.1f}x")
    print(f"load average at start: {load:.2f}")
    write_result("calibration_phase" + ("_smoke" if args.smoke else ""),
                 {"machine": machine, "load_1min": load, "timing": timing, "old_ood_pass_s": old["s"],
                  "share": share, "old_share": old_share}, args.out)


if __name__ == "__main__":
    main()
