"""predict's input expansion and text rendering, without a model: extension case, globs over directories and
``**``, and the text line of a record."""

from __future__ import annotations

from pathlib import Path

import pytest

from dogbreed.cli.predict import expand_inputs, render_text


def _touch(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\xff\xd8\xff")  # expansion looks at names only
    return path


def _relative(inputs, root: Path) -> list[tuple[str, str]]:
    return [(Path(i.name).relative_to(root).as_posix(), i.error) for i in inputs]


def test_a_directory_walk_takes_image_extensions_in_any_case(tmp_path):
    for name in ("A.JPG", "b.Png", "c.jpeg", "d.WEBP", "e.TXT", "f.jpg.bak"):
        _touch(tmp_path / "cam" / name)
    assert _relative(expand_inputs([str(tmp_path / "cam")]), tmp_path) == [
        ("cam/A.JPG", ""), ("cam/b.Png", ""), ("cam/c.jpeg", ""), ("cam/d.WEBP", "")]


def test_a_glob_that_matches_a_directory_walks_it_and_double_star_recurses(tmp_path):
    _touch(tmp_path / "dogs" / "day1" / "x.jpg")
    _touch(tmp_path / "dogs" / "day1" / "notes.txt")
    _touch(tmp_path / "dogs" / "day2" / "deep" / "y.png")
    _touch(tmp_path / "dogs" / "top.jpg")
    assert _relative(expand_inputs([str(tmp_path / "dogs" / "day*")]), tmp_path) == [
        ("dogs/day1/x.jpg", ""), ("dogs/day2/deep/y.png", "")]
    assert _relative(expand_inputs([str(tmp_path / "dogs" / "**" / "*.png")]), tmp_path) == [
        ("dogs/day2/deep/y.png", "")]
    assert _relative(expand_inputs([str(tmp_path / "dogs" / "**" / "*.jpg")]), tmp_path) == [
        ("dogs/day1/x.jpg", ""), ("dogs/top.jpg", "")]


def test_the_text_line_shows_breed_index_and_probability_to_three_decimals():
    guesses = [{"breed": "Beagle", "index": 15, "probability": 0.91234},
               {"breed": "Basset_hound", "index": 14, "probability": 0.0456}]
    records = [
        {"image": "a.jpg", "confident": True, "predictions": guesses},
        {"image": "b.jpg", "confident": False, "predictions": guesses[:1],
         "rejection": {"score_type": "max_probability", "score": 0.41234, "threshold": 0.5}},
        {"image": "c.jpg", "error": "file not found"},
    ]
    assert render_text(records).splitlines() == [
        "a.jpg: Beagle (15) 0.912, Basset_hound (14) 0.046",
        "b.jpg: NOT CONFIDENT (max_probability 0.412 < threshold 0.500: no breed clears the confidence threshold); "
        "best guesses: Beagle (15) 0.912",
        "c.jpg: error: file not found",
    ]


def test_an_empty_file_is_named_as_empty_not_as_a_non_image(tmp_path):
    from dogbreed.cli.predict import read_image

    (tmp_path / "zero.jpg").write_bytes(b"")
    with pytest.raises(ValueError) as raised:
        read_image(str(tmp_path / "zero.jpg"))
    assert str(raised.value) == "empty file"


def test_the_text_output_says_once_at_its_end_that_no_abstention_rule_is_set(tmp_path, tiny_model_dir, capsys):
    from PIL import Image

    from dogbreed.cli.predict import main

    for name, size in (("a.jpg", (40, 30)), ("b.png", (33, 50))):
        Image.new("RGB", size, (200, 30, 30)).save(tmp_path / name)
    assert main(["--model-dir", str(tiny_model_dir), str(tmp_path / "a.jpg"), str(tmp_path / "b.png")]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split(": ")[0] for line in lines[:2]] == [str(tmp_path / "a.jpg"), str(tmp_path / "b.png")]
    assert lines[2:] == ["note: no abstention rule is set for this model: every image gets its best guesses, "
                         "including images that are not dogs"]


class _CountingPredictor:
    """Records the size of each forward pass; answers each image with its own decoded bytes' length."""

    def __init__(self) -> None:
        self.batches: list[int] = []

    def decode(self, data: bytes) -> int:
        return len(data)

    def transform_batch(self, images: list) -> list:
        return list(images)

    def predict_logits(self, batch: list) -> list:
        self.batches.append(len(batch))
        return batch

    def answers(self, logits: list, k: int) -> list:
        class Answer:
            def __init__(self, size: int) -> None:
                self.size = size

            def to_dict(self) -> dict:
                return {"bytes": self.size, "k": k}

        return [Answer(size) for size in logits]


def test_images_are_predicted_in_batches_of_at_most_batch_size_in_input_order(tmp_path):
    from PIL import Image

    from dogbreed.cli.predict import ImageInput, predict_records

    inputs = []
    for i in range(5):
        Image.new("RGB", (8 + i, 8), (10 * i, 0, 0)).save(tmp_path / f"{i}.png")
        inputs.append(ImageInput(str(tmp_path / f"{i}.png")))
    inputs.insert(2, ImageInput(str(tmp_path / "gone.png"), "file not found"))
    predictor = _CountingPredictor()
    records = predict_records(predictor, inputs, k=2, batch_size=2)
    assert predictor.batches == [2, 2, 1]
    sizes = [(tmp_path / f"{i}.png").stat().st_size for i in range(5)]
    assert records == [
        {"image": str(tmp_path / "0.png"), "bytes": sizes[0], "k": 2},
        {"image": str(tmp_path / "1.png"), "bytes": sizes[1], "k": 2},
        {"image": str(tmp_path / "gone.png"), "error": "file not found"},
        *[{"image": str(tmp_path / f"{i}.png"), "bytes": sizes[i], "k": 2} for i in (2, 3, 4)],
    ]
