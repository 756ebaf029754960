"""SageMaker inference handlers: ``model_fn``, ``input_fn``, ``predict_fn``, ``output_fn``.

The PyTorch serving container imports ``code/inference.py`` (a thin re-export of this module). Torch-only:
the packaged archive carries ``dogbreed.core`` and ``dogbreed.serving`` and nothing else.
Client mistakes raise the toolkit's ``GenericInferenceToolkitError`` with a 4xx status; dogbreed
itself does not need the toolkit installed (:func:`as_toolkit_error` converts only when it is).
"""

from __future__ import annotations

import functools
import io
import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, TypeVar

import numpy as np
import torch
from PIL import Image

import dogbreed
from dogbreed.core.errors import ImageDecodeError
from dogbreed.serving.answers import Answer
from dogbreed.serving.artifact import quality_warning
from dogbreed.serving.precision import precision_from_env
from dogbreed.serving.predictor import Predictor
from dogbreed.serving.requests import (
    JSON,
    Body,
    InferenceRequest,
    RequestError,
    ServingLimits,
    curl_hint,
    decode_request,
    negotiate_accept,
)

logger = logging.getLogger(__name__)
Handler = TypeVar("Handler", bound=Callable[..., Any])
INTERNAL_ERROR_MESSAGE = "internal error while serving the request: the endpoint logs have the details"


@dataclass
class InferenceResult:
    """Calibrated probabilities (N, num_classes) and the answer per image (top-k breeds, best first, and the
    abstention decision)."""

    probabilities: torch.Tensor
    answers: list[Answer]
    batched: bool


def to_toolkit_error(error: RequestError) -> Exception:
    """The toolkit's own exception when it is importable (it sets the HTTP status), else ``error``."""
    try:
        from sagemaker_inference.errors import GenericInferenceToolkitError
    except ImportError:
        return error
    return GenericInferenceToolkitError(error.status_code, error.message)


def as_toolkit_error(handler: Handler) -> Handler:
    """Re-raise client errors of ``handler`` as toolkit errors (4xx instead of the default 500)."""

    @functools.wraps(handler)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return handler(*args, **kwargs)
        except RequestError as exc:
            raise to_toolkit_error(exc) from exc
        except ImageDecodeError as exc:
            raise to_toolkit_error(RequestError(getattr(exc, "status_code", 400), str(exc))) from exc

    return wrapper  # type: ignore[return-value]


def _client_safe_error_response(context: Any, inference_exception: Any, trace: str) -> list[str]:
    """Replacement for ``Transformer.handle_error``: the traceback goes to the log, not the client."""
    status = int(getattr(inference_exception, "status_code", 500))
    message = str(getattr(inference_exception, "message", "")) if status < 500 else INTERNAL_ERROR_MESSAGE
    logger.error("request failed with HTTP %s: %s\n%s", status, getattr(inference_exception, "message", ""), trace)
    context.set_response_status(code=status, phrase=" ".join(message.split()))
    context.set_response_content_type(0, JSON)
    return [json.dumps({"code": status, "message": message})]


def install_client_safe_errors() -> bool:
    """Make the toolkit answer errors with a JSON message instead of message + Python traceback.

    The toolkit's ``Transformer.handle_error`` puts ``traceback.format_exc()`` in the response body;
    a client must never see our internals, so the serving worker swaps in a version that logs it.
    """
    try:
        from sagemaker_inference.transformer import Transformer
    except ImportError:
        return False
    if not hasattr(Transformer, "handle_error"):
        logger.warning("sagemaker_inference.Transformer has no handle_error: error bodies keep the toolkit format")
        return False
    Transformer.handle_error = staticmethod(_client_safe_error_response)
    return True


def install_raw_bodies() -> bool:
    """Stop the toolkit from UTF-8-decoding JSON bodies before ``input_fn``.

    ``Transformer.transform`` decodes bodies of its ``UTF8_TYPES`` (JSON, CSV) itself, so a non-UTF-8 JSON body
    raised there and became a 500; :func:`dogbreed.serving.requests.decode_json` decodes bytes itself and
    answers such a body with a 400 that says what to send.
    """
    try:
        from sagemaker_inference import content_types
    except ImportError:
        return False
    content_types.UTF8_TYPES = []
    return True


def warm_up(predictor: Predictor) -> None:
    """One forward pass, so the first client request does not pay for lazy initialisation."""
    size = predictor.config.preprocessing.resize_size
    predictor.predict_proba(predictor.preprocess([Image.new("RGB", (size, size), (128, 128, 128))]))


def worker_device(context: Any = None) -> torch.device:
    """The device of this serving worker: TorchServe gives each worker a ``gpu_id`` (round-robin over the
    instance's GPUs) in ``context.system_properties``; without CUDA, or without a context, the CPU / cuda:0."""
    if not torch.cuda.is_available():
        return torch.device("cpu")
    properties = getattr(context, "system_properties", None) or {}
    gpu_id = properties.get("gpu_id")
    if gpu_id is None or str(gpu_id).strip() == "":
        return torch.device("cuda")
    return torch.device("cuda", int(gpu_id) % max(1, torch.cuda.device_count()))


def model_fn(model_dir: str | Path, context: Any = None) -> Predictor:
    """Load the self-describing artifact (weights_only) on this worker's GPU (TorchServe's ``gpu_id``) when there
    is one, in eval mode, warmed up, in the precision of ``DOGBREED_PRECISION`` (else the artifact's, else fp32).
    The toolkit passes ``context`` because the signature takes it."""
    ServingLimits.from_env()  # a bad DOGBREED_* variable fails the model load, not every request
    install_client_safe_errors()
    install_raw_bodies()
    started = time.perf_counter()
    predictor = Predictor.from_model_dir(model_dir, device=worker_device(context), precision=precision_from_env())
    loaded = time.perf_counter()
    warning = quality_warning(predictor.config)
    if warning:
        logger.warning(warning)
    warm_up(predictor)
    logger.info("dogbreed %s from %s serving %d breeds on %s in %s (artifact loaded in %.2f s, first forward "
                "%.2f s)", dogbreed.__version__, Path(dogbreed.__file__).parent, len(predictor.class_names),
                predictor.device, predictor.precision, loaded - started, time.perf_counter() - loaded)
    return predictor


@as_toolkit_error
def input_fn(request_body: Body, request_content_type: str | None) -> InferenceRequest:
    """Decode image bytes, base64 JSON or a uint8 .npy array into validated images."""
    return decode_request(request_body, request_content_type, ServingLimits.from_env())


def _preprocess_one(predictor: Predictor, image: Any, where: str) -> torch.Tensor:
    try:
        return predictor.preprocess([image])  # strict decode: a truncated or broken image is refused
    except ImageDecodeError as exc:  # the input policy's refusals carry their own status (413 for pixels)
        raise RequestError(getattr(exc, "status_code", 400), f"{where}{exc}{curl_hint(image)}") from exc


@as_toolkit_error
def predict_fn(request: InferenceRequest, predictor: Predictor) -> InferenceResult:
    """Preprocess with the artifact's own transform (one decoded image alive at a time), predict batched with the
    artifact's TTA and temperature, decide confidence with its abstention threshold."""
    where = (lambda i: f'"instances"[{i}]: ') if request.batched else (lambda i: "")
    batch = torch.cat([_preprocess_one(predictor, image, where(i)) for i, image in enumerate(request.images)])
    logits = predictor.predict_logits(batch)
    top_k = request.top_k or ServingLimits.from_env().default_top_k
    return InferenceResult(predictor.probabilities(logits), predictor.answers(logits, top_k), request.batched)


def encode_result(result: InferenceResult, response_type: str) -> tuple[bytes | str, str]:
    if response_type == JSON:
        answers = [answer.to_dict() for answer in result.answers]
        return json.dumps(answers if result.batched else answers[0]), JSON
    probabilities = result.probabilities.numpy().astype(np.float32)
    buffer = io.BytesIO()
    np.save(buffer, probabilities if result.batched else probabilities[0], allow_pickle=False)
    return buffer.getvalue(), response_type


@as_toolkit_error
def output_fn(prediction: InferenceResult, accept: str | None) -> tuple[bytes | str, str]:
    """JSON ``{"confident", "predictions": [{"breed", "index", "probability"}, ...], "rejection"?}`` per image
    (a list of them for a batch), or .npy probabilities."""
    return encode_result(prediction, negotiate_accept(accept))
