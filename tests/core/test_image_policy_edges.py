"""dogbreed.core.image_policy at its boundaries: every refusal's status and message, the last accepted and the
first refused size, formats and animation, with the lists that decide them written out (issue 24)."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from dogbreed.core.image_policy import (
    DEFAULT_MAX_ASPECT_RATIO,
    DEFAULT_MAX_PIXELS,
    SERVED_FORMATS,
    STILL_MULTI_FRAME_FORMATS,
    ImagePolicy,
    ImageRefused,
)


def test_the_lists_and_limits_are_pinned():
    assert SERVED_FORMATS == ("JPEG", "MPO", "PNG", "WEBP")
    assert STILL_MULTI_FRAME_FORMATS == frozenset({"MPO"})
    assert DEFAULT_MAX_PIXELS == 40_000_000 and DEFAULT_MAX_ASPECT_RATIO == 20.0
    assert ImagePolicy() == ImagePolicy(("JPEG", "MPO", "PNG", "WEBP"), 40_000_000, 20.0, True, True)


def refusal(policy: ImagePolicy, width: int, height: int, subject: str = "image") -> tuple[int, str]:
    with pytest.raises(ImageRefused) as refused:
        policy.check_size(width, height, subject=subject)
    assert refused.value.message == str(refused.value)
    return refused.value.status_code, refused.value.message


@pytest.mark.parametrize(("width", "height"), [(0, 10), (10, 0), (-1, 5), (0, 0)])
def test_an_image_without_pixels_is_refused(width, height):
    assert refusal(ImagePolicy(), width, height) == (
        400, f"image has size {width}x{height}: send an image with pixels")


def test_one_pixel_is_an_image():
    ImagePolicy().check_size(1, 1)


def test_the_pixel_limit_accepts_its_value_and_refuses_one_more():
    policy = ImagePolicy(max_pixels=1000)
    policy.check_size(40, 25)  # exactly 1000
    assert refusal(policy, 1001, 1, "photo 3") == (
        413, "photo 3 is 1001x1 (0.0 megapixels), over the 0.001 megapixel limit: resize it before sending")
    assert refusal(ImagePolicy(max_aspect_ratio=1e9), 8000, 5001) == (
        413, "image is 8000x5001 (40.0 megapixels), over the 40 megapixel limit: resize it before sending")
    ImagePolicy().check_size(8000, 5000)  # 40,000,000: the default limit itself
    ImagePolicy(max_pixels=None, max_aspect_ratio=1e9).check_size(100_000, 100_000)  # no limit at all


def test_the_aspect_ratio_limit_accepts_its_value_and_refuses_more():
    ImagePolicy().check_size(20, 1)
    ImagePolicy().check_size(1, 20)
    assert refusal(ImagePolicy(), 41, 2) == (
        400, "image is 41x2, an aspect ratio of 20:1, over the 20:1 limit: crop it to the dog before sending")
    assert refusal(ImagePolicy(max_aspect_ratio=2.5), 3, 10) == (
        400, "image is 3x10, an aspect ratio of 3:1, over the 2.5:1 limit: crop it to the dog before sending")
    ImagePolicy(max_aspect_ratio=2.5).check_size(4, 10)  # 2.5 exactly


def opened(fmt: str, frames: int = 1, size: tuple[int, int] = (8, 6)) -> Image.Image:
    buffer = io.BytesIO()
    images = [Image.new("RGB", size, (i * 40, 0, 0)) for i in range(frames)]
    images[0].save(buffer, format=fmt, save_all=frames > 1, append_images=images[1:])
    buffer.seek(0)
    return Image.open(buffer)


def test_an_unserved_format_is_refused_and_any_format_passes_without_a_list():
    with pytest.raises(ImageRefused) as refused:
        ImagePolicy().check_header(opened("BMP"), subject="upload")
    assert (refused.value.status_code, refused.value.message) == (
        400, "upload format BMP is not supported: send a JPEG, PNG or WebP image")
    ImagePolicy(formats=None).check_header(opened("BMP"))
    for fmt in ("JPEG", "PNG", "WEBP"):
        ImagePolicy().check_header(opened(fmt))


def test_an_animated_image_is_refused_only_when_stills_are_required():
    with pytest.raises(ImageRefused) as refused:
        ImagePolicy(formats=None).check_header(opened("GIF", frames=3))
    assert (refused.value.status_code, refused.value.message) == (
        400, "image is animated (3 frames): send a still JPEG, PNG or WebP image (one frame of it)")
    ImagePolicy(formats=None, still_only=False).check_header(opened("GIF", frames=3))
    ImagePolicy(formats=None).check_header(opened("GIF", frames=1))


def test_the_header_check_applies_the_size_bounds():
    with pytest.raises(ImageRefused) as refused:
        ImagePolicy().check_header(opened("PNG", size=(60, 2)))
    assert str(refused.value) == ("image is 60x2, an aspect ratio of 30:1, over the 20:1 limit: crop it to the dog "
                                  "before sending")


def test_the_default_subject_is_image_and_the_policy_is_immutable():
    import dataclasses

    with pytest.raises(ImageRefused) as refused:
        ImagePolicy().check_size(0, 1)
    assert str(refused.value) == "image has size 0x1: send an image with pixels"
    with pytest.raises(dataclasses.FrozenInstanceError):
        ImagePolicy().max_pixels = 1  # type: ignore[misc]


def test_an_animated_image_that_does_not_count_its_frames_says_at_least_2():
    class Animated:  # an image plugin that flags animation without n_frames
        format, is_animated, size = "GIF", True, (4, 4)

    with pytest.raises(ImageRefused) as refused:
        ImagePolicy(formats=None).check_header(Animated())  # type: ignore[arg-type]
    assert refused.value.message == ("image is animated (2 frames): send a still JPEG, PNG or WebP image (one frame "
                                     "of it)")
