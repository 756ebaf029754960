"""Option lists written out once, for the tests that quote a whole message naming every option of a command
(a typo's suggestion lists them): one literal, so a new option changes one place."""

# train's and profiled_train's options; hpo has these and --local, --trials, --tuning-dir
TRAIN_OPTIONS = (
    "--abstention-score, --accelerator, --accept-rate, --accumulate-grad-batches, --allow-duplicates, --augment, "
    "--backbone-lr-scale, --batch-size, --cache-dir, --cached-views, --calibrate, --checkpoint-dir, --compile, "
    "--config, --crop-min-side, --crop-scale, --cutmix-alpha, --data-dir, --dataset-url, --debug-dir, "
    "--debug-eval-interval, --debug-train-interval, --demo, --download, --early-stopping, --ema-decay, --epochs, "
    "--finetune, --freeze-epochs, --help, --image-size, --label-smoothing, --log-dir, --logger, --lr, --lr-find, "
    "--max-time, --mixup-alpha, --model-dir, --monitor, --monitor-interval-ms, --num-workers, --ood-dir, "
    "--output-dir, --overwrite, --precision, --profile-dir, --profiler, --random-erasing, --resume-anyway, --seed, "
    "--show-batch, --skip-bad-images, --test-dir, --test-pct, --top-k, --train-dir, --tta, --valid-dir, --valid-pct, "
    "--warmup-epochs, --weight-decay, --weights")
