"""Constants shared by training, evaluation and serving. Defined here once."""

from __future__ import annotations

# ImageNet statistics: what the torchvision ResNet50 weights were trained with. The dogImages
# per-image statistics are close to these (mean ~[0.487, 0.467, 0.397], std ~[0.235, 0.230, 0.230]).
IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)

# torchvision's evaluation recipe for ResNet50 IMAGENET1K_V2: resize to 232, centre-crop 224.
EVAL_RESIZE_RATIO: float = 232 / 224
DEFAULT_IMAGE_SIZE: int = 224
# RandomResizedCrop's area range of the training augmentation (torchvision's ImageNet recipe).
DEFAULT_CROP_SCALE: tuple[float, float] = (0.08, 1.0)

# Fine-tuning policies: "head" trains the new classifier on a frozen backbone, "full" trains everything, "gradual"
# trains the head first (--freeze-epochs), then everything with discriminative learning rates.
FINETUNE_MODES = ("head", "full", "gradual")
# Training augmentation policies (dogbreed.core.augment): none (the eval view), default (random-resized crop + flip),
# and torchvision's TrivialAugmentWide / RandAugment on top of the default.
AUGMENT_POLICIES = ("none", "default", "trivialaugment", "randaugment")
# The random crop keeps at least this share of --image-size per side of the source image, so small images are not
# blown up from a few pixels (with crop scale 0.08 a 32 px scan gives 9 px crops); large images keep the ImageNet
# recipe. 0 turns it off.
DEFAULT_CROP_MIN_SIDE: float = 0.5

# Test-time augmentation modes (dogbreed.core.tta), abstention scores (dogbreed.core.abstention) and the
# Lightning loggers a run can write to: here, so the options layer can offer them without importing torch.
TTA_MODES = ("none", "flip", "tencrop")
# Serving precisions (dogbreed.serving.precision): fp32, bf16 autocast, int8 post-training static quantization.
PRECISIONS = ("fp32", "bf16", "int8")
ABSTENTION_SCORES = ("max_probability", "energy")
LOGGERS = ("csv", "tensorboard", "mlflow", "none")

# Files of a model artifact (a model dir).
WEIGHTS_FILENAME = "model.pth"
INT8_WEIGHTS_FILENAME = "model_int8.pth"  # written next to model.pth by package --precision int8
CONFIG_FILENAME = "model_config.json"
ARTIFACT_FORMAT_VERSION = 1
ARCHITECTURE = "resnet50"

# Files of the reports dir.
METRICS_FILENAME = "metrics.json"
CURVES_FILENAME = "training_curves.png"
CONFUSION_FILENAME = "confusion_matrix.png"
PER_CLASS_FILENAME = "per_class_accuracy.csv"
MOST_CONFUSED_FILENAME = "most_confused.csv"
WORST_PREDICTIONS_FILENAME = "worst_predictions.png"

# Breeds shown per image by the train demo and by predict (the endpoint's default is its own: DOGBREED_TOP_K).
DEFAULT_TOP_K = 3
CALIBRATION_FILENAME = "calibration.png"

# Image files the data module picks up (lower-case suffixes).
IMAGE_EXTENSIONS: frozenset[str] = frozenset(
    {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm"}
)

# Split folder names, in order of preference.
TRAIN_SPLIT_NAMES = ("train",)
VALID_SPLIT_NAMES = ("valid", "val", "validation")
TEST_SPLIT_NAMES = ("test",)

# The public dogImages archive (Udacity), as used by the original project.
DOGIMAGES_URL = "https://s3-us-west-1.amazonaws.com/udacity-aind/dog-project/dogImages.zip"

# The largest crop size training accepts and a model_config.json may declare (a ResNet50 at 2048 px already
# needs ~4 GB per image for full fine-tuning; larger values are typos or attacks that end in an OOM).
MAX_IMAGE_SIZE: int = 2048
# The smallest --image-size training accepts (prepare checks against the same range).
MIN_IMAGE_SIZE: int = 32
