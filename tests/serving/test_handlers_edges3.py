"""The handlers' error conversion: an image refusal that reaches a handler without the request decoder converting it
keeps its own HTTP status (413 for too many pixels); a plain decode error is a 400."""

from __future__ import annotations

import pytest

from dogbreed.serving import handlers


def test_an_image_refusal_that_reaches_a_handler_keeps_its_status():
    from sagemaker_inference.errors import GenericInferenceToolkitError

    from dogbreed.core.errors import ImageDecodeError
    from dogbreed.core.image_policy import ImageRefused

    @handlers.as_toolkit_error
    def refuse(error: Exception) -> None:
        raise error

    with pytest.raises(GenericInferenceToolkitError) as too_big:
        refuse(ImageRefused(413, "image is 20000x20000: resize it before sending"))
    assert (too_big.value.status_code, too_big.value.message) == (413, "image is 20000x20000: resize it before sending")
    with pytest.raises(GenericInferenceToolkitError) as broken:
        refuse(ImageDecodeError("cannot identify image file"))
    assert (broken.value.status_code, broken.value.message) == (400, "cannot identify image file")
