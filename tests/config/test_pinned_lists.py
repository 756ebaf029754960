"""The lists and maps that decide behaviour, written out (issue 24): adding an option to a deny-list, dropping a
content type or renaming an environment variable must change this file too, on purpose."""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path


def test_options_left_out_of_the_resume_fingerprint():
    from dogbreed.training.checkpoints import NOT_TRAINING_OPTIONS

    assert NOT_TRAINING_OPTIONS == {
        "accelerator", "cache_dir", "checkpoint_dir", "compile", "data_dir", "dataset_url", "debug_dir",
        "debug_eval_interval", "debug_train_interval", "demo", "download", "lr_find", "max_time", "model_dir",
        "monitor_interval_ms", "num_workers", "output_dir", "precision", "profile_dir", "profiler", "resume_anyway",
        "show_batch", "skip_bad_images", "test_dir", "top_k", "train_dir", "valid_dir",
    }


def test_options_a_tuned_command_line_does_not_reproduce():
    from dogbreed.tuning.local import NOT_REPRODUCED

    assert NOT_REPRODUCED == ("model_dir", "output_dir", "checkpoint_dir", "debug_dir", "debug_train_interval",
                              "debug_eval_interval", "profiler", "monitor_interval_ms", "profile_dir")


def test_model_config_json_fields():
    from dogbreed.serving.artifact import ModelConfig

    assert [f.name for f in fields(ModelConfig)] == [
        "class_names", "preprocessing", "architecture", "hyperparameters", "metrics", "versions", "format_version",
        "weights_sha256", "temperature", "abstention", "tta", "precision"]


def test_sagemaker_environment_to_options():
    from dogbreed.sagemaker.environment import SPLIT_CHANNELS, TRAINING_CHANNEL, WEIGHTS_CHANNEL, config_defaults

    assert SPLIT_CHANNELS == {"train_dir": "SM_CHANNEL_TRAIN", "valid_dir": "SM_CHANNEL_VALID",
                              "test_dir": "SM_CHANNEL_TEST"}
    assert (TRAINING_CHANNEL, WEIGHTS_CHANNEL) == ("SM_CHANNEL_TRAINING", "SM_CHANNEL_WEIGHTS")
    environ = {"SM_MODEL_DIR": "/ml/model", "SM_OUTPUT_DATA_DIR": "/ml/output/data", "SM_CHANNEL_TRAINING": "/ml/d",
               "SM_CHANNEL_TRAIN": "/ml/t", "SM_CHANNEL_VALID": "/ml/v", "SM_CHANNEL_TEST": "/ml/s"}
    assert config_defaults(environ) == {
        "model_dir": Path("/ml/model"), "output_dir": Path("/ml/output/data"), "data_dir": Path("/ml/d"),
        "train_dir": Path("/ml/t"), "valid_dir": Path("/ml/v"), "test_dir": Path("/ml/s"),
        "cache_dir": Path("/ml/feature_cache"), "profile_dir": Path("/ml/output/tensorboard")}  # /ml: SM_MODEL_DIR/..
    assert config_defaults({}) == {}


def test_dogbreed_environment_variables_of_the_endpoint():
    from dogbreed.serving.requests import ServingLimits

    environ = {"DOGBREED_TOP_K": "2", "DOGBREED_MAX_PAYLOAD_BYTES": "3", "DOGBREED_MAX_PIXELS": "4",
               "DOGBREED_MAX_BATCH": "5", "DOGBREED_MAX_REQUEST_PIXELS": "6", "DOGBREED_MAX_ASPECT_RATIO": "7"}
    assert ServingLimits.from_env(environ) == ServingLimits(default_top_k=2, max_payload_bytes=3, max_pixels=4,
                                                            max_batch=5, max_request_pixels=6, max_aspect_ratio=7)


def test_progress_environment_variables():
    from dogbreed.data.progress import INTERVAL_ENV, PROGRESS_ENV, STYLES

    assert (PROGRESS_ENV, INTERVAL_ENV, STYLES) == ("DOGBREED_PROGRESS", "DOGBREED_PROGRESS_INTERVAL",
                                                   ("bar", "lines", "off"))


def test_content_types_and_request_keys():
    from dogbreed.sagemaker.deploy import ENTRY_POINT_ENV
    from dogbreed.sagemaker.registry import CONTENT_TYPES
    from dogbreed.serving.front import HOP_BY_HOP, ROUTES
    from dogbreed.serving.requests import IMAGE_CONTENT_TYPES, JSON_KEYS, SUPPORTED_ACCEPTS, URL_PREFIXES

    assert IMAGE_CONTENT_TYPES == ("image/jpeg", "image/png", "image/webp", "application/x-image",
                                   "application/octet-stream")
    assert SUPPORTED_ACCEPTS == ("application/json", "application/x-npy")
    assert JSON_KEYS == ("image", "instances", "top_k")
    assert URL_PREFIXES == ("http://", "https://", "s3://", "ftp://", "file:")
    assert CONTENT_TYPES == ["image/jpeg", "image/png", "application/x-image"]
    assert ENTRY_POINT_ENV == {"SAGEMAKER_PROGRAM": "inference.py", "SAGEMAKER_SUBMIT_DIRECTORY": "/opt/ml/model/code"}
    assert ROUTES == {"/ping": "GET", "/invocations": "POST", "/execution-parameters": "GET"}
    assert HOP_BY_HOP == {"connection", "content-length", "host", "keep-alive", "proxy-authenticate",
                          "proxy-authorization", "proxy-connection", "te", "trailer", "transfer-encoding", "upgrade"}


def test_images_accepted_and_their_folders():
    from dogbreed.core import constants, image_policy, images, transforms, tta

    assert constants.IMAGE_EXTENSIONS == {".bmp", ".gif", ".jpeg", ".jpg", ".png", ".ppm", ".tif", ".tiff", ".webp"}
    assert image_policy.SERVED_FORMATS == ("JPEG", "MPO", "PNG", "WEBP")
    assert images.URL_SCHEMES == ("http://", "https://", "s3://", "gs://", "ftp://", "file:")
    assert (constants.TRAIN_SPLIT_NAMES, constants.VALID_SPLIT_NAMES, constants.TEST_SPLIT_NAMES) == (
        ("train",), ("valid", "val", "validation"), ("test",))
    assert tta.VIEWS == {"none": 1, "flip": 2, "tencrop": 10}
    assert transforms.TRAINING_ONLY_FIELDS == ("crop_scale", "crop_min_side", "augment", "random_erasing")


def test_option_choices_and_presets():
    from dogbreed.config import options, parser, sections
    from dogbreed.core import constants

    assert sections.MONITORS == {"val_acc": "max", "val_loss": "min", "val_f1_macro": "max"}
    assert sections.PRECISIONS == ("auto", "32-true", "16-mixed", "bf16-mixed", "16-true", "bf16-true", "64-true")
    assert sections.ACCELERATORS == ("auto", "cpu", "gpu", "cuda", "mps")
    assert constants.PRECISIONS == ("fp32", "bf16", "int8")
    assert (constants.FINETUNE_MODES, constants.AUGMENT_POLICIES, constants.TTA_MODES) == (
        ("head", "full", "gradual"), ("none", "default", "trivialaugment", "randaugment"), ("none", "flip", "tencrop"))
    assert (constants.ABSTENTION_SCORES, constants.LOGGERS) == (("max_probability", "energy"),
                                                                ("csv", "tensorboard", "mlflow", "none"))
    assert options.DEMO_OVERRIDES == {"weights": "none", "image_size": 64, "epochs": 4, "crop_scale": 0.35,
                                      "batch_size": 16, "finetune": "full", "lr": 2e-3, "backbone_lr_scale": 1.0}
    assert parser.LAUNCHER_OPTION.pattern == r"^--(_|sagemaker_)"
    assert (parser._TRUE, parser._FALSE) == ({"true", "1", "yes", "y", "on"}, {"false", "0", "no", "n", "off"})


def test_option_aliases_other_tools_use():
    from dogbreed.config.parser import ALIASES

    assert ALIASES == {
        "--learning-rate": "--lr", "--lrate": "--lr", "--base-lr": "--lr",
        "--topk": "--top-k", "--k": "--top-k",
        "--num-epochs": "--epochs", "--n-epochs": "--epochs", "--max-epochs": "--epochs", "--epoch": "--epochs",
        "--bs": "--batch-size", "--batch": "--batch-size", "--train-batch-size": "--batch-size",
        "--wd": "--weight-decay", "--img-size": "--image-size", "--resolution": "--image-size",
        "--data": "--data-dir", "--dataset": "--data-dir", "--data-path": "--data-dir",
        "--model": "--model-dir", "--model-path": "--model-dir", "--output": "--output-dir", "--out": "--output-dir",
        "--gpu": "--accelerator", "--gpus": "--accelerator", "--device": "--accelerator",
        "--workers": "--num-workers", "--smoothing": "--label-smoothing", "--checkpoint": "--checkpoint-dir",
        "--cuda": "--device", "--host-port": "--port", "--http-port": "--port",
    }


def test_a_null_in_a_config_file_names_the_option_as_typed():
    import pytest

    from dogbreed.config.parser import _file_value
    from dogbreed.core.errors import ConfigError

    with pytest.raises(ConfigError) as caught:
        _file_value("random_erasing", None, Path("run.json"))
    assert str(caught.value) == "--config run.json: option random-erasing cannot be null"
    assert _file_value("cache_dir", None, Path("run.json")) is None


def test_weights_keywords_are_the_networks_names_and_none():
    from dogbreed.config.sections import WEIGHTS_KEYWORDS
    from dogbreed.core.network import IMAGENET_WEIGHTS_URLS

    assert WEIGHTS_KEYWORDS == ("imagenet", "imagenet-v2", "imagenet-v1", "none")
    assert set(WEIGHTS_KEYWORDS) == {*IMAGENET_WEIGHTS_URLS, "none"}  # a new download name is a keyword too


def test_lists_that_decide_behaviour_elsewhere_in_the_package():
    """Each literal below decides something a user sees; a change to any of them must be a change to this test."""
    import errno

    from dogbreed.core.fileio import WRITE_ERRNOS
    from dogbreed.data.ood import DRAW, KINDS
    from dogbreed.diagnostics.smdebug_hook import LOCAL_COLLECTIONS
    from dogbreed.sagemaker.deploy import _SIZE_VCPUS
    from dogbreed.serving.artifact import RECORDED_DISTRIBUTIONS
    from dogbreed.serving.front import REASONS
    from dogbreed.serving.model_import import _PREFIXES, _WRAPPER_KEYS
    from dogbreed.serving.torchserve_setup import LOG_NOISE, WORKER_FAILED
    from dogbreed.training.metric_lines import EPOCH_LINE_KEYS, TEST_LINE_KEYS
    from dogbreed.training.reports import PHASE_LABELS
    from dogbreed.training.setup import _EXTRA_FOR

    # a write error the user must fix (one line with its cause), not a traceback
    assert WRITE_ERRNOS == {errno.ENOSPC: "no space left", errno.EDQUOT: "disk quota exceeded",
                            errno.EROFS: "read-only file system", errno.EACCES: "permission denied",
                            errno.EPERM: "permission denied"}
    # the generated non-dog images an abstention rule is checked against, one drawing per kind
    assert KINDS == ("noise", "gradient", "clouds", "shapes") and list(DRAW) == list(KINDS)
    assert LOCAL_COLLECTIONS == ("losses", "weights", "biases", "gradients")  # what a local smdebug trial holds
    assert _SIZE_VCPUS == {"medium": 2, "large": 2, "xlarge": 4, "2xlarge": 8}  # serving workers per instance size
    assert RECORDED_DISTRIBUTIONS == {"torch": "torch", "torchvision": "torchvision",
                                      "pytorch_lightning": "pytorch-lightning", "torchmetrics": "torchmetrics",
                                      "pillow": "Pillow"}
    assert REASONS == {200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed",
                       408: "Request Timeout", 411: "Length Required", 413: "Payload Too Large",
                       431: "Request Header Fields Too Large", 502: "Bad Gateway", 503: "Service Unavailable"}
    assert _WRAPPER_KEYS == ("state_dict", "model_state_dict", "model")  # import-model unwraps these, in this order
    assert _PREFIXES == ("module.", "_orig_mod.", "model.")  # and strips these from the keys
    assert LOG_NOISE == ("ACCESS_LOG", "TS_METRICS", "MetricCollector")  # TorchServe lines not shown
    assert WORKER_FAILED == ("Load model failed", "Backend worker process died")  # lines that end a start-up
    assert EPOCH_LINE_KEYS == ("train_loss", "train_acc", "val_loss", "val_acc", "val_acc_top5", "val_f1_macro")
    assert TEST_LINE_KEYS == ("test_loss", "test_acc", "test_acc_top5", "test_f1_macro")
    assert PHASE_LABELS == {"demo_data": "demo data", "download": "download", "data_check": "data check",
                            "feature_cache": "feature cache", "fit": "fit", "test": "test",
                            "export": "export + reports"}
    assert _EXTRA_FOR == {"tensorboard": ("tensorboard", "tensorboard"), "mlflow": ("mlflow", "mlflow-skinny")}
