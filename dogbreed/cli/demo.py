"""What --demo does after training: predict the held-out images and say where everything went."""

from __future__ import annotations

from dogbreed.config.options import TrainConfig
from dogbreed.data.demo import holdout_images
from dogbreed.data.sources import DEFAULT_DEMO_DIR
from dogbreed.serving.predictor import Predictor
from dogbreed.training.run import TrainResult


def show_demo_predictions(config: TrainConfig, result: TrainResult) -> None:
    predictor = Predictor.from_model_dir(result.model_dir)
    images = holdout_images(config.data.data_dir or DEFAULT_DEMO_DIR)
    print(f"\nheld-out demo images, top-{config.outputs.top_k} breeds:")
    for path, answer in zip(images, predictor.predict_answers(images, k=config.outputs.top_k)):
        shown = ", ".join(f"{p.breed} {p.probability:.2f}" for p in answer.predictions)
        flag = "  (not confident: below the threshold)" if answer.confident is False else ""
        print(f"  {path.name}: {shown}{flag}")
    print(f"\ntest accuracy {result.test_metrics.get('acc', float('nan')):.3f} on the demo test split")
    print(f"data: {config.data.data_dir or DEFAULT_DEMO_DIR}/")
